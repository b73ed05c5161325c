/* params.h — a model's named parameters and buffers, and their HDF5 form.
 *
 * Every parameter (trained) and buffer (running statistics) is a persistent tensor with the
 * name PyTorch would give it ("encoder_lv1.layer2.0.weight") and PyTorch's shape. In a file
 * they are float32 datasets <prefix>/params/<name> and <prefix>/buffers/<name> in PyTorch's
 * layout and shape (SPEC §6; prefix "" for a model, "/critic" for BGGAN's critic), chunked with
 * Fletcher32 (core/h5.h). Shapes map to tensors as: (C) -> 1,C,1,1; (A,B) -> A,B,1,1;
 * (O,I,kh,kw) -> O,I,kh,kw; () -> 1,1,1,1.
 * Loading is strict: every name of the set must be in the file with its shape, and the file
 * must hold nothing else (buffers named *.num_batches_tracked are ignored, as on import from
 * PyTorch); the first offending name is reported.
 */
#ifndef BK_PARAMS_H
#define BK_PARAMS_H

#include "core/ctx.h"
#include "core/h5.h"

typedef enum bk_param_kind { BK_PARAM = 0, BK_BUFFER = 1 } bk_param_kind;

typedef struct bk_param {
    char *name;
    bk_param_kind kind;
    bk_tensor *t;
} bk_param;

typedef struct bk_params {
    bk_param *v;
    int n, cap;
} bk_params;

/* Adds a zeroed persistent tensor; parameters require grad. A repeated name is a bug. */
bk_tensor *bk_params_add(bk_ctx *ctx, bk_params *ps, const char *name, int ndim, bk_shape s,
                         bk_param_kind kind);
bk_tensor *bk_params_get(const bk_params *ps, const char *name);
/* Number of values in tensors of `kind`. */
int64_t bk_params_numel(const bk_params *ps, bk_param_kind kind);
/* Zeroes every parameter's gradient. */
void bk_params_zero_grad(bk_params *ps);
void bk_params_free(bk_ctx *ctx, bk_params *ps);

/* PyTorch shape of a tensor (its ndim dims) and the tensor shape of a PyTorch shape. */
void bk_torch_shape(const bk_tensor *t, int64_t *dims);
bk_status bk_shape_from_torch(int ndim, const int64_t *dims, bk_shape *s);

/* One tensor as a dataset in PyTorch's layout (ndim from the tensor; a scalar as shape (1)). */
bk_status bk_h5_write_tensor(bk_h5 *f, const char *name, const bk_tensor *t);
/* A dataset of rank 1, 2 or 4 into a new step tensor. */
bk_status bk_h5_read_tensor(bk_ctx *ctx, const bk_h5 *f, const char *name, bk_tensor **out);

bk_status bk_params_save(const bk_params *ps, bk_h5 *f, const char *prefix);
bk_status bk_params_load(bk_params *ps, const bk_h5 *f, const char *prefix);
/* The same for a file holding the union of several sets (a network and its heads). */
bk_status bk_params_load_sets(bk_params *const *sets, int nsets, const bk_h5 *f, const char *prefix);

#endif
