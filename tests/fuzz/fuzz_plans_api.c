/*  =========================================================================
    fuzz_plans_api - libFuzzer target: a request on a service API

    The bytes of one request to plans' api endpoint, as plans_server reads
    them: decoded with the project's pre-walk, then handed to the engine
    inside a write transaction over a real store. The transaction is always
    rolled back, so the store stays as the seed left it (one open plan with
    an action) and each input meets the same state. Any crash, leak or
    oversized allocation is a bug; every refusal must be a clean error.
    =========================================================================
*/
#include "plans_engine.h"
#include "relais_envelope.h"
#include "relais_log.h"
#include "relais_msg.h"
#include "relais_store.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);
int LLVMFuzzerInitialize (int *argc, char ***argv);

#define S_NOW 1767225600000000ULL

static relais_store_t *s_store;
static plans_engine_t *s_engine;
static char s_dir [64];

static void
s_cleanup (void)
{
    char cmd [96];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    if (system (cmd) != 0)
        fprintf (stderr, "fuzz_plans_api: could not remove %s\n", s_dir);
}

static int
s_emit (relais_txn_t *txn, const char *type, const char *key, const char *corr, uint64_t ts,
        const void *body, size_t size, void *arg)
{
    return 0;
}

typedef struct {
    const char *op;
    const msgpack_object *req;
    msgpack_sbuffer *out;
    relais_error_t *err;
    bool keep;
} s_call_t;

static int
s_call (relais_txn_t *txn, void *arg)
{
    s_call_t *c = (s_call_t *) arg;
    plans_engine_op (s_engine, txn, c->op, c->req, S_NOW, c->out, c->err);
    return c->keep? 0: RELAIS_EMALFORMED;      //  roll back: every input meets the seed
}

static void
s_request (const char *op, msgpack_sbuffer *req_bytes, bool keep)
{
    relais_msg_t msg;
    relais_error_t err;
    if (relais_msg_decode (&msg, req_bytes->data, req_bytes->size, NULL, &err))
        return;
    msgpack_sbuffer out;
    msgpack_sbuffer_init (&out);
    s_call_t call = { op, &msg.root, &out, &err, keep };
    relais_store_write (s_store, s_call, &call);
    msgpack_sbuffer_destroy (&out);
    relais_msg_release (&msg);
}

//  A level-2 report applied as plans receives it from intake: plans then
//  holds one open plan, PLAN-00000001, with one action, so that ops on it
//  reach the state machine rather than not_found
static int
s_seed_report (relais_txn_t *txn, void *arg)
{
    const relais_envelope_t *env = (const relais_envelope_t *) arg;
    return plans_engine_apply (s_engine, txn, "signal.created", env);
}

static void
s_seed (void)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 5);
    relais_pack_kv_uint (&pk, "level", 2);
    relais_pack_str (&pk, "place");
    msgpack_pack_map (&pk, 2);
    relais_pack_kv_uint (&pk, "arrondissement", 18);
    relais_pack_kv_str (&pk, "kind", "gare");
    relais_pack_str (&pk, "reasons");
    msgpack_pack_array (&pk, 1);
    relais_pack_str (&pk, "campement");
    relais_pack_str (&pk, "person_refs");
    msgpack_pack_array (&pk, 0);
    relais_pack_kv_uint (&pk, "persons", 6);
    relais_msg_t body;
    relais_error_t err;
    if (relais_msg_decode (&body, sbuf.data, sbuf.size, NULL, &err))
        abort ();
    relais_envelope_t env = { .v = 1, .src = "intake", .seq = 1, .ts = S_NOW,
                              .type = "signal.created", .key = "SIG-00000001",
                              .body = &body.root };
    if (relais_store_write (s_store, s_seed_report, &env))
        abort ();
    relais_msg_release (&body);
    msgpack_sbuffer_clear (&sbuf);
    msgpack_pack_map (&pk, 6);
    relais_pack_kv_str (&pk, "op", "plans.action_add");
    relais_pack_kv_str (&pk, "id", "PLAN-00000001");
    relais_pack_kv_str (&pk, "kind", "maraude");
    relais_pack_kv_str (&pk, "owner", "uasa");
    relais_pack_kv_uint (&pk, "due", S_NOW + 3600000000ULL);
    relais_pack_kv_str (&pk, "by", "fuzz");
    s_request ("plans.action_add", &sbuf, true);
    msgpack_sbuffer_destroy (&sbuf);
}

//  Set up once, outside the inputs: LMDB's environment allocates a 1 MiB
//  list at open, which -malloc_limit_mb would charge to the first input
int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
    relais_log_init ("fuzz_plans_api");
    relais_log_level (RELAIS_LOG_ERROR);
    snprintf (s_dir, sizeof s_dir, "/tmp/fuzz_plans_api.%d", (int) getpid ());
    atexit (s_cleanup);
    relais_store_opts_t opts = { 8 << 20, 64 << 20, plans_dbs, 0 };
    s_store = relais_store_new (s_dir, &opts);
    plans_rules_t rules = { 30ULL * 86400 * 1000000, 3ULL * 86400 * 1000000 };
    s_engine = s_store? plans_engine_new (s_store, &rules, s_emit, NULL): NULL;
    if (!s_engine)
        abort ();
    s_seed ();
    return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    relais_msg_t msg;
    relais_error_t err;
    if (relais_msg_decode (&msg, data, size, NULL, &err) == 0) {
        char op [48] = "plans.get";
        const msgpack_object *o = relais_msg_get (&msg.root, "op");
        if (o && relais_msg_str_copy (o, op, sizeof op) < 0)
            strcpy (op, "?");
        msgpack_sbuffer out;
        msgpack_sbuffer_init (&out);
        s_call_t call = { op, &msg.root, &out, &err, false };
        relais_store_write (s_store, s_call, &call);
        if (getenv ("FUZZ_VERBOSE"))       //  to check that inputs reach the engine
            fprintf (stderr, "op=%s reply=%zu bytes error=%s field=%s\n", op, out.size,
                     err.code? err.code: "-", err.code? err.field: "-");
        msgpack_sbuffer_destroy (&out);
        relais_msg_release (&msg);
    }
    return 0;
}
