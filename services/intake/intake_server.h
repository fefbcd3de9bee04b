/*  =========================================================================
    intake_server - takes signalements from producers, durably, once

    @header
    Binds the submit ROUTER (PROTOCOL §3: submit, update, close), the
    records ROUTER (full records for authorised services: router, and the
    operations role), and the publisher (PUB + fetch). Requests are
    validated as they arrive; the valid ones of one loop turn form a batch
    that is written in ONE transaction with ONE fsync (group commit), and
    each is acknowledged only after that commit. The effects are
    idempotent by (producer identity, idem): a retry returns the first
    answer with duplicate: true.
    @discuss
    The fsync runs on the loop thread: while it runs, ZeroMQ's I/O thread
    keeps queueing requests, and the next turn takes them all as the next
    batch. Batches grow with load and a lone request waits for nothing but
    its own commit.
    =========================================================================
*/
#ifndef INTAKE_SERVER_H_INCLUDED
#define INTAKE_SERVER_H_INCLUDED

#include <uv.h>
#include "relais_config.h"

typedef struct intake_server_t intake_server_t;

//  Key table of the "intake" section.
extern const relais_config_key_t intake_keys [];

//  Declare the intake section (intake_keys + the level-2 rules).
int
    intake_declare (relais_config_t *config);

//  Create the server; nothing is bound yet. Returns NULL on failure.
intake_server_t *
    intake_server_new (uv_loop_t *loop, relais_config_t *config);

//  Open the store, load the key, bind every endpoint, catch SIGINT/SIGTERM.
//  Returns 0, or a negative code after logging why (undoes itself).
int
    intake_server_start (intake_server_t *self);

//  Close every handle; uv_run returns once they are closed.
void
    intake_server_stop (intake_server_t *self);

//  Free everything. NULL-safe; nulls *self_p. Call after uv_run returned.
void
    intake_server_destroy (intake_server_t **self_p);

#endif
