/*  =========================================================================
    cli_privacy - `relais erase` and `relais purge`: the right to erasure and
    the retention policy, applied in every service that holds personal data

    @header
    Sends {op:"<svc>.erase", person, reason} or {op:"<svc>.purge"} to each
    service of the deployment (relais/services) that keeps personal data -
    intake on its records endpoint first, then router on its api endpoint,
    so that a record router fetches afterwards is already scrubbed, then
    plans on its api endpoint (operators' notes and flag reasons) - and
    prints what each removed: counts and report ids, never the data
    (proto/privacy.md). With CURVE the CLI connects as an operations
    certificate (--as, $RELAIS_IDENTITY); the services refuse other roles.
    =========================================================================
*/
#include "cli.h"
#include "cli_json.h"
#include "relais_clock.h"
#include "relais_msg.h"

#include <czmq.h>
#include <stdlib.h>
#include <string.h>

const char cli_erase_help [] =
    "usage: relais erase --person REF --reason CODE [--dry-run] [--json] [--timeout MS]\n"
    "\n"
    "Remove one person's personal data from every service that holds it\n"
    "(intake's records, router's partner mailboxes, plans' notes): the people\n"
    "entries of that person, and the contact, address, position, summary and\n"
    "escalation reason of every report naming them; the note texts and flag\n"
    "reasons of every plan whose person_refs hold them. Reports and plans stay,\n"
    "with their person_refs, level, publics, arrondissement and history entries,\n"
    "so counts and analytics do not move.\n"
    "Each service then compacts its store: the bytes leave data.mdb. The next\n"
    "`relais backup` holds none of them either.\n"
    "\n"
    "  REF    the person's person_ref (\"P-\" and 20 characters), as on the bus\n"
    "  CODE   why, as a code: 1 to 64 characters A-Z a-z 0-9 . _ : / @ -\n"
    "         (e.g. art17-2026-0042); it goes into the audit logs\n"
    "\n"
    "flags:\n"
    "  --dry-run      list the reports that would change; change nothing\n"
    "  --json         print each service's reply as one JSON line\n"
    "  --timeout MS   wait this long for each service (default 30000)\n"
    "\n"
    "exit codes:\n"
    "  0  every service answered ok\n"
    "  1  a service refused or did not answer (the others were still asked)\n"
    "  2  usage error\n";

const char cli_purge_help [] =
    "usage: relais purge [--dry-run] [--reason CODE] [--json] [--timeout MS]\n"
    "\n"
    "Apply the retention policy now in every service that holds personal data\n"
    "(each also runs it by itself every intake/retention/every,\n"
    "router/retention/every and plans/retention/every): intake removes the personal fields of reports\n"
    "closed for intake/retention/closed (90d) or without change for\n"
    "intake/retention/open (730d); router those of acked or refused\n"
    "deliveries older than router/retention/acked (30d); plans the note texts\n"
    "and flag reasons of plans closed for plans/retention/closed (90d). Then\n"
    "each compacts its store.\n"
    "\n"
    "flags:\n"
    "  --dry-run      list what would change; change nothing\n"
    "  --reason CODE  recorded in the audit logs (default \"retention\")\n"
    "  --json         print each service's reply as one JSON line\n"
    "  --timeout MS   wait this long for each service (default 30000)\n"
    "\n"
    "exit codes: 0 every service answered ok, 1 one did not, 2 usage error\n";

//  The services that hold personal data, in the order they are asked, and
//  the endpoint key each serves erase/purge on
static const struct { const char *svc; const char *endpoint; } s_holders [] = {
    { "intake", "intake/records" },
    { "router", "router/api" },
    { "plans", "plans/api" },
};
#define S_HOLDERS 3

typedef struct {
    bool erase, dry_run, json;
    const char *person, *reason;
    int timeout_ms;
} s_args_t;

static bool
s_deployed (cli_t *cli, const char *svc)
{
    const char *list = relais_config_str (cli->config, "relais/services");
    char copy [256];
    snprintf (copy, sizeof copy, "%s", list? list: "");
    char *save = NULL;
    for (char *name = strtok_r (copy, " ,", &save); name; name = strtok_r (NULL, " ,", &save))
        if (strcmp (name, svc) == 0)
            return true;
    return false;
}

static void
s_str (const msgpack_object *root, const char *key, char *buf, size_t size)
{
    buf [0] = 0;
    relais_msg_str_copy (relais_msg_get (root, key), buf, size);
}

static uint64_t
s_uint (const msgpack_object *root, const char *key)
{
    uint64_t value = 0;
    relais_msg_uint (relais_msg_get (root, key), &value);
    return value;
}

//  Print one service's answer for people
static void
s_print (const char *svc, const s_args_t *args, const msgpack_object *root)
{
    bool plans = strcmp (svc, "plans") == 0;
    if (plans)
        printf ("%-8s %s%s: %llu plan%s", svc, args->erase? "erase ": "purge",
                args->erase? args->person: "", (unsigned long long) s_uint (root, "count"),
                s_uint (root, "count") == 1? "": "s");
    else
            printf ("%-8s %s%s: %llu report%s", svc, args->erase? "erase ": "purge",
                args->erase? args->person: "", (unsigned long long) s_uint (root, "count"),
                s_uint (root, "count") == 1? "": "s");
    if (strcmp (svc, "router") == 0)
        printf (" (%llu deliveries)", (unsigned long long) s_uint (root, "deliveries"));
    const msgpack_object *reports = relais_msg_get (root, plans? "plans": "reports");
    if (reports && reports->type == MSGPACK_OBJECT_ARRAY && reports->via.array.size) {
        printf (" [");
        for (uint32_t i = 0; i < reports->via.array.size; i++) {
            char id [32];
            relais_msg_str_copy (&reports->via.array.ptr [i], id, sizeof id);
            printf ("%s%s", i? " ": "", id);
        }
        printf ("]");
    }
    const msgpack_object *dry = relais_msg_get (root, "dry_run");
    bool dry_run = dry && dry->type == MSGPACK_OBJECT_BOOLEAN && dry->via.boolean;
    const msgpack_object *compacted = relais_msg_get (root, "compacted");
    //  Not compacted with something scrubbed: the bytes are still in its
    //  data.mdb (a backup or dump had it open: it compacts once they are done)
    const char *store = compacted && compacted->type == MSGPACK_OBJECT_BOOLEAN
                        && compacted->via.boolean? ", store compacted"
                      : s_uint (root, "count")? ", store not compacted yet (see the service's log)": "";
    if (dry_run)
        printf (", dry run: nothing changed\n");
    else
    if (plans)
        printf (", %llu texts removed%s\n", (unsigned long long) s_uint (root, "texts_removed"), store);
    else
        printf (", %llu people removed%s\n", (unsigned long long) s_uint (root, "people_removed"), store);
}

//  Ask one service. Returns CLI_OK or CLI_FAILED after saying why.
static int
s_ask (cli_t *cli, const char *svc, const char *key, const s_args_t *args)
{
    const char *endpoint = relais_config_str (cli->config, key);
    if (!endpoint || !*endpoint) {
        fprintf (stderr, "relais: no %s in the deployment file\n", key);
        return CLI_FAILED;
    }
    zsock_t *dealer = cli_sock_new (ZMQ_DEALER, endpoint, 0);
    if (!dealer)
        return CLI_FAILED;
    uint64_t rid = relais_clock_mono ();
    char op [32];
    snprintf (op, sizeof op, "%s.%s", svc, args->erase? "erase": "purge");
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 3 + (args->person? 1: 0) + (args->reason? 1: 0));
    relais_pack_kv_str (&pk, "op", op);
    relais_pack_kv_uint (&pk, "rid", rid);
    relais_pack_kv_bool (&pk, "dry_run", args->dry_run);
    if (args->person)
        relais_pack_kv_str (&pk, "person", args->person);
    if (args->reason)
        relais_pack_kv_str (&pk, "reason", args->reason);
    int rc = CLI_FAILED;
    zframe_t *frame = NULL;
    relais_msg_t msg = { 0 };
    if (cli_send (dealer, sbuf.data, sbuf.size) == 0) {
        if (cli_wait_reply (dealer, rid, args->timeout_ms, &frame, &msg) == 0)
            rc = CLI_OK;
        else
            fprintf (stderr, "relais: %s did not answer at %s\n", svc, endpoint);
    }
    msgpack_sbuffer_destroy (&sbuf);
    zsock_destroy (&dealer);
    if (rc != CLI_OK)
        return rc;
    const msgpack_object *root = &msg.root;
    const msgpack_object *ok = relais_msg_get (root, "ok");
    if (args->json) {
        cli_json_opts_t opts = { "service", svc, "rid" };
        char *text = cli_json_dumps (root, &opts);
        if (text)
            printf ("%s\n", text);
        free (text);
    }
    if (!ok || ok->type != MSGPACK_OBJECT_BOOLEAN || !ok->via.boolean) {
        char code [32], field [64], message [256];
        s_str (root, "code", code, sizeof code);
        s_str (root, "field", field, sizeof field);
        s_str (root, "message", message, sizeof message);
        fprintf (stderr, "relais: %s refused: %s%s%s: %s\n", svc, code, *field? " ": "", field, message);
        rc = CLI_FAILED;
    }
    else
    if (!args->json)
        s_print (svc, args, root);
    relais_msg_release (&msg);
    zframe_destroy (&frame);
    return rc;
}

static int
s_run (cli_t *cli, int argc, char **argv, bool erase)
{
    s_args_t args = { .erase = erase, .timeout_ms = 30000 };
    const char *help = erase? cli_erase_help: cli_purge_help;
    for (int i = 1; i < argc; i++) {
        if (erase && strcmp (argv [i], "--person") == 0 && i + 1 < argc)
            args.person = argv [++i];
        else
        if (strcmp (argv [i], "--reason") == 0 && i + 1 < argc)
            args.reason = argv [++i];
        else
        if (strcmp (argv [i], "--dry-run") == 0)
            args.dry_run = true;
        else
        if (strcmp (argv [i], "--json") == 0)
            args.json = true;
        else
        if (strcmp (argv [i], "--timeout") == 0 && i + 1 < argc) {
            char *end;
            long ms = strtol (argv [++i], &end, 10);
            if (*end || ms <= 0 || ms > 3600000) {
                fprintf (stderr, "%s: --timeout takes 1..3600000 ms\n", argv [0]);
                return CLI_USAGE;
            }
            args.timeout_ms = (int) ms;
        }
        else {
            fprintf (stderr, "%s", help);
            return CLI_USAGE;
        }
    }
    if (erase && (!args.person || !args.reason)) {
        fprintf (stderr, "erase: --person REF and --reason CODE are required\n");
        return CLI_USAGE;
    }
    int result = CLI_OK, asked = 0;
    for (int i = 0; i < S_HOLDERS; i++) {
        if (!s_deployed (cli, s_holders [i].svc))
            continue;
        asked++;
        if (s_ask (cli, s_holders [i].svc, s_holders [i].endpoint, &args) != CLI_OK)
            result = CLI_FAILED;
    }
    if (asked == 0) {
        fprintf (stderr, "relais: no service holding personal data (intake, router, plans) in relais/services\n");
        return CLI_FAILED;
    }
    return result;
}

int
cli_erase (cli_t *cli, int argc, char **argv)
{
    return s_run (cli, argc, argv, true);
}

int
cli_purge (cli_t *cli, int argc, char **argv)
{
    return s_run (cli, argc, argv, false);
}
