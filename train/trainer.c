/* trainer.c — the training loop (see trainer.h). */
#include "train/trainer.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/conv_choice.h"
#include "core/bokehlab.h"
#include "core/files.h"
#include "core/h5.h"
#include "data/ebb.h"
#include "data/image.h"
#include "data/loader.h"
#include "eval/metrics.h"
#include "losses/l1.h"
#include "losses/lpips.h"
#include "losses/ssim.h"
#include "losses/vgg.h"
#include "losses/wgan_gp.h"
#include "models/checkpoint.h"
#include "train/dist.h"
#include "train/optim.h"
#include "train/runlog.h"
#include "train/schedule.h"

enum { N_TERMS = 8 };
static const char *const term_names[N_TERMS] = {"l1", "ssim", "ms_ssim", "lpips", "vgg", "adv", "d_loss", "gp"};

typedef struct trainer {
    bk_config cfg;
    bk_ctx ctx;
    bk_ebb_index ix;
    bk_ebb_split split;
    bool have_index;
    bk_loader *loader;
    bk_model *model;
    bk_adam opt;
    bk_lpips_net lpips;
    bool has_lpips;
    bk_vgg_net vgg;
    bool has_vgg;
    bool gan;
    bk_critic critic;
    bk_adam copt;
    bool external_mask;
    float range_lo;            /* 0 or -1 */
    int h, w;                  /* training image size */
    char run_dir[1024];
    FILE *log;
    int64_t step;
    double best_psnr;
    int bad_in_a_row;
    bool progress;
    int rank, ranks;           /* data-parallel: this process's rank and their number (dist.h) */
} trainer;

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

static uint64_t mix(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static char *config_text(const bk_config *c) {
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    bk_config_print(c, m, false);
    fclose(m);
    return text;
}

/* ---------------------------------------------------------------- checkpoints */

/* Rank 0 writes; the other ranks hold the same state. */
static bk_status save_checkpoint(trainer *t, const char *name) {
    if (t->rank != 0) return BK_OK;
    char path[1200];
    snprintf(path, sizeof path, "%s/ckpt/%s", t->run_dir, name);
    char *text = config_text(&t->cfg);
    int64_t epoch = t->step * t->cfg.train_batch * t->cfg.train_accum / (t->split.n_train ? t->split.n_train : 1);
    char *kernels = bk_conv_choices_text(&t->ctx);
    bk_ckpt_meta meta = {t->step, epoch, text, kernels};
    bk_h5 f;
    bk_status st = bk_h5_create(&f, path);
    if (st == BK_OK) {
        char best[64];
        snprintf(best, sizeof best, "%.17g", t->best_psnr);
        if ((st = bk_model_write(t->model, &f, &meta)) == BK_OK &&
            (st = bk_adam_save(&t->opt, &f, "/optim/generator")) == BK_OK &&
            (st = bk_h5_set_attr_str(&f, "best_val_psnr", best)) == BK_OK &&
            (st = bk_h5_set_attr_int(&f, "rng_seed", t->cfg.run_seed)) == BK_OK && t->gan) {
            if ((st = bk_params_save(&t->critic.params, &f, "/critic")) == BK_OK)
                st = bk_adam_save(&t->copt, &f, "/optim/critic");
        }
        bk_status closed = bk_h5_close(&f, st == BK_OK);
        if (st == BK_OK) st = closed;
    }
    free(text);
    free(kernels);
    if (st != BK_OK)
        return bk_fail(st, "checkpoint %s not written (the previous one is intact): %s", path, bk_last_error());
    return BK_OK;
}

static bk_status load_checkpoint(trainer *t, const char *path) {
    bk_h5 f;
    bk_status st = bk_h5_open(&f, path);
    if (st != BK_OK) return st;
    char best[64] = "";
    if ((st = bk_model_read(t->model, &f)) == BK_OK && (st = bk_ckpt_read_kernels(&t->ctx, &f)) == BK_OK &&
        (st = bk_adam_load(&t->opt, &f, "/optim/generator")) == BK_OK &&
        (st = bk_h5_get_attr_int(&f, "step", &t->step)) == BK_OK && t->gan) {
        if (!bk_h5_exists(&f, "/critic/params"))
            st = bk_fail(BK_ERR_FORMAT, "%s has no critic; it cannot resume a run with loss.adv > 0", path);
        else if ((st = bk_params_load(&t->critic.params, &f, "/critic")) == BK_OK)
            st = bk_adam_load(&t->copt, &f, "/optim/critic");
    }
    if (st == BK_OK && bk_h5_get_attr_str(&f, "best_val_psnr", best, sizeof best) == BK_OK) t->best_psnr = atof(best);
    bk_h5_close(&f, false);
    return st;
}

/* ---------------------------------------------------------------- set-up */

static bk_status check_config(trainer *t) {
    bk_config *c = &t->cfg;
    const bk_model_kind *k = bk_model_kind_find(c->model_name);
    t->h = (int)(c->data_crop_h ? c->data_crop_h : c->data_resize_h);
    t->w = (int)(c->data_crop_w ? c->data_crop_w : c->data_resize_w);
    if (!t->h || !t->w)
        return bk_fail(BK_ERR_ARG, "%s: set data.resize_h/resize_w or data.crop_h/crop_w: training needs one image size",
                       bk_config_source(c, "data", "resize_h"));
    if (t->h % k->multiple || t->w % k->multiple)
        return bk_fail(BK_ERR_ARG, "%s: %s trains on sizes that are multiples of %d; %dx%d is not",
                       bk_config_source(c, c->data_crop_h ? "data" : "data", c->data_crop_h ? "crop_h" : "resize_h"),
                       k->name, k->multiple, t->h, t->w);
    /* train.batch is the global batch: each rank trains on its shard of it */
    if (c->train_batch % t->ranks)
        return bk_fail(BK_ERR_ARG, "%s: train.batch = %lld is the global batch, split evenly over the %d ranks: "
                       "it must be a multiple of %d", bk_config_source(c, "train", "batch"), (long long)c->train_batch,
                       t->ranks, t->ranks);
    const int64_t local = c->train_batch / t->ranks;
    char per_rank[64] = "";
    if (t->ranks > 1) snprintf(per_rank, sizeof per_rank, " (%lld per rank on %d ranks)", (long long)local, t->ranks);
    const int bn_stride = k->bn_stride ? k->bn_stride(c->model_variant) : 0;
    if (bn_stride && local * (t->h / bn_stride) * (t->w / bn_stride) < 2)
        return bk_fail(BK_ERR_ARG, "%s: %s with train.batch = %lld%s at %dx%d leaves one value per channel in its "
                       "deepest batch norm (at 1/%d size), which cannot be normalised: use train.batch >= %d or "
                       "a larger image size", bk_config_source(c, "train", "batch"), k->name,
                       (long long)c->train_batch, per_rank, t->h, t->w, bn_stride, 2 * t->ranks);
    if (c->loss_ms_ssim > 0) {
        int min = strcmp(c->loss_msssim_mode, "standard") ? 16 : BK_MSSSIM_MIN_SIDE;
        if (t->h < min || t->w < min)
            return bk_fail(BK_ERR_ARG, "%s: MS-SSIM (%s) needs images of at least %dx%d, the training size is %dx%d",
                           bk_config_source(c, "loss", "ms_ssim"), c->loss_msssim_mode, min, min, t->h, t->w);
    }
    if ((c->loss_ssim > 0 || c->loss_ms_ssim > 0) && (t->h < 11 || t->w < 11))
        return bk_fail(BK_ERR_ARG, "SSIM needs images of at least 11x11");
    double total = c->loss_l1 + c->loss_ssim + c->loss_ms_ssim + c->loss_lpips + c->loss_vgg + c->loss_adv;
    if (total <= 0) return bk_fail(BK_ERR_ARG, "every loss weight is 0: set at least one of [loss]");
    if (c->loss_adv > 0 && c->train_accum != 1)
        return bk_fail(BK_ERR_ARG, "%s: WGAN-GP training (loss.adv > 0) uses train.accum = 1",
                       bk_config_source(c, "train", "accum"));
    if (c->loss_adv > 0 && strncmp(c->model_name, "glassnet", 8) != 0)
        return bk_fail(BK_ERR_ARG, "%s: the adversarial loss is BGGAN's, for glassnet models",
                       bk_config_source(c, "loss", "adv"));
    return BK_OK;
}

static bk_status setup_data(trainer *t) {
    bk_config *c = &t->cfg;
    const char *root = c->data_root[0] ? c->data_root : getenv("BOKEHLAB_EBB");
    if (!root || !root[0])
        return bk_fail(BK_ERR_ARG, "no dataset: set data.root in the config or the BOKEHLAB_EBB environment variable");
    bk_status st = bk_ebb_scan(root, &t->ix);
    if (st != BK_OK) return st;
    t->have_index = true;
    int64_t problems = bk_ebb_validate(&t->ix, false, t->external_mask, c->data_max_pixels, stderr);
    if (problems)
        return bk_fail(BK_ERR_FORMAT, "%s: %lld problems in the dataset (listed above); check-data %s shows them",
                       root, (long long)problems, root);
    st = bk_ebb_split_make(t->ix.ids, t->ix.count, c->data_split, c->data_train_list[0] ? c->data_train_list : NULL,
                           &t->split);
    if (st != BK_OK) return bk_fail(st, "%s: %s", bk_config_source(c, "data", "split"), bk_last_error());
    if (t->split.n_train == 0) return bk_fail(BK_ERR_ARG, "split %s has no training pairs", c->data_split);
    return BK_OK;
}

static bk_status open_train_loader(trainer *t) {
    bk_config *c = &t->cfg;
    bk_loader_config lc = {
        .index = &t->ix, .ids = t->split.train, .n_ids = t->split.n_train, .batch = (int)(c->train_batch / t->ranks),
        .shard = t->rank, .shards = t->ranks,
        .resize_h = (int)c->data_resize_h, .resize_w = (int)c->data_resize_w, .crop_h = (int)c->data_crop_h,
        .crop_w = (int)c->data_crop_w, .hflip = c->data_hflip, .vflip = c->data_vflip, .shuffle = true,
        .masks = t->external_mask, .range = t->range_lo < 0 ? BK_RANGE_PM1 : BK_RANGE_01,
        .seed = (uint64_t)c->run_seed, .start_step = t->step * c->train_accum, .workers = (int)c->data_workers,
        .prefetch = (int)c->data_prefetch, .max_pixels = c->data_max_pixels};
    return bk_loader_open(&t->loader, &lc);
}

static bk_status setup_model(trainer *t) {
    bk_config *c = &t->cfg;
    bk_status st = bk_model_create(&t->ctx, c->model_name, c->model_variant, (uint64_t)c->run_seed, &t->model);
    if (st != BK_OK) return bk_fail(st, "%s: %s", bk_config_source(c, "model", "variant"), bk_last_error());
    if (c->model_init_from[0]) {
        bk_h5 f;
        if ((st = bk_h5_open(&f, c->model_init_from)) != BK_OK) return st;
        st = bk_model_read(t->model, &f);
        bk_h5_close(&f, false);
        if (st != BK_OK) return bk_fail(st, "model.init_from: %s", bk_last_error());
    }
    if (c->model_init_dmshn[0]) {
        if (strcmp(c->model_name, "stacked_dmshn") != 0)
            return bk_fail(BK_ERR_ARG, "%s: model.init_dmshn is for stacked_dmshn", bk_config_source(c, "model", "init_dmshn"));
        bk_model *d;
        if ((st = bk_model_load(&t->ctx, c->model_init_dmshn, &d)) != BK_OK) return bk_fail(st, "model.init_dmshn: %s", bk_last_error());
        if (strcmp(d->kind->name, "dmshn") != 0) {
            bk_model_free(&t->ctx, d);
            return bk_fail(BK_ERR_ARG, "model.init_dmshn: %s holds a %s, not a dmshn", c->model_init_dmshn, d->kind->name);
        }
        /* both halves: net1.<name> and net2.<name> take <name> */
        for (int i = 0; i < t->model->params.n; i++) {
            bk_param *p = &t->model->params.v[i];
            bk_tensor *src = bk_params_get(&d->params, p->name + 5);
            BK_CHECK(src && bk_same_shape(src, p->t), "stacked parameter %s", p->name);
            memcpy(p->t->data, src->data, (size_t)bk_numel(src) * sizeof(float));
            bk_tensor_touch(p->t);
        }
        bk_model_free(&t->ctx, d);
    }
    t->range_lo = t->model->kind->minus_one_to_one ? -1.0f : 0.0f;
    bk_adam_init(&t->ctx, &t->opt, &t->model->params,
                 (bk_adam_config){(float)c->train_lr, (float)c->train_beta1, (float)c->train_beta2, (float)c->train_eps,
                                  (float)c->train_weight_decay});
    if (c->loss_lpips > 0) {
        if (!c->loss_lpips_weights[0])
            return bk_fail(BK_ERR_ARG, "%s: loss.lpips is %g but loss.lpips_weights is not set (scripts/convert_lpips.py "
                           "makes the file; docs/WEIGHTS.md)", bk_config_source(c, "loss", "lpips"), c->loss_lpips);
        if ((st = bk_lpips_load(&t->ctx, &t->lpips, c->loss_lpips_weights)) != BK_OK) return st;
        t->has_lpips = true;
    } else if (c->loss_lpips_weights[0] && bk_lpips_load(&t->ctx, &t->lpips, c->loss_lpips_weights) == BK_OK) {
        t->has_lpips = true; /* for validation only */
    }
    if (c->loss_vgg > 0) {
        if (!c->loss_vgg_weights[0])
            return bk_fail(BK_ERR_ARG, "%s: loss.vgg is %g but loss.vgg_weights is not set (scripts/convert_vgg19.py; "
                           "docs/WEIGHTS.md)", bk_config_source(c, "loss", "vgg"), c->loss_vgg);
        if ((st = bk_vgg_loss_load(&t->ctx, &t->vgg, c->loss_vgg_weights)) != BK_OK) return st;
        t->has_vgg = true;
    }
    if (c->loss_adv > 0) {
        t->gan = true;
        bk_critic_init(&t->ctx, &t->critic, mix((uint64_t)c->run_seed ^ 0xC217));
        bk_adam_init(&t->ctx, &t->copt, &t->critic.params,
                     (bk_adam_config){(float)c->gan_lr, (float)c->gan_beta1, (float)c->gan_beta2, 1e-8f, 0.0f});
    }
    return BK_OK;
}

/* ---------------------------------------------------------------- a step */

static bk_tensor *tensor_from(bk_ctx *ctx, int n, int c, int h, int w, const float *nhwc) {
    bk_tensor *t = bk_tensor_new(ctx, (bk_shape){n, c, h, w});
    memcpy(t->data, nhwc, (size_t)n * c * h * w * sizeof(float));
    return t;
}

/* The model's mask input at 1/4 size from a loader mask (external_mask). */
static bk_tensor *mask_input(trainer *t, const bk_batch *b) {
    if (!t->external_mask) return NULL;
    bool prev = bk_set_grad_enabled(&t->ctx, false);
    bk_tensor *m = tensor_from(&t->ctx, b->n, 1, b->h, b->w, b->mask);
    bk_tensor *q = bk_resample(&t->ctx, m, b->h / 4, b->w / 4, BK_RESAMPLE_BILINEAR_AA);
    bk_set_grad_enabled(&t->ctx, prev);
    return q;
}

/* [0,1] view of an image in the model's range (for LPIPS: [-1,1]). */
static bk_tensor *to_pm1(trainer *t, bk_tensor *x) {
    return t->range_lo < 0 ? x : bk_affine(&t->ctx, x, 2.0f, -1.0f);
}

static bool grads_finite(const bk_params *ps) {
    for (int i = 0; i < ps->n; i++) {
        const bk_tensor *g = ps->v[i].t->grad;
        if (!g) continue;
        int64_t n = bk_numel(g);
        for (int64_t j = 0; j < n; j++)
            if (!isfinite(g->data[j])) return false;
    }
    return true;
}

static double grad_norm(const bk_params *ps) {
    double s = 0;
    for (int i = 0; i < ps->n; i++) {
        const bk_tensor *g = ps->v[i].t->grad;
        if (!g) continue;
        int64_t n = bk_numel(g);
        for (int64_t j = 0; j < n; j++) s += (double)g->data[j] * g->data[j];
    }
    return sqrt(s);
}

static void scale_grads(bk_params *ps, float k) {
    for (int i = 0; i < ps->n; i++) {
        bk_tensor *g = ps->v[i].t->grad;
        if (!g) continue;
        int64_t n = bk_numel(g);
        for (int64_t j = 0; j < n; j++) g->data[j] *= k;
    }
}

/* One micro-batch: critic updates (GAN), then the generator's loss and backward. Fills terms. */
static bk_status micro_step(trainer *t, const bk_batch *b, int micro, double terms[N_TERMS], double *loss_out) {
    bk_ctx *ctx = &t->ctx;
    const bk_config *c = &t->cfg;
    bk_tensor *x = tensor_from(ctx, b->n, 3, b->h, b->w, b->input);
    bk_tensor *target = tensor_from(ctx, b->n, 3, b->h, b->w, b->target);
    bk_forward_opts o = bk_forward_eval();
    o.training = true;
    o.dropout_seed = mix(mix((uint64_t)c->run_seed) ^ (uint64_t)(t->step * c->train_accum + micro));
    if (t->rank) o.dropout_seed = mix(o.dropout_seed ^ (uint64_t)t->rank); /* masks of its own on each shard */
    o.mask = mask_input(t, b);
    bk_model_out out;
    bk_model_forward(ctx, t->model, x, &o, &out);
    bk_tensor *y = out.y;

    if (t->gan) {
        for (int k = 0; k < c->gan_n_critic; k++) {
            bk_params_zero_grad(&t->critic.params);
            bk_tensor *alpha = bk_tensor_new(ctx, (bk_shape){b->n, 1, 1, 1});
            uint64_t s = mix((uint64_t)c->run_seed ^ 0xA1FA) ^ mix((uint64_t)(t->step * 131 + k));
            const int first = t->rank * b->n; /* this shard's samples of the global batch */
            for (int i = 0; i < first + b->n; i++) {
                s = mix(s);
                if (i >= first) alpha->data[i - first] = (float)((s >> 40) * (1.0 / 16777216.0));
            }
            bk_wgan_terms wt;
            bk_tensor *ld = bk_wgan_gp_critic_loss(ctx, &t->critic, target, y, alpha, (float)c->gan_lambda_gp, &wt);
            if (!isfinite(ld->data[0])) return bk_fail(BK_ERR_ARG, "non-finite critic loss");
            bk_backward(ctx, ld, false);
            bk_dist_average_grads(ctx, &t->critic.params, NULL, 0);
            if (!grads_finite(&t->critic.params)) return bk_fail(BK_ERR_ARG, "non-finite critic gradient");
            bk_adam_step(&t->copt, (float)c->gan_lr);
            terms[6] += ld->data[0];
            terms[7] += 0.5 * (wt.penalty[0] + wt.penalty[1]);
        }
        terms[6] /= (double)c->gan_n_critic;
        terms[7] /= (double)c->gan_n_critic;
    }

    bk_tensor *total = NULL;
    const double w[6] = {c->loss_l1, c->loss_ssim, c->loss_ms_ssim, c->loss_lpips, c->loss_vgg, c->loss_adv};
    float range = t->range_lo < 0 ? 2.0f : 1.0f;
    for (int k = 0; k < 6; k++) {
        if (w[k] <= 0) continue;
        bk_tensor *l = NULL;
        switch (k) {
        case 0: l = bk_l1(ctx, y, target); break;
        case 1: l = bk_affine(ctx, bk_ssim(ctx, y, target, range), -1.0f, 1.0f); break;
        case 2: {
            bk_tensor *ms;
            bk_status st = bk_ms_ssim(ctx, y, target, range,
                                      strcmp(c->loss_msssim_mode, "standard") ? BK_MSSSIM_DMSHN_COMPAT : BK_MSSSIM_STANDARD, &ms);
            if (st != BK_OK) return st;
            l = bk_affine(ctx, ms, -1.0f, 1.0f);
            break;
        }
        case 3: l = bk_mean(ctx, bk_lpips(ctx, &t->lpips, to_pm1(t, y), to_pm1(t, target))); break;
        case 4: l = bk_vgg_loss(ctx, &t->vgg, y, target, t->range_lo < 0); break;
        case 5: l = bk_wgan_generator_loss(ctx, &t->critic, y); break;
        }
        terms[k] += l->data[0];
        bk_tensor *wl = bk_scale(ctx, l, (float)(w[k] / (double)c->train_accum));
        total = total ? bk_add(ctx, total, wl) : wl;
    }
    *loss_out += total->data[0];
    if (!isfinite(total->data[0])) return BK_OK; /* the caller skips the step */
    bk_backward(ctx, total, false);
    return BK_OK;
}

/* ---------------------------------------------------------------- validation */

static inline uint8_t quantize(float v, float lo) {
    float u = lo < 0 ? (v + 1.0f) * 0.5f : v;
    u = u < 0.0f ? 0.0f : u > 1.0f ? 1.0f : u;
    return (uint8_t)floorf(255.0f * u + 0.5f);
}

static void to_u8(const float *v, size_t n, float lo, uint8_t *out) {
    for (size_t i = 0; i < n; i++) out[i] = quantize(v[i], lo);
}

static void save_sample(trainer *t, int index, int h, int w, const uint8_t *in, const float *mask, const uint8_t *out,
                        const uint8_t *target, int mh, int mw) {
    bk_image g;
    if (bk_image_alloc(&g, 4 * w, h, 3) != BK_OK) return;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < 3; k++) {
                size_t src = ((size_t)y * w + x) * 3 + k, row = (size_t)y * 4 * w;
                g.pixels[(row + x) * 3 + k] = in[src];
                uint8_t m = 0;
                if (mask) m = quantize(mask[(size_t)(y * mh / h) * mw + (size_t)(x * mw / w)], 0.0f);
                g.pixels[(row + w + x) * 3 + k] = m;
                g.pixels[(row + 2 * w + x) * 3 + k] = out[src];
                g.pixels[(row + 3 * w + x) * 3 + k] = target[src];
            }
    char path[1300];
    snprintf(path, sizeof path, "%s/samples/step%07lld_%d.png", t->run_dir, (long long)t->step, index);
    if (bk_image_write_png(path, &g) != BK_OK) fprintf(stderr, "train: sample not written: %s\n", bk_last_error());
    bk_image_free(&g);
}

typedef struct val_result {
    double psnr, ssim, lpips, base_psnr, base_ssim;
    int n;
} val_result;

/* Sums of the metrics over the evaluation images [lo, hi); rank 0 also writes the samples. */
static bk_status validate_range(trainer *t, int64_t lo, int64_t hi, val_result *r) {
    const bk_config *c = &t->cfg;
    bk_loader_config lc = {.index = &t->ix, .ids = t->split.eval + lo, .n_ids = hi - lo, .batch = 1,
                           .resize_h = t->h, .resize_w = t->w, .masks = t->external_mask,
                           .range = t->range_lo < 0 ? BK_RANGE_PM1 : BK_RANGE_01, .seed = 1, .workers = (int)c->data_workers,
                           .prefetch = 2, .max_pixels = c->data_max_pixels};
    bk_loader *l;
    bk_status st = bk_loader_open(&l, &lc);
    if (st != BK_OK) return st;
    bk_ctx *ctx = &t->ctx;
    size_t px = (size_t)t->h * t->w * 3;
    uint8_t *u_in = malloc(px), *u_out = malloc(px), *u_tg = malloc(px);
    BK_CHECK(u_in && u_out && u_tg, "out of memory");
    bool prev = bk_set_grad_enabled(ctx, false);
    for (int64_t i = lo; i < hi && st == BK_OK; i++) {
        const bk_batch *b;
        if ((st = bk_loader_next(l, &b)) != BK_OK) break;
        bk_tensor *x = tensor_from(ctx, 1, 3, b->h, b->w, b->input);
        bk_forward_opts o = bk_forward_eval();
        o.mask = mask_input(t, b);
        bk_model_out out;
        bk_model_forward(ctx, t->model, x, &o, &out);
        to_u8(b->input, px, t->range_lo, u_in);
        to_u8(out.y->data, px, t->range_lo, u_out);
        to_u8(b->target, px, t->range_lo, u_tg);
        r->psnr += bk_psnr_u8(u_out, u_tg, px);
        r->ssim += bk_ssim_u8(u_out, u_tg, t->h, t->w, 3);
        r->base_psnr += bk_psnr_u8(u_in, u_tg, px);
        r->base_ssim += bk_ssim_u8(u_in, u_tg, t->h, t->w, 3);
        if (t->has_lpips) {
            float d;
            if (bk_lpips_u8(ctx, &t->lpips, u_out, u_tg, t->h, t->w, &d) == BK_OK) r->lpips += d;
        }
        if (i < c->train_samples && t->rank == 0) {
            const bk_tensor *m = out.aux && out.aux->c == 1 ? out.aux : NULL;
            save_sample(t, (int)i, t->h, t->w, u_in, m ? m->data : NULL, u_out, u_tg, m ? (int)m->h : 0, m ? (int)m->w : 0);
        }
        r->n++;
        bk_step_end(ctx);
    }
    bk_set_grad_enabled(ctx, prev);
    free(u_in);
    free(u_out);
    free(u_tg);
    bk_loader_close(l);
    return st;
}

/* The evaluation images [lo, hi) of a rank: rank 0 takes the first ones, at least those shown as
 * samples (it alone writes files), the others share the rest evenly. */
static void val_share(int64_t n, int64_t samples, int rank, int ranks, int64_t *lo, int64_t *hi) {
    int64_t first = (n + ranks - 1) / ranks;
    if (first < samples) first = samples < n ? samples : n;
    if (rank == 0) {
        *lo = 0, *hi = first;
        return;
    }
    int64_t per = (n - first + ranks - 2) / (ranks - 1);
    *lo = first + (rank - 1) * per;
    *hi = *lo + per;
    if (*lo > n) *lo = n;
    if (*hi > n) *hi = n;
}

/* Every rank evaluates its share; the sums are added over the ranks, so all return the same. */
static bk_status validate(trainer *t, val_result *r) {
    const bk_config *c = &t->cfg;
    *r = (val_result){0};
    int64_t n = t->split.n_eval;
    if (c->train_val_max_images && n > c->train_val_max_images) n = c->train_val_max_images;
    if (n == 0) return BK_OK;
    int64_t lo, hi;
    val_share(n, c->train_samples, t->rank, t->ranks, &lo, &hi);
    bk_status st = hi > lo ? validate_range(t, lo, hi, r) : BK_OK;
    if (st != BK_OK) return st;
    double sums[6] = {r->psnr, r->ssim, r->lpips, r->base_psnr, r->base_ssim, r->n};
    bk_dist_sum_f64(sums, 6);
    r->n = (int)sums[5];
    r->psnr = sums[0] / r->n;
    r->ssim = sums[1] / r->n;
    r->lpips = t->has_lpips ? sums[2] / r->n : NAN;
    r->base_psnr = sums[3] / r->n;
    r->base_ssim = sums[4] / r->n;
    return BK_OK;
}

/* ---------------------------------------------------------------- logging */

/* The run directory; rank 0 alone makes it and writes in it. */
static bk_status open_run(trainer *t, bool resuming) {
    const bk_config *c = &t->cfg;
    snprintf(t->run_dir, sizeof t->run_dir, "%s/%s", c->run_out_dir, c->run_name);
    if (t->rank != 0) return BK_OK;
    char path[1300];
    bk_status st = bk_make_dirs(t->run_dir);
    if (st == BK_OK) snprintf(path, sizeof path, "%s/ckpt", t->run_dir), st = bk_make_dirs(path);
    if (st == BK_OK) snprintf(path, sizeof path, "%s/samples", t->run_dir), st = bk_make_dirs(path);
    if (st != BK_OK) return st;
    snprintf(path, sizeof path, "%s/config.ini", t->run_dir);
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    bk_config_print(c, m, true);
    fclose(m);
    st = bk_write_file_atomic(path, text, len);
    free(text);
    if (st != BK_OK) return st;
    snprintf(path, sizeof path, "%s/log.csv", t->run_dir);
    int dropped = 0;
    if (resuming && (st = bk_runlog_trim(path, t->step, &dropped)) != BK_OK) return st;
    if (dropped)
        printf("train: %s: dropped %d rows after step %lld, the checkpoint's (they are redone)\n", path, dropped,
               (long long)t->step);
    bool exists = access(path, F_OK) == 0;
    t->log = fopen(path, resuming ? "a" : "w");
    if (!t->log) return bk_fail(BK_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    if (!resuming || !exists) {
        fprintf(t->log, "step,epoch,lr,loss");
        for (int k = 0; k < N_TERMS; k++) fprintf(t->log, ",%s", term_names[k]);
        fprintf(t->log, ",seconds,it_per_s,val_psnr,val_ssim,val_lpips,base_psnr,base_ssim\n");
        if (fflush(t->log) != 0 || ferror(t->log)) return bk_fail(BK_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    }
    return BK_OK;
}

/* A row of log.csv; a failed write stops the run (the log is the run's record). */
static bk_status log_row(trainer *t, double lr, double loss, const double terms[N_TERMS], double secs, double its,
                         const val_result *v) {
    double epoch = (double)t->step * t->cfg.train_batch * t->cfg.train_accum / (double)t->split.n_train;
    fprintf(t->log, "%lld,%.4f,%.6g,%.6g", (long long)t->step, epoch, lr, loss);
    for (int k = 0; k < N_TERMS; k++) fprintf(t->log, ",%.6g", terms[k]);
    fprintf(t->log, ",%.3f,%.3f", secs, its);
    if (v && v->n) {
        fprintf(t->log, ",%.4f,%.5f,", v->psnr, v->ssim);
        if (!isnan(v->lpips)) fprintf(t->log, "%.5f", v->lpips);
        fprintf(t->log, ",%.4f,%.5f\n", v->base_psnr, v->base_ssim);
    } else
        fprintf(t->log, ",,,,,\n");
    if (fflush(t->log) != 0 || ferror(t->log))
        return bk_fail(BK_ERR_IO, "%s/log.csv: write failed at step %lld: %s", t->run_dir, (long long)t->step,
                       strerror(errno));
    return BK_OK;
}

static void progress_line(trainer *t, double loss, double its, double lr) {
    int64_t total = t->cfg.train_steps;
    double eta = its > 0 ? (double)(total - t->step) / its : 0;
    int width = 24, done = (int)((double)t->step / (double)total * width);
    char bar[32];
    for (int i = 0; i < width; i++) bar[i] = i < done ? '=' : i == done ? '>' : ' ';
    bar[width] = '\0';
    fprintf(stderr, "\rstep %lld/%lld [%s] loss %.4f lr %.2g %.2f it/s ETA %d:%02d:%02d ", (long long)t->step,
            (long long)total, bar, loss, lr, its, (int)(eta / 3600), (int)(eta / 60) % 60, (int)eta % 60);
    fflush(stderr);
}

/* ---------------------------------------------------------------- the run */

static void trainer_free(trainer *t) {
    if (t->loader) bk_loader_close(t->loader);
    if (t->log) fclose(t->log);
    if (t->model) {
        bk_adam_free(&t->ctx, &t->opt);
        bk_model_free(&t->ctx, t->model);
    }
    if (t->has_lpips) bk_lpips_free(&t->ctx, &t->lpips);
    if (t->has_vgg) bk_vgg_loss_free(&t->ctx, &t->vgg);
    if (t->gan) {
        bk_adam_free(&t->ctx, &t->copt);
        bk_critic_free(&t->ctx, &t->critic);
    }
    if (t->have_index) {
        bk_ebb_split_free(&t->split);
        bk_ebb_index_free(&t->ix);
    }
    bk_ctx_free(&t->ctx);
}

static bk_status load_config(trainer *t, const bk_train_options *o) {
    bk_config_defaults(&t->cfg);
    bk_status st;
    if (o->config_path) {
        if ((st = bk_config_load(&t->cfg, o->config_path)) != BK_OK) return st;
    } else {
        if (!o->resume) return bk_fail(BK_ERR_ARG, "train needs --config FILE (or --resume CKPT)");
        bk_h5 f;
        if ((st = bk_h5_open(&f, o->resume)) != BK_OK) return st;
        char *text = malloc(1 << 20);
        BK_CHECK(text, "out of memory");
        st = bk_h5_get_attr_str(&f, "config", text, 1 << 20);
        bk_h5_close(&f, false);
        char origin[1100]; /* errors name the checkpoint and the line of its config */
        snprintf(origin, sizeof origin, "%s (stored config)", o->resume);
        if (st == BK_OK) st = bk_config_parse_text(&t->cfg, text, origin);
        free(text);
        if (st != BK_OK) return st;
    }
    for (int i = 0; i < o->n_sets; i++)
        if ((st = bk_config_set(&t->cfg, o->sets[i])) != BK_OK) return st;
    return BK_OK;
}

bk_status bk_train(const bk_train_options *o, bk_train_result *r) {
    trainer *t = calloc(1, sizeof *t);
    BK_CHECK(t, "out of memory");
    t->rank = bk_dist_rank(), t->ranks = bk_dist_size();
    *r = (bk_train_result){.val_psnr = NAN, .val_ssim = NAN, .val_lpips = NAN, .base_psnr = NAN, .base_ssim = NAN};
    bk_status st = load_config(t, o);
    if (st == BK_OK) st = check_config(t);
    if (st != BK_OK) {
        free(t);
        return st;
    }
    const bk_config *c = &t->cfg;
    if (c->run_threads > 0) omp_set_num_threads((int)c->run_threads);
    if ((st = bk_ctx_init(&t->ctx)) != BK_OK) {
        free(t);
        return st;
    }
    t->external_mask = bk_variant_has(c->model_variant, "external_mask");
    t->best_psnr = -INFINITY;
    t->progress = o->progress && t->rank == 0;
    if ((st = setup_data(t)) == BK_OK && (st = setup_model(t)) == BK_OK && o->resume)
        st = load_checkpoint(t, o->resume);
    if (st == BK_OK) st = open_run(t, o->resume != NULL);
    if (st == BK_OK) st = open_train_loader(t);
    if (st != BK_OK) {
        trainer_free(t);
        free(t);
        return st;
    }
    snprintf(r->run_dir, sizeof r->run_dir, "%s", t->run_dir);
    const bool root = t->rank == 0; /* prints and writes; the other ranks print errors only */
    if (root) {
        char ranks[64] = "";
        if (t->ranks > 1) snprintf(ranks, sizeof ranks, " on %d ranks (%lld per rank)", t->ranks,
                                   (long long)(c->train_batch / t->ranks));
        printf("train: %s%s%s on %s (%lld training, %lld evaluation pairs), %dx%d, batch %lld x %lld%s, %lld steps%s\n",
               c->model_name, c->model_variant[0] ? " " : "", c->model_variant, t->ix.root, (long long)t->split.n_train,
               (long long)t->split.n_eval, t->h, t->w, (long long)c->train_batch, (long long)c->train_accum, ranks,
               (long long)c->train_steps, o->resume ? " (resumed)" : "");
        bk_config_print(c, stdout, true);
        fflush(stdout);
    }

    struct sigaction sa = {0}, old_int, old_term;
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    stop_requested = 0;

    double window_loss = 0, window_terms[N_TERMS] = {0}, t_window = omp_get_wtime();
    int window_n = 0;
    bool first_window = true;
    r->first_loss = r->last_loss = NAN;
    while (t->step < c->train_steps && st == BK_OK) {
        double lr = bk_lr_at(c, t->step);
        bk_params_zero_grad(&t->model->params);
        double loss = 0, terms[N_TERMS] = {0};
        for (int micro = 0; micro < c->train_accum && st == BK_OK; micro++) {
            const bk_batch *b;
            if ((st = bk_loader_next(t->loader, &b)) != BK_OK) break;
            st = micro_step(t, b, micro, terms, &loss);
            bk_step_end(&t->ctx);
        }
        if (st != BK_OK) break;
        for (int k = 0; k < N_TERMS; k++) terms[k] /= (k < 6 ? (double)c->train_accum : 1.0);
        bool stop = stop_requested;
        if (t->ranks > 1) {
            /* the mean gradient over the shards, with the losses and the stop flag in the same message */
            float extra[2 + N_TERMS] = {(float)loss, stop ? 1.0f : 0.0f};
            for (int k = 0; k < N_TERMS; k++) extra[2 + k] = (float)terms[k];
            bk_dist_average_grads(&t->ctx, &t->model->params, extra, 2 + N_TERMS);
            loss = extra[0], stop = extra[1] > 0;
            for (int k = 0; k < N_TERMS; k++) terms[k] = extra[2 + k];
        }
        bool finite = isfinite(loss) && grads_finite(&t->model->params);
        if (!finite) {
            t->bad_in_a_row++;
            if (root) {
                fprintf(stderr, "\ntrain: step %lld skipped: non-finite loss or gradient (loss %g;", (long long)t->step, loss);
                for (int k = 0; k < 6; k++) fprintf(stderr, " %s %g", term_names[k], terms[k]);
                fprintf(stderr, ")\n");
            }
            if (t->bad_in_a_row >= 3) {
                st = bk_fail(BK_ERR_ARG, "three non-finite steps in a row, the last at step %lld: lower train.lr, "
                             "check the data, or set train.clip_grad_norm", (long long)t->step);
                break;
            }
        } else {
            t->bad_in_a_row = 0;
            if (c->train_clip_grad_norm > 0) {
                double norm = grad_norm(&t->model->params);
                if (norm > c->train_clip_grad_norm) scale_grads(&t->model->params, (float)(c->train_clip_grad_norm / norm));
            }
            bk_adam_step(&t->opt, (float)lr);
            window_loss += loss;
            for (int k = 0; k < N_TERMS; k++) window_terms[k] += terms[k];
            window_n++;
        }
        t->step++;
        double now = omp_get_wtime();
        bool val_now = (c->train_val_every && t->step % c->train_val_every == 0) || t->step == c->train_steps;
        if (t->progress && window_n) progress_line(t, window_loss / window_n, window_n / (now - t_window), lr);
        if (t->step % c->train_log_every == 0 || val_now || t->step == c->train_steps) {
            val_result v = {0};
            if (val_now) {
                if ((st = validate(t, &v)) != BK_OK) break;
                if (v.n) {
                    r->val_psnr = v.psnr, r->val_ssim = v.ssim, r->val_lpips = v.lpips;
                    r->base_psnr = v.base_psnr, r->base_ssim = v.base_ssim;
                }
            }
            double secs = now - t_window, its = window_n / (secs > 0 ? secs : 1);
            double mean = window_n ? window_loss / window_n : NAN;
            double mt[N_TERMS];
            for (int k = 0; k < N_TERMS; k++) mt[k] = window_n ? window_terms[k] / window_n : NAN;
            if (first_window) r->first_loss = mean, first_window = false;
            r->last_loss = mean;
            if (root) {
                /* a failed log write ends the run: rank 0 returns the error, and the program
                 * ends every rank with it (train_main.c) */
                if ((st = log_row(t, lr, mean, mt, secs, its, &v)) != BK_OK) break;
                if (t->progress) fputc('\n', stderr);
                printf("step %lld lr %.3g loss %.5f (%.2f it/s)", (long long)t->step, lr, mean, its);
                if (v.n)
                    printf(" | val PSNR %.3f SSIM %.4f%s (input: PSNR %.3f SSIM %.4f) on %d pairs", v.psnr, v.ssim,
                           isnan(v.lpips) ? "" : " LPIPS", v.base_psnr, v.base_ssim, v.n);
                printf("\n");
                fflush(stdout);
            }
            if (v.n && v.psnr > t->best_psnr) {
                t->best_psnr = v.psnr;
                if ((st = save_checkpoint(t, "best.h5")) != BK_OK) break;
            }
            window_loss = 0, window_n = 0;
            memset(window_terms, 0, sizeof window_terms);
            t_window = omp_get_wtime();
        }
        if (t->ranks == 1) stop = stop_requested; /* one process: a signal up to here counts */
        if (t->step % c->train_ckpt_every == 0 || t->step == c->train_steps || stop)
            if ((st = save_checkpoint(t, "last.h5")) != BK_OK) break;
        if (stop) {
            r->interrupted = true;
            if (root)
                printf("train: interrupted at step %lld; %s/ckpt/last.h5 holds it (train --resume to continue)\n",
                       (long long)t->step, t->run_dir);
            break;
        }
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    r->steps_done = t->step;
    if (st != BK_OK) {
        /* keep the message: freeing must not overwrite it */
        char msg[2048];
        snprintf(msg, sizeof msg, "%s", bk_last_error());
        trainer_free(t);
        free(t);
        return bk_fail(st, "%s", msg);
    }
    trainer_free(t);
    free(t);
    return BK_OK;
}
