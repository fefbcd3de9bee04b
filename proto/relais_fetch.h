/*  =========================================================================
    relais_fetch - a light reader of fetch replies (proto/README §4)

    @header
    A replay client needs, of each event of a fetch reply, only its bytes
    and its seq; relais_msg_decode would build a msgpack object tree of
    every envelope first. relais_fetch_parse () walks the reply's raw bytes
    once, bounded as the pre-walk of relais_msg_decode is (depth, every
    count and size against the bytes that remain, the number of objects, no
    trailing bytes), and fills a page: ok, first, last, code, and for each
    event of the "events" array the span of its bytes and its seq. Nothing
    reaches msgpack-c's unpacker; nothing is allocated per event (the page's
    array of spans grows once and is reused).
    @discuss
    The walker checks the structure of the whole reply and the type of each
    event's seq, not the contents of strings (UTF-8) nor the rest of each
    envelope's schema: an event's bytes must still go through
    relais_msg_decode () and relais_envelope_decode () before anything reads
    more of it than its seq. The caller checks the seqs (contiguous, in
    order): the reader only reports them.
    =========================================================================
*/
#ifndef RELAIS_FETCH_H_INCLUDED
#define RELAIS_FETCH_H_INCLUDED

#include "relais_msg.h"

//  Protocol limits of one fetch reply (proto/README §4)
#define RELAIS_FETCH_MAX_DEFAULT      1000              //  events, when max is absent
#define RELAIS_FETCH_MAX_EVENTS       10000             //  the most max may ask
#define RELAIS_FETCH_BYTES_DEFAULT    (1024 * 1024)     //  byte budget, when max_bytes is absent
#define RELAIS_FETCH_BYTES_MAX        (8 * 1024 * 1024) //  the most max_bytes may ask
//  The largest reply to a client that asks RELAIS_FETCH_BYTES_MAX: the
//  budget, or one event over it (the first event is always sent; a live
//  event is at most 4 x RELAIS_MSG_MAX_BYTES), and the map around the events
//  (an echoed rid is at most one request frame)
#define RELAIS_FETCH_REPLY_MAX        (RELAIS_FETCH_BYTES_MAX + 5 * RELAIS_MSG_MAX_BYTES)

//  One event of a fetch reply: the bytes of its envelope map, in the reply
typedef struct {
    const uint8_t *data;
    size_t size;
    uint64_t seq;
} relais_fetch_event_t;

//  One parsed reply. Zero it before the first parse; release it with
//  relais_fetch_page_release (). Spans point into the parsed bytes, which
//  must outlive their use.
typedef struct {
    bool ok;                        //  the reply's ok
    bool has_first, has_last;
    uint64_t first, last;
    bool has_rid;                   //  the reply echoes an integer rid
    uint64_t rid;
    char code [32];                 //  the error code when !ok ("" if none)
    relais_fetch_event_t *events;   //  count spans, in the reply's order
    size_t count;
    size_t alloc;                   //  spans allocated (grown, never shrunk)
} relais_fetch_page_t;

//  Parse one fetch reply into page. limits (NULL: size RELAIS_FETCH_REPLY_MAX,
//  depth RELAIS_MSG_MAX_DEPTH, objects = the size in bytes) bound the walk;
//  the events array may hold at most RELAIS_FETCH_MAX_EVENTS entries. Every
//  event must be a map with a "seq" key whose value is a positive integer.
//  Returns 0; RELAIS_ETOOLARGE (a limit) or RELAIS_EMALFORMED (not
//  MessagePack, truncated, trailing bytes, not a map, ok missing or not a
//  bool, events not an array, an event without its seq), with err filled
//  (its message names a bad event as "events.<i>" or "events.<i>.seq");
//  -ENOMEM.
//  On error the page's count is 0.
int
    relais_fetch_parse (relais_fetch_page_t *page, const void *data, size_t size,
                        const relais_msg_limits_t *limits, relais_error_t *err);

//  Free the page's spans. Safe on a zeroed page; leaves it zeroed.
void
    relais_fetch_page_release (relais_fetch_page_t *page);

#endif
