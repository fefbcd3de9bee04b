/*  =========================================================================
    relais_security - CURVE on every socket, identities and roles from keys
    (see relais_security.h)

    @discuss
    Why our own ZAP handler rather than czmq's zauth: zauth admits any key
    of its certificate store on every socket of the process (the ZAP domain
    is ignored), so a partner's key would open intake's submit endpoint and
    every PUB. Ours checks the role against the endpoint's domain at the
    handshake, refuses NULL and PLAIN, and is started before the first bind
    and checked: libzmq 4.3 without a ZAP handler admits every CURVE client
    (PITFALLS.md), so a process whose handler could not start refuses to run.
    The state is process-wide, like czmq's context it lives beside: sockets
    are created in many places, and one process has one identity.
    =========================================================================
*/
#include "relais_security.h"
#include "relais_deploy.h"
#include "relais_err.h"
#include "relais_log.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define S_ZAP_ENDPOINT  "inproc://zeromq.zap.01"

typedef struct {
    relais_peer_t peer;
    char public_txt [41];
} s_entry_t;

static struct {
    bool on;
    zcert_t *self;                  //  this process's certificate (with secret)
    zhashx_t *by_key;               //  public key (Z85) -> s_entry_t
    zhashx_t *by_name;              //  name -> s_entry_t (same objects)
    zhashx_t *domains;              //  endpoint -> "<service>/<key>"
    zactor_t *zap;
    atomic_uint_fast64_t allowed, refused;
    char *folder;                   //  the certificate folder, re-read by the ZAP thread
    int refresh_ms;                 //  how often (0: never)
    atomic_uint_fast64_t generation;    //  +1 each time a certificate is revoked
    atomic_uint_fast64_t revoked;       //  certificates revoked since start
} s_sec;

//  The roster is read by the ZAP thread and by the loop thread, and
//  replaced by the ZAP thread when the folder changes
static pthread_mutex_t s_roster_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const s_roles [] = {
    "producer", "partner", "operations", "gateway", "service", NULL
};

static const relais_config_key_t s_security_keys [] = {
    { "curve", "false", relais_check_bool, "CURVE and roles on every socket (true in production)" },
    { "certs", "certs", relais_check_path, "folder of the certificates (relative: under relais/data)" },
    { "refresh", "10s", relais_check_duration, "re-read the certificate folder this often: a deleted certificate is revoked (0: never)" },
    { NULL, NULL, NULL, NULL }
};

int
relais_security_declare (relais_config_t *config)
{
    return relais_config_declare (config, "security", s_security_keys);
}

bool
relais_security_on (void)
{
    return s_sec.on;
}

static bool
s_known_role (const char *role)
{
    for (int i = 0; role && s_roles [i]; i++)
        if (strcmp (role, s_roles [i]) == 0)
            return true;
    return false;
}

bool
relais_security_role_allows (const char *role, const char *domain)
{
    if (!role || !domain)
        return false;
    const char *slash = strchr (domain, '/');
    const char *key = slash? slash + 1: "";
    bool shared = strcmp (key, "pub") == 0 || strcmp (key, "fetch") == 0
               || strcmp (key, "api") == 0;
    if (strcmp (domain, "intake/submit") == 0)
        return strcmp (role, "producer") == 0 || strcmp (role, "gateway") == 0
            || strcmp (role, "operations") == 0;
    if (strcmp (domain, "intake/records") == 0)
        //  The gateway checks that a producer owns the report it changes
        return strcmp (role, "service") == 0 || strcmp (role, "operations") == 0
            || strcmp (role, "gateway") == 0;
    if (strcmp (domain, "router/partners") == 0)
        return strcmp (role, "partner") == 0;
    //  A producer follows its own reports (feedback scopes it to its source)
    if (strcmp (domain, "feedback/feed") == 0 || strcmp (domain, "feedback/api") == 0)
        return strcmp (role, "producer") == 0 || strcmp (role, "service") == 0
            || strcmp (role, "operations") == 0 || strcmp (role, "gateway") == 0;
    if (shared)
        return strcmp (role, "service") == 0 || strcmp (role, "operations") == 0
            || strcmp (role, "gateway") == 0;
    return strcmp (role, "service") == 0 || strcmp (role, "operations") == 0;
}

//  ---------------------------------------------------------------------------
//  The ZAP handler (RFC 27), in its own thread: a REP socket on the ZAP
//  endpoint of czmq's context, which every zsock shares.

static void
s_zap_reply (zsock_t *handler, const char *request_id, size_t id_size, const char *status,
             const char *text, const char *user_id)
{
    zmsg_t *reply = zmsg_new ();
    zmsg_addstr (reply, "1.0");
    zmsg_addmem (reply, request_id, id_size);
    zmsg_addstr (reply, status);
    zmsg_addstr (reply, text);
    zmsg_addstr (reply, user_id);
    zmsg_addmem (reply, "", 0);             //  no metadata
    zmsg_send (&reply, handler);
}

static void
s_zap_handle (zsock_t *handler)
{
    zmsg_t *request = zmsg_recv (handler);
    if (!request)
        return;
    //  version, request id, domain, address, identity, mechanism, credentials...
    zframe_t *version = zmsg_pop (request);
    zframe_t *request_id = zmsg_pop (request);
    char *domain = zmsg_popstr (request);
    char *address = zmsg_popstr (request);
    zframe_t *routing = zmsg_pop (request);
    char *mechanism = zmsg_popstr (request);
    zframe_t *key = zmsg_pop (request);
    const char *why = NULL;
    const s_entry_t *entry = NULL;
    s_entry_t found;
    if (!version || !request_id || !domain || !mechanism)
        why = "malformed ZAP request";
    else
    if (strcmp (mechanism, "CURVE") != 0)
        why = "mechanism refused (CURVE only)";
    else
    if (!key || zframe_size (key) != 32)
        why = "no client key";
    else {
        char txt [41];
        zmq_z85_encode (txt, zframe_data (key), 32);
        pthread_mutex_lock (&s_roster_lock);
        entry = (const s_entry_t *) zhashx_lookup (s_sec.by_key, txt);
        if (entry)
            found = *entry;
        pthread_mutex_unlock (&s_roster_lock);
        if (!entry)
            why = "unknown key";
        else
        if (!relais_security_role_allows (found.peer.role, domain))
            why = "role may not use this endpoint";
        entry = entry? &found: NULL;
    }
    const char *id = request_id? (const char *) zframe_data (request_id): "";
    size_t id_size = request_id? zframe_size (request_id): 0;
    if (why) {
        atomic_fetch_add (&s_sec.refused, 1);
        relais_warning ("connection refused domain=%s address=%s peer=%s why=%s",
                        domain? domain: "?", address? address: "?",
                        entry? entry->peer.name: "-", why);
        s_zap_reply (handler, id, id_size, "400", why, "");
    }
    else {
        atomic_fetch_add (&s_sec.allowed, 1);
        relais_debug ("connection admitted domain=%s peer=%s role=%s",
                      domain, entry->peer.name, entry->peer.role);
        s_zap_reply (handler, id, id_size, "200", "OK", entry->peer.name);
    }
    zframe_destroy (&version);
    zframe_destroy (&request_id);
    zframe_destroy (&routing);
    zframe_destroy (&key);
    zstr_free (&domain);
    zstr_free (&address);
    zstr_free (&mechanism);
    zmsg_destroy (&request);
}

static void s_refresh (void);

static void
s_zap_actor (zsock_t *pipe, void *args)
{
    (void) args;
    zsock_t *handler = zsock_new (ZMQ_REP);
    int rc = -1;
    //  A handler stopped just before (security restarted in one process)
    //  may still hold the endpoint: libzmq frees it when its reaper thread
    //  closes the old socket, a moment later (slower under ASan). Up to 1 s.
    for (int attempt = 0; handler && attempt < 100; attempt++) {
        if ((rc = zsock_bind (handler, S_ZAP_ENDPOINT)) == 0 || zmq_errno () != EADDRINUSE)
            break;
        zclock_sleep (10);
    }
    zsock_signal (pipe, 0);
    zstr_send (pipe, rc == 0? "ok": "fail");
    if (rc) {
        zsock_destroy (&handler);
        //  Wait for $TERM so that zactor_destroy returns
        char *cmd = zstr_recv (pipe);
        zstr_free (&cmd);
        return;
    }
    zpoller_t *poller = zpoller_new (pipe, handler, NULL);
    int64_t next = s_sec.refresh_ms? zclock_mono () + s_sec.refresh_ms: 0;
    while (true) {
        int timeout = -1;
        if (next) {
            int64_t left = next - zclock_mono ();
            timeout = left > 0? (int) left: 0;
        }
        void *which = zpoller_wait (poller, timeout);
        if (next && zclock_mono () >= next) {
            s_refresh ();
            next = zclock_mono () + s_sec.refresh_ms;
        }
        if (which == handler)
            s_zap_handle (handler);
        else
        if (which == pipe) {
            char *cmd = zstr_recv (pipe);
            bool term = !cmd || strcmp (cmd, "$TERM") == 0;
            zstr_free (&cmd);
            if (term)
                break;
        }
        else
        if (zpoller_terminated (poller))
            break;
    }
    zpoller_destroy (&poller);
    zsock_destroy (&handler);
}

//  ---------------------------------------------------------------------------
//  The roster and the endpoint map

static void
s_copy (char *to, size_t size, const char *from)
{
    snprintf (to, size, "%s", from? from: "");
}

static bool
s_good_name (const char *name)
{
    size_t len = strlen (name);
    if (len == 0 || len >= RELAIS_PEER_NAME_MAX)
        return false;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')
           || *p == '-' || *p == '_' || *p == '.'))
            return false;
    return name [0] != '.';
}

//  Load every public certificate of folder into the two maps; refuse
//  secrets others can read. Strict (at start): any bad file fails the load,
//  and so does an empty roster. Lenient (refresh): a bad file is skipped
//  with a warning, so that it cannot hold a revocation back.
static int
s_load_roster (const char *folder, zhashx_t *by_key, zhashx_t *by_name, bool lenient)
{
    DIR *dir = opendir (folder);
    if (!dir) {
        relais_error ("security: cannot read the certificate folder %s: %s", folder, strerror (errno));
        return RELAIS_ECONFIG;
    }
    int rc = 0;
    struct dirent *ent;
    while ((ent = readdir (dir)) && rc == 0) {
        const char *file = ent->d_name;
        size_t len = strlen (file);
        char path [4096];
        snprintf (path, sizeof path, "%s/%s", folder, file);
        if (len > 12 && strcmp (file + len - 12, ".cert_secret") == 0) {
            struct stat st;
            if (!lenient && stat (path, &st) == 0 && (st.st_mode & 077)) {
                relais_error ("security: %s can be read by others (mode %03o): "
                              "chmod 600 it, and consider it leaked", path, st.st_mode & 0777);
                rc = RELAIS_ECONFIG;
            }
            continue;
        }
        if (len <= 5 || strcmp (file + len - 5, ".cert") != 0)
            continue;
        zcert_t *cert = zcert_load (path);
        if (!cert) {
            relais_error ("security: %s is not a certificate", path);
            if (lenient)
                continue;
            rc = RELAIS_ECONFIG;
            break;
        }
        s_entry_t *entry = (s_entry_t *) calloc (1, sizeof *entry);
        if (!entry) {
            zcert_destroy (&cert);
            rc = -ENOMEM;
            break;
        }
        char base [RELAIS_PEER_NAME_MAX];
        snprintf (base, sizeof base, "%.*s", (int) (len - 5), file);
        const char *name = zcert_meta (cert, "name");
        s_copy (entry->peer.name, sizeof entry->peer.name, name? name: base);
        s_copy (entry->peer.role, sizeof entry->peer.role, zcert_meta (cert, "role"));
        s_copy (entry->peer.partner, sizeof entry->peer.partner, zcert_meta (cert, "partner"));
        s_copy (entry->peer.source_kind, sizeof entry->peer.source_kind, zcert_meta (cert, "source_kind"));
        s_copy (entry->peer.source_name, sizeof entry->peer.source_name, zcert_meta (cert, "source_name"));
        s_copy (entry->public_txt, sizeof entry->public_txt, zcert_public_txt (cert));
        zcert_destroy (&cert);
        const char *bad = NULL;
        if (!s_known_role (entry->peer.role) || !s_good_name (entry->peer.name))
            bad = "name or role is not valid";
        else
        if (zhashx_lookup (by_name, entry->peer.name) || zhashx_lookup (by_key, entry->public_txt))
            bad = "name or key given twice";
        if (bad) {
            relais_error ("security: %s: %s (name '%s', role '%s')", path, bad,
                          entry->peer.name, entry->peer.role);
            free (entry);
            if (lenient)
                continue;
            rc = RELAIS_ECONFIG;
            break;
        }
        zhashx_insert (by_key, entry->public_txt, entry);
        zhashx_insert (by_name, entry->peer.name, entry);     //  owns it
    }
    closedir (dir);
    if (rc == 0 && !lenient && zhashx_size (by_name) == 0) {
        relais_error ("security: no certificate (*.cert) in %s: nobody could connect", folder);
        rc = RELAIS_ECONFIG;
    }
    return rc;
}

static void s_free_entry (void **item);

//  Re-read the certificate folder (ZAP thread). A key that is gone, or
//  whose name or role changed, is revoked: the next handshake with it is
//  refused, and relais_security_peer no longer knows its sessions.
static void
s_refresh (void)
{
    zhashx_t *by_key = zhashx_new ();
    zhashx_t *by_name = zhashx_new ();
    if (!by_key || !by_name) {
        zhashx_destroy (&by_key);
        zhashx_destroy (&by_name);
        return;
    }
    zhashx_set_destructor (by_name, s_free_entry);
    if (s_load_roster (s_sec.folder, by_key, by_name, true)) {
        relais_warning ("security: certificate folder unreadable: roster kept as it was");
        zhashx_destroy (&by_key);
        zhashx_destroy (&by_name);
        return;
    }
    size_t revoked = 0, added = 0;
    pthread_mutex_lock (&s_roster_lock);
    for (s_entry_t *old = (s_entry_t *) zhashx_first (s_sec.by_name); old;
         old = (s_entry_t *) zhashx_next (s_sec.by_name)) {
        const s_entry_t *now = (const s_entry_t *) zhashx_lookup (by_key, old->public_txt);
        if (!now || strcmp (now->peer.name, old->peer.name) != 0
        ||  strcmp (now->peer.role, old->peer.role) != 0
        ||  strcmp (now->peer.partner, old->peer.partner) != 0) {
            relais_notice ("security: certificate revoked name=%s role=%s", old->peer.name, old->peer.role);
            revoked++;
        }
    }
    for (s_entry_t *now = (s_entry_t *) zhashx_first (by_name); now;
         now = (s_entry_t *) zhashx_next (by_name))
        added += zhashx_lookup (s_sec.by_key, now->public_txt) == NULL;
    zhashx_t *old_key = s_sec.by_key, *old_name = s_sec.by_name;
    s_sec.by_key = by_key;
    s_sec.by_name = by_name;
    pthread_mutex_unlock (&s_roster_lock);
    zhashx_destroy (&old_key);
    zhashx_destroy (&old_name);
    if (added)
        relais_notice ("security: %zu certificate%s added", added, added == 1? "": "s");
    if (revoked) {
        atomic_fetch_add (&s_sec.revoked, revoked);
        atomic_fetch_add (&s_sec.generation, 1);
    }
}

typedef struct {
    relais_config_t *config;
    const char *service;
} s_scan_t;

static void
s_map_endpoint (const char *child, void *arg)
{
    s_scan_t *scan = (s_scan_t *) arg;
    char path [128];
    snprintf (path, sizeof path, "%s/%s", scan->service, child);
    const char *value = relais_config_str (scan->config, path);
    if (value && strstr (value, "://") && !zhashx_lookup (s_sec.domains, value))
        zhashx_insert (s_sec.domains, value, strdup (path));
}

static void
s_free_entry (void **item)
{
    free (*item);
    *item = NULL;
}

void
relais_security_stop (void)
{
    zactor_destroy (&s_sec.zap);
    zcert_destroy (&s_sec.self);
    zhashx_destroy (&s_sec.by_key);
    zhashx_destroy (&s_sec.by_name);
    zhashx_destroy (&s_sec.domains);
    free (s_sec.folder);
    s_sec.folder = NULL;
    s_sec.on = false;
}

int
relais_security_start (relais_config_t *config, const char *name, bool server)
{
    if (!relais_config_bool (config, "security/curve", false))
        return 0;
    relais_security_stop ();
    s_sec.by_key = zhashx_new ();
    s_sec.by_name = zhashx_new ();
    s_sec.domains = zhashx_new ();
    if (!s_sec.by_key || !s_sec.by_name || !s_sec.domains) {
        relais_security_stop ();
        return -ENOMEM;
    }
    zhashx_set_destructor (s_sec.by_name, s_free_entry);
    zhashx_set_destructor (s_sec.domains, s_free_entry);
    char *folder = relais_config_path (config, "security/certs");
    int rc = folder? s_load_roster (folder, s_sec.by_key, s_sec.by_name, false): RELAIS_ECONFIG;
    s_sec.refresh_ms = (int) relais_config_duration_ms (config, "security/refresh", 10000);
    if (rc == 0) {
        char path [4096];
        snprintf (path, sizeof path, "%s/%s.cert", folder, name);
        char secret [4200];
        snprintf (secret, sizeof secret, "%s_secret", path);
        struct stat st;
        if (stat (secret, &st) != 0) {
            relais_error ("security: no secret certificate %s for '%s'", secret, name);
            rc = RELAIS_ECONFIG;
        }
        else
        if (!(s_sec.self = zcert_load (path))) {
            relais_error ("security: cannot load the certificate %s", path);
            rc = RELAIS_ECONFIG;
        }
    }
    s_sec.folder = folder;              //  the ZAP thread re-reads it
    //  Every endpoint of the deployment, and the domain it belongs to
    for (int i = 0; rc == 0 && relais_deploy_all_services [i]; i++) {
        s_scan_t scan = { config, relais_deploy_all_services [i] };
        relais_config_children (config, relais_deploy_all_services [i], s_map_endpoint, &scan);
    }
    if (rc == 0 && server) {
        s_sec.zap = zactor_new (s_zap_actor, NULL);
        char *status = s_sec.zap? zstr_recv (s_sec.zap): NULL;
        if (!status || strcmp (status, "ok") != 0) {
            relais_error ("security: the ZAP handler could not start (%s is taken?): "
                          "refusing to run without it", S_ZAP_ENDPOINT);
            rc = RELAIS_ECONFIG;
        }
        zstr_free (&status);
    }
    if (rc) {
        relais_security_stop ();
        return rc;
    }
    s_sec.on = true;
    relais_notice ("security on: CURVE as '%s', %zu certificates", name,
                   zhashx_size (s_sec.by_name));
    return 0;
}

int
relais_security_apply (zsock_t *sock, const char *endpoint, bool bind)
{
    if (!s_sec.on)
        return 0;
    const char *domain = (const char *) zhashx_lookup (s_sec.domains, endpoint);
    if (bind) {
        zsock_set_zap_domain (sock, domain? domain: "unlisted");
        zcert_apply (s_sec.self, zsock_resolve (sock));
        zsock_set_curve_server (sock, 1);
        return 0;
    }
    char service [64] = "";
    if (domain)
        snprintf (service, sizeof service, "%.*s", (int) strcspn (domain, "/"), domain);
    char server_key [41] = "";
    pthread_mutex_lock (&s_roster_lock);
    const s_entry_t *server = *service?
        (const s_entry_t *) zhashx_lookup (s_sec.by_name, service): NULL;
    if (server)
        s_copy (server_key, sizeof server_key, server->public_txt);
    pthread_mutex_unlock (&s_roster_lock);
    if (!*server_key) {
        relais_error ("security: no server certificate for %s (%s): not connecting in the clear",
                      endpoint, *service? service: "no service of the deployment names it");
        return -EACCES;
    }
    zcert_apply (s_sec.self, zsock_resolve (sock));
    zsock_set_curve_serverkey (sock, server_key);
    return 0;
}

bool
relais_security_peer (zframe_t *frame, relais_peer_t *peer)
{
    return relais_security_peer_user (frame && s_sec.on? zframe_meta (frame, "User-Id"): NULL,
                                      peer);
}

bool
relais_security_peer_user (const char *user, relais_peer_t *peer)
{
    memset (peer, 0, sizeof *peer);
    if (!s_sec.on) {
        s_copy (peer->name, sizeof peer->name, "anon");
        return true;
    }
    pthread_mutex_lock (&s_roster_lock);
    const s_entry_t *entry = user? (const s_entry_t *) zhashx_lookup (s_sec.by_name, user): NULL;
    if (entry)
        *peer = entry->peer;
    pthread_mutex_unlock (&s_roster_lock);
    return entry != NULL;
}

uint64_t
relais_security_generation (void)
{
    return atomic_load (&s_sec.generation);
}

void
relais_security_refresh (void)
{
    if (s_sec.on && s_sec.folder)
        s_refresh ();
}

void
relais_security_stats (relais_security_stats_t *stats)
{
    stats->allowed = atomic_load (&s_sec.allowed);
    stats->refused = atomic_load (&s_sec.refused);
    stats->revoked = atomic_load (&s_sec.revoked);
}

int
relais_security_keygen (const char *folder, const char *name, const char *role,
                        const char *partner, const char *source_kind, const char *source_name)
{
    if (!s_good_name (name) || !s_known_role (role))
        return -EINVAL;
    if (strcmp (role, "partner") == 0 && (!partner || !*partner))
        return -EINVAL;
    char path [4096];
    snprintf (path, sizeof path, "%s/%s.cert", folder, name);
    struct stat st;
    if (stat (path, &st) == 0)
        return -EEXIST;
    //  Create the folder and its parents, private
    char dir [4096];
    snprintf (dir, sizeof dir, "%s", folder);
    for (char *p = dir + 1; ; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            if (mkdir (dir, 0700) && errno != EEXIST)
                return -errno;
            *p = c;
            if (!c)
                break;
        }
    }
    zcert_t *cert = zcert_new ();
    if (!cert)
        return -ENOMEM;
    zcert_set_meta (cert, "name", "%s", name);
    zcert_set_meta (cert, "role", "%s", role);
    if (partner && *partner)
        zcert_set_meta (cert, "partner", "%s", partner);
    if (source_kind && *source_kind)
        zcert_set_meta (cert, "source_kind", "%s", source_kind);
    if (source_name && *source_name)
        zcert_set_meta (cert, "source_name", "%s", source_name);
    int rc = zcert_save (cert, path);
    zcert_destroy (&cert);
    if (rc)
        return -EIO;
    char secret [4200];
    snprintf (secret, sizeof secret, "%s_secret", path);
    if (chmod (secret, 0600) || chmod (path, 0644))
        return -errno;
    return 0;
}
