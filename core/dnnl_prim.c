/* dnnl_prim.c — primitive creation with the implementation check, execution with the shared
 * scratchpad, and cached reorders. */
#include "core/dnnl_prim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl_debug.h>

const char *bk_dnnl_status_str(dnnl_status_t s) { return dnnl_status2str(s); }

static dnnl_primitive_attr_t make_attr(const_dnnl_post_ops_t post_ops) {
    dnnl_primitive_attr_t attr;
    BK_DNNL(dnnl_primitive_attr_create(&attr));
    BK_DNNL(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));
    if (post_ops) BK_DNNL(dnnl_primitive_attr_set_post_ops(attr, post_ops));
    return attr;
}

static void check_impl(bk_ctx *ctx, const bk_prim *p, const char *what) {
    if (strncmp(p->impl, "ref", 3) != 0) return;
    ctx->stats.ref_impls++;
    if (ctx->impl_policy == BK_IMPL_FAIL)
        bk_panic(__FILE__, __LINE__,
                 "oneDNN chose the reference implementation '%s' for %s; this op must use a "
                 "fast kernel (see docs/ARCHITECTURE.md, \"Kernels\")",
                 p->impl, what);
    fprintf(stderr, "bokehlab: warning: slow reference implementation '%s' for %s\n", p->impl,
            what);
}

static void finish(bk_ctx *ctx, bk_prim *p, const char *what) {
    BK_DNNL(dnnl_primitive_desc_query(p->pd, dnnl_query_impl_info_str, 0, &p->impl));
    check_impl(ctx, p, what);
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(p->pd, dnnl_query_scratchpad_md, 0);
    size_t sbytes = smd ? dnnl_memory_desc_get_size(smd) : 0;
    p->scratch_mem = NULL;
    if (sbytes) {
        bk_ctx_reserve_scratch(ctx, sbytes);
        p->scratch_mem = bk_mem_new(ctx, smd);
    }
    BK_DNNL(dnnl_primitive_create(&p->prim, p->pd));
    ctx->stats.primitives_created++;
}

bool bk_prim_create(bk_ctx *ctx, bk_prim *p, const_dnnl_op_desc_t desc,
                    const_dnnl_post_ops_t post_ops, const_dnnl_primitive_desc_t hint,
                    const char *what) {
    memset(p, 0, sizeof *p);
    dnnl_primitive_attr_t attr = make_attr(post_ops);
    dnnl_status_t s = dnnl_primitive_desc_create(&p->pd, desc, attr, ctx->engine, hint);
    dnnl_primitive_attr_destroy(attr);
    if (s == dnnl_unimplemented) return false;
    if (s != dnnl_success)
        bk_panic(__FILE__, __LINE__, "oneDNN refused %s: %s", what, bk_dnnl_status_str(s));
    finish(ctx, p, what);
    return true;
}

const dnnl_memory_desc_t *bk_prim_arg(bk_ctx *ctx, bk_prim *p, int arg_id) {
    BK_CHECK(p->nargs < BK_PRIM_MAX_ARGS, "too many primitive arguments");
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(p->pd, dnnl_query_exec_arg_md, arg_id);
    BK_CHECK(md && md->ndims > 0, "primitive has no argument %d", arg_id);
    p->arg_id[p->nargs] = arg_id;
    p->arg_mem[p->nargs] = bk_mem_new(ctx, md);
    p->nargs++;
    return md;
}

void bk_prim_run(bk_ctx *ctx, const bk_prim *p, const void *const *data) {
    dnnl_exec_arg_t args[BK_PRIM_MAX_ARGS + 1];
    int n = 0;
    for (; n < p->nargs; n++) {
        bk_mem_bind(p->arg_mem[n], data[n]);
        args[n] = (dnnl_exec_arg_t){p->arg_id[n], p->arg_mem[n]};
    }
    if (p->scratch_mem) {
        bk_mem_bind(p->scratch_mem, ctx->scratch);
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, p->scratch_mem};
    }
    BK_DNNL(dnnl_primitive_execute(p->prim, ctx->stream, n, args));
    BK_DNNL(dnnl_stream_wait(ctx->stream));
}

void bk_prim_destroy(bk_prim *p) {
    for (int i = 0; i < p->nargs; i++) dnnl_memory_destroy(p->arg_mem[i]);
    if (p->prim) dnnl_primitive_destroy(p->prim);
    if (p->pd) dnnl_primitive_desc_destroy(p->pd);
    if (p->scratch_mem) dnnl_memory_destroy(p->scratch_mem);
    memset(p, 0, sizeof *p);
}

dnnl_memory_t bk_mem_new(bk_ctx *ctx, const dnnl_memory_desc_t *md) {
    dnnl_memory_t m;
    BK_DNNL(dnnl_memory_create(&m, md, ctx->engine, DNNL_MEMORY_NONE));
    return m;
}

void bk_mem_bind(dnnl_memory_t m, const void *data) {
    BK_DNNL(dnnl_memory_set_data_handle(m, (void *)data));
}

void bk_md_nhwc(dnnl_memory_desc_t *md, bk_shape s) {
    dnnl_dims_t d = {s.n, s.c, s.h, s.w};
    BK_DNNL(dnnl_memory_desc_init_by_tag(md, 4, d, dnnl_f32, dnnl_nhwc));
}

/* ---- cached reorders ---- */

typedef struct reorder_key {
    int kind; /* distinguishes reorder keys from other plans in the same cache */
    dnnl_memory_desc_t src, dst;
} reorder_key;

static void reorder_free(void *v) {
    bk_prim_destroy(v);
    free(v);
}

void bk_reorder(bk_ctx *ctx, const dnnl_memory_desc_t *src_md, const void *src,
                const dnnl_memory_desc_t *dst_md, void *dst) {
    reorder_key key;
    memset(&key, 0, sizeof key);
    key.kind = 0x52454f52; /* "REOR" */
    key.src = *src_md;
    key.dst = *dst_md;
    bk_prim *r = bk_cache_get(ctx->prims, &key, sizeof key);
    if (!r) {
        r = calloc(1, sizeof *r);
        BK_CHECK(r, "out of memory");
        dnnl_primitive_attr_t attr = make_attr(NULL);
        BK_DNNL(dnnl_reorder_primitive_desc_create(&r->pd, src_md, ctx->engine, dst_md,
                                                   ctx->engine, attr));
        dnnl_primitive_attr_destroy(attr);
        finish(ctx, r, "a reorder");
        bk_prim_arg(ctx, r, DNNL_ARG_FROM);
        bk_prim_arg(ctx, r, DNNL_ARG_TO);
        bk_cache_put(ctx->prims, &key, sizeof key, r, reorder_free);
    }
    const void *data[2] = {src, dst};
    bk_prim_run(ctx, r, data);
}

void bk_reorder_resized(bk_ctx *ctx, const dnnl_memory_desc_t *src_md, const void *src,
                        const dnnl_memory_desc_t *dst_md, void *dst) {
    if (src_md->dims[0] == dst_md->dims[0] && src_md->dims[1] == dst_md->dims[1]) {
        bk_reorder(ctx, src_md, src, dst_md, dst);
        return;
    }
    BK_CHECK(src_md->ndims == 4 && dst_md->ndims == 4, "resized reorder of %d-D weights", src_md->ndims);
    bool grow = dst_md->dims[0] >= src_md->dims[0] && dst_md->dims[1] >= src_md->dims[1];
    const dnnl_memory_desc_t *small = grow ? src_md : dst_md, *big = grow ? dst_md : src_md;
    for (int i = 0; i < 2; i++)
        BK_CHECK(big->dims[i] == (small->dims[i] + 15) / 16 * 16, "resized reorder: %lld is not %lld padded to 16",
                 (long long)big->dims[i], (long long)small->dims[i]);
    /* the same bytes described with the real and with the padded dims */
    dnnl_memory_desc_t blk_small, blk_big;
    BK_DNNL(dnnl_memory_desc_init_by_tag(&blk_small, 4, small->dims, dnnl_f32, dnnl_OIhw16i16o));
    BK_DNNL(dnnl_memory_desc_init_by_tag(&blk_big, 4, big->dims, dnnl_f32, dnnl_OIhw16i16o));
    void *tmp = bk_arena_alloc(&ctx->step, dnnl_memory_desc_get_size(&blk_big));
    if (grow) {
        bk_reorder(ctx, src_md, src, &blk_small, tmp); /* zero-fills the padding */
        bk_reorder(ctx, &blk_big, tmp, dst_md, dst);
    } else {
        bk_reorder(ctx, src_md, src, &blk_big, tmp);
        bk_reorder(ctx, &blk_small, tmp, dst_md, dst);
    }
}
