/*  =========================================================================
    relais_audit - the append-only, tamper-evident log of personal-data reads

    @header
    One line of JSON per access, in a file apart from the service's store:
      {"n":12,"ts":1767225600000000,"who":"router","role":"service",
       "action":"record_read","key":"SIG-00000042","purpose":"routing",
       "prev":"<mac of line 11>","mac":"<HMAC-SHA256 of this line up to ,"mac">"}
    Each line's MAC covers its content and the previous line's MAC, under a
    32-byte key kept in its own file (mode 0600, created at first open): a
    line changed, removed or inserted breaks the chain from there on, and
    nobody without the key can rebuild it. An entry is written and
    fdatasync'd before the data it records is sent.
    @discuss
    Values are ids and codes: anything outside [A-Za-z0-9 ._:/@-] is written
    as '?', so a line never needs escaping and holds no free text. Removing
    the last lines cannot be seen from the file alone: keep a copy of the
    last MAC elsewhere (`relais audit` prints it) to anchor the chain.
    =========================================================================
*/
#ifndef RELAIS_AUDIT_H_INCLUDED
#define RELAIS_AUDIT_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>

typedef struct relais_audit_t relais_audit_t;

//  Open (creating) the audit file at path and its key at key_path (created
//  with mode 0600 when absent; refused when others can read it). Checks the
//  chain's last line so that appends continue it. NULL after logging why.
relais_audit_t *
    relais_audit_open (const char *path, const char *key_path);

//  Append one entry and fdatasync it. Returns 0 or -errno: the caller must
//  then refuse to serve the data.
int
    relais_audit_append (relais_audit_t *self, uint64_t ts, const char *who, const char *role,
                         const char *action, const char *key, const char *purpose);

//  Entries written so far (the number of the last line).
uint64_t
    relais_audit_count (relais_audit_t *self);

void
    relais_audit_destroy (relais_audit_t **self_p);

//  Check the whole chain. Fills *entries with the lines read, *bad_line
//  with the first line that breaks it (0: none), and last_mac (65 bytes)
//  with the head of the chain. Returns 0 when intact, RELAIS_EMALFORMED
//  when broken, or -errno.
int
    relais_audit_verify (const char *path, const char *key_path, uint64_t *entries,
                         uint64_t *bad_line, char last_mac [65]);

#endif
