/*  =========================================================================
    sim_model - a deterministic generator of realistic Paris reports

    @discuss
    Three kinds of randomness, kept apart so that acks can only move
    follow-ups in the stream, never change what a submit holds:
    - the main stream draws every submit (its situation, producer, time)
      and plans its follow-ups; it is consumed once per submit, in order;
    - each report with follow-ups gets a PRNG of its own, seeded from
      (seed, n), that draws the content of its updates;
    - nothing else: choosing between a follow-up and a submit draws nothing.
    Weights are integers per mille and coordinates are integers in 1e-5
    degrees, divided once, so the bytes do not depend on the FPU.
    The weights and tables below are illustrative, not statistics: they give
    the shape DOMAIN.md describes (isolated men most often, more reports in
    the north and east, the bois in the 12e and 16e, the ring-road banks at
    the edge), which is what the demo and the tests need.
    =========================================================================
*/
#include "sim_model.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_RING_SIZE         512         //  recent situations a repeat can copy
#define S_PEOPLE_MAX        4           //  identified people per report
#define S_NAME_MAX          64
#define S_REPEAT_PERMILLE   100
#define S_LAG_MAX_S         2700        //  a report comes 0-45 min after the fact
#define S_YEAR_US           31556952000000ULL   //  mean Gregorian year
#define S_COLD_WARMUP       20          //  submits before the plan starts
#define S_COLD_FACTOR       3

//  ---------------------------------------------------------------------------
//  PRNG: splitmix64 seeds xoshiro256** (Vigna & Blackman, public domain)

typedef struct {
    uint64_t s [4];
} s_rng_t;

static uint64_t
s_splitmix (uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void
s_rng_seed (s_rng_t *rng, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        rng->s [i] = s_splitmix (&x);
}

static inline uint64_t
s_rotl (uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t
s_rng_next (s_rng_t *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = s_rotl (s [1] * 5, 7) * 9;
    uint64_t t = s [1] << 17;
    s [2] ^= s [0];
    s [3] ^= s [1];
    s [1] ^= s [2];
    s [0] ^= s [3];
    s [2] ^= t;
    s [3] = s_rotl (s [3], 45);
    return result;
}

//  An integer in [0, n); n >= 1. Multiply-shift: the bias is below 2^-32.
static uint32_t
s_below (s_rng_t *rng, uint32_t n)
{
    return (uint32_t) (((s_rng_next (rng) >> 32) * (uint64_t) n) >> 32);
}

//  An integer in [lo, hi]
static uint32_t
s_between (s_rng_t *rng, uint32_t lo, uint32_t hi)
{
    return lo + s_below (rng, hi - lo + 1);
}

static bool
s_chance (s_rng_t *rng, uint32_t permille)
{
    return s_below (rng, 1000) < permille;
}

//  Index drawn from integer weights
static int
s_pick (s_rng_t *rng, const uint16_t *weights, int count)
{
    uint32_t total = 0;
    for (int i = 0; i < count; i++)
        total += weights [i];
    uint32_t draw = s_below (rng, total);
    for (int i = 0; i < count; i++) {
        if (draw < weights [i])
            return i;
        draw -= weights [i];
    }
    return count - 1;
}

#define S_ANY(rng, table) (table [s_below ((rng), sizeof (table) / sizeof (table [0]))])

//  ---------------------------------------------------------------------------
//  Paris

typedef struct {
    uint16_t weight;                    //  per mille of reports
    int32_t lat, lon;                   //  centre of the streets, 1e-5 degrees
    int32_t dlat, dlon;                 //  half-width of the jitter
    const char *porte;                  //  on the ring road: its gate, else NULL
    const char *station;                //  a railway station, else NULL
    const char *garden;
    const char *metro [3];
    const char *streets [5];
} s_arr_t;

//  More reports in the north and east (18, 19, 10, 20, 12 with the bois de
//  Vincennes, 16 with the bois de Boulogne, 11, 13, 14), few in the centre
//  and the west (2, 3, 6, 7).
static const s_arr_t s_arrs [21] = {
    { 0 },
    {  30, 4886250, 233640, 300, 450, NULL, NULL, "jardin Nelson-Mandela",
       { "Châtelet", "Les Halles", "Louvre-Rivoli" },
       { "rue de Rivoli", "rue Saint-Denis", "rue Berger", "rue du Pont-Neuf", NULL } },
    {  12, 4886830, 234280, 250, 400, NULL, NULL, "square Louvois",
       { "Bourse", "Sentier", "Strasbourg-Saint-Denis" },
       { "rue Montmartre", "boulevard de Bonne-Nouvelle", "rue Réaumur", "rue d'Aboukir", NULL } },
    {  15, 4886300, 236000, 250, 400, NULL, NULL, "square du Temple",
       { "Arts et Métiers", "Temple", "Rambuteau" },
       { "rue de Turbigo", "boulevard du Temple", "rue de Bretagne", "rue Beaubourg", NULL } },
    {  20, 4885430, 235760, 300, 500, NULL, NULL, "square de la Tour-Saint-Jacques",
       { "Saint-Paul", "Hôtel de Ville", "Sully-Morland" },
       { "rue Saint-Antoine", "quai de l'Hôtel-de-Ville", "boulevard Morland", "rue de la Verrerie", NULL } },
    {  18, 4884450, 234970, 350, 500, NULL, NULL, "square René-Viviani",
       { "Place Monge", "Maubert-Mutualité", "Cluny-La Sorbonne" },
       { "boulevard Saint-Michel", "rue Monge", "quai Saint-Bernard", "rue Mouffetard", NULL } },
    {  12, 4884910, 233280, 350, 450, NULL, NULL, "square Félix-Desruelles",
       { "Saint-Sulpice", "Odéon", "Vavin" },
       { "boulevard Saint-Germain", "rue de Rennes", "rue de Vaugirard", "rue du Four", NULL } },
    {  10, 4885620, 231220, 350, 700, NULL, NULL, "square Samuel-Rousseau",
       { "École Militaire", "La Tour-Maubourg", "Solférino" },
       { "rue de Grenelle", "quai d'Orsay", "avenue Bosquet", "rue Cler", NULL } },
    {  27, 4887270, 231250, 400, 700, NULL, "Gare Saint-Lazare", "square Marcel-Pagnol",
       { "Saint-Lazare", "Miromesnil", "Villiers" },
       { "rue de Rome", "boulevard Haussmann", "rue de la Pépinière", "rue du Rocher", NULL } },
    {  32, 4887700, 233750, 350, 500, NULL, NULL, "square d'Anvers",
       { "Cadet", "Pigalle", "Anvers" },
       { "rue de Châteaudun", "boulevard de Clichy", "rue La Fayette", "rue du Faubourg-Montmartre", NULL } },
    {  98, 4887620, 236080, 500, 600, NULL, "Gare du Nord", "jardin Villemin",
       { "Gare de l'Est", "Louis Blanc", "Château-Landon" },
       { "boulevard de Magenta", "rue du Faubourg-Saint-Denis", "quai de Valmy", "rue de Maubeuge", "rue de Dunkerque" } },
    {  65, 4885900, 238000, 500, 700, NULL, NULL, "square Maurice-Gardette",
       { "République", "Père Lachaise", "Voltaire" },
       { "boulevard de Belleville", "rue Oberkampf", "boulevard Voltaire", "rue de la Roquette", NULL } },
    {  76, 4884000, 239500, 500, 700, "porte de Vincennes", "Gare de Lyon", "jardin de Reuilly",
       { "Nation", "Porte Dorée", "Bercy" },
       { "avenue Daumesnil", "rue de Charenton", "boulevard de Bercy", "quai de la Rapée", NULL } },
    {  65, 4882830, 236230, 600, 800, "porte d'Ivry", "Gare d'Austerlitz", "parc de Choisy",
       { "Place d'Italie", "Porte d'Ivry", "Bibliothèque François-Mitterrand" },
       { "boulevard Vincent-Auriol", "avenue d'Ivry", "rue de Tolbiac", "quai d'Austerlitz", NULL } },
    {  49, 4882920, 232650, 600, 800, "porte d'Orléans", NULL, "parc Montsouris",
       { "Denfert-Rochereau", "Porte d'Orléans", "Pernety" },
       { "avenue du Maine", "boulevard Jourdan", "rue d'Alésia", "avenue Denfert-Rochereau", NULL } },
    {  43, 4884010, 229280, 600, 900, "porte de Versailles", "Gare Montparnasse", "parc André-Citroën",
       { "Montparnasse-Bienvenüe", "Porte de Versailles", "Convention" },
       { "rue de Vaugirard", "boulevard de Grenelle", "rue de la Convention", "boulevard Victor", NULL } },
    {  49, 4886370, 227690, 600, 700, "porte d'Auteuil", NULL, "jardin du Ranelagh",
       { "Trocadéro", "Porte d'Auteuil", "Passy" },
       { "avenue Mozart", "rue de Passy", "boulevard Murat", "avenue Foch", NULL } },
    {  43, 4888730, 230670, 500, 800, "porte de Clichy", NULL, "parc Martin-Luther-King",
       { "Porte de Clichy", "La Fourche", "Brochant" },
       { "avenue de Clichy", "boulevard Berthier", "rue Cardinet", "avenue de Saint-Ouen", NULL } },
    { 136, 4889250, 234840, 550, 900, "porte de la Chapelle", NULL, "jardins d'Éole",
       { "La Chapelle", "Porte de la Chapelle", "Barbès-Rochechouart" },
       { "boulevard de la Chapelle", "rue Marx-Dormoy", "rue Myrha", "rue Ordener", "boulevard Ney" } },
    { 124, 4888710, 238480, 600, 900, "porte d'Aubervilliers", NULL, "parc des Buttes-Chaumont",
       { "Stalingrad", "Jaurès", "Porte d'Aubervilliers" },
       { "quai de la Seine", "avenue de Flandre", "rue de Crimée", "boulevard Macdonald", NULL } },
    {  76, 4886340, 240110, 600, 700, "porte de Bagnolet", NULL, "parc de Belleville",
       { "Belleville", "Porte de Bagnolet", "Gambetta" },
       { "rue des Pyrénées", "boulevard Davout", "rue de Ménilmontant", "rue de Belleville", NULL } },
};

//  The two bois: centre and half-width (1e-5 degrees), and their roads
static const int32_t s_bois_geo [2][4] = {
    { 4883300, 243300, 300, 1500 },     //  bois de Vincennes (12e)
    { 4886250, 224900, 900, 900 },      //  bois de Boulogne (16e)
};
static const char *const s_bois_roads [2][3] = {
    { "route de la Pyramide", "avenue de Gravelle", "route de la Tourelle" },
    { "allée de Longchamp", "route de la Reine-Marguerite", "route de Suresnes" },
};

//  Paris bounds the schema accepts, with a margin (1e-5 degrees)
#define S_LAT_LO    4880500
#define S_LAT_HI    4890500
#define S_LON_LO    222500
#define S_LON_HI    247500

//  ---------------------------------------------------------------------------
//  Producers

static const char *const s_115_names [] = {
    "115 de Paris", "115 de Paris - régulation de nuit", "SIAO Paris - 115"
};
static const char *const s_cabinets [] = {
    "Cabinet de la Maire de Paris",
    "Cabinet de l'adjointe chargée des solidarités",
    "Cabinet de l'adjoint chargé de la prévention"
};
static const char *const s_associations [] = {
    "Secours catholique - accueil de jour", "Les Restos du Cœur", "La Cloche",
    "Armée du Salut", "Les Petits Frères des Pauvres", "Utopia 56",
    "Aurore - accueil de jour", "Emmaüs Solidarité - accueil de jour"
};
static const char *const s_maraudes [] = {
    "Maraude Emmaüs Solidarité", "Maraude Aurore", "Maraude du Samu Social de Paris",
    "Maraude de la Croix-Rouge française", "Maraude de l'Ordre de Malte",
    "Maraude de l'Armée du Salut", "Maraude Aux captifs, la libération",
    "Maraude Charonne"
};
static const char *const s_riverains [] = {
    "Riverain (appel au 3975)", "Riveraine (DansMaRue)", "Commerçant du quartier"
};

//  Source kinds, per mille, in relais_source_kind_t order
static const uint16_t s_source_day [RELAIS_SOURCE_COUNT] = {
    420, 200, 55, 10, 80, 190, 25, 20
};
static const uint16_t s_source_cold [RELAIS_SOURCE_COUNT] = {
    500, 170, 45, 5, 60, 190, 15, 15
};

//  ---------------------------------------------------------------------------
//  People

static const char *const s_first_m [] = {
    "Mohamed", "Karim", "Jean", "Pierre", "Ibrahima", "Mamadou", "Youssef",
    "Ahmed", "Sébastien", "Nicolas", "Ion", "Vasile", "Abdoulaye", "Moussa",
    "Dimitri", "Patrick", "Thierry", "Omar", "Bilal", "Sékou"
};
static const char *const s_first_f [] = {
    "Fatima", "Aminata", "Marie", "Nadia", "Elena", "Sofia", "Awa", "Grace",
    "Mariam", "Christine", "Ioana", "Leïla", "Nathalie", "Aïssata", "Samira",
    "Irina"
};
static const char *const s_last [] = {
    "Diallo", "Traoré", "Benali", "Martin", "Bernard", "Dubois", "Popescu",
    "Haddad", "Camara", "Koné", "Nguyen", "Petit", "Moreau", "Laurent",
    "Mansouri", "Kamara", "Ionescu", "Rahmani", "Lefebvre", "Sow", "Cissé",
    "Bouzid", "Garcia", "Da Silva"
};

//  Who the report is about. The publics mask follows from the profile.
typedef enum {
    S_HOMME, S_GROUPE_HOMMES, S_GROUPE_MIXTE, S_FEMME, S_FEMME_ENCEINTE,
    S_COUPLE, S_FAMILLE, S_MNA, S_VULNERABLE, S_AGEE, S_HANDICAP, S_PSY,
    S_PROFILE_COUNT
} s_profile_t;

//  Per mille. Isolated men about 58% of reports once the vulnerable isolated
//  (three in four are men) are counted, families 13%, couples 7%, minors
//  alone 4%, great vulnerability about 10% with secondary mentions.
static const uint16_t s_profile_day [S_PROFILE_COUNT] = {
    380, 40, 20, 110, 20, 70, 130, 40, 80, 30, 20, 30
};
//  The cold-weather plan brings the families and the minors to the 115
static const uint16_t s_profile_cold [S_PROFILE_COUNT] = {
    330, 30, 20, 110, 25, 70, 240, 60, 65, 30, 10, 10
};

//  Place kinds, per mille, in relais_place_kind_t order; bois only in the
//  12e and 16e, talus only at the edge, gare only with a station.
static const uint16_t s_place_weights [RELAIS_PLACE_COUNT] = {
    560, 80, 40, 50, 100, 25, 40, 70, 25, 10
};

static const char *const s_close_reasons [] = {
    "pris_en_charge", "resolu", "sans_suite", "doublon", "erreur", "autre"
};
static const uint16_t s_close_weights [] = { 520, 160, 150, 80, 30, 60 };

static const char *const s_escalate_reasons [] = {
    "Situation bloquée depuis trois semaines malgré plusieurs orientations",
    "Refus répétés de mise à l'abri, état de santé qui se dégrade",
    "Besoin d'une coordination MUS avec la DPMP et la maraude",
    "Famille avec nourrisson sans solution après trois appels au 115",
    "Installation durable devant une école, tensions avec le voisinage"
};

const char *const sim_model_scenarios [] = { "day", "cold-snap", "encampment", NULL };
typedef enum { S_DAY, S_COLD_SNAP, S_ENCAMPMENT } s_scenario_t;

//  ---------------------------------------------------------------------------
//  Model state

typedef struct {
    char name [S_NAME_MAX];
    uint32_t birth_year;
    char sex;                           //  'F' or 'M'
    char phone [20];                    //  "" when none
    char siao_id [24];                  //  "" when none
} s_person_t;

//  What a report describes: kept so a repeat can describe it again, and
//  so updates stay consistent with it (minors <= persons).
typedef struct {
    s_profile_t profile;
    uint32_t arr;
    relais_place_kind_t place_kind;
    char address [RELAIS_SIG_ADDRESS_MAX + 1];      //  "" when not reported
    bool has_geo;
    int32_t lat, lon;                               //  1e-5 degrees
    uint32_t persons, minors, pregnant, tents;
    uint32_t publics;
    uint32_t people_count;
    s_person_t people [S_PEOPLE_MAX];
} s_situation_t;

//  A report with updates or a close still to send
typedef struct {
    uint64_t n;
    uint64_t due;                       //  send once this many submits exist
    char id [SIM_ID_MAX + 1];           //  "" until acked
    bool camp;
    uint32_t updates_left;
    uint32_t update_no;
    const char *close_reason;           //  NULL: no close (yet)
    s_rng_t rng;
    s_situation_t sit;
} s_pending_t;

//  Strings set, in insertion order
typedef struct {
    char **items;
    size_t count, room;
    char **slots;
    size_t slot_count;                  //  power of two
} s_strset_t;

struct _sim_model_t {
    uint64_t seed;
    s_scenario_t scenario;
    uint64_t start_us;
    uint64_t start_s;
    uint32_t year;                      //  the simulated year, for ages
    uint64_t mean_gap_us;
    bool self_ack;
    s_rng_t rng;                        //  the main stream
    uint64_t sim_us;                    //  simulated time since start
    uint64_t submits;                   //  submits generated so far
    sim_truth_t truth;
    //  recent situations, for repeats
    s_situation_t *ring;
    size_t ring_count, ring_next;
    //  follow-ups, sorted by n
    s_pending_t **pending;
    size_t pending_count, pending_room;
    //  the encampment storyline
    struct {
        bool active;
        uint32_t arr;
        s_situation_t sit;
        uint32_t reports, target;
        uint32_t quiet;                 //  background submits before the next camp
        uint32_t number;
    } camp;
    s_strset_t personal;
};

//  ---------------------------------------------------------------------------
//  Personal strings

static uint64_t
s_hash (const char *text)
{
    uint64_t h = 0xcbf29ce484222325ULL;     //  FNV-1a
    for (const unsigned char *p = (const unsigned char *) text; *p; p++)
        h = (h ^ *p) * 0x100000001b3ULL;
    return h;
}

static void
s_strset_add (s_strset_t *set, const char *text)
{
    if (!text || !*text)
        return;
    if ((set->count + 1) * 2 > set->slot_count) {
        size_t slot_count = set->slot_count? set->slot_count * 2: 1024;
        char **slots = (char **) calloc (slot_count, sizeof *slots);
        if (!slots)
            return;
        for (size_t i = 0; i < set->count; i++) {
            size_t at = s_hash (set->items [i]) & (slot_count - 1);
            while (slots [at])
                at = (at + 1) & (slot_count - 1);
            slots [at] = set->items [i];
        }
        free (set->slots);
        set->slots = slots;
        set->slot_count = slot_count;
    }
    size_t at = s_hash (text) & (set->slot_count - 1);
    while (set->slots [at]) {
        if (strcmp (set->slots [at], text) == 0)
            return;
        at = (at + 1) & (set->slot_count - 1);
    }
    if (set->count == set->room) {
        size_t room = set->room? set->room * 2: 1024;
        char **items = (char **) realloc (set->items, room * sizeof *items);
        if (!items)
            return;
        set->items = items;
        set->room = room;
    }
    char *copy = strdup (text);
    if (!copy)
        return;
    set->items [set->count++] = copy;
    set->slots [at] = copy;
}

static void
s_strset_free (s_strset_t *set)
{
    for (size_t i = 0; i < set->count; i++)
        free (set->items [i]);
    free (set->items);
    free (set->slots);
}

//  Every personal string a situation carries
static void
s_register_situation (sim_model_t *self, const s_situation_t *sit)
{
    s_strset_add (&self->personal, sit->address);
    for (uint32_t i = 0; i < sit->people_count; i++) {
        s_strset_add (&self->personal, sit->people [i].name);
        s_strset_add (&self->personal, sit->people [i].phone);
        s_strset_add (&self->personal, sit->people [i].siao_id);
    }
}

//  ---------------------------------------------------------------------------
//  Generation of situations

static const char *
s_ordinal (uint32_t arr)
{
    static const char *const names [21] = {
        "", "1er", "2e", "3e", "4e", "5e", "6e", "7e", "8e", "9e", "10e",
        "11e", "12e", "13e", "14e", "15e", "16e", "17e", "18e", "19e", "20e"
    };
    return arr <= 20? names [arr]: "";
}

static uint32_t
s_pick_arr (s_rng_t *rng)
{
    uint16_t weights [20];
    for (int i = 0; i < 20; i++)
        weights [i] = s_arrs [i + 1].weight;
    return (uint32_t) s_pick (rng, weights, 20) + 1;
}

static const char *
s_street (s_rng_t *rng, uint32_t arr)
{
    const s_arr_t *a = &s_arrs [arr];
    int count = 0;
    while (count < 5 && a->streets [count])
        count++;
    return a->streets [s_below (rng, (uint32_t) count)];
}

static void
s_phone (s_rng_t *rng, char *buf, size_t size, bool mobile)
{
    snprintf (buf, size, "%s %02u %02u %02u %02u",
              mobile? (s_chance (rng, 700)? "06": "07"): "01",
              s_below (rng, 100), s_below (rng, 100), s_below (rng, 100),
              s_below (rng, 100));
}

static void
s_person (sim_model_t *self, s_person_t *person, const char *last, bool minor,
          bool old, char sex)
{
    s_rng_t *rng = &self->rng;
    if (!sex)
        sex = s_chance (rng, 700)? 'M': 'F';
    person->sex = sex;
    const char *first = sex == 'M'? S_ANY (rng, s_first_m): S_ANY (rng, s_first_f);
    snprintf (person->name, sizeof person->name, "%s %s", first,
              last? last: S_ANY (rng, s_last));
    if (minor)
        person->birth_year = self->year - s_below (rng, 17);
    else
    if (old)
        person->birth_year = self->year - s_between (rng, 65, 84);
    else
        person->birth_year = self->year - s_between (rng, 18, 64);
    person->phone [0] = 0;
    if (!minor && s_chance (rng, 550))
        s_phone (rng, person->phone, sizeof person->phone, true);
    person->siao_id [0] = 0;
    if (s_chance (rng, 250))
        snprintf (person->siao_id, sizeof person->siao_id, "SIAO75-%07u",
                  s_below (rng, 10000000));
}

static relais_place_kind_t
s_pick_place (s_rng_t *rng, uint32_t arr)
{
    const s_arr_t *a = &s_arrs [arr];
    //  In the 12e and 16e a quarter of the reports are in the bois
    if ((arr == 12 || arr == 16) && s_chance (rng, 250))
        return RELAIS_PLACE_BOIS;
    relais_place_kind_t kind = (relais_place_kind_t) s_pick (rng, s_place_weights,
                                                             RELAIS_PLACE_COUNT);
    if (kind == RELAIS_PLACE_BOIS && arr != 12 && arr != 16)
        kind = RELAIS_PLACE_VOIE_PUBLIQUE;
    if (kind == RELAIS_PLACE_TALUS && !a->porte)
        kind = RELAIS_PLACE_VOIE_PUBLIQUE;
    if (kind == RELAIS_PLACE_GARE && !a->station)
        kind = RELAIS_PLACE_METRO;
    return kind;
}

//  The address and position of a place; both optional in a report.
static void
s_place (sim_model_t *self, s_situation_t *sit, bool address, bool geo)
{
    s_rng_t *rng = &self->rng;
    const s_arr_t *a = &s_arrs [sit->arr];
    char *buf = sit->address;
    size_t size = sizeof sit->address;
    int bois = sit->arr == 12? 0: 1;
    switch (sit->place_kind) {
        case RELAIS_PLACE_METRO:
            snprintf (buf, size, "station %s, sortie %u", S_ANY (rng, a->metro),
                      s_between (rng, 1, 6));
            break;
        case RELAIS_PLACE_GARE:
            snprintf (buf, size, "%s, %s", a->station? a->station: "gare",
                      s_chance (rng, 500)? "parvis côté taxis": "hall 2, près des consignes");
            break;
        case RELAIS_PLACE_PARC_JARDIN:
            snprintf (buf, size, "%s, entrée %s", a->garden,
                      s_chance (rng, 500)? "principale": "côté aire de jeux");
            break;
        case RELAIS_PLACE_DOMAINE_MUNICIPAL: {
            static const char *const what [] = {
                "devant l'école élémentaire", "gymnase municipal",
                "parvis de la bibliothèque", "sous le préau du centre d'animation"
            };
            snprintf (buf, size, "%u %s, %s", s_between (rng, 1, 150),
                      s_street (rng, sit->arr), S_ANY (rng, what));
            break;
        }
        case RELAIS_PLACE_BOIS:
            snprintf (buf, size, "%s, %s, près du lac",
                      bois == 0? "Bois de Vincennes": "Bois de Boulogne",
                      S_ANY (rng, s_bois_roads [bois]));
            break;
        case RELAIS_PLACE_TALUS:
            snprintf (buf, size, "talus du périphérique, %s, côté %s",
                      a->porte? a->porte: "porte", s_chance (rng, 500)? "intérieur": "extérieur");
            break;
        case RELAIS_PLACE_PARKING:
            snprintf (buf, size, "parking souterrain, %u %s, niveau -%u",
                      s_between (rng, 1, 150), s_street (rng, sit->arr), s_between (rng, 1, 3));
            break;
        case RELAIS_PLACE_BATIMENT:
            snprintf (buf, size, "hall d'immeuble, %u %s", s_between (rng, 1, 150),
                      s_street (rng, sit->arr));
            break;
        default:
            snprintf (buf, size, "%u %s", s_between (rng, 1, 180), s_street (rng, sit->arr));
            break;
    }
    if (!address)
        buf [0] = 0;
    sit->has_geo = geo;
    if (geo) {
        int32_t lat = a->lat, lon = a->lon, dlat = a->dlat, dlon = a->dlon;
        if (sit->place_kind == RELAIS_PLACE_BOIS) {
            lat = s_bois_geo [bois][0];
            lon = s_bois_geo [bois][1];
            dlat = s_bois_geo [bois][2];
            dlon = s_bois_geo [bois][3];
        }
        lat += (int32_t) s_below (rng, (uint32_t) (2 * dlat + 1)) - dlat;
        lon += (int32_t) s_below (rng, (uint32_t) (2 * dlon + 1)) - dlon;
        sit->lat = lat < S_LAT_LO? S_LAT_LO: lat > S_LAT_HI? S_LAT_HI: lat;
        sit->lon = lon < S_LON_LO? S_LON_LO: lon > S_LON_HI? S_LON_HI: lon;
    }
}

//  The people of a situation: who it is about, and a few identified by name
static void
s_people (sim_model_t *self, s_situation_t *sit, uint32_t permille)
{
    s_rng_t *rng = &self->rng;
    sit->people_count = 0;
    if (!s_chance (rng, permille))
        return;
    uint32_t count = sit->persons < S_PEOPLE_MAX? sit->persons: S_PEOPLE_MAX;
    if (sit->tents > 3)
        count = s_between (rng, 1, 2);       //  in a camp, a few are known by name
    const char *last = S_ANY (rng, s_last);
    uint32_t adults = sit->persons - sit->minors;
    for (uint32_t i = 0; i < count; i++) {
        s_person_t *person = &sit->people [i];
        bool minor = i >= adults || sit->profile == S_MNA;
        char sex = 0;
        if (sit->profile == S_HOMME || sit->profile == S_GROUPE_HOMMES)
            sex = 'M';
        else
        if (sit->profile == S_FEMME || sit->profile == S_FEMME_ENCEINTE)
            sex = 'F';
        else
        if (sit->profile == S_COUPLE || (sit->profile == S_FAMILLE && adults == 2 && i < 2))
            sex = i == 0? 'F': 'M';
        else
        if (sit->publics & (1u << RELAIS_PUBLIC_HOMME_ISOLE)
        && !(sit->publics & (1u << RELAIS_PUBLIC_FEMME_ISOLEE)))
            sex = 'M';
        else
        if (sit->publics & (1u << RELAIS_PUBLIC_FEMME_ISOLEE)
        && !(sit->publics & (1u << RELAIS_PUBLIC_HOMME_ISOLE)))
            sex = 'F';
        bool family = sit->profile == S_FAMILLE || sit->profile == S_COUPLE;
        s_person (self, person, family? last: NULL, minor,
                  sit->profile == S_AGEE, sex);
        if (sit->profile == S_MNA)
            person->birth_year = self->year - s_between (rng, 14, 17);
    }
    sit->people_count = count;
}

//  Adult isolated: a man three times in four
static uint32_t
s_isolated (s_rng_t *rng)
{
    return s_chance (rng, 750)? 1u << RELAIS_PUBLIC_HOMME_ISOLE
                              : 1u << RELAIS_PUBLIC_FEMME_ISOLEE;
}

static void
s_new_situation (sim_model_t *self, s_situation_t *sit, uint32_t geo_permille)
{
    s_rng_t *rng = &self->rng;
    memset (sit, 0, sizeof *sit);
    const uint16_t *weights = self->scenario == S_COLD_SNAP? s_profile_cold: s_profile_day;
    sit->profile = (s_profile_t) s_pick (rng, weights, S_PROFILE_COUNT);
    sit->arr = s_pick_arr (rng);
    sit->place_kind = s_pick_place (rng, sit->arr);
    sit->persons = 1;
    switch (sit->profile) {
        case S_HOMME:
            sit->publics = 1u << RELAIS_PUBLIC_HOMME_ISOLE;
            break;
        case S_GROUPE_HOMMES:
            sit->publics = 1u << RELAIS_PUBLIC_HOMME_ISOLE;
            sit->persons = s_between (rng, 2, 6);
            break;
        case S_GROUPE_MIXTE:
            sit->publics = (1u << RELAIS_PUBLIC_HOMME_ISOLE) | (1u << RELAIS_PUBLIC_FEMME_ISOLEE);
            sit->persons = s_between (rng, 2, 5);
            break;
        case S_FEMME:
            sit->publics = 1u << RELAIS_PUBLIC_FEMME_ISOLEE;
            break;
        case S_FEMME_ENCEINTE:
            sit->publics = (1u << RELAIS_PUBLIC_FEMME_ISOLEE) | (1u << RELAIS_PUBLIC_FEMME_ENCEINTE);
            sit->pregnant = 1;
            break;
        case S_COUPLE:
            sit->publics = 1u << RELAIS_PUBLIC_COUPLE;
            sit->persons = 2;
            if (s_chance (rng, 100)) {
                sit->publics |= 1u << RELAIS_PUBLIC_FEMME_ENCEINTE;
                sit->pregnant = 1;
            }
            break;
        case S_FAMILLE: {
            static const uint16_t minors [4] = { 350, 350, 200, 100 };
            sit->publics = (1u << RELAIS_PUBLIC_FAMILLE) | (1u << RELAIS_PUBLIC_ENFANT);
            sit->minors = (uint32_t) s_pick (rng, minors, 4) + 1;
            sit->persons = sit->minors + (s_chance (rng, 600)? 2: 1);
            if (s_chance (rng, 150)) {
                sit->publics |= 1u << RELAIS_PUBLIC_FEMME_ENCEINTE;
                sit->pregnant = 1;
            }
            break;
        }
        case S_MNA:
            sit->publics = 1u << RELAIS_PUBLIC_MINEUR_NON_ACCOMPAGNE;
            sit->persons = s_chance (rng, 750)? 1: s_between (rng, 2, 4);
            sit->minors = sit->persons;
            break;
        case S_VULNERABLE:
            sit->publics = s_isolated (rng) | (1u << RELAIS_PUBLIC_GRANDE_VULNERABILITE);
            break;
        case S_AGEE:
            sit->publics = s_isolated (rng) | (1u << RELAIS_PUBLIC_PERSONNE_AGEE);
            break;
        case S_HANDICAP:
            sit->publics = s_isolated (rng) | (1u << RELAIS_PUBLIC_HANDICAP);
            break;
        case S_PSY:
            sit->publics = s_isolated (rng) | (1u << RELAIS_PUBLIC_TROUBLES_PSYCHIQUES);
            break;
        default:
            break;
    }
    //  Secondary publics of isolated adults
    if (sit->profile == S_HOMME || sit->profile == S_FEMME || sit->profile == S_GROUPE_HOMMES
    ||  sit->profile == S_GROUPE_MIXTE || sit->profile == S_VULNERABLE) {
        if (s_chance (rng, 80))
            sit->publics |= 1u << RELAIS_PUBLIC_TROUBLES_PSYCHIQUES;
        if (s_chance (rng, 100))
            sit->publics |= 1u << RELAIS_PUBLIC_ADDICTION;
        if (s_chance (rng, 30))
            sit->publics |= 1u << RELAIS_PUBLIC_HANDICAP;
        if (s_chance (rng, 40))
            sit->publics |= 1u << RELAIS_PUBLIC_PERSONNE_AGEE;
        if (s_chance (rng, 30))
            sit->publics |= 1u << RELAIS_PUBLIC_GRANDE_VULNERABILITE;
    }
    //  Tents: mostly none; a tent or two outdoors; now and then a camp
    bool outdoors = sit->place_kind == RELAIS_PLACE_VOIE_PUBLIQUE
                 || sit->place_kind == RELAIS_PLACE_BOIS
                 || sit->place_kind == RELAIS_PLACE_TALUS
                 || sit->place_kind == RELAIS_PLACE_PARC_JARDIN;
    if (outdoors && sit->profile != S_MNA) {
        if (s_chance (rng, 30)) {
            sit->tents = s_between (rng, 4, 40);
            uint32_t persons = sit->tents + s_below (rng, sit->tents + 1);
            if (persons > sit->persons)
                sit->persons = persons;
            sit->publics |= 1u << RELAIS_PUBLIC_HOMME_ISOLE;
        }
        else
        if (s_chance (rng, 70))
            sit->tents = s_between (rng, 1, 3);
    }
    s_place (self, sit, s_chance (rng, 600), s_chance (rng, geo_permille));
    s_people (self, sit, 350);
}

//  ---------------------------------------------------------------------------
//  A report: a situation as one producer tells it

typedef struct {
    relais_source_kind_t source_kind;
    char source_name [RELAIS_SIG_NAME_MAX + 1];
    char contact [RELAIS_SIG_CONTACT_MAX + 1];
    uint64_t observed_at;
    uint32_t needs;
    relais_urgency_t urgency;
    bool sensitive, escalate;
    const char *escalate_reason;
    char summary [512];
} s_report_t;

static void
s_source (sim_model_t *self, s_report_t *rep, const s_situation_t *sit,
          relais_source_kind_t kind)
{
    s_rng_t *rng = &self->rng;
    rep->source_kind = kind;
    char *name = rep->source_name;
    size_t size = sizeof rep->source_name;
    switch (kind) {
        case RELAIS_SOURCE_115:
            snprintf (name, size, "%s", S_ANY (rng, s_115_names));
            break;
        case RELAIS_SOURCE_CELLULE:
            snprintf (name, size, "Cellule de veille sociale du %s", s_ordinal (sit->arr));
            break;
        case RELAIS_SOURCE_MAIRIE:
            //  The 1er to the 4e share one town hall since 2020
            if (sit->arr <= 4)
                snprintf (name, size, "Mairie de Paris Centre");
            else
                snprintf (name, size, "Mairie du %s arrondissement", s_ordinal (sit->arr));
            break;
        case RELAIS_SOURCE_CABINET:
            snprintf (name, size, "%s", S_ANY (rng, s_cabinets));
            break;
        case RELAIS_SOURCE_ASSOCIATION:
            snprintf (name, size, "%s", S_ANY (rng, s_associations));
            break;
        case RELAIS_SOURCE_MARAUDE:
            snprintf (name, size, "%s", S_ANY (rng, s_maraudes));
            break;
        case RELAIS_SOURCE_INSTITUTION:
            if (sit->place_kind == RELAIS_PLACE_METRO)
                snprintf (name, size, "RATP - Recueil social");
            else
            if (sit->place_kind == RELAIS_PLACE_GARE)
                snprintf (name, size, "SNCF - Sûreté ferroviaire");
            else
            if (s_chance (rng, 700))
                snprintf (name, size, "UASA - DPMP");
            else
                snprintf (name, size, "AP-HP - PASS Lariboisière");
            break;
        default:
            snprintf (name, size, "%s", S_ANY (rng, s_riverains));
            break;
    }
    rep->contact [0] = 0;
    if (s_chance (rng, kind == RELAIS_SOURCE_RIVERAIN? 900: 600)) {
        char phone [20];
        bool desk = kind == RELAIS_SOURCE_CELLULE || kind == RELAIS_SOURCE_MAIRIE
                 || kind == RELAIS_SOURCE_CABINET;
        s_phone (rng, phone, sizeof phone, !desk);
        bool woman = s_chance (rng, 600);
        snprintf (rep->contact, sizeof rep->contact, "%s %s, %s",
                  woman? S_ANY (rng, s_first_f): S_ANY (rng, s_first_m),
                  S_ANY (rng, s_last), phone);
    }
}

static void
s_needs (sim_model_t *self, s_report_t *rep, const s_situation_t *sit)
{
    s_rng_t *rng = &self->rng;
    bool cold = self->scenario == S_COLD_SNAP;
    bool young = sit->minors > 0 || sit->profile == S_MNA;
    bool fragile = (sit->publics & ((1u << RELAIS_PUBLIC_GRANDE_VULNERABILITE)
                                 |  (1u << RELAIS_PUBLIC_PERSONNE_AGEE)
                                 |  (1u << RELAIS_PUBLIC_HANDICAP)
                                 |  (1u << RELAIS_PUBLIC_TROUBLES_PSYCHIQUES))) != 0;
    uint32_t shelter = young || sit->pregnant? 900: sit->profile == S_COUPLE? 600: 450;
    if (cold)
        shelter = shelter + 300 > 970? 970: shelter + 300;
    uint32_t needs = 0;
    if (s_chance (rng, shelter))
        needs |= 1u << RELAIS_NEED_MISE_A_L_ABRI;
    if (s_chance (rng, young? 700: sit->pregnant? 300: 0))
        needs |= 1u << RELAIS_NEED_PROTECTION_ENFANCE;
    if (s_chance (rng, sit->profile == S_VULNERABLE? 700: fragile? 500: sit->pregnant? 400: 150))
        needs |= 1u << RELAIS_NEED_SOINS;
    if (s_chance (rng, cold? 350: 250))
        needs |= 1u << RELAIS_NEED_ALIMENTATION;
    if (s_chance (rng, sit->tents? 400: 200))
        needs |= 1u << RELAIS_NEED_HYGIENE;
    if (s_chance (rng, 200))
        needs |= 1u << RELAIS_NEED_ACCES_DROITS;
    if (s_chance (rng, sit->profile == S_VULNERABLE || young? 600: 350))
        needs |= 1u << RELAIS_NEED_EVALUATION_SOCIALE;
    rep->needs = needs;
    uint32_t immediate = young || sit->pregnant || sit->profile == S_VULNERABLE? 450: 150;
    if (cold)
        immediate += 200;
    if (s_chance (rng, immediate))
        rep->urgency = RELAIS_URGENCY_IMMEDIATE;
    else
        rep->urgency = s_chance (rng, 650)? RELAIS_URGENCY_JOUR: RELAIS_URGENCY_SEMAINE;
    uint32_t sensitive = rep->source_kind == RELAIS_SOURCE_CABINET? 500
                       : rep->source_kind == RELAIS_SOURCE_MAIRIE? 150: 8;
    rep->sensitive = s_chance (rng, sensitive);
    rep->escalate = rep->source_kind == RELAIS_SOURCE_CELLULE && s_chance (rng, 80);
    rep->escalate_reason = rep->escalate? S_ANY (rng, s_escalate_reasons): NULL;
}

//  Free text as a worker would type it; personal (it may name people)
static void
s_summary (sim_model_t *self, s_report_t *rep, const s_situation_t *sit,
           uint32_t permille)
{
    s_rng_t *rng = &self->rng;
    rep->summary [0] = 0;
    if (!s_chance (rng, permille))
        return;
    char *buf = rep->summary;
    size_t size = sizeof rep->summary;
    const char *prefix = self->scenario == S_COLD_SNAP && s_chance (rng, 400)
                       ? "Plan grand froid. ": "";
    static const char *const spots [] = {
        "sous un porche", "devant l'entrée d'un magasin", "sur un matelas au sol",
        "sous l'abri-bus", "contre une bouche d'aération", "dans une tente"
    };
    const char *spot = S_ANY (rng, spots);
    uint32_t age = sit->people_count? self->year - sit->people [0].birth_year
                                    : s_between (rng, 25, 60);
    if (sit->tents > 3)
        snprintf (buf, size, "%sCampement de %u tentes, environ %u personnes. "
                  "Conditions sanitaires dégradées, présence de déchets.",
                  prefix, sit->tents, sit->persons);
    else
    if (sit->profile == S_FAMILLE)
        snprintf (buf, size, "%sFamille de %u personnes dont %u enfant%s, %s depuis hier soir. "
                  "Aucune place famille disponible au 115 ce soir.",
                  prefix, sit->persons, sit->minors, sit->minors > 1? "s": "", spot);
    else
    if (sit->profile == S_MNA)
        snprintf (buf, size, "%sJeune se déclarant mineur (%u ans), arrivé récemment, "
                  "ne parle pas français. Orientation vers l'accueil des mineurs à prévoir.",
                  prefix, sit->people_count? age: s_between (rng, 14, 17));
    else
    if (sit->profile == S_COUPLE)
        snprintf (buf, size, "%sCouple installé %s, refuse d'être séparé%s.", prefix, spot,
                  sit->pregnant? ", madame enceinte de plusieurs mois": "");
    else
    if (sit->people_count && s_chance (rng, 500)) {
        const s_person_t *person = &sit->people [0];
        const char *last = strchr (person->name, ' ');
        snprintf (buf, size, "%s%s %s, %u ans, connu%s de la maraude, %s.\n"
                  "Rappel prévu en fin de journée.",
                  prefix, person->sex == 'F'? "Madame": "Monsieur", last? last + 1: person->name,
                  age, person->sex == 'F'? "e": "", spot);
    }
    else
        snprintf (buf, size, "%sPersonne d'environ %u ans %s, %s.", prefix, age, spot,
                  sit->publics & (1u << RELAIS_PUBLIC_GRANDE_VULNERABILITE)
                  ? "état de santé préoccupant, ne s'alimente plus"
                  : "demande une mise à l'abri pour la nuit");
}

//  ---------------------------------------------------------------------------
//  Packing

static void
s_pack_place (msgpack_packer *pk, const s_situation_t *sit)
{
    msgpack_pack_map (pk, 2 + (sit->address [0] != 0) + (sit->has_geo? 2: 0));
    relais_pack_kv_uint (pk, "arrondissement", sit->arr);
    relais_pack_kv_str (pk, "kind", relais_place_kind_names [sit->place_kind]);
    if (sit->address [0])
        relais_pack_kv_str (pk, "address", sit->address);
    if (sit->has_geo) {
        //  One division of exact integers: the same double everywhere
        relais_pack_str (pk, "lat");
        msgpack_pack_double (pk, (double) sit->lat / 100000.0);
        relais_pack_str (pk, "lon");
        msgpack_pack_double (pk, (double) sit->lon / 100000.0);
    }
}

static void
s_pack_people (msgpack_packer *pk, const s_situation_t *sit)
{
    msgpack_pack_array (pk, sit->people_count);
    for (uint32_t i = 0; i < sit->people_count; i++) {
        const s_person_t *person = &sit->people [i];
        msgpack_pack_map (pk, 3 + (person->phone [0] != 0) + (person->siao_id [0] != 0));
        relais_pack_kv_str (pk, "name", person->name);
        relais_pack_kv_uint (pk, "birth_year", person->birth_year);
        char sex [2] = { person->sex, 0 };
        relais_pack_kv_str (pk, "sex", sex);
        if (person->phone [0])
            relais_pack_kv_str (pk, "phone", person->phone);
        if (person->siao_id [0])
            relais_pack_kv_str (pk, "siao_id", person->siao_id);
    }
}

//  The signal map as a producer sends it: optional fields only when set
static void
s_pack_signal (msgpack_packer *pk, const s_situation_t *sit, const s_report_t *rep)
{
    uint32_t pairs = 7                          //  source observed_at place persons
                   + (sit->minors > 0)          //  publics needs urgency
                   + (sit->pregnant > 0)
                   + (sit->tents > 0)
                   + (rep->sensitive? 1: 0)
                   + (rep->escalate? 2: 0)
                   + (rep->summary [0] != 0)
                   + (sit->people_count > 0);
    msgpack_pack_map (pk, pairs);
    relais_pack_str (pk, "source");
    msgpack_pack_map (pk, 2 + (rep->contact [0] != 0));
    relais_pack_kv_str (pk, "kind", relais_source_kind_names [rep->source_kind]);
    relais_pack_kv_str (pk, "name", rep->source_name);
    if (rep->contact [0])
        relais_pack_kv_str (pk, "contact", rep->contact);
    relais_pack_kv_uint (pk, "observed_at", rep->observed_at);
    relais_pack_str (pk, "place");
    s_pack_place (pk, sit);
    relais_pack_kv_uint (pk, "persons", sit->persons);
    relais_pack_str (pk, "publics");
    relais_pack_mask (pk, sit->publics, relais_public_names, RELAIS_PUBLIC_COUNT);
    if (sit->minors)
        relais_pack_kv_uint (pk, "minors", sit->minors);
    if (sit->pregnant)
        relais_pack_kv_uint (pk, "pregnant", sit->pregnant);
    if (sit->tents)
        relais_pack_kv_uint (pk, "tents", sit->tents);
    relais_pack_str (pk, "needs");
    relais_pack_mask (pk, rep->needs, relais_need_names, RELAIS_NEED_COUNT);
    relais_pack_kv_str (pk, "urgency", relais_urgency_names [rep->urgency]);
    if (rep->sensitive)
        relais_pack_kv_bool (pk, "sensitive", true);
    if (rep->escalate) {
        relais_pack_kv_bool (pk, "escalate", true);
        relais_pack_kv_str (pk, "escalate_reason", rep->escalate_reason);
    }
    if (rep->summary [0])
        relais_pack_kv_str (pk, "summary", rep->summary);
    if (sit->people_count) {
        relais_pack_str (pk, "people");
        s_pack_people (pk, sit);
    }
}

//  ---------------------------------------------------------------------------
//  Follow-ups

static s_pending_t *
s_pending_add (sim_model_t *self, uint64_t n, const s_situation_t *sit)
{
    if (self->pending_count == self->pending_room) {
        size_t room = self->pending_room? self->pending_room * 2: 64;
        s_pending_t **bigger = (s_pending_t **) realloc (self->pending, room * sizeof *bigger);
        if (!bigger)
            return NULL;
        self->pending = bigger;
        self->pending_room = room;
    }
    s_pending_t *rec = (s_pending_t *) calloc (1, sizeof *rec);
    if (!rec)
        return NULL;
    rec->n = n;
    rec->sit = *sit;
    //  Its own stream: its updates read the same whenever they are sent
    s_rng_seed (&rec->rng, self->seed ^ (n * 0xd1342543de82ef95ULL) ^ 0x5eedf011ULL);
    self->pending [self->pending_count++] = rec;      //  n only grows: stays sorted
    return rec;
}

static size_t
s_pending_find (sim_model_t *self, uint64_t n)
{
    size_t lo = 0, hi = self->pending_count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (self->pending [mid]->n < n)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < self->pending_count && self->pending [lo]->n == n? lo: SIZE_MAX;
}

static void
s_pending_remove (sim_model_t *self, size_t index)
{
    free (self->pending [index]);
    memmove (self->pending + index, self->pending + index + 1,
             (self->pending_count - index - 1) * sizeof (s_pending_t *));
    self->pending_count--;
}

//  The acked follow-up to send now: smallest (due, n); NULL when none.
static s_pending_t *
s_pending_next (sim_model_t *self)
{
    s_pending_t *best = NULL;
    for (size_t i = 0; i < self->pending_count; i++) {
        s_pending_t *rec = self->pending [i];
        if (!rec->id [0] || rec->due > self->submits)
            continue;
        if (!rec->updates_left && !rec->close_reason)
            continue;                   //  a camp report waiting for the operation
        if (!best || rec->due < best->due)
            best = rec;
    }
    return best;
}

static void
s_pack_update (sim_model_t *self, msgpack_packer *pk, s_pending_t *rec,
               sim_event_info_t *info)
{
    s_rng_t *rng = &rec->rng;
    s_situation_t *sit = &rec->sit;
    enum { C_TENTS, C_PERSONS, C_URGENCY, C_SUMMARY, C_PEOPLE };
    int first, second = -1;
    if (sit->tents > 0)
        first = C_TENTS;
    else {
        static const uint16_t weights [] = { 0, 250, 300, 300, 150 };
        first = s_pick (rng, weights, 5);
        if (s_chance (rng, 300)) {
            second = s_pick (rng, weights, 5);
            if (second == first)
                second = -1;
        }
    }
    if (first == C_PEOPLE && sit->people_count >= S_PEOPLE_MAX)
        first = C_URGENCY;
    if ((second == C_PEOPLE && sit->people_count >= S_PEOPLE_MAX) || second == first)
        second = -1;
    int changes [2] = { first, second };
    uint32_t pairs = 0;
    for (int i = 0; i < 2; i++)
        if (changes [i] >= 0)
            pairs += changes [i] == C_TENTS || changes [i] == C_URGENCY? 2: 1;
    msgpack_pack_map (pk, pairs);
    for (int i = 0; i < 2; i++) {
        switch (changes [i]) {
            case C_TENTS: {
                //  Camps grow between visits; small ones come and go
                uint32_t tents = sit->tents > 3? sit->tents + s_between (rng, 1, 5)
                                               : s_between (rng, 1, 5);
                sit->tents = tents;
                if (sit->persons < tents)
                    sit->persons = tents + s_below (rng, tents / 2 + 1);
                relais_pack_kv_uint (pk, "tents", sit->tents);
                relais_pack_kv_uint (pk, "persons", sit->persons);
                break;
            }
            case C_PERSONS:
                sit->persons += s_between (rng, 1, 2);
                relais_pack_kv_uint (pk, "persons", sit->persons);
                break;
            case C_URGENCY: {
                relais_pack_kv_str (pk, "urgency", "immediate");
                relais_pack_str (pk, "needs");
                uint32_t needs = (1u << RELAIS_NEED_MISE_A_L_ABRI) | (1u << RELAIS_NEED_SOINS);
                if (sit->minors)
                    needs |= 1u << RELAIS_NEED_PROTECTION_ENFANCE;
                relais_pack_mask (pk, needs, relais_need_names, RELAIS_NEED_COUNT);
                break;
            }
            case C_SUMMARY: {
                static const char *const visits [] = {
                    "Nouveau passage de la maraude : situation inchangée, a accepté un repas.",
                    "Repassé ce matin : la personne a quitté les lieux dans la nuit.",
                    "Rappel du 115 : toujours sans solution, état de fatigue important.",
                    "Visite de l'équipe : demande d'hébergement renouvelée."
                };
                char summary [256];
                snprintf (summary, sizeof summary, "%s (visite %u)", S_ANY (rng, visits),
                          rec->update_no + 1);
                s_strset_add (&self->personal, summary);
                relais_pack_kv_str (pk, "summary", summary);
                break;
            }
            case C_PEOPLE: {
                //  Someone gave a name: the list is replaced as a whole
                s_person_t *person = &sit->people [sit->people_count];
                s_rng_t saved = self->rng;
                self->rng = *rng;                   //  draw from the report's stream
                bool minor = sit->minors > sit->people_count;
                s_person (self, person, NULL, minor, sit->profile == S_AGEE, 0);
                *rng = self->rng;
                self->rng = saved;
                sit->people_count++;
                s_register_situation (self, sit);
                relais_pack_str (pk, "people");
                s_pack_people (pk, sit);
                break;
            }
            default:
                break;
        }
    }
    info->tents = sit->tents;
    info->persons = sit->persons;
}

static void
s_info_from (sim_event_info_t *info, const s_situation_t *sit)
{
    info->arrondissement = sit->arr;
    info->place_kind = sit->place_kind;
    info->persons = sit->persons;
    info->minors = sit->minors;
    info->pregnant = sit->pregnant;
    info->tents = sit->tents;
    info->publics = sit->publics;
    snprintf (info->address, sizeof info->address, "%s", sit->address);
}

//  Emit the next follow-up of rec; forget rec once it has nothing left
static void
s_emit_followup (sim_model_t *self, s_pending_t *rec, msgpack_packer *pk,
                 sim_event_info_t *info)
{
    s_info_from (info, &rec->sit);
    info->n = rec->n;
    info->camp = rec->camp;
    snprintf (info->id, sizeof info->id, "%s", rec->id);
    info->gap_us = self->mean_gap_us;
    if (rec->updates_left) {
        info->op = SIM_OP_UPDATE;
        rec->update_no++;
        rec->updates_left--;
        snprintf (info->idem, sizeof info->idem, "sim-%llu-%llu-%llu-u%u",
                  (unsigned long long) self->seed, (unsigned long long) self->start_s,
                  (unsigned long long) rec->n, rec->update_no);
        msgpack_pack_map (pk, 4);
        relais_pack_kv_str (pk, "op", "update");
        relais_pack_kv_str (pk, "idem", info->idem);
        relais_pack_kv_str (pk, "id", rec->id);
        relais_pack_str (pk, "changes");
        s_pack_update (self, pk, rec, info);
        self->truth.updates++;
        rec->due = self->submits + 1 + s_below (&rec->rng, 40);
    }
    else {
        info->op = SIM_OP_CLOSE;
        info->reason = rec->close_reason;
        snprintf (info->idem, sizeof info->idem, "sim-%llu-%llu-%llu-c",
                  (unsigned long long) self->seed, (unsigned long long) self->start_s,
                  (unsigned long long) rec->n);
        msgpack_pack_map (pk, 4);
        relais_pack_kv_str (pk, "op", "close");
        relais_pack_kv_str (pk, "idem", info->idem);
        relais_pack_kv_str (pk, "id", rec->id);
        relais_pack_kv_str (pk, "reason", rec->close_reason);
        self->truth.closes++;
        rec->close_reason = NULL;
    }
    if (!rec->updates_left && !rec->close_reason && !rec->camp)
        s_pending_remove (self, s_pending_find (self, rec->n));
}

//  ---------------------------------------------------------------------------
//  The encampment storyline

static void
s_camp_start (sim_model_t *self)
{
    s_rng_t *rng = &self->rng;
    static const uint32_t arrs [] = { 18, 19, 10, 12, 16, 13, 20, 19, 18 };
    uint32_t arr = arrs [s_below (rng, sizeof arrs / sizeof arrs [0])];
    if (arr == self->camp.arr)
        arr = arr == 18? 19: 18;            //  the next camp forms elsewhere
    memset (&self->camp.sit, 0, sizeof self->camp.sit);
    s_situation_t *sit = &self->camp.sit;
    sit->profile = S_GROUPE_HOMMES;
    sit->arr = arr;
    if ((arr == 12 || arr == 16) && s_chance (rng, 600))
        sit->place_kind = RELAIS_PLACE_BOIS;
    else
    if (s_chance (rng, 400))
        sit->place_kind = RELAIS_PLACE_TALUS;
    else
        sit->place_kind = RELAIS_PLACE_VOIE_PUBLIQUE;
    s_place (self, sit, true, true);
    if (sit->place_kind == RELAIS_PLACE_VOIE_PUBLIQUE) {
        //  Camps settle under bridges and along the canals
        snprintf (sit->address, sizeof sit->address, "%s, sous le pont, au niveau du %u",
                  s_street (rng, arr), s_between (rng, 1, 120));
    }
    sit->tents = s_between (rng, 4, 7);
    sit->persons = sit->tents + s_below (rng, sit->tents);
    sit->publics = 1u << RELAIS_PUBLIC_HOMME_ISOLE;
    if (s_chance (rng, 500))
        sit->publics |= 1u << RELAIS_PUBLIC_COUPLE;
    self->camp.arr = arr;
    self->camp.active = true;
    self->camp.reports = 0;
    self->camp.target = s_between (rng, 25, 40);
    self->camp.number++;
}

//  The camp as one more producer sees it today
static void
s_camp_report (sim_model_t *self, s_situation_t *sit)
{
    s_rng_t *rng = &self->rng;
    s_situation_t *camp = &self->camp.sit;
    camp->tents += s_below (rng, 4);
    if (camp->tents > 90)
        camp->tents = 90;
    camp->persons = camp->tents + s_below (rng, camp->tents);
    if (self->camp.reports == 6 && !(camp->publics & (1u << RELAIS_PUBLIC_FAMILLE))) {
        camp->publics |= (1u << RELAIS_PUBLIC_FAMILLE) | (1u << RELAIS_PUBLIC_ENFANT);
        camp->minors = s_between (rng, 2, 6);
    }
    if (camp->persons < camp->minors + 1)
        camp->persons = camp->minors + 1;
    *sit = *camp;
    //  Producers do not count alike
    uint32_t miss = s_below (rng, 3);
    sit->tents = camp->tents - miss < 4? 4: camp->tents - miss;
    s_people (self, sit, 200);
    self->camp.reports++;
}

//  Close every report of the camp: the operation is over
static void
s_camp_operation (sim_model_t *self)
{
    uint32_t order = 0;
    for (size_t i = 0; i < self->pending_count; i++) {
        s_pending_t *rec = self->pending [i];
        if (!rec->camp)
            continue;
        rec->camp = false;
        rec->updates_left = 0;
        rec->close_reason = "resolu";
        rec->due = self->submits + 1 + order++ / 2;
    }
    self->camp.active = false;
    self->camp.quiet = s_between (&self->rng, 60, 180);
}

//  ---------------------------------------------------------------------------
//  A submit

static void
s_emit_submit (sim_model_t *self, msgpack_packer *pk, sim_event_info_t *info)
{
    s_rng_t *rng = &self->rng;
    uint64_t n = ++self->submits;
    //  Time first: the cold-weather plan triples the pace once it starts
    uint64_t factor = self->scenario == S_COLD_SNAP && n > S_COLD_WARMUP? S_COLD_FACTOR: 1;
    uint64_t gap = self->mean_gap_us * (500 + s_below (rng, 1001)) / (1000 * factor);
    if (n > 1)
        self->sim_us += gap;
    else
        gap = 0;

    s_situation_t sit;
    s_report_t rep;
    memset (&rep, 0, sizeof rep);
    bool repeat = false, camp = false, operation = false;
    if (self->scenario == S_ENCAMPMENT && !self->camp.active) {
        if (self->camp.quiet)
            self->camp.quiet--;
        else
            s_camp_start (self);
    }
    if (self->scenario == S_ENCAMPMENT && self->camp.active
    &&  self->camp.reports >= self->camp.target) {
        operation = true;
        camp = true;
        sit = self->camp.sit;
        sit.people_count = 0;
    }
    else
    if (self->scenario == S_ENCAMPMENT && self->camp.active
    &&  (self->camp.reports == 0 || s_chance (rng, 350))) {
        camp = true;
        s_camp_report (self, &sit);
    }
    else
    if (self->ring_count && s_chance (rng, S_REPEAT_PERMILLE)) {
        //  The same place and people again, seen by someone else
        repeat = true;
        sit = self->ring [s_below (rng, (uint32_t) self->ring_count)];
        if (sit.tents > 3)
            sit.tents += s_below (rng, 3);
    }
    else {
        s_new_situation (self, &sit, 450);
    }

    //  Who reports it
    if (operation) {
        rep.source_kind = RELAIS_SOURCE_INSTITUTION;
        snprintf (rep.source_name, sizeof rep.source_name,
                  "DRIHL - opération de mise à l'abri");
        rep.needs = (1u << RELAIS_NEED_MISE_A_L_ABRI) | (1u << RELAIS_NEED_EVALUATION_SOCIALE);
        if (sit.minors)
            rep.needs |= 1u << RELAIS_NEED_PROTECTION_ENFANCE;
        rep.urgency = RELAIS_URGENCY_IMMEDIATE;
        rep.sensitive = true;
        snprintf (rep.summary, sizeof rep.summary,
                  "Opération de mise à l'abri ce matin : %u tentes démontées, %u personnes "
                  "orientées vers des centres d'hébergement et des sas.",
                  sit.tents, sit.persons);
    }
    else {
        const uint16_t *weights = self->scenario == S_COLD_SNAP? s_source_cold: s_source_day;
        relais_source_kind_t kind = (relais_source_kind_t) s_pick (rng, weights,
                                                                   RELAIS_SOURCE_COUNT);
        if (camp && kind == RELAIS_SOURCE_CABINET)
            kind = RELAIS_SOURCE_MAIRIE;
        s_source (self, &rep, &sit, kind);
        s_needs (self, &rep, &sit);
        s_summary (self, &rep, &sit, camp? 700: 500);
    }
    uint64_t lag = (uint64_t) s_below (rng, S_LAG_MAX_S) * 1000000ULL;
    uint64_t now = self->start_us + self->sim_us;
    rep.observed_at = now > lag + 946684800000000ULL? now - lag: now;

    //  What happens to it next: planned now, so the plan does not depend
    //  on when intake answers
    uint32_t updates = 0;
    const char *close = NULL;
    if (camp && !operation)
        updates = s_chance (rng, 250)? 1: 0;
    else
    if (!operation) {
        uint32_t draw = s_below (rng, 1000);
        updates = draw < 20? 2: draw < 100? 1: 0;
        if (s_chance (rng, repeat? 300: 150)) {
            close = s_close_reasons [s_pick (rng, s_close_weights, 6)];
            if (repeat && s_chance (rng, 300))
                close = "doublon";
        }
    }
    else
        close = "resolu";
    uint64_t due = n + 3 + s_below (rng, 60);

    s_strset_add (&self->personal, rep.contact);
    s_strset_add (&self->personal, rep.summary);
    s_strset_add (&self->personal, rep.escalate_reason);
    s_register_situation (self, &sit);

    snprintf (info->idem, sizeof info->idem, "sim-%llu-%llu-%llu",
              (unsigned long long) self->seed, (unsigned long long) self->start_s,
              (unsigned long long) n);
    msgpack_pack_map (pk, 3);
    relais_pack_kv_str (pk, "op", "submit");
    relais_pack_kv_str (pk, "idem", info->idem);
    relais_pack_str (pk, "signal");
    s_pack_signal (pk, &sit, &rep);

    info->op = SIM_OP_SUBMIT;
    info->n = n;
    info->gap_us = gap;
    info->observed_at = rep.observed_at;
    info->source_kind = rep.source_kind;
    info->needs = rep.needs;
    info->repeat = repeat;
    info->camp = camp;
    s_info_from (info, &sit);

    sim_truth_t *truth = &self->truth;
    truth->submits++;
    for (int i = 0; i < RELAIS_PUBLIC_COUNT; i++)
        if (sit.publics & (1u << i))
            truth->by_public [i]++;
    truth->by_arrondissement [sit.arr]++;
    truth->by_source [rep.source_kind]++;
    truth->by_place [sit.place_kind]++;
    truth->with_minors += sit.minors > 0;
    truth->with_pregnant += sit.pregnant > 0;
    truth->encampments += sit.tents > 3;
    truth->with_geo += sit.has_geo;
    truth->with_address += sit.address [0] != 0;
    truth->with_people += sit.people_count > 0;
    truth->sensitive += rep.sensitive;
    truth->escalate += rep.escalate;
    truth->repeats += repeat;
    truth->mise_a_l_abri += (rep.needs & (1u << RELAIS_NEED_MISE_A_L_ABRI)) != 0;
    truth->persons += sit.persons;

    if (!camp && !repeat) {
        self->ring [self->ring_next] = sit;
        self->ring_next = (self->ring_next + 1) % S_RING_SIZE;
        if (self->ring_count < S_RING_SIZE)
            self->ring_count++;
    }
    if (updates || close || camp) {
        s_pending_t *rec = s_pending_add (self, n, &sit);
        if (rec) {
            rec->updates_left = updates;
            rec->close_reason = close;
            rec->camp = camp && !operation;
            rec->due = operation? n + 2: due;
        }
    }
    if (operation)
        s_camp_operation (self);
    if (self->self_ack) {
        char id [SIM_ID_MAX + 1];
        snprintf (id, sizeof id, "SIG-DRY-%llu", (unsigned long long) n);
        sim_model_acked (self, n, id);
    }
}

//  ---------------------------------------------------------------------------
//  Public API

sim_model_t *
sim_model_new (uint64_t seed, const char *scenario, uint64_t start_us)
{
    int index = -1;
    for (int i = 0; sim_model_scenarios [i]; i++)
        if (scenario && strcmp (scenario, sim_model_scenarios [i]) == 0)
            index = i;
    if (index < 0)
        return NULL;
    sim_model_t *self = (sim_model_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->ring = (s_situation_t *) calloc (S_RING_SIZE, sizeof *self->ring);
    if (!self->ring) {
        sim_model_destroy (&self);
        return NULL;
    }
    self->seed = seed;
    self->scenario = (s_scenario_t) index;
    self->start_us = start_us;
    self->start_s = start_us / 1000000;
    self->year = (uint32_t) (1970 + start_us / S_YEAR_US);
    self->mean_gap_us = 200000;
    //  The scenario is part of the seed: "day" and "cold-snap" differ from
    //  the first report
    s_rng_seed (&self->rng, seed * 3 + (uint64_t) index);
    return self;
}

void
sim_model_destroy (sim_model_t **self_p)
{
    assert (self_p);
    sim_model_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->pending_count; i++)
        free (self->pending [i]);
    free (self->pending);
    free (self->ring);
    s_strset_free (&self->personal);
    free (self);
    *self_p = NULL;
}

void
sim_model_set_rate (sim_model_t *self, double rate)
{
    assert (self);
    if (rate > 0 && rate <= 1e6)
        self->mean_gap_us = (uint64_t) (1000000.0 / rate + 0.5);
}

void
sim_model_self_ack (sim_model_t *self, bool enable)
{
    assert (self);
    self->self_ack = enable;
}

int
sim_model_next (sim_model_t *self, msgpack_sbuffer *request, sim_event_info_t *info)
{
    assert (self);
    assert (request);
    sim_event_info_t scratch;
    if (!info)
        info = &scratch;
    memset (info, 0, sizeof *info);
    msgpack_sbuffer_clear (request);
    msgpack_packer pk;
    msgpack_packer_init (&pk, request, msgpack_sbuffer_write);
    s_pending_t *rec = s_pending_next (self);
    if (rec)
        s_emit_followup (self, rec, &pk, info);
    else
        s_emit_submit (self, &pk, info);
    info->index = ++self->truth.requests;
    info->sim_us = self->sim_us;
    return 0;
}

int
sim_model_acked (sim_model_t *self, uint64_t n, const char *id)
{
    assert (self);
    assert (id);
    size_t index = s_pending_find (self, n);
    if (index == SIZE_MAX)
        return -1;
    snprintf (self->pending [index]->id, sizeof self->pending [index]->id, "%s", id);
    return 0;
}

void
sim_model_failed (sim_model_t *self, uint64_t n)
{
    assert (self);
    size_t index = s_pending_find (self, n);
    if (index != SIZE_MAX)
        s_pending_remove (self, index);
}

size_t
sim_model_pending (sim_model_t *self)
{
    assert (self);
    size_t count = 0;
    for (size_t i = 0; i < self->pending_count; i++)
        count += self->pending [i]->updates_left + (self->pending [i]->close_reason != NULL);
    return count;
}

const sim_truth_t *
sim_model_truth (sim_model_t *self)
{
    assert (self);
    return &self->truth;
}

size_t
sim_model_personal_count (sim_model_t *self)
{
    assert (self);
    return self->personal.count;
}

const char *
sim_model_personal (sim_model_t *self, size_t index)
{
    assert (self);
    return index < self->personal.count? self->personal.items [index]: NULL;
}
