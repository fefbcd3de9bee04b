/*  =========================================================================
    fuzz_fetch - libFuzzer target: one fetch reply as a replay client reads it

    Reads the bytes with relais_fetch_parse (the bounded walk of the fetch
    reader, no msgpack objects built), twice with one page (as a client
    reuses it), then under tight limits. For every event span it returns,
    the span must lie inside the input, and the full decoder must accept or
    refuse it without trouble (relais_msg_decode, relais_envelope_decode),
    as a client that reads more than the seq does. Any crash, leak, read
    outside the input, or allocation over -malloc_limit_mb is a bug.
    =========================================================================
*/
#include "relais_envelope.h"
#include "relais_fetch.h"
#include "relais_msg.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    relais_fetch_page_t page;
    memset (&page, 0, sizeof page);
    relais_error_t err;
    for (int pass = 0; pass < 2; pass++) {
        if (relais_fetch_parse (&page, data, size, NULL, &err) != 0) {
            if (page.count != 0)
                abort ();
            continue;
        }
        for (size_t i = 0; i < page.count; i++) {
            const relais_fetch_event_t *event = &page.events [i];
            if (event->data < data || event->size == 0
            ||  event->data + event->size > data + size || event->seq == 0)
                abort ();
            relais_msg_t msg;
            if (relais_msg_decode (&msg, event->data, event->size, NULL, &err) == 0) {
                relais_envelope_t env;
                if (relais_envelope_decode (&msg.root, false, &env, &err) == 0
                &&  env.seq != event->seq)
                    abort ();           //  the reader and the decoder disagree
                relais_msg_release (&msg);
            }
        }
    }
    relais_msg_limits_t tight = { 4096, 4, 64 };
    relais_fetch_parse (&page, data, size, &tight, &err);
    relais_fetch_page_release (&page);
    return 0;
}
