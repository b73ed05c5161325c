/* test_tensor.c — tensors, layout boundary, step arena, persistent accounting, primitive and
 * weight caches. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cache.h"
#include "tests/support/harness.h"

static void nchw_roundtrip_and_offsets(void) {
    bk_ctx *ctx = bk_test_ctx();
    bk_shape s = {2, 3, 5, 7};
    size_t n = (size_t)bk_shape_numel(s);
    float *in = malloc(n * sizeof *in), *out = malloc(n * sizeof *out);
    for (size_t i = 0; i < n; i++) in[i] = (float)i;
    bk_tensor *t = bk_tensor_from_nchw(ctx, s, in);
    /* NHWC: element (n,c,h,w) of the NCHW array sits at ((n*H+h)*W+w)*C+c */
    int bad = 0;
    for (int64_t a = 0; a < s.n; a++)
        for (int64_t c = 0; c < s.c; c++)
            for (int64_t h = 0; h < s.h; h++)
                for (int64_t w = 0; w < s.w; w++)
                    if (t->data[((a * s.h + h) * s.w + w) * s.c + c] !=
                            in[((a * s.c + c) * s.h + h) * s.w + w] ||
                        t->data[bk_offset(t, a, c, h, w)] != in[((a * s.c + c) * s.h + h) * s.w + w])
                        bad++;
    EXPECT(bad == 0, "%d elements misplaced in NHWC", bad);
    bk_tensor_to_nchw(t, out);
    EXPECT(memcmp(in, out, n * sizeof *in) == 0, "NCHW -> NHWC -> NCHW is not the identity");
    free(in);
    free(out);
}

static void shapes_and_helpers(void) {
    bk_ctx *ctx = bk_test_ctx();
    bk_tensor *s = bk_scalar(ctx, 2.5f);
    EXPECT(s->ndim == 0 && bk_numel(s) == 1 && s->data[0] == 2.5f, "scalar");
    bk_tensor *z = bk_tensor_zeros(ctx, (bk_shape){1, 70000, 1, 1});
    int nonzero = 0;
    for (int i = 0; i < 70000; i++) nonzero += z->data[i] != 0.0f;
    EXPECT(nonzero == 0, "zeros has %d non-zero values", nonzero);
    char buf[64];
    EXPECT(strcmp(bk_shape_str((bk_shape){2, 3, 4, 5}, buf), "2x3x4x5") == 0, "shape string %s", buf);
    EXPECT(((uintptr_t)z->data & 63) == 0, "step tensor data not 64-byte aligned");
}

static void arena_consolidates_and_reuses(void) {
    bk_arena a;
    bk_arena_init(&a, 1 << 20);
    void *first = bk_arena_alloc(&a, 100);
    EXPECT(((uintptr_t)first & 63) == 0, "arena allocation not 64-byte aligned");
    for (int i = 0; i < 5; i++) bk_arena_alloc(&a, 700 << 10); /* outgrows the 1 MiB chunk */
    size_t peak = a.peak;
    EXPECT(peak >= 5 * (700 << 10), "peak %zu", peak);
    bk_arena_reset(&a);
    EXPECT(a.used == 0, "used after reset %zu", a.used);
    size_t reserved = a.reserved;
    EXPECT(reserved >= peak && reserved < peak + (1 << 20), "one block of the peak size: %zu for peak %zu",
           reserved, peak);
    /* the same step again fits without growing */
    void *again = bk_arena_alloc(&a, 100);
    for (int i = 0; i < 5; i++) bk_arena_alloc(&a, 700 << 10);
    EXPECT(a.reserved == reserved, "arena grew on a repeated step: %zu -> %zu", reserved, a.reserved);
    EXPECT(a.peak == peak, "peak changed: %zu -> %zu", peak, a.peak);
    (void)again;
    bk_arena_free(&a);
}

/* Scratch released after it outgrew the current chunk: run again, it gets the same memory
 * (its pages already touched), not a new chunk each time; the reset folds everything. */
static void arena_release_reuses_outgrown_scratch(void) {
    bk_arena a;
    bk_arena_init(&a, 1 << 20);
    bk_arena_alloc(&a, 600 << 10);
    void *first = NULL;
    size_t reserved = 0;
    for (int rep = 0; rep < 4; rep++) {
        bk_arena_pos mark = bk_arena_mark(&a);
        void *p = bk_arena_alloc(&a, 3 << 20); /* larger than what is left, and than a chunk */
        void *q = bk_arena_alloc(&a, 100 << 10);
        EXPECT(((uintptr_t)p & 63) == 0 && ((uintptr_t)q & 63) == 0, "unaligned scratch");
        if (rep == 0) first = p, reserved = a.reserved;
        EXPECT(p == first, "run %d: the scratch moved (%p, first %p)", rep, p, first);
        EXPECT(a.reserved == reserved, "run %d: the arena grew %zu -> %zu", rep, reserved, a.reserved);
        bk_arena_release(&a, mark);
        EXPECT(a.used == (600 << 10), "run %d: %zu bytes in use after the release", rep, a.used);
    }
    void *after = bk_arena_alloc(&a, 200 << 10); /* fits the first chunk again */
    EXPECT(after != first, "the released chunk is still the head");
    bk_arena_reset(&a);
    EXPECT(a.reserved >= a.peak && a.reserved < a.peak + (1 << 20) && a.peak >= (3 << 20),
           "after the reset: %zu reserved for a peak of %zu", a.reserved, a.peak);
    bk_arena_free(&a);
}

static void step_end_releases_everything(void) {
    bk_ctx *ctx = bk_test_ctx();
    bk_tensor *x = bk_test_tensor(ctx, (bk_shape){2, 3, 8, 8}, -1, 1, 1);
    x->requires_grad = true;
    bk_tensor *y = bk_square(ctx, x);
    EXPECT(ctx->tape_len == 1 && y->requires_grad, "tape %zu", ctx->tape_len);
    EXPECT(ctx->step.used > 0, "nothing in the step arena");
    bk_step_end(ctx);
    EXPECT(ctx->step.used == 0 && ctx->tape_len == 0, "step end left used %zu, tape %zu",
           ctx->step.used, ctx->tape_len);
}

static void persistent_accounting(void) {
    bk_ctx *ctx = bk_test_ctx();
    size_t before = ctx->stats.persistent_bytes;
    bk_tensor *p = bk_tensor_new_persistent(ctx, "layer.weight", 4, (bk_shape){8, 4, 3, 3});
    EXPECT(ctx->stats.persistent_bytes >= before + 8 * 4 * 9 * sizeof(float), "not counted");
    EXPECT(strcmp(p->name, "layer.weight") == 0 && p->ndim == 4 && p->life == BK_PERSISTENT, "header");
    int nonzero = 0;
    for (int i = 0; i < 8 * 36; i++) nonzero += p->data[i] != 0.0f;
    EXPECT(nonzero == 0, "persistent tensor not zeroed");
    size_t peak = ctx->stats.persistent_peak;
    bk_tensor_free(ctx, p);
    EXPECT(ctx->stats.persistent_bytes == before, "bytes not returned: %zu vs %zu",
           ctx->stats.persistent_bytes, before);
    EXPECT(ctx->stats.persistent_peak == peak && peak > before, "peak lost");
}

static int destroyed;
static void count_destroy(void *v) {
    destroyed++;
    free(v);
}

static void cache_grows_and_finds(void) {
    bk_cache *c = bk_cache_new();
    for (int i = 0; i < 1000; i++) {
        int *v = malloc(sizeof *v);
        *v = i * 7;
        struct { int a; double b; } key = {i, i * 0.5};
        bk_cache_put(c, &key, sizeof key, v, count_destroy);
    }
    int wrong = 0;
    for (int i = 0; i < 1000; i++) {
        struct { int a; double b; } key = {i, i * 0.5};
        int *v = bk_cache_get(c, &key, sizeof key);
        if (!v || *v != i * 7) wrong++;
    }
    struct { int a; double b; } missing = {5, 1.0};
    EXPECT(wrong == 0, "%d keys lost", wrong);
    EXPECT(bk_cache_get(c, &missing, sizeof missing) == NULL, "found a key never stored");
    EXPECT(bk_cache_count(c) == 1000, "count %zu", bk_cache_count(c));
    destroyed = 0;
    bk_cache_free(c);
    EXPECT(destroyed == 1000, "destroyed %d values", destroyed);
}

/* Primitives are made once per shape; persistent weights are reordered once per version. */
static void primitives_and_weights_are_reused(void) {
    bk_ctx *ctx = bk_test_ctx();
    bk_set_grad_enabled(ctx, false);
    bk_tensor *w = bk_tensor_new_persistent(ctx, "w", 4, (bk_shape){16, 8, 3, 3});
    bk_test_fill_uniform(w->data, (size_t)bk_numel(w), -0.5f, 0.5f, 3);
    bk_conv_opts o = bk_conv_opts_make(1, 1, 1);
    bk_tensor *x = bk_test_tensor(ctx, (bk_shape){1, 8, 12, 12}, -1, 1, 4);
    bk_tensor *y1 = bk_conv2d(ctx, x, w, NULL, o, bk_act_none(), NULL);
    uint64_t prims = ctx->stats.primitives_created, reorders = ctx->stats.weight_reorders;
    EXPECT(reorders == 1, "first forward reordered the weights %llu times", (unsigned long long)reorders);
    bk_tensor *y2 = bk_conv2d(ctx, x, w, NULL, o, bk_act_none(), NULL);
    EXPECT(ctx->stats.primitives_created == prims, "second identical conv created primitives");
    EXPECT(ctx->stats.weight_reorders == reorders, "unchanged weights reordered again");
    EXPECT(memcmp(y1->data, y2->data, (size_t)bk_numel(y1) * sizeof(float)) == 0,
           "same conv twice gave different results");
    for (int i = 0; i < bk_numel(w); i++) w->data[i] *= 2.0f;
    bk_tensor_touch(w); /* what the optimizer does after an update */
    bk_tensor *y3 = bk_conv2d(ctx, x, w, NULL, o, bk_act_none(), NULL);
    EXPECT(ctx->stats.weight_reorders == reorders + 1, "touched weights not reordered");
    int off = 0;
    for (int i = 0; i < bk_numel(y3); i++)
        off += fabsf(y3->data[i] - 2.0f * y1->data[i]) > 1e-5f * (1.0f + fabsf(y1->data[i]));
    EXPECT(off == 0, "conv used stale weights after an update (%d values)", off);
    bk_tensor_free(ctx, w);
}

BK_TEST_MAIN(BK_TEST(nchw_roundtrip_and_offsets), BK_TEST(shapes_and_helpers),
             BK_TEST(arena_consolidates_and_reuses), BK_TEST(arena_release_reuses_outgrown_scratch), BK_TEST(step_end_releases_everything),
             BK_TEST(persistent_accounting), BK_TEST(cache_grows_and_finds),
             BK_TEST(primitives_and_weights_are_reused))
