/* error.c — the per-thread error message and the two ways to stop (see error.h). */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char last_error[1024];

bk_status bk_fail(bk_status s, const char *fmt, ...) {
    /* formatted aside first: a wrapping message may have bk_last_error() as an argument */
    char msg[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    memcpy(last_error, msg, sizeof msg);
    return s;
}

const char *bk_last_error(void) { return last_error; }

void bk_panic(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "bokehlab: internal error at %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

void bk_fatal_oom(const char *what, size_t requested, size_t held) {
    fflush(stdout);
    fprintf(stderr,
            "bokehlab: out of memory: %s needs %.1f MiB more while %.1f MiB are held; "
            "reduce the batch size or the image size\n",
            what, requested / 1048576.0, held / 1048576.0);
    exit(1);
}
