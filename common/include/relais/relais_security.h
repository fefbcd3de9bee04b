/*  =========================================================================
    relais_security - CURVE on every socket, identities and roles from keys

    @header
    When the deployment sets security/curve, every socket the common
    library creates (relais_sock_new) is a CURVE server or client, and a
    ZAP handler of our own - started before any bind, fail closed - admits
    a connection only when:
    - the mechanism is CURVE (NULL and PLAIN are refused);
    - the client's public key is in the roster: the public certificates
      (*.cert, czmq's zcert format) of the certificate folder;
    - the certificate's role may use that endpoint (table below).
    The handler sets the ZMTP User-Id of the connection to the certificate's
    name, so a service learns who sent a request from the request itself
    (relais_security_peer), never from the message's payload.
    @discuss
    Certificates (`relais keygen NAME --role ROLE`): NAME.cert is public,
    with metadata name, role and, for a partner, partner; for a producer,
    source_kind and source_name (what intake records as the report's
    source). NAME.cert_secret (mode 0600 or stricter, else refused) stays on
    the host of NAME. A service's own certificate is <certs>/<service>.cert
    (+ _secret); a client finds a server's public key as <certs>/<svc>.cert
    for the service whose section names the endpoint it connects to.
    Roles and the endpoints (ZAP domain "<service>/<key>") they may use
    (ANY stands for every service):
      producer    intake/submit
      gateway     intake/submit, intake/records (ownership), ANY/pub, ANY/fetch, ANY/api
      operations  intake/submit, intake/records, ANY/pub, ANY/fetch, ANY/api
      service     intake/records, ANY/pub, ANY/fetch, ANY/api
      partner     router/partners
      feedback/feed and feedback/api also admit producer (its own reports only)
    Any other endpoint admits services and operations only.
    =========================================================================
*/
#ifndef RELAIS_SECURITY_H_INCLUDED
#define RELAIS_SECURITY_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include "relais_config.h"

#define RELAIS_PEER_NAME_MAX 64

typedef struct {
    char name [RELAIS_PEER_NAME_MAX];           //  certificate name ("anon" when off)
    char role [16];                             //  producer, partner, ... ("" when off)
    char partner [RELAIS_PEER_NAME_MAX];        //  partner id, for role partner
    char source_kind [16];                      //  producer: source.kind
    char source_name [RELAIS_PEER_NAME_MAX];    //  producer: source.name
} relais_peer_t;

typedef struct {
    uint64_t allowed;                           //  handshakes admitted
    uint64_t refused;                           //  handshakes refused (any reason)
    uint64_t revoked;                           //  certificates revoked (gone from the folder)
} relais_security_stats_t;

//  Declare the "security" section (curve, certs). Returns 0 or RELAIS_ECONFIG.
int
    relais_security_declare (relais_config_t *config);

//  Turn security on for this process as the certificate name (its secret
//  in <certs>/<name>.cert_secret), when security/curve is true; load the
//  roster; when server, start the ZAP handler. With curve off, does
//  nothing and returns 0. Returns RELAIS_ECONFIG after logging why (no
//  folder, empty roster, no own certificate, a secret readable by others,
//  the ZAP endpoint already taken): the program must refuse to start.
int
    relais_security_start (relais_config_t *config, const char *name, bool server);

//  Stop the ZAP handler and forget the roster. Safe when not started.
void
    relais_security_stop (void);

//  True when CURVE is on for this process.
bool
    relais_security_on (void);

//  Apply CURVE to sock before bind (server: curve_server, ZAP domain) or
//  connect (client: own certificate, the server's public key). relais_sock_new
//  calls it. Returns 0 (also when off), or -EACCES when no server key is
//  known for endpoint (the connection must not be made in the clear).
int
    relais_security_apply (zsock_t *sock, const char *endpoint, bool bind);

//  Who sent frame (a frame received on a server socket): with security on,
//  the roster entry of its User-Id; off, name "anon" and an empty role.
//  Returns false when security is on and the sender is not in the roster.
bool
    relais_security_peer (zframe_t *frame, relais_peer_t *peer);

//  The same from the User-Id property itself (zmq_msg_gets of a frame
//  received with zmq_msg_recv; NULL when it has none).
bool
    relais_security_peer_user (const char *user, relais_peer_t *peer);

//  Re-read the certificate folder now (the ZAP handler also does it every
//  security/refresh, default 10 s). A certificate whose file is gone, or
//  whose name, role or partner changed, is revoked: its next handshake is
//  refused, relais_security_peer stops knowing it, and the common poller
//  refuses every further message of its open sessions. A file that does
//  not load is skipped (logged): it cannot hold a revocation back. Does
//  nothing when security is off.
void
    relais_security_refresh (void);

//  Incremented each time a refresh revokes certificates.
uint64_t
    relais_security_generation (void);

//  True when role may use the endpoint of ZAP domain "<service>/<key>".
bool
    relais_security_role_allows (const char *role, const char *domain);

//  Handshakes admitted and refused by this process's ZAP handler.
void
    relais_security_stats (relais_security_stats_t *stats);

//  Create a certificate NAME in folder (NAME.cert and NAME.cert_secret,
//  mode 0600) with role and optional partner / source metadata. Returns 0,
//  -EEXIST when NAME.cert exists, -EINVAL for an unknown role or a bad
//  name, or -errno.
int
    relais_security_keygen (const char *folder, const char *name, const char *role,
                            const char *partner, const char *source_kind,
                            const char *source_name);

#endif
