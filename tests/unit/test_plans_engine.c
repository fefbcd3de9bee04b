/*  =========================================================================
    test_plans_engine - plans' state machines (every allowed and refused
    transition of plans and actions), attachment of repeat reports (same
    cell, same arrondissement + place kind, shared person_ref), actors
    from route.*, reopen (explicit and by a report within the window),
    flags and the review order, request validation, history
    =========================================================================
*/
#include "plans_fixture.h"

#define T0  1767225600000000ULL     //  2026-01-01T00:00:00Z
#define MIN 60000000ULL
#define DAY (24 * 60 * MIN)

//  ---------------------------------------------------------------------------
//  The pure tables

static void
test_tables (void)
{
    //  plans: exactly ouvert->en_cours, ouvert->clos, en_cours->clos
    const bool expect [3][3] = { { 0, 1, 1 }, { 0, 0, 1 }, { 0, 0, 0 } };
    char allowed [128];
    for (int from = 0; from < PLANS_STATES; from++)
        for (int to = 0; to < PLANS_STATES; to++)
            CHECK (plans_state_allowed (from, to, allowed, sizeof allowed) == expect [from][to]);
    plans_state_allowed (PLANS_OUVERT, PLANS_OUVERT, allowed, sizeof allowed);
    CHECK_STR (allowed, "en_cours, clos");
    plans_state_allowed (PLANS_CLOS, PLANS_OUVERT, allowed, sizeof allowed);
    CHECK_STR (allowed, "none");
    //  actions: a_faire -> en_cours | fait | annule; en_cours -> fait | annule
    const bool aexpect [4][4] = { { 0, 1, 1, 1 }, { 0, 0, 1, 1 }, { 0, 0, 0, 0 }, { 0, 0, 0, 0 } };
    for (int from = 0; from < PLANS_ASTATES; from++)
        for (int to = 0; to < PLANS_ASTATES; to++)
            CHECK (plans_astate_allowed (from, to, allowed, sizeof allowed) == aexpect [from][to]);
    plans_astate_allowed (PLANS_A_EN_COURS, PLANS_A_FAIRE, allowed, sizeof allowed);
    CHECK_STR (allowed, "fait, annule");
}

//  ---------------------------------------------------------------------------
//  Plan transitions through the API: each allowed one works, each refused
//  one is a conflict naming what is allowed, and changes nothing.

//  A fresh plan (from a new level-2 report) in state; returns its id.
static const char *
s_plan_in (int state, int n)
{
    static char id [PLANS_ID_MAX];
    char sig [32], cell [32];
    snprintf (sig, sizeof sig, "SIG-9%07d", n);
    snprintf (cell, sizeof cell, "C40-%d", n);
    CHECK_OK (fx_report (sig, T0, 2, 10, "gare", cell, "[]"));
    CHECK_STR (fx_last ()->type, "plan.opened");
    snprintf (id, sizeof id, "%s", fx_last ()->key);
    if (state >= PLANS_EN_COURS && state != PLANS_CLOS)
        CHECK_OP_OK (T0, "{\"op\": \"plans.set_state\", \"id\": \"%s\", \"state\": \"en_cours\", \"by\": \"t\"}", id);
    if (state == PLANS_CLOS)
        CHECK_OP_OK (T0, "{\"op\": \"plans.set_state\", \"id\": \"%s\", \"state\": \"clos\", \"outcome\": \"refus\", \"by\": \"t\"}", id);
    CHECK (fx_get (id)->state == state);
    return id;
}

static void
test_plan_transitions (void)
{
    fx_setup ("plans-transitions", 0, 0);
    int n = 0;
    for (int from = 0; from < PLANS_STATES; from++)
        for (int to = 0; to < PLANS_STATES; to++) {
            const char *id = s_plan_in (from, ++n);
            size_t events = fx.count;
            uint64_t history = fx_get (id)->history;
            const char *code = fx_op (T0 + MIN,
                "{\"op\": \"plans.set_state\", \"id\": \"%s\", \"state\": \"%s\", %s \"by\": \"mus:test\"}",
                id, plans_state_names [to], to == PLANS_CLOS? "\"outcome\": \"orientation\",": "");
            char allowed [128];
            if (plans_state_allowed (from, to, allowed, sizeof allowed)) {
                CHECK_STR (code, "");
                CHECK (fx_get (id)->state == to);
                CHECK_STR (fx_last ()->type, to == PLANS_CLOS? "plan.closed": "plan.updated");
                CHECK (fx_get (id)->history == history + 1);
            }
            else {
                CHECK_STR (code, "conflict");
                CHECK_STR (fx_err.field, "state");
                CHECK (strstr (fx_err.message, allowed));
                CHECK (fx_get (id)->state == from);
                CHECK (fx.count == events);
                CHECK (fx_get (id)->history == history);
            }
        }
    //  Closing needs an outcome; a structure only with mise_a_l_abri
    const char *id = s_plan_in (PLANS_OUVERT, ++n);
    CHECK_STR (fx_op (T0, "{\"op\": \"plans.set_state\", \"id\": \"%s\", \"state\": \"clos\", \"by\": \"t\"}", id), "invalid");
    CHECK_STR (fx_err.field, "outcome");
    CHECK_STR (fx_op (T0, "{\"op\": \"plans.set_state\", \"id\": \"%s\", \"state\": \"clos\", \"outcome\": \"refus\", \"structure\": \"hotel-ibis-19\", \"by\": \"t\"}", id), "invalid");
    CHECK_STR (fx_err.field, "structure");
    CHECK_STR (fx_op (T0, "{\"op\": \"plans.set_state\", \"id\": \"%s\", \"state\": \"en_cours\", \"outcome\": \"refus\", \"by\": \"t\"}", id), "invalid");
    CHECK_STR (fx_err.field, "outcome");
    CHECK_STR (fx_op (T0, "{\"op\": \"plans.set_state\", \"id\": \"%s\", \"state\": \"clos\", \"outcome\": \"parti\", \"by\": \"t\"}", id), "invalid");
    CHECK (strstr (fx_err.message, "sortie_de_rue"));
    CHECK_OP_OK (T0, "{\"op\": \"plans.set_state\", \"id\": \"%s\", \"state\": \"clos\", \"outcome\": \"mise_a_l_abri\", \"structure\": \"hotel-ibis-19\", \"by\": \"t\"}", id);
    CHECK_STR (fx_last ()->type, "plan.closed");
    CHECK (strstr (fx_last ()->body, "\"structure\":\"hotel-ibis-19\""));
    CHECK (strstr (fx_last ()->body, "\"outcome\":\"mise_a_l_abri\""));
    CHECK (strstr (fx_last ()->body, "\"arrondissement\":10"));
    CHECK (strstr (fx_last ()->body, "\"signals\":[\"SIG-9"));
    CHECK_STR (fx_get (id)->structure, "hotel-ibis-19");
    //  Reopen: only from clos
    CHECK_OP_OK (T0, "{\"op\": \"plans.reopen\", \"id\": \"%s\", \"by\": \"t\"}", id);
    CHECK_STR (fx_last ()->type, "plan.reopened");
    CHECK (fx_get (id)->state == PLANS_OUVERT && fx_plan.outcome < 0 && !fx_plan.structure [0]);
    CHECK_STR (fx_op (T0, "{\"op\": \"plans.reopen\", \"id\": \"%s\", \"by\": \"t\"}", id), "conflict");
    CHECK (strstr (fx_err.message, "en_cours, clos"));
    fx_teardown ();
}

//  ---------------------------------------------------------------------------
//  Action transitions

static void
test_action_transitions (void)
{
    fx_setup ("plans-actions", 0, 0);
    CHECK_OK (fx_report ("SIG-00000001", T0, 2, 19, "talus", "C30-50", "[]"));
    const char *id = "PLAN-00000001";
    uint32_t next = 0;
    for (int from = 0; from < PLANS_ASTATES; from++)
        for (int to = 0; to < PLANS_ASTATES; to++) {
            CHECK_OP_OK (T0, "{\"op\": \"plans.action_add\", \"id\": \"%s\", \"kind\": \"evaluation\", \"owner\": \"uasa\", \"due\": %llu, \"by\": \"t\"}",
                         id, (unsigned long long) (T0 + DAY));
            uint32_t action = ++next;
            CHECK (strstr (fx_reply, "\"action\":"));
            if (from == PLANS_A_EN_COURS)
                CHECK_OP_OK (T0, "{\"op\": \"plans.action_update\", \"id\": \"%s\", \"action\": %u, \"state\": \"en_cours\", \"by\": \"t\"}", id, action);
            if (from == PLANS_FAIT || from == PLANS_ANNULE)
                CHECK_OP_OK (T0, "{\"op\": \"plans.action_update\", \"id\": \"%s\", \"action\": %u, \"state\": \"%s\", \"by\": \"t\"}", id, action, plans_astate_names [from]);
            size_t events = fx.count;
            const char *code = fx_op (T0, "{\"op\": \"plans.action_update\", \"id\": \"%s\", \"action\": %u, \"state\": \"%s\", \"by\": \"t\"}",
                                      id, action, plans_astate_names [to]);
            char allowed [128];
            plans_action_t *a = &fx_get (id)->actions [action - 1];
            CHECK (a->id == action);
            if (plans_astate_allowed (from, to, allowed, sizeof allowed)) {
                CHECK_STR (code, "");
                CHECK (a->state == to);
                CHECK (fx_count ("plan.action_changed", id) > 0);
                char expect [128];
                snprintf (expect, sizeof expect, "\"state\":\"%s\",\"previous\":\"%s\"",
                          plans_astate_names [to], plans_astate_names [from]);
                bool seen = false;
                for (size_t i = events; i < fx.count; i++)
                    seen |= strcmp (fx.events [i].type, "plan.action_changed") == 0
                          && strstr (fx.events [i].body, expect);
                CHECK (seen);
            }
            else {
                CHECK_STR (code, "conflict");
                CHECK (strstr (fx_err.message, allowed));
                CHECK (a->state == from);
                CHECK (fx.count == events);
            }
        }
    //  The first action en_cours moved the plan from ouvert to en_cours
    CHECK (fx_get (id)->state == PLANS_EN_COURS);
    CHECK (fx_count ("plan.updated", id) >= 1);
    //  Validation
    CHECK_STR (fx_op (T0, "{\"op\": \"plans.action_add\", \"id\": \"%s\", \"kind\": \"danse\", \"owner\": \"uasa\", \"due\": 5, \"by\": \"t\"}", id), "invalid");
    CHECK_STR (fx_err.field, "kind");
    CHECK (strstr (fx_err.message, "protection_enfance"));
    CHECK_STR (fx_op (T0, "{\"op\": \"plans.action_add\", \"id\": \"%s\", \"kind\": \"soins\", \"due\": 5, \"by\": \"t\"}", id), "invalid");
    CHECK_STR (fx_err.field, "owner");
    CHECK_STR (fx_op (T0, "{\"op\": \"plans.action_add\", \"id\": \"%s\", \"kind\": \"soins\", \"owner\": \"x\", \"due\": -5, \"by\": \"t\"}", id), "invalid");
    CHECK_STR (fx_err.field, "due");
    CHECK_STR (fx_op (T0, "{\"op\": \"plans.action_add\", \"id\": \"%s\", \"kind\": \"soins\", \"owner\": \"x\", \"due\": 5}", id), "invalid");
    CHECK_STR (fx_err.field, "by");
    CHECK_STR (fx_op (T0, "{\"op\": \"plans.action_update\", \"id\": \"%s\", \"action\": 999, \"state\": \"fait\", \"by\": \"t\"}", id), "not_found");
    CHECK_STR (fx_err.field, "action");
    CHECK_STR (fx_op (T0, "{\"op\": \"plans.action_update\", \"id\": \"%s\", \"action\": 1, \"by\": \"t\"}", id), "invalid");
    CHECK_STR (fx_op (T0, "{\"op\": \"plans.action_add\", \"id\": \"PLAN-77\", \"kind\": \"soins\", \"owner\": \"x\", \"due\": 5, \"by\": \"t\"}"), "not_found");
    CHECK_STR (fx_err.field, "id");
    CHECK_STR (fx_op (T0, "{\"op\": \"plans.explode\", \"by\": \"t\"}"), "unknown_op");
    //  A closed plan takes no action and no action change
    CHECK_OP_OK (T0, "{\"op\": \"plans.set_state\", \"id\": \"%s\", \"state\": \"clos\", \"outcome\": \"autre\", \"by\": \"t\"}", id);
    CHECK_STR (fx_op (T0, "{\"op\": \"plans.action_add\", \"id\": \"%s\", \"kind\": \"soins\", \"owner\": \"x\", \"due\": 5, \"by\": \"t\"}", id), "conflict");
    CHECK_STR (fx_op (T0, "{\"op\": \"plans.action_update\", \"id\": \"%s\", \"action\": 2, \"state\": \"fait\", \"by\": \"t\"}", id), "conflict");
    fx_teardown ();
}

//  ---------------------------------------------------------------------------
//  Idempotency: a retried change is applied once

static void
test_idempotency (void)
{
    fx_setup ("plans-idem", 0, 0);
    CHECK_OK (fx_report ("SIG-00000001", T0, 2, 19, "talus", "C30-50", "[]"));
    const char *id = "PLAN-00000001";
    const char *add = "{\"op\": \"plans.action_add\", \"id\": \"%s\", \"kind\": \"maraude\", "
                      "\"owner\": \"uasa\", \"due\": %llu, \"by\": \"mus:alice\", \"idem\": \"add-1\"}";
    CHECK_OP_OK (T0, add, id, (unsigned long long) (T0 + DAY));
    CHECK (strstr (fx_reply, "\"idem\":\"add-1\",\"duplicate\":false"));
    size_t events = fx.count;
    CHECK_OP_OK (T0, add, id, (unsigned long long) (T0 + DAY));
    CHECK (strstr (fx_reply, "\"duplicate\":true") && strstr (fx_reply, "\"action\":1"));
    CHECK (fx_get (id)->action_count == 1);         //  one action, not two
    CHECK (fx.count == events);                      //  nothing published again
    //  The key belongs to its caller: another "by" with the same key is new
    CHECK_OP_OK (T0, "{\"op\": \"plans.note\", \"id\": \"%s\", \"text\": \"vu\", \"by\": \"mus:bob\", \"idem\": \"add-1\"}", id);
    CHECK (strstr (fx_reply, "\"duplicate\":false"));
    //  A refused op does not use up its key
    CHECK_STR (fx_op (T0, "{\"op\": \"plans.action_update\", \"id\": \"%s\", \"action\": 9, \"state\": \"fait\", \"by\": \"mus:alice\", \"idem\": \"u-1\"}", id), "not_found");
    CHECK_OP_OK (T0, "{\"op\": \"plans.action_update\", \"id\": \"%s\", \"action\": 1, \"state\": \"fait\", \"by\": \"mus:alice\", \"idem\": \"u-1\"}", id);
    CHECK (strstr (fx_reply, "\"duplicate\":false"));
    CHECK_STR (fx_op (T0, "{\"op\": \"plans.note\", \"id\": \"%s\", \"text\": \"x\", \"by\": \"t\", \"idem\": 5}", id), "invalid");
    CHECK_STR (fx_err.field, "idem");
    fx_teardown ();
}

//  ---------------------------------------------------------------------------
//  Attachment of repeat reports

static void
test_attachment (void)
{
    fx_setup ("plans-attach", 30 * DAY, 0);
    //  Same cell
    CHECK_OK (fx_report ("SIG-00000001", T0, 2, 18, "voie_publique", "C41-20", "[]"));
    CHECK (fx_count ("plan.opened", NULL) == 1);
    CHECK (strstr (fx_last ()->body, "\"signal\":\"SIG-00000001\""));
    CHECK (strstr (fx_last ()->body, "\"reasons\":[\"mineurs\"]"));
    CHECK_OK (fx_report ("SIG-00000002", T0 + MIN, 2, 18, "metro", "C41-20", "[]"));
    CHECK (fx_count ("plan.opened", NULL) == 1);
    CHECK_STR (fx_last ()->type, "plan.updated");
    CHECK_STR (fx_last ()->key, "PLAN-00000001");
    CHECK (strstr (fx_last ()->body, "\"signal\":\"SIG-00000002\""));
    CHECK (fx_get ("PLAN-00000001")->signal_count == 2);
    //  A different cell in the same arrondissement opens another plan
    CHECK_OK (fx_report ("SIG-00000003", T0 + MIN, 2, 18, "voie_publique", "C41-21", "[]"));
    CHECK (fx_count ("plan.opened", NULL) == 2);
    //  No cell: same arrondissement and place kind
    CHECK_OK (fx_report ("SIG-00000004", T0, 2, 19, "talus", "", "[]"));
    CHECK_OK (fx_report ("SIG-00000005", T0, 2, 19, "talus", "", "[]"));
    CHECK_OK (fx_report ("SIG-00000006", T0, 2, 19, "gare", "", "[]"));
    CHECK_OK (fx_report ("SIG-00000007", T0, 2, 20, "talus", "", "[]"));
    CHECK (fx_count ("plan.opened", NULL) == 5);
    CHECK (fx_get ("PLAN-00000003")->signal_count == 2);
    //  A shared person_ref, wherever the person is seen
    CHECK_OK (fx_report ("SIG-00000008", T0, 2, 11, "batiment", "C30-30", "[\"P-AAAAAAAAAAAAAAAAAAAA\", \"P-BBBBBBBBBBBBBBBBBBBB\"]"));
    CHECK (fx_count ("plan.opened", NULL) == 6);
    CHECK_OK (fx_report ("SIG-00000009", T0, 2, 12, "bois", "C10-10", "[\"P-BBBBBBBBBBBBBBBBBBBB\"]"));
    CHECK (fx_count ("plan.opened", NULL) == 6);
    CHECK_STR (fx_last ()->key, "PLAN-00000006");
    //  ... and the new place now leads to the same plan too
    CHECK_OK (fx_report ("SIG-00000010", T0, 2, 12, "bois", "C10-10", "[]"));
    CHECK (fx_count ("plan.opened", NULL) == 6);
    CHECK (fx_get ("PLAN-00000006")->signal_count == 3 && fx_plan.ref_count == 2);
    //  Level 1 opens nothing by itself; plans.open on request
    CHECK_OK (fx_report ("SIG-00000011", T0, 1, 3, "parking", "", "[]"));
    CHECK (fx_count ("plan.opened", NULL) == 6);
    CHECK_OP_OK (T0, "{\"op\": \"plans.open\", \"signal\": \"SIG-00000011\", \"by\": \"mus:bob\"}");
    CHECK (strstr (fx_reply, "\"attached\":false"));
    CHECK (fx_count ("plan.opened", NULL) == 7);
    CHECK (strstr (fx_last ()->body, "\"level\":1"));
    CHECK_STR (fx_op (T0, "{\"op\": \"plans.open\", \"signal\": \"SIG-00000011\", \"by\": \"mus:bob\"}"), "conflict");
    CHECK_STR (fx_op (T0, "{\"op\": \"plans.open\", \"signal\": \"SIG-12345678\", \"by\": \"mus:bob\"}"), "not_found");
    //  A level-1 report raised to level 2 by an update finds its plan
    CHECK_OK (fx_report ("SIG-00000012", T0, 1, 18, "metro", "C41-20", "[]"));
    CHECK (fx_get ("PLAN-00000001")->signal_count == 2);
    CHECK_OK (fx_event ("intake", "signal.updated", "SIG-00000012", T0 + 2 * MIN,
                        "{\"changes\": {\"minors\": 2}, \"level\": 2, \"reasons\": [\"mineurs\"], \"person_refs\": []}"));
    CHECK (fx_get ("PLAN-00000001")->signal_count == 3);
    //  A malformed event is refused and changes nothing
    CHECK (fx_event ("intake", "signal.created", "SIG-00000099", T0, "{\"level\": 2}") == RELAIS_EMALFORMED);
    CHECK (fx_event ("intake", "signal.created", "PLAN-1", T0, "{\"level\": 2}") == RELAIS_EMALFORMED);
    fx_teardown ();
}

//  ---------------------------------------------------------------------------
//  Actors from the router, also when route.* comes before signal.created

static void
test_actors (void)
{
    fx_setup ("plans-actors", 30 * DAY, 0);
    CHECK_OK (fx_event ("router", "route.assigned", "SIG-00000001", T0,
                        "{\"partner\": \"uasa\", \"rule\": \"municipal\", \"level\": 2, \"arrondissement\": 4, "
                        "\"publics\": [\"famille\"], \"due\": 1, \"attempt\": 1}"));
    CHECK (fx.count == 0);
    CHECK_OK (fx_report ("SIG-00000001", T0, 2, 4, "domaine_municipal", "C20-40", "[]"));
    CHECK_STR (fx_last ()->type, "plan.opened");
    CHECK (strstr (fx_last ()->body, "\"actors\":[\"uasa\"]"));
    CHECK_OK (fx_event ("router", "route.assigned", "SIG-00000001", T0,
                        "{\"partner\": \"mus\", \"rule\": \"level2\", \"level\": 2, \"arrondissement\": 4, "
                        "\"publics\": [\"famille\"], \"due\": 1, \"attempt\": 1}"));
    CHECK_STR (fx_last ()->type, "plan.updated");
    CHECK (strstr (fx_last ()->body, "\"actors\":[\"uasa\",\"mus\"]"));
    size_t events = fx.count;
    CHECK_OK (fx_event ("router", "route.acknowledged", "SIG-00000001", T0,
                        "{\"partner\": \"mus\", \"mseq\": 4, \"at\": 5}"));
    CHECK (fx.count == events);
    CHECK_OK (fx_event ("router", "route.escalated", "SIG-00000001", T0,
                        "{\"partner\": \"uasa\", \"fallback\": \"samu-social\", \"cause\": \"deadline\", \"mseq\": 2}"));
    CHECK (strstr (fx_last ()->body, "\"actors\":[\"uasa\",\"mus\",\"samu-social\"]"));
    CHECK (fx_event ("router", "route.assigned", "SIG-00000001", T0, "{\"rule\": \"x\"}") == RELAIS_EMALFORMED);
    //  An action's owner joins the actors
    CHECK_OP_OK (T0, "{\"op\": \"plans.action_add\", \"id\": \"PLAN-00000001\", \"kind\": \"maraude\", \"owner\": \"maraude-emmaus\", \"due\": %llu, \"by\": \"t\"}",
                 (unsigned long long) (T0 + DAY));
    CHECK (fx_get ("PLAN-00000001")->actor_count == 4);
    //  A report attached later brings its own routed partners
    CHECK_OK (fx_event ("router", "route.assigned", "SIG-00000002", T0,
                        "{\"partner\": \"sdppe\", \"rule\": \"minors\", \"level\": 2, \"arrondissement\": 4, "
                        "\"publics\": [\"enfant\"], \"due\": 1, \"attempt\": 1}"));
    CHECK_OK (fx_report ("SIG-00000002", T0, 2, 4, "domaine_municipal", "C20-40", "[]"));
    CHECK (strstr (fx_last ()->body, "\"signal\":\"SIG-00000002\""));
    CHECK (strstr (fx_last ()->body, "\"sdppe\""));
    fx_teardown ();
}

//  ---------------------------------------------------------------------------
//  Reopen by a report within the window, a new plan after it

static void
test_reopen (void)
{
    fx_setup ("plans-reopen", 7 * DAY, 0);
    CHECK_OK (fx_report ("SIG-00000001", T0, 2, 13, "talus", "C5-50", "[\"P-CCCCCCCCCCCCCCCCCCCC\"]"));
    CHECK_OP_OK (T0 + DAY, "{\"op\": \"plans.set_state\", \"id\": \"PLAN-00000001\", \"state\": \"clos\", \"outcome\": \"mise_a_l_abri\", \"structure\": \"chu-13\", \"by\": \"t\"}");
    //  3 days later, the same person elsewhere: the plan reopens
    CHECK_OK (fx_report ("SIG-00000002", T0 + 4 * DAY, 2, 14, "metro", "C6-51", "[\"P-CCCCCCCCCCCCCCCCCCCC\"]"));
    CHECK_STR (fx_last ()->type, "plan.reopened");
    CHECK_STR (fx_last ()->key, "PLAN-00000001");
    CHECK (strstr (fx_last ()->body, "\"signal\":\"SIG-00000002\""));
    CHECK (fx_count ("plan.opened", NULL) == 1);
    CHECK (fx_get ("PLAN-00000001")->state == PLANS_OUVERT && fx_plan.signal_count == 2);
    //  Closed again; 8 days later: past the window, a new plan
    CHECK_OP_OK (T0 + 5 * DAY, "{\"op\": \"plans.set_state\", \"id\": \"PLAN-00000001\", \"state\": \"clos\", \"outcome\": \"perdu_de_vue\", \"by\": \"t\"}");
    CHECK_OK (fx_report ("SIG-00000003", T0 + 13 * DAY, 2, 13, "talus", "C5-50", "[]"));
    CHECK_STR (fx_last ()->type, "plan.opened");
    CHECK_STR (fx_last ()->key, "PLAN-00000002");
    CHECK (fx_get ("PLAN-00000001")->state == PLANS_CLOS);
    //  An open plan wins over a recently closed one
    CHECK_OP_OK (T0 + 13 * DAY, "{\"op\": \"plans.set_state\", \"id\": \"PLAN-00000002\", \"state\": \"clos\", \"outcome\": \"autre\", \"by\": \"t\"}");
    CHECK_OK (fx_report ("SIG-00000004", T0 + 14 * DAY, 2, 1, "gare", "C9-9", "[\"P-CCCCCCCCCCCCCCCCCCCC\"]"));
    CHECK_STR (fx_last ()->type, "plan.opened");                //  PLAN-1 closed 9 days ago
    CHECK_STR (fx_last ()->key, "PLAN-00000003");
    CHECK_OK (fx_report ("SIG-00000005", T0 + 14 * DAY, 2, 13, "talus", "C5-50", "[\"P-CCCCCCCCCCCCCCCCCCCC\"]"));
    CHECK_STR (fx_last ()->key, "PLAN-00000003");               //  open, though PLAN-2 closed 1 day ago
    CHECK (fx_get ("PLAN-00000002")->state == PLANS_CLOS);
    fx_teardown ();
}

//  ---------------------------------------------------------------------------
//  Flags, notes, review, list filters, history

static void
test_flags_review (void)
{
    fx_setup ("plans-flags", 30 * DAY, 0);
    for (int i = 1; i <= 4; i++) {
        char sig [32], cell [16];
        snprintf (sig, sizeof sig, "SIG-0000000%d", i);
        snprintf (cell, sizeof cell, "C1-%d", i);
        CHECK_OK (fx_report (sig, T0 + (uint64_t) i * MIN, 2, (unsigned) i, "bois", cell, "[]"));
    }
    CHECK_STR (fx_op (T0, "{\"op\": \"plans.flag\", \"id\": \"PLAN-00000002\", \"flagged\": true, \"by\": \"t\"}"), "invalid");
    CHECK_STR (fx_err.field, "reason");
    for (int i = 2; i <= 4; i++)
        CHECK_OP_OK (T0, "{\"op\": \"plans.flag\", \"id\": \"PLAN-0000000%d\", \"flagged\": true, \"reason\": \"SECRET situation %d\", \"by\": \"mus:carla\"}", i, i);
    CHECK_STR (fx_last ()->type, "plan.flagged");
    CHECK_STR (fx_last ()->body, "{\"flagged\":true}");
    CHECK_STR (fx_op (T0, "{\"op\": \"plans.flag\", \"id\": \"PLAN-00000002\", \"flagged\": true, \"reason\": \"again\", \"by\": \"t\"}"), "conflict");
    //  An overdue action on PLAN-4 puts it first; then the oldest
    CHECK_OP_OK (T0, "{\"op\": \"plans.action_add\", \"id\": \"PLAN-00000004\", \"kind\": \"soins\", \"owner\": \"samu-social\", \"due\": %llu, \"by\": \"t\"}",
                 (unsigned long long) (T0 + MIN));
    CHECK_OP_OK (T0 + DAY, "{\"op\": \"plans.review\"}");
    const char *p4 = strstr (fx_reply, "PLAN-00000004");
    const char *p2 = strstr (fx_reply, "PLAN-00000002");
    const char *p3 = strstr (fx_reply, "PLAN-00000003");
    CHECK (p4 && p2 && p3 && p4 < p2 && p2 < p3);
    CHECK (!strstr (fx_reply, "PLAN-00000001"));
    CHECK (strstr (fx_reply, "SECRET situation 2"));                //  the commission reads why
    //  Notes: history only, no event
    size_t events = fx.count;
    CHECK_OP_OK (T0 + DAY, "{\"op\": \"plans.note\", \"id\": \"PLAN-00000001\", \"text\": \"SECRET line 1\\nline 2\", \"by\": \"mus:dan\"}");
    CHECK (fx.count == events);
    CHECK_STR (fx_op (T0, "{\"op\": \"plans.note\", \"id\": \"PLAN-00000001\", \"text\": \"x\", \"action\": 4, \"by\": \"t\"}"), "not_found");
    CHECK_OP_OK (T0 + DAY, "{\"op\": \"plans.get\", \"id\": \"PLAN-00000001\"}");
    CHECK (strstr (fx_reply, "\"what\":\"opened\""));
    CHECK (strstr (fx_reply, "\"what\":\"note\",\"text\":\"SECRET line 1\\nline 2\""));
    CHECK (strstr (fx_reply, "\"by\":\"mus:dan\""));
    //  List filters
    CHECK_OP_OK (T0 + DAY, "{\"op\": \"plans.list\", \"flagged\": true}");
    CHECK (!strstr (fx_reply, "PLAN-00000001") && strstr (fx_reply, "PLAN-00000003"));
    CHECK_OP_OK (T0 + DAY, "{\"op\": \"plans.list\", \"overdue\": true}");
    CHECK (strstr (fx_reply, "PLAN-00000004") && !strstr (fx_reply, "PLAN-00000003"));
    CHECK_OP_OK (T0 + DAY, "{\"op\": \"plans.list\", \"partner\": \"samu-social\"}");
    CHECK (strstr (fx_reply, "PLAN-00000004") && !strstr (fx_reply, "PLAN-00000002"));
    CHECK_OP_OK (T0 + DAY, "{\"op\": \"plans.list\", \"arrondissement\": 3}");
    CHECK (strstr (fx_reply, "PLAN-00000003") && !strstr (fx_reply, "PLAN-00000004"));
    CHECK_OP_OK (T0 + DAY, "{\"op\": \"plans.list\", \"state\": \"ouvert\", \"limit\": 2}");
    CHECK (strstr (fx_reply, "\"next\":\"PLAN-00000002\""));
    CHECK_OP_OK (T0 + DAY, "{\"op\": \"plans.list\", \"after\": \"PLAN-00000002\"}");
    CHECK (!strstr (fx_reply, "PLAN-00000002") && strstr (fx_reply, "PLAN-00000003"));
    CHECK_STR (fx_op (T0, "{\"op\": \"plans.list\", \"state\": \"fini\"}"), "invalid");
    CHECK_STR (fx_op (T0, "{\"op\": \"plans.list\", \"arrondissement\": 21}"), "invalid");
    CHECK_STR (fx_op (T0, "{\"op\": \"plans.list\", \"overdue\": 1}"), "invalid");
    CHECK_STR (fx_op (T0, "{\"op\": \"plans.get\"}"), "invalid");
    CHECK_STR (fx_op (T0, "{\"op\": \"plans.get\", \"id\": \"PLAN-00000099\"}"), "not_found");
    //  Unflag
    CHECK_OP_OK (T0, "{\"op\": \"plans.flag\", \"id\": \"PLAN-00000002\", \"flagged\": false, \"by\": \"t\"}");
    CHECK (!fx_get ("PLAN-00000002")->flagged && !fx_plan.flag_reason [0]);
    fx_teardown ();
}

int
main (void)
{
    RUN (test_tables);
    RUN (test_plan_transitions);
    RUN (test_action_transitions);
    RUN (test_idempotency);
    RUN (test_attachment);
    RUN (test_actors);
    RUN (test_reopen);
    RUN (test_flags_review);
    return 0;
}
