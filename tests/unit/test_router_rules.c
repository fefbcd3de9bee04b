/*  Routing rules: each default rule of DOMAIN.md, combined conditions from
    a deployment file, the explain output, and invalid rules refused with
    the key path and the reason. */
#include "router_rules.h"
#include "router_server.h"
#include "relais_deploy.h"
#include "relais_test.h"

#include <sys/stat.h>
#include <unistd.h>

static router_report_t
s_base (void)
{
    router_report_t r;
    memset (&r, 0, sizeof r);
    r.level = 1;
    r.arrondissement = 18;
    r.place_kind = RELAIS_PLACE_VOIE_PUBLIQUE;
    r.publics = 1u << RELAIS_PUBLIC_HOMME_ISOLE;
    r.needs = 1u << RELAIS_NEED_MISE_A_L_ABRI;
    r.urgency = RELAIS_URGENCY_JOUR;
    r.persons = 1;
    return r;
}

static uint32_t
s_reason (const char *name)
{
    for (int i = 0; i < ROUTER_REASON_COUNT; i++)
        if (strcmp (router_reason_names [i], name) == 0)
            return 1u << i;
    CHECK (!"known reason");
    return 0;
}

//  Partners of report under rules, sorted, joined by spaces
static void
s_partners (const router_rules_t *rules, const router_report_t *r, int hour, char *out, size_t size)
{
    router_match_t m [ROUTER_MATCH_MAX];
    size_t n = router_rules_eval (rules, r, hour, m, ROUTER_MATCH_MAX);
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (strcmp (m [j].partner, m [i].partner) < 0) {
                router_match_t t = m [i];
                m [i] = m [j];
                m [j] = t;
            }
    out [0] = 0;
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += (size_t) snprintf (out + len, size - len, "%s%s", i? " ": "", m [i].partner);
}

static void
test_defaults (void)
{
    router_rules_t rules;
    router_rules_defaults (&rules);
    char got [256];
    router_report_t r;

    r = s_base ();                                      //  level 1: the cell
    s_partners (&rules, &r, 12, got, sizeof got);
    CHECK_STR (got, "cellule-18");

    r = s_base (); r.level = 2; r.place_kind = RELAIS_PLACE_DOMAINE_MUNICIPAL;
    r.reasons = s_reason ("domaine_municipal");
    s_partners (&rules, &r, 12, got, sizeof got);
    CHECK_STR (got, "mus uasa");

    r = s_base (); r.level = 2; r.reasons = s_reason ("grande_vulnerabilite");
    s_partners (&rules, &r, 12, got, sizeof got);
    CHECK_STR (got, "mus uasa");

    r = s_base (); r.level = 2; r.minors = 2; r.reasons = s_reason ("mineurs");
    s_partners (&rules, &r, 12, got, sizeof got);
    CHECK_STR (got, "mus sdppe");

    r = s_base (); r.level = 2; r.pregnant = 1; r.reasons = s_reason ("grossesse");
    s_partners (&rules, &r, 12, got, sizeof got);
    CHECK_STR (got, "mus sdppe");

    r = s_base (); r.tents = 2;                         //  small encampment, level 1
    s_partners (&rules, &r, 12, got, sizeof got);
    CHECK_STR (got, "cellule-18 drihl maraudes");

    r = s_base (); r.level = 2; r.tents = 5; r.reasons = s_reason ("campement");
    s_partners (&rules, &r, 12, got, sizeof got);
    CHECK_STR (got, "drihl maraudes mus");

    r = s_base (); r.publics = 1u << RELAIS_PUBLIC_FAMILLE;
    s_partners (&rules, &r, 12, got, sizeof got);
    CHECK_STR (got, "cellule-18 samu_social");

    r = s_base (); r.publics = 1u << RELAIS_PUBLIC_FAMILLE; r.needs = 1u << RELAIS_NEED_SOINS;
    s_partners (&rules, &r, 12, got, sizeof got);
    CHECK_STR (got, "cellule-18");                      //  family without a shelter need

    r = s_base (); r.level = 2; r.reasons = s_reason ("sensible");
    s_partners (&rules, &r, 12, got, sizeof got);
    CHECK_STR (got, "mus");

    //  Every default assignment falls back on the MUS, but the MUS's own
    router_match_t m [ROUTER_MATCH_MAX];
    r = s_base (); r.level = 2; r.reasons = s_reason ("domaine_municipal");
    size_t n = router_rules_eval (&rules, &r, 12, m, ROUTER_MATCH_MAX);
    CHECK (n == 2);
    for (size_t i = 0; i < n; i++) {
        if (strcmp (m [i].partner, "mus") == 0)
            CHECK_STR (m [i].fallback, "");
        else
            CHECK_STR (m [i].fallback, "mus");
        CHECK (m [i].deadline_us > 0);
    }
}

static char s_dir [512];

static relais_config_t *
s_config (const char *name, const char *router_section)
{
    char path [700];
    snprintf (path, sizeof path, "%s/%s.cfg", s_dir, name);
    FILE *f = fopen (path, "w");
    CHECK (f);
    fprintf (f, "relais\n    data = var\nrouter\n%s", router_section);
    fclose (f);
    relais_config_t *config = relais_config_load (path);
    CHECK (config);
    return config;
}

static const char s_combined [] =
    "    fallback = mus\n"
    "    deadline = 45m\n"
    "    rules\n"
    "        nuit_nord\n"
    "            level = 2\n"
    "            arrondissements = \"18 19, 20\"\n"
    "            hours = 22-6\n"
    "            urgency = immediate\n"
    "            partners = \"maraude-nuit cellule-{arr}\"\n"
    "            deadline = 15m\n"
    "            fallback = samu_social\n"
    "        gares\n"
    "            place = \"gare metro\"\n"
    "            source = riverain\n"
    "            needs = \"soins hygiene\"\n"
    "            partners = sncf-social\n"
    "        tout\n"
    "            partners = mus\n";

static void
test_combined (void)
{
    relais_config_t *config = s_config ("combined", s_combined);
    CHECK_OK (relais_deploy_declare (config));
    CHECK_OK (router_declare (config));
    router_rules_t rules;
    char why [256] = "";
    CHECK_OK (router_rules_load (&rules, config, why, sizeof why));
    CHECK (rules.count == 3);
    CHECK_STR (rules.rules [0].name, "nuit_nord");
    CHECK (rules.rules [0].deadline_us == 15ULL * 60 * 1000000);
    CHECK (rules.rules [1].deadline_us == 45ULL * 60 * 1000000);   //  the section's deadline
    CHECK_STR (rules.rules [1].fallback, "mus");

    char got [256];
    router_report_t r = s_base ();
    r.level = 2;
    r.arrondissement = 19;
    r.urgency = RELAIS_URGENCY_IMMEDIATE;
    s_partners (&rules, &r, 23, got, sizeof got);
    CHECK_STR (got, "cellule-19 maraude-nuit mus");
    s_partners (&rules, &r, 3, got, sizeof got);                   //  wraps past midnight
    CHECK_STR (got, "cellule-19 maraude-nuit mus");
    s_partners (&rules, &r, 12, got, sizeof got);                  //  not at noon
    CHECK_STR (got, "mus");
    r.arrondissement = 17;                                         //  not in the list
    s_partners (&rules, &r, 23, got, sizeof got);
    CHECK_STR (got, "mus");
    r.arrondissement = 19;
    r.urgency = RELAIS_URGENCY_JOUR;                               //  every condition must hold
    s_partners (&rules, &r, 23, got, sizeof got);
    CHECK_STR (got, "mus");
    r.level = 1;
    r.urgency = RELAIS_URGENCY_IMMEDIATE;
    s_partners (&rules, &r, 23, got, sizeof got);
    CHECK_STR (got, "mus");

    //  Lists are any-of: one of the needs, one of the places
    r = s_base ();
    r.place_kind = RELAIS_PLACE_METRO;
    r.source_kind = RELAIS_SOURCE_RIVERAIN;
    r.needs = (1u << RELAIS_NEED_HYGIENE) | (1u << RELAIS_NEED_ALIMENTATION);
    s_partners (&rules, &r, 12, got, sizeof got);
    CHECK_STR (got, "mus sncf-social");
    r.source_kind = RELAIS_SOURCE_115;
    s_partners (&rules, &r, 12, got, sizeof got);
    CHECK_STR (got, "mus");

    //  The fallback of a cellule-{arr} rule and the expansion
    router_match_t m [ROUTER_MATCH_MAX];
    r = s_base ();
    r.level = 2;
    r.arrondissement = 20;
    r.urgency = RELAIS_URGENCY_IMMEDIATE;
    size_t n = router_rules_eval (&rules, &r, 22, m, ROUTER_MATCH_MAX);
    CHECK (n == 3);
    CHECK_STR (m [0].partner, "maraude-nuit");
    CHECK_STR (m [0].fallback, "samu_social");
    CHECK_STR (m [1].partner, "cellule-20");
    CHECK_STR (m [1].rule, "nuit_nord");
    relais_config_destroy (&config);
}

static void
test_explain (void)
{
    relais_config_t *config = s_config ("explain", s_combined);
    CHECK_OK (router_declare (config));
    router_rules_t rules;
    char why [256];
    CHECK_OK (router_rules_load (&rules, config, why, sizeof why));
    router_report_t r = s_base ();
    CHECK (!router_rules_explain (&rules, 0, &r, 23, why, sizeof why));
    CHECK_STR (why, "level: report is 1, rule wants 2");
    r.level = 2;
    CHECK (!router_rules_explain (&rules, 0, &r, 23, why, sizeof why));
    CHECK_STR (why, "urgency: report has jour, rule wants any of immediate");
    r.urgency = RELAIS_URGENCY_IMMEDIATE;
    r.arrondissement = 5;
    CHECK (!router_rules_explain (&rules, 0, &r, 23, why, sizeof why));
    CHECK_STR (why, "arrondissements: report is in the 5, not in the rule's list");
    r.arrondissement = 18;
    CHECK (!router_rules_explain (&rules, 0, &r, 12, why, sizeof why));
    CHECK_STR (why, "hours: it is 12h, rule holds from 22h to 6h");
    CHECK (router_rules_explain (&rules, 0, &r, 22, why, sizeof why));
    CHECK_STR (why, "holds");
    CHECK (!router_rules_explain (&rules, 1, &r, 22, why, sizeof why));
    CHECK_STR (why, "needs: report has mise_a_l_abri, rule wants any of soins,hygiene");

    router_rules_defaults (&rules);
    r = s_base ();
    CHECK (!router_rules_explain (&rules, 2, &r, 12, why, sizeof why));
    CHECK_STR (why, "tents_min: report counts 0 tents, rule wants at least 1");
    CHECK (!router_rules_explain (&rules, 0, &r, 12, why, sizeof why));
    CHECK_STR (why, "reasons: report has none, rule wants any of domaine_municipal,grande_vulnerabilite");
    relais_config_destroy (&config);
}

//  A rules section that must be refused: at declare time (values), or at
//  load time (what needs more than one key) with the path and the reason.
static void
s_refused (const char *name, const char *section, bool at_declare, const char *want)
{
    relais_config_t *config = s_config (name, section);
    int rc = router_declare (config);
    if (at_declare)
        CHECK (rc == RELAIS_ECONFIG);
    else
        CHECK_OK (rc);
    //  The loader itself also refuses it, with the path, without a declare
    relais_config_t *raw = s_config (name, section);
    router_rules_t rules;
    char why [256] = "";
    CHECK (router_rules_load (&rules, raw, why, sizeof why) == RELAIS_ECONFIG);
    if (strcmp (why, want) != 0)
        fprintf (stderr, "got: %s\n", why);
    CHECK_STR (why, want);
    relais_config_destroy (&raw);
    relais_config_destroy (&config);
}

static void
test_invalid (void)
{
    s_refused ("no_partners", "    rules\n        orphan\n            level = 2\n", false,
               "router/rules/orphan/partners: required: a rule must name at least one partner");
    s_refused ("bad_public", "    rules\n        x\n            publics = \"famille martien\"\n"
               "            partners = mus\n", true,
               "router/rules/x/publics: 'martien' is not a known public");
    s_refused ("bad_arr", "    rules\n        x\n            arrondissements = \"18 21\"\n"
               "            partners = mus\n", true,
               "router/rules/x/arrondissements: '21' is not an arrondissement (1..20)");
    s_refused ("bad_level", "    rules\n        x\n            level = 3\n            partners = mus\n", true,
               "router/rules/x/level: level is 1 or 2");
    s_refused ("bad_hours", "    rules\n        x\n            hours = 8h-20h\n            partners = mus\n", true,
               "router/rules/x/hours: expected FROM-TO, hours 0..24, FROM != TO (e.g. 8-20 or 22-6)");
    s_refused ("bad_partner", "    rules\n        x\n            partners = \"mus UASA\"\n", true,
               "router/rules/x/partners: 'UASA': a partner name is made of a-z, 0-9, - and _");
    s_refused ("bad_deadline", "    rules\n        x\n            partners = mus\n            deadline = 0\n", false,
               "router/rules/x/deadline: expected a duration above 0 (e.g. 30m, 2h)");
    s_refused ("bad_place", "    rules\n        x\n            place = trottoir\n            partners = mus\n", true,
               "router/rules/x/place: 'trottoir' is not a known place kind");
    //  An unknown key in a rule (a typo) is refused by the config layer
    relais_config_t *config = s_config ("typo", "    rules\n        x\n            partner = mus\n");
    CHECK (router_declare (config) == RELAIS_ECONFIG);
    relais_config_destroy (&config);
    //  No rules folder: the defaults, with the section's fallback
    config = s_config ("defaults", "    fallback = mission-sociale\n");
    CHECK_OK (router_declare (config));
    router_rules_t rules;
    char why [256];
    CHECK_OK (router_rules_load (&rules, config, why, sizeof why));
    CHECK (rules.count == 6);
    CHECK_STR (rules.rules [0].partners [0], "uasa");
    CHECK_STR (rules.rules [0].fallback, "mission-sociale");
    relais_config_destroy (&config);
}

int
main (void)
{
    const char *tmp = getenv ("RELAIS_TEST_TMP");
    snprintf (s_dir, sizeof s_dir, "%s/router-rules-%d", tmp? tmp: "/tmp", (int) getpid ());
    mkdir (tmp? tmp: "/tmp", 0700);
    mkdir (s_dir, 0700);
    RUN (test_defaults);
    RUN (test_combined);
    RUN (test_explain);
    RUN (test_invalid);
    return 0;
}
