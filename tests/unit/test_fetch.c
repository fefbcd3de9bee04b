/*  The fetch protocol's limits and its light reader (issue #11, replay):
    relais_fetch_parse on valid replies (the same spans and seqs as a full
    decode), on every truncation and on hostile replies (counts beyond the
    data, depth, an event without seq, trailing bytes); then a publisher's
    fetch endpoint on real ipc:// sockets: the old defaults (1,000 events,
    1 MiB) when max_bytes is absent, max up to 10,000, max_bytes up to the
    server's cap, a small budget still sends one event, bad values refused,
    and a server configured below the protocol's caps keeps its own. */
#include "relais_bus.h"
#include "relais_clock.h"
#include "relais_fetch.h"
#include "relais_log.h"
#include "relais_test.h"

#include <sys/stat.h>
#include <unistd.h>

//  A fetch reply {ok, first, last, rid, events: [count envelopes from seq]}
static void
s_pack_reply (msgpack_sbuffer *sbuf, uint64_t from, size_t count, size_t pad)
{
    msgpack_packer pk;
    msgpack_packer_init (&pk, sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 5);
    relais_pack_kv_bool (&pk, "ok", true);
    relais_pack_kv_uint (&pk, "first", 1);
    relais_pack_kv_uint (&pk, "last", from + count + 5);
    relais_pack_kv_uint (&pk, "rid", 77);
    relais_pack_str (&pk, "events");
    msgpack_pack_array (&pk, count);
    char text [300];
    memset (text, 'x', sizeof text);
    for (size_t i = 0; i < count; i++) {
        msgpack_sbuffer body;
        msgpack_sbuffer_init (&body);
        msgpack_packer bp;
        msgpack_packer_init (&bp, &body, msgpack_sbuffer_write);
        msgpack_pack_map (&bp, 3);
        relais_pack_kv_uint (&bp, "n", i);
        relais_pack_str (&bp, "list");
        msgpack_pack_array (&bp, 2);
        msgpack_pack_map (&bp, 1);
        relais_pack_kv_str (&bp, "deep", "é");
        msgpack_pack_int64 (&bp, -5);
        relais_pack_str (&bp, "pad");
        relais_pack_strn (&bp, text, pad < sizeof text? pad: sizeof text);
        msgpack_sbuffer env;
        msgpack_sbuffer_init (&env);
        relais_envelope_pack (&env, "intake", from + i, 1700000000000000ULL, "signal.created",
                              "SIG-1", i % 2? "intake:3": NULL, body.data, body.size);
        relais_pack_raw (&pk, env.data, env.size);
        msgpack_sbuffer_destroy (&env);
        msgpack_sbuffer_destroy (&body);
    }
}

static int
s_parse (relais_fetch_page_t *page, const void *data, size_t size)
{
    relais_error_t err;
    relais_error_clear (&err);
    int rc = relais_fetch_parse (page, data, size, NULL, &err);
    if (rc)
        CHECK (err.code != NULL && err.message [0]);
    return rc;
}

static void
test_parse_valid (void)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    s_pack_reply (&sbuf, 41, 50, 120);
    relais_fetch_page_t page;
    memset (&page, 0, sizeof page);
    CHECK_OK (s_parse (&page, sbuf.data, sbuf.size));
    CHECK (page.ok && page.has_first && page.first == 1);
    CHECK (page.has_last && page.last == 41 + 50 + 5);
    CHECK (page.has_rid && page.rid == 77);
    CHECK (page.count == 50);

    //  The same spans and seqs as the full decode sees
    relais_msg_t msg;
    relais_error_t err;
    relais_msg_limits_t limits = { 1 << 20, 0, 1 << 20 };
    CHECK_OK (relais_msg_decode (&msg, sbuf.data, sbuf.size, &limits, &err));
    const msgpack_object *events = relais_msg_get (&msg.root, "events");
    CHECK (events && events->via.array.size == 50);
    for (size_t i = 0; i < page.count; i++) {
        CHECK (page.events [i].seq == 41 + i);
        //  each span is one whole envelope: decodable alone, same seq
        relais_msg_t one;
        CHECK_OK (relais_msg_decode (&one, page.events [i].data, page.events [i].size, NULL, &err));
        relais_envelope_t env;
        CHECK_OK (relais_envelope_decode (&one.root, false, &env, &err));
        CHECK (env.seq == page.events [i].seq);
        CHECK_STR (env.type, "signal.created");
        relais_msg_release (&one);
        if (i + 1 < page.count)
            CHECK (page.events [i].data + page.events [i].size == page.events [i + 1].data);
    }
    relais_msg_release (&msg);

    //  The page is reused: a smaller reply after a larger one
    msgpack_sbuffer_clear (&sbuf);
    s_pack_reply (&sbuf, 1, 3, 0);
    CHECK_OK (s_parse (&page, sbuf.data, sbuf.size));
    CHECK (page.count == 3 && page.events [2].seq == 3 && page.alloc >= 50);

    //  An empty page (from beyond last)
    msgpack_sbuffer_clear (&sbuf);
    s_pack_reply (&sbuf, 9, 0, 0);
    CHECK_OK (s_parse (&page, sbuf.data, sbuf.size));
    CHECK (page.ok && page.count == 0);

    //  An error reply: ok false, its code, first and last, no events
    msgpack_sbuffer_clear (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 6);
    relais_pack_kv_bool (&pk, "ok", false);
    relais_pack_kv_str (&pk, "code", "gone");
    relais_pack_kv_str (&pk, "message", "the log no longer holds that range");
    relais_pack_kv_uint (&pk, "first", 500);
    relais_pack_kv_uint (&pk, "last", 900);
    relais_pack_str (&pk, "rid");
    relais_pack_str (&pk, "not-an-integer");
    CHECK_OK (s_parse (&page, sbuf.data, sbuf.size));
    CHECK (!page.ok && page.first == 500 && page.last == 900 && !page.has_rid);
    CHECK_STR (page.code, "gone");
    CHECK (page.count == 0);

    //  A code that is not one of ours is not kept (it may be printed)
    msgpack_sbuffer_clear (&sbuf);
    msgpack_pack_map (&pk, 2);
    relais_pack_kv_bool (&pk, "ok", false);
    relais_pack_kv_str (&pk, "code", "\x1b[31mred");
    CHECK_OK (s_parse (&page, sbuf.data, sbuf.size));
    CHECK (page.code [0] == 0);

    //  Keys that are not strings, and unknown keys, are skipped
    msgpack_sbuffer_clear (&sbuf);
    msgpack_pack_map (&pk, 4);
    msgpack_pack_array (&pk, 1);            //  [1]: 2
    msgpack_pack_uint64 (&pk, 1);
    msgpack_pack_uint64 (&pk, 2);
    relais_pack_kv_str (&pk, "later", "x");
    relais_pack_kv_bool (&pk, "ok", true);
    relais_pack_str (&pk, "events");
    msgpack_pack_array (&pk, 1);
    msgpack_pack_map (&pk, 2);
    msgpack_pack_uint64 (&pk, 3);           //  3: "seq" (not a str key)
    relais_pack_str (&pk, "seq");
    relais_pack_kv_uint (&pk, "seq", 12);
    CHECK_OK (s_parse (&page, sbuf.data, sbuf.size));
    CHECK (page.ok && page.count == 1 && page.events [0].seq == 12);

    relais_fetch_page_release (&page);
    CHECK (page.events == NULL && page.alloc == 0);
    relais_fetch_page_release (&page);      //  twice is safe
    msgpack_sbuffer_destroy (&sbuf);
}

static void
test_parse_hostile (void)
{
    relais_fetch_page_t page;
    memset (&page, 0, sizeof page);
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    s_pack_reply (&sbuf, 1, 20, 40);

    //  Every truncation is refused, and so is one trailing byte
    for (size_t n = 0; n < sbuf.size; n++) {
        CHECK (s_parse (&page, sbuf.data, n) != 0);
        CHECK (page.count == 0);
    }
    msgpack_sbuffer_write (&sbuf, "\xc0", 1);
    CHECK (s_parse (&page, sbuf.data, sbuf.size) == RELAIS_EMALFORMED);

    //  Over the byte limit
    relais_error_t err;
    relais_msg_limits_t small = { 16, 0, 0 };
    CHECK (relais_fetch_parse (&page, sbuf.data, sbuf.size, &small, &err) == RELAIS_ETOOLARGE);
    CHECK_STR (err.code, RELAIS_CODE_TOO_LARGE);

    //  Hand-made hostile replies
    static const struct {
        const char *what;
        const char *bytes;
        size_t size;
        int rc;
    } cases [] = {
        { "not a map", "\x93\x01\x02\x03", 4, RELAIS_EMALFORMED },
        { "no ok", "\x81\xa1x\x01", 4, RELAIS_EMALFORMED },
        { "ok not a bool", "\x81\xa2ok\x01", 5, RELAIS_EMALFORMED },
        { "ok without events", "\x81\xa2ok\xc3", 5, RELAIS_EMALFORMED },
        { "events not an array", "\x82\xa2ok\xc3\xa6""events\x81\x01\x02", 15, RELAIS_EMALFORMED },
        { "an event not a map", "\x82\xa2ok\xc3\xa6""events\x91\x05", 14, RELAIS_EMALFORMED },
        { "an event without seq", "\x82\xa2ok\xc3\xa6""events\x91\x81\xa1k\x01", 17, RELAIS_EMALFORMED },
        { "seq 0", "\x82\xa2ok\xc3\xa6""events\x91\x81\xa3seq\x00", 19, RELAIS_EMALFORMED },
        { "seq negative", "\x82\xa2ok\xc3\xa6""events\x91\x81\xa3seq\xff", 19, RELAIS_EMALFORMED },
        { "seq a string", "\x82\xa2ok\xc3\xa6""events\x91\x81\xa3seq\xa1""1", 20, RELAIS_EMALFORMED },
        { "events twice", "\x83\xa2ok\xc3\xa6""events\x90\xa6""events\x90", 21, RELAIS_EMALFORMED },
        { "array32 count beyond the data", "\x82\xa2ok\xc3\xa6""events\xdd\xff\xff\xff\xff\x80", 19,
          RELAIS_EMALFORMED },
        { "map32 count beyond the data", "\xdf\x7f\xff\xff\xff\xa2ok\xc3", 9, RELAIS_EMALFORMED },
        { "str32 length beyond the data", "\x82\xa2ok\xc3\xdb\x7f\xff\xff\xff", 9, RELAIS_EMALFORMED },
        { "bin32 length beyond the data", "\x82\xa2ok\xc3\xa1x\xc6\x7f\xff\xff\xff", 11, RELAIS_EMALFORMED },
        { "reserved byte", "\x82\xa2ok\xc3\xa1x\xc1", 7, RELAIS_EMALFORMED },
        { "first not an integer", "\x82\xa2ok\xc2\xa5""first\xa1x", 12, RELAIS_EMALFORMED },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        int rc = s_parse (&page, cases [i].bytes, cases [i].size);
        if (rc != cases [i].rc) {
            fprintf (stderr, "case '%s': %d\n", cases [i].what, rc);
            CHECK (false);
        }
    }

    //  More events than the protocol allows
    msgpack_sbuffer_clear (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 2);
    relais_pack_kv_bool (&pk, "ok", true);
    relais_pack_str (&pk, "events");
    msgpack_pack_array (&pk, RELAIS_FETCH_MAX_EVENTS + 1);
    for (int i = 0; i <= RELAIS_FETCH_MAX_EVENTS; i++) {
        msgpack_pack_map (&pk, 1);
        relais_pack_kv_uint (&pk, "seq", (uint64_t) i + 1);
    }
    CHECK (s_parse (&page, sbuf.data, sbuf.size) == RELAIS_ETOOLARGE);

    //  Nesting: 40 arrays deep inside an event
    msgpack_sbuffer_clear (&sbuf);
    msgpack_pack_map (&pk, 2);
    relais_pack_kv_bool (&pk, "ok", true);
    relais_pack_str (&pk, "events");
    msgpack_pack_array (&pk, 1);
    msgpack_pack_map (&pk, 2);
    relais_pack_kv_uint (&pk, "seq", 1);
    relais_pack_str (&pk, "body");
    for (int i = 0; i < 40; i++)
        msgpack_pack_array (&pk, 1);
    msgpack_pack_nil (&pk);
    CHECK (s_parse (&page, sbuf.data, sbuf.size) == RELAIS_ETOOLARGE);
    //  ... and the object cap
    relais_msg_limits_t few = { 0, 64, 10 };
    CHECK (relais_fetch_parse (&page, sbuf.data, sbuf.size, &few, &err) == RELAIS_ETOOLARGE);

    relais_fetch_page_release (&page);
    msgpack_sbuffer_destroy (&sbuf);
}

//  ---------------------------------------------------------------------------
//  A publisher's fetch endpoint

static char s_dir [256];

typedef struct {
    relais_pub_t *pub;
    int count;
    size_t pad;
} s_batch_t;

static int
s_publish_batch (relais_txn_t *txn, void *arg)
{
    s_batch_t *b = (s_batch_t *) arg;
    uint8_t body [600];
    //  {p: "xxx..."} with pad bytes of text
    size_t n = 0;
    body [n++] = 0x81;
    body [n++] = 0xa1;
    body [n++] = 'p';
    body [n++] = 0xd9;
    body [n++] = (uint8_t) b->pad;
    memset (body + n, 'x', b->pad);
    n += b->pad;
    for (int i = 0; i < b->count; i++)
        CHECK_OK (relais_pub_append (b->pub, txn, "test.event", "K-1", NULL, 0, body, n, NULL));
    return 0;
}

typedef struct {
    uv_loop_t *loop;
    zsock_t *dealer;
    relais_fetch_page_t page;
    zmq_msg_t frame;
} s_client_t;

//  Send one fetch request (a map built by the caller) and read the reply
static int
s_fetch (s_client_t *c, const msgpack_sbuffer *request)
{
    void *handle = zsock_resolve (c->dealer);
    CHECK (zmq_send (handle, "", 0, ZMQ_SNDMORE) == 0);
    CHECK (zmq_send (handle, request->data, request->size, 0) == (int) request->size);
    uint64_t deadline = relais_clock_mono () + 10 * 1000000ULL;
    for (;;) {
        uv_run (c->loop, UV_RUN_NOWAIT);
        zmq_pollitem_t item = { handle, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll (&item, 1, 1) == 1)
            break;
        CHECK (relais_clock_mono () < deadline);
    }
    zmq_msg_close (&c->frame);
    zmq_msg_init (&c->frame);
    do
        CHECK (zmq_msg_recv (&c->frame, handle, 0) >= 0);
    while (zmq_msg_more (&c->frame));
    relais_error_t err;
    return relais_fetch_parse (&c->page, zmq_msg_data (&c->frame), zmq_msg_size (&c->frame),
                               NULL, &err);
}

//  {op: fetch, from, max?, max_bytes?} (0: absent)
static void
s_request (msgpack_sbuffer *sbuf, uint64_t from, uint64_t max, uint64_t max_bytes)
{
    msgpack_sbuffer_clear (sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 2 + (max > 0) + (max_bytes > 0));
    relais_pack_kv_str (&pk, "op", "fetch");
    relais_pack_kv_uint (&pk, "from", from);
    if (max)
        relais_pack_kv_uint (&pk, "max", max);
    if (max_bytes)
        relais_pack_kv_uint (&pk, "max_bytes", max_bytes);
}

static size_t
s_event_bytes (const relais_fetch_page_t *page)
{
    size_t bytes = 0;
    for (size_t i = 0; i < page->count; i++)
        bytes += page->events [i].size;
    return bytes;
}

static void
s_check_contiguous (const relais_fetch_page_t *page, uint64_t from)
{
    for (size_t i = 0; i < page->count; i++)
        CHECK (page->events [i].seq == from + i);
}

static void
test_server_limits (void)
{
    const char *tmp = getenv ("RELAIS_TEST_TMP");
    snprintf (s_dir, sizeof s_dir, "%s/fetch-%d", tmp? tmp: "/tmp", (int) getpid ());
    mkdir (tmp? tmp: "/tmp", 0700);
    CHECK (mkdir (s_dir, 0700) == 0);
    char pub_ep [300], fetch_ep [300], path [300];
    snprintf (pub_ep, sizeof pub_ep, "ipc://%s/pub", s_dir);
    snprintf (fetch_ep, sizeof fetch_ep, "ipc://%s/fetch", s_dir);
    snprintf (path, sizeof path, "%s/store", s_dir);

    uv_loop_t loop;
    uv_loop_init (&loop);
    static const char *const dbs [] = { NULL };
    relais_store_opts_t store_opts = { 64 << 20, 0, dbs, 0 };
    relais_store_t *store = relais_store_new (path, &store_opts);
    CHECK (store);
    //  The server's caps left at 0: the protocol's (10,000 events, 8 MiB)
    relais_pub_opts_t opts = { "tester", pub_ep, fetch_ep, 1000, 0, 0, 0 };
    relais_pub_t *pub = relais_pub_new (&loop, store, &opts);
    CHECK (pub);
    //  12,000 events of about 280 bytes: 3.3 MB, over the 1 MiB default
    for (int i = 0; i < 12; i++) {
        s_batch_t b = { pub, 1000, 200 };
        CHECK_OK (relais_store_write (store, s_publish_batch, &b));
    }
    CHECK (relais_pub_last (pub) == 12000);

    s_client_t c = { &loop, zsock_new_dealer (fetch_ep), { 0 }, { { 0 } } };
    CHECK (c.dealer);
    zmq_msg_init (&c.frame);
    msgpack_sbuffer req;
    msgpack_sbuffer_init (&req);

    //  No max, no max_bytes: what an old client always got (1,000 events)
    s_request (&req, 1, 0, 0);
    CHECK_OK (s_fetch (&c, &req));
    CHECK (c.page.ok && c.page.count == 1000 && c.page.last == 12000);
    s_check_contiguous (&c.page, 1);

    //  max 5000 without max_bytes: the 1 MiB budget still holds
    s_request (&req, 1, 5000, 0);
    CHECK_OK (s_fetch (&c, &req));
    CHECK (c.page.count > 1000 && c.page.count < 5000);
    CHECK (s_event_bytes (&c.page) <= RELAIS_FETCH_BYTES_DEFAULT);
    CHECK (s_event_bytes (&c.page) + c.page.events [0].size > RELAIS_FETCH_BYTES_DEFAULT);
    s_check_contiguous (&c.page, 1);

    //  max 10000 and max_bytes 8 MiB: a full page
    s_request (&req, 7, 10000, RELAIS_FETCH_BYTES_MAX);
    CHECK_OK (s_fetch (&c, &req));
    CHECK (c.page.count == 10000);
    s_check_contiguous (&c.page, 7);

    //  max over 10,000 is lowered to it; max_bytes over 8 MiB to that
    s_request (&req, 1, 50000, 1ULL << 40);
    CHECK_OK (s_fetch (&c, &req));
    CHECK (c.page.count == 10000);

    //  A small max_bytes: the budget, but always one event
    s_request (&req, 100, 10000, 1000);
    CHECK_OK (s_fetch (&c, &req));
    CHECK (c.page.count >= 1 && s_event_bytes (&c.page) <= 1000);
    s_request (&req, 100, 10000, 1);
    CHECK_OK (s_fetch (&c, &req));
    CHECK (c.page.count == 1 && c.page.events [0].seq == 100);

    //  The end of the log: a short page, then an empty one
    s_request (&req, 11990, 10000, RELAIS_FETCH_BYTES_MAX);
    CHECK_OK (s_fetch (&c, &req));
    CHECK (c.page.count == 11);
    s_request (&req, 12001, 10000, RELAIS_FETCH_BYTES_MAX);
    CHECK_OK (s_fetch (&c, &req));
    CHECK (c.page.ok && c.page.count == 0);

    //  Bad values: refused with the field named, nothing else changes
    s_request (&req, 1, 10, 0);
    msgpack_sbuffer_clear (&req);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &req, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 3);
    relais_pack_kv_str (&pk, "op", "fetch");
    relais_pack_kv_uint (&pk, "from", 1);
    relais_pack_kv_uint (&pk, "max_bytes", 0);
    CHECK_OK (s_fetch (&c, &req));
    CHECK (!c.page.ok);
    CHECK_STR (c.page.code, RELAIS_CODE_INVALID);
    msgpack_sbuffer_clear (&req);
    msgpack_pack_map (&pk, 3);
    relais_pack_kv_str (&pk, "op", "fetch");
    relais_pack_kv_uint (&pk, "from", 1);
    relais_pack_kv_str (&pk, "max_bytes", "8M");
    CHECK_OK (s_fetch (&c, &req));
    CHECK (!c.page.ok);
    CHECK_STR (c.page.code, RELAIS_CODE_INVALID);
    relais_pub_stats_t stats;
    relais_pub_stats (pub, &stats);
    CHECK (stats.fetch_errors == 2);

    //  A peer that asks and never reads: past RELAIS_FETCH_QUEUED_MAX of
    //  replies held by libzmq the fetches are refused as busy, and they are
    //  served again once the peer has read its replies
    zsock_t *greedy = zsock_new (ZMQ_DEALER);
    CHECK (greedy);
    zsock_set_rcvhwm (greedy, 1);
    zsock_set_rcvbuf (greedy, 4096);
    CHECK (zsock_connect (greedy, "%s", fetch_ep) == 0);
    s_request (&req, 1, 10000, RELAIS_FETCH_BYTES_MAX);
    uint64_t answered = stats.fetches + stats.fetch_busy;
    const int asks = 48;                    //  about 2.8 MB each: 134 MB
    for (int i = 0; i < asks; i++) {
        CHECK (zmq_send (zsock_resolve (greedy), "", 0, ZMQ_SNDMORE) == 0);
        CHECK (zmq_send (zsock_resolve (greedy), req.data, req.size, 0) == (int) req.size);
    }
    uint64_t deadline = relais_clock_mono () + 30 * 1000000ULL;
    do {
        uv_run (&loop, UV_RUN_NOWAIT);
        relais_pub_stats (pub, &stats);
        CHECK (relais_clock_mono () < deadline);
    } while (stats.fetches + stats.fetch_busy < answered + (uint64_t) asks);
    CHECK (stats.fetch_busy > 0);
    CHECK (relais_pub_fetch_queued () > 0);
    int served = 0, busy = 0;
    for (int i = 0; i < asks; i++) {
        zmq_pollitem_t item = { zsock_resolve (greedy), 0, ZMQ_POLLIN, 0 };
        CHECK (zmq_poll (&item, 1, 10000) == 1);
        zmq_msg_t frame;
        zmq_msg_init (&frame);
        do
            CHECK (zmq_msg_recv (&frame, zsock_resolve (greedy), 0) >= 0);
        while (zmq_msg_more (&frame));
        relais_error_t err;
        CHECK_OK (relais_fetch_parse (&c.page, zmq_msg_data (&frame), zmq_msg_size (&frame),
                                      NULL, &err));
        if (c.page.ok) {
            CHECK (c.page.count == 10000);
            served++;
        }
        else {
            CHECK_STR (c.page.code, RELAIS_CODE_UNAVAILABLE);
            busy++;
        }
        zmq_msg_close (&frame);
    }
    fprintf (stderr, "    a peer that does not read: %d fetches served, %d refused as busy\n",
             served, busy);
    CHECK (served > 0 && busy > 0 && served + busy == asks);
    zsock_destroy (&greedy);
    //  Read (or dropped with the peer): the bytes are released
    deadline = relais_clock_mono () + 10 * 1000000ULL;
    while (relais_pub_fetch_queued () > 0) {
        uv_run (&loop, UV_RUN_NOWAIT);
        usleep (1000);
        CHECK (relais_clock_mono () < deadline);
    }
    s_request (&req, 1, 0, 0);
    CHECK_OK (s_fetch (&c, &req));
    CHECK (c.page.ok && c.page.count == 1000);

    msgpack_sbuffer_destroy (&req);
    zmq_msg_close (&c.frame);
    relais_fetch_page_release (&c.page);
    zsock_destroy (&c.dealer);
    relais_pub_close (&pub);
    uv_run (&loop, UV_RUN_DEFAULT);
    CHECK (uv_loop_close (&loop) == 0);
    relais_store_destroy (&store);

    //  A server whose caps are lower than the protocol's keeps them
    store = relais_store_new (path, &store_opts);
    CHECK (store);
    uv_loop_init (&loop);
    relais_pub_opts_t low = { "tester", pub_ep, fetch_ep, 1000, 4096, 100, 0 };
    pub = relais_pub_new (&loop, store, &low);
    CHECK (pub);
    c.loop = &loop;
    c.dealer = zsock_new_dealer (fetch_ep);
    zmq_msg_init (&c.frame);
    msgpack_sbuffer_init (&req);
    s_request (&req, 1, 10000, RELAIS_FETCH_BYTES_MAX);
    CHECK_OK (s_fetch (&c, &req));
    CHECK (c.page.count >= 1 && c.page.count <= 100 && s_event_bytes (&c.page) <= 4096);
    s_request (&req, 1, 50, 0);
    CHECK_OK (s_fetch (&c, &req));
    CHECK (c.page.count >= 1 && c.page.count <= 50 && s_event_bytes (&c.page) <= 4096);
    msgpack_sbuffer_destroy (&req);
    zmq_msg_close (&c.frame);
    relais_fetch_page_release (&c.page);
    zsock_destroy (&c.dealer);
    relais_pub_close (&pub);
    uv_run (&loop, UV_RUN_DEFAULT);
    CHECK (uv_loop_close (&loop) == 0);
    relais_store_destroy (&store);

    char cmd [400];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    CHECK (system (cmd) == 0);
}

int
main (void)
{
    zsys_handler_set (NULL);
    RUN (test_parse_valid);
    RUN (test_parse_hostile);
    RUN (test_server_limits);
    printf ("test_fetch: OK\n");
    return 0;
}
