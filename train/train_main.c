/* train — trains a model from a config (train/trainer.h, docs/CONFIG.md).
 *
 *   train --config FILE.ini [--set section.key=value]... [--resume CKPT] [--no-progress]
 *   train --resume runs/NAME/ckpt/last.h5          (the checkpoint's own config)
 *   train --help-config [--markdown]
 *   mpirun -np K build-mpi/bin/train ...           (make MPI=1; data-parallel, docs/MULTI_MACHINE.md)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "train/dist.h"
#include "train/trainer.h"

static void usage(void) {
    fprintf(stderr, "usage: train --config FILE.ini [--set section.key=value]... [--resume CKPT] [--no-progress]\n"
                    "       train --resume CKPT\n"
                    "       train --help-config [--markdown]\n");
    exit(2);
}

int main(int argc, char **argv) {
    bk_train_options o = {0};
    const char *sets[argc];
    bool help = false, markdown = false;
    o.progress = isatty(2);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help-config")) help = true;
        else if (!strcmp(argv[i], "--markdown")) markdown = true;
        else if (!strcmp(argv[i], "--no-progress")) o.progress = false;
        else if (!strcmp(argv[i], "--config") && i + 1 < argc) o.config_path = argv[++i];
        else if (!strcmp(argv[i], "--set") && i + 1 < argc) sets[o.n_sets++] = argv[++i];
        else if (!strcmp(argv[i], "--resume") && i + 1 < argc) o.resume = argv[++i];
        else usage();
    }
    if (help) {
        bk_config_help(stdout, markdown);
        return 0;
    }
    if (!o.config_path && !o.resume) usage();
    o.sets = sets;
    if (bk_dist_init(&argc, &argv) != BK_OK) {
        fprintf(stderr, "train: %s\n", bk_last_error());
        return 1;
    }
    bk_train_result r;
    bk_status st = bk_train(&o, &r);
    if (st != BK_OK) {
        if (bk_dist_size() == 1) {
            fprintf(stderr, "train: %s\n", bk_last_error());
            bk_dist_finalize();
            return 1;
        }
        /* the other ranks may wait for this one in a collective: end them all */
        fprintf(stderr, "train (rank %d of %d): %s\n", bk_dist_rank(), bk_dist_size(), bk_last_error());
        bk_dist_abort(1);
    }
    if (bk_dist_rank() == 0)
        printf("train: %s after %lld steps in %s\n", r.interrupted ? "stopped" : "finished", (long long)r.steps_done,
               r.run_dir);
    bk_dist_finalize();
    return r.interrupted ? 130 : 0;
}
