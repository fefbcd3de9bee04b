/*  Alerts: per structure and per kind, free_below and occupancy_above.
    Raised once when the threshold is crossed, not repeated while it stays
    crossed, cleared once when back; after a restart none is lost (a
    threshold changed while down is applied at startup) or repeated. */
#include "capacity_fixture.h"

static capacity_opts_t
s_opts (void)
{
    capacity_opts_t opts;
    memset (&opts, 0, sizeof opts);
    opts.hold_us = 3600000000ULL;
    opts.window_days = 7;
    opts.match_window_us = CAPACITY_DAY_US;
    opts.kinds [0].free_below = 5;              //  hotel, kind scope
    opts.kinds [3].occupancy_above = 80;        //  chu, kind scope
    return opts;
}

static void
test_structure_alerts (void)
{
    capacity_opts_t opts = s_opts ();
    fx_open ("cap-alerts", &opts);
    FX_OK ("{\"op\":\"capacity.declare\",\"id\":\"chu-a\",\"kind\":\"chu\",\"arrondissement\":13,\"places\":10,"
           "\"free_below\":3,\"occupancy_above\":90}");
    CHECK (fx_count ("capacity.alert") == 0);
    FX_OK ("{\"op\":\"capacity.entry\",\"id\":\"chu-a\",\"count\":7,\"from\":\"115\"}");
    CHECK (fx_count ("capacity.alert") == 0);
    //  free 2 < 3: raised (scope structure); 90% is not above 90
    FX_OK ("{\"op\":\"capacity.entry\",\"id\":\"chu-a\",\"count\":1,\"from\":\"115\"}");
    CHECK (fx_count ("capacity.alert chu-a {\"kind\":\"chu\",\"scope\":\"structure\",\"rule\":\"free_below\",\"threshold\":3,\"value\":2}") == 1);
    //  the kind (one structure, 80% > 80 is false) stays quiet
    CHECK (fx_count ("capacity.alert kind:chu") == 0);
    //  A reservation also takes a place: 90% of 10 -> not above; 100%: above
    FX_OK ("{\"op\":\"capacity.reserve\",\"id\":\"chu-a\",\"places\":1,\"reservation\":\"r1\"}");
    CHECK (fx_count ("capacity.alert chu-a {\"kind\":\"chu\",\"scope\":\"structure\",\"rule\":\"occupancy_above\"") == 0);
    CHECK (fx_count ("capacity.alert kind:chu {\"kind\":\"chu\",\"scope\":\"kind\",\"rule\":\"occupancy_above\",\"threshold\":80,\"value\":90}") == 1);
    FX_OK ("{\"op\":\"capacity.entry\",\"id\":\"chu-a\",\"count\":1,\"from\":\"115\"}");
    CHECK (fx_count ("capacity.alert chu-a {\"kind\":\"chu\",\"scope\":\"structure\",\"rule\":\"occupancy_above\",\"threshold\":90,\"value\":100}") == 1);
    //  Staying below free_below 3 (and the kind above 80%) while places
    //  move: no repeat. Occupancy crosses 90% back and forth: one event
    //  per crossing.
    FX_OK ("{\"op\":\"capacity.exit\",\"id\":\"chu-a\",\"count\":1,\"to\":\"structure\"}");
    CHECK (fx_count ("capacity.cleared chu-a {\"kind\":\"chu\",\"scope\":\"structure\",\"rule\":\"occupancy_above\",\"threshold\":90,\"value\":90}") == 1);
    FX_OK ("{\"op\":\"capacity.entry\",\"id\":\"chu-a\",\"count\":1,\"from\":\"115\"}");
    FX_OK ("{\"op\":\"capacity.update\",\"id\":\"chu-a\",\"occupied\":8,\"previous\":9}");
    CHECK (fx_count ("capacity.alert chu-a {\"kind\":\"chu\",\"scope\":\"structure\",\"rule\":\"free_below\"") == 1);
    CHECK (fx_count ("capacity.alert chu-a {\"kind\":\"chu\",\"scope\":\"structure\",\"rule\":\"occupancy_above\"") == 2);
    CHECK (fx_count ("capacity.cleared chu-a {\"kind\":\"chu\",\"scope\":\"structure\",\"rule\":\"occupancy_above\"") == 2);
    CHECK (fx_count ("capacity.alert kind:chu") == 1 && fx_count ("capacity.cleared kind:chu") == 0);
    CHECK (fx_count ("capacity.cleared chu-a {\"kind\":\"chu\",\"scope\":\"structure\",\"rule\":\"free_below\"") == 0);
    //  Back: cleared once
    FX_OK ("{\"op\":\"capacity.exit\",\"id\":\"chu-a\",\"count\":4,\"to\":\"logement\"}");
    CHECK (fx_count ("capacity.cleared chu-a {\"kind\":\"chu\",\"scope\":\"structure\",\"rule\":\"free_below\",\"threshold\":3,\"value\":5}") == 1);
    CHECK (fx_count ("capacity.cleared kind:chu {\"kind\":\"chu\",\"scope\":\"kind\",\"rule\":\"occupancy_above\",\"threshold\":80,\"value\":50}") == 1);
    FX_OK ("{\"op\":\"capacity.exit\",\"id\":\"chu-a\",\"count\":2,\"to\":\"logement\"}");
    CHECK (fx_count ("capacity.cleared") == 4);
    CHECK (fx_count ("capacity.alert") == 4);
    fx_close ();
}

static void
test_kind_alerts (void)
{
    capacity_opts_t opts = s_opts ();
    fx_open ("cap-alerts-kind", &opts);
    FX_OK ("{\"op\":\"capacity.declare\",\"id\":\"hotel-a\",\"kind\":\"hotel\",\"arrondissement\":19,\"places\":10}");
    FX_OK ("{\"op\":\"capacity.declare\",\"id\":\"hotel-b\",\"kind\":\"hotel\",\"arrondissement\":20,\"places\":10}");
    FX_OK ("{\"op\":\"capacity.entry\",\"id\":\"hotel-a\",\"count\":10,\"from\":\"115\"}");
    CHECK (fx_count ("capacity.alert") == 0);       //  10 free in the kind
    FX_OK ("{\"op\":\"capacity.entry\",\"id\":\"hotel-b\",\"count\":6,\"from\":\"115\"}");
    CHECK (fx_count ("capacity.alert kind:hotel {\"kind\":\"hotel\",\"scope\":\"kind\",\"rule\":\"free_below\",\"threshold\":5,\"value\":4}") == 1);
    FX_OK ("{\"op\":\"capacity.entry\",\"id\":\"hotel-b\",\"count\":2,\"from\":\"115\"}");
    CHECK (fx_count ("capacity.alert") == 1);
    //  A new structure of the kind brings free places back
    FX_OK ("{\"op\":\"capacity.declare\",\"id\":\"hotel-c\",\"kind\":\"hotel\",\"arrondissement\":18,\"places\":10}");
    CHECK (fx_count ("capacity.cleared kind:hotel {\"kind\":\"hotel\",\"scope\":\"kind\",\"rule\":\"free_below\",\"threshold\":5,\"value\":12}") == 1);
    fx_close ();
}

static void
test_restart (void)
{
    capacity_opts_t opts = s_opts ();
    fx_open ("cap-alerts-restart", &opts);
    FX_OK ("{\"op\":\"capacity.declare\",\"id\":\"hotel-a\",\"kind\":\"hotel\",\"arrondissement\":19,\"places\":10,\"free_below\":2}");
    FX_OK ("{\"op\":\"capacity.entry\",\"id\":\"hotel-a\",\"count\":9,\"from\":\"115\"}");
    CHECK (fx_count ("capacity.alert hotel-a") == 1);
    CHECK (fx_count ("capacity.alert kind:hotel") == 1);
    //  A restart with the same thresholds: nothing raised again
    size_t before = fx.count;
    fx_reopen ();
    fx_tick ();
    CHECK (fx.count == before);
    FX_OK ("{\"op\":\"capacity.entry\",\"id\":\"hotel-a\",\"count\":1,\"from\":\"115\"}");
    CHECK (fx_count ("capacity.alert") == 2);
    //  Cleared state survives too: one clear, none after a restart
    FX_OK ("{\"op\":\"capacity.exit\",\"id\":\"hotel-a\",\"count\":8,\"to\":\"logement\"}");
    CHECK (fx_count ("capacity.cleared") == 2);
    fx_reopen ();
    FX_OK ("{\"op\":\"capacity.exit\",\"id\":\"hotel-a\",\"count\":1,\"to\":\"logement\"}");
    CHECK (fx_count ("capacity.cleared") == 2 && fx_count ("capacity.alert") == 2);
    //  Thresholds changed while down: the crossing is not lost, raised at startup
    fx.opts.kinds [0].free_below = 20;
    before = fx.count;
    fx_reopen ();
    CHECK (fx.count == before + 1);
    CHECK (fx_count ("capacity.alert kind:hotel {\"kind\":\"hotel\",\"scope\":\"kind\",\"rule\":\"free_below\",\"threshold\":20,\"value\":9}") == 1);
    fx_reopen ();
    CHECK (fx.count == before + 1);
    //  And turned off while down: cleared once
    fx.opts.kinds [0].free_below = 0;
    fx_reopen ();
    CHECK (fx_count ("capacity.cleared kind:hotel {\"kind\":\"hotel\",\"scope\":\"kind\",\"rule\":\"free_below\",\"threshold\":0,\"value\":9}") == 1);
    fx_reopen ();
    CHECK (fx.count == before + 2);
    fx_close ();
}

int
main (void)
{
    RUN (test_structure_alerts);
    RUN (test_kind_alerts);
    RUN (test_restart);
    return 0;
}
