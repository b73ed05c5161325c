/* arena.h — the step arena: memory that lives for one training or inference step.
 *
 * Activations, tape nodes, saved tensors, gradients of intermediates and per-op scratch are
 * bump-allocated here and released all at once by bk_arena_reset() at the end of the step.
 * The arena grows by chunks while a step runs; at reset it folds its chunks into one block of
 * the peak size, so from the second step on a step makes no allocation at all.
 * Not thread-safe: ops allocate from the calling thread only (kernels run OpenMP inside).
 * Not for anything that must outlive the step (parameters, gradients of parameters, optimizer
 * state): those are persistent allocations (tensor.h).
 */
#ifndef BK_ARENA_H
#define BK_ARENA_H

#include <stddef.h>

typedef struct bk_arena_chunk bk_arena_chunk;

typedef struct bk_arena {
    bk_arena_chunk *chunks; /* newest first; allocations come from the head */
    bk_arena_chunk *spare;  /* chunks a release emptied, reused before any new one */
    size_t used;            /* bytes handed out since the last reset (with alignment) */
    size_t peak;            /* the largest `used` ever seen */
    size_t reserved;        /* bytes held in chunks */
    size_t chunk_min;       /* smallest chunk the arena allocates */
} bk_arena;

void bk_arena_init(bk_arena *a, size_t chunk_min);
/* 64-byte aligned, uninitialised. Exits with a clear message if the system has no memory left. */
void *bk_arena_alloc(bk_arena *a, size_t bytes);
/* A position in the arena: everything allocated after it can be given back early (per-op
 * scratch), as long as nothing allocated after it is still in use. */
typedef struct bk_arena_pos {
    bk_arena_chunk *chunk;
    size_t top, used;
} bk_arena_pos;
bk_arena_pos bk_arena_mark(const bk_arena *a);
/* Gives back what was allocated since `pos`. Chunks that were added since are kept aside, with
 * their pages, for the next allocations that do not fit: per-op scratch of the same size run
 * again and again (a convolution timed on its first call) touches the same memory each time. */
void bk_arena_release(bk_arena *a, bk_arena_pos pos);
/* Releases everything allocated since the last reset. */
void bk_arena_reset(bk_arena *a);
void bk_arena_free(bk_arena *a);

#endif
