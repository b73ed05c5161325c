/* files.h — file-system helpers shared by the tools. */
#ifndef BK_FILES_H
#define BK_FILES_H

#include "core/error.h"

/* Creates directory `path` and any missing parents (mkdir -p, mode 0755); an existing
 * directory is fine. The error names the path and the component that could not be made. */
bk_status bk_make_dirs(const char *path);

/* Replaces file `path` by `len` bytes at once: writes "<path>.tmp", flushes it to disk and
 * renames it into place, so the file holds either its previous or its new content, never a
 * part. The error names the file and gives the operating system's reason. */
bk_status bk_write_file_atomic(const char *path, const void *data, size_t len);

#endif
