/*  =========================================================================
    test_plans_scrub - erasure and retention of plans' free text
    (proto/privacy.md): which plans a scrub picks (erase: by person_ref;
    purge: closed before the cut-off and still holding a text), what it
    removes (history "text", flag_reason) and what it keeps (every entry,
    its kind, time and author; the flag; the other plans)
    =========================================================================
*/
#include "plans_fixture.h"

#define T0  1767225600000000ULL     //  2026-01-01T00:00:00Z
#define MIN 60000000ULL
#define DAY (24 * 60 * MIN)

#define REF_A "P-aaaaaaaaaaaaaaaaaaaa"
#define REF_B "P-bbbbbbbbbbbbbbbbbbbb"
#define REF_C "P-cccccccccccccccccccc"

typedef struct {
    plans_scrub_t *sc;
    bool apply;
} s_scrub_cb_t;

static int
s_scrub_cb (relais_txn_t *txn, void *arg)
{
    s_scrub_cb_t *s = (s_scrub_cb_t *) arg;
    return s->apply? plans_engine_scrub_apply (fx.engine, txn, s->sc)
                   : plans_engine_scrub_pick (fx.engine, txn, s->sc);
}

static void
s_pick (plans_scrub_t *sc)
{
    s_scrub_cb_t s = { sc, false };
    CHECK_OK (relais_store_read (fx.store, s_scrub_cb, &s));
}

static void
s_apply (plans_scrub_t *sc)
{
    s_scrub_cb_t s = { sc, true };
    CHECK_OK (relais_store_write (fx.store, s_scrub_cb, &s));
}

//  The history of a plan as plans.get returns it (JSON in fx_reply)
static void
s_show (const char *id)
{
    CHECK_OP_OK (T0 + 2 * DAY, "{\"op\": \"plans.get\", \"id\": \"%s\"}", id);
}

static void
test_erase (void)
{
    fx_setup ("plans-scrub-erase", 30 * DAY, 0);
    CHECK_OK (fx_report ("SIG-00000001", T0, 2, 4, "bois", "C1-1", "[\"" REF_A "\", \"" REF_B "\"]"));
    CHECK_OK (fx_report ("SIG-00000002", T0, 2, 5, "bois", "C1-2", "[\"" REF_C "\"]"));
    CHECK_OK (fx_report ("SIG-00000003", T0, 1, 6, "bois", "C1-3", "[]"));
    CHECK_OP_OK (T0, "{\"op\": \"plans.note\", \"id\": \"PLAN-00000001\", \"text\": \"SECRET A1\", \"by\": \"mus:ana\"}");
    CHECK_OP_OK (T0, "{\"op\": \"plans.flag\", \"id\": \"PLAN-00000001\", \"flagged\": true, \"reason\": \"SECRET FLAG\", \"by\": \"mus:ana\"}");
    CHECK_OP_OK (T0, "{\"op\": \"plans.note\", \"id\": \"PLAN-00000002\", \"text\": \"KEEP B\", \"by\": \"mus:ben\"}");
    uint64_t history = fx_get ("PLAN-00000001")->history;
    s_show ("PLAN-00000002");
    static char other [sizeof fx_reply];
    snprintf (other, sizeof other, "%s", fx_reply);

    //  Pick: the plan whose person_refs hold A, its three texts
    plans_scrub_t sc = { .person = REF_A };
    s_pick (&sc);
    CHECK (sc.count == 1 && strcmp (sc.ids [0], "PLAN-00000001") == 0);
    CHECK (sc.texts == 3);                  //  note, flagged entry, flag_reason
    s_show ("PLAN-00000001");
    CHECK (strstr (fx_reply, "SECRET A1"));  //  picking changes nothing

    //  Apply: the words go, the story stays
    size_t events = fx.count;
    s_apply (&sc);
    CHECK (sc.texts == 3);
    CHECK (fx.count == events);             //  no event
    plans_plan_t *p = fx_get ("PLAN-00000001");
    CHECK (p->flagged && p->flag_reason [0] == 0 && p->history == history);
    s_show ("PLAN-00000001");
    CHECK (!strstr (fx_reply, "SECRET"));
    CHECK (strstr (fx_reply, "\"what\":\"note\""));
    CHECK (strstr (fx_reply, "\"what\":\"flagged\""));
    CHECK (strstr (fx_reply, "\"by\":\"mus:ana\""));
    s_show ("PLAN-00000002");
    CHECK_STR (fx_reply, other);            //  another person's plan: untouched

    //  Again: the same plan, nothing more to remove
    s_pick (&sc);
    CHECK (sc.count == 1 && sc.texts == 0);
    s_apply (&sc);
    CHECK (sc.texts == 0);

    //  B shares plan 1 (already scrubbed); C has plan 2; nobody, none
    sc.person = REF_B;
    s_pick (&sc);
    CHECK (sc.count == 1 && strcmp (sc.ids [0], "PLAN-00000001") == 0 && sc.texts == 0);
    sc.person = REF_C;
    s_pick (&sc);
    CHECK (sc.count == 1 && strcmp (sc.ids [0], "PLAN-00000002") == 0 && sc.texts == 1);
    sc.person = "P-dddddddddddddddddddd";
    s_pick (&sc);
    CHECK (sc.count == 0 && sc.texts == 0);
    plans_scrub_release (&sc);
    CHECK (sc.ids == NULL);
    plans_scrub_release (&sc);              //  twice: harmless
    fx_teardown ();
}

static void
test_purge (void)
{
    fx_setup ("plans-scrub-purge", 30 * DAY, 0);
    for (int i = 1; i <= 3; i++) {
        char sig [32], cell [16];
        snprintf (sig, sizeof sig, "SIG-0000000%d", i);
        snprintf (cell, sizeof cell, "C2-%d", i);
        CHECK_OK (fx_report (sig, T0, 2, (unsigned) i, "bois", cell, "[]"));
        CHECK_OP_OK (T0, "{\"op\": \"plans.note\", \"id\": \"PLAN-0000000%d\", \"text\": \"SECRET %d\", \"by\": \"t\"}", i, i);
    }
    //  Plan 1 closed at T0 + 1 day, plan 2 at T0 + 5 days, plan 3 open
    CHECK_OP_OK (T0 + DAY, "{\"op\": \"plans.set_state\", \"id\": \"PLAN-00000001\", \"state\": \"clos\", \"outcome\": \"refus\", \"by\": \"t\"}");
    CHECK_OP_OK (T0 + 5 * DAY, "{\"op\": \"plans.set_state\", \"id\": \"PLAN-00000002\", \"state\": \"clos\", \"outcome\": \"autre\", \"by\": \"t\"}");
    plans_scrub_t sc = { .closed_before = T0 + DAY - 1 };
    s_pick (&sc);
    CHECK (sc.count == 0);                  //  closed after the cut-off
    sc.closed_before = T0 + 2 * DAY;
    s_pick (&sc);
    CHECK (sc.count == 1 && strcmp (sc.ids [0], "PLAN-00000001") == 0 && sc.texts == 1);
    s_apply (&sc);
    CHECK (sc.texts == 1);
    s_show ("PLAN-00000001");
    CHECK (!strstr (fx_reply, "SECRET") && strstr (fx_reply, "\"what\":\"note\""));
    s_show ("PLAN-00000002");
    CHECK (strstr (fx_reply, "SECRET 2"));
    s_show ("PLAN-00000003");
    CHECK (strstr (fx_reply, "SECRET 3"));
    //  A purge skips the plans it already scrubbed
    s_pick (&sc);
    CHECK (sc.count == 0);
    //  Later: plan 2 too, never the open plan 3
    sc.closed_before = T0 + 100 * DAY;
    s_pick (&sc);
    CHECK (sc.count == 1 && strcmp (sc.ids [0], "PLAN-00000002") == 0);
    s_apply (&sc);
    s_show ("PLAN-00000003");
    CHECK (strstr (fx_reply, "SECRET 3"));
    plans_scrub_release (&sc);
    //  After a restart the texts are still gone
    fx_close ();
    fx_open ();
    s_show ("PLAN-00000002");
    CHECK (!strstr (fx_reply, "SECRET"));
    fx_teardown ();
}

int
main (void)
{
    RUN (test_erase);
    RUN (test_purge);
    return 0;
}
