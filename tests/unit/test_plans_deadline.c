/*  =========================================================================
    test_plans_deadline - overdue actions and stale plans, with time driven
    by the test: an action due at T raises exactly one plan.action_overdue
    after T, also when plans restarts (store closed and reopened) before T
    and after T; a new due date may be missed once more; done, cancelled
    and closed raise nothing; plan.stale once per quiet period
    =========================================================================
*/
#include "plans_fixture.h"
#include "relais_clock.h"

#define T0  1767225600000000ULL     //  2026-01-01T00:00:00Z
#define MIN 60000000ULL
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

static void
s_restart (void)
{
    fx_close ();
    fx_open ();
}

static void
s_add_action (const char *plan, uint64_t now, uint64_t due)
{
    CHECK_OP_OK (now, "{\"op\": \"plans.action_add\", \"id\": \"%s\", \"kind\": \"mise_a_l_abri\", "
                 "\"owner\": \"samu-social\", \"due\": %llu, \"by\": \"mus:test\"}",
                 plan, (unsigned long long) due);
}

static void
test_overdue_once (void)
{
    fx_setup ("plans-overdue", 30 * DAY, 0);
    CHECK_OK (fx_report ("SIG-00000001", T0, 2, 19, "talus", "C1-1", "[]"));
    uint64_t due = T0 + 2 * HOUR;
    s_add_action ("PLAN-00000001", T0, due);
    CHECK (fx_tick (T0 + HOUR) == due);             //  the next wake-up is the due date
    CHECK (fx_count ("plan.action_overdue", NULL) == 0);
    CHECK (fx_tick (due - 1) == due);
    CHECK (fx_count ("plan.action_overdue", NULL) == 0);
    CHECK (fx_tick (due) == 0);
    CHECK (fx_count ("plan.action_overdue", NULL) == 1);
    CHECK_STR (fx_last ()->key, "PLAN-00000001");
    char expect [128];
    snprintf (expect, sizeof expect, "{\"action\":1,\"owner\":\"samu-social\",\"due\":%llu}",
              (unsigned long long) due);
    CHECK_STR (fx_last ()->body, expect);
    CHECK (fx_get ("PLAN-00000001")->actions [0].overdue);
    for (int i = 1; i <= 5; i++)
        fx_tick (due + (uint64_t) i * HOUR);
    CHECK (fx_count ("plan.action_overdue", NULL) == 1);
    fx_teardown ();
}

//  Restart before T: the persisted due date survives and fires once.
static void
test_restart_before (void)
{
    fx_setup ("plans-restart-before", 30 * DAY, 0);
    CHECK_OK (fx_report ("SIG-00000001", T0, 2, 19, "talus", "C1-1", "[]"));
    uint64_t due = T0 + 2 * HOUR;
    s_add_action ("PLAN-00000001", T0, due);
    fx_tick (T0 + HOUR);
    s_restart ();
    uint64_t next = 0;
    CHECK (fx_tick (T0 + HOUR + MIN) == due);
    (void) next;
    CHECK (fx_count ("plan.action_overdue", NULL) == 0);
    s_restart ();
    fx_tick (due + MIN);
    CHECK (fx_count ("plan.action_overdue", NULL) == 1);
    s_restart ();
    fx_tick (due + 2 * MIN);
    s_restart ();
    fx_tick (due + DAY);
    CHECK (fx_count ("plan.action_overdue", NULL) == 1);
    fx_teardown ();
}

//  Restart after T (plans was down when it fell due): raised at the first
//  check after the restart, once.
static void
test_restart_after (void)
{
    fx_setup ("plans-restart-after", 30 * DAY, 0);
    CHECK_OK (fx_report ("SIG-00000001", T0, 2, 19, "talus", "C1-1", "[]"));
    uint64_t due = T0 + 2 * HOUR;
    s_add_action ("PLAN-00000001", T0, due);
    s_add_action ("PLAN-00000001", T0, due + DAY);
    s_restart ();                                   //  "down" from T0 ...
    CHECK (fx_tick (due + 3 * HOUR) == due + DAY);  //  ... to T + 3 h
    CHECK (fx_count ("plan.action_overdue", NULL) == 1);
    s_restart ();
    fx_tick (due + 4 * HOUR);
    CHECK (fx_count ("plan.action_overdue", NULL) == 1);
    s_restart ();
    fx_tick (due + 2 * DAY);                        //  the second one, once
    fx_tick (due + 3 * DAY);
    CHECK (fx_count ("plan.action_overdue", NULL) == 2);
    fx_teardown ();
}

//  Due date moved, action done or cancelled, plan closed and reopened
static void
test_changes (void)
{
    fx_setup ("plans-due-changes", 30 * DAY, 0);
    CHECK_OK (fx_report ("SIG-00000001", T0, 2, 19, "talus", "C1-1", "[]"));
    const char *id = "PLAN-00000001";
    s_add_action (id, T0, T0 + HOUR);               //  1: moved later, then missed
    s_add_action (id, T0, T0 + HOUR);               //  2: done in time
    s_add_action (id, T0, T0 + HOUR);               //  3: cancelled
    CHECK_OP_OK (T0, "{\"op\": \"plans.action_update\", \"id\": \"%s\", \"action\": 1, \"due\": %llu, \"by\": \"t\"}",
                 id, (unsigned long long) (T0 + 3 * HOUR));
    CHECK_OP_OK (T0, "{\"op\": \"plans.action_update\", \"id\": \"%s\", \"action\": 2, \"state\": \"fait\", \"by\": \"t\"}", id);
    CHECK_OP_OK (T0, "{\"op\": \"plans.action_update\", \"id\": \"%s\", \"action\": 3, \"state\": \"annule\", \"by\": \"t\"}", id);
    fx_tick (T0 + 2 * HOUR);
    CHECK (fx_count ("plan.action_overdue", NULL) == 0);
    fx_tick (T0 + 3 * HOUR);
    CHECK (fx_count ("plan.action_overdue", NULL) == 1);
    CHECK (strstr (fx_last ()->body, "\"action\":1"));
    //  Moved again after being missed: the new date may be missed once more
    CHECK_OP_OK (T0 + 4 * HOUR, "{\"op\": \"plans.action_update\", \"id\": \"%s\", \"action\": 1, \"due\": %llu, \"by\": \"t\"}",
                 id, (unsigned long long) (T0 + 5 * HOUR));
    fx_tick (T0 + 6 * HOUR);
    fx_tick (T0 + 7 * HOUR);
    CHECK (fx_count ("plan.action_overdue", NULL) == 2);
    //  A closed plan raises nothing; reopened, its pending action is due again
    s_add_action (id, T0 + 7 * HOUR, T0 + 8 * HOUR);   //  4
    CHECK_OP_OK (T0 + 7 * HOUR, "{\"op\": \"plans.set_state\", \"id\": \"%s\", \"state\": \"clos\", \"outcome\": \"sortie_de_rue\", \"by\": \"t\"}", id);
    CHECK (fx_tick (T0 + 9 * HOUR) == 0);
    CHECK (fx_count ("plan.action_overdue", NULL) == 2);
    CHECK_OP_OK (T0 + 10 * HOUR, "{\"op\": \"plans.reopen\", \"id\": \"%s\", \"by\": \"t\"}", id);
    fx_tick (T0 + 10 * HOUR);
    CHECK (fx_count ("plan.action_overdue", NULL) == 3);
    CHECK (strstr (fx_last ()->body, "\"action\":4"));
    fx_teardown ();
}

static void
test_stale (void)
{
    fx_setup ("plans-stale", 30 * DAY, 2 * DAY);
    CHECK_OK (fx_report ("SIG-00000001", T0, 2, 19, "talus", "C1-1", "[]"));
    CHECK_OK (fx_report ("SIG-00000002", T0, 2, 19, "talus", "C1-2", "[]"));
    CHECK_OP_OK (T0, "{\"op\": \"plans.set_state\", \"id\": \"PLAN-00000002\", \"state\": \"clos\", \"outcome\": \"refus\", \"by\": \"t\"}");
    fx_tick (T0 + DAY);
    CHECK (fx_count ("plan.stale", NULL) == 0);
    fx_tick (T0 + 2 * DAY);
    CHECK (fx_count ("plan.stale", NULL) == 1);     //  not the closed one
    char expect [64];
    snprintf (expect, sizeof expect, "{\"last_activity\":%llu}", (unsigned long long) T0);
    CHECK_STR (fx_last ()->body, expect);
    s_restart ();
    fx_tick (T0 + 3 * DAY);
    fx_tick (T0 + 9 * DAY);
    CHECK (fx_count ("plan.stale", NULL) == 1);     //  once per quiet period
    //  Activity starts a new quiet period
    CHECK_OP_OK (T0 + 10 * DAY, "{\"op\": \"plans.note\", \"id\": \"PLAN-00000001\", \"text\": \"seen\", \"by\": \"t\"}");
    fx_tick (T0 + 11 * DAY);
    CHECK (fx_count ("plan.stale", NULL) == 1);
    fx_tick (T0 + 12 * DAY);
    CHECK (fx_count ("plan.stale", NULL) == 2);
    fx_teardown ();
}

int
main (void)
{
    RUN (test_overdue_once);
    RUN (test_restart_before);
    RUN (test_restart_after);
    RUN (test_changes);
    RUN (test_stale);
    return 0;
}
