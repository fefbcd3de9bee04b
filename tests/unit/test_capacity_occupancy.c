/*  Occupancy arithmetic of the capacity state, and every refused change:
    bounds (never below 0, never above capacity, reserved places count
    against free), stale operator updates, corrections with a reason,
    validation errors, idempotent retries. A refusal changes nothing. */
#include "capacity_fixture.h"

static void
test_arithmetic (void)
{
    fx_open ("cap-occ", NULL);
    FX_OK ("{\"op\":\"capacity.declare\",\"id\":\"chu-pereire\",\"kind\":\"chu\",\"arrondissement\":17,"
           "\"places\":50,\"households\":0,\"publics\":[\"homme_isole\"],\"operator\":\"Aurore\"}");
    CHECK (fx_bool ("created"));
    CHECK (fx_count ("capacity.declared chu-pereire") == 1);
    //  Declaring the same again changes nothing and publishes nothing
    FX_OK ("{\"op\":\"capacity.declare\",\"id\":\"chu-pereire\",\"kind\":\"chu\",\"arrondissement\":17,"
           "\"places\":50,\"households\":0,\"publics\":[\"homme_isole\"],\"operator\":\"Aurore\"}");
    CHECK (!fx_bool ("created") && !fx_bool ("changed"));
    CHECK (fx.count == 1);

    FX_OK ("{\"op\":\"capacity.entry\",\"id\":\"chu-pereire\",\"count\":30,\"from\":\"115\"}");
    CHECK (fx_uint ("occupied") == 30 && fx_uint ("free") == 20);
    FX_OK ("{\"op\":\"capacity.exit\",\"id\":\"chu-pereire\",\"count\":5,\"to\":\"logement\"}");
    CHECK (fx_uint ("occupied") == 25 && fx_uint ("free") == 25);
    FX_OK ("{\"op\":\"capacity.reserve\",\"id\":\"chu-pereire\",\"places\":10}");
    CHECK (fx_uint ("reserved") == 10 && fx_uint ("free") == 15);
    //  Exactly full is allowed
    FX_OK ("{\"op\":\"capacity.entry\",\"id\":\"chu-pereire\",\"count\":15,\"from\":\"signalement\"}");
    CHECK (fx_uint ("occupied") == 40 && fx_uint ("free") == 0);

    //  Above capacity: reserved places count against free
    FX_REFUSED ("{\"op\":\"capacity.entry\",\"id\":\"chu-pereire\",\"count\":1,\"from\":\"115\"}",
                "conflict", "count");
    CHECK (strstr (fx.err.message, "1 entering, 0 free (50 places, 40 occupied, 10 reserved)"));
    FX_REFUSED ("{\"op\":\"capacity.reserve\",\"id\":\"chu-pereire\",\"places\":1}", "conflict", "places");
    CHECK (strstr (fx.err.message, "1 places asked, 0 free"));
    //  Below zero
    FX_REFUSED ("{\"op\":\"capacity.exit\",\"id\":\"chu-pereire\",\"count\":41,\"to\":\"rue\"}",
                "conflict", "count");
    CHECK (strstr (fx.err.message, "41 leaving, only 40 occupied"));
    //  A stale operator update is not a silent overwrite
    FX_REFUSED ("{\"op\":\"capacity.update\",\"id\":\"chu-pereire\",\"occupied\":12,\"previous\":30}",
                "conflict", "previous");
    CHECK (strstr (fx.err.message, "occupied is 40 here, not 30"));
    //  An update over capacity
    FX_REFUSED ("{\"op\":\"capacity.update\",\"id\":\"chu-pereire\",\"occupied\":41,\"previous\":40}",
                "conflict", "occupied");
    CHECK (strstr (fx.err.message, "41 occupied + 10 reserved would exceed the 50 places"));
    //  A correction cannot break the bounds either
    FX_REFUSED ("{\"op\":\"capacity.correct\",\"id\":\"chu-pereire\",\"occupied\":45,\"reason\":\"recomptage\"}",
                "conflict", "occupied");
    FX_REFUSED ("{\"op\":\"capacity.correct\",\"id\":\"chu-pereire\",\"places\":49,\"reason\":\"fermeture\"}",
                "conflict", "places");
    //  Capacity cannot shrink under what is taken
    FX_REFUSED ("{\"op\":\"capacity.declare\",\"id\":\"chu-pereire\",\"kind\":\"chu\",\"arrondissement\":17,"
                "\"places\":49}", "conflict", "places");
    FX_REFUSED ("{\"op\":\"capacity.declare\",\"id\":\"chu-pereire\",\"kind\":\"sas\",\"arrondissement\":17,"
                "\"places\":60}", "conflict", "kind");
    CHECK (fx_free ("chu-pereire") == 0 && fx_uint ("occupied") == 40 && fx_uint ("reserved") == 10);

    //  The operator's count, from the right previous value
    size_t before = fx.count;
    FX_OK ("{\"op\":\"capacity.update\",\"id\":\"chu-pereire\",\"occupied\":32,\"previous\":40}");
    CHECK (fx_uint ("occupied") == 32 && fx_uint ("free") == 8);
    CHECK (fx.count == before + 1);
    CHECK (strstr (fx.events [before], "capacity.updated chu-pereire") == fx.events [before]);
    CHECK (strstr (fx.events [before], "\"cause\":\"occupancy\""));
    //  An explicit correction, with its reason on the bus
    FX_OK ("{\"op\":\"capacity.correct\",\"id\":\"chu-pereire\",\"occupied\":30,\"places\":52,\"reason\":\"recomptage\"}");
    CHECK (fx_uint ("occupied") == 30 && fx_uint ("places") == 52 && fx_uint ("free") == 12);
    CHECK (strstr (fx.events [fx.count - 1], "\"cause\":\"correction\""));
    CHECK (strstr (fx.events [fx.count - 1], "\"reason\":\"recomptage\""));
    //  A capacity change by declaration publishes declared + updated (capacity)
    before = fx.count;
    FX_OK ("{\"op\":\"capacity.declare\",\"id\":\"chu-pereire\",\"kind\":\"chu\",\"arrondissement\":17,"
           "\"places\":60,\"publics\":[\"homme_isole\"],\"operator\":\"Aurore\"}");
    CHECK (fx_bool ("changed"));
    CHECK (fx_count ("capacity.declared chu-pereire") == 2);
    CHECK (strstr (fx.events [fx.count - 1], "\"cause\":\"capacity\""));
    CHECK (fx_free ("chu-pereire") == 20);
    fx_close ();
}

static void
test_invalid (void)
{
    fx_open ("cap-invalid", NULL);
    FX_OK ("{\"op\":\"capacity.declare\",\"id\":\"halte-1\",\"kind\":\"halte\",\"arrondissement\":10,\"places\":20}");
    size_t before = fx.count;
    FX_REFUSED ("{\"op\":\"capacity.explode\"}", "unknown_op", "op");
    FX_REFUSED ("{\"id\":\"halte-1\"}", "invalid", "op");
    FX_REFUSED ("{\"op\":\"capacity.entry\",\"id\":\"nope\",\"count\":1,\"from\":\"115\"}", "not_found", "id");
    FX_REFUSED ("{\"op\":\"capacity.entry\",\"id\":\"Jean Dupont\",\"count\":1,\"from\":\"115\"}", "invalid", "id");
    FX_REFUSED ("{\"op\":\"capacity.entry\",\"count\":1,\"from\":\"115\"}", "invalid", "id");
    FX_REFUSED ("{\"op\":\"capacity.entry\",\"id\":\"halte-1\",\"count\":0,\"from\":\"115\"}", "invalid", "count");
    FX_REFUSED ("{\"op\":\"capacity.entry\",\"id\":\"halte-1\",\"count\":-3,\"from\":\"115\"}", "invalid", "count");
    FX_REFUSED ("{\"op\":\"capacity.entry\",\"id\":\"halte-1\",\"count\":\"2\",\"from\":\"115\"}", "invalid", "count");
    FX_REFUSED ("{\"op\":\"capacity.entry\",\"id\":\"halte-1\",\"count\":1,\"from\":\"ailleurs\"}", "invalid", "from");
    FX_REFUSED ("{\"op\":\"capacity.entry\",\"id\":\"halte-1\",\"count\":1,\"from\":\"plan\",\"ref\":\"M. X\"}", "invalid", "ref");
    FX_REFUSED ("{\"op\":\"capacity.exit\",\"id\":\"halte-1\",\"count\":1}", "invalid", "to");
    FX_REFUSED ("{\"op\":\"capacity.update\",\"id\":\"halte-1\",\"occupied\":1}", "invalid", "previous");
    FX_REFUSED ("{\"op\":\"capacity.correct\",\"id\":\"halte-1\",\"occupied\":1}", "invalid", "reason");
    FX_REFUSED ("{\"op\":\"capacity.correct\",\"id\":\"halte-1\",\"reason\":\"autre\"}", "invalid", "occupied");
    FX_REFUSED ("{\"op\":\"capacity.correct\",\"id\":\"halte-1\",\"occupied\":1,\"reason\":\"because\"}", "invalid", "reason");
    FX_REFUSED ("{\"op\":\"capacity.reserve\",\"id\":\"halte-1\",\"places\":0}", "invalid", "places");
    FX_REFUSED ("{\"op\":\"capacity.reservation\",\"reservation\":\"R-9\",\"action\":\"confirm\"}", "not_found", "reservation");
    FX_REFUSED ("{\"op\":\"capacity.reservation\",\"reservation\":\"R-9\",\"action\":\"keep\"}", "invalid", "action");
    FX_REFUSED ("{\"op\":\"capacity.declare\",\"id\":\"x-1\",\"kind\":\"palace\",\"arrondissement\":1,\"places\":1}", "invalid", "kind");
    FX_REFUSED ("{\"op\":\"capacity.declare\",\"id\":\"x-1\",\"kind\":\"sas\",\"arrondissement\":21,\"places\":1}", "invalid", "arrondissement");
    FX_REFUSED ("{\"op\":\"capacity.declare\",\"id\":\"x-1\",\"kind\":\"sas\",\"arrondissement\":1,\"places\":1,"
                "\"publics\":[\"famille\",\"famille\"]}", "invalid", "publics[1]");
    FX_REFUSED ("{\"op\":\"capacity.declare\",\"id\":\"x-1\",\"kind\":\"sas\",\"arrondissement\":1,\"places\":1,"
                "\"operator\":\"a\\nb\"}", "invalid", "operator");
    FX_REFUSED ("{\"op\":\"capacity.entry\",\"id\":\"halte-1\",\"count\":1,\"from\":\"115\",\"idem\":\"\"}", "invalid", "idem");
    FX_REFUSED ("{\"op\":\"capacity.entry\",\"id\":\"halte-1\",\"count\":1,\"from\":\"115\",\"at\":5}", "invalid", "at");
    FX_REFUSED ("{\"op\":\"capacity.forecast\",\"kind\":\"palace\"}", "invalid", "kind");
    CHECK (fx.count == before);
    CHECK (fx_free ("halte-1") == 20 && fx_uint ("occupied") == 0);
    fx_close ();
}

static void
test_idempotent (void)
{
    fx_open ("cap-idem", NULL);
    FX_OK ("{\"op\":\"capacity.declare\",\"id\":\"sas-12\",\"kind\":\"sas\",\"arrondissement\":12,\"places\":30}");
    FX_OK ("{\"op\":\"capacity.entry\",\"id\":\"sas-12\",\"count\":4,\"from\":\"plan\",\"idem\":\"op-1\"}");
    CHECK (!fx_bool ("duplicate") && fx_uint ("occupied") == 4);
    size_t before = fx.count;
    //  The retry (even with another body) is answered from the first time
    FX_OK ("{\"op\":\"capacity.entry\",\"id\":\"sas-12\",\"count\":4,\"from\":\"plan\",\"idem\":\"op-1\"}");
    CHECK (fx_bool ("duplicate") && fx_uint ("occupied") == 4);
    FX_OK ("{\"op\":\"capacity.entry\",\"id\":\"sas-12\",\"count\":9,\"from\":\"plan\",\"idem\":\"op-1\"}");
    CHECK (fx_bool ("duplicate") && fx_uint ("occupied") == 4);
    CHECK (fx.count == before);
    //  A refused op does not use up its idem
    FX_REFUSED ("{\"op\":\"capacity.exit\",\"id\":\"sas-12\",\"count\":9,\"to\":\"rue\",\"idem\":\"op-2\"}", "conflict", "count");
    FX_OK ("{\"op\":\"capacity.exit\",\"id\":\"sas-12\",\"count\":3,\"to\":\"rue\",\"idem\":\"op-2\"}");
    CHECK (!fx_bool ("duplicate") && fx_uint ("occupied") == 1);
    //  Across a restart too
    fx_reopen ();
    FX_OK ("{\"op\":\"capacity.exit\",\"id\":\"sas-12\",\"count\":3,\"to\":\"rue\",\"idem\":\"op-2\"}");
    CHECK (fx_bool ("duplicate"));
    CHECK (fx_free ("sas-12") == 29);
    fx_close ();
}

int
main (void)
{
    RUN (test_arithmetic);
    RUN (test_invalid);
    RUN (test_idempotent);
    return 0;
}
