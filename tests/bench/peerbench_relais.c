/*  =========================================================================
    peerbench_relais - the workload against relais-intake

    @header
    Throughput: one DEALER on intake's submit endpoint, requests framed as
    REQ does (empty delimiter, then the submit), up to W unanswered; an ack
    is intake's {ok:true} reply, sent after the write's record in the
    store's write-ahead log is fdatasync'd.
    End to end: raw SUB sockets on intake's PUB (every signal.created
    envelope carries its seq; one producer on one DEALER gets the seqs in
    order, which the acks confirm). Replay: fetch from seq 1 until last,
    pipelined (bench_replay.c).
    @discuss
    Every reply and event is checked. An ack in the throughput and end-to-end
    runs is read by a light, bounded reader of its ok, seq and idem (as
    hiredis reads an XADD reply); any other reply, and every event, is
    decoded by relais_msg_decode (pre-walk, limits); fetch replies by
    relais_fetch_parse (a bounded walk, no object tree).
    =========================================================================
*/
#include "peerbench.h"

#include "bench_replay.h"
#include "relais_fetch.h"
#include "relais_msg.h"

#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define S_HWM           200000
#define S_WARM_INDEX    9999999999ULL

static zsock_t *
s_dealer (const char *endpoint)
{
    zsock_t *sock = zsock_new (ZMQ_DEALER);
    if (!sock)
        return NULL;
    zsock_set_sndhwm (sock, S_HWM);
    zsock_set_rcvhwm (sock, S_HWM);
    zsock_set_linger (sock, 0);
    if (zsock_connect (sock, "%s", endpoint)) {
        zsock_destroy (&sock);
        return NULL;
    }
    return sock;
}

static int
s_send (zsock_t *sock, const void *data, size_t size)
{
    void *handle = zsock_resolve (sock);
    if (zmq_send (handle, "", 0, ZMQ_SNDMORE) < 0 || zmq_send (handle, data, size, 0) < 0)
        return -errno;
    return 0;
}

static int
s_poll (zsock_t *sock, long timeout_ms)
{
    zmq_pollitem_t item = { zsock_resolve (sock), 0, ZMQ_POLLIN, 0 };
    int rc = zmq_poll (&item, 1, timeout_ms);
    return rc < 0? (errno == EINTR? 0: -errno): rc;
}

//  One reply: its data frame, decoded (the frame stays alive: strings point
//  into it).
typedef struct {
    zmq_msg_t frame;
    relais_msg_t msg;
} s_reply_t;

//  Receives one reply's data frame, not decoded. 0: received (close
//  *frame); -EAGAIN: none waiting; other negative: broken.
static int
s_frame_recv (zsock_t *sock, zmq_msg_t *frame, int flags)
{
    void *handle = zsock_resolve (sock);
    zmq_msg_init (frame);
    bool first = true;
    for (;;) {
        if (!first) {
            zmq_msg_close (frame);
            zmq_msg_init (frame);
        }
        if (zmq_msg_recv (frame, handle, first? flags: 0) < 0) {
            int rc = -errno;
            zmq_msg_close (frame);
            return rc;
        }
        first = false;
        if (!zmq_msg_more (frame))
            break;
    }
    return 0;
}

//  What the throughput loop checks of every ack: ok, its seq, its idem
typedef struct {
    bool ok;
    bool has_seq;
    uint64_t seq;
    const char *idem;
    size_t idem_len;
} s_ack_t;

//  A light, bounded read of an ack as intake sends it: a map of short
//  string keys whose values are booleans, strings or unsigned integers
//  ({ok, idem, id, seq, level, duplicate}). Returns false on anything else
//  (an error reply, an unexpected shape): the caller then decodes the reply
//  with relais_msg_decode. Every byte read is within size.
static bool
s_ack_read (const uint8_t *p, size_t size, s_ack_t *ack)
{
    memset (ack, 0, sizeof *ack);
    const uint8_t *end = p + size;
    if (p >= end || (*p & 0xf0) != 0x80)
        return false;                   //  not a fixmap
    uint32_t pairs = *p++ & 0x0f;
    bool has_ok = false;
    for (uint32_t i = 0; i < pairs; i++) {
        if (p >= end || (*p & 0xe0) != 0xa0)
            return false;               //  a key that is not a fixstr
        size_t klen = *p++ & 0x1f;
        if ((size_t) (end - p) < klen + 1)
            return false;
        const char *key = (const char *) p;
        p += klen;
        uint8_t t = *p++;
        const char *str = NULL;
        size_t slen = 0;
        uint64_t num = 0;
        bool is_num = false;
        if (t <= 0x7f) {
            num = t;
            is_num = true;
        }
        else
        if ((t & 0xe0) == 0xa0 || t == 0xd9) {
            if (t == 0xd9) {
                if (p >= end)
                    return false;
                slen = *p++;
            }
            else
                slen = t & 0x1f;
            if ((size_t) (end - p) < slen)
                return false;
            str = (const char *) p;
            p += slen;
        }
        else
        if (t >= 0xcc && t <= 0xcf) {
            size_t n = (size_t) 1 << (t - 0xcc);
            if ((size_t) (end - p) < n)
                return false;
            for (size_t b = 0; b < n; b++)
                num = (num << 8) | p [b];
            p += n;
            is_num = true;
        }
        else
        if (t != 0xc2 && t != 0xc3)
            return false;
        if (klen == 2 && memcmp (key, "ok", 2) == 0) {
            if (t != 0xc2 && t != 0xc3)
                return false;
            ack->ok = t == 0xc3;
            has_ok = true;
        }
        else
        if (klen == 3 && memcmp (key, "seq", 3) == 0) {
            if (!is_num)
                return false;
            ack->seq = num;
            ack->has_seq = true;
        }
        else
        if (klen == 4 && memcmp (key, "idem", 4) == 0) {
            if (!str)
                return false;
            ack->idem = str;
            ack->idem_len = slen;
        }
    }
    return p == end && has_ok && ack->ok && ack->has_seq && ack->idem;
}

//  Receives one reply. 0: decoded (release it); -EAGAIN: none waiting;
//  other negative: broken.
static int
s_reply_recv (zsock_t *sock, s_reply_t *reply, int flags, const relais_msg_limits_t *limits)
{
    void *handle = zsock_resolve (sock);
    zmq_msg_init (&reply->frame);
    bool first = true;
    for (;;) {
        if (!first) {
            zmq_msg_close (&reply->frame);
            zmq_msg_init (&reply->frame);
        }
        if (zmq_msg_recv (&reply->frame, handle, first? flags: 0) < 0) {
            int rc = -errno;
            zmq_msg_close (&reply->frame);
            return rc;
        }
        first = false;
        if (!zmq_msg_more (&reply->frame))
            break;
    }
    relais_error_t err;
    if (relais_msg_decode (&reply->msg, zmq_msg_data (&reply->frame),
                           zmq_msg_size (&reply->frame), limits, &err)) {
        zmq_msg_close (&reply->frame);
        return -EBADMSG;
    }
    return 0;
}

static void
s_reply_release (s_reply_t *reply)
{
    relais_msg_release (&reply->msg);
    zmq_msg_close (&reply->frame);
}

static bool
s_reply_ok (s_reply_t *reply)
{
    const msgpack_object *ok = relais_msg_get (&reply->msg.root, "ok");
    return ok && ok->type == MSGPACK_OBJECT_BOOLEAN && ok->via.boolean;
}

static int
s_reply_fail (pb_ctx_t *ctx, s_reply_t *reply)
{
    char code [32] = "?", field [96] = "", message [128] = "";
    relais_msg_str_copy (relais_msg_get (&reply->msg.root, "code"), code, sizeof code);
    relais_msg_str_copy (relais_msg_get (&reply->msg.root, "field"), field, sizeof field);
    relais_msg_str_copy (relais_msg_get (&reply->msg.root, "message"), message, sizeof message);
    return pb_fail (ctx, -EPROTO, "intake refused a submit: %s %s: %s", code, field, message);
}

//  The index in the idem a reply echoes (UINT64_MAX when none of this run).
static uint64_t
s_reply_index (s_reply_t *reply, uint32_t run)
{
    const msgpack_object *idem = relais_msg_get (&reply->msg.root, "idem");
    if (!idem || idem->type != MSGPACK_OBJECT_STR)
        return UINT64_MAX;
    return pb_payload_index (idem->via.str.ptr, idem->via.str.size, run);
}

//  Connects a DEALER and waits for the ack of one warm-up submit (intake may
//  still be starting: up to PB_STALL_US). *seq gets the warm-up's seq.
static zsock_t *
s_connect (pb_ctx_t *ctx, pb_payload_t *payload, uint64_t *seq)
{
    zsock_t *sock = s_dealer (ctx->endpoint);
    if (!sock) {
        pb_fail (ctx, -EINVAL, "cannot connect to %s", ctx->endpoint);
        return NULL;
    }
    pb_payload_set (payload, ctx->run, S_WARM_INDEX);
    uint64_t start = pb_now_us ();
    int rc = s_send (sock, payload->bytes, PB_PAYLOAD_SIZE);
    while (rc == 0) {
        int ready = s_poll (sock, 1000);
        if (ready < 0)
            rc = ready;
        else
        if (ready > 0) {
            s_reply_t reply;
            if ((rc = s_reply_recv (sock, &reply, 0, NULL)))
                break;
            if (!s_reply_ok (&reply))
                rc = s_reply_fail (ctx, &reply);
            else
            if (seq && !relais_msg_uint (relais_msg_get (&reply.msg.root, "seq"), seq))
                rc = pb_fail (ctx, -EPROTO, "an ack without seq");
            s_reply_release (&reply);
            break;
        }
        else
        if (pb_now_us () - start > PB_STALL_US)
            rc = pb_fail (ctx, -ETIMEDOUT, "intake did not answer at %s", ctx->endpoint);
    }
    if (rc) {
        pb_fail (ctx, rc, "warm-up submit failed (%s)", strerror (-rc));
        zsock_destroy (&sock);
    }
    return sock;
}

//  Takes every waiting reply: marks its event acked. Returns the count of new
//  acks, or a negative code.
static int64_t
s_drain_acks (pb_ctx_t *ctx, zsock_t *sock, uint64_t *sent_at, bool *acked, uint64_t count,
              uint64_t *lat_us, uint64_t *seqs)
{
    int64_t got = 0;
    s_reply_t reply;
    int rc;
    //  Every ack is checked: ok true, a seq, the idem of one of our events.
    //  An ack as intake sends it is read with the light reader; anything
    //  else is decoded in full below (an error reply is reported).
    while ((rc = s_frame_recv (sock, &reply.frame, ZMQ_DONTWAIT)) == 0) {
        uint64_t now = pb_now_us ();
        s_ack_t ack;
        if (s_ack_read ((const uint8_t *) zmq_msg_data (&reply.frame),
                        zmq_msg_size (&reply.frame), &ack)) {
            uint64_t index = pb_payload_index (ack.idem, ack.idem_len, ctx->run);
            if (index < count && !acked [index]) {
                acked [index] = true;
                got++;
                if (lat_us)
                    lat_us [index] = now - sent_at [index];
                if (seqs)
                    seqs [index] = ack.seq;
            }
            zmq_msg_close (&reply.frame);
            continue;
        }
        relais_error_t err;
        if (relais_msg_decode (&reply.msg, zmq_msg_data (&reply.frame),
                               zmq_msg_size (&reply.frame), NULL, &err)) {
            zmq_msg_close (&reply.frame);
            return pb_fail (ctx, -EBADMSG, "broken reply (%s)", err.message);
        }
        if (!s_reply_ok (&reply)) {
            rc = s_reply_fail (ctx, &reply);
            s_reply_release (&reply);
            return rc;
        }
        uint64_t seq = 0;
        if (!relais_msg_uint (relais_msg_get (&reply.msg.root, "seq"), &seq)) {
            s_reply_release (&reply);
            return pb_fail (ctx, -EPROTO, "an ack without seq");
        }
        uint64_t index = s_reply_index (&reply, ctx->run);
        if (index < count && !acked [index]) {
            acked [index] = true;
            got++;
            if (lat_us)
                lat_us [index] = now - sent_at [index];
            if (seqs)
                seqs [index] = seq;
        }
        s_reply_release (&reply);
    }
    return rc == -EAGAIN? got: pb_fail (ctx, rc, "broken reply (%s)", strerror (-rc));
}

static int
s_throughput (pb_ctx_t *ctx, uint32_t window, uint64_t count, uint64_t *lat_us, pb_rate_t *out)
{
    pb_payload_t payload;
    pb_payload_init (&payload);
    uint64_t *sent_at = (uint64_t *) calloc (count, sizeof *sent_at);
    bool *acked = (bool *) calloc (count, sizeof *acked);
    zsock_t *sock = sent_at && acked? s_connect (ctx, &payload, NULL): NULL;
    int rc = sock? 0: pb_fail (ctx, -ENOMEM, "relais: no connection");
    uint64_t sent = 0, done = 0, start = pb_now_us (), progress = start;
    while (rc == 0 && done < count) {
        while (sent < count && sent - done < window) {
            pb_payload_set (&payload, ctx->run, sent);
            sent_at [sent] = pb_now_us ();
            if ((rc = s_send (sock, payload.bytes, PB_PAYLOAD_SIZE)))
                break;
            sent++;
        }
        int ready = rc? rc: s_poll (sock, 1000);
        if (ready < 0) {
            rc = pb_fail (ctx, ready, "relais: poll failed");
            break;
        }
        int64_t got = ready? s_drain_acks (ctx, sock, sent_at, acked, count, lat_us, NULL): 0;
        if (got < 0)
            rc = (int) got;
        else
        if (got > 0) {
            done += (uint64_t) got;
            progress = pb_now_us ();
        }
        else
        if (pb_now_us () - progress > PB_STALL_US)
            rc = pb_fail (ctx, -ETIMEDOUT, "relais: no ack for 30 s");
    }
    out->count = done;
    out->seconds = (double) (pb_now_us () - start) / 1e6;
    out->rate = (double) done / out->seconds;
    zsock_destroy (&sock);
    free (sent_at);
    free (acked);
    return rc;
}

//  ---------------------------------------------------------------------------
//  End to end

typedef struct {
    pb_ctx_t *ctx;
    pb_e2e_t *e2e;
    pb_gate_t *gate;
    uint32_t index;                 //  subscriber number
    uint64_t base;                  //  seq of the warm-up: event i is base + 1 + i
    volatile int stop;
    int rc;
} s_sub_t;

static void *
s_subscriber (void *arg)
{
    s_sub_t *self = (s_sub_t *) arg;
    zsock_t *sub = zsock_new (ZMQ_SUB);
    if (!sub || zsock_connect (sub, "%s", self->ctx->pub)) {
        self->rc = -EINVAL;
        pb_gate_ready (self->gate);
        zsock_destroy (&sub);
        return NULL;
    }
    zsock_set_rcvhwm (sub, S_HWM);
    zsock_set_linger (sub, 0);
    zsock_set_subscribe (sub, "");
    void *handle = zsock_resolve (sub);
    bool joined = false;
    zmq_msg_t topic, body;
    zmq_msg_init (&topic);
    zmq_msg_init (&body);
    while (!__atomic_load_n (&self->stop, __ATOMIC_ACQUIRE)) {
        if (s_poll (sub, 100) <= 0)
            continue;
        while (zmq_msg_recv (&topic, handle, ZMQ_DONTWAIT) >= 0) {
            uint64_t now = pb_now_us ();
            if (!joined) {
                joined = true;      //  a heartbeat or an event: subscribed
                pb_gate_ready (self->gate);
            }
            if (!zmq_msg_more (&topic))
                continue;
            bool more = true;
            while (more) {
                if (zmq_msg_recv (&body, handle, 0) < 0)
                    break;
                more = zmq_msg_more (&body);
            }
            if (zmq_msg_size (&topic) > 0 && ((const char *) zmq_msg_data (&topic)) [0] == '$')
                continue;
            relais_msg_t msg;
            relais_error_t err;
            if (relais_msg_decode (&msg, zmq_msg_data (&body), zmq_msg_size (&body), NULL, &err))
                continue;
            uint64_t seq = 0;
            if (relais_msg_uint (relais_msg_get (&msg.root, "seq"), &seq) && seq > self->base)
                pb_e2e_record (self->e2e, self->index, seq - self->base - 1, now);
            relais_msg_release (&msg);
        }
    }
    if (!joined)
        pb_gate_ready (self->gate);
    zmq_msg_close (&topic);
    zmq_msg_close (&body);
    zsock_destroy (&sub);
    return NULL;
}

static int
s_e2e (pb_ctx_t *ctx, uint64_t rate, pb_e2e_t *e2e)
{
    pb_payload_t payload;
    pb_payload_init (&payload);
    uint64_t base = 0;
    uint64_t count = e2e->count;
    zsock_t *sock = s_connect (ctx, &payload, &base);
    bool *acked = (bool *) calloc (count, sizeof *acked);
    uint64_t *seqs = (uint64_t *) calloc (count, sizeof *seqs);
    s_sub_t *subs = (s_sub_t *) calloc (e2e->subscribers, sizeof *subs);
    pthread_t *threads = (pthread_t *) calloc (e2e->subscribers, sizeof *threads);
    pb_gate_t *gate = pb_gate_new ();
    int rc = sock && acked && seqs && subs && threads && gate? 0: pb_fail (ctx, -ENOMEM, "relais e2e setup");
    uint32_t started = 0;
    for (uint32_t s = 0; rc == 0 && s < e2e->subscribers; s++) {
        subs [s] = (s_sub_t) { ctx, e2e, gate, s, base, 0, 0 };
        if (pthread_create (&threads [s], NULL, s_subscriber, &subs [s]))
            rc = pb_fail (ctx, -EAGAIN, "cannot start a subscriber thread");
        else
            started++;
    }
    if (rc == 0 && !pb_gate_wait (gate, started, 10000))
        rc = pb_fail (ctx, -ETIMEDOUT, "relais subscribers did not join in 10 s");
    for (uint32_t s = 0; rc == 0 && s < started; s++)
        if (subs [s].rc)
            rc = pb_fail (ctx, subs [s].rc, "relais subscriber could not connect to %s", ctx->pub);
    uint64_t interval = 1000000 / (rate? rate: 1);
    uint64_t start = pb_now_us (), done = 0;
    for (uint64_t i = 0; rc == 0 && i < count; i++) {
        pb_sleep_until (start + i * interval);
        pb_payload_set (&payload, ctx->run, i);
        e2e->sent_us [i] = pb_now_us ();
        rc = s_send (sock, payload.bytes, PB_PAYLOAD_SIZE);
        int64_t got = rc? 0: s_drain_acks (ctx, sock, e2e->sent_us, acked, count, NULL, seqs);
        if (got < 0)
            rc = (int) got;
        done += got > 0? (uint64_t) got: 0;
    }
    uint64_t progress = pb_now_us ();
    while (rc == 0 && done < count) {
        int ready = s_poll (sock, 100);
        int64_t got = ready > 0? s_drain_acks (ctx, sock, e2e->sent_us, acked, count, NULL, seqs): ready;
        if (got < 0)
            rc = (int) got;
        else
        if (got > 0) {
            done += (uint64_t) got;
            progress = pb_now_us ();
        }
        else
        if (pb_now_us () - progress > PB_STALL_US)
            rc = pb_fail (ctx, -ETIMEDOUT, "relais e2e: %" PRIu64 " acks of %" PRIu64, done, count);
    }
    for (uint64_t i = 0; rc == 0 && i < count; i++)
        if (seqs [i] != base + 1 + i)
            rc = pb_fail (ctx, -EPROTO, "relais e2e: event %" PRIu64 " got seq %" PRIu64
                          ", not %" PRIu64 " (another producer?)", i, seqs [i], base + 1 + i);
    if (rc == 0 && !pb_e2e_wait (e2e))
        rc = pb_fail (ctx, -ETIMEDOUT, "relais e2e: subscribers stalled");
    for (uint32_t s = 0; s < started; s++) {
        __atomic_store_n (&subs [s].stop, 1, __ATOMIC_RELEASE);
        pthread_join (threads [s], NULL);
    }
    pb_gate_destroy (&gate);
    zsock_destroy (&sock);
    free (acked);
    free (seqs);
    free (subs);
    free (threads);
    return rc;
}

//  ---------------------------------------------------------------------------
//  Replay: fetch from 1 until last

static int
s_replay (pb_ctx_t *ctx, pb_rate_t *out)
{
    //  Pages of ctx->page events with the largest byte budget the protocol
    //  offers (8 MiB), ctx->window fetches in flight, each reply read by
    //  relais_fetch_parse (bench_replay.c)
    bench_replay_t replay;
    memset (&replay, 0, sizeof replay);
    replay.page = ctx->page;
    replay.window = ctx->window;
    replay.max_bytes = RELAIS_FETCH_BYTES_MAX;
    replay.stall_ms = PB_STALL_US / 1000;
    int rc = bench_replay_run (ctx->fetch, &replay);
    if (rc)
        return pb_fail (ctx, rc, "replay: %s", replay.error);
    out->count = replay.events;
    out->seconds = (double) (replay.end_us - replay.start_us) / 1e6;
    out->rate = (double) replay.events / out->seconds;
    return 0;
}

const pb_driver_t pb_relais_driver = { "relais", s_throughput, s_e2e, s_replay };
