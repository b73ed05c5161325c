/* pyramid.h — the Laplacian pyramid of LPTN, as AMPN uses it (SPEC §4), built from core ops.
 *
 * K = outer([1,4,6,4,1], [1,4,6,4,1]) / 256, depthwise per channel.
 *   gauss(x, g)  reflect pad 2 (edge not repeated), then valid 5x5 depthwise correlation with g*K
 *   lap_down(x)  gauss(x, 1) at even rows and columns
 *   lap_up(x)    zero insertion to the target size (x at even positions), then gauss(., 4)
 * decompose: h_l = cur - lap_up(lap_down(cur)); cur = lap_down(cur); the last cur is the low band.
 * reconstruct: img = low; img = lap_up(img) + h_l for l = L-1 .. 0.
 * For odd sizes lap_up targets the size of the level above (2h - 1), where LPTN would resize
 * with nearest; AMPN's sizes (multiples of 128) never need it. Everything is differentiable
 * through the ops it is made of; when nothing is recorded, lap_down and lap_up run fused.
 */
#ifndef BK_PYRAMID_H
#define BK_PYRAMID_H

#include "core/ops.h"

enum { BK_PYRAMID_MAX_LEVELS = 8 };

typedef struct bk_pyramid {
    int levels;
    bk_tensor *high[BK_PYRAMID_MAX_LEVELS]; /* h_0 (full size) .. h_{L-1} */
    bk_tensor *low;                          /* I_L */
} bk_pyramid;

bk_tensor *bk_gauss5(bk_ctx *ctx, bk_tensor *x, float gain);
bk_tensor *bk_lap_down(bk_ctx *ctx, bk_tensor *x);
bk_tensor *bk_lap_up(bk_ctx *ctx, bk_tensor *x, int64_t out_h, int64_t out_w);
/* The same two as single separable passes, never recorded: what lap_down / lap_up run when
 * nothing is recorded (public for the tests that hold them to the op-built versions). */
bk_tensor *bk_lap_down_fused(bk_ctx *ctx, const bk_tensor *x);
bk_tensor *bk_lap_up_fused(bk_ctx *ctx, const bk_tensor *x, int64_t out_h, int64_t out_w);
void bk_pyramid_decompose(bk_ctx *ctx, bk_tensor *x, int levels, bk_pyramid *out);
bk_tensor *bk_pyramid_reconstruct(bk_ctx *ctx, const bk_pyramid *p);

#endif
