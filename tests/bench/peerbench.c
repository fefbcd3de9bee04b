/*  =========================================================================
    relais-peerbench - one system, the whole workload, one JSON line

    @header
    Usage: relais-peerbench --system relais|redis|nats|mosquitto [options]
      --endpoint E      redis/nats/mosquitto: host:port; relais: intake's
                        submit endpoint (tcp://127.0.0.1:PORT or ipc://...)
      --pub E --fetch E relais: intake's PUB and fetch endpoints
      --count1 N        events with 1 in flight (also the ack latency samples;
                        default 2000)
      --count100 N      events with 100 in flight (default 20000)
      --count1000 N     events with 1000 in flight (default 100000)
      --e2e-rate R      paced events/s for end-to-end latency (default 1000)
      --e2e-count N     events per end-to-end run (default 3000)
      --run N           a number unique per run against one server (idems)
      --page N          replay: events per request, Relais's fetch max and
                        Redis's XRANGE COUNT alike (default 2000, at most
                        10000, the fetch protocol's limit; Relais asks an
                        8 MiB byte budget, so the count decides)
      --replay-window N replay, Relais: fetches in flight (default 2, 1..8)
    It runs, in order: throughput with 1, 100 and 1000 events in flight,
    end-to-end to 1 then 3 subscribers, replay of everything stored. It
    prints one JSON object on stdout: figures, or null for a phase that
    failed or that the system does not offer, and "error" with the first
    failure. The exit code is 0 only when every offered phase completed.
    @discuss
    tests/bench/peers.py starts the servers, runs this program against each
    system in alternation, and prints the medians. No test asserts on these
    figures: bench-peers-smoke only checks that the program works.
    =========================================================================
*/
#include "peerbench.h"

#include "relais_msg.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

//  ---------------------------------------------------------------------------
//  Shared helpers

uint64_t
pb_now_us (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000;
}

void
pb_sleep_until (uint64_t at_us)
{
    uint64_t now = pb_now_us ();
    if (at_us <= now)
        return;
    uint64_t wait = at_us - now;
    struct timespec ts = { (time_t) (wait / 1000000), (long) (wait % 1000000) * 1000L };
    while (nanosleep (&ts, &ts) == -1 && errno == EINTR)
        ;
}

int
pb_fail (pb_ctx_t *ctx, int code, const char *format, ...)
{
    if (!ctx->error [0]) {
        va_list args;
        va_start (args, format);
        vsnprintf (ctx->error, sizeof ctx->error, format, args);
        va_end (args);
    }
    return code;
}

void
pb_host_port (const char *endpoint, char *host, size_t size, int *port, int default_port)
{
    snprintf (host, size, "%s", endpoint? endpoint: "127.0.0.1");
    *port = default_port;
    char *colon = strrchr (host, ':');
    if (colon) {
        *colon = 0;
        *port = atoi (colon + 1);
    }
    if (!host [0])
        snprintf (host, size, "127.0.0.1");
}

//  ---------------------------------------------------------------------------
//  The payload

#define S_IDEM_TEMPLATE     PB_IDEM_PREFIX "000000-0000000000"
#define S_IDEM_RUN_AT       3
#define S_IDEM_INDEX_AT     10

static size_t
s_pack_submit (msgpack_sbuffer *sbuf, uint64_t observed_at, size_t summary_len)
{
    static const char text [] = "Homme seul sous un auvent, semble epuise. ";
    char summary [PB_PAYLOAD_SIZE];
    for (size_t i = 0; i < summary_len; i++)
        summary [i] = text [i % (sizeof text - 1)];
    msgpack_sbuffer_clear (sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 3);
    relais_pack_kv_str (&pk, "op", "submit");
    relais_pack_kv_str (&pk, "idem", S_IDEM_TEMPLATE);
    relais_pack_str (&pk, "signal");
    msgpack_pack_map (&pk, 9);
    relais_pack_str (&pk, "source");
    msgpack_pack_map (&pk, 2);
    relais_pack_kv_str (&pk, "kind", "115");
    relais_pack_kv_str (&pk, "name", "115 de Paris - regulation de nuit");
    relais_pack_kv_uint (&pk, "observed_at", observed_at);
    relais_pack_str (&pk, "place");
    msgpack_pack_map (&pk, 2);
    relais_pack_kv_uint (&pk, "arrondissement", 19);
    relais_pack_kv_str (&pk, "kind", "voie_publique");
    relais_pack_kv_uint (&pk, "persons", 1);
    relais_pack_str (&pk, "publics");
    msgpack_pack_array (&pk, 1);
    relais_pack_str (&pk, "homme_isole");
    relais_pack_str (&pk, "needs");
    msgpack_pack_array (&pk, 1);
    relais_pack_str (&pk, "mise_a_l_abri");
    relais_pack_kv_str (&pk, "urgency", "jour");
    relais_pack_kv_bool (&pk, "sensitive", false);
    relais_pack_str (&pk, "summary");
    relais_pack_strn (&pk, summary, summary_len);
    return sbuf->size;
}

void
pb_payload_init (pb_payload_t *self)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    uint64_t observed_at = (uint64_t) ts.tv_sec * 1000000ULL - 3600ULL * 1000000ULL;
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    //  The summary's length: the str header grows from 1 to 2 bytes at 32
    size_t len = 0;
    for (; len < PB_PAYLOAD_SIZE; len++)
        if (s_pack_submit (&sbuf, observed_at, len) >= PB_PAYLOAD_SIZE)
            break;
    if (sbuf.size != PB_PAYLOAD_SIZE) {
        fprintf (stderr, "relais-peerbench: cannot pad the submit to %d bytes\n",
                 PB_PAYLOAD_SIZE);
        abort ();
    }
    memcpy (self->bytes, sbuf.data, PB_PAYLOAD_SIZE);
    const uint8_t *at = memmem (self->bytes, PB_PAYLOAD_SIZE, S_IDEM_TEMPLATE,
                                strlen (S_IDEM_TEMPLATE));
    self->idem_at = at? (size_t) (at - self->bytes): 0;
    msgpack_sbuffer_destroy (&sbuf);
}

static void
s_digits (uint8_t *at, uint64_t value, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        at [i] = (uint8_t) ('0' + value % 10);
        value /= 10;
    }
}

void
pb_payload_set (pb_payload_t *self, uint32_t run, uint64_t index)
{
    s_digits (self->bytes + self->idem_at + S_IDEM_RUN_AT, run % 1000000, 6);
    s_digits (self->bytes + self->idem_at + S_IDEM_INDEX_AT, index % 10000000000ULL, 10);
}

uint64_t
pb_payload_index (const void *bytes, size_t size, uint32_t run)
{
    size_t need = strlen (S_IDEM_TEMPLATE);
    const uint8_t *at = memmem (bytes, size, PB_IDEM_PREFIX, strlen (PB_IDEM_PREFIX));
    if (!at || (size_t) ((const uint8_t *) bytes + size - at) < need)
        return UINT64_MAX;
    uint64_t got_run = 0, index = 0;
    for (int i = 0; i < 6; i++) {
        uint8_t c = at [S_IDEM_RUN_AT + i];
        if (c < '0' || c > '9')
            return UINT64_MAX;
        got_run = got_run * 10 + (c - '0');
    }
    for (int i = 0; i < 10; i++) {
        uint8_t c = at [S_IDEM_INDEX_AT + i];
        if (c < '0' || c > '9')
            return UINT64_MAX;
        index = index * 10 + (c - '0');
    }
    return got_run == run % 1000000? index: UINT64_MAX;
}

//  ---------------------------------------------------------------------------
//  Gate

struct pb_gate {
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    uint32_t ready;
};

pb_gate_t *
pb_gate_new (void)
{
    pb_gate_t *self = (pb_gate_t *) calloc (1, sizeof *self);
    if (self) {
        pthread_mutex_init (&self->mutex, NULL);
        pthread_cond_init (&self->cond, NULL);
    }
    return self;
}

void
pb_gate_destroy (pb_gate_t **self_p)
{
    if (*self_p) {
        pthread_mutex_destroy (&(*self_p)->mutex);
        pthread_cond_destroy (&(*self_p)->cond);
        free (*self_p);
        *self_p = NULL;
    }
}

void
pb_gate_ready (pb_gate_t *self)
{
    pthread_mutex_lock (&self->mutex);
    self->ready++;
    pthread_cond_broadcast (&self->cond);
    pthread_mutex_unlock (&self->mutex);
}

bool
pb_gate_wait (pb_gate_t *self, uint32_t count, uint64_t timeout_ms)
{
    struct timespec deadline;
    clock_gettime (CLOCK_REALTIME, &deadline);
    deadline.tv_sec += (time_t) (timeout_ms / 1000);
    deadline.tv_nsec += (long) (timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock (&self->mutex);
    int rc = 0;
    while (self->ready < count && rc == 0)
        rc = pthread_cond_timedwait (&self->cond, &self->mutex, &deadline);
    bool ok = self->ready >= count;
    pthread_mutex_unlock (&self->mutex);
    return ok;
}

//  ---------------------------------------------------------------------------
//  End-to-end bookkeeping

void
pb_e2e_record (pb_e2e_t *e2e, uint32_t sub, uint64_t index, uint64_t now_us)
{
    if (sub >= e2e->subscribers || index >= e2e->count)
        return;
    uint64_t *slot = &e2e->recv_us [(uint64_t) sub * e2e->count + index];
    uint64_t expected = 0;
    if (__atomic_compare_exchange_n (slot, &expected, now_us, false,
                                     __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        __atomic_add_fetch (&e2e->received, 1, __ATOMIC_RELEASE);
}

bool
pb_e2e_complete (pb_e2e_t *e2e)
{
    return __atomic_load_n (&e2e->received, __ATOMIC_ACQUIRE)
        >= e2e->count * e2e->subscribers;
}

bool
pb_e2e_wait (pb_e2e_t *e2e)
{
    uint64_t last = __atomic_load_n (&e2e->received, __ATOMIC_ACQUIRE);
    uint64_t progress = pb_now_us ();
    while (!pb_e2e_complete (e2e)) {
        pb_sleep_until (pb_now_us () + 1000);
        uint64_t now = __atomic_load_n (&e2e->received, __ATOMIC_ACQUIRE);
        if (now != last) {
            last = now;
            progress = pb_now_us ();
        }
        else
        if (pb_now_us () - progress > PB_STALL_US)
            return false;
    }
    return true;
}

//  ---------------------------------------------------------------------------
//  Figures and output

static int
s_cmp_u64 (const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
    return x < y? -1: x > y;
}

//  Nearest-rank percentile of a sorted array, in milliseconds.
static double
s_pct_ms (const uint64_t *sorted, size_t n, double p)
{
    if (n == 0)
        return NAN;
    size_t rank = (size_t) ceil (p / 100.0 * (double) n);
    rank = rank < 1? 1: rank > n? n: rank;
    return (double) sorted [rank - 1] / 1000.0;
}

static bool s_first = true;

static void
s_key (const char *key)
{
    printf ("%s\"%s\":", s_first? "{": ",", key);
    s_first = false;
}

static void
s_num (const char *key, double value, const char *format)
{
    s_key (key);
    if (isfinite (value))
        printf (format, value);
    else
        printf ("null");
}

static void
s_str (const char *key, const char *text)
{
    s_key (key);
    putchar ('"');
    for (const unsigned char *p = (const unsigned char *) text; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf ("\\%c", *p);
        else
        if (*p < 0x20)
            printf ("\\u%04x", *p);
        else
            putchar (*p);
    }
    putchar ('"');
}

//  ---------------------------------------------------------------------------
//  Phases

typedef struct {
    uint64_t count1, count100, count1000;
    uint64_t e2e_rate, e2e_count;
    uint32_t run;
} s_opts_t;

static int
s_phase_e2e (const pb_driver_t *driver, pb_ctx_t *ctx, const s_opts_t *o, uint32_t subs,
             const char *name)
{
    pb_e2e_t e2e = { o->e2e_count, subs, NULL, NULL, 0 };
    e2e.sent_us = (uint64_t *) calloc (o->e2e_count, sizeof (uint64_t));
    e2e.recv_us = (uint64_t *) calloc (o->e2e_count * subs, sizeof (uint64_t));
    uint64_t *lat = (uint64_t *) calloc (o->e2e_count * subs, sizeof (uint64_t));
    int rc = e2e.sent_us && e2e.recv_us && lat? 0: -ENOMEM;
    ctx->run++;
    if (rc == 0)
        rc = driver->e2e (ctx, o->e2e_rate, &e2e);
    size_t n = 0;
    for (uint64_t i = 0; rc == 0 && i < e2e.count * subs; i++) {
        uint64_t sent = e2e.sent_us [i % e2e.count], recv = e2e.recv_us [i];
        if (sent && recv)
            lat [n++] = recv > sent? recv - sent: 0;
    }
    if (rc == 0 && n < e2e.count * subs)
        rc = pb_fail (ctx, -EPROTO, "%s: %zu of %" PRIu64 " receipts", name, n,
                      e2e.count * subs);
    if (n)
        qsort (lat, n, sizeof *lat, s_cmp_u64);
    char key [64];
    snprintf (key, sizeof key, "%s_p50_ms", name);
    s_num (key, rc? NAN: s_pct_ms (lat, n, 50), "%.3f");
    snprintf (key, sizeof key, "%s_p99_ms", name);
    s_num (key, rc? NAN: s_pct_ms (lat, n, 99), "%.3f");
    snprintf (key, sizeof key, "%s_samples", name);
    s_num (key, (double) n, "%.0f");
    free (e2e.sent_us);
    free (e2e.recv_us);
    free (lat);
    return rc;
}

static int
s_run (const pb_driver_t *driver, pb_ctx_t *ctx, const s_opts_t *o)
{
    int failed = 0;
    //  Throughput; with 1 in flight, every ack latency too
    const uint32_t windows [3] = { 1, 100, 1000 };
    const uint64_t counts [3] = { o->count1, o->count100, o->count1000 };
    for (int w = 0; w < 3; w++) {
        uint64_t *lat = w == 0? (uint64_t *) calloc (counts [w]? counts [w]: 1, sizeof *lat): NULL;
        pb_rate_t rate = { 0, 0, 0 };
        ctx->run++;
        int rc = w == 0 && !lat? -ENOMEM:
                 driver->throughput (ctx, windows [w], counts [w], lat, &rate);
        if (rc == 0 && rate.count < counts [w])
            rc = pb_fail (ctx, -EPROTO, "window %u: %" PRIu64 " acks of %" PRIu64,
                          windows [w], rate.count, counts [w]);
        char key [64];
        snprintf (key, sizeof key, "tput_%u", windows [w]);
        s_num (key, rc? NAN: rate.rate, "%.1f");
        if (w == 0) {
            size_t n = rc? 0: (size_t) rate.count;
            if (n)
                qsort (lat, n, sizeof *lat, s_cmp_u64);
            s_num ("ack_p50_ms", rc? NAN: s_pct_ms (lat, n, 50), "%.3f");
            s_num ("ack_p99_ms", rc? NAN: s_pct_ms (lat, n, 99), "%.3f");
            s_num ("ack_p999_ms", rc? NAN: s_pct_ms (lat, n, 99.9), "%.3f");
            s_num ("ack_samples", (double) n, "%.0f");
            free (lat);
        }
        failed |= rc != 0;
    }
    s_num ("e2e_rate", (double) o->e2e_rate, "%.0f");
    failed |= s_phase_e2e (driver, ctx, o, 1, "e2e1") != 0;
    failed |= s_phase_e2e (driver, ctx, o, 3, "e2e3") != 0;
    pb_rate_t replay = { 0, 0, 0 };
    ctx->run++;
    int rc = driver->replay (ctx, &replay);
    s_num ("replay_events", rc? NAN: (double) replay.count, "%.0f");
    s_num ("replay_rate", rc? NAN: replay.rate, "%.1f");
    s_str ("replay", rc == -ENOTSUP? "not offered": rc? "failed": "ok");
    s_num ("replay_page", ctx->page, "%.0f");
    failed |= rc != 0 && rc != -ENOTSUP;
    return failed? -1: 0;
}

static bool
s_uint_arg (const char *text, uint64_t *value)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull (text, &end, 10);
    if (errno || !end || *end || end == text)
        return false;
    *value = v;
    return true;
}

static void
s_usage (void)
{
    fprintf (stderr,
        "usage: relais-peerbench --system relais|redis|nats|mosquitto [--endpoint E]\n"
        "         [--pub E --fetch E] [--count1 N] [--count100 N] [--count1000 N]\n"
        "         [--e2e-rate R] [--e2e-count N] [--run N] [--page N]\n"
        "         [--replay-window N]\n");
}

int
main (int argc, char **argv)
{
    s_opts_t o = { 2000, 20000, 100000, 1000, 3000, 1 };
    const char *system = NULL;
    pb_ctx_t ctx;
    memset (&ctx, 0, sizeof ctx);
    ctx.page = 2000;
    ctx.window = 2;
    for (int i = 1; i < argc; i += 2) {
        const char *arg = argv [i];
        const char *value = i + 1 < argc? argv [i + 1]: NULL;
        uint64_t n = 0;
        bool ok = value != NULL;
        if (strcmp (arg, "--system") == 0 && value)
            system = value;
        else
        if (strcmp (arg, "--endpoint") == 0 && value)
            ctx.endpoint = value;
        else
        if (strcmp (arg, "--pub") == 0 && value)
            ctx.pub = value;
        else
        if (strcmp (arg, "--fetch") == 0 && value)
            ctx.fetch = value;
        else
        if (value && s_uint_arg (value, &n) && n > 0) {
            if (strcmp (arg, "--count1") == 0)
                o.count1 = n;
            else
            if (strcmp (arg, "--count100") == 0)
                o.count100 = n;
            else
            if (strcmp (arg, "--count1000") == 0)
                o.count1000 = n;
            else
            if (strcmp (arg, "--e2e-rate") == 0 && n <= 1000000)
                o.e2e_rate = n;
            else
            if (strcmp (arg, "--e2e-count") == 0)
                o.e2e_count = n;
            else
            if (strcmp (arg, "--run") == 0 && n < 10000)
                o.run = (uint32_t) n;
            else
            if (strcmp (arg, "--page") == 0 && n <= 10000)
                ctx.page = (uint32_t) n;
            else
            if (strcmp (arg, "--replay-window") == 0 && n <= 8)
                ctx.window = (uint32_t) n;
            else
                ok = false;
        }
        else
            ok = false;
        if (!ok) {
            s_usage ();
            return 2;
        }
    }
    const pb_driver_t *drivers [] = {
        &pb_relais_driver, &pb_redis_driver, &pb_nats_driver, &pb_mqtt_driver
    };
    const pb_driver_t *driver = NULL;
    for (size_t i = 0; system && i < sizeof drivers / sizeof drivers [0]; i++)
        if (strcmp (system, drivers [i]->name) == 0)
            driver = drivers [i];
    if (!driver || !ctx.endpoint
    ||  (driver == &pb_relais_driver && (!ctx.pub || !ctx.fetch))) {
        s_usage ();
        return 2;
    }
    //  Runs are numbered run * 100 + phase: idems stay unique per server
    ctx.run = o.run * 100;
    s_str ("system", driver->name);
    s_num ("payload_bytes", PB_PAYLOAD_SIZE, "%.0f");
    int rc = s_run (driver, &ctx, &o);
    s_str ("error", ctx.error);
    printf ("}\n");
    fflush (stdout);
    if (rc)
        fprintf (stderr, "relais-peerbench: %s: %s\n", driver->name,
                 ctx.error [0]? ctx.error: "a phase failed");
    return rc? 1: 0;
}
