/*  =========================================================================
    relais_envelope - the event envelope of PROTOCOL.md §1
    =========================================================================
*/
#include "relais_envelope.h"

#include <string.h>

void
relais_envelope_pack (msgpack_sbuffer *sbuf, const char *src, uint64_t seq,
                      uint64_t ts, const char *type, const char *key,
                      const char *corr, const void *body, size_t body_size)
{
    msgpack_packer pk;
    msgpack_packer_init (&pk, sbuf, relais_sbuffer_write);
    bool heartbeat = body == NULL;
    bool with_corr = !heartbeat && corr && *corr;
    msgpack_pack_map (&pk, heartbeat? 4: 7 + with_corr);
    relais_pack_kv_uint (&pk, "v", RELAIS_ENVELOPE_VERSION);
    relais_pack_kv_str (&pk, "src", src);
    relais_pack_kv_uint (&pk, "seq", seq);
    relais_pack_kv_uint (&pk, "ts", ts);
    if (heartbeat)
        return;
    relais_pack_kv_str (&pk, "type", type);
    relais_pack_kv_str (&pk, "key", key);
    if (with_corr)
        relais_pack_kv_str (&pk, "corr", corr);
    relais_pack_str (&pk, "body");
    relais_pack_raw (&pk, body, body_size);
}

static int
s_copy_str (const msgpack_object *map, const char *key, char *buf, size_t size,
            bool required, relais_error_t *err)
{
    const msgpack_object *o = relais_msg_get (map, key);
    buf [0] = 0;
    if (!o) {
        if (required)
            return relais_error_set (err, RELAIS_CODE_INVALID, key, "required");
        return 0;
    }
    if (o->type != MSGPACK_OBJECT_STR)
        return relais_error_set (err, RELAIS_CODE_INVALID, key, "must be a string");
    if (relais_msg_str_copy (o, buf, size) < 0)
        return relais_error_set (err, RELAIS_CODE_TOO_LARGE, key,
                                 "longer than %zu bytes", size - 1);
    if (!relais_utf8_clean (buf, strlen (buf), false) || strlen (buf) != o->via.str.size)
        return relais_error_set (err, RELAIS_CODE_INVALID, key, "holds control characters");
    return 0;
}

static int
s_get_uint (const msgpack_object *map, const char *key, uint64_t *value,
            relais_error_t *err)
{
    const msgpack_object *o = relais_msg_get (map, key);
    if (!o)
        return relais_error_set (err, RELAIS_CODE_INVALID, key, "required");
    if (!relais_msg_uint (o, value))
        return relais_error_set (err, RELAIS_CODE_INVALID, key,
                                 "must be an unsigned integer");
    return 0;
}

int
relais_envelope_decode (const msgpack_object *map, bool heartbeat,
                        relais_envelope_t *env, relais_error_t *err)
{
    memset (env, 0, sizeof *env);
    if (!map || map->type != MSGPACK_OBJECT_MAP)
        return relais_error_set (err, RELAIS_CODE_INVALID, "", "envelope must be a map");
    int rc;
    if ((rc = s_get_uint (map, "v", &env->v, err))
    ||  (rc = s_copy_str (map, "src", env->src, sizeof env->src, true, err))
    ||  (rc = s_get_uint (map, "seq", &env->seq, err))
    ||  (rc = s_get_uint (map, "ts", &env->ts, err)))
        return rc;
    if (env->v != RELAIS_ENVELOPE_VERSION)
        return relais_error_set (err, RELAIS_CODE_INVALID, "v",
                                 "envelope version %llu is not supported",
                                 (unsigned long long) env->v);
    if (heartbeat)
        return 0;
    if (env->seq == 0)
        return relais_error_set (err, RELAIS_CODE_INVALID, "seq", "must be >= 1");
    if ((rc = s_copy_str (map, "type", env->type, sizeof env->type, true, err))
    ||  (rc = s_copy_str (map, "key", env->key, sizeof env->key, true, err))
    ||  (rc = s_copy_str (map, "corr", env->corr, sizeof env->corr, false, err)))
        return rc;
    env->body = relais_msg_get (map, "body");
    if (!env->body)
        return relais_error_set (err, RELAIS_CODE_INVALID, "body", "required");
    if (env->body->type != MSGPACK_OBJECT_MAP)
        return relais_error_set (err, RELAIS_CODE_INVALID, "body", "must be a map");
    return 0;
}
