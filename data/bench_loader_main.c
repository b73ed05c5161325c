/* bench-loader — throughput of the data loader: decoding, resizing and augmenting pairs on
 * worker threads, as a trainer would consume them.
 *
 *   bench-loader ROOT [--size HxW] [--crop HxW] [--batch B] [--workers W] [--batches N] [--masks]
 *
 * Defaults: AMPN's input, every pair resized to 1024x1536, batch 1, 2 workers, 20 batches after
 * 2 warm-up batches. Prints pairs/s and the time per batch.
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/loader.h"

static void usage(void) {
    fprintf(stderr, "usage: bench-loader ROOT [--size HxW] [--crop HxW] [--batch B] [--workers W] "
                    "[--batches N] [--masks]\n");
    exit(2);
}

static void parse_hw(const char *s, int *h, int *w) {
    if (sscanf(s, "%dx%d", h, w) != 2 || *h < 1 || *w < 1) usage();
}

int main(int argc, char **argv) {
    const char *root = NULL;
    int rh = 1024, rw = 1536, ch = 0, cw = 0, batch = 1, workers = 2, batches = 20;
    bool masks = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--size") && i + 1 < argc) parse_hw(argv[++i], &rh, &rw);
        else if (!strcmp(argv[i], "--crop") && i + 1 < argc) parse_hw(argv[++i], &ch, &cw);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--workers") && i + 1 < argc) workers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batches") && i + 1 < argc) batches = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--masks")) masks = true;
        else if (argv[i][0] == '-' || root) usage();
        else root = argv[i];
    }
    if (!root || batch < 1 || workers < 1 || batches < 1) usage();
    bk_ebb_index ix;
    if (bk_ebb_scan(root, &ix) != BK_OK) {
        fprintf(stderr, "bench-loader: %s\n", bk_last_error());
        return 1;
    }
    bk_loader_config cfg = {.index = &ix, .ids = ix.ids, .n_ids = ix.count, .batch = batch,
                            .resize_h = rh, .resize_w = rw, .crop_h = ch, .crop_w = cw,
                            .hflip = true, .vflip = true, .shuffle = true, .masks = masks,
                            .seed = 1, .workers = workers, .prefetch = 4};
    bk_loader *l;
    if (bk_loader_open(&l, &cfg) != BK_OK) {
        fprintf(stderr, "bench-loader: %s\n", bk_last_error());
        return 1;
    }
    const bk_batch *b;
    double t0 = 0;
    for (int k = 0; k < batches + 2; k++) {
        if (k == 2) t0 = omp_get_wtime();
        if (bk_loader_next(l, &b) != BK_OK) {
            fprintf(stderr, "bench-loader: %s\n", bk_last_error());
            return 1;
        }
    }
    double dt = omp_get_wtime() - t0;
    printf("bench-loader %s: %d batches of %dx3x%dx%d, %d workers: %.2f pairs/s, %.1f ms per batch\n",
           root, batches, b->n, b->h, b->w, workers, batches * batch / dt, 1e3 * dt / batches);
    bk_loader_close(l);
    bk_ebb_index_free(&ix);
    return 0;
}
