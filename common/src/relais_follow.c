/*  =========================================================================
    relais_follow - one source's events in sequence, history then live
    (see relais_follow.h)
    =========================================================================
*/
#include "relais_follow.h"
#include "relais_envelope.h"
#include "relais_msg.h"

#include <stdlib.h>
#include <string.h>

#define S_QUEUE_MAX     100000

//  Replies and events of our own services: a fetch reply holds up to the
//  server's byte budget.
static const relais_msg_limits_t s_limits = { 16 << 20, 16, 1 << 20 };

typedef struct {
    zframe_t *frame;
    char topic [RELAIS_TYPE_MAX];
    uint64_t seq;
} s_item_t;

struct relais_follow_t {
    char source [RELAIS_SRC_MAX];
    relais_follow_fn *fn;
    void *arg;
    bool started;
    uint64_t last;                  //  last seq handed out (or skipped)
    bool fetching;
    zlistx_t *queue;                //  live events not yet handed out (s_item_t)
    relais_follow_stats_t stats;
};

static void
s_item_destroy (void **item_p)
{
    s_item_t *item = (s_item_t *) *item_p;
    if (item) {
        zframe_destroy (&item->frame);
        free (item);
        *item_p = NULL;
    }
}

relais_follow_t *
relais_follow_new (const char *source, relais_follow_fn *fn, void *arg)
{
    relais_follow_t *self = (relais_follow_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    snprintf (self->source, sizeof self->source, "%s", source);
    self->fn = fn;
    self->arg = arg;
    self->queue = zlistx_new ();
    if (!self->queue) {
        free (self);
        return NULL;
    }
    zlistx_set_destructor (self->queue, s_item_destroy);
    return self;
}

void
relais_follow_destroy (relais_follow_t **self_p)
{
    relais_follow_t *self = *self_p;
    if (self) {
        zlistx_destroy (&self->queue);
        free (self);
        *self_p = NULL;
    }
}

static void
s_emit (relais_follow_t *self, const char *topic, uint64_t seq, const msgpack_object *envelope)
{
    self->last = seq;
    self->stats.delivered++;
    self->fn (self, topic, seq, envelope, self->arg);
}

static void
s_skip (relais_follow_t *self, uint64_t to)
{
    self->stats.skipped += to - self->last;
    self->stats.skip_from = self->last + 1;
    self->stats.skip_to = to;
    self->last = to;
}

//  Hand out queued live events in order while no fetch is needed.
static void
s_drain (relais_follow_t *self)
{
    if (!self->started || self->fetching)
        return;
    s_item_t *item;
    while ((item = (s_item_t *) zlistx_first (self->queue))) {
        if (item->seq == self->last + 1) {
            relais_msg_t msg;
            relais_error_t err;
            zframe_t *frame = item->frame;
            item->frame = NULL;
            char topic [RELAIS_TYPE_MAX];
            memcpy (topic, item->topic, sizeof topic);
            uint64_t seq = item->seq;
            //  Off the queue before the callback, which may feed us again
            zlistx_delete (self->queue, zlistx_cursor (self->queue));
            if (relais_msg_decode (&msg, zframe_data (frame), zframe_size (frame),
                                   &s_limits, &err) == 0) {
                s_emit (self, topic, seq, &msg.root);
                relais_msg_release (&msg);
            }
            else {
                self->last = seq;
                self->stats.malformed++;
            }
            zframe_destroy (&frame);
            continue;
        }
        if (item->seq > self->last + 1) {
            self->fetching = true;      //  a gap: read it from the log first
            return;
        }
        zlistx_delete (self->queue, zlistx_cursor (self->queue));
    }
}

void
relais_follow_start (relais_follow_t *self, uint64_t last, bool fetch)
{
    self->started = true;
    self->last = last;
    self->fetching = fetch;
    s_drain (self);
}

bool
relais_follow_started (relais_follow_t *self)
{
    return self->started;
}

uint64_t
relais_follow_last (relais_follow_t *self)
{
    return self->last;
}

bool
relais_follow_caught_up (relais_follow_t *self)
{
    return self->started && !self->fetching && zlistx_size (self->queue) == 0;
}

bool
relais_follow_live (relais_follow_t *self, const char *topic, zframe_t **frame_p)
{
    zframe_t *frame = *frame_p;
    *frame_p = NULL;
    relais_msg_t msg;
    relais_error_t err;
    if (!frame || relais_msg_decode (&msg, zframe_data (frame), zframe_size (frame), &s_limits, &err)) {
        zframe_destroy (&frame);
        return false;
    }
    bool heartbeat = strcmp (topic, RELAIS_HB_TOPIC) == 0;
    relais_envelope_t env;
    int rc = relais_envelope_decode (&msg.root, heartbeat, &env, &err);
    relais_msg_release (&msg);
    if (rc || strcmp (env.src, self->source) != 0) {
        zframe_destroy (&frame);
        return false;
    }
    if (heartbeat) {
        zframe_destroy (&frame);
        //  Events between the last handed out and the announced one were
        //  lost (the service restarted, or the PUB dropped them): fetch them
        if (self->started && !self->fetching && env.seq > self->last
        &&  zlistx_size (self->queue) == 0)
            self->fetching = true;
        return true;
    }
    if (self->started && env.seq <= self->last) {
        zframe_destroy (&frame);        //  handed out already
        return true;
    }
    if (zlistx_size (self->queue) >= S_QUEUE_MAX) {
        zframe_destroy (&frame);        //  the log has it: a gap, filled later
        self->stats.dropped++;
        return true;
    }
    s_item_t *item = (s_item_t *) calloc (1, sizeof *item);
    if (!item) {
        zframe_destroy (&frame);
        return true;
    }
    item->frame = frame;
    item->seq = env.seq;
    snprintf (item->topic, sizeof item->topic, "%s", topic);
    zlistx_add_end (self->queue, item);
    s_drain (self);
    return true;
}

bool
relais_follow_fetching (relais_follow_t *self, uint64_t *from)
{
    if (!self->started || !self->fetching)
        return false;
    *from = self->last + 1;
    return true;
}

int
relais_follow_fetched (relais_follow_t *self, const msgpack_object *reply)
{
    if (!self->started || !self->fetching)
        return 0;                       //  an answer nobody waits for any more
    const msgpack_object *ok = relais_msg_get (reply, "ok");
    uint64_t last = 0, first = 0;
    relais_msg_uint (relais_msg_get (reply, "last"), &last);
    relais_msg_uint (relais_msg_get (reply, "first"), &first);
    if (!(ok && ok->type == MSGPACK_OBJECT_BOOLEAN && ok->via.boolean)) {
        if (relais_msg_str_eq (relais_msg_get (reply, "code"), RELAIS_CODE_GONE) && first > 0) {
            if (first - 1 > self->last)
                s_skip (self, first - 1);
            return RELAIS_EGONE;
        }
        return RELAIS_EMALFORMED;
    }
    const msgpack_object *events = relais_msg_get (reply, "events");
    if (!events || events->type != MSGPACK_OBJECT_ARRAY)
        return RELAIS_EMALFORMED;
    uint32_t count = events->via.array.size;
    for (uint32_t i = 0; i < count; i++) {
        const msgpack_object *event = &events->via.array.ptr [i];
        uint64_t seq;
        if (!relais_msg_uint (relais_msg_get (event, "seq"), &seq) || seq <= self->last)
            continue;
        relais_envelope_t env;
        relais_error_t err;
        if (relais_envelope_decode (event, false, &env, &err)) {
            self->last = seq;
            self->stats.malformed++;
            continue;
        }
        if (seq > self->last + 1)
            s_skip (self, seq - 1);     //  the log starts later than asked
        s_emit (self, NULL, seq, event);
    }
    if (count == 0 || self->last >= last) {
        self->fetching = false;
        //  A live event the log does not reach cannot be filled: skip to it
        s_item_t *head = (s_item_t *) zlistx_first (self->queue);
        if (head && head->seq > self->last + 1 && last < head->seq - 1)
            s_skip (self, head->seq - 1);
        s_drain (self);
    }
    return 0;
}

void
relais_follow_stats (relais_follow_t *self, relais_follow_stats_t *stats)
{
    *stats = self->stats;
}
