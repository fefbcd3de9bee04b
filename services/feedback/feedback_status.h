/*  =========================================================================
    feedback_status - the status of one report, derived from the bus

    @header
    A report's status is never typed by hand: it follows the events of
    intake (signal.*), router (route.*) and plans (plan.*). This class holds
    one report's record (producer, level, partners, plan, outcome, the
    timeline of its steps) and applies one event to it, appending the
    status changes the event causes:
      recu -> qualifie -> oriente -> pris_en_charge -> en_cours -> clos
    plus escalade (an assignment escalated) at the rank of oriente. It has
    no store and no socket: the server loads a record, applies, saves, and
    queues the new steps (proto/feedback.md §2 states the rules).
    @discuss
    A record holds the last FEEDBACK_STEPS_MAX steps (older ones drop out;
    steps_total counts them all). Plan events are keyed by the plan: the
    server applies them to each report the plan links. Records and steps
    are packed as msgpack maps with a version field "v" (1).
    =========================================================================
*/
#ifndef FEEDBACK_STATUS_H_INCLUDED
#define FEEDBACK_STATUS_H_INCLUDED

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include "relais_envelope.h"

#define FEEDBACK_PRODUCER_MAX   160     //  "kind:name": kind ≤ 15, name ≤ 128 bytes
#define FEEDBACK_NAME_MAX       64      //  partner, plan id
#define FEEDBACK_CODE_MAX       32      //  outcome, cause
#define FEEDBACK_PARTNERS_MAX   16
#define FEEDBACK_STEPS_MAX      64

typedef enum {
    FEEDBACK_RECU,
    FEEDBACK_QUALIFIE,
    FEEDBACK_ORIENTE,
    FEEDBACK_ESCALADE,
    FEEDBACK_PRIS_EN_CHARGE,
    FEEDBACK_EN_COURS,
    FEEDBACK_CLOS,
    FEEDBACK_STATUS_COUNT
} feedback_status_t;

extern const char *const feedback_status_names [FEEDBACK_STATUS_COUNT];

//  A partner's state for this report
typedef enum {
    FEEDBACK_ASSIGNED, FEEDBACK_ACKED, FEEDBACK_REFUSED, FEEDBACK_ESCALATED,
    FEEDBACK_PARTNER_STATE_COUNT
} feedback_partner_state_t;

extern const char *const feedback_partner_state_names [FEEDBACK_PARTNER_STATE_COUNT];

//  One status change. Fields that do not apply are 0 / "".
typedef struct {
    int status;                             //  feedback_status_t
    uint64_t at;                            //  µs UTC (the causing event's time)
    char partner [FEEDBACK_NAME_MAX];       //  oriente, pris_en_charge, escalade
    char fallback [FEEDBACK_NAME_MAX];      //  escalade ("" : nobody)
    char cause [FEEDBACK_CODE_MAX];         //  escalade: deadline, refused
    char outcome [FEEDBACK_CODE_MAX];       //  clos
    char plan [FEEDBACK_NAME_MAX];          //  en_cours, clos by a plan
    uint32_t level;                         //  qualifie
    uint32_t reasons;                       //  qualifie: mask of router_reason_names
} feedback_step_t;

typedef struct {
    char partner [FEEDBACK_NAME_MAX];
    int state;                              //  feedback_partner_state_t
    uint64_t at;
} feedback_partner_t;

typedef struct {
    char id [RELAIS_KEY_MAX];               //  "SIG-…"
    char producer [FEEDBACK_PRODUCER_MAX];  //  "kind:name" of signal.created's source
    uint32_t level, reasons;
    int status;
    int closed_by;                          //  0 open, 1 the producer (signal.closed), 2 a plan
    char plan [FEEDBACK_NAME_MAX];
    char outcome [FEEDBACK_CODE_MAX];
    uint64_t created, updated;
    size_t partner_count;
    feedback_partner_t partners [FEEDBACK_PARTNERS_MAX];
    uint64_t steps_total;                   //  every step ever appended
    size_t step_count;                      //  the last ones, held here
    feedback_step_t steps [FEEDBACK_STEPS_MAX];
} feedback_report_t;

//  Start a record for id (zeroed). The first event applied must be its
//  signal.created.
void
    feedback_report_init (feedback_report_t *self, const char *id);

//  Apply one event: signal.created/updated/closed and route.* keyed by the
//  report, plan.opened/updated/reopened/closed keyed by a plan that links
//  it (the caller decides the link). Returns the number of steps appended
//  (they are the last ones of steps []), or RELAIS_EMALFORMED when the
//  event cannot be applied (signal.created without a valid source, or an
//  event before signal.created): nothing changed then.
int
    feedback_report_apply (feedback_report_t *self, const relais_envelope_t *env);

//  Does plan event env link this report (plan.opened/updated/reopened with
//  "signal" = its id, or plan.closed listing it in "signals")?
bool
    feedback_plan_names (const relais_envelope_t *env, const char *id);

//  Pack a step as the body of a status change: {producer, status, at,
//  partner?, fallback?, cause?, outcome?, plan?, level?, reasons?}; with
//  key (not NULL) a "key" pair first. No personal data.
void
    feedback_step_pack (msgpack_packer *pk, const feedback_step_t *step,
                        const char *producer, const char *key);

//  Read a step packed by feedback_step_pack. Returns 0 or RELAIS_EMALFORMED.
int
    feedback_step_unpack (const msgpack_object *map, feedback_step_t *step);

//  Pack / unpack the whole record (storage). Unpack returns 0 or
//  RELAIS_EMALFORMED.
void
    feedback_report_pack (msgpack_packer *pk, const feedback_report_t *self);
int
    feedback_report_unpack (const msgpack_object *map, feedback_report_t *self);

//  Pack the record as the reply of feedback.status, without ok/rid:
//  n pairs (FEEDBACK_VIEW_PAIRS) to follow the caller's own.
#define FEEDBACK_VIEW_PAIRS 10
void
    feedback_report_pack_view (msgpack_packer *pk, const feedback_report_t *self);

#endif
