/*  =========================================================================
    plans_fixture - what the plans unit tests share: an engine over a store
    in a temporary folder, events and requests written as JSON, and the
    plan.* events the engine raised (only those of committed transactions)

    @header
    Included by tests/unit/test_plans_*.c only (static functions). Every
    call CHECKs its own plumbing, so a test reads as the scenario it plays.
    =========================================================================
*/
#ifndef PLANS_FIXTURE_H_INCLUDED
#define PLANS_FIXTURE_H_INCLUDED

#include "plans_engine.h"
#include "cli_json.h"
#include "relais_log.h"
#include "relais_test.h"

#include <ftw.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

#define FX_EVENTS_MAX 4096

typedef struct {
    char type [48];
    char key [64];
    char *body;                     //  JSON text
} fx_event_t;

typedef struct {
    char dir [512];
    relais_store_t *store;
    plans_engine_t *engine;
    plans_rules_t rules;
    fx_event_t events [FX_EVENTS_MAX];
    size_t count;                   //  committed
    size_t begun;                   //  count when the txn began
    uint64_t seq;                   //  of the fake sources
} fx_t;

static fx_t fx;

static int
fx_emit (relais_txn_t *txn, const char *type, const char *key, const char *corr,
         uint64_t ts, const void *body, size_t size, void *arg)
{
    (void) txn; (void) corr; (void) ts; (void) arg;
    CHECK (fx.count < FX_EVENTS_MAX);
    relais_msg_t msg;
    relais_error_t err;
    CHECK (relais_msg_decode (&msg, body, size, NULL, &err) == 0);
    fx_event_t *e = &fx.events [fx.count++];
    snprintf (e->type, sizeof e->type, "%s", type);
    snprintf (e->key, sizeof e->key, "%s", key);
    e->body = cli_json_dumps (&msg.root, NULL);
    relais_msg_release (&msg);
    //  No personal data on the bus: never a note nor a flag reason
    CHECK (!strstr (e->body, "SECRET"));
    return 0;
}

static void fx_begin (void *arg) { (void) arg; fx.begun = fx.count; }
static void fx_abort (void *arg)
{
    (void) arg;
    while (fx.count > fx.begun)
        free (fx.events [--fx.count].body);
}

static int
fx_remove_one (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st; (void) flag; (void) ftw;
    return remove (path);
}

//  (Re)open the engine on the fixture's folder: a "restart".
static void
fx_open (void)
{
    relais_store_opts_t opts = { 1 << 20, 0, plans_dbs, 0 };
    fx.store = relais_store_new (fx.dir, &opts);
    CHECK (fx.store);
    relais_store_hook (fx.store, fx_begin, NULL, fx_abort, NULL);
    fx.engine = plans_engine_new (fx.store, &fx.rules, fx_emit, NULL);
    CHECK (fx.engine);
}

static void
fx_close (void)
{
    plans_engine_destroy (&fx.engine);
    relais_store_destroy (&fx.store);
}

static void
fx_forget_events (void)
{
    while (fx.count)
        free (fx.events [--fx.count].body);
}

static void
fx_setup (const char *name, uint64_t reopen_window_us, uint64_t stale_after_us)
{
    relais_log_level (RELAIS_LOG_WARNING);
    const char *tmp = getenv ("RELAIS_TEST_TMP");
    mkdir (tmp? tmp: "/tmp", 0700);
    snprintf (fx.dir, sizeof fx.dir, "%s/%s-%d", tmp? tmp: "/tmp", name, (int) getpid ());
    nftw (fx.dir, fx_remove_one, 16, FTW_DEPTH | FTW_PHYS);
    fx.rules.reopen_window_us = reopen_window_us;
    fx.rules.stale_after_us = stale_after_us;
    fx.seq = 0;
    fx_open ();
}

static void
fx_teardown (void)
{
    fx_close ();
    fx_forget_events ();
    nftw (fx.dir, fx_remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

//  Count raised events of type (NULL: any) about key (NULL: any).
static inline size_t
fx_count (const char *type, const char *key)
{
    size_t n = 0;
    for (size_t i = 0; i < fx.count; i++)
        if ((!type || strcmp (fx.events [i].type, type) == 0)
        &&  (!key || strcmp (fx.events [i].key, key) == 0))
            n++;
    return n;
}

static inline const fx_event_t *
fx_last (void)
{
    CHECK (fx.count > 0);
    return &fx.events [fx.count - 1];
}

//  JSON text (printf format) to msgpack bytes in sbuf.
static void
fx_pack (msgpack_sbuffer *sbuf, const char *format, va_list args)
{
    char text [8192];
    vsnprintf (text, sizeof text, format, args);
    cli_json_reader_t reader;
    cli_json_reader_init (&reader, text, strlen (text));
    json_t *value = NULL;
    int line;
    char why [256];
    if (cli_json_reader_next (&reader, &value, &line, why, sizeof why) != 1) {
        fprintf (stderr, "bad fixture JSON: %s: %s\n", why, text);
        exit (1);
    }
    msgpack_packer pk;
    msgpack_packer_init (&pk, sbuf, msgpack_sbuffer_write);
    CHECK (cli_json_pack (&pk, value, why, sizeof why) == 0);
    json_decref (value);
}

typedef struct {
    const char *topic;
    relais_envelope_t env;
} fx_apply_t;

static int
fx_apply_cb (relais_txn_t *txn, void *arg)
{
    fx_apply_t *a = (fx_apply_t *) arg;
    return plans_engine_apply (fx.engine, txn, a->topic, &a->env);
}

//  Apply one bus event: src's topic about key at ts, body as JSON.
//  Returns what the engine returned.
static int
fx_event (const char *src, const char *topic, const char *key, uint64_t ts, const char *format, ...)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    va_list args;
    va_start (args, format);
    fx_pack (&sbuf, format, args);
    va_end (args);
    relais_msg_t msg;
    relais_error_t err;
    CHECK (relais_msg_decode (&msg, sbuf.data, sbuf.size, NULL, &err) == 0);
    fx_apply_t a = { topic, { 0 } };
    a.env.v = 1;
    snprintf (a.env.src, sizeof a.env.src, "%s", src);
    a.env.seq = ++fx.seq;
    a.env.ts = ts;
    snprintf (a.env.type, sizeof a.env.type, "%s", topic);
    snprintf (a.env.key, sizeof a.env.key, "%s", key);
    a.env.body = &msg.root;
    int rc = relais_store_write (fx.store, fx_apply_cb, &a);
    relais_msg_release (&msg);
    msgpack_sbuffer_destroy (&sbuf);
    return rc;
}

//  A level-2 (or 1) report as intake publishes it. cell "" = none; refs is
//  a JSON array text.
static int
fx_report (const char *id, uint64_t ts, int level, unsigned arr, const char *kind,
           const char *cell, const char *refs)
{
    char place [128];
    if (*cell)
        snprintf (place, sizeof place, "{\"arrondissement\": %u, \"kind\": \"%s\", \"cell\": \"%s\"}",
                  arr, kind, cell);
    else
        snprintf (place, sizeof place, "{\"arrondissement\": %u, \"kind\": \"%s\"}", arr, kind);
    return fx_event ("intake", "signal.created", id, ts,
                     "{\"source\": {\"kind\": \"115\", \"name\": \"115\"}, \"place\": %s, "
                     "\"persons\": 2, \"publics\": [\"famille\"], \"level\": %d, "
                     "\"reasons\": %s, \"person_refs\": %s, \"received_at\": %llu}",
                     place, level, level == 2? "[\"mineurs\"]": "[]", refs,
                     (unsigned long long) ts);
}

typedef struct {
    const char *op;
    const msgpack_object *req;
    uint64_t now;
    msgpack_sbuffer *out;
    relais_error_t *err;
} fx_op_t;

static int
fx_op_cb (relais_txn_t *txn, void *arg)
{
    fx_op_t *o = (fx_op_t *) arg;
    int rc = plans_engine_op (fx.engine, txn, o->op, o->req, o->now, o->out, o->err);
    return o->err->code? RELAIS_ECONFLICT: rc;
}

//  The last reply (JSON) and error of fx_op.
static char fx_reply [65536];
static relais_error_t fx_err;

//  Run one API request (JSON) at now. Returns the error code ("" when ok);
//  the reply's JSON is in fx_reply.
static const char *
fx_op (uint64_t now, const char *format, ...)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    va_list args;
    va_start (args, format);
    fx_pack (&sbuf, format, args);
    va_end (args);
    relais_msg_t msg;
    CHECK (relais_msg_decode (&msg, sbuf.data, sbuf.size, NULL, &fx_err) == 0);
    char op [48] = "";
    relais_msg_str_copy (relais_msg_get (&msg.root, "op"), op, sizeof op);
    msgpack_sbuffer out;
    msgpack_sbuffer_init (&out);
    fx_op_t o = { op, &msg.root, now, &out, &fx_err };
    int rc = plans_engine_op_reads (op)? relais_store_read (fx.store, fx_op_cb, &o)
                                       : relais_store_write (fx.store, fx_op_cb, &o);
    fx_reply [0] = 0;
    if (!fx_err.code) {
        CHECK_OK (rc);
        relais_msg_t reply;
        relais_error_t err;
        relais_msg_limits_t limits = { 1 << 24, 16, 1 << 20 };
        CHECK (relais_msg_decode (&reply, out.data, out.size, &limits, &err) == 0);
        char *text = cli_json_dumps (&reply.root, NULL);
        snprintf (fx_reply, sizeof fx_reply, "%s", text);
        free (text);
        relais_msg_release (&reply);
    }
    msgpack_sbuffer_destroy (&out);
    relais_msg_release (&msg);
    msgpack_sbuffer_destroy (&sbuf);
    return fx_err.code? fx_err.code: "";
}

#define CHECK_OP_OK(...) do { \
    const char *code_ = fx_op (__VA_ARGS__); \
    if (*code_) { \
        fprintf (stderr, "%s:%d: op failed: %s %s: %s\n", __FILE__, __LINE__, code_, \
                 fx_err.field, fx_err.message); \
        exit (1); \
    } \
} while (0)

static plans_plan_t fx_plan;

typedef struct { const char *id; int rc; } fx_load_t;

static int
fx_load_cb (relais_txn_t *txn, void *arg)
{
    fx_load_t *l = (fx_load_t *) arg;
    l->rc = plans_engine_load (fx.engine, txn, l->id, &fx_plan);
    return 0;
}

//  Load a plan into fx_plan; CHECKs it exists.
static inline plans_plan_t *
fx_get (const char *id)
{
    fx_load_t l = { id, 0 };
    CHECK_OK (relais_store_read (fx.store, fx_load_cb, &l));
    CHECK_OK (l.rc);
    return &fx_plan;
}

typedef struct { uint64_t now, next; } fx_tick_t;

static int
fx_tick_cb (relais_txn_t *txn, void *arg)
{
    fx_tick_t *t = (fx_tick_t *) arg;
    return plans_engine_tick (fx.engine, txn, t->now, &t->next);
}

//  Run the deadline check at now; returns the next due date.
static inline uint64_t
fx_tick (uint64_t now)
{
    fx_tick_t t = { now, 0 };
    CHECK_OK (relais_store_write (fx.store, fx_tick_cb, &t));
    return t.next;
}

#endif
