/*  =========================================================================
    cli_json - JSON text <-> MessagePack for the `relais` command

    @header
    People and scripts write reports as JSON; the bus speaks MessagePack.
    This class turns parsed JSON (jansson) into msgpack (objects -> maps with
    str keys, arrays, strings -> str, integers >= 0 -> uint, < 0 -> int,
    reals -> float64, true/false/null), and any msgpack object back into
    one line of JSON text for printing (bin -> base64 string, ext -> null,
    non-str keys -> their JSON text as a string, NaN/inf -> null).
    @discuss
    Both directions stop at CLI_JSON_MAX_DEPTH nested containers. Parse
    errors name the line and column in the whole input, so an NDJSON file
    with a bad line 4 says "line 4". The JSON text we print escapes every
    control character (C0, DEL, C1, U+2028/9) and replaces invalid UTF-8
    with U+FFFD: what we print cannot drive a terminal.
    =========================================================================
*/
#ifndef CLI_JSON_H_INCLUDED
#define CLI_JSON_H_INCLUDED

#include <jansson.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>

#define CLI_JSON_MAX_DEPTH  32      //  containers inside containers, both ways

//  A reader over a buffer holding zero or more JSON values (one object, a
//  pretty-printed object, NDJSON, or values back to back).
typedef struct {
    const char *data;
    size_t size;
    size_t offset;                  //  next byte to read
    int line;                       //  1-based line of data [offset]
    int column;                     //  1-based column (bytes) of data [offset]
} cli_json_reader_t;

//  Start reading data (size bytes; need not be NUL-terminated).
void
    cli_json_reader_init (cli_json_reader_t *self, const char *data, size_t size);

//  Parse the next value. Returns 1 and a new reference in *value (and the
//  line it starts on in *line), 0 at the end of input (only whitespace
//  left), or -1 with why = "line L, column C: <what is wrong>"; after an
//  error the reader cannot go on. Duplicate keys are an error.
int
    cli_json_reader_next (cli_json_reader_t *self, json_t **value, int *line,
                          char *why, size_t size);

//  Pack a JSON value as one msgpack object. Returns 0, or -1 with why
//  (nesting deeper than CLI_JSON_MAX_DEPTH); on error pk has partial output.
int
    cli_json_pack (msgpack_packer *pk, const json_t *value, char *why, size_t size);

//  Options of cli_json_write.
typedef struct {
    const char *first_key;          //  root map: write "first_key":first_value first
    const char *first_value;        //  (a string), when both are set
    const char *skip_key;           //  root map: leave pairs with this str key out
} cli_json_opts_t;

//  Append o as one line of compact JSON (no newline) to out. opts may be
//  NULL. Returns 0, or -1 when o nests deeper than CLI_JSON_MAX_DEPTH (out
//  then holds partial text: discard it).
int
    cli_json_write (msgpack_sbuffer *out, const msgpack_object *o,
                    const cli_json_opts_t *opts);

//  o as a fresh NUL-terminated JSON string the caller frees; NULL when too
//  deep or out of memory.
char *
    cli_json_dumps (const msgpack_object *o, const cli_json_opts_t *opts);

//  Write text (size bytes) as a JSON string literal, quotes included.
void
    cli_json_write_str (msgpack_sbuffer *out, const char *text, size_t size);

#endif
