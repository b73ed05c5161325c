/* wgan_gp.h — the WGAN-GP losses of BGGAN with its two critics (SPEC §3, reference-notes §3.3).
 *
 *   critic:    L_D = 1/2 sum_k [ mean D_k(fake) - mean D_k(real) + lambda mean_n (|g_kn| - 1)^2 ]
 *              g_k = d/dx̂ sum_hw D_k(x̂),  x̂ = alpha real + (1 - alpha) fake
 *   generator: L_adv = 1/2 sum_k -mean D_k(G(x))
 * alpha is one value per sample (N,1,1,1) shared by both critics; |.| is the 2-norm per sample
 * over C,H,W; the penalty is two-sided; lambda = 10 in BGGAN. fake enters the critic loss
 * detached (no gradient reaches the generator) and x̂ is a leaf. The penalty's gradient with
 * respect to the critic weights is exact: the inner gradient is taken with create_graph, so
 * backward differentiates through conv, instance norm and LeakyReLU a second time.
 */
#ifndef BK_WGAN_GP_H
#define BK_WGAN_GP_H

#include "models/critic.h"

typedef struct bk_wgan_terms {
    float d_real[2], d_fake[2], penalty[2]; /* per critic: patch, full */
} bk_wgan_terms;

/* The critic loss (scalar); terms (may be NULL) receives its parts. */
bk_tensor *bk_wgan_gp_critic_loss(bk_ctx *ctx, const bk_critic *c, bk_tensor *real,
                                  bk_tensor *fake, bk_tensor *alpha, float lambda,
                                  bk_wgan_terms *terms);
/* The generator's adversarial loss (scalar), differentiable with respect to fake. */
bk_tensor *bk_wgan_generator_loss(bk_ctx *ctx, const bk_critic *c, bk_tensor *fake);

#endif
