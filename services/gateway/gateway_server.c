/*  =========================================================================
    gateway_server - HTTP for people who will never speak ZeroMQ
    (see gateway_server.h)
    =========================================================================
*/
#include "gateway_server.h"
#include "gateway_body.h"
#include "gateway_stream.h"
#include "cli_json.h"
#include "relais_bus.h"
#include "relais_clock.h"
#include "relais_log.h"
#include "relais_msg.h"

#include <ctype.h>
#include <fcntl.h>
#include <http_parser.h>
#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_TOKENS_MAX        256
#define S_IDEM_KEY_MAX      96          //  Idempotency-Key, bytes
#define S_AUTH_MAX          256
#define S_RESUME_MAX        512
#define S_STATIC_MAX        (1 << 20)
#define S_PENDING_MAX       65535
#define S_STATUS_SLOTS      600
#define S_READ_MAX          65536       //  bytes of one read
#define S_BACKLOG_MAX       (4 << 20)   //  unread response bytes before a client is cut

static bool s_check_listen (const char *value, char *why, size_t size);
static bool s_check_role (const char *value, char *why, size_t size);

const relais_config_key_t gateway_keys [] = {
    { "listen", "127.0.0.1:7150", s_check_listen, "HTTP address:port (TLS is the reverse proxy's)" },
    { "heartbeat", "1s", relais_check_duration, "unused by the gateway (it publishes no events)" },
    { "static", "/usr/share/relais/console", relais_check_path, "folder of the operations console's files" },
    { "limits/max_body", "64K", relais_check_size, "largest request body; larger gets 413" },
    { "limits/max_header", "8K", relais_check_size, "request line plus headers; larger gets 431" },
    { "limits/max_connections", "256", relais_check_uint, "open connections; one more gets 503" },
    { "limits/max_pending", "1024", relais_check_uint, "requests waiting for a service; more get 429" },
    { "limits/idle_timeout", "30s", relais_check_duration, "a connection silent this long is closed (not SSE)" },
    { "limits/request_timeout", "5s", relais_check_duration, "a service that has not answered by then: 503" },
    { "sse/ring", "4096", relais_check_uint, "recent events kept per source for live clients" },
    { "sse/keepalive", "15s", relais_check_duration, "comment line sent to idle SSE clients" },
    { "tokens/*/token", NULL, NULL, "the bearer token (32+ random characters)" },
    { "tokens/*/role", NULL, s_check_role, "producer, operations or partner" },
    { "tokens/*/kind", "", NULL, "producer: its source kind (115, cellule, mairie, ...)" },
    { "tokens/*/name", "", NULL, "producer: its source name" },
    { NULL, NULL, NULL, NULL }
};

typedef enum { S_ROLE_NONE, S_ROLE_PRODUCER, S_ROLE_OPERATIONS, S_ROLE_PARTNER } s_role_t;
static const char *const s_role_names [] = { "none", "producer", "operations", "partner" };

typedef struct {
    uint8_t hash [crypto_hash_sha256_BYTES];
    char identity [64];
    s_role_t role;
    char kind [32];
    char name [129];
} s_token_t;

typedef struct s_conn_t s_conn_t;

//  A request waiting for a service's reply
typedef struct {
    s_conn_t *conn;
    uint64_t rid;
    uint64_t deadline_ms;
    char idem [S_IDEM_KEY_MAX + 1];     //  the client's key, put back in the reply
    bool has_idem;
    //  update and close: first the owner check on intake/records, then this
    const s_token_t *owner;             //  the producer that must own the report
    msgpack_sbuffer request;            //  the update/close, sent once the check passed
    bool checking;
} s_pending_t;

typedef enum { S_UP_INTAKE, S_UP_RECORDS, S_UP_PLANS, S_UP_CAPACITY, S_UP_ANALYTICS, S_UP_FEEDBACK,
               S_UP_COUNT } s_up_t;
static const char *const s_up_names [] = { "intake", "intake", "plans", "capacity", "analytics", "feedback" };
static const char *const s_up_keys [] = { "submit", "records", "api", "api", "api", "api" };

static const char *const s_codes [] = {
    RELAIS_CODE_INVALID, RELAIS_CODE_TOO_LARGE, RELAIS_CODE_UNKNOWN_OP,
    RELAIS_CODE_UNAUTHORIZED, RELAIS_CODE_NOT_FOUND, RELAIS_CODE_CONFLICT,
    RELAIS_CODE_UNAVAILABLE, RELAIS_CODE_GONE, "other", NULL
};
#define S_CODES 9

struct gateway_server_t {
    uv_loop_t *loop;
    relais_config_t *config;
    char host [64];
    int port;
    char *static_dir;
    size_t max_body, max_header, max_connections, max_pending;
    uint64_t idle_ms, request_ms, keepalive_ms;
    s_token_t tokens [S_TOKENS_MAX];
    size_t token_count;
    bool token_error;
    uv_tcp_t listener;
    bool listening;
    uv_timer_t timer;
    bool timer_open;
    uint64_t last_keepalive_ms;
    relais_poller_t *up [S_UP_COUNT];
    gateway_stream_t *stream;
    relais_signals_t *signals;
    s_pending_t *pending;
    size_t pending_count;
    uint64_t next_rid;
    zlistx_t *conns;
    size_t open;
    uint64_t requests [S_STATUS_SLOTS];
    uint64_t errors [S_CODES];
    uint64_t accepted, refused;
    bool stopping;
};

struct s_conn_t {
    uv_tcp_t tcp;
    uv_timer_t idle;
    int handles;                        //  open libuv handles
    gateway_server_t *server;
    void *handle;                       //  place in server->conns
    http_parser parser;
    //  the request being read
    char *url;
    size_t url_len;
    size_t header_bytes;
    char field [32];
    size_t field_len;
    bool in_value;
    int header;                         //  which header the value belongs to
    char auth [S_AUTH_MAX + 1];
    char idem [S_IDEM_KEY_MAX + 1];
    char resume [S_RESUME_MAX + 1];
    bool has_idem, idem_bad, auth_bad, resume_bad;
    msgpack_sbuffer body;
    int early;                          //  status to answer at once (413, 431), 0: none
    bool complete;                      //  a whole request waits for handling
    bool keep_alive;
    //  what the connection is doing
    bool busy;                          //  waiting for a service
    int slot;                           //  its pending slot, -1: none
    bool sse;
    gateway_watch_t *watch;
    char *leftover;                     //  bytes after a request, parsed later
    size_t leftover_len;
    size_t backlog;                     //  bytes handed to uv_write, not yet written
    bool close_after;                   //  close once the backlog is written
    bool doomed;                        //  a write failed: close on the next loop turn
    bool feeding;                       //  inside s_feed: requests are handled in its loop
    bool closing;
};

typedef struct {
    uv_write_t req;
    s_conn_t *conn;
    size_t size;
    char data [];
} s_write_t;

enum { S_H_NONE, S_H_AUTH, S_H_IDEM, S_H_RESUME };

//  ---------------------------------------------------------------------------
//  Configuration

static bool
s_check_listen (const char *value, char *why, size_t size)
{
    const char *colon = strrchr (value, ':');
    char *end;
    long port = colon? strtol (colon + 1, &end, 10): -1;
    if (!colon || colon == value || colon - value >= 64 || *end || port < 0 || port > 65535) {
        snprintf (why, size, "expected host:port, e.g. 127.0.0.1:7150");
        return false;
    }
    return true;
}

static bool
s_check_role (const char *value, char *why, size_t size)
{
    for (int i = 1; i < 4; i++)
        if (strcmp (value, s_role_names [i]) == 0)
            return true;
    snprintf (why, size, "expected producer, operations or partner");
    return false;
}

int
gateway_declare (relais_config_t *config)
{
    return relais_config_declare (config, "gateway", gateway_keys);
}

static void
s_add_token (const char *name, void *arg)
{
    gateway_server_t *self = (gateway_server_t *) arg;
    char path [256];
    if (self->token_count == S_TOKENS_MAX || strlen (name) >= sizeof self->tokens [0].identity) {
        relais_error ("gateway/tokens/%s: too many tokens or identity too long", name);
        self->token_error = true;
        return;
    }
    s_token_t *token = &self->tokens [self->token_count];
    snprintf (path, sizeof path, "gateway/tokens/%s/token", name);
    const char *secret = relais_config_str (self->config, path);
    snprintf (path, sizeof path, "gateway/tokens/%s/role", name);
    const char *role = relais_config_str (self->config, path);
    if (!secret || strlen (secret) < 16 || !role) {
        relais_error ("gateway/tokens/%s: a token of at least 16 characters and a role are required", name);
        self->token_error = true;
        return;
    }
    snprintf (token->identity, sizeof token->identity, "%s", name);
    for (int i = 1; i < 4; i++)
        if (strcmp (role, s_role_names [i]) == 0)
            token->role = (s_role_t) i;
    snprintf (path, sizeof path, "gateway/tokens/%s/kind", name);
    snprintf (token->kind, sizeof token->kind, "%s", relais_config_str (self->config, path));
    snprintf (path, sizeof path, "gateway/tokens/%s/name", name);
    snprintf (token->name, sizeof token->name, "%s", relais_config_str (self->config, path));
    if (token->role == S_ROLE_PRODUCER && (!*token->kind || !*token->name)) {
        relais_error ("gateway/tokens/%s: a producer needs its source kind and name", name);
        self->token_error = true;
        return;
    }
    //  Only a hash is kept, compared in constant time
    crypto_hash_sha256 (token->hash, (const unsigned char *) secret, strlen (secret));
    self->token_count++;
}

//  ---------------------------------------------------------------------------
//  Writing responses

static void s_conn_close (s_conn_t *conn);
static void s_on_idle (uv_timer_t *timer);
static void s_next_request (s_conn_t *conn);

static void
s_on_written (uv_write_t *req, int status)
{
    s_write_t *w = (s_write_t *) req;
    s_conn_t *conn = w->conn;
    conn->backlog -= w->size;
    free (w);
    if (status < 0) {
        s_conn_close (conn);
        return;
    }
    if (conn->close_after && conn->backlog == 0)
        s_conn_close (conn);
    else
    if (conn->watch && !conn->closing)
        gateway_watch_pump (conn->watch);
}

//  A failed write may happen while the stream walks its watches: the
//  connection (and its watch) goes on the next loop turn, not now.
static void
s_doom (s_conn_t *conn)
{
    conn->doomed = true;
    if (!conn->closing)
        uv_timer_start (&conn->idle, s_on_idle, 0, 0);
}

//  Queue bytes on the connection. Returns 0 or -1 (closing, or no memory).
static int
s_write (s_conn_t *conn, const char *data, size_t size)
{
    if (conn->closing || conn->doomed)
        return -1;
    s_write_t *w = (s_write_t *) malloc (sizeof *w + size);
    if (!w) {
        s_doom (conn);
        return -1;
    }
    w->conn = conn;
    w->size = size;
    memcpy (w->data, data, size);
    uv_buf_t buf = uv_buf_init (w->data, (unsigned) size);
    conn->backlog += size;
    if (uv_write (&w->req, (uv_stream_t *) &conn->tcp, &buf, 1, s_on_written)) {
        conn->backlog -= size;
        free (w);
        s_doom (conn);
        return -1;
    }
    return 0;
}

static const char *
s_reason (int status)
{
    switch (status) {
        case 200: return "OK";
        case 400: return "Bad Request";
        case 401: return "Unauthorized";
        case 403: return "Forbidden";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 408: return "Request Timeout";
        case 409: return "Conflict";
        case 410: return "Gone";
        case 413: return "Content Too Large";
        case 429: return "Too Many Requests";
        case 431: return "Request Header Fields Too Large";
        case 502: return "Bad Gateway";
        case 503: return "Service Unavailable";
        default:  return "Status";
    }
}

//  Send a whole response; then read the next request (keep-alive) or close.
static void
s_respond (s_conn_t *conn, int status, const char *type, const char *extra,
           const char *body, size_t size)
{
    gateway_server_t *self = conn->server;
    self->requests [status > 0 && status < S_STATUS_SLOTS? status: 0]++;
    bool keep = conn->keep_alive && !conn->early && !self->stopping;
    char head [512];
    int n = snprintf (head, sizeof head,
                      "HTTP/1.1 %d %s\r\n"
                      "Content-Type: %s\r\n"
                      "Content-Length: %zu\r\n"
                      "Cache-Control: no-store\r\n"
                      "X-Content-Type-Options: nosniff\r\n"
                      "%s"
                      "Connection: %s\r\n\r\n",
                      status, s_reason (status), type, size, extra? extra: "",
                      keep? "keep-alive": "close");
    msgpack_sbuffer out;
    msgpack_sbuffer_init (&out);
    msgpack_sbuffer_write (&out, head, (size_t) n);
    if (size)
        msgpack_sbuffer_write (&out, body, size);
    int rc = s_write (conn, out.data, out.size);
    msgpack_sbuffer_destroy (&out);
    if (rc)
        return;
    if (!keep)
        conn->close_after = true;
    else
        s_next_request (conn);
}

static void
s_respond_json (s_conn_t *conn, int status, const char *extra, const msgpack_sbuffer *json)
{
    s_respond (conn, status, "application/json", extra, json->data, json->size);
}

static void
s_count_error (gateway_server_t *self, const char *code)
{
    int i = 0;
    while (s_codes [i] && strcmp (s_codes [i], code) != 0)
        i++;
    self->errors [s_codes [i]? i: S_CODES - 1]++;
}

static void
s_fail (s_conn_t *conn, int status, const char *code, const char *field, const char *message)
{
    relais_error_t err;
    relais_error_set (&err, code, field, "%s", message);
    s_count_error (conn->server, code);
    msgpack_sbuffer out;
    msgpack_sbuffer_init (&out);
    gateway_body_error (&err, &out);
    const char *extra = status == 401? "WWW-Authenticate: Bearer realm=\"relais\"\r\n"
                      : status == 503 || status == 429? "Retry-After: 1\r\n": NULL;
    s_respond_json (conn, status, extra, &out);
    msgpack_sbuffer_destroy (&out);
}

//  ---------------------------------------------------------------------------
//  Parsing (http_parser callbacks)

static bool
s_add_header_bytes (s_conn_t *conn, size_t len)
{
    conn->header_bytes += len;
    if (conn->header_bytes > conn->server->max_header) {
        conn->early = 431;
        return false;
    }
    return true;
}

static int
s_on_message_begin (http_parser *parser)
{
    s_conn_t *conn = (s_conn_t *) parser->data;
    conn->header_bytes = 0;
    return 0;
}

static int
s_on_url (http_parser *parser, const char *at, size_t len)
{
    s_conn_t *conn = (s_conn_t *) parser->data;
    if (!s_add_header_bytes (conn, len))
        return -1;
    char *url = (char *) realloc (conn->url, conn->url_len + len + 1);
    if (!url)
        return -1;
    memcpy (url + conn->url_len, at, len);
    conn->url = url;
    conn->url_len += len;
    conn->url [conn->url_len] = 0;
    return 0;
}

static int
s_on_header_field (http_parser *parser, const char *at, size_t len)
{
    s_conn_t *conn = (s_conn_t *) parser->data;
    if (!s_add_header_bytes (conn, len))
        return -1;
    if (conn->in_value) {
        conn->in_value = false;
        conn->field_len = 0;
    }
    for (size_t i = 0; i < len; i++)
        if (conn->field_len < sizeof conn->field - 1)
            conn->field [conn->field_len++] = (char) tolower ((unsigned char) at [i]);
        else
            conn->field_len = sizeof conn->field;   //  too long: no header we know
    return 0;
}

static void
s_append_value (char *buf, size_t max, const char *at, size_t len, bool *bad)
{
    size_t have = strlen (buf);
    if (have + len > max) {
        *bad = true;
        return;
    }
    memcpy (buf + have, at, len);
    buf [have + len] = 0;
}

static int
s_on_header_value (http_parser *parser, const char *at, size_t len)
{
    s_conn_t *conn = (s_conn_t *) parser->data;
    if (!s_add_header_bytes (conn, len))
        return -1;
    if (!conn->in_value) {
        conn->in_value = true;
        conn->header = S_H_NONE;
        if (conn->field_len < sizeof conn->field) {
            conn->field [conn->field_len] = 0;
            if (strcmp (conn->field, "authorization") == 0) {
                conn->header = S_H_AUTH;
                conn->auth [0] = 0;
            }
            else
            if (strcmp (conn->field, "idempotency-key") == 0) {
                conn->header = S_H_IDEM;
                conn->idem [0] = 0;
                conn->has_idem = true;
            }
            else
            if (strcmp (conn->field, "last-event-id") == 0) {
                conn->header = S_H_RESUME;
                conn->resume [0] = 0;
            }
        }
    }
    if (conn->header == S_H_AUTH)
        s_append_value (conn->auth, S_AUTH_MAX, at, len, &conn->auth_bad);
    else
    if (conn->header == S_H_IDEM)
        s_append_value (conn->idem, S_IDEM_KEY_MAX, at, len, &conn->idem_bad);
    else
    if (conn->header == S_H_RESUME)
        s_append_value (conn->resume, S_RESUME_MAX, at, len, &conn->resume_bad);
    return 0;
}

static int
s_on_headers_complete (http_parser *parser)
{
    s_conn_t *conn = (s_conn_t *) parser->data;
    //  Refuse a declared oversized body before reading it
    if (parser->content_length != ULLONG_MAX && parser->content_length > conn->server->max_body) {
        conn->early = 413;
        return -1;
    }
    return 0;
}

static int
s_on_body (http_parser *parser, const char *at, size_t len)
{
    s_conn_t *conn = (s_conn_t *) parser->data;
    if (conn->body.size + len > conn->server->max_body) {
        conn->early = 413;              //  chunked past the limit
        return -1;
    }
    msgpack_sbuffer_write (&conn->body, at, len);
    return 0;
}

static int
s_on_message_complete (http_parser *parser)
{
    s_conn_t *conn = (s_conn_t *) parser->data;
    conn->complete = true;
    conn->keep_alive = http_should_keep_alive (parser) != 0;
    http_parser_pause (parser, 1);      //  one request at a time
    return 0;
}

static http_parser_settings s_settings = {
    .on_message_begin = s_on_message_begin,
    .on_url = s_on_url,
    .on_header_field = s_on_header_field,
    .on_header_value = s_on_header_value,
    .on_headers_complete = s_on_headers_complete,
    .on_body = s_on_body,
    .on_message_complete = s_on_message_complete,
};

//  ---------------------------------------------------------------------------
//  Authentication

static const s_token_t *
s_authenticate (s_conn_t *conn)
{
    gateway_server_t *self = conn->server;
    if (conn->auth_bad || strncasecmp (conn->auth, "Bearer ", 7) != 0)
        return NULL;
    const char *secret = conn->auth + 7;
    while (*secret == ' ')
        secret++;
    uint8_t hash [crypto_hash_sha256_BYTES];
    crypto_hash_sha256 (hash, (const unsigned char *) secret, strlen (secret));
    const s_token_t *found = NULL;
    for (size_t i = 0; i < self->token_count; i++)
        if (sodium_memcmp (hash, self->tokens [i].hash, sizeof hash) == 0)
            found = &self->tokens [i];
    return found;
}

//  Check the caller may do what needs role; answers 401/403 itself.
static const s_token_t *
s_allow (s_conn_t *conn, s_role_t role)
{
    const s_token_t *token = s_authenticate (conn);
    if (!token) {
        s_fail (conn, 401, RELAIS_CODE_UNAUTHORIZED, "Authorization",
                "a valid bearer token is required (Authorization: Bearer <token>)");
        return NULL;
    }
    if (token->role != role) {
        relais_info ("refused identity=%s role=%s", token->identity, s_role_names [token->role]);
        s_fail (conn, 403, RELAIS_CODE_UNAUTHORIZED, "",
                role == S_ROLE_PRODUCER? "only a producer's token may send reports"
                                       : "only an operations token may read this");
        return NULL;
    }
    return token;
}

//  A producer's or an operations token (a producer then sees only its own
//  reports); answers 401/403 itself.
static const s_token_t *
s_allow_reader (s_conn_t *conn)
{
    const s_token_t *token = s_authenticate (conn);
    if (!token) {
        s_fail (conn, 401, RELAIS_CODE_UNAUTHORIZED, "Authorization",
                "a valid bearer token is required (Authorization: Bearer <token>)");
        return NULL;
    }
    if (token->role != S_ROLE_PRODUCER && token->role != S_ROLE_OPERATIONS) {
        relais_info ("refused identity=%s role=%s", token->identity, s_role_names [token->role]);
        s_fail (conn, 403, RELAIS_CODE_UNAUTHORIZED, "", "only a producer's or an operations token may read this");
        return NULL;
    }
    return token;
}

//  ---------------------------------------------------------------------------
//  Requests to services

static s_pending_t *
s_pending_new (gateway_server_t *self, s_conn_t *conn)
{
    if (self->pending_count >= self->max_pending)
        return NULL;
    for (size_t i = 0; i < self->max_pending; i++) {
        s_pending_t *p = &self->pending [i];
        if (p->rid == 0) {
            p->conn = conn;
            p->rid = (++self->next_rid << 16) | i;
            p->deadline_ms = relais_clock_mono () / 1000 + self->request_ms;
            p->has_idem = false;
            p->owner = NULL;
            p->checking = false;
            msgpack_sbuffer_init (&p->request);
            conn->slot = (int) i;
            conn->busy = true;
            self->pending_count++;
            return p;
        }
    }
    return NULL;
}

static void
s_pending_release (gateway_server_t *self, s_pending_t *p)
{
    if (p->conn) {
        p->conn->slot = -1;
        p->conn->busy = false;
    }
    p->conn = NULL;
    p->rid = 0;
    msgpack_sbuffer_destroy (&p->request);
    self->pending_count--;
}

static int
s_send_up (gateway_server_t *self, s_up_t up, const msgpack_sbuffer *data)
{
    if (!self->up [up])
        return -1;
    zmsg_t *msg = zmsg_new ();
    zmsg_addmem (msg, NULL, 0);
    zmsg_addmem (msg, data->data, data->size);
    return relais_poller_send (self->up [up], &msg);
}

static const relais_msg_limits_t s_reply_limits = { 4 << 20, 16, 1 << 20 };

//  The reply of intake/records to the owner check: the report's source must
//  be the producer's. Only source.kind and source.name are read; the rest
//  of the record (personal data) is neither kept nor logged.
static void
s_check_owner (gateway_server_t *self, s_pending_t *p, const msgpack_object *reply)
{
    s_conn_t *conn = p->conn;
    const msgpack_object *ok = relais_msg_get (reply, "ok");
    if (!(ok && ok->type == MSGPACK_OBJECT_BOOLEAN && ok->via.boolean)) {
        char code [32] = RELAIS_CODE_UNAVAILABLE;
        relais_msg_str_copy (relais_msg_get (reply, "code"), code, sizeof code);
        s_pending_release (self, p);
        if (conn && strcmp (code, RELAIS_CODE_UNAVAILABLE) != 0)
            s_fail (conn, 404, RELAIS_CODE_NOT_FOUND, "id", "no report has this id");
        else
        if (conn)
            s_fail (conn, 503, RELAIS_CODE_UNAVAILABLE, "", "the report cannot be checked now, retry");
        return;
    }
    //  The record comes under "record" (intake), or at the root (proto §9)
    const msgpack_object *record = relais_msg_get (reply, "record");
    const msgpack_object *source = relais_msg_get (relais_msg_get (record? record: reply, "signal"), "source");
    if (!relais_msg_str_eq (relais_msg_get (source, "kind"), p->owner->kind)
    ||  !relais_msg_str_eq (relais_msg_get (source, "name"), p->owner->name)) {
        relais_notice ("refused change of another source's report identity=%s", p->owner->identity);
        s_pending_release (self, p);
        if (conn)
            s_fail (conn, 403, RELAIS_CODE_UNAUTHORIZED, "id", "this report was sent by another source");
        return;
    }
    p->checking = false;
    p->deadline_ms = relais_clock_mono () / 1000 + self->request_ms;
    if (!conn || s_send_up (self, S_UP_INTAKE, &p->request)) {
        s_pending_release (self, p);
        if (conn)
            s_fail (conn, 503, RELAIS_CODE_UNAVAILABLE, "", "intake is not reachable, retry with the same Idempotency-Key");
    }
}

static void
s_on_up_reply (relais_poller_t *poller, zmsg_t **msg_p, void *arg)
{
    gateway_server_t *self = (gateway_server_t *) arg;
    zframe_t *frame = zmsg_last (*msg_p);
    relais_msg_t msg;
    relais_error_t err;
    if (!frame || relais_msg_decode (&msg, zframe_data (frame), zframe_size (frame),
                                     &s_reply_limits, &err))
        return;
    uint64_t rid = 0;
    if (relais_msg_uint (relais_msg_get (&msg.root, "rid"), &rid)) {
        s_pending_t *p = &self->pending [rid & 0xFFFF];
        if ((rid & 0xFFFF) < self->max_pending && p->rid == rid && p->checking) {
            s_check_owner (self, p, &msg.root);
            relais_msg_release (&msg);
            return;
        }
        if ((rid & 0xFFFF) < self->max_pending && p->rid == rid) {
            s_conn_t *conn = p->conn;
            char idem [S_IDEM_KEY_MAX + 1];
            bool has_idem = p->has_idem;
            snprintf (idem, sizeof idem, "%s", p->idem);
            s_pending_release (self, p);
            if (conn) {
                const msgpack_object *ok = relais_msg_get (&msg.root, "ok");
                bool success = ok && ok->type == MSGPACK_OBJECT_BOOLEAN && ok->via.boolean;
                char code [32] = "";
                relais_msg_str_copy (relais_msg_get (&msg.root, "code"), code, sizeof code);
                msgpack_sbuffer out;
                msgpack_sbuffer_init (&out);
                if (gateway_body_reply (&msg.root, has_idem? idem: NULL, &out) == 0) {
                    int status = success? 200: gateway_body_status (code);
                    if (!success)
                        s_count_error (self, code);
                    s_respond_json (conn, status, status == 503? "Retry-After: 1\r\n": NULL, &out);
                }
                else
                    s_fail (conn, 502, RELAIS_CODE_UNAVAILABLE, "", "the service's reply cannot be shown");
                msgpack_sbuffer_destroy (&out);
            }
        }
    }
    relais_msg_release (&msg);
}

//  ---------------------------------------------------------------------------
//  Handlers

static void
s_handle_submit (s_conn_t *conn, const char *id, gateway_body_kind_t kind)
{
    gateway_server_t *self = conn->server;
    const s_token_t *token = s_allow (conn, S_ROLE_PRODUCER);
    if (!token)
        return;
    if (conn->has_idem && (conn->idem_bad || !conn->idem [0]
                       ||  !relais_utf8_clean (conn->idem, strlen (conn->idem), false))) {
        s_fail (conn, 400, RELAIS_CODE_INVALID, "Idempotency-Key",
                "must be 1 to 96 bytes of printable text");
        return;
    }
    if (!self->up [S_UP_INTAKE]) {
        s_fail (conn, 503, RELAIS_CODE_UNAVAILABLE, "", "intake is not configured");
        return;
    }
    s_pending_t *p = s_pending_new (self, conn);
    if (!p) {
        s_fail (conn, 429, RELAIS_CODE_UNAVAILABLE, "", "too many requests in flight, retry");
        return;
    }
    //  Keys are per producer: one producer's key never meets another's
    char idem [RELAIS_FIELD_MAX + 64];
    if (conn->has_idem) {
        snprintf (idem, sizeof idem, "%s:%s", token->identity, conn->idem);
        snprintf (p->idem, sizeof p->idem, "%s", conn->idem);
        p->has_idem = true;
    }
    else {
        //  No key: a fresh one, so a retry is a new report (documented)
        uint8_t bytes [12];
        randombytes_buf (bytes, sizeof bytes);
        char hex [25];
        sodium_bin2hex (hex, sizeof hex, bytes, sizeof bytes);
        snprintf (idem, sizeof idem, "%s:gw-%s", token->identity, hex);
    }
    gateway_body_spec_t spec = {
        kind, idem, p->rid, id, token->kind, token->name
    };
    msgpack_sbuffer out;
    msgpack_sbuffer_init (&out);
    relais_error_t err;
    if (gateway_body_request (&spec, conn->body.data? conn->body.data: "", conn->body.size, &out, &err)) {
        s_pending_release (self, p);
        msgpack_sbuffer_destroy (&out);
        s_fail (conn, gateway_body_status (err.code), err.code, err.field, err.message);
        return;
    }
    int rc;
    if (kind == GATEWAY_SUBMIT)
        rc = s_send_up (self, S_UP_INTAKE, &out);
    else {
        //  A producer changes only its own reports: ask intake whose it is
        //  first (the source on record), then send the change
        p->owner = token;
        p->checking = true;
        msgpack_sbuffer_write (&p->request, out.data, out.size);
        msgpack_sbuffer get;
        msgpack_sbuffer_init (&get);
        msgpack_packer pk;
        msgpack_packer_init (&pk, &get, msgpack_sbuffer_write);
        msgpack_pack_map (&pk, 3);
        relais_pack_kv_str (&pk, "op", "signal.get");
        relais_pack_kv_str (&pk, "id", id);
        relais_pack_kv_uint (&pk, "rid", p->rid);
        rc = s_send_up (self, S_UP_RECORDS, &get);
        msgpack_sbuffer_destroy (&get);
    }
    if (rc) {
        s_pending_release (self, p);
        s_fail (conn, 503, RELAIS_CODE_UNAVAILABLE, "", "intake is not reachable, retry with the same Idempotency-Key");
    }
    msgpack_sbuffer_destroy (&out);
}

//  Percent-decode src (len bytes) into dst. Returns false when malformed.
static bool
s_unescape (const char *src, size_t len, char *dst, size_t size)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (n + 1 >= size)
            return false;
        char c = src [i];
        if (c == '+')
            c = ' ';
        else
        if (c == '%') {
            if (i + 2 >= len || !isxdigit ((unsigned char) src [i + 1]) || !isxdigit ((unsigned char) src [i + 2]))
                return false;
            char hex [3] = { src [i + 1], src [i + 2], 0 };
            c = (char) strtol (hex, NULL, 16);
            i += 2;
        }
        dst [n++] = c;
    }
    dst [n] = 0;
    return relais_utf8_clean (dst, n, false);
}

//  Walk "k=v&k=v"; calls fn for each pair. Returns 0, or -1 when a pair is
//  malformed (bad escape, control characters, too long).
typedef int (s_pair_fn) (const char *key, const char *value, void *arg);

static int
s_query_each (const char *query, size_t len, s_pair_fn *fn, void *arg)
{
    size_t i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && query [end] != '&')
            end++;
        if (end > i) {
            const char *eq = memchr (query + i, '=', end - i);
            size_t klen = eq? (size_t) (eq - (query + i)): end - i;
            char key [64], value [256];
            if (!s_unescape (query + i, klen, key, sizeof key)
            ||  !s_unescape (eq? eq + 1: query + end, eq? (size_t) (query + end - eq - 1): 0,
                             value, sizeof value))
                return -1;
            if (fn (key, value, arg))
                return -1;
        }
        i = end + 1;
    }
    return 0;
}

typedef struct {
    gateway_filter_t filter;
    uint64_t last;
    bool mine;
    const char *bad;
} s_events_args_t;

static int
s_events_pair (const char *key, const char *value, void *arg)
{
    s_events_args_t *a = (s_events_args_t *) arg;
    char *end;
    if (strcmp (key, "topic") == 0) {
        if (a->filter.topic_count == GATEWAY_TOPICS_MAX || strlen (value) >= 48)
            return a->bad = "topic", -1;
        snprintf (a->filter.topics [a->filter.topic_count++], 48, "%s", value);
    }
    else
    if (strcmp (key, "src") == 0) {
        if (strlen (value) >= sizeof a->filter.src)
            return a->bad = "src", -1;
        snprintf (a->filter.src, sizeof a->filter.src, "%s", value);
    }
    else
    if (strcmp (key, "arr") == 0) {
        unsigned long n = strtoul (value, &end, 10);
        if (*end || !*value || n < 1 || n > 20)
            return a->bad = "arr", -1;
        a->filter.arr = (unsigned) n;
    }
    else
    if (strcmp (key, "level") == 0) {
        if (strcmp (value, "1") && strcmp (value, "2"))
            return a->bad = "level", -1;
        a->filter.level = (unsigned) (value [0] - '0');
    }
    else
    if (strcmp (key, "mine") == 0) {
        if (strcmp (value, "1") && strcmp (value, "true"))
            return a->bad = "mine", -1;
        a->mine = true;
    }
    else
    if (strcmp (key, "last") == 0) {
        unsigned long long n = strtoull (value, &end, 10);
        if (*end || !*value || n < 1 || n > 1000000)
            return a->bad = "last", -1;
        a->last = n;
    }
    else
        return a->bad = "query", -1;
    return 0;
}

static int
s_sink_write (void *conn, const char *data, size_t size)
{
    return s_write ((s_conn_t *) conn, data, size);
}

static size_t
s_sink_backlog (void *conn)
{
    return ((s_conn_t *) conn)->backlog;
}

static void
s_handle_events (s_conn_t *conn, const char *query, size_t qlen)
{
    gateway_server_t *self = conn->server;
    const s_token_t *token = s_allow_reader (conn);
    if (!token)
        return;
    s_events_args_t args;
    memset (&args, 0, sizeof args);
    if (s_query_each (query, qlen, s_events_pair, &args)) {
        s_fail (conn, 400, RELAIS_CODE_INVALID, args.bad? args.bad: "query",
                "query parameters: topic (prefix, repeatable), src, arr (1-20), level (1|2), last (1-1000000), mine (1)");
        return;
    }
    if (args.mine && token->role != S_ROLE_PRODUCER) {
        s_fail (conn, 400, RELAIS_CODE_INVALID, "mine", "mine=1 is for a producer's token: its own reports");
        return;
    }
    //  A producer's stream is always its own reports' status changes only
    if (token->role == S_ROLE_PRODUCER)
        snprintf (args.filter.producer, sizeof args.filter.producer, "%s:%s", token->kind, token->name);
    if (conn->resume_bad) {
        s_fail (conn, 400, RELAIS_CODE_INVALID, "Last-Event-ID", "must be src:seq[,src:seq...]");
        return;
    }
    static const gateway_sink_t sink = { s_sink_write, s_sink_backlog };
    conn->sse = true;
    static const char head [] =
        "HTTP/1.1 200 OK\r\n"
        "Content-Type: text/event-stream; charset=utf-8\r\n"
        "Cache-Control: no-store\r\n"
        "X-Accel-Buffering: no\r\n"
        "Connection: keep-alive\r\n\r\n"
        "retry: 2000\n\n";
    if (conn->resume [0] && !gateway_stream_resume_ok (self->stream, conn->resume)) {
        conn->sse = false;
        s_fail (conn, 400, RELAIS_CODE_INVALID, "Last-Event-ID", "must be src:seq[,src:seq...]");
        return;
    }
    if (s_write (conn, head, sizeof head - 1))
        return;
    self->requests [200]++;
    conn->watch = gateway_stream_watch (self->stream, &args.filter,
                                        conn->resume [0]? conn->resume: NULL, args.last, &sink, conn);
    if (!conn->watch)
        s_conn_close (conn);
    uv_timer_stop (&conn->idle);        //  a live stream is not idle
}

typedef struct {
    json_t *request;
} s_forward_args_t;

static int
s_forward_pair (const char *key, const char *value, void *arg)
{
    json_t *request = ((s_forward_args_t *) arg)->request;
    if (!*key || strcmp (key, "op") == 0 || strcmp (key, "rid") == 0)
        return -1;
    json_t *v;
    size_t len = strlen (value);
    bool digits = len > 0 && len <= 18;
    for (size_t i = 0; i < len && digits; i++)
        digits = isdigit ((unsigned char) value [i]) != 0;
    if (digits)
        v = json_integer ((json_int_t) strtoll (value, NULL, 10));
    else
    if (strcmp (value, "true") == 0 || strcmp (value, "false") == 0)
        v = json_boolean (value [0] == 't');
    else
        v = json_string (value);
    json_t *have = json_object_get (request, key);
    if (json_is_array (have))
        json_array_append_new (have, v);
    else
    if (have) {
        json_t *list = json_array ();
        json_array_append (list, have);
        json_array_append_new (list, v);
        json_object_set_new (request, key, list);
    }
    else
        json_object_set_new (request, key, v);
    return 0;
}

//  GET /v1/<svc>[/<part>] -> {op: "<svc>.<verb>", id?, <query>} on <svc>/api
static void
s_handle_forward (s_conn_t *conn, s_up_t up, const char *part, const char *query, size_t qlen)
{
    gateway_server_t *self = conn->server;
    if (!s_allow (conn, S_ROLE_OPERATIONS))
        return;
    if (!self->up [up]) {
        char message [128];
        snprintf (message, sizeof message, "%s is not configured in this deployment", s_up_names [up]);
        s_fail (conn, 503, RELAIS_CODE_UNAVAILABLE, "", message);
        return;
    }
    char op [64];
    char id [RELAIS_FIELD_MAX];
    id [0] = 0;
    if (up == S_UP_ANALYTICS) {
        //  /v1/analytics/<verb>: the verb is a lower-case word
        size_t n = strlen (part);
        bool word = n > 0 && n < 32;
        for (size_t i = 0; i < n && word; i++)
            word = (part [i] >= 'a' && part [i] <= 'z') || part [i] == '_';
        if (!word) {
            s_fail (conn, 404, RELAIS_CODE_NOT_FOUND, "", "use /v1/analytics/<verb>, e.g. /v1/analytics/query");
            return;
        }
        snprintf (op, sizeof op, "analytics.%s", part);
    }
    else
    if (*part) {
        if (!s_unescape (part, strlen (part), id, sizeof id) || strchr (id, '/')) {
            s_fail (conn, 400, RELAIS_CODE_INVALID, "id", "must be one path segment of printable text");
            return;
        }
        snprintf (op, sizeof op, "%s.get", s_up_names [up]);
    }
    else
        snprintf (op, sizeof op, "%s.list", s_up_names [up]);
    s_forward_args_t args = { json_object () };
    if (s_query_each (query, qlen, s_forward_pair, &args)) {
        json_decref (args.request);
        s_fail (conn, 400, RELAIS_CODE_INVALID, "query", "query parameters must be printable key=value pairs (not op, rid)");
        return;
    }
    s_pending_t *p = s_pending_new (self, conn);
    if (!p) {
        json_decref (args.request);
        s_fail (conn, 429, RELAIS_CODE_UNAVAILABLE, "", "too many requests in flight, retry");
        return;
    }
    json_object_set_new (args.request, "op", json_string (op));
    json_object_set_new (args.request, "rid", json_integer ((json_int_t) (p->rid & INT64_MAX)));
    if (id [0])
        json_object_set_new (args.request, "id", json_string (id));
    msgpack_sbuffer out;
    msgpack_sbuffer_init (&out);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &out, msgpack_sbuffer_write);
    char why [64];
    int rc = cli_json_pack (&pk, args.request, why, sizeof why);
    json_decref (args.request);
    if (rc == 0)
        rc = s_send_up (self, up, &out);
    msgpack_sbuffer_destroy (&out);
    if (rc) {
        s_pending_release (self, p);
        s_fail (conn, 503, RELAIS_CODE_UNAVAILABLE, "", "the service is not reachable, retry");
    }
}

//  GET /v1/signalements/{id} -> {op:"feedback.status", id, producer?} on
//  feedback/api: a producer's token gets only its own reports (feedback
//  answers not_found for the others: 404, never the data)
static void
s_handle_report (s_conn_t *conn, const char *id, const char *query, size_t qlen)
{
    gateway_server_t *self = conn->server;
    const s_token_t *token = s_allow_reader (conn);
    if (!token)
        return;
    if (qlen) {
        s_fail (conn, 400, RELAIS_CODE_INVALID, "query", "this resource takes no query parameters");
        return;
    }
    if (!self->up [S_UP_FEEDBACK]) {
        s_fail (conn, 503, RELAIS_CODE_UNAVAILABLE, "", "feedback is not configured in this deployment");
        return;
    }
    s_pending_t *p = s_pending_new (self, conn);
    if (!p) {
        s_fail (conn, 429, RELAIS_CODE_UNAVAILABLE, "", "too many requests in flight, retry");
        return;
    }
    bool producer = token->role == S_ROLE_PRODUCER;
    msgpack_sbuffer out;
    msgpack_sbuffer_init (&out);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &out, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 3 + producer);
    relais_pack_kv_str (&pk, "op", "feedback.status");
    relais_pack_kv_str (&pk, "id", id);
    relais_pack_kv_uint (&pk, "rid", p->rid);
    if (producer) {
        char who [200];
        snprintf (who, sizeof who, "%s:%s", token->kind, token->name);
        relais_pack_kv_str (&pk, "producer", who);
    }
    int rc = s_send_up (self, S_UP_FEEDBACK, &out);
    msgpack_sbuffer_destroy (&out);
    if (rc) {
        s_pending_release (self, p);
        s_fail (conn, 503, RELAIS_CODE_UNAVAILABLE, "", "feedback is not reachable, retry");
    }
}

static void
s_handle_health (s_conn_t *conn)
{
    gateway_server_t *self = conn->server;
    char body [256];
    int n = snprintf (body, sizeof body,
                      "{\"ok\":true,\"connections\":%zu,\"sse_clients\":%zu,\"sources\":%zu,"
                      "\"following\":%zu,\"pending\":%zu}",
                      self->open, gateway_stream_watches (self->stream),
                      gateway_stream_sources (self->stream), gateway_stream_started (self->stream),
                      self->pending_count);
    s_respond (conn, 200, "application/json", NULL, body, (size_t) n);
}

static void
s_handle_metrics (s_conn_t *conn)
{
    gateway_server_t *self = conn->server;
    if (!s_allow (conn, S_ROLE_OPERATIONS))
        return;
    msgpack_sbuffer out;
    msgpack_sbuffer_init (&out);
    char line [256];
    int n;
#define S_PUT(...) do { n = snprintf (line, sizeof line, __VA_ARGS__); \
                        msgpack_sbuffer_write (&out, line, (size_t) n); } while (0)
    S_PUT ("# HELP relais_gateway_requests_total HTTP responses by status.\n");
    S_PUT ("# TYPE relais_gateway_requests_total counter\n");
    //  This response is counted once it is sent: count it here already
    self->requests [200]++;
    for (int s = 1; s < S_STATUS_SLOTS; s++)
        if (self->requests [s])
            S_PUT ("relais_gateway_requests_total{status=\"%d\"} %llu\n", s,
                   (unsigned long long) self->requests [s]);
    self->requests [200]--;
    S_PUT ("# HELP relais_gateway_errors_total Error replies by code.\n");
    S_PUT ("# TYPE relais_gateway_errors_total counter\n");
    for (int i = 0; i < S_CODES; i++)
        S_PUT ("relais_gateway_errors_total{code=\"%s\"} %llu\n", s_codes [i],
               (unsigned long long) self->errors [i]);
    S_PUT ("# HELP relais_gateway_sse_clients Open event streams.\n");
    S_PUT ("# TYPE relais_gateway_sse_clients gauge\n");
    S_PUT ("relais_gateway_sse_clients %zu\n", gateway_stream_watches (self->stream));
    S_PUT ("# HELP relais_gateway_connections Open HTTP connections.\n");
    S_PUT ("# TYPE relais_gateway_connections gauge\n");
    S_PUT ("relais_gateway_connections %zu\n", self->open);
    S_PUT ("# HELP relais_gateway_connections_refused_total Connections refused over the limit.\n");
    S_PUT ("# TYPE relais_gateway_connections_refused_total counter\n");
    S_PUT ("relais_gateway_connections_refused_total %llu\n", (unsigned long long) self->refused);
    S_PUT ("# HELP relais_gateway_pending Requests waiting for a service.\n");
    S_PUT ("# TYPE relais_gateway_pending gauge\n");
    S_PUT ("relais_gateway_pending %zu\n", self->pending_count);
#undef S_PUT
    gateway_stream_metrics (self->stream, &out);
    s_respond (conn, 200, "text/plain; version=0.0.4", NULL, out.data, out.size);
    msgpack_sbuffer_destroy (&out);
}

static const char *
s_content_type (const char *path)
{
    const char *dot = strrchr (path, '.');
    static const char *const types [][2] = {
        { ".html", "text/html; charset=utf-8" }, { ".css", "text/css; charset=utf-8" },
        { ".js", "text/javascript; charset=utf-8" }, { ".svg", "image/svg+xml" },
        { ".png", "image/png" }, { ".ico", "image/x-icon" }, { ".json", "application/json" }
    };
    for (size_t i = 0; dot && i < sizeof types / sizeof types [0]; i++)
        if (strcmp (dot, types [i][0]) == 0)
            return types [i][1];
    return "application/octet-stream";
}

static void
s_handle_static (s_conn_t *conn, const char *path)
{
    gateway_server_t *self = conn->server;
    if (strcmp (path, "/") == 0)
        path = "/index.html";
    //  Only plain names under the folder: no "..", no hidden files
    bool plain = path [0] == '/' && strlen (path) < 128;
    for (const char *p = path + 1; *p && plain; p++)
        plain = isalnum ((unsigned char) *p) || *p == '-' || *p == '_'
             || (*p == '.' && p [-1] != '/' && p [-1] != '.') || (*p == '/' && p [-1] != '/');
    char file [PATH_MAX];
    if (!plain || !self->static_dir
    ||  snprintf (file, sizeof file, "%s%s", self->static_dir, path) >= (int) sizeof file) {
        s_fail (conn, 404, RELAIS_CODE_NOT_FOUND, "", "no such page");
        return;
    }
    int fd = open (file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0 || fstat (fd, &st) || !S_ISREG (st.st_mode) || st.st_size > S_STATIC_MAX) {
        if (fd >= 0)
            close (fd);
        s_fail (conn, 404, RELAIS_CODE_NOT_FOUND, "", "no such page");
        return;
    }
    char *data = (char *) malloc ((size_t) st.st_size + 1);
    ssize_t got = data? read (fd, data, (size_t) st.st_size): -1;
    close (fd);
    if (got != st.st_size) {
        free (data);
        s_fail (conn, 503, RELAIS_CODE_UNAVAILABLE, "", "the page cannot be read");
        return;
    }
    s_respond (conn, 200, s_content_type (file),
               "Content-Security-Policy: default-src 'self'; connect-src 'self'; img-src 'self' data:\r\n"
               "X-Frame-Options: DENY\r\nReferrer-Policy: no-referrer\r\n",
               data, (size_t) got);
    free (data);
}

//  Route one complete request.
static void
s_handle (s_conn_t *conn)
{
    struct http_parser_url parts;
    http_parser_url_init (&parts);
    if (!conn->url || http_parser_parse_url (conn->url, conn->url_len, 0, &parts)
    ||  !(parts.field_set & (1 << UF_PATH))) {
        s_fail (conn, 400, RELAIS_CODE_INVALID, "url", "the request target must be a path");
        return;
    }
    char path [256];
    size_t plen = parts.field_data [UF_PATH].len;
    if (plen >= sizeof path) {
        s_fail (conn, 404, RELAIS_CODE_NOT_FOUND, "", "no such resource");
        return;
    }
    memcpy (path, conn->url + parts.field_data [UF_PATH].off, plen);
    path [plen] = 0;
    const char *query = "";
    size_t qlen = 0;
    if (parts.field_set & (1 << UF_QUERY)) {
        query = conn->url + parts.field_data [UF_QUERY].off;
        qlen = parts.field_data [UF_QUERY].len;
    }
    bool get = conn->parser.method == HTTP_GET;
    bool post = conn->parser.method == HTTP_POST;
    const char *rest;
    relais_debug ("request method=%s path=%s", http_method_str (conn->parser.method), path);

    if (strcmp (path, "/healthz") == 0) {
        if (get)
            s_handle_health (conn);
        else
            s_fail (conn, 405, RELAIS_CODE_UNKNOWN_OP, "", "use GET");
    }
    else
    if (strcmp (path, "/metrics") == 0) {
        if (get)
            s_handle_metrics (conn);
        else
            s_fail (conn, 405, RELAIS_CODE_UNKNOWN_OP, "", "use GET");
    }
    else
    if (strcmp (path, "/v1/signalements") == 0) {
        if (post)
            s_handle_submit (conn, NULL, GATEWAY_SUBMIT);
        else
            s_fail (conn, 405, RELAIS_CODE_UNKNOWN_OP, "", "use POST");
    }
    else
    if (strncmp (path, "/v1/signalements/", 17) == 0) {
        char id [64];
        const char *start = path + 17;
        const char *slash = strchr (start, '/');
        size_t n = slash? (size_t) (slash - start): strlen (start);
        bool close = slash && strcmp (slash, "/close") == 0;
        bool plain = n > 0;
        for (size_t k = 0; k < n && plain; k++)
            plain = isalnum ((unsigned char) start [k]) || start [k] == '-' || start [k] == '_';
        if (!plain || n >= sizeof id || (slash && !close)) {
            s_fail (conn, 404, RELAIS_CODE_NOT_FOUND, "", "use /v1/signalements/{id} or /v1/signalements/{id}/close");
            return;
        }
        memcpy (id, start, n);
        id [n] = 0;
        if (get && !slash)
            s_handle_report (conn, id, query, qlen);
        else
        if (!post)
            s_fail (conn, 405, RELAIS_CODE_UNKNOWN_OP, "", slash? "use POST": "use GET or POST");
        else
            s_handle_submit (conn, id, close? GATEWAY_CLOSE: GATEWAY_CHANGE);
    }
    else
    if (strcmp (path, "/v1/events") == 0) {
        if (get)
            s_handle_events (conn, query, qlen);
        else
            s_fail (conn, 405, RELAIS_CODE_UNKNOWN_OP, "", "use GET");
    }
    else
    if ((strncmp (path, "/v1/plans", 9) == 0 && (path [9] == 0 || path [9] == '/'))
    ||  (strncmp (path, "/v1/capacity", 12) == 0 && (path [12] == 0 || path [12] == '/'))
    ||  (strncmp (path, "/v1/analytics/", 14) == 0)) {
        s_up_t up = path [4] == 'p'? S_UP_PLANS: path [4] == 'c'? S_UP_CAPACITY: S_UP_ANALYTICS;
        rest = up == S_UP_PLANS? path + 9: up == S_UP_CAPACITY? path + 12: path + 13;
        if (*rest == '/')
            rest++;
        if (!get)
            s_fail (conn, 405, RELAIS_CODE_UNKNOWN_OP, "", "use GET");
        else
        if (strchr (rest, '/'))
            s_fail (conn, 404, RELAIS_CODE_NOT_FOUND, "", "no such resource");
        else
            s_handle_forward (conn, up, rest, query, qlen);
    }
    else
    if (strncmp (path, "/v1/", 4) == 0)
        s_fail (conn, 404, RELAIS_CODE_NOT_FOUND, "", "no such resource");
    else
    if (get)
        s_handle_static (conn, path);
    else
        s_fail (conn, 405, RELAIS_CODE_UNKNOWN_OP, "", "use GET");
}

//  ---------------------------------------------------------------------------
//  Connections

static void
s_request_reset (s_conn_t *conn)
{
    free (conn->url);
    conn->url = NULL;
    conn->url_len = 0;
    conn->header_bytes = 0;
    conn->field_len = 0;
    conn->in_value = false;
    conn->header = S_H_NONE;
    conn->auth [0] = conn->idem [0] = conn->resume [0] = 0;
    conn->has_idem = conn->idem_bad = conn->auth_bad = conn->resume_bad = false;
    msgpack_sbuffer_destroy (&conn->body);
    msgpack_sbuffer_init (&conn->body);
    conn->complete = false;
}

static void s_feed (s_conn_t *conn, const char *data, size_t size);
static void s_on_alloc (uv_handle_t *handle, size_t suggested, uv_buf_t *buf);
static void s_on_read (uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

//  The response is queued: parse what came after the request, if anything.
static void
s_next_request (s_conn_t *conn)
{
    s_request_reset (conn);
    http_parser_pause (&conn->parser, 0);
    uv_timer_again (&conn->idle);
    if (!conn->feeding && !conn->closing)
        uv_read_start ((uv_stream_t *) &conn->tcp, s_on_alloc, s_on_read);
    if (conn->leftover_len && !conn->feeding) {
        char *data = conn->leftover;
        size_t size = conn->leftover_len;
        conn->leftover = NULL;
        conn->leftover_len = 0;
        s_feed (conn, data, size);
        free (data);
    }
}

static void
s_keep_leftover (s_conn_t *conn, const char *data, size_t size)
{
    if (conn->leftover_len + size > conn->server->max_header + conn->server->max_body + S_READ_MAX) {
        s_conn_close (conn);            //  cannot happen with reads stopped while busy
        return;
    }
    char *more = (char *) realloc (conn->leftover, conn->leftover_len + size);
    if (!more) {
        s_conn_close (conn);
        return;
    }
    memcpy (more + conn->leftover_len, data, size);
    conn->leftover = more;
    conn->leftover_len += size;
}

//  Parse and handle requests in data, one at a time. Requests answered at
//  once (most of them) are followed by the next one in a loop, never by
//  recursion: a client that pipelines thousands of requests costs no stack.
static void
s_feed (s_conn_t *conn, const char *data, size_t size)
{
    if (conn->closing)
        return;
    if (conn->complete || conn->busy || conn->sse || conn->feeding) {
        if (!conn->sse)
            s_keep_leftover (conn, data, size);
        return;
    }
    conn->feeding = true;
    char *owned = NULL;
    while (true) {
        if (conn->backlog > S_BACKLOG_MAX) {
            s_conn_close (conn);        //  it sends requests but reads no answers
            break;
        }
        size_t done = http_parser_execute (&conn->parser, &s_settings, data, size);
        enum http_errno error = HTTP_PARSER_ERRNO (&conn->parser);
        if (conn->early) {
            s_fail (conn, conn->early, RELAIS_CODE_TOO_LARGE, "",
                    conn->early == 413? "the body is over the limit"
                                      : "the request line and headers are over the limit");
            break;
        }
        if (error != HPE_OK && error != HPE_PAUSED) {
            conn->early = 400;
            s_fail (conn, 400, RELAIS_CODE_INVALID, "", "malformed HTTP request");
            break;
        }
        if (done < size)
            s_keep_leftover (conn, data + done, size - done);
        if (conn->complete && !conn->closing) {
            uv_timer_stop (&conn->idle);
            s_handle (conn);
        }
        free (owned);
        owned = NULL;
        //  Answered at once: go on with what came after it
        if (conn->closing || conn->complete || conn->busy || conn->sse || !conn->leftover_len)
            break;
        owned = conn->leftover;
        data = owned;
        size = conn->leftover_len;
        conn->leftover = NULL;
        conn->leftover_len = 0;
    }
    free (owned);
    conn->feeding = false;
    //  While a service works on its request, TCP holds the client's next
    //  ones (backpressure), not our memory
    if (conn->busy && !conn->closing)
        uv_read_stop ((uv_stream_t *) &conn->tcp);
}

static void
s_on_alloc (uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    static char slab [S_READ_MAX];           //  one loop thread: read callbacks never overlap
    (void) handle;
    (void) suggested;
    *buf = uv_buf_init (slab, sizeof slab);
}

static void
s_on_read (uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    s_conn_t *conn = (s_conn_t *) stream->data;
    if (nread < 0) {
        s_conn_close (conn);
        return;
    }
    if (nread == 0)
        return;
    if (!conn->sse && !conn->busy && !conn->complete)
        uv_timer_again (&conn->idle);
    s_feed (conn, buf->base, (size_t) nread);
}

static void
s_on_idle (uv_timer_t *timer)
{
    s_conn_t *conn = (s_conn_t *) timer->data;
    if (conn->doomed) {
        s_conn_close (conn);
        return;
    }
    if (conn->sse || conn->busy || conn->closing)
        return;
    if (conn->header_bytes || conn->body.size) {
        conn->keep_alive = false;
        conn->early = 408;
        s_fail (conn, 408, RELAIS_CODE_INVALID, "", "the request did not arrive in time");
    }
    else
        s_conn_close (conn);
}

static void
s_on_conn_closed (uv_handle_t *handle)
{
    s_conn_t *conn = (s_conn_t *) handle->data;
    if (--conn->handles > 0)
        return;
    gateway_watch_destroy (&conn->watch);
    msgpack_sbuffer_destroy (&conn->body);
    free (conn->url);
    free (conn->leftover);
    free (conn);
}

static void
s_conn_close (s_conn_t *conn)
{
    if (conn->closing)
        return;
    conn->closing = true;
    gateway_server_t *self = conn->server;
    if (conn->slot >= 0)
        self->pending [conn->slot].conn = NULL;     //  the reply will find no one
    conn->slot = -1;
    gateway_watch_destroy (&conn->watch);  //  never called from inside the stream's walk
    zlistx_detach (self->conns, conn->handle);
    self->open--;
    uv_close ((uv_handle_t *) &conn->idle, s_on_conn_closed);
    uv_close ((uv_handle_t *) &conn->tcp, s_on_conn_closed);
}

static void
s_on_connection (uv_stream_t *listener, int status)
{
    gateway_server_t *self = (gateway_server_t *) listener->data;
    if (status < 0)
        return;
    s_conn_t *conn = (s_conn_t *) calloc (1, sizeof *conn);
    if (!conn)
        return;
    conn->server = self;
    conn->slot = -1;
    uv_tcp_init (self->loop, &conn->tcp);
    conn->tcp.data = conn;
    uv_timer_init (self->loop, &conn->idle);
    conn->idle.data = conn;
    conn->handles = 2;
    msgpack_sbuffer_init (&conn->body);
    http_parser_init (&conn->parser, HTTP_REQUEST);
    conn->parser.data = conn;
    conn->handle = zlistx_add_end (self->conns, conn);
    self->open++;
    if (uv_accept (listener, (uv_stream_t *) &conn->tcp)) {
        s_conn_close (conn);
        return;
    }
    self->accepted++;
    uv_tcp_nodelay (&conn->tcp, 1);
    if (self->open > self->max_connections || self->stopping) {
        self->refused++;
        conn->keep_alive = false;
        conn->early = 503;
        s_fail (conn, 503, RELAIS_CODE_UNAVAILABLE, "", "too many connections, retry");
        return;
    }
    uv_timer_start (&conn->idle, s_on_idle, self->idle_ms, self->idle_ms);
    uv_read_start ((uv_stream_t *) &conn->tcp, s_on_alloc, s_on_read);
}

//  Timeouts of requests to services, and keep-alive comments on streams.
static void
s_on_tick (uv_timer_t *timer)
{
    gateway_server_t *self = (gateway_server_t *) timer->data;
    uint64_t now = relais_clock_mono () / 1000;
    for (size_t i = 0; i < self->max_pending && self->pending_count; i++) {
        s_pending_t *p = &self->pending [i];
        if (p->rid && now >= p->deadline_ms) {
            s_conn_t *conn = p->conn;
            s_pending_release (self, p);
            if (conn)
                s_fail (conn, 503, RELAIS_CODE_UNAVAILABLE, "",
                        "the service did not answer in time, retry (with the same Idempotency-Key)");
        }
    }
    if (now - self->last_keepalive_ms >= self->keepalive_ms) {
        self->last_keepalive_ms = now;
        for (s_conn_t *c = (s_conn_t *) zlistx_first (self->conns); c;
             c = (s_conn_t *) zlistx_next (self->conns))
            if (c->sse && c->backlog == 0)
                s_write (c, ": keepalive\n\n", 13);
    }
}

//  ---------------------------------------------------------------------------
//  Life cycle

static void
s_stop (int signum, void *arg)
{
    gateway_server_t *self = (gateway_server_t *) arg;
    if (self->stopping)
        return;
    self->stopping = true;
    if (self->listening)
        uv_close ((uv_handle_t *) &self->listener, NULL);
    self->listening = false;
    if (self->timer_open)
        uv_close ((uv_handle_t *) &self->timer, NULL);
    self->timer_open = false;
    //  Watches go first, while the stream that lists them exists (a
    //  connection's close callback would come after the stream is gone)
    for (s_conn_t *c = (s_conn_t *) zlistx_first (self->conns); c;
         c = (s_conn_t *) zlistx_next (self->conns))
        gateway_watch_destroy (&c->watch);
    s_conn_t *conn;
    while ((conn = (s_conn_t *) zlistx_first (self->conns)))
        s_conn_close (conn);
    for (int i = 0; i < S_UP_COUNT; i++)
        relais_poller_close (&self->up [i]);
    gateway_stream_close (&self->stream);
    relais_signals_close (&self->signals);
}

gateway_server_t *
gateway_server_new (uv_loop_t *loop, relais_config_t *config)
{
    gateway_server_t *self = (gateway_server_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->loop = loop;
    self->config = config;
    const char *listen = relais_config_str (config, "gateway/listen");
    const char *colon = strrchr (listen, ':');
    snprintf (self->host, sizeof self->host, "%.*s", (int) (colon - listen), listen);
    self->port = atoi (colon + 1);
    self->static_dir = relais_config_path (config, "gateway/static");
    self->max_body = relais_config_size (config, "gateway/limits/max_body", 65536);
    self->max_header = relais_config_size (config, "gateway/limits/max_header", 8192);
    self->max_connections = (size_t) relais_config_int (config, "gateway/limits/max_connections", 256);
    self->max_pending = (size_t) relais_config_int (config, "gateway/limits/max_pending", 1024);
    if (self->max_pending > S_PENDING_MAX)
        self->max_pending = S_PENDING_MAX;
    if (self->max_pending == 0)
        self->max_pending = 1;
    self->idle_ms = relais_config_duration_ms (config, "gateway/limits/idle_timeout", 30000);
    self->request_ms = relais_config_duration_ms (config, "gateway/limits/request_timeout", 5000);
    self->keepalive_ms = relais_config_duration_ms (config, "gateway/sse/keepalive", 15000);
    if (self->idle_ms == 0)
        self->idle_ms = 30000;
    relais_config_children (config, "gateway/tokens", s_add_token, self);
    self->pending = (s_pending_t *) calloc (self->max_pending, sizeof (s_pending_t));
    self->conns = zlistx_new ();
    size_t ring = (size_t) relais_config_int (config, "gateway/sse/ring", 4096);
    self->stream = gateway_stream_new (loop, config, ring);
    if (self->token_error || !self->pending || !self->conns || !self->stream) {
        gateway_server_destroy (&self);
        return NULL;
    }
    return self;
}

int
gateway_server_start (gateway_server_t *self)
{
    for (int i = 0; i < S_UP_COUNT; i++) {
        char path [64];
        snprintf (path, sizeof path, "%s/%s", s_up_names [i], s_up_keys [i]);
        const char *endpoint = relais_config_str (self->config, path);
        if (!endpoint || !*endpoint)
            continue;                   //  that panel says "not configured"
        zsock_t *sock = relais_sock_new (ZMQ_DEALER, endpoint, RELAIS_SOCK_CONNECT, 4 << 20);
        if (sock) {
            zsock_set_sndhwm (sock, 100000);
            self->up [i] = relais_poller_new (self->loop, &sock, 0, s_on_up_reply, NULL, self);
        }
        if (!self->up [i]) {
            zsock_destroy (&sock);
            s_stop (0, self);
            return -1;
        }
    }
    struct sockaddr_storage addr;
    int rc = strchr (self->host, ':')? uv_ip6_addr (self->host, self->port, (struct sockaddr_in6 *) &addr)
                                     : uv_ip4_addr (self->host, self->port, (struct sockaddr_in *) &addr);
    if (rc == 0) {
        uv_tcp_init (self->loop, &self->listener);
        self->listener.data = self;
        self->listening = true;
        rc = uv_tcp_bind (&self->listener, (const struct sockaddr *) &addr, 0);
        if (rc == 0)
            rc = uv_listen ((uv_stream_t *) &self->listener, 511, s_on_connection);
    }
    if (rc) {
        relais_error ("listen failed address=%s:%d error=%s", self->host, self->port, uv_strerror (rc));
        s_stop (0, self);
        return rc;
    }
    uv_timer_init (self->loop, &self->timer);
    self->timer.data = self;
    self->timer_open = true;
    uv_timer_start (&self->timer, s_on_tick, 100, 100);
    self->signals = relais_signals_new (self->loop, s_stop, self);
    if (!self->signals || gateway_stream_start (self->stream)) {
        s_stop (0, self);
        return -1;
    }
    relais_notice ("listening address=%s:%d tokens=%zu sources=%zu", self->host, self->port,
                   self->token_count, gateway_stream_sources (self->stream));
    return 0;
}

void
gateway_server_destroy (gateway_server_t **self_p)
{
    gateway_server_t *self = *self_p;
    if (!self)
        return;
    gateway_stream_close (&self->stream);
    zlistx_destroy (&self->conns);
    free (self->pending);
    free (self->static_dir);
    sodium_memzero (self->tokens, sizeof self->tokens);
    free (self);
    *self_p = NULL;
}
