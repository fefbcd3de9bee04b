/*  =========================================================================
    intake_privacy - what erasure and retention remove from a report

    @header
    One definition, used by intake (its records) and router (the copies in
    partner mailboxes), of the personal fields that an erasure or a purge
    removes (proto/privacy.md §2): source.contact, place.address,
    place.lat/lon, summary, escalate_reason (kept as the marker "efface"
    when escalate is true, so the record still parses) and people - the
    entries of one person (erasure, when the pseudonym key is at hand) or
    all of them. Everything else stays: person_refs, persons, publics,
    level, arrondissement, the dates - so counts and analytics do not move.
    @discuss
    Person refs and reasons given by operators are checked here too, so
    that every service refuses the same inputs.
    =========================================================================
*/
#ifndef INTAKE_PRIVACY_H_INCLUDED
#define INTAKE_PRIVACY_H_INCLUDED

#include "intake_pseudo.h"
#include "relais_audit.h"
#include "relais_bus.h"
#include "relais_security.h"
#include <stdbool.h>

#define INTAKE_ERASED_MARK  "efface"
#define INTAKE_REASON_TEXT_MAX 64

//  Remove the personal fields of sig. With key and ref, only the people
//  whose person_ref is ref are removed; with key NULL, every person.
//  Returns the number of people removed.
uint32_t
    intake_privacy_scrub (relais_signal_t *sig, const uint8_t *key, const char *ref);

//  True when text (size bytes) is a person_ref: "P-" and 20 base32
//  characters [a-z2-7].
bool
    intake_privacy_ref_valid (const char *text, size_t size);

//  True when text is an operator's reason code: 1 to 64 bytes of
//  [A-Za-z0-9._:/@-] (it goes into the audit log as it is; no free text).
bool
    intake_privacy_reason_valid (const char *text, size_t size);

//  An erase or purge request, checked, as intake, router and plans read it
//  (proto/privacy.md §3): who asks (the certificate's name and role with
//  CURVE; otherwise the connection's routing id in hex and no role),
//  dry_run, the person_ref of an erase ("" for a purge) and the reason
//  code ("retention" when a purge gives none).
typedef struct {
    char who [RELAIS_PEER_NAME_MAX];
    char role [16];
    bool dry_run;
    char person [RELAIS_SIG_REF_MAX];
    char reason [INTAKE_REASON_TEXT_MAX + 1];
} intake_scrub_args_t;

//  Read the arguments of req (decoded as root). Returns 0, or sets err -
//  unauthorized on "op" when CURVE is on and the caller is not operations,
//  invalid on dry_run, person or reason - and returns -1.
int
    intake_scrub_args_read (const relais_request_t *req, const msgpack_object *root, bool erase,
                            intake_scrub_args_t *args, relais_error_t *err);

//  Write the audit lines of an erase or purge, before anything changes:
//  the request (the person_ref, or "retention") and "<what>:<count>"
//  ("preview:<count>" for a dry run), then, unless a dry run, one line
//  "erase_<item>" / "purge_<item>" for each of the id_count ids, which lie
//  stride bytes apart. The audit holds ids and codes, never data. Returns 0,
//  or -1 when the audit log cannot be written: then nothing may change.
int
    intake_scrub_audit (relais_audit_t *audit, uint64_t now, const intake_scrub_args_t *args,
                        bool erase, const char *what, size_t count, const char *ids,
                        size_t stride, size_t id_count, const char *item);

//  Ids listed at most in an erase or purge reply (count says how many)
#define INTAKE_SCRUB_LIST_MAX 1000

//  Pack the reply of an erase or purge (proto/privacy.md §3): a map of
//  6 + extra entries (+ rid, + person for an erase): ok, rid, service,
//  person, count and the first INTAKE_SCRUB_LIST_MAX of the id_count ids
//  (stride bytes apart) under list. The caller then packs its extra
//  entries and ends with intake_scrub_reply_end.
void
    intake_scrub_reply_begin (msgpack_packer *pk, size_t extra, const msgpack_object *rid,
                              const char *service, const intake_scrub_args_t *args, bool erase,
                              size_t count, const char *list, const char *ids, size_t stride,
                              size_t id_count);

//  The last two entries of the reply: dry_run and compacted.
void
    intake_scrub_reply_end (msgpack_packer *pk, const intake_scrub_args_t *args, bool compacted);

#endif
