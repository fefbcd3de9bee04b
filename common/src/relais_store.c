/*  =========================================================================
    relais_store - one LMDB environment per service: state, event log,
    checkpoints

    @header
    The only file that includes lmdb.h. One MDB_env per store, opened with
    MDB_NOTLS (read transactions may run on libuv's threadpool) and LMDB's
    durable defaults, and a write-ahead log in front of it (see "The
    write-ahead log"): a write is durable when its record is flushed; LMDB
    commits at checkpoints. Besides the service's own databases, three
    internal ones: "meta" (schema_version, log bounds, the WAL's
    checkpoint, the service's named counters), "log" (the event log) and
    "ckpt" (subscriber checkpoints).
    @discuss
    Map growth: LMDB cannot grow the map inside a transaction, so a write
    that hits MDB_MAP_FULL is aborted, the map doubled while no write
    transaction is open, and the callback run again. Remapping under a read
    transaction of another thread would pull the map from under its
    pointers, so readers hold a shared lock and growth an exclusive one.
    =========================================================================
*/
#include "relais_store.h"
#include "relais_log.h"

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#define S_MAP_SIZE_DEFAULT  ((size_t) 64 << 20)
#define S_MAP_MAX_DEFAULT   ((size_t) 64 << 30)
#define S_MAX_READERS       126
#define S_MAX_HOOKS         4
#define S_NAME_MAX          240         //  meta/ckpt names; LMDB keys stop at 511
#define S_RESIZED_RETRIES   8
//  The write-ahead log (see "The write-ahead log" below)
#define S_WAL_MAGIC         0x4c415752u     //  "RWAL" read little-endian
#define S_WAL_HEADER        24
#define S_WAL_SIZE_DEFAULT  ((size_t) 4 << 20)
#define S_WAL_SIZE_MIN      ((size_t) 64 << 10)
//  At most 64 K pages of changes wait for a checkpoint (LMDB's dirty list
//  holds 128 K), and a record's length fits its u32
#define S_WAL_SIZE_MAX      ((size_t) 256 << 20)
#define S_OP_PUT            1
#define S_OP_DEL            2
#define S_OP_HEADER         8
#define S_GROWN             1               //  s_checkpoint: map grown, try again

//  Programmer misuse: stays on under NDEBUG, never used for disk contents.
#define s_require(cond, ...) do { \
    if (!(cond)) { \
        relais_error ("relais_store: " __VA_ARGS__); \
        abort (); \
    } \
} while (0)

//  Internal meta keys carry no prefix; users' names get "u:" so that a
//  service's "log_last" can never overwrite the log's.
static const char s_schema_key [] = "schema_version";
static const char s_log_first_key [] = "log_first";
static const char s_log_last_key [] = "log_last";

typedef struct {
    relais_txn_hook_fn *begin;
    relais_txn_hook_fn *commit;
    relais_txn_hook_fn *abort;
    void *arg;
} s_hook_t;

struct relais_store_t {
    MDB_env *env;
    char *dir;
    int ndbs;
    char *names [RELAIS_STORE_MAX_DBS];
    MDB_dbi dbis [RELAIS_STORE_MAX_DBS];
    MDB_dbi meta;
    MDB_dbi log;
    MDB_dbi ckpt;
    size_t map_size;
    size_t map_max;
    int resizes;
    s_hook_t hooks [S_MAX_HOOKS];
    int nhooks;
    bool writing;                   //  inside relais_store_write (nesting is a bug)
    bool rwlock_ok;
    pthread_rwlock_t remap;         //  readers shared, map growth exclusive
    //  Names of the databases by LMDB handle (the WAL names them)
    const char *dbi_name [RELAIS_STORE_MAX_DBS + 8];
    uint8_t dbi_name_len [RELAIS_STORE_MAX_DBS + 8];
    //  The write-ahead log (see "The write-ahead log" below)
    MDB_txn *parent;                //  open between checkpoints, owner thread only
    pthread_t owner;
    int wal_fd;
    size_t wal_size;                //  bytes of the preallocated file
    size_t wal_off;                 //  bytes of records since the checkpoint
    uint64_t wal_lsn;               //  last record made durable
    uint8_t *ops;                   //  the current write's operations
    size_t ops_len, ops_cap;
    uint32_t ops_count;
    bool broken;                    //  a flush failed: no write may be acked
    bool reader;                    //  opened by relais_store_open_reader
    bool readonly;                  //  ... while an owner had it: no writes
    bool parent_dirty;              //  the parent holds changes to commit
    uint64_t checkpoints, records;
    int readers_fd;                 //  reader: <dir>/readers.lock, held shared
    bool compact_pending;           //  a compaction waits for readers to go
};

//  Read callbacks of this thread in progress: a write from inside one could
//  need to grow the map while this thread holds the old one.
static _Thread_local int s_reading;

//  Lives on the stack of relais_store_write/read: no allocation per txn.
struct relais_txn_t {
    relais_store_t *store;
    MDB_txn *txn;
    bool rdonly;
    bool logging;                   //  successful puts/dels go to the WAL record
    bool map_full;                  //  an operation hit MDB_MAP_FULL: grow, retry
    bool txn_full;                  //  MDB_TXN_FULL: checkpoint, retry once
    int error;                      //  first failed operation (mapped code)
    //  Log bounds, read from meta once per txn; appends update them here
    //  and meta once, just before the commit (not two gets and a put per
    //  event: about a quarter of intake's B-tree operations per report)
    bool log_known;
    bool log_dirty;
    uint64_t log_first, log_last;
};

static int s_log_flush (relais_txn_t *txn);
static int s_wal_lock (relais_store_t *self);
static void s_reader_unlock (relais_store_t *self);
static int s_wal_open (relais_store_t *self);
static int s_checkpoint (relais_store_t *self);
static int s_checkpoint_settled (relais_store_t *self);

//  ---------------------------------------------------------------------------
//  Return codes: LMDB's positive errno → -errno; its own codes are negative
//  already; the few that have a project meaning get ours.

static int
s_map_rc (int rc)
{
    switch (rc) {
        case MDB_SUCCESS:       return 0;
        case MDB_NOTFOUND:      return RELAIS_ENOTFOUND;
        case MDB_MAP_FULL:      return RELAIS_EFULL;
        case MDB_BAD_VALSIZE:   return RELAIS_ETOOLARGE;
        case MDB_PANIC:         return RELAIS_EFATAL;
        default:                return rc > 0? -rc: rc;
    }
}

static bool s_short_write_on_full_disk (relais_store_t *self);

//  Record a failed operation so that the transaction cannot commit half of
//  what the callback meant, even when the callback ignores the error.
static int
s_op_failed (relais_txn_t *txn, int rc)
{
    if (rc == MDB_MAP_FULL)
        txn->map_full = true;
    if (rc == MDB_TXN_FULL)
        txn->txn_full = true;
    int mapped = s_map_rc (rc);
    if (txn->error == 0)
        txn->error = mapped;
    return mapped;
}

static MDB_dbi
s_user_dbi (relais_txn_t *txn, int db)
{
    s_require (txn && txn->txn, "transaction used outside its callback");
    s_require (db >= 0 && db < txn->store->ndbs, "no database %d", db);
    return txn->store->dbis [db];
}

//  ---------------------------------------------------------------------------
//  Opening

static int
s_mkdir_p (const char *dir)
{
    char path [4096];
    if (snprintf (path, sizeof path, "%s", dir) >= (int) sizeof path)
        return -ENAMETOOLONG;
    for (char *p = path + 1; ; p++) {
        if (*p == '/' || *p == 0) {
            char saved = *p;
            *p = 0;
            if (mkdir (path, 0700) && errno != EEXIST)
                return -errno;
            *p = saved;
            if (saved == 0)
                break;
        }
    }
    struct stat st;
    if (stat (dir, &st))
        return -errno;
    return S_ISDIR (st.st_mode)? 0: -ENOTDIR;
}

static void
s_refresh_map_size (relais_store_t *self)
{
    MDB_envinfo info;
    if (mdb_env_info (self->env, &info) == 0)
        self->map_size = info.me_mapsize;
}

//  Open every database and check or write the schema version, in one
//  write transaction (dbi handles opened in a committed txn stay valid).
static int
s_open_dbs (relais_store_t *self)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin (self->env, NULL, self->readonly? MDB_RDONLY: 0, &txn);
    if (rc) {
        relais_error ("relais_store: %s: cannot begin: %s", self->dir, mdb_strerror (rc));
        return s_map_rc (rc);
    }
    static const char *const internal [] = { "meta", "log", "ckpt" };
    MDB_dbi *internal_dbis [] = { &self->meta, &self->log, &self->ckpt };
    unsigned create = self->readonly? 0: MDB_CREATE;
    for (int i = 0; i < 3 && rc == 0; i++)
        rc = mdb_dbi_open (txn, internal [i], create, internal_dbis [i]);
    for (int i = 0; i < self->ndbs && rc == 0; i++)
        rc = mdb_dbi_open (txn, self->names [i], create, &self->dbis [i]);
    //  The WAL names databases; LMDB's handles are small integers
    memset (self->dbi_name, 0, sizeof self->dbi_name);
    size_t slots = sizeof self->dbi_name / sizeof self->dbi_name [0];
    for (int i = 0; i < 3 && rc == 0; i++)
        if (*internal_dbis [i] < slots)
            self->dbi_name [*internal_dbis [i]] = internal [i];
    for (int i = 0; i < self->ndbs && rc == 0; i++)
        if (self->dbis [i] < slots)
            self->dbi_name [self->dbis [i]] = self->names [i];
    for (size_t i = 0; i < slots; i++)      //  names are < 256 bytes (mdb keys)
        self->dbi_name_len [i] = self->dbi_name [i]? (uint8_t) strlen (self->dbi_name [i]): 0;
    if (rc) {
        relais_error ("relais_store: %s: cannot open databases: %s", self->dir, mdb_strerror (rc));
        mdb_txn_abort (txn);
        return s_map_rc (rc);
    }
    MDB_val key = { sizeof s_schema_key - 1, (void *) s_schema_key };
    MDB_val val;
    rc = mdb_get (txn, self->meta, &key, &val);
    if (rc == MDB_NOTFOUND && self->readonly)
        rc = 0;                         //  its owner writes it
    else
    if (rc == MDB_NOTFOUND) {
        uint8_t version [8];
        relais_u64_to_key (RELAIS_STORE_SCHEMA_VERSION, version);
        val.mv_size = 8;
        val.mv_data = version;
        rc = mdb_put (txn, self->meta, &key, &val, 0);
    }
    else
    if (rc == 0) {
        //  Disk contents: a bad value is refused, never asserted
        if (val.mv_size != 8) {
            relais_error ("relais_store: %s: schema_version is %zu bytes, not 8: refusing the store",
                          self->dir, val.mv_size);
            mdb_txn_abort (txn);
            return RELAIS_EMALFORMED;
        }
        uint64_t version = relais_key_to_u64 (val.mv_data);
        if (version > RELAIS_STORE_SCHEMA_VERSION) {
            relais_error ("relais_store: %s: schema version %llu is newer than this program's %d: refusing the store",
                          self->dir, (unsigned long long) version, RELAIS_STORE_SCHEMA_VERSION);
            mdb_txn_abort (txn);
            return RELAIS_ECONFLICT;
        }
    }
    if (rc) {
        relais_error ("relais_store: %s: cannot set up meta: %s", self->dir, mdb_strerror (rc));
        mdb_txn_abort (txn);
        return s_map_rc (rc);
    }
    rc = mdb_txn_commit (txn);
    if (rc) {
        relais_error ("relais_store: %s: cannot commit setup: %s", self->dir, mdb_strerror (rc));
        return s_map_rc (rc);
    }
    return 0;
}

//  Create and open self->env in self->dir, then its databases. Returns 0
//  or a negative code after logging why (self->env may then be set).
//  ---------------------------------------------------------------------------
//  Other processes beside the owner (dumps, backups, verify). LMDB shares
//  its lock file (lock.mdb) between every process that has the environment
//  open, and that file records the last transaction of the data.mdb it was
//  set up for. Compaction swaps in a new data.mdb: a process that still
//  holds lock.mdb then makes every later opener read the new file through
//  the old record - LMDB picks the wrong meta page, sees an older or empty
//  tree, and an owner would write on top of it. Two defences:
//  - <dir>/readers.lock: our readers hold it shared (flock) for as long as
//    their environment is open; the owner compacts only when it can take
//    it exclusively, else the compaction waits for relais_store_tick.
//  - s_lock_current: any opener, owner or reader, compares the transaction
//    lock.mdb records with the newest one in data.mdb itself (read through
//    a second, lock-free environment) and refuses a lock file set up for
//    another data.mdb (a foreign tool such as mdb_stat kept it open over a
//    compaction): the owner stops rather than lose the store.

//  Take <dir>/readers.lock, shared (waits up to 30 s for a compaction's
//  swap) or exclusive (no wait). Returns the fd; -1 when the file cannot
//  be created (a read-only folder: no compaction runs there either) or
//  cannot be locked, to go on without it; or -EBUSY.
static int
s_readers_lock (const char *dir, bool exclusive)
{
    char path [4200];
    snprintf (path, sizeof path, "%s/readers.lock", dir);
    int fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    bool busy = false;
    for (int tries = exclusive? 1: 3000; ; ) {
        if (flock (fd, (exclusive? LOCK_EX: LOCK_SH) | LOCK_NB) == 0)
            return fd;
        if (errno == EINTR)
            continue;
        busy = errno == EWOULDBLOCK;
        if (!busy || --tries == 0)
            break;                  //  not busy: flock unsupported here, go without
        usleep (10000);
    }
    close (fd);
    if (busy && !exclusive)
        relais_error ("relais_store: %s: still being compacted after 30 s", dir);
    return busy? -EBUSY: -1;
}

static void
s_readers_unlock (int *fd)
{
    if (*fd >= 0)
        close (*fd);
    *fd = -1;
}

//  The transaction that env's lock file records as the newest must not be
//  newer than the newest in data.mdb (read in that order: an owner may
//  commit in between, never the other way round). Returns 0, or -EBUSY
//  (logged) when the lock file was set up for another data.mdb.
static int
s_lock_current (const char *dir, MDB_env *env)
{
    MDB_txn *txn;
    if (mdb_txn_begin (env, NULL, MDB_RDONLY, &txn))
        return 0;                   //  the caller's own reads will say why
    size_t locked = mdb_txn_id (txn);
    mdb_txn_abort (txn);
    MDB_env *file = NULL;
    size_t newest = locked;
    if (mdb_env_create (&file) == 0
    &&  mdb_env_open (file, dir, MDB_RDONLY | MDB_NOLOCK | MDB_NOTLS, 0600) == 0
    &&  mdb_txn_begin (file, NULL, MDB_RDONLY, &txn) == 0) {
        newest = mdb_txn_id (txn);
        mdb_txn_abort (txn);
    }
    if (file)
        mdb_env_close (file);
    if (locked <= newest)
        return 0;
    relais_error ("relais_store: %s: lock.mdb is held by a process that opened the store before "
                  "a compaction (it records transaction %zu, data.mdb ends at %zu): stop that "
                  "process (a tool such as mdb_stat?), then start again", dir, locked, newest);
    return -EBUSY;
}

static int
s_open_env (relais_store_t *self)
{
    int rc = mdb_env_create (&self->env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs (self->env, (MDB_dbi) self->ndbs + 3);
    if (rc == 0)
        rc = mdb_env_set_maxreaders (self->env, S_MAX_READERS);
    //  MDB_NOTLS: reads from the threadpool; the durable defaults otherwise.
    //  Why two flushes per commit stay (issue #11 asked whether one would
    //  do): LMDB 0.9 commits by writing the txn's pages, fdatasync, then
    //  the meta page that points at the new root, written O_DSYNC. Its meta
    //  pages carry no checksum: at open LMDB trusts the one with the higher
    //  txnid. MDB_NOSYNC + one mdb_env_sync (force) per group would write
    //  pages and meta and flush them together, but a disk may persist them
    //  in any order: a power cut during that flush can leave the new meta
    //  on disk over pages that never got there, and LMDB would open a tree
    //  made of stale, reused pages - the acked reports of earlier commits
    //  lost with it. MDB_NOMETASYNC + an explicit sync is still two flushes
    //  (data, then meta), so it saves nothing for a lone event; without the
    //  explicit sync the last acked commit may vanish. So a commit costs
    //  two ordered flushes - which is why writes are acked from the
    //  write-ahead log (one flush) and LMDB commits only at checkpoints.
    //  No map size before open: LMDB then takes the one recorded in the
    //  file, so a map grown before a restart does not start small again.
    if (rc == 0)
        rc = mdb_env_open (self->env, self->dir, MDB_NOTLS | (self->readonly? MDB_RDONLY: 0), 0600);
    if (rc == 0) {
        size_t asked = self->map_size;
        s_refresh_map_size (self);
        if (self->map_size < asked)
            rc = mdb_env_set_mapsize (self->env, asked);
    }
    if (rc) {
        relais_error ("relais_store: %s: cannot open: %s", self->dir, mdb_strerror (rc));
        return s_map_rc (rc);
    }
    if ((rc = s_lock_current (self->dir, self->env)))
        return rc;
    s_refresh_map_size (self);
    if (self->map_max < self->map_size)
        self->map_max = self->map_size;

    //  A process killed while reading left its slot behind
    relais_store_tick (self);
    return s_open_dbs (self);
}

static relais_store_t *
s_store_new (const char *dir, const relais_store_opts_t *opts, bool reader)
{
    s_require (dir && *dir, "relais_store_new needs a folder");
    relais_store_t *self = (relais_store_t *) calloc (1, sizeof *self);
    if (!self) {
        relais_error ("relais_store: %s: out of memory", dir);
        return NULL;
    }
    self->reader = reader;
    self->dir = strdup (dir);
    self->wal_fd = -1;
    self->readers_fd = -1;
    self->wal_size = opts && opts->wal_size? opts->wal_size: S_WAL_SIZE_DEFAULT;
    if (self->wal_size < S_WAL_SIZE_MIN)
        self->wal_size = S_WAL_SIZE_MIN;
    if (self->wal_size > S_WAL_SIZE_MAX)
        self->wal_size = S_WAL_SIZE_MAX;
    self->map_size = opts && opts->map_size? opts->map_size: S_MAP_SIZE_DEFAULT;
    self->map_max = opts && opts->map_max? opts->map_max: S_MAP_MAX_DEFAULT;
    if (self->map_max < self->map_size)
        self->map_max = self->map_size;
    if (!self->dir || pthread_rwlock_init (&self->remap, NULL)) {
        relais_error ("relais_store: %s: out of memory", dir);
        relais_store_destroy (&self);
        return NULL;
    }
    self->rwlock_ok = true;

    //  Names are the service's code, not input: a bad list is a bug
    static const char *const internal [] = { "meta", "log", "ckpt" };
    for (int i = 0; opts && opts->dbs && opts->dbs [i]; i++) {
        const char *name = opts->dbs [i];
        s_require (i < RELAIS_STORE_MAX_DBS, "more than %d databases", RELAIS_STORE_MAX_DBS);
        s_require (*name, "empty database name");
        for (int j = 0; j < 3; j++)
            s_require (strcmp (name, internal [j]) != 0, "database name '%s' is reserved", name);
        for (int j = 0; j < i; j++)
            s_require (strcmp (name, self->names [j]) != 0, "database '%s' listed twice", name);
        self->names [i] = strdup (name);
        self->ndbs = i + 1;
        if (!self->names [i]) {
            relais_error ("relais_store: %s: out of memory", dir);
            relais_store_destroy (&self);
            return NULL;
        }
    }

    int rc = s_mkdir_p (dir);
    if (rc) {
        relais_error ("relais_store: %s: cannot create folder: %s", dir, strerror (-rc));
        relais_store_destroy (&self);
        return NULL;
    }
    if (reader && (self->readers_fd = s_readers_lock (dir, false)) == -EBUSY) {
        relais_store_destroy (&self);
        return NULL;
    }
    if (s_wal_lock (self) || s_open_env (self) || (!self->readonly && s_wal_open (self))) {
        relais_store_destroy (&self);
        return NULL;
    }
    s_reader_unlock (self);
    if (!self->readonly) {
        char path [4200];
        snprintf (path, sizeof path, "%s/compact.pending", dir);
        self->compact_pending = access (path, F_OK) == 0;
    }
    relais_debug ("store open dir=%s map_size=%zu dbs=%d", dir, self->map_size, self->ndbs);
    return self;
}

relais_store_t *
relais_store_new (const char *dir, const relais_store_opts_t *opts)
{
    return s_store_new (dir, opts, false);
}

relais_store_t *
relais_store_open_reader (const char *dir, const relais_store_opts_t *opts)
{
    return s_store_new (dir, opts, true);
}

void
relais_store_destroy (relais_store_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    relais_store_t *self = *self_p;
    s_require (!self->writing, "relais_store_destroy inside a write");
    //  What the checkpoint cannot commit stays in the WAL for the next open
    if (self->parent && !self->broken)
        s_checkpoint_settled (self);
    if (self->parent)
        mdb_txn_abort (self->parent);
    if (self->wal_fd >= 0)
        close (self->wal_fd);
    free (self->ops);
    if (self->env)
        mdb_env_close (self->env);
    s_readers_unlock (&self->readers_fd);
    for (int i = 0; i < self->ndbs; i++)
        free (self->names [i]);
    if (self->rwlock_ok)
        pthread_rwlock_destroy (&self->remap);
    free (self->dir);
    free (self);
    *self_p = NULL;
}

//  ---------------------------------------------------------------------------
//  Transactions

static void
s_hooks_begin (relais_store_t *self)
{
    for (int i = 0; i < self->nhooks; i++)
        if (self->hooks [i].begin)
            self->hooks [i].begin (self->hooks [i].arg);
}

static void
s_hooks_commit (relais_store_t *self)
{
    for (int i = 0; i < self->nhooks; i++)
        if (self->hooks [i].commit)
            self->hooks [i].commit (self->hooks [i].arg);
}

static void
s_hooks_abort (relais_store_t *self)
{
    for (int i = 0; i < self->nhooks; i++)
        if (self->hooks [i].abort)
            self->hooks [i].abort (self->hooks [i].arg);
}

//  Pick up a map grown by another process (MDB_MAP_RESIZED). Exclusive:
//  no read transaction of this process may hold the old map.
static int
s_adopt_map (relais_store_t *self)
{
    pthread_rwlock_wrlock (&self->remap);
    int rc = mdb_env_set_mapsize (self->env, 0);
    pthread_rwlock_unlock (&self->remap);
    if (rc) {
        relais_error ("relais_store: %s: cannot adopt the new map size: %s",
                      self->dir, mdb_strerror (rc));
        return s_map_rc (rc);
    }
    s_refresh_map_size (self);
    return 0;
}

//  Double the map, up to map_max. Called with no write transaction open.
//  Returns 0, or RELAIS_EFULL at the cap.
static int
s_grow_map (relais_store_t *self)
{
    if (self->map_size >= self->map_max) {
        relais_error ("relais_store: %s: map full at its cap of %zu bytes",
                      self->dir, self->map_max);
        return RELAIS_EFULL;
    }
    size_t size = self->map_size > self->map_max / 2? self->map_max: self->map_size * 2;
    pthread_rwlock_wrlock (&self->remap);
    int rc = mdb_env_set_mapsize (self->env, size);
    pthread_rwlock_unlock (&self->remap);
    if (rc) {
        relais_error ("relais_store: %s: cannot grow the map to %zu bytes: %s",
                      self->dir, size, mdb_strerror (rc));
        return rc == ENOMEM || rc == ENOSPC? RELAIS_EFULL: s_map_rc (rc);
    }
    s_refresh_map_size (self);
    self->resizes++;
    relais_notice ("store grow dir=%s map_size=%zu resizes=%d", self->dir,
                   self->map_size, self->resizes);
    return 0;
}

//  ---------------------------------------------------------------------------
//  The write-ahead log
//
//  An ack costs one flush. Each write's operations (put or del, database
//  name, key, value) become one record appended to <dir>/wal, a file
//  zero-filled once at its full size, so that fdatasync has only data to
//  flush (no size or extent change, hence no journal commit). Writes go
//  into one long-lived LMDB transaction (the "parent") that is committed -
//  LMDB's own two durable flushes - only at a checkpoint: when the WAL is
//  full, from relais_store_checkpoint (pub heartbeat, sub tick,
//  relais_store_tick), before compaction or map growth, at close. A write
//  that fails is taken back by aborting the parent and applying the
//  records since the checkpoint again (s_rollback). A checkpoint records the number of the last record it holds
//  ("wal_lsn" in meta); records then start again at offset 0 with the
//  next number. At open, the records that follow wal_lsn - contiguous from
//  offset 0, checksums valid, numbers consecutive - are applied again and
//  checkpointed, so a crash loses nothing that was acked, and a record
//  torn by the crash (never acked) is where the walk stops.
//
//  Record: magic "RWAL", payload bytes (u32), number (u64), operations
//  (u32), CRC-32C (u32) of the 16 bytes after the magic and the payload;
//  then the operations: kind (u8: 1 put, 2 del), name length (u8), key
//  length (u16), value length (u32), name, key, value. Little-endian.


static const char s_wal_lsn_key [] = "wal_lsn";

static void
s_le32 (uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p [i] = (uint8_t) (v >> (8 * i));
}

static void
s_le64 (uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p [i] = (uint8_t) (v >> (8 * i));
}

static uint32_t
s_get_le32 (const uint8_t *p)
{
    return (uint32_t) p [0] | (uint32_t) p [1] << 8 | (uint32_t) p [2] << 16 | (uint32_t) p [3] << 24;
}

static uint64_t
s_get_le64 (const uint8_t *p)
{
    return (uint64_t) s_get_le32 (p) | (uint64_t) s_get_le32 (p + 4) << 32;
}

//  CRC-32C (Castagnoli): the SSE 4.2 instruction where the CPU has it (a
//  record is about a kilobyte per report), a table otherwise
static uint32_t s_crc_table [256];
static bool s_crc_hw;
static pthread_once_t s_crc_once = PTHREAD_ONCE_INIT;

static void
s_crc_init (void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1? (c >> 1) ^ 0x82f63b78u: c >> 1;
        s_crc_table [i] = c;
    }
#if defined (__x86_64__)
    __builtin_cpu_init ();
    s_crc_hw = __builtin_cpu_supports ("sse4.2");
#endif
}

#if defined (__x86_64__)
__attribute__ ((target ("sse4.2")))
static uint32_t
s_crc32c_hw (uint32_t crc, const uint8_t *p, size_t n)
{
    uint64_t c = crc;
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t word;
        memcpy (&word, p, 8);
        c = __builtin_ia32_crc32di (c, word);
    }
    uint32_t c32 = (uint32_t) c;
    for (; n; p++, n--)
        c32 = __builtin_ia32_crc32qi (c32, *p);
    return c32;
}
#endif

//  Continue a CRC-32C (start with 0xffffffff, finish with ~)
static uint32_t
s_crc32c (uint32_t crc, const uint8_t *p, size_t n)
{
    pthread_once (&s_crc_once, s_crc_init);
#if defined (__x86_64__)
    if (s_crc_hw)
        return s_crc32c_hw (crc, p, n);
#endif
    for (; n; p++, n--)
        crc = s_crc_table [(crc ^ *p) & 0xff] ^ (crc >> 8);
    return crc;
}

static uint32_t
s_record_crc (const uint8_t *record, size_t payload)
{
    uint32_t crc = s_crc32c (0xffffffffu, record + 4, 16);
    return ~s_crc32c (crc, record + S_WAL_HEADER, payload);
}

//  Add one successful operation to the current write's record
static int
s_op_record (relais_txn_t *txn, int kind, MDB_dbi dbi, const void *key, size_t klen,
             const void *val, size_t vlen)
{
    relais_store_t *self = txn->store;
    s_require (dbi < sizeof self->dbi_name / sizeof self->dbi_name [0] && self->dbi_name [dbi],
               "database handle %u has no name", (unsigned) dbi);
    const char *name = self->dbi_name [dbi];
    size_t nlen = self->dbi_name_len [dbi];
    if (vlen > UINT32_MAX)
        return s_op_failed (txn, MDB_BAD_VALSIZE);
    size_t need = S_OP_HEADER + nlen + klen + vlen;
    if (self->ops_len + need > self->ops_cap) {
        size_t cap = self->ops_cap? self->ops_cap: 64 << 10;
        while (self->ops_len + need > cap)
            cap *= 2;
        uint8_t *ops = (uint8_t *) realloc (self->ops, cap);
        if (!ops)
            return s_op_failed (txn, ENOMEM);
        self->ops = ops;
        self->ops_cap = cap;
    }
    uint8_t *p = self->ops + self->ops_len;
    p [0] = (uint8_t) kind;
    p [1] = (uint8_t) nlen;
    p [2] = (uint8_t) klen;
    p [3] = (uint8_t) (klen >> 8);
    s_le32 (p + 4, (uint32_t) vlen);
    memcpy (p + S_OP_HEADER, name, nlen);
    if (klen)
        memcpy (p + S_OP_HEADER + nlen, key, klen);
    if (vlen)
        memcpy (p + S_OP_HEADER + nlen + klen, val, vlen);
    self->ops_len += need;
    self->ops_count++;
    return 0;
}

//  Names met while applying records, with their handles in that txn
typedef struct {
    int count;
    struct { char name [256]; MDB_dbi dbi; } dbs [RELAIS_STORE_MAX_DBS + 8];
} s_dbi_cache_t;

static int
s_apply_dbi (MDB_txn *txn, s_dbi_cache_t *cache, const uint8_t *name, size_t nlen, MDB_dbi *dbi)
{
    for (int i = 0; i < cache->count; i++)
        if (strlen (cache->dbs [i].name) == nlen && memcmp (cache->dbs [i].name, name, nlen) == 0) {
            *dbi = cache->dbs [i].dbi;
            return 0;
        }
    if (cache->count == (int) (sizeof cache->dbs / sizeof cache->dbs [0]))
        return MDB_DBS_FULL;
    char *copy = cache->dbs [cache->count].name;
    memcpy (copy, name, nlen);
    copy [nlen] = 0;
    int rc = mdb_dbi_open (txn, copy, MDB_CREATE, dbi);
    if (rc == 0)
        cache->dbs [cache->count++].dbi = *dbi;
    return rc;
}

//  Apply one record's operations. Returns an LMDB code, or MDB_CORRUPTED
//  for operations that do not fit the record (its checksum was valid: a
//  bug, never input).
static int
s_apply_ops (MDB_txn *txn, s_dbi_cache_t *cache, const uint8_t *p, size_t size, uint32_t count)
{
    const uint8_t *end = p + size;
    for (uint32_t i = 0; i < count; i++) {
        if ((size_t) (end - p) < S_OP_HEADER)
            return MDB_CORRUPTED;
        size_t nlen = p [1], klen = (size_t) p [2] | (size_t) p [3] << 8;
        size_t vlen = s_get_le32 (p + 4);
        if ((size_t) (end - p) - S_OP_HEADER < nlen + klen
        ||  (size_t) (end - p) - S_OP_HEADER - nlen - klen < vlen || nlen == 0)
            return MDB_CORRUPTED;
        const uint8_t *name = p + S_OP_HEADER;
        MDB_val k = { klen, (void *) (name + nlen) };
        MDB_val v = { vlen, (void *) (name + nlen + klen) };
        MDB_dbi dbi;
        int rc = s_apply_dbi (txn, cache, name, nlen, &dbi);
        if (rc == 0 && p [0] == S_OP_PUT)
            rc = mdb_put (txn, dbi, &k, &v, 0);
        else
        if (rc == 0 && p [0] == S_OP_DEL) {
            rc = mdb_del (txn, dbi, &k, NULL);
            if (rc == MDB_NOTFOUND)
                rc = 0;
        }
        else
        if (rc == 0)
            rc = MDB_CORRUPTED;
        if (rc)
            return rc;
        p += S_OP_HEADER + nlen + klen + vlen;
    }
    return p == end? 0: MDB_CORRUPTED;
}

//  Apply (txn NULL: count) the records of buf that follow number after:
//  contiguous from offset 0, each with a valid checksum and the next number.
//  With skip_older the walk may start at any number up to after + 1, and
//  passes over the records up to after without applying them: a log read
//  beside its owner, who may have checkpointed again before the LMDB copy
//  it completes was taken. Sets *last to the last number applied (after
//  when none) and *used to the bytes walked. Returns an LMDB code.
static int
s_wal_apply (MDB_txn *txn, const uint8_t *buf, size_t size, uint64_t after,
             bool skip_older, uint64_t *last, size_t *used)
{
    s_dbi_cache_t cache;
    cache.count = 0;
    size_t off = 0;
    uint64_t lsn = after, prev = 0;
    int rc = 0;
    while (rc == 0 && size - off >= S_WAL_HEADER) {
        const uint8_t *h = buf + off;
        size_t payload = s_get_le32 (h + 4);
        uint64_t number = s_get_le64 (h + 8);
        bool next = off? number == prev + 1: skip_older? number <= after + 1: number == after + 1;
        if (s_get_le32 (h) != S_WAL_MAGIC || payload > size - off - S_WAL_HEADER
        ||  !next || s_get_le32 (h + 20) != s_record_crc (h, payload))
            break;
        if (number > after && txn)  //  NULL: only count them
            rc = s_apply_ops (txn, &cache, h + S_WAL_HEADER, payload, s_get_le32 (h + 16));
        if (rc == 0) {
            if (number > after)
                lsn = number;
            prev = number;
            off += S_WAL_HEADER + payload;
        }
    }
    *last = lsn;
    *used = off;
    return rc;
}

static uint64_t
s_txn_wal_lsn (MDB_txn *txn, MDB_dbi meta)
{
    MDB_val k = { sizeof s_wal_lsn_key - 1, (void *) s_wal_lsn_key };
    MDB_val v;
    if (mdb_get (txn, meta, &k, &v) || v.mv_size != 8)
        return 0;
    return relais_key_to_u64 (v.mv_data);
}

static int
s_txn_set_wal_lsn (MDB_txn *txn, MDB_dbi meta, uint64_t lsn)
{
    uint8_t data [8];
    relais_u64_to_key (lsn, data);
    MDB_val k = { sizeof s_wal_lsn_key - 1, (void *) s_wal_lsn_key };
    MDB_val v = { 8, data };
    return mdb_put (txn, meta, &k, &v, 0);
}

//  Read count bytes at off, all of them. Returns 0 or -errno.
static int
s_pread_all (int fd, void *buf, size_t count, off_t off)
{
    for (size_t done = 0; done < count; ) {
        ssize_t n = pread (fd, (char *) buf + done, count - done, off + (off_t) done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0? -errno: -EIO;
        done += (size_t) n;
    }
    return 0;
}

static int
s_pwrite_all (int fd, const void *buf, size_t count, off_t off)
{
    for (size_t done = 0; done < count; ) {
        ssize_t n = pwrite (fd, (const char *) buf + done, count - done, off + (off_t) done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0? -errno: -ENOSPC;
        done += (size_t) n;
    }
    return 0;
}

//  Read the whole of <dir>/wal into *buf (malloc'd, NULL when empty or
//  absent). Returns 0 (absent: size 0) or -errno.
static int
s_read_wal_file (const char *dir, uint8_t **buf, size_t *size)
{
    char path [4200];
    snprintf (path, sizeof path, "%s/wal", dir);
    *buf = NULL;
    *size = 0;
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT? 0: -errno;
    struct stat st;
    int rc = fstat (fd, &st)? -errno: 0;
    if (rc == 0 && st.st_size > 0) {
        *buf = (uint8_t *) malloc ((size_t) st.st_size);
        rc = *buf? s_pread_all (fd, *buf, (size_t) st.st_size, 0): -ENOMEM;
        if (rc == 0)
            *size = (size_t) st.st_size;
    }
    close (fd);
    if (rc) {
        free (*buf);
        *buf = NULL;
    }
    return rc;
}

//  Zero bytes [from, to) of fd. Returns 0 or -errno.
static int
s_zero_fill (int fd, size_t from, size_t to)
{
    static const uint8_t zeros [64 << 10];
    for (size_t off = from; off < to; ) {
        size_t n = to - off < sizeof zeros? to - off: sizeof zeros;
        int rc = s_pwrite_all (fd, zeros, n, (off_t) off);
        if (rc)
            return rc;
        off += n;
    }
    return 0;
}

//  Begin the parent transaction when none is open
static int
s_parent_begin (relais_store_t *self)
{
    int resized = 0;
    while (!self->parent) {
        int rc = mdb_txn_begin (self->env, NULL, 0, &self->parent);
        if (rc == 0) {
            self->owner = pthread_self ();
            break;
        }
        self->parent = NULL;
        if (rc == MDB_MAP_RESIZED && resized++ < S_RESIZED_RETRIES) {
            if ((rc = s_adopt_map (self)))
                return rc;
            continue;
        }
        relais_error ("relais_store: %s: cannot begin a write: %s", self->dir, mdb_strerror (rc));
        return rc == MDB_PANIC || rc == EIO? RELAIS_EFATAL: s_map_rc (rc);
    }
    return 0;
}

//  The parent was lost (a failed checkpoint): begin it again and apply the
//  records written since the checkpoint. Returns 0 or RELAIS_EFATAL.
static int
s_parent_restore (relais_store_t *self)
{
    s_require (!self->parent, "restore with a parent open");
    uint8_t *buf = NULL;
    int rc = 0;
    if (self->wal_off) {
        buf = (uint8_t *) malloc (self->wal_off);
        rc = buf? s_pread_all (self->wal_fd, buf, self->wal_off, 0): -ENOMEM;
    }
    for (int attempt = 0; rc == 0; attempt++) {
        if ((rc = s_parent_begin (self)))
            break;
        uint64_t last = 0;
        size_t used = 0;
        int mrc = self->wal_off? s_wal_apply (self->parent, buf, self->wal_off,
                                              s_txn_wal_lsn (self->parent, self->meta), false,
                                              &last, &used): 0;
        if (mrc == 0 && self->wal_off && (used != self->wal_off || last != self->wal_lsn))
            mrc = MDB_CORRUPTED;
        if (mrc == 0)
            break;
        mdb_txn_abort (self->parent);
        self->parent = NULL;
        if (mrc != MDB_MAP_FULL || attempt > 2 || s_grow_map (self)) {
            relais_error ("relais_store: %s: cannot apply the write-ahead log again: %s",
                          self->dir, mdb_strerror (mrc));
            rc = RELAIS_EFATAL;
        }
    }
    free (buf);
    if (rc) {
        self->broken = true;
        return RELAIS_EFATAL;
    }
    self->parent_dirty = self->wal_off > 0;
    return 0;
}

//  Commit the parent durably and start the WAL again at offset 0. Returns
//  0; S_GROWN when the map was full and has been grown (the parent is
//  restored: what the caller added since its last record is gone, it must
//  try again); RELAIS_EFULL (disk or map cap; restored); RELAIS_EFATAL.
static int
s_checkpoint (relais_store_t *self)
{
    if (self->broken)
        return RELAIS_EFATAL;           //  its parent, if any, only serves reads
    if (!self->parent)
        return 0;
    if (!self->parent_dirty) {
        mdb_txn_abort (self->parent);
        self->parent = NULL;
        return 0;
    }
    int rc = s_txn_set_wal_lsn (self->parent, self->meta, self->wal_lsn);
    if (rc == 0)
        rc = mdb_txn_commit (self->parent);
    else
        mdb_txn_abort (self->parent);
    self->parent = NULL;
    if (rc == 0) {
        self->wal_off = 0;
        self->parent_dirty = false;
        self->checkpoints++;
        return 0;
    }
    //  Nothing of the parent is on disk: LMDB holds the previous
    //  checkpoint, the WAL everything since
    if (rc == MDB_MAP_FULL) {
        int grown = s_grow_map (self);
        int restored = s_parent_restore (self);
        return restored? restored: grown? grown: S_GROWN;
    }
    if (rc == ENOSPC || rc == EDQUOT || (rc == EIO && s_short_write_on_full_disk (self))) {
        relais_error ("relais_store: %s: disk full on checkpoint: %s", self->dir, mdb_strerror (rc));
        int restored = s_parent_restore (self);
        return restored? restored: RELAIS_EFULL;
    }
    relais_error ("relais_store: %s: checkpoint failed, store can no longer be trusted: %s",
                  self->dir, mdb_strerror (rc));
    //  No write is acked any more; reads (a fetch, until the service
    //  exits) still see every acked write, from the log
    s_parent_restore (self);
    self->broken = true;
    return RELAIS_EFATAL;
}

//  s_checkpoint, once more after a map growth. Returns 0 or a negative code.
static int
s_checkpoint_settled (relais_store_t *self)
{
    int rc = s_checkpoint (self);
    if (rc == S_GROWN)
        rc = s_checkpoint (self);
    return rc == S_GROWN? 0: rc;
}

//  Make the current write's record durable. Returns 0, RELAIS_EFULL (not
//  written; the store goes on) or RELAIS_EFATAL (maybe written, maybe not).
static int
s_wal_append (relais_store_t *self)
{
    uint8_t *h = self->ops;
    size_t payload = self->ops_len - S_WAL_HEADER;
    s_le32 (h, S_WAL_MAGIC);
    s_le32 (h + 4, (uint32_t) payload);
    s_le64 (h + 8, self->wal_lsn + 1);
    s_le32 (h + 16, self->ops_count);
    s_le32 (h + 20, s_record_crc (h, payload));
    int rc = s_pwrite_all (self->wal_fd, h, self->ops_len, (off_t) self->wal_off);
    if (rc == -ENOSPC || rc == -EDQUOT) {
        relais_error ("relais_store: %s: disk full writing the write-ahead log", self->dir);
        return RELAIS_EFULL;
    }
    if (rc == 0 && fdatasync (self->wal_fd))
        rc = -errno;
    if (rc) {
        //  After a failed flush the kernel may have dropped the pages
        //  ("fsyncgate"): what is on disk is unknown, nothing may be acked
        relais_error ("relais_store: %s: write-ahead log flush failed, store can no longer be trusted: %s",
                      self->dir, strerror (-rc));
        self->broken = true;
        return RELAIS_EFATAL;
    }
    self->wal_off += self->ops_len;
    self->wal_lsn++;
    self->records++;
    return 0;
}

//  Open and lock <dir>/wal, before LMDB opens the environment: one
//  writer only (a second one would apply or append records over the first
//  one's; and LMDB must not open one environment twice in a process).
static int
s_wal_lock (relais_store_t *self)
{
    char path [4200];
    snprintf (path, sizeof path, "%s/wal", self->dir);
    self->wal_fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (self->wal_fd < 0) {
        int rc = -errno;
        relais_error ("relais_store: %s: cannot open: %s", path, strerror (-rc));
        return rc;
    }
    //  A reader recovering a stopped service's log holds the lock for a
    //  few milliseconds: the owner waits that long, not for another owner
    int rc = 0;
    for (int attempt = 0; attempt < (self->reader? 1: 300); attempt++) {
        if (flock (self->wal_fd, LOCK_EX | LOCK_NB) == 0) {
            rc = 0;
            break;
        }
        rc = -errno;
        if (rc != -EWOULDBLOCK)
            break;
        usleep (10000);
    }
    if (rc) {
        if (rc == -EWOULDBLOCK && self->reader) {
            //  Its owner runs: read what it last checkpointed
            close (self->wal_fd);
            self->wal_fd = -1;
            self->readonly = true;
            relais_notice ("store open read-only dir=%s: its owner runs; reads show its last checkpoint",
                           self->dir);
            return 0;
        }
        relais_error ("relais_store: %s: the store is already open for writing (another process, or this one)",
                      self->dir);
        return rc == -EWOULDBLOCK? -EBUSY: rc;
    }
    return 0;
}

//  A reader that found no owner has applied the log like a restart would;
//  it lets go of the lock at once, so that the owner can start, and reads
//  on (read-only) what it committed
static void
s_reader_unlock (relais_store_t *self)
{
    if (!self->reader || self->readonly)
        return;
    close (self->wal_fd);
    self->wal_fd = -1;
    self->readonly = true;
}

//  Size <dir>/wal (zero-filled to its size the first time) and apply what
//  follows the last checkpoint. Returns 0 or a negative code.
static int
s_wal_open (relais_store_t *self)
{
    char path [4200];
    snprintf (path, sizeof path, "%s/wal", self->dir);
    struct stat st;
    if (fstat (self->wal_fd, &st))
        return -errno;
    size_t size = (size_t) st.st_size;
    bool fresh = size == 0;             //  created now: nothing to apply
    if (size < self->wal_size) {
        int rc = s_zero_fill (self->wal_fd, size, self->wal_size);
        if (rc == 0 && fsync (self->wal_fd))
            rc = -errno;
        if (rc) {
            relais_error ("relais_store: %s: cannot size the write-ahead log: %s", path, strerror (-rc));
            return rc == -ENOSPC || rc == -EDQUOT? RELAIS_EFULL: rc;
        }
        int dfd = open (self->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync (dfd);
            close (dfd);
        }
    }
    else
        self->wal_size = size;          //  an earlier, larger setting: its records count
    if (fresh) {
        MDB_txn *txn;
        int mrc = mdb_txn_begin (self->env, NULL, MDB_RDONLY, &txn);
        if (mrc)
            return s_map_rc (mrc);
        self->wal_lsn = s_txn_wal_lsn (txn, self->meta);
        mdb_txn_abort (txn);
        return 0;
    }
    uint8_t *buf = (uint8_t *) malloc (self->wal_size);
    int rc = buf? s_pread_all (self->wal_fd, buf, self->wal_size, 0): -ENOMEM;
    for (int attempt = 0; rc == 0; attempt++) {
        MDB_txn *txn;
        int mrc = mdb_txn_begin (self->env, NULL, 0, &txn);
        if (mrc) {
            rc = s_map_rc (mrc);
            break;
        }
        uint64_t ckpt = s_txn_wal_lsn (txn, self->meta), last = 0;
        size_t used = 0;
        mrc = s_wal_apply (txn, buf, self->wal_size, ckpt, false, &last, &used);
        if (mrc == 0 && last > ckpt)
            mrc = s_txn_set_wal_lsn (txn, self->meta, last);
        if (mrc == 0 && last > ckpt)
            mrc = mdb_txn_commit (txn);
        else
            mdb_txn_abort (txn);
        if (mrc == 0) {
            if (last > ckpt)
                relais_notice ("store recovered dir=%s records=%llu bytes=%zu", self->dir,
                               (unsigned long long) (last - ckpt), used);
            self->wal_lsn = last;
            break;
        }
        if (mrc == MDB_MAP_FULL && attempt < 3 && s_grow_map (self) == 0)
            continue;
        relais_error ("relais_store: %s: cannot apply the write-ahead log: %s",
                      self->dir, mdb_strerror (mrc));
        rc = mrc == MDB_MAP_FULL? RELAIS_EFULL: s_map_rc (mrc);
    }
    free (buf);
    return rc;
}

//  A write of a thousand reports leaves a large buffer: give it back
static void
s_ops_trim (relais_store_t *self)
{
    if (self->ops_cap > ((size_t) 1 << 20)) {
        free (self->ops);
        self->ops = NULL;
        self->ops_cap = 0;
    }
}

//  Take back what a failed write left in the parent: abort it, apply the
//  log's records again, and checkpoint them, so that the next rollback
//  has nothing old to apply (a stream of failing writes costs what a
//  commit per write used to, never a replay of the whole log each).
//  Returns 0 (no parent, or a consistent one), RELAIS_EFULL (consistent
//  parent, not committed: disk full), RELAIS_EFATAL.
static int
s_rollback (relais_store_t *self)
{
    if (self->parent)
        mdb_txn_abort (self->parent);
    self->parent = NULL;
    self->parent_dirty = false;
    if (self->wal_off == 0)
        return 0;
    int rc = s_parent_restore (self);
    return rc? rc: s_checkpoint_settled (self);
}

int
relais_store_write (relais_store_t *self, relais_write_fn *fn, void *arg)
{
    s_require (self && fn, "relais_store_write needs a store and a callback");
    s_require (!self->writing, "nested relais_store_write (would deadlock on LMDB's writer lock)");
    s_require (s_reading == 0, "relais_store_write inside relais_store_read");
    s_require (!self->parent || pthread_equal (self->owner, pthread_self ()),
               "relais_store_write from a second thread");
    if (self->readonly) {
        relais_error ("relais_store: %s: opened read-only beside its owner: no write", self->dir);
        return -EROFS;
    }
    bool txn_retried = false;
    while (true) {
        if (self->broken)
            return RELAIS_EFATAL;
        int rc = s_parent_begin (self);
        if (rc)
            return rc;
        //  The callback writes into the parent itself: no nested LMDB
        //  transaction (each one mallocs 3 MiB of lists); a failed write
        //  is taken back by s_rollback
        relais_txn_t txn = { .store = self, .txn = self->parent, .logging = true };
        self->ops_len = S_WAL_HEADER;   //  the record's header goes first
        self->ops_count = 0;
        self->writing = true;
        s_hooks_begin (self);
        rc = fn (&txn, arg);
        if (rc == 0 && !txn.map_full && !txn.error && txn.log_dirty)
            s_log_flush (&txn);         //  a failure lands in txn.error / map_full
        //  MAP_FULL wins over whatever fn made of it: the map grows and fn
        //  runs again. Any other failed operation makes the txn fail even
        //  if fn ignored it, so nothing half-done is committed.
        if (!txn.map_full && rc == 0 && txn.error)
            rc = txn.error;
        self->writing = false;
        //  Too many pages changed since the checkpoint: the rollback below
        //  checkpoints, then the write runs once more on an empty parent
        if (txn.txn_full && !txn.map_full && !txn_retried) {
            txn_retried = true;
            int back = s_rollback (self);
            s_hooks_abort (self);
            if (back)
                return back;
            continue;
        }
        if (txn.map_full || rc) {
            //  A failed LMDB operation leaves the txn unusable: roll back
            //  then too, even with nothing written
            int back = self->ops_count || txn.map_full || txn.error? s_rollback (self): 0;
            s_hooks_abort (self);
            if (back == RELAIS_EFATAL)
                return back;
            if (!txn.map_full)
                return rc;
            if (back)
                return back;
            //  LMDB grows the map with no write transaction open
            if (!self->parent && (rc = s_grow_map (self)))
                return rc;
            continue;
        }
        if (self->ops_count == 0) {
            s_hooks_commit (self);      //  nothing changed: nothing to flush
            return 0;
        }
        self->parent_dirty = true;
        if (self->ops_len <= self->wal_size - self->wal_off) {
            if ((rc = s_wal_append (self)) == 0) {
                s_hooks_commit (self);
                s_ops_trim (self);
                return 0;
            }
            //  Not durable: take the write out of the parent again
            if (rc == RELAIS_EFATAL) {
                mdb_txn_abort (self->parent);
                self->parent = NULL;
            }
            else
            if (s_rollback (self) == RELAIS_EFATAL)
                rc = RELAIS_EFATAL;
            s_hooks_abort (self);
            return rc;
        }
        //  The WAL is full (or the write alone is larger than it): the
        //  checkpoint makes this write durable with everything before it
        rc = s_checkpoint (self);
        s_ops_trim (self);
        if (rc == 0) {
            s_hooks_commit (self);
            return 0;
        }
        s_hooks_abort (self);
        if (rc != S_GROWN)
            return rc;
    }
}

//  LMDB 0.9.24 turns a short pwrite of data pages into EIO (mdb_page_flush),
//  which is what a disk that fills up in the middle of a flush gives. The
//  meta page was not written, so the store is intact and still usable -
//  unless LMDB flagged it fatal, which the next write txn reports as
//  MDB_PANIC. So: EIO with little space left and no panic is a full disk.
#define S_NEARLY_FULL   (64u << 20)

static bool
s_short_write_on_full_disk (relais_store_t *self)
{
    struct statvfs fs;
    if (statvfs (self->dir, &fs) != 0)
        return false;
    if ((uint64_t) fs.f_bavail * fs.f_frsize >= S_NEARLY_FULL)
        return false;
    MDB_txn *probe;
    int rc = mdb_txn_begin (self->env, NULL, 0, &probe);
    if (rc)
        return false;
    mdb_txn_abort (probe);
    return true;
}

int
relais_store_read (relais_store_t *self, relais_read_fn *fn, void *arg)
{
    s_require (self && fn, "relais_store_read needs a store and a callback");
    //  On the owner's thread, the parent holds what was acked since the
    //  checkpoint: read through it (another thread sees the checkpoint)
    if (self->parent && pthread_equal (self->owner, pthread_self ())) {
        s_require (!self->writing, "relais_store_read inside relais_store_write");
        relais_txn_t txn = { .store = self, .txn = self->parent, .rdonly = true };
        s_reading++;
        int rc = fn (&txn, arg);
        s_reading--;
        return rc;
    }
    int resized = 0;
    while (true) {
        pthread_rwlock_rdlock (&self->remap);
        MDB_txn *mtxn;
        int rc = mdb_txn_begin (self->env, NULL, MDB_RDONLY, &mtxn);
        if (rc) {
            pthread_rwlock_unlock (&self->remap);
            if (rc == MDB_MAP_RESIZED && resized++ < S_RESIZED_RETRIES) {
                if ((rc = s_adopt_map (self)))
                    return rc;
                continue;
            }
            relais_error ("relais_store: %s: cannot begin a read: %s", self->dir, mdb_strerror (rc));
            return s_map_rc (rc);
        }
        relais_txn_t txn = { .store = self, .txn = mtxn, .rdonly = true };
        s_reading++;
        rc = fn (&txn, arg);
        s_reading--;
        mdb_txn_abort (mtxn);
        pthread_rwlock_unlock (&self->remap);
        return rc;
    }
}

void
relais_store_hook (relais_store_t *self, relais_txn_hook_fn *begin,
                   relais_txn_hook_fn *commit, relais_txn_hook_fn *abort_fn,
                   void *arg)
{
    s_require (self, "relais_store_hook needs a store");
    s_require (self->nhooks < S_MAX_HOOKS, "more than %d hooks", S_MAX_HOOKS);
    s_require (!self->writing, "relais_store_hook inside a write");
    self->hooks [self->nhooks++] = (s_hook_t) { begin, commit, abort_fn, arg };
}

int
relais_store_dbi (relais_store_t *self, const char *name)
{
    s_require (self && name, "relais_store_dbi needs a store and a name");
    for (int i = 0; i < self->ndbs; i++)
        if (strcmp (self->names [i], name) == 0)
            return i;
    return -1;
}

int
relais_store_tick (relais_store_t *self)
{
    s_require (self, "relais_store_tick needs a store");
    relais_store_checkpoint (self);
    //  A compaction that waited for readers (erased bytes still in
    //  data.mdb) runs once they are gone
    if (self->compact_pending && !self->writing && s_reading == 0 && !self->broken
    &&  relais_store_compact (self, NULL, NULL) == RELAIS_EFATAL)
        relais_error ("relais_store: %s: the postponed compaction failed", self->dir);
    int dead = 0;
    int rc = mdb_reader_check (self->env, &dead);
    if (rc) {
        relais_warning ("relais_store: %s: reader check failed: %s", self->dir, mdb_strerror (rc));
        return 0;
    }
    if (dead > 0)
        relais_notice ("store readers dir=%s cleared=%d", self->dir, dead);
    return dead;
}

int
relais_store_checkpoint (relais_store_t *self)
{
    s_require (self, "relais_store_checkpoint needs a store");
    if (!self->parent || self->writing || s_reading || !pthread_equal (self->owner, pthread_self ()))
        return 0;
    return s_checkpoint_settled (self);
}

void
relais_store_stats (relais_store_t *self, relais_store_stats_t *stats)
{
    s_require (self && stats, "relais_store_stats misuse");
    stats->wal_records = self->records;
    stats->wal_pending_bytes = self->wal_off;
    stats->wal_size = self->wal_size;
    stats->checkpoints = self->checkpoints;
}

size_t
relais_store_map_size (relais_store_t *self)
{
    s_require (self, "relais_store_map_size needs a store");
    return self->map_size;
}

int
relais_store_resizes (relais_store_t *self)
{
    s_require (self, "relais_store_resizes needs a store");
    return self->resizes;
}

//  ---------------------------------------------------------------------------
//  Key/value access

static int
s_put (relais_txn_t *txn, MDB_dbi dbi, const void *key, size_t klen,
       const void *val, size_t vlen, unsigned flags)
{
    if (txn->rdonly)
        return -EACCES;             //  what LMDB says of a put in a read txn
    MDB_val k = { klen, (void *) key };
    MDB_val v = { vlen, (void *) val };
    int rc = mdb_put (txn->txn, dbi, &k, &v, flags);
    if (rc)
        return s_op_failed (txn, rc);
    return txn->logging? s_op_record (txn, S_OP_PUT, dbi, key, klen, val, vlen): 0;
}

static int
s_get (relais_txn_t *txn, MDB_dbi dbi, const void *key, size_t klen,
       const void **val, size_t *vlen)
{
    MDB_val k = { klen, (void *) key };
    MDB_val v;
    int rc = mdb_get (txn->txn, dbi, &k, &v);
    if (rc)
        return s_map_rc (rc);
    if (val)
        *val = v.mv_data;
    if (vlen)
        *vlen = v.mv_size;
    return 0;
}

int
relais_txn_put (relais_txn_t *txn, int db, const void *key, size_t klen,
                const void *val, size_t vlen)
{
    MDB_dbi dbi = s_user_dbi (txn, db);
    return s_put (txn, dbi, key, klen, val, vlen, 0);
}

int
relais_txn_get (relais_txn_t *txn, int db, const void *key, size_t klen,
                const void **val, size_t *vlen)
{
    MDB_dbi dbi = s_user_dbi (txn, db);
    return s_get (txn, dbi, key, klen, val, vlen);
}

int
relais_txn_del (relais_txn_t *txn, int db, const void *key, size_t klen)
{
    MDB_dbi dbi = s_user_dbi (txn, db);
    if (txn->rdonly)
        return -EACCES;
    MDB_val k = { klen, (void *) key };
    int rc = mdb_del (txn->txn, dbi, &k, NULL);
    if (rc == MDB_NOTFOUND)
        return RELAIS_ENOTFOUND;        //  an answer, not a failed txn
    if (rc)
        return s_op_failed (txn, rc);
    return txn->logging? s_op_record (txn, S_OP_DEL, dbi, key, klen, NULL, 0): 0;
}

int
relais_txn_scan (relais_txn_t *txn, int db, const void *from, size_t flen,
                 relais_scan_fn *fn, void *arg)
{
    MDB_dbi dbi = s_user_dbi (txn, db);
    s_require (fn, "relais_txn_scan needs a callback");
    MDB_cursor *cursor;
    int rc = mdb_cursor_open (txn->txn, dbi, &cursor);
    if (rc)
        return s_map_rc (rc);
    MDB_val k = { flen, (void *) from };
    MDB_val v;
    //  LMDB refuses an empty key: "from nothing" is the first key
    MDB_cursor_op op = from && flen? MDB_SET_RANGE: MDB_FIRST;
    int result = 0;
    while ((rc = mdb_cursor_get (cursor, &k, &v, op)) == 0) {
        op = MDB_NEXT;
        int step = fn (k.mv_data, k.mv_size, v.mv_data, v.mv_size, arg);
        if (step < 0)
            result = step;
        if (step != 0)
            break;
    }
    if (rc && rc != MDB_NOTFOUND)
        result = s_map_rc (rc);
    mdb_cursor_close (cursor);
    return result;
}

relais_store_t *
relais_txn_store (relais_txn_t *txn)
{
    s_require (txn, "relais_txn_store needs a txn");
    return txn->store;
}

//  ---------------------------------------------------------------------------
//  meta: uint64 big-endian values

static int
s_meta_get_raw (relais_txn_t *txn, const char *key, size_t klen, uint64_t *value)
{
    const void *data;
    size_t size;
    *value = 0;
    int rc = s_get (txn, txn->store->meta, key, klen, &data, &size);
    if (rc == RELAIS_ENOTFOUND)
        return 0;
    if (rc)
        return rc;
    if (size != 8) {
        relais_error ("relais_store: %s: meta value is %zu bytes, not 8", txn->store->dir, size);
        return RELAIS_EMALFORMED;
    }
    *value = relais_key_to_u64 (data);
    return 0;
}

static int
s_meta_set_raw (relais_txn_t *txn, const char *key, size_t klen, uint64_t value)
{
    uint8_t data [8];
    relais_u64_to_key (value, data);
    return s_put (txn, txn->store->meta, key, klen, data, 8, 0);
}

static size_t
s_user_meta_key (const char *name, char *key, size_t size)
{
    s_require (name && *name, "meta name is empty");
    //  Twice per submit in intake: a copy, not snprintf
    size_t len = strlen (name);
    s_require (len + 2 < size, "meta name longer than %d bytes", S_NAME_MAX);
    key [0] = 'u';
    key [1] = ':';
    memcpy (key + 2, name, len + 1);
    return len + 2;
}

int
relais_meta_get (relais_txn_t *txn, const char *name, uint64_t *value)
{
    s_require (txn && txn->txn && value, "relais_meta_get misuse");
    char key [S_NAME_MAX + 3];
    size_t klen = s_user_meta_key (name, key, sizeof key);
    return s_meta_get_raw (txn, key, klen, value);
}

int
relais_meta_set (relais_txn_t *txn, const char *name, uint64_t value)
{
    s_require (txn && txn->txn, "relais_meta_set misuse");
    char key [S_NAME_MAX + 3];
    size_t klen = s_user_meta_key (name, key, sizeof key);
    return s_meta_set_raw (txn, key, klen, value);
}

//  ---------------------------------------------------------------------------
//  The event log

int
relais_log_append (relais_txn_t *txn, uint64_t seq, const void *bytes, size_t size)
{
    s_require (txn && txn->txn && !txn->rdonly, "relais_log_append outside a write");
    s_require (bytes || size == 0, "relais_log_append: NULL bytes");
    uint64_t first, last;
    int rc = relais_log_bounds (txn, &first, &last);
    if (rc)
        return rc;
    s_require (seq == last + 1, "log append of seq %llu after %llu: the log must stay contiguous",
               (unsigned long long) seq, (unsigned long long) last);
    uint8_t key [8];
    relais_u64_to_key (seq, key);
    //  Keys only grow: MDB_APPEND fills pages instead of splitting them
    rc = s_put (txn, txn->store->log, key, 8, bytes, size, MDB_APPEND);
    if (rc == 0) {
        if (first == 0)
            txn->log_first = seq;
        txn->log_last = seq;
        txn->log_dirty = true;
    }
    return rc;
}

//  The txn's new log bounds into meta, in the same transaction as the
//  entries (relais_store_write calls it once, after the callback).
static int
s_log_flush (relais_txn_t *txn)
{
    int rc = s_meta_set_raw (txn, s_log_first_key, sizeof s_log_first_key - 1, txn->log_first);
    if (rc == 0)
        rc = s_meta_set_raw (txn, s_log_last_key, sizeof s_log_last_key - 1, txn->log_last);
    return rc;
}

int
relais_log_get (relais_txn_t *txn, uint64_t seq, const void **bytes, size_t *size)
{
    s_require (txn && txn->txn, "relais_log_get outside a txn");
    uint8_t key [8];
    relais_u64_to_key (seq, key);
    return s_get (txn, txn->store->log, key, 8, bytes, size);
}

int
relais_log_scan (relais_txn_t *txn, uint64_t from, relais_log_fn *fn, void *arg)
{
    s_require (txn && txn->txn && fn, "relais_log_scan misuse");
    MDB_cursor *cursor;
    int rc = mdb_cursor_open (txn->txn, txn->store->log, &cursor);
    if (rc)
        return s_map_rc (rc);
    uint8_t key [8];
    relais_u64_to_key (from, key);
    MDB_val k = { 8, key };
    MDB_val v;
    MDB_cursor_op op = MDB_SET_RANGE;
    int result = 0;
    while ((rc = mdb_cursor_get (cursor, &k, &v, op)) == 0) {
        op = MDB_NEXT;
        if (k.mv_size != 8) {
            //  Disk contents: refused, never asserted
            result = RELAIS_EMALFORMED;
            break;
        }
        int step = fn (relais_key_to_u64 (k.mv_data), v.mv_data, v.mv_size, arg);
        if (step < 0)
            result = step;
        if (step != 0)
            break;
    }
    if (rc && rc != MDB_NOTFOUND)
        result = s_map_rc (rc);
    mdb_cursor_close (cursor);
    return result;
}

int
relais_log_bounds (relais_txn_t *txn, uint64_t *first, uint64_t *last)
{
    s_require (txn && txn->txn && first && last, "relais_log_bounds misuse");
    if (!txn->log_known) {
        int rc = s_meta_get_raw (txn, s_log_first_key, sizeof s_log_first_key - 1, &txn->log_first);
        if (rc == 0)
            rc = s_meta_get_raw (txn, s_log_last_key, sizeof s_log_last_key - 1, &txn->log_last);
        if (rc)
            return rc;
        txn->log_known = true;
    }
    *first = txn->log_first;
    *last = txn->log_last;
    return 0;
}

//  ---------------------------------------------------------------------------
//  Subscriber checkpoints

int
relais_ckpt_get (relais_txn_t *txn, const char *source, uint64_t *seq)
{
    s_require (txn && txn->txn && source && *source && seq, "relais_ckpt_get misuse");
    size_t len = strlen (source);
    s_require (len <= S_NAME_MAX, "checkpoint source longer than %d bytes", S_NAME_MAX);
    const void *data;
    size_t size;
    *seq = 0;
    int rc = s_get (txn, txn->store->ckpt, source, len, &data, &size);
    if (rc == RELAIS_ENOTFOUND)
        return 0;
    if (rc)
        return rc;
    if (size != 8) {
        relais_error ("relais_store: %s: checkpoint is %zu bytes, not 8", txn->store->dir, size);
        return RELAIS_EMALFORMED;
    }
    *seq = relais_key_to_u64 (data);
    return 0;
}

int
relais_ckpt_set (relais_txn_t *txn, const char *source, uint64_t seq)
{
    s_require (txn && txn->txn && source && *source, "relais_ckpt_set misuse");
    size_t len = strlen (source);
    s_require (len <= S_NAME_MAX, "checkpoint source longer than %d bytes", S_NAME_MAX);
    uint8_t data [8];
    relais_u64_to_key (seq, data);
    return s_put (txn, txn->store->ckpt, source, len, data, 8, 0);
}

//  ---------------------------------------------------------------------------
//  Big-endian keys

void
relais_u64_to_key (uint64_t value, uint8_t key [8])
{
    for (int i = 7; i >= 0; i--) {
        key [i] = (uint8_t) (value & 0xff);
        value >>= 8;
    }
}

uint64_t
relais_key_to_u64 (const void *key)
{
    const uint8_t *bytes = (const uint8_t *) key;
    uint64_t value = 0;
    for (int i = 0; i < 8; i++)
        value = (value << 8) | bytes [i];
    return value;
}

//  ---------------------------------------------------------------------------
//  Backup and verification: operator tools that open an environment
//  another process may own, read-only, and never write to it.

//  Open dir's environment read-only, holding readers.lock shared in
//  *lock_fd until the caller closes both (s_close_readonly).
static int
s_open_readonly (const char *dir, MDB_env **env_p, int *lock_fd)
{
    *lock_fd = s_readers_lock (dir, false);
    if (*lock_fd == -EBUSY)
        return -EBUSY;
    MDB_env *env = NULL;
    int rc = mdb_env_create (&env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs (env, RELAIS_STORE_MAX_DBS + 3);
    if (rc == 0)
        rc = mdb_env_set_maxreaders (env, S_MAX_READERS);
    if (rc == 0)
        rc = mdb_env_open (env, dir, MDB_RDONLY | MDB_NOTLS, 0600);
    if (rc)
        relais_error ("relais_store: %s: cannot open read-only: %s", dir, mdb_strerror (rc));
    rc = rc? s_map_rc (rc): s_lock_current (dir, env);
    if (rc) {
        if (env)
            mdb_env_close (env);
        s_readers_unlock (lock_fd);
        return rc;
    }
    *env_p = env;
    return 0;
}

static void
s_close_readonly (MDB_env *env, int *lock_fd)
{
    mdb_env_close (env);
    s_readers_unlock (lock_fd);
}

static int
s_u64_at (MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t *value)
{
    MDB_val key = { strlen (name), (void *) name };
    MDB_val val;
    int rc = mdb_get (txn, dbi, &key, &val);
    if (rc == MDB_NOTFOUND) {
        *value = 0;
        return 0;
    }
    if (rc)
        return s_map_rc (rc);
    if (val.mv_size != 8)
        return RELAIS_EMALFORMED;
    *value = relais_key_to_u64 (val.mv_data);
    return 0;
}

int
relais_store_verify (const char *dir, relais_store_info_t *info)
{
    relais_store_info_t local;
    if (!info)
        info = &local;
    memset (info, 0, sizeof *info);
    MDB_env *env;
    int lock_fd;
    int rc = s_open_readonly (dir, &env, &lock_fd);
    if (rc)
        return rc;
    MDB_txn *txn = NULL;
    MDB_dbi meta, log;
    MDB_cursor *cursor = NULL;
    rc = mdb_txn_begin (env, NULL, MDB_RDONLY, &txn);
    if (rc == 0)
        rc = mdb_dbi_open (txn, "meta", 0, &meta);
    if (rc == 0)
        rc = mdb_dbi_open (txn, "log", 0, &log);
    if (rc) {
        relais_error ("relais_store: %s: not a Relais store: %s", dir, mdb_strerror (rc));
        rc = rc == MDB_NOTFOUND? RELAIS_EMALFORMED: s_map_rc (rc);
        goto done;
    }
    uint64_t first_meta, last_meta;
    if ((rc = s_u64_at (txn, meta, s_schema_key, &info->schema_version))
    ||  (rc = s_u64_at (txn, meta, s_log_first_key, &first_meta))
    ||  (rc = s_u64_at (txn, meta, s_log_last_key, &last_meta))) {
        relais_error ("relais_store: %s: unreadable meta values", dir);
        goto done;
    }
    if (info->schema_version == 0 || info->schema_version > RELAIS_STORE_SCHEMA_VERSION) {
        relais_error ("relais_store: %s: schema version %llu is not one this program reads",
                      dir, (unsigned long long) info->schema_version);
        rc = RELAIS_EMALFORMED;
        goto done;
    }
    MDB_stat st;
    if ((rc = mdb_stat (txn, log, &st)) || (rc = mdb_cursor_open (txn, log, &cursor))) {
        rc = s_map_rc (rc);
        goto done;
    }
    info->log_entries = st.ms_entries;
    MDB_val key, val;
    if (st.ms_entries > 0) {
        if ((rc = mdb_cursor_get (cursor, &key, &val, MDB_FIRST)) || key.mv_size != 8) {
            rc = rc? s_map_rc (rc): RELAIS_EMALFORMED;
            goto done;
        }
        info->log_first = relais_key_to_u64 (key.mv_data);
        if ((rc = mdb_cursor_get (cursor, &key, &val, MDB_LAST)) || key.mv_size != 8) {
            rc = rc? s_map_rc (rc): RELAIS_EMALFORMED;
            goto done;
        }
        info->log_last = relais_key_to_u64 (key.mv_data);
    }
    if (info->log_entries > 0
    &&  info->log_last - info->log_first + 1 != info->log_entries) {
        relais_error ("relais_store: %s: log not contiguous: %llu entries from %llu to %llu",
                      dir, (unsigned long long) info->log_entries,
                      (unsigned long long) info->log_first, (unsigned long long) info->log_last);
        rc = RELAIS_EMALFORMED;
        goto done;
    }
    if (info->log_last != last_meta || (info->log_entries > 0 && info->log_first != first_meta)) {
        relais_error ("relais_store: %s: meta says log %llu..%llu, the log holds %llu..%llu",
                      dir, (unsigned long long) first_meta, (unsigned long long) last_meta,
                      (unsigned long long) info->log_first, (unsigned long long) info->log_last);
        rc = RELAIS_EMALFORMED;
        goto done;
    }
    char path [4096];
    struct stat fst;
    snprintf (path, sizeof path, "%s/data.mdb", dir);
    if (stat (path, &fst) == 0)
        info->bytes = (size_t) fst.st_size;
    //  Acked since the last checkpoint: records the owner (or its next
    //  start) applies
    uint8_t *buf;
    size_t size;
    if (s_read_wal_file (dir, &buf, &size) == 0 && size) {
        uint64_t ckpt = s_txn_wal_lsn (txn, meta), last = 0;
        size_t used = 0;
        s_wal_apply (NULL, buf, size, ckpt, true, &last, &used);
        info->wal_records = last - ckpt;
    }
    free (buf);
    rc = 0;
done:
    if (cursor)
        mdb_cursor_close (cursor);
    if (txn)
        mdb_txn_abort (txn);
    s_close_readonly (env, &lock_fd);
    return rc;
}

//  The copy holds the owner's checkpoint at the moment of the copy; what
//  was acked since is in the owner's WAL, read (buf, size) BEFORE the copy
//  was taken. Why before: the owner starts its WAL again at offset 0 after
//  each checkpoint, so a WAL read after the copy may already hold only
//  records after a newer checkpoint, and the acked records between the
//  copy's checkpoint and that one would be in neither. Read before, the
//  WAL holds every record acked since the checkpoint it started from,
//  which is not newer than the copy's, unless a checkpoint came during the
//  read - and that checkpoint, also in the copy, holds all those records.
//  The records after the copy's checkpoint are applied and committed; a
//  record torn by a concurrent write (never acked before the backup
//  began) ends the walk, leaving the consistent state of a moment earlier.
static int
s_backup_wal (const uint8_t *buf, size_t size, const char *dest)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi meta;
    int mrc = size == 0? 0: mdb_env_create (&env);
    if (env && mrc == 0)
        mrc = mdb_env_set_maxdbs (env, RELAIS_STORE_MAX_DBS + 3);
    if (env && mrc == 0)
        mrc = mdb_env_open (env, dest, MDB_NOTLS, 0600);
    if (env && mrc == 0) {
        MDB_envinfo einfo;
        //  Room for the records: the copy is compacted, its map as large as
        //  the owner's was
        if ((mrc = mdb_env_info (env, &einfo)) == 0 && einfo.me_mapsize < size * 4 + ((size_t) 64 << 20))
            mrc = mdb_env_set_mapsize (env, einfo.me_mapsize + size * 4 + ((size_t) 64 << 20));
    }
    if (env && mrc == 0)
        mrc = mdb_txn_begin (env, NULL, 0, &txn);
    if (txn && mrc == 0)
        mrc = mdb_dbi_open (txn, "meta", MDB_CREATE, &meta);
    uint64_t ckpt = 0, last = 0;
    size_t used = 0;
    if (txn && mrc == 0) {
        ckpt = s_txn_wal_lsn (txn, meta);
        mrc = s_wal_apply (txn, buf, size, ckpt, true, &last, &used);
    }
    if (txn && mrc == 0 && last > ckpt)
        mrc = s_txn_set_wal_lsn (txn, meta, last);
    if (txn && mrc == 0 && last > ckpt)
        mrc = mdb_txn_commit (txn);
    else
    if (txn)
        mdb_txn_abort (txn);
    if (env)
        mdb_env_close (env);
    char path [4200];
    snprintf (path, sizeof path, "%s/lock.mdb", dest);
    unlink (path);
    if (mrc) {
        relais_error ("relais_store: %s: cannot apply the write-ahead log to the copy: %s",
                      dest, mdb_strerror (mrc));
        return s_map_rc (mrc);
    }
    if (last > ckpt)
        relais_debug ("store backup dir=%s wal_records=%llu", dest, (unsigned long long) (last - ckpt));
    return 0;
}

//  The LMDB copy of a backup, synced
static int
s_backup_copy (const char *dir, const char *dest)
{
    MDB_env *env;
    int lock_fd;
    int rc = s_open_readonly (dir, &env, &lock_fd);
    if (rc)
        return rc;
    //  One read transaction for the whole copy: a consistent snapshot of
    //  the last commit, while the owner goes on writing
    rc = mdb_env_copy2 (env, dest, MDB_CP_COMPACT);
    s_close_readonly (env, &lock_fd);
    if (rc) {
        relais_error ("relais_store: %s: copy to %s failed: %s", dir, dest, mdb_strerror (rc));
        return s_map_rc (rc);
    }
    //  mdb_env_copy2 writes data.mdb without syncing it: make it durable,
    //  and its directory entry too
    char path [4096];
    snprintf (path, sizeof path, "%s/data.mdb", dest);
    int fd = open (path, O_RDONLY);
    if (fd < 0 || fsync (fd)) {
        rc = -errno;
        if (fd >= 0)
            close (fd);
        relais_error ("relais_store: %s: cannot sync: %s", path, strerror (-rc));
        return rc;
    }
    close (fd);
    return 0;
}

int
relais_store_backup (const char *dir, const char *dest, relais_store_info_t *info)
{
    int rc = s_mkdir_p (dest);
    if (rc) {
        relais_error ("relais_store: %s: cannot create folder: %s", dest, strerror (-rc));
        return rc;
    }
    DIR *folder = opendir (dest);
    if (!folder)
        return -errno;
    bool empty = true;
    for (struct dirent *entry; (entry = readdir (folder)) && empty; )
        empty = strcmp (entry->d_name, ".") == 0 || strcmp (entry->d_name, "..") == 0;
    closedir (folder);
    if (!empty) {
        relais_error ("relais_store: %s: the backup folder is not empty", dest);
        return -EEXIST;
    }
    //  The WAL first, then the copy (see s_backup_wal)
    uint8_t *wal;
    size_t wal_size;
    if ((rc = s_read_wal_file (dir, &wal, &wal_size))) {
        relais_error ("relais_store: %s: cannot read the write-ahead log: %s", dir, strerror (-rc));
        return rc;
    }
    rc = s_backup_copy (dir, dest);
    if (rc == 0)
        rc = s_backup_wal (wal, wal_size, dest);
    free (wal);
    if (rc)
        return rc;
    int fd = open (dest, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync (fd);
        close (fd);
    }
    return relais_store_verify (dest, info);
}


//  ---------------------------------------------------------------------------
//  Compaction: a logical copy into a fresh environment, then a swap

static size_t
s_file_size (const char *dir)
{
    char path [4096];
    snprintf (path, sizeof path, "%s/data.mdb", dir);
    struct stat st;
    return stat (path, &st) == 0? (size_t) st.st_size: 0;
}

static void
s_remove_tmp (const char *tmp)
{
    char path [4200];
    snprintf (path, sizeof path, "%s/data.mdb", tmp);
    unlink (path);
    snprintf (path, sizeof path, "%s/lock.mdb", tmp);
    unlink (path);
    rmdir (tmp);
}

//  Copy every key of database name from src into dst, in key order. Fresh
//  pages hold only live values: MDB_APPEND fills them from start to end.
static int
s_copy_db (MDB_txn *src, MDB_txn *dst, const char *name)
{
    MDB_dbi from, to;
    int rc = mdb_dbi_open (src, name, 0, &from);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc == 0)
        rc = mdb_dbi_open (dst, name, MDB_CREATE, &to);
    MDB_cursor *cursor = NULL;
    if (rc == 0)
        rc = mdb_cursor_open (src, from, &cursor);
    MDB_val key, val;
    int more = rc == 0? mdb_cursor_get (cursor, &key, &val, MDB_FIRST): rc;
    while (rc == 0 && more == 0) {
        rc = mdb_put (dst, to, &key, &val, MDB_APPEND);
        if (rc == 0)
            more = mdb_cursor_get (cursor, &key, &val, MDB_NEXT);
    }
    if (cursor)
        mdb_cursor_close (cursor);
    if (rc == 0 && more != MDB_NOTFOUND)
        rc = more;
    return rc;
}

//  Build tmp/data.mdb from the committed state of self. Returns an LMDB code.
static int
s_compact_copy (relais_store_t *self, const char *tmp)
{
    MDB_env *env = NULL;
    int rc = mdb_env_create (&env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs (env, (MDB_dbi) self->ndbs + 3);
    if (rc == 0)
        rc = mdb_env_set_mapsize (env, self->map_size);
    if (rc == 0)
        rc = mdb_env_open (env, tmp, MDB_NOTLS, 0600);
    MDB_txn *src = NULL, *dst = NULL;
    if (rc == 0)
        rc = mdb_txn_begin (self->env, NULL, MDB_RDONLY, &src);
    if (rc == 0)
        rc = mdb_txn_begin (env, NULL, 0, &dst);
    static const char *const internal [] = { "meta", "log", "ckpt" };
    for (int i = 0; i < 3 && rc == 0; i++)
        rc = s_copy_db (src, dst, internal [i]);
    for (int i = 0; i < self->ndbs && rc == 0; i++)
        rc = s_copy_db (src, dst, self->names [i]);
    if (src)
        mdb_txn_abort (src);
    if (rc == 0) {
        rc = mdb_txn_commit (dst);          //  durable: data fdatasync, meta
        dst = NULL;
    }
    if (dst)
        mdb_txn_abort (dst);
    if (env)
        mdb_env_close (env);
    return rc;
}

static int s_compact_swap (relais_store_t *self, size_t *before, size_t *after);

//  <dir>/compact.pending: a postponed compaction outlives a restart
static void
s_compact_mark (relais_store_t *self, bool pending)
{
    char path [4200];
    snprintf (path, sizeof path, "%s/compact.pending", self->dir);
    if (pending) {
        int fd = open (path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd >= 0)
            close (fd);
    }
    else
        unlink (path);
    self->compact_pending = pending;
}

int
relais_store_compact (relais_store_t *self, size_t *before, size_t *after)
{
    s_require (self, "relais_store_compact needs a store");
    s_require (!self->writing && s_reading == 0, "relais_store_compact inside a transaction");
    if (self->broken)
        return RELAIS_EFATAL;
    if (self->readonly)
        return -EROFS;
    //  No reader of ours may have the environment open over the swap (see
    //  s_readers_lock); while one has, the compaction waits for
    //  relais_store_tick. Readers that come meanwhile wait for the swap.
    int readers = s_readers_lock (self->dir, true);
    if (readers == -EBUSY) {
        if (!self->compact_pending) {
            relais_notice ("store compaction postponed dir=%s: a backup or dump has it open; "
                           "it runs once they are done", self->dir);
            s_compact_mark (self, true);
        }
        return -EBUSY;
    }
    int rc = s_compact_swap (self, before, after);
    s_readers_unlock (&readers);
    if (rc == 0 && self->compact_pending)
        s_compact_mark (self, false);
    return rc;
}

//  The compaction itself, readers.lock held exclusively
static int
s_compact_swap (relais_store_t *self, size_t *before, size_t *after)
{
    //  The copy reads committed state: everything acked must be in it
    int ckpt = s_checkpoint_settled (self);
    if (ckpt)
        return ckpt;
    char tmp [4096];
    if (snprintf (tmp, sizeof tmp, "%s/compact.tmp", self->dir) >= (int) sizeof tmp)
        return -ENAMETOOLONG;
    s_remove_tmp (tmp);                     //  left by a crash in a previous run
    if (mkdir (tmp, 0700)) {
        int rc = -errno;
        relais_error ("relais_store: %s: cannot create %s: %s", self->dir, tmp, strerror (-rc));
        return rc;
    }
    size_t size_before = s_file_size (self->dir);
    int rc = s_compact_copy (self, tmp);
    if (rc) {
        relais_error ("relais_store: %s: compaction copy failed: %s", self->dir, mdb_strerror (rc));
        s_remove_tmp (tmp);
        return s_map_rc (rc);
    }
    //  The swap: no read transaction of this process may hold the old map
    pthread_rwlock_wrlock (&self->remap);
    mdb_env_close (self->env);
    self->env = NULL;
    char from [4200], to [4200];
    snprintf (from, sizeof from, "%s/data.mdb", tmp);
    snprintf (to, sizeof to, "%s/data.mdb", self->dir);
    int swapped = rename (from, to) == 0? 0: -errno;
    if (swapped == 0) {
        int fd = open (self->dir, O_RDONLY | O_DIRECTORY);
        if (fd >= 0) {
            fsync (fd);
            close (fd);
        }
    }
    else
        relais_error ("relais_store: %s: cannot swap in the compacted copy: %s",
                      self->dir, strerror (-swapped));
    s_remove_tmp (tmp);
    //  A foreign process that kept lock.mdb over the swap: s_open_env's
    //  s_lock_current refuses to go on
    rc = s_open_env (self);
    pthread_rwlock_unlock (&self->remap);
    if (rc) {
        relais_error ("relais_store: %s: cannot reopen after compaction: %s", self->dir,
                      relais_strerror (rc));
        return RELAIS_EFATAL;
    }
    if (swapped)
        return swapped;
    //  Erased values must leave the WAL too: its old records go, all of
    //  them (they are in the checkpoint that was just copied)
    rc = s_zero_fill (self->wal_fd, 0, self->wal_size);
    if (rc == 0 && fdatasync (self->wal_fd))
        rc = -errno;
    if (rc) {
        relais_error ("relais_store: %s: cannot clear the write-ahead log: %s", self->dir,
                      strerror (-rc));
        return rc;
    }
    size_t size_after = s_file_size (self->dir);
    if (before)
        *before = size_before;
    if (after)
        *after = size_after;
    relais_notice ("store compacted dir=%s bytes_before=%zu bytes_after=%zu",
                   self->dir, size_before, size_after);
    return 0;
}
