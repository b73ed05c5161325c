/* h5.h — the HDF5 files bokehlab reads and writes: float32 datasets with checksums, and
 * attributes on the root.
 *
 * Files are written in HDF5's newest format, where every piece of metadata (superblock, object
 * headers holding the attributes, group and chunk indexes) carries a checksum, and datasets are
 * chunked with the Fletcher32 checksum filter: a flipped bit anywhere is detected when the file
 * is read (SPEC §6; docs/GUARANTEES.md). Only that format is read: a file in HDF5's old format
 * (superblock version 0 or 1, or any version-1 object header on the way to what is read) is
 * refused before HDF5 decodes its unchecksummed metadata. HDF5 builds a file being written in memory; on
 * bk_h5_close(..., commit = true) it is copied to "<path>.tmp", flushed to disk (fsync) and
 * renamed into place: a crash, a kill or a failed write leaves the previous file intact. (HDF5
 * itself never meets a write error: HDF5 1.10 cannot close a file whose flush failed, and then
 * crashes when the program exits.) HDF5's own error printing is switched off; every
 * failure returns a bk_status with a message naming the file and the object, and the cause: the
 * operating system's error for a failed write ("No space left on device"), HDF5's for a damaged
 * file ("incorrect metadata checksum ..."). HDF5 (the Debian serial build) is not thread-safe:
 * use it from one thread.
 */
#ifndef BK_H5_H
#define BK_H5_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

enum { BK_H5_MAX_DIMS = 8 };
/* The most values a dataset read here may hold (8 GiB of float32): a larger one is a damaged
 * file, refused before anything is allocated. */
#define BK_H5_MAX_VALUES ((uint64_t)1 << 31)

typedef struct bk_h5 {
    int64_t file;      /* hid_t */
    bool writing;
    bool old_format_ok; /* opened by bk_h5_open_data: object headers are not checked */
    void *image;       /* writing: the file HDF5 builds in memory */
    int out;           /* writing: "<path>.tmp" */
    char path[1024];   /* the final path */
    char tmp[1040];    /* where a file being written lives until committed */
} bk_h5;

/* Opens a checkpoint or weight file for reading: the newest format only (see above). */
bk_status bk_h5_open(bk_h5 *f, const char *path);
/* Opens a file of arrays the user hands in (forward's --input, --mask, --target), which h5py
 * writes in HDF5's old format by default: both formats are read. */
bk_status bk_h5_open_data(bk_h5 *f, const char *path);
/* Opens an HDF5 file held in memory (`size` bytes at `data`, copied), read-only; `name`
 * stands for the file in messages. */
bk_status bk_h5_open_image(bk_h5 *f, const void *data, size_t size, const char *name);
/* Starts writing `path`: "<path>.tmp" is created at once (so a missing directory is reported
 * here), the content is built in memory. */
bk_status bk_h5_create(bk_h5 *f, const char *path);
/* Closes. A file being written is, if commit, copied to "<path>.tmp", synced to disk and
 * renamed into place (then its directory synced); if not, or if any of that fails, the
 * temporary file is removed and the previous file under `path` is untouched. A failure names
 * the file and the operating system's error; errors while discarding are not reported. */
bk_status bk_h5_close(bk_h5 *f, bool commit);

/* Whether object `name` exists. False only when the file says it does not: a lookup that fails
 * (a damaged file) answers true, so the caller's read reports the damage instead of a
 * misleading "missing". */
bool bk_h5_exists(const bk_h5 *f, const char *name);
/* Reads float dataset `name` (IEEE float32 or float64 in the file): its rank and dims, and its
 * values (malloc'd, C order). */
bk_status bk_h5_read_f32(const bk_h5 *f, const char *name, int *ndim, int64_t *dims, float **data);
/* Reads into caller memory, which must hold exactly the given shape; a dataset of another
 * shape is refused before anything is read. */
bk_status bk_h5_read_f32_into(const bk_h5 *f, const char *name, int ndim, const int64_t *dims,
                              float *data);
/* Writes float dataset `name` (intermediate groups created), chunked, with Fletcher32. */
bk_status bk_h5_write_f32(bk_h5 *f, const char *name, int ndim, const int64_t *dims,
                          const float *data);

/* Names of the datasets directly under `group` ("/params"), in name order (strcmp); *names is
 * malloc'd (free each and the array). 0 names if the group does not exist. */
bk_status bk_h5_list(const bk_h5 *f, const char *group, char ***names, int *count);

bk_status bk_h5_set_attr_str(bk_h5 *f, const char *name, const char *value);
bk_status bk_h5_set_attr_int(bk_h5 *f, const char *name, int64_t value);
/* Reads a root attribute holding one value; a string must fit in len-1 characters. BK_ERR_FORMAT
 * if it is absent, of another type, an array or too long, BK_ERR_IO if the file is too damaged
 * to read it. */
bk_status bk_h5_get_attr_str(const bk_h5 *f, const char *name, char *value, size_t len);
bk_status bk_h5_get_attr_int(const bk_h5 *f, const char *name, int64_t *value);
/* Like bk_h5_exists: false only when the file says the attribute is absent. */
bool bk_h5_has_attr(const bk_h5 *f, const char *name);

#endif
