/*  =========================================================================
    notify_follower - the client side of a mailbox
    (see notify_follower.h)
    =========================================================================
*/
#include "notify_follower.h"
#include "relais_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void
notify_follower_pack_op (msgpack_sbuffer *sbuf, const char *op, const char *key, uint64_t value)
{
    msgpack_packer pk;
    msgpack_packer_init (&pk, sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, key? 2: 1);
    relais_pack_kv_str (&pk, "op", op);
    if (key)
        relais_pack_kv_uint (&pk, key, value);
}

void
notify_follower_pack_hello (msgpack_sbuffer *sbuf, const char *who_key, const char *name,
                            uint64_t last)
{
    msgpack_packer pk;
    msgpack_packer_init (&pk, sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 3);
    relais_pack_kv_str (&pk, "op", "hello");
    relais_pack_kv_str (&pk, who_key, name);
    relais_pack_kv_uint (&pk, "after", last);
}

bool
notify_follower_welcome (const msgpack_object *welcome, uint64_t *last, uint64_t *box_last)
{
    uint64_t box = 0, acked = 0;
    if (!relais_msg_str_eq (relais_msg_get (welcome, "op"), "welcome")
    ||  !relais_msg_uint (relais_msg_get (welcome, "last"), &box)
    ||  !relais_msg_uint (relais_msg_get (welcome, "acked"), &acked)
    ||  *last <= box)
        return false;
    if (box_last)
        *box_last = box;
    *last = acked;
    return true;
}

//  ---------------------------------------------------------------------------

typedef struct {
    const notify_follower_opts_t *opts;
    zsock_t *sock;
} s_link_t;

static void
s_say (const notify_follower_opts_t *opts, bool error, const char *format, ...)
{
    char text [256];
    va_list args;
    va_start (args, format);
    vsnprintf (text, sizeof text, format, args);
    va_end (args);
    if (opts->say)
        opts->say (error, text, opts->arg);
}

//  One message: the empty delimiter, then the data; never blocks
static void
s_send (zsock_t *sock, msgpack_sbuffer *sbuf)
{
    void *handle = zsock_resolve (sock);
    if (zmq_send (handle, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) == 0)
        zmq_send (handle, sbuf->data, sbuf->size, ZMQ_DONTWAIT);
    msgpack_sbuffer_destroy (sbuf);
}

static void
s_send_op (zsock_t *sock, const char *op, const char *key, uint64_t value)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    notify_follower_pack_op (&sbuf, op, key, value);
    s_send (sock, &sbuf);
}

//  A new connection that has said hello, or NULL
static zsock_t *
s_connect (const notify_follower_opts_t *opts, uint64_t last)
{
    zsock_t *sock = opts->connect (opts->endpoint, opts->arg);
    if (sock) {
        msgpack_sbuffer sbuf;
        msgpack_sbuffer_init (&sbuf);
        notify_follower_pack_hello (&sbuf, opts->who_key, opts->name, last);
        s_send (sock, &sbuf);
    }
    return sock;
}

static bool
s_stopped (const notify_follower_opts_t *opts)
{
    return opts->stopped && opts->stopped (opts->arg);
}

int
notify_follower_run (const notify_follower_opts_t *opts, uint64_t *last_p, uint64_t *handled_p)
{
    int64_t hb_ms = opts->heartbeat_ms? (int64_t) opts->heartbeat_ms: 1000;
    uint64_t last = *last_p, handled = 0;
    zsock_t *sock = s_connect (opts, last);
    if (!sock) {
        s_say (opts, true, "cannot connect to %s", opts->endpoint);
        return -1;
    }
    int64_t now = zclock_mono ();
    int64_t heard = now, sent = now, progress = now, retry_at = 0, backoff = 100;
    bool failing = false, failed = false;
    while (!s_stopped (opts)) {
        zmq_pollitem_t item = { zsock_resolve (sock), 0, ZMQ_POLLIN, 0 };
        zmq_poll (&item, 1, 100);
        now = zclock_mono ();
        bool dirty = false, need_ack = false, rehello = false;
        zmsg_t *msg;
        while (!failed && !s_stopped (opts) && (zsock_events (sock) & ZMQ_POLLIN)
           &&  (msg = zmsg_recv_nowait (sock))) {
            heard = now;
            zframe_t *data = zmsg_last (msg);
            relais_msg_t m;
            relais_error_t err;
            if (!data || relais_msg_decode (&m, zframe_data (data), zframe_size (data),
                                            opts->limits, &err)) {
                s_say (opts, false, "malformed message from %s dropped", opts->peer);
                zmsg_destroy (&msg);
                continue;
            }
            const msgpack_object *op = relais_msg_get (&m.root, "op");
            const msgpack_object *ok = relais_msg_get (&m.root, "ok");
            uint64_t mseq = 0, box_last = 0, before = last;
            if (relais_msg_str_eq (op, "deliver")
            &&  relais_msg_uint (relais_msg_get (&m.root, "mseq"), &mseq)) {
                if (mseq <= last)
                    need_ack = true;    //  a redelivery: handled already
                else
                if (!failing && (opts->count == 0 || handled < opts->count)) {
                    msgpack_sbuffer line;
                    msgpack_sbuffer_init (&line);
                    if (opts->format (&m.root, &line, opts->arg) == 0
                    &&  notify_sink_put (opts->sink, mseq, line.data, line.size) == 0) {
                        last = mseq;
                        dirty = need_ack = true;
                        handled++;
                        progress = now;
                        backoff = 100;
                    }
                    else
                    if (opts->retry) {
                        failing = true; //  nothing after it until it passes
                        retry_at = now + backoff;
                        s_say (opts, false, "sink failed mseq=%llu: retry in %lld ms",
                               (unsigned long long) mseq, (long long) backoff);
                        backoff = backoff * 2 > 5000? 5000: backoff * 2;
                    }
                    else {
                        s_say (opts, true, "cannot write mseq %llu", (unsigned long long) mseq);
                        failed = true;
                    }
                    msgpack_sbuffer_destroy (&line);
                }
            }
            else
            if (notify_follower_welcome (&m.root, &last, &box_last)) {
                //  Our record is ahead of the mailbox itself: the server's
                //  store was replaced. Skipping would lose deliveries.
                s_say (opts, false, "state mseq=%llu is beyond the mailbox (last=%llu): "
                       "following the %s from %llu", (unsigned long long) before,
                       (unsigned long long) box_last, opts->peer, (unsigned long long) last);
                dirty = true;
            }
            else
            if (ok && ok->type == MSGPACK_OBJECT_BOOLEAN && !ok->via.boolean) {
                char code [32] = "", message [128] = "";
                relais_msg_str_copy (relais_msg_get (&m.root, "code"), code, sizeof code);
                relais_msg_str_copy (relais_msg_get (&m.root, "message"), message, sizeof message);
                bool conflict = strcmp (code, RELAIS_CODE_CONFLICT) == 0;
                if (opts->quiet_refusals) {
                    failed = strcmp (code, RELAIS_CODE_UNAUTHORIZED) == 0;
                    s_say (opts, failed, "%s error code=%s message=%s", opts->peer, code, message);
                }
                else
                if (!conflict) {
                    s_say (opts, true, "%s says %s: %s", opts->peer, code, message);
                    failed = true;
                }
                if (conflict)
                    rehello = true;     //  the server lost our session
            }
            relais_msg_release (&m);
            zmsg_destroy (&msg);
        }
        if (dirty && (notify_sink_flush (opts->sink) || notify_state_write (opts->state_path, last))) {
            s_say (opts, true, "cannot make mseq=%llu durable: stopping before the ack",
                   (unsigned long long) last);
            failed = true;
            break;
        }
        if (need_ack) {
            s_send_op (sock, "ack", "upto", last);
            sent = now;
        }
        if (failed)
            break;
        if ((opts->count && handled >= opts->count)
        ||  (opts->idle_ms && now - progress >= (int64_t) opts->idle_ms))
            break;
        if (failing && now >= retry_at) {
            failing = false;
            rehello = true;             //  the server sends everything unacked again
        }
        bool silent = now - heard > 3 * hb_ms;
        if (silent || rehello) {
            if (silent)
                s_say (opts, false, "%s silent for 3 intervals: reconnecting", opts->peer);
            zsock_destroy (&sock);
            sock = s_connect (opts, last);
            heard = sent = now;
            if (!sock) {
                s_say (opts, true, "cannot connect to %s", opts->endpoint);
                failed = true;
                break;
            }
        }
        else
        if (now - sent >= hb_ms) {
            s_send_op (sock, "ping", NULL, 0);
            sent = now;
        }
    }
    zsock_destroy (&sock);
    *last_p = last;
    *handled_p = handled;
    return failed? -1: 0;
}
