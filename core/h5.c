/* h5.c — HDF5 helpers (see h5.h). */
#include "core/h5.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <hdf5_hl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

/* ---------------------------------------------------------------- why HDF5 failed */

typedef struct h5_why {
    char os[160];    /* the operating system's error of a failed read or write, if any */
    char inner[240]; /* HDF5's most specific message */
} h5_why;

static herr_t why_visit(unsigned n, const H5E_error2_t *e, void *data) {
    h5_why *w = data;
    if (!e->desc) return 0;
    if (n == 0) snprintf(w->inner, sizeof w->inner, "%s", e->desc);
    /* the sec2 driver reports "... errno = 28, error message = 'No space left on device', ..." */
    const char *m = strstr(e->desc, "error message = '");
    if (m && !w->os[0]) {
        m += strlen("error message = '");
        const char *end = strchr(m, '\'');
        snprintf(w->os, sizeof w->os, "%.*s", end ? (int)(end - m) : (int)strlen(m), m);
    }
    return 0;
}

/* The cause of the HDF5 call that just failed: the operating system's error when a read or a
 * write failed ("No space left on device"), else HDF5's most specific message ("incorrect
 * metadata checksum after all read attempts", "truncated file: eof = ..."). HDF5 clears its
 * error stack at the start of every API call, so this must come right after the failing one. */
static const char *h5_cause(char *buf, size_t len) {
    h5_why w = {{0}, {0}};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, why_visit, &w);
    H5Eclear2(H5E_DEFAULT);
    snprintf(buf, len, "%s", w.os[0] ? w.os : w.inner[0] ? w.inner : "HDF5 gave no reason");
    return buf;
}

/* Whether every piece of metadata HDF5 will decode for object `name` is checksummed: the
 * object headers of `name` and of each group on its path are version 2 (the newest format, as
 * bokehlab and scripts/ write). A version-1 header has no checksum and no signature: HDF5 decodes
 * whatever bytes it finds (a flipped bit in a version-2 header's signature turns it into one),
 * and HDF5 1.10 reads past its own buffers decoding damaged ones. */
static bk_status checked_headers(const bk_h5 *f, const char *name) {
    if (f->old_format_ok) return BK_OK;
    char buf[1024], why[256];
    snprintf(buf, sizeof buf, "%s", name);
    for (char *p = buf + 1;; p++) {
        char c = *p;
        if (c != '/' && c != '\0') continue;
        *p = '\0';
        const char *obj = buf[1] ? buf : "/";
        H5O_info_t info;
        if (H5Oget_info_by_name2((hid_t)f->file, obj, &info, H5O_INFO_BASIC | H5O_INFO_HDR, H5P_DEFAULT) < 0)
            return bk_fail(BK_ERR_FORMAT, "%s: %s cannot be opened, the file is damaged (%s)", f->path, obj,
                           h5_cause(why, sizeof why));
        if (info.hdr.version < 2)
            return bk_fail(BK_ERR_FORMAT, "%s: %s has a version-%u HDF5 object header, which carries no checksum "
                           "(a damaged file, or one not written by bokehlab or scripts/)", f->path, obj,
                           info.hdr.version);
        if (c == '\0') return BK_OK;
        *p = c;
    }
}

/* The version of the superblock in the first `n` bytes of a file: its signature is at 0 or at
 * 512, 1024, 2048, ... (after a user block). -1 if none is there. */
static int superblock_version(const unsigned char *p, size_t n) {
    static const unsigned char sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    for (size_t at = 0; at + 9 <= n; at = at ? 2 * at : 512)
        if (memcmp(p + at, sig, 8) == 0) return p[at + 8];
    return -1;
}

/* Only files in HDF5's newest format are read (superblock version 2 or 3, as bokehlab and
 * scripts/ write): there the superblock and every object header carry checksums, so damage is
 * refused before HDF5 decodes it. The old format's metadata has none, and HDF5 1.10 reads past
 * its own buffers, or allocates what a damaged header claims, while decoding it
 * (tests/fuzz/libhdf5/): such a file is refused before HDF5 opens it. */
static bk_status newest_format(const char *name, int version) {
    if (version < 0) return bk_fail(BK_ERR_FORMAT, "%s: not an HDF5 file (or truncated)", name);
    if (version < 2)
        return bk_fail(BK_ERR_FORMAT, "%s: written in HDF5's old format (superblock version %d), whose metadata "
                       "carries no checksums: bokehlab reads only the newest format, which it and scripts/ write "
                       "(write the file again with a current bokehlab or converter script)", name, version);
    return BK_OK;
}

/* After HDF5 opened a file for reading: the root's object header is checked too. On failure
 * the file is closed. */
static bk_status opened_for_reading(bk_h5 *f, hid_t id) {
    f->file = id;
    bk_status st = checked_headers(f, "/");
    if (st != BK_OK) {
        H5Fclose(id);
        f->file = 0;
    }
    return st;
}

static bk_status open_file(bk_h5 *f, const char *path, bool newest_only) {
    memset(f, 0, sizeof *f);
    f->out = -1;
    quiet();
    snprintf(f->path, sizeof f->path, "%s", path);
    if (access(path, R_OK) != 0)
        return bk_fail(BK_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char why[256];
    int fd = open(path, O_RDONLY);
    if (fd < 0) return bk_fail(BK_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char head[2048 + 9];
    ssize_t got = pread(fd, head, sizeof head, 0);
    close(fd);
    int version = superblock_version(head, got > 0 ? (size_t)got : 0);
    bk_status st = newest_only || version < 0 ? newest_format(path, version) : BK_OK;
    if (st != BK_OK) return st;
    hid_t id = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (id < 0) {
        h5_cause(why, sizeof why);
        unsigned long long eof, want;
        if (sscanf(why, "truncated file: eof = %llu, sblock->base_addr = %*u, stored_eof = %llu", &eof, &want) == 2)
            return bk_fail(BK_ERR_FORMAT, "%s: the file is truncated: %llu of its %llu bytes (an interrupted copy?)",
                           path, eof, want);
        return bk_fail(BK_ERR_FORMAT, "%s: HDF5 cannot open it, the file is damaged or truncated (%s)", path, why);
    }
    if (!newest_only) {
        f->file = id;
        f->old_format_ok = true;
        return BK_OK;
    }
    return opened_for_reading(f, id);
}

bk_status bk_h5_open(bk_h5 *f, const char *path) { return open_file(f, path, true); }

bk_status bk_h5_open_data(bk_h5 *f, const char *path) { return open_file(f, path, false); }

bk_status bk_h5_open_image(bk_h5 *f, const void *data, size_t size, const char *name) {
    memset(f, 0, sizeof *f);
    f->out = -1;
    quiet();
    snprintf(f->path, sizeof f->path, "%s", name);
    if (size == 0) return bk_fail(BK_ERR_FORMAT, "%s: not an HDF5 file (0 bytes)", name);
    bk_status st = newest_format(name, superblock_version(data, size < 2048 + 9 ? size : 2048 + 9));
    if (st != BK_OK) return st;
    /* HDF5 copies the image (flags 0) and opens the copy read-only */
    hid_t id = H5LTopen_file_image((void *)data, size, 0);
    if (id < 0) {
        char why[256];
        return bk_fail(BK_ERR_FORMAT, "%s: not an HDF5 file, or damaged or truncated (%s)", name,
                       h5_cause(why, sizeof why));
    }
    return opened_for_reading(f, id);
}

/* ---------------------------------------------------------------- writing */

/* The memory of a file being written: HDF5's core (in-memory) driver allocates, grows and frees
 * it through these callbacks (which act as malloc, realloc and free), except that at the
 * file's close the buffer is kept for bk_h5_close to write out. So HDF5 never meets a write
 * error: HDF5 1.10 cannot close a file whose flush failed (H5Fclose fails and leaves a
 * half-closed file, on which the library crashes when the program exits). */
typedef struct h5_image {
    unsigned char *p; /* the file's buffer */
    size_t size, cap;
    bool handed_over; /* HDF5 closed the file: p and size are ours */
} h5_image;

static void *image_malloc(size_t size, H5FD_file_image_op_t op, void *udata) {
    (void)op;
    h5_image *m = udata;
    if (m->p && !m->handed_over) return malloc(size ? size : 1); /* another buffer */
    free(m->p);
    m->cap = size > ((size_t)1 << 20) ? size : (size_t)1 << 20;
    m->size = size;
    m->handed_over = false;
    m->p = malloc(m->cap);
    return m->p;
}

static void *image_realloc(void *ptr, size_t size, H5FD_file_image_op_t op, void *udata) {
    h5_image *m = udata;
    if (!ptr) return image_malloc(size, op, udata);
    if (ptr != m->p) return realloc(ptr, size);
    if (size > m->cap) { /* geometric growth: the core driver grows the file 1 MB at a time */
        size_t cap = m->cap;
        while (cap < size) cap += cap / 2;
        unsigned char *grown = realloc(m->p, cap);
        if (!grown) return NULL;
        m->p = grown, m->cap = cap;
    }
    m->size = size;
    return m->p;
}

static void *image_memcpy(void *dest, const void *src, size_t size, H5FD_file_image_op_t op, void *udata) {
    (void)op, (void)udata;
    return memcpy(dest, src, size);
}

static herr_t image_free(void *ptr, H5FD_file_image_op_t op, void *udata) {
    h5_image *m = udata;
    if (ptr && ptr == m->p && op == H5FD_FILE_IMAGE_OP_FILE_CLOSE) {
        m->handed_over = true; /* kept for bk_h5_close */
        return 0;
    }
    if (ptr && ptr == m->p) m->p = NULL, m->size = m->cap = 0;
    free(ptr);
    return 0;
}

static void *udata_copy(void *udata) { return udata; }
static herr_t udata_free(void *udata) {
    (void)udata;
    return 0;
}

bk_status bk_h5_create(bk_h5 *f, const char *path) {
    memset(f, 0, sizeof *f);
    f->out = -1;
    quiet();
    snprintf(f->path, sizeof f->path, "%s", path);
    snprintf(f->tmp, sizeof f->tmp, "%s.tmp", path);
    f->out = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (f->out < 0) return bk_fail(BK_ERR_IO, "%s: cannot create %s: %s", path, f->tmp, strerror(errno));
    h5_image *m = calloc(1, sizeof *m);
    BK_CHECK(m, "out of memory");
    /* The newest file format: every piece of metadata (superblock, object headers with the
     * attributes, group and chunk indexes) carries a checksum, as the data does (Fletcher32), so
     * damage anywhere is detected when the file is read (HDF5 1.10 or later reads it). */
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5FD_file_image_callbacks_t cb = {image_malloc, image_memcpy, image_realloc, image_free, udata_copy, udata_free, m};
    H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
    H5Pset_fapl_core(fapl, (size_t)1 << 20, 0);
    H5Pset_file_image_callbacks(fapl, &cb);
    /* named after the temporary file, which exists and is empty: the core driver reads no
     * previous content from disk, and writes nothing there (no backing store) */
    hid_t id = H5Fcreate(f->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    char why[256];
    if (id < 0) h5_cause(why, sizeof why);
    H5Pclose(fapl);
    if (id < 0) {
        free(m->p);
        free(m);
        close(f->out);
        unlink(f->tmp);
        return bk_fail(BK_ERR_IO, "%s: HDF5 cannot start the file: %s", path, why);
    }
    f->file = id;
    f->image = m;
    f->writing = true;
    return BK_OK;
}

/* The file's length as its superblock states it (HDF5's newest format: superblock version 2
 * or 3, 8-byte addresses; the end-of-file address after 12 bytes of signature, version and
 * sizes and two addresses). The core driver's buffer is longer: it grows by whole increments. */
static size_t image_length(const h5_image *m) {
    const unsigned char *p = m->p;
    if (m->size < 48 || memcmp(p, "\211HDF\r\n\032\n", 8) != 0 || (p[8] != 2 && p[8] != 3) || p[9] != 8)
        return m->size;
    uint64_t base = 0, eof = 0;
    for (int i = 7; i >= 0; i--) {
        base = base << 8 | p[12 + i];
        eof = eof << 8 | p[28 + i];
    }
    return eof > 0 && base + eof <= m->size ? (size_t)(base + eof) : m->size;
}

/* Writes n bytes to fd, 4 MB per call; false with errno on failure. */
static bool write_all(int fd, const unsigned char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n < ((size_t)4 << 20) ? n : (size_t)4 << 20);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            if (w == 0) errno = EIO;
            return false;
        }
        p += w, n -= (size_t)w;
    }
    return true;
}

bk_status bk_h5_close(bk_h5 *f, bool commit) {
    if (f->file <= 0) return BK_OK;
    bk_status st = BK_OK;
    char why[256];
    commit = commit && f->writing;
    if (H5Fclose((hid_t)f->file) < 0 && commit)
        st = bk_fail(BK_ERR_IO, "%s: HDF5 cannot finish the file: %s", f->path, h5_cause(why, sizeof why));
    f->file = 0;
    if (!f->writing) return st;
    h5_image *m = f->image;
    if (commit && st == BK_OK && !m->handed_over)
        st = bk_fail(BK_ERR_IO, "%s: HDF5 did not hand the file over", f->path);
    if (commit && st == BK_OK && !write_all(f->out, m->p, image_length(m)))
        st = bk_fail(BK_ERR_IO, "%s: writing %s failed: %s", f->path, f->tmp, strerror(errno));
    if (m->handed_over) {
        free(m->p);
        free(m);
    } /* else HDF5 did not close the file and may still call the callbacks with m: it is left */
    f->image = NULL;
    if (commit && st == BK_OK && fsync(f->out) != 0)
        st = bk_fail(BK_ERR_IO, "%s: cannot flush %s to disk: %s", f->path, f->tmp, strerror(errno));
    if (close(f->out) != 0 && commit && st == BK_OK)
        st = bk_fail(BK_ERR_IO, "%s: writing %s failed: %s", f->path, f->tmp, strerror(errno));
    f->out = -1;
    if (commit && st == BK_OK && rename(f->tmp, f->path) != 0)
        st = bk_fail(BK_ERR_IO, "%s: cannot move the written file into place: %s", f->path, strerror(errno));
    if (!commit || st != BK_OK) {
        unlink(f->tmp);
        return st;
    }
    /* the rename itself reaches the disk with the directory; the new file is already in place
     * (and complete), so a failure here is not reported */
    char dir[sizeof f->path];
    snprintf(dir, sizeof dir, "%s", f->path);
    int d = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d >= 0) {
        fsync(d);
        close(d);
    }
    return BK_OK;
}

bool bk_h5_exists(const bk_h5 *f, const char *name) {
    quiet();
    /* check each path component: H5Lexists fails on a missing intermediate group */
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", name);
    for (char *p = buf + 1; ; p++) {
        char c = *p;
        if (c == '/' || c == '\0') {
            *p = '\0';
            htri_t e = H5Lexists((hid_t)f->file, buf, H5P_DEFAULT);
            if (e == 0) return false;
            if (e < 0) return true; /* damaged: the caller's open reports it */
            if (c == '\0') return true;
            *p = c;
        }
    }
}

/* Whether a dataset's type is an IEEE float of 32 or 64 bits, of either byte order. */
static bool ieee_float(hid_t type) {
    const hid_t ieee[] = {H5T_IEEE_F32LE, H5T_IEEE_F32BE, H5T_IEEE_F64LE, H5T_IEEE_F64BE};
    for (int i = 0; i < 4; i++)
        if (H5Tequal(type, ieee[i]) > 0) return true;
    return false;
}

/* Whether the chunks of dataset d (if chunked) are what HDF5 writes, for elements of
 * `type_size` bytes: libhdf5 1.10 trusts a damaged file's chunk layout and reads past its
 * chunk buffer when a chunk is declared larger than a fixed extent, or when a stored chunk is
 * smaller than the chunk (a 132-byte chunk read as 3456 bytes). Stored sizes are checked when
 * the only filter is Fletcher32 (bokehlab's and scripts/' files): compressed chunks have no
 * size to expect. */
static bool chunks_fit(hid_t d, hid_t space, int nd, const hsize_t *dims, const hsize_t *maxd, size_t type_size) {
    hid_t dcpl = H5Dget_create_plist(d);
    if (dcpl < 0) return false;
    if (H5Pget_layout(dcpl) != H5D_CHUNKED) {
        H5Pclose(dcpl);
        return true;
    }
    hsize_t chunk[BK_H5_MAX_DIMS];
    bool ok = H5Pget_chunk(dcpl, BK_H5_MAX_DIMS, chunk) == nd;
    uint64_t chunk_bytes = type_size;
    for (int i = 0; i < nd && ok; i++) {
        ok = chunk[i] > 0 && (maxd[i] == H5S_UNLIMITED || (chunk[i] <= maxd[i] && dims[i] <= maxd[i])) &&
             chunk[i] <= ((uint64_t)1 << 40) / chunk_bytes;
        if (ok) chunk_bytes *= chunk[i];
    }
    int nfilters = H5Pget_nfilters(dcpl), fletcher = -1;
    bool sizes_known = nfilters >= 0;
    for (int i = 0; i < nfilters; i++) {
        unsigned flags;
        size_t ncd = 0;
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, NULL, 0, NULL, NULL);
        if (id == H5Z_FILTER_FLETCHER32) fletcher = i;
        else sizes_known = false;
    }
    H5Pclose(dcpl);
    hsize_t nchunks = 0;
    if (ok && sizes_known) {
        ok = H5Dget_num_chunks(d, space, &nchunks) >= 0 && nchunks <= ((hsize_t)1 << 16);
        for (hsize_t c = 0; c < nchunks && ok; c++) {
            unsigned mask = 0;
            haddr_t addr;
            hsize_t size = 0;
            ok = H5Dget_chunk_info(d, space, c, NULL, &mask, &addr, &size) >= 0 &&
                 size == chunk_bytes + (fletcher >= 0 && !(mask >> fletcher & 1u) ? 4 : 0);
        }
    }
    return ok;
}

/* Opens float dataset `name` and checks what bokehlab reads before anything is allocated: an
 * IEEE float of 32 or 64 bits (libhdf5 1.10 trusts the size a damaged file gives a type: a
 * 65531-byte "float" made it read past its chunk buffer), chunks as HDF5 writes them
 * (chunks_fit), at most BK_H5_MAX_DIMS dims and BK_H5_MAX_VALUES values. On success *d is open and the rank, dims
 * and count are set. */
static bk_status open_f32(const bk_h5 *f, const char *name, hid_t *d, int *ndim, int64_t *dims, size_t *n) {
    if (!bk_h5_exists(f, name)) return bk_fail(BK_ERR_FORMAT, "%s: no dataset %s", f->path, name);
    char why[256];
    bk_status hs = checked_headers(f, name);
    if (hs != BK_OK) return hs;
    H5O_info_t info;
    if (H5Oget_info_by_name2((hid_t)f->file, name, &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0)
        return bk_fail(BK_ERR_FORMAT, "%s: %s cannot be opened, the file is damaged (%s)", f->path, name,
                       h5_cause(why, sizeof why));
    if (info.type != H5O_TYPE_DATASET) return bk_fail(BK_ERR_FORMAT, "%s: %s is not a dataset", f->path, name);
    *d = H5Dopen2((hid_t)f->file, name, H5P_DEFAULT);
    if (*d < 0)
        return bk_fail(BK_ERR_FORMAT, "%s: %s cannot be opened, the file is damaged (%s)", f->path, name,
                       h5_cause(why, sizeof why));
    bk_status st = BK_OK;
    hid_t type = H5Dget_type(*d), space = H5Dget_space(*d);
    int nd = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    if (type < 0 || space < 0) {
        st = bk_fail(BK_ERR_FORMAT, "%s: %s cannot be opened, the file is damaged (%s)", f->path, name,
                     h5_cause(why, sizeof why));
    } else if (H5Tget_class(type) != H5T_FLOAT) {
        st = bk_fail(BK_ERR_FORMAT, "%s: %s is not a float dataset", f->path, name);
    } else if (!ieee_float(type)) {
        st = bk_fail(BK_ERR_FORMAT, "%s: %s is not a 32- or 64-bit IEEE float dataset (a float of %zu bytes; a "
                     "damaged file?)", f->path, name, H5Tget_size(type));
    } else if (nd < 0 || nd > BK_H5_MAX_DIMS) {
        st = bk_fail(BK_ERR_FORMAT, "%s: %s has an unsupported rank", f->path, name);
    } else {
        hsize_t hd[BK_H5_MAX_DIMS], maxd[BK_H5_MAX_DIMS];
        H5Sget_simple_extent_dims(space, hd, maxd);
        bool bad_chunks = !chunks_fit(*d, space, nd, hd, maxd, H5Tget_size(type));
        uint64_t count = 1;
        bool too_many = false;
        for (int i = 0; i < nd; i++) {
            dims[i] = (int64_t)hd[i];
            too_many |= hd[i] > BK_H5_MAX_VALUES || (hd[i] && count > BK_H5_MAX_VALUES / hd[i]);
            if (!too_many) count *= hd[i];
        }
        if (bad_chunks)
            st = bk_fail(BK_ERR_FORMAT, "%s: %s has chunks that do not match its shape and type (a damaged file?)",
                         f->path, name);
        else if (too_many)
            st = bk_fail(BK_ERR_FORMAT, "%s: %s has more than %llu values (a damaged file?)", f->path, name,
                         (unsigned long long)BK_H5_MAX_VALUES);
        *ndim = nd;
        *n = (size_t)count;
    }
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    if (st != BK_OK) H5Dclose(*d);
    return st;
}

bk_status bk_h5_read_f32(const bk_h5 *f, const char *name, int *ndim, int64_t *dims, float **data) {
    *data = NULL;
    hid_t d;
    size_t n;
    char why[256];
    bk_status st = open_f32(f, name, &d, ndim, dims, &n);
    if (st != BK_OK) return st;
    *data = malloc((n ? n : 1) * sizeof **data);
    if (!*data) st = bk_fail(BK_ERR_FORMAT, "%s: %s: out of memory for %zu values", f->path, name, n);
    else if (n && H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, *data) < 0)
        st = bk_fail(BK_ERR_FORMAT, "%s: %s cannot be read: checksum mismatch or damaged file (%s)", f->path, name,
                     h5_cause(why, sizeof why));
    H5Dclose(d);
    if (st != BK_OK) {
        free(*data);
        *data = NULL;
    }
    return st;
}

static void dims_str(int ndim, const int64_t *dims, char *buf, size_t len) {
    size_t k = 0;
    buf[0] = '\0';
    for (int i = 0; i < ndim && k < len; i++)
        k += (size_t)snprintf(buf + k, len - k, "%s%lld", i ? "x" : "", (long long)dims[i]);
    if (ndim == 0) snprintf(buf, len, "scalar");
}

bk_status bk_h5_read_f32_into(const bk_h5 *f, const char *name, int ndim, const int64_t *dims,
                              float *data) {
    int got_nd;
    int64_t got[BK_H5_MAX_DIMS];
    hid_t d;
    size_t n;
    bk_status st = open_f32(f, name, &d, &got_nd, got, &n);
    if (st != BK_OK) return st;
    bool same = got_nd == ndim;
    for (int i = 0; same && i < ndim; i++) same = got[i] == dims[i];
    if (!same) {
        char a[128], b[128];
        dims_str(got_nd, got, a, sizeof a);
        dims_str(ndim, dims, b, sizeof b);
        st = bk_fail(BK_ERR_SHAPE, "%s: %s has shape %s, expected %s", f->path, name, a, b);
    } else if (n && H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
        char why[256];
        st = bk_fail(BK_ERR_FORMAT, "%s: %s cannot be read: checksum mismatch or damaged file (%s)", f->path, name,
                     h5_cause(why, sizeof why));
    }
    H5Dclose(d);
    return st;
}

bk_status bk_h5_write_f32(bk_h5 *f, const char *name, int ndim, const int64_t *dims,
                          const float *data) {
    BK_CHECK(f->writing, "%s: not open for writing", f->path);
    BK_CHECK(ndim >= 1 && ndim <= BK_H5_MAX_DIMS, "dataset rank %d", ndim);
    hsize_t hd[BK_H5_MAX_DIMS], chunk[BK_H5_MAX_DIMS] = {0};
    size_t inner = 1;
    for (int i = 0; i < ndim; i++) hd[i] = (hsize_t)dims[i];
    /* chunks of at most ~1M values: whole trailing dimensions, a slice of the first */
    for (int i = ndim - 1; i >= 0; i--) {
        if (i > 0) {
            chunk[i] = hd[i];
            inner *= hd[i];
        } else {
            size_t rows = inner ? (1u << 20) / inner : 1;
            chunk[0] = rows < 1 ? 1 : rows > hd[0] ? hd[0] : rows;
        }
    }
    for (int i = 0; i < ndim; i++)
        if (chunk[i] == 0) chunk[i] = 1;
    hid_t space = H5Screate_simple(ndim, hd, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE), lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    bool empty = false;
    for (int i = 0; i < ndim; i++) empty |= hd[i] == 0;
    if (!empty) {
        H5Pset_chunk(dcpl, ndim, chunk);
        H5Pset_fletcher32(dcpl);
    }
    hid_t d = H5Dcreate2((hid_t)f->file, name, H5T_IEEE_F32LE, space, lcpl, dcpl, H5P_DEFAULT);
    bk_status st = BK_OK;
    char why[256];
    if (d < 0) st = bk_fail(BK_ERR_IO, "%s: cannot create dataset %s: %s", f->path, name, h5_cause(why, sizeof why));
    else if (!empty && H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        st = bk_fail(BK_ERR_IO, "%s: writing %s failed: %s", f->path, name, h5_cause(why, sizeof why));
    /* closing writes the dataset's last chunks: a failure there loses data too */
    if (d >= 0 && H5Dclose(d) < 0 && st == BK_OK)
        st = bk_fail(BK_ERR_IO, "%s: writing %s failed: %s", f->path, name, h5_cause(why, sizeof why));
    H5Pclose(dcpl);
    H5Pclose(lcpl);
    H5Sclose(space);
    return st;
}

typedef struct list_state {
    char **names;
    int count, cap;
} list_state;

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static herr_t collect(hid_t group, const char *name, const H5L_info_t *info, void *arg) {
    (void)group;
    (void)info;
    list_state *s = arg;
    if (s->count == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        char **grown = realloc(s->names, (size_t)s->cap * sizeof *grown);
        if (!grown) return -1;
        s->names = grown;
    }
    s->names[s->count] = strdup(name);
    if (!s->names[s->count]) return -1;
    s->count++;
    return 0;
}

bk_status bk_h5_list(const bk_h5 *f, const char *group, char ***names, int *count) {
    *names = NULL;
    *count = 0;
    if (!bk_h5_exists(f, group)) return BK_OK;
    bk_status hs = checked_headers(f, group);
    if (hs != BK_OK) return hs;
    char why[256];
    hid_t g = H5Gopen2((hid_t)f->file, group, H5P_DEFAULT);
    if (g < 0)
        return bk_fail(BK_ERR_FORMAT, "%s: group %s cannot be opened, the file is damaged (%s)", f->path, group,
                       h5_cause(why, sizeof why));
    list_state s = {0};
    hsize_t idx = 0;
    /* In the order of the index (not H5_ITER_INC, sorted below): for a large group HDF5 1.10
     * would first build a sorted table of all links, and when a damaged file makes that fail
     * half-way it frees entries it never filled, and crashes. */
    herr_t r = H5Literate(g, H5_INDEX_NAME, H5_ITER_NATIVE, &idx, collect, &s);
    if (r < 0) h5_cause(why, sizeof why);
    H5Gclose(g);
    if (r < 0) {
        for (int i = 0; i < s.count; i++) free(s.names[i]);
        free(s.names);
        return bk_fail(BK_ERR_FORMAT, "%s: group %s cannot be listed, the file is damaged (%s)", f->path, group, why);
    }
    if (s.count > 1) qsort(s.names, (size_t)s.count, sizeof *s.names, by_name);
    *names = s.names;
    *count = s.count;
    return BK_OK;
}

bk_status bk_h5_set_attr_str(bk_h5 *f, const char *name, const char *value) {
    char why[256];
    if (H5LTset_attribute_string((hid_t)f->file, "/", name, value) < 0)
        return bk_fail(BK_ERR_IO, "%s: cannot write attribute %s: %s", f->path, name, h5_cause(why, sizeof why));
    return BK_OK;
}

bk_status bk_h5_set_attr_int(bk_h5 *f, const char *name, int64_t value) {
    long long v = value;
    char why[256];
    if (H5LTset_attribute_long_long((hid_t)f->file, "/", name, &v, 1) < 0)
        return bk_fail(BK_ERR_IO, "%s: cannot write attribute %s: %s", f->path, name, h5_cause(why, sizeof why));
    return BK_OK;
}

/* 1 if the root has attribute `name`, 0 if not, -1 (with the message set) if the file is too
 * damaged to tell. */
static int attr_state(const bk_h5 *f, const char *name) {
    quiet();
    htri_t e = H5Aexists_by_name((hid_t)f->file, "/", name, H5P_DEFAULT);
    if (e >= 0) return e > 0;
    char why[256];
    bk_fail(BK_ERR_IO, "%s: attribute %s cannot be read, the file is damaged (%s)", f->path, name,
            h5_cause(why, sizeof why));
    return -1;
}

bool bk_h5_has_attr(const bk_h5 *f, const char *name) {
    return attr_state(f, name) != 0; /* damaged: the caller's read reports it */
}

/* Opens root attribute `name` holding exactly one value (H5LT's readers write every element of
 * an array attribute into the caller's one value: an 8-element "step" overran a stack
 * variable). On success *a and *type are open. BK_ERR_FORMAT if it is absent or not one value,
 * BK_ERR_IO (with HDF5's cause) if the file is too damaged to read it. */
static bk_status open_attr(const bk_h5 *f, const char *name, hid_t *a, hid_t *type) {
    int e = attr_state(f, name);
    if (e < 0) return BK_ERR_IO;
    if (e == 0) return bk_fail(BK_ERR_FORMAT, "%s: no attribute %s", f->path, name);
    char why[256];
    *a = H5Aopen_by_name((hid_t)f->file, "/", name, H5P_DEFAULT, H5P_DEFAULT);
    if (*a < 0)
        return bk_fail(BK_ERR_IO, "%s: attribute %s cannot be read, the file is damaged (%s)", f->path, name,
                       h5_cause(why, sizeof why));
    hid_t space = H5Aget_space(*a);
    if (space < 0) {
        h5_cause(why, sizeof why);
        H5Aclose(*a);
        return bk_fail(BK_ERR_IO, "%s: attribute %s cannot be read, the file is damaged (%s)", f->path, name, why);
    }
    hssize_t points = H5Sget_simple_extent_npoints(space);
    H5Sclose(space);
    if (points != 1) {
        H5Aclose(*a);
        return bk_fail(BK_ERR_FORMAT, "%s: attribute %s holds %lld values, not one", f->path, name, (long long)points);
    }
    *type = H5Aget_type(*a);
    if (*type < 0) {
        h5_cause(why, sizeof why);
        H5Aclose(*a);
        return bk_fail(BK_ERR_IO, "%s: attribute %s cannot be read, the file is damaged (%s)", f->path, name, why);
    }
    return BK_OK;
}

bk_status bk_h5_get_attr_str(const bk_h5 *f, const char *name, char *value, size_t len) {
    hid_t a = -1, type = -1;
    bk_status st = open_attr(f, name, &a, &type);
    if (st != BK_OK) return st;
    size_t size = H5Tget_size(type);
    char *buf = NULL, why[256];
    if (H5Tget_class(type) != H5T_STRING || H5Tis_variable_str(type) != 0)
        st = bk_fail(BK_ERR_FORMAT, "%s: attribute %s is not a fixed-length string", f->path, name);
    else if (size >= ((size_t)1 << 30) || !(buf = malloc(size + 1)))
        st = bk_fail(BK_ERR_FORMAT, "%s: attribute %s is a string of %zu bytes (a damaged file?)", f->path, name, size);
    else if (H5Aread(a, type, buf) < 0)
        st = bk_fail(BK_ERR_IO, "%s: attribute %s cannot be read, the file is damaged (%s)", f->path, name,
                     h5_cause(why, sizeof why));
    if (st == BK_OK) {
        buf[size] = '\0';
        if (strlen(buf) >= len)
            st = bk_fail(BK_ERR_FORMAT, "%s: attribute %s is longer than %zu characters", f->path, name, len - 1);
        else
            memcpy(value, buf, strlen(buf) + 1);
    }
    free(buf);
    H5Tclose(type);
    H5Aclose(a);
    return st;
}

bk_status bk_h5_get_attr_int(const bk_h5 *f, const char *name, int64_t *value) {
    hid_t a = -1, type = -1;
    bk_status st = open_attr(f, name, &a, &type);
    if (st != BK_OK) return st;
    long long v;
    char why[256];
    if (H5Tget_class(type) != H5T_INTEGER)
        st = bk_fail(BK_ERR_FORMAT, "%s: attribute %s is not an integer", f->path, name);
    else if (H5Aread(a, H5T_NATIVE_LLONG, &v) < 0)
        st = bk_fail(BK_ERR_IO, "%s: attribute %s cannot be read, the file is damaged (%s)", f->path, name,
                     h5_cause(why, sizeof why));
    else
        *value = v;
    H5Tclose(type);
    H5Aclose(a);
    return st;
}
