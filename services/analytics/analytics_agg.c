/*  =========================================================================
    analytics_agg - the aggregates of the analytics service
    (see analytics_agg.h and proto/analytics.md)
    =========================================================================
*/
#include "analytics_agg.h"
#include "relais_signal.h"

#include <czmq.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const analytics_dbs [] = { "agg", "reports", "persons", "structs", "plans", NULL };
enum { S_DB_AGG, S_DB_REPORTS, S_DB_PERSONS, S_DB_STRUCTS, S_DB_PLANS };

#define S_CELL_VERSION  1
#define S_METRICS_MAX   (2 + ANALYTICS_HIST_BUCKETS)
#define S_KEY_MAX       160
#define S_ENCAMPMENT_TENTS  3       //  DOMAIN.md: an encampment has more than 3 tents

static const char *const s_reason_names [] = {
    "campement", "mineurs", "grossesse", "domaine_municipal", "grande_vulnerabilite",
    "sensible", "transfert_elu", "escalade", "repetition_lieu", "repetition_personne"
};
#define S_REASONS 10
#define S_REASON_REPEAT_LIEU      8
#define S_REASON_REPEAT_PERSONNE  9

//  ---------------------------------------------------------------------------
//  Families: their dimensions (fields of the cell text, in order) and size

typedef struct {
    const char *name;
    const char *dims;
    int metrics;
} s_family_t;

enum { S_PLN_OPENED, S_PLN_CLOSED, S_PLN_REOPENED, S_PLN_FLAGGED, S_PLN_STALE, S_PLN_COUNT };
enum { S_RTE_ASSIGNED, S_RTE_ACKNOWLEDGED, S_RTE_REFUSED, S_RTE_ESCALATED, S_RTE_COUNT };
enum { S_ACT_ADDED, S_ACT_OVERDUE, S_ACT_DONE, S_ACT_CANCELLED, S_ACT_COUNT };
enum { S_CAP_STRUCTURES, S_CAP_PLACES, S_CAP_OCCUPIED, S_CAP_RESERVED, S_CAP_FREE, S_CAP_COUNT };
enum { S_CPE_ENTRIES, S_CPE_EXITS, S_CPE_ALERTS, S_CPE_COUNT };

static const s_family_t s_families [] = {
    { "rep", "arrondissement,level,source", A_REP_COUNT },
    { "pub", "public,arrondissement,level,source", A_REP_COUNT },
    { "rsn", "reason,arrondissement", 1 },
    { "clo", "reason,arrondissement", 1 },
    { "ack", "level,arrondissement", 2 + ANALYTICS_HIST_BUCKETS },
    { "shl", "level,arrondissement", 2 + ANALYTICS_HIST_BUCKETS },
    { "rte", "partner", S_RTE_COUNT },
    { "rfr", "partner,reason", 1 },
    { "esc", "partner,cause", 1 },
    { "pln", "arrondissement", S_PLN_COUNT },
    { "pout", "outcome,arrondissement", 1 },
    { "act", "owner", S_ACT_COUNT },
    { "cap", "kind", S_CAP_COUNT },
    { "cpe", "kind", S_CPE_COUNT },
    { NULL, NULL, 0 }
};

static const s_family_t *
s_family (const char *name)
{
    for (int i = 0; s_families [i].name; i++)
        if (strcmp (s_families [i].name, name) == 0)
            return &s_families [i];
    return NULL;
}

const analytics_indicator_t analytics_indicators [] = {
    { "reports", "rep", A_REPORTS, ANALYTICS_COUNT, "arrondissement,level,source,public", "reports (signal.created), on the day observed" },
    { "persons", "rep", A_PERSONS, ANALYTICS_COUNT, "arrondissement,level,source,public", "persons in those reports" },
    { "level2", "rep", A_LEVEL2, ANALYTICS_COUNT, "arrondissement,level,source,public", "reports of level 2 (current level)" },
    { "level2_share", "rep", A_LEVEL2, ANALYTICS_RATIO, "arrondissement,level,source,public", "level2 / reports" },
    { "level2_reasons", "rsn", 0, ANALYTICS_COUNT, "reason,arrondissement", "reports holding each level-2 reason" },
    { "encampments", "rep", A_ENCAMPMENTS, ANALYTICS_COUNT, "arrondissement,level,source,public", "reports of more than 3 tents" },
    { "tents", "rep", A_TENTS, ANALYTICS_COUNT, "arrondissement,level,source,public", "tents counted" },
    { "families", "rep", A_FAMILIES, ANALYTICS_COUNT, "arrondissement,level,source,public", "reports naming the public famille" },
    { "reports_with_minors", "rep", A_WITH_MINORS, ANALYTICS_COUNT, "arrondissement,level,source,public", "reports with minors > 0" },
    { "minors", "rep", A_MINORS, ANALYTICS_COUNT, "arrondissement,level,source,public", "minors counted" },
    { "reports_with_pregnant", "rep", A_WITH_PREGNANT, ANALYTICS_COUNT, "arrondissement,level,source,public", "reports with pregnant > 0" },
    { "pregnant", "rep", A_PREGNANT, ANALYTICS_COUNT, "arrondissement,level,source,public", "pregnant women counted" },
    { "shelter_need", "rep", A_SHELTER_NEED, ANALYTICS_COUNT, "arrondissement,level,source,public", "reports needing mise_a_l_abri" },
    { "shelter_persons", "rep", A_SHELTER_PERSONS, ANALYTICS_COUNT, "arrondissement,level,source,public", "persons in reports needing mise_a_l_abri" },
    { "repeat_lieu", "rep", A_REPEAT_LIEU, ANALYTICS_COUNT, "arrondissement,level,source,public", "reports with reason repetition_lieu" },
    { "repeat_personne", "rep", A_REPEAT_PERSONNE, ANALYTICS_COUNT, "arrondissement,level,source,public", "reports with reason repetition_personne" },
    { "person_seen_before", "rep", A_PERSON_SEEN, ANALYTICS_COUNT, "arrondissement,level,source,public", "reports naming a person_ref seen in an earlier report" },
    { "ack_delay", "ack", 0, ANALYTICS_HIST, "level,arrondissement", "report received -> first route.acknowledged (seconds)" },
    { "shelter_delay", "shl", 0, ANALYTICS_HIST, "level,arrondissement", "report received -> plan.closed mise_a_l_abri (seconds)" },
    { "closures", "clo", 0, ANALYTICS_COUNT, "reason,arrondissement", "signal.closed by closure code, on the day closed" },
    { "routes_assigned", "rte", S_RTE_ASSIGNED, ANALYTICS_COUNT, "partner", "route.assigned by partner" },
    { "routes_acknowledged", "rte", S_RTE_ACKNOWLEDGED, ANALYTICS_COUNT, "partner", "route.acknowledged by partner" },
    { "refusals", "rte", S_RTE_REFUSED, ANALYTICS_COUNT, "partner", "route.refused by partner" },
    { "escalations", "rte", S_RTE_ESCALATED, ANALYTICS_COUNT, "partner", "route.escalated by partner" },
    { "refusal_reasons", "rfr", 0, ANALYTICS_COUNT, "partner,reason", "route.refused by partner and reason" },
    { "escalation_causes", "esc", 0, ANALYTICS_COUNT, "partner,cause", "route.escalated by partner and cause" },
    { "plans_opened", "pln", S_PLN_OPENED, ANALYTICS_COUNT, "arrondissement", "plan.opened" },
    { "plans_closed", "pln", S_PLN_CLOSED, ANALYTICS_COUNT, "arrondissement", "plan.closed" },
    { "plans_reopened", "pln", S_PLN_REOPENED, ANALYTICS_COUNT, "arrondissement", "plan.reopened" },
    { "plans_flagged", "pln", S_PLN_FLAGGED, ANALYTICS_COUNT, "arrondissement", "plan.flagged true" },
    { "plans_stale", "pln", S_PLN_STALE, ANALYTICS_COUNT, "arrondissement", "plan.stale" },
    { "plan_outcomes", "pout", 0, ANALYTICS_COUNT, "outcome,arrondissement", "plan.closed by outcome" },
    { "actions_added", "act", S_ACT_ADDED, ANALYTICS_COUNT, "owner", "plan.action_added by owner" },
    { "actions_overdue", "act", S_ACT_OVERDUE, ANALYTICS_COUNT, "owner", "plan.action_overdue by owner" },
    { "actions_done", "act", S_ACT_DONE, ANALYTICS_COUNT, "owner", "plan.action_changed to fait" },
    { "capacity_places", "cap", S_CAP_PLACES, ANALYTICS_GAUGE, "kind", "places, last value (carried forward)" },
    { "capacity_occupied", "cap", S_CAP_OCCUPIED, ANALYTICS_GAUGE, "kind", "occupied places, last value" },
    { "capacity_reserved", "cap", S_CAP_RESERVED, ANALYTICS_GAUGE, "kind", "reserved places, last value" },
    { "capacity_free", "cap", S_CAP_FREE, ANALYTICS_GAUGE, "kind", "free places, last value" },
    { "capacity_structures", "cap", S_CAP_STRUCTURES, ANALYTICS_GAUGE, "kind", "structures declared" },
    { "capacity_entries", "cpe", S_CPE_ENTRIES, ANALYTICS_COUNT, "kind", "persons entered (capacity.entry count)" },
    { "capacity_exits", "cpe", S_CPE_EXITS, ANALYTICS_COUNT, "kind", "persons left (capacity.exit count)" },
    { "capacity_alerts", "cpe", S_CPE_ALERTS, ANALYTICS_COUNT, "kind", "capacity.alert" },
    { "unmet_demand", "rep", A_SHELTER_PERSONS, ANALYTICS_DERIVED, "", "per day max(0, shelter_persons - free places at the end of the day), summed" },
    { NULL, NULL, 0, 0, NULL, NULL }
};

const analytics_indicator_t *
analytics_indicator_find (const char *name)
{
    for (int i = 0; analytics_indicators [i].name; i++)
        if (strcmp (analytics_indicators [i].name, name) == 0)
            return &analytics_indicators [i];
    return NULL;
}

//  ---------------------------------------------------------------------------
//  Days

int64_t
analytics_day_of (uint64_t ts_us)
{
    return (int64_t) (ts_us / 86400000000ULL);
}

//  Howard Hinnant's civil calendar algorithms
static void
s_civil_from_days (int64_t z, int *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0? z: z - 146096) / 146097;
    unsigned doe = (unsigned) (z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t) yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10? mp + 3: mp - 9;
    *y = (int) (yy + (*m <= 2));
}

static int64_t
s_days_from_civil (int y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0? y: y - 399) / 400;
    unsigned yoe = (unsigned) (y - era * 400);
    unsigned doy = (153 * (m > 2? m - 3: m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t) doe - 719468;
}

void
analytics_day_text (int64_t day, char *buf, size_t size)
{
    int y;
    unsigned m, d;
    s_civil_from_days (day, &y, &m, &d);
    snprintf (buf, size, "%04d-%02u-%02u", y, m, d);
}

//  ISO week: year and week number of day
static void
s_iso_week (int64_t day, int *year, int *week)
{
    int64_t weekday = ((day + 3) % 7 + 7) % 7;         //  Monday 0
    int64_t thursday = day - weekday + 3;
    int y;
    unsigned m, d;
    s_civil_from_days (thursday, &y, &m, &d);
    *year = y;
    *week = (int) ((thursday - s_days_from_civil (y, 1, 1)) / 7 + 1);
}

static int64_t
s_iso_week_start (int year, int week)
{
    int64_t jan4 = s_days_from_civil (year, 1, 4);
    int64_t weekday = ((jan4 + 3) % 7 + 7) % 7;
    return jan4 - weekday + (int64_t) (week - 1) * 7;
}

int
analytics_period_parse (const char *text, int64_t *from, int64_t *to)
{
    int y, a, b;
    char tail;
    if (!text)
        return -1;
    size_t len = strlen (text);
    if (len == 10 && sscanf (text, "%4d-%2d-%2d%c", &y, &a, &b, &tail) == 3
    &&  a >= 1 && a <= 12 && b >= 1 && b <= 31 && y >= 1970 && y < 3000) {
        *from = *to = s_days_from_civil (y, (unsigned) a, (unsigned) b);
        return 0;
    }
    if (len == 8 && sscanf (text, "%4d-W%2d%c", &y, &a, &tail) == 2
    &&  a >= 1 && a <= 53 && y >= 1970 && y < 3000) {
        *from = s_iso_week_start (y, a);
        *to = *from + 6;
        int yy, ww;
        s_iso_week (*from, &yy, &ww);
        return yy == y && ww == a? 0: -1;       //  week 53 of a 52-week year
    }
    if (len == 7 && sscanf (text, "%4d-%2d%c", &y, &a, &tail) == 2
    &&  a >= 1 && a <= 12 && y >= 1970 && y < 3000) {
        *from = s_days_from_civil (y, (unsigned) a, 1);
        *to = (a == 12? s_days_from_civil (y + 1, 1, 1): s_days_from_civil (y, (unsigned) a + 1, 1)) - 1;
        return 0;
    }
    return -1;
}

void
analytics_period_label (int64_t day, const char *granularity, char *buf, size_t size)
{
    if (strcmp (granularity, "week") == 0) {
        int y, w;
        s_iso_week (day, &y, &w);
        snprintf (buf, size, "%04d-W%02d", y, w);
    }
    else
    if (strcmp (granularity, "month") == 0) {
        int y;
        unsigned m, d;
        s_civil_from_days (day, &y, &m, &d);
        snprintf (buf, size, "%04d-%02u", y, m);
    }
    else
    if (strcmp (granularity, "total") == 0)
        snprintf (buf, size, "total");
    else
        analytics_day_text (day, buf, size);
}

//  ---------------------------------------------------------------------------
//  Histogram buckets

static uint64_t s_bounds [ANALYTICS_HIST_BUCKETS];     //  upper bound of bucket i, µs

static void
s_bounds_init (void)
{
    if (s_bounds [0])
        return;
    for (int i = 0; i < ANALYTICS_HIST_BUCKETS; i++)
        s_bounds [i] = (uint64_t) llround (pow (2.0, i / 4.0) * 1e6);
}

int
analytics_hist_bucket (uint64_t delay_us)
{
    s_bounds_init ();
    int lo = 0, hi = ANALYTICS_HIST_BUCKETS - 1;
    if (delay_us > s_bounds [hi - 1])
        return hi;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (delay_us <= s_bounds [mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

double
analytics_hist_value (int bucket)
{
    if (bucket <= 0)
        return 1.0;
    return pow (2.0, (bucket - 0.5) / 4.0);
}

//  ---------------------------------------------------------------------------
//  Cells

static int
s_cell_key (char *key, const char *family, int64_t day, const char *cell)
{
    char date [16];
    analytics_day_text (day, date, sizeof date);
    return snprintf (key, S_KEY_MAX, "%s/%s/%s", family, date, cell);
}

static int
s_cell_read (const void *data, size_t size, int64_t *vec, int n)
{
    memset (vec, 0, (size_t) n * sizeof *vec);
    if (size < 1 || ((const uint8_t *) data) [0] != S_CELL_VERSION)
        return -1;
    size_t have = (size - 1) / 8;
    if (have > (size_t) n)
        have = (size_t) n;
    memcpy (vec, (const uint8_t *) data + 1, have * 8);
    return 0;
}

//  Add delta to the cell (or set it, for gauges); delete it when all zero.
static int
s_cell_update (relais_txn_t *txn, const char *family, int64_t day, const char *cell,
               const int64_t *delta, int n, bool set)
{
    char key [S_KEY_MAX];
    int klen = s_cell_key (key, family, day, cell);
    if (klen <= 0 || klen >= S_KEY_MAX)
        return 0;                           //  a name too long to index: ignored
    int64_t vec [S_METRICS_MAX];
    const void *data;
    size_t size;
    int rc = relais_txn_get (txn, S_DB_AGG, key, (size_t) klen, &data, &size);
    if (rc == 0)
        s_cell_read (data, size, vec, n);
    else
    if (rc == RELAIS_ENOTFOUND)
        memset (vec, 0, sizeof vec);
    else
        return rc;
    bool zero = true;
    for (int i = 0; i < n; i++) {
        vec [i] = set? delta [i]: vec [i] + delta [i];
        if (vec [i])
            zero = false;
    }
    if (zero)
        return rc == 0? relais_txn_del (txn, S_DB_AGG, key, (size_t) klen): 0;
    uint8_t buf [1 + 8 * S_METRICS_MAX];
    buf [0] = S_CELL_VERSION;
    memcpy (buf + 1, vec, (size_t) n * 8);
    return relais_txn_put (txn, S_DB_AGG, key, (size_t) klen, buf, 1 + (size_t) n * 8);
}

static int
s_cell_add1 (relais_txn_t *txn, const char *family, int64_t day, const char *cell,
             int metric, int n, int64_t by)
{
    int64_t delta [S_METRICS_MAX] = { 0 };
    delta [metric] = by;
    return s_cell_update (txn, family, day, cell, delta, n, false);
}

//  ---------------------------------------------------------------------------
//  Reading event bodies defensively

static bool
s_uint (const msgpack_object *map, const char *key, uint64_t *value)
{
    return relais_msg_uint (relais_msg_get (map, key), value);
}

//  Copy a one-line text value (or "" when absent, not a str, too long or
//  not clean). '|' and '/' would break cell keys: they become '_'.
static bool
s_text (const msgpack_object *map, const char *key, char *buf, size_t size)
{
    buf [0] = 0;
    const msgpack_object *o = relais_msg_get (map, key);
    if (!o || relais_msg_str_copy (o, buf, size) < 0) {
        buf [0] = 0;
        return false;
    }
    if (!relais_utf8_clean (buf, strlen (buf), false)) {
        buf [0] = 0;
        return false;
    }
    for (char *p = buf; *p; p++)
        if (*p == '|' || *p == '/' || *p == ' ')
            *p = '_';
    return buf [0] != 0;
}

static uint32_t
s_mask (const msgpack_object *o, const char *const *names, int count)
{
    uint32_t mask = 0;
    if (!o || o->type != MSGPACK_OBJECT_ARRAY)
        return 0;
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        char name [48];
        if (relais_msg_str_copy (&o->via.array.ptr [i], name, sizeof name) < 0)
            continue;
        int idx = relais_enum_find (names, count, name);
        if (idx >= 0)
            mask |= 1u << idx;
    }
    return mask;
}

//  ---------------------------------------------------------------------------
//  Report records

typedef struct {
    uint8_t v, has_sig, level, arr, source, pad [3];
    uint32_t publics, needs, reasons, persons, minors, pregnant, tents, seen;
    uint64_t observed_at, received_at, ack_at, shelter_at;
} s_report_t;

static int
s_report_get (relais_txn_t *txn, const char *id, s_report_t *rec)
{
    memset (rec, 0, sizeof *rec);
    rec->v = 1;
    const void *data;
    size_t size;
    int rc = relais_txn_get (txn, S_DB_REPORTS, id, strlen (id), &data, &size);
    if (rc == RELAIS_ENOTFOUND)
        return 0;
    if (rc)
        return rc;
    if (size == sizeof *rec)
        memcpy (rec, data, sizeof *rec);
    return 0;
}

static int
s_report_put (relais_txn_t *txn, const char *id, const s_report_t *rec)
{
    return relais_txn_put (txn, S_DB_REPORTS, id, strlen (id), rec, sizeof *rec);
}

static void
s_report_vector (const s_report_t *rec, int64_t *vec)
{
    memset (vec, 0, A_REP_COUNT * sizeof *vec);
    vec [A_REPORTS] = 1;
    vec [A_PERSONS] = rec->persons;
    vec [A_LEVEL2] = rec->level >= 2;
    vec [A_ENCAMPMENTS] = rec->tents > S_ENCAMPMENT_TENTS;
    vec [A_TENTS] = rec->tents;
    vec [A_FAMILIES] = (rec->publics >> RELAIS_PUBLIC_FAMILLE) & 1;
    vec [A_WITH_MINORS] = rec->minors > 0;
    vec [A_MINORS] = rec->minors;
    vec [A_WITH_PREGNANT] = rec->pregnant > 0;
    vec [A_PREGNANT] = rec->pregnant;
    vec [A_SHELTER_NEED] = (rec->needs >> RELAIS_NEED_MISE_A_L_ABRI) & 1;
    vec [A_SHELTER_PERSONS] = vec [A_SHELTER_NEED]? rec->persons: 0;
    vec [A_REPEAT_LIEU] = (rec->reasons >> S_REASON_REPEAT_LIEU) & 1;
    vec [A_REPEAT_PERSONNE] = (rec->reasons >> S_REASON_REPEAT_PERSONNE) & 1;
    vec [A_PERSON_SEEN] = rec->seen != 0;
}

static int
s_hist_add (relais_txn_t *txn, const char *family, int64_t day, const char *cell,
            uint64_t from, uint64_t to, int sign)
{
    int64_t delta [S_METRICS_MAX] = { 0 };
    uint64_t d = to > from? to - from: 0;
    delta [0] = sign;
    delta [1] = sign * (int64_t) (d / 1000000);
    delta [2 + analytics_hist_bucket (d)] = sign;
    return s_cell_update (txn, family, day, cell, delta, 2 + ANALYTICS_HIST_BUCKETS, false);
}

//  Add (sign 1) or remove (sign -1) everything a report contributes.
static int
s_report_contrib (relais_txn_t *txn, const s_report_t *rec, int sign)
{
    if (!rec->has_sig)
        return 0;
    int64_t day = analytics_day_of (rec->observed_at);
    int64_t vec [A_REP_COUNT];
    s_report_vector (rec, vec);
    for (int i = 0; i < A_REP_COUNT; i++)
        vec [i] *= sign;
    const char *source = rec->source < RELAIS_SOURCE_COUNT
                       ? relais_source_kind_names [rec->source]: "inconnu";
    char cell [S_KEY_MAX];
    snprintf (cell, sizeof cell, "%02u|%u|%s", rec->arr, rec->level, source);
    int rc = s_cell_update (txn, "rep", day, cell, vec, A_REP_COUNT, false);
    for (int p = 0; p < RELAIS_PUBLIC_COUNT && rc == 0; p++)
        if (rec->publics & (1u << p)) {
            snprintf (cell, sizeof cell, "%s|%02u|%u|%s", relais_public_names [p],
                      rec->arr, rec->level, source);
            rc = s_cell_update (txn, "pub", day, cell, vec, A_REP_COUNT, false);
        }
    for (int r = 0; r < S_REASONS && rc == 0; r++)
        if (rec->reasons & (1u << r)) {
            snprintf (cell, sizeof cell, "%s|%02u", s_reason_names [r], rec->arr);
            rc = s_cell_add1 (txn, "rsn", day, cell, 0, 1, sign);
        }
    snprintf (cell, sizeof cell, "%u|%02u", rec->level, rec->arr);
    if (rc == 0 && rec->ack_at)
        rc = s_hist_add (txn, "ack", day, cell, rec->received_at, rec->ack_at, sign);
    if (rc == 0 && rec->shelter_at)
        rc = s_hist_add (txn, "shl", day, cell, rec->received_at, rec->shelter_at, sign);
    return rc;
}

//  ---------------------------------------------------------------------------
//  intake

static int
s_person_refs (relais_txn_t *txn, const msgpack_object *refs, bool *seen)
{
    if (!refs || refs->type != MSGPACK_OBJECT_ARRAY)
        return 0;
    //  First look (a report naming the same person twice is not a repeat),
    //  then remember them all.
    for (uint32_t i = 0; i < refs->via.array.size; i++) {
        char ref [RELAIS_SIG_REF_MAX + 8];
        if (relais_msg_str_copy (&refs->via.array.ptr [i], ref, sizeof ref) <= 0)
            continue;
        const void *data;
        size_t size;
        int rc = relais_txn_get (txn, S_DB_PERSONS, ref, strlen (ref), &data, &size);
        if (rc == 0)
            *seen = true;
        else
        if (rc != RELAIS_ENOTFOUND)
            return rc;
    }
    for (uint32_t i = 0; i < refs->via.array.size; i++) {
        char ref [RELAIS_SIG_REF_MAX + 8];
        if (relais_msg_str_copy (&refs->via.array.ptr [i], ref, sizeof ref) <= 0)
            continue;
        uint8_t one = 1;
        int rc = relais_txn_put (txn, S_DB_PERSONS, ref, strlen (ref), &one, 1);
        if (rc)
            return rc;
    }
    return 0;
}

//  Read the report facts present in map (the public view, or its changes)
static void
s_report_facts (const msgpack_object *map, s_report_t *rec)
{
    uint64_t value;
    const msgpack_object *o;
    if (s_uint (map, "observed_at", &value))
        rec->observed_at = value;
    if ((o = relais_msg_get (map, "place")) && o->type == MSGPACK_OBJECT_MAP
    &&  s_uint (o, "arrondissement", &value) && value >= 1 && value <= 20)
        rec->arr = (uint8_t) value;
    if ((o = relais_msg_get (map, "source")) && o->type == MSGPACK_OBJECT_MAP) {
        char kind [32];
        if (s_text (o, "kind", kind, sizeof kind)) {
            int k = relais_enum_find (relais_source_kind_names, RELAIS_SOURCE_COUNT, kind);
            rec->source = (uint8_t) (k >= 0? k: RELAIS_SOURCE_COUNT);
        }
    }
    if (s_uint (map, "persons", &value) && value <= UINT32_MAX)
        rec->persons = (uint32_t) value;
    if (s_uint (map, "minors", &value) && value <= UINT32_MAX)
        rec->minors = (uint32_t) value;
    if (s_uint (map, "pregnant", &value) && value <= UINT32_MAX)
        rec->pregnant = (uint32_t) value;
    if (s_uint (map, "tents", &value) && value <= UINT32_MAX)
        rec->tents = (uint32_t) value;
    if ((o = relais_msg_get (map, "publics")) && o->type == MSGPACK_OBJECT_ARRAY)
        rec->publics = s_mask (o, relais_public_names, RELAIS_PUBLIC_COUNT);
    if ((o = relais_msg_get (map, "needs")) && o->type == MSGPACK_OBJECT_ARRAY)
        rec->needs = s_mask (o, relais_need_names, RELAIS_NEED_COUNT);
}

static int
s_apply_signal (relais_txn_t *txn, const char *type, const relais_envelope_t *env)
{
    const msgpack_object *body = env->body;
    uint64_t level = 0;
    if (strcmp (type, "signal.closed") == 0) {
        char reason [32];
        if (!s_text (body, "reason", reason, sizeof reason))
            return RELAIS_EMALFORMED;
        s_report_t rec;
        int rc = s_report_get (txn, env->key, &rec);
        if (rc)
            return rc;
        uint64_t arr = rec.arr;
        s_uint (body, "arrondissement", &arr);
        char cell [64];
        snprintf (cell, sizeof cell, "%s|%02u", reason, (unsigned) (arr <= 20? arr: 0));
        return s_cell_add1 (txn, "clo", analytics_day_of (env->ts), cell, 0, 1, 1);
    }
    bool created = strcmp (type, "signal.created") == 0;
    if (!created && strcmp (type, "signal.updated") != 0)
        return 0;
    if (!s_uint (body, "level", &level) || level < 1 || level > 2)
        return RELAIS_EMALFORMED;
    if (created) {
        const msgpack_object *place = relais_msg_get (body, "place");
        uint64_t arr, observed;
        if (!place || !s_uint (place, "arrondissement", &arr) || arr < 1 || arr > 20
        ||  !s_uint (body, "observed_at", &observed))
            return RELAIS_EMALFORMED;
    }
    s_report_t rec;
    int rc = s_report_get (txn, env->key, &rec);
    if (rc)
        return rc;
    if (!created && !rec.has_sig)
        return RELAIS_EMALFORMED;       //  an update of a report never created
    if ((rc = s_report_contrib (txn, &rec, -1)))
        return rc;
    if (created) {
        uint64_t received = env->ts;
        s_uint (body, "received_at", &received);
        rec.received_at = received;
        rec.observed_at = env->ts;
        rec.source = RELAIS_SOURCE_COUNT;
        rec.persons = 1;
        rec.has_sig = 1;
    }
    s_report_facts (body, &rec);
    const msgpack_object *changes = relais_msg_get (body, "changes");
    if (changes && changes->type == MSGPACK_OBJECT_MAP)
        s_report_facts (changes, &rec);
    if (level > rec.level)
        rec.level = (uint8_t) level;
    const msgpack_object *reasons = relais_msg_get (body, "reasons");
    if (reasons && reasons->type == MSGPACK_OBJECT_ARRAY)
        rec.reasons = s_mask (reasons, s_reason_names, S_REASONS);
    bool seen = rec.seen != 0;
    if ((rc = s_person_refs (txn, relais_msg_get (body, "person_refs"), &seen)))
        return rc;
    rec.seen = seen;
    if ((rc = s_report_contrib (txn, &rec, 1)))
        return rc;
    return s_report_put (txn, env->key, &rec);
}

//  ---------------------------------------------------------------------------
//  router

static int
s_set_first (relais_txn_t *txn, const char *id, uint64_t at, bool shelter)
{
    s_report_t rec;
    int rc = s_report_get (txn, id, &rec);
    if (rc)
        return rc;
    uint64_t *slot = shelter? &rec.shelter_at: &rec.ack_at;
    if (*slot)
        return 0;                       //  the first one counts
    if ((rc = s_report_contrib (txn, &rec, -1)))
        return rc;
    *slot = at? at: 1;
    if ((rc = s_report_contrib (txn, &rec, 1)))
        return rc;
    return s_report_put (txn, id, &rec);
}

static int
s_apply_route (relais_txn_t *txn, const char *type, const relais_envelope_t *env)
{
    const msgpack_object *body = env->body;
    char partner [64];
    if (!s_text (body, "partner", partner, sizeof partner))
        return RELAIS_EMALFORMED;
    int64_t day = analytics_day_of (env->ts);
    if (strcmp (type, "route.assigned") == 0)
        return s_cell_add1 (txn, "rte", day, partner, S_RTE_ASSIGNED, S_RTE_COUNT, 1);
    if (strcmp (type, "route.acknowledged") == 0) {
        uint64_t at = env->ts;
        s_uint (body, "at", &at);
        int rc = s_cell_add1 (txn, "rte", day, partner, S_RTE_ACKNOWLEDGED, S_RTE_COUNT, 1);
        return rc? rc: s_set_first (txn, env->key, at, false);
    }
    char cell [160], what [32];
    if (strcmp (type, "route.refused") == 0) {
        if (!s_text (body, "reason", what, sizeof what))
            snprintf (what, sizeof what, "autre");
        snprintf (cell, sizeof cell, "%s|%s", partner, what);
        int rc = s_cell_add1 (txn, "rte", day, partner, S_RTE_REFUSED, S_RTE_COUNT, 1);
        return rc? rc: s_cell_add1 (txn, "rfr", day, cell, 0, 1, 1);
    }
    if (strcmp (type, "route.escalated") == 0) {
        if (!s_text (body, "cause", what, sizeof what))
            snprintf (what, sizeof what, "inconnue");
        snprintf (cell, sizeof cell, "%s|%s", partner, what);
        int rc = s_cell_add1 (txn, "rte", day, partner, S_RTE_ESCALATED, S_RTE_COUNT, 1);
        return rc? rc: s_cell_add1 (txn, "esc", day, cell, 0, 1, 1);
    }
    return 0;
}

//  ---------------------------------------------------------------------------
//  plans

static unsigned
s_plan_arr (relais_txn_t *txn, const char *plan)
{
    const void *data;
    size_t size;
    if (relais_txn_get (txn, S_DB_PLANS, plan, strlen (plan), &data, &size) == 0 && size == 1)
        return ((const uint8_t *) data) [0];
    return 0;
}

static int
s_apply_plan (relais_txn_t *txn, const char *type, const relais_envelope_t *env)
{
    const msgpack_object *body = env->body;
    int64_t day = analytics_day_of (env->ts);
    uint64_t arr = 0;
    char cell [160], text [64];
    int rc = 0;
    if (strcmp (type, "plan.opened") == 0) {
        if (!s_uint (body, "arrondissement", &arr) || arr > 20)
            return RELAIS_EMALFORMED;
        uint8_t a = (uint8_t) arr;
        if ((rc = relais_txn_put (txn, S_DB_PLANS, env->key, strlen (env->key), &a, 1)))
            return rc;
        snprintf (cell, sizeof cell, "%02u", (unsigned) arr);
        return s_cell_add1 (txn, "pln", day, cell, S_PLN_OPENED, S_PLN_COUNT, 1);
    }
    if (strcmp (type, "plan.closed") == 0) {
        if (!s_text (body, "outcome", text, sizeof text))
            return RELAIS_EMALFORMED;
        if (!s_uint (body, "arrondissement", &arr) || arr > 20)
            arr = s_plan_arr (txn, env->key);
        snprintf (cell, sizeof cell, "%02u", (unsigned) arr);
        if ((rc = s_cell_add1 (txn, "pln", day, cell, S_PLN_CLOSED, S_PLN_COUNT, 1)))
            return rc;
        snprintf (cell, sizeof cell, "%s|%02u", text, (unsigned) arr);
        if ((rc = s_cell_add1 (txn, "pout", day, cell, 0, 1, 1)))
            return rc;
        const msgpack_object *signals = relais_msg_get (body, "signals");
        if (strcmp (text, "mise_a_l_abri") == 0 && signals && signals->type == MSGPACK_OBJECT_ARRAY)
            for (uint32_t i = 0; i < signals->via.array.size && rc == 0; i++) {
                char id [RELAIS_KEY_MAX];
                if (relais_msg_str_copy (&signals->via.array.ptr [i], id, sizeof id) > 0)
                    rc = s_set_first (txn, id, env->ts, true);
            }
        return rc;
    }
    int metric = strcmp (type, "plan.reopened") == 0? S_PLN_REOPENED
               : strcmp (type, "plan.stale") == 0? S_PLN_STALE
               : strcmp (type, "plan.flagged") == 0? S_PLN_FLAGGED: -1;
    if (metric >= 0) {
        if (metric == S_PLN_FLAGGED) {
            const msgpack_object *flag = relais_msg_get (body, "flagged");
            if (!flag || flag->type != MSGPACK_OBJECT_BOOLEAN)
                return RELAIS_EMALFORMED;
            if (!flag->via.boolean)
                return 0;
        }
        snprintf (cell, sizeof cell, "%02u", s_plan_arr (txn, env->key));
        return s_cell_add1 (txn, "pln", day, cell, metric, S_PLN_COUNT, 1);
    }
    uint64_t action;
    char akey [RELAIS_KEY_MAX + 32];
    if (strcmp (type, "plan.action_added") == 0 || strcmp (type, "plan.action_overdue") == 0) {
        if (!s_uint (body, "action", &action) || !s_text (body, "owner", text, sizeof text))
            return RELAIS_EMALFORMED;
        bool added = strcmp (type, "plan.action_added") == 0;
        if (added) {
            snprintf (akey, sizeof akey, "%s#%llu", env->key, (unsigned long long) action);
            if ((rc = relais_txn_put (txn, S_DB_PLANS, akey, strlen (akey), text, strlen (text))))
                return rc;
        }
        return s_cell_add1 (txn, "act", day, text, added? S_ACT_ADDED: S_ACT_OVERDUE, S_ACT_COUNT, 1);
    }
    if (strcmp (type, "plan.action_changed") == 0) {
        char state [32];
        if (!s_uint (body, "action", &action) || !s_text (body, "state", state, sizeof state))
            return RELAIS_EMALFORMED;
        int m = strcmp (state, "fait") == 0? S_ACT_DONE: strcmp (state, "annule") == 0? S_ACT_CANCELLED: -1;
        if (m < 0)
            return 0;
        snprintf (akey, sizeof akey, "%s#%llu", env->key, (unsigned long long) action);
        const void *data;
        size_t size;
        snprintf (text, sizeof text, "inconnu");
        if (relais_txn_get (txn, S_DB_PLANS, akey, strlen (akey), &data, &size) == 0
        &&  size > 0 && size < sizeof text) {
            memcpy (text, data, size);
            text [size] = 0;
        }
        return s_cell_add1 (txn, "act", day, text, m, S_ACT_COUNT, 1);
    }
    return 0;
}

//  ---------------------------------------------------------------------------
//  capacity: per structure last values; per kind totals as daily gauges

typedef struct {
    uint8_t v, arr, pad [6];
    char kind [24];
    int64_t places, occupied, reserved, free;
} s_struct_t;

typedef struct {
    char kinds [16][24];
    int64_t totals [16][S_CAP_COUNT];
    int count;
} s_kinds_t;

static int
s_sum_struct (const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    s_kinds_t *k = (s_kinds_t *) arg;
    s_struct_t st;
    if (vlen != sizeof st)
        return 0;
    memcpy (&st, val, sizeof st);
    int i = 0;
    while (i < k->count && strcmp (k->kinds [i], st.kind) != 0)
        i++;
    if (i == k->count) {
        if (k->count == 16)
            return 0;
        snprintf (k->kinds [k->count++], 24, "%s", st.kind);
    }
    k->totals [i][S_CAP_STRUCTURES]++;
    k->totals [i][S_CAP_PLACES] += st.places;
    k->totals [i][S_CAP_OCCUPIED] += st.occupied;
    k->totals [i][S_CAP_RESERVED] += st.reserved;
    k->totals [i][S_CAP_FREE] += st.free;
    return 0;
}

static int
s_apply_capacity (relais_txn_t *txn, const char *type, const relais_envelope_t *env)
{
    const msgpack_object *body = env->body;
    int64_t day = analytics_day_of (env->ts);
    s_struct_t st;
    memset (&st, 0, sizeof st);
    st.v = 1;
    const void *data;
    size_t size;
    int rc = relais_txn_get (txn, S_DB_STRUCTS, env->key, strlen (env->key), &data, &size);
    if (rc == 0 && size == sizeof st)
        memcpy (&st, data, sizeof st);
    else
    if (rc && rc != RELAIS_ENOTFOUND)
        return rc;
    char kind [24];
    if (s_text (body, "kind", kind, sizeof kind))
        snprintf (st.kind, sizeof st.kind, "%s", kind);
    if (!st.kind [0])
        return RELAIS_EMALFORMED;       //  a structure of unknown kind
    uint64_t value;
    if (s_uint (body, "arrondissement", &value) && value <= 20)
        st.arr = (uint8_t) value;
    bool declared = strcmp (type, "capacity.declared") == 0;
    if (strcmp (type, "capacity.reserved") != 0 && s_uint (body, "places", &value))
        st.places = (int64_t) value;
    if (s_uint (body, "occupied", &value))
        st.occupied = (int64_t) value;
    if (s_uint (body, "reserved", &value))
        st.reserved = (int64_t) value;
    if (s_uint (body, "free", &value))
        st.free = (int64_t) value;
    else
    if (declared && st.occupied == 0)
        st.free = st.places;
    if ((rc = relais_txn_put (txn, S_DB_STRUCTS, env->key, strlen (env->key), &st, sizeof st)))
        return rc;
    uint64_t count = 1;
    if (strcmp (type, "capacity.entry") == 0 || strcmp (type, "capacity.exit") == 0) {
        s_uint (body, "count", &count);
        rc = s_cell_add1 (txn, "cpe", day, st.kind,
                          type [9] == 'e' && type [10] == 'n'? S_CPE_ENTRIES: S_CPE_EXITS,
                          S_CPE_COUNT, (int64_t) count);
    }
    else
    if (strcmp (type, "capacity.alert") == 0)
        rc = s_cell_add1 (txn, "cpe", day, st.kind, S_CPE_ALERTS, S_CPE_COUNT, 1);
    if (rc)
        return rc;
    s_kinds_t kinds;
    memset (&kinds, 0, sizeof kinds);
    if ((rc = relais_txn_scan (txn, S_DB_STRUCTS, NULL, 0, s_sum_struct, &kinds)))
        return rc;
    for (int i = 0; i < kinds.count && rc == 0; i++)
        rc = s_cell_update (txn, "cap", day, kinds.kinds [i], kinds.totals [i], S_CAP_COUNT, true);
    return rc;
}

//  ---------------------------------------------------------------------------

int
analytics_agg_apply (relais_txn_t *txn, const char *topic, const relais_envelope_t *env,
                     void *arg)
{
    if (!env->body || env->body->type != MSGPACK_OBJECT_MAP || !env->key [0])
        return RELAIS_EMALFORMED;
    const char *type = env->type;
    if (strncmp (type, "signal.", 7) == 0)
        return s_apply_signal (txn, type, env);
    if (strncmp (type, "route.", 6) == 0)
        return s_apply_route (txn, type, env);
    if (strncmp (type, "plan.", 5) == 0)
        return s_apply_plan (txn, type, env);
    if (strncmp (type, "capacity.", 9) == 0)
        return s_apply_capacity (txn, type, env);
    return 0;
}

//  ---------------------------------------------------------------------------
//  Dump

typedef struct {
    FILE *out;
    int db;
} s_dump_t;

static int
s_dump_one (const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    s_dump_t *d = (s_dump_t *) arg;
    FILE *out = d->out;
    if (d->db == S_DB_AGG) {
        fprintf (out, "agg %.*s", (int) klen, (const char *) key);
        const char *slash = memchr (key, '/', klen);
        char family [8] = "";
        if (slash && (size_t) (slash - (const char *) key) < sizeof family) {
            memcpy (family, key, (size_t) (slash - (const char *) key));
            family [slash - (const char *) key] = 0;
        }
        const s_family_t *fam = s_family (family);
        int64_t vec [S_METRICS_MAX];
        int n = fam? fam->metrics: (int) ((vlen - 1) / 8);
        if (n > S_METRICS_MAX)
            n = S_METRICS_MAX;
        s_cell_read (val, vlen, vec, n);
        bool hist = fam && fam->metrics == 2 + ANALYTICS_HIST_BUCKETS;
        for (int i = 0; i < n; i++)
            if (!hist || i < 2)
                fprintf (out, " %lld", (long long) vec [i]);
            else
            if (vec [i])
                fprintf (out, " b%d:%lld", i - 2, (long long) vec [i]);
        fputc ('\n', out);
    }
    else
    if (d->db == S_DB_REPORTS && vlen == sizeof (s_report_t)) {
        s_report_t r;
        memcpy (&r, val, sizeof r);
        fprintf (out, "report %.*s sig=%u level=%u arr=%u source=%u publics=%x needs=%x "
                 "reasons=%x persons=%u minors=%u pregnant=%u tents=%u seen=%u observed=%llu "
                 "received=%llu ack=%llu shelter=%llu\n", (int) klen, (const char *) key,
                 r.has_sig, r.level, r.arr, r.source, r.publics, r.needs, r.reasons, r.persons,
                 r.minors, r.pregnant, r.tents, r.seen, (unsigned long long) r.observed_at,
                 (unsigned long long) r.received_at, (unsigned long long) r.ack_at,
                 (unsigned long long) r.shelter_at);
    }
    else
    if (d->db == S_DB_STRUCTS && vlen == sizeof (s_struct_t)) {
        s_struct_t s;
        memcpy (&s, val, sizeof s);
        fprintf (out, "struct %.*s kind=%s arr=%u places=%lld occupied=%lld reserved=%lld free=%lld\n",
                 (int) klen, (const char *) key, s.kind, s.arr, (long long) s.places,
                 (long long) s.occupied, (long long) s.reserved, (long long) s.free);
    }
    else {
        const char *names [] = { "agg", "report", "person", "struct", "plan" };
        fprintf (out, "%s %.*s", names [d->db], (int) klen, (const char *) key);
        if (d->db == S_DB_PLANS) {
            if (vlen == 1)
                fprintf (out, " arr=%u", ((const uint8_t *) val) [0]);
            else
                fprintf (out, " owner=%.*s", (int) vlen, (const char *) val);
        }
        fputc ('\n', out);
    }
    return 0;
}

int
analytics_agg_dump (relais_txn_t *txn, FILE *out)
{
    const char *sources [] = { "intake", "router", "plans", "capacity", NULL };
    for (int i = 0; sources [i]; i++) {
        uint64_t seq = 0;
        int rc = relais_ckpt_get (txn, sources [i], &seq);
        if (rc)
            return rc;
        if (seq)
            fprintf (out, "ckpt %s %llu\n", sources [i], (unsigned long long) seq);
    }
    for (int db = S_DB_AGG; db <= S_DB_PLANS; db++) {
        s_dump_t d = { out, db };
        int rc = relais_txn_scan (txn, db, NULL, 0, s_dump_one, &d);
        if (rc)
            return rc;
    }
    return 0;
}

//  ---------------------------------------------------------------------------
//  Queries

typedef struct {
    char key [96];                      //  period \x1f group
    int64_t vec [S_METRICS_MAX];
} s_acc_t;

typedef struct {
    const analytics_query_t *q;
    const s_family_t *fam;
    char family [8];
    int group_field;                    //  -1: no group
    int filter_field [ANALYTICS_FILTERS_MAX];
    int64_t to;
    zhashx_t *accs;
    //  gauges: the cells by day, in order
    zlistx_t *cells;
} s_scan_t;

static int
s_dim_index (const char *dims, const char *dim)
{
    int idx = 0;
    size_t len = strlen (dim);
    for (const char *p = dims; *p; idx++) {
        const char *comma = strchr (p, ',');
        size_t n = comma? (size_t) (comma - p): strlen (p);
        if (n == len && strncmp (p, dim, n) == 0)
            return idx;
        if (!comma)
            break;
        p = comma + 1;
    }
    return -1;
}

//  Split "a|b|c" into fields (in place)
static int
s_split (char *cell, char **fields, int max)
{
    int n = 0;
    fields [n++] = cell;
    for (char *p = cell; *p && n < max; p++)
        if (*p == '|') {
            *p = 0;
            fields [n++] = p + 1;
        }
    return n;
}

static bool
s_field_match (const char *field, const char *want)
{
    //  Arrondissements are stored on two digits; "9" matches "09"
    char *end;
    long a = strtol (field, &end, 10);
    if (*field && !*end) {
        long b = strtol (want, &end, 10);
        if (*want && !*end)
            return a == b;
    }
    return strcmp (field, want) == 0;
}

static s_acc_t *
s_acc (s_scan_t *s, const char *period, const char *group)
{
    char key [96];
    snprintf (key, sizeof key, "%s\x1f%s", period, group);
    s_acc_t *acc = (s_acc_t *) zhashx_lookup (s->accs, key);
    if (!acc) {
        acc = (s_acc_t *) calloc (1, sizeof *acc);
        if (!acc)
            return NULL;
        snprintf (acc->key, sizeof acc->key, "%s", key);
        zhashx_insert (s->accs, key, acc);
    }
    return acc;
}

//  Parse a cell key; fills day and fields. Returns field count or -1.
static int
s_parse_key (const void *key, size_t klen, const char *family, char *buf, size_t size,
             int64_t *day, char **fields, int max)
{
    if (klen >= size)
        return -1;
    memcpy (buf, key, klen);
    buf [klen] = 0;
    size_t flen = strlen (family);
    if (strncmp (buf, family, flen) != 0 || buf [flen] != '/')
        return -2;                          //  past the family: stop
    char *date = buf + flen + 1;
    if (strlen (date) < 11 || date [10] != '/')
        return -1;
    date [10] = 0;
    int64_t from, to;
    if (analytics_period_parse (date, &from, &to))
        return -1;
    *day = from;
    return s_split (date + 11, fields, max);
}

typedef struct {
    int64_t day;
    char group [64];
    int64_t vec [S_CAP_COUNT];
} s_gauge_cell_t;

static int
s_scan_cell (const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    s_scan_t *s = (s_scan_t *) arg;
    char buf [S_KEY_MAX + 1];
    char *fields [8];
    int64_t day;
    int n = s_parse_key (key, klen, s->family, buf, sizeof buf, &day, fields, 8);
    if (n == -2)
        return 1;
    if (n < 0)
        return 0;
    if (day > s->to)
        return 1;
    for (size_t f = 0; f < s->q->filter_count; f++) {
        int idx = s->filter_field [f];
        if (idx >= n || !s_field_match (fields [idx], s->q->filter_value [f]))
            return 0;
    }
    char group [64];
    if (s->group_field >= 0 && s->group_field < n) {
        const char *g = fields [s->group_field];
        //  arrondissements and levels print without the padding
        char *end;
        long num = strtol (g, &end, 10);
        if (*g && !*end)
            snprintf (group, sizeof group, "%ld", num);
        else
            snprintf (group, sizeof group, "%s", g);
    }
    else
        snprintf (group, sizeof group, "all");
    int64_t vec [S_METRICS_MAX];
    s_cell_read (val, vlen, vec, s->fam->metrics);
    if (s->q->indicator->kind == ANALYTICS_GAUGE) {
        s_gauge_cell_t *cell = (s_gauge_cell_t *) calloc (1, sizeof *cell);
        if (!cell)
            return -ENOMEM;
        cell->day = day;
        snprintf (cell->group, sizeof cell->group, "%s", group);
        memcpy (cell->vec, vec, sizeof cell->vec);
        zlistx_add_end (s->cells, cell);
        return 0;
    }
    char period [16];
    analytics_period_label (day, s->q->granularity, period, sizeof period);
    s_acc_t *acc = s_acc (s, period, group);
    if (!acc)
        return -ENOMEM;
    for (int i = 0; i < s->fam->metrics; i++)
        acc->vec [i] += vec [i];
    return 0;
}

static void
s_free_acc (void **item)
{
    free (*item);
    *item = NULL;
}

static int
s_row_cmp (const void *a, const void *b)
{
    const analytics_row_t *x = (const analytics_row_t *) a, *y = (const analytics_row_t *) b;
    int c = strcmp (x->period, y->period);
    if (c)
        return c;
    //  numeric groups in numeric order
    char *ex, *ey;
    long nx = strtol (x->group, &ex, 10), ny = strtol (y->group, &ey, 10);
    if (*x->group && *y->group && !*ex && !*ey)
        return nx < ny? -1: nx > ny;
    return strcmp (x->group, y->group);
}

static double
s_percentile (const int64_t *buckets, int64_t count, double q)
{
    if (count <= 0)
        return 0;
    int64_t rank = (int64_t) ceil (q * (double) count);
    if (rank < 1)
        rank = 1;
    int64_t seen = 0;
    for (int i = 0; i < ANALYTICS_HIST_BUCKETS; i++) {
        seen += buckets [i];
        if (seen >= rank)
            return analytics_hist_value (i);
    }
    return analytics_hist_value (ANALYTICS_HIST_BUCKETS - 1);
}

static int
s_add_row (analytics_result_t *result, size_t *cap, const analytics_row_t *row)
{
    if (result->count == *cap) {
        size_t n = *cap? *cap * 2: 64;
        analytics_row_t *rows = (analytics_row_t *) realloc (result->rows, n * sizeof *rows);
        if (!rows)
            return -ENOMEM;
        result->rows = rows;
        *cap = n;
    }
    result->rows [result->count++] = *row;
    return 0;
}

static int
s_scan_family (relais_txn_t *txn, s_scan_t *s, int64_t from)
{
    char start [S_KEY_MAX];
    s_cell_key (start, s->family, from, "");
    return relais_txn_scan (txn, S_DB_AGG, start, strlen (start), s_scan_cell, s);
}

//  Gauges: each group's last value at the end of each period, carried
//  forward from the last day with data (scan from the beginning).
static int
s_gauges (relais_txn_t *txn, s_scan_t *s, analytics_result_t *result, size_t *cap,
          int metric)
{
    const analytics_query_t *q = s->q;
    int rc = s_scan_family (txn, s, 0);
    if (rc)
        return rc;
    //  groups seen
    zlistx_t *groups = zlistx_new ();
    zlistx_set_comparator (groups, (zlistx_comparator_fn *) strcmp);
    for (s_gauge_cell_t *c = (s_gauge_cell_t *) zlistx_first (s->cells); c;
         c = (s_gauge_cell_t *) zlistx_next (s->cells))
        if (!zlistx_find (groups, c->group))
            zlistx_add_end (groups, c->group);
    size_t ngroups = zlistx_size (groups);
    int64_t *last = (int64_t *) calloc (ngroups + 1, sizeof *last);
    if (!last) {
        zlistx_destroy (&groups);
        return -ENOMEM;
    }
    s_gauge_cell_t *c = (s_gauge_cell_t *) zlistx_first (s->cells);
    char period [16] = "", next [16];
    for (int64_t day = q->from; day <= q->to; day++) {
        while (c && c->day <= day) {
            size_t g = 0;
            for (const char *name = (const char *) zlistx_first (groups); name;
                 name = (const char *) zlistx_next (groups), g++)
                if (strcmp (name, c->group) == 0)
                    break;
            //  a group's day holds one cell per kind when grouped by none:
            //  only one group "all" then, so sum the kinds of that day
            last [g] = c->vec [metric];
            c = (s_gauge_cell_t *) zlistx_next (s->cells);
        }
        analytics_period_label (day, q->granularity, period, sizeof period);
        if (day < q->to)
            analytics_period_label (day + 1, q->granularity, next, sizeof next);
        if (day == q->to || strcmp (next, period) != 0) {
            size_t g = 0;
            for (const char *name = (const char *) zlistx_first (groups); name;
                 name = (const char *) zlistx_next (groups), g++) {
                analytics_row_t row;
                memset (&row, 0, sizeof row);
                snprintf (row.period, sizeof row.period, "%s", period);
                snprintf (row.group, sizeof row.group, "%s", name);
                row.value = (double) last [g];
                row.count = last [g];
                if ((rc = s_add_row (result, cap, &row)))
                    break;
            }
        }
    }
    free (last);
    zlistx_destroy (&groups);
    return rc;
}

static void
s_free_cell (void **item)
{
    free (*item);
    *item = NULL;
}

//  Free places at the end of each day from..to (sum over kinds, carried)
static int
s_free_by_day (relais_txn_t *txn, int64_t from, int64_t to, int64_t *free_by_day, bool *known)
{
    analytics_query_t q;
    memset (&q, 0, sizeof q);
    q.indicator = analytics_indicator_find ("capacity_free");
    q.group_by = "kind";
    q.granularity = "day";
    q.from = from;
    q.to = to;
    analytics_result_t r = { NULL, 0 };
    relais_error_t err;
    int rc = analytics_query_run (txn, &q, &r, &err);
    if (rc)
        return rc;
    *known = r.count > 0;
    for (size_t i = 0; i < r.count; i++) {
        int64_t d0, d1;
        if (analytics_period_parse (r.rows [i].period, &d0, &d1) == 0 && d0 >= from && d0 <= to)
            free_by_day [d0 - from] += r.rows [i].count;
    }
    analytics_result_free (&r);
    return 0;
}

static int
s_unmet (relais_txn_t *txn, const analytics_query_t *q, analytics_result_t *result, size_t *cap)
{
    int64_t days = q->to - q->from + 1;
    if (days <= 0 || days > 3660)
        return 0;
    int64_t *demand = (int64_t *) calloc ((size_t) days, sizeof *demand);
    int64_t *free_places = (int64_t *) calloc ((size_t) days, sizeof *free_places);
    if (!demand || !free_places) {
        free (demand);
        free (free_places);
        return -ENOMEM;
    }
    analytics_query_t dq = *q;
    dq.indicator = analytics_indicator_find ("shelter_persons");
    dq.group_by = NULL;
    dq.granularity = "day";
    dq.filter_count = 0;
    analytics_result_t r = { NULL, 0 };
    relais_error_t err;
    bool known = false;
    int rc = analytics_query_run (txn, &dq, &r, &err);
    if (rc == 0) {
        for (size_t i = 0; i < r.count; i++) {
            int64_t d0, d1;
            if (analytics_period_parse (r.rows [i].period, &d0, &d1) == 0)
                demand [d0 - q->from] = r.rows [i].count;
        }
        rc = s_free_by_day (txn, q->from, q->to, free_places, &known);
    }
    analytics_result_free (&r);
    analytics_row_t row;
    memset (&row, 0, sizeof row);
    for (int64_t d = 0; d < days && rc == 0; d++) {
        char period [16];
        analytics_period_label (q->from + d, q->granularity, period, sizeof period);
        if (row.period [0] && strcmp (row.period, period) != 0) {
            row.value = (double) row.count;
            if ((rc = s_add_row (result, cap, &row)))
                break;
            memset (&row, 0, sizeof row);
        }
        snprintf (row.period, sizeof row.period, "%s", period);
        snprintf (row.group, sizeof row.group, "all");
        int64_t unmet = demand [d] - free_places [d];
        row.count += unmet > 0? unmet: 0;
        row.numerator += demand [d];
    }
    if (rc == 0 && row.period [0]) {
        row.value = (double) row.count;
        rc = s_add_row (result, cap, &row);
    }
    free (demand);
    free (free_places);
    return rc;
}

int
analytics_query_run (relais_txn_t *txn, const analytics_query_t *q,
                     analytics_result_t *result, relais_error_t *err)
{
    result->rows = NULL;
    result->count = 0;
    size_t cap = 0;
    const analytics_indicator_t *ind = q->indicator;
    bool publics = q->group_by && strcmp (q->group_by, "public") == 0;
    for (size_t f = 0; f < q->filter_count; f++)
        if (strcmp (q->filter_dim [f], "public") == 0)
            publics = true;
    if (q->group_by && *q->group_by && s_dim_index (ind->dims, q->group_by) < 0)
        return relais_error_set (err, RELAIS_CODE_INVALID, "group_by",
                                 "this indicator groups by: %s", *ind->dims? ind->dims: "nothing");
    for (size_t f = 0; f < q->filter_count; f++)
        if (s_dim_index (ind->dims, q->filter_dim [f]) < 0)
            return relais_error_set (err, RELAIS_CODE_INVALID, "filters",
                                     "this indicator filters on: %s", *ind->dims? ind->dims: "nothing");
    if (ind->kind == ANALYTICS_DERIVED)
        return s_unmet (txn, q, result, &cap);
    s_scan_t s;
    memset (&s, 0, sizeof s);
    s.q = q;
    snprintf (s.family, sizeof s.family, "%s",
              publics && strcmp (ind->family, "rep") == 0? "pub": ind->family);
    s.fam = s_family (s.family);
    s.to = q->to;
    s.group_field = q->group_by && *q->group_by? s_dim_index (s.fam->dims, q->group_by): -1;
    for (size_t f = 0; f < q->filter_count; f++)
        s.filter_field [f] = s_dim_index (s.fam->dims, q->filter_dim [f]);
    s.accs = zhashx_new ();
    zhashx_set_destructor (s.accs, s_free_acc);
    s.cells = zlistx_new ();
    zlistx_set_destructor (s.cells, s_free_cell);
    int rc;
    if (ind->kind == ANALYTICS_GAUGE) {
        if (s.group_field < 0) {
            //  no grouping: group by kind, then sum the kinds per period
            analytics_query_t by_kind = *q;
            by_kind.group_by = "kind";
            analytics_result_t kinds = { NULL, 0 };
            rc = analytics_query_run (txn, &by_kind, &kinds, err);
            for (size_t i = 0; i < kinds.count && rc == 0; i++) {
                if (result->count && strcmp (result->rows [result->count - 1].period,
                                             kinds.rows [i].period) == 0) {
                    result->rows [result->count - 1].count += kinds.rows [i].count;
                    result->rows [result->count - 1].value += kinds.rows [i].value;
                    continue;
                }
                analytics_row_t row = kinds.rows [i];
                snprintf (row.group, sizeof row.group, "all");
                rc = s_add_row (result, &cap, &row);
            }
            analytics_result_free (&kinds);
        }
        else
            rc = s_gauges (txn, &s, result, &cap, ind->metric);
    }
    else {
        rc = s_scan_family (txn, &s, q->from);
        for (s_acc_t *acc = (s_acc_t *) zhashx_first (s.accs); acc && rc == 0;
             acc = (s_acc_t *) zhashx_next (s.accs)) {
            analytics_row_t row;
            memset (&row, 0, sizeof row);
            char *sep = strchr (acc->key, '\x1f');
            *sep = 0;
            snprintf (row.period, sizeof row.period, "%.15s", acc->key);
            snprintf (row.group, sizeof row.group, "%.63s", sep + 1);
            if (ind->kind == ANALYTICS_HIST) {
                row.count = acc->vec [0];
                row.mean = row.count? (double) acc->vec [1] / (double) row.count: 0;
                row.p50 = s_percentile (acc->vec + 2, row.count, 0.50);
                row.p90 = s_percentile (acc->vec + 2, row.count, 0.90);
                row.p99 = s_percentile (acc->vec + 2, row.count, 0.99);
                row.value = row.p50;
            }
            else
            if (ind->kind == ANALYTICS_RATIO) {
                row.numerator = acc->vec [ind->metric];
                row.count = acc->vec [A_REPORTS];
                row.value = row.count? (double) row.numerator / (double) row.count: 0;
            }
            else {
                row.count = acc->vec [ind->metric];
                row.value = (double) row.count;
            }
            if (row.count == 0 && ind->kind != ANALYTICS_HIST && row.numerator == 0)
                continue;                   //  a cell whose other metrics are not 0
            rc = s_add_row (result, &cap, &row);
        }
    }
    zhashx_destroy (&s.accs);
    zlistx_destroy (&s.cells);
    if (rc) {
        analytics_result_free (result);
        return rc;
    }
    if (result->count)
        qsort (result->rows, result->count, sizeof *result->rows, s_row_cmp);
    return 0;
}

void
analytics_result_free (analytics_result_t *result)
{
    free (result->rows);
    result->rows = NULL;
    result->count = 0;
}

bool
analytics_row_suppressed (const analytics_row_t *row, int64_t threshold)
{
    return row->count > 0 && row->count < threshold;
}
