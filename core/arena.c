/* arena.c — chunked bump allocator with consolidation at reset (see arena.h). */
#include "core/arena.h"

#include <stdint.h>
#include <stdbool.h>
#include <stdlib.h>

#include "core/error.h"

#define ARENA_ALIGN 64

struct bk_arena_chunk {
    bk_arena_chunk *next;
    size_t size; /* usable bytes after the header */
    size_t top;  /* next free offset */
    unsigned char *base;
};

static bk_arena_chunk *chunk_new(bk_arena *a, size_t size) {
    bk_arena_chunk *c = malloc(sizeof *c);
    void *base = NULL;
    if (!c || posix_memalign(&base, ARENA_ALIGN, size) != 0) {
        free(c);
        bk_fatal_oom("the step arena", size, a->reserved);
    }
    c->next = NULL;
    c->size = size;
    c->top = 0;
    c->base = base;
    a->reserved += size;
    return c;
}

static void list_free(bk_arena_chunk *c) {
    while (c) {
        bk_arena_chunk *next = c->next;
        free(c->base);
        free(c);
        c = next;
    }
}

static void chunks_free(bk_arena *a) {
    list_free(a->chunks);
    list_free(a->spare);
    a->chunks = a->spare = NULL;
    a->reserved = 0;
}

/* The smallest spare chunk of at least `need` bytes, taken off the spare list; NULL if none. */
static bk_arena_chunk *take_spare(bk_arena *a, size_t need) {
    bk_arena_chunk **best = NULL;
    for (bk_arena_chunk **p = &a->spare; *p; p = &(*p)->next)
        if ((*p)->size >= need && (!best || (*p)->size < (*best)->size)) best = p;
    if (!best) return NULL;
    bk_arena_chunk *c = *best;
    *best = c->next;
    c->next = NULL;
    c->top = 0;
    return c;
}

void bk_arena_init(bk_arena *a, size_t chunk_min) {
    a->chunks = a->spare = NULL;
    a->used = a->peak = a->reserved = 0;
    a->chunk_min = chunk_min ? chunk_min : ((size_t)64 << 20);
}

void *bk_arena_alloc(bk_arena *a, size_t bytes) {
    size_t need = (bytes + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (need == 0) need = ARENA_ALIGN;
    bk_arena_chunk *c = a->chunks;
    if (!c || c->size - c->top < need) {
        size_t size = need > a->chunk_min ? need : a->chunk_min;
        bk_arena_chunk *fresh = take_spare(a, need);
        if (!fresh) fresh = chunk_new(a, size);
        fresh->next = a->chunks;
        a->chunks = c = fresh;
    }
    void *p = c->base + c->top;
    c->top += need;
    a->used += need;
    if (a->used > a->peak) a->peak = a->used;
    return p;
}

bk_arena_pos bk_arena_mark(const bk_arena *a) {
    return (bk_arena_pos){a->chunks, a->chunks ? a->chunks->top : 0, a->used};
}

void bk_arena_release(bk_arena *a, bk_arena_pos pos) {
    bool live = pos.chunk == NULL;
    for (bk_arena_chunk *c = a->chunks; c && !live; c = c->next) live = c == pos.chunk;
    if (!live) return; /* a mark from before a reset: nothing of it is left to give back */
    while (a->chunks && a->chunks != pos.chunk) { /* added since the mark: set aside */
        bk_arena_chunk *c = a->chunks;
        a->chunks = c->next;
        c->next = a->spare;
        a->spare = c;
    }
    if (pos.chunk) pos.chunk->top = pos.top;
    a->used = pos.used;
}

void bk_arena_reset(bk_arena *a) {
    /* More than one chunk means the step outgrew the arena: replace them by one block of the
     * peak size so the next step fits without allocating. */
    if ((a->chunks && a->chunks->next) || a->spare) {
        size_t size = a->peak > a->chunk_min ? a->peak : a->chunk_min;
        chunks_free(a);
        a->chunks = chunk_new(a, size);
    }
    for (bk_arena_chunk *c = a->chunks; c; c = c->next) c->top = 0;
    a->used = 0;
}

void bk_arena_free(bk_arena *a) {
    chunks_free(a);
    a->used = 0;
}
