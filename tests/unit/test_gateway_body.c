/*  gateway_body: HTTP JSON bodies -> intake's wire requests, and replies
    back to JSON. The producer's source always comes from the token, errors
    carry the wire codes and field paths, and what is accepted meets the
    frame limits. */
#include "gateway_body.h"
#include "relais_msg.h"
#include "relais_test.h"

static const msgpack_object *
s_get (const msgpack_object *map, const char *path)
{
    //  "a.b.c" through nested maps
    char key [64];
    const msgpack_object *o = map;
    while (o && *path) {
        size_t n = strcspn (path, ".");
        snprintf (key, sizeof key, "%.*s", (int) n, path);
        o = relais_msg_get (o, key);
        path += n + (path [n] == '.');
    }
    return o;
}

//  Build a request; on success decode it into msg (buffer kept in sbuf).
static int
s_build (gateway_body_kind_t kind, const char *json, msgpack_sbuffer *sbuf,
         relais_msg_t *msg, relais_error_t *err)
{
    gateway_body_spec_t spec = { kind, "mairie-18:k1", 7, "SIG-00000001", "mairie", "Mairie du 18e" };
    msgpack_sbuffer_init (sbuf);
    int rc = gateway_body_request (&spec, json, strlen (json), sbuf, err);
    if (rc == 0)
        CHECK_OK (relais_msg_decode (msg, sbuf->data, sbuf->size, NULL, err));
    return rc;
}

static void
s_expect_error (gateway_body_kind_t kind, const char *json, const char *code, const char *field)
{
    msgpack_sbuffer sbuf;
    relais_msg_t msg;
    relais_error_t err;
    CHECK (s_build (kind, json, &sbuf, &msg, &err) != 0);
    CHECK_STR (err.code, code);
    CHECK_STR (err.field, field);
    CHECK (err.message [0]);
    msgpack_sbuffer_destroy (&sbuf);
}

int
main (void)
{
    msgpack_sbuffer sbuf;
    relais_msg_t msg;
    relais_error_t err;
    uint64_t n;

    //  Submit: the body is the signalement; the source is the token's, only
    //  the contact is kept from the body
    CHECK_OK (s_build (GATEWAY_SUBMIT,
        "{\"persons\": 2, \"source\": {\"kind\": \"115\", \"name\": \"forged\", \"contact\": \"01\"}}",
        &sbuf, &msg, &err));
    CHECK (relais_msg_str_eq (s_get (&msg.root, "op"), "submit"));
    CHECK (relais_msg_str_eq (s_get (&msg.root, "idem"), "mairie-18:k1"));
    CHECK (relais_msg_uint (s_get (&msg.root, "rid"), &n) && n == 7);
    CHECK (relais_msg_str_eq (s_get (&msg.root, "signal.source.kind"), "mairie"));
    CHECK (relais_msg_str_eq (s_get (&msg.root, "signal.source.name"), "Mairie du 18e"));
    CHECK (relais_msg_str_eq (s_get (&msg.root, "signal.source.contact"), "01"));
    CHECK (relais_msg_uint (s_get (&msg.root, "signal.persons"), &n) && n == 2);
    relais_msg_release (&msg);
    msgpack_sbuffer_destroy (&sbuf);

    //  No source in the body: the token's all the same
    CHECK_OK (s_build (GATEWAY_SUBMIT, "{}", &sbuf, &msg, &err));
    CHECK (relais_msg_str_eq (s_get (&msg.root, "signal.source.kind"), "mairie"));
    CHECK (s_get (&msg.root, "signal.source.contact") == NULL);
    relais_msg_release (&msg);
    msgpack_sbuffer_destroy (&sbuf);

    //  Change: {changes} -> update, {close} -> close; /close: {reason}
    CHECK_OK (s_build (GATEWAY_CHANGE, "{\"changes\": {\"tents\": 3}}", &sbuf, &msg, &err));
    CHECK (relais_msg_str_eq (s_get (&msg.root, "op"), "update"));
    CHECK (relais_msg_str_eq (s_get (&msg.root, "id"), "SIG-00000001"));
    CHECK (relais_msg_uint (s_get (&msg.root, "changes.tents"), &n) && n == 3);
    relais_msg_release (&msg);
    msgpack_sbuffer_destroy (&sbuf);
    CHECK_OK (s_build (GATEWAY_CHANGE, "{\"close\": \"resolu\"}", &sbuf, &msg, &err));
    CHECK (relais_msg_str_eq (s_get (&msg.root, "op"), "close"));
    CHECK (relais_msg_str_eq (s_get (&msg.root, "reason"), "resolu"));
    relais_msg_release (&msg);
    msgpack_sbuffer_destroy (&sbuf);
    CHECK_OK (s_build (GATEWAY_CLOSE, "{\"reason\": \"doublon\"}", &sbuf, &msg, &err));
    CHECK (relais_msg_str_eq (s_get (&msg.root, "op"), "close"));
    CHECK (relais_msg_str_eq (s_get (&msg.root, "reason"), "doublon"));
    relais_msg_release (&msg);
    msgpack_sbuffer_destroy (&sbuf);

    //  Errors: wire codes, field paths
    s_expect_error (GATEWAY_SUBMIT, "", RELAIS_CODE_INVALID, "");
    s_expect_error (GATEWAY_SUBMIT, "{\"a\": ", RELAIS_CODE_INVALID, "");
    s_expect_error (GATEWAY_SUBMIT, "[1, 2]", RELAIS_CODE_INVALID, "");
    s_expect_error (GATEWAY_SUBMIT, "{\"a\": 1, \"a\": 2}", RELAIS_CODE_INVALID, "");
    s_expect_error (GATEWAY_SUBMIT, "{\"a\": 1} trailing", RELAIS_CODE_INVALID, "");
    s_expect_error (GATEWAY_CHANGE, "{}", RELAIS_CODE_INVALID, "changes");
    s_expect_error (GATEWAY_CHANGE, "{\"changes\": {}, \"close\": \"resolu\"}", RELAIS_CODE_INVALID, "close");
    s_expect_error (GATEWAY_CHANGE, "{\"close\": 3}", RELAIS_CODE_INVALID, "close");
    s_expect_error (GATEWAY_CLOSE, "{}", RELAIS_CODE_INVALID, "reason");
    s_expect_error (GATEWAY_CLOSE, "{\"reason\": []}", RELAIS_CODE_INVALID, "reason");
    //  Nine maps deep inside the signal: over the wire's depth limit
    s_expect_error (GATEWAY_SUBMIT, "{\"x\": {\"x\": {\"x\": {\"x\": {\"x\": {\"x\": {\"x\": {\"x\": 1}}}}}}}}",
                    RELAIS_CODE_TOO_LARGE, "");
    //  Over the frame size
    size_t big = 70000;
    char *text = (char *) malloc (big + 32);
    CHECK (text);
    strcpy (text, "{\"summary\": \"");
    memset (text + 13, 'a', big);
    strcpy (text + 13 + big, "\"}");
    gateway_body_spec_t spec = { GATEWAY_SUBMIT, "k", 1, NULL, "mairie", "M" };
    msgpack_sbuffer_init (&sbuf);
    CHECK (gateway_body_request (&spec, text, strlen (text), &sbuf, &err) == RELAIS_ETOOLARGE);
    CHECK_STR (err.code, RELAIS_CODE_TOO_LARGE);
    msgpack_sbuffer_destroy (&sbuf);
    free (text);

    //  Replies: rid and the wire idem are left out, the client's key put in
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 4);
    relais_pack_kv_bool (&pk, "ok", true);
    relais_pack_kv_str (&pk, "idem", "mairie-18:k1");
    relais_pack_kv_uint (&pk, "rid", 7);
    relais_pack_kv_str (&pk, "id", "SIG-00000001");
    CHECK_OK (relais_msg_decode (&msg, sbuf.data, sbuf.size, NULL, &err));
    msgpack_sbuffer json;
    msgpack_sbuffer_init (&json);
    CHECK_OK (gateway_body_reply (&msg.root, "k1", &json));
    msgpack_sbuffer_write (&json, "", 1);
    CHECK_STR (json.data, "{\"ok\":true,\"id\":\"SIG-00000001\",\"idem\":\"k1\"}");
    msgpack_sbuffer_destroy (&json);
    msgpack_sbuffer_init (&json);
    CHECK_OK (gateway_body_reply (&msg.root, NULL, &json));
    msgpack_sbuffer_write (&json, "", 1);
    CHECK_STR (json.data, "{\"ok\":true,\"id\":\"SIG-00000001\"}");
    msgpack_sbuffer_destroy (&json);
    relais_msg_release (&msg);
    msgpack_sbuffer_destroy (&sbuf);

    //  Errors as JSON, and their HTTP status
    relais_error_set (&err, RELAIS_CODE_INVALID, "signal.persons", "must be an integer from 1 to %d", 10000);
    msgpack_sbuffer_init (&json);
    gateway_body_error (&err, &json);
    msgpack_sbuffer_write (&json, "", 1);
    CHECK_STR (json.data, "{\"ok\":false,\"code\":\"invalid\",\"field\":\"signal.persons\","
                          "\"message\":\"must be an integer from 1 to 10000\"}");
    msgpack_sbuffer_destroy (&json);
    CHECK (gateway_body_status (RELAIS_CODE_INVALID) == 400);
    CHECK (gateway_body_status (RELAIS_CODE_TOO_LARGE) == 413);
    CHECK (gateway_body_status (RELAIS_CODE_NOT_FOUND) == 404);
    CHECK (gateway_body_status (RELAIS_CODE_CONFLICT) == 409);
    CHECK (gateway_body_status (RELAIS_CODE_UNAUTHORIZED) == 403);
    CHECK (gateway_body_status (RELAIS_CODE_UNAVAILABLE) == 503);
    CHECK (gateway_body_status ("something_new") == 502);
    printf ("test_gateway_body: OK\n");
    return 0;
}
