/*  =========================================================================
    plans_server - relais-plans (see plans_server.h)
    =========================================================================
*/
#include "plans_server.h"
#include "plans_engine.h"
#include "relais_bus.h"
#include "relais_security.h"
#include "relais_clock.h"
#include "relais_log.h"
#include "relais_audit.h"
#include "intake_privacy.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define S_INTAKE_PUB    "tcp://127.0.0.1:7101"      //  intake's defaults
#define S_INTAKE_FETCH  "tcp://127.0.0.1:7102"

struct plans_server_t {
    uv_loop_t *loop;
    relais_config_t *config;
    relais_store_t *store;
    relais_pub_t *pub;
    relais_sub_t *sub;
    plans_engine_t *engine;
    relais_poller_t *api;
    relais_signals_t *signals;
    uv_timer_t deadline;            //  next due date, or overdue_check
    uv_timer_t rearm;               //  after a commit: re-read the next due date
    uv_timer_t maint;
    uv_timer_t retention;           //  the daily purge
    relais_audit_t *audit;          //  erasures and purges
    uint64_t retention_closed_us;
    bool timers_open;
    bool started;
    uint64_t check_ms;
    uint64_t requests, errors;
    uint64_t maint_ticks;
};

int
plans_declare (relais_config_t *config)
{
    return relais_config_declare (config, "plans", plans_keys);
}

//  ---------------------------------------------------------------------------
//  Engine wiring

static int
s_emit (relais_txn_t *txn, const char *type, const char *key, const char *corr, uint64_t ts,
        const void *body, size_t size, void *arg)
{
    plans_server_t *self = (plans_server_t *) arg;
    return relais_pub_append (self->pub, txn, type, key, corr, ts, body, size, NULL);
}

static int
s_apply (relais_txn_t *txn, const char *topic, const relais_envelope_t *env, void *arg)
{
    plans_server_t *self = (plans_server_t *) arg;
    int rc = plans_engine_apply (self->engine, txn, topic, env);
    if (rc == RELAIS_EMALFORMED)
        relais_warning ("skipped src=%s seq=%llu type=%s key=%s", env->src,
                        (unsigned long long) env->seq, env->type, env->key);
    return rc;
}

//  ---------------------------------------------------------------------------
//  Deadlines

static void s_on_deadline (uv_timer_t *timer);

typedef struct {
    plans_server_t *self;
    uint64_t next;
} s_next_t;

static int
s_read_next (relais_txn_t *txn, void *arg)
{
    s_next_t *n = (s_next_t *) arg;
    return plans_engine_next_due (n->self->engine, txn, &n->next);
}

//  Wake at the next due date, and at least every overdue_check (time may
//  jump, and stale plans are looked for at each wake).
static void
s_arm (plans_server_t *self, uint64_t next)
{
    uint64_t delay = self->check_ms;
    uint64_t now = relais_clock_now ();
    if (next) {
        uint64_t until = next > now? (next - now + 999) / 1000: 0;
        if (until < delay)
            delay = until;
    }
    uv_timer_start (&self->deadline, s_on_deadline, delay, 0);
}

typedef struct {
    plans_server_t *self;
    uint64_t now, next;
} s_tick_t;

static int
s_tick (relais_txn_t *txn, void *arg)
{
    s_tick_t *t = (s_tick_t *) arg;
    return plans_engine_tick (t->self->engine, txn, t->now, &t->next);
}

static void
s_on_deadline (uv_timer_t *timer)
{
    plans_server_t *self = (plans_server_t *) timer->data;
    s_tick_t t = { self, relais_clock_now (), 0 };
    int rc = relais_store_write (self->store, s_tick, &t);
    if (rc == RELAIS_EFATAL)
        relais_fatal ("plans deadline commit", rc);
    if (rc)
        relais_warning ("deadline check failed error=%s", relais_strerror (rc));
    s_arm (self, rc? 0: t.next);
}

static void
s_on_rearm (uv_timer_t *timer)
{
    plans_server_t *self = (plans_server_t *) timer->data;
    s_next_t n = { self, 0 };
    if (relais_store_read (self->store, s_read_next, &n) == 0)
        s_arm (self, n.next);
}

//  After any commit (an event applied, an operation, a check), the next due
//  date may have moved: look again on the next loop turn.
static void
s_hook_commit (void *arg)
{
    plans_server_t *self = (plans_server_t *) arg;
    if (self->timers_open && self->started)
        uv_timer_start (&self->rearm, s_on_rearm, 0, 0);
}

//  ---------------------------------------------------------------------------
//  Erasure and retention (proto/privacy.md): the free text operators typed
//  (notes, flag reasons) goes from the plans concerned, then the store is
//  compacted so the bytes are gone from data.mdb too


typedef struct {
    plans_server_t *self;
    plans_scrub_t *sc;
} s_scrub_call_t;

static int
s_scrub_pick (relais_txn_t *txn, void *arg)
{
    s_scrub_call_t *c = (s_scrub_call_t *) arg;
    return plans_engine_scrub_pick (c->self->engine, txn, c->sc);
}

static int
s_scrub_apply (relais_txn_t *txn, void *arg)
{
    s_scrub_call_t *c = (s_scrub_call_t *) arg;
    return plans_engine_scrub_apply (c->self->engine, txn, c->sc);
}

//  Pick, audit (before anything changes), scrub, compact. Sets *removed to
//  the texts removed (0 on a dry run).
static int
s_scrub_run (plans_server_t *self, plans_scrub_t *sc, uint64_t now,
             const intake_scrub_args_t *args, uint64_t *removed, bool *compacted,
             relais_error_t *err)
{
    *compacted = false;
    *removed = 0;
    s_scrub_call_t call = { self, sc };
    if (relais_store_read (self->store, s_scrub_pick, &call))
        return relais_error_set (err, RELAIS_CODE_UNAVAILABLE, "", "storage unavailable, retry later");
    if (intake_scrub_audit (self->audit, now, args, sc->person != NULL, "plans", sc->count,
                            (const char *) sc->ids, sizeof *sc->ids,
                            sc->texts? sc->count: 0, "plan"))
        return relais_error_set (err, RELAIS_CODE_UNAVAILABLE, "", "audit log unavailable, retry later");
    if (args->dry_run || sc->texts == 0)
        return 0;
    int rc = relais_store_write (self->store, s_scrub_apply, &call);
    if (rc == RELAIS_EFATAL)
        relais_fatal ("plans scrub", rc);
    if (rc)
        return relais_error_set (err, RELAIS_CODE_UNAVAILABLE, "", "storage unavailable, retry later");
    *removed = sc->texts;
    size_t before = 0, after = 0;
    rc = relais_store_compact (self->store, &before, &after);
    if (rc == RELAIS_EFATAL)
        relais_fatal ("plans compaction", rc);
    *compacted = rc == 0;
    relais_notice ("%s %s%s plans=%zu texts=%llu compacted=%s bytes=%zu",
                   sc->person? "erase": "purge", sc->person? "person=": "", sc->person? sc->person: "",
                   sc->count, (unsigned long long) *removed, *compacted? "yes": "no", after);
    return 0;
}

//  plans.erase {person, reason, dry_run?} and plans.purge {reason?,
//  dry_run?}: operations role only (with CURVE; intake_scrub_args_read).
static void
s_on_scrub_request (plans_server_t *self, relais_poller_t *poller, relais_request_t *req,
                    const msgpack_object *root, const msgpack_object *rid, bool erase,
                    relais_error_t *err)
{
    intake_scrub_args_t args;
    if (intake_scrub_args_read (req, root, erase, &args, err))
        return;
    plans_scrub_t sc = { 0 };
    uint64_t now = relais_clock_now ();
    sc.closed_before = now > self->retention_closed_us? now - self->retention_closed_us: 0;
    bool compacted = false;
    uint64_t removed = 0;
    if (erase)
        sc.person = args.person;
    if (s_scrub_run (self, &sc, now, &args, &removed, &compacted, err)) {
        plans_scrub_release (&sc);
        return;
    }
    msgpack_sbuffer out;
    msgpack_sbuffer_init (&out);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &out, msgpack_sbuffer_write);
    intake_scrub_reply_begin (&pk, 1, rid, "plans", &args, erase, sc.count, "plans",
                              (const char *) sc.ids, sizeof *sc.ids, sc.count);
    relais_pack_kv_uint (&pk, "texts_removed", removed);
    intake_scrub_reply_end (&pk, &args, compacted);
    relais_request_reply (poller, req, out.data, out.size);
    msgpack_sbuffer_destroy (&out);
    plans_scrub_release (&sc);
}

static void
s_on_retention (uv_timer_t *timer)
{
    plans_server_t *self = (plans_server_t *) timer->data;
    uint64_t now = relais_clock_now ();
    plans_scrub_t sc = { 0 };
    sc.closed_before = now > self->retention_closed_us? now - self->retention_closed_us: 0;
    relais_error_t err;
    relais_error_clear (&err);
    uint64_t removed;
    bool compacted;
    intake_scrub_args_t job = { .who = "retention-job", .role = "service", .reason = "retention" };
    if (s_scrub_run (self, &sc, now, &job, &removed, &compacted, &err))
        relais_warning ("retention job failed code=%s: retried at the next run", err.code);
    plans_scrub_release (&sc);
}

//  ---------------------------------------------------------------------------
//  API

typedef struct {
    plans_server_t *self;
    const char *op;
    const msgpack_object *req;
    uint64_t now;
    msgpack_sbuffer *out;
    relais_error_t *err;
} s_call_t;

static int
s_call (relais_txn_t *txn, void *arg)
{
    s_call_t *c = (s_call_t *) arg;
    int rc = plans_engine_op (c->self->engine, txn, c->op, c->req, c->now, c->out, c->err);
    //  A refused operation changes nothing: abort whatever it began
    return c->err->code? RELAIS_ECONFLICT: rc;
}

//  The engine's reply with the request's rid added.
static void
s_send_reply (relais_poller_t *poller, relais_request_t *req, msgpack_sbuffer *out,
              const msgpack_object *rid)
{
    if (!rid) {
        relais_request_reply (poller, req, out->data, out->size);
        return;
    }
    relais_msg_t msg;
    relais_error_t err;
    relais_msg_limits_t limits = { 64 << 20, 16, 1 << 22 };
    if (relais_msg_decode (&msg, out->data, out->size, &limits, &err)) {
        relais_request_reply (poller, req, out->data, out->size);
        return;
    }
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    const msgpack_object_map *map = &msg.root.via.map;
    msgpack_pack_map (&pk, map->size + 1);
    for (uint32_t i = 0; i < map->size; i++) {
        relais_pack_object (&pk, &map->ptr [i].key);
        relais_pack_object (&pk, &map->ptr [i].val);
    }
    relais_pack_str (&pk, "rid");
    relais_pack_object (&pk, rid);
    relais_request_reply (poller, req, sbuf.data, sbuf.size);
    msgpack_sbuffer_destroy (&sbuf);
    relais_msg_release (&msg);
}

static void
s_on_api (relais_poller_t *poller, zmsg_t **msg_p, void *arg)
{
    plans_server_t *self = (plans_server_t *) arg;
    relais_request_t req;
    relais_msg_t msg = { 0 };
    relais_error_t err;
    relais_error_clear (&err);
    const msgpack_object *rid = NULL;
    msgpack_sbuffer out;
    msgpack_sbuffer_init (&out);
    char op [48];
    self->requests++;
    if (relais_request_read (msg_p, &req, &msg, &rid, &err))
        goto error;
    const msgpack_object *opname = relais_msg_get (&msg.root, "op");
    if (!opname || opname->type != MSGPACK_OBJECT_STR) {
        relais_error_set (&err, RELAIS_CODE_INVALID, "op", "required, a string such as \"plans.get\"");
        goto error;
    }
    if (relais_msg_str_copy (opname, op, sizeof op) < 0)
        snprintf (op, sizeof op, "?");  //  too long to be one of ours
    //  With CURVE on, who made a change is the caller's certificate
    relais_peer_t peer = { 0 };
    if (relais_security_on ()) {
        if (!relais_security_peer (req.data, &peer)) {
            relais_error_set (&err, RELAIS_CODE_UNAUTHORIZED, "", "certificate not in the roster");
            goto error;
        }
        plans_engine_set_caller (self->engine, peer.name);
    }
    if (strcmp (op, "plans.erase") == 0 || strcmp (op, "plans.purge") == 0) {
        s_on_scrub_request (self, poller, &req, &msg.root, rid,
                            strcmp (op, "plans.erase") == 0, &err);
        if (err.code)
            goto error;
        relais_info ("op=%s ok", op);
        goto done;
    }
    s_call_t call = { self, op, &msg.root, relais_clock_now (), &out, &err };
    int rc = plans_engine_op_reads (op)? relais_store_read (self->store, s_call, &call)
                                       : relais_store_write (self->store, s_call, &call);
    if (err.code)
        goto error;
    if (rc == RELAIS_EFATAL)
        relais_fatal ("plans commit", rc);
    if (rc) {
        relais_warning ("op=%s failed error=%s", op, relais_strerror (rc));
        relais_error_set (&err, RELAIS_CODE_UNAVAILABLE, "",
                          rc == RELAIS_EFULL? "storage full, retry later": "storage unavailable, retry later");
        goto error;
    }
    relais_info ("op=%s ok", op);
    s_send_reply (poller, &req, &out, rid);
    goto done;
error:
    self->errors++;
    relais_info ("op=%s error=%s field=%s", op [0]? op: "?", err.code, err.field);
    relais_request_error (poller, &req, &err, NULL, rid);
done:
    relais_msg_release (&msg);
    msgpack_sbuffer_destroy (&out);
    relais_request_release (&req);
}

//  ---------------------------------------------------------------------------

static void
s_on_maint (uv_timer_t *timer)
{
    plans_server_t *self = (plans_server_t *) timer->data;
    relais_store_tick (self->store);
    if (++self->maint_ticks % 6)
        return;                         //  stats once a minute
    plans_stats_t stats;
    plans_engine_stats (self->engine, &stats);
    relais_info ("stats opened=%llu attached=%llu reopened=%llu closed=%llu overdue=%llu "
                 "stale=%llu ops=%llu requests=%llu errors=%llu last=%llu",
                 (unsigned long long) stats.opened, (unsigned long long) stats.attached,
                 (unsigned long long) stats.reopened, (unsigned long long) stats.closed,
                 (unsigned long long) stats.overdue, (unsigned long long) stats.stale,
                 (unsigned long long) stats.ops, (unsigned long long) self->requests,
                 (unsigned long long) self->errors,
                 (unsigned long long) relais_pub_last (self->pub));
}

static void
s_on_signal (int signum, void *arg)
{
    plans_server_stop ((plans_server_t *) arg);
}

plans_server_t *
plans_server_new (uv_loop_t *loop, relais_config_t *config)
{
    plans_server_t *self = (plans_server_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->loop = loop;
    self->config = config;
    self->check_ms = relais_config_duration_ms (config, "plans/overdue_check", 30000);
    if (self->check_ms == 0)
        self->check_ms = 1000;
    self->retention_closed_us = relais_config_duration_ms (config, "plans/retention/closed",
                                                           90ULL * 86400000) * 1000;
    return self;
}


//  reader: a dump beside the running service (relais_store_open_reader)
static relais_store_t *
s_open_store (relais_config_t *config, bool reader)
{
    char *store_path = relais_config_path (config, "plans/store/path");
    if (!store_path)
        return NULL;
    relais_store_opts_t opts = {
        relais_config_size (config, "plans/store/map_size", 64 << 20),
        relais_config_size (config, "plans/store/map_max", 16ULL << 30),
        plans_dbs,
        relais_config_size (config, "plans/store/wal_size", 4 << 20)
    };
    relais_store_t *store = reader? relais_store_open_reader (store_path, &opts)
                                  : relais_store_new (store_path, &opts);
    free (store_path);
    return store;
}

static const char *
s_config_or (relais_config_t *config, const char *path, const char *fallback)
{
    const char *value = relais_config_str (config, path);
    return value && *value? value: fallback;
}

int
plans_server_start (plans_server_t *self)
{
    relais_config_t *config = self->config;
    int rc = -EINVAL;
    self->store = s_open_store (config, false);
    if (!self->store)
        goto failed;
    char *audit_path = relais_config_path (config, "plans/audit_file");
    char *audit_key = relais_config_path (config, "plans/audit_key_file");
    self->audit = audit_path && audit_key? relais_audit_open (audit_path, audit_key): NULL;
    free (audit_path);
    free (audit_key);
    rc = -EACCES;
    if (!self->audit)
        goto failed;
    uint64_t heartbeat = relais_config_duration_ms (config, "plans/heartbeat", 1000);
    rc = -EADDRINUSE;
    relais_pub_opts_t pub_opts = {
        .name = "plans",
        .pub_endpoint = relais_config_str (config, "plans/pub"),
        .fetch_endpoint = relais_config_str (config, "plans/fetch"),
        .heartbeat_ms = heartbeat,
    };
    self->pub = relais_pub_new (self->loop, self->store, &pub_opts);
    if (!self->pub)
        goto failed;
    plans_rules_t rules;
    plans_rules_load (&rules, config);
    rc = -ENOMEM;
    self->engine = plans_engine_new (self->store, &rules, s_emit, self);
    if (!self->engine)
        goto failed;
    uv_timer_init (self->loop, &self->deadline);
    uv_timer_init (self->loop, &self->rearm);
    uv_timer_init (self->loop, &self->maint);
    uv_timer_init (self->loop, &self->retention);
    self->deadline.data = self->rearm.data = self->maint.data = self->retention.data = self;
    self->timers_open = true;
    relais_store_hook (self->store, NULL, s_hook_commit, NULL, self);

    //  The sources' heartbeat interval is ours too: one deployment, one pace
    relais_sub_opts_t sub_opts = { .heartbeat_ms = heartbeat };
    self->sub = relais_sub_new (self->loop, self->store, &sub_opts, s_apply, self);
    if (!self->sub)
        goto failed;
    static const char *const signal_topics [] = { "signal.", NULL };
    static const char *const route_topics [] = { "route.", NULL };
    rc = -EINVAL;
    if (relais_sub_add (self->sub, "intake", s_config_or (config, "intake/pub", S_INTAKE_PUB),
                        s_config_or (config, "intake/fetch", S_INTAKE_FETCH), signal_topics))
        goto failed;
    //  No router section in the deployment: follow intake only
    const char *router_pub = relais_config_str (config, "router/pub");
    const char *router_fetch = relais_config_str (config, "router/fetch");
    bool router = router_pub && *router_pub && router_fetch && *router_fetch;
    if (router && relais_sub_add (self->sub, "router", router_pub, router_fetch, route_topics))
        goto failed;
    relais_pub_attach_sub (self->pub, self->sub);
    zsock_t *api = relais_sock_new (ZMQ_ROUTER, relais_config_str (config, "plans/api"),
                                    RELAIS_SOCK_BIND, RELAIS_MSG_MAX_BYTES);
    rc = -EADDRINUSE;
    if (!api)
        goto failed;
    self->api = relais_poller_new (self->loop, &api, 64, s_on_api, NULL, self);
    self->signals = relais_signals_new (self->loop, s_on_signal, self);
    if ((rc = relais_sub_start (self->sub)))
        goto failed;
    self->started = true;
    uv_timer_start (&self->maint, s_on_maint, 10000, 10000);
    uint64_t every = relais_config_duration_ms (config, "plans/retention/every", 86400000);
    every = every? every: 86400000;
    uv_timer_start (&self->retention, s_on_retention, every, every);
    //  At once: what fell due while we were down is raised now
    uv_timer_start (&self->deadline, s_on_deadline, 0, 0);
    relais_notice ("ready api=%s router=%s last=%llu", relais_config_str (config, "plans/api"),
                   router? "yes": "no", (unsigned long long) relais_pub_last (self->pub));
    return 0;

failed:
    relais_error ("start failed error=%s", relais_strerror (rc));
    plans_server_stop (self);
    return rc;
}

void
plans_server_stop (plans_server_t *self)
{
    self->started = false;
    relais_sub_close (&self->sub);
    relais_poller_close (&self->api);
    relais_pub_close (&self->pub);
    relais_signals_close (&self->signals);
    if (self->timers_open) {
        uv_timer_stop (&self->deadline);
        uv_timer_stop (&self->rearm);
        uv_timer_stop (&self->maint);
        uv_timer_stop (&self->retention);
        uv_close ((uv_handle_t *) &self->retention, NULL);
        uv_close ((uv_handle_t *) &self->deadline, NULL);
        uv_close ((uv_handle_t *) &self->rearm, NULL);
        uv_close ((uv_handle_t *) &self->maint, NULL);
        self->timers_open = false;
    }
}

void
plans_server_destroy (plans_server_t **self_p)
{
    plans_server_t *self = *self_p;
    if (!self)
        return;
    *self_p = NULL;
    plans_engine_destroy (&self->engine);
    relais_store_destroy (&self->store);
    relais_audit_destroy (&self->audit);
    free (self);
}

//  ---------------------------------------------------------------------------

typedef struct {
    plans_engine_t *engine;
    FILE *out;
} s_dump_t;

static int
s_dump (relais_txn_t *txn, void *arg)
{
    s_dump_t *d = (s_dump_t *) arg;
    return plans_engine_dump (d->engine, txn, d->out);
}

static int
s_no_emit (relais_txn_t *txn, const char *type, const char *key, const char *corr, uint64_t ts,
           const void *body, size_t size, void *arg)
{
    return -EPERM;                      //  a dump never changes anything
}

int
plans_dump (relais_config_t *config, FILE *out)
{
    relais_store_t *store = s_open_store (config, true);
    if (!store)
        return -EINVAL;
    plans_rules_t rules;
    plans_rules_load (&rules, config);
    plans_engine_t *engine = plans_engine_new (store, &rules, s_no_emit, NULL);
    int rc = engine? 0: -ENOMEM;
    if (rc == 0) {
        s_dump_t d = { engine, out };
        rc = relais_store_read (store, s_dump, &d);
    }
    plans_engine_destroy (&engine);
    relais_store_destroy (&store);
    if (rc)
        relais_error ("dump failed error=%s", relais_strerror (rc));
    return rc;
}
