/*  =========================================================================
    relais_signal - the signalement (report) schema of PROTOCOL.md §3

    @discuss
    One handler per top-level field, in a table: relais_signal_parse walks
    the table over a whole map, relais_signal_apply_changes walks it over
    the keys an update names. Each handler resets the part of the struct it
    owns before filling it, so a field replaced by an update leaves nothing
    of its old value behind (place, people). Error paths are built from the
    caller's prefix; messages say what is expected and never quote the
    value, which may be personal or hostile text.
    =========================================================================
*/
#include "relais_signal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const char *const relais_source_kind_names [RELAIS_SOURCE_COUNT] = {
    "115", "cellule", "mairie", "cabinet", "association", "maraude",
    "institution", "riverain"
};

const char *const relais_place_kind_names [RELAIS_PLACE_COUNT] = {
    "voie_publique", "domaine_municipal", "bois", "gare", "metro", "parking",
    "talus", "parc_jardin", "batiment", "autre"
};

const char *const relais_public_names [RELAIS_PUBLIC_COUNT] = {
    "homme_isole", "femme_isolee", "couple", "famille", "mineur_non_accompagne",
    "femme_enceinte", "enfant", "personne_agee", "handicap",
    "grande_vulnerabilite", "troubles_psychiques", "addiction"
};

const char *const relais_need_names [RELAIS_NEED_COUNT] = {
    "mise_a_l_abri", "soins", "alimentation", "hygiene", "acces_droits",
    "evaluation_sociale", "protection_enfance"
};

const char *const relais_urgency_names [RELAIS_URGENCY_COUNT] = {
    "immediate", "jour", "semaine"
};

//  Bounds that are not limits of a buffer
#define S_OBSERVED_MIN      946684800000000ULL      //  2000-01-01T00:00:00Z
#define S_OBSERVED_AHEAD    86400000000ULL          //  one day of clock skew
#define S_LAT_MIN           48.80
#define S_LAT_MAX           48.91
#define S_LON_MIN           2.22
#define S_LON_MAX           2.48
#define S_CELL_LAT          0.00225                 //  about 250 m north-south
#define S_CELL_LON          0.0034                  //  about 250 m east-west
#define S_BIRTH_MIN         1900
#define S_BIRTH_MAX         2100

typedef char s_path_t [RELAIS_FIELD_MAX];

//  Parsing context: where errors go and the clock that bounds observed_at
typedef struct {
    relais_error_t *err;
    uint64_t now_us;
    bool fresh;         //  the struct was just zeroed: handlers skip resets
} s_ctx_t;

//  ---------------------------------------------------------------------------
//  Paths: "prefix.key", or "key" when prefix is empty; "base[i]"

//  Paths are built for every field of every report, on the hot path of
//  intake, and read only on an error: plain bounded copies, no printf,
//  inlined so that the length and copy of a literal key are folded.
static inline __attribute__ ((always_inline)) size_t
s_path_put (s_path_t path, size_t at, const char *text)
{
    size_t len = strlen (text);
    if (at + len >= sizeof (s_path_t))
        len = at < sizeof (s_path_t) - 1? sizeof (s_path_t) - 1 - at: 0;
    memcpy (path + at, text, len);
    path [at + len] = 0;
    return at + len;
}

static inline __attribute__ ((always_inline)) void
s_path_key (s_path_t path, const char *prefix, const char *key)
{
    size_t at = s_path_put (path, 0, prefix);
    if (*prefix)
        at = s_path_put (path, at, ".");
    s_path_put (path, at, key);
}

static void
s_path_index (s_path_t path, const char *base, uint32_t index)
{
    char digits [16];
    char *p = digits + sizeof digits;
    *--p = 0;
    *--p = ']';
    do
        *--p = (char) ('0' + index % 10);
    while ((index /= 10) > 0);
    *--p = '[';
    if (path != base)
        s_path_put (path, 0, base);
    s_path_put (path, strlen (path), p);
}

//  ---------------------------------------------------------------------------
//  Typed readers. Each one takes the object (NULL when absent), checks it
//  and stores it; required says whether absence is an error.

static int
s_invalid (s_ctx_t *ctx, const char *path, const char *what)
{
    return relais_error_set (ctx->err, RELAIS_CODE_INVALID, path, "%s", what);
}

//  Copy a str of at most max bytes into buf (max + 1 bytes, zeroed first so
//  that a struct holds no stale bytes after an update).
static int
s_read_str (s_ctx_t *ctx, const msgpack_object *o, const char *path,
            char *buf, size_t max, bool required, bool allow_newlines)
{
    if (!ctx->fresh)
        memset (buf, 0, max + 1);
    if (!o) {
        if (required)
            return relais_error_set (ctx->err, RELAIS_CODE_INVALID, path,
                                     "required, a non-empty string");
        return 0;
    }
    if (o->type != MSGPACK_OBJECT_STR)
        return relais_error_set (ctx->err, RELAIS_CODE_INVALID, path,
                                 "must be a string%s", required? " (non-empty)": "");
    if (o->via.str.size > max)
        return relais_error_set (ctx->err, RELAIS_CODE_TOO_LARGE, path,
                                 "must be at most %zu bytes", max);
    //  The decoder already refused bad UTF-8, but an object may come from
    //  elsewhere, and single-line fields must also refuse newlines and tabs.
    if (!relais_utf8_clean (o->via.str.ptr, o->via.str.size, allow_newlines))
        return relais_error_set (ctx->err, RELAIS_CODE_INVALID, path,
                                 allow_newlines
                                 ? "must be valid UTF-8 text without control characters"
                                 : "must be one line of valid UTF-8 text without control characters");
    if (required && o->via.str.size == 0)
        return relais_error_set (ctx->err, RELAIS_CODE_INVALID, path, "must not be empty");
    memcpy (buf, o->via.str.ptr, o->via.str.size);
    return 0;
}

//  An unsigned integer in [lo, hi]. A negative integer, a float or any
//  other type is refused the same way: the message states the range.
static int
s_read_uint (s_ctx_t *ctx, const msgpack_object *o, const char *path,
             uint64_t lo, uint64_t hi, bool required, uint64_t *value)
{
    if (!o) {
        if (required)
            return relais_error_set (ctx->err, RELAIS_CODE_INVALID, path,
                                     "required, an integer from %llu to %llu",
                                     (unsigned long long) lo, (unsigned long long) hi);
        return 0;
    }
    uint64_t v;
    if (!relais_msg_uint (o, &v) || v < lo || v > hi)
        return relais_error_set (ctx->err, RELAIS_CODE_INVALID, path,
                                 "must be an integer from %llu to %llu",
                                 (unsigned long long) lo, (unsigned long long) hi);
    *value = v;
    return 0;
}

static int
s_read_u32 (s_ctx_t *ctx, const msgpack_object *o, const char *path,
            uint32_t lo, uint32_t hi, bool required, uint32_t *value)
{
    uint64_t v = *value;
    int rc = s_read_uint (ctx, o, path, lo, hi, required, &v);
    if (rc == 0)
        *value = (uint32_t) v;
    return rc;
}

static int
s_read_bool (s_ctx_t *ctx, const msgpack_object *o, const char *path, bool *value)
{
    if (!o)
        return 0;
    if (o->type != MSGPACK_OBJECT_BOOLEAN)
        return s_invalid (ctx, path, "must be true or false");
    *value = o->via.boolean;
    return 0;
}

//  Write "must be one of: a, b, c" for an enum table into the error.
static int
s_bad_enum (s_ctx_t *ctx, const char *path, const char *const *table, int count,
            bool required_missing)
{
    char list [RELAIS_MESSAGE_MAX];
    size_t used = 0;
    list [0] = 0;
    for (int i = 0; i < count && used < sizeof list; i++) {
        int n = snprintf (list + used, sizeof list - used, "%s%s", i? ", ": "", table [i]);
        if (n < 0)
            break;
        used += (size_t) n;
    }
    return relais_error_set (ctx->err, RELAIS_CODE_INVALID, path, "%s one of: %.200s",
                             required_missing? "required,": "must be", list);
}

//  Find the str object o in table; -1 when o is not a str or not listed.
static int
s_enum_index (const msgpack_object *o, const char *const *table, int count)
{
    for (int i = 0; i < count; i++)
        if (relais_msg_str_eq (o, table [i]))
            return i;
    return -1;
}

static int
s_read_enum (s_ctx_t *ctx, const msgpack_object *o, const char *path,
             const char *const *table, int count, bool required, int *value)
{
    if (!o) {
        if (required)
            return s_bad_enum (ctx, path, table, count, true);
        return 0;
    }
    int index = s_enum_index (o, table, count);
    if (index < 0)
        return s_bad_enum (ctx, path, table, count, false);
    *value = index;
    return 0;
}

//  An array of distinct enum names, min..max entries, into a mask.
static int
s_read_mask (s_ctx_t *ctx, const msgpack_object *o, const char *path,
             const char *const *table, int count, uint32_t min, uint32_t max,
             uint32_t *mask)
{
    *mask = 0;
    if (!o) {
        if (min > 0)
            return relais_error_set (ctx->err, RELAIS_CODE_INVALID, path,
                                     "required, an array of %u to %u names", min, max);
        return 0;
    }
    if (o->type != MSGPACK_OBJECT_ARRAY)
        return relais_error_set (ctx->err, RELAIS_CODE_INVALID, path,
                                 "must be an array of %u to %u names", min, max);
    if (o->via.array.size > max)
        return relais_error_set (ctx->err, RELAIS_CODE_TOO_LARGE, path,
                                 "must hold at most %u entries", max);
    if (o->via.array.size < min)
        return relais_error_set (ctx->err, RELAIS_CODE_INVALID, path,
                                 "must hold at least %u entry", min);
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        s_path_t item;
        s_path_index (item, path, i);
        int index = s_enum_index (&o->via.array.ptr [i], table, count);
        if (index < 0)
            return s_bad_enum (ctx, item, table, count, false);
        if (*mask & (1u << index))
            return s_invalid (ctx, item, "duplicate entry: each name at most once");
        *mask |= 1u << index;
    }
    return 0;
}

//  A coordinate: float32, float64 or an integer, within [lo, hi].
static int
s_read_coord (s_ctx_t *ctx, const msgpack_object *o, const char *path,
              double lo, double hi, const char *what, double *value)
{
    double v;
    switch (o->type) {
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
            v = o->via.f64;
            break;
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
            v = (double) o->via.u64;
            break;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
            v = (double) o->via.i64;
            break;
        default:
            return relais_error_set (ctx->err, RELAIS_CODE_INVALID, path,
                                     "must be a number, %s from %.2f to %.2f", what, lo, hi);
    }
    //  Written so that NaN fails too
    if (!(v >= lo && v <= hi))
        return relais_error_set (ctx->err, RELAIS_CODE_INVALID, path,
                                 "must be %s from %.2f to %.2f (Paris)", what, lo, hi);
    *value = v;
    return 0;
}

static int
s_need_map (s_ctx_t *ctx, const msgpack_object *o, const char *path)
{
    if (!o)
        return s_invalid (ctx, path, "required, a map");
    if (o->type != MSGPACK_OBJECT_MAP)
        return s_invalid (ctx, path, "must be a map");
    return 0;
}

//  ---------------------------------------------------------------------------
//  Field handlers: o is the value (NULL when absent), path its full path

typedef int (s_field_fn) (s_ctx_t *ctx, const msgpack_object *o, const char *path,
                          relais_signal_t *sig);

static int
s_field_source (s_ctx_t *ctx, const msgpack_object *o, const char *path,
                relais_signal_t *sig)
{
    int rc = s_need_map (ctx, o, path);
    if (rc)
        return rc;
    s_path_t sub;
    int kind = 0;
    s_path_key (sub, path, "kind");
    if ((rc = s_read_enum (ctx, relais_msg_get (o, "kind"), sub, relais_source_kind_names,
                           RELAIS_SOURCE_COUNT, true, &kind)))
        return rc;
    sig->source_kind = (relais_source_kind_t) kind;
    s_path_key (sub, path, "name");
    if ((rc = s_read_str (ctx, relais_msg_get (o, "name"), sub, sig->source_name,
                          RELAIS_SIG_NAME_MAX, true, false)))
        return rc;
    s_path_key (sub, path, "contact");
    return s_read_str (ctx, relais_msg_get (o, "contact"), sub, sig->source_contact,
                       RELAIS_SIG_CONTACT_MAX, false, false);
}

static int
s_field_observed_at (s_ctx_t *ctx, const msgpack_object *o, const char *path,
                     relais_signal_t *sig)
{
    uint64_t limit = ctx->now_us > UINT64_MAX - S_OBSERVED_AHEAD
                   ? UINT64_MAX: ctx->now_us + S_OBSERVED_AHEAD;
    uint64_t v;
    if (!o)
        return s_invalid (ctx, path, "required, a time in microseconds since 1970 (UTC)");
    if (!relais_msg_uint (o, &v) || v < S_OBSERVED_MIN || v > limit)
        return s_invalid (ctx, path, "must be a time in microseconds since 1970 (UTC), "
                                     "from year 2000 to at most one day ahead");
    sig->observed_at = v;
    return 0;
}

static int
s_field_place (s_ctx_t *ctx, const msgpack_object *o, const char *path,
               relais_signal_t *sig)
{
    //  The place is always replaced as a whole: forget the old one first
    sig->arrondissement = 0;
    sig->place_kind = RELAIS_PLACE_VOIE_PUBLIQUE;
    sig->has_geo = false;
    sig->lat = sig->lon = 0;
    if (!ctx->fresh)
        memset (sig->address, 0, sizeof sig->address);

    int rc = s_need_map (ctx, o, path);
    if (rc)
        return rc;
    s_path_t sub;
    s_path_key (sub, path, "arrondissement");
    if ((rc = s_read_u32 (ctx, relais_msg_get (o, "arrondissement"), sub, 1, 20, true,
                          &sig->arrondissement)))
        return rc;
    int kind = 0;
    s_path_key (sub, path, "kind");
    if ((rc = s_read_enum (ctx, relais_msg_get (o, "kind"), sub, relais_place_kind_names,
                           RELAIS_PLACE_COUNT, true, &kind)))
        return rc;
    sig->place_kind = (relais_place_kind_t) kind;
    s_path_key (sub, path, "address");
    if ((rc = s_read_str (ctx, relais_msg_get (o, "address"), sub, sig->address,
                          RELAIS_SIG_ADDRESS_MAX, false, false)))
        return rc;
    const msgpack_object *lat = relais_msg_get (o, "lat");
    const msgpack_object *lon = relais_msg_get (o, "lon");
    if (!lat && !lon)
        return 0;
    //  Both or neither: name the one that is missing
    if (!lon) {
        s_path_key (sub, path, "lon");
        return s_invalid (ctx, sub, "required with lat (both or neither)");
    }
    if (!lat) {
        s_path_key (sub, path, "lat");
        return s_invalid (ctx, sub, "required with lon (both or neither)");
    }
    double vlat = 0, vlon = 0;
    s_path_key (sub, path, "lat");
    if ((rc = s_read_coord (ctx, lat, sub, S_LAT_MIN, S_LAT_MAX, "a latitude", &vlat)))
        return rc;
    s_path_key (sub, path, "lon");
    if ((rc = s_read_coord (ctx, lon, sub, S_LON_MIN, S_LON_MAX, "a longitude", &vlon)))
        return rc;
    sig->has_geo = true;
    sig->lat = vlat;
    sig->lon = vlon;
    return 0;
}

static int
s_field_persons (s_ctx_t *ctx, const msgpack_object *o, const char *path,
                 relais_signal_t *sig)
{
    return s_read_u32 (ctx, o, path, 1, RELAIS_SIG_PERSONS_MAX, true, &sig->persons);
}

static int
s_field_publics (s_ctx_t *ctx, const msgpack_object *o, const char *path,
                 relais_signal_t *sig)
{
    return s_read_mask (ctx, o, path, relais_public_names, RELAIS_PUBLIC_COUNT,
                        1, RELAIS_PUBLIC_COUNT, &sig->publics);
}

static int
s_field_minors (s_ctx_t *ctx, const msgpack_object *o, const char *path,
                relais_signal_t *sig)
{
    sig->minors = 0;
    return s_read_u32 (ctx, o, path, 0, RELAIS_SIG_PERSONS_MAX, false, &sig->minors);
}

static int
s_field_pregnant (s_ctx_t *ctx, const msgpack_object *o, const char *path,
                  relais_signal_t *sig)
{
    sig->pregnant = 0;
    return s_read_u32 (ctx, o, path, 0, RELAIS_SIG_PERSONS_MAX, false, &sig->pregnant);
}

static int
s_field_tents (s_ctx_t *ctx, const msgpack_object *o, const char *path,
               relais_signal_t *sig)
{
    sig->tents = 0;
    return s_read_u32 (ctx, o, path, 0, RELAIS_SIG_TENTS_MAX, false, &sig->tents);
}

static int
s_field_needs (s_ctx_t *ctx, const msgpack_object *o, const char *path,
               relais_signal_t *sig)
{
    return s_read_mask (ctx, o, path, relais_need_names, RELAIS_NEED_COUNT,
                        0, RELAIS_NEED_COUNT, &sig->needs);
}

static int
s_field_urgency (s_ctx_t *ctx, const msgpack_object *o, const char *path,
                 relais_signal_t *sig)
{
    int urgency = RELAIS_URGENCY_JOUR;
    int rc = s_read_enum (ctx, o, path, relais_urgency_names, RELAIS_URGENCY_COUNT,
                          false, &urgency);
    sig->urgency = (relais_urgency_t) urgency;
    return rc;
}

static int
s_field_sensitive (s_ctx_t *ctx, const msgpack_object *o, const char *path,
                   relais_signal_t *sig)
{
    sig->sensitive = false;
    return s_read_bool (ctx, o, path, &sig->sensitive);
}

static int
s_field_escalate (s_ctx_t *ctx, const msgpack_object *o, const char *path,
                  relais_signal_t *sig)
{
    sig->escalate = false;
    return s_read_bool (ctx, o, path, &sig->escalate);
}

static int
s_field_escalate_reason (s_ctx_t *ctx, const msgpack_object *o, const char *path,
                         relais_signal_t *sig)
{
    return s_read_str (ctx, o, path, sig->escalate_reason, RELAIS_SIG_REASON_MAX,
                       false, false);
}

static int
s_field_summary (s_ctx_t *ctx, const msgpack_object *o, const char *path,
                 relais_signal_t *sig)
{
    return s_read_str (ctx, o, path, sig->summary, RELAIS_SIG_SUMMARY_MAX, false, true);
}

static bool
s_phone_ok (const char *phone)
{
    for (const char *p = phone; *p; p++)
        if (!((*p >= '0' && *p <= '9') || strchr (" +-.()", *p)))
            return false;
    return true;
}

static int
s_person (s_ctx_t *ctx, const msgpack_object *o, const char *path, relais_person_t *person)
{
    if (!ctx->fresh)
        memset (person, 0, sizeof *person);
    int rc = s_need_map (ctx, o, path);
    if (rc)
        return rc;
    s_path_t sub;
    s_path_key (sub, path, "name");
    if ((rc = s_read_str (ctx, relais_msg_get (o, "name"), sub, person->name,
                          RELAIS_SIG_NAME_MAX, true, false)))
        return rc;
    s_path_key (sub, path, "birth_year");
    if ((rc = s_read_u32 (ctx, relais_msg_get (o, "birth_year"), sub, S_BIRTH_MIN,
                          S_BIRTH_MAX, false, &person->birth_year)))
        return rc;
    const msgpack_object *sex = relais_msg_get (o, "sex");
    if (sex) {
        s_path_key (sub, path, "sex");
        if (!relais_msg_str_eq (sex, "F") && !relais_msg_str_eq (sex, "M")
        &&  !relais_msg_str_eq (sex, "X"))
            return s_invalid (ctx, sub, "must be one of: F, M, X");
        person->sex [0] = sex->via.str.ptr [0];
    }
    s_path_key (sub, path, "phone");
    if ((rc = s_read_str (ctx, relais_msg_get (o, "phone"), sub, person->phone,
                          RELAIS_SIG_PHONE_MAX, false, false)))
        return rc;
    if (!s_phone_ok (person->phone)) {
        memset (person->phone, 0, sizeof person->phone);
        return s_invalid (ctx, sub, "must hold only digits, spaces and + - . ( )");
    }
    s_path_key (sub, path, "siao_id");
    return s_read_str (ctx, relais_msg_get (o, "siao_id"), sub, person->siao_id,
                       RELAIS_SIG_PERSON_ID_MAX, false, false);
}

static int
s_field_people (s_ctx_t *ctx, const msgpack_object *o, const char *path,
                relais_signal_t *sig)
{
    //  The list is always replaced as a whole
    sig->people_count = 0;
    if (!ctx->fresh)
        memset (sig->people, 0, sizeof sig->people);
    if (!o)
        return 0;
    if (o->type != MSGPACK_OBJECT_ARRAY)
        return s_invalid (ctx, path, "must be an array of maps");
    if (o->via.array.size > RELAIS_SIG_PEOPLE_MAX)
        return relais_error_set (ctx->err, RELAIS_CODE_TOO_LARGE, path,
                                 "must hold at most %d people", RELAIS_SIG_PEOPLE_MAX);
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        s_path_t item;
        s_path_index (item, path, i);
        int rc = s_person (ctx, &o->via.array.ptr [i], item, &sig->people [i]);
        if (rc)
            return rc;
        sig->people_count = i + 1;
    }
    return 0;
}

typedef struct {
    const char *key;
    size_t len;                         //  strlen (key)
    s_field_fn *fn;
    bool changeable;
} s_field_t;

//  In the order errors are reported, which is also the packing order
static const s_field_t s_fields [] = {
    { "source",          6, s_field_source,          false },
    { "observed_at",     11, s_field_observed_at,     true  },
    { "place",           5, s_field_place,           true  },
    { "persons",         7, s_field_persons,         true  },
    { "publics",         7, s_field_publics,         true  },
    { "minors",          6, s_field_minors,          true  },
    { "pregnant",        8, s_field_pregnant,        true  },
    { "tents",           5, s_field_tents,           true  },
    { "needs",           5, s_field_needs,           true  },
    { "urgency",         7, s_field_urgency,         true  },
    { "sensitive",       9, s_field_sensitive,       true  },
    { "escalate",        8, s_field_escalate,        true  },
    { "escalate_reason", 15, s_field_escalate_reason, true  },
    { "summary",         7, s_field_summary,         true  },
    { "people",          6, s_field_people,          true  },
};
#define S_FIELDS (sizeof s_fields / sizeof s_fields [0])

//  Rules across fields. given says which of persons, minors, pregnant the
//  input named, so the error points at a field the sender actually wrote.
static int
s_cross_check (s_ctx_t *ctx, const char *prefix, const relais_signal_t *sig,
               const msgpack_object *input)
{
    s_path_t path;
    bool minors_given = relais_msg_get (input, "minors") != NULL;
    bool pregnant_given = relais_msg_get (input, "pregnant") != NULL;
    if (sig->minors > sig->persons) {
        s_path_key (path, prefix, minors_given? "minors": "persons");
        return s_invalid (ctx, path, "minors must not exceed persons");
    }
    if (sig->pregnant > sig->persons) {
        s_path_key (path, prefix, pregnant_given? "pregnant": "persons");
        return s_invalid (ctx, path, "pregnant must not exceed persons");
    }
    if (sig->escalate && sig->escalate_reason [0] == 0) {
        s_path_key (path, prefix, "escalate_reason");
        return s_invalid (ctx, path, "required, a non-empty string when escalate is true");
    }
    return 0;
}

int
relais_signal_parse (const msgpack_object *map, const char *prefix,
                     uint64_t now_us, relais_signal_t *sig, relais_error_t *err)
{
    memset (sig, 0, sizeof *sig);
    sig->urgency = RELAIS_URGENCY_JOUR;
    if (!prefix)
        prefix = "";
    //  Every buffer is zero already: the handlers write only what they read
    s_ctx_t ctx = { err, now_us, true };
    if (!map || map->type != MSGPACK_OBJECT_MAP)
        return s_invalid (&ctx, prefix, "must be a map");
    //  One pass over the map finds every field (the first of a repeated
    //  key, as relais_msg_get would), then the handlers run in table order
    const msgpack_object *values [S_FIELDS] = { NULL };
    for (uint32_t k = 0; k < map->via.map.size; k++) {
        const msgpack_object *key = &map->via.map.ptr [k].key;
        if (key->type != MSGPACK_OBJECT_STR)
            continue;
        for (size_t i = 0; i < S_FIELDS; i++)
            if (!values [i] && key->via.str.size == s_fields [i].len
            &&  memcmp (key->via.str.ptr, s_fields [i].key, s_fields [i].len) == 0) {
                values [i] = &map->via.map.ptr [k].val;
                break;
            }
    }
    for (size_t i = 0; i < S_FIELDS; i++) {
        s_path_t path;
        s_path_key (path, prefix, s_fields [i].key);
        int rc = s_fields [i].fn (&ctx, values [i], path, sig);
        if (rc)
            return rc;
    }
    return s_cross_check (&ctx, prefix, sig, map);
}

int
relais_signal_apply_changes (relais_signal_t *sig, const msgpack_object *changes,
                             const char *prefix, uint64_t now_us,
                             relais_error_t *err)
{
    if (!prefix)
        prefix = "";
    s_ctx_t ctx = { err, now_us, false };
    if (!changes || changes->type != MSGPACK_OBJECT_MAP)
        return s_invalid (&ctx, prefix, "must be a map of signal fields");
    //  Validate into a copy (about 8 KB, on the stack so that no allocation
    //  can fail): the caller's record changes only on success
    relais_signal_t scratch;
    relais_signal_t *copy = &scratch;
    memcpy (copy, sig, sizeof *copy);
    size_t applied = 0;
    int rc = 0;
    for (size_t i = 0; i < S_FIELDS && rc == 0; i++) {
        const msgpack_object *o = relais_msg_get (changes, s_fields [i].key);
        if (!o)
            continue;
        s_path_t path;
        s_path_key (path, prefix, s_fields [i].key);
        if (!s_fields [i].changeable)
            rc = s_invalid (&ctx, path, "cannot be changed by an update");
        else
            rc = s_fields [i].fn (&ctx, o, path, copy);
        applied++;
    }
    if (rc == 0 && applied == 0)
        rc = s_invalid (&ctx, prefix, "must name at least one signal field to change");
    if (rc == 0)
        rc = s_cross_check (&ctx, prefix, copy, changes);
    if (rc == 0)
        memcpy (sig, copy, sizeof *sig);
    return rc;
}

//  ---------------------------------------------------------------------------
//  Packing

int
relais_enum_find (const char *const *table, int count, const char *name)
{
    if (!table || !name)
        return -1;
    for (int i = 0; i < count; i++)
        if (table [i] && strcmp (table [i], name) == 0)
            return i;
    return -1;
}

void
relais_pack_mask (msgpack_packer *pk, uint32_t mask, const char *const *table, int count)
{
    if (count > 32)
        count = 32;
    if (count < 32)
        mask &= (1u << count) - 1;
    msgpack_pack_array (pk, (size_t) __builtin_popcount (mask));
    //  Only the bits set, lowest first
    for (uint32_t rest = mask; rest; rest &= rest - 1)
        relais_pack_str (pk, table [__builtin_ctz (rest)]);
}

//  Enum values in a struct come from our parser, but a caller may have
//  filled the struct by hand: never index a table out of its bounds.
static const char *
s_name (const char *const *table, int count, int index)
{
    return index >= 0 && index < count? table [index]: table [0];
}

static void
s_pack_kv_mask (msgpack_packer *pk, const char *key, uint32_t mask,
                const char *const *table, int count)
{
    relais_pack_str (pk, key);
    relais_pack_mask (pk, mask, table, count);
}

static void
s_pack_kv_double (msgpack_packer *pk, const char *key, double value)
{
    relais_pack_str (pk, key);
    msgpack_pack_double (pk, value);
}

//  The situation fields both views share, in the same order: 9 pairs
static void
s_pack_situation (msgpack_packer *pk, const relais_signal_t *sig)
{
    relais_pack_kv_uint (pk, "persons", sig->persons);
    s_pack_kv_mask (pk, "publics", sig->publics, relais_public_names, RELAIS_PUBLIC_COUNT);
    relais_pack_kv_uint (pk, "minors", sig->minors);
    relais_pack_kv_uint (pk, "pregnant", sig->pregnant);
    relais_pack_kv_uint (pk, "tents", sig->tents);
    s_pack_kv_mask (pk, "needs", sig->needs, relais_need_names, RELAIS_NEED_COUNT);
    relais_pack_kv_str (pk, "urgency",
                        s_name (relais_urgency_names, RELAIS_URGENCY_COUNT, (int) sig->urgency));
    relais_pack_kv_bool (pk, "sensitive", sig->sensitive);
    relais_pack_kv_bool (pk, "escalate", sig->escalate);
}

void
relais_signal_pack_full (msgpack_packer *pk, const relais_signal_t *sig)
{
    bool with_reason = sig->escalate_reason [0] != 0;
    bool with_summary = sig->summary [0] != 0;
    bool with_people = sig->people_count > 0;
    msgpack_pack_map (pk, 12 + with_reason + with_summary + with_people);

    bool with_contact = sig->source_contact [0] != 0;
    relais_pack_str (pk, "source");
    msgpack_pack_map (pk, 2 + with_contact);
    relais_pack_kv_str (pk, "kind", s_name (relais_source_kind_names, RELAIS_SOURCE_COUNT,
                                            (int) sig->source_kind));
    relais_pack_kv_str (pk, "name", sig->source_name);
    if (with_contact)
        relais_pack_kv_str (pk, "contact", sig->source_contact);

    relais_pack_kv_uint (pk, "observed_at", sig->observed_at);

    bool with_address = sig->address [0] != 0;
    relais_pack_str (pk, "place");
    msgpack_pack_map (pk, 2 + with_address + 2 * sig->has_geo);
    relais_pack_kv_uint (pk, "arrondissement", sig->arrondissement);
    relais_pack_kv_str (pk, "kind", s_name (relais_place_kind_names, RELAIS_PLACE_COUNT,
                                            (int) sig->place_kind));
    if (with_address)
        relais_pack_kv_str (pk, "address", sig->address);
    if (sig->has_geo) {
        s_pack_kv_double (pk, "lat", sig->lat);
        s_pack_kv_double (pk, "lon", sig->lon);
    }

    s_pack_situation (pk, sig);
    if (with_reason)
        relais_pack_kv_str (pk, "escalate_reason", sig->escalate_reason);
    if (with_summary)
        relais_pack_kv_str (pk, "summary", sig->summary);
    if (with_people) {
        uint32_t count = sig->people_count > RELAIS_SIG_PEOPLE_MAX
                       ? RELAIS_SIG_PEOPLE_MAX: sig->people_count;
        relais_pack_str (pk, "people");
        msgpack_pack_array (pk, count);
        for (uint32_t i = 0; i < count; i++) {
            const relais_person_t *person = &sig->people [i];
            bool with_year = person->birth_year != 0;
            bool with_sex = person->sex [0] != 0;
            bool with_phone = person->phone [0] != 0;
            bool with_id = person->siao_id [0] != 0;
            msgpack_pack_map (pk, 1 + with_year + with_sex + with_phone + with_id);
            relais_pack_kv_str (pk, "name", person->name);
            if (with_year)
                relais_pack_kv_uint (pk, "birth_year", person->birth_year);
            if (with_sex)
                relais_pack_kv_str (pk, "sex", person->sex);
            if (with_phone)
                relais_pack_kv_str (pk, "phone", person->phone);
            if (with_id)
                relais_pack_kv_str (pk, "siao_id", person->siao_id);
        }
    }
}

void
relais_signal_pack_public (msgpack_packer *pk, const relais_signal_t *sig,
                           uint32_t extra_pairs)
{
    //  Built field by field from an allow-list: a field added to the
    //  struct later stays off the bus until someone decides it belongs.
    msgpack_pack_map (pk, 12 + extra_pairs);
    relais_pack_str (pk, "source");
    msgpack_pack_map (pk, 2);
    relais_pack_kv_str (pk, "kind", s_name (relais_source_kind_names, RELAIS_SOURCE_COUNT,
                                            (int) sig->source_kind));
    relais_pack_kv_str (pk, "name", sig->source_name);

    relais_pack_kv_uint (pk, "observed_at", sig->observed_at);

    char cell [RELAIS_SIG_CELL_MAX];
    relais_signal_cell (sig, cell, sizeof cell);
    relais_pack_str (pk, "place");
    msgpack_pack_map (pk, 2 + (cell [0] != 0));
    relais_pack_kv_uint (pk, "arrondissement", sig->arrondissement);
    relais_pack_kv_str (pk, "kind", s_name (relais_place_kind_names, RELAIS_PLACE_COUNT,
                                            (int) sig->place_kind));
    if (cell [0])
        relais_pack_kv_str (pk, "cell", cell);

    s_pack_situation (pk, sig);
}

void
relais_signal_cell (const relais_signal_t *sig, char *buf, size_t size)
{
    if (!buf || size == 0)
        return;
    buf [0] = 0;
    if (!sig->has_geo || !isfinite (sig->lat) || !isfinite (sig->lon))
        return;
    //  Clamp to the grid so that a hand-filled struct cannot overflow int
    double row = floor ((sig->lat - S_LAT_MIN) / S_CELL_LAT);
    double col = floor ((sig->lon - S_LON_MIN) / S_CELL_LON);
    if (row < -1000 || row > 1000 || col < -1000 || col > 1000)
        return;
    snprintf (buf, size, "C%d-%d", (int) row, (int) col);
}
