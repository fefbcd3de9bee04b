/*  =========================================================================
    relais_store - one LMDB environment per service: state, event log,
    checkpoints

    @header
    The only file that includes lmdb.h. One MDB_env per store, opened with
    MDB_NOTLS (read transactions may run on libuv's threadpool) and LMDB's
    durable defaults. Besides the service's own databases, three internal
    ones: "meta" (schema_version, log bounds, the service's named
    counters), "log" (the event log) and "ckpt" (subscriber checkpoints).
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
};

//  Read callbacks of this thread in progress: a write from inside one could
//  need to grow the map while this thread holds the old one.
static _Thread_local int s_reading;

//  Lives on the stack of relais_store_write/read: no allocation per txn.
struct relais_txn_t {
    relais_store_t *store;
    MDB_txn *txn;
    bool rdonly;
    bool map_full;                  //  an operation hit MDB_MAP_FULL: grow, retry
    int error;                      //  first failed operation (mapped code)
    //  Log bounds, read from meta once per txn; appends update them here
    //  and meta once, just before the commit (not two gets and a put per
    //  event: about a quarter of intake's B-tree operations per report)
    bool log_known;
    bool log_dirty;
    uint64_t log_first, log_last;
};

static int s_log_flush (relais_txn_t *txn);

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
    int rc = mdb_txn_begin (self->env, NULL, 0, &txn);
    if (rc) {
        relais_error ("relais_store: %s: cannot begin: %s", self->dir, mdb_strerror (rc));
        return s_map_rc (rc);
    }
    static const char *const internal [] = { "meta", "log", "ckpt" };
    MDB_dbi *internal_dbis [] = { &self->meta, &self->log, &self->ckpt };
    for (int i = 0; i < 3 && rc == 0; i++)
        rc = mdb_dbi_open (txn, internal [i], MDB_CREATE, internal_dbis [i]);
    for (int i = 0; i < self->ndbs && rc == 0; i++)
        rc = mdb_dbi_open (txn, self->names [i], MDB_CREATE, &self->dbis [i]);
    if (rc) {
        relais_error ("relais_store: %s: cannot open databases: %s", self->dir, mdb_strerror (rc));
        mdb_txn_abort (txn);
        return s_map_rc (rc);
    }
    MDB_val key = { sizeof s_schema_key - 1, (void *) s_schema_key };
    MDB_val val;
    rc = mdb_get (txn, self->meta, &key, &val);
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
    //  explicit sync the last acked commit may vanish. So an ack costs
    //  two ordered flushes; group commit spreads them over the batch.
    //  No map size before open: LMDB then takes the one recorded in the
    //  file, so a map grown before a restart does not start small again.
    if (rc == 0)
        rc = mdb_env_open (self->env, self->dir, MDB_NOTLS, 0600);
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
    s_refresh_map_size (self);
    if (self->map_max < self->map_size)
        self->map_max = self->map_size;

    //  A process killed while reading left its slot behind
    relais_store_tick (self);
    return s_open_dbs (self);
}

relais_store_t *
relais_store_new (const char *dir, const relais_store_opts_t *opts)
{
    s_require (dir && *dir, "relais_store_new needs a folder");
    relais_store_t *self = (relais_store_t *) calloc (1, sizeof *self);
    if (!self) {
        relais_error ("relais_store: %s: out of memory", dir);
        return NULL;
    }
    self->dir = strdup (dir);
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
    if (s_open_env (self)) {
        relais_store_destroy (&self);
        return NULL;
    }
    relais_debug ("store open dir=%s map_size=%zu dbs=%d", dir, self->map_size, self->ndbs);
    return self;
}

void
relais_store_destroy (relais_store_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    relais_store_t *self = *self_p;
    s_require (!self->writing, "relais_store_destroy inside a write");
    if (self->env)
        mdb_env_close (self->env);
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

int
relais_store_write (relais_store_t *self, relais_write_fn *fn, void *arg)
{
    s_require (self && fn, "relais_store_write needs a store and a callback");
    s_require (!self->writing, "nested relais_store_write (would deadlock on LMDB's writer lock)");
    s_require (s_reading == 0, "relais_store_write inside relais_store_read");
    int resized = 0;
    while (true) {
        MDB_txn *mtxn;
        int rc = mdb_txn_begin (self->env, NULL, 0, &mtxn);
        if (rc == MDB_MAP_RESIZED && resized++ < S_RESIZED_RETRIES) {
            if ((rc = s_adopt_map (self)))
                return rc;
            continue;
        }
        if (rc) {
            relais_error ("relais_store: %s: cannot begin a write: %s", self->dir, mdb_strerror (rc));
            return rc == MDB_PANIC || rc == EIO? RELAIS_EFATAL: s_map_rc (rc);
        }
        relais_txn_t txn = { .store = self, .txn = mtxn };
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
        if (txn.map_full || rc) {
            mdb_txn_abort (mtxn);
            self->writing = false;
            s_hooks_abort (self);
            if (!txn.map_full)
                return rc;
            if ((rc = s_grow_map (self)))
                return rc;
            continue;
        }
        rc = mdb_txn_commit (mtxn);
        self->writing = false;
        if (rc == 0) {
            s_hooks_commit (self);
            return 0;
        }
        //  A failed commit has freed the txn: nothing of it is on disk
        s_hooks_abort (self);
        if (rc == MDB_MAP_FULL) {
            if ((rc = s_grow_map (self)))
                return rc;
            continue;
        }
        if (rc == ENOSPC || rc == EDQUOT || (rc == EIO && s_short_write_on_full_disk (self))) {
            relais_error ("relais_store: %s: disk full on commit: %s", self->dir, mdb_strerror (rc));
            return RELAIS_EFULL;
        }
        //  EIO on fdatasync, MDB_PANIC, anything else: what is on disk is
        //  no longer known, so nothing may be acked any more
        relais_error ("relais_store: %s: commit failed, store can no longer be trusted: %s",
                      self->dir, mdb_strerror (rc));
        return RELAIS_EFATAL;
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
    MDB_val k = { klen, (void *) key };
    MDB_val v = { vlen, (void *) val };
    int rc = mdb_put (txn->txn, dbi, &k, &v, flags);
    return rc? s_op_failed (txn, rc): 0;
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
    MDB_val k = { klen, (void *) key };
    int rc = mdb_del (txn->txn, dbi, &k, NULL);
    if (rc == MDB_NOTFOUND)
        return RELAIS_ENOTFOUND;        //  an answer, not a failed txn
    return rc? s_op_failed (txn, rc): 0;
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

static int
s_open_readonly (const char *dir, MDB_env **env_p)
{
    MDB_env *env = NULL;
    int rc = mdb_env_create (&env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs (env, RELAIS_STORE_MAX_DBS + 3);
    if (rc == 0)
        rc = mdb_env_set_maxreaders (env, S_MAX_READERS);
    if (rc == 0)
        rc = mdb_env_open (env, dir, MDB_RDONLY | MDB_NOTLS, 0600);
    if (rc) {
        relais_error ("relais_store: %s: cannot open read-only: %s", dir, mdb_strerror (rc));
        if (env)
            mdb_env_close (env);
        return s_map_rc (rc);
    }
    *env_p = env;
    return 0;
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
    int rc = s_open_readonly (dir, &env);
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
    rc = 0;
done:
    if (cursor)
        mdb_cursor_close (cursor);
    if (txn)
        mdb_txn_abort (txn);
    mdb_env_close (env);
    return rc;
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
    MDB_env *env;
    if ((rc = s_open_readonly (dir, &env)))
        return rc;
    //  One read transaction for the whole copy: a consistent snapshot of
    //  the last commit, while the owner goes on writing
    rc = mdb_env_copy2 (env, dest, MDB_CP_COMPACT);
    mdb_env_close (env);
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
    fd = open (dest, O_RDONLY | O_DIRECTORY);
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
s_compact_copy (relais_store_t *self, const char *tmp, uint64_t *txnid)
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
    MDB_envinfo info;
    if (rc == 0 && (rc = mdb_env_info (env, &info)) == 0)
        *txnid = info.me_last_txnid;
    if (env)
        mdb_env_close (env);
    return rc;
}

int
relais_store_compact (relais_store_t *self, size_t *before, size_t *after)
{
    s_require (self, "relais_store_compact needs a store");
    s_require (!self->writing && s_reading == 0, "relais_store_compact inside a transaction");
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
    uint64_t txnid = 0;
    int rc = s_compact_copy (self, tmp, &txnid);
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
    rc = s_open_env (self);
    if (rc == 0 && swapped == 0) {
        //  Another process holding lock.mdb keeps the old file's txnid in
        //  it, and LMDB would then pick the wrong meta page: refuse to go on
        MDB_envinfo info;
        if (mdb_env_info (self->env, &info) || info.me_last_txnid != txnid) {
            relais_error ("relais_store: %s: another process had the store open during compaction",
                          self->dir);
            rc = RELAIS_EFATAL;
        }
    }
    pthread_rwlock_unlock (&self->remap);
    if (rc) {
        relais_error ("relais_store: %s: cannot reopen after compaction: %s", self->dir,
                      relais_strerror (rc));
        return RELAIS_EFATAL;
    }
    if (swapped)
        return swapped;
    size_t size_after = s_file_size (self->dir);
    if (before)
        *before = size_before;
    if (after)
        *after = size_after;
    relais_notice ("store compacted dir=%s bytes_before=%zu bytes_after=%zu",
                   self->dir, size_before, size_after);
    return 0;
}
