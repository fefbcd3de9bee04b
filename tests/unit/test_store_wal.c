/*  =========================================================================
    test_store_wal - relais_store's write-ahead log: what an ack promises
    survives a kill -9 at any point, a torn record ends recovery without
    taking earlier ones, a failed write leaves no trace in it, a backup of
    a live store holds what was acked since the checkpoint - also when
    the owner checkpoints while the backup runs - a write larger
    than the log goes straight to LMDB, one writer per store, a reader
    beside the owner sees its last checkpoint and one without an owner
    recovers the log first; compaction waits while a reader has the store
    open, and a foreign process holding LMDB's lock file over a compaction
    makes the owner refuse to open, never read the store as empty.

    A child process plays the service and is killed with SIGKILL (nothing
    of its parent transaction is ever committed by it); the test then opens
    the store as the restarted service would. Each case works in its own
    folder under $RELAIS_TEST_TMP/test_store_wal.<pid> (or /tmp).
    =========================================================================
*/
#include "relais_store.h"
#include "relais_log.h"
#include "relais_test.h"

#include <lmdb.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static char s_root [512];
static const char *const s_dbs [] = { "things", NULL };

static const char *
s_dir (const char *name)
{
    static char path [600];
    snprintf (path, sizeof path, "%s/%s", s_root, name);
    return path;
}

static relais_store_t *
s_open (const char *name, size_t wal_size)
{
    relais_store_opts_t opts = { 1 << 20, 0, s_dbs, wal_size };
    return relais_store_new (s_dir (name), &opts);
}

//  One write: key "k<n>" = a 300-byte value, and log entry n
typedef struct {
    int n;
    size_t size;
    bool fail;                      //  put, then return an error
} s_one_t;

static int
s_write_one (relais_txn_t *txn, void *arg)
{
    s_one_t *one = (s_one_t *) arg;
    int db = relais_store_dbi (relais_txn_store (txn), "things");
    char key [32];
    snprintf (key, sizeof key, "k%06d", one->n);
    static char value [200 << 10];
    memset (value, 'a' + one->n % 26, one->size);
    int rc = relais_txn_put (txn, db, key, strlen (key), value, one->size);
    uint64_t first, last;
    if (rc == 0)
        rc = relais_log_bounds (txn, &first, &last);
    if (rc == 0)
        rc = relais_log_append (txn, last + 1, key, strlen (key));
    return rc? rc: one->fail? RELAIS_ECONFLICT: 0;
}

static int
s_write (relais_store_t *store, int n, size_t size, bool fail)
{
    s_one_t one = { n, size, fail };
    return relais_store_write (store, s_write_one, &one);
}

#define S_BUSY_MAX 20000

//  What a reader finds: which of keys [0, n) exist, and the log's last
typedef struct {
    int n;
    bool present [S_BUSY_MAX];
    uint64_t last;
} s_seen_t;

static int
s_look (relais_txn_t *txn, void *arg)
{
    s_seen_t *seen = (s_seen_t *) arg;
    int db = relais_store_dbi (relais_txn_store (txn), "things");
    for (int i = 0; i < seen->n; i++) {
        char key [32];
        snprintf (key, sizeof key, "k%06d", i);
        const void *val;
        size_t size;
        int rc = relais_txn_get (txn, db, key, strlen (key), &val, &size);
        CHECK (rc == 0 || rc == RELAIS_ENOTFOUND);
        seen->present [i] = rc == 0;
        if (rc == 0)
            CHECK (size > 0 && ((const char *) val) [0] == 'a' + i % 26);
    }
    uint64_t first;
    return relais_log_bounds (txn, &first, &seen->last);
}

static s_seen_t *
s_seen (relais_store_t *store, int n)
{
    static s_seen_t seen;
    memset (&seen, 0, sizeof seen);
    seen.n = n;
    CHECK_OK (relais_store_read (store, s_look, &seen));
    return &seen;
}

//  Run fn in a child that is then killed by SIGKILL; wait for it
static void
s_in_killed_child (void (*fn) (void))
{
    fflush (NULL);
    pid_t pid = fork ();
    CHECK (pid >= 0);
    if (pid == 0) {
        fn ();
        raise (SIGKILL);
        _exit (3);
    }
    int status;
    CHECK (waitpid (pid, &status, 0) == pid);
    CHECK (WIFSIGNALED (status) && WTERMSIG (status) == SIGKILL);
}

//  ---------------------------------------------------------------------------
//  kill -9 after 1,200 acked writes of 1.5 KB, the first 900 each third one
//  followed by a write that fails (the 64 KiB log fills, the 1 MiB map grows:
//  checkpoints and rollbacks happen on the way): every acked one is there
//  after the restart, no failed one

static void
s_crash_child (void)
{
    relais_store_t *store = s_open ("crash", 64 << 10);
    CHECK (store);
    for (int i = 0; i < 900; i++) {
        CHECK_OK (s_write (store, i, 1500, false));
        if (i % 3 == 0)
            CHECK (s_write (store, 1200 + i, 1500, true) == RELAIS_ECONFLICT);
    }
    for (int i = 900; i < 1200; i++)
        CHECK_OK (s_write (store, i, 1500, false));
    CHECK (relais_store_map_size (store) > (1 << 20));
}

static void
test_crash (void)
{
    s_in_killed_child (s_crash_child);
    relais_store_info_t info;
    CHECK_OK (relais_store_verify (s_dir ("crash"), &info));
    //  Some writes were checkpointed, the others only in the log
    CHECK (info.log_last > 0 && info.log_last < 1200 && info.wal_records > 0);
    printf ("    1200 writes acked, killed: %llu in the log's last checkpoint, %llu records after it\n",
            (unsigned long long) info.log_last, (unsigned long long) info.wal_records);
    relais_store_t *store = s_open ("crash", 64 << 10);
    CHECK (store);
    s_seen_t *seen = s_seen (store, 2000);
    for (int i = 0; i < 2000; i++)
        CHECK (seen->present [i] == (i < 1200));
    CHECK (seen->last == 1200);
    //  The store goes on from there, and recovery was checkpointed
    CHECK_OK (s_write (store, 1200, 300, false));
    CHECK (s_seen (store, 1300)->last == 1201);
    relais_store_destroy (&store);
    CHECK_OK (relais_store_verify (s_dir ("crash"), &info));
    CHECK (info.log_last == 1201 && info.wal_records == 0);
}

//  ---------------------------------------------------------------------------
//  A record torn by the crash (here: one byte of the 10th changed) ends
//  recovery there; the 9 before it are kept, the store goes on

static void
s_torn_child (void)
{
    relais_store_t *store = s_open ("torn", 0);
    CHECK (store);
    for (int i = 0; i < 10; i++)
        CHECK_OK (s_write (store, i, 300, false));
}

static void
test_torn (void)
{
    s_in_killed_child (s_torn_child);
    char path [700];
    snprintf (path, sizeof path, "%s/wal", s_dir ("torn"));
    int fd = open (path, O_RDWR);
    CHECK (fd >= 0);
    static uint8_t buf [64 << 10];
    CHECK (pread (fd, buf, sizeof buf, 0) == (ssize_t) sizeof buf);
    //  Walk 9 records: 24-byte header, payload length at offset 4
    size_t off = 0;
    for (int i = 0; i < 9; i++) {
        uint32_t payload = (uint32_t) buf [off + 4] | (uint32_t) buf [off + 5] << 8
                         | (uint32_t) buf [off + 6] << 16 | (uint32_t) buf [off + 7] << 24;
        off += 24 + payload;
        CHECK (off < sizeof buf - 100);
    }
    buf [off + 60] ^= 0x5a;
    CHECK (pwrite (fd, buf + off + 60, 1, (off_t) (off + 60)) == 1);
    close (fd);
    relais_store_t *store = s_open ("torn", 0);
    CHECK (store);
    s_seen_t *seen = s_seen (store, 10);
    for (int i = 0; i < 9; i++)
        CHECK (seen->present [i]);
    CHECK (!seen->present [9]);
    CHECK (seen->last == 9);
    CHECK_OK (s_write (store, 9, 300, false));
    CHECK (s_seen (store, 10)->last == 10);
    relais_store_destroy (&store);
    store = s_open ("torn", 0);
    CHECK (store);
    CHECK (s_seen (store, 10)->present [9]);
    relais_store_destroy (&store);
}

//  ---------------------------------------------------------------------------
//  A failed write between two good ones: gone at once, and gone after a
//  crash too (it never reached the log)

static void
s_failed_child (void)
{
    relais_store_t *store = s_open ("failed", 0);
    CHECK (store);
    CHECK_OK (s_write (store, 0, 300, false));
    CHECK (s_write (store, 1, 300, true) == RELAIS_ECONFLICT);
    CHECK_OK (s_write (store, 2, 300, false));
    s_seen_t *seen = s_seen (store, 3);
    CHECK (seen->present [0] && !seen->present [1] && seen->present [2] && seen->last == 2);
}

static void
test_failed_write (void)
{
    s_in_killed_child (s_failed_child);
    relais_store_t *store = s_open ("failed", 0);
    CHECK (store);
    s_seen_t *seen = s_seen (store, 3);
    CHECK (seen->present [0] && !seen->present [1] && seen->present [2] && seen->last == 2);
    relais_store_destroy (&store);
}

//  ---------------------------------------------------------------------------
//  A backup of a live store (held by a child) holds the writes acked
//  since its checkpoint, applied: the copy needs no log

static void
test_backup_live (void)
{
    int ready [2], quit [2];
    CHECK (pipe (ready) == 0 && pipe (quit) == 0);
    fflush (NULL);
    pid_t pid = fork ();
    CHECK (pid >= 0);
    if (pid == 0) {
        relais_store_t *store = s_open ("live", 0);
        CHECK (store);
        for (int i = 0; i < 50; i++)
            CHECK_OK (s_write (store, i, 300, false));
        CHECK_OK (relais_store_checkpoint (store));
        for (int i = 50; i < 60; i++)
            CHECK_OK (s_write (store, i, 300, false));
        CHECK (write (ready [1], "r", 1) == 1);
        char c;
        CHECK (read (quit [0], &c, 1) == 1);
        raise (SIGKILL);
        _exit (3);
    }
    char c;
    CHECK (read (ready [0], &c, 1) == 1);
    char dest [700];
    snprintf (dest, sizeof dest, "%s", s_dir ("live-copy"));
    relais_store_info_t info;
    CHECK_OK (relais_store_backup (s_dir ("live"), dest, &info));
    CHECK (info.log_last == 60 && info.log_entries == 60 && info.wal_records == 0);
    //  A reader beside the owner sees its checkpoint, and cannot write
    relais_store_opts_t opts = { 1 << 20, 0, s_dbs, 0 };
    relais_store_t *reader = relais_store_open_reader (s_dir ("live"), &opts);
    CHECK (reader);
    s_seen_t *seen = s_seen (reader, 60);
    CHECK (seen->last == 50 && seen->present [49] && !seen->present [50]);
    CHECK (s_write (reader, 70, 300, false) == -EROFS);
    relais_store_destroy (&reader);
    CHECK (write (quit [1], "q", 1) == 1);
    int status;
    CHECK (waitpid (pid, &status, 0) == pid);
    //  The copy opens as a store of its own, everything in it
    relais_store_t *copy = s_open ("live-copy", 0);
    CHECK (copy);
    seen = s_seen (copy, 60);
    for (int i = 0; i < 60; i++)
        CHECK (seen->present [i]);
    relais_store_destroy (&copy);
    //  With the owner gone, a reader recovers the log like a restart
    reader = relais_store_open_reader (s_dir ("live"), &opts);
    CHECK (reader);
    CHECK (s_seen (reader, 60)->last == 60);
    relais_store_destroy (&reader);
    close (ready [0]); close (ready [1]); close (quit [0]); close (quit [1]);
}

//  ---------------------------------------------------------------------------
//  Backups of a store whose owner writes without pause and checkpoints every
//  fourth write (so a checkpoint, which starts the log again, falls between
//  almost any two moments of a backup): each holds every write acked before
//  it began, and is a consistent prefix - its log and its keys agree

static void
test_backup_busy (void)
{
    volatile uint64_t *shared = (volatile uint64_t *) mmap (NULL, 4096, PROT_READ | PROT_WRITE,
                                                            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK (shared != MAP_FAILED);
    shared [0] = 0;                 //  writes acked
    shared [1] = 0;                 //  1: stop
    fflush (NULL);
    pid_t pid = fork ();
    CHECK (pid >= 0);
    if (pid == 0) {
        relais_store_t *store = s_open ("busy", 64 << 10);
        CHECK (store);
        for (int i = 0; i < S_BUSY_MAX && !shared [1]; i++) {
            CHECK_OK (s_write (store, i, 300, false));
            __atomic_store_n (&shared [0], (uint64_t) i + 1, __ATOMIC_SEQ_CST);
            if (i % 4 == 3)
                CHECK_OK (relais_store_checkpoint (store));
        }
        relais_store_destroy (&store);
        _exit (0);
    }
    int rounds = 0;
    for (; rounds < 12; rounds++) {
        while (__atomic_load_n (&shared [0], __ATOMIC_SEQ_CST) < 50)
            usleep (1000);
        uint64_t acked = __atomic_load_n (&shared [0], __ATOMIC_SEQ_CST);
        if (acked + 2000 > S_BUSY_MAX)
            break;                  //  the child is about to run out of keys
        char name [64];
        snprintf (name, sizeof name, "busy-copy-%d", rounds);
        char dest [700];
        snprintf (dest, sizeof dest, "%s", s_dir (name));
        relais_store_info_t info;
        CHECK_OK (relais_store_backup (s_dir ("busy"), dest, &info));
        CHECK (info.log_last >= acked && info.wal_records == 0);
        relais_store_t *copy = s_open (name, 0);
        CHECK (copy);
        s_seen_t *seen = s_seen (copy, S_BUSY_MAX);
        CHECK (seen->last == info.log_last);
        for (uint64_t i = 0; i < S_BUSY_MAX; i++)
            CHECK (seen->present [i] == (i < seen->last));
        relais_store_destroy (&copy);
    }
    shared [1] = 1;
    int status;
    CHECK (waitpid (pid, &status, 0) == pid && WIFEXITED (status) && WEXITSTATUS (status) == 0);
    CHECK (rounds >= 3);
    munmap ((void *) shared, 4096);
}

//  ---------------------------------------------------------------------------
//  Compaction beside other processes. A reader of ours (a dump) holds the
//  store open: the compaction waits (-EBUSY, compact.pending), writes go
//  on, and relais_store_tick compacts once the reader is gone. A foreign
//  process (raw LMDB, like mdb_stat) holding lock.mdb over a compaction:
//  the owner stops (RELAIS_EFATAL), refuses to open again while that
//  process lives - LMDB would read the new data.mdb through the old lock
//  record, as an empty store - and finds everything once it is gone.

static ino_t
s_data_inode (const char *name)
{
    char path [700];
    snprintf (path, sizeof path, "%s/data.mdb", s_dir (name));
    struct stat st;
    CHECK (stat (path, &st) == 0);
    return st.st_ino;
}

//  A child that waits for "go", opens name (reader: ours; else raw LMDB),
//  says "r", and closes on "q"
static pid_t
s_holder (const char *name, bool ours, int go [2], int ready [2], int quit [2])
{
    CHECK (pipe (go) == 0 && pipe (ready) == 0 && pipe (quit) == 0);
    fflush (NULL);
    pid_t pid = fork ();
    CHECK (pid >= 0);
    if (pid == 0) {
        close (go [1]);             //  a parent that fails ends this child
        close (ready [0]);
        close (quit [1]);
        char c;
        CHECK (read (go [0], &c, 1) == 1);
        relais_store_t *reader = NULL;
        MDB_env *env = NULL;
        if (ours) {
            relais_store_opts_t opts = { 1 << 20, 0, s_dbs, 0 };
            reader = relais_store_open_reader (s_dir (name), &opts);
            CHECK (reader);
        }
        else {
            CHECK (mdb_env_create (&env) == 0);
            CHECK (mdb_env_set_maxdbs (env, 8) == 0);
            CHECK (mdb_env_open (env, s_dir (name), MDB_RDONLY | MDB_NOTLS, 0600) == 0);
        }
        CHECK (write (ready [1], "r", 1) == 1);
        CHECK (read (quit [0], &c, 1) == 1);
        relais_store_destroy (&reader);
        if (env)
            mdb_env_close (env);
        _exit (0);
    }
    return pid;
}

static void
s_holder_end (pid_t pid, int go [2], int ready [2], int quit [2])
{
    CHECK (write (quit [1], "q", 1) == 1);
    int status;
    CHECK (waitpid (pid, &status, 0) == pid && WIFEXITED (status) && WEXITSTATUS (status) == 0);
    close (go [0]); close (go [1]); close (ready [0]); close (ready [1]);
    close (quit [0]); close (quit [1]);
}

static void
test_compact_beside_readers (void)
{
    int go [2], ready [2], quit [2];
    char c;
    //  A reader of ours: the compaction waits for it
    pid_t pid = s_holder ("beside", true, go, ready, quit);
    relais_store_t *store = s_open ("beside", 0);
    CHECK (store);
    for (int i = 0; i < 300; i++)
        CHECK_OK (s_write (store, i, 300, false));
    CHECK (write (go [1], "g", 1) == 1);
    CHECK (read (ready [0], &c, 1) == 1);
    ino_t before = s_data_inode ("beside");
    CHECK (relais_store_compact (store, NULL, NULL) == -EBUSY);
    char pending [700];
    snprintf (pending, sizeof pending, "%s/compact.pending", s_dir ("beside"));
    CHECK (access (pending, F_OK) == 0);
    relais_store_tick (store);                  //  still open: still waiting
    CHECK (s_data_inode ("beside") == before);
    for (int i = 300; i < 400; i++)
        CHECK_OK (s_write (store, i, 300, false));
    s_holder_end (pid, go, ready, quit);
    relais_store_tick (store);                  //  gone: compacted now
    CHECK (s_data_inode ("beside") != before);
    CHECK (access (pending, F_OK) != 0);
    s_seen_t *seen = s_seen (store, 400);
    for (int i = 0; i < 400; i++)
        CHECK (seen->present [i]);
    CHECK (seen->last == 400);
    relais_store_destroy (&store);

    //  A foreign process holding lock.mdb over the swap
    pid = s_holder ("foreign", false, go, ready, quit);
    store = s_open ("foreign", 0);
    CHECK (store);
    for (int i = 0; i < 300; i++) {
        CHECK_OK (s_write (store, i, 300, false));
        if (i % 50 == 0)
            CHECK_OK (relais_store_checkpoint (store));
    }
    CHECK (write (go [1], "g", 1) == 1);
    CHECK (read (ready [0], &c, 1) == 1);
    CHECK (relais_store_compact (store, NULL, NULL) == RELAIS_EFATAL);
    relais_store_destroy (&store);
    CHECK (s_open ("foreign", 0) == NULL);      //  refused, not empty
    s_holder_end (pid, go, ready, quit);
    store = s_open ("foreign", 0);
    CHECK (store);
    seen = s_seen (store, 300);
    for (int i = 0; i < 300; i++)
        CHECK (seen->present [i]);
    CHECK (seen->last == 300);
    CHECK_OK (s_write (store, 300, 300, false));
    relais_store_destroy (&store);
}

//  ---------------------------------------------------------------------------
//  A write larger than the log is committed to LMDB at once; one writer

static void
test_large_and_busy (void)
{
    relais_store_t *store = s_open ("large", 64 << 10);
    CHECK (store);
    CHECK_OK (s_write (store, 0, 300, false));
    CHECK_OK (s_write (store, 1, 150 << 10, false));
    relais_store_stats_t stats;
    relais_store_stats (store, &stats);
    CHECK (stats.wal_records == 1 && stats.checkpoints == 1 && stats.wal_pending_bytes == 0);
    CHECK (stats.wal_size == 64 << 10);
    relais_store_info_t info;
    CHECK_OK (relais_store_verify (s_dir ("large"), &info));
    CHECK (info.log_last == 2 && info.wal_records == 0);
    //  A second opener, in this process or another, is refused
    CHECK (s_open ("large", 64 << 10) == NULL);
    relais_store_destroy (&store);
    store = s_open ("large", 64 << 10);
    CHECK (store);
    s_seen_t *seen = s_seen (store, 2);
    CHECK (seen->present [0] && seen->present [1] && seen->last == 2);
    relais_store_destroy (&store);
}

static int
s_remove_one (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st; (void) flag; (void) ftw;
    return remove (path);
}

int
main (void)
{
    relais_log_init ("test_store_wal");
    const char *tmp = getenv ("RELAIS_TEST_TMP");
    if (!tmp || !*tmp)
        tmp = "/tmp";
    mkdir (tmp, 0700);
    snprintf (s_root, sizeof s_root, "%s/test_store_wal.%d", tmp, (int) getpid ());
    CHECK (mkdir (s_root, 0700) == 0);
    RUN (test_crash);
    RUN (test_torn);
    RUN (test_failed_write);
    RUN (test_backup_live);
    RUN (test_backup_busy);
    RUN (test_compact_beside_readers);
    RUN (test_large_and_busy);
    nftw (s_root, s_remove_one, 16, FTW_DEPTH | FTW_PHYS);
    printf ("test_store_wal: OK\n");
    return 0;
}
