/*  =========================================================================
    feedback_server - producers follow the fate of their own reports

    @header
    Follows intake (signal.*), router (route.*) and plans (plan.*) exactly
    once (relais_sub_t) and keeps, per report, the status derived from them
    (feedback_status). In the SAME transaction as the checkpoint, each
    status change is appended to the report's timeline, queued in its
    producer's feed (a durable mailbox: per-producer mseq, cumulative acks,
    the router's mailbox protocol) and published as status.changed on
    feedback's own log (PUB + fetch). The feed ROUTER serves the producers'
    followers (relais follow, relais-notify --producer); the api ROUTER
    answers feedback.status and feedback.list. With CURVE on, a producer
    certificate reaches only its own feed and its own reports.
    @discuss
    Databases: reports (id -> record), plans (plan id -> its report ids),
    feed (producer NUL mseq -> status change), mine (producer NUL id -> "",
    a producer's reports), early (id NUL n -> an event that came before
    the report's signal.created). Meta: fseq/<producer> (the feed's last mseq),
    facked/<producer> (its ack level). proto/feedback.md is the contract.
    =========================================================================
*/
#ifndef FEEDBACK_SERVER_H_INCLUDED
#define FEEDBACK_SERVER_H_INCLUDED

#include <uv.h>
#include "relais_config.h"

typedef struct feedback_server_t feedback_server_t;

//  Key table of the "feedback" section.
extern const relais_config_key_t feedback_keys [];

//  Declare the feedback section. Returns 0 or RELAIS_ECONFIG.
int
    feedback_declare (relais_config_t *config);

//  Create the server. Returns NULL when out of memory.
feedback_server_t *
    feedback_server_new (uv_loop_t *loop, relais_config_t *config);

//  Open the store, bind every endpoint, subscribe to intake (and router,
//  plans when the deployment names them). Returns 0 or a negative code
//  after logging why (undoes itself).
int
    feedback_server_start (feedback_server_t *self);

//  Close every handle; uv_run returns once they are closed.
void
    feedback_server_stop (feedback_server_t *self);

//  Free everything. NULL-safe; nulls *self_p. Call after uv_run returned.
void
    feedback_server_destroy (feedback_server_t **self_p);

//  True when producer is a well-formed producer id "kind:name" (a source
//  kind of proto/README §7.1, a name of 1..128 clean bytes).
bool
    feedback_producer_valid (const char *producer);

#endif
