/*  =========================================================================
    intake_privacy - what erasure and retention remove from a report
    (see intake_privacy.h)
    =========================================================================
*/
#include "intake_privacy.h"
#include <sodium.h>
#include <stdio.h>
#include <string.h>

uint32_t
intake_privacy_scrub (relais_signal_t *sig, const uint8_t *key, const char *ref)
{
    uint32_t removed = 0, kept = 0;
    for (uint32_t i = 0; i < sig->people_count; i++) {
        bool drop = true;
        if (key && ref) {
            //  The person's ref, computed as intake computes every ref
            relais_signal_t one;
            one.people_count = 1;
            one.people [0] = sig->people [i];
            char refs [1][RELAIS_SIG_REF_MAX];
            drop = intake_pseudo_refs (key, &one, refs) == 1 && strcmp (refs [0], ref) == 0;
            sodium_memzero (&one.people [0], sizeof one.people [0]);
        }
        if (drop)
            removed++;
        else
            sig->people [kept++] = sig->people [i];
    }
    //  The slots left behind are wiped, not just forgotten
    for (uint32_t i = kept; i < sig->people_count; i++)
        sodium_memzero (&sig->people [i], sizeof sig->people [i]);
    sig->people_count = kept;
    sodium_memzero (sig->source_contact, sizeof sig->source_contact);
    sodium_memzero (sig->address, sizeof sig->address);
    sodium_memzero (sig->summary, sizeof sig->summary);
    sodium_memzero (sig->escalate_reason, sizeof sig->escalate_reason);
    if (sig->escalate)
        strcpy (sig->escalate_reason, INTAKE_ERASED_MARK);
    sig->has_geo = false;
    sig->lat = sig->lon = 0;
    return removed;
}

bool
intake_privacy_ref_valid (const char *text, size_t size)
{
    if (size != 22 || text [0] != 'P' || text [1] != '-')
        return false;
    for (size_t i = 2; i < size; i++)
        if (!((text [i] >= 'a' && text [i] <= 'z') || (text [i] >= '2' && text [i] <= '7')))
            return false;
    return true;
}

bool
intake_privacy_reason_valid (const char *text, size_t size)
{
    if (size == 0 || size > INTAKE_REASON_TEXT_MAX)
        return false;
    for (size_t i = 0; i < size; i++) {
        char c = text [i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
        ||  c == '.' || c == '_' || c == ':' || c == '/' || c == '@' || c == '-'))
            return false;
    }
    return true;
}

int
intake_scrub_args_read (const relais_request_t *req, const msgpack_object *root, bool erase,
                        intake_scrub_args_t *args, relais_error_t *err)
{
    memset (args, 0, sizeof *args);
    strcpy (args->reason, "retention");
    relais_peer_t peer;
    if (relais_security_on () && relais_security_peer (req->data, &peer)) {
        snprintf (args->who, sizeof args->who, "%s", peer.name);
        snprintf (args->role, sizeof args->role, "%s", peer.role);
    }
    else {
        size_t n = zframe_size (req->identity) > 16? 16: zframe_size (req->identity);
        for (size_t i = 0; i < n; i++)
            snprintf (args->who + 2 * i, 3, "%02x", zframe_data (req->identity) [i]);
    }
    if (relais_security_on () && strcmp (args->role, "operations") != 0) {
        relais_error_set (err, RELAIS_CODE_UNAUTHORIZED, "op",
                          "erase and purge are for the operations role only");
        return -1;
    }
    const msgpack_object *dry = relais_msg_get (root, "dry_run");
    if (dry && dry->type != MSGPACK_OBJECT_BOOLEAN) {
        relais_error_set (err, RELAIS_CODE_INVALID, "dry_run", "a boolean");
        return -1;
    }
    args->dry_run = dry && dry->via.boolean;
    if (erase) {
        const msgpack_object *ref = relais_msg_get (root, "person");
        if (!ref || ref->type != MSGPACK_OBJECT_STR || ref->via.str.size >= sizeof args->person
        ||  !intake_privacy_ref_valid (ref->via.str.ptr, ref->via.str.size)) {
            relais_error_set (err, RELAIS_CODE_INVALID, "person",
                              "required, a person_ref: \"P-\" and 20 characters a-z 2-7");
            return -1;
        }
        memcpy (args->person, ref->via.str.ptr, ref->via.str.size);
    }
    const msgpack_object *why = relais_msg_get (root, "reason");
    if ((erase && !why) || (why && (why->type != MSGPACK_OBJECT_STR
    ||  !intake_privacy_reason_valid (why->via.str.ptr, why->via.str.size)))) {
        relais_error_set (err, RELAIS_CODE_INVALID, "reason",
                          "%s a code of 1 to 64 characters A-Z a-z 0-9 . _ : / @ - (no free text)",
                          erase? "required,": "optional,");
        return -1;
    }
    if (why) {
        memcpy (args->reason, why->via.str.ptr, why->via.str.size);
        args->reason [why->via.str.size] = 0;
    }
    return 0;
}

int
intake_scrub_audit (relais_audit_t *audit, uint64_t now, const intake_scrub_args_t *args,
                    bool erase, const char *what, size_t count, const char *ids,
                    size_t stride, size_t id_count, const char *item)
{
    const char *action = erase? "erase": "purge";
    char line [64];
    snprintf (line, sizeof line, "%s:%zu", args->dry_run? "preview": what, count);
    if (relais_audit_append (audit, now, args->who, args->role, action,
                             erase? args->person: "retention", args->reason)
    ||  relais_audit_append (audit, now, args->who, args->role, action, line, args->reason))
        return -1;
    if (args->dry_run)
        return 0;
    snprintf (line, sizeof line, "%s_%s", action, item);
    for (size_t i = 0; i < id_count; i++)
        if (relais_audit_append (audit, now, args->who, args->role, line, ids + i * stride,
                                 erase? args->person: args->reason))
            return -1;
    return 0;
}

void
intake_scrub_reply_begin (msgpack_packer *pk, size_t extra, const msgpack_object *rid,
                          const char *service, const intake_scrub_args_t *args, bool erase,
                          size_t count, const char *list, const char *ids, size_t stride,
                          size_t id_count)
{
    size_t listed = id_count > INTAKE_SCRUB_LIST_MAX? INTAKE_SCRUB_LIST_MAX: id_count;
    msgpack_pack_map (pk, 6 + extra + (erase? 1: 0) + (rid != NULL));
    relais_pack_kv_bool (pk, "ok", true);
    if (rid) {
        relais_pack_str (pk, "rid");
        relais_pack_object (pk, rid);
    }
    relais_pack_kv_str (pk, "service", service);
    if (erase)
        relais_pack_kv_str (pk, "person", args->person);
    relais_pack_kv_uint (pk, "count", count);
    relais_pack_str (pk, list);
    msgpack_pack_array (pk, listed);
    for (size_t i = 0; i < listed; i++)
        relais_pack_str (pk, ids + i * stride);
}

void
intake_scrub_reply_end (msgpack_packer *pk, const intake_scrub_args_t *args, bool compacted)
{
    relais_pack_kv_bool (pk, "dry_run", args->dry_run);
    relais_pack_kv_bool (pk, "compacted", compacted);
}
