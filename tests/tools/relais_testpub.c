/*  =========================================================================
    relais-testpub - a stand-in publisher for system tests

    Plays a source that is not built here (router, plans, capacity) with
    the real publisher (relais_pub: log, PUB, fetch, heartbeats): it reads
    events from a file and appends them to its log, a batch per transaction
    every delay, then serves fetches until SIGTERM.
    File format: records of a 4-byte big-endian length, then a msgpack map
    {type: str, key: str, ts: uint, body: map, corr?: str}.
    Usage:
      relais-testpub --dir DIR --src NAME --pub EP --fetch EP --events FILE
                     [--batch N] [--delay-ms N] [--heartbeat-ms N]
    =========================================================================
*/
#include "relais_bus.h"
#include "relais_log.h"

#include <stdlib.h>

static const char *const s_dbs [] = { NULL };

typedef struct {
    relais_store_t *store;
    relais_pub_t *pub;
    relais_signals_t *signals;
    uv_timer_t timer;
    uint8_t *data;
    size_t size, offset;
    size_t batch;
    uint64_t appended;
} s_app_t;

static int
s_append (relais_txn_t *txn, void *arg)
{
    s_app_t *app = (s_app_t *) arg;
    size_t offset = app->offset;
    for (size_t i = 0; i < app->batch && offset + 4 <= app->size; i++) {
        uint32_t len = (uint32_t) app->data [offset] << 24 | (uint32_t) app->data [offset + 1] << 16
                     | (uint32_t) app->data [offset + 2] << 8 | app->data [offset + 3];
        offset += 4;
        if (offset + len > app->size)
            return RELAIS_EMALFORMED;
        relais_msg_t msg;
        relais_error_t err;
        relais_msg_limits_t limits = { 1 << 20, 0, 0 };
        if (relais_msg_decode (&msg, app->data + offset, len, &limits, &err))
            return RELAIS_EMALFORMED;
        offset += len;
        char type [RELAIS_TYPE_MAX], key [RELAIS_KEY_MAX], corr [RELAIS_KEY_MAX];
        uint64_t ts = 0;
        const msgpack_object *body = relais_msg_get (&msg.root, "body");
        if (relais_msg_str_copy (relais_msg_get (&msg.root, "type"), type, sizeof type) <= 0
        ||  relais_msg_str_copy (relais_msg_get (&msg.root, "key"), key, sizeof key) <= 0
        ||  !body) {
            relais_msg_release (&msg);
            return RELAIS_EMALFORMED;
        }
        bool has_corr = relais_msg_str_copy (relais_msg_get (&msg.root, "corr"), corr, sizeof corr) > 0;
        relais_msg_uint (relais_msg_get (&msg.root, "ts"), &ts);
        msgpack_sbuffer sbuf;
        msgpack_sbuffer_init (&sbuf);
        msgpack_packer pk;
        msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
        relais_pack_object (&pk, body);
        int rc = relais_pub_append (app->pub, txn, type, key, has_corr? corr: NULL, ts,
                                    sbuf.data, sbuf.size, NULL);
        msgpack_sbuffer_destroy (&sbuf);
        relais_msg_release (&msg);
        if (rc)
            return rc;
    }
    return 0;
}

static void
s_on_timer (uv_timer_t *timer)
{
    s_app_t *app = (s_app_t *) timer->data;
    if (app->offset >= app->size) {
        uv_timer_stop (timer);
        relais_notice ("all appended last=%llu", (unsigned long long) relais_pub_last (app->pub));
        return;
    }
    //  find where this batch ends, so that a retried write starts over
    size_t end = app->offset;
    for (size_t i = 0; i < app->batch && end + 4 <= app->size; i++) {
        uint32_t len = (uint32_t) app->data [end] << 24 | (uint32_t) app->data [end + 1] << 16
                     | (uint32_t) app->data [end + 2] << 8 | app->data [end + 3];
        end += 4 + len;
    }
    int rc = relais_store_write (app->store, s_append, app);
    if (rc) {
        relais_error ("append failed: %s", relais_strerror (rc));
        exit (1);
    }
    app->offset = end > app->size? app->size: end;
}

static void
s_on_signal (int signum, void *arg)
{
    s_app_t *app = (s_app_t *) arg;
    uv_timer_stop (&app->timer);
    uv_close ((uv_handle_t *) &app->timer, NULL);
    relais_pub_close (&app->pub);
    relais_signals_close (&app->signals);
}

int
main (int argc, char *argv [])
{
    const char *dir = NULL, *src = NULL, *pub = NULL, *fetch = NULL, *events = NULL;
    s_app_t app;
    memset (&app, 0, sizeof app);
    app.batch = 50;
    uint64_t delay_ms = 20, heartbeat_ms = 200;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *value = argv [i + 1];
        if (strcmp (argv [i], "--dir") == 0)              dir = value;
        else if (strcmp (argv [i], "--src") == 0)         src = value;
        else if (strcmp (argv [i], "--pub") == 0)         pub = value;
        else if (strcmp (argv [i], "--fetch") == 0)       fetch = value;
        else if (strcmp (argv [i], "--events") == 0)      events = value;
        else if (strcmp (argv [i], "--batch") == 0)       app.batch = strtoull (value, NULL, 10);
        else if (strcmp (argv [i], "--delay-ms") == 0)    delay_ms = strtoull (value, NULL, 10);
        else if (strcmp (argv [i], "--heartbeat-ms") == 0) heartbeat_ms = strtoull (value, NULL, 10);
        else {
            fprintf (stderr, "relais-testpub: unknown flag %s\n", argv [i]);
            return 2;
        }
    }
    if (!dir || !src || !pub || !fetch || !events || !app.batch) {
        fprintf (stderr, "usage: relais-testpub --dir DIR --src NAME --pub EP --fetch EP --events FILE\n");
        return 2;
    }
    relais_log_init ("testpub");
    zsys_handler_set (NULL);
    FILE *file = fopen (events, "rb");
    if (!file)
        return 1;
    fseek (file, 0, SEEK_END);
    app.size = (size_t) ftell (file);
    fseek (file, 0, SEEK_SET);
    app.data = (uint8_t *) malloc (app.size + 1);
    if (!app.data || fread (app.data, 1, app.size, file) != app.size)
        return 1;
    fclose (file);
    relais_store_opts_t store_opts = { 16 << 20, 0, s_dbs, 0 };
    app.store = relais_store_new (dir, &store_opts);
    if (!app.store)
        return 1;
    uv_loop_t loop;
    uv_loop_init (&loop);
    relais_pub_opts_t opts = { .name = src, .pub_endpoint = pub, .fetch_endpoint = fetch,
                               .heartbeat_ms = heartbeat_ms };
    app.pub = relais_pub_new (&loop, app.store, &opts);
    if (!app.pub)
        return 1;
    //  a restarted stand-in does not append its file twice
    if (relais_pub_last (app.pub) > 0)
        app.offset = app.size;
    app.signals = relais_signals_new (&loop, s_on_signal, &app);
    uv_timer_init (&loop, &app.timer);
    app.timer.data = &app;
    uv_timer_start (&app.timer, s_on_timer, delay_ms, delay_ms? delay_ms: 1);
    relais_notice ("ready src=%s", src);
    uv_run (&loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close (&loop);
    relais_store_destroy (&app.store);
    free (app.data);
    return rc == 0? 0: 1;
}
