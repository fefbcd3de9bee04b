/*  =========================================================================
    router_rules - which partners must act on a qualified report
    (see router_rules.h)
    =========================================================================
*/
#include "router_rules.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const router_reason_names [ROUTER_REASON_COUNT] = {
    "campement", "mineurs", "grossesse", "domaine_municipal",
    "grande_vulnerabilite", "sensible", "transfert_elu", "escalade",
    "repetition_lieu", "repetition_personne"
};

//  Value checks used by the key table, so that a bad value is refused at
//  declare time with its path; router_rules_load checks the same again
//  (and what needs several keys) and says where.
static bool s_check_publics (const char *v, char *why, size_t size);
static bool s_check_places (const char *v, char *why, size_t size);
static bool s_check_needs (const char *v, char *why, size_t size);
static bool s_check_urgency (const char *v, char *why, size_t size);
static bool s_check_sources (const char *v, char *why, size_t size);
static bool s_check_reasons (const char *v, char *why, size_t size);
static bool s_check_arrs (const char *v, char *why, size_t size);
static bool s_check_level (const char *v, char *why, size_t size);
static bool s_check_hours (const char *v, char *why, size_t size);
static bool s_check_partners (const char *v, char *why, size_t size);
static bool s_check_partner (const char *v, char *why, size_t size);

const relais_config_key_t router_rules_keys [] = {
    { "fallback", "mus", s_check_partner, "partner that takes what a rule's partner refused or left past its deadline" },
    { "deadline", "2h", relais_check_duration, "acknowledgement deadline when a rule gives none" },
    { "rules/*/level", NULL, s_check_level, "condition: level 1 or 2" },
    { "rules/*/publics", NULL, s_check_publics, "condition: any of these publics" },
    { "rules/*/place", NULL, s_check_places, "condition: any of these place kinds" },
    { "rules/*/arrondissements", NULL, s_check_arrs, "condition: any of these arrondissements (1..20)" },
    { "rules/*/needs", NULL, s_check_needs, "condition: any of these needs" },
    { "rules/*/urgency", NULL, s_check_urgency, "condition: any of these urgencies" },
    { "rules/*/source", NULL, s_check_sources, "condition: any of these source kinds" },
    { "rules/*/reasons", NULL, s_check_reasons, "condition: any of intake's level-2 reasons" },
    { "rules/*/tents_min", NULL, relais_check_uint, "condition: at least this many tents" },
    { "rules/*/hours", NULL, s_check_hours, "condition: local hour of routing in FROM-TO (e.g. 8-20, 22-6)" },
    { "rules/*/partners", NULL, s_check_partners, "partners that get the report (cellule-{arr}: the arrondissement cell)" },
    { "rules/*/deadline", NULL, relais_check_duration, "acknowledgement deadline of this rule's assignments" },
    { "rules/*/fallback", NULL, s_check_partner, "partner taking over on refusal or deadline (none: router/fallback)" },
    { NULL, NULL, NULL, NULL }
};

//  ---------------------------------------------------------------------------
//  Lists of names

static int
s_find (const char *const *table, int count, const char *name)
{
    for (int i = 0; i < count; i++)
        if (strcmp (table [i], name) == 0)
            return i;
    return -1;
}

//  Split value on spaces/commas; call fn for each word. Returns false (and
//  why) at the first word fn refuses, or when there is no word at all.
typedef bool (s_word_fn) (const char *word, void *arg, char *why, size_t size);

static bool
s_words (const char *value, s_word_fn *fn, void *arg, char *why, size_t size)
{
    char word [64];
    int words = 0;
    const char *p = value;
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        if (!*p)
            break;
        size_t n = 0;
        while (p [n] && p [n] != ' ' && p [n] != ',' && p [n] != '\t')
            n++;
        if (n >= sizeof word) {
            snprintf (why, size, "a name is longer than %zu bytes", sizeof word - 1);
            return false;
        }
        memcpy (word, p, n);
        word [n] = 0;
        p += n;
        if (!fn (word, arg, why, size))
            return false;
        words++;
    }
    if (words == 0) {
        snprintf (why, size, "empty list");
        return false;
    }
    return true;
}

typedef struct {
    const char *const *table;
    int count;
    const char *what;
    uint32_t mask;
} s_enum_t;

static bool
s_enum_word (const char *word, void *arg, char *why, size_t size)
{
    s_enum_t *e = (s_enum_t *) arg;
    int i = s_find (e->table, e->count, word);
    if (i < 0) {
        snprintf (why, size, "'%.40s' is not a known %s", word, e->what);
        return false;
    }
    e->mask |= 1u << i;
    return true;
}

static bool
s_parse_enum (const char *value, const char *const *table, int count, const char *what,
              uint32_t *mask, char *why, size_t size)
{
    s_enum_t e = { table, count, what, 0 };
    if (!s_words (value, s_enum_word, &e, why, size))
        return false;
    *mask = e.mask;
    return true;
}

static bool
s_arr_word (const char *word, void *arg, char *why, size_t size)
{
    char *end;
    long n = strtol (word, &end, 10);
    if (*end || n < 1 || n > 20) {
        snprintf (why, size, "'%.40s' is not an arrondissement (1..20)", word);
        return false;
    }
    *(uint32_t *) arg |= 1u << n;
    return true;
}

static bool
s_partner_ok (const char *word, char *why, size_t size)
{
    size_t n = strlen (word);
    if (n == 0 || n >= ROUTER_NAME_MAX) {
        snprintf (why, size, "a partner name has 1 to %d characters", ROUTER_NAME_MAX - 1);
        return false;
    }
    if (strcmp (word, "cellule-{arr}") == 0)
        return true;
    for (size_t i = 0; i < n; i++)
        if (!(islower ((unsigned char) word [i]) || isdigit ((unsigned char) word [i])
              || word [i] == '-' || word [i] == '_')) {
            snprintf (why, size, "'%.40s': a partner name is made of a-z, 0-9, - and _", word);
            return false;
        }
    return true;
}

typedef struct {
    router_rule_t *rule;
    size_t count;
} s_partners_t;

static bool
s_partner_word (const char *word, void *arg, char *why, size_t size)
{
    s_partners_t *p = (s_partners_t *) arg;
    if (!s_partner_ok (word, why, size))
        return false;
    if (p->count == ROUTER_RULE_PARTNERS) {
        snprintf (why, size, "at most %d partners per rule", ROUTER_RULE_PARTNERS);
        return false;
    }
    if (p->rule)
        snprintf (p->rule->partners [p->count], ROUTER_NAME_MAX, "%s", word);
    p->count++;
    return true;
}

static bool
s_parse_hours (const char *value, int *from, int *to, char *why, size_t size)
{
    int a, b, n = 0;
    if (sscanf (value, "%d-%d%n", &a, &b, &n) != 2 || value [n] != 0
    ||  a < 0 || a > 23 || b < 0 || b > 24 || a == b) {
        snprintf (why, size, "expected FROM-TO, hours 0..24, FROM != TO (e.g. 8-20 or 22-6)");
        return false;
    }
    *from = a;
    *to = b;
    return true;
}

static bool
s_check_publics (const char *v, char *why, size_t size)
{
    uint32_t m;
    return s_parse_enum (v, relais_public_names, RELAIS_PUBLIC_COUNT, "public", &m, why, size);
}
static bool
s_check_places (const char *v, char *why, size_t size)
{
    uint32_t m;
    return s_parse_enum (v, relais_place_kind_names, RELAIS_PLACE_COUNT, "place kind", &m, why, size);
}
static bool
s_check_needs (const char *v, char *why, size_t size)
{
    uint32_t m;
    return s_parse_enum (v, relais_need_names, RELAIS_NEED_COUNT, "need", &m, why, size);
}
static bool
s_check_urgency (const char *v, char *why, size_t size)
{
    uint32_t m;
    return s_parse_enum (v, relais_urgency_names, RELAIS_URGENCY_COUNT, "urgency", &m, why, size);
}
static bool
s_check_sources (const char *v, char *why, size_t size)
{
    uint32_t m;
    return s_parse_enum (v, relais_source_kind_names, RELAIS_SOURCE_COUNT, "source kind", &m, why, size);
}
static bool
s_check_reasons (const char *v, char *why, size_t size)
{
    uint32_t m;
    return s_parse_enum (v, router_reason_names, ROUTER_REASON_COUNT, "level-2 reason", &m, why, size);
}
static bool
s_check_arrs (const char *v, char *why, size_t size)
{
    uint32_t m = 0;
    return s_words (v, s_arr_word, &m, why, size);
}
static bool
s_check_level (const char *v, char *why, size_t size)
{
    if (strcmp (v, "1") && strcmp (v, "2")) {
        snprintf (why, size, "level is 1 or 2");
        return false;
    }
    return true;
}
static bool
s_check_hours (const char *v, char *why, size_t size)
{
    int a, b;
    return s_parse_hours (v, &a, &b, why, size);
}
static bool
s_check_partners (const char *v, char *why, size_t size)
{
    s_partners_t p = { NULL, 0 };
    return s_words (v, s_partner_word, &p, why, size);
}
static bool
s_check_partner (const char *v, char *why, size_t size)
{
    if (strcmp (v, "cellule-{arr}") != 0 && strchr (v, ' ')) {
        snprintf (why, size, "one partner name");
        return false;
    }
    return s_partner_ok (v, why, size);
}

//  ---------------------------------------------------------------------------

static router_rule_t *
s_rule (router_rules_t *rules, const char *name, uint64_t deadline_us, const char *partners)
{
    router_rule_t *r = &rules->rules [rules->count++];
    memset (r, 0, sizeof *r);
    snprintf (r->name, sizeof r->name, "%s", name);
    r->hour_from = r->hour_to = -1;
    r->deadline_us = deadline_us;
    snprintf (r->fallback, sizeof r->fallback, "mus");
    char why [64];
    s_partners_t p = { r, 0 };
    s_words (partners, s_partner_word, &p, why, sizeof why);
    r->partner_count = p.count;
    return r;
}

void
router_rules_defaults (router_rules_t *rules)
{
    memset (rules, 0, sizeof *rules);
    snprintf (rules->fallback, sizeof rules->fallback, "mus");
    const uint64_t min = 60ULL * 1000000;
    rules->deadline_us = 120 * min;
    router_rule_t *r;
    r = s_rule (rules, "uasa", 30 * min, "uasa");
    r->reasons = (1u << 3) | (1u << 4);             //  domaine_municipal, grande_vulnerabilite
    r = s_rule (rules, "protection_enfance", 30 * min, "sdppe");
    r->reasons = (1u << 1) | (1u << 2);             //  mineurs, grossesse
    r = s_rule (rules, "campement", 60 * min, "maraudes drihl");
    r->tents_min = 1;
    r = s_rule (rules, "famille_abri", 30 * min, "samu_social");
    r->publics = 1u << RELAIS_PUBLIC_FAMILLE;
    r->needs = 1u << RELAIS_NEED_MISE_A_L_ABRI;
    r = s_rule (rules, "niveau2", 30 * min, "mus");
    r->level = 2;
    r->fallback [0] = 0;                            //  MUS is the last resort
    r = s_rule (rules, "niveau1", 120 * min, "cellule-{arr}");
    r->level = 1;
}

typedef struct {
    router_rules_t *rules;
    relais_config_t *config;
    char *why;
    size_t size;
    int rc;
} s_load_t;

static const char *
s_get (s_load_t *ld, const char *rule, const char *key)
{
    char path [160];
    snprintf (path, sizeof path, "router/rules/%s/%s", rule, key);
    return relais_config_str (ld->config, path);
}

static void
s_fail (s_load_t *ld, const char *rule, const char *key, const char *reason)
{
    if (ld->rc == 0)
        snprintf (ld->why, ld->size, "router/rules/%s%s%s: %s", rule, key? "/": "", key? key: "", reason);
    ld->rc = RELAIS_ECONFIG;
}

static void
s_load_rule (const char *name, void *arg)
{
    s_load_t *ld = (s_load_t *) arg;
    if (ld->rc)
        return;
    router_rules_t *rules = ld->rules;
    if (strlen (name) >= ROUTER_NAME_MAX) {
        s_fail (ld, name, NULL, "a rule name has at most 31 characters");
        return;
    }
    if (rules->count == ROUTER_RULES_MAX) {
        s_fail (ld, name, NULL, "too many rules (at most 64)");
        return;
    }
    router_rule_t *r = &rules->rules [rules->count];
    memset (r, 0, sizeof *r);
    snprintf (r->name, sizeof r->name, "%s", name);
    r->hour_from = r->hour_to = -1;
    r->deadline_us = rules->deadline_us;
    snprintf (r->fallback, sizeof r->fallback, "%s", rules->fallback);
    char why [ROUTER_WHY_MAX];
    const char *v;
    struct { const char *key; const char *const *table; int count; const char *what; uint32_t *mask; } lists [] = {
        { "publics", relais_public_names, RELAIS_PUBLIC_COUNT, "public", &r->publics },
        { "place", relais_place_kind_names, RELAIS_PLACE_COUNT, "place kind", &r->places },
        { "needs", relais_need_names, RELAIS_NEED_COUNT, "need", &r->needs },
        { "urgency", relais_urgency_names, RELAIS_URGENCY_COUNT, "urgency", &r->urgencies },
        { "source", relais_source_kind_names, RELAIS_SOURCE_COUNT, "source kind", &r->sources },
        { "reasons", router_reason_names, ROUTER_REASON_COUNT, "level-2 reason", &r->reasons },
    };
    for (size_t i = 0; i < sizeof lists / sizeof lists [0]; i++)
        if ((v = s_get (ld, name, lists [i].key))
        &&  !s_parse_enum (v, lists [i].table, lists [i].count, lists [i].what,
                           lists [i].mask, why, sizeof why)) {
            s_fail (ld, name, lists [i].key, why);
            return;
        }
    if ((v = s_get (ld, name, "level"))) {
        if (!s_check_level (v, why, sizeof why)) {
            s_fail (ld, name, "level", why);
            return;
        }
        r->level = (uint32_t) atoi (v);
    }
    if ((v = s_get (ld, name, "arrondissements")) && !s_words (v, s_arr_word, &r->arrondissements, why, sizeof why)) {
        s_fail (ld, name, "arrondissements", why);
        return;
    }
    if ((v = s_get (ld, name, "tents_min"))) {
        char *end;
        unsigned long n = strtoul (v, &end, 10);
        if (*end || !*v || n > 1000000) {
            s_fail (ld, name, "tents_min", "expected a number of tents");
            return;
        }
        r->tents_min = (uint32_t) n;
    }
    if ((v = s_get (ld, name, "hours")) && !s_parse_hours (v, &r->hour_from, &r->hour_to, why, sizeof why)) {
        s_fail (ld, name, "hours", why);
        return;
    }
    if ((v = s_get (ld, name, "deadline"))) {
        uint64_t ms;
        if (!relais_parse_duration_ms (v, &ms) || ms == 0) {
            s_fail (ld, name, "deadline", "expected a duration above 0 (e.g. 30m, 2h)");
            return;
        }
        r->deadline_us = ms * 1000;
    }
    if ((v = s_get (ld, name, "fallback"))) {
        if (!s_check_partner (v, why, sizeof why)) {
            s_fail (ld, name, "fallback", why);
            return;
        }
        snprintf (r->fallback, sizeof r->fallback, "%s", v);
    }
    v = s_get (ld, name, "partners");
    if (!v) {
        s_fail (ld, name, "partners", "required: a rule must name at least one partner");
        return;
    }
    s_partners_t p = { r, 0 };
    if (!s_words (v, s_partner_word, &p, why, sizeof why)) {
        s_fail (ld, name, "partners", why);
        return;
    }
    r->partner_count = p.count;
    //  A fallback that is one of the rule's own partners would hand a
    //  refused report back to whoever refused it: none then.
    for (size_t i = 0; i < r->partner_count; i++)
        if (strcmp (r->partners [i], r->fallback) == 0)
            r->fallback [0] = 0;
    rules->count++;
}

int
router_rules_load (router_rules_t *rules, relais_config_t *config, char *why, size_t size)
{
    router_rules_defaults (rules);
    const char *fb = relais_config_str (config, "router/fallback");
    char reason [ROUTER_WHY_MAX];
    if (fb) {
        if (!s_check_partner (fb, reason, sizeof reason)) {
            snprintf (why, size, "router/fallback: %s", reason);
            return RELAIS_ECONFIG;
        }
        snprintf (rules->fallback, sizeof rules->fallback, "%s", fb);
    }
    rules->deadline_us = relais_config_duration_ms (config, "router/deadline", 7200000) * 1000;
    if (rules->deadline_us == 0) {
        snprintf (why, size, "router/deadline: must be above 0");
        return RELAIS_ECONFIG;
    }
    //  A rules folder in the file replaces every default rule
    s_load_t ld = { rules, config, why, size, 0 };
    size_t defaults = rules->count;
    router_rules_t *fresh = rules;
    fresh->count = 0;
    relais_config_children (config, "router/rules", s_load_rule, &ld);
    if (ld.rc)
        return ld.rc;
    if (fresh->count == 0) {
        //  No rules folder: the defaults, with the deployment's fallback
        char keep [ROUTER_NAME_MAX];
        snprintf (keep, sizeof keep, "%s", rules->fallback);
        router_rules_defaults (rules);
        snprintf (rules->fallback, sizeof rules->fallback, "%s", keep);
        for (size_t i = 0; i < rules->count; i++)
            if (rules->rules [i].fallback [0])
                snprintf (rules->rules [i].fallback, ROUTER_NAME_MAX, "%s", keep);
        (void) defaults;
    }
    return 0;
}

//  ---------------------------------------------------------------------------

static bool
s_hour_in (int hour, int from, int to)
{
    if (from < 0)
        return true;
    return from < to? (hour >= from && hour < to): (hour >= from || hour < to);
}

static void
s_mask_names (uint32_t mask, const char *const *table, int count, char *out, size_t size)
{
    size_t n = 0;
    out [0] = 0;
    for (int i = 0; i < count && n + 1 < size; i++)
        if (mask & (1u << i))
            n += (size_t) snprintf (out + n, size - n, "%s%s", n? ",": "", table [i]);
    if (n == 0)
        snprintf (out, size, "none");
}

bool
router_rules_explain (const router_rules_t *rules, size_t i, const router_report_t *rp,
                      int hour, char *why, size_t size)
{
    const router_rule_t *r = &rules->rules [i];
    char have [96], want [96];
#define S_LIST(field, table, count, label) \
    if (r->field && !(r->field & rp->field)) { \
        s_mask_names (rp->field, table, count, have, sizeof have); \
        s_mask_names (r->field, table, count, want, sizeof want); \
        snprintf (why, size, label ": report has %s, rule wants any of %s", have, want); \
        return false; \
    }
    if (r->level && r->level != rp->level) {
        snprintf (why, size, "level: report is %u, rule wants %u", rp->level, r->level);
        return false;
    }
    S_LIST (reasons, router_reason_names, ROUTER_REASON_COUNT, "reasons")
    S_LIST (publics, relais_public_names, RELAIS_PUBLIC_COUNT, "publics")
    S_LIST (needs, relais_need_names, RELAIS_NEED_COUNT, "needs")
#undef S_LIST
#define S_ONE(field, value, table, count, label) \
    if (r->field && !(r->field & (1u << (value)))) { \
        s_mask_names (r->field, table, count, want, sizeof want); \
        snprintf (why, size, label ": report has %s, rule wants any of %s", table [value], want); \
        return false; \
    }
    S_ONE (places, rp->place_kind, relais_place_kind_names, RELAIS_PLACE_COUNT, "place")
    S_ONE (urgencies, rp->urgency, relais_urgency_names, RELAIS_URGENCY_COUNT, "urgency")
    S_ONE (sources, rp->source_kind, relais_source_kind_names, RELAIS_SOURCE_COUNT, "source")
#undef S_ONE
    if (r->arrondissements && !(r->arrondissements & (1u << rp->arrondissement))) {
        snprintf (why, size, "arrondissements: report is in the %u, not in the rule's list", rp->arrondissement);
        return false;
    }
    if (r->tents_min && rp->tents < r->tents_min) {
        snprintf (why, size, "tents_min: report counts %u tents, rule wants at least %u", rp->tents, r->tents_min);
        return false;
    }
    if (!s_hour_in (hour, r->hour_from, r->hour_to)) {
        snprintf (why, size, "hours: it is %dh, rule holds from %dh to %dh", hour, r->hour_from, r->hour_to);
        return false;
    }
    snprintf (why, size, "holds");
    return true;
}

void
router_partner_expand (const char *partner, const router_report_t *report, char *out, size_t size)
{
    if (strcmp (partner, "cellule-{arr}") == 0)
        snprintf (out, size, "cellule-%u", report->arrondissement);
    else
        snprintf (out, size, "%s", partner);
}

size_t
router_rules_eval (const router_rules_t *rules, const router_report_t *report, int hour,
                   router_match_t *matches, size_t max)
{
    size_t n = 0;
    char why [ROUTER_WHY_MAX];
    for (size_t i = 0; i < rules->count; i++) {
        const router_rule_t *r = &rules->rules [i];
        if (!router_rules_explain (rules, i, report, hour, why, sizeof why))
            continue;
        for (size_t p = 0; p < r->partner_count; p++) {
            char partner [ROUTER_NAME_MAX];
            router_partner_expand (r->partners [p], report, partner, sizeof partner);
            bool seen = false;
            for (size_t k = 0; k < n && !seen; k++)
                seen = strcmp (matches [k].partner, partner) == 0;
            if (seen || n == max)
                continue;
            router_match_t *m = &matches [n++];
            snprintf (m->partner, sizeof m->partner, "%s", partner);
            snprintf (m->rule, sizeof m->rule, "%s", r->name);
            router_partner_expand (r->fallback, report, m->fallback, sizeof m->fallback);
            if (strcmp (m->fallback, partner) == 0)
                m->fallback [0] = 0;
            m->deadline_us = r->deadline_us;
        }
    }
    return n;
}

//  ---------------------------------------------------------------------------
//  Reports from the bus

static uint32_t
s_mask_of (const msgpack_object *array, const char *const *table, int count)
{
    uint32_t mask = 0;
    if (!array || array->type != MSGPACK_OBJECT_ARRAY)
        return 0;
    for (uint32_t i = 0; i < array->via.array.size; i++) {
        char name [48];
        if (relais_msg_str_copy (&array->via.array.ptr [i], name, sizeof name) >= 0) {
            int k = s_find (table, count, name);
            if (k >= 0)
                mask |= 1u << k;
        }
    }
    return mask;
}

static int
s_enum_of (const msgpack_object *o, const char *const *table, int count, int fallback)
{
    char name [48];
    if (relais_msg_str_copy (o, name, sizeof name) < 0)
        return fallback;
    int k = s_find (table, count, name);
    return k < 0? fallback: k;
}

static void
s_uint (const msgpack_object *map, const char *key, uint32_t *out)
{
    uint64_t v;
    if (relais_msg_uint (relais_msg_get (map, key), &v) && v <= UINT32_MAX)
        *out = (uint32_t) v;
}

//  Fields of the public view present in map (a whole view, or changes)
static void
s_apply_view (router_report_t *rp, const msgpack_object *map)
{
    const msgpack_object *o;
    if ((o = relais_msg_get (map, "source")))
        rp->source_kind = s_enum_of (relais_msg_get (o, "kind"), relais_source_kind_names,
                                     RELAIS_SOURCE_COUNT, rp->source_kind);
    if ((o = relais_msg_get (map, "place"))) {
        s_uint (o, "arrondissement", &rp->arrondissement);
        rp->place_kind = s_enum_of (relais_msg_get (o, "kind"), relais_place_kind_names,
                                    RELAIS_PLACE_COUNT, rp->place_kind);
    }
    if ((o = relais_msg_get (map, "publics")))
        rp->publics = s_mask_of (o, relais_public_names, RELAIS_PUBLIC_COUNT);
    if ((o = relais_msg_get (map, "needs")))
        rp->needs = s_mask_of (o, relais_need_names, RELAIS_NEED_COUNT);
    if ((o = relais_msg_get (map, "urgency")))
        rp->urgency = s_enum_of (o, relais_urgency_names, RELAIS_URGENCY_COUNT, rp->urgency);
    s_uint (map, "persons", &rp->persons);
    s_uint (map, "tents", &rp->tents);
    s_uint (map, "minors", &rp->minors);
    s_uint (map, "pregnant", &rp->pregnant);
}

int
router_report_from_view (const msgpack_object *view, router_report_t *rp)
{
    memset (rp, 0, sizeof *rp);
    if (!view || view->type != MSGPACK_OBJECT_MAP)
        return RELAIS_EMALFORMED;
    rp->urgency = RELAIS_URGENCY_JOUR;
    rp->level = 1;
    s_apply_view (rp, view);
    s_uint (view, "level", &rp->level);
    rp->reasons = s_mask_of (relais_msg_get (view, "reasons"), router_reason_names, ROUTER_REASON_COUNT);
    if (rp->arrondissement < 1 || rp->arrondissement > 20 || (rp->level != 1 && rp->level != 2))
        return RELAIS_EMALFORMED;
    return 0;
}

void
router_report_apply_changes (router_report_t *rp, const msgpack_object *body)
{
    const msgpack_object *changes = relais_msg_get (body, "changes");
    if (changes && changes->type == MSGPACK_OBJECT_MAP)
        s_apply_view (rp, changes);
    //  Intake may also send the whole public view with the event
    s_apply_view (rp, body);
    uint32_t level = rp->level;
    s_uint (body, "level", &level);
    if (level == 1 || level == 2)
        rp->level = level;
    const msgpack_object *reasons = relais_msg_get (body, "reasons");
    if (reasons)
        rp->reasons = s_mask_of (reasons, router_reason_names, ROUTER_REASON_COUNT);
    if (rp->arrondissement < 1 || rp->arrondissement > 20)
        rp->arrondissement = 1;
}

void
router_report_from_signal (const relais_signal_t *sig, uint32_t level, uint32_t reasons,
                           router_report_t *rp)
{
    memset (rp, 0, sizeof *rp);
    rp->level = level;
    rp->reasons = reasons;
    rp->publics = sig->publics;
    rp->needs = sig->needs;
    rp->place_kind = (int) sig->place_kind;
    rp->urgency = (int) sig->urgency;
    rp->source_kind = (int) sig->source_kind;
    rp->arrondissement = sig->arrondissement;
    rp->tents = sig->tents;
    rp->minors = sig->minors;
    rp->pregnant = sig->pregnant;
    rp->persons = sig->persons;
}
