/*  =========================================================================
    cli_fetch - `relais fetch`: dump a range of one service's event log

    @header
    Pages through the fetch protocol (PROTOCOL.md §2), one request at a
    time, printing each event in tail's line format or as NDJSON.
    =========================================================================
*/
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define S_TIMEOUT_MS    3000
#define S_PAGE          1000

const char cli_fetch_help [] =
    "usage: relais fetch [--src SERVICE] [--from SEQ] [--to SEQ] [--json]\n"
    "\n"
    "Print events from a service's log, in sequence order, in the format of\n"
    "`relais tail` (see `relais help tail`).\n"
    "\n"
    "flags:\n"
    "  --src SERVICE    intake (default), router, plans, capacity, analytics\n"
    "  --from SEQ       first sequence (default 1)\n"
    "  --to SEQ         last sequence, included (default: the end of the log)\n"
    "  --json           one JSON object a line (the envelope plus \"topic\")\n"
    "\n"
    "If the log no longer holds the start of the range (purged), fetch says so\n"
    "on stderr, prints what remains, and exits 1.\n"
    "\n"
    "examples:\n"
    "  relais fetch --from 1 --to 100\n"
    "  relais fetch --src intake --from 4200 --json | jq -c .body.place\n"
    "\n"
    "exit codes:\n"
    "  0  the range was printed\n"
    "  1  the service did not answer within 3 s, refused, or the range is\n"
    "     partly purged\n"
    "  2  usage error\n";

static bool
s_parse_seq (const char *text, uint64_t *value)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull (text, &end, 10);
    if (errno || end == text || *end || text [0] == '-' || n == 0)
        return false;
    *value = n;
    return true;
}

int
cli_fetch (cli_t *cli, int argc, char **argv)
{
    const char *name = "intake";
    uint64_t from = 1, to = 0;
    cli_filter_t filter;
    memset (&filter, 0, sizeof filter);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv [i];
        const char *value = i + 1 < argc? argv [i + 1]: NULL;
        if (strcmp (arg, "--json") == 0)
            filter.json = true;
        else
        if (strcmp (arg, "--src") == 0 && value) {
            name = value;
            i++;
        }
        else
        if (strcmp (arg, "--from") == 0 && value) {
            if (!s_parse_seq (value, &from)) {
                fprintf (stderr, "fetch: --from wants a sequence >= 1\n");
                return CLI_USAGE;
            }
            i++;
        }
        else
        if (strcmp (arg, "--to") == 0 && value) {
            if (!s_parse_seq (value, &to)) {
                fprintf (stderr, "fetch: --to wants a sequence >= 1\n");
                return CLI_USAGE;
            }
            i++;
        }
        else {
            fprintf (stderr, "fetch: unexpected '%s' (see `relais help fetch`)\n", arg);
            return CLI_USAGE;
        }
    }
    if (to && to < from) {
        fprintf (stderr, "fetch: --to %llu is before --from %llu\n",
                 (unsigned long long) to, (unsigned long long) from);
        return CLI_USAGE;
    }
    cli_source_t source;
    if (cli_sources (cli, name, &source, 1) == 0) {
        fprintf (stderr, "fetch: no service '%s' with a log in %s\n", name,
                 *cli->config_path? cli->config_path: "the default configuration");
        return CLI_USAGE;
    }
    zsock_t *dealer = cli_sock_new (ZMQ_DEALER, source.fetch, 0);
    if (!dealer)
        return CLI_FAILED;
    int rc = CLI_OK;
    uint64_t next = from, rid = 0;
    while (!cli_interrupted ()) {
        uint64_t max = S_PAGE;
        if (to && to - next + 1 < max)
            max = to - next + 1;
        msgpack_sbuffer sbuf;
        msgpack_sbuffer_init (&sbuf);
        msgpack_packer pk;
        msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
        msgpack_pack_map (&pk, 4);
        relais_pack_kv_str (&pk, "op", "fetch");
        relais_pack_kv_uint (&pk, "rid", ++rid);
        relais_pack_kv_uint (&pk, "from", next);
        relais_pack_kv_uint (&pk, "max", max);
        int sent = cli_send (dealer, sbuf.data, sbuf.size);
        msgpack_sbuffer_destroy (&sbuf);
        zframe_t *frame = NULL;
        relais_msg_t msg;
        int got = sent == 0? cli_wait_reply (dealer, rid, S_TIMEOUT_MS, &frame, &msg): -1;
        if (got != 0) {
            if (!cli_interrupted ())
                fprintf (stderr, "fetch: %s %s at %s\n", source.name,
                         got == -2? "sent a malformed reply": "did not answer within 3 s",
                         source.fetch);
            rc = CLI_FAILED;
            break;
        }
        const msgpack_object *root = &msg.root;
        const msgpack_object *ok = relais_msg_get (root, "ok");
        uint64_t last = 0, first = 0;
        relais_msg_uint (relais_msg_get (root, "last"), &last);
        relais_msg_uint (relais_msg_get (root, "first"), &first);
        bool done = false;
        if (!ok || ok->type != MSGPACK_OBJECT_BOOLEAN || !ok->via.boolean) {
            if (relais_msg_str_eq (relais_msg_get (root, "code"), RELAIS_CODE_GONE)
            &&  first > next && (!to || first <= to)) {
                fprintf (stderr, "fetch: %s: events %llu to %llu are purged from the log\n",
                         source.name, (unsigned long long) next, (unsigned long long) first - 1);
                next = first;
                rc = CLI_FAILED;
            }
            else {
                char code [32] = "?", message [256] = "";
                relais_msg_str_copy (relais_msg_get (root, "code"), code, sizeof code);
                relais_msg_str_copy (relais_msg_get (root, "message"), message, sizeof message);
                fprintf (stderr, "fetch: %s refused: %s %s\n", source.name, code, message);
                rc = CLI_FAILED;
                done = true;
            }
        }
        else {
            const msgpack_object *events = relais_msg_get (root, "events");
            uint32_t count = events && events->type == MSGPACK_OBJECT_ARRAY? events->via.array.size: 0;
            for (uint32_t i = 0; i < count; i++) {
                const msgpack_object *event = &events->via.array.ptr [i];
                uint64_t seq;
                if (!relais_msg_uint (relais_msg_get (event, "seq"), &seq) || seq < next)
                    continue;
                if (to && seq > to)
                    break;
                if (cli_event_print (cli, &filter, NULL, event) < 0)
                    fprintf (stderr, "fetch: %s:%llu is malformed, skipped\n", source.name,
                             (unsigned long long) seq);
                next = seq + 1;
            }
            if (count == 0 || next > last || (to && next > to))
                done = true;
        }
        relais_msg_release (&msg);
        zframe_destroy (&frame);
        if (fflush (stdout) != 0 || done)
            break;
    }
    zsock_destroy (&dealer);
    if (cli_interrupted ())
        rc = CLI_FAILED;
    return rc;
}
