/* test_bad_input.c — damaged and hostile input files through the entry points the programs use
 * (bk_image_read, bk_config_load / bk_config_set, bk_model_load and train --resume's reads):
 * each ends in a clean error that names the file, never a crash, a silent half-read or a
 * huge allocation.
 *
 * Two sources: the inputs the fuzz targets found (tests/data/fuzz-regress/, each the input of a
 * fix; docs/TESTING.md lists them), and hand-made ones: every truncation of a small PNG and
 * JPEG, garbage behind each signature, a config with a NUL byte and one with a 100 KB line,
 * HDF5 files of the wrong kind or with attributes and datasets bokehlab does not write. The
 * inputs that trip known defects inside libhdf5 (tests/fuzz/libhdf5/) are run in the normal
 * build only: AddressSanitizer reports libhdf5's read past its own buffer, which without it
 * ends in libhdf5's error and so in ours.
 */
#include <dirent.h>
#include <hdf5.h>
#include <hdf5_hl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "core/bokehlab.h"
#include "core/h5.h"
#include "data/image.h"
#include "models/checkpoint.h"
#include "tests/support/harness.h"
#include "train/config.h"
#include "train/optim.h"
#include "train/trainer.h"

#define REGRESS "tests/data/fuzz-regress"
#define LIBHDF5 "tests/fuzz/libhdf5"

/* A damaged HDF5 header may make libhdf5 ask for a buffer of the size it claims (16 GB):
 * under ASan such a request returns NULL, as malloc does without it, instead of stopping. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }

#define EXPECT_FAILS_NAMING(st, path, what)                                                              \
    do {                                                                                                 \
        bk_status st_ = (st);                                                                            \
        EXPECT(st_ != BK_OK, "%s: %s was accepted", what, path);                                         \
        if (st_ != BK_OK)                                                                                \
            EXPECT(strstr(bk_last_error(), path) != NULL, "%s: the message does not name %s: \"%s\"", what, \
                   path, bk_last_error());                                                               \
    } while (0)

/* ---------------------------------------------------------------- helpers */

static uint8_t *slurp(const char *path, size_t *len) {
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    uint8_t *b = malloc(n > 0 ? (size_t)n + 1 : 1);
    *len = fread(b, 1, n > 0 ? (size_t)n : 0, f);
    b[*len] = '\0';
    fclose(f);
    return b;
}

static void spit(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    EXPECT(f != NULL, "cannot write %s", path);
    if (!f) exit(1);
    if (len) fwrite(data, 1, len, f);
    fclose(f);
}

/* The files of `dir` whose names end with `suffix`, sorted (malloc'd; free each and the array). */
static char **files_in(const char *dir, const char *suffix, int *count) {
    *count = 0;
    char **names = NULL;
    DIR *d = opendir(dir);
    EXPECT(d != NULL, "cannot list %s", dir);
    if (!d) return NULL;
    for (struct dirent *e; (e = readdir(d));) {
        size_t n = strlen(e->d_name), k = strlen(suffix);
        if (n < k || strcmp(e->d_name + n - k, suffix) != 0) continue;
        names = realloc(names, (size_t)(*count + 1) * sizeof *names);
        size_t len = strlen(dir) + n + 2;
        names[*count] = malloc(len);
        snprintf(names[*count], len, "%s/%s", dir, e->d_name);
        (*count)++;
    }
    closedir(d);
    for (int i = 1; i < *count; i++)
        for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    return names;
}

static void free_names(char **names, int count) {
    for (int i = 0; i < count; i++) free(names[i]);
    free(names);
}

/* The peak resident memory of this process, in MB. */
static double peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

/* An image read of a bad file: refused, naming it, without pixels. */
static void expect_image_refused(const char *path, const char *what) {
    bk_image img;
    EXPECT_FAILS_NAMING(bk_image_read(path, 3, 0, &img), path, what);
    EXPECT(img.pixels == NULL, "%s: pixels after a refusal", what);
    bk_image_free(&img);
}

/* What train --resume, forward, render and eval read from a checkpoint, in that order, each
 * part whether or not an earlier one failed: every refusal must name the file, and one of them
 * must say `want` if not NULL. */
static void expect_checkpoint_refused(const char *path, const char *want) {
    char said[8192] = "";
#define SAID(st, what)                                                    \
    do {                                                                  \
        bk_status s_ = (st);                                              \
        if (s_ != BK_OK) {                                                \
            EXPECT_FAILS_NAMING(s_, path, what);                          \
            strncat(said, bk_last_error(), sizeof said - strlen(said) - 2); \
            strcat(said, "\n");                                           \
        }                                                                 \
    } while (0)
    bk_model *m = NULL;
    bk_status st = bk_model_load(bk_test_ctx(), path, &m);
    EXPECT(st != BK_OK, "%s: bk_model_load accepted it", path);
    SAID(st, "bk_model_load");
    EXPECT(m == NULL, "%s: a model after a refusal", path);
    bk_model_free(bk_test_ctx(), m);

    bk_h5 f;
    st = bk_h5_open(&f, path);
    SAID(st, "bk_h5_open");
    if (st == BK_OK) {
        char model[64], variant[128];
        st = bk_ckpt_read_kind(&f, model, sizeof model, variant, sizeof variant);
        SAID(st, "bk_ckpt_read_kind");
        if (st == BK_OK && bk_model_create(bk_test_ctx(), model, variant, 0, &m) == BK_OK) {
            SAID(bk_model_read(m, &f), "bk_model_read");
            bk_adam opt;
            bk_adam_init(bk_test_ctx(), &opt, &m->params, (bk_adam_config){1e-4f, 0.9f, 0.999f, 1e-8f, 0});
            SAID(bk_adam_load(&opt, &f, "/optim/generator"), "bk_adam_load");
            bk_adam_free(bk_test_ctx(), &opt);
            bk_model_free(bk_test_ctx(), m);
        }
        int64_t step;
        SAID(bk_h5_get_attr_int(&f, "step", &step), "attribute step");
        char *text = malloc(1 << 20);
        SAID(bk_h5_get_attr_str(&f, "config", text, 1 << 20), "attribute config");
        free(text);
        bk_h5_close(&f, false);
    }
    if (want) EXPECT(strstr(said, want) != NULL, "%s: no message says \"%s\":\n%s", path, want, said);
#undef SAID
}

/* c printed as train saves it, read back and printed again: the same text. */
static void expect_round_trip(const bk_config *c, const char *what) {
    char *once = NULL, *twice = NULL;
    size_t n1 = 0, n2 = 0;
    FILE *m = open_memstream(&once, &n1);
    bk_config_print(c, m, false);
    fclose(m);
    bk_config back;
    bk_config_defaults(&back);
    bk_status st = bk_config_parse_text(&back, once, "printed");
    EXPECT(st == BK_OK, "%s: the printed configuration does not read back: %s", what, bk_last_error());
    m = open_memstream(&twice, &n2);
    bk_config_print(&back, m, false);
    fclose(m);
    EXPECT(st != BK_OK || strcmp(once, twice) == 0, "%s: the printed configuration reads back as another one",
           what);
    free(once);
    free(twice);
}

/* ---------------------------------------------------------------- the fuzzers' findings */

/* A 276-byte PNG whose tEXt chunk claims 1.8 GB: libpng allocated and cleared 1.8 GB before
 * failing. Refused with the peak memory of the process growing by less than 200 MB. */
static void fuzz_found_pngs_refused_cleanly(void) {
    const double before = peak_rss_mb();
    int n;
    char **files = files_in(REGRESS, ".png", &n);
    EXPECT(n >= 1, "no PNG in " REGRESS);
    for (int i = 0; i < n; i++) {
        expect_image_refused(files[i], files[i]);
        bk_image_info info;
        bk_status st = bk_image_read_info(files[i], &info);
        if (st != BK_OK) EXPECT_FAILS_NAMING(st, files[i], "bk_image_read_info");
    }
    free_names(files, n);
    EXPECT(peak_rss_mb() - before < 200, "reading them raised the peak memory by %.0f MB", peak_rss_mb() - before);
}

/* Configurations the config fuzzer found: a value starting with ';' (stored, then printed as
 * a comment), a --set value holding a line break (stored, then printed as two lines). A file
 * is either refused naming file:line or gives a configuration that prints and reads back as
 * itself; so is every --set piece (the pieces of a .bin between NUL bytes). */
static void fuzz_found_configs_round_trip(void) {
    int n;
    char **files = files_in(REGRESS, "", &n);
    int seen = 0;
    for (int i = 0; i < n; i++) {
        if (!strstr(files[i], "/config-")) continue;
        seen++;
        bk_config c;
        bk_config_defaults(&c);
        bk_status st = bk_config_load(&c, files[i]);
        if (st != BK_OK) {
            char where[600];
            snprintf(where, sizeof where, "%s:", files[i]);
            EXPECT(strncmp(bk_last_error(), where, strlen(where)) == 0, "%s: the message does not name file:line: %s",
                   files[i], bk_last_error());
        } else {
            expect_round_trip(&c, files[i]);
        }
        size_t len;
        char *bytes = (char *)slurp(files[i], &len);
        bk_config_defaults(&c);
        for (size_t at = 0; bytes && at < len; at += strlen(bytes + at) + 1)
            if (bk_config_set(&c, bytes + at) != BK_OK)
                EXPECT(strncmp(bk_last_error(), "--set ", 6) == 0, "%s: a --set refusal does not name the argument: %s",
                       files[i], bk_last_error());
        expect_round_trip(&c, files[i]);
        free(bytes);
    }
    EXPECT(seen >= 2, "fewer than 2 config files in " REGRESS);
    free_names(files, n);
}

/* Checkpoints the checkpoint fuzzer found: a float type of 65531 bytes and chunks larger than
 * the dataset, both of which made libhdf5 read past its chunk buffer into ours. They are in HDF5's old format, now refused before HDF5 decodes anything; the checks that
 * first caught them (the float type, the chunk layout) stay for files in the newest format. */
static void fuzz_found_checkpoints_refused_cleanly(void) {
    int n;
    char **files = files_in(REGRESS, ".h5", &n);
    EXPECT(n >= 2, "fewer than 2 checkpoints in " REGRESS);
    for (int i = 0; i < n; i++) expect_checkpoint_refused(files[i], "old format");
    free_names(files, n);
}

/* Inputs that show defects inside libhdf5 (tests/fuzz/libhdf5/README.md): reads past its own
 * buffers, a 16 GB allocation, a group listing that never ends. All are in HDF5's old format,
 * refused before libhdf5 opens them, so this runs under AddressSanitizer too. */
static void libhdf5_defect_inputs_refused_before_hdf5_reads_them(void) {
    int n;
    char **files = files_in(LIBHDF5, ".h5", &n);
    EXPECT(n >= 4, "fewer than 4 inputs in " LIBHDF5);
    for (int i = 0; i < n; i++) expect_checkpoint_refused(files[i], "old format");
    free_names(files, n);
}

/* ---------------------------------------------------------------- hand-made images */

/* Every proper prefix of a small PNG and JPEG, from 1 byte to all but the last. */
static void every_truncation_refused(void) {
    char *dir = bk_test_tmpdir();
    bk_image img;
    EXPECT(bk_image_alloc(&img, 23, 11, 3) == BK_OK, "alloc");
    for (size_t i = 0; i < (size_t)23 * 11 * 3; i++) img.pixels[i] = (uint8_t)(i * 7 + (i / 69) * 13);
    char full[512], cut[512];
    for (int fmt = 0; fmt < 2; fmt++) {
        snprintf(full, sizeof full, "%s/full.%s", dir, fmt ? "jpg" : "png");
        snprintf(cut, sizeof cut, "%s/cut.%s", dir, fmt ? "jpg" : "png");
        EXPECT((fmt ? bk_image_write_jpeg(full, &img, 90) : bk_image_write_png(full, &img)) == BK_OK, "%s",
               bk_last_error());
        size_t len;
        uint8_t *b = slurp(full, &len);
        EXPECT(b && len > 100, "%s: %zu bytes", full, len);
        for (size_t k = 1; b && k < len; k++) {
            spit(cut, b, k);
            char what[64];
            snprintf(what, sizeof what, "%s cut to %zu of %zu bytes", fmt ? "JPEG" : "PNG", k, len);
            expect_image_refused(cut, what);
        }
        free(b);
    }
    bk_image_free(&img);
    bk_test_remove_tmpdir(dir);
}

/* Deterministic garbage after a PNG signature, a JPEG SOI and nothing. */
static void garbage_refused(void) {
    char *dir = bk_test_tmpdir();
    char path[512];
    uint8_t buf[4096];
    uint64_t x = 0x9E3779B97F4A7C15ull;
    const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'}, soi[3] = {0xFF, 0xD8, 0xFF};
    for (int round = 0; round < 30; round++) {
        for (size_t i = 0; i < sizeof buf; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            buf[i] = (uint8_t)x;
        }
        if (round % 3 == 0) memcpy(buf, png_sig, sizeof png_sig);
        if (round % 3 == 1) memcpy(buf, soi, sizeof soi);
        size_t len = 16 + (size_t)round * 130;
        snprintf(path, sizeof path, "%s/garbage%d.img", dir, round);
        spit(path, buf, len);
        expect_image_refused(path, "garbage");
        bk_h5 f;
        EXPECT_FAILS_NAMING(bk_h5_open(&f, path), path, "garbage as HDF5");
        bk_config c;
        bk_config_defaults(&c);
        bk_status st = bk_config_load(&c, path);
        EXPECT_FAILS_NAMING(st, path, "garbage as a config");
    }
    bk_test_remove_tmpdir(dir);
}

/* ---------------------------------------------------------------- hand-made configs */

/* A NUL byte: everything after it on the line was silently dropped ("steps = 5\0x" read as 5). */
static void config_with_nul_refused(void) {
    char *dir = bk_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/nul.ini", dir);
    const char text[] = "[train]\nlr = 1e-4\nsteps = 5\0 and the rest\n";
    spit(path, text, sizeof text - 1);
    bk_config c;
    bk_config_defaults(&c);
    char where[600];
    snprintf(where, sizeof where, "%s:3", path);
    EXPECT_FAILS_NAMING(bk_config_load(&c, path), where, "a NUL byte on line 3");
    EXPECT(strstr(bk_last_error(), "NUL") != NULL, "the message does not say NUL: %s", bk_last_error());
    bk_test_remove_tmpdir(dir);
}

/* A 100 KB line: a long value is refused, not cut; a number followed by 100 KB of spaces and
 * garbage was read as the number (the value was cut at 1023 characters, then trimmed). */
static void config_with_100kb_line_refused(void) {
    char *dir = bk_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/long.ini", dir);
    const size_t big = 100 * 1024;
    char *text = malloc(big + 64);
    for (int kind = 0; kind < 2; kind++) {
        size_t n = (size_t)snprintf(text, 64, kind ? "[train]\nsteps = 12" : "[data]\nroot = ");
        memset(text + n, kind ? ' ' : 'a', big);
        n += big;
        n += (size_t)snprintf(text + n, 64, kind ? "x\n" : "\n");
        spit(path, text, n);
        bk_config c;
        bk_config_defaults(&c);
        char where[600];
        snprintf(where, sizeof where, "%s:2", path);
        EXPECT_FAILS_NAMING(bk_config_load(&c, path), where, kind ? "a number, 100 KB of spaces, x" : "a 100 KB value");
        EXPECT(c.train_steps == 1000, "train.steps changed to %lld", (long long)c.train_steps);
        /* the same through --set */
        char *set = malloc(big + 64);
        n = (size_t)snprintf(set, 64, kind ? "train.steps=12" : "data.root=");
        memset(set + n, kind ? ' ' : 'a', big);
        snprintf(set + n + big, 64, kind ? "x" : "");
        EXPECT(bk_config_set(&c, set) != BK_OK, "--set with a 100 KB value accepted");
        EXPECT(strncmp(bk_last_error(), "--set ", 6) == 0, "the --set message: %.80s", bk_last_error());
        EXPECT(c.train_steps == 1000, "train.steps changed to %lld by --set", (long long)c.train_steps);
        free(set);
    }
    free(text);
    bk_test_remove_tmpdir(dir);
}

/* ---------------------------------------------------------------- hand-made HDF5 files */

/* An HDF5 file with a dataset and a format attribute of something else, a PNG, and a
 * checkpoint naming a model that does not exist (its message did not name the file). */
static void wrong_kind_of_file_refused(void) {
    char *dir = bk_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/other.h5", dir);
    bk_h5 f;
    const int64_t dims[2] = {2, 3};
    const float x[6] = {1, 2, 3, 4, 5, 6};
    EXPECT(bk_h5_create(&f, path) == BK_OK && bk_h5_write_f32(&f, "/data/x", 2, dims, x) == BK_OK &&
               bk_h5_set_attr_str(&f, "format", "bokehlab-lpips") == BK_OK && bk_h5_close(&f, true) == BK_OK,
           "%s", bk_last_error());
    expect_checkpoint_refused(path, NULL);

    snprintf(path, sizeof path, "%s/image.h5", dir);
    bk_image img;
    bk_image_alloc(&img, 4, 4, 3);
    EXPECT(bk_image_write_png(path, &img) == BK_OK, "%s", bk_last_error());
    bk_image_free(&img);
    expect_checkpoint_refused(path, NULL);

    snprintf(path, sizeof path, "%s/unknown_model.h5", dir);
    EXPECT(bk_h5_create(&f, path) == BK_OK && bk_h5_set_attr_str(&f, "format", BK_CKPT_FORMAT) == BK_OK &&
               bk_h5_set_attr_int(&f, "version", BK_CKPT_VERSION) == BK_OK &&
               bk_h5_set_attr_str(&f, "model", "resnet50") == BK_OK && bk_h5_set_attr_str(&f, "variant", "") == BK_OK &&
               bk_h5_close(&f, true) == BK_OK,
           "%s", bk_last_error());
    bk_model *m = NULL;
    EXPECT_FAILS_NAMING(bk_model_load(bk_test_ctx(), path, &m), path, "a checkpoint of model resnet50");
    EXPECT(strstr(bk_last_error(), "resnet50") != NULL, "the message does not name the model: %s", bk_last_error());
    bk_test_remove_tmpdir(dir);
}

/* Root attributes bokehlab does not write: arrays where one value is read (libhdf5's H5LT
 * readers wrote all 8 values of "step" into one: a stack overflow), a variable-length string
 * (read as a pointer's bytes, leaking the string), a float where an integer is read. */
static void attributes_of_other_shapes_refused(void) {
    char *dir = bk_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/attrs.h5", dir);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    EXPECT(file >= 0, "cannot create %s", path);
    const long long steps[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    H5LTset_attribute_long_long(file, "/", "step", steps, 8);
    const double psnr = 24.5;
    H5LTset_attribute_double(file, "/", "epoch", &psnr, 1);
    /* three fixed-length strings of 19 bytes */
    hsize_t three = 3;
    hid_t type = H5Tcopy(H5T_C_S1), space = H5Screate_simple(1, &three, NULL);
    H5Tset_size(type, 19);
    hid_t a = H5Acreate2(file, "format", type, space, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, type, "bokehlab-checkpointbokehlab-checkpointbokehlab-checkpoint");
    H5Aclose(a);
    H5Sclose(space);
    H5Tclose(type);
    /* a variable-length string */
    type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    space = H5Screate(H5S_SCALAR);
    a = H5Acreate2(file, "config", type, space, H5P_DEFAULT, H5P_DEFAULT);
    const char *text = "[train]\nsteps = 5\n";
    H5Awrite(a, type, &text);
    H5Aclose(a);
    H5Sclose(space);
    H5Tclose(type);
    H5Fclose(file);

    bk_h5 f;
    EXPECT(bk_h5_open(&f, path) == BK_OK, "%s", bk_last_error());
    int64_t v = -1;
    EXPECT_FAILS_NAMING(bk_h5_get_attr_int(&f, "step", &v), path, "an 8-value step");
    EXPECT(strstr(bk_last_error(), "8 values") != NULL, "the message does not say 8 values: %s", bk_last_error());
    EXPECT(v == -1, "step read as %lld", (long long)v);
    EXPECT_FAILS_NAMING(bk_h5_get_attr_int(&f, "epoch", &v), path, "a float epoch");
    char s[64];
    EXPECT_FAILS_NAMING(bk_h5_get_attr_str(&f, "format", s, sizeof s), path, "three format strings");
    char *config = malloc(1 << 20);
    EXPECT_FAILS_NAMING(bk_h5_get_attr_str(&f, "config", config, 1 << 20), path, "a variable-length config");
    free(config);
    EXPECT_FAILS_NAMING(bk_h5_get_attr_str(&f, "step", s, sizeof s), path, "an integer read as a string");
    bk_h5_close(&f, false);
    expect_checkpoint_refused(path, NULL);
    bk_test_remove_tmpdir(dir);
}

/* A string attribute longer than the reader's buffer is refused, not cut. */
static void long_string_attribute_refused(void) {
    char *dir = bk_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/long.h5", dir);
    bk_h5 f;
    char variant[300];
    memset(variant, 'n', sizeof variant - 1);
    variant[sizeof variant - 1] = '\0';
    EXPECT(bk_h5_create(&f, path) == BK_OK && bk_h5_set_attr_str(&f, "format", BK_CKPT_FORMAT) == BK_OK &&
               bk_h5_set_attr_int(&f, "version", BK_CKPT_VERSION) == BK_OK &&
               bk_h5_set_attr_str(&f, "model", "dmshn") == BK_OK && bk_h5_set_attr_str(&f, "variant", variant) == BK_OK &&
               bk_h5_close(&f, true) == BK_OK,
           "%s", bk_last_error());
    EXPECT(bk_h5_open(&f, path) == BK_OK, "%s", bk_last_error());
    char got[128];
    EXPECT_FAILS_NAMING(bk_h5_get_attr_str(&f, "variant", got, sizeof got), path, "a 299-character variant");
    EXPECT(strstr(bk_last_error(), "longer than 127") != NULL, "%s", bk_last_error());
    char fits[300];
    EXPECT(bk_h5_get_attr_str(&f, "variant", fits, sizeof fits) == BK_OK && strcmp(fits, variant) == 0,
           "the same attribute into 300 bytes: %s", bk_last_error());
    bk_h5_close(&f, false);
    bk_test_remove_tmpdir(dir);
}

/* train --resume reads the configuration stored in the checkpoint: a bad line in it is named
 * with the checkpoint (it was "the checkpoint's config:2", without the file). */
static void stored_config_errors_name_the_checkpoint(void) {
    char *dir = bk_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/last.h5", dir);
    bk_h5 f;
    EXPECT(bk_h5_create(&f, path) == BK_OK && bk_h5_set_attr_str(&f, "config", "[train]\nsteps = many\n") == BK_OK &&
               bk_h5_close(&f, true) == BK_OK,
           "%s", bk_last_error());
    bk_train_options o = {.resume = path};
    bk_train_result r;
    char where[600];
    snprintf(where, sizeof where, "%s (stored config):2", path);
    EXPECT_FAILS_NAMING(bk_train(&o, &r), where, "a stored config with steps = many");
    EXPECT(strstr(bk_last_error(), "train.steps") != NULL, "%s", bk_last_error());
    bk_test_remove_tmpdir(dir);
}

BK_TEST_MAIN(BK_TEST(fuzz_found_pngs_refused_cleanly), BK_TEST(fuzz_found_configs_round_trip),
             BK_TEST(fuzz_found_checkpoints_refused_cleanly), BK_TEST(libhdf5_defect_inputs_refused_before_hdf5_reads_them),
             BK_TEST(every_truncation_refused), BK_TEST(garbage_refused), BK_TEST(config_with_nul_refused),
             BK_TEST(config_with_100kb_line_refused), BK_TEST(wrong_kind_of_file_refused),
             BK_TEST(attributes_of_other_shapes_refused), BK_TEST(long_string_attribute_refused),
             BK_TEST(stored_config_errors_name_the_checkpoint))
