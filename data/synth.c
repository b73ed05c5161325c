/* synth.c — the synthetic scene generator (see synth.h). */
#include "data/synth.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/files.h"
#include "data/ebb.h"

/* ---------------------------------------------------------------- randomness */

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t next_u64(rng *r) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double uni(rng *r) { return (next_u64(r) >> 11) * (1.0 / 9007199254740992.0); }
static double range(rng *r, double lo, double hi) { return lo + (hi - lo) * uni(r); }

/* ---------------------------------------------------------------- textures */

/* Value noise on a lattice of `cell` pixels, smooth (cubic) interpolation, values in [0,1). */
typedef struct noise {
    int gw, gh;
    double cell;
    float *v;
} noise;

static void noise_init(noise *n, rng *r, int w, int h, double cell) {
    n->cell = cell;
    n->gw = (int)(w / cell) + 3;
    n->gh = (int)(h / cell) + 3;
    n->v = malloc((size_t)n->gw * n->gh * sizeof *n->v);
    BK_CHECK(n->v, "out of memory");
    for (int i = 0; i < n->gw * n->gh; i++) n->v[i] = (float)uni(r);
}

static double noise_at(const noise *n, double x, double y) {
    double gx = x / n->cell, gy = y / n->cell;
    int ix = (int)gx, iy = (int)gy;
    double fx = gx - ix, fy = gy - iy;
    fx = fx * fx * (3 - 2 * fx);
    fy = fy * fy * (3 - 2 * fy);
    const float *v = n->v;
    int W = n->gw;
    double a = v[iy * W + ix], b = v[iy * W + ix + 1], c = v[(iy + 1) * W + ix], d = v[(iy + 1) * W + ix + 1];
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy;
}

/* A texture: fractal noise over `octaves` octaves, optional stripes, mapped through a
 * three-colour palette. */
typedef struct texture {
    noise oct[4];
    int octaves;
    double roughness; /* amplitude kept from one octave to the next */
    double stripe_freq, stripe_angle, stripe_amount;
    float pal[3][3];
    double brightness;
} texture;

static void random_colour(rng *r, float *c, double lo, double hi) {
    for (int k = 0; k < 3; k++) c[k] = (float)range(r, lo, hi);
}

static void texture_init(texture *t, rng *r, int w, int h, double base_cell, double detail,
                         double brightness) {
    t->octaves = 4;
    t->roughness = range(r, 0.6, 0.85);
    for (int o = 0; o < t->octaves; o++)
        noise_init(&t->oct[o], r, w, h, fmax(2.0, base_cell / pow(2.2, o)));
    t->stripe_freq = range(r, 0.05, 0.5) * detail;
    t->stripe_angle = range(r, 0, M_PI);
    t->stripe_amount = uni(r) < 0.5 ? range(r, 0.2, 0.6) : 0.0;
    for (int k = 0; k < 3; k++) random_colour(r, t->pal[k], 0.02, 0.9);
    t->brightness = brightness;
}

static void texture_free(texture *t) {
    for (int o = 0; o < t->octaves; o++) free(t->oct[o].v);
}

static void texture_at(const texture *t, double x, double y, float *rgb) {
    double v = 0, amp = 0.5, norm = 0;
    for (int o = 0; o < t->octaves; o++, amp *= t->roughness) {
        v += amp * noise_at(&t->oct[o], x, y);
        norm += amp;
    }
    v /= norm;
    if (t->stripe_amount > 0) {
        double s = 0.5 + 0.5 * sin(t->stripe_freq * (x * cos(t->stripe_angle) + y * sin(t->stripe_angle)));
        v = (1 - t->stripe_amount) * v + t->stripe_amount * s;
    }
    v = fmin(fmax((v - 0.2) / 0.6, 0.0), 1.0);
    for (int k = 0; k < 3; k++) {
        double c = v < 0.5 ? t->pal[0][k] + (t->pal[1][k] - t->pal[0][k]) * 2 * v
                           : t->pal[1][k] + (t->pal[2][k] - t->pal[1][k]) * (2 * v - 1);
        rgb[k] = (float)(c * t->brightness);
    }
}

/* ---------------------------------------------------------------- layers */

/* A layer: premultiplied colour (3) and coverage (1) per pixel, and its blur radius. */
typedef struct layer {
    float *rgba;
    double radius;
} layer;

static float smoothstep_edge(double d) { /* d: signed distance in pixels, > 0 inside */
    return (float)fmin(fmax(d + 0.5, 0.0), 1.0);
}

/* Coverage of shapes: hills (a noisy horizon), blobs (union of ellipses). */
typedef struct shape {
    int kind; /* 0 hill, 1 blobs, 2 full backdrop */
    double base, amp[3], freq[3], phase[3];
    int n_ell;
    double cx[6], cy[6], rx[6], ry[6], rot[6];
} shape;

static double shape_coverage(const shape *s, double x, double y) {
    if (s->kind == 2) return 1.0;
    if (s->kind == 0) {
        double top = s->base;
        for (int k = 0; k < 3; k++) top += s->amp[k] * sin(s->freq[k] * x + s->phase[k]);
        return smoothstep_edge(y - top);
    }
    double best = 0.0;
    for (int e = 0; e < s->n_ell; e++) {
        double dx = x - s->cx[e], dy = y - s->cy[e];
        double c = cos(s->rot[e]), sn = sin(s->rot[e]);
        double u = (dx * c + dy * sn) / s->rx[e], v = (-dx * sn + dy * c) / s->ry[e];
        double rr = sqrt(u * u + v * v);
        double d = (1.0 - rr) * fmin(s->rx[e], s->ry[e]); /* approximate distance to the edge */
        double cov = smoothstep_edge(d);
        if (cov > best) best = cov;
    }
    return best;
}

static void paint(layer *L, int w, int h, const shape *s, const texture *t) {
    L->rgba = malloc((size_t)w * h * 4 * sizeof *L->rgba);
    BK_CHECK(L->rgba, "out of memory");
#pragma omp parallel for schedule(static)
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float *p = L->rgba + ((size_t)y * w + x) * 4;
            float a = (float)shape_coverage(s, x + 0.5, y + 0.5);
            float rgb[3] = {0, 0, 0};
            if (a > 0) texture_at(t, x, y, rgb);
            p[0] = rgb[0] * a, p[1] = rgb[1] * a, p[2] = rgb[2] * a, p[3] = a;
        }
}

/* Small bright discs (light sources) on the covered part of a layer, linear intensity > 1. */
static void add_highlights(layer *L, rng *r, int w, int h, int count, double size) {
    for (int i = 0; i < count; i++) {
        double cx = range(r, 0, w), cy = range(r, 0, h), rad = size * range(r, 0.6, 1.4);
        float colour[3];
        random_colour(r, colour, 0.6, 1.0);
        double gain = range(r, 3.0, 8.0);
        int x0 = (int)fmax(0, cx - rad - 1), x1 = (int)fmin(w - 1, cx + rad + 1);
        int y0 = (int)fmax(0, cy - rad - 1), y1 = (int)fmin(h - 1, cy + rad + 1);
        for (int y = y0; y <= y1; y++)
            for (int x = x0; x <= x1; x++) {
                float *p = L->rgba + ((size_t)y * w + x) * 4;
                if (p[3] < 0.5f) continue; /* lights sit on the layer's surface */
                double d = rad - hypot(x + 0.5 - cx, y + 0.5 - cy);
                float a = smoothstep_edge(d);
                for (int k = 0; k < 3; k++) p[k] = p[k] * (1 - a) + (float)(gain * colour[k]) * a * p[3];
            }
    }
}

/* Disk (circle of confusion) blur of the 4 planes, radius r, normalised by the taps inside
 * the image. Each row of the disk is a run read from per-row prefix sums. */
static void disk_blur(float *rgba, int w, int h, double radius) {
    int r = (int)lround(radius);
    if (r < 1) return;
    double *prefix = malloc((size_t)h * (w + 1) * 4 * sizeof *prefix);
    float *out = malloc((size_t)w * h * 4 * sizeof *out);
    int *half = malloc((size_t)(2 * r + 1) * sizeof *half);
    BK_CHECK(prefix && out && half, "out of memory for a disk blur");
    for (int dy = -r; dy <= r; dy++) half[dy + r] = (int)floor(sqrt((double)r * r - (double)dy * dy) + 0.5);
#pragma omp parallel for schedule(static)
    for (int y = 0; y < h; y++) {
        double *p = prefix + (size_t)y * (w + 1) * 4;
        for (int k = 0; k < 4; k++) p[k] = 0;
        for (int x = 0; x < w; x++)
            for (int k = 0; k < 4; k++) p[(x + 1) * 4 + k] = p[x * 4 + k] + rgba[((size_t)y * w + x) * 4 + k];
    }
#pragma omp parallel for schedule(static)
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double s[4] = {0, 0, 0, 0};
            long taps = 0;
            for (int dy = -r; dy <= r; dy++) {
                int yy = y + dy;
                if (yy < 0 || yy >= h) continue;
                int x0 = x - half[dy + r], x1 = x + half[dy + r] + 1;
                if (x0 < 0) x0 = 0;
                if (x1 > w) x1 = w;
                const double *p = prefix + (size_t)yy * (w + 1) * 4;
                for (int k = 0; k < 4; k++) s[k] += p[x1 * 4 + k] - p[x0 * 4 + k];
                taps += x1 - x0;
            }
            float *o = out + ((size_t)y * w + x) * 4;
            for (int k = 0; k < 4; k++) o[k] = (float)(s[k] / taps);
        }
    memcpy(rgba, out, (size_t)w * h * 4 * sizeof *out);
    free(prefix);
    free(out);
    free(half);
}

/* acc (premultiplied RGB) = L over acc */
static void composite(float *acc, const float *rgba, int w, int h) {
    for (size_t i = 0; i < (size_t)w * h; i++) {
        float a = rgba[i * 4 + 3];
        for (int k = 0; k < 3; k++) acc[i * 3 + k] = rgba[i * 4 + k] + (1 - a) * acc[i * 3 + k];
    }
}

static void encode(const float *lin, int w, int h, bk_image *img) {
    for (size_t i = 0; i < (size_t)w * h * 3; i++) {
        double v = fmin(fmax(lin[i], 0.0), 1.0);
        img->pixels[i] = (uint8_t)lrint(255.0 * pow(v, 1.0 / 2.2));
    }
}

/* ---------------------------------------------------------------- scenes */

enum { MAX_LAYERS = 8 };

bk_status bk_synth_scene(uint64_t seed, int index, int height, bk_image *input, bk_image *target,
                         bk_image *mask) {
    if (height < 32) return bk_fail(BK_ERR_ARG, "synthetic images need a height of at least 32, not %d", height);
    rng r = {seed * 0x9e3779b97f4a7c15ull ^ (uint64_t)index * 0xd1b54a32d192ed03ull ^ 0x5359u};
    next_u64(&r);
    const int h = height;
    const int w = 2 * (int)lround(h * range(&r, 1.33, 1.6) / 2);
    const double scale = h / 1024.0;
    const double max_radius = h * range(&r, 0.012, 0.03);

    layer layers[MAX_LAYERS];
    int n = 0, subject = -1, front = -1;
    /* backdrop */
    {
        shape s = {.kind = 2};
        texture t;
        texture_init(&t, &r, w, h, range(&r, 60, 160) * scale, 0.5 / fmax(scale, 0.25), range(&r, 0.6, 1.0));
        paint(&layers[n], w, h, &s, &t);
        layers[n].radius = max_radius;
        add_highlights(&layers[n], &r, w, h, (int)range(&r, 5, 60), fmax(1.0, 3 * scale));
        texture_free(&t);
        n++;
    }
    /* middle layers, far to near */
    int n_mid = 2 + (int)range(&r, 0, 3);
    for (int m = 0; m < n_mid; m++) {
        shape s = {0};
        double depth = 1.0 - (m + 1.0) / (n_mid + 1.0) * range(&r, 0.7, 1.0); /* 1 far .. near 0 */
        if (uni(&r) < 0.55) {
            s.kind = 0;
            s.base = h * range(&r, 0.25, 0.75);
            for (int k = 0; k < 3; k++) {
                s.amp[k] = h * range(&r, 0.01, 0.08) / (k + 1);
                s.freq[k] = range(&r, 0.5, 6.0) * (k + 1) / w * 2 * M_PI;
                s.phase[k] = range(&r, 0, 2 * M_PI);
            }
        } else {
            s.kind = 1;
            s.n_ell = 1 + (int)range(&r, 0, 5);
            for (int e = 0; e < s.n_ell; e++) {
                s.cx[e] = range(&r, 0, w), s.cy[e] = range(&r, 0, h);
                s.rx[e] = h * range(&r, 0.05, 0.3), s.ry[e] = h * range(&r, 0.05, 0.35);
                s.rot[e] = range(&r, 0, M_PI);
            }
        }
        texture t;
        texture_init(&t, &r, w, h, range(&r, 15, 90) * scale, 1.0 / fmax(scale, 0.25), range(&r, 0.5, 1.0));
        paint(&layers[n], w, h, &s, &t);
        layers[n].radius = max_radius * fmax(depth, 0.25);
        add_highlights(&layers[n], &r, w, h, (int)range(&r, 0, 30), fmax(1.0, 2.5 * scale));
        texture_free(&t);
        n++;
    }
    /* the subject, in focus, near the centre */
    {
        shape s = {.kind = 1};
        s.n_ell = 2 + (int)range(&r, 0, 4);
        double cx = w * range(&r, 0.38, 0.62), cy = h * range(&r, 0.4, 0.62), size = h * range(&r, 0.14, 0.3);
        for (int e = 0; e < s.n_ell; e++) {
            s.cx[e] = cx + size * range(&r, -0.5, 0.5);
            s.cy[e] = cy + size * range(&r, -0.7, 0.7);
            s.rx[e] = size * range(&r, 0.25, 0.6);
            s.ry[e] = size * range(&r, 0.3, 0.8);
            s.rot[e] = range(&r, 0, M_PI);
        }
        texture t;
        texture_init(&t, &r, w, h, range(&r, 8, 40) * scale, 3.0 / fmax(scale, 0.25), range(&r, 0.7, 1.0));
        t.stripe_amount = range(&r, 0.3, 0.7); /* fine detail that blur would destroy */
        paint(&layers[n], w, h, &s, &t);
        layers[n].radius = 0;
        texture_free(&t);
        subject = n++;
    }
    /* sometimes an out-of-focus occluder in front */
    if (uni(&r) < 0.3) {
        shape s = {.kind = 1, .n_ell = 1 + (int)range(&r, 0, 3)};
        double cx = uni(&r) < 0.5 ? 0 : w, cy = h * range(&r, 0.6, 1.0);
        for (int e = 0; e < s.n_ell; e++) {
            s.cx[e] = cx + h * range(&r, -0.15, 0.15), s.cy[e] = cy + h * range(&r, -0.15, 0.15);
            s.rx[e] = h * range(&r, 0.08, 0.2), s.ry[e] = h * range(&r, 0.05, 0.15);
            s.rot[e] = range(&r, 0, M_PI);
        }
        texture t;
        texture_init(&t, &r, w, h, 60 * scale, 1.0, range(&r, 0.3, 0.7));
        paint(&layers[n], w, h, &s, &t);
        layers[n].radius = max_radius * range(&r, 0.5, 1.0);
        texture_free(&t);
        front = n++;
    }

    bk_status st;
    if ((st = bk_image_alloc(input, w, h, 3)) != BK_OK || (st = bk_image_alloc(target, w, h, 3)) != BK_OK ||
        (st = bk_image_alloc(mask, w, h, 1)) != BK_OK) {
        for (int i = 0; i < n; i++) free(layers[i].rgba);
        return st;
    }
    float *sharp = calloc((size_t)w * h * 3, sizeof *sharp), *bokeh = calloc((size_t)w * h * 3, sizeof *bokeh);
    BK_CHECK(sharp && bokeh, "out of memory");
    for (int i = 0; i < n; i++) composite(sharp, layers[i].rgba, w, h);
    /* focus mask: the subject's coverage, seen through the blurred occluder */
    float *subject_cov = malloc((size_t)w * h * sizeof *subject_cov);
    BK_CHECK(subject_cov, "out of memory");
    for (size_t p = 0; p < (size_t)w * h; p++) subject_cov[p] = layers[subject].rgba[p * 4 + 3];
    for (int i = 0; i < n; i++) {
        disk_blur(layers[i].rgba, w, h, layers[i].radius);
        composite(bokeh, layers[i].rgba, w, h);
    }
    for (size_t p = 0; p < (size_t)w * h; p++) {
        float m = subject_cov[p] * (front >= 0 ? 1.0f - layers[front].rgba[p * 4 + 3] : 1.0f);
        mask->pixels[p] = (uint8_t)lrintf(255.0f * fminf(fmaxf(m, 0.0f), 1.0f));
    }
    encode(sharp, w, h, input);
    encode(bokeh, w, h, target);
    free(sharp);
    free(bokeh);
    free(subject_cov);
    for (int i = 0; i < n; i++) free(layers[i].rgba);
    return BK_OK;
}

bk_status bk_synth_write(const char *root, int first, int count, int height, uint64_t seed,
                         int verbose) {
    char dir[BK_PATH_MAX];
    const char *dirs[] = {"", "/Training", "/Training/original", "/Training/bokeh", "/mask"};
    if (strlen(root) > BK_PATH_MAX - 64) return bk_fail(BK_ERR_ARG, "output path too long");
    for (int i = 0; i < 5; i++) {
        snprintf(dir, sizeof dir, "%s%s", root, dirs[i]);
        bk_status st = bk_make_dirs(dir);
        if (st != BK_OK) return st;
    }
    bk_ebb_index ix = {.root = (char *)root};
    for (int i = first; i < first + count; i++) {
        bk_image in, tg, mk;
        bk_status st = bk_synth_scene(seed, i, height, &in, &tg, &mk);
        if (st != BK_OK) return st;
        char path[BK_PATH_MAX];
        if ((st = bk_image_write_jpeg(bk_ebb_path(&ix, i, BK_EBB_ORIGINAL, path, sizeof path), &in, 95)) == BK_OK &&
            (st = bk_image_write_jpeg(bk_ebb_path(&ix, i, BK_EBB_BOKEH, path, sizeof path), &tg, 95)) == BK_OK)
            st = bk_image_write_png(bk_ebb_path(&ix, i, BK_EBB_MASK, path, sizeof path), &mk);
        bk_image_free(&in);
        bk_image_free(&tg);
        bk_image_free(&mk);
        if (st != BK_OK) return st;
        if (verbose) {
            fprintf(stderr, "\rsynth: %d/%d", i - first + 1, count);
            fflush(stderr);
        }
    }
    if (verbose) fputc('\n', stderr);
    return BK_OK;
}
