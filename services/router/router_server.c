/*  =========================================================================
    router_server - routes qualified reports to the partners who act on them
    (see router_server.h)
    =========================================================================
*/
#include "router_server.h"
#include "intake_privacy.h"
#include "intake_server.h"
#include "relais_audit.h"
#include "relais_bus.h"
#include "relais_mailbox.h"
#include "relais_security.h"
#include "relais_clock.h"
#include "relais_log.h"

#include <sodium.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#define S_FILL_WINDOW       256         //  record fetches in flight
#define S_FILL_TIMEOUT_US   3000000     //  a fetch unanswered this long goes again
#define S_DUE_BATCH         256         //  escalations per transaction
#define S_ENTRY_LIMITS      { 4 * 65536, 0, 0 }
#define S_REASONS_MAX       16
#define S_READY_MAX         256         //  record replies per loop turn

const relais_config_key_t router_keys [] = {
    { "pub", "tcp://127.0.0.1:7110", relais_check_endpoint, "PUB of router's events (route.*)" },
    { "fetch", "tcp://127.0.0.1:7111", relais_check_endpoint, "ROUTER for fetch (catch-up) and status" },
    { "partners", "tcp://127.0.0.1:7112", relais_check_endpoint, "ROUTER for partner notifiers (mailboxes)" },
    { "api", "tcp://127.0.0.1:7113", relais_check_endpoint, "ROUTER for router.explain and router.mailbox" },
    { "store/path", "router", relais_check_path, "LMDB folder (relative: under relais/data)" },
    { "store/map_size", "64M", relais_check_size, "initial LMDB map size; grows on demand" },
    { "store/map_max", "64G", relais_check_size, "cap of the LMDB map" },
    { "store/wal_size", "4M", relais_check_size, "write-ahead log file, 64K to 256M: an ack flushes one record there; full, it is checkpointed into LMDB" },
    { "heartbeat", "1s", relais_check_duration, "heartbeat interval on PUB" },
    { "partner_heartbeat", "1s", relais_check_duration, "ping interval with notifiers; silent 3 intervals = gone" },
    { "window", "32", relais_check_uint, "deliveries outstanding (sent, unacked) per partner" },
    { "redeliver", "10s", relais_check_duration, "resend unacked deliveries after this long without progress" },
    { "retention/acked", "30d", relais_check_duration, "personal fields of an acked or refused delivery are removed this long after its due time" },
    { "retention/every", "1d", relais_check_duration, "the retention job runs this often (and on demand: relais purge)" },
    { "audit_file", "router-audit.log", relais_check_path, "append-only log of erasures and purges (relative: under relais/data)" },
    { "audit_key_file", "router-audit.key", relais_check_path, "key of the audit chain's MACs (created at first start, mode 0600)" },
    { NULL, NULL, NULL, NULL }
};

static const char *const s_dbs [] = { "reports", "assign", "mbox", "due", "fill", NULL };
enum { S_DB_REPORTS, S_DB_ASSIGN, S_DB_MBOX, S_DB_DUE, S_DB_FILL };

enum { S_OPEN = 0, S_ACKED = 1, S_REFUSED = 2 };

static const char *const s_refuse_reasons [] = { "capacite", "hors_mission", "deja_pris", "autre" };

//  One delivery in a partner's mailbox
typedef struct {
    char key [RELAIS_KEY_MAX];          //  SIG-...
    char type [16];                     //  "assignment" or "reroute"
    char rule [ROUTER_NAME_MAX];
    char fallback [ROUTER_NAME_MAX];
    char corr [RELAIS_KEY_MAX];
    uint32_t level, arr, publics, attempt, state;
    uint64_t due, deadline_us;
    bool escalated;
    const msgpack_object *body;         //  NULL: pending (record not fetched yet)
} s_entry_t;

typedef struct {
    char id [RELAIS_KEY_MAX];
    uint64_t rid;
    uint64_t sent_mono;
} s_fetch_t;

struct router_server_t {
    uv_loop_t *loop;
    relais_config_t *config;
    router_rules_t rules;
    relais_store_t *store;
    relais_pub_t *pub;
    relais_sub_t *sub;
    relais_poller_t *partners;
    relais_poller_t *api;
    relais_poller_t *records;
    relais_signals_t *signals;
    uv_timer_t due_timer, tick, kick, retention;
    bool timers_open, kick_pending;
    relais_audit_t *audit;              //  erasures and purges
    uint64_t retention_acked_us;
    relais_mailbox_t *mailbox;          //  the notifiers' sessions
    zhashx_t *fetches;                  //  id -> s_fetch_t *
    uint64_t next_rid;
    uint64_t hb_us;
    void *ready [S_READY_MAX];          //  s_fill_t *: replies of this loop turn
    size_t ready_count;
    char **known;                       //  partners the rules can name
    size_t known_count;
    //  transaction scratch
    uint64_t now;
    struct { uint64_t assigned, acked, refused, escalated, filled, delivered; } stats;
};

//  ---------------------------------------------------------------------------
//  Configuration

int
router_declare (relais_config_t *config)
{
    static relais_config_key_t keys [64];
    size_t n = 0;
    for (size_t i = 0; router_keys [i].path; i++)
        keys [n++] = router_keys [i];
    for (size_t i = 0; router_rules_keys [i].path; i++)
        keys [n++] = router_rules_keys [i];
    keys [n].path = NULL;
    int rc = relais_config_declare (config, "router", keys);
    //  The whole intake table: a partial one would refuse intake's keys
    if (rc == 0)
        rc = intake_declare (config);
    return rc;
}

int
router_local_hour (uint64_t us)
{
    time_t t = (time_t) (us / 1000000);
    struct tm tm;
    localtime_r (&t, &tm);
    return tm.tm_hour;
}

//  ---------------------------------------------------------------------------
//  Keys and stored values

static size_t
s_assign_key (const char *id, const char *partner, char *key)
{
    size_t a = strlen (id), b = strlen (partner);
    memcpy (key, id, a);
    key [a] = 0;
    memcpy (key + a + 1, partner, b);
    return a + 1 + b;
}

static size_t
s_due_key (uint64_t due, const char *partner, uint64_t mseq, uint8_t *key)
{
    relais_u64_to_key (due, key);
    return 8 + relais_mailbox_key (partner, mseq, key + 8);
}

static size_t
s_fill_key (const char *id, const char *partner, uint64_t mseq, uint8_t *key)
{
    size_t a = strlen (id);
    memcpy (key, id, a);
    key [a] = 0;
    return a + 1 + relais_mailbox_key (partner, mseq, key + a + 1);
}

static void
s_pack_entry (msgpack_packer *pk, const s_entry_t *e)
{
    msgpack_pack_map (pk, 15);
    relais_pack_kv_uint (pk, "v", 1);
    relais_pack_kv_str (pk, "key", e->key);
    relais_pack_kv_str (pk, "type", e->type);
    relais_pack_kv_str (pk, "rule", e->rule);
    relais_pack_kv_str (pk, "fallback", e->fallback);
    relais_pack_kv_str (pk, "corr", e->corr);
    relais_pack_kv_uint (pk, "level", e->level);
    relais_pack_kv_uint (pk, "arr", e->arr);
    relais_pack_kv_uint (pk, "publics", e->publics);
    relais_pack_kv_uint (pk, "attempt", e->attempt);
    relais_pack_kv_uint (pk, "state", e->state);
    relais_pack_kv_uint (pk, "due", e->due);
    relais_pack_kv_uint (pk, "deadline", e->deadline_us);
    relais_pack_kv_bool (pk, "escalated", e->escalated);
    relais_pack_str (pk, "body");
    if (e->body)
        relais_pack_object (pk, e->body);
    else
        msgpack_pack_nil (pk);
}

static int
s_put_entry (relais_txn_t *txn, const char *partner, uint64_t mseq, const s_entry_t *e)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    s_pack_entry (&pk, e);
    uint8_t key [64];
    size_t klen = relais_mailbox_key (partner, mseq, key);
    int rc = relais_txn_put (txn, S_DB_MBOX, key, klen, sbuf.data, sbuf.size);
    msgpack_sbuffer_destroy (&sbuf);
    return rc;
}

static uint32_t
s_u32 (const msgpack_object *map, const char *key)
{
    uint64_t v = 0;
    relais_msg_uint (relais_msg_get (map, key), &v);
    return (uint32_t) v;
}

//  Decode a stored delivery; msg keeps what e->body points into.
static int
s_decode_entry (const void *data, size_t size, relais_msg_t *msg, s_entry_t *e)
{
    relais_msg_limits_t limits = S_ENTRY_LIMITS;
    relais_error_t err;
    memset (e, 0, sizeof *e);
    if (relais_msg_decode (msg, data, size, &limits, &err))
        return RELAIS_EMALFORMED;
    const msgpack_object *root = &msg->root;
    relais_msg_str_copy (relais_msg_get (root, "key"), e->key, sizeof e->key);
    relais_msg_str_copy (relais_msg_get (root, "type"), e->type, sizeof e->type);
    relais_msg_str_copy (relais_msg_get (root, "rule"), e->rule, sizeof e->rule);
    relais_msg_str_copy (relais_msg_get (root, "fallback"), e->fallback, sizeof e->fallback);
    relais_msg_str_copy (relais_msg_get (root, "corr"), e->corr, sizeof e->corr);
    e->level = s_u32 (root, "level");
    e->arr = s_u32 (root, "arr");
    e->publics = s_u32 (root, "publics");
    e->attempt = s_u32 (root, "attempt");
    e->state = s_u32 (root, "state");
    relais_msg_uint (relais_msg_get (root, "due"), &e->due);
    relais_msg_uint (relais_msg_get (root, "deadline"), &e->deadline_us);
    const msgpack_object *esc = relais_msg_get (root, "escalated");
    e->escalated = esc && esc->type == MSGPACK_OBJECT_BOOLEAN && esc->via.boolean;
    const msgpack_object *body = relais_msg_get (root, "body");
    e->body = body && body->type == MSGPACK_OBJECT_MAP? body: NULL;
    return 0;
}

static int
s_get_entry (relais_txn_t *txn, const char *partner, uint64_t mseq, relais_msg_t *msg, s_entry_t *e)
{
    uint8_t key [64];
    size_t klen = relais_mailbox_key (partner, mseq, key);
    const void *data;
    size_t size;
    int rc = relais_txn_get (txn, S_DB_MBOX, key, klen, &data, &size);
    if (rc)
        return rc;
    return s_decode_entry (data, size, msg, e);
}

//  Routing view of a report: a small msgpack array
static int
s_put_report (relais_txn_t *txn, const char *id, const router_report_t *r)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_array (&pk, 14);
    uint64_t fields [14] = { 1, r->level, r->reasons, r->publics, r->needs,
                             (uint64_t) r->place_kind, (uint64_t) r->urgency,
                             (uint64_t) r->source_kind, r->arrondissement, r->tents,
                             r->minors, r->pregnant, r->persons, r->closed };
    for (int i = 0; i < 14; i++)
        msgpack_pack_uint64 (&pk, fields [i]);
    int rc = relais_txn_put (txn, S_DB_REPORTS, id, strlen (id), sbuf.data, sbuf.size);
    msgpack_sbuffer_destroy (&sbuf);
    return rc;
}

static int
s_get_report (relais_txn_t *txn, const char *id, router_report_t *r)
{
    const void *data;
    size_t size;
    int rc = relais_txn_get (txn, S_DB_REPORTS, id, strlen (id), &data, &size);
    if (rc)
        return rc;
    relais_msg_t msg;
    relais_error_t err;
    if (relais_msg_decode (&msg, data, size, NULL, &err))
        return RELAIS_EMALFORMED;
    uint64_t f [14] = { 0 };
    if (msg.root.type == MSGPACK_OBJECT_ARRAY && msg.root.via.array.size == 14)
        for (int i = 0; i < 14; i++)
            relais_msg_uint (&msg.root.via.array.ptr [i], &f [i]);
    relais_msg_release (&msg);
    memset (r, 0, sizeof *r);
    r->level = (uint32_t) f [1];
    r->reasons = (uint32_t) f [2];
    r->publics = (uint32_t) f [3];
    r->needs = (uint32_t) f [4];
    r->place_kind = (int) f [5];
    r->urgency = (int) f [6];
    r->source_kind = (int) f [7];
    r->arrondissement = (uint32_t) f [8];
    r->tents = (uint32_t) f [9];
    r->minors = (uint32_t) f [10];
    r->pregnant = (uint32_t) f [11];
    r->persons = (uint32_t) f [12];
    r->closed = f [13] != 0;
    return 0;
}

//  ---------------------------------------------------------------------------
//  Events

static int
s_emit (router_server_t *self, relais_txn_t *txn, const char *type, const char *key,
        const char *corr, msgpack_sbuffer *sbuf)
{
    int rc = relais_pub_append (self->pub, txn, type, key, corr[0]? corr: NULL, self->now,
                                sbuf->data, sbuf->size, NULL);
    msgpack_sbuffer_destroy (sbuf);
    return rc;
}

#define S_BODY(n) \
    msgpack_sbuffer sbuf; \
    msgpack_sbuffer_init (&sbuf); \
    msgpack_packer pk; \
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write); \
    msgpack_pack_map (&pk, (n))

//  A new assignment: mailbox entry (body pending), assign key, due and fill
//  indexes, route.assigned. Nothing when partner already has the report.
static int
s_assign (router_server_t *self, relais_txn_t *txn, const char *id, const char *partner,
          const char *rule, const char *fallback, uint64_t deadline_us, uint32_t level,
          uint32_t arr, uint32_t publics, uint32_t attempt, const char *corr, bool *done)
{
    char akey [RELAIS_KEY_MAX + ROUTER_NAME_MAX + 2];
    size_t alen = s_assign_key (id, partner, akey);
    const void *data;
    size_t size;
    *done = false;
    int rc = relais_txn_get (txn, S_DB_ASSIGN, akey, alen, &data, &size);
    if (rc == 0)
        return 0;                       //  nobody gets a report twice
    if (rc != RELAIS_ENOTFOUND)
        return rc;
    char name [64];
    snprintf (name, sizeof name, "mseq/%s", partner);
    uint64_t mseq = 0;
    if ((rc = relais_meta_get (txn, name, &mseq)))
        return rc;
    mseq++;
    if ((rc = relais_meta_set (txn, name, mseq)))
        return rc;
    s_entry_t e;
    memset (&e, 0, sizeof e);
    snprintf (e.key, sizeof e.key, "%s", id);
    snprintf (e.type, sizeof e.type, "%s", attempt > 1? "reroute": "assignment");
    snprintf (e.rule, sizeof e.rule, "%s", rule);
    snprintf (e.fallback, sizeof e.fallback, "%s", fallback);
    snprintf (e.corr, sizeof e.corr, "%s", corr);
    e.level = level;
    e.arr = arr;
    e.publics = publics;
    e.attempt = attempt;
    e.deadline_us = deadline_us;
    e.due = self->now + deadline_us;
    if ((rc = s_put_entry (txn, partner, mseq, &e)))
        return rc;
    uint8_t seq [8];
    relais_u64_to_key (mseq, seq);
    if ((rc = relais_txn_put (txn, S_DB_ASSIGN, akey, alen, seq, 8)))
        return rc;
    uint8_t key [128];
    size_t klen = s_due_key (e.due, partner, mseq, key);
    if ((rc = relais_txn_put (txn, S_DB_DUE, key, klen, "", 0)))
        return rc;
    klen = s_fill_key (id, partner, mseq, key);
    if ((rc = relais_txn_put (txn, S_DB_FILL, key, klen, "", 0)))
        return rc;
    S_BODY (7 + (fallback [0]? 1: 0));
    relais_pack_kv_str (&pk, "partner", partner);
    relais_pack_kv_str (&pk, "rule", rule);
    relais_pack_kv_uint (&pk, "level", level);
    relais_pack_kv_uint (&pk, "arrondissement", arr);
    relais_pack_str (&pk, "publics");
    relais_pack_mask (&pk, publics, relais_public_names, RELAIS_PUBLIC_COUNT);
    relais_pack_kv_uint (&pk, "due", e.due);
    relais_pack_kv_uint (&pk, "attempt", attempt);
    if (fallback [0])
        relais_pack_kv_str (&pk, "fallback", fallback);
    *done = true;
    return s_emit (self, txn, "route.assigned", id, corr, &sbuf);
}

//  The entry of partner/mseq is closed (acked, refused or past due): drop
//  its due index.
static int
s_drop_due (relais_txn_t *txn, const char *partner, uint64_t mseq, uint64_t due)
{
    uint8_t key [128];
    size_t klen = s_due_key (due, partner, mseq, key);
    int rc = relais_txn_del (txn, S_DB_DUE, key, klen);
    return rc == RELAIS_ENOTFOUND? 0: rc;
}

//  route.escalated, and the report to the fallback (once).
static int
s_escalate (router_server_t *self, relais_txn_t *txn, const char *partner, uint64_t mseq,
            const s_entry_t *e, const char *cause)
{
    //  With no fallback (the fallback's own assignment: the MUS by default)
    //  there is nobody to hand it to, but operations must still see on the
    //  bus that the last partner has not taken it: fallback "".
    S_BODY (4);
    relais_pack_kv_str (&pk, "partner", partner);
    relais_pack_kv_str (&pk, "fallback", e->fallback);
    relais_pack_kv_str (&pk, "cause", cause);
    relais_pack_kv_uint (&pk, "mseq", mseq);
    int rc = s_emit (self, txn, "route.escalated", e->key, e->corr, &sbuf);
    if (rc || !e->fallback [0]) {
        if (rc == 0)
            self->stats.escalated++;
        return rc;
    }
    bool done;
    //  The fallback's assignment has no fallback of its own: escalation
    //  stops there (the default fallback is the MUS).
    rc = s_assign (self, txn, e->key, e->fallback, e->rule, "", e->deadline_us, e->level,
                   e->arr, e->publics, e->attempt + 1, e->corr, &done);
    if (rc == 0)
        self->stats.escalated++;
    return rc;
}

//  ---------------------------------------------------------------------------
//  Applying intake's events (inside the subscriber's transaction)

static int
s_route (router_server_t *self, relais_txn_t *txn, const char *id, const router_report_t *r,
         const char *corr)
{
    router_match_t matches [ROUTER_MATCH_MAX];
    size_t n = router_rules_eval (&self->rules, r, router_local_hour (self->now),
                                  matches, ROUTER_MATCH_MAX);
    for (size_t i = 0; i < n; i++) {
        bool done;
        int rc = s_assign (self, txn, id, matches [i].partner, matches [i].rule,
                           matches [i].fallback, matches [i].deadline_us, r->level,
                           r->arrondissement, r->publics, 1, corr, &done);
        if (rc)
            return rc;
        if (done)
            self->stats.assigned++;
    }
    return 0;
}

static int
s_apply (relais_txn_t *txn, const char *topic, const relais_envelope_t *env, void *arg)
{
    router_server_t *self = (router_server_t *) arg;
    self->now = relais_clock_now ();
    char corr [RELAIS_KEY_MAX];
    snprintf (corr, sizeof corr, "intake:%llu", (unsigned long long) env->seq);
    if (strncmp (env->key, "SIG-", 4) != 0)
        return RELAIS_EMALFORMED;
    router_report_t report;
    int rc;
    if (strcmp (env->type, "signal.created") == 0) {
        if (router_report_from_view (env->body, &report))
            return RELAIS_EMALFORMED;
        if ((rc = s_put_report (txn, env->key, &report)))
            return rc;
        return s_route (self, txn, env->key, &report, corr);
    }
    rc = s_get_report (txn, env->key, &report);
    if (rc == RELAIS_ENOTFOUND)
        return RELAIS_EMALFORMED;       //  an update of a report never created
    if (rc)
        return rc;
    if (strcmp (env->type, "signal.updated") == 0) {
        if (!env->body || env->body->type != MSGPACK_OBJECT_MAP)
            return RELAIS_EMALFORMED;
        router_report_apply_changes (&report, env->body);
        if ((rc = s_put_report (txn, env->key, &report)))
            return rc;
        return report.closed? 0: s_route (self, txn, env->key, &report, corr);
    }
    if (strcmp (env->type, "signal.closed") == 0) {
        report.closed = true;
        return s_put_report (txn, env->key, &report);
    }
    return 0;
}

typedef struct {
    router_server_t *self;
    const char *topic;
    const relais_envelope_t *env;
} s_apply_t;

static int
s_apply_one (relais_txn_t *txn, void *arg)
{
    s_apply_t *a = (s_apply_t *) arg;
    return s_apply (txn, a->topic, a->env, a->self);
}

int
router_server_apply (router_server_t *self, const char *topic, const relais_envelope_t *env)
{
    s_apply_t a = { self, topic, env };
    return relais_store_write (self->store, s_apply_one, &a);
}

//  ---------------------------------------------------------------------------
//  After each commit: deliver, fetch records, re-arm the due timer

static void s_deliver_all (router_server_t *self);
static void s_fill_pump (router_server_t *self);
static void s_arm_due (router_server_t *self);

static void
s_on_kick (uv_timer_t *timer)
{
    router_server_t *self = (router_server_t *) timer->data;
    self->kick_pending = false;
    s_fill_pump (self);
    s_deliver_all (self);
    s_arm_due (self);
}

static void
s_on_commit (void *arg)
{
    router_server_t *self = (router_server_t *) arg;
    if (self->timers_open && !self->kick_pending) {
        self->kick_pending = true;
        uv_timer_start (&self->kick, s_on_kick, 0, 0);
    }
}

//  ---------------------------------------------------------------------------
//  Escalation on deadline

typedef struct {
    router_server_t *self;
    uint64_t now, first;
    size_t done;
} s_due_scan_t;

static int
s_first_due (const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    s_due_scan_t *s = (s_due_scan_t *) arg;
    if (klen >= 8)
        s->first = relais_key_to_u64 (key);
    return 1;
}

static int
s_read_first_due (relais_txn_t *txn, void *arg)
{
    return relais_txn_scan (txn, S_DB_DUE, NULL, 0, s_first_due, arg);
}

static void s_on_due (uv_timer_t *timer);

static void
s_arm_due (router_server_t *self)
{
    if (!self->timers_open)
        return;
    s_due_scan_t s = { self, 0, 0, 0 };
    if (relais_store_read (self->store, s_read_first_due, &s) || s.first == 0) {
        uv_timer_stop (&self->due_timer);
        return;
    }
    uint64_t now = relais_clock_now ();
    uint64_t delay = s.first > now? (s.first - now) / 1000 + 1: 0;
    if (delay > 60000)
        delay = 60000;                  //  look again: the wall clock may jump
    uv_timer_start (&self->due_timer, s_on_due, delay, 0);
}

typedef struct {
    uint8_t keys [S_DUE_BATCH][128];
    size_t lens [S_DUE_BATCH];
    size_t count;
    uint64_t now;
} s_due_list_t;

static int
s_collect_due (const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    s_due_list_t *l = (s_due_list_t *) arg;
    if (klen < 18 || klen > 128 || relais_key_to_u64 (key) > l->now || l->count == S_DUE_BATCH)
        return 1;
    memcpy (l->keys [l->count], key, klen);
    l->lens [l->count++] = klen;
    return 0;
}

static int
s_write_due (relais_txn_t *txn, void *arg)
{
    router_server_t *self = (router_server_t *) arg;
    self->now = relais_clock_now ();
    s_due_list_t *l = (s_due_list_t *) calloc (1, sizeof *l);
    if (!l)
        return -ENOMEM;
    l->now = self->now;
    int rc = relais_txn_scan (txn, S_DB_DUE, NULL, 0, s_collect_due, l);
    for (size_t i = 0; rc == 0 && i < l->count; i++) {
        const uint8_t *key = l->keys [i];
        char partner [ROUTER_NAME_MAX];
        size_t plen = strnlen ((const char *) key + 8, l->lens [i] - 8);
        if (plen >= sizeof partner || 8 + plen + 9 != l->lens [i])
            continue;
        memcpy (partner, key + 8, plen);
        partner [plen] = 0;
        uint64_t mseq = relais_key_to_u64 (key + 8 + plen + 1);
        if ((rc = relais_txn_del (txn, S_DB_DUE, key, l->lens [i])))
            break;
        relais_msg_t msg;
        s_entry_t e;
        rc = s_get_entry (txn, partner, mseq, &msg, &e);
        if (rc == RELAIS_ENOTFOUND || rc == RELAIS_EMALFORMED) {
            rc = 0;
            continue;
        }
        if (rc)
            break;
        if (e.state == S_OPEN && !e.escalated) {
            e.escalated = true;
            rc = s_put_entry (txn, partner, mseq, &e);
            if (rc == 0)
                rc = s_escalate (self, txn, partner, mseq, &e, "deadline");
            if (rc == 0)
                relais_notice ("escalated id=%s partner=%s mseq=%llu cause=deadline fallback=%s",
                               e.key, partner, (unsigned long long) mseq,
                               e.fallback [0]? e.fallback: "-");
        }
        relais_msg_release (&msg);
    }
    free (l);
    return rc;
}

static void
s_on_due (uv_timer_t *timer)
{
    router_server_t *self = (router_server_t *) timer->data;
    int rc = relais_store_write (self->store, s_write_due, self);
    if (rc == RELAIS_EFATAL)
        relais_fatal ("router escalation", rc);
    if (rc)
        relais_warning ("escalation postponed error=%s", relais_strerror (rc));
    s_arm_due (self);
}

//  ---------------------------------------------------------------------------
//  Records: the personal data of pending deliveries, from intake

typedef struct {
    router_server_t *self;
    size_t want;
    char last [RELAIS_KEY_MAX];
} s_fill_scan_t;

static void
s_fetch_send (router_server_t *self, s_fetch_t *f)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 3);
    relais_pack_kv_str (&pk, "op", "signal.get");
    relais_pack_kv_str (&pk, "id", f->id);
    relais_pack_kv_uint (&pk, "rid", f->rid);
    zmsg_t *msg = zmsg_new ();
    zmsg_addmem (msg, "", 0);
    zmsg_addmem (msg, sbuf.data, sbuf.size);
    msgpack_sbuffer_destroy (&sbuf);
    relais_poller_send (self->records, &msg);
    f->sent_mono = relais_clock_mono ();
}

static int
s_fill_each (const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    s_fill_scan_t *s = (s_fill_scan_t *) arg;
    size_t n = strnlen ((const char *) key, klen);
    if (n >= RELAIS_KEY_MAX || n == klen)
        return 0;
    char id [RELAIS_KEY_MAX];
    memcpy (id, key, n);
    id [n] = 0;
    if (strcmp (id, s->last) == 0 || zhashx_lookup (s->self->fetches, id))
        return 0;
    snprintf (s->last, sizeof s->last, "%s", id);
    s_fetch_t *f = (s_fetch_t *) calloc (1, sizeof *f);
    if (!f)
        return 1;
    snprintf (f->id, sizeof f->id, "%s", id);
    f->rid = ++s->self->next_rid;
    zhashx_insert (s->self->fetches, id, f);
    s_fetch_send (s->self, f);
    return --s->want == 0? 1: 0;
}

static int
s_read_fills (relais_txn_t *txn, void *arg)
{
    return relais_txn_scan (txn, S_DB_FILL, NULL, 0, s_fill_each, arg);
}

static void
s_fill_pump (router_server_t *self)
{
    size_t inflight = zhashx_size (self->fetches);
    if (!self->records || inflight >= S_FILL_WINDOW)
        return;
    s_fill_scan_t s = { self, S_FILL_WINDOW - inflight, "" };
    relais_store_read (self->store, s_read_fills, &s);
}

typedef struct {
    router_server_t *self;
    const char *id;
    char idbuf [RELAIS_KEY_MAX];
    zframe_t *frame;                    //  the reply, which msg points into
    relais_msg_t msg;
    const msgpack_object *record;
    //  fill keys of this report, collected then rewritten
    uint8_t keys [32][128];
    size_t lens [32];
    size_t count;
} s_fill_t;

static int
s_fill_collect (const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    s_fill_t *f = (s_fill_t *) arg;
    size_t n = strlen (f->id);
    if (klen <= n + 1 || memcmp (key, f->id, n) != 0 || ((const uint8_t *) key) [n] != 0)
        return 1;
    if (f->count == 32 || klen > 128)
        return 1;
    memcpy (f->keys [f->count], key, klen);
    f->lens [f->count++] = klen;
    return 0;
}

//  The delivery body: what the partner needs to act (PROTOCOL §5)
static void
s_pack_delivery_body (msgpack_packer *pk, const char *id, const msgpack_object *record)
{
    const char *copy [] = { "level", "reasons", "state", "person_refs", "created_at", "signal" };
    size_t n = 1;
    for (int i = 0; i < 6; i++)
        n += relais_msg_get (record, copy [i]) != NULL;
    msgpack_pack_map (pk, n);
    relais_pack_kv_str (pk, "id", id);
    for (int i = 0; i < 6; i++) {
        const msgpack_object *o = relais_msg_get (record, copy [i]);
        if (o) {
            relais_pack_str (pk, copy [i]);
            relais_pack_object (pk, o);
        }
    }
}

static int
s_write_fill (relais_txn_t *txn, void *arg)
{
    s_fill_t *f = (s_fill_t *) arg;
    f->count = 0;
    uint8_t from [RELAIS_KEY_MAX + 1];
    size_t n = strlen (f->id);
    memcpy (from, f->id, n);
    from [n] = 0;
    int rc = relais_txn_scan (txn, S_DB_FILL, from, n + 1, s_fill_collect, f);
    if (rc)
        return rc;
    msgpack_sbuffer body;
    msgpack_sbuffer_init (&body);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &body, msgpack_sbuffer_write);
    s_pack_delivery_body (&pk, f->id, f->record);
    relais_msg_t bmsg;
    relais_error_t err;
    relais_msg_limits_t limits = S_ENTRY_LIMITS;
    if (relais_msg_decode (&bmsg, body.data, body.size, &limits, &err)) {
        msgpack_sbuffer_destroy (&body);
        return RELAIS_EMALFORMED;
    }
    for (size_t i = 0; rc == 0 && i < f->count; i++) {
        const uint8_t *key = f->keys [i] + n + 1;
        size_t rest = f->lens [i] - n - 1;
        size_t plen = strnlen ((const char *) key, rest);
        if (plen + 9 != rest || plen >= ROUTER_NAME_MAX)
            continue;
        char partner [ROUTER_NAME_MAX];
        memcpy (partner, key, plen);
        partner [plen] = 0;
        uint64_t mseq = relais_key_to_u64 (key + plen + 1);
        relais_msg_t msg;
        s_entry_t e;
        rc = s_get_entry (txn, partner, mseq, &msg, &e);
        if (rc == 0) {
            e.body = &bmsg.root;
            rc = s_put_entry (txn, partner, mseq, &e);
            relais_msg_release (&msg);
        }
        else
        if (rc == RELAIS_ENOTFOUND)
            rc = 0;
        if (rc == 0)
            rc = relais_txn_del (txn, S_DB_FILL, f->keys [i], f->lens [i]);
    }
    relais_msg_release (&bmsg);
    msgpack_sbuffer_destroy (&body);
    return rc;
}

//  Replies of one loop turn are written in one transaction (one fsync)
static int
s_write_fills (relais_txn_t *txn, void *arg)
{
    router_server_t *self = (router_server_t *) arg;
    for (size_t i = 0; i < self->ready_count; i++) {
        int rc = s_write_fill (txn, self->ready [i]);
        if (rc)
            return rc;
    }
    return 0;
}

static void
s_on_record (relais_poller_t *poller, zmsg_t **msg_p, void *arg)
{
    router_server_t *self = (router_server_t *) arg;
    zframe_t *data = zmsg_last (*msg_p);
    if (!data || self->ready_count == S_READY_MAX)
        return;                         //  left in flight: fetched again later
    zmsg_remove (*msg_p, data);
    s_fill_t *fill = (s_fill_t *) calloc (1, sizeof *fill);
    relais_error_t err;
    relais_msg_limits_t limits = S_ENTRY_LIMITS;
    if (!fill || relais_msg_decode (&fill->msg, zframe_data (data), zframe_size (data), &limits, &err)) {
        relais_warning ("records: malformed reply dropped");
        zframe_destroy (&data);
        free (fill);
        return;
    }
    fill->frame = data;
    uint64_t rid = 0;
    relais_msg_uint (relais_msg_get (&fill->msg.root, "rid"), &rid);
    s_fetch_t *f = NULL;
    for (s_fetch_t *it = (s_fetch_t *) zhashx_first (self->fetches); it;
         it = (s_fetch_t *) zhashx_next (self->fetches))
        if (it->rid == rid) {
            f = it;
            break;
        }
    const msgpack_object *ok = relais_msg_get (&fill->msg.root, "ok");
    if (f && ok && ok->type == MSGPACK_OBJECT_BOOLEAN && ok->via.boolean) {
        const msgpack_object *record = relais_msg_get (&fill->msg.root, "record");
        fill->record = record? record: &fill->msg.root;
        snprintf (fill->idbuf, sizeof fill->idbuf, "%s", f->id);
        fill->id = fill->idbuf;
        self->ready [self->ready_count++] = fill;
        return;
    }
    if (f) {
        char code [32] = "";
        relais_msg_str_copy (relais_msg_get (&fill->msg.root, "code"), code, sizeof code);
        relais_warning ("record id=%s not fetched code=%s: retried later", f->id, code);
        //  Left in flight: the tick resends it after the timeout
    }
    relais_msg_release (&fill->msg);
    zframe_destroy (&fill->frame);
    free (fill);
}

static void
s_on_record_batch (relais_poller_t *poller, void *arg)
{
    router_server_t *self = (router_server_t *) arg;
    if (self->ready_count) {
        int rc = relais_store_write (self->store, s_write_fills, self);
        if (rc == RELAIS_EFATAL)
            relais_fatal ("router fill", rc);
        if (rc)
            relais_warning ("fill of %zu records failed error=%s: retried later",
                            self->ready_count, relais_strerror (rc));
        for (size_t i = 0; i < self->ready_count; i++) {
            s_fill_t *fill = self->ready [i];
            if (rc == 0) {
                self->stats.filled += fill->count;
                zhashx_delete (self->fetches, fill->id);
            }
            relais_msg_release (&fill->msg);
            zframe_destroy (&fill->frame);
            free (fill);
        }
        self->ready_count = 0;
    }
    s_fill_pump (self);
}

//  ---------------------------------------------------------------------------
//  Mailboxes: sessions with partner notifiers

static bool
s_known (router_server_t *self, const char *partner)
{
    for (size_t i = 0; i < self->known_count; i++)
        if (strcmp (self->known [i], partner) == 0)
            return true;
    return false;
}

static void
s_add_known (router_server_t *self, const char *name)
{
    if (!name [0] || s_known (self, name))
        return;
    char **bigger = (char **) realloc (self->known, (self->known_count + 1) * sizeof *bigger);
    if (!bigger)
        return;
    self->known = bigger;
    self->known [self->known_count++] = strdup (name);
}

static void
s_learn_partners (router_server_t *self)
{
    s_add_known (self, self->rules.fallback);
    for (size_t i = 0; i < self->rules.count; i++) {
        const router_rule_t *r = &self->rules.rules [i];
        for (size_t p = 0; p <= r->partner_count; p++) {
            const char *name = p < r->partner_count? r->partners [p]: r->fallback;
            if (strcmp (name, "cellule-{arr}") == 0)
                for (int a = 1; a <= 20; a++) {
                    char cell [32];
                    snprintf (cell, sizeof cell, "cellule-%d", a);
                    s_add_known (self, cell);
                }
            else
                s_add_known (self, name);
        }
    }
}

//  One stored delivery as a deliver message: an entry no longer open is
//  passed, an open one whose record is still pending is waited for
static relais_mailbox_verdict_t
s_pack_delivery (uint64_t mseq, const void *val, size_t vlen, msgpack_packer *pk, void *arg)
{
    relais_msg_t msg;
    s_entry_t e;
    if (s_decode_entry (val, vlen, &msg, &e))
        return RELAIS_MAILBOX_SKIP;     //  damaged entry: never blocks the rest
    relais_mailbox_verdict_t verdict = RELAIS_MAILBOX_SEND;
    if (e.state != S_OPEN)
        verdict = RELAIS_MAILBOX_SKIP;
    else
    if (!e.body)
        verdict = RELAIS_MAILBOX_WAIT;  //  in order: wait for its record
    else {
        msgpack_pack_map (pk, 6);
        relais_pack_kv_str (pk, "op", "deliver");
        relais_pack_kv_uint (pk, "mseq", mseq);
        relais_pack_kv_str (pk, "key", e.key);
        relais_pack_kv_str (pk, "type", e.type);
        relais_pack_kv_uint (pk, "due", e.due);
        relais_pack_str (pk, "body");
        relais_pack_object (pk, e.body);
    }
    relais_msg_release (&msg);
    return verdict;
}

static void
s_deliver (router_server_t *self, relais_mailbox_session_t *s)
{
    self->stats.delivered += relais_mailbox_deliver (self->mailbox, s);
}

static void
s_deliver_all (router_server_t *self)
{
    self->stats.delivered += relais_mailbox_deliver_all (self->mailbox);
}

typedef struct {
    router_server_t *self;
    const char *partner;
    uint64_t upto;
    uint64_t acked;                     //  out: the partner's ack level after
    uint64_t count;
} s_ack_t;

static int
s_write_ack (relais_txn_t *txn, void *arg)
{
    s_ack_t *a = (s_ack_t *) arg;
    router_server_t *self = a->self;
    self->now = relais_clock_now ();
    a->count = 0;
    char name [64], mname [64];
    snprintf (name, sizeof name, "acked/%s", a->partner);
    snprintf (mname, sizeof mname, "mseq/%s", a->partner);
    uint64_t acked = 0, last = 0;
    int rc = relais_meta_get (txn, name, &acked);
    if (rc == 0)
        rc = relais_meta_get (txn, mname, &last);
    if (rc)
        return rc;
    uint64_t upto = a->upto > last? last: a->upto;
    a->acked = acked;
    for (uint64_t m = acked + 1; m <= upto; m++) {
        relais_msg_t msg;
        s_entry_t e;
        rc = s_get_entry (txn, a->partner, m, &msg, &e);
        if (rc == RELAIS_ENOTFOUND || rc == RELAIS_EMALFORMED)
            continue;
        if (rc)
            return rc;
        if (e.state == S_OPEN && !e.body) {
            //  Never delivered (its record is still pending): a cumulative
            //  ack cannot cover it
            relais_msg_release (&msg);
            upto = m - 1;
            break;
        }
        if (e.state == S_OPEN) {
            e.state = S_ACKED;
            rc = s_put_entry (txn, a->partner, m, &e);
            if (rc == 0)
                rc = s_drop_due (txn, a->partner, m, e.due);
            if (rc == 0) {
                S_BODY (3);
                relais_pack_kv_str (&pk, "partner", a->partner);
                relais_pack_kv_uint (&pk, "mseq", m);
                relais_pack_kv_uint (&pk, "at", self->now);
                rc = s_emit (self, txn, "route.acknowledged", e.key, e.corr, &sbuf);
            }
            a->count++;
        }
        relais_msg_release (&msg);
        if (rc)
            return rc;
    }
    if (upto > acked) {
        a->acked = upto;
        return relais_meta_set (txn, name, upto);
    }
    return 0;
}

static void
s_ack (router_server_t *self, relais_mailbox_session_t *s, uint64_t upto)
{
    s_ack_t a = { self, s->name, upto, 0, 0 };
    int rc = relais_store_write (self->store, s_write_ack, &a);
    if (rc == RELAIS_EFATAL)
        relais_fatal ("router ack", rc);
    if (rc) {
        relais_warning ("ack partner=%s upto=%llu failed error=%s", s->name,
                        (unsigned long long) upto, relais_strerror (rc));
        return;
    }
    self->stats.acked += a.count;
    if (a.count)
        s->progress_mono = relais_clock_mono ();
}

typedef struct {
    router_server_t *self;
    const char *partner;
    uint64_t mseq;
    const char *reason;
    relais_error_t err;
} s_refuse_t;

static int
s_write_refuse (relais_txn_t *txn, void *arg)
{
    s_refuse_t *r = (s_refuse_t *) arg;
    router_server_t *self = r->self;
    self->now = relais_clock_now ();
    relais_error_clear (&r->err);
    relais_msg_t msg;
    s_entry_t e;
    int rc = s_get_entry (txn, r->partner, r->mseq, &msg, &e);
    if (rc == RELAIS_ENOTFOUND || rc == RELAIS_EMALFORMED) {
        relais_error_set (&r->err, RELAIS_CODE_NOT_FOUND, "mseq", "no delivery has this mseq in your mailbox");
        return 0;
    }
    if (rc)
        return rc;
    if (e.state != S_OPEN || !e.body) {
        relais_error_set (&r->err, RELAIS_CODE_CONFLICT, "mseq",
                          e.state == S_ACKED? "already acknowledged": e.state == S_REFUSED? "already refused"
                                            : "not delivered yet");
        relais_msg_release (&msg);
        return 0;
    }
    e.state = S_REFUSED;
    rc = s_put_entry (txn, r->partner, r->mseq, &e);
    if (rc == 0)
        rc = s_drop_due (txn, r->partner, r->mseq, e.due);
    if (rc == 0) {
        S_BODY (3);
        relais_pack_kv_str (&pk, "partner", r->partner);
        relais_pack_kv_uint (&pk, "mseq", r->mseq);
        relais_pack_kv_str (&pk, "reason", r->reason);
        rc = s_emit (self, txn, "route.refused", e.key, e.corr, &sbuf);
    }
    if (rc == 0)
        rc = s_escalate (self, txn, r->partner, r->mseq, &e, "refused");
    relais_msg_release (&msg);
    return rc;
}

typedef struct {
    const char *partner;
    uint64_t last, acked, open, pending;
    size_t plen;
} s_box_t;
static int s_read_box (relais_txn_t *txn, void *arg);

static void
s_on_partner (relais_poller_t *poller, zmsg_t **msg_p, void *arg)
{
    router_server_partner_message ((router_server_t *) arg, msg_p);
}

void
router_server_partner_message (router_server_t *self, zmsg_t **msg_p)
{
    relais_poller_t *poller = self->partners;
    relais_request_t req;
    relais_msg_t msg = { 0 };
    relais_error_t err;
    relais_error_clear (&err);
    if (relais_request_take (msg_p, &req)) {
        relais_error_set (&err, RELAIS_CODE_INVALID, "", "expected an empty delimiter frame, then one data frame");
        goto error;
    }
    if (relais_msg_decode (&msg, zframe_data (req.data), zframe_size (req.data), NULL, &err))
        goto error;
    const msgpack_object *root = &msg.root;
    const msgpack_object *op = relais_msg_get (root, "op");
    if (!op || op->type != MSGPACK_OBJECT_STR) {
        relais_error_set (&err, RELAIS_CODE_INVALID, "op", "required: hello, ack, refuse or ping");
        goto error;
    }
    relais_mailbox_session_t *s = relais_mailbox_by_identity (self->mailbox, req.identity);
    if (relais_msg_str_eq (op, "hello")) {
        char partner [ROUTER_NAME_MAX];
        uint64_t after = 0;
        if (relais_msg_str_copy (relais_msg_get (root, "partner"), partner, sizeof partner) < 0) {
            relais_error_set (&err, RELAIS_CODE_INVALID, "partner", "required, a partner id");
            goto error;
        }
        if (!s_known (self, partner)) {
            relais_error_set (&err, RELAIS_CODE_UNAUTHORIZED, "partner", "no rule names this partner");
            goto error;
        }
        //  With CURVE, a partner opens only the mailbox of its certificate
        relais_peer_t peer;
        if (relais_security_on ()
        &&  (!relais_security_peer (req.data, &peer) || strcmp (peer.role, "partner") != 0
          || strcmp (peer.partner, partner) != 0)) {
            relais_warning ("hello refused partner=%s certificate=%s", partner, peer.name);
            relais_error_set (&err, RELAIS_CODE_UNAUTHORIZED, "partner",
                              "this certificate may not open this mailbox");
            goto error;
        }
        const msgpack_object *a = relais_msg_get (root, "after");
        if (a && !relais_msg_uint (a, &after)) {
            relais_error_set (&err, RELAIS_CODE_INVALID, "after", "a mseq (uint)");
            goto error;
        }
        //  One session per partner: a new hello replaces the old one
        s = relais_mailbox_open (self->mailbox, partner, &req);
        if (!s)
            goto done;
        //  What the notifier durably handled counts as acknowledged -
        //  unless its record is beyond the mailbox itself (our store was
        //  replaced): then it acknowledges nothing, and the welcome tells it
        //  where the mailbox stands
        s_box_t before = { partner, 0, 0, 0, 0, strlen (partner) };
        relais_store_read (self->store, s_read_box, &before);
        if (after > before.last) {
            relais_warning ("hello partner=%s after=%llu beyond the mailbox last=%llu: ignored",
                            partner, (unsigned long long) after, (unsigned long long) before.last);
            after = 0;
        }
        s_ack (self, s, after);
        s->sent_upto = 0;               //  everything unacked goes again
        relais_notice ("partner hello partner=%s after=%llu", partner, (unsigned long long) after);
        s_box_t box = { partner, 0, 0, 0, 0, strlen (partner) };
        relais_store_read (self->store, s_read_box, &box);
        S_BODY (3);
        relais_pack_kv_str (&pk, "op", "welcome");
        relais_pack_kv_uint (&pk, "acked", box.acked);
        relais_pack_kv_uint (&pk, "last", box.last);
        relais_mailbox_send (self->mailbox, s, &sbuf);
        msgpack_sbuffer_destroy (&sbuf);
        s_deliver (self, s);
        goto done;
    }
    if (!s) {
        relais_error_set (&err, RELAIS_CODE_CONFLICT, "op", "no session: send hello first");
        goto error;
    }
    relais_mailbox_heard (s);
    if (relais_msg_str_eq (op, "ping"))
        goto done;
    if (relais_msg_str_eq (op, "ack")) {
        uint64_t upto;
        if (!relais_msg_uint (relais_msg_get (root, "upto"), &upto)) {
            relais_error_set (&err, RELAIS_CODE_INVALID, "upto", "required, a mseq (uint)");
            goto error;
        }
        s_ack (self, s, upto);
        s_deliver (self, s);
        goto done;
    }
    if (relais_msg_str_eq (op, "refuse")) {
        s_refuse_t r = { self, s->name, 0, NULL, { 0 } };
        char reason [32];
        if (!relais_msg_uint (relais_msg_get (root, "mseq"), &r.mseq) || r.mseq == 0) {
            relais_error_set (&err, RELAIS_CODE_INVALID, "mseq", "required, a mseq (uint)");
            goto error;
        }
        if (relais_msg_str_copy (relais_msg_get (root, "reason"), reason, sizeof reason) < 0
        ||  relais_enum_find (s_refuse_reasons, 4, reason) < 0) {
            relais_error_set (&err, RELAIS_CODE_INVALID, "reason",
                              "required, one of capacite, hors_mission, deja_pris, autre");
            goto error;
        }
        r.reason = reason;
        int rc = relais_store_write (self->store, s_write_refuse, &r);
        if (rc == RELAIS_EFATAL)
            relais_fatal ("router refuse", rc);
        if (rc) {
            relais_error_set (&err, RELAIS_CODE_UNAVAILABLE, "", "storage unavailable, retry later");
            goto error;
        }
        if (r.err.code) {
            err = r.err;
            goto error;
        }
        self->stats.refused++;
        relais_notice ("refused partner=%s mseq=%llu reason=%s", s->name,
                       (unsigned long long) r.mseq, reason);
        s_deliver (self, s);
        goto done;
    }
    relais_error_set (&err, RELAIS_CODE_UNKNOWN_OP, "op", "this endpoint serves hello, ack, refuse and ping");
error:
    if (req.identity)
        relais_request_error (poller, &req, &err, NULL, NULL);
done:
    relais_msg_release (&msg);
    relais_request_release (&req);
}

//  ---------------------------------------------------------------------------
//  Erasure and retention of mailbox copies (proto/privacy.md): the personal
//  fields of the bodies are removed, the deliveries stay, then the store is
//  compacted so the bytes are gone from data.mdb too


typedef struct {
    uint8_t key [64];
    size_t klen;
} s_mkey_t;

typedef struct {
    router_server_t *self;
    bool erase;                         //  else purge
    char person [RELAIS_SIG_REF_MAX];
    uint64_t now;
    s_mkey_t *keys;                     //  deliveries to scrub
    size_t count, cap;
    char (*ids) [RELAIS_KEY_MAX];       //  their reports, distinct
    size_t id_count;
} s_scrub_t;

static int
s_scrub_pick (const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    s_scrub_t *sc = (s_scrub_t *) arg;
    if (klen > sizeof sc->keys [0].key)
        return 0;
    relais_msg_t msg;
    s_entry_t e;
    if (s_decode_entry (val, vlen, &msg, &e))
        return 0;
    bool pick = false;
    if (e.body && !relais_msg_get (e.body, "scrubbed_at")) {
        if (sc->erase) {
            const msgpack_object *refs = relais_msg_get (e.body, "person_refs");
            if (refs && refs->type == MSGPACK_OBJECT_ARRAY)
                for (uint32_t i = 0; i < refs->via.array.size && !pick; i++)
                    pick = relais_msg_str_eq (&refs->via.array.ptr [i], sc->person);
        }
        else
            pick = e.state != S_OPEN && e.due + sc->self->retention_acked_us <= sc->now;
    }
    relais_msg_release (&msg);
    if (!pick)
        return 0;
    if (sc->count == sc->cap) {
        size_t cap = sc->cap? 2 * sc->cap: 64;
        void *keys = realloc (sc->keys, cap * sizeof *sc->keys);
        void *ids = realloc (sc->ids, cap * sizeof *sc->ids);
        if (keys)
            sc->keys = (s_mkey_t *) keys;
        if (ids)
            sc->ids = (char (*) [RELAIS_KEY_MAX]) ids;
        if (!keys || !ids)
            return -ENOMEM;
        sc->cap = cap;
    }
    memcpy (sc->keys [sc->count].key, key, klen);
    sc->keys [sc->count++].klen = klen;
    bool seen = false;
    for (size_t i = 0; i < sc->id_count && !seen; i++)
        seen = strcmp (sc->ids [i], e.key) == 0;
    if (!seen)
        snprintf (sc->ids [sc->id_count++], RELAIS_KEY_MAX, "%s", e.key);
    return 0;
}

static int
s_scrub_read (relais_txn_t *txn, void *arg)
{
    return relais_txn_scan (txn, S_DB_MBOX, NULL, 0, s_scrub_pick, arg);
}

//  The body again, with its signal scrubbed and scrubbed_at added
static int
s_scrub_body (const msgpack_object *body, uint64_t now, msgpack_sbuffer *out)
{
    relais_signal_t *sig = (relais_signal_t *) malloc (sizeof *sig);
    if (!sig)
        return -ENOMEM;
    relais_error_t err;
    const msgpack_object *signal = relais_msg_get (body, "signal");
    bool has_signal = signal && relais_signal_parse (signal, "", now, sig, &err) == 0;
    if (has_signal)
        intake_privacy_scrub (sig, NULL, NULL);
    msgpack_packer pk;
    msgpack_packer_init (&pk, out, msgpack_sbuffer_write);
    uint32_t n = 1 + (has_signal? 1: 0);
    for (uint32_t i = 0; i < body->via.map.size; i++) {
        const msgpack_object *k = &body->via.map.ptr [i].key;
        n += !(relais_msg_str_eq (k, "signal") || relais_msg_str_eq (k, "scrubbed_at"));
    }
    msgpack_pack_map (&pk, n);
    for (uint32_t i = 0; i < body->via.map.size; i++) {
        const msgpack_object *k = &body->via.map.ptr [i].key;
        if (relais_msg_str_eq (k, "signal") || relais_msg_str_eq (k, "scrubbed_at"))
            continue;
        relais_pack_object (&pk, k);
        relais_pack_object (&pk, &body->via.map.ptr [i].val);
    }
    //  A signal that does not parse any more is dropped whole
    if (has_signal) {
        relais_pack_str (&pk, "signal");
        relais_signal_pack_full (&pk, sig);
    }
    relais_pack_kv_uint (&pk, "scrubbed_at", now);
    sodium_memzero (sig, sizeof *sig);
    free (sig);
    return 0;
}

static int
s_scrub_write (relais_txn_t *txn, void *arg)
{
    s_scrub_t *sc = (s_scrub_t *) arg;
    int rc = 0;
    for (size_t i = 0; i < sc->count && rc == 0; i++) {
        const void *data;
        size_t size;
        rc = relais_txn_get (txn, S_DB_MBOX, sc->keys [i].key, sc->keys [i].klen, &data, &size);
        if (rc == RELAIS_ENOTFOUND) {
            rc = 0;
            continue;
        }
        relais_msg_t msg;
        s_entry_t e;
        if (rc || (rc = s_decode_entry (data, size, &msg, &e)))
            break;
        if (!e.body) {
            relais_msg_release (&msg);
            continue;
        }
        msgpack_sbuffer body;
        msgpack_sbuffer_init (&body);
        rc = s_scrub_body (e.body, sc->now, &body);
        relais_msg_t bmsg;
        relais_error_t err;
        relais_msg_limits_t limits = S_ENTRY_LIMITS;
        if (rc == 0 && relais_msg_decode (&bmsg, body.data, body.size, &limits, &err) == 0) {
            e.body = &bmsg.root;
            msgpack_sbuffer entry;
            msgpack_sbuffer_init (&entry);
            msgpack_packer pk;
            msgpack_packer_init (&pk, &entry, msgpack_sbuffer_write);
            s_pack_entry (&pk, &e);
            rc = relais_txn_put (txn, S_DB_MBOX, sc->keys [i].key, sc->keys [i].klen,
                                 entry.data, entry.size);
            msgpack_sbuffer_destroy (&entry);
            relais_msg_release (&bmsg);
        }
        else
        if (rc == 0)
            rc = RELAIS_EMALFORMED;
        msgpack_sbuffer_destroy (&body);
        relais_msg_release (&msg);
    }
    return rc;
}

static int
s_scrub_run (router_server_t *self, s_scrub_t *sc, const intake_scrub_args_t *args,
             bool *compacted, relais_error_t *err)
{
    *compacted = false;
    if (relais_store_read (self->store, s_scrub_read, sc))
        return relais_error_set (err, RELAIS_CODE_UNAVAILABLE, "", "storage unavailable, retry later");
    if (intake_scrub_audit (self->audit, sc->now, args, sc->erase, "deliveries", sc->count,
                            (const char *) sc->ids, sizeof *sc->ids, sc->id_count, "report"))
        return relais_error_set (err, RELAIS_CODE_UNAVAILABLE, "", "audit log unavailable, retry later");
    if (args->dry_run || sc->count == 0)
        return 0;
    int rc = relais_store_write (self->store, s_scrub_write, sc);
    if (rc == RELAIS_EFATAL)
        relais_fatal ("router scrub", rc);
    if (rc)
        return relais_error_set (err, RELAIS_CODE_UNAVAILABLE, "", "storage unavailable, retry later");
    size_t before = 0, after = 0;
    rc = relais_store_compact (self->store, &before, &after);
    if (rc == RELAIS_EFATAL)
        relais_fatal ("router compaction", rc);
    *compacted = rc == 0;
    relais_notice ("%s %s%s deliveries=%zu reports=%zu compacted=%s bytes=%zu",
                   sc->erase? "erase": "purge", sc->erase? "person=": "", sc->erase? sc->person: "",
                   sc->count, sc->id_count, *compacted? "yes": "no", after);
    return 0;
}

//  router.erase {person, reason, dry_run?} and router.purge {reason?,
//  dry_run?} on the api endpoint: operations role only (with CURVE).
static void
s_on_scrub_request (router_server_t *self, relais_poller_t *poller, relais_request_t *req,
                    const msgpack_object *root, const msgpack_object *rid, bool erase)
{
    relais_error_t err;
    relais_error_clear (&err);
    s_scrub_t sc = { .self = self, .erase = erase, .now = relais_clock_now () };
    intake_scrub_args_t args;
    bool compacted = false;
    if (intake_scrub_args_read (req, root, erase, &args, &err))
        goto error;
    snprintf (sc.person, sizeof sc.person, "%s", args.person);
    if (s_scrub_run (self, &sc, &args, &compacted, &err))
        goto error;
    msgpack_sbuffer out;
    msgpack_sbuffer_init (&out);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &out, msgpack_sbuffer_write);
    intake_scrub_reply_begin (&pk, 2, rid, "router", &args, erase, sc.id_count, "reports",
                              (const char *) sc.ids, sizeof *sc.ids, sc.id_count);
    relais_pack_kv_uint (&pk, "deliveries", sc.count);
    relais_pack_kv_uint (&pk, "people_removed", 0);
    intake_scrub_reply_end (&pk, &args, compacted);
    relais_request_reply (poller, req, out.data, out.size);
    msgpack_sbuffer_destroy (&out);
    free (sc.keys);
    free (sc.ids);
    return;
error:
    free (sc.keys);
    free (sc.ids);
    relais_request_error (poller, req, &err, NULL, rid);
}

static void
s_on_retention (uv_timer_t *timer)
{
    router_server_t *self = (router_server_t *) timer->data;
    s_scrub_t sc = { .self = self, .erase = false, .now = relais_clock_now () };
    relais_error_t err;
    relais_error_clear (&err);
    bool compacted;
    intake_scrub_args_t job = { .who = "retention-job", .role = "service", .reason = "retention" };
    if (s_scrub_run (self, &sc, &job, &compacted, &err))
        relais_warning ("retention job failed code=%s: retried at the next run", err.code);
    free (sc.keys);
    free (sc.ids);
}

//  ---------------------------------------------------------------------------
//  API: router.explain, router.mailbox

static int
s_box_each (const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    s_box_t *b = (s_box_t *) arg;
    if (klen != b->plen + 9 || memcmp (key, b->partner, b->plen) != 0)
        return 1;
    relais_msg_t msg;
    s_entry_t e;
    if (s_decode_entry (val, vlen, &msg, &e) == 0) {
        if (e.state == S_OPEN)
            b->open++;
        if (e.state == S_OPEN && !e.body)
            b->pending++;
        relais_msg_release (&msg);
    }
    return 0;
}

static int
s_read_box (relais_txn_t *txn, void *arg)
{
    s_box_t *b = (s_box_t *) arg;
    char name [64];
    snprintf (name, sizeof name, "mseq/%s", b->partner);
    int rc = relais_meta_get (txn, name, &b->last);
    snprintf (name, sizeof name, "acked/%s", b->partner);
    if (rc == 0)
        rc = relais_meta_get (txn, name, &b->acked);
    if (rc)
        return rc;
    uint8_t from [64];
    size_t flen = relais_mailbox_key (b->partner, b->acked + 1, from);
    return relais_txn_scan (txn, S_DB_MBOX, from, flen, s_box_each, b);
}

static void
s_pack_box (router_server_t *self, msgpack_packer *pk, const char *partner)
{
    s_box_t b = { partner, 0, 0, 0, 0, strlen (partner) };
    relais_store_read (self->store, s_read_box, &b);
    relais_mailbox_session_t *s = relais_mailbox_by_name (self->mailbox, partner);
    msgpack_pack_map (pk, 7);
    relais_pack_kv_str (pk, "partner", partner);
    relais_pack_kv_uint (pk, "last", b.last);
    relais_pack_kv_uint (pk, "acked", b.acked);
    relais_pack_kv_uint (pk, "open", b.open);
    relais_pack_kv_uint (pk, "pending_body", b.pending);
    relais_pack_kv_bool (pk, "connected", s != NULL);
    relais_pack_kv_uint (pk, "sent", s? s->sent_upto: 0);
}

static void
s_on_api (relais_poller_t *poller, zmsg_t **msg_p, void *arg)
{
    router_server_t *self = (router_server_t *) arg;
    relais_request_t req;
    relais_msg_t msg = { 0 };
    relais_error_t err;
    relais_error_clear (&err);
    const msgpack_object *rid = NULL;
    msgpack_sbuffer out;
    msgpack_sbuffer_init (&out);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &out, msgpack_sbuffer_write);
    if (relais_request_read (msg_p, &req, &msg, &rid, &err))
        goto error;
    const msgpack_object *op = relais_msg_get (&msg.root, "op");
    if (!op || op->type != MSGPACK_OBJECT_STR) {
        relais_error_set (&err, RELAIS_CODE_INVALID, "op", "required: router.explain or router.mailbox");
        goto error;
    }
    if (relais_msg_str_eq (op, "router.mailbox")) {
        const msgpack_object *p = relais_msg_get (&msg.root, "partner");
        char partner [ROUTER_NAME_MAX];
        if (p && (relais_msg_str_copy (p, partner, sizeof partner) < 0 || !s_known (self, partner))) {
            relais_error_set (&err, RELAIS_CODE_NOT_FOUND, "partner", "no rule names this partner");
            goto error;
        }
        msgpack_pack_map (&pk, 2 + (rid != NULL));
        relais_pack_kv_bool (&pk, "ok", true);
        if (rid) {
            relais_pack_str (&pk, "rid");
            relais_pack_object (&pk, rid);
        }
        relais_pack_str (&pk, "partners");
        if (p) {
            msgpack_pack_array (&pk, 1);
            s_pack_box (self, &pk, partner);
        }
        else {
            msgpack_pack_array (&pk, self->known_count);
            for (size_t i = 0; i < self->known_count; i++)
                s_pack_box (self, &pk, self->known [i]);
        }
        relais_request_reply (poller, &req, out.data, out.size);
        goto done;
    }
    if (relais_msg_str_eq (op, "router.explain")) {
        router_report_t report;
        const msgpack_object *view = relais_msg_get (&msg.root, "signal");
        if (router_report_from_view (view, &report)) {
            relais_error_set (&err, RELAIS_CODE_INVALID, "signal",
                              "required: a public view with place.arrondissement 1..20 and level 1 or 2");
            goto error;
        }
        int hour = router_local_hour (relais_clock_now ());
        router_match_t matches [ROUTER_MATCH_MAX];
        size_t n = router_rules_eval (&self->rules, &report, hour, matches, ROUTER_MATCH_MAX);
        msgpack_pack_map (&pk, 3 + (rid != NULL));
        relais_pack_kv_bool (&pk, "ok", true);
        if (rid) {
            relais_pack_str (&pk, "rid");
            relais_pack_object (&pk, rid);
        }
        relais_pack_str (&pk, "rules");
        msgpack_pack_array (&pk, self->rules.count);
        for (size_t i = 0; i < self->rules.count; i++) {
            char why [ROUTER_WHY_MAX];
            bool holds = router_rules_explain (&self->rules, i, &report, hour, why, sizeof why);
            msgpack_pack_map (&pk, 3);
            relais_pack_kv_str (&pk, "rule", self->rules.rules [i].name);
            relais_pack_kv_bool (&pk, "holds", holds);
            relais_pack_kv_str (&pk, "why", why);
        }
        relais_pack_str (&pk, "partners");
        msgpack_pack_array (&pk, n);
        for (size_t i = 0; i < n; i++) {
            msgpack_pack_map (&pk, 4);
            relais_pack_kv_str (&pk, "partner", matches [i].partner);
            relais_pack_kv_str (&pk, "rule", matches [i].rule);
            relais_pack_kv_str (&pk, "fallback", matches [i].fallback);
            relais_pack_kv_uint (&pk, "deadline_us", matches [i].deadline_us);
        }
        relais_request_reply (poller, &req, out.data, out.size);
        goto done;
    }
    if (relais_msg_str_eq (op, "router.erase") || relais_msg_str_eq (op, "router.purge")) {
        s_on_scrub_request (self, poller, &req, &msg.root, rid, relais_msg_str_eq (op, "router.erase"));
        goto done;
    }
    relais_error_set (&err, RELAIS_CODE_UNKNOWN_OP, "op",
                      "this endpoint serves router.explain, router.mailbox, router.erase and router.purge");
error:
    if (req.identity)
        relais_request_error (poller, &req, &err, NULL, rid);
done:
    relais_msg_release (&msg);
    msgpack_sbuffer_destroy (&out);
    relais_request_release (&req);
}

//  ---------------------------------------------------------------------------
//  Tick: pings, silent partners, redelivery, record fetch timeouts

static void
s_on_tick (uv_timer_t *timer)
{
    router_server_t *self = (router_server_t *) timer->data;
    uint64_t now = relais_clock_mono ();
    self->stats.delivered += relais_mailbox_tick (self->mailbox);
    for (s_fetch_t *f = (s_fetch_t *) zhashx_first (self->fetches); f;
         f = (s_fetch_t *) zhashx_next (self->fetches))
        if (now - f->sent_mono > S_FILL_TIMEOUT_US)
            s_fetch_send (self, f);
    s_fill_pump (self);
    static uint64_t ticks;
    if (++ticks % 50 == 0) {
        relais_store_tick (self->store);
        relais_info ("stats assigned=%llu acked=%llu refused=%llu escalated=%llu filled=%llu delivered=%llu",
                     (unsigned long long) self->stats.assigned, (unsigned long long) self->stats.acked,
                     (unsigned long long) self->stats.refused, (unsigned long long) self->stats.escalated,
                     (unsigned long long) self->stats.filled, (unsigned long long) self->stats.delivered);
    }
}

//  ---------------------------------------------------------------------------

static void
s_on_signal (int signum, void *arg)
{
    router_server_stop ((router_server_t *) arg);
}

static void
s_fetch_free (void **item_p)
{
    free (*item_p);
    *item_p = NULL;
}

router_server_t *
router_server_new (uv_loop_t *loop, relais_config_t *config)
{
    router_server_t *self = (router_server_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->loop = loop;
    self->config = config;
    char why [256];
    if (router_rules_load (&self->rules, config, why, sizeof why)) {
        relais_error ("%s: %s", relais_config_file (config), why);
        free (self);
        return NULL;
    }
    self->fetches = zhashx_new ();
    zhashx_set_destructor (self->fetches, s_fetch_free);
    self->hb_us = relais_config_duration_ms (config, "router/partner_heartbeat", 1000) * 1000;
    if (self->hb_us == 0)
        self->hb_us = 1000000;
    self->retention_acked_us = relais_config_duration_ms (config, "router/retention/acked",
                                                          30ULL * 86400000) * 1000;
    relais_mailbox_opts_t opts = {
        .what = "partner",
        .name_field = "partner",
        .db = S_DB_MBOX,
        .acked_prefix = "acked/",
        .heartbeat_us = self->hb_us,
        .redeliver_us = relais_config_duration_ms (config, "router/redeliver", 10000) * 1000,
        .window = (uint32_t) relais_config_int (config, "router/window", 32),
        .pack = s_pack_delivery,
        .pack_arg = self,
    };
    self->mailbox = relais_mailbox_new (&opts);
    if (!self->mailbox) {
        router_server_destroy (&self);
        return NULL;
    }
    s_learn_partners (self);
    return self;
}


int
router_server_start (router_server_t *self)
{
    relais_config_t *config = self->config;
    char *store_path = relais_config_path (config, "router/store/path");
    int rc = -EINVAL;
    if (!store_path)
        goto failed;
    relais_store_opts_t opts = {
        relais_config_size (config, "router/store/map_size", 64 << 20),
        relais_config_size (config, "router/store/map_max", 64ULL << 30),
        s_dbs,
        relais_config_size (config, "router/store/wal_size", 4 << 20)
    };
    self->store = relais_store_new (store_path, &opts);
    if (!self->store)
        goto failed;
    char *audit_path = relais_config_path (config, "router/audit_file");
    char *audit_key = relais_config_path (config, "router/audit_key_file");
    self->audit = audit_path && audit_key? relais_audit_open (audit_path, audit_key): NULL;
    free (audit_path);
    free (audit_key);
    rc = -EACCES;
    if (!self->audit)
        goto failed;
    rc = -EADDRINUSE;
    relais_pub_opts_t pub_opts = {
        .name = "router",
        .pub_endpoint = relais_config_str (config, "router/pub"),
        .fetch_endpoint = relais_config_str (config, "router/fetch"),
        .heartbeat_ms = relais_config_duration_ms (config, "router/heartbeat", 1000),
    };
    self->pub = relais_pub_new (self->loop, self->store, &pub_opts);
    if (!self->pub)
        goto failed;
    relais_store_hook (self->store, NULL, s_on_commit, NULL, self);
    zsock_t *partners = relais_sock_new (ZMQ_ROUTER, relais_config_str (config, "router/partners"),
                                         RELAIS_SOCK_BIND, RELAIS_MSG_MAX_BYTES);
    if (!partners)
        goto failed;
    zsock_set_router_mandatory (partners, 1);
    self->partners = relais_poller_new (self->loop, &partners, 256, s_on_partner, NULL, self);
    relais_mailbox_attach (self->mailbox, self->store, self->partners);
    zsock_t *api = relais_sock_new (ZMQ_ROUTER, relais_config_str (config, "router/api"),
                                    RELAIS_SOCK_BIND, RELAIS_MSG_MAX_BYTES);
    if (!api)
        goto failed;
    self->api = relais_poller_new (self->loop, &api, 64, s_on_api, NULL, self);
    zsock_t *records = relais_sock_new (ZMQ_DEALER, relais_config_str (config, "intake/records"),
                                        RELAIS_SOCK_CONNECT, 0);
    if (!records)
        goto failed;
    self->records = relais_poller_new (self->loop, &records, S_READY_MAX, s_on_record,
                                        s_on_record_batch, self);
    uv_timer_init (self->loop, &self->due_timer);
    uv_timer_init (self->loop, &self->tick);
    uv_timer_init (self->loop, &self->kick);
    uv_timer_init (self->loop, &self->retention);
    self->due_timer.data = self->tick.data = self->kick.data = self->retention.data = self;
    self->timers_open = true;
    uint64_t every = relais_config_duration_ms (config, "router/retention/every", 86400000);
    every = every? every: 86400000;
    uv_timer_start (&self->retention, s_on_retention, every, every);
    relais_sub_opts_t sub_opts = {
        .heartbeat_ms = relais_config_duration_ms (config, "intake/heartbeat", 1000),
    };
    self->sub = relais_sub_new (self->loop, self->store, &sub_opts, s_apply, self);
    static const char *const topics [] = { "signal.", NULL };
    if (!self->sub
    ||  relais_sub_add (self->sub, "intake", relais_config_str (config, "intake/pub"),
                        relais_config_str (config, "intake/fetch"), topics)
    ||  relais_sub_start (self->sub))
        goto failed;
    relais_pub_attach_sub (self->pub, self->sub);
    self->signals = relais_signals_new (self->loop, s_on_signal, self);
    uint64_t tick_ms = self->hb_us / 1000 / 2;
    uv_timer_start (&self->tick, s_on_tick, tick_ms? tick_ms: 1, tick_ms? tick_ms: 1);
    s_fill_pump (self);
    s_arm_due (self);
    relais_notice ("ready partners=%s api=%s rules=%zu store=%s last=%llu",
                   relais_config_str (config, "router/partners"),
                   relais_config_str (config, "router/api"), self->rules.count, store_path,
                   (unsigned long long) relais_pub_last (self->pub));
    free (store_path);
    return 0;

failed:
    free (store_path);
    router_server_stop (self);
    return rc;
}

void
router_server_stop (router_server_t *self)
{
    relais_sub_close (&self->sub);
    relais_mailbox_attach (self->mailbox, NULL, NULL);
    relais_poller_close (&self->partners);
    relais_poller_close (&self->api);
    relais_poller_close (&self->records);
    relais_pub_close (&self->pub);
    relais_signals_close (&self->signals);
    if (self->timers_open) {
        uv_timer_stop (&self->due_timer);
        uv_timer_stop (&self->tick);
        uv_timer_stop (&self->kick);
        uv_timer_stop (&self->retention);
        uv_close ((uv_handle_t *) &self->retention, NULL);
        uv_close ((uv_handle_t *) &self->due_timer, NULL);
        uv_close ((uv_handle_t *) &self->tick, NULL);
        uv_close ((uv_handle_t *) &self->kick, NULL);
        self->timers_open = false;
    }
}

void
router_server_destroy (router_server_t **self_p)
{
    router_server_t *self = *self_p;
    if (!self)
        return;
    *self_p = NULL;
    relais_mailbox_destroy (&self->mailbox);
    zhashx_destroy (&self->fetches);
    for (size_t i = 0; i < self->ready_count; i++) {
        s_fill_t *fill = (s_fill_t *) self->ready [i];
        relais_msg_release (&fill->msg);
        zframe_destroy (&fill->frame);
        free (fill);
    }
    relais_store_destroy (&self->store);
    relais_audit_destroy (&self->audit);
    for (size_t i = 0; i < self->known_count; i++)
        free (self->known [i]);
    free (self->known);
    free (self);
}
