/*  =========================================================================
    cli_json - JSON text <-> MessagePack for the `relais` command
    (see cli_json.h)
    =========================================================================
*/
#include "cli_json.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  ---------------------------------------------------------------------------
//  Reading JSON

void
cli_json_reader_init (cli_json_reader_t *self, const char *data, size_t size)
{
    self->data = data;
    self->size = size;
    self->offset = 0;
    self->line = 1;
    self->column = 1;
    //  Editors on some desktops still write a BOM; it is not JSON
    if (size >= 3 && memcmp (data, "\xEF\xBB\xBF", 3) == 0)
        self->offset = 3;
}

static void
s_advance (cli_json_reader_t *self, size_t count)
{
    const char *end = self->data + self->offset + count;
    for (const char *p = self->data + self->offset; p < end; p++) {
        if (*p == '\n') {
            self->line++;
            self->column = 1;
        }
        else
        if (((unsigned char) *p & 0xC0) != 0x80)
            self->column++;         //  count characters, as jansson does
    }
    self->offset += count;
}

int
cli_json_reader_next (cli_json_reader_t *self, json_t **value, int *line,
                      char *why, size_t size)
{
    *value = NULL;
    size_t blank = 0;
    while (self->offset + blank < self->size) {
        char c = self->data [self->offset + blank];
        if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
            break;
        blank++;
    }
    s_advance (self, blank);
    if (self->offset >= self->size)
        return 0;

    json_error_t err;
    //  DISABLE_EOF_CHECK: stop after one value and tell how much it took,
    //  so one loop reads a single object, pretty-printed JSON and NDJSON.
    json_t *v = json_loadb (self->data + self->offset, self->size - self->offset,
                            JSON_DISABLE_EOF_CHECK | JSON_DECODE_ANY
                            | JSON_REJECT_DUPLICATES, &err);
    if (!v) {
        int at_line = self->line, at_column = self->column;
        if (err.line > 1) {
            at_line = self->line + err.line - 1;
            at_column = err.column;
        }
        else
        if (err.line == 1 && err.column > 0)
            at_column = self->column + err.column - 1;
        //  In NDJSON a broken line is often noticed lines later (an open
        //  brace swallows the next object): name where the object began too
        if (at_line != self->line)
            snprintf (why, size, "line %d, column %d: %s (in the object that starts at line %d)",
                      at_line, at_column, err.text, self->line);
        else
            snprintf (why, size, "line %d, column %d: %s", at_line, at_column, err.text);
        self->offset = self->size;  //  the rest cannot be trusted
        return -1;
    }
    *line = self->line;
    size_t used = err.position > 0? (size_t) err.position: 0;
    if (used > self->size - self->offset)
        used = self->size - self->offset;
    s_advance (self, used);
    //  A scalar must end where a delimiter starts ("1 2" is two values,
    //  "truex" is garbage): jansson stops after the token, so check here.
    if (self->offset < self->size && !json_is_object (v) && !json_is_array (v)
    &&  !json_is_string (v)) {
        char c = self->data [self->offset];
        if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
            snprintf (why, size, "line %d, column %d: unexpected text after a value",
                      self->line, self->column);
            json_decref (v);
            self->offset = self->size;
            return -1;
        }
    }
    *value = v;
    return 1;
}

//  ---------------------------------------------------------------------------
//  JSON -> msgpack

static int
s_pack (msgpack_packer *pk, const json_t *v, int depth, char *why, size_t size)
{
    switch (json_typeof (v)) {
        case JSON_OBJECT: {
            if (depth >= CLI_JSON_MAX_DEPTH) {
                snprintf (why, size, "nested deeper than %d levels", CLI_JSON_MAX_DEPTH);
                return -1;
            }
            msgpack_pack_map (pk, json_object_size (v));
            const char *key;
            json_t *item;
            //  jansson >= 2.8 iterates in insertion order: key order survives
            json_object_foreach ((json_t *) v, key, item) {
                size_t len = strlen (key);
                msgpack_pack_str (pk, len);
                msgpack_pack_str_body (pk, key, len);
                if (s_pack (pk, item, depth + 1, why, size))
                    return -1;
            }
            return 0;
        }
        case JSON_ARRAY: {
            if (depth >= CLI_JSON_MAX_DEPTH) {
                snprintf (why, size, "nested deeper than %d levels", CLI_JSON_MAX_DEPTH);
                return -1;
            }
            size_t count = json_array_size (v);
            msgpack_pack_array (pk, count);
            for (size_t i = 0; i < count; i++)
                if (s_pack (pk, json_array_get (v, i), depth + 1, why, size))
                    return -1;
            return 0;
        }
        case JSON_STRING: {
            size_t len = json_string_length (v);
            msgpack_pack_str (pk, len);
            msgpack_pack_str_body (pk, json_string_value (v), len);
            return 0;
        }
        case JSON_INTEGER: {
            json_int_t n = json_integer_value (v);
            if (n >= 0)
                msgpack_pack_uint64 (pk, (uint64_t) n);
            else
                msgpack_pack_int64 (pk, (int64_t) n);
            return 0;
        }
        case JSON_REAL:
            msgpack_pack_double (pk, json_real_value (v));
            return 0;
        case JSON_TRUE:
            msgpack_pack_true (pk);
            return 0;
        case JSON_FALSE:
            msgpack_pack_false (pk);
            return 0;
        case JSON_NULL:
        default:
            msgpack_pack_nil (pk);
            return 0;
    }
}

int
cli_json_pack (msgpack_packer *pk, const json_t *value, char *why, size_t size)
{
    if (!value) {
        snprintf (why, size, "no value");
        return -1;
    }
    return s_pack (pk, value, 0, why, size);
}

//  ---------------------------------------------------------------------------
//  msgpack -> JSON text

static void
s_put (msgpack_sbuffer *out, const char *text, size_t size)
{
    msgpack_sbuffer_write (out, text, size);
}

static void
s_puts (msgpack_sbuffer *out, const char *text)
{
    msgpack_sbuffer_write (out, text, strlen (text));
}

static void
s_put_escape (msgpack_sbuffer *out, uint32_t cp)
{
    char buf [8];
    snprintf (buf, sizeof buf, "\\u%04x", (unsigned) cp);
    s_put (out, buf, 6);
}

//  Decode one UTF-8 sequence at p (at most left bytes). Returns its length
//  and the code point, or 0 when the bytes are not valid UTF-8.
static size_t
s_utf8_decode (const unsigned char *p, size_t left, uint32_t *cp)
{
    unsigned char c = p [0];
    size_t n;
    uint32_t value, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if ((c & 0xE0) == 0xC0)      { n = 2; value = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { n = 3; value = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { n = 4; value = c & 0x07; min = 0x10000; }
    else
        return 0;
    if (left < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p [i] & 0xC0) != 0x80)
            return 0;
        value = (value << 6) | (p [i] & 0x3F);
    }
    if (value < min || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF))
        return 0;
    *cp = value;
    return n;
}

void
cli_json_write_str (msgpack_sbuffer *out, const char *text, size_t size)
{
    if (size == 0) {
        //  msgpack-c hands out NULL for an empty str: no pointer arithmetic
        s_put (out, "\"\"", 2);
        return;
    }
    const unsigned char *p = (const unsigned char *) text;
    const unsigned char *end = p + size;
    s_put (out, "\"", 1);
    while (p < end) {
        //  Copy the longest run of plain printable ASCII in one go
        const unsigned char *run = p;
        while (p < end && *p >= 0x20 && *p < 0x7F && *p != '"' && *p != '\\')
            p++;
        if (p > run)
            s_put (out, (const char *) run, (size_t) (p - run));
        if (p >= end)
            break;
        unsigned char c = *p;
        if (c == '"')       { s_put (out, "\\\"", 2); p++; continue; }
        if (c == '\\')      { s_put (out, "\\\\", 2); p++; continue; }
        if (c == '\n')      { s_put (out, "\\n", 2); p++; continue; }
        if (c == '\r')      { s_put (out, "\\r", 2); p++; continue; }
        if (c == '\t')      { s_put (out, "\\t", 2); p++; continue; }
        if (c < 0x20 || c == 0x7F) {
            s_put_escape (out, c);
            p++;
            continue;
        }
        uint32_t cp;
        size_t n = s_utf8_decode (p, (size_t) (end - p), &cp);
        if (n == 0) {
            //  Not UTF-8: say so visibly rather than pass raw bytes on
            s_put_escape (out, 0xFFFD);
            p++;
            continue;
        }
        //  C1 controls and the JavaScript line separators stay escaped
        if ((cp >= 0x80 && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029)
            s_put_escape (out, cp);
        else
            s_put (out, (const char *) p, n);
        p += n;
    }
    s_put (out, "\"", 1);
}

static void
s_write_base64 (msgpack_sbuffer *out, const unsigned char *data, size_t size)
{
    static const char table [] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    s_put (out, "\"", 1);
    size_t i = 0;
    for (; i + 3 <= size; i += 3) {
        uint32_t v = (uint32_t) data [i] << 16 | (uint32_t) data [i + 1] << 8 | data [i + 2];
        char quad [4] = { table [v >> 18], table [(v >> 12) & 63], table [(v >> 6) & 63],
                          table [v & 63] };
        s_put (out, quad, 4);
    }
    if (size - i == 1) {
        uint32_t v = (uint32_t) data [i] << 16;
        char quad [4] = { table [v >> 18], table [(v >> 12) & 63], '=', '=' };
        s_put (out, quad, 4);
    }
    else
    if (size - i == 2) {
        uint32_t v = (uint32_t) data [i] << 16 | (uint32_t) data [i + 1] << 8;
        char quad [4] = { table [v >> 18], table [(v >> 12) & 63], table [(v >> 6) & 63], '=' };
        s_put (out, quad, 4);
    }
    s_put (out, "\"", 1);
}

//  Shortest text that reads back as the same number, always with a '.'
//  or an exponent so that it reads back as a real.
static void
s_write_double (msgpack_sbuffer *out, double d, bool single)
{
    if (!isfinite (d)) {
        s_puts (out, "null");           //  JSON has no NaN or infinity
        return;
    }
    char buf [48];
    for (int precision = single? 6: 15; precision <= 17; precision++) {
        snprintf (buf, sizeof buf, "%.*g", precision, d);
        double back = strtod (buf, NULL);
        if (single? (float) back == (float) d: back == d)
            break;
    }
    if (!strpbrk (buf, ".eE"))
        strcat (buf, ".0");
    s_puts (out, buf);
}

static int s_write (msgpack_sbuffer *out, const msgpack_object *o, int depth,
                    const cli_json_opts_t *opts);

static int
s_write_key (msgpack_sbuffer *out, const msgpack_object *key, int depth)
{
    if (key->type == MSGPACK_OBJECT_STR) {
        cli_json_write_str (out, key->via.str.ptr, key->via.str.size);
        return 0;
    }
    //  JSON keys are strings: use the key's own JSON text ("1", "true")
    msgpack_sbuffer text;
    msgpack_sbuffer_init (&text);
    int rc = s_write (&text, key, depth, NULL);
    if (rc == 0)
        cli_json_write_str (out, text.data? text.data: "", text.size);
    msgpack_sbuffer_destroy (&text);
    return rc;
}

static int
s_write (msgpack_sbuffer *out, const msgpack_object *o, int depth,
         const cli_json_opts_t *opts)
{
    char buf [32];
    switch (o->type) {
        case MSGPACK_OBJECT_NIL:
            s_puts (out, "null");
            return 0;
        case MSGPACK_OBJECT_BOOLEAN:
            s_puts (out, o->via.boolean? "true": "false");
            return 0;
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
            snprintf (buf, sizeof buf, "%" PRIu64, o->via.u64);
            s_puts (out, buf);
            return 0;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
            snprintf (buf, sizeof buf, "%" PRId64, o->via.i64);
            s_puts (out, buf);
            return 0;
        case MSGPACK_OBJECT_FLOAT32:
            s_write_double (out, o->via.f64, true);
            return 0;
        case MSGPACK_OBJECT_FLOAT64:
            s_write_double (out, o->via.f64, false);
            return 0;
        case MSGPACK_OBJECT_STR:
            cli_json_write_str (out, o->via.str.ptr, o->via.str.size);
            return 0;
        case MSGPACK_OBJECT_BIN:
            s_write_base64 (out, (const unsigned char *) o->via.bin.ptr, o->via.bin.size);
            return 0;
        case MSGPACK_OBJECT_ARRAY:
            if (depth >= CLI_JSON_MAX_DEPTH)
                return -1;
            s_put (out, "[", 1);
            for (uint32_t i = 0; i < o->via.array.size; i++) {
                if (i)
                    s_put (out, ",", 1);
                if (s_write (out, &o->via.array.ptr [i], depth + 1, NULL))
                    return -1;
            }
            s_put (out, "]", 1);
            return 0;
        case MSGPACK_OBJECT_MAP: {
            if (depth >= CLI_JSON_MAX_DEPTH)
                return -1;
            s_put (out, "{", 1);
            bool first = true;
            if (opts && opts->first_key && opts->first_value) {
                cli_json_write_str (out, opts->first_key, strlen (opts->first_key));
                s_put (out, ":", 1);
                cli_json_write_str (out, opts->first_value, strlen (opts->first_value));
                first = false;
            }
            for (uint32_t i = 0; i < o->via.map.size; i++) {
                const msgpack_object_kv *kv = &o->via.map.ptr [i];
                if (opts && opts->skip_key && kv->key.type == MSGPACK_OBJECT_STR
                &&  kv->key.via.str.size == strlen (opts->skip_key)
                &&  memcmp (kv->key.via.str.ptr, opts->skip_key, kv->key.via.str.size) == 0)
                    continue;
                if (!first)
                    s_put (out, ",", 1);
                first = false;
                if (s_write_key (out, &kv->key, depth + 1))
                    return -1;
                s_put (out, ":", 1);
                if (s_write (out, &kv->val, depth + 1, NULL))
                    return -1;
            }
            s_put (out, "}", 1);
            return 0;
        }
        case MSGPACK_OBJECT_EXT:
        default:
            s_puts (out, "null");       //  no JSON form; the bus never sends ext
            return 0;
    }
}

int
cli_json_write (msgpack_sbuffer *out, const msgpack_object *o, const cli_json_opts_t *opts)
{
    return s_write (out, o, 0, opts);
}

char *
cli_json_dumps (const msgpack_object *o, const cli_json_opts_t *opts)
{
    msgpack_sbuffer out;
    msgpack_sbuffer_init (&out);
    char *text = NULL;
    if (s_write (&out, o, 0, opts) == 0) {
        text = (char *) malloc (out.size + 1);
        if (text) {
            if (out.size)
                memcpy (text, out.data, out.size);
            text [out.size] = 0;
        }
    }
    msgpack_sbuffer_destroy (&out);
    return text;
}
