/*  =========================================================================
    gateway_body - HTTP JSON bodies <-> the wire requests of intake

    @header
    The gateway takes JSON from people's forms and apps and speaks
    MessagePack to intake. This class turns a POST body into one submit,
    update or close request (proto/README.md §5), with the producer's
    source taken from its token, never from the body; and turns any reply
    back into JSON. JSON is parsed by jansson and packed by cli_json (the
    same conversion as `relais submit`); the packed request is then checked
    with relais_msg_decode, the project's one gate for untrusted msgpack,
    so what leaves the gateway already meets the frame limits (§1.1).
    @discuss
    Errors use the wire shape: code "invalid" (not JSON, not an object, a
    key of the wrong type), "too_large" (over the frame limits), with the
    field path of the request ("signal", "changes", "reason", "close").
    The fuzz target tests/fuzz/fuzz_gateway_body.c drives
    gateway_body_request with arbitrary bytes.
    =========================================================================
*/
#ifndef GATEWAY_BODY_H_INCLUDED
#define GATEWAY_BODY_H_INCLUDED

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include "relais_err.h"

typedef enum {
    GATEWAY_SUBMIT,                 //  POST /v1/signalements: the body is the signalement
    GATEWAY_CHANGE,                 //  POST /v1/signalements/{id}: {changes} or {close}
    GATEWAY_CLOSE                   //  POST /v1/signalements/{id}/close: {reason} (or {close})
} gateway_body_kind_t;

typedef struct {
    gateway_body_kind_t kind;
    const char *idem;               //  wire idem (already namespaced by the caller)
    uint64_t rid;                   //  echoed by intake; matches the reply
    const char *id;                 //  "SIG-..." for CHANGE and CLOSE
    const char *source_kind;        //  the producer's identity (SUBMIT)
    const char *source_name;
} gateway_body_spec_t;

//  Build the msgpack request for body (size bytes of JSON) into out
//  (appended). Returns 0, or RELAIS_EMALFORMED / RELAIS_ETOOLARGE with err
//  set; out then holds garbage the caller discards.
int
    gateway_body_request (const gateway_body_spec_t *spec, const char *body,
                          size_t size, msgpack_sbuffer *out, relais_error_t *err);

//  Write a wire reply map as JSON into out (appended, no newline). The
//  reply's "idem" (namespaced by the gateway) and "rid" are left out; when
//  idem is not NULL it is written instead (the key the HTTP client gave).
//  Returns 0 or -1 (too deep).
int
    gateway_body_reply (const msgpack_object *reply, const char *idem,
                        msgpack_sbuffer *out);

//  Write an error {ok:false, code, field?, message} as JSON into out.
void
    gateway_body_error (const relais_error_t *err, msgpack_sbuffer *out);

//  The HTTP status for a wire error code (400, 401, 403, 404, 409, 410,
//  413, 503...).
int
    gateway_body_status (const char *code);

#endif
