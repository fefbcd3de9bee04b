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
s_connect (const char *endpoint, const char *partner, uint64_t last)
{
    zsock_t *sock = zsock_new (ZMQ_DEALER);
    if (!sock)
        return NULL;
    zsock_set_linger (sock, 1000);
    zsock_set_rcvhwm (sock, 100000);
    //  With CURVE on, the router knows us by our certificate (the partner's)
    if (relais_security_apply (sock, endpoint, false) || zsock_connect (sock, "%s", endpoint) < 0) {
        zsock_destroy (&sock);
        return NULL;
    }
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 3);
    relais_pack_kv_str (&pk, "op", "hello");
    relais_pack_kv_str (&pk, s_who_key, partner);
    relais_pack_kv_uint (&pk, "after", last);
    zmsg_t *msg = zmsg_new ();
    zmsg_addmem (msg, "", 0);
    zmsg_addmem (msg, sbuf.data, sbuf.size);
    zmsg_send (&msg, sock);
    msgpack_sbuffer_destroy (&sbuf);
    return sock;
}

static void
s_send_op (zsock_t *sock, const char *op, const char *key, uint64_t value)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, key? 2: 1);
    relais_pack_kv_str (&pk, "op", op);
    if (key)
        relais_pack_kv_uint (&pk, key, value);
    zmsg_t *msg = zmsg_new ();
    zmsg_addmem (msg, "", 0);
    zmsg_addmem (msg, sbuf.data, sbuf.size);
    zmsg_send (&msg, sock);
    msgpack_sbuffer_destroy (&sbuf);
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
    zsock_t *sock = s_connect (endpoint, partner, last);
    if (!sock) {
        relais_error ("cannot connect to %s", endpoint);
        notify_sink_destroy (&sink);
        free (state_path);
        relais_config_destroy (&config);
        return EXIT_FAILURE;
    }
    relais_notice ("ready %s=%s endpoint=%s after=%llu", s_who_key, partner, endpoint,
                   (unsigned long long) last);
    int64_t now = zclock_mono ();
    int64_t heard = now, sent = now, retry_at = 0, backoff = 100;
    bool failing = false;
    int exit_code = EXIT_SUCCESS;
    uint64_t handled = 0;
    while (!s_stop) {
        zmq_pollitem_t item = { zsock_resolve (sock), 0, ZMQ_POLLIN, 0 };
        zmq_poll (&item, 1, 100);
        now = zclock_mono ();
        bool dirty = false, need_ack = false, rehello = false;
        zmsg_t *msg;
        while (!s_stop && (zsock_events (sock) & ZMQ_POLLIN) && (msg = zmsg_recv (sock))) {
            heard = now;
            zframe_t *data = zmsg_last (msg);
            relais_msg_t m;
            relais_error_t err;
            relais_msg_limits_t limits = { 4 * 65536, 0, 0 };
            if (!data || relais_msg_decode (&m, zframe_data (data), zframe_size (data), &limits, &err)) {
                relais_warning ("malformed message from router dropped");
                zmsg_destroy (&msg);
                continue;
            }
            const msgpack_object *op = relais_msg_get (&m.root, "op");
            const msgpack_object *ok = relais_msg_get (&m.root, "ok");
            uint64_t mseq = 0;
            if (relais_msg_str_eq (op, "deliver")
            &&  relais_msg_uint (relais_msg_get (&m.root, "mseq"), &mseq)) {
                if (mseq <= last)
                    need_ack = true;        //  a redelivery: handled already
                else
                if (!failing) {
                    cli_json_opts_t opts = { s_who_key, partner, "op" };
                    msgpack_sbuffer line;
                    msgpack_sbuffer_init (&line);
                    if (cli_json_write (&line, &m.root, &opts) == 0
                    &&  notify_sink_put (sink, mseq, line.data, line.size) == 0) {
                        last = mseq;
                        dirty = need_ack = true;
                        handled++;
                        backoff = 100;
                    }
                    else {
                        failing = true;     //  nothing after it until it passes
                        retry_at = now + backoff;
                        relais_warning ("sink failed mseq=%llu: retry in %lld ms",
                                        (unsigned long long) mseq, (long long) backoff);
                        backoff = backoff * 2 > 5000? 5000: backoff * 2;
                    }
                    msgpack_sbuffer_destroy (&line);
                }
            }
            else
            if (relais_msg_str_eq (op, "welcome")) {
                uint64_t box_last = 0, box_acked = 0;
                if (relais_msg_uint (relais_msg_get (&m.root, "last"), &box_last)
                &&  relais_msg_uint (relais_msg_get (&m.root, "acked"), &box_acked)
                &&  last > box_last) {
                    //  Our record is ahead of the mailbox itself: the router's
                    //  store was replaced. Skipping would lose deliveries.
                    relais_warning ("state mseq=%llu is beyond the mailbox (last=%llu): "
                                    "following the router from %llu",
                                    (unsigned long long) last, (unsigned long long) box_last,
                                    (unsigned long long) box_acked);
                    last = box_acked;
                    dirty = true;
                }
            }
            else
            if (ok && ok->type == MSGPACK_OBJECT_BOOLEAN && !ok->via.boolean) {
                char code [32] = "", message [128] = "";
                relais_msg_str_copy (relais_msg_get (&m.root, "code"), code, sizeof code);
                relais_msg_str_copy (relais_msg_get (&m.root, "message"), message, sizeof message);
                relais_warning ("router error code=%s message=%s", code, message);
                if (strcmp (code, RELAIS_CODE_UNAUTHORIZED) == 0) {
                    exit_code = EXIT_FAILURE;
                    s_stop = 1;
                }
                else
                if (strcmp (code, RELAIS_CODE_CONFLICT) == 0)
                    rehello = true;         //  the router lost our session
            }
            relais_msg_release (&m);
            zmsg_destroy (&msg);
        }
        if (dirty) {
            if (notify_sink_flush (sink) || notify_state_write (state_path, last)) {
                relais_error ("cannot make mseq=%llu durable: exiting before acking",
                              (unsigned long long) last);
                exit_code = EXIT_FAILURE;
                break;
            }
        }
        if (need_ack) {
            s_send_op (sock, "ack", "upto", last);
            sent = now;
        }
        if (failing && now >= retry_at) {
            failing = false;
            rehello = true;                 //  the router sends everything unacked again
        }
        if (now - heard > 3 * (int64_t) hb_ms) {
            relais_notice ("router silent for 3 intervals: reconnecting");
            zsock_destroy (&sock);
            sock = s_connect (endpoint, partner, last);
            heard = sent = now;
            if (!sock) {
                exit_code = EXIT_FAILURE;
                break;
            }
            continue;
        }
        if (rehello) {
            zsock_destroy (&sock);
            sock = s_connect (endpoint, partner, last);
            sent = now;
            if (!sock) {
                exit_code = EXIT_FAILURE;
                break;
            }
        }
        else
        if (now - sent >= (int64_t) hb_ms) {
            s_send_op (sock, "ping", NULL, 0);
            sent = now;
        }
    }
    relais_notice ("stopped %s=%s handled=%llu last=%llu", s_who_key, partner,
                   (unsigned long long) handled, (unsigned long long) last);
    zsock_destroy (&sock);
    notify_sink_destroy (&sink);
    free (state_path);
    relais_config_destroy (&config);
    curl_global_cleanup ();
    return exit_code;
}
