/* optim.h — Adam, as torch.optim.Adam (L2 weight decay added to the gradient, bias-corrected
 * moments, eps outside the square root):
 *     g += wd p;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
 *     p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
 * Moments are persistent tensors named "<param>.exp_avg" / "<param>.exp_avg_sq", saved in
 * checkpoints as a parameter set (with the step count) so a resumed run continues exactly.
 * A parameter without a gradient this step is left alone (and its moments too).
 */
#ifndef BK_OPTIM_H
#define BK_OPTIM_H

#include "core/params.h"

typedef struct bk_adam_config {
    float lr, beta1, beta2, eps, weight_decay;
} bk_adam_config;

typedef struct bk_adam {
    bk_adam_config cfg;
    int64_t step;
    bk_params *params; /* the parameters it updates (not owned) */
    bk_params state;   /* exp_avg and exp_avg_sq for each */
} bk_adam;

void bk_adam_init(bk_ctx *ctx, bk_adam *a, bk_params *params, bk_adam_config cfg);
void bk_adam_free(bk_ctx *ctx, bk_adam *a);
/* One update with learning rate lr (a schedule's value); bumps every updated tensor's
 * version so conv kernels reorder the new weights. */
void bk_adam_step(bk_adam *a, float lr);
/* The moments under <prefix>/params and the step as attribute <prefix-name>_step. */
bk_status bk_adam_save(const bk_adam *a, bk_h5 *f, const char *prefix);
bk_status bk_adam_load(bk_adam *a, const bk_h5 *f, const char *prefix);

#endif
