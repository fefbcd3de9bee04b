/*  =========================================================================
    intake_rules - level 1 / level 2 qualification of a signalement

    @header
    DOMAIN.md's criteria, each one switchable and tunable from the
    deployment file ("intake/level2/..."): an encampment of more than N
    tents, minors, pregnancy, municipal property, great vulnerability,
    sensitivity, a transfer from a town hall or a cabinet, an explicit
    escalation, and repeat reports on the same place or the same person
    within a window. A report is level 2 when any reason holds; the reasons
    travel with it on the bus.
    @discuss
    Repeat detection needs history, which the server keeps in its store;
    it passes the result in as repeat flags.
    =========================================================================
*/
#ifndef INTAKE_RULES_H_INCLUDED
#define INTAKE_RULES_H_INCLUDED

#include "relais_config.h"
#include "relais_signal.h"

typedef enum {
    INTAKE_REASON_CAMPEMENT, INTAKE_REASON_MINEURS, INTAKE_REASON_GROSSESSE,
    INTAKE_REASON_DOMAINE_MUNICIPAL, INTAKE_REASON_GRANDE_VULNERABILITE,
    INTAKE_REASON_SENSIBLE, INTAKE_REASON_TRANSFERT_ELU, INTAKE_REASON_ESCALADE,
    INTAKE_REASON_REPETITION_LIEU, INTAKE_REASON_REPETITION_PERSONNE,
    INTAKE_REASON_COUNT
} intake_reason_t;

extern const char *const intake_reason_names [INTAKE_REASON_COUNT];

#define INTAKE_REPEAT_PLACE   (1u << 0)
#define INTAKE_REPEAT_PERSON  (1u << 1)

typedef struct {
    uint32_t tents_over;            //  campement when tents > this
    bool minors;
    bool pregnancy;
    bool municipal;
    bool vulnerability;
    bool sensitive;
    bool elected_transfer;
    bool escalation;
    uint64_t repeat_window_us;      //  0: repeat rules off
    uint32_t repeat_count;          //  level 2 from the Nth report within the window
} intake_rules_t;

//  The key table of "intake/level2/..." (for relais_config_declare).
extern const relais_config_key_t intake_rules_keys [];

//  DOMAIN.md's defaults.
void
    intake_rules_defaults (intake_rules_t *rules);

//  Read the rules from a declared configuration.
void
    intake_rules_load (intake_rules_t *rules, relais_config_t *config);

//  Return the mask of reasons (bit i = intake_reason_t i) that hold for sig,
//  given the repeat flags the caller found. Level 2 when the mask is not 0.
uint32_t
    intake_rules_qualify (const intake_rules_t *rules, const relais_signal_t *sig,
                          uint32_t repeat_flags);

//  The reasons that repeat_flags alone give (the repetition ones, when the
//  rules count repeats): intake_rules_qualify (rules, sig, flags) is
//  intake_rules_qualify (rules, sig, 0) | intake_rules_repeats (rules, flags).
uint32_t
    intake_rules_repeats (const intake_rules_t *rules, uint32_t repeat_flags);

#endif
