/*  =========================================================================
    peerbench_nats - the workload against NATS JetStream (libnats)

    @header
    A stream PB (subject pb.t, file storage). Throughput: with 1 in flight
    js_Publish (returns on the PubAck); with W, js_PublishAsync with
    MaxPending W, acks counted by the ack handler, until
    js_PublishAsyncComplete. JetStream 2.9 acks once the message is written
    to the OS, not fsync'd (BENCHMARKS.md). End to end: a stream PBE
    (pb.e.>), one subject per run; each subscriber has its own connection
    and an ephemeral push consumer (DeliverNew, AckNone). Replay: an ordered
    consumer on pb.t from sequence 1 until the stream's message count.
    =========================================================================
*/
#include "peerbench.h"

#include <nats/nats.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_SUBJECT   "pb.t"

typedef struct {
    natsConnection *nc;
    jsCtx *js;
} s_conn_t;

static void
s_close (s_conn_t *self)
{
    if (self->js)
        jsCtx_Destroy (self->js);
    if (self->nc)
        natsConnection_Destroy (self->nc);
    self->js = NULL;
    self->nc = NULL;
}

//  Connects, gets a JetStream context (opts may be NULL) and makes sure the
//  stream exists.
static int
s_open (pb_ctx_t *ctx, s_conn_t *self, jsOptions *opts, const char *stream,
        const char *subjects)
{
    memset (self, 0, sizeof *self);
    char host [256], url [300];
    int port;
    pb_host_port (ctx->endpoint, host, sizeof host, &port, 4222);
    snprintf (url, sizeof url, "nats://%s:%d", host, port);
    natsStatus s = natsConnection_ConnectTo (&self->nc, url);
    if (s == NATS_OK)
        s = natsConnection_JetStream (&self->js, self->nc, opts);
    if (s != NATS_OK) {
        s_close (self);
        return pb_fail (ctx, -ECONNREFUSED, "nats: cannot connect to %s (%s)", url,
                        natsStatus_GetText (s));
    }
    if (stream) {
        jsStreamConfig cfg;
        jsStreamConfig_Init (&cfg);
        const char *list [1] = { subjects };
        cfg.Name = stream;
        cfg.Subjects = list;
        cfg.SubjectsLen = 1;
        cfg.Storage = js_FileStorage;
        jsStreamInfo *info = NULL;
        jsErrCode jerr = 0;
        s = js_AddStream (&info, self->js, &cfg, NULL, &jerr);
        if (info)
            jsStreamInfo_Destroy (info);
        if (s != NATS_OK && jerr != JSStreamNameExistErr) {
            s_close (self);
            return pb_fail (ctx, -EPROTO, "nats: cannot add stream %s (%s, %d)", stream,
                            natsStatus_GetText (s), (int) jerr);
        }
    }
    return 0;
}

typedef struct {
    uint64_t acked;                 //  atomic
    uint64_t errors;                //  atomic
    int first_error;                //  a jsErrCode
} s_acks_t;

static void
s_on_ack (jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    s_acks_t *acks = (s_acks_t *) closure;
    if (pa && !pae)
        __atomic_add_fetch (&acks->acked, 1, __ATOMIC_RELEASE);
    else {
        if (__atomic_add_fetch (&acks->errors, 1, __ATOMIC_RELEASE) == 1 && pae)
            acks->first_error = (int) pae->ErrCode;
    }
    natsMsg_Destroy (msg);
}

static int
s_throughput (pb_ctx_t *ctx, uint32_t window, uint64_t count, uint64_t *lat_us, pb_rate_t *out)
{
    pb_payload_t payload;
    pb_payload_init (&payload);
    s_acks_t acks = { 0, 0, 0 };
    jsOptions opts;
    jsOptions_Init (&opts);
    opts.Wait = (int64_t) (PB_STALL_US / 1000);
    opts.PublishAsync.MaxPending = window;
    opts.PublishAsync.AckHandler = s_on_ack;
    opts.PublishAsync.AckHandlerClosure = &acks;
    opts.PublishAsync.StallWait = (int64_t) (PB_STALL_US / 1000);
    s_conn_t conn;
    int rc = s_open (ctx, &conn, &opts, "PB", S_SUBJECT);
    if (rc)
        return rc;
    uint64_t start = pb_now_us (), done = 0;
    for (uint64_t i = 0; rc == 0 && i < count; i++) {
        pb_payload_set (&payload, ctx->run, i);
        natsStatus s;
        if (window == 1) {
            jsPubAck *ack = NULL;
            jsErrCode jerr = 0;
            uint64_t sent = pb_now_us ();
            s = js_Publish (&ack, conn.js, S_SUBJECT, payload.bytes, PB_PAYLOAD_SIZE, NULL, &jerr);
            if (s == NATS_OK) {
                if (lat_us)
                    lat_us [i] = pb_now_us () - sent;
                done++;
            }
            if (ack)
                jsPubAck_Destroy (ack);
        }
        else
            s = js_PublishAsync (conn.js, S_SUBJECT, payload.bytes, PB_PAYLOAD_SIZE, NULL);
        if (s != NATS_OK)
            rc = pb_fail (ctx, -EPROTO, "nats: publish failed (%s)", natsStatus_GetText (s));
    }
    if (rc == 0 && window > 1) {
        jsPubOptions po;
        jsPubOptions_Init (&po);
        po.MaxWait = (int64_t) (PB_STALL_US / 1000);
        natsStatus s = js_PublishAsyncComplete (conn.js, &po);
        if (s != NATS_OK)
            rc = pb_fail (ctx, -ETIMEDOUT, "nats: acks incomplete (%s)", natsStatus_GetText (s));
        done = __atomic_load_n (&acks.acked, __ATOMIC_ACQUIRE);
        if (__atomic_load_n (&acks.errors, __ATOMIC_ACQUIRE))
            rc = pb_fail (ctx, -EPROTO, "nats: %" PRIu64 " publishes refused (error %d)",
                          acks.errors, acks.first_error);
    }
    out->count = done;
    out->seconds = (double) (pb_now_us () - start) / 1e6;
    out->rate = (double) done / out->seconds;
    s_close (&conn);
    return rc;
}

//  ---------------------------------------------------------------------------
//  End to end

typedef struct {
    pb_ctx_t *ctx;
    pb_e2e_t *e2e;
    uint32_t index;
    uint32_t run;
    s_conn_t conn;
    natsSubscription *sub;
} s_sub_t;

static void
s_on_event (natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    uint64_t now = pb_now_us ();
    s_sub_t *self = (s_sub_t *) closure;
    uint64_t index = pb_payload_index (natsMsg_GetData (msg),
                                       (size_t) natsMsg_GetDataLength (msg), self->run);
    pb_e2e_record (self->e2e, self->index, index, now);
    natsMsg_Destroy (msg);
}

static int
s_e2e (pb_ctx_t *ctx, uint64_t rate, pb_e2e_t *e2e)
{
    pb_payload_t payload;
    pb_payload_init (&payload);
    char subject [32];
    snprintf (subject, sizeof subject, "pb.e.%u", ctx->run);
    s_acks_t acks = { 0, 0, 0 };
    jsOptions opts;
    jsOptions_Init (&opts);
    opts.PublishAsync.MaxPending = 100000;
    opts.PublishAsync.AckHandler = s_on_ack;
    opts.PublishAsync.AckHandlerClosure = &acks;
    s_conn_t conn;
    int rc = s_open (ctx, &conn, &opts, "PBE", "pb.e.>");
    if (rc)
        return rc;
    s_sub_t *subs = (s_sub_t *) calloc (e2e->subscribers, sizeof *subs);
    if (!subs)
        rc = pb_fail (ctx, -ENOMEM, "nats e2e setup");
    for (uint32_t s = 0; rc == 0 && s < e2e->subscribers; s++) {
        subs [s].ctx = ctx;
        subs [s].e2e = e2e;
        subs [s].index = s;
        subs [s].run = ctx->run;
        if ((rc = s_open (ctx, &subs [s].conn, NULL, NULL, NULL)))
            break;
        jsSubOptions so;
        jsSubOptions_Init (&so);
        so.Stream = "PBE";
        so.Config.DeliverPolicy = js_DeliverNew;
        so.Config.AckPolicy = js_AckNone;
        jsErrCode jerr = 0;
        natsStatus st = js_Subscribe (&subs [s].sub, subs [s].conn.js, subject, s_on_event,
                                      &subs [s], NULL, &so, &jerr);
        if (st != NATS_OK)
            rc = pb_fail (ctx, -EPROTO, "nats: subscribe failed (%s, %d)",
                          natsStatus_GetText (st), (int) jerr);
        else
            natsSubscription_SetPendingLimits (subs [s].sub, -1, -1);
    }
    uint64_t interval = 1000000 / (rate? rate: 1);
    uint64_t start = pb_now_us ();
    for (uint64_t i = 0; rc == 0 && i < e2e->count; i++) {
        pb_sleep_until (start + i * interval);
        pb_payload_set (&payload, ctx->run, i);
        e2e->sent_us [i] = pb_now_us ();
        natsStatus st = js_PublishAsync (conn.js, subject, payload.bytes, PB_PAYLOAD_SIZE, NULL);
        if (st != NATS_OK)
            rc = pb_fail (ctx, -EPROTO, "nats: publish failed (%s)", natsStatus_GetText (st));
    }
    if (rc == 0) {
        jsPubOptions po;
        jsPubOptions_Init (&po);
        po.MaxWait = (int64_t) (PB_STALL_US / 1000);
        if (js_PublishAsyncComplete (conn.js, &po) != NATS_OK
        ||  __atomic_load_n (&acks.errors, __ATOMIC_ACQUIRE))
            rc = pb_fail (ctx, -EPROTO, "nats e2e: publishes not all acked");
    }
    if (rc == 0 && !pb_e2e_wait (e2e))
        rc = pb_fail (ctx, -ETIMEDOUT, "nats e2e: subscribers stalled");
    for (uint32_t s = 0; subs && s < e2e->subscribers; s++) {
        if (subs [s].sub) {
            natsSubscription_Unsubscribe (subs [s].sub);
            natsSubscription_Destroy (subs [s].sub);
        }
        s_close (&subs [s].conn);
    }
    free (subs);
    s_close (&conn);
    return rc;
}

//  ---------------------------------------------------------------------------
//  Replay: an ordered consumer from the first message

typedef struct {
    uint64_t received;              //  atomic
    uint64_t last_us;               //  atomic
} s_replay_t;

static void
s_on_replay (natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    s_replay_t *self = (s_replay_t *) closure;
    __atomic_store_n (&self->last_us, pb_now_us (), __ATOMIC_RELAXED);
    __atomic_add_fetch (&self->received, 1, __ATOMIC_RELEASE);
    natsMsg_Destroy (msg);
}

static int
s_replay (pb_ctx_t *ctx, pb_rate_t *out)
{
    s_conn_t conn;
    int rc = s_open (ctx, &conn, NULL, NULL, NULL);
    if (rc)
        return rc;
    jsStreamInfo *info = NULL;
    jsErrCode jerr = 0;
    natsStatus st = js_GetStreamInfo (&info, conn.js, "PB", NULL, &jerr);
    uint64_t expected = st == NATS_OK && info? info->State.Msgs: 0;
    if (info)
        jsStreamInfo_Destroy (info);
    if (st != NATS_OK) {
        s_close (&conn);
        return pb_fail (ctx, -EPROTO, "nats: no stream PB (%s)", natsStatus_GetText (st));
    }
    s_replay_t state = { 0, 0 };
    jsSubOptions so;
    jsSubOptions_Init (&so);
    so.Stream = "PB";
    so.Ordered = true;
    natsSubscription *sub = NULL;
    uint64_t start = pb_now_us ();
    st = js_Subscribe (&sub, conn.js, S_SUBJECT, s_on_replay, &state, NULL, &so, &jerr);
    if (st != NATS_OK)
        rc = pb_fail (ctx, -EPROTO, "nats: ordered consumer failed (%s, %d)",
                      natsStatus_GetText (st), (int) jerr);
    else
        natsSubscription_SetPendingLimits (sub, -1, -1);
    uint64_t seen = 0, progress = pb_now_us ();
    while (rc == 0 && (seen = __atomic_load_n (&state.received, __ATOMIC_ACQUIRE)) < expected) {
        pb_sleep_until (pb_now_us () + 1000);
        if (__atomic_load_n (&state.received, __ATOMIC_ACQUIRE) != seen)
            progress = pb_now_us ();
        else
        if (pb_now_us () - progress > PB_STALL_US)
            rc = pb_fail (ctx, -ETIMEDOUT, "nats replay: %" PRIu64 " of %" PRIu64, seen, expected);
    }
    uint64_t end = __atomic_load_n (&state.last_us, __ATOMIC_RELAXED);
    if (sub) {
        natsSubscription_Unsubscribe (sub);
        natsSubscription_Destroy (sub);
    }
    out->count = seen;
    out->seconds = (double) ((end > start? end: pb_now_us ()) - start) / 1e6;
    out->rate = (double) seen / out->seconds;
    s_close (&conn);
    return rc;
}

const pb_driver_t pb_nats_driver = { "nats", s_throughput, s_e2e, s_replay };
