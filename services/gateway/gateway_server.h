/*  =========================================================================
    gateway_server - HTTP for people who will never speak ZeroMQ

    @header
    An HTTP/1.1 server on libuv (uv_tcp) with the Node.js http_parser
    (Debian's libhttp-parser-dev) and jansson. It turns
    - POST /v1/signalements[/{id}[/close]] into submit, update and close
      requests on intake's "submit" endpoint (the source of a report is the
      producer's token identity, whatever the body says; an update or a
      close is first checked against the source on record, through
      intake's "records" endpoint),
    - GET /v1/events into Server-Sent Events (gateway_stream),
    - GET /v1/plans, /v1/capacity, /v1/analytics/... into "<svc>.<verb>"
      requests on that service's "api" endpoint,
    and serves /healthz, /metrics (Prometheus text) and the operations
    console (static files). proto/gateway.md is the normative description.
    @discuss
    Bearer tokens map to an identity and a role: producer (may POST
    reports), operations (may read everything), partner (nothing here but
    /healthz). Every error is JSON {ok:false, code, field?, message}.
    Limits on header bytes, body bytes, connections, requests waiting for a
    service, and idle time keep a hostile or broken client from hurting
    the others. TLS is the reverse proxy's (deploy/nginx/relais-gateway.conf).
    =========================================================================
*/
#ifndef GATEWAY_SERVER_H_INCLUDED
#define GATEWAY_SERVER_H_INCLUDED

#include <uv.h>
#include "relais_config.h"

typedef struct gateway_server_t gateway_server_t;

//  The keys of the "gateway" section.
extern const relais_config_key_t gateway_keys [];

//  Declare the "gateway" section. Returns 0 or RELAIS_ECONFIG.
int
    gateway_declare (relais_config_t *config);

//  Create a server on loop from config (declared). Returns NULL after
//  logging why (a bad token table, no memory).
gateway_server_t *
    gateway_server_new (uv_loop_t *loop, relais_config_t *config);

//  Listen, connect to the services and follow the bus. On failure closes
//  what it opened (uv_run then returns). Returns 0 or a negative code.
int
    gateway_server_start (gateway_server_t *self);

//  Destroy after uv_run returned. NULL-safe; nulls *self_p.
void
    gateway_server_destroy (gateway_server_t **self_p);

#endif
