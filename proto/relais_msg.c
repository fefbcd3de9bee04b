/*  =========================================================================
    relais_msg - safe MessagePack decoding and small packing helpers
    =========================================================================
*/
#include "relais_msg.h"

#include <string.h>

typedef struct {
    const uint8_t *cur;
    const uint8_t *end;
    size_t objects;
    const relais_msg_limits_t *limits;
    relais_error_t *err;
} s_walker_t;

static int
s_need (s_walker_t *w, size_t n)
{
    if ((size_t) (w->end - w->cur) < n)
        return relais_error_set (w->err, RELAIS_CODE_INVALID, "",
                                 "not MessagePack: truncated data");
    return 0;
}

static uint64_t
s_be (const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p [i];
    return v;
}

//  Walk one object at cur; containers recurse up to max_depth.
static int
s_walk (s_walker_t *w, int depth)
{
    if (depth > w->limits->max_depth)
        return relais_error_set (w->err, RELAIS_CODE_TOO_LARGE, "",
                                 "nesting deeper than %d", w->limits->max_depth);
    if (++w->objects > w->limits->max_objects)
        return relais_error_set (w->err, RELAIS_CODE_TOO_LARGE, "",
                                 "more than %zu objects", w->limits->max_objects);
    int rc = s_need (w, 1);
    if (rc)
        return rc;
    uint8_t b = *w->cur++;
    uint64_t len = 0;        //  payload bytes to skip
    uint64_t items = 0;      //  children to walk (maps count twice)
    bool is_str = false;

    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
        return 0;                                   //  fixint, nil, bool
    if ((b & 0xe0) == 0xa0) { len = b & 0x1f; is_str = true; }
    else
    if ((b & 0xf0) == 0x90)   items = b & 0x0f;
    else
    if ((b & 0xf0) == 0x80)   items = 2 * (uint64_t) (b & 0x0f);
    else {
        int lenbytes = 0;
        switch (b) {
            case 0xcc: case 0xd0: len = 1; break;
            case 0xcd: case 0xd1: len = 2; break;
            case 0xca: case 0xce: case 0xd2: len = 4; break;
            case 0xcb: case 0xcf: case 0xd3: len = 8; break;
            case 0xd4: len = 2; break;              //  fixext 1 (+type)
            case 0xd5: len = 3; break;
            case 0xd6: len = 5; break;
            case 0xd7: len = 9; break;
            case 0xd8: len = 17; break;
            case 0xd9: lenbytes = 1; is_str = true; break;
            case 0xda: lenbytes = 2; is_str = true; break;
            case 0xdb: lenbytes = 4; is_str = true; break;
            case 0xc4: lenbytes = 1; break;         //  bin
            case 0xc5: lenbytes = 2; break;
            case 0xc6: lenbytes = 4; break;
            case 0xc7: lenbytes = 1; break;         //  ext (+1 type byte)
            case 0xc8: lenbytes = 2; break;
            case 0xc9: lenbytes = 4; break;
            case 0xdc: lenbytes = 2; break;         //  array 16/32
            case 0xdd: lenbytes = 4; break;
            case 0xde: lenbytes = 2; break;         //  map 16/32
            case 0xdf: lenbytes = 4; break;
            default:
                return relais_error_set (w->err, RELAIS_CODE_INVALID, "",
                                         "not MessagePack: reserved byte 0xc1");
        }
        if (lenbytes) {
            rc = s_need (w, lenbytes);
            if (rc)
                return rc;
            uint64_t n = s_be (w->cur, lenbytes);
            w->cur += lenbytes;
            if (b == 0xdc || b == 0xdd)
                items = n;
            else
            if (b == 0xde || b == 0xdf)
                items = 2 * n;
            else
                len = n + ((b >= 0xc7 && b <= 0xc9)? 1: 0);
        }
    }
    if (items) {
        //  Each child takes at least one byte: a count larger than what is
        //  left cannot be honest, and must not reach msgpack-c's allocator.
        if (items > (uint64_t) (w->end - w->cur))
            return relais_error_set (w->err, RELAIS_CODE_INVALID, "",
                                     "not MessagePack: count %llu exceeds the data",
                                     (unsigned long long) items);
        if (items > w->limits->max_objects)
            return relais_error_set (w->err, RELAIS_CODE_TOO_LARGE, "",
                                     "more than %zu objects", w->limits->max_objects);
        for (uint64_t i = 0; i < items; i++) {
            rc = s_walk (w, depth + 1);
            if (rc)
                return rc;
        }
        return 0;
    }
    if (len > (uint64_t) (w->end - w->cur))
        return relais_error_set (w->err, RELAIS_CODE_INVALID, "",
                                 "not MessagePack: truncated data");
    if (is_str && !relais_utf8_clean ((const char *) w->cur, len, true)) {
        //  Newlines are allowed here; fields that must be single-line are
        //  checked again by their schema.
        return relais_error_set (w->err, RELAIS_CODE_INVALID, "",
                                 "text is not valid UTF-8 or holds control characters");
    }
    w->cur += len;
    return 0;
}

static int
s_decode (relais_msg_t *msg, const void *data, size_t size,
          const relais_msg_limits_t *limits, relais_error_t *err);

int
relais_msg_decode (relais_msg_t *msg, const void *data, size_t size,
                   const relais_msg_limits_t *limits, relais_error_t *err)
{
    memset (msg, 0, sizeof *msg);
    return s_decode (msg, data, size, limits, err);
}

int
relais_msg_redecode (relais_msg_t *msg, const void *data, size_t size,
                     const relais_msg_limits_t *limits, relais_error_t *err)
{
    relais_msg_clear (msg);
    return s_decode (msg, data, size, limits, err);
}

void
relais_msg_clear (relais_msg_t *msg)
{
    if (msg->ready) {
        //  msgpack keeps the zone's first chunk: the next message's objects
        //  go there without a malloc
        msgpack_zone_clear (&msg->zone);
        msg->ready = false;
        msg->kept = true;
    }
    msg->root.type = MSGPACK_OBJECT_NIL;
}

//  The walk with limits, then the unpack into msg's zone (msg->kept: the
//  zone is there, empty; else a new one)
static int
s_decode (relais_msg_t *msg, const void *data, size_t size,
          const relais_msg_limits_t *limits, relais_error_t *err)
{
    relais_msg_limits_t lim = { RELAIS_MSG_MAX_BYTES, RELAIS_MSG_MAX_DEPTH,
                                RELAIS_MSG_MAX_OBJECTS };
    if (limits) {
        if (limits->max_bytes)   lim.max_bytes = limits->max_bytes;
        if (limits->max_depth)   lim.max_depth = limits->max_depth;
        if (limits->max_objects) lim.max_objects = limits->max_objects;
    }
    if (lim.max_depth > 30)
        lim.max_depth = 30;             //  msgpack-c's own stack is 32 deep
    if (size > lim.max_bytes)
        return relais_error_set (err, RELAIS_CODE_TOO_LARGE, "",
                                 "message of %zu bytes is over the %zu-byte limit",
                                 size, lim.max_bytes);
    if (size == 0)
        return relais_error_set (err, RELAIS_CODE_INVALID, "",
                                 "not MessagePack: empty frame");
    s_walker_t w = { data, (const uint8_t *) data + size, 0, &lim, err };
    int rc = s_walk (&w, 0);
    if (rc)
        return rc;
    if (w.cur != w.end)
        return relais_error_set (err, RELAIS_CODE_INVALID, "",
                                 "not MessagePack: %zu trailing bytes",
                                 (size_t) (w.end - w.cur));
    if (!msg->kept && !msgpack_zone_init (&msg->zone, 2048))
        return relais_error_set (err, RELAIS_CODE_UNAVAILABLE, "", "out of memory");
    msg->kept = true;
    size_t off = 0;
    msgpack_unpack_return ret = msgpack_unpack (data, size, &off, &msg->zone, &msg->root);
    if (ret != MSGPACK_UNPACK_SUCCESS || off != size) {
        msgpack_zone_destroy (&msg->zone);
        msg->kept = false;
        msg->root.type = MSGPACK_OBJECT_NIL;
        return relais_error_set (err, RELAIS_CODE_INVALID, "",
                                 "not MessagePack (unpack status %d)", (int) ret);
    }
    msg->ready = true;
    return 0;
}

void
relais_msg_release (relais_msg_t *msg)
{
    if (msg && (msg->ready || msg->kept)) {
        msgpack_zone_destroy (&msg->zone);
        msg->ready = false;
        msg->kept = false;
    }
}

const msgpack_object *
relais_msg_get (const msgpack_object *map, const char *key)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    size_t klen = strlen (key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr [i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == klen
        &&  memcmp (k->via.str.ptr, key, klen) == 0)
            return &map->via.map.ptr [i].val;
    }
    return NULL;
}

bool
relais_msg_str_eq (const msgpack_object *o, const char *text)
{
    size_t len = strlen (text);
    return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == len
        && memcmp (o->via.str.ptr, text, len) == 0;
}

int
relais_msg_str_copy (const msgpack_object *o, char *buf, size_t size)
{
    if (!o || o->type != MSGPACK_OBJECT_STR || o->via.str.size >= size)
        return -1;
    memcpy (buf, o->via.str.ptr, o->via.str.size);
    buf [o->via.str.size] = 0;
    return (int) o->via.str.size;
}

bool
relais_msg_uint (const msgpack_object *o, uint64_t *value)
{
    if (!o || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return false;
    *value = o->via.u64;
    return true;
}

//  True when the 8 (4) bytes of w are all printable ASCII, 0x20..0x7e
static inline bool
s_printable8 (uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    uint64_t x7f = w ^ (0x7f * ones);
    return ((w | ((w - 0x20 * ones) & ~w) | ((x7f - ones) & ~x7f)) & highs) == 0;
}

static inline bool
s_printable4 (uint32_t w)
{
    const uint32_t ones = 0x01010101U, highs = 0x80808080U;
    uint32_t x7f = w ^ (0x7f * ones);
    return ((w | ((w - 0x20 * ones) & ~w) | ((x7f - ones) & ~x7f)) & highs) == 0;
}

bool
relais_utf8_clean (const char *bytes, size_t size, bool allow_newlines)
{
    const uint8_t *p = (const uint8_t *) bytes;
    const uint8_t *end = p + size;
    while (p < end) {
        //  Fast path, 8 bytes at a time: plain printable ASCII (0x20..0x7e)
        //  is most of every report; any other byte goes the slow way below
        while (end - p >= 8) {
            uint64_t w;
            memcpy (&w, p, 8);
            if (!s_printable8 (w))
                break;
            p += 8;
        }
        if (p >= end)
            break;
        //  A short rest (most keys are shorter than 8 bytes): the last 8
        //  bytes of the text, or two 4-byte words that overlap, all printable
        //  means the rest is too
        size_t left = (size_t) (end - p);
        if (left < 8) {
            uint64_t w8;
            uint32_t head, tail;
            if (size >= 8) {
                memcpy (&w8, end - 8, 8);
                if (s_printable8 (w8))
                    break;
            }
            else
            if (left >= 4) {
                memcpy (&head, p, 4);
                memcpy (&tail, end - 4, 4);
                if (s_printable4 (head) && s_printable4 (tail))
                    break;
            }
        }
        uint8_t c = *p;
        if (c < 0x80) {
            if (c == 0x7f)
                return false;
            if (c < 0x20) {
                if (!allow_newlines || (c != '\n' && c != '\t' && c != '\r'))
                    return false;
            }
            p++;
            continue;
        }
        int n;
        uint32_t cp;
        if ((c & 0xe0) == 0xc0)      { n = 1; cp = c & 0x1f; }
        else if ((c & 0xf0) == 0xe0) { n = 2; cp = c & 0x0f; }
        else if ((c & 0xf8) == 0xf0) { n = 3; cp = c & 0x07; }
        else
            return false;
        if (end - p <= n)
            return false;
        for (int i = 1; i <= n; i++) {
            if ((p [i] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p [i] & 0x3f);
        }
        //  Overlong forms, surrogates, beyond Unicode, and C1 controls
        //  (0x80-0x9f: terminal escape introducers) are refused.
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800)
        ||  (n == 3 && cp < 0x10000) || cp > 0x10ffff
        ||  (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f))
            return false;
        p += n + 1;
    }
    return true;
}

//  relais_sbuffer_write's growth: msgpack's own
__attribute__ ((noinline)) int
relais_sbuffer_write_slow (void *data, const char *buf, size_t len)
{
    if (len == 0)
        return 0;                       //  nothing (msgpack's would offset NULL)
    return msgpack_sbuffer_write (data, buf, len);
}

void
relais_pack_raw (msgpack_packer *pk, const void *bytes, size_t size)
{
    pk->callback (pk->data, bytes, size);
}

void
relais_pack_error (msgpack_packer *pk, const relais_error_t *err,
                   const msgpack_object *idem, const msgpack_object *rid)
{
    bool with_field = err->field [0] != 0;
    bool with_idem = idem && idem->type == MSGPACK_OBJECT_STR;
    bool with_rid = rid != NULL;
    msgpack_pack_map (pk, 3 + with_field + with_idem + with_rid);
    relais_pack_kv_bool (pk, "ok", false);
    relais_pack_kv_str (pk, "code", err->code? err->code: RELAIS_CODE_INVALID);
    if (with_field)
        relais_pack_kv_str (pk, "field", err->field);
    relais_pack_kv_str (pk, "message", err->message);
    if (with_idem) {
        relais_pack_str (pk, "idem");
        relais_pack_object (pk, idem);
    }
    if (with_rid) {
        relais_pack_str (pk, "rid");
        relais_pack_object (pk, rid);
    }
}

void
relais_pack_object (msgpack_packer *pk, const msgpack_object *o)
{
    msgpack_pack_object (pk, *o);
}
