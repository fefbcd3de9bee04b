/*  =========================================================================
    router_rules - which partners must act on a qualified report

    @header
    A rule is a name, conditions and partners, read from the deployment
    file (router/rules/<name>/...), in file order. Every condition given
    must hold (AND); a list condition holds when the report has ANY of the
    listed values. A rule that holds assigns the report to each of its
    partners, with the rule's acknowledgement deadline and fallback. The
    partner "cellule-{arr}" names the arrondissement cell of the report
    ("cellule-18"). Without a rules folder the router uses DOMAIN.md's
    defaults (router_rules_defaults).
    @discuss
    Conditions: level (1 or 2), publics, place (place kinds), arrondissements
    (numbers 1..20), needs, urgency, source (source kinds), reasons (intake's
    level-2 reasons), tents_min, hours ("8-20": the local hour of routing is
    in [8, 20); "22-6" wraps). Lists are separated by spaces or commas.
    =========================================================================
*/
#ifndef ROUTER_RULES_H_INCLUDED
#define ROUTER_RULES_H_INCLUDED

#include "relais_config.h"
#include "relais_signal.h"

#define ROUTER_RULES_MAX        64
#define ROUTER_NAME_MAX         32          //  rule and partner names
#define ROUTER_RULE_PARTNERS    8
#define ROUTER_MATCH_MAX        32          //  distinct partners of one report
#define ROUTER_WHY_MAX          160

//  What the rules look at: intake's public view of a report
typedef struct {
    uint32_t level;                 //  1 or 2
    uint32_t reasons;               //  mask of router_reason_names
    uint32_t publics;               //  mask of relais_public_t
    uint32_t needs;                 //  mask of relais_need_t
    int place_kind;                 //  relais_place_kind_t
    int urgency;                    //  relais_urgency_t
    int source_kind;                //  relais_source_kind_t
    uint32_t arrondissement;        //  1..20
    uint32_t tents, minors, pregnant, persons;
    bool closed;
} router_report_t;

extern const char *const router_reason_names [];
#define ROUTER_REASON_COUNT 10

typedef struct {
    char name [ROUTER_NAME_MAX];
    uint32_t level;                 //  0: any
    uint32_t publics, needs, reasons;       //  0: any
    uint32_t places, urgencies, sources;    //  masks, 0: any
    uint32_t arrondissements;       //  bit n = arrondissement n; 0: any
    uint32_t tents_min;             //  0: any
    int hour_from, hour_to;         //  -1: any hour
    char partners [ROUTER_RULE_PARTNERS][ROUTER_NAME_MAX];
    size_t partner_count;
    uint64_t deadline_us;           //  acknowledgement deadline
    char fallback [ROUTER_NAME_MAX];    //  "" : none
} router_rule_t;

typedef struct {
    router_rule_t rules [ROUTER_RULES_MAX];
    size_t count;
    char fallback [ROUTER_NAME_MAX];    //  router/fallback: used when a rule names none
    uint64_t deadline_us;           //  router/deadline: used when a rule names none
} router_rules_t;

//  One assignment the rules decided
typedef struct {
    char partner [ROUTER_NAME_MAX];
    char rule [ROUTER_NAME_MAX];
    char fallback [ROUTER_NAME_MAX];
    uint64_t deadline_us;
} router_match_t;

//  Keys of the router section that describe rules (for relais_config_declare).
extern const relais_config_key_t router_rules_keys [];

//  DOMAIN.md's defaults for Paris (fallback "mus", deadline 2h; 30 min for
//  level 2 partners).
void
    router_rules_defaults (router_rules_t *rules);

//  Load the rules of a declared configuration (section "router"). Returns 0,
//  or RELAIS_ECONFIG with why = "router/rules/<name>/<key>: <reason>".
int
    router_rules_load (router_rules_t *rules, relais_config_t *config,
                       char *why, size_t why_size);

//  Evaluate: fill matches (distinct partners, first rule wins) and return
//  their count. hour is the local hour (0..23) of routing.
size_t
    router_rules_eval (const router_rules_t *rules, const router_report_t *report,
                       int hour, router_match_t *matches, size_t max);

//  Why rule i does or does not hold: true when it holds; why gets
//  "holds" or the first condition that fails ("level: report is 1, rule wants 2").
bool
    router_rules_explain (const router_rules_t *rules, size_t i,
                          const router_report_t *report, int hour,
                          char *why, size_t size);

//  Fill report from a decoded public view (the body of signal.created, or a
//  "signal" map with level/reasons). Returns 0 or RELAIS_EMALFORMED.
int
    router_report_from_view (const msgpack_object *view, router_report_t *report);

//  Fill report from a parsed full signalement plus intake's verdict.
void
    router_report_from_signal (const relais_signal_t *sig, uint32_t level,
                               uint32_t reasons, router_report_t *report);

//  Apply the "changes" map of signal.updated (public view keys) plus its
//  level and reasons to report.
void
    router_report_apply_changes (router_report_t *report, const msgpack_object *body);

//  Expand "cellule-{arr}" for report into out.
void
    router_partner_expand (const char *partner, const router_report_t *report,
                           char *out, size_t size);

#endif
