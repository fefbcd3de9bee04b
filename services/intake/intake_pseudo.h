/*  =========================================================================
    intake_pseudo - keyed pseudonyms for people, and the key they need

    @header
    The bus never names a person (guarantee 7). Intake turns each identified
    person of a report into a person_ref, "P-" + 20 base32 characters of
    HMAC-SHA256(key, identity), where identity is the SIAO id when given,
    else the normalised name and birth year. The same person gives the same
    ref in every report, so a person's path can be followed without a name;
    without the key, a ref cannot be turned back into a name.
    @discuss
    The key is 32 random bytes in a file only its owner may read: created
    on first start, refused when group or others can read it.
    =========================================================================
*/
#ifndef INTAKE_PSEUDO_H_INCLUDED
#define INTAKE_PSEUDO_H_INCLUDED

#include "relais_signal.h"

#define INTAKE_KEY_SIZE 32

//  Load the key from path, creating it (mode 0600) when absent. Returns 0,
//  or a negative code after logging why (unsafe mode, wrong size, I/O).
int
    intake_pseudo_load_key (const char *path, uint8_t key [INTAKE_KEY_SIZE]);

//  Write the person_refs of sig's people into refs (distinct, in order of
//  people; people with neither siao_id nor name give none). Returns the count.
size_t
    intake_pseudo_refs (const uint8_t key [INTAKE_KEY_SIZE], const relais_signal_t *sig,
                        char refs [][RELAIS_SIG_REF_MAX]);

//  A stable key for "the same place": the coarse cell, else a keyed hash of
//  the normalised address, within the arrondissement. "" when neither.
void
    intake_pseudo_place (const uint8_t key [INTAKE_KEY_SIZE], const relais_signal_t *sig,
                         char *buf, size_t size);

#endif
