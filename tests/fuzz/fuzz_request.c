/*  =========================================================================
    fuzz_request - libFuzzer target: a producer's request as intake reads it

    Decodes a frame, then parses "signal" as a submit does and "changes" as
    an update does (onto the parsed signal, or onto an empty one), and packs
    the results back as the public view and the full record - the path every
    producer's bytes take before anything is stored. Also re-parses the full
    record it packed: what intake stores must read back.
    =========================================================================
*/
#include "relais_msg.h"
#include "relais_signal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

#define S_NOW 1767225600000000ULL       //  2026-01-01, fixed: runs must replay

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    relais_msg_t msg;
    relais_error_t err;
    if (relais_msg_decode (&msg, data, size, NULL, &err))
        return 0;
    relais_signal_t *sig = (relais_signal_t *) calloc (1, sizeof *sig);
    if (!sig) {
        relais_msg_release (&msg);
        return 0;
    }
    const msgpack_object *signal = relais_msg_get (&msg.root, "signal");
    bool parsed = signal && relais_signal_parse (signal, "signal", S_NOW, sig, &err) == 0;
    if (!parsed)
        parsed = relais_signal_parse (&msg.root, "signal", S_NOW, sig, &err) == 0;
    const msgpack_object *changes = relais_msg_get (&msg.root, "changes");
    if (changes)
        relais_signal_apply_changes (sig, changes, "changes", S_NOW, &err);
    if (parsed) {
        msgpack_sbuffer sbuf;
        msgpack_sbuffer_init (&sbuf);
        msgpack_packer pk;
        msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
        relais_signal_pack_public (&pk, sig, 0);
        msgpack_sbuffer_clear (&sbuf);
        relais_signal_pack_full (&pk, sig);
        relais_msg_t back;
        relais_msg_limits_t limits = { 4 * RELAIS_MSG_MAX_BYTES, 0, 0 };
        if (relais_msg_decode (&back, sbuf.data, sbuf.size, &limits, &err) == 0) {
            relais_signal_t *again = (relais_signal_t *) calloc (1, sizeof *again);
            //  What intake packed, it must read back
            if (again && relais_signal_parse (&back.root, "signal", S_NOW, again, &err) != 0)
                abort ();
            free (again);
            relais_msg_release (&back);
        }
        msgpack_sbuffer_destroy (&sbuf);
    }
    free (sig);
    relais_msg_release (&msg);
    return 0;
}
