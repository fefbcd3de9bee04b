/*  =========================================================================
    capacity_server - the capacity service on the bus (see capacity_server.h)
    =========================================================================
*/
#include "capacity_server.h"
#include "capacity_state.h"
#include "relais_bus.h"
#include "relais_clock.h"
#include "relais_log.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const relais_config_key_t s_endpoint_keys [] = {
    { "pub", "tcp://127.0.0.1:7131", relais_check_endpoint, "PUB of capacity's events (capacity.*)" },
    { "fetch", "tcp://127.0.0.1:7132", relais_check_endpoint, "ROUTER for fetch (catch-up) and status" },
    { "api", "tcp://127.0.0.1:7130", relais_check_endpoint, "ROUTER for capacity.* requests" },
    { "heartbeat", "1s", relais_check_duration, "heartbeat interval on PUB" },
    { NULL, NULL, NULL, NULL }
};

typedef struct {
    relais_request_t req;
    relais_msg_t msg;
    msgpack_sbuffer reply;
    relais_error_t err;
    const msgpack_object *idem;
    const msgpack_object *rid;
    bool decoded;
} s_op_t;

struct _capacity_server_t {
    uv_loop_t *loop;
    relais_config_t *config;
    relais_store_t *store;
    relais_pub_t *pub;
    relais_sub_t *sub;
    relais_poller_t *api;
    relais_signals_t *signals;
    capacity_state_t *state;
    uv_timer_t timer;
    bool timer_open;
    uint64_t tick_ms;
    size_t batch_max;
    s_op_t **ops;
    size_t count;
    uint64_t now;                       //  clock of the open batch
    uint64_t received, errors, batches, maint;
};

int
capacity_declare (relais_config_t *config)
{
    static relais_config_key_t keys [64];
    size_t n = 0;
    for (size_t i = 0; s_endpoint_keys [i].path; i++)
        keys [n++] = s_endpoint_keys [i];
    for (size_t i = 0; capacity_state_keys [i].path; i++)
        keys [n++] = capacity_state_keys [i];
    keys [n].path = NULL;
    return relais_config_declare (config, "capacity", keys);
}

static int
s_emit (void *arg, relais_txn_t *txn, const char *type, const char *key, const char *corr,
        uint64_t ts, const void *body, size_t body_size)
{
    return relais_pub_append ((relais_pub_t *) arg, txn, type, key, corr, ts, body, body_size, NULL);
}

//  ---------------------------------------------------------------------------
//  API requests, group-committed

static void
s_op_destroy (s_op_t **op_p)
{
    s_op_t *op = *op_p;
    if (op) {
        relais_request_release (&op->req);
        relais_msg_release (&op->msg);
        msgpack_sbuffer_destroy (&op->reply);
        free (op);
        *op_p = NULL;
    }
}

static void
s_op_reply (capacity_server_t *self, s_op_t *op)
{
    if (op->err.code) {
        self->errors++;
        relais_request_error (self->api, &op->req, &op->err, op->idem, op->rid);
    }
    else
        relais_request_reply (self->api, &op->req, op->reply.data, op->reply.size);
}

static int
s_batch (relais_txn_t *txn, void *arg)
{
    capacity_server_t *self = (capacity_server_t *) arg;
    for (size_t i = 0; i < self->count; i++) {
        s_op_t *op = self->ops [i];
        int rc = capacity_state_request (self->state, txn, &op->msg.root, self->now,
                                         &op->reply, &op->err);
        if (rc)
            return rc;
    }
    return 0;
}

static void
s_rearm (capacity_server_t *self);

static void
s_commit (capacity_server_t *self)
{
    if (self->count == 0)
        return;
    bool write = false;
    for (size_t i = 0; i < self->count; i++)
        write |= capacity_state_is_write (&self->ops [i]->msg.root);
    int rc = write? relais_store_write (self->store, s_batch, self)
                  : relais_store_read (self->store, s_batch, self);
    self->batches++;
    for (size_t i = 0; i < self->count; i++) {
        s_op_t *op = self->ops [i];
        if (rc)
            relais_error_set (&op->err, RELAIS_CODE_UNAVAILABLE, "",
                              rc == RELAIS_EFULL? "storage full, retry later"
                                                : "storage unavailable, retry later");
        s_op_reply (self, op);
        s_op_destroy (&self->ops [i]);
    }
    self->count = 0;
    if (rc == RELAIS_EFATAL)
        relais_fatal ("capacity commit", rc);
    if (rc)
        relais_warning ("batch refused error=%s", relais_strerror (rc));
    if (write)
        s_rearm (self);             //  a new hold may be due before the timer
}

static void
s_on_api (relais_poller_t *poller, zmsg_t **msg_p, void *arg)
{
    capacity_server_t *self = (capacity_server_t *) arg;
    s_op_t *op = (s_op_t *) calloc (1, sizeof *op);
    if (!op)
        return;                     //  the client times out and retries
    msgpack_sbuffer_init (&op->reply);
    self->received++;
    if (self->count == 0)
        self->now = relais_clock_now ();
    if (relais_request_take (msg_p, &op->req))
        relais_error_set (&op->err, RELAIS_CODE_INVALID, "",
                          "expected an empty delimiter frame, then one data frame");
    else
    if (relais_msg_decode (&op->msg, zframe_data (op->req.data), zframe_size (op->req.data),
                           NULL, &op->err) == 0) {
        op->decoded = true;
        if (op->msg.root.type != MSGPACK_OBJECT_MAP)
            relais_error_set (&op->err, RELAIS_CODE_INVALID, "", "request must be a map");
        else {
            op->rid = relais_msg_get (&op->msg.root, "rid");
            op->idem = relais_msg_get (&op->msg.root, "idem");
            if (op->idem && op->idem->type != MSGPACK_OBJECT_STR)
                op->idem = NULL;
        }
    }
    if (op->err.code) {
        s_op_reply (self, op);
        s_op_destroy (&op);
        return;
    }
    self->ops [self->count++] = op;
    if (self->count == self->batch_max)
        s_commit (self);
}

static void
s_on_api_batch (relais_poller_t *poller, void *arg)
{
    s_commit ((capacity_server_t *) arg);
}

//  ---------------------------------------------------------------------------
//  Plans' events

static int
s_apply (relais_txn_t *txn, const char *topic, const relais_envelope_t *env, void *arg)
{
    capacity_server_t *self = (capacity_server_t *) arg;
    int rc = capacity_state_plan_event (self->state, txn, topic, env, relais_clock_now ());
    if (rc == RELAIS_EMALFORMED)
        relais_warning ("skipped src=%s seq=%llu type=%s: malformed", env->src,
                        (unsigned long long) env->seq, topic);
    return rc;
}

//  ---------------------------------------------------------------------------
//  Timed work

typedef struct {
    capacity_server_t *self;
    uint64_t now;
    uint64_t next;
} s_tick_t;

static int
s_tick (relais_txn_t *txn, void *arg)
{
    s_tick_t *t = (s_tick_t *) arg;
    return capacity_state_tick (t->self->state, txn, t->now);
}

static int
s_next (relais_txn_t *txn, void *arg)
{
    s_tick_t *t = (s_tick_t *) arg;
    t->next = capacity_state_next_due (t->self->state, txn);
    return 0;
}

static void s_on_timer (uv_timer_t *timer);

//  Sleep until the earliest due date, and at most tick_ms (the clock may
//  be driven from outside, and the store may have changed meanwhile).
static void
s_rearm (capacity_server_t *self)
{
    if (!self->timer_open)
        return;
    s_tick_t t = { self, relais_clock_now (), UINT64_MAX };
    relais_store_read (self->store, s_next, &t);
    uint64_t delay = self->tick_ms;
    if (t.next <= t.now)
        delay = 0;
    else
    if ((t.next - t.now) / 1000 < delay)
        delay = (t.next - t.now) / 1000 + 1;
    uv_timer_start (&self->timer, s_on_timer, delay, 0);
}

static void
s_on_timer (uv_timer_t *timer)
{
    capacity_server_t *self = (capacity_server_t *) timer->data;
    s_tick_t t = { self, relais_clock_now (), 0 };
    int rc = relais_store_write (self->store, s_tick, &t);
    if (rc == RELAIS_EFATAL)
        relais_fatal ("capacity tick", rc);
    if (rc)
        relais_warning ("tick refused error=%s", relais_strerror (rc));
    if (++self->maint % 60 == 0) {
        relais_store_tick (self->store);
        relais_info ("stats received=%llu errors=%llu batches=%llu last=%llu",
                     (unsigned long long) self->received, (unsigned long long) self->errors,
                     (unsigned long long) self->batches,
                     (unsigned long long) relais_pub_last (self->pub));
    }
    s_rearm (self);
}

//  ---------------------------------------------------------------------------

static void
s_on_signal (int signum, void *arg)
{
    capacity_server_stop ((capacity_server_t *) arg);
}

capacity_server_t *
capacity_server_new (uv_loop_t *loop, relais_config_t *config)
{
    capacity_server_t *self = (capacity_server_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->loop = loop;
    self->config = config;
    self->batch_max = (size_t) relais_config_int (config, "capacity/batch_max", 1024);
    if (self->batch_max == 0)
        self->batch_max = 1;
    self->tick_ms = relais_config_duration_ms (config, "capacity/tick", 1000);
    if (self->tick_ms == 0)
        self->tick_ms = 1000;
    self->ops = (s_op_t **) calloc (self->batch_max, sizeof *self->ops);
    if (!self->ops) {
        free (self);
        return NULL;
    }
    return self;
}


//  reader: a dump beside the running service (relais_store_open_reader)
static relais_store_t *
s_store_open (relais_config_t *config, bool reader)
{
    char *path = relais_config_path (config, "capacity/store/path");
    if (!path)
        return NULL;
    relais_store_opts_t opts = {
        relais_config_size (config, "capacity/store/map_size", 16 << 20),
        relais_config_size (config, "capacity/store/map_max", 16ULL << 30),
        capacity_dbs,
        relais_config_size (config, "capacity/store/wal_size", 4 << 20)
    };
    relais_store_t *store = reader? relais_store_open_reader (path, &opts)
                                  : relais_store_new (path, &opts);
    free (path);
    return store;
}

typedef struct {
    capacity_server_t *self;
    uint64_t now;
} s_startup_t;

static int
s_startup (relais_txn_t *txn, void *arg)
{
    s_startup_t *s = (s_startup_t *) arg;
    return capacity_state_startup (s->self->state, txn, s->now);
}

int
capacity_server_start (capacity_server_t *self)
{
    relais_config_t *config = self->config;
    int rc = -EINVAL;
    self->store = s_store_open (config, false);
    if (!self->store)
        goto failed;
    rc = -EADDRINUSE;
    relais_pub_opts_t pub_opts = {
        .name = "capacity",
        .pub_endpoint = relais_config_str (config, "capacity/pub"),
        .fetch_endpoint = relais_config_str (config, "capacity/fetch"),
        .heartbeat_ms = relais_config_duration_ms (config, "capacity/heartbeat", 1000),
    };
    self->pub = relais_pub_new (self->loop, self->store, &pub_opts);
    if (!self->pub)
        goto failed;
    capacity_opts_t opts;
    capacity_opts_from_config (&opts, config);
    opts.emit = s_emit;
    opts.emit_arg = self->pub;
    rc = -ENOMEM;
    self->state = capacity_state_new (&opts, config);
    if (!self->state)
        goto failed;
    s_startup_t s = { self, relais_clock_now () };
    if ((rc = relais_store_write (self->store, s_startup, &s))) {
        relais_error ("startup refused error=%s", relais_strerror (rc));
        goto failed;
    }
    rc = -EADDRINUSE;
    zsock_t *api = relais_sock_new (ZMQ_ROUTER, relais_config_str (config, "capacity/api"),
                                    RELAIS_SOCK_BIND, RELAIS_MSG_MAX_BYTES);
    if (!api)
        goto failed;
    self->api = relais_poller_new (self->loop, &api, self->batch_max, s_on_api, s_on_api_batch, self);
    //  Follow plans when this deployment has them
    const char *plans_pub = relais_config_str (config, "plans/pub");
    const char *plans_fetch = relais_config_str (config, "plans/fetch");
    if (plans_pub && *plans_pub && plans_fetch && *plans_fetch) {
        relais_sub_opts_t sub_opts = {
            .heartbeat_ms = relais_config_duration_ms (config, "plans/heartbeat", 1000),
        };
        static const char *const topics [] = { "plan.closed", NULL };
        self->sub = relais_sub_new (self->loop, self->store, &sub_opts, s_apply, self);
        if (!self->sub || relais_sub_add (self->sub, "plans", plans_pub, plans_fetch, topics)
        ||  relais_sub_start (self->sub))
            goto failed;
        relais_pub_attach_sub (self->pub, self->sub);
    }
    self->signals = relais_signals_new (self->loop, s_on_signal, self);
    uv_timer_init (self->loop, &self->timer);
    self->timer.data = self;
    self->timer_open = true;
    s_rearm (self);
    relais_notice ("ready api=%s plans=%s last=%llu", relais_config_str (config, "capacity/api"),
                   self->sub? plans_pub: "-", (unsigned long long) relais_pub_last (self->pub));
    return 0;

failed:
    capacity_server_stop (self);
    return rc;
}

void
capacity_server_stop (capacity_server_t *self)
{
    //  Requests already read are committed and answered before we go
    if (self->store && self->pub && self->state)
        s_commit (self);
    relais_poller_close (&self->api);
    relais_sub_close (&self->sub);
    relais_pub_close (&self->pub);
    relais_signals_close (&self->signals);
    if (self->timer_open) {
        uv_timer_stop (&self->timer);
        uv_close ((uv_handle_t *) &self->timer, NULL);
        self->timer_open = false;
    }
}

void
capacity_server_destroy (capacity_server_t **self_p)
{
    capacity_server_t *self = *self_p;
    if (!self)
        return;
    *self_p = NULL;
    for (size_t i = 0; i < self->count; i++)
        s_op_destroy (&self->ops [i]);
    capacity_state_destroy (&self->state);
    relais_store_destroy (&self->store);
    free (self->ops);
    free (self);
}

typedef struct {
    capacity_state_t *state;
    FILE *out;
} s_dump_t;

static int
s_dump (relais_txn_t *txn, void *arg)
{
    s_dump_t *d = (s_dump_t *) arg;
    return capacity_state_dump (d->state, txn, d->out);
}

int
capacity_dump (relais_config_t *config, FILE *out)
{
    relais_store_t *store = s_store_open (config, true);
    if (!store)
        return -EINVAL;
    capacity_opts_t opts;
    capacity_opts_from_config (&opts, config);
    capacity_state_t *state = capacity_state_new (&opts, NULL);
    int rc = -ENOMEM;
    if (state) {
        s_dump_t d = { state, out };
        rc = relais_store_read (store, s_dump, &d);
    }
    capacity_state_destroy (&state);
    relais_store_destroy (&store);
    return rc;
}
