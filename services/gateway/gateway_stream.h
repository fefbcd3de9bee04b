/*  =========================================================================
    gateway_stream - the bus as Server-Sent Events: history, then live,
    with no gap and no duplicate, resumable with Last-Event-ID

    @header
    One follower per publishing service of the deployment (intake, router,
    plans, capacity, analytics, feedback: those with "<svc>/pub" and
    "<svc>/fetch").
    Each follower runs the seam logic that `relais tail` uses too
    (relais_follow, in common/) on the libuv loop: SUB first, then "status"
    for where the log is; live events are queued and taken only when their
    seq is the next one; a jump (a live event or a "$hb" beyond what it
    holds) makes it fetch the missing range from the source's log first.
    What it takes goes into a ring of the most recent events, contiguous
    by seq.
    @discuss
    A watch (one SSE client) holds, per source, the next seq it wants. It
    is served from the ring when the ring still holds that seq, otherwise
    from the source's log through fetch requests of its own; so a client
    that resumes an hour later, or a slow one that fell behind the ring,
    still gets every event once, in order. The SSE id of an event is its
    "src:seq", followed by the positions of the other sources
    (",router:17"): sent back as Last-Event-ID it resumes every source.
    The watch stops writing while its connection's write queue is over
    a limit, and goes on when the connection calls gateway_watch_pump.
    =========================================================================
*/
#ifndef GATEWAY_STREAM_H_INCLUDED
#define GATEWAY_STREAM_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <msgpack.h>
#include <uv.h>
#include "relais_config.h"

#define GATEWAY_SOURCES_MAX 8
#define GATEWAY_TOPICS_MAX  8

typedef struct gateway_stream_t gateway_stream_t;
typedef struct gateway_watch_t gateway_watch_t;

//  What a watch lets through (the filters of `relais tail`).
typedef struct {
    char topics [GATEWAY_TOPICS_MAX][48];   //  type prefixes; none: all
    size_t topic_count;
    char src [32];                          //  "": every source
    unsigned arr;                           //  0: any arrondissement
    unsigned level;                         //  0: any level
    char producer [192];                    //  "": any; else only feedback's events
                                            //  whose body.producer is this ("kind:name")
} gateway_filter_t;

//  How a watch reaches its connection: write queues bytes (returns 0, or
//  -1 when the connection is gone), backlog says how many bytes are queued.
typedef struct {
    int (*write) (void *conn, const char *data, size_t size);
    size_t (*backlog) (void *conn);
} gateway_sink_t;

//  Followers for every configured source. ring: events kept per source
//  (0: 4096). Returns NULL after logging why.
gateway_stream_t *
    gateway_stream_new (uv_loop_t *loop, relais_config_t *config, size_t ring);

//  Connect and start following. Returns 0 or -1.
int
    gateway_stream_start (gateway_stream_t *self);

//  Number of sources followed.
size_t
    gateway_stream_sources (gateway_stream_t *self);

//  Number of sources whose head is known (the others have not answered
//  "status" yet: a watch starts on them when they do).
size_t
    gateway_stream_started (gateway_stream_t *self);

//  Open a watch. resume: a Last-Event-ID ("src:seq[,src:seq...]") or NULL;
//  last_n > 0: start that many events back in each source; otherwise live.
//  Returns NULL when resume is malformed (no allocation made).
gateway_watch_t *
    gateway_stream_watch (gateway_stream_t *self, const gateway_filter_t *filter,
                          const char *resume, uint64_t last_n,
                          const gateway_sink_t *sink, void *conn);

//  True when resume is a well-formed Last-Event-ID.
bool
    gateway_stream_resume_ok (gateway_stream_t *self, const char *resume);

//  Write what the watch may write now (call when the connection drained).
void
    gateway_watch_pump (gateway_watch_t *watch);

//  Close a watch. NULL-safe; nulls *watch_p.
void
    gateway_watch_destroy (gateway_watch_t **watch_p);

//  Number of open watches.
size_t
    gateway_stream_watches (gateway_stream_t *self);

//  Append Prometheus lines on each source to out: last seq (from the
//  "status" op on its fetch endpoint), age of that status reply and of the
//  last message (event or heartbeat) on its PUB.
void
    gateway_stream_metrics (gateway_stream_t *self, msgpack_sbuffer *out);

//  Stop the followers; memory goes in libuv's close callbacks. Close the
//  watches first. NULL-safe; nulls *self_p.
void
    gateway_stream_close (gateway_stream_t **self_p);

#endif
