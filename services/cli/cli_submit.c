/*  =========================================================================
    cli_submit - `relais submit`: JSON reports in, acknowledgements out

    @header
    Reads one JSON object, or many (NDJSON, or objects back to back),
    checks and converts every one of them before sending anything, then
    pipelines them over one DEALER to intake's submit endpoint with a window
    of requests in flight. Each request carries an idem (given or generated)
    and a rid (its position in the input), so replies are matched whatever
    order they come in, and a resent request can never be applied twice.
    Replies are printed in input order, one JSON line each.
    =========================================================================
*/
#include "cli.h"
#include "cli_json.h"
#include "relais_clock.h"
#include "relais_config.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_WINDOW_DEFAULT    256
#define S_BACKOFF_FIRST_MS  100
#define S_BACKOFF_MAX_MS    5000
#define S_INPUT_MAX         (512LL << 20)
#define S_IDEM_MAX          128

const char cli_submit_help [] =
    "usage: relais submit [FLAGS] FILE.json|-\n"
    "\n"
    "Send reports (signalements) to intake and print each reply as one JSON\n"
    "line on stdout, in the order of the input.\n"
    "\n"
    "FILE (or - for stdin) holds one JSON object, or many: NDJSON (one per line)\n"
    "or objects one after the other. Each object is either\n"
    "  - a report: the signal map of PROTOCOL.md §3, e.g.\n"
    "      {\"source\": {\"kind\": \"115\"}, \"place\": {\"arrondissement\": 18},\n"
    "       \"persons\": 4, \"publics\": [\"famille\", \"enfant\"], ...}\n"
    "    sent as {\"op\": \"submit\", \"idem\": KEY, \"signal\": REPORT}; or\n"
    "  - a whole request with \"op\" (submit, update, close), sent as is; an\n"
    "    idem is added when it has none.\n"
    "The whole input is read and checked first: if any object is not valid\n"
    "JSON (the error names its line and column) or is too large, nothing at\n"
    "all is sent and the exit code is 2. Fix the file and run again.\n"
    "\n"
    "Every request carries an idem key: intake applies a key once and answers\n"
    "a repeat with the first answer and \"duplicate\": true, so running the\n"
    "same file twice with the same keys is safe. Generated keys look like\n"
    "HOST-PID-MICROSECONDS-N and are unique per run.\n"
    "\n"
    "flags:\n"
    "  --idem KEY       idem key of the report (only when FILE holds one)\n"
    "  --to ENDPOINT    submit endpoint (default: intake/submit of the config)\n"
    "  --timeout D      resend a request unanswered after D (default 5s;\n"
    "                   a number is seconds, or 500ms, 10s, 1m)\n"
    "  --retries N      resends allowed per report, for timeouts and\n"
    "                   'unavailable' replies (default 10); 'unavailable' is\n"
    "                   retried after 100 ms, doubling up to 5 s\n"
    "  --window N       requests in flight at once (default 256)\n"
    "  -q, --quiet      no summary line on stderr\n"
    "\n"
    "examples:\n"
    "  relais submit services/cli/examples/signalement.json\n"
    "  relais submit --idem 115-2026-11-22-0042 report.json\n"
    "  relais submit - < reports.ndjson | jq -c 'select(.ok == false)'\n"
    "\n"
    "exit codes:\n"
    "  0  every report was acknowledged (new or duplicate)\n"
    "  1  a report was refused (an error reply), or got no answer after its\n"
    "     retries, or the command was interrupted\n"
    "  2  usage error, unreadable file, invalid JSON: nothing was sent\n";

typedef enum { S_PENDING, S_WAIT, S_INFLIGHT, S_DONE } s_state_t;

typedef struct {
    char *idem;
    char *body;                 //  encoded request
    size_t size;
    s_state_t state;
    int attempts;               //  sends so far
    int64_t due;                //  WAIT: send at; INFLIGHT: resend at
    int64_t backoff;
    char *output;               //  the JSON line to print
    bool failed;
} s_req_t;

typedef struct {
    s_req_t *reqs;
    size_t count;
    zhashx_t *by_idem;
    int64_t timeout_ms;
    int retries;
    size_t window;
} s_batch_t;

static bool
s_parse_ms (const char *text, int64_t *ms)
{
    char *end;
    double seconds = strtod (text, &end);
    if (end != text && *end == 0 && seconds > 0 && seconds < 86400) {
        *ms = (int64_t) (seconds * 1000);
        return *ms > 0;
    }
    uint64_t value;
    if (relais_parse_duration_ms (text, &value) && value > 0 && value < 86400000) {
        *ms = (int64_t) value;
        return true;
    }
    return false;
}

static char *
s_read_all (const char *file, size_t *size_p)
{
    FILE *in = strcmp (file, "-") == 0? stdin: fopen (file, "rb");
    if (!in) {
        fprintf (stderr, "submit: cannot open %s: %s\n", file, strerror (errno));
        return NULL;
    }
    size_t size = 0, room = 65536;
    char *data = (char *) malloc (room);
    while (data) {
        if (size == room) {
            if ((long long) room >= S_INPUT_MAX) {
                fprintf (stderr, "submit: %s is over %lld MiB\n", file, S_INPUT_MAX >> 20);
                free (data);
                data = NULL;
                break;
            }
            char *bigger = (char *) realloc (data, room * 2);
            if (!bigger) {
                free (data);
                data = NULL;
                break;
            }
            data = bigger;
            room *= 2;
        }
        size_t n = fread (data + size, 1, room - size, in);
        size += n;
        if (n == 0) {
            if (ferror (in)) {
                fprintf (stderr, "submit: cannot read %s: %s\n", file, strerror (errno));
                free (data);
                data = NULL;
            }
            break;
        }
    }
    if (in != stdin)
        fclose (in);
    *size_p = size;
    return data;
}

static void
s_batch_free (s_batch_t *batch)
{
    for (size_t i = 0; i < batch->count; i++) {
        free (batch->reqs [i].idem);
        free (batch->reqs [i].body);
        free (batch->reqs [i].output);
    }
    free (batch->reqs);
    zhashx_destroy (&batch->by_idem);
}

//  Turn the input into encoded requests. Returns 0, or CLI_USAGE after
//  saying why on stderr (nothing will be sent).
static int
s_prepare (s_batch_t *batch, const char *file, const char *data, size_t size,
           const char *idem_flag)
{
    char host [64] = "relais";
    gethostname (host, sizeof host);
    host [sizeof host - 1] = 0;
    for (char *p = host; *p; p++)
        if (*p == '.')
            *p = 0;             //  the short name is enough and keeps keys short
    uint64_t stamp = relais_clock_now ();
    size_t room = 0;
    cli_json_reader_t reader;
    cli_json_reader_init (&reader, data, size);
    const char *name = strcmp (file, "-") == 0? "stdin": file;
    while (true) {
        json_t *value = NULL;
        int line = 0;
        char why [256];
        int rc = cli_json_reader_next (&reader, &value, &line, why, sizeof why);
        if (rc == 0)
            break;
        if (rc < 0) {
            fprintf (stderr, "submit: %s: %s (nothing was sent)\n", name, why);
            return CLI_USAGE;
        }
        if (!json_is_object (value)) {
            fprintf (stderr, "submit: %s: line %d: expected a JSON object (a report, "
                             "or a request with \"op\") (nothing was sent)\n", name, line);
            json_decref (value);
            return CLI_USAGE;
        }
        if (batch->count == room) {
            room = room? room * 2: 64;
            s_req_t *bigger = (s_req_t *) realloc (batch->reqs, room * sizeof *bigger);
            if (!bigger) {
                json_decref (value);
                fprintf (stderr, "submit: out of memory\n");
                return CLI_FAILED;
            }
            batch->reqs = bigger;
        }
        size_t index = batch->count;
        s_req_t *req = &batch->reqs [index];
        memset (req, 0, sizeof *req);
        batch->count++;

        json_t *request;
        if (json_object_get (value, "op"))
            request = value;
        else {
            request = json_object ();
            json_object_set_new (request, "op", json_string ("submit"));
            json_object_set_new (request, "signal", value);
        }
        json_t *idem = json_object_get (request, "idem");
        if (idem_flag)
            json_object_set_new (request, "idem", json_string (idem_flag));
        else
        if (!idem) {
            char key [S_IDEM_MAX + 1];
            snprintf (key, sizeof key, "%s-%ld-%llu-%zu", host, (long) getpid (),
                      (unsigned long long) stamp, index + 1);
            json_object_set_new (request, "idem", json_string (key));
        }
        else
        if (!json_is_string (idem) || json_string_length (idem) == 0
        ||  json_string_length (idem) > S_IDEM_MAX) {
            fprintf (stderr, "submit: %s: line %d: \"idem\" must be a string of 1 to %d "
                             "bytes (nothing was sent)\n", name, line, S_IDEM_MAX);
            json_decref (request);
            return CLI_USAGE;
        }
        req->idem = strdup (json_string_value (json_object_get (request, "idem")));
        //  rid: our own handle on the reply, so a user-given idem that
        //  repeats in the file still matches the right line
        json_object_set_new (request, "rid", json_integer ((json_int_t) index + 1));

        msgpack_sbuffer sbuf;
        msgpack_sbuffer_init (&sbuf);
        msgpack_packer pk;
        msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
        rc = cli_json_pack (&pk, request, why, sizeof why);
        json_decref (request);
        if (rc) {
            fprintf (stderr, "submit: %s: line %d: %s (nothing was sent)\n", name, line, why);
            msgpack_sbuffer_destroy (&sbuf);
            return CLI_USAGE;
        }
        //  Intake drops the connection on a frame over its limit (ZMQ
        //  MAXMSGSIZE), which would look like a timeout: refuse it here.
        if (sbuf.size > RELAIS_MSG_MAX_BYTES) {
            fprintf (stderr, "submit: %s: line %d: the request is %zu bytes, over the "
                             "%d-byte limit (nothing was sent)\n", name, line, sbuf.size,
                     RELAIS_MSG_MAX_BYTES);
            msgpack_sbuffer_destroy (&sbuf);
            return CLI_USAGE;
        }
        req->size = sbuf.size;
        req->body = msgpack_sbuffer_release (&sbuf);
        if (!req->idem || !req->body) {
            fprintf (stderr, "submit: out of memory\n");
            return CLI_FAILED;
        }
        zhashx_insert (batch->by_idem, req->idem, (void *) (uintptr_t) (index + 1));
    }
    if (batch->count == 0) {
        fprintf (stderr, "submit: %s holds no report\n", name);
        return CLI_USAGE;
    }
    if (idem_flag && batch->count > 1) {
        fprintf (stderr, "submit: --idem names one report, but %s holds %zu "
                         "(nothing was sent)\n", name, batch->count);
        return CLI_USAGE;
    }
    return 0;
}

static void
s_give_up (s_req_t *req, const char *code, const char *message)
{
    msgpack_sbuffer out;
    msgpack_sbuffer_init (&out);
    msgpack_sbuffer_write (&out, "{\"ok\":false,\"idem\":", 19);
    cli_json_write_str (&out, req->idem, strlen (req->idem));
    msgpack_sbuffer_write (&out, ",\"code\":", 8);
    cli_json_write_str (&out, code, strlen (code));
    msgpack_sbuffer_write (&out, ",\"message\":", 11);
    cli_json_write_str (&out, message, strlen (message));
    msgpack_sbuffer_write (&out, ",\"local\":true}", 14);
    free (req->output);
    req->output = strndup (out.data, out.size);
    msgpack_sbuffer_destroy (&out);
    req->failed = true;
    req->state = S_DONE;
}

static void
s_on_reply (s_batch_t *batch, zframe_t *frame, int64_t now)
{
    relais_msg_t msg;
    relais_error_t err;
    if (relais_msg_decode (&msg, zframe_data (frame), zframe_size (frame),
                           &cli_reply_limits, &err)) {
        fprintf (stderr, "submit: dropped a malformed reply: %s\n", err.message);
        return;
    }
    const msgpack_object *root = &msg.root;
    s_req_t *req = NULL;
    uint64_t rid;
    if (relais_msg_uint (relais_msg_get (root, "rid"), &rid) && rid >= 1 && rid <= batch->count)
        req = &batch->reqs [rid - 1];
    else {
        //  Some errors come before the server could read our rid
        char idem [S_IDEM_MAX + 1];
        if (relais_msg_str_copy (relais_msg_get (root, "idem"), idem, sizeof idem) >= 0) {
            uintptr_t index = (uintptr_t) zhashx_lookup (batch->by_idem, idem);
            if (index)
                req = &batch->reqs [index - 1];
        }
    }
    if (!req || req->state == S_DONE || req->state == S_PENDING) {
        relais_msg_release (&msg);
        return;                     //  a late answer to a resent request
    }
    const msgpack_object *ok = relais_msg_get (root, "ok");
    bool success = ok && ok->type == MSGPACK_OBJECT_BOOLEAN && ok->via.boolean;
    if (!success && relais_msg_str_eq (relais_msg_get (root, "code"), RELAIS_CODE_UNAVAILABLE)
    &&  req->attempts <= batch->retries) {
        req->state = S_WAIT;
        req->due = now + req->backoff;
        req->backoff = req->backoff * 2 > S_BACKOFF_MAX_MS? S_BACKOFF_MAX_MS: req->backoff * 2;
        relais_msg_release (&msg);
        return;
    }
    cli_json_opts_t opts = { NULL, NULL, "rid" };
    free (req->output);
    req->output = cli_json_dumps (root, &opts);
    if (!req->output)
        s_give_up (req, "invalid", "reply could not be printed");
    req->failed = !success;
    req->state = S_DONE;
    relais_msg_release (&msg);
}

//  Send everything and collect every reply. Returns the number of reports
//  refused or unanswered.
static size_t
s_run (s_batch_t *batch, zsock_t *sock, bool quiet)
{
    size_t next = 0, printed = 0, acked = 0, failed = 0, duplicates = 0;
    size_t *active = (size_t *) calloc (batch->window, sizeof *active);
    size_t active_count = 0;
    if (!active)
        return batch->count;
    void *handle = zsock_resolve (sock);
    while (printed < batch->count && !cli_interrupted ()) {
        int64_t now = cli_now_ms ();
        while (active_count < batch->window && next < batch->count) {
            s_req_t *req = &batch->reqs [next];
            req->state = S_WAIT;
            req->due = now;
            req->backoff = S_BACKOFF_FIRST_MS;
            active [active_count++] = next++;
        }
        int64_t wake = now + 200;
        for (size_t i = 0; i < active_count; i++) {
            s_req_t *req = &batch->reqs [active [i]];
            if (req->state == S_WAIT && req->due <= now) {
                if (cli_send (sock, req->body, req->size) == 0) {
                    req->state = S_INFLIGHT;
                    req->attempts++;
                    req->due = now + batch->timeout_ms;
                }
                else
                    req->due = now + 10;    //  queue full: try again shortly
            }
            if (req->state != S_DONE && req->due < wake)
                wake = req->due;
        }
        zmq_pollitem_t item = { handle, 0, ZMQ_POLLIN, 0 };
        long wait = (long) (wake - now);
        zmq_poll (&item, 1, wait < 0? 0: wait);

        zframe_t *frame;
        now = cli_now_ms ();
        int received = 0;
        while (received++ < 10000 && cli_recv (sock, &frame, NULL, 0) == 0) {
            s_on_reply (batch, frame, now);
            zframe_destroy (&frame);
        }
        for (size_t i = 0; i < active_count; i++) {
            s_req_t *req = &batch->reqs [active [i]];
            if (req->state == S_INFLIGHT && req->due <= now) {
                if (req->attempts > batch->retries) {
                    char message [128];
                    snprintf (message, sizeof message, "no reply after %d attempts of %lld ms",
                              req->attempts, (long long) batch->timeout_ms);
                    s_give_up (req, "timeout", message);
                }
                else {
                    req->state = S_WAIT;    //  resend at once, same idem
                    req->due = now;
                }
            }
        }
        //  Drop finished requests from the window
        size_t kept = 0;
        for (size_t i = 0; i < active_count; i++) {
            s_req_t *req = &batch->reqs [active [i]];
            if (req->state == S_DONE) {
                if (req->failed)
                    failed++;
                else {
                    acked++;
                    if (req->output && strstr (req->output, "\"duplicate\":true"))
                        duplicates++;
                }
            }
            else
                active [kept++] = active [i];
        }
        active_count = kept;
        while (printed < batch->count && batch->reqs [printed].state == S_DONE) {
            s_req_t *req = &batch->reqs [printed++];
            puts (req->output? req->output: "{}");
            free (req->output);
            req->output = NULL;
        }
        fflush (stdout);
    }
    if (printed < batch->count) {
        //  Interrupted: print what was answered, say what was not
        size_t unanswered = 0;
        for (size_t i = printed; i < batch->count; i++) {
            s_req_t *req = &batch->reqs [i];
            if (req->state == S_DONE && req->output)
                puts (req->output);
            else
                unanswered++;
        }
        fflush (stdout);
        fprintf (stderr, "submit: interrupted: %zu of %zu reports unanswered (sending the "
                         "same input again with the same idem keys is safe)\n",
                 unanswered, batch->count);
        failed += unanswered;
    }
    if (!quiet && batch->count > 1)
        fprintf (stderr, "submit: %zu reports: %zu acknowledged (%zu duplicates), %zu "
                         "refused or unanswered\n", batch->count, acked,
                 duplicates, failed);
    free (active);
    return failed;
}

int
cli_submit (cli_t *cli, int argc, char **argv)
{
    const char *file = NULL, *idem = NULL;
    const char *endpoint = relais_config_str (cli->config, "intake/submit");
    s_batch_t batch;
    memset (&batch, 0, sizeof batch);
    batch.timeout_ms = 5000;
    batch.retries = 10;
    batch.window = S_WINDOW_DEFAULT;
    bool quiet = false;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv [i];
        const char *value = i + 1 < argc? argv [i + 1]: NULL;
        if (strcmp (arg, "--idem") == 0 && value) {
            idem = value;
            i++;
            if (!*idem || strlen (idem) > S_IDEM_MAX) {
                fprintf (stderr, "submit: --idem must be 1 to %d bytes\n", S_IDEM_MAX);
                return CLI_USAGE;
            }
        }
        else
        if (strcmp (arg, "--to") == 0 && value) {
            endpoint = value;
            i++;
        }
        else
        if (strcmp (arg, "--timeout") == 0 && value) {
            if (!s_parse_ms (value, &batch.timeout_ms)) {
                fprintf (stderr, "submit: --timeout wants a duration (5, 2.5, 500ms, 10s)\n");
                return CLI_USAGE;
            }
            i++;
        }
        else
        if (strcmp (arg, "--retries") == 0 && value) {
            char *end;
            long n = strtol (value, &end, 10);
            if (*end || end == value || n < 0 || n > 1000) {
                fprintf (stderr, "submit: --retries wants 0 to 1000\n");
                return CLI_USAGE;
            }
            batch.retries = (int) n;
            i++;
        }
        else
        if (strcmp (arg, "--window") == 0 && value) {
            char *end;
            long n = strtol (value, &end, 10);
            if (*end || end == value || n < 1 || n > 100000) {
                fprintf (stderr, "submit: --window wants 1 to 100000\n");
                return CLI_USAGE;
            }
            batch.window = (size_t) n;
            i++;
        }
        else
        if (strcmp (arg, "-q") == 0 || strcmp (arg, "--quiet") == 0)
            quiet = true;
        else
        if ((arg [0] != '-' || strcmp (arg, "-") == 0) && !file)
            file = arg;
        else {
            fprintf (stderr, "submit: unexpected '%s' (see `relais help submit`)\n", arg);
            return CLI_USAGE;
        }
    }
    if (!file) {
        fprintf (stderr, "submit: which file? (FILE.json, or - for stdin; see `relais help submit`)\n");
        return CLI_USAGE;
    }
    if (!endpoint || !*endpoint) {
        fprintf (stderr, "submit: no submit endpoint (intake/submit, or --to)\n");
        return CLI_USAGE;
    }
    size_t size;
    char *data = s_read_all (file, &size);
    if (!data)
        return CLI_USAGE;
    batch.by_idem = zhashx_new ();
    int rc = s_prepare (&batch, file, data, size, idem);
    free (data);
    if (rc == 0) {
        zsock_t *sock = cli_sock_new (ZMQ_DEALER, endpoint, 1 << 20);
        if (!sock)
            rc = CLI_FAILED;
        else {
            zsock_set_sndhwm (sock, (int) (batch.window * 2 + 16));
            size_t failed = s_run (&batch, sock, quiet);
            rc = failed? CLI_FAILED: CLI_OK;
            zsock_destroy (&sock);
        }
    }
    s_batch_free (&batch);
    return rc;
}
