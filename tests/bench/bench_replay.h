/*  =========================================================================
    bench_replay - the replay client of relais-bench (phase 6) and of
    relais-peerbench: a whole log read back through fetch (proto/README §4)

    @header
    Pages of `page` events (fetch max) and a byte budget of `max_bytes`
    (fetch max_bytes, 0: not asked, the server's 1 MiB default) are asked
    with up to `window` requests in flight: the next pages are asked before
    the current reply arrives, on the guess that the next page holds as many
    events as the last one (at first: `page`). A page that ends elsewhere
    (the byte budget reached, the end of the log) makes the guess wrong:
    the replies to the requests sent on it are dropped (their from is not
    the next seq due) and the next page is asked from the right seq. Each reply is read with relais_fetch_parse (no msgpack objects are
    built); every event's seq is checked: contiguous, in order, from 1 to
    the log's last (as the first reply gives it).
    @discuss
    window 1 and max_bytes 0 make the old client: one request at a time,
    the default byte budget.
    =========================================================================
*/
#ifndef BENCH_REPLAY_H_INCLUDED
#define BENCH_REPLAY_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BENCH_REPLAY_WINDOW_MAX     8

typedef struct {
    //  what to ask
    uint32_t page;                  //  events per fetch (max), >= 1
    uint32_t window;                //  requests in flight, 1..BENCH_REPLAY_WINDOW_MAX
    size_t max_bytes;               //  fetch max_bytes, 0: not asked
    uint64_t stall_ms;              //  no reply for this long: fail
    volatile int *interrupted;      //  stop when *interrupted (may be NULL)
    //  what happened
    uint64_t events;                //  events read, seqs checked
    uint64_t last;                  //  the log's last, from the first reply
    uint64_t requests;              //  fetches sent
    uint64_t dropped;               //  replies to a wrong guess, dropped
    uint64_t bytes;                 //  bytes of the replies read
    uint64_t start_us, end_us;      //  monotonic, first send to last reply
    char error [256];
} bench_replay_t;

//  Replay the log behind the fetch endpoint from seq 1 to its last, over
//  a new DEALER. Returns 0 when every event from 1 to last arrived in
//  order, else a negative code with self->error set.
int
    bench_replay_run (const char *endpoint, bench_replay_t *self);

#endif
