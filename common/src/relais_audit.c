/*  =========================================================================
    relais_audit - the append-only, tamper-evident log of personal-data reads
    (see relais_audit.h)
    =========================================================================
*/
#include "relais_audit.h"
#include "relais_err.h"
#include "relais_log.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_LINE_MAX 1024

struct relais_audit_t {
    int fd;
    uint8_t key [crypto_auth_hmacsha256_KEYBYTES];
    char prev [65];                 //  MAC of the last line, hex ("" at first)
    uint64_t count;
};

static int
s_load_key (const char *path, uint8_t key [crypto_auth_hmacsha256_KEYBYTES], bool create)
{
    int fd = open (path, O_RDONLY);
    if (fd < 0 && errno == ENOENT && create) {
        fd = open (path, O_WRONLY | O_CREAT | O_EXCL, 0600);
        if (fd < 0)
            return -errno;
        randombytes_buf (key, crypto_auth_hmacsha256_KEYBYTES);
        int rc = write (fd, key, crypto_auth_hmacsha256_KEYBYTES) == crypto_auth_hmacsha256_KEYBYTES
              && fsync (fd) == 0? 0: -EIO;
        close (fd);
        return rc;
    }
    if (fd < 0)
        return -errno;
    struct stat st;
    int rc = 0;
    if (fstat (fd, &st) || (st.st_mode & 077)) {
        relais_error ("audit: the key %s can be read by others: refused", path);
        rc = -EACCES;
    }
    else
    if (read (fd, key, crypto_auth_hmacsha256_KEYBYTES) != crypto_auth_hmacsha256_KEYBYTES)
        rc = -EIO;
    close (fd);
    return rc;
}

static void
s_clean (char *to, size_t size, const char *from)
{
    size_t i = 0;
    for (; from && from [i] && i + 1 < size; i++) {
        char c = from [i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
               || strchr (" ._:/@-", c) != NULL;
        to [i] = ok? c: '?';
    }
    to [i] = 0;
}

static void
s_mac (const uint8_t *key, const char *text, size_t size, char hex [65])
{
    uint8_t mac [crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256 (mac, (const unsigned char *) text, size, key);
    sodium_bin2hex (hex, 65, mac, sizeof mac);
}

//  Check one line against the chain; update prev. Returns true when sound.
static bool
s_check_line (const uint8_t *key, const char *line, uint64_t n, char prev [65])
{
    const char *tail = strstr (line, ",\"mac\":\"");
    if (!tail || strlen (tail) < 8 + 64 + 2)
        return false;
    char expect [65];
    s_mac (key, line, (size_t) (tail - line), expect);
    if (memcmp (tail + 8, expect, 64) != 0 || strcmp (tail + 8 + 64, "\"}") != 0)
        return false;
    char head [64];
    snprintf (head, sizeof head, "{\"n\":%llu,", (unsigned long long) n);
    if (strncmp (line, head, strlen (head)) != 0)
        return false;
    char want [80];
    snprintf (want, sizeof want, ",\"prev\":\"%s\"", prev);
    const char *at = strstr (line, ",\"prev\":\"");
    if (!at || strncmp (at, want, strlen (want)) != 0 || at + strlen (want) != tail)
        return false;
    memcpy (prev, expect, 65);
    return true;
}

int
relais_audit_verify (const char *path, const char *key_path, uint64_t *entries,
                     uint64_t *bad_line, char last_mac [65])
{
    *entries = 0;
    *bad_line = 0;
    last_mac [0] = 0;
    uint8_t key [crypto_auth_hmacsha256_KEYBYTES];
    int rc = s_load_key (key_path, key, false);
    if (rc)
        return rc;
    FILE *file = fopen (path, "r");
    if (!file) {
        sodium_memzero (key, sizeof key);
        return errno == ENOENT? 0: -errno;
    }
    char line [S_LINE_MAX + 2];
    char prev [65] = "";
    while (fgets (line, sizeof line, file)) {
        size_t len = strlen (line);
        bool whole = len > 0 && line [len - 1] == '\n';
        if (whole)
            line [--len] = 0;
        (*entries)++;
        if (!whole || !s_check_line (key, line, *entries, prev)) {
            *bad_line = *entries;
            rc = RELAIS_EMALFORMED;
            break;
        }
    }
    fclose (file);
    sodium_memzero (key, sizeof key);
    memcpy (last_mac, prev, 65);
    return rc;
}

//  Truncate the file after its last newline when it does not end with
//  one. Returns 0 when something was cut, else -1.
static int
s_drop_torn_tail (const char *path)
{
    int fd = open (path, O_RDWR);
    if (fd < 0)
        return -1;
    off_t size = lseek (fd, 0, SEEK_END);
    char c = 0;
    int rc = -1;
    if (size > 0 && pread (fd, &c, 1, size - 1) == 1 && c != '\n') {
        off_t at = size - 1;
        while (at > 0 && pread (fd, &c, 1, at - 1) == 1 && c != '\n')
            at--;
        if (ftruncate (fd, at) == 0 && fsync (fd) == 0)
            rc = 0;
    }
    close (fd);
    return rc;
}

relais_audit_t *
relais_audit_open (const char *path, const char *key_path)
{
    if (sodium_init () < 0)
        return NULL;
    relais_audit_t *self = (relais_audit_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->fd = -1;
    int rc = s_load_key (key_path, self->key, true);
    if (rc) {
        relais_error ("audit: cannot use the key %s: %s", key_path, strerror (-rc));
        relais_audit_destroy (&self);
        return NULL;
    }
    uint64_t entries, bad;
    char last [65];
    rc = relais_audit_verify (path, key_path, &entries, &bad, last);
    if (rc == RELAIS_EMALFORMED && bad == entries && s_drop_torn_tail (path) == 0) {
        //  A crash in the middle of an append leaves a line without its
        //  newline; the read it recorded was never served (the entry is
        //  synced first), so the torn line goes
        relais_warning ("audit: %s: removed the torn last line %llu (a crash while writing it)",
                        path, (unsigned long long) bad);
        rc = relais_audit_verify (path, key_path, &entries, &bad, last);
    }
    if (rc) {
        //  Never append to a broken chain: a person must look first
        relais_error ("audit: %s is broken at line %llu: refusing to append (keep it as "
                      "evidence, start a new file)", path, (unsigned long long) bad);
        relais_audit_destroy (&self);
        return NULL;
    }
    self->count = entries;
    memcpy (self->prev, last, sizeof self->prev);
    self->fd = open (path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (self->fd < 0) {
        relais_error ("audit: cannot open %s: %s", path, strerror (errno));
        relais_audit_destroy (&self);
        return NULL;
    }
    return self;
}

int
relais_audit_append (relais_audit_t *self, uint64_t ts, const char *who, const char *role,
                     const char *action, const char *key, const char *purpose)
{
    char w [64], r [32], a [48], k [72], p [72];
    s_clean (w, sizeof w, who);
    s_clean (r, sizeof r, role);
    s_clean (a, sizeof a, action);
    s_clean (k, sizeof k, key);
    s_clean (p, sizeof p, purpose);
    char line [S_LINE_MAX];
    int len = snprintf (line, sizeof line,
                        "{\"n\":%llu,\"ts\":%llu,\"who\":\"%s\",\"role\":\"%s\",\"action\":\"%s\","
                        "\"key\":\"%s\",\"purpose\":\"%s\",\"prev\":\"%s\"",
                        (unsigned long long) self->count + 1, (unsigned long long) ts,
                        w, r, a, k, p, self->prev);
    char mac [65];
    s_mac (self->key, line, (size_t) len, mac);
    len += snprintf (line + len, sizeof line - (size_t) len, ",\"mac\":\"%s\"}\n", mac);
    if (write (self->fd, line, (size_t) len) != len || fdatasync (self->fd))
        return -(errno? errno: EIO);
    memcpy (self->prev, mac, sizeof self->prev);
    self->count++;
    return 0;
}

uint64_t
relais_audit_count (relais_audit_t *self)
{
    return self->count;
}

void
relais_audit_destroy (relais_audit_t **self_p)
{
    relais_audit_t *self = *self_p;
    if (!self)
        return;
    if (self->fd >= 0)
        close (self->fd);
    sodium_memzero (self->key, sizeof self->key);
    free (self);
    *self_p = NULL;
}
