/*  =========================================================================
    relais_envelope - the event envelope of PROTOCOL.md §1

    @header
    Every event on the bus and in every log is one envelope: a msgpack map
    {v, src, seq, ts, type, key, corr?, body}. The log stores exactly the
    bytes that are published, so a fetch replays byte-identical events.
    Heartbeats are envelopes without type/key/body, on topic "$hb".
    @discuss
    Decoding borrows from the relais_msg_t it was decoded from: body points
    into that message's zone and the strings are copied into the struct.
    =========================================================================
*/
#ifndef RELAIS_ENVELOPE_H_INCLUDED
#define RELAIS_ENVELOPE_H_INCLUDED

#include "relais_msg.h"

#define RELAIS_ENVELOPE_VERSION  1
#define RELAIS_SRC_MAX           32     //  service name
#define RELAIS_TYPE_MAX          48     //  event type / topic
#define RELAIS_KEY_MAX           64     //  entity id
#define RELAIS_HB_TOPIC          "$hb"

typedef struct {
    uint64_t v;
    char src [RELAIS_SRC_MAX];
    uint64_t seq;
    uint64_t ts;
    char type [RELAIS_TYPE_MAX];        //  "" for a heartbeat
    char key [RELAIS_KEY_MAX];          //  "" for a heartbeat
    char corr [RELAIS_KEY_MAX];         //  "" when absent
    const msgpack_object *body;         //  NULL for a heartbeat
} relais_envelope_t;

//  Encode an envelope into sbuf (appended). body is already-encoded msgpack
//  (a map); NULL with body_size 0 makes a heartbeat. corr may be NULL.
void
    relais_envelope_pack (msgpack_sbuffer *sbuf, const char *src, uint64_t seq,
                          uint64_t ts, const char *type, const char *key,
                          const char *corr, const void *body, size_t body_size);

//  Decode and validate an envelope map (from relais_msg_decode). heartbeat
//  says whether the frame came on the "$hb" topic. Returns 0 or
//  RELAIS_EMALFORMED with err naming the bad field.
int
    relais_envelope_decode (const msgpack_object *map, bool heartbeat,
                            relais_envelope_t *env, relais_error_t *err);

#endif
