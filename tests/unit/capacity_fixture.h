/*  =========================================================================
    capacity_fixture - a capacity state over a real store, driven by JSON
    requests on an injectable clock, with every committed event recorded

    @header
    Shared by tests/unit/test_capacity_*.c (header-only: each test is its
    own executable). fx_open () opens a fresh store under $RELAIS_TEST_TMP;
    fx_reopen () closes and reopens it, as a restart would. fx_req () runs
    one request in one write transaction at the fixture's clock and keeps
    the reply for fx_ok () / fx_code () / fx_uint (). fx_events records the
    events committed, as "type key {body as JSON}" lines.
    =========================================================================
*/
#ifndef CAPACITY_FIXTURE_H_INCLUDED
#define CAPACITY_FIXTURE_H_INCLUDED

#include "capacity_state.h"
#include "cli_json.h"
#include "relais_clock.h"
#include "relais_msg.h"
#include "relais_test.h"

#include <sys/stat.h>
#include <unistd.h>

#define FX_EVENTS_MAX 4096
#define FX_UNUSED __attribute__ ((unused))

static struct {
    char dir [512];
    relais_store_t *store;
    capacity_state_t *state;
    capacity_opts_t opts;
    relais_config_t *config;            //  given to the state when set
    uint64_t now;
    char *events [FX_EVENTS_MAX];
    size_t count, mark;
    msgpack_sbuffer reply;
    relais_msg_t msg;
    relais_error_t err;
    bool has_reply;
} fx;

static FX_UNUSED uint64_t
fx_clock (void *arg)
{
    return fx.now;
}

static FX_UNUSED int
fx_emit (void *arg, relais_txn_t *txn, const char *type, const char *key, const char *corr,
         uint64_t ts, const void *body, size_t size)
{
    CHECK (fx.count < FX_EVENTS_MAX);
    relais_msg_t msg;
    relais_error_t err;
    CHECK_OK (relais_msg_decode (&msg, body, size, NULL, &err));
    char *json = cli_json_dumps (&msg.root, NULL);
    relais_msg_release (&msg);
    CHECK (json);
    size_t n = strlen (type) + strlen (key) + strlen (json) + 3;
    char *line = (char *) malloc (n);
    snprintf (line, n, "%s %s %s", type, key, json);
    free (json);
    fx.events [fx.count++] = line;
    return 0;
}

static FX_UNUSED void
fx_begin (void *arg)
{
    fx.mark = fx.count;
}

static FX_UNUSED void
fx_abort (void *arg)
{
    while (fx.count > fx.mark)
        free (fx.events [--fx.count]);
}

static FX_UNUSED void
fx_commit (void *arg)
{
}

static FX_UNUSED void
fx_clear_events (void)
{
    while (fx.count)
        free (fx.events [--fx.count]);
}

//  Number of recorded events whose line starts with prefix ("capacity.alert hotel-1")
static FX_UNUSED size_t
fx_count (const char *prefix)
{
    size_t n = 0;
    for (size_t i = 0; i < fx.count; i++)
        if (strncmp (fx.events [i], prefix, strlen (prefix)) == 0)
            n++;
    return n;
}

static FX_UNUSED void
fx_print_events (void)
{
    for (size_t i = 0; i < fx.count; i++)
        fprintf (stderr, "    %s\n", fx.events [i]);
}

static FX_UNUSED void
fx_store_open (void)
{
    relais_store_opts_t opts = { 1 << 20, 64 << 20, capacity_dbs, 0 };
    fx.store = relais_store_new (fx.dir, &opts);
    CHECK (fx.store);
    relais_store_hook (fx.store, fx_begin, fx_commit, fx_abort, NULL);
    fx.state = capacity_state_new (&fx.opts, fx.config);
    CHECK (fx.state);
}

static FX_UNUSED int
fx_startup_cb (relais_txn_t *txn, void *arg)
{
    return capacity_state_startup (fx.state, txn, fx.now);
}

//  A restart that may be refused: returns the startup's code
static FX_UNUSED int
fx_restart (void)
{
    capacity_state_destroy (&fx.state);
    relais_store_destroy (&fx.store);
    fx_store_open ();
    return relais_store_write (fx.store, fx_startup_cb, NULL);
}

//  Fresh store for test name; opts may be NULL (defaults: 2 h hold, 7 d window)
static FX_UNUSED void
fx_open (const char *name, const capacity_opts_t *opts)
{
    const char *tmp = getenv ("RELAIS_TEST_TMP");
    mkdir (tmp? tmp: "/tmp", 0700);
    snprintf (fx.dir, sizeof fx.dir, "%s/%s-%d", tmp? tmp: "/tmp", name, (int) getpid ());
    char cmd [600];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", fx.dir);
    CHECK (system (cmd) == 0);
    memset (&fx.opts, 0, sizeof fx.opts);
    if (opts)
        fx.opts = *opts;
    else {
        fx.opts.hold_us = 2 * 3600 * 1000000ULL;
        fx.opts.window_days = 7;
        fx.opts.forecast_every_us = CAPACITY_DAY_US;
        fx.opts.match_window_us = CAPACITY_DAY_US;
    }
    fx.opts.emit = fx_emit;
    if (!fx.now)
        fx.now = 1767225600000000ULL;           //  2026-01-01T00:00:00Z
    relais_clock_set (fx_clock, NULL);
    msgpack_sbuffer_init (&fx.reply);
    fx_store_open ();
    CHECK_OK (relais_store_write (fx.store, fx_startup_cb, NULL));
}

//  A restart: close everything, reopen, run the startup step
static FX_UNUSED void
fx_reopen (void)
{
    capacity_state_destroy (&fx.state);
    relais_store_destroy (&fx.store);
    fx_store_open ();
    CHECK_OK (relais_store_write (fx.store, fx_startup_cb, NULL));
}

static FX_UNUSED void
fx_close (void)
{
    if (fx.has_reply)
        relais_msg_release (&fx.msg);
    fx.has_reply = false;
    msgpack_sbuffer_destroy (&fx.reply);
    capacity_state_destroy (&fx.state);
    relais_store_destroy (&fx.store);
    fx_clear_events ();
    relais_clock_set (NULL, NULL);
    char cmd [600];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", fx.dir);
    CHECK (system (cmd) == 0);
}

typedef struct {
    const msgpack_object *request;
} fx_req_t;

static FX_UNUSED int
fx_req_cb (relais_txn_t *txn, void *arg)
{
    fx_req_t *r = (fx_req_t *) arg;
    return capacity_state_request (fx.state, txn, r->request, relais_clock_now (), &fx.reply, &fx.err);
}

//  Run one request given as JSON; true when the reply is ok
static FX_UNUSED bool
fx_req (const char *json)
{
    cli_json_reader_t reader;
    cli_json_reader_init (&reader, json, strlen (json));
    json_t *value;
    int line;
    char why [256];
    if (cli_json_reader_next (&reader, &value, &line, why, sizeof why) != 1) {
        fprintf (stderr, "bad test JSON: %s\n", why);
        CHECK (false);
    }
    msgpack_sbuffer req;
    msgpack_sbuffer_init (&req);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &req, msgpack_sbuffer_write);
    CHECK_OK (cli_json_pack (&pk, value, why, sizeof why));
    json_decref (value);
    relais_msg_t msg;
    relais_error_t err;
    CHECK_OK (relais_msg_decode (&msg, req.data, req.size, NULL, &err));
    if (fx.has_reply)
        relais_msg_release (&fx.msg);
    fx.has_reply = false;
    msgpack_sbuffer_clear (&fx.reply);
    fx_req_t r = { &msg.root };
    CHECK_OK (relais_store_write (fx.store, fx_req_cb, &r));
    relais_msg_release (&msg);
    msgpack_sbuffer_destroy (&req);
    if (fx.err.code)
        return false;
    CHECK_OK (relais_msg_decode (&fx.msg, fx.reply.data, fx.reply.size, NULL, &err));
    fx.has_reply = true;
    return true;
}

//  The request must succeed
#define FX_OK(json) do { \
    if (!fx_req (json)) { \
        fprintf (stderr, "%s:%d: refused %s: %s %s %s\n", __FILE__, __LINE__, json, \
                 fx.err.code, fx.err.field, fx.err.message); \
        exit (1); \
    } \
} while (0)

//  The request must be refused with code (and field when not NULL), and
//  change nothing: the same events before and after
#define FX_REFUSED(json, code_, field_) do { \
    size_t before_ = fx.count; \
    CHECK (!fx_req (json)); \
    CHECK_STR (fx.err.code, code_); \
    if (field_) CHECK_STR (fx.err.field, (const char *) field_); \
    CHECK (fx.count == before_); \
} while (0)

//  A uint of the last ok reply (at the root, or under "structure")
static FX_UNUSED uint64_t
fx_uint (const char *key)
{
    CHECK (fx.has_reply);
    const msgpack_object *o = relais_msg_get (&fx.msg.root, key);
    if (!o)
        o = relais_msg_get (relais_msg_get (&fx.msg.root, "structure"), key);
    uint64_t v = 0;
    if (!o || !relais_msg_uint (o, &v)) {
        fprintf (stderr, "reply has no uint %s\n", key);
        CHECK (false);
    }
    return v;
}

static FX_UNUSED bool
fx_bool (const char *key)
{
    CHECK (fx.has_reply);
    const msgpack_object *o = relais_msg_get (&fx.msg.root, key);
    return o && o->type == MSGPACK_OBJECT_BOOLEAN && o->via.boolean;
}

//  Free places of structure id, through capacity.get
static FX_UNUSED uint64_t
fx_free (const char *id)
{
    char json [160];
    snprintf (json, sizeof json, "{\"op\":\"capacity.get\",\"id\":\"%s\"}", id);
    FX_OK (json);
    return fx_uint ("free");
}

static FX_UNUSED int
fx_tick_cb (relais_txn_t *txn, void *arg)
{
    return capacity_state_tick (fx.state, txn, relais_clock_now ());
}

static FX_UNUSED void
fx_tick (void)
{
    CHECK_OK (relais_store_write (fx.store, fx_tick_cb, NULL));
}

#endif
