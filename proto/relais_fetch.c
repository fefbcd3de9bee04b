/*  =========================================================================
    relais_fetch - a light reader of fetch replies (see relais_fetch.h)
    =========================================================================
*/
#include "relais_fetch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const uint8_t *cur;
    const uint8_t *end;
    size_t objects;
    size_t max_objects;
    int max_depth;
    relais_error_t *err;
} s_reader_t;

//  What one object's header says
typedef enum { S_SCALAR, S_UINT, S_BOOL, S_STR, S_ARRAY, S_MAP } s_kind_t;

typedef struct {
    s_kind_t kind;
    uint64_t n;                     //  S_UINT: the value; S_STR: its length;
                                    //  S_ARRAY, S_MAP: entries; S_BOOL: 0/1
} s_head_t;

static int
s_truncated (s_reader_t *r)
{
    return relais_error_set (r->err, RELAIS_CODE_INVALID, "",
                             "not MessagePack: truncated data");
}

static uint64_t
s_be (const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p [i];
    return v;
}

//  Read one object's header at cur, counting it against max_objects.
//  Scalars are consumed whole; for a str or bin the payload is checked to
//  fit and left at cur (S_STR; bin and ext are consumed as S_SCALAR); for a
//  container the count is checked against the bytes that remain.
static int
s_head (s_reader_t *r, s_head_t *h)
{
    if (++r->objects > r->max_objects)
        return relais_error_set (r->err, RELAIS_CODE_TOO_LARGE, "",
                                 "more than %zu objects", r->max_objects);
    if (r->cur >= r->end)
        return s_truncated (r);
    uint8_t b = *r->cur++;
    h->n = 0;
    if (b <= 0x7f) {
        h->kind = S_UINT;
        h->n = b;
        return 0;
    }
    if (b >= 0xe0 || b == 0xc0) {
        h->kind = S_SCALAR;
        return 0;
    }
    if (b == 0xc2 || b == 0xc3) {
        h->kind = S_BOOL;
        h->n = b == 0xc3;
        return 0;
    }
    int lenbytes = 0;               //  bytes of the length or count that follow
    uint64_t skip = 0;              //  payload bytes of a scalar
    if ((b & 0xe0) == 0xa0) {
        h->kind = S_STR;
        h->n = b & 0x1f;
    }
    else
    if ((b & 0xf0) == 0x90) {
        h->kind = S_ARRAY;
        h->n = b & 0x0f;
    }
    else
    if ((b & 0xf0) == 0x80) {
        h->kind = S_MAP;
        h->n = b & 0x0f;
    }
    else
    switch (b) {
        case 0xcc: case 0xcd: case 0xce: case 0xcf:
            lenbytes = 1 << (b - 0xcc);
            if (r->end - r->cur < lenbytes)
                return s_truncated (r);
            h->kind = S_UINT;
            h->n = s_be (r->cur, lenbytes);
            r->cur += lenbytes;
            return 0;
        case 0xd0: skip = 1; break;
        case 0xd1: skip = 2; break;
        case 0xca: case 0xd2: skip = 4; break;
        case 0xcb: case 0xd3: skip = 8; break;
        case 0xd4: skip = 2; break;     //  fixext 1 (+ its type byte)
        case 0xd5: skip = 3; break;
        case 0xd6: skip = 5; break;
        case 0xd7: skip = 9; break;
        case 0xd8: skip = 17; break;
        case 0xd9: h->kind = S_STR; lenbytes = 1; break;
        case 0xda: h->kind = S_STR; lenbytes = 2; break;
        case 0xdb: h->kind = S_STR; lenbytes = 4; break;
        case 0xc4: case 0xc7: h->kind = S_SCALAR; lenbytes = 1; break;  //  bin, ext
        case 0xc5: case 0xc8: h->kind = S_SCALAR; lenbytes = 2; break;
        case 0xc6: case 0xc9: h->kind = S_SCALAR; lenbytes = 4; break;
        case 0xdc: h->kind = S_ARRAY; lenbytes = 2; break;
        case 0xdd: h->kind = S_ARRAY; lenbytes = 4; break;
        case 0xde: h->kind = S_MAP; lenbytes = 2; break;
        case 0xdf: h->kind = S_MAP; lenbytes = 4; break;
        default:
            return relais_error_set (r->err, RELAIS_CODE_INVALID, "",
                                     "not MessagePack: reserved byte 0xc1");
    }
    if (skip) {
        if ((uint64_t) (r->end - r->cur) < skip)
            return s_truncated (r);
        r->cur += skip;
        h->kind = S_SCALAR;
        return 0;
    }
    if (lenbytes) {
        if (r->end - r->cur < lenbytes)
            return s_truncated (r);
        h->n = s_be (r->cur, lenbytes);
        r->cur += lenbytes;
    }
    uint64_t left = (uint64_t) (r->end - r->cur);
    if (h->kind == S_SCALAR) {
        //  bin or ext: the payload (and an ext's type byte) is skipped here
        uint64_t payload = h->n + ((b >= 0xc7 && b <= 0xc9)? 1: 0);
        if (payload > left)
            return s_truncated (r);
        r->cur += payload;
        return 0;
    }
    if (h->kind == S_STR) {
        if (h->n > left)
            return s_truncated (r);
        return 0;
    }
    //  Each entry takes at least one byte (a map's two): a count beyond
    //  what is left cannot be honest
    if (h->n > left || (h->kind == S_MAP && 2 * h->n > left))
        return relais_error_set (r->err, RELAIS_CODE_INVALID, "",
                                 "not MessagePack: count %llu exceeds the data",
                                 (unsigned long long) h->n);
    return 0;
}

//  Skip count whole objects at depth, without recursion: left [k] is what
//  remains to be read of the container open at depth + k (left [0]: of the
//  count). One-byte headers (fixint, nil, bool, fixstr, fixarray, fixmap),
//  numbers and str 8 take the fast path; every other header (str 16/32,
//  bin, ext, array and map 16/32, reserved) goes through s_head, which checks
//  lengths and counts against the bytes left. Every object counts against
//  max_objects, and no object may sit deeper than max_depth.
static int
s_skip_n (s_reader_t *r, int depth, uint64_t count)
{
    if (count == 0)
        return 0;
    if (depth > r->max_depth)
        return relais_error_set (r->err, RELAIS_CODE_TOO_LARGE, "",
                                 "nesting deeper than %d", r->max_depth);
    uint64_t left [32];
    int top = 0;
    left [0] = count;
    for (;;) {
        while (left [top] == 0) {
            if (top == 0)
                return 0;
            top--;
        }
        left [top]--;
        if (r->cur >= r->end)
            return s_truncated (r);
        uint8_t b = *r->cur;
        uint64_t items = 0;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3
        ||  (b & 0xe0) == 0xa0) {
            if (++r->objects > r->max_objects)
                return relais_error_set (r->err, RELAIS_CODE_TOO_LARGE, "",
                                         "more than %zu objects", r->max_objects);
            r->cur++;
            if ((b & 0xe0) == 0xa0) {
                size_t len = b & 0x1f;
                if ((size_t) (r->end - r->cur) < len)
                    return s_truncated (r);
                r->cur += len;
            }
            continue;
        }
        if ((b >= 0xca && b <= 0xd3) || b == 0xd9) {
            //  Numbers and str 8: a fixed size, or one length byte
            if (++r->objects > r->max_objects)
                return relais_error_set (r->err, RELAIS_CODE_TOO_LARGE, "",
                                         "more than %zu objects", r->max_objects);
            size_t size;
            if (b == 0xd9) {
                if (r->end - r->cur < 2)
                    return s_truncated (r);
                size = 2 + (size_t) r->cur [1];
            }
            else
                size = 1 + (b == 0xca? 4: b == 0xcb? 8: (size_t) 1 << ((b - 0xcc) & 3));
            if ((size_t) (r->end - r->cur) < size)
                return s_truncated (r);
            r->cur += size;
            continue;
        }
        if ((b & 0xf0) == 0x90 || (b & 0xf0) == 0x80) {
            if (++r->objects > r->max_objects)
                return relais_error_set (r->err, RELAIS_CODE_TOO_LARGE, "",
                                         "more than %zu objects", r->max_objects);
            r->cur++;
            items = (b & 0x0f) * ((b & 0xf0) == 0x80? 2u: 1u);
            if (items > (uint64_t) (r->end - r->cur))
                return relais_error_set (r->err, RELAIS_CODE_INVALID, "",
                                         "not MessagePack: count %llu exceeds the data",
                                         (unsigned long long) items);
        }
        else {
            s_head_t h;
            int rc = s_head (r, &h);
            if (rc)
                return rc;
            if (h.kind == S_STR)
                r->cur += h.n;          //  checked to fit by s_head
            if (h.kind != S_ARRAY && h.kind != S_MAP)
                continue;
            items = h.kind == S_MAP? 2 * h.n: h.n;
        }
        if (items == 0)
            continue;
        if (depth + top + 1 > r->max_depth)
            return relais_error_set (r->err, RELAIS_CODE_TOO_LARGE, "",
                                     "nesting deeper than %d", r->max_depth);
        left [++top] = items;
    }
}

//  Finish an object whose header h was just read at depth: a str's payload
//  is skipped, a container's entries walked at depth + 1
static int
s_rest (s_reader_t *r, const s_head_t *h, int depth)
{
    if (h->kind == S_STR) {
        r->cur += h->n;             //  checked to fit by s_head
        return 0;
    }
    if (h->kind == S_ARRAY || h->kind == S_MAP)
        return s_skip_n (r, depth + 1, h->kind == S_MAP? 2 * h->n: h->n);
    return 0;
}

//  Skip one whole object at depth
static int
s_skip (s_reader_t *r, int depth)
{
    return s_skip_n (r, depth, 1);
}

//  Read a map key at depth: *name and *len are set when it is a str
//  (name NULL otherwise); the key is consumed whole
static int
s_key (s_reader_t *r, int depth, const uint8_t **name, size_t *len)
{
    if (depth > r->max_depth)
        return relais_error_set (r->err, RELAIS_CODE_TOO_LARGE, "",
                                 "nesting deeper than %d", r->max_depth);
    s_head_t h;
    int rc = s_head (r, &h);
    if (rc)
        return rc;
    *name = h.kind == S_STR? r->cur: NULL;
    *len = h.kind == S_STR? (size_t) h.n: 0;
    return s_rest (r, &h, depth);
}

static bool
s_is (const uint8_t *name, size_t len, const char *text, size_t text_len)
{
    return name && len == text_len && memcmp (name, text, len) == 0;
}

//  One event of the array (at depth 2): a map whose "seq" is a positive
//  integer; its other entries are skipped
static int
s_event (s_reader_t *r, relais_fetch_event_t *event, size_t index)
{
    if (2 > r->max_depth)
        return relais_error_set (r->err, RELAIS_CODE_TOO_LARGE, "events",
                                 "nesting deeper than %d", r->max_depth);
    event->data = r->cur;
    s_head_t h;
    int rc = s_head (r, &h);
    if (rc)
        return rc;
    if (h.kind != S_MAP)
        return relais_error_set (r->err, RELAIS_CODE_INVALID, "",
                                 "events.%zu: not a map", index);
    bool seen = false;
    for (uint64_t i = 0; i < h.n; i++) {
        const uint8_t *name = NULL;
        size_t len = 0;
        if ((rc = s_key (r, 3, &name, &len)))
            return rc;
        if (!seen && s_is (name, len, "seq", 3)) {
            s_head_t value;
            if ((rc = s_head (r, &value)))
                return rc;
            if (value.kind != S_UINT || value.n == 0)
                return relais_error_set (r->err, RELAIS_CODE_INVALID, "",
                                         "events.%zu.seq: not an integer >= 1", index);
            event->seq = value.n;
            seen = true;
        }
        else
        if ((rc = s_skip (r, 3)))
            return rc;
        if (seen) {
            //  The rest of the envelope in one walk
            if ((rc = s_skip_n (r, 3, 2 * (h.n - i - 1))))
                return rc;
            break;
        }
    }
    if (!seen)
        return relais_error_set (r->err, RELAIS_CODE_INVALID, "",
                                 "events.%zu: no seq", index);
    event->size = (size_t) (r->cur - event->data);
    return 0;
}

//  The events array (at depth 1)
static int
s_events (s_reader_t *r, relais_fetch_page_t *page)
{
    s_head_t h;
    int rc = s_head (r, &h);
    if (rc)
        return rc;
    if (h.kind != S_ARRAY)
        return relais_error_set (r->err, RELAIS_CODE_INVALID, "events", "not an array");
    if (h.n > RELAIS_FETCH_MAX_EVENTS)
        return relais_error_set (r->err, RELAIS_CODE_TOO_LARGE, "events",
                                 "more than %d events", RELAIS_FETCH_MAX_EVENTS);
    if (h.n > page->alloc) {
        relais_fetch_event_t *events = (relais_fetch_event_t *)
            realloc (page->events, (size_t) h.n * sizeof *events);
        if (!events)
            return -ENOMEM;
        page->events = events;
        page->alloc = (size_t) h.n;
    }
    for (uint64_t i = 0; i < h.n; i++)
        if ((rc = s_event (r, &page->events [i], (size_t) i)))
            return rc;
    page->count = (size_t) h.n;
    return 0;
}

//  The reply's map (at depth 0)
static int
s_parse (s_reader_t *r, relais_fetch_page_t *page)
{
    s_head_t h;
    int rc = s_head (r, &h);
    if (rc)
        return rc;
    if (h.kind != S_MAP)
        return relais_error_set (r->err, RELAIS_CODE_INVALID, "", "a fetch reply is a map");
    bool has_ok = false, has_events = false;
    for (uint64_t i = 0; i < h.n; i++) {
        const uint8_t *name = NULL;
        size_t len = 0;
        if ((rc = s_key (r, 1, &name, &len)))
            return rc;
        if (s_is (name, len, "events", 6)) {
            if (has_events)
                return relais_error_set (r->err, RELAIS_CODE_INVALID, "events", "given twice");
            has_events = true;
            if ((rc = s_events (r, page)))
                return rc;
            continue;
        }
        bool is_ok = s_is (name, len, "ok", 2);
        bool is_first = s_is (name, len, "first", 5);
        bool is_last = s_is (name, len, "last", 4);
        bool is_code = s_is (name, len, "code", 4);
        bool is_rid = s_is (name, len, "rid", 3);
        if (!is_ok && !is_first && !is_last && !is_code && !is_rid) {
            if ((rc = s_skip (r, 1)))
                return rc;
            continue;
        }
        s_head_t value;
        if ((rc = s_head (r, &value)))
            return rc;
        if (is_ok) {
            if (value.kind != S_BOOL)
                return relais_error_set (r->err, RELAIS_CODE_INVALID, "ok", "not a bool");
            page->ok = value.n != 0;
            has_ok = true;
        }
        else
        if (is_rid) {
            //  Any type is echoed; only an integer is kept
            page->has_rid = value.kind == S_UINT;
            page->rid = page->has_rid? value.n: 0;
            if ((rc = s_rest (r, &value, 1)))
                return rc;
        }
        else
        if (is_first || is_last) {
            if (value.kind != S_UINT)
                return relais_error_set (r->err, RELAIS_CODE_INVALID, is_first? "first": "last",
                                         "not an integer >= 0");
            if (is_first) {
                page->first = value.n;
                page->has_first = true;
            }
            else {
                page->last = value.n;
                page->has_last = true;
            }
        }
        else {
            //  code: kept when it looks like one of ours (short, [a-z_]),
            //  so it can be printed as it is
            bool plain = value.kind == S_STR && value.n < sizeof page->code;
            for (uint64_t k = 0; plain && k < value.n; k++)
                plain = (r->cur [k] >= 'a' && r->cur [k] <= 'z') || r->cur [k] == '_';
            if (plain) {
                memcpy (page->code, r->cur, (size_t) value.n);
                page->code [value.n] = 0;
            }
            if ((rc = s_rest (r, &value, 1)))
                return rc;
        }
    }
    if (!has_ok)
        return relais_error_set (r->err, RELAIS_CODE_INVALID, "ok", "required");
    if (page->ok && !has_events)
        return relais_error_set (r->err, RELAIS_CODE_INVALID, "events", "required");
    return 0;
}

int
relais_fetch_parse (relais_fetch_page_t *page, const void *data, size_t size,
                    const relais_msg_limits_t *limits, relais_error_t *err)
{
    page->ok = page->has_first = page->has_last = page->has_rid = false;
    page->first = page->last = page->rid = 0;
    page->code [0] = 0;
    page->count = 0;
    size_t max_bytes = limits && limits->max_bytes? limits->max_bytes: RELAIS_FETCH_REPLY_MAX;
    int max_depth = limits && limits->max_depth? limits->max_depth: RELAIS_MSG_MAX_DEPTH;
    size_t max_objects = limits && limits->max_objects? limits->max_objects: size;
    if (max_depth > 30)
        max_depth = 30;             //  as relais_msg_decode: the same bound
    if (size > max_bytes)
        return relais_error_set (err, RELAIS_CODE_TOO_LARGE, "",
                                 "reply of %zu bytes is over the %zu-byte limit",
                                 size, max_bytes);
    if (size == 0)
        return relais_error_set (err, RELAIS_CODE_INVALID, "",
                                 "not MessagePack: empty frame");
    s_reader_t r = { (const uint8_t *) data, (const uint8_t *) data + size, 0,
                     max_objects, max_depth, err };
    int rc = s_parse (&r, page);
    if (rc == 0 && r.cur != r.end)
        rc = relais_error_set (err, RELAIS_CODE_INVALID, "",
                               "not MessagePack: %zu trailing bytes",
                               (size_t) (r.end - r.cur));
    if (rc) {
        page->count = 0;
        if (rc == -ENOMEM)
            relais_error_set (err, RELAIS_CODE_UNAVAILABLE, "", "out of memory");
    }
    return rc;
}

void
relais_fetch_page_release (relais_fetch_page_t *page)
{
    if (page) {
        free (page->events);
        memset (page, 0, sizeof *page);
    }
}
