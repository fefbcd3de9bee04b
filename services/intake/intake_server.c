/*  =========================================================================
    intake_server - takes signalements from producers, durably, once
    (see intake_server.h)
    =========================================================================
*/
#include "intake_server.h"
#include "intake_privacy.h"
#include "intake_pseudo.h"
#include "intake_rules.h"
#include "relais_audit.h"
#include "relais_bus.h"
#include "relais_clock.h"
#include "relais_log.h"
#include "relais_security.h"
#include "relais_signal.h"

#include <sodium.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/stat.h>

#define S_ID_MAX        24
#define S_IDEM_MAX      128
#define S_REFS_MAX      RELAIS_SIG_PEOPLE_MAX
#define S_REPEAT_KEEP   64
//  Spare ops kept for reuse: a batch under load holds up to a producer
//  window of them (1,000), and an op made anew costs a calloc and the
//  first growth of its buffers. About 3 KiB each, only after a load.
#define S_POOL_KEEP     1024
#define S_OP_BUFFER     512             //  first size of an op's buffers
#define S_PUBLIC_EXTRA  4               //  level, reasons, person_refs, received_at

const relais_config_key_t intake_keys [] = {
    { "submit", "tcp://127.0.0.1:7100", relais_check_endpoint, "ROUTER for producers: submit, update, close" },
    { "pub", "tcp://127.0.0.1:7101", relais_check_endpoint, "PUB of intake's events (signal.*)" },
    { "fetch", "tcp://127.0.0.1:7102", relais_check_endpoint, "ROUTER for fetch (catch-up) and status" },
    { "records", "tcp://127.0.0.1:7103", relais_check_endpoint, "ROUTER serving full records to authorised services" },
    { "store/path", "intake", relais_check_path, "LMDB folder (relative: under relais/data)" },
    { "store/map_size", "64M", relais_check_size, "initial LMDB map size; grows on demand" },
    { "store/map_max", "64G", relais_check_size, "cap of the LMDB map; past it submits get 'unavailable'" },
    { "store/wal_size", "4M", relais_check_size, "write-ahead log file, 64K to 256M: an ack flushes one record there; full, it is checkpointed into LMDB" },
    { "heartbeat", "1s", relais_check_duration, "heartbeat interval on PUB" },
    { "batch_max", "4096", relais_check_uint, "requests at most in one group commit" },
    { "person_key_file", "intake.key", relais_check_path, "secret key of person_refs (created at first start, mode 0600)" },
    { "audit_file", "intake-audit.log", relais_check_path, "append-only log of every full-record read (relative: under relais/data)" },
    { "audit_key_file", "intake-audit.key", relais_check_path, "key of the audit chain's MACs (created at first start, mode 0600)" },
    { "retention/closed", "90d", relais_check_duration, "personal fields of a closed report are removed this long after its last change" },
    { "retention/open", "730d", relais_check_duration, "... and of an open report without any change for this long (CNIL: 2 years)" },
    { "retention/every", "1d", relais_check_duration, "the retention job runs this often (and on demand: relais purge)" },
    { NULL, NULL, NULL, NULL }
};

static const char *const s_dbs [] = { "signals", "idem", "repeats", NULL };
enum { S_DB_SIGNALS, S_DB_IDEM, S_DB_REPEATS };

typedef enum { S_SUBMIT, S_UPDATE, S_CLOSE } s_kind_t;

static const char *const s_close_reasons [] = {
    "pris_en_charge", "resolu", "doublon", "erreur", "sans_suite", "autre"
};
#define S_CLOSE_REASONS 6

//  Top-level fields an update may change (for the "changed" list)
static const char *const s_changeable [] = {
    "observed_at", "place", "persons", "publics", "minors", "pregnant", "tents",
    "needs", "urgency", "sensitive", "escalate", "escalate_reason", "summary", "people"
};
#define S_CHANGEABLE 14

typedef struct s_op_t s_op_t;
struct s_op_t {
    s_op_t *next;                       //  in the server's pool of spare ops
    relais_request_t req;
    s_kind_t kind;
    const msgpack_object *idem;
    const msgpack_object *rid;
    char idem_key [S_IDEM_MAX + 64];
    size_t idem_key_len;
    //  submit: what the transaction needs of the report, worked out when it
    //  is parsed (into the server's one scratch signal, warm in the cache)
    char refs [S_REFS_MAX][RELAIS_SIG_REF_MAX];
    size_t ref_count;
    char place [64];                    //  the repeat key of the place, or ""
    uint32_t reasons;                   //  reasons that do not need history
    const msgpack_object *changes;      //  update
    char id [S_ID_MAX];                 //  update, close
    char reason [32];                   //  close
    relais_peer_t peer;                 //  who sent it (its certificate)
    //  result, rewritten by every attempt of the transaction
    relais_error_t err;
    char result_id [S_ID_MAX];
    uint64_t seq;
    uint32_t level;
    bool duplicate;
    //  Last, kept with their memory when the op is reused (s_op_new)
    msgpack_sbuffer full;               //  submit: the whole signal, packed
    msgpack_sbuffer pub;                //  submit: its public view, packed
    relais_msg_t msg;                   //  the request, decoded (its zone kept)
};

typedef struct {
    uint64_t received, acked, duplicates, batches, largest_batch;
    uint64_t replies_dropped;           //  the peer's queue was full: it will resend
    uint64_t errors [9];                //  by s_code_index
} s_stats_t;

struct intake_server_t {
    uv_loop_t *loop;
    relais_audit_t *audit;              //  every full-record read, before it is sent
    relais_config_t *config;
    relais_store_t *store;
    relais_pub_t *pub;
    relais_poller_t *submit;
    relais_poller_t *records;
    relais_signals_t *signals;
    uv_timer_t maint;
    bool maint_open;
    uv_timer_t retention;               //  the daily purge
    bool retention_open;
    uint64_t retention_closed_us, retention_open_us;
    uint64_t retention_wall, retention_mono;    //  clocks at the last run
    intake_rules_t rules;
    uint8_t key [INTAKE_KEY_SIZE];
    size_t batch_max;
    s_op_t **ops;
    size_t count;
    s_stats_t stats;
    uint64_t now;                       //  clock of the open batch
    //  next_signal of the open transaction: read at its first submit,
    //  written back once at its end (not a get and a put per submit)
    uint64_t next_signal;
    bool next_signal_read;
    //  Reused from op to op: a fresh sbuffer mallocs 8 KiB at its first
    //  write, and a report is ~7.5 KiB of parsed fields; per event that
    //  was a fifth of intake's time under load.
    s_op_t *pool;                       //  spare ops, their sig kept
    size_t pooled;
    msgpack_sbuffer reply;              //  an ack, outside the txn
    msgpack_sbuffer body;               //  a signal.* event's body
    msgpack_sbuffer record;             //  a stored record
    //  A report parsed outside the transaction (submit), then one loaded
    //  inside it (update, close). A report is ~7.5 KiB of fields: one per
    //  op meant zeroing ~4 MiB of cold memory for a batch of 500.
    relais_signal_t *sig;
    relais_signal_t *stored;
};

static const char *const s_codes [] = {
    RELAIS_CODE_INVALID, RELAIS_CODE_TOO_LARGE, RELAIS_CODE_UNKNOWN_OP,
    RELAIS_CODE_UNAUTHORIZED, RELAIS_CODE_NOT_FOUND, RELAIS_CODE_CONFLICT,
    RELAIS_CODE_UNAVAILABLE, RELAIS_CODE_GONE, NULL
};

static void
s_count_error (intake_server_t *self, const char *code)
{
    int i = 0;
    while (s_codes [i] && strcmp (s_codes [i], code) != 0)
        i++;
    self->stats.errors [i]++;
}

//  ---------------------------------------------------------------------------
//  Configuration

int
intake_declare (relais_config_t *config)
{
    static relais_config_key_t keys [64];
    size_t n = 0;
    for (size_t i = 0; intake_keys [i].path; i++)
        keys [n++] = intake_keys [i];
    for (size_t i = 0; intake_rules_keys [i].path; i++)
        keys [n++] = intake_rules_keys [i];
    keys [n].path = NULL;
    return relais_config_declare (config, "intake", keys);
}

//  ---------------------------------------------------------------------------
//  Operations

static void
s_op_destroy (s_op_t **op_p)
{
    s_op_t *op = *op_p;
    if (op) {
        relais_request_release (&op->req);
        relais_msg_release (&op->msg);
        msgpack_sbuffer_destroy (&op->full);
        msgpack_sbuffer_destroy (&op->pub);
        free (op);
        *op_p = NULL;
    }
}

//  A zeroed op, but for its packing buffers (emptied, their memory kept):
//  a spare one from the pool, else new.
static s_op_t *
s_op_new (intake_server_t *self)
{
    s_op_t *op = self->pool;
    if (!op) {
        //  msgpack's sbuffer starts at 8 KiB; a packed report is ~0.5 KiB,
        //  and the buffers grow by doubling when one is larger
        op = (s_op_t *) calloc (1, sizeof (s_op_t));
        if (op) {
            op->full.data = (char *) malloc (S_OP_BUFFER);
            op->pub.data = (char *) malloc (S_OP_BUFFER);
            op->full.alloc = op->full.data? S_OP_BUFFER: 0;
            op->pub.alloc = op->pub.data? S_OP_BUFFER: 0;
        }
        return op;
    }
    self->pool = op->next;
    self->pooled--;
    memset (op, 0, offsetof (s_op_t, full));
    msgpack_sbuffer_clear (&op->full);
    msgpack_sbuffer_clear (&op->pub);
    return op;
}

//  Done with an op: its frames and decoded message go, the op itself goes
//  back to the pool unless the pool is full.
static void
s_op_recycle (intake_server_t *self, s_op_t **op_p)
{
    s_op_t *op = *op_p;
    if (!op)
        return;
    *op_p = NULL;
    if (self->pooled >= S_POOL_KEEP) {
        s_op_destroy (&op);
        return;
    }
    relais_request_release (&op->req);
    relais_msg_clear (&op->msg);        //  its zone's memory stays for the next request
    op->next = self->pool;
    self->pool = op;
    self->pooled++;
}

//  Send the op's reply (its error, or its acknowledgement) and count it.
static void
s_op_reply (intake_server_t *self, s_op_t *op)
{
    if (op->err.code) {
        s_count_error (self, op->err.code);
        relais_request_error (self->submit, &op->req, &op->err, op->idem, op->rid);
        return;
    }
    msgpack_sbuffer *sbuf = &self->reply;
    msgpack_sbuffer_clear (sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, sbuf, relais_sbuffer_write);
    msgpack_pack_map (&pk, 6 + (op->rid != NULL));
    relais_pack_kv_bool (&pk, "ok", true);
    relais_pack_str (&pk, "idem");
    relais_pack_object (&pk, op->idem);
    relais_pack_kv_str (&pk, "id", op->result_id);
    relais_pack_kv_uint (&pk, "seq", op->seq);
    relais_pack_kv_uint (&pk, "level", op->level);
    relais_pack_kv_bool (&pk, "duplicate", op->duplicate);
    if (op->rid) {
        relais_pack_str (&pk, "rid");
        relais_pack_object (&pk, op->rid);
    }
    int rc = relais_request_reply (self->submit, &op->req, sbuf->data, sbuf->size);
    if (rc) {
        //  The report is durable; only the ack is lost. ROUTER cannot wait
        //  for a full peer queue without stalling every producer, so the
        //  producer's resend (same idem) gets it back as a duplicate.
        if (self->stats.replies_dropped++ == 0 || self->stats.replies_dropped % 1000 == 0)
            relais_warning ("ack not sent error=%s dropped=%llu (the producer will resend)",
                            strerror (-rc), (unsigned long long) self->stats.replies_dropped);
        return;
    }
    self->stats.acked++;
    if (op->duplicate)
        self->stats.duplicates++;
}

static int
s_get_id (const msgpack_object *root, char *id, relais_error_t *err)
{
    const msgpack_object *o = relais_msg_get (root, "id");
    if (!o || o->type != MSGPACK_OBJECT_STR)
        return relais_error_set (err, RELAIS_CODE_INVALID, "id", "required, a report id \"SIG-...\"");
    if (relais_msg_str_copy (o, id, S_ID_MAX) < 0)
        return relais_error_set (err, RELAIS_CODE_NOT_FOUND, "id", "no report has this id");
    return 0;
}

//  A producer's source is the one of its certificate, whatever the report
//  says: a cell cannot file reports in another cell's name.
static void
s_source_from_peer (relais_signal_t *sig, const relais_peer_t *peer)
{
    if (strcmp (peer->role, "producer") != 0 || !*peer->source_kind)
        return;
    int kind = relais_enum_find (relais_source_kind_names, RELAIS_SOURCE_COUNT, peer->source_kind);
    if (kind >= 0)
        sig->source_kind = (relais_source_kind_t) kind;
    snprintf (sig->source_name, sizeof sig->source_name, "%s",
              *peer->source_name? peer->source_name: peer->name);
}

//  Validate what can be validated without the store. Returns 0 when the op
//  joins the batch; otherwise op->err is set.
static int
s_op_parse (intake_server_t *self, s_op_t *op)
{
    relais_error_t *err = &op->err;
    const msgpack_object *root = &op->msg.root;
    if (root->type != MSGPACK_OBJECT_MAP)
        return relais_error_set (err, RELAIS_CODE_INVALID, "", "request must be a map");
    op->rid = relais_msg_get (root, "rid");
    op->idem = relais_msg_get (root, "idem");
    if (op->idem && op->idem->type != MSGPACK_OBJECT_STR)
        op->idem = NULL;
    const msgpack_object *opname = relais_msg_get (root, "op");
    if (!opname || opname->type != MSGPACK_OBJECT_STR)
        return relais_error_set (err, RELAIS_CODE_INVALID, "op", "required, a string: submit, update or close");
    if (relais_msg_str_eq (opname, "submit"))
        op->kind = S_SUBMIT;
    else
    if (relais_msg_str_eq (opname, "update"))
        op->kind = S_UPDATE;
    else
    if (relais_msg_str_eq (opname, "close"))
        op->kind = S_CLOSE;
    else
        return relais_error_set (err, RELAIS_CODE_UNKNOWN_OP, "op",
                                 "this endpoint serves submit, update and close");
    const msgpack_object *idem = relais_msg_get (root, "idem");
    if (!idem || idem->type != MSGPACK_OBJECT_STR || idem->via.str.size == 0)
        return relais_error_set (err, RELAIS_CODE_INVALID, "idem",
                                 "required, a non-empty string unique per producer");
    if (idem->via.str.size > S_IDEM_MAX)
        return relais_error_set (err, RELAIS_CODE_TOO_LARGE, "idem",
                                 "at most %d bytes", S_IDEM_MAX);
    if (!relais_utf8_clean (idem->via.str.ptr, idem->via.str.size, false))
        return relais_error_set (err, RELAIS_CODE_INVALID, "idem", "must be one line of text");
    //  Who sent it comes from the connection (CURVE certificate), never
    //  from the message. Idempotency is per producer: without CURVE every
    //  producer shares the anonymous scope, so idem must be globally unique.
    if (!relais_request_peer (&op->req, &op->peer))
        return relais_error_set (err, RELAIS_CODE_UNAUTHORIZED, "",
                                 "this connection's certificate is not in the roster");
    size_t name_len = strnlen (op->peer.name, sizeof op->idem_key - S_IDEM_MAX - 1);
    memcpy (op->idem_key, op->peer.name, name_len);
    op->idem_key [name_len] = 0;
    op->idem_key_len = name_len + 1;
    memcpy (op->idem_key + op->idem_key_len, idem->via.str.ptr, idem->via.str.size);
    op->idem_key_len += idem->via.str.size;

    if (op->kind == S_SUBMIT) {
        const msgpack_object *signal = relais_msg_get (root, "signal");
        if (!signal || signal->type != MSGPACK_OBJECT_MAP)
            return relais_error_set (err, RELAIS_CODE_INVALID, "signal", "required, a map");
        relais_signal_t *sig = self->sig;
        int rc = relais_signal_parse (signal, "signal", self->now, sig, err);
        if (rc)
            return rc;
        s_source_from_peer (sig, &op->peer);
        //  All that depends on the report alone, while it is in the cache
        op->ref_count = intake_pseudo_refs (self->key, sig, op->refs);
        if (self->rules.repeat_window_us && self->rules.repeat_count)
            intake_pseudo_place (self->key, sig, op->place, sizeof op->place);
        op->reasons = intake_rules_qualify (&self->rules, sig, 0);
        msgpack_packer pk;
        msgpack_packer_init (&pk, &op->full, relais_sbuffer_write);
        relais_signal_pack_full (&pk, sig);
        msgpack_packer_init (&pk, &op->pub, relais_sbuffer_write);
        relais_signal_pack_public (&pk, sig, S_PUBLIC_EXTRA);
        return 0;
    }
    int rc = s_get_id (root, op->id, err);
    if (rc)
        return rc;
    //  Update and close both load the stored signal, in the transaction
    if (op->kind == S_UPDATE) {
        op->changes = relais_msg_get (root, "changes");
        if (!op->changes || op->changes->type != MSGPACK_OBJECT_MAP
        ||  op->changes->via.map.size == 0)
            return relais_error_set (err, RELAIS_CODE_INVALID, "changes",
                                     "required, a non-empty map of signal fields");
        return 0;
    }
    const msgpack_object *reason = relais_msg_get (root, "reason");
    char text [32];
    if (!reason || relais_msg_str_copy (reason, text, sizeof text) < 0
    ||  relais_enum_find (s_close_reasons, S_CLOSE_REASONS, text) < 0)
        return relais_error_set (err, RELAIS_CODE_INVALID, "reason",
                                 "required, one of pris_en_charge, resolu, doublon, erreur, sans_suite, autre");
    strcpy (op->reason, text);
    return 0;
}

//  ---------------------------------------------------------------------------
//  Stored record of a report: {v, id, seq, level, reasons, repeats, state,
//  created_at, updated_at, closed_reason?, person_refs, signal}

typedef struct {
    char id [S_ID_MAX];
    uint64_t seq, created_at, updated_at;
    uint32_t level, reasons;
    bool closed;
    char closed_reason [32];
    char refs [S_REFS_MAX][RELAIS_SIG_REF_MAX];
    size_t ref_count;
    uint64_t scrubbed_at;               //  personal fields removed (erase, purge); 0: never
} s_record_t;

static void
s_pack_reasons (msgpack_packer *pk, uint32_t reasons)
{
    relais_pack_mask (pk, reasons, intake_reason_names, INTAKE_REASON_COUNT);
}

static void
s_pack_refs (msgpack_packer *pk, const s_record_t *rec)
{
    msgpack_pack_array (pk, rec->ref_count);
    for (size_t i = 0; i < rec->ref_count; i++)
        relais_pack_str (pk, rec->refs [i]);
}

//  The signal is sig, or when sig is NULL the bytes already packed in full.
static void
s_pack_record (msgpack_packer *pk, const s_record_t *rec, const relais_signal_t *sig,
               const msgpack_sbuffer *full)
{
    msgpack_pack_map (pk, 10 + (rec->closed? 1: 0) + (rec->scrubbed_at? 1: 0));
    relais_pack_kv_uint (pk, "v", 1);
    relais_pack_kv_str (pk, "id", rec->id);
    relais_pack_kv_uint (pk, "seq", rec->seq);
    relais_pack_kv_uint (pk, "level", rec->level);
    relais_pack_str (pk, "reasons");
    s_pack_reasons (pk, rec->reasons);
    relais_pack_kv_str (pk, "state", rec->closed? "clos": "ouvert");
    relais_pack_kv_uint (pk, "created_at", rec->created_at);
    relais_pack_kv_uint (pk, "updated_at", rec->updated_at);
    if (rec->closed)
        relais_pack_kv_str (pk, "closed_reason", rec->closed_reason);
    if (rec->scrubbed_at)
        relais_pack_kv_uint (pk, "scrubbed_at", rec->scrubbed_at);
    relais_pack_str (pk, "person_refs");
    s_pack_refs (pk, rec);
    relais_pack_str (pk, "signal");
    if (sig)
        relais_signal_pack_full (pk, sig);
    else
        relais_pack_raw (pk, full->data, full->size);
}

//  Read a stored record back. The store wrote it, so a failure here means
//  the file was damaged: the op fails with "unavailable", nothing crashes.
static int
s_load_record (relais_txn_t *txn, const char *id, s_record_t *rec,
               relais_signal_t *sig, uint64_t now, relais_error_t *err)
{
    const void *data;
    size_t size;
    int rc = relais_txn_get (txn, S_DB_SIGNALS, id, strlen (id), &data, &size);
    if (rc == RELAIS_ENOTFOUND)
        return relais_error_set (err, RELAIS_CODE_NOT_FOUND, "id", "no report has this id");
    if (rc)
        return rc;
    relais_msg_t msg;
    relais_msg_limits_t limits = { 4 * RELAIS_MSG_MAX_BYTES, 0, 0 };
    relais_error_t inner;
    if (relais_msg_decode (&msg, data, size, &limits, &inner))
        return relais_error_set (err, RELAIS_CODE_UNAVAILABLE, "", "stored record unreadable");
    memset (rec, 0, sizeof *rec);
    const msgpack_object *root = &msg.root;
    snprintf (rec->id, sizeof rec->id, "%s", id);
    uint64_t value = 0;
    relais_msg_uint (relais_msg_get (root, "seq"), &rec->seq);
    relais_msg_uint (relais_msg_get (root, "level"), &value);
    rec->level = (uint32_t) value;
    relais_msg_uint (relais_msg_get (root, "created_at"), &rec->created_at);
    relais_msg_uint (relais_msg_get (root, "updated_at"), &rec->updated_at);
    relais_msg_uint (relais_msg_get (root, "scrubbed_at"), &rec->scrubbed_at);
    rec->closed = relais_msg_str_eq (relais_msg_get (root, "state"), "clos");
    relais_msg_str_copy (relais_msg_get (root, "closed_reason"), rec->closed_reason,
                         sizeof rec->closed_reason);
    const msgpack_object *reasons = relais_msg_get (root, "reasons");
    if (reasons && reasons->type == MSGPACK_OBJECT_ARRAY)
        for (uint32_t i = 0; i < reasons->via.array.size; i++) {
            char name [32];
            if (relais_msg_str_copy (&reasons->via.array.ptr [i], name, sizeof name) >= 0) {
                int r = relais_enum_find (intake_reason_names, INTAKE_REASON_COUNT, name);
                if (r >= 0)
                    rec->reasons |= 1u << r;
            }
        }
    const msgpack_object *refs = relais_msg_get (root, "person_refs");
    if (refs && refs->type == MSGPACK_OBJECT_ARRAY)
        for (uint32_t i = 0; i < refs->via.array.size && rec->ref_count < S_REFS_MAX; i++)
            if (relais_msg_str_copy (&refs->via.array.ptr [i], rec->refs [rec->ref_count],
                                     RELAIS_SIG_REF_MAX) >= 0)
                rec->ref_count++;
    rc = relais_signal_parse (relais_msg_get (root, "signal"), "", now, sig, &inner);
    relais_msg_release (&msg);
    if (rc)
        return relais_error_set (err, RELAIS_CODE_UNAVAILABLE, "", "stored record unreadable");
    return 0;
}

static int
s_put_record (intake_server_t *self, relais_txn_t *txn, const s_record_t *rec,
              const relais_signal_t *sig, const msgpack_sbuffer *full)
{
    msgpack_sbuffer *sbuf = &self->record;
    msgpack_sbuffer_clear (sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, sbuf, relais_sbuffer_write);
    s_pack_record (&pk, rec, sig, full);
    return relais_txn_put (txn, S_DB_SIGNALS, rec->id, strlen (rec->id), sbuf->data, sbuf->size);
}

//  Record one more sighting under key; true when it is at least the
//  repeat_count-th within the window.
static int
s_repeat (intake_server_t *self, relais_txn_t *txn, const char *key, bool *hit)
{
    uint64_t stamps [S_REPEAT_KEEP + 1];
    size_t count = 0;
    const void *data;
    size_t size;
    int rc = relais_txn_get (txn, S_DB_REPEATS, key, strlen (key), &data, &size);
    if (rc == 0) {
        for (size_t i = 0; i + 8 <= size && count < S_REPEAT_KEEP; i += 8) {
            uint64_t ts = relais_key_to_u64 ((const uint8_t *) data + i);
            if (ts + self->rules.repeat_window_us >= self->now)
                stamps [count++] = ts;
        }
    }
    else
    if (rc != RELAIS_ENOTFOUND)
        return rc;
    stamps [count++] = self->now;
    *hit = count >= self->rules.repeat_count;
    size_t keep = count > S_REPEAT_KEEP? S_REPEAT_KEEP: count;
    uint8_t buf [S_REPEAT_KEEP * 8];
    for (size_t i = 0; i < keep; i++)
        relais_u64_to_key (stamps [count - keep + i], buf + 8 * i);
    return relais_txn_put (txn, S_DB_REPEATS, key, strlen (key), buf, keep * 8);
}

//  The public view is packed from sig, or when sig is NULL it is the bytes
//  in pub (packed with S_PUBLIC_EXTRA pairs to come, and no changes).
static int
s_publish_signal (intake_server_t *self, relais_txn_t *txn, const char *type,
                  const s_record_t *rec, const relais_signal_t *sig,
                  const msgpack_sbuffer *pub, const msgpack_object *changes,
                  uint64_t *seq)
{
    msgpack_sbuffer *sbuf = &self->body;
    msgpack_sbuffer_clear (sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, sbuf, relais_sbuffer_write);
    if (sig)
        relais_signal_pack_public (&pk, sig, S_PUBLIC_EXTRA + (changes != NULL));
    else
        relais_pack_raw (&pk, pub->data, pub->size);
    relais_pack_kv_uint (&pk, "level", rec->level);
    relais_pack_str (&pk, "reasons");
    s_pack_reasons (&pk, rec->reasons);
    relais_pack_str (&pk, "person_refs");
    s_pack_refs (&pk, rec);
    relais_pack_kv_uint (&pk, "received_at", rec->created_at);
    if (changes) {
        size_t n = 0;
        const char *names [S_CHANGEABLE];
        for (int i = 0; i < S_CHANGEABLE; i++)
            if (relais_msg_get (changes, s_changeable [i]))
                names [n++] = s_changeable [i];
        relais_pack_str (&pk, "changed");
        msgpack_pack_array (&pk, n);
        for (size_t i = 0; i < n; i++)
            relais_pack_str (&pk, names [i]);
    }
    return relais_pub_append (self->pub, txn, type, rec->id, NULL, self->now,
                              sbuf->data, sbuf->size, seq);
}

//  "SIG-" and the number, at least 8 digits with leading zeros (as
//  "SIG-%08llu"; snprintf was a tenth of the work of a submit's keys)
static void
s_format_id (char id [S_ID_MAX], uint64_t number)
{
    char digits [24];
    size_t n = 0;
    do {
        digits [n++] = (char) ('0' + number % 10);
        number /= 10;
    } while (number > 0);
    while (n < 8)
        digits [n++] = '0';
    if (n > S_ID_MAX - 5)
        n = S_ID_MAX - 5;               //  never reached: 10^19 reports
    memcpy (id, "SIG-", 4);
    for (size_t i = 0; i < n; i++)
        id [4 + i] = digits [n - 1 - i];
    id [4 + n] = 0;
}

//  prefix then text into key (size bytes), cut to fit as snprintf would
static void
s_prefixed (char *key, size_t size, const char *prefix, const char *text)
{
    size_t plen = strlen (prefix);
    size_t tlen = strnlen (text, size - plen - 1);
    memcpy (key, prefix, plen);
    memcpy (key + plen, text, tlen);
    key [plen + tlen] = 0;
}

static int
s_do_submit (intake_server_t *self, relais_txn_t *txn, s_op_t *op)
{
    s_record_t rec;
    memset (&rec, 0, sizeof rec);
    int rc;
    if (!self->next_signal_read) {
        self->next_signal = 0;
        if ((rc = relais_meta_get (txn, "next_signal", &self->next_signal)))
            return rc;
        self->next_signal_read = true;
    }
    s_format_id (rec.id, ++self->next_signal);
    rec.created_at = rec.updated_at = self->now;
    rec.ref_count = op->ref_count;
    memcpy (rec.refs, op->refs, op->ref_count * sizeof op->refs [0]);

    uint32_t repeats = 0;
    if (self->rules.repeat_window_us && self->rules.repeat_count) {
        bool hit = false;
        if (op->place [0]) {
            char key [80];
            s_prefixed (key, sizeof key, "L:", op->place);
            if ((rc = s_repeat (self, txn, key, &hit)))
                return rc;
            if (hit)
                repeats |= INTAKE_REPEAT_PLACE;
        }
        for (size_t i = 0; i < rec.ref_count; i++) {
            char key [40];
            s_prefixed (key, sizeof key, "P:", rec.refs [i]);
            if ((rc = s_repeat (self, txn, key, &hit)))
                return rc;
            if (hit)
                repeats |= INTAKE_REPEAT_PERSON;
        }
    }
    rec.reasons = op->reasons | intake_rules_repeats (&self->rules, repeats);
    rec.level = rec.reasons? 2: 1;
    if ((rc = s_publish_signal (self, txn, "signal.created", &rec, NULL, &op->pub, NULL,
                                &rec.seq)))
        return rc;
    if ((rc = s_put_record (self, txn, &rec, NULL, &op->full)))
        return rc;
    strcpy (op->result_id, rec.id);
    op->seq = rec.seq;
    op->level = rec.level;
    return 0;
}

static int
s_do_update (intake_server_t *self, relais_txn_t *txn, s_op_t *op)
{
    s_record_t rec;
    relais_signal_t *sig = self->stored;
    int rc = s_load_record (txn, op->id, &rec, sig, self->now, &op->err);
    if (rc)
        return op->err.code? 0: rc;
    if (rec.closed) {
        relais_error_set (&op->err, RELAIS_CODE_CONFLICT, "id",
                          "the report is closed: no change is allowed");
        return 0;
    }
    if (relais_signal_apply_changes (sig, op->changes, "changes", self->now, &op->err))
        return 0;
    //  Repeat reasons came from history at submit time and stay; the level
    //  never goes down: once the MUS coordinates a situation, it keeps it.
    uint32_t repeats = rec.reasons & ((1u << INTAKE_REASON_REPETITION_LIEU)
                                   |  (1u << INTAKE_REASON_REPETITION_PERSONNE));
    rec.reasons = intake_rules_qualify (&self->rules, sig, 0) | repeats;
    if (rec.reasons && rec.level < 2)
        rec.level = 2;
    rec.ref_count = intake_pseudo_refs (self->key, sig, rec.refs);
    rec.updated_at = self->now;
    uint64_t seq;
    if ((rc = s_publish_signal (self, txn, "signal.updated", &rec, sig, NULL, op->changes,
                                &seq)))
        return rc;
    if ((rc = s_put_record (self, txn, &rec, sig, NULL)))
        return rc;
    strcpy (op->result_id, rec.id);
    op->seq = seq;
    op->level = rec.level;
    return 0;
}

static int
s_do_close (intake_server_t *self, relais_txn_t *txn, s_op_t *op)
{
    s_record_t rec;
    relais_signal_t *sig = self->stored;
    int rc = s_load_record (txn, op->id, &rec, sig, self->now, &op->err);
    if (rc)
        return op->err.code? 0: rc;
    if (rec.closed) {
        relais_error_set (&op->err, RELAIS_CODE_CONFLICT, "id", "the report is already closed");
        return 0;
    }
    rec.closed = true;
    snprintf (rec.closed_reason, sizeof rec.closed_reason, "%s", op->reason);
    rec.updated_at = self->now;
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, relais_sbuffer_write);
    msgpack_pack_map (&pk, 3);
    relais_pack_kv_str (&pk, "reason", op->reason);
    relais_pack_kv_uint (&pk, "level", rec.level);
    relais_pack_kv_uint (&pk, "arrondissement", sig->arrondissement);
    uint64_t seq;
    rc = relais_pub_append (self->pub, txn, "signal.closed", rec.id, NULL, self->now,
                            sbuf.data, sbuf.size, &seq);
    msgpack_sbuffer_destroy (&sbuf);
    if (rc || (rc = s_put_record (self, txn, &rec, sig, NULL)))
        return rc;
    strcpy (op->result_id, rec.id);
    op->seq = seq;
    op->level = rec.level;
    return 0;
}

//  The group commit: every valid op of this turn, one transaction.
static int
s_write_batch (relais_txn_t *txn, void *arg)
{
    intake_server_t *self = (intake_server_t *) arg;
    //  Read anew on every attempt (the store may retry the transaction)
    self->next_signal_read = false;
    for (size_t i = 0; i < self->count; i++) {
        s_op_t *op = self->ops [i];
        //  Results are rewritten on every attempt (the store may retry)
        relais_error_clear (&op->err);
        op->result_id [0] = 0;
        op->seq = 0;
        op->level = 0;
        op->duplicate = false;
        const void *data;
        size_t size;
        int rc = relais_txn_get (txn, S_DB_IDEM, op->idem_key, op->idem_key_len, &data, &size);
        if (rc == 0 && size >= 20 && size < 20 + S_ID_MAX) {
            op->seq = relais_key_to_u64 (data);
            op->level = (uint32_t) relais_key_to_u64 ((const uint8_t *) data + 8);
            memcpy (op->result_id, (const uint8_t *) data + 20, size - 20);
            op->result_id [size - 20] = 0;
            op->duplicate = true;
            continue;
        }
        if (rc && rc != RELAIS_ENOTFOUND)
            return rc;
        rc = op->kind == S_SUBMIT? s_do_submit (self, txn, op)
           : op->kind == S_UPDATE? s_do_update (self, txn, op)
           : s_do_close (self, txn, op);
        if (rc)
            return rc;
        if (op->err.code)
            continue;           //  refused (not_found, conflict, invalid): no idem
        //  idem entry: seq (8), level (8), kind (4), id
        uint8_t value [20 + S_ID_MAX];
        relais_u64_to_key (op->seq, value);
        relais_u64_to_key (op->level, value + 8);
        memset (value + 16, 0, 4);
        value [16] = (uint8_t) op->kind;
        size_t idlen = strlen (op->result_id);
        memcpy (value + 20, op->result_id, idlen);
        if ((rc = relais_txn_put (txn, S_DB_IDEM, op->idem_key, op->idem_key_len,
                                  value, 20 + idlen)))
            return rc;
    }
    //  The ids this batch gave, in the same transaction as their reports
    if (self->next_signal_read)
        return relais_meta_set (txn, "next_signal", self->next_signal);
    return 0;
}

static void s_commit (intake_server_t *self);

//  A request, straight in libzmq's frames (a request poller: no zmsg)
static void
s_on_submit (relais_poller_t *poller, relais_request_t *req, int shape, void *arg)
{
    intake_server_t *self = (intake_server_t *) arg;
    s_op_t *op = s_op_new (self);
    if (!op)
        return;                         //  the producer times out and retries
    self->stats.received++;
    if (self->count == 0)
        self->now = relais_clock_now ();
    relais_request_move (&op->req, req);
    relais_error_t *err = &op->err;
    size_t size;
    const void *bytes = relais_request_bytes (&op->req, &size);
    if (shape)
        relais_error_set (err, RELAIS_CODE_INVALID, "",
                          "expected an empty delimiter frame, then one data frame");
    else
    if (relais_msg_redecode (&op->msg, bytes, size, NULL, err) == 0)
        s_op_parse (self, op);
    if (op->err.code) {
        s_op_reply (self, op);
        s_op_recycle (self, &op);
        return;
    }
    self->ops [self->count++] = op;
    if (self->count == self->batch_max) {
        //  A full batch commits at once; the poller goes on with the rest
        s_commit (self);
    }
}

static void
s_commit (intake_server_t *self)
{
    if (self->count == 0)
        return;
    int rc = relais_store_write (self->store, s_write_batch, self);
    self->stats.batches++;
    if (self->count > self->stats.largest_batch)
        self->stats.largest_batch = self->count;
    for (size_t i = 0; i < self->count; i++) {
        s_op_t *op = self->ops [i];
        if (rc) {
            //  Nothing of the batch is durable: nobody gets an ack, and the
            //  producers retry with the same idem.
            relais_error_set (&op->err, RELAIS_CODE_UNAVAILABLE, "",
                              rc == RELAIS_EFULL? "storage full, retry later"
                                                : "storage unavailable, retry later");
        }
        else
        if (!op->err.code)
            relais_debug ("%s id=%s seq=%llu level=%u%s",
                          op->kind == S_SUBMIT? "submit": op->kind == S_UPDATE? "update": "close",
                          op->result_id, (unsigned long long) op->seq, op->level,
                          op->duplicate? " duplicate": "");
        s_op_reply (self, op);
        s_op_recycle (self, &self->ops [i]);
    }
    self->count = 0;
    if (rc == RELAIS_EFATAL)
        relais_fatal ("intake commit", rc);
    if (rc)
        relais_warning ("batch refused error=%s", relais_strerror (rc));
}

static void
s_on_submit_batch (relais_poller_t *poller, void *arg)
{
    s_commit ((intake_server_t *) arg);
}

//  ---------------------------------------------------------------------------
//  Erasure and retention (proto/privacy.md): the personal fields of records
//  are removed, the records stay, then the store is compacted so the bytes
//  are gone from data.mdb too


typedef struct {
    intake_server_t *self;
    bool erase;                         //  else purge
    char person [RELAIS_SIG_REF_MAX];   //  erase: the person_ref
    uint64_t now;
    char (*ids) [S_ID_MAX];             //  reports to scrub
    size_t count, cap;
    uint64_t people_removed;            //  written by the transaction
    int error;
} s_scrub_t;

//  Pick the reports the operation touches (read transaction)
static int
s_scrub_pick (const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    s_scrub_t *sc = (s_scrub_t *) arg;
    if (klen >= S_ID_MAX)
        return 0;
    relais_msg_t msg;
    relais_msg_limits_t limits = { 4 * RELAIS_MSG_MAX_BYTES, 0, 0 };
    relais_error_t err;
    if (relais_msg_decode (&msg, val, vlen, &limits, &err))
        return 0;                       //  unreadable: left alone (a store fault)
    const msgpack_object *root = &msg.root;
    bool pick = false;
    if (sc->erase) {
        const msgpack_object *refs = relais_msg_get (root, "person_refs");
        if (refs && refs->type == MSGPACK_OBJECT_ARRAY)
            for (uint32_t i = 0; i < refs->via.array.size && !pick; i++)
                pick = relais_msg_str_eq (&refs->via.array.ptr [i], sc->person);
    }
    else {
        intake_server_t *self = sc->self;
        uint64_t updated = 0, scrubbed = 0;
        relais_msg_uint (relais_msg_get (root, "updated_at"), &updated);
        relais_msg_uint (relais_msg_get (root, "scrubbed_at"), &scrubbed);
        bool closed = relais_msg_str_eq (relais_msg_get (root, "state"), "clos");
        uint64_t keep = closed? self->retention_closed_us: self->retention_open_us;
        pick = scrubbed < updated && updated + keep <= sc->now;
    }
    relais_msg_release (&msg);
    if (!pick)
        return 0;
    if (sc->count == sc->cap) {
        size_t cap = sc->cap? 2 * sc->cap: 64;
        void *ids = realloc (sc->ids, cap * sizeof *sc->ids);
        if (!ids)
            return -ENOMEM;
        sc->ids = (char (*) [S_ID_MAX]) ids;
        sc->cap = cap;
    }
    memcpy (sc->ids [sc->count], key, klen);
    sc->ids [sc->count++][klen] = 0;
    return 0;
}

static int
s_scrub_read (relais_txn_t *txn, void *arg)
{
    return relais_txn_scan (txn, S_DB_SIGNALS, NULL, 0, s_scrub_pick, arg);
}

//  Remove the personal fields of every picked report (one transaction)
static int
s_scrub_write (relais_txn_t *txn, void *arg)
{
    s_scrub_t *sc = (s_scrub_t *) arg;
    intake_server_t *self = sc->self;
    sc->people_removed = 0;
    relais_signal_t *sig = (relais_signal_t *) malloc (sizeof *sig);
    if (!sig)
        return -ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < sc->count && rc == 0; i++) {
        s_record_t rec;
        relais_error_t err;
        relais_error_clear (&err);
        rc = s_load_record (txn, sc->ids [i], &rec, sig, sc->now, &err);
        if (rc || err.code) {
            rc = rc? rc: RELAIS_EMALFORMED;
            break;
        }
        sc->people_removed += intake_privacy_scrub (sig, sc->erase? self->key: NULL,
                                                    sc->erase? sc->person: NULL);
        //  After the change it records, so the purge never picks it again
        rec.scrubbed_at = rec.updated_at > sc->now? rec.updated_at: sc->now;
        rc = s_put_record (self, txn, &rec, sig, NULL);
    }
    sodium_memzero (sig, sizeof *sig);
    free (sig);
    return rc;
}

//  Run an erase or a purge: pick, audit, scrub, compact. args says who asks
//  and why, for the audit. Returns 0 or a §6 error in err.
static int
s_scrub_run (intake_server_t *self, s_scrub_t *sc, const intake_scrub_args_t *args,
             bool *compacted, relais_error_t *err)
{
    *compacted = false;
    if (relais_store_read (self->store, s_scrub_read, sc))
        return relais_error_set (err, RELAIS_CODE_UNAVAILABLE, "", "storage unavailable, retry later");
    if (intake_scrub_audit (self->audit, sc->now, args, sc->erase, "reports", sc->count,
                            (const char *) sc->ids, sizeof *sc->ids, sc->count, "report"))
        return relais_error_set (err, RELAIS_CODE_UNAVAILABLE, "", "audit log unavailable, retry later");
    if (args->dry_run || sc->count == 0)
        return 0;
    //  Requests already read go first, so the batch is not mixed with this
    s_commit (self);
    int rc = relais_store_write (self->store, s_scrub_write, sc);
    if (rc == RELAIS_EFATAL)
        relais_fatal ("intake scrub", rc);
    if (rc)
        return relais_error_set (err, RELAIS_CODE_UNAVAILABLE, "", "storage unavailable, retry later");
    size_t before = 0, after = 0;
    rc = relais_store_compact (self->store, &before, &after);
    if (rc == RELAIS_EFATAL)
        relais_fatal ("intake compaction", rc);
    *compacted = rc == 0;
    relais_notice ("%s %s%s reports=%zu people_removed=%llu compacted=%s bytes=%zu",
                   sc->erase? "erase": "purge", sc->erase? "person=": "", sc->erase? sc->person: "",
                   sc->count, (unsigned long long) sc->people_removed,
                   *compacted? "yes": "no", after);
    return 0;
}

//  intake.erase {person, reason, dry_run?} and intake.purge {reason?, dry_run?}
//  on the records endpoint: operations role only (with CURVE).
static void
s_on_scrub_request (intake_server_t *self, relais_poller_t *poller, relais_request_t *req,
                    const msgpack_object *root, const msgpack_object *rid, bool erase)
{
    relais_error_t err;
    relais_error_clear (&err);
    s_scrub_t sc = { .self = self, .erase = erase, .now = relais_clock_now () };
    intake_scrub_args_t args;
    bool compacted = false;
    if (intake_scrub_args_read (req, root, erase, &args, &err))
        goto error;
    snprintf (sc.person, sizeof sc.person, "%s", args.person);
    if (s_scrub_run (self, &sc, &args, &compacted, &err))
        goto error;
    msgpack_sbuffer out;
    msgpack_sbuffer_init (&out);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &out, relais_sbuffer_write);
    intake_scrub_reply_begin (&pk, 1, rid, "intake", &args, erase, sc.count, "reports",
                              (const char *) sc.ids, sizeof *sc.ids, sc.count);
    relais_pack_kv_uint (&pk, "people_removed", args.dry_run? 0: sc.people_removed);
    intake_scrub_reply_end (&pk, &args, compacted);
    relais_request_reply (poller, req, out.data, out.size);
    msgpack_sbuffer_destroy (&out);
    free (sc.ids);
    return;
error:
    free (sc.ids);
    s_count_error (self, err.code);
    relais_request_error (poller, req, &err, NULL, rid);
}

//  The daily retention job. A wall clock that moved more than a day away
//  from the monotonic one since the last run is not trusted (T13): the job
//  waits for an operator (relais purge) rather than purge on a wrong date.
static void
s_on_retention (uv_timer_t *timer)
{
    intake_server_t *self = (intake_server_t *) timer->data;
    uint64_t wall = relais_clock_now (), mono = relais_clock_mono ();
    int64_t drift = (int64_t) (wall - self->retention_wall) - (int64_t) (mono - self->retention_mono);
    if (drift > 86400000000LL || drift < -86400000000LL) {
        relais_warning ("retention job skipped: the wall clock jumped by %lld s; run relais purge to apply it",
                        (long long) (drift / 1000000));
        return;
    }
    self->retention_wall = wall;
    self->retention_mono = mono;
    s_scrub_t sc = { .self = self, .erase = false, .now = wall };
    relais_error_t err;
    relais_error_clear (&err);
    bool compacted;
    intake_scrub_args_t job = { .who = "retention-job", .role = "service", .reason = "retention" };
    if (s_scrub_run (self, &sc, &job, &compacted, &err))
        relais_warning ("retention job failed code=%s: retried at the next run", err.code);
    free (sc.ids);
}

//  ---------------------------------------------------------------------------
//  Records endpoint: full record of one report, for authorised services

typedef struct {
    const char *id;
    msgpack_sbuffer *out;
    const msgpack_object *rid;
    bool found;
} s_record_read_t;

static int
s_read_record (relais_txn_t *txn, void *arg)
{
    s_record_read_t *r = (s_record_read_t *) arg;
    const void *data;
    size_t size;
    int rc = relais_txn_get (txn, S_DB_SIGNALS, r->id, strlen (r->id), &data, &size);
    if (rc == RELAIS_ENOTFOUND)
        return 0;
    if (rc)
        return rc;
    r->found = true;
    msgpack_packer pk;
    msgpack_packer_init (&pk, r->out, relais_sbuffer_write);
    msgpack_pack_map (&pk, 2 + (r->rid != NULL));
    relais_pack_kv_bool (&pk, "ok", true);
    if (r->rid) {
        relais_pack_str (&pk, "rid");
        relais_pack_object (&pk, r->rid);
    }
    relais_pack_str (&pk, "record");
    relais_pack_raw (&pk, data, size);
    return 0;
}

static void
s_on_records (relais_poller_t *poller, zmsg_t **msg_p, void *arg)
{
    intake_server_t *self = (intake_server_t *) arg;
    relais_request_t req;
    relais_msg_t msg = { 0 };
    relais_error_t err;
    relais_error_clear (&err);
    const msgpack_object *rid = NULL;
    msgpack_sbuffer out;
    msgpack_sbuffer_init (&out);
    char id [S_ID_MAX];
    if (relais_request_read (msg_p, &req, &msg, &rid, &err))
        goto error;
    const msgpack_object *op = relais_msg_get (&msg.root, "op");
    if (!op || op->type != MSGPACK_OBJECT_STR) {
        relais_error_set (&err, RELAIS_CODE_INVALID, "op", "required, a string");
        goto error;
    }
    if (relais_msg_str_eq (op, "intake.erase") || relais_msg_str_eq (op, "intake.purge")) {
        s_on_scrub_request (self, poller, &req, &msg.root, rid,
                            relais_msg_str_eq (op, "intake.erase"));
        goto done;
    }
    if (!relais_msg_str_eq (op, "signal.get")) {
        relais_error_set (&err, RELAIS_CODE_UNKNOWN_OP, "op",
                          "this endpoint serves signal.get, intake.erase and intake.purge");
        goto error;
    }
    if (s_get_id (&msg.root, id, &err))
        goto error;
    s_record_read_t r = { id, &out, rid, false };
    if (relais_store_read (self->store, s_read_record, &r)) {
        relais_error_set (&err, RELAIS_CODE_UNAVAILABLE, "", "storage unavailable, retry later");
        goto error;
    }
    if (!r.found) {
        relais_error_set (&err, RELAIS_CODE_NOT_FOUND, "id", "no report has this id");
        goto error;
    }
    //  Every read of personal data leaves a trace: who (the certificate's
    //  name with CURVE, else the connection's routing id), and what
    relais_peer_t who;
    char peer [RELAIS_PEER_NAME_MAX];
    if (relais_security_on () && relais_security_peer (req.data, &who))
        snprintf (peer, sizeof peer, "%s", who.name);
    else {
        zframe_t *identity = req.identity;
        size_t n = zframe_size (identity) > 16? 16: zframe_size (identity);
        for (size_t i = 0; i < n; i++)
            snprintf (peer + 2 * i, 3, "%02x", zframe_data (identity) [i]);
        peer [2 * n] = 0;
    }
    //  Why: the caller's stated purpose (a code), else "unspecified"
    char purpose [64] = "unspecified";
    const msgpack_object *why = relais_msg_get (&msg.root, "purpose");
    if (why && relais_msg_str_copy (why, purpose, sizeof purpose) < 0) {
        relais_error_set (&err, RELAIS_CODE_INVALID, "purpose", "a string of at most 63 bytes");
        goto error;
    }
    //  No audit entry, no data
    if (relais_audit_append (self->audit, relais_clock_now (), peer,
                             relais_security_on ()? who.role: "", "record_read", id, purpose)) {
        relais_error_set (&err, RELAIS_CODE_UNAVAILABLE, "", "audit log unavailable, retry later");
        goto error;
    }
    relais_notice ("record_read id=%s peer=%s", id, peer);
    relais_request_reply (poller, &req, out.data, out.size);
    goto done;
error:
    s_count_error (self, err.code);
    relais_request_error (poller, &req, &err, NULL, rid);
done:
    relais_msg_release (&msg);
    msgpack_sbuffer_destroy (&out);
    relais_request_release (&req);
}

//  ---------------------------------------------------------------------------

static void
s_on_maint (uv_timer_t *timer)
{
    intake_server_t *self = (intake_server_t *) timer->data;
    relais_store_tick (self->store);
    static uint64_t ticks;
    relais_store_stats_t store;
    relais_store_stats (self->store, &store);
    if (++ticks % 6 == 0)
        relais_info ("stats received=%llu acked=%llu duplicates=%llu batches=%llu "
                     "largest_batch=%llu invalid=%llu too_large=%llu unknown_op=%llu "
                     "not_found=%llu conflict=%llu unavailable=%llu replies_dropped=%llu last=%llu "
                     "wal_records=%llu checkpoints=%llu",
                     (unsigned long long) self->stats.received,
                     (unsigned long long) self->stats.acked,
                     (unsigned long long) self->stats.duplicates,
                     (unsigned long long) self->stats.batches,
                     (unsigned long long) self->stats.largest_batch,
                     (unsigned long long) self->stats.errors [0],
                     (unsigned long long) self->stats.errors [1],
                     (unsigned long long) self->stats.errors [2],
                     (unsigned long long) self->stats.errors [4],
                     (unsigned long long) self->stats.errors [5],
                     (unsigned long long) self->stats.errors [6],
                     (unsigned long long) self->stats.replies_dropped,
                     (unsigned long long) relais_pub_last (self->pub),
                     (unsigned long long) store.wal_records,
                     (unsigned long long) store.checkpoints);
}

static void
s_on_signal (int signum, void *arg)
{
    intake_server_stop ((intake_server_t *) arg);
}

intake_server_t *
intake_server_new (uv_loop_t *loop, relais_config_t *config)
{
    intake_server_t *self = (intake_server_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->loop = loop;
    self->config = config;
    msgpack_sbuffer_init (&self->reply);
    msgpack_sbuffer_init (&self->body);
    msgpack_sbuffer_init (&self->record);
    intake_rules_load (&self->rules, config);
    self->batch_max = (size_t) relais_config_int (config, "intake/batch_max", 4096);
    self->retention_closed_us = 1000 * relais_config_duration_ms (config, "intake/retention/closed",
                                                                  90ULL * 86400000);
    self->retention_open_us = 1000 * relais_config_duration_ms (config, "intake/retention/open",
                                                                730ULL * 86400000);
    if (self->batch_max == 0)
        self->batch_max = 1;
    self->ops = (s_op_t **) calloc (self->batch_max, sizeof *self->ops);
    self->sig = (relais_signal_t *) malloc (sizeof *self->sig);
    self->stored = (relais_signal_t *) malloc (sizeof *self->stored);
    if (!self->ops || !self->sig || !self->stored) {
        free (self->ops);
        free (self->sig);
        free (self->stored);
        free (self);
        return NULL;
    }
    return self;
}


int
intake_server_start (intake_server_t *self)
{
    relais_config_t *config = self->config;
    char *store_path = relais_config_path (config, "intake/store/path");
    char *key_path = relais_config_path (config, "intake/person_key_file");
    int rc = -EINVAL;
    if (!store_path || !key_path)
        goto failed;
    relais_store_opts_t opts = {
        relais_config_size (config, "intake/store/map_size", 64 << 20),
        relais_config_size (config, "intake/store/map_max", 64ULL << 30),
        s_dbs,
        relais_config_size (config, "intake/store/wal_size", 4 << 20)
    };
    self->store = relais_store_new (store_path, &opts);
    if (!self->store)
        goto failed;
    if ((rc = intake_pseudo_load_key (key_path, self->key)))
        goto failed;
    char *audit_path = relais_config_path (config, "intake/audit_file");
    char *audit_key = relais_config_path (config, "intake/audit_key_file");
    self->audit = audit_path && audit_key? relais_audit_open (audit_path, audit_key): NULL;
    free (audit_path);
    free (audit_key);
    rc = -EACCES;
    if (!self->audit)
        goto failed;
    rc = -EADDRINUSE;
    relais_pub_opts_t pub_opts = {
        .name = "intake",
        .pub_endpoint = relais_config_str (config, "intake/pub"),
        .fetch_endpoint = relais_config_str (config, "intake/fetch"),
        .heartbeat_ms = relais_config_duration_ms (config, "intake/heartbeat", 1000),
    };
    self->pub = relais_pub_new (self->loop, self->store, &pub_opts);
    if (!self->pub)
        goto failed;
    zsock_t *submit = relais_sock_new (ZMQ_ROUTER, relais_config_str (config, "intake/submit"),
                                       RELAIS_SOCK_BIND, RELAIS_MSG_MAX_BYTES);
    if (!submit)
        goto failed;
    self->submit = relais_poller_new_requests (self->loop, &submit, self->batch_max,
                                               s_on_submit, s_on_submit_batch, self);
    zsock_t *records = relais_sock_new (ZMQ_ROUTER, relais_config_str (config, "intake/records"),
                                        RELAIS_SOCK_BIND, RELAIS_MSG_MAX_BYTES);
    if (!records)
        goto failed;
    self->records = relais_poller_new (self->loop, &records, 64, s_on_records, NULL, self);
    self->signals = relais_signals_new (self->loop, s_on_signal, self);
    uv_timer_init (self->loop, &self->maint);
    self->maint.data = self;
    self->maint_open = true;
    uv_timer_start (&self->maint, s_on_maint, 10000, 10000);
    uint64_t every = relais_config_duration_ms (config, "intake/retention/every", 86400000);
    uv_timer_init (self->loop, &self->retention);
    self->retention.data = self;
    self->retention_open = true;
    self->retention_wall = relais_clock_now ();
    self->retention_mono = relais_clock_mono ();
    uv_timer_start (&self->retention, s_on_retention, every? every: 86400000, every? every: 86400000);
    relais_notice ("ready submit=%s records=%s store=%s last=%llu",
                   relais_config_str (config, "intake/submit"),
                   relais_config_str (config, "intake/records"), store_path,
                   (unsigned long long) relais_pub_last (self->pub));
    free (store_path);
    free (key_path);
    return 0;

failed:
    free (store_path);
    free (key_path);
    intake_server_stop (self);
    return rc;
}

void
intake_server_stop (intake_server_t *self)
{
    //  Requests already read are committed and answered before we go
    if (self->store && self->pub)
        s_commit (self);
    relais_poller_close (&self->submit);
    relais_poller_close (&self->records);
    relais_pub_close (&self->pub);
    relais_signals_close (&self->signals);
    if (self->maint_open) {
        uv_timer_stop (&self->maint);
        uv_close ((uv_handle_t *) &self->maint, NULL);
        self->maint_open = false;
    }
    if (self->retention_open) {
        uv_timer_stop (&self->retention);
        uv_close ((uv_handle_t *) &self->retention, NULL);
        self->retention_open = false;
    }
}

void
intake_server_destroy (intake_server_t **self_p)
{
    intake_server_t *self = *self_p;
    if (!self)
        return;
    *self_p = NULL;
    for (size_t i = 0; i < self->count; i++)
        s_op_destroy (&self->ops [i]);
    while (self->pool) {
        s_op_t *op = self->pool;
        self->pool = op->next;
        s_op_destroy (&op);
    }
    msgpack_sbuffer_destroy (&self->reply);
    msgpack_sbuffer_destroy (&self->body);
    msgpack_sbuffer_destroy (&self->record);
    relais_store_destroy (&self->store);
    relais_audit_destroy (&self->audit);
    sodium_memzero (self->key, sizeof self->key);
    sodium_memzero (self->sig, sizeof *self->sig);
    sodium_memzero (self->stored, sizeof *self->stored);
    free (self->sig);
    free (self->stored);
    free (self->ops);
    free (self);
}
