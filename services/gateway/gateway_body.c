/*  =========================================================================
    gateway_body - HTTP JSON bodies <-> the wire requests of intake
    (see gateway_body.h)
    =========================================================================
*/
#include "gateway_body.h"
#include "cli_json.h"
#include "relais_msg.h"

#include <string.h>

static int
s_fail (relais_error_t *err, const char *code, const char *field, const char *message)
{
    relais_error_set (err, code, field, "%s", message);
    return strcmp (code, RELAIS_CODE_TOO_LARGE) == 0? RELAIS_ETOOLARGE: RELAIS_EMALFORMED;
}

//  The producer's source replaces whatever the body said; a contact (how
//  to call the reporter back) is the only part of it the body may give.
static void
s_set_source (json_t *signal, const gateway_body_spec_t *spec)
{
    json_t *source = json_object ();
    json_object_set_new (source, "kind", json_string (spec->source_kind? spec->source_kind: ""));
    json_object_set_new (source, "name", json_string (spec->source_name? spec->source_name: ""));
    json_t *given = json_object_get (signal, "source");
    json_t *contact = json_is_object (given)? json_object_get (given, "contact"): NULL;
    if (json_is_string (contact))
        json_object_set (source, "contact", contact);
    json_object_set_new (signal, "source", source);
}

int
gateway_body_request (const gateway_body_spec_t *spec, const char *body, size_t size,
                      msgpack_sbuffer *out, relais_error_t *err)
{
    relais_error_clear (err);
    json_error_t jerr;
    json_t *root = json_loadb (body, size, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return s_fail (err, RELAIS_CODE_INVALID, "", "the body must be one JSON object");
    if (!json_is_object (root)) {
        json_decref (root);
        return s_fail (err, RELAIS_CODE_INVALID, "", "the body must be a JSON object");
    }
    json_t *request = json_object ();
    json_object_set_new (request, "rid", json_integer ((json_int_t) (spec->rid & INT64_MAX)));
    json_object_set_new (request, "idem", json_string (spec->idem? spec->idem: ""));
    int rc = 0;
    if (spec->kind == GATEWAY_SUBMIT) {
        json_object_set_new (request, "op", json_string ("submit"));
        s_set_source (root, spec);
        json_object_set (request, "signal", root);
    }
    else {
        json_object_set_new (request, "id", json_string (spec->id? spec->id: ""));
        json_t *changes = json_object_get (root, "changes");
        json_t *close = json_object_get (root, "close");
        json_t *reason = json_object_get (root, "reason");
        if (spec->kind == GATEWAY_CLOSE && !close)
            close = reason;
        if (spec->kind == GATEWAY_CHANGE && changes && close)
            rc = s_fail (err, RELAIS_CODE_INVALID, "close", "give either changes or close, not both");
        else
        if (close) {
            if (!json_is_string (close))
                rc = s_fail (err, RELAIS_CODE_INVALID, reason == close? "reason": "close",
                             "must be a closure code (pris_en_charge, resolu, doublon, erreur, sans_suite, autre)");
            json_object_set_new (request, "op", json_string ("close"));
            json_object_set (request, "reason", close);
        }
        else
        if (spec->kind == GATEWAY_CHANGE && changes) {
            json_object_set_new (request, "op", json_string ("update"));
            json_object_set (request, "changes", changes);
        }
        else
            rc = s_fail (err, RELAIS_CODE_INVALID, spec->kind == GATEWAY_CLOSE? "reason": "changes",
                         spec->kind == GATEWAY_CLOSE? "required, a closure code"
                                                    : "required: {\"changes\": {...}} or {\"close\": \"<reason>\"}");
    }
    if (rc == 0) {
        msgpack_packer pk;
        msgpack_packer_init (&pk, out, msgpack_sbuffer_write);
        char why [128];
        size_t start = out->size;
        if (cli_json_pack (&pk, request, why, sizeof why))
            rc = s_fail (err, RELAIS_CODE_TOO_LARGE, "", "the body nests too deep");
        else {
            //  The same gate as every receiver: what we send meets §1.1
            relais_msg_t msg;
            rc = relais_msg_decode (&msg, out->data + start, out->size - start, NULL, err);
            if (rc == 0)
                relais_msg_release (&msg);
        }
    }
    json_decref (request);
    json_decref (root);
    return rc;
}

int
gateway_body_reply (const msgpack_object *reply, const char *idem, msgpack_sbuffer *out)
{
    if (reply->type != MSGPACK_OBJECT_MAP)
        return cli_json_write (out, reply, NULL);
    msgpack_sbuffer_write (out, "{", 1);
    bool first = true;
    for (uint32_t i = 0; i < reply->via.map.size; i++) {
        const msgpack_object_kv *kv = &reply->via.map.ptr [i];
        if (kv->key.type != MSGPACK_OBJECT_STR
        ||  relais_msg_str_eq (&kv->key, "rid")
        ||  relais_msg_str_eq (&kv->key, "idem"))
            continue;
        if (!first)
            msgpack_sbuffer_write (out, ",", 1);
        first = false;
        cli_json_write_str (out, kv->key.via.str.ptr, kv->key.via.str.size);
        msgpack_sbuffer_write (out, ":", 1);
        if (cli_json_write (out, &kv->val, NULL))
            return -1;
    }
    if (idem) {
        msgpack_sbuffer_write (out, first? "\"idem\":": ",\"idem\":", first? 7: 8);
        cli_json_write_str (out, idem, strlen (idem));
    }
    msgpack_sbuffer_write (out, "}", 1);
    return 0;
}

void
gateway_body_error (const relais_error_t *err, msgpack_sbuffer *out)
{
    msgpack_sbuffer_write (out, "{\"ok\":false,\"code\":", 19);
    cli_json_write_str (out, err->code, strlen (err->code));
    if (err->field [0]) {
        msgpack_sbuffer_write (out, ",\"field\":", 9);
        cli_json_write_str (out, err->field, strlen (err->field));
    }
    msgpack_sbuffer_write (out, ",\"message\":", 11);
    cli_json_write_str (out, err->message, strlen (err->message));
    msgpack_sbuffer_write (out, "}", 1);
}

int
gateway_body_status (const char *code)
{
    static const struct { const char *code; int status; } map [] = {
        { RELAIS_CODE_INVALID, 400 }, { RELAIS_CODE_TOO_LARGE, 413 },
        { RELAIS_CODE_UNKNOWN_OP, 400 }, { RELAIS_CODE_UNAUTHORIZED, 403 },
        { RELAIS_CODE_NOT_FOUND, 404 }, { RELAIS_CODE_CONFLICT, 409 },
        { RELAIS_CODE_UNAVAILABLE, 503 }, { RELAIS_CODE_GONE, 410 },
        { "unauthenticated", 401 }, { "overloaded", 429 }
    };
    for (size_t i = 0; i < sizeof map / sizeof map [0]; i++)
        if (code && strcmp (code, map [i].code) == 0)
            return map [i].status;
    return 502;
}
