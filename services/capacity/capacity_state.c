/*  =========================================================================
    capacity_state - shelter structures, occupancy, reservations, alerts,
    forecasts and plan matching (see capacity_state.h, proto/capacity.md)
    =========================================================================
*/
#include "capacity_state.h"
#include "relais_log.h"
#include "relais_msg.h"
#include "relais_signal.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const capacity_kind_names [CAPACITY_KINDS] = {
    "hotel", "sas", "lima", "chu", "halte", "115"
};

const char *const capacity_dbs [] = {
    "structs", "resv", "holds", "days", "idem", "refs", "pending", NULL
};
enum { S_DB_STRUCTS, S_DB_RESV, S_DB_HOLDS, S_DB_DAYS, S_DB_IDEM, S_DB_REFS, S_DB_PENDING };

const relais_config_key_t capacity_state_keys [] = {
    { "store/path", "capacity", relais_check_path, "LMDB folder (relative: under relais/data)" },
    { "store/map_size", "16M", relais_check_size, "initial LMDB map size; grows on demand" },
    { "store/map_max", "16G", relais_check_size, "cap of the LMDB map" },
    { "store/wal_size", "4M", relais_check_size, "write-ahead log file, 64K to 256M: an ack flushes one record there; full, it is checkpointed into LMDB" },
    { "reservation_hold", "2h", relais_check_duration, "a held reservation expires after this" },
    { "forecast/window", "7d", relais_check_duration, "forecast window (whole days, at least 2)" },
    { "forecast/every", "1d", relais_check_duration, "period of the published forecast" },
    { "match_window", "1d", relais_check_duration, "plan.closed and its entry must be this close" },
    { "tick", "1s", relais_check_duration, "longest sleep of the timer between checks" },
    { "batch_max", "1024", relais_check_uint, "API requests at most in one group commit" },
    { "alerts/*/free_below", "0", relais_check_uint, "per kind: alert while free places < N (0: off)" },
    { "alerts/*/occupancy_above", "0", relais_check_uint, "per kind: alert while occupancy % > P (0: off)" },
    { "structures/*/kind", NULL, NULL, "hotel, sas, lima, chu, halte or 115" },
    { "structures/*/arrondissement", "0", relais_check_uint, "1-20 (0: outside Paris)" },
    { "structures/*/places", "0", relais_check_uint, "capacity in places" },
    { "structures/*/households", "0", relais_check_uint, "capacity in households (rooms)" },
    { "structures/*/publics", "", NULL, "target publics, comma-separated (DOMAIN.md names)" },
    { "structures/*/operator", "", NULL, "the organisation running it" },
    { "structures/*/free_below", "0", relais_check_uint, "alert while free places < N (0: off)" },
    { "structures/*/occupancy_above", "0", relais_check_uint, "alert while occupancy % > P (0: off)" },
    { NULL, NULL, NULL, NULL }
};

struct _capacity_state_t {
    capacity_opts_t opts;
    relais_config_t *config;
};

//  A structure as stored
typedef struct {
    char id [CAPACITY_ID_MAX + 1];
    int kind;
    uint32_t arrondissement, places, households, publics;
    char operator_ [CAPACITY_OPERATOR_MAX + 1];
    uint32_t occupied, reserved;
    capacity_thresholds_t th;
    bool alert_free, alert_occ;
    uint64_t entries, exits, updated_at;
} s_struct_t;

//  A reservation as stored
typedef enum { S_HELD, S_CONFIRMED, S_CANCELLED, S_EXPIRED } s_rstate_t;
static const char *const s_rstate_names [] = { "held", "confirmed", "cancelled", "expired" };

typedef struct {
    char id [CAPACITY_ID_MAX + 1];
    char structure [CAPACITY_ID_MAX + 1];
    uint32_t places;
    s_rstate_t state;
    uint64_t expires, at;
} s_resv_t;

static const char *const s_from_names [] = { "signalement", "plan", "115", "autre" };
static const char *const s_to_names [] = { "logement", "structure", "rue", "inconnu" };
static const char *const s_correct_reasons [] = {
    "recomptage", "erreur_saisie", "ouverture", "fermeture", "autre"
};

//  ---------------------------------------------------------------------------
//  Small helpers

//  A map built pair by pair; the header is written when finished.
typedef struct {
    msgpack_sbuffer buf;
    msgpack_packer pk;
    uint32_t n;
} s_map_t;

static void
s_map_init (s_map_t *m)
{
    msgpack_sbuffer_init (&m->buf);
    msgpack_packer_init (&m->pk, &m->buf, msgpack_sbuffer_write);
    m->n = 0;
}

static void
s_map_fini (s_map_t *m)
{
    msgpack_sbuffer_destroy (&m->buf);
}

static void
s_kv_str (s_map_t *m, const char *key, const char *value)
{
    relais_pack_kv_str (&m->pk, key, value);
    m->n++;
}

static void
s_kv_uint (s_map_t *m, const char *key, uint64_t value)
{
    relais_pack_kv_uint (&m->pk, key, value);
    m->n++;
}

static void
s_kv_int (s_map_t *m, const char *key, int64_t value)
{
    relais_pack_str (&m->pk, key);
    msgpack_pack_int64 (&m->pk, value);
    m->n++;
}

static void
s_kv_bool (s_map_t *m, const char *key, bool value)
{
    relais_pack_kv_bool (&m->pk, key, value);
    m->n++;
}

//  Write {pairs of m} as one map into out.
static void
s_map_emit (s_map_t *m, msgpack_packer *out)
{
    msgpack_pack_map (out, m->n);
    if (m->buf.size)
        relais_pack_raw (out, m->buf.data, m->buf.size);   //  raw append
}

//  Encode m as a standalone map in sbuf (reset).
static void
s_map_bytes (s_map_t *m, msgpack_sbuffer *sbuf)
{
    msgpack_sbuffer_clear (sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, sbuf, msgpack_sbuffer_write);
    s_map_emit (m, &pk);
}

static uint32_t
s_free (const s_struct_t *st)
{
    uint64_t taken = (uint64_t) st->occupied + st->reserved;
    return taken >= st->places? 0: (uint32_t) (st->places - taken);
}

static uint32_t
s_occupancy_pct (uint64_t places, uint64_t taken)
{
    if (places == 0)
        return taken? 100: 0;
    return (uint32_t) (taken * 100 / places);
}

//  Ids: 1-63 bytes of [A-Za-z0-9._-] (and ':' when colon); safe in keys,
//  logs, file names and ZPL names, and no room for a person's name with
//  spaces in it.
static bool
s_id_ok (const char *text, size_t size, bool colon)
{
    if (size == 0 || size > CAPACITY_ID_MAX)
        return false;
    for (size_t i = 0; i < size; i++) {
        char c = text [i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
        ||    c == '-' || c == '_' || c == '.' || (colon && c == ':')))
            return false;
    }
    return true;
}

static int
s_kind_find (const char *name)
{
    for (int i = 0; i < CAPACITY_KINDS; i++)
        if (strcmp (capacity_kind_names [i], name) == 0)
            return i;
    return -1;
}

static uint64_t
s_day (uint64_t us)
{
    return us / CAPACITY_DAY_US;
}

//  ---------------------------------------------------------------------------
//  Stored records

static int
s_emit (capacity_state_t *self, relais_txn_t *txn, const char *type, const char *key,
        const char *corr, uint64_t ts, s_map_t *body)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    s_map_bytes (body, &sbuf);
    int rc = self->opts.emit? self->opts.emit (self->opts.emit_arg, txn, type, key, corr, ts,
                                               sbuf.data, sbuf.size): 0;
    msgpack_sbuffer_destroy (&sbuf);
    relais_debug ("event %s key=%s", type, key);
    return rc;
}

static int
s_struct_put (relais_txn_t *txn, const s_struct_t *st)
{
    s_map_t m;
    s_map_init (&m);
    s_kv_uint (&m, "v", 1);
    s_kv_str (&m, "kind", capacity_kind_names [st->kind]);
    s_kv_uint (&m, "arrondissement", st->arrondissement);
    s_kv_uint (&m, "places", st->places);
    s_kv_uint (&m, "households", st->households);
    s_kv_uint (&m, "publics", st->publics);
    s_kv_str (&m, "operator", st->operator_);
    s_kv_uint (&m, "occupied", st->occupied);
    s_kv_uint (&m, "reserved", st->reserved);
    s_kv_uint (&m, "free_below", st->th.free_below);
    s_kv_uint (&m, "occupancy_above", st->th.occupancy_above);
    s_kv_bool (&m, "alert_free", st->alert_free);
    s_kv_bool (&m, "alert_occupancy", st->alert_occ);
    s_kv_uint (&m, "entries", st->entries);
    s_kv_uint (&m, "exits", st->exits);
    s_kv_uint (&m, "updated_at", st->updated_at);
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    s_map_bytes (&m, &sbuf);
    int rc = relais_txn_put (txn, S_DB_STRUCTS, st->id, strlen (st->id), sbuf.data, sbuf.size);
    msgpack_sbuffer_destroy (&sbuf);
    s_map_fini (&m);
    return rc;
}

static uint32_t
s_get_u32 (const msgpack_object *map, const char *key)
{
    uint64_t v = 0;
    relais_msg_uint (relais_msg_get (map, key), &v);
    return v > UINT32_MAX? UINT32_MAX: (uint32_t) v;
}

static uint64_t
s_get_u64 (const msgpack_object *map, const char *key)
{
    uint64_t v = 0;
    relais_msg_uint (relais_msg_get (map, key), &v);
    return v;
}

static bool
s_get_bool (const msgpack_object *map, const char *key)
{
    const msgpack_object *o = relais_msg_get (map, key);
    return o && o->type == MSGPACK_OBJECT_BOOLEAN && o->via.boolean;
}

static const relais_msg_limits_t s_stored_limits = { 1 << 20, 8, 4096 };

//  Parse stored bytes into st. RELAIS_EMALFORMED if the file was damaged.
static int
s_struct_parse (const char *id, size_t idlen, const void *data, size_t size, s_struct_t *st)
{
    relais_msg_t msg;
    relais_error_t err;
    if (relais_msg_decode (&msg, data, size, &s_stored_limits, &err))
        return RELAIS_EMALFORMED;
    memset (st, 0, sizeof *st);
    memcpy (st->id, id, idlen < CAPACITY_ID_MAX? idlen: CAPACITY_ID_MAX);
    const msgpack_object *root = &msg.root;
    char kind [16] = "";
    relais_msg_str_copy (relais_msg_get (root, "kind"), kind, sizeof kind);
    st->kind = s_kind_find (kind);
    st->arrondissement = s_get_u32 (root, "arrondissement");
    st->places = s_get_u32 (root, "places");
    st->households = s_get_u32 (root, "households");
    st->publics = s_get_u32 (root, "publics");
    relais_msg_str_copy (relais_msg_get (root, "operator"), st->operator_, sizeof st->operator_);
    st->occupied = s_get_u32 (root, "occupied");
    st->reserved = s_get_u32 (root, "reserved");
    st->th.free_below = s_get_u32 (root, "free_below");
    st->th.occupancy_above = s_get_u32 (root, "occupancy_above");
    st->alert_free = s_get_bool (root, "alert_free");
    st->alert_occ = s_get_bool (root, "alert_occupancy");
    st->entries = s_get_u64 (root, "entries");
    st->exits = s_get_u64 (root, "exits");
    st->updated_at = s_get_u64 (root, "updated_at");
    relais_msg_release (&msg);
    return st->kind < 0? RELAIS_EMALFORMED: 0;
}

//  Load structure id. Returns 0, RELAIS_ENOTFOUND, or a store error.
static int
s_struct_get (relais_txn_t *txn, const char *id, s_struct_t *st)
{
    const void *data;
    size_t size;
    int rc = relais_txn_get (txn, S_DB_STRUCTS, id, strlen (id), &data, &size);
    if (rc)
        return rc;
    return s_struct_parse (id, strlen (id), data, size, st);
}

static int
s_resv_put (relais_txn_t *txn, const s_resv_t *r)
{
    s_map_t m;
    s_map_init (&m);
    s_kv_str (&m, "structure", r->structure);
    s_kv_uint (&m, "places", r->places);
    s_kv_str (&m, "state", s_rstate_names [r->state]);
    s_kv_uint (&m, "expires", r->expires);
    s_kv_uint (&m, "at", r->at);
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    s_map_bytes (&m, &sbuf);
    int rc = relais_txn_put (txn, S_DB_RESV, r->id, strlen (r->id), sbuf.data, sbuf.size);
    msgpack_sbuffer_destroy (&sbuf);
    s_map_fini (&m);
    return rc;
}

static int
s_resv_parse (const void *key, size_t klen, const void *data, size_t size, s_resv_t *r)
{
    relais_msg_t msg;
    relais_error_t err;
    if (relais_msg_decode (&msg, data, size, &s_stored_limits, &err))
        return RELAIS_EMALFORMED;
    memset (r, 0, sizeof *r);
    memcpy (r->id, key, klen < CAPACITY_ID_MAX? klen: CAPACITY_ID_MAX);
    relais_msg_str_copy (relais_msg_get (&msg.root, "structure"), r->structure, sizeof r->structure);
    r->places = s_get_u32 (&msg.root, "places");
    char state [16] = "";
    relais_msg_str_copy (relais_msg_get (&msg.root, "state"), state, sizeof state);
    r->state = (s_rstate_t) relais_enum_find (s_rstate_names, 4, state);
    r->expires = s_get_u64 (&msg.root, "expires");
    r->at = s_get_u64 (&msg.root, "at");
    relais_msg_release (&msg);
    return (int) r->state < 0? RELAIS_EMALFORMED: 0;
}

static int
s_resv_get (relais_txn_t *txn, const char *id, s_resv_t *r)
{
    const void *data;
    size_t size;
    int rc = relais_txn_get (txn, S_DB_RESV, id, strlen (id), &data, &size);
    if (rc)
        return rc;
    return s_resv_parse (id, strlen (id), data, size, r);
}

//  holds: expires (8, big-endian) + reservation id -> empty
static size_t
s_hold_key (uint64_t expires, const char *id, uint8_t *key)
{
    relais_u64_to_key (expires, key);
    size_t n = strlen (id);
    memcpy (key + 8, id, n);
    return 8 + n;
}

//  days: structure id, NUL, day (8, big-endian) -> in (8), out (8)
static size_t
s_day_key (const char *id, uint64_t day, uint8_t *key)
{
    size_t n = strlen (id);
    memcpy (key, id, n);
    key [n] = 0;
    relais_u64_to_key (day, key + n + 1);
    return n + 9;
}

static int
s_day_add (relais_txn_t *txn, const char *id, uint64_t at, uint64_t in, uint64_t out)
{
    uint8_t key [CAPACITY_ID_MAX + 9];
    size_t klen = s_day_key (id, s_day (at), key);
    uint8_t value [16] = { 0 };
    const void *data;
    size_t size;
    int rc = relais_txn_get (txn, S_DB_DAYS, key, klen, &data, &size);
    if (rc == 0 && size == 16)
        memcpy (value, data, 16);
    else
    if (rc && rc != RELAIS_ENOTFOUND)
        return rc;
    relais_u64_to_key (relais_key_to_u64 (value) + in, value);
    relais_u64_to_key (relais_key_to_u64 (value + 8) + out, value + 8);
    return relais_txn_put (txn, S_DB_DAYS, key, klen, value, 16);
}

//  ---------------------------------------------------------------------------
//  Forecast

double
capacity_forecast_slope (const int64_t *net, uint32_t days)
{
    if (days < 2)
        return 0;
    //  x = 0..days-1, y = cumulative net change at the end of day x
    double sx = 0, sy = 0, sxx = 0, sxy = 0, y = 0;
    for (uint32_t i = 0; i < days; i++) {
        y += (double) net [i];
        sx += i;
        sy += y;
        sxx += (double) i * i;
        sxy += (double) i * y;
    }
    double n = days;
    double den = n * sxx - sx * sx;
    return den == 0? 0: (n * sxy - sx * sy) / den;
}

typedef struct {
    const char *id;
    size_t idlen;
    uint64_t first, last;
    int64_t *net;
} s_days_scan_t;

static int
s_days_cb (const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    s_days_scan_t *s = (s_days_scan_t *) arg;
    if (klen != s->idlen + 9 || memcmp (key, s->id, s->idlen) != 0
    ||  ((const uint8_t *) key) [s->idlen] != 0)
        return 1;
    uint64_t day = relais_key_to_u64 ((const uint8_t *) key + s->idlen + 1);
    if (day > s->last)
        return 1;
    if (vlen == 16 && day >= s->first)
        s->net [day - s->first] += (int64_t) relais_key_to_u64 (val)
                                 - (int64_t) relais_key_to_u64 ((const uint8_t *) val + 8);
    return 0;
}

//  Add structure id's net change per day over the window ending at now's
//  day into net [window].
static int
s_days_net (capacity_state_t *self, relais_txn_t *txn, const char *id, uint64_t now,
            int64_t *net)
{
    uint32_t w = self->opts.window_days;
    uint64_t last = s_day (now);
    uint64_t first = last + 1 >= w? last + 1 - w: 0;
    s_days_scan_t s = { id, strlen (id), first, last, net };
    uint8_t key [CAPACITY_ID_MAX + 9];
    size_t klen = s_day_key (id, first, key);
    return relais_txn_scan (txn, S_DB_DAYS, key, klen, s_days_cb, &s);
}

//  Slope of a structure's occupancy (places/day, positive = filling)
static int
s_struct_slope (capacity_state_t *self, relais_txn_t *txn, const char *id, uint64_t now,
                double *slope)
{
    int64_t net [366] = { 0 };
    int rc = s_days_net (self, txn, id, now, net);
    *slope = rc? 0: capacity_forecast_slope (net, self->opts.window_days);
    return rc;
}

//  ---------------------------------------------------------------------------
//  Alerts

static int
s_alert_event (capacity_state_t *self, relais_txn_t *txn, const char *key, int kind,
               const char *scope, const char *rule, bool raised, uint32_t threshold,
               uint32_t value, uint64_t ts, const char *corr)
{
    s_map_t m;
    s_map_init (&m);
    s_kv_str (&m, "kind", capacity_kind_names [kind]);
    s_kv_str (&m, "scope", scope);
    s_kv_str (&m, "rule", rule);
    s_kv_uint (&m, "threshold", threshold);
    s_kv_uint (&m, "value", value);
    int rc = s_emit (self, txn, raised? "capacity.alert": "capacity.cleared", key, corr, ts, &m);
    s_map_fini (&m);
    if (rc == 0)
        relais_notice ("%s key=%s rule=%s threshold=%u value=%u",
                       raised? "alert": "cleared", key, rule, threshold, value);
    return rc;
}

//  Re-evaluate the structure's own rules; updates st's flags (the caller
//  stores st afterwards).
static int
s_struct_alerts (capacity_state_t *self, relais_txn_t *txn, s_struct_t *st, uint64_t ts,
                 const char *corr)
{
    uint32_t free = s_free (st);
    uint32_t pct = s_occupancy_pct (st->places, (uint64_t) st->occupied + st->reserved);
    bool free_on = st->th.free_below && free < st->th.free_below;
    bool occ_on = st->th.occupancy_above && pct > st->th.occupancy_above;
    int rc = 0;
    if (free_on != st->alert_free) {
        rc = s_alert_event (self, txn, st->id, st->kind, "structure", "free_below", free_on,
                            st->th.free_below, free, ts, corr);
        st->alert_free = free_on;
    }
    if (rc == 0 && occ_on != st->alert_occ) {
        rc = s_alert_event (self, txn, st->id, st->kind, "structure", "occupancy_above", occ_on,
                            st->th.occupancy_above, pct, ts, corr);
        st->alert_occ = occ_on;
    }
    return rc;
}

typedef struct {
    uint64_t places [CAPACITY_KINDS], taken [CAPACITY_KINDS], occupied [CAPACITY_KINDS],
             reserved [CAPACITY_KINDS];
    uint32_t count [CAPACITY_KINDS];
} s_totals_t;

static int
s_totals_cb (const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    s_totals_t *t = (s_totals_t *) arg;
    s_struct_t st;
    if (s_struct_parse ((const char *) key, klen, val, vlen, &st))
        return 0;                       //  a damaged record counts for nothing
    t->places [st.kind] += st.places;
    t->taken [st.kind] += (uint64_t) st.occupied + st.reserved;
    t->occupied [st.kind] += st.occupied;
    t->reserved [st.kind] += st.reserved;
    t->count [st.kind]++;
    return 0;
}

static int
s_totals (relais_txn_t *txn, s_totals_t *t)
{
    memset (t, 0, sizeof *t);
    return relais_txn_scan (txn, S_DB_STRUCTS, NULL, 0, s_totals_cb, t);
}

static void
s_kind_meta (int kind, const char *rule, char *name, size_t size)
{
    snprintf (name, size, "alert.%s.%s", capacity_kind_names [kind], rule);
}

static void
s_kind_key (int kind, char *key, size_t size)
{
    snprintf (key, size, "kind:%s", capacity_kind_names [kind]);
}

//  Re-evaluate the kind-scope rules of kind against the totals.
static int
s_kind_alerts (capacity_state_t *self, relais_txn_t *txn, int kind, uint64_t ts,
               const char *corr)
{
    const capacity_thresholds_t *th = &self->opts.kinds [kind];
    s_totals_t t;
    int rc = s_totals (txn, &t);
    if (rc)
        return rc;
    uint64_t free64 = t.taken [kind] >= t.places [kind]? 0: t.places [kind] - t.taken [kind];
    uint32_t free = free64 > UINT32_MAX? UINT32_MAX: (uint32_t) free64;
    uint32_t pct = s_occupancy_pct (t.places [kind], t.taken [kind]);
    bool on [2] = {
        th->free_below && t.count [kind] && free < th->free_below,
        th->occupancy_above && t.count [kind] && pct > th->occupancy_above
    };
    const char *rules [2] = { "free_below", "occupancy_above" };
    uint32_t thresholds [2] = { th->free_below, th->occupancy_above };
    uint32_t values [2] = { free, pct };
    char key [32];
    s_kind_key (kind, key, sizeof key);
    for (int i = 0; i < 2; i++) {
        char name [48];
        s_kind_meta (kind, rules [i], name, sizeof name);
        uint64_t was = 0;
        if ((rc = relais_meta_get (txn, name, &was)))
            return rc;
        if ((was != 0) == on [i])
            continue;
        if ((rc = s_alert_event (self, txn, key, kind, "kind", rules [i], on [i],
                                 thresholds [i], values [i], ts, corr))
        ||  (rc = relais_meta_set (txn, name, on [i])))
            return rc;
    }
    return 0;
}

//  Store st after a change of its numbers: its alerts, then its kind's.
static int
s_struct_commit (capacity_state_t *self, relais_txn_t *txn, s_struct_t *st, uint64_t ts,
                 const char *corr)
{
    int rc = s_struct_alerts (self, txn, st, ts, corr);
    if (rc || (rc = s_struct_put (txn, st)))
        return rc;
    return s_kind_alerts (self, txn, st->kind, ts, corr);
}

//  ---------------------------------------------------------------------------
//  Events about a structure

static int
s_event_updated (capacity_state_t *self, relais_txn_t *txn, const s_struct_t *st,
                 const char *cause, const char *reason, uint64_t ts)
{
    s_map_t m;
    s_map_init (&m);
    s_kv_str (&m, "kind", capacity_kind_names [st->kind]);
    s_kv_uint (&m, "places", st->places);
    s_kv_uint (&m, "occupied", st->occupied);
    s_kv_uint (&m, "reserved", st->reserved);
    s_kv_uint (&m, "free", s_free (st));
    s_kv_str (&m, "cause", cause);
    if (reason)
        s_kv_str (&m, "reason", reason);
    int rc = s_emit (self, txn, "capacity.updated", st->id, NULL, ts, &m);
    s_map_fini (&m);
    return rc;
}

static int
s_event_declared (capacity_state_t *self, relais_txn_t *txn, const s_struct_t *st,
                  uint64_t ts)
{
    s_map_t m;
    s_map_init (&m);
    s_kv_str (&m, "kind", capacity_kind_names [st->kind]);
    s_kv_uint (&m, "arrondissement", st->arrondissement);
    s_kv_uint (&m, "places", st->places);
    s_kv_uint (&m, "households", st->households);
    relais_pack_str (&m.pk, "publics");
    relais_pack_mask (&m.pk, st->publics, relais_public_names, RELAIS_PUBLIC_COUNT);
    m.n++;
    s_kv_str (&m, "operator", st->operator_);
    int rc = s_emit (self, txn, "capacity.declared", st->id, NULL, ts, &m);
    s_map_fini (&m);
    return rc;
}

static int
s_event_reserved (capacity_state_t *self, relais_txn_t *txn, const s_struct_t *st,
                  const s_resv_t *r, uint64_t ts)
{
    s_map_t m;
    s_map_init (&m);
    s_kv_str (&m, "kind", capacity_kind_names [st->kind]);
    s_kv_str (&m, "reservation", r->id);
    s_kv_str (&m, "state", s_rstate_names [r->state]);
    s_kv_uint (&m, "places", r->places);
    s_kv_uint (&m, "reserved", st->reserved);
    s_kv_uint (&m, "free", s_free (st));
    int rc = s_emit (self, txn, "capacity.reserved", st->id, NULL, ts, &m);
    s_map_fini (&m);
    return rc;
}

//  ---------------------------------------------------------------------------
//  Plan matching: refs (ref -> at, structure) and pending checks
//  (plan -> deadline, closed_at, structure)

static int
s_mismatch (capacity_state_t *self, relais_txn_t *txn, const char *plan, const char *structure,
            const char *reason, uint64_t ts, const char *corr)
{
    s_map_t m;
    s_map_init (&m);
    s_kv_str (&m, "plan", plan);
    s_kv_str (&m, "structure", structure);
    s_kv_str (&m, "reason", reason);
    int rc = s_emit (self, txn, "capacity.mismatch", structure, corr, ts, &m);
    s_map_fini (&m);
    if (rc == 0)
        relais_warning ("mismatch plan=%s structure=%s reason=%s", plan, structure, reason);
    return rc;
}

//  An entry with ref at structure: remember it, and settle a pending check.
static int
s_ref_entry (capacity_state_t *self, relais_txn_t *txn, const char *ref, const char *structure,
             uint64_t at)
{
    uint8_t value [8 + CAPACITY_ID_MAX];
    relais_u64_to_key (at, value);
    size_t n = strlen (structure);
    memcpy (value + 8, structure, n);
    int rc = relais_txn_put (txn, S_DB_REFS, ref, strlen (ref), value, 8 + n);
    if (rc)
        return rc;
    const void *data;
    size_t size;
    rc = relais_txn_get (txn, S_DB_PENDING, ref, strlen (ref), &data, &size);
    if (rc == RELAIS_ENOTFOUND)
        return 0;
    if (rc)
        return rc;
    char expected [CAPACITY_ID_MAX + 1] = "";
    if (size > 16 && size - 16 <= CAPACITY_ID_MAX)
        memcpy (expected, (const uint8_t *) data + 16, size - 16);
    if ((rc = relais_txn_del (txn, S_DB_PENDING, ref, strlen (ref))))
        return rc;
    if (strcmp (expected, structure) == 0) {
        relais_info ("matched plan=%s structure=%s", ref, structure);
        return 0;
    }
    return s_mismatch (self, txn, ref, expected, "other_structure", at, NULL);
}

//  ---------------------------------------------------------------------------
//  Requests

typedef struct {
    capacity_state_t *self;
    relais_txn_t *txn;
    const msgpack_object *req;
    uint64_t now, at;
    relais_error_t *err;
    s_map_t *reply;                     //  the op's own reply pairs
} s_ctx_t;

typedef int (s_op_fn) (s_ctx_t *c);

//  Read a required or optional uint field in [lo, hi]. Returns 1 when
//  present, 0 when absent (and optional), or a negative error.
static int
s_field_uint (s_ctx_t *c, const char *name, bool required, uint64_t lo, uint64_t hi,
              uint64_t *value)
{
    const msgpack_object *o = relais_msg_get (c->req, name);
    if (!o) {
        if (required)
            return relais_error_set (c->err, RELAIS_CODE_INVALID, name,
                                     "required, an integer from %" PRIu64 " to %" PRIu64, lo, hi);
        return 0;
    }
    if (!relais_msg_uint (o, value) || *value < lo || *value > hi)
        return relais_error_set (c->err, RELAIS_CODE_INVALID, name,
                                 "must be an integer from %" PRIu64 " to %" PRIu64, lo, hi);
    return 1;
}

//  An id field (structure, reservation, ref, plan). Returns 1/0/negative.
static int
s_field_id (s_ctx_t *c, const char *name, bool required, char *buf)
{
    const msgpack_object *o = relais_msg_get (c->req, name);
    if (!o) {
        if (required)
            return relais_error_set (c->err, RELAIS_CODE_INVALID, name,
                                     "required, an id of 1 to 63 letters, digits, '-', '_', '.'");
        return 0;
    }
    if (o->type != MSGPACK_OBJECT_STR)
        return relais_error_set (c->err, RELAIS_CODE_INVALID, name,
                                 "must be an id of 1 to 63 letters, digits, '-', '_', '.'");
    if (o->via.str.size > CAPACITY_ID_MAX)
        return relais_error_set (c->err, RELAIS_CODE_TOO_LARGE, name, "at most 63 bytes");
    if (!s_id_ok (o->via.str.ptr, o->via.str.size, strcmp (name, "ref") == 0))
        return relais_error_set (c->err, RELAIS_CODE_INVALID, name,
                                 "must be an id of letters, digits, '-', '_', '.'%s",
                                 strcmp (name, "ref") == 0? ", ':'": "");
    memcpy (buf, o->via.str.ptr, o->via.str.size);
    buf [o->via.str.size] = 0;
    return 1;
}

//  An enum field. Returns the index, or a negative error.
static int
s_field_enum (s_ctx_t *c, const char *name, const char *const *table, int count,
              const char *fallback)
{
    const msgpack_object *o = relais_msg_get (c->req, name);
    char text [32];
    int index = -1;
    if (!o && fallback)
        index = relais_enum_find (table, count, fallback);
    else
    if (o && relais_msg_str_copy (o, text, sizeof text) >= 0)
        index = relais_enum_find (table, count, text);
    if (index >= 0)
        return index;
    char list [160] = "";
    for (int i = 0; i < count; i++)
        snprintf (list + strlen (list), sizeof list - strlen (list), "%s%s", i? ", ": "", table [i]);
    return relais_error_set (c->err, RELAIS_CODE_INVALID, name, "%s one of %s",
                             o? "must be": "required,", list);
}

//  Load the structure named by "id". Returns 0 or a negative error (err
//  set to not_found, or a store error).
static int
s_load (s_ctx_t *c, s_struct_t *st)
{
    char id [CAPACITY_ID_MAX + 1];
    int rc = s_field_id (c, "id", true, id);
    if (rc < 0)
        return rc;
    rc = s_struct_get (c->txn, id, st);
    if (rc == RELAIS_ENOTFOUND)
        return relais_error_set (c->err, RELAIS_CODE_NOT_FOUND, "id", "no structure has this id");
    if (rc == RELAIS_EMALFORMED)
        return relais_error_set (c->err, RELAIS_CODE_UNAVAILABLE, "", "stored structure unreadable");
    return rc;
}

static bool
s_storage (s_ctx_t *c, int rc)
{
    //  True when rc is storage trouble rather than a refusal
    return rc < 0 && c->err->code == NULL;
}

static void
s_view (capacity_state_t *self, relais_txn_t *txn, const s_struct_t *st, uint64_t now,
        msgpack_packer *pk)
{
    s_map_t m;
    s_map_init (&m);
    s_kv_str (&m, "id", st->id);
    s_kv_str (&m, "kind", capacity_kind_names [st->kind]);
    s_kv_uint (&m, "arrondissement", st->arrondissement);
    s_kv_uint (&m, "places", st->places);
    s_kv_uint (&m, "households", st->households);
    relais_pack_str (&m.pk, "publics");
    relais_pack_mask (&m.pk, st->publics, relais_public_names, RELAIS_PUBLIC_COUNT);
    m.n++;
    s_kv_str (&m, "operator", st->operator_);
    s_kv_uint (&m, "occupied", st->occupied);
    s_kv_uint (&m, "reserved", st->reserved);
    s_kv_uint (&m, "free", s_free (st));
    s_kv_uint (&m, "free_below", st->th.free_below);
    s_kv_uint (&m, "occupancy_above", st->th.occupancy_above);
    relais_pack_str (&m.pk, "alerts");
    msgpack_pack_array (&m.pk, st->alert_free + st->alert_occ);
    if (st->alert_free)
        relais_pack_str (&m.pk, "free_below");
    if (st->alert_occ)
        relais_pack_str (&m.pk, "occupancy_above");
    m.n++;
    double slope = 0;
    s_struct_slope (self, txn, st->id, now, &slope);
    s_kv_int (&m, "slope_per_day", -(int64_t) llround (slope));
    s_kv_uint (&m, "entries", st->entries);
    s_kv_uint (&m, "exits", st->exits);
    s_kv_uint (&m, "updated_at", st->updated_at);
    s_map_emit (&m, pk);
    s_map_fini (&m);
}

typedef struct {
    s_ctx_t *c;
    msgpack_sbuffer items;
    msgpack_packer pk;
    uint32_t n;
    int kind;                           //  -1: any
} s_list_t;

static int
s_list_cb (const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    s_list_t *l = (s_list_t *) arg;
    s_struct_t st;
    if (s_struct_parse ((const char *) key, klen, val, vlen, &st))
        return 0;
    if (l->kind >= 0 && st.kind != l->kind)
        return 0;
    s_view (l->c->self, l->c->txn, &st, l->c->now, &l->pk);
    l->n++;
    return 0;
}

static int
s_op_list (s_ctx_t *c)
{
    s_list_t l = { c, { 0 }, { 0 }, 0, -1 };
    if (relais_msg_get (c->req, "kind")) {
        l.kind = s_field_enum (c, "kind", capacity_kind_names, CAPACITY_KINDS, NULL);
        if (l.kind < 0)
            return l.kind;
    }
    msgpack_sbuffer_init (&l.items);
    msgpack_packer_init (&l.pk, &l.items, msgpack_sbuffer_write);
    int rc = relais_txn_scan (c->txn, S_DB_STRUCTS, NULL, 0, s_list_cb, &l);
    if (rc == 0) {
        relais_pack_str (&c->reply->pk, "structures");
        msgpack_pack_array (&c->reply->pk, l.n);
        if (l.items.size)
            relais_pack_raw (&c->reply->pk, l.items.data, l.items.size);
        c->reply->n++;
    }
    msgpack_sbuffer_destroy (&l.items);
    return rc;
}

typedef struct {
    const char *id;
    msgpack_sbuffer items;
    msgpack_packer pk;
    uint32_t n;
} s_held_t;

static int
s_held_cb (const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    s_held_t *h = (s_held_t *) arg;
    s_resv_t r;
    if (s_resv_parse (key, klen, val, vlen, &r) || strcmp (r.structure, h->id) != 0
    ||  r.state != S_HELD)
        return 0;
    msgpack_pack_map (&h->pk, 3);
    relais_pack_kv_str (&h->pk, "reservation", r.id);
    relais_pack_kv_uint (&h->pk, "places", r.places);
    relais_pack_kv_uint (&h->pk, "expires", r.expires);
    h->n++;
    return 0;
}

static int
s_op_get (s_ctx_t *c)
{
    s_struct_t st;
    int rc = s_load (c, &st);
    if (rc)
        return rc;
    relais_pack_str (&c->reply->pk, "structure");
    s_view (c->self, c->txn, &st, c->now, &c->reply->pk);
    c->reply->n++;
    s_held_t h = { st.id, { 0 }, { 0 }, 0 };
    msgpack_sbuffer_init (&h.items);
    msgpack_packer_init (&h.pk, &h.items, msgpack_sbuffer_write);
    rc = relais_txn_scan (c->txn, S_DB_RESV, NULL, 0, s_held_cb, &h);
    if (rc == 0) {
        relais_pack_str (&c->reply->pk, "held");
        msgpack_pack_array (&c->reply->pk, h.n);
        if (h.items.size)
            relais_pack_raw (&c->reply->pk, h.items.data, h.items.size);
        c->reply->n++;
    }
    msgpack_sbuffer_destroy (&h.items);
    return rc;
}

static void
s_reply_numbers (s_ctx_t *c, const s_struct_t *st)
{
    s_kv_str (c->reply, "id", st->id);
    s_kv_uint (c->reply, "places", st->places);
    s_kv_uint (c->reply, "occupied", st->occupied);
    s_kv_uint (c->reply, "reserved", st->reserved);
    s_kv_uint (c->reply, "free", s_free (st));
}

//  Declare (create or change) a structure from validated fields. Used by
//  the API and by the configuration. *created/*changed say what happened.
static int
s_declare (capacity_state_t *self, relais_txn_t *txn, const s_struct_t *want, uint64_t ts,
           relais_error_t *err, bool *created, bool *changed)
{
    s_struct_t st;
    *created = *changed = false;
    int rc = s_struct_get (txn, want->id, &st);
    if (rc == RELAIS_ENOTFOUND) {
        st = *want;
        st.occupied = st.reserved = 0;
        st.alert_free = st.alert_occ = false;
        st.entries = st.exits = 0;
        st.updated_at = ts;
        *created = *changed = true;
        if ((rc = s_event_declared (self, txn, &st, ts)))
            return rc;
        return s_struct_commit (self, txn, &st, ts, NULL);
    }
    if (rc)
        return rc;
    if (st.kind != want->kind)
        return relais_error_set (err, RELAIS_CODE_CONFLICT, "kind",
                                 "structure is declared as %s; its kind cannot change",
                                 capacity_kind_names [st.kind]);
    uint64_t taken = (uint64_t) st.occupied + st.reserved;
    if (want->places < taken)
        return relais_error_set (err, RELAIS_CODE_CONFLICT, "places",
                                 "%u places would not hold the %u occupied and %u reserved",
                                 want->places, st.occupied, st.reserved);
    bool places_changed = st.places != want->places;
    bool declared_changed = places_changed || st.arrondissement != want->arrondissement
        || st.households != want->households || st.publics != want->publics
        || strcmp (st.operator_, want->operator_) != 0;
    bool th_changed = st.th.free_below != want->th.free_below
        || st.th.occupancy_above != want->th.occupancy_above;
    if (!declared_changed && !th_changed)
        return 0;
    *changed = true;
    st.arrondissement = want->arrondissement;
    st.places = want->places;
    st.households = want->households;
    st.publics = want->publics;
    snprintf (st.operator_, sizeof st.operator_, "%s", want->operator_);
    st.th = want->th;
    st.updated_at = ts;
    if (declared_changed && (rc = s_event_declared (self, txn, &st, ts)))
        return rc;
    if (places_changed && (rc = s_event_updated (self, txn, &st, "capacity", NULL, ts)))
        return rc;
    return s_struct_commit (self, txn, &st, ts, NULL);
}

static int
s_op_declare (s_ctx_t *c)
{
    s_struct_t want;
    memset (&want, 0, sizeof want);
    uint64_t v;
    int rc = s_field_id (c, "id", true, want.id);
    if (rc < 0)
        return rc;
    if ((want.kind = s_field_enum (c, "kind", capacity_kind_names, CAPACITY_KINDS, NULL)) < 0)
        return want.kind;
    if ((rc = s_field_uint (c, "arrondissement", true, 0, 20, &v)) < 0)
        return rc;
    want.arrondissement = (uint32_t) v;
    if ((rc = s_field_uint (c, "places", true, 0, 100000, &v)) < 0)
        return rc;
    want.places = (uint32_t) v;
    v = 0;
    if ((rc = s_field_uint (c, "households", false, 0, 100000, &v)) < 0)
        return rc;
    want.households = (uint32_t) v;
    const msgpack_object *publics = relais_msg_get (c->req, "publics");
    if (publics) {
        if (publics->type != MSGPACK_OBJECT_ARRAY || publics->via.array.size > RELAIS_PUBLIC_COUNT)
            return relais_error_set (c->err, RELAIS_CODE_INVALID, "publics",
                                     "must be an array of at most %d publics", RELAIS_PUBLIC_COUNT);
        for (uint32_t i = 0; i < publics->via.array.size; i++) {
            char name [48];
            char path [32];
            snprintf (path, sizeof path, "publics[%u]", i);
            int p = relais_msg_str_copy (&publics->via.array.ptr [i], name, sizeof name) < 0? -1
                  : relais_enum_find (relais_public_names, RELAIS_PUBLIC_COUNT, name);
            if (p < 0)
                return relais_error_set (c->err, RELAIS_CODE_INVALID, path, "must be a public of DOMAIN.md");
            if (want.publics & (1u << p))
                return relais_error_set (c->err, RELAIS_CODE_INVALID, path, "duplicate public");
            want.publics |= 1u << p;
        }
    }
    const msgpack_object *op = relais_msg_get (c->req, "operator");
    if (op) {
        if (op->type != MSGPACK_OBJECT_STR)
            return relais_error_set (c->err, RELAIS_CODE_INVALID, "operator", "must be a string");
        if (op->via.str.size > CAPACITY_OPERATOR_MAX)
            return relais_error_set (c->err, RELAIS_CODE_TOO_LARGE, "operator",
                                     "at most %d bytes", CAPACITY_OPERATOR_MAX);
        if (!relais_utf8_clean (op->via.str.ptr, op->via.str.size, false))
            return relais_error_set (c->err, RELAIS_CODE_INVALID, "operator", "must be one line of text");
        memcpy (want.operator_, op->via.str.ptr, op->via.str.size);
    }
    v = 0;
    if ((rc = s_field_uint (c, "free_below", false, 0, 100000, &v)) < 0)
        return rc;
    want.th.free_below = (uint32_t) v;
    v = 0;
    if ((rc = s_field_uint (c, "occupancy_above", false, 0, 100, &v)) < 0)
        return rc;
    want.th.occupancy_above = (uint32_t) v;
    bool created, changed;
    rc = s_declare (c->self, c->txn, &want, c->at, c->err, &created, &changed);
    if (rc)
        return rc;
    s_kv_str (c->reply, "id", want.id);
    s_kv_bool (c->reply, "created", created);
    s_kv_bool (c->reply, "changed", changed);
    return 0;
}

static int
s_op_update (s_ctx_t *c)
{
    s_struct_t st;
    uint64_t occupied, previous;
    int rc = s_load (c, &st);
    if (rc || (rc = s_field_uint (c, "occupied", true, 0, 100000, &occupied)) < 0
    ||  (rc = s_field_uint (c, "previous", true, 0, 100000, &previous)) < 0)
        return rc;
    if (previous != st.occupied)
        return relais_error_set (c->err, RELAIS_CODE_CONFLICT, "previous",
                                 "occupied is %u here, not %u; send the update again from %u, "
                                 "or a capacity.correct with a reason",
                                 st.occupied, (uint32_t) previous, st.occupied);
    if (occupied + st.reserved > st.places)
        return relais_error_set (c->err, RELAIS_CODE_CONFLICT, "occupied",
                                 "%u occupied + %u reserved would exceed the %u places",
                                 (uint32_t) occupied, st.reserved, st.places);
    st.occupied = (uint32_t) occupied;
    st.updated_at = c->at;
    if ((rc = s_event_updated (c->self, c->txn, &st, "occupancy", NULL, c->at))
    ||  (rc = s_struct_commit (c->self, c->txn, &st, c->at, NULL)))
        return rc;
    s_reply_numbers (c, &st);
    return 0;
}

static int
s_op_correct (s_ctx_t *c)
{
    s_struct_t st;
    uint64_t occupied = 0, places = 0;
    int rc = s_load (c, &st);
    if (rc)
        return rc;
    int reason = s_field_enum (c, "reason", s_correct_reasons, 5, NULL);
    if (reason < 0)
        return reason;
    int has_occ = s_field_uint (c, "occupied", false, 0, 100000, &occupied);
    if (has_occ < 0)
        return has_occ;
    int has_places = s_field_uint (c, "places", false, 0, 100000, &places);
    if (has_places < 0)
        return has_places;
    if (!has_occ && !has_places)
        return relais_error_set (c->err, RELAIS_CODE_INVALID, "occupied",
                                 "a correction names occupied, places or both");
    uint32_t new_occ = has_occ? (uint32_t) occupied: st.occupied;
    uint32_t new_places = has_places? (uint32_t) places: st.places;
    if ((uint64_t) new_occ + st.reserved > new_places)
        return relais_error_set (c->err, RELAIS_CODE_CONFLICT, has_occ? "occupied": "places",
                                 "%u occupied + %u reserved would exceed %u places",
                                 new_occ, st.reserved, new_places);
    st.occupied = new_occ;
    st.places = new_places;
    st.updated_at = c->at;
    if ((rc = s_event_updated (c->self, c->txn, &st, "correction", s_correct_reasons [reason], c->at))
    ||  (rc = s_struct_commit (c->self, c->txn, &st, c->at, NULL)))
        return rc;
    relais_notice ("correction id=%s reason=%s occupied=%u places=%u", st.id,
                   s_correct_reasons [reason], st.occupied, st.places);
    s_reply_numbers (c, &st);
    return 0;
}

static int
s_op_reserve (s_ctx_t *c)
{
    s_struct_t st;
    uint64_t places;
    s_resv_t r;
    memset (&r, 0, sizeof r);
    int rc = s_load (c, &st);
    if (rc || (rc = s_field_uint (c, "places", true, 1, 10000, &places)) < 0)
        return rc;
    rc = s_field_id (c, "reservation", false, r.id);
    if (rc < 0)
        return rc;
    if (rc == 0) {
        uint64_t next = 0;
        if ((rc = relais_meta_get (c->txn, "next_reservation", &next))
        ||  (rc = relais_meta_set (c->txn, "next_reservation", next + 1)))
            return rc;
        snprintf (r.id, sizeof r.id, "R-%06" PRIu64, next + 1);
    }
    const void *data;
    size_t size;
    rc = relais_txn_get (c->txn, S_DB_RESV, r.id, strlen (r.id), &data, &size);
    if (rc == 0)
        return relais_error_set (c->err, RELAIS_CODE_CONFLICT, "reservation",
                                 "a reservation with this id exists");
    if (rc != RELAIS_ENOTFOUND)
        return rc;
    uint32_t free = s_free (&st);
    if (places > free)
        return relais_error_set (c->err, RELAIS_CODE_CONFLICT, "places",
                                 "%u places asked, %u free (%u places, %u occupied, %u reserved)",
                                 (uint32_t) places, free, st.places, st.occupied, st.reserved);
    snprintf (r.structure, sizeof r.structure, "%s", st.id);
    r.places = (uint32_t) places;
    r.state = S_HELD;
    r.at = c->at;
    r.expires = c->now + c->self->opts.hold_us;
    st.reserved += r.places;
    st.updated_at = c->at;
    uint8_t hkey [8 + CAPACITY_ID_MAX];
    size_t hlen = s_hold_key (r.expires, r.id, hkey);
    if ((rc = s_resv_put (c->txn, &r))
    ||  (rc = relais_txn_put (c->txn, S_DB_HOLDS, hkey, hlen, "", 0))
    ||  (rc = s_event_reserved (c->self, c->txn, &st, &r, c->at))
    ||  (rc = s_struct_commit (c->self, c->txn, &st, c->at, NULL)))
        return rc;
    s_reply_numbers (c, &st);
    s_kv_str (c->reply, "reservation", r.id);
    s_kv_uint (c->reply, "expires", r.expires);
    return 0;
}

static int
s_entry (capacity_state_t *self, relais_txn_t *txn, s_struct_t *st, uint32_t count,
         int from, const char *ref, uint64_t at)
{
    st->occupied += count;
    st->entries += count;
    st->updated_at = at;
    s_map_t m;
    s_map_init (&m);
    s_kv_str (&m, "kind", capacity_kind_names [st->kind]);
    s_kv_uint (&m, "count", count);
    s_kv_str (&m, "from", s_from_names [from]);
    if (ref && *ref)
        s_kv_str (&m, "ref", ref);
    s_kv_uint (&m, "occupied", st->occupied);
    s_kv_uint (&m, "free", s_free (st));
    int rc = s_emit (self, txn, "capacity.entry", st->id, NULL, at, &m);
    s_map_fini (&m);
    if (rc || (rc = s_day_add (txn, st->id, at, count, 0)))
        return rc;
    if (ref && *ref && (rc = s_ref_entry (self, txn, ref, st->id, at)))
        return rc;
    return s_struct_commit (self, txn, st, at, NULL);
}

static int
s_op_reservation (s_ctx_t *c)
{
    s_resv_t r;
    s_struct_t st;
    char ref [CAPACITY_ID_MAX + 1] = "";
    char id [CAPACITY_ID_MAX + 1];
    int rc = s_field_id (c, "reservation", true, id);
    if (rc < 0)
        return rc;
    static const char *const actions [] = { "confirm", "cancel" };
    int action = s_field_enum (c, "action", actions, 2, NULL);
    if (action < 0)
        return action;
    int from = s_field_enum (c, "from", s_from_names, 4, "115");
    if (from < 0 || (rc = s_field_id (c, "ref", false, ref)) < 0)
        return from < 0? from: rc;
    rc = s_resv_get (c->txn, id, &r);
    if (rc == RELAIS_ENOTFOUND)
        return relais_error_set (c->err, RELAIS_CODE_NOT_FOUND, "reservation", "no reservation has this id");
    if (rc)
        return rc;
    if (r.state != S_HELD)
        return relais_error_set (c->err, RELAIS_CODE_CONFLICT, "reservation",
                                 "the reservation is %s, no longer held", s_rstate_names [r.state]);
    rc = s_struct_get (c->txn, r.structure, &st);
    if (rc)
        return rc == RELAIS_ENOTFOUND? relais_error_set (c->err, RELAIS_CODE_UNAVAILABLE, "",
                                                         "stored reservation names no structure"): rc;
    uint8_t hkey [8 + CAPACITY_ID_MAX];
    size_t hlen = s_hold_key (r.expires, r.id, hkey);
    rc = relais_txn_del (c->txn, S_DB_HOLDS, hkey, hlen);
    if (rc && rc != RELAIS_ENOTFOUND)
        return rc;
    st.reserved = st.reserved >= r.places? st.reserved - r.places: 0;
    r.state = action == 0? S_CONFIRMED: S_CANCELLED;
    if ((rc = s_resv_put (c->txn, &r)) || (rc = s_event_reserved (c->self, c->txn, &st, &r, c->at)))
        return rc;
    if (action == 0)
        rc = s_entry (c->self, c->txn, &st, r.places, from, *ref? ref: r.id, c->at);
    else {
        st.updated_at = c->at;
        rc = s_struct_commit (c->self, c->txn, &st, c->at, NULL);
    }
    if (rc)
        return rc;
    s_reply_numbers (c, &st);
    s_kv_str (c->reply, "reservation", r.id);
    s_kv_str (c->reply, "state", s_rstate_names [r.state]);
    return 0;
}

static int
s_op_entry (s_ctx_t *c)
{
    s_struct_t st;
    uint64_t count;
    char ref [CAPACITY_ID_MAX + 1] = "";
    int rc = s_load (c, &st);
    if (rc || (rc = s_field_uint (c, "count", true, 1, 10000, &count)) < 0)
        return rc;
    int from = s_field_enum (c, "from", s_from_names, 4, NULL);
    if (from < 0 || (rc = s_field_id (c, "ref", false, ref)) < 0)
        return from < 0? from: rc;
    uint32_t free = s_free (&st);
    if (count > free)
        return relais_error_set (c->err, RELAIS_CODE_CONFLICT, "count",
                                 "%u entering, %u free (%u places, %u occupied, %u reserved)",
                                 (uint32_t) count, free, st.places, st.occupied, st.reserved);
    if ((rc = s_entry (c->self, c->txn, &st, (uint32_t) count, from, ref, c->at)))
        return rc;
    s_reply_numbers (c, &st);
    return 0;
}

static int
s_op_exit (s_ctx_t *c)
{
    s_struct_t st;
    uint64_t count;
    int rc = s_load (c, &st);
    if (rc || (rc = s_field_uint (c, "count", true, 1, 10000, &count)) < 0)
        return rc;
    int to = s_field_enum (c, "to", s_to_names, 4, NULL);
    if (to < 0)
        return to;
    if (count > st.occupied)
        return relais_error_set (c->err, RELAIS_CODE_CONFLICT, "count",
                                 "%u leaving, only %u occupied", (uint32_t) count, st.occupied);
    st.occupied -= (uint32_t) count;
    st.exits += count;
    st.updated_at = c->at;
    s_map_t m;
    s_map_init (&m);
    s_kv_str (&m, "kind", capacity_kind_names [st.kind]);
    s_kv_uint (&m, "count", count);
    s_kv_str (&m, "to", s_to_names [to]);
    s_kv_uint (&m, "occupied", st.occupied);
    s_kv_uint (&m, "free", s_free (&st));
    rc = s_emit (c->self, c->txn, "capacity.exit", st.id, NULL, c->at, &m);
    s_map_fini (&m);
    if (rc || (rc = s_day_add (c->txn, st.id, c->at, 0, count))
    ||  (rc = s_struct_commit (c->self, c->txn, &st, c->at, NULL)))
        return rc;
    s_reply_numbers (c, &st);
    return 0;
}

//  The forecast of one kind, as a map in pk; publish it when emit.
typedef struct {
    capacity_state_t *self;
    relais_txn_t *txn;
    uint64_t now;
    int kind;
    int64_t *net;
} s_fc_scan_t;

static int
s_fc_cb (const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    s_fc_scan_t *f = (s_fc_scan_t *) arg;
    s_struct_t st;
    if (s_struct_parse ((const char *) key, klen, val, vlen, &st) || st.kind != f->kind)
        return 0;
    return s_days_net (f->self, f->txn, st.id, f->now, f->net);
}

static int
s_forecast (capacity_state_t *self, relais_txn_t *txn, int kind, uint64_t now,
            const s_totals_t *t, bool emit, msgpack_packer *pk)
{
    int64_t net [366] = { 0 };
    s_fc_scan_t f = { self, txn, now, kind, net };
    int rc = relais_txn_scan (txn, S_DB_STRUCTS, NULL, 0, s_fc_cb, &f);
    if (rc)
        return rc;
    double slope = capacity_forecast_slope (net, self->opts.window_days);
    uint64_t free = t->taken [kind] >= t->places [kind]? 0: t->places [kind] - t->taken [kind];
    bool full = free == 0 || slope > 0;
    uint64_t days = 0;
    if (free > 0 && slope > 0)
        days = (uint64_t) ceil ((double) free / slope);
    char method [64];
    snprintf (method, sizeof method, "least_squares:%ud", self->opts.window_days);
    s_map_t m;
    s_map_init (&m);
    s_kv_str (&m, "kind", capacity_kind_names [kind]);
    s_kv_uint (&m, "free", free);
    s_kv_int (&m, "slope_per_day", -(int64_t) llround (slope));
    if (full)
        s_kv_uint (&m, "days_to_full", days);
    s_kv_str (&m, "method", method);
    if (emit) {
        char key [32];
        s_kind_key (kind, key, sizeof key);
        rc = s_emit (self, txn, "capacity.forecast", key, NULL, now, &m);
    }
    if (pk) {
        s_kv_uint (&m, "places", t->places [kind]);
        s_kv_uint (&m, "occupied", t->occupied [kind]);
        s_kv_uint (&m, "reserved", t->reserved [kind]);
        s_kv_uint (&m, "structures", t->count [kind]);
        s_map_emit (&m, pk);
    }
    s_map_fini (&m);
    return rc;
}

static int
s_op_forecast (s_ctx_t *c)
{
    int only = -1;
    if (relais_msg_get (c->req, "kind")
    &&  (only = s_field_enum (c, "kind", capacity_kind_names, CAPACITY_KINDS, NULL)) < 0)
        return only;
    s_totals_t t;
    int rc = s_totals (c->txn, &t);
    if (rc)
        return rc;
    uint32_t n = 0;
    for (int k = 0; k < CAPACITY_KINDS; k++)
        if ((only < 0 || only == k) && t.count [k])
            n++;
    relais_pack_str (&c->reply->pk, "forecasts");
    msgpack_pack_array (&c->reply->pk, n);
    c->reply->n++;
    for (int k = 0; k < CAPACITY_KINDS && rc == 0; k++)
        if ((only < 0 || only == k) && t.count [k])
            rc = s_forecast (c->self, c->txn, k, c->now, &t, true, &c->reply->pk);
    return rc;
}

static const struct {
    const char *name;
    s_op_fn *fn;
    bool write;
} s_ops [] = {
    { "capacity.list", s_op_list, false },
    { "capacity.get", s_op_get, false },
    { "capacity.declare", s_op_declare, true },
    { "capacity.update", s_op_update, true },
    { "capacity.correct", s_op_correct, true },
    { "capacity.reserve", s_op_reserve, true },
    { "capacity.reservation", s_op_reservation, true },
    { "capacity.entry", s_op_entry, true },
    { "capacity.exit", s_op_exit, true },
    { "capacity.forecast", s_op_forecast, true },       //  publishes capacity.forecast
};
#define S_OPS (sizeof s_ops / sizeof s_ops [0])

static int
s_op_index (const msgpack_object *request)
{
    const msgpack_object *op = relais_msg_get (request, "op");
    for (size_t i = 0; op && i < S_OPS; i++)
        if (relais_msg_str_eq (op, s_ops [i].name))
            return (int) i;
    return -1;
}

bool
capacity_state_is_write (const msgpack_object *request)
{
    int i = s_op_index (request);
    return i >= 0 && s_ops [i].write;
}

//  Pack the whole reply: ok, idem?, rid?, duplicate?, then the op's pairs.
static void
s_pack_reply (msgpack_sbuffer *out, const msgpack_object *idem, const msgpack_object *rid,
              bool with_dup, bool duplicate, uint32_t n, const void *pairs, size_t size)
{
    msgpack_sbuffer_clear (out);
    msgpack_packer pk;
    msgpack_packer_init (&pk, out, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 1 + n + (idem != NULL) + (rid != NULL) + with_dup);
    relais_pack_kv_bool (&pk, "ok", true);
    if (idem) {
        relais_pack_str (&pk, "idem");
        relais_pack_object (&pk, idem);
    }
    if (rid) {
        relais_pack_str (&pk, "rid");
        relais_pack_object (&pk, rid);
    }
    if (with_dup)
        relais_pack_kv_bool (&pk, "duplicate", duplicate);
    if (size)
        relais_pack_raw (&pk, pairs, size);
}

int
capacity_state_request (capacity_state_t *self, relais_txn_t *txn,
                        const msgpack_object *request, uint64_t now,
                        msgpack_sbuffer *reply, relais_error_t *err)
{
    relais_error_clear (err);
    if (request->type != MSGPACK_OBJECT_MAP) {
        relais_error_set (err, RELAIS_CODE_INVALID, "", "request must be a map");
        return 0;
    }
    const msgpack_object *rid = relais_msg_get (request, "rid");
    const msgpack_object *opname = relais_msg_get (request, "op");
    if (!opname || opname->type != MSGPACK_OBJECT_STR) {
        relais_error_set (err, RELAIS_CODE_INVALID, "op", "required, a string: capacity.<verb>");
        return 0;
    }
    int index = s_op_index (request);
    if (index < 0) {
        relais_error_set (err, RELAIS_CODE_UNKNOWN_OP, "op",
                          "this endpoint serves capacity.list, get, declare, update, correct, "
                          "reserve, reservation, entry, exit and forecast");
        return 0;
    }
    const msgpack_object *idem = relais_msg_get (request, "idem");
    if (idem) {
        if (idem->type != MSGPACK_OBJECT_STR || idem->via.str.size == 0) {
            relais_error_set (err, RELAIS_CODE_INVALID, "idem", "must be a non-empty string");
            return 0;
        }
        if (idem->via.str.size > CAPACITY_IDEM_MAX) {
            relais_error_set (err, RELAIS_CODE_TOO_LARGE, "idem", "at most %d bytes", CAPACITY_IDEM_MAX);
            return 0;
        }
        if (!relais_utf8_clean (idem->via.str.ptr, idem->via.str.size, false)) {
            relais_error_set (err, RELAIS_CODE_INVALID, "idem", "must be one line of text");
            return 0;
        }
    }
    bool write = s_ops [index].write;
    if (idem && write) {
        const void *data;
        size_t size;
        int rc = relais_txn_get (txn, S_DB_IDEM, idem->via.str.ptr, idem->via.str.size, &data, &size);
        if (rc == 0 && size >= 4) {
            uint32_t n = (uint32_t) (((const uint8_t *) data) [0]) << 24
                       | (uint32_t) (((const uint8_t *) data) [1]) << 16
                       | (uint32_t) (((const uint8_t *) data) [2]) << 8
                       | (uint32_t) (((const uint8_t *) data) [3]);
            s_pack_reply (reply, idem, rid, true, true, n, (const uint8_t *) data + 4, size - 4);
            return 0;
        }
        if (rc && rc != RELAIS_ENOTFOUND)
            return rc;
    }
    s_map_t pairs;
    s_map_init (&pairs);
    s_ctx_t c = { self, txn, request, now, now, err, &pairs };
    uint64_t at = now;
    int rc = 0;
    if (write && relais_msg_get (request, "at")) {
        rc = s_field_uint (&c, "at", false, 946684800000000ULL, now + CAPACITY_DAY_US, &at);
        c.at = at;
    }
    if (rc >= 0)
        rc = s_ops [index].fn (&c);
    if (rc < 0 && s_storage (&c, rc)) {
        s_map_fini (&pairs);
        return rc;
    }
    if (!err->code) {
        s_pack_reply (reply, write? idem: NULL, rid, idem && write, false, pairs.n,
                      pairs.buf.data, pairs.buf.size);
        if (idem && write) {
            //  idem -> pair count (4, big-endian), then the pairs
            size_t size = 4 + pairs.buf.size;
            uint8_t *value = (uint8_t *) malloc (size);
            if (!value)
                rc = -ENOMEM;
            else {
                value [0] = (uint8_t) (pairs.n >> 24);
                value [1] = (uint8_t) (pairs.n >> 16);
                value [2] = (uint8_t) (pairs.n >> 8);
                value [3] = (uint8_t) pairs.n;
                if (pairs.buf.size)
                    memcpy (value + 4, pairs.buf.data, pairs.buf.size);
                rc = relais_txn_put (txn, S_DB_IDEM, idem->via.str.ptr, idem->via.str.size,
                                     value, size);
                free (value);
            }
            s_map_fini (&pairs);
            return rc;
        }
    }
    s_map_fini (&pairs);
    return 0;
}

//  ---------------------------------------------------------------------------
//  Configuration and startup

void
capacity_opts_from_config (capacity_opts_t *opts, relais_config_t *config)
{
    memset (opts, 0, sizeof *opts);
    for (int k = 0; k < CAPACITY_KINDS; k++) {
        char path [96];
        snprintf (path, sizeof path, "capacity/alerts/%s/free_below", capacity_kind_names [k]);
        opts->kinds [k].free_below = (uint32_t) relais_config_int (config, path, 0);
        snprintf (path, sizeof path, "capacity/alerts/%s/occupancy_above", capacity_kind_names [k]);
        opts->kinds [k].occupancy_above = (uint32_t) relais_config_int (config, path, 0);
    }
    opts->hold_us = relais_config_duration_ms (config, "capacity/reservation_hold", 7200000) * 1000;
    uint64_t window = relais_config_duration_ms (config, "capacity/forecast/window", 7 * 86400000ULL);
    opts->window_days = (uint32_t) (window / 86400000ULL);
    opts->forecast_every_us = relais_config_duration_ms (config, "capacity/forecast/every",
                                                         86400000ULL) * 1000;
    opts->match_window_us = relais_config_duration_ms (config, "capacity/match_window",
                                                       86400000ULL) * 1000;
}

capacity_state_t *
capacity_state_new (const capacity_opts_t *opts, relais_config_t *config)
{
    capacity_state_t *self = (capacity_state_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->opts = *opts;
    if (self->opts.window_days < 2)
        self->opts.window_days = 2;
    if (self->opts.window_days > 365)
        self->opts.window_days = 365;
    if (self->opts.forecast_every_us == 0)
        self->opts.forecast_every_us = CAPACITY_DAY_US;
    self->config = config;
    return self;
}

void
capacity_state_destroy (capacity_state_t **self_p)
{
    if (*self_p) {
        free (*self_p);
        *self_p = NULL;
    }
}

typedef struct {
    capacity_state_t *self;
    relais_txn_t *txn;
    uint64_t now;
    int rc;
} s_startup_t;

static void
s_config_structure (const char *name, void *arg)
{
    s_startup_t *s = (s_startup_t *) arg;
    if (s->rc)
        return;
    relais_config_t *config = s->self->config;
    s_struct_t want;
    memset (&want, 0, sizeof want);
    if (!s_id_ok (name, strlen (name), false)) {
        relais_error ("%s: capacity/structures/%s: the id must be 1-63 letters, digits, '-', '_', '.'",
                      relais_config_file (config), name);
        s->rc = RELAIS_ECONFIG;
        return;
    }
    snprintf (want.id, sizeof want.id, "%s", name);
    char path [160];
    snprintf (path, sizeof path, "capacity/structures/%s/kind", name);
    const char *kind = relais_config_str (config, path);
    want.kind = kind? s_kind_find (kind): -1;
    if (want.kind < 0) {
        relais_error ("%s: %s: must be hotel, sas, lima, chu, halte or 115",
                      relais_config_file (config), path);
        s->rc = RELAIS_ECONFIG;
        return;
    }
    struct { const char *key; uint32_t *value; uint32_t max; } ints [] = {
        { "arrondissement", &want.arrondissement, 20 }, { "places", &want.places, 100000 },
        { "households", &want.households, 100000 }, { "free_below", &want.th.free_below, 100000 },
        { "occupancy_above", &want.th.occupancy_above, 100 }
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints [0]; i++) {
        snprintf (path, sizeof path, "capacity/structures/%s/%s", name, ints [i].key);
        int64_t v = relais_config_int (config, path, 0);
        if (v < 0 || v > ints [i].max) {
            relais_error ("%s: %s: must be from 0 to %u", relais_config_file (config), path,
                          ints [i].max);
            s->rc = RELAIS_ECONFIG;
            return;
        }
        *ints [i].value = (uint32_t) v;
    }
    snprintf (path, sizeof path, "capacity/structures/%s/operator", name);
    const char *op = relais_config_str (config, path);
    if (op && (strlen (op) > CAPACITY_OPERATOR_MAX || !relais_utf8_clean (op, strlen (op), false))) {
        relais_error ("%s: %s: one line of at most %d bytes", relais_config_file (config), path,
                      CAPACITY_OPERATOR_MAX);
        s->rc = RELAIS_ECONFIG;
        return;
    }
    snprintf (want.operator_, sizeof want.operator_, "%s", op? op: "");
    snprintf (path, sizeof path, "capacity/structures/%s/publics", name);
    const char *publics = relais_config_str (config, path);
    char list [512];
    snprintf (list, sizeof list, "%s", publics? publics: "");
    char *save = NULL;
    for (char *tok = strtok_r (list, ", ", &save); tok; tok = strtok_r (NULL, ", ", &save)) {
        int p = relais_enum_find (relais_public_names, RELAIS_PUBLIC_COUNT, tok);
        if (p < 0) {
            relais_error ("%s: %s: unknown public (see DOMAIN.md)", relais_config_file (config), path);
            s->rc = RELAIS_ECONFIG;
            return;
        }
        want.publics |= 1u << p;
    }
    relais_error_t err;
    relais_error_clear (&err);
    bool created, changed;
    int rc = s_declare (s->self, s->txn, &want, s->now, &err, &created, &changed);
    if (rc == 0 && err.code == NULL) {
        if (changed)
            relais_notice ("declared id=%s kind=%s places=%u%s", want.id, capacity_kind_names [want.kind],
                           want.places, created? " new": "");
        return;
    }
    if (err.code) {
        relais_error ("%s: capacity/structures/%s: %s: %s", relais_config_file (config), name,
                      err.field, err.message);
        rc = RELAIS_ECONFIG;
    }
    s->rc = rc;
}

static int
s_realert_cb (const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    s_startup_t *s = (s_startup_t *) arg;
    s_struct_t st;
    if (s_struct_parse ((const char *) key, klen, val, vlen, &st))
        return 0;
    bool free_was = st.alert_free, occ_was = st.alert_occ;
    int rc = s_struct_alerts (s->self, s->txn, &st, s->now, NULL);
    if (rc == 0 && (free_was != st.alert_free || occ_was != st.alert_occ))
        rc = s_struct_put (s->txn, &st);
    return rc;
}

static uint64_t
s_next_period (capacity_state_t *self, uint64_t now)
{
    uint64_t every = self->opts.forecast_every_us;
    return (now / every + 1) * every;
}

int
capacity_state_startup (capacity_state_t *self, relais_txn_t *txn, uint64_t now)
{
    s_startup_t s = { self, txn, now, 0 };
    if (self->config)
        relais_config_children (self->config, "capacity/structures", s_config_structure, &s);
    if (s.rc)
        return s.rc;
    //  Thresholds may have changed while down: raise or clear once now.
    //  (Putting records during the scan is safe: the keys exist already.)
    int rc = relais_txn_scan (txn, S_DB_STRUCTS, NULL, 0, s_realert_cb, &s);
    for (int k = 0; k < CAPACITY_KINDS && rc == 0; k++)
        rc = s_kind_alerts (self, txn, k, now, NULL);
    uint64_t due = 0;
    if (rc == 0 && (rc = relais_meta_get (txn, "forecast_due", &due)) == 0 && due == 0)
        rc = relais_meta_set (txn, "forecast_due", s_next_period (self, now));
    return rc;
}

//  ---------------------------------------------------------------------------
//  Timed work

typedef struct {
    uint64_t now;
    char ids [64][CAPACITY_ID_MAX + 1];
    uint8_t keys [64][8 + CAPACITY_ID_MAX];
    size_t lens [64];
    size_t count;
    uint64_t earliest;
} s_due_t;

static int
s_holds_cb (const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    s_due_t *d = (s_due_t *) arg;
    uint64_t expires = relais_key_to_u64 (key);
    if (d->earliest == UINT64_MAX || expires < d->earliest)
        d->earliest = expires;
    if (expires > d->now || d->count == 64 || klen <= 8 || klen > 8 + CAPACITY_ID_MAX)
        return 1;
    memcpy (d->keys [d->count], key, klen);
    d->lens [d->count] = klen;
    memcpy (d->ids [d->count], (const uint8_t *) key + 8, klen - 8);
    d->ids [d->count][klen - 8] = 0;
    d->count++;
    return 0;
}

static int
s_pending_cb (const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    s_due_t *d = (s_due_t *) arg;
    if (vlen < 16 || klen > CAPACITY_ID_MAX)
        return 0;
    uint64_t deadline = relais_key_to_u64 (val);
    if (deadline < d->earliest)
        d->earliest = deadline;
    if (deadline > d->now || d->count == 64)
        return 0;
    memcpy (d->ids [d->count], key, klen);
    d->ids [d->count][klen] = 0;
    d->count++;
    return 0;
}

int
capacity_state_tick (capacity_state_t *self, relais_txn_t *txn, uint64_t now)
{
    //  Held reservations past their expiry (in batches of 64 per scan)
    int rc = 0;
    while (rc == 0) {
        s_due_t d;
        memset (&d, 0, sizeof d);
        d.now = now;
        d.earliest = UINT64_MAX;
        if ((rc = relais_txn_scan (txn, S_DB_HOLDS, NULL, 0, s_holds_cb, &d)) || d.count == 0)
            break;
        for (size_t i = 0; i < d.count && rc == 0; i++) {
            s_resv_t r;
            s_struct_t st;
            if ((rc = relais_txn_del (txn, S_DB_HOLDS, d.keys [i], d.lens [i])))
                break;
            if (s_resv_get (txn, d.ids [i], &r) || r.state != S_HELD
            ||  s_struct_get (txn, r.structure, &st))
                continue;               //  nothing held any more
            r.state = S_EXPIRED;
            st.reserved = st.reserved >= r.places? st.reserved - r.places: 0;
            st.updated_at = r.expires;
            relais_notice ("expired reservation=%s structure=%s places=%u", r.id, st.id, r.places);
            if ((rc = s_resv_put (txn, &r))
            ||  (rc = s_event_reserved (self, txn, &st, &r, r.expires)))
                break;
            rc = s_struct_commit (self, txn, &st, r.expires, NULL);
        }
    }
    //  Plan checks whose window ran out without an entry
    while (rc == 0) {
        s_due_t d;
        memset (&d, 0, sizeof d);
        d.now = now;
        d.earliest = UINT64_MAX;
        if ((rc = relais_txn_scan (txn, S_DB_PENDING, NULL, 0, s_pending_cb, &d)) || d.count == 0)
            break;
        for (size_t i = 0; i < d.count && rc == 0; i++) {
            const void *data;
            size_t size;
            if ((rc = relais_txn_get (txn, S_DB_PENDING, d.ids [i], strlen (d.ids [i]), &data, &size)))
                break;
            char structure [CAPACITY_ID_MAX + 1] = "";
            if (size > 16 && size - 16 <= CAPACITY_ID_MAX)
                memcpy (structure, (const uint8_t *) data + 16, size - 16);
            uint64_t deadline = relais_key_to_u64 (data);
            if ((rc = relais_txn_del (txn, S_DB_PENDING, d.ids [i], strlen (d.ids [i]))))
                break;
            rc = s_mismatch (self, txn, d.ids [i], structure, "no_entry", deadline, NULL);
        }
    }
    //  The periodic forecast (once, even if several periods were missed)
    uint64_t due = 0;
    if (rc == 0 && (rc = relais_meta_get (txn, "forecast_due", &due)) == 0 && due && due <= now) {
        s_totals_t t;
        if ((rc = s_totals (txn, &t)))
            return rc;
        for (int k = 0; k < CAPACITY_KINDS && rc == 0; k++)
            if (t.count [k])
                rc = s_forecast (self, txn, k, now, &t, true, NULL);
        if (rc == 0)
            rc = relais_meta_set (txn, "forecast_due", s_next_period (self, now));
    }
    return rc;
}

uint64_t
capacity_state_next_due (capacity_state_t *self, relais_txn_t *txn)
{
    s_due_t d;
    memset (&d, 0, sizeof d);
    d.now = 0;
    d.earliest = UINT64_MAX;
    relais_txn_scan (txn, S_DB_HOLDS, NULL, 0, s_holds_cb, &d);
    d.count = 0;
    relais_txn_scan (txn, S_DB_PENDING, NULL, 0, s_pending_cb, &d);
    uint64_t due = 0;
    relais_meta_get (txn, "forecast_due", &due);
    if (due && due < d.earliest)
        d.earliest = due;
    return d.earliest;
}

//  ---------------------------------------------------------------------------
//  Plans' events

int
capacity_state_plan_event (capacity_state_t *self, relais_txn_t *txn, const char *topic,
                           const relais_envelope_t *env, uint64_t now)
{
    if (strcmp (topic, "plan.closed") != 0)
        return 0;
    const msgpack_object *body = env->body;
    if (!body || body->type != MSGPACK_OBJECT_MAP)
        return RELAIS_EMALFORMED;
    const msgpack_object *outcome = relais_msg_get (body, "outcome");
    if (!outcome || outcome->type != MSGPACK_OBJECT_STR)
        return RELAIS_EMALFORMED;
    if (!relais_msg_str_eq (outcome, "mise_a_l_abri"))
        return 0;
    const msgpack_object *so = relais_msg_get (body, "structure");
    if (!so)
        return 0;                       //  sheltered with no structure named: nothing to match
    if (so->type != MSGPACK_OBJECT_STR || !s_id_ok (so->via.str.ptr, so->via.str.size, false)
    ||  !s_id_ok (env->key, strlen (env->key), false))
        return RELAIS_EMALFORMED;
    char structure [CAPACITY_ID_MAX + 1];
    memcpy (structure, so->via.str.ptr, so->via.str.size);
    structure [so->via.str.size] = 0;
    char corr [RELAIS_KEY_MAX];
    snprintf (corr, sizeof corr, "plans:%" PRIu64, env->seq);
    const char *plan = env->key;
    s_struct_t st;
    int rc = s_struct_get (txn, structure, &st);
    if (rc == RELAIS_ENOTFOUND)
        return s_mismatch (self, txn, plan, structure, "unknown_structure", env->ts, corr);
    if (rc && rc != RELAIS_EMALFORMED)
        return rc;
    const void *data;
    size_t size;
    rc = relais_txn_get (txn, S_DB_REFS, plan, strlen (plan), &data, &size);
    if (rc == 0 && size >= 8) {
        uint64_t at = relais_key_to_u64 (data);
        char where [CAPACITY_ID_MAX + 1] = "";
        if (size - 8 <= CAPACITY_ID_MAX)
            memcpy (where, (const uint8_t *) data + 8, size - 8);
        if (strcmp (where, structure) != 0)
            return s_mismatch (self, txn, plan, structure, "other_structure", env->ts, corr);
        uint64_t gap = at > env->ts? at - env->ts: env->ts - at;
        if (gap > self->opts.match_window_us)
            return s_mismatch (self, txn, plan, structure, "outside_window", env->ts, corr);
        relais_info ("matched plan=%s structure=%s", plan, structure);
        return 0;
    }
    if (rc && rc != RELAIS_ENOTFOUND)
        return rc;
    //  No entry yet: wait for one until the window runs out
    uint8_t value [16 + CAPACITY_ID_MAX];
    relais_u64_to_key (env->ts + self->opts.match_window_us, value);
    relais_u64_to_key (env->ts, value + 8);
    size_t n = strlen (structure);
    memcpy (value + 16, structure, n);
    return relais_txn_put (txn, S_DB_PENDING, plan, strlen (plan), value, 16 + n);
}

//  ---------------------------------------------------------------------------
//  Dump

static void
s_json_str (FILE *out, const char *text)
{
    fputc ('"', out);
    for (const unsigned char *p = (const unsigned char *) text; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf (out, "\\%c", *p);
        else
        if (*p < 0x20 || *p == 0x7f)
            fprintf (out, "\\u%04x", *p);
        else
            fputc (*p, out);
    }
    fputc ('"', out);
}

static int
s_dump_struct (const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    FILE *out = (FILE *) arg;
    s_struct_t st;
    if (s_struct_parse ((const char *) key, klen, val, vlen, &st)) {
        fprintf (out, "{\"structure\":\"?\",\"damaged\":true}\n");
        return 0;
    }
    fprintf (out, "{\"structure\":\"%s\",\"kind\":\"%s\",\"arrondissement\":%u,\"places\":%u,"
             "\"households\":%u,\"publics\":[", st.id, capacity_kind_names [st.kind],
             st.arrondissement, st.places, st.households);
    int n = 0;
    for (int i = 0; i < RELAIS_PUBLIC_COUNT; i++)
        if (st.publics & (1u << i))
            fprintf (out, "%s\"%s\"", n++? ",": "", relais_public_names [i]);
    fprintf (out, "],\"operator\":");
    s_json_str (out, st.operator_);
    fprintf (out, ",\"occupied\":%u,\"reserved\":%u,\"free\":%u,\"free_below\":%u,"
             "\"occupancy_above\":%u,\"alert_free\":%s,\"alert_occupancy\":%s,"
             "\"entries\":%" PRIu64 ",\"exits\":%" PRIu64 ",\"updated_at\":%" PRIu64 "}\n",
             st.occupied, st.reserved, s_free (&st), st.th.free_below, st.th.occupancy_above,
             st.alert_free? "true": "false", st.alert_occ? "true": "false",
             st.entries, st.exits, st.updated_at);
    return 0;
}

static int
s_dump_resv (const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    FILE *out = (FILE *) arg;
    s_resv_t r;
    if (s_resv_parse (key, klen, val, vlen, &r))
        return 0;
    fprintf (out, "{\"reservation\":\"%s\",\"structure\":\"%s\",\"places\":%u,\"state\":\"%s\","
             "\"at\":%" PRIu64, r.id, r.structure, r.places, s_rstate_names [r.state], r.at);
    if (r.state == S_HELD)
        fprintf (out, ",\"expires\":%" PRIu64, r.expires);
    fprintf (out, "}\n");
    return 0;
}

static int
s_dump_day (const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    FILE *out = (FILE *) arg;
    if (klen < 10 || vlen != 16)
        return 0;
    fprintf (out, "{\"days\":\"%.*s\",\"day\":%" PRIu64 ",\"in\":%" PRIu64 ",\"out\":%" PRIu64 "}\n",
             (int) (klen - 9), (const char *) key, relais_key_to_u64 ((const uint8_t *) key + klen - 8),
             relais_key_to_u64 (val), relais_key_to_u64 ((const uint8_t *) val + 8));
    return 0;
}

static int
s_dump_ref (const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    FILE *out = (FILE *) arg;
    if (vlen < 8)
        return 0;
    fprintf (out, "{\"ref\":\"%.*s\",\"structure\":\"%.*s\",\"at\":%" PRIu64 "}\n", (int) klen,
             (const char *) key, (int) (vlen - 8), (const char *) val + 8, relais_key_to_u64 (val));
    return 0;
}

static int
s_dump_pending (const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    FILE *out = (FILE *) arg;
    if (vlen < 16)
        return 0;
    fprintf (out, "{\"pending_plan\":\"%.*s\",\"structure\":\"%.*s\",\"deadline\":%" PRIu64 "}\n",
             (int) klen, (const char *) key, (int) (vlen - 16), (const char *) val + 16,
             relais_key_to_u64 (val));
    return 0;
}

static int
s_count_cb (const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    (*(uint64_t *) arg)++;
    return 0;
}

int
capacity_state_dump (capacity_state_t *self, relais_txn_t *txn, FILE *out)
{
    int rc;
    if ((rc = relais_txn_scan (txn, S_DB_STRUCTS, NULL, 0, s_dump_struct, out))
    ||  (rc = relais_txn_scan (txn, S_DB_RESV, NULL, 0, s_dump_resv, out)))
        return rc;
    for (int k = 0; k < CAPACITY_KINDS; k++) {
        char name [48];
        uint64_t on_free = 0, on_occ = 0;
        s_kind_meta (k, "free_below", name, sizeof name);
        relais_meta_get (txn, name, &on_free);
        s_kind_meta (k, "occupancy_above", name, sizeof name);
        relais_meta_get (txn, name, &on_occ);
        fprintf (out, "{\"kind\":\"%s\",\"alert_free\":%s,\"alert_occupancy\":%s}\n",
                 capacity_kind_names [k], on_free? "true": "false", on_occ? "true": "false");
    }
    if ((rc = relais_txn_scan (txn, S_DB_DAYS, NULL, 0, s_dump_day, out))
    ||  (rc = relais_txn_scan (txn, S_DB_REFS, NULL, 0, s_dump_ref, out))
    ||  (rc = relais_txn_scan (txn, S_DB_PENDING, NULL, 0, s_dump_pending, out)))
        return rc;
    uint64_t idem = 0, next = 0, first = 0, last = 0;
    relais_txn_scan (txn, S_DB_IDEM, NULL, 0, s_count_cb, &idem);
    relais_meta_get (txn, "next_reservation", &next);
    relais_log_bounds (txn, &first, &last);
    fprintf (out, "{\"idem_keys\":%" PRIu64 ",\"next_reservation\":%" PRIu64
             ",\"log_last\":%" PRIu64 "}\n", idem, next, last);
    return 0;
}
