/*  =========================================================================
    sim_model - a deterministic generator of realistic Paris reports

    @header
    Produces the requests a population of producers would send to intake:
    mostly {op: "submit", idem, signal}, sometimes {op: "update", idem, id,
    changes} and {op: "close", idem, id, reason} on reports that intake has
    already acknowledged. Everything comes from its own PRNG (splitmix64
    seeding xoshiro256**) and integer arithmetic, never rand () nor the wall
    clock, so a seed gives the same bytes on any machine. The mix follows
    DOMAIN.md: the 115 reports most, then the cellules of the 20
    arrondissements, maraudes, associations, mairies, now and then a
    riverain or a cabinet; isolated men most often; more reports in the
    north and east of Paris; encampments with tent counts; repeat reports
    on the same place and person (about 10%).
    @discuss
    Determinism. The n-th submit (idem "sim-<seed>-<start s>-<n>") is a pure
    function of (seed, scenario, start_us, rate, n): its content and its
    simulated time come from a stream that updates and closes never touch.
    An update or close is planned when its report is generated, and its
    content comes from a PRNG of its own (seed, n); only the moment it is
    emitted depends on when sim_model_acked () tells the id. So the whole
    stream is byte-identical for a seed whenever acks arrive in the same
    order - always with sim_model_self_ack (the --dry-run mode, ids
    "SIG-DRY-<n>"), and against a fresh intake answering in order.
    Time. observed_at = start_us + simulated time - a reporting delay (0 to
    45 minutes). Simulated time advances by gap_us at each submit: about
    1/rate seconds, shaped by the scenario (cold-snap triples the rate once
    the plan starts), which is also how long the CLI waits before sending.
    Ground truth: sim_model_truth () counts what was generated, and
    sim_model_personal () lists every personal string (names, phones,
    contacts, addresses, summaries, SIAO ids, escalation reasons) so that a
    test can check none of them ever reaches the broadcast bus.
    =========================================================================
*/
#ifndef SIM_MODEL_H_INCLUDED
#define SIM_MODEL_H_INCLUDED

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include "relais_signal.h"

typedef struct _sim_model_t sim_model_t;

typedef enum {
    SIM_OP_SUBMIT, SIM_OP_UPDATE, SIM_OP_CLOSE
} sim_op_t;

#define SIM_IDEM_MAX    95
#define SIM_ID_MAX      63

//  What one request is about, for the CLI's pacing and accounting and for
//  tests. Only the fields of its op are meaningful.
typedef struct {
    sim_op_t op;
    uint64_t index;                     //  1-based position in the stream
    uint64_t n;                         //  the report: its submit number
    char idem [SIM_IDEM_MAX + 1];
    char id [SIM_ID_MAX + 1];           //  update/close: the report's SIG id
    uint64_t gap_us;                    //  wait this long before sending (0 for
                                        //  updates and closes)
    uint64_t sim_us;                    //  simulated time since start
    //  submit: the report's main facts
    uint64_t observed_at;
    uint32_t arrondissement;
    relais_source_kind_t source_kind;
    relais_place_kind_t place_kind;
    uint32_t persons, minors, pregnant, tents;
    uint32_t publics;                   //  mask of relais_public_t
    uint32_t needs;                     //  mask of relais_need_t
    bool repeat;                        //  same place and people as an earlier one
    bool camp;                          //  part of the encampment storyline
    char address [RELAIS_SIG_ADDRESS_MAX + 1];      //  "" when none sent
    //  close: the closure code
    const char *reason;
} sim_event_info_t;

//  What the model generated so far (submits only, except updates/closes).
typedef struct {
    uint64_t requests, submits, updates, closes;
    uint64_t by_public [RELAIS_PUBLIC_COUNT];       //  reports naming that public
    uint64_t by_arrondissement [21];                //  index 1..20
    uint64_t by_source [RELAIS_SOURCE_COUNT];
    uint64_t by_place [RELAIS_PLACE_COUNT];
    uint64_t with_minors, with_pregnant, encampments;   //  encampment: tents > 3
    uint64_t with_geo, with_address, with_people, sensitive, escalate;
    uint64_t repeats, mise_a_l_abri;
    uint64_t persons;                               //  sum over reports
} sim_truth_t;

//  Create a model for scenario "day", "cold-snap" or "encampment"; start_us
//  is the simulated start (µs UTC; the CLI passes the current time).
//  Returns NULL for an unknown scenario or out of memory.
sim_model_t *
    sim_model_new (uint64_t seed, const char *scenario, uint64_t start_us);

//  Destroy the model; NULL-safe, nulls *self_p.
void
    sim_model_destroy (sim_model_t **self_p);

//  Nominal rate in requests per second (default 5): sets the mean gap_us
//  and so the pace of simulated time. Call before the first sim_model_next.
void
    sim_model_set_rate (sim_model_t *self, double rate);

//  Acknowledge every submit at once with a fake id "SIG-DRY-<n>" (dry run).
void
    sim_model_self_ack (sim_model_t *self, bool enable);

//  Write the next request (one msgpack map) into request, which is reset
//  first, and describe it in info (may be NULL). Returns 0.
int
    sim_model_next (sim_model_t *self, msgpack_sbuffer *request,
                    sim_event_info_t *info);

//  Intake accepted submit n and named it id: its updates and close may now
//  be emitted. Returns 0, or -1 when n is no report with follow-ups (then
//  nothing is needed; not an error for the caller).
int
    sim_model_acked (sim_model_t *self, uint64_t n, const char *id);

//  Intake refused submit n for good: drop its planned updates and close.
void
    sim_model_failed (sim_model_t *self, uint64_t n);

//  Updates and closes planned but not emitted yet.
size_t
    sim_model_pending (sim_model_t *self);

//  The ground truth so far.
const sim_truth_t *
    sim_model_truth (sim_model_t *self);

//  Number of distinct personal strings generated so far, and the i-th one
//  (0 <= i < count; stays valid until the model is destroyed).
size_t
    sim_model_personal_count (sim_model_t *self);
const char *
    sim_model_personal (sim_model_t *self, size_t index);

//  The known scenarios, NULL-terminated.
extern const char *const sim_model_scenarios [];

#endif
