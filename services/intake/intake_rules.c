/*  =========================================================================
    intake_rules - level 1 / level 2 qualification of a signalement
    =========================================================================
*/
#include "intake_rules.h"

const char *const intake_reason_names [INTAKE_REASON_COUNT] = {
    "campement", "mineurs", "grossesse", "domaine_municipal",
    "grande_vulnerabilite", "sensible", "transfert_elu", "escalade",
    "repetition_lieu", "repetition_personne"
};

const relais_config_key_t intake_rules_keys [] = {
    { "level2/tents_over", "3", relais_check_uint, "campement when a report counts more tents than this" },
    { "level2/minors", "true", relais_check_bool, "minors (count or public) make level 2" },
    { "level2/pregnancy", "true", relais_check_bool, "pregnant women make level 2" },
    { "level2/municipal", "true", relais_check_bool, "people on municipal property (UASA) make level 2" },
    { "level2/vulnerability", "true", relais_check_bool, "great vulnerability makes level 2" },
    { "level2/sensitive", "true", relais_check_bool, "politically or publicly sensitive reports are level 2" },
    { "level2/elected_transfer", "true", relais_check_bool, "reports from a mairie or a cabinet are level 2" },
    { "level2/escalation", "true", relais_check_bool, "an explicit escalation by a cell makes level 2" },
    { "level2/repeat_window", "7d", relais_check_duration, "window for repeat reports (0 turns repeat rules off)" },
    { "level2/repeat_count", "3", relais_check_uint, "the Nth report on a place or person within the window is level 2" },
    { NULL, NULL, NULL, NULL }
};

void
intake_rules_defaults (intake_rules_t *rules)
{
    rules->tents_over = 3;
    rules->minors = rules->pregnancy = rules->municipal = true;
    rules->vulnerability = rules->sensitive = true;
    rules->elected_transfer = rules->escalation = true;
    rules->repeat_window_us = 7ULL * 24 * 3600 * 1000000;
    rules->repeat_count = 3;
}

void
intake_rules_load (intake_rules_t *rules, relais_config_t *config)
{
    intake_rules_defaults (rules);
    rules->tents_over = (uint32_t) relais_config_int (config, "intake/level2/tents_over", 3);
    rules->minors = relais_config_bool (config, "intake/level2/minors", true);
    rules->pregnancy = relais_config_bool (config, "intake/level2/pregnancy", true);
    rules->municipal = relais_config_bool (config, "intake/level2/municipal", true);
    rules->vulnerability = relais_config_bool (config, "intake/level2/vulnerability", true);
    rules->sensitive = relais_config_bool (config, "intake/level2/sensitive", true);
    rules->elected_transfer = relais_config_bool (config, "intake/level2/elected_transfer", true);
    rules->escalation = relais_config_bool (config, "intake/level2/escalation", true);
    rules->repeat_window_us = relais_config_duration_ms (config, "intake/level2/repeat_window",
                                                         7ULL * 24 * 3600 * 1000) * 1000;
    rules->repeat_count = (uint32_t) relais_config_int (config, "intake/level2/repeat_count", 3);
}

uint32_t
intake_rules_qualify (const intake_rules_t *rules, const relais_signal_t *sig,
                      uint32_t repeat_flags)
{
    uint32_t reasons = 0;
    if (sig->tents > rules->tents_over)
        reasons |= 1u << INTAKE_REASON_CAMPEMENT;
    if (rules->minors
    && (sig->minors > 0
        || (sig->publics & (1u << RELAIS_PUBLIC_MINEUR_NON_ACCOMPAGNE))
        || (sig->publics & (1u << RELAIS_PUBLIC_ENFANT))))
        reasons |= 1u << INTAKE_REASON_MINEURS;
    if (rules->pregnancy
    && (sig->pregnant > 0 || (sig->publics & (1u << RELAIS_PUBLIC_FEMME_ENCEINTE))))
        reasons |= 1u << INTAKE_REASON_GROSSESSE;
    if (rules->municipal && sig->place_kind == RELAIS_PLACE_DOMAINE_MUNICIPAL)
        reasons |= 1u << INTAKE_REASON_DOMAINE_MUNICIPAL;
    if (rules->vulnerability && (sig->publics & (1u << RELAIS_PUBLIC_GRANDE_VULNERABILITE)))
        reasons |= 1u << INTAKE_REASON_GRANDE_VULNERABILITE;
    if (rules->sensitive && sig->sensitive)
        reasons |= 1u << INTAKE_REASON_SENSIBLE;
    if (rules->elected_transfer
    && (sig->source_kind == RELAIS_SOURCE_MAIRIE || sig->source_kind == RELAIS_SOURCE_CABINET))
        reasons |= 1u << INTAKE_REASON_TRANSFERT_ELU;
    if (rules->escalation && sig->escalate)
        reasons |= 1u << INTAKE_REASON_ESCALADE;
    return reasons | intake_rules_repeats (rules, repeat_flags);
}

uint32_t
intake_rules_repeats (const intake_rules_t *rules, uint32_t repeat_flags)
{
    uint32_t reasons = 0;
    if (rules->repeat_window_us && rules->repeat_count) {
        if (repeat_flags & INTAKE_REPEAT_PLACE)
            reasons |= 1u << INTAKE_REASON_REPETITION_LIEU;
        if (repeat_flags & INTAKE_REPEAT_PERSON)
            reasons |= 1u << INTAKE_REASON_REPETITION_PERSONNE;
    }
    return reasons;
}
