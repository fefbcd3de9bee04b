/*  =========================================================================
    analytics_server - the MUS's indicators and trends, from every topic
    (see analytics_server.h and proto/analytics.md)
    =========================================================================
*/
#include "analytics_server.h"
#include "analytics_agg.h"
#include "relais_bus.h"
#include "relais_clock.h"
#include "relais_log.h"

#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_MAX_DAYS      3660        //  a query spans at most about 10 years
#define S_TOP_DEFAULT   5

const relais_config_key_t analytics_keys [] = {
    { "pub", "tcp://127.0.0.1:7140", relais_check_endpoint, "PUB of analytics (heartbeats only in this version)" },
    { "fetch", "tcp://127.0.0.1:7141", relais_check_endpoint, "ROUTER for fetch and status" },
    { "api", "tcp://127.0.0.1:7142", relais_check_endpoint, "ROUTER for analytics.query, trends, export, indicators" },
    { "store/path", "analytics", relais_check_path, "LMDB folder (relative: under relais/data)" },
    { "store/map_size", "64M", relais_check_size, "initial LMDB map size; grows on demand" },
    { "store/map_max", "64G", relais_check_size, "cap of the LMDB map" },
    { "store/wal_size", "4M", relais_check_size, "write-ahead log file, 64K to 256M: an ack flushes one record there; full, it is checkpointed into LMDB" },
    { "heartbeat", "1s", relais_check_duration, "heartbeat interval on PUB" },
    { "suppress_below", "5", relais_check_uint, "counts from 1 to this - 1 are suppressed in exports and reports" },
    { NULL, NULL, NULL, NULL }
};

static const char *const s_sources [] = { "intake", "router", "plans", "capacity", NULL };

struct analytics_server_t {
    uv_loop_t *loop;
    relais_config_t *config;
    relais_store_t *store;
    relais_pub_t *pub;
    relais_sub_t *sub;
    relais_poller_t *api;
    relais_signals_t *signals;
    uv_timer_t maint;
    bool maint_open;
    int64_t suppress_below;
    uint64_t requests, errors;
};

int
analytics_declare (relais_config_t *config)
{
    return relais_config_declare (config, "analytics", analytics_keys);
}

//  ---------------------------------------------------------------------------
//  Sources and the subscriber

//  Add every configured source to sub; returns how many.
static int
s_add_sources (relais_config_t *config, relais_sub_t *sub)
{
    int count = 0;
    for (int i = 0; s_sources [i]; i++) {
        char path [64];
        snprintf (path, sizeof path, "%s/pub", s_sources [i]);
        const char *pub = relais_config_str (config, path);
        snprintf (path, sizeof path, "%s/fetch", s_sources [i]);
        const char *fetch = relais_config_str (config, path);
        if (!pub || !fetch || !*pub || !*fetch)
            continue;
        if (relais_sub_add (sub, s_sources [i], pub, fetch, NULL) == 0)
            count++;
    }
    return count;
}

//  The slowest heartbeat among the sources (the subscriber's silence clock)
static uint64_t
s_sources_heartbeat (relais_config_t *config)
{
    uint64_t max = 0;
    for (int i = 0; s_sources [i]; i++) {
        char path [64];
        snprintf (path, sizeof path, "%s/heartbeat", s_sources [i]);
        uint64_t ms = relais_config_duration_ms (config, path, 0);
        if (ms > max)
            max = ms;
    }
    return max? max: 1000;
}

//  reader: a dump beside the running service (relais_store_open_reader)
static relais_store_t *
s_store_open (relais_config_t *config, const char *dir, bool reader)
{
    relais_store_opts_t opts = {
        config? relais_config_size (config, "analytics/store/map_size", 64 << 20): 64 << 20,
        config? relais_config_size (config, "analytics/store/map_max", 64ULL << 30): 64ULL << 30,
        analytics_dbs,
        config? relais_config_size (config, "analytics/store/wal_size", 4 << 20): 4 << 20
    };
    return reader? relais_store_open_reader (dir, &opts): relais_store_new (dir, &opts);
}

//  ---------------------------------------------------------------------------
//  API

typedef struct {
    analytics_server_t *self;
    analytics_query_t query;
    analytics_result_t result;
    relais_error_t *err;
    int rc;
} s_run_t;

static int
s_run_query (relais_txn_t *txn, void *arg)
{
    s_run_t *run = (s_run_t *) arg;
    run->rc = analytics_query_run (txn, &run->query, &run->result, run->err);
    return 0;
}

//  A day from a "YYYY-MM-DD" string or a µs timestamp
static bool
s_day_arg (const msgpack_object *o, int64_t *day)
{
    uint64_t us;
    if (relais_msg_uint (o, &us)) {
        *day = analytics_day_of (us);
        return true;
    }
    char text [16];
    int64_t to;
    return relais_msg_str_copy (o, text, sizeof text) == 10
        && analytics_period_parse (text, day, &to) == 0;
}

//  Parse the common query fields; returns 0 or sets err.
static int
s_parse_query (const msgpack_object *root, analytics_query_t *q, char *group_by,
               char *granularity, relais_error_t *err)
{
    memset (q, 0, sizeof *q);
    char name [64];
    const msgpack_object *o = relais_msg_get (root, "indicator");
    if (!o)
        snprintf (name, sizeof name, "reports");
    else
    if (relais_msg_str_copy (o, name, sizeof name) < 0)
        return relais_error_set (err, RELAIS_CODE_INVALID, "indicator", "a string: see analytics.indicators");
    q->indicator = analytics_indicator_find (name);
    if (!q->indicator)
        return relais_error_set (err, RELAIS_CODE_INVALID, "indicator", "unknown indicator: see analytics.indicators");
    group_by [0] = 0;
    if ((o = relais_msg_get (root, "group_by")) && o->type != MSGPACK_OBJECT_NIL
    &&  relais_msg_str_copy (o, group_by, 32) < 0)
        return relais_error_set (err, RELAIS_CODE_INVALID, "group_by", "a dimension name");
    q->group_by = group_by [0] && strcmp (group_by, "none") != 0? group_by: NULL;
    snprintf (granularity, 8, "day");
    if ((o = relais_msg_get (root, "granularity"))
    &&  (relais_msg_str_copy (o, granularity, 8) < 0
         || (strcmp (granularity, "day") && strcmp (granularity, "week")
             && strcmp (granularity, "month") && strcmp (granularity, "total"))))
        return relais_error_set (err, RELAIS_CODE_INVALID, "granularity", "one of day, week, month, total");
    q->granularity = granularity;
    //  period, or from/to (default: the last 30 days)
    q->to = analytics_day_of (relais_clock_now ());
    q->from = q->to - 29;
    if ((o = relais_msg_get (root, "period"))) {
        char text [16];
        if (relais_msg_str_copy (o, text, sizeof text) < 0
        ||  analytics_period_parse (text, &q->from, &q->to))
            return relais_error_set (err, RELAIS_CODE_INVALID, "period",
                                     "YYYY-MM-DD, YYYY-Www (ISO week) or YYYY-MM");
    }
    if ((o = relais_msg_get (root, "from")) && !s_day_arg (o, &q->from))
        return relais_error_set (err, RELAIS_CODE_INVALID, "from", "YYYY-MM-DD or µs since 1970");
    if ((o = relais_msg_get (root, "to")) && !s_day_arg (o, &q->to))
        return relais_error_set (err, RELAIS_CODE_INVALID, "to", "YYYY-MM-DD or µs since 1970");
    if (q->to < q->from)
        return relais_error_set (err, RELAIS_CODE_INVALID, "to", "must not be before from");
    if (q->to - q->from >= S_MAX_DAYS)
        return relais_error_set (err, RELAIS_CODE_TOO_LARGE, "to", "at most %d days", S_MAX_DAYS);
    if ((o = relais_msg_get (root, "filters")) && o->type != MSGPACK_OBJECT_NIL) {
        if (o->type != MSGPACK_OBJECT_MAP)
            return relais_error_set (err, RELAIS_CODE_INVALID, "filters", "a map dimension -> value");
        if (o->via.map.size > ANALYTICS_FILTERS_MAX)
            return relais_error_set (err, RELAIS_CODE_TOO_LARGE, "filters", "at most %d filters",
                                     ANALYTICS_FILTERS_MAX);
        static char dims [ANALYTICS_FILTERS_MAX][32];
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr [i];
            uint64_t num;
            if (relais_msg_str_copy (&kv->key, dims [i], sizeof dims [i]) < 0)
                return relais_error_set (err, RELAIS_CODE_INVALID, "filters", "keys are dimension names");
            if (relais_msg_uint (&kv->val, &num))
                snprintf (q->filter_value [i], sizeof q->filter_value [i], "%llu", (unsigned long long) num);
            else
            if (relais_msg_str_copy (&kv->val, q->filter_value [i], sizeof q->filter_value [i]) < 0
            ||  !relais_utf8_clean (q->filter_value [i], strlen (q->filter_value [i]), false))
                return relais_error_set (err, RELAIS_CODE_INVALID, "filters", "values are strings or integers");
            q->filter_dim [i] = dims [i];
            q->filter_count++;
        }
    }
    return 0;
}

static void
s_pack_day (msgpack_packer *pk, const char *key, int64_t day)
{
    char text [16];
    analytics_day_text (day, text, sizeof text);
    relais_pack_kv_str (pk, key, text);
}

static const char *
s_kind_name (analytics_kind_t kind)
{
    return kind == ANALYTICS_COUNT? "count": kind == ANALYTICS_RATIO? "ratio"
         : kind == ANALYTICS_HIST? "delay": kind == ANALYTICS_GAUGE? "gauge": "derived";
}

static void
s_pack_double (msgpack_packer *pk, const char *key, double value)
{
    relais_pack_str (pk, key);
    msgpack_pack_double (pk, round (value * 1000) / 1000);
}

static void
s_pack_row (msgpack_packer *pk, const analytics_indicator_t *ind, const analytics_row_t *row,
            bool suppressed)
{
    bool hist = ind->kind == ANALYTICS_HIST, ratio = ind->kind == ANALYTICS_RATIO;
    msgpack_pack_map (pk, 4 + (ratio? 1: 0) + (hist? 4: 0) + (suppressed? 1: 0));
    relais_pack_kv_str (pk, "period", row->period);
    relais_pack_kv_str (pk, "group", row->group);
    if (suppressed) {
        relais_pack_str (pk, "value");
        msgpack_pack_nil (pk);
        relais_pack_str (pk, "count");
        msgpack_pack_nil (pk);
        relais_pack_kv_bool (pk, "suppressed", true);
        if (ratio) {
            relais_pack_str (pk, "numerator");
            msgpack_pack_nil (pk);
        }
        if (hist) {
            const char *keys [] = { "p50", "p90", "p99", "mean" };
            for (int i = 0; i < 4; i++) {
                relais_pack_str (pk, keys [i]);
                msgpack_pack_nil (pk);
            }
        }
        return;
    }
    if (ind->kind == ANALYTICS_COUNT || ind->kind == ANALYTICS_GAUGE || ind->kind == ANALYTICS_DERIVED) {
        relais_pack_str (pk, "value");
        msgpack_pack_int64 (pk, row->count);
    }
    else
        s_pack_double (pk, "value", row->value);
    relais_pack_str (pk, "count");
    msgpack_pack_int64 (pk, row->count);
    if (ratio) {
        relais_pack_str (pk, "numerator");
        msgpack_pack_int64 (pk, row->numerator);
    }
    if (hist) {
        s_pack_double (pk, "p50", row->p50);
        s_pack_double (pk, "p90", row->p90);
        s_pack_double (pk, "p99", row->p99);
        s_pack_double (pk, "mean", row->mean);
    }
}

static int
s_query (analytics_server_t *self, analytics_query_t *q, analytics_result_t *result,
         relais_error_t *err)
{
    s_run_t run = { self, *q, { NULL, 0 }, err, 0 };
    int rc = relais_store_read (self->store, s_run_query, &run);
    if (rc == 0)
        rc = run.rc;
    if (rc && !err->code)
        relais_error_set (err, RELAIS_CODE_UNAVAILABLE, "", "storage unavailable, retry later");
    *result = run.result;
    return rc;
}

static int
s_op_query (analytics_server_t *self, const msgpack_object *root, msgpack_packer *pk,
            relais_error_t *err, bool export)
{
    analytics_query_t q;
    char group_by [32], granularity [8];
    if (s_parse_query (root, &q, group_by, granularity, err))
        return -1;
    const msgpack_object *o = relais_msg_get (root, "suppress");
    bool suppress = export || (o && o->type == MSGPACK_OBJECT_BOOLEAN && o->via.boolean);
    analytics_result_t r;
    if (s_query (self, &q, &r, err))
        return -1;
    size_t suppressed = 0;
    for (size_t i = 0; i < r.count; i++)
        if (suppress && analytics_row_suppressed (&r.rows [i], self->suppress_below))
            suppressed++;
    msgpack_pack_map (pk, 10);
    relais_pack_kv_bool (pk, "ok", true);
    relais_pack_kv_str (pk, "indicator", q.indicator->name);
    relais_pack_kv_str (pk, "kind", s_kind_name (q.indicator->kind));
    relais_pack_kv_str (pk, "group_by", q.group_by? q.group_by: "none");
    relais_pack_kv_str (pk, "granularity", q.granularity);
    s_pack_day (pk, "from", q.from);
    s_pack_day (pk, "to", q.to);
    relais_pack_kv_uint (pk, "suppressed", suppressed);
    relais_pack_kv_uint (pk, "suppress_below", suppress? (uint64_t) self->suppress_below: 0);
    if (!export) {
        relais_pack_str (pk, "rows");
        msgpack_pack_array (pk, r.count);
        for (size_t i = 0; i < r.count; i++)
            s_pack_row (pk, q.indicator, &r.rows [i],
                        suppress && analytics_row_suppressed (&r.rows [i], self->suppress_below));
    }
    else {
        //  CSV: values below the threshold become "<N"
        msgpack_sbuffer csv;
        msgpack_sbuffer_init (&csv);
        char line [512];
        bool hist = q.indicator->kind == ANALYTICS_HIST, ratio = q.indicator->kind == ANALYTICS_RATIO;
        int n = snprintf (line, sizeof line, "%s\n",
                          hist? "period,group,count,p50_s,p90_s,p99_s,mean_s"
                          : ratio? "period,group,value,numerator,denominator": "period,group,value");
        msgpack_sbuffer_write (&csv, line, (size_t) n);
        for (size_t i = 0; i < r.count; i++) {
            const analytics_row_t *row = &r.rows [i];
            char hidden [16];
            snprintf (hidden, sizeof hidden, "<%lld", (long long) self->suppress_below);
            bool sup = analytics_row_suppressed (row, self->suppress_below);
            if (sup)
                n = snprintf (line, sizeof line, hist? "%s,%s,%s,,,,\n": ratio? "%s,%s,,%s,\n": "%s,%s,%s\n",
                              row->period, row->group, hidden);
            else
            if (hist)
                n = snprintf (line, sizeof line, "%s,%s,%lld,%.1f,%.1f,%.1f,%.1f\n", row->period,
                              row->group, (long long) row->count, row->p50, row->p90, row->p99, row->mean);
            else
            if (ratio)
                n = snprintf (line, sizeof line, "%s,%s,%.4f,%lld,%lld\n", row->period, row->group,
                              row->value, (long long) row->numerator, (long long) row->count);
            else
                n = snprintf (line, sizeof line, "%s,%s,%lld\n", row->period, row->group,
                              (long long) row->count);
            if (n > 0 && (size_t) n < sizeof line)
                msgpack_sbuffer_write (&csv, line, (size_t) n);
        }
        relais_pack_str (pk, "csv");
        relais_pack_strn (pk, csv.data, csv.size);
        msgpack_sbuffer_destroy (&csv);
    }
    analytics_result_free (&r);
    return 0;
}

//  Total of an indicator over [from, to], and by group when group_by
static int
s_total (analytics_server_t *self, const analytics_query_t *base, int64_t from, int64_t to,
         const char *group_by, analytics_result_t *r, relais_error_t *err)
{
    analytics_query_t q = *base;
    q.from = from;
    q.to = to;
    q.granularity = "total";
    q.group_by = group_by;
    return s_query (self, &q, r, err);
}

static double
s_value (const analytics_result_t *r, const char *group)
{
    for (size_t i = 0; i < r->count; i++)
        if (!group || strcmp (r->rows [i].group, group) == 0)
            return r->rows [i].value;
    return 0;
}

static void
s_pack_compare (msgpack_packer *pk, const char *name, int64_t from, int64_t to,
                double value, double now)
{
    relais_pack_str (pk, name);
    msgpack_pack_map (pk, 6);
    s_pack_day (pk, "from", from);
    s_pack_day (pk, "to", to);
    s_pack_double (pk, "value", value);
    s_pack_double (pk, "change", now - value);
    relais_pack_str (pk, "change_pct");
    if (value != 0)
        msgpack_pack_double (pk, round ((now - value) / value * 1000) / 10);
    else
        msgpack_pack_nil (pk);
    relais_pack_kv_str (pk, "sign", now > value? "+": now < value? "-": "=");
}

typedef struct {
    char group [64];
    double value, previous;
} s_mover_t;

static int
s_mover_cmp (const void *a, const void *b)
{
    const s_mover_t *x = (const s_mover_t *) a, *y = (const s_mover_t *) b;
    double dx = fabs (x->value - x->previous), dy = fabs (y->value - y->previous);
    if (dx != dy)
        return dx > dy? -1: 1;
    return strcmp (x->group, y->group);
}

static int
s_op_trends (analytics_server_t *self, const msgpack_object *root, msgpack_packer *pk,
             relais_error_t *err)
{
    analytics_query_t q;
    char group_by [32], granularity [8];
    if (s_parse_query (root, &q, group_by, granularity, err))
        return -1;
    if (!relais_msg_get (root, "period") && !relais_msg_get (root, "from")) {
        relais_error_set (err, RELAIS_CODE_INVALID, "period", "required (or from/to)");
        return -1;
    }
    uint64_t top = S_TOP_DEFAULT;
    const msgpack_object *o = relais_msg_get (root, "top");
    if (o && (!relais_msg_uint (o, &top) || top == 0 || top > 50)) {
        relais_error_set (err, RELAIS_CODE_INVALID, "top", "an integer from 1 to 50");
        return -1;
    }
    int64_t len = q.to - q.from + 1;
    int64_t prev_from = q.from - len, prev_to = q.from - 1;
    int64_t year_from = q.from - 364, year_to = q.to - 364;     //  same weekdays
    char period [16] = "";
    if ((o = relais_msg_get (root, "period")) && relais_msg_str_copy (o, period, sizeof period) > 0) {
        int y, n;
        char tail;
        int64_t f, t;
        if (strlen (period) == 8 && sscanf (period, "%4d-W%2d%c", &y, &n, &tail) == 2) {
            char last [16];
            snprintf (last, sizeof last, "%04d-W%02d", y - 1, n);
            if (analytics_period_parse (last, &f, &t))
                snprintf (last, sizeof last, "%04d-W52", y - 1);
            if (analytics_period_parse (last, &f, &t) == 0) {
                year_from = f;
                year_to = t;
            }
        }
        else
        if (strlen (period) == 7 && sscanf (period, "%4d-%2d%c", &y, &n, &tail) == 2) {
            char last [16];
            snprintf (last, sizeof last, "%04d-%02d", y - 1, n);
            if (analytics_period_parse (last, &f, &t) == 0) {
                year_from = f;
                year_to = t;
            }
            //  the month before, whole
            snprintf (last, sizeof last, n == 1? "%04d-12": "%04d-%02d", n == 1? y - 1: y, n - 1);
            if (n == 1)
                snprintf (last, sizeof last, "%04d-12", y - 1);
            if (analytics_period_parse (last, &f, &t) == 0) {
                prev_from = f;
                prev_to = t;
            }
        }
    }
    analytics_result_t cur, prev, year;
    if (s_total (self, &q, q.from, q.to, NULL, &cur, err))
        return -1;
    if (s_total (self, &q, prev_from, prev_to, NULL, &prev, err)) {
        analytics_result_free (&cur);
        return -1;
    }
    if (s_total (self, &q, year_from, year_to, NULL, &year, err)) {
        analytics_result_free (&cur);
        analytics_result_free (&prev);
        return -1;
    }
    double now = s_value (&cur, NULL);
    const char *dims [] = { "arrondissement", "public" };
    size_t ndims = 0;
    const char *use [2];
    for (int i = 0; i < 2; i++)
        if (strstr (q.indicator->dims, dims [i]))
            use [ndims++] = dims [i];
    msgpack_pack_map (pk, 6);
    relais_pack_kv_bool (pk, "ok", true);
    relais_pack_kv_str (pk, "indicator", q.indicator->name);
    relais_pack_str (pk, "current");
    msgpack_pack_map (pk, 3);
    s_pack_day (pk, "from", q.from);
    s_pack_day (pk, "to", q.to);
    s_pack_double (pk, "value", now);
    s_pack_compare (pk, "previous", prev_from, prev_to, s_value (&prev, NULL), now);
    s_pack_compare (pk, "year_ago", year_from, year_to, s_value (&year, NULL), now);
    analytics_result_free (&cur);
    analytics_result_free (&prev);
    analytics_result_free (&year);
    relais_pack_str (pk, "movers");
    msgpack_pack_map (pk, ndims);
    for (size_t d = 0; d < ndims; d++) {
        relais_pack_str (pk, use [d]);
        analytics_result_t a = { NULL, 0 }, b = { NULL, 0 };
        s_total (self, &q, q.from, q.to, use [d], &a, err);
        s_total (self, &q, prev_from, prev_to, use [d], &b, err);
        s_mover_t *m = (s_mover_t *) calloc (a.count + b.count + 1, sizeof *m);
        size_t n = 0;
        for (size_t i = 0; m && i < a.count; i++) {
            snprintf (m [n].group, sizeof m [n].group, "%s", a.rows [i].group);
            m [n].value = a.rows [i].value;
            m [n++].previous = s_value (&b, a.rows [i].group);
        }
        for (size_t i = 0; m && i < b.count; i++) {
            bool known = false;
            for (size_t j = 0; j < a.count && !known; j++)
                known = strcmp (a.rows [j].group, b.rows [i].group) == 0;
            if (!known) {
                snprintf (m [n].group, sizeof m [n].group, "%s", b.rows [i].group);
                m [n].value = 0;
                m [n++].previous = b.rows [i].value;
            }
        }
        if (m)
            qsort (m, n, sizeof *m, s_mover_cmp);
        size_t shown = n < top? n: (size_t) top;
        msgpack_pack_array (pk, shown);
        for (size_t i = 0; i < shown; i++) {
            msgpack_pack_map (pk, 5);
            relais_pack_kv_str (pk, "group", m [i].group);
            s_pack_double (pk, "value", m [i].value);
            s_pack_double (pk, "previous", m [i].previous);
            s_pack_double (pk, "change", m [i].value - m [i].previous);
            relais_pack_kv_str (pk, "sign", m [i].value > m [i].previous? "+"
                                          : m [i].value < m [i].previous? "-": "=");
        }
        free (m);
        analytics_result_free (&a);
        analytics_result_free (&b);
    }
    relais_error_clear (err);
    return 0;
}

static void
s_op_indicators (analytics_server_t *self, msgpack_packer *pk)
{
    size_t n = 0;
    while (analytics_indicators [n].name)
        n++;
    msgpack_pack_map (pk, 4);
    relais_pack_kv_bool (pk, "ok", true);
    relais_pack_kv_uint (pk, "suppress_below", (uint64_t) self->suppress_below);
    relais_pack_str (pk, "granularities");
    msgpack_pack_array (pk, 4);
    relais_pack_str (pk, "day");
    relais_pack_str (pk, "week");
    relais_pack_str (pk, "month");
    relais_pack_str (pk, "total");
    relais_pack_str (pk, "indicators");
    msgpack_pack_array (pk, n);
    for (size_t i = 0; i < n; i++) {
        const analytics_indicator_t *ind = &analytics_indicators [i];
        msgpack_pack_map (pk, 4);
        relais_pack_kv_str (pk, "name", ind->name);
        relais_pack_kv_str (pk, "kind", s_kind_name (ind->kind));
        relais_pack_str (pk, "dims");
        size_t count = 0;
        char dims [128];
        snprintf (dims, sizeof dims, "%s", ind->dims);
        char *names [8];
        char *save = NULL;
        for (char *t = strtok_r (dims, ",", &save); t && count < 8; t = strtok_r (NULL, ",", &save))
            names [count++] = t;
        msgpack_pack_array (pk, count);
        for (size_t j = 0; j < count; j++)
            relais_pack_str (pk, names [j]);
        relais_pack_kv_str (pk, "help", ind->help);
    }
}

static void
s_on_api (relais_poller_t *poller, zmsg_t **msg_p, void *arg)
{
    analytics_server_t *self = (analytics_server_t *) arg;
    relais_request_t req;
    relais_msg_t msg = { 0 };
    relais_error_t err;
    relais_error_clear (&err);
    const msgpack_object *rid = NULL;
    msgpack_sbuffer out;
    msgpack_sbuffer_init (&out);
    msgpack_sbuffer body;
    msgpack_sbuffer_init (&body);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &body, msgpack_sbuffer_write);
    self->requests++;
    if (relais_request_read (msg_p, &req, &msg, &rid, &err))
        goto error;
    const msgpack_object *op = relais_msg_get (&msg.root, "op");
    if (!op || op->type != MSGPACK_OBJECT_STR) {
        relais_error_set (&err, RELAIS_CODE_INVALID, "op", "required, a string");
        goto error;
    }
    int rc = 0;
    if (relais_msg_str_eq (op, "analytics.query"))
        rc = s_op_query (self, &msg.root, &pk, &err, false);
    else
    if (relais_msg_str_eq (op, "analytics.export"))
        rc = s_op_query (self, &msg.root, &pk, &err, true);
    else
    if (relais_msg_str_eq (op, "analytics.trends"))
        rc = s_op_trends (self, &msg.root, &pk, &err);
    else
    if (relais_msg_str_eq (op, "analytics.indicators"))
        s_op_indicators (self, &pk);
    else {
        relais_error_set (&err, RELAIS_CODE_UNKNOWN_OP, "op",
                          "this endpoint serves analytics.query, analytics.trends, "
                          "analytics.export and analytics.indicators");
        goto error;
    }
    if (rc || err.code)
        goto error;
    //  The reply is the op's map with rid added: re-pack the header
    msgpack_packer opk;
    msgpack_packer_init (&opk, &out, msgpack_sbuffer_write);
    {
        relais_msg_t reply;
        relais_msg_limits_t limits = { 64 << 20, 0, 1 << 22 };
        relais_error_t inner;
        if (rid && relais_msg_decode (&reply, body.data, body.size, &limits, &inner) == 0) {
            msgpack_pack_map (&opk, reply.root.via.map.size + 1);
            for (uint32_t i = 0; i < reply.root.via.map.size; i++) {
                relais_pack_object (&opk, &reply.root.via.map.ptr [i].key);
                relais_pack_object (&opk, &reply.root.via.map.ptr [i].val);
            }
            relais_pack_str (&opk, "rid");
            relais_pack_object (&opk, rid);
            relais_msg_release (&reply);
        }
        else
            msgpack_sbuffer_write (&out, body.data, body.size);
    }
    relais_request_reply (poller, &req, out.data, out.size);
    goto done;
error:
    self->errors++;
    relais_request_error (poller, &req, &err, NULL, rid);
done:
    relais_msg_release (&msg);
    msgpack_sbuffer_destroy (&out);
    msgpack_sbuffer_destroy (&body);
    relais_request_release (&req);
}

//  ---------------------------------------------------------------------------
//  Lifecycle

static void
s_on_maint (uv_timer_t *timer)
{
    analytics_server_t *self = (analytics_server_t *) timer->data;
    relais_store_tick (self->store);
}

static void
s_on_signal (int signum, void *arg)
{
    analytics_server_stop ((analytics_server_t *) arg);
}

analytics_server_t *
analytics_server_new (uv_loop_t *loop, relais_config_t *config)
{
    analytics_server_t *self = (analytics_server_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->loop = loop;
    self->config = config;
    self->suppress_below = relais_config_int (config, "analytics/suppress_below", 5);
    return self;
}


int
analytics_server_start (analytics_server_t *self)
{
    relais_config_t *config = self->config;
    char *store_path = relais_config_path (config, "analytics/store/path");
    int rc = -EINVAL;
    if (!store_path)
        goto failed;
    self->store = s_store_open (config, store_path, false);
    if (!self->store)
        goto failed;
    rc = -EADDRINUSE;
    relais_pub_opts_t pub_opts = {
        .name = "analytics",
        .pub_endpoint = relais_config_str (config, "analytics/pub"),
        .fetch_endpoint = relais_config_str (config, "analytics/fetch"),
        .heartbeat_ms = relais_config_duration_ms (config, "analytics/heartbeat", 1000),
    };
    self->pub = relais_pub_new (self->loop, self->store, &pub_opts);
    if (!self->pub)
        goto failed;
    zsock_t *api = relais_sock_new (ZMQ_ROUTER, relais_config_str (config, "analytics/api"),
                                    RELAIS_SOCK_BIND, RELAIS_MSG_MAX_BYTES);
    if (!api)
        goto failed;
    self->api = relais_poller_new (self->loop, &api, 64, s_on_api, NULL, self);
    relais_sub_opts_t sub_opts = { .heartbeat_ms = s_sources_heartbeat (config) };
    self->sub = relais_sub_new (self->loop, self->store, &sub_opts, analytics_agg_apply, self);
    rc = -ENOMEM;
    if (!self->sub)
        goto failed;
    int sources = s_add_sources (config, self->sub);
    if ((rc = relais_sub_start (self->sub)))
        goto failed;
    relais_pub_attach_sub (self->pub, self->sub);
    self->signals = relais_signals_new (self->loop, s_on_signal, self);
    uv_timer_init (self->loop, &self->maint);
    self->maint.data = self;
    self->maint_open = true;
    uv_timer_start (&self->maint, s_on_maint, 10000, 10000);
    relais_notice ("ready api=%s sources=%d store=%s", relais_config_str (config, "analytics/api"),
                   sources, store_path);
    free (store_path);
    return 0;
failed:
    free (store_path);
    analytics_server_stop (self);
    return rc;
}

void
analytics_server_stop (analytics_server_t *self)
{
    relais_sub_close (&self->sub);
    relais_poller_close (&self->api);
    relais_pub_close (&self->pub);
    relais_signals_close (&self->signals);
    if (self->maint_open) {
        uv_timer_stop (&self->maint);
        uv_close ((uv_handle_t *) &self->maint, NULL);
        self->maint_open = false;
    }
}

void
analytics_server_destroy (analytics_server_t **self_p)
{
    analytics_server_t *self = *self_p;
    if (!self)
        return;
    *self_p = NULL;
    relais_store_destroy (&self->store);
    free (self);
}

//  ---------------------------------------------------------------------------
//  Rebuild and dump

typedef struct {
    relais_sub_t *sub;
    relais_signals_t *signals;
    uv_timer_t timer;
    uint64_t targets [8];
    const char *names [8];
    size_t count;
    bool done, interrupted;
} s_rebuild_t;

//  The last sequence of a source's log, by one fetch request
static int
s_source_last (const char *fetch, uint64_t *last)
{
    //  No ZMQ_IMMEDIATE here: the request waits in the queue until the
    //  connection is up, so the first try is not lost.
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    if (!dealer)
        return -ENOMEM;
    zsock_set_linger (dealer, 0);
    if (zsock_connect (dealer, "%s", fetch) < 0) {
        zsock_destroy (&dealer);
        return -EINVAL;
    }
    zmq_send (zsock_resolve (dealer), "", 0, ZMQ_SNDMORE);
    const char request [] = "\x83\xa2op\xa5" "fetch\xa4" "from\x01\xa3max\x01";
    zmq_send (zsock_resolve (dealer), request, sizeof request - 1, 0);
    zmq_pollitem_t item = { zsock_resolve (dealer), 0, ZMQ_POLLIN, 0 };
    int rc = -ETIMEDOUT;
    if (zmq_poll (&item, 1, 10000) == 1) {
        zmsg_t *reply = zmsg_recv (dealer);
        zframe_t *data = reply? zmsg_last (reply): NULL;
        relais_msg_t msg;
        relais_error_t err;
        relais_msg_limits_t limits = { 64 << 20, 0, 1 << 22 };
        if (data && relais_msg_decode (&msg, zframe_data (data), zframe_size (data), &limits, &err) == 0) {
            if (relais_msg_uint (relais_msg_get (&msg.root, "last"), last))
                rc = 0;
            relais_msg_release (&msg);
        }
        zmsg_destroy (&reply);
    }
    zsock_destroy (&dealer);
    return rc;
}

static void
s_rebuild_close (s_rebuild_t *r)
{
    relais_sub_close (&r->sub);
    relais_signals_close (&r->signals);
    uv_timer_stop (&r->timer);
    uv_close ((uv_handle_t *) &r->timer, NULL);
}

static void
s_on_rebuild_tick (uv_timer_t *timer)
{
    s_rebuild_t *r = (s_rebuild_t *) timer->data;
    for (size_t i = 0; i < r->count; i++) {
        relais_sub_source_t st;
        relais_sub_source (r->sub, i, &st);
        if (st.applied < r->targets [i])
            return;
    }
    r->done = true;
    s_rebuild_close (r);
}

static void
s_on_rebuild_signal (int signum, void *arg)
{
    s_rebuild_t *r = (s_rebuild_t *) arg;
    r->interrupted = true;
    s_rebuild_close (r);
}

int
analytics_rebuild (relais_config_t *config, const char *dir, FILE *out)
{
    char path [1024];
    snprintf (path, sizeof path, "%s/data.mdb", dir);
    struct stat st;
    if (stat (path, &st) == 0) {
        relais_error ("rebuild refused: %s already holds a store (the rebuild needs a fresh one)", dir);
        return -EEXIST;
    }
    relais_store_t *store = s_store_open (config, dir, false);
    if (!store)
        return -EINVAL;
    uv_loop_t loop;
    uv_loop_init (&loop);
    s_rebuild_t r;
    memset (&r, 0, sizeof r);
    //  A short fetch timeout: the first fetch may leave before the
    //  connection is up, and a rebuild should not wait for the default 2 s
    relais_sub_opts_t sub_opts = { .heartbeat_ms = s_sources_heartbeat (config),
                                   .fetch_timeout_ms = 300 };
    r.sub = relais_sub_new (&loop, store, &sub_opts, analytics_agg_apply, NULL);
    int rc = r.sub? 0: -ENOMEM;
    uint64_t total = 0;
    for (int i = 0; s_sources [i] && rc == 0; i++) {
        char key [64];
        snprintf (key, sizeof key, "%s/pub", s_sources [i]);
        const char *pub = relais_config_str (config, key);
        snprintf (key, sizeof key, "%s/fetch", s_sources [i]);
        const char *fetch = relais_config_str (config, key);
        if (!pub || !fetch || !*pub || !*fetch)
            continue;
        uint64_t last = 0;
        if ((rc = s_source_last (fetch, &last))) {
            relais_error ("rebuild: source %s does not answer on %s", s_sources [i], fetch);
            break;
        }
        rc = relais_sub_add (r.sub, s_sources [i], pub, fetch, NULL);
        r.names [r.count] = s_sources [i];
        r.targets [r.count++] = last;
        total += last;
    }
    uint64_t started = relais_clock_mono ();
    if (rc == 0)
        rc = relais_sub_start (r.sub);
    if (rc == 0) {
        r.signals = relais_signals_new (&loop, s_on_rebuild_signal, &r);
        uv_timer_init (&loop, &r.timer);
        r.timer.data = &r;
        uv_timer_start (&r.timer, s_on_rebuild_tick, 0, 20);
        uv_run (&loop, UV_RUN_DEFAULT);
    }
    else
        relais_sub_close (&r.sub);
    uv_run (&loop, UV_RUN_DEFAULT);
    double seconds = (double) (relais_clock_mono () - started) / 1e6;
    int closed = uv_loop_close (&loop);
    relais_store_destroy (&store);
    if (rc == 0 && !r.done)
        rc = -EINTR;
    if (rc == 0) {
        fprintf (out, "rebuild events=%llu seconds=%.3f rate=%.0f/s store=%s",
                 (unsigned long long) total, seconds, seconds > 0? (double) total / seconds: 0, dir);
        for (size_t i = 0; i < r.count; i++)
            fprintf (out, " %s=%llu", r.names [i], (unsigned long long) r.targets [i]);
        fputc ('\n', out);
    }
    return rc? rc: closed;
}

typedef struct {
    FILE *out;
} s_dump_arg_t;

static int
s_dump (relais_txn_t *txn, void *arg)
{
    return analytics_agg_dump (txn, ((s_dump_arg_t *) arg)->out);
}

int
analytics_dump (const char *dir, FILE *out)
{
    char path [1024];
    snprintf (path, sizeof path, "%s/data.mdb", dir);
    struct stat st;
    if (stat (path, &st) != 0) {
        relais_error ("dump: no store in %s", dir);
        return -ENOENT;
    }
    relais_store_t *store = s_store_open (NULL, dir, true);
    if (!store)
        return -EINVAL;
    s_dump_arg_t arg = { out };
    int rc = relais_store_read (store, s_dump, &arg);
    relais_store_destroy (&store);
    return rc;
}
