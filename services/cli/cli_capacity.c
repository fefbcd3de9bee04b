/*  =========================================================================
    cli_capacity - `relais capacity`: shelter capacity at a glance, and the
    operators' moves (update, reserve, entry, exit), and a deterministic
    capacity feed for demos and tests (simulate)

    @header
    Talks to the capacity service's api ROUTER (proto/capacity.md) over one
    DEALER. Every changing request carries an idem, and is sent again with
    the same bytes when no answer came in time: the service applies it
    once. The table shows each structure's capacity, occupied, reserved and
    free places, its alerts, and a trend arrow from the recent slope of
    its occupancy (up: filling, down: emptying, right: steady).
    @discuss
    `simulate` generates a day-by-day feed against a set of demo structures
    (declared first with --declare): entries, exits, reservations that are
    confirmed or cancelled within hours, and the operators' morning counts.
    Everything comes from a splitmix64 stream of the seed and integer
    arithmetic, and the model follows its own bookkeeping, so --dry-run
    prints the same NDJSON for the same seed and start on any machine;
    sending that stream to a fresh capacity service gives the same state.
    =========================================================================
*/
#include "cli.h"
#include "cli_json.h"
#include "relais_clock.h"
#include "relais_config.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_TIMEOUT_MS        3000
#define S_ATTEMPTS          5
#define S_DEFAULT_API       "tcp://127.0.0.1:7130"
#define S_HOUR_US           3600000000ULL
#define S_DAY_US            86400000000ULL

const char cli_capacity_help [] =
    "usage: relais capacity [list] [--kind K] [--json] [--endpoint E]\n"
    "       relais capacity show ID [--json]\n"
    "       relais capacity forecast [--kind K] [--json]\n"
    "       relais capacity update ID --occupied N --previous M\n"
    "       relais capacity reserve ID --places N [--reservation R]\n"
    "       relais capacity confirm|cancel RESERVATION [--ref REF]\n"
    "       relais capacity entry ID --count N --from signalement|plan|115|autre [--ref REF]\n"
    "       relais capacity exit ID --count N --to logement|structure|rue|inconnu\n"
    "       relais capacity simulate [--seed S] [--days D] [--start T] [--declare] [--dry-run]\n"
    "\n"
    "Where people can go tonight: family hotels, sas, the LIMA site, CHU,\n"
    "haltes de nuit, the 115's places. `list` prints one line per structure:\n"
    "capacity, occupied, reserved, free places, the trend of its occupancy\n"
    "over the forecast window (\xe2\x86\x91 filling, \xe2\x86\x93 emptying, \xe2\x86\x92 steady) and its alerts.\n"
    "\n"
    "update is the operator's count: --previous is the occupancy the operator\n"
    "starts from, and a stale one is refused (conflict) rather than silently\n"
    "overwriting a newer value. Every change carries an idempotency key and is\n"
    "retried with it, so a retry is applied once.\n"
    "\n"
    "simulate feeds the capacity service with deterministic traffic: for each\n"
    "simulated day and hour, entries (from the 115, reports, plans), exits,\n"
    "reservations confirmed or cancelled within hours, and a morning count.\n"
    "  --seed S     the seed (default 1)\n"
    "  --days D     simulated days (default 1)\n"
    "  --start T    µs since 1970 of the first simulated hour (default: now - D days)\n"
    "  --declare    first declare the demo structures (hotels, sas, LIMA, CHU,\n"
    "               halte, 115) and their first count (65 to 85% occupied)\n"
    "  --dry-run    print the requests as NDJSON instead of sending them\n"
    "\n"
    "flags:\n"
    "  --json          print replies as JSON (one line each)\n"
    "  --endpoint E    the api endpoint (default: capacity/api of the configuration)\n"
    "\n"
    "exit codes: 0 done, 1 refused or the service did not answer, 2 usage.\n";

//  ---------------------------------------------------------------------------
//  Requests

typedef struct {
    zsock_t *dealer;
    uint64_t rid;
    zframe_t *frame;
    relais_msg_t msg;
    bool has;
} s_client_t;

static void
s_client_release (s_client_t *c)
{
    if (c->has) {
        relais_msg_release (&c->msg);
        zframe_destroy (&c->frame);
        c->has = false;
    }
}

//  Send the request (a map whose last pair must be added here: rid) and
//  wait for its reply, sending it again on timeout. pairs holds n encoded
//  key/value pairs. Returns 0 with the reply in c->msg, or -1.
static int
s_call (s_client_t *c, const msgpack_sbuffer *pairs, uint32_t n)
{
    s_client_release (c);
    msgpack_sbuffer req;
    msgpack_sbuffer_init (&req);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &req, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, n + 1);
    if (pairs->size)
        relais_pack_raw (&pk, pairs->data, pairs->size);
    relais_pack_kv_uint (&pk, "rid", ++c->rid);
    int rc = -1;
    for (int attempt = 0; attempt < S_ATTEMPTS && !cli_interrupted (); attempt++) {
        if (cli_send (c->dealer, req.data, req.size))
            break;
        int got = cli_wait_reply (c->dealer, c->rid, S_TIMEOUT_MS, &c->frame, &c->msg);
        if (got == 0) {
            c->has = true;
            rc = 0;
            break;
        }
        if (got == -2)
            break;
    }
    msgpack_sbuffer_destroy (&req);
    return rc;
}

static bool
s_reply_ok (s_client_t *c)
{
    const msgpack_object *ok = relais_msg_get (&c->msg.root, "ok");
    return ok && ok->type == MSGPACK_OBJECT_BOOLEAN && ok->via.boolean;
}

static void
s_print_json (const msgpack_object *o)
{
    msgpack_sbuffer out;
    msgpack_sbuffer_init (&out);
    cli_json_opts_t opts = { NULL, NULL, "rid" };
    if (cli_json_write (&out, o, &opts) == 0) {
        fwrite (out.data, 1, out.size, stdout);
        fputc ('\n', stdout);
    }
    msgpack_sbuffer_destroy (&out);
}

//  Print a refusal for a person (code, field, message: clean text only)
static void
s_print_error (s_client_t *c)
{
    char code [32] = "?", field [128] = "", message [256] = "";
    relais_msg_str_copy (relais_msg_get (&c->msg.root, "code"), code, sizeof code);
    relais_msg_str_copy (relais_msg_get (&c->msg.root, "field"), field, sizeof field);
    relais_msg_str_copy (relais_msg_get (&c->msg.root, "message"), message, sizeof message);
    if (!relais_utf8_clean (message, strlen (message), false))
        strcpy (message, "");
    if (!relais_utf8_clean (field, strlen (field), false))
        strcpy (field, "?");
    if (!relais_utf8_clean (code, strlen (code), false))
        strcpy (code, "?");
    fprintf (stderr, "relais: refused: %s%s%s: %s\n", code, *field? " ": "", field, message);
}

static uint64_t
s_u (const msgpack_object *map, const char *key)
{
    uint64_t v = 0;
    relais_msg_uint (relais_msg_get (map, key), &v);
    return v;
}

static int64_t
s_i (const msgpack_object *map, const char *key)
{
    const msgpack_object *o = relais_msg_get (map, key);
    if (o && o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return o->via.i64;
    return (int64_t) s_u (map, key);
}

static void
s_str (const msgpack_object *map, const char *key, char *buf, size_t size)
{
    if (relais_msg_str_copy (relais_msg_get (map, key), buf, size) < 0
    ||  !relais_utf8_clean (buf, strlen (buf), false))
        snprintf (buf, size, "?");
}

//  slope_per_day is in free places a day: negative means filling
static const char *
s_arrow (int64_t slope_free)
{
    return slope_free < 0? "\xe2\x86\x91": slope_free > 0? "\xe2\x86\x93": "\xe2\x86\x92";
}

static void
s_table_row (const msgpack_object *s)
{
    char id [64], kind [16], alerts [64] = "";
    s_str (s, "id", id, sizeof id);
    s_str (s, "kind", kind, sizeof kind);
    const msgpack_object *list = relais_msg_get (s, "alerts");
    for (uint32_t i = 0; list && list->type == MSGPACK_OBJECT_ARRAY && i < list->via.array.size; i++) {
        char rule [32];
        if (relais_msg_str_copy (&list->via.array.ptr [i], rule, sizeof rule) >= 0)
            snprintf (alerts + strlen (alerts), sizeof alerts - strlen (alerts), "%s%s",
                      i? ",": "", strcmp (rule, "free_below") == 0? "FREE<": "OCC>");
    }
    int64_t slope = s_i (s, "slope_per_day");
    printf ("%-24s %-6s %3" PRIu64 " %7" PRIu64 " %8" PRIu64 " %8" PRIu64 " %6" PRIu64 "  %s %+4" PRId64
            "/d  %s\n", id, kind, s_u (s, "arrondissement"), s_u (s, "places"), s_u (s, "occupied"),
            s_u (s, "reserved"), s_u (s, "free"), s_arrow (slope), -slope, alerts);
}

static void
s_table_head (void)
{
    printf ("%-24s %-6s %3s %7s %8s %8s %6s  %s\n", "STRUCTURE", "KIND", "ARR", "PLACES",
            "OCCUPIED", "RESERVED", "FREE", "TREND     ALERTS");
}

//  ---------------------------------------------------------------------------
//  Flags

typedef struct {
    const char *to, *kind, *id, *from, *where, *ref, *reservation, *start;
    uint64_t occupied, previous, places, count, seed, days;
    bool has_occupied, has_previous, has_places, has_count;
    bool json, declare, dry_run;
} s_flags_t;

static bool
s_parse_u64 (const char *text, uint64_t *value)
{
    char *end;
    if (!text || !*text || *text == '-')
        return false;
    unsigned long long v = strtoull (text, &end, 10);
    if (*end)
        return false;
    *value = v;
    return true;
}

static int
s_parse (int argc, char **argv, int first, s_flags_t *f)
{
    for (int i = first; i < argc; i++) {
        const char *arg = argv [i];
        const char *value = i + 1 < argc? argv [i + 1]: NULL;
        bool used = true;
        if (strcmp (arg, "--json") == 0) { f->json = true; used = false; }
        else if (strcmp (arg, "--declare") == 0) { f->declare = true; used = false; }
        else if (strcmp (arg, "--dry-run") == 0) { f->dry_run = true; used = false; }
        else if (!value) {
            fprintf (stderr, "relais capacity: '%s' is not a flag here (see --help)\n", arg);
            return -1;
        }
        else if (strcmp (arg, "--endpoint") == 0) f->to = value;
        else if (strcmp (arg, "--to") == 0) f->where = value;
        else if (strcmp (arg, "--kind") == 0) f->kind = value;
        else if (strcmp (arg, "--from") == 0) f->from = value;
        else if (strcmp (arg, "--ref") == 0) f->ref = value;
        else if (strcmp (arg, "--reservation") == 0) f->reservation = value;
        else if (strcmp (arg, "--start") == 0) f->start = value;
        else if (strcmp (arg, "--occupied") == 0) f->has_occupied = s_parse_u64 (value, &f->occupied);
        else if (strcmp (arg, "--previous") == 0) f->has_previous = s_parse_u64 (value, &f->previous);
        else if (strcmp (arg, "--places") == 0) f->has_places = s_parse_u64 (value, &f->places);
        else if (strcmp (arg, "--count") == 0) f->has_count = s_parse_u64 (value, &f->count);
        else if (strcmp (arg, "--seed") == 0) {
            if (!s_parse_u64 (value, &f->seed)) {
                fprintf (stderr, "relais capacity: --seed takes a number\n");
                return -1;
            }
        }
        else if (strcmp (arg, "--days") == 0) {
            if (!s_parse_u64 (value, &f->days) || f->days == 0 || f->days > 366) {
                fprintf (stderr, "relais capacity: --days takes 1 to 366\n");
                return -1;
            }
        }
        else {
            fprintf (stderr, "relais capacity: unknown flag '%s' (see --help)\n", arg);
            return -1;
        }
        if (used)
            i++;
    }
    return 0;
}

//  A fresh idem for one CLI change: unique per process and instant
static void
s_idem (char *buf, size_t size)
{
    static unsigned counter;
    snprintf (buf, size, "cli-%d-%" PRIu64 "-%u", (int) getpid (), relais_clock_now (), ++counter);
}

//  ---------------------------------------------------------------------------
//  The deterministic feed

typedef struct {
    const char *id, *kind;
    unsigned arrondissement, places, households;
    const char *publics [3];
    const char *operator_;
    unsigned pressure;              //  ‰ of capacity the traffic pushes towards
    bool reservable;
    unsigned occupied, reserved;    //  the model's bookkeeping
} s_sim_struct_t;

static s_sim_struct_t s_demo [] = {
    { "hotel-ibis-19", "hotel", 19, 60, 20, { "famille", "femme_enceinte", NULL }, "Samu Social de Paris", 1050, true, 0, 0 },
    { "hotel-louvre-10", "hotel", 10, 40, 14, { "famille", NULL, NULL }, "Samu Social de Paris", 980, true, 0, 0 },
    { "sas-paris-12", "sas", 12, 80, 25, { "famille", "enfant", NULL }, "Emmaus Solidarite", 1000, true, 0, 0 },
    { "lima-paris", "lima", 19, 200, 60, { "famille", "couple", NULL }, "Ville de Paris", 900, false, 0, 0 },
    { "chu-pereire-17", "chu", 17, 120, 0, { "homme_isole", NULL, NULL }, "Aurore", 1000, false, 0, 0 },
    { "halte-nuit-10", "halte", 10, 50, 0, { "homme_isole", "femme_isolee", NULL }, "Cites du Secours catholique", 950, false, 0, 0 },
    { "115-nuit", "115", 0, 150, 50, { "homme_isole", "famille", NULL }, "SIAO Paris", 1020, true, 0, 0 },
};
#define S_DEMO (sizeof s_demo / sizeof s_demo [0])

typedef struct {
    uint64_t state;
} s_rng_t;

static uint64_t
s_next (s_rng_t *r)
{
    uint64_t z = (r->state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static unsigned
s_below (s_rng_t *r, unsigned n)
{
    return n? (unsigned) (s_next (r) % n): 0;
}

#define S_HELD_MAX 256
typedef struct {
    char id [48];
    size_t structure;
    unsigned places;
    uint64_t resolve_at;
    bool confirm;
} s_sim_held_t;

typedef struct {
    s_client_t *client;             //  NULL: dry run
    bool json;
    uint64_t seq;                   //  requests so far
    uint64_t seed, start_s;
    uint64_t ok, refused, failed;
} s_sim_t;

//  Emit one request: print it (dry run) or send it and check the answer
static int
s_sim_emit (s_sim_t *sim, msgpack_sbuffer *pairs, uint32_t n)
{
    char idem [96];
    snprintf (idem, sizeof idem, "sim-cap-%" PRIu64 "-%" PRIu64 "-%" PRIu64, sim->seed, sim->start_s,
              ++sim->seq);
    msgpack_packer pk;
    msgpack_packer_init (&pk, pairs, msgpack_sbuffer_write);
    relais_pack_kv_str (&pk, "idem", idem);
    n++;
    if (!sim->client) {
        msgpack_sbuffer req;
        msgpack_sbuffer_init (&req);
        msgpack_packer rpk;
        msgpack_packer_init (&rpk, &req, msgpack_sbuffer_write);
        msgpack_pack_map (&rpk, n);
        relais_pack_raw (&rpk, pairs->data, pairs->size);
        relais_msg_t msg;
        relais_error_t err;
        if (relais_msg_decode (&msg, req.data, req.size, NULL, &err) == 0) {
            s_print_json (&msg.root);
            relais_msg_release (&msg);
        }
        msgpack_sbuffer_destroy (&req);
        sim->ok++;
        return 0;
    }
    if (s_call (sim->client, pairs, n)) {
        sim->failed++;
        return -1;
    }
    if (s_reply_ok (sim->client))
        sim->ok++;
    else {
        sim->refused++;
        s_print_error (sim->client);
    }
    return 0;
}

static void
s_kv_common (msgpack_packer *pk, const char *op, const char *id, uint64_t at)
{
    relais_pack_kv_str (pk, "op", op);
    if (id)
        relais_pack_kv_str (pk, "id", id);
    relais_pack_kv_uint (pk, "at", at);
}

static int
s_simulate (cli_t *cli, s_flags_t *f, s_client_t *client)
{
    uint64_t days = f->days? f->days: 1;
    uint64_t start = 0;
    if (f->start) {
        if (!s_parse_u64 (f->start, &start)) {
            fprintf (stderr, "relais capacity: --start takes µs since 1970\n");
            return CLI_USAGE;
        }
    }
    else
        start = (relais_clock_now () - days * S_DAY_US) / S_HOUR_US * S_HOUR_US;
    s_sim_t sim = { client, f->json, 0, f->seed? f->seed: 1, start / 1000000, 0, 0, 0 };
    s_rng_t rng = { sim.seed * 0x2545f4914f6cdd1dULL + 7 };
    s_sim_held_t *held = (s_sim_held_t *) calloc (S_HELD_MAX, sizeof *held);
    if (!held)
        return CLI_FAILED;
    size_t held_count = 0;
    uint64_t reservations = 0;
    for (size_t i = 0; i < S_DEMO; i++)
        s_demo [i].occupied = s_demo [i].reserved = 0;
    msgpack_sbuffer pairs;
    msgpack_sbuffer_init (&pairs);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &pairs, msgpack_sbuffer_write);
    int rc = 0;
    if (f->declare)
        for (size_t i = 0; i < S_DEMO && rc == 0; i++) {
            s_sim_struct_t *s = &s_demo [i];
            msgpack_sbuffer_clear (&pairs);
            s_kv_common (&pk, "capacity.declare", s->id, start);
            relais_pack_kv_str (&pk, "kind", s->kind);
            relais_pack_kv_uint (&pk, "arrondissement", s->arrondissement);
            relais_pack_kv_uint (&pk, "places", s->places);
            relais_pack_kv_uint (&pk, "households", s->households);
            uint32_t np = 0;
            while (np < 3 && s->publics [np])
                np++;
            relais_pack_str (&pk, "publics");
            msgpack_pack_array (&pk, np);
            for (uint32_t p = 0; p < np; p++)
                relais_pack_str (&pk, s->publics [p]);
            relais_pack_kv_str (&pk, "operator", s->operator_);
            relais_pack_kv_uint (&pk, "free_below", s->places / 10);
            relais_pack_kv_uint (&pk, "occupancy_above", 90);
            rc = s_sim_emit (&sim, &pairs, 11);
            //  The operator's first count: 65 to 85% occupied already
            unsigned counted = s->places * (650 + s_below (&rng, 200)) / 1000;
            msgpack_sbuffer_clear (&pairs);
            s_kv_common (&pk, "capacity.update", s->id, start);
            relais_pack_kv_uint (&pk, "occupied", counted);
            relais_pack_kv_uint (&pk, "previous", 0);
            s->occupied = counted;
            if (rc == 0)
                rc = s_sim_emit (&sim, &pairs, 5);
        }
    else
    if (client) {
        //  Start the bookkeeping from the service's numbers
        msgpack_sbuffer_clear (&pairs);
        relais_pack_kv_str (&pk, "op", "capacity.list");
        if (s_call (client, &pairs, 1) || !s_reply_ok (client)) {
            fprintf (stderr, "relais capacity: the service did not list its structures\n");
            rc = -1;
        }
        else {
            const msgpack_object *list = relais_msg_get (&client->msg.root, "structures");
            for (uint32_t j = 0; list && list->type == MSGPACK_OBJECT_ARRAY && j < list->via.array.size; j++)
                for (size_t i = 0; i < S_DEMO; i++)
                    if (relais_msg_str_eq (relais_msg_get (&list->via.array.ptr [j], "id"), s_demo [i].id)) {
                        s_demo [i].places = (unsigned) s_u (&list->via.array.ptr [j], "places");
                        s_demo [i].occupied = (unsigned) s_u (&list->via.array.ptr [j], "occupied");
                        s_demo [i].reserved = (unsigned) s_u (&list->via.array.ptr [j], "reserved");
                    }
        }
    }
    static const char *const froms [] = { "115", "115", "signalement", "plan", "autre" };
    static const char *const tos [] = { "structure", "structure", "logement", "rue", "inconnu" };
    uint64_t hours = days * 24;
    for (uint64_t h = 0; h <= hours && rc == 0 && !cli_interrupted (); h++) {
        uint64_t hour_at = start + h * S_HOUR_US;
        //  Settle the reservations due by this hour (all of them at the end)
        for (size_t k = 0; k < held_count && rc == 0; ) {
            s_sim_held_t *r = &held [k];
            if (r->resolve_at > hour_at && h < hours) {
                k++;
                continue;
            }
            s_sim_struct_t *s = &s_demo [r->structure];
            msgpack_sbuffer_clear (&pairs);
            s_kv_common (&pk, "capacity.reservation", NULL, hour_at);
            relais_pack_kv_str (&pk, "reservation", r->id);
            relais_pack_kv_str (&pk, "action", r->confirm? "confirm": "cancel");
            s->reserved -= r->places;
            if (r->confirm)
                s->occupied += r->places;
            rc = s_sim_emit (&sim, &pairs, 4);
            held [k] = held [--held_count];
        }
        if (h == hours)
            break;
        unsigned hour = (unsigned) (h % 24);
        for (size_t i = 0; i < S_DEMO && rc == 0; i++) {
            s_sim_struct_t *s = &s_demo [i];
            uint64_t at = hour_at + (uint64_t) s_below (&rng, 3600) * 1000000;
            unsigned free = s->places > s->occupied + s->reserved? s->places - s->occupied - s->reserved: 0;
            //  Morning count by the operator (08:00): a small correction of
            //  the bookkeeping, from the right previous value
            if (hour == 8 && s->occupied > 2) {
                unsigned counted = s->occupied - s_below (&rng, 3);
                msgpack_sbuffer_clear (&pairs);
                s_kv_common (&pk, "capacity.update", s->id, at);
                relais_pack_kv_uint (&pk, "occupied", counted);
                relais_pack_kv_uint (&pk, "previous", s->occupied);
                s->occupied = counted;
                rc = s_sim_emit (&sim, &pairs, 5);
                continue;
            }
            //  Arrivals push towards pressure ‰ of capacity, departures
            //  take about 2% of the occupants an hour; more at night
            unsigned target = s->places * s->pressure / 1000;
            unsigned want = target > s->occupied? (target - s->occupied + 9) / 10: 0;
            if (hour >= 19 || hour < 2)
                want += s_below (&rng, 3);
            unsigned in = want? 1 + s_below (&rng, want): 0;
            if (in > free)
                in = free;
            unsigned out = s->occupied / 50 + (s_below (&rng, 100) < (s->occupied % 50) * 2? 1: 0);
            if (in && s->reservable && s_below (&rng, 3) == 0 && held_count < S_HELD_MAX) {
                s_sim_held_t *r = &held [held_count++];
                snprintf (r->id, sizeof r->id, "SIMR-%" PRIu64 "-%" PRIu64, sim.seed, ++reservations);
                r->structure = i;
                r->places = in;
                r->resolve_at = hour_at + (1 + s_below (&rng, 3)) * S_HOUR_US;
                r->confirm = s_below (&rng, 10) < 7;
                msgpack_sbuffer_clear (&pairs);
                s_kv_common (&pk, "capacity.reserve", s->id, at);
                relais_pack_kv_uint (&pk, "places", in);
                relais_pack_kv_str (&pk, "reservation", r->id);
                s->reserved += in;
                rc = s_sim_emit (&sim, &pairs, 5);
            }
            else
            if (in) {
                const char *from = froms [s_below (&rng, 5)];
                msgpack_sbuffer_clear (&pairs);
                s_kv_common (&pk, "capacity.entry", s->id, at);
                relais_pack_kv_uint (&pk, "count", in);
                relais_pack_kv_str (&pk, "from", from);
                uint32_t n = 5;
                if (strcmp (from, "plan") == 0) {
                    char ref [48];
                    snprintf (ref, sizeof ref, "PLAN-SIM-%" PRIu64, sim.seq + 1);
                    relais_pack_kv_str (&pk, "ref", ref);
                    n++;
                }
                s->occupied += in;
                rc = s_sim_emit (&sim, &pairs, n);
            }
            if (out && rc == 0) {
                if (out > s->occupied)
                    out = s->occupied;
                msgpack_sbuffer_clear (&pairs);
                s_kv_common (&pk, "capacity.exit", s->id, at + 1);
                relais_pack_kv_uint (&pk, "count", out);
                relais_pack_kv_str (&pk, "to", tos [s_below (&rng, 5)]);
                s->occupied -= out;
                rc = s_sim_emit (&sim, &pairs, 5);
            }
        }
    }
    msgpack_sbuffer_destroy (&pairs);
    free (held);
    fprintf (stderr, "relais capacity simulate: seed=%" PRIu64 " days=%" PRIu64 " requests=%" PRIu64
             " ok=%" PRIu64 " refused=%" PRIu64 " unanswered=%" PRIu64 "\n", sim.seed, days,
             sim.seq, sim.ok, sim.refused, sim.failed);
    if (rc || sim.failed)
        return CLI_FAILED;
    return sim.refused? CLI_FAILED: CLI_OK;
}

//  ---------------------------------------------------------------------------

int
cli_capacity (cli_t *cli, int argc, char **argv)
{
    const char *verb = "list";
    int first = 1;
    if (argc > 1 && argv [1][0] != '-') {
        verb = argv [1];
        first = 2;
    }
    s_flags_t f;
    memset (&f, 0, sizeof f);
    const char *target = NULL;          //  the structure or reservation id
    static const char *const with_target [] = {
        "show", "update", "reserve", "entry", "exit", "confirm", "cancel", NULL
    };
    bool needs_target = false;
    for (int i = 0; with_target [i]; i++)
        needs_target |= strcmp (verb, with_target [i]) == 0;
    if (needs_target) {
        if (argc <= first || argv [first][0] == '-') {
            fprintf (stderr, "relais capacity %s: which one? (see --help)\n", verb);
            return CLI_USAGE;
        }
        target = argv [first++];
    }
    if (s_parse (argc, argv, first, &f))
        return CLI_USAGE;
    const char *endpoint = f.to? f.to: relais_config_str (cli->config, "capacity/api");
    if (!endpoint || !*endpoint)
        endpoint = S_DEFAULT_API;

    msgpack_sbuffer pairs;
    msgpack_sbuffer_init (&pairs);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &pairs, msgpack_sbuffer_write);
    uint32_t n = 0;
    char idem [96];
    s_idem (idem, sizeof idem);
    bool change = true;
    int usage = 0;
    if (strcmp (verb, "simulate") == 0)
        change = false;
    else
    if (strcmp (verb, "list") == 0 || strcmp (verb, "forecast") == 0) {
        relais_pack_kv_str (&pk, "op", strcmp (verb, "list") == 0? "capacity.list": "capacity.forecast");
        n = 1;
        if (f.kind) {
            relais_pack_kv_str (&pk, "kind", f.kind);
            n++;
        }
        change = strcmp (verb, "forecast") == 0;
    }
    else
    if (strcmp (verb, "show") == 0) {
        relais_pack_kv_str (&pk, "op", "capacity.get");
        relais_pack_kv_str (&pk, "id", target);
        n = 2;
        change = false;
    }
    else
    if (strcmp (verb, "update") == 0) {
        usage = !f.has_occupied || !f.has_previous;
        relais_pack_kv_str (&pk, "op", "capacity.update");
        relais_pack_kv_str (&pk, "id", target);
        relais_pack_kv_uint (&pk, "occupied", f.occupied);
        relais_pack_kv_uint (&pk, "previous", f.previous);
        n = 4;
    }
    else
    if (strcmp (verb, "reserve") == 0) {
        usage = !f.has_places;
        relais_pack_kv_str (&pk, "op", "capacity.reserve");
        relais_pack_kv_str (&pk, "id", target);
        relais_pack_kv_uint (&pk, "places", f.places);
        n = 3;
        if (f.reservation) {
            relais_pack_kv_str (&pk, "reservation", f.reservation);
            n++;
        }
    }
    else
    if (strcmp (verb, "confirm") == 0 || strcmp (verb, "cancel") == 0) {
        relais_pack_kv_str (&pk, "op", "capacity.reservation");
        relais_pack_kv_str (&pk, "reservation", target);
        relais_pack_kv_str (&pk, "action", verb);
        n = 3;
        if (f.ref) {
            relais_pack_kv_str (&pk, "ref", f.ref);
            n++;
        }
    }
    else
    if (strcmp (verb, "entry") == 0 || strcmp (verb, "exit") == 0) {
        bool entry = strcmp (verb, "entry") == 0;
        const char *whence = entry? f.from: f.where;
        usage = !f.has_count || !whence;
        relais_pack_kv_str (&pk, "op", entry? "capacity.entry": "capacity.exit");
        relais_pack_kv_str (&pk, "id", target);
        relais_pack_kv_uint (&pk, "count", f.count);
        relais_pack_kv_str (&pk, entry? "from": "to", whence? whence: "");
        n = 4;
        if (entry && f.ref) {
            relais_pack_kv_str (&pk, "ref", f.ref);
            n++;
        }
    }
    else {
        fprintf (stderr, "relais capacity: unknown action '%s' (see --help)\n", verb);
        msgpack_sbuffer_destroy (&pairs);
        return CLI_USAGE;
    }
    if (usage) {
        fprintf (stderr, "relais capacity %s: missing flags (see --help)\n", verb);
        msgpack_sbuffer_destroy (&pairs);
        return CLI_USAGE;
    }
    if (change && n) {
        relais_pack_kv_str (&pk, "idem", idem);
        n++;
    }
    s_client_t client;
    memset (&client, 0, sizeof client);
    int rc = CLI_OK;
    if (strcmp (verb, "simulate") == 0 && f.dry_run) {
        rc = s_simulate (cli, &f, NULL);
        msgpack_sbuffer_destroy (&pairs);
        return rc;
    }
    client.dealer = cli_sock_new (ZMQ_DEALER, endpoint, 0);
    if (!client.dealer) {
        msgpack_sbuffer_destroy (&pairs);
        return CLI_FAILED;
    }
    if (strcmp (verb, "simulate") == 0)
        rc = s_simulate (cli, &f, &client);
    else
    if (s_call (&client, &pairs, n)) {
        fprintf (stderr, "relais capacity: no answer from %s\n", endpoint);
        rc = CLI_FAILED;
    }
    else
    if (!s_reply_ok (&client)) {
        if (f.json)
            s_print_json (&client.msg.root);
        s_print_error (&client);
        rc = CLI_FAILED;
    }
    else
    if (f.json)
        s_print_json (&client.msg.root);
    else
    if (strcmp (verb, "list") == 0) {
        const msgpack_object *list = relais_msg_get (&client.msg.root, "structures");
        s_table_head ();
        for (uint32_t i = 0; list && list->type == MSGPACK_OBJECT_ARRAY && i < list->via.array.size; i++)
            s_table_row (&list->via.array.ptr [i]);
    }
    else
    if (strcmp (verb, "show") == 0) {
        const msgpack_object *s = relais_msg_get (&client.msg.root, "structure");
        char op [80];
        s_str (s, "operator", op, sizeof op);
        s_table_head ();
        s_table_row (s);
        printf ("operator: %s  households: %" PRIu64 "  entries: %" PRIu64 "  exits: %" PRIu64 "\n",
                op, s_u (s, "households"), s_u (s, "entries"), s_u (s, "exits"));
        const msgpack_object *held = relais_msg_get (&client.msg.root, "held");
        for (uint32_t i = 0; held && held->type == MSGPACK_OBJECT_ARRAY && i < held->via.array.size; i++) {
            char id [64];
            s_str (&held->via.array.ptr [i], "reservation", id, sizeof id);
            printf ("held %s: %" PRIu64 " places\n", id, s_u (&held->via.array.ptr [i], "places"));
        }
    }
    else
    if (strcmp (verb, "forecast") == 0) {
        const msgpack_object *list = relais_msg_get (&client.msg.root, "forecasts");
        printf ("%-6s %7s %6s %10s %s\n", "KIND", "PLACES", "FREE", "SLOPE/DAY", "FULL IN");
        for (uint32_t i = 0; list && list->type == MSGPACK_OBJECT_ARRAY && i < list->via.array.size; i++) {
            const msgpack_object *fc = &list->via.array.ptr [i];
            char kind [16], full [32] = "-";
            s_str (fc, "kind", kind, sizeof kind);
            if (relais_msg_get (fc, "days_to_full"))
                snprintf (full, sizeof full, "%" PRIu64 " days", s_u (fc, "days_to_full"));
            printf ("%-6s %7" PRIu64 " %6" PRIu64 " %+10" PRId64 " %s\n", kind, s_u (fc, "places"),
                    s_u (fc, "free"), s_i (fc, "slope_per_day"), full);
        }
    }
    else {
        char id [64];
        s_str (&client.msg.root, "id", id, sizeof id);
        printf ("%s: %" PRIu64 " places, %" PRIu64 " occupied, %" PRIu64 " reserved, %" PRIu64 " free%s\n",
                id, s_u (&client.msg.root, "places"), s_u (&client.msg.root, "occupied"),
                s_u (&client.msg.root, "reserved"), s_u (&client.msg.root, "free"),
                relais_msg_get (&client.msg.root, "duplicate")
                && relais_msg_get (&client.msg.root, "duplicate")->type == MSGPACK_OBJECT_BOOLEAN
                && relais_msg_get (&client.msg.root, "duplicate")->via.boolean? " (already applied)": "");
    }
    s_client_release (&client);
    zsock_destroy (&client.dealer);
    msgpack_sbuffer_destroy (&pairs);
    return rc;
}
