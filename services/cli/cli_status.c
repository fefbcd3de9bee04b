/*  =========================================================================
    cli_status - `relais status`: is every service up, and how far behind?

    @header
    Asks every configured service for {op: "status"} on its fetch endpoint
    and listens to its PUB for a heartbeat, all in parallel, for at most
    the timeout. A service that does not answer is DOWN. For each source
    a service follows, its reply tells the lag: events the source announced
    that the service has not applied yet.
    =========================================================================
*/
#include "cli.h"
#include "cli_json.h"
#include "relais_clock.h"
#include "relais_envelope.h"

#include <stdlib.h>
#include <string.h>

#define S_TIMEOUT_MS    2000
#define S_LISTEN_MS     1200

const char cli_status_help [] =
    "usage: relais status [--json] [--src SERVICE] [--timeout D]\n"
    "       relais status --report SIG-… [--producer KIND:NAME] [--json]\n"
    "\n"
    "For every configured service (intake, and router, plans, capacity,\n"
    "analytics when the config has their section): up or DOWN, the last\n"
    "sequence of its log, the age of its last heartbeat, and for every source\n"
    "it follows, its lag in events.\n"
    "\n"
    "  SERVICE    STATE  LAST      HEARTBEAT  PUBLISHED  FETCHES\n"
    "  intake     up     4211      0.4 s      4211       12\n"
    "  router     up     9120      0.1 s      9120       3\n"
    "    <- intake        applied 4209  lag 2  heard 0.4 s ago\n"
    "\n"
    "flags:\n"
    "  --json           one JSON object: {\"ok\", \"services\": [{\"name\", \"state\",\n"
    "                   \"heartbeat_age_ms\", \"status\": <the service's reply>}]}\n"
    "  --src SERVICE    only this service\n"
    "  --timeout D      how long to wait for answers (default 2s)\n"
    "\n"
    "--report SIG-…: that report's status and timeline, from feedback (recu,\n"
    "qualifie, oriente, escalade, pris_en_charge, en_cours, clos); --producer\n"
    "answers only if the report is that producer's (else not_found).\n"
    "\n"
    "Heartbeats are listened for 1.2 s; \"n/a\" means none came in that time.\n"
    "\n"
    "examples:\n"
    "  relais status\n"
    "  relais status --json | jq '.services[] | select(.state == \"down\") | .name'\n"
    "\n"
    "exit codes:\n"
    "  0  every service answered\n"
    "  1  a service is down (no answer within the timeout)\n"
    "  2  usage error\n";

typedef struct {
    cli_source_t src;
    zsock_t *dealer;
    zsock_t *sub;
    zframe_t *frame;                //  the status reply, when it came
    relais_msg_t msg;
    bool answered;
    bool heard;
    uint64_t hb_ts;                 //  ts of the last heartbeat (µs)
} s_service_t;

static void
s_print_age (msgpack_sbuffer *out, uint64_t ms)
{
    char text [32];
    if (ms < 10000)
        snprintf (text, sizeof text, "%.1f s", (double) ms / 1000);
    else
    if (ms < 3600 * 1000)
        snprintf (text, sizeof text, "%llu s", (unsigned long long) ms / 1000);
    else
        snprintf (text, sizeof text, "%llu h", (unsigned long long) ms / 3600000);
    msgpack_sbuffer_write (out, text, strlen (text));
}

static uint64_t
s_uint (const msgpack_object *map, const char *key)
{
    uint64_t value = 0;
    relais_msg_uint (relais_msg_get (map, key), &value);
    return value;
}

static bool
s_bool (const msgpack_object *map, const char *key)
{
    const msgpack_object *o = relais_msg_get (map, key);
    return o && o->type == MSGPACK_OBJECT_BOOLEAN && o->via.boolean;
}

static void
s_print_table (s_service_t *services, size_t count)
{
    printf ("%-10s %-6s %-9s %-10s %-10s %s\n", "SERVICE", "STATE", "LAST", "HEARTBEAT",
            "PUBLISHED", "FETCHES");
    uint64_t now = relais_clock_now ();
    for (size_t i = 0; i < count; i++) {
        s_service_t *service = &services [i];
        msgpack_sbuffer age;
        msgpack_sbuffer_init (&age);
        if (service->heard)
            s_print_age (&age, service->hb_ts < now? (now - service->hb_ts) / 1000: 0);
        else
            msgpack_sbuffer_write (&age, "n/a", 3);
        msgpack_sbuffer_write (&age, "", 1);
        if (!service->answered) {
            printf ("%-10s %-6s %-9s %-10s %-10s %s\n", service->src.name, "DOWN", "-",
                    age.data, "-", "-");
            msgpack_sbuffer_destroy (&age);
            continue;
        }
        const msgpack_object *root = &service->msg.root;
        printf ("%-10s %-6s %-9llu %-10s %-10llu %llu\n", service->src.name, "up",
                (unsigned long long) s_uint (root, "last"), age.data,
                (unsigned long long) s_uint (root, "published"),
                (unsigned long long) s_uint (root, "fetches"));
        msgpack_sbuffer_destroy (&age);
        const msgpack_object *sources = relais_msg_get (root, "sources");
        if (!sources || sources->type != MSGPACK_OBJECT_ARRAY)
            continue;
        for (uint32_t j = 0; j < sources->via.array.size; j++) {
            const msgpack_object *source = &sources->via.array.ptr [j];
            char name [RELAIS_SRC_MAX] = "?";
            relais_msg_str_copy (relais_msg_get (source, "src"), name, sizeof name);
            if (!relais_utf8_clean (name, strlen (name), false))
                strcpy (name, "?");
            msgpack_sbuffer heard;
            msgpack_sbuffer_init (&heard);
            s_print_age (&heard, s_uint (source, "heard_ms_ago"));
            msgpack_sbuffer_write (&heard, "", 1);
            printf ("    <- %-12s applied %llu  lag %llu  heard %s ago%s%s%s\n", name,
                    (unsigned long long) s_uint (source, "applied"),
                    (unsigned long long) s_uint (source, "lag"), heard.data,
                    s_bool (source, "silent")? "  SILENT": "",
                    s_bool (source, "catching_up")? "  catching up": "",
                    s_bool (source, "rewound")? "  REWOUND (held: restore or rebuild)": "");
            msgpack_sbuffer_destroy (&heard);
        }
    }
}

static void
s_print_json (s_service_t *services, size_t count, bool all_up)
{
    msgpack_sbuffer out;
    msgpack_sbuffer_init (&out);
    const char *head = all_up? "{\"ok\":true,\"services\":[": "{\"ok\":false,\"services\":[";
    msgpack_sbuffer_write (&out, head, strlen (head));
    uint64_t now = relais_clock_now ();
    for (size_t i = 0; i < count; i++) {
        s_service_t *service = &services [i];
        char text [128];
        snprintf (text, sizeof text, "%s{\"name\":", i? ",": "");
        msgpack_sbuffer_write (&out, text, strlen (text));
        cli_json_write_str (&out, service->src.name, strlen (service->src.name));
        if (service->heard)
            snprintf (text, sizeof text, ",\"state\":\"%s\",\"heartbeat_age_ms\":%llu",
                      service->answered? "up": "down",
                      (unsigned long long) (service->hb_ts < now? (now - service->hb_ts) / 1000: 0));
        else
            snprintf (text, sizeof text, ",\"state\":\"%s\",\"heartbeat_age_ms\":null",
                      service->answered? "up": "down");
        msgpack_sbuffer_write (&out, text, strlen (text));
        msgpack_sbuffer_write (&out, ",\"status\":", 10);
        cli_json_opts_t opts = { NULL, NULL, "rid" };
        if (!service->answered || cli_json_write (&out, &service->msg.root, &opts))
            msgpack_sbuffer_write (&out, "null", 4);
        msgpack_sbuffer_write (&out, "}", 1);
    }
    msgpack_sbuffer_write (&out, "]}\n", 3);
    fwrite (out.data, 1, out.size, stdout);
    msgpack_sbuffer_destroy (&out);
}

int
cli_status (cli_t *cli, int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp (argv [i], "--report") == 0)
            return cli_report_status (cli, argc, argv);
    bool json = false;
    const char *only = NULL;
    int64_t timeout_ms = S_TIMEOUT_MS;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv [i];
        const char *value = i + 1 < argc? argv [i + 1]: NULL;
        if (strcmp (arg, "--json") == 0)
            json = true;
        else
        if (strcmp (arg, "--src") == 0 && value) {
            only = value;
            i++;
        }
        else
        if (strcmp (arg, "--timeout") == 0 && value) {
            char *end;
            double seconds = strtod (value, &end);
            uint64_t ms = 0;
            if (end != value && *end == 0 && seconds > 0 && seconds < 3600)
                timeout_ms = (int64_t) (seconds * 1000);
            else
            if (relais_parse_duration_ms (value, &ms) && ms > 0 && ms < 3600000)
                timeout_ms = (int64_t) ms;
            else {
                fprintf (stderr, "status: --timeout wants a duration (2, 500ms, 5s)\n");
                return CLI_USAGE;
            }
            i++;
        }
        else {
            fprintf (stderr, "status: unexpected '%s' (see `relais help status`)\n", arg);
            return CLI_USAGE;
        }
    }
    cli_source_t sources [CLI_SOURCES_MAX];
    size_t count = cli_sources (cli, only, sources, CLI_SOURCES_MAX);
    if (count == 0) {
        fprintf (stderr, "status: no service%s%s in %s\n", only? " named ": "", only? only: "",
                 *cli->config_path? cli->config_path: "the default configuration");
        return CLI_USAGE;
    }
    s_service_t services [CLI_SOURCES_MAX];
    memset (services, 0, sizeof services);
    zmq_pollitem_t items [2 * CLI_SOURCES_MAX];
    int rc = CLI_OK;
    for (size_t i = 0; i < count; i++) {
        s_service_t *service = &services [i];
        service->src = sources [i];
        service->dealer = cli_sock_new (ZMQ_DEALER, service->src.fetch, 1 << 20);
        service->sub = cli_sock_new (ZMQ_SUB, service->src.pub, 1 << 20);
        if (!service->dealer || !service->sub) {
            rc = CLI_FAILED;
            count = i + 1;
            goto done;
        }
        msgpack_sbuffer sbuf;
        msgpack_sbuffer_init (&sbuf);
        msgpack_packer pk;
        msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
        msgpack_pack_map (&pk, 2);
        relais_pack_kv_str (&pk, "op", "status");
        relais_pack_kv_uint (&pk, "rid", i + 1);
        cli_send (service->dealer, sbuf.data, sbuf.size);
        msgpack_sbuffer_destroy (&sbuf);
        items [2 * i] = (zmq_pollitem_t) { zsock_resolve (service->dealer), 0, ZMQ_POLLIN, 0 };
        items [2 * i + 1] = (zmq_pollitem_t) { zsock_resolve (service->sub), 0, ZMQ_POLLIN, 0 };
    }
    int64_t start = cli_now_ms ();
    int64_t listen_ms = S_LISTEN_MS < timeout_ms? S_LISTEN_MS: timeout_ms;
    while (!cli_interrupted ()) {
        int64_t now = cli_now_ms ();
        bool answered = true, heard = true;
        for (size_t i = 0; i < count; i++) {
            answered = answered && services [i].answered;
            heard = heard && services [i].heard;
        }
        if (now - start >= timeout_ms || (answered && (heard || now - start >= listen_ms)))
            break;
        zmq_poll (items, (int) (2 * count), 50);
        for (size_t i = 0; i < count; i++) {
            s_service_t *service = &services [i];
            zframe_t *frame;
            char topic [RELAIS_TYPE_MAX];
            while (cli_recv (service->sub, &frame, topic, sizeof topic) == 0) {
                relais_msg_t msg;
                relais_error_t err;
                relais_envelope_t env;
                if (strcmp (topic, RELAIS_HB_TOPIC) == 0
                &&  relais_msg_decode (&msg, zframe_data (frame), zframe_size (frame),
                                       &cli_reply_limits, &err) == 0) {
                    if (relais_envelope_decode (&msg.root, true, &env, &err) == 0) {
                        service->heard = true;
                        service->hb_ts = env.ts;
                    }
                    relais_msg_release (&msg);
                }
                zframe_destroy (&frame);
            }
            while (cli_recv (service->dealer, &frame, NULL, 0) == 0) {
                relais_msg_t msg;
                relais_error_t err;
                uint64_t rid;
                if (!service->answered
                &&  relais_msg_decode (&msg, zframe_data (frame), zframe_size (frame),
                                       &cli_reply_limits, &err) == 0) {
                    if (relais_msg_uint (relais_msg_get (&msg.root, "rid"), &rid) && rid == i + 1
                    &&  s_bool (&msg.root, "ok")) {
                        service->answered = true;
                        service->msg = msg;
                        service->frame = frame;
                        frame = NULL;
                    }
                    else
                        relais_msg_release (&msg);
                }
                zframe_destroy (&frame);
            }
        }
    }
    bool all_up = true;
    for (size_t i = 0; i < count; i++)
        all_up = all_up && services [i].answered;
    if (cli_interrupted ())
        rc = CLI_FAILED;
    else {
        if (json)
            s_print_json (services, count, all_up);
        else
            s_print_table (services, count);
        rc = all_up? CLI_OK: CLI_FAILED;
    }
done:
    for (size_t i = 0; i < count; i++) {
        relais_msg_release (&services [i].msg);
        zframe_destroy (&services [i].frame);
        zsock_destroy (&services [i].dealer);
        zsock_destroy (&services [i].sub);
    }
    return rc;
}
