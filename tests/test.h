/* A tiny test framework: TEST functions, EXPECT macros that print file:line
 * and keep going, and test_main() that runs the table and returns the exit
 * code.  Every test program ends with "N passed, N failed". */
#ifndef DRIFTPILOT_TEST_H
#define DRIFTPILOT_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failures_ = 0;
static int test_checks_ = 0;
static const char *test_current_ = "";
static int test_skipped_ = 0;

/* Marks the current case as skipped (counted apart, never as passed) and
 * returns from it.  Only for opt-in benchmarks; a missing prerequisite of a
 * real check is a failure, not a skip. */
#define TEST_SKIP(...)                                                                 \
    do {                                                                               \
        fprintf(stderr, "  skip [%s]: ", test_current_);                               \
        fprintf(stderr, __VA_ARGS__);                                                  \
        fputc('\n', stderr);                                                           \
        test_skipped_ = 1;                                                             \
        return;                                                                        \
    } while (0)

/* Fails the current case unless the driftpilot binary was built (tests that
 * drive the CLI need it; CI always builds it before running ctest). */
#define REQUIRE_BINARY(path)                                                           \
    do {                                                                               \
        FILE *f_ = fopen((path), "rb");                                                \
        REQUIRE(f_ != NULL && "driftpilot binary must be built before this test");     \
        fclose(f_);                                                                    \
    } while (0)

#define EXPECT(cond)                                                                   \
    do {                                                                               \
        test_checks_++;                                                                \
        if (!(cond)) {                                                                 \
            test_failures_++;                                                          \
            fprintf(stderr, "  FAIL %s:%d [%s]: %s\n", __FILE__, __LINE__, test_current_, \
                    #cond);                                                            \
        }                                                                              \
    } while (0)

#define EXPECT_MSG(cond, ...)                                                          \
    do {                                                                               \
        test_checks_++;                                                                \
        if (!(cond)) {                                                                 \
            test_failures_++;                                                          \
            fprintf(stderr, "  FAIL %s:%d [%s]: %s: ", __FILE__, __LINE__, test_current_, \
                    #cond);                                                            \
            fprintf(stderr, __VA_ARGS__);                                              \
            fputc('\n', stderr);                                                       \
        }                                                                              \
    } while (0)

#define EXPECT_EQ_INT(a, b)                                                            \
    do {                                                                               \
        long long a_ = (long long)(a), b_ = (long long)(b);                            \
        EXPECT_MSG(a_ == b_, "%lld != %lld", a_, b_);                                  \
    } while (0)

#define EXPECT_NEAR(a, b, tol)                                                         \
    do {                                                                               \
        double a_ = (double)(a), b_ = (double)(b);                                     \
        EXPECT_MSG(fabs(a_ - b_) <= (tol), "%.10g vs %.10g (tol %g)", a_, b_, (double)(tol)); \
    } while (0)

#define EXPECT_STREQ(a, b)                                                             \
    do {                                                                               \
        const char *a_ = (a), *b_ = (b);                                               \
        EXPECT_MSG(a_ && b_ && strcmp(a_, b_) == 0, "\"%s\" != \"%s\"", a_ ? a_ : "(null)", \
                   b_ ? b_ : "(null)");                                                \
    } while (0)

/* Stops the current test when cond is false (for preconditions). */
#define REQUIRE(cond)                                                                  \
    do {                                                                               \
        test_checks_++;                                                                \
        if (!(cond)) {                                                                 \
            test_failures_++;                                                          \
            fprintf(stderr, "  FAIL %s:%d [%s]: required %s\n", __FILE__, __LINE__,     \
                    test_current_, #cond);                                             \
            return;                                                                    \
        }                                                                              \
    } while (0)

typedef struct {
    const char *name;
    void (*fn)(void);
} TestCase;

#define TEST_CASE(fn) {#fn, fn}

/* Runs every case (or only those named in argv), prints a summary line. */
static int test_main(const TestCase *cases, int n, int argc, char **argv) {
    int passed = 0, failed = 0, skipped = 0;
    for (int i = 0; i < n; i++) {
        if (argc > 1) {
            int want = 0;
            for (int a = 1; a < argc; a++)
                if (!strcmp(argv[a], cases[i].name)) want = 1;
            if (!want) continue;
        }
        int before = test_failures_;
        test_current_ = cases[i].name;
        test_skipped_ = 0;
        cases[i].fn();
        if (test_skipped_ && test_failures_ == before) {
            skipped++;
            fprintf(stderr, "skip %s\n", cases[i].name);
        } else if (test_failures_ == before) {
            passed++;
            fprintf(stderr, "ok   %s\n", cases[i].name);
        } else {
            failed++;
            fprintf(stderr, "FAIL %s\n", cases[i].name);
        }
    }
    if (skipped)
        printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    else
        printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

#define TEST_MAIN(...)                                                                 \
    int main(int argc, char **argv) {                                                  \
        static const TestCase cases_[] = {__VA_ARGS__};                                \
        return test_main(cases_, (int)(sizeof cases_ / sizeof cases_[0]), argc, argv); \
    }

#endif
