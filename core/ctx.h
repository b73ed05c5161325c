/* ctx.h — bk_ctx: everything one thread of bokehlab computation owns.
 *
 * The oneDNN engine and stream, the step arena (activations, tape, saved state, scratch), the
 * tape itself, the grad-mode switch, the cache of oneDNN primitives, the one user-mode
 * scratchpad shared by all primitives, and counters (primitives created, weight reorders,
 * reference implementations, memory peaks).
 *
 * Lifetimes: bk_ctx_init .. bk_ctx_free brackets the run. Inside, each step ends with
 * bk_step_end(), which releases every BK_STEP tensor and clears the tape at once.
 */
#ifndef BK_CTX_H
#define BK_CTX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <oneapi/dnnl/dnnl.h>

#include "core/arena.h"
#include "core/cache.h"
#include "core/error.h"
#include "core/tensor.h"

/* What happens when oneDNN picks a reference ("ref:") implementation for a primitive:
 * WARN prints one line per primitive to stderr; FAIL stops (tests run with FAIL). */
typedef enum bk_impl_policy { BK_IMPL_WARN = 0, BK_IMPL_FAIL = 1 } bk_impl_policy;

/* Called at the start and end of each named block of a model (layers report themselves with
 * bk_block_begin / bk_block_end): model summaries and per-layer profiles hang here. */
typedef void (*bk_block_hook)(void *data, const char *name, bool end, const bk_tensor *out);

typedef struct bk_stats {
    uint64_t primitives_created; /* oneDNN primitives created (each is then reused) */
    uint64_t weight_reorders;    /* weights reordered into a kernel's format */
    uint64_t ref_impls;          /* primitives that landed on reference code */
    size_t persistent_bytes;     /* persistent tensor bytes alive now */
    size_t persistent_peak;
    size_t scratchpad_bytes;     /* size of the shared oneDNN scratchpad */
    double conv_macs;            /* multiply-accumulates of every conv executed (all directions) */
    uint64_t winograd_runs;      /* conv executions (any direction) by the Winograd kernels */
} bk_stats;

struct bk_ctx {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    int threads;               /* omp_get_max_threads() when the context was made */

    bk_arena step;             /* BK_STEP memory */
    bool grad_enabled;         /* record ops on the tape */

    bk_tensor **tape;          /* nodes in execution order (a topological order) */
    size_t tape_len, tape_cap;

    uint32_t bw_pass;          /* incremented by every backward pass */
    bk_tensor **bw_leaves;     /* leaves reached by the current pass */
    size_t bw_leaves_len, bw_leaves_cap;

    bk_cache *prims;           /* plans of oneDNN primitives, by problem key */
    void *scratch;             /* user-mode scratchpad shared by all primitives */
    size_t scratch_bytes;

    bk_impl_policy impl_policy;
    int conv_policy;           /* BOKEHLAB_CONV_ALGO: -1 auto, or the forced algorithm (conv_choice.h) */
    struct bk_conv_choices *conv_choices; /* conv algorithm decided per geometry and direction */
    bk_stats stats;

    bk_block_hook block_hook;  /* NULL: blocks cost nothing */
    void *block_hook_data;
};

/* Creates the CPU engine; fails with a message if oneDNN cannot. */
bk_status bk_ctx_init(bk_ctx *ctx);
void bk_ctx_free(bk_ctx *ctx);

/* Ends a step: all BK_STEP tensors and the tape are released. */
void bk_step_end(bk_ctx *ctx);

/* Switches recording on or off; returns the previous setting. Inference runs with it off
 * and records nothing. */
bool bk_set_grad_enabled(bk_ctx *ctx, bool enabled);

/* Makes the shared scratchpad at least `bytes` large. */
void bk_ctx_reserve_scratch(bk_ctx *ctx, size_t bytes);

/* Accounting for persistent allocations (tensor.c). */
void *bk_persistent_alloc(bk_ctx *ctx, size_t bytes);
void bk_persistent_release(bk_ctx *ctx, void *p, size_t bytes);

/* Marks the start and the end (with its output) of a named block for the block hook. */
static inline void bk_block_begin(bk_ctx *ctx, const char *name) {
    if (ctx->block_hook) ctx->block_hook(ctx->block_hook_data, name, false, NULL);
}
static inline void bk_block_end(bk_ctx *ctx, const char *name, const bk_tensor *out) {
    if (ctx->block_hook) ctx->block_hook(ctx->block_hook_data, name, true, out);
}

/* One line of memory figures: step peak, persistent now/peak, scratchpad. */
void bk_ctx_print_memory(const bk_ctx *ctx, void *file);

#endif
