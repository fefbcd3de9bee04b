/*  The mailbox session table on a real ROUTER (ipc://) with two DEALER
    followers, one sending the empty delimiter and one not: open, replace
    by name and by identity, lookup, drop, the framing of sends, and the
    window walk over a store (acked mark, window, skip, wait, the box
    boundary between "a" and "ab"). */
#include "relais_mailbox.h"
#include "relais_clock.h"
#include "relais_test.h"

#include <unistd.h>

static const char *const s_dbs [] = { "box", NULL };
enum { S_DB_BOX };

static relais_request_t s_req;          //  the last request the ROUTER read
static bool s_got;

static void
s_on_msg (relais_poller_t *poller, zmsg_t **msg_p, void *arg)
{
    relais_request_release (&s_req);
    CHECK_OK (relais_request_take (msg_p, &s_req));
    s_got = true;
}

//  Send one frame from dealer (after the empty delimiter when asked) and
//  turn the loop until the ROUTER has it in s_req
static void
s_hello (uv_loop_t *loop, zsock_t *dealer, bool delimiter)
{
    s_got = false;
    if (delimiter)
        zstr_sendm (dealer, "");
    zstr_send (dealer, "hello");
    for (int i = 0; i < 5000 && !s_got; i++) {
        uv_run (loop, UV_RUN_NOWAIT);
        if (!s_got)
            usleep (1000);
    }
    CHECK (s_got);
    CHECK (s_req.delimiter == delimiter);
}

//  Receive one message on dealer: its frames, the body decoded
static void
s_expect (zsock_t *dealer, bool delimiter, const char *op, uint64_t mseq)
{
    zmsg_t *msg = zmsg_recv (dealer);
    CHECK (msg);
    CHECK (zmsg_size (msg) == (delimiter? 2u: 1u));
    if (delimiter) {
        zframe_t *empty = zmsg_pop (msg);
        CHECK (zframe_size (empty) == 0);
        zframe_destroy (&empty);
    }
    zframe_t *data = zmsg_pop (msg);
    relais_msg_t body;
    relais_error_t err;
    CHECK_OK (relais_msg_decode (&body, zframe_data (data), zframe_size (data), NULL, &err));
    CHECK (relais_msg_str_eq (relais_msg_get (&body.root, "op"), op));
    uint64_t got = 0;
    if (mseq) {
        CHECK (relais_msg_uint (relais_msg_get (&body.root, "mseq"), &got));
        CHECK (got == mseq);
    }
    relais_msg_release (&body);
    zframe_destroy (&data);
    zmsg_destroy (&msg);
}

static bool
s_nothing (zsock_t *dealer)
{
    zsock_set_rcvtimeo (dealer, 50);
    zmsg_t *msg = zmsg_recv (dealer);
    zsock_set_rcvtimeo (dealer, 5000);
    zmsg_destroy (&msg);
    return msg == NULL;
}

//  Entries: value "skip" is passed, "wait" stops the walk, others are sent
static relais_mailbox_verdict_t
s_pack (uint64_t mseq, const void *val, size_t vlen, msgpack_packer *pk, void *arg)
{
    (*(int *) arg)++;
    if (vlen == 4 && memcmp (val, "skip", 4) == 0)
        return RELAIS_MAILBOX_SKIP;
    if (vlen == 4 && memcmp (val, "wait", 4) == 0)
        return RELAIS_MAILBOX_WAIT;
    msgpack_pack_map (pk, 2);
    relais_pack_kv_str (pk, "op", "deliver");
    relais_pack_kv_uint (pk, "mseq", mseq);
    return RELAIS_MAILBOX_SEND;
}

typedef struct {
    const char *name;
    uint64_t mseq;
    const char *value;
} s_put_t;

static int
s_put (relais_txn_t *txn, void *arg)
{
    const s_put_t *p = (const s_put_t *) arg;
    uint8_t key [RELAIS_MAILBOX_KEY_MAX];
    size_t klen = relais_mailbox_key (p->name, p->mseq, key);
    return relais_txn_put (txn, S_DB_BOX, key, klen, p->value, strlen (p->value));
}

static int
s_set_acked (relais_txn_t *txn, void *arg)
{
    return relais_meta_set (txn, "acked/a", *(uint64_t *) arg);
}

static void
test_mailbox (void)
{
    char dir [] = "/tmp/relais-test-mailbox-XXXXXX";
    CHECK (mkdtemp (dir));
    char endpoint [128], path [128];
    snprintf (endpoint, sizeof endpoint, "ipc://%s/box", dir);
    snprintf (path, sizeof path, "%s/store", dir);
    uv_loop_t loop;
    uv_loop_init (&loop);

    //  The key: name, a zero byte, the mseq big-endian
    uint8_t key [RELAIS_MAILBOX_KEY_MAX];
    CHECK (relais_mailbox_key ("ab", 258, key) == 11);
    CHECK (key [0] == 'a' && key [1] == 'b' && key [2] == 0);
    CHECK (key [9] == 1 && key [10] == 2 && key [3] == 0);

    int packed = 0;
    relais_mailbox_opts_t opts = {
        .what = "follower", .name_field = "box", .db = S_DB_BOX, .acked_prefix = "acked/",
        .heartbeat_us = 1000000, .redeliver_us = 10000000, .window = 2,
        .pack = s_pack, .pack_arg = &packed
    };
    relais_mailbox_t *mbox = relais_mailbox_new (&opts);
    CHECK (mbox);
    CHECK (relais_mailbox_size (mbox) == 0);

    zsock_t *router = relais_sock_new (ZMQ_ROUTER, endpoint, RELAIS_SOCK_BIND, RELAIS_MSG_MAX_BYTES);
    CHECK (router);
    relais_poller_t *poller = relais_poller_new (&loop, &router, 16, s_on_msg, NULL, NULL);
    CHECK (poller);
    zsock_t *plain = zsock_new_dealer (endpoint);
    zsock_t *framed = zsock_new_dealer (endpoint);
    CHECK (plain && framed);
    zsock_set_rcvtimeo (plain, 5000);
    zsock_set_rcvtimeo (framed, 5000);

    //  Not attached: a send is refused, the walk reads nothing
    s_hello (&loop, plain, false);
    relais_mailbox_session_t *a = relais_mailbox_open (mbox, "a", &s_req);
    CHECK (a && a->sent_upto == 0 && !a->delimiter && a->heard_mono > 0);
    CHECK (relais_mailbox_send_op (mbox, a, "ping") == -ESHUTDOWN);
    CHECK (relais_mailbox_deliver (mbox, a) == 0 && packed == 0);

    relais_store_opts_t store_opts = { 1 << 20, 0, s_dbs, 0 };
    relais_store_t *store = relais_store_new (path, &store_opts);
    CHECK (store);
    relais_mailbox_attach (mbox, store, poller);

    //  Lookup by name and by identity
    CHECK (relais_mailbox_by_name (mbox, "a") == a);
    CHECK (relais_mailbox_by_identity (mbox, s_req.identity) == a);
    CHECK (relais_mailbox_by_name (mbox, "ab") == NULL);

    //  Delimiter off: one data frame
    CHECK_OK (relais_mailbox_send_op (mbox, a, "ping"));
    s_expect (plain, false, "ping", 0);

    //  Delimiter on: the empty frame, then the data
    s_hello (&loop, framed, true);
    relais_mailbox_session_t *ab = relais_mailbox_open (mbox, "ab", &s_req);
    CHECK (ab && ab->delimiter);
    CHECK (relais_mailbox_size (mbox) == 2);
    CHECK_OK (relais_mailbox_send_op (mbox, ab, "welcome"));
    s_expect (framed, true, "welcome", 0);

    //  The window walk: a holds 1..5 (3 skipped, 5 waited for), acked 1;
    //  ab's entries are another box
    static const s_put_t puts [] = {
        { "a", 1, "one" }, { "a", 2, "two" }, { "a", 3, "skip" }, { "a", 4, "four" },
        { "a", 5, "wait" }, { "a", 6, "six" }, { "ab", 1, "other" }, { "ab", 2, "other" }
    };
    for (size_t i = 0; i < sizeof puts / sizeof puts [0]; i++)
        CHECK_OK (relais_store_write (store, s_put, (void *) &puts [i]));
    uint64_t acked = 1;
    CHECK_OK (relais_store_write (store, s_set_acked, &acked));
    //  From acked + 1 while fewer than 2 are outstanding: 2 sent, 3 passed
    CHECK (relais_mailbox_deliver (mbox, a) == 1);
    CHECK (a->sent_upto == 3);
    s_expect (plain, false, "deliver", 2);
    CHECK (s_nothing (plain));
    //  Acked up to 3: 4 sent, then 5 is waited for, so 6 is not sent
    acked = 3;
    CHECK_OK (relais_store_write (store, s_set_acked, &acked));
    CHECK (relais_mailbox_deliver (mbox, a) == 1);
    CHECK (a->sent_upto == 4);
    s_expect (plain, false, "deliver", 4);
    CHECK (s_nothing (plain));
    //  ab has no acked mark: its own 1 and 2 (window 2), framed
    CHECK (relais_mailbox_deliver_all (mbox) == 2);
    CHECK (ab->sent_upto == 2);
    s_expect (framed, true, "deliver", 1);
    s_expect (framed, true, "deliver", 2);
    CHECK (s_nothing (plain));

    //  A new hello for a box replaces its session (another identity)
    s_hello (&loop, framed, true);
    relais_mailbox_session_t *a2 = relais_mailbox_open (mbox, "a", &s_req);
    CHECK (a2 && a2->sent_upto == 0 && a2->delimiter);
    //  ... and the identity's previous box ("ab") was closed with it
    CHECK (relais_mailbox_size (mbox) == 1);
    CHECK (relais_mailbox_by_name (mbox, "a") == a2);
    CHECK (relais_mailbox_by_name (mbox, "ab") == NULL);
    CHECK (relais_mailbox_by_identity (mbox, s_req.identity) == a2);
    CHECK_OK (relais_mailbox_send_op (mbox, a2, "ping"));
    s_expect (framed, true, "ping", 0);
    CHECK (s_nothing (plain));

    //  A quiet session is pinged on a tick; a silent one is dropped
    a2->sent_mono -= 2000000;
    CHECK (relais_mailbox_tick (mbox) == 0);
    s_expect (framed, true, "ping", 0);
    a2->heard_mono -= 4000000;
    relais_mailbox_tick (mbox);
    CHECK (relais_mailbox_size (mbox) == 0);
    CHECK (relais_mailbox_by_name (mbox, "a") == NULL);

    //  Drop by hand
    s_hello (&loop, plain, false);
    relais_mailbox_session_t *b = relais_mailbox_open (mbox, "b", &s_req);
    CHECK (b && relais_mailbox_size (mbox) == 1);
    relais_mailbox_drop (mbox, b);
    relais_mailbox_drop (mbox, NULL);
    CHECK (relais_mailbox_size (mbox) == 0);
    CHECK (relais_mailbox_by_identity (mbox, s_req.identity) == NULL);

    //  Destroy with open sessions frees them (ASan checks)
    CHECK (relais_mailbox_open (mbox, "c", &s_req));
    relais_mailbox_attach (mbox, NULL, NULL);
    relais_mailbox_destroy (&mbox);
    relais_mailbox_destroy (&mbox);
    CHECK (mbox == NULL);

    relais_request_release (&s_req);
    zsock_destroy (&plain);
    zsock_destroy (&framed);
    relais_poller_close (&poller);
    uv_run (&loop, UV_RUN_DEFAULT);
    uv_loop_close (&loop);
    relais_store_destroy (&store);
    char cmd [160];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK (system (cmd) == 0);
}

int
main (void)
{
    zsys_handler_set (NULL);
    RUN (test_mailbox);
    printf ("test_mailbox: OK\n");
    return 0;
}
