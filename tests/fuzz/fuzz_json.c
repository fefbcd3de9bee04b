/*  =========================================================================
    fuzz_json - libFuzzer target: JSON text to MessagePack, as `relais
    submit` (and any JSON front end) converts a producer's file

    Reads every value of the input with the CLI's reader (NDJSON, objects
    one after the other), packs each as MessagePack, and decodes the result
    with the project's pre-walk: the conversion must never crash and what it
    produces must be valid MessagePack within the limits or refused cleanly.
    =========================================================================
*/
#include "cli_json.h"
#include "relais_msg.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    cli_json_reader_t reader;
    cli_json_reader_init (&reader, (const char *) data, size);
    for (int values = 0; values < 64; values++) {
        json_t *value = NULL;
        int line = 0;
        char why [256];
        if (cli_json_reader_next (&reader, &value, &line, why, sizeof why) != 1)
            break;
        msgpack_sbuffer sbuf;
        msgpack_sbuffer_init (&sbuf);
        msgpack_packer pk;
        msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
        if (cli_json_pack (&pk, value, why, sizeof why) == 0) {
            relais_msg_t msg;
            relais_error_t err;
            if (relais_msg_decode (&msg, sbuf.data, sbuf.size, NULL, &err) == 0) {
                char *text = cli_json_dumps (&msg.root, NULL);
                free (text);
                relais_msg_release (&msg);
            }
        }
        msgpack_sbuffer_destroy (&sbuf);
        json_decref (value);
    }
    return 0;
}
