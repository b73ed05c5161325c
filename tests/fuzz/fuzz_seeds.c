/* fuzz_seeds.c — writes the seed inputs of the fuzz targets with bokehlab's own writers and
 * with libpng / libjpeg for the variants the writers do not make.
 *
 *   fuzz_seeds DIR     writes DIR/png/, DIR/jpeg/, DIR/config/ and DIR/checkpoint/
 *
 * Every seed is small (a few KB), so the fuzzer mutates the structure of a file rather than
 * megabytes of weights. The checkpoints are real checkpoints of real models cut down to their
 * first tensors: the same attributes, groups, dataset layout and Fletcher32 chunks as
 * `train` writes (ckpt/last.h5: model, generator Adam state, best_val_psnr, rng_seed,
 * kernels) and as the weight converters write (bare weights). `make fuzz` runs it into
 * build-fuzz/seeds/ before fuzzing; tests/fuzz/corpus/ holds a committed copy of its output.
 */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>

#include "core/bokehlab.h"
#include "core/files.h"
#include "core/h5.h"
#include "data/image.h"
#include "models/checkpoint.h"
#include "train/config.h"
#include "train/optim.h"

static const char *dir;

static void die(const char *what) {
    fprintf(stderr, "fuzz_seeds: %s: %s\n", what, bk_last_error());
    exit(1);
}

static const char *path_of(const char *sub, const char *name) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s/%s", dir, sub, name);
    return buf;
}

/* A pattern with edges and gradients, `comps` interleaved samples per pixel of `bytes` bytes. */
static uint8_t *pattern(int w, int h, int comps, int bytes) {
    uint8_t *p = malloc((size_t)w * h * comps * bytes);
    if (!p) exit(1);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < comps * bytes; c++)
                p[((size_t)y * w + x) * comps * bytes + c] =
                    (uint8_t)(((x * 37 + y * 11) >> c) ^ ((x / 3 + y / 2) & 1 ? 0xC0 : 0x15));
    return p;
}

/* ---------------------------------------------------------------- PNG */

/* A PNG with libpng; rows are `stride` bytes of packed samples. */
static void png_raw(const char *name, int w, int h, int depth, int color, int interlace,
                    const uint8_t *px, size_t stride, bool palette, bool trns) {
    const char *path = path_of("png", name);
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!f || !png || !info || setjmp(png_jmpbuf(png))) {
        fprintf(stderr, "fuzz_seeds: cannot write %s\n", path);
        exit(1);
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color, interlace,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_color pal[16];
    uint8_t alpha[16];
    for (int i = 0; i < 16; i++) {
        pal[i] = (png_color){(uint8_t)(i * 16), (uint8_t)(255 - i * 16), (uint8_t)(i * 7)};
        alpha[i] = (uint8_t)(i * 17);
    }
    png_color_16 key = {.red = 0x15, .green = 0x15, .blue = 0x15, .gray = 5}; /* fits 4 bits */
    if (palette) png_set_PLTE(png, info, pal, 16);
    if (trns) png_set_tRNS(png, info, palette ? alpha : NULL, palette ? 16 : 0, palette ? NULL : &key);
    png_text text = {.compression = PNG_TEXT_COMPRESSION_NONE, .key = "Software", .text = "bokehlab"};
    png_set_text(png, info, &text, 1);
    png_set_gAMA(png, info, 0.45455);
    png_write_info(png, info);
    png_bytep *rows = malloc((size_t)h * sizeof *rows);
    for (int y = 0; y < h; y++) rows[y] = (png_bytep)px + (size_t)y * stride;
    png_write_image(png, rows);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    free(rows);
    fclose(f);
}

static void png_seeds(void) {
    const int w = 13, h = 9;
    bk_image img;
    if (bk_image_alloc(&img, w, h, 3) != BK_OK) die("image");
    uint8_t *rgb = pattern(w, h, 3, 1);
    memcpy(img.pixels, rgb, (size_t)w * h * 3);
    if (bk_image_write_png(path_of("png", "rgb8.png"), &img) != BK_OK) die("rgb8.png");
    bk_image_free(&img);
    if (bk_image_alloc(&img, w, h, 1) != BK_OK) die("image");
    memcpy(img.pixels, rgb, (size_t)w * h);
    if (bk_image_write_png(path_of("png", "gray8.png"), &img) != BK_OK) die("gray8.png");
    bk_image_free(&img);
    free(rgb);

    uint8_t *p = pattern(w, h, 4, 2); /* enough bytes for every layout below */
    png_raw("gray1.png", w, h, 1, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, p, (w + 7) / 8, false, false);
    png_raw("gray4_trns.png", w, h, 4, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, p, (w + 1) / 2, false, true);
    png_raw("palette4_trns.png", w, h, 4, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, p, (w + 1) / 2, true, true);
    uint8_t *idx = malloc((size_t)w * h);
    for (int i = 0; i < w * h; i++) idx[i] = p[i] & 15; /* indices into the 16 colours */
    png_raw("palette8.png", w, h, 8, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, idx, w, true, false);
    free(idx);
    png_raw("gray_alpha16.png", w, h, 16, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_INTERLACE_NONE, p, (size_t)w * 4, false, false);
    png_raw("rgba8.png", w, h, 8, PNG_COLOR_TYPE_RGB_ALPHA, PNG_INTERLACE_NONE, p, (size_t)w * 4, false, false);
    png_raw("rgb16_interlaced.png", w, h, 16, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_ADAM7, p, (size_t)w * 6, false, false);
    png_raw("rgb8_trns_interlaced.png", w, h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_ADAM7, p, (size_t)w * 3, false, true);
    free(p);
}

/* ---------------------------------------------------------------- JPEG */

typedef enum { J_PLAIN, J_PROGRESSIVE, J_RESTART, J_ARITHMETIC } jpeg_kind;

static void jpeg_raw(const char *name, int w, int h, int comps, J_COLOR_SPACE in_cs, J_COLOR_SPACE jpeg_cs,
                     jpeg_kind kind) {
    const char *path = path_of("jpeg", name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "fuzz_seeds: cannot write %s\n", path);
        exit(1);
    }
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    c.err = jpeg_std_error(&err); /* libjpeg's default: a message and exit */
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)w, c.image_height = (JDIMENSION)h;
    c.input_components = comps;
    c.in_color_space = in_cs;
    jpeg_set_defaults(&c);
    jpeg_set_colorspace(&c, jpeg_cs);
    jpeg_set_quality(&c, 80, TRUE);
    if (kind == J_PROGRESSIVE) jpeg_simple_progression(&c);
    if (kind == J_RESTART) c.restart_in_rows = 1;
    if (kind == J_ARITHMETIC) c.arith_code = TRUE;
    jpeg_start_compress(&c, TRUE);
    jpeg_write_marker(&c, JPEG_COM, (const JOCTET *)"bokehlab", 8);
    uint8_t *px = pattern(w, h, comps, 1);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = px + (size_t)c.next_scanline * w * comps;
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(px);
    fclose(f);
}

static void jpeg_seeds(void) {
    const int w = 19, h = 13;
    bk_image img;
    if (bk_image_alloc(&img, w, h, 3) != BK_OK) die("image");
    uint8_t *rgb = pattern(w, h, 3, 1);
    memcpy(img.pixels, rgb, (size_t)w * h * 3);
    if (bk_image_write_jpeg(path_of("jpeg", "rgb_420.jpg"), &img, 75) != BK_OK) die("rgb_420.jpg");
    if (bk_image_write_jpeg(path_of("jpeg", "rgb_444.jpg"), &img, 95) != BK_OK) die("rgb_444.jpg");
    bk_image_free(&img);
    if (bk_image_alloc(&img, w, h, 1) != BK_OK) die("image");
    memcpy(img.pixels, rgb, (size_t)w * h);
    if (bk_image_write_jpeg(path_of("jpeg", "gray.jpg"), &img, 90) != BK_OK) die("gray.jpg");
    bk_image_free(&img);
    free(rgb);
    jpeg_raw("progressive.jpg", w, h, 3, JCS_RGB, JCS_YCbCr, J_PROGRESSIVE);
    jpeg_raw("restart.jpg", w, h, 3, JCS_RGB, JCS_YCbCr, J_RESTART);
    jpeg_raw("arithmetic.jpg", w, h, 3, JCS_RGB, JCS_YCbCr, J_ARITHMETIC);
    jpeg_raw("gray_progressive.jpg", w, h, 1, JCS_GRAYSCALE, JCS_GRAYSCALE, J_PROGRESSIVE);
    jpeg_raw("cmyk.jpg", w, h, 4, JCS_CMYK, JCS_CMYK, J_PLAIN);
    jpeg_raw("rgb_no_ycc.jpg", w, h, 3, JCS_RGB, JCS_RGB, J_PLAIN);
}

/* ---------------------------------------------------------------- configs */

static void config_seeds(void) {
    bk_config c;
    bk_config_defaults(&c);
    const char *sets[] = {"run.name=seed", "data.root=/data/EBB", "model.name=glassnet", "train.lr=2.5e-4",
                          "data.hflip=no", "loss.ms_ssim=0.5"};
    for (size_t i = 0; i < sizeof sets / sizeof *sets; i++)
        if (bk_config_set(&c, sets[i]) != BK_OK) die(sets[i]);
    /* a whole resolved configuration as train saves it, with sources */
    FILE *f = fopen(path_of("config", "resolved.ini"), "w");
    if (!f) die("resolved.ini");
    bk_config_print(&c, f, true);
    fclose(f);
    /* --set assignments for the --set half of the target: separated by NUL bytes */
    f = fopen(path_of("config", "sets.bin"), "wb");
    if (!f) die("sets.bin");
    fputs("[run]\nseed = 3\n", f); /* the text half */
    for (size_t i = 0; i < sizeof sets / sizeof *sets; i++) fwrite(sets[i], 1, strlen(sets[i]) + 1, f);
    fclose(f);
}

/* ---------------------------------------------------------------- checkpoints */

/* m cut down to its first n tensors (a view sharing m's tensors). */
static bk_model first_tensors(const bk_model *m, int n) {
    bk_model v = *m;
    v.params.n = n < m->params.n ? n : m->params.n;
    return v;
}

/* What train writes into ckpt/last.h5 (trainer.c: save_checkpoint), for the cut-down model. */
static void train_checkpoint(bk_ctx *ctx, const char *name, const bk_model *m, int64_t step) {
    bk_config c;
    bk_config_defaults(&c);
    char set[256];
    snprintf(set, sizeof set, "model.name=%s", m->kind->name);
    if (bk_config_set(&c, set) != BK_OK) die(set);
    snprintf(set, sizeof set, "model.variant=%s", m->variant);
    if (bk_config_set(&c, set) != BK_OK) die(set);
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    bk_config_print(&c, mem, true);
    fclose(mem);

    bk_adam opt;
    bk_adam_init(ctx, &opt, (bk_params *)&m->params, (bk_adam_config){1e-4f, 0.9f, 0.999f, 1e-8f, 0});
    opt.step = step;
    for (int i = 0; i < opt.state.n; i++)
        for (int64_t j = 0; j < bk_numel(opt.state.v[i].t); j++) opt.state.v[i].t->data[j] = 1e-3f * (float)(j % 7);
    bk_h5 f;
    bk_ckpt_meta meta = {.step = step, .epoch = 1, .config = text};
    if (bk_h5_create(&f, path_of("checkpoint", name)) != BK_OK) die(name);
    if (bk_model_write(m, &f, &meta) != BK_OK || bk_adam_save(&opt, &f, "/optim/generator") != BK_OK ||
        bk_h5_set_attr_str(&f, "best_val_psnr", "24.125") != BK_OK || bk_h5_set_attr_int(&f, "rng_seed", 1) != BK_OK ||
        bk_h5_set_attr_str(&f, "kernels", "direct") != BK_OK)
        die(name);
    if (bk_h5_close(&f, true) != BK_OK) die(name);
    bk_adam_free(ctx, &opt);
    free(text);
}

static void checkpoint_seeds(void) {
    bk_ctx ctx;
    if (bk_ctx_init(&ctx) != BK_OK) die("context");
    bk_model *dmshn, *ampn;
    if (bk_model_create(&ctx, "dmshn", "", 1, &dmshn) != BK_OK) die("dmshn");
    if (bk_model_create(&ctx, "ampn", "no_refine,no_g2", 1, &ampn) != BK_OK) die("ampn");
    bk_model v = first_tensors(dmshn, 1);
    train_checkpoint(&ctx, "train_dmshn.h5", &v, 1200);
    /* bare weights, as the converters write them: a conv, its batch norm's weight, bias and
     * running statistics */
    v = first_tensors(ampn, 5);
    if (bk_model_save(&v, path_of("checkpoint", "weights_ampn_variant.h5"), NULL) != BK_OK)
        die("weights_ampn_variant.h5");
    bk_model_free(&ctx, dmshn);
    bk_model_free(&ctx, ampn);
    /* an HDF5 file of another kind: a dataset and no checkpoint attributes */
    bk_h5 f;
    const int64_t dims[2] = {3, 4};
    const float x[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    if (bk_h5_create(&f, path_of("checkpoint", "other_kind.h5")) != BK_OK ||
        bk_h5_write_f32(&f, "/data/x", 2, dims, x) != BK_OK || bk_h5_set_attr_str(&f, "format", "something-else") != BK_OK ||
        bk_h5_close(&f, true) != BK_OK)
        die("other_kind.h5");
    bk_ctx_free(&ctx);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_seeds DIR\n");
        return 2;
    }
    dir = argv[1];
    const char *subs[] = {"png", "jpeg", "config", "checkpoint"};
    for (int i = 0; i < 4; i++)
        if (bk_make_dirs(path_of(subs[i], "")) != BK_OK) die(subs[i]);
    png_seeds();
    jpeg_seeds();
    config_seeds();
    checkpoint_seeds();
    return 0;
}
