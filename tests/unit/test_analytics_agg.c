/*  The analytics aggregates against a brute-force recomputation.

    For several seeds, the report simulator's stream (sim_model, dry run)
    goes through the same public-view packing intake uses
    (relais_signal_pack_public + level, reasons, person_refs, received_at),
    then into envelopes; synthetic router, plans and capacity events follow
    the contract of the common brief. Every indicator is then compared with
    a recomputation written independently here, over the final state of
    each report. The same events applied in another interleaving of the
    sources (router, plans and capacity before intake) must give a
    byte-identical dump: that is what makes a rebuild equal the live
    state. Dates, ISO weeks and the histogram buckets are checked too. */
#include "analytics_agg.h"
#include "intake_pseudo.h"
#include "intake_rules.h"
#include "relais_signal.h"
#include "sim_model.h"
#include "relais_test.h"

#include <czmq.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_START     1795000000000000ULL     //  2026-11-18T...
#define S_MAX       1600
#define S_PARTNERS  5

static const char *const s_partners [S_PARTNERS] = { "uasa", "samu_social", "maraude_coord", "sdppe", "mus" };
static const char *const s_refusals [4] = { "capacite", "hors_mission", "deja_pris", "autre" };
static const char *const s_kinds [3] = { "hotel", "chu", "sas" };

static char s_root [256];
static int s_stores;

typedef struct {
    bool live;
    char id [32];
    relais_signal_t sig;
    uint32_t level, reasons;
    char refs [RELAIS_SIG_PEOPLE_MAX][RELAIS_SIG_REF_MAX];
    size_t nrefs;
    bool seen;
    uint64_t received, ack_at, shelter_at;
} s_rep_t;

typedef struct {
    char src [16];
    uint64_t seq;
    msgpack_sbuffer bytes;          //  the encoded envelope
} s_event_t;

typedef struct {
    s_event_t *events;
    size_t count, cap;
    uint64_t seqs [4];              //  per source
} s_stream_t;

static int
s_src_index (const char *src)
{
    return strcmp (src, "intake") == 0? 0: strcmp (src, "router") == 0? 1
         : strcmp (src, "plans") == 0? 2: 3;
}

static void
s_emit (s_stream_t *st, const char *src, const char *type, const char *key, uint64_t ts,
        const msgpack_sbuffer *body)
{
    if (st->count == st->cap) {
        st->cap = st->cap? st->cap * 2: 1024;
        st->events = (s_event_t *) realloc (st->events, st->cap * sizeof *st->events);
        CHECK (st->events);
    }
    s_event_t *ev = &st->events [st->count++];
    snprintf (ev->src, sizeof ev->src, "%s", src);
    ev->seq = ++st->seqs [s_src_index (src)];
    msgpack_sbuffer_init (&ev->bytes);
    relais_envelope_pack (&ev->bytes, src, ev->seq, ts, type, key, NULL, body->data, body->size);
}

//  --- applying a stream ------------------------------------------------------

typedef struct {
    s_event_t **events;
    size_t count;
} s_batch_t;

static int
s_apply_batch (relais_txn_t *txn, void *arg)
{
    s_batch_t *b = (s_batch_t *) arg;
    for (size_t i = 0; i < b->count; i++) {
        s_event_t *ev = b->events [i];
        relais_msg_t msg;
        relais_error_t err;
        relais_msg_limits_t limits = { 1 << 20, 0, 0 };
        CHECK_OK (relais_msg_decode (&msg, ev->bytes.data, ev->bytes.size, &limits, &err));
        relais_envelope_t env;
        CHECK_OK (relais_envelope_decode (&msg.root, false, &env, &err));
        int rc = analytics_agg_apply (txn, env.type, &env, NULL);
        relais_msg_release (&msg);
        if (rc && rc != RELAIS_EMALFORMED)
            return rc;
        CHECK (rc == 0);            //  every generated event is well formed
        CHECK_OK (relais_ckpt_set (txn, ev->src, ev->seq));
    }
    return 0;
}

static relais_store_t *
s_store (void)
{
    char dir [300];
    snprintf (dir, sizeof dir, "%s/store-%d", s_root, ++s_stores);
    relais_store_opts_t opts = { 8 << 20, 0, analytics_dbs, 0 };
    relais_store_t *store = relais_store_new (dir, &opts);
    CHECK (store);
    return store;
}

//  Apply events in the given order, 100 per transaction
static void
s_apply (relais_store_t *store, s_event_t **order, size_t count)
{
    for (size_t i = 0; i < count; i += 100) {
        s_batch_t b = { order + i, count - i < 100? count - i: 100 };
        CHECK_OK (relais_store_write (store, s_apply_batch, &b));
    }
}

static int
s_dump_fn (relais_txn_t *txn, void *arg)
{
    return analytics_agg_dump (txn, (FILE *) arg);
}

static char *
s_dump (relais_store_t *store)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    CHECK (out);
    CHECK_OK (relais_store_read (store, s_dump_fn, out));
    fclose (out);
    return text;
}

//  --- queries ---------------------------------------------------------------

typedef struct {
    analytics_query_t q;
    analytics_result_t r;
    int rc;
} s_q_t;

static int
s_query_fn (relais_txn_t *txn, void *arg)
{
    s_q_t *q = (s_q_t *) arg;
    relais_error_t err;
    q->rc = analytics_query_run (txn, &q->q, &q->r, &err);
    return 0;
}

static s_q_t
s_query (relais_store_t *store, const char *indicator, const char *group_by,
         const char *granularity, int64_t from, int64_t to)
{
    s_q_t q;
    memset (&q, 0, sizeof q);
    q.q.indicator = analytics_indicator_find (indicator);
    CHECK (q.q.indicator);
    q.q.group_by = group_by;
    q.q.granularity = granularity;
    q.q.from = from;
    q.q.to = to;
    CHECK_OK (relais_store_read (store, s_query_fn, &q));
    CHECK_OK (q.rc);
    return q;
}

//  Value of group in a "total" result (0 when absent)
static double
s_value (const s_q_t *q, const char *group)
{
    for (size_t i = 0; i < q->r.count; i++)
        if (strcmp (q->r.rows [i].group, group) == 0)
            return q->r.rows [i].value;
    return 0;
}

static const analytics_row_t *
s_row (const s_q_t *q, const char *group)
{
    for (size_t i = 0; i < q->r.count; i++)
        if (strcmp (q->r.rows [i].group, group) == 0)
            return &q->r.rows [i];
    return NULL;
}

//  --- the brute force --------------------------------------------------------

static int64_t
s_metric (const s_rep_t *rep, const char *indicator)
{
    const relais_signal_t *sig = &rep->sig;
    bool shelter = sig->needs & (1u << RELAIS_NEED_MISE_A_L_ABRI);
    if (!strcmp (indicator, "reports"))              return 1;
    if (!strcmp (indicator, "persons"))              return sig->persons;
    if (!strcmp (indicator, "level2"))               return rep->level == 2;
    if (!strcmp (indicator, "encampments"))          return sig->tents > 3;
    if (!strcmp (indicator, "tents"))                return sig->tents;
    if (!strcmp (indicator, "families"))             return (sig->publics >> RELAIS_PUBLIC_FAMILLE) & 1;
    if (!strcmp (indicator, "reports_with_minors"))  return sig->minors > 0;
    if (!strcmp (indicator, "minors"))               return sig->minors;
    if (!strcmp (indicator, "reports_with_pregnant")) return sig->pregnant > 0;
    if (!strcmp (indicator, "pregnant"))             return sig->pregnant;
    if (!strcmp (indicator, "shelter_need"))         return shelter;
    if (!strcmp (indicator, "shelter_persons"))      return shelter? sig->persons: 0;
    if (!strcmp (indicator, "repeat_lieu"))          return (rep->reasons >> INTAKE_REASON_REPETITION_LIEU) & 1;
    if (!strcmp (indicator, "repeat_personne"))      return (rep->reasons >> INTAKE_REASON_REPETITION_PERSONNE) & 1;
    if (!strcmp (indicator, "person_seen_before"))   return rep->seen;
    CHECK (false);
    return 0;
}

static const char *const s_rep_indicators [] = {
    "reports", "persons", "level2", "encampments", "tents", "families", "reports_with_minors",
    "minors", "reports_with_pregnant", "pregnant", "shelter_need", "shelter_persons",
    "repeat_lieu", "repeat_personne", "person_seen_before", NULL
};

//  Group names of a report for a dimension (several for publics)
static size_t
s_groups (const s_rep_t *rep, const char *dim, char groups [][32])
{
    if (!dim) {
        strcpy (groups [0], "all");
        return 1;
    }
    if (!strcmp (dim, "arrondissement")) {
        snprintf (groups [0], 32, "%u", rep->sig.arrondissement);
        return 1;
    }
    if (!strcmp (dim, "level")) {
        snprintf (groups [0], 32, "%u", rep->level);
        return 1;
    }
    if (!strcmp (dim, "source")) {
        snprintf (groups [0], 32, "%s", relais_source_kind_names [rep->sig.source_kind]);
        return 1;
    }
    size_t n = 0;
    for (int p = 0; p < RELAIS_PUBLIC_COUNT; p++)
        if (rep->sig.publics & (1u << p))
            snprintf (groups [n++], 32, "%s", relais_public_names [p]);
    return n;
}

static int
s_cmp_int (const void *a, const void *b)
{
    int x = *(const int *) a, y = *(const int *) b;
    return x < y? -1: x > y;
}

static double
s_brute_percentile (int *buckets, size_t n, double q)
{
    qsort (buckets, n, sizeof *buckets, s_cmp_int);
    size_t rank = (size_t) ceil (q * (double) n);
    if (rank < 1)
        rank = 1;
    return analytics_hist_value (buckets [rank - 1]);
}

//  --- generating the stream -------------------------------------------------

static void
s_pack_created (msgpack_sbuffer *sbuf, const s_rep_t *rep, bool update)
{
    msgpack_sbuffer_clear (sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, sbuf, msgpack_sbuffer_write);
    relais_signal_pack_public (&pk, &rep->sig, 4 + update);
    relais_pack_kv_uint (&pk, "level", rep->level);
    relais_pack_str (&pk, "reasons");
    relais_pack_mask (&pk, rep->reasons, intake_reason_names, INTAKE_REASON_COUNT);
    relais_pack_str (&pk, "person_refs");
    msgpack_pack_array (&pk, rep->nrefs);
    for (size_t i = 0; i < rep->nrefs; i++)
        relais_pack_str (&pk, rep->refs [i]);
    relais_pack_kv_uint (&pk, "received_at", rep->received);
    if (update) {
        relais_pack_str (&pk, "changed");
        msgpack_pack_array (&pk, 0);
    }
}

static void
s_test_seed (uint64_t seed)
{
    sim_model_t *model = sim_model_new (seed, seed % 2? "day": "cold-snap", S_START);
    CHECK (model);
    sim_model_self_ack (model, true);
    sim_model_set_rate (model, 0.002);          //  about 500 s between reports: days
    intake_rules_t rules;
    intake_rules_defaults (&rules);
    uint8_t key [INTAKE_KEY_SIZE];
    memset (key, 7, sizeof key);
    s_rep_t *reps = (s_rep_t *) calloc (S_MAX + 1, sizeof *reps);
    CHECK (reps);
    s_stream_t st;
    memset (&st, 0, sizeof st);
    msgpack_sbuffer req, body;
    msgpack_sbuffer_init (&req);
    msgpack_sbuffer_init (&body);
    zhashx_t *refs_seen = zhashx_new ();
    uint64_t now = S_START + 30 * 86400000000ULL;
    uint64_t closes [S_MAX + 1] = { 0 };
    int64_t first_day = INT64_MAX, last_day = 0;

    for (int i = 0; i < 1200; i++) {
        sim_event_info_t info;
        CHECK_OK (sim_model_next (model, &req, &info));
        relais_msg_t msg;
        relais_error_t err;
        CHECK_OK (relais_msg_decode (&msg, req.data, req.size, NULL, &err));
        uint64_t n = info.n;
        CHECK (n <= S_MAX);
        s_rep_t *rep = &reps [n];
        if (info.op == SIM_OP_SUBMIT) {
            rep->live = true;
            snprintf (rep->id, sizeof rep->id, "SIG-DRY-%llu", (unsigned long long) n);
            CHECK_OK (relais_signal_parse (relais_msg_get (&msg.root, "signal"), "signal", now,
                                           &rep->sig, &err));
            rep->reasons = intake_rules_qualify (&rules, &rep->sig,
                                                 info.repeat? INTAKE_REPEAT_PLACE: 0);
            rep->level = rep->reasons? 2: 1;
            rep->nrefs = intake_pseudo_refs (key, &rep->sig, rep->refs);
            rep->received = rep->sig.observed_at + 60000000ULL * (n % 30);
            for (size_t r = 0; r < rep->nrefs; r++)
                if (zhashx_lookup (refs_seen, rep->refs [r]))
                    rep->seen = true;
            for (size_t r = 0; r < rep->nrefs; r++)
                zhashx_update (refs_seen, rep->refs [r], (void *) 1);
            s_pack_created (&body, rep, false);
            s_emit (&st, "intake", "signal.created", rep->id, rep->received, &body);
            int64_t day = analytics_day_of (rep->sig.observed_at);
            if (day < first_day)
                first_day = day;
            if (day > last_day)
                last_day = day;
        }
        else {
            //  the report the update or close is about
            for (n = 1; n <= S_MAX && strcmp (reps [n].id, info.id) != 0; n++)
                ;
            CHECK (n <= S_MAX);
            rep = &reps [n];
            if (info.op == SIM_OP_UPDATE) {
                CHECK_OK (relais_signal_apply_changes (&rep->sig, relais_msg_get (&msg.root, "changes"),
                                                       "changes", now, &err));
                uint32_t repeats = rep->reasons & ((1u << INTAKE_REASON_REPETITION_LIEU)
                                                 | (1u << INTAKE_REASON_REPETITION_PERSONNE));
                rep->reasons = intake_rules_qualify (&rules, &rep->sig, 0) | repeats;
                if (rep->reasons)
                    rep->level = 2;
                rep->nrefs = intake_pseudo_refs (key, &rep->sig, rep->refs);
                for (size_t r = 0; r < rep->nrefs; r++)
                    if (zhashx_lookup (refs_seen, rep->refs [r]))
                        rep->seen = true;
                for (size_t r = 0; r < rep->nrefs; r++)
                    zhashx_update (refs_seen, rep->refs [r], (void *) 1);
                s_pack_created (&body, rep, true);
                s_emit (&st, "intake", "signal.updated", rep->id, rep->received + 1000, &body);
            }
            else {
                msgpack_sbuffer_clear (&body);
                msgpack_packer pk;
                msgpack_packer_init (&pk, &body, msgpack_sbuffer_write);
                msgpack_pack_map (&pk, 3);
                relais_pack_kv_str (&pk, "reason", info.reason);
                relais_pack_kv_uint (&pk, "level", rep->level);
                relais_pack_kv_uint (&pk, "arrondissement", rep->sig.arrondissement);
                s_emit (&st, "intake", "signal.closed", rep->id, rep->received + 2000, &body);
                closes [n]++;
            }
        }
        relais_msg_release (&msg);
    }

    //  Router, plans and capacity, following the common brief's contract
    uint64_t route_counts [S_PARTNERS][4] = { { 0 } };
    msgpack_packer pk;
    msgpack_packer_init (&pk, &body, msgpack_sbuffer_write);
    //  capacity: 6 structures declared on the first day
    int64_t cap_free [3] = { 0 };
    for (int s = 0; s < 6; s++) {
        msgpack_sbuffer_clear (&body);
        msgpack_pack_map (&pk, 6);
        relais_pack_kv_str (&pk, "kind", s_kinds [s % 3]);
        relais_pack_kv_uint (&pk, "arrondissement", 1 + s);
        relais_pack_kv_uint (&pk, "places", 20 + s);
        relais_pack_kv_uint (&pk, "households", 5);
        relais_pack_str (&pk, "publics");
        msgpack_pack_array (&pk, 0);
        relais_pack_kv_str (&pk, "operator", "op");
        char id [32];
        snprintf (id, sizeof id, "struct-%d", s);
        s_emit (&st, "capacity", "capacity.declared", id, S_START, &body);
    }
    //  per day: the free places at the end of that day, by kind
    int64_t days = last_day - first_day + 1;
    int64_t *free_end = (int64_t *) calloc ((size_t) days + 1, sizeof *free_end);
    CHECK (free_end);
    int64_t struct_free [6];
    for (int s = 0; s < 6; s++)
        struct_free [s] = 20 + s;
    //  the declared values stand on day first_day if S_START is that day
    CHECK (analytics_day_of (S_START) <= first_day);
    for (int64_t d = 0; d < days; d++) {
        //  one capacity.updated per structure on even days
        if (d % 2 == 0)
            for (int s = 0; s < 6; s++) {
                struct_free [s] = (s * 7 + d * 3) % 15;
                msgpack_sbuffer_clear (&body);
                msgpack_pack_map (&pk, 6);
                relais_pack_kv_str (&pk, "kind", s_kinds [s % 3]);
                relais_pack_kv_uint (&pk, "places", 20 + s);
                relais_pack_kv_uint (&pk, "occupied", 20 + s - struct_free [s]);
                relais_pack_kv_uint (&pk, "reserved", 0);
                relais_pack_kv_uint (&pk, "free", struct_free [s]);
                relais_pack_kv_str (&pk, "cause", "occupancy");
                char id [32];
                snprintf (id, sizeof id, "struct-%d", s);
                s_emit (&st, "capacity", "capacity.updated", id,
                        (uint64_t) (first_day + d) * 86400000000ULL + 3600000000ULL * 12, &body);
            }
        free_end [d] = 0;
        for (int s = 0; s < 6; s++)
            free_end [d] += struct_free [s];
    }
    for (int s = 0; s < 6; s++)
        cap_free [s % 3] += struct_free [s];

    int ack_buckets [3][S_MAX];
    size_t ack_count [3] = { 0 };
    for (uint64_t n = 1; n <= S_MAX; n++) {
        s_rep_t *rep = &reps [n];
        if (!rep->live)
            continue;
        int p = (int) (n % S_PARTNERS);
        msgpack_sbuffer_clear (&body);
        msgpack_pack_map (&pk, 2);
        relais_pack_kv_str (&pk, "partner", s_partners [p]);
        relais_pack_kv_uint (&pk, "level", rep->level);
        s_emit (&st, "router", "route.assigned", rep->id, rep->received + 5000000, &body);
        route_counts [p][0]++;
        if (n % 3) {
            //  two acknowledgements: only the first counts for the delay
            for (int k = 0; k < 2; k++) {
                uint64_t at = rep->received + (n * 7919 % 20000) * 1000000ULL + k * 1000000000ULL;
                msgpack_sbuffer_clear (&body);
                msgpack_pack_map (&pk, 3);
                relais_pack_kv_str (&pk, "partner", s_partners [p]);
                relais_pack_kv_uint (&pk, "mseq", n);
                relais_pack_kv_uint (&pk, "at", at);
                s_emit (&st, "router", "route.acknowledged", rep->id, at, &body);
                route_counts [p][1]++;
                if (k == 0)
                    rep->ack_at = at;
            }
            int b = analytics_hist_bucket (rep->ack_at - rep->received);
            ack_buckets [0][ack_count [0]++] = b;
            ack_buckets [rep->level][ack_count [rep->level]++] = b;
        }
        else {
            msgpack_sbuffer_clear (&body);
            msgpack_pack_map (&pk, 3);
            relais_pack_kv_str (&pk, "partner", s_partners [p]);
            relais_pack_kv_uint (&pk, "mseq", n);
            relais_pack_kv_str (&pk, "reason", s_refusals [n % 4]);
            s_emit (&st, "router", "route.refused", rep->id, rep->received + 9000000, &body);
            route_counts [p][2]++;
        }
        if (n % 6 == 0) {
            msgpack_sbuffer_clear (&body);
            msgpack_pack_map (&pk, 4);
            relais_pack_kv_str (&pk, "partner", s_partners [p]);
            relais_pack_kv_str (&pk, "fallback", "mus");
            relais_pack_kv_str (&pk, "cause", "refused");
            relais_pack_kv_uint (&pk, "mseq", n);
            s_emit (&st, "router", "route.escalated", rep->id, rep->received + 9500000, &body);
            route_counts [p][3]++;
        }
        if (rep->level == 2 && n % 4 == 0) {
            char plan [32];
            snprintf (plan, sizeof plan, "PLAN-%llu", (unsigned long long) n);
            msgpack_sbuffer_clear (&body);
            msgpack_pack_map (&pk, 3);
            relais_pack_kv_str (&pk, "signal", rep->id);
            relais_pack_kv_uint (&pk, "arrondissement", rep->sig.arrondissement);
            relais_pack_kv_uint (&pk, "level", 2);
            s_emit (&st, "plans", "plan.opened", plan, rep->received + 60000000, &body);
            uint64_t closed_at = rep->received + (n * 13 % 90000) * 1000000ULL;
            msgpack_sbuffer_clear (&body);
            msgpack_pack_map (&pk, 3);
            relais_pack_kv_str (&pk, "outcome", n % 8 == 0? "mise_a_l_abri": "orientation");
            relais_pack_kv_uint (&pk, "arrondissement", rep->sig.arrondissement);
            relais_pack_str (&pk, "signals");
            msgpack_pack_array (&pk, 1);
            relais_pack_str (&pk, rep->id);
            s_emit (&st, "plans", "plan.closed", plan, closed_at, &body);
            if (n % 8 == 0)
                rep->shelter_at = closed_at;
        }
    }
    //  A malformed event is refused without effect
    {
        relais_store_t *store = s_store ();
        msgpack_sbuffer_clear (&body);
        msgpack_pack_map (&pk, 1);
        relais_pack_kv_str (&pk, "mseq", "not a partner");
        msgpack_sbuffer env;
        msgpack_sbuffer_init (&env);
        relais_envelope_pack (&env, "router", 1, S_START, "route.refused", "SIG-X", NULL,
                              body.data, body.size);
        relais_msg_t msg;
        relais_error_t err;
        CHECK_OK (relais_msg_decode (&msg, env.data, env.size, NULL, &err));
        relais_envelope_t e;
        CHECK_OK (relais_envelope_decode (&msg.root, false, &e, &err));
        CHECK (analytics_agg_apply (NULL, e.type, &e, NULL) == RELAIS_EMALFORMED);
        relais_msg_release (&msg);
        msgpack_sbuffer_destroy (&env);
        relais_store_destroy (&store);
    }

    //  Order A: the stream as generated (intake first). Order B: the other
    //  sources first, intake last, each source in its own order.
    s_event_t **a = (s_event_t **) calloc (st.count, sizeof *a);
    s_event_t **b = (s_event_t **) calloc (st.count, sizeof *b);
    CHECK (a && b);
    size_t nb = 0;
    for (size_t i = 0; i < st.count; i++)
        a [i] = &st.events [i];
    for (int pass = 3; pass >= 0; pass--)
        for (size_t i = 0; i < st.count; i++)
            if (s_src_index (st.events [i].src) == pass)
                b [nb++] = &st.events [i];
    CHECK (nb == st.count);
    relais_store_t *sa = s_store (), *sb = s_store ();
    s_apply (sa, a, st.count);
    s_apply (sb, b, st.count);
    char *da = s_dump (sa), *db = s_dump (sb);
    CHECK (strlen (da) > 1000);
    CHECK_STR (da, db);
    free (da);
    free (db);

    //  Every report indicator, by every dimension, over the whole range
    const char *dims [] = { NULL, "arrondissement", "level", "source", "public" };
    for (int i = 0; s_rep_indicators [i]; i++)
        for (int d = 0; d < 5; d++) {
            zhashx_t *expect = zhashx_new ();
            for (uint64_t n = 1; n <= S_MAX; n++) {
                if (!reps [n].live)
                    continue;
                char groups [RELAIS_PUBLIC_COUNT][32];
                size_t ng = s_groups (&reps [n], dims [d], groups);
                for (size_t g = 0; g < ng; g++) {
                    int64_t v = (int64_t) (intptr_t) zhashx_lookup (expect, groups [g]);
                    zhashx_update (expect, groups [g], (void *) (intptr_t) (v + s_metric (&reps [n], s_rep_indicators [i])));
                }
            }
            s_q_t q = s_query (sa, s_rep_indicators [i], dims [d], "total", first_day, last_day);
            for (int64_t *v = (int64_t *) zhashx_first (expect); v; v = (int64_t *) zhashx_next (expect)) {
                const char *group = (const char *) zhashx_cursor (expect);
                int64_t want = (int64_t) (intptr_t) v;
                if (want != (int64_t) s_value (&q, group)) {
                    fprintf (stderr, "seed %llu %s by %s group %s: %lld != %g\n",
                             (unsigned long long) seed, s_rep_indicators [i], dims [d]? dims [d]: "none",
                             group, (long long) want, s_value (&q, group));
                    CHECK (false);
                }
            }
            //  and nothing the brute force does not know (0 values are absent)
            for (size_t r = 0; r < q.r.count; r++)
                CHECK (q.r.rows [r].value == 0
                    || (int64_t) (intptr_t) zhashx_lookup (expect, q.r.rows [r].group) == (int64_t) q.r.rows [r].value);
            analytics_result_free (&q.r);
            zhashx_destroy (&expect);
        }
    //  Daily series sum to the total; weeks too
    {
        s_q_t total = s_query (sa, "reports", NULL, "total", first_day, last_day);
        s_q_t daily = s_query (sa, "reports", NULL, "day", first_day, last_day);
        s_q_t weekly = s_query (sa, "reports", NULL, "week", first_day, last_day);
        double sum_d = 0, sum_w = 0;
        for (size_t r = 0; r < daily.r.count; r++)
            sum_d += daily.r.rows [r].value;
        for (size_t r = 0; r < weekly.r.count; r++)
            sum_w += weekly.r.rows [r].value;
        CHECK (daily.r.count >= 3);
        CHECK (sum_d == s_value (&total, "all") && sum_w == sum_d);
        analytics_result_free (&total.r);
        analytics_result_free (&daily.r);
        analytics_result_free (&weekly.r);
    }
    //  Level-2 share
    {
        s_q_t q = s_query (sa, "level2_share", NULL, "total", first_day, last_day);
        int64_t l2 = 0, all = 0;
        for (uint64_t n = 1; n <= S_MAX; n++)
            if (reps [n].live) {
                all++;
                l2 += reps [n].level == 2;
            }
        const analytics_row_t *row = s_row (&q, "all");
        CHECK (row && row->numerator == l2 && row->count == all);
        CHECK (fabs (row->value - (double) l2 / (double) all) < 1e-9);
        analytics_result_free (&q.r);
    }
    //  Level-2 reasons
    {
        s_q_t q = s_query (sa, "level2_reasons", "reason", "total", first_day, last_day);
        for (int r = 0; r < INTAKE_REASON_COUNT; r++) {
            int64_t want = 0;
            for (uint64_t n = 1; n <= S_MAX; n++)
                want += reps [n].live && (reps [n].reasons & (1u << r));
            CHECK ((int64_t) s_value (&q, intake_reason_names [r]) == want);
        }
        analytics_result_free (&q.r);
    }
    //  Closures (on the day of the close event: the whole stream's days)
    {
        s_q_t q = s_query (sa, "closures", NULL, "total", first_day - 1, last_day + 400);
        int64_t want = 0;
        for (uint64_t n = 1; n <= S_MAX; n++)
            want += (int64_t) closes [n];
        CHECK ((int64_t) s_value (&q, "all") == want);
        analytics_result_free (&q.r);
    }
    //  Acknowledgement delays: counts and percentiles, by level
    {
        s_q_t q = s_query (sa, "ack_delay", "level", "total", first_day, last_day);
        s_q_t all = s_query (sa, "ack_delay", NULL, "total", first_day, last_day);
        for (int l = 0; l <= 2; l++) {
            const analytics_row_t *row = l? s_row (&q, l == 1? "1": "2"): s_row (&all, "all");
            if (!ack_count [l]) {
                CHECK (!row);
                continue;
            }
            CHECK (row && row->count == (int64_t) ack_count [l]);
            CHECK (row->p50 == s_brute_percentile (ack_buckets [l], ack_count [l], 0.5));
            CHECK (row->p90 == s_brute_percentile (ack_buckets [l], ack_count [l], 0.9));
            CHECK (row->p99 == s_brute_percentile (ack_buckets [l], ack_count [l], 0.99));
        }
        analytics_result_free (&q.r);
        analytics_result_free (&all.r);
    }
    //  Time to shelter
    {
        s_q_t q = s_query (sa, "shelter_delay", NULL, "total", first_day, last_day);
        int shl [S_MAX];
        size_t count = 0;
        for (uint64_t n = 1; n <= S_MAX; n++)
            if (reps [n].live && reps [n].shelter_at)
                shl [count++] = analytics_hist_bucket (reps [n].shelter_at - reps [n].received);
        const analytics_row_t *row = s_row (&q, "all");
        CHECK (count > 0 && row && row->count == (int64_t) count);
        CHECK (row->p50 == s_brute_percentile (shl, count, 0.5));
        analytics_result_free (&q.r);
    }
    //  Routes by partner
    {
        const char *names [4] = { "routes_assigned", "routes_acknowledged", "refusals", "escalations" };
        for (int k = 0; k < 4; k++) {
            s_q_t q = s_query (sa, names [k], "partner", "total", first_day - 1, last_day + 5);
            for (int p = 0; p < S_PARTNERS; p++)
                CHECK ((uint64_t) s_value (&q, s_partners [p]) == route_counts [p][k]);
            analytics_result_free (&q.r);
        }
    }
    //  Plan outcomes
    {
        s_q_t q = s_query (sa, "plan_outcomes", "outcome", "total", first_day - 1, last_day + 5);
        int64_t shelter = 0, orientation = 0;
        for (uint64_t n = 1; n <= S_MAX; n++)
            if (reps [n].live && reps [n].level == 2 && n % 4 == 0)
                {
                if (n % 8 == 0)
                    shelter++;
                else
                    orientation++;
            }
        CHECK ((int64_t) s_value (&q, "mise_a_l_abri") == shelter);
        CHECK ((int64_t) s_value (&q, "orientation") == orientation);
        analytics_result_free (&q.r);
    }
    //  Capacity: free places by kind at the end, and unmet demand per day
    {
        s_q_t q = s_query (sa, "capacity_free", "kind", "total", first_day, last_day);
        for (int k = 0; k < 3; k++)
            CHECK ((int64_t) s_value (&q, s_kinds [k]) == cap_free [k]);
        analytics_result_free (&q.r);
        s_q_t u = s_query (sa, "unmet_demand", NULL, "day", first_day, last_day);
        CHECK (u.r.count == (size_t) days);
        for (int64_t d = 0; d < days; d++) {
            int64_t demand = 0;
            for (uint64_t n = 1; n <= S_MAX; n++)
                if (reps [n].live && analytics_day_of (reps [n].sig.observed_at) == first_day + d)
                    demand += s_metric (&reps [n], "shelter_persons");
            int64_t want = demand > free_end [d]? demand - free_end [d]: 0;
            CHECK (u.r.rows [d].count == want);
        }
        analytics_result_free (&u.r);
    }

    relais_store_destroy (&sa);
    relais_store_destroy (&sb);
    for (size_t i = 0; i < st.count; i++)
        msgpack_sbuffer_destroy (&st.events [i].bytes);
    free (st.events);
    free (a);
    free (b);
    free (free_end);
    free (reps);
    zhashx_destroy (&refs_seen);
    msgpack_sbuffer_destroy (&req);
    msgpack_sbuffer_destroy (&body);
    sim_model_destroy (&model);
    printf ("seed %llu: OK\n", (unsigned long long) seed);
}

static void
s_test_calendar (void)
{
    int64_t from, to;
    char text [32];
    CHECK_OK (analytics_period_parse ("2026-W47", &from, &to));
    analytics_day_text (from, text, sizeof text);
    CHECK_STR (text, "2026-11-16");
    analytics_day_text (to, text, sizeof text);
    CHECK_STR (text, "2026-11-22");
    analytics_period_label (from, "week", text, sizeof text);
    CHECK_STR (text, "2026-W47");
    CHECK_OK (analytics_period_parse ("2020-W53", &from, &to));
    analytics_day_text (from, text, sizeof text);
    CHECK_STR (text, "2020-12-28");
    CHECK (analytics_period_parse ("2025-W53", &from, &to) == -1);
    CHECK_OK (analytics_period_parse ("2024-02", &from, &to));
    CHECK (to - from == 28);
    analytics_period_label (to, "month", text, sizeof text);
    CHECK_STR (text, "2024-02");
    CHECK_OK (analytics_period_parse ("2025-01-01", &from, &to));
    analytics_period_label (from, "week", text, sizeof text);
    CHECK_STR (text, "2025-W01");
    CHECK (analytics_period_parse ("2025-13-01", &from, &to) == -1);
    CHECK (analytics_period_parse ("yesterday", &from, &to) == -1);
    //  Buckets: monotonic, bounded error
    CHECK (analytics_hist_bucket (0) == 0 && analytics_hist_bucket (1000000) == 0);
    CHECK (analytics_hist_bucket (1000001) == 1);
    int last = 0;
    for (uint64_t us = 1; us < 400ULL * 86400 * 1000000; us = us * 11 / 10 + 1) {
        int b = analytics_hist_bucket (us);
        CHECK (b >= last);
        last = b;
        double v = analytics_hist_value (b), s = (double) us / 1e6;
        if (b > 0 && b < ANALYTICS_HIST_BUCKETS - 1)
            CHECK (v / s < 1.092 && s / v < 1.092);
    }
    CHECK (last == ANALYTICS_HIST_BUCKETS - 1);
}

int
main (void)
{
    const char *tmp = getenv ("RELAIS_TEST_TMP");
    mkdir (tmp? tmp: "/tmp", 0700);
    snprintf (s_root, sizeof s_root, "%s/analytics-agg-%d", tmp? tmp: "/tmp", (int) getpid ());
    CHECK (mkdir (s_root, 0700) == 0);
    s_test_calendar ();
    for (uint64_t seed = 1; seed <= 3; seed++)
        s_test_seed (seed);
    char cmd [400];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", s_root);
    CHECK (system (cmd) == 0);
    printf ("test_analytics_agg: OK\n");
    return 0;
}
