/*  relais_follow: the history -> live seam of a bus reader. Events must come
    out once each, in sequence order, whatever the mix of live events,
    heartbeats, fetch replies, purged ranges and queued events. */
#include "relais_follow.h"
#include "relais_envelope.h"
#include "relais_msg.h"
#include "relais_test.h"

#define S_MAX 64

static uint64_t s_out [S_MAX];
static size_t s_count;
static bool s_topic_ok = true;

static void
s_on_event (relais_follow_t *follow, const char *topic, uint64_t seq,
            const msgpack_object *envelope, void *arg)
{
    (void) follow;
    (void) arg;
    CHECK (s_count < S_MAX);
    s_out [s_count++] = seq;
    uint64_t inner = 0;
    CHECK (relais_msg_uint (relais_msg_get (envelope, "seq"), &inner) && inner == seq);
    if (topic && strcmp (topic, "test.event") != 0)
        s_topic_ok = false;
}

static zframe_t *
s_event (const char *src, uint64_t seq)
{
    msgpack_sbuffer body;
    msgpack_sbuffer_init (&body);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &body, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 1);
    relais_pack_kv_uint (&pk, "n", seq);
    msgpack_sbuffer env;
    msgpack_sbuffer_init (&env);
    relais_envelope_pack (&env, src, seq, 1000 + seq, "test.event", "K-1", NULL, body.data, body.size);
    zframe_t *frame = zframe_new (env.data, env.size);
    msgpack_sbuffer_destroy (&body);
    msgpack_sbuffer_destroy (&env);
    return frame;
}

static zframe_t *
s_heartbeat (const char *src, uint64_t seq)
{
    msgpack_sbuffer env;
    msgpack_sbuffer_init (&env);
    relais_envelope_pack (&env, src, seq, 1000, NULL, NULL, NULL, NULL, 0);
    zframe_t *frame = zframe_new (env.data, env.size);
    msgpack_sbuffer_destroy (&env);
    return frame;
}

static bool
s_live (relais_follow_t *f, const char *src, uint64_t seq)
{
    zframe_t *frame = s_event (src, seq);
    bool mine = relais_follow_live (f, "test.event", &frame);
    CHECK (frame == NULL);
    return mine;
}

//  A fetch reply holding events from..to (none when from > to), log head last.
static int
s_reply (relais_follow_t *f, uint64_t from, uint64_t to, uint64_t last)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 4);
    relais_pack_kv_bool (&pk, "ok", true);
    relais_pack_kv_uint (&pk, "first", 1);
    relais_pack_kv_uint (&pk, "last", last);
    relais_pack_str (&pk, "events");
    msgpack_pack_array (&pk, from <= to? (uint32_t) (to - from + 1): 0);
    for (uint64_t s = from; s <= to; s++) {
        zframe_t *frame = s_event ("src", s);
        relais_pack_raw (&pk, zframe_data (frame), zframe_size (frame));
        zframe_destroy (&frame);
    }
    relais_msg_t msg;
    relais_error_t err;
    CHECK_OK (relais_msg_decode (&msg, sbuf.data, sbuf.size, NULL, &err));
    int rc = relais_follow_fetched (f, &msg.root);
    relais_msg_release (&msg);
    msgpack_sbuffer_destroy (&sbuf);
    return rc;
}

static int
s_gone (relais_follow_t *f, uint64_t first)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 3);
    relais_pack_kv_bool (&pk, "ok", false);
    relais_pack_kv_str (&pk, "code", "gone");
    relais_pack_kv_uint (&pk, "first", first);
    relais_msg_t msg;
    relais_error_t err;
    CHECK_OK (relais_msg_decode (&msg, sbuf.data, sbuf.size, NULL, &err));
    int rc = relais_follow_fetched (f, &msg.root);
    relais_msg_release (&msg);
    msgpack_sbuffer_destroy (&sbuf);
    return rc;
}

static void
s_expect (uint64_t first, uint64_t last)
{
    CHECK (s_count == last - first + 1);
    for (size_t i = 0; i < s_count; i++)
        CHECK (s_out [i] == first + i);
    s_count = 0;
}

int
main (void)
{
    relais_follow_t *f = relais_follow_new ("src", s_on_event, NULL);
    CHECK (f);
    uint64_t from;

    //  Before start, live events wait; nothing is handed out
    CHECK (s_live (f, "src", 5));
    CHECK (!relais_follow_started (f) && s_count == 0);
    CHECK (!relais_follow_fetching (f, &from));

    //  History from the log meets the queued live events: 1..6, once each
    relais_follow_start (f, 0, true);
    CHECK (relais_follow_fetching (f, &from) && from == 1);
    CHECK (s_live (f, "src", 6));
    CHECK (s_count == 0);
    CHECK_OK (s_reply (f, 1, 3, 6));            //  a partial page: go on
    CHECK (relais_follow_fetching (f, &from) && from == 4);
    CHECK_OK (s_reply (f, 4, 6, 6));
    s_expect (1, 6);
    CHECK (relais_follow_caught_up (f));

    //  Live, in order
    CHECK (s_live (f, "src", 7));
    s_expect (7, 7);
    //  A duplicate and another source's event are ignored
    CHECK (s_live (f, "src", 7));
    CHECK (!s_live (f, "other", 8));
    CHECK (s_count == 0);

    //  A gap: 9 waits while 8 is read from the log
    CHECK (s_live (f, "src", 9));
    CHECK (s_count == 0 && relais_follow_fetching (f, &from) && from == 8);
    CHECK (s_live (f, "src", 10));
    CHECK_OK (s_reply (f, 8, 9, 9));
    s_expect (8, 10);
    CHECK (relais_follow_caught_up (f));

    //  A silent tail: the heartbeat announces 13
    zframe_t *hb = s_heartbeat ("src", 13);
    CHECK (relais_follow_live (f, RELAIS_HB_TOPIC, &hb));
    CHECK (relais_follow_fetching (f, &from) && from == 11);
    //  11 was purged: the log now starts at 12
    CHECK (s_gone (f, 12) == RELAIS_EGONE);
    CHECK (relais_follow_last (f) == 11);
    CHECK (relais_follow_fetching (f, &from) && from == 12);
    CHECK_OK (s_reply (f, 12, 13, 13));
    s_expect (12, 13);

    //  A live event the log does not reach: skipped up to it, counted
    CHECK (s_live (f, "src", 20));
    CHECK (relais_follow_fetching (f, &from) && from == 14);
    CHECK_OK (s_reply (f, 14, 13, 13));         //  nothing more in the log
    s_expect (20, 20);
    relais_follow_stats_t stats;
    relais_follow_stats (f, &stats);
    CHECK (stats.skipped == 1 + 6 && stats.skip_from == 14 && stats.skip_to == 19);
    CHECK (stats.delivered == 13);

    //  Live from a position (no history): older events never come out
    relais_follow_start (f, 30, false);
    CHECK (!relais_follow_fetching (f, &from));
    CHECK (s_live (f, "src", 25));
    CHECK (s_live (f, "src", 31));
    s_expect (31, 31);
    //  A refusal that is not "gone" leaves the position alone
    CHECK (s_live (f, "src", 33));
    CHECK (relais_follow_fetching (f, &from) && from == 32);
    msgpack_object not_map = { .type = MSGPACK_OBJECT_NIL };
    CHECK (relais_follow_fetched (f, &not_map) == RELAIS_EMALFORMED);
    CHECK (relais_follow_last (f) == 31);
    CHECK_OK (s_reply (f, 32, 33, 33));
    s_expect (32, 33);
    CHECK (s_topic_ok);

    relais_follow_destroy (&f);
    CHECK (f == NULL);
    relais_follow_destroy (&f);
    printf ("test_follow: OK\n");
    return 0;
}
