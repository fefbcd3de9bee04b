/*  The client side of a mailbox: the hello and op bodies, the welcome rule
    (a record beyond the mailbox moves back to its acked mark), and one run
    against a scripted ROUTER in a thread: welcome, deliveries 1 and 2, a
    redelivery of 1, then 3; the follower hands 1..3 to a file sink once
    each, writes the state file, acknowledges up to 3 and stops at its
    count. */
#include "notify_follower.h"
#include "relais_test.h"

#include <pthread.h>
#include <unistd.h>

static char s_endpoint [128];

static void
s_decode (const msgpack_sbuffer *sbuf, relais_msg_t *msg)
{
    relais_error_t err;
    CHECK_OK (relais_msg_decode (msg, sbuf->data, sbuf->size, NULL, &err));
}

static void
test_pack (void)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    notify_follower_pack_hello (&sbuf, "producer", "115:paris", 7);
    relais_msg_t msg;
    s_decode (&sbuf, &msg);
    uint64_t after = 0;
    CHECK (msg.root.type == MSGPACK_OBJECT_MAP && msg.root.via.map.size == 3);
    CHECK (relais_msg_str_eq (relais_msg_get (&msg.root, "op"), "hello"));
    CHECK (relais_msg_str_eq (relais_msg_get (&msg.root, "producer"), "115:paris"));
    CHECK (relais_msg_uint (relais_msg_get (&msg.root, "after"), &after) && after == 7);
    relais_msg_release (&msg);

    msgpack_sbuffer_clear (&sbuf);
    notify_follower_pack_op (&sbuf, "ping", NULL, 0);
    s_decode (&sbuf, &msg);
    CHECK (msg.root.via.map.size == 1 && relais_msg_str_eq (relais_msg_get (&msg.root, "op"), "ping"));
    relais_msg_release (&msg);

    msgpack_sbuffer_clear (&sbuf);
    notify_follower_pack_op (&sbuf, "ack", "upto", 12);
    s_decode (&sbuf, &msg);
    uint64_t upto = 0;
    CHECK (msg.root.via.map.size == 2 && relais_msg_str_eq (relais_msg_get (&msg.root, "op"), "ack"));
    CHECK (relais_msg_uint (relais_msg_get (&msg.root, "upto"), &upto) && upto == 12);
    relais_msg_release (&msg);

    //  welcome {acked: 4, last: 9}
    msgpack_sbuffer_clear (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 3);
    relais_pack_kv_str (&pk, "op", "welcome");
    relais_pack_kv_uint (&pk, "acked", 4);
    relais_pack_kv_uint (&pk, "last", 9);
    s_decode (&sbuf, &msg);
    uint64_t last = 9, box_last = 0;
    CHECK (!notify_follower_welcome (&msg.root, &last, &box_last) && last == 9);
    last = 12;
    CHECK (notify_follower_welcome (&msg.root, &last, &box_last) && last == 4 && box_last == 9);
    relais_msg_release (&msg);
    //  Not a welcome: nothing moves
    msgpack_sbuffer_clear (&sbuf);
    notify_follower_pack_op (&sbuf, "deliver", "last", 1);
    s_decode (&sbuf, &msg);
    last = 12;
    CHECK (!notify_follower_welcome (&msg.root, &last, NULL) && last == 12);
    relais_msg_release (&msg);
    msgpack_sbuffer_destroy (&sbuf);
}

//  ---------------------------------------------------------------------------

static int s_acked_upto;                //  what the server was acknowledged
static int s_hello_after = -1;

static void
s_send (zsock_t *router, zframe_t *identity, msgpack_sbuffer *sbuf)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addmem (msg, zframe_data (identity), zframe_size (identity));
    zmsg_addmem (msg, "", 0);
    zmsg_addmem (msg, sbuf->data, sbuf->size);
    CHECK (zmsg_send (&msg, router) == 0);
    msgpack_sbuffer_clear (sbuf);
}

static void
s_deliver (zsock_t *router, zframe_t *identity, msgpack_sbuffer *sbuf, uint64_t mseq)
{
    msgpack_packer pk;
    msgpack_packer_init (&pk, sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 4);
    relais_pack_kv_str (&pk, "op", "deliver");
    relais_pack_kv_uint (&pk, "mseq", mseq);
    relais_pack_kv_str (&pk, "key", "SIG-00000001");
    relais_pack_kv_str (&pk, "type", "status.changed");
    s_send (router, identity, sbuf);
}

//  The server: hello, welcome, 1, 2, 1 again, 3; then wait for the ack of 3
static void *
s_server (void *arg)
{
    zsock_t *router = (zsock_t *) arg;
    zsock_set_rcvtimeo (router, 10000);
    zmsg_t *msg = zmsg_recv (router);
    CHECK (msg && zmsg_size (msg) == 3);
    zframe_t *identity = zmsg_pop (msg);
    zframe_t *data = zmsg_last (msg);
    relais_msg_t m;
    relais_error_t err;
    CHECK_OK (relais_msg_decode (&m, zframe_data (data), zframe_size (data), NULL, &err));
    CHECK (relais_msg_str_eq (relais_msg_get (&m.root, "op"), "hello"));
    CHECK (relais_msg_str_eq (relais_msg_get (&m.root, "partner"), "uasa"));
    uint64_t after = 99;
    CHECK (relais_msg_uint (relais_msg_get (&m.root, "after"), &after));
    s_hello_after = (int) after;
    relais_msg_release (&m);
    zmsg_destroy (&msg);

    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 3);
    relais_pack_kv_str (&pk, "op", "welcome");
    relais_pack_kv_uint (&pk, "acked", 0);
    relais_pack_kv_uint (&pk, "last", 3);
    s_send (router, identity, &sbuf);
    s_deliver (router, identity, &sbuf, 1);
    s_deliver (router, identity, &sbuf, 2);
    s_deliver (router, identity, &sbuf, 1);
    s_deliver (router, identity, &sbuf, 3);
    while (s_acked_upto < 3 && (msg = zmsg_recv (router))) {
        data = zmsg_last (msg);
        if (relais_msg_decode (&m, zframe_data (data), zframe_size (data), NULL, &err) == 0) {
            uint64_t upto = 0;
            if (relais_msg_str_eq (relais_msg_get (&m.root, "op"), "ack")
            &&  relais_msg_uint (relais_msg_get (&m.root, "upto"), &upto))
                s_acked_upto = (int) upto;
            relais_msg_release (&m);
        }
        zmsg_destroy (&msg);
    }
    msgpack_sbuffer_destroy (&sbuf);
    zframe_destroy (&identity);
    return NULL;
}

static zsock_t *
s_connect (const char *endpoint, void *arg)
{
    zsock_t *sock = zsock_new_dealer (endpoint);
    if (sock)
        zsock_set_linger (sock, 1000);
    return sock;
}

static int
s_format (const msgpack_object *deliver, msgpack_sbuffer *line, void *arg)
{
    uint64_t mseq = 0;
    CHECK (relais_msg_uint (relais_msg_get (deliver, "mseq"), &mseq));
    char text [64];
    int n = snprintf (text, sizeof text, "{\"mseq\":%llu}", (unsigned long long) mseq);
    msgpack_sbuffer_write (line, text, (size_t) n);
    (*(int *) arg)++;
    return 0;
}

static void
s_say (bool error, const char *text, void *arg)
{
    fprintf (stderr, "    said: %s\n", text);
}

static void
test_run (void)
{
    char dir [] = "/tmp/relais-test-follower-XXXXXX";
    CHECK (mkdtemp (dir));
    char spec [128], state [128];
    snprintf (s_endpoint, sizeof s_endpoint, "ipc://%s/box", dir);
    snprintf (spec, sizeof spec, "file:%s/sink.ndjson", dir);
    snprintf (state, sizeof state, "%s/notify.state", dir);
    zsock_t *router = zsock_new_router (s_endpoint);
    CHECK (router);
    pthread_t server;
    CHECK (pthread_create (&server, NULL, s_server, router) == 0);

    char why [128];
    notify_sink_t *sink = notify_sink_new (spec, why, sizeof why);
    CHECK (sink);
    int formatted = 0;
    notify_follower_opts_t opts = {
        .endpoint = s_endpoint, .who_key = "partner", .name = "uasa", .peer = "router",
        .heartbeat_ms = 1000, .sink = sink, .state_path = state, .count = 3,
        .connect = s_connect, .format = s_format, .say = s_say, .arg = &formatted
    };
    uint64_t last = 0, handled = 0;
    CHECK (notify_follower_run (&opts, &last, &handled) == 0);
    CHECK (last == 3 && handled == 3);
    CHECK (formatted == 3);             //  the redelivery of 1 was not handed again
    CHECK (pthread_join (server, NULL) == 0);
    CHECK (s_hello_after == 0);
    CHECK (s_acked_upto == 3);
    uint64_t recorded = 0;
    CHECK (notify_state_read (state, &recorded) == 0 && recorded == 3);
    CHECK (notify_sink_last (sink) == 3);
    notify_sink_destroy (&sink);
    zsock_destroy (&router);
    char cmd [160];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK (system (cmd) == 0);
}

int
main (void)
{
    zsys_handler_set (NULL);
    RUN (test_pack);
    RUN (test_run);
    printf ("test_notify_follower: OK\n");
    return 0;
}
