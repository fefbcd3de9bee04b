/*  =========================================================================
    gateway_stream - the bus as Server-Sent Events (see gateway_stream.h)
    =========================================================================
*/
#include "gateway_stream.h"
#include "cli_json.h"
#include "relais_bus.h"
#include "relais_clock.h"
#include "relais_follow.h"
#include "relais_envelope.h"
#include "relais_log.h"
#include "relais_msg.h"

#include <stdlib.h>
#include <string.h>

#define S_TICK_MS           100
#define S_REQUEST_MS        2000        //  a request unanswered this long is sent again
#define S_STATUS_MS         2000        //  status poll, for /metrics
#define S_FETCH_MAX         500
#define S_BACKLOG_MAX       (1 << 20)   //  bytes queued on a client before it waits

static const char *const s_services [] = {
    "intake", "router", "plans", "capacity", "analytics", "feedback", NULL
};

//  Decode limits for replies and events of our own services (a fetch
//  reply holds up to the server's byte budget).
static const relais_msg_limits_t s_limits = { 16 << 20, 16, 1 << 20 };

typedef struct {
    uint64_t seq;
    char type [RELAIS_TYPE_MAX];
    unsigned arr, level;
    char *json;                         //  the envelope as JSON, "topic" first
    char *producer;                     //  the body's "producer" (feedback's events), or NULL
} s_entry_t;

typedef struct {
    gateway_stream_t *stream;
    size_t index;
    char name [RELAIS_SRC_MAX];
    const char *pub_ep, *fetch_ep;
    relais_poller_t *sub;
    relais_poller_t *dealer;
    bool started;
    uint64_t last;                      //  newest seq in the ring (0: none yet)
    relais_follow_t *follow;            //  the seam: history, then live, in order
    uint64_t rid;                       //  our own request in flight
    bool rid_status;
    uint64_t sent_ms;
    s_entry_t *ring;
    size_t count;                       //  entries held: last - count + 1 .. last
    uint64_t heard_ms;                  //  last message on SUB (0: never)
    uint64_t status_ms;                 //  last status reply (0: never)
    uint64_t status_last;
    uint64_t status_sent_ms;
} s_source_t;

struct gateway_stream_t {
    uv_loop_t *loop;
    uv_timer_t timer;
    bool timer_open;
    size_t ring;
    s_source_t sources [GATEWAY_SOURCES_MAX];
    size_t source_count;
    zlistx_t *watches;
    uint64_t next_rid;
};

struct gateway_watch_t {
    gateway_stream_t *stream;
    gateway_filter_t filter;
    gateway_sink_t sink;
    void *conn;
    bool live [GATEWAY_SOURCES_MAX];    //  start at the source's head once known
    uint64_t last_n;                    //  ... that many events back
    uint64_t next [GATEWAY_SOURCES_MAX];
    uint64_t rid [GATEWAY_SOURCES_MAX]; //  history fetch in flight
    uint64_t sent_ms [GATEWAY_SOURCES_MAX];
    void *handle;                       //  our place in stream->watches
    bool dead;                          //  the connection refused a write
};

static uint64_t
s_now_ms (void)
{
    return relais_clock_mono () / 1000;
}

//  ---------------------------------------------------------------------------
//  Events: what a filter needs, and the JSON a client gets

static unsigned
s_body_uint (const msgpack_object *map, const char *key)
{
    uint64_t value = 0;
    relais_msg_uint (relais_msg_get (map, key), &value);
    return value > 1000? 0: (unsigned) value;
}

//  Fill entry from an envelope map. Returns 0 or -1 when malformed.
static int
s_entry_fill (s_entry_t *entry, const char *topic, const msgpack_object *envelope)
{
    relais_envelope_t env;
    relais_error_t err;
    if (relais_envelope_decode (envelope, false, &env, &err))
        return -1;
    entry->seq = env.seq;
    snprintf (entry->type, sizeof entry->type, "%s", topic && *topic? topic: env.type);
    entry->arr = s_body_uint (relais_msg_get (env.body, "place"), "arrondissement");
    if (!entry->arr)
        entry->arr = s_body_uint (env.body, "arrondissement");
    entry->level = s_body_uint (env.body, "level");
    const msgpack_object *producer = relais_msg_get (env.body, "producer");
    if (producer && producer->type == MSGPACK_OBJECT_STR && producer->via.str.size < 256) {
        entry->producer = (char *) malloc (producer->via.str.size + 1);
        if (!entry->producer)
            return -1;
        memcpy (entry->producer, producer->via.str.ptr, producer->via.str.size);
        entry->producer [producer->via.str.size] = 0;
    }
    //  The type came off the wire: it is checked one-line UTF-8 by the
    //  envelope decoder, and cli_json escapes what it writes
    cli_json_opts_t opts = { "topic", entry->type, NULL };
    entry->json = cli_json_dumps (envelope, &opts);
    if (!entry->json) {
        free (entry->producer);
        entry->producer = NULL;
        return -1;
    }
    return 0;
}

static bool
s_pass (const gateway_filter_t *filter, const char *src, const s_entry_t *entry)
{
    //  A producer's stream: its own reports' status changes, nothing else
    if (filter->producer [0]
    &&  (strcmp (src, "feedback") != 0 || !entry->producer || strcmp (entry->producer, filter->producer) != 0))
        return false;
    if (filter->src [0] && strcmp (filter->src, src) != 0)
        return false;
    if (filter->arr && entry->arr != filter->arr)
        return false;
    if (filter->level && entry->level != filter->level)
        return false;
    if (filter->topic_count == 0)
        return true;
    for (size_t i = 0; i < filter->topic_count; i++)
        if (strncmp (entry->type, filter->topics [i], strlen (filter->topics [i])) == 0)
            return true;
    return false;
}

//  Write one event to a watch: "id: src:seq[,other:seq...]" then the data.
static void
s_watch_emit (gateway_watch_t *self, size_t index, const s_entry_t *entry)
{
    gateway_stream_t *stream = self->stream;
    self->next [index] = entry->seq + 1;
    if (self->dead || !s_pass (&self->filter, stream->sources [index].name, entry))
        return;
    msgpack_sbuffer out;
    msgpack_sbuffer_init (&out);
    char part [64];
    int n = snprintf (part, sizeof part, "id: %s:%llu", stream->sources [index].name,
                      (unsigned long long) entry->seq);
    msgpack_sbuffer_write (&out, part, (size_t) n);
    for (size_t i = 0; i < stream->source_count; i++) {
        if (i == index || self->live [i] || self->next [i] == 0)
            continue;
        n = snprintf (part, sizeof part, ",%s:%llu", stream->sources [i].name,
                      (unsigned long long) (self->next [i] - 1));
        msgpack_sbuffer_write (&out, part, (size_t) n);
    }
    msgpack_sbuffer_write (&out, "\ndata: ", 7);
    msgpack_sbuffer_write (&out, entry->json, strlen (entry->json));
    msgpack_sbuffer_write (&out, "\n\n", 2);
    if (self->sink.write (self->conn, out.data, out.size))
        self->dead = true;
    msgpack_sbuffer_destroy (&out);
}

//  ---------------------------------------------------------------------------
//  Requests on a source's fetch endpoint

static int
s_send (s_source_t *source, bool status, uint64_t from, uint64_t rid)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, status? 2: 4);
    relais_pack_kv_str (&pk, "op", status? "status": "fetch");
    relais_pack_kv_uint (&pk, "rid", rid);
    if (!status) {
        relais_pack_kv_uint (&pk, "from", from);
        relais_pack_kv_uint (&pk, "max", S_FETCH_MAX);
    }
    zmsg_t *msg = zmsg_new ();
    zmsg_addmem (msg, NULL, 0);
    zmsg_addmem (msg, sbuf.data, sbuf.size);
    msgpack_sbuffer_destroy (&sbuf);
    return relais_poller_send (source->dealer, &msg);
}

//  ---------------------------------------------------------------------------
//  Watches

static gateway_watch_t *
s_watch_by_rid (gateway_stream_t *self, size_t index, uint64_t rid)
{
    for (gateway_watch_t *w = (gateway_watch_t *) zlistx_first (self->watches); w;
         w = (gateway_watch_t *) zlistx_next (self->watches))
        if (w->rid [index] == rid)
            return w;
    return NULL;
}

static void
s_watch_pump_source (gateway_watch_t *self, size_t index)
{
    s_source_t *source = &self->stream->sources [index];
    if (!source->started)
        return;
    if (self->live [index]) {
        self->live [index] = false;
        self->next [index] = source->last >= self->last_n? source->last - self->last_n + 1: 1;
    }
    uint64_t first = source->last - source->count + 1;
    while (!self->dead && self->next [index] <= source->last
       &&  self->sink.backlog (self->conn) < S_BACKLOG_MAX) {
        if (source->count && self->next [index] >= first) {
            s_entry_t *entry = &source->ring [self->next [index] % self->stream->ring];
            s_watch_emit (self, index, entry);
            continue;
        }
        //  Older than the ring: from the source's log
        if (!self->rid [index]) {
            uint64_t rid = ++self->stream->next_rid;
            if (s_send (source, false, self->next [index], rid) == 0) {
                self->rid [index] = rid;
                self->sent_ms [index] = s_now_ms ();
            }
        }
        break;
    }
}

void
gateway_watch_pump (gateway_watch_t *self)
{
    if (!self)
        return;
    for (size_t i = 0; i < self->stream->source_count; i++)
        s_watch_pump_source (self, i);
}

static void
s_watch_on_history (gateway_watch_t *self, size_t index, const msgpack_object *root)
{
    self->rid [index] = 0;
    const msgpack_object *ok = relais_msg_get (root, "ok");
    uint64_t first = 0;
    relais_msg_uint (relais_msg_get (root, "first"), &first);
    if (!(ok && ok->type == MSGPACK_OBJECT_BOOLEAN && ok->via.boolean)) {
        //  Purged from the log: what is left starts at first
        if (relais_msg_str_eq (relais_msg_get (root, "code"), RELAIS_CODE_GONE)
        &&  first > self->next [index])
            self->next [index] = first;
        return;
    }
    const msgpack_object *events = relais_msg_get (root, "events");
    uint32_t count = events && events->type == MSGPACK_OBJECT_ARRAY? events->via.array.size: 0;
    for (uint32_t i = 0; i < count && !self->dead; i++) {
        uint64_t seq;
        const msgpack_object *event = &events->via.array.ptr [i];
        if (!relais_msg_uint (relais_msg_get (event, "seq"), &seq) || seq < self->next [index])
            continue;
        s_entry_t entry = { 0 };
        if (s_entry_fill (&entry, NULL, event) == 0)
            s_watch_emit (self, index, &entry);
        else
            self->next [index] = seq + 1;       //  malformed: skipped, like subscribers do
        free (entry.json);
        free (entry.producer);
    }
    //  An empty answer below the ring means the log holds nothing there
    if (count == 0 && first > self->next [index])
        self->next [index] = first;
}

//  Parse "src:seq[,src:seq...]" into the watch (NULL: only check).
//  Returns 0 or -1.
static int
s_watch_resume (gateway_stream_t *stream, gateway_watch_t *self, const char *resume)
{
    const char *p = resume;
    while (*p) {
        const char *colon = strchr (p, ':');
        if (!colon || colon == p || (size_t) (colon - p) >= RELAIS_SRC_MAX)
            return -1;
        char *end;
        if (colon [1] < '0' || colon [1] > '9')
            return -1;
        unsigned long long seq = strtoull (colon + 1, &end, 10);
        if (*end != 0 && *end != ',')
            return -1;
        for (size_t i = 0; self && i < stream->source_count; i++)
            if (strlen (stream->sources [i].name) == (size_t) (colon - p)
            &&  memcmp (stream->sources [i].name, p, (size_t) (colon - p)) == 0) {
                self->live [i] = false;
                self->next [i] = seq + 1;
            }
        p = *end? end + 1: end;
    }
    return 0;
}

gateway_watch_t *
gateway_stream_watch (gateway_stream_t *self, const gateway_filter_t *filter,
                      const char *resume, uint64_t last_n,
                      const gateway_sink_t *sink, void *conn)
{
    gateway_watch_t *watch = (gateway_watch_t *) calloc (1, sizeof *watch);
    if (!watch)
        return NULL;
    watch->stream = self;
    watch->filter = *filter;
    watch->sink = *sink;
    watch->conn = conn;
    watch->last_n = last_n;
    for (size_t i = 0; i < self->source_count; i++)
        watch->live [i] = true;
    if (resume && s_watch_resume (self, watch, resume)) {
        free (watch);
        return NULL;
    }
    watch->handle = zlistx_add_end (self->watches, watch);
    gateway_watch_pump (watch);
    return watch;
}

bool
gateway_stream_resume_ok (gateway_stream_t *self, const char *resume)
{
    return s_watch_resume (self, NULL, resume) == 0;
}

void
gateway_watch_destroy (gateway_watch_t **watch_p)
{
    gateway_watch_t *self = *watch_p;
    if (self) {
        zlistx_detach (self->stream->watches, self->handle);
        free (self);
        *watch_p = NULL;
    }
}

size_t
gateway_stream_watches (gateway_stream_t *self)
{
    return zlistx_size (self->watches);
}

//  ---------------------------------------------------------------------------
//  Followers

static void
s_ring_put (s_source_t *source, s_entry_t *entry)
{
    gateway_stream_t *stream = source->stream;
    s_entry_t *slot = &source->ring [entry->seq % stream->ring];
    free (slot->json);
    free (slot->producer);
    *slot = *entry;
    entry->json = NULL;
    entry->producer = NULL;
    source->last = entry->seq;
    if (source->count < stream->ring)
        source->count++;
}

static void
s_pump_all (s_source_t *source)
{
    gateway_stream_t *stream = source->stream;
    for (gateway_watch_t *w = (gateway_watch_t *) zlistx_first (stream->watches); w;
         w = (gateway_watch_t *) zlistx_next (stream->watches))
        s_watch_pump_source (w, source->index);
}

//  The follower hands out each event once, in order: into the ring, then
//  to the watches. A jump in seq (the log no longer held some) restarts
//  the ring, which must stay contiguous.
static void
s_on_event (relais_follow_t *follow, const char *topic, uint64_t seq,
            const msgpack_object *envelope, void *arg)
{
    s_source_t *source = (s_source_t *) arg;
    if (seq != source->last + 1)
        source->count = 0;
    s_entry_t entry = { 0 };
    if (s_entry_fill (&entry, topic, envelope) == 0)
        s_ring_put (source, &entry);
    else {
        source->last = seq;             //  not an event we can show: past it
        source->count = 0;
    }
    s_pump_all (source);
}

static void
s_on_sub (relais_poller_t *poller, zmsg_t **msg_p, void *arg)
{
    s_source_t *source = (s_source_t *) arg;
    zmsg_t *msg = *msg_p;
    if (zmsg_size (msg) != 2)
        return;
    zframe_t *topic_frame = zmsg_first (msg);
    char topic [RELAIS_TYPE_MAX];
    size_t tlen = zframe_size (topic_frame);
    if (tlen == 0 || tlen >= sizeof topic)
        return;
    memcpy (topic, zframe_data (topic_frame), tlen);
    topic [tlen] = 0;
    zframe_t *frame = zmsg_next (msg);
    zmsg_remove (msg, frame);
    if (relais_follow_live (source->follow, topic, &frame))
        source->heard_ms = s_now_ms ();
}

static void
s_on_own_reply (s_source_t *source, const msgpack_object *root, uint64_t now)
{
    bool status = source->rid_status;
    source->rid = 0;
    if (!status) {
        relais_follow_fetched (source->follow, root);
        return;
    }
    const msgpack_object *ok = relais_msg_get (root, "ok");
    uint64_t last = 0;
    if (!(ok && ok->type == MSGPACK_OBJECT_BOOLEAN && ok->via.boolean)
    ||  !relais_msg_uint (relais_msg_get (root, "last"), &last))
        return;
    source->status_ms = now;
    source->status_last = last;
    if (!source->started) {
        //  The ring starts at the head of the log: older events are served
        //  from the log to the watches that ask for them
        source->started = true;
        source->last = last;
        source->count = 0;
        relais_info ("stream following src=%s from=%llu", source->name,
                     (unsigned long long) last + 1);
        relais_follow_start (source->follow, last, false);
        s_pump_all (source);
    }
}

static void
s_on_dealer (relais_poller_t *poller, zmsg_t **msg_p, void *arg)
{
    s_source_t *source = (s_source_t *) arg;
    zframe_t *frame = zmsg_last (*msg_p);
    if (!frame)
        return;
    relais_msg_t msg;
    relais_error_t err;
    if (relais_msg_decode (&msg, zframe_data (frame), zframe_size (frame), &s_limits, &err)) {
        relais_warning ("stream malformed reply src=%s", source->name);
        return;
    }
    uint64_t rid = 0;
    relais_msg_uint (relais_msg_get (&msg.root, "rid"), &rid);
    if (rid && rid == source->rid)
        s_on_own_reply (source, &msg.root, s_now_ms ());
    else
    if (rid) {
        gateway_watch_t *watch = s_watch_by_rid (source->stream, source->index, rid);
        if (watch) {
            s_watch_on_history (watch, source->index, &msg.root);
            s_watch_pump_source (watch, source->index);
        }
    }
    relais_msg_release (&msg);
}

static void
s_on_tick (uv_timer_t *timer)
{
    gateway_stream_t *self = (gateway_stream_t *) timer->data;
    uint64_t now = s_now_ms ();
    for (size_t i = 0; i < self->source_count; i++) {
        s_source_t *source = &self->sources [i];
        if (source->rid && now - source->sent_ms > S_REQUEST_MS)
            source->rid = 0;                    //  lost with a restart: ask again
        if (!source->rid) {
            uint64_t from = 0;
            bool fetch = relais_follow_fetching (source->follow, &from);
            bool status = !source->started || (!fetch && now - source->status_sent_ms >= S_STATUS_MS);
            if (status || fetch) {
                uint64_t rid = ++self->next_rid;
                if (s_send (source, status, from, rid) == 0) {
                    source->rid = rid;
                    source->rid_status = status;
                    source->sent_ms = now;
                    if (status)
                        source->status_sent_ms = now;
                }
            }
        }
    }
    for (gateway_watch_t *w = (gateway_watch_t *) zlistx_first (self->watches); w;
         w = (gateway_watch_t *) zlistx_next (self->watches))
        for (size_t i = 0; i < self->source_count; i++)
            if (w->rid [i] && now - w->sent_ms [i] > S_REQUEST_MS)
                w->rid [i] = 0;                 //  asked again by the next pump
    for (gateway_watch_t *w = (gateway_watch_t *) zlistx_first (self->watches); w;
         w = (gateway_watch_t *) zlistx_next (self->watches))
        gateway_watch_pump (w);
}

//  ---------------------------------------------------------------------------

gateway_stream_t *
gateway_stream_new (uv_loop_t *loop, relais_config_t *config, size_t ring)
{
    gateway_stream_t *self = (gateway_stream_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->loop = loop;
    self->ring = ring? ring: 4096;
    self->watches = zlistx_new ();
    for (int i = 0; s_services [i] && self->source_count < GATEWAY_SOURCES_MAX; i++) {
        char path [64];
        snprintf (path, sizeof path, "%s/pub", s_services [i]);
        const char *pub = relais_config_str (config, path);
        snprintf (path, sizeof path, "%s/fetch", s_services [i]);
        const char *fetch = relais_config_str (config, path);
        if (!pub || !fetch || !*pub || !*fetch)
            continue;                           //  not in this deployment
        s_source_t *source = &self->sources [self->source_count];
        source->stream = self;
        source->index = self->source_count++;
        snprintf (source->name, sizeof source->name, "%s", s_services [i]);
        source->pub_ep = pub;
        source->fetch_ep = fetch;
        source->follow = relais_follow_new (source->name, s_on_event, source);
        source->ring = (s_entry_t *) calloc (self->ring, sizeof (s_entry_t));
        if (!source->follow || !source->ring) {
            gateway_stream_close (&self);
            return NULL;
        }
    }
    return self;
}

int
gateway_stream_start (gateway_stream_t *self)
{
    for (size_t i = 0; i < self->source_count; i++) {
        s_source_t *source = &self->sources [i];
        zsock_t *sub = relais_sock_new (ZMQ_SUB, source->pub_ep, RELAIS_SOCK_CONNECT, 1 << 20);
        zsock_t *dealer = relais_sock_new (ZMQ_DEALER, source->fetch_ep, RELAIS_SOCK_CONNECT, 0);
        if (!sub || !dealer) {
            zsock_destroy (&sub);
            zsock_destroy (&dealer);
            return -1;
        }
        //  Every topic: sequences are per source, a filtered one would look
        //  like a gap (README, design notes)
        zsock_set_subscribe (sub, "");
        zsock_set_rcvhwm (sub, 100000);
        source->sub = relais_poller_new (self->loop, &sub, 0, s_on_sub, NULL, source);
        source->dealer = relais_poller_new (self->loop, &dealer, 0, s_on_dealer, NULL, source);
        if (!source->sub || !source->dealer)
            return -1;
    }
    uv_timer_init (self->loop, &self->timer);
    self->timer.data = self;
    self->timer_open = true;
    uv_timer_start (&self->timer, s_on_tick, 0, S_TICK_MS);
    return 0;
}

size_t
gateway_stream_sources (gateway_stream_t *self)
{
    return self->source_count;
}

size_t
gateway_stream_started (gateway_stream_t *self)
{
    size_t n = 0;
    for (size_t i = 0; i < self->source_count; i++)
        n += self->sources [i].started;
    return n;
}

void
gateway_stream_metrics (gateway_stream_t *self, msgpack_sbuffer *out)
{
    char line [256];
    uint64_t now = s_now_ms ();
    static const char *const help [] = {
        "# HELP relais_source_last_seq Last sequence of the source's log (status op).\n"
        "# TYPE relais_source_last_seq gauge\n",
        "# HELP relais_source_status_age_seconds Age of the source's last status reply.\n"
        "# TYPE relais_source_status_age_seconds gauge\n",
        "# HELP relais_source_heartbeat_age_seconds Age of the last event or heartbeat on the source's PUB.\n"
        "# TYPE relais_source_heartbeat_age_seconds gauge\n"
    };
    for (int k = 0; k < 3; k++) {
        msgpack_sbuffer_write (out, help [k], strlen (help [k]));
        for (size_t i = 0; i < self->source_count; i++) {
            s_source_t *s = &self->sources [i];
            int n;
            if (k == 0)
                n = snprintf (line, sizeof line, "relais_source_last_seq{src=\"%s\"} %llu\n",
                              s->name, (unsigned long long) s->status_last);
            else {
                uint64_t at = k == 1? s->status_ms: s->heard_ms;
                if (at)
                    n = snprintf (line, sizeof line, "%s{src=\"%s\"} %.3f\n",
                                  k == 1? "relais_source_status_age_seconds"
                                        : "relais_source_heartbeat_age_seconds",
                                  s->name, (double) (now - at) / 1000.0);
                else
                    n = snprintf (line, sizeof line, "%s{src=\"%s\"} +Inf\n",
                                  k == 1? "relais_source_status_age_seconds"
                                        : "relais_source_heartbeat_age_seconds", s->name);
            }
            msgpack_sbuffer_write (out, line, (size_t) n);
        }
    }
}

static void
s_on_timer_closed (uv_handle_t *handle)
{
    free (handle->data);
}

void
gateway_stream_close (gateway_stream_t **self_p)
{
    gateway_stream_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->source_count; i++) {
        s_source_t *source = &self->sources [i];
        relais_poller_close (&source->sub);
        relais_poller_close (&source->dealer);
        relais_follow_destroy (&source->follow);
        if (source->ring)
            for (size_t j = 0; j < self->ring; j++)
            {
                free (source->ring [j].json);
                free (source->ring [j].producer);
            }
        free (source->ring);
    }
    zlistx_destroy (&self->watches);
    if (self->timer_open) {
        //  The struct goes with the timer's close callback
        uv_close ((uv_handle_t *) &self->timer, s_on_timer_closed);
    }
    else
        free (self);
    *self_p = NULL;
}
