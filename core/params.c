/* params.c — named parameter sets and their HDF5 form (see params.h). */
#include "core/params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bk_tensor *bk_params_add(bk_ctx *ctx, bk_params *ps, const char *name, int ndim, bk_shape s,
                         bk_param_kind kind) {
    BK_CHECK(!bk_params_get(ps, name), "parameter %s added twice", name);
    if (ps->n == ps->cap) {
        ps->cap = ps->cap ? 2 * ps->cap : 64;
        ps->v = realloc(ps->v, (size_t)ps->cap * sizeof *ps->v);
        BK_CHECK(ps->v, "out of memory");
    }
    bk_param *p = &ps->v[ps->n++];
    p->name = strdup(name);
    BK_CHECK(p->name, "out of memory");
    p->kind = kind;
    p->t = bk_tensor_new_persistent(ctx, name, ndim, s);
    p->t->requires_grad = kind == BK_PARAM;
    return p->t;
}

bk_tensor *bk_params_get(const bk_params *ps, const char *name) {
    for (int i = 0; i < ps->n; i++)
        if (strcmp(ps->v[i].name, name) == 0) return ps->v[i].t;
    return NULL;
}

int64_t bk_params_numel(const bk_params *ps, bk_param_kind kind) {
    int64_t n = 0;
    for (int i = 0; i < ps->n; i++)
        if (ps->v[i].kind == kind) n += bk_numel(ps->v[i].t);
    return n;
}

void bk_params_zero_grad(bk_params *ps) {
    for (int i = 0; i < ps->n; i++) {
        bk_tensor *g = ps->v[i].t->grad;
        if (g) memset(g->data, 0, (size_t)bk_numel(g) * sizeof(float));
    }
}

void bk_params_free(bk_ctx *ctx, bk_params *ps) {
    for (int i = 0; i < ps->n; i++) {
        bk_tensor_free(ctx, ps->v[i].t);
        free(ps->v[i].name);
    }
    free(ps->v);
    memset(ps, 0, sizeof *ps);
}

void bk_torch_shape(const bk_tensor *t, int64_t *dims) {
    switch (t->ndim) {
    case 0: break;
    case 1: dims[0] = t->c; break;
    case 2: dims[0] = t->n, dims[1] = t->c; break;
    default: dims[0] = t->n, dims[1] = t->c, dims[2] = t->h, dims[3] = t->w; break;
    }
}

bk_status bk_shape_from_torch(int ndim, const int64_t *dims, bk_shape *s) {
    switch (ndim) {
    case 0: *s = (bk_shape){1, 1, 1, 1}; return BK_OK;
    case 1: *s = (bk_shape){1, dims[0], 1, 1}; return BK_OK;
    case 2: *s = (bk_shape){dims[0], dims[1], 1, 1}; return BK_OK;
    case 4: *s = (bk_shape){dims[0], dims[1], dims[2], dims[3]}; return BK_OK;
    default: return bk_fail(BK_ERR_SHAPE, "tensors of rank %d are not supported", ndim);
    }
}

static const char *group_of(bk_param_kind kind) { return kind == BK_PARAM ? "params" : "buffers"; }

bk_status bk_h5_write_tensor(bk_h5 *f, const char *name, const bk_tensor *t) {
    int64_t dims[4], one = 1;
    bk_torch_shape(t, dims);
    float *nchw = malloc((size_t)bk_numel(t) * sizeof *nchw);
    BK_CHECK(nchw, "out of memory");
    bk_tensor_to_nchw(t, nchw);
    bk_status st = bk_h5_write_f32(f, name, t->ndim ? t->ndim : 1, t->ndim ? dims : &one, nchw);
    free(nchw);
    return st;
}

bk_status bk_h5_read_tensor(bk_ctx *ctx, const bk_h5 *f, const char *name, bk_tensor **out) {
    int nd;
    int64_t dims[BK_H5_MAX_DIMS];
    float *v;
    *out = NULL;
    bk_status st = bk_h5_read_f32(f, name, &nd, dims, &v);
    if (st != BK_OK) return st;
    bk_shape s;
    if (nd == 3 || (st = bk_shape_from_torch(nd, dims, &s)) != BK_OK) {
        free(v);
        return bk_fail(BK_ERR_SHAPE, "%s: %s has rank %d; expected N,C,H,W", f->path, name, nd);
    }
    *out = bk_tensor_from_nchw(ctx, s, v);
    (*out)->ndim = nd;
    free(v);
    return BK_OK;
}

bk_status bk_params_save(const bk_params *ps, bk_h5 *f, const char *prefix) {
    for (int i = 0; i < ps->n; i++) {
        const bk_param *p = &ps->v[i];
        char name[1024];
        snprintf(name, sizeof name, "%s/%s/%s", prefix, group_of(p->kind), p->name);
        bk_status st = bk_h5_write_tensor(f, name, p->t);
        if (st != BK_OK) return st;
    }
    return BK_OK;
}

static bool ignored(const char *name) {
    size_t n = strlen(name), k = strlen("num_batches_tracked");
    return n >= k && strcmp(name + n - k, "num_batches_tracked") == 0;
}

static bk_tensor *find_in(bk_params *const *sets, int nsets, const char *name) {
    for (int k = 0; k < nsets; k++) {
        bk_tensor *t = bk_params_get(sets[k], name);
        if (t) return t;
    }
    return NULL;
}

bk_status bk_params_load_sets(bk_params *const *sets, int nsets, const bk_h5 *f, const char *prefix) {
    /* 1. nothing in the file that the sets do not have (a file of another model) */
    for (int kind = 0; kind < 2; kind++) {
        char group[512];
        snprintf(group, sizeof group, "%s/%s", prefix, group_of((bk_param_kind)kind));
        char **names;
        int count;
        bk_status st = bk_h5_list(f, group, &names, &count);
        if (st != BK_OK) return st;
        const char *unknown = NULL;
        for (int i = 0; i < count && !unknown; i++)
            if (!ignored(names[i]) && !find_in(sets, nsets, names[i])) unknown = names[i];
        if (unknown)
            st = bk_fail(BK_ERR_FORMAT, "%s: %s/%s is not a %s of this model (a file of another "
                         "model or variant?)", f->path, group, unknown,
                         kind == BK_PARAM ? "parameter" : "buffer");
        for (int i = 0; i < count; i++) free(names[i]);
        free(names);
        if (st != BK_OK) return st;
    }
    /* 2. every name of the sets present with its shape */
    for (int k = 0; k < nsets; k++)
        for (int i = 0; i < sets[k]->n; i++) {
            bk_param *p = &sets[k]->v[i];
            char name[1024];
            snprintf(name, sizeof name, "%s/%s/%s", prefix, group_of(p->kind), p->name);
            if (!bk_h5_exists(f, name))
                return bk_fail(BK_ERR_FORMAT, "%s: %s is missing (a file of another model or "
                               "variant?)", f->path, name);
            int64_t dims[4], one = 1;
            bk_torch_shape(p->t, dims);
            float *nchw = malloc((size_t)bk_numel(p->t) * sizeof *nchw);
            BK_CHECK(nchw, "out of memory");
            bk_status st = bk_h5_read_f32_into(f, name, p->t->ndim ? p->t->ndim : 1,
                                               p->t->ndim ? dims : &one, nchw);
            if (st == BK_OK) {
                bk_tensor_set_nchw(p->t, nchw);
                bk_tensor_touch(p->t);
            }
            free(nchw);
            if (st != BK_OK) return st;
        }
    return BK_OK;
}

bk_status bk_params_load(bk_params *ps, const bk_h5 *f, const char *prefix) {
    return bk_params_load_sets(&ps, 1, f, prefix);
}
