/*  =========================================================================
    bench_replay - the replay client of the benchmarks (see bench_replay.h)
    =========================================================================
*/
#include "bench_replay.h"

#include "relais_clock.h"
#include "relais_fetch.h"

#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>

//  One request in flight
typedef struct {
    uint64_t rid;
    uint64_t from;
    bool live;                      //  still a good guess (counts in the window)
} s_ask_t;

static int
s_fail (bench_replay_t *self, int rc, const char *format, ...)
{
    if (!self->error [0]) {
        va_list args;
        va_start (args, format);
        vsnprintf (self->error, sizeof self->error, format, args);
        va_end (args);
    }
    return rc;
}

static int
s_ask (bench_replay_t *self, void *handle, msgpack_sbuffer *sbuf, uint64_t rid, uint64_t from)
{
    msgpack_sbuffer_clear (sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 4 + (self->max_bytes > 0));
    relais_pack_kv_str (&pk, "op", "fetch");
    relais_pack_kv_uint (&pk, "rid", rid);
    relais_pack_kv_uint (&pk, "from", from);
    relais_pack_kv_uint (&pk, "max", self->page);
    if (self->max_bytes)
        relais_pack_kv_uint (&pk, "max_bytes", self->max_bytes);
    if (zmq_send (handle, "", 0, ZMQ_SNDMORE) < 0
    ||  zmq_send (handle, sbuf->data, sbuf->size, 0) < 0)
        return s_fail (self, -errno, "fetch send failed: %s", zmq_strerror (errno));
    self->requests++;
    return 0;
}

//  Receive one reply's data frame into frame (after the empty delimiter)
static int
s_recv (void *handle, zmq_msg_t *frame)
{
    for (;;) {
        if (zmq_msg_recv (frame, handle, 0) < 0)
            return -errno;
        if (!zmq_msg_more (frame))
            return 0;
    }
}

int
bench_replay_run (const char *endpoint, bench_replay_t *self)
{
    if (self->page == 0 || self->window == 0 || self->window > BENCH_REPLAY_WINDOW_MAX)
        return s_fail (self, -EINVAL, "replay: page >= 1, window 1..%d",
                       BENCH_REPLAY_WINDOW_MAX);
    zsock_t *sock = zsock_new (ZMQ_DEALER);
    if (!sock)
        return s_fail (self, -ENOMEM, "replay: no socket");
    zsock_set_rcvhwm (sock, 0);
    zsock_set_linger (sock, 0);
    if (zsock_connect (sock, "%s", endpoint)) {
        zsock_destroy (&sock);
        return s_fail (self, -EINVAL, "replay: cannot connect to %s", endpoint);
    }
    void *handle = zsock_resolve (sock);
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    relais_fetch_page_t page;
    memset (&page, 0, sizeof page);
    zmq_msg_t frame;
    zmq_msg_init (&frame);

    //  asks [head .. head + inflight) in send order (replies come in order:
    //  one connection to one single-threaded server)
    s_ask_t asks [2 * BENCH_REPLAY_WINDOW_MAX + 1];
    size_t head = 0, inflight = 0, live = 0;
    const size_t ring = sizeof asks / sizeof asks [0];
    uint64_t rid = 0, expected = 1, next_from = 1, last = UINT64_MAX;
    uint64_t step = self->page;     //  the guess: the next page holds as many
    int rc = 0;
    self->start_us = relais_clock_mono ();
    for (;;) {
        //  Keep window guesses in flight while the log may hold more
        while (rc == 0 && live < self->window && next_from <= last && inflight < ring) {
            s_ask_t *ask = &asks [(head + inflight) % ring];
            ask->rid = ++rid;
            ask->from = next_from;
            ask->live = true;
            if ((rc = s_ask (self, handle, &sbuf, ask->rid, ask->from)))
                break;
            inflight++;
            live++;
            next_from += step;
        }
        if (rc || inflight == 0 || (self->interrupted && *self->interrupted))
            break;
        zmq_pollitem_t item = { handle, 0, ZMQ_POLLIN, 0 };
        int ready = zmq_poll (&item, 1, (long) self->stall_ms);
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready <= 0) {
            rc = s_fail (self, ready? -errno: -ETIMEDOUT, "no fetch reply from=%" PRIu64,
                         asks [head].from);
            break;
        }
        if ((rc = s_recv (handle, &frame))) {
            s_fail (self, rc, "fetch receive failed: %s", zmq_strerror (-rc));
            break;
        }
        s_ask_t ask = asks [head];
        head = (head + 1) % ring;
        inflight--;
        relais_error_t err;
        if ((rc = relais_fetch_parse (&page, zmq_msg_data (&frame), zmq_msg_size (&frame),
                                      NULL, &err))) {
            s_fail (self, rc, "undecodable fetch reply: %s %s", err.field, err.message);
            break;
        }
        self->bytes += zmq_msg_size (&frame);
        if (!page.has_rid || page.rid != ask.rid) {
            rc = s_fail (self, -EPROTO, "fetch reply rid %" PRIu64 " where %" PRIu64 " was due",
                         page.rid, ask.rid);
            break;
        }
        if (ask.live)
            live--;
        if (ask.from != expected) {
            self->dropped++;        //  sent on a guess that a page proved wrong
            continue;
        }
        if (!page.ok) {
            rc = s_fail (self, -EPROTO, "fetch from=%" PRIu64 " refused: %s", ask.from,
                         page.code [0]? page.code: "?");
            break;
        }
        if (last == UINT64_MAX) {
            last = page.last;
            self->last = last;
        }
        for (size_t i = 0; i < page.count; i++) {
            if (page.events [i].seq != expected) {
                rc = s_fail (self, -EPROTO, "fetch: seq %" PRIu64 " where %" PRIu64 " was due",
                             page.events [i].seq, expected);
                break;
            }
            expected++;
        }
        if (rc)
            break;
        self->events += page.count;
        if (page.count == 0 && expected <= last) {
            rc = s_fail (self, -EPROTO, "fetch from=%" PRIu64 ": no event before last %" PRIu64,
                         ask.from, last);
            break;
        }
        if (page.count)
            step = page.count;      //  a short page (the byte budget): guess its size
        //  The first guess still in flight must start where this page ended;
        //  if it does not, neither do the later ones: ask again from here
        bool wrong = live == 0, first = true;
        for (size_t k = 0; k < inflight; k++) {
            s_ask_t *next = &asks [(head + k) % ring];
            if (next->live && first) {
                wrong = next->from != expected;
                first = false;
            }
            if (wrong)
                next->live = false;
        }
        if (wrong) {
            live = 0;
            next_from = expected;
        }
    }
    self->end_us = relais_clock_mono ();
    if (rc == 0 && self->interrupted && *self->interrupted)
        rc = s_fail (self, -EINTR, "interrupted");
    if (rc == 0 && expected != last + 1)
        rc = s_fail (self, -EPROTO, "replayed %" PRIu64 " events of %" PRIu64,
                     expected - 1, last);
    zmq_msg_close (&frame);
    relais_fetch_page_release (&page);
    msgpack_sbuffer_destroy (&sbuf);
    zsock_destroy (&sock);
    return rc;
}
