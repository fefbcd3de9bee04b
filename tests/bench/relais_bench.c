/*  =========================================================================
    relais-bench - durable throughput and latency of intake, beside the raw
    baselines measured by the same program on the same machine

    @header
    One run prints one table (or, with --json, one JSON object):
      A   one durable store write per event (relais_store_write, one put:
          one write-ahead log record, fdatasync'd; LMDB at checkpoints);
      A2  group writes of 1,000 events per store write;
      B   raw ZeroMQ PUB->SUB of the same payload, over ipc:// and tcp://;
      B3  the same to 3 SUBs over ipc:// (per subscriber, the slowest);
      4   intake: durable acked submits/s, 1 pipelined producer with 1000
          and with 100 in flight, 8 producers, each with intake's own CPU
          time per submit; the ack latency of a lone submit (1 in flight);
      5   submit -> subscriber latency at a paced 1,000 submits/s;
      6   fetch replay of intake's whole log, events/s and MB/s;
      7   intake's events to 3 plain SUBs while one producer submits with
          a full window, beside B3: a raw PUB to the same 3 SUBs;
      R   intake's resident memory (VmRSS) idle after start, and after load;
    then the group-commit gain: (4, 8 producers) over (A).
    @discuss
    Usage: relais-bench [--intake PATH] [--dir DIR] [--smoke] [--json]
                        [--keep] [--submits N] [--producers N] [--window N]
                        [--quick] [--fetch-max N] [--fetch-window N]
                        [--fetch-bytes N]
           relais-bench --replay ENDPOINT [--fetch-max N] [--fetch-window N]
                        [--fetch-bytes N]
    --quick skips A, A2, B and 5: intake's own figures, for quick compares.
    Phase 6 asks pages of --fetch-max events (default 2000) with a byte
    budget of --fetch-bytes (default 8 MiB, so that the count decides;
    0: not asked, the server's 1 MiB), --fetch-window fetches in flight
    (default 2); --fetch-max 1000 --fetch-window 1 --fetch-bytes 0 is the
    client before issue #11's replay work, less its full decode of every
    event into msgpack objects. --replay E runs phase 6 alone against the
    fetch endpoint of a service already running, with the same options.
    The bench starts intake itself: a temporary folder (mkdtemp under --dir,
    $TMPDIR or /tmp) holds the deployment file, the data and the ipc://
    sockets; intake is stopped with SIGTERM by its pid and the folder is
    removed (unless --keep). The LMDB baselines use their own folders in the
    same filesystem, so every figure meets the same disk.
    Nothing here asserts on time: the exit code says only whether every
    phase ran to completion (every request answered, every ack "ok").
    =========================================================================
*/
#include "bench_replay.h"
#include "relais_clock.h"
#include "relais_fetch.h"
#include "relais_log.h"
#include "relais_msg.h"
#include "relais_store.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_PATH_MAX      4096
#define S_IPC_MAX       100         //  sun_path is 108 bytes
#define S_STALL_US      (30 * 1000000ULL)
#define S_HWM           100000
#define S_RESEND_US     (2 * 1000000ULL)   //  a producer resends after this

static volatile sig_atomic_t s_interrupted = 0;

//  ---------------------------------------------------------------------------
//  Options and results

typedef struct {
    const char *intake;             //  path of relais-intake
    const char *base;               //  parent of the temporary folder
    const char *replay;             //  --replay: only phase 6, against this endpoint
    bool smoke, json, keep, quick;
    uint64_t fsync_events;          //  A
    uint64_t group_events;          //  A2
    uint64_t group_size;            //  A2 events per transaction
    uint64_t raw_msgs;              //  B
    uint64_t submits;               //  4, each of the 1- and N-producer runs
    uint32_t producers;             //  4
    uint32_t window;                //  4, per producer
    uint64_t lone;                  //  4, lone-submit latency samples
    uint64_t paced_rate;            //  5, submits per second
    uint64_t paced_ms;              //  5, duration
    uint32_t fetch_max;             //  6, events asked per fetch
    uint32_t fetch_window;          //  6, fetches in flight
    size_t fetch_bytes;             //  6, max_bytes asked (0: not asked, 1 MiB)
} s_opts_t;

typedef struct {
    uint64_t count;
    double seconds;
    double rate;
} s_rate_t;

#define S_FANOUT        3           //  subscribers of the fan-out phases

typedef struct {
    uint64_t sent, received;        //  received: by the slowest subscriber
    double seconds;
    double rate;                    //  received per second, per subscriber
    char endpoint [S_PATH_MAX];
} s_raw_t;

typedef struct {
    uint64_t requests, acked, duplicates, errors;
    uint64_t resends;               //  requests sent again after S_RESEND_US
    double seconds;
    double rate;                    //  acks per second
    double cpu_us;                  //  intake's CPU (user + sys) per ack, µs
    char first_error [192];
} s_submits_t;

typedef struct {
    uint64_t samples;               //  latencies measured
    uint64_t requests;              //  requests sent
    double p50_ms, p99_ms, max_ms;
    double actual_rate;             //  5: submits/s really sent
} s_latency_t;

typedef struct {
    uint64_t events, bytes, requests;
    double seconds;
    double rate, mb_per_s;
    bool contiguous;
    uint64_t last;
    double cpu_us;                  //  intake's CPU per replayed event, µs
} s_fetch_t;

typedef struct {
    char command [2048];
    char cpu [128];
    long nproc;
    char kernel [256];
    char data_dir [S_PATH_MAX];
    char fs_type [64];
    char fs_source [256];
    char libs [128];
    size_t payload;
    s_rate_t fsync_each;            //  A
    s_rate_t group;                 //  A2
    s_raw_t raw_ipc, raw_tcp;       //  B
    s_raw_t raw_fanout;             //  B3: raw PUB to 3 SUBs, ipc://
    s_raw_t fanout;                 //  7: intake's events to 3 SUBs, submits pipelined
    s_submits_t one, narrow, many;  //  4: window 1000, window 100, N producers
    s_latency_t lone;               //  4
    s_latency_t paced;              //  5
    s_fetch_t fetch;                //  6
    long rss_idle_kib;              //  R: intake's VmRSS once ready (-1: unknown)
    long rss_loaded_kib;            //  R: and after every phase
    int intake_exit;                //  exit status of intake (-1: killed / unknown)
} s_results_t;

//  ---------------------------------------------------------------------------
//  Small helpers

static void
s_on_signal (int signum)
{
    (void) signum;
    s_interrupted = 1;
}

//  snprintf that says whether the text fitted (paths must not be cut)
static bool
s_format (char *buf, size_t size, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

static bool
s_format (char *buf, size_t size, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    int n = vsnprintf (buf, size, format, args);
    va_end (args);
    return n >= 0 && (size_t) n < size;
}

static int
s_cmp_u64 (const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
    return x < y? -1: x > y;
}

//  Nearest-rank percentile of a sorted array, in milliseconds.
static double
s_percentile_ms (const uint64_t *sorted, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t rank = (size_t) ceil (p / 100.0 * (double) n);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return (double) sorted [rank - 1] / 1000.0;
}

static void
s_latency_fill (s_latency_t *lat, uint64_t *us, size_t n)
{
    if (n)
        qsort (us, n, sizeof *us, s_cmp_u64);
    lat->samples = n;
    lat->p50_ms = s_percentile_ms (us, n, 50);
    lat->p99_ms = s_percentile_ms (us, n, 99);
    lat->max_ms = n? (double) us [n - 1] / 1000.0: 0;
}

static double
s_seconds (uint64_t from_us, uint64_t to_us)
{
    return to_us > from_us? (double) (to_us - from_us) / 1e6: 1e-6;
}

static void
s_sleep_ms (unsigned ms)
{
    struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };
    while (nanosleep (&ts, &ts) == -1 && errno == EINTR && !s_interrupted)
        ;
}

static int
s_rm_entry (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st;
    (void) flag;
    (void) ftw;
    return remove (path) == 0 || errno == ENOENT? 0: -1;
}

static void
s_rm_tree (const char *path)
{
    if (nftw (path, s_rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf (stderr, "relais-bench: could not remove all of %s: %s\n",
                 path, strerror (errno));
}

//  ---------------------------------------------------------------------------
//  The payload: a realistic ~300-byte submit request (DOMAIN.md fields)

static const char s_summary [] =
    "Homme seul sous un auvent, semble epuise";

static void
s_pack_submit (msgpack_sbuffer *sbuf, const char *idem, uint64_t rid, uint64_t index,
               uint64_t now_us)
{
    msgpack_packer pk;
    msgpack_packer_init (&pk, sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 4);
    relais_pack_kv_str (&pk, "op", "submit");
    relais_pack_kv_str (&pk, "idem", idem);
    relais_pack_kv_uint (&pk, "rid", rid);
    relais_pack_str (&pk, "signal");
    msgpack_pack_map (&pk, 9);
    relais_pack_str (&pk, "source");
    msgpack_pack_map (&pk, 2);
    relais_pack_kv_str (&pk, "kind", "115");
    relais_pack_kv_str (&pk, "name", "115 de Paris - regulation de nuit");
    relais_pack_kv_uint (&pk, "observed_at", now_us - 3600ULL * 1000000ULL);
    relais_pack_str (&pk, "place");
    msgpack_pack_map (&pk, 2);
    relais_pack_kv_uint (&pk, "arrondissement", 1 + index % 20);
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
    relais_pack_kv_str (&pk, "summary", s_summary);
}

//  ---------------------------------------------------------------------------
//  Request/reply over a DEALER with the REQ-compatible framing

static zsock_t *
s_dealer_new (const char *endpoint)
{
    zsock_t *sock = zsock_new (ZMQ_DEALER);
    if (!sock)
        return NULL;
    zsock_set_sndhwm (sock, S_HWM);
    zsock_set_rcvhwm (sock, S_HWM);
    zsock_set_linger (sock, 0);
    if (zsock_connect (sock, "%s", endpoint)) {
        zsock_destroy (&sock);
        return NULL;
    }
    return sock;
}

static int
s_send_request (zsock_t *sock, const void *data, size_t size)
{
    void *handle = zsock_resolve (sock);
    if (zmq_send (handle, "", 0, ZMQ_SNDMORE) < 0
    ||  zmq_send (handle, data, size, 0) < 0)
        return -errno;
    return 0;
}

typedef struct {
    zmq_msg_t frame;                //  last frame: the data
    relais_msg_t msg;               //  decoded from frame (borrows it)
    bool has_frame, decoded;
} s_reply_t;

//  Receive one reply (without blocking when dontwait). Returns 0 with the
//  reply decoded, -EAGAIN when nothing is waiting, another negative code on
//  a broken reply. The caller releases the reply after 0.
static int
s_reply_recv (zsock_t *sock, s_reply_t *reply, bool dontwait,
              const relais_msg_limits_t *limits)
{
    void *handle = zsock_resolve (sock);
    memset (reply, 0, sizeof *reply);
    zmq_msg_init (&reply->frame);
    reply->has_frame = true;
    int more = 1;
    bool first = true;
    while (more) {
        if (!first) {
            zmq_msg_close (&reply->frame);
            zmq_msg_init (&reply->frame);
        }
        if (zmq_msg_recv (&reply->frame, handle, dontwait && first? ZMQ_DONTWAIT: 0) < 0) {
            int rc = -errno;
            zmq_msg_close (&reply->frame);
            reply->has_frame = false;
            return rc;
        }
        first = false;
        more = zmq_msg_more (&reply->frame);
    }
    relais_error_t err;
    if (relais_msg_decode (&reply->msg, zmq_msg_data (&reply->frame), zmq_msg_size (&reply->frame),
                           limits, &err)) {
        zmq_msg_close (&reply->frame);
        reply->has_frame = false;
        return RELAIS_EMALFORMED;
    }
    reply->decoded = true;
    return 0;
}

static void
s_reply_release (s_reply_t *reply)
{
    if (reply->decoded)
        relais_msg_release (&reply->msg);
    if (reply->has_frame)
        zmq_msg_close (&reply->frame);
    reply->decoded = reply->has_frame = false;
}

static bool
s_reply_ok (const s_reply_t *reply)
{
    const msgpack_object *ok = relais_msg_get (&reply->msg.root, "ok");
    return ok && ok->type == MSGPACK_OBJECT_BOOLEAN && ok->via.boolean;
}

//  "code field: message" of an error reply, for the report.
static void
s_reply_error (const s_reply_t *reply, char *buf, size_t size)
{
    char code [32] = "?", field [128] = "", message [160] = "";
    relais_msg_str_copy (relais_msg_get (&reply->msg.root, "code"), code, sizeof code);
    relais_msg_str_copy (relais_msg_get (&reply->msg.root, "field"), field, sizeof field);
    relais_msg_str_copy (relais_msg_get (&reply->msg.root, "message"), message, sizeof message);
    snprintf (buf, size, "%s%s%s: %s", code, field [0]? " ": "", field, message);
}

static uint64_t
s_reply_uint (const s_reply_t *reply, const char *key)
{
    uint64_t value = 0;
    relais_msg_uint (relais_msg_get (&reply->msg.root, key), &value);
    return value;
}

static int
s_poll_in (zsock_t *sock, long timeout_ms)
{
    zmq_pollitem_t item = { zsock_resolve (sock), 0, ZMQ_POLLIN, 0 };
    int rc = zmq_poll (&item, 1, timeout_ms);
    if (rc < 0)
        return errno == EINTR? 0: -errno;
    return rc;
}

//  ---------------------------------------------------------------------------
//  A: one durable store write per event; A2: group writes

typedef struct {
    int db;
    uint64_t seq;                   //  first key of this transaction
    uint64_t count;
    const void *data;
    size_t size;
} s_put_t;

//  Re-runnable (the store retries after growing the map): keys depend only
//  on the arguments.
static int
s_put_events (relais_txn_t *txn, void *arg)
{
    s_put_t *put = (s_put_t *) arg;
    for (uint64_t i = 0; i < put->count; i++) {
        uint8_t key [8];
        relais_u64_to_key (put->seq + i, key);
        int rc = relais_txn_put (txn, put->db, key, sizeof key, put->data, put->size);
        if (rc)
            return rc;
    }
    return 0;
}

static int
s_bench_lmdb (const char *dir, uint64_t events, uint64_t per_txn,
              const void *payload, size_t size, s_rate_t *result)
{
    static const char *const dbs [] = { "bench", NULL };
    relais_store_opts_t opts = { 0, 0, dbs, 0 };
    relais_store_t *store = relais_store_new (dir, &opts);
    if (!store) {
        fprintf (stderr, "relais-bench: cannot open LMDB in %s\n", dir);
        return -1;
    }
    s_put_t put = { relais_store_dbi (store, "bench"), 1, 0, payload, size };
    int rc = 0;
    uint64_t start = relais_clock_mono ();
    uint64_t done = 0;
    while (done < events && !s_interrupted) {
        put.seq = done + 1;
        put.count = events - done < per_txn? events - done: per_txn;
        rc = relais_store_write (store, s_put_events, &put);
        if (rc) {
            fprintf (stderr, "relais-bench: LMDB write failed: %s\n", relais_strerror (rc));
            break;
        }
        done += put.count;
    }
    uint64_t end = relais_clock_mono ();
    relais_store_destroy (&store);
    result->count = done;
    result->seconds = s_seconds (start, end);
    result->rate = (double) done / result->seconds;
    return rc || s_interrupted? -1: 0;
}

//  ---------------------------------------------------------------------------
//  B: raw PUB->SUB

typedef struct {
    zsock_t *sub;
    uint64_t received;
    uint64_t last_us;
} s_raw_rx_t;

static void *
s_raw_receiver (void *arg)
{
    s_raw_rx_t *rx = (s_raw_rx_t *) arg;
    void *handle = zsock_resolve (rx->sub);
    zmq_msg_t frame;
    zmq_msg_init (&frame);
    while (!s_interrupted) {
        if (s_poll_in (rx->sub, 2000) <= 0)
            break;                  //  2 s of silence: the sender is done
        bool end = false;
        bool data = true;
        //  Drain: topic frame, then payload frame
        while (zmq_msg_recv (&frame, handle, ZMQ_DONTWAIT) >= 0) {
            if (zmq_msg_size (&frame) > 0 && ((const char *) zmq_msg_data (&frame)) [0] == '$') {
                data = false;
                end = zmq_msg_size (&frame) == 4
                   && memcmp (zmq_msg_data (&frame), "$end", 4) == 0;
            }
            if (!zmq_msg_more (&frame)) {
                if (data) {
                    rx->received++;
                    rx->last_us = relais_clock_mono ();
                }
                data = true;
                if (end)
                    break;
            }
        }
        if (end)
            break;
    }
    zmq_msg_close (&frame);
    return NULL;
}

//  A SUB for the fan-out phases: big HWM, no linger, one prefix.
static zsock_t *
s_sub_new (const char *prefix)
{
    zsock_t *sub = zsock_new (ZMQ_SUB);
    if (!sub)
        return NULL;
    zsock_set_rcvhwm (sub, S_HWM);
    zsock_set_linger (sub, 0);
    zsock_set_subscribe (sub, prefix);
    return sub;
}

//  Fill result from the receivers: the slowest one's count, over the time
//  from start to the last receipt of any.
static void
s_raw_result (s_raw_t *result, const s_raw_rx_t *rx, int nsubs, uint64_t start)
{
    uint64_t least = UINT64_MAX, last = start;
    for (int i = 0; i < nsubs; i++) {
        if (rx [i].received < least)
            least = rx [i].received;
        if (rx [i].last_us > last)
            last = rx [i].last_us;
    }
    result->received = least == UINT64_MAX? 0: least;
    result->seconds = s_seconds (start, last);
    result->rate = result->seconds > 0? (double) result->received / result->seconds: 0;
}

static int
s_bench_raw (const char *bind_endpoint, uint64_t count, const void *payload, size_t size,
             int nsubs, s_raw_t *result)
{
    int rc = -1;
    zsock_t *pub = zsock_new (ZMQ_PUB);
    zsock_t *subs [S_FANOUT] = { NULL };
    s_raw_rx_t rx [S_FANOUT];
    pthread_t threads [S_FANOUT];
    int started = 0;
    if (nsubs < 1 || nsubs > S_FANOUT)
        nsubs = 1;
    memset (rx, 0, sizeof rx);
    for (int i = 0; i < nsubs; i++)
        if (!(subs [i] = s_sub_new ("")))
            goto done;
    if (!pub)
        goto done;
    zsock_set_sndhwm (pub, S_HWM);
    zsock_set_linger (pub, 0);
    int port = zsock_bind (pub, "%s", bind_endpoint);
    if (port < 0) {
        fprintf (stderr, "relais-bench: cannot bind %s\n", bind_endpoint);
        goto done;
    }
    char *last = zsock_last_endpoint (pub);
    snprintf (result->endpoint, sizeof result->endpoint, "%s", last? last: bind_endpoint);
    zstr_free (&last);
    void *pub_handle = zsock_resolve (pub);
    for (int i = 0; i < nsubs; i++) {
        if (zsock_connect (subs [i], "%s", result->endpoint))
            goto done;
        //  The slow joiner: send probes until the subscription has arrived
        uint64_t deadline = relais_clock_mono () + 5000000;
        bool joined = false;
        while (!joined && relais_clock_mono () < deadline && !s_interrupted) {
            zmq_send (pub_handle, "$join", 5, 0);
            if (s_poll_in (subs [i], 20) > 0)
                joined = true;
        }
        if (!joined) {
            fprintf (stderr, "relais-bench: SUB never joined %s\n", result->endpoint);
            goto done;
        }
    }
    //  Earlier subscribers got probes meant for later ones: drop them all
    s_sleep_ms (50);
    for (int i = 0; i < nsubs; i++)
        while (s_poll_in (subs [i], 0) > 0) {
            char *probe = zstr_recv (subs [i]);
            zstr_free (&probe);
        }
    for (; started < nsubs; started++) {
        rx [started].sub = subs [started];
        if (pthread_create (&threads [started], NULL, s_raw_receiver, &rx [started]))
            goto done;
    }
    uint64_t start = relais_clock_mono ();
    uint64_t sent = 0;
    for (; sent < count && !s_interrupted; sent++) {
        if (zmq_send (pub_handle, "signal.created", 14, ZMQ_SNDMORE) < 0
        ||  zmq_send (pub_handle, payload, size, 0) < 0)
            break;
    }
    //  A short pause lets the queues drain, then the end marker (repeated:
    //  PUB may drop it at the high-water mark too)
    s_sleep_ms (100);
    for (int i = 0; i < 50 && !s_interrupted; i++) {
        zmq_send (pub_handle, "$end", 4, 0);
        s_sleep_ms (20);
        bool quiet = true;
        for (int j = 0; j < nsubs; j++)
            if (!rx [j].last_us || relais_clock_mono () - rx [j].last_us <= 200000)
                quiet = false;
        if (quiet)
            break;
    }
    for (int i = 0; i < started; i++)
        pthread_join (threads [i], NULL);
    started = 0;
    result->sent = sent;
    s_raw_result (result, rx, nsubs, start);
    rc = s_interrupted || sent < count? -1: 0;
done:
    for (int i = 0; i < started; i++)
        pthread_join (threads [i], NULL);     //  they stop after 2 s of silence
    for (int i = 0; i < nsubs; i++)
        zsock_destroy (&subs [i]);
    zsock_destroy (&pub);
    return rc;
}

//  ---------------------------------------------------------------------------
//  4: pipelined producers

//  Producers warm up (connect, one submit), then wait here until all are
//  ready, so the clock starts for all at once.
typedef struct {
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    uint32_t ready;
    bool go;
} s_gate_t;

static void
s_gate_wait (s_gate_t *gate)
{
    pthread_mutex_lock (&gate->mutex);
    gate->ready++;
    pthread_cond_broadcast (&gate->cond);
    while (!gate->go)
        pthread_cond_wait (&gate->cond, &gate->mutex);
    pthread_mutex_unlock (&gate->mutex);
}

//  Wait until count producers are ready (or gave up), then open the gate.
static void
s_gate_open (s_gate_t *gate, uint32_t count)
{
    pthread_mutex_lock (&gate->mutex);
    while (gate->ready < count)
        pthread_cond_wait (&gate->cond, &gate->mutex);
    gate->go = true;
    pthread_cond_broadcast (&gate->cond);
    pthread_mutex_unlock (&gate->mutex);
}

typedef struct {
    const char *endpoint;
    char prefix [64];               //  idem prefix, unique per run and producer
    uint64_t count;
    uint32_t window;
    s_gate_t *gate;
    //  results
    uint64_t acked, duplicates, errors, sent, resends, late_replies;
    uint64_t start_us, end_us;
    int rc;
    char first_error [192];
} s_producer_t;

//  Send one submit and wait for its reply (warm-ups and lone latency).
//  Returns 0 on an ok reply; *latency_us gets the round trip.
static int
s_submit_one (zsock_t *sock, msgpack_sbuffer *sbuf, const char *idem, uint64_t index,
              uint64_t *latency_us, char *error, size_t error_size)
{
    msgpack_sbuffer_clear (sbuf);
    s_pack_submit (sbuf, idem, index, index, relais_clock_now ());
    uint64_t start = relais_clock_mono ();
    int rc = s_send_request (sock, sbuf->data, sbuf->size);
    if (rc)
        return rc;
    for (;;) {
        int ready = s_poll_in (sock, 1000);
        if (ready < 0)
            return ready;
        if (s_interrupted)
            return -EINTR;
        if (ready > 0)
            break;
        if (relais_clock_mono () - start > S_STALL_US) {
            snprintf (error, error_size, "no reply in %llu s",
                      (unsigned long long) (S_STALL_US / 1000000));
            return -ETIMEDOUT;
        }
    }
    s_reply_t reply;
    if ((rc = s_reply_recv (sock, &reply, false, NULL)))
        return rc;
    if (latency_us)
        *latency_us = relais_clock_mono () - start;
    if (!s_reply_ok (&reply)) {
        s_reply_error (&reply, error, error_size);
        rc = -EPROTO;
    }
    s_reply_release (&reply);
    return rc;
}

//  Send request index of this producer (idem and body rebuilt the same way:
//  a resend carries the same idem, which is all that idempotency needs).
static int
s_producer_send (s_producer_t *self, zsock_t *sock, msgpack_sbuffer *sbuf, uint64_t index)
{
    char idem [96];
    snprintf (idem, sizeof idem, "%s-%llu", self->prefix, (unsigned long long) index);
    msgpack_sbuffer_clear (sbuf);
    s_pack_submit (sbuf, idem, index, index, relais_clock_now ());
    return s_send_request (sock, sbuf->data, sbuf->size);
}

//  A producer as the protocol wants one: pipelined up to its window, and
//  retrying (same idem) every request left unanswered for S_RESEND_US.
static void *
s_producer (void *arg)
{
    s_producer_t *self = (s_producer_t *) arg;
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    char idem [96];
    //  sent_at [i]: monotonic µs of the last send of request i; 0 once answered
    uint64_t *sent_at = (uint64_t *) calloc (self->count? self->count: 1, sizeof *sent_at);
    zsock_t *sock = s_dealer_new (self->endpoint);
    self->rc = sock && sent_at? 0: -ENOMEM;
    //  One warm-up submit, so the connection exists before the clock starts
    if (self->rc == 0) {
        snprintf (idem, sizeof idem, "%s-warm", self->prefix);
        self->rc = s_submit_one (sock, &sbuf, idem, 0, NULL, self->first_error,
                                 sizeof self->first_error);
    }
    s_gate_wait (self->gate);
    self->start_us = relais_clock_mono ();
    uint64_t last_reply = self->start_us, last_scan = self->start_us;
    uint64_t answered = 0, oldest = 0;      //  oldest: lowest unanswered index
    while (self->rc == 0 && answered < self->count && !s_interrupted) {
        while (self->sent < self->count && self->sent - answered < self->window) {
            sent_at [self->sent] = relais_clock_mono ();
            if ((self->rc = s_producer_send (self, sock, &sbuf, self->sent)))
                break;
            self->sent++;
        }
        int ready = s_poll_in (sock, 100);
        if (ready < 0) {
            self->rc = ready;
            break;
        }
        uint64_t now = relais_clock_mono ();
        if (ready > 0) {
            last_reply = now;
            s_reply_t reply;
            int rc;
            while ((rc = s_reply_recv (sock, &reply, true, NULL)) != -EAGAIN) {
                if (rc) {
                    if (!self->first_error [0])
                        snprintf (self->first_error, sizeof self->first_error,
                                  "undecodable reply (%s)", relais_strerror (rc));
                    continue;       //  its request will be resent
                }
                uint64_t rid = UINT64_MAX;
                relais_msg_uint (relais_msg_get (&reply.msg.root, "rid"), &rid);
                if (rid < self->sent && sent_at [rid]) {
                    sent_at [rid] = 0;
                    answered++;
                    if (s_reply_ok (&reply)) {
                        self->acked++;
                        const msgpack_object *dup = relais_msg_get (&reply.msg.root, "duplicate");
                        if (dup && dup->type == MSGPACK_OBJECT_BOOLEAN && dup->via.boolean)
                            self->duplicates++;
                    }
                    else {
                        self->errors++;
                        if (!self->first_error [0])
                            s_reply_error (&reply, self->first_error, sizeof self->first_error);
                    }
                }
                else
                    self->late_replies++;   //  the first reply to a resent request
                s_reply_release (&reply);
            }
            self->end_us = relais_clock_mono ();
        }
        //  Resend what has waited too long (a lost request or a lost ack)
        if (now - last_scan >= 100000) {
            last_scan = now;
            while (oldest < self->sent && sent_at [oldest] == 0)
                oldest++;
            for (uint64_t i = oldest; i < self->sent && self->rc == 0; i++)
                if (sent_at [i] && now - sent_at [i] > S_RESEND_US) {
                    sent_at [i] = now;
                    self->resends++;
                    self->rc = s_producer_send (self, sock, &sbuf, i);
                }
        }
        if (now - last_reply > S_STALL_US) {
            snprintf (self->first_error, sizeof self->first_error,
                      "no reply in %llu s (%llu of %llu answered)",
                      (unsigned long long) (S_STALL_US / 1000000),
                      (unsigned long long) answered, (unsigned long long) self->count);
            self->rc = -ETIMEDOUT;
        }
    }
    if (!self->end_us)
        self->end_us = relais_clock_mono ();
    if (s_interrupted && !self->rc)
        self->rc = -EINTR;
    zsock_destroy (&sock);
    msgpack_sbuffer_destroy (&sbuf);
    free (sent_at);
    return NULL;
}

static int
s_bench_submits (const char *endpoint, const char *tag, uint32_t producers, uint64_t total,
                 uint32_t window, s_submits_t *result)
{
    s_producer_t *workers = (s_producer_t *) calloc (producers, sizeof *workers);
    pthread_t *threads = (pthread_t *) calloc (producers, sizeof *threads);
    if (!workers || !threads) {
        free (workers);
        free (threads);
        return -ENOMEM;
    }
    s_gate_t gate = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, false };
    uint32_t started = 0;
    for (uint32_t i = 0; i < producers; i++) {
        s_producer_t *w = &workers [i];
        w->endpoint = endpoint;
        snprintf (w->prefix, sizeof w->prefix, "bench-%ld-%s-%u-p%u",
                  (long) getpid (), tag, (unsigned) (relais_clock_now () % 1000000), i);
        w->count = total / producers + (i < total % producers? 1: 0);
        w->window = window;
        w->gate = &gate;
        if (pthread_create (&threads [i], NULL, s_producer, w))
            break;
        started++;
    }
    int rc = started < producers? -EAGAIN: 0;
    s_gate_open (&gate, started);
    uint64_t start = UINT64_MAX, end = 0;
    memset (result, 0, sizeof *result);
    if (rc)
        snprintf (result->first_error, sizeof result->first_error,
                  "could start only %u producer threads of %u", started, producers);
    for (uint32_t i = 0; i < started; i++) {
        pthread_join (threads [i], NULL);
        s_producer_t *w = &workers [i];
        result->requests += w->count;
        result->acked += w->acked;
        result->duplicates += w->duplicates;
        result->errors += w->errors;
        result->resends += w->resends;
        if (w->start_us < start)
            start = w->start_us;
        if (w->end_us > end)
            end = w->end_us;
        if (w->first_error [0] && !result->first_error [0])
            snprintf (result->first_error, sizeof result->first_error, "%s", w->first_error);
        if (w->rc && !rc)
            rc = w->rc;
    }
    pthread_mutex_destroy (&gate.mutex);
    pthread_cond_destroy (&gate.cond);
    result->seconds = s_seconds (start, end);
    result->rate = (double) result->acked / result->seconds;
    free (workers);
    free (threads);
    if (!rc && (result->errors || result->acked < result->requests))
        rc = -EPROTO;
    return rc;
}

//  4: lone-submit ack latency, one request in flight
static int
s_bench_lone (const char *endpoint, uint64_t count, s_latency_t *result, char *error,
              size_t error_size)
{
    zsock_t *sock = s_dealer_new (endpoint);
    uint64_t *us = (uint64_t *) calloc (count? count: 1, sizeof *us);
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    int rc = sock && us? 0: -ENOMEM;
    char prefix [64], idem [96];
    snprintf (prefix, sizeof prefix, "bench-%ld-lone-%u", (long) getpid (),
              (unsigned) (relais_clock_now () % 1000000));
    if (rc == 0) {
        snprintf (idem, sizeof idem, "%s-warm", prefix);
        rc = s_submit_one (sock, &sbuf, idem, 0, NULL, error, error_size);
    }
    uint64_t n = 0;
    for (; rc == 0 && n < count; n++) {
        snprintf (idem, sizeof idem, "%s-%llu", prefix, (unsigned long long) n);
        rc = s_submit_one (sock, &sbuf, idem, n, &us [n], error, error_size);
    }
    if (rc)
        n = n? n - 1: 0;
    result->requests = count;
    s_latency_fill (result, us, n);
    free (us);
    msgpack_sbuffer_destroy (&sbuf);
    zsock_destroy (&sock);
    return rc;
}

//  ---------------------------------------------------------------------------
//  5: submit -> subscriber latency at a paced rate

typedef struct {
    uint64_t seq;
    uint64_t us;
} s_stamp_t;

static int
s_cmp_stamp (const void *a, const void *b)
{
    uint64_t x = ((const s_stamp_t *) a)->seq, y = ((const s_stamp_t *) b)->seq;
    return x < y? -1: x > y;
}

//  Drain every event waiting on sub into events (topic "$hb" is skipped).
static void
s_drain_events (zsock_t *sub, s_stamp_t *events, size_t capacity, size_t *count)
{
    void *handle = zsock_resolve (sub);
    zmq_msg_t topic, body;
    zmq_msg_init (&topic);
    zmq_msg_init (&body);
    while (zmq_msg_recv (&topic, handle, ZMQ_DONTWAIT) >= 0) {
        uint64_t now = relais_clock_mono ();
        if (!zmq_msg_more (&topic))
            continue;
        if (zmq_msg_recv (&body, handle, 0) < 0)
            break;
        while (zmq_msg_more (&body)) {     //  tolerate extra frames
            if (zmq_msg_recv (&body, handle, 0) < 0)
                break;
        }
        if (zmq_msg_size (&topic) > 0 && ((const char *) zmq_msg_data (&topic)) [0] == '$')
            continue;
        relais_msg_t msg;
        relais_error_t err;
        if (relais_msg_decode (&msg, zmq_msg_data (&body), zmq_msg_size (&body), NULL, &err))
            continue;
        uint64_t seq = 0;
        if (relais_msg_uint (relais_msg_get (&msg.root, "seq"), &seq) && *count < capacity) {
            events [*count].seq = seq;
            events [*count].us = now;
            (*count)++;
        }
        relais_msg_release (&msg);
    }
    zmq_msg_close (&topic);
    zmq_msg_close (&body);
}

static int
s_bench_paced (const char *submit_ep, const char *pub_ep, uint64_t rate, uint64_t duration_ms,
               s_latency_t *result, char *error, size_t error_size)
{
    uint64_t count = rate * duration_ms / 1000;
    if (count == 0)
        count = 1;
    uint64_t interval_us = 1000000 / (rate? rate: 1);
    size_t capacity = count + 1024;
    uint64_t *sent_at = (uint64_t *) calloc (count, sizeof *sent_at);
    s_stamp_t *acks = (s_stamp_t *) calloc (count, sizeof *acks);
    s_stamp_t *events = (s_stamp_t *) calloc (capacity, sizeof *events);
    uint64_t *us = (uint64_t *) calloc (count, sizeof *us);
    zsock_t *dealer = s_dealer_new (submit_ep);
    zsock_t *sub = zsock_new (ZMQ_SUB);
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    int rc = sent_at && acks && events && us && dealer && sub? 0: -ENOMEM;
    size_t nacks = 0, nevents = 0, errors = 0, matched = 0;
    uint64_t max_ack_seq = 0;
    uint64_t sent = 0, start = 0, last_send = 0;
    char prefix [64], idem [96];
    snprintf (prefix, sizeof prefix, "bench-%ld-paced-%u", (long) getpid (),
              (unsigned) (relais_clock_now () % 1000000));
    if (rc)
        goto done;
    zsock_set_rcvhwm (sub, S_HWM);
    zsock_set_linger (sub, 0);
    zsock_set_subscribe (sub, "");
    if (zsock_connect (sub, "%s", pub_ep)) {
        rc = -EINVAL;
        goto done;
    }
    //  Joined once a heartbeat arrives (intake sends one every second)
    uint64_t deadline = relais_clock_mono () + 5000000;
    bool joined = false;
    while (!joined && !s_interrupted && relais_clock_mono () < deadline) {
        if (s_poll_in (sub, 100) > 0) {
            zmsg_t *msg = zmsg_recv (sub);
            zmsg_destroy (&msg);
            joined = true;
        }
    }
    if (!joined) {
        s_format (error, error_size, "no heartbeat on %s in 5 s", pub_ep);
        rc = -ETIMEDOUT;
        goto done;
    }
    snprintf (idem, sizeof idem, "%s-warm", prefix);
    if ((rc = s_submit_one (dealer, &sbuf, idem, 0, NULL, error, error_size)))
        goto done;
    s_drain_events (sub, events, 0, &nevents);     //  drop the warm-up event

    zmq_pollitem_t items [2] = {
        { zsock_resolve (dealer), 0, ZMQ_POLLIN, 0 },
        { zsock_resolve (sub), 0, ZMQ_POLLIN, 0 }
    };
    start = relais_clock_mono ();
    uint64_t tail_deadline = 0;
    while (!s_interrupted) {
        uint64_t now = relais_clock_mono ();
        while (sent < count && now >= start + sent * interval_us) {
            snprintf (idem, sizeof idem, "%s-%llu", prefix, (unsigned long long) sent);
            msgpack_sbuffer_clear (&sbuf);
            s_pack_submit (&sbuf, idem, sent, sent, relais_clock_now ());
            sent_at [sent] = relais_clock_mono ();
            if ((rc = s_send_request (dealer, sbuf.data, sbuf.size)))
                goto done;
            sent++;
            last_send = sent_at [sent - 1];
            now = relais_clock_mono ();
        }
        if (sent == count) {
            //  One PUB delivers in order: the event of the highest acked
            //  seq comes after all the others
            if (nacks + errors == count
            &&  nevents > 0 && events [nevents - 1].seq >= max_ack_seq)
                break;
            if (!tail_deadline)
                tail_deadline = now + S_STALL_US;
            if (now > tail_deadline) {
                snprintf (error, error_size, "tail not received: %zu acks, %zu errors, %zu events of %llu",
                          nacks, errors, nevents, (unsigned long long) count);
                rc = -ETIMEDOUT;
                break;
            }
        }
        //  Sleep until the next send is due, rounded up to the millisecond
        //  (zmq_poll's unit): sends may run up to 1 ms late, but each
        //  latency is measured from its real send time.
        long timeout = 100;
        if (sent < count) {
            uint64_t due = start + sent * interval_us;
            timeout = due > now? (long) ((due - now + 999) / 1000): 0;
        }
        if (zmq_poll (items, 2, timeout) < 0 && errno != EINTR) {
            rc = -errno;
            break;
        }
        if (items [0].revents & ZMQ_POLLIN) {
            s_reply_t reply;
            int r;
            while ((r = s_reply_recv (dealer, &reply, true, NULL)) != -EAGAIN) {
                if (r) {
                    errors++;
                    continue;
                }
                uint64_t rid = s_reply_uint (&reply, "rid");
                if (s_reply_ok (&reply) && rid < sent && nacks < count) {
                    acks [nacks].seq = s_reply_uint (&reply, "seq");
                    acks [nacks].us = sent_at [rid];
                    if (acks [nacks].seq > max_ack_seq)
                        max_ack_seq = acks [nacks].seq;
                    nacks++;
                }
                else {
                    errors++;
                    if (!error [0])
                        s_reply_error (&reply, error, error_size);
                }
                s_reply_release (&reply);
            }
        }
        if (items [1].revents & ZMQ_POLLIN)
            s_drain_events (sub, events, capacity, &nevents);
    }
    //  Match acks and events by sequence
    qsort (acks, nacks, sizeof *acks, s_cmp_stamp);
    qsort (events, nevents, sizeof *events, s_cmp_stamp);
    for (size_t a = 0, e = 0; a < nacks && e < nevents; ) {
        if (acks [a].seq < events [e].seq)
            a++;
        else
        if (acks [a].seq > events [e].seq)
            e++;
        else {
            us [matched++] = events [e].us > acks [a].us? events [e].us - acks [a].us: 0;
            a++, e++;
        }
    }
    if (!rc && (errors || matched < count)) {
        if (!error [0])
            snprintf (error, error_size, "%zu of %llu submits matched an event (%zu errors)",
                      matched, (unsigned long long) count, errors);
        rc = -EPROTO;
    }
done:
    if (s_interrupted && !rc)
        rc = -EINTR;
    result->requests = sent;
    result->actual_rate = sent > 1? (double) (sent - 1) / s_seconds (start, last_send): 0;
    s_latency_fill (result, us, us? matched: 0);
    msgpack_sbuffer_destroy (&sbuf);
    zsock_destroy (&sub);
    zsock_destroy (&dealer);
    free (sent_at);
    free (acks);
    free (events);
    free (us);
    return rc;
}

//  ---------------------------------------------------------------------------
//  6: fetch replay of the whole log

static int
s_bench_fetch (const char *endpoint, const s_opts_t *o, s_fetch_t *result, char *error,
               size_t error_size)
{
    //  bench_replay.c: pages of fetch_max events, fetch_window requests in
    //  flight, each reply read by relais_fetch_parse; every seq is checked
    bench_replay_t replay;
    memset (&replay, 0, sizeof replay);
    replay.page = o->fetch_max;
    replay.window = o->fetch_window;
    replay.max_bytes = o->fetch_bytes;
    replay.stall_ms = S_STALL_US / 1000;
    replay.interrupted = (volatile int *) &s_interrupted;
    int rc = bench_replay_run (endpoint, &replay);
    result->events = replay.events;
    result->requests = replay.requests;
    result->bytes = replay.bytes;
    result->last = replay.last;
    result->contiguous = rc == 0;
    result->seconds = s_seconds (replay.start_us, replay.end_us);
    result->rate = (double) result->events / result->seconds;
    result->mb_per_s = (double) result->bytes / 1e6 / result->seconds;
    if (rc)
        snprintf (error, error_size, "%s", replay.error);
    return rc;
}

//  ---------------------------------------------------------------------------
//  intake as a child process

typedef struct {
    char dir [S_PATH_MAX];          //  the temporary folder
    char config [S_PATH_MAX];
    char log [S_PATH_MAX];
    char submit [S_PATH_MAX], pub [S_PATH_MAX], fetch [S_PATH_MAX], records [S_PATH_MAX];
    pid_t pid;
} s_intake_t;

static int
s_intake_config (s_intake_t *self)
{
    char sock [S_PATH_MAX], var [S_PATH_MAX];
    if (!s_format (self->config, sizeof self->config, "%s/relais.cfg", self->dir)
    ||  !s_format (self->log, sizeof self->log, "%s/intake.log", self->dir)
    ||  !s_format (sock, sizeof sock, "%s/sock", self->dir)
    ||  !s_format (var, sizeof var, "%s/var", self->dir)
    ||  !s_format (self->submit, sizeof self->submit, "ipc://%s/intake-submit", sock)
    ||  !s_format (self->pub, sizeof self->pub, "ipc://%s/intake-pub", sock)
    ||  !s_format (self->fetch, sizeof self->fetch, "ipc://%s/intake-fetch", sock)
    ||  !s_format (self->records, sizeof self->records, "ipc://%s/intake-records", sock))
        return -ENAMETOOLONG;
    if (mkdir (sock, 0700) || mkdir (var, 0700))
        return -errno;
    if (strlen (self->records) - 6 >= S_IPC_MAX) {
        fprintf (stderr, "relais-bench: %s is too long a path for ipc:// sockets; "
                         "use --dir with a shorter folder\n", sock);
        return -ENAMETOOLONG;
    }
    FILE *file = fopen (self->config, "w");
    if (!file)
        return -errno;
    fprintf (file,
             "#   relais-bench: a one-machine deployment in a temporary folder\n"
             "relais\n"
             "    data = \"%s\"\n"
             "intake\n"
             "    submit = \"%s\"\n"
             "    pub = \"%s\"\n"
             "    fetch = \"%s\"\n"
             "    records = \"%s\"\n"
             "    heartbeat = 1s\n"
             "    person_key_file = \"%s/intake.key\"\n",
             var, self->submit, self->pub, self->fetch, self->records, var);
    return fclose (file) == 0? 0: -EIO;
}

static int
s_intake_start (s_intake_t *self, const char *binary)
{
    //  Everything the child needs is prepared before fork: between fork and
    //  exec only async-signal-safe calls (open, dup2, execv, _exit).
    char *const argv [] = { (char *) binary, (char *) "--config", self->config, NULL };
    pid_t pid = fork ();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        int fd = open (self->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd >= 0) {
            dup2 (fd, STDOUT_FILENO);
            dup2 (fd, STDERR_FILENO);
        }
        execv (binary, argv);
        _exit (127);
    }
    self->pid = pid;
    return 0;
}

static void
s_intake_log_tail (s_intake_t *self)
{
    FILE *file = fopen (self->log, "r");
    if (!file)
        return;
    char line [512];
    static char ring [20][512];
    int count = 0;
    while (fgets (line, sizeof line, file))
        snprintf (ring [count++ % 20], sizeof ring [0], "%s", line);
    fclose (file);
    fprintf (stderr, "relais-bench: last lines of %s:\n", self->log);
    for (int i = count > 20? count - 20: 0; i < count; i++)
        fprintf (stderr, "  %s", ring [i % 20]);
}

//  Wait until {op: "status"} on the fetch endpoint answers ok.
static int
s_intake_wait_ready (s_intake_t *self, uint64_t timeout_ms)
{
    uint64_t deadline = relais_clock_mono () + timeout_ms * 1000;
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 1);
    relais_pack_kv_str (&pk, "op", "status");
    int rc = -ETIMEDOUT;
    while (relais_clock_mono () < deadline && !s_interrupted) {
        int status;
        if (waitpid (self->pid, &status, WNOHANG) == self->pid) {
            fprintf (stderr, "relais-bench: intake exited at start (status %d)\n", status);
            self->pid = 0;
            rc = -ECHILD;
            break;
        }
        zsock_t *sock = s_dealer_new (self->fetch);
        if (!sock)
            break;
        bool ok = false;
        if (s_send_request (sock, sbuf.data, sbuf.size) == 0 && s_poll_in (sock, 250) > 0) {
            s_reply_t reply;
            if (s_reply_recv (sock, &reply, false, NULL) == 0) {
                ok = s_reply_ok (&reply);
                s_reply_release (&reply);
            }
        }
        zsock_destroy (&sock);
        if (ok) {
            rc = 0;
            break;
        }
        s_sleep_ms (50);
    }
    msgpack_sbuffer_destroy (&sbuf);
    return rc;
}

//  SIGTERM the child by its pid and wait (SIGKILL after 30 s). Returns its
//  exit code, or -1 when it had to be killed or died of a signal.
static int
s_intake_stop (s_intake_t *self)
{
    if (self->pid <= 0)
        return -1;
    kill (self->pid, SIGTERM);
    int status = 0;
    uint64_t deadline = relais_clock_mono () + 30000000;
    for (;;) {
        pid_t rc = waitpid (self->pid, &status, WNOHANG);
        if (rc == self->pid || (rc < 0 && errno != EINTR))
            break;
        if (relais_clock_mono () > deadline) {
            fprintf (stderr, "relais-bench: intake ignored SIGTERM; killing pid %ld\n",
                     (long) self->pid);
            kill (self->pid, SIGKILL);
            waitpid (self->pid, &status, 0);
            status = -1;
            break;
        }
        s_sleep_ms (10);
    }
    self->pid = 0;
    return status >= 0 && WIFEXITED (status)? WEXITSTATUS (status): -1;
}

//  The child's CPU time (user + sys) in µs from /proc/PID/stat, or -1.
static double
s_proc_cpu_us (pid_t pid)
{
    char path [64], line [1024];
    snprintf (path, sizeof path, "/proc/%ld/stat", (long) pid);
    FILE *file = fopen (path, "r");
    if (!file)
        return -1;
    size_t n = fread (line, 1, sizeof line - 1, file);
    fclose (file);
    line [n] = 0;
    //  Fields after the command name (which may hold spaces): state is 3rd,
    //  utime the 14th and stime the 15th
    char *p = strrchr (line, ')');
    unsigned long long utime, stime;
    if (!p || sscanf (p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                      &utime, &stime) != 2)
        return -1;
    return (double) (utime + stime) * 1e6 / (double) sysconf (_SC_CLK_TCK);
}

//  The child's resident memory (VmRSS) in KiB from /proc/PID/status, or -1.
static long
s_proc_rss_kib (pid_t pid)
{
    char path [64], line [256];
    snprintf (path, sizeof path, "/proc/%ld/status", (long) pid);
    FILE *file = fopen (path, "r");
    if (!file)
        return -1;
    long kib = -1;
    while (fgets (line, sizeof line, file))
        if (sscanf (line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose (file);
    return kib;
}

//  One throughput run, with intake's CPU time per acked submit.
static int
s_bench_submits_cpu (s_intake_t *intake, const char *tag, uint32_t producers,
                     uint64_t total, uint32_t window, s_submits_t *result)
{
    double before = s_proc_cpu_us (intake->pid);
    int rc = s_bench_submits (intake->submit, tag, producers, total, window, result);
    double after = s_proc_cpu_us (intake->pid);
    result->cpu_us = before >= 0 && after >= 0 && result->acked
                   ? (after - before) / (double) result->acked: -1;
    return rc;
}

//  7: intake's events to 3 plain SUBs while one producer submits with a
//  full window: events/s that reach the slowest subscriber, set beside B3
//  (the same 3 SUBs on a raw PUB).
static int
s_bench_fanout (s_intake_t *intake, uint64_t total, uint32_t window, s_raw_t *result,
                char *error, size_t error_size)
{
    zsock_t *subs [S_FANOUT] = { NULL };
    s_raw_rx_t rx [S_FANOUT];
    pthread_t threads [S_FANOUT];
    int started = 0, rc = -ENOMEM;
    memset (rx, 0, sizeof rx);
    snprintf (result->endpoint, sizeof result->endpoint, "%s", intake->pub);
    for (int i = 0; i < S_FANOUT; i++) {
        if (!(subs [i] = s_sub_new ("signal.")))
            goto done;
        if (zsock_connect (subs [i], "%s", intake->pub)) {
            rc = -EINVAL;
            goto done;
        }
    }
    //  No probe on intake's PUB: give the subscriptions time to arrive
    s_sleep_ms (300);
    for (; started < S_FANOUT; started++) {
        rx [started].sub = subs [started];
        if (pthread_create (&threads [started], NULL, s_raw_receiver, &rx [started]))
            goto done;
    }
    s_submits_t load;
    memset (&load, 0, sizeof load);
    uint64_t start = relais_clock_mono ();
    rc = s_bench_submits (intake->submit, "fanout", 1, total, window, &load);
    if (rc)
        snprintf (error, error_size, "%s", load.first_error);
    //  The receivers stop after 2 s of silence
    for (int i = 0; i < started; i++)
        pthread_join (threads [i], NULL);
    started = 0;
    result->sent = load.acked + 1;          //  and the producer's warm-up submit
    s_raw_result (result, rx, S_FANOUT, start);
done:
    for (int i = 0; i < started; i++)
        pthread_join (threads [i], NULL);
    for (int i = 0; i < S_FANOUT; i++)
        zsock_destroy (&subs [i]);
    return rc;
}

//  ---------------------------------------------------------------------------
//  Machine information

static void
s_machine (s_results_t *r, const char *dir)
{
    r->nproc = sysconf (_SC_NPROCESSORS_ONLN);
    struct utsname uts;
    if (uname (&uts) == 0)
        snprintf (r->kernel, sizeof r->kernel, "%s %s %s", uts.sysname, uts.release, uts.machine);
    FILE *file = fopen ("/proc/cpuinfo", "r");
    char line [1024];
    if (file) {
        while (fgets (line, sizeof line, file))
            if (strncmp (line, "model name", 10) == 0) {
                char *colon = strchr (line, ':');
                if (colon) {
                    colon += strspn (colon + 1, " \t") + 1;
                    colon [strcspn (colon, "\n")] = 0;
                    snprintf (r->cpu, sizeof r->cpu, "%s", colon);
                }
                break;
            }
        fclose (file);
    }
    //  The filesystem of dir: the longest mount point that prefixes it
    snprintf (r->data_dir, sizeof r->data_dir, "%s", dir);
    char real [S_PATH_MAX];
    if (!realpath (dir, real))
        snprintf (real, sizeof real, "%s", dir);
    size_t best = 0;
    file = fopen ("/proc/self/mountinfo", "r");
    if (file) {
        while (fgets (line, sizeof line, file)) {
            //  id parent major:minor root mountpoint options ... - fstype source ...
            char mount [1024], type [64], source [256];
            char *dash = strstr (line, " - ");
            if (!dash || sscanf (line, "%*s %*s %*s %*s %1023s", mount) != 1
            ||  sscanf (dash + 3, "%63s %255s", type, source) != 2)
                continue;
            size_t len = strlen (mount);
            bool prefix = strcmp (mount, "/") == 0
                       || (strncmp (real, mount, len) == 0 && (real [len] == '/' || real [len] == 0));
            if (prefix && len >= best) {
                best = len;
                snprintf (r->fs_type, sizeof r->fs_type, "%s", type);
                snprintf (r->fs_source, sizeof r->fs_source, "%s", source);
            }
        }
        fclose (file);
    }
    if (!r->fs_type [0]) {
        struct statfs st;
        if (statfs (dir, &st) == 0)
            snprintf (r->fs_type, sizeof r->fs_type, "magic 0x%lx", (unsigned long) st.f_type);
    }
    int major, minor, patch;
    zmq_version (&major, &minor, &patch);
    snprintf (r->libs, sizeof r->libs, "libzmq %d.%d.%d, czmq %d.%d.%d, msgpack-c %s",
              major, minor, patch, CZMQ_VERSION_MAJOR, CZMQ_VERSION_MINOR, CZMQ_VERSION_PATCH,
              msgpack_version ());
}

//  ---------------------------------------------------------------------------
//  Output

static void
s_json_str (const char *text)
{
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

static double
s_gain (const s_results_t *r, const s_submits_t *s)
{
    return r->fsync_each.rate > 0? s->rate / r->fsync_each.rate: 0;
}

static void
s_print_json (const s_results_t *r, const s_opts_t *o)
{
    printf ("{\"command\":");
    s_json_str (r->command);
    printf (",\"machine\":{\"nproc\":%ld,\"cpu\":", r->nproc);
    s_json_str (r->cpu);
    printf (",\"kernel\":");
    s_json_str (r->kernel);
    printf (",\"data_dir\":");
    s_json_str (r->data_dir);
    printf (",\"filesystem\":");
    s_json_str (r->fs_type);
    printf (",\"device\":");
    s_json_str (r->fs_source);
    printf (",\"libraries\":");
    s_json_str (r->libs);
    printf ("},\"smoke\":%s,\"payload_bytes\":%zu", o->smoke? "true": "false", r->payload);
    printf (",\"lmdb_commit_per_event\":{\"events\":%llu,\"seconds\":%.3f,\"events_per_s\":%.1f}",
            (unsigned long long) r->fsync_each.count, r->fsync_each.seconds, r->fsync_each.rate);
    printf (",\"lmdb_group_commit\":{\"events\":%llu,\"per_txn\":%llu,\"seconds\":%.3f,"
            "\"events_per_s\":%.1f}",
            (unsigned long long) r->group.count, (unsigned long long) o->group_size,
            r->group.seconds, r->group.rate);
    const s_raw_t *raws [2] = { &r->raw_ipc, &r->raw_tcp };
    const char *raw_names [2] = { "zmq_pubsub_ipc", "zmq_pubsub_tcp" };
    for (int i = 0; i < 2; i++) {
        printf (",\"%s\":{\"endpoint\":", raw_names [i]);
        s_json_str (raws [i]->endpoint);
        printf (",\"sent\":%llu,\"received\":%llu,\"seconds\":%.3f,\"msgs_per_s\":%.1f}",
                (unsigned long long) raws [i]->sent, (unsigned long long) raws [i]->received,
                raws [i]->seconds, raws [i]->rate);
    }
    const s_submits_t *subs [3] = { &r->one, &r->narrow, &r->many };
    const char *sub_names [3] = { "intake_submits_1_producer", "intake_submits_1_producer_window_100",
                                  "intake_submits_n_producers" };
    uint32_t counts [3] = { 1, 1, o->producers };
    uint32_t windows [3] = { o->window, 100, o->window };
    for (int i = 0; i < 3; i++)
        printf (",\"%s\":{\"producers\":%u,\"window\":%u,\"requests\":%llu,\"acked\":%llu,"
                "\"errors\":%llu,\"resends\":%llu,\"seconds\":%.3f,\"acks_per_s\":%.1f,"
                "\"intake_cpu_us_per_ack\":%.2f,\"gain_over_commit_per_event\":%.2f}",
                sub_names [i], counts [i], windows [i], (unsigned long long) subs [i]->requests,
                (unsigned long long) subs [i]->acked, (unsigned long long) subs [i]->errors,
                (unsigned long long) subs [i]->resends, subs [i]->seconds, subs [i]->rate,
                subs [i]->cpu_us, s_gain (r, subs [i]));
    const s_raw_t *fans [2] = { &r->raw_fanout, &r->fanout };
    const char *fan_names [2] = { "zmq_pubsub_ipc_3_subscribers", "intake_to_3_subscribers" };
    for (int i = 0; i < 2; i++)
        printf (",\"%s\":{\"sent\":%llu,\"received_by_slowest\":%llu,\"seconds\":%.3f,"
                "\"per_subscriber_per_s\":%.1f}", fan_names [i],
                (unsigned long long) fans [i]->sent, (unsigned long long) fans [i]->received,
                fans [i]->seconds, fans [i]->rate);
    printf (",\"intake_rss_kib\":{\"idle\":%ld,\"after_load\":%ld}",
            r->rss_idle_kib, r->rss_loaded_kib);
    printf (",\"intake_lone_ack_latency_ms\":{\"samples\":%llu,\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f}",
            (unsigned long long) r->lone.samples, r->lone.p50_ms, r->lone.p99_ms, r->lone.max_ms);
    printf (",\"submit_to_sub_latency_ms\":{\"target_rate\":%llu,\"actual_rate\":%.1f,"
            "\"samples\":%llu,\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f}",
            (unsigned long long) o->paced_rate, r->paced.actual_rate,
            (unsigned long long) r->paced.samples, r->paced.p50_ms, r->paced.p99_ms,
            r->paced.max_ms);
    printf (",\"fetch_replay\":{\"events\":%llu,\"requests\":%llu,\"bytes\":%llu,\"seconds\":%.3f,"
            "\"events_per_s\":%.1f,\"mb_per_s\":%.2f,\"intake_cpu_us_per_event\":%.3f,"
            "\"contiguous\":%s}",
            (unsigned long long) r->fetch.events, (unsigned long long) r->fetch.requests,
            (unsigned long long) r->fetch.bytes, r->fetch.seconds, r->fetch.rate,
            r->fetch.mb_per_s, r->fetch.cpu_us, r->fetch.contiguous? "true": "false");
    printf (",\"group_commit_gain\":%.2f,\"goal\":20,\"goal_met\":%s,\"intake_exit\":%d}\n",
            s_gain (r, &r->many), s_gain (r, &r->many) >= 20? "true": "false", r->intake_exit);
}

static void
s_print_table (const s_results_t *r, const s_opts_t *o)
{
    printf ("relais-bench%s - one run, one machine\n", o->smoke? " (smoke: tiny counts, figures not meaningful)": "");
    printf ("  command    %s\n", r->command);
    printf ("  machine    %ld CPU%s%s%s%s, %s\n", r->nproc, r->nproc == 1? "": "s",
            r->cpu [0]? " (": "", r->cpu, r->cpu [0]? ")": "", r->kernel);
    printf ("  data dir   %s on %s (%s)\n", r->data_dir, r->fs_source, r->fs_type);
    if (strcmp (r->fs_type, "tmpfs") == 0 || strcmp (r->fs_type, "ramfs") == 0)
        printf ("  WARNING    the data dir is in memory: fsync costs nothing there; use --dir on a disk\n");
    printf ("  libraries  %s\n", r->libs);
    printf ("  payload    %zu-byte msgpack submit request (same bytes for A, A2, B)\n\n", r->payload);
    printf ("  %-4s %-52s %9s  %-22s %s\n", "", "phase", "count", "figure", "notes");
    printf ("  %-4s %-52s %9llu  %12.0f events/s  %.2f s\n", "A",
            "store, one durable write per event (WAL fdatasync)",
            (unsigned long long) r->fsync_each.count, r->fsync_each.rate, r->fsync_each.seconds);
    char what [96];
    snprintf (what, sizeof what, "store, group write of %llu events per write",
              (unsigned long long) o->group_size);
    printf ("  %-4s %-52s %9llu  %12.0f events/s  %.2f s\n", "A2", what,
            (unsigned long long) r->group.count, r->group.rate, r->group.seconds);
    const s_raw_t *raws [2] = { &r->raw_ipc, &r->raw_tcp };
    for (int i = 0; i < 2; i++) {
        s_format (what, sizeof what, "ZeroMQ PUB->SUB %s", i == 0? "ipc://": raws [i]->endpoint);
        printf ("  %-4s %-52s %9llu  %12.0f msgs/s    received %llu/%llu sent (%.1f%%)\n", "B", what,
                (unsigned long long) raws [i]->sent, raws [i]->rate,
                (unsigned long long) raws [i]->received, (unsigned long long) raws [i]->sent,
                raws [i]->sent? 100.0 * (double) raws [i]->received / (double) raws [i]->sent: 0);
    }
    printf ("  %-4s %-52s %9llu  %12.0f msgs/s    received %llu/%llu by the slowest of %d\n", "B3",
            "ZeroMQ PUB->3 SUBs ipc://", (unsigned long long) r->raw_fanout.sent,
            r->raw_fanout.rate, (unsigned long long) r->raw_fanout.received,
            (unsigned long long) r->raw_fanout.sent, S_FANOUT);
    const s_submits_t *subs [3] = { &r->one, &r->narrow, &r->many };
    for (int i = 0; i < 3; i++) {
        snprintf (what, sizeof what, "intake durable acked submits, %u producer%s, window %u",
                  i < 2? 1: o->producers, i < 2? "": "s", i == 1? 100: o->window);
        char resent [64] = "";
        if (subs [i]->resends)
            snprintf (resent, sizeof resent, ", %llu RESENT (no ack in %llu s)",
                      (unsigned long long) subs [i]->resends,
                      (unsigned long long) (S_RESEND_US / 1000000));
        printf ("  %-4s %-52s %9llu  %12.0f submits/s %.2f s, intake CPU %.1f us/submit, "
                "x%.1f over A%s%s%s\n", "4", what,
                (unsigned long long) subs [i]->requests, subs [i]->rate, subs [i]->seconds,
                subs [i]->cpu_us, s_gain (r, subs [i]), resent, subs [i]->errors? ", ERRORS: ": "",
                subs [i]->errors? subs [i]->first_error: "");
    }
    printf ("  %-4s %-52s %9llu  p50 %7.3f ms       p99 %.3f ms, max %.3f ms\n", "4",
            "intake lone submit ack latency (1 in flight)",
            (unsigned long long) r->lone.samples, r->lone.p50_ms, r->lone.p99_ms, r->lone.max_ms);
    snprintf (what, sizeof what, "submit -> SUB event latency, paced %llu/s for %.1f s",
              (unsigned long long) o->paced_rate, (double) o->paced_ms / 1000.0);
    printf ("  %-4s %-52s %9llu  p50 %7.3f ms       p99 %.3f ms, max %.3f ms, sent at %.0f/s\n",
            "5", what, (unsigned long long) r->paced.samples, r->paced.p50_ms, r->paced.p99_ms,
            r->paced.max_ms, r->paced.actual_rate);
    snprintf (what, sizeof what, "fetch replay of the whole log (max %u, %u in flight)",
              o->fetch_max, o->fetch_window);
    printf ("  %-4s %-52s %9llu  %12.0f events/s  %.1f MB/s, intake CPU %.2f us/event, "
            "%llu fetches, %s\n", "6", what,
            (unsigned long long) r->fetch.events, r->fetch.rate, r->fetch.mb_per_s, r->fetch.cpu_us,
            (unsigned long long) r->fetch.requests,
            r->fetch.contiguous? "seqs contiguous": "SEQS NOT CONTIGUOUS");
    printf ("  %-4s %-52s %9llu  %12.0f events/s  received %llu/%llu by the slowest of %d; "
            "%.0f%% of B3 (0: B3 not run)\n", "7", "intake -> 3 SUBs, 1 producer, window 1000 (ipc://)",
            (unsigned long long) r->fanout.sent, r->fanout.rate,
            (unsigned long long) r->fanout.received, (unsigned long long) r->fanout.sent,
            S_FANOUT, r->raw_fanout.rate > 0? 100.0 * r->fanout.rate / r->raw_fanout.rate: 0);
    printf ("  %-4s %-52s %9s  %9.1f MiB      after load %.1f MiB (VmRSS)\n", "R",
            "intake resident memory, idle after start", "",
            r->rss_idle_kib / 1024.0, r->rss_loaded_kib / 1024.0);
    double gain = s_gain (r, &r->many);
    printf ("\n  group commit gain x%.1f over one commit per event "
            "(%u producers: %.0f submits/s vs A: %.0f events/s) - goal >= x20: %s\n",
            gain, o->producers, r->many.rate, r->fsync_each.rate,
            gain >= 20? "met": "NOT met");
    if (r->one.resends || r->narrow.resends || r->many.resends)
        printf ("  WARNING    intake left %llu submits unanswered for %llu s (lost acks or requests);\n"
                "             the producers resent them with the same idem, and the rates above\n"
                "             include that wait\n",
                (unsigned long long) (r->one.resends + r->narrow.resends + r->many.resends),
                (unsigned long long) (S_RESEND_US / 1000000));
    printf ("  intake stopped with SIGTERM, exit code %d\n", r->intake_exit);
}

//  ---------------------------------------------------------------------------

static void
s_usage (FILE *out)
{
    fprintf (out,
        "usage: relais-bench [--intake PATH] [--dir DIR] [--smoke] [--json] [--keep]\n"
        "                    [--submits N] [--producers N] [--window N]\n"
        "                    [--quick] [--fetch-max N] [--fetch-window N] [--fetch-bytes N]\n"
        "       relais-bench --replay ENDPOINT [--fetch-max N] [--fetch-window N] [--fetch-bytes N]\n"
        "  --intake PATH  relais-intake binary (default: the build tree's, next to this one)\n"
        "  --dir DIR      parent of the temporary data folder (default: $TMPDIR, else /tmp);\n"
        "                 put it on the disk you want measured, never on tmpfs\n"
        "  --smoke        tiny counts: checks that every phase runs, figures mean nothing\n"
        "  --json         print one JSON object instead of the table\n"
        "  --keep         keep the temporary folder (data, intake.log)\n"
        "  --submits N    submits of each throughput run (default 50000)\n"
        "  --producers N  producers of the second throughput run (default 8)\n"
        "  --window N     requests in flight per producer (default 1000)\n"
        "  --quick        skip A, A2, B and 5 (intake's own figures only)\n"
        "  --replay E     only phase 6, against the fetch endpoint E of a running service\n"
        "  --fetch-max N  6: events per fetch (default 2000, at most 10000)\n"
        "  --fetch-window N  6: fetches in flight (default 2, at most 8)\n"
        "  --fetch-bytes N   6: max_bytes asked (default 8 MiB; 0: not asked, 1 MiB)\n");
}

static bool
s_arg_uint (const char *text, uint64_t min, uint64_t *value)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull (text, &end, 10);
    if (errno || *end || end == text || text [0] == '-' || v < min)
        return false;
    *value = v;
    return true;
}

//  The build tree's relais-intake, found from where this binary lives.
static char *
s_default_intake (void)
{
    char self [S_PATH_MAX];
    ssize_t n = readlink ("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return NULL;
    self [n] = 0;
    char *slash = strrchr (self, '/');
    if (!slash)
        return NULL;
    *slash = 0;
    const char *candidates [] = {
        "../../services/intake/relais-intake",      //  build/tests/bench/
        "../services/intake/relais-intake",
        "relais-intake",                            //  installed side by side
    };
    for (size_t i = 0; i < sizeof candidates / sizeof candidates [0]; i++) {
        char path [S_PATH_MAX + 64];
        snprintf (path, sizeof path, "%s/%s", self, candidates [i]);
        char *real = realpath (path, NULL);
        if (real && access (real, X_OK) == 0)
            return real;
        free (real);
    }
    return NULL;
}

int
main (int argc, char *argv [])
{
    s_opts_t o = {
        .fsync_events = 2000, .group_events = 100000, .group_size = 1000,
        .raw_msgs = 200000, .submits = 50000, .producers = 8, .window = 1000,
        .lone = 2000, .paced_rate = 1000, .paced_ms = 5000, .fetch_max = 2000,
        .fetch_window = 2, .fetch_bytes = RELAIS_FETCH_BYTES_MAX
    };
    uint64_t submits = 0, producers = 0, window = 0, value = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv [i];
        bool has_value = i + 1 < argc;
        if (strcmp (arg, "--intake") == 0 && has_value)
            o.intake = argv [++i];
        else
        if (strcmp (arg, "--dir") == 0 && has_value)
            o.base = argv [++i];
        else
        if (strcmp (arg, "--smoke") == 0)
            o.smoke = true;
        else
        if (strcmp (arg, "--json") == 0)
            o.json = true;
        else
        if (strcmp (arg, "--keep") == 0)
            o.keep = true;
        else
        if (strcmp (arg, "--quick") == 0)
            o.quick = true;
        else
        if (strcmp (arg, "--submits") == 0 && has_value && s_arg_uint (argv [i + 1], 1, &submits))
            i++;
        else
        if (strcmp (arg, "--producers") == 0 && has_value
        &&  s_arg_uint (argv [i + 1], 1, &producers) && producers <= 256)
            i++;
        else
        if (strcmp (arg, "--window") == 0 && has_value
        &&  s_arg_uint (argv [i + 1], 1, &window) && window <= 50000)
            i++;
        else
        if (strcmp (arg, "--replay") == 0 && has_value)
            o.replay = argv [++i];
        else
        if (strcmp (arg, "--fetch-max") == 0 && has_value
        &&  s_arg_uint (argv [i + 1], 1, &value) && value <= RELAIS_FETCH_MAX_EVENTS) {
            o.fetch_max = (uint32_t) value;
            i++;
        }
        else
        if (strcmp (arg, "--fetch-window") == 0 && has_value
        &&  s_arg_uint (argv [i + 1], 1, &value) && value <= BENCH_REPLAY_WINDOW_MAX) {
            o.fetch_window = (uint32_t) value;
            i++;
        }
        else
        if (strcmp (arg, "--fetch-bytes") == 0 && has_value
        &&  s_arg_uint (argv [i + 1], 0, &value) && value <= RELAIS_FETCH_BYTES_MAX) {
            o.fetch_bytes = (size_t) value;
            i++;
        }
        else
        if (strcmp (arg, "--help") == 0 || strcmp (arg, "-h") == 0) {
            s_usage (stdout);
            return EXIT_SUCCESS;
        }
        else {
            fprintf (stderr, "relais-bench: bad argument '%s'\n", arg);
            s_usage (stderr);
            return EXIT_FAILURE;
        }
    }
    if (o.smoke) {
        o.fsync_events = 50;
        o.group_events = 2000;
        o.raw_msgs = 1000;
        o.submits = 500;
        o.lone = 50;
        o.paced_ms = 500;
    }
    if (submits)
        o.submits = submits;
    if (producers)
        o.producers = (uint32_t) producers;
    if (window)
        o.window = (uint32_t) window;

    if (o.replay) {
        //  Phase 6 alone, against a service already running: any log
        s_fetch_t fetch;
        memset (&fetch, 0, sizeof fetch);
        char error [256] = "";
        int rc = s_bench_fetch (o.replay, &o, &fetch, error, sizeof error);
        printf ("replay %s: %llu events in %.3f s, %.0f events/s, %.1f MB/s, %llu fetches "
                "(max %u, %u in flight, max_bytes %zu)%s%s\n", o.replay,
                (unsigned long long) fetch.events, fetch.seconds, fetch.rate, fetch.mb_per_s,
                (unsigned long long) fetch.requests, o.fetch_max, o.fetch_window,
                o.fetch_bytes, rc? ": FAILED, ": "", rc? error: "");
        return rc? EXIT_FAILURE: EXIT_SUCCESS;
    }

    static s_results_t r;
    size_t used = 0;
    for (int i = 0; i < argc && used + 2 < sizeof r.command; i++) {
        int n = snprintf (r.command + used, sizeof r.command - used, "%s%s", i? " ": "", argv [i]);
        if (n < 0)
            break;
        used += (size_t) n;
    }
    r.intake_exit = -1;
    r.rss_idle_kib = r.rss_loaded_kib = -1;

    char *intake_default = NULL;
    if (!o.intake) {
        intake_default = s_default_intake ();
        if (!intake_default) {
            fprintf (stderr, "relais-bench: relais-intake not found next to this binary; "
                             "give --intake PATH\n");
            return EXIT_FAILURE;
        }
        o.intake = intake_default;
    }
    if (access (o.intake, X_OK) != 0) {
        fprintf (stderr, "relais-bench: %s is not an executable\n", o.intake);
        free (intake_default);
        return EXIT_FAILURE;
    }

    //  Our own handling of SIGINT/SIGTERM: stop the phase, stop intake,
    //  remove the folder
    relais_log_init ("bench");
    relais_log_level (RELAIS_LOG_WARNING);
    zsys_handler_set (NULL);
    struct sigaction sa;
    memset (&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset (&sa.sa_mask);
    sigaction (SIGINT, &sa, NULL);
    sigaction (SIGTERM, &sa, NULL);

    const char *base = o.base? o.base: getenv ("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    s_intake_t intake;
    memset (&intake, 0, sizeof intake);
    snprintf (intake.dir, sizeof intake.dir, "%s/relais-bench-XXXXXX", base);
    if (!mkdtemp (intake.dir)) {
        fprintf (stderr, "relais-bench: cannot create a folder in %s: %s\n", base, strerror (errno));
        free (intake_default);
        return EXIT_FAILURE;
    }
    s_machine (&r, intake.dir);

    msgpack_sbuffer payload;
    msgpack_sbuffer_init (&payload);
    s_pack_submit (&payload, "bench-baseline-000000000000", 0, 0, relais_clock_now ());
    r.payload = payload.size;

    int rc = 0;
    char error [256] = "";
    const char *phase = "";
    char path [S_PATH_MAX + 32];

    //  A and A2: LMDB alone, each in its own folder
    if (!o.json)
        fprintf (stderr, "relais-bench: A  LMDB one commit per event (%llu)...\n",
                 (unsigned long long) o.fsync_events);
    phase = "A";
    snprintf (path, sizeof path, "%s/lmdb-a", intake.dir);
    if (!o.quick)
        rc = s_bench_lmdb (path, o.fsync_events, 1, payload.data, payload.size, &r.fsync_each);
    if (!rc && !o.quick) {
        if (!o.json)
            fprintf (stderr, "relais-bench: A2 LMDB group commit (%llu)...\n",
                     (unsigned long long) o.group_events);
        phase = "A2";
        snprintf (path, sizeof path, "%s/lmdb-a2", intake.dir);
        rc = s_bench_lmdb (path, o.group_events, o.group_size, payload.data, payload.size,
                           &r.group);
    }
    //  B: raw ZeroMQ
    if (!rc && !o.quick) {
        if (!o.json)
            fprintf (stderr, "relais-bench: B  ZeroMQ PUB->SUB (%llu msgs, ipc and tcp)...\n",
                     (unsigned long long) o.raw_msgs);
        phase = "B ipc";
        snprintf (path, sizeof path, "ipc://%s/raw-pub", intake.dir);
        rc = s_bench_raw (path, o.raw_msgs, payload.data, payload.size, 1, &r.raw_ipc);
        if (!rc) {
            phase = "B tcp";
            rc = s_bench_raw ("tcp://127.0.0.1:*", o.raw_msgs, payload.data, payload.size,
                              1, &r.raw_tcp);
        }
        if (!rc) {
            phase = "B3 ipc, 3 subscribers";
            snprintf (path, sizeof path, "ipc://%s/raw-fanout", intake.dir);
            rc = s_bench_raw (path, o.raw_msgs, payload.data, payload.size, S_FANOUT,
                              &r.raw_fanout);
        }
    }
    //  intake
    if (!rc) {
        phase = "intake start";
        rc = s_intake_config (&intake);
        if (!rc)
            rc = s_intake_start (&intake, o.intake);
        if (!rc)
            rc = s_intake_wait_ready (&intake, 20000);
        if (rc)
            snprintf (error, sizeof error, "intake did not answer status: %s", relais_strerror (rc));
        else {
            s_sleep_ms (200);           //  let start-up allocations settle
            r.rss_idle_kib = s_proc_rss_kib (intake.pid);
        }
    }
    if (!rc) {
        if (!o.json)
            fprintf (stderr, "relais-bench: 4  intake, 1 producer (%llu submits)...\n",
                     (unsigned long long) o.submits);
        phase = "4 one producer";
        rc = s_bench_submits_cpu (&intake, "one", 1, o.submits, o.window, &r.one);
        if (rc)
            snprintf (error, sizeof error, "%s", r.one.first_error);
    }
    if (!rc) {
        if (!o.json)
            fprintf (stderr, "relais-bench: 4  intake, 1 producer, window 100 (%llu submits)...\n",
                     (unsigned long long) o.submits);
        phase = "4 one producer, window 100";
        rc = s_bench_submits_cpu (&intake, "narrow", 1, o.submits, 100, &r.narrow);
        if (rc)
            snprintf (error, sizeof error, "%s", r.narrow.first_error);
    }
    if (!rc) {
        if (!o.json)
            fprintf (stderr, "relais-bench: 4  intake, %u producers (%llu submits)...\n",
                     o.producers, (unsigned long long) o.submits);
        phase = "4 many producers";
        rc = s_bench_submits_cpu (&intake, "many", o.producers, o.submits, o.window, &r.many);
        if (rc)
            snprintf (error, sizeof error, "%s", r.many.first_error);
    }
    if (!rc) {
        if (!o.json)
            fprintf (stderr, "relais-bench: 4  intake, lone submit latency (%llu)...\n",
                     (unsigned long long) o.lone);
        phase = "4 lone latency";
        rc = s_bench_lone (intake.submit, o.lone, &r.lone, error, sizeof error);
    }
    if (!rc && !o.quick) {
        if (!o.json)
            fprintf (stderr, "relais-bench: 5  submit -> SUB latency at %llu/s for %llu ms...\n",
                     (unsigned long long) o.paced_rate, (unsigned long long) o.paced_ms);
        phase = "5 paced latency";
        rc = s_bench_paced (intake.submit, intake.pub, o.paced_rate, o.paced_ms, &r.paced,
                            error, sizeof error);
    }
    if (!rc) {
        if (!o.json)
            fprintf (stderr, "relais-bench: 6  fetch replay...\n");
        phase = "6 fetch replay";
        double before = s_proc_cpu_us (intake.pid);
        rc = s_bench_fetch (intake.fetch, &o, &r.fetch, error, sizeof error);
        double after = s_proc_cpu_us (intake.pid);
        r.fetch.cpu_us = before >= 0 && after >= 0 && r.fetch.events
                       ? (after - before) / (double) r.fetch.events: -1;
    }
    if (!rc) {
        if (!o.json)
            fprintf (stderr, "relais-bench: 7  intake -> %d subscribers (%llu submits)...\n",
                     S_FANOUT, (unsigned long long) o.submits);
        phase = "7 fan-out";
        rc = s_bench_fanout (&intake, o.submits, o.window, &r.fanout, error, sizeof error);
    }
    if (intake.pid > 0)
        r.rss_loaded_kib = s_proc_rss_kib (intake.pid);
    if (rc && intake.pid > 0 && !s_interrupted)
        s_intake_log_tail (&intake);
    r.intake_exit = s_intake_stop (&intake);
    if (!rc && r.intake_exit != 0) {
        phase = "intake stop";
        snprintf (error, sizeof error, "intake exited with %d after SIGTERM", r.intake_exit);
        rc = -1;
    }
    if (o.json)
        s_print_json (&r, &o);
    else
        s_print_table (&r, &o);
    fflush (stdout);
    if (rc)
        fprintf (stderr, "relais-bench: phase %s failed%s%s%s\n", phase,
                 s_interrupted? " (interrupted)": "", error [0]? ": ": "", error);
    if (o.keep)
        fprintf (stderr, "relais-bench: kept %s\n", intake.dir);
    else
        s_rm_tree (intake.dir);
    msgpack_sbuffer_destroy (&payload);
    free (intake_default);
    return rc? EXIT_FAILURE: EXIT_SUCCESS;
}
