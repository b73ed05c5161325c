/* dist.h — data-parallel training over several processes (docs/MULTI_MACHINE.md).
 *
 * Built with `make MPI=1` (BK_MPI, Open MPI) the processes started by mpirun are the ranks of
 * MPI_COMM_WORLD; otherwise, or before bk_dist_init, there is one rank (rank 0 of 1) and every
 * call below is a no-op, so the trainer has a single code path. Only the thread that called
 * bk_dist_init calls into MPI (MPI_THREAD_FUNNELED); OpenMP and the loader's threads never do.
 *
 * The trainer's use: every rank computes the gradient of its shard of the global batch, then
 * bk_dist_average_grads replaces each gradient by the mean over the ranks (one flat buffer,
 * reduced in a few large messages), so the finite check, clipping and the optimizer step see the
 * same numbers on every rank and the parameters stay identical.
 */
#ifndef BK_DIST_H
#define BK_DIST_H

#include <stddef.h>

#include "core/error.h"
#include "core/params.h"

/* Joins the job (MPI_Init_thread). Without MPI: refuses to run as one of several processes
 * started by mpirun (each would train alone into the same run directory). */
bk_status bk_dist_init(int *argc, char ***argv);
/* Waits for every rank, then leaves the job (MPI_Finalize); safe without bk_dist_init. */
void bk_dist_finalize(void);
/* Ends every rank of the job with `code` (MPI_Abort); without MPI, exit(code). Print first. */
_Noreturn void bk_dist_abort(int code);

int bk_dist_rank(void);
int bk_dist_size(void);

/* Sums n values over the ranks, in place. Collective: every rank calls it with the same n. */
void bk_dist_sum_f64(double *v, size_t n);

/* Replaces the gradient of every trainable parameter of ps, and the n_extra values of `extra`,
 * by their mean over the ranks. A parameter without a gradient on a rank counts as zeros there;
 * one without a gradient on every rank keeps none. Collective: every rank calls it with the same
 * parameter set and n_extra. */
void bk_dist_average_grads(bk_ctx *ctx, bk_params *ps, float *extra, int n_extra);

#endif
