/* test_loader.c — the batch loader (data/loader.h) on a small synthetic root (12 pairs, height
 * 48, widths 64..76): batch shapes and ranges, determinism (seed, workers, prefetch, resuming at
 * a step), epochs as permutations, the paired geometry of crops and flips checked against a
 * reference decode + bk_resize_image + crop/flip, errors from corrupt files, closing while
 * workers wait, and refused configurations. */
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/ops.h"
#include "data/ebb.h"
#include "data/image.h"
#include "data/loader.h"
#include "data/synth.h"
#include "tests/support/harness.h"

/* ---------------------------------------------------------------- helpers */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

enum { NPAIRS = 12, HEIGHT = 48 };

/* A synthetic root in a fresh directory, scanned. */
typedef struct fixture {
    char *dir;
    char root[512];
    bk_ebb_index ix;
} fixture;

static void fixture_open(fixture *f, int count) {
    alarm(60); /* a hung loader fails the case in a minute (SIGALRM), not at the harness's limit */
    f->dir = bk_test_tmpdir();
    snprintf(f->root, sizeof f->root, "%s/ebb", f->dir);
    /* the generator's output does not depend on the thread count; one thread is fastest for
     * these tiny images */
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    bk_status st = bk_synth_write(f->root, 0, count, HEIGHT, 11, 0);
    omp_set_num_threads(threads);
    if (st != BK_OK || bk_ebb_scan(f->root, &f->ix) != BK_OK) {
        printf("    fixture: %s\n", bk_last_error());
        exit(1);
    }
}

static void fixture_close(fixture *f) {
    bk_ebb_index_free(&f->ix);
    bk_test_remove_tmpdir(f->dir);
}

/* Random crops and flips, shuffled, 4 per batch, 32x40 crops of the files' own size. */
static bk_loader_config base_config(const fixture *f) {
    bk_loader_config c = {0};
    c.index = &f->ix;
    c.ids = f->ix.ids;
    c.n_ids = f->ix.count;
    c.batch = 4;
    c.crop_h = 32, c.crop_w = 40;
    c.hflip = c.vflip = true;
    c.shuffle = true;
    c.masks = true;
    c.range = BK_RANGE_01;
    c.seed = 1234;
    c.workers = 2;
    c.prefetch = 2;
    return c;
}

/* A batch copied out of the loader. */
typedef struct saved {
    int64_t step, epoch;
    int n, h, w;
    float *input, *target, *mask;
    int32_t ids[BK_LOADER_MAX_BATCH];
    int orig_h[BK_LOADER_MAX_BATCH], orig_w[BK_LOADER_MAX_BATCH];
} saved;

static void save(saved *s, const bk_batch *b) {
    size_t px = (size_t)b->n * b->h * b->w;
    s->step = b->step, s->epoch = b->epoch;
    s->n = b->n, s->h = b->h, s->w = b->w;
    s->input = malloc(px * 3 * sizeof(float));
    s->target = malloc(px * 3 * sizeof(float));
    memcpy(s->input, b->input, px * 3 * sizeof(float));
    memcpy(s->target, b->target, px * 3 * sizeof(float));
    s->mask = NULL;
    if (b->mask) {
        s->mask = malloc(px * sizeof(float));
        memcpy(s->mask, b->mask, px * sizeof(float));
    }
    memcpy(s->ids, b->ids, sizeof s->ids);
    memcpy(s->orig_h, b->orig_h, sizeof s->orig_h);
    memcpy(s->orig_w, b->orig_w, sizeof s->orig_w);
}

static void saved_free(saved *s, int n) {
    for (int i = 0; i < n; i++) {
        free(s[i].input);
        free(s[i].target);
        free(s[i].mask);
    }
    free(s);
}

/* Runs a loader for n batches; NULL (and a failure recorded) if anything goes wrong. */
static saved *run(const bk_loader_config *cfg, int n) {
    bk_loader *l;
    if (bk_loader_open(&l, cfg) != BK_OK) {
        bk_test_fail(__FILE__, __LINE__, "open: %s", bk_last_error());
        return NULL;
    }
    saved *out = calloc((size_t)n, sizeof *out);
    for (int k = 0; k < n; k++) {
        const bk_batch *b;
        if (bk_loader_next(l, &b) != BK_OK) {
            bk_test_fail(__FILE__, __LINE__, "batch %d: %s", k, bk_last_error());
            saved_free(out, k);
            bk_loader_close(l);
            return NULL;
        }
        save(&out[k], b);
    }
    bk_loader_close(l);
    return out;
}

static bool same_batch(const saved *a, const saved *b) {
    if (a->n != b->n || a->h != b->h || a->w != b->w || a->step != b->step || a->epoch != b->epoch) return false;
    size_t px = (size_t)a->n * a->h * a->w;
    if (memcmp(a->ids, b->ids, (size_t)a->n * sizeof a->ids[0]) != 0) return false;
    if (memcmp(a->input, b->input, px * 3 * sizeof(float)) || memcmp(a->target, b->target, px * 3 * sizeof(float)))
        return false;
    if ((a->mask == NULL) != (b->mask == NULL)) return false;
    return !a->mask || memcmp(a->mask, b->mask, px * sizeof(float)) == 0;
}

/* Index of the first batch where two runs differ, or -1. */
static int first_difference(const saved *a, const saved *b, int n) {
    for (int k = 0; k < n; k++)
        if (!same_batch(&a[k], &b[k])) return k;
    return -1;
}

static void minmax(const float *v, size_t n, float *lo, float *hi) {
    *lo = INFINITY, *hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < *lo) *lo = v[i];
        if (v[i] > *hi) *hi = v[i];
    }
}

/* ---------------------------------------------------------------- shapes and ranges */

static void batches_have_the_configured_shape_and_range(void) {
    fixture f;
    fixture_open(&f, NPAIRS);
    EXPECT(f.ix.count == NPAIRS && f.ix.has_mask_dir, "fixture: %lld pairs", (long long)f.ix.count);
    bk_loader_config c = base_config(&f);
    enum { N = 6 };
    saved *a = run(&c, N);
    c.range = BK_RANGE_PM1;
    saved *b = run(&c, N);
    for (int k = 0; a && b && k < N; k++) {
        EXPECT(a[k].n == 4 && a[k].h == 32 && a[k].w == 40 && a[k].mask, "batch %d: %dx%dx%d, mask %p", k, a[k].n,
               a[k].h, a[k].w, (void *)a[k].mask);
        EXPECT(a[k].step == k && a[k].epoch == k * 4 / NPAIRS, "batch %d: step %lld, epoch %lld", k,
               (long long)a[k].step, (long long)a[k].epoch);
        size_t px = (size_t)4 * 32 * 40;
        float lo, hi;
        minmax(a[k].input, px * 3, &lo, &hi);
        EXPECT(lo >= 0 && hi <= 1 && hi - lo > 0.5f, "[0,1] input of batch %d spans %g..%g", k, lo, hi);
        minmax(a[k].target, px * 3, &lo, &hi);
        EXPECT(lo >= 0 && hi <= 1 && hi - lo > 0.3f, "[0,1] target of batch %d spans %g..%g", k, lo, hi);
        minmax(a[k].mask, px, &lo, &hi);
        EXPECT(lo >= 0 && hi <= 1, "mask of batch %d spans %g..%g", k, lo, hi);
        minmax(b[k].input, px * 3, &lo, &hi);
        EXPECT(lo >= -1 && hi <= 1 && lo < -0.2f, "[-1,1] input of batch %d spans %g..%g", k, lo, hi);
        minmax(b[k].target, px * 3, &lo, &hi);
        EXPECT(lo >= -1 && hi <= 1, "[-1,1] target of batch %d spans %g..%g", k, lo, hi);
        int off = 0;
        for (size_t i = 0; i < px * 3; i++)
            off += fabsf(b[k].input[i] - (2 * a[k].input[i] - 1)) > 1e-6f ||
                   fabsf(b[k].target[i] - (2 * a[k].target[i] - 1)) > 1e-6f;
        EXPECT(off == 0, "batch %d: %d values of [-1,1] are not 2 * [0,1] - 1", k, off);
        EXPECT(memcmp(a[k].mask, b[k].mask, px * sizeof(float)) == 0, "batch %d: the range changed the mask", k);
        EXPECT(memcmp(a[k].ids, b[k].ids, 4 * sizeof(int32_t)) == 0, "batch %d: the range changed the order", k);
        for (int i = 0; i < 4; i++) {
            bk_image_info info;
            char p[BK_PATH_MAX];
            bk_image_read_info(bk_ebb_path(&f.ix, a[k].ids[i], BK_EBB_ORIGINAL, p, sizeof p), &info);
            EXPECT(a[k].orig_h[i] == info.height && a[k].orig_w[i] == info.width,
                   "batch %d sample %d: orig %dx%d, the file is %dx%d", k, i, a[k].orig_w[i], a[k].orig_h[i],
                   info.width, info.height);
        }
    }
    if (a) saved_free(a, N);
    if (b) saved_free(b, N);

    /* a resize to a fixed size: every batch has it, no mask when not asked */
    c = base_config(&f);
    c.resize_h = 40, c.resize_w = 56, c.crop_h = 0, c.crop_w = 0, c.masks = false, c.batch = 3;
    a = run(&c, 5);
    for (int k = 0; a && k < 5; k++)
        EXPECT(a[k].n == 3 && a[k].h == 40 && a[k].w == 56 && a[k].mask == NULL, "resized batch %d: %dx%dx%d",
               k, a[k].n, a[k].h, a[k].w);
    if (a) saved_free(a, 5);
    fixture_close(&f);
}

/* Batch 1, no resize, no crop, no flips, in order: each batch is the files' pixels / 255. */
static void untransformed_batches_are_the_files(void) {
    fixture f;
    fixture_open(&f, 5);
    bk_loader_config c = base_config(&f);
    c.batch = 1, c.crop_h = c.crop_w = 0, c.hflip = c.vflip = false, c.shuffle = false;
    for (int r = 0; r < 2; r++) {
        c.range = r ? BK_RANGE_PM1 : BK_RANGE_01;
        saved *s = run(&c, 5);
        for (int k = 0; s && k < 5; k++) {
            bk_image img[3];
            char p[BK_PATH_MAX];
            int bad = 0, wrong_size = 0;
            for (int fi = 0; fi < 3; fi++) {
                bk_image_read(bk_ebb_path(&f.ix, f.ix.ids[k], (bk_ebb_file)fi, p, sizeof p), fi == 2 ? 1 : 3, 0, &img[fi]);
                wrong_size += img[fi].width != s[k].w || img[fi].height != s[k].h;
            }
            EXPECT(s[k].ids[0] == f.ix.ids[k] && wrong_size == 0, "batch %d: id %d, %dx%d", k, s[k].ids[0], s[k].w,
                   s[k].h);
            if (wrong_size) continue;
            size_t px = (size_t)s[k].h * s[k].w;
            for (size_t i = 0; i < px * 3; i++) {
                float want_in = img[0].pixels[i] / 255.0f, want_tg = img[1].pixels[i] / 255.0f;
                if (r) want_in = 2 * want_in - 1, want_tg = 2 * want_tg - 1;
                bad += fabsf(s[k].input[i] - want_in) > 1e-6f || fabsf(s[k].target[i] - want_tg) > 1e-6f;
            }
            for (size_t i = 0; i < px; i++) bad += fabsf(s[k].mask[i] - img[2].pixels[i] / 255.0f) > 1e-6f;
            EXPECT(bad == 0, "range %d, batch %d: %d values differ from the files", r, k, bad);
            for (int fi = 0; fi < 3; fi++) bk_image_free(&img[fi]);
        }
        if (s) saved_free(s, 5);
    }
    fixture_close(&f);
}

/* ---------------------------------------------------------------- determinism */

static void same_seed_same_batches_whatever_the_threads(void) {
    fixture f;
    fixture_open(&f, NPAIRS);
    enum { N = 10 }; /* over three epochs */
    bk_loader_config c = base_config(&f);
    c.workers = 1, c.prefetch = 1;
    saved *ref = run(&c, N);
    const int workers[] = {1, 3, 4, 2};
    const int prefetch[] = {1, 2, 4, 7};
    for (int v = 0; ref && v < 4; v++) {
        c.workers = workers[v], c.prefetch = prefetch[v];
        saved *s = run(&c, N);
        int d = s ? first_difference(ref, s, N) : -2;
        EXPECT(d == -1, "workers %d, prefetch %d: batch %d differs from 1 worker, prefetch 1", workers[v],
               prefetch[v], d);
        if (s) saved_free(s, N);
    }
    /* a different seed: a different order or different crops */
    c.seed = 1235;
    saved *other = run(&c, N);
    int same = 0, same_order = 0;
    for (int k = 0; ref && other && k < N; k++) {
        same += same_batch(&ref[k], &other[k]);
        same_order += memcmp(ref[k].ids, other[k].ids, 4 * sizeof(int32_t)) == 0;
    }
    EXPECT(same == 0, "%d of %d batches identical with another seed", same, N);
    EXPECT(same_order < N, "another seed gives the same order in all %d batches", N);
    if (ref) saved_free(ref, N);
    if (other) saved_free(other, N);
    fixture_close(&f);
}

/* Starting at step k gives batch k of a run from step 0. Batch 5 on 12 pairs: batches 2, 4 and
 * 7 straddle an epoch boundary. */
static void start_step_resumes_the_stream(void) {
    fixture f;
    fixture_open(&f, NPAIRS);
    enum { N = 9 };
    bk_loader_config c = base_config(&f);
    c.batch = 5;
    c.workers = 3;
    saved *ref = run(&c, N);
    const int starts[] = {1, 2, 4, 7};
    for (size_t i = 0; ref && i < sizeof starts / sizeof starts[0]; i++) {
        c.start_step = starts[i];
        c.workers = 1 + (int)i % 3;
        int n = N - starts[i];
        saved *s = run(&c, n);
        int d = s ? first_difference(ref + starts[i], s, n) : -2;
        EXPECT(d == -1, "start_step %d: batch %d differs from the run from 0", starts[i], d < 0 ? d : d + starts[i]);
        if (s) saved_free(s, n);
    }
    if (ref) {
        int straddle = 0;
        for (int k = 0; k < N; k++) straddle += (k * 5) / NPAIRS != (k * 5 + 4) / NPAIRS;
        EXPECT(straddle >= 3, "only %d batches straddle an epoch", straddle);
        saved_free(ref, N);
    }
    fixture_close(&f);
}

/* Shard s of S with batch N is samples sN .. sN+N-1 of every global batch of S*N: the same pairs,
 * crops, flips and masks, bit for bit, across epoch boundaries and from a start step. */
static void shards_make_up_the_global_batch(void) {
    fixture f;
    fixture_open(&f, NPAIRS);
    bk_ebb_split split;
    EXPECT(bk_ebb_split_make(f.ix.ids, f.ix.count, "tail:2", NULL, &split) == BK_OK, "split: %s", bk_last_error());
    enum { K = 7 }; /* 7 global batches of 6 over 10 pairs: several straddle an epoch */
    bk_loader_config c = base_config(&f);
    c.ids = split.train, c.n_ids = split.n_train;
    c.batch = 6;
    saved *whole = run(&c, K);
    static const struct {
        int shards, start;
    } cases[] = {{2, 0}, {3, 0}, {6, 0}, {2, 3}};
    for (size_t i = 0; whole && i < sizeof cases / sizeof cases[0]; i++) {
        const int S = cases[i].shards, N = 6 / S, k0 = cases[i].start;
        for (int sh = 0; sh < S; sh++) {
            bk_loader_config cs = c;
            cs.batch = N, cs.shards = S, cs.shard = sh, cs.start_step = k0, cs.workers = 1 + sh % 3;
            saved *part = run(&cs, K - k0);
            for (int k = k0; part && k < K; k++) {
                const saved *p = &part[k - k0], *w = &whole[k];
                size_t px = (size_t)N * w->h * w->w, off = (size_t)sh * px;
                bool same = p->n == N && p->h == w->h && p->w == w->w && p->step == k &&
                            p->epoch == ((int64_t)k * 6 + sh * N) / split.n_train &&
                            !memcmp(p->ids, w->ids + sh * N, (size_t)N * sizeof p->ids[0]) &&
                            !memcmp(p->input, w->input + off * 3, px * 3 * sizeof(float)) &&
                            !memcmp(p->target, w->target + off * 3, px * 3 * sizeof(float)) &&
                            !memcmp(p->mask, w->mask + off, px * sizeof(float));
                EXPECT(same, "%d shards from step %d: shard %d of batch %d differs from its part of the global batch",
                       S, k0, sh, k);
            }
            if (part) saved_free(part, K - k0);
        }
    }
    /* the comparison sees a difference: shard 1 is not shard 0 */
    bk_loader_config c0 = c, c1 = c;
    c0.batch = c1.batch = 3, c0.shards = c1.shards = 2, c1.shard = 1;
    saved *a = run(&c0, 2), *b = run(&c1, 2);
    if (a && b) EXPECT(first_difference(a, b, 2) == 0, "negative control: shards 0 and 1 give the same batch");
    if (a) saved_free(a, 2);
    if (b) saved_free(b, 2);
    if (whole) saved_free(whole, K);
    bk_ebb_split_free(&split);
    fixture_close(&f);
}

/* ---------------------------------------------------------------- order */

static void epochs_are_permutations(void) {
    fixture f;
    fixture_open(&f, NPAIRS);
    /* draw from a training set: ids 0..9 of 0..11 */
    bk_ebb_split split;
    EXPECT(bk_ebb_split_make(f.ix.ids, f.ix.count, "tail:2", NULL, &split) == BK_OK, "split: %s", bk_last_error());
    bk_loader_config c = base_config(&f);
    c.ids = split.train, c.n_ids = split.n_train;
    c.batch = 3; /* 10 is not a multiple of 3: batches straddle epochs */
    enum { EPOCHS = 5 };
    const int nb = EPOCHS * 10 / 3;
    saved *s = run(&c, nb);
    int32_t stream[EPOCHS * 10 + 3];
    int len = 0;
    for (int k = 0; s && k < nb; k++) {
        for (int i = 0; i < 3; i++) stream[len++] = s[k].ids[i];
        EXPECT(s[k].epoch == k * 3 / 10, "batch %d: epoch %lld, want %d", k, (long long)s[k].epoch, k * 3 / 10);
    }
    int orders_equal = 0;
    for (int e = 0; s && (e + 1) * 10 <= len; e++) {
        int seen[12] = {0}, bad = 0;
        for (int i = 0; i < 10; i++) {
            int32_t id = stream[e * 10 + i];
            if (id < 0 || id > 9) bad++;
            else seen[id]++;
        }
        for (int id = 0; id < 10; id++) bad += seen[id] != 1;
        EXPECT(bad == 0, "epoch %d is not a permutation of the training ids", e);
        if (e > 0) orders_equal += memcmp(stream + e * 10, stream + (e - 1) * 10, 10 * sizeof(int32_t)) == 0;
    }
    EXPECT(orders_equal == 0, "%d epochs repeat the previous epoch's order", orders_equal);
    int identity = s && memcmp(stream, split.train, 10 * sizeof(int32_t)) == 0;
    EXPECT(!identity, "the first shuffled epoch is in the ids' order");
    if (s) saved_free(s, nb);

    /* no shuffle: the ids' order, as given (here not sorted), epoch after epoch */
    const int32_t order[5] = {7, 2, 9, 0, 4};
    c.ids = order, c.n_ids = 5, c.shuffle = false, c.batch = 2;
    s = run(&c, 10);
    int wrong = 0;
    for (int k = 0; s && k < 10; k++)
        for (int i = 0; i < 2; i++) wrong += s[k].ids[i] != order[(k * 2 + i) % 5];
    EXPECT(s && wrong == 0, "without shuffle: %d samples out of the given order", wrong);
    if (s) saved_free(s, 10);
    bk_ebb_split_free(&split);
    fixture_close(&f);
}

/* ---------------------------------------------------------------- geometry */

/* The image of pair `id` (file `which`) as floats, resized to rh x rw like the loader does. */
static float *reference_image(const fixture *f, int32_t id, bk_ebb_file which, int rh, int rw, int *c) {
    char p[BK_PATH_MAX];
    bk_image img;
    *c = which == BK_EBB_MASK ? 1 : 3;
    if (bk_image_read(bk_ebb_path(&f->ix, id, which, p, sizeof p), *c, 0, &img) != BK_OK) return NULL;
    size_t n = (size_t)img.width * img.height * *c;
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = img.pixels[i] * (1.0f / 255.0f);
    if (rh && (rh != img.height || rw != img.width)) {
        float *r = malloc((size_t)rh * rw * *c * sizeof *r);
        bk_resize_image(v, img.height, img.width, *c, r, rh, rw, BK_RESAMPLE_BILINEAR_AA);
        free(v);
        v = r;
    }
    bk_image_free(&img);
    return v;
}

/* Whether out (oh x ow x c) is the crop at (cy, cx) of src (sh x sw x c), flipped as asked. */
static bool is_crop(const float *out, const float *src, int sw, int c, int oh, int ow, int cy, int cx, bool hf,
                    bool vf) {
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++) {
            int sy = cy + (vf ? oh - 1 - y : y), sx = cx + (hf ? ow - 1 - x : x);
            if (memcmp(out + ((size_t)y * ow + x) * c, src + ((size_t)sy * sw + sx) * c, (size_t)c * sizeof(float)))
                return false;
        }
    return true;
}

/* For each sample of a few batches: the input is a crop (inside the image) of the resized
 * file with some flips; the target and mask are the same crop with the same flips. */
static void check_geometry(const fixture *f, bk_loader_config c, int nbatches, const char *what) {
    saved *s = run(&c, nbatches);
    int flips[2][2] = {{0}}, samples = 0, offsets_seen = 0, last_cy = -1, last_cx = -1;
    for (int k = 0; s && k < nbatches; k++)
        for (int i = 0; i < s[k].n; i++) {
            int32_t id = s[k].ids[i];
            int rh = c.resize_h ? c.resize_h : s[k].orig_h[i], rw = c.resize_w ? c.resize_w : s[k].orig_w[i];
            int oh = s[k].h, ow = s[k].w, ch;
            float *ref[3];
            for (int fi = 0; fi < 3; fi++) ref[fi] = reference_image(f, id, (bk_ebb_file)fi, rh, rw, &ch);
            size_t px = (size_t)oh * ow;
            const float *in = s[k].input + i * px * 3, *tg = s[k].target + i * px * 3, *mk = s[k].mask + i * px;
            int found = 0, consistent = 0;
            for (int cy = 0; cy <= rh - oh; cy++)
                for (int cx = 0; cx <= rw - ow; cx++)
                    for (int g = 0; g < 4; g++) {
                        bool hf = g & 1, vf = g >> 1;
                        if (!is_crop(in, ref[0], rw, 3, oh, ow, cy, cx, hf, vf)) continue;
                        found++;
                        if (is_crop(tg, ref[1], rw, 3, oh, ow, cy, cx, hf, vf) &&
                            is_crop(mk, ref[2], rw, 1, oh, ow, cy, cx, hf, vf)) {
                            consistent++;
                            flips[hf][vf]++;
                            if (cy != last_cy || cx != last_cx) offsets_seen++;
                            last_cy = cy, last_cx = cx;
                        }
                    }
            EXPECT(found >= 1, "%s: batch %d sample %d (pair %d) is no crop of its resized input", what, k, i, id);
            EXPECT(found == 0 || consistent >= 1,
                   "%s: batch %d sample %d (pair %d): the target or mask has another crop or flip than the input",
                   what, k, i, id);
            samples++;
            for (int fi = 0; fi < 3; fi++) free(ref[fi]);
        }
    if (s) {
        if (c.hflip && c.vflip)
            EXPECT(flips[0][0] && flips[1][0] && flips[0][1] && flips[1][1],
                   "%s: flip combinations over %d samples: none %d, h %d, v %d, both %d", what, samples, flips[0][0],
                   flips[1][0], flips[0][1], flips[1][1]);
        if (!c.hflip && !c.vflip)
            EXPECT(flips[1][0] + flips[0][1] + flips[1][1] == 0, "%s: flips without flipping", what);
        EXPECT(offsets_seen >= samples / 3, "%s: the crop offset rarely changes (%d of %d)", what, offsets_seen, samples);
        saved_free(s, nbatches);
    }
}

static void crops_and_flips_are_paired(void) {
    fixture f;
    fixture_open(&f, NPAIRS);
    bk_loader_config c = base_config(&f); /* 32x40 crops of the files' size, both flips */
    check_geometry(&f, c, 6, "crop");
    c.resize_h = 40, c.resize_w = 56, c.crop_h = 24, c.crop_w = 48, c.seed = 99;
    check_geometry(&f, c, 6, "resize + crop");
    c.hflip = c.vflip = false;
    check_geometry(&f, c, 3, "resize + crop, no flips");
    fixture_close(&f);
}

/* With target == input (bokeh/ a copy of original/), the paired transforms give equal tensors. */
static void target_equal_to_input_stays_equal(void) {
    fixture f;
    fixture_open(&f, 6);
    char from[BK_PATH_MAX], to[BK_PATH_MAX];
    for (int64_t k = 0; k < f.ix.count; k++) {
        bk_ebb_path(&f.ix, f.ix.ids[k], BK_EBB_ORIGINAL, from, sizeof from);
        bk_ebb_path(&f.ix, f.ix.ids[k], BK_EBB_BOKEH, to, sizeof to);
        bk_image img;
        bk_image_read(from, 3, 0, &img);
        bk_image_write_png(to, &img); /* a PNG under the .jpg name: read by signature */
        bk_image_free(&img);
    }
    bk_loader_config c = base_config(&f);
    c.resize_h = 44, c.resize_w = 60, c.crop_h = 30, c.crop_w = 30, c.batch = 3, c.workers = 3;
    saved *s = run(&c, 8);
    int differ = 0;
    for (int k = 0; s && k < 8; k++) differ += memcmp(s[k].input, s[k].target, (size_t)3 * 30 * 30 * 3 * sizeof(float)) != 0;
    EXPECT(s && differ == 0, "%d of 8 batches have target != input for identical files", differ);
    if (s) saved_free(s, 8);
    fixture_close(&f);
}

static void masks_in_unit_range_with_both_classes(void) {
    fixture f;
    fixture_open(&f, NPAIRS);
    bk_loader_config c = base_config(&f);
    c.crop_h = c.crop_w = 0, c.resize_h = 48, c.resize_w = 64;
    saved *s = run(&c, 3);
    size_t px = (size_t)4 * 48 * 64, ones = 0, zeros = 0, out = 0;
    for (int k = 0; s && k < 3; k++)
        for (size_t i = 0; i < px; i++) {
            float m = s[k].mask[i];
            out += !(m >= 0 && m <= 1);
            ones += m > 0.99f;
            zeros += m < 0.01f;
        }
    EXPECT(s && out == 0, "%zu mask values outside [0,1]", out);
    EXPECT(s && ones > px * 3 / 50 && zeros > px * 3 / 4, "masks: %zu in focus, %zu out of %zu values", ones, zeros,
           px * 3);
    if (s) saved_free(s, 3);
    fixture_close(&f);
}

/* ---------------------------------------------------------------- errors */

static void corrupt_file_stops_the_stream_with_its_name(void) {
    fixture f;
    fixture_open(&f, NPAIRS);
    char bad[BK_PATH_MAX];
    bk_ebb_path(&f.ix, 5, BK_EBB_BOKEH, bad, sizeof bad);
    struct stat st;
    stat(bad, &st);
    truncate(bad, st.st_size * 6 / 10);
    for (int variant = 0; variant < 3; variant++) {
        bk_loader_config c = base_config(&f);
        c.workers = 1 + variant, c.prefetch = 1 + 2 * variant, c.batch = variant == 2 ? 1 : 4;
        bk_loader *l;
        EXPECT(bk_loader_open(&l, &c) == BK_OK, "open: %s", bk_last_error());
        int failed_at = -1, good_with_5 = 0;
        for (int k = 0; k < NPAIRS * 2 / c.batch; k++) {
            const bk_batch *b;
            bk_status s = bk_loader_next(l, &b);
            if (s != BK_OK) {
                failed_at = k;
                EXPECT(strstr(bk_last_error(), bad) != NULL, "variant %d: the error does not name %s: %s", variant, bad,
                       bk_last_error());
                EXPECT(b == NULL, "a batch handed out with the error");
                break;
            }
            for (int i = 0; i < b->n; i++) good_with_5 += b->ids[i] == 5;
        }
        EXPECT(failed_at >= 0 && failed_at < NPAIRS / c.batch, "variant %d: no error in the first epoch (at %d)",
               variant, failed_at);
        EXPECT(good_with_5 == 0, "variant %d: a batch with pair 5 was handed out", variant);
        double t0 = now();
        bk_loader_close(l);
        EXPECT(now() - t0 < 2, "close after an error took %.2f s", now() - t0);
    }
    /* a missing mask file too */
    bk_ebb_path(&f.ix, 3, BK_EBB_MASK, bad, sizeof bad);
    unlink(bad);
    bk_loader_config c = base_config(&f);
    c.shuffle = false, c.batch = 2;
    bk_loader *l;
    EXPECT(bk_loader_open(&l, &c) == BK_OK, "open: %s", bk_last_error());
    const bk_batch *b;
    EXPECT(bk_loader_next(l, &b) == BK_OK, "batch 0 (pairs 0, 1): %s", bk_last_error());
    EXPECT(bk_loader_next(l, &b) != BK_OK && strstr(bk_last_error(), bad),
           "batch 1 (pairs 2, 3 without mask/3.png) did not fail naming %s: %s", bad, bk_last_error());
    bk_loader_close(l);
    fixture_close(&f);
}

static void close_never_hangs(void) {
    fixture f;
    fixture_open(&f, NPAIRS);
    bk_loader_config c = base_config(&f);
    c.workers = 3, c.prefetch = 1;
    for (int variant = 0; variant < 4; variant++) {
        bk_loader *l;
        EXPECT(bk_loader_open(&l, &c) == BK_OK, "open: %s", bk_last_error());
        const bk_batch *b;
        if (variant == 1) usleep(200 * 1000); /* workers have filled the ring and wait */
        if (variant == 2) EXPECT(bk_loader_next(l, &b) == BK_OK, "next: %s", bk_last_error()); /* holding one */
        if (variant == 3) {
            for (int k = 0; k < 5; k++) bk_loader_next(l, &b);
            usleep(100 * 1000);
        }
        double t0 = now();
        bk_loader_close(l);
        double dt = now() - t0;
        EXPECT(dt < 2, "variant %d: close took %.2f s", variant, dt);
    }
    bk_loader_close(NULL);
    fixture_close(&f);
}

static void invalid_configs_refused(void) {
    fixture f;
    fixture_open(&f, NPAIRS);
    static const struct {
        const char *what, *want;
        int batch, workers, prefetch, n_ids, resize_h, resize_w, crop_h, crop_w;
    } cases[] = {
        /* what                      message      batch workers prefetch n_ids resize crop */
        {"batch 0", "batch", 0, 2, 2, NPAIRS, 0, 0, 32, 40},
        {"batch 65", "batch", 65, 2, 2, NPAIRS, 0, 0, 32, 40},
        {"0 workers", "worker", 4, 0, 2, NPAIRS, 0, 0, 32, 40},
        {"prefetch 0", "prefetch", 4, 2, 0, NPAIRS, 0, 0, 32, 40},
        {"no ids", "no image pair", 4, 2, 2, 0, 0, 0, 32, 40},
        {"resize height only", "resize", 4, 2, 2, NPAIRS, 40, 0, 32, 40},
        {"crop width only", "crop", 4, 2, 2, NPAIRS, 0, 0, 0, 30},
        {"negative crop width", "crop", 4, 2, 2, NPAIRS, 0, 0, 0, -3},
        {"negative resize width", "resize", 4, 2, 2, NPAIRS, 0, -5, 32, 40},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bk_loader_config c = base_config(&f);
        c.batch = cases[i].batch, c.workers = cases[i].workers, c.prefetch = cases[i].prefetch;
        c.n_ids = cases[i].n_ids, c.resize_h = cases[i].resize_h, c.resize_w = cases[i].resize_w;
        c.crop_h = cases[i].crop_h, c.crop_w = cases[i].crop_w;
        bk_loader *l = (bk_loader *)&c;
        bk_status st = bk_loader_open(&l, &c);
        EXPECT(st != BK_OK, "%s accepted", cases[i].what);
        if (st != BK_OK) {
            EXPECT(l == NULL, "%s: loader pointer left set", cases[i].what);
            EXPECT(strstr(bk_last_error(), cases[i].want) != NULL, "%s: message lacks \"%s\": %s", cases[i].what,
                   cases[i].want, bk_last_error());
        } else {
            bk_loader_close(l);
        }
    }

    /* a shard outside 0 .. shards-1 */
    const int shard_cases[][2] = {{2, 2}, {-1, 2}, {0, -1}};
    for (size_t i = 0; i < sizeof shard_cases / sizeof shard_cases[0]; i++) {
        bk_loader_config c = base_config(&f);
        c.shard = shard_cases[i][0], c.shards = shard_cases[i][1];
        bk_loader *l = NULL;
        EXPECT(bk_loader_open(&l, &c) != BK_OK && l == NULL && strstr(bk_last_error(), "shard"),
               "shard %d of %d accepted or unclear: %s", c.shard, c.shards, bk_last_error());
        if (l) bk_loader_close(l);
    }

    /* masks without a mask directory */
    char mask_dir[600], moved[600];
    snprintf(mask_dir, sizeof mask_dir, "%s/mask", f.root);
    snprintf(moved, sizeof moved, "%s/mask_moved", f.dir);
    rename(mask_dir, moved);
    bk_ebb_index nomask;
    EXPECT(bk_ebb_scan(f.root, &nomask) == BK_OK && !nomask.has_mask_dir, "scan without masks: %s", bk_last_error());
    bk_loader_config c = base_config(&f);
    c.index = &nomask;
    bk_loader *l;
    EXPECT(bk_loader_open(&l, &c) != BK_OK && strstr(bk_last_error(), "mask") && strstr(bk_last_error(), f.root),
           "masks without mask/ accepted or unclear: %s", bk_last_error());
    c.masks = false;
    EXPECT(bk_loader_open(&l, &c) == BK_OK, "no masks, no mask/: %s", bk_last_error());
    const bk_batch *b;
    EXPECT(bk_loader_next(l, &b) == BK_OK && b->mask == NULL, "batch without masks: %s", bk_last_error());
    bk_loader_close(l);
    bk_ebb_index_free(&nomask);
    rename(moved, mask_dir);

    /* refused when opening or, at the latest, on a batch of the first epoch */
    struct {
        const char *what, *want;
        int batch, crop_h, crop_w, resize_h, resize_w;
    } late[] = {
        {"a crop taller than the images", "crop", 4, 60, 40, 0, 0},
        {"a crop wider than the images", "crop", 4, 32, 90, 0, 0},
        {"a crop larger than the resize", "crop", 4, 40, 40, 30, 60},
        {"images of different sizes, batch 2, no resize", "resize", 2, 0, 0, 0, 0},
    };
    int widths[NPAIRS], distinct = 0;
    for (int k = 0; k < NPAIRS; k++) {
        bk_image_info info;
        char p[BK_PATH_MAX];
        bk_image_read_info(bk_ebb_path(&f.ix, k, BK_EBB_ORIGINAL, p, sizeof p), &info);
        widths[k] = info.width;
        distinct += k > 0 && widths[k] != widths[0];
    }
    EXPECT(distinct > 0, "the fixture's images all have one size: the last check proves nothing");
    for (size_t i = 0; i < sizeof late / sizeof late[0]; i++) {
        c = base_config(&f);
        c.batch = late[i].batch, c.crop_h = late[i].crop_h, c.crop_w = late[i].crop_w;
        c.resize_h = late[i].resize_h, c.resize_w = late[i].resize_w, c.shuffle = false;
        bk_status st = bk_loader_open(&l, &c);
        const char *msg = NULL;
        if (st != BK_OK) {
            msg = bk_last_error();
        } else {
            for (int k = 0; k < NPAIRS / c.batch && !msg; k++)
                if (bk_loader_next(l, &b) != BK_OK) msg = bk_last_error();
            bk_loader_close(l);
        }
        EXPECT(msg != NULL, "%s accepted", late[i].what);
        if (msg) EXPECT(strstr(msg, late[i].want) != NULL, "%s: message lacks \"%s\": %s", late[i].what, late[i].want, msg);
    }
    /* the same with batch 1 is fine: each batch has its image's size */
    c = base_config(&f);
    c.batch = 1, c.crop_h = c.crop_w = 0, c.shuffle = false;
    saved *s = run(&c, NPAIRS);
    int wrong = 0;
    for (int k = 0; s && k < NPAIRS; k++) wrong += s[k].w != widths[s[k].ids[0]] || s[k].h != HEIGHT;
    EXPECT(s && wrong == 0, "batch 1 without resize: %d batches not of their image's size", wrong);
    if (s) saved_free(s, NPAIRS);
    fixture_close(&f);
}

BK_TEST_MAIN(BK_TEST(batches_have_the_configured_shape_and_range), BK_TEST(untransformed_batches_are_the_files),
             BK_TEST(same_seed_same_batches_whatever_the_threads), BK_TEST(start_step_resumes_the_stream),
             BK_TEST(shards_make_up_the_global_batch), BK_TEST(epochs_are_permutations), BK_TEST(crops_and_flips_are_paired),
             BK_TEST(target_equal_to_input_stays_equal), BK_TEST(masks_in_unit_range_with_both_classes),
             BK_TEST(corrupt_file_stops_the_stream_with_its_name), BK_TEST(close_never_hangs),
             BK_TEST(invalid_configs_refused))
