/*  =========================================================================
    relais_bus - ZeroMQ sockets on a libuv loop; the publisher and the
    subscriber that carry the bus guarantees

    @header
    Three classes, all on one libuv loop:
    - relais_poller_t joins one zsock to the loop with a uv_poll on ZMQ_FD.
      ZMQ_FD is edge-triggered while uv_poll is level-style, so the poller
      drains while ZMQ_EVENTS says POLLIN (a capped batch per turn), and a
      uv_check handle re-reads ZMQ_EVENTS every loop turn, which catches the
      edge that a send on the same socket may have consumed. A uv_idle keeps
      the loop turning while a capped batch left messages behind.
    - relais_pub_t is a service's event log made public: append events
      inside a store transaction; they are published on PUB only after that
      transaction committed (store hooks). It binds the fetch ROUTER
      (catch-up from the log, and "status") and sends "$hb" heartbeats.
    - relais_sub_t applies every event of its sources exactly once: the
      checkpoint of each source is written in the same transaction as the
      effect; a gap, a heartbeat beyond what was applied, or a restart makes
      it fetch the missing range from the source's log, ignoring live events
      until it has caught up (they are re-read from the log).
    @discuss
    Services never touch ZMQ_FD. Close order: relais_*_close () stops the
    handles; the memory and sockets go in the last close callback, so
    uv_run () must run once more after closing (it returns when all are
    closed).
    =========================================================================
*/
#ifndef RELAIS_BUS_H_INCLUDED
#define RELAIS_BUS_H_INCLUDED

#include <czmq.h>
#include <uv.h>
#include "relais_config.h"
#include "relais_envelope.h"
#include "relais_security.h"
#include "relais_store.h"

//  ---------------------------------------------------------------------------
//  Sockets with the project's options set (linger 1 s, 64 KiB max message
//  on sockets that face the world, immediate on connecting clients).

typedef enum {
    RELAIS_SOCK_BIND,       //  server side
    RELAIS_SOCK_CONNECT     //  client side
} relais_sock_mode_t;

//  Send high-water mark of every ROUTER and receive one of every DEALER
//  that relais_sock_new makes (messages per peer)
#define RELAIS_SOCK_HWM 100000

//  ZMTP heartbeats on every socket relais_sock_new makes, and on the
//  subscriber's SUB: a PING every interval, and a connection that answers
//  nothing for the timeout is dropped (and, on the connecting side,
//  reconnected). Without them a TCP connection whose peer vanished without
//  a reset - a NAT or firewall that forgot it, a host that lost power -
//  looks connected forever and a subscriber waits on it for good.
#define RELAIS_SOCK_HEARTBEAT_MS 1000
#define RELAIS_SOCK_HEARTBEAT_TIMEOUT_MS 5000
//  A connection that has not finished its ZMTP (and CURVE) handshake within
//  this is dropped: libzmq's default, 30 s, lets idle half-open connections
//  pile up (RELIABILITY-TESTS T21)
#define RELAIS_SOCK_HANDSHAKE_MS 5000

//  Apply the heartbeat and handshake options to sock (before its bind or
//  connect)
void
    relais_sock_heartbeat (zsock_t *sock);

//  Create a socket of type (ZMQ_ROUTER, ZMQ_PUB, ...) and bind or connect
//  it to endpoint. max_msg: ZMQ_MAXMSGSIZE (0: unlimited, for trusted
//  internal replies). Returns NULL after logging why.
zsock_t *
    relais_sock_new (int type, const char *endpoint, relais_sock_mode_t mode,
                     int64_t max_msg);

//  Before binding an ipc:// endpoint: create its folder (and parents) with
//  mode 0700, so that on one machine file permissions guard the sockets.
//  relais_sock_new does it for every bind. Other endpoints: nothing.
void
    relais_ipc_prepare (const char *endpoint);

//  ---------------------------------------------------------------------------
typedef struct relais_poller_t relais_poller_t;

//  One request of a ROUTER server (the helpers are below, relais_request_*)
typedef struct {
    zframe_t *identity;         //  owned
    bool delimiter;             //  the request had the empty frame
    zframe_t *data;             //  owned
    //  A request from a request poller (relais_poller_new_requests) holds
    //  libzmq's own frames instead (identity and data are then NULL): no
    //  czmq allocation, no copy. Read it with relais_request_bytes and
    //  relais_request_peer; move it with relais_request_move.
    bool raw;
    bool raw_replied;           //  raw_identity is spent (one reply per request)
    zmq_msg_t raw_identity;     //  owned
    zmq_msg_t raw_data;         //  owned
} relais_request_t;

//  Called for each message received; the callee takes *msg_p (and nulls it)
//  or leaves it to be destroyed.
typedef void (relais_poller_fn) (relais_poller_t *poller, zmsg_t **msg_p, void *arg);
//  Called after each drained batch (group commit point).
typedef void (relais_poller_batch_fn) (relais_poller_t *poller, void *arg);

//  Join *sock_p to loop; takes ownership of the socket. batch_max caps the
//  messages handled per loop turn (0: 1024). batch_fn may be NULL.
relais_poller_t *
    relais_poller_new (uv_loop_t *loop, zsock_t **sock_p, size_t batch_max,
                       relais_poller_fn *fn, relais_poller_batch_fn *batch_fn,
                       void *arg);

//  Called for each request a request poller receives, split as
//  relais_request_take splits a zmsg but straight into libzmq's frames (no
//  zmsg, no zframe, no copy). rc is 0, or RELAIS_EMALFORMED when the shape
//  is wrong (the identity is kept so that an error can be sent back). The
//  callee keeps the request with relais_request_move, or leaves it to be
//  released when it returns.
typedef void (relais_poller_request_fn) (relais_poller_t *poller, relais_request_t *req,
                                         int rc, void *arg);

//  As relais_poller_new, for a ROUTER serving requests (PROTOCOL: identity,
//  empty delimiter, one data frame; a frame-less DEALER tolerated). A
//  message whose certificate was revoked is answered "unauthorized" here,
//  as relais_poller_new does.
relais_poller_t *
    relais_poller_new_requests (uv_loop_t *loop, zsock_t **sock_p, size_t batch_max,
                                relais_poller_request_fn *fn,
                                relais_poller_batch_fn *batch_fn, void *arg);

//  The socket, for sends. After sending, the check handle re-reads events.
zsock_t *
    relais_poller_sock (relais_poller_t *self);

//  Send without blocking; destroys *msg_p. Returns 0 or -errno (EAGAIN when
//  the peer's queue is full, EHOSTUNREACH for an unknown ROUTER peer).
int
    relais_poller_send (relais_poller_t *self, zmsg_t **msg_p);

//  Send count parts as one message, without blocking and without building a
//  zmsg (no allocation, no copy beyond libzmq's own). Returns 0 or -errno
//  as relais_poller_send; a refused message is refused whole.
int
    relais_poller_sendv (relais_poller_t *self, const void *const *parts,
                         const size_t *sizes, size_t count);

//  As relais_poller_sendv, with one more part last: the bytes of *last
//  (malloc'd, size bytes) are handed to libzmq without a copy, and released
//  once sent or refused by release (data, hint), which must free them and
//  may run in libzmq's I/O thread (NULL: free); *last is nulled whatever
//  happens. For large replies (fetch), where the copy and its page faults
//  show.
int
    relais_poller_sendv_take (relais_poller_t *self, const void *const *parts,
                              const size_t *sizes, size_t count, void **last,
                              size_t size, zmq_free_fn *release, void *hint);

//  Stop and close; the socket is destroyed once libuv has closed the handles.
//  NULL-safe; nulls *self_p.
void
    relais_poller_close (relais_poller_t **self_p);

//  ---------------------------------------------------------------------------
typedef struct relais_pub_t relais_pub_t;
typedef struct relais_sub_t relais_sub_t;

typedef struct {
    const char *name;               //  "intake", "router", ...
    const char *pub_endpoint;
    const char *fetch_endpoint;
    uint64_t heartbeat_ms;          //  0: 1000
    size_t fetch_max_bytes;         //  the most max_bytes may ask (0 and above: 8 MiB)
    uint32_t fetch_max_events;      //  the most max may ask (0 and above: 10,000)
    int sndhwm;                     //  PUB high-water mark (0: 100000)
} relais_pub_opts_t;

//  Bind PUB and the fetch ROUTER, hook into store's write transactions and
//  send the first heartbeat at once. Returns NULL after logging why.
relais_pub_t *
    relais_pub_new (uv_loop_t *loop, relais_store_t *store, const relais_pub_opts_t *opts);

//  Append one event to the log inside txn and queue it for publishing after
//  the commit. body is an encoded msgpack map. ts 0 means now. corr may be
//  NULL. Stores the new sequence in *seq when seq is not NULL.
//  Returns 0 or the store's error (the caller aborts its transaction).
int
    relais_pub_append (relais_pub_t *self, relais_txn_t *txn, const char *type,
                       const char *key, const char *corr, uint64_t ts,
                       const void *body, size_t body_size, uint64_t *seq);

//  Last committed (and so published) sequence.
uint64_t
    relais_pub_last (relais_pub_t *self);

//  Add the subscriber's per-source state to "status" replies.
void
    relais_pub_attach_sub (relais_pub_t *self, relais_sub_t *sub);

//  Counters for status and metrics.
typedef struct {
    uint64_t published;             //  events sent on PUB
    uint64_t heartbeats;
    uint64_t fetches;               //  fetch requests served
    uint64_t fetch_errors;          //  bad fetch requests, and fetches refused as busy
    uint64_t fetch_busy;            //  fetches refused: too many reply bytes queued
    uint64_t rebinds;               //  PUB re-bound after a certificate was revoked
} relais_pub_stats_t;
void
    relais_pub_stats (relais_pub_t *self, relais_pub_stats_t *stats);

//  Fetch reply bytes that libzmq still holds, for the whole process. Over
//  RELAIS_FETCH_QUEUED_MAX, fetch requests are answered {ok: false, code:
//  "unavailable"} (counted in fetch_busy) until the peers read theirs.
#define RELAIS_FETCH_QUEUED_MAX     (64u * 1024 * 1024)
size_t
    relais_pub_fetch_queued (void);

//  Stop timers and sockets. NULL-safe; nulls *self_p.
void
    relais_pub_close (relais_pub_t **self_p);

//  ---------------------------------------------------------------------------
//  Apply one event inside txn. Return 0 (applied), RELAIS_EMALFORMED (the
//  event cannot be applied: it is counted, logged and skipped - the
//  checkpoint moves past it), or another negative code (storage trouble:
//  the whole transaction is aborted and retried later).
typedef int (relais_apply_fn) (relais_txn_t *txn, const char *topic,
                               const relais_envelope_t *env, void *arg);

typedef struct {
    uint64_t heartbeat_ms;          //  the sources' heartbeat interval (0: 1000)
    uint64_t fetch_timeout_ms;      //  resend a fetch after this (0: 2000)
    uint32_t fetch_max;             //  events asked per fetch (0: 1000)
    int rcvhwm;                     //  SUB high-water mark (0: 100000)
} relais_sub_opts_t;

relais_sub_t *
    relais_sub_new (uv_loop_t *loop, relais_store_t *store, const relais_sub_opts_t *opts,
                    relais_apply_fn *fn, void *arg);

//  Follow a source. topics: NULL-terminated prefixes whose events are
//  applied (NULL: all); other events only move the checkpoint. Call before
//  relais_sub_start. Returns 0 or -EINVAL.
int
    relais_sub_add (relais_sub_t *self, const char *source, const char *pub_endpoint,
                    const char *fetch_endpoint, const char *const *topics);

//  Connect, read checkpoints and fetch what was missed while down.
int
    relais_sub_start (relais_sub_t *self);

typedef struct {
    const char *source;
    uint64_t applied;               //  checkpoint
    uint64_t known;                 //  highest sequence the source announced
    uint64_t skipped;               //  events refused by the apply callback
    uint64_t gaps;                  //  gaps detected
    uint64_t fetched;               //  events received through fetch
    uint64_t last_heard_us;         //  monotonic µs of the last live message (or of the start)
    bool silent;                    //  nothing live for 3 intervals (fetch probes the log meanwhile)
    bool rewound;                   //  the source's log ends before the checkpoint: held for good
    bool catching_up;
} relais_sub_source_t;

//  Number of sources; fill *state for source i (0-based). Returns 0 or -EINVAL.
size_t
    relais_sub_count (relais_sub_t *self);
int
    relais_sub_source (relais_sub_t *self, size_t i, relais_sub_source_t *state);

//  True when every source is caught up with what it announced.
bool
    relais_sub_caught_up (relais_sub_t *self);

void
    relais_sub_close (relais_sub_t **self_p);

//  ---------------------------------------------------------------------------
//  Request framing helpers for ROUTER servers (PROTOCOL: identity, empty
//  delimiter, one data frame; a frame-less DEALER peer is tolerated). relais_request_t
//  is declared above, with the poller.

//  Split a ROUTER message. Returns 0, or RELAIS_EMALFORMED when the shape is
//  wrong (the identity is still kept so an error can be sent back).
int
    relais_request_take (zmsg_t **msg_p, relais_request_t *req);

//  Read a request from a ROUTER message, as every request endpoint does:
//  the frames (relais_request_take), the data frame decoded with the
//  project's pre-walk and default limits, a map, and its "rid" (NULL when
//  absent). Returns 0, or RELAIS_EMALFORMED with err set (invalid or
//  too_large); the identity is kept and *rid set whenever known, so that the
//  caller can answer with relais_request_error. msg must be zeroed; release
//  it and req after replying.
int
    relais_request_read (zmsg_t **msg_p, relais_request_t *req, relais_msg_t *msg,
                         const msgpack_object **rid, relais_error_t *err);

//  Send reply bytes to req's peer with the same framing. Returns 0/-errno.
int
    relais_request_reply (relais_poller_t *poller, relais_request_t *req,
                          const void *data, size_t size);

//  As relais_request_reply, but the reply's bytes (sbuf's) are handed to
//  libzmq without a copy (relais_poller_sendv_take, release and hint as
//  there): sbuf is left empty and initialised, sent or not. Returns 0/-errno.
int
    relais_request_reply_take (relais_poller_t *poller, relais_request_t *req,
                               msgpack_sbuffer *sbuf, zmq_free_fn *release, void *hint);

//  Send an error reply; idem/rid echoed when given.
int
    relais_request_error (relais_poller_t *poller, relais_request_t *req,
                          const relais_error_t *err, const msgpack_object *idem,
                          const msgpack_object *rid);

void
    relais_request_release (relais_request_t *req);

//  The bytes of req's data frame, whichever way it was received (NULL and
//  *size 0 when it has none).
const void *
    relais_request_bytes (relais_request_t *req, size_t *size);

//  Who sent req (relais_security_peer on its data frame's User-Id).
bool
    relais_request_peer (relais_request_t *req, relais_peer_t *peer);

//  Move *src into *dst (dst uninitialised or released); src is left empty,
//  safe to release.
void
    relais_request_move (relais_request_t *dst, relais_request_t *src);

//  ---------------------------------------------------------------------------
//  Graceful stop: run fn once on SIGINT or SIGTERM. The handle is closed by
//  relais_signals_close. Returns NULL on failure.
typedef struct relais_signals_t relais_signals_t;
typedef void (relais_signals_fn) (int signum, void *arg);
relais_signals_t *
    relais_signals_new (uv_loop_t *loop, relais_signals_fn *fn, void *arg);
void
    relais_signals_close (relais_signals_t **self_p);

//  Keep personal data in memory out of core dumps and other processes:
//  RLIMIT_CORE 0 and not dumpable (no core file, no ptrace by the same
//  user). Every program that holds personal data calls it first.
//  Returns 0 or -errno.
int
    relais_process_harden (void);

//  What every service's main does once its configuration is loaded:
//  relais_process_harden, then declare the "security" section and start
//  security as name (server: it binds; with CURVE on, the ZAP handler).
//  Returns 0 or RELAIS_ECONFIG after logging why. relais_service_teardown
//  undoes it after the loop has returned.
int
    relais_service_setup (relais_config_t *config, const char *name, bool server);
void
    relais_service_teardown (void);

//  Log why and exit with EXIT_FAILURE at once: storage can no longer be
//  trusted (RELAIS_EFATAL). The supervisor restarts the service, which
//  recovers from what was committed.
void
    relais_fatal (const char *what, int rc) __attribute__ ((noreturn));

#endif
