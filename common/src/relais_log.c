/*  =========================================================================
    relais_log - one logging API for every process
    =========================================================================
*/
#include "relais_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

static char s_ident [32] = "relais";
static relais_log_level_t s_level = RELAIS_LOG_INFO;
static const char s_letters [] = "EWNID";

void
relais_log_init (const char *ident)
{
    snprintf (s_ident, sizeof s_ident, "%s", ident);
    const char *env = getenv ("RELAIS_LOG_LEVEL");
    if (env) {
        static const char *names [] = { "error", "warning", "notice", "info", "debug" };
        for (int i = 0; i < 5; i++)
            if (strcasecmp (env, names [i]) == 0)
                s_level = (relais_log_level_t) i;
    }
}

void
relais_log_level (relais_log_level_t level)
{
    s_level = level;
}

int
relais_log_enabled (relais_log_level_t level)
{
    return level <= s_level;
}

void
relais_log_write (relais_log_level_t level, const char *format, ...)
{
    if (level > s_level)
        return;
    struct timeval tv;
    gettimeofday (&tv, NULL);
    struct tm tm;
    gmtime_r (&tv.tv_sec, &tm);
    char line [1024];
    int n = snprintf (line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ %s %c ",
                      tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                      tm.tm_min, tm.tm_sec, (long) tv.tv_usec, s_ident,
                      s_letters [level]);
    va_list args;
    va_start (args, format);
    vsnprintf (line + n, sizeof line - n - 1, format, args);
    va_end (args);
    //  One write per line keeps lines whole when several processes share a file
    size_t len = strlen (line);
    line [len++] = '\n';
    fwrite (line, 1, len, stderr);
    fflush (stderr);
}
