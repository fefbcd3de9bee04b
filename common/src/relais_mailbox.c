/*  =========================================================================
    relais_mailbox - the server side of a mailbox endpoint
    (see relais_mailbox.h)
    =========================================================================
*/
#include "relais_mailbox.h"
#include "relais_clock.h"
#include "relais_log.h"
#include "relais_msg.h"

#include <stdlib.h>
#include <string.h>

struct relais_mailbox_t {
    relais_mailbox_opts_t opts;
    relais_store_t *store;
    relais_poller_t *poller;
    zlistx_t *sessions;                 //  relais_mailbox_session_t *
};

relais_mailbox_t *
relais_mailbox_new (const relais_mailbox_opts_t *opts)
{
    relais_mailbox_t *self = (relais_mailbox_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->opts = *opts;
    if (self->opts.heartbeat_us == 0)
        self->opts.heartbeat_us = 1000000;
    if (self->opts.window == 0)
        self->opts.window = 1;
    self->sessions = zlistx_new ();
    if (!self->sessions) {
        free (self);
        return NULL;
    }
    return self;
}

void
relais_mailbox_destroy (relais_mailbox_t **self_p)
{
    relais_mailbox_t *self = *self_p;
    if (!self)
        return;
    *self_p = NULL;
    while (zlistx_size (self->sessions))
        relais_mailbox_drop (self, (relais_mailbox_session_t *) zlistx_first (self->sessions));
    zlistx_destroy (&self->sessions);
    free (self);
}

void
relais_mailbox_attach (relais_mailbox_t *self, relais_store_t *store, relais_poller_t *poller)
{
    self->store = store;
    self->poller = poller;
}

size_t
relais_mailbox_key (const char *name, uint64_t mseq, uint8_t *key)
{
    size_t n = strlen (name);
    memcpy (key, name, n);
    key [n] = 0;
    relais_u64_to_key (mseq, key + n + 1);
    return n + 9;
}

relais_mailbox_session_t *
relais_mailbox_by_identity (relais_mailbox_t *self, zframe_t *identity)
{
    for (relais_mailbox_session_t *s = (relais_mailbox_session_t *) zlistx_first (self->sessions);
         s; s = (relais_mailbox_session_t *) zlistx_next (self->sessions))
        if (zframe_eq (s->identity, identity))
            return s;
    return NULL;
}

relais_mailbox_session_t *
relais_mailbox_by_name (relais_mailbox_t *self, const char *name)
{
    for (relais_mailbox_session_t *s = (relais_mailbox_session_t *) zlistx_first (self->sessions);
         s; s = (relais_mailbox_session_t *) zlistx_next (self->sessions))
        if (strcmp (s->name, name) == 0)
            return s;
    return NULL;
}

void
relais_mailbox_drop (relais_mailbox_t *self, relais_mailbox_session_t *session)
{
    if (!session)
        return;
    void *handle = zlistx_find (self->sessions, session);
    if (handle)
        zlistx_delete (self->sessions, handle);
    zframe_destroy (&session->identity);
    free (session);
}

size_t
relais_mailbox_size (relais_mailbox_t *self)
{
    return zlistx_size (self->sessions);
}

relais_mailbox_session_t *
relais_mailbox_open (relais_mailbox_t *self, const char *name, const relais_request_t *req)
{
    relais_mailbox_drop (self, relais_mailbox_by_name (self, name));
    relais_mailbox_drop (self, relais_mailbox_by_identity (self, req->identity));
    relais_mailbox_session_t *s = (relais_mailbox_session_t *) calloc (1, sizeof *s);
    if (!s)
        return NULL;
    snprintf (s->name, sizeof s->name, "%s", name);
    s->identity = zframe_dup (req->identity);
    s->delimiter = req->delimiter;
    s->heard_mono = s->progress_mono = relais_clock_mono ();
    if (!s->identity || !zlistx_add_end (self->sessions, s)) {
        zframe_destroy (&s->identity);
        free (s);
        return NULL;
    }
    return s;
}

int
relais_mailbox_send (relais_mailbox_t *self, relais_mailbox_session_t *session,
                     const msgpack_sbuffer *sbuf)
{
    session->sent_mono = relais_clock_mono ();
    if (!self->poller)
        return -ESHUTDOWN;
    zmsg_t *msg = zmsg_new ();
    zframe_t *id = zframe_dup (session->identity);
    zmsg_append (msg, &id);
    if (session->delimiter)
        zmsg_addmem (msg, "", 0);
    zmsg_addmem (msg, sbuf->data, sbuf->size);
    return relais_poller_send (self->poller, &msg);
}

int
relais_mailbox_send_op (relais_mailbox_t *self, relais_mailbox_session_t *session, const char *op)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 1);
    relais_pack_kv_str (&pk, "op", op);
    int rc = relais_mailbox_send (self, session, &sbuf);
    msgpack_sbuffer_destroy (&sbuf);
    return rc;
}

void
relais_mailbox_heard (relais_mailbox_session_t *session)
{
    session->heard_mono = relais_clock_mono ();
}

//  ---------------------------------------------------------------------------
//  The window walk

typedef struct {
    relais_mailbox_t *self;
    relais_mailbox_session_t *session;
    uint64_t acked;
    size_t nlen;
    uint64_t sent;
} s_walk_t;

static int
s_walk_each (const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    s_walk_t *w = (s_walk_t *) arg;
    relais_mailbox_session_t *s = w->session;
    if (klen != w->nlen + 9 || memcmp (key, s->name, w->nlen) != 0)
        return 1;                       //  past this box
    if (s->sent_upto - w->acked >= w->self->opts.window)
        return 1;
    uint64_t mseq = relais_key_to_u64 ((const uint8_t *) key + w->nlen + 1);
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    relais_mailbox_verdict_t verdict = w->self->opts.pack (mseq, val, vlen, &pk,
                                                           w->self->opts.pack_arg);
    if (verdict == RELAIS_MAILBOX_SEND) {
        relais_mailbox_send (w->self, s, &sbuf);
        s->progress_mono = relais_clock_mono ();
        w->sent++;
    }
    msgpack_sbuffer_destroy (&sbuf);
    if (verdict == RELAIS_MAILBOX_WAIT)
        return 1;
    s->sent_upto = mseq;                //  a damaged entry never blocks the rest
    return 0;
}

static int
s_read_walk (relais_txn_t *txn, void *arg)
{
    s_walk_t *w = (s_walk_t *) arg;
    char name [32 + RELAIS_MAILBOX_NAME_MAX];
    snprintf (name, sizeof name, "%s%s", w->self->opts.acked_prefix, w->session->name);
    int rc = relais_meta_get (txn, name, &w->acked);
    if (rc)
        return rc;
    if (w->session->sent_upto < w->acked)
        w->session->sent_upto = w->acked;
    uint8_t from [RELAIS_MAILBOX_KEY_MAX];
    size_t flen = relais_mailbox_key (w->session->name, w->session->sent_upto + 1, from);
    return relais_txn_scan (txn, w->self->opts.db, from, flen, s_walk_each, w);
}

uint64_t
relais_mailbox_deliver (relais_mailbox_t *self, relais_mailbox_session_t *session)
{
    if (!self->store)
        return 0;
    s_walk_t w = { self, session, 0, strlen (session->name), 0 };
    relais_store_read (self->store, s_read_walk, &w);
    return w.sent;
}

uint64_t
relais_mailbox_deliver_all (relais_mailbox_t *self)
{
    uint64_t sent = 0;
    for (relais_mailbox_session_t *s = (relais_mailbox_session_t *) zlistx_first (self->sessions);
         s; s = (relais_mailbox_session_t *) zlistx_next (self->sessions))
        sent += relais_mailbox_deliver (self, s);
    return sent;
}

uint64_t
relais_mailbox_tick (relais_mailbox_t *self)
{
    uint64_t now = relais_clock_mono ();
    uint64_t hb = self->opts.heartbeat_us, sent = 0;
    relais_mailbox_session_t *s = (relais_mailbox_session_t *) zlistx_first (self->sessions);
    while (s) {
        relais_mailbox_session_t *next = (relais_mailbox_session_t *) zlistx_next (self->sessions);
        if (now - s->heard_mono > 3 * hb) {
            relais_notice ("%s gone %s=%s (silent 3 intervals)", self->opts.what,
                           self->opts.name_field, s->name);
            relais_mailbox_drop (self, s);
            //  zlistx cursor moved by the delete: start again
            s = (relais_mailbox_session_t *) zlistx_first (self->sessions);
            continue;
        }
        if (now - s->progress_mono > self->opts.redeliver_us) {
            s->sent_upto = 0;           //  resend every unacked entry
            s->progress_mono = now;
            sent += relais_mailbox_deliver (self, s);
        }
        if (now - s->sent_mono >= hb)
            relais_mailbox_send_op (self, s, "ping");
        s = next;
    }
    return sent;
}
