/*  =========================================================================
    relais_clock - wall-clock time in µs UTC, injectable for tests

    @header
    Every timestamp and due date in Relais comes from relais_clock_now ().
    Tests replace the clock with relais_clock_set () to drive time instead
    of sleeping through it; services may also honour RELAIS_FAKE_TIME_US
    (a fixed start plus the real elapsed time) for system tests.
    =========================================================================
*/
#ifndef RELAIS_CLOCK_H_INCLUDED
#define RELAIS_CLOCK_H_INCLUDED

#include <stdint.h>

typedef uint64_t (relais_clock_fn) (void *arg);

//  Microseconds since the Unix epoch, UTC.
uint64_t relais_clock_now (void);

//  Monotonic microseconds (for latency and timeouts, never persisted).
uint64_t relais_clock_mono (void);

//  Replace the wall clock (NULL restores the system clock).
void relais_clock_set (relais_clock_fn *fn, void *arg);

//  Read RELAIS_FAKE_TIME_US from the environment, when set: the clock then
//  starts at that instant and advances in real time.
void relais_clock_from_env (void);

#endif
