/*  =========================================================================
    relais_config - the deployment file, read through czmq's zconfig (ZPL)

    @header
    A thin layer over a zconfig tree: key tables declared per section, the
    defaults they carry, checks of every value present, typed getters.
    @discuss
    zconfig gives every node a value ("" for a bare name or a section), so
    a node counts as a key when it has no children or a non-empty value;
    a node with children only is a folder of keys. Nothing here calls
    zsys_init: that would install czmq's signal handlers, and libuv owns
    the signals.
    =========================================================================
*/
#include "relais_config.h"
#include "relais_log.h"

#include <czmq.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_PATH_MAX      512
#define S_DATA_DEFAULT  "var"
#define S_FILE_MAX      (1 << 20)   //  a deployment file is a few KB

//  Programmer misuse: stays on under NDEBUG, never used for file contents.
#define s_require(cond, ...) do { \
    if (!(cond)) { \
        relais_error ("relais_config: " __VA_ARGS__); \
        abort (); \
    } \
} while (0)

typedef struct {
    char *section;
    char *path;                     //  relative to the section; '*' = any one name
    char *fallback;                 //  NULL: required
    relais_config_check_fn *check;
} s_decl_t;

struct relais_config_t {
    zconfig_t *root;
    char *file;                     //  "" when defaults only
    char *base;                     //  folder of the file (absolute), else cwd
    s_decl_t *decls;
    size_t ndecls;
    size_t cap;
};

//  ---------------------------------------------------------------------------
//  Parsing helpers

//  Decimal digits only (no sign, no space), with overflow detection.
//  *end points after the digits.
static bool
s_parse_digits (const char *text, uint64_t *value, const char **end)
{
    const char *p = text;
    uint64_t result = 0;
    while (*p >= '0' && *p <= '9') {
        uint64_t digit = (uint64_t) (*p - '0');
        if (result > (UINT64_MAX - digit) / 10)
            return false;
        result = result * 10 + digit;
        p++;
    }
    if (p == text)
        return false;
    *value = result;
    *end = p;
    return true;
}

static bool
s_scale (uint64_t value, uint64_t unit, uint64_t *result)
{
    if (value > UINT64_MAX / unit)
        return false;
    *result = value * unit;
    return true;
}

bool
relais_parse_size (const char *text, uint64_t *bytes)
{
    if (!text)
        return false;
    uint64_t value;
    const char *end;
    if (!s_parse_digits (text, &value, &end))
        return false;
    uint64_t unit = 1;
    if (*end) {
        switch (*end) {
            case 'k': case 'K': unit = 1ULL << 10; break;
            case 'm': case 'M': unit = 1ULL << 20; break;
            case 'g': case 'G': unit = 1ULL << 30; break;
            case 't': case 'T': unit = 1ULL << 40; break;
            default:            return false;
        }
        if (end [1])
            return false;
    }
    uint64_t result;
    if (!s_scale (value, unit, &result))
        return false;
    if (bytes)
        *bytes = result;
    return true;
}

bool
relais_parse_duration_ms (const char *text, uint64_t *ms)
{
    if (!text)
        return false;
    uint64_t value;
    const char *end;
    if (!s_parse_digits (text, &value, &end))
        return false;
    static const struct { const char *suffix; uint64_t ms; } units [] = {
        { "", 1 },                  //  a bare number is milliseconds
        { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
        { "d", 86400000 }
    };
    for (size_t i = 0; i < sizeof units / sizeof units [0]; i++)
        if (strcmp (end, units [i].suffix) == 0) {
            uint64_t result;
            if (!s_scale (value, units [i].ms, &result))
                return false;
            if (ms)
                *ms = result;
            return true;
        }
    return false;
}

bool
relais_parse_bool (const char *text, bool *value)
{
    if (!text)
        return false;
    static const char *const yes [] = { "true", "yes", "on", "1" };
    static const char *const no [] = { "false", "no", "off", "0" };
    for (int i = 0; i < 4; i++) {
        if (strcasecmp (text, yes [i]) == 0) {
            if (value)
                *value = true;
            return true;
        }
        if (strcasecmp (text, no [i]) == 0) {
            if (value)
                *value = false;
            return true;
        }
    }
    return false;
}

//  ---------------------------------------------------------------------------
//  Stock checks

bool
relais_check_endpoint (const char *value, char *why, size_t size)
{
    const char *usage = "expected tcp://host:port, ipc://path or inproc://name";
    if (strncmp (value, "ipc://", 6) == 0 || strncmp (value, "inproc://", 9) == 0) {
        const char *rest = strchr (value, '/') + 2;
        if (*rest)
            return true;
        snprintf (why, size, "%s (the name is empty)", usage);
        return false;
    }
    if (strncmp (value, "tcp://", 6) == 0) {
        const char *host = value + 6;
        const char *colon = strrchr (host, ':');
        if (!colon || colon == host) {
            snprintf (why, size, "%s (no host:port)", usage);
            return false;
        }
        const char *port = colon + 1;
        if (strcmp (port, "*") == 0)
            return true;
        uint64_t number;
        const char *end;
        if (!s_parse_digits (port, &number, &end) || *end || number == 0 || number > 65535) {
            snprintf (why, size, "%s (port must be 1-65535 or *)", usage);
            return false;
        }
        return true;
    }
    snprintf (why, size, "%s", usage);
    return false;
}

bool
relais_check_uint (const char *value, char *why, size_t size)
{
    uint64_t number;
    const char *end;
    if (s_parse_digits (value, &number, &end) && *end == 0 && number <= INT64_MAX)
        return true;
    snprintf (why, size, "expected a whole number");
    return false;
}

bool
relais_check_size (const char *value, char *why, size_t size)
{
    if (relais_parse_size (value, NULL))
        return true;
    snprintf (why, size, "expected a size in bytes, with an optional K, M or G (1024-based)");
    return false;
}

bool
relais_check_duration (const char *value, char *why, size_t size)
{
    if (relais_parse_duration_ms (value, NULL))
        return true;
    snprintf (why, size, "expected a duration: a number with ms, s, m, h or d (bare: ms)");
    return false;
}

bool
relais_check_bool (const char *value, char *why, size_t size)
{
    if (relais_parse_bool (value, NULL))
        return true;
    snprintf (why, size, "expected true/false, yes/no, on/off or 1/0");
    return false;
}

bool
relais_check_path (const char *value, char *why, size_t size)
{
    if (*value)
        return true;
    snprintf (why, size, "expected a path, got nothing");
    return false;
}

//  ---------------------------------------------------------------------------
//  Loading

static char *
s_folder_of (const char *file)
{
    char cwd [PATH_MAX];
    if (!getcwd (cwd, sizeof cwd))
        return NULL;
    if (!file)
        return strdup (cwd);
    const char *slash = strrchr (file, '/');
    if (!slash)
        return strdup (cwd);
    int dirlen = slash == file? 1: (int) (slash - file);
    char *folder = NULL;
    int rc = file [0] == '/'
        ? asprintf (&folder, "%.*s", dirlen, file)
        : asprintf (&folder, "%s/%.*s", cwd, dirlen, file);
    return rc < 0? NULL: folder;
}

//  The whole file as a string. We read it ourselves rather than through
//  zconfig_load, which says NULL for a missing file and a syntax error
//  alike, and leaks its zfile_t on a syntax error (czmq 4.2.1).
static int
s_read_file (const char *file, char **text_p)
{
    FILE *handle = fopen (file, "r");
    struct stat st;
    if (!handle || fstat (fileno (handle), &st) || !S_ISREG (st.st_mode)) {
        relais_error ("%s: cannot read: %s", file, handle? "not a regular file": strerror (errno));
        if (handle)
            fclose (handle);
        return -1;
    }
    if (st.st_size > S_FILE_MAX) {
        relais_error ("%s: cannot read: larger than %d bytes", file, S_FILE_MAX);
        fclose (handle);
        return -1;
    }
    char *text = (char *) malloc ((size_t) st.st_size + 1);
    size_t size = text? fread (text, 1, (size_t) st.st_size, handle): 0;
    bool failed = !text || ferror (handle);
    fclose (handle);
    if (failed) {
        relais_error ("%s: cannot read: %s", file, text? "read error": "out of memory");
        free (text);
        return -1;
    }
    //  A NUL inside would silently cut the file short
    if (memchr (text, 0, size)) {
        relais_error ("%s: cannot parse (ZPL syntax): holds a NUL byte", file);
        free (text);
        return -1;
    }
    text [size] = 0;
    *text_p = text;
    return 0;
}

relais_config_t *
relais_config_load (const char *file)
{
    relais_config_t *self = (relais_config_t *) calloc (1, sizeof *self);
    if (!self) {
        relais_error ("relais_config: out of memory");
        return NULL;
    }
    self->file = strdup (file? file: "");
    self->base = s_folder_of (file);
    if (!self->file || !self->base) {
        relais_error ("%s: cannot find the current folder: %s", file? file: "(defaults)",
                      strerror (errno));
        relais_config_destroy (&self);
        return NULL;
    }
    if (file) {
        char *text = NULL;
        if (s_read_file (file, &text)) {
            relais_config_destroy (&self);
            return NULL;
        }
        if (*text) {
            self->root = zconfig_str_load (text);
            if (!self->root) {
                relais_error ("%s: cannot parse (ZPL syntax)", file);
                free (text);
                relais_config_destroy (&self);
                return NULL;
            }
        }
        free (text);
    }
    if (!self->root)
        self->root = zconfig_new ("root", NULL);
    if (!self->root) {
        relais_error ("relais_config: out of memory");
        relais_config_destroy (&self);
    }
    return self;
}

void
relais_config_destroy (relais_config_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    relais_config_t *self = *self_p;
    zconfig_destroy (&self->root);
    for (size_t i = 0; i < self->ndecls; i++) {
        free (self->decls [i].section);
        free (self->decls [i].path);
        free (self->decls [i].fallback);
    }
    free (self->decls);
    free (self->file);
    free (self->base);
    free (self);
    *self_p = NULL;
}

const char *
relais_config_file (relais_config_t *self)
{
    s_require (self, "relais_config_file needs a config");
    return self->file;
}

//  ---------------------------------------------------------------------------
//  Declarations

//  Segment by segment; '*' stands for any one name.
static bool
s_match (const char *pattern, const char *path)
{
    while (*pattern && *path) {
        size_t plen = strcspn (pattern, "/");
        size_t len = strcspn (path, "/");
        if (!(plen == 1 && *pattern == '*') && (plen != len || memcmp (pattern, path, len)))
            return false;
        pattern += plen;
        path += len;
        if (*pattern != *path)
            return false;           //  one ended before the other
        if (*pattern == '/') {
            pattern++;
            path++;
        }
    }
    return *pattern == 0 && *path == 0;
}

//  The declaration naming section/rel: an exact path before a pattern.
static s_decl_t *
s_find_decl (relais_config_t *self, const char *section, size_t slen, const char *rel)
{
    s_decl_t *pattern = NULL;
    for (size_t i = 0; i < self->ndecls; i++) {
        s_decl_t *decl = &self->decls [i];
        if (strlen (decl->section) != slen || memcmp (decl->section, section, slen))
            continue;
        if (strcmp (decl->path, rel) == 0)
            return decl;
        if (!pattern && strchr (decl->path, '*') && s_match (decl->path, rel))
            pattern = decl;
    }
    return pattern;
}

static int
s_add_decl (relais_config_t *self, const char *section, const relais_config_key_t *key)
{
    s_decl_t *decl = s_find_decl (self, section, strlen (section), key->path);
    if (decl && strcmp (decl->path, key->path) == 0) {
        //  Declared again (cli declares every section): the latest wins
        char *fallback = key->fallback? strdup (key->fallback): NULL;
        if (key->fallback && !fallback)
            return -ENOMEM;
        free (decl->fallback);
        decl->fallback = fallback;
        decl->check = key->check;
        return 0;
    }
    if (self->ndecls == self->cap) {
        size_t cap = self->cap? self->cap * 2: 32;
        s_decl_t *decls = (s_decl_t *) realloc (self->decls, cap * sizeof *decls);
        if (!decls)
            return -ENOMEM;
        self->decls = decls;
        self->cap = cap;
    }
    decl = &self->decls [self->ndecls];
    decl->section = strdup (section);
    decl->path = strdup (key->path);
    decl->fallback = key->fallback? strdup (key->fallback): NULL;
    decl->check = key->check;
    if (!decl->section || !decl->path || (key->fallback && !decl->fallback)) {
        free (decl->section);
        free (decl->path);
        free (decl->fallback);
        return -ENOMEM;
    }
    self->ndecls++;
    return 0;
}

static bool
s_is_key (zconfig_t *node)
{
    const char *value = zconfig_value (node);
    return !zconfig_child (node) || (value && *value);
}

static const char *
s_file_name (relais_config_t *self)
{
    return *self->file? self->file: "(defaults)";
}

//  Check every key under node; count and log each problem.
static void
s_walk (relais_config_t *self, const char *section, zconfig_t *node,
        const char *prefix, int *errors)
{
    for (zconfig_t *child = zconfig_child (node); child; child = zconfig_next (child)) {
        const char *name = zconfig_name (child);
        char rel [S_PATH_MAX];
        int n = *prefix? snprintf (rel, sizeof rel, "%s/%s", prefix, name)
                       : snprintf (rel, sizeof rel, "%s", name);
        if (n < 0 || n >= (int) sizeof rel) {
            relais_error ("%s: %s/%.64s...: path too long", s_file_name (self), section, rel);
            (*errors)++;
            continue;
        }
        if (s_is_key (child)) {
            s_decl_t *decl = s_find_decl (self, section, strlen (section), rel);
            if (!decl) {
                relais_error ("%s: %s/%s: unknown key", s_file_name (self), section, rel);
                (*errors)++;
            }
            else {
                const char *value = zconfig_value (child);
                char why [256] = "";
                if (decl->check && !decl->check (value? value: "", why, sizeof why)) {
                    relais_error ("%s: %s/%s: %s", s_file_name (self), section, rel, why);
                    (*errors)++;
                }
            }
            //  zconfig_locate takes the first of two equal names: the
            //  second would be silently ignored
            for (zconfig_t *before = zconfig_child (node); before != child;
                 before = zconfig_next (before))
                if (strcmp (zconfig_name (before), name) == 0 && s_is_key (before)) {
                    relais_error ("%s: %s/%s: given more than once", s_file_name (self), section, rel);
                    (*errors)++;
                    break;
                }
        }
        if (zconfig_child (child))
            s_walk (self, section, child, rel, errors);
    }
}

int
relais_config_declare (relais_config_t *self, const char *section,
                       const relais_config_key_t *keys)
{
    s_require (self && section && *section && !strchr (section, '/') && keys,
               "relais_config_declare misuse");
    for (const relais_config_key_t *key = keys; key->path; key++) {
        //  A default that fails its own check is a bug in the table
        char why [256] = "";
        s_require (!key->fallback || !key->check || key->check (key->fallback, why, sizeof why),
                   "%s/%s: default '%s' fails its check: %s", section, key->path,
                   key->fallback, why);
        if (s_add_decl (self, section, key)) {
            relais_error ("relais_config: out of memory");
            return -ENOMEM;
        }
    }
    int errors = 0;
    zconfig_t *node = zconfig_locate (self->root, section);
    if (node) {
        const char *value = zconfig_value (node);
        if (value && *value) {
            relais_error ("%s: %s: is a section, not a value", s_file_name (self), section);
            errors++;
        }
        s_walk (self, section, node, "", &errors);
        for (zconfig_t *other = zconfig_next (node); other; other = zconfig_next (other))
            if (strcmp (zconfig_name (other), section) == 0) {
                relais_error ("%s: %s: section given more than once", s_file_name (self), section);
                errors++;
            }
    }
    for (const relais_config_key_t *key = keys; key->path; key++) {
        if (key->fallback || strchr (key->path, '*'))
            continue;
        char path [S_PATH_MAX];
        snprintf (path, sizeof path, "%s/%s", section, key->path);
        zconfig_t *item = zconfig_locate (self->root, path);
        if (!item || !s_is_key (item)) {
            relais_error ("%s: %s/%s: required key missing", s_file_name (self), section, key->path);
            errors++;
        }
    }
    return errors? RELAIS_ECONFIG: 0;
}

//  ---------------------------------------------------------------------------
//  Getters

const char *
relais_config_str (relais_config_t *self, const char *path)
{
    s_require (self && path, "relais_config_str misuse");
    zconfig_t *node = zconfig_locate (self->root, path);
    if (node && s_is_key (node)) {
        const char *value = zconfig_value (node);
        return value? value: "";
    }
    const char *slash = strchr (path, '/');
    if (!slash)
        return NULL;
    s_decl_t *decl = s_find_decl (self, path, (size_t) (slash - path), slash + 1);
    return decl? decl->fallback: NULL;
}

int64_t
relais_config_int (relais_config_t *self, const char *path, int64_t fallback)
{
    const char *text = relais_config_str (self, path);
    if (!text || !*text)
        return fallback;
    char *end;
    errno = 0;
    long long value = strtoll (text, &end, 10);
    if (errno || *end)
        return fallback;
    return (int64_t) value;
}

uint64_t
relais_config_size (relais_config_t *self, const char *path, uint64_t fallback)
{
    uint64_t value;
    return relais_parse_size (relais_config_str (self, path), &value)? value: fallback;
}

uint64_t
relais_config_duration_ms (relais_config_t *self, const char *path, uint64_t fallback)
{
    uint64_t value;
    return relais_parse_duration_ms (relais_config_str (self, path), &value)? value: fallback;
}

bool
relais_config_bool (relais_config_t *self, const char *path, bool fallback)
{
    bool value;
    return relais_parse_bool (relais_config_str (self, path), &value)? value: fallback;
}

char *
relais_config_path (relais_config_t *self, const char *path)
{
    s_require (self && path, "relais_config_path misuse");
    const char *value = relais_config_str (self, path);
    if (!value || !*value)
        return NULL;
    if (value [0] == '/')
        return strdup (value);
    char *result = NULL;
    int rc;
    const char *data = relais_config_str (self, "relais/data");
    if (!data || !*data)
        data = S_DATA_DEFAULT;
    if (strcmp (path, "relais/data") == 0)
        rc = asprintf (&result, "%s/%s", self->base, value);
    else
    if (data [0] == '/')
        rc = asprintf (&result, "%s/%s", data, value);
    else
        rc = asprintf (&result, "%s/%s/%s", self->base, data, value);
    return rc < 0? NULL: result;
}

void
relais_config_children (relais_config_t *self, const char *path,
                        relais_config_child_fn *fn, void *arg)
{
    s_require (self && fn, "relais_config_children misuse");
    zconfig_t *node = path && *path? zconfig_locate (self->root, path): self->root;
    if (!node)
        return;
    for (zconfig_t *child = zconfig_child (node); child; child = zconfig_next (child))
        fn (zconfig_name (child), arg);
}
