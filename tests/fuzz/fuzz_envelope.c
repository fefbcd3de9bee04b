/*  =========================================================================
    fuzz_envelope - libFuzzer target: one event frame as a subscriber reads it

    Decodes the bytes with the project's pre-walk (relais_msg_decode), then
    validates them as an event envelope and as a heartbeat, as relais_sub
    does with every frame from the bus and every event of a fetch reply.
    Any crash, leak, or allocation over -malloc_limit_mb is a bug.
    =========================================================================
*/
#include "relais_envelope.h"
#include "relais_msg.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    relais_msg_t msg;
    relais_error_t err;
    if (relais_msg_decode (&msg, data, size, NULL, &err) == 0) {
        relais_envelope_t env;
        relais_envelope_decode (&msg.root, false, &env, &err);
        relais_envelope_decode (&msg.root, true, &env, &err);
        //  A fetch reply carries events in an array
        const msgpack_object *events = relais_msg_get (&msg.root, "events");
        if (events && events->type == MSGPACK_OBJECT_ARRAY)
            for (uint32_t i = 0; i < events->via.array.size; i++)
                relais_envelope_decode (&events->via.array.ptr [i], false, &env, &err);
        relais_msg_release (&msg);
    }
    return 0;
}
