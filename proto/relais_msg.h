/*  =========================================================================
    relais_msg - safe MessagePack decoding and small packing helpers

    @header
    The only door from network bytes to msgpack-c objects. msgpack-c 4.0
    allocates n x 24 bytes from an untrusted array/map header and reports
    excessive depth as NOMEM (PITFALLS.md), so relais_msg_decode () first
    walks the raw bytes: every count must fit in the bytes that remain,
    nesting is capped, the number of objects is capped, every str is valid
    UTF-8, and there must be no trailing bytes. Only then does msgpack-c
    unpack the frame, into a zone the caller owns.
    @discuss
    Strings in msgpack_object point into the input buffer or the zone and
    are not NUL-terminated: use relais_msg_str_copy () or relais_msg_str_eq ().
    =========================================================================
*/
#ifndef RELAIS_MSG_H_INCLUDED
#define RELAIS_MSG_H_INCLUDED

#include <msgpack.h>
#include <string.h>
#include "relais_err.h"

#define RELAIS_MSG_MAX_BYTES     65536   //  one frame (also ZMQ_MAXMSGSIZE)
#define RELAIS_MSG_MAX_DEPTH     8
#define RELAIS_MSG_MAX_OBJECTS   4096

typedef struct {
    size_t max_bytes;       //  0: RELAIS_MSG_MAX_BYTES
    int max_depth;          //  0: RELAIS_MSG_MAX_DEPTH
    size_t max_objects;     //  0: RELAIS_MSG_MAX_OBJECTS
} relais_msg_limits_t;

//  Decoded message: a zone that owns the objects, and the root object.
//  The input buffer must outlive it (strings may point into it).
typedef struct {
    msgpack_zone zone;
    msgpack_object root;
    bool ready;
    bool kept;              //  the zone is allocated (ready, or kept empty)
} relais_msg_t;

//  Validate data against limits (NULL: defaults), then unpack it into msg.
//  Returns 0; RELAIS_ETOOLARGE (size, count or depth over a limit) or
//  RELAIS_EMALFORMED (not MessagePack, truncated, bad UTF-8, trailing bytes),
//  with err filled. On error msg needs no release.
int
    relais_msg_decode (relais_msg_t *msg, const void *data, size_t size,
                       const relais_msg_limits_t *limits, relais_error_t *err);

//  Release the zone of a decoded message. Safe on a failed or zeroed msg.
void
    relais_msg_release (relais_msg_t *msg);

//  For a msg reused from message to message (a server's pooled request):
//  relais_msg_redecode decodes as relais_msg_decode does, same walk and
//  limits, but into the zone msg kept (no malloc once warm). msg must be
//  zeroed before its first use; relais_msg_clear drops a decoded message's
//  objects and keeps the zone's memory; relais_msg_release frees it all.
int
    relais_msg_redecode (relais_msg_t *msg, const void *data, size_t size,
                         const relais_msg_limits_t *limits, relais_error_t *err);
void
    relais_msg_clear (relais_msg_t *msg);

//  Return the value under key in a map object, or NULL (not a map, absent).
const msgpack_object *
    relais_msg_get (const msgpack_object *map, const char *key);

//  True when o is a str equal to text.
bool
    relais_msg_str_eq (const msgpack_object *o, const char *text);

//  Copy a str object into buf (NUL-terminated). Returns its length, or -1
//  when o is not a str or does not fit in size - 1 bytes.
int
    relais_msg_str_copy (const msgpack_object *o, char *buf, size_t size);

//  True when o is a non-negative integer; stores it in *value.
bool
    relais_msg_uint (const msgpack_object *o, uint64_t *value);

//  True when bytes are valid UTF-8 with no control characters other than
//  \t, \n, \r (when allow_newlines) - so they are safe in a terminal.
bool
    relais_utf8_clean (const char *bytes, size_t size, bool allow_newlines);

//  msgpack_sbuffer_write, for the packers of the hot paths: a packer writes
//  one small piece at a time (a 1-byte header, a key, an integer), and the
//  copy of a piece of up to 16 bytes is done here with fixed-size moves
//  instead of a call to memcpy. Growth (rare) is msgpack's own.
int
    relais_sbuffer_write_slow (void *data, const char *buf, size_t len);

static inline int
relais_sbuffer_write (void *data, const char *buf, size_t len)
{
    msgpack_sbuffer *sbuf = (msgpack_sbuffer *) data;
    //  The rare case out of line, so that this one saves no registers
    if (__builtin_expect (sbuf->alloc - sbuf->size < len || !buf || !sbuf->data, 0))
        return relais_sbuffer_write_slow (data, buf, len);
    char *dst = sbuf->data + sbuf->size;
    sbuf->size += len;                  //  first: nothing to keep across memcpy
    if (len > 16)
        memcpy (dst, buf, len);
    else
    if (len >= 8) {
        //  Two 8-byte moves that overlap cover 8 to 16 bytes
        uint64_t head, tail;
        memcpy (&head, buf, 8);
        memcpy (&tail, buf + len - 8, 8);
        memcpy (dst, &head, 8);
        memcpy (dst + len - 8, &tail, 8);
    }
    else
    if (len >= 4) {
        uint32_t head, tail;
        memcpy (&head, buf, 4);
        memcpy (&tail, buf + len - 4, 4);
        memcpy (dst, &head, 4);
        memcpy (dst + len - 4, &tail, 4);
    }
    else
    if (len > 0) {
        dst [0] = buf [0];
        dst [len / 2] = buf [len / 2];
        dst [len - 1] = buf [len - 1];
    }
    return 0;
}

//  Packing helpers over msgpack_packer. Inline: most keys are literals,
//  whose strlen the compiler folds, and they run for every packed field.
static inline void
relais_pack_strn (msgpack_packer *pk, const char *text, size_t size)
{
    msgpack_pack_str (pk, size);
    msgpack_pack_str_body (pk, text, size);
}

static inline void
relais_pack_str (msgpack_packer *pk, const char *text)
{
    relais_pack_strn (pk, text, strlen (text));
}

static inline void
relais_pack_kv_str (msgpack_packer *pk, const char *key, const char *text)
{
    relais_pack_str (pk, key);
    relais_pack_str (pk, text);
}

static inline void
relais_pack_kv_uint (msgpack_packer *pk, const char *key, uint64_t value)
{
    relais_pack_str (pk, key);
    msgpack_pack_uint64 (pk, value);
}

static inline void
relais_pack_kv_bool (msgpack_packer *pk, const char *key, bool value)
{
    relais_pack_str (pk, key);
    if (value)
        msgpack_pack_true (pk);
    else
        msgpack_pack_false (pk);
}
//  Append already-encoded msgpack bytes as one object.
void relais_pack_raw (msgpack_packer *pk, const void *bytes, size_t size);

//  Pack an error reply {ok:false, code, field?, message, idem?, rid?}.
//  idem and rid are copied from the request when given (may be NULL).
void
    relais_pack_error (msgpack_packer *pk, const relais_error_t *err,
                       const msgpack_object *idem, const msgpack_object *rid);

//  Pack an arbitrary msgpack object (deep copy of o).
void
    relais_pack_object (msgpack_packer *pk, const msgpack_object *o);

#endif
