/*  =========================================================================
    notify_follower - the client side of a mailbox: hello with the last
    mseq durably handled, welcome, deliver to a sink, state file, ack

    @header
    One loop for relais-notify (a partner's mailbox on router/partners, a
    producer's feed on feedback/feed) and `relais follow` (a producer's
    feed): a DEALER says hello {who_key: name, after: last}; each deliver
    beyond last is formatted as one line and handed to the sink; after a
    batch, the sink is flushed and the state file written (atomic, fsync'd:
    notify_state_write), then {op:"ack", upto: last} is sent. A redelivery
    of what was handled is acknowledged again, never handed twice. A
    welcome whose mailbox is behind our record (the server's store was
    replaced) moves last back to the mailbox's acked mark. A "conflict"
    refusal (the server lost our session) says hello again; silence for 3
    heartbeats reconnects; a quiet connection is pinged every heartbeat.
    @discuss
    Policies that differ between the callers are options: a failed sink is
    retried with backoff (100 ms doubling to 5 s; nothing after it is
    handed meanwhile) or ends the loop; a refusal other than conflict ends
    the loop, or only "unauthorized" does; a count and an idle time end it.
    The caller opens the socket (its security) and says what is printed.
    The wire is proto/router.md §4 and proto/feedback.md §4.
    =========================================================================
*/
#ifndef NOTIFY_FOLLOWER_H_INCLUDED
#define NOTIFY_FOLLOWER_H_INCLUDED

#include "notify_sink.h"
#include "relais_msg.h"

#include <czmq.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

//  A DEALER connected to endpoint, or NULL after saying why.
typedef zsock_t *(notify_follower_connect_fn) (const char *endpoint, void *arg);

//  One delivery (the deliver map) as the line the sink takes, into line.
//  Returns 0, or -1 when it cannot be written (a sink failure).
typedef int (notify_follower_format_fn) (const msgpack_object *deliver, msgpack_sbuffer *line,
                                          void *arg);

//  Say text (ids and numbers only): error true when the loop ends on it.
typedef void (notify_follower_say_fn) (bool error, const char *text, void *arg);

//  True when the loop must stop now (a signal arrived).
typedef bool (notify_follower_stop_fn) (void *arg);

typedef struct {
    const char *endpoint;
    const char *who_key;                //  "partner" or "producer"
    const char *name;                   //  the box
    const char *peer;                   //  "router", "feedback": in what is said
    uint64_t heartbeat_ms;              //  0: 1 s
    notify_sink_t *sink;
    const char *state_path;
    const relais_msg_limits_t *limits;  //  of the messages received; NULL: defaults
    bool retry;                         //  a failed sink is retried (else the loop ends)
    bool quiet_refusals;                //  only "unauthorized" ends the loop (else any)
    uint64_t count;                     //  end after handing this many (0: no end)
    uint64_t idle_ms;                   //  end after this long without one (0: no end)
    notify_follower_connect_fn *connect;
    notify_follower_format_fn *format;
    notify_follower_say_fn *say;
    notify_follower_stop_fn *stopped;
    void *arg;
} notify_follower_opts_t;

//  Follow from *last (the mseq durably handled) until stopped, the count
//  or the idle time: *last and *handled tell where it stopped. Returns 0,
//  or -1 when the loop ended on a failure (connection, refusal, sink
//  without retry, state not written: nothing after it was acknowledged).
int
    notify_follower_run (const notify_follower_opts_t *opts, uint64_t *last, uint64_t *handled);

//  Pack {op: op} or, with key, {op: op, key: value} into sbuf (initialised).
void
    notify_follower_pack_op (msgpack_sbuffer *sbuf, const char *op, const char *key,
                             uint64_t value);

//  Pack the hello {op:"hello", who_key: name, after: last} into sbuf.
void
    notify_follower_pack_hello (msgpack_sbuffer *sbuf, const char *who_key, const char *name,
                                uint64_t last);

//  A welcome map: true when *last is beyond the mailbox's last, and then
//  *last is moved to its acked mark (box_last, when not NULL, gets the
//  mailbox's last). False for anything else.
bool
    notify_follower_welcome (const msgpack_object *welcome, uint64_t *last, uint64_t *box_last);

#endif
