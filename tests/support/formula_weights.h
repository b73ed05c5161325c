/* formula_weights.h — deterministic weights and test images that C and the fixture script
 * (scripts/gen_loss_fixtures.py) compute bit for bit, so parity tests of the big networks (LPIPS
 * alex / vgg, VGG-19, the critic) need no committed weights: the fixtures hold only inputs'
 * checksums, outputs and gradients.
 *
 * Weights. A tensor with key K = "<net>/<name>" (net "alex", "vgg16", "vgg19" or "critic"; name
 * the PyTorch parameter name) and n values in PyTorch C order gets, for i = 0..n-1,
 *     z = mix(fnv1a64(K) + i)      mix = splitmix64's finaliser, uint64 arithmetic
 *     u = (z >> 40) / 2^24         exact in float32
 *     v = scale * (2u - 1)         float32: 2u - 1 is exact, the product rounds once
 * with the scale from bk_fw_scale (the rule is written out in gen_loss_fixtures.py's docstring
 * and checked against the fixture's /formula datasets).
 *
 * Images. Integer images v in [0, 4095] from integer-only formulas (kinds random, smooth, anti,
 * const; see gen_loss_fixtures.py, "Images"), turned into floats exactly: range 1 -> v / 4096,
 * range 2 -> v / 2048 - 1.
 *
 * Not thread-safe concerns: none (pure functions). Not a general-purpose initialiser: these
 * weights exist only to make C and PyTorch compute the same network.
 */
#ifndef BK_TEST_FORMULA_WEIGHTS_H
#define BK_TEST_FORMULA_WEIGHTS_H

#include "core/params.h"

#include <stdbool.h>
#include <stdint.h>

uint64_t bk_fw_fnv1a64(const char *key);
/* splitmix64's finaliser. */
uint64_t bk_fw_mix(uint64_t z);
/* out[i] = scale * (2u_i - 1) for i < n, the values of key K in PyTorch C order. */
void bk_fw_values(const char *key, float scale, float *out, int64_t n);

/* out[i] = offset + scale * (2u_i - 1): the model fixtures' form (scripts/gen_model_fixtures.py),
 * where a non-zero offset comes with a power-of-two scale, so the product is exact and the
 * result is the same whether or not the compiler fuses it (checked: BK_CHECK). */
void bk_fw_values_affine(const char *key, float scale, float offset, float *out, int64_t n);

/* A Rademacher sketch of g (n values in PyTorch C order): out[k] = sum_i r_ki g_i for
 * k < nk <= 64, r_ki = +1 if bit k of mix(fnv1a64(key) + i) is set, else -1, summed in double.
 * gen_model_fixtures.py computes the same for the reference gradients (see its docstring for
 * the estimator of ||a - b|| made from two sketches). */
void bk_fw_sketch(const char *key, const float *g, int64_t n, int nk, double *out);

/* The scale of tensor `name` of `net` with PyTorch shape given by t (ndim, shape). */
float bk_fw_scale(const char *net, const char *name, const bk_tensor *t);
/* Sets a persistent tensor to the formula values of key "<net>/<name>" with its rule's scale,
 * converting from PyTorch order, and marks it modified (bk_tensor_touch). */
void bk_fw_fill_tensor(bk_tensor *t, const char *net, const char *name);
/* Every tensor of a parameter set, by its name. */
void bk_fw_fill_params(bk_params *ps, const char *net);

typedef enum bk_fw_kind {
    BK_FW_RANDOM = 0,
    BK_FW_SMOOTH = 1,
    BK_FW_ANTI = 2,
    BK_FW_CONST = 3,
} bk_fw_kind;

/* Parses "random", "smooth", "anti", "const". */
bool bk_fw_kind_parse(const char *s, bk_fw_kind *kind);
/* The integer images a, b (each N*C*H*W int32 in NCHW order, caller's memory) of pair `key`. */
void bk_fw_image_pair(const char *key, bk_fw_kind kind, bk_shape s, int32_t *a, int32_t *b);
/* A step tensor of the integer image v (NCHW) in range 1 ([0,1)) or 2 ([-1,1)). */
bk_tensor *bk_fw_image_tensor(bk_ctx *ctx, bk_shape s, const int32_t *v, int range);
/* Sum of the integers (exact in a double). */
double bk_fw_image_sum(const int32_t *v, int64_t n);

#endif
