/* weight_cache.c — per-tensor cache of reordered weights, keyed by layout and tensor version. */
#include "core/weight_cache.h"

#include <stdlib.h>
#include <string.h>

#include "core/dnnl_prim.h"

enum { MAX_LAYOUTS = 8 }; /* direct and Winograd kernels of each direction */

typedef struct entry {
    dnnl_memory_desc_t md;
    uint32_t version;
    float *data;
    size_t bytes;
} entry;

struct bk_weight_cache {
    int n;
    entry e[MAX_LAYOUTS];
};

static void reorder(bk_ctx *ctx, bk_tensor *w, const dnnl_memory_desc_t *have,
                    const dnnl_memory_desc_t *want, float *dst) {
    bk_reorder_resized(ctx, have, w->data, want, dst);
    ctx->stats.weight_reorders++;
}

const float *bk_weights_as(bk_ctx *ctx, bk_tensor *w, const dnnl_memory_desc_t *have,
                           const dnnl_memory_desc_t *want) {
    if (dnnl_memory_desc_equal(have, want)) return w->data;
    size_t bytes = dnnl_memory_desc_get_size(want);
    if (w->life != BK_PERSISTENT) {
        float *dst = bk_arena_alloc(&ctx->step, bytes);
        reorder(ctx, w, have, want, dst);
        return dst;
    }
    if (!w->wcache) {
        w->wcache = calloc(1, sizeof *w->wcache);
        BK_CHECK(w->wcache, "out of memory");
    }
    bk_weight_cache *wc = w->wcache;
    entry *e = NULL;
    for (int i = 0; i < wc->n; i++)
        if (dnnl_memory_desc_equal(&wc->e[i].md, want)) e = &wc->e[i];
    if (!e) {
        BK_CHECK(wc->n < MAX_LAYOUTS, "weight '%s' wanted in more than %d layouts",
                 w->name ? w->name : "?", MAX_LAYOUTS);
        e = &wc->e[wc->n++];
        e->md = *want;
        e->bytes = bytes;
        e->data = bk_persistent_alloc(ctx, bytes);
        e->version = w->version - 1; /* stale: forces the first reorder */
    }
    if (e->version != w->version) {
        reorder(ctx, w, have, want, e->data);
        e->version = w->version;
    }
    return e->data;
}

void bk_weight_cache_free(bk_ctx *ctx, bk_weight_cache *wc) {
    if (!wc) return;
    for (int i = 0; i < wc->n; i++) bk_persistent_release(ctx, wc->e[i].data, wc->e[i].bytes);
    free(wc);
}
