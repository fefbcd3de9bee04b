/*  The report simulator's model: the same seed gives the same bytes, every
    request follows the wire contract, the mix of publics, arrondissements
    and producers is within the bounds stated below, and the scenarios do
    what they say. Only dry-run acks (the model's own "SIG-DRY-<n>") and
    acks in a different order are used: no network. */
#include "sim_model.h"
#include "relais_test.h"

#include <string.h>

#define S_START     1736928000000000ULL     //  2025-01-15T08:00:00Z
#define S_NOW       (S_START + 2 * 86400000000ULL)

typedef struct {
    msgpack_sbuffer sbuf;
    sim_event_info_t info;
} s_req_t;

static sim_model_t *
s_model (uint64_t seed, const char *scenario)
{
    sim_model_t *model = sim_model_new (seed, scenario, S_START);
    CHECK (model);
    sim_model_self_ack (model, true);
    return model;
}

//  Share of the submits, in per mille
static uint64_t
s_permille (uint64_t count, uint64_t total)
{
    return total? count * 1000 / total: 0;
}

static void
test_same_seed_same_bytes (void)
{
    const char *scenarios [] = { "day", "cold-snap", "encampment" };
    for (int s = 0; s < 3; s++) {
        sim_model_t *a = s_model (42, scenarios [s]);
        sim_model_t *b = s_model (42, scenarios [s]);
        msgpack_sbuffer ra, rb;
        msgpack_sbuffer_init (&ra);
        msgpack_sbuffer_init (&rb);
        uint64_t updates = 0, closes = 0;
        for (int i = 0; i < 2000; i++) {
            sim_event_info_t ia, ib;
            CHECK_OK (sim_model_next (a, &ra, &ia));
            CHECK_OK (sim_model_next (b, &rb, &ib));
            CHECK (ra.size == rb.size);
            CHECK (memcmp (ra.data, rb.data, ra.size) == 0);
            CHECK (ia.gap_us == ib.gap_us);
            updates += ia.op == SIM_OP_UPDATE;
            closes += ia.op == SIM_OP_CLOSE;
        }
        //  The stream holds updates and closes, not only submits
        CHECK (updates > 20);
        CHECK (closes > 20);
        CHECK (sim_model_personal_count (a) == sim_model_personal_count (b));
        msgpack_sbuffer_destroy (&ra);
        msgpack_sbuffer_destroy (&rb);
        sim_model_destroy (&a);
        sim_model_destroy (&b);
        CHECK (a == NULL && b == NULL);
    }
}

static void
test_other_seed_other_bytes (void)
{
    sim_model_t *a = s_model (1, "day");
    sim_model_t *b = s_model (2, "day");
    msgpack_sbuffer ra, rb;
    msgpack_sbuffer_init (&ra);
    msgpack_sbuffer_init (&rb);
    int same = 0;
    for (int i = 0; i < 200; i++) {
        CHECK_OK (sim_model_next (a, &ra, NULL));
        CHECK_OK (sim_model_next (b, &rb, NULL));
        same += ra.size == rb.size && memcmp (ra.data, rb.data, ra.size) == 0;
    }
    CHECK (same == 0);          //  the idem alone differs
    msgpack_sbuffer_destroy (&ra);
    msgpack_sbuffer_destroy (&rb);
    sim_model_destroy (&a);
    sim_model_destroy (&b);

    CHECK (sim_model_new (1, "heatwave", S_START) == NULL);
    CHECK (sim_model_new (1, NULL, S_START) == NULL);
}

//  Every request decodes within the frame limits, has the shape of
//  PROTOCOL §5, and its signal (or changes) passes proto's own parser.
static void
s_check_contract (const char *scenario, int count)
{
    sim_model_t *model = s_model (7, scenario);
    relais_signal_t *sigs = (relais_signal_t *) calloc ((size_t) count + 1, sizeof *sigs);
    CHECK (sigs);
    msgpack_sbuffer req;
    msgpack_sbuffer_init (&req);
    for (int i = 0; i < count; i++) {
        sim_event_info_t info;
        CHECK_OK (sim_model_next (model, &req, &info));
        CHECK (info.index == (uint64_t) i + 1);
        CHECK (req.size < RELAIS_MSG_MAX_BYTES);
        relais_msg_t msg;
        relais_error_t err;
        CHECK_OK (relais_msg_decode (&msg, req.data, req.size, NULL, &err));
        const msgpack_object *root = &msg.root;
        CHECK (relais_msg_str_eq (relais_msg_get (root, "idem"), info.idem));
        CHECK (strlen (info.idem) <= 128);
        if (info.op == SIM_OP_SUBMIT) {
            CHECK (relais_msg_str_eq (relais_msg_get (root, "op"), "submit"));
            CHECK (info.n <= (uint64_t) count);
            relais_signal_t *sig = &sigs [info.n];
            int rc = relais_signal_parse (relais_msg_get (root, "signal"), "signal",
                                          S_NOW, sig, &err);
            if (rc)
                fprintf (stderr, "%s #%d: %s at %s: %s\n", scenario, i + 1, err.code,
                         err.field, err.message);
            CHECK (rc == 0);
            CHECK (sig->arrondissement == info.arrondissement);
            CHECK (sig->publics == info.publics);
            CHECK (sig->tents == info.tents);
            CHECK (sig->observed_at == info.observed_at);
            CHECK (sig->observed_at + 2700000000ULL >= S_START);
            CHECK (sig->observed_at <= S_START + info.sim_us);
            if (sig->source_kind == RELAIS_SOURCE_CELLULE) {
                char name [64];
                snprintf (name, sizeof name, "Cellule de veille sociale du %u%s",
                          sig->arrondissement, sig->arrondissement == 1? "er": "e");
                CHECK_STR (sig->source_name, name);
            }
            if (sig->has_geo) {
                CHECK (sig->lat >= 48.80 && sig->lat <= 48.91);
                CHECK (sig->lon >= 2.22 && sig->lon <= 2.48);
            }
        }
        else {
            //  Follow-ups only name reports acknowledged before
            char id [32];
            snprintf (id, sizeof id, "SIG-DRY-%llu", (unsigned long long) info.n);
            CHECK (relais_msg_str_eq (relais_msg_get (root, "id"), id));
            CHECK (info.n >= 1 && info.n <= (uint64_t) count);
            relais_signal_t *sig = &sigs [info.n];
            CHECK (sig->persons >= 1);              //  its submit came first
            if (info.op == SIM_OP_UPDATE) {
                CHECK (relais_msg_str_eq (relais_msg_get (root, "op"), "update"));
                int rc = relais_signal_apply_changes (sig, relais_msg_get (root, "changes"),
                                                      "changes", S_NOW, &err);
                if (rc)
                    fprintf (stderr, "%s #%d: %s at %s: %s\n", scenario, i + 1, err.code,
                             err.field, err.message);
                CHECK (rc == 0);
            }
            else {
                CHECK (relais_msg_str_eq (relais_msg_get (root, "op"), "close"));
                const msgpack_object *reason = relais_msg_get (root, "reason");
                CHECK (relais_msg_str_eq (reason, info.reason));
                CHECK (strstr (" pris_en_charge resolu doublon erreur sans_suite autre ",
                               info.reason));
                sig->persons = 0;                   //  no update may follow
            }
        }
        relais_msg_release (&msg);
    }
    msgpack_sbuffer_destroy (&req);
    free (sigs);
    sim_model_destroy (&model);
}

static void
test_every_request_valid (void)
{
    s_check_contract ("day", 3000);
    s_check_contract ("cold-snap", 3000);
    s_check_contract ("encampment", 3000);
}

//  Run n submits of scenario (follow-ups in between) and return the model
static sim_model_t *
s_run_submits (const char *scenario, uint64_t seed, uint64_t submits)
{
    sim_model_t *model = s_model (seed, scenario);
    msgpack_sbuffer req;
    msgpack_sbuffer_init (&req);
    while (sim_model_truth (model)->submits < submits)
        CHECK_OK (sim_model_next (model, &req, NULL));
    msgpack_sbuffer_destroy (&req);
    return model;
}

static void
test_day_distribution (void)
{
    sim_model_t *model = s_run_submits ("day", 2025, 10000);
    const sim_truth_t *t = sim_model_truth (model);
    uint64_t n = t->submits;
    CHECK (n == 10000);
    uint64_t homme = s_permille (t->by_public [RELAIS_PUBLIC_HOMME_ISOLE], n);
    uint64_t femme = s_permille (t->by_public [RELAIS_PUBLIC_FEMME_ISOLEE], n);
    uint64_t famille = s_permille (t->by_public [RELAIS_PUBLIC_FAMILLE], n);
    uint64_t couple = s_permille (t->by_public [RELAIS_PUBLIC_COUPLE], n);
    uint64_t mna = s_permille (t->by_public [RELAIS_PUBLIC_MINEUR_NON_ACCOMPAGNE], n);
    uint64_t gv = s_permille (t->by_public [RELAIS_PUBLIC_GRANDE_VULNERABILITE], n);
    uint64_t enceinte = s_permille (t->with_pregnant, n);
    fprintf (stderr, "    day: homme_isole %llu‰ femme_isolee %llu‰ famille %llu‰ couple %llu‰ "
             "mna %llu‰ gv %llu‰ pregnant %llu‰\n",
             (unsigned long long) homme, (unsigned long long) femme,
             (unsigned long long) famille, (unsigned long long) couple,
             (unsigned long long) mna, (unsigned long long) gv,
             (unsigned long long) enceinte);
    //  Publics: the stated bounds (share of reports naming the public)
    CHECK (homme >= 480 && homme <= 660);           //  isolated men: most reports
    CHECK (femme >= 100 && femme <= 220);
    CHECK (famille >= 90 && famille <= 170);
    CHECK (couple >= 40 && couple <= 100);
    CHECK (mna >= 20 && mna <= 60);
    CHECK (gv >= 60 && gv <= 140);
    CHECK (enceinte >= 20 && enceinte <= 60);
    CHECK (homme > 3 * famille);

    //  Arrondissements: the north and east weigh most, the centre-west least
    uint64_t arr [21];
    for (int i = 1; i <= 20; i++) {
        arr [i] = s_permille (t->by_arrondissement [i], n);
        CHECK (t->by_arrondissement [i] > 0);       //  all twenty appear
    }
    fprintf (stderr, "    day: arr 18 %llu‰ 19 %llu‰ 10 %llu‰ 12 %llu‰ 7 %llu‰ 6 %llu‰ 2 %llu‰\n",
             (unsigned long long) arr [18], (unsigned long long) arr [19],
             (unsigned long long) arr [10], (unsigned long long) arr [12],
             (unsigned long long) arr [7], (unsigned long long) arr [6],
             (unsigned long long) arr [2]);
    CHECK (arr [18] >= 100 && arr [18] <= 170);
    CHECK (arr [19] >= 90 && arr [19] <= 160);
    CHECK (arr [10] >= 70 && arr [10] <= 130);
    CHECK (arr [12] >= 50);
    CHECK (arr [16] >= 30);
    CHECK (arr [7] <= 20);
    CHECK (arr [6] <= 20);
    CHECK (arr [2] <= 20);
    CHECK (arr [18] + arr [19] + arr [10] + arr [20] >= 350);

    //  Producers: the 115 most, then cellules and maraudes; a few of the rest
    uint64_t p115 = s_permille (t->by_source [RELAIS_SOURCE_115], n);
    CHECK (p115 >= 350 && p115 <= 500);
    CHECK (t->by_source [RELAIS_SOURCE_CELLULE] > t->by_source [RELAIS_SOURCE_MAIRIE]);
    CHECK (t->by_source [RELAIS_SOURCE_MARAUDE] > t->by_source [RELAIS_SOURCE_ASSOCIATION]);
    CHECK (t->by_source [RELAIS_SOURCE_RIVERAIN] > 0 && t->by_source [RELAIS_SOURCE_CABINET] > 0);
    CHECK (s_permille (t->by_source [RELAIS_SOURCE_CABINET], n) <= 20);

    //  Places: the street most; bois only where there is one
    CHECK (s_permille (t->by_place [RELAIS_PLACE_VOIE_PUBLIQUE], n) >= 450);
    uint64_t municipal = s_permille (t->by_place [RELAIS_PLACE_DOMAINE_MUNICIPAL], n);
    CHECK (municipal >= 50 && municipal <= 110);
    CHECK (t->by_place [RELAIS_PLACE_BOIS] > 0 && t->by_place [RELAIS_PLACE_TALUS] > 0);

    //  Encampments sometimes, repeats about 10%, rare escalations
    uint64_t camps = s_permille (t->encampments, n);
    CHECK (camps >= 10 && camps <= 60);
    uint64_t repeats = s_permille (t->repeats, n);
    CHECK (repeats >= 70 && repeats <= 130);
    CHECK (t->escalate > 0 && s_permille (t->escalate, n) <= 40);
    CHECK (t->sensitive > 0 && s_permille (t->sensitive, n) <= 60);
    CHECK (t->with_geo > n / 4 && t->with_geo < n * 3 / 4);
    CHECK (t->with_people > n / 5 && t->with_people < n / 2);
    CHECK (t->updates > 0 && t->closes > 0);
    sim_model_destroy (&model);
}

static void
test_cold_snap (void)
{
    sim_model_t *day = s_run_submits ("day", 3, 10000);
    sim_model_t *cold = s_run_submits ("cold-snap", 3, 10000);
    const sim_truth_t *d = sim_model_truth (day);
    const sim_truth_t *c = sim_model_truth (cold);
    uint64_t fam_day = s_permille (d->by_public [RELAIS_PUBLIC_FAMILLE], d->submits);
    uint64_t fam_cold = s_permille (c->by_public [RELAIS_PUBLIC_FAMILLE], c->submits);
    uint64_t abri_day = s_permille (d->mise_a_l_abri, d->submits);
    uint64_t abri_cold = s_permille (c->mise_a_l_abri, c->submits);
    fprintf (stderr, "    famille day %llu‰ cold %llu‰, mise_a_l_abri day %llu‰ cold %llu‰\n",
             (unsigned long long) fam_day, (unsigned long long) fam_cold,
             (unsigned long long) abri_day, (unsigned long long) abri_cold);
    CHECK (fam_cold >= fam_day + 50);               //  more families
    CHECK (abri_cold >= abri_day + 150);            //  more shelter requests
    CHECK (c->with_minors > d->with_minors);
    sim_model_destroy (&day);
    sim_model_destroy (&cold);

    //  The plan raises the pace: the same number of reports in less time
    sim_model_t *a = s_model (3, "day");
    sim_model_t *b = s_model (3, "cold-snap");
    msgpack_sbuffer req;
    msgpack_sbuffer_init (&req);
    sim_event_info_t ia, ib;
    uint64_t gaps_a = 0, gaps_b = 0;
    for (int i = 0; i < 2000; i++) {
        CHECK_OK (sim_model_next (a, &req, &ia));
        CHECK_OK (sim_model_next (b, &req, &ib));
        gaps_a += ia.gap_us;
        gaps_b += ib.gap_us;
    }
    CHECK (gaps_b * 2 < gaps_a);
    CHECK (ib.sim_us * 2 < ia.sim_us);
    msgpack_sbuffer_destroy (&req);
    sim_model_destroy (&a);
    sim_model_destroy (&b);
}

static void
test_encampment (void)
{
    sim_model_t *model = s_model (11, "encampment");
    msgpack_sbuffer req;
    msgpack_sbuffer_init (&req);
    char place [RELAIS_SIG_ADDRESS_MAX + 1] = "";
    uint32_t arr = 0, reports = 0, first_tents = 0, max_tents = 0, producers = 0;
    uint32_t resolved = 0, camp_updates = 0;
    for (int i = 0; i < 400; i++) {
        sim_event_info_t info;
        CHECK_OK (sim_model_next (model, &req, &info));
        if (info.op == SIM_OP_SUBMIT && info.camp) {
            if (!place [0]) {
                snprintf (place, sizeof place, "%s", info.address);
                arr = info.arrondissement;
                first_tents = info.tents;
            }
            if (strcmp (info.address, place) != 0)
                continue;                           //  the next camp
            CHECK (info.arrondissement == arr);
            CHECK (info.tents > 3);
            reports++;
            producers |= 1u << info.source_kind;
            if (info.tents > max_tents)
                max_tents = info.tents;
        }
        if (info.op == SIM_OP_UPDATE && info.camp)
            camp_updates++;
        if (info.op == SIM_OP_CLOSE && strcmp (info.reason, "resolu") == 0
        &&  strcmp (info.address, place) == 0)
            resolved++;
    }
    fprintf (stderr, "    camp in the %ue: %u reports, tents %u -> %u, %u updates, "
             "%u closed resolu\n", arr, reports, first_tents, max_tents, camp_updates,
             resolved);
    CHECK (place [0]);
    CHECK (reports >= 20);                          //  reported many times...
    CHECK (__builtin_popcount (producers) >= 4);    //  ...by different producers
    CHECK (max_tents >= first_tents + 10);          //  the camp grows
    CHECK (camp_updates > 0);
    CHECK (resolved >= reports);                    //  then the operation closes it
    msgpack_sbuffer_destroy (&req);
    sim_model_destroy (&model);
}

//  The submits do not depend on when acks come: acked late, in another
//  order, with other ids, the n-th submit holds the same bytes.
static void
test_acks_move_only_followups (void)
{
    sim_model_t *a = s_model (5, "encampment");
    sim_model_t *b = sim_model_new (5, "encampment", S_START);
    CHECK (b);
    msgpack_sbuffer ra, rb;
    msgpack_sbuffer_init (&ra);
    msgpack_sbuffer_init (&rb);
    //  Submits of a, by n, to compare with b's
    char **subs = (char **) calloc (3001, sizeof *subs);
    size_t *sizes = (size_t *) calloc (3001, sizeof *sizes);
    CHECK (subs && sizes);
    uint64_t max_a = 0;
    while (max_a < 2000) {
        sim_event_info_t info;
        CHECK_OK (sim_model_next (a, &ra, &info));
        if (info.op == SIM_OP_SUBMIT) {
            subs [info.n] = (char *) malloc (ra.size);
            memcpy (subs [info.n], ra.data, ra.size);
            sizes [info.n] = ra.size;
            max_a = info.n;
        }
    }
    //  b: acks arrive 7 submits late, in reverse order by pairs; one refused
    uint64_t acked_upto = 0, max_b = 0, followups = 0;
    while (max_b < 2000) {
        sim_event_info_t info;
        CHECK_OK (sim_model_next (b, &rb, &info));
        if (info.op != SIM_OP_SUBMIT) {
            followups++;
            CHECK (strncmp (info.id, "SIG-REAL-", 9) == 0);
            continue;
        }
        max_b = info.n;
        CHECK (rb.size == sizes [info.n]);
        CHECK (memcmp (rb.data, subs [info.n], rb.size) == 0);
        while (acked_upto + 9 <= info.n) {
            for (uint64_t k = acked_upto + 2; k > acked_upto; k--) {
                char id [32];
                snprintf (id, sizeof id, "SIG-REAL-%llu", (unsigned long long) k * 3);
                if (k == 100)
                    sim_model_failed (b, k);
                else
                    sim_model_acked (b, k, id);
            }
            acked_upto += 2;
        }
    }
    CHECK (followups > 100);
    CHECK (sim_model_acked (b, 999999, "SIG-X") == -1);
    for (int i = 0; i <= 3000; i++)
        free (subs [i]);
    free (subs);
    free (sizes);
    msgpack_sbuffer_destroy (&ra);
    msgpack_sbuffer_destroy (&rb);
    sim_model_destroy (&a);
    sim_model_destroy (&b);
}

static bool
s_contains (const char *data, size_t size, const char *text)
{
    return memmem (data, size, text, strlen (text)) != NULL;
}

//  The list of personal strings holds what the requests carry, and none of
//  it survives in the public view intake will broadcast.
static void
test_personal_strings (void)
{
    sim_model_t *model = s_model (9, "day");
    msgpack_sbuffer req, pub;
    msgpack_sbuffer_init (&req);
    msgpack_sbuffer_init (&pub);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &pub, msgpack_sbuffer_write);
    relais_signal_t *sig = (relais_signal_t *) calloc (1, sizeof *sig);
    CHECK (sig);
    size_t views = 0;
    for (int i = 0; i < 1500; i++) {
        sim_event_info_t info;
        CHECK_OK (sim_model_next (model, &req, &info));
        if (info.op != SIM_OP_SUBMIT)
            continue;
        relais_msg_t msg;
        relais_error_t err;
        CHECK_OK (relais_msg_decode (&msg, req.data, req.size, NULL, &err));
        CHECK_OK (relais_signal_parse (relais_msg_get (&msg.root, "signal"), "signal",
                                       S_NOW, sig, &err));
        //  Each personal field of this report is in the list
        size_t count = sim_model_personal_count (model);
        const char *fields [4 + 3 * RELAIS_SIG_PEOPLE_MAX];
        size_t field_count = 0;
        fields [field_count++] = sig->source_contact;
        fields [field_count++] = sig->address;
        fields [field_count++] = sig->summary;
        fields [field_count++] = sig->escalate_reason;
        for (uint32_t p = 0; p < sig->people_count; p++) {
            fields [field_count++] = sig->people [p].name;
            fields [field_count++] = sig->people [p].phone;
            fields [field_count++] = sig->people [p].siao_id;
        }
        for (size_t f = 0; f < field_count; f++) {
            if (!fields [f][0])
                continue;
            bool found = false;
            for (size_t k = 0; k < count && !found; k++)
                found = strcmp (sim_model_personal (model, k), fields [f]) == 0;
            CHECK (found);
        }
        //  ...and none of the list is in the public view
        msgpack_sbuffer_clear (&pub);
        relais_signal_pack_public (&pk, sig, 0);
        if (views++ % 10 == 0)
            for (size_t k = 0; k < count; k++)
                CHECK (!s_contains (pub.data, pub.size, sim_model_personal (model, k)));
        relais_msg_release (&msg);
    }
    CHECK (sim_model_personal_count (model) > 500);
    CHECK (sim_model_personal (model, sim_model_personal_count (model)) == NULL);
    free (sig);
    msgpack_sbuffer_destroy (&req);
    msgpack_sbuffer_destroy (&pub);
    sim_model_destroy (&model);
}

int
main (void)
{
    RUN (test_same_seed_same_bytes);
    RUN (test_other_seed_other_bytes);
    RUN (test_every_request_valid);
    RUN (test_day_distribution);
    RUN (test_cold_snap);
    RUN (test_encampment);
    RUN (test_acks_move_only_followups);
    RUN (test_personal_strings);
    printf ("test_sim_model: OK\n");
    return 0;
}
