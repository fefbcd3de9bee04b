/*  =========================================================================
    relais - the operator's command: submit, tail, fetch, status, simulate

    Usage: relais [--config FILE] COMMAND [ARGS...]
           relais help [COMMAND]
    FILE defaults to $RELAIS_CONFIG, else /etc/relais/relais.cfg when it
    exists, else the built-in defaults. Exit codes: 0 success, 1 the
    operation failed, 2 usage error.
    =========================================================================
*/
#include "cli.h"
#include "relais_bus.h"
#include "intake_server.h"
#include "relais_deploy.h"
#include "relais_security.h"
#include "relais_clock.h"
#include "relais_log.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_DEFAULT_CONFIG "/etc/relais/relais.cfg"

static const cli_command_t s_commands [] = {
    { "submit", cli_submit, "send reports (JSON or NDJSON) to intake; print each ack", cli_submit_help },
    { "tail", cli_tail, "follow the bus live, after history if asked", cli_tail_help },
    { "fetch", cli_fetch, "dump a range of a service's event log", cli_fetch_help },
    { "status", cli_status, "is every service up? last sequence, heartbeat, lag", cli_status_help },
    { "simulate", cli_simulate, "generate realistic Paris reports and submit them", cli_simulate_help },
    { "config", cli_config, "read the deployment file as the services do", cli_config_help },
    { "backup", cli_backup, "hot, compacted, verified copies of the services' stores", cli_backup_help },
    { "restore", cli_restore, "put a backup back as a stopped service's store", cli_restore_help },
    { "keygen", cli_keygen, "make a CURVE certificate with its identity and role", cli_keygen_help },
    { "audit", cli_audit, "who read which personal data, when and why; verify the chain", cli_audit_help },
    { "stats", cli_stats, "analytics: a quick table of an indicator by arrondissement, public, level, source", cli_stats_help },
    { "report", cli_report, "analytics: an HTML page with charts and CSVs for a period", cli_report_help },
    { "route", cli_route, "explain which routing rules send a report to which partners", cli_route_help },
    { "plan", cli_plan, "action plans of level-2 situations: list, show, action, close, flag, note", cli_plan_help },
    { "capacity", cli_capacity, "shelter capacity: structures, occupancy, moves, forecast", cli_capacity_help },
    { "erase", cli_erase, "remove one person's personal data everywhere (right to erasure)", cli_erase_help },
    { "purge", cli_purge, "apply the retention policy now in every service holding personal data", cli_purge_help },
    { "follow", cli_follow, "a producer follows the status of its own reports (durable feed)", cli_follow_help },
    { NULL, NULL, NULL, NULL }
};

static volatile sig_atomic_t s_interrupted;

static void
s_on_signal (int signum)
{
    s_interrupted = 1;
}

bool
cli_interrupted (void)
{
    return s_interrupted != 0;
}

int64_t
cli_now_ms (void)
{
    return (int64_t) (relais_clock_mono () / 1000);
}

//  ---------------------------------------------------------------------------
//  Sockets and requests

const relais_msg_limits_t cli_reply_limits = {
    16 << 20,           //  a fetch reply holds up to the server's byte budget
    16,                 //  reply > events > envelope > body > place > ...
    1 << 20
};

static const char *const s_services [] = {
    "intake", "router", "plans", "capacity", "analytics", "feedback", NULL
};

size_t
cli_sources (cli_t *cli, const char *only, cli_source_t *sources, size_t max)
{
    size_t count = 0;
    for (int i = 0; s_services [i] && count < max; i++) {
        if (only && strcmp (only, s_services [i]) != 0)
            continue;
        char path [64];
        snprintf (path, sizeof path, "%s/pub", s_services [i]);
        const char *pub = relais_config_str (cli->config, path);
        snprintf (path, sizeof path, "%s/fetch", s_services [i]);
        const char *fetch = relais_config_str (cli->config, path);
        if (!pub || !fetch || !*pub || !*fetch)
            continue;               //  not in this deployment
        sources [count].name = s_services [i];
        sources [count].pub = pub;
        sources [count].fetch = fetch;
        count++;
    }
    return count;
}

zsock_t *
cli_sock_new (int type, const char *endpoint, int64_t max_msg)
{
    zsock_t *sock = zsock_new (type);
    if (!sock) {
        fprintf (stderr, "relais: cannot create a socket\n");
        return NULL;
    }
    //  A CLI never waits for queued requests at exit: the server side is
    //  idempotent and the user decides whether to run it again.
    zsock_set_linger (sock, 0);
    if (max_msg > 0)
        zsock_set_maxmsgsize (sock, max_msg);
    if (type == ZMQ_SUB) {
        zsock_set_rcvhwm (sock, 100000);
        zsock_set_subscribe (sock, "");
    }
    if (relais_security_apply (sock, endpoint, false)) {
        fprintf (stderr, "relais: no server certificate for %s: not connecting in the clear\n",
                 endpoint);
        zsock_destroy (&sock);
        return NULL;
    }
    if (zsock_connect (sock, "%s", endpoint) < 0) {
        fprintf (stderr, "relais: cannot connect to %s: %s\n", endpoint,
                 zmq_strerror (zmq_errno ()));
        zsock_destroy (&sock);
        return NULL;
    }
    return sock;
}

int
cli_send (zsock_t *dealer, const void *data, size_t size)
{
    void *handle = zsock_resolve (dealer);
    if (zmq_send (handle, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return -1;
    //  Once the first frame is queued the rest of the message always is
    if (zmq_send (handle, data, size, ZMQ_DONTWAIT) < 0)
        return -1;
    return 0;
}

int
cli_recv (zsock_t *sock, zframe_t **data_p, char *topic, size_t topic_size)
{
    *data_p = NULL;
    if (topic && topic_size)
        topic [0] = 0;
    if (!(zsock_events (sock) & ZMQ_POLLIN))
        return -1;
    zmsg_t *msg = zmsg_recv_nowait (sock);
    if (!msg)
        return -1;
    int rc = -1;
    size_t frames = zmsg_size (msg);
    if (frames == 2) {
        zframe_t *first = zmsg_pop (msg);
        if (topic && topic_size) {
            size_t n = zframe_size (first);
            if (n >= topic_size)
                n = topic_size - 1;
            memcpy (topic, zframe_data (first), n);
            topic [n] = 0;
        }
        zframe_destroy (&first);
        *data_p = zmsg_pop (msg);
        rc = 0;
    }
    zmsg_destroy (&msg);
    return rc;
}

int
cli_wait_reply (zsock_t *dealer, uint64_t rid, int timeout_ms, zframe_t **frame_p,
                relais_msg_t *msg)
{
    *frame_p = NULL;
    memset (msg, 0, sizeof *msg);
    int64_t deadline = cli_now_ms () + timeout_ms;
    while (!cli_interrupted ()) {
        zframe_t *frame;
        while (cli_recv (dealer, &frame, NULL, 0) == 0) {
            relais_error_t err;
            if (relais_msg_decode (msg, zframe_data (frame), zframe_size (frame),
                                   &cli_reply_limits, &err)) {
                zframe_destroy (&frame);
                return -2;
            }
            uint64_t got;
            if (relais_msg_uint (relais_msg_get (&msg->root, "rid"), &got) && got == rid) {
                *frame_p = frame;
                return 0;
            }
            //  A late answer to an earlier attempt: not ours any more
            relais_msg_release (msg);
            zframe_destroy (&frame);
        }
        int64_t left = deadline - cli_now_ms ();
        if (left <= 0)
            break;
        zmq_pollitem_t item = { zsock_resolve (dealer), 0, ZMQ_POLLIN, 0 };
        zmq_poll (&item, 1, (long) (left < 200? left: 200));
    }
    return -1;
}

//  ---------------------------------------------------------------------------
//  Help and dispatch

static void
s_usage (FILE *out)
{
    fprintf (out,
        "usage: relais [--config FILE] [--as NAME] COMMAND [ARGS...]\n"
        "\n"
        "Relais carries social-emergency reports between the 115, the\n"
        "arrondissements, the MUS and their partners. This command talks to a\n"
        "running deployment.\n"
        "\n"
        "commands:\n");
    for (int i = 0; s_commands [i].name; i++)
        fprintf (out, "  %-10s %s\n", s_commands [i].name, s_commands [i].summary);
    fprintf (out,
        "  %-10s %s\n"
        "\n"
        "global flags (before COMMAND):\n"
        "  --config FILE   the deployment file (ZPL); else $RELAIS_CONFIG, else\n"
        "                  " S_DEFAULT_CONFIG " if it exists, else built-in defaults\n"
        "  --as NAME       with CURVE on (security/curve), connect with the\n"
        "                  certificate NAME of security/certs; else\n"
        "                  $RELAIS_IDENTITY, else \"operations\"\n"
        "  -h, --help      this text\n"
        "\n"
        "`relais help COMMAND` or `relais COMMAND --help` explains one command.\n"
        "\n"
        "exit codes: 0 success, 1 the operation failed (a service down, a report\n"
        "refused, a timeout), 2 usage error (bad flags, unreadable input).\n",
        "help", "explain a command");
}

static const cli_command_t *
s_find (const char *name)
{
    for (int i = 0; s_commands [i].name; i++)
        if (strcmp (s_commands [i].name, name) == 0)
            return &s_commands [i];
    return NULL;
}

static void
s_unknown (const char *name)
{
    fprintf (stderr, "relais: unknown command '%s'; commands:", name);
    for (int i = 0; s_commands [i].name; i++)
        fprintf (stderr, " %s", s_commands [i].name);
    fprintf (stderr, " (see `relais help`)\n");
}

static bool
s_wants_help (int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv [i], "--") == 0)
            return false;
        if (strcmp (argv [i], "--help") == 0 || strcmp (argv [i], "-h") == 0)
            return true;
    }
    return false;
}

int
main (int argc, char *argv [])
{
    //  We own SIGINT/SIGTERM: czmq's handler would only set zsys_interrupted
    //  and let blocking calls go on; ours makes every wait loop return.
    zsys_handler_set (NULL);
    struct sigaction action;
    memset (&action, 0, sizeof action);
    action.sa_handler = s_on_signal;
    sigemptyset (&action.sa_mask);
    sigaction (SIGINT, &action, NULL);
    sigaction (SIGTERM, &action, NULL);
    //  `relais tail | head` closes our stdout: see EPIPE, do not die of it
    signal (SIGPIPE, SIG_IGN);
    relais_log_init ("relais");
    relais_process_harden ();           //  submit and fetch hold personal data

    const char *config_path = NULL;
    const char *identity = getenv ("RELAIS_IDENTITY");
    int arg = 1;
    while (arg < argc && argv [arg][0] == '-') {
        if (strcmp (argv [arg], "--config") == 0 && arg + 1 < argc) {
            config_path = argv [arg + 1];
            arg += 2;
        }
        else
        if (strncmp (argv [arg], "--config=", 9) == 0) {
            config_path = argv [arg] + 9;
            arg++;
        }
        else
        if (strcmp (argv [arg], "--as") == 0 && arg + 1 < argc) {
            identity = argv [arg + 1];
            arg += 2;
        }
        else
        if (strcmp (argv [arg], "--help") == 0 || strcmp (argv [arg], "-h") == 0) {
            s_usage (stdout);
            return CLI_OK;
        }
        else {
            fprintf (stderr, "relais: unknown global flag '%s' (see `relais help`)\n", argv [arg]);
            return CLI_USAGE;
        }
    }
    if (arg >= argc) {
        s_usage (stderr);
        return CLI_USAGE;
    }
    const char *name = argv [arg];
    if (strcmp (name, "help") == 0) {
        if (arg + 1 >= argc) {
            s_usage (stdout);
            return CLI_OK;
        }
        const cli_command_t *command = s_find (argv [arg + 1]);
        if (!command) {
            s_unknown (argv [arg + 1]);
            return CLI_USAGE;
        }
        fputs (command->help, stdout);
        return CLI_OK;
    }
    const cli_command_t *command = s_find (name);
    if (!command) {
        s_unknown (name);
        return CLI_USAGE;
    }
    int sub_argc = argc - arg;
    char **sub_argv = argv + arg;
    if (s_wants_help (sub_argc, sub_argv)) {
        fputs (command->help, stdout);
        return CLI_OK;
    }

    if (!config_path)
        config_path = getenv ("RELAIS_CONFIG");
    if (config_path && !*config_path)
        config_path = NULL;
    if (!config_path) {
        struct stat st;
        if (stat (S_DEFAULT_CONFIG, &st) == 0)
            config_path = S_DEFAULT_CONFIG;
    }
    relais_clock_from_env ();
    cli_t cli = { NULL, config_path? config_path: "", isatty (STDOUT_FILENO) != 0 };
    cli.config = relais_config_load (config_path);
    if (!identity || !*identity)
        identity = "operations";
    //  keygen makes the certificates security needs, config only reads the
    //  file: both run without them
    bool offline = strcmp (command->name, "keygen") == 0 || strcmp (command->name, "config") == 0
                || strcmp (command->name, "audit") == 0;
    if (!cli.config || relais_deploy_declare (cli.config) || relais_security_declare (cli.config)
    ||  intake_declare (cli.config)
    ||  (!offline && relais_security_start (cli.config, identity, false))) {
        //  The loader said why, with the file and the key
        fprintf (stderr, "relais: cannot use the configuration %s\n",
                 config_path? config_path: "(defaults)");
        relais_config_destroy (&cli.config);
        return CLI_USAGE;
    }
    int rc = command->fn (&cli, sub_argc, sub_argv);
    relais_security_stop ();
    relais_config_destroy (&cli.config);
    fflush (stdout);
    zsys_shutdown ();
    return rc;
}
