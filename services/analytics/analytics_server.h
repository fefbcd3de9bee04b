/*  =========================================================================
    analytics_server - the MUS's indicators and trends, from every topic

    @header
    Follows every topic of intake, router, plans and capacity (each source
    whose section in the deployment file names a pub and a fetch endpoint)
    through relais_sub: each event is applied to the aggregates
    (analytics_agg) in the same transaction as the source's checkpoint, so
    nothing is missed or counted twice, across restarts and kill -9.
    Binds its own publisher (log, PUB, fetch and status; it publishes no
    event in this version) and an "api" ROUTER serving analytics.query,
    analytics.trends, analytics.export and analytics.indicators
    (proto/analytics.md).
    @discuss
    Offline modes: analytics_rebuild recomputes every aggregate from the
    sources' logs from sequence 1 into a fresh store; analytics_dump prints
    a store's canonical dump, so a rebuild can be compared with the live
    state line by line.
    =========================================================================
*/
#ifndef ANALYTICS_SERVER_H_INCLUDED
#define ANALYTICS_SERVER_H_INCLUDED

#include <stdio.h>
#include <uv.h>
#include "relais_config.h"

typedef struct analytics_server_t analytics_server_t;

//  Key table of the "analytics" section.
extern const relais_config_key_t analytics_keys [];

//  Declare the analytics section. Returns 0 or RELAIS_ECONFIG.
int
    analytics_declare (relais_config_t *config);

//  Create the server; nothing is bound yet. Returns NULL on failure.
analytics_server_t *
    analytics_server_new (uv_loop_t *loop, relais_config_t *config);

//  Open the store, bind pub/fetch/api, follow the sources, catch signals.
//  Returns 0 or a negative code after logging why (undoes itself).
int
    analytics_server_start (analytics_server_t *self);

//  Close every handle; uv_run returns once they are closed.
void
    analytics_server_stop (analytics_server_t *self);

//  Free everything. NULL-safe; nulls *self_p. Call after uv_run returned.
void
    analytics_server_destroy (analytics_server_t **self_p);

//  Recompute every aggregate from the sources' logs (fetch from sequence 1)
//  into the fresh store dir (which must not hold a store yet), up to the
//  last sequence each source announced when the rebuild started. Prints a
//  summary line (events, seconds, events/s) on out. Returns 0 or a negative
//  code after logging why.
int
    analytics_rebuild (relais_config_t *config, const char *dir, FILE *out);

//  Print the canonical dump of the store in dir on out. Returns 0 or a
//  negative code.
int
    analytics_dump (const char *dir, FILE *out);

#endif
