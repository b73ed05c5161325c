/* ctx.c — creation and teardown of bk_ctx, step end, persistent allocation accounting. */
#include "core/ctx.h"

#include "core/conv_choice.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bk_status bk_ctx_init(bk_ctx *ctx) {
    memset(ctx, 0, sizeof *ctx);
    if (dnnl_engine_create(&ctx->engine, dnnl_cpu, 0) != dnnl_success)
        return bk_fail(BK_ERR_DNNL, "oneDNN could not create a CPU engine");
    if (dnnl_stream_create(&ctx->stream, ctx->engine, dnnl_stream_default_flags) != dnnl_success) {
        dnnl_engine_destroy(ctx->engine);
        return bk_fail(BK_ERR_DNNL, "oneDNN could not create a CPU stream");
    }
    ctx->threads = omp_get_max_threads();
    bk_arena_init(&ctx->step, 0);
    ctx->grad_enabled = true;
    ctx->prims = bk_cache_new();
    const char *policy = getenv("BOKEHLAB_REF_IMPL");
    ctx->impl_policy = (policy && strcmp(policy, "fail") == 0) ? BK_IMPL_FAIL : BK_IMPL_WARN;
    bk_status st = bk_conv_policy_from_env(ctx);
    if (st != BK_OK) bk_ctx_free(ctx);
    return st;
}

void bk_ctx_free(bk_ctx *ctx) {
    if (!ctx->engine) return;
    bk_cache_free(ctx->prims);
    bk_conv_choices_free(ctx);
    free(ctx->scratch);
    free(ctx->tape);
    free(ctx->bw_leaves);
    bk_arena_free(&ctx->step);
    dnnl_stream_destroy(ctx->stream);
    dnnl_engine_destroy(ctx->engine);
    memset(ctx, 0, sizeof *ctx);
}

void bk_step_end(bk_ctx *ctx) {
    ctx->tape_len = 0;
    ctx->bw_leaves_len = 0;
    bk_arena_reset(&ctx->step);
}

bool bk_set_grad_enabled(bk_ctx *ctx, bool enabled) {
    bool prev = ctx->grad_enabled;
    ctx->grad_enabled = enabled;
    return prev;
}

void bk_ctx_reserve_scratch(bk_ctx *ctx, size_t bytes) {
    if (bytes <= ctx->scratch_bytes) return;
    free(ctx->scratch);
    size_t size = (bytes + 4095) & ~(size_t)4095;
    if (posix_memalign(&ctx->scratch, 64, size) != 0)
        bk_fatal_oom("the oneDNN scratchpad", size, ctx->stats.persistent_bytes);
    ctx->scratch_bytes = size;
    ctx->stats.scratchpad_bytes = size;
}

void *bk_persistent_alloc(bk_ctx *ctx, size_t bytes) {
    void *p = NULL;
    size_t size = (bytes + 63) & ~(size_t)63;
    if (size == 0) size = 64;
    if (posix_memalign(&p, 64, size) != 0)
        bk_fatal_oom("a persistent tensor", size, ctx->stats.persistent_bytes);
    ctx->stats.persistent_bytes += size;
    if (ctx->stats.persistent_bytes > ctx->stats.persistent_peak)
        ctx->stats.persistent_peak = ctx->stats.persistent_bytes;
    return p;
}

void bk_persistent_release(bk_ctx *ctx, void *p, size_t bytes) {
    if (!p) return;
    size_t size = (bytes + 63) & ~(size_t)63;
    if (size == 0) size = 64;
    ctx->stats.persistent_bytes -= size;
    free(p);
}

void bk_ctx_print_memory(const bk_ctx *ctx, void *file) {
    fprintf((FILE *)file,
            "memory: step peak %.1f MiB, persistent %.1f MiB (peak %.1f MiB), scratchpad %.1f MiB\n",
            ctx->step.peak / 1048576.0, ctx->stats.persistent_bytes / 1048576.0,
            ctx->stats.persistent_peak / 1048576.0, ctx->scratch_bytes / 1048576.0);
}
