/*  =========================================================================
    relais_follow - one source's events in sequence, history then live,
    with no gap and no duplicate at the seam (no sockets, no loop)

    @header
    The seam logic of a reader that shows the bus rather than applying it
    (`relais tail`, the gateway's Server-Sent Events): the caller connects
    the source's SUB first, learns where to start (a "status" reply, or a
    sequence it was given), then feeds this class every message from SUB
    and every fetch reply. Events are handed to the callback exactly once,
    in sequence order: live events wait in a queue while older ones are
    read from the log; a jump (a live event, or a "$hb" announcing a seq
    beyond what was handed out) turns on fetching until the log has filled
    it. What the log no longer holds is skipped and counted.
    @discuss
    Unlike relais_sub_t there is no store and no checkpoint: the position
    lives in memory (the caller may keep it, e.g. in an SSE id). The class
    never sends anything: the caller asks relais_follow_fetching () when it
    may send a request, and sends {op:"fetch", from, max} itself, so it
    can run on libuv (the gateway) or on zmq_poll (the CLI).
    =========================================================================
*/
#ifndef RELAIS_FOLLOW_H_INCLUDED
#define RELAIS_FOLLOW_H_INCLUDED

#include <czmq.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct relais_follow_t relais_follow_t;

//  Called once per event, in sequence order. topic: as received on SUB, or
//  NULL for an event read from the log (the envelope's type says it).
//  envelope: the decoded envelope map, valid during the call. A malformed
//  event is skipped without a call.
typedef void (relais_follow_fn) (relais_follow_t *follow, const char *topic,
                                 uint64_t seq, const msgpack_object *envelope,
                                 void *arg);

//  Follow source (its "src" name); fn receives the events. Returns NULL
//  when out of memory.
relais_follow_t *
    relais_follow_new (const char *source, relais_follow_fn *fn, void *arg);

//  Destroy. NULL-safe; nulls *self_p.
void
    relais_follow_destroy (relais_follow_t **self_p);

//  Set the position: events after last are handed out, never those at or
//  before it. fetch: read the log from last + 1 to its head first (history);
//  otherwise live, filling a gap from the log only when one shows.
//  May be called again to move the position (the queue is kept).
void
    relais_follow_start (relais_follow_t *self, uint64_t last, bool fetch);

//  True once relais_follow_start was called.
bool
    relais_follow_started (relais_follow_t *self);

//  The last sequence handed out (or skipped).
uint64_t
    relais_follow_last (relais_follow_t *self);

//  A message from the source's PUB: its topic and the envelope frame,
//  which the class takes (*frame_p is nulled). Returns true when the
//  message came from this source (an event or a heartbeat: it is alive),
//  false when it was ignored (malformed, another source).
bool
    relais_follow_live (relais_follow_t *self, const char *topic, zframe_t **frame_p);

//  True when events must be read from the log now: send a fetch from *from.
bool
    relais_follow_fetching (relais_follow_t *self, uint64_t *from);

//  Take a fetch reply (the decoded map). Returns 0 (its events handed out),
//  RELAIS_EGONE (the range was purged: the position moved to the log's
//  first sequence - 1, fetching goes on from there), or RELAIS_EMALFORMED
//  (refused with another code, or not a fetch reply: ask again later).
int
    relais_follow_fetched (relais_follow_t *self, const msgpack_object *reply);

//  True when started, not fetching and no live event waits.
bool
    relais_follow_caught_up (relais_follow_t *self);

typedef struct {
    uint64_t delivered;             //  events handed to the callback
    uint64_t skipped;               //  sequences the log did not hold any more
    uint64_t skip_from, skip_to;    //  the last range skipped (0, 0: none)
    uint64_t dropped;               //  live events dropped because the queue was full
    uint64_t malformed;             //  events skipped as malformed
} relais_follow_stats_t;

void
    relais_follow_stats (relais_follow_t *self, relais_follow_stats_t *stats);

#endif
