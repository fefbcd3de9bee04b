/*  =========================================================================
    peerbench - the same workload against Relais intake and its peers
    (Redis Streams, NATS JetStream, Mosquitto)

    @header
    One driver per system implements three measures on the same 300-byte
    MessagePack payload (pb_payload_t):
      throughput  W events in flight (a window), count events, the time until
                  the last durable ack; with W = 1 every ack latency is kept;
      e2e         one producer paced at a fixed rate, N subscribers; the
                  latency from the send to each subscriber's receipt;
      replay      read back every event the system holds, from the first.
    @discuss
    A driver returns 0, or a negative errno-style code with a message in
    pb_ctx_t.error. -ENOTSUP from replay means the system offers none.
    =========================================================================
*/
#ifndef PEERBENCH_H_INCLUDED
#define PEERBENCH_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PB_PAYLOAD_SIZE     300     //  bytes of every event, on every system
#define PB_IDEM_PREFIX      "pb-"   //  marks the index inside the payload
#define PB_STALL_US         (30 * 1000000ULL)   //  no progress for this: fail

//  The payload: a valid intake submit (proto/README §5, §7) whose summary is
//  padded so that the frame is exactly PB_PAYLOAD_SIZE bytes. Its idem is
//  "pb-<run, 6 digits>-<index, 10 digits>"; the digits are patched in place,
//  so every event has the same size and layout.
typedef struct {
    uint8_t bytes [PB_PAYLOAD_SIZE];
    size_t idem_at;                 //  offset of "pb-" in bytes
} pb_payload_t;

typedef struct {
    const char *endpoint;           //  redis/nats/mqtt: host:port; relais: submit endpoint
    const char *pub;                //  relais: intake's PUB endpoint
    const char *fetch;              //  relais: intake's fetch endpoint
    uint32_t run;                   //  run number, part of every idem
    uint32_t page;                  //  replay: events per request (relais fetch max,
                                    //  redis XRANGE COUNT), the same for both
    uint32_t window;                //  replay, relais: fetches in flight
    char error [256];               //  the first failure, for the report
} pb_ctx_t;

typedef struct {
    uint64_t count;                 //  events acked
    double seconds;
    double rate;                    //  acked events per second
} pb_rate_t;

//  Per-event timestamps of an e2e run: sent_us [i] for event i, and
//  recv_us [s * count + i] for subscriber s (0: not received).
typedef struct {
    uint64_t count;
    uint32_t subscribers;
    uint64_t *sent_us;
    uint64_t *recv_us;
    uint64_t received;              //  receipts so far (atomic)
} pb_e2e_t;

typedef struct {
    const char *name;
    //  Acks of count events with up to window in flight. lat_us, when not
    //  NULL (window 1), gets the ack latency of each event.
    int (*throughput) (pb_ctx_t *ctx, uint32_t window, uint64_t count,
                       uint64_t *lat_us, pb_rate_t *out);
    //  One producer sends e2e->count events, one every 1e6/rate µs, to
    //  e2e->subscribers subscribers, each started before the first send.
    int (*e2e) (pb_ctx_t *ctx, uint64_t rate, pb_e2e_t *e2e);
    //  Reads back every stored event; out->count is how many.
    int (*replay) (pb_ctx_t *ctx, pb_rate_t *out);
} pb_driver_t;

extern const pb_driver_t pb_relais_driver;
extern const pb_driver_t pb_redis_driver;
extern const pb_driver_t pb_nats_driver;
extern const pb_driver_t pb_mqtt_driver;

//  Builds the template payload (valid for intake for a day from now).
void pb_payload_init (pb_payload_t *self);
//  Writes run and index into the payload's idem.
void pb_payload_set (pb_payload_t *self, uint32_t run, uint64_t index);
//  The index written in a payload (or an intake ack's idem), or UINT64_MAX
//  when bytes hold no "pb-<run>-<index>" of this run.
uint64_t pb_payload_index (const void *bytes, size_t size, uint32_t run);

//  Monotonic microseconds.
uint64_t pb_now_us (void);
//  Sleeps until the monotonic time at_us (returns at once if it is past).
void pb_sleep_until (uint64_t at_us);
//  Writes a formatted failure into ctx->error (the first one wins) and
//  returns code.
int pb_fail (pb_ctx_t *ctx, int code, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));
//  Splits "host:port" (port defaults to default_port).
void pb_host_port (const char *endpoint, char *host, size_t size, int *port,
                   int default_port);

//  A start gate: subscribers announce they are ready, the producer waits.
typedef struct pb_gate pb_gate_t;
pb_gate_t *pb_gate_new (void);
void pb_gate_destroy (pb_gate_t **self_p);
void pb_gate_ready (pb_gate_t *self);
//  Waits until count are ready; false after timeout_ms.
bool pb_gate_wait (pb_gate_t *self, uint32_t count, uint64_t timeout_ms);

//  Records that subscriber sub received event index now (first receipt wins).
void pb_e2e_record (pb_e2e_t *e2e, uint32_t sub, uint64_t index, uint64_t now_us);
//  True once every subscriber has received every event.
bool pb_e2e_complete (pb_e2e_t *e2e);
//  Waits (polling every ms) until pb_e2e_complete or PB_STALL_US without
//  a new receipt; false on the stall.
bool pb_e2e_wait (pb_e2e_t *e2e);

#endif
