/*  =========================================================================
    cli_simulate - `relais simulate`: realistic Paris reports, submitted

    @header
    Drives sim_model (the deterministic generator) and speaks the real
    submit protocol to intake over one DEALER: requests are pipelined within
    a window, paced at the requested rate, and resent with the same bytes
    (so the same idem) after a timeout or an `unavailable` reply, until
    intake acknowledges them. Each acknowledged submit's SIG id goes back to
    the model, which can then update or close that report. At the end, or
    on Ctrl-C, a summary: sent, acked, duplicates, levels, errors by code.
    @discuss
    --dry-run prints the requests as NDJSON without connecting; the model
    then acknowledges its own submits ("SIG-DRY-<n>") and starts from a
    fixed instant, so the same seed prints the same bytes on any machine.
    =========================================================================
*/
#include "cli.h"
#include "cli_json.h"
#include "relais_clock.h"
#include "relais_config.h"
#include "sim_model.h"

#include <errno.h>
#include <fcntl.h>
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define S_WINDOW_DEFAULT    64
#define S_TIMEOUT_MS        3000
#define S_BACKOFF_FIRST_MS  100
#define S_BACKOFF_MAX_MS    5000
#define S_DRAIN_MS          15000       //  after the last send, wait this long for acks
#define S_INTERRUPT_MS      2000        //  after Ctrl-C, this long
#define S_PROGRESS_MS       10000
#define S_ERROR_KINDS       16
#define S_DRY_START_US      1736928000000000ULL     //  2025-01-15T08:00:00Z

const char cli_simulate_help [] =
    "usage: relais simulate [--rate R] [--duration D | --count N] [--seed S]\n"
    "                       [--scenario day|cold-snap|encampment] [--to ENDPOINT]\n"
    "                       [--dry-run] [--json] [--personal-out FILE]\n"
    "\n"
    "Generate realistic Paris reports and submit them to intake, as producers\n"
    "would: the 115 most, the cellules de veille sociale of the 20\n"
    "arrondissements, maraudes, associations, mairies, now and then a riverain\n"
    "or a cabinet. Isolated men most often; families, minors, pregnant women and\n"
    "great vulnerability less often; more reports in the north and east of\n"
    "Paris; encampments with tent counts; repeat reports on the same place and\n"
    "person; updates and closures of reports intake has acknowledged. Names,\n"
    "phones and addresses are invented.\n"
    "\n"
    "The same seed gives the same reports: every submit is a function of the\n"
    "seed, the scenario, the start time and the rate. Updates and closes follow\n"
    "acknowledgements, so their place in the stream depends on when intake\n"
    "answers (identical for --dry-run, and against a fresh intake).\n"
    "\n"
    "scenarios:\n"
    "  day          a steady day\n"
    "  cold-snap    the cold-weather plan: after 20 reports the rate triples,\n"
    "               with more families, minors and requests for shelter\n"
    "  encampment   a camp forms in one arrondissement and grows; different\n"
    "               producers report it again and again, then an operation\n"
    "               shelters everyone and closes its reports (\"resolu\"); later\n"
    "               another camp forms elsewhere\n"
    "\n"
    "flags:\n"
    "  --rate R          requests per second (default 5; 0: as fast as intake\n"
    "                    answers); the scenario may raise it (cold-snap)\n"
    "  --duration D      stop sending after D (30s, 10m, 2h; a number is seconds)\n"
    "  --count N         stop after N requests (default: until Ctrl-C)\n"
    "  --seed S          the seed (default 1)\n"
    "  --scenario NAME   day (default), cold-snap or encampment\n"
    "  --to ENDPOINT     intake's submit endpoint (default: intake/submit of the\n"
    "                    configuration)\n"
    "  --start T         simulated start: µs since 1970, or 2025-01-15T08:00:00Z\n"
    "                    (default: now; with --dry-run, 2025-01-15T08:00:00Z)\n"
    "  --window N        requests in flight at once (default 64)\n"
    "  --timeout D       resend a request unanswered after D (default 3s);\n"
    "                    'unavailable' is retried after 100 ms, doubling to 5 s\n"
    "  --dry-run         print the requests as NDJSON on stdout, send nothing\n"
    "  --json            print the summary as one JSON object\n"
    "  --personal-out F  at the end, write every personal string the run\n"
    "                    generated (names, phones, contacts, addresses,\n"
    "                    summaries...) to F, one JSON string a line (mode 0600):\n"
    "                    for tests that check none of them reaches the bus\n"
    "  -q, --quiet       no progress lines on stderr\n"
    "\n"
    "Idem keys are sim-SEED-START-N (-uK for the K-th update of report N, -c for\n"
    "its close): running again with the same seed and --start sends nothing new\n"
    "(intake answers duplicate: true).\n"
    "\n"
    "The summary (stdout; on stderr with --dry-run) counts requests sent and\n"
    "resent, acked and duplicates, level 1 and level 2 among acked reports,\n"
    "errors by code, updates, closes, elapsed time and the rate achieved.\n"
    "Ctrl-C stops sending, waits up to 2 s for answers, then prints it.\n"
    "\n"
    "examples:\n"
    "  relais simulate --scenario day --rate 2\n"
    "  relais simulate --scenario encampment --count 500 --rate 0 --json\n"
    "  relais simulate --dry-run --count 100 --seed 7 | jq -c .signal.publics\n"
    "\n"
    "exit codes:\n"
    "  0  every request sent was acknowledged\n"
    "  1  some were refused or unanswered (or intake unreachable)\n"
    "  2  usage error\n";

//  One request in flight
typedef struct {
    bool used;
    bool waiting;                       //  backing off; else sent, awaiting its reply
    sim_op_t op;
    uint64_t n;
    char idem [SIM_IDEM_MAX + 1];
    char *data;
    size_t size;
    int64_t due;                        //  waiting: send at; else resend at
    int64_t backoff;
} s_flight_t;

typedef struct {
    uint64_t sent, resent, submits, updates, closes;
    uint64_t acked, duplicates, level1, level2;
    uint64_t refused, unacked;
    struct {
        char code [32];
        uint64_t count;
    } errors [S_ERROR_KINDS];
    size_t error_kinds;
} s_stats_t;

typedef struct {
    const char *scenario;
    uint64_t seed;
    const char *endpoint;
    double rate;
    uint64_t count;                     //  0: no limit
    uint64_t duration_ms;               //  0: no limit
    uint64_t start_us;
    bool start_given;
    size_t window;
    int64_t timeout_ms;
    bool dry_run, json, quiet;
    const char *personal_out;           //  NULL: none
} s_opts_t;

//  ---------------------------------------------------------------------------
//  Flags

static bool
s_parse_ms (const char *text, uint64_t *ms)
{
    char *end;
    double seconds = strtod (text, &end);
    if (end != text && *end == 0) {
        if (!(seconds > 0 && seconds < 1e7))
            return false;
        *ms = (uint64_t) (seconds * 1000);
        return *ms > 0;
    }
    return relais_parse_duration_ms (text, ms) && *ms > 0;
}

static bool
s_parse_uint (const char *text, uint64_t max, uint64_t *value)
{
    if (!*text || *text == '-' || *text == '+')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull (text, &end, 10);
    if (errno || *end || v > max)
        return false;
    *value = v;
    return true;
}

static bool
s_parse_start (const char *text, uint64_t *us)
{
    if (s_parse_uint (text, UINT64_MAX, us))
        return *us >= 946684800000000ULL;
    struct tm tm;
    memset (&tm, 0, sizeof tm);
    const char *end = strptime (text, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (!end || *end)
        return false;
    time_t t = timegm (&tm);
    if (t < 946684800)
        return false;
    *us = (uint64_t) t * 1000000ULL;
    return true;
}

//  Returns 0, or CLI_USAGE after saying why
static int
s_parse_args (s_opts_t *opts, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv [i];
        const char *value = i + 1 < argc? argv [i + 1]: NULL;
        bool takes = true;
        if (strcmp (arg, "--dry-run") == 0)
            opts->dry_run = true, takes = false;
        else
        if (strcmp (arg, "--json") == 0)
            opts->json = true, takes = false;
        else
        if (strcmp (arg, "-q") == 0 || strcmp (arg, "--quiet") == 0)
            opts->quiet = true, takes = false;
        else
        if (!value) {
            fprintf (stderr, "simulate: unexpected '%s' (see `relais help simulate`)\n", arg);
            return CLI_USAGE;
        }
        else
        if (strcmp (arg, "--rate") == 0) {
            char *end;
            opts->rate = strtod (value, &end);
            if (end == value || *end || !(opts->rate >= 0 && opts->rate <= 100000)) {
                fprintf (stderr, "simulate: --rate wants requests per second, 0 to 100000\n");
                return CLI_USAGE;
            }
        }
        else
        if (strcmp (arg, "--duration") == 0) {
            if (!s_parse_ms (value, &opts->duration_ms)) {
                fprintf (stderr, "simulate: --duration wants a duration (90, 30s, 10m, 2h)\n");
                return CLI_USAGE;
            }
        }
        else
        if (strcmp (arg, "--count") == 0) {
            if (!s_parse_uint (value, UINT64_MAX, &opts->count) || opts->count == 0) {
                fprintf (stderr, "simulate: --count wants a number of requests, 1 or more\n");
                return CLI_USAGE;
            }
        }
        else
        if (strcmp (arg, "--seed") == 0) {
            if (!s_parse_uint (value, UINT64_MAX, &opts->seed)) {
                fprintf (stderr, "simulate: --seed wants an unsigned integer\n");
                return CLI_USAGE;
            }
        }
        else
        if (strcmp (arg, "--scenario") == 0)
            opts->scenario = value;
        else
        if (strcmp (arg, "--to") == 0)
            opts->endpoint = value;
        else
        if (strcmp (arg, "--personal-out") == 0)
            opts->personal_out = value;
        else
        if (strcmp (arg, "--start") == 0) {
            if (!s_parse_start (value, &opts->start_us)) {
                fprintf (stderr, "simulate: --start wants µs since 1970 or "
                                 "YYYY-MM-DDTHH:MM:SSZ, from 2000 on\n");
                return CLI_USAGE;
            }
            opts->start_given = true;
        }
        else
        if (strcmp (arg, "--window") == 0) {
            uint64_t window;
            if (!s_parse_uint (value, 100000, &window) || window == 0) {
                fprintf (stderr, "simulate: --window wants 1 to 100000\n");
                return CLI_USAGE;
            }
            opts->window = (size_t) window;
        }
        else
        if (strcmp (arg, "--timeout") == 0) {
            uint64_t ms;
            if (!s_parse_ms (value, &ms) || ms > 3600000) {
                fprintf (stderr, "simulate: --timeout wants a duration (3s, 500ms)\n");
                return CLI_USAGE;
            }
            opts->timeout_ms = (int64_t) ms;
        }
        else {
            fprintf (stderr, "simulate: unexpected '%s' (see `relais help simulate`)\n", arg);
            return CLI_USAGE;
        }
        if (takes)
            i++;
    }
    if (opts->count && opts->duration_ms) {
        fprintf (stderr, "simulate: --duration or --count, not both\n");
        return CLI_USAGE;
    }
    bool known = false;
    for (int i = 0; sim_model_scenarios [i]; i++)
        known |= strcmp (opts->scenario, sim_model_scenarios [i]) == 0;
    if (!known) {
        fprintf (stderr, "simulate: unknown scenario '%s': day, cold-snap or encampment\n",
                 opts->scenario);
        return CLI_USAGE;
    }
    if (!opts->dry_run && (!opts->endpoint || !*opts->endpoint)) {
        fprintf (stderr, "simulate: no submit endpoint (intake/submit, or --to)\n");
        return CLI_USAGE;
    }
    return 0;
}

//  ---------------------------------------------------------------------------
//  Summary

static void
s_count_error (s_stats_t *stats, const char *code)
{
    for (size_t i = 0; i < stats->error_kinds; i++)
        if (strcmp (stats->errors [i].code, code) == 0) {
            stats->errors [i].count++;
            return;
        }
    size_t i = stats->error_kinds < S_ERROR_KINDS? stats->error_kinds++: S_ERROR_KINDS - 1;
    snprintf (stats->errors [i].code, sizeof stats->errors [i].code, "%s",
              i == S_ERROR_KINDS - 1? "other": code);
    stats->errors [i].count++;
}

static void
s_summary (FILE *out, const s_opts_t *opts, const s_stats_t *stats, double elapsed,
           bool interrupted)
{
    double rate = elapsed > 0? (double) stats->sent / elapsed: 0;
    if (opts->json) {
        msgpack_sbuffer text;
        msgpack_sbuffer_init (&text);
        char buf [512];
        int n = snprintf (buf, sizeof buf, "{\"scenario\":\"%s\",\"seed\":%llu,\"dry_run\":%s,"
                          "\"endpoint\":", opts->scenario, (unsigned long long) opts->seed,
                          opts->dry_run? "true": "false");
        msgpack_sbuffer_write (&text, buf, (size_t) n);
        if (opts->dry_run)
            msgpack_sbuffer_write (&text, "null", 4);
        else
            cli_json_write_str (&text, opts->endpoint, strlen (opts->endpoint));
        n = snprintf (buf, sizeof buf,
                      ",\"sent\":%llu,\"submits\":%llu,\"updates\":%llu,\"closes\":%llu,"
                      "\"resent\":%llu,\"acked\":%llu,\"duplicates\":%llu,\"level1\":%llu,"
                      "\"level2\":%llu,\"refused\":%llu,\"unacked\":%llu,\"errors\":{",
                      (unsigned long long) stats->sent, (unsigned long long) stats->submits,
                      (unsigned long long) stats->updates, (unsigned long long) stats->closes,
                      (unsigned long long) stats->resent, (unsigned long long) stats->acked,
                      (unsigned long long) stats->duplicates, (unsigned long long) stats->level1,
                      (unsigned long long) stats->level2, (unsigned long long) stats->refused,
                      (unsigned long long) stats->unacked);
        msgpack_sbuffer_write (&text, buf, (size_t) n);
        for (size_t i = 0; i < stats->error_kinds; i++) {
            if (i)
                msgpack_sbuffer_write (&text, ",", 1);
            cli_json_write_str (&text, stats->errors [i].code, strlen (stats->errors [i].code));
            n = snprintf (buf, sizeof buf, ":%llu", (unsigned long long) stats->errors [i].count);
            msgpack_sbuffer_write (&text, buf, (size_t) n);
        }
        n = snprintf (buf, sizeof buf, "},\"elapsed_s\":%.3f,\"rate\":%.2f,\"interrupted\":%s}\n",
                      elapsed, rate, interrupted? "true": "false");
        msgpack_sbuffer_write (&text, buf, (size_t) n);
        fwrite (text.data, 1, text.size, out);
        msgpack_sbuffer_destroy (&text);
    }
    else {
        fprintf (out, "simulate: scenario %s, seed %llu, %s%s\n", opts->scenario,
                 (unsigned long long) opts->seed,
                 opts->dry_run? "dry run": opts->endpoint, interrupted? " (interrupted)": "");
        fprintf (out, "  sent        %llu requests: %llu submits, %llu updates, %llu closes"
                      "; %llu resent\n",
                 (unsigned long long) stats->sent, (unsigned long long) stats->submits,
                 (unsigned long long) stats->updates, (unsigned long long) stats->closes,
                 (unsigned long long) stats->resent);
        if (!opts->dry_run) {
            fprintf (out, "  acked       %llu (%llu duplicates)\n",
                     (unsigned long long) stats->acked, (unsigned long long) stats->duplicates);
            uint64_t reports = stats->level1 + stats->level2;
            fprintf (out, "  levels      level 1: %llu, level 2: %llu (%.0f%% of acked reports)\n",
                     (unsigned long long) stats->level1, (unsigned long long) stats->level2,
                     reports? 100.0 * (double) stats->level2 / (double) reports: 0.0);
            fprintf (out, "  errors      ");
            if (!stats->error_kinds)
                fprintf (out, "none");
            for (size_t i = 0; i < stats->error_kinds; i++)
                fprintf (out, "%s%s %llu", i? ", ": "", stats->errors [i].code,
                         (unsigned long long) stats->errors [i].count);
            fprintf (out, "\n  unacked     %llu\n", (unsigned long long) stats->unacked);
        }
        fprintf (out, "  elapsed     %.1f s, %.2f requests/s\n", elapsed, rate);
    }
    fflush (out);
}

//  The model's personal strings as NDJSON, readable by the owner only.
//  Returns 0, or -1 after saying why.
static int
s_write_personal (const char *path, sim_model_t *model)
{
    int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FILE *out = fd >= 0? fdopen (fd, "w"): NULL;
    if (!out) {
        fprintf (stderr, "simulate: cannot write %s: %s\n", path, strerror (errno));
        if (fd >= 0)
            close (fd);
        return -1;
    }
    msgpack_sbuffer line;
    msgpack_sbuffer_init (&line);
    size_t count = sim_model_personal_count (model);
    for (size_t i = 0; i < count; i++) {
        const char *text = sim_model_personal (model, i);
        msgpack_sbuffer_clear (&line);
        cli_json_write_str (&line, text, strlen (text));
        msgpack_sbuffer_write (&line, "\n", 1);
        fwrite (line.data, 1, line.size, out);
    }
    msgpack_sbuffer_destroy (&line);
    if (fclose (out) != 0) {
        fprintf (stderr, "simulate: cannot write %s: %s\n", path, strerror (errno));
        return -1;
    }
    return 0;
}

//  ---------------------------------------------------------------------------
//  Dry run: NDJSON on stdout

static int
s_dry_run (const s_opts_t *opts, sim_model_t *model)
{
    sim_model_self_ack (model, true);
    s_stats_t stats;
    memset (&stats, 0, sizeof stats);
    int64_t started = cli_now_ms ();
    msgpack_sbuffer req, line;
    msgpack_sbuffer_init (&req);
    msgpack_sbuffer_init (&line);
    int rc = CLI_OK;
    while (!cli_interrupted ()) {
        if (opts->count && stats.sent >= opts->count)
            break;
        sim_event_info_t info;
        sim_model_next (model, &req, &info);
        //  --duration is simulated time here: the output stays deterministic
        if (opts->duration_ms && info.sim_us > opts->duration_ms * 1000)
            break;
        relais_msg_t msg;
        relais_error_t err;
        if (relais_msg_decode (&msg, req.data, req.size, NULL, &err)) {
            fprintf (stderr, "simulate: generated an undecodable request (%s): a bug\n",
                     err.message);
            rc = CLI_FAILED;
            break;
        }
        msgpack_sbuffer_clear (&line);
        int bad = cli_json_write (&line, &msg.root, NULL);
        relais_msg_release (&msg);
        if (bad) {
            rc = CLI_FAILED;
            break;
        }
        msgpack_sbuffer_write (&line, "\n", 1);
        if (fwrite (line.data, 1, line.size, stdout) != line.size)
            break;                      //  `| head`: the reader has gone
        stats.sent++;
        stats.submits += info.op == SIM_OP_SUBMIT;
        stats.updates += info.op == SIM_OP_UPDATE;
        stats.closes += info.op == SIM_OP_CLOSE;
    }
    fflush (stdout);
    msgpack_sbuffer_destroy (&req);
    msgpack_sbuffer_destroy (&line);
    if (!opts->quiet || opts->json)
        s_summary (stderr, opts, &stats, (double) (cli_now_ms () - started) / 1000.0,
                   cli_interrupted ());
    return rc;
}

//  ---------------------------------------------------------------------------
//  Live run

typedef struct {
    const s_opts_t *opts;
    sim_model_t *model;
    zsock_t *sock;
    s_flight_t *flights;
    size_t in_flight;
    s_stats_t stats;
    int64_t last_reply;
    bool warned;
} s_run_t;

static s_flight_t *
s_flight_find (s_run_t *run, const char *idem)
{
    for (size_t i = 0; i < run->opts->window; i++)
        if (run->flights [i].used && strcmp (run->flights [i].idem, idem) == 0)
            return &run->flights [i];
    return NULL;
}

static void
s_flight_free (s_run_t *run, s_flight_t *flight)
{
    free (flight->data);
    memset (flight, 0, sizeof *flight);
    run->in_flight--;
}

static void
s_on_reply (s_run_t *run, zframe_t *frame, int64_t now)
{
    relais_msg_t msg;
    relais_error_t err;
    if (relais_msg_decode (&msg, zframe_data (frame), zframe_size (frame),
                           &cli_reply_limits, &err)) {
        fprintf (stderr, "simulate: dropped a malformed reply: %s\n", err.message);
        return;
    }
    run->last_reply = now;
    const msgpack_object *root = &msg.root;
    char idem [SIM_IDEM_MAX + 1];
    s_flight_t *flight = NULL;
    if (relais_msg_str_copy (relais_msg_get (root, "idem"), idem, sizeof idem) >= 0)
        flight = s_flight_find (run, idem);
    const msgpack_object *ok = relais_msg_get (root, "ok");
    bool success = ok && ok->type == MSGPACK_OBJECT_BOOLEAN && ok->via.boolean;
    char code [32] = "";
    if (!success && relais_msg_str_copy (relais_msg_get (root, "code"), code, sizeof code) < 0)
        snprintf (code, sizeof code, "invalid");
    if (!flight || flight->waiting) {
        //  A late answer to an earlier attempt, or an error that names no
        //  request (a frame-level refusal): nothing to match
        if (!flight && !success && !relais_msg_get (root, "idem"))
            s_count_error (&run->stats, code);
        relais_msg_release (&msg);
        return;
    }
    if (success) {
        run->stats.acked++;
        const msgpack_object *dup = relais_msg_get (root, "duplicate");
        if (dup && dup->type == MSGPACK_OBJECT_BOOLEAN && dup->via.boolean)
            run->stats.duplicates++;
        if (flight->op == SIM_OP_SUBMIT) {
            uint64_t level = 0;
            relais_msg_uint (relais_msg_get (root, "level"), &level);
            if (level == 2)
                run->stats.level2++;
            else
                run->stats.level1++;
            char id [SIM_ID_MAX + 1];
            if (relais_msg_str_copy (relais_msg_get (root, "id"), id, sizeof id) > 0)
                sim_model_acked (run->model, flight->n, id);
            else
                sim_model_failed (run->model, flight->n);
        }
        s_flight_free (run, flight);
    }
    else
    if (strcmp (code, RELAIS_CODE_UNAVAILABLE) == 0) {
        //  Intake is busy or stopping: the same bytes again, later
        flight->waiting = true;
        flight->due = now + flight->backoff;
        flight->backoff = flight->backoff * 2 > S_BACKOFF_MAX_MS? S_BACKOFF_MAX_MS
                                                                : flight->backoff * 2;
    }
    else {
        s_count_error (&run->stats, code);
        run->stats.refused++;
        if (flight->op == SIM_OP_SUBMIT)
            sim_model_failed (run->model, flight->n);
        char field [RELAIS_FIELD_MAX] = "";
        relais_msg_str_copy (relais_msg_get (root, "field"), field, sizeof field);
        //  Code and field only: the message never quotes the report
        fprintf (stderr, "simulate: %s refused: %s%s%s\n", flight->idem, code,
                 field [0]? " at ": "", field);
        s_flight_free (run, flight);
    }
    relais_msg_release (&msg);
}

static void
s_send (s_run_t *run, s_flight_t *flight, int64_t now)
{
    if (cli_send (run->sock, flight->data, flight->size) == 0) {
        flight->waiting = false;
        flight->due = now + run->opts->timeout_ms;
    }
    else {
        flight->waiting = true;         //  the queue is full: shortly
        flight->due = now + 10;
    }
}

static int
s_live (const s_opts_t *opts, sim_model_t *model)
{
    s_run_t run;
    memset (&run, 0, sizeof run);
    run.opts = opts;
    run.model = model;
    run.flights = (s_flight_t *) calloc (opts->window, sizeof *run.flights);
    run.sock = cli_sock_new (ZMQ_DEALER, opts->endpoint, 1 << 20);
    if (!run.flights || !run.sock) {
        free (run.flights);
        zsock_destroy (&run.sock);
        return CLI_FAILED;
    }
    zsock_set_sndhwm (run.sock, (int) (opts->window * 2 + 16));
    void *handle = zsock_resolve (run.sock);
    bool tty = isatty (STDERR_FILENO) != 0;

    msgpack_sbuffer req;
    msgpack_sbuffer_init (&req);
    sim_event_info_t info;
    bool have_next = false;             //  req holds a request not yet sent
    uint64_t schedule_us = 0;           //  when it is due, since started
    int64_t started = cli_now_ms ();
    int64_t stopped = 0;                //  when sending stopped
    int64_t progress = started + S_PROGRESS_MS;
    bool interrupted = false;
    run.last_reply = started;

    while (true) {
        int64_t now = cli_now_ms ();
        uint64_t elapsed_us = (uint64_t) (now - started) * 1000;
        if (!stopped) {
            if (cli_interrupted ())
                interrupted = true;
            if (interrupted || (opts->count && run.stats.sent >= opts->count)
            ||  (opts->duration_ms && (uint64_t) (now - started) >= opts->duration_ms))
                stopped = now;
        }
        if (stopped) {
            int64_t limit = interrupted? S_INTERRUPT_MS: S_DRAIN_MS;
            if (run.in_flight == 0 || now - stopped >= limit)
                break;
        }
        //  New requests, at the pace of the model's gaps
        while (!stopped && run.in_flight < opts->window
        &&     !(opts->count && run.stats.sent >= opts->count)) {
            if (!have_next) {
                sim_model_next (model, &req, &info);
                have_next = true;
                if (opts->rate > 0) {
                    schedule_us += info.gap_us;
                    //  Behind by more than a second (intake slow, window
                    //  full): go on from now rather than burst to catch up
                    if (schedule_us + 1000000 < elapsed_us)
                        schedule_us = elapsed_us;
                }
            }
            if (opts->rate > 0 && schedule_us > elapsed_us)
                break;
            s_flight_t *flight = NULL;
            for (size_t i = 0; i < opts->window && !flight; i++)
                if (!run.flights [i].used)
                    flight = &run.flights [i];
            assert (flight);            //  in_flight < window
            flight->data = (char *) malloc (req.size);
            if (!flight->data)
                break;
            memcpy (flight->data, req.data, req.size);
            flight->size = req.size;
            flight->used = true;
            flight->op = info.op;
            flight->n = info.n;
            flight->backoff = S_BACKOFF_FIRST_MS;
            snprintf (flight->idem, sizeof flight->idem, "%s", info.idem);
            run.in_flight++;
            have_next = false;
            run.stats.sent++;
            run.stats.submits += info.op == SIM_OP_SUBMIT;
            run.stats.updates += info.op == SIM_OP_UPDATE;
            run.stats.closes += info.op == SIM_OP_CLOSE;
            s_send (&run, flight, now);
        }
        //  Resends: timeouts and back-offs
        int64_t wake = now + 200;
        for (size_t i = 0; i < opts->window; i++) {
            s_flight_t *flight = &run.flights [i];
            if (!flight->used)
                continue;
            if (flight->due <= now) {
                if (!flight->waiting)
                    run.stats.resent++;
                s_send (&run, flight, now);
            }
            if (flight->due < wake)
                wake = flight->due;
        }
        if (!stopped && have_next && opts->rate > 0 && run.in_flight < opts->window) {
            int64_t at = started + (int64_t) (schedule_us / 1000);
            if (at < wake)
                wake = at;
        }
        if (!run.warned && run.in_flight && now - run.last_reply > 10000) {
            fprintf (stderr, "simulate: no answer from %s for 10 s; still trying "
                             "(Ctrl-C stops)\n", opts->endpoint);
            run.warned = true;
        }
        if (!opts->quiet && tty && now >= progress) {
            fprintf (stderr, "simulate: %.0f s: %llu sent, %llu acked, %llu level 2, "
                             "%llu refused\n", (double) (now - started) / 1000.0,
                     (unsigned long long) run.stats.sent, (unsigned long long) run.stats.acked,
                     (unsigned long long) run.stats.level2,
                     (unsigned long long) run.stats.refused);
            progress = now + S_PROGRESS_MS;
        }
        zmq_pollitem_t item = { handle, 0, ZMQ_POLLIN, 0 };
        long wait = (long) (wake - now);
        zmq_poll (&item, 1, wait < 0? 0: wait > 200? 200: wait);
        now = cli_now_ms ();
        zframe_t *frame;
        int received = 0;
        while (received++ < 10000 && cli_recv (run.sock, &frame, NULL, 0) == 0) {
            s_on_reply (&run, frame, now);
            zframe_destroy (&frame);
            if (run.warned) {
                fprintf (stderr, "simulate: %s answers again\n", opts->endpoint);
                run.warned = false;
            }
        }
    }
    run.stats.unacked = run.in_flight;
    double elapsed = (double) (cli_now_ms () - started) / 1000.0;
    for (size_t i = 0; i < opts->window; i++)
        if (run.flights [i].used)
            free (run.flights [i].data);
    free (run.flights);
    msgpack_sbuffer_destroy (&req);
    zsock_destroy (&run.sock);
    s_summary (stdout, opts, &run.stats, elapsed, interrupted);
    bool all = run.stats.unacked == 0 && run.stats.refused == 0 && run.stats.error_kinds == 0;
    return all? CLI_OK: CLI_FAILED;
}

int
cli_simulate (cli_t *cli, int argc, char **argv)
{
    s_opts_t opts;
    memset (&opts, 0, sizeof opts);
    opts.scenario = "day";
    opts.seed = 1;
    opts.rate = 5;
    opts.window = S_WINDOW_DEFAULT;
    opts.timeout_ms = S_TIMEOUT_MS;
    opts.endpoint = relais_config_str (cli->config, "intake/submit");
    int rc = s_parse_args (&opts, argc, argv);
    if (rc)
        return rc;
    if (!opts.start_given)
        opts.start_us = opts.dry_run? S_DRY_START_US: relais_clock_now ();
    sim_model_t *model = sim_model_new (opts.seed, opts.scenario, opts.start_us);
    if (!model) {
        fprintf (stderr, "simulate: out of memory\n");
        return CLI_FAILED;
    }
    if (opts.rate > 0)
        sim_model_set_rate (model, opts.rate);
    rc = opts.dry_run? s_dry_run (&opts, model): s_live (&opts, model);
    if (opts.personal_out && s_write_personal (opts.personal_out, model) && rc == CLI_OK)
        rc = CLI_FAILED;
    sim_model_destroy (&model);
    return rc;
}
