/* files.c — file-system helpers (see files.h). */
#include "core/files.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

bk_status bk_make_dirs(const char *path) {
    char buf[4096];
    if (!*path || strlen(path) >= sizeof buf)
        return bk_fail(BK_ERR_ARG, "\"%.200s\": not a usable directory name", path);
    strcpy(buf, path);
    for (char *p = buf + 1;; p++) {
        const char c = *p;
        if (c != '/' && c != '\0') continue;
        *p = '\0';
        struct stat st;
        if (mkdir(buf, 0755) != 0 && !(errno == EEXIST && stat(buf, &st) == 0 && S_ISDIR(st.st_mode)))
        {
            const char *why = errno == EEXIST ? "a file of that name exists" : strerror(errno);
            if (c == '\0') return bk_fail(BK_ERR_IO, "%s: cannot create the directory: %s", path, why);
            return bk_fail(BK_ERR_IO, "%s: cannot create the directory: %s: %s", path, buf, why);
        }
        if (c == '\0') return BK_OK;
        *p = c;
    }
}
