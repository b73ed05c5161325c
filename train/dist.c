/* dist.c — ranks and gradient averaging (see dist.h); MPI only with BK_MPI. */
#include "train/dist.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef BK_MPI
#include <mpi.h>
#endif

static int dist_rank = 0, dist_size = 1;
static bool joined;

int bk_dist_rank(void) { return dist_rank; }
int bk_dist_size(void) { return dist_size; }

#ifndef BK_MPI

bk_status bk_dist_init(int *argc, char ***argv) {
    (void)argc, (void)argv;
    static const char *const launchers[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"};
    for (size_t i = 0; i < sizeof launchers / sizeof launchers[0]; i++) {
        const char *v = getenv(launchers[i]);
        if (v && atoi(v) > 1)
            return bk_fail(BK_ERR_ARG, "started as one of %s processes (%s) but built without MPI: every process would "
                           "train alone into the same run directory; build with `make MPI=1` and run build-mpi/bin/train "
                           "(docs/MULTI_MACHINE.md)", v, launchers[i]);
    }
    joined = true;
    return BK_OK;
}

void bk_dist_finalize(void) { joined = false; }

_Noreturn void bk_dist_abort(int code) {
    fflush(stdout);
    fflush(stderr);
    exit(code);
}

void bk_dist_sum_f64(double *v, size_t n) { (void)v, (void)n; }

void bk_dist_average_grads(bk_ctx *ctx, bk_params *ps, float *extra, int n_extra) {
    (void)ctx, (void)ps, (void)extra, (void)n_extra;
}

#else /* BK_MPI */

/* Messages of at most this many values (MPI counts are ints; large enough to be few). */
enum { CHUNK = 1 << 24 };

static float *flat;       /* the packed gradients, reused from step to step */
static size_t flat_cap;

bk_status bk_dist_init(int *argc, char ***argv) {
    int done = 0, provided = 0;
    MPI_Initialized(&done);
    if (!done && MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return bk_fail(BK_ERR_ARG, "MPI_Init_thread failed");
    if (!done && provided < MPI_THREAD_FUNNELED) {
        MPI_Finalize();
        return bk_fail(BK_ERR_ARG, "this MPI library does not support threads (MPI_THREAD_FUNNELED)");
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &dist_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &dist_size);
    joined = true;
    return BK_OK;
}

void bk_dist_finalize(void) {
    if (!joined) return;
    free(flat);
    flat = NULL, flat_cap = 0;
    int done = 0;
    MPI_Finalized(&done);
    if (!done) {
        /* no rank leaves (and mpirun ends the job on a non-zero status) before rank 0 has written */
        MPI_Barrier(MPI_COMM_WORLD);
        MPI_Finalize();
    }
    joined = false;
    dist_rank = 0, dist_size = 1;
}

_Noreturn void bk_dist_abort(int code) {
    fflush(stdout);
    fflush(stderr);
    if (joined && dist_size > 1) MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);
}

void bk_dist_sum_f64(double *v, size_t n) {
    if (dist_size == 1) return;
    for (size_t off = 0; off < n; off += CHUNK) {
        int count = (int)(n - off < CHUNK ? n - off : CHUNK);
        MPI_Allreduce(MPI_IN_PLACE, v + off, count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    }
}

static void sum_f32(float *v, size_t n) {
    for (size_t off = 0; off < n; off += CHUNK) {
        int count = (int)(n - off < CHUNK ? n - off : CHUNK);
        MPI_Allreduce(MPI_IN_PLACE, v + off, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
}

static bool trainable(const bk_param *p) { return p->kind == BK_PARAM && p->t->requires_grad; }

void bk_dist_average_grads(bk_ctx *ctx, bk_params *ps, float *extra, int n_extra) {
    if (dist_size == 1) return;
    /* layout: one presence flag per trainable parameter, the gradients, the extra values */
    size_t n_flags = 0, n_grads = 0;
    for (int i = 0; i < ps->n; i++)
        if (trainable(&ps->v[i])) n_flags++, n_grads += (size_t)bk_numel(ps->v[i].t);
    size_t n = n_flags + n_grads + (size_t)n_extra;
    if (n > flat_cap) {
        free(flat);
        flat = malloc(n * sizeof *flat);
        BK_CHECK(flat, "out of memory for %zu gradient values", n);
        flat_cap = n;
    }
    float *f = flat, *g = flat + n_flags;
    for (int i = 0; i < ps->n; i++) {
        const bk_param *p = &ps->v[i];
        if (!trainable(p)) continue;
        size_t m = (size_t)bk_numel(p->t);
        *f++ = p->t->grad ? 1.0f : 0.0f;
        if (p->t->grad) memcpy(g, p->t->grad->data, m * sizeof *g);
        else memset(g, 0, m * sizeof *g);
        g += m;
    }
    if (n_extra) memcpy(g, extra, (size_t)n_extra * sizeof *g);
    sum_f32(flat, n);
    const float inv = 1.0f / (float)dist_size;
    f = flat, g = flat + n_flags;
    for (int i = 0; i < ps->n; i++) {
        bk_param *p = &ps->v[i];
        if (!trainable(p)) continue;
        size_t m = (size_t)bk_numel(p->t);
        if (*f++ > 0) {
            if (!p->t->grad) p->t->grad = bk_tensor_new_persistent(ctx, NULL, p->t->ndim, bk_shape_of(p->t));
            float *d = p->t->grad->data;
            for (size_t j = 0; j < m; j++) d[j] = g[j] * inv;
        }
        g += m;
    }
    for (int k = 0; k < n_extra; k++) extra[k] = g[k] * inv;
}

#endif
