/* tensor.h — bk_tensor: a float32 tensor that is also a node of the autograd graph.
 *
 * Logical shape is always N,C,H,W as in PyTorch; vectors and scalars use size-1 dimensions
 * (a bias of C values is 1,C,1,1, a per-sample value N,1,1,1, a scalar 1,1,1,1) and `ndim`
 * remembers how many dimensions the tensor has for printing and files.
 *
 * Physical layout, for every tensor: NHWC, dense, 64-byte aligned:
 *     offset(n,c,h,w) = ((n*H + h)*W + w)*C + c
 * NHWC is what the oneDNN 2.6 convolutions run fastest on here without padding channels to 16
 * (docs/ARCHITECTURE.md, "Layout"); a 1,C,1,1 tensor is simply C contiguous floats and an
 * N,1,H,W tensor is the same bytes as NCHW. Parameters use the same rule: a conv weight of
 * PyTorch shape O,I,kH,kW is stored O,kH,kW,I. Conversion to and from PyTorch's NCHW happens only
 * at boundaries (bk_tensor_from_nchw / bk_tensor_to_nchw: images, files, fixtures).
 *
 * A tensor produced by an op records the op, its sources and inline parameters (ggml-style),
 * so the tensor is its own tape node; see autograd.h.
 *
 * Two lifetimes (ctx.h): BK_STEP tensors live in the step arena and vanish at bk_step_end();
 * BK_PERSISTENT tensors (parameters, their gradients, optimizer state) are allocated one by one
 * and freed with bk_tensor_free().
 */
#ifndef BK_TENSOR_H
#define BK_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/op.h"

typedef struct bk_ctx bk_ctx;
typedef struct bk_weight_cache bk_weight_cache;

typedef struct bk_shape {
    int64_t n, c, h, w;
} bk_shape;

typedef enum bk_lifetime { BK_STEP = 0, BK_PERSISTENT = 1 } bk_lifetime;

enum { BK_MAX_SRC = 4 };

typedef struct bk_tensor bk_tensor;
struct bk_tensor {
    int64_t n, c, h, w;   /* logical shape */
    int ndim;             /* 0..4, for display and files */
    float *data;          /* NHWC */
    bk_lifetime life;
    bool requires_grad;
    bk_tensor *grad;      /* accumulated gradient of a leaf (bk_backward) */
    uint32_t version;     /* bumped whenever data is written in place (optimizer) */
    const char *name;     /* optional; persistent tensors own a copy */

    /* graph node: how this tensor was made */
    bk_op op;
    bk_tensor *src[BK_MAX_SRC];
    bk_op_params p;
    void *saved;          /* op-specific state kept for backward (step arena) */

    /* backward bookkeeping, valid only while bw_pass equals the pass being run */
    uint32_t bw_pass;
    bool bw_reach;        /* on a path to a tensor whose gradient is wanted */
    bool bw_owned;        /* bw_grad was allocated by the engine and may be added to in place */
    bool bw_leaf_listed;
    bk_tensor *bw_grad;

    bk_weight_cache *wcache; /* persistent weights: copies reordered for oneDNN (conv.c) */
};

static inline bk_shape bk_shape_of(const bk_tensor *t) {
    return (bk_shape){t->n, t->c, t->h, t->w};
}
static inline int64_t bk_shape_numel(bk_shape s) { return s.n * s.c * s.h * s.w; }
static inline int64_t bk_numel(const bk_tensor *t) { return t->n * t->c * t->h * t->w; }
static inline bool bk_shape_eq(bk_shape a, bk_shape b) {
    return a.n == b.n && a.c == b.c && a.h == b.h && a.w == b.w;
}
static inline bool bk_same_shape(const bk_tensor *a, const bk_tensor *b) {
    return bk_shape_eq(bk_shape_of(a), bk_shape_of(b));
}
/* Formats "N×C×H×W" into buf (at least 64 bytes); returns buf. */
const char *bk_shape_str(bk_shape s, char *buf);

/* Step tensor, uninitialised. `ndim` 4 unless made by the helpers below. */
bk_tensor *bk_tensor_new(bk_ctx *ctx, bk_shape s);
bk_tensor *bk_tensor_zeros(bk_ctx *ctx, bk_shape s);
bk_tensor *bk_tensor_full(bk_ctx *ctx, bk_shape s, float value);
bk_tensor *bk_scalar(bk_ctx *ctx, float value);

/* Persistent tensor, zero-filled. ndim as in the parameter table (1 for a bias, 4 for a conv
 * weight). The name is copied. */
bk_tensor *bk_tensor_new_persistent(bk_ctx *ctx, const char *name, int ndim, bk_shape s);
void bk_tensor_free(bk_ctx *ctx, bk_tensor *t);

/* A step tensor sharing t's data with no history: gradients do not flow through it
 * (torch's t.detach()). */
bk_tensor *bk_detach(bk_ctx *ctx, bk_tensor *t);

/* Boundary conversions between PyTorch's NCHW order and the NHWC storage. */
bk_tensor *bk_tensor_from_nchw(bk_ctx *ctx, bk_shape s, const float *nchw);
void bk_tensor_set_nchw(bk_tensor *t, const float *nchw);
void bk_tensor_to_nchw(const bk_tensor *t, float *nchw);

/* Element access by logical index (tests, boundaries; not for kernels). */
static inline size_t bk_offset(const bk_tensor *t, int64_t n, int64_t c, int64_t h, int64_t w) {
    return (size_t)(((n * t->h + h) * t->w + w) * t->c + c);
}

/* Marks a persistent tensor as modified in place (cached reorders become stale). */
static inline void bk_tensor_touch(bk_tensor *t) { t->version++; }

#endif
