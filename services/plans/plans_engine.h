/*  =========================================================================
    plans_engine - the action plans of level-2 situations: state, rules,
    deadlines, inside the caller's store transactions

    @header
    Everything plans decides lives here, with no socket and no timer, so
    that unit tests drive it directly: the bus events it follows
    (signal.* from intake, route.* from router), the API operations
    (plans.open, plans.action_add, ...), and the deadline checks
    (overdue actions, stale plans). Each function runs inside a store
    transaction the caller opened; every event it raises goes through the
    emit callback in that same transaction (the server wires it to
    relais_pub_append), so a state change and its event commit together.
    @discuss
    Time: operations and checks take "now" from the caller (the server
    reads relais_clock_now ()); effects of bus events are stamped with the
    event's own ts, so replaying the same log gives the same plans.
    Attachment rule (proto/plans.md §2): a level-2 report joins the OPEN
    plan (ouvert or en_cours) that already holds a report on the same
    place - same place.cell, or, when the report has no cell, the same
    arrondissement and place.kind - or sharing one of its person_refs.
    A report matching only a plan closed less than reopen_window ago
    reopens that plan. Otherwise a new plan opens.
    =========================================================================
*/
#ifndef PLANS_ENGINE_H_INCLUDED
#define PLANS_ENGINE_H_INCLUDED

#include <stdio.h>
#include "relais_config.h"
#include "relais_envelope.h"
#include "relais_store.h"

#define PLANS_ID_MAX        24          //  "PLAN-00000001", "SIG-00000001"
#define PLANS_PARTNER_MAX   64          //  a partner id or a structure id
#define PLANS_CELL_MAX      24
#define PLANS_SIGNALS_MAX   256         //  listed per plan (more are counted)
#define PLANS_ACTORS_MAX    32
#define PLANS_REFS_MAX      64
#define PLANS_ACTIONS_MAX   64
#define PLANS_REASONS_MAX   16
#define PLANS_BY_MAX        128
#define PLANS_FLAG_MAX      512         //  flag reason, bytes
#define PLANS_NOTE_MAX      2000        //  note text, bytes

typedef enum { PLANS_OUVERT, PLANS_EN_COURS, PLANS_CLOS, PLANS_STATES } plans_state_t;
typedef enum { PLANS_A_FAIRE, PLANS_A_EN_COURS, PLANS_FAIT, PLANS_ANNULE, PLANS_ASTATES } plans_astate_t;

extern const char *const plans_state_names [PLANS_STATES + 1];     //  NULL-terminated
extern const char *const plans_astate_names [PLANS_ASTATES + 1];   //  NULL-terminated
extern const char *const plans_kind_names [];       //  action kinds, NULL-terminated
extern const char *const plans_outcome_names [];    //  outcomes, NULL-terminated

typedef struct {
    uint32_t id;                            //  1, 2, ... within the plan
    int kind;                               //  index in plans_kind_names
    char owner [PLANS_PARTNER_MAX];
    uint64_t due;                           //  µs UTC
    int state;                              //  plans_astate_t
    uint64_t created_at, updated_at;
    bool overdue;                           //  plan.action_overdue raised for this due date
} plans_action_t;

typedef struct {
    char id [PLANS_ID_MAX];
    int state;                              //  plans_state_t
    int outcome;                            //  index in plans_outcome_names, -1: none
    char structure [PLANS_PARTNER_MAX];     //  with outcome mise_a_l_abri, "" when none
    uint32_t level, arrondissement;
    char place_kind [24];
    char cell [PLANS_CELL_MAX];
    char reasons [PLANS_REASONS_MAX][32];
    size_t reason_count;
    char signals [PLANS_SIGNALS_MAX][PLANS_ID_MAX];
    size_t signal_count;
    uint64_t signal_total;                  //  reports attached, listed or not
    char actors [PLANS_ACTORS_MAX][PLANS_PARTNER_MAX];
    size_t actor_count;
    char refs [PLANS_REFS_MAX][32];
    size_t ref_count;
    plans_action_t actions [PLANS_ACTIONS_MAX];
    size_t action_count;
    bool flagged;
    char flag_reason [PLANS_FLAG_MAX + 1];  //  stays in the store: never on the bus
    uint64_t opened_at, updated_at, closed_at;
    uint64_t last_activity;                 //  µs of the last change
    uint64_t stale_mark;                    //  last_activity for which plan.stale was raised
    uint64_t history;                       //  entries in the plan's history
} plans_plan_t;

//  Raise one event inside txn (the server: relais_pub_append). body is an
//  encoded msgpack map. Returns 0 or a store error (the txn is aborted).
typedef int (plans_emit_fn) (relais_txn_t *txn, const char *type, const char *key,
                             const char *corr, uint64_t ts, const void *body,
                             size_t size, void *arg);

typedef struct {
    uint64_t reopen_window_us;              //  a report reopens a plan closed less than this ago
    uint64_t stale_after_us;                //  plan.stale after this quiet time (0: never)
} plans_rules_t;

//  Key table of the "plans" section (endpoints, store, deadlines).
extern const relais_config_key_t plans_keys [];

//  Read the rules from the "plans" section.
void
    plans_rules_load (plans_rules_t *rules, relais_config_t *config);

//  Names of the databases the engine needs in the service's store (pass
//  them to relais_store_new), NULL-terminated.
extern const char *const plans_dbs [];

typedef struct plans_engine_t plans_engine_t;

//  Create an engine over store (opened with plans_dbs). Returns NULL when
//  the store lacks a database or memory is short.
plans_engine_t *
    plans_engine_new (relais_store_t *store, const plans_rules_t *rules,
                      plans_emit_fn *emit, void *arg);

//  NULL-safe; nulls *self_p.
void
    plans_engine_destroy (plans_engine_t **self_p);

//  Apply one event of intake (signal.*) or router (route.*) inside txn.
//  Returns 0, RELAIS_EMALFORMED when the event cannot be applied (skipped
//  and counted by the subscriber), or a store error.
int
    plans_engine_apply (plans_engine_t *self, relais_txn_t *txn, const char *topic,
                        const relais_envelope_t *env);

//  True when op names a read-only operation (plans.get, plans.list,
//  plans.review) that may run in a read transaction.
bool
    plans_engine_op_reads (const char *op);

//  With CURVE on, the identity of the caller of the next plans_engine_op
//  (its certificate's name): it replaces the request's "by". NULL: off.
void
    plans_engine_set_caller (plans_engine_t *self, const char *name);

//  Run one API request (a decoded map whose "op" the caller checked is a
//  str) inside txn at time now. Writes the success reply (without rid: the
//  server adds it) into out, which it empties first, so the store may run
//  it again. Returns 0 (success), a negative store error, or RELAIS_ECONFLICT
//  ... (any negative relais code) with err set: the caller aborts the txn
//  and sends err. op_name is the op as text.
int
    plans_engine_op (plans_engine_t *self, relais_txn_t *txn, const char *op_name,
                     const msgpack_object *req, uint64_t now, msgpack_sbuffer *out,
                     relais_error_t *err);

//  Raise what is due at now: plan.action_overdue for each pending action
//  whose due date has passed (once per due date), plan.stale for each
//  open plan quiet for stale_after (once per quiet period). Sets *next_us
//  to the earliest future due date (0: none). Returns 0 or a store error.
int
    plans_engine_tick (plans_engine_t *self, relais_txn_t *txn, uint64_t now,
                       uint64_t *next_us);

//  Earliest pending due date (0: none), in a read or write txn.
int
    plans_engine_next_due (plans_engine_t *self, relais_txn_t *txn, uint64_t *due);

//  Load one plan. Returns 0, RELAIS_ENOTFOUND, RELAIS_EMALFORMED (damaged
//  record) or a store error.
int
    plans_engine_load (plans_engine_t *self, relais_txn_t *txn, const char *id,
                       plans_plan_t *plan);

//  Print every plan, one JSON object a line ({"plan": ..., "history": [...]}),
//  in id order. Returns 0 or a store error.
int
    plans_engine_dump (plans_engine_t *self, relais_txn_t *txn, FILE *out);

//  Counters.
typedef struct {
    uint64_t opened, attached, reopened, closed, overdue, stale, ops, op_errors;
} plans_stats_t;
void
    plans_engine_stats (plans_engine_t *self, plans_stats_t *stats);

//  State-machine checks (pure). Return true when from -> to is allowed;
//  otherwise write into allowed the comma-separated targets that are.
bool
    plans_state_allowed (int from, int to, char *allowed, size_t size);
bool
    plans_astate_allowed (int from, int to, char *allowed, size_t size);

//  Erasure and retention of operators' free text (proto/privacy.md): the
//  "text" of history entries (notes, flags) and the plan's flag_reason are
//  removed; the entries, their kind, time and author stay.
typedef struct {
    const char *person;                     //  erase: this person_ref; NULL: purge
    uint64_t closed_before;                 //  purge: plans closed at or before (µs)
    char (*ids) [PLANS_ID_MAX];             //  the plans concerned, in id order
    size_t count, cap;
    uint64_t texts;                         //  texts found (pick) or removed (apply)
} plans_scrub_t;

//  Find the plans a scrub concerns, in a read or write txn: erase, every
//  plan whose person_refs hold sc->person; purge, every closed plan with
//  closed_at <= sc->closed_before that still holds a text. Fills ids,
//  count and texts (how many texts they hold). Returns 0 or a store error
//  (-ENOMEM when memory is short).
int
    plans_engine_scrub_pick (plans_engine_t *self, relais_txn_t *txn, plans_scrub_t *sc);

//  Remove the texts of the plans sc->ids inside a write txn; sets texts to
//  how many were removed. Changes no other field and raises no event.
//  Returns 0 or a store error.
int
    plans_engine_scrub_apply (plans_engine_t *self, relais_txn_t *txn, plans_scrub_t *sc);

//  Free what pick allocated (ids); NULL-safe on its fields.
void
    plans_scrub_release (plans_scrub_t *sc);

#endif
