/* loader.h — batches of (input, target[, mask]) image pairs, decoded and augmented on worker
 * threads ahead of the trainer.
 *
 * A batch holds N images as NHWC floats (the tensor layout, so a copy makes the tensor) in the
 * model's range, [0,1] or [-1,1]; masks are N x H x W x 1 in [0,1]. Paired transforms are
 * applied identically to input, target and mask: resize to a fixed size (bilinear,
 * antialiased when shrinking), random crop, random horizontal and vertical flips.
 *
 * Determinism: the stream is a sequence of samples; sample j is pair perm_e[j mod n] of epoch
 * e = j / n, where perm_e is a permutation drawn from (seed, e) (or the given order when not
 * shuffling), and its crop and flips are drawn from (seed, j). Batch k holds samples
 * kN .. kN+N-1, so a seed fixes every batch, and starting at step k reproduces the same
 * batches as running up to it, whatever the number of workers.
 *
 * Shards (data-parallel training, train/dist.h): with shards = S > 1 the stream is shard s of S
 * of a stream of global batches of S*N samples: batch k holds global samples kSN + sN ..
 * kSN + sN + N-1, each with the pair, crop and flips it has there, so the S shards of batch k
 * together are batch k of a loader with batch S*N.
 *
 * Threads: `workers` threads decode and augment; up to `prefetch` batches are ready ahead of
 * the consumer. Each worker runs OpenMP kernels with one thread. A decoding error stops the
 * stream: bk_loader_next returns it with the file named.
 */
#ifndef BK_LOADER_H
#define BK_LOADER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "data/ebb.h"

typedef enum bk_range { BK_RANGE_01 = 0, BK_RANGE_PM1 = 1 } bk_range;

typedef struct bk_loader_config {
    const bk_ebb_index *index;
    const int32_t *ids;        /* pairs to draw from (a split's train or eval set) */
    int64_t n_ids;
    int batch;
    int resize_h, resize_w;    /* 0, 0: keep the file's size */
    int crop_h, crop_w;        /* 0, 0: no crop */
    bool hflip, vflip;         /* random flips, each with probability 1/2 */
    bool shuffle;              /* a new permutation every epoch; otherwise the ids' order */
    bool masks;                /* also read mask/{i}.png */
    bk_range range;
    uint64_t seed;
    int64_t start_step;        /* first batch to produce (resume) */
    int shard, shards;         /* this stream's part of every global batch; 0, 0: all of it */
    int workers;               /* >= 1 */
    int prefetch;              /* batches ready ahead, >= 1 */
    int64_t max_pixels;        /* per image; <= 0: the default limit */
} bk_loader_config;

enum { BK_LOADER_MAX_BATCH = 64 };

typedef struct bk_batch {
    int64_t step;              /* index of this batch in the stream */
    int64_t epoch;             /* epoch of its first sample */
    int n, h, w;
    float *input, *target;     /* n*h*w*3 */
    float *mask;               /* n*h*w, or NULL */
    int32_t ids[BK_LOADER_MAX_BATCH];
    int orig_h[BK_LOADER_MAX_BATCH], orig_w[BK_LOADER_MAX_BATCH]; /* sizes in the files */
} bk_batch;

typedef struct bk_loader bk_loader;

/* Checks the configuration and starts the workers. Without resize and crop, images of
 * different sizes need batch 1. */
bk_status bk_loader_open(bk_loader **out, const bk_loader_config *cfg);
/* The next batch; valid until the next call or bk_loader_close. */
bk_status bk_loader_next(bk_loader *l, const bk_batch **out);
void bk_loader_close(bk_loader *l);

#endif
