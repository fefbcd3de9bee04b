/*  =========================================================================
    test_cli_json - JSON <-> MessagePack conversion of the `relais` command

    Round trips, integer signs, reals, unicode and escapes, the nesting
    limit, and parse errors that name the right line of an NDJSON file.
    =========================================================================
*/
#include "cli_json.h"
#include "relais_err.h"
#include "relais_test.h"

#include <math.h>

//  Parse text (one value), pack it; returns the msgpack bytes in sbuf.
static void
s_pack_text (const char *text, msgpack_sbuffer *sbuf)
{
    cli_json_reader_t reader;
    cli_json_reader_init (&reader, text, strlen (text));
    json_t *value = NULL;
    int line = 0;
    char why [256] = "";
    int rc = cli_json_reader_next (&reader, &value, &line, why, sizeof why);
    if (rc != 1)
        fprintf (stderr, "parse failed: %s\n", why);
    CHECK (rc == 1);
    msgpack_sbuffer_init (sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, sbuf, msgpack_sbuffer_write);
    CHECK (cli_json_pack (&pk, value, why, sizeof why) == 0);
    json_decref (value);
}

//  JSON text -> msgpack -> JSON text; returns a fresh string.
static char *
s_round_trip (const char *text)
{
    msgpack_sbuffer sbuf;
    s_pack_text (text, &sbuf);
    msgpack_zone zone;
    msgpack_zone_init (&zone, 2048);
    msgpack_object o;
    size_t off = 0;
    CHECK (msgpack_unpack (sbuf.data, sbuf.size, &off, &zone, &o) == MSGPACK_UNPACK_SUCCESS);
    char *back = cli_json_dumps (&o, NULL);
    CHECK (back);
    msgpack_zone_destroy (&zone);
    msgpack_sbuffer_destroy (&sbuf);
    return back;
}

static void
s_check_round_trip (const char *text, const char *expected)
{
    char *back = s_round_trip (text);
    CHECK_STR (back, expected? expected: text);
    free (back);
}

static void
test_round_trip (void)
{
    s_check_round_trip ("{\"a\":1,\"b\":[true,false,null],\"c\":\"x\"}", NULL);
    s_check_round_trip ("{\"z\":1,\"a\":2,\"m\":3}", NULL);         //  key order kept
    s_check_round_trip ("[]", NULL);
    s_check_round_trip ("{}", NULL);
    s_check_round_trip ("  {\n \"a\" : [ 1 , 2 ]\n}\n", "{\"a\":[1,2]}");
    s_check_round_trip ("{\"signal\":{\"place\":{\"arrondissement\":18,\"kind\":\"voie_publique\"},"
                        "\"persons\":4,\"publics\":[\"famille\",\"enfant\"]}}", NULL);
}

static void
test_integers (void)
{
    msgpack_sbuffer sbuf;
    s_pack_text ("[0, 7, -1, -300, 9223372036854775807, -9223372036854775808]", &sbuf);
    msgpack_zone zone;
    msgpack_zone_init (&zone, 2048);
    msgpack_object o;
    size_t off = 0;
    CHECK (msgpack_unpack (sbuf.data, sbuf.size, &off, &zone, &o) == MSGPACK_UNPACK_SUCCESS);
    CHECK (o.type == MSGPACK_OBJECT_ARRAY && o.via.array.size == 6);
    CHECK (o.via.array.ptr [0].type == MSGPACK_OBJECT_POSITIVE_INTEGER);
    CHECK (o.via.array.ptr [1].type == MSGPACK_OBJECT_POSITIVE_INTEGER);
    CHECK (o.via.array.ptr [1].via.u64 == 7);
    CHECK (o.via.array.ptr [2].type == MSGPACK_OBJECT_NEGATIVE_INTEGER);
    CHECK (o.via.array.ptr [2].via.i64 == -1);
    CHECK (o.via.array.ptr [3].via.i64 == -300);
    CHECK (o.via.array.ptr [4].via.u64 == 9223372036854775807ULL);
    CHECK (o.via.array.ptr [5].type == MSGPACK_OBJECT_NEGATIVE_INTEGER);
    char *back = cli_json_dumps (&o, NULL);
    CHECK_STR (back, "[0,7,-1,-300,9223372036854775807,-9223372036854775808]");
    free (back);
    msgpack_zone_destroy (&zone);
    msgpack_sbuffer_destroy (&sbuf);

    //  A uint64 beyond what JSON readers hold still prints exactly
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_uint64 (&pk, UINT64_MAX);
    msgpack_zone_init (&zone, 256);
    off = 0;
    CHECK (msgpack_unpack (sbuf.data, sbuf.size, &off, &zone, &o) == MSGPACK_UNPACK_SUCCESS);
    back = cli_json_dumps (&o, NULL);
    CHECK_STR (back, "18446744073709551615");
    free (back);
    msgpack_zone_destroy (&zone);
    msgpack_sbuffer_destroy (&sbuf);

    //  Integers over 64 bits are refused by the parser, with a position
    cli_json_reader_t reader;
    const char *big = "{\"persons\": 99999999999999999999}";
    cli_json_reader_init (&reader, big, strlen (big));
    json_t *value;
    int line;
    char why [256];
    CHECK (cli_json_reader_next (&reader, &value, &line, why, sizeof why) == -1);
    CHECK (strstr (why, "line 1"));
}

static void
test_reals (void)
{
    s_check_round_trip ("[1.5,-0.25,0.1,1e300,2.0]", "[1.5,-0.25,0.1,1e+300,2.0]");
    msgpack_sbuffer sbuf;
    s_pack_text ("[1.0]", &sbuf);
    msgpack_zone zone;
    msgpack_zone_init (&zone, 256);
    msgpack_object o;
    size_t off = 0;
    CHECK (msgpack_unpack (sbuf.data, sbuf.size, &off, &zone, &o) == MSGPACK_UNPACK_SUCCESS);
    CHECK (o.via.array.ptr [0].type == MSGPACK_OBJECT_FLOAT64);
    msgpack_zone_destroy (&zone);
    msgpack_sbuffer_destroy (&sbuf);

    //  float32, NaN and infinity from msgpack
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_array (&pk, 3);
    msgpack_pack_float (&pk, 0.1f);
    msgpack_pack_double (&pk, NAN);
    msgpack_pack_double (&pk, -INFINITY);
    msgpack_zone_init (&zone, 256);
    off = 0;
    CHECK (msgpack_unpack (sbuf.data, sbuf.size, &off, &zone, &o) == MSGPACK_UNPACK_SUCCESS);
    char *back = cli_json_dumps (&o, NULL);
    CHECK_STR (back, "[0.1,null,null]");
    free (back);
    msgpack_zone_destroy (&zone);
    msgpack_sbuffer_destroy (&sbuf);
}

static void
test_unicode (void)
{
    //  Non-ASCII passes through as UTF-8; \u escapes (with a surrogate
    //  pair) become UTF-8 in msgpack
    s_check_round_trip ("{\"nom\":\"Gare de l'Est – été ☃ 😀\"}", NULL);
    s_check_round_trip ("[\"\\u00e9\\u2603\\ud83d\\ude00\"]", "[\"é☃😀\"]");
    //  Control characters come back escaped, never raw
    s_check_round_trip ("[\"a\\u0001b\\u001b[31m\\n\\t\\\"\\\\\"]",
                        "[\"a\\u0001b\\u001b[31m\\n\\t\\\"\\\\\"]");
    s_check_round_trip ("[\"\\u0085\\u2028\\u007f\"]", "[\"\\u0085\\u2028\\u007f\"]");

    //  Invalid UTF-8 in a msgpack str is replaced, not copied
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_str (&pk, 4);
    msgpack_pack_str_body (&pk, "a\xff\xc3z", 4);
    msgpack_zone zone;
    msgpack_zone_init (&zone, 256);
    msgpack_object o;
    size_t off = 0;
    CHECK (msgpack_unpack (sbuf.data, sbuf.size, &off, &zone, &o) == MSGPACK_UNPACK_SUCCESS);
    char *back = cli_json_dumps (&o, NULL);
    CHECK_STR (back, "\"a\\ufffd\\ufffdz\"");
    free (back);
    msgpack_zone_destroy (&zone);
    msgpack_sbuffer_destroy (&sbuf);

    //  Bad UTF-8 in JSON input is a parse error
    cli_json_reader_t reader;
    const char *bad = "{\"a\": \"\xff\"}";
    cli_json_reader_init (&reader, bad, strlen (bad));
    json_t *value;
    int line;
    char why [256];
    CHECK (cli_json_reader_next (&reader, &value, &line, why, sizeof why) == -1);
}

static void
test_msgpack_only (void)
{
    //  bin -> base64, ext -> null, non-str keys -> their JSON text
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 5);
    msgpack_pack_str (&pk, 3);
    msgpack_pack_str_body (&pk, "bin", 3);
    msgpack_pack_bin (&pk, 5);
    msgpack_pack_bin_body (&pk, "hello", 5);
    msgpack_pack_str (&pk, 3);
    msgpack_pack_str_body (&pk, "ext", 3);
    msgpack_pack_ext (&pk, 2, 7);
    msgpack_pack_ext_body (&pk, "ab", 2);
    msgpack_pack_uint64 (&pk, 42);
    msgpack_pack_true (&pk);
    msgpack_pack_int64 (&pk, -3);
    msgpack_pack_nil (&pk);
    msgpack_pack_array (&pk, 1);
    msgpack_pack_str (&pk, 1);
    msgpack_pack_str_body (&pk, "k", 1);
    msgpack_pack_bin (&pk, 0);
    msgpack_zone zone;
    msgpack_zone_init (&zone, 256);
    msgpack_object o;
    size_t off = 0;
    CHECK (msgpack_unpack (sbuf.data, sbuf.size, &off, &zone, &o) == MSGPACK_UNPACK_SUCCESS);
    char *back = cli_json_dumps (&o, NULL);
    CHECK_STR (back, "{\"bin\":\"aGVsbG8=\",\"ext\":null,\"42\":true,\"-3\":null,"
                     "\"[\\\"k\\\"]\":\"\"}");
    free (back);

    //  Options: a first pair and a skipped key (tail --json, submit replies)
    cli_json_opts_t opts = { "topic", "signal.created", "bin" };
    back = cli_json_dumps (&o, &opts);
    CHECK_STR (back, "{\"topic\":\"signal.created\",\"ext\":null,\"42\":true,\"-3\":null,"
                     "\"[\\\"k\\\"]\":\"\"}");
    free (back);
    msgpack_zone_destroy (&zone);
    msgpack_sbuffer_destroy (&sbuf);
}

static void
test_nesting (void)
{
    char text [256];
    char why [256];
    //  32 nested arrays pack; 33 do not
    for (int depth = 32; depth <= 33; depth++) {
        int n = 0;
        for (int i = 0; i < depth; i++)
            text [n++] = '[';
        for (int i = 0; i < depth; i++)
            text [n++] = ']';
        text [n] = 0;
        cli_json_reader_t reader;
        cli_json_reader_init (&reader, text, strlen (text));
        json_t *value;
        int line;
        CHECK (cli_json_reader_next (&reader, &value, &line, why, sizeof why) == 1);
        msgpack_sbuffer sbuf;
        msgpack_sbuffer_init (&sbuf);
        msgpack_packer pk;
        msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
        int rc = cli_json_pack (&pk, value, why, sizeof why);
        CHECK (depth == 32? rc == 0: rc == -1);
        if (rc)
            CHECK (strstr (why, "deeper than 32"));
        json_decref (value);
        msgpack_sbuffer_destroy (&sbuf);
    }
    //  msgpack nested 33 deep does not print: the limit is the same both
    //  ways (msgpack-c's own stack stops at 32, so build it by hand)
    msgpack_object chain [34];
    chain [33].type = MSGPACK_OBJECT_NIL;
    for (int i = 32; i >= 0; i--) {
        chain [i].type = MSGPACK_OBJECT_ARRAY;
        chain [i].via.array.size = 1;
        chain [i].via.array.ptr = &chain [i + 1];
    }
    CHECK (cli_json_dumps (&chain [0], NULL) == NULL);
    char *text32 = cli_json_dumps (&chain [1], NULL);
    CHECK (text32 && strlen (text32) == 2 * 32 + 4);
    free (text32);
}

static void
test_ndjson (void)
{
    const char *text =
        "{\"a\":1}\n"
        "\n"
        "{\"b\":2}   \r\n"
        "{\"c\":\n"
        "   3}\n"
        "[4]";
    cli_json_reader_t reader;
    cli_json_reader_init (&reader, text, strlen (text));
    json_t *value;
    int line;
    char why [256];
    int lines [4] = { 1, 3, 4, 6 };
    for (int i = 0; i < 4; i++) {
        CHECK (cli_json_reader_next (&reader, &value, &line, why, sizeof why) == 1);
        CHECK (line == lines [i]);
        json_decref (value);
    }
    CHECK (cli_json_reader_next (&reader, &value, &line, why, sizeof why) == 0);
    CHECK (cli_json_reader_next (&reader, &value, &line, why, sizeof why) == 0);

    //  Empty input and whitespace only: no value, no error
    cli_json_reader_init (&reader, " \n\t\n", 4);
    CHECK (cli_json_reader_next (&reader, &value, &line, why, sizeof why) == 0);
    cli_json_reader_init (&reader, "", 0);
    CHECK (cli_json_reader_next (&reader, &value, &line, why, sizeof why) == 0);
    //  A BOM is skipped
    cli_json_reader_init (&reader, "\xEF\xBB\xBF{}", 5);
    CHECK (cli_json_reader_next (&reader, &value, &line, why, sizeof why) == 1);
    json_decref (value);
}

static void
test_malformed (void)
{
    struct {
        const char *text;
        int good;                   //  values read before the error
        const char *where;          //  expected in why
    } cases [] = {
        { "{\"a\":1}\n{\"b\":2}\n{\"c\":}\n{\"d\":4}\n", 2, "line 3" },
        { "{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n{\"d\" 4}\n", 3, "line 4, column 6" },
        { "{\n  \"a\": 1,\n  \"b\": [1, 2,\n}\n", 0, "line 4" },
        { "{\"a\":1}\n{\"b\":2", 1, "line 2" },
        { "{\"a\":1, \"a\":2}", 0, "line 1" },          //  duplicate key
        { "{\"a\":1}\ntruex", 1, "line 2" },
        { "{\"x\":\"été\", oops}", 0, "line 1, column 16" },     //  jansson: end of the token,
        { "{'single':1}", 0, "line 1" },
        { "\x01", 0, "line 1" },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases [0]; c++) {
        cli_json_reader_t reader;
        cli_json_reader_init (&reader, cases [c].text, strlen (cases [c].text));
        json_t *value;
        int line;
        char why [256] = "";
        int good = 0, rc;
        while ((rc = cli_json_reader_next (&reader, &value, &line, why, sizeof why)) == 1) {
            good++;
            json_decref (value);
        }
        if (rc != -1 || good != cases [c].good || !strstr (why, cases [c].where))
            fprintf (stderr, "case %zu: rc=%d good=%d why=%s\n", c, rc, good, why);
        CHECK (rc == -1);
        CHECK (good == cases [c].good);
        CHECK (strstr (why, cases [c].where));
        //  After an error the reader stays at the end
        CHECK (cli_json_reader_next (&reader, &value, &line, why, sizeof why) == 0);
    }
}

static void
test_garbage (void)
{
    //  Random bytes never crash the reader and never leak
    unsigned seed = 12345;
    char buf [64];
    for (int round = 0; round < 20000; round++) {
        size_t n = (size_t) (round % 63) + 1;
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            const char alphabet [] = "{}[]\":,0123456789.-eE tfnrulasx\\\n\xc3\xa9\xff";
            buf [i] = alphabet [(seed >> 16) % (sizeof alphabet - 1)];
        }
        cli_json_reader_t reader;
        cli_json_reader_init (&reader, buf, n);
        json_t *value;
        int line;
        char why [256];
        int rc, guard = 0;
        while ((rc = cli_json_reader_next (&reader, &value, &line, why, sizeof why)) == 1) {
            msgpack_sbuffer sbuf;
            msgpack_sbuffer_init (&sbuf);
            msgpack_packer pk;
            msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
            cli_json_pack (&pk, value, why, sizeof why);
            msgpack_sbuffer_destroy (&sbuf);
            json_decref (value);
            CHECK (++guard < 100);
        }
    }
}

int
main (void)
{
    RUN (test_round_trip);
    RUN (test_integers);
    RUN (test_reals);
    RUN (test_unicode);
    RUN (test_msgpack_only);
    RUN (test_nesting);
    RUN (test_ndjson);
    RUN (test_malformed);
    RUN (test_garbage);
    printf ("test_cli_json: OK\n");
    return 0;
}
