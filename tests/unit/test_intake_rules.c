/*  Level 1 / level 2 qualification: each criterion alone, combined, and
    switched off by configuration; person refs and place keys. */
#include "intake_pseudo.h"
#include "intake_rules.h"
#include "relais_test.h"

#include <sys/stat.h>
#include <unistd.h>

static relais_signal_t
s_base (void)
{
    relais_signal_t sig;
    memset (&sig, 0, sizeof sig);
    sig.source_kind = RELAIS_SOURCE_115;
    strcpy (sig.source_name, "115 de Paris");
    sig.arrondissement = 18;
    sig.place_kind = RELAIS_PLACE_VOIE_PUBLIQUE;
    sig.persons = 1;
    sig.publics = 1u << RELAIS_PUBLIC_HOMME_ISOLE;
    sig.urgency = RELAIS_URGENCY_JOUR;
    return sig;
}

static uint32_t
s_only (intake_reason_t reason)
{
    return 1u << reason;
}

static void
test_level1_by_default (void)
{
    intake_rules_t rules;
    intake_rules_defaults (&rules);
    relais_signal_t sig = s_base ();
    CHECK (intake_rules_qualify (&rules, &sig, 0) == 0);
    sig.tents = 3;                                  //  3 tents is not "more than 3"
    CHECK (intake_rules_qualify (&rules, &sig, 0) == 0);
}

static void
test_each_criterion (void)
{
    intake_rules_t rules;
    intake_rules_defaults (&rules);
    relais_signal_t sig;

    sig = s_base (); sig.tents = 4;
    CHECK (intake_rules_qualify (&rules, &sig, 0) == s_only (INTAKE_REASON_CAMPEMENT));
    sig = s_base (); sig.persons = 3; sig.minors = 1;
    CHECK (intake_rules_qualify (&rules, &sig, 0) == s_only (INTAKE_REASON_MINEURS));
    sig = s_base (); sig.publics = 1u << RELAIS_PUBLIC_MINEUR_NON_ACCOMPAGNE;
    CHECK (intake_rules_qualify (&rules, &sig, 0) == s_only (INTAKE_REASON_MINEURS));
    sig = s_base (); sig.publics |= 1u << RELAIS_PUBLIC_ENFANT;
    CHECK (intake_rules_qualify (&rules, &sig, 0) == s_only (INTAKE_REASON_MINEURS));
    sig = s_base (); sig.pregnant = 1;
    CHECK (intake_rules_qualify (&rules, &sig, 0) == s_only (INTAKE_REASON_GROSSESSE));
    sig = s_base (); sig.publics = 1u << RELAIS_PUBLIC_FEMME_ENCEINTE;
    CHECK (intake_rules_qualify (&rules, &sig, 0) == s_only (INTAKE_REASON_GROSSESSE));
    sig = s_base (); sig.place_kind = RELAIS_PLACE_DOMAINE_MUNICIPAL;
    CHECK (intake_rules_qualify (&rules, &sig, 0) == s_only (INTAKE_REASON_DOMAINE_MUNICIPAL));
    sig = s_base (); sig.publics |= 1u << RELAIS_PUBLIC_GRANDE_VULNERABILITE;
    CHECK (intake_rules_qualify (&rules, &sig, 0) == s_only (INTAKE_REASON_GRANDE_VULNERABILITE));
    sig = s_base (); sig.sensitive = true;
    CHECK (intake_rules_qualify (&rules, &sig, 0) == s_only (INTAKE_REASON_SENSIBLE));
    sig = s_base (); sig.source_kind = RELAIS_SOURCE_MAIRIE;
    CHECK (intake_rules_qualify (&rules, &sig, 0) == s_only (INTAKE_REASON_TRANSFERT_ELU));
    sig = s_base (); sig.source_kind = RELAIS_SOURCE_CABINET;
    CHECK (intake_rules_qualify (&rules, &sig, 0) == s_only (INTAKE_REASON_TRANSFERT_ELU));
    sig = s_base (); sig.escalate = true;
    CHECK (intake_rules_qualify (&rules, &sig, 0) == s_only (INTAKE_REASON_ESCALADE));
    sig = s_base ();
    CHECK (intake_rules_qualify (&rules, &sig, INTAKE_REPEAT_PLACE) == s_only (INTAKE_REASON_REPETITION_LIEU));
    CHECK (intake_rules_qualify (&rules, &sig, INTAKE_REPEAT_PERSON) == s_only (INTAKE_REASON_REPETITION_PERSONNE));
}

static void
test_combined (void)
{
    intake_rules_t rules;
    intake_rules_defaults (&rules);
    relais_signal_t sig = s_base ();
    sig.persons = 12;
    sig.tents = 8;
    sig.minors = 4;
    sig.pregnant = 1;
    sig.place_kind = RELAIS_PLACE_DOMAINE_MUNICIPAL;
    sig.sensitive = true;
    uint32_t all = s_only (INTAKE_REASON_CAMPEMENT) | s_only (INTAKE_REASON_MINEURS)
                 | s_only (INTAKE_REASON_GROSSESSE) | s_only (INTAKE_REASON_DOMAINE_MUNICIPAL)
                 | s_only (INTAKE_REASON_SENSIBLE) | s_only (INTAKE_REASON_REPETITION_LIEU);
    CHECK (intake_rules_qualify (&rules, &sig, INTAKE_REPEAT_PLACE) == all);
}

static void
test_switched_off (void)
{
    intake_rules_t rules;
    intake_rules_defaults (&rules);
    rules.minors = rules.pregnancy = rules.municipal = rules.vulnerability = false;
    rules.sensitive = rules.elected_transfer = rules.escalation = false;
    rules.repeat_window_us = 0;
    rules.tents_over = 10;
    relais_signal_t sig = s_base ();
    sig.persons = 5;
    sig.tents = 10;
    sig.minors = 2;
    sig.pregnant = 1;
    sig.place_kind = RELAIS_PLACE_DOMAINE_MUNICIPAL;
    sig.sensitive = sig.escalate = true;
    sig.source_kind = RELAIS_SOURCE_MAIRIE;
    CHECK (intake_rules_qualify (&rules, &sig, INTAKE_REPEAT_PLACE | INTAKE_REPEAT_PERSON) == 0);
    sig.tents = 11;
    CHECK (intake_rules_qualify (&rules, &sig, 0) == s_only (INTAKE_REASON_CAMPEMENT));
}

static void
test_config (void)
{
    //  The rules come from the deployment file, with DOMAIN.md's defaults
    char dir [256], path [300];
    const char *tmp = getenv ("RELAIS_TEST_TMP");
    snprintf (dir, sizeof dir, "%s/rules-%d", tmp? tmp: "/tmp", (int) getpid ());
    mkdir (dir, 0700);
    snprintf (path, sizeof path, "%s/relais.cfg", dir);
    FILE *f = fopen (path, "w");
    CHECK (f);
    fprintf (f, "intake\n    level2\n        tents_over = 10\n        sensitive = false\n"
                "        repeat_window = 2d\n");
    fclose (f);
    relais_config_t *config = relais_config_load (path);
    CHECK (config);
    CHECK (relais_config_declare (config, "intake", intake_rules_keys) == 0);
    intake_rules_t rules;
    intake_rules_load (&rules, config);
    CHECK (rules.tents_over == 10);
    CHECK (!rules.sensitive);
    CHECK (rules.minors);
    CHECK (rules.repeat_window_us == 2ULL * 24 * 3600 * 1000000);
    CHECK (rules.repeat_count == 3);
    relais_config_destroy (&config);
    remove (path);
    rmdir (dir);
}

static void
test_pseudonyms (void)
{
    uint8_t key [INTAKE_KEY_SIZE] = { 1, 2, 3 };
    uint8_t other [INTAKE_KEY_SIZE] = { 9 };
    relais_signal_t sig = s_base ();
    sig.people_count = 3;
    strcpy (sig.people [0].name, "Jean  DUPONT");
    sig.people [0].birth_year = 1970;
    strcpy (sig.people [1].name, "jean dupont");        //  same person, other spelling
    sig.people [1].birth_year = 1970;
    strcpy (sig.people [2].siao_id, "SIAO-123");
    char refs [RELAIS_SIG_PEOPLE_MAX][RELAIS_SIG_REF_MAX];
    CHECK (intake_pseudo_refs (key, &sig, refs) == 2);
    CHECK (strncmp (refs [0], "P-", 2) == 0 && strlen (refs [0]) == 22);
    CHECK (strstr (refs [0], "dupont") == NULL);
    char again [RELAIS_SIG_PEOPLE_MAX][RELAIS_SIG_REF_MAX];
    CHECK (intake_pseudo_refs (key, &sig, again) == 2);
    CHECK_STR (refs [0], again [0]);                     //  stable
    CHECK (intake_pseudo_refs (other, &sig, again) == 2);
    CHECK (strcmp (refs [0], again [0]) != 0);           //  keyed

    char place [64];
    intake_pseudo_place (key, &sig, place, sizeof place);
    CHECK (place [0] == 0);                              //  no position, no address
    strcpy (sig.address, "12  rue Marx Dormoy");
    intake_pseudo_place (key, &sig, place, sizeof place);
    CHECK (strncmp (place, "18:A-", 5) == 0);
    CHECK (strstr (place, "Marx") == NULL);
    sig.has_geo = true;
    sig.lat = 48.8901;
    sig.lon = 2.3597;
    intake_pseudo_place (key, &sig, place, sizeof place);
    CHECK (strncmp (place, "18:C", 4) == 0);
}

int
main (void)
{
    RUN (test_level1_by_default);
    RUN (test_each_criterion);
    RUN (test_combined);
    RUN (test_switched_off);
    RUN (test_config);
    RUN (test_pseudonyms);
    printf ("test_intake_rules: OK\n");
    return 0;
}
