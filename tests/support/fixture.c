/* fixture.c — a small reader for the HDF5 parity fixtures (see fixture.h). */
#include "tests/support/fixture.h"

#include <hdf5.h>
#include <hdf5_hl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static _Noreturn __attribute__((format(printf, 2, 3))) void broken(const bk_fixture *f,
                                                                    const char *fmt, ...) {
    va_list ap;
    fprintf(stdout, "    fixture %s: ", f ? f->path : "?");
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fprintf(stdout, " (regenerate with 'make fixtures')\n");
    fflush(stdout);
    exit(1);
}

static bool is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The fixture directory, see fixture.h. */
static void fixture_dir(char *out, size_t n) {
    const char *env = getenv("BK_FIXTURE_DIR");
    if (env && *env) {
        snprintf(out, n, "%s", env);
        return;
    }
    if (is_dir("tests/fixtures")) {
        snprintf(out, n, "tests/fixtures");
        return;
    }
    char exe[700];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) *slash = '\0';
        snprintf(out, n, "%s/../../tests/fixtures", exe);
        return;
    }
    snprintf(out, n, "tests/fixtures");
}

bk_fixture *bk_fixture_open(const char *name) {
    bk_fixture *f = calloc(1, sizeof *f);
    if (!f) {
        fprintf(stdout, "    out of memory\n");
        exit(1);
    }
    char dir[800];
    fixture_dir(dir, sizeof dir);
    snprintf(f->path, sizeof f->path, "%s/%s", dir, name);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* our own messages instead of HDF5's error stack */
    if (access(f->path, R_OK) != 0) broken(f, "cannot read the file (set BK_FIXTURE_DIR?)");
    hid_t id = H5Fopen(f->path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (id < 0) broken(f, "not an HDF5 file");
    f->file = id;
    return f;
}

void bk_fixture_close(bk_fixture *f) {
    if (!f) return;
    H5Fclose((hid_t)f->file);
    free(f);
}

int bk_fixture_count(const bk_fixture *f) {
    H5G_info_t info;
    if (H5Gget_info((hid_t)f->file, &info) < 0) broken(f, "cannot list the root group");
    return (int)info.nlinks;
}

char *bk_fixture_name(const bk_fixture *f, int i) {
    hid_t id = (hid_t)f->file;
    ssize_t len = H5Lget_name_by_idx(id, ".", H5_INDEX_NAME, H5_ITER_INC, (hsize_t)i, NULL, 0,
                                     H5P_DEFAULT);
    if (len < 0) broken(f, "no link %d at the root", i);
    char *name = calloc((size_t)len + 1, 1);
    if (!name) broken(f, "out of memory");
    H5Lget_name_by_idx(id, ".", H5_INDEX_NAME, H5_ITER_INC, (hsize_t)i, name, (size_t)len + 1,
                       H5P_DEFAULT);
    return name;
}

bool bk_fixture_has(const bk_fixture *f, const char *path) {
    return H5LTpath_valid((hid_t)f->file, path, 1) > 0;
}

bool bk_fixture_has_attr(const bk_fixture *f, const char *obj, const char *attr) {
    if (strcmp(obj, ".") != 0 && !bk_fixture_has(f, obj)) return false;
    return H5Aexists_by_name((hid_t)f->file, obj, attr, H5P_DEFAULT) > 0;
}

/* Number of elements and class of an attribute that must exist. */
static size_t attr_info(const bk_fixture *f, const char *obj, const char *attr,
                        H5T_class_t *cls, size_t *type_size) {
    if (!bk_fixture_has_attr(f, obj, attr)) broken(f, "%s has no attribute '%s'", obj, attr);
    hid_t id = (hid_t)f->file;
    int rank = 0;
    if (H5LTget_attribute_ndims(id, obj, attr, &rank) < 0 || rank < 0 || rank > 1)
        broken(f, "%s: attribute '%s' is not a scalar or a vector", obj, attr);
    hsize_t dims[1] = {1};
    if (H5LTget_attribute_info(id, obj, attr, dims, cls, type_size) < 0)
        broken(f, "%s: cannot read attribute '%s'", obj, attr);
    return rank == 0 ? 1 : (size_t)dims[0];
}

int bk_fixture_attr_int(const bk_fixture *f, const char *obj, const char *attr) {
    int v = 0;
    bk_fixture_attr_ints(f, obj, attr, &v, 1);
    return v;
}

void bk_fixture_attr_ints(const bk_fixture *f, const char *obj, const char *attr, int *out,
                          int n) {
    H5T_class_t cls;
    size_t size;
    size_t count = attr_info(f, obj, attr, &cls, &size);
    if (cls != H5T_INTEGER) broken(f, "%s: attribute '%s' is not an integer", obj, attr);
    if (count != (size_t)n)
        broken(f, "%s: attribute '%s' has %zu values, expected %d", obj, attr, count, n);
    if (H5LTget_attribute_int((hid_t)f->file, obj, attr, out) < 0)
        broken(f, "%s: cannot read attribute '%s'", obj, attr);
}

double bk_fixture_attr_double(const bk_fixture *f, const char *obj, const char *attr) {
    H5T_class_t cls;
    size_t size;
    size_t count = attr_info(f, obj, attr, &cls, &size);
    if ((cls != H5T_FLOAT && cls != H5T_INTEGER) || count != 1)
        broken(f, "%s: attribute '%s' is not a number", obj, attr);
    double v = 0.0;
    if (H5LTget_attribute_double((hid_t)f->file, obj, attr, &v) < 0)
        broken(f, "%s: cannot read attribute '%s'", obj, attr);
    return v;
}

char *bk_fixture_attr_string(const bk_fixture *f, const char *obj, const char *attr) {
    H5T_class_t cls;
    size_t size;
    size_t count = attr_info(f, obj, attr, &cls, &size);
    if (cls != H5T_STRING || count != 1)
        broken(f, "%s: attribute '%s' is not a string", obj, attr);
    /* H5LTget_attribute_string reads in the file's type: it must be fixed-length (the script
     * writes numpy bytes), a variable-length string would come back as a pointer */
    hid_t a = H5Aopen_by_name((hid_t)f->file, obj, attr, H5P_DEFAULT, H5P_DEFAULT);
    hid_t t = a >= 0 ? H5Aget_type(a) : -1;
    htri_t vlen = t >= 0 ? H5Tis_variable_str(t) : -1;
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    if (vlen != 0)
        broken(f, "%s: attribute '%s' is not a fixed-length string", obj, attr);
    char *s = calloc(size + 1, 1); /* NULLPAD strings carry no terminator when full */
    if (!s) broken(f, "out of memory");
    if (H5LTget_attribute_string((hid_t)f->file, obj, attr, s) < 0)
        broken(f, "%s: cannot read attribute '%s'", obj, attr);
    s[size] = '\0';
    return s;
}

int bk_fixture_attr_count(const bk_fixture *f, const char *obj, const char *attr) {
    H5T_class_t cls;
    size_t size;
    size_t count = attr_info(f, obj, attr, &cls, &size);
    if (cls != H5T_INTEGER) broken(f, "%s: attribute '%s' is not an integer", obj, attr);
    return (int)count;
}

char *bk_fixture_attr_string_or(const bk_fixture *f, const char *obj, const char *attr,
                                const char *dflt) {
    if (bk_fixture_has_attr(f, obj, attr)) return bk_fixture_attr_string(f, obj, attr);
    char *s = strdup(dflt);
    if (!s) broken(f, "out of memory");
    return s;
}

int bk_fixture_attr_int_or(const bk_fixture *f, const char *obj, const char *attr, int dflt) {
    return bk_fixture_has_attr(f, obj, attr) ? bk_fixture_attr_int(f, obj, attr) : dflt;
}

double bk_fixture_attr_double_or(const bk_fixture *f, const char *obj, const char *attr,
                                 double dflt) {
    return bk_fixture_has_attr(f, obj, attr) ? bk_fixture_attr_double(f, obj, attr) : dflt;
}

bk_shape bk_fixture_shape(const bk_fixture *f, const char *path, int *ndim) {
    hid_t id = (hid_t)f->file;
    if (!bk_fixture_has(f, path)) broken(f, "no dataset '%s'", path);
    int rank = -1;
    if (H5LTget_dataset_ndims(id, path, &rank) < 0) broken(f, "'%s' is not a dataset", path);
    if (rank != 0 && rank != 1 && rank != 4)
        broken(f, "dataset '%s' has rank %d (0, 1 or 4 expected)", path, rank);
    hsize_t d[4] = {1, 1, 1, 1};
    H5T_class_t cls;
    size_t size;
    if (H5LTget_dataset_info(id, path, d, &cls, &size) < 0)
        broken(f, "cannot read the shape of '%s'", path);
    if (cls != H5T_FLOAT) broken(f, "dataset '%s' is not floating point", path);
    if (ndim) *ndim = rank;
    if (rank == 0) return (bk_shape){1, 1, 1, 1};
    if (rank == 1) return (bk_shape){1, (int64_t)d[0], 1, 1};
    return (bk_shape){(int64_t)d[0], (int64_t)d[1], (int64_t)d[2], (int64_t)d[3]};
}

float *bk_fixture_read(const bk_fixture *f, const char *path, bk_shape *shape, int *ndim) {
    bk_shape s = bk_fixture_shape(f, path, ndim);
    float *v = malloc((size_t)bk_shape_numel(s) * sizeof *v);
    if (!v) broken(f, "out of memory");
    if (H5LTread_dataset_float((hid_t)f->file, path, v) < 0)
        broken(f, "cannot read dataset '%s'", path);
    if (shape) *shape = s;
    return v;
}

bk_tensor *bk_fixture_tensor(bk_ctx *ctx, const bk_fixture *f, const char *path) {
    bk_shape s;
    int ndim;
    float *v = bk_fixture_read(f, path, &s, &ndim);
    bk_tensor *t = bk_tensor_from_nchw(ctx, s, v);
    t->ndim = ndim;
    free(v);
    return t;
}

bk_tensor *bk_fixture_persistent(bk_ctx *ctx, const bk_fixture *f, const char *path,
                                 const char *name) {
    bk_shape s;
    int ndim;
    float *v = bk_fixture_read(f, path, &s, &ndim);
    bk_tensor *t = bk_tensor_new_persistent(ctx, name, ndim, s);
    bk_tensor_set_nchw(t, v);
    free(v);
    return t;
}
