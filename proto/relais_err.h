/*  =========================================================================
    relais_err - the project's return codes and the wire error shape

    @header
    One return-code convention for the whole project (CONVENTIONS.md §5):
    0 is OK, a negative value is an error. Our own codes sit in a private
    block below -errno, libuv (>= -9919) and LMDB (-30799...-30779).
    relais_error_t is the wire error of PROTOCOL §4: a code, a field path
    and a message for a person.
    @discuss
    relais_strerror () knows ours and errno; the store maps the LMDB codes
    a caller can meet (map full, panic, not found) to ours.
    =========================================================================
*/
#ifndef RELAIS_ERR_H_INCLUDED
#define RELAIS_ERR_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RELAIS_EMALFORMED   (-40001)    //  input does not follow the contract
#define RELAIS_ETOOLARGE    (-40002)    //  input over a limit
#define RELAIS_ENOTFOUND    (-40003)    //  the id names nothing
#define RELAIS_ECONFLICT    (-40004)    //  change does not fit the current state
#define RELAIS_EFULL        (-40005)    //  storage full (map at its cap, or disk)
#define RELAIS_EFATAL       (-40006)    //  storage can no longer be trusted: exit
#define RELAIS_EGONE        (-40007)    //  range purged from a log
#define RELAIS_ECONFIG      (-40008)    //  configuration refused

//  Wire error codes (PROTOCOL.md §4)
#define RELAIS_CODE_INVALID       "invalid"
#define RELAIS_CODE_TOO_LARGE     "too_large"
#define RELAIS_CODE_UNKNOWN_OP    "unknown_op"
#define RELAIS_CODE_UNAUTHORIZED  "unauthorized"
#define RELAIS_CODE_NOT_FOUND     "not_found"
#define RELAIS_CODE_CONFLICT      "conflict"
#define RELAIS_CODE_UNAVAILABLE   "unavailable"
#define RELAIS_CODE_GONE          "gone"

#define RELAIS_FIELD_MAX    128
#define RELAIS_MESSAGE_MAX  256

typedef struct {
    const char *code;                   //  one of RELAIS_CODE_*, NULL when no error
    char field [RELAIS_FIELD_MAX];      //  path of the bad field, "" when none
    char message [RELAIS_MESSAGE_MAX];  //  for a person; never holds payload text
} relais_error_t;

//  Return a static description of rc (ours, else strerror (-rc)).
const char *
    relais_strerror (int rc);

//  Fill err with code, field path and a printf-style message.
//  Returns the matching negative return code (RELAIS_ETOOLARGE for
//  too_large, RELAIS_ENOTFOUND, RELAIS_ECONFLICT, else RELAIS_EMALFORMED).
int
    relais_error_set (relais_error_t *err, const char *code, const char *field,
                      const char *format, ...)
    __attribute__ ((format (printf, 4, 5)));

//  Reset err to "no error".
void
    relais_error_clear (relais_error_t *err);

#endif
