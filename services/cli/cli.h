/*  =========================================================================
    cli - the `relais` command: shared declarations of its subcommands

    @header
    One binary, one file per subcommand (cli_<name>.c), each exposing
    `int cli_<name> (cli_t *cli, int argc, char **argv)` where argv[0] is the
    subcommand's name. Exit codes: 0 success, 1 the operation failed (a
    service down, a report refused, a timeout), 2 usage error (bad flags,
    unreadable input). cli_t carries what every subcommand needs: the
    deployment configuration (--config, $RELAIS_CONFIG, /etc/relais/relais.cfg)
    and whether stdout is a terminal.
    =========================================================================
*/
#ifndef CLI_H_INCLUDED
#define CLI_H_INCLUDED

#include <stdbool.h>
#include <stdio.h>
#include "relais_config.h"

#define CLI_OK      0
#define CLI_FAILED  1
#define CLI_USAGE   2

typedef struct {
    relais_config_t *config;        //  the deployment file, every known section declared
    const char *config_path;
    bool tty;                       //  stdout is a terminal (colours)
} cli_t;

typedef int (cli_fn) (cli_t *cli, int argc, char **argv);

typedef struct {
    const char *name;
    cli_fn *fn;
    const char *summary;            //  one line for `relais help`
    const char *help;               //  full text for `relais help NAME`
} cli_command_t;

int cli_submit (cli_t *cli, int argc, char **argv);
int cli_tail (cli_t *cli, int argc, char **argv);
int cli_fetch (cli_t *cli, int argc, char **argv);
int cli_status (cli_t *cli, int argc, char **argv);
int cli_simulate (cli_t *cli, int argc, char **argv);
int cli_config (cli_t *cli, int argc, char **argv);
int cli_backup (cli_t *cli, int argc, char **argv);
int cli_restore (cli_t *cli, int argc, char **argv);
int cli_keygen (cli_t *cli, int argc, char **argv);
int cli_audit (cli_t *cli, int argc, char **argv);
int cli_stats (cli_t *cli, int argc, char **argv);
int cli_report (cli_t *cli, int argc, char **argv);
int cli_route (cli_t *cli, int argc, char **argv);
int cli_plan (cli_t *cli, int argc, char **argv);
int cli_capacity (cli_t *cli, int argc, char **argv);
int cli_erase (cli_t *cli, int argc, char **argv);
int cli_purge (cli_t *cli, int argc, char **argv);
int cli_follow (cli_t *cli, int argc, char **argv);
//  relais status --report SIG-…: one report's timeline (cli_follow.c)
int cli_report_status (cli_t *cli, int argc, char **argv);

extern const char cli_submit_help [];
extern const char cli_tail_help [];
extern const char cli_fetch_help [];
extern const char cli_status_help [];
extern const char cli_simulate_help [];
extern const char cli_config_help [];
extern const char cli_backup_help [];
extern const char cli_restore_help [];
extern const char cli_keygen_help [];
extern const char cli_audit_help [];
extern const char cli_stats_help [];
extern const char cli_report_help [];
extern const char cli_route_help [];
extern const char cli_plan_help [];
extern const char cli_capacity_help [];
extern const char cli_erase_help [];
extern const char cli_purge_help [];
extern const char cli_follow_help [];


//  ---------------------------------------------------------------------------
//  Helpers shared by the subcommands (main.c, cli_tail.c)

#include <czmq.h>
#include "relais_msg.h"

#define CLI_SOURCES_MAX  8

//  A publishing service the CLI can read: its PUB and its fetch/status
//  ROUTER endpoints, from the deployment file.
typedef struct {
    const char *name;
    const char *pub;
    const char *fetch;
} cli_source_t;

//  Fill sources with the configured publishers among intake, router, plans,
//  capacity, analytics (those whose "<svc>/pub" and "<svc>/fetch" have a
//  value), keeping only the one named only when not NULL. Returns the count.
size_t
    cli_sources (cli_t *cli, const char *only, cli_source_t *sources, size_t max);

//  A client socket (ZMQ_DEALER or ZMQ_SUB, SUB subscribed to everything)
//  connected to endpoint: linger 0, no ZMQ_IMMEDIATE (a request waits in
//  the queue until the peer comes up; callers time out on their own).
//  max_msg: ZMQ_MAXMSGSIZE, 0 for none. Returns NULL after saying why.
zsock_t *
    cli_sock_new (int type, const char *endpoint, int64_t max_msg);

//  True once SIGINT or SIGTERM has arrived (main.c installs the handler).
bool
    cli_interrupted (void);

//  Monotonic milliseconds.
int64_t
    cli_now_ms (void);

//  Send one request (an encoded msgpack map) on a DEALER, REQ-style framing
//  (empty delimiter, then the data). Never blocks. Returns 0 or -1.
int
    cli_send (zsock_t *dealer, const void *data, size_t size);

//  Receive one message without blocking and return its last frame (the
//  data frame of a reply, or the envelope of an event) in *data_p, and the
//  first frame's text (the topic of an event) in topic when not NULL.
//  Returns 0, or -1 when nothing is waiting or the shape is wrong.
int
    cli_recv (zsock_t *sock, zframe_t **data_p, char *topic, size_t topic_size);

//  Wait up to timeout_ms (or until interrupted) for a reply on dealer whose
//  "rid" equals rid; decode it into msg with limits fit for fetch replies.
//  *frame_p keeps the bytes msg points into: destroy it after releasing msg.
//  Returns 0, -1 on timeout or interrupt, -2 when the reply is malformed.
int
    cli_wait_reply (zsock_t *dealer, uint64_t rid, int timeout_ms,
                    zframe_t **frame_p, relais_msg_t *msg);

//  Decode limits for replies and events from our own services.
extern const relais_msg_limits_t cli_reply_limits;

//  What tail and fetch print.
typedef struct {
    bool json;                      //  NDJSON instead of human lines
    const char *topics [16];        //  prefixes; none: every topic
    size_t topic_count;
    unsigned arr;                   //  0: any arrondissement
    unsigned level;                 //  0: any level
    uint64_t since_us;              //  skip events older (0: none)
} cli_filter_t;

//  Print one event (a decoded envelope map, topic as received; NULL uses
//  the envelope's type) on stdout if it passes filter. Returns 1 when
//  printed, 0 when filtered out, -1 when the envelope is malformed.
int
    cli_event_print (cli_t *cli, const cli_filter_t *filter, const char *topic,
                     const msgpack_object *envelope);

//  analytics' api endpoint: flag when not NULL, else analytics/api of the
//  configuration, else the default of the sample configuration.
const char *
    cli_analytics_endpoint (cli_t *cli, const char *flag);

//  Send one analytics request on dealer: request_body holds `pairs`
//  packed key/value pairs (no map header, no rid: a rid is added) and
//  wait for its reply (cli_wait_reply's contract and return codes).
int
    cli_analytics_call (zsock_t *dealer, const msgpack_sbuffer *request_body, uint32_t pairs,
                        zframe_t **frame_p, relais_msg_t *msg);

#endif
