/* harness.h — the test runner used by every tests/test_*.c.
 *
 * Each case runs in its own forked process, so a crash, an abort from BK_CHECK, a sanitizer
 * report or a timeout fails that case only. EXPECT records a failure and continues. The binary
 * prints "ok NAME (s)" or "FAIL NAME" per case and ends with "N passed, N failed".
 *   test_x [substring]   runs only the cases whose name contains the substring.
 */
#ifndef BK_TEST_HARNESS_H
#define BK_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/bokehlab.h"

typedef struct bk_test {
    const char *name;
    void (*fn)(void);
} bk_test;

#define BK_TEST(fn) {#fn, fn}
#define BK_TEST_MAIN(...)                                                        \
    int main(int argc, char **argv) {                                            \
        static const bk_test tests_[] = {__VA_ARGS__};                           \
        return bk_test_main(argc, argv, tests_, sizeof tests_ / sizeof tests_[0]); \
    }

int bk_test_main(int argc, char **argv, const bk_test *tests, int n);

/* A new empty directory /tmp/bk_test_XXXXXX (malloc'd name); the case stops if it cannot be made. */
/* Monotonic seconds. */
double bk_test_now(void);
/* Sleeps ms milliseconds (resumed after signals). */
void bk_test_sleep_ms(int ms);
/* The whole file, NUL-terminated (malloc'd); its length in *len if len. NULL if unreadable. */
char *bk_test_read_file(const char *path, size_t *len);
char *bk_test_tmpdir(void);
/* Removes directory d and everything under it, and frees d (a bk_test_tmpdir name). */
void bk_test_remove_tmpdir(char *d);

/* Records a failure of the current case (and prints it with file:line). */
void bk_test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define EXPECT(cond, ...)                                              \
    do {                                                               \
        if (!(cond)) bk_test_fail(__FILE__, __LINE__, __VA_ARGS__);   \
    } while (0)

/* SPEC §5 "within tol": max|got - want| <= tol * max(max|want|, 1e-6). Prints the figures on
 * failure (and with BK_TEST_VERBOSE=1 always); returns whether it held. */
bool bk_test_close(const char *file, int line, const char *what, const float *got,
                   const float *want, size_t n, double tol);
bool bk_test_close_d(const char *file, int line, const char *what, const double *got,
                     const double *want, size_t n, double tol);
#define EXPECT_CLOSE(what, got, want, n, tol) \
    bk_test_close(__FILE__, __LINE__, what, got, want, n, tol)
#define EXPECT_CLOSE_D(what, got, want, n, tol) \
    bk_test_close_d(__FILE__, __LINE__, what, got, want, n, tol)

/* A context for the current case: reference implementations fail (BK_IMPL_FAIL). Freed at the
 * end of the case. */
bk_ctx *bk_test_ctx(void);

/* Deterministic test data. */
void bk_test_fill_uniform(float *p, size_t n, float lo, float hi, uint64_t seed);
/* Uniform values in +-[lo, hi] (bounded away from 0, for ops with a kink at 0). */
void bk_test_fill_away_from_zero(float *p, size_t n, float lo, float hi, uint64_t seed);
/* A step tensor (NHWC) filled from uniform values given in NCHW order. */
bk_tensor *bk_test_tensor(bk_ctx *ctx, bk_shape s, float lo, float hi, uint64_t seed);
/* Its NCHW contents (malloc'd). */
float *bk_test_nchw(const bk_tensor *t);

#endif
