/* model.c — the registry, variants, input rules, forward with block markers, and the summary. */
#include "models/model.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

extern const bk_model_kind bk_dmshn_kind, bk_stacked_dmshn_kind, bk_glassnet_kind,
    bk_glassnet_c24_kind, bk_critic_kind, bk_ampn_kind;

const bk_model_kind *const bk_model_kinds[] = {&bk_dmshn_kind,  &bk_stacked_dmshn_kind,
                                               &bk_glassnet_kind, &bk_glassnet_c24_kind,
                                               &bk_critic_kind, &bk_ampn_kind, NULL};

const bk_model_kind *bk_model_kind_find(const char *name) {
    for (int i = 0; bk_model_kinds[i]; i++)
        if (!strcmp(bk_model_kinds[i]->name, name)) return bk_model_kinds[i];
    return NULL;
}

bool bk_variant_has(const char *variant, const char *sw) {
    size_t n = strlen(sw);
    for (const char *p = variant; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && !strncmp(p, sw, n)) return true;
        p = end ? end + 1 : NULL;
    }
    return false;
}

/* Checks every switch of `variant` and writes them in the registry's order into out. */
static bk_status canonical_variant(const bk_model_kind *k, const char *variant, char *out, size_t len) {
    out[0] = '\0';
    for (const char *p = variant; p && *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        bool known = false;
        for (int i = 0; k->switches[i]; i++)
            known |= strlen(k->switches[i]) == n && !strncmp(k->switches[i], p, n);
        if (!known && n > 0) {
            char list[256] = "";
            for (int i = 0; k->switches[i]; i++) {
                strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
                strncat(list, k->switches[i], sizeof list - strlen(list) - 1);
            }
            return bk_fail(BK_ERR_ARG, "model %s has no variant switch \"%.*s\" (it has: %s)", k->name,
                           (int)n, p, list[0] ? list : "none");
        }
        p = end ? end + 1 : NULL;
    }
    for (int i = 0; k->switches[i]; i++)
        if (bk_variant_has(variant, k->switches[i])) {
            if (out[0]) strncat(out, ",", len - strlen(out) - 1);
            strncat(out, k->switches[i], len - strlen(out) - 1);
        }
    return BK_OK;
}

bk_status bk_model_create(bk_ctx *ctx, const char *name, const char *variant, uint64_t seed,
                          bk_model **out) {
    *out = NULL;
    const bk_model_kind *k = bk_model_kind_find(name);
    if (!k) {
        char list[256] = "";
        for (int i = 0; bk_model_kinds[i]; i++) {
            strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
            strncat(list, bk_model_kinds[i]->name, sizeof list - strlen(list) - 1);
        }
        return bk_fail(BK_ERR_ARG, "unknown model \"%s\" (models: %s)", name, list);
    }
    bk_model *m = calloc(1, sizeof *m);
    BK_CHECK(m, "out of memory");
    m->kind = k;
    bk_status st = canonical_variant(k, variant ? variant : "", m->variant, sizeof m->variant);
    if (st != BK_OK) {
        free(m);
        return st;
    }
    m->impl = k->create(ctx, &m->params, m->variant, seed);
    *out = m;
    return BK_OK;
}

void bk_model_free(bk_ctx *ctx, bk_model *m) {
    if (!m) return;
    m->kind->destroy(m->impl);
    bk_params_free(ctx, &m->params);
    free(m);
}

bk_status bk_model_check_input(const bk_model *m, bk_shape x, const bk_tensor *mask) {
    const bk_model_kind *k = m->kind;
    if (x.c != 3)
        return bk_fail(BK_ERR_SHAPE, "%s takes RGB input (3 channels), got %lld", k->name, (long long)x.c);
    if (x.h % k->multiple || x.w % k->multiple || x.h < k->multiple || x.w < k->multiple)
        return bk_fail(BK_ERR_SHAPE, "%s needs a height and width that are multiples of %d; %lldx%lld "
                       "is not (resize or pad the input, e.g. to %lldx%lld)", k->name, k->multiple,
                       (long long)x.h, (long long)x.w,
                       (long long)((x.h + k->multiple - 1) / k->multiple * k->multiple),
                       (long long)((x.w + k->multiple - 1) / k->multiple * k->multiple));
    bool external = bk_variant_has(m->variant, "external_mask");
    if (mask) {
        if (strcmp(k->name, "ampn") != 0)
            return bk_fail(BK_ERR_ARG, "%s takes no mask (only ampn does)", k->name);
        if (mask->n != x.n || mask->c != 1 || mask->h != x.h / 4 || mask->w != x.w / 4)
            return bk_fail(BK_ERR_SHAPE, "the mask must be %lldx1x%lldx%lld (the input at 1/4 size), got "
                           "%lldx%lldx%lldx%lld", (long long)x.n, (long long)(x.h / 4), (long long)(x.w / 4),
                           (long long)mask->n, (long long)mask->c, (long long)mask->h, (long long)mask->w);
    } else if (external) {
        return bk_fail(BK_ERR_ARG, "ampn with external_mask needs a mask");
    }
    return BK_OK;
}

void bk_model_forward(bk_ctx *ctx, const bk_model *m, bk_tensor *x, const bk_forward_opts *o,
                      bk_model_out *out) {
    *out = (bk_model_out){0};
    m->kind->forward(ctx, m->impl, x, o, out);
}

/* ---------------------------------------------------------------- block log */

static void block_hook(void *data, const char *name, bool end, const bk_tensor *out) {
    bk_block_log *log = data;
    double now = omp_get_wtime();
    if (!end) {
        if (log->n == log->cap) {
            log->cap = log->cap ? 2 * log->cap : 64;
            log->b = realloc(log->b, (size_t)log->cap * sizeof *log->b);
            BK_CHECK(log->b, "out of memory");
        }
        bk_block_record *r = &log->b[log->n];
        memset(r, 0, sizeof *r);
        snprintf(r->name, sizeof r->name, "%s", name);
        r->depth = log->depth;
        r->t0 = now;
        r->mem0 = log->ctx->step.used;
        if (log->depth < 32) log->open[log->depth] = log->n;
        log->n++;
        log->depth++;
        return;
    }
    log->depth--;
    if (log->depth < 0 || log->depth >= 32) return;
    bk_block_record *r = &log->b[log->open[log->depth]];
    r->t1 = now;
    r->mem1 = log->ctx->step.used;
    if (out) r->out = bk_shape_of(out);
}

void bk_block_log_attach(bk_ctx *ctx, bk_block_log *log) {
    log->n = log->depth = 0;
    log->ctx = ctx;
    ctx->block_hook = block_hook;
    ctx->block_hook_data = log;
}

void bk_block_log_detach(bk_ctx *ctx) {
    ctx->block_hook = NULL;
    ctx->block_hook_data = NULL;
}

void bk_block_log_free(bk_block_log *log) {
    free(log->b);
    memset(log, 0, sizeof *log);
}

/* ---------------------------------------------------------------- summary */

static int64_t params_under(const bk_params *ps, const char *prefix) {
    size_t n = strlen(prefix);
    int64_t total = 0;
    for (int i = 0; i < ps->n; i++)
        if (ps->v[i].kind == BK_PARAM && !strncmp(ps->v[i].name, prefix, n) && ps->v[i].name[n] == '.')
            total += bk_numel(ps->v[i].t);
    return total;
}

void bk_model_summary(bk_ctx *ctx, const bk_model *m, bk_shape input, FILE *f) {
    bk_block_log log = {0};
    bool prev = bk_set_grad_enabled(ctx, false);
    bk_block_log_attach(ctx, &log);
    bk_tensor *x = bk_tensor_zeros(ctx, input);
    bk_forward_opts o = bk_forward_eval();
    if (bk_variant_has(m->variant, "external_mask"))
        o.mask = bk_tensor_full(ctx, (bk_shape){input.n, 1, input.h / 4, input.w / 4}, 1.0f);
    bk_model_out out;
    bk_model_forward(ctx, m, x, &o, &out);
    bk_block_log_detach(ctx);
    bk_set_grad_enabled(ctx, prev);
    fprintf(f, "%s%s%s on %lldx%lldx%lldx%lld\n", m->kind->name, m->variant[0] ? " " : "", m->variant,
            (long long)input.n, (long long)input.c, (long long)input.h, (long long)input.w);
    for (int i = 0; i < log.n; i++) {
        const bk_block_record *l = &log.b[i];
        char shape[64];
        fprintf(f, "  %*s%-*s %-18s %12lld\n", 2 * l->depth, "", 40 - 2 * l->depth, l->name,
                bk_shape_str(l->out, shape), (long long)params_under(&m->params, l->name));
    }
    char ys[64];
    fprintf(f, "  output %s; %lld parameters, %lld buffer values\n", bk_shape_str(bk_shape_of(out.y), ys),
            (long long)bk_params_numel(&m->params, BK_PARAM), (long long)bk_params_numel(&m->params, BK_BUFFER));
    bk_block_log_free(&log); /* the forward's tensors stay in the caller's step until it ends it */
}
