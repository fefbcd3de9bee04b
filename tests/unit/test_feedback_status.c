/*  Feedback: the status of a report follows the events of intake, router
    and plans exactly, in every path (routed and acked; refused and
    rerouted; escalated on deadline; plan closed with each outcome and
    reopened; closed by the producer), and the record survives its storage
    format. */
#include "feedback_status.h"
#include "feedback_server.h"
#include "relais_msg.h"
#include "relais_test.h"

#include <stdarg.h>

//  An event: type, key, ts and a body given as "k=v" pairs: "s:" str,
//  "u:" uint, "a:" array of str (comma separated)
typedef struct {
    msgpack_sbuffer sbuf;
    relais_msg_t msg;
    relais_envelope_t env;
} s_event_t;

static s_event_t *
s_event (const char *type, const char *key, uint64_t ts, ...)
{
    s_event_t *e = (s_event_t *) calloc (1, sizeof *e);
    CHECK (e);
    msgpack_sbuffer_init (&e->sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &e->sbuf, msgpack_sbuffer_write);
    const char *pairs [32];
    size_t n = 0;
    va_list ap;
    va_start (ap, ts);
    for (const char *p = va_arg (ap, const char *); p; p = va_arg (ap, const char *))
        pairs [n++] = p;
    va_end (ap);
    msgpack_pack_map (&pk, n);
    for (size_t i = 0; i < n; i++) {
        char copy [512];
        snprintf (copy, sizeof copy, "%s", pairs [i]);
        char *eq = strchr (copy, '=');
        CHECK (eq && eq [1] && eq [2] == ':');
        *eq = 0;
        relais_pack_str (&pk, copy);
        char kind = eq [1];
        const char *value = eq + 3;
        if (kind == 's')
            relais_pack_str (&pk, value);
        else
        if (kind == 'u')
            msgpack_pack_uint64 (&pk, strtoull (value, NULL, 10));
        else
        if (kind == 'm') {
            //  source map "kind/name"
            const char *slash = strchr (value, '/');
            msgpack_pack_map (&pk, 2);
            relais_pack_str (&pk, "kind");
            relais_pack_strn (&pk, value, (size_t) (slash - value));
            relais_pack_kv_str (&pk, "name", slash + 1);
        }
        else {
            CHECK (kind == 'a');
            size_t count = *value? 1: 0;
            for (const char *c = value; *c; c++)
                count += *c == ',';
            msgpack_pack_array (&pk, count);
            char items [256];
            snprintf (items, sizeof items, "%s", value);
            char *save = NULL;
            for (char *t = strtok_r (items, ",", &save); t; t = strtok_r (NULL, ",", &save))
                relais_pack_str (&pk, t);
        }
    }
    relais_error_t err;
    CHECK_OK (relais_msg_decode (&e->msg, e->sbuf.data, e->sbuf.size, NULL, &err));
    e->env.v = 1;
    snprintf (e->env.src, sizeof e->env.src, "%.*s", (int) (strchr (type, '.') - type), type);
    snprintf (e->env.type, sizeof e->env.type, "%s", type);
    snprintf (e->env.key, sizeof e->env.key, "%s", key);
    e->env.ts = ts;
    e->env.seq = 1;
    e->env.body = &e->msg.root;
    return e;
}

//  Apply and free; returns the number of steps
static int
s_apply (feedback_report_t *r, s_event_t *e)
{
    int rc = feedback_report_apply (r, &e->env);
    relais_msg_release (&e->msg);
    msgpack_sbuffer_destroy (&e->sbuf);
    free (e);
    return rc;
}

#define ID "SIG-1"

static const char *
s_last (const feedback_report_t *r)
{
    return feedback_status_names [r->steps [r->step_count - 1].status];
}

//  The timeline as "status[:detail] ..."
static void
s_timeline (const feedback_report_t *r, char *out, size_t size)
{
    size_t len = 0;
    out [0] = 0;
    for (size_t i = 0; i < r->step_count; i++) {
        const feedback_step_t *s = &r->steps [i];
        const char *detail = s->partner [0]? s->partner: s->outcome [0]? s->outcome: s->plan;
        len += (size_t) snprintf (out + len, size - len, "%s%s%s%s", i? " ": "",
                                  feedback_status_names [s->status], detail [0]? ":": "", detail);
    }
}

static feedback_report_t *
s_created (int level, const char *reasons)
{
    feedback_report_t *r = (feedback_report_t *) calloc (1, sizeof *r);
    CHECK (r);
    feedback_report_init (r, ID);
    char lvl [16], rs [128];
    snprintf (lvl, sizeof lvl, "level=u:%d", level);
    snprintf (rs, sizeof rs, "reasons=a:%s", reasons);
    CHECK (s_apply (r, s_event ("signal.created", ID, 2000, "source=m:115/115 de Paris", lvl, rs,
                                "received_at=u:1000", "persons=u:1", NULL)) == 2);
    CHECK_STR (r->producer, "115:115 de Paris");
    CHECK (r->steps [0].status == FEEDBACK_RECU && r->steps [0].at == 1000);
    CHECK (r->steps [1].status == FEEDBACK_QUALIFIE && r->steps [1].level == (uint32_t) level);
    return r;
}

static void
test_routed_and_acked (void)
{
    feedback_report_t *r = s_created (1, "");
    CHECK (s_apply (r, s_event ("route.assigned", ID, 3000, "partner=s:cellule-18", "attempt=u:1", NULL)) == 1);
    CHECK_STR (s_last (r), "oriente");
    CHECK (s_apply (r, s_event ("route.acknowledged", ID, 4000, "partner=s:cellule-18",
                                "mseq=u:1", "at=u:3900", NULL)) == 1);
    CHECK_STR (s_last (r), "pris_en_charge");
    CHECK (r->steps [r->step_count - 1].at == 3900);
    CHECK (r->partners [0].state == FEEDBACK_ACKED);
    //  A second ack (another mseq) is no status change
    CHECK (s_apply (r, s_event ("route.acknowledged", ID, 4100, "partner=s:cellule-18", NULL)) == 0);
    CHECK (s_apply (r, s_event ("signal.closed", ID, 5000, "reason=s:pris_en_charge", NULL)) == 1);
    char line [512];
    s_timeline (r, line, sizeof line);
    CHECK_STR (line, "recu qualifie oriente:cellule-18 pris_en_charge:cellule-18 clos:pris_en_charge");
    CHECK (r->steps_total == 5);
    free (r);
}

static void
test_refused_and_rerouted (void)
{
    feedback_report_t *r = s_created (2, "domaine_municipal");
    CHECK (r->steps [1].reasons != 0);
    CHECK (s_apply (r, s_event ("route.assigned", ID, 3000, "partner=s:uasa", "attempt=u:1",
                                "fallback=s:mus", NULL)) == 1);
    CHECK (s_apply (r, s_event ("route.refused", ID, 3100, "partner=s:uasa", "mseq=u:1",
                                "reason=s:capacite", NULL)) == 0);
    CHECK (r->partners [0].state == FEEDBACK_REFUSED);
    CHECK (s_apply (r, s_event ("route.escalated", ID, 3100, "partner=s:uasa", "fallback=s:mus",
                                "cause=s:refused", "mseq=u:1", NULL)) == 1);
    const feedback_step_t *esc = &r->steps [r->step_count - 1];
    CHECK (esc->status == FEEDBACK_ESCALADE);
    CHECK_STR (esc->fallback, "mus");
    CHECK_STR (esc->cause, "refused");
    CHECK (r->partners [0].state == FEEDBACK_REFUSED);     //  the refusal stays visible
    CHECK (s_apply (r, s_event ("route.assigned", ID, 3100, "partner=s:mus", "attempt=u:2", NULL)) == 1);
    CHECK (s_apply (r, s_event ("route.acknowledged", ID, 3500, "partner=s:mus", "at=u:3500", NULL)) == 1);
    char line [512];
    s_timeline (r, line, sizeof line);
    CHECK_STR (line, "recu qualifie oriente:uasa escalade:uasa oriente:mus pris_en_charge:mus");
    CHECK (r->partner_count == 2);
    free (r);
}

static void
test_escalated_on_deadline (void)
{
    feedback_report_t *r = s_created (1, "");
    CHECK (s_apply (r, s_event ("route.assigned", ID, 3000, "partner=s:cellule-18", "fallback=s:mus", NULL)) == 1);
    CHECK (s_apply (r, s_event ("route.escalated", ID, 9000, "partner=s:cellule-18", "fallback=s:mus",
                                "cause=s:deadline", "mseq=u:1", NULL)) == 1);
    CHECK_STR (r->steps [r->step_count - 1].cause, "deadline");
    CHECK (r->partners [0].state == FEEDBACK_ESCALATED);
    CHECK (s_apply (r, s_event ("route.assigned", ID, 9000, "partner=s:mus", "attempt=u:2", NULL)) == 1);
    //  A late ack of the first partner still counts: it took the report
    CHECK (s_apply (r, s_event ("route.acknowledged", ID, 9500, "partner=s:cellule-18", NULL)) == 1);
    CHECK_STR (r->steps [r->step_count - 1].partner, "cellule-18");
    //  The last partner of the chain escalating with nobody behind it
    //  after the report was taken: no status change
    CHECK (s_apply (r, s_event ("route.escalated", ID, 9900, "partner=s:mus", "fallback=s:",
                                "cause=s:deadline", NULL)) == 0);
    char line [512];
    s_timeline (r, line, sizeof line);
    CHECK_STR (line, "recu qualifie oriente:cellule-18 escalade:cellule-18 oriente:mus pris_en_charge:cellule-18");
    free (r);
}

static void
test_plan_outcomes (void)
{
    const char *outcomes [] = { "mise_a_l_abri", "orientation", "sortie_de_rue", "refus",
                                "perdu_de_vue", "autre" };
    for (int i = 0; i < 6; i++) {
        feedback_report_t *r = s_created (2, "campement");
        CHECK (s_apply (r, s_event ("route.assigned", ID, 3000, "partner=s:mus", NULL)) == 1);
        CHECK (s_apply (r, s_event ("route.acknowledged", ID, 3100, "partner=s:mus", NULL)) == 1);
        CHECK (s_apply (r, s_event ("plan.opened", "PLAN-7", 3200, "signal=s:" ID,
                                    "arrondissement=u:18", "level=u:2", NULL)) == 1);
        CHECK_STR (s_last (r), "en_cours");
        CHECK_STR (r->plan, "PLAN-7");
        //  The plan moving on, or another report joining it: no change here
        CHECK (s_apply (r, s_event ("plan.updated", "PLAN-7", 3300, "state=s:en_cours", NULL)) == 0);
        CHECK (s_apply (r, s_event ("plan.updated", "PLAN-7", 3400, "signal=s:SIG-2", NULL)) == 0);
        //  A route event after the plan opened does not move it back
        CHECK (s_apply (r, s_event ("route.assigned", ID, 3450, "partner=s:drihl", NULL)) == 0);
        CHECK (r->status == FEEDBACK_EN_COURS);
        char outcome [64];
        snprintf (outcome, sizeof outcome, "outcome=s:%s", outcomes [i]);
        CHECK (s_apply (r, s_event ("plan.closed", "PLAN-7", 3500, outcome, "arrondissement=u:18",
                                    "signals=a:SIG-2," ID, NULL)) == 1);
        CHECK_STR (s_last (r), "clos");
        CHECK_STR (r->outcome, outcomes [i]);
        CHECK_STR (r->steps [r->step_count - 1].plan, "PLAN-7");
        CHECK (s_apply (r, s_event ("plan.closed", "PLAN-7", 3600, outcome, "signals=a:" ID, NULL)) == 0);
        //  The plan reopens: the report is followed again
        CHECK (s_apply (r, s_event ("plan.reopened", "PLAN-7", 3700, NULL)) == 1);
        CHECK_STR (s_last (r), "en_cours");
        CHECK (r->outcome [0] == 0);
        free (r);
    }
}

static void
test_closed_by_producer (void)
{
    feedback_report_t *r = s_created (2, "campement");
    CHECK (s_apply (r, s_event ("plan.opened", "PLAN-3", 2500, "signal=s:" ID, NULL)) == 1);
    CHECK (s_apply (r, s_event ("signal.closed", ID, 3000, "reason=s:doublon", NULL)) == 1);
    CHECK_STR (s_last (r), "clos");
    CHECK_STR (r->outcome, "doublon");
    //  Nothing reopens what the producer closed, nor moves it
    CHECK (s_apply (r, s_event ("plan.reopened", "PLAN-3", 3100, NULL)) == 0);
    CHECK (s_apply (r, s_event ("plan.closed", "PLAN-3", 3200, "outcome=s:refus", "signals=a:" ID, NULL)) == 0);
    CHECK (s_apply (r, s_event ("route.acknowledged", ID, 3300, "partner=s:mus", NULL)) == 0);
    CHECK (s_apply (r, s_event ("signal.closed", ID, 3400, "reason=s:autre", NULL)) == 0);
    CHECK_STR (r->outcome, "doublon");
    CHECK (r->status == FEEDBACK_CLOS);
    free (r);
}

static void
test_requalified (void)
{
    feedback_report_t *r = s_created (1, "");
    CHECK (s_apply (r, s_event ("signal.updated", ID, 2500, "level=u:1", "reasons=a:", NULL)) == 0);
    CHECK (s_apply (r, s_event ("signal.updated", ID, 2600, "level=u:2", "reasons=a:escalade", NULL)) == 1);
    CHECK (r->steps [r->step_count - 1].level == 2);
    CHECK (s_apply (r, s_event ("route.assigned", ID, 3000, "partner=s:mus", NULL)) == 1);
    //  Further on already: the record learns it, the status stays
    CHECK (s_apply (r, s_event ("signal.updated", ID, 3100, "level=u:2", "reasons=a:escalade,sensible", NULL)) == 0);
    CHECK (r->status == FEEDBACK_ORIENTE);
    CHECK (r->level == 2);
    free (r);
}

static void
test_malformed (void)
{
    feedback_report_t *r = (feedback_report_t *) calloc (1, sizeof *r);
    feedback_report_init (r, ID);
    CHECK (s_apply (r, s_event ("route.assigned", ID, 3000, "partner=s:mus", NULL)) == RELAIS_EMALFORMED);
    CHECK (s_apply (r, s_event ("signal.created", ID, 3000, "level=u:1", NULL)) == RELAIS_EMALFORMED);
    CHECK (r->step_count == 0);
    free (r);
    r = s_created (1, "");
    CHECK (s_apply (r, s_event ("route.assigned", ID, 3000, "rule=s:x", NULL)) == RELAIS_EMALFORMED);
    //  signal.created again (a replayed log) changes nothing
    CHECK (s_apply (r, s_event ("signal.created", ID, 2000, "source=m:mairie/Mairie du 18e", NULL)) == 0);
    CHECK_STR (r->producer, "115:115 de Paris");
    free (r);
    CHECK (feedback_producer_valid ("115:115 de Paris"));
    CHECK (feedback_producer_valid ("mairie:Mairie du 18e"));
    CHECK (!feedback_producer_valid ("martien:x"));
    CHECK (!feedback_producer_valid ("115:"));
    CHECK (!feedback_producer_valid (":x"));
    CHECK (!feedback_producer_valid ("115"));
    CHECK (!feedback_producer_valid ("115:a\nb"));
}

static void
test_storage_and_cap (void)
{
    feedback_report_t *r = s_created (2, "campement,mineurs");
    for (int i = 0; i < 70; i++) {
        char partner [32];
        snprintf (partner, sizeof partner, "partner=s:p%d", i);
        CHECK (s_apply (r, s_event ("route.assigned", ID, 3000 + (uint64_t) i, partner, NULL)) == 1);
    }
    CHECK (r->steps_total == 72);
    CHECK (r->step_count == FEEDBACK_STEPS_MAX);
    CHECK_STR (r->steps [FEEDBACK_STEPS_MAX - 1].partner, "p69");
    CHECK (r->partner_count == FEEDBACK_PARTNERS_MAX);
    CHECK (s_apply (r, s_event ("route.escalated", ID, 5000, "partner=s:p3", "fallback=s:mus",
                                "cause=s:deadline", NULL)) == 1);
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    feedback_report_pack (&pk, r);
    relais_msg_t msg;
    relais_error_t err;
    relais_msg_limits_t limits = { 4 * 65536, 0, 0 };
    CHECK_OK (relais_msg_decode (&msg, sbuf.data, sbuf.size, &limits, &err));
    feedback_report_t *back = (feedback_report_t *) calloc (1, sizeof *back);
    CHECK_OK (feedback_report_unpack (&msg.root, back));
    CHECK_STR (back->producer, r->producer);
    CHECK (back->status == r->status && back->level == 2 && back->reasons == r->reasons);
    CHECK (back->steps_total == r->steps_total && back->step_count == r->step_count);
    CHECK (back->partner_count == r->partner_count);
    CHECK (memcmp (back->steps, r->steps, sizeof r->steps [0] * r->step_count) == 0);
    CHECK (memcmp (back->partners, r->partners, sizeof r->partners [0] * r->partner_count) == 0);
    relais_msg_release (&msg);
    //  A record from the future is refused, not guessed
    msgpack_sbuffer_clear (&sbuf);
    msgpack_pack_map (&pk, 1);
    relais_pack_kv_uint (&pk, "v", 2);
    CHECK_OK (relais_msg_decode (&msg, sbuf.data, sbuf.size, NULL, &err));
    CHECK (feedback_report_unpack (&msg.root, back) == RELAIS_EMALFORMED);
    relais_msg_release (&msg);
    //  The bus body of a step carries no more than the contract's keys
    msgpack_sbuffer_clear (&sbuf);
    feedback_step_pack (&pk, &r->steps [r->step_count - 1], r->producer, NULL);
    CHECK_OK (relais_msg_decode (&msg, sbuf.data, sbuf.size, NULL, &err));
    const char *allowed [] = { "producer", "status", "at", "partner", "fallback", "cause",
                               "outcome", "plan", "level", "reasons" };
    for (uint32_t i = 0; i < msg.root.via.map.size; i++) {
        bool ok = false;
        for (int k = 0; k < 10 && !ok; k++)
            ok = relais_msg_str_eq (&msg.root.via.map.ptr [i].key, allowed [k]);
        CHECK (ok);
    }
    CHECK (relais_msg_str_eq (relais_msg_get (&msg.root, "status"), "escalade"));
    relais_msg_release (&msg);
    msgpack_sbuffer_destroy (&sbuf);
    free (back);
    free (r);
}

int
main (void)
{
    RUN (test_routed_and_acked);
    RUN (test_refused_and_rerouted);
    RUN (test_escalated_on_deadline);
    RUN (test_plan_outcomes);
    RUN (test_closed_by_producer);
    RUN (test_requalified);
    RUN (test_malformed);
    RUN (test_storage_and_cap);
    return 0;
}
