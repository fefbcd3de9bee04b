/*  =========================================================================
    relais_server - what every server needs around its sockets: ROUTER
    request framing, error replies, graceful stop on signals, fatal exit
    =========================================================================
*/
#include "relais_bus.h"
#include "relais_log.h"
#include "relais_security.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

int
relais_request_take (zmsg_t **msg_p, relais_request_t *req)
{
    memset (req, 0, sizeof *req);
    zmsg_t *msg = *msg_p;
    size_t frames = zmsg_size (msg);
    req->identity = zmsg_pop (msg);
    if (frames == 3) {
        zframe_t *empty = zmsg_pop (msg);
        req->delimiter = true;
        bool ok = zframe_size (empty) == 0;
        zframe_destroy (&empty);
        req->data = zmsg_pop (msg);
        zmsg_destroy (msg_p);
        return ok? 0: RELAIS_EMALFORMED;
    }
    if (frames == 2) {
        //  A DEALER that sends no delimiter: answer it the same way
        req->data = zmsg_pop (msg);
        zmsg_destroy (msg_p);
        return 0;
    }
    req->delimiter = true;
    zmsg_destroy (msg_p);
    return RELAIS_EMALFORMED;
}

int
relais_request_read (zmsg_t **msg_p, relais_request_t *req, relais_msg_t *msg,
                     const msgpack_object **rid, relais_error_t *err)
{
    *rid = NULL;
    if (relais_request_take (msg_p, req))
        return relais_error_set (err, RELAIS_CODE_INVALID, "",
                                 "expected an empty delimiter frame, then one data frame");
    size_t size;
    const void *bytes = relais_request_bytes (req, &size);
    if (relais_msg_decode (msg, bytes, size, NULL, err))
        return RELAIS_EMALFORMED;
    if (msg->root.type != MSGPACK_OBJECT_MAP)
        return relais_error_set (err, RELAIS_CODE_INVALID, "", "request must be a map");
    *rid = relais_msg_get (&msg->root, "rid");
    return 0;
}

int
relais_request_reply (relais_poller_t *poller, relais_request_t *req,
                      const void *data, size_t size)
{
    if (req->raw? req->raw_replied: !req->identity)
        return -EINVAL;
    //  Straight from the caller's bytes: no zmsg, no frame copies. The
    //  identity is spent afterwards, as before: one reply per request.
    const void *parts [3];
    size_t sizes [3];
    size_t n = 0;
    if (req->raw) {
        parts [n] = zmq_msg_data (&req->raw_identity);
        sizes [n++] = zmq_msg_size (&req->raw_identity);
    }
    else {
        parts [n] = zframe_data (req->identity);
        sizes [n++] = zframe_size (req->identity);
    }
    if (req->delimiter) {
        parts [n] = "";
        sizes [n++] = 0;
    }
    parts [n] = data;
    sizes [n++] = size;
    int rc = relais_poller_sendv (poller, parts, sizes, n);
    if (req->raw)
        req->raw_replied = true;
    else
        zframe_destroy (&req->identity);
    if (rc)
        relais_debug ("reply dropped error=%s", relais_strerror (rc));
    return rc;
}

int
relais_request_reply_take (relais_poller_t *poller, relais_request_t *req,
                           msgpack_sbuffer *sbuf, zmq_free_fn *release, void *hint)
{
    void *data = sbuf->data;
    size_t size = sbuf->size;
    msgpack_sbuffer_init (sbuf);
    if (!req->identity) {
        if (release)
            release (data, hint);
        else
            free (data);
        return -EINVAL;
    }
    const void *parts [2];
    size_t sizes [2];
    size_t n = 0;
    parts [n] = zframe_data (req->identity);
    sizes [n++] = zframe_size (req->identity);
    if (req->delimiter) {
        parts [n] = "";
        sizes [n++] = 0;
    }
    int rc = relais_poller_sendv_take (poller, parts, sizes, n, &data, size, release, hint);
    zframe_destroy (&req->identity);
    if (rc)
        relais_debug ("reply dropped error=%s", relais_strerror (rc));
    return rc;
}

int
relais_request_error (relais_poller_t *poller, relais_request_t *req,
                      const relais_error_t *err, const msgpack_object *idem,
                      const msgpack_object *rid)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, relais_sbuffer_write);
    relais_pack_error (&pk, err, idem, rid);
    int rc = relais_request_reply (poller, req, sbuf.data, sbuf.size);
    msgpack_sbuffer_destroy (&sbuf);
    return rc;
}

void
relais_request_release (relais_request_t *req)
{
    zframe_destroy (&req->identity);
    zframe_destroy (&req->data);
    if (req->raw) {
        zmq_msg_close (&req->raw_identity);
        zmq_msg_close (&req->raw_data);
        req->raw = false;
    }
}

const void *
relais_request_bytes (relais_request_t *req, size_t *size)
{
    if (req->raw) {
        *size = zmq_msg_size (&req->raw_data);
        return zmq_msg_data (&req->raw_data);
    }
    *size = req->data? zframe_size (req->data): 0;
    return req->data? zframe_data (req->data): NULL;
}

bool
relais_request_peer (relais_request_t *req, relais_peer_t *peer)
{
    if (!req->raw)
        return relais_security_peer (req->data, peer);
    //  zmq_msg_gets: NULL when the frame has no such property (no CURVE)
    return relais_security_peer_user (relais_security_on ()?
                                      zmq_msg_gets (&req->raw_data, "User-Id"): NULL, peer);
}

void
relais_request_move (relais_request_t *dst, relais_request_t *src)
{
    *dst = *src;
    if (src->raw) {
        //  libzmq's frames move with zmq_msg_move, never by copying bytes
        zmq_msg_init (&dst->raw_identity);
        zmq_msg_init (&dst->raw_data);
        zmq_msg_move (&dst->raw_identity, &src->raw_identity);
        zmq_msg_move (&dst->raw_data, &src->raw_data);
    }
    src->identity = src->data = NULL;
    src->raw = false;
    if (dst->raw) {
        zmq_msg_close (&src->raw_identity);
        zmq_msg_close (&src->raw_data);
    }
}

struct relais_signals_t {
    uv_signal_t sigint;
    uv_signal_t sigterm;
    relais_signals_fn *fn;
    void *arg;
    int open_handles;
    bool fired;
};

static void
s_on_signal (uv_signal_t *handle, int signum)
{
    relais_signals_t *self = (relais_signals_t *) handle->data;
    if (self->fired) {
        relais_warning ("second signal=%d: exiting now", signum);
        _exit (EXIT_FAILURE);
    }
    self->fired = true;
    relais_notice ("stopping signal=%d", signum);
    self->fn (signum, self->arg);
}

relais_signals_t *
relais_signals_new (uv_loop_t *loop, relais_signals_fn *fn, void *arg)
{
    relais_signals_t *self = (relais_signals_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->fn = fn;
    self->arg = arg;
    uv_signal_init (loop, &self->sigint);
    uv_signal_init (loop, &self->sigterm);
    self->sigint.data = self->sigterm.data = self;
    self->open_handles = 2;
    uv_signal_start (&self->sigint, s_on_signal, SIGINT);
    uv_signal_start (&self->sigterm, s_on_signal, SIGTERM);
    return self;
}

static void
s_signals_closed (uv_handle_t *handle)
{
    relais_signals_t *self = (relais_signals_t *) handle->data;
    if (--self->open_handles == 0)
        free (self);
}

void
relais_signals_close (relais_signals_t **self_p)
{
    relais_signals_t *self = *self_p;
    if (!self)
        return;
    *self_p = NULL;
    uv_close ((uv_handle_t *) &self->sigint, s_signals_closed);
    uv_close ((uv_handle_t *) &self->sigterm, s_signals_closed);
}

void
relais_fatal (const char *what, int rc)
{
    relais_error ("fatal what=%s error=%s: exiting for the supervisor to restart",
                  what, relais_strerror (rc));
    _exit (EXIT_FAILURE);
}

int
relais_process_harden (void)
{
    struct rlimit none = { 0, 0 };
    if (setrlimit (RLIMIT_CORE, &none))
        return -errno;
    if (prctl (PR_SET_DUMPABLE, 0, 0, 0, 0))
        return -errno;
    return 0;
}

int
relais_service_setup (relais_config_t *config, const char *name, bool server)
{
    int rc = relais_process_harden ();
    if (rc)
        relais_warning ("cannot turn core dumps off: %s", strerror (-rc));
    rc = relais_security_declare (config);
    return rc? rc: relais_security_start (config, name, server);
}

void
relais_service_teardown (void)
{
    relais_security_stop ();
}
