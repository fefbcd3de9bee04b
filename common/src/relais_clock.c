/*  =========================================================================
    relais_clock - wall-clock time in µs UTC, injectable for tests
    =========================================================================
*/
#include "relais_clock.h"

#include <stdlib.h>
#include <time.h>

static relais_clock_fn *s_fn;
static void *s_arg;
static int64_t s_offset;        //  added to the system clock (fake start)

uint64_t
relais_clock_now (void)
{
    if (s_fn)
        return s_fn (s_arg);
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (uint64_t) ((int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000 + s_offset);
}

uint64_t
relais_clock_mono (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

void
relais_clock_set (relais_clock_fn *fn, void *arg)
{
    s_fn = fn;
    s_arg = arg;
}

void
relais_clock_from_env (void)
{
    const char *env = getenv ("RELAIS_FAKE_TIME_US");
    if (env && *env) {
        int64_t start = strtoll (env, NULL, 10);
        s_offset = 0;
        s_offset = start - (int64_t) relais_clock_now ();
    }
}
