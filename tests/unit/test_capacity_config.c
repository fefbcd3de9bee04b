/*  Structures declared in the deployment file (capacity/structures/<id>):
    declared at the first start, nothing published by a restart with the
    same file, a change published once, a change that does not fit the
    stored state (kind, places under what is taken) refused at start with
    RELAIS_ECONFIG and nothing changed; kind thresholds from alerts/<kind>. */
#include "capacity_fixture.h"
#include "capacity_server.h"
#include "relais_deploy.h"

static char s_file [600];

static relais_config_t *
s_config (const char *places, const char *kind)
{
    FILE *f = fopen (s_file, "w");
    CHECK (f);
    fprintf (f,
        "relais\n"
        "    data = var\n"
        "capacity\n"
        "    alerts\n"
        "        hotel\n"
        "            free_below = 5\n"
        "    structures\n"
        "        hotel-ibis-19\n"
        "            kind = %s\n"
        "            arrondissement = 19\n"
        "            places = %s\n"
        "            households = 12\n"
        "            publics = \"famille, femme_enceinte\"\n"
        "            operator = \"Samu Social de Paris\"\n"
        "            occupancy_above = 90\n"
        "        chu-pereire-17\n"
        "            kind = chu\n"
        "            arrondissement = 17\n"
        "            places = 120\n", kind, places);
    fclose (f);
    relais_config_t *config = relais_config_load (s_file);
    CHECK (config);
    CHECK_OK (relais_deploy_declare (config));
    CHECK_OK (capacity_declare (config));
    return config;
}

static void
test_config_structures (void)
{
    const char *tmp = getenv ("RELAIS_TEST_TMP");
    mkdir (tmp? tmp: "/tmp", 0700);
    snprintf (s_file, sizeof s_file, "%s/cap-config-%d.cfg", tmp? tmp: "/tmp", (int) getpid ());
    relais_config_t *config = s_config ("40", "hotel");
    capacity_opts_t opts;
    capacity_opts_from_config (&opts, config);
    CHECK (opts.kinds [0].free_below == 5 && opts.kinds [1].free_below == 0);
    CHECK (opts.hold_us == 2 * 3600 * 1000000ULL && opts.window_days == 7);
    fx.config = config;
    fx_open ("cap-config", &opts);
    CHECK (fx_count ("capacity.declared hotel-ibis-19 {\"kind\":\"hotel\",\"arrondissement\":19,\"places\":40,"
                     "\"households\":12,\"publics\":[\"famille\",\"femme_enceinte\"],\"operator\":\"Samu Social de Paris\"}") == 1);
    CHECK (fx_count ("capacity.declared chu-pereire-17") == 1);
    FX_OK ("{\"op\":\"capacity.get\",\"id\":\"hotel-ibis-19\"}");
    CHECK (fx_uint ("occupancy_above") == 90 && fx_uint ("places") == 40);
    FX_OK ("{\"op\":\"capacity.entry\",\"id\":\"hotel-ibis-19\",\"count\":30,\"from\":\"115\"}");
    //  Same file: nothing again
    size_t before = fx.count;
    CHECK_OK (fx_restart ());
    CHECK (fx.count == before);
    //  More places: declared and updated (capacity), once
    relais_config_destroy (&config);
    fx.config = config = s_config ("50", "hotel");
    CHECK_OK (fx_restart ());
    CHECK (fx.count == before + 2);
    CHECK (strstr (fx.events [fx.count - 1], "capacity.updated hotel-ibis-19") == fx.events [fx.count - 1]);
    CHECK (strstr (fx.events [fx.count - 1], "\"cause\":\"capacity\""));
    CHECK_OK (fx_restart ());
    CHECK (fx.count == before + 2);
    //  Fewer places than occupied: refused at start, nothing changed
    relais_config_destroy (&config);
    fx.config = config = s_config ("20", "hotel");
    CHECK (fx_restart () == RELAIS_ECONFIG);
    CHECK (fx.count == before + 2);
    //  Another kind: refused too
    relais_config_destroy (&config);
    fx.config = config = s_config ("50", "sas");
    CHECK (fx_restart () == RELAIS_ECONFIG);
    relais_config_destroy (&config);
    fx.config = config = s_config ("50", "hotel");
    CHECK_OK (fx_restart ());
    CHECK (fx_free ("hotel-ibis-19") == 20);
    fx.config = NULL;
    fx_close ();
    relais_config_destroy (&config);
    remove (s_file);
}

int
main (void)
{
    RUN (test_config_structures);
    return 0;
}
