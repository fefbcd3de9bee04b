/*  =========================================================================
    peerbench_redis - the workload against Redis Streams (hiredis)

    @header
    Throughput: XADD pb * d <payload>, pipelined up to W unanswered on one
    connection; an ack is XADD's reply (with appendfsync always, Redis
    replies after the AOF write is fsync'd, one fsync per event-loop turn).
    End to end: a fresh stream per run; each subscriber has its own
    connection and loops XREAD BLOCK from 0-0. Replay: XRANGE pb in pages of
    1,000 (exclusive start "(id").
    =========================================================================
*/
#include "peerbench.h"

#include <hiredis.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_STREAM    "pb"

static redisContext *
s_connect (pb_ctx_t *ctx)
{
    char host [256];
    int port;
    pb_host_port (ctx->endpoint, host, sizeof host, &port, 6379);
    struct timeval timeout = { 5, 0 };
    redisContext *c = redisConnectWithTimeout (host, port, timeout);
    if (!c || c->err) {
        pb_fail (ctx, -ECONNREFUSED, "redis: cannot connect to %s:%d (%s)", host, port,
                 c? c->errstr: "no memory");
        if (c)
            redisFree (c);
        return NULL;
    }
    struct timeval stall = { (time_t) (PB_STALL_US / 1000000), 0 };
    redisSetTimeout (c, stall);
    redisReply *reply = (redisReply *) redisCommand (c, "PING");
    bool ok = reply && reply->type == REDIS_REPLY_STATUS;
    if (reply)
        freeReplyObject (reply);
    if (!ok) {
        pb_fail (ctx, -EPROTO, "redis: PING failed");
        redisFree (c);
        return NULL;
    }
    return c;
}

static int
s_flush (pb_ctx_t *ctx, redisContext *c)
{
    int done = 0;
    while (!done)
        if (redisBufferWrite (c, &done) == REDIS_ERR)
            return pb_fail (ctx, -EIO, "redis: write failed (%s)", c->errstr);
    return 0;
}

//  Checks one XADD reply and frees it.
static int
s_check (pb_ctx_t *ctx, redisReply *reply)
{
    int rc = reply && reply->type == REDIS_REPLY_STRING? 0:
             pb_fail (ctx, -EPROTO, "redis: XADD answered %s",
                      reply && reply->type == REDIS_REPLY_ERROR? reply->str: "no id");
    if (reply)
        freeReplyObject (reply);
    return rc;
}

//  Takes the replies already read (and, when block, waits for one first).
//  Returns how many, or a negative code.
static int64_t
s_replies (pb_ctx_t *ctx, redisContext *c, bool block)
{
    int64_t got = 0;
    void *reply = NULL;
    if (block) {
        if (redisGetReply (c, &reply) != REDIS_OK)
            return pb_fail (ctx, -EIO, "redis: no reply (%s)", c->errstr);
        if (s_check (ctx, (redisReply *) reply))
            return -EPROTO;
        got++;
    }
    else {
        struct pollfd item = { c->fd, POLLIN, 0 };
        if (poll (&item, 1, 0) > 0 && redisBufferRead (c) != REDIS_OK)
            return pb_fail (ctx, -EIO, "redis: read failed (%s)", c->errstr);
    }
    for (;;) {
        reply = NULL;
        if (redisGetReplyFromReader (c, &reply) != REDIS_OK)
            return pb_fail (ctx, -EIO, "redis: bad reply (%s)", c->errstr);
        if (!reply)
            break;
        if (s_check (ctx, (redisReply *) reply))
            return -EPROTO;
        got++;
    }
    return got;
}

static int
s_throughput (pb_ctx_t *ctx, uint32_t window, uint64_t count, uint64_t *lat_us, pb_rate_t *out)
{
    pb_payload_t payload;
    pb_payload_init (&payload);
    redisContext *c = s_connect (ctx);
    if (!c)
        return -ECONNREFUSED;
    int rc = 0;
    uint64_t sent = 0, done = 0, start = pb_now_us (), sent_at = 0;
    while (rc == 0 && done < count) {
        while (sent < count && sent - done < window) {
            pb_payload_set (&payload, ctx->run, sent);
            redisAppendCommand (c, "XADD %s * d %b", S_STREAM, payload.bytes,
                                (size_t) PB_PAYLOAD_SIZE);
            sent++;
        }
        sent_at = lat_us? pb_now_us (): 0;
        if ((rc = s_flush (ctx, c)))
            break;
        int64_t got = s_replies (ctx, c, true);
        if (got < 0)
            rc = (int) got;
        else {
            if (lat_us)             //  window 1: the one event in flight
                lat_us [done] = pb_now_us () - sent_at;
            done += (uint64_t) got;
        }
    }
    out->count = done;
    out->seconds = (double) (pb_now_us () - start) / 1e6;
    out->rate = (double) done / out->seconds;
    redisFree (c);
    return rc;
}

//  ---------------------------------------------------------------------------
//  End to end

typedef struct {
    pb_ctx_t *ctx;
    pb_e2e_t *e2e;
    pb_gate_t *gate;
    uint32_t index;
    const char *stream;
    volatile int stop;
    int rc;
    char error [320];
} s_sub_t;

static void *
s_subscriber (void *arg)
{
    s_sub_t *self = (s_sub_t *) arg;
    pb_ctx_t local;
    memset (&local, 0, sizeof local);
    local.endpoint = self->ctx->endpoint;
    redisContext *c = s_connect (&local);
    pb_gate_ready (self->gate);
    if (!c) {
        self->rc = -ECONNREFUSED;
        snprintf (self->error, sizeof self->error, "%s", local.error);
        return NULL;
    }
    char last [64] = "0-0";
    while (!__atomic_load_n (&self->stop, __ATOMIC_ACQUIRE)) {
        redisReply *reply = (redisReply *) redisCommand (c, "XREAD COUNT 1000 BLOCK 200 STREAMS %s %s",
                                                         self->stream, last);
        uint64_t now = pb_now_us ();
        if (!reply) {
            self->rc = -EIO;
            snprintf (self->error, sizeof self->error, "XREAD failed (%s)", c->errstr);
            break;
        }
        //  [[stream, [[id, [field, value]], ...]]] or nil after the block
        if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 1
        &&  reply->element [0]->type == REDIS_REPLY_ARRAY && reply->element [0]->elements == 2) {
            redisReply *entries = reply->element [0]->element [1];
            for (size_t i = 0; entries->type == REDIS_REPLY_ARRAY && i < entries->elements; i++) {
                redisReply *entry = entries->element [i];
                if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2
                ||  entry->element [0]->type != REDIS_REPLY_STRING)
                    continue;
                snprintf (last, sizeof last, "%s", entry->element [0]->str);
                redisReply *fields = entry->element [1];
                if (fields->type == REDIS_REPLY_ARRAY && fields->elements == 2
                &&  fields->element [1]->type == REDIS_REPLY_STRING) {
                    uint64_t index = pb_payload_index (fields->element [1]->str,
                                                       fields->element [1]->len,
                                                       self->ctx->run);
                    pb_e2e_record (self->e2e, self->index, index, now);
                }
            }
        }
        freeReplyObject (reply);
    }
    redisFree (c);
    return NULL;
}

static int
s_e2e (pb_ctx_t *ctx, uint64_t rate, pb_e2e_t *e2e)
{
    pb_payload_t payload;
    pb_payload_init (&payload);
    char stream [32];
    snprintf (stream, sizeof stream, "pbe-%u", ctx->run);
    redisContext *c = s_connect (ctx);
    s_sub_t *subs = (s_sub_t *) calloc (e2e->subscribers, sizeof *subs);
    pthread_t *threads = (pthread_t *) calloc (e2e->subscribers, sizeof *threads);
    pb_gate_t *gate = pb_gate_new ();
    int rc = c && subs && threads && gate? 0: pb_fail (ctx, -ENOMEM, "redis e2e setup");
    uint32_t started = 0;
    for (uint32_t s = 0; rc == 0 && s < e2e->subscribers; s++) {
        subs [s] = (s_sub_t) { ctx, e2e, gate, s, stream, 0, 0, "" };
        if (pthread_create (&threads [s], NULL, s_subscriber, &subs [s]))
            rc = pb_fail (ctx, -EAGAIN, "cannot start a subscriber thread");
        else
            started++;
    }
    if (rc == 0 && !pb_gate_wait (gate, started, 10000))
        rc = pb_fail (ctx, -ETIMEDOUT, "redis subscribers did not connect in 10 s");
    for (uint32_t s = 0; rc == 0 && s < started; s++)
        if (subs [s].rc)
            rc = pb_fail (ctx, subs [s].rc, "redis subscriber: %s", subs [s].error);
    uint64_t interval = 1000000 / (rate? rate: 1);
    uint64_t start = pb_now_us (), done = 0;
    for (uint64_t i = 0; rc == 0 && i < e2e->count; i++) {
        pb_sleep_until (start + i * interval);
        pb_payload_set (&payload, ctx->run, i);
        e2e->sent_us [i] = pb_now_us ();
        redisAppendCommand (c, "XADD %s * d %b", stream, payload.bytes, (size_t) PB_PAYLOAD_SIZE);
        rc = s_flush (ctx, c);
        int64_t got = rc? 0: s_replies (ctx, c, false);
        if (got < 0)
            rc = (int) got;
        done += got > 0? (uint64_t) got: 0;
    }
    while (rc == 0 && done < e2e->count) {
        int64_t got = s_replies (ctx, c, true);
        if (got < 0)
            rc = (int) got;
        done += got > 0? (uint64_t) got: 0;
    }
    if (rc == 0 && !pb_e2e_wait (e2e))
        rc = pb_fail (ctx, -ETIMEDOUT, "redis e2e: subscribers stalled");
    for (uint32_t s = 0; s < started; s++) {
        __atomic_store_n (&subs [s].stop, 1, __ATOMIC_RELEASE);
        pthread_join (threads [s], NULL);
        if (subs [s].rc && rc == 0)
            rc = pb_fail (ctx, subs [s].rc, "redis subscriber: %s", subs [s].error);
    }
    pb_gate_destroy (&gate);
    if (c)
        redisFree (c);
    free (subs);
    free (threads);
    return rc;
}

//  ---------------------------------------------------------------------------
//  Replay

static int
s_replay (pb_ctx_t *ctx, pb_rate_t *out)
{
    redisContext *c = s_connect (ctx);
    if (!c)
        return -ECONNREFUSED;
    int rc = 0;
    char from [64] = "-";
    uint64_t events = 0, start = pb_now_us ();
    while (rc == 0) {
        //  COUNT: the page Relais's replay asks too (--page)
        redisReply *reply = (redisReply *) redisCommand (c, "XRANGE %s %s + COUNT %u",
                                                         S_STREAM, from, ctx->page);
        if (!reply || reply->type != REDIS_REPLY_ARRAY) {
            rc = pb_fail (ctx, -EPROTO, "redis: XRANGE failed (%s)",
                          reply && reply->type == REDIS_REPLY_ERROR? reply->str: c->errstr);
            if (reply)
                freeReplyObject (reply);
            break;
        }
        size_t n = reply->elements;
        for (size_t i = 0; i < n; i++) {
            redisReply *entry = reply->element [i];
            if (entry->type == REDIS_REPLY_ARRAY && entry->elements == 2
            &&  entry->element [0]->type == REDIS_REPLY_STRING)
                snprintf (from, sizeof from, "(%s", entry->element [0]->str);
        }
        events += n;
        freeReplyObject (reply);
        if (n == 0)
            break;
    }
    out->count = events;
    out->seconds = (double) (pb_now_us () - start) / 1e6;
    out->rate = (double) events / out->seconds;
    redisFree (c);
    return rc;
}

const pb_driver_t pb_redis_driver = { "redis", s_throughput, s_e2e, s_replay };
