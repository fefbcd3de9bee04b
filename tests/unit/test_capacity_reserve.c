/*  Reservations' life cycle on the injectable clock: held places count
    against free; confirm turns them into occupied places (with an entry);
    cancel frees them; a held reservation expires after the hold time, once,
    even across a restart; a settled reservation cannot change again. */
#include "capacity_fixture.h"

#define HOUR 3600000000ULL

static void
test_lifecycle (void)
{
    fx_open ("cap-resv", NULL);
    FX_OK ("{\"op\":\"capacity.declare\",\"id\":\"hotel-19\",\"kind\":\"hotel\",\"arrondissement\":19,\"places\":20,\"households\":6}");
    FX_OK ("{\"op\":\"capacity.reserve\",\"id\":\"hotel-19\",\"places\":4,\"reservation\":\"RES-A\"}");
    CHECK (fx_uint ("reserved") == 4 && fx_uint ("free") == 16);
    CHECK (fx_uint ("expires") == fx.now + 2 * HOUR);
    CHECK (fx_count ("capacity.reserved hotel-19 {\"kind\":\"hotel\",\"reservation\":\"RES-A\",\"state\":\"held\",\"places\":4") == 1);
    FX_REFUSED ("{\"op\":\"capacity.reserve\",\"id\":\"hotel-19\",\"places\":1,\"reservation\":\"RES-A\"}",
                "conflict", "reservation");
    //  Server-named reservations
    FX_OK ("{\"op\":\"capacity.reserve\",\"id\":\"hotel-19\",\"places\":3}");
    CHECK (relais_msg_str_eq (relais_msg_get (&fx.msg.root, "reservation"), "R-000001"));
    FX_OK ("{\"op\":\"capacity.reserve\",\"id\":\"hotel-19\",\"places\":2}");
    CHECK (fx_uint ("reserved") == 9 && fx_uint ("free") == 11);

    //  Confirm: the household arrived, its places become occupied
    fx.now += HOUR;
    FX_OK ("{\"op\":\"capacity.reservation\",\"reservation\":\"RES-A\",\"action\":\"confirm\",\"ref\":\"PLAN-7\"}");
    CHECK (fx_uint ("reserved") == 5 && fx_uint ("occupied") == 4 && fx_uint ("free") == 11);
    CHECK (fx_count ("capacity.reserved hotel-19 {\"kind\":\"hotel\",\"reservation\":\"RES-A\",\"state\":\"confirmed\"") == 1);
    CHECK (fx_count ("capacity.entry hotel-19 {\"kind\":\"hotel\",\"count\":4,\"from\":\"115\",\"ref\":\"PLAN-7\"") == 1);
    FX_REFUSED ("{\"op\":\"capacity.reservation\",\"reservation\":\"RES-A\",\"action\":\"cancel\"}",
                "conflict", "reservation");
    CHECK (strstr (fx.err.message, "confirmed"));
    //  Cancel frees the places
    FX_OK ("{\"op\":\"capacity.reservation\",\"reservation\":\"R-000002\",\"action\":\"cancel\"}");
    CHECK (fx_uint ("reserved") == 3 && fx_uint ("free") == 13);

    //  Just before the hold runs out nothing happens; at the instant, it expires
    fx.now += HOUR - 1;
    size_t before = fx.count;
    fx_tick ();
    CHECK (fx.count == before);
    CHECK (fx_free ("hotel-19") == 13);
    fx.now += 1;
    fx_tick ();
    CHECK (fx_count ("capacity.reserved hotel-19 {\"kind\":\"hotel\",\"reservation\":\"R-000001\",\"state\":\"expired\"") == 1);
    CHECK (fx_free ("hotel-19") == 16 && fx_uint ("reserved") == 0);
    FX_REFUSED ("{\"op\":\"capacity.reservation\",\"reservation\":\"R-000001\",\"action\":\"confirm\"}",
                "conflict", "reservation");
    CHECK (strstr (fx.err.message, "expired"));
    //  Never twice
    fx.now += 10 * HOUR;
    before = fx.count;
    fx_tick ();
    CHECK (fx.count == before);
    CHECK (fx_count ("capacity.reserved") == 6);
    CHECK (fx_count ("capacity.reserved hotel-19 {\"kind\":\"hotel\",\"reservation\":\"R-000001\",\"state\":\"expired\"") == 1);
    fx_close ();
}

static void
test_expiry_across_restart (void)
{
    fx_open ("cap-resv-restart", NULL);
    FX_OK ("{\"op\":\"capacity.declare\",\"id\":\"sas-1\",\"kind\":\"sas\",\"arrondissement\":12,\"places\":10}");
    FX_OK ("{\"op\":\"capacity.reserve\",\"id\":\"sas-1\",\"places\":5,\"reservation\":\"H1\"}");
    fx.now += HOUR;
    FX_OK ("{\"op\":\"capacity.reserve\",\"id\":\"sas-1\",\"places\":5,\"reservation\":\"H2\"}");
    CHECK (fx_uint ("free") == 0);
    //  Down for 90 minutes: H1 is due when we come back, H2 is not
    fx.now += HOUR + HOUR / 2;
    fx_reopen ();
    fx_tick ();
    CHECK (fx_count ("capacity.reserved sas-1 {\"kind\":\"sas\",\"reservation\":\"H1\",\"state\":\"expired\"") == 1);
    CHECK (fx_count ("capacity.reserved sas-1 {\"kind\":\"sas\",\"reservation\":\"H2\",\"state\":\"expired\"") == 0);
    CHECK (fx_free ("sas-1") == 5);
    fx_reopen ();
    fx.now += HOUR;
    fx_tick ();
    fx_tick ();
    CHECK (fx_count ("capacity.reserved sas-1 {\"kind\":\"sas\",\"reservation\":\"H1\",\"state\":\"expired\"") == 1);
    CHECK (fx_count ("capacity.reserved sas-1 {\"kind\":\"sas\",\"reservation\":\"H2\",\"state\":\"expired\"") == 1);
    CHECK (fx_free ("sas-1") == 10);
    fx_close ();
}

int
main (void)
{
    RUN (test_lifecycle);
    RUN (test_expiry_across_restart);
    return 0;
}
