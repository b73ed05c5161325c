/* loader.c — worker threads filling a ring of batch slots (see loader.h).
 *
 * Shared state is guarded by one mutex: `next_sample` (the next sample a worker may take),
 * `consumer_step` (the batch the trainer holds or waits for) and per-slot fill counts. Sample j
 * goes to slot (j / N) mod prefetch at position j mod N; a worker takes sample j only while
 * j / N < consumer_step + prefetch, so a slot is never refilled before it has been consumed.
 * Pixels are written outside the lock (each sample owns its part of the slot).
 */
#include "data/loader.h"

#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ops.h"
#include "data/image.h"

enum { ERR_LEN = 8192 }; /* room for messages naming several paths */

typedef struct slot {
    int64_t step;
    int filled;            /* samples written (or failed) */
    bool failed;
    char error[ERR_LEN];
    bk_batch batch;
} slot;

struct bk_loader {
    bk_loader_config cfg;
    int out_h, out_w;      /* fixed output size, or 0 when each batch (of 1) has its own */
    pthread_t *threads;
    int n_threads;
    pthread_mutex_t mu;
    pthread_cond_t produced, consumed;
    int64_t next_sample, consumer_step;
    bool holding;          /* the consumer holds consumer_step's batch */
    bool stop;
    slot *slots;
    /* permutations of the two most recent epochs */
    int64_t perm_epoch[2];
    int32_t *perm[2];
};

static uint64_t mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform integer in [0, n) from a 64-bit state, advanced. */
static uint64_t draw(uint64_t *state, uint64_t n) {
    *state = mix64(*state);
    return n ? *state % n : 0;
}

/* The pair of sample j (call with the mutex held). */
static int32_t sample_id(bk_loader *l, int64_t j) {
    int64_t n = l->cfg.n_ids, e = j / n, pos = j % n;
    if (!l->cfg.shuffle) return l->cfg.ids[pos];
    for (int k = 0; k < 2; k++)
        if (l->perm[k] && l->perm_epoch[k] == e) return l->perm[k][pos];
    int k = l->perm[0] && (!l->perm[1] || l->perm_epoch[0] > l->perm_epoch[1]) ? 1 : 0;
    if (!l->perm[k]) l->perm[k] = malloc((size_t)n * sizeof *l->perm[k]);
    BK_CHECK(l->perm[k], "out of memory");
    int32_t *p = l->perm[k];
    memcpy(p, l->cfg.ids, (size_t)n * sizeof *p);
    uint64_t state = mix64(l->cfg.seed ^ 0x5045524du) ^ (uint64_t)e * 0x2545f4914f6cdd1dull;
    for (int64_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
        int64_t r = (int64_t)draw(&state, (uint64_t)i + 1);
        int32_t t = p[i];
        p[i] = p[r];
        p[r] = t;
    }
    l->perm_epoch[k] = e;
    return p[pos];
}

/* u8 HWC -> float HWC in [0,1]. */
static float *to_float(const bk_image *img) {
    size_t n = (size_t)img->width * img->height * img->channels;
    float *f = malloc(n * sizeof *f);
    if (!f) return NULL;
    for (size_t i = 0; i < n; i++) f[i] = img->pixels[i] * (1.0f / 255.0f);
    return f;
}

typedef struct geometry {
    int rh, rw;       /* size after resizing */
    int cy, cx;       /* crop offset */
    int oh, ow;       /* output size */
    bool hflip, vflip;
} geometry;

/* Resize, crop, flip one image (h x w x c floats) into dst (g->oh x g->ow x c), scaled into
 * the range: v * a + b. */
static bool transform(const float *src, int h, int w, int c, const geometry *g, float a, float b,
                      float *dst) {
    const float *resized = src;
    float *owned = NULL;
    if (g->rh != h || g->rw != w) {
        owned = malloc((size_t)g->rh * g->rw * c * sizeof *owned);
        if (!owned) return false;
        bk_resize_image(src, h, w, c, owned, g->rh, g->rw, BK_RESAMPLE_BILINEAR_AA);
        resized = owned;
    }
    for (int y = 0; y < g->oh; y++) {
        int sy = g->cy + (g->vflip ? g->oh - 1 - y : y);
        const float *row = resized + (size_t)sy * g->rw * c;
        float *out = dst + (size_t)y * g->ow * c;
        for (int x = 0; x < g->ow; x++) {
            int sx = g->cx + (g->hflip ? g->ow - 1 - x : x);
            for (int k = 0; k < c; k++) out[x * c + k] = row[sx * c + k] * a + b;
        }
    }
    free(owned);
    return true;
}

/* Decodes and transforms sample j into slot s at position pos. Returns false with `err` set. */
static bool load_sample(bk_loader *l, int64_t j, int32_t id, slot *s, int pos, char err[ERR_LEN]) {
    const size_t err_len = ERR_LEN;
    const bk_loader_config *cfg = &l->cfg;
    char path[3][BK_PATH_MAX];
    bk_image img[3] = {{0}};
    float *fimg[3] = {NULL, NULL, NULL};
    int nfiles = cfg->masks ? 3 : 2;
    bool ok = false;
    for (int f = 0; f < nfiles; f++) {
        bk_ebb_path(cfg->index, id, (bk_ebb_file)f, path[f], sizeof path[f]);
        if (bk_image_read(path[f], f == BK_EBB_MASK ? 1 : 3, cfg->max_pixels, &img[f]) != BK_OK) {
            snprintf(err, err_len, "%s", bk_last_error());
            goto done;
        }
        if (f > 0 && (img[f].width != img[0].width || img[f].height != img[0].height)) {
            snprintf(err, err_len, "index %d: %s is %dx%d but %s is %dx%d", id, path[f],
                     img[f].width, img[f].height, path[0], img[0].width, img[0].height);
            goto done;
        }
    }
    int h = img[0].height, w = img[0].width;
    geometry g;
    g.rh = cfg->resize_h ? cfg->resize_h : h;
    g.rw = cfg->resize_w ? cfg->resize_w : w;
    g.oh = cfg->crop_h ? cfg->crop_h : g.rh;
    g.ow = cfg->crop_w ? cfg->crop_w : g.rw;
    if (g.oh > g.rh || g.ow > g.rw) {
        snprintf(err, err_len, "index %d: %s is %dx%d, smaller than the %dx%d crop", id, path[0],
                 g.rw, g.rh, g.ow, g.oh);
        goto done;
    }
    if (l->out_h && (g.oh != l->out_h || g.ow != l->out_w)) {
        snprintf(err, err_len, "index %d: %s gives %dx%d, but this batch is %dx%d; set a resize or "
                 "crop size, or use batch 1", id, path[0], g.ow, g.oh, l->out_w, l->out_h);
        goto done;
    }
    uint64_t state = mix64(cfg->seed ^ 0x41554720u) ^ mix64((uint64_t)j);
    g.cy = (int)draw(&state, (uint64_t)(g.rh - g.oh + 1));
    g.cx = (int)draw(&state, (uint64_t)(g.rw - g.ow + 1));
    g.hflip = cfg->hflip && (draw(&state, 2) == 1);
    g.vflip = cfg->vflip && (draw(&state, 2) == 1);

    bk_batch *b = &s->batch;
    if (!l->out_h) { /* batch 1 of this image's own size */
        size_t px = (size_t)g.oh * g.ow;
        float *in = realloc(b->input, px * 3 * sizeof(float));
        float *tg = in ? realloc(b->target, px * 3 * sizeof(float)) : NULL;
        if (in) b->input = in;
        if (tg) b->target = tg;
        if (cfg->masks) {
            float *mk = tg ? realloc(b->mask, px * sizeof(float)) : NULL;
            if (mk) b->mask = mk;
            else tg = NULL;
        }
        if (!in || !tg) {
            snprintf(err, err_len, "out of memory for a %dx%d batch", g.ow, g.oh);
            goto done;
        }
        b->h = g.oh, b->w = g.ow;
    }
    float a = cfg->range == BK_RANGE_PM1 ? 2.0f : 1.0f, off = cfg->range == BK_RANGE_PM1 ? -1.0f : 0.0f;
    size_t px = (size_t)g.oh * g.ow;
    for (int f = 0; f < nfiles; f++) {
        fimg[f] = to_float(&img[f]);
        float *dst = f == 0 ? b->input + pos * px * 3 : f == 1 ? b->target + pos * px * 3 : b->mask + pos * px;
        bool done_f = fimg[f] && transform(fimg[f], h, w, img[f].channels, &g,
                                           f == BK_EBB_MASK ? 1.0f : a, f == BK_EBB_MASK ? 0.0f : off, dst);
        if (!done_f) {
            snprintf(err, err_len, "out of memory transforming %s", path[f]);
            goto done;
        }
    }
    b->ids[pos] = id;
    b->orig_h[pos] = h;
    b->orig_w[pos] = w;
    ok = true;
done:
    for (int f = 0; f < 3; f++) {
        bk_image_free(&img[f]);
        free(fimg[f]);
    }
    return ok;
}

/* The global sample of the stream's sample j (its shard of a global batch of shards * batch). */
static int64_t global_sample(const bk_loader_config *cfg, int64_t j) {
    if (cfg->shards <= 1) return j;
    int64_t B = cfg->batch;
    return (j / B) * B * cfg->shards + (int64_t)cfg->shard * B + j % B;
}

static void *worker(void *arg) {
    bk_loader *l = arg;
    omp_set_num_threads(1); /* kernels inside a worker stay on this thread */
    const int B = l->cfg.batch, P = l->cfg.prefetch;
    char err[ERR_LEN];
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->stop && l->next_sample / B >= l->consumer_step + P)
            pthread_cond_wait(&l->consumed, &l->mu);
        if (l->stop) break;
        int64_t j = l->next_sample++, gj = global_sample(&l->cfg, j);
        int64_t step = j / B;
        slot *s = &l->slots[step % P];
        if (j % B == 0) { /* first sample of a batch claims the slot */
            s->step = step;
            s->filled = 0;
            s->failed = false;
            s->batch.step = step;
            s->batch.epoch = gj / l->cfg.n_ids;
        }
        int32_t id = sample_id(l, gj);
        pthread_mutex_unlock(&l->mu);
        bool ok = load_sample(l, gj, id, s, (int)(j % B), err);
        pthread_mutex_lock(&l->mu);
        if (!ok && !s->failed) {
            s->failed = true;
            snprintf(s->error, sizeof s->error, "%s", err);
        }
        s->filled++;
        if (s->filled == B) pthread_cond_broadcast(&l->produced);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

bk_status bk_loader_open(bk_loader **out, const bk_loader_config *cfg) {
    *out = NULL;
    if (cfg->batch < 1 || cfg->batch > BK_LOADER_MAX_BATCH)
        return bk_fail(BK_ERR_ARG, "batch size %d outside 1..%d", cfg->batch, BK_LOADER_MAX_BATCH);
    if (cfg->n_ids < 1) return bk_fail(BK_ERR_ARG, "the loader has no image pair to read");
    if (cfg->shards < 0 || cfg->shard < 0 || (cfg->shards > 0 && cfg->shard >= cfg->shards))
        return bk_fail(BK_ERR_ARG, "loader shard %d of %d", cfg->shard, cfg->shards);
    if (cfg->workers < 1 || cfg->prefetch < 1)
        return bk_fail(BK_ERR_ARG, "the loader needs at least one worker and one prefetched batch");
    if (cfg->resize_h < 0 || cfg->resize_w < 0 || cfg->crop_h < 0 || cfg->crop_w < 0)
        return bk_fail(BK_ERR_ARG, "resize and crop sizes cannot be negative");
    if ((cfg->resize_h > 0) != (cfg->resize_w > 0) || (cfg->crop_h > 0) != (cfg->crop_w > 0))
        return bk_fail(BK_ERR_ARG, "resize and crop sizes must both be given (height and width)");
    if (cfg->masks && !cfg->index->has_mask_dir)
        return bk_fail(BK_ERR_ARG, "%s: masks are needed but there is no mask/ directory",
                       cfg->index->root);
    int out_h = cfg->crop_h ? cfg->crop_h : cfg->resize_h;
    int out_w = cfg->crop_w ? cfg->crop_w : cfg->resize_w;
    if (!out_h && cfg->batch > 1) {
        /* without a fixed size, batches of several images need images of one size */
        bk_image_info first;
        char path[BK_PATH_MAX];
        bk_status st = bk_image_read_info(bk_ebb_path(cfg->index, cfg->ids[0], BK_EBB_ORIGINAL,
                                                      path, sizeof path), &first);
        if (st != BK_OK) return st;
        out_h = first.height;
        out_w = first.width;
    }
    bk_loader *l = calloc(1, sizeof *l);
    BK_CHECK(l, "out of memory");
    l->cfg = *cfg;
    l->out_h = out_h;
    l->out_w = out_w;
    l->slots = calloc((size_t)cfg->prefetch, sizeof *l->slots);
    BK_CHECK(l->slots, "out of memory");
    if (out_h) {
        size_t px = (size_t)cfg->batch * out_h * out_w;
        for (int i = 0; i < cfg->prefetch; i++) {
            bk_batch *b = &l->slots[i].batch;
            b->n = cfg->batch, b->h = out_h, b->w = out_w;
            b->input = malloc(px * 3 * sizeof(float));
            b->target = malloc(px * 3 * sizeof(float));
            b->mask = cfg->masks ? malloc(px * sizeof(float)) : NULL;
            if (!b->input || !b->target || (cfg->masks && !b->mask)) {
                bk_loader_close(l);
                return bk_fail(BK_ERR_ARG, "out of memory for %d prefetched batches of %dx%dx%dx3",
                               cfg->prefetch, cfg->batch, out_h, out_w);
            }
        }
    } else {
        for (int i = 0; i < cfg->prefetch; i++) l->slots[i].batch.n = 1;
    }
    l->next_sample = cfg->start_step * cfg->batch;
    l->consumer_step = cfg->start_step;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->produced, NULL);
    pthread_cond_init(&l->consumed, NULL);
    l->threads = calloc((size_t)cfg->workers, sizeof *l->threads);
    BK_CHECK(l->threads, "out of memory");
    for (int i = 0; i < cfg->workers; i++) {
        if (pthread_create(&l->threads[i], NULL, worker, l) != 0) {
            bk_loader_close(l);
            return bk_fail(BK_ERR_ARG, "cannot start loader thread %d", i);
        }
        l->n_threads++;
    }
    *out = l;
    return BK_OK;
}

bk_status bk_loader_next(bk_loader *l, const bk_batch **out) {
    pthread_mutex_lock(&l->mu);
    if (l->holding) { /* release the batch handed out last time */
        l->consumer_step++;
        l->holding = false;
        pthread_cond_broadcast(&l->consumed);
    }
    slot *s = &l->slots[l->consumer_step % l->cfg.prefetch];
    while (!(s->step == l->consumer_step && s->filled == l->cfg.batch))
        pthread_cond_wait(&l->produced, &l->mu);
    l->holding = true;
    bool failed = s->failed;
    char error[ERR_LEN];
    snprintf(error, sizeof error, "%s", s->error);
    pthread_mutex_unlock(&l->mu);
    if (failed) {
        *out = NULL;
        return bk_fail(BK_ERR_FORMAT, "%s", error);
    }
    *out = &s->batch;
    return BK_OK;
}

void bk_loader_close(bk_loader *l) {
    if (!l) return;
    pthread_mutex_lock(&l->mu);
    l->stop = true;
    pthread_cond_broadcast(&l->consumed);
    pthread_mutex_unlock(&l->mu);
    for (int i = 0; i < l->n_threads; i++) pthread_join(l->threads[i], NULL);
    for (int i = 0; i < l->cfg.prefetch; i++) {
        free(l->slots[i].batch.input);
        free(l->slots[i].batch.target);
        free(l->slots[i].batch.mask);
    }
    free(l->slots);
    free(l->threads);
    free(l->perm[0]);
    free(l->perm[1]);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->produced);
    pthread_cond_destroy(&l->consumed);
    free(l);
}
