/*  =========================================================================
    capacity_state - shelter structures, occupancy, reservations, alerts,
    forecasts and plan matching, all inside store transactions

    @header
    The whole state of the capacity service lives in its LMDB store and is
    read and written only inside the transaction it is given, so a batch of
    requests, a subscriber's event or a timer tick is one atomic change
    with its events (the caller's emit function appends them to the log in
    the same transaction). No state is kept in memory between calls: the
    store may run a write callback again after growing its map, and a
    restart resumes from what was committed - alerts raised, reservations
    held, forecast due date, plan checks pending.
    @discuss
    Requests are decoded msgpack maps (from relais_msg_decode); replies
    are packed whole (ok map with rid and idem echoed) or returned as a
    relais_error_t. Ops that carry an idem are applied once: the reply of
    the first application is stored with the idem and returned again with
    duplicate: true. See proto/capacity.md for the contract.
    =========================================================================
*/
#ifndef CAPACITY_STATE_H_INCLUDED
#define CAPACITY_STATE_H_INCLUDED

#include <stdio.h>
#include "relais_config.h"
#include "relais_envelope.h"
#include "relais_store.h"

#define CAPACITY_KINDS          6
#define CAPACITY_ID_MAX         63      //  structure, reservation, ref, plan ids
#define CAPACITY_OPERATOR_MAX   64
#define CAPACITY_IDEM_MAX       128
#define CAPACITY_DAY_US         86400000000ULL

//  hotel, sas, lima, chu, halte, 115 (index = kind)
extern const char *const capacity_kind_names [CAPACITY_KINDS];

//  The databases the service's store must open (NULL-terminated).
extern const char *const capacity_dbs [];

//  Key table of the "capacity" section, without the endpoints (the server
//  adds its own); structures/<id>/... and alerts/<kind>/... are patterns.
extern const relais_config_key_t capacity_state_keys [];

//  Append one event to the service's log inside txn (relais_pub_append in
//  the server, a recorder in tests). Returns 0 or a store error.
typedef int (capacity_emit_fn) (void *arg, relais_txn_t *txn, const char *type,
                                const char *key, const char *corr, uint64_t ts,
                                const void *body, size_t body_size);

//  Alert thresholds; 0 turns a rule off.
typedef struct {
    uint32_t free_below;            //  alert while free places < this
    uint32_t occupancy_above;       //  alert while (occupied + reserved) % > this
} capacity_thresholds_t;

typedef struct {
    capacity_thresholds_t kinds [CAPACITY_KINDS];   //  scope "kind"
    uint64_t hold_us;               //  a held reservation expires after this
    uint32_t window_days;           //  forecast window (days, >= 2)
    uint64_t forecast_every_us;     //  period of the daily forecast
    uint64_t match_window_us;       //  plan.closed <-> entry matching window
    capacity_emit_fn *emit;
    void *emit_arg;
} capacity_opts_t;

typedef struct _capacity_state_t capacity_state_t;

//  Fill opts from the configuration's "capacity" section (declared).
void
    capacity_opts_from_config (capacity_opts_t *opts, relais_config_t *config);

//  Create the state over opts (copied). config may be NULL; when given,
//  its capacity/structures/<id> sections are declared by
//  capacity_state_startup. Returns NULL when out of memory.
capacity_state_t *
    capacity_state_new (const capacity_opts_t *opts, relais_config_t *config);

//  Destroy; NULL-safe, nulls *self_p.
void
    capacity_state_destroy (capacity_state_t **self_p);

//  At start, in one transaction: declare the structures of the
//  configuration (events only for what is new or changed), re-evaluate
//  every alert against the current thresholds (raising or clearing what
//  changed while down), and set the first forecast due date if none is
//  stored. Returns 0, RELAIS_ECONFIG (a configured structure does not fit
//  its stored state, logged), or a store error.
int
    capacity_state_startup (capacity_state_t *self, relais_txn_t *txn, uint64_t now);

//  Handle one request (the decoded root object) inside txn, at time now.
//  On success, *reply holds the packed ok reply and *mutating says whether
//  it changed the store. On refusal, err is set (and nothing was written)
//  and 0 is returned. A negative return is storage trouble: the caller
//  aborts the transaction.
int
    capacity_state_request (capacity_state_t *self, relais_txn_t *txn,
                            const msgpack_object *request, uint64_t now,
                            msgpack_sbuffer *reply, relais_error_t *err);

//  True when the request names a mutating op (so a batch of reads can use
//  a read transaction). Unknown or malformed requests count as reads.
bool
    capacity_state_is_write (const msgpack_object *request);

//  Timed work due at now: expire held reservations, report plan checks
//  whose window ran out, publish the forecast when due. Returns 0 or a
//  store error.
int
    capacity_state_tick (capacity_state_t *self, relais_txn_t *txn, uint64_t now);

//  Earliest instant some timed work is due (reservation expiry, plan check
//  deadline, forecast), or UINT64_MAX.
uint64_t
    capacity_state_next_due (capacity_state_t *self, relais_txn_t *txn);

//  Apply one event of the plans service (only plan.closed matters).
//  Returns 0, RELAIS_EMALFORMED (skipped), or a store error.
int
    capacity_state_plan_event (capacity_state_t *self, relais_txn_t *txn,
                               const char *topic, const relais_envelope_t *env,
                               uint64_t now);

//  Print the whole state as JSON lines, in key order, without the event
//  log: structures, reservations, kind alerts, pending plan checks,
//  counters. Two stores that applied the same ops print the same text.
int
    capacity_state_dump (capacity_state_t *self, relais_txn_t *txn, FILE *out);

//  --- forecast, exposed for tests ---------------------------------------
//  Least-squares slope (per day) of the cumulative sum of net [0..days-1].
double
    capacity_forecast_slope (const int64_t *net, uint32_t days);

#endif
