/*  =========================================================================
    relais-notify - a partner's notifier: takes the partner's mailbox from
    the router and hands each delivery to a sink; or, with --producer, a
    producer's webhook: its feed of status changes from feedback

    Usage: relais-notify --partner ID | --producer KIND:NAME [--as CERT]
                         [--config FILE] [--state FILE] [--timeout D]
                         --sink stdout|file:PATH|exec:CMD|webhook:URL
    Says hello with the last mseq it durably handled, hands each delivery to
    the sink, records the new last mseq (state file, atomic and fsync'd),
    then acknowledges cumulatively. A failed sink is retried with backoff
    (100 ms doubling to 5 s) and nothing after it is acknowledged. --timeout
    bounds one webhook POST (default 10s).
    FILE defaults to $RELAIS_CONFIG, else /etc/relais/relais.cfg; the state
    file defaults to <relais/data>/notify-<ID>.state. --producer speaks the
    same protocol to feedback/feed (proto/feedback.md §4); with CURVE the
    certificate (--as, default $RELAIS_IDENTITY, else the partner id)
    decides whose feed it is.
    =========================================================================
*/
#include "notify_follower.h"
#include "notify_sink.h"
#include "router_server.h"
#include "feedback_server.h"
#include "feedback_status.h"
#include "cli_json.h"
#include "relais_bus.h"
#include "relais_security.h"
#include "relais_clock.h"
#include "relais_deploy.h"
#include "relais_log.h"

#include <czmq.h>
#include <curl/curl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t s_stop;

static void
s_on_signal (int signum)
{
    s_stop = 1;
}

static const char *s_who_key = "partner";     //  "producer" with --producer

static zsock_t *
s_connect (const char *endpoint, void *arg)
{
    zsock_t *sock = zsock_new (ZMQ_DEALER);
    if (!sock)
        return NULL;
    zsock_set_linger (sock, 1000);
    zsock_set_rcvhwm (sock, 100000);
    //  With CURVE on, the router knows us by our certificate (the partner's)
    if (relais_security_apply (sock, endpoint, false) || zsock_connect (sock, "%s", endpoint) < 0)
        zsock_destroy (&sock);
    return sock;
}

static int
s_format (const msgpack_object *deliver, msgpack_sbuffer *line, void *arg)
{
    cli_json_opts_t opts = { s_who_key, (const char *) arg, "op" };
    return cli_json_write (line, deliver, &opts);
}

static void
s_say (bool error, const char *text, void *arg)
{
    if (error)
        relais_error ("%s", text);
    else
        relais_warning ("%s", text);
}

static bool
s_stopped (void *arg)
{
    return s_stop != 0;
}

int
main (int argc, char *argv [])
{
    const char *path = getenv ("RELAIS_CONFIG");
    const char *partner = NULL, *producer = NULL, *sink_spec = NULL, *state_arg = NULL;
    const char *cert = getenv ("RELAIS_IDENTITY");
    uint64_t timeout_ms = 10000;
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv [i], "--config") == 0 && i + 1 < argc)
            path = argv [++i];
        else
        if (strcmp (argv [i], "--partner") == 0 && i + 1 < argc)
            partner = argv [++i];
        else
        if (strcmp (argv [i], "--producer") == 0 && i + 1 < argc)
            producer = argv [++i];
        else
        if (strcmp (argv [i], "--as") == 0 && i + 1 < argc)
            cert = argv [++i];
        else
        if (strcmp (argv [i], "--sink") == 0 && i + 1 < argc)
            sink_spec = argv [++i];
        else
        if (strcmp (argv [i], "--state") == 0 && i + 1 < argc)
            state_arg = argv [++i];
        else
        if (strcmp (argv [i], "--timeout") == 0 && i + 1 < argc
        &&  relais_parse_duration_ms (argv [i + 1], &timeout_ms) && timeout_ms > 0)
            i++;
        else {
            sink_spec = NULL;
            break;
        }
    }
    if (!partner == !producer || !sink_spec || (producer && !feedback_producer_valid (producer))) {
        fprintf (stderr, "usage: relais-notify --partner ID | --producer KIND:NAME [--as CERT]\n"
                         "                     [--config FILE] [--state FILE] [--timeout D]\n"
                         "                     --sink stdout|file:PATH|exec:CMD|webhook:URL\n");
        return EXIT_FAILURE;
    }
    //  A producer's feed: the same protocol, on feedback's feed endpoint
    char producer_id [FEEDBACK_PRODUCER_MAX + 16] = "";
    if (producer) {
        s_who_key = "producer";
        partner = producer;
        size_t j = 0;
        for (const char *c = producer; *c && j + 1 < sizeof producer_id; c++)
            producer_id [j++] = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z')
                             || (*c >= '0' && *c <= '9')? *c: '-';
        producer_id [j] = 0;
    }
    if (!cert || !*cert)
        cert = producer? "producer": partner;
    if (!path)
        path = "/etc/relais/relais.cfg";
    relais_log_init ("notify");
    relais_clock_from_env ();
    zsys_handler_set (NULL);
    signal (SIGINT, s_on_signal);
    signal (SIGTERM, s_on_signal);
    relais_config_t *config = relais_config_load (path);
    if (!config || relais_deploy_declare (config) || router_declare (config)
    ||  feedback_declare (config) || relais_service_setup (config, cert, false)) {
        relais_config_destroy (&config);
        return EXIT_FAILURE;
    }
    curl_global_init (CURL_GLOBAL_DEFAULT);
    char why [256];
    notify_sink_t *sink = notify_sink_new (sink_spec, why, sizeof why);
    if (!sink) {
        relais_error ("--sink %s: %s", sink_spec, why);
        relais_config_destroy (&config);
        curl_global_cleanup ();
        return EXIT_FAILURE;
    }
    notify_sink_set_timeout (sink, (long) timeout_ms);
    char *state_path = NULL;
    if (state_arg)
        state_path = strdup (state_arg);
    else {
        char *data = relais_config_path (config, "relais/data");
        if (data) {
            zsys_dir_create ("%s", data);
            state_path = zsys_sprintf ("%s/notify-%s.state", data, producer? producer_id: partner);
            zstr_free (&data);
        }
    }
    uint64_t last = 0;
    if (!state_path || notify_state_read (state_path, &last)) {
        relais_error ("state file %s unreadable: refusing to guess what was handled",
                      state_path? state_path: "(none)");
        notify_sink_destroy (&sink);
        free (state_path);
        relais_config_destroy (&config);
        return EXIT_FAILURE;
    }
    uint64_t in_sink = notify_sink_last (sink);
    if (in_sink > last) {
        //  Appended, then killed before the state file: do not append it twice
        relais_notice ("sink holds mseq=%llu beyond state=%llu", (unsigned long long) in_sink,
                       (unsigned long long) last);
        last = in_sink;
    }
    const char *endpoint = relais_config_str (config, producer? "feedback/feed": "router/partners");
    uint64_t hb_ms = relais_config_duration_ms (config, producer? "feedback/feed_heartbeat"
                                                                  : "router/partner_heartbeat", 1000);
    if (hb_ms == 0)
        hb_ms = 1000;
    relais_notice ("ready %s=%s endpoint=%s after=%llu", s_who_key, partner, endpoint,
                   (unsigned long long) last);
    relais_msg_limits_t limits = { 4 * 65536, 0, 0 };
    notify_follower_opts_t opts = {
        .endpoint = endpoint,
        .who_key = s_who_key,
        .name = partner,
        .peer = producer? "feedback": "router",
        .heartbeat_ms = hb_ms,
        .sink = sink,
        .state_path = state_path,
        .limits = &limits,
        .retry = true,                  //  a failed sink is retried with backoff
        .quiet_refusals = true,         //  only "unauthorized" stops us
        .connect = s_connect,
        .format = s_format,
        .say = s_say,
        .stopped = s_stopped,
        .arg = (void *) partner,
    };
    uint64_t handled = 0;
    int exit_code = notify_follower_run (&opts, &last, &handled)? EXIT_FAILURE: EXIT_SUCCESS;
    relais_notice ("stopped %s=%s handled=%llu last=%llu", s_who_key, partner,
                   (unsigned long long) handled, (unsigned long long) last);
    notify_sink_destroy (&sink);
    free (state_path);
    relais_config_destroy (&config);
    curl_global_cleanup ();
    return exit_code;
}
