/* wgan_gp.c — WGAN-GP critic and generator losses (see wgan_gp.h). */
#include "losses/wgan_gp.h"

static const bk_patch_critic *critic_k(const bk_critic *c, int k) { return k == 0 ? &c->patch : &c->full; }

bk_tensor *bk_wgan_gp_critic_loss(bk_ctx *ctx, const bk_critic *c, bk_tensor *real,
                                  bk_tensor *fake, bk_tensor *alpha, float lambda,
                                  bk_wgan_terms *terms) {
    char a[64], b[64];
    BK_CHECK(bk_same_shape(real, fake), "WGAN-GP: real %s and fake %s", bk_shape_str(bk_shape_of(real), a),
             bk_shape_str(bk_shape_of(fake), b));
    BK_CHECK(alpha->n == real->n && alpha->c == 1 && alpha->h == 1 && alpha->w == 1,
             "WGAN-GP: alpha must be N,1,1,1");
    bk_tensor *fake_d = bk_detach(ctx, fake);
    /* x̂ = alpha real + (1 - alpha) fake, a leaf whose gradient is the penalty's input */
    bool prev = bk_set_grad_enabled(ctx, false);
    bk_tensor *xhat = bk_add(ctx, bk_mul(ctx, real, alpha), bk_mul(ctx, fake_d, bk_affine(ctx, alpha, -1.0f, 1.0f)));
    bk_set_grad_enabled(ctx, prev);
    xhat = bk_detach(ctx, xhat);
    xhat->requires_grad = true;

    bk_tensor *total = NULL;
    for (int k = 0; k < 2; k++) {
        const bk_patch_critic *p = critic_k(c, k);
        bk_tensor *d_fake = bk_mean(ctx, bk_patch_critic_forward(ctx, p, fake_d));
        bk_tensor *d_real = bk_mean(ctx, bk_patch_critic_forward(ctx, p, real));
        bk_tensor *g;
        bk_grad(ctx, bk_sum(ctx, bk_patch_critic_forward(ctx, p, xhat)), NULL, 1, &xhat, &g, true);
        bk_tensor *norm = bk_sqrt(ctx, bk_sum_per_sample(ctx, bk_square(ctx, g)));
        bk_tensor *pen = bk_scale(ctx, bk_mean(ctx, bk_square(ctx, bk_affine(ctx, norm, 1.0f, -1.0f))), lambda);
        bk_tensor *term = bk_add(ctx, bk_sub(ctx, d_fake, d_real), pen);
        total = total ? bk_add(ctx, total, term) : term;
        if (terms) {
            terms->d_real[k] = d_real->data[0];
            terms->d_fake[k] = d_fake->data[0];
            terms->penalty[k] = pen->data[0];
        }
    }
    return bk_scale(ctx, total, 0.5f);
}

bk_tensor *bk_wgan_generator_loss(bk_ctx *ctx, const bk_critic *c, bk_tensor *fake) {
    bk_tensor *sum = NULL;
    for (int k = 0; k < 2; k++) {
        bk_tensor *d = bk_mean(ctx, bk_patch_critic_forward(ctx, critic_k(c, k), fake));
        sum = sum ? bk_add(ctx, sum, d) : d;
    }
    return bk_scale(ctx, sum, -0.5f);
}
