/*  =========================================================================
    test_security - the role table, certificates, and start-up refusals
    =========================================================================
*/
#include "relais_bus.h"
#include "relais_clock.h"
#include "relais_config.h"
#include "relais_log.h"
#include "relais_store.h"
#include "relais_security.h"
#include "relais_test.h"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

static char s_root [512];

static void
test_roles (void)
{
    CHECK (relais_security_role_allows ("producer", "intake/submit"));
    CHECK (!relais_security_role_allows ("producer", "intake/pub"));
    CHECK (!relais_security_role_allows ("producer", "intake/fetch"));
    CHECK (!relais_security_role_allows ("producer", "intake/records"));
    CHECK (!relais_security_role_allows ("producer", "router/partners"));
    CHECK (relais_security_role_allows ("partner", "router/partners"));
    CHECK (!relais_security_role_allows ("partner", "intake/submit"));
    CHECK (!relais_security_role_allows ("partner", "router/pub"));
    CHECK (!relais_security_role_allows ("partner", "plans/api"));
    CHECK (relais_security_role_allows ("operations", "intake/records"));
    CHECK (relais_security_role_allows ("operations", "plans/api"));
    CHECK (relais_security_role_allows ("service", "intake/records"));
    CHECK (relais_security_role_allows ("service", "capacity/pub"));
    CHECK (!relais_security_role_allows ("service", "router/partners"));
    CHECK (relais_security_role_allows ("gateway", "intake/submit"));
    CHECK (relais_security_role_allows ("gateway", "intake/records"));
    CHECK (!relais_security_role_allows ("gateway", "router/partners"));
    CHECK (!relais_security_role_allows ("gateway", "unlisted"));
    CHECK (!relais_security_role_allows ("king", "intake/submit"));
    CHECK (!relais_security_role_allows (NULL, "intake/submit"));
    //  Feedback: a producer follows its own reports; a partner does not
    CHECK (relais_security_role_allows ("producer", "feedback/feed"));
    CHECK (relais_security_role_allows ("producer", "feedback/api"));
    CHECK (!relais_security_role_allows ("producer", "feedback/pub"));
    CHECK (!relais_security_role_allows ("partner", "feedback/feed"));
    CHECK (relais_security_role_allows ("gateway", "feedback/feed"));
}

static relais_config_t *
s_config (const char *certs)
{
    char path [600];
    snprintf (path, sizeof path, "%s/relais.cfg", s_root);
    FILE *file = fopen (path, "w");
    CHECK (file);
    fprintf (file, "relais\n    data = \"%s\"\nsecurity\n    curve = true\n    certs = \"%s\"\n",
             s_root, certs);
    fclose (file);
    relais_config_t *config = relais_config_load (path);
    CHECK (config);
    CHECK_OK (relais_security_declare (config));
    return config;
}

static void
test_keygen_and_start (void)
{
    char certs [600];
    snprintf (certs, sizeof certs, "%s/certs", s_root);
    relais_config_t *config = s_config ("certs");
    //  No folder yet, then an empty one: refused (fail closed)
    CHECK (relais_security_start (config, "intake", true) == RELAIS_ECONFIG);
    CHECK (mkdir (certs, 0700) == 0);
    CHECK (relais_security_start (config, "intake", true) == RELAIS_ECONFIG);
    CHECK (!relais_security_on ());

    CHECK_OK (relais_security_keygen (certs, "intake", "service", NULL, NULL, NULL));
    CHECK_OK (relais_security_keygen (certs, "uasa", "partner", "uasa", NULL, NULL));
    CHECK (relais_security_keygen (certs, "intake", "service", NULL, NULL, NULL) == -EEXIST);
    CHECK (relais_security_keygen (certs, "x", "partner", NULL, NULL, NULL) == -EINVAL);
    CHECK (relais_security_keygen (certs, "Bad Name", "service", NULL, NULL, NULL) == -EINVAL);
    CHECK (relais_security_keygen (certs, "y", "root", NULL, NULL, NULL) == -EINVAL);

    CHECK_OK (relais_security_start (config, "intake", true));
    CHECK (relais_security_on ());
    relais_peer_t peer;
    CHECK (!relais_security_peer (NULL, &peer));        //  no User-Id: not in the roster
    CHECK (!relais_security_peer_user (NULL, &peer));
    CHECK (!relais_security_peer_user ("nobody", &peer));
    CHECK (relais_security_peer_user ("uasa", &peer) && strcmp (peer.role, "partner") == 0
        && strcmp (peer.partner, "uasa") == 0);
    relais_security_stop ();
    CHECK (!relais_security_on ());
    CHECK (relais_security_peer (NULL, &peer) && strcmp (peer.name, "anon") == 0);
    CHECK (relais_security_peer_user ("uasa", &peer) && strcmp (peer.name, "anon") == 0);

    //  A process with no certificate of its own cannot turn CURVE on
    CHECK (relais_security_start (config, "router", false) == RELAIS_ECONFIG);

    //  A secret others can read: refused until it is private again
    char secret [700];
    snprintf (secret, sizeof secret, "%s/uasa.cert_secret", certs);
    CHECK (chmod (secret, 0640) == 0);
    CHECK (relais_security_start (config, "intake", true) == RELAIS_ECONFIG);
    CHECK (chmod (secret, 0600) == 0);
    CHECK_OK (relais_security_start (config, "intake", true));
    relais_security_stop ();
    relais_config_destroy (&config);
}

static void
test_off_by_default (void)
{
    relais_config_t *config = relais_config_load (NULL);
    CHECK (config);
    CHECK_OK (relais_security_declare (config));
    CHECK_OK (relais_security_start (config, "intake", true));
    CHECK (!relais_security_on ());
    relais_config_destroy (&config);
}

//  ---------------------------------------------------------------------------
//  T17: a certificate deleted while its session is open

static int s_received;

//  The server's handler: count, answer "pong"
static void
s_on_message (relais_poller_t *poller, zmsg_t **msg_p, void *arg)
{
    (void) arg;
    s_received++;
    zmsg_t *reply = zmsg_new ();
    zmsg_append (reply, &(zframe_t *) { zmsg_pop (*msg_p) });     //  routing id
    zmsg_addmem (reply, "", 0);
    zmsg_addstr (reply, "pong");
    relais_poller_send (poller, &reply);
}

//  A client DEALER as certificate name (its secret from certs), to the
//  server whose public certificate is server_cert
static zsock_t *
s_client (const char *certs, const char *name, const char *server_cert, const char *endpoint)
{
    char path [700];
    snprintf (path, sizeof path, "%s/%s.cert_secret", certs, name);
    zcert_t *cert = zcert_load (path);
    zcert_t *server = zcert_load (server_cert);
    CHECK (cert && server);
    zsock_t *sock = zsock_new (ZMQ_DEALER);
    CHECK (sock);
    zsock_set_linger (sock, 0);
    zcert_apply (cert, zsock_resolve (sock));
    zsock_set_curve_serverkey (sock, zcert_public_txt (server));
    CHECK (zsock_connect (sock, "%s", endpoint) == 0);
    zcert_destroy (&cert);
    zcert_destroy (&server);
    return sock;
}

//  Send "ping", turn the loop until an answer comes or wait_ms pass;
//  the answer's last frame (a string the caller frees), or NULL
static char *
s_ping (uv_loop_t *loop, zsock_t *client, int wait_ms)
{
    zstr_sendm (client, "");
    zstr_send (client, "ping");
    int64_t end = zclock_mono () + wait_ms;
    while (zclock_mono () < end) {
        uv_run (loop, UV_RUN_NOWAIT);
        if (zsock_events (client) & ZMQ_POLLIN) {
            zmsg_t *msg = zmsg_recv (client);
            zframe_t *last = zmsg_last (msg);
            char *text = zframe_strdup (last);
            zmsg_destroy (&msg);
            return text;
        }
        zclock_sleep (5);
    }
    return NULL;
}

//  The same server on a request poller (relais_poller_new_requests): the
//  request in libzmq's frames, its sender from relais_request_peer
static void
s_on_request (relais_poller_t *poller, relais_request_t *req, int shape, void *arg)
{
    (void) arg;
    relais_peer_t peer;
    CHECK (shape == 0 && req->raw && req->delimiter);
    CHECK (relais_request_peer (req, &peer) && strcmp (peer.role, "partner") == 0);
    size_t size;
    const char *bytes = (const char *) relais_request_bytes (req, &size);
    CHECK (size == 4 && memcmp (bytes, "ping", 4) == 0);
    s_received++;
    CHECK_OK (relais_request_reply (poller, req, "pong", 4));
    CHECK (relais_request_reply (poller, req, "pong", 4) == -EINVAL);  //  one reply each
}

static void
s_revocation (bool requests)
{
    char certs [600], endpoint [700], path [800];
    s_received = 0;
    snprintf (certs, sizeof certs, "%s/revoke-certs%s", s_root, requests? "-requests": "");
    snprintf (endpoint, sizeof endpoint, "ipc://%s/partners%s.ipc", s_root, requests? "-requests": "");
    CHECK_OK (relais_security_keygen (certs, "router", "service", NULL, NULL, NULL));
    CHECK_OK (relais_security_keygen (certs, "uasa", "partner", "uasa", NULL, NULL));
    CHECK_OK (relais_security_keygen (certs, "maraudes", "partner", "maraudes", NULL, NULL));
    snprintf (path, sizeof path, "%s/revoke%s.cfg", s_root, requests? "-requests": "");
    FILE *file = fopen (path, "w");
    CHECK (file);
    fprintf (file, "relais\n    data = \"%s\"\nsecurity\n    curve = true\n    certs = \"%s\"\n"
             "    refresh = 200ms\nrouter\n    partners = \"%s\"\n", s_root, certs, endpoint);
    fclose (file);
    relais_config_t *config = relais_config_load (path);
    CHECK (config);
    CHECK_OK (relais_security_declare (config));
    static const relais_config_key_t router_keys [] = {
        { "partners", "ipc:///nonexistent/p", relais_check_endpoint, "partners" },
        { NULL, NULL, NULL, NULL }
    };
    CHECK_OK (relais_config_declare (config, "router", router_keys));
    CHECK_OK (relais_security_start (config, "router", true));

    uv_loop_t loop;
    uv_loop_init (&loop);
    zsock_t *sock = relais_sock_new (ZMQ_ROUTER, endpoint, RELAIS_SOCK_BIND, 65536);
    CHECK (sock);
    relais_poller_t *poller = requests
        ? relais_poller_new_requests (&loop, &sock, 64, s_on_request, NULL, NULL)
        : relais_poller_new (&loop, &sock, 64, s_on_message, NULL, NULL);
    CHECK (poller);
    char server_cert [700];
    snprintf (server_cert, sizeof server_cert, "%s/router.cert", certs);
    zsock_t *uasa = s_client (certs, "uasa", server_cert, endpoint);
    zsock_t *maraudes = s_client (certs, "maraudes", server_cert, endpoint);
    char *text = s_ping (&loop, uasa, 5000);
    CHECK (text && strcmp (text, "pong") == 0);
    zstr_free (&text);
    text = s_ping (&loop, maraudes, 5000);
    CHECK (text && strcmp (text, "pong") == 0);
    zstr_free (&text);
    CHECK (s_received == 2);

    //  Delete UASA's certificate: the ZAP thread's next refresh revokes it
    relais_security_stats_t stats;
    relais_security_stats (&stats);
    uint64_t revoked = stats.revoked;   //  counted since the process started
    uint64_t generation = relais_security_generation ();
    snprintf (path, sizeof path, "%s/uasa.cert", certs);
    CHECK (unlink (path) == 0);
    int64_t start = zclock_mono ();
    while (relais_security_generation () == generation && zclock_mono () - start < 5000)
        zclock_sleep (20);
    CHECK (relais_security_generation () == generation + 1);
    relais_security_stats (&stats);
    CHECK (stats.revoked == revoked + 1);
    //  The open session: refused, and the service never sees the message
    text = s_ping (&loop, uasa, 5000);
    CHECK (text && strstr (text, "unauthorized") && strstr (text, "revoked"));
    zstr_free (&text);
    CHECK (s_received == 2);
    //  A new handshake with the revoked key: refused, nothing comes back
    uint64_t refused = stats.refused;
    zsock_t *again = s_client (certs, "uasa", server_cert, endpoint);
    text = s_ping (&loop, again, 1500);
    CHECK (text == NULL && s_received == 2);
    relais_security_stats (&stats);
    CHECK (stats.refused > refused);
    //  Others go on as before; a refresh with nothing gone revokes nothing
    text = s_ping (&loop, maraudes, 5000);
    CHECK (text && strcmp (text, "pong") == 0);
    zstr_free (&text);
    CHECK (s_received == 3);
    relais_security_refresh ();
    CHECK (relais_security_generation () == generation + 1);

    zsock_destroy (&uasa);
    zsock_destroy (&again);
    zsock_destroy (&maraudes);
    relais_poller_close (&poller);
    uv_run (&loop, UV_RUN_DEFAULT);
    CHECK (uv_loop_close (&loop) == 0);
    relais_security_stop ();
    relais_config_destroy (&config);
}

static void
test_revocation (void)
{
    s_revocation (false);
}

static void
test_revocation_requests (void)
{
    s_revocation (true);
}

//  A subscriber of a PUB whose certificate is deleted: the PUB is bound
//  again, and the subscriber's reconnection is refused

static zsock_t *
s_subscriber (const char *certs, const char *name, const char *server_cert, const char *endpoint)
{
    char path [700];
    snprintf (path, sizeof path, "%s/%s.cert_secret", certs, name);
    zcert_t *cert = zcert_load (path);
    zcert_t *server = zcert_load (server_cert);
    CHECK (cert && server);
    zsock_t *sock = zsock_new (ZMQ_SUB);
    CHECK (sock);
    zsock_set_linger (sock, 0);
    zsock_set_subscribe (sock, "");
    zcert_apply (cert, zsock_resolve (sock));
    zsock_set_curve_serverkey (sock, zcert_public_txt (server));
    CHECK (zsock_connect (sock, "%s", endpoint) == 0);
    zcert_destroy (&cert);
    zcert_destroy (&server);
    return sock;
}

//  Turn the loop for ms; count what each subscriber received
static void
s_listen (uv_loop_t *loop, zsock_t *a, int *got_a, zsock_t *b, int *got_b, int ms)
{
    int64_t end = zclock_mono () + ms;
    while (zclock_mono () < end) {
        uv_run (loop, UV_RUN_NOWAIT);
        while (zsock_events (a) & ZMQ_POLLIN) {
            zmsg_t *msg = zmsg_recv (a);
            zmsg_destroy (&msg);
            (*got_a)++;
        }
        while (zsock_events (b) & ZMQ_POLLIN) {
            zmsg_t *msg = zmsg_recv (b);
            zmsg_destroy (&msg);
            (*got_b)++;
        }
        zclock_sleep (5);
    }
}

static void
test_revocation_pub (void)
{
    char certs [600], pub [700], fetch [700], path [800], store_dir [700];
    snprintf (certs, sizeof certs, "%s/pub-certs", s_root);
    snprintf (pub, sizeof pub, "ipc://%s/pub.ipc", s_root);
    snprintf (fetch, sizeof fetch, "ipc://%s/fetch.ipc", s_root);
    snprintf (store_dir, sizeof store_dir, "%s/pub-store", s_root);
    CHECK_OK (relais_security_keygen (certs, "intake", "service", NULL, NULL, NULL));
    CHECK_OK (relais_security_keygen (certs, "ops", "operations", NULL, NULL, NULL));
    CHECK_OK (relais_security_keygen (certs, "analytics", "service", NULL, NULL, NULL));
    snprintf (path, sizeof path, "%s/pub.cfg", s_root);
    FILE *file = fopen (path, "w");
    CHECK (file);
    fprintf (file, "relais\n    data = \"%s\"\nsecurity\n    curve = true\n    certs = \"pub-certs\"\n"
             "    refresh = 0\nintake\n    pub = \"%s\"\n    fetch = \"%s\"\n", s_root, pub, fetch);
    fclose (file);
    relais_config_t *config = relais_config_load (path);
    CHECK (config);
    CHECK_OK (relais_security_declare (config));
    static const relais_config_key_t intake_keys [] = {
        { "pub", "ipc:///nonexistent/pub", relais_check_endpoint, "pub" },
        { "fetch", "ipc:///nonexistent/fetch", relais_check_endpoint, "fetch" },
        { NULL, NULL, NULL, NULL }
    };
    CHECK_OK (relais_config_declare (config, "intake", intake_keys));
    CHECK_OK (relais_security_start (config, "intake", true));

    uv_loop_t loop;
    uv_loop_init (&loop);
    relais_store_opts_t opts = { 0, 0, NULL, 0 };
    relais_store_t *store = relais_store_new (store_dir, &opts);
    CHECK (store);
    relais_pub_opts_t pub_opts = { .name = "intake", .pub_endpoint = pub,
                                   .fetch_endpoint = fetch, .heartbeat_ms = 50 };
    relais_pub_t *publisher = relais_pub_new (&loop, store, &pub_opts);
    CHECK (publisher);
    char server_cert [700];
    snprintf (server_cert, sizeof server_cert, "%s/intake.cert", certs);
    zsock_t *ops = s_subscriber (certs, "ops", server_cert, pub);
    zsock_t *analytics = s_subscriber (certs, "analytics", server_cert, pub);
    int got_ops = 0, got_analytics = 0;
    for (int i = 0; i < 100 && (got_ops == 0 || got_analytics == 0); i++)
        s_listen (&loop, ops, &got_ops, analytics, &got_analytics, 50);
    CHECK (got_ops > 0 && got_analytics > 0);      //  heartbeats flow to both

    snprintf (path, sizeof path, "%s/ops.cert", certs);
    CHECK (unlink (path) == 0);
    relais_security_refresh ();
    //  The next heartbeats re-bind; then ops receives nothing more
    s_listen (&loop, ops, &got_ops, analytics, &got_analytics, 500);
    relais_pub_stats_t stats;
    relais_pub_stats (publisher, &stats);
    CHECK (stats.rebinds == 1);
    got_ops = got_analytics = 0;
    s_listen (&loop, ops, &got_ops, analytics, &got_analytics, 1500);
    CHECK (got_ops == 0);
    CHECK (got_analytics > 0);                      //  the others reconnected

    zsock_destroy (&ops);
    zsock_destroy (&analytics);
    relais_pub_close (&publisher);
    uv_run (&loop, UV_RUN_DEFAULT);
    CHECK (uv_loop_close (&loop) == 0);
    relais_store_destroy (&store);
    relais_security_stop ();
    relais_config_destroy (&config);
}

int
main (void)
{
    relais_log_init ("test_security");
    const char *tmp = getenv ("RELAIS_TEST_TMP");
    if (!tmp || !*tmp)
        tmp = "/tmp";
    mkdir (tmp, 0700);
    snprintf (s_root, sizeof s_root, "%s/test_security.%d", tmp, (int) getpid ());
    CHECK (mkdir (s_root, 0700) == 0);
    RUN (test_roles);
    RUN (test_off_by_default);
    RUN (test_keygen_and_start);
    RUN (test_revocation);
    RUN (test_revocation_requests);
    RUN (test_revocation_pub);
    char cmd [600];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", s_root);
    CHECK (system (cmd) == 0);
    fprintf (stderr, "test_security: OK\n");
    return 0;
}
