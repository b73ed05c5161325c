/* faults.h — runs a program with some of its system calls made to fail (the fault tests).
 *
 * The program runs under a seccomp filter that stops it at every write (write, pwrite64,
 * writev, pwritev, pwritev2), fsync, fdatasync, rename (rename, renameat, renameat2) and close,
 * and hands the call to this process (SECCOMP_RET_USER_NOTIF; Linux 5.5 or later). Here the
 * call's file is found (/proc/TID/fd/N, or a rename's two names read from the program's memory)
 * and matched against the rules: a call a rule fails returns that rule's errno and the kernel
 * never runs it; every other call runs as usual. So the failures are real system-call failures,
 * whichever library makes the call (stdio, HDF5, libpng, libjpeg) and whatever the user's
 * privileges (root ignores file permissions, a full disk does not), and nothing is linked or
 * preloaded into the program: it runs the same under the sanitizers.
 *
 * A rule, once it has failed a call, fails every later matching call too: a full disk stays
 * full, a broken device stays broken.
 */
#ifndef BK_TEST_FAULTS_H
#define BK_TEST_FAULTS_H

#include <stdbool.h>

typedef enum bk_fault_call {
    BK_FAULT_WRITE,  /* write, pwrite64, writev, pwritev, pwritev2 */
    BK_FAULT_FSYNC,  /* fsync, fdatasync */
    BK_FAULT_RENAME, /* rename, renameat, renameat2 (either name) */
    BK_FAULT_CLOSE,
} bk_fault_call;

typedef struct bk_fault {
    bk_fault_call call;
    const char *path; /* the call's file name contains this */
    long long after;  /* WRITE: bytes the matching files take before the first failure (the call
                       * that would pass this fails, writing nothing); the others: matching calls
                       * that succeed before the first failure */
    int error;        /* ENOSPC, EIO, ... */
    /* results */
    int matched, failed;   /* matching calls, and those made to fail */
    long long written;     /* bytes the matching calls that succeeded wrote */
    char first_failed[512]; /* the file of the first failed call */
} bk_fault;

/* Runs argv (argv[0] a path; NULL-terminated) with stdout and stderr into the files `out` and
 * `err`, under the n rules (none: no filter at all). Waits up to `seconds`, then kills it.
 * Returns the wait status, or -1 (with the reason printed) if it could not be run or timed
 * out. */
int bk_fault_run(const char *const *argv, const char *out, const char *err, bk_fault *rules, int n, double seconds);

#endif
