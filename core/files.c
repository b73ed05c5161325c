/* files.c — file-system helpers (see files.h). */
#include "core/files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

bk_status bk_write_file_atomic(const char *path, const void *data, size_t len) {
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return bk_fail(BK_ERR_ARG, "\"%.200s...\": path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return bk_fail(BK_ERR_IO, "%s: cannot create %s: %s", path, tmp, strerror(errno));
    const char *p = data;
    size_t left = len;
    int e = 0;
    while (left > 0 && !e) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) e = n < 0 ? errno : EIO;
        else p += n, left -= (size_t)n;
    }
    if (!e && fsync(fd) != 0) e = errno;
    if (close(fd) != 0 && !e) e = errno;
    if (!e && rename(tmp, path) != 0) e = errno;
    if (e) {
        unlink(tmp);
        return bk_fail(BK_ERR_IO, "%s: write failed: %s", path, strerror(e));
    }
    return BK_OK;
}
