/*  =========================================================================
    analytics_agg - the aggregates of the analytics service, in its LMDB

    @header
    Turns every event of intake, router, plans and capacity into counters
    that queries read fast, inside the subscriber's write transaction (so
    the checkpoint and the counters commit together). The same function
    serves the live service, `relais-analytics --rebuild` and the unit
    tests. The query engine (analytics.query / trends / export) reads the
    same databases. proto/analytics.md is the normative description.
    @discuss
    Cells. Database "agg" holds cells keyed by text
        "<family>/<YYYY-MM-DD>/<v1>|<v2>|..."
    (UTC day, then the values of the family's dimensions, arrondissements
    written on two digits) so that a query for a day range is one ordered
    scan. A cell's value is a version byte then a fixed vector of int64
    metrics (the family's). A cell whose metrics all fall to 0 is deleted,
    so the stored state is canonical.
    Order independence. A report's cells are a pure function of its
    record (database "reports"): intake's facts, the first acknowledgement
    time (router) and the first shelter time (plans). Each event changes
    the record, then subtracts the old contribution and adds the new one.
    Each source sets its own fields, so the state is the same whatever the
    interleaving of sources: a rebuild (sources fetched one after another)
    reaches exactly the live state. Everything else is per source.
    Unmet demand mixes intake and capacity, so it is computed at query
    time, never stored.
    =========================================================================
*/
#ifndef ANALYTICS_AGG_H_INCLUDED
#define ANALYTICS_AGG_H_INCLUDED

#include <stdio.h>
#include "relais_envelope.h"
#include "relais_store.h"

//  Databases the service's store must open (NULL-terminated).
extern const char *const analytics_dbs [];

//  Histogram of delays: bucket 0 holds delays <= 1 s; bucket i (1..98)
//  holds (2^((i-1)/4), 2^(i/4)] seconds; bucket 99 everything longer
//  (about 198 days and more).
#define ANALYTICS_HIST_BUCKETS  100

//  Bucket of a delay in µs.
int
    analytics_hist_bucket (uint64_t delay_us);

//  Representative value (seconds) of bucket i: the geometric middle of its
//  bounds, within 9.1% of any delay in it (bucket 0: 1 s).
double
    analytics_hist_value (int bucket);

//  Metrics of the report families ("rep", "pub"), by index.
typedef enum {
    A_REPORTS, A_PERSONS, A_LEVEL2, A_ENCAMPMENTS, A_TENTS, A_FAMILIES,
    A_WITH_MINORS, A_MINORS, A_WITH_PREGNANT, A_PREGNANT, A_SHELTER_NEED,
    A_SHELTER_PERSONS, A_REPEAT_LIEU, A_REPEAT_PERSONNE, A_PERSON_SEEN,
    A_REP_COUNT
} analytics_rep_metric_t;

//  Apply one event of any source inside txn (a relais_apply_fn; arg is
//  unused). Returns 0 (applied, or a type it does not aggregate),
//  RELAIS_EMALFORMED (a required key is missing or of the wrong type: the
//  event changes nothing), or a store error.
int
    analytics_agg_apply (relais_txn_t *txn, const char *topic,
                         const relais_envelope_t *env, void *arg);

//  Write a canonical, sorted text dump of every aggregate and record
//  (and the checkpoints) to out, one line each. Returns 0 or a store error.
int
    analytics_agg_dump (relais_txn_t *txn, FILE *out);

//  --- queries --------------------------------------------------------------

//  Day numbers are days since 1970-01-01 (UTC).
int64_t
    analytics_day_of (uint64_t ts_us);
void
    analytics_day_text (int64_t day, char *buf, size_t size);       //  YYYY-MM-DD
//  Parse "YYYY-MM-DD" (one day), "YYYY-Www" (ISO week), "YYYY-MM" (month)
//  into [from, to] days. Returns 0 or -1.
int
    analytics_period_parse (const char *text, int64_t *from, int64_t *to);
//  The label of day in a granularity ("day", "week", "month", "total").
void
    analytics_period_label (int64_t day, const char *granularity, char *buf, size_t size);

typedef enum { ANALYTICS_COUNT, ANALYTICS_RATIO, ANALYTICS_HIST, ANALYTICS_GAUGE,
               ANALYTICS_DERIVED } analytics_kind_t;

typedef struct {
    const char *name;
    const char *family;             //  cells it reads
    int metric;                     //  index in the family's vector
    analytics_kind_t kind;
    const char *dims;               //  comma-separated dimensions: group_by and filters
    const char *help;
} analytics_indicator_t;

//  The indicators, NULL-name terminated.
extern const analytics_indicator_t analytics_indicators [];

const analytics_indicator_t *
    analytics_indicator_find (const char *name);

#define ANALYTICS_FILTERS_MAX 6

typedef struct {
    const analytics_indicator_t *indicator;
    const char *group_by;           //  NULL or "": one group "all"
    const char *granularity;        //  "day", "week", "month", "total"
    int64_t from, to;               //  days, inclusive
    size_t filter_count;
    const char *filter_dim [ANALYTICS_FILTERS_MAX];
    char filter_value [ANALYTICS_FILTERS_MAX][64];
} analytics_query_t;

//  One row of a result: a period, a group and the values.
typedef struct {
    char period [16];
    char group [64];
    double value;                   //  count, ratio, p50 (hist), gauge
    int64_t count;                  //  hist: delays; ratio: denominator; else = value
    int64_t numerator;              //  ratio only
    double p50, p90, p99, mean;     //  hist only (seconds)
} analytics_row_t;

typedef struct {
    analytics_row_t *rows;
    size_t count;
} analytics_result_t;

//  Run a query inside a read txn. Returns 0 with result filled (free with
//  analytics_result_free), or RELAIS_EMALFORMED with err naming the field
//  (unknown group_by or filter dimension for this indicator).
int
    analytics_query_run (relais_txn_t *txn, const analytics_query_t *query,
                         analytics_result_t *result, relais_error_t *err);
void
    analytics_result_free (analytics_result_t *result);

//  True when row must be suppressed in public outputs: its count is
//  between 1 and threshold - 1.
bool
    analytics_row_suppressed (const analytics_row_t *row, int64_t threshold);

#endif
