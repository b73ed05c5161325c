/* fuzz_checkpoint.c — libFuzzer target: reading checkpoints (models/checkpoint.h, train/optim.h,
 * core/h5.h) from an HDF5 file image in memory (bk_h5_open_image).
 *
 * Per input, what `train --resume`, `forward`, `render` and `eval` do with a checkpoint file:
 * open it; read its kind (bk_ckpt_read_kind); create that model and load its tensors
 * (bk_model_read); load the generator's Adam state (bk_adam_load "/optim/generator"); read the
 * step and best_val_psnr attributes; read the stored configuration and parse it
 * (bk_config_parse_text, named "fuzz.h5 (stored config)" as train --resume names it). Each step
 * runs whether or not the previous one failed, so damage in one part of a file does not hide
 * another. Every refusal must name the input ("fuzz.h5"), or the target aborts (a finding);
 * only bk_model_create's refusal of an unknown model or switch does not (bk_model_load adds
 * the file to it, tests/test_bad_input.c checks that).
 *
 * Creating a model costs far more than reading a small file (millions of initialised values),
 * so the target keeps the models it made, by (model, variant) as the file names them, with
 * their Adam state — at most CACHED of them. Loading overwrites what it reads, so a reused model
 * takes a file exactly as a new one. Seeds: fuzz_seeds (real checkpoints cut down to their
 * first tensors) and tests/fuzz/corpus/checkpoint/.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/bokehlab.h"
#include "core/h5.h"
#include "models/checkpoint.h"
#include "train/config.h"
#include "train/optim.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { CACHED = 3 };

typedef struct cached {
    char model[64], variant[128];
    bk_model *m;
    bk_adam opt;
    uint64_t used;
} cached;

static bk_ctx ctx;
static cached cache[CACHED];
static uint64_t clock_;

static const char *const NAME = "fuzz.h5";

static void expect(int cond, const char *what) {
    if (cond) return;
    fprintf(stderr, "fuzz: broken promise: %s (last error: %s)\n", what, bk_last_error());
    abort();
}

static void expect_named(bk_status st, const char *what) {
    if (st == BK_OK) return;
    if (!strstr(bk_last_error(), NAME)) fprintf(stderr, "fuzz: %s\n", what);
    expect(strstr(bk_last_error(), NAME) != NULL, "a refusal names the file");
}

/* The model (and its Adam state) the file names, made on first use; NULL if the kind or the
 * variant does not exist (the message is bk_model_create's). */
static cached *model_for(const char *model, const char *variant, bk_status *st) {
    cached *oldest = &cache[0];
    for (int i = 0; i < CACHED; i++) {
        cached *c = &cache[i];
        if (c->m && !strcmp(c->model, model) && !strcmp(c->variant, variant)) {
            c->used = ++clock_;
            *st = BK_OK;
            return c;
        }
        if (c->used < oldest->used) oldest = c;
    }
    bk_model *m;
    if ((*st = bk_model_create(&ctx, model, variant, 1, &m)) != BK_OK) return NULL;
    if (oldest->m) {
        bk_adam_free(&ctx, &oldest->opt);
        bk_model_free(&ctx, oldest->m);
    }
    snprintf(oldest->model, sizeof oldest->model, "%s", model);
    snprintf(oldest->variant, sizeof oldest->variant, "%s", variant);
    oldest->m = m;
    bk_adam_init(&ctx, &oldest->opt, &m->params, (bk_adam_config){1e-4f, 0.9f, 0.999f, 1e-8f, 0});
    oldest->used = ++clock_;
    return oldest;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    if (bk_ctx_init(&ctx) != BK_OK) {
        fprintf(stderr, "fuzz: %s\n", bk_last_error());
        exit(1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bk_h5 f;
    bk_status st = bk_h5_open_image(&f, data, size, NAME);
    expect_named(st, "open");
    if (st != BK_OK) return 0;

    char model[64], variant[128];
    st = bk_ckpt_read_kind(&f, model, sizeof model, variant, sizeof variant);
    expect_named(st, "bk_ckpt_read_kind");
    if (st == BK_OK) {
        cached *c = model_for(model, variant, &st);
        if (c) {
            expect_named(bk_model_read(c->m, &f), "bk_model_read");
            expect_named(bk_adam_load(&c->opt, &f, "/optim/generator"), "bk_adam_load");
        }
    }
    int64_t step;
    expect_named(bk_h5_get_attr_int(&f, "step", &step), "step");
    char best[64];
    expect_named(bk_h5_get_attr_str(&f, "best_val_psnr", best, sizeof best), "best_val_psnr");

    enum { CONFIG_MAX = 1 << 20 }; /* as train --resume reads it */
    char *text = malloc(CONFIG_MAX);
    expect(text != NULL, "malloc");
    if (bk_h5_get_attr_str(&f, "config", text, CONFIG_MAX) == BK_OK) {
        bk_config cfg;
        bk_config_defaults(&cfg);
        expect_named(bk_config_parse_text(&cfg, text, "fuzz.h5 (stored config)"), "the stored config");
    } else {
        expect_named(BK_ERR_FORMAT, "config");
    }
    free(text);
    expect_named(bk_h5_close(&f, false), "close");
    return 0;
}
