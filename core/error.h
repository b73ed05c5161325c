/* error.h — how bokehlab fails.
 *
 * Two kinds of failure, never mixed:
 *  - A programming mistake inside bokehlab (our own code passing a wrong shape, an impossible
 *    argument) stops at once with file:line and a message: BK_CHECK / bk_panic. Tests run each case
 *    in its own process, so a panic is reported as that case's failure.
 *  - Anything that depends on input (files, configs, images, checkpoints, sizes the user chose)
 *    returns a bk_status; the message, which names the file, key or index and says what to do, is
 *    kept per thread and read with bk_last_error().
 * Running out of memory is neither: bk_fatal_oom prints how much was asked and held, and exits(1).
 */
#ifndef BK_ERROR_H
#define BK_ERROR_H

#include <stddef.h>

typedef enum bk_status {
    BK_OK = 0,
    BK_ERR_IO,      /* a file could not be opened, read or written */
    BK_ERR_FORMAT,  /* a file exists but its content is not what was expected */
    BK_ERR_ARG,     /* an argument, option or configuration value is invalid */
    BK_ERR_SHAPE,   /* a tensor or image has a size the operation cannot take */
    BK_ERR_DNNL,    /* oneDNN refused a descriptor or failed to execute */
} bk_status;

/* Records a formatted message for the calling thread and returns `s`. */
bk_status bk_fail(bk_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The message of the last bk_fail on this thread ("" if none). */
const char *bk_last_error(void);

_Noreturn void bk_panic(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
_Noreturn void bk_fatal_oom(const char *what, size_t requested, size_t held);

#define BK_CHECK(cond, ...)                                 \
    do {                                                    \
        if (!(cond)) bk_panic(__FILE__, __LINE__, __VA_ARGS__); \
    } while (0)

#endif
