/*  =========================================================================
    feedback_server - producers follow the fate of their own reports
    (see feedback_server.h; the contract is proto/feedback.md)
    =========================================================================
*/
#include "feedback_server.h"
#include "feedback_status.h"
#include "relais_bus.h"
#include "relais_mailbox.h"
#include "relais_security.h"
#include "relais_signal.h"
#include "relais_clock.h"
#include "relais_log.h"

#include <stdlib.h>
#include <string.h>

#define S_INTAKE_PUB        "tcp://127.0.0.1:7101"      //  intake's defaults
#define S_INTAKE_FETCH      "tcp://127.0.0.1:7102"
#define S_PLAN_SIGNALS_MAX  256                         //  as plan.closed lists them
#define S_LIST_MAX          1000

const relais_config_key_t feedback_keys [] = {
    { "pub", "tcp://127.0.0.1:7160", relais_check_endpoint, "PUB of feedback's events (status.changed)" },
    { "fetch", "tcp://127.0.0.1:7161", relais_check_endpoint, "ROUTER for fetch (catch-up) and status" },
    { "feed", "tcp://127.0.0.1:7162", relais_check_endpoint, "ROUTER for the producers' feeds (followers)" },
    { "api", "tcp://127.0.0.1:7163", relais_check_endpoint, "ROUTER for feedback.status and feedback.list" },
    { "store/path", "feedback", relais_check_path, "LMDB folder (relative: under relais/data)" },
    { "store/map_size", "64M", relais_check_size, "initial LMDB map size; grows on demand" },
    { "store/map_max", "64G", relais_check_size, "cap of the LMDB map" },
    { "store/wal_size", "4M", relais_check_size, "write-ahead log file, 64K to 256M: an ack flushes one record there; full, it is checkpointed into LMDB" },
    { "heartbeat", "1s", relais_check_duration, "heartbeat interval on PUB" },
    { "feed_heartbeat", "1s", relais_check_duration, "ping interval with followers; silent 3 intervals = gone" },
    { "window", "64", relais_check_uint, "status changes outstanding (sent, unacked) per producer" },
    { "redeliver", "10s", relais_check_duration, "resend unacked changes after this long without progress" },
    { NULL, NULL, NULL, NULL }
};

static const char *const s_dbs [] = { "reports", "plans", "feed", "mine", "early", NULL };
enum { S_DB_REPORTS, S_DB_PLANS, S_DB_FEED, S_DB_MINE, S_DB_EARLY };

struct feedback_server_t {
    uv_loop_t *loop;
    relais_config_t *config;
    relais_store_t *store;
    relais_pub_t *pub;
    relais_sub_t *sub;
    relais_poller_t *feed;
    relais_poller_t *api;
    relais_signals_t *signals;
    uv_timer_t tick, kick;
    bool timers_open, kick_pending;
    relais_mailbox_t *mailbox;          //  the followers' sessions
    uint64_t hb_us;
    feedback_report_t scratch;          //  the record being changed (big: not on the stack)
    uint64_t ticks;
    struct { uint64_t changes, skipped, delivered, acked; } stats;
};

int
feedback_declare (relais_config_t *config)
{
    return relais_config_declare (config, "feedback", feedback_keys);
}

bool
feedback_producer_valid (const char *producer)
{
    const char *colon = producer? strchr (producer, ':'): NULL;
    if (!colon || colon == producer || (size_t) (colon - producer) >= 16)
        return false;
    char kind [16];
    memcpy (kind, producer, (size_t) (colon - producer));
    kind [colon - producer] = 0;
    size_t name_len = strlen (colon + 1);
    return relais_enum_find (relais_source_kind_names, RELAIS_SOURCE_COUNT, kind) >= 0
        && name_len > 0 && name_len <= 128 && relais_utf8_clean (colon + 1, name_len, false);
}

//  ---------------------------------------------------------------------------
//  Keys and stored values

static size_t
s_pair_key (const char *a, const char *b, uint8_t *key)
{
    size_t n = strlen (a), m = strlen (b);
    memcpy (key, a, n);
    key [n] = 0;
    memcpy (key + n + 1, b, m);
    return n + 1 + m;
}

static int
s_get_report (relais_txn_t *txn, const char *id, feedback_report_t *r)
{
    const void *data;
    size_t size;
    int rc = relais_txn_get (txn, S_DB_REPORTS, id, strlen (id), &data, &size);
    if (rc)
        return rc;
    relais_msg_t msg;
    relais_error_t err;
    relais_msg_limits_t limits = { 4 * 65536, 0, 0 };
    if (relais_msg_decode (&msg, data, size, &limits, &err))
        return RELAIS_EMALFORMED;
    rc = feedback_report_unpack (&msg.root, r);
    relais_msg_release (&msg);
    return rc;
}

static int
s_put_report (relais_txn_t *txn, const feedback_report_t *r)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    feedback_report_pack (&pk, r);
    int rc = relais_txn_put (txn, S_DB_REPORTS, r->id, strlen (r->id), sbuf.data, sbuf.size);
    msgpack_sbuffer_destroy (&sbuf);
    return rc;
}

//  ---------------------------------------------------------------------------
//  Applying the sources' events (inside the subscriber's transaction)

//  One status change: into the producer's feed and onto the bus
static int
s_emit_step (feedback_server_t *self, relais_txn_t *txn, const feedback_report_t *r,
             const feedback_step_t *step, const char *corr)
{
    char name [16 + FEEDBACK_PRODUCER_MAX];
    snprintf (name, sizeof name, "fseq/%s", r->producer);
    uint64_t mseq = 0;
    int rc = relais_meta_get (txn, name, &mseq);
    if (rc == 0)
        rc = relais_meta_set (txn, name, ++mseq);
    if (rc)
        return rc;
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    feedback_step_pack (&pk, step, r->producer, r->id);
    uint8_t key [FEEDBACK_PRODUCER_MAX + 16];
    size_t klen = relais_mailbox_key (r->producer, mseq, key);
    rc = relais_txn_put (txn, S_DB_FEED, key, klen, sbuf.data, sbuf.size);
    msgpack_sbuffer_clear (&sbuf);
    if (rc == 0) {
        feedback_step_pack (&pk, step, r->producer, NULL);
        rc = relais_pub_append (self->pub, txn, "status.changed", r->id, corr, step->at,
                                sbuf.data, sbuf.size, NULL);
    }
    msgpack_sbuffer_destroy (&sbuf);
    if (rc == 0)
        self->stats.changes++;
    return rc;
}

//  An event about a report whose signal.created we have not applied yet
//  (the sources are applied in arrival order, and after a restart intake's
//  catch-up may come after router's or plans'): kept in "early" under the
//  report id and an arrival number, replayed right after the creation.
static int
s_keep_early (relais_txn_t *txn, const char *id, const relais_envelope_t *env)
{
    uint64_t n = 0;
    int rc = relais_meta_get (txn, "early_seq", &n);
    if (rc == 0)
        rc = relais_meta_set (txn, "early_seq", ++n);
    if (rc)
        return rc;
    msgpack_sbuffer body;
    msgpack_sbuffer_init (&body);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &body, msgpack_sbuffer_write);
    relais_pack_object (&pk, env->body);
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    relais_envelope_pack (&sbuf, env->src, env->seq, env->ts, env->type, env->key,
                          env->corr [0]? env->corr: NULL, body.data, body.size);
    uint8_t key [RELAIS_KEY_MAX + 9];
    size_t klen = relais_mailbox_key (id, n, key);
    rc = relais_txn_put (txn, S_DB_EARLY, key, klen, sbuf.data, sbuf.size);
    msgpack_sbuffer_destroy (&sbuf);
    msgpack_sbuffer_destroy (&body);
    return rc;
}

static int s_apply_report (feedback_server_t *self, relais_txn_t *txn, const char *id,
                           const relais_envelope_t *env, const char *corr);
static int s_link_plan (relais_txn_t *txn, const char *plan, const char *id);

typedef struct {
    const char *id;
    size_t ilen;
    uint8_t keys [64][RELAIS_KEY_MAX + 9];
    size_t lens [64];
    size_t count;
} s_early_t;

static int
s_early_each (const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    s_early_t *e = (s_early_t *) arg;
    if (klen != e->ilen + 9 || memcmp (key, e->id, e->ilen) != 0 || e->count == 64)
        return 1;
    memcpy (e->keys [e->count], key, klen);
    e->lens [e->count++] = klen;
    return 0;
}

static int
s_replay_early (feedback_server_t *self, relais_txn_t *txn, const char *id)
{
    s_early_t *e = (s_early_t *) calloc (1, sizeof *e);
    if (!e)
        return -ENOMEM;
    e->id = id;
    e->ilen = strlen (id);
    uint8_t from [RELAIS_KEY_MAX + 9];
    size_t flen = relais_mailbox_key (id, 0, from);
    int rc = relais_txn_scan (txn, S_DB_EARLY, from, flen, s_early_each, e);
    for (size_t i = 0; rc == 0 && i < e->count; i++) {
        const void *data;
        size_t size;
        rc = relais_txn_get (txn, S_DB_EARLY, e->keys [i], e->lens [i], &data, &size);
        if (rc)
            break;
        relais_msg_t msg;
        relais_error_t err;
        relais_envelope_t env;
        relais_msg_limits_t limits = { 4 * 65536, 0, 0 };
        if (relais_msg_decode (&msg, data, size, &limits, &err) == 0) {
            if (relais_envelope_decode (&msg.root, false, &env, &err) == 0) {
                char corr [RELAIS_KEY_MAX];
                snprintf (corr, sizeof corr, "%s:%llu", env.src, (unsigned long long) env.seq);
                rc = s_apply_report (self, txn, id, &env, corr);
                if (rc == 0 && strncmp (env.type, "plan.", 5) == 0)
                    rc = s_link_plan (txn, env.key, id);
                if (rc == RELAIS_EMALFORMED)
                    rc = 0;
            }
            relais_msg_release (&msg);
        }
        if (rc == 0)
            rc = relais_txn_del (txn, S_DB_EARLY, e->keys [i], e->lens [i]);
    }
    free (e);
    return rc;
}

//  Apply env to report id (loaded, or created by signal.created); save and
//  emit the steps it appended. An event before the creation is kept early.
static int
s_apply_report (feedback_server_t *self, relais_txn_t *txn, const char *id,
                const relais_envelope_t *env, const char *corr)
{
    feedback_report_t *r = &self->scratch;
    int rc = s_get_report (txn, id, r);
    bool created = strcmp (env->type, "signal.created") == 0;
    if (rc == RELAIS_ENOTFOUND && !created)
        return s_keep_early (txn, id, env);
    if (rc == RELAIS_ENOTFOUND) {
        feedback_report_init (r, id);
        rc = 0;
    }
    if (rc)
        return rc;
    bool known = r->producer [0] != 0;
    int steps = feedback_report_apply (r, env);
    if (steps < 0)
        return steps;
    rc = s_put_report (txn, r);
    if (rc == 0 && !known && r->producer [0]) {
        uint8_t key [FEEDBACK_PRODUCER_MAX + RELAIS_KEY_MAX + 1];
        size_t klen = s_pair_key (r->producer, r->id, key);
        rc = relais_txn_put (txn, S_DB_MINE, key, klen, "", 0);
    }
    size_t first = r->step_count - (size_t) steps;
    for (size_t i = first; rc == 0 && i < r->step_count; i++)
        rc = s_emit_step (self, txn, r, &r->steps [i], corr);
    if (rc == 0 && created && !known)
        rc = s_replay_early (self, txn, id);
    return rc;
}

//  The report ids a plan links (stored as a msgpack array of str)
typedef struct {
    char ids [S_PLAN_SIGNALS_MAX][RELAIS_KEY_MAX];
    size_t count;
} s_plan_list_t;

static int
s_get_plan (relais_txn_t *txn, const char *plan, s_plan_list_t *list)
{
    list->count = 0;
    const void *data;
    size_t size;
    int rc = relais_txn_get (txn, S_DB_PLANS, plan, strlen (plan), &data, &size);
    if (rc == RELAIS_ENOTFOUND)
        return 0;
    if (rc)
        return rc;
    relais_msg_t msg;
    relais_error_t err;
    relais_msg_limits_t limits = { 4 * 65536, 0, 0 };
    if (relais_msg_decode (&msg, data, size, &limits, &err))
        return 0;                       //  damaged: rebuilt from the next events
    if (msg.root.type == MSGPACK_OBJECT_ARRAY)
        for (uint32_t i = 0; i < msg.root.via.array.size && list->count < S_PLAN_SIGNALS_MAX; i++)
            if (relais_msg_str_copy (&msg.root.via.array.ptr [i], list->ids [list->count],
                                     RELAIS_KEY_MAX) > 0)
                list->count++;
    relais_msg_release (&msg);
    return 0;
}

static bool
s_plan_has (const s_plan_list_t *list, const char *id)
{
    for (size_t i = 0; i < list->count; i++)
        if (strcmp (list->ids [i], id) == 0)
            return true;
    return false;
}

//  Record that plan links report id
static int
s_link_plan (relais_txn_t *txn, const char *plan, const char *id)
{
    s_plan_list_t *list = (s_plan_list_t *) calloc (1, sizeof *list);
    if (!list)
        return -ENOMEM;
    int rc = s_get_plan (txn, plan, list);
    if (rc == 0 && !s_plan_has (list, id) && list->count < S_PLAN_SIGNALS_MAX) {
        snprintf (list->ids [list->count++], RELAIS_KEY_MAX, "%s", id);
        msgpack_sbuffer sbuf;
        msgpack_sbuffer_init (&sbuf);
        msgpack_packer pk;
        msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
        msgpack_pack_array (&pk, list->count);
        for (size_t i = 0; i < list->count; i++)
            relais_pack_str (&pk, list->ids [i]);
        rc = relais_txn_put (txn, S_DB_PLANS, plan, strlen (plan), sbuf.data, sbuf.size);
        msgpack_sbuffer_destroy (&sbuf);
    }
    free (list);
    return rc;
}

static int
s_apply_plan (feedback_server_t *self, relais_txn_t *txn, const relais_envelope_t *env,
              const char *corr)
{
    if (strncmp (env->key, "PLAN-", 5) != 0 || !env->body || env->body->type != MSGPACK_OBJECT_MAP)
        return RELAIS_EMALFORMED;
    s_plan_list_t *list = (s_plan_list_t *) calloc (1, sizeof *list);
    s_plan_list_t *targets = (s_plan_list_t *) calloc (1, sizeof *targets);
    int rc = list && targets? s_get_plan (txn, env->key, list): -ENOMEM;
    //  The reports this event is about: the one it names, the ones a
    //  closing lists (and any linked earlier beyond the list's cap), or,
    //  for a reopening without a report, every one linked
    const msgpack_object *signal = relais_msg_get (env->body, "signal");
    const msgpack_object *signals = relais_msg_get (env->body, "signals");
    if (rc)
        ;
    else
    if (signal && relais_msg_str_copy (signal, targets->ids [0], RELAIS_KEY_MAX) > 0)
        targets->count = 1;
    else
    if (strcmp (env->type, "plan.closed") == 0) {
        for (uint32_t i = 0; signals && signals->type == MSGPACK_OBJECT_ARRAY
                          && i < signals->via.array.size && targets->count < S_PLAN_SIGNALS_MAX; i++)
            if (relais_msg_str_copy (&signals->via.array.ptr [i], targets->ids [targets->count],
                                     RELAIS_KEY_MAX) > 0)
                targets->count++;
        for (size_t i = 0; i < list->count && targets->count < S_PLAN_SIGNALS_MAX; i++)
            if (!s_plan_has (targets, list->ids [i]))
                snprintf (targets->ids [targets->count++], RELAIS_KEY_MAX, "%s", list->ids [i]);
    }
    else
    if (strcmp (env->type, "plan.reopened") == 0)
        *targets = *list;
    for (size_t i = 0; rc == 0 && targets && i < targets->count; i++) {
        if (strncmp (targets->ids [i], "SIG-", 4) != 0)
            continue;
        rc = s_apply_report (self, txn, targets->ids [i], env, corr);
        if (rc == RELAIS_EMALFORMED)
            rc = 0;
        if (rc == 0)
            rc = s_link_plan (txn, env->key, targets->ids [i]);
    }
    free (list);
    free (targets);
    return rc;
}

static int
s_apply (relais_txn_t *txn, const char *topic, const relais_envelope_t *env, void *arg)
{
    feedback_server_t *self = (feedback_server_t *) arg;
    char corr [RELAIS_KEY_MAX];
    snprintf (corr, sizeof corr, "%s:%llu", env->src, (unsigned long long) env->seq);
    int rc;
    if (strncmp (env->type, "plan.", 5) == 0)
        rc = s_apply_plan (self, txn, env, corr);
    else
    if (strncmp (env->key, "SIG-", 4) != 0)
        rc = RELAIS_EMALFORMED;
    else
        rc = s_apply_report (self, txn, env->key, env, corr);
    if (rc == RELAIS_EMALFORMED) {
        self->stats.skipped++;
        relais_warning ("skipped src=%s seq=%llu type=%s key=%s", env->src,
                        (unsigned long long) env->seq, env->type, env->key);
    }
    return rc;
}

//  ---------------------------------------------------------------------------
//  Feeds: sessions with the producers' followers (router.md §4 shape)

#define S_BODY(n) \
    msgpack_sbuffer sbuf; \
    msgpack_sbuffer_init (&sbuf); \
    msgpack_packer pk; \
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write); \
    msgpack_pack_map (&pk, (n))

//  One stored status change as a deliver message
static relais_mailbox_verdict_t
s_pack_change (uint64_t mseq, const void *val, size_t vlen, msgpack_packer *pk, void *arg)
{
    relais_msg_t msg;
    relais_error_t err;
    if (relais_msg_decode (&msg, val, vlen, NULL, &err))
        return RELAIS_MAILBOX_SKIP;     //  damaged entry: never blocks the rest
    char id [RELAIS_KEY_MAX] = "";
    relais_msg_str_copy (relais_msg_get (&msg.root, "key"), id, sizeof id);
    msgpack_pack_map (pk, 5);
    relais_pack_kv_str (pk, "op", "deliver");
    relais_pack_kv_uint (pk, "mseq", mseq);
    relais_pack_kv_str (pk, "key", id);
    relais_pack_kv_str (pk, "type", "status.changed");
    relais_pack_str (pk, "body");
    relais_pack_object (pk, &msg.root);
    relais_msg_release (&msg);
    return RELAIS_MAILBOX_SEND;
}

static void
s_deliver (feedback_server_t *self, relais_mailbox_session_t *s)
{
    self->stats.delivered += relais_mailbox_deliver (self->mailbox, s);
}

static int
s_read_marks (relais_txn_t *txn, const char *producer, uint64_t *acked, uint64_t *last)
{
    char name [16 + FEEDBACK_PRODUCER_MAX];
    snprintf (name, sizeof name, "facked/%s", producer);
    int rc = relais_meta_get (txn, name, acked);
    snprintf (name, sizeof name, "fseq/%s", producer);
    if (rc == 0)
        rc = relais_meta_get (txn, name, last);
    return rc;
}

typedef struct {
    const char *producer;
    uint64_t upto;
    uint64_t acked, last;               //  out
    uint64_t count;
} s_ack_t;

static int
s_write_ack (relais_txn_t *txn, void *arg)
{
    s_ack_t *a = (s_ack_t *) arg;
    int rc = s_read_marks (txn, a->producer, &a->acked, &a->last);
    if (rc)
        return rc;
    uint64_t upto = a->upto > a->last? a->last: a->upto;
    a->count = 0;
    if (upto <= a->acked)
        return 0;
    a->count = upto - a->acked;
    a->acked = upto;
    char name [16 + FEEDBACK_PRODUCER_MAX];
    snprintf (name, sizeof name, "facked/%s", a->producer);
    return relais_meta_set (txn, name, upto);
}

static int
s_ack (feedback_server_t *self, const char *producer, uint64_t upto, s_ack_t *a)
{
    *a = (s_ack_t) { producer, upto, 0, 0, 0 };
    int rc = relais_store_write (self->store, s_write_ack, a);
    if (rc == RELAIS_EFATAL)
        relais_fatal ("feedback ack", rc);
    if (rc)
        relais_warning ("ack producer=%s upto=%llu failed error=%s", producer,
                        (unsigned long long) upto, relais_strerror (rc));
    else
        self->stats.acked += a->count;
    return rc;
}

//  Which feed a hello may open: with CURVE, a producer certificate opens
//  its own source's feed whatever it asks; gateway, service and operations
//  certificates open the one they name. Returns false when refused.
static bool
s_feed_owner (zframe_t *frame, const char *asked, char *producer, size_t size)
{
    if (!relais_security_on ()) {
        snprintf (producer, size, "%s", asked);
        return asked [0] != 0;
    }
    relais_peer_t peer;
    if (!relais_security_peer (frame, &peer))
        return false;
    if (strcmp (peer.role, "producer") == 0) {
        snprintf (producer, size, "%s:%s", peer.source_kind, peer.source_name);
        return true;
    }
    if (strcmp (peer.role, "gateway") == 0 || strcmp (peer.role, "service") == 0
    ||  strcmp (peer.role, "operations") == 0) {
        snprintf (producer, size, "%s", asked);
        return asked [0] != 0;
    }
    return false;
}

static void
s_on_feed (relais_poller_t *poller, zmsg_t **msg_p, void *arg)
{
    feedback_server_t *self = (feedback_server_t *) arg;
    relais_request_t req;
    relais_msg_t msg = { 0 };
    relais_error_t err;
    relais_error_clear (&err);
    const msgpack_object *rid = NULL;
    if (relais_request_read (msg_p, &req, &msg, &rid, &err))
        goto error;
    const msgpack_object *root = &msg.root;
    const msgpack_object *op = relais_msg_get (root, "op");
    if (!op || op->type != MSGPACK_OBJECT_STR) {
        relais_error_set (&err, RELAIS_CODE_INVALID, "op", "required: hello, ack or ping");
        goto error;
    }
    relais_mailbox_session_t *s = relais_mailbox_by_identity (self->mailbox, req.identity);
    if (relais_msg_str_eq (op, "hello")) {
        char asked [FEEDBACK_PRODUCER_MAX] = "", producer [FEEDBACK_PRODUCER_MAX];
        uint64_t after = 0;
        const msgpack_object *p = relais_msg_get (root, "producer");
        if (p && (relais_msg_str_copy (p, asked, sizeof asked) < 0 || !feedback_producer_valid (asked))) {
            relais_error_set (&err, RELAIS_CODE_INVALID, "producer", "a producer id kind:name");
            goto error;
        }
        if (!s_feed_owner (req.data, asked, producer, sizeof producer)) {
            if (!relais_security_on ())
                relais_error_set (&err, RELAIS_CODE_INVALID, "producer", "required, a producer id kind:name");
            else
                relais_error_set (&err, RELAIS_CODE_UNAUTHORIZED, "producer",
                                  "this certificate may not open this feed");
            goto error;
        }
        const msgpack_object *a = relais_msg_get (root, "after");
        if (a && !relais_msg_uint (a, &after)) {
            relais_error_set (&err, RELAIS_CODE_INVALID, "after", "a mseq (uint)");
            goto error;
        }
        s = relais_mailbox_open (self->mailbox, producer, &req);
        if (!s)
            goto done;
        //  What the follower durably handled counts as acknowledged, unless
        //  it is beyond the feed itself (our store was replaced)
        s_ack_t marks;
        s_ack (self, producer, 0, &marks);
        if (after > marks.last) {
            relais_warning ("hello producer=%s after=%llu beyond the feed last=%llu: ignored",
                            producer, (unsigned long long) after, (unsigned long long) marks.last);
            after = 0;
        }
        if (after > marks.acked)
            s_ack (self, producer, after, &marks);
        s->sent_upto = 0;
        relais_notice ("follower hello producer=%s after=%llu", producer, (unsigned long long) after);
        S_BODY (4);
        relais_pack_kv_str (&pk, "op", "welcome");
        relais_pack_kv_str (&pk, "producer", producer);
        relais_pack_kv_uint (&pk, "acked", marks.acked);
        relais_pack_kv_uint (&pk, "last", marks.last);
        relais_mailbox_send (self->mailbox, s, &sbuf);
        msgpack_sbuffer_destroy (&sbuf);
        s_deliver (self, s);
        goto done;
    }
    if (!s) {
        relais_error_set (&err, RELAIS_CODE_CONFLICT, "op", "no session: send hello first");
        goto error;
    }
    relais_mailbox_heard (s);
    if (relais_msg_str_eq (op, "ping"))
        goto done;
    if (relais_msg_str_eq (op, "ack")) {
        uint64_t upto;
        if (!relais_msg_uint (relais_msg_get (root, "upto"), &upto)) {
            relais_error_set (&err, RELAIS_CODE_INVALID, "upto", "required, a mseq (uint)");
            goto error;
        }
        s_ack_t a;
        if (s_ack (self, s->name, upto, &a) == 0 && a.count)
            s->progress_mono = relais_clock_mono ();
        s_deliver (self, s);
        goto done;
    }
    relais_error_set (&err, RELAIS_CODE_UNKNOWN_OP, "op", "this endpoint serves hello, ack and ping");
error:
    if (req.identity)
        relais_request_error (poller, &req, &err, NULL, rid);
done:
    relais_msg_release (&msg);
    relais_request_release (&req);
}

//  ---------------------------------------------------------------------------
//  API: feedback.status, feedback.list

//  The producer a request is scoped to: with CURVE, a producer certificate
//  is scoped to its own source whatever it asks. "" : every producer.
static int
s_scope (const relais_request_t *req, const msgpack_object *root, char *producer, size_t size,
         relais_error_t *err)
{
    producer [0] = 0;
    const msgpack_object *p = relais_msg_get (root, "producer");
    if (p && (relais_msg_str_copy (p, producer, size) < 0 || !feedback_producer_valid (producer))) {
        relais_error_set (err, RELAIS_CODE_INVALID, "producer", "a producer id kind:name");
        return RELAIS_EMALFORMED;
    }
    relais_peer_t peer;
    if (relais_security_on () && relais_security_peer (req->data, &peer)
    &&  strcmp (peer.role, "producer") == 0)
        snprintf (producer, size, "%s:%s", peer.source_kind, peer.source_name);
    return 0;
}

typedef struct {
    feedback_server_t *self;
    const char *id;
    int rc;
} s_status_read_t;

static int
s_read_status (relais_txn_t *txn, void *arg)
{
    s_status_read_t *s = (s_status_read_t *) arg;
    return s_get_report (txn, s->id, &s->self->scratch);
}

typedef struct {
    const char *producer;
    size_t plen;
    uint32_t limit;
    msgpack_packer *pk;
    msgpack_sbuffer *items;
    uint32_t count;
    bool more;
    relais_txn_t *txn;
    feedback_report_t *scratch;
} s_list_t;

static int
s_list_each (const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    s_list_t *l = (s_list_t *) arg;
    if (klen <= l->plen + 1 || memcmp (key, l->producer, l->plen) != 0
    ||  ((const uint8_t *) key) [l->plen] != 0)
        return 1;
    if (l->count == l->limit) {
        l->more = true;
        return 1;
    }
    char id [RELAIS_KEY_MAX];
    size_t n = klen - l->plen - 1;
    if (n >= sizeof id)
        return 0;
    memcpy (id, (const uint8_t *) key + l->plen + 1, n);
    id [n] = 0;
    if (s_get_report (l->txn, id, l->scratch))
        return 0;
    const feedback_report_t *r = l->scratch;
    const char *partner = "";
    for (size_t i = r->step_count; i-- > 0 && !partner [0];)
        partner = r->steps [i].partner;
    msgpack_pack_map (l->pk, 5);
    relais_pack_kv_str (l->pk, "id", r->id);
    relais_pack_kv_str (l->pk, "status", feedback_status_names [r->status]);
    relais_pack_kv_uint (l->pk, "updated", r->updated);
    relais_pack_kv_str (l->pk, "partner", partner);
    relais_pack_kv_str (l->pk, "outcome", r->outcome);
    l->count++;
    return 0;
}

typedef struct {
    s_list_t *list;
    const char *after;
} s_list_read_t;

static int
s_read_list (relais_txn_t *txn, void *arg)
{
    s_list_read_t *lr = (s_list_read_t *) arg;
    lr->list->txn = txn;
    uint8_t from [FEEDBACK_PRODUCER_MAX + RELAIS_KEY_MAX + 2];
    size_t flen = s_pair_key (lr->list->producer, lr->after, from);
    if (lr->after [0])
        from [flen++] = 0;              //  strictly after that id
    return relais_txn_scan (txn, S_DB_MINE, from, flen, s_list_each, lr->list);
}

static void
s_on_api (relais_poller_t *poller, zmsg_t **msg_p, void *arg)
{
    feedback_server_t *self = (feedback_server_t *) arg;
    relais_request_t req;
    relais_msg_t msg = { 0 };
    relais_error_t err;
    relais_error_clear (&err);
    const msgpack_object *rid = NULL;
    msgpack_sbuffer out;
    msgpack_sbuffer_init (&out);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &out, msgpack_sbuffer_write);
    if (relais_request_read (msg_p, &req, &msg, &rid, &err))
        goto error;
    const msgpack_object *op = relais_msg_get (&msg.root, "op");
    if (!op || op->type != MSGPACK_OBJECT_STR) {
        relais_error_set (&err, RELAIS_CODE_INVALID, "op", "required: feedback.status or feedback.list");
        goto error;
    }
    bool status = relais_msg_str_eq (op, "feedback.status");
    bool list = relais_msg_str_eq (op, "feedback.list");
    if (!status && !list) {
        relais_error_set (&err, RELAIS_CODE_UNKNOWN_OP, "op", "this endpoint serves feedback.status and feedback.list");
        goto error;
    }
    char producer [FEEDBACK_PRODUCER_MAX];
    if (s_scope (&req, &msg.root, producer, sizeof producer, &err))
        goto error;
    if (status) {
        char id [RELAIS_KEY_MAX];
        if (relais_msg_str_copy (relais_msg_get (&msg.root, "id"), id, sizeof id) <= 0
        ||  strncmp (id, "SIG-", 4) != 0) {
            relais_error_set (&err, RELAIS_CODE_INVALID, "id", "required, a report id SIG-…");
            goto error;
        }
        s_status_read_t sr = { self, id, 0 };
        int rc = relais_store_read (self->store, s_read_status, &sr);
        //  Another producer's report is answered exactly like a missing one
        if (rc == RELAIS_ENOTFOUND || rc == RELAIS_EMALFORMED
        ||  (rc == 0 && producer [0] && strcmp (self->scratch.producer, producer) != 0)) {
            relais_error_set (&err, RELAIS_CODE_NOT_FOUND, "id", "no report of yours has this id");
            goto error;
        }
        if (rc) {
            relais_error_set (&err, RELAIS_CODE_UNAVAILABLE, "", "storage unavailable, retry later");
            goto error;
        }
        msgpack_pack_map (&pk, 1 + (rid != NULL) + FEEDBACK_VIEW_PAIRS);
        relais_pack_kv_bool (&pk, "ok", true);
        if (rid) {
            relais_pack_str (&pk, "rid");
            relais_pack_object (&pk, rid);
        }
        feedback_report_pack_view (&pk, &self->scratch);
        relais_request_reply (poller, &req, out.data, out.size);
        goto done;
    }
    if (!producer [0]) {
        relais_error_set (&err, RELAIS_CODE_INVALID, "producer", "required, a producer id kind:name");
        goto error;
    }
    uint64_t limit = 100;
    const msgpack_object *l = relais_msg_get (&msg.root, "limit");
    if (l && (!relais_msg_uint (l, &limit) || limit == 0 || limit > S_LIST_MAX)) {
        relais_error_set (&err, RELAIS_CODE_INVALID, "limit", "an integer from 1 to 1000");
        goto error;
    }
    char after [RELAIS_KEY_MAX] = "";
    const msgpack_object *a = relais_msg_get (&msg.root, "after");
    if (a && relais_msg_str_copy (a, after, sizeof after) < 0) {
        relais_error_set (&err, RELAIS_CODE_INVALID, "after", "a report id SIG-…");
        goto error;
    }
    msgpack_sbuffer items;
    msgpack_sbuffer_init (&items);
    msgpack_packer ipk;
    msgpack_packer_init (&ipk, &items, msgpack_sbuffer_write);
    s_list_t sl = { producer, strlen (producer), (uint32_t) limit, &ipk, &items, 0, false, NULL,
                    &self->scratch };
    s_list_read_t lr = { &sl, after };
    int rc = relais_store_read (self->store, s_read_list, &lr);
    if (rc) {
        msgpack_sbuffer_destroy (&items);
        relais_error_set (&err, RELAIS_CODE_UNAVAILABLE, "", "storage unavailable, retry later");
        goto error;
    }
    msgpack_pack_map (&pk, 4 + (rid != NULL));
    relais_pack_kv_bool (&pk, "ok", true);
    if (rid) {
        relais_pack_str (&pk, "rid");
        relais_pack_object (&pk, rid);
    }
    relais_pack_kv_str (&pk, "producer", producer);
    relais_pack_kv_bool (&pk, "more", sl.more);
    relais_pack_str (&pk, "reports");
    msgpack_pack_array (&pk, sl.count);
    relais_pack_raw (&pk, items.data, items.size);
    msgpack_sbuffer_destroy (&items);
    relais_request_reply (poller, &req, out.data, out.size);
    goto done;
error:
    if (req.identity)
        relais_request_error (poller, &req, &err, NULL, rid);
done:
    relais_msg_release (&msg);
    msgpack_sbuffer_destroy (&out);
    relais_request_release (&req);
}

//  ---------------------------------------------------------------------------
//  Timers: deliver after each commit; pings, silent followers, redelivery

static void
s_on_kick (uv_timer_t *timer)
{
    feedback_server_t *self = (feedback_server_t *) timer->data;
    self->kick_pending = false;
    self->stats.delivered += relais_mailbox_deliver_all (self->mailbox);
}

static void
s_on_commit (void *arg)
{
    feedback_server_t *self = (feedback_server_t *) arg;
    if (self->timers_open && !self->kick_pending) {
        self->kick_pending = true;
        uv_timer_start (&self->kick, s_on_kick, 0, 0);
    }
}

static void
s_on_tick (uv_timer_t *timer)
{
    feedback_server_t *self = (feedback_server_t *) timer->data;
    self->stats.delivered += relais_mailbox_tick (self->mailbox);
    if (++self->ticks % 50 == 0) {
        relais_store_tick (self->store);
        relais_info ("stats changes=%llu skipped=%llu delivered=%llu acked=%llu",
                     (unsigned long long) self->stats.changes, (unsigned long long) self->stats.skipped,
                     (unsigned long long) self->stats.delivered, (unsigned long long) self->stats.acked);
    }
}

//  ---------------------------------------------------------------------------

static void
s_on_signal (int signum, void *arg)
{
    feedback_server_stop ((feedback_server_t *) arg);
}

feedback_server_t *
feedback_server_new (uv_loop_t *loop, relais_config_t *config)
{
    feedback_server_t *self = (feedback_server_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->loop = loop;
    self->config = config;
    self->hb_us = relais_config_duration_ms (config, "feedback/feed_heartbeat", 1000) * 1000;
    if (self->hb_us == 0)
        self->hb_us = 1000000;
    relais_mailbox_opts_t opts = {
        .what = "follower",
        .name_field = "producer",
        .db = S_DB_FEED,
        .acked_prefix = "facked/",
        .heartbeat_us = self->hb_us,
        .redeliver_us = relais_config_duration_ms (config, "feedback/redeliver", 10000) * 1000,
        .window = (uint32_t) relais_config_int (config, "feedback/window", 64),
        .pack = s_pack_change,
        .pack_arg = self,
    };
    self->mailbox = relais_mailbox_new (&opts);
    if (!self->mailbox) {
        free (self);
        return NULL;
    }
    return self;
}

static const char *
s_config_or (relais_config_t *config, const char *path, const char *fallback)
{
    const char *value = relais_config_str (config, path);
    return value && *value? value: fallback;
}

//  Follow source when the deployment names both its endpoints
static int
s_follow (feedback_server_t *self, const char *source, const char *const *topics, bool *on)
{
    char pub [64], fetch [64];
    snprintf (pub, sizeof pub, "%s/pub", source);
    snprintf (fetch, sizeof fetch, "%s/fetch", source);
    const char *pub_ep = relais_config_str (self->config, pub);
    const char *fetch_ep = relais_config_str (self->config, fetch);
    *on = pub_ep && *pub_ep && fetch_ep && *fetch_ep;
    return *on? relais_sub_add (self->sub, source, pub_ep, fetch_ep, topics): 0;
}

int
feedback_server_start (feedback_server_t *self)
{
    relais_config_t *config = self->config;
    char *store_path = relais_config_path (config, "feedback/store/path");
    int rc = -EINVAL;
    if (!store_path)
        goto failed;
    relais_store_opts_t opts = {
        relais_config_size (config, "feedback/store/map_size", 64 << 20),
        relais_config_size (config, "feedback/store/map_max", 64ULL << 30),
        s_dbs,
        relais_config_size (config, "feedback/store/wal_size", 4 << 20)
    };
    self->store = relais_store_new (store_path, &opts);
    if (!self->store)
        goto failed;
    rc = -EADDRINUSE;
    uint64_t heartbeat = relais_config_duration_ms (config, "feedback/heartbeat", 1000);
    relais_pub_opts_t pub_opts = {
        .name = "feedback",
        .pub_endpoint = relais_config_str (config, "feedback/pub"),
        .fetch_endpoint = relais_config_str (config, "feedback/fetch"),
        .heartbeat_ms = heartbeat,
    };
    self->pub = relais_pub_new (self->loop, self->store, &pub_opts);
    if (!self->pub)
        goto failed;
    relais_store_hook (self->store, NULL, s_on_commit, NULL, self);
    zsock_t *feed = relais_sock_new (ZMQ_ROUTER, relais_config_str (config, "feedback/feed"),
                                     RELAIS_SOCK_BIND, RELAIS_MSG_MAX_BYTES);
    if (!feed)
        goto failed;
    zsock_set_router_mandatory (feed, 1);
    self->feed = relais_poller_new (self->loop, &feed, 256, s_on_feed, NULL, self);
    relais_mailbox_attach (self->mailbox, self->store, self->feed);
    zsock_t *api = relais_sock_new (ZMQ_ROUTER, relais_config_str (config, "feedback/api"),
                                    RELAIS_SOCK_BIND, RELAIS_MSG_MAX_BYTES);
    if (!api)
        goto failed;
    self->api = relais_poller_new (self->loop, &api, 64, s_on_api, NULL, self);
    uv_timer_init (self->loop, &self->tick);
    uv_timer_init (self->loop, &self->kick);
    self->tick.data = self->kick.data = self;
    self->timers_open = true;
    //  The sources' heartbeat interval is ours too: one deployment, one pace
    relais_sub_opts_t sub_opts = { .heartbeat_ms = heartbeat };
    self->sub = relais_sub_new (self->loop, self->store, &sub_opts, s_apply, self);
    static const char *const signal_topics [] = { "signal.", NULL };
    static const char *const route_topics [] = { "route.", NULL };
    static const char *const plan_topics [] = { "plan.opened", "plan.updated", "plan.reopened",
                                                "plan.closed", NULL };
    bool router = false, plans = false;
    rc = -EINVAL;
    if (!self->sub
    ||  relais_sub_add (self->sub, "intake", s_config_or (config, "intake/pub", S_INTAKE_PUB),
                        s_config_or (config, "intake/fetch", S_INTAKE_FETCH), signal_topics)
    ||  s_follow (self, "router", route_topics, &router)
    ||  s_follow (self, "plans", plan_topics, &plans)
    ||  (rc = relais_sub_start (self->sub)))
        goto failed;
    relais_pub_attach_sub (self->pub, self->sub);
    self->signals = relais_signals_new (self->loop, s_on_signal, self);
    uint64_t tick_ms = self->hb_us / 1000 / 2;
    uv_timer_start (&self->tick, s_on_tick, tick_ms? tick_ms: 1, tick_ms? tick_ms: 1);
    relais_notice ("ready feed=%s api=%s router=%s plans=%s store=%s last=%llu",
                   relais_config_str (config, "feedback/feed"), relais_config_str (config, "feedback/api"),
                   router? "yes": "no", plans? "yes": "no", store_path,
                   (unsigned long long) relais_pub_last (self->pub));
    free (store_path);
    return 0;

failed:
    relais_error ("start failed error=%s", relais_strerror (rc));
    free (store_path);
    feedback_server_stop (self);
    return rc;
}

void
feedback_server_stop (feedback_server_t *self)
{
    relais_sub_close (&self->sub);
    relais_mailbox_attach (self->mailbox, NULL, NULL);
    relais_poller_close (&self->feed);
    relais_poller_close (&self->api);
    relais_pub_close (&self->pub);
    relais_signals_close (&self->signals);
    if (self->timers_open) {
        uv_timer_stop (&self->tick);
        uv_timer_stop (&self->kick);
        uv_close ((uv_handle_t *) &self->tick, NULL);
        uv_close ((uv_handle_t *) &self->kick, NULL);
        self->timers_open = false;
    }
}

void
feedback_server_destroy (feedback_server_t **self_p)
{
    feedback_server_t *self = *self_p;
    if (!self)
        return;
    *self_p = NULL;
    relais_mailbox_destroy (&self->mailbox);
    relais_store_destroy (&self->store);
    free (self);
}
