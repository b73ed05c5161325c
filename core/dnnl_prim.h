/* dnnl_prim.h — thin helpers around oneDNN 2.6 primitives (v2 C API: *_desc_init, then
 * dnnl_primitive_desc_create).
 *
 * Every primitive is created once per problem and kept in a plan in ctx->prims; only execution
 * happens per step. Creation uses the user-mode scratchpad (one buffer, ctx->scratch, shared by
 * all primitives: the Debian build would otherwise give every primitive its own) and checks the
 * implementation oneDNN chose: a "ref:" implementation is counted and, under BK_IMPL_FAIL,
 * stops with the primitive named (onednn-notes §6 lists the shapes that do this; bokehlab
 * hand-writes those ops instead).
 * Memory objects are created once without a data handle and bound to tensor data per call.
 */
#ifndef BK_DNNL_PRIM_H
#define BK_DNNL_PRIM_H

#include <stdbool.h>

#include <oneapi/dnnl/dnnl.h>

#include "core/ctx.h"

#define BK_DNNL(call)                                                                  \
    do {                                                                               \
        dnnl_status_t st_ = (call);                                                    \
        if (st_ != dnnl_success) bk_panic(__FILE__, __LINE__, "%s failed: %s", #call, \
                                          bk_dnnl_status_str(st_));                    \
    } while (0)

enum { BK_PRIM_MAX_ARGS = 8 };

typedef struct bk_prim {
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t prim;
    dnnl_memory_t scratch_mem; /* NULL when the primitive needs no scratchpad */
    const char *impl;          /* implementation name, e.g. "brgconv:avx512_core" */
    int nargs;                 /* arguments registered with bk_prim_arg, in order */
    int arg_id[BK_PRIM_MAX_ARGS];
    dnnl_memory_t arg_mem[BK_PRIM_MAX_ARGS];
} bk_prim;

const char *bk_dnnl_status_str(dnnl_status_t s);

/* Creates the primitive for `desc` (a *_desc_t) with optional post-ops and forward hint.
 * Returns false if oneDNN has no implementation for it; `what` names it in messages. */
bool bk_prim_create(bk_ctx *ctx, bk_prim *p, const_dnnl_op_desc_t desc,
                    const_dnnl_post_ops_t post_ops, const_dnnl_primitive_desc_t hint,
                    const char *what);
/* Registers execution argument `arg_id` (DNNL_ARG_SRC, ...) with the layout the primitive
 * reports for it, and returns that layout. */
const dnnl_memory_desc_t *bk_prim_arg(bk_ctx *ctx, bk_prim *p, int arg_id);
/* Binds data[i] to the i-th registered argument, executes with the shared scratchpad, waits. */
void bk_prim_run(bk_ctx *ctx, const bk_prim *p, const void *const *data);
void bk_prim_destroy(bk_prim *p);

/* A memory object for `md` with no data yet; bind data with bk_mem_bind before each use. */
dnnl_memory_t bk_mem_new(bk_ctx *ctx, const dnnl_memory_desc_t *md);
void bk_mem_bind(dnnl_memory_t m, const void *data);

/* Descriptor of a bokehlab activation tensor (NHWC) of logical shape s. */
void bk_md_nhwc(dnnl_memory_desc_t *md, bk_shape s);

/* dst = src in another layout, through a reorder primitive cached per (src_md, dst_md). */
void bk_reorder(bk_ctx *ctx, const dnnl_memory_desc_t *src_md, const void *src,
                const dnnl_memory_desc_t *dst_md, void *dst);

/* The same for 4-D weights whose two first dims differ between src_md and dst_md, one side
 * being the other rounded up to multiples of 16 (Winograd's padded channels): the values are
 * copied, the padding is zero (growing) or dropped (shrinking), through an OIhw16i16o buffer
 * in the step arena. Equal dims: bk_reorder. */
void bk_reorder_resized(bk_ctx *ctx, const dnnl_memory_desc_t *src_md, const void *src,
                        const dnnl_memory_desc_t *dst_md, void *dst);

#endif
