/*  =========================================================================
    cli_route - `relais route --explain`: which rules send a report where,
    and why

    @header
    Reads one report (the JSON signalement `relais submit` takes, or a
    whole submit request), qualifies it with intake's level-2 rules from
    the deployment file, evaluates the router's rules from the same file
    locally, and prints every rule: whether it holds, and if not, the first
    condition that fails. Nothing is sent anywhere; the deployment file
    alone decides, as it does for the running router.
    =========================================================================
*/
#include "cli.h"
#include "cli_json.h"
#include "intake_rules.h"
#include "router_server.h"
#include "relais_clock.h"
#include "relais_signal.h"

#include <stdlib.h>
#include <string.h>

const char cli_route_help [] =
    "usage: relais route --explain FILE.json|- [--json] [--hour H]\n"
    "\n"
    "Print which routing rules (router/rules of the deployment file, or the\n"
    "defaults) match a report, and why the others do not:\n"
    "\n"
    "  level 2 (reasons: domaine_municipal)\n"
    "  + uasa                holds  -> uasa (deadline 30m, fallback mus)\n"
    "  - protection_enfance  reasons: report has domaine_municipal, rule wants any of mineurs,grossesse\n"
    "  ...\n"
    "  partners: uasa mus\n"
    "\n"
    "FILE holds one report as `relais submit` takes it (the signal map), or a\n"
    "submit request {\"op\": \"submit\", \"signal\": {...}}. Its level and reasons\n"
    "come from intake's level-2 rules in the same file (repeat reports, which\n"
    "need intake's history, are not counted).\n"
    "\n"
    "flags:\n"
    "  --json      one JSON object: {level, reasons, rules: [{rule, holds, why}],\n"
    "              partners: [{partner, rule, fallback, deadline_s}]}\n"
    "  --hour H    evaluate hour ranges at local hour H (default: now)\n"
    "\n"
    "exit codes:\n"
    "  0  explained (even when no rule holds)\n"
    "  2  usage error, unreadable file, invalid report or invalid rules\n";

static char *
s_read (const char *file, size_t *size)
{
    FILE *in = strcmp (file, "-") == 0? stdin: fopen (file, "rb");
    if (!in)
        return NULL;
    size_t room = 65536, n = 0;
    char *data = (char *) malloc (room);
    while (data) {
        size_t got = fread (data + n, 1, room - n, in);
        n += got;
        if (got == 0)
            break;
        if (n == room) {
            if (room >= (16u << 20)) {
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
    }
    if (in != stdin)
        fclose (in);
    *size = n;
    return data;
}

static void
s_out_str (msgpack_sbuffer *out, const char *text)
{
    cli_json_write_str (out, text, strlen (text));
}

int
cli_route (cli_t *cli, int argc, char **argv)
{
    const char *file = NULL;
    bool json = false;
    int hour = -1;
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv [i], "--explain") == 0 && i + 1 < argc)
            file = argv [++i];
        else
        if (strcmp (argv [i], "--json") == 0)
            json = true;
        else
        if (strcmp (argv [i], "--hour") == 0 && i + 1 < argc) {
            char *end;
            long h = strtol (argv [++i], &end, 10);
            if (*end || h < 0 || h > 23) {
                fprintf (stderr, "route: --hour takes 0..23\n");
                return CLI_USAGE;
            }
            hour = (int) h;
        }
        else {
            fprintf (stderr, "%s", cli_route_help);
            return CLI_USAGE;
        }
    }
    if (!file) {
        fprintf (stderr, "%s", cli_route_help);
        return CLI_USAGE;
    }
    if (router_declare (cli->config))
        return CLI_USAGE;               //  the config layer said which key and why
    router_rules_t *rules = (router_rules_t *) malloc (sizeof *rules);
    relais_signal_t *sig = (relais_signal_t *) malloc (sizeof *sig);
    char why [256];
    int rc = CLI_USAGE;
    size_t size = 0;
    char *data = NULL;
    json_t *value = NULL;
    msgpack_sbuffer packed;
    msgpack_sbuffer_init (&packed);
    relais_msg_t msg = { 0 };
    if (!rules || !sig)
        goto done;
    if (router_rules_load (rules, cli->config, why, sizeof why)) {
        fprintf (stderr, "route: %s: %s\n", relais_config_file (cli->config), why);
        goto done;
    }
    data = s_read (file, &size);
    if (!data) {
        fprintf (stderr, "route: cannot read %s\n", file);
        goto done;
    }
    cli_json_reader_t reader;
    cli_json_reader_init (&reader, data, size);
    int line = 0;
    if (cli_json_reader_next (&reader, &value, &line, why, sizeof why) != 1 || !json_is_object (value)) {
        fprintf (stderr, "route: %s: %s\n", file, value? "expected a JSON object": why);
        goto done;
    }
    json_t *signal = json_object_get (value, "signal");
    if (!signal)
        signal = value;
    //  The time of observation does not route: a report without one is
    //  explained as if seen now
    if (json_is_object (signal) && !json_object_get (signal, "observed_at"))
        json_object_set_new (signal, "observed_at", json_integer ((json_int_t) relais_clock_now ()));
    msgpack_packer pk;
    msgpack_packer_init (&pk, &packed, msgpack_sbuffer_write);
    relais_error_t err;
    if (cli_json_pack (&pk, signal, why, sizeof why)
    ||  relais_msg_decode (&msg, packed.data, packed.size, NULL, &err)) {
        fprintf (stderr, "route: %s: not a report\n", file);
        goto done;
    }
    if (relais_signal_parse (&msg.root, "signal", relais_clock_now (), sig, &err)) {
        fprintf (stderr, "route: %s: invalid report: %s: %s\n", file, err.field, err.message);
        goto done;
    }
    intake_rules_t qualify;
    intake_rules_load (&qualify, cli->config);
    uint32_t reasons = intake_rules_qualify (&qualify, sig, 0);
    uint32_t level = reasons? 2: 1;
    router_report_t report;
    router_report_from_signal (sig, level, reasons, &report);
    if (hour < 0)
        hour = router_local_hour (relais_clock_now ());
    router_match_t matches [ROUTER_MATCH_MAX];
    size_t n = router_rules_eval (rules, &report, hour, matches, ROUTER_MATCH_MAX);

    msgpack_sbuffer out;
    msgpack_sbuffer_init (&out);
    char text [512];
    if (json) {
        snprintf (text, sizeof text, "{\"level\":%u,\"hour\":%d,\"reasons\":[", level, hour);
        msgpack_sbuffer_write (&out, text, strlen (text));
        bool first = true;
        for (int i = 0; i < ROUTER_REASON_COUNT; i++)
            if (reasons & (1u << i)) {
                if (!first)
                    msgpack_sbuffer_write (&out, ",", 1);
                s_out_str (&out, router_reason_names [i]);
                first = false;
            }
        msgpack_sbuffer_write (&out, "],\"rules\":[", 11);
        for (size_t i = 0; i < rules->count; i++) {
            bool holds = router_rules_explain (rules, i, &report, hour, why, sizeof why);
            msgpack_sbuffer_write (&out, i? ",{\"rule\":": "{\"rule\":", i? 9: 8);
            s_out_str (&out, rules->rules [i].name);
            snprintf (text, sizeof text, ",\"holds\":%s,\"why\":", holds? "true": "false");
            msgpack_sbuffer_write (&out, text, strlen (text));
            s_out_str (&out, why);
            msgpack_sbuffer_write (&out, "}", 1);
        }
        msgpack_sbuffer_write (&out, "],\"partners\":[", 14);
        for (size_t i = 0; i < n; i++) {
            msgpack_sbuffer_write (&out, i? ",{\"partner\":": "{\"partner\":", i? 12: 11);
            s_out_str (&out, matches [i].partner);
            msgpack_sbuffer_write (&out, ",\"rule\":", 8);
            s_out_str (&out, matches [i].rule);
            msgpack_sbuffer_write (&out, ",\"fallback\":", 12);
            s_out_str (&out, matches [i].fallback);
            snprintf (text, sizeof text, ",\"deadline_s\":%llu}",
                      (unsigned long long) (matches [i].deadline_us / 1000000));
            msgpack_sbuffer_write (&out, text, strlen (text));
        }
        msgpack_sbuffer_write (&out, "]}\n", 3);
    }
    else {
        size_t len = (size_t) snprintf (text, sizeof text, "level %u", level);
        for (int i = 0, k = 0; i < ROUTER_REASON_COUNT; i++)
            if (reasons & (1u << i))
                len += (size_t) snprintf (text + len, sizeof text - len, "%s%s",
                                          k++? ", ": " (reasons: ", router_reason_names [i]);
        snprintf (text + len, sizeof text - len, "%s, local hour %d\n", reasons? ")": "", hour);
        msgpack_sbuffer_write (&out, text, strlen (text));
        for (size_t i = 0; i < rules->count; i++) {
            bool holds = router_rules_explain (rules, i, &report, hour, why, sizeof why);
            snprintf (text, sizeof text, "%s %-20s %s", holds? "+": "-", rules->rules [i].name, why);
            msgpack_sbuffer_write (&out, text, strlen (text));
            if (holds) {
                const router_rule_t *r = &rules->rules [i];
                msgpack_sbuffer_write (&out, "  ->", 4);
                for (size_t p = 0; p < r->partner_count; p++) {
                    char partner [ROUTER_NAME_MAX];
                    router_partner_expand (r->partners [p], &report, partner, sizeof partner);
                    msgpack_sbuffer_write (&out, " ", 1);
                    msgpack_sbuffer_write (&out, partner, strlen (partner));
                }
                snprintf (text, sizeof text, " (deadline %llu min, fallback %s)",
                          (unsigned long long) (r->deadline_us / 60000000),
                          r->fallback [0]? r->fallback: "none");
                msgpack_sbuffer_write (&out, text, strlen (text));
            }
            msgpack_sbuffer_write (&out, "\n", 1);
        }
        msgpack_sbuffer_write (&out, "partners:", 9);
        for (size_t i = 0; i < n; i++) {
            msgpack_sbuffer_write (&out, " ", 1);
            msgpack_sbuffer_write (&out, matches [i].partner, strlen (matches [i].partner));
        }
        msgpack_sbuffer_write (&out, n? "\n": " none\n", n? 1: 6);
    }
    fwrite (out.data, 1, out.size, stdout);
    msgpack_sbuffer_destroy (&out);
    rc = CLI_OK;
done:
    relais_msg_release (&msg);
    msgpack_sbuffer_destroy (&packed);
    json_decref (value);
    free (data);
    free (rules);
    free (sig);
    return rc;
}
