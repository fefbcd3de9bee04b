/*  =========================================================================
    fuzz_router_mailbox - libFuzzer target: a notifier's message on the
    router's partners endpoint

    A real router server (rules of DOMAIN.md, its own store, its endpoints
    bound on ipc:// in a temporary folder) receives each input as the data
    frame of a message from one notifier: exactly the path of hello, ack,
    refuse and ping. Its mailboxes hold open assignments from two reports
    applied at start, so acks and refusals reach the escalation code rather
    than stopping at not_found. State carries over from input to input, as
    it does for a live notifier: sessions open, assignments get acked or
    refused. Replies go to an identity nobody holds and are dropped. Any
    crash, leak or oversized allocation is a bug; every refusal must be a
    clean error.
    =========================================================================
*/
#include "router_server.h"
#include "relais_deploy.h"
#include "relais_log.h"
#include "relais_msg.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);
int LLVMFuzzerInitialize (int *argc, char ***argv);

#define S_NOW 1767225600000000ULL

static uv_loop_t s_loop;
static relais_config_t *s_config;
static router_server_t *s_server;
static char s_dir [64];

static void
s_cleanup (void)
{
    char cmd [96];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    if (system (cmd) != 0)
        fprintf (stderr, "fuzz_router_mailbox: could not remove %s\n", s_dir);
}

//  A qualified report of arrondissement arr, as intake's event view
static void
s_apply_report (uint64_t seq, const char *id, uint64_t arr, const char *place_kind)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 6);
    relais_pack_kv_uint (&pk, "level", 2);
    relais_pack_str (&pk, "place");
    msgpack_pack_map (&pk, 2);
    relais_pack_kv_uint (&pk, "arrondissement", arr);
    relais_pack_kv_str (&pk, "kind", place_kind);
    relais_pack_str (&pk, "reasons");
    msgpack_pack_array (&pk, 1);
    relais_pack_str (&pk, "campement");
    relais_pack_str (&pk, "publics");
    msgpack_pack_array (&pk, 1);
    relais_pack_str (&pk, "famille");
    relais_pack_str (&pk, "person_refs");
    msgpack_pack_array (&pk, 0);
    relais_pack_kv_uint (&pk, "persons", 4);
    relais_msg_t body;
    relais_error_t err;
    if (relais_msg_decode (&body, sbuf.data, sbuf.size, NULL, &err))
        abort ();
    relais_envelope_t env = { .v = 1, .src = "intake", .seq = seq, .ts = S_NOW,
                              .type = "signal.created", .body = &body.root };
    snprintf (env.key, sizeof env.key, "%s", id);
    if (router_server_apply (s_server, "signal.created", &env))
        abort ();
    relais_msg_release (&body);
    msgpack_sbuffer_destroy (&sbuf);
}

//  Set up once, outside the inputs: LMDB and libzmq allocate at open what
//  -malloc_limit_mb would otherwise charge to the first input
int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
    relais_log_init ("fuzz_router_mailbox");
    relais_log_level (RELAIS_LOG_ERROR);
    zsys_handler_set (NULL);
    snprintf (s_dir, sizeof s_dir, "/tmp/fuzz_router_mailbox.%d", (int) getpid ());
    if (mkdir (s_dir, 0700))
        abort ();
    atexit (s_cleanup);
    char path [128];
    snprintf (path, sizeof path, "%s/relais.cfg", s_dir);
    FILE *file = fopen (path, "w");
    if (!file)
        abort ();
    fprintf (file, "relais\n    data = \"%s/var\"\n", s_dir);
    fprintf (file, "intake\n");
    const char *intake [] = { "submit", "pub", "fetch", "records", NULL };
    for (int i = 0; intake [i]; i++)
        fprintf (file, "    %s = \"ipc://%s/intake-%s\"\n", intake [i], s_dir, intake [i]);
    fprintf (file, "router\n");
    const char *router [] = { "pub", "fetch", "partners", "api", NULL };
    for (int i = 0; router [i]; i++)
        fprintf (file, "    %s = \"ipc://%s/router-%s\"\n", router [i], s_dir, router [i]);
    fclose (file);
    s_config = relais_config_load (path);
    if (!s_config || relais_deploy_declare (s_config) || router_declare (s_config))
        abort ();
    uv_loop_init (&s_loop);
    s_server = router_server_new (&s_loop, s_config);
    if (!s_server || router_server_start (s_server))
        abort ();
    //  Mailboxes of cellule-18 (one assignment), uasa and mus (the other)
    s_apply_report (1, "SIG-00000001", 18, "gare");
    s_apply_report (2, "SIG-00000002", 12, "domaine_municipal");
    return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "notifier");
    zmsg_addmem (msg, "", 0);
    zmsg_addmem (msg, data, size);
    router_server_partner_message (s_server, &msg);
    zmsg_destroy (&msg);
    return 0;
}
