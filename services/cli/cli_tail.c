/*  =========================================================================
    cli_tail - `relais tail`: the bus, history then live, one line an event

    @header
    For each source (a publishing service of the deployment) tail connects
    the SUB socket first, then reads history through the fetch protocol,
    and only then prints live events. Live events that arrive meanwhile are
    queued; every event is printed only when its seq is exactly the next
    one after the last printed, so there is no gap and no duplicate at the
    seam: older ones are dropped, and a jump (a live event or a "$hb"
    beyond what was printed) makes tail fetch the missing range first.
    That seam is relais_follow (common/), shared with the gateway's
    Server-Sent Events; this file owns the sockets, the timing and the
    messages.
    The same loop survives a restart of the service: ZeroMQ reconnects,
    a silent source is reported on stderr, and when it speaks again tail
    fetches what it missed.
    @discuss
    cli_event_print (), shared with `relais fetch`, owns the line format.
    Everything printed from the bus goes through s_clean () (human lines)
    or cli_json (NDJSON), which escape control characters.
    =========================================================================
*/
#include "cli.h"
#include "cli_json.h"
#include "relais_clock.h"
#include "relais_envelope.h"
#include "relais_follow.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_SILENT_MS         3000
#define S_REQUEST_MS        2000
#define S_FETCH_MAX         1000

const char cli_tail_help [] =
    "usage: relais tail [FLAGS]\n"
    "\n"
    "Follow the events of the bus: optionally some history from the sources'\n"
    "logs, then live, with no gap and no duplicate in between. One line an\n"
    "event:\n"
    "\n"
    "  18:40:02 intake:42 signal.created  arr 18  L2 [campement,mineurs]  famille,enfant  persons 5 minors 2 tents 6  SIG-00000042\n"
    "\n"
    "local time, source:seq, type, arrondissement, level (with the reasons of\n"
    "a level 2), publics, counts, and the id. Colours only on a terminal.\n"
    "\n"
    "sources: every configured service with a PUB (intake now; router,\n"
    "plans, capacity, analytics when their sections exist in the config).\n"
    "\n"
    "where to start (default: live only, from now on):\n"
    "  --from SEQ       from that sequence of the source's log\n"
    "  --last N         the last N events of each source, then live\n"
    "  --since D        events of the last D (90s, 30m, 2h, 1d), then live\n"
    "filters:\n"
    "  --topic PREFIX   only event types starting with PREFIX (repeatable)\n"
    "  --src SERVICE    only this source\n"
    "  --arr N          only arrondissement N (1-20)\n"
    "  --level 1|2      only this level\n"
    "output and end:\n"
    "  --json           one JSON object a line (the envelope plus \"topic\")\n"
    "  --count N        exit after printing N events\n"
    "  --timeout D      exit after D (a number is seconds)\n"
    "\n"
    "If a source goes silent for 3 s, tail says so on stderr and waits; when\n"
    "it is back, tail fetches what it missed and says how many events.\n"
    "\n"
    "examples:\n"
    "  relais tail\n"
    "  relais tail --last 20 --level 2\n"
    "  relais tail --since 2h --arr 18 --topic signal.created\n"
    "  relais tail --from 1 --json --timeout 5 | jq .body.persons\n"
    "\n"
    "exit codes:\n"
    "  0  stopped by Ctrl-C, SIGTERM, --count or --timeout\n"
    "  1  a source could not be read (sockets, a log that refuses us)\n"
    "  2  usage error\n";

//  ---------------------------------------------------------------------------
//  The line format

typedef struct {
    char text [2048];
    size_t len;
    bool colour;
} s_line_t;

static void
s_add (s_line_t *line, const char *format, ...)
{
    if (line->len >= sizeof line->text - 1)
        return;
    va_list args;
    va_start (args, format);
    int n = vsnprintf (line->text + line->len, sizeof line->text - line->len, format, args);
    va_end (args);
    if (n > 0)
        line->len += (size_t) n;
    if (line->len > sizeof line->text - 1)
        line->len = sizeof line->text - 1;
}

static void
s_style (s_line_t *line, const char *sgr)
{
    if (line->colour)
        s_add (line, "\033[%sm", sgr);
}

//  Append text with every control character (C0, DEL, C1) made '?': the
//  codec refuses them already, but a terminal is no place to find out.
static void
s_clean (s_line_t *line, const char *text, size_t size)
{
    const unsigned char *p = (const unsigned char *) text;
    for (size_t i = 0; i < size && line->len < sizeof line->text - 4; i++) {
        unsigned char c = p [i];
        if (c < 0x20 || c == 0x7F)
            line->text [line->len++] = '?';
        else
        if (c == 0xC2 && i + 1 < size && p [i + 1] >= 0x80 && p [i + 1] <= 0x9F) {
            line->text [line->len++] = '?';
            i++;
        }
        else
            line->text [line->len++] = (char) c;
    }
    line->text [line->len] = 0;
}

static void
s_add_str (s_line_t *line, const msgpack_object *o)
{
    if (o && o->type == MSGPACK_OBJECT_STR)
        s_clean (line, o->via.str.ptr, o->via.str.size);
}

//  "a,b,c" from an array of str; returns false when absent or empty.
static bool
s_add_list (s_line_t *line, const msgpack_object *o)
{
    if (!o || o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size == 0)
        return false;
    bool first = true;
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        if (o->via.array.ptr [i].type != MSGPACK_OBJECT_STR)
            continue;
        if (!first)
            s_add (line, ",");
        first = false;
        s_add_str (line, &o->via.array.ptr [i]);
    }
    return !first;
}

static bool
s_get_uint (const msgpack_object *map, const char *key, uint64_t *value)
{
    return relais_msg_uint (relais_msg_get (map, key), value);
}

static uint64_t
s_arrondissement (const msgpack_object *body)
{
    uint64_t arr = 0;
    if (!s_get_uint (relais_msg_get (body, "place"), "arrondissement", &arr))
        s_get_uint (body, "arrondissement", &arr);
    return arr;
}

static bool
s_topic_match (const cli_filter_t *filter, const char *type)
{
    if (filter->topic_count == 0)
        return true;
    for (size_t i = 0; i < filter->topic_count; i++)
        if (strncmp (type, filter->topics [i], strlen (filter->topics [i])) == 0)
            return true;
    return false;
}

int
cli_event_print (cli_t *cli, const cli_filter_t *filter, const char *topic,
                 const msgpack_object *envelope)
{
    relais_envelope_t env;
    relais_error_t err;
    if (relais_envelope_decode (envelope, false, &env, &err))
        return -1;
    const char *type = topic && *topic? topic: env.type;
    const msgpack_object *body = env.body;
    uint64_t arr = s_arrondissement (body);
    uint64_t level = 0;
    s_get_uint (body, "level", &level);
    if (!s_topic_match (filter, type)
    ||  (filter->since_us && env.ts < filter->since_us)
    ||  (filter->arr && arr != filter->arr)
    ||  (filter->level && level != filter->level))
        return 0;

    if (filter->json) {
        //  The topic came off the wire: same treatment as any other text
        s_line_t topic_text = { .len = 0, .colour = false };
        topic_text.text [0] = 0;
        s_clean (&topic_text, type, strlen (type));
        cli_json_opts_t opts = { "topic", topic_text.text, NULL };
        char *text = cli_json_dumps (envelope, &opts);
        if (!text)
            return -1;
        puts (text);
        free (text);
        return 1;
    }
    s_line_t line = { .len = 0, .colour = cli->tty };
    line.text [0] = 0;
    time_t seconds = (time_t) (env.ts / 1000000);
    struct tm tm;
    if (localtime_r (&seconds, &tm))
        s_add (&line, "%02d:%02d:%02d ", tm.tm_hour, tm.tm_min, tm.tm_sec);
    else
        s_add (&line, "??:??:?? ");
    s_clean (&line, env.src, strlen (env.src));
    s_add (&line, ":%llu ", (unsigned long long) env.seq);
    s_style (&line, "36");
    size_t before = line.len;
    s_clean (&line, type, strlen (type));
    size_t width = line.len - before;
    s_style (&line, "0");
    s_add (&line, "%*s", width < 14? (int) (14 - width): 0, "");
    if (arr)
        s_add (&line, "  arr %2llu", (unsigned long long) arr);
    if (level) {
        s_add (&line, "  ");
        s_style (&line, level >= 2? "1;31": "32");
        s_add (&line, "L%llu", (unsigned long long) level);
        s_style (&line, "0");
        const msgpack_object *reasons = relais_msg_get (body, "reasons");
        if (reasons && reasons->type == MSGPACK_OBJECT_ARRAY && reasons->via.array.size) {
            s_add (&line, " [");
            s_add_list (&line, reasons);
            s_add (&line, "]");
        }
    }
    size_t mark = line.len;
    s_add (&line, "  ");
    if (!s_add_list (&line, relais_msg_get (body, "publics"))) {
        line.len = mark;
        line.text [mark] = 0;
    }
    //  Counts: persons always when known, the others when they matter
    static const char *const counts [] = { "persons", "minors", "pregnant", "tents", NULL };
    bool any = false;
    for (int i = 0; counts [i]; i++) {
        uint64_t n;
        if (s_get_uint (body, counts [i], &n) && (n > 0 || i == 0)) {
            s_add (&line, any? " %s %llu": "  %s %llu", counts [i], (unsigned long long) n);
            any = true;
        }
    }
    const msgpack_object *changed = relais_msg_get (body, "changed");
    if (changed && changed->type == MSGPACK_OBJECT_ARRAY && changed->via.array.size) {
        s_add (&line, "  changed ");
        s_add_list (&line, changed);
    }
    //  What matters in the other services' events, by name: a report's
    //  status for its producer, who it went to, why it escalated, a plan's
    //  state and outcome, free places
    static const char *const facts [] = {
        "status", "reason", "partner", "fallback", "cause", "state", "outcome", "kind",
        "structure", "action", "owner", "signal", NULL
    };
    for (int i = 0; facts [i]; i++) {
        const msgpack_object *value = relais_msg_get (body, facts [i]);
        uint64_t n;
        if (value && value->type == MSGPACK_OBJECT_STR && value->via.str.size) {
            s_add (&line, "  %s ", facts [i]);
            s_add_str (&line, value);
        }
        else
        if (value && relais_msg_uint (value, &n) && strcmp (facts [i], "action") == 0)
            s_add (&line, "  action %llu", (unsigned long long) n);
    }
    uint64_t free_places;
    if (strncmp (env.type, "capacity.", 9) == 0 && s_get_uint (body, "free", &free_places))
        s_add (&line, "  free %llu", (unsigned long long) free_places);
    s_add (&line, "  ");
    s_clean (&line, env.key, strlen (env.key));
    puts (line.text);
    return 1;
}

//  ---------------------------------------------------------------------------
//  Following sources

typedef enum { S_START_LIVE, S_START_FROM, S_START_LAST, S_START_SINCE } s_start_t;

typedef struct s_tail_t s_tail_t;

typedef struct {
    s_tail_t *tail;
    cli_source_t src;
    zsock_t *sub;
    zsock_t *dealer;
    relais_follow_t *follow;        //  the seam: history, then live, in order
    uint64_t rid;                   //  request in flight, 0: none
    int64_t sent_at;
    int64_t send_at;                //  next (re)send of the wanted request
    int64_t heard;                  //  last message on SUB (ms)
    bool silent;
    bool back;                      //  heard again: announce after catching up
    uint64_t silent_last;
} s_source_t;

struct s_tail_t {
    cli_t *cli;
    cli_filter_t filter;
    s_start_t start;
    uint64_t from;
    uint64_t last_n;
    uint64_t count;                 //  0: no limit
    uint64_t printed;
    int64_t deadline;               //  0: none
    uint64_t next_rid;
    bool stop;
    int rc;
    s_source_t sources [CLI_SOURCES_MAX];
    size_t source_count;
};

static void
s_request (s_tail_t *self, s_source_t *source, bool status, uint64_t from, int64_t now)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    uint64_t rid = ++self->next_rid;
    msgpack_pack_map (&pk, status? 2: 4);
    relais_pack_kv_str (&pk, "op", status? "status": "fetch");
    relais_pack_kv_uint (&pk, "rid", rid);
    if (!status) {
        relais_pack_kv_uint (&pk, "from", from);
        relais_pack_kv_uint (&pk, "max", S_FETCH_MAX);
    }
    if (cli_send (source->dealer, sbuf.data, sbuf.size) == 0) {
        source->rid = rid;
        source->sent_at = now;
    }
    else
        source->send_at = now + 100;
    msgpack_sbuffer_destroy (&sbuf);
}

//  Print one event and count it; stop when --count is reached. Called by
//  the follower, once per event, in sequence order.
static void
s_emit (relais_follow_t *follow, const char *topic, uint64_t seq,
        const msgpack_object *envelope, void *arg)
{
    s_tail_t *self = ((s_source_t *) arg)->tail;
    if (self->stop)
        return;
    int rc = cli_event_print (self->cli, &self->filter, topic, envelope);
    if (rc == 1 && self->count && ++self->printed >= self->count)
        self->stop = true;
}

static void
s_announce_back (s_source_t *source)
{
    if (source->back && relais_follow_caught_up (source->follow)) {
        uint64_t last = relais_follow_last (source->follow);
        fprintf (stderr, "tail: %s back, caught up %llu events\n", source->src.name,
                 (unsigned long long) (last > source->silent_last? last - source->silent_last: 0));
        source->back = false;
    }
}

static void
s_on_sub (s_tail_t *self, s_source_t *source, zframe_t *frame, const char *topic, int64_t now)
{
    if (!relais_follow_live (source->follow, topic, &frame))
        return;
    source->heard = now;
    if (source->silent) {
        source->silent = false;
        source->back = true;
    }
    s_announce_back (source);
}

static void
s_on_reply (s_tail_t *self, s_source_t *source, zframe_t *frame, int64_t now)
{
    relais_msg_t msg;
    relais_error_t err;
    if (relais_msg_decode (&msg, zframe_data (frame), zframe_size (frame),
                           &cli_reply_limits, &err)) {
        fprintf (stderr, "tail: %s: malformed reply: %s\n", source->src.name, err.message);
        return;
    }
    const msgpack_object *root = &msg.root;
    uint64_t rid = 0, last = 0;
    if (!relais_msg_uint (relais_msg_get (root, "rid"), &rid) || rid != source->rid) {
        relais_msg_release (&msg);
        return;                         //  the answer to an abandoned request
    }
    source->rid = 0;
    source->send_at = now;
    if (!relais_follow_started (source->follow)) {
        const msgpack_object *ok = relais_msg_get (root, "ok");
        if (!(ok && ok->type == MSGPACK_OBJECT_BOOLEAN && ok->via.boolean)) {
            fprintf (stderr, "tail: %s refused status\n", source->src.name);
            source->send_at = now + 1000;
        }
        else {
            relais_msg_uint (relais_msg_get (root, "last"), &last);
            uint64_t from = self->start == S_START_LAST && last > self->last_n? last - self->last_n
                          : self->start == S_START_LAST? 0: last;
            relais_follow_start (source->follow, from, from < last);
            //  History asked for (--last) is not "missed": count from here
            source->silent_last = last;
            s_announce_back (source);
        }
        relais_msg_release (&msg);
        return;
    }
    relais_follow_stats_t before, after;
    relais_follow_stats (source->follow, &before);
    int rc = relais_follow_fetched (source->follow, root);
    relais_follow_stats (source->follow, &after);
    if (rc == RELAIS_EGONE) {
        if (self->start == S_START_FROM)
            fprintf (stderr, "tail: %s: events before %llu are purged from the log\n",
                     source->src.name, (unsigned long long) relais_follow_last (source->follow) + 1);
    }
    else
    if (rc) {
        char code [32] = "?";
        relais_msg_str_copy (relais_msg_get (root, "code"), code, sizeof code);
        fprintf (stderr, "tail: %s refused fetch: %s\n", source->src.name, code);
        source->send_at = now + 1000;
    }
    else
    if (after.skipped > before.skipped)
        fprintf (stderr, "tail: %s: events %llu to %llu are not in the log\n",
                 source->src.name, (unsigned long long) after.skip_from,
                 (unsigned long long) after.skip_to);
    s_announce_back (source);
    relais_msg_release (&msg);
}

static void
s_step (s_tail_t *self, s_source_t *source, int64_t now)
{
    if (source->rid && now - source->sent_at > S_REQUEST_MS) {
        source->rid = 0;                //  lost with a restart: ask again
        source->send_at = now;
    }
    uint64_t from;
    if (!source->rid && now >= source->send_at) {
        if (!relais_follow_started (source->follow))
            s_request (self, source, true, 0, now);
        else
        if (relais_follow_fetching (source->follow, &from))
            s_request (self, source, false, from, now);
    }
    if (!source->silent && now - source->heard > S_SILENT_MS) {
        source->silent = true;
        source->back = false;
        source->silent_last = relais_follow_last (source->follow);
        fprintf (stderr, "tail: %s silent, waiting…\n", source->src.name);
    }
}

static bool
s_parse_ms (const char *text, int64_t *ms)
{
    char *end;
    double seconds = strtod (text, &end);
    if (end != text && *end == 0 && seconds > 0) {
        *ms = (int64_t) (seconds * 1000);
        return *ms > 0;
    }
    uint64_t value;
    if (relais_parse_duration_ms (text, &value) && value > 0) {
        *ms = (int64_t) value;
        return true;
    }
    return false;
}

static bool
s_parse_u64 (const char *text, uint64_t min, uint64_t max, uint64_t *value)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull (text, &end, 10);
    if (errno || end == text || *end || text [0] == '-' || n < min || n > max)
        return false;
    *value = n;
    return true;
}

int
cli_tail (cli_t *cli, int argc, char **argv)
{
    s_tail_t self;
    memset (&self, 0, sizeof self);
    self.cli = cli;
    self.start = S_START_LIVE;
    const char *only = NULL;
    int starts = 0;
    int64_t timeout_ms = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv [i];
        const char *value = i + 1 < argc? argv [i + 1]: NULL;
        uint64_t n;
        if (strcmp (arg, "--json") == 0) {
            self.filter.json = true;
            continue;
        }
        if (!value || arg [0] != '-') {
            fprintf (stderr, "tail: unexpected '%s' (see `relais help tail`)\n", arg);
            return CLI_USAGE;
        }
        i++;
        if (strcmp (arg, "--topic") == 0) {
            if (self.filter.topic_count == sizeof self.filter.topics / sizeof self.filter.topics [0]) {
                fprintf (stderr, "tail: at most 16 --topic\n");
                return CLI_USAGE;
            }
            self.filter.topics [self.filter.topic_count++] = value;
        }
        else
        if (strcmp (arg, "--src") == 0)
            only = value;
        else
        if (strcmp (arg, "--arr") == 0) {
            if (!s_parse_u64 (value, 1, 20, &n)) {
                fprintf (stderr, "tail: --arr wants an arrondissement, 1 to 20\n");
                return CLI_USAGE;
            }
            self.filter.arr = (unsigned) n;
        }
        else
        if (strcmp (arg, "--level") == 0) {
            if (!s_parse_u64 (value, 1, 2, &n)) {
                fprintf (stderr, "tail: --level wants 1 or 2\n");
                return CLI_USAGE;
            }
            self.filter.level = (unsigned) n;
        }
        else
        if (strcmp (arg, "--from") == 0) {
            if (!s_parse_u64 (value, 1, UINT64_MAX - 1, &self.from)) {
                fprintf (stderr, "tail: --from wants a sequence >= 1\n");
                return CLI_USAGE;
            }
            self.start = S_START_FROM;
            starts++;
        }
        else
        if (strcmp (arg, "--last") == 0) {
            if (!s_parse_u64 (value, 1, UINT64_MAX - 1, &self.last_n)) {
                fprintf (stderr, "tail: --last wants a count >= 1\n");
                return CLI_USAGE;
            }
            self.start = S_START_LAST;
            starts++;
        }
        else
        if (strcmp (arg, "--since") == 0) {
            int64_t ms;
            if (!s_parse_ms (value, &ms)) {
                fprintf (stderr, "tail: --since wants a duration (90s, 30m, 2h, 1d)\n");
                return CLI_USAGE;
            }
            //  For now --since reads the log from 1 and skips events older
            //  than now - D: simple and right, but slow on a long log. A
            //  time index in the log (op "seek") will make it direct.
            uint64_t now = relais_clock_now ();
            uint64_t back = (uint64_t) ms * 1000;
            self.filter.since_us = back < now? now - back: 1;
            self.start = S_START_SINCE;
            starts++;
        }
        else
        if (strcmp (arg, "--count") == 0) {
            if (!s_parse_u64 (value, 1, UINT64_MAX, &self.count)) {
                fprintf (stderr, "tail: --count wants a count >= 1\n");
                return CLI_USAGE;
            }
        }
        else
        if (strcmp (arg, "--timeout") == 0) {
            if (!s_parse_ms (value, &timeout_ms)) {
                fprintf (stderr, "tail: --timeout wants a duration (10, 10s, 2m)\n");
                return CLI_USAGE;
            }
        }
        else {
            fprintf (stderr, "tail: unknown flag '%s' (see `relais help tail`)\n", arg);
            return CLI_USAGE;
        }
    }
    if (starts > 1) {
        fprintf (stderr, "tail: choose one of --from, --last, --since\n");
        return CLI_USAGE;
    }
    cli_source_t sources [CLI_SOURCES_MAX];
    size_t count = cli_sources (cli, only, sources, CLI_SOURCES_MAX);
    if (count == 0) {
        fprintf (stderr, "tail: no source%s%s in %s\n", only? " named ": "", only? only: "",
                 *cli->config_path? cli->config_path: "the default configuration");
        return CLI_USAGE;
    }
    int64_t now = cli_now_ms ();
    if (timeout_ms)
        self.deadline = now + timeout_ms;
    self.rc = CLI_OK;
    zmq_pollitem_t items [2 * CLI_SOURCES_MAX];
    for (size_t i = 0; i < count; i++) {
        s_source_t *source = &self.sources [i];
        source->src = sources [i];
        //  SUB first: every event published from now on reaches us, so the
        //  history we fetch next meets the live stream with no hole
        source->tail = &self;
        source->sub = cli_sock_new (ZMQ_SUB, source->src.pub, 1 << 20);
        source->dealer = cli_sock_new (ZMQ_DEALER, source->src.fetch, 0);
        source->follow = relais_follow_new (source->src.name, s_emit, source);
        if (!source->sub || !source->dealer || !source->follow) {
            self.rc = CLI_FAILED;
            self.source_count = i + 1;
            goto done;
        }
        source->heard = now;
        if (self.start == S_START_FROM || self.start == S_START_SINCE)
            relais_follow_start (source->follow, self.start == S_START_FROM? self.from - 1: 0, true);
        items [2 * i] = (zmq_pollitem_t) { zsock_resolve (source->sub), 0, ZMQ_POLLIN, 0 };
        items [2 * i + 1] = (zmq_pollitem_t) { zsock_resolve (source->dealer), 0, ZMQ_POLLIN, 0 };
    }
    self.source_count = count;

    while (!self.stop && !cli_interrupted ()) {
        now = cli_now_ms ();
        if (self.deadline && now >= self.deadline)
            break;
        for (size_t i = 0; i < count && !self.stop; i++)
            s_step (&self, &self.sources [i], now);
        if (fflush (stdout) != 0)
            break;                      //  the reader went away (| head)
        if (self.stop)
            break;
        long wait = 100;
        if (self.deadline && self.deadline - now < wait)
            wait = (long) (self.deadline - now);
        zmq_poll (items, (int) (2 * count), wait < 0? 0: wait);
        now = cli_now_ms ();
        for (size_t i = 0; i < count && !self.stop; i++) {
            s_source_t *source = &self.sources [i];
            zframe_t *frame;
            char topic [RELAIS_TYPE_MAX];
            int budget = 10000;
            while (budget-- && cli_recv (source->sub, &frame, topic, sizeof topic) == 0)
                s_on_sub (&self, source, frame, topic, now);
            budget = 100;
            while (budget-- && !self.stop && cli_recv (source->dealer, &frame, NULL, 0) == 0) {
                s_on_reply (&self, source, frame, now);
                zframe_destroy (&frame);
            }
        }
    }
    fflush (stdout);
done:
    for (size_t i = 0; i < self.source_count; i++) {
        zsock_destroy (&self.sources [i].sub);
        zsock_destroy (&self.sources [i].dealer);
        relais_follow_destroy (&self.sources [i].follow);
    }
    return self.rc;
}
