/*  =========================================================================
    cli_stats - `relais stats`: quick tables of the analytics indicators

    @header
    Asks the analytics service (analytics.query on its api endpoint) for
    one indicator over a period, grouped by a dimension, and prints a table
    with each group's value and share, or the reply as JSON. Also holds
    cli_analytics_call, the request helper `relais report` uses.
    =========================================================================
*/
#include "cli.h"
#include "cli_json.h"

#include <stdlib.h>
#include <string.h>

#define S_TIMEOUT_MS        5000
#define S_DEFAULT_API       "tcp://127.0.0.1:7142"

const char cli_stats_help [] =
    "usage: relais stats [--by arrondissement|public|level|source] [--period P]\n"
    "                    [--indicator NAME] [--json] [--api ENDPOINT]\n"
    "\n"
    "A quick table of one analytics indicator over a period, by one dimension:\n"
    "each group's value and its share of the total.\n"
    "\n"
    "  LEVEL  REPORTS  SHARE\n"
    "  1          131  54.8%\n"
    "  2          108  45.2%\n"
    "  total      239\n"
    "\n"
    "flags:\n"
    "  --by DIM          arrondissement, public, level (default) or source\n"
    "  --period P        2026-11-20 (a day), 2026-W47 (an ISO week) or 2026-11\n"
    "                    (a month); default: the last 30 days\n"
    "  --indicator NAME  default reports (see proto/analytics.md for the list)\n"
    "  --json            print the service's reply as one JSON object\n"
    "  --api ENDPOINT    analytics' api endpoint (default: analytics/api of the\n"
    "                    configuration, else " S_DEFAULT_API ")\n"
    "\n"
    "A report names several publics at once: by public, shares add up to more\n"
    "than 100%.\n"
    "\n"
    "exit codes:\n"
    "  0  printed\n"
    "  1  the service did not answer or refused the query\n"
    "  2  usage error\n";

const char *
cli_analytics_endpoint (cli_t *cli, const char *flag)
{
    if (flag)
        return flag;
    const char *api = relais_config_str (cli->config, "analytics/api");
    return api && *api? api: S_DEFAULT_API;
}

int
cli_analytics_call (zsock_t *dealer, const msgpack_sbuffer *request_body, uint32_t pairs,
                    zframe_t **frame_p, relais_msg_t *msg)
{
    static uint64_t rid;
    rid++;
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, pairs + 1);
    relais_pack_kv_uint (&pk, "rid", rid);
    msgpack_sbuffer_write (&sbuf, request_body->data, request_body->size);
    int rc = cli_send (dealer, sbuf.data, sbuf.size);
    msgpack_sbuffer_destroy (&sbuf);
    if (rc)
        return -1;
    return cli_wait_reply (dealer, rid, S_TIMEOUT_MS, frame_p, msg);
}

static void
s_print_error (const msgpack_object *root)
{
    char code [32] = "?", field [64] = "", message [256] = "";
    relais_msg_str_copy (relais_msg_get (root, "code"), code, sizeof code);
    relais_msg_str_copy (relais_msg_get (root, "field"), field, sizeof field);
    relais_msg_str_copy (relais_msg_get (root, "message"), message, sizeof message);
    if (!relais_utf8_clean (message, strlen (message), false))
        message [0] = 0;
    if (!relais_utf8_clean (field, strlen (field), false))
        field [0] = 0;
    fprintf (stderr, "relais stats: %s%s%s: %s\n", code, *field? " ": "", field, message);
}

static double
s_num (const msgpack_object *o)
{
    if (!o)
        return 0;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        return (double) o->via.u64;
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return (double) o->via.i64;
    if (o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64)
        return o->via.f64;
    return 0;
}

static int
s_call (zsock_t *dealer, const char *indicator, const char *by, const char *period,
        zframe_t **frame_p, relais_msg_t *msg)
{
    msgpack_sbuffer body;
    msgpack_sbuffer_init (&body);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &body, msgpack_sbuffer_write);
    relais_pack_kv_str (&pk, "op", "analytics.query");
    relais_pack_kv_str (&pk, "indicator", indicator);
    relais_pack_kv_str (&pk, "group_by", by);
    relais_pack_kv_str (&pk, "granularity", "total");
    if (period)
        relais_pack_kv_str (&pk, "period", period);
    int rc = cli_analytics_call (dealer, &body, 4 + (period != NULL), frame_p, msg);
    msgpack_sbuffer_destroy (&body);
    return rc;
}

int
cli_stats (cli_t *cli, int argc, char **argv)
{
    const char *by = "level", *period = NULL, *indicator = "reports", *api = NULL;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *value = i + 1 < argc? argv [i + 1]: NULL;
        if (strcmp (argv [i], "--json") == 0)
            json = true;
        else
        if (value && strcmp (argv [i], "--by") == 0)
            by = argv [++i];
        else
        if (value && strcmp (argv [i], "--period") == 0)
            period = argv [++i];
        else
        if (value && strcmp (argv [i], "--indicator") == 0)
            indicator = argv [++i];
        else
        if (value && strcmp (argv [i], "--api") == 0)
            api = argv [++i];
        else {
            fprintf (stderr, "relais stats: unknown flag or missing value '%s' (see relais help stats)\n", argv [i]);
            return CLI_USAGE;
        }
    }
    if (strcmp (by, "arrondissement") && strcmp (by, "public") && strcmp (by, "level")
    &&  strcmp (by, "source")) {
        fprintf (stderr, "relais stats: --by wants arrondissement, public, level or source\n");
        return CLI_USAGE;
    }
    zsock_t *dealer = cli_sock_new (ZMQ_DEALER, cli_analytics_endpoint (cli, api), 0);
    if (!dealer)
        return CLI_FAILED;
    zframe_t *frame = NULL;
    relais_msg_t msg;
    int rc = s_call (dealer, indicator, by, period, &frame, &msg);
    int result = CLI_OK;
    if (rc) {
        fprintf (stderr, "relais stats: analytics did not answer\n");
        result = CLI_FAILED;
        goto done;
    }
    const msgpack_object *root = &msg.root;
    const msgpack_object *ok = relais_msg_get (root, "ok");
    if (!ok || ok->type != MSGPACK_OBJECT_BOOLEAN || !ok->via.boolean) {
        if (json) {
            char *text = cli_json_dumps (root, NULL);
            if (text)
                printf ("%s\n", text);
            free (text);
        }
        s_print_error (root);
        result = CLI_FAILED;
        goto release;
    }
    if (json) {
        char *text = cli_json_dumps (root, NULL);
        if (text)
            printf ("%s\n", text);
        free (text);
        goto release;
    }
    char from [16] = "", to [16] = "", kind [16] = "";
    relais_msg_str_copy (relais_msg_get (root, "from"), from, sizeof from);
    relais_msg_str_copy (relais_msg_get (root, "to"), to, sizeof to);
    relais_msg_str_copy (relais_msg_get (root, "kind"), kind, sizeof kind);
    const msgpack_object *rows = relais_msg_get (root, "rows");
    double total = 0;
    uint32_t n = rows && rows->type == MSGPACK_OBJECT_ARRAY? rows->via.array.size: 0;
    if (strcmp (kind, "count") == 0) {
        //  Shares are of the ungrouped total: by public, a report names
        //  several publics and the groups add up to more
        zframe_t *tframe = NULL;
        relais_msg_t tmsg;
        if (s_call (dealer, indicator, "none", period, &tframe, &tmsg) == 0) {
            const msgpack_object *trows = relais_msg_get (&tmsg.root, "rows");
            if (trows && trows->type == MSGPACK_OBJECT_ARRAY && trows->via.array.size)
                total = s_num (relais_msg_get (&trows->via.array.ptr [0], "value"));
            relais_msg_release (&tmsg);
            zframe_destroy (&tframe);
        }
    }
    printf ("%s from %s to %s\n", indicator, from, to);
    char upper [32];
    snprintf (upper, sizeof upper, "%s", by);
    for (char *p = upper; *p; p++)
        *p = (char) (*p >= 'a' && *p <= 'z'? *p - 32: *p);
    printf ("%-24s %10s  %s\n", upper, "VALUE", strcmp (kind, "count") == 0? "SHARE": "");
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *row = &rows->via.array.ptr [i];
        char group [64] = "?";
        relais_msg_str_copy (relais_msg_get (row, "group"), group, sizeof group);
        if (!relais_utf8_clean (group, strlen (group), false))
            strcpy (group, "?");
        double value = s_num (relais_msg_get (row, "value"));
        if (strcmp (kind, "count") == 0)
            printf ("%-24s %10.0f  %5.1f%%\n", group, value, total > 0? value * 100 / total: 0);
        else
            printf ("%-24s %10.3f\n", group, value);
    }
    if (strcmp (kind, "count") == 0)
        printf ("%-24s %10.0f%s\n", "total", total,
                strcmp (by, "public") == 0? "  (a report names several publics)": "");
release:
    relais_msg_release (&msg);
    zframe_destroy (&frame);
done:
    zsock_destroy (&dealer);
    return result;
}
