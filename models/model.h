/* model.h — a model: a kind from the registry (SPEC §2-§4), its variant switches, its named
 * parameters, and a forward pass.
 *
 * Kinds: dmshn, stacked_dmshn, glassnet (paper widths), glassnet_c24 (the released code's
 * stage-2 width), multi_rf_discriminator (BGGAN's critic), ampn (with the ablation switches
 * no_refine, no_g2, no_attention, external_mask). A variant is a comma-separated set of
 * switches, kept in the registry's order ("no_g2,no_refine" becomes "no_refine,no_g2").
 * Parameter names and shapes are SPEC's params/<kind>.tsv exactly.
 *
 * Every model reads N,3,H,W in its own range ([0,1], or [-1,1] for Glass-Net and the critic)
 * with H and W multiples of its `multiple`; bk_model_check_input says so with the rule.
 * Outputs: y (the image; the critic: the patch critic's map) and aux (AMPN: M_L at 1/4 size,
 * Glass-Net: the stage-1 residual R, the critic: the full critic's map).
 */
#ifndef BK_MODEL_H
#define BK_MODEL_H

#include <stdio.h>

#include "core/ops.h"
#include "core/params.h"

typedef struct bk_model_out {
    bk_tensor *y;
    bk_tensor *aux;
} bk_model_out;

typedef struct bk_forward_opts {
    bool training;          /* batch norm with batch statistics, dropout on */
    uint64_t dropout_seed;  /* the step's dropout mask */
    bk_tensor *mask;        /* AMPN: N,1,H/4,W/4 in [0,1] replacing g1's prediction, or NULL */
    float strength;         /* AMPN blur strength s: M_L' = 1 - s (1 - M_L); 1 = unchanged */
} bk_forward_opts;

static inline bk_forward_opts bk_forward_eval(void) {
    return (bk_forward_opts){.training = false, .strength = 1.0f};
}

typedef struct bk_model_kind {
    const char *name;
    const char *description;
    bool minus_one_to_one;        /* input and output range [-1,1] instead of [0,1] */
    int multiple;                 /* H and W must be multiples of it */
    /* The downscaling of the deepest batch norm a variant runs (NULL or 0: none); training needs
     * more than one value per channel there. */
    int (*bn_stride)(const char *variant);
    const char *switches[8];      /* variant switches it accepts, NULL-terminated */
    const char *out_names[2];     /* dataset names of y and aux in forward's output file */
    void *(*create)(bk_ctx *ctx, bk_params *ps, const char *variant, uint64_t seed);
    void (*forward)(bk_ctx *ctx, const void *impl, bk_tensor *x, const bk_forward_opts *o,
                    bk_model_out *out);
    void (*destroy)(void *impl);
} bk_model_kind;

typedef struct bk_model {
    const bk_model_kind *kind;
    char variant[128];
    bk_params params;
    void *impl;
} bk_model;

const bk_model_kind *bk_model_kind_find(const char *name);
/* The registry, NULL-terminated. */
extern const bk_model_kind *const bk_model_kinds[];
/* Whether the variant string `variant` contains switch `sw`. */
bool bk_variant_has(const char *variant, const char *sw);

/* Creates and initialises (seeded) a model; unknown kinds or switches are refused. */
bk_status bk_model_create(bk_ctx *ctx, const char *name, const char *variant, uint64_t seed,
                          bk_model **out);
void bk_model_free(bk_ctx *ctx, bk_model *m);
/* Checks an input shape (and an AMPN mask's) against the model's rules. */
bk_status bk_model_check_input(const bk_model *m, bk_shape x, const bk_tensor *mask);
/* The forward pass (input already checked). */
void bk_model_forward(bk_ctx *ctx, const bk_model *m, bk_tensor *x, const bk_forward_opts *o,
                      bk_model_out *out);
/* A record of the named blocks a forward pass runs (bk_block_begin / bk_block_end): name,
 * nesting depth, output shape, wall time and step-memory growth. Lines are made when a block
 * begins, so parents precede their children. Used by model summaries and bench --profile. */
typedef struct bk_block_record {
    char name[96];
    int depth;
    bk_shape out;
    double t0, t1;
    size_t mem0, mem1;
} bk_block_record;

typedef struct bk_block_log {
    bk_block_record *b;
    int n, cap, depth;
    int open[32];
    const bk_ctx *ctx;
} bk_block_log;

/* Starts recording ctx's blocks into log (cleared); detach stops; free releases. */
void bk_block_log_attach(bk_ctx *ctx, bk_block_log *log);
void bk_block_log_detach(bk_ctx *ctx);
void bk_block_log_free(bk_block_log *log);

/* One line per block (output shape, parameters), then the totals, for an input shape. Runs an
 * eval forward on zeros inside the caller's step. */
void bk_model_summary(bk_ctx *ctx, const bk_model *m, bk_shape input, FILE *f);

#endif
