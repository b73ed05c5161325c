/* weight_cache.h — conv weights in the layout a oneDNN kernel wants, reordered at most once per
 * optimizer step.
 *
 * bokehlab stores a conv weight in its own layout (PyTorch shape, NHWC order); the jit kernels
 * want blocked layouts (e.g. "64a" for brgconv forward, "16a16b" for backward data), which
 * differ per direction. For a persistent weight the reordered copy is kept with the tensor and
 * reused until the tensor's version changes (the optimizer bumps it); a step tensor (a gradient
 * used as weights in double backward) is reordered into the step arena on every use.
 */
#ifndef BK_WEIGHT_CACHE_H
#define BK_WEIGHT_CACHE_H

#include <oneapi/dnnl/dnnl.h>

#include "core/ctx.h"

/* Returns w's values laid out as `want`; `have` describes w->data. */
const float *bk_weights_as(bk_ctx *ctx, bk_tensor *w, const dnnl_memory_desc_t *have,
                           const dnnl_memory_desc_t *want);
void bk_weight_cache_free(bk_ctx *ctx, bk_weight_cache *wc);

#endif
