/* optim.c — Adam (see optim.h). */
#include "train/optim.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/kernels.h"

void bk_adam_init(bk_ctx *ctx, bk_adam *a, bk_params *params, bk_adam_config cfg) {
    memset(a, 0, sizeof *a);
    a->cfg = cfg;
    a->params = params;
    char name[512];
    for (int i = 0; i < params->n; i++) {
        const bk_param *p = &params->v[i];
        if (p->kind != BK_PARAM || !p->t->requires_grad) continue;
        snprintf(name, sizeof name, "%s.exp_avg", p->name);
        bk_params_add(ctx, &a->state, name, p->t->ndim, bk_shape_of(p->t), BK_BUFFER);
        snprintf(name, sizeof name, "%s.exp_avg_sq", p->name);
        bk_params_add(ctx, &a->state, name, p->t->ndim, bk_shape_of(p->t), BK_BUFFER);
    }
}

void bk_adam_free(bk_ctx *ctx, bk_adam *a) { bk_params_free(ctx, &a->state); }

void bk_adam_step(bk_adam *a, float lr) {
    a->step++;
    const double b1 = a->cfg.beta1, b2 = a->cfg.beta2;
    const float c1 = (float)(1.0 - pow(b1, (double)a->step));
    const float c2_sqrt = (float)sqrt(1.0 - pow(b2, (double)a->step));
    const float eps = a->cfg.eps, wd = a->cfg.weight_decay, fb1 = (float)b1, fb2 = (float)b2;
    const float step_size = lr / c1;
    int k = 0;
    for (int i = 0; i < a->params->n; i++) {
        bk_param *p = &a->params->v[i];
        if (p->kind != BK_PARAM || !p->t->requires_grad) continue;
        bk_tensor *m = a->state.v[k++].t, *v = a->state.v[k++].t;
        if (!p->t->grad) continue;
        float *restrict w = p->t->data, *restrict mm = m->data, *restrict vv = v->data;
        const float *restrict g = p->t->grad->data;
        int64_t n = bk_numel(p->t);
#pragma omp parallel for simd schedule(static) if (n > BK_PARALLEL_MIN)
        for (int64_t j = 0; j < n; j++) {
            float gj = g[j] + wd * w[j];
            mm[j] = fb1 * mm[j] + (1.0f - fb1) * gj;
            vv[j] = fb2 * vv[j] + (1.0f - fb2) * gj * gj;
            w[j] -= step_size * mm[j] / (sqrtf(vv[j]) / c2_sqrt + eps);
        }
        bk_tensor_touch(p->t);
    }
}

bk_status bk_adam_save(const bk_adam *a, bk_h5 *f, const char *prefix) {
    char attr[128];
    snprintf(attr, sizeof attr, "%s_step", prefix[0] == '/' ? prefix + 1 : prefix);
    for (char *c = attr; *c; c++)
        if (*c == '/') *c = '_';
    bk_status st = bk_h5_set_attr_int(f, attr, a->step);
    return st != BK_OK ? st : bk_params_save(&a->state, f, prefix);
}

bk_status bk_adam_load(bk_adam *a, const bk_h5 *f, const char *prefix) {
    char attr[128];
    snprintf(attr, sizeof attr, "%s_step", prefix[0] == '/' ? prefix + 1 : prefix);
    for (char *c = attr; *c; c++)
        if (*c == '/') *c = '_';
    bk_status st = bk_h5_get_attr_int(f, attr, &a->step);
    return st != BK_OK ? st : bk_params_load(&a->state, f, prefix);
}
