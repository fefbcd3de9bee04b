/*  The wire codec: relais_msg_decode limits and UTF-8 rules, the msgpack
    helpers, envelopes and heartbeats, the signalement schema (parse, full
    and public packing, updates, cells), and every normative vector under
    proto/vectors checked against its JSON twin. */
#include "relais_envelope.h"
#include "relais_signal.h"
#include "relais_test.h"

#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <time.h>

static uint64_t
s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

//  ---------------------------------------------------------------------------
//  A decoded document built from JSON text (jansson) or from raw bytes: the
//  buffer outlives the decoded objects, which may point into it.

typedef struct {
    msgpack_sbuffer sbuf;
    relais_msg_t msg;
    relais_error_t err;
    int rc;
} s_doc_t;

static void
s_pack_json (msgpack_packer *pk, const json_t *j)
{
    switch (json_typeof (j)) {
        case JSON_OBJECT: {
            msgpack_pack_map (pk, json_object_size (j));
            const char *key;
            json_t *value;
            json_object_foreach ((json_t *) j, key, value) {
                relais_pack_str (pk, key);
                s_pack_json (pk, value);
            }
            break;
        }
        case JSON_ARRAY:
            msgpack_pack_array (pk, json_array_size (j));
            for (size_t i = 0; i < json_array_size (j); i++)
                s_pack_json (pk, json_array_get (j, i));
            break;
        case JSON_STRING:
            relais_pack_strn (pk, json_string_value (j), json_string_length (j));
            break;
        case JSON_INTEGER: {
            json_int_t v = json_integer_value (j);
            if (v >= 0)
                msgpack_pack_uint64 (pk, (uint64_t) v);
            else
                msgpack_pack_int64 (pk, v);
            break;
        }
        case JSON_REAL:  msgpack_pack_double (pk, json_real_value (j)); break;
        case JSON_TRUE:  msgpack_pack_true (pk); break;
        case JSON_FALSE: msgpack_pack_false (pk); break;
        default:         msgpack_pack_nil (pk); break;
    }
}

static void
s_doc_decode (s_doc_t *doc)
{
    relais_error_clear (&doc->err);
    doc->rc = relais_msg_decode (&doc->msg, doc->sbuf.data, doc->sbuf.size, NULL, &doc->err);
}

static void
s_doc_bytes (s_doc_t *doc, const void *data, size_t size)
{
    msgpack_sbuffer_init (&doc->sbuf);
    msgpack_sbuffer_write (&doc->sbuf, data, size);
    s_doc_decode (doc);
}

static void
s_doc_json (s_doc_t *doc, const char *text)
{
    json_error_t jerr;
    json_t *j = json_loads (text, JSON_DECODE_ANY, &jerr);
    if (!j)
        fprintf (stderr, "bad JSON in test: %s\n", jerr.text);
    CHECK (j);
    msgpack_sbuffer_init (&doc->sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &doc->sbuf, msgpack_sbuffer_write);
    s_pack_json (&pk, j);
    json_decref (j);
    s_doc_decode (doc);
    CHECK_OK (doc->rc);
}

static void
s_doc_free (s_doc_t *doc)
{
    relais_msg_release (&doc->msg);
    msgpack_sbuffer_destroy (&doc->sbuf);
}

//  Decode raw bytes, release, and return the rc with the error in *err.
static int
s_decode_rc (const void *data, size_t size, const relais_msg_limits_t *limits,
             relais_error_t *err)
{
    relais_msg_t msg;
    relais_error_clear (err);
    int rc = relais_msg_decode (&msg, data, size, limits, err);
    relais_msg_release (&msg);
    return rc;
}

#define S_MINIMAL \
    "{\"source\": {\"kind\": \"115\", \"name\": \"115 de Paris\"}," \
    " \"observed_at\": 1736935200000000," \
    " \"place\": {\"arrondissement\": 18, \"kind\": \"voie_publique\"}," \
    " \"persons\": 1, \"publics\": [\"homme_isole\"]"

#define S_FULL \
    "{\"source\": {\"kind\": \"maraude\", \"name\": \"Maraude Nord\", \"contact\": \"+33 1 00 00 00 00\"}," \
    " \"observed_at\": 1736935200000000," \
    " \"place\": {\"arrondissement\": 19, \"kind\": \"talus\", \"address\": \"porte de la Villette\"," \
    "            \"lat\": 48.8989, \"lon\": 2.3856}," \
    " \"persons\": 3, \"publics\": [\"femme_enceinte\", \"couple\", \"enfant\"]," \
    " \"minors\": 1, \"pregnant\": 1, \"tents\": 2, \"needs\": [\"soins\", \"mise_a_l_abri\"]," \
    " \"urgency\": \"immediate\", \"sensitive\": true, \"escalate\": true," \
    " \"escalate_reason\": \"sans solution\", \"summary\": \"ligne 1\\nligne 2\"," \
    " \"people\": [{\"name\": \"Personne A\", \"birth_year\": 1994, \"sex\": \"F\"," \
    "               \"phone\": \"+33 (0)6 00-00.00.00\", \"siao_id\": \"SIAO-1\"}," \
    "              {\"name\": \"Personne B\"}]}"

//  Parse text as a signal; returns rc, error in *err.
static int
s_parse_json (const char *text, const char *prefix, relais_signal_t *sig,
              relais_error_t *err)
{
    s_doc_t doc;
    s_doc_json (&doc, text);
    relais_error_clear (err);
    int rc = relais_signal_parse (&doc.msg.root, prefix, s_now (), sig, err);
    s_doc_free (&doc);
    return rc;
}

static void
s_expect_parse (const char *text, const char *code, const char *field)
{
    relais_signal_t sig;
    relais_error_t err;
    int rc = s_parse_json (text, "signal", &sig, &err);
    if (!code) {
        if (rc)
            fprintf (stderr, "unexpected error %s at %s: %s\n", err.code, err.field, err.message);
        CHECK_OK (rc);
        return;
    }
    CHECK (rc != 0);
    CHECK (err.code);
    CHECK_STR (err.code, code);
    CHECK_STR (err.field, field);
    CHECK (err.message [0]);
}

//  ---------------------------------------------------------------------------
//  relais_msg_decode: limits

static void
test_decode_limits (void)
{
    relais_error_t err;
    uint8_t buf [16384];

    //  Depth: the root is at depth 0; an object at depth 9 is refused
    memset (buf, 0x91, 8);
    buf [8] = 0x01;
    CHECK_OK (s_decode_rc (buf, 9, NULL, &err));
    memset (buf, 0x91, 9);
    buf [9] = 0x01;
    CHECK (s_decode_rc (buf, 10, NULL, &err) == RELAIS_ETOOLARGE);
    CHECK_STR (err.code, RELAIS_CODE_TOO_LARGE);
    //  Deeper than msgpack-c's own stack: still our error, not NOMEM
    memset (buf, 0x91, 100);
    buf [100] = 0x01;
    CHECK (s_decode_rc (buf, 101, NULL, &err) == RELAIS_ETOOLARGE);
    relais_msg_limits_t deep = { 0, 200, 0 };
    CHECK (s_decode_rc (buf, 101, &deep, &err) == RELAIS_ETOOLARGE);
    relais_msg_limits_t shallow = { 0, 2, 0 };
    CHECK (s_decode_rc (buf + 97, 4, &shallow, &err) == RELAIS_ETOOLARGE);
    CHECK_OK (s_decode_rc (buf + 98, 3, &shallow, &err));

    //  Object count: an array of 4095 nils is 4096 objects, one more is over
    buf [0] = 0xdc;
    buf [1] = 0x0f; buf [2] = 0xff;
    memset (buf + 3, 0xc0, 4096);
    CHECK_OK (s_decode_rc (buf, 3 + 4095, NULL, &err));
    buf [1] = 0x10; buf [2] = 0x00;
    CHECK (s_decode_rc (buf, 3 + 4096, NULL, &err) == RELAIS_ETOOLARGE);
    CHECK_STR (err.code, RELAIS_CODE_TOO_LARGE);
    relais_msg_limits_t few = { 0, 0, 10 };
    buf [0] = 0x9a;                                     //  fixarray of 10
    CHECK (s_decode_rc (buf, 11, &few, &err) == RELAIS_ETOOLARGE);
    buf [0] = 0x99;
    CHECK_OK (s_decode_rc (buf, 10, &few, &err));

    //  Counts that cannot fit in the bytes that remain
    const uint8_t arr32 [] = { 0xdd, 0xff, 0xff, 0xff, 0xff, 1, 2, 3 };
    CHECK (s_decode_rc (arr32, sizeof arr32, NULL, &err) == RELAIS_EMALFORMED);
    CHECK_STR (err.code, RELAIS_CODE_INVALID);
    const uint8_t map32 [] = { 0xdf, 0x3b, 0x9a, 0xca, 0x00 };
    CHECK (s_decode_rc (map32, sizeof map32, NULL, &err) == RELAIS_EMALFORMED);
    const uint8_t str32 [] = { 0xdb, 0x7f, 0xff, 0xff, 0xff, 'a' };
    CHECK (s_decode_rc (str32, sizeof str32, NULL, &err) == RELAIS_EMALFORMED);
    const uint8_t bin32 [] = { 0xc6, 0xff, 0xff, 0xff, 0xff, 'a' };
    CHECK (s_decode_rc (bin32, sizeof bin32, NULL, &err) == RELAIS_EMALFORMED);
    const uint8_t ext8 [] = { 0xc7, 0x05, 0x01, 'a' };
    CHECK (s_decode_rc (ext8, sizeof ext8, NULL, &err) == RELAIS_EMALFORMED);
    const uint8_t fixext [] = { 0xd4, 0x01, 0x07 };
    CHECK_OK (s_decode_rc (fixext, sizeof fixext, NULL, &err));

    //  Reserved byte, empty frame, trailing bytes
    const uint8_t c1 [] = { 0xc1 };
    CHECK (s_decode_rc (c1, 1, NULL, &err) == RELAIS_EMALFORMED);
    CHECK_STR (err.field, "");
    CHECK (s_decode_rc (c1, 0, NULL, &err) == RELAIS_EMALFORMED);
    const uint8_t trailing [] = { 0x80, 0x00 };
    CHECK (s_decode_rc (trailing, 2, NULL, &err) == RELAIS_EMALFORMED);
    CHECK_OK (s_decode_rc (trailing, 1, NULL, &err));

    //  Size: over 65,536 bytes is too large before anything is read
    uint8_t *big = (uint8_t *) calloc (1, 70000);
    CHECK (big);
    CHECK (s_decode_rc (big, 70000, NULL, &err) == RELAIS_ETOOLARGE);
    CHECK_STR (err.code, RELAIS_CODE_TOO_LARGE);
    //  A 65,536-byte bin is 65,541 bytes with its header: over
    big [0] = 0xc6; big [1] = 0; big [2] = 1; big [3] = 0; big [4] = 0;
    CHECK (s_decode_rc (big, 65541, NULL, &err) == RELAIS_ETOOLARGE);
    //  Exactly 65,536 bytes is fine
    big [2] = 0; big [3] = 0xff; big [4] = 0xfb;
    CHECK_OK (s_decode_rc (big, 65536, NULL, &err));
    free (big);

    //  Truncated: every strict prefix of a valid message is refused
    s_doc_t doc;
    s_doc_json (&doc, S_FULL);
    for (size_t n = 0; n < doc.sbuf.size; n++)
        CHECK (s_decode_rc (doc.sbuf.data, n, NULL, &err) != 0);
    s_doc_free (&doc);

    //  Release is safe on a failed and on a zeroed message
    relais_msg_t msg;
    CHECK (relais_msg_decode (&msg, c1, 1, NULL, &err) != 0);
    relais_msg_release (&msg);
    relais_msg_t zero;
    memset (&zero, 0, sizeof zero);
    relais_msg_release (&zero);
    relais_msg_release (NULL);
}

//  Wrap text in a fixstr/str8 and decode it.
static int
s_decode_str (const char *bytes, size_t size)
{
    uint8_t buf [300];
    CHECK (size < 256);
    buf [0] = 0xd9;
    buf [1] = (uint8_t) size;
    memcpy (buf + 2, bytes, size);
    relais_error_t err;
    return s_decode_rc (buf, size + 2, NULL, &err);
}

static void
test_utf8 (void)
{
    struct { const char *bytes; size_t size; bool ok_single; bool ok_multi; } cases [] = {
        { "plain text", 10, true, true },
        { "", 0, true, true },
        { "\xc3\xa9t\xc3\xa9", 5, true, true },             //  été
        { "\xe2\x82\xac", 3, true, true },                  //  euro sign
        { "\xf0\x9f\x98\x80", 4, true, true },              //  U+1F600
        { "\xf4\x8f\xbf\xbf", 4, true, true },              //  U+10FFFF
        { "\xc2\xa0", 2, true, true },                      //  U+00A0, first after C1
        { "a\nb", 3, false, true },
        { "a\tb\r\n", 5, false, true },
        { "a\x1b[31mb", 8, false, false },                  //  ESC
        { "a\x7f", 2, false, false },                       //  DEL
        { "a\0b", 3, false, false },                        //  NUL
        { "\x01", 1, false, false },
        { "\xc2\x9b", 2, false, false },                    //  C1 CSI
        { "\xc2\x80", 2, false, false },                    //  C1 first
        { "\xc2\x9f", 2, false, false },                    //  C1 last
        { "\xc0\xaf", 2, false, false },                    //  overlong '/'
        { "\xc1\xbf", 2, false, false },                    //  overlong
        { "\xe0\x80\xaf", 3, false, false },                //  overlong 3-byte
        { "\xe0\x9f\xbf", 3, false, false },                //  overlong U+07FF
        { "\xf0\x80\x80\xaf", 4, false, false },            //  overlong 4-byte
        { "\xf0\x8f\xbf\xbf", 4, false, false },            //  overlong U+FFFF
        { "\xed\xa0\x80", 3, false, false },                //  high surrogate
        { "\xed\xbf\xbf", 3, false, false },                //  low surrogate
        { "\xf4\x90\x80\x80", 4, false, false },            //  beyond U+10FFFF
        { "\xf8\x88\x80\x80\x80", 5, false, false },        //  5-byte form
        { "\xff", 1, false, false },
        { "\x80", 1, false, false },                        //  lone continuation
        { "\xe2\x82", 2, false, false },                    //  cut sequence
        { "\xe2\x28\xa1", 3, false, false },                //  bad continuation
        { "abc\xc3", 4, false, false },                     //  cut at the end
    };
    //  Every length around the word-sized checks (1 to 20 bytes), with one
    //  byte replaced at every position: a control, DEL, a lone continuation
    //  or a cut sequence is refused wherever it is, a newline only without
    //  allow_newlines, a 2-byte letter (é) accepted
    for (size_t len = 1; len <= 20; len++)
        for (size_t at = 0; at < len; at++) {
            char text [24];
            memset (text, 'a', sizeof text);
            const uint8_t bad [] = { 0x00, 0x1f, 0x7f, 0x80, 0xc3, 0xff };
            for (size_t b = 0; b < sizeof bad; b++) {
                text [at] = (char) bad [b];
                CHECK (!relais_utf8_clean (text, len, true));
                CHECK (!relais_utf8_clean (text, len, false));
            }
            text [at] = '\n';
            CHECK (relais_utf8_clean (text, len, true));
            CHECK (!relais_utf8_clean (text, len, false));
            text [at] = 'a';
            CHECK (relais_utf8_clean (text, len, false));
            if (at + 1 < len) {
                text [at] = (char) 0xc3;
                text [at + 1] = (char) 0xa9;
                CHECK (relais_utf8_clean (text, len, false));
            }
        }
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        bool single = relais_utf8_clean (cases [i].bytes, cases [i].size, false);
        bool multi = relais_utf8_clean (cases [i].bytes, cases [i].size, true);
        if (single != cases [i].ok_single || multi != cases [i].ok_multi)
            fprintf (stderr, "utf8 case %zu\n", i);
        CHECK (single == cases [i].ok_single);
        CHECK (multi == cases [i].ok_multi);
        //  The decoder applies the multi-line rule to every str
        CHECK ((s_decode_str (cases [i].bytes, cases [i].size) == 0) == cases [i].ok_multi);
    }
    //  Long text goes 8 bytes at a time while it is plain ASCII: every case
    //  above, at every offset within a 40-byte printable run, gives the same
    //  answer as alone (and the run alone, every length, is clean)
    for (size_t len = 0; len <= 40; len++) {
        char run [41];
        memset (run, 'a' + (int) (len % 26), len);
        CHECK (relais_utf8_clean (run, len, false));
    }
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++)
        for (size_t at = 0; at <= 20; at++) {
            char text [64];
            memset (text, '~', sizeof text);            //  0x7e, the last printable
            memcpy (text + at, cases [i].bytes, cases [i].size);
            size_t size = at + cases [i].size + 20;
            CHECK (relais_utf8_clean (text, size, false) == cases [i].ok_single);
            CHECK (relais_utf8_clean (text, size, true) == cases [i].ok_multi);
        }
    //  Keys are strings too
    const uint8_t key_esc [] = { 0x81, 0xa1, 0x1b, 0x01 };
    relais_error_t err;
    CHECK (s_decode_rc (key_esc, sizeof key_esc, NULL, &err) == RELAIS_EMALFORMED);
    //  bin is not text: any bytes
    const uint8_t bin [] = { 0xc4, 0x02, 0x1b, 0xff };
    CHECK_OK (s_decode_rc (bin, sizeof bin, NULL, &err));
}

//  ---------------------------------------------------------------------------
//  relais_msg helpers

static void
test_msg_helpers (void)
{
    s_doc_t doc;
    s_doc_json (&doc, "{\"a\": \"text\", \"n\": 42, \"neg\": -3, \"f\": 1.5, \"b\": true,"
                      " \"empty\": \"\"}");
    const msgpack_object *root = &doc.msg.root;
    const msgpack_object *a = relais_msg_get (root, "a");
    CHECK (a);
    CHECK (relais_msg_str_eq (a, "text"));
    CHECK (!relais_msg_str_eq (a, "tex"));
    CHECK (!relais_msg_str_eq (a, "texts"));
    CHECK (!relais_msg_str_eq (NULL, "text"));
    CHECK (!relais_msg_get (root, "missing"));
    CHECK (!relais_msg_get (root, ""));
    CHECK (!relais_msg_get (a, "a"));           //  not a map
    CHECK (!relais_msg_get (NULL, "a"));

    char buf [8];
    CHECK (relais_msg_str_copy (a, buf, sizeof buf) == 4);
    CHECK_STR (buf, "text");
    CHECK (relais_msg_str_copy (a, buf, 4) == -1);      //  needs 5 with the NUL
    CHECK (relais_msg_str_copy (a, buf, 5) == 4);
    CHECK (relais_msg_str_copy (relais_msg_get (root, "empty"), buf, 1) == 0);
    CHECK_STR (buf, "");
    CHECK (relais_msg_str_copy (relais_msg_get (root, "n"), buf, sizeof buf) == -1);
    CHECK (relais_msg_str_copy (NULL, buf, sizeof buf) == -1);

    uint64_t v = 7;
    CHECK (relais_msg_uint (relais_msg_get (root, "n"), &v) && v == 42);
    v = 7;
    CHECK (!relais_msg_uint (relais_msg_get (root, "neg"), &v) && v == 7);
    CHECK (!relais_msg_uint (relais_msg_get (root, "f"), &v));
    CHECK (!relais_msg_uint (relais_msg_get (root, "b"), &v));
    CHECK (!relais_msg_uint (NULL, &v));
    s_doc_free (&doc);

    //  A positive value in a signed encoding is still an unsigned integer
    const uint8_t int8 [] = { 0xd0, 0x05 };
    s_doc_bytes (&doc, int8, sizeof int8);
    CHECK_OK (doc.rc);
    CHECK (relais_msg_uint (&doc.msg.root, &v) && v == 5);
    s_doc_free (&doc);

    //  Error reply: {ok:false, code, field?, message, idem?, rid?}
    s_doc_t req;
    s_doc_json (&req, "{\"idem\": \"abc\", \"rid\": [1, 2]}");
    relais_error_t err;
    CHECK (relais_error_set (&err, RELAIS_CODE_TOO_LARGE, "signal.summary",
                             "at most %d bytes", 2000) == RELAIS_ETOOLARGE);
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    relais_pack_error (&pk, &err, relais_msg_get (&req.msg.root, "idem"),
                       relais_msg_get (&req.msg.root, "rid"));
    relais_msg_t reply;
    CHECK_OK (relais_msg_decode (&reply, sbuf.data, sbuf.size, NULL, &err));
    CHECK (reply.root.type == MSGPACK_OBJECT_MAP && reply.root.via.map.size == 6);
    const msgpack_object *ok = relais_msg_get (&reply.root, "ok");
    CHECK (ok && ok->type == MSGPACK_OBJECT_BOOLEAN && !ok->via.boolean);
    CHECK (relais_msg_str_eq (relais_msg_get (&reply.root, "code"), "too_large"));
    CHECK (relais_msg_str_eq (relais_msg_get (&reply.root, "field"), "signal.summary"));
    CHECK (relais_msg_str_eq (relais_msg_get (&reply.root, "message"), "at most 2000 bytes"));
    CHECK (relais_msg_str_eq (relais_msg_get (&reply.root, "idem"), "abc"));
    const msgpack_object *rid = relais_msg_get (&reply.root, "rid");
    CHECK (rid && rid->type == MSGPACK_OBJECT_ARRAY && rid->via.array.size == 2);
    relais_msg_release (&reply);
    msgpack_sbuffer_clear (&sbuf);

    //  Without field, idem or rid (an idem that is not a str is left out)
    relais_error_set (&err, RELAIS_CODE_INVALID, "", "not MessagePack");
    relais_pack_error (&pk, &err, relais_msg_get (&req.msg.root, "rid"), NULL);
    CHECK_OK (relais_msg_decode (&reply, sbuf.data, sbuf.size, NULL, &err));
    CHECK (reply.root.via.map.size == 3);
    CHECK (!relais_msg_get (&reply.root, "field"));
    relais_msg_release (&reply);
    msgpack_sbuffer_destroy (&sbuf);
    s_doc_free (&req);

    //  relais_error_set maps codes to return codes
    CHECK (relais_error_set (&err, RELAIS_CODE_NOT_FOUND, "id", "x") == RELAIS_ENOTFOUND);
    CHECK (relais_error_set (&err, RELAIS_CODE_CONFLICT, "id", "x") == RELAIS_ECONFLICT);
    CHECK (relais_error_set (&err, RELAIS_CODE_INVALID, NULL, "x") == RELAIS_EMALFORMED);
    CHECK_STR (err.field, "");
    relais_error_clear (&err);
    CHECK (err.code == NULL && err.field [0] == 0);
    CHECK (strcmp (relais_strerror (RELAIS_ETOOLARGE), "input over a limit") == 0);
}

//  ---------------------------------------------------------------------------
//  Envelopes

static void
test_envelope (void)
{
    msgpack_sbuffer body;
    msgpack_sbuffer_init (&body);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &body, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 1);
    relais_pack_kv_str (&pk, "reason", "resolu");

    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    relais_envelope_pack (&sbuf, "intake", 7, 1736935200000000ULL, "signal.closed",
                          "SIG-00000007", "prod-1:9", body.data, body.size);
    relais_msg_t msg;
    relais_error_t err;
    CHECK_OK (relais_msg_decode (&msg, sbuf.data, sbuf.size, NULL, &err));
    relais_envelope_t env;
    CHECK_OK (relais_envelope_decode (&msg.root, false, &env, &err));
    CHECK (env.v == 1 && env.seq == 7 && env.ts == 1736935200000000ULL);
    CHECK_STR (env.src, "intake");
    CHECK_STR (env.type, "signal.closed");
    CHECK_STR (env.key, "SIG-00000007");
    CHECK_STR (env.corr, "prod-1:9");
    CHECK (env.body && env.body->type == MSGPACK_OBJECT_MAP);
    CHECK (relais_msg_str_eq (relais_msg_get (env.body, "reason"), "resolu"));
    //  A heartbeat reader ignores the keys it does not need
    CHECK_OK (relais_envelope_decode (&msg.root, true, &env, &err));
    relais_msg_release (&msg);
    msgpack_sbuffer_clear (&sbuf);

    //  Without corr
    relais_envelope_pack (&sbuf, "intake", 8, 1, "signal.created", "SIG-8", NULL,
                          body.data, body.size);
    CHECK_OK (relais_msg_decode (&msg, sbuf.data, sbuf.size, NULL, &err));
    CHECK (msg.root.via.map.size == 7);
    CHECK_OK (relais_envelope_decode (&msg.root, false, &env, &err));
    CHECK_STR (env.corr, "");
    relais_msg_release (&msg);
    msgpack_sbuffer_clear (&sbuf);

    //  Heartbeat: {v, src, seq, ts}, seq may be 0 before the first event
    relais_envelope_pack (&sbuf, "intake", 0, 99, NULL, NULL, NULL, NULL, 0);
    CHECK_OK (relais_msg_decode (&msg, sbuf.data, sbuf.size, NULL, &err));
    CHECK (msg.root.via.map.size == 4);
    CHECK_OK (relais_envelope_decode (&msg.root, true, &env, &err));
    CHECK (env.seq == 0 && env.ts == 99 && env.body == NULL);
    CHECK_STR (env.type, "");
    //  but it is not an event
    CHECK (relais_envelope_decode (&msg.root, false, &env, &err) == RELAIS_EMALFORMED);
    relais_msg_release (&msg);
    msgpack_sbuffer_destroy (&sbuf);
    msgpack_sbuffer_destroy (&body);

    //  Bad envelopes name their field
    struct { const char *json; bool heartbeat; const char *code; const char *field; } bad [] = {
        { "[1]", false, "invalid", "" },
        { "{\"src\": \"intake\", \"seq\": 1, \"ts\": 1}", true, "invalid", "v" },
        { "{\"v\": 2, \"src\": \"intake\", \"seq\": 1, \"ts\": 1}", true, "invalid", "v" },
        { "{\"v\": 1, \"src\": 5, \"seq\": 1, \"ts\": 1}", true, "invalid", "src" },
        { "{\"v\": 1, \"src\": \"a\\tb\", \"seq\": 1, \"ts\": 1}", true, "invalid", "src" },
        { "{\"v\": 1, \"src\": \"a\\nb\", \"seq\": 1, \"ts\": 1}", true, "invalid", "src" },
        { "{\"v\": 1, \"src\": \"0123456789012345678901234567890123\", \"seq\": 1, \"ts\": 1}",
          true, "too_large", "src" },
        { "{\"v\": 1, \"src\": \"intake\", \"seq\": -1, \"ts\": 1}", true, "invalid", "seq" },
        { "{\"v\": 1, \"src\": \"intake\", \"seq\": 1}", true, "invalid", "ts" },
        { "{\"v\": 1, \"src\": \"intake\", \"seq\": 0, \"ts\": 1, \"type\": \"t\", \"key\": \"k\", \"body\": {}}",
          false, "invalid", "seq" },
        { "{\"v\": 1, \"src\": \"intake\", \"seq\": 1, \"ts\": 1, \"key\": \"k\", \"body\": {}}",
          false, "invalid", "type" },
        { "{\"v\": 1, \"src\": \"intake\", \"seq\": 1, \"ts\": 1, \"type\": \"t\", \"body\": {}}",
          false, "invalid", "key" },
        { "{\"v\": 1, \"src\": \"intake\", \"seq\": 1, \"ts\": 1, \"type\": \"t\", \"key\": \"k\", \"corr\": 3, \"body\": {}}",
          false, "invalid", "corr" },
        { "{\"v\": 1, \"src\": \"intake\", \"seq\": 1, \"ts\": 1, \"type\": \"t\", \"key\": \"k\", \"body\": []}",
          false, "invalid", "body" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        s_doc_t doc;
        s_doc_json (&doc, bad [i].json);
        relais_error_clear (&err);
        CHECK (relais_envelope_decode (&doc.msg.root, bad [i].heartbeat, &env, &err) != 0);
        CHECK_STR (err.code, bad [i].code);
        CHECK_STR (err.field, bad [i].field);
        s_doc_free (&doc);
    }
    CHECK (relais_envelope_decode (NULL, false, &env, &err) == RELAIS_EMALFORMED);
}

//  ---------------------------------------------------------------------------
//  Signal schema

static void
test_enums (void)
{
    CHECK (relais_enum_find (relais_public_names, RELAIS_PUBLIC_COUNT, "famille")
           == RELAIS_PUBLIC_FAMILLE);
    CHECK (relais_enum_find (relais_public_names, RELAIS_PUBLIC_COUNT, "addiction")
           == RELAIS_PUBLIC_ADDICTION);
    CHECK (relais_enum_find (relais_public_names, RELAIS_PUBLIC_COUNT, "Famille") == -1);
    CHECK (relais_enum_find (relais_public_names, RELAIS_PUBLIC_COUNT, "") == -1);
    CHECK (relais_enum_find (relais_public_names, RELAIS_PUBLIC_COUNT, NULL) == -1);
    CHECK (relais_enum_find (relais_source_kind_names, RELAIS_SOURCE_COUNT, "riverain")
           == RELAIS_SOURCE_RIVERAIN);
    CHECK (relais_enum_find (relais_place_kind_names, RELAIS_PLACE_COUNT, "talus")
           == RELAIS_PLACE_TALUS);
    CHECK (relais_enum_find (relais_need_names, RELAIS_NEED_COUNT, "protection_enfance")
           == RELAIS_NEED_PROTECTION_ENFANCE);
    CHECK (relais_enum_find (relais_urgency_names, RELAIS_URGENCY_COUNT, "semaine")
           == RELAIS_URGENCY_SEMAINE);
    CHECK_STR (relais_source_kind_names [RELAIS_SOURCE_115], "115");
    CHECK_STR (relais_place_kind_names [RELAIS_PLACE_AUTRE], "autre");

    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    //  Bits past the table are ignored
    relais_pack_mask (&pk, (1u << RELAIS_NEED_SOINS) | (1u << RELAIS_NEED_HYGIENE) | (1u << 30),
                      relais_need_names, RELAIS_NEED_COUNT);
    relais_msg_t msg;
    relais_error_t err;
    CHECK_OK (relais_msg_decode (&msg, sbuf.data, sbuf.size, NULL, &err));
    CHECK (msg.root.type == MSGPACK_OBJECT_ARRAY && msg.root.via.array.size == 2);
    CHECK (relais_msg_str_eq (&msg.root.via.array.ptr [0], "soins"));
    CHECK (relais_msg_str_eq (&msg.root.via.array.ptr [1], "hygiene"));
    relais_msg_release (&msg);
    msgpack_sbuffer_destroy (&sbuf);
}

static void
test_signal_parse_good (void)
{
    relais_signal_t sig;
    relais_error_t err;
    CHECK_OK (s_parse_json (S_MINIMAL "}", "signal", &sig, &err));
    CHECK (sig.source_kind == RELAIS_SOURCE_115);
    CHECK_STR (sig.source_name, "115 de Paris");
    CHECK_STR (sig.source_contact, "");
    CHECK (sig.observed_at == 1736935200000000ULL);
    CHECK (sig.arrondissement == 18 && sig.place_kind == RELAIS_PLACE_VOIE_PUBLIQUE);
    CHECK (!sig.has_geo && sig.address [0] == 0);
    CHECK (sig.persons == 1 && sig.publics == (1u << RELAIS_PUBLIC_HOMME_ISOLE));
    //  Defaults
    CHECK (sig.minors == 0 && sig.pregnant == 0 && sig.tents == 0 && sig.needs == 0);
    CHECK (sig.urgency == RELAIS_URGENCY_JOUR);
    CHECK (!sig.sensitive && !sig.escalate && sig.people_count == 0);

    CHECK_OK (s_parse_json (S_FULL, "signal", &sig, &err));
    CHECK (sig.source_kind == RELAIS_SOURCE_MARAUDE);
    CHECK_STR (sig.source_contact, "+33 1 00 00 00 00");
    CHECK (sig.arrondissement == 19 && sig.place_kind == RELAIS_PLACE_TALUS);
    CHECK_STR (sig.address, "porte de la Villette");
    CHECK (sig.has_geo && sig.lat == 48.8989 && sig.lon == 2.3856);
    CHECK (sig.publics == ((1u << RELAIS_PUBLIC_FEMME_ENCEINTE) | (1u << RELAIS_PUBLIC_COUPLE)
                         | (1u << RELAIS_PUBLIC_ENFANT)));
    CHECK (sig.minors == 1 && sig.pregnant == 1 && sig.tents == 2);
    CHECK (sig.needs == ((1u << RELAIS_NEED_SOINS) | (1u << RELAIS_NEED_MISE_A_L_ABRI)));
    CHECK (sig.urgency == RELAIS_URGENCY_IMMEDIATE && sig.sensitive && sig.escalate);
    CHECK_STR (sig.escalate_reason, "sans solution");
    CHECK_STR (sig.summary, "ligne 1\nligne 2");
    CHECK (sig.people_count == 2);
    CHECK_STR (sig.people [0].name, "Personne A");
    CHECK (sig.people [0].birth_year == 1994);
    CHECK_STR (sig.people [0].sex, "F");
    CHECK_STR (sig.people [0].phone, "+33 (0)6 00-00.00.00");
    CHECK_STR (sig.people [0].siao_id, "SIAO-1");
    CHECK_STR (sig.people [1].name, "Personne B");
    CHECK (sig.people [1].birth_year == 0 && sig.people [1].sex [0] == 0);

    //  Limits exactly reached are accepted; float32 and integer-valued doubles
    s_expect_parse (S_MINIMAL ", \"persons\": 10000, \"tents\": 10000, \"minors\": 10000}", NULL, NULL);
    s_expect_parse ("{\"source\": {\"kind\": \"riverain\", \"name\": \"x\", \"contact\": \"\"},"
                    " \"observed_at\": 946684800000000,"
                    " \"place\": {\"arrondissement\": 1, \"kind\": \"autre\", \"lat\": 48.80, \"lon\": 2.48},"
                    " \"persons\": 1, \"publics\": [\"addiction\"], \"needs\": []}", NULL, NULL);
}

static void
test_signal_parse_bad (void)
{
    //  Root and prefix
    relais_signal_t sig;
    relais_error_t err;
    CHECK (s_parse_json ("[]", "signal", &sig, &err) == RELAIS_EMALFORMED);
    CHECK_STR (err.field, "signal");
    CHECK (relais_signal_parse (NULL, "signal", s_now (), &sig, &err) == RELAIS_EMALFORMED);
    CHECK (s_parse_json (S_MINIMAL ", \"place\": {\"arrondissement\": 0, \"kind\": \"gare\"}}",
                         "", &sig, &err) == RELAIS_EMALFORMED);
    CHECK_STR (err.field, "place.arrondissement");
    CHECK (strstr (err.message, "1 to 20"));
    CHECK (s_parse_json (S_MINIMAL ", \"people\": [{\"name\": \"A\"}, {\"name\": \"B\", \"phone\": \"x\"}]}",
                         "", &sig, &err) == RELAIS_EMALFORMED);
    CHECK_STR (err.field, "people[1].phone");
    CHECK_OK (s_parse_json (S_MINIMAL "}", "rec", &sig, &err));

    //  Types, ranges, enums and limits; messages never echo the value
    s_expect_parse (S_MINIMAL ", \"persons\": 1.0}", "invalid", "signal.persons");
    s_expect_parse (S_MINIMAL ", \"persons\": -4}", "invalid", "signal.persons");
    s_expect_parse (S_MINIMAL ", \"persons\": null}", "invalid", "signal.persons");
    s_expect_parse (S_MINIMAL ", \"minors\": -1}", "invalid", "signal.minors");
    s_expect_parse (S_MINIMAL ", \"pregnant\": 2}", "invalid", "signal.pregnant");
    s_expect_parse (S_MINIMAL ", \"minors\": 2}", "invalid", "signal.minors");
    s_expect_parse (S_MINIMAL ", \"tents\": 10001}", "invalid", "signal.tents");
    s_expect_parse (S_MINIMAL ", \"observed_at\": 1e15}", "invalid", "signal.observed_at");
    s_expect_parse (S_MINIMAL ", \"observed_at\": 946684799999999}", "invalid", "signal.observed_at");
    s_expect_parse (S_MINIMAL ", \"observed_at\": 18446744073709551}", "invalid", "signal.observed_at");
    s_expect_parse (S_MINIMAL ", \"source\": \"115\"}", "invalid", "signal.source");
    s_expect_parse (S_MINIMAL ", \"source\": {\"name\": \"x\"}}", "invalid", "signal.source.kind");
    s_expect_parse (S_MINIMAL ", \"source\": {\"kind\": \"115\"}}", "invalid", "signal.source.name");
    s_expect_parse (S_MINIMAL ", \"source\": {\"kind\": \"115\", \"name\": \"a\\tb\"}}",
                    "invalid", "signal.source.name");
    s_expect_parse (S_MINIMAL ", \"place\": 18}", "invalid", "signal.place");
    s_expect_parse (S_MINIMAL ", \"place\": {\"arrondissement\": 20, \"kind\": \"plage\"}}",
                    "invalid", "signal.place.kind");
    s_expect_parse (S_MINIMAL ", \"place\": {\"arrondissement\": 20, \"kind\": \"bois\", \"lat\": \"48.85\", \"lon\": 2.3}}",
                    "invalid", "signal.place.lat");
    s_expect_parse (S_MINIMAL ", \"place\": {\"arrondissement\": 20, \"kind\": \"bois\", \"lat\": 48.85, \"lon\": 2.21}}",
                    "invalid", "signal.place.lon");
    s_expect_parse (S_MINIMAL ", \"publics\": \"famille\"}", "invalid", "signal.publics");
    s_expect_parse (S_MINIMAL ", \"publics\": [\"famille\", 3]}", "invalid", "signal.publics[1]");
    s_expect_parse (S_MINIMAL ", \"needs\": [\"soins\", \"x\"]}", "invalid", "signal.needs[1]");
    s_expect_parse (S_MINIMAL ", \"needs\": [\"soins\", \"soins\", \"soins\", \"soins\", \"soins\","
                    " \"soins\", \"soins\", \"soins\"]}", "too_large", "signal.needs");
    s_expect_parse (S_MINIMAL ", \"urgency\": 1}", "invalid", "signal.urgency");
    s_expect_parse (S_MINIMAL ", \"escalate\": \"yes\"}", "invalid", "signal.escalate");
    s_expect_parse (S_MINIMAL ", \"escalate\": true, \"escalate_reason\": \"\"}",
                    "invalid", "signal.escalate_reason");
    s_expect_parse (S_MINIMAL ", \"escalate\": false, \"escalate_reason\": \"kept\"}", NULL, NULL);
    s_expect_parse (S_MINIMAL ", \"summary\": 5}", "invalid", "signal.summary");
    s_expect_parse (S_MINIMAL ", \"people\": {}}", "invalid", "signal.people");
    s_expect_parse (S_MINIMAL ", \"people\": [{\"name\": \"\"}]}", "invalid", "signal.people[0].name");
    s_expect_parse (S_MINIMAL ", \"people\": [{\"name\": \"A\", \"sex\": \"\"}]}",
                    "invalid", "signal.people[0].sex");
    s_expect_parse (S_MINIMAL ", \"people\": [{\"name\": \"A\", \"sex\": \"FF\"}]}",
                    "invalid", "signal.people[0].sex");
    s_expect_parse (S_MINIMAL ", \"people\": [{\"name\": \"A\", \"birth_year\": 2101}]}",
                    "invalid", "signal.people[0].birth_year");
    s_expect_parse (S_MINIMAL ", \"people\": [{\"name\": \"A\", \"phone\": \"012345678901234567890123456789012\"}]}",
                    "too_large", "signal.people[0].phone");
    s_expect_parse (S_MINIMAL ", \"people\": [{\"name\": \"A\", \"phone\": \"01\\n23\"}]}",
                    "invalid", "signal.people[0].phone");

    //  Strings at their limit are accepted, one byte more is too large
    char text [2200];
    char json [2600];
    memset (text, 's', 2000);
    text [2000] = 0;
    snprintf (json, sizeof json, S_MINIMAL ", \"summary\": \"%s\"}", text);
    s_expect_parse (json, NULL, NULL);
    memset (text, 'n', 129);
    text [128] = 0;
    snprintf (json, sizeof json, S_MINIMAL ", \"source\": {\"kind\": \"115\", \"name\": \"%s\"}}", text);
    s_expect_parse (json, NULL, NULL);
    text [128] = 'n';
    text [129] = 0;
    snprintf (json, sizeof json, S_MINIMAL ", \"source\": {\"kind\": \"115\", \"name\": \"%s\"}}", text);
    s_expect_parse (json, "too_large", "signal.source.name");
    //  The limit is in bytes: 65 two-byte characters are 130 bytes
    strcpy (text, "");
    for (int i = 0; i < 65; i++)
        strcat (text, "\xc3\xa9");
    snprintf (json, sizeof json, S_MINIMAL ", \"source\": {\"kind\": \"115\", \"name\": \"%s\"}}", text);
    s_expect_parse (json, "too_large", "signal.source.name");

    //  Bytes the decoder would have refused, handed straight to the parser
    //  (an object built elsewhere): the schema refuses them too.
    s_doc_t doc;
    s_doc_json (&doc, S_MINIMAL "}");
    msgpack_object *source = (msgpack_object *) relais_msg_get (&doc.msg.root, "source");
    msgpack_object *name = (msgpack_object *) relais_msg_get (source, "name");
    const char *hostile [] = { "AB\xff\xfe", "a\x1b[2Jb", ("a\xc2\x9b" "2Jb"), "\xc0\xaf", "a\0b" };
    const uint32_t sizes [] = { 4, 6, 6, 2, 3 };
    for (int i = 0; i < 5; i++) {
        name->via.str.ptr = hostile [i];
        name->via.str.size = sizes [i];
        relais_error_clear (&err);
        CHECK (relais_signal_parse (&doc.msg.root, "signal", s_now (), &sig, &err)
               == RELAIS_EMALFORMED);
        CHECK_STR (err.field, "signal.source.name");
        //  The message says what is wanted, not what was sent
        CHECK (!strstr (err.message, "AB") && !strstr (err.message, "\x1b"));
    }
    //  A negative integer where an unsigned one is wanted, and a float32
    msgpack_object *persons = (msgpack_object *) relais_msg_get (&doc.msg.root, "persons");
    persons->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
    persons->via.i64 = -1;
    name->via.str.ptr = "ok";
    name->via.str.size = 2;
    CHECK (relais_signal_parse (&doc.msg.root, "signal", s_now (), &sig, &err) == RELAIS_EMALFORMED);
    CHECK_STR (err.field, "signal.persons");
    persons->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    persons->via.u64 = 2;
    CHECK_OK (relais_signal_parse (&doc.msg.root, "signal", s_now (), &sig, &err));
    s_doc_free (&doc);

    //  lat/lon as float32 (0xca), as msgpack-c unpacks it
    s_doc_json (&doc, S_MINIMAL ", \"place\": {\"arrondissement\": 7, \"kind\": \"gare\", \"lat\": 1, \"lon\": 2}}");
    msgpack_object *place = (msgpack_object *) relais_msg_get (&doc.msg.root, "place");
    msgpack_object *lat = (msgpack_object *) relais_msg_get (place, "lat");
    msgpack_object *lon = (msgpack_object *) relais_msg_get (place, "lon");
    lat->type = MSGPACK_OBJECT_FLOAT32;
    lat->via.f64 = (float) 48.85;
    lon->type = MSGPACK_OBJECT_FLOAT32;
    lon->via.f64 = (float) 2.35;
    CHECK_OK (relais_signal_parse (&doc.msg.root, "signal", s_now (), &sig, &err));
    CHECK (sig.has_geo && sig.lat > 48.84 && sig.lat < 48.86);
    lat->type = MSGPACK_OBJECT_FLOAT64;
    lat->via.f64 = nan ("");
    CHECK (relais_signal_parse (&doc.msg.root, "signal", s_now (), &sig, &err) == RELAIS_EMALFORMED);
    CHECK_STR (err.field, "signal.place.lat");
    s_doc_free (&doc);
}

//  Pack a struct in full, decode, parse: the struct must come back equal
static void
s_round_trip (const relais_signal_t *sig)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    relais_signal_pack_full (&pk, sig);
    relais_msg_t msg;
    relais_error_t err;
    CHECK_OK (relais_msg_decode (&msg, sbuf.data, sbuf.size, NULL, &err));
    relais_signal_t back;
    memset (&back, 0, sizeof back);
    int rc = relais_signal_parse (&msg.root, "", s_now (), &back, &err);
    if (rc)
        fprintf (stderr, "round trip: %s at %s: %s\n", err.code, err.field, err.message);
    CHECK_OK (rc);
    CHECK (memcmp (&back, sig, sizeof back) == 0);
    relais_msg_release (&msg);
    msgpack_sbuffer_destroy (&sbuf);
}

static void
test_pack_full_round_trip (void)
{
    relais_signal_t sig;
    relais_error_t err;
    CHECK_OK (s_parse_json (S_MINIMAL "}", "signal", &sig, &err));
    s_round_trip (&sig);
    CHECK_OK (s_parse_json (S_FULL, "signal", &sig, &err));
    s_round_trip (&sig);

    //  Every field at its largest, filled by hand from a zeroed struct
    memset (&sig, 0, sizeof sig);
    sig.source_kind = RELAIS_SOURCE_RIVERAIN;
    memset (sig.source_name, 'n', RELAIS_SIG_NAME_MAX);
    memset (sig.source_contact, 'c', RELAIS_SIG_CONTACT_MAX);
    sig.observed_at = s_now ();
    sig.arrondissement = 20;
    sig.place_kind = RELAIS_PLACE_AUTRE;
    memset (sig.address, 'a', RELAIS_SIG_ADDRESS_MAX);
    sig.has_geo = true;
    sig.lat = 48.91;
    sig.lon = 2.22;
    sig.persons = RELAIS_SIG_PERSONS_MAX;
    sig.publics = (1u << RELAIS_PUBLIC_COUNT) - 1;
    sig.minors = 3;
    sig.pregnant = RELAIS_SIG_PERSONS_MAX;
    sig.tents = RELAIS_SIG_TENTS_MAX;
    sig.needs = (1u << RELAIS_NEED_COUNT) - 1;
    sig.urgency = RELAIS_URGENCY_SEMAINE;
    sig.sensitive = true;
    sig.escalate = true;
    memset (sig.escalate_reason, 'r', RELAIS_SIG_REASON_MAX);
    memset (sig.summary, '\n', RELAIS_SIG_SUMMARY_MAX);
    sig.people_count = RELAIS_SIG_PEOPLE_MAX;
    for (int i = 0; i < RELAIS_SIG_PEOPLE_MAX; i++) {
        relais_person_t *p = &sig.people [i];
        memset (p->name, 'p', RELAIS_SIG_NAME_MAX);
        p->birth_year = 1900 + (uint32_t) i * 10;
        strcpy (p->sex, i % 3 == 0? "F": i % 3 == 1? "M": "X");
        memset (p->phone, '0', RELAIS_SIG_PHONE_MAX);
        if (i % 2)
            memset (p->siao_id, 'i', RELAIS_SIG_PERSON_ID_MAX);
    }
    s_round_trip (&sig);
    //  Optional personal fields left empty
    sig.has_geo = false;
    sig.lat = sig.lon = 0;
    sig.address [0] = 0;
    memset (sig.address, 0, sizeof sig.address);
    memset (sig.summary, 0, sizeof sig.summary);
    memset (sig.source_contact, 0, sizeof sig.source_contact);
    sig.escalate = false;
    memset (sig.escalate_reason, 0, sizeof sig.escalate_reason);
    sig.people_count = 0;
    memset (sig.people, 0, sizeof sig.people);
    s_round_trip (&sig);
}

static const char *const s_public_keys [] = {
    "source", "observed_at", "place", "persons", "publics", "minors", "pregnant",
    "tents", "needs", "urgency", "sensitive", "escalate", NULL
};
//  Keys intake adds to signal.created / signal.updated bodies
static const char *const s_intake_keys [] = {
    "level", "reasons", "person_refs", "received_at", "changed", "changes", NULL
};
static const char *const s_personal_keys [] = {
    "contact", "address", "lat", "lon", "summary", "people", "escalate_reason",
    "phone", "siao_id", "birth_year", NULL
};

static bool
s_in (const char *const *list, const msgpack_object *key)
{
    for (int i = 0; list [i]; i++)
        if (relais_msg_str_eq (key, list [i]))
            return true;
    return false;
}

//  No personal key anywhere in o, at any depth
static void
s_check_no_personal (const msgpack_object *o)
{
    if (o->type == MSGPACK_OBJECT_MAP)
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            CHECK (!s_in (s_personal_keys, &o->via.map.ptr [i].key));
            s_check_no_personal (&o->via.map.ptr [i].val);
        }
    else
    if (o->type == MSGPACK_OBJECT_ARRAY)
        for (uint32_t i = 0; i < o->via.array.size; i++)
            s_check_no_personal (&o->via.array.ptr [i]);
}

//  A public body: only allowed keys; source {kind, name}; place {arr, kind, cell?}
static void
s_check_public_body (const msgpack_object *body)
{
    CHECK (body && body->type == MSGPACK_OBJECT_MAP);
    for (uint32_t i = 0; i < body->via.map.size; i++) {
        const msgpack_object *key = &body->via.map.ptr [i].key;
        CHECK (s_in (s_public_keys, key) || s_in (s_intake_keys, key));
    }
    const msgpack_object *source = relais_msg_get (body, "source");
    CHECK (source && source->type == MSGPACK_OBJECT_MAP && source->via.map.size == 2);
    CHECK (relais_msg_get (source, "kind") && relais_msg_get (source, "name"));
    const msgpack_object *place = relais_msg_get (body, "place");
    CHECK (place && place->type == MSGPACK_OBJECT_MAP);
    static const char *const place_keys [] = { "arrondissement", "kind", "cell", NULL };
    for (uint32_t i = 0; i < place->via.map.size; i++)
        CHECK (s_in (place_keys, &place->via.map.ptr [i].key));
    s_check_no_personal (body);
}

static void
test_pack_public (void)
{
    relais_signal_t sig;
    relais_error_t err;
    CHECK_OK (s_parse_json (S_FULL, "signal", &sig, &err));
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    relais_signal_pack_public (&pk, &sig, 2);
    relais_pack_kv_uint (&pk, "level", 2);
    relais_pack_kv_uint (&pk, "received_at", 5);

    //  Not a byte of the personal text is in the frame
    const char *secrets [] = { "+33 1 00", "Villette", "ligne 1", "Personne", "SIAO-1",
                               "sans solution", "(0)6" };
    for (size_t i = 0; i < sizeof secrets / sizeof secrets [0]; i++)
        CHECK (!memmem (sbuf.data, sbuf.size, secrets [i], strlen (secrets [i])));

    relais_msg_t msg;
    CHECK_OK (relais_msg_decode (&msg, sbuf.data, sbuf.size, NULL, &err));
    const msgpack_object *root = &msg.root;
    CHECK (root->type == MSGPACK_OBJECT_MAP && root->via.map.size == 14);
    for (int i = 0; s_public_keys [i]; i++)
        CHECK (relais_msg_get (root, s_public_keys [i]));
    s_check_public_body (root);
    const msgpack_object *place = relais_msg_get (root, "place");
    CHECK (place->via.map.size == 3);
    CHECK (relais_msg_str_eq (relais_msg_get (place, "cell"), "C43-48"));
    uint64_t v;
    CHECK (relais_msg_uint (relais_msg_get (place, "arrondissement"), &v) && v == 19);
    CHECK (relais_msg_str_eq (relais_msg_get (place, "kind"), "talus"));
    CHECK (relais_msg_str_eq (relais_msg_get (relais_msg_get (root, "source"), "kind"), "maraude"));
    CHECK (relais_msg_str_eq (relais_msg_get (relais_msg_get (root, "source"), "name"), "Maraude Nord"));
    CHECK (relais_msg_uint (relais_msg_get (root, "observed_at"), &v) && v == 1736935200000000ULL);
    CHECK (relais_msg_uint (relais_msg_get (root, "persons"), &v) && v == 3);
    CHECK (relais_msg_uint (relais_msg_get (root, "minors"), &v) && v == 1);
    CHECK (relais_msg_uint (relais_msg_get (root, "pregnant"), &v) && v == 1);
    CHECK (relais_msg_uint (relais_msg_get (root, "tents"), &v) && v == 2);
    CHECK (relais_msg_uint (relais_msg_get (root, "level"), &v) && v == 2);
    const msgpack_object *publics = relais_msg_get (root, "publics");
    CHECK (publics->type == MSGPACK_OBJECT_ARRAY && publics->via.array.size == 3);
    CHECK (relais_msg_str_eq (&publics->via.array.ptr [0], "couple"));      //  table order
    CHECK (relais_msg_str_eq (relais_msg_get (root, "urgency"), "immediate"));
    const msgpack_object *sensitive = relais_msg_get (root, "sensitive");
    CHECK (sensitive->type == MSGPACK_OBJECT_BOOLEAN && sensitive->via.boolean);
    relais_msg_release (&msg);
    msgpack_sbuffer_clear (&sbuf);

    //  Without a position: no cell; with extra_pairs 0 the map is closed
    sig.has_geo = false;
    relais_signal_pack_public (&pk, &sig, 0);
    CHECK_OK (relais_msg_decode (&msg, sbuf.data, sbuf.size, NULL, &err));
    CHECK (msg.root.via.map.size == 12);
    CHECK (relais_msg_get (&msg.root, "place")->via.map.size == 2);
    relais_msg_release (&msg);
    msgpack_sbuffer_destroy (&sbuf);
}

static void
test_apply_changes (void)
{
    relais_signal_t sig, before;
    relais_error_t err;
    CHECK_OK (s_parse_json (S_FULL, "signal", &sig, &err));
    uint64_t now = s_now ();

    //  Success: place replaced as a whole, people replaced, scalars set
    s_doc_t doc;
    s_doc_json (&doc, "{\"persons\": 5, \"tents\": 6, \"urgency\": \"semaine\","
                      " \"place\": {\"arrondissement\": 10, \"kind\": \"gare\"},"
                      " \"people\": [{\"name\": \"Personne C\"}], \"unknown\": 1}");
    CHECK_OK (relais_signal_apply_changes (&sig, &doc.msg.root, "changes", now, &err));
    CHECK (sig.persons == 5 && sig.tents == 6 && sig.urgency == RELAIS_URGENCY_SEMAINE);
    CHECK (sig.arrondissement == 10 && sig.place_kind == RELAIS_PLACE_GARE);
    CHECK (!sig.has_geo && sig.lat == 0 && sig.address [0] == 0);
    CHECK (sig.people_count == 1);
    CHECK_STR (sig.people [0].name, "Personne C");
    CHECK (sig.people [1].name [0] == 0);
    CHECK_STR (sig.source_name, "Maraude Nord");            //  untouched
    CHECK (sig.minors == 1 && sig.needs != 0);
    s_doc_free (&doc);
    //  The result is what a fresh parse of the same content gives
    s_round_trip (&sig);

    //  Failures change nothing, whatever was valid before the bad field
    struct { const char *json; const char *code; const char *field; } bad [] = {
        { "{}", "invalid", "changes" },
        { "{\"colour\": \"blue\"}", "invalid", "changes" },
        { "{\"source\": {\"kind\": \"115\", \"name\": \"x\"}}", "invalid", "changes.source" },
        { "{\"persons\": 2, \"tents\": 99999}", "invalid", "changes.tents" },
        { "{\"persons\": 0}", "invalid", "changes.persons" },
        { "{\"persons\": 2, \"minors\": 3}", "invalid", "changes.minors" },
        { "{\"persons\": 1, \"minors\": 1, \"pregnant\": 0, \"place\": {\"arrondissement\": 21, \"kind\": \"gare\"}}",
          "invalid", "changes.place.arrondissement" },
        { "{\"place\": {\"arrondissement\": 3}}", "invalid", "changes.place.kind" },
        { "{\"people\": [{\"name\": \"A\"}, {\"phone\": \"1\"}]}", "invalid", "changes.people[1].name" },
        { "{\"summary\": 5}", "invalid", "changes.summary" },
        { "{\"escalate\": true, \"escalate_reason\": \"\"}", "invalid", "changes.escalate_reason" },
        { "{\"publics\": []}", "invalid", "changes.publics" },
        { "{\"observed_at\": 1}", "invalid", "changes.observed_at" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        memcpy (&before, &sig, sizeof before);
        s_doc_json (&doc, bad [i].json);
        relais_error_clear (&err);
        int rc = relais_signal_apply_changes (&sig, &doc.msg.root, "changes", now, &err);
        if (rc == 0 || strcmp (err.field, bad [i].field) != 0)
            fprintf (stderr, "case %zu: rc %d field %s\n", i, rc, err.field);
        CHECK (rc != 0);
        CHECK_STR (err.code, bad [i].code);
        CHECK_STR (err.field, bad [i].field);
        CHECK (memcmp (&before, &sig, sizeof sig) == 0);
        s_doc_free (&doc);
    }
    //  Lowering persons under the stored minors names persons
    s_doc_json (&doc, "{\"minors\": 4}");
    CHECK_OK (relais_signal_apply_changes (&sig, &doc.msg.root, "changes", now, &err));
    s_doc_free (&doc);
    s_doc_json (&doc, "{\"persons\": 3}");
    CHECK (relais_signal_apply_changes (&sig, &doc.msg.root, "changes", now, &err) != 0);
    CHECK_STR (err.field, "changes.persons");
    s_doc_free (&doc);
    //  escalate on, with its reason kept from the submit
    s_doc_json (&doc, "{\"escalate\": false}");
    CHECK_OK (relais_signal_apply_changes (&sig, &doc.msg.root, "", now, &err));
    CHECK (!sig.escalate);
    s_doc_free (&doc);
    s_doc_json (&doc, "{\"escalate\": true}");
    CHECK_OK (relais_signal_apply_changes (&sig, &doc.msg.root, "", now, &err));
    CHECK (sig.escalate);
    s_doc_free (&doc);
    //  Not a map, and no prefix
    s_doc_json (&doc, "[1]");
    CHECK (relais_signal_apply_changes (&sig, &doc.msg.root, "changes", now, &err) != 0);
    CHECK_STR (err.field, "changes");
    s_doc_free (&doc);
    s_doc_json (&doc, "{\"tents\": -1}");
    CHECK (relais_signal_apply_changes (&sig, &doc.msg.root, "", now, &err) != 0);
    CHECK_STR (err.field, "tents");
    s_doc_free (&doc);
}

static void
test_cell (void)
{
    relais_signal_t sig;
    memset (&sig, 0, sizeof sig);
    char cell [RELAIS_SIG_CELL_MAX];
    strcpy (cell, "junk");
    relais_signal_cell (&sig, cell, sizeof cell);
    CHECK_STR (cell, "");
    sig.has_geo = true;
    struct { double lat, lon; const char *cell; } cases [] = {
        { 48.80, 2.22, "C0-0" },
        { 48.8566, 2.3522, "C25-38" },          //  Hôtel de Ville
        { 48.8989, 2.3856, "C43-48" },
        { 48.80224, 2.22339, "C0-0" },          //  just under one step
        { 48.80226, 2.22341, "C1-1" },          //  just over
        { 48.91, 2.48, "C48-76" },              //  north-east corner
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        sig.lat = cases [i].lat;
        sig.lon = cases [i].lon;
        relais_signal_cell (&sig, cell, sizeof cell);
        CHECK_STR (cell, cases [i].cell);
    }
    //  Small buffer: truncated, still terminated
    sig.lat = 48.8566;
    sig.lon = 2.3522;
    char small [4];
    relais_signal_cell (&sig, small, sizeof small);
    CHECK_STR (small, "C25");
    //  Garbage in a hand-filled struct gives no cell rather than a crash
    sig.lat = 1e300;
    relais_signal_cell (&sig, cell, sizeof cell);
    CHECK_STR (cell, "");
    sig.lat = nan ("");
    relais_signal_cell (&sig, cell, sizeof cell);
    CHECK_STR (cell, "");
}

//  ---------------------------------------------------------------------------
//  Vectors

static const char *const s_close_reasons [] = {
    "pris_en_charge", "resolu", "doublon", "erreur", "sans_suite", "autre", NULL
};

//  The op-level rules of PROTOCOL §2-4 (what intake and every fetch
//  endpoint check before the schema), then the schema itself.
static void
s_request_verdict (const msgpack_object *root, uint64_t now, relais_error_t *err)
{
    if (root->type != MSGPACK_OBJECT_MAP) {
        relais_error_set (err, RELAIS_CODE_INVALID, "", "request must be a map");
        return;
    }
    const msgpack_object *op = relais_msg_get (root, "op");
    if (!op || op->type != MSGPACK_OBJECT_STR) {
        relais_error_set (err, RELAIS_CODE_INVALID, "op", "required, a string");
        return;
    }
    bool submit = relais_msg_str_eq (op, "submit");
    bool update = relais_msg_str_eq (op, "update");
    bool is_close = relais_msg_str_eq (op, "close");
    if (relais_msg_str_eq (op, "fetch")) {
        uint64_t v;
        if (!relais_msg_uint (relais_msg_get (root, "from"), &v) || v == 0)
            relais_error_set (err, RELAIS_CODE_INVALID, "from", "required, an integer >= 1");
        else
        if (relais_msg_get (root, "max")
        && (!relais_msg_uint (relais_msg_get (root, "max"), &v) || v == 0))
            relais_error_set (err, RELAIS_CODE_INVALID, "max", "an integer >= 1");
        return;
    }
    if (!submit && !update && !is_close) {
        relais_error_set (err, RELAIS_CODE_UNKNOWN_OP, "op", "unknown op");
        return;
    }
    const msgpack_object *idem = relais_msg_get (root, "idem");
    if (!idem || idem->type != MSGPACK_OBJECT_STR || idem->via.str.size == 0) {
        relais_error_set (err, RELAIS_CODE_INVALID, "idem", "required");
        return;
    }
    if (idem->via.str.size > 128) {
        relais_error_set (err, RELAIS_CODE_TOO_LARGE, "idem", "at most 128 bytes");
        return;
    }
    if (!relais_utf8_clean (idem->via.str.ptr, idem->via.str.size, false)) {
        relais_error_set (err, RELAIS_CODE_INVALID, "idem", "one line");
        return;
    }
    relais_signal_t sig;
    if (submit) {
        const msgpack_object *signal = relais_msg_get (root, "signal");
        if (!signal || signal->type != MSGPACK_OBJECT_MAP)
            relais_error_set (err, RELAIS_CODE_INVALID, "signal", "required, a map");
        else
            relais_signal_parse (signal, "signal", now, &sig, err);
        return;
    }
    const msgpack_object *id = relais_msg_get (root, "id");
    if (!id || id->type != MSGPACK_OBJECT_STR || id->via.str.size == 0) {
        relais_error_set (err, RELAIS_CODE_INVALID, "id", "required");
        return;
    }
    if (update) {
        const msgpack_object *changes = relais_msg_get (root, "changes");
        if (!changes || changes->type != MSGPACK_OBJECT_MAP) {
            relais_error_set (err, RELAIS_CODE_INVALID, "changes", "required, a map");
            return;
        }
        relais_error_t base_err;
        CHECK_OK (s_parse_json (S_MINIMAL "}", "signal", &sig, &base_err));
        relais_signal_apply_changes (&sig, changes, "changes", now, err);
        return;
    }
    const msgpack_object *reason = relais_msg_get (root, "reason");
    if (!reason || !s_in (s_close_reasons, reason))
        relais_error_set (err, RELAIS_CODE_INVALID, "reason", "a closure code");
}

static void
s_hex (const uint8_t *data, size_t size, char *out)
{
    for (size_t i = 0; i < size; i++)
        sprintf (out + 2 * i, "%02x", data [i]);
    out [2 * size] = 0;
}

static bool
s_check_vector (const char *dir, const char *stem, uint64_t now)
{
    char path [1200];
    snprintf (path, sizeof path, "%s/%s.msgpack", dir, stem);
    FILE *file = fopen (path, "rb");
    CHECK (file);
    static uint8_t data [200000];
    size_t size = fread (data, 1, sizeof data, file);
    CHECK (feof (file));
    fclose (file);

    snprintf (path, sizeof path, "%s/%s.json", dir, stem);
    json_error_t jerr;
    json_t *twin = json_load_file (path, 0, &jerr);
    if (!twin)
        fprintf (stderr, "%s: %s\n", path, jerr.text);
    CHECK (twin);
    const char *kind = json_string_value (json_object_get (twin, "kind"));
    CHECK (kind);
    CHECK (json_is_string (json_object_get (twin, "description")));
    json_t *expect = json_object_get (twin, "expect");
    const char *want_code = NULL, *want_field = "";
    if (json_is_string (expect))
        CHECK_STR (json_string_value (expect), "ok");
    else {
        CHECK (json_is_object (expect));
        want_code = json_string_value (json_object_get (expect, "code"));
        want_field = json_string_value (json_object_get (expect, "field"));
        CHECK (want_code && want_field);
    }
    //  The twin holds the bytes themselves when JSON cannot render them
    json_t *hex = json_object_get (twin, "hex");
    if (hex) {
        char *text = (char *) malloc (2 * size + 1);
        CHECK (text);
        s_hex (data, size, text);
        CHECK_STR (json_string_value (hex), text);
        free (text);
    }
    else
        CHECK (json_object_get (twin, "value"));

    relais_error_t err;
    relais_error_clear (&err);
    relais_msg_t msg;
    if (relais_msg_decode (&msg, data, size, NULL, &err) == 0) {
        if (strcmp (kind, "envelope") == 0 || strcmp (kind, "heartbeat") == 0) {
            relais_envelope_t env;
            bool heartbeat = strcmp (kind, "heartbeat") == 0;
            if (relais_envelope_decode (&msg.root, heartbeat, &env, &err) == 0 && !heartbeat) {
                const char *topic = json_string_value (json_object_get (twin, "topic"));
                CHECK (topic);
                CHECK_STR (env.type, topic);
                if (strcmp (env.type, "signal.created") == 0)
                    s_check_public_body (env.body);
            }
        }
        else {
            CHECK_STR (kind, "request");
            s_request_verdict (&msg.root, now, &err);
        }
        relais_msg_release (&msg);
    }
    bool pass = want_code
              ? (err.code && strcmp (err.code, want_code) == 0 && strcmp (err.field, want_field) == 0)
              : err.code == NULL;
    if (!pass)
        fprintf (stderr, "vector %s: expected %s/%s, got %s/%s (%s)\n", stem,
                 want_code? want_code: "ok", want_field, err.code? err.code: "ok",
                 err.field, err.message);
    json_decref (twin);
    return pass;
}

static void
test_vectors (void)
{
    const char *source = getenv ("RELAIS_SOURCE_DIR");
    char dir [768];
    snprintf (dir, sizeof dir, "%s/proto/vectors", source? source: ".");
    DIR *handle = opendir (dir);
    if (!handle)
        fprintf (stderr, "cannot open %s (set RELAIS_SOURCE_DIR)\n", dir);
    CHECK (handle);
    uint64_t now = s_now ();
    int count = 0, failed = 0, twins = 0;
    struct dirent *entry;
    while ((entry = readdir (handle))) {
        size_t len = strlen (entry->d_name);
        if (len > 5 && strcmp (entry->d_name + len - 5, ".json") == 0)
            twins++;
        if (len <= 8 || len > 200 || strcmp (entry->d_name + len - 8, ".msgpack") != 0)
            continue;
        char stem [256];
        memcpy (stem, entry->d_name, len - 8);
        stem [len - 8] = 0;
        count++;
        if (!s_check_vector (dir, stem, now))
            failed++;
    }
    closedir (handle);
    fprintf (stderr, "    %d vectors checked, %d failed\n", count, failed);
    CHECK (failed == 0);
    CHECK (twins == count);
    CHECK (count >= 30);
}

static const char *const intake_like_names [32] = {
    "n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8", "n9", "n10", "n11", "n12", "n13", "n14", "n15", "n16", "n17", "n18", "n19", "n20", "n21", "n22", "n23", "n24", "n25", "n26", "n27", "n28", "n29", "n30", "n31"
};

//  relais_sbuffer_write writes what msgpack_sbuffer_write writes, for every
//  piece size around its fixed-size moves, from an empty buffer (growth)
//  and into a buffer with room; and a packer over it packs the same bytes
static void
test_sbuffer_write (void)
{
    char text [64];
    for (size_t i = 0; i < sizeof text; i++)
        text [i] = (char) ('A' + i % 26);
    msgpack_sbuffer ours, theirs;
    msgpack_sbuffer_init (&ours);
    msgpack_sbuffer_init (&theirs);
    CHECK_OK (relais_sbuffer_write (&ours, text, 0));     //  empty buffer, nothing
    CHECK (ours.size == 0);
    CHECK_OK (relais_sbuffer_write (&ours, text, 1));     //  first growth
    CHECK_OK (msgpack_sbuffer_write (&theirs, text, 1));
    for (int round = 0; round < 2; round++)
        for (size_t len = 0; len <= 40; len++)
            for (size_t off = 0; off + len <= sizeof text; off += 7) {
                CHECK_OK (relais_sbuffer_write (&ours, text + off, len));
                CHECK_OK (msgpack_sbuffer_write (&theirs, text + off, len));
            }
    CHECK (ours.size == theirs.size && memcmp (ours.data, theirs.data, ours.size) == 0);
    CHECK_OK (relais_sbuffer_write (&ours, NULL, 0));
    CHECK (ours.size == theirs.size);
    msgpack_sbuffer_clear (&ours);
    msgpack_sbuffer_clear (&theirs);
    msgpack_packer a, b;
    msgpack_packer_init (&a, &ours, relais_sbuffer_write);
    msgpack_packer_init (&b, &theirs, msgpack_sbuffer_write);
    msgpack_packer *both [2] = { &a, &b };
    for (int i = 0; i < 2; i++) {
        msgpack_pack_map (both [i], 4);
        relais_pack_kv_str (both [i], "k", "a value of some length, over 16 bytes");
        relais_pack_kv_uint (both [i], "seq", 1234567890123ULL);
        relais_pack_kv_bool (both [i], "ok", true);
        relais_pack_str (both [i], "reasons");
        relais_pack_mask (both [i], 0x80000005u, intake_like_names, 32);
    }
    CHECK (ours.size == theirs.size && memcmp (ours.data, theirs.data, ours.size) == 0);
    relais_msg_t msg;
    relais_error_t err;
    CHECK_OK (relais_msg_decode (&msg, ours.data, ours.size, NULL, &err));
    const msgpack_object *reasons = relais_msg_get (&msg.root, "reasons");
    CHECK (reasons && reasons->type == MSGPACK_OBJECT_ARRAY && reasons->via.array.size == 3);
    CHECK (relais_msg_str_eq (&reasons->via.array.ptr [0], "n0"));
    CHECK (relais_msg_str_eq (&reasons->via.array.ptr [1], "n2"));
    CHECK (relais_msg_str_eq (&reasons->via.array.ptr [2], "n31"));
    relais_msg_release (&msg);
    msgpack_sbuffer_destroy (&ours);
    msgpack_sbuffer_destroy (&theirs);
}

//  A msg reused from message to message keeps its zone: same results as
//  relais_msg_decode, the same refusals, no leak (ASan) after a refusal
static void
test_redecode (void)
{
    relais_msg_t msg;
    memset (&msg, 0, sizeof msg);
    relais_error_t err;
    for (uint64_t i = 0; i < 50; i++) {
        msgpack_sbuffer sbuf;
        msgpack_sbuffer_init (&sbuf);
        msgpack_packer pk;
        msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
        msgpack_pack_map (&pk, 2);
        relais_pack_kv_uint (&pk, "seq", i);
        relais_pack_kv_str (&pk, "text", i % 2? "odd": "even");
        CHECK_OK (relais_msg_redecode (&msg, sbuf.data, sbuf.size, NULL, &err));
        uint64_t seq = 0;
        CHECK (relais_msg_uint (relais_msg_get (&msg.root, "seq"), &seq) && seq == i);
        CHECK (relais_msg_str_eq (relais_msg_get (&msg.root, "text"), i % 2? "odd": "even"));
        relais_msg_clear (&msg);
        CHECK (msg.root.type == MSGPACK_OBJECT_NIL);
        //  refused input, then a good one again, into the same msg
        CHECK (relais_msg_redecode (&msg, "\xc1", 1, NULL, &err) == RELAIS_EMALFORMED);
        CHECK (relais_msg_redecode (&msg, "\x91\x91\x91\x91\x91\x91\x91\x91\x91\x01", 10,
                                    NULL, &err) == RELAIS_ETOOLARGE);
        CHECK_OK (relais_msg_redecode (&msg, sbuf.data, sbuf.size, NULL, &err));
        CHECK (relais_msg_uint (relais_msg_get (&msg.root, "seq"), &seq) && seq == i);
        relais_msg_clear (&msg);
        msgpack_sbuffer_destroy (&sbuf);
    }
    relais_msg_release (&msg);
    relais_msg_release (&msg);          //  twice: safe
}

int
main (void)
{
    RUN (test_decode_limits);
    RUN (test_utf8);
    RUN (test_msg_helpers);
    RUN (test_envelope);
    RUN (test_enums);
    RUN (test_signal_parse_good);
    RUN (test_signal_parse_bad);
    RUN (test_pack_full_round_trip);
    RUN (test_pack_public);
    RUN (test_apply_changes);
    RUN (test_cell);
    RUN (test_vectors);
    RUN (test_sbuffer_write);
    RUN (test_redecode);
    printf ("test_proto: OK\n");
    return 0;
}
