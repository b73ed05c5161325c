/* render — renders the bokeh of your own photographs with a trained model.
 *
 *   render --checkpoint CKPT --input IMG|DIR --output OUT [--mask MASK.png] [--strength S]
 *          [--save-mask M.png] [--size HxW]
 *
 * Any input size: the image is resized to the model's rule (--size, or its own size rounded to
 * the model's multiple) and the result restored to the original size (eval/predict.h). A folder
 * renders every PNG/JPEG in it into the folder OUT (same names, PNG). AMPN uses its predicted
 * focus mask, or --mask (8-bit gray PNG of the image's size, 255 = in focus); --strength S in
 * [0,1] weakens the blur (SPEC §4: M_L' = 1 - S (1 - M_L); 1 = as trained, 0 = no blur);
 * --save-mask writes the mask used. DMSHN and Glass-Net take neither option.
 * Output format by extension: .png, or .jpg/.jpeg (quality 95).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/bokehlab.h"
#include "core/files.h"
#include "data/image.h"
#include "eval/predict.h"
#include "models/checkpoint.h"

static void usage(void) {
    fprintf(stderr, "usage: render --checkpoint CKPT --input IMG|DIR --output OUT [--mask MASK.png] [--strength S]\n"
                    "              [--save-mask M.png] [--size HxW]\n");
    exit(2);
}

static bool has_ext(const char *path, const char *ext) {
    const char *dot = strrchr(path, '.');
    return dot && !strcasecmp(dot + 1, ext);
}

static bk_status write_image(const char *path, const bk_image *img) {
    if (has_ext(path, "jpg") || has_ext(path, "jpeg")) return bk_image_write_jpeg(path, img, 95);
    return bk_image_write_png(path, img);
}

static bk_status render_one(bk_ctx *ctx, const bk_model *m, const char *in_path, const char *out_path,
                            const bk_predict_opts *base, const char *mask_path, const char *save_mask) {
    bk_image in, out, mask = {0}, used = {0};
    bk_status st = bk_image_read(in_path, 3, 0, &in);
    if (st != BK_OK) return st;
    bk_predict_opts o = *base;
    if (mask_path) {
        if ((st = bk_image_read(mask_path, 1, 0, &mask)) != BK_OK) {
            bk_image_free(&in);
            return st;
        }
        o.user_mask = &mask;
    }
    double secs;
    st = bk_predict_image(ctx, m, &in, &o, &out, save_mask ? &used : NULL, &secs);
    if (st == BK_OK) st = write_image(out_path, &out);
    if (st == BK_OK && save_mask && used.pixels) st = bk_image_write_png(save_mask, &used);
    if (st == BK_OK) printf("render: %s -> %s (%dx%d, %.2f s)\n", in_path, out_path, in.width, in.height, secs);
    bk_image_free(&in), bk_image_free(&out), bk_image_free(&mask), bk_image_free(&used);
    return st;
}

/* Renders the image or the folder with the loaded model; the exit status. */
static int render(bk_ctx *ctx, const bk_model *m, const char *input, const char *output, bk_predict_opts o,
                  const char *mask, const char *save_mask, bool strength_given) {
    bool ampn = !strcmp(m->kind->name, "ampn");
    if (!ampn && (mask || save_mask || strength_given)) {
        fprintf(stderr, "render: %s takes no %s (only ampn has a focus mask and a blur strength)\n", m->kind->name,
                mask ? "--mask" : save_mask ? "--save-mask" : "--strength");
        return 2;
    }
    struct stat st;
    if (stat(input, &st) != 0) {
        fprintf(stderr, "render: %s: %s\n", input, strerror(errno));
        return 1;
    }
    bk_status s = BK_OK;
    if (S_ISDIR(st.st_mode)) {
        if (mask || save_mask) {
            fprintf(stderr, "render: --mask and --save-mask take one image, not a folder\n");
            return 2;
        }
        if (bk_make_dirs(output) != BK_OK) {
            fprintf(stderr, "render: %s\n", bk_last_error());
            return 1;
        }
        DIR *d = opendir(input);
        struct dirent *e;
        int n = 0;
        while (s == BK_OK && d && (e = readdir(d))) {
            if (!has_ext(e->d_name, "png") && !has_ext(e->d_name, "jpg") && !has_ext(e->d_name, "jpeg")) continue;
            char in_path[2048], out_path[2048];
            snprintf(in_path, sizeof in_path, "%s/%s", input, e->d_name);
            const char *dot = strrchr(e->d_name, '.');
            snprintf(out_path, sizeof out_path, "%s/%.*s.png", output, (int)(dot - e->d_name), e->d_name);
            s = render_one(ctx, m, in_path, out_path, &o, NULL, NULL);
            n++;
        }
        if (d) closedir(d);
        if (s == BK_OK && n == 0) {
            fprintf(stderr, "render: no PNG or JPEG images in %s\n", input);
            return 1;
        }
    } else {
        s = render_one(ctx, m, input, output, &o, mask, save_mask);
    }
    if (s != BK_OK) {
        fprintf(stderr, "render: %s\n", bk_last_error());
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *ckpt = NULL, *input = NULL, *output = NULL, *mask = NULL, *save_mask = NULL;
    bk_predict_opts o = {.strength = 1.0f};
    bool strength_given = false;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) usage();
        const char *a = argv[i], *v = argv[++i];
        if (!strcmp(a, "--checkpoint")) ckpt = v;
        else if (!strcmp(a, "--input")) input = v;
        else if (!strcmp(a, "--output")) output = v;
        else if (!strcmp(a, "--mask")) mask = v;
        else if (!strcmp(a, "--save-mask")) save_mask = v;
        else if (!strcmp(a, "--strength")) {
            char *end;
            o.strength = strtof(v, &end);
            strength_given = true;
            if (*end || !(o.strength >= 0.0f && o.strength <= 1.0f)) {
                fprintf(stderr, "render: --strength must be a number from 0 to 1, not \"%s\"\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--size")) {
            if (sscanf(v, "%dx%d", &o.size_h, &o.size_w) != 2 || o.size_h < 1 || o.size_w < 1) {
                fprintf(stderr, "render: --size takes HxW, e.g. 1024x1536\n");
                return 2;
            }
        } else usage();
    }
    if (!ckpt || !input || !output) usage();
    bk_ctx ctx;
    bk_model *m;
    if (bk_ctx_init(&ctx) != BK_OK) {
        fprintf(stderr, "render: %s\n", bk_last_error());
        return 1;
    }
    if (bk_model_load(&ctx, ckpt, &m) != BK_OK) {
        fprintf(stderr, "render: %s\n", bk_last_error());
        bk_ctx_free(&ctx);
        return 1;
    }
    int rc = render(&ctx, m, input, output, o, mask, save_mask, strength_given);
    bk_model_free(&ctx, m);
    bk_ctx_free(&ctx);
    return rc;
}
