/*  Forecast: the least-squares slope on synthetic series with a known
    slope (exact, and with noise within a stated tolerance), days to full,
    the daily forecast on its persisted due date (once a day, not repeated
    by a restart); and the matching of plans' plan.closed with entries. */
#include "capacity_fixture.h"

#include <math.h>

#define DAY CAPACITY_DAY_US

static void
test_slope (void)
{
    //  Exact: +3 a day
    int64_t net [30];
    for (int i = 0; i < 30; i++)
        net [i] = 3;
    CHECK (fabs (capacity_forecast_slope (net, 7) - 3.0) < 1e-9);
    //  Noisy: 2.5 a day on average, +-2 of deterministic noise (a
    //  period-4 pattern that sums to 0): within 0.15 over 28 days
    const int noise [4] = { 2, -1, -2, 1 };
    double y = 0, prev = 0;
    for (int i = 0; i < 28; i++) {
        y = 2.5 * (i + 1) + noise [i % 4];
        net [i] = (int64_t) llround (y - prev);
        prev = (double) llround (y);
    }
    double slope = capacity_forecast_slope (net, 28);
    CHECK (fabs (slope - 2.5) < 0.15);
    //  Flat, and emptying
    for (int i = 0; i < 7; i++)
        net [i] = 0;
    CHECK (capacity_forecast_slope (net, 7) == 0);
    for (int i = 0; i < 7; i++)
        net [i] = -4;
    CHECK (fabs (capacity_forecast_slope (net, 7) + 4.0) < 1e-9);
    //  Too short a series has no slope
    CHECK (capacity_forecast_slope (net, 1) == 0);
}

static const msgpack_object *
s_forecast_of (const char *kind)
{
    const msgpack_object *list = relais_msg_get (&fx.msg.root, "forecasts");
    CHECK (list && list->type == MSGPACK_OBJECT_ARRAY);
    for (uint32_t i = 0; i < list->via.array.size; i++)
        if (relais_msg_str_eq (relais_msg_get (&list->via.array.ptr [i], "kind"), kind))
            return &list->via.array.ptr [i];
    return NULL;
}

static int64_t
s_int (const msgpack_object *map, const char *key)
{
    const msgpack_object *o = relais_msg_get (map, key);
    CHECK (o);
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        return (int64_t) o->via.u64;
    CHECK (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER);
    return o->via.i64;
}

static void
test_forecast_op (void)
{
    fx.now = 1767225600000000ULL + 10 * DAY + DAY / 2;      //  2026-01-11 12:00
    fx_open ("cap-forecast", NULL);
    FX_OK ("{\"op\":\"capacity.declare\",\"id\":\"sas-a\",\"kind\":\"sas\",\"arrondissement\":12,\"places\":100}");
    FX_OK ("{\"op\":\"capacity.declare\",\"id\":\"halte-a\",\"kind\":\"halte\",\"arrondissement\":10,\"places\":40}");
    FX_OK ("{\"op\":\"capacity.entry\",\"id\":\"halte-a\",\"count\":40,\"from\":\"115\"}");
    //  sas: 10 in, 7 out every day of the 7-day window: +3 a day
    for (int d = 6; d >= 0; d--) {
        char json [256];
        uint64_t at = fx.now - (uint64_t) d * DAY - 3600000000ULL;
        snprintf (json, sizeof json, "{\"op\":\"capacity.entry\",\"id\":\"sas-a\",\"count\":10,"
                  "\"from\":\"signalement\",\"at\":%llu}", (unsigned long long) at);
        FX_OK (json);
        snprintf (json, sizeof json, "{\"op\":\"capacity.exit\",\"id\":\"sas-a\",\"count\":7,"
                  "\"to\":\"logement\",\"at\":%llu}", (unsigned long long) at);
        FX_OK (json);
    }
    //  Older movements fall outside the window and do not count
    char json [256];
    snprintf (json, sizeof json, "{\"op\":\"capacity.entry\",\"id\":\"sas-a\",\"count\":30,"
              "\"from\":\"autre\",\"at\":%llu}", (unsigned long long) (fx.now - 9 * DAY));
    FX_OK (json);
    FX_OK ("{\"op\":\"capacity.forecast\"}");
    const msgpack_object *sas = s_forecast_of ("sas");
    CHECK (sas);
    CHECK (s_int (sas, "free") == 100 - 21 - 30);
    CHECK (s_int (sas, "slope_per_day") == -3);
    CHECK (s_int (sas, "days_to_full") == 17);              //  ceil (49 / 3)
    CHECK (relais_msg_str_eq (relais_msg_get (sas, "method"), "least_squares:7d"));
    const msgpack_object *halte = s_forecast_of ("halte");
    CHECK (halte && s_int (halte, "free") == 0 && s_int (halte, "days_to_full") == 0);
    CHECK (!s_forecast_of ("hotel"));                       //  no structure of that kind
    CHECK (fx_count ("capacity.forecast kind:sas {\"kind\":\"sas\",\"free\":49,\"slope_per_day\":-3,\"days_to_full\":17") == 1);
    //  The structure's trend is the same slope
    FX_OK ("{\"op\":\"capacity.get\",\"id\":\"sas-a\"}");
    CHECK (s_int (relais_msg_get (&fx.msg.root, "structure"), "slope_per_day") == -3);
    //  Emptying: no days_to_full
    FX_OK ("{\"op\":\"capacity.exit\",\"id\":\"sas-a\",\"count\":51,\"to\":\"structure\"}");
    FX_OK ("{\"op\":\"capacity.forecast\",\"kind\":\"sas\"}");
    sas = s_forecast_of ("sas");
    CHECK (sas && s_int (sas, "slope_per_day") > 0 && !relais_msg_get (sas, "days_to_full"));
    fx_close ();
}

static void
test_daily (void)
{
    fx.now = 1767225600000000ULL + DAY / 2;                 //  noon
    fx_open ("cap-daily", NULL);
    FX_OK ("{\"op\":\"capacity.declare\",\"id\":\"lima\",\"kind\":\"lima\",\"arrondissement\":0,\"places\":300}");
    FX_OK ("{\"op\":\"capacity.declare\",\"id\":\"hotel-a\",\"kind\":\"hotel\",\"arrondissement\":19,\"places\":30}");
    fx_tick ();
    CHECK (fx_count ("capacity.forecast") == 0);
    fx.now += DAY / 2 - 1;                                  //  23:59:59.999999
    fx_tick ();
    CHECK (fx_count ("capacity.forecast") == 0);
    fx.now += 1;                                            //  midnight: due
    fx_tick ();
    CHECK (fx_count ("capacity.forecast") == 2);
    CHECK (fx_count ("capacity.forecast kind:lima") == 1 && fx_count ("capacity.forecast kind:hotel") == 1);
    fx_tick ();
    fx_reopen ();
    fx_tick ();
    CHECK (fx_count ("capacity.forecast") == 2);
    //  Down for three days: one forecast when back, not three
    fx.now += 3 * DAY + 5;
    fx_reopen ();
    fx_tick ();
    fx_tick ();
    CHECK (fx_count ("capacity.forecast") == 4);
    fx_close ();
}

static int
s_cb (relais_txn_t *txn, void *arg)
{
    const relais_envelope_t *env = (const relais_envelope_t *) arg;
    return capacity_state_plan_event (fx.state, txn, "plan.closed", env, fx.now);
}

//  Apply plan.closed for plan (key) with body json
static int
s_plan (const char *plan, uint64_t seq, const char *body)
{
    cli_json_reader_t reader;
    cli_json_reader_init (&reader, body, strlen (body));
    json_t *value;
    int line;
    char why [128];
    CHECK (cli_json_reader_next (&reader, &value, &line, why, sizeof why) == 1);
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    CHECK_OK (cli_json_pack (&pk, value, why, sizeof why));
    json_decref (value);
    relais_msg_t msg;
    relais_error_t err;
    CHECK_OK (relais_msg_decode (&msg, sbuf.data, sbuf.size, NULL, &err));
    relais_envelope_t env;
    memset (&env, 0, sizeof env);
    env.v = 1;
    snprintf (env.src, sizeof env.src, "plans");
    env.seq = seq;
    env.ts = fx.now;
    snprintf (env.type, sizeof env.type, "plan.closed");
    snprintf (env.key, sizeof env.key, "%s", plan);
    env.body = &msg.root;
    int rc = relais_store_write (fx.store, s_cb, &env);
    relais_msg_release (&msg);
    msgpack_sbuffer_destroy (&sbuf);
    return rc;
}

static void
test_plans (void)
{
    fx.now = 1767225600000000ULL;
    fx_open ("cap-plans", NULL);
    FX_OK ("{\"op\":\"capacity.declare\",\"id\":\"hotel-a\",\"kind\":\"hotel\",\"arrondissement\":19,\"places\":30}");
    FX_OK ("{\"op\":\"capacity.declare\",\"id\":\"hotel-b\",\"kind\":\"hotel\",\"arrondissement\":20,\"places\":30}");
    //  No such structure
    CHECK_OK (s_plan ("PLAN-0", 1, "{\"outcome\":\"mise_a_l_abri\",\"structure\":\"hotel-zz\",\"arrondissement\":19,\"signals\":[]}"));
    CHECK (fx_count ("capacity.mismatch hotel-zz {\"plan\":\"PLAN-0\",\"structure\":\"hotel-zz\",\"reason\":\"unknown_structure\"}") == 1);
    //  Entry first, then the close: matched
    FX_OK ("{\"op\":\"capacity.entry\",\"id\":\"hotel-a\",\"count\":3,\"from\":\"plan\",\"ref\":\"PLAN-1\"}");
    CHECK_OK (s_plan ("PLAN-1", 2, "{\"outcome\":\"mise_a_l_abri\",\"structure\":\"hotel-a\",\"arrondissement\":19,\"signals\":[\"SIG-1\"]}"));
    //  Close first, then the entry within the window: matched
    CHECK_OK (s_plan ("PLAN-2", 3, "{\"outcome\":\"mise_a_l_abri\",\"structure\":\"hotel-a\",\"arrondissement\":19,\"signals\":[]}"));
    fx.now += DAY / 2;
    FX_OK ("{\"op\":\"capacity.entry\",\"id\":\"hotel-a\",\"count\":2,\"from\":\"plan\",\"ref\":\"PLAN-2\"}");
    //  Close, and no entry: reported once the window ran out, once
    CHECK_OK (s_plan ("PLAN-3", 4, "{\"outcome\":\"mise_a_l_abri\",\"structure\":\"hotel-a\",\"arrondissement\":19,\"signals\":[]}"));
    //  Entry at another structure
    CHECK_OK (s_plan ("PLAN-4", 5, "{\"outcome\":\"mise_a_l_abri\",\"structure\":\"hotel-b\",\"arrondissement\":20,\"signals\":[]}"));
    FX_OK ("{\"op\":\"capacity.entry\",\"id\":\"hotel-a\",\"count\":1,\"from\":\"plan\",\"ref\":\"PLAN-4\"}");
    CHECK (fx_count ("capacity.mismatch hotel-b {\"plan\":\"PLAN-4\",\"structure\":\"hotel-b\",\"reason\":\"other_structure\"}") == 1);
    //  Other outcomes, or no structure named: nothing to match
    CHECK_OK (s_plan ("PLAN-5", 6, "{\"outcome\":\"orientation\",\"structure\":\"hotel-zz\",\"arrondissement\":19,\"signals\":[]}"));
    CHECK_OK (s_plan ("PLAN-6", 7, "{\"outcome\":\"mise_a_l_abri\",\"arrondissement\":19,\"signals\":[]}"));
    //  Malformed: skipped
    CHECK (s_plan ("PLAN-7", 8, "{\"structure\":\"hotel-a\"}") == RELAIS_EMALFORMED);
    CHECK (s_plan ("PLAN-8", 9, "{\"outcome\":\"mise_a_l_abri\",\"structure\":\"Mme Y\"}") == RELAIS_EMALFORMED);
    fx.now += DAY / 2 - 1;
    fx_tick ();
    CHECK (fx_count ("capacity.mismatch") == 2);
    fx_reopen ();
    fx.now += DAY;
    fx_tick ();
    fx_tick ();
    CHECK (fx_count ("capacity.mismatch hotel-a {\"plan\":\"PLAN-3\",\"structure\":\"hotel-a\",\"reason\":\"no_entry\"}") == 1);
    CHECK (fx_count ("capacity.mismatch") == 3);
    fx_close ();
}

int
main (void)
{
    RUN (test_slope);
    RUN (test_forecast_op);
    RUN (test_daily);
    RUN (test_plans);
    return 0;
}
