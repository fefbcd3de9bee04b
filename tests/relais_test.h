/*  =========================================================================
    relais_test - the few macros every unit test uses

    @header
    Tests are plain executables under tests/unit, one per area, each run by
    ctest. A failed CHECK prints file, line and the expression, then exits 1,
    so ctest shows which assertion broke. They stay on under NDEBUG.
    =========================================================================
*/
#ifndef RELAIS_TEST_H_INCLUDED
#define RELAIS_TEST_H_INCLUDED

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(expr) do { \
    if (!(expr)) { \
        fprintf (stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #expr); \
        exit (1); \
    } \
} while (0)

//  Check that an int-returning call gives 0; print relais_strerror if not.
#define CHECK_OK(expr) do { \
    int check_rc_ = (expr); \
    if (check_rc_ != 0) { \
        fprintf (stderr, "%s:%d: %s returned %d (%s)\n", __FILE__, __LINE__, \
                 #expr, check_rc_, relais_strerror (check_rc_)); \
        exit (1); \
    } \
} while (0)

#define CHECK_STR(a, b) do { \
    const char *check_a_ = (a), *check_b_ = (b); \
    if (strcmp (check_a_, check_b_) != 0) { \
        fprintf (stderr, "%s:%d: \"%s\" != \"%s\" (%s vs %s)\n", __FILE__, __LINE__, \
                 check_a_, check_b_, #a, #b); \
        exit (1); \
    } \
} while (0)

//  Run one test case function and print its name.
#define RUN(fn) do { fprintf (stderr, "  %s\n", #fn); fn (); } while (0)

#endif
