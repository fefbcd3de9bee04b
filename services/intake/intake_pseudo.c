/*  =========================================================================
    intake_pseudo - keyed pseudonyms for people, and the key they need
    =========================================================================
*/
#include "intake_pseudo.h"
#include "relais_log.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int
intake_pseudo_load_key (const char *path, uint8_t key [INTAKE_KEY_SIZE])
{
    if (sodium_init () < 0)
        return -EIO;
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) {
            relais_error ("cannot create key file=%s error=%s", path, strerror (errno));
            return -errno;
        }
        randombytes_buf (key, INTAKE_KEY_SIZE);
        ssize_t n = write (fd, key, INTAKE_KEY_SIZE);
        int rc = (n == INTAKE_KEY_SIZE && fsync (fd) == 0)? 0: -EIO;
        close (fd);
        if (rc == 0)
            relais_notice ("created pseudonym key file=%s", path);
        return rc;
    }
    if (fd < 0) {
        relais_error ("cannot read key file=%s error=%s", path, strerror (errno));
        return -errno;
    }
    struct stat st;
    if (fstat (fd, &st) || (st.st_mode & 077)) {
        relais_error ("key file=%s is readable by group or others (mode %03o): "
                      "chmod 600 it", path, (unsigned) (st.st_mode & 0777));
        close (fd);
        return -EPERM;
    }
    ssize_t n = read (fd, key, INTAKE_KEY_SIZE);
    char extra;
    ssize_t more = read (fd, &extra, 1);
    close (fd);
    if (n != INTAKE_KEY_SIZE || more != 0) {
        relais_error ("key file=%s must hold exactly %d bytes", path, INTAKE_KEY_SIZE);
        return -EINVAL;
    }
    return 0;
}

static void
s_base32 (const uint8_t *bytes, size_t size, char *out)
{
    static const char alphabet [] = "abcdefghijklmnopqrstuvwxyz234567";
    uint32_t buffer = 0;
    int bits = 0;
    for (size_t i = 0; i < size; i++) {
        buffer = (buffer << 8) | bytes [i];
        bits += 8;
        while (bits >= 5) {
            *out++ = alphabet [(buffer >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    if (bits)
        *out++ = alphabet [(buffer << (5 - bits)) & 31];
    *out = 0;
}

//  Lower-case ASCII, collapse runs of spaces: "  Jean  DUPONT " = "jean dupont"
static void
s_normalise (const char *text, char *out, size_t size)
{
    size_t n = 0;
    bool space = true;
    for (const char *p = text; *p && n + 1 < size; p++) {
        if (isspace ((unsigned char) *p)) {
            space = true;
            continue;
        }
        if (space && n)
            out [n++] = ' ';
        space = false;
        if (n + 1 < size)
            out [n++] = (char) tolower ((unsigned char) *p);
    }
    out [n] = 0;
}

static void
s_keyed (const uint8_t key [INTAKE_KEY_SIZE], const char *text, const char *prefix,
         char *out)
{
    uint8_t mac [crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state state;
    crypto_auth_hmacsha256_init (&state, key, INTAKE_KEY_SIZE);
    crypto_auth_hmacsha256_update (&state, (const uint8_t *) text, strlen (text));
    crypto_auth_hmacsha256_final (&state, mac);
    strcpy (out, prefix);
    s_base32 (mac, 12, out + strlen (prefix));      //  96 bits: 20 characters
}

size_t
intake_pseudo_refs (const uint8_t key [INTAKE_KEY_SIZE], const relais_signal_t *sig,
                    char refs [][RELAIS_SIG_REF_MAX])
{
    size_t count = 0;
    for (uint32_t i = 0; i < sig->people_count; i++) {
        const relais_person_t *person = &sig->people [i];
        char identity [RELAIS_SIG_NAME_MAX + RELAIS_SIG_PERSON_ID_MAX + 32];
        if (person->siao_id [0])
            snprintf (identity, sizeof identity, "siao:%s", person->siao_id);
        else
        if (person->name [0]) {
            char name [RELAIS_SIG_NAME_MAX + 1];
            s_normalise (person->name, name, sizeof name);
            snprintf (identity, sizeof identity, "name:%s|%u", name, person->birth_year);
        }
        else
            continue;
        char ref [RELAIS_SIG_REF_MAX];
        s_keyed (key, identity, "P-", ref);
        bool seen = false;
        for (size_t j = 0; j < count && !seen; j++)
            seen = strcmp (refs [j], ref) == 0;
        if (!seen)
            strcpy (refs [count++], ref);
    }
    return count;
}

void
intake_pseudo_place (const uint8_t key [INTAKE_KEY_SIZE], const relais_signal_t *sig,
                     char *buf, size_t size)
{
    char cell [RELAIS_SIG_CELL_MAX];
    relais_signal_cell (sig, cell, sizeof cell);
    if (cell [0]) {
        snprintf (buf, size, "%u:%s", sig->arrondissement, cell);
        return;
    }
    if (sig->address [0]) {
        char address [RELAIS_SIG_ADDRESS_MAX + 1];
        char text [RELAIS_SIG_ADDRESS_MAX + 16];
        char hashed [RELAIS_SIG_REF_MAX];
        s_normalise (sig->address, address, sizeof address);
        snprintf (text, sizeof text, "addr:%s", address);
        s_keyed (key, text, "A-", hashed);
        snprintf (buf, size, "%u:%s", sig->arrondissement, hashed);
        return;
    }
    buf [0] = 0;
}
