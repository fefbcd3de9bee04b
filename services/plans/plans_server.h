/*  =========================================================================
    plans_server - relais-plans: the action plans of level-2 situations

    @header
    Follows intake's signal.* and, when the deployment has a router
    section, router's route.* (relais_sub_t: exactly once, checkpoint in
    the same transaction as the effect). Binds its own publisher (PUB +
    fetch/status) for plan.* events and an `api` ROUTER for the plans.*
    operations (proto/plans.md). A libuv timer armed from the earliest
    persisted due date (and at least every plans/overdue_check) raises
    overdue actions and stale plans; a restart re-reads the due dates, so
    nothing is forgotten and nothing raised twice. plans.erase and
    plans.purge (proto/privacy.md, operations role only with CURVE) and a
    retention timer (plans/retention/every) remove operators' free text,
    audit each request in plans/audit_file first, then compact the store.
    @discuss
    All decisions live in plans_engine; this class only wires sockets,
    transactions and timers. Time comes from relais_clock_now () (tests
    set RELAIS_FAKE_TIME_US).
    =========================================================================
*/
#ifndef PLANS_SERVER_H_INCLUDED
#define PLANS_SERVER_H_INCLUDED

#include <stdio.h>
#include <uv.h>
#include "relais_config.h"

typedef struct plans_server_t plans_server_t;

//  Declare the plans section. Returns 0 or RELAIS_ECONFIG.
int
    plans_declare (relais_config_t *config);

//  Create the server; nothing is bound yet. Returns NULL on failure.
plans_server_t *
    plans_server_new (uv_loop_t *loop, relais_config_t *config);

//  Open the store, bind the endpoints, follow the sources, arm the
//  deadline timer, catch SIGINT/SIGTERM. Returns 0, or a negative code
//  after logging why (undoes itself).
int
    plans_server_start (plans_server_t *self);

//  Close every handle; uv_run returns once they are closed.
void
    plans_server_stop (plans_server_t *self);

//  Free everything. NULL-safe; nulls *self_p. Call after uv_run returned.
void
    plans_server_destroy (plans_server_t **self_p);

//  Print the store of the configured deployment as JSON lines (see
//  plans_engine_dump). Returns 0 or a negative code after logging why.
int
    plans_dump (relais_config_t *config, FILE *out);

#endif
