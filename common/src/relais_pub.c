/*  =========================================================================
    relais_pub - a service's event log made public (see relais_bus.h)

    Events are appended to the log inside the caller's write transaction
    and kept in a pending buffer; the store's commit hook sends them on PUB,
    so nothing uncommitted is ever published (guarantee 2). A retried or
    aborted transaction throws the buffer away and rewinds the sequence.
    =========================================================================
*/
#include "relais_bus.h"
#include "relais_security.h"
#include "relais_clock.h"
#include "relais_log.h"
#include "relais_fetch.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

//  Bytes of fetch replies that libzmq still holds (queued to peers that do
//  not read, or not yet written to the socket), for the whole process: a
//  reply's bytes are counted when handed over and uncounted when libzmq
//  releases them (in its I/O thread). Over RELAIS_FETCH_QUEUED_MAX, fetches
//  are refused as busy until the peers read: a peer that asks and never
//  reads cannot make a service hold its log in memory many times over
//  (the ROUTER's high-water mark counts messages, not bytes).
static atomic_size_t s_fetch_queued;

static void
s_fetch_release (void *data, void *hint)
{
    atomic_fetch_sub (&s_fetch_queued, (size_t) (uintptr_t) hint);
    free (data);
}

size_t
relais_pub_fetch_queued (void)
{
    return atomic_load (&s_fetch_queued);
}

typedef struct {
    size_t topic_at, topic_len;
    size_t env_at, env_len;
} s_pending_t;

typedef struct {
    const void *data;               //  in the read txn's map
    size_t size;
} s_fetched_t;

struct relais_pub_t {
    uv_loop_t *loop;
    relais_store_t *store;
    relais_pub_opts_t opts;
    char name [RELAIS_SRC_MAX];
    zsock_t *pub;
    relais_poller_t *fetch;
    uv_timer_t hb_timer;
    bool hb_open;
    uint64_t last;              //  committed and published
    uint64_t next_last;         //  last inside the open transaction
    msgpack_sbuffer pending;    //  bytes of pending topics and envelopes
    s_pending_t *items;
    size_t count, alloc;
    relais_sub_t *sub;
    relais_pub_stats_t stats;
    char *bound;                //  the PUB's endpoint as libzmq knows it (for unbind)
    uint64_t sec_generation;    //  revocations seen (relais_security_generation)
    bool rebind;                //  unbound after a revocation, bind again
    s_fetched_t *fetched;           //  fetch_max_events entries, reused
};

static void
s_send_heartbeat (relais_pub_t *self)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    relais_envelope_pack (&sbuf, self->name, self->last, relais_clock_now (),
                          NULL, NULL, NULL, NULL, 0);
    void *pub = zsock_resolve (self->pub);
    if (zmq_send (pub, RELAIS_HB_TOPIC, strlen (RELAIS_HB_TOPIC), ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0)
        zmq_send (pub, sbuf.data, sbuf.size, ZMQ_DONTWAIT);
    msgpack_sbuffer_destroy (&sbuf);
    self->stats.heartbeats++;
}

//  A PUB receives nothing from its subscribers, so the poller cannot refuse
//  a revoked one: after a revocation the endpoint is unbound, which drops
//  every subscriber, and bound again; the subscribers reconnect through the
//  ZAP handler, which now refuses the revoked keys. A bind that fails (a
//  tcp port not yet released) is tried again at the next heartbeat;
//  subscribers fetch whatever they missed meanwhile.
static void
s_check_revocation (relais_pub_t *self)
{
    uint64_t generation = relais_security_generation ();
    if (generation != self->sec_generation && self->bound) {
        self->sec_generation = generation;
        zsock_unbind (self->pub, "%s", self->bound);
        self->rebind = true;
    }
    if (!self->rebind)
        return;
    if (zsock_bind (self->pub, "%s", self->bound) >= 0) {
        self->rebind = false;
        self->stats.rebinds++;
        relais_notice ("pub rebound after a revocation src=%s endpoint=%s", self->name, self->bound);
    }
    else
        relais_warning ("pub rebind failed src=%s endpoint=%s error=%s: retried at the next heartbeat",
                        self->name, self->bound, zmq_strerror (zmq_errno ()));
}

static void
s_on_heartbeat (uv_timer_t *timer)
{
    relais_pub_t *self = (relais_pub_t *) timer->data;
    s_check_revocation (self);
    s_send_heartbeat (self);
    //  What was acked since the last heartbeat reaches LMDB (dumps beside
    //  the service see it; the write-ahead log starts again)
    relais_store_checkpoint (self->store);
}

static void
s_hook_begin (void *arg)
{
    relais_pub_t *self = (relais_pub_t *) arg;
    self->next_last = self->last;
    self->count = 0;
    self->pending.size = 0;
}

static void
s_hook_abort (void *arg)
{
    s_hook_begin (arg);
}

static void
s_hook_commit (void *arg)
{
    relais_pub_t *self = (relais_pub_t *) arg;
    void *pub = zsock_resolve (self->pub);
    for (size_t i = 0; i < self->count; i++) {
        s_pending_t *item = &self->items [i];
        //  PUB never blocks and drops at the high-water mark: subscribers
        //  repair any loss through fetch, so a drop costs time, not data.
        if (zmq_send (pub, self->pending.data + item->topic_at, item->topic_len,
                      ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0)
            zmq_send (pub, self->pending.data + item->env_at, item->env_len, ZMQ_DONTWAIT);
    }
    self->stats.published += self->count;
    self->last = self->next_last;
    self->count = 0;
    self->pending.size = 0;
}

int
relais_pub_append (relais_pub_t *self, relais_txn_t *txn, const char *type,
                   const char *key, const char *corr, uint64_t ts,
                   const void *body, size_t body_size, uint64_t *seq)
{
    uint64_t next = self->next_last + 1;
    if (self->count == self->alloc) {
        size_t alloc = self->alloc? self->alloc * 2: 64;
        s_pending_t *items = (s_pending_t *) realloc (self->items, alloc * sizeof *items);
        if (!items)
            return -ENOMEM;
        self->items = items;
        self->alloc = alloc;
    }
    s_pending_t *item = &self->items [self->count];
    item->topic_at = self->pending.size;
    item->topic_len = strlen (type);
    msgpack_sbuffer_write (&self->pending, type, item->topic_len);
    item->env_at = self->pending.size;
    relais_envelope_pack (&self->pending, self->name, next, ts? ts: relais_clock_now (),
                          type, key, corr, body, body_size);
    item->env_len = self->pending.size - item->env_at;
    int rc = relais_log_append (txn, next, self->pending.data + item->env_at, item->env_len);
    if (rc) {
        self->pending.size = item->topic_at;
        return rc;
    }
    self->count++;
    self->next_last = next;
    if (seq)
        *seq = next;
    return 0;
}

uint64_t
relais_pub_last (relais_pub_t *self)
{
    return self->last;
}

void
relais_pub_attach_sub (relais_pub_t *self, relais_sub_t *sub)
{
    self->sub = sub;
}

void
relais_pub_stats (relais_pub_t *self, relais_pub_stats_t *stats)
{
    *stats = self->stats;
}

//  ---------------------------------------------------------------------------
//  Fetch and status requests

typedef struct {
    relais_pub_t *self;
    uint64_t from;
    uint64_t max;
    size_t budget;                  //  bytes of events, at least one event sent
    const msgpack_object *rid;
    msgpack_sbuffer *out;
    uint64_t count;                 //  entries in self->fetched
    size_t bytes;
} s_fetch_t;

//  One step of the cursor walk: keep a pointer to the entry while the
//  budget (events and bytes) allows and the seqs stay contiguous.
static int
s_fetch_collect (uint64_t seq, const void *bytes, size_t size, void *arg)
{
    s_fetch_t *f = (s_fetch_t *) arg;
    if (seq != f->from + f->count)
        return 1;                   //  a gap: the reply stops before it
    if (f->count && f->bytes + size > f->budget)
        return 1;
    f->self->fetched [f->count].data = bytes;
    f->self->fetched [f->count].size = size;
    f->bytes += size;
    f->count++;
    return f->count < f->max? 0: 1;
}

static int
s_fetch_read (relais_txn_t *txn, void *arg)
{
    s_fetch_t *f = (s_fetch_t *) arg;
    uint64_t first, last;
    int rc = relais_log_bounds (txn, &first, &last);
    if (rc)
        return rc;
    msgpack_packer pk;
    msgpack_packer_init (&pk, f->out, msgpack_sbuffer_write);
    if (last && f->from < first) {
        msgpack_pack_map (&pk, 5 + (f->rid != NULL));
        relais_pack_kv_bool (&pk, "ok", false);
        relais_pack_kv_str (&pk, "code", RELAIS_CODE_GONE);
        relais_pack_kv_str (&pk, "message", "the log no longer holds that range");
        relais_pack_kv_uint (&pk, "first", first);
        relais_pack_kv_uint (&pk, "last", last);
        if (f->rid) {
            relais_pack_str (&pk, "rid");
            relais_pack_object (&pk, f->rid);
        }
        return 0;
    }
    //  One cursor pass collects what fits in the budget (the array header
    //  needs the count first); the stored envelopes are then copied as they
    //  are, never decoded nor re-encoded, into a reply sized once.
    f->count = 0;
    f->bytes = 0;
    if (f->from <= last && (rc = relais_log_scan (txn, f->from, s_fetch_collect, f)))
        return rc;
    size_t need = f->bytes + 256;   //  the map around them (a longer rid: sbuffer grows)
    if (f->out->alloc < need) {
        char *data = (char *) realloc (f->out->data, need);
        if (!data)
            return -ENOMEM;
        f->out->data = data;
        f->out->alloc = need;
    }
    msgpack_pack_map (&pk, 4 + (f->rid != NULL));
    relais_pack_kv_bool (&pk, "ok", true);
    relais_pack_kv_uint (&pk, "first", first? first: 1);
    relais_pack_kv_uint (&pk, "last", last);
    if (f->rid) {
        relais_pack_str (&pk, "rid");
        relais_pack_object (&pk, f->rid);
    }
    relais_pack_str (&pk, "events");
    msgpack_pack_array (&pk, f->count);
    for (uint64_t i = 0; i < f->count; i++)
        relais_pack_raw (&pk, f->self->fetched [i].data, f->self->fetched [i].size);
    return 0;
}

static void
s_pack_status (relais_pub_t *self, msgpack_packer *pk, const msgpack_object *rid)
{
    size_t sources = self->sub? relais_sub_count (self->sub): 0;
    msgpack_pack_map (pk, 7 + (rid != NULL));
    relais_pack_kv_bool (pk, "ok", true);
    relais_pack_kv_str (pk, "src", self->name);
    relais_pack_kv_uint (pk, "last", self->last);
    relais_pack_kv_uint (pk, "ts", relais_clock_now ());
    relais_pack_kv_uint (pk, "published", self->stats.published);
    relais_pack_kv_uint (pk, "fetches", self->stats.fetches);
    if (rid) {
        relais_pack_str (pk, "rid");
        relais_pack_object (pk, rid);
    }
    relais_pack_str (pk, "sources");
    msgpack_pack_array (pk, sources);
    uint64_t now = relais_clock_mono ();
    for (size_t i = 0; i < sources; i++) {
        relais_sub_source_t st;
        relais_sub_source (self->sub, i, &st);
        msgpack_pack_map (pk, 8);
        relais_pack_kv_str (pk, "src", st.source);
        relais_pack_kv_uint (pk, "applied", st.applied);
        relais_pack_kv_uint (pk, "known", st.known);
        relais_pack_kv_uint (pk, "lag", st.known > st.applied? st.known - st.applied: 0);
        relais_pack_kv_uint (pk, "heard_ms_ago",
                             st.last_heard_us? (now - st.last_heard_us) / 1000: UINT64_MAX);
        relais_pack_kv_bool (pk, "silent", st.silent);
        relais_pack_kv_bool (pk, "catching_up", st.catching_up);
        relais_pack_kv_bool (pk, "rewound", st.rewound);
    }
}

static void
s_on_fetch_request (relais_poller_t *poller, zmsg_t **msg_p, void *arg)
{
    relais_pub_t *self = (relais_pub_t *) arg;
    relais_request_t req;
    relais_error_t err;
    relais_error_clear (&err);
    relais_msg_t msg = { 0 };
    const msgpack_object *rid = NULL;
    msgpack_sbuffer out;
    msgpack_sbuffer_init (&out);

    if (relais_request_take (msg_p, &req)) {
        relais_error_set (&err, RELAIS_CODE_INVALID, "", "expected an empty delimiter frame then one data frame");
        goto error;
    }
    if (relais_msg_decode (&msg, zframe_data (req.data), zframe_size (req.data), NULL, &err))
        goto error;
    if (msg.root.type != MSGPACK_OBJECT_MAP) {
        relais_error_set (&err, RELAIS_CODE_INVALID, "", "request must be a map");
        goto error;
    }
    rid = relais_msg_get (&msg.root, "rid");
    const msgpack_object *op = relais_msg_get (&msg.root, "op");
    if (!op || op->type != MSGPACK_OBJECT_STR) {
        relais_error_set (&err, RELAIS_CODE_INVALID, "op", "required, a string");
        goto error;
    }
    if (relais_msg_str_eq (op, "status")) {
        msgpack_packer pk;
        msgpack_packer_init (&pk, &out, msgpack_sbuffer_write);
        s_pack_status (self, &pk, rid);
        relais_request_reply (poller, &req, out.data, out.size);
        goto done;
    }
    if (!relais_msg_str_eq (op, "fetch")) {
        relais_error_set (&err, RELAIS_CODE_UNKNOWN_OP, "op", "this endpoint serves fetch and status");
        goto error;
    }
    //  Without max or max_bytes a reply holds what it always did (1,000
    //  events, 1 MiB), so a client that never asks more never receives more
    s_fetch_t f = { self, 0, RELAIS_FETCH_MAX_DEFAULT, RELAIS_FETCH_BYTES_DEFAULT,
                    rid, &out, 0, 0 };
    if (!relais_msg_uint (relais_msg_get (&msg.root, "from"), &f.from) || f.from == 0) {
        relais_error_set (&err, RELAIS_CODE_INVALID, "from", "required, an integer >= 1");
        goto error;
    }
    const msgpack_object *max = relais_msg_get (&msg.root, "max");
    if (max) {
        if (!relais_msg_uint (max, &f.max) || f.max == 0) {
            relais_error_set (&err, RELAIS_CODE_INVALID, "max", "an integer >= 1");
            goto error;
        }
    }
    if (f.max > self->opts.fetch_max_events)
        f.max = self->opts.fetch_max_events;
    const msgpack_object *max_bytes = relais_msg_get (&msg.root, "max_bytes");
    if (max_bytes) {
        uint64_t budget;
        if (!relais_msg_uint (max_bytes, &budget) || budget == 0) {
            relais_error_set (&err, RELAIS_CODE_INVALID, "max_bytes", "an integer >= 1");
            goto error;
        }
        f.budget = budget < SIZE_MAX? (size_t) budget: SIZE_MAX;
    }
    if (f.budget > self->opts.fetch_max_bytes)
        f.budget = self->opts.fetch_max_bytes;
    if (atomic_load (&s_fetch_queued) > RELAIS_FETCH_QUEUED_MAX) {
        self->stats.fetch_busy++;
        relais_error_set (&err, RELAIS_CODE_UNAVAILABLE, "",
                          "too many fetch replies not yet read: retry later");
        goto error;
    }
    int rc = relais_store_read (self->store, s_fetch_read, &f);
    if (rc) {
        relais_error_set (&err, RELAIS_CODE_UNAVAILABLE, "", "log read failed");
        goto error;
    }
    self->stats.fetches++;
    //  Up to 8 MiB: handed to libzmq as it is, not copied once more, and
    //  counted until libzmq releases it
    atomic_fetch_add (&s_fetch_queued, out.size);
    relais_request_reply_take (poller, &req, &out, s_fetch_release,
                               (void *) (uintptr_t) out.size);
    goto done;

error:
    self->stats.fetch_errors++;
    relais_request_error (poller, &req, &err, NULL, rid);
done:
    relais_msg_release (&msg);
    msgpack_sbuffer_destroy (&out);
    relais_request_release (&req);
}

typedef struct {
    uint64_t last;
} s_bounds_t;

static int
s_read_last (relais_txn_t *txn, void *arg)
{
    uint64_t first;
    return relais_log_bounds (txn, &first, &((s_bounds_t *) arg)->last);
}

relais_pub_t *
relais_pub_new (uv_loop_t *loop, relais_store_t *store, const relais_pub_opts_t *opts)
{
    relais_pub_t *self = (relais_pub_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->loop = loop;
    self->store = store;
    self->opts = *opts;
    if (!self->opts.heartbeat_ms)
        self->opts.heartbeat_ms = 1000;
    if (!self->opts.fetch_max_bytes)
        self->opts.fetch_max_bytes = RELAIS_FETCH_BYTES_MAX;
    if (self->opts.fetch_max_bytes > RELAIS_FETCH_BYTES_MAX)
        self->opts.fetch_max_bytes = RELAIS_FETCH_BYTES_MAX;
    if (!self->opts.fetch_max_events || self->opts.fetch_max_events > RELAIS_FETCH_MAX_EVENTS)
        self->opts.fetch_max_events = RELAIS_FETCH_MAX_EVENTS;
    if (!self->opts.sndhwm)
        self->opts.sndhwm = 100000;
    self->fetched = (s_fetched_t *) calloc (self->opts.fetch_max_events, sizeof *self->fetched);
    if (!self->fetched) {
        free (self);
        return NULL;
    }
    snprintf (self->name, sizeof self->name, "%s", opts->name);
    msgpack_sbuffer_init (&self->pending);

    s_bounds_t bounds = { 0 };
    if (relais_store_read (store, s_read_last, &bounds)) {
        relais_error ("cannot read the log of %s", self->name);
        goto failed;
    }
    self->last = self->next_last = bounds.last;

    self->pub = zsock_new (ZMQ_PUB);
    if (!self->pub)
        goto failed;
    zsock_set_sndhwm (self->pub, self->opts.sndhwm);
    zsock_set_linger (self->pub, 1000);
    if (relais_security_apply (self->pub, opts->pub_endpoint, true))
        goto failed;
    relais_ipc_prepare (opts->pub_endpoint);
    if (zsock_bind (self->pub, "%s", opts->pub_endpoint) < 0) {
        relais_error ("bind failed endpoint=%s error=%s", opts->pub_endpoint,
                      zmq_strerror (zmq_errno ()));
        goto failed;
    }
    self->bound = zsock_last_endpoint (self->pub);
    self->sec_generation = relais_security_generation ();
    zsock_t *fetch = relais_sock_new (ZMQ_ROUTER, opts->fetch_endpoint, RELAIS_SOCK_BIND,
                                      RELAIS_MSG_MAX_BYTES);
    if (!fetch)
        goto failed;
    self->fetch = relais_poller_new (loop, &fetch, 64, s_on_fetch_request, NULL, self);
    if (!self->fetch) {
        zsock_destroy (&fetch);
        goto failed;
    }
    relais_store_hook (store, s_hook_begin, s_hook_commit, s_hook_abort, self);
    uv_timer_init (loop, &self->hb_timer);
    self->hb_timer.data = self;
    self->hb_open = true;
    uv_timer_start (&self->hb_timer, s_on_heartbeat, self->opts.heartbeat_ms,
                    self->opts.heartbeat_ms);
    s_send_heartbeat (self);
    relais_info ("publishing src=%s last=%llu pub=%s fetch=%s", self->name,
                 (unsigned long long) self->last, opts->pub_endpoint, opts->fetch_endpoint);
    return self;

failed:
    relais_pub_close (&self);
    return NULL;
}

static void
s_on_timer_closed (uv_handle_t *handle)
{
    relais_pub_t *self = (relais_pub_t *) handle->data;
    msgpack_sbuffer_destroy (&self->pending);
    free (self->items);
    zstr_free (&self->bound);
    free (self->fetched);
    free (self);
}

void
relais_pub_close (relais_pub_t **self_p)
{
    relais_pub_t *self = *self_p;
    if (!self)
        return;
    *self_p = NULL;
    relais_poller_close (&self->fetch);
    zsock_destroy (&self->pub);
    if (self->hb_open) {
        uv_timer_stop (&self->hb_timer);
        uv_close ((uv_handle_t *) &self->hb_timer, s_on_timer_closed);
    }
    else
        s_on_timer_closed ((uv_handle_t *) &(uv_timer_t) { .data = self });
}
