/*  =========================================================================
    relais_config - the deployment file, read through czmq's zconfig (ZPL)

    @header
    One file describes a whole deployment: a "relais" section (data folder,
    the list of services to start) and one section per service. Each
    program loads the file once, then declares the sections it reads with a
    key table (path relative to the section, default, check, help). A
    declared section holding a key that no table names is refused, with
    the key's path: a typo must not silently fall back to a default.
    A program may declare another service's section to learn its endpoints
    (router declares "intake" with the publisher keys).
    @discuss
    Values are strings; typed getters parse them: integers, sizes with
    K/M/G suffixes, durations with ms/s/m/h/d suffixes, booleans.
    Relative paths in the file resolve against relais/data, and that one
    against the folder of the file itself.

    Details:
    - Sizes: digits, then an optional K, M, G or T (1024-based, either
      case). Durations: digits, then ms, s, m, h or d; a bare number means
      milliseconds. No signs, spaces, fractions; overflow is malformed.
    - A node is a key when it has no children or a non-empty value; a node
      with children only is a folder ("store" in "store/map_size").
    - A path segment that is a lone '*' matches any one name (rules, then
      '*', then topic, joined by '/'), so that a table can accept child
      nodes whose names the file chooses; such keys are never required.
      An exact path wins over a pattern.
    - A key given twice in one folder, or a section given twice, is refused
      (zconfig would silently keep only the first).
    - Declaring a section again adds to its keys (the latest default wins);
      a declaration checks the file against every key declared so far for
      that section, so a partial table refuses the keys it does not name.
    - relais/data defaults to "var"; with no file it resolves against the
      current folder.
    =========================================================================
*/
#ifndef RELAIS_CONFIG_H_INCLUDED
#define RELAIS_CONFIG_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "relais_err.h"

typedef struct relais_config_t relais_config_t;

//  Check a value; return true if fine, else write why (for a person).
typedef bool (relais_config_check_fn) (const char *value, char *why, size_t size);

typedef struct {
    const char *path;               //  e.g. "pub", "store/map_size", "level2/tents_over"
    const char *fallback;           //  default value, NULL: required
    relais_config_check_fn *check;  //  NULL: any string
    const char *help;               //  one line, shown by `relais config --keys`
} relais_config_key_t;

//  Stock checks
bool relais_check_endpoint (const char *value, char *why, size_t size);   //  tcp://host:port, ipc://path, inproc://name
bool relais_check_uint (const char *value, char *why, size_t size);
bool relais_check_size (const char *value, char *why, size_t size);       //  123, 64K, 10M, 2G
bool relais_check_duration (const char *value, char *why, size_t size);   //  250ms, 3s, 10m, 2h, 7d
bool relais_check_bool (const char *value, char *why, size_t size);       //  true/false/yes/no/1/0/on/off
bool relais_check_path (const char *value, char *why, size_t size);       //  non-empty, no NUL

//  Load and parse a file. NULL file: an empty configuration (defaults only).
//  Returns NULL after logging the reason (missing file, ZPL syntax error).
relais_config_t *
    relais_config_load (const char *file);

//  Destroy. NULL-safe; nulls *self_p.
void
    relais_config_destroy (relais_config_t **self_p);

//  Declare a section with its key table (NULL-path-terminated). Checks
//  every value present and refuses unknown keys. Returns 0, or
//  RELAIS_ECONFIG after logging "<file>: <section>/<key>: <why>".
int
    relais_config_declare (relais_config_t *self, const char *section,
                           const relais_config_key_t *keys);

//  Value at "section/key": the file's value, else the declared default,
//  else NULL. The string lives as long as the configuration.
const char *
    relais_config_str (relais_config_t *self, const char *path);

//  Typed getters; on a missing or unparsable value they return fallback.
int64_t  relais_config_int (relais_config_t *self, const char *path, int64_t fallback);
uint64_t relais_config_size (relais_config_t *self, const char *path, uint64_t fallback);
uint64_t relais_config_duration_ms (relais_config_t *self, const char *path, uint64_t fallback);
bool     relais_config_bool (relais_config_t *self, const char *path, bool fallback);

//  A path resolved for the filesystem: absolute as is; relative values are
//  joined to relais/data (itself relative to the file's folder). Returns a
//  fresh string the caller frees, or NULL when the key has no value.
char *
    relais_config_path (relais_config_t *self, const char *path);

//  Parse helpers, also for CLI flags. Return false when text is malformed.
bool relais_parse_size (const char *text, uint64_t *bytes);
bool relais_parse_duration_ms (const char *text, uint64_t *ms);
bool relais_parse_bool (const char *text, bool *value);

//  Names of the sub-nodes of a section path (e.g. the list of services in
//  "relais/services" is a value; this lists child nodes such as
//  "router/rules"). Calls fn for each child name in file order.
typedef void (relais_config_child_fn) (const char *name, void *arg);
void
    relais_config_children (relais_config_t *self, const char *path,
                            relais_config_child_fn *fn, void *arg);

//  The file the configuration came from ("" for defaults only).
const char *
    relais_config_file (relais_config_t *self);

#endif
