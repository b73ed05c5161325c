/* h5.c — HDF5 helpers (see h5.h). */
#include "core/h5.h"

#include <errno.h>
#include <hdf5.h>
#include <hdf5_hl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

bk_status bk_h5_open(bk_h5 *f, const char *path) {
    memset(f, 0, sizeof *f);
    quiet();
    snprintf(f->path, sizeof f->path, "%s", path);
    if (access(path, R_OK) != 0)
        return bk_fail(BK_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0) return bk_fail(BK_ERR_FORMAT, "%s: not an HDF5 file (or truncated)", path);
    hid_t id = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (id < 0) return bk_fail(BK_ERR_FORMAT, "%s: HDF5 cannot open it (damaged or truncated)", path);
    f->file = id;
    return BK_OK;
}

bk_status bk_h5_open_image(bk_h5 *f, const void *data, size_t size, const char *name) {
    memset(f, 0, sizeof *f);
    quiet();
    snprintf(f->path, sizeof f->path, "%s", name);
    if (size == 0) return bk_fail(BK_ERR_FORMAT, "%s: not an HDF5 file (0 bytes)", name);
    /* HDF5 copies the image (flags 0) and opens the copy read-only */
    hid_t id = H5LTopen_file_image((void *)data, size, 0);
    if (id < 0) return bk_fail(BK_ERR_FORMAT, "%s: not an HDF5 file, or damaged or truncated", name);
    f->file = id;
    return BK_OK;
}

bk_status bk_h5_create(bk_h5 *f, const char *path) {
    memset(f, 0, sizeof *f);
    quiet();
    snprintf(f->path, sizeof f->path, "%s", path);
    snprintf(f->tmp, sizeof f->tmp, "%s.tmp", path);
    hid_t id = H5Fcreate(f->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (id < 0) return bk_fail(BK_ERR_IO, "%s: cannot create %s (directory missing or not writable?)", path, f->tmp);
    f->file = id;
    f->writing = true;
    return BK_OK;
}

bk_status bk_h5_close(bk_h5 *f, bool commit) {
    if (f->file <= 0) return BK_OK;
    bk_status st = BK_OK;
    if (f->writing && commit && H5Fflush((hid_t)f->file, H5F_SCOPE_GLOBAL) < 0)
        st = bk_fail(BK_ERR_IO, "%s: writing failed (disk full?)", f->path);
    if (H5Fclose((hid_t)f->file) < 0 && st == BK_OK)
        st = bk_fail(BK_ERR_IO, "%s: closing failed (disk full?)", f->path);
    f->file = 0;
    if (f->writing) {
        if (commit && st == BK_OK) {
            FILE *sync = fopen(f->tmp, "rb+");
            if (sync) {
                if (fflush(sync) != 0 || fsync(fileno(sync)) != 0)
                    st = bk_fail(BK_ERR_IO, "%s: cannot flush to disk: %s", f->path, strerror(errno));
                fclose(sync);
            }
            if (st == BK_OK && rename(f->tmp, f->path) != 0)
                st = bk_fail(BK_ERR_IO, "%s: cannot move the written file into place: %s", f->path,
                             strerror(errno));
        }
        if (!commit || st != BK_OK) unlink(f->tmp);
    }
    return st;
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
            if (H5Lexists((hid_t)f->file, buf, H5P_DEFAULT) <= 0) return false;
            if (c == '\0') return true;
            *p = c;
        }
    }
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
    *d = H5Dopen2((hid_t)f->file, name, H5P_DEFAULT);
    if (*d < 0) return bk_fail(BK_ERR_FORMAT, "%s: %s is not a dataset", f->path, name);
    bk_status st = BK_OK;
    hid_t type = H5Dget_type(*d), space = H5Dget_space(*d);
    int nd = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    const hid_t ieee[] = {H5T_IEEE_F32LE, H5T_IEEE_F32BE, H5T_IEEE_F64LE, H5T_IEEE_F64BE};
    bool is_ieee = false;
    for (int i = 0; i < 4 && type >= 0; i++) is_ieee |= H5Tequal(type, ieee[i]) > 0;
    if (type < 0 || H5Tget_class(type) != H5T_FLOAT) {
        st = bk_fail(BK_ERR_FORMAT, "%s: %s is not a float dataset", f->path, name);
    } else if (!is_ieee) {
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
    bk_status st = open_f32(f, name, &d, ndim, dims, &n);
    if (st != BK_OK) return st;
    *data = malloc((n ? n : 1) * sizeof **data);
    if (!*data) st = bk_fail(BK_ERR_FORMAT, "%s: %s: out of memory for %zu values", f->path, name, n);
    else if (n && H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, *data) < 0)
        st = bk_fail(BK_ERR_FORMAT, "%s: %s cannot be read: checksum mismatch or damaged file", f->path, name);
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
        st = bk_fail(BK_ERR_FORMAT, "%s: %s cannot be read: checksum mismatch or damaged file", f->path, name);
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
    if (d < 0) st = bk_fail(BK_ERR_IO, "%s: cannot create dataset %s", f->path, name);
    else if (!empty && H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        st = bk_fail(BK_ERR_IO, "%s: writing %s failed (disk full?)", f->path, name);
    if (d >= 0) H5Dclose(d);
    H5Pclose(dcpl);
    H5Pclose(lcpl);
    H5Sclose(space);
    return st;
}

typedef struct list_state {
    char **names;
    int count, cap;
} list_state;

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
    hid_t g = H5Gopen2((hid_t)f->file, group, H5P_DEFAULT);
    if (g < 0) return bk_fail(BK_ERR_FORMAT, "%s: %s is not a group", f->path, group);
    list_state s = {0};
    hsize_t idx = 0;
    herr_t r = H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, collect, &s);
    H5Gclose(g);
    if (r < 0) {
        for (int i = 0; i < s.count; i++) free(s.names[i]);
        free(s.names);
        return bk_fail(BK_ERR_FORMAT, "%s: cannot list %s", f->path, group);
    }
    *names = s.names;
    *count = s.count;
    return BK_OK;
}

bk_status bk_h5_set_attr_str(bk_h5 *f, const char *name, const char *value) {
    if (H5LTset_attribute_string((hid_t)f->file, "/", name, value) < 0)
        return bk_fail(BK_ERR_IO, "%s: cannot write attribute %s", f->path, name);
    return BK_OK;
}

bk_status bk_h5_set_attr_int(bk_h5 *f, const char *name, int64_t value) {
    long long v = value;
    if (H5LTset_attribute_long_long((hid_t)f->file, "/", name, &v, 1) < 0)
        return bk_fail(BK_ERR_IO, "%s: cannot write attribute %s", f->path, name);
    return BK_OK;
}

bool bk_h5_has_attr(const bk_h5 *f, const char *name) {
    quiet();
    return H5Aexists_by_name((hid_t)f->file, "/", name, H5P_DEFAULT) > 0;
}

/* Opens root attribute `name` holding exactly one value (H5LT's readers write every element of
 * an array attribute into the caller's one value: an 8-element "step" overran a stack
 * variable). On success *a and *type are open. */
static bk_status open_attr(const bk_h5 *f, const char *name, hid_t *a, hid_t *type) {
    if (!bk_h5_has_attr(f, name)) return bk_fail(BK_ERR_FORMAT, "%s: no attribute %s", f->path, name);
    *a = H5Aopen_by_name((hid_t)f->file, "/", name, H5P_DEFAULT, H5P_DEFAULT);
    if (*a < 0) return bk_fail(BK_ERR_FORMAT, "%s: cannot read attribute %s", f->path, name);
    hid_t space = H5Aget_space(*a);
    hssize_t points = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    if (space >= 0) H5Sclose(space);
    *type = points == 1 ? H5Aget_type(*a) : -1;
    if (*type < 0) {
        H5Aclose(*a);
        return bk_fail(BK_ERR_FORMAT, "%s: attribute %s holds %lld values, not one", f->path, name, (long long)points);
    }
    return BK_OK;
}

bk_status bk_h5_get_attr_str(const bk_h5 *f, const char *name, char *value, size_t len) {
    hid_t a = -1, type = -1;
    bk_status st = open_attr(f, name, &a, &type);
    if (st != BK_OK) return st;
    size_t size = H5Tget_size(type);
    char *buf = NULL;
    if (H5Tget_class(type) != H5T_STRING || H5Tis_variable_str(type) != 0)
        st = bk_fail(BK_ERR_FORMAT, "%s: attribute %s is not a fixed-length string", f->path, name);
    else if (size >= ((size_t)1 << 30) || !(buf = malloc(size + 1)))
        st = bk_fail(BK_ERR_FORMAT, "%s: attribute %s is a string of %zu bytes (a damaged file?)", f->path, name, size);
    else if (H5Aread(a, type, buf) < 0)
        st = bk_fail(BK_ERR_FORMAT, "%s: cannot read attribute %s", f->path, name);
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
    if (H5Tget_class(type) != H5T_INTEGER || H5Aread(a, H5T_NATIVE_LLONG, &v) < 0)
        st = bk_fail(BK_ERR_FORMAT, "%s: attribute %s is not an integer", f->path, name);
    else
        *value = v;
    H5Tclose(type);
    H5Aclose(a);
    return st;
}
