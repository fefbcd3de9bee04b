/*  =========================================================================
    peerbench_mqtt - the workload against Mosquitto (libmosquitto, MQTT 3.1.1)

    @header
    Throughput: QoS 1 publishes to pb/t, up to W unacknowledged (our own
    window, and the client's send maximum set to W); an ack is the broker's
    PUBACK, which Mosquitto sends once the message is in its memory (the
    persistence file is written at autosave_interval and at exit). End to
    end: each subscriber is its own client with a QoS 1 subscription to
    pb/e/<run>, made (SUBACK) before the first publish. Replay: MQTT keeps
    no log to read back (a retained message is only the last one), so the
    driver answers -ENOTSUP and the table says n/a.
    =========================================================================
*/
#include "peerbench.h"

#include <mosquitto.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static pthread_once_t s_once = PTHREAD_ONCE_INIT;

static void
s_lib_init (void)
{
    mosquitto_lib_init ();
}

typedef struct {
    struct mosquitto *mosq;
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    int connected;                  //  0 waiting, 1 connected, -1 refused
    bool subscribed;
    uint64_t acked;
    uint64_t inflight;
    uint64_t last_ack_us;
    //  as a subscriber
    pb_e2e_t *e2e;
    uint32_t index;
    uint32_t run;
} s_client_t;

static void
s_on_connect (struct mosquitto *mosq, void *obj, int rc)
{
    s_client_t *self = (s_client_t *) obj;
    pthread_mutex_lock (&self->mutex);
    self->connected = rc == 0? 1: -1;
    pthread_cond_broadcast (&self->cond);
    pthread_mutex_unlock (&self->mutex);
}

static void
s_on_publish (struct mosquitto *mosq, void *obj, int mid)
{
    s_client_t *self = (s_client_t *) obj;
    uint64_t now = pb_now_us ();
    pthread_mutex_lock (&self->mutex);
    self->acked++;
    if (self->inflight)
        self->inflight--;
    self->last_ack_us = now;
    pthread_cond_broadcast (&self->cond);
    pthread_mutex_unlock (&self->mutex);
}

static void
s_on_subscribe (struct mosquitto *mosq, void *obj, int mid, int count, const int *granted)
{
    s_client_t *self = (s_client_t *) obj;
    pthread_mutex_lock (&self->mutex);
    self->subscribed = count == 1 && granted [0] == 1;
    pthread_cond_broadcast (&self->cond);
    pthread_mutex_unlock (&self->mutex);
}

static void
s_on_message (struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg)
{
    uint64_t now = pb_now_us ();
    s_client_t *self = (s_client_t *) obj;
    if (self->e2e && msg->payload && msg->payloadlen > 0)
        pb_e2e_record (self->e2e, self->index,
                       pb_payload_index (msg->payload, (size_t) msg->payloadlen, self->run), now);
}

//  Waits, with the mutex held, until *flag is non-zero or PB_STALL_US.
static bool
s_wait_flag (s_client_t *self, volatile int *flag)
{
    struct timespec deadline;
    clock_gettime (CLOCK_REALTIME, &deadline);
    deadline.tv_sec += (time_t) (PB_STALL_US / 1000000);
    int rc = 0;
    while (*flag == 0 && rc == 0)
        rc = pthread_cond_timedwait (&self->cond, &self->mutex, &deadline);
    return *flag > 0;
}

static void
s_client_close (s_client_t *self)
{
    if (self->mosq) {
        mosquitto_disconnect (self->mosq);
        mosquitto_loop_stop (self->mosq, false);
        mosquitto_destroy (self->mosq);
        self->mosq = NULL;
    }
    pthread_mutex_destroy (&self->mutex);
    pthread_cond_destroy (&self->cond);
}

//  Connects a client (clean session, send maximum window) with its network
//  thread running.
static int
s_client_open (pb_ctx_t *ctx, s_client_t *self, const char *id, uint32_t window)
{
    pthread_once (&s_once, s_lib_init);
    pthread_mutex_init (&self->mutex, NULL);
    pthread_cond_init (&self->cond, NULL);
    self->mosq = mosquitto_new (id, true, self);
    if (!self->mosq)
        return pb_fail (ctx, -ENOMEM, "mosquitto: cannot create a client");
    mosquitto_int_option (self->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    //  Like hiredis and libnats: no Nagle delay on small writes
    mosquitto_int_option (self->mosq, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_int_option (self->mosq, MOSQ_OPT_SEND_MAXIMUM, (int) (window < 65535? window: 65535));
    mosquitto_connect_callback_set (self->mosq, s_on_connect);
    mosquitto_publish_callback_set (self->mosq, s_on_publish);
    mosquitto_subscribe_callback_set (self->mosq, s_on_subscribe);
    mosquitto_message_callback_set (self->mosq, s_on_message);
    char host [256];
    int port;
    pb_host_port (ctx->endpoint, host, sizeof host, &port, 1883);
    int rc = mosquitto_connect (self->mosq, host, port, 60);
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_loop_start (self->mosq);
    if (rc != MOSQ_ERR_SUCCESS)
        return pb_fail (ctx, -ECONNREFUSED, "mosquitto: cannot connect to %s:%d (%s)", host, port,
                        mosquitto_strerror (rc));
    pthread_mutex_lock (&self->mutex);
    bool ok = s_wait_flag (self, &self->connected);
    pthread_mutex_unlock (&self->mutex);
    return ok? 0: pb_fail (ctx, -ECONNREFUSED, "mosquitto: no CONNACK from %s:%d", host, port);
}

//  Waits until at most limit publishes are unacknowledged.
static int
s_wait_inflight (pb_ctx_t *ctx, s_client_t *self, uint64_t limit)
{
    struct timespec deadline;
    clock_gettime (CLOCK_REALTIME, &deadline);
    deadline.tv_sec += (time_t) (PB_STALL_US / 1000000);
    pthread_mutex_lock (&self->mutex);
    int rc = 0;
    while (self->inflight > limit && rc == 0)
        rc = pthread_cond_timedwait (&self->cond, &self->mutex, &deadline);
    bool ok = self->inflight <= limit;
    pthread_mutex_unlock (&self->mutex);
    return ok? 0: pb_fail (ctx, -ETIMEDOUT, "mosquitto: no PUBACK for 30 s");
}

static int
s_publish (pb_ctx_t *ctx, s_client_t *self, const char *topic, const pb_payload_t *payload)
{
    pthread_mutex_lock (&self->mutex);
    self->inflight++;
    pthread_mutex_unlock (&self->mutex);
    int rc = mosquitto_publish (self->mosq, NULL, topic, PB_PAYLOAD_SIZE, payload->bytes, 1, false);
    return rc == MOSQ_ERR_SUCCESS? 0:
           pb_fail (ctx, -EIO, "mosquitto: publish failed (%s)", mosquitto_strerror (rc));
}

static int
s_throughput (pb_ctx_t *ctx, uint32_t window, uint64_t count, uint64_t *lat_us, pb_rate_t *out)
{
    pb_payload_t payload;
    pb_payload_init (&payload);
    s_client_t client;
    memset (&client, 0, sizeof client);
    char id [64];
    snprintf (id, sizeof id, "pb-%u", ctx->run);
    int rc = s_client_open (ctx, &client, id, window);
    uint64_t start = pb_now_us ();
    for (uint64_t i = 0; rc == 0 && i < count; i++) {
        if ((rc = s_wait_inflight (ctx, &client, window - 1)))
            break;
        pb_payload_set (&payload, ctx->run, i);
        uint64_t sent = pb_now_us ();
        rc = s_publish (ctx, &client, "pb/t", &payload);
        if (rc == 0 && lat_us && (rc = s_wait_inflight (ctx, &client, 0)) == 0)
            lat_us [i] = client.last_ack_us - sent;
    }
    if (rc == 0)
        rc = s_wait_inflight (ctx, &client, 0);
    pthread_mutex_lock (&client.mutex);
    out->count = client.acked;
    pthread_mutex_unlock (&client.mutex);
    out->seconds = (double) (pb_now_us () - start) / 1e6;
    out->rate = (double) out->count / out->seconds;
    s_client_close (&client);
    return rc;
}

static int
s_e2e (pb_ctx_t *ctx, uint64_t rate, pb_e2e_t *e2e)
{
    pb_payload_t payload;
    pb_payload_init (&payload);
    char topic [32], id [64];
    snprintf (topic, sizeof topic, "pb/e/%u", ctx->run);
    s_client_t producer;
    memset (&producer, 0, sizeof producer);
    snprintf (id, sizeof id, "pb-%u", ctx->run);
    int rc = s_client_open (ctx, &producer, id, 65535);
    s_client_t *subs = (s_client_t *) calloc (e2e->subscribers, sizeof *subs);
    uint32_t opened = 0;
    if (rc == 0 && !subs)
        rc = pb_fail (ctx, -ENOMEM, "mosquitto e2e setup");
    for (uint32_t s = 0; rc == 0 && s < e2e->subscribers; s++) {
        subs [s].e2e = e2e;
        subs [s].index = s;
        subs [s].run = ctx->run;
        snprintf (id, sizeof id, "pb-%u-sub%u", ctx->run, s);
        rc = s_client_open (ctx, &subs [s], id, 20);
        opened++;
        int mrc = rc? MOSQ_ERR_SUCCESS: mosquitto_subscribe (subs [s].mosq, NULL, topic, 1);
        if (mrc != MOSQ_ERR_SUCCESS)
            rc = pb_fail (ctx, -EIO, "mosquitto: subscribe failed (%s)", mosquitto_strerror (mrc));
        if (rc == 0) {
            pthread_mutex_lock (&subs [s].mutex);
            struct timespec deadline;
            clock_gettime (CLOCK_REALTIME, &deadline);
            deadline.tv_sec += 10;
            int w = 0;
            while (!subs [s].subscribed && w == 0)
                w = pthread_cond_timedwait (&subs [s].cond, &subs [s].mutex, &deadline);
            if (!subs [s].subscribed)
                rc = pb_fail (ctx, -ETIMEDOUT, "mosquitto: no QoS 1 SUBACK");
            pthread_mutex_unlock (&subs [s].mutex);
        }
    }
    uint64_t interval = 1000000 / (rate? rate: 1);
    uint64_t start = pb_now_us ();
    for (uint64_t i = 0; rc == 0 && i < e2e->count; i++) {
        pb_sleep_until (start + i * interval);
        pb_payload_set (&payload, ctx->run, i);
        e2e->sent_us [i] = pb_now_us ();
        rc = s_publish (ctx, &producer, topic, &payload);
    }
    if (rc == 0)
        rc = s_wait_inflight (ctx, &producer, 0);
    if (rc == 0 && !pb_e2e_wait (e2e))
        rc = pb_fail (ctx, -ETIMEDOUT, "mosquitto e2e: subscribers stalled");
    for (uint32_t s = 0; s < opened; s++)
        s_client_close (&subs [s]);
    free (subs);
    s_client_close (&producer);
    return rc;
}

static int
s_replay (pb_ctx_t *ctx, pb_rate_t *out)
{
    memset (out, 0, sizeof *out);
    return -ENOTSUP;                //  MQTT keeps no log to read back
}

const pb_driver_t pb_mqtt_driver = { "mosquitto", s_throughput, s_e2e, s_replay };
