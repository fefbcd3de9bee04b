/*  =========================================================================
    test_store - relais_store: key/value, transactions and hooks, the event
    log, checkpoints, meta, map growth and its cap, schema version, stale
    reader slots

    Each case works in its own folder under $RELAIS_TEST_TMP/test_store.<pid>
    (or /tmp), removed at the end. The test includes lmdb.h to forge what
    the store API cannot: a schema version from the future, and a reader
    slot left by a killed process.
    =========================================================================
*/
#include "relais_store.h"
#include "relais_log.h"
#include "relais_test.h"

#include <errno.h>
#include <ftw.h>
#include <lmdb.h>
#include <signal.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static char s_root [512];

static const char *
s_dir (const char *name)
{
    static char path [600];
    snprintf (path, sizeof path, "%s/%s", s_root, name);
    return path;
}

static int
s_remove_one (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st; (void) flag; (void) ftw;
    return remove (path);
}

static const char *const s_dbs [] = { "things", "other", NULL };

static relais_store_t *
s_open (const char *name, size_t map_size, size_t map_max)
{
    relais_store_opts_t opts = { map_size, map_max, s_dbs, 0 };
    relais_store_t *store = relais_store_new (s_dir (name), &opts);
    CHECK (store);
    return store;
}

//  ---------------------------------------------------------------------------
//  put / get / del / scan

static int
s_fill (relais_txn_t *txn, void *arg)
{
    (void) arg;
    int db = relais_store_dbi (relais_txn_store (txn), "things");
    char key [16], val [32];
    for (int i = 0; i < 10; i++) {
        snprintf (key, sizeof key, "k%02d", i);
        snprintf (val, sizeof val, "value %d", i);
        int rc = relais_txn_put (txn, db, key, strlen (key), val, strlen (val));
        if (rc)
            return rc;
    }
    //  Same key in another database does not collide
    return relais_txn_put (txn, relais_store_dbi (relais_txn_store (txn), "other"),
                           "k00", 3, "other", 5);
}

static int
s_delete_k05 (relais_txn_t *txn, void *arg)
{
    (void) arg;
    CHECK (relais_txn_del (txn, 0, "nope", 4) == RELAIS_ENOTFOUND);
    return relais_txn_del (txn, 0, "k05", 3);
}

typedef struct {
    char keys [16][8];
    int count;
    int stop_at;
} s_scan_t;

static int
s_collect (const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    (void) val; (void) vlen;
    s_scan_t *scan = (s_scan_t *) arg;
    CHECK (klen < 8 && scan->count < 16);
    memcpy (scan->keys [scan->count], key, klen);
    scan->keys [scan->count][klen] = 0;
    scan->count++;
    if (scan->stop_at && scan->count == scan->stop_at)
        return 1;
    return 0;
}

static int
s_fail_scan (const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    (void) key; (void) klen; (void) val; (void) vlen; (void) arg;
    return RELAIS_EMALFORMED;
}

static int
s_check_kv (relais_txn_t *txn, void *arg)
{
    (void) arg;
    const void *val;
    size_t size;
    CHECK_OK (relais_txn_get (txn, 0, "k03", 3, &val, &size));
    CHECK (size == 7 && memcmp (val, "value 3", 7) == 0);
    CHECK_OK (relais_txn_get (txn, 1, "k00", 3, &val, &size));
    CHECK (size == 5 && memcmp (val, "other", 5) == 0);
    CHECK (relais_txn_get (txn, 0, "k05", 3, &val, &size) == RELAIS_ENOTFOUND);
    CHECK (relais_txn_get (txn, 1, "k01", 3, &val, &size) == RELAIS_ENOTFOUND);

    s_scan_t scan = { .count = 0 };
    CHECK_OK (relais_txn_scan (txn, 0, NULL, 0, s_collect, &scan));
    CHECK (scan.count == 9);
    CHECK_STR (scan.keys [0], "k00");
    CHECK_STR (scan.keys [5], "k06");
    CHECK_STR (scan.keys [8], "k09");

    //  SET_RANGE: from a key that is absent starts at the next one
    memset (&scan, 0, sizeof scan);
    CHECK_OK (relais_txn_scan (txn, 0, "k05", 3, s_collect, &scan));
    CHECK (scan.count == 4);
    CHECK_STR (scan.keys [0], "k06");

    memset (&scan, 0, sizeof scan);
    scan.stop_at = 2;
    CHECK_OK (relais_txn_scan (txn, 0, "k02", 3, s_collect, &scan));
    CHECK (scan.count == 2);
    CHECK_STR (scan.keys [1], "k03");

    memset (&scan, 0, sizeof scan);
    CHECK_OK (relais_txn_scan (txn, 0, "zzz", 3, s_collect, &scan));
    CHECK (scan.count == 0);
    CHECK (relais_txn_scan (txn, 0, NULL, 0, s_fail_scan, NULL) == RELAIS_EMALFORMED);
    //  Writing in a read transaction is refused by LMDB
    CHECK (relais_txn_put (txn, 0, "x", 1, "y", 1) == -EACCES);
    return 0;
}

static void
test_kv (void)
{
    relais_store_t *store = s_open ("kv", 0, 0);
    CHECK (relais_store_dbi (store, "things") == 0);
    CHECK (relais_store_dbi (store, "other") == 1);
    CHECK (relais_store_dbi (store, "meta") == -1);     //  internal ones are hidden
    CHECK (relais_store_dbi (store, "log") == -1);
    CHECK (relais_store_map_size (store) == (size_t) 64 << 20);
    CHECK_OK (relais_store_write (store, s_fill, NULL));
    CHECK_OK (relais_store_write (store, s_delete_k05, NULL));
    CHECK_OK (relais_store_read (store, s_check_kv, NULL));
    relais_store_destroy (&store);
    CHECK (store == NULL);
    relais_store_destroy (&store);                      //  NULL-safe

    //  Still there after reopening
    store = s_open ("kv", 0, 0);
    CHECK_OK (relais_store_read (store, s_check_kv, NULL));
    relais_store_destroy (&store);
}

//  ---------------------------------------------------------------------------
//  Hooks, and a callback error aborts everything

static char s_trace [64];

static void s_on_begin (void *arg)  { CHECK (arg == s_trace); strcat (s_trace, "B"); }
static void s_on_commit (void *arg) { CHECK (arg == s_trace); strcat (s_trace, "C"); }
static void s_on_abort (void *arg)  { CHECK (arg == s_trace); strcat (s_trace, "A"); }

static int
s_put_then_fail (relais_txn_t *txn, void *arg)
{
    (void) arg;
    CHECK_OK (relais_txn_put (txn, 0, "doomed", 6, "x", 1));
    CHECK_OK (relais_meta_set (txn, "doomed", 7));
    CHECK_OK (relais_log_append (txn, 1, "x", 1));
    CHECK_OK (relais_ckpt_set (txn, "intake", 9));
    return RELAIS_EMALFORMED;
}

static int
s_nothing_stored (relais_txn_t *txn, void *arg)
{
    (void) arg;
    CHECK (relais_txn_get (txn, 0, "doomed", 6, NULL, NULL) == RELAIS_ENOTFOUND);
    uint64_t value = 99, first = 99, last = 99;
    CHECK_OK (relais_meta_get (txn, "doomed", &value));
    CHECK (value == 0);
    CHECK_OK (relais_log_bounds (txn, &first, &last));
    CHECK (first == 0 && last == 0);
    CHECK_OK (relais_ckpt_get (txn, "intake", &value));
    CHECK (value == 0);
    return 0;
}

static int
s_put_one (relais_txn_t *txn, void *arg)
{
    (void) arg;
    return relais_txn_put (txn, 0, "one", 3, "1", 1);
}

//  Appends *(int *) arg events of 300 bytes after the current last
static int
s_append_batch (relais_txn_t *txn, void *arg)
{
    int count = *(int *) arg;
    uint64_t first, last;
    int rc = relais_log_bounds (txn, &first, &last);
    if (rc)
        return rc;
    uint8_t event [300];
    for (int i = 0; i < count; i++) {
        uint64_t seq = last + 1 + (uint64_t) i;
        memset (event, (int) (seq & 0xff), sizeof event);
        relais_u64_to_key (seq, event);
        if ((rc = relais_log_append (txn, seq, event, sizeof event)))
            return rc;
    }
    return 0;
}

static int
s_ignore_errors (relais_txn_t *txn, void *arg)
{
    (void) arg;
    char key [600];
    memset (key, 'k', sizeof key);
    //  A key over LMDB's 511 bytes fails; returning 0 anyway must not commit
    CHECK_OK (relais_txn_put (txn, 0, "half", 4, "x", 1));
    CHECK (relais_txn_put (txn, 0, key, sizeof key, "x", 1) == RELAIS_ETOOLARGE);
    return 0;
}

static int
s_no_half (relais_txn_t *txn, void *arg)
{
    (void) arg;
    CHECK (relais_txn_get (txn, 0, "half", 4, NULL, NULL) == RELAIS_ENOTFOUND);
    return 0;
}

static void
test_hooks_and_abort (void)
{
    relais_store_t *store = s_open ("hooks", 1 << 20, 0);
    relais_store_hook (store, s_on_begin, s_on_commit, s_on_abort, s_trace);

    s_trace [0] = 0;
    CHECK_OK (relais_store_write (store, s_put_one, NULL));
    CHECK_STR (s_trace, "BC");

    s_trace [0] = 0;
    CHECK (relais_store_write (store, s_put_then_fail, NULL) == RELAIS_EMALFORMED);
    CHECK_STR (s_trace, "BA");
    CHECK_OK (relais_store_read (store, s_nothing_stored, NULL));

    s_trace [0] = 0;
    CHECK (relais_store_write (store, s_ignore_errors, NULL) == RELAIS_ETOOLARGE);
    CHECK_STR (s_trace, "BA");
    CHECK_OK (relais_store_read (store, s_no_half, NULL));

    //  1.2 MB of log in one txn does not fit 1 MiB: abort, grow, run again
    s_trace [0] = 0;
    int count = 4000;
    CHECK_OK (relais_store_write (store, s_append_batch, &count));
    CHECK_STR (s_trace, "BABC");
    CHECK (relais_store_resizes (store) == 1);
    CHECK (relais_store_map_size (store) == 2 << 20);
    relais_store_destroy (&store);
}

//  ---------------------------------------------------------------------------
//  Log, checkpoints, meta

static int
s_log_basics (relais_txn_t *txn, void *arg)
{
    (void) arg;
    uint64_t first, last;
    CHECK_OK (relais_log_bounds (txn, &first, &last));
    CHECK (first == 0 && last == 0);
    char entry [16];
    for (uint64_t seq = 1; seq <= 5; seq++) {
        snprintf (entry, sizeof entry, "event %llu", (unsigned long long) seq);
        CHECK_OK (relais_log_append (txn, seq, entry, strlen (entry)));
    }
    CHECK_OK (relais_log_bounds (txn, &first, &last));
    CHECK (first == 1 && last == 5);

    CHECK_OK (relais_ckpt_set (txn, "intake", 41));
    CHECK_OK (relais_ckpt_set (txn, "router", 7));
    CHECK_OK (relais_ckpt_set (txn, "intake", 42));

    CHECK_OK (relais_meta_set (txn, "next_id", 1000));
    //  Users' names cannot reach the log's own bounds
    CHECK_OK (relais_meta_set (txn, "log_last", 77));
    CHECK_OK (relais_meta_set (txn, "schema_version", 99));
    return 0;
}

static int
s_log_more (relais_txn_t *txn, void *arg)
{
    (void) arg;
    CHECK_OK (relais_log_append (txn, 6, "six", 3));
    CHECK_OK (relais_log_append (txn, 7, "", 0));
    return 0;
}

typedef struct {
    uint64_t seqs [8];
    size_t sizes [8];
    int count, stop_at;
} s_logscan_t;

static int
s_logscan_collect (uint64_t seq, const void *bytes, size_t size, void *arg)
{
    s_logscan_t *scan = (s_logscan_t *) arg;
    CHECK (scan->count < 8);
    CHECK (size == 0 || bytes != NULL);
    scan->seqs [scan->count] = seq;
    scan->sizes [scan->count++] = size;
    return scan->count == scan->stop_at? 1: 0;
}

static int
s_logscan_fail (uint64_t seq, const void *bytes, size_t size, void *arg)
{
    (void) seq, (void) bytes, (void) size, (void) arg;
    return RELAIS_EMALFORMED;
}

static int
s_log_check (relais_txn_t *txn, void *arg)
{
    (void) arg;
    uint64_t first, last, value;
    CHECK_OK (relais_log_bounds (txn, &first, &last));
    CHECK (first == 1 && last == 7);
    const void *bytes;
    size_t size;
    CHECK_OK (relais_log_get (txn, 3, &bytes, &size));
    CHECK (size == 7 && memcmp (bytes, "event 3", 7) == 0);
    CHECK_OK (relais_log_get (txn, 6, &bytes, &size));
    CHECK (size == 3 && memcmp (bytes, "six", 3) == 0);
    CHECK_OK (relais_log_get (txn, 7, &bytes, &size));
    CHECK (size == 0);
    CHECK (relais_log_get (txn, 0, &bytes, &size) == RELAIS_ENOTFOUND);
    CHECK (relais_log_get (txn, 8, &bytes, &size) == RELAIS_ENOTFOUND);

    //  A cursor walk: from the middle to the end, in order, then stopped
    //  early, past the end, and with the callback's error
    s_logscan_t scan = { .stop_at = 0 };
    CHECK_OK (relais_log_scan (txn, 5, s_logscan_collect, &scan));
    CHECK (scan.count == 3 && scan.seqs [0] == 5 && scan.seqs [2] == 7);
    CHECK (scan.sizes [1] == 3 && scan.sizes [2] == 0);
    scan = (s_logscan_t) { .stop_at = 2 };
    CHECK_OK (relais_log_scan (txn, 1, s_logscan_collect, &scan));
    CHECK (scan.count == 2 && scan.seqs [0] == 1 && scan.seqs [1] == 2);
    scan = (s_logscan_t) { .stop_at = 0 };
    CHECK_OK (relais_log_scan (txn, 8, s_logscan_collect, &scan));
    CHECK (scan.count == 0);
    CHECK (relais_log_scan (txn, 1, s_logscan_fail, NULL) == RELAIS_EMALFORMED);

    CHECK_OK (relais_ckpt_get (txn, "intake", &value));
    CHECK (value == 42);
    CHECK_OK (relais_ckpt_get (txn, "router", &value));
    CHECK (value == 7);
    CHECK_OK (relais_ckpt_get (txn, "plans", &value));
    CHECK (value == 0);

    CHECK_OK (relais_meta_get (txn, "next_id", &value));
    CHECK (value == 1000);
    CHECK_OK (relais_meta_get (txn, "log_last", &value));
    CHECK (value == 77);
    CHECK_OK (relais_meta_get (txn, "absent", &value));
    CHECK (value == 0);
    return 0;
}

static void
test_log_ckpt_meta (void)
{
    relais_store_t *store = s_open ("log", 0, 0);
    CHECK_OK (relais_store_write (store, s_log_basics, NULL));
    CHECK_OK (relais_store_write (store, s_log_more, NULL));
    CHECK_OK (relais_store_read (store, s_log_check, NULL));
    relais_store_destroy (&store);
    store = s_open ("log", 0, 0);
    CHECK_OK (relais_store_read (store, s_log_check, NULL));
    relais_store_destroy (&store);

    uint8_t key [8];
    relais_u64_to_key (0x0102030405060708ULL, key);
    CHECK (key [0] == 1 && key [7] == 8);
    CHECK (relais_key_to_u64 (key) == 0x0102030405060708ULL);
}

//  A gap in the log is a caller bug: the store aborts. Run in a child that
//  has no environment open (LMDB forbids using one across fork).
static int
s_append_gap (relais_txn_t *txn, void *arg)
{
    (void) arg;
    CHECK_OK (relais_log_append (txn, 1, "a", 1));
    relais_log_append (txn, 3, "c", 1);
    return 0;
}

static void
test_log_gap_aborts (void)
{
    fflush (stderr);
    pid_t pid = fork ();
    CHECK (pid >= 0);
    if (pid == 0) {
        relais_log_level (RELAIS_LOG_ERROR);
        relais_store_t *store = s_open ("gap", 0, 0);
        relais_store_write (store, s_append_gap, NULL);
        _exit (0);                      //  not reached
    }
    int status;
    CHECK (waitpid (pid, &status, 0) == pid);
    CHECK (WIFSIGNALED (status) && WTERMSIG (status) == SIGABRT);
}

//  ---------------------------------------------------------------------------
//  Map growth: 100,000 events of 300 bytes from a 1 MiB map

static int
s_read_all (relais_txn_t *txn, void *arg)
{
    uint64_t total = *(uint64_t *) arg;
    uint64_t first, last;
    CHECK_OK (relais_log_bounds (txn, &first, &last));
    CHECK (first == 1 && last == total);
    for (uint64_t seq = 1; seq <= total; seq++) {
        const void *bytes;
        size_t size;
        CHECK_OK (relais_log_get (txn, seq, &bytes, &size));
        CHECK (size == 300);
        CHECK (relais_key_to_u64 (bytes) == seq);
        CHECK (((const uint8_t *) bytes) [299] == (uint8_t) (seq & 0xff));
    }
    return 0;
}

static void
test_map_growth (void)
{
    size_t initial = 1 << 20;
    relais_store_t *store = s_open ("grow", initial, 0);
    int batch = 1000;
    for (int i = 0; i < 100; i++)
        CHECK_OK (relais_store_write (store, s_append_batch, &batch));
    size_t final = relais_store_map_size (store);
    int resizes = relais_store_resizes (store);
    int log2 = 0;
    while (((size_t) initial << log2) < final)
        log2++;
    fprintf (stderr, "    map %zu -> %zu bytes in %d resizes\n", initial, final, resizes);
    CHECK (resizes >= 1 && resizes <= log2 + 1);
    uint64_t total = 100000;
    CHECK_OK (relais_store_read (store, s_read_all, &total));
    relais_store_destroy (&store);

    //  Reopened with the small size asked again, the file keeps its map
    store = s_open ("grow", initial, 0);
    CHECK (relais_store_map_size (store) >= final);
    CHECK (relais_store_resizes (store) == 0);
    CHECK_OK (relais_store_read (store, s_read_all, &total));
    relais_store_destroy (&store);
}

//  ---------------------------------------------------------------------------
//  The cap: RELAIS_EFULL, and what was committed stays

static int
s_last (relais_txn_t *txn, void *arg)
{
    uint64_t first;
    return relais_log_bounds (txn, &first, (uint64_t *) arg);
}

static int
s_meta_bump (relais_txn_t *txn, void *arg)
{
    (void) arg;
    uint64_t value;
    int rc = relais_meta_get (txn, "after_full", &value);
    return rc? rc: relais_meta_set (txn, "after_full", value + 1);
}

static int
s_meta_read (relais_txn_t *txn, void *arg)
{
    return relais_meta_get (txn, "after_full", (uint64_t *) arg);
}

static void
test_map_cap (void)
{
    relais_store_t *store = s_open ("cap", 1 << 20, 2 << 20);
    relais_store_hook (store, s_on_begin, s_on_commit, s_on_abort, s_trace);
    int batch = 100;
    int rc = 0, writes = 0;
    uint64_t committed = 0;
    while (writes < 1000) {
        s_trace [0] = 0;
        rc = relais_store_write (store, s_append_batch, &batch);
        if (rc)
            break;
        committed += (uint64_t) batch;
        writes++;
    }
    CHECK (rc == RELAIS_EFULL);
    //  Every attempt began and was aborted; nothing was committed
    CHECK (strchr (s_trace, 'C') == NULL && strlen (s_trace) >= 2);
    CHECK (relais_store_resizes (store) == 1);
    CHECK (relais_store_map_size (store) == 2 << 20);
    fprintf (stderr, "    full after %llu events\n", (unsigned long long) committed);
    CHECK (committed > 1000);

    uint64_t last = 0;
    CHECK_OK (relais_store_read (store, s_last, &last));
    CHECK (last == committed);
    CHECK_OK (relais_store_read (store, s_read_all, &committed));
    //  A small write still fits in the pages LMDB frees between txns
    CHECK_OK (relais_store_write (store, s_meta_bump, NULL));
    CHECK_OK (relais_store_write (store, s_meta_bump, NULL));
    uint64_t value = 0;
    CHECK_OK (relais_store_read (store, s_meta_read, &value));
    CHECK (value == 2);
    relais_store_destroy (&store);

    store = s_open ("cap", 1 << 20, 2 << 20);
    CHECK_OK (relais_store_read (store, s_read_all, &committed));
    relais_store_destroy (&store);
}

//  ---------------------------------------------------------------------------
//  Schema version from the future is refused

#define E(expr) do { \
    int e_rc_ = (expr); \
    if (e_rc_) { \
        fprintf (stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #expr, mdb_strerror (e_rc_)); \
        exit (1); \
    } \
} while (0)

static void
test_schema_future (void)
{
    relais_store_t *store = s_open ("schema", 0, 0);
    relais_store_destroy (&store);

    //  Forge version 2 with the raw API (schema_version is internal)
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    E (mdb_env_create (&env));
    E (mdb_env_set_maxdbs (env, 8));
    E (mdb_env_open (env, s_dir ("schema"), 0, 0600));
    E (mdb_txn_begin (env, NULL, 0, &txn));
    E (mdb_dbi_open (txn, "meta", 0, &dbi));
    MDB_val key = { 14, (void *) "schema_version" };
    MDB_val val;
    E (mdb_get (txn, dbi, &key, &val));
    CHECK (val.mv_size == 8 && relais_key_to_u64 (val.mv_data) == RELAIS_STORE_SCHEMA_VERSION);
    uint8_t version [8];
    relais_u64_to_key (RELAIS_STORE_SCHEMA_VERSION + 1, version);
    val.mv_size = 8;
    val.mv_data = version;
    E (mdb_put (txn, dbi, &key, &val, 0));
    E (mdb_txn_commit (txn));
    mdb_env_close (env);

    relais_store_opts_t opts = { 0, 0, s_dbs, 0 };
    store = relais_store_new (s_dir ("schema"), &opts);
    CHECK (store == NULL);
}

//  ---------------------------------------------------------------------------
//  A reader killed with its read txn open leaves a slot; tick clears it

static void
test_stale_reader (void)
{
    relais_store_t *store = s_open ("readers", 0, 0);
    CHECK (relais_store_tick (store) == 0);
    fflush (stderr);
    pid_t pid = fork ();
    CHECK (pid >= 0);
    if (pid == 0) {
        //  The child never touches the parent's env: it opens its own
        MDB_env *env;
        MDB_txn *txn;
        if (mdb_env_create (&env)
        ||  mdb_env_set_maxdbs (env, 8)
        ||  mdb_env_open (env, s_dir ("readers"), MDB_NOTLS, 0600)
        ||  mdb_txn_begin (env, NULL, MDB_RDONLY, &txn))
            _exit (2);
        kill (getpid (), SIGKILL);
        _exit (3);
    }
    int status;
    CHECK (waitpid (pid, &status, 0) == pid);
    CHECK (WIFSIGNALED (status) && WTERMSIG (status) == SIGKILL);
    CHECK (relais_store_tick (store) == 1);
    CHECK (relais_store_tick (store) == 0);
    //  And the store still works
    CHECK_OK (relais_store_write (store, s_put_one, NULL));
    relais_store_destroy (&store);
}

//  ---------------------------------------------------------------------------

static void
test_bad_folder (void)
{
    char path [700];
    snprintf (path, sizeof path, "%s/afile", s_root);
    FILE *file = fopen (path, "w");
    CHECK (file);
    fclose (file);
    snprintf (path, sizeof path, "%s/afile/store", s_root);
    relais_store_opts_t opts = { 0, 0, s_dbs, 0 };
    CHECK (relais_store_new (path, &opts) == NULL);
    //  mkdir -p of nested folders
    relais_store_t *store = s_open ("deep/er/still", 0, 0);
    relais_store_destroy (&store);
    struct stat st;
    CHECK (stat (s_dir ("deep"), &st) == 0 && (st.st_mode & 0777) == 0700);
}

//  ---------------------------------------------------------------------------
//  backup and verify

static int
s_append_ten (relais_txn_t *txn, void *arg)
{
    (void) arg;
    uint64_t first, last;
    CHECK_OK (relais_log_bounds (txn, &first, &last));
    for (uint64_t seq = last + 1; seq <= last + 10; seq++)
        CHECK_OK (relais_log_append (txn, seq, "event", 5));
    return 0;
}

//  Break the invariant the verifier checks, behind the store's back: meta
//  claims a later last sequence than the log holds
static void
s_forge_last (const char *dir)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi meta;
    E (mdb_env_create (&env));
    E (mdb_env_set_maxdbs (env, 8));
    E (mdb_env_open (env, dir, 0, 0600));
    E (mdb_txn_begin (env, NULL, 0, &txn));
    E (mdb_dbi_open (txn, "meta", 0, &meta));
    uint8_t value [8];
    relais_u64_to_key (99, value);
    MDB_val key = { 8, (void *) "log_last" }, val = { 8, value };
    E (mdb_put (txn, meta, &key, &val, 0));
    E (mdb_txn_commit (txn));
    mdb_env_close (env);
}

static void
test_backup_verify (void)
{
    relais_store_t *store = s_open ("backup-src", 0, 0);
    CHECK_OK (relais_store_write (store, s_append_ten, NULL));
    CHECK_OK (relais_store_write (store, s_append_ten, NULL));
    relais_store_info_t info;
    char src [600], copy [600];
    snprintf (src, sizeof src, "%s", s_dir ("backup-src"));
    snprintf (copy, sizeof copy, "%s", s_dir ("backup-copy"));
    //  Hot: the source stays open in this process while it is copied
    CHECK_OK (relais_store_backup (src, copy, &info));
    CHECK (info.log_first == 1 && info.log_last == 20 && info.log_entries == 20);
    CHECK (info.schema_version == RELAIS_STORE_SCHEMA_VERSION && info.bytes > 0);
    CHECK (relais_store_backup (src, copy, NULL) == -EEXIST);
    CHECK_OK (relais_store_verify (copy, &info));
    CHECK (info.log_last == 20);

    relais_store_destroy (&store);
    s_forge_last (src);
    CHECK (relais_store_verify (src, &info) == RELAIS_EMALFORMED);
    CHECK (relais_store_verify (s_dir ("no-such-store"), &info) != 0);
}

//  ---------------------------------------------------------------------------
//  compaction: erased values leave data.mdb, the rest stays

#define S_CANARY "Canary-Zorglub-0611223344"

//  Count occurrences of needle in dir/data.mdb
static int
s_hits_in (const char *path, const char *needle)
{
    FILE *file = fopen (path, "rb");
    if (!file)
        return 0;
    fseek (file, 0, SEEK_END);
    long size = ftell (file);
    fseek (file, 0, SEEK_SET);
    char *bytes = (char *) malloc ((size_t) size + 1);
    CHECK (bytes && fread (bytes, 1, (size_t) size, file) == (size_t) size);
    fclose (file);
    size_t n = strlen (needle);
    int hits = 0;
    for (long i = 0; i + (long) n <= size; i++)
        hits += memcmp (bytes + i, needle, n) == 0;
    free (bytes);
    return hits;
}

//  Hits in the store's files: data.mdb and the write-ahead log
static int
s_hits (const char *dir, const char *needle)
{
    char path [700];
    snprintf (path, sizeof path, "%s/data.mdb", dir);
    int hits = s_hits_in (path, needle);
    snprintf (path, sizeof path, "%s/wal", dir);
    return hits + s_hits_in (path, needle);
}

//  Records with the canary: small ones (in a page), a big one (overflow pages)
static int
s_put_canaries (relais_txn_t *txn, void *arg)
{
    (void) arg;
    int db = relais_store_dbi (relais_txn_store (txn), "things");
    char key [16], val [64];
    for (int i = 0; i < 50; i++) {
        snprintf (key, sizeof key, "c%03d", i);
        snprintf (val, sizeof val, "%s #%d", S_CANARY, i);
        CHECK_OK (relais_txn_put (txn, db, key, strlen (key), val, strlen (val)));
        snprintf (key, sizeof key, "keep%03d", i);
        CHECK_OK (relais_txn_put (txn, db, key, strlen (key), "kept", 4));
    }
    static char big [20000];
    for (size_t i = 0; i + sizeof S_CANARY < sizeof big; i += sizeof S_CANARY)
        memcpy (big + i, S_CANARY "|", sizeof S_CANARY);
    CHECK_OK (relais_txn_put (txn, db, "big", 3, big, sizeof big));
    uint64_t first, last;
    CHECK_OK (relais_log_bounds (txn, &first, &last));
    CHECK_OK (relais_log_append (txn, last + 1, "event", 5));
    return relais_ckpt_set (txn, "intake", 7);
}

//  Erase: overwrite half (shorter values, same keys), delete the rest
static int
s_erase_canaries (relais_txn_t *txn, void *arg)
{
    (void) arg;
    int db = relais_store_dbi (relais_txn_store (txn), "things");
    char key [16];
    for (int i = 0; i < 50; i++) {
        snprintf (key, sizeof key, "c%03d", i);
        if (i % 2)
            CHECK_OK (relais_txn_del (txn, db, key, strlen (key)));
        else
            CHECK_OK (relais_txn_put (txn, db, key, strlen (key), "x", 1));
    }
    return relais_txn_del (txn, db, "big", 3);
}

static int
s_check_after (relais_txn_t *txn, void *arg)
{
    (void) arg;
    int db = relais_store_dbi (relais_txn_store (txn), "things");
    const void *val;
    size_t size;
    char key [16];
    for (int i = 0; i < 50; i++) {
        snprintf (key, sizeof key, "keep%03d", i);
        CHECK_OK (relais_txn_get (txn, db, key, strlen (key), &val, &size));
        CHECK (size == 4 && memcmp (val, "kept", 4) == 0);
        snprintf (key, sizeof key, "c%03d", i);
        int rc = relais_txn_get (txn, db, key, strlen (key), &val, &size);
        CHECK (i % 2? rc == RELAIS_ENOTFOUND: rc == 0 && size == 1);
    }
    CHECK (relais_txn_get (txn, db, "big", 3, &val, &size) == RELAIS_ENOTFOUND);
    uint64_t first, last, seq;
    CHECK_OK (relais_log_bounds (txn, &first, &last));
    CHECK (first == 1 && last == (uint64_t) (uintptr_t) arg);
    CHECK_OK (relais_ckpt_get (txn, "intake", &seq));
    CHECK (seq == 7);
    return 0;
}

static int
s_check_after_1 (relais_txn_t *txn, void *arg)
{
    (void) arg;
    return s_check_after (txn, (void *) (uintptr_t) 1);
}

static int
s_check_after_11 (relais_txn_t *txn, void *arg)
{
    (void) arg;
    return s_check_after (txn, (void *) (uintptr_t) 11);
}

static void
test_compact (void)
{
    relais_store_t *store = s_open ("compact", 0, 0);
    char dir [600];
    snprintf (dir, sizeof dir, "%s", s_dir ("compact"));
    CHECK_OK (relais_store_write (store, s_put_canaries, NULL));
    CHECK (s_hits (dir, S_CANARY) > 50);
    CHECK_OK (relais_store_write (store, s_erase_canaries, NULL));
    //  Deleting is not enough: LMDB keeps the old pages (copy on write)
    CHECK (s_hits (dir, S_CANARY) > 0);
    size_t before = 0, after = 0;
    CHECK_OK (relais_store_compact (store, &before, &after));
    CHECK (before > 0 && after > 0 && after <= before);
    CHECK (s_hits (dir, S_CANARY) == 0);
    CHECK_OK (relais_store_read (store, s_check_after_1, NULL));
    //  The store goes on: writes, reads, the log continues
    CHECK_OK (relais_store_write (store, s_append_ten, NULL));
    CHECK_OK (relais_store_read (store, s_check_after_11, NULL));
    relais_store_info_t info;
    //  The ten are acked, in the write-ahead log: verify reads the
    //  checkpoint and counts the record; a checkpoint moves them to LMDB
    CHECK_OK (relais_store_verify (dir, &info));
    CHECK (info.log_last == 1 && info.wal_records == 1);
    relais_store_tick (store);
    CHECK_OK (relais_store_verify (dir, &info));
    CHECK (info.log_last == 11 && info.log_entries == 11 && info.wal_records == 0);
    //  Compacting twice is harmless; no temp folder is left
    CHECK_OK (relais_store_compact (store, NULL, NULL));
    char tmp [700];
    snprintf (tmp, sizeof tmp, "%s/compact.tmp", dir);
    struct stat st;
    CHECK (stat (tmp, &st) != 0 && errno == ENOENT);
    relais_store_destroy (&store);
    //  And it reopens from the compacted file
    store = s_open ("compact", 0, 0);
    CHECK_OK (relais_store_read (store, s_check_after_11, NULL));
    CHECK (s_hits (dir, S_CANARY) == 0);
    relais_store_destroy (&store);
}

int
main (void)
{
    relais_log_init ("test_store");
    const char *tmp = getenv ("RELAIS_TEST_TMP");
    if (!tmp || !*tmp)
        tmp = "/tmp";
    mkdir (tmp, 0700);
    snprintf (s_root, sizeof s_root, "%s/test_store.%d", tmp, (int) getpid ());
    CHECK (mkdir (s_root, 0700) == 0);

    RUN (test_kv);
    RUN (test_hooks_and_abort);
    RUN (test_log_ckpt_meta);
    RUN (test_log_gap_aborts);
    RUN (test_map_growth);
    RUN (test_map_cap);
    RUN (test_schema_future);
    RUN (test_stale_reader);
    RUN (test_bad_folder);
    RUN (test_backup_verify);
    RUN (test_compact);

    CHECK (nftw (s_root, s_remove_one, 16, FTW_DEPTH | FTW_PHYS) == 0);
    fprintf (stderr, "test_store: OK\n");
    return 0;
}
