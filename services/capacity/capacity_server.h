/*  =========================================================================
    capacity_server - the capacity service on the bus

    @header
    Binds the publisher (PUB + fetch, capacity's event log) and the api
    ROUTER (capacity.* requests, proto/capacity.md). Requests of one loop
    turn form a batch handled in ONE write transaction with ONE fsync
    (group commit), each answered after that commit; a batch of reads only
    uses a read transaction. A timer runs the timed work (reservation
    expiry, plan checks, the daily forecast) at the earliest persisted due
    date, and at least every `tick`. When the deployment has a plans
    section (plans/pub and plans/fetch), a relais_sub_t follows plans'
    events exactly once to match plan.closed with structure entries.
    =========================================================================
*/
#ifndef CAPACITY_SERVER_H_INCLUDED
#define CAPACITY_SERVER_H_INCLUDED

#include <stdio.h>
#include <uv.h>
#include "relais_config.h"

typedef struct _capacity_server_t capacity_server_t;

//  Declare the capacity section (endpoints, store, thresholds, structures).
int
    capacity_declare (relais_config_t *config);

//  Create the server; nothing is bound yet. Returns NULL on failure.
capacity_server_t *
    capacity_server_new (uv_loop_t *loop, relais_config_t *config);

//  Open the store, declare configured structures, bind every endpoint,
//  follow plans when configured, catch SIGINT/SIGTERM. Returns 0 or a
//  negative code after logging why (undoes itself).
int
    capacity_server_start (capacity_server_t *self);

//  Close every handle; uv_run returns once they are closed.
void
    capacity_server_stop (capacity_server_t *self);

//  Free everything. NULL-safe; nulls *self_p. Call after uv_run returned.
void
    capacity_server_destroy (capacity_server_t **self_p);

//  Print the store's state as JSON lines (capacity_state_dump) in one read
//  transaction; safe while the service runs (LMDB readers never block the
//  writer). Returns 0 or a negative code.
int
    capacity_dump (relais_config_t *config, FILE *out);

#endif
