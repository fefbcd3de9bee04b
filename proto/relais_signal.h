/*  =========================================================================
    relais_signal - the signalement (report) schema of PROTOCOL.md §3

    @header
    Parses and validates a signalement from a decoded msgpack map into a
    fixed-size C struct, with precise error paths ("signal.place.arrondissement",
    "signal.people[2].phone"), and packs it back in two shapes:
    - the full record (everything the producer sent, personal data included),
      which stays in intake's store and goes to the partner who must act;
    - the public view for the broadcast bus: no contact, address, lat/lon,
      summary or people[] (DOMAIN.md), but a coarse place cell and the
      pseudonymous person_refs computed by intake.
    @discuss
    proto/README.md is the normative field table; keep both in step.
    =========================================================================
*/
#ifndef RELAIS_SIGNAL_H_INCLUDED
#define RELAIS_SIGNAL_H_INCLUDED

#include "relais_msg.h"

//  Limits (bytes for strings, entries for arrays)
#define RELAIS_SIG_NAME_MAX        128
#define RELAIS_SIG_CONTACT_MAX     128
#define RELAIS_SIG_ADDRESS_MAX     256
#define RELAIS_SIG_SUMMARY_MAX     2000
#define RELAIS_SIG_REASON_MAX      256
#define RELAIS_SIG_PEOPLE_MAX      20
#define RELAIS_SIG_PHONE_MAX       32
#define RELAIS_SIG_PERSON_ID_MAX   64
#define RELAIS_SIG_PERSONS_MAX     10000
#define RELAIS_SIG_TENTS_MAX       10000
#define RELAIS_SIG_CELL_MAX        32
#define RELAIS_SIG_REF_MAX         24      //  "P-" + 20 base32 chars + NUL

//  Enumerations: bit i of a mask = entry i of the matching name table.
typedef enum {
    RELAIS_SOURCE_115, RELAIS_SOURCE_CELLULE, RELAIS_SOURCE_MAIRIE,
    RELAIS_SOURCE_CABINET, RELAIS_SOURCE_ASSOCIATION, RELAIS_SOURCE_MARAUDE,
    RELAIS_SOURCE_INSTITUTION, RELAIS_SOURCE_RIVERAIN, RELAIS_SOURCE_COUNT
} relais_source_kind_t;

typedef enum {
    RELAIS_PLACE_VOIE_PUBLIQUE, RELAIS_PLACE_DOMAINE_MUNICIPAL, RELAIS_PLACE_BOIS,
    RELAIS_PLACE_GARE, RELAIS_PLACE_METRO, RELAIS_PLACE_PARKING, RELAIS_PLACE_TALUS,
    RELAIS_PLACE_PARC_JARDIN, RELAIS_PLACE_BATIMENT, RELAIS_PLACE_AUTRE,
    RELAIS_PLACE_COUNT
} relais_place_kind_t;

typedef enum {
    RELAIS_PUBLIC_HOMME_ISOLE, RELAIS_PUBLIC_FEMME_ISOLEE, RELAIS_PUBLIC_COUPLE,
    RELAIS_PUBLIC_FAMILLE, RELAIS_PUBLIC_MINEUR_NON_ACCOMPAGNE,
    RELAIS_PUBLIC_FEMME_ENCEINTE, RELAIS_PUBLIC_ENFANT, RELAIS_PUBLIC_PERSONNE_AGEE,
    RELAIS_PUBLIC_HANDICAP, RELAIS_PUBLIC_GRANDE_VULNERABILITE,
    RELAIS_PUBLIC_TROUBLES_PSYCHIQUES, RELAIS_PUBLIC_ADDICTION, RELAIS_PUBLIC_COUNT
} relais_public_t;

typedef enum {
    RELAIS_NEED_MISE_A_L_ABRI, RELAIS_NEED_SOINS, RELAIS_NEED_ALIMENTATION,
    RELAIS_NEED_HYGIENE, RELAIS_NEED_ACCES_DROITS, RELAIS_NEED_EVALUATION_SOCIALE,
    RELAIS_NEED_PROTECTION_ENFANCE, RELAIS_NEED_COUNT
} relais_need_t;

typedef enum {
    RELAIS_URGENCY_IMMEDIATE, RELAIS_URGENCY_JOUR, RELAIS_URGENCY_SEMAINE,
    RELAIS_URGENCY_COUNT
} relais_urgency_t;

extern const char *const relais_source_kind_names [RELAIS_SOURCE_COUNT];
extern const char *const relais_place_kind_names [RELAIS_PLACE_COUNT];
extern const char *const relais_public_names [RELAIS_PUBLIC_COUNT];
extern const char *const relais_need_names [RELAIS_NEED_COUNT];
extern const char *const relais_urgency_names [RELAIS_URGENCY_COUNT];

//  Return the index of name in table (count entries), or -1.
int
    relais_enum_find (const char *const *table, int count, const char *name);

typedef struct {
    char name [RELAIS_SIG_NAME_MAX + 1];
    uint32_t birth_year;                //  0: unknown
    char sex [2];                       //  "F", "M", "X" or ""
    char phone [RELAIS_SIG_PHONE_MAX + 1];
    char siao_id [RELAIS_SIG_PERSON_ID_MAX + 1];   //  "" when unknown
} relais_person_t;

typedef struct {
    //  source
    relais_source_kind_t source_kind;
    char source_name [RELAIS_SIG_NAME_MAX + 1];
    char source_contact [RELAIS_SIG_CONTACT_MAX + 1];      //  personal
    uint64_t observed_at;                                   //  µs UTC
    //  place
    uint32_t arrondissement;                                //  1..20
    relais_place_kind_t place_kind;
    char address [RELAIS_SIG_ADDRESS_MAX + 1];              //  personal
    bool has_geo;
    double lat, lon;                                        //  personal
    //  situation
    uint32_t persons;                                       //  >= 1
    uint32_t publics;                                       //  mask of relais_public_t
    uint32_t minors;
    uint32_t pregnant;
    uint32_t tents;
    uint32_t needs;                                         //  mask of relais_need_t
    relais_urgency_t urgency;
    bool sensitive;
    bool escalate;
    char escalate_reason [RELAIS_SIG_REASON_MAX + 1];
    char summary [RELAIS_SIG_SUMMARY_MAX + 1];              //  personal
    uint32_t people_count;
    relais_person_t people [RELAIS_SIG_PEOPLE_MAX];         //  personal
} relais_signal_t;

//  Parse a full signalement map (the "signal" of a submit, or a stored full
//  record) into sig. Field paths in err are prefixed with prefix ("signal").
//  now_us bounds observed_at (at most 1 day ahead). Unknown keys are ignored.
//  Returns 0, RELAIS_EMALFORMED or RELAIS_ETOOLARGE.
int
    relais_signal_parse (const msgpack_object *map, const char *prefix,
                         uint64_t now_us, relais_signal_t *sig, relais_error_t *err);

//  Apply an update's "changes" map onto sig: any subset of the fields that
//  parse accepts, same types and limits; "people" replaces the whole list.
//  Returns 0, RELAIS_EMALFORMED or RELAIS_ETOOLARGE; on error sig is
//  unchanged. An empty changes map is invalid.
int
    relais_signal_apply_changes (relais_signal_t *sig, const msgpack_object *changes,
                                 const char *prefix, uint64_t now_us,
                                 relais_error_t *err);

//  Pack the full record (every field, personal data included) as one map
//  that relais_signal_parse reads back to an equal struct.
void
    relais_signal_pack_full (msgpack_packer *pk, const relais_signal_t *sig);

//  Pack the public view for the bus as one map: source {kind, name},
//  observed_at, place {arrondissement, kind, cell?}, persons, publics[],
//  minors, pregnant, tents, needs[], urgency, sensitive, escalate,
//  plus extra_pairs more key/value pairs that the caller packs right after
//  (intake adds level, reasons, person_refs). No personal field.
void
    relais_signal_pack_public (msgpack_packer *pk, const relais_signal_t *sig,
                               uint32_t extra_pairs);

//  Coarse cell (about 250 m) of a position, "C<row>-<col>" on a fixed grid
//  over Paris; "" when the signal has no position.
void
    relais_signal_cell (const relais_signal_t *sig, char *buf, size_t size);

//  Pack a mask as an array of names from table.
void
    relais_pack_mask (msgpack_packer *pk, uint32_t mask,
                      const char *const *table, int count);

#endif
