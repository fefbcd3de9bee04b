/*  =========================================================================
    relais_err - the project's return codes and the wire error shape
    =========================================================================
*/
#include "relais_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *
relais_strerror (int rc)
{
    switch (rc) {
        case 0:                 return "success";
        case RELAIS_EMALFORMED: return "malformed input";
        case RELAIS_ETOOLARGE:  return "input over a limit";
        case RELAIS_ENOTFOUND:  return "not found";
        case RELAIS_ECONFLICT:  return "conflicts with current state";
        case RELAIS_EFULL:      return "storage full";
        case RELAIS_EFATAL:     return "storage failed, cannot continue";
        case RELAIS_EGONE:      return "range purged from the log";
        case RELAIS_ECONFIG:    return "configuration refused";
        default:                break;
    }
    if (rc < 0 && rc > -4096)
        return strerror (-rc);
    return "unknown error";
}

int
relais_error_set (relais_error_t *err, const char *code, const char *field,
                  const char *format, ...)
{
    if (err) {
        err->code = code;
        snprintf (err->field, sizeof err->field, "%s", field? field: "");
        va_list args;
        va_start (args, format);
        vsnprintf (err->message, sizeof err->message, format, args);
        va_end (args);
    }
    if (strcmp (code, RELAIS_CODE_TOO_LARGE) == 0)
        return RELAIS_ETOOLARGE;
    if (strcmp (code, RELAIS_CODE_NOT_FOUND) == 0)
        return RELAIS_ENOTFOUND;
    if (strcmp (code, RELAIS_CODE_CONFLICT) == 0)
        return RELAIS_ECONFLICT;
    if (strcmp (code, RELAIS_CODE_UNAVAILABLE) == 0)
        return RELAIS_EFULL;
    return RELAIS_EMALFORMED;
}

void
relais_error_clear (relais_error_t *err)
{
    err->code = NULL;
    err->field [0] = 0;
    err->message [0] = 0;
}
