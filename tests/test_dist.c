/* test_dist.c — train/dist.h in a single process (the data-parallel runs themselves are in
 * tests/mpi/, `make MPI=1 check-mpi`):
 *  - one rank of one, before and after bk_dist_init; the reductions leave values and gradients
 *    as they are (the mean over one rank);
 *  - a build without MPI refuses to start as one of several processes of an mpirun job (each
 *    would train alone into the same run directory), naming the variable and `make MPI=1`. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/params.h"
#include "tests/support/harness.h"
#include "train/dist.h"

static void one_rank_leaves_everything_as_it_is(void) {
    EXPECT(bk_dist_rank() == 0 && bk_dist_size() == 1, "before init: rank %d of %d", bk_dist_rank(), bk_dist_size());
    int argc = 1;
    char *args[] = {"test_dist", NULL}, **argv = args;
    EXPECT(bk_dist_init(&argc, &argv) == BK_OK, "init: %s", bk_last_error());
    EXPECT(bk_dist_rank() == 0 && bk_dist_size() == 1, "after init: rank %d of %d", bk_dist_rank(), bk_dist_size());

    double v[3] = {1.5, -2.0, 1e300};
    bk_dist_sum_f64(v, 3);
    EXPECT(v[0] == 1.5 && v[1] == -2.0 && v[2] == 1e300, "sum over one rank changed %g %g %g", v[0], v[1], v[2]);

    bk_ctx *ctx = bk_test_ctx();
    bk_params ps = {0};
    bk_tensor *w = bk_params_add(ctx, &ps, "w", 1, (bk_shape){1, 5, 1, 1}, BK_PARAM);
    bk_params_add(ctx, &ps, "unused", 1, (bk_shape){1, 3, 1, 1}, BK_PARAM);
    for (int i = 0; i < 5; i++) w->data[i] = (float)(i + 1);
    bk_backward(ctx, bk_mean(ctx, bk_mul(ctx, w, w)), false); /* d/dw mean(w^2) = 2w/5 */
    EXPECT(w->grad != NULL, "no gradient");
    if (!w->grad) return;
    float before[5], extra[2] = {0.25f, 1.0f};
    memcpy(before, w->grad->data, sizeof before);
    for (int i = 0; i < 5; i++)
        EXPECT(fabsf(before[i] - 0.4f * (float)(i + 1)) < 1e-6f, "grad[%d] = %g", i, before[i]);
    bk_dist_average_grads(ctx, &ps, extra, 2);
    EXPECT(extra[0] == 0.25f && extra[1] == 1.0f, "extra values changed: %g %g", extra[0], extra[1]);
    EXPECT(!memcmp(before, w->grad->data, sizeof before), "the mean over one rank changed the gradient");
    EXPECT(ps.v[1].t->grad == NULL, "a parameter without a gradient got one");
    bk_params_free(ctx, &ps);
    bk_step_end(ctx);
    bk_dist_finalize();
    EXPECT(bk_dist_rank() == 0 && bk_dist_size() == 1, "after finalize: rank %d of %d", bk_dist_rank(), bk_dist_size());
}

#ifndef BK_MPI
static void without_mpi_refuses_to_be_one_of_several(void) {
    int argc = 1;
    char *args[] = {"test_dist", NULL}, **argv = args;
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        setenv(vars[i], "2", 1);
        bk_status st = bk_dist_init(&argc, &argv);
        EXPECT(st != BK_OK && strstr(bk_last_error(), vars[i]) && strstr(bk_last_error(), "make MPI=1"),
               "%s=2: %s", vars[i], st == BK_OK ? "accepted" : bk_last_error());
        setenv(vars[i], "1", 1); /* a job of one process is one process */
        EXPECT(bk_dist_init(&argc, &argv) == BK_OK, "%s=1: %s", vars[i], bk_last_error());
        bk_dist_finalize();
        unsetenv(vars[i]);
    }
}
#endif

BK_TEST_MAIN(BK_TEST(one_rank_leaves_everything_as_it_is)
#ifndef BK_MPI
                 ,
             BK_TEST(without_mpi_refuses_to_be_one_of_several)
#endif
)
