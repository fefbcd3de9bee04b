/*  =========================================================================
    intake_privacy - what erasure and retention remove from a report
    (see intake_privacy.h)
    =========================================================================
*/
#include "intake_privacy.h"
#include <sodium.h>
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
