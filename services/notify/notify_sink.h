/*  =========================================================================
    notify_sink - where a partner's notifier hands its deliveries, and the
    durable record of what it handled

    @header
    A sink takes one delivery as one line of JSON and says whether it took
    it. stdout: NDJSON on standard output (flushed). file:PATH: appended to
    PATH, fsync'd before the notifier acknowledges. exec:CMD: CMD runs under
    /bin/sh with the line on its stdin; success is exit status 0.
    webhook:URL: the line is POSTed (application/json) with libcurl, http
    and https only; success is a 2xx status within the timeout.
    The state file holds the last mseq the notifier handled, written
    atomically (temporary file, fsync, rename, fsync of the folder), so a
    restart neither skips nor repeats what was acknowledged.
    @discuss
    Exactly-once at the sink needs the sink's own record: the file sink
    reads the mseq of its last line at start, so a crash between the append
    and the state write repeats nothing. stdout and exec are at least once
    in that window (a crash after the sink, before the state write).
    =========================================================================
*/
#ifndef NOTIFY_SINK_H_INCLUDED
#define NOTIFY_SINK_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct notify_sink_t notify_sink_t;

//  Parse a sink spec (stdout, file:PATH, exec:CMD, webhook:URL). Returns NULL with why
//  filled when the spec is not one of these or the file cannot be opened.
notify_sink_t *
    notify_sink_new (const char *spec, char *why, size_t size);

//  Webhook: the timeout of one POST, connection included (default 10 s).
void
    notify_sink_set_timeout (notify_sink_t *self, long timeout_ms);

void
    notify_sink_destroy (notify_sink_t **self_p);

//  Hand one delivery (a JSON line without newline) to the sink. Returns 0
//  when the sink took it, -1 otherwise (the delivery must be retried).
int
    notify_sink_put (notify_sink_t *self, uint64_t mseq, const char *line, size_t size);

//  Make what was put durable (file: fsync). Returns 0 or -1.
int
    notify_sink_flush (notify_sink_t *self);

//  The highest mseq the sink itself holds (file: the last complete line's
//  "mseq"), 0 when it cannot tell.
uint64_t
    notify_sink_last (notify_sink_t *self);

//  Read the state file: the last handled mseq, 0 when absent. Returns 0,
//  or -1 when the file exists but is unreadable or damaged.
int
    notify_state_read (const char *path, uint64_t *mseq);

//  Write the state file atomically and durably. Returns 0 or -1.
int
    notify_state_write (const char *path, uint64_t mseq);

#endif
