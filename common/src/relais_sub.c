/*  =========================================================================
    relais_sub - apply every event of every source exactly once
    (see relais_bus.h)

    Per source the subscriber keeps "applied" (the checkpoint, committed in
    the same transaction as the effects) and "known" (the highest sequence
    the source announced, through an event or a heartbeat). Live events are
    applied only while they follow the checkpoint without a hole. Anything
    else - a hole, a heartbeat ahead of us, a restart - switches the source
    to catching up: live events are ignored (they stay in the source's log)
    and fetch requests read the log from applied + 1 until known is reached.
    Fetch replies are matched by a request id, so a reply that arrives after
    a timeout and a resend is recognised and dropped.
    =========================================================================
*/
#include "relais_bus.h"
#include "relais_security.h"
#include "relais_clock.h"
#include "relais_log.h"

#include <stdlib.h>

#define S_MAX_SOURCES   16
#define S_MAX_TOPICS    16
#define S_TICK_MS       200
#define S_EVENT_LIMITS  { 4 * RELAIS_MSG_MAX_BYTES, 0, 0 }
//  A subscriber's fetch asks no max_bytes: each reply holds at most the
//  default 1 MiB budget, or one event over it (at most 256 KiB, as live),
//  so at most 1.3 M objects - within both limits, whatever fetch_max is
//  (proto/README §4). A subscriber that asked a larger budget would have to
//  raise max_objects with it: every object takes at least one byte.
#define S_FETCH_LIMITS  { 64 * 1024 * 1024, 0, 1 << 22 }

typedef struct {
    relais_sub_t *sub;
    char name [RELAIS_SRC_MAX];
    char *pub_endpoint;
    char *fetch_endpoint;
    char *topics [S_MAX_TOPICS];
    size_t topic_count;
    relais_poller_t *live;
    relais_poller_t *fetch;
    zlist_t *queue;             //  live messages of the current batch
    uint64_t applied;
    uint64_t known;
    bool fetching;
    uint64_t fetch_rid;
    uint64_t fetch_sent;        //  monotonic µs
    uint64_t fetch_applied;     //  the checkpoint when that fetch was sent
    uint64_t last_heard;        //  monotonic µs
    bool silent;
    bool rewound;               //  its log ends before our checkpoint: held
    uint64_t skipped, gaps, fetched;
} s_source_t;

struct relais_sub_t {
    uv_loop_t *loop;
    relais_store_t *store;
    relais_sub_opts_t opts;
    relais_apply_fn *fn;
    void *arg;
    s_source_t *sources [S_MAX_SOURCES];
    size_t count;
    uv_timer_t timer;
    bool timer_open;
    bool started;
    uint64_t next_rid;
};

//  One write transaction's worth of events from one source
typedef struct {
    s_source_t *src;
    const relais_envelope_t **envs;
    const char **topics;
    size_t count;
    //  results, valid after a commit
    uint64_t applied;
    uint64_t known;
    uint64_t skipped;
    bool gap;
} s_batch_t;

static bool
s_topic_wanted (s_source_t *src, const char *topic)
{
    if (src->topic_count == 0)
        return true;
    for (size_t i = 0; i < src->topic_count; i++)
        if (strncmp (topic, src->topics [i], strlen (src->topics [i])) == 0)
            return true;
    return false;
}

static int
s_apply_batch (relais_txn_t *txn, void *arg)
{
    s_batch_t *b = (s_batch_t *) arg;
    s_source_t *src = b->src;
    relais_sub_t *self = src->sub;
    //  Re-runnable: start from the source's committed state every attempt
    b->applied = src->applied;
    b->known = src->known;
    b->skipped = 0;
    b->gap = false;
    for (size_t i = 0; i < b->count; i++) {
        const relais_envelope_t *env = b->envs [i];
        if (env->seq > b->known)
            b->known = env->seq;
        if (env->seq <= b->applied)
            continue;                       //  already applied: a duplicate
        if (env->seq != b->applied + 1) {
            b->gap = true;                  //  a hole: the rest comes by fetch
            continue;
        }
        if (b->gap)
            continue;
        if (s_topic_wanted (src, b->topics [i])) {
            int rc = self->fn (txn, b->topics [i], env, self->arg);
            if (rc == RELAIS_EMALFORMED) {
                relais_warning ("event skipped src=%s seq=%llu type=%s", src->name,
                                (unsigned long long) env->seq, env->type);
                b->skipped++;
            }
            else
            if (rc)
                return rc;
        }
        b->applied = env->seq;
    }
    if (b->applied != src->applied)
        return relais_ckpt_set (txn, src->name, b->applied);
    return 0;
}

static void s_fetch_send (s_source_t *src);

static int
s_write_rewound (relais_txn_t *txn, void *arg)
{
    s_source_t *src = (s_source_t *) arg;
    char name [RELAIS_SRC_MAX + 16];
    snprintf (name, sizeof name, "rewound/%s", src->name);
    return relais_meta_set (txn, name, src->applied);
}

//  The source says, in the reply to a fetch sent once we had applied
//  fetch_applied, that its log ends at last. It served the request after we
//  had applied those events, so below that it lost events we applied - its store was replaced by an older copy, or by
//  an empty one - and it will number new events with sequences we already
//  hold. Applying them would silently skip some and misread the others, so
//  nothing more is applied from this source, for good (the hold is stored
//  and survives a restart), and every status says so until an operator
//  restores or rebuilds this service to match (README, Operations).
static void
s_check_rewound (s_source_t *src, uint64_t last)
{
    if (src->rewound || last >= src->fetch_applied)
        return;
    src->rewound = true;
    relais_error ("source rewound src=%s last=%llu applied=%llu: its log is older than "
                  "what this service applied; nothing more is applied from it until this "
                  "service is restored from the same backup or rebuilt", src->name,
                  (unsigned long long) last, (unsigned long long) src->applied);
    int rc = relais_store_write (src->sub->store, s_write_rewound, src);
    if (rc == RELAIS_EFATAL)
        relais_fatal ("subscriber hold", rc);
}

//  Apply decoded envelopes in one transaction and update the source's state
static void
s_apply (s_source_t *src, s_batch_t *b)
{
    int rc = 0;
    bool needed = false;
    if (src->rewound)
        return;
    for (size_t i = 0; i < b->count && !needed; i++)
        needed = b->envs [i]->seq > src->applied;
    if (needed)
        rc = relais_store_write (src->sub->store, s_apply_batch, b);
    else {
        b->applied = src->applied;
        b->known = src->known;
        for (size_t i = 0; i < b->count; i++)
            if (b->envs [i]->seq > b->known)
                b->known = b->envs [i]->seq;
    }
    if (rc == RELAIS_EFATAL)
        relais_fatal ("subscriber commit", rc);
    if (rc) {
        //  Storage trouble: nothing was applied; the events will be fetched
        //  again from the source's log on the next tick.
        relais_warning ("apply failed src=%s error=%s", src->name, relais_strerror (rc));
        for (size_t i = 0; i < b->count; i++)
            if (b->envs [i]->seq > src->known)
                src->known = b->envs [i]->seq;
        return;
    }
    if (b->gap && !src->fetching)
        src->gaps++;
    src->applied = b->applied;
    src->known = b->known;
    src->skipped += b->skipped;
}

static void
s_heard (s_source_t *src)
{
    src->last_heard = relais_clock_mono ();
    if (src->silent) {
        src->silent = false;
        relais_notice ("source back src=%s", src->name);
    }
}

static void
s_on_live (relais_poller_t *poller, zmsg_t **msg_p, void *arg)
{
    s_source_t *src = (s_source_t *) arg;
    zlist_append (src->queue, *msg_p);
    *msg_p = NULL;
}

static void
s_on_live_batch (relais_poller_t *poller, void *arg)
{
    s_source_t *src = (s_source_t *) arg;
    size_t n = zlist_size (src->queue);
    relais_msg_t *msgs = (relais_msg_t *) calloc (n, sizeof *msgs);
    relais_envelope_t *envs = (relais_envelope_t *) calloc (n, sizeof *envs);
    const relais_envelope_t **env_ptrs = (const relais_envelope_t **) calloc (n, sizeof *env_ptrs);
    const char **topics = (const char **) calloc (n, sizeof *topics);
    zmsg_t **held = (zmsg_t **) calloc (n, sizeof *held);
    if (!msgs || !envs || !env_ptrs || !topics || !held) {
        relais_fatal ("out of memory", -ENOMEM);
    }
    size_t count = 0, nheld = 0;
    bool probe = false;
    s_heard (src);
    zmsg_t *msg;
    relais_msg_limits_t limits = S_EVENT_LIMITS;
    while ((msg = (zmsg_t *) zlist_pop (src->queue))) {
        held [nheld++] = msg;
        zframe_t *topic = zmsg_first (msg);
        zframe_t *body = zmsg_next (msg);
        relais_error_t err;
        if (zmsg_size (msg) != 2 || zframe_size (topic) >= RELAIS_TYPE_MAX)
            continue;
        bool hb = zframe_streq (topic, RELAIS_HB_TOPIC);
        if (relais_msg_decode (&msgs [count], zframe_data (body), zframe_size (body),
                               &limits, &err))
            continue;
        if (relais_envelope_decode (&msgs [count].root, hb, &envs [count], &err)
        ||  strcmp (envs [count].src, src->name) != 0) {
            relais_msg_release (&msgs [count]);
            continue;
        }
        if (hb) {
            //  A heartbeat below the checkpoint may only be late (the live
            //  path lags the fetch path): ask the log, whose reply decides
            if (envs [count].seq < src->applied && !src->fetching && !src->rewound)
                probe = true;
            if (envs [count].seq > src->known)
                src->known = envs [count].seq;
            relais_msg_release (&msgs [count]);
            continue;
        }
        env_ptrs [count] = &envs [count];
        topics [count] = envs [count].type;
        count++;
    }
    if (!src->fetching && count) {
        s_batch_t b = { src, env_ptrs, topics, count, 0, 0, 0, false };
        s_apply (src, &b);
    }
    else
        for (size_t i = 0; i < count; i++)
            if (envs [i].seq > src->known)
                src->known = envs [i].seq;
    for (size_t i = 0; i < count; i++)
        relais_msg_release (&msgs [i]);
    for (size_t i = 0; i < nheld; i++)
        zmsg_destroy (&held [i]);
    free (msgs);
    free (envs);
    free (env_ptrs);
    free (topics);
    free (held);
    if (!src->fetching && (src->known > src->applied || probe))
        s_fetch_send (src);
}

static void
s_fetch_send (s_source_t *src)
{
    relais_sub_t *self = src->sub;
    if (src->rewound)
        return;
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    src->fetch_rid = ++self->next_rid;
    msgpack_pack_map (&pk, 4);
    relais_pack_kv_str (&pk, "op", "fetch");
    relais_pack_kv_uint (&pk, "from", src->applied + 1);
    relais_pack_kv_uint (&pk, "max", self->opts.fetch_max);
    relais_pack_kv_uint (&pk, "rid", src->fetch_rid);
    zmsg_t *msg = zmsg_new ();
    zmsg_addmem (msg, "", 0);
    zmsg_addmem (msg, sbuf.data, sbuf.size);
    msgpack_sbuffer_destroy (&sbuf);
    if (!src->fetching)
        relais_info ("catching up src=%s from=%llu known=%llu", src->name,
                     (unsigned long long) src->applied + 1, (unsigned long long) src->known);
    src->fetching = true;
    src->fetch_sent = relais_clock_mono ();
    src->fetch_applied = src->applied;
    //  With ZMQ_IMMEDIATE a source that is down - or not connected yet, as
    //  at start - refuses the send at once: try again at the next tick
    //  rather than after the whole fetch timeout (a fresh start used to
    //  wait 2 s for its first catch-up). An unanswered request is resent
    //  after the timeout.
    if (relais_poller_send (src->fetch, &msg))
        src->fetch_sent -= self->opts.fetch_timeout_ms * 1000;
}

static void
s_on_fetch_reply (relais_poller_t *poller, zmsg_t **msg_p, void *arg)
{
    s_source_t *src = (s_source_t *) arg;
    zframe_t *data = zmsg_last (*msg_p);
    relais_msg_t msg;
    relais_error_t err;
    relais_msg_limits_t limits = S_FETCH_LIMITS;
    if (!data || relais_msg_decode (&msg, zframe_data (data), zframe_size (data), &limits, &err)) {
        relais_warning ("bad fetch reply src=%s", src->name);
        return;
    }
    uint64_t rid = 0, first = 0, last = 0;
    const msgpack_object *root = &msg.root;
    if (!relais_msg_uint (relais_msg_get (root, "rid"), &rid) || rid != src->fetch_rid
    ||  !src->fetching)
        goto done;                          //  stale reply to an earlier request
    const msgpack_object *ok = relais_msg_get (root, "ok");
    relais_msg_uint (relais_msg_get (root, "first"), &first);
    bool has_last = relais_msg_uint (relais_msg_get (root, "last"), &last);
    if (!ok || ok->type != MSGPACK_OBJECT_BOOLEAN || !ok->via.boolean) {
        if (relais_msg_str_eq (relais_msg_get (root, "code"), RELAIS_CODE_GONE)) {
            //  The source purged what we never applied. Nothing can bring it
            //  back; say so loudly and resume from what the log still holds.
            relais_error ("events lost src=%s from=%llu first=%llu: purged before applied",
                          src->name, (unsigned long long) src->applied + 1,
                          (unsigned long long) first);
            src->applied = first - 1;
        }
        src->fetching = false;
        goto done;
    }
    if (has_last)
        s_check_rewound (src, last);
    if (src->rewound) {
        src->fetching = false;
        goto done;
    }
    if (last > src->known)
        src->known = last;
    const msgpack_object *events = relais_msg_get (root, "events");
    if (!events || events->type != MSGPACK_OBJECT_ARRAY) {
        src->fetching = false;
        goto done;
    }
    size_t n = events->via.array.size;
    relais_envelope_t *envs = (relais_envelope_t *) calloc (n + 1, sizeof *envs);
    const relais_envelope_t **env_ptrs = (const relais_envelope_t **) calloc (n + 1, sizeof *env_ptrs);
    const char **topics = (const char **) calloc (n + 1, sizeof *topics);
    if (!envs || !env_ptrs || !topics)
        relais_fatal ("out of memory", -ENOMEM);
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        if (relais_envelope_decode (&events->via.array.ptr [i], false, &envs [count], &err)
        ||  strcmp (envs [count].src, src->name) != 0)
            continue;
        env_ptrs [count] = &envs [count];
        topics [count] = envs [count].type;
        count++;
    }
    src->fetched += count;
    s_batch_t b = { src, env_ptrs, topics, count, 0, 0, 0, false };
    uint64_t before = src->applied;
    s_apply (src, &b);
    free (envs);
    free (env_ptrs);
    free (topics);
    if (src->applied < src->known && (src->applied > before || count == 0)) {
        if (count == 0)
            src->fetching = false;          //  nothing came: retry on the tick
        else
            s_fetch_send (src);
    }
    else
    if (src->applied >= src->known) {
        src->fetching = false;
        relais_info ("caught up src=%s applied=%llu", src->name,
                     (unsigned long long) src->applied);
    }
    else
        src->fetching = false;              //  no progress (storage?): the tick retries
done:
    relais_msg_release (&msg);
}

static void
s_on_tick (uv_timer_t *timer)
{
    relais_sub_t *self = (relais_sub_t *) timer->data;
    uint64_t now = relais_clock_mono ();
    relais_store_checkpoint (self->store);      //  see relais_pub's heartbeat
    for (size_t i = 0; i < self->count; i++) {
        s_source_t *src = self->sources [i];
        if (src->fetching && now - src->fetch_sent > self->opts.fetch_timeout_ms * 1000)
            s_fetch_send (src);
        else
        if (!src->fetching && src->known > src->applied)
            s_fetch_send (src);
        else
        //  A silent source may be down, or only its live path may be: ask
        //  its log once per heartbeat interval. The reply says how far the
        //  log goes, so a subscriber whose live connection is dead still
        //  catches up by fetch.
        if (!src->fetching && src->silent
        &&  now - src->fetch_sent > self->opts.heartbeat_ms * 1000)
            s_fetch_send (src);
        if (!src->silent && src->last_heard
        &&  now - src->last_heard > 3 * self->opts.heartbeat_ms * 1000) {
            src->silent = true;
            relais_warning ("source silent src=%s for_ms=%llu", src->name,
                            (unsigned long long) (now - src->last_heard) / 1000);
        }
    }
}

relais_sub_t *
relais_sub_new (uv_loop_t *loop, relais_store_t *store, const relais_sub_opts_t *opts,
                relais_apply_fn *fn, void *arg)
{
    relais_sub_t *self = (relais_sub_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->loop = loop;
    self->store = store;
    if (opts)
        self->opts = *opts;
    if (!self->opts.heartbeat_ms)
        self->opts.heartbeat_ms = 1000;
    if (!self->opts.fetch_timeout_ms)
        self->opts.fetch_timeout_ms = 2000;
    if (!self->opts.fetch_max)
        self->opts.fetch_max = 1000;
    if (!self->opts.rcvhwm)
        self->opts.rcvhwm = 100000;
    self->fn = fn;
    self->arg = arg;
    return self;
}

int
relais_sub_add (relais_sub_t *self, const char *source, const char *pub_endpoint,
                const char *fetch_endpoint, const char *const *topics)
{
    if (self->started || self->count == S_MAX_SOURCES || strlen (source) >= RELAIS_SRC_MAX)
        return -EINVAL;
    s_source_t *src = (s_source_t *) calloc (1, sizeof *src);
    if (!src)
        return -ENOMEM;
    src->sub = self;
    snprintf (src->name, sizeof src->name, "%s", source);
    src->pub_endpoint = strdup (pub_endpoint);
    src->fetch_endpoint = strdup (fetch_endpoint);
    for (size_t i = 0; topics && topics [i] && i < S_MAX_TOPICS; i++)
        src->topics [src->topic_count++] = strdup (topics [i]);
    src->queue = zlist_new ();
    self->sources [self->count++] = src;
    return 0;
}

typedef struct {
    relais_sub_t *self;
} s_ckpt_read_t;

static int
s_read_checkpoints (relais_txn_t *txn, void *arg)
{
    relais_sub_t *self = (relais_sub_t *) arg;
    for (size_t i = 0; i < self->count; i++) {
        s_source_t *src = self->sources [i];
        int rc = relais_ckpt_get (txn, src->name, &src->applied);
        char name [RELAIS_SRC_MAX + 16];
        snprintf (name, sizeof name, "rewound/%s", src->name);
        uint64_t held = 0;
        if (rc == 0)
            rc = relais_meta_get (txn, name, &held);
        if (rc)
            return rc;
        if (held) {
            src->rewound = true;
            relais_error ("source rewound src=%s applied=%llu: held since it was found "
                          "rewound; restore or rebuild this service", src->name,
                          (unsigned long long) src->applied);
        }
        self->sources [i]->known = self->sources [i]->applied;
    }
    return 0;
}

int
relais_sub_start (relais_sub_t *self)
{
    int rc = relais_store_read (self->store, s_read_checkpoints, self);
    if (rc)
        return rc;
    for (size_t i = 0; i < self->count; i++) {
        s_source_t *src = self->sources [i];
        //  Every topic of the source is received: sequences are per source,
        //  so a filtered stream would look like a stream of holes. Filtering
        //  happens when applying.
        zsock_t *live = zsock_new (ZMQ_SUB);
        zsock_t *fetch = relais_sock_new (ZMQ_DEALER, src->fetch_endpoint,
                                          RELAIS_SOCK_CONNECT, 0);
        if (!live || !fetch) {
            zsock_destroy (&live);
            zsock_destroy (&fetch);
            return -ENOMEM;
        }
        zsock_set_rcvhwm (live, self->opts.rcvhwm);
        zsock_set_linger (live, 0);
        zsock_set_subscribe (live, "");
        relais_sock_heartbeat (live);
        if (relais_security_apply (live, src->pub_endpoint, false)) {
            zsock_destroy (&live);
            zsock_destroy (&fetch);
            return -EACCES;
        }
        if (zsock_connect (live, "%s", src->pub_endpoint) < 0) {
            relais_error ("connect failed endpoint=%s", src->pub_endpoint);
            zsock_destroy (&live);
            zsock_destroy (&fetch);
            return -EINVAL;
        }
        src->live = relais_poller_new (self->loop, &live, 4096, s_on_live, s_on_live_batch, src);
        src->fetch = relais_poller_new (self->loop, &fetch, 16, s_on_fetch_reply, NULL, src);
        if (!src->live || !src->fetch)
            return -ENOMEM;
        //  Silence is the live path's: counted from now, and only live
        //  messages (events, heartbeats) break it, not fetch replies
        src->last_heard = relais_clock_mono ();
        relais_info ("following src=%s applied=%llu pub=%s", src->name,
                     (unsigned long long) src->applied, src->pub_endpoint);
        //  Whatever was published while we were down is in the log: ask now
        //  rather than wait for the first heartbeat.
        s_fetch_send (src);
    }
    uv_timer_init (self->loop, &self->timer);
    self->timer.data = self;
    self->timer_open = true;
    uv_timer_start (&self->timer, s_on_tick, S_TICK_MS, S_TICK_MS);
    self->started = true;
    return 0;
}

size_t
relais_sub_count (relais_sub_t *self)
{
    return self->count;
}

int
relais_sub_source (relais_sub_t *self, size_t i, relais_sub_source_t *state)
{
    if (i >= self->count)
        return -EINVAL;
    s_source_t *src = self->sources [i];
    state->source = src->name;
    state->applied = src->applied;
    state->known = src->known;
    state->skipped = src->skipped;
    state->gaps = src->gaps;
    state->fetched = src->fetched;
    state->last_heard_us = src->last_heard;
    state->silent = src->silent;
    state->rewound = src->rewound;
    state->catching_up = src->fetching;
    return 0;
}

bool
relais_sub_caught_up (relais_sub_t *self)
{
    for (size_t i = 0; i < self->count; i++)
        if (self->sources [i]->fetching || self->sources [i]->applied < self->sources [i]->known)
            return false;
    return true;
}

static void
s_on_sub_closed (uv_handle_t *handle)
{
    free (handle->data);
}

void
relais_sub_close (relais_sub_t **self_p)
{
    relais_sub_t *self = *self_p;
    if (!self)
        return;
    *self_p = NULL;
    for (size_t i = 0; i < self->count; i++) {
        s_source_t *src = self->sources [i];
        relais_poller_close (&src->live);
        relais_poller_close (&src->fetch);
        zmsg_t *msg;
        while ((msg = (zmsg_t *) zlist_pop (src->queue)))
            zmsg_destroy (&msg);
        zlist_destroy (&src->queue);
        for (size_t t = 0; t < src->topic_count; t++)
            free (src->topics [t]);
        free (src->pub_endpoint);
        free (src->fetch_endpoint);
        free (src);
    }
    if (self->timer_open) {
        uv_timer_stop (&self->timer);
        uv_close ((uv_handle_t *) &self->timer, s_on_sub_closed);
    }
    else
        free (self);
}
