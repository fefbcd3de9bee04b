/*  =========================================================================
    relais-testsub - a subscriber for system tests

    Follows one source through relais_sub and records, in its own LMDB, how
    many times each sequence was applied and whether they came in order.
    The tests then read that record back (--dump) and check exactly-once.
    Usage:
      relais-testsub --dir DIR --src NAME --pub EP --fetch EP
                     [--hwm N] [--delay-us N]      follow until SIGTERM
      relais-testsub --dir DIR --src NAME --dump  print a JSON summary
    =========================================================================
*/
#include "relais_bus.h"
#include "relais_log.h"

#include <stdlib.h>
#include <unistd.h>

static const char *const s_dbs [] = { "applied", NULL };

typedef struct {
    uint64_t delay_us;
    relais_sub_t *sub;
    relais_signals_t *signals;
} s_app_t;

static int
s_apply (relais_txn_t *txn, const char *topic, const relais_envelope_t *env, void *arg)
{
    s_app_t *app = (s_app_t *) arg;
    uint8_t key [8];
    relais_u64_to_key (env->seq, key);
    const void *data;
    size_t size;
    uint64_t count = 0;
    if (relais_txn_get (txn, 0, key, 8, &data, &size) == 0 && size == 8)
        count = relais_key_to_u64 (data);
    uint8_t value [8];
    relais_u64_to_key (count + 1, value);
    int rc = relais_txn_put (txn, 0, key, 8, value, 8);
    if (rc)
        return rc;
    uint64_t last = 0, errors = 0;
    relais_meta_get (txn, "test_last", &last);
    if (env->seq != last + 1) {
        relais_meta_get (txn, "test_order_errors", &errors);
        relais_meta_set (txn, "test_order_errors", errors + 1);
    }
    relais_meta_set (txn, "test_last", env->seq);
    if (app->delay_us)
        usleep ((useconds_t) app->delay_us);
    return 0;
}

typedef struct {
    uint64_t distinct, total, max_count, first, last, order_errors, ckpt;
} s_summary_t;

static int
s_count (const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    s_summary_t *s = (s_summary_t *) arg;
    uint64_t seq = relais_key_to_u64 (key);
    uint64_t count = relais_key_to_u64 (val);
    if (!s->first)
        s->first = seq;
    s->last = seq;
    s->distinct++;
    s->total += count;
    if (count > s->max_count)
        s->max_count = count;
    return 0;
}

static const char *s_src;

static int
s_summarise (relais_txn_t *txn, void *arg)
{
    s_summary_t *s = (s_summary_t *) arg;
    relais_meta_get (txn, "test_order_errors", &s->order_errors);
    relais_ckpt_get (txn, s_src, &s->ckpt);
    return relais_txn_scan (txn, 0, NULL, 0, s_count, s);
}

static void
s_on_signal (int signum, void *arg)
{
    s_app_t *app = (s_app_t *) arg;
    relais_sub_close (&app->sub);
    relais_signals_close (&app->signals);
}

int
main (int argc, char *argv [])
{
    const char *dir = NULL, *pub = NULL, *fetch = NULL;
    bool dump = false;
    s_app_t app = { 0 };
    relais_sub_opts_t opts = { 0 };
    for (int i = 1; i < argc; i++) {
        const char *value = i + 1 < argc? argv [i + 1]: NULL;
        if (strcmp (argv [i], "--dump") == 0)
            dump = true;
        else
        if (!value) {
            fprintf (stderr, "relais-testsub: %s needs a value\n", argv [i]);
            return 2;
        }
        else {
            if (strcmp (argv [i], "--dir") == 0)          dir = value;
            else if (strcmp (argv [i], "--src") == 0)     s_src = value;
            else if (strcmp (argv [i], "--pub") == 0)     pub = value;
            else if (strcmp (argv [i], "--fetch") == 0)   fetch = value;
            else if (strcmp (argv [i], "--hwm") == 0)     opts.rcvhwm = atoi (value);
            else if (strcmp (argv [i], "--delay-us") == 0) app.delay_us = strtoull (value, NULL, 10);
            else {
                fprintf (stderr, "relais-testsub: unknown flag %s\n", argv [i]);
                return 2;
            }
            i++;
        }
    }
    if (!dir || !s_src || (!dump && (!pub || !fetch))) {
        fprintf (stderr, "usage: relais-testsub --dir DIR --src NAME (--pub EP --fetch EP | --dump)\n");
        return 2;
    }
    relais_log_init ("testsub");
    zsys_handler_set (NULL);
    relais_store_opts_t store_opts = { 1 << 20, 0, s_dbs, 0 };
    relais_store_t *store = dump? relais_store_open_reader (dir, &store_opts)
                                : relais_store_new (dir, &store_opts);
    if (!store)
        return 1;
    if (dump) {
        s_summary_t s = { 0 };
        int rc = relais_store_read (store, s_summarise, &s);
        printf ("{\"distinct\": %llu, \"total\": %llu, \"max_count\": %llu, \"first\": %llu, "
                "\"last\": %llu, \"order_errors\": %llu, \"checkpoint\": %llu}\n",
                (unsigned long long) s.distinct, (unsigned long long) s.total,
                (unsigned long long) s.max_count, (unsigned long long) s.first,
                (unsigned long long) s.last, (unsigned long long) s.order_errors,
                (unsigned long long) s.ckpt);
        relais_store_destroy (&store);
        return rc? 1: 0;
    }
    uv_loop_t loop;
    uv_loop_init (&loop);
    app.sub = relais_sub_new (&loop, store, &opts, s_apply, &app);
    if (!app.sub || relais_sub_add (app.sub, s_src, pub, fetch, NULL)
    ||  relais_sub_start (app.sub))
        return 1;
    app.signals = relais_signals_new (&loop, s_on_signal, &app);
    relais_notice ("ready");
    uv_run (&loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close (&loop);
    relais_store_destroy (&store);
    return rc == 0? 0: 1;
}
