/* harness.c — forked test cases, EXPECT bookkeeping, tolerance checks, test data. */
#define _GNU_SOURCE /* nftw */
#include "tests/support/harness.h"

#include "core/conv_choice.h"

#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int case_failures;
static bk_ctx case_ctx;
static bool case_ctx_live;

void bk_test_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fprintf(stdout, "    %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
    case_failures++;
}

static bool verbose(void) {
    const char *v = getenv("BK_TEST_VERBOSE");
    return v && *v && *v != '0';
}

bool bk_test_close_d(const char *file, int line, const char *what, const double *got,
                     const double *want, size_t n, double tol) {
    double max_ref = 0.0, max_err = 0.0;
    size_t where = 0;
    bool finite = true;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i])) finite = false;
        double e = fabs(got[i] - want[i]);
        if (fabs(want[i]) > max_ref) max_ref = fabs(want[i]);
        if (e > max_err || isnan(e)) {
            max_err = e;
            where = i;
        }
    }
    double bound = tol * (max_ref > 1e-6 ? max_ref : 1e-6);
    bool ok = finite && max_err <= bound;
    if (!ok)
        bk_test_fail(file, line,
                     "%s: max|err| %.3g at %zu (got %.9g, want %.9g) > %.3g = %.1g * max|ref| %.3g",
                     what, max_err, where, got[where], want[where], bound, tol, max_ref);
    else if (verbose())
        printf("    %s: max|err| %.3g, max|ref| %.3g, relative %.3g\n", what, max_err, max_ref,
               max_err / (max_ref > 1e-6 ? max_ref : 1e-6));
    return ok;
}

bool bk_test_close(const char *file, int line, const char *what, const float *got,
                   const float *want, size_t n, double tol) {
    double *g = malloc(n * sizeof *g), *w = malloc(n * sizeof *w);
    for (size_t i = 0; i < n; i++) {
        g[i] = got[i];
        w[i] = want[i];
    }
    bool ok = bk_test_close_d(file, line, what, g, w, n, tol);
    free(g);
    free(w);
    return ok;
}

bk_ctx *bk_test_ctx(void) {
    if (!case_ctx_live) {
        if (bk_ctx_init(&case_ctx) != BK_OK) {
            fprintf(stdout, "    cannot create a context: %s\n", bk_last_error());
            exit(1);
        }
        case_ctx.impl_policy = BK_IMPL_FAIL;
        /* Results are compared with fixed tolerances, so they must not depend on which
         * algorithm won a timing on this machine: direct convolutions unless the test (or
         * the caller) names a policy. Winograd's own parity runs with the policy set. */
        if (!getenv("BOKEHLAB_CONV_ALGO")) case_ctx.conv_policy = BK_CONV_DIRECT;
        case_ctx_live = true;
    }
    return &case_ctx;
}

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void bk_test_fill_uniform(float *p, size_t n, float lo, float hi, uint64_t seed) {
    uint64_t s = seed * 0x2545f4914f6cdd1dull + 1;
    for (size_t i = 0; i < n; i++)
        p[i] = lo + (hi - lo) * (float)((splitmix(&s) >> 40) * (1.0 / 16777216.0));
}

void bk_test_fill_away_from_zero(float *p, size_t n, float lo, float hi, uint64_t seed) {
    bk_test_fill_uniform(p, n, lo, hi, seed);
    uint64_t s = seed ^ 0x5bd1e995u;
    for (size_t i = 0; i < n; i++)
        if (splitmix(&s) & 1) p[i] = -p[i];
}

bk_tensor *bk_test_tensor(bk_ctx *ctx, bk_shape s, float lo, float hi, uint64_t seed) {
    size_t n = (size_t)bk_shape_numel(s);
    float *v = malloc(n * sizeof *v);
    bk_test_fill_uniform(v, n, lo, hi, seed);
    bk_tensor *t = bk_tensor_from_nchw(ctx, s, v);
    free(v);
    return t;
}

float *bk_test_nchw(const bk_tensor *t) {
    float *v = malloc((size_t)bk_numel(t) * sizeof *v);
    bk_tensor_to_nchw(t, v);
    return v;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int run_case(const bk_test *t) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        alarm(1200); /* a hung case fails instead of stalling CI */
        case_failures = 0;
        t->fn();
        if (case_ctx_live) bk_ctx_free(&case_ctx);
        fflush(stdout);
        exit(case_failures ? 1 : 0); /* exit, not _exit: LeakSanitizer checks at exit */
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status)) {
        printf("    killed by signal %d%s\n", WTERMSIG(status),
               WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
        return 1;
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

int bk_test_main(int argc, char **argv, const bk_test *tests, int n) {
    const char *filter = argc > 1 ? argv[1] : NULL;
    int passed = 0, failed = 0;
    for (int i = 0; i < n; i++) {
        if (filter && !strstr(tests[i].name, filter)) continue;
        double t0 = now();
        int bad = run_case(&tests[i]);
        if (bad) {
            printf("FAIL %s\n", tests[i].name);
            failed++;
        } else {
            printf("ok   %s (%.2f s)\n", tests[i].name, now() - t0);
            passed++;
        }
        fflush(stdout);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

char *bk_test_tmpdir(void) {
    char *d = strdup("/tmp/bk_test_XXXXXX");
    if (!d || !mkdtemp(d)) {
        printf("    mkdtemp: %s\n", strerror(errno));
        exit(1);
    }
    return d;
}

static int remove_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

void bk_test_remove_tmpdir(char *d) {
    nftw(d, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(d);
}

double bk_test_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

void bk_test_sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

char *bk_test_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0, got;
    char *buf = malloc(cap + 1);
    BK_CHECK(buf, "out of memory reading %s", path);
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            buf = realloc(buf, (cap *= 2) + 1);
            BK_CHECK(buf, "out of memory reading %s", path);
        }
    }
    fclose(f);
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}
