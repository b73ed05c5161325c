/* files.h — file-system helpers shared by the tools. */
#ifndef BK_FILES_H
#define BK_FILES_H

#include "core/error.h"

/* Creates directory `path` and any missing parents (mkdir -p, mode 0755); an existing
 * directory is fine. The error names the path and the component that could not be made. */
bk_status bk_make_dirs(const char *path);

#endif
