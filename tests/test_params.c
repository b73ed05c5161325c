/* test_params.c — HDF5 helpers and named parameter sets: save -> load is bit-identical, loading
 * is strict (missing, extra, mis-shaped names refused naming the first offender), running-count
 * buffers are ignored, a flipped bit is caught by the checksum, writes are atomic. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>
#include <hdf5_hl.h>

#include "core/h5.h"
#include "core/params.h"
#include "core/rng.h"
#include "tests/support/harness.h"

static char dir[64];

static const char *tmp_path(const char *name) {
    static char buf[4][256];
    static int k;
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/bk_params_XXXXXX");
        BK_CHECK(mkdtemp(dir), "mkdtemp");
    }
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static void cleanup(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (dir[0] && system(cmd) != 0) printf("    could not remove %s\n", dir);
}

/* A small model: a conv weight, a bias, a BN's buffers. */
static void make_set(bk_ctx *ctx, bk_params *ps, uint64_t seed, bool extra) {
    *ps = (bk_params){0};
    bk_rng r;
    bk_rng_seed(&r, seed);
    bk_tensor *t[4];
    t[0] = bk_params_add(ctx, ps, "block.0.weight", 4, (bk_shape){8, 3, 3, 5}, BK_PARAM);
    t[1] = bk_params_add(ctx, ps, "block.0.bias", 1, (bk_shape){1, 8, 1, 1}, BK_PARAM);
    t[2] = bk_params_add(ctx, ps, "block.1.running_mean", 1, (bk_shape){1, 8, 1, 1}, BK_BUFFER);
    t[3] = bk_params_add(ctx, ps, "block.1.running_var", 1, (bk_shape){1, 8, 1, 1}, BK_BUFFER);
    for (int i = 0; i < 4; i++) bk_rng_fill_normal(&r, t[i]->data, bk_numel(t[i]), 0, 1);
    if (extra) bk_params_add(ctx, ps, "head.weight", 2, (bk_shape){4, 8, 1, 1}, BK_PARAM);
}

static void save_load_is_bit_identical(void) {
    bk_ctx *ctx = bk_test_ctx();
    bk_params a, b;
    make_set(ctx, &a, 1, false);
    make_set(ctx, &b, 2, false);
    bk_h5 f;
    EXPECT(bk_h5_create(&f, tmp_path("m.h5")) == BK_OK, "%s", bk_last_error());
    EXPECT(bk_params_save(&a, &f, "") == BK_OK && bk_h5_set_attr_str(&f, "model", "toy") == BK_OK &&
               bk_h5_set_attr_int(&f, "step", 1234567890123ll) == BK_OK,
           "%s", bk_last_error());
    EXPECT(bk_h5_close(&f, true) == BK_OK, "%s", bk_last_error());
    EXPECT(access(tmp_path("m.h5.tmp"), F_OK) != 0, "the temporary file remains");
    EXPECT(bk_h5_open(&f, tmp_path("m.h5")) == BK_OK, "%s", bk_last_error());
    EXPECT(bk_params_load(&b, &f, "") == BK_OK, "%s", bk_last_error());
    char model[32];
    int64_t step = 0;
    EXPECT(bk_h5_get_attr_str(&f, "model", model, sizeof model) == BK_OK && !strcmp(model, "toy"), "model attribute");
    EXPECT(bk_h5_get_attr_int(&f, "step", &step) == BK_OK && step == 1234567890123ll, "step attribute");
    /* the file holds PyTorch's layout: block.0.weight element (o,i,h,w) at ((o*3+i)*3+h)*5+w */
    int nd;
    int64_t dims[8];
    float *raw;
    EXPECT(bk_h5_read_f32(&f, "/params/block.0.weight", &nd, dims, &raw) == BK_OK, "%s", bk_last_error());
    EXPECT(nd == 4 && dims[0] == 8 && dims[1] == 3 && dims[2] == 3 && dims[3] == 5, "stored shape");
    bk_tensor *w = bk_params_get(&a, "block.0.weight");
    EXPECT(raw[((5 * 3 + 2) * 3 + 1) * 5 + 4] == w->data[bk_offset(w, 5, 2, 1, 4)], "not in PyTorch order");
    free(raw);
    bk_h5_close(&f, false);
    for (int i = 0; i < a.n; i++)
        EXPECT(memcmp(a.v[i].t->data, b.v[i].t->data, (size_t)bk_numel(a.v[i].t) * 4) == 0,
               "%s differs after save and load", a.v[i].name);
    EXPECT(bk_params_numel(&a, BK_PARAM) == 8 * 3 * 3 * 5 + 8 && bk_params_numel(&a, BK_BUFFER) == 16, "counts");
    bk_params_free(ctx, &a);
    bk_params_free(ctx, &b);
    cleanup();
}

static void loading_is_strict(void) {
    bk_ctx *ctx = bk_test_ctx();
    bk_params small, big;
    make_set(ctx, &small, 1, false);
    make_set(ctx, &big, 1, true);
    bk_h5 f;
    /* a file with an extra tensor is refused by the smaller model, naming it */
    bk_h5_create(&f, tmp_path("big.h5"));
    bk_params_save(&big, &f, "");
    bk_h5_close(&f, true);
    bk_h5_open(&f, tmp_path("big.h5"));
    EXPECT(bk_params_load(&small, &f, "") != BK_OK && strstr(bk_last_error(), "head.weight"),
           "extra tensor not refused: %s", bk_last_error());
    bk_h5_close(&f, false);
    /* a file missing a tensor is refused by the bigger model, naming it */
    bk_h5_create(&f, tmp_path("small.h5"));
    bk_params_save(&small, &f, "");
    /* running counts from PyTorch are ignored */
    int64_t one = 1;
    float zero = 0;
    bk_h5_write_f32(&f, "/buffers/block.1.num_batches_tracked", 1, &one, &zero);
    bk_h5_close(&f, true);
    bk_h5_open(&f, tmp_path("small.h5"));
    EXPECT(bk_params_load(&big, &f, "") != BK_OK && strstr(bk_last_error(), "head.weight") &&
               strstr(bk_last_error(), "missing"),
           "missing tensor not refused: %s", bk_last_error());
    EXPECT(bk_params_load(&small, &f, "") == BK_OK, "num_batches_tracked not ignored: %s", bk_last_error());
    bk_h5_close(&f, false);
    /* a mis-shaped tensor is refused with both shapes */
    bk_h5_create(&f, tmp_path("shape.h5"));
    int64_t wrong[4] = {8, 3, 5, 3};
    float *v = calloc(8 * 3 * 5 * 3, sizeof *v);
    bk_h5_write_f32(&f, "/params/block.0.weight", 4, wrong, v);
    free(v);
    bk_h5_close(&f, true);
    bk_params w_only = {0};
    bk_params_add(ctx, &w_only, "block.0.weight", 4, (bk_shape){8, 3, 3, 5}, BK_PARAM);
    bk_h5_open(&f, tmp_path("shape.h5"));
    EXPECT(bk_params_load(&w_only, &f, "") != BK_OK && strstr(bk_last_error(), "8x3x5x3") &&
               strstr(bk_last_error(), "8x3x3x5"),
           "wrong shape not refused: %s", bk_last_error());
    bk_h5_close(&f, false);
    bk_params_free(ctx, &w_only);
    bk_params_free(ctx, &small);
    bk_params_free(ctx, &big);
    cleanup();
}

/* Finds `needle` in the file and flips one bit of it in place; returns whether it was found. */
static bool flip_in_file(const char *path, const float *needle, size_t n) {
    FILE *f = fopen(path, "rb+");
    if (!f) return false;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    unsigned char *buf = malloc((size_t)len);
    rewind(f);
    size_t got = fread(buf, 1, (size_t)len, f);
    bool found = false;
    for (long i = 0; !found && i + (long)(n * 4) <= (long)got; i++)
        if (memcmp(buf + i, needle, n * 4) == 0) {
            buf[i + 5] ^= 0x10;
            fseek(f, i + 5, SEEK_SET);
            fputc(buf[i + 5], f);
            found = true;
        }
    free(buf);
    fclose(f);
    return found;
}

static void flipped_bit_is_detected(void) {
    bk_ctx *ctx = bk_test_ctx();
    bk_params a;
    make_set(ctx, &a, 7, false);
    bk_h5 f;
    bk_h5_create(&f, tmp_path("flip.h5"));
    bk_params_save(&a, &f, "");
    bk_h5_close(&f, true);
    /* the weight is stored in PyTorch order: search for its first 8 values */
    bk_tensor *w = bk_params_get(&a, "block.0.weight");
    float nchw[8 * 3 * 3 * 5];
    bk_tensor_to_nchw(w, nchw);
    EXPECT(flip_in_file(tmp_path("flip.h5"), nchw, 8), "weight bytes not found in the file");
    bk_params b;
    make_set(ctx, &b, 8, false);
    EXPECT(bk_h5_open(&f, tmp_path("flip.h5")) == BK_OK, "%s", bk_last_error());
    bk_status st = bk_params_load(&b, &f, "");
    EXPECT(st != BK_OK && strstr(bk_last_error(), "checksum") && strstr(bk_last_error(), "block.0.weight"),
           "a flipped bit was not reported: %s", bk_last_error());
    bk_h5_close(&f, false);
    bk_params_free(ctx, &a);
    bk_params_free(ctx, &b);
    cleanup();
}

static void bad_files_are_refused(void) {
    EXPECT(bk_h5_open(&(bk_h5){0}, tmp_path("none.h5")) != BK_OK && strstr(bk_last_error(), "none.h5"),
           "missing file: %s", bk_last_error());
    FILE *t = fopen(tmp_path("text.h5"), "w");
    fputs("not hdf5\n", t);
    fclose(t);
    EXPECT(bk_h5_open(&(bk_h5){0}, tmp_path("text.h5")) != BK_OK && strstr(bk_last_error(), "not an HDF5"),
           "text file: %s", bk_last_error());
    /* a truncated file */
    bk_ctx *ctx = bk_test_ctx();
    bk_params a;
    make_set(ctx, &a, 3, false);
    bk_h5 f;
    bk_h5_create(&f, tmp_path("cut.h5"));
    bk_params_save(&a, &f, "");
    bk_h5_close(&f, true);
    struct stat st;
    stat(tmp_path("cut.h5"), &st);
    EXPECT(truncate(tmp_path("cut.h5"), st.st_size / 2) == 0, "truncate");
    bk_params b;
    make_set(ctx, &b, 4, false);
    bk_status s = bk_h5_open(&f, tmp_path("cut.h5"));
    if (s == BK_OK) {
        s = bk_params_load(&b, &f, "");
        bk_h5_close(&f, false);
    }
    EXPECT(s != BK_OK && strstr(bk_last_error(), "cut.h5"), "truncated file accepted: %s", bk_last_error());
    /* creating in a missing directory fails and leaves nothing */
    EXPECT(bk_h5_create(&f, "/nonexistent_dir_bk/x.h5") != BK_OK && strstr(bk_last_error(), "x.h5"),
           "create in a missing directory: %s", bk_last_error());
    /* an aborted write leaves the previous file intact */
    bk_h5_create(&f, tmp_path("keep.h5"));
    bk_params_save(&a, &f, "");
    bk_h5_close(&f, true);
    bk_h5_create(&f, tmp_path("keep.h5"));
    bk_h5_close(&f, false); /* not committed */
    EXPECT(bk_h5_open(&f, tmp_path("keep.h5")) == BK_OK && bk_params_load(&b, &f, "") == BK_OK,
           "an uncommitted write damaged the previous file: %s", bk_last_error());
    bk_h5_close(&f, false);
    bk_params_free(ctx, &a);
    bk_params_free(ctx, &b);
    cleanup();
}

/* A file in HDF5's old format (h5py's default), holding what a checkpoint holds: refused as a
 * checkpoint or weight file, naming the file and the format, before HDF5 decodes it; read as a
 * file of arrays (forward's --input). */
static void old_format_only_as_data(void) {
    const char *path = tmp_path("old.h5");
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    BK_CHECK(file >= 0, "cannot create %s", path);
    const float v[6] = {1, 2, 3, 4, 5, 6};
    const hsize_t dims[2] = {2, 3};
    H5LTmake_dataset_float(file, "x", 2, dims, v);
    H5LTset_attribute_string(file, "/", "format", "bokehlab-checkpoint");
    H5Fclose(file);
    bk_h5 f;
    EXPECT(bk_h5_open(&f, path) != BK_OK && strstr(bk_last_error(), path) && strstr(bk_last_error(), "old format") &&
               strstr(bk_last_error(), "superblock version 0"),
           "an old-format checkpoint: %s", bk_last_error());
    EXPECT(f.file == 0, "a refused file was left open");
    EXPECT(bk_h5_open_data(&f, path) == BK_OK, "as data: %s", bk_last_error());
    int nd = 0;
    int64_t d[BK_H5_MAX_DIMS];
    float *got = NULL;
    EXPECT(bk_h5_read_f32(&f, "x", &nd, d, &got) == BK_OK, "%s", bk_last_error());
    EXPECT(got && nd == 2 && d[0] == 2 && d[1] == 3 && memcmp(got, v, sizeof v) == 0, "x read wrong");
    free(got);
    bk_h5_close(&f, false);
    cleanup();
}

BK_TEST_MAIN(BK_TEST(save_load_is_bit_identical), BK_TEST(loading_is_strict),
             BK_TEST(flipped_bit_is_detected), BK_TEST(bad_files_are_refused), BK_TEST(old_format_only_as_data))
