/* conv_choice.h — which convolution algorithm runs each geometry and direction.
 *
 * bokehlab has two algorithms for a convolution: direct (every geometry) and Winograd F(4x4,
 * 3x3) (3x3, stride 1, padding <= 1, ungrouped; channels are padded to multiples of 16 for it,
 * conv.c). The choice
 * is made per geometry and direction, in this order:
 *   1. the policy: BOKEHLAB_CONV_ALGO=direct or =winograd forces one where it fits (gradient
 *      checks and bit-exact comparisons across processes use direct); "auto" (the default)
 *      goes on;
 *   2. a choice loaded from a checkpoint (its "kernels" attribute) or made earlier in this run;
 *   3. small problems (under BK_CONV_TUNE_MIN_MACS) run direct: timing them costs more than
 *      they could gain;
 *   4. otherwise both are timed on the first real call, reorders included, and the faster is
 *      kept (conv.c).
 * The decided choices are written into checkpoints as text, one line per geometry, so a
 * resumed run uses the same kernels (and stays bit-exact) and inference skips the timing.
 */
#ifndef BK_CONV_CHOICE_H
#define BK_CONV_CHOICE_H

#include <stdbool.h>

#include "core/ctx.h"
#include "core/op.h"

enum { BK_CONV_FWD = 0, BK_CONV_BWD_DATA = 1, BK_CONV_BWD_WEIGHTS = 2, BK_CONV_DIRS = 3 };
enum { BK_CONV_DIRECT = 0, BK_CONV_WINOGRAD = 1, BK_CONV_UNDECIDED = -1 };

#define BK_CONV_TUNE_MIN_MACS 2.0e7

/* Parses BOKEHLAB_CONV_ALGO (unset: auto) into ctx->conv_policy. */
bk_status bk_conv_policy_from_env(bk_ctx *ctx);
const char *bk_conv_algo_name(int algo);

/* Whether oneDNN's Winograd kernel accepts the geometry. */
bool bk_conv_winograd_fits(const bk_conv_geom *g);
/* The algorithm for (g, dir) by rules 1-3 above, or BK_CONV_UNDECIDED (rule 4: time it). */
int bk_conv_choice_get(const bk_ctx *ctx, const bk_conv_geom *g, double macs, int dir);
/* Records a decision; `seconds` (may be NULL) are the timings per algorithm it came from. */
void bk_conv_choice_put(bk_ctx *ctx, const bk_conv_geom *g, int dir, int algo, const double *seconds);

/* The decisions as text (malloc'd), one line per geometry, e.g.
 *   "conv2d 2x64x256x384 -> 64 k3x3 s1x1 p1,1,1,1 g1: fwd=winograd bwd_data=direct bwd_weights=-"
 * ('-': not decided in this run). Empty when there are none. */
char *bk_conv_choices_text(const bk_ctx *ctx);
/* Adds the decisions of such a text (a checkpoint's "kernels" attribute; the single word
 * "direct" of older checkpoints adds none). A malformed line is an error naming `origin` and
 * the line. */
bk_status bk_conv_choices_parse(bk_ctx *ctx, const char *text, const char *origin);
/* Prints the decisions with their timings (bench --profile). */
void bk_conv_choices_print(const bk_ctx *ctx, void *file);
void bk_conv_choices_free(bk_ctx *ctx);

#endif
