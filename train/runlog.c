/* runlog.c — see runlog.h. */
#include "train/runlog.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/files.h"

bk_status bk_runlog_trim(const char *path, int64_t step, int *dropped) {
    *dropped = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return errno == ENOENT ? BK_OK : bk_fail(BK_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *text = NULL;
    size_t len = 0, cap = 0, got;
    do {
        if (len + 65536 > cap) {
            char *grown = realloc(text, cap = 2 * cap + 65536);
            BK_CHECK(grown, "out of memory");
            text = grown;
        }
        got = fread(text + len, 1, cap - len, f);
        len += got;
    } while (got > 0);
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        free(text);
        return bk_fail(BK_ERR_IO, "%s: cannot read", path);
    }
    /* keep, in place: whole lines that are the header or a row of a step up to `step` */
    size_t keep = 0;
    for (size_t at = 0; at < len;) {
        const char *line = text + at, *nl = memchr(line, '\n', len - at);
        if (!nl) { /* cut short */
            ++*dropped;
            break;
        }
        size_t n = (size_t)(nl - line) + 1;
        char *end;
        long long s = strtoll(line, &end, 10);
        if (end != line && *end == ',' && s > step) {
            ++*dropped;
        } else {
            memmove(text + keep, line, n);
            keep += n;
        }
        at += n;
    }
    bk_status st = *dropped ? bk_write_file_atomic(path, text, keep) : BK_OK;
    free(text);
    return st;
}
