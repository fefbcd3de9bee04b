/*  =========================================================================
    relais_mailbox - the server side of a mailbox endpoint: the sessions of
    the followers connected to a ROUTER, and the window walk that sends
    them their stored entries

    @header
    A mailbox endpoint (router's `partners`, feedback's `feed`; the shape
    is proto/router.md §4) holds one session per box name (a partner, a
    producer): the follower's ROUTER identity, whether it sends the empty
    delimiter frame, the highest mseq sent in this session, and the clocks
    of what was last heard from it, last sent to it and last made progress.
    This class keeps that table, sends packed bodies to a session (with or
    without the delimiter, as the session came), walks a box's stored
    entries after the acknowledged mark up to the window and, on each tick,
    drops silent sessions, redelivers stalled ones and pings quiet ones.
    @discuss
    The entries are stored by the service in one database of its store,
    under the key relais_mailbox_key (name, mseq): the name, a zero byte,
    the mseq big-endian. The acknowledged mark of a box is the store meta
    "<acked_prefix><name>". What an entry becomes on the wire, and whether
    it is sent, skipped or waited for, is the service's pack callback; the
    meaning of hello, ack and the service's own ops stay in the service.
    Single-threaded: call from the loop thread only.
    =========================================================================
*/
#ifndef RELAIS_MAILBOX_H_INCLUDED
#define RELAIS_MAILBOX_H_INCLUDED

#include <czmq.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include "relais_bus.h"
#include "relais_store.h"

#define RELAIS_MAILBOX_NAME_MAX  160    //  box names, terminator included
#define RELAIS_MAILBOX_KEY_MAX   (RELAIS_MAILBOX_NAME_MAX + 8)

typedef struct relais_mailbox_t relais_mailbox_t;

//  One follower's session (read and written by the service: sent_upto and
//  the clocks are its state too)
typedef struct {
    char name [RELAIS_MAILBOX_NAME_MAX];    //  the box: partner, producer
    zframe_t *identity;                 //  the follower's ROUTER identity
    bool delimiter;                     //  it sends (and gets) the empty frame
    uint64_t sent_upto;                 //  highest mseq sent (or skipped)
    uint64_t heard_mono, sent_mono, progress_mono;  //  relais_clock_mono ()
} relais_mailbox_session_t;

//  What the pack callback did with one stored entry
typedef enum {
    RELAIS_MAILBOX_SEND,                //  packed into pk: send it
    RELAIS_MAILBOX_SKIP,                //  nothing to send (damaged, closed): pass it
    RELAIS_MAILBOX_WAIT                 //  not ready: stop here, in order
} relais_mailbox_verdict_t;

//  Pack entry mseq of a box (its stored value val, vlen bytes) as one
//  message into pk, or say why not. pk writes into an empty buffer.
typedef relais_mailbox_verdict_t (relais_mailbox_pack_fn) (uint64_t mseq, const void *val,
                                                           size_t vlen, msgpack_packer *pk,
                                                           void *arg);

typedef struct {
    const char *what;                   //  in logs: "partner", "follower"
    const char *name_field;             //  in logs: "partner", "producer"
    unsigned db;                        //  the store database of the entries
    const char *acked_prefix;           //  meta name prefix of the acked mark
    uint64_t heartbeat_us;              //  ping interval; silent 3 of them = gone
    uint64_t redeliver_us;              //  no progress this long: send again
    uint32_t window;                    //  entries sent and unacked per box
    relais_mailbox_pack_fn *pack;
    void *pack_arg;
} relais_mailbox_opts_t;

//  Create an empty table. opts are copied (strings must outlive the
//  mailbox); heartbeat_us 0 means 1 s, window 0 means 1. NULL when out of
//  memory.
relais_mailbox_t *
    relais_mailbox_new (const relais_mailbox_opts_t *opts);

//  Drop every session and destroy. NULL-safe; nulls *self_p.
void
    relais_mailbox_destroy (relais_mailbox_t **self_p);

//  Use store for the entries and send on poller (the ROUTER endpoint);
//  both NULL before the poller is closed. Until attached, nothing is sent
//  and the walk reads nothing.
void
    relais_mailbox_attach (relais_mailbox_t *self, relais_store_t *store,
                           relais_poller_t *poller);

//  The key of entry mseq of box name, into key (RELAIS_MAILBOX_KEY_MAX
//  bytes at least; name shorter than RELAIS_MAILBOX_NAME_MAX). Returns its
//  length.
size_t
    relais_mailbox_key (const char *name, uint64_t mseq, uint8_t *key);

//  Open the session of box name for the requester of req: the session of
//  that name and any other of this identity are dropped first (one session
//  per box, one box per connection). The new session has sent nothing and
//  was heard now. NULL when out of memory.
relais_mailbox_session_t *
    relais_mailbox_open (relais_mailbox_t *self, const char *name,
                         const relais_request_t *req);

//  The session of this ROUTER identity, or NULL.
relais_mailbox_session_t *
    relais_mailbox_by_identity (relais_mailbox_t *self, zframe_t *identity);

//  The session of box name, or NULL.
relais_mailbox_session_t *
    relais_mailbox_by_name (relais_mailbox_t *self, const char *name);

//  Drop and free one session of this table. NULL-safe.
void
    relais_mailbox_drop (relais_mailbox_t *self, relais_mailbox_session_t *session);

//  How many sessions are open.
size_t
    relais_mailbox_size (relais_mailbox_t *self);

//  Send the packed body in sbuf to session (identity, the empty delimiter
//  when it came with one, body); the buffer stays the caller's. Returns 0
//  or -errno as relais_poller_send (-ESHUTDOWN when not attached). Marks
//  the session as sent to now either way.
int
    relais_mailbox_send (relais_mailbox_t *self, relais_mailbox_session_t *session,
                         const msgpack_sbuffer *sbuf);

//  Send {op: op} to session.
int
    relais_mailbox_send_op (relais_mailbox_t *self, relais_mailbox_session_t *session,
                            const char *op);

//  Mark session as heard now (any message from its follower).
void
    relais_mailbox_heard (relais_mailbox_session_t *session);

//  Send session the entries of its box after max (acked mark, sent_upto)
//  while fewer than the window are outstanding, through the pack callback.
//  Returns how many were sent.
uint64_t
    relais_mailbox_deliver (relais_mailbox_t *self, relais_mailbox_session_t *session);

//  The same for every session. Returns how many were sent.
uint64_t
    relais_mailbox_deliver_all (relais_mailbox_t *self);

//  Once per half heartbeat: drop the sessions silent for 3 heartbeats,
//  send again from the acked mark to those without progress for
//  redeliver_us, and ping those sent nothing for a heartbeat. Returns how
//  many entries were sent.
uint64_t
    relais_mailbox_tick (relais_mailbox_t *self);

#endif
