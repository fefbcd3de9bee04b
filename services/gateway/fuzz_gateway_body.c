/*  =========================================================================
    fuzz_gateway_body - libFuzzer target: HTTP JSON body -> wire request

    The first byte picks the kind (submit, change, close); the rest is the
    body. Whatever the bytes, gateway_body_request must return cleanly, and
    when it accepts them its output must decode under the wire limits and
    render back to JSON.
    =========================================================================
*/
#include "gateway_body.h"
#include "relais_msg.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    gateway_body_spec_t spec = {
        (gateway_body_kind_t) (data [0] % 3), "fuzz:idem-1", 42, "SIG-00000001",
        "mairie", "Mairie du 18e"
    };
    msgpack_sbuffer out;
    msgpack_sbuffer_init (&out);
    relais_error_t err;
    int rc = gateway_body_request (&spec, (const char *) data + 1, size - 1, &out, &err);
    if (rc == 0) {
        relais_msg_t msg;
        if (relais_msg_decode (&msg, out.data, out.size, NULL, &err) != 0)
            abort ();                   //  accepted output must meet the limits
        const msgpack_object *op = relais_msg_get (&msg.root, "op");
        if (!op || op->type != MSGPACK_OBJECT_STR)
            abort ();
        if (spec.kind == GATEWAY_SUBMIT) {
            //  The source is always the token's
            const msgpack_object *source = relais_msg_get (relais_msg_get (&msg.root, "signal"), "source");
            if (!relais_msg_str_eq (relais_msg_get (source, "name"), "Mairie du 18e"))
                abort ();
        }
        msgpack_sbuffer json;
        msgpack_sbuffer_init (&json);
        gateway_body_reply (&msg.root, "key", &json);
        msgpack_sbuffer_destroy (&json);
        relais_msg_release (&msg);
    }
    else
    if (!err.code || !*err.code)
        abort ();                       //  a refusal always says why
    msgpack_sbuffer_destroy (&out);
    return 0;
}
