/*  =========================================================================
    plans_engine - the action plans of level-2 situations (see plans_engine.h)
    =========================================================================
*/
#include "plans_engine.h"
#include "cli_json.h"
#include "relais_log.h"
#include "relais_msg.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

const relais_config_key_t plans_keys [] = {
    { "pub", "tcp://127.0.0.1:7120", relais_check_endpoint, "PUB of plans' events (plan.*)" },
    { "fetch", "tcp://127.0.0.1:7121", relais_check_endpoint, "ROUTER for fetch (catch-up) and status" },
    { "api", "tcp://127.0.0.1:7122", relais_check_endpoint, "ROUTER of the plans.* operations (CLI, gateway)" },
    { "heartbeat", "1s", relais_check_duration, "heartbeat interval on PUB; also the sources' interval" },
    { "store/path", "plans", relais_check_path, "LMDB folder (relative: under relais/data)" },
    { "store/map_size", "64M", relais_check_size, "initial LMDB map size; grows on demand" },
    { "store/map_max", "16G", relais_check_size, "cap of the LMDB map" },
    { "store/wal_size", "4M", relais_check_size, "write-ahead log file, 64K to 256M: an ack flushes one record there; full, it is checkpointed into LMDB" },
    { "stale_after", "3d", relais_check_duration, "plan.stale after this long without activity (0: never)" },
    { "overdue_check", "30s", relais_check_duration, "longest wait between two deadline checks" },
    { "reopen_window", "30d", relais_check_duration, "a report on a plan closed less than this ago reopens it" },
    { "retention/closed", "90d", relais_check_duration, "notes and flag reasons of a plan closed this long ago are removed" },
    { "retention/every", "1d", relais_check_duration, "the retention job runs this often (and on demand: relais purge)" },
    { "audit_file", "plans-audit.log", relais_check_path, "append-only log of erasures and purges (relative: under relais/data)" },
    { "audit_key_file", "plans-audit.key", relais_check_path, "key of the audit chain's MACs (created at first start, mode 0600)" },
    { NULL, NULL, NULL, NULL }
};

const char *const plans_dbs [] = { "plans", "signals", "index", "due", "history", "idem", NULL };
enum { S_DB_PLANS, S_DB_SIGNALS, S_DB_INDEX, S_DB_DUE, S_DB_HISTORY, S_DB_IDEM };

const char *const plans_state_names [PLANS_STATES + 1] = { "ouvert", "en_cours", "clos", NULL };
const char *const plans_astate_names [PLANS_ASTATES + 1] = { "a_faire", "en_cours", "fait", "annule", NULL };
const char *const plans_kind_names [] = {
    "evaluation", "maraude", "mise_a_l_abri", "orientation", "acces_droits", "soins",
    "protection_enfance", "mediation", "autre", NULL
};
const char *const plans_outcome_names [] = {
    "mise_a_l_abri", "orientation", "sortie_de_rue", "refus", "perdu_de_vue", "autre", NULL
};

#define S_SIG_REFS      20
#define S_SIG_PARTNERS  16
#define S_TICK_BATCH    256
#define S_LIST_DEFAULT  100
#define S_LIST_MAX      1000
#define S_HISTORY_MAX   2000
#define S_SIG_EARLY     32

//  A route event that reached plans before its report was in a plan: kept
//  whole, and replayed into the plan's history (at its own time) when the
//  report is placed, exactly as if it had come after.
typedef struct {
    char what [24];                     //  routed, route_acknowledged, ...
    char partner [PLANS_PARTNER_MAX];
    char reason [32];
    char fallback [PLANS_PARTNER_MAX];
    char corr [64];                     //  RELAIS_KEY_MAX
    uint64_t ts;
} s_early_t;

typedef struct {
    char id [PLANS_ID_MAX];
    bool known;                         //  signal.created seen (else a stub from route.*)
    uint32_t level, arrondissement;
    char kind [24];
    char cell [PLANS_CELL_MAX];
    char reasons [PLANS_REASONS_MAX][32];
    size_t reason_count;
    char refs [S_SIG_REFS][32];
    size_t ref_count;
    char partners [S_SIG_PARTNERS][PLANS_PARTNER_MAX];
    size_t partner_count;
    char plan [PLANS_ID_MAX];           //  "" when in no plan
    s_early_t early [S_SIG_EARLY];      //  route events before the plan, in order
    size_t early_count;
} s_sig_t;

struct plans_engine_t {
    char caller [64];                   //  CURVE identity of the current op ("": off)
    relais_store_t *store;
    plans_rules_t rules;
    plans_emit_fn *emit;
    void *arg;
    int db [6];
    plans_stats_t stats;
};

static const relais_msg_limits_t s_stored_limits = { 8 << 20, 8, 1 << 20 };

//  ---------------------------------------------------------------------------
//  Small helpers

static int
s_find (const char *const *table, const char *name)
{
    for (int i = 0; table [i]; i++)
        if (strcmp (table [i], name) == 0)
            return i;
    return -1;
}

static void
s_join (const char *const *table, char *buf, size_t size)
{
    size_t n = 0;
    buf [0] = 0;
    for (int i = 0; table [i] && n < size; i++)
        n += (size_t) snprintf (buf + n, size - n, "%s%s", i? ", ": "", table [i]);
}

static void
s_copy (const msgpack_object *o, char *buf, size_t size)
{
    if (relais_msg_str_copy (o, buf, size) < 0)
        buf [0] = 0;
}

static uint64_t
s_uint (const msgpack_object *map, const char *key)
{
    uint64_t value = 0;
    relais_msg_uint (relais_msg_get (map, key), &value);
    return value;
}

static bool
s_bool (const msgpack_object *map, const char *key)
{
    const msgpack_object *o = relais_msg_get (map, key);
    return o && o->type == MSGPACK_OBJECT_BOOLEAN && o->via.boolean;
}

//  Add text to a list of fixed strings unless present. Returns 1 when
//  added, 0 when present or the list is full.
static int
s_list_add (char *list, size_t width, size_t *count, size_t max, const char *text)
{
    for (size_t i = 0; i < *count; i++)
        if (strcmp (list + i * width, text) == 0)
            return 0;
    if (*count == max || strlen (text) >= width)
        return 0;
    snprintf (list + *count * width, width, "%s", text);
    (*count)++;
    return 1;
}

#define S_LIST_ADD(array, count, text) \
    s_list_add ((char *) (array), sizeof (array) [0], &(count), \
                sizeof (array) / sizeof (array) [0], (text))

static void
s_unpack_list (const msgpack_object *arr, char *list, size_t width, size_t *count, size_t max)
{
    *count = 0;
    if (!arr || arr->type != MSGPACK_OBJECT_ARRAY)
        return;
    for (uint32_t i = 0; i < arr->via.array.size && *count < max; i++)
        if (relais_msg_str_copy (&arr->via.array.ptr [i], list + *count * width, width) > 0)
            (*count)++;
}

#define S_UNPACK_LIST(obj, array, count) \
    s_unpack_list ((obj), (char *) (array), sizeof (array) [0], &(count), \
                   sizeof (array) / sizeof (array) [0])

static void
s_pack_list (msgpack_packer *pk, const char *list, size_t width, size_t count)
{
    msgpack_pack_array (pk, count);
    for (size_t i = 0; i < count; i++)
        relais_pack_str (pk, list + i * width);
}

#define S_PACK_LIST(pk, array, count) \
    s_pack_list ((pk), (const char *) (array), sizeof (array) [0], (count))

static void
s_reset (msgpack_sbuffer *sbuf)
{
    sbuf->size = 0;
}

//  ---------------------------------------------------------------------------
//  State machines

static const bool s_plan_moves [PLANS_STATES][PLANS_STATES] = {
    //              ouvert  en_cours  clos
    /* ouvert   */ { false, true,     true },
    /* en_cours */ { false, false,    true },
    /* clos     */ { false, false,    false }     //  only plans.reopen leaves clos
};

static const bool s_action_moves [PLANS_ASTATES][PLANS_ASTATES] = {
    //              a_faire en_cours fait  annule
    /* a_faire  */ { false, true,    true, true },
    /* en_cours */ { false, false,   true, true },
    /* fait     */ { false, false,   false, false },
    /* annule   */ { false, false,   false, false }
};

static bool
s_allowed (const bool *row, int count, const char *const *names, int to,
           char *allowed, size_t size)
{
    size_t n = 0;
    allowed [0] = 0;
    for (int i = 0; i < count && n < size; i++)
        if (row [i])
            n += (size_t) snprintf (allowed + n, size - n, "%s%s", n? ", ": "", names [i]);
    if (n == 0)
        snprintf (allowed, size, "none");
    return to >= 0 && to < count && row [to];
}

bool
plans_state_allowed (int from, int to, char *allowed, size_t size)
{
    return s_allowed (s_plan_moves [from], PLANS_STATES, plans_state_names, to, allowed, size);
}

bool
plans_astate_allowed (int from, int to, char *allowed, size_t size)
{
    return s_allowed (s_action_moves [from], PLANS_ASTATES, plans_astate_names, to, allowed, size);
}

static bool
s_pending (const plans_action_t *action)
{
    return action->state == PLANS_A_FAIRE || action->state == PLANS_A_EN_COURS;
}

//  ---------------------------------------------------------------------------
//  Records

static void
s_pack_action (msgpack_packer *pk, const plans_action_t *a)
{
    msgpack_pack_map (pk, 8);
    relais_pack_kv_uint (pk, "id", a->id);
    relais_pack_kv_str (pk, "kind", plans_kind_names [a->kind]);
    relais_pack_kv_str (pk, "owner", a->owner);
    relais_pack_kv_uint (pk, "due", a->due);
    relais_pack_kv_str (pk, "state", plans_astate_names [a->state]);
    relais_pack_kv_uint (pk, "created_at", a->created_at);
    relais_pack_kv_uint (pk, "updated_at", a->updated_at);
    relais_pack_kv_bool (pk, "overdue", a->overdue);
}

static void
s_pack_plan (msgpack_packer *pk, const plans_plan_t *p)
{
    msgpack_pack_map (pk, 23);
    relais_pack_kv_uint (pk, "v", 1);
    relais_pack_kv_str (pk, "id", p->id);
    relais_pack_kv_str (pk, "state", plans_state_names [p->state]);
    relais_pack_kv_str (pk, "outcome", p->outcome >= 0? plans_outcome_names [p->outcome]: "");
    relais_pack_kv_str (pk, "structure", p->structure);
    relais_pack_kv_uint (pk, "level", p->level);
    relais_pack_kv_uint (pk, "arrondissement", p->arrondissement);
    relais_pack_kv_str (pk, "place_kind", p->place_kind);
    relais_pack_kv_str (pk, "cell", p->cell);
    relais_pack_str (pk, "reasons");
    S_PACK_LIST (pk, p->reasons, p->reason_count);
    relais_pack_str (pk, "signals");
    S_PACK_LIST (pk, p->signals, p->signal_count);
    relais_pack_kv_uint (pk, "signal_total", p->signal_total);
    relais_pack_str (pk, "actors");
    S_PACK_LIST (pk, p->actors, p->actor_count);
    relais_pack_str (pk, "person_refs");
    S_PACK_LIST (pk, p->refs, p->ref_count);
    relais_pack_str (pk, "actions");
    msgpack_pack_array (pk, p->action_count);
    for (size_t i = 0; i < p->action_count; i++)
        s_pack_action (pk, &p->actions [i]);
    relais_pack_kv_bool (pk, "flagged", p->flagged);
    relais_pack_kv_str (pk, "flag_reason", p->flag_reason);
    relais_pack_kv_uint (pk, "opened_at", p->opened_at);
    relais_pack_kv_uint (pk, "updated_at", p->updated_at);
    relais_pack_kv_uint (pk, "closed_at", p->closed_at);
    relais_pack_kv_uint (pk, "last_activity", p->last_activity);
    relais_pack_kv_uint (pk, "stale_mark", p->stale_mark);
    relais_pack_kv_uint (pk, "history", p->history);
}

static int
s_unpack_plan (const msgpack_object *root, plans_plan_t *p)
{
    if (root->type != MSGPACK_OBJECT_MAP || s_uint (root, "v") != 1)
        return RELAIS_EMALFORMED;
    memset (p, 0, sizeof *p);
    s_copy (relais_msg_get (root, "id"), p->id, sizeof p->id);
    char text [64];
    s_copy (relais_msg_get (root, "state"), text, sizeof text);
    p->state = s_find (plans_state_names, text);
    if (p->state < 0 || !p->id [0])
        return RELAIS_EMALFORMED;
    s_copy (relais_msg_get (root, "outcome"), text, sizeof text);
    p->outcome = s_find (plans_outcome_names, text);
    s_copy (relais_msg_get (root, "structure"), p->structure, sizeof p->structure);
    p->level = (uint32_t) s_uint (root, "level");
    p->arrondissement = (uint32_t) s_uint (root, "arrondissement");
    s_copy (relais_msg_get (root, "place_kind"), p->place_kind, sizeof p->place_kind);
    s_copy (relais_msg_get (root, "cell"), p->cell, sizeof p->cell);
    S_UNPACK_LIST (relais_msg_get (root, "reasons"), p->reasons, p->reason_count);
    S_UNPACK_LIST (relais_msg_get (root, "signals"), p->signals, p->signal_count);
    p->signal_total = s_uint (root, "signal_total");
    S_UNPACK_LIST (relais_msg_get (root, "actors"), p->actors, p->actor_count);
    S_UNPACK_LIST (relais_msg_get (root, "person_refs"), p->refs, p->ref_count);
    const msgpack_object *actions = relais_msg_get (root, "actions");
    if (actions && actions->type == MSGPACK_OBJECT_ARRAY)
        for (uint32_t i = 0; i < actions->via.array.size && p->action_count < PLANS_ACTIONS_MAX; i++) {
            const msgpack_object *o = &actions->via.array.ptr [i];
            plans_action_t *a = &p->actions [p->action_count];
            a->id = (uint32_t) s_uint (o, "id");
            s_copy (relais_msg_get (o, "kind"), text, sizeof text);
            a->kind = s_find (plans_kind_names, text);
            s_copy (relais_msg_get (o, "owner"), a->owner, sizeof a->owner);
            a->due = s_uint (o, "due");
            s_copy (relais_msg_get (o, "state"), text, sizeof text);
            a->state = s_find (plans_astate_names, text);
            a->created_at = s_uint (o, "created_at");
            a->updated_at = s_uint (o, "updated_at");
            a->overdue = s_bool (o, "overdue");
            if (a->kind < 0 || a->state < 0 || a->id == 0)
                return RELAIS_EMALFORMED;
            p->action_count++;
        }
    p->flagged = s_bool (root, "flagged");
    s_copy (relais_msg_get (root, "flag_reason"), p->flag_reason, sizeof p->flag_reason);
    p->opened_at = s_uint (root, "opened_at");
    p->updated_at = s_uint (root, "updated_at");
    p->closed_at = s_uint (root, "closed_at");
    p->last_activity = s_uint (root, "last_activity");
    p->stale_mark = s_uint (root, "stale_mark");
    p->history = s_uint (root, "history");
    return 0;
}

int
plans_engine_load (plans_engine_t *self, relais_txn_t *txn, const char *id, plans_plan_t *plan)
{
    const void *data;
    size_t size;
    int rc = relais_txn_get (txn, self->db [S_DB_PLANS], id, strlen (id), &data, &size);
    if (rc)
        return rc;
    relais_msg_t msg;
    relais_error_t err;
    if (relais_msg_decode (&msg, data, size, &s_stored_limits, &err))
        return RELAIS_EMALFORMED;
    rc = s_unpack_plan (&msg.root, plan);
    relais_msg_release (&msg);
    return rc;
}

static int
s_save_plan (plans_engine_t *self, relais_txn_t *txn, const plans_plan_t *plan)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    s_pack_plan (&pk, plan);
    int rc = relais_txn_put (txn, self->db [S_DB_PLANS], plan->id, strlen (plan->id),
                             sbuf.data, sbuf.size);
    msgpack_sbuffer_destroy (&sbuf);
    return rc;
}

static int
s_load_sig (plans_engine_t *self, relais_txn_t *txn, const char *id, s_sig_t *sig)
{
    memset (sig, 0, sizeof *sig);
    snprintf (sig->id, sizeof sig->id, "%s", id);
    const void *data;
    size_t size;
    int rc = relais_txn_get (txn, self->db [S_DB_SIGNALS], id, strlen (id), &data, &size);
    if (rc)
        return rc;
    relais_msg_t msg;
    relais_error_t err;
    if (relais_msg_decode (&msg, data, size, &s_stored_limits, &err))
        return RELAIS_EMALFORMED;
    const msgpack_object *root = &msg.root;
    sig->known = s_bool (root, "known");
    sig->level = (uint32_t) s_uint (root, "level");
    sig->arrondissement = (uint32_t) s_uint (root, "arrondissement");
    s_copy (relais_msg_get (root, "kind"), sig->kind, sizeof sig->kind);
    s_copy (relais_msg_get (root, "cell"), sig->cell, sizeof sig->cell);
    S_UNPACK_LIST (relais_msg_get (root, "reasons"), sig->reasons, sig->reason_count);
    S_UNPACK_LIST (relais_msg_get (root, "refs"), sig->refs, sig->ref_count);
    S_UNPACK_LIST (relais_msg_get (root, "partners"), sig->partners, sig->partner_count);
    s_copy (relais_msg_get (root, "plan"), sig->plan, sizeof sig->plan);
    const msgpack_object *early = relais_msg_get (root, "early");
    for (uint32_t i = 0; early && early->type == MSGPACK_OBJECT_ARRAY
                      && i < early->via.array.size && sig->early_count < S_SIG_EARLY; i++) {
        const msgpack_object *e = &early->via.array.ptr [i];
        if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 6)
            continue;
        s_early_t *x = &sig->early [sig->early_count++];
        s_copy (&e->via.array.ptr [0], x->what, sizeof x->what);
        s_copy (&e->via.array.ptr [1], x->partner, sizeof x->partner);
        s_copy (&e->via.array.ptr [2], x->reason, sizeof x->reason);
        s_copy (&e->via.array.ptr [3], x->fallback, sizeof x->fallback);
        relais_msg_uint (&e->via.array.ptr [4], &x->ts);
        s_copy (&e->via.array.ptr [5], x->corr, sizeof x->corr);
    }
    relais_msg_release (&msg);
    return 0;
}

static int
s_save_sig (plans_engine_t *self, relais_txn_t *txn, const s_sig_t *sig)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 11);
    relais_pack_kv_uint (&pk, "v", 1);
    relais_pack_kv_bool (&pk, "known", sig->known);
    relais_pack_kv_uint (&pk, "level", sig->level);
    relais_pack_kv_uint (&pk, "arrondissement", sig->arrondissement);
    relais_pack_kv_str (&pk, "kind", sig->kind);
    relais_pack_kv_str (&pk, "cell", sig->cell);
    relais_pack_str (&pk, "reasons");
    S_PACK_LIST (&pk, sig->reasons, sig->reason_count);
    relais_pack_str (&pk, "refs");
    S_PACK_LIST (&pk, sig->refs, sig->ref_count);
    relais_pack_str (&pk, "partners");
    S_PACK_LIST (&pk, sig->partners, sig->partner_count);
    relais_pack_kv_str (&pk, "plan", sig->plan);
    relais_pack_str (&pk, "early");
    msgpack_pack_array (&pk, sig->early_count);
    for (size_t i = 0; i < sig->early_count; i++) {
        const s_early_t *x = &sig->early [i];
        msgpack_pack_array (&pk, 6);
        relais_pack_str (&pk, x->what);
        relais_pack_str (&pk, x->partner);
        relais_pack_str (&pk, x->reason);
        relais_pack_str (&pk, x->fallback);
        msgpack_pack_uint64 (&pk, x->ts);
        relais_pack_str (&pk, x->corr);
    }
    int rc = relais_txn_put (txn, self->db [S_DB_SIGNALS], sig->id, strlen (sig->id),
                             sbuf.data, sbuf.size);
    msgpack_sbuffer_destroy (&sbuf);
    return rc;
}

//  ---------------------------------------------------------------------------
//  History: append-only, key = plan id + event time + entry number (both
//  big-endian), so that it reads in the order things happened, whatever
//  the order in which the sources' events reached plans

typedef struct {
    const char *signal, *partner, *state, *previous, *outcome, *structure, *text, *kind;
    uint64_t action, due;
    int flagged;                    //  0: absent, 1: false, 2: true
} s_hist_t;

#define S_HIST(...) (&(s_hist_t) { __VA_ARGS__ })

static int
s_history (plans_engine_t *self, relais_txn_t *txn, plans_plan_t *plan, uint64_t at,
           const char *by, const char *what, const s_hist_t *h)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    const char *keys [] = { "signal", "partner", "state", "previous", "outcome", "structure",
                            "text", "kind" };
    const char *values [] = { h->signal, h->partner, h->state, h->previous, h->outcome,
                              h->structure, h->text, h->kind };
    size_t n = 3 + (h->action > 0) + (h->due > 0) + (h->flagged > 0);
    for (size_t i = 0; i < 8; i++)
        n += values [i] && *values [i];
    msgpack_pack_map (&pk, n);
    relais_pack_kv_uint (&pk, "at", at);
    relais_pack_kv_str (&pk, "by", by);
    relais_pack_kv_str (&pk, "what", what);
    for (size_t i = 0; i < 8; i++)
        if (values [i] && *values [i])
            relais_pack_kv_str (&pk, keys [i], values [i]);
    if (h->action > 0)
        relais_pack_kv_uint (&pk, "action", h->action);
    if (h->due > 0)
        relais_pack_kv_uint (&pk, "due", h->due);
    if (h->flagged > 0)
        relais_pack_kv_bool (&pk, "flagged", h->flagged != 0);
    uint8_t key [PLANS_ID_MAX + 16];
    size_t idlen = strlen (plan->id);
    memcpy (key, plan->id, idlen);
    relais_u64_to_key (at, key + idlen);
    relais_u64_to_key (++plan->history, key + idlen + 8);
    int rc = relais_txn_put (txn, self->db [S_DB_HISTORY], key, idlen + 16, sbuf.data, sbuf.size);
    msgpack_sbuffer_destroy (&sbuf);
    return rc;
}

//  The plan changed at "at": activity starts a new quiet period.
static void
s_touch (plans_plan_t *plan, uint64_t at)
{
    if (at > plan->updated_at)
        plan->updated_at = at;
    if (at > plan->last_activity)
        plan->last_activity = at;
}

//  ---------------------------------------------------------------------------
//  Due dates: key = due (8) + action (4) + plan id, so a cursor from the
//  start meets them in due order.

static size_t
s_due_key (uint8_t *key, const char *plan, const plans_action_t *a)
{
    relais_u64_to_key (a->due, key);
    key [8] = (uint8_t) (a->id >> 24);
    key [9] = (uint8_t) (a->id >> 16);
    key [10] = (uint8_t) (a->id >> 8);
    key [11] = (uint8_t) a->id;
    size_t idlen = strlen (plan);
    memcpy (key + 12, plan, idlen);
    return 12 + idlen;
}

static int
s_due_set (plans_engine_t *self, relais_txn_t *txn, const char *plan, const plans_action_t *a)
{
    uint8_t key [12 + PLANS_ID_MAX];
    size_t klen = s_due_key (key, plan, a);
    return relais_txn_put (txn, self->db [S_DB_DUE], key, klen, "1", 1);
}

static int
s_due_del (plans_engine_t *self, relais_txn_t *txn, const char *plan, const plans_action_t *a)
{
    uint8_t key [12 + PLANS_ID_MAX];
    size_t klen = s_due_key (key, plan, a);
    int rc = relais_txn_del (txn, self->db [S_DB_DUE], key, klen);
    return rc == RELAIS_ENOTFOUND? 0: rc;
}

//  Arm (or disarm) the due entries of every pending action of plan.
static int
s_due_all (plans_engine_t *self, relais_txn_t *txn, const plans_plan_t *plan, bool arm)
{
    for (size_t i = 0; i < plan->action_count; i++) {
        const plans_action_t *a = &plan->actions [i];
        if (!s_pending (a) || a->overdue)
            continue;
        int rc = arm? s_due_set (self, txn, plan->id, a): s_due_del (self, txn, plan->id, a);
        if (rc)
            return rc;
    }
    return 0;
}

//  ---------------------------------------------------------------------------
//  Events

static int
s_emit (plans_engine_t *self, relais_txn_t *txn, const char *type, const plans_plan_t *plan,
        const char *corr, uint64_t ts, msgpack_sbuffer *body)
{
    return self->emit (txn, type, plan->id, corr && *corr? corr: NULL, ts,
                       body->data, body->size, self->arg);
}

#define S_BODY_BEGIN \
    msgpack_sbuffer body; \
    msgpack_sbuffer_init (&body); \
    msgpack_packer pk; \
    msgpack_packer_init (&pk, &body, msgpack_sbuffer_write)

#define S_BODY_EMIT(type, plan, corr, ts) do { \
    int emit_rc_ = s_emit (self, txn, (type), (plan), (corr), (ts), &body); \
    msgpack_sbuffer_destroy (&body); \
    if (emit_rc_) return emit_rc_; \
} while (0)

static int
s_emit_actors (plans_engine_t *self, relais_txn_t *txn, const plans_plan_t *plan,
               const char *signal, const char *corr, uint64_t ts)
{
    S_BODY_BEGIN;
    msgpack_pack_map (&pk, signal? 2: 1);
    if (signal)
        relais_pack_kv_str (&pk, "signal", signal);
    relais_pack_str (&pk, "actors");
    S_PACK_LIST (&pk, plan->actors, plan->actor_count);
    S_BODY_EMIT ("plan.updated", plan, corr, ts);
    return 0;
}

static int
s_emit_state (plans_engine_t *self, relais_txn_t *txn, const plans_plan_t *plan,
              const char *corr, uint64_t ts)
{
    S_BODY_BEGIN;
    msgpack_pack_map (&pk, 1);
    relais_pack_kv_str (&pk, "state", plans_state_names [plan->state]);
    S_BODY_EMIT ("plan.updated", plan, corr, ts);
    return 0;
}

//  Add a partner to the plan's actors; raise plan.updated when new.
static int
s_add_actor (plans_engine_t *self, relais_txn_t *txn, plans_plan_t *plan, const char *partner,
             const char *by, const char *corr, uint64_t ts)
{
    if (!*partner || !S_LIST_ADD (plan->actors, plan->actor_count, partner))
        return 0;
    s_touch (plan, ts);
    int rc = s_history (self, txn, plan, ts, by, "actor_added", S_HIST (.partner = partner));
    return rc? rc: s_emit_actors (self, txn, plan, NULL, corr, ts);
}

//  One route event's effect on the plan of its report: its history entry at
//  the event's own time, and the partner (or the fallback it escalated to)
//  as an actor. emit: publish plan.updated for a new actor; false while a
//  plan opens (plan.opened lists the actors) or a report attaches (one
//  plan.updated follows).
static int
s_route_into_plan (plans_engine_t *self, relais_txn_t *txn, plans_plan_t *plan,
                   const char *sig_id, const s_early_t *e, bool emit)
{
    s_touch (plan, e->ts);
    int rc = s_history (self, txn, plan, e->ts, "router", e->what,
                        S_HIST (.signal = sig_id, .partner = e->partner, .outcome = e->reason,
                                .structure = e->fallback));
    const char *actors [2] = {
        strcmp (e->what, "routed") == 0? e->partner: "",
        strcmp (e->what, "route_escalated") == 0? e->fallback: ""
    };
    for (int i = 0; rc == 0 && i < 2; i++) {
        if (!*actors [i])
            continue;
        if (emit)
            rc = s_add_actor (self, txn, plan, actors [i], "router", e->corr, e->ts);
        else
        if (S_LIST_ADD (plan->actors, plan->actor_count, actors [i]))
            rc = s_history (self, txn, plan, e->ts, "router", "actor_added",
                            S_HIST (.partner = actors [i]));
    }
    return rc;
}

//  Replay the route events that came before sig was placed, then the
//  partners beyond the early buffer (kept as actors only).
static int
s_replay_early (plans_engine_t *self, relais_txn_t *txn, plans_plan_t *plan, s_sig_t *sig,
                uint64_t ts)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sig->early_count; i++)
        rc = s_route_into_plan (self, txn, plan, sig->id, &sig->early [i], false);
    for (size_t i = 0; rc == 0 && i < sig->partner_count; i++)
        if (S_LIST_ADD (plan->actors, plan->actor_count, sig->partners [i]))
            rc = s_history (self, txn, plan, ts, "router", "actor_added",
                            S_HIST (.partner = sig->partners [i]));
    sig->early_count = 0;
    return rc;
}

//  ---------------------------------------------------------------------------
//  Attachment

static void
s_place_key (const s_sig_t *sig, char *key, size_t size)
{
    if (sig->cell [0])
        snprintf (key, size, "C:%s", sig->cell);
    else
        snprintf (key, size, "A:%u:%s", sig->arrondissement, sig->kind [0]? sig->kind: "autre");
}

static int
s_index_set (plans_engine_t *self, relais_txn_t *txn, const s_sig_t *sig, const char *plan)
{
    char key [64];
    s_place_key (sig, key, sizeof key);
    int rc = relais_txn_put (txn, self->db [S_DB_INDEX], key, strlen (key), plan, strlen (plan));
    for (size_t i = 0; rc == 0 && i < sig->ref_count; i++) {
        snprintf (key, sizeof key, "P:%s", sig->refs [i]);
        rc = relais_txn_put (txn, self->db [S_DB_INDEX], key, strlen (key), plan, strlen (plan));
    }
    return rc;
}

//  The plan a report belongs with: open (ouvert, en_cours) first; else one
//  closed less than the reopen window before ts (*reopen set).
static int
s_match (plans_engine_t *self, relais_txn_t *txn, const s_sig_t *sig, uint64_t ts,
         plans_plan_t *plan, bool *found, bool *reopen)
{
    char keys [1 + S_SIG_REFS][64];
    size_t count = 1;
    s_place_key (sig, keys [0], sizeof keys [0]);
    for (size_t i = 0; i < sig->ref_count; i++)
        snprintf (keys [count++], sizeof keys [0], "P:%s", sig->refs [i]);
    *found = *reopen = false;
    char closed [PLANS_ID_MAX] = "";
    for (size_t i = 0; i < count; i++) {
        const void *data;
        size_t size;
        int rc = relais_txn_get (txn, self->db [S_DB_INDEX], keys [i], strlen (keys [i]), &data, &size);
        if (rc == RELAIS_ENOTFOUND)
            continue;
        if (rc)
            return rc;
        char id [PLANS_ID_MAX];
        if (size >= sizeof id)
            continue;
        memcpy (id, data, size);
        id [size] = 0;
        rc = plans_engine_load (self, txn, id, plan);
        if (rc == RELAIS_ENOTFOUND || rc == RELAIS_EMALFORMED)
            continue;
        if (rc)
            return rc;
        if (plan->state != PLANS_CLOS) {
            *found = true;
            return 0;
        }
        if (!closed [0] && self->rules.reopen_window_us
        &&  plan->closed_at + self->rules.reopen_window_us >= ts)
            snprintf (closed, sizeof closed, "%s", id);
    }
    if (closed [0]) {
        int rc = plans_engine_load (self, txn, closed, plan);
        if (rc)
            return rc;
        *found = *reopen = true;
    }
    return 0;
}

static int
s_reopen (plans_engine_t *self, relais_txn_t *txn, plans_plan_t *plan, const char *signal,
          const char *by, const char *corr, uint64_t ts)
{
    const char *previous = plans_outcome_names [plan->outcome >= 0? plan->outcome: 5];
    plan->state = PLANS_OUVERT;
    plan->outcome = -1;
    plan->structure [0] = 0;
    plan->closed_at = 0;
    s_touch (plan, ts);
    int rc = s_due_all (self, txn, plan, true);
    if (rc || (rc = s_history (self, txn, plan, ts, by, "reopened",
                               S_HIST (.signal = signal, .previous = previous))))
        return rc;
    self->stats.reopened++;
    S_BODY_BEGIN;
    msgpack_pack_map (&pk, signal? 1: 0);
    if (signal)
        relais_pack_kv_str (&pk, "signal", signal);
    S_BODY_EMIT ("plan.reopened", plan, corr, ts);
    return 0;
}

//  Put the report sig in its plan: attach to an open one, reopen a recently
//  closed one, or open a new one. Saves the plan and sig->plan (the caller
//  saves sig). *opened tells which.
static int
s_place (plans_engine_t *self, relais_txn_t *txn, s_sig_t *sig, const char *by,
         const char *corr, uint64_t ts, char *plan_id, bool *attached)
{
    plans_plan_t *plan = (plans_plan_t *) calloc (1, sizeof *plan);
    if (!plan)
        return -ENOMEM;
    bool found, reopen;
    int rc = s_match (self, txn, sig, ts, plan, &found, &reopen);
    if (rc)
        goto done;
    if (found) {
        *attached = true;
        bool listed = S_LIST_ADD (plan->signals, plan->signal_count, sig->id);
        plan->signal_total++;
        (void) listed;
        for (size_t i = 0; i < sig->ref_count; i++)
            S_LIST_ADD (plan->refs, plan->ref_count, sig->refs [i]);
        if (sig->level > plan->level)
            plan->level = sig->level;
        s_touch (plan, ts);
        self->stats.attached++;
        if (reopen)
            rc = s_reopen (self, txn, plan, sig->id, by, corr, ts);
        if (rc || (rc = s_history (self, txn, plan, ts, by, "attached", S_HIST (.signal = sig->id))))
            goto done;
        size_t before = plan->actor_count;
        if ((rc = s_replay_early (self, txn, plan, sig, ts)))
            goto done;
        if (!reopen || plan->actor_count != before)
            rc = s_emit_actors (self, txn, plan, reopen? NULL: sig->id, corr, ts);
        if (rc)
            goto done;
    }
    else {
        *attached = false;
        uint64_t next = 0;
        if ((rc = relais_meta_get (txn, "next_plan", &next))
        ||  (rc = relais_meta_set (txn, "next_plan", next + 1)))
            goto done;
        memset (plan, 0, sizeof *plan);
        snprintf (plan->id, sizeof plan->id, "PLAN-%08llu", (unsigned long long) next + 1);
        plan->state = PLANS_OUVERT;
        plan->outcome = -1;
        plan->level = sig->level;
        plan->arrondissement = sig->arrondissement;
        snprintf (plan->place_kind, sizeof plan->place_kind, "%s", sig->kind);
        snprintf (plan->cell, sizeof plan->cell, "%s", sig->cell);
        for (size_t i = 0; i < sig->reason_count; i++)
            S_LIST_ADD (plan->reasons, plan->reason_count, sig->reasons [i]);
        S_LIST_ADD (plan->signals, plan->signal_count, sig->id);
        plan->signal_total = 1;
        for (size_t i = 0; i < sig->ref_count; i++)
            S_LIST_ADD (plan->refs, plan->ref_count, sig->refs [i]);
        plan->opened_at = plan->updated_at = plan->last_activity = ts;
        self->stats.opened++;
        if ((rc = s_history (self, txn, plan, ts, by, "opened", S_HIST (.signal = sig->id))))
            goto done;
        //  What the router did before the plan existed, as if after: the
        //  plan opens with those partners as its actors
        if ((rc = s_replay_early (self, txn, plan, sig, ts)))
            goto done;
        S_BODY_BEGIN;
        msgpack_pack_map (&pk, 5);
        relais_pack_kv_str (&pk, "signal", sig->id);
        relais_pack_kv_uint (&pk, "arrondissement", plan->arrondissement);
        relais_pack_kv_uint (&pk, "level", plan->level);
        relais_pack_str (&pk, "actors");
        S_PACK_LIST (&pk, plan->actors, plan->actor_count);
        relais_pack_str (&pk, "reasons");
        S_PACK_LIST (&pk, plan->reasons, plan->reason_count);
        rc = s_emit (self, txn, "plan.opened", plan, corr, ts, &body);
        msgpack_sbuffer_destroy (&body);
        if (rc)
            goto done;
    }
    if ((rc = s_index_set (self, txn, sig, plan->id)) || (rc = s_save_plan (self, txn, plan)))
        goto done;
    snprintf (sig->plan, sizeof sig->plan, "%s", plan->id);
    if (plan_id)
        snprintf (plan_id, PLANS_ID_MAX, "%s", plan->id);
done:
    free (plan);
    return rc;
}

//  ---------------------------------------------------------------------------
//  Bus events

//  The public place view of §8.1: {arrondissement, kind, cell?}
static int
s_read_place (const msgpack_object *place, s_sig_t *sig)
{
    uint64_t arr;
    if (!place || place->type != MSGPACK_OBJECT_MAP
    ||  !relais_msg_uint (relais_msg_get (place, "arrondissement"), &arr) || arr < 1 || arr > 20)
        return RELAIS_EMALFORMED;
    sig->arrondissement = (uint32_t) arr;
    s_copy (relais_msg_get (place, "kind"), sig->kind, sizeof sig->kind);
    s_copy (relais_msg_get (place, "cell"), sig->cell, sizeof sig->cell);
    return 0;
}

static void
s_read_refs (const msgpack_object *body, s_sig_t *sig)
{
    const msgpack_object *refs = relais_msg_get (body, "person_refs");
    if (refs && refs->type == MSGPACK_OBJECT_ARRAY)
        S_UNPACK_LIST (refs, sig->refs, sig->ref_count);
}

static int
s_on_signal (plans_engine_t *self, relais_txn_t *txn, const char *topic,
             const relais_envelope_t *env, const char *corr)
{
    const msgpack_object *body = env->body;
    s_sig_t sig;
    int rc = s_load_sig (self, txn, env->key, &sig);
    if (rc && rc != RELAIS_ENOTFOUND)
        return rc == RELAIS_EMALFORMED? 0: rc;
    bool created = strcmp (topic, "signal.created") == 0;
    if (created) {
        uint64_t level;
        if (s_read_place (relais_msg_get (body, "place"), &sig)
        ||  !relais_msg_uint (relais_msg_get (body, "level"), &level))
            return RELAIS_EMALFORMED;
        sig.known = true;
        sig.level = (uint32_t) level;
        S_UNPACK_LIST (relais_msg_get (body, "reasons"), sig.reasons, sig.reason_count);
        s_read_refs (body, &sig);
        if (sig.level >= 2 && !sig.plan [0]
        &&  (rc = s_place (self, txn, &sig, "intake", corr, env->ts, NULL, &(bool) { false })))
            return rc;
        return s_save_sig (self, txn, &sig);
    }
    if (!sig.known)
        return 0;                       //  its creation was skipped: nothing to follow
    plans_plan_t *plan = NULL;
    if (sig.plan [0]) {
        plan = (plans_plan_t *) malloc (sizeof *plan);
        if (!plan)
            return -ENOMEM;
        rc = plans_engine_load (self, txn, sig.plan, plan);
        if (rc) {
            free (plan);
            if (rc != RELAIS_ENOTFOUND && rc != RELAIS_EMALFORMED)
                return rc;
            plan = NULL;
        }
    }
    if (strcmp (topic, "signal.updated") == 0) {
        uint64_t level;
        if (relais_msg_uint (relais_msg_get (body, "level"), &level) && level > sig.level)
            sig.level = (uint32_t) level;
        const msgpack_object *changes = relais_msg_get (body, "changes");
        const msgpack_object *place = relais_msg_get (changes, "place");
        if (place)
            s_read_place (place, &sig);
        if (relais_msg_get (body, "reasons"))
            S_UNPACK_LIST (relais_msg_get (body, "reasons"), sig.reasons, sig.reason_count);
        if (relais_msg_get (body, "person_refs"))
            s_read_refs (body, &sig);
        if (plan) {
            for (size_t i = 0; i < sig.ref_count; i++)
                S_LIST_ADD (plan->refs, plan->ref_count, sig.refs [i]);
            if (sig.level > plan->level)
                plan->level = sig.level;
            s_touch (plan, env->ts);
            if ((rc = s_history (self, txn, plan, env->ts, "intake", "signal_updated",
                                 S_HIST (.signal = sig.id)))
            ||  (rc = s_index_set (self, txn, &sig, plan->id))
            ||  (rc = s_save_plan (self, txn, plan)))
                goto done;
        }
        else
        if (sig.level >= 2 && !sig.plan [0]
        &&  (rc = s_place (self, txn, &sig, "intake", corr, env->ts, NULL, &(bool) { false })))
            goto done;
    }
    else
    if (strcmp (topic, "signal.closed") == 0 && plan) {
        char reason [32];
        s_copy (relais_msg_get (body, "reason"), reason, sizeof reason);
        s_touch (plan, env->ts);
        if ((rc = s_history (self, txn, plan, env->ts, "intake", "signal_closed",
                             S_HIST (.signal = sig.id, .outcome = reason)))
        ||  (rc = s_save_plan (self, txn, plan)))
            goto done;
    }
    rc = s_save_sig (self, txn, &sig);
done:
    free (plan);
    return rc;
}

static int
s_on_route (plans_engine_t *self, relais_txn_t *txn, const char *topic,
            const relais_envelope_t *env, const char *corr)
{
    const msgpack_object *body = env->body;
    char partner [PLANS_PARTNER_MAX], fallback [PLANS_PARTNER_MAX];
    if (relais_msg_str_copy (relais_msg_get (body, "partner"), partner, sizeof partner) <= 0)
        return RELAIS_EMALFORMED;
    s_copy (relais_msg_get (body, "fallback"), fallback, sizeof fallback);
    bool assigned = strcmp (topic, "route.assigned") == 0;
    bool escalated = strcmp (topic, "route.escalated") == 0;
    const char *what = assigned? "routed"
                     : escalated? "route_escalated"
                     : strcmp (topic, "route.acknowledged") == 0? "route_acknowledged"
                     : strcmp (topic, "route.refused") == 0? "route_refused": NULL;
    if (!what)
        return 0;                       //  a route.* type this version does not follow
    s_sig_t *sig = (s_sig_t *) malloc (sizeof *sig);
    if (!sig)
        return -ENOMEM;
    int rc = s_load_sig (self, txn, env->key, sig);
    if (rc && rc != RELAIS_ENOTFOUND) {
        free (sig);
        return rc == RELAIS_EMALFORMED? 0: rc;
    }
    s_early_t e = { .ts = env->ts };
    snprintf (e.what, sizeof e.what, "%s", what);
    snprintf (e.partner, sizeof e.partner, "%s", partner);
    snprintf (e.fallback, sizeof e.fallback, "%s", fallback);
    snprintf (e.corr, sizeof e.corr, "%s", corr? corr: "");
    s_copy (relais_msg_get (body, "reason"), e.reason, sizeof e.reason);
    if (!e.reason [0])
        s_copy (relais_msg_get (body, "cause"), e.reason, sizeof e.reason);
    rc = 0;
    if (sig->plan [0]) {
        plans_plan_t *plan = (plans_plan_t *) malloc (sizeof *plan);
        if (!plan) {
            free (sig);
            return -ENOMEM;
        }
        rc = plans_engine_load (self, txn, sig->plan, plan);
        if (rc == 0) {
            rc = s_route_into_plan (self, txn, plan, sig->id, &e, true);
            if (!rc)
                rc = s_save_plan (self, txn, plan);
        }
        else
        if (rc == RELAIS_ENOTFOUND || rc == RELAIS_EMALFORMED)
            rc = 0;
        free (plan);
    }
    else {
        //  The router may be ahead of intake in our stream, or the report
        //  is in no plan yet: keep the event for when it is placed. Past
        //  the buffer, the partners alone are kept.
        if (sig->early_count < S_SIG_EARLY)
            sig->early [sig->early_count++] = e;
        else
        if (assigned)
            S_LIST_ADD (sig->partners, sig->partner_count, partner);
        else
        if (escalated && fallback [0])
            S_LIST_ADD (sig->partners, sig->partner_count, fallback);
    }
    if (rc == 0)
        rc = s_save_sig (self, txn, sig);
    free (sig);
    return rc;
}

int
plans_engine_apply (plans_engine_t *self, relais_txn_t *txn, const char *topic,
                    const relais_envelope_t *env)
{
    if (!env->body || env->body->type != MSGPACK_OBJECT_MAP
    ||  strncmp (env->key, "SIG-", 4) != 0 || strlen (env->key) >= PLANS_ID_MAX)
        return RELAIS_EMALFORMED;
    char corr [RELAIS_KEY_MAX];
    snprintf (corr, sizeof corr, "%.31s:%llu", env->src, (unsigned long long) env->seq);
    if (strncmp (topic, "signal.", 7) == 0)
        return s_on_signal (self, txn, topic, env, corr);
    if (strncmp (topic, "route.", 6) == 0)
        return s_on_route (self, txn, topic, env, corr);
    return 0;
}

//  ---------------------------------------------------------------------------
//  API: request fields

static int
s_req_str (const msgpack_object *req, const char *key, char *buf, size_t size, bool required,
           bool multiline, relais_error_t *err)
{
    const msgpack_object *o = relais_msg_get (req, key);
    buf [0] = 0;
    if (!o) {
        if (required)
            return relais_error_set (err, RELAIS_CODE_INVALID, key, "required, a string");
        return 0;
    }
    if (o->type != MSGPACK_OBJECT_STR)
        return relais_error_set (err, RELAIS_CODE_INVALID, key, "must be a string");
    if (o->via.str.size >= size)
        return relais_error_set (err, RELAIS_CODE_TOO_LARGE, key, "at most %zu bytes", size - 1);
    if (!relais_utf8_clean (o->via.str.ptr, o->via.str.size, multiline))
        return relais_error_set (err, RELAIS_CODE_INVALID, key,
                                 multiline? "must be text without control characters"
                                          : "must be one line of text");
    if (required && o->via.str.size == 0)
        return relais_error_set (err, RELAIS_CODE_INVALID, key, "must not be empty");
    memcpy (buf, o->via.str.ptr, o->via.str.size);
    buf [o->via.str.size] = 0;
    return 0;
}

static int
s_req_enum (const msgpack_object *req, const char *key, const char *const *names,
            bool required, int *value, relais_error_t *err)
{
    const msgpack_object *o = relais_msg_get (req, key);
    char text [32], list [256];
    *value = -1;
    if (!o && !required)
        return 0;
    if (!o || relais_msg_str_copy (o, text, sizeof text) < 0 || (*value = s_find (names, text)) < 0) {
        s_join (names, list, sizeof list);
        return relais_error_set (err, RELAIS_CODE_INVALID, key, "%s one of: %s",
                                 required? "required,": "must be", list);
    }
    return 0;
}

static int
s_req_uint (const msgpack_object *req, const char *key, bool required, uint64_t min,
            uint64_t max, uint64_t *value, bool *present, relais_error_t *err)
{
    const msgpack_object *o = relais_msg_get (req, key);
    if (present)
        *present = o != NULL;
    if (!o && !required)
        return 0;
    if (!o || !relais_msg_uint (o, value) || *value < min || *value > max)
        return relais_error_set (err, RELAIS_CODE_INVALID, key, "%s an integer from %llu to %llu",
                                 required? "required,": "must be", (unsigned long long) min,
                                 (unsigned long long) max);
    return 0;
}

static int
s_req_bool (const msgpack_object *req, const char *key, bool required, bool *value,
            bool *present, relais_error_t *err)
{
    const msgpack_object *o = relais_msg_get (req, key);
    if (present)
        *present = o != NULL;
    if (!o && !required)
        return 0;
    if (!o || o->type != MSGPACK_OBJECT_BOOLEAN)
        return relais_error_set (err, RELAIS_CODE_INVALID, key, "%s true or false",
                                 required? "required,": "must be");
    *value = o->via.boolean;
    return 0;
}

//  Load the plan named by the request's "id".
static int
s_req_plan (plans_engine_t *self, relais_txn_t *txn, const msgpack_object *req,
            plans_plan_t *plan, relais_error_t *err)
{
    const msgpack_object *o = relais_msg_get (req, "id");
    if (!o || o->type != MSGPACK_OBJECT_STR)
        return relais_error_set (err, RELAIS_CODE_INVALID, "id", "required, a plan id \"PLAN-...\"");
    char id [PLANS_ID_MAX];
    if (relais_msg_str_copy (o, id, sizeof id) < 0)
        return relais_error_set (err, RELAIS_CODE_NOT_FOUND, "id", "no plan has this id");
    int rc = plans_engine_load (self, txn, id, plan);
    if (rc == RELAIS_ENOTFOUND)
        return relais_error_set (err, RELAIS_CODE_NOT_FOUND, "id", "no plan has this id");
    if (rc == RELAIS_EMALFORMED)
        return relais_error_set (err, RELAIS_CODE_UNAVAILABLE, "", "stored plan unreadable");
    return rc;
}

static plans_action_t *
s_action (plans_plan_t *plan, uint64_t id)
{
    for (size_t i = 0; i < plan->action_count; i++)
        if (plan->actions [i].id == id)
            return &plan->actions [i];
    return NULL;
}

static int
s_conflict_closed (relais_error_t *err)
{
    return relais_error_set (err, RELAIS_CODE_CONFLICT, "id",
                             "the plan is clos: reopen it first (plans.reopen)");
}

//  ---------------------------------------------------------------------------
//  API: replies

static void
s_pack_summary (msgpack_packer *pk, const plans_plan_t *p, uint64_t now, bool reason)
{
    size_t pending = 0, overdue = 0;
    for (size_t i = 0; i < p->action_count; i++)
        if (s_pending (&p->actions [i])) {
            pending++;
            overdue += p->actions [i].due <= now;
        }
    msgpack_pack_map (pk, 14 + reason);
    relais_pack_kv_str (pk, "id", p->id);
    relais_pack_kv_str (pk, "state", plans_state_names [p->state]);
    relais_pack_kv_str (pk, "outcome", p->outcome >= 0? plans_outcome_names [p->outcome]: "");
    relais_pack_kv_uint (pk, "level", p->level);
    relais_pack_kv_uint (pk, "arrondissement", p->arrondissement);
    relais_pack_kv_uint (pk, "signals", p->signal_total);
    relais_pack_str (pk, "actors");
    S_PACK_LIST (pk, p->actors, p->actor_count);
    relais_pack_kv_uint (pk, "actions", p->action_count);
    relais_pack_kv_uint (pk, "pending", pending);
    relais_pack_kv_uint (pk, "overdue", overdue);
    relais_pack_kv_bool (pk, "flagged", p->flagged);
    relais_pack_kv_uint (pk, "opened_at", p->opened_at);
    relais_pack_kv_uint (pk, "closed_at", p->closed_at);
    relais_pack_kv_uint (pk, "last_activity", p->last_activity);
    if (reason)
        relais_pack_kv_str (pk, "flag_reason", p->flag_reason);
}

typedef struct {
    msgpack_packer *pk;
    size_t count, max;
    size_t idlen;
    const char *id;
    uint64_t skip;                      //  the oldest entries left out
} s_hist_scan_t;

static int
s_hist_pack (const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    s_hist_scan_t *h = (s_hist_scan_t *) arg;
    if (klen != h->idlen + 16 || memcmp (key, h->id, h->idlen) != 0 || h->count == h->max)
        return 1;
    if (h->skip > 0) {
        h->skip--;
        return 0;
    }
    relais_pack_raw (h->pk, val, vlen);
    h->count++;
    return 0;
}

//  Pack the last (at most max) history entries of plan as an array.
static int
s_pack_history (plans_engine_t *self, relais_txn_t *txn, msgpack_packer *pk,
                const plans_plan_t *plan, size_t max)
{
    uint64_t total = plan->history;
    uint64_t first = total > max? total - max + 1: 1;
    size_t count = (size_t) (total >= first? total - first + 1: 0);
    msgpack_pack_array (pk, count);
    size_t idlen = strlen (plan->id);
    s_hist_scan_t h = { pk, 0, count, idlen, plan->id, first - 1 };
    int rc = relais_txn_scan (txn, self->db [S_DB_HISTORY], plan->id, idlen, s_hist_pack, &h);
    //  The array header promised count entries: pad when the store lost some
    for (; rc == 0 && h.count < count; h.count++)
        msgpack_pack_nil (pk);
    return rc;
}

static void
s_reply_begin (msgpack_packer *pk, size_t pairs)
{
    msgpack_pack_map (pk, pairs + 1);
    relais_pack_kv_bool (pk, "ok", true);
}

//  ---------------------------------------------------------------------------
//  API: read operations

typedef struct {
    plans_engine_t *self;
    uint64_t now;
    int state, arr;
    char partner [PLANS_PARTNER_MAX];
    int overdue, flagged;           //  -1: no filter
    bool review;
    size_t limit;
    plans_plan_t **found;
    size_t count, cap;
    bool more;
} s_list_t;

static bool
s_list_wants (const s_list_t *l, const plans_plan_t *p)
{
    if (l->review)
        return p->flagged && p->state != PLANS_CLOS;
    if (l->state >= 0 && p->state != l->state)
        return false;
    if (l->arr > 0 && (int) p->arrondissement != l->arr)
        return false;
    if (l->flagged >= 0 && p->flagged != (l->flagged == 1))
        return false;
    if (l->partner [0]) {
        bool hit = false;
        for (size_t i = 0; i < p->actor_count && !hit; i++)
            hit = strcmp (p->actors [i], l->partner) == 0;
        for (size_t i = 0; i < p->action_count && !hit; i++)
            hit = strcmp (p->actions [i].owner, l->partner) == 0;
        if (!hit)
            return false;
    }
    if (l->overdue >= 0) {
        bool late = false;
        for (size_t i = 0; i < p->action_count && !late; i++)
            late = s_pending (&p->actions [i]) && p->actions [i].due <= l->now;
        if (late != (l->overdue == 1))
            return false;
    }
    return true;
}

static int
s_list_scan (const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    s_list_t *l = (s_list_t *) arg;
    relais_msg_t msg;
    relais_error_t err;
    if (relais_msg_decode (&msg, val, vlen, &s_stored_limits, &err))
        return 0;
    plans_plan_t *p = (plans_plan_t *) malloc (sizeof *p);
    if (!p) {
        relais_msg_release (&msg);
        return -ENOMEM;
    }
    int rc = s_unpack_plan (&msg.root, p);
    relais_msg_release (&msg);
    if (rc || !s_list_wants (l, p)) {
        free (p);
        return 0;
    }
    if (!l->review && l->count == l->limit) {
        free (p);
        l->more = true;
        return 1;
    }
    if (l->count == l->cap) {
        size_t cap = l->cap? l->cap * 2: 64;
        plans_plan_t **found = (plans_plan_t **) realloc (l->found, cap * sizeof *found);
        if (!found) {
            free (p);
            return -ENOMEM;
        }
        l->found = found;
        l->cap = cap;
    }
    l->found [l->count++] = p;
    return 0;
}

static size_t
s_overdue_count (const plans_plan_t *p, uint64_t now)
{
    size_t n = 0;
    for (size_t i = 0; i < p->action_count; i++)
        n += s_pending (&p->actions [i]) && p->actions [i].due <= now;
    return n;
}

static uint64_t s_sort_now;

//  Review order: most overdue actions first, then the oldest plan.
static int
s_review_cmp (const void *a, const void *b)
{
    const plans_plan_t *p = *(plans_plan_t *const *) a;
    const plans_plan_t *q = *(plans_plan_t *const *) b;
    size_t op = s_overdue_count (p, s_sort_now), oq = s_overdue_count (q, s_sort_now);
    if (op != oq)
        return op > oq? -1: 1;
    if (p->opened_at != q->opened_at)
        return p->opened_at < q->opened_at? -1: 1;
    return strcmp (p->id, q->id);
}

static int
s_op_list (plans_engine_t *self, relais_txn_t *txn, const msgpack_object *req, uint64_t now,
           bool review, msgpack_packer *pk, relais_error_t *err)
{
    s_list_t l = { self, now, -1, 0, "", -1, -1, review, S_LIST_DEFAULT, NULL, 0, 0, false };
    char after [PLANS_ID_MAX] = "";
    if (!review) {
        uint64_t value = 0;
        bool present, flag = false;
        if (s_req_enum (req, "state", plans_state_names, false, &l.state, err))
            return RELAIS_EMALFORMED;
        if (l.state >= PLANS_STATES)
            l.state = -1;
        if (s_req_uint (req, "arrondissement", false, 1, 20, &value, &present, err))
            return RELAIS_EMALFORMED;
        l.arr = present? (int) value: 0;
        if (s_req_str (req, "partner", l.partner, sizeof l.partner, false, false, err))
            return RELAIS_EMALFORMED;
        if (s_req_bool (req, "overdue", false, &flag, &present, err))
            return RELAIS_EMALFORMED;
        l.overdue = present? flag: -1;
        if (s_req_bool (req, "flagged", false, &flag, &present, err))
            return RELAIS_EMALFORMED;
        l.flagged = present? flag: -1;
        if (s_req_uint (req, "limit", false, 1, S_LIST_MAX, &value, &present, err))
            return RELAIS_EMALFORMED;
        if (present)
            l.limit = (size_t) value;
        if (s_req_str (req, "after", after, sizeof after, false, false, err))
            return RELAIS_EMALFORMED;
    }
    //  Keys sort as ids: "after" is a cursor; the NUL byte steps past it
    size_t alen = strlen (after);
    int rc = relais_txn_scan (txn, self->db [S_DB_PLANS], alen? after: NULL, alen? alen + 1: 0,
                              s_list_scan, &l);
    if (rc == 0) {
        if (review) {
            s_sort_now = now;
            qsort (l.found, l.count, sizeof *l.found, s_review_cmp);
        }
        s_reply_begin (pk, 1 + l.more);
        relais_pack_str (pk, "plans");
        msgpack_pack_array (pk, l.count);
        for (size_t i = 0; i < l.count; i++)
            s_pack_summary (pk, l.found [i], now, review);
        if (l.more)
            relais_pack_kv_str (pk, "next", l.found [l.count - 1]->id);
    }
    for (size_t i = 0; i < l.count; i++)
        free (l.found [i]);
    free (l.found);
    return rc;
}

//  ---------------------------------------------------------------------------
//  API: operations

typedef struct {
    plans_engine_t *self;
    relais_txn_t *txn;
    const msgpack_object *req;
    uint64_t now;
    msgpack_packer *pk;
    relais_error_t *err;
    plans_plan_t *plan;
    char by [PLANS_BY_MAX + 1];
} s_op_t;

#define S_TRY(expr) do { int try_rc_ = (expr); if (try_rc_) return try_rc_; } while (0)

static int
s_reply_plan (s_op_t *op, size_t extra)
{
    s_reply_begin (op->pk, 1 + extra);
    relais_pack_kv_str (op->pk, "id", op->plan->id);
    return 0;
}

static int
s_op_open (s_op_t *op)
{
    char id [PLANS_ID_MAX];
    S_TRY (s_req_str (op->req, "signal", id, sizeof id, true, false, op->err));
    s_sig_t sig;
    int rc = s_load_sig (op->self, op->txn, id, &sig);
    if (rc == RELAIS_ENOTFOUND || (rc == 0 && !sig.known))
        return relais_error_set (op->err, RELAIS_CODE_NOT_FOUND, "signal",
                                 "plans has not received this report (yet)");
    if (rc)
        return rc;
    if (sig.plan [0])
        return relais_error_set (op->err, RELAIS_CODE_CONFLICT, "signal",
                                 "the report is already in plan %s", sig.plan);
    char plan [PLANS_ID_MAX];
    bool attached = false;
    S_TRY (s_place (op->self, op->txn, &sig, op->by, NULL, op->now, plan, &attached));
    S_TRY (s_save_sig (op->self, op->txn, &sig));
    s_reply_begin (op->pk, 2);
    relais_pack_kv_str (op->pk, "id", plan);
    relais_pack_kv_bool (op->pk, "attached", attached);
    return 0;
}

static int
s_op_action_add (s_op_t *op)
{
    plans_plan_t *plan = op->plan;
    int kind;
    uint64_t due;
    char owner [PLANS_PARTNER_MAX];
    S_TRY (s_req_enum (op->req, "kind", plans_kind_names, true, &kind, op->err));
    S_TRY (s_req_str (op->req, "owner", owner, sizeof owner, true, false, op->err));
    S_TRY (s_req_uint (op->req, "due", true, 1, UINT64_MAX, &due, NULL, op->err));
    if (plan->state == PLANS_CLOS)
        return s_conflict_closed (op->err);
    if (plan->action_count == PLANS_ACTIONS_MAX)
        return relais_error_set (op->err, RELAIS_CODE_TOO_LARGE, "id",
                                 "a plan holds at most %d actions", PLANS_ACTIONS_MAX);
    plans_action_t *a = &plan->actions [plan->action_count++];
    memset (a, 0, sizeof *a);
    a->id = plan->action_count == 1? 1: plan->actions [plan->action_count - 2].id + 1;
    a->kind = kind;
    snprintf (a->owner, sizeof a->owner, "%s", owner);
    a->due = due;
    a->state = PLANS_A_FAIRE;
    a->created_at = a->updated_at = op->now;
    s_touch (plan, op->now);
    S_TRY (s_due_set (op->self, op->txn, plan->id, a));
    S_TRY (s_history (op->self, op->txn, plan, op->now, op->by, "action_added",
                      S_HIST (.action = a->id, .kind = plans_kind_names [kind], .partner = owner,
                              .due = due)));
    plans_engine_t *self = op->self;
    relais_txn_t *txn = op->txn;
    S_BODY_BEGIN;
    msgpack_pack_map (&pk, 4);
    relais_pack_kv_uint (&pk, "action", a->id);
    relais_pack_kv_str (&pk, "kind", plans_kind_names [kind]);
    relais_pack_kv_str (&pk, "owner", owner);
    relais_pack_kv_uint (&pk, "due", due);
    S_BODY_EMIT ("plan.action_added", plan, NULL, op->now);
    S_TRY (s_add_actor (self, txn, plan, owner, op->by, NULL, op->now));
    s_reply_plan (op, 1);
    relais_pack_kv_uint (op->pk, "action", a->id);
    return 0;
}

static int
s_op_action_update (s_op_t *op)
{
    plans_plan_t *plan = op->plan;
    plans_engine_t *self = op->self;
    relais_txn_t *txn = op->txn;
    uint64_t id, due = 0;
    int state;
    bool has_due;
    char owner [PLANS_PARTNER_MAX];
    S_TRY (s_req_uint (op->req, "action", true, 1, UINT32_MAX, &id, NULL, op->err));
    S_TRY (s_req_enum (op->req, "state", plans_astate_names, false, &state, op->err));
    S_TRY (s_req_uint (op->req, "due", false, 1, UINT64_MAX, &due, &has_due, op->err));
    S_TRY (s_req_str (op->req, "owner", owner, sizeof owner, false, false, op->err));
    if (state < 0 && !has_due && !owner [0])
        return relais_error_set (op->err, RELAIS_CODE_INVALID, "state",
                                 "give at least one of state, due, owner");
    plans_action_t *a = s_action (plan, id);
    if (!a)
        return relais_error_set (op->err, RELAIS_CODE_NOT_FOUND, "action", "the plan has no such action");
    if (plan->state == PLANS_CLOS)
        return s_conflict_closed (op->err);
    char allowed [128];
    if (state >= 0 && !plans_astate_allowed (a->state, state, allowed, sizeof allowed))
        return relais_error_set (op->err, RELAIS_CODE_CONFLICT, "state",
                                 "action is %s; allowed: %s", plans_astate_names [a->state], allowed);
    if (state < 0 && !s_pending (a))
        return relais_error_set (op->err, RELAIS_CODE_CONFLICT, "action",
                                 "action is %s: it can no longer change", plans_astate_names [a->state]);
    int previous = a->state;
    if (s_pending (a) && !a->overdue)
        S_TRY (s_due_del (self, txn, plan->id, a));
    if (has_due && due != a->due) {
        a->due = due;
        a->overdue = false;             //  a new due date may be missed once more
    }
    if (owner [0])
        snprintf (a->owner, sizeof a->owner, "%s", owner);
    if (state >= 0)
        a->state = state;
    a->updated_at = op->now;
    if (s_pending (a) && !a->overdue)
        S_TRY (s_due_set (self, txn, plan->id, a));
    s_touch (plan, op->now);
    S_TRY (s_history (self, txn, plan, op->now, op->by, "action_changed",
                      S_HIST (.action = a->id, .state = plans_astate_names [a->state],
                              .previous = plans_astate_names [previous],
                              .due = has_due? due: 0, .partner = owner)));
    S_BODY_BEGIN;
    msgpack_pack_map (&pk, 3 + has_due + (owner [0] != 0));
    relais_pack_kv_uint (&pk, "action", a->id);
    relais_pack_kv_str (&pk, "state", plans_astate_names [a->state]);
    relais_pack_kv_str (&pk, "previous", plans_astate_names [previous]);
    if (has_due)
        relais_pack_kv_uint (&pk, "due", a->due);
    if (owner [0])
        relais_pack_kv_str (&pk, "owner", a->owner);
    S_BODY_EMIT ("plan.action_changed", plan, NULL, op->now);
    if (owner [0])
        S_TRY (s_add_actor (self, txn, plan, owner, op->by, NULL, op->now));
    //  Work has started on the plan: it leaves "ouvert" by itself
    if (a->state == PLANS_A_EN_COURS && plan->state == PLANS_OUVERT) {
        plan->state = PLANS_EN_COURS;
        S_TRY (s_history (self, txn, plan, op->now, op->by, "state",
                          S_HIST (.state = "en_cours", .previous = "ouvert")));
        S_TRY (s_emit_state (self, txn, plan, NULL, op->now));
    }
    s_reply_plan (op, 2);
    relais_pack_kv_uint (op->pk, "action", a->id);
    relais_pack_kv_str (op->pk, "state", plans_astate_names [a->state]);
    return 0;
}

static int
s_op_set_state (s_op_t *op)
{
    plans_plan_t *plan = op->plan;
    plans_engine_t *self = op->self;
    relais_txn_t *txn = op->txn;
    int state, outcome;
    char structure [PLANS_PARTNER_MAX];
    S_TRY (s_req_enum (op->req, "state", plans_state_names, true, &state, op->err));
    S_TRY (s_req_enum (op->req, "outcome", plans_outcome_names, state == PLANS_CLOS, &outcome, op->err));
    S_TRY (s_req_str (op->req, "structure", structure, sizeof structure, false, false, op->err));
    if (outcome >= 0 && state != PLANS_CLOS)
        return relais_error_set (op->err, RELAIS_CODE_INVALID, "outcome", "only when state is clos");
    if (structure [0] && (outcome < 0 || strcmp (plans_outcome_names [outcome], "mise_a_l_abri")))
        return relais_error_set (op->err, RELAIS_CODE_INVALID, "structure",
                                 "only with the outcome mise_a_l_abri");
    char allowed [128];
    if (!plans_state_allowed (plan->state, state, allowed, sizeof allowed))
        return relais_error_set (op->err, RELAIS_CODE_CONFLICT, "state",
                                 "plan is %s; allowed: %s%s", plans_state_names [plan->state], allowed,
                                 plan->state == PLANS_CLOS? " (plans.reopen reopens it)": "");
    const char *previous = plans_state_names [plan->state];
    plan->state = state;
    s_touch (plan, op->now);
    if (state == PLANS_CLOS) {
        plan->outcome = outcome;
        snprintf (plan->structure, sizeof plan->structure, "%s", structure);
        plan->closed_at = op->now;
        //  Pending actions of a closed plan raise nothing: their due
        //  entries go, and come back if the plan is reopened.
        S_TRY (s_due_all (self, txn, plan, false));
        S_TRY (s_history (self, txn, plan, op->now, op->by, "closed",
                          S_HIST (.state = "clos", .previous = previous,
                                  .outcome = plans_outcome_names [outcome], .structure = structure)));
        self->stats.closed++;
        S_BODY_BEGIN;
        msgpack_pack_map (&pk, 3 + (structure [0] != 0));
        relais_pack_kv_str (&pk, "outcome", plans_outcome_names [outcome]);
        if (structure [0])
            relais_pack_kv_str (&pk, "structure", structure);
        relais_pack_kv_uint (&pk, "arrondissement", plan->arrondissement);
        relais_pack_str (&pk, "signals");
        S_PACK_LIST (&pk, plan->signals, plan->signal_count);
        S_BODY_EMIT ("plan.closed", plan, NULL, op->now);
    }
    else {
        S_TRY (s_history (self, txn, plan, op->now, op->by, "state",
                          S_HIST (.state = plans_state_names [state], .previous = previous)));
        S_TRY (s_emit_state (self, txn, plan, NULL, op->now));
    }
    s_reply_plan (op, 1);
    relais_pack_kv_str (op->pk, "state", plans_state_names [plan->state]);
    return 0;
}

static int
s_op_reopen (s_op_t *op)
{
    plans_plan_t *plan = op->plan;
    if (plan->state != PLANS_CLOS) {
        char allowed [128];
        plans_state_allowed (plan->state, -1, allowed, sizeof allowed);
        return relais_error_set (op->err, RELAIS_CODE_CONFLICT, "id",
                                 "plan is %s, not clos: nothing to reopen; allowed: %s",
                                 plans_state_names [plan->state], allowed);
    }
    S_TRY (s_reopen (op->self, op->txn, plan, NULL, op->by, NULL, op->now));
    s_reply_plan (op, 1);
    relais_pack_kv_str (op->pk, "state", plans_state_names [plan->state]);
    return 0;
}

static int
s_op_flag (s_op_t *op)
{
    plans_plan_t *plan = op->plan;
    plans_engine_t *self = op->self;
    relais_txn_t *txn = op->txn;
    bool flagged = false;
    char reason [PLANS_FLAG_MAX + 1];
    S_TRY (s_req_bool (op->req, "flagged", true, &flagged, NULL, op->err));
    S_TRY (s_req_str (op->req, "reason", reason, sizeof reason, flagged, false, op->err));
    if (flagged == plan->flagged)
        return relais_error_set (op->err, RELAIS_CODE_CONFLICT, "flagged",
                                 "the plan is already %s; allowed: flagged %s",
                                 flagged? "flagged": "not flagged", flagged? "false": "true");
    plan->flagged = flagged;
    snprintf (plan->flag_reason, sizeof plan->flag_reason, "%s", flagged? reason: "");
    s_touch (plan, op->now);
    S_TRY (s_history (self, txn, plan, op->now, op->by, flagged? "flagged": "unflagged",
                      S_HIST (.flagged = flagged? 2: 1, .text = reason)));
    S_BODY_BEGIN;
    msgpack_pack_map (&pk, 1);
    relais_pack_kv_bool (&pk, "flagged", flagged);
    S_BODY_EMIT ("plan.flagged", plan, NULL, op->now);
    s_reply_plan (op, 1);
    relais_pack_kv_bool (op->pk, "flagged", flagged);
    return 0;
}

static int
s_op_note (s_op_t *op)
{
    plans_plan_t *plan = op->plan;
    char text [PLANS_NOTE_MAX + 1];
    uint64_t action = 0;
    bool has_action;
    S_TRY (s_req_str (op->req, "text", text, sizeof text, true, true, op->err));
    S_TRY (s_req_uint (op->req, "action", false, 1, UINT32_MAX, &action, &has_action, op->err));
    if (has_action && !s_action (plan, action))
        return relais_error_set (op->err, RELAIS_CODE_NOT_FOUND, "action", "the plan has no such action");
    s_touch (plan, op->now);
    S_TRY (s_history (op->self, op->txn, plan, op->now, op->by, "note",
                      S_HIST (.text = text, .action = action)));
    s_reply_plan (op, 1);
    relais_pack_kv_uint (op->pk, "entry", plan->history);
    return 0;
}

static int
s_op_get (s_op_t *op)
{
    s_reply_begin (op->pk, 3);
    relais_pack_str (op->pk, "plan");
    s_pack_plan (op->pk, op->plan);
    relais_pack_kv_uint (op->pk, "overdue", s_overdue_count (op->plan, op->now));
    relais_pack_str (op->pk, "history");
    return s_pack_history (op->self, op->txn, op->pk, op->plan, S_HISTORY_MAX);
}

typedef struct {
    const char *name;
    int (*fn) (s_op_t *op);
    bool reads;                 //  no change, no "by"
    bool plan;                  //  acts on the plan named by "id"
} s_op_entry_t;

static const s_op_entry_t s_ops [] = {
    { "plans.get", s_op_get, true, true },
    { "plans.list", NULL, true, false },
    { "plans.review", NULL, true, false },
    { "plans.open", s_op_open, false, false },
    { "plans.action_add", s_op_action_add, false, true },
    { "plans.action_update", s_op_action_update, false, true },
    { "plans.set_state", s_op_set_state, false, true },
    { "plans.reopen", s_op_reopen, false, true },
    { "plans.flag", s_op_flag, false, true },
    { "plans.note", s_op_note, false, true },
    { NULL, NULL, false, false }
};

bool
plans_engine_op_reads (const char *name)
{
    for (int i = 0; s_ops [i].name; i++)
        if (strcmp (s_ops [i].name, name) == 0)
            return s_ops [i].reads;
    return true;                //  unknown ops change nothing
}

//  Rewrite the reply map in out as {idem, duplicate, ...its pairs}.
static int
s_mark_reply (msgpack_sbuffer *out, const msgpack_object *idem, bool duplicate)
{
    relais_msg_t msg;
    relais_error_t inner;
    relais_msg_limits_t limits = { 16 << 20, 16, 1 << 20 };
    if (relais_msg_decode (&msg, out->data, out->size, &limits, &inner)
    ||  msg.root.type != MSGPACK_OBJECT_MAP)
        return RELAIS_EMALFORMED;
    msgpack_sbuffer copy;
    msgpack_sbuffer_init (&copy);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &copy, msgpack_sbuffer_write);
    const msgpack_object_map *map = &msg.root.via.map;
    uint32_t keep = 0;
    for (uint32_t i = 0; i < map->size; i++)
        keep += !relais_msg_str_eq (&map->ptr [i].key, "idem")
             && !relais_msg_str_eq (&map->ptr [i].key, "duplicate");
    msgpack_pack_map (&pk, keep + 2);
    relais_pack_str (&pk, "idem");
    relais_pack_object (&pk, idem);
    relais_pack_kv_bool (&pk, "duplicate", duplicate);
    for (uint32_t i = 0; i < map->size; i++)
        if (!relais_msg_str_eq (&map->ptr [i].key, "idem")
        &&  !relais_msg_str_eq (&map->ptr [i].key, "duplicate")) {
            relais_pack_object (&pk, &map->ptr [i].key);
            relais_pack_object (&pk, &map->ptr [i].val);
        }
    relais_msg_release (&msg);
    s_reset (out);
    msgpack_sbuffer_write (out, copy.data, copy.size);
    msgpack_sbuffer_destroy (&copy);
    return 0;
}

static int s_op_run (plans_engine_t *self, relais_txn_t *txn, const char *op_name,
                     const msgpack_object *req, uint64_t now, msgpack_sbuffer *out,
                     relais_error_t *err);

//  A changing op with an "idem": applied once; the same key again returns
//  the first reply with duplicate: true and changes nothing. The reply is
//  stored with the key in the op's transaction, so a crash loses neither or
//  both. Keys are scoped to the caller (its certificate, else its "by").
int
plans_engine_op (plans_engine_t *self, relais_txn_t *txn, const char *op_name,
                 const msgpack_object *req, uint64_t now, msgpack_sbuffer *out,
                 relais_error_t *err)
{
    const msgpack_object *idem = relais_msg_get (req, "idem");
    if (!idem || plans_engine_op_reads (op_name))
        return s_op_run (self, txn, op_name, req, now, out, err);
    relais_error_clear (err);
    s_reset (out);
    if (idem->type != MSGPACK_OBJECT_STR || idem->via.str.size == 0
    ||  !relais_utf8_clean (idem->via.str.ptr, idem->via.str.size, false))
        return relais_error_set (err, RELAIS_CODE_INVALID, "idem", "a non-empty string, one line");
    if (idem->via.str.size > 128)
        return relais_error_set (err, RELAIS_CODE_TOO_LARGE, "idem", "at most 128 bytes");
    char scope [PLANS_BY_MAX + 1] = "";
    if (self->caller [0])
        snprintf (scope, sizeof scope, "%s", self->caller);
    else
    if (s_req_str (req, "by", scope, sizeof scope, true, false, err))
        return RELAIS_EMALFORMED;
    uint8_t key [PLANS_BY_MAX + 1 + 128];
    size_t slen = strlen (scope);
    memcpy (key, scope, slen + 1);
    memcpy (key + slen + 1, idem->via.str.ptr, idem->via.str.size);
    size_t klen = slen + 1 + idem->via.str.size;
    const void *stored;
    size_t size;
    int rc = relais_txn_get (txn, self->db [S_DB_IDEM], key, klen, &stored, &size);
    if (rc == 0) {
        msgpack_sbuffer_write (out, (const char *) stored, size);
        return s_mark_reply (out, idem, true);
    }
    if (rc != RELAIS_ENOTFOUND)
        return rc;
    rc = s_op_run (self, txn, op_name, req, now, out, err);
    if (rc || err->code)
        return rc;                      //  a refused op does not use up its key
    if ((rc = relais_txn_put (txn, self->db [S_DB_IDEM], key, klen, out->data, out->size)))
        return rc;
    return s_mark_reply (out, idem, false);
}

static int
s_op_run (plans_engine_t *self, relais_txn_t *txn, const char *op_name,
          const msgpack_object *req, uint64_t now, msgpack_sbuffer *out,
          relais_error_t *err)
{
    s_reset (out);
    relais_error_clear (err);
    msgpack_packer pk;
    msgpack_packer_init (&pk, out, msgpack_sbuffer_write);
    const s_op_entry_t *entry = NULL;
    for (int i = 0; s_ops [i].name && !entry; i++)
        if (strcmp (s_ops [i].name, op_name) == 0)
            entry = &s_ops [i];
    if (!entry)
        return relais_error_set (err, RELAIS_CODE_UNKNOWN_OP, "op",
                                 "this endpoint serves plans.get, plans.list, plans.review, "
                                 "plans.open, plans.action_add, plans.action_update, "
                                 "plans.set_state, plans.reopen, plans.flag, plans.note, "
                                 "plans.erase, plans.purge");
    if (!entry->fn)
        return s_op_list (self, txn, req, now, strcmp (op_name, "plans.review") == 0, &pk, err);
    s_op_t op = { self, txn, req, now, &pk, err, NULL, "" };
    //  Who: with CURVE on, the certificate's name; else the caller's "by"
    if (!entry->reads && self->caller [0])
        snprintf (op.by, sizeof op.by, "%s", self->caller);
    else
    if (!entry->reads && s_req_str (req, "by", op.by, sizeof op.by, true, false, err))
        return RELAIS_EMALFORMED;
    int rc = 0;
    if (entry->plan) {
        op.plan = (plans_plan_t *) malloc (sizeof *op.plan);
        if (!op.plan)
            return relais_error_set (err, RELAIS_CODE_UNAVAILABLE, "", "out of memory");
        rc = s_req_plan (self, txn, req, op.plan, err);
    }
    if (rc == 0)
        rc = entry->fn (&op);
    if (rc == 0 && entry->plan && !entry->reads)
        rc = s_save_plan (self, txn, op.plan);
    free (op.plan);
    if (!entry->reads) {
        self->stats.ops++;
        if (err->code)
            self->stats.op_errors++;
    }
    return rc;
}

//  ---------------------------------------------------------------------------
//  Deadlines

typedef struct {
    uint64_t now;
    uint8_t keys [S_TICK_BATCH][12 + PLANS_ID_MAX];
    size_t klens [S_TICK_BATCH];
    size_t count;
    uint64_t next;
} s_due_scan_t;

static int
s_due_collect (const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    s_due_scan_t *d = (s_due_scan_t *) arg;
    if (klen < 13 || klen > 12 + PLANS_ID_MAX - 1)
        return 0;
    uint64_t due = relais_key_to_u64 (key);
    if (due > d->now || d->count == S_TICK_BATCH) {
        d->next = due;
        return 1;
    }
    memcpy (d->keys [d->count], key, klen);
    d->klens [d->count++] = klen;
    return 0;
}

static int
s_raise_overdue (plans_engine_t *self, relais_txn_t *txn, const uint8_t *key, size_t klen)
{
    int rc = relais_txn_del (txn, self->db [S_DB_DUE], key, klen);
    if (rc)
        return rc;
    uint64_t due = relais_key_to_u64 (key);
    uint32_t id = (uint32_t) key [8] << 24 | (uint32_t) key [9] << 16
                | (uint32_t) key [10] << 8 | key [11];
    char plan_id [PLANS_ID_MAX];
    memcpy (plan_id, key + 12, klen - 12);
    plan_id [klen - 12] = 0;
    plans_plan_t *plan = (plans_plan_t *) malloc (sizeof *plan);
    if (!plan)
        return -ENOMEM;
    rc = plans_engine_load (self, txn, plan_id, plan);
    if (rc) {
        free (plan);
        return rc == RELAIS_ENOTFOUND || rc == RELAIS_EMALFORMED? 0: rc;
    }
    plans_action_t *a = s_action (plan, id);
    //  A stale entry (due date moved, action done, plan closed) raises nothing
    if (a && a->due == due && s_pending (a) && !a->overdue && plan->state != PLANS_CLOS) {
        a->overdue = true;
        self->stats.overdue++;
        rc = s_history (self, txn, plan, due, "plans", "action_overdue",
                        S_HIST (.action = id, .partner = a->owner, .due = due));
        if (rc == 0) {
            msgpack_sbuffer body;
            msgpack_sbuffer_init (&body);
            msgpack_packer pk;
            msgpack_packer_init (&pk, &body, msgpack_sbuffer_write);
            msgpack_pack_map (&pk, 3);
            relais_pack_kv_uint (&pk, "action", id);
            relais_pack_kv_str (&pk, "owner", a->owner);
            relais_pack_kv_uint (&pk, "due", due);
            rc = s_emit (self, txn, "plan.action_overdue", plan, NULL, 0, &body);
            msgpack_sbuffer_destroy (&body);
        }
        if (rc == 0)
            rc = s_save_plan (self, txn, plan);
    }
    free (plan);
    return rc;
}

typedef struct {
    plans_engine_t *self;
    uint64_t now;
    char ids [S_TICK_BATCH][PLANS_ID_MAX];
    size_t count;
    char after [PLANS_ID_MAX];
} s_stale_scan_t;

static int
s_stale_collect (const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    s_stale_scan_t *s = (s_stale_scan_t *) arg;
    if (klen >= PLANS_ID_MAX)
        return 0;
    memcpy (s->after, key, klen);
    s->after [klen] = 0;
    relais_msg_t msg;
    relais_error_t err;
    if (relais_msg_decode (&msg, val, vlen, &s_stored_limits, &err))
        return 0;
    char state [16];
    s_copy (relais_msg_get (&msg.root, "state"), state, sizeof state);
    uint64_t last = s_uint (&msg.root, "last_activity");
    uint64_t mark = s_uint (&msg.root, "stale_mark");
    relais_msg_release (&msg);
    if (strcmp (state, "clos") != 0 && mark != last
    &&  last + s->self->rules.stale_after_us <= s->now) {
        memcpy (s->ids [s->count++], key, klen);
        s->ids [s->count - 1][klen] = 0;
        if (s->count == S_TICK_BATCH)
            return 1;
    }
    return 0;
}

static int
s_raise_stale (plans_engine_t *self, relais_txn_t *txn, const char *id, uint64_t now)
{
    plans_plan_t *plan = (plans_plan_t *) malloc (sizeof *plan);
    if (!plan)
        return -ENOMEM;
    int rc = plans_engine_load (self, txn, id, plan);
    if (rc) {
        free (plan);
        return rc == RELAIS_ENOTFOUND || rc == RELAIS_EMALFORMED? 0: rc;
    }
    //  Once per quiet period: the mark is the activity it was raised for
    plan->stale_mark = plan->last_activity;
    self->stats.stale++;
    rc = s_history (self, txn, plan, now, "plans", "stale", S_HIST (.due = plan->last_activity));
    if (rc == 0) {
        msgpack_sbuffer body;
        msgpack_sbuffer_init (&body);
        msgpack_packer pk;
        msgpack_packer_init (&pk, &body, msgpack_sbuffer_write);
        msgpack_pack_map (&pk, 1);
        relais_pack_kv_uint (&pk, "last_activity", plan->last_activity);
        rc = s_emit (self, txn, "plan.stale", plan, NULL, 0, &body);
        msgpack_sbuffer_destroy (&body);
    }
    if (rc == 0)
        rc = s_save_plan (self, txn, plan);
    free (plan);
    return rc;
}

int
plans_engine_tick (plans_engine_t *self, relais_txn_t *txn, uint64_t now, uint64_t *next_us)
{
    s_due_scan_t *d = (s_due_scan_t *) malloc (sizeof *d);
    s_stale_scan_t *s = (s_stale_scan_t *) malloc (sizeof *s);
    int rc = d && s? 0: -ENOMEM;
    while (rc == 0) {
        d->now = now;
        d->count = 0;
        d->next = 0;
        rc = relais_txn_scan (txn, self->db [S_DB_DUE], NULL, 0, s_due_collect, d);
        for (size_t i = 0; rc == 0 && i < d->count; i++)
            rc = s_raise_overdue (self, txn, d->keys [i], d->klens [i]);
        if (d->count < S_TICK_BATCH)
            break;
    }
    if (rc == 0 && next_us)
        *next_us = d->next;
    if (self->rules.stale_after_us) {
        s->self = self;
        s->now = now;
        s->after [0] = 0;
        while (rc == 0) {
            s->count = 0;
            size_t alen = strlen (s->after);
            char from [PLANS_ID_MAX + 1];
            memcpy (from, s->after, alen + 1);
            rc = relais_txn_scan (txn, self->db [S_DB_PLANS], alen? from: NULL, alen? alen + 1: 0,
                                  s_stale_collect, s);
            for (size_t i = 0; rc == 0 && i < s->count; i++)
                rc = s_raise_stale (self, txn, s->ids [i], now);
            if (s->count < S_TICK_BATCH)
                break;
        }
    }
    free (d);
    free (s);
    return rc;
}

static int
s_first_due (const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    *(uint64_t *) arg = klen >= 8? relais_key_to_u64 (key): 0;
    return 1;
}

int
plans_engine_next_due (plans_engine_t *self, relais_txn_t *txn, uint64_t *due)
{
    *due = 0;
    return relais_txn_scan (txn, self->db [S_DB_DUE], NULL, 0, s_first_due, due);
}

//  ---------------------------------------------------------------------------
//  Dump

typedef struct {
    plans_engine_t *self;
    relais_txn_t *txn;
    FILE *out;
} s_dump_t;

static int
s_dump_plan (const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    s_dump_t *d = (s_dump_t *) arg;
    relais_msg_t msg;
    relais_error_t err;
    if (relais_msg_decode (&msg, val, vlen, &s_stored_limits, &err))
        return 0;
    plans_plan_t *plan = (plans_plan_t *) malloc (sizeof *plan);
    int rc = plan? s_unpack_plan (&msg.root, plan): -ENOMEM;
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    if (rc == 0) {
        msgpack_packer pk;
        msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
        msgpack_pack_map (&pk, 2);
        relais_pack_str (&pk, "plan");
        relais_pack_raw (&pk, val, vlen);
        relais_pack_str (&pk, "history");
        rc = s_pack_history (d->self, d->txn, &pk, plan, SIZE_MAX);
    }
    relais_msg_release (&msg);
    relais_msg_t all;
    if (rc == 0 && relais_msg_decode (&all, sbuf.data, sbuf.size, &s_stored_limits, &err) == 0) {
        char *text = cli_json_dumps (&all.root, NULL);
        if (text)
            fprintf (d->out, "%s\n", text);
        free (text);
        relais_msg_release (&all);
    }
    msgpack_sbuffer_destroy (&sbuf);
    free (plan);
    return rc == RELAIS_EMALFORMED? 0: rc;
}

int
plans_engine_dump (plans_engine_t *self, relais_txn_t *txn, FILE *out)
{
    s_dump_t d = { self, txn, out };
    return relais_txn_scan (txn, self->db [S_DB_PLANS], NULL, 0, s_dump_plan, &d);
}

//  ---------------------------------------------------------------------------

void
plans_rules_load (plans_rules_t *rules, relais_config_t *config)
{
    rules->reopen_window_us = relais_config_duration_ms (config, "plans/reopen_window",
                                                         30ULL * 86400000) * 1000;
    rules->stale_after_us = relais_config_duration_ms (config, "plans/stale_after",
                                                       3ULL * 86400000) * 1000;
}

plans_engine_t *
plans_engine_new (relais_store_t *store, const plans_rules_t *rules, plans_emit_fn *emit, void *arg)
{
    plans_engine_t *self = (plans_engine_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->store = store;
    self->rules = *rules;
    self->emit = emit;
    self->arg = arg;
    for (int i = 0; plans_dbs [i]; i++)
        if ((self->db [i] = relais_store_dbi (store, plans_dbs [i])) < 0) {
            relais_error ("plans store lacks database %s", plans_dbs [i]);
            free (self);
            return NULL;
        }
    return self;
}

void
plans_engine_destroy (plans_engine_t **self_p)
{
    if (*self_p) {
        free (*self_p);
        *self_p = NULL;
    }
}

void
plans_engine_stats (plans_engine_t *self, plans_stats_t *stats)
{
    *stats = self->stats;
}

void
plans_engine_set_caller (plans_engine_t *self, const char *name)
{
    snprintf (self->caller, sizeof self->caller, "%s", name? name: "");
}

//  ---------------------------------------------------------------------------
//  Erasure and retention (proto/privacy.md): operators' free text goes, the
//  plan and the shape of its story stay

typedef struct {
    size_t idlen;
    const char *id;
    uint64_t texts;
    uint8_t (*keys) [PLANS_ID_MAX + 16];    //  when collecting: entries with a text
    size_t count, cap;
    int rc;
} s_text_scan_t;

static bool
s_entry_has_text (const void *val, size_t vlen)
{
    relais_msg_t msg;
    relais_error_t err;
    if (relais_msg_decode (&msg, val, vlen, &s_stored_limits, &err))
        return false;
    bool has = msg.root.type == MSGPACK_OBJECT_MAP && relais_msg_get (&msg.root, "text") != NULL;
    relais_msg_release (&msg);
    return has;
}

static int
s_text_collect (const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    s_text_scan_t *t = (s_text_scan_t *) arg;
    if (klen != t->idlen + 16 || memcmp (key, t->id, t->idlen) != 0)
        return klen >= t->idlen && memcmp (key, t->id, t->idlen) == 0? 0: 1;
    if (!s_entry_has_text (val, vlen))
        return 0;
    t->texts++;
    if (!t->keys && t->cap == 0)
        return 0;                       //  counting only
    if (t->count == t->cap) {
        size_t cap = 2 * t->cap;
        void *keys = realloc (t->keys, cap * sizeof *t->keys);
        if (!keys)
            return -ENOMEM;
        t->keys = (uint8_t (*) [PLANS_ID_MAX + 16]) keys;
        t->cap = cap;
    }
    memcpy (t->keys [t->count++], key, klen);
    return 0;
}

//  Texts of one plan: its history entries with a "text", and its flag_reason
static int
s_plan_texts (plans_engine_t *self, relais_txn_t *txn, const plans_plan_t *plan,
              s_text_scan_t *t)
{
    t->idlen = strlen (plan->id);
    t->id = plan->id;
    int rc = relais_txn_scan (txn, self->db [S_DB_HISTORY], plan->id, t->idlen, s_text_collect, t);
    t->texts += plan->flag_reason [0] != 0;
    return rc;
}

typedef struct {
    plans_engine_t *self;
    plans_scrub_t *sc;
    plans_plan_t *plan;                 //  scratch
} s_pick_t;

static int
s_scrub_add (plans_scrub_t *sc, const char *id)
{
    if (sc->count == sc->cap) {
        size_t cap = sc->cap? 2 * sc->cap: 64;
        void *ids = realloc (sc->ids, cap * sizeof *sc->ids);
        if (!ids)
            return -ENOMEM;
        sc->ids = (char (*) [PLANS_ID_MAX]) ids;
        sc->cap = cap;
    }
    snprintf (sc->ids [sc->count++], PLANS_ID_MAX, "%s", id);
    return 0;
}

static int
s_pick_plan (const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    s_pick_t *p = (s_pick_t *) arg;
    relais_msg_t msg;
    relais_error_t err;
    if (relais_msg_decode (&msg, val, vlen, &s_stored_limits, &err))
        return 0;                       //  a damaged record: plans.get reports it
    int rc = s_unpack_plan (&msg.root, p->plan);
    relais_msg_release (&msg);
    if (rc)
        return 0;
    bool pick = false;
    if (p->sc->person) {
        for (size_t i = 0; i < p->plan->ref_count && !pick; i++)
            pick = strcmp (p->plan->refs [i], p->sc->person) == 0;
    }
    else
        pick = p->plan->state == PLANS_CLOS && p->plan->closed_at > 0
            && p->plan->closed_at <= p->sc->closed_before;
    return pick? s_scrub_add (p->sc, p->plan->id): 0;
}

int
plans_engine_scrub_pick (plans_engine_t *self, relais_txn_t *txn, plans_scrub_t *sc)
{
    sc->count = 0;
    sc->texts = 0;
    s_pick_t p = { self, sc, (plans_plan_t *) malloc (sizeof (plans_plan_t)) };
    if (!p.plan)
        return -ENOMEM;
    int rc = relais_txn_scan (txn, self->db [S_DB_PLANS], NULL, 0, s_pick_plan, &p);
    //  Count their texts; a purge keeps only the plans that still hold one,
    //  so that running it again changes and audits nothing
    size_t kept = 0;
    for (size_t i = 0; i < sc->count && rc == 0; i++) {
        s_text_scan_t t = { 0 };
        rc = plans_engine_load (self, txn, sc->ids [i], p.plan);
        if (rc == 0)
            rc = s_plan_texts (self, txn, p.plan, &t);
        if (rc == 0 && (sc->person || t.texts > 0)) {
            sc->texts += t.texts;
            memmove (sc->ids [kept++], sc->ids [i], PLANS_ID_MAX);
        }
    }
    if (rc == 0)
        sc->count = kept;
    free (p.plan);
    return rc;
}

//  One history entry again, without its "text"
static int
s_strip_entry (plans_engine_t *self, relais_txn_t *txn, const uint8_t *key, size_t klen)
{
    const void *data;
    size_t size;
    int rc = relais_txn_get (txn, self->db [S_DB_HISTORY], key, klen, &data, &size);
    if (rc)
        return rc == RELAIS_ENOTFOUND? 0: rc;
    relais_msg_t msg;
    relais_error_t err;
    if (relais_msg_decode (&msg, data, size, &s_stored_limits, &err))
        return 0;
    if (msg.root.type != MSGPACK_OBJECT_MAP) {
        relais_msg_release (&msg);
        return 0;
    }
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    const msgpack_object_map *map = &msg.root.via.map;
    uint32_t keep = 0;
    for (uint32_t i = 0; i < map->size; i++)
        keep += !relais_msg_str_eq (&map->ptr [i].key, "text");
    msgpack_pack_map (&pk, keep);
    for (uint32_t i = 0; i < map->size; i++)
        if (!relais_msg_str_eq (&map->ptr [i].key, "text")) {
            relais_pack_object (&pk, &map->ptr [i].key);
            relais_pack_object (&pk, &map->ptr [i].val);
        }
    relais_msg_release (&msg);
    rc = relais_txn_put (txn, self->db [S_DB_HISTORY], key, klen, sbuf.data, sbuf.size);
    msgpack_sbuffer_destroy (&sbuf);
    return rc;
}

int
plans_engine_scrub_apply (plans_engine_t *self, relais_txn_t *txn, plans_scrub_t *sc)
{
    sc->texts = 0;
    plans_plan_t *plan = (plans_plan_t *) malloc (sizeof *plan);
    if (!plan)
        return -ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < sc->count && rc == 0; i++) {
        rc = plans_engine_load (self, txn, sc->ids [i], plan);
        if (rc == RELAIS_ENOTFOUND || rc == RELAIS_EMALFORMED) {
            rc = 0;
            continue;
        }
        s_text_scan_t t = { .cap = 16 };
        t.keys = (uint8_t (*) [PLANS_ID_MAX + 16]) malloc (t.cap * sizeof *t.keys);
        if (!t.keys)
            rc = -ENOMEM;
        if (rc == 0)
            rc = s_plan_texts (self, txn, plan, &t);
        for (size_t k = 0; k < t.count && rc == 0; k++)
            rc = s_strip_entry (self, txn, t.keys [k], t.idlen + 16);
        free (t.keys);
        if (rc == 0 && plan->flag_reason [0]) {
            //  Still flagged or not: only the words go
            memset (plan->flag_reason, 0, sizeof plan->flag_reason);
            rc = s_save_plan (self, txn, plan);
        }
        if (rc == 0)
            sc->texts += t.texts;
    }
    free (plan);
    return rc;
}

void
plans_scrub_release (plans_scrub_t *sc)
{
    free (sc->ids);
    sc->ids = NULL;
    sc->count = sc->cap = 0;
}
