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

#endif
