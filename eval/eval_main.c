/* eval — scores models and predictions with the tables' metrics (SPEC §5; eval/metrics.h).
 *
 *   eval --checkpoint CKPT [--config FILE] [--root DIR] [--split SPEC] [--size HxW]
 *        [--out DIR] [--save-pred] [--lpips WEIGHTS.h5] [--max N] [--name NAME]
 *   eval --identity [--config FILE] [--root DIR] [--split SPEC] [--out DIR] ...
 *   eval --pred DIR --gt DIR [--out DIR] [--name NAME] [--lpips WEIGHTS.h5]
 *   eval --table DIR... [--out DIR]
 *
 * --checkpoint runs the model the file holds on the evaluation pairs of the split (default
 * from the config stored in the checkpoint, else val294): each input resized to --size
 * (default 1024x1536, antialiased when shrinking), the prediction resized back to the original
 * size (bilinear) and quantised to 8 bits, compared with the target JPEG. --identity scores the
 * input itself as the prediction (the baseline every method must beat). --pred scores a folder
 * of predictions (PNG or JPEG, matched to --gt by file stem; sizes must agree), so other
 * methods' outputs join the table. --table merges runs' table.json files into one table.
 * --out writes table.md/.csv/.json and per_image.csv (and predictions/ with --save-pred).
 * LPIPS needs weights (docs/WEIGHTS.md): --lpips, else the config's loss.lpips_weights; without
 * them the column is n/a and the footer says why.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/bokehlab.h"
#include "core/files.h"
#include "core/h5.h"
#include "data/ebb.h"
#include "data/image.h"
#include "eval/metrics.h"
#include "eval/predict.h"
#include "eval/table.h"
#include "models/checkpoint.h"
#include "train/config.h"

typedef struct args {
    const char *checkpoint, *config, *root, *split, *out, *lpips, *pred, *gt, *name;
    const char *tables[64];
    int n_tables;
    bool identity, save_pred;
    int size_h, size_w;
    long max;
} args;

static void usage(void) {
    fprintf(stderr,
            "usage: eval --checkpoint CKPT [--config FILE] [--root DIR] [--split SPEC] [--size HxW] [--out DIR]\n"
            "            [--save-pred] [--lpips WEIGHTS.h5] [--max N] [--name NAME]\n"
            "       eval --identity [--config FILE] [--root DIR] [--split SPEC] [--out DIR] [--lpips W] [--max N]\n"
            "       eval --pred DIR --gt DIR [--out DIR] [--name NAME] [--lpips WEIGHTS.h5]\n"
            "       eval --table DIR... [--out DIR]\n");
    exit(2);
}

static int die(const char *msg) {
    fprintf(stderr, "eval: %s\n", msg ? msg : bk_last_error());
    return 1;
}

/* ---------------------------------------------------------------- scoring */

typedef struct scorer {
    bk_ctx *ctx;
    bk_lpips_net lpips;
    bool has_lpips;
    char lpips_note[200];
    FILE *per_image;
    char per_image_path[1200];
    double psnr, ssim, lp;
    double *secs;     /* per image, for the median */
    int64_t n, n_lpips;
    bool progress;
    double t0;
} scorer;

static bk_status scorer_close(scorer *s);

static bk_status scorer_open(scorer *s, bk_ctx *ctx, const char *lpips_path, const char *out) {
    memset(s, 0, sizeof *s);
    s->ctx = ctx;
    s->progress = isatty(2);
    s->t0 = omp_get_wtime();
    if (lpips_path && lpips_path[0]) {
        if (bk_lpips_load(ctx, &s->lpips, lpips_path) == BK_OK) {
            s->has_lpips = true;
        } else {
            snprintf(s->lpips_note, sizeof s->lpips_note, "%s", bk_last_error());
            char *nl = strchr(s->lpips_note, '\n');
            if (nl) *nl = '\0';
        }
    } else {
        snprintf(s->lpips_note, sizeof s->lpips_note,
                 "no LPIPS weights given (--lpips; scripts/convert_lpips.py makes them, docs/WEIGHTS.md)");
    }
    if (out) {
        char path[1200];
        snprintf(path, sizeof path, "%s/per_image.csv", out);
        s->per_image = fopen(path, "w");
        if (!s->per_image) {
            bk_status st = bk_fail(BK_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
            scorer_close(s);
            return st;
        }
        snprintf(s->per_image_path, sizeof s->per_image_path, "%s", path);
        fprintf(s->per_image, "image,psnr,ssim,lpips,seconds\n");
    }
    return BK_OK;
}

static bk_status score(scorer *s, const char *label, const bk_image *pred, const bk_image *gt, double secs,
                       int64_t total) {
    if (pred->width != gt->width || pred->height != gt->height)
        return bk_fail(BK_ERR_SHAPE, "%s: the prediction is %dx%d, the ground truth %dx%d", label, pred->width,
                       pred->height, gt->width, gt->height);
    size_t n = (size_t)pred->width * pred->height * 3;
    double p = bk_psnr_u8(pred->pixels, gt->pixels, n), q = bk_ssim_u8(pred->pixels, gt->pixels, gt->height, gt->width, 3);
    float l = NAN;
    if (s->has_lpips) {
        bk_status st = bk_lpips_u8(s->ctx, &s->lpips, pred->pixels, gt->pixels, gt->height, gt->width, &l);
        bk_step_end(s->ctx);
        if (st != BK_OK) return st;
        s->lp += l;
        s->n_lpips++;
    }
    s->secs = realloc(s->secs, (size_t)(s->n + 1) * sizeof *s->secs);
    BK_CHECK(s->secs, "out of memory");
    s->secs[s->n] = secs;
    s->psnr += p, s->ssim += q, s->n++;
    if (s->per_image) {
        fprintf(s->per_image, "%s,%.4f,%.5f,", label, p, q);
        if (!isnan(l)) fprintf(s->per_image, "%.5f", l);
        fprintf(s->per_image, ",%.4f\n", secs);
    }
    if (s->progress) {
        double dt = omp_get_wtime() - s->t0;
        fprintf(stderr, "\reval %lld/%lld  %.2f images/s  PSNR %.3f  SSIM %.4f ", (long long)s->n, (long long)total,
                s->n / (dt > 0 ? dt : 1), s->psnr / s->n, s->ssim / s->n);
    }
    return BK_OK;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Releases what the scorer holds; the status of closing per_image.csv (whose rows are only
 * known written once it is closed). */
static bk_status scorer_close(scorer *s) {
    free(s->secs);
    s->secs = NULL;
    if (s->has_lpips) bk_lpips_free(s->ctx, &s->lpips);
    s->has_lpips = false;
    if (!s->per_image) return BK_OK;
    bool bad = ferror(s->per_image);
    int e = errno;
    if (fclose(s->per_image) != 0) bad = true, e = errno;
    s->per_image = NULL;
    return bad ? bk_fail(BK_ERR_IO, "%s: write failed: %s", s->per_image_path, strerror(e)) : BK_OK;
}

static bk_status scorer_row(scorer *s, bk_table_row *r) {
    if (s->progress) fputc('\n', stderr);
    /* the median time: robust to the first image, which also creates the kernels */
    qsort(s->secs, (size_t)s->n, sizeof *s->secs, cmp_double);
    r->seconds = s->n % 2 ? s->secs[s->n / 2] : 0.5 * (s->secs[s->n / 2 - 1] + s->secs[s->n / 2]);
    r->psnr = s->psnr / s->n;
    r->ssim = s->ssim / s->n;
    r->lpips = s->n_lpips ? s->lp / s->n_lpips : NAN;
    r->images = s->n;
    snprintf(r->lpips_note, sizeof r->lpips_note, "%s", s->lpips_note);
    return scorer_close(s);
}

static int finish(const args *a, bk_table_row *r) {
    bk_table_markdown(stdout, r, 1);
    if (a->out && bk_table_write(a->out, "table", r, 1) != BK_OK) return die(NULL);
    if (a->out) printf("eval: wrote %s/table.md, table.csv, table.json and per_image.csv\n", a->out);
    return 0;
}

/* ---------------------------------------------------------------- datasets */

/* Root and split: arguments, then the config file, then the checkpoint's config. */
static bk_status resolve_data(const args *a, const char *ckpt_config, char *root, size_t rl, char *split, size_t sl,
                              char *lpips, size_t ll) {
    bk_config c;
    bk_config_defaults(&c);
    bk_status st = BK_OK;
    char origin[1100]; /* errors name the checkpoint and the line of its config */
    snprintf(origin, sizeof origin, "%s (stored config)", a->checkpoint ? a->checkpoint : "the checkpoint");
    if (a->config) st = bk_config_load(&c, a->config);
    else if (ckpt_config && ckpt_config[0]) st = bk_config_parse_text(&c, ckpt_config, origin);
    if (st != BK_OK) return st;
    const char *r = a->root ? a->root : c.data_root[0] ? c.data_root : getenv("BOKEHLAB_EBB");
    if (!r || !r[0]) return bk_fail(BK_ERR_ARG, "no dataset: give --root, a config with data.root, or set BOKEHLAB_EBB");
    snprintf(root, rl, "%s", r);
    snprintf(split, sl, "%s", a->split ? a->split : c.data_split);
    snprintf(lpips, ll, "%s", a->lpips ? a->lpips : c.loss_lpips_weights);
    return BK_OK;
}

static int eval_dataset(const args *a) {
    bk_ctx ctx;
    if (bk_ctx_init(&ctx) != BK_OK) return die(NULL);
    int rc = 1;
    bk_model *m = NULL;
    char *ckpt_config = NULL;
    bk_ebb_index ix;
    bk_ebb_split sp;
    bool have_ix = false, have_sp = false, have_scorer = false;
    scorer s;
    bk_image in = {0}, gt = {0}, pred = {0}, mask = {0};
    if (a->checkpoint) {
        if (bk_model_load(&ctx, a->checkpoint, &m) != BK_OK) goto fail;
        bk_h5 f;
        if (bk_h5_open(&f, a->checkpoint) == BK_OK) {
            ckpt_config = calloc(1, 1 << 20);
            if (bk_h5_get_attr_str(&f, "config", ckpt_config, 1 << 20) != BK_OK) ckpt_config[0] = '\0';
            bk_h5_close(&f, false);
        }
    }
    char root[1024], split_spec[600], lpips[600];
    if (resolve_data(a, ckpt_config, root, sizeof root, split_spec, sizeof split_spec, lpips, sizeof lpips) != BK_OK)
        goto fail;
    if (bk_ebb_scan(root, &ix) != BK_OK) goto fail;
    have_ix = true;
    if (bk_ebb_split_make(ix.ids, ix.count, split_spec, NULL, &sp) != BK_OK) goto fail;
    have_sp = true;
    if (sp.n_eval == 0) {
        fprintf(stderr, "eval: split %s has no evaluation pairs\n", split_spec);
        goto done;
    }
    int64_t n = a->max > 0 && a->max < sp.n_eval ? a->max : sp.n_eval;
    bool external = m && bk_variant_has(m->variant, "external_mask");
    if (a->out && bk_make_dirs(a->out) != BK_OK) goto fail;
    char pred_dir[1200] = "";
    if (a->out && a->save_pred) {
        snprintf(pred_dir, sizeof pred_dir, "%s/predictions", a->out);
        if (bk_make_dirs(pred_dir) != BK_OK) goto fail;
    }
    if (scorer_open(&s, &ctx, lpips, a->out) != BK_OK) goto fail;
    have_scorer = true;
    bk_predict_opts po = {.size_h = a->size_h, .size_w = a->size_w, .strength = 1.0f};
    for (int64_t k = 0; k < n; k++) {
        int32_t id = sp.eval[k];
        char path[BK_PATH_MAX], label[32];
        snprintf(label, sizeof label, "%d", id);
        if (bk_image_read(bk_ebb_path(&ix, id, BK_EBB_ORIGINAL, path, sizeof path), 3, 0, &in) != BK_OK ||
            bk_image_read(bk_ebb_path(&ix, id, BK_EBB_BOKEH, path, sizeof path), 3, 0, &gt) != BK_OK)
            goto fail;
        if (external && bk_image_read(bk_ebb_path(&ix, id, BK_EBB_MASK, path, sizeof path), 1, 0, &mask) != BK_OK)
            goto fail;
        double secs = NAN;
        if (m) {
            po.user_mask = external ? &mask : NULL;
            if (bk_predict_image(&ctx, m, &in, &po, &pred, NULL, &secs) != BK_OK) goto fail;
        } else {
            pred = in;
            in.pixels = NULL;
        }
        if (score(&s, label, &pred, &gt, secs, n) != BK_OK) goto fail;
        if (pred_dir[0]) {
            char pred_path[1300];
            snprintf(pred_path, sizeof pred_path, "%s/%d.png", pred_dir, id);
            if (bk_image_write_png(pred_path, &pred) != BK_OK) goto fail;
        }
        bk_image_free(&in), bk_image_free(&gt), bk_image_free(&pred), bk_image_free(&mask);
    }
    bk_table_row r = {0};
    have_scorer = false;
    if (scorer_row(&s, &r) != BK_OK) goto fail;
    if (m) {
        snprintf(r.method, sizeof r.method, "%.100s", a->name ? a->name : m->kind->name);
        if (!a->name && m->variant[0]) snprintf(r.method, sizeof r.method, "%.40s (%.80s)", m->kind->name, m->variant);
        r.params = bk_params_numel(&m->params, BK_PARAM);
        int ph, pw;
        bk_predict_size(m, &po, 1024, 1536, &ph, &pw);
        snprintf(r.protocol, sizeof r.protocol,
                 "predictions made at %dx%d (bilinear, antialiased when shrinking), resized back to the original size "
                 "(bilinear) and quantised to 8 bits", ph, pw);
    } else {
        snprintf(r.method, sizeof r.method, "%s", a->name ? a->name : "identity (input as prediction)");
        r.seconds = NAN;
        r.params = -1;
        snprintf(r.protocol, sizeof r.protocol, "the input image scored as the prediction");
    }
    snprintf(r.split, sizeof r.split, "%.100s split %.50s", root, split_spec);
    rc = finish(a, &r);
    goto done;
fail:
    rc = die(NULL);
done:
    bk_image_free(&in), bk_image_free(&gt), bk_image_free(&pred), bk_image_free(&mask);
    if (have_scorer) scorer_close(&s);
    free(ckpt_config);
    if (m) bk_model_free(&ctx, m);
    if (have_sp) bk_ebb_split_free(&sp);
    if (have_ix) bk_ebb_index_free(&ix);
    bk_ctx_free(&ctx);
    return rc;
}

/* ---------------------------------------------------------------- folders */

static bool image_name(const char *name, char *stem, size_t len) {
    const char *dot = strrchr(name, '.');
    if (!dot || (strcasecmp(dot, ".png") && strcasecmp(dot, ".jpg") && strcasecmp(dot, ".jpeg"))) return false;
    snprintf(stem, len, "%.*s", (int)(dot - name), name);
    return true;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int eval_folders(const args *a) {
    DIR *d = opendir(a->pred);
    if (!d) {
        fprintf(stderr, "eval: cannot read the prediction folder %s: %s\n", a->pred, strerror(errno));
        return 1;
    }
    char **names = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char stem[512];
        if (!image_name(e->d_name, stem, sizeof stem)) continue;
        if (n == cap) names = realloc(names, (size_t)(cap = cap ? 2 * cap : 64) * sizeof *names);
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    if (n == 0) {
        fprintf(stderr, "eval: no PNG or JPEG images in %s\n", a->pred);
        return 1;
    }
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    bk_ctx ctx;
    if (bk_ctx_init(&ctx) != BK_OK) {
        for (int i = 0; i < n; i++) free(names[i]);
        free(names);
        return die(NULL);
    }
    int rc = 1;
    bool have_scorer = false;
    scorer s;
    bk_image pred = {0}, gt = {0};
    if (a->out && bk_make_dirs(a->out) != BK_OK) goto fail;
    if (scorer_open(&s, &ctx, a->lpips, a->out) != BK_OK) goto fail;
    have_scorer = true;
    for (int i = 0; i < n; i++) {
        char stem[512], path[2048], gt_path[2048] = "";
        image_name(names[i], stem, sizeof stem);
        const char *exts[] = {"png", "jpg", "jpeg", "PNG", "JPG"};
        for (int k = 0; k < 5 && !gt_path[0]; k++) {
            snprintf(path, sizeof path, "%s/%s.%s", a->gt, stem, exts[k]);
            if (access(path, R_OK) == 0) snprintf(gt_path, sizeof gt_path, "%s", path);
        }
        if (!gt_path[0]) {
            fprintf(stderr, "eval: no ground truth for %s/%s in %s (matched by file stem)\n", a->pred, names[i], a->gt);
            goto done;
        }
        snprintf(path, sizeof path, "%s/%s", a->pred, names[i]);
        if (bk_image_read(path, 3, 0, &pred) != BK_OK || bk_image_read(gt_path, 3, 0, &gt) != BK_OK) goto fail;
        if (score(&s, stem, &pred, &gt, NAN, n) != BK_OK) goto fail;
        bk_image_free(&pred), bk_image_free(&gt);
    }
    bk_table_row r = {0};
    have_scorer = false;
    if (scorer_row(&s, &r) != BK_OK) goto fail;
    snprintf(r.method, sizeof r.method, "%s", a->name ? a->name : a->pred);
    r.seconds = NAN;
    r.params = -1;
    snprintf(r.split, sizeof r.split, "%s against %s", a->pred, a->gt);
    snprintf(r.protocol, sizeof r.protocol, "predictions as given, at the ground truth's size");
    rc = finish(a, &r);
    goto done;
fail:
    rc = die(NULL);
done:
    bk_image_free(&pred), bk_image_free(&gt);
    if (have_scorer) scorer_close(&s);
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    bk_ctx_free(&ctx);
    return rc;
}

static int eval_table(const args *a) {
    bk_table_row rows[64];
    for (int i = 0; i < a->n_tables; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/table.json", a->tables[i]);
        if (bk_table_read_row(path, &rows[i]) != BK_OK) return die(NULL);
    }
    bk_table_markdown(stdout, rows, a->n_tables);
    if (a->out) {
        if (bk_make_dirs(a->out) != BK_OK || bk_table_write(a->out, "table", rows, a->n_tables) != BK_OK) return die(NULL);
        printf("eval: wrote %s/table.md and table.csv\n", a->out);
    }
    return 0;
}

int main(int argc, char **argv) {
    args a = {.size_h = 1024, .size_w = 1536};
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--identity")) { a.identity = true; continue; }
        if (!strcmp(o, "--save-pred")) { a.save_pred = true; continue; }
        if (!strcmp(o, "--table")) {
            while (i + 1 < argc && argv[i + 1][0] != '-' && a.n_tables < 64) a.tables[a.n_tables++] = argv[++i];
            if (!a.n_tables) usage();
            continue;
        }
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (!strcmp(o, "--checkpoint")) a.checkpoint = v;
        else if (!strcmp(o, "--config")) a.config = v;
        else if (!strcmp(o, "--root")) a.root = v;
        else if (!strcmp(o, "--split")) a.split = v;
        else if (!strcmp(o, "--out")) a.out = v;
        else if (!strcmp(o, "--lpips")) a.lpips = v;
        else if (!strcmp(o, "--pred")) a.pred = v;
        else if (!strcmp(o, "--gt")) a.gt = v;
        else if (!strcmp(o, "--name")) a.name = v;
        else if (!strcmp(o, "--max")) a.max = atol(v);
        else if (!strcmp(o, "--size")) {
            if (sscanf(v, "%dx%d", &a.size_h, &a.size_w) != 2 || a.size_h < 1 || a.size_w < 1) {
                fprintf(stderr, "eval: --size takes HxW, e.g. 1024x1536\n");
                return 2;
            }
        } else usage();
    }
    int modes = (a.checkpoint != NULL) + a.identity + (a.pred != NULL) + (a.n_tables > 0);
    if (modes != 1) usage();
    if (a.n_tables) return eval_table(&a);
    if (a.pred) {
        if (!a.gt) usage();
        return eval_folders(&a);
    }
    return eval_dataset(&a);
}
