/*  =========================================================================
    relais_poller - one zsock on a libuv loop (see relais_bus.h)

    ZMQ_FD signals edges, not levels: it becomes readable when the socket's
    state changed, and a send or a receive may consume that notice. So the
    poller never trusts the fd alone: it drains while ZMQ_EVENTS says
    POLLIN, and a uv_check handle asks ZMQ_EVENTS again at the end of every
    loop turn, after whatever callbacks sent on the socket.
    =========================================================================
*/
#include "relais_bus.h"
#include "relais_security.h"
#include "relais_log.h"

#include <stdlib.h>
#include <sys/stat.h>

struct relais_poller_t {
    uv_loop_t *loop;
    zsock_t *sock;
    uv_poll_t poll;
    uv_check_t check;
    uv_idle_t idle;
    size_t batch_max;
    relais_poller_fn *fn;
    relais_poller_request_fn *request_fn;   //  a request poller: no zmsg
    relais_poller_batch_fn *batch_fn;
    void *arg;
    int open_handles;
    bool closed;
    bool draining;
    bool idling;
    uint64_t revoked;                   //  messages refused: certificate revoked
};

static void
s_on_idle (uv_idle_t *handle)
{
    //  Nothing to do here: an active idle handle makes the poll phase
    //  non-blocking, and the check handle drains right after it.
}

//  A message whose connection's certificate (User-Id, set by our ZAP
//  handler at the handshake) is no longer in the roster: the certificate
//  was revoked while the session was open. It is refused - answered with
//  "unauthorized" on a ROUTER, dropped otherwise - and never reaches the
//  service. Returns true (and destroys *msg_p) when refused.
static bool
s_revoked (relais_poller_t *self, zmsg_t **msg_p)
{
    if (!relais_security_on ())
        return false;
    zframe_t *last = zmsg_last (*msg_p);
    const char *user = last? zframe_meta (last, "User-Id"): NULL;
    relais_peer_t peer;
    if (!user || !*user || relais_security_peer (last, &peer))
        return false;                   //  a client socket (no User-Id), or known
    self->revoked++;
    if (self->revoked == 1 || self->revoked % 1000 == 0)
        relais_warning ("message refused peer=%s why=certificate revoked refused=%llu",
                        user, (unsigned long long) self->revoked);
    if (zsock_type (self->sock) == ZMQ_ROUTER) {
        relais_request_t req;
        relais_error_t err;
        relais_error_clear (&err);
        relais_request_take (msg_p, &req);
        relais_error_set (&err, RELAIS_CODE_UNAUTHORIZED, "",
                          "this connection's certificate has been revoked");
        if (req.identity)
            relais_request_error (self, &req, &err, NULL, NULL);
        relais_request_release (&req);
    }
    zmsg_destroy (msg_p);
    return true;
}

//  A request poller's receive: the ROUTER message straight into libzmq's
//  frames of req, split as relais_request_take splits a zmsg. Returns 1 with
//  *shape 0 or RELAIS_EMALFORMED, or 0 when nothing is waiting.
static int
s_recv_request (relais_poller_t *self, relais_request_t *req, int *shape)
{
    void *handle = zsock_resolve (self->sock);
    memset (req, 0, sizeof *req);
    zmq_msg_init (&req->raw_identity);
    zmq_msg_init (&req->raw_data);
    req->raw = true;
    if (zmq_msg_recv (&req->raw_identity, handle, ZMQ_DONTWAIT) < 0) {
        relais_request_release (req);
        return 0;
    }
    //  The other parts of a message arrive with its first: no wait below
    size_t frames = 1;
    bool more = zmq_msg_more (&req->raw_identity);
    bool empty_second = false;
    while (more) {
        zmq_msg_close (&req->raw_data);
        zmq_msg_init (&req->raw_data);
        if (zmq_msg_recv (&req->raw_data, handle, 0) < 0)
            break;
        frames++;
        if (frames == 2)
            empty_second = zmq_msg_size (&req->raw_data) == 0;
        more = zmq_msg_more (&req->raw_data);
    }
    //  [identity, data]: a DEALER without delimiter, answered the same way;
    //  [identity, "", data]: REQ framing; anything else is malformed (the
    //  error goes back with the delimiter)
    req->delimiter = frames != 2;
    *shape = frames == 2 || (frames == 3 && empty_second)? 0: RELAIS_EMALFORMED;
    return 1;
}

//  As s_revoked, for a request poller's request (released when refused)
static bool
s_request_revoked (relais_poller_t *self, relais_request_t *req)
{
    if (!relais_security_on ())
        return false;
    const char *user = zmq_msg_gets (&req->raw_data, "User-Id");
    relais_peer_t peer;
    if (!user || !*user || relais_security_peer_user (user, &peer))
        return false;
    self->revoked++;
    if (self->revoked == 1 || self->revoked % 1000 == 0)
        relais_warning ("message refused peer=%s why=certificate revoked refused=%llu",
                        user, (unsigned long long) self->revoked);
    relais_error_t err;
    relais_error_clear (&err);
    relais_error_set (&err, RELAIS_CODE_UNAUTHORIZED, "",
                      "this connection's certificate has been revoked");
    relais_request_error (self, req, &err, NULL, NULL);
    relais_request_release (req);
    return true;
}

static void
s_drain (relais_poller_t *self)
{
    if (self->draining || self->closed)
        return;
    self->draining = true;
    size_t count = 0;
    //  Receive until EAGAIN (rcvtimeo is 0) rather than asking ZMQ_EVENTS
    //  before each message: a failed receive consumes the same notice, and
    //  one getsockopt per message was ~5% of intake's time under load.
    //  ZMQ_EVENTS is still asked once below, after the batch callback.
    while (self->request_fn && count < self->batch_max && !self->closed) {
        relais_request_t req;
        int shape;
        if (!s_recv_request (self, &req, &shape))
            break;
        count++;
        if (s_request_revoked (self, &req))
            continue;
        self->request_fn (self, &req, shape, self->arg);
        relais_request_release (&req);
    }
    while (!self->request_fn && count < self->batch_max && !self->closed) {
        zmsg_t *msg = zmsg_recv (self->sock);
        if (!msg)
            break;
        count++;
        if (s_revoked (self, &msg))
            continue;
        self->fn (self, &msg, self->arg);
        zmsg_destroy (&msg);
    }
    if (count && self->batch_fn && !self->closed)
        self->batch_fn (self, self->arg);
    //  A capped batch leaves messages queued and no new edge will come for
    //  them: keep the loop turning until they are handled.
    bool more = !self->closed && (zsock_events (self->sock) & ZMQ_POLLIN);
    if (more && !self->idling) {
        uv_idle_start (&self->idle, s_on_idle);
        self->idling = true;
    }
    else
    if (!more && self->idling) {
        uv_idle_stop (&self->idle);
        self->idling = false;
    }
    self->draining = false;
}

static void
s_on_poll (uv_poll_t *handle, int status, int events)
{
    s_drain ((relais_poller_t *) handle->data);
}

static void
s_on_check (uv_check_t *handle)
{
    s_drain ((relais_poller_t *) handle->data);
}

zsock_t *
relais_sock_new (int type, const char *endpoint, relais_sock_mode_t mode,
                 int64_t max_msg)
{
    zsock_t *sock = zsock_new (type);
    if (!sock) {
        relais_error ("socket create failed endpoint=%s", endpoint);
        return NULL;
    }
    zsock_set_linger (sock, 1000);          //  czmq's 0 would lose queued acks
    zsock_set_sndtimeo (sock, 0);
    zsock_set_rcvtimeo (sock, 0);
    if (max_msg > 0)                        //  before bind/connect; >= 276 (libzmq #4436)
        zsock_set_maxmsgsize (sock, max_msg < 4096? 4096: max_msg);
    //  High-water marks before bind or connect: libzmq copies the options
    //  into the listener at bind, so a later setting never reaches the
    //  connections it accepts. A ROUTER whose send pipe to a peer is full
    //  must drop the reply (an ack lost, a resend); a DEALER keeps replies.
    if (type == ZMQ_ROUTER)
        zsock_set_sndhwm (sock, RELAIS_SOCK_HWM);
    if (type == ZMQ_DEALER)
        zsock_set_rcvhwm (sock, RELAIS_SOCK_HWM);
    if (type == ZMQ_ROUTER)
        zsock_set_router_mandatory (sock, 1);
    if (mode == RELAIS_SOCK_CONNECT && type != ZMQ_SUB)
        zsock_set_immediate (sock, 1);
    relais_sock_heartbeat (sock);
    //  CURVE and the ZAP domain when the deployment turns security on
    if (relais_security_apply (sock, endpoint, mode == RELAIS_SOCK_BIND)) {
        zsock_destroy (&sock);
        return NULL;
    }
    if (mode == RELAIS_SOCK_BIND)
        relais_ipc_prepare (endpoint);
    int rc = mode == RELAIS_SOCK_BIND? zsock_bind (sock, "%s", endpoint)
                                     : zsock_connect (sock, "%s", endpoint);
    if (rc < 0) {
        relais_error ("%s failed endpoint=%s error=%s",
                      mode == RELAIS_SOCK_BIND? "bind": "connect", endpoint,
                      zmq_strerror (zmq_errno ()));
        zsock_destroy (&sock);
        return NULL;
    }
    return sock;
}

void
relais_sock_heartbeat (zsock_t *sock)
{
    zsock_set_heartbeat_ivl (sock, RELAIS_SOCK_HEARTBEAT_MS);
    zsock_set_heartbeat_timeout (sock, RELAIS_SOCK_HEARTBEAT_TIMEOUT_MS);
    zsock_set_handshake_ivl (sock, RELAIS_SOCK_HANDSHAKE_MS);
}

void
relais_ipc_prepare (const char *endpoint)
{
    //  ipc:// endpoints live in a folder only the service's user may enter:
    //  on one machine, file permissions are the access control
    if (!endpoint || strncmp (endpoint, "ipc://", 6) != 0)
        return;
    char path [512];
    snprintf (path, sizeof path, "%s", endpoint + 6);
    char *slash = strrchr (path, '/');
    if (!slash || slash == path)
        return;
    *slash = 0;
    for (char *p = path + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir (path, 0700);
            *p = '/';
        }
    mkdir (path, 0700);
}

relais_poller_t *
relais_poller_new (uv_loop_t *loop, zsock_t **sock_p, size_t batch_max,
                   relais_poller_fn *fn, relais_poller_batch_fn *batch_fn, void *arg)
{
    relais_poller_t *self = (relais_poller_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->loop = loop;
    self->sock = *sock_p;
    *sock_p = NULL;
    self->batch_max = batch_max? batch_max: 1024;
    self->fn = fn;
    self->batch_fn = batch_fn;
    self->arg = arg;
    zsock_set_rcvtimeo (self->sock, 0);
    zsock_set_sndtimeo (self->sock, 0);
    int rc = uv_poll_init (loop, &self->poll, zsock_fd (self->sock));
    if (rc) {
        relais_error ("uv_poll_init failed: %s", uv_strerror (rc));
        zsock_destroy (&self->sock);
        free (self);
        return NULL;
    }
    uv_check_init (loop, &self->check);
    uv_idle_init (loop, &self->idle);
    self->poll.data = self->check.data = self->idle.data = self;
    self->open_handles = 3;
    uv_poll_start (&self->poll, UV_READABLE, s_on_poll);
    uv_check_start (&self->check, s_on_check);
    return self;
}

relais_poller_t *
relais_poller_new_requests (uv_loop_t *loop, zsock_t **sock_p, size_t batch_max,
                            relais_poller_request_fn *fn,
                            relais_poller_batch_fn *batch_fn, void *arg)
{
    relais_poller_t *self = relais_poller_new (loop, sock_p, batch_max, NULL, batch_fn, arg);
    if (self)
        self->request_fn = fn;
    return self;
}

zsock_t *
relais_poller_sock (relais_poller_t *self)
{
    return self->sock;
}

int
relais_poller_sendv (relais_poller_t *self, const void *const *parts,
                     const size_t *sizes, size_t count)
{
    if (self->closed)
        return -ESHUTDOWN;
    void *handle = zsock_resolve (self->sock);
    for (size_t i = 0; i < count; i++) {
        int flags = ZMQ_DONTWAIT | (i + 1 < count? ZMQ_SNDMORE: 0);
        if (zmq_send (handle, parts [i], sizes [i], flags) < 0) {
            int err = zmq_errno ();
            //  Only the first part can fail: libzmq accepts or refuses a
            //  whole message at its first frame (HWM, unknown peer)
            return -(err? err: EAGAIN);
        }
    }
    return 0;
}

static void
s_free_taken (void *data, void *hint)
{
    (void) hint;
    free (data);
}

int
relais_poller_sendv_take (relais_poller_t *self, const void *const *parts,
                          const size_t *sizes, size_t count, void **last, size_t size,
                          zmq_free_fn *release, void *hint)
{
    void *data = *last;
    *last = NULL;
    if (!release)
        release = s_free_taken;
    zmq_msg_t msg;
    if (data && zmq_msg_init_data (&msg, data, size, release, hint) != 0) {
        release (data, hint);
        return -ENOMEM;
    }
    if (!data)
        zmq_msg_init (&msg);
    int rc = 0;
    void *handle = self->closed? NULL: zsock_resolve (self->sock);
    if (!handle)
        rc = -ESHUTDOWN;
    for (size_t i = 0; rc == 0 && i < count; i++)
        if (zmq_send (handle, parts [i], sizes [i], ZMQ_DONTWAIT | ZMQ_SNDMORE) < 0) {
            int err = zmq_errno ();
            rc = -(err? err: EAGAIN);   //  refused at the first part, whole
        }
    if (rc == 0 && zmq_msg_send (&msg, handle, ZMQ_DONTWAIT) < 0) {
        int err = zmq_errno ();
        rc = -(err? err: EAGAIN);
    }
    if (rc)
        zmq_msg_close (&msg);           //  frees the bytes (libzmq owns them)
    return rc;
}

int
relais_poller_send (relais_poller_t *self, zmsg_t **msg_p)
{
    if (self->closed) {
        zmsg_destroy (msg_p);
        return -ESHUTDOWN;
    }
    int rc = zmsg_send (msg_p, self->sock);
    if (rc != 0) {
        int err = zmq_errno ();
        zmsg_destroy (msg_p);
        return -(err? err: EAGAIN);
    }
    return 0;
}

static void
s_on_close (uv_handle_t *handle)
{
    relais_poller_t *self = (relais_poller_t *) handle->data;
    if (--self->open_handles == 0) {
        zsock_destroy (&self->sock);
        free (self);
    }
}

void
relais_poller_close (relais_poller_t **self_p)
{
    relais_poller_t *self = *self_p;
    if (!self)
        return;
    *self_p = NULL;
    self->closed = true;
    //  Stop polling before the socket (and its fd) can go away (libuv poll.rst)
    uv_poll_stop (&self->poll);
    uv_close ((uv_handle_t *) &self->poll, s_on_close);
    uv_close ((uv_handle_t *) &self->check, s_on_close);
    uv_close ((uv_handle_t *) &self->idle, s_on_close);
}
