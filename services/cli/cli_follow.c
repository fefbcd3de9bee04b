/*  =========================================================================
    cli_follow - `relais follow`: a producer follows the status of its own
    reports; `relais status --report`: one report's timeline

    @header
    follow connects a DEALER to feedback's feed endpoint and says hello
    with the last mseq it durably handled (its state file), prints each new
    status change (a line for a person, or NDJSON), records the new last
    mseq, then acknowledges cumulatively: after a kill and a restart it
    prints what it missed, and nothing twice (with --out FILE, exactly
    once: the file's last line counts as handled). The loop, the state file
    and the sinks are relais-notify's (notify_follower, notify_sink).
    status --report asks feedback.status on feedback's api endpoint and
    prints the timeline.
    @discuss
    With CURVE on, feedback opens the feed of the certificate's source
    (RELAIS_IDENTITY / --as): a producer certificate follows only its own
    reports, whatever --producer says.
    =========================================================================
*/
#include "cli.h"
#include "cli_json.h"
#include "feedback_server.h"
#include "feedback_status.h"
#include "notify_follower.h"
#include "notify_sink.h"
#include "relais_clock.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

const char cli_follow_help [] =
    "usage: relais follow --producer KIND:NAME [--json] [--out FILE] [--state FILE]\n"
    "                     [--count N] [--idle D]\n"
    "\n"
    "Follow the status changes of the reports a producer submitted (its\n"
    "durable feed on feedback): recu, qualifie, oriente, escalade,\n"
    "pris_en_charge, en_cours, clos - one line each, as they happen. After a\n"
    "stop (even kill -9) it starts where it left off: what was missed comes\n"
    "first, nothing twice.\n"
    "\n"
    "  2026-11-23 20:14:51  SIG-00000002  oriente         uasa\n"
    "  2026-11-23 20:15:03  SIG-00000002  pris_en_charge  uasa\n"
    "  2026-11-23 21:02:40  SIG-00000002  clos            mise_a_l_abri  PLAN-00000001\n"
    "\n"
    "flags:\n"
    "  --producer KIND:NAME  the producer: its source kind and name, as in its\n"
    "                   reports (\"115:115 de Paris\"). With CURVE, the\n"
    "                   certificate decides and this is ignored\n"
    "  --json           NDJSON: {producer, mseq, key, type, body} per change\n"
    "  --out FILE       append NDJSON to FILE (fsync'd before the ack; exactly once)\n"
    "  --state FILE     the last mseq handled (default <relais/data>/follow-<KIND>-<NAME>.state)\n"
    "  --count N        exit after N new changes\n"
    "  --idle D         exit after D without a new change (e.g. 5s)\n"
    "\n"
    "exit codes:\n"
    "  0  stopped (signal, --count, --idle)\n"
    "  1  feedback refused us, or the state could not be written\n"
    "  2  usage error\n";

#define S_DEFAULT_FEED  "tcp://127.0.0.1:7162"
#define S_DEFAULT_API   "tcp://127.0.0.1:7163"

static const char *
s_endpoint (cli_t *cli, const char *path, const char *fallback)
{
    const char *value = relais_config_str (cli->config, path);
    return value && *value? value: fallback;
}

static void
s_send_map (zsock_t *sock, msgpack_sbuffer *sbuf)
{
    cli_send (sock, sbuf->data, sbuf->size);
    msgpack_sbuffer_destroy (sbuf);
}

static void
s_format_time (uint64_t us, char *buf, size_t size)
{
    time_t t = (time_t) (us / 1000000);
    struct tm tm;
    localtime_r (&t, &tm);
    strftime (buf, size, "%Y-%m-%d %H:%M:%S", &tm);
}

static void
s_str (const msgpack_object *map, const char *key, char *buf, size_t size)
{
    buf [0] = 0;
    relais_msg_str_copy (relais_msg_get (map, key), buf, size);
}

//  One status change (a step map) as a line for a person
static void
s_human_line (const char *key, const msgpack_object *step, msgpack_sbuffer *out)
{
    char status [32], partner [64], fallback [64], cause [32], outcome [32], plan [64], when [32];
    char line [512];
    uint64_t at = 0, level = 0;
    s_str (step, "status", status, sizeof status);
    s_str (step, "partner", partner, sizeof partner);
    s_str (step, "fallback", fallback, sizeof fallback);
    s_str (step, "cause", cause, sizeof cause);
    s_str (step, "outcome", outcome, sizeof outcome);
    s_str (step, "plan", plan, sizeof plan);
    relais_msg_uint (relais_msg_get (step, "at"), &at);
    relais_msg_uint (relais_msg_get (step, "level"), &level);
    s_format_time (at, when, sizeof when);
    int n = snprintf (line, sizeof line, "%s  %-14s  %-15s", when, key, status);
    if (strcmp (status, "qualifie") == 0)
        n += snprintf (line + n, sizeof line - (size_t) n, "  niveau %llu", (unsigned long long) level);
    if (partner [0])
        n += snprintf (line + n, sizeof line - (size_t) n, "  %s", partner);
    if (strcmp (status, "escalade") == 0)
        n += snprintf (line + n, sizeof line - (size_t) n, "  (%s) -> %s", cause,
                       fallback [0]? fallback: "personne: la MUS doit agir");
    if (outcome [0])
        n += snprintf (line + n, sizeof line - (size_t) n, "  %s", outcome);
    if (plan [0])
        snprintf (line + n, sizeof line - (size_t) n, "  %s", plan);
    msgpack_sbuffer_write (out, line, strlen (line));
}

//  ---------------------------------------------------------------------------
//  relais follow

typedef struct {
    const char *producer;
    bool json;                          //  NDJSON (--json or --out), else a line for a person
} s_follow_t;

static zsock_t *
s_follow_connect (const char *endpoint, void *arg)
{
    return cli_sock_new (ZMQ_DEALER, endpoint, 0);
}

static int
s_follow_format (const msgpack_object *deliver, msgpack_sbuffer *line, void *arg)
{
    s_follow_t *f = (s_follow_t *) arg;
    if (f->json) {
        cli_json_opts_t opts = { "producer", f->producer, "op" };
        return cli_json_write (line, deliver, &opts);
    }
    char key [64];
    s_str (deliver, "key", key, sizeof key);
    s_human_line (key, relais_msg_get (deliver, "body"), line);
    return 0;
}

static void
s_follow_say (bool error, const char *text, void *arg)
{
    fprintf (stderr, "relais follow: %s\n", text);
}

static bool
s_follow_stopped (void *arg)
{
    return cli_interrupted ();
}

int
cli_follow (cli_t *cli, int argc, char **argv)
{
    const char *producer = NULL, *out_path = NULL, *state_arg = NULL;
    bool json = false;
    uint64_t count = 0, idle_ms = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv [i], "--producer") == 0 && i + 1 < argc)
            producer = argv [++i];
        else
        if (strcmp (argv [i], "--json") == 0)
            json = true;
        else
        if (strcmp (argv [i], "--out") == 0 && i + 1 < argc)
            out_path = argv [++i];
        else
        if (strcmp (argv [i], "--state") == 0 && i + 1 < argc)
            state_arg = argv [++i];
        else
        if (strcmp (argv [i], "--count") == 0 && i + 1 < argc)
            count = strtoull (argv [++i], NULL, 10);
        else
        if (strcmp (argv [i], "--idle") == 0 && i + 1 < argc
        &&  relais_parse_duration_ms (argv [i + 1], &idle_ms))
            i++;
        else {
            fputs (cli_follow_help, stderr);
            return CLI_USAGE;
        }
    }
    if (!producer || !feedback_producer_valid (producer)) {
        fprintf (stderr, "relais follow: --producer KIND:NAME is required (a source kind, a name)\n");
        return CLI_USAGE;
    }
    char *spec = out_path? zsys_sprintf ("file:%s", out_path): strdup ("stdout");
    char why [256];
    notify_sink_t *sink = notify_sink_new (spec, why, sizeof why);
    free (spec);
    if (!sink) {
        fprintf (stderr, "relais follow: %s\n", why);
        return CLI_USAGE;
    }
    char *state_path = NULL;
    if (state_arg)
        state_path = strdup (state_arg);
    else {
        char *data = relais_config_path (cli->config, "relais/data");
        if (data) {
            char safe [FEEDBACK_PRODUCER_MAX];
            size_t j = 0;
            for (const char *c = producer; *c && j + 1 < sizeof safe; c++)
                safe [j++] = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z')
                          || (*c >= '0' && *c <= '9')? *c: '-';
            safe [j] = 0;
            zsys_dir_create ("%s", data);
            state_path = zsys_sprintf ("%s/follow-%s.state", data, safe);
            zstr_free (&data);
        }
    }
    uint64_t last = 0;
    if (!state_path || notify_state_read (state_path, &last)) {
        fprintf (stderr, "relais follow: state file %s unreadable: refusing to guess\n",
                 state_path? state_path: "(none)");
        notify_sink_destroy (&sink);
        free (state_path);
        return CLI_FAILED;
    }
    if (notify_sink_last (sink) > last)
        last = notify_sink_last (sink); //  appended, then stopped before the state file
    const char *endpoint = s_endpoint (cli, "feedback/feed", S_DEFAULT_FEED);
    uint64_t hb_ms = relais_config_duration_ms (cli->config, "feedback/feed_heartbeat", 1000);
    if (hb_ms == 0)
        hb_ms = 1000;
    s_follow_t follow = { producer, json || out_path };
    notify_follower_opts_t opts = {
        .endpoint = endpoint,
        .who_key = "producer",
        .name = producer,
        .peer = "feedback",
        .heartbeat_ms = hb_ms,
        .sink = sink,
        .state_path = state_path,
        .limits = &cli_reply_limits,
        .retry = false,                 //  a sink that fails ends the command
        .quiet_refusals = false,        //  so does a refusal (but conflict: hello again)
        .count = count,
        .idle_ms = idle_ms,
        .connect = s_follow_connect,
        .format = s_follow_format,
        .say = s_follow_say,
        .stopped = s_follow_stopped,
        .arg = &follow,
    };
    uint64_t handled = 0;
    int rc = notify_follower_run (&opts, &last, &handled)? CLI_FAILED: CLI_OK;
    notify_sink_destroy (&sink);
    free (state_path);
    return rc;
}

//  ---------------------------------------------------------------------------
//  relais status --report SIG-…

int
cli_report_status (cli_t *cli, int argc, char **argv)
{
    const char *id = NULL, *producer = NULL;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv [i], "--report") == 0 && i + 1 < argc)
            id = argv [++i];
        else
        if (strcmp (argv [i], "--producer") == 0 && i + 1 < argc)
            producer = argv [++i];
        else
        if (strcmp (argv [i], "--json") == 0)
            json = true;
        else {
            fputs (cli_status_help, stderr);
            return CLI_USAGE;
        }
    }
    if (!id) {
        fputs (cli_status_help, stderr);
        return CLI_USAGE;
    }
    zsock_t *sock = cli_sock_new (ZMQ_DEALER, s_endpoint (cli, "feedback/api", S_DEFAULT_API), 0);
    if (!sock)
        return CLI_FAILED;
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 3 + (producer != NULL));
    relais_pack_kv_str (&pk, "op", "feedback.status");
    relais_pack_kv_str (&pk, "id", id);
    relais_pack_kv_uint (&pk, "rid", 1);
    if (producer)
        relais_pack_kv_str (&pk, "producer", producer);
    s_send_map (sock, &sbuf);
    zframe_t *frame = NULL;
    relais_msg_t msg;
    int wait = cli_wait_reply (sock, 1, 5000, &frame, &msg);
    zsock_destroy (&sock);
    if (wait) {
        fprintf (stderr, "relais status: no answer from feedback\n");
        return CLI_FAILED;
    }
    int rc = CLI_OK;
    const msgpack_object *ok = relais_msg_get (&msg.root, "ok");
    msgpack_sbuffer out;
    msgpack_sbuffer_init (&out);
    if (json) {
        cli_json_opts_t opts = { NULL, NULL, "rid" };
        cli_json_write (&out, &msg.root, &opts);
        msgpack_sbuffer_write (&out, "\n", 1);
        if (!ok || ok->type != MSGPACK_OBJECT_BOOLEAN || !ok->via.boolean)
            rc = CLI_FAILED;
    }
    else
    if (!ok || ok->type != MSGPACK_OBJECT_BOOLEAN || !ok->via.boolean) {
        char code [32], message [160];
        s_str (&msg.root, "code", code, sizeof code);
        s_str (&msg.root, "message", message, sizeof message);
        fprintf (stderr, "relais status: %s: %s\n", code, message);
        rc = CLI_FAILED;
    }
    else {
        char status [32], outcome [32], plan [64], who [FEEDBACK_PRODUCER_MAX], head [512];
        uint64_t level = 0;
        s_str (&msg.root, "status", status, sizeof status);
        s_str (&msg.root, "outcome", outcome, sizeof outcome);
        s_str (&msg.root, "plan", plan, sizeof plan);
        s_str (&msg.root, "producer", who, sizeof who);
        relais_msg_uint (relais_msg_get (&msg.root, "level"), &level);
        int n = snprintf (head, sizeof head, "%s  %s  niveau %llu  (%s)", id, status,
                          (unsigned long long) level, who);
        if (outcome [0])
            n += snprintf (head + n, sizeof head - (size_t) n, "  %s", outcome);
        if (plan [0])
            snprintf (head + n, sizeof head - (size_t) n, "  %s", plan);
        msgpack_sbuffer_write (&out, head, strlen (head));
        msgpack_sbuffer_write (&out, "\n", 1);
        const msgpack_object *partners = relais_msg_get (&msg.root, "partners");
        if (partners && partners->type == MSGPACK_OBJECT_ARRAY && partners->via.array.size) {
            msgpack_sbuffer_write (&out, "  partenaires:", 14);
            for (uint32_t i = 0; i < partners->via.array.size; i++) {
                char partner [64], state [32], item [128];
                s_str (&partners->via.array.ptr [i], "partner", partner, sizeof partner);
                s_str (&partners->via.array.ptr [i], "state", state, sizeof state);
                snprintf (item, sizeof item, " %s (%s)", partner, state);
                msgpack_sbuffer_write (&out, item, strlen (item));
            }
            msgpack_sbuffer_write (&out, "\n", 1);
        }
        const msgpack_object *history = relais_msg_get (&msg.root, "history");
        for (uint32_t i = 0; history && history->type == MSGPACK_OBJECT_ARRAY
                          && i < history->via.array.size; i++) {
            msgpack_sbuffer_write (&out, "  ", 2);
            s_human_line (id, &history->via.array.ptr [i], &out);
            msgpack_sbuffer_write (&out, "\n", 1);
        }
    }
    fwrite (out.data, 1, out.size, stdout);
    msgpack_sbuffer_destroy (&out);
    relais_msg_release (&msg);
    zframe_destroy (&frame);
    return rc;
}
