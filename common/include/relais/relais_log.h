/*  =========================================================================
    relais_log - one logging API for every process

    @header
    One line per event on stderr (journald or the demo's log files take it):
    "2026-11-22T18:40:00.123456Z intake I submit id=SIG-00000001 seq=4".
    ISO time in UTC, the process ident, a level letter, then the message -
    by convention a verb and key=value pairs, so lines grep and cut well.
    @discuss
    Log ids and counts, never payloads: names, places and health details of
    reported people stay out of logs. The level comes from RELAIS_LOG_LEVEL
    (error, warning, notice, info, debug; default info) or relais_log_level ().
    The level is checked before formatting.
    =========================================================================
*/
#ifndef RELAIS_LOG_H_INCLUDED
#define RELAIS_LOG_H_INCLUDED

typedef enum {
    RELAIS_LOG_ERROR, RELAIS_LOG_WARNING, RELAIS_LOG_NOTICE, RELAIS_LOG_INFO,
    RELAIS_LOG_DEBUG
} relais_log_level_t;

//  Set the process name printed on every line, and read RELAIS_LOG_LEVEL.
void relais_log_init (const char *ident);

//  Set the level; lines above it are not formatted.
void relais_log_level (relais_log_level_t level);

//  True when a line at level would be printed.
int relais_log_enabled (relais_log_level_t level);

void relais_log_write (relais_log_level_t level, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

#define relais_error(...)   relais_log_write (RELAIS_LOG_ERROR, __VA_ARGS__)
#define relais_warning(...) relais_log_write (RELAIS_LOG_WARNING, __VA_ARGS__)
#define relais_notice(...)  relais_log_write (RELAIS_LOG_NOTICE, __VA_ARGS__)
#define relais_info(...)    do { if (relais_log_enabled (RELAIS_LOG_INFO)) \
                                relais_log_write (RELAIS_LOG_INFO, __VA_ARGS__); } while (0)
#define relais_debug(...)   do { if (relais_log_enabled (RELAIS_LOG_DEBUG)) \
                                relais_log_write (RELAIS_LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
