/* test_ebb.c — the EBB! dataset layer (data/ebb.h): splits on index lists (val294, tail:K, all,
 * list:FILE, training lists), scanning a root (numeric order, ignored names, missing
 * directories) and validation reports (orphans, size mismatches, truncated, empty and
 * mis-sized files).
 *
 * Split cases need no files but the list files they read; scanning and validation run on a
 * small synthetic root (bk_synth_write, height 48) made in a per-case directory under /tmp. */
#define _GNU_SOURCE /* open_memstream */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/ebb.h"
#include "data/image.h"
#include "data/synth.h"
#include "tests/support/harness.h"

/* ---------------------------------------------------------------- helpers */

/* snprintf into a caller's buffer, returning it. */
static const char *fmt_path(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static const char *fmt_path(char *buf, size_t len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    return buf;
}
#define PATHF(buf, ...) fmt_path(buf, sizeof buf, __VA_ARGS__)

static void spit(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        printf("    cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
    if (len) fwrite(data, 1, len, f);
    fclose(f);
}

static void spit_str(const char *path, const char *s) { spit(path, s, strlen(s)); }

static void copy_file(const char *from, const char *to) {
    FILE *f = fopen(from, "rb");
    if (!f) {
        printf("    cannot read %s\n", from);
        exit(1);
    }
    char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    spit(to, buf, n);
}

static long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static bool exists(const char *path) { return file_size(path) >= 0; }

static void write_small_image(const char *path, int w, int h, int channels, bool png) {
    bk_image img;
    bk_image_alloc(&img, w, h, channels);
    for (int i = 0; i < w * h * channels; i++) img.pixels[i] = (uint8_t)(i * 7);
    bk_status st = png ? bk_image_write_png(path, &img) : bk_image_write_jpeg(path, &img, 90);
    if (st != BK_OK) {
        printf("    %s\n", bk_last_error());
        exit(1);
    }
    bk_image_free(&img);
}

static int32_t *range_ids(int32_t lo, int32_t hi) { /* lo..hi inclusive */
    int32_t *v = malloc((size_t)(hi - lo + 1) * sizeof *v);
    for (int32_t i = lo; i <= hi; i++) v[i - lo] = i;
    return v;
}

/* Whether s->train (or eval) is exactly lo..hi. */
static bool is_range(const int32_t *v, int64_t n, int32_t lo, int32_t hi) {
    if (n != hi - lo + 1) return false;
    for (int64_t i = 0; i < n; i++)
        if (v[i] != lo + i) return false;
    return true;
}

static bool same_ids(const int32_t *a, int64_t na, const int32_t *b, int64_t nb) {
    return na == nb && (na == 0 || memcmp(a, b, (size_t)na * sizeof *a) == 0);
}

/* A refusal whose message contains `want` (NULL: anything). */
#define EXPECT_REFUSED(st, want, ...)                                                          \
    do {                                                                                       \
        bk_status st_ = (st);                                                                  \
        EXPECT(st_ != BK_OK, __VA_ARGS__);                                                     \
        const char *want_ = (want);                                                            \
        if (st_ != BK_OK && want_)                                                             \
            EXPECT(strstr(bk_last_error(), want_) != NULL, "message lacks \"%s\": %s", want_, \
                   bk_last_error());                                                           \
    } while (0)

/* ---------------------------------------------------------------- val294, tail, all */

static void val294_on_ebb_indices(void) {
    int32_t *ids = range_ids(0, 4693);
    bk_ebb_split s;
    EXPECT(bk_ebb_split_make(ids, 4694, "val294", NULL, &s) == BK_OK, "val294: %s", bk_last_error());
    EXPECT(s.n_train == 4400 && s.n_eval == 294, "val294: %lld train, %lld eval", (long long)s.n_train,
           (long long)s.n_eval);
    EXPECT(is_range(s.train, s.n_train, 0, 4399), "val294 training set is not 0..4399");
    EXPECT(is_range(s.eval, s.n_eval, 4400, 4693), "val294 evaluation set is not 4400..4693");
    EXPECT(strcmp(s.name, "val294") == 0, "name \"%s\"", s.name);
    bk_ebb_split_free(&s);

    /* tail:294 is val294 on EBB! */
    bk_ebb_split t;
    EXPECT(bk_ebb_split_make(ids, 4694, "tail:294", NULL, &t) == BK_OK, "tail:294: %s", bk_last_error());
    EXPECT(bk_ebb_split_make(ids, 4694, "val294", NULL, &s) == BK_OK, "val294: %s", bk_last_error());
    EXPECT(same_ids(s.train, s.n_train, t.train, t.n_train) && same_ids(s.eval, s.n_eval, t.eval, t.n_eval),
           "tail:294 differs from val294 (%lld/%lld vs %lld/%lld)", (long long)t.n_train,
           (long long)t.n_eval, (long long)s.n_train, (long long)s.n_eval);
    bk_ebb_split_free(&s);
    bk_ebb_split_free(&t);
    free(ids);
}

static void val294_refused_on_other_datasets(void) {
    bk_ebb_split s;
    int32_t *ids = range_ids(0, 4694);
    EXPECT_REFUSED(bk_ebb_split_make(ids, 4693, "val294", NULL, &s), "tail:", "val294 on 4693 pairs accepted");
    EXPECT_REFUSED(bk_ebb_split_make(ids, 4695, "val294", NULL, &s), "4695", "val294 on 0..4694 accepted");
    EXPECT_REFUSED(bk_ebb_split_make(ids + 1, 4694, "val294", NULL, &s), NULL, "val294 on 1..4694 accepted");
    /* 4694 pairs with a hole at 1000 and 4694 at the end */
    int32_t *holed = malloc(4694 * sizeof *holed);
    for (int i = 0, k = 0; k < 4694; i++)
        if (i != 1000) holed[k++] = i;
    EXPECT_REFUSED(bk_ebb_split_make(holed, 4694, "val294", NULL, &s), NULL,
                   "val294 on 4694 pairs that are not 0..4693 accepted");
    int32_t few[5] = {0, 1, 2, 3, 4};
    EXPECT_REFUSED(bk_ebb_split_make(few, 5, "val294", NULL, &s), "val294", "val294 on 5 pairs accepted");
    free(holed);
    free(ids);
}

static void tail_k_on_small_lists(void) {
    int32_t ids[5] = {3, 5, 8, 13, 21};
    bk_ebb_split s;
    for (int k = 1; k <= 4; k++) {
        char spec[32];
        snprintf(spec, sizeof spec, "tail:%d", k);
        EXPECT(bk_ebb_split_make(ids, 5, spec, NULL, &s) == BK_OK, "%s: %s", spec, bk_last_error());
        EXPECT(same_ids(s.train, s.n_train, ids, 5 - k) && same_ids(s.eval, s.n_eval, ids + 5 - k, k),
               "%s on 3,5,8,13,21: %lld train, %lld eval", spec, (long long)s.n_train, (long long)s.n_eval);
        EXPECT(strcmp(s.name, spec) == 0, "name \"%s\"", s.name);
        bk_ebb_split_free(&s);
    }
    const char *bad[] = {"tail:0", "tail:5", "tail:6", "tail:-1", "tail:abc", "tail:", "tail:2x", "tail: 2x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        EXPECT_REFUSED(bk_ebb_split_make(ids, 5, bad[i], NULL, &s), bad[i], "%s accepted on 5 pairs", bad[i]);
    int32_t one[1] = {7};
    EXPECT_REFUSED(bk_ebb_split_make(one, 1, "tail:1", NULL, &s), NULL, "tail:1 on one pair accepted");
    EXPECT(bk_ebb_split_make(ids, 2, "tail:1", NULL, &s) == BK_OK && s.n_train == 1 && s.train[0] == 3 &&
               s.n_eval == 1 && s.eval[0] == 5,
           "tail:1 on two pairs: %s", bk_last_error());
    bk_ebb_split_free(&s);
}

/* "all" has an empty evaluation set; with a training list, training is the list. */
static void all_trains_on_everything(void) {
    int32_t ids[6] = {0, 2, 4, 6, 8, 10};
    bk_ebb_split s;
    EXPECT(bk_ebb_split_make(ids, 6, "all", NULL, &s) == BK_OK, "all: %s", bk_last_error());
    EXPECT(same_ids(s.train, s.n_train, ids, 6) && s.n_eval == 0, "all: %lld train, %lld eval",
           (long long)s.n_train, (long long)s.n_eval);
    EXPECT(strcmp(s.name, "all") == 0, "name \"%s\"", s.name);
    bk_ebb_split_free(&s);
    char *dir = bk_test_tmpdir();
    char list[512];
    PATHF(list, "%s/train_list.txt", dir);
    spit_str(list, "# cleaned\n2.jpg\n  8\n10.jpg\n99999.jpg\n");
    EXPECT(bk_ebb_split_make(ids, 6, "all", list, &s) == BK_OK, "all + list: %s", bk_last_error());
    const int32_t want[] = {2, 8, 10};
    EXPECT(same_ids(s.train, s.n_train, want, 3) && s.n_eval == 0, "all + list: %lld training pairs (want 2, 8, 10)",
           (long long)s.n_train);
    bk_ebb_split_free(&s);
    bk_test_remove_tmpdir(dir);
}

static void unknown_specs_refused(void) {
    int32_t ids[6] = {0, 2, 4, 6, 8, 10};
    bk_ebb_split s;
    const char *bad[] = {"val295", "", "ALL", "tail", "list", "val294 ", "random:5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char want[64];
        snprintf(want, sizeof want, "\"%s\"", bad[i]);
        EXPECT_REFUSED(bk_ebb_split_make(ids, 6, bad[i], NULL, &s), want, "split \"%s\" accepted", bad[i]);
    }
}

/* An empty index list is refused (it cannot come from bk_ebb_scan, but the API takes any n). */
static void splits_of_an_empty_list_refused(void) {
    const char *specs[] = {"tail:1", "val294"};
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        bk_ebb_split s;
        EXPECT_REFUSED(bk_ebb_split_make(NULL, 0, specs[i], NULL, &s), NULL, "%s on no pairs accepted",
                       specs[i]);
    }
}

/* ---------------------------------------------------------------- list:FILE */

static void list_file_ranges_and_comments(void) {
    char *dir = bk_test_tmpdir();
    char path[512], spec[600];
    PATHF(path, "%s/split.txt", dir);
    spit_str(path,
             "# a split for the test\n"
             "\n"
             "train 0-9,12\n"
             "   train 14 , 15-16 # trailing comment\n"
             "train 3\n" /* a repeat: kept once */
             "eval 20-24,27\n"
             "\teval 29\n"
             "# eval 13 (commented out)\n");
    int32_t *ids = range_ids(0, 29);
    bk_ebb_split s;
    PATHF(spec, "list:%s", path);
    EXPECT(bk_ebb_split_make(ids, 30, spec, NULL, &s) == BK_OK, "%s: %s", spec, bk_last_error());
    const int32_t want_train[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 14, 15, 16};
    const int32_t want_eval[] = {20, 21, 22, 23, 24, 27, 29};
    EXPECT(same_ids(s.train, s.n_train, want_train, 14), "list: training set of %lld", (long long)s.n_train);
    EXPECT(same_ids(s.eval, s.n_eval, want_eval, 7), "list: evaluation set of %lld", (long long)s.n_eval);
    bk_ebb_split_free(&s);
    free(ids);
    bk_test_remove_tmpdir(dir);
}

/* A list with only an evaluation line leaves no pair for training: refused. (The list is read
 * through /dev/fd with its directory already removed: the sanitizer build aborts in this case,
 * see the report, and leaves nothing behind.) */
static void list_without_training_pairs_refused(void) {
    char *dir = bk_test_tmpdir();
    char path[512], spec[600];
    PATHF(path, "%s/split.txt", dir);
    spit_str(path, "# evaluation only\neval 1-3\n");
    int fd = open(path, O_RDONLY);
    bk_test_remove_tmpdir(dir);
    PATHF(spec, "list:/dev/fd/%d", fd);
    int32_t *ids = range_ids(0, 29);
    bk_ebb_split s;
    EXPECT_REFUSED(bk_ebb_split_make(ids, 30, spec, NULL, &s), "no pair for training",
                   "a list with no training pair accepted");
    close(fd);
    free(ids);
}

static void list_file_errors_name_file_and_line(void) {
    char *dir = bk_test_tmpdir();
    char path[512], spec[600], where[600];
    PATHF(path, "%s/split.txt", dir);
    PATHF(spec, "list:%s", path);
    /* the dataset lacks 15 and 40 */
    int32_t ids[45];
    int n = 0;
    for (int i = 0; i < 45; i++)
        if (i != 15 && i != 40) ids[n++] = i;
    bk_ebb_split s;
    struct {
        const char *text;
        int line;
        const char *also;
    } bad[] = {
        {"train 0-9\neval 40\n", 2, "40"},              /* a single index not in the dataset */
        {"# c\ntrain 10-20\neval 30\n", 2, "15"},       /* a range through a missing index */
        {"train 0-9\n\neval 99-100\n", 3, "99"},
        {"train 0-9\nvalidate 30\n", 2, "train"},       /* an unknown keyword */
        {"train 9-3\n", 1, NULL},                       /* a backwards range */
        {"train 1-x\n", 1, NULL},
        {"train x\n", 1, NULL},
        {"train -3\n", 1, NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        spit_str(path, bad[i].text);
        PATHF(where, "%s:%d", path, bad[i].line);
        bk_status st = bk_ebb_split_make(ids, n, spec, NULL, &s);
        EXPECT_REFUSED(st, where, "list %zu accepted:\n%s", i, bad[i].text);
        if (st != BK_OK && bad[i].also)
            EXPECT(strstr(bk_last_error(), bad[i].also), "list %zu: message lacks \"%s\": %s", i, bad[i].also,
                   bk_last_error());
    }
    /* overlap between training and evaluation */
    spit_str(path, "train 0-9\neval 9-12\n");
    EXPECT_REFUSED(bk_ebb_split_make(ids, n, spec, NULL, &s), "overlap", "overlapping list accepted");
    spit_str(path, "train 0-9\neval 20-22\ntrain 21\n");
    EXPECT_REFUSED(bk_ebb_split_make(ids, n, spec, NULL, &s), "overlap", "overlap on a later line accepted");
    /* a missing list file */
    PATHF(where, "%s/nope.txt", dir);
    PATHF(spec, "list:%s", where);
    EXPECT_REFUSED(bk_ebb_split_make(ids, n, spec, NULL, &s), where, "a missing list file accepted");
    bk_test_remove_tmpdir(dir);
}

/* ---------------------------------------------------------------- training lists */

static void training_list_restricts_training(void) {
    char *dir = bk_test_tmpdir();
    char list[512];
    PATHF(list, "%s/train_list.txt", dir);
    int32_t *ids = range_ids(0, 4693);
    bk_ebb_split s;

    /* BGGAN style: everything, "<i>.jpg" lines, except a few excluded images */
    FILE *f = fopen(list, "w");
    const int excluded[] = {5, 17, 4399, 4400, 4500};
    for (int i = 0; i <= 4693; i++) {
        bool skip = false;
        for (size_t k = 0; k < sizeof excluded / sizeof excluded[0]; k++) skip |= excluded[k] == i;
        if (!skip) fprintf(f, i % 3 == 0 ? "%d.jpg\n" : i % 3 == 1 ? "%d\n" : "%d.jpg\r\n", i);
    }
    fclose(f);
    EXPECT(bk_ebb_split_make(ids, 4694, "val294", list, &s) == BK_OK, "val294 + list: %s", bk_last_error());
    EXPECT(s.n_train == 4400 - 3 && s.n_eval == 294, "val294 + list without 5, 17, 4399: %lld train, %lld eval",
           (long long)s.n_train, (long long)s.n_eval);
    int trained_excluded = 0, trained_eval = 0;
    for (int64_t i = 0; i < s.n_train; i++) {
        trained_excluded += s.train[i] == 5 || s.train[i] == 17 || s.train[i] == 4399;
        trained_eval += s.train[i] >= 4400;
    }
    EXPECT(trained_excluded == 0 && trained_eval == 0, "%d excluded and %d evaluation pairs trained on",
           trained_excluded, trained_eval);
    EXPECT(is_range(s.eval, s.n_eval, 4400, 4693), "the training list changed the evaluation set");
    EXPECT(strstr(s.name, "val294") && strstr(s.name, list), "name \"%s\"", s.name);
    bk_ebb_split_free(&s);

    /* a short list on a small dataset: its evaluation entries are not trained on */
    spit_str(list, "# cleaned\n3.jpg\n  7\n12.jpg\n25.jpg\n28\n99999.jpg\n");
    EXPECT(bk_ebb_split_make(ids, 30, "tail:10", list, &s) == BK_OK, "tail:10 + list: %s", bk_last_error());
    const int32_t want[] = {3, 7, 12};
    EXPECT(same_ids(s.train, s.n_train, want, 3), "tail:10 + list: %lld training pairs", (long long)s.n_train);
    EXPECT(is_range(s.eval, s.n_eval, 20, 29), "tail:10 + list: evaluation set changed");
    bk_ebb_split_free(&s);

    /* bad lines and missing files */
    char where[600];
    spit_str(list, "3.jpg\nfoo.jpg\n");
    PATHF(where, "%s:2", list);
    EXPECT_REFUSED(bk_ebb_split_make(ids, 30, "tail:10", list, &s), where, "a training list with \"foo.jpg\" accepted");
    spit_str(list, "3\n4x\n");
    EXPECT_REFUSED(bk_ebb_split_make(ids, 30, "tail:10", list, &s), where, "a training list with \"4x\" accepted");
    PATHF(where, "%s/missing.txt", dir);
    EXPECT_REFUSED(bk_ebb_split_make(ids, 30, "tail:10", where, &s), where, "a missing training list accepted");
    free(ids);
    bk_test_remove_tmpdir(dir);
}

/* The committed BGGAN list (configs/lists/bggan_clean.txt, docs/DATA.md): 4558 pairs including
 * all of Val294; with val294, training has 4264 pairs. Found from the working directory or
 * from the binary's (build/tests/../../configs). */
static void bggan_clean_list_with_val294(void) {
    char list[BK_PATH_MAX] = "configs/lists/bggan_clean.txt";
    if (!exists(list)) {
        char exe[BK_PATH_MAX] = {0};
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        char *slash = n > 0 ? strrchr(exe, '/') : NULL;
        if (slash) *slash = 0;
        PATHF(list, "%s/../../configs/lists/bggan_clean.txt", exe);
    }
    EXPECT(exists(list), "configs/lists/bggan_clean.txt not found (run from the repository root)");
    if (!exists(list)) return;
    int32_t *ids = range_ids(0, 4693);
    bk_ebb_split s;
    EXPECT(bk_ebb_split_make(ids, 4694, "tail:1", list, &s) == BK_OK && s.n_train == 4557,
           "tail:1 + BGGAN list: %lld training pairs, want 4557 (the list but 4693): %s", (long long)s.n_train,
           bk_last_error());
    bk_ebb_split_free(&s);
    EXPECT(bk_ebb_split_make(ids, 4694, "val294", list, &s) == BK_OK, "val294 + BGGAN list: %s", bk_last_error());
    EXPECT(s.n_train == 4264 && s.n_eval == 294, "val294 + BGGAN list: %lld train, %lld eval (want 4264, 294)",
           (long long)s.n_train, (long long)s.n_eval);
    EXPECT(s.n_train > 0 && s.train[s.n_train - 1] < 4400, "an evaluation pair is trained on");
    bk_ebb_split_free(&s);
    free(ids);
}

/* ---------------------------------------------------------------- scanning */

static void make_synth_root(const char *root, int count) {
    if (bk_synth_write(root, 0, count, 48, 7, 0) != BK_OK) {
        printf("    synth: %s\n", bk_last_error());
        exit(1);
    }
}

static void scan_finds_pairs_in_numeric_order(void) {
    char *dir = bk_test_tmpdir();
    char root[512], from[700], to[700];
    PATHF(root, "%s/ebb", dir);
    make_synth_root(root, 5);
    bk_ebb_index ix;
    EXPECT(bk_ebb_scan(root, &ix) == BK_OK, "scan: %s", bk_last_error());
    EXPECT(ix.count == 5 && ix.n_orphans == 0 && ix.has_mask_dir, "scan: %lld pairs, %lld orphans, mask dir %d",
           (long long)ix.count, (long long)ix.n_orphans, ix.has_mask_dir);
    EXPECT(ix.ids && is_range(ix.ids, ix.count, 0, 4), "ids are not 0..4");
    EXPECT(ix.root && strcmp(ix.root, root) == 0, "root \"%s\"", ix.root ? ix.root : "(null)");
    char p[BK_PATH_MAX];
    PATHF(to, "%s/Training/bokeh/3.jpg", root);
    EXPECT(strcmp(bk_ebb_path(&ix, 3, BK_EBB_BOKEH, p, sizeof p), to) == 0, "bokeh path %s", p);
    PATHF(to, "%s/mask/3.png", root);
    EXPECT(strcmp(bk_ebb_path(&ix, 3, BK_EBB_MASK, p, sizeof p), to) == 0, "mask path %s", p);
    bk_ebb_index_free(&ix);

    /* 10 and 20 sort after 4, not after 1 and 2 */
    const char *side[2] = {"original", "bokeh"};
    for (int s = 0; s < 2; s++)
        for (int k = 0; k < 2; k++) {
            PATHF(from, "%s/Training/%s/%d.jpg", root, side[s], k);
            PATHF(to, "%s/Training/%s/%d.jpg", root, side[s], k == 0 ? 10 : 20);
            copy_file(from, to);
        }
    EXPECT(bk_ebb_scan(root, &ix) == BK_OK, "scan: %s", bk_last_error());
    const int32_t want[] = {0, 1, 2, 3, 4, 10, 20};
    EXPECT(ix.ids && same_ids(ix.ids, ix.count, want, 7), "ids not in numeric order (%lld pairs: %d %d %d %d %d %d %d)",
           (long long)ix.count, ix.ids[0], ix.count > 1 ? ix.ids[1] : -1, ix.count > 2 ? ix.ids[2] : -1,
           ix.count > 3 ? ix.ids[3] : -1, ix.count > 4 ? ix.ids[4] : -1, ix.count > 5 ? ix.ids[5] : -1,
           ix.count > 6 ? ix.ids[6] : -1);
    bk_ebb_index_free(&ix);
    EXPECT(ix.ids == NULL && ix.root == NULL && ix.count == 0, "bk_ebb_index_free left the index set");
    bk_test_remove_tmpdir(dir);
}

static void scan_ignores_other_names(void) {
    char *dir = bk_test_tmpdir();
    char root[512], from[700], to[700];
    PATHF(root, "%s/ebb", dir);
    make_synth_root(root, 3);
    const char *junk[] = {"a.jpg", "1.jpeg", "1.JPG", "x1.jpg", "1.jpg.bak", "1.png", ".jpg", "1", "1.jpgx",
                          "1_.jpg", "-1.jpg", " 1.jpg", "1 .jpg", "99999999999.jpg"};
    for (int s = 0; s < 2; s++)
        for (size_t k = 0; k < sizeof junk / sizeof junk[0]; k++) {
            PATHF(from, "%s/Training/%s/0.jpg", root, s ? "bokeh" : "original");
            PATHF(to, "%s/Training/%s/%s", root, s ? "bokeh" : "original", junk[k]);
            copy_file(from, to);
        }
    PATHF(to, "%s/Training/original/7.jpg.d", root); /* a directory */
    mkdir(to, 0755);
    bk_ebb_index ix;
    EXPECT(bk_ebb_scan(root, &ix) == BK_OK, "scan: %s", bk_last_error());
    EXPECT(ix.ids && is_range(ix.ids, ix.count, 0, 2) && ix.n_orphans == 0,
           "other names were taken for pairs: %lld pairs, %lld orphans", (long long)ix.count,
           (long long)ix.n_orphans);
    bk_ebb_index_free(&ix);
    bk_test_remove_tmpdir(dir);
}

/* Every pair the scan reports has its files at bk_ebb_path: a zero-padded name ("01.jpg") is
 * not pair 1, whose path is ".../1.jpg". */
static void scan_ids_match_their_paths(void) {
    char *dir = bk_test_tmpdir();
    char root[512], from[700], to[700];
    PATHF(root, "%s/ebb", dir);
    make_synth_root(root, 3);
    for (int s = 0; s < 2; s++) {
        const char *sd = s ? "bokeh" : "original";
        PATHF(from, "%s/Training/%s/1.jpg", root, sd);
        PATHF(to, "%s/Training/%s/01.jpg", root, sd);
        copy_file(from, to);
        PATHF(to, "%s/Training/%s/007.jpg", root, sd);
        copy_file(from, to);
    }
    bk_ebb_index ix;
    EXPECT(bk_ebb_scan(root, &ix) == BK_OK, "scan: %s", bk_last_error());
    int missing = 0;
    char p[BK_PATH_MAX];
    for (int64_t k = 0; k < ix.count; k++)
        for (int s = 0; s < 2; s++)
            if (!exists(bk_ebb_path(&ix, ix.ids[k], (bk_ebb_file)s, p, sizeof p))) {
                printf("    pair %d listed, but %s does not exist\n", ix.ids[k], p);
                missing++;
            }
    EXPECT(missing == 0, "%d files of listed pairs do not exist (zero-padded names taken as indices)", missing);
    EXPECT(ix.ids && is_range(ix.ids, ix.count, 0, 2) && ix.n_orphans == 0,
           "with 01.jpg and 007.jpg beside 0..2: %lld pairs, %lld orphans (want 0..2, none)",
           (long long)ix.count, (long long)ix.n_orphans);
    bk_ebb_index_free(&ix);
    bk_test_remove_tmpdir(dir);
}

static void scan_errors_name_the_path(void) {
    char *dir = bk_test_tmpdir();
    char root[512], p[700];
    PATHF(root, "%s/ebb", dir);
    make_synth_root(root, 2);
    PATHF(p, "%s/Training/bokeh", root);
    char moved[700];
    PATHF(moved, "%s/bokeh_elsewhere", dir);
    rename(p, moved);
    bk_ebb_index ix;
    EXPECT_REFUSED(bk_ebb_scan(root, &ix), p, "a root without Training/bokeh accepted");
    EXPECT(ix.ids == NULL && ix.root == NULL, "index left set after a failed scan");
    rename(moved, p);
    EXPECT(bk_ebb_scan(root, &ix) == BK_OK && ix.count == 2, "scan after restoring: %s", bk_last_error());
    bk_ebb_index_free(&ix);

    PATHF(p, "%s/Training/original", root);
    PATHF(moved, "%s/original_elsewhere", dir);
    rename(p, moved);
    EXPECT_REFUSED(bk_ebb_scan(root, &ix), p, "a root without Training/original accepted");
    rename(moved, p);

    PATHF(p, "%s/does/not/exist", dir);
    EXPECT_REFUSED(bk_ebb_scan(p, &ix), p, "a missing root accepted");

    /* directories present, no pair: bokeh only has files of other indices */
    PATHF(p, "%s/empty", dir);
    make_synth_root(p, 1);
    char f[800];
    PATHF(f, "%s/Training/bokeh/0.jpg", p);
    char g[800];
    PATHF(g, "%s/Training/bokeh/5.jpg", p);
    rename(f, g);
    EXPECT_REFUSED(bk_ebb_scan(p, &ix), p, "a root with no pair accepted");

    /* a root path longer than the limit */
    char *longroot = malloc(BK_PATH_MAX + 10);
    memset(longroot, 'a', BK_PATH_MAX + 9);
    longroot[0] = '/';
    longroot[BK_PATH_MAX + 9] = 0;
    EXPECT_REFUSED(bk_ebb_scan(longroot, &ix), "longer", "a root of %d characters accepted", BK_PATH_MAX + 9);
    free(longroot);

    /* no mask directory: recorded, not refused */
    PATHF(p, "%s/mask", root);
    PATHF(moved, "%s/mask_elsewhere", dir);
    rename(p, moved);
    EXPECT(bk_ebb_scan(root, &ix) == BK_OK && !ix.has_mask_dir, "a root without mask/: %s, has_mask_dir %d",
           bk_last_error(), ix.has_mask_dir);
    bk_ebb_index_free(&ix);
    bk_test_remove_tmpdir(dir);
}

/* ---------------------------------------------------------------- validation */

typedef struct report {
    char *text;
    size_t len;
    int lines;
} report;

static int64_t validate_into(const bk_ebb_index *ix, bool decode, bool need_masks, int64_t max_pixels,
                             report *r) {
    FILE *f = open_memstream(&r->text, &r->len);
    int64_t n = bk_ebb_validate(ix, decode, need_masks, max_pixels, f);
    fclose(f);
    r->lines = 0;
    for (size_t i = 0; i < r->len; i++) r->lines += r->text[i] == '\n';
    return n;
}

/* The report line that starts with "index <id>:" and contains `needle`. */
static bool reported(const report *r, int id, const char *needle) {
    char head[32];
    snprintf(head, sizeof head, "index %d:", id);
    for (const char *line = r->text; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        char *copy = strndup(line, n);
        bool hit = strncmp(copy, head, strlen(head)) == 0 && strstr(copy, needle) != NULL;
        free(copy);
        if (hit) return true;
        line = end ? end + 1 : NULL;
    }
    return false;
}

static int lines_about(const report *r, int id) {
    char head[32];
    snprintf(head, sizeof head, "index %d:", id);
    int n = 0;
    for (const char *p = r->text; p && (p = strstr(p, head)); p += strlen(head))
        if (p == r->text || p[-1] == '\n') n++;
    return n;
}

static void validate_clean_root(void) {
    char *dir = bk_test_tmpdir();
    char root[512];
    PATHF(root, "%s/ebb", dir);
    make_synth_root(root, 4);
    bk_ebb_index ix;
    EXPECT(bk_ebb_scan(root, &ix) == BK_OK, "scan: %s", bk_last_error());
    for (int decode = 0; decode < 2; decode++) {
        report r;
        int64_t n = validate_into(&ix, decode, true, 0, &r);
        EXPECT(n == 0 && r.len == 0, "a clean synthetic root has %lld problems (decode %d):\n%s", (long long)n,
               decode, r.text);
        free(r.text);
    }
    EXPECT(bk_ebb_validate(&ix, true, true, 0, NULL) == 0, "validate without a report");
    /* a pixel limit below the image size: every file is reported, with and without decoding */
    for (int decode = 0; decode < 2; decode++) {
        report r;
        int64_t n = validate_into(&ix, decode, true, 100, &r);
        EXPECT(n == 12 && r.lines == 12, "max_pixels 100, decode %d: %lld problems, %d lines (want 12)",
               decode, (long long)n, r.lines);
        EXPECT(reported(&r, 2, "MP"), "no line about the limit for index 2:\n%s", r.text);
        free(r.text);
    }
    bk_ebb_index_free(&ix);
    bk_test_remove_tmpdir(dir);
}

/* One problem of each kind, each reported with its index and file and counted. */
static void validate_reports_each_problem(void) {
    char *dir = bk_test_tmpdir();
    char root[512], p[700], q[700];
    PATHF(root, "%s/ebb", dir);
    make_synth_root(root, 7);
    /* 0: fine */
    /* 1: orphan, the original without its bokeh */
    PATHF(p, "%s/Training/bokeh/1.jpg", root);
    unlink(p);
    /* 2: size mismatch between the pair: the same width, 8 rows fewer */
    PATHF(p, "%s/Training/bokeh/2.jpg", root);
    bk_image_info info2 = {0};
    bk_image_read_info(p, &info2);
    write_small_image(p, info2.width, info2.height - 8, 3, false);
    char small2[32];
    snprintf(small2, sizeof small2, "%dx%d", info2.width, info2.height - 8);
    /* 3: truncated original (the header survives) */
    PATHF(p, "%s/Training/original/3.jpg", root);
    truncate(p, file_size(p) / 2);
    /* 4: zero-byte bokeh */
    PATHF(p, "%s/Training/bokeh/4.jpg", root);
    truncate(p, 0);
    /* 5: mask of the wrong size */
    PATHF(p, "%s/mask/5.png", root);
    write_small_image(p, 20, 16, 1, true);
    /* 6: mask missing (a problem only when masks are needed) */
    PATHF(p, "%s/mask/6.png", root);
    unlink(p);
    /* 9: orphan the other way, a bokeh without its original */
    PATHF(p, "%s/Training/bokeh/0.jpg", root);
    PATHF(q, "%s/Training/bokeh/9.jpg", root);
    copy_file(p, q);

    bk_ebb_index ix;
    EXPECT(bk_ebb_scan(root, &ix) == BK_OK, "scan: %s", bk_last_error());
    EXPECT(ix.count == 6 && ix.n_orphans == 2, "scan: %lld pairs, %lld orphans (want 6, 2)", (long long)ix.count,
           (long long)ix.n_orphans);

    report r;
    int64_t n = validate_into(&ix, true, true, 0, &r);
    if (getenv("BK_TEST_VERBOSE")) printf("%s", r.text);
    EXPECT(n == 7 && r.lines == 7, "decode + masks: %lld problems, %d report lines (want 7):\n%s", (long long)n,
           r.lines, r.text);
    PATHF(p, "%s/Training/bokeh/1.jpg", root);
    EXPECT(reported(&r, 1, p), "orphan 1 not reported with %s:\n%s", p, r.text);
    PATHF(p, "%s/Training/original/9.jpg", root);
    EXPECT(reported(&r, 9, p), "orphan 9 not reported with %s:\n%s", p, r.text);
    PATHF(p, "%s/Training/bokeh/2.jpg", root);
    EXPECT(reported(&r, 2, p) && reported(&r, 2, small2), "size mismatch of 2 not reported with %s:\n%s", p, r.text);
    PATHF(p, "%s/Training/original/3.jpg", root);
    EXPECT(reported(&r, 3, p), "truncated 3 not reported with %s:\n%s", p, r.text);
    PATHF(p, "%s/Training/bokeh/4.jpg", root);
    EXPECT(reported(&r, 4, p), "zero-byte 4 not reported with %s:\n%s", p, r.text);
    PATHF(p, "%s/mask/5.png", root);
    EXPECT(reported(&r, 5, p) && reported(&r, 5, "20x16"), "mask of 5 not reported with %s:\n%s", p, r.text);
    PATHF(p, "%s/mask/6.png", root);
    EXPECT(reported(&r, 6, p), "missing mask 6 not reported with %s:\n%s", p, r.text);
    EXPECT(lines_about(&r, 0) == 0, "the good pair 0 was reported:\n%s", r.text);
    for (int id = 1; id <= 9; id++)
        if (id <= 6 || id == 9) EXPECT(lines_about(&r, id) == 1, "index %d has %d report lines", id, lines_about(&r, id));
    free(r.text);

    /* headers only: the truncated original is not seen; masks optional: 6 is fine */
    n = validate_into(&ix, false, false, 0, &r);
    EXPECT(n == 5 && r.lines == 5, "headers, masks optional: %lld problems, %d lines (want 5):\n%s", (long long)n,
           r.lines, r.text);
    EXPECT(lines_about(&r, 3) == 0 && lines_about(&r, 6) == 0, "3 or 6 reported from headers only:\n%s", r.text);
    EXPECT(lines_about(&r, 5) == 1, "a mask of the wrong size is not reported when masks are optional:\n%s", r.text);
    free(r.text);
    EXPECT(bk_ebb_validate(&ix, true, true, 0, NULL) == 7, "the count differs without a report stream");
    bk_ebb_index_free(&ix);
    bk_test_remove_tmpdir(dir);
}

BK_TEST_MAIN(BK_TEST(val294_on_ebb_indices), BK_TEST(val294_refused_on_other_datasets),
             BK_TEST(tail_k_on_small_lists), BK_TEST(all_trains_on_everything), BK_TEST(unknown_specs_refused),
             BK_TEST(splits_of_an_empty_list_refused), BK_TEST(list_file_ranges_and_comments), BK_TEST(list_without_training_pairs_refused),
             BK_TEST(list_file_errors_name_file_and_line), BK_TEST(training_list_restricts_training),
             BK_TEST(bggan_clean_list_with_val294),
             BK_TEST(scan_finds_pairs_in_numeric_order), BK_TEST(scan_ignores_other_names),
             BK_TEST(scan_ids_match_their_paths), BK_TEST(scan_errors_name_the_path),
             BK_TEST(validate_clean_root), BK_TEST(validate_reports_each_problem))
