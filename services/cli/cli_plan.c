/*  =========================================================================
    cli_plan - `relais plan`: the MUS's action plans from the command line

    @header
    One request per invocation on plans' `api` ROUTER (proto/plans.md):
    list, review, show (a plan's timeline at a glance), open, action (add
    or update), state, close, reopen, flag, note. Human output by default,
    the service's reply as one JSON line with --json. Changes carry "by":
    --by, else $RELAIS_BY, else $USER (the identity string that the
    security work will replace with the caller's certificate).
    =========================================================================
*/
#include "cli.h"
#include "cli_json.h"
#include "relais_clock.h"
#include "relais_config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_DEFAULT_API   "tcp://127.0.0.1:7122"
#define S_TIMEOUT_MS    3000
#define S_ARGS_MAX      32

const char cli_plan_help [] =
    "usage: relais plan VERB [ARGS] [--json] [--by WHO] [--timeout D]\n"
    "\n"
    "Action plans of level-2 situations, from the plans service (plans/api).\n"
    "\n"
    "verbs:\n"
    "  list [--state S] [--arr N] [--partner P] [--overdue] [--flagged]\n"
    "       [--limit N] [--after PLAN]      plans in id order, filters combined;\n"
    "                                       ACTIONS is pending/all\n"
    "  review                               flagged open plans for the commission\n"
    "                                       « cas complexes », most overdue first\n"
    "  show PLAN                            the plan, its actions, its timeline\n"
    "  open SIG                             open (or join) a plan for a report\n"
    "  action PLAN --kind K --owner P --due WHEN     add an action\n"
    "  action PLAN N [--state S] [--due WHEN] [--owner P]   change action N\n"
    "  state PLAN en_cours                  move a plan on\n"
    "  close PLAN OUTCOME [--structure ID]  close with an outcome\n"
    "  reopen PLAN\n"
    "  flag PLAN --reason TEXT | flag PLAN --off\n"
    "  note PLAN TEXT [--action N]\n"
    "\n"
    "values:\n"
    "  kinds     evaluation maraude mise_a_l_abri orientation acces_droits soins\n"
    "            protection_enfance mediation autre\n"
    "  states    plans: ouvert en_cours clos; actions: a_faire en_cours fait annule\n"
    "  outcomes  mise_a_l_abri orientation sortie_de_rue refus perdu_de_vue autre\n"
    "  WHEN      +30m, +2h, +3d (from now), YYYY-MM-DDTHH:MM (UTC), or µs\n"
    "\n"
    "flags:\n"
    "  --json        print the service's reply as one JSON line\n"
    "  --by WHO      who makes the change (default $RELAIS_BY, else $USER)\n"
    "  --timeout D   how long to wait for plans (default 3s)\n"
    "\n"
    "examples:\n"
    "  relais plan list --arr 19 --overdue\n"
    "  relais plan action PLAN-00000012 --kind maraude --owner maraude-emmaus --due +1d\n"
    "  relais plan action PLAN-00000012 1 --state fait\n"
    "  relais plan close PLAN-00000012 mise_a_l_abri --structure hotel-ibis-19\n"
    "\n"
    "exit codes:\n"
    "  0  done\n"
    "  1  plans refused (the reason is printed) or did not answer\n"
    "  2  usage error\n";

typedef struct {
    bool json;
    const char *by;
    uint64_t timeout_ms;
    const char *positional [S_ARGS_MAX];
    int count;
    //  flags with a value, by name
    const char *names [S_ARGS_MAX];
    const char *values [S_ARGS_MAX];
    int flags;
} s_args_t;

static const char *
s_flag (s_args_t *a, const char *name)
{
    for (int i = 0; i < a->flags; i++)
        if (strcmp (a->names [i], name) == 0)
            return a->values [i];
    return NULL;
}

//  Flags that take no value
static bool
s_switch (const char *arg)
{
    return strcmp (arg, "--json") == 0 || strcmp (arg, "--overdue") == 0
        || strcmp (arg, "--flagged") == 0 || strcmp (arg, "--off") == 0;
}

static int
s_parse (int argc, char **argv, s_args_t *a)
{
    memset (a, 0, sizeof *a);
    a->timeout_ms = S_TIMEOUT_MS;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv [i];
        if (strncmp (arg, "--", 2) != 0 || strcmp (arg, "--") == 0) {
            if (a->count == S_ARGS_MAX)
                return -1;
            a->positional [a->count++] = arg;
            continue;
        }
        if (a->flags == S_ARGS_MAX)
            return -1;
        if (s_switch (arg)) {
            a->names [a->flags] = arg;
            a->values [a->flags++] = "";
            if (strcmp (arg, "--json") == 0)
                a->json = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf (stderr, "plan: %s needs a value\n", arg);
            return -1;
        }
        a->names [a->flags] = arg;
        a->values [a->flags++] = argv [++i];
    }
    a->by = s_flag (a, "--by");
    if (!a->by)
        a->by = getenv ("RELAIS_BY");
    if (!a->by)
        a->by = getenv ("USER");
    if (!a->by || !*a->by)
        a->by = "cli";
    const char *timeout = s_flag (a, "--timeout");
    if (timeout && !relais_parse_duration_ms (timeout, &a->timeout_ms)) {
        fprintf (stderr, "plan: --timeout wants a duration such as 3s\n");
        return -1;
    }
    return 0;
}

//  "+2h", "+3d", "2026-11-24T18:00" (UTC), or a number of µs
static bool
s_parse_when (const char *text, uint64_t *us)
{
    if (text [0] == '+') {
        uint64_t ms;
        if (!relais_parse_duration_ms (text + 1, &ms))
            return false;
        *us = relais_clock_now () + ms * 1000;
        return true;
    }
    struct tm tm;
    memset (&tm, 0, sizeof tm);
    const char *end = strptime (text, "%Y-%m-%dT%H:%M", &tm);
    if (end && (*end == 0 || (*end == 'Z' && end [1] == 0))) {
        time_t t = timegm (&tm);
        if (t < 0)
            return false;
        *us = (uint64_t) t * 1000000;
        return true;
    }
    char *stop;
    errno = 0;
    unsigned long long value = strtoull (text, &stop, 10);
    if (errno || stop == text || *stop || text [0] == '-')
        return false;
    *us = value;
    return true;
}

static void
s_time (uint64_t us, char *buf, size_t size)
{
    if (us == 0) {
        snprintf (buf, size, "-");
        return;
    }
    time_t t = (time_t) (us / 1000000);
    struct tm tm;
    gmtime_r (&t, &tm);
    strftime (buf, size, "%Y-%m-%d %H:%M", &tm);
}

static void
s_age (uint64_t since, char *buf, size_t size)
{
    uint64_t now = relais_clock_now ();
    uint64_t s = since && now > since? (now - since) / 1000000: 0;
    if (s < 3600)
        snprintf (buf, size, "%llum", (unsigned long long) s / 60);
    else
    if (s < 86400 * 2)
        snprintf (buf, size, "%lluh", (unsigned long long) s / 3600);
    else
        snprintf (buf, size, "%llud", (unsigned long long) s / 86400);
}

//  Copy a str field for printing (control characters are refused by plans)
static const char *
s_str (const msgpack_object *map, const char *key, char *buf, size_t size)
{
    if (relais_msg_str_copy (relais_msg_get (map, key), buf, size) < 0)
        buf [0] = 0;
    return buf;
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
s_list_text (const msgpack_object *arr, char *buf, size_t size)
{
    size_t n = 0;
    buf [0] = 0;
    if (!arr || arr->type != MSGPACK_OBJECT_ARRAY)
        return;
    for (uint32_t i = 0; i < arr->via.array.size && n + 1 < size; i++) {
        char item [80];
        if (relais_msg_str_copy (&arr->via.array.ptr [i], item, sizeof item) >= 0)
            n += (size_t) snprintf (buf + n, size - n, "%s%s", n? ",": "", item);
    }
}

//  ---------------------------------------------------------------------------
//  The request

typedef struct {
    cli_t *cli;
    s_args_t *args;
    zframe_t *frame;
    relais_msg_t msg;
} s_call_t;

//  Send the packed request (a map of pairs + rid added here) and wait.
//  Returns CLI_OK with the reply in call->msg, or CLI_FAILED after saying why.
static int
s_request (s_call_t *call, msgpack_sbuffer *pairs, size_t count)
{
    const char *endpoint = relais_config_str (call->cli->config, "plans/api");
    if (!endpoint || !*endpoint)
        endpoint = S_DEFAULT_API;
    zsock_t *dealer = cli_sock_new (ZMQ_DEALER, endpoint, 0);
    if (!dealer)
        return CLI_FAILED;
    uint64_t rid = relais_clock_mono ();
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, count + 1);
    relais_pack_kv_uint (&pk, "rid", rid);
    msgpack_sbuffer_write (&sbuf, pairs->data, pairs->size);
    int rc = CLI_FAILED;
    if (cli_send (dealer, sbuf.data, sbuf.size) == 0) {
        int got = cli_wait_reply (dealer, rid, (int) call->args->timeout_ms, &call->frame, &call->msg);
        if (got == 0)
            rc = CLI_OK;
        else
            fprintf (stderr, "relais: plans did not answer at %s\n", endpoint);
    }
    msgpack_sbuffer_destroy (&sbuf);
    zsock_destroy (&dealer);
    if (rc != CLI_OK)
        return rc;
    const msgpack_object *root = &call->msg.root;
    if (call->args->json) {
        cli_json_opts_t opts = { NULL, NULL, "rid" };
        char *text = cli_json_dumps (root, &opts);
        if (text)
            printf ("%s\n", text);
        free (text);
    }
    if (!s_bool (root, "ok")) {
        char code [32], field [128], message [256];
        fprintf (stderr, "relais: plans refused: %s%s%s: %s\n", s_str (root, "code", code, sizeof code),
                 relais_msg_get (root, "field")? " ": "", s_str (root, "field", field, sizeof field),
                 s_str (root, "message", message, sizeof message));
        return CLI_FAILED;
    }
    return CLI_OK;
}

static void
s_call_end (s_call_t *call)
{
    relais_msg_release (&call->msg);
    zframe_destroy (&call->frame);
}

//  ---------------------------------------------------------------------------
//  Printing

static void
s_print_list (const msgpack_object *root, bool review)
{
    const msgpack_object *plans = relais_msg_get (root, "plans");
    if (!plans || plans->type != MSGPACK_OBJECT_ARRAY)
        return;
    printf ("%-14s %-9s %-4s %-5s %-7s %-7s %-7s %-4s %-5s %s\n", "PLAN", "STATE", "ARR", "LEVEL",
            "REPORTS", "ACTIONS", "OVERDUE", "FLAG", "AGE", review? "REASON": "ACTORS");
    for (uint32_t i = 0; i < plans->via.array.size; i++) {
        const msgpack_object *p = &plans->via.array.ptr [i];
        char id [32], state [16], age [16], actors [512], reason [600];
        s_age (s_uint (p, "opened_at"), age, sizeof age);
        s_list_text (relais_msg_get (p, "actors"), actors, sizeof actors);
        printf ("%-14s %-9s %-4llu %-5llu %-7llu %llu/%-5llu %-7llu %-4s %-5s %s\n",
                s_str (p, "id", id, sizeof id), s_str (p, "state", state, sizeof state),
                (unsigned long long) s_uint (p, "arrondissement"),
                (unsigned long long) s_uint (p, "level"),
                (unsigned long long) s_uint (p, "signals"),
                (unsigned long long) s_uint (p, "pending"),
                (unsigned long long) s_uint (p, "actions"),
                (unsigned long long) s_uint (p, "overdue"),
                s_bool (p, "flagged")? "yes": "-", age,
                review? s_str (p, "flag_reason", reason, sizeof reason): actors);
    }
    const msgpack_object *next = relais_msg_get (root, "next");
    if (next) {
        char id [32];
        printf ("(more: --after %s)\n", s_str (root, "next", id, sizeof id));
    }
}

static void
s_print_entry (const msgpack_object *e)
{
    char when [32], by [160], what [32], text [2100];
    s_time (s_uint (e, "at"), when, sizeof when);
    printf ("  %s  %-18s %-18s", when, s_str (e, "by", by, sizeof by), s_str (e, "what", what, sizeof what));
    static const char *const keys [] = { "signal", "action", "kind", "partner", "previous",
                                         "state", "outcome", "structure", "due", "flagged", NULL };
    for (int i = 0; keys [i]; i++) {
        const msgpack_object *o = relais_msg_get (e, keys [i]);
        if (!o)
            continue;
        if (strcmp (keys [i], "due") == 0) {
            s_time (s_uint (e, "due"), when, sizeof when);
            printf (" due=%s", when);
        }
        else
        if (o->type == MSGPACK_OBJECT_STR)
            printf (" %s=%s", keys [i], s_str (e, keys [i], text, sizeof text));
        else
        if (o->type == MSGPACK_OBJECT_BOOLEAN)
            printf (" %s=%s", keys [i], o->via.boolean? "yes": "no");
        else
            printf (" %s=%llu", keys [i], (unsigned long long) s_uint (e, keys [i]));
    }
    if (relais_msg_get (e, "text"))
        printf ("\n      « %s »", s_str (e, "text", text, sizeof text));
    printf ("\n");
}

static void
s_print_plan (const msgpack_object *root)
{
    const msgpack_object *p = relais_msg_get (root, "plan");
    char id [32], state [16], outcome [32], structure [80], kind [32], cell [32], when [32];
    char list [1024], reason [600];
    s_str (p, "outcome", outcome, sizeof outcome);
    s_str (p, "structure", structure, sizeof structure);
    char head [160] = "";
    if (*outcome)
        snprintf (head, sizeof head, " (%s%s%s)", outcome, *structure? " -> ": "", structure);
    printf ("%s  %s%s  arrondissement %llu  level %llu  %s%s%s\n",
            s_str (p, "id", id, sizeof id), s_str (p, "state", state, sizeof state), head,
            (unsigned long long) s_uint (p, "arrondissement"), (unsigned long long) s_uint (p, "level"),
            s_str (p, "place_kind", kind, sizeof kind), *s_str (p, "cell", cell, sizeof cell)? " ": "",
            cell);
    s_time (s_uint (p, "opened_at"), when, sizeof when);
    printf ("  opened    %s", when);
    s_time (s_uint (p, "last_activity"), when, sizeof when);
    printf ("   last activity %s\n", when);
    s_list_text (relais_msg_get (p, "reasons"), list, sizeof list);
    printf ("  reasons   %s\n", *list? list: "-");
    s_list_text (relais_msg_get (p, "signals"), list, sizeof list);
    printf ("  reports   %s (%llu)\n", list, (unsigned long long) s_uint (p, "signal_total"));
    s_list_text (relais_msg_get (p, "actors"), list, sizeof list);
    printf ("  actors    %s\n", *list? list: "-");
    if (s_bool (p, "flagged"))
        printf ("  FLAGGED   commission « cas complexes »: %s\n", s_str (p, "flag_reason", reason, sizeof reason));
    const msgpack_object *actions = relais_msg_get (p, "actions");
    if (actions && actions->type == MSGPACK_OBJECT_ARRAY && actions->via.array.size) {
        printf ("\n  %-3s %-19s %-20s %-9s %-17s %s\n", "#", "KIND", "OWNER", "STATE", "DUE", "");
        uint64_t now = relais_clock_now ();
        for (uint32_t i = 0; i < actions->via.array.size; i++) {
            const msgpack_object *a = &actions->via.array.ptr [i];
            char owner [80], astate [16];
            s_str (a, "state", astate, sizeof astate);
            bool pending = strcmp (astate, "a_faire") == 0 || strcmp (astate, "en_cours") == 0;
            uint64_t due = s_uint (a, "due");
            s_time (due, when, sizeof when);
            printf ("  %-3llu %-19s %-20s %-9s %-17s %s\n", (unsigned long long) s_uint (a, "id"),
                    s_str (a, "kind", kind, sizeof kind), s_str (a, "owner", owner, sizeof owner),
                    astate, when, pending && due <= now? "OVERDUE": "");
        }
    }
    const msgpack_object *history = relais_msg_get (root, "history");
    if (history && history->type == MSGPACK_OBJECT_ARRAY) {
        printf ("\n  timeline (UTC)\n");
        for (uint32_t i = 0; i < history->via.array.size; i++)
            if (history->via.array.ptr [i].type == MSGPACK_OBJECT_MAP)
                s_print_entry (&history->via.array.ptr [i]);
    }
}

//  ---------------------------------------------------------------------------

static int
s_usage (const char *why)
{
    fprintf (stderr, "plan: %s (see `relais help plan`)\n", why);
    return CLI_USAGE;
}

int
cli_plan (cli_t *cli, int argc, char **argv)
{
    s_args_t args;
    if (s_parse (argc, argv, &args))
        return CLI_USAGE;
    if (args.count < 1)
        return s_usage ("which verb? list, review, show, open, action, state, close, reopen, flag, note");
    const char *verb = args.positional [0];
    const char *plan = args.count > 1? args.positional [1]: NULL;
    msgpack_sbuffer pairs;
    msgpack_sbuffer_init (&pairs);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &pairs, msgpack_sbuffer_write);
    size_t count = 0;
    bool change = true;
    const char *value;
    uint64_t number;
    int rc = CLI_USAGE;

#define S_KV_STR(k, v)  do { relais_pack_kv_str (&pk, (k), (v)); count++; } while (0)
#define S_KV_UINT(k, v) do { relais_pack_kv_uint (&pk, (k), (v)); count++; } while (0)
#define S_KV_BOOL(k, v) do { relais_pack_kv_bool (&pk, (k), (v)); count++; } while (0)
#define S_NEED(cond, why) do { if (!(cond)) { rc = s_usage (why); goto done; } } while (0)

    if (strcmp (verb, "list") == 0 || strcmp (verb, "review") == 0) {
        change = false;
        S_KV_STR ("op", strcmp (verb, "list") == 0? "plans.list": "plans.review");
        if ((value = s_flag (&args, "--state")))
            S_KV_STR ("state", value);
        if ((value = s_flag (&args, "--arr"))) {
            S_NEED (relais_parse_size (value, &number), "--arr wants 1 to 20");
            S_KV_UINT ("arrondissement", number);
        }
        if ((value = s_flag (&args, "--partner")))
            S_KV_STR ("partner", value);
        if (s_flag (&args, "--overdue"))
            S_KV_BOOL ("overdue", true);
        if (s_flag (&args, "--flagged"))
            S_KV_BOOL ("flagged", true);
        if ((value = s_flag (&args, "--limit"))) {
            S_NEED (relais_parse_size (value, &number), "--limit wants a number");
            S_KV_UINT ("limit", number);
        }
        if ((value = s_flag (&args, "--after")))
            S_KV_STR ("after", value);
    }
    else
    if (strcmp (verb, "show") == 0) {
        S_NEED (plan, "show PLAN");
        change = false;
        S_KV_STR ("op", "plans.get");
        S_KV_STR ("id", plan);
    }
    else
    if (strcmp (verb, "open") == 0) {
        S_NEED (plan, "open SIG");
        S_KV_STR ("op", "plans.open");
        S_KV_STR ("signal", plan);
    }
    else
    if (strcmp (verb, "action") == 0) {
        S_NEED (plan, "action PLAN ...");
        S_KV_STR ("id", plan);
        if (args.count > 2) {
            S_NEED (relais_parse_size (args.positional [2], &number), "action PLAN N: N is the action's number");
            S_KV_STR ("op", "plans.action_update");
            S_KV_UINT ("action", number);
            if ((value = s_flag (&args, "--state")))
                S_KV_STR ("state", value);
        }
        else {
            S_KV_STR ("op", "plans.action_add");
            S_NEED (s_flag (&args, "--kind") && s_flag (&args, "--owner") && s_flag (&args, "--due"),
                    "action PLAN --kind K --owner P --due WHEN");
            S_KV_STR ("kind", s_flag (&args, "--kind"));
        }
        if ((value = s_flag (&args, "--owner")))
            S_KV_STR ("owner", value);
        if ((value = s_flag (&args, "--due"))) {
            S_NEED (s_parse_when (value, &number), "--due wants +2h, +3d, YYYY-MM-DDTHH:MM or µs");
            S_KV_UINT ("due", number);
        }
    }
    else
    if (strcmp (verb, "state") == 0) {
        S_NEED (plan && args.count > 2, "state PLAN STATE");
        S_KV_STR ("op", "plans.set_state");
        S_KV_STR ("id", plan);
        S_KV_STR ("state", args.positional [2]);
    }
    else
    if (strcmp (verb, "close") == 0) {
        S_NEED (plan && args.count > 2, "close PLAN OUTCOME");
        S_KV_STR ("op", "plans.set_state");
        S_KV_STR ("id", plan);
        S_KV_STR ("state", "clos");
        S_KV_STR ("outcome", args.positional [2]);
        if ((value = s_flag (&args, "--structure")))
            S_KV_STR ("structure", value);
    }
    else
    if (strcmp (verb, "reopen") == 0) {
        S_NEED (plan, "reopen PLAN");
        S_KV_STR ("op", "plans.reopen");
        S_KV_STR ("id", plan);
    }
    else
    if (strcmp (verb, "flag") == 0) {
        S_NEED (plan && (s_flag (&args, "--reason") || s_flag (&args, "--off")),
                "flag PLAN --reason TEXT, or flag PLAN --off");
        S_KV_STR ("op", "plans.flag");
        S_KV_STR ("id", plan);
        S_KV_BOOL ("flagged", !s_flag (&args, "--off"));
        if ((value = s_flag (&args, "--reason")))
            S_KV_STR ("reason", value);
    }
    else
    if (strcmp (verb, "note") == 0) {
        S_NEED (plan && args.count > 2, "note PLAN TEXT");
        S_KV_STR ("op", "plans.note");
        S_KV_STR ("id", plan);
        S_KV_STR ("text", args.positional [2]);
        if ((value = s_flag (&args, "--action"))) {
            S_NEED (relais_parse_size (value, &number), "--action wants a number");
            S_KV_UINT ("action", number);
        }
    }
    else {
        rc = s_usage ("unknown verb");
        goto done;
    }
    if (change)
        S_KV_STR ("by", args.by);

    s_call_t call;
    memset (&call, 0, sizeof call);
    call.cli = cli;
    call.args = &args;
    rc = s_request (&call, &pairs, count);
    if (rc == CLI_OK && !args.json) {
        const msgpack_object *root = &call.msg.root;
        char id [32], text [64];
        if (strcmp (verb, "list") == 0 || strcmp (verb, "review") == 0)
            s_print_list (root, strcmp (verb, "review") == 0);
        else
        if (strcmp (verb, "show") == 0)
            s_print_plan (root);
        else
        if (strcmp (verb, "open") == 0)
            printf ("%s %s\n", s_str (root, "id", id, sizeof id),
                    s_bool (root, "attached")? "(joined an open plan)": "opened");
        else
        if (strcmp (verb, "action") == 0)
            printf ("%s action %llu%s%s\n", s_str (root, "id", id, sizeof id),
                    (unsigned long long) s_uint (root, "action"),
                    relais_msg_get (root, "state")? " ": " added",
                    s_str (root, "state", text, sizeof text));
        else
        if (strcmp (verb, "flag") == 0)
            printf ("%s %s\n", s_str (root, "id", id, sizeof id),
                    s_bool (root, "flagged")? "flagged for the commission": "unflagged");
        else
        if (strcmp (verb, "note") == 0)
            printf ("%s note recorded\n", s_str (root, "id", id, sizeof id));
        else
            printf ("%s %s\n", s_str (root, "id", id, sizeof id), s_str (root, "state", text, sizeof text));
    }
    s_call_end (&call);
done:
    msgpack_sbuffer_destroy (&pairs);
    return rc;
}
