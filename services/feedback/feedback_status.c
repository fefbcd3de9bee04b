/*  =========================================================================
    feedback_status - the status of one report, derived from the bus
    (see feedback_status.h; the rules are proto/feedback.md §2)
    =========================================================================
*/
#include "feedback_status.h"
#include "router_rules.h"
#include "relais_msg.h"
#include "relais_signal.h"

#include <string.h>

const char *const feedback_status_names [FEEDBACK_STATUS_COUNT] = {
    "recu", "qualifie", "oriente", "escalade", "pris_en_charge", "en_cours", "clos"
};

const char *const feedback_partner_state_names [FEEDBACK_PARTNER_STATE_COUNT] = {
    "assigned", "acknowledged", "refused", "escalated"
};

enum { S_OPEN_BY_NOBODY = 0, S_CLOSED_BY_PRODUCER = 1, S_CLOSED_BY_PLAN = 2 };

//  Order of the statuses: escalade sits with oriente (an assignment is
//  looking for a partner again)
static int
s_rank (int status)
{
    static const int ranks [FEEDBACK_STATUS_COUNT] = { 0, 1, 2, 2, 3, 4, 5 };
    return status >= 0 && status < FEEDBACK_STATUS_COUNT? ranks [status]: 0;
}

void
feedback_report_init (feedback_report_t *self, const char *id)
{
    memset (self, 0, sizeof *self);
    snprintf (self->id, sizeof self->id, "%s", id);
}

static uint32_t
s_reasons_mask (const msgpack_object *array)
{
    uint32_t mask = 0;
    if (!array || array->type != MSGPACK_OBJECT_ARRAY)
        return 0;
    for (uint32_t i = 0; i < array->via.array.size; i++) {
        char name [32];
        if (relais_msg_str_copy (&array->via.array.ptr [i], name, sizeof name) < 0)
            continue;
        int bit = relais_enum_find (router_reason_names, ROUTER_REASON_COUNT, name);
        if (bit >= 0)
            mask |= 1u << bit;
    }
    return mask;
}

//  Append a step at time at; returns it for the caller to fill
static feedback_step_t *
s_step (feedback_report_t *self, int status, uint64_t at)
{
    if (self->step_count == FEEDBACK_STEPS_MAX) {
        memmove (&self->steps [0], &self->steps [1], (FEEDBACK_STEPS_MAX - 1) * sizeof self->steps [0]);
        self->step_count--;
    }
    feedback_step_t *step = &self->steps [self->step_count++];
    memset (step, 0, sizeof *step);
    step->status = status;
    step->at = at;
    self->steps_total++;
    self->status = status;
    self->updated = at;
    return step;
}

static feedback_partner_t *
s_partner (feedback_report_t *self, const char *partner)
{
    for (size_t i = 0; i < self->partner_count; i++)
        if (strcmp (self->partners [i].partner, partner) == 0)
            return &self->partners [i];
    if (self->partner_count == FEEDBACK_PARTNERS_MAX)
        return NULL;                    //  the router assigns at most 8 per rule set
    feedback_partner_t *p = &self->partners [self->partner_count++];
    memset (p, 0, sizeof *p);
    snprintf (p->partner, sizeof p->partner, "%s", partner);
    return p;
}

static int
s_created (feedback_report_t *self, const relais_envelope_t *env)
{
    if (self->producer [0])
        return 0;                       //  known already: nothing new
    const msgpack_object *source = relais_msg_get (env->body, "source");
    char kind [16], name [129];
    if (relais_msg_str_copy (relais_msg_get (source, "kind"), kind, sizeof kind) <= 0
    ||  relais_msg_str_copy (relais_msg_get (source, "name"), name, sizeof name) <= 0)
        return RELAIS_EMALFORMED;
    uint64_t level = 1, received = env->ts;
    relais_msg_uint (relais_msg_get (env->body, "level"), &level);
    relais_msg_uint (relais_msg_get (env->body, "received_at"), &received);
    snprintf (self->producer, sizeof self->producer, "%s:%s", kind, name);
    self->level = level == 2? 2: 1;
    self->reasons = s_reasons_mask (relais_msg_get (env->body, "reasons"));
    self->created = received;
    s_step (self, FEEDBACK_RECU, received);
    feedback_step_t *step = s_step (self, FEEDBACK_QUALIFIE, env->ts);
    step->level = self->level;
    step->reasons = self->reasons;
    return 2;
}

static int
s_updated (feedback_report_t *self, const relais_envelope_t *env)
{
    uint64_t level = 0;
    relais_msg_uint (relais_msg_get (env->body, "level"), &level);
    uint32_t reasons = s_reasons_mask (relais_msg_get (env->body, "reasons"));
    if (level <= self->level && (reasons & ~self->reasons) == 0)
        return 0;                       //  the qualification did not move
    if (level > self->level && level <= 2)
        self->level = (uint32_t) level;
    self->reasons |= reasons;
    if (s_rank (self->status) > s_rank (FEEDBACK_QUALIFIE))
        return 0;                       //  further on already: the record keeps it
    feedback_step_t *step = s_step (self, FEEDBACK_QUALIFIE, env->ts);
    step->level = self->level;
    step->reasons = self->reasons;
    return 1;
}

static int
s_closed (feedback_report_t *self, const relais_envelope_t *env)
{
    if (self->status == FEEDBACK_CLOS)
        return 0;
    char reason [FEEDBACK_CODE_MAX] = "autre";
    relais_msg_str_copy (relais_msg_get (env->body, "reason"), reason, sizeof reason);
    self->closed_by = S_CLOSED_BY_PRODUCER;
    snprintf (self->outcome, sizeof self->outcome, "%s", reason);
    feedback_step_t *step = s_step (self, FEEDBACK_CLOS, env->ts);
    snprintf (step->outcome, sizeof step->outcome, "%s", reason);
    return 1;
}

static int
s_route (feedback_report_t *self, const relais_envelope_t *env)
{
    char partner [FEEDBACK_NAME_MAX];
    if (relais_msg_str_copy (relais_msg_get (env->body, "partner"), partner, sizeof partner) <= 0)
        return RELAIS_EMALFORMED;
    feedback_partner_t *p = s_partner (self, partner);
    bool before_care = s_rank (self->status) <= s_rank (FEEDBACK_ORIENTE);
    if (strcmp (env->type, "route.assigned") == 0) {
        if (p) {
            p->state = FEEDBACK_ASSIGNED;
            p->at = env->ts;
        }
        if (!before_care)
            return 0;
        feedback_step_t *step = s_step (self, FEEDBACK_ORIENTE, env->ts);
        snprintf (step->partner, sizeof step->partner, "%s", partner);
        return 1;
    }
    if (strcmp (env->type, "route.acknowledged") == 0) {
        uint64_t at = env->ts;
        relais_msg_uint (relais_msg_get (env->body, "at"), &at);
        if (p) {
            p->state = FEEDBACK_ACKED;
            p->at = at;
        }
        if (!before_care)
            return 0;
        feedback_step_t *step = s_step (self, FEEDBACK_PRIS_EN_CHARGE, at);
        snprintf (step->partner, sizeof step->partner, "%s", partner);
        return 1;
    }
    if (strcmp (env->type, "route.refused") == 0) {
        //  The router escalates every refusal (route.escalated follows)
        if (p) {
            p->state = FEEDBACK_REFUSED;
            p->at = env->ts;
        }
        return 0;
    }
    if (strcmp (env->type, "route.escalated") == 0) {
        if (p && p->state != FEEDBACK_REFUSED && p->state != FEEDBACK_ACKED) {
            p->state = FEEDBACK_ESCALATED;
            p->at = env->ts;
        }
        if (!before_care)
            return 0;
        feedback_step_t *step = s_step (self, FEEDBACK_ESCALADE, env->ts);
        snprintf (step->partner, sizeof step->partner, "%s", partner);
        relais_msg_str_copy (relais_msg_get (env->body, "fallback"), step->fallback, sizeof step->fallback);
        relais_msg_str_copy (relais_msg_get (env->body, "cause"), step->cause, sizeof step->cause);
        return 1;
    }
    return 0;                           //  another route.* type: nothing for producers
}

bool
feedback_plan_names (const relais_envelope_t *env, const char *id)
{
    if (!env->body)
        return false;
    if (strcmp (env->type, "plan.closed") == 0) {
        const msgpack_object *signals = relais_msg_get (env->body, "signals");
        if (!signals || signals->type != MSGPACK_OBJECT_ARRAY)
            return false;
        for (uint32_t i = 0; i < signals->via.array.size; i++)
            if (relais_msg_str_eq (&signals->via.array.ptr [i], id))
                return true;
        return false;
    }
    return relais_msg_str_eq (relais_msg_get (env->body, "signal"), id);
}

static int
s_plan (feedback_report_t *self, const relais_envelope_t *env)
{
    const char *plan = env->key;
    bool named = feedback_plan_names (env, self->id);
    if (strcmp (env->type, "plan.closed") == 0) {
        if (self->status == FEEDBACK_CLOS)
            return 0;
        snprintf (self->plan, sizeof self->plan, "%s", plan);
        char outcome [FEEDBACK_CODE_MAX] = "autre";
        relais_msg_str_copy (relais_msg_get (env->body, "outcome"), outcome, sizeof outcome);
        self->closed_by = S_CLOSED_BY_PLAN;
        snprintf (self->outcome, sizeof self->outcome, "%s", outcome);
        feedback_step_t *step = s_step (self, FEEDBACK_CLOS, env->ts);
        snprintf (step->outcome, sizeof step->outcome, "%s", outcome);
        snprintf (step->plan, sizeof step->plan, "%s", plan);
        return 1;
    }
    bool reopened = strcmp (env->type, "plan.reopened") == 0;
    if (!named && !reopened)
        return 0;                       //  plan.updated of actors or state only
    if (self->status == FEEDBACK_CLOS) {
        //  A plan reopening brings back what it had closed, never what the
        //  producer closed
        if (!reopened || self->closed_by != S_CLOSED_BY_PLAN || strcmp (self->plan, plan) != 0)
            return 0;
    }
    else
    if (self->status == FEEDBACK_EN_COURS && strcmp (self->plan, plan) == 0)
        return 0;
    snprintf (self->plan, sizeof self->plan, "%s", plan);
    self->closed_by = S_OPEN_BY_NOBODY;
    self->outcome [0] = 0;
    feedback_step_t *step = s_step (self, FEEDBACK_EN_COURS, env->ts);
    snprintf (step->plan, sizeof step->plan, "%s", plan);
    return 1;
}

int
feedback_report_apply (feedback_report_t *self, const relais_envelope_t *env)
{
    if (!env->body || env->body->type != MSGPACK_OBJECT_MAP)
        return RELAIS_EMALFORMED;
    if (strcmp (env->type, "signal.created") == 0)
        return s_created (self, env);
    if (!self->producer [0])
        return RELAIS_EMALFORMED;       //  an event about a report never created
    if (strcmp (env->type, "signal.updated") == 0)
        return s_updated (self, env);
    if (strcmp (env->type, "signal.closed") == 0)
        return s_closed (self, env);
    if (strncmp (env->type, "route.", 6) == 0)
        return s_route (self, env);
    if (strncmp (env->type, "plan.", 5) == 0)
        return s_plan (self, env);
    return 0;
}

//  ---------------------------------------------------------------------------
//  Packing

void
feedback_step_pack (msgpack_packer *pk, const feedback_step_t *step, const char *producer,
                    const char *key)
{
    bool with_level = step->status == FEEDBACK_QUALIFIE;
    bool with_fallback = step->status == FEEDBACK_ESCALADE;
    size_t n = 3 + (key != NULL) + (step->partner [0] != 0) + 2 * with_fallback
             + (step->outcome [0] != 0) + (step->plan [0] != 0) + 2 * with_level;
    msgpack_pack_map (pk, n);
    if (key)
        relais_pack_kv_str (pk, "key", key);
    relais_pack_kv_str (pk, "producer", producer);
    relais_pack_kv_str (pk, "status", feedback_status_names [step->status]);
    relais_pack_kv_uint (pk, "at", step->at);
    if (step->partner [0])
        relais_pack_kv_str (pk, "partner", step->partner);
    if (with_fallback) {
        relais_pack_kv_str (pk, "fallback", step->fallback);
        relais_pack_kv_str (pk, "cause", step->cause);
    }
    if (step->outcome [0])
        relais_pack_kv_str (pk, "outcome", step->outcome);
    if (step->plan [0])
        relais_pack_kv_str (pk, "plan", step->plan);
    if (with_level) {
        relais_pack_kv_uint (pk, "level", step->level);
        relais_pack_str (pk, "reasons");
        relais_pack_mask (pk, step->reasons, router_reason_names, ROUTER_REASON_COUNT);
    }
}

int
feedback_step_unpack (const msgpack_object *map, feedback_step_t *step)
{
    memset (step, 0, sizeof *step);
    char status [32];
    if (!map || map->type != MSGPACK_OBJECT_MAP
    ||  relais_msg_str_copy (relais_msg_get (map, "status"), status, sizeof status) < 0)
        return RELAIS_EMALFORMED;
    step->status = relais_enum_find (feedback_status_names, FEEDBACK_STATUS_COUNT, status);
    if (step->status < 0)
        return RELAIS_EMALFORMED;
    relais_msg_uint (relais_msg_get (map, "at"), &step->at);
    relais_msg_str_copy (relais_msg_get (map, "partner"), step->partner, sizeof step->partner);
    relais_msg_str_copy (relais_msg_get (map, "fallback"), step->fallback, sizeof step->fallback);
    relais_msg_str_copy (relais_msg_get (map, "cause"), step->cause, sizeof step->cause);
    relais_msg_str_copy (relais_msg_get (map, "outcome"), step->outcome, sizeof step->outcome);
    relais_msg_str_copy (relais_msg_get (map, "plan"), step->plan, sizeof step->plan);
    uint64_t level = 0;
    relais_msg_uint (relais_msg_get (map, "level"), &level);
    step->level = (uint32_t) level;
    step->reasons = s_reasons_mask (relais_msg_get (map, "reasons"));
    return 0;
}

void
feedback_report_pack (msgpack_packer *pk, const feedback_report_t *self)
{
    msgpack_pack_map (pk, 14);
    relais_pack_kv_uint (pk, "v", 1);
    relais_pack_kv_str (pk, "id", self->id);
    relais_pack_kv_str (pk, "producer", self->producer);
    relais_pack_kv_uint (pk, "level", self->level);
    relais_pack_kv_uint (pk, "reasons", self->reasons);
    relais_pack_kv_uint (pk, "status", (uint64_t) self->status);
    relais_pack_kv_uint (pk, "closed_by", (uint64_t) self->closed_by);
    relais_pack_kv_str (pk, "plan", self->plan);
    relais_pack_kv_str (pk, "outcome", self->outcome);
    relais_pack_kv_uint (pk, "created", self->created);
    relais_pack_kv_uint (pk, "updated", self->updated);
    relais_pack_kv_uint (pk, "steps_total", self->steps_total);
    relais_pack_str (pk, "partners");
    msgpack_pack_array (pk, self->partner_count);
    for (size_t i = 0; i < self->partner_count; i++) {
        msgpack_pack_array (pk, 3);
        relais_pack_str (pk, self->partners [i].partner);
        msgpack_pack_uint64 (pk, (uint64_t) self->partners [i].state);
        msgpack_pack_uint64 (pk, self->partners [i].at);
    }
    relais_pack_str (pk, "steps");
    msgpack_pack_array (pk, self->step_count);
    for (size_t i = 0; i < self->step_count; i++)
        feedback_step_pack (pk, &self->steps [i], "", NULL);
}

int
feedback_report_unpack (const msgpack_object *map, feedback_report_t *self)
{
    memset (self, 0, sizeof *self);
    uint64_t v = 0, level = 0, reasons = 0, status = 0, closed_by = 0;
    if (!map || map->type != MSGPACK_OBJECT_MAP
    ||  !relais_msg_uint (relais_msg_get (map, "v"), &v) || v != 1
    ||  relais_msg_str_copy (relais_msg_get (map, "id"), self->id, sizeof self->id) <= 0
    ||  relais_msg_str_copy (relais_msg_get (map, "producer"), self->producer, sizeof self->producer) <= 0)
        return RELAIS_EMALFORMED;
    relais_msg_uint (relais_msg_get (map, "level"), &level);
    relais_msg_uint (relais_msg_get (map, "reasons"), &reasons);
    relais_msg_uint (relais_msg_get (map, "status"), &status);
    relais_msg_uint (relais_msg_get (map, "closed_by"), &closed_by);
    if (status >= FEEDBACK_STATUS_COUNT || closed_by > S_CLOSED_BY_PLAN)
        return RELAIS_EMALFORMED;
    self->level = (uint32_t) level;
    self->reasons = (uint32_t) reasons;
    self->status = (int) status;
    self->closed_by = (int) closed_by;
    relais_msg_str_copy (relais_msg_get (map, "plan"), self->plan, sizeof self->plan);
    relais_msg_str_copy (relais_msg_get (map, "outcome"), self->outcome, sizeof self->outcome);
    relais_msg_uint (relais_msg_get (map, "created"), &self->created);
    relais_msg_uint (relais_msg_get (map, "updated"), &self->updated);
    relais_msg_uint (relais_msg_get (map, "steps_total"), &self->steps_total);
    const msgpack_object *partners = relais_msg_get (map, "partners");
    if (partners && partners->type == MSGPACK_OBJECT_ARRAY)
        for (uint32_t i = 0; i < partners->via.array.size && self->partner_count < FEEDBACK_PARTNERS_MAX; i++) {
            const msgpack_object *p = &partners->via.array.ptr [i];
            uint64_t state = 0;
            feedback_partner_t *out = &self->partners [self->partner_count];
            if (p->type != MSGPACK_OBJECT_ARRAY || p->via.array.size != 3
            ||  relais_msg_str_copy (&p->via.array.ptr [0], out->partner, sizeof out->partner) <= 0
            ||  !relais_msg_uint (&p->via.array.ptr [1], &state) || state >= FEEDBACK_PARTNER_STATE_COUNT)
                return RELAIS_EMALFORMED;
            out->state = (int) state;
            relais_msg_uint (&p->via.array.ptr [2], &out->at);
            self->partner_count++;
        }
    const msgpack_object *steps = relais_msg_get (map, "steps");
    if (steps && steps->type == MSGPACK_OBJECT_ARRAY)
        for (uint32_t i = 0; i < steps->via.array.size && self->step_count < FEEDBACK_STEPS_MAX; i++)
            if (feedback_step_unpack (&steps->via.array.ptr [i], &self->steps [self->step_count++]))
                return RELAIS_EMALFORMED;
    return 0;
}

void
feedback_report_pack_view (msgpack_packer *pk, const feedback_report_t *self)
{
    relais_pack_kv_str (pk, "id", self->id);
    relais_pack_kv_str (pk, "producer", self->producer);
    relais_pack_kv_str (pk, "status", feedback_status_names [self->status]);
    relais_pack_kv_uint (pk, "level", self->level);
    relais_pack_str (pk, "reasons");
    relais_pack_mask (pk, self->reasons, router_reason_names, ROUTER_REASON_COUNT);
    relais_pack_kv_str (pk, "plan", self->plan);
    relais_pack_kv_str (pk, "outcome", self->outcome);
    relais_pack_kv_uint (pk, "steps_total", self->steps_total);
    relais_pack_str (pk, "partners");
    msgpack_pack_array (pk, self->partner_count);
    for (size_t i = 0; i < self->partner_count; i++) {
        msgpack_pack_map (pk, 3);
        relais_pack_kv_str (pk, "partner", self->partners [i].partner);
        relais_pack_kv_str (pk, "state", feedback_partner_state_names [self->partners [i].state]);
        relais_pack_kv_uint (pk, "at", self->partners [i].at);
    }
    relais_pack_str (pk, "history");
    msgpack_pack_array (pk, self->step_count);
    for (size_t i = 0; i < self->step_count; i++)
        feedback_step_pack (pk, &self->steps [i], self->producer, NULL);
}
