/*  =========================================================================
    router_server - routes qualified reports to the partners who act on them

    @header
    Follows intake's events exactly once (relais_sub_t): each signal.created
    or signal.updated is evaluated against the rules (router_rules) and, in
    the SAME transaction as the checkpoint, every new assignment is stored,
    appended to the partner's mailbox (body pending) and announced by
    route.assigned. The personal data a partner needs comes afterwards from
    intake's records endpoint, fetched asynchronously and written into the
    pending deliveries in a later transaction; a delivery goes out only once
    its body is there, in mailbox order.
    Partners' notifiers connect to the partners ROUTER (PROTOCOL §5, see
    proto/router.md): hello, deliver, cumulative ack, refuse, ping.
    Unacknowledged assignments past their due date escalate to the rule's
    fallback (route.escalated), from a persisted due-date index and a libuv
    timer armed on the earliest due date.
    @discuss
    Databases: reports (routing view per report), assign (report+partner ->
    mseq: nobody gets a report twice), mbox (partner+mseq -> delivery),
    due (due+partner+mseq, open assignments), fill (report+partner+mseq,
    deliveries waiting for their body). Meta: mseq/<partner>, acked/<partner>.
    =========================================================================
*/
#ifndef ROUTER_SERVER_H_INCLUDED
#define ROUTER_SERVER_H_INCLUDED

#include <czmq.h>
#include <uv.h>
#include "relais_config.h"
#include "relais_envelope.h"
#include "router_rules.h"

typedef struct router_server_t router_server_t;

//  Key table of the "router" section (endpoints, store, timings).
extern const relais_config_key_t router_keys [];

//  Declare the router section (router_keys + rule keys) and the intake
//  section's endpoints the router connects to. Returns 0 or RELAIS_ECONFIG.
int
    router_declare (relais_config_t *config);

//  Create the server and load its rules. Returns NULL after logging why
//  (invalid rules: the key path and the reason).
router_server_t *
    router_server_new (uv_loop_t *loop, relais_config_t *config);

//  Open the store, bind every endpoint, subscribe to intake. Returns 0 or a
//  negative code after logging why (undoes itself).
int
    router_server_start (router_server_t *self);

//  Close every handle; uv_run returns once they are closed.
void
    router_server_stop (router_server_t *self);

//  Free everything. NULL-safe; nulls *self_p. Call after uv_run returned.
void
    router_server_destroy (router_server_t **self_p);

//  Handle one message of the partners endpoint as the socket received it
//  (identity, empty delimiter, one data frame): hello, ack, refuse, ping.
//  Takes ownership of *msg_p. The endpoint's poller calls it; it is public
//  so that the fuzz target meets exactly the code a notifier reaches.
void
    router_server_partner_message (router_server_t *self, zmsg_t **msg_p);

//  Apply one of intake's events in its own transaction, as the subscriber
//  does but without a checkpoint: for fuzzing and tests that need mailbox
//  entries without an intake. Returns 0 or a negative code.
int
    router_server_apply (router_server_t *self, const char *topic,
                         const relais_envelope_t *env);

//  Local hour (0..23) of a µs UTC time, for the rules' hour ranges.
int
    router_local_hour (uint64_t us);

#endif
