/*  The publisher and the subscriber in one process, on real ipc:// sockets:
    publish-after-commit, late join (fetch from the log), drops at a tiny
    high-water mark (gap detection and repair), a silent tail announced by
    heartbeats only, and resume from the checkpoint after a restart. */
#include "relais_bus.h"
#include "relais_clock.h"
#include "relais_test.h"

#include <sys/stat.h>
#include <unistd.h>

#define MAX_SEQ 20000

static const char *const s_pub_dbs [] = { NULL };
static const char *const s_sub_dbs [] = { NULL };

static char s_dir [256];
static char s_pub_ep [300], s_fetch_ep [300];
static uint32_t s_applied [MAX_SEQ + 1];     //  times each seq was applied
static uint32_t s_applied_committed [MAX_SEQ + 1];
static uint64_t s_last_applied;
static bool s_order_ok = true;
static int s_fail_next;                      //  make the apply callback fail

static int
s_apply (relais_txn_t *txn, const char *topic, const relais_envelope_t *env, void *arg)
{
    if (s_fail_next) {
        s_fail_next--;
        return RELAIS_EFULL;                 //  storage trouble: txn aborted
    }
    CHECK (env->seq <= MAX_SEQ);
    CHECK (strcmp (topic, "test.event") == 0 || strcmp (topic, "test.other") == 0);
    s_applied [env->seq]++;
    if (env->seq != s_last_applied + 1)
        s_order_ok = false;
    s_last_applied = env->seq;
    return 0;
}

//  The apply counts above include aborted attempts; what counts is what
//  was committed, which the commit hook snapshots.
static void
s_on_commit (void *arg)
{
    memcpy (s_applied_committed, s_applied, sizeof s_applied);
}

static void
s_on_abort (void *arg)
{
    memcpy (s_applied, s_applied_committed, sizeof s_applied);
    //  s_last_applied is rewound by the subscriber's own state; recompute
    s_last_applied = 0;
    for (uint64_t i = 1; i <= MAX_SEQ && s_applied [i]; i++)
        s_last_applied = i;
}

typedef struct {
    relais_pub_t *pub;
    int count;
    uint64_t first;
    bool fail;
} s_batch_t;

static int
s_publish_batch (relais_txn_t *txn, void *arg)
{
    s_batch_t *b = (s_batch_t *) arg;
    const uint8_t body [] = { 0x81, 0xa1, 'n', 0x01 };     //  {n: 1}
    for (int i = 0; i < b->count; i++) {
        uint64_t seq;
        CHECK_OK (relais_pub_append (b->pub, txn, i % 3? "test.event": "test.other",
                                     "K-1", NULL, 0, body, sizeof body, &seq));
        if (i == 0)
            b->first = seq;
    }
    return b->fail? RELAIS_ECONFLICT: 0;
}

static void
s_publish (relais_store_t *store, relais_pub_t *pub, int count)
{
    s_batch_t b = { pub, count, 0, false };
    CHECK_OK (relais_store_write (store, s_publish_batch, &b));
}

static void
s_spin (uv_loop_t *loop, relais_sub_t *sub, uint64_t target, int seconds)
{
    uint64_t deadline = relais_clock_mono () + (uint64_t) seconds * 1000000;
    while (relais_clock_mono () < deadline) {
        uv_run (loop, UV_RUN_NOWAIT);
        relais_sub_source_t st;
        relais_sub_source (sub, 0, &st);
        if (st.applied >= target && !st.catching_up)
            return;
        usleep (1000);
    }
}

static void
s_check_exactly_once (uint64_t upto)
{
    for (uint64_t i = 1; i <= upto; i++)
        if (s_applied_committed [i] != 1) {
            fprintf (stderr, "seq %llu applied %u times\n", (unsigned long long) i,
                     s_applied_committed [i]);
            CHECK (false);
        }
    CHECK (s_applied_committed [upto + 1] == 0);
}

static relais_sub_t *
s_sub_open (uv_loop_t *loop, relais_store_t *store, int hwm)
{
    relais_sub_opts_t opts = { .heartbeat_ms = 100, .fetch_timeout_ms = 500, .rcvhwm = hwm };
    relais_sub_t *sub = relais_sub_new (loop, store, &opts, s_apply, NULL);
    CHECK (sub);
    CHECK_OK (relais_sub_add (sub, "tester", s_pub_ep, s_fetch_ep, NULL));
    CHECK_OK (relais_sub_start (sub));
    return sub;
}

static void
test_bus (void)
{
    const char *tmp = getenv ("RELAIS_TEST_TMP");
    snprintf (s_dir, sizeof s_dir, "%s/bus-%d", tmp? tmp: "/tmp", (int) getpid ());
    mkdir (tmp? tmp: "/tmp", 0700);
    CHECK (mkdir (s_dir, 0700) == 0);
    snprintf (s_pub_ep, sizeof s_pub_ep, "ipc://%s/pub", s_dir);
    snprintf (s_fetch_ep, sizeof s_fetch_ep, "ipc://%s/fetch", s_dir);
    char pub_path [300], sub_path [300];
    snprintf (pub_path, sizeof pub_path, "%s/pub-store", s_dir);
    snprintf (sub_path, sizeof sub_path, "%s/sub-store", s_dir);

    uv_loop_t loop;
    uv_loop_init (&loop);
    relais_store_opts_t pub_opts = { 1 << 20, 0, s_pub_dbs, 0 };
    relais_store_t *pub_store = relais_store_new (pub_path, &pub_opts);
    CHECK (pub_store);
    relais_pub_opts_t opts = { "tester", s_pub_ep, s_fetch_ep, 100, 4096, 100, 0 };
    relais_pub_t *pub = relais_pub_new (&loop, pub_store, &opts);
    CHECK (pub);

    //  An aborted transaction publishes nothing and its sequences are reused
    s_batch_t failed = { pub, 10, 0, true };
    CHECK (relais_store_write (pub_store, s_publish_batch, &failed) == RELAIS_ECONFLICT);
    CHECK (relais_pub_last (pub) == 0);

    //  Late joiner: 500 events before the subscriber exists
    for (int i = 0; i < 5; i++)
        s_publish (pub_store, pub, 100);
    CHECK (relais_pub_last (pub) == 500);

    relais_store_opts_t sub_opts = { 1 << 20, 0, s_sub_dbs, 0 };
    relais_store_t *sub_store = relais_store_new (sub_path, &sub_opts);
    CHECK (sub_store);
    relais_store_hook (sub_store, NULL, s_on_commit, s_on_abort, NULL);
    relais_sub_t *sub = s_sub_open (&loop, sub_store, 1);
    s_spin (&loop, sub, 500, 20);
    s_check_exactly_once (500);
    CHECK (s_order_ok);

    //  Live traffic at a high-water mark of 1: drops, gaps, fetches
    for (int i = 0; i < 20; i++) {
        s_publish (pub_store, pub, 250);
        uv_run (&loop, UV_RUN_NOWAIT);
    }
    s_spin (&loop, sub, 5500, 30);
    s_check_exactly_once (5500);
    CHECK (s_order_ok);
    relais_sub_source_t st;
    relais_sub_source (sub, 0, &st);
    CHECK (st.applied == 5500 && st.known == 5500);
    CHECK (relais_sub_caught_up (sub));

    //  Storage trouble while applying: nothing is lost, the tick retries
    s_fail_next = 2;
    s_publish (pub_store, pub, 10);
    s_spin (&loop, sub, 5510, 20);
    s_check_exactly_once (5510);

    //  Restart: the checkpoint survives, nothing is applied twice, and a
    //  silent tail (published while down, no later event) arrives through
    //  the first fetch or the heartbeat.
    relais_sub_close (&sub);
    uv_run (&loop, UV_RUN_NOWAIT);
    s_publish (pub_store, pub, 7);
    relais_store_destroy (&sub_store);
    sub_store = relais_store_new (sub_path, &sub_opts);
    CHECK (sub_store);
    relais_store_hook (sub_store, NULL, s_on_commit, s_on_abort, NULL);
    sub = s_sub_open (&loop, sub_store, 1000);
    s_spin (&loop, sub, 5517, 20);
    s_check_exactly_once (5517);
    CHECK (s_order_ok);

    //  Status reply of the fetch endpoint
    relais_pub_attach_sub (pub, sub);
    relais_pub_stats_t stats;
    relais_pub_stats (pub, &stats);
    CHECK (stats.published == 5517);
    CHECK (stats.fetches > 0);
    CHECK (stats.heartbeats > 0);

    relais_sub_close (&sub);
    relais_pub_close (&pub);
    CHECK (sub == NULL && pub == NULL);
    uv_run (&loop, UV_RUN_DEFAULT);         //  let the close callbacks run
    CHECK (uv_loop_close (&loop) == 0);     //  no handle leaked
    relais_store_destroy (&sub_store);
    relais_store_destroy (&pub_store);
    char cmd [400];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    CHECK (system (cmd) == 0);
}

int
main (void)
{
    zsys_handler_set (NULL);
    RUN (test_bus);
    printf ("test_bus: OK\n");
    return 0;
}
