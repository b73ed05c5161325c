/* cache.c — open addressing with linear probing, FNV-1a hash, doubling at 50 % load. */
#include "core/cache.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

typedef struct entry {
    void *key; /* NULL: empty slot */
    size_t key_len;
    uint64_t hash;
    void *value;
    void (*destroy)(void *);
} entry;

struct bk_cache {
    entry *slots;
    size_t cap, count;
};

static uint64_t fnv1a(const void *key, size_t len) {
    const unsigned char *p = key;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

bk_cache *bk_cache_new(void) {
    bk_cache *c = calloc(1, sizeof *c);
    BK_CHECK(c, "out of memory");
    c->cap = 64;
    c->slots = calloc(c->cap, sizeof *c->slots);
    BK_CHECK(c->slots, "out of memory");
    return c;
}

static entry *find(const bk_cache *c, const void *key, size_t len, uint64_t h) {
    size_t mask = c->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        entry *e = &c->slots[i];
        if (!e->key) return e;
        if (e->hash == h && e->key_len == len && memcmp(e->key, key, len) == 0) return e;
    }
}

void *bk_cache_get(const bk_cache *c, const void *key, size_t key_len) {
    entry *e = find(c, key, key_len, fnv1a(key, key_len));
    return e->key ? e->value : NULL;
}

static void grow(bk_cache *c) {
    entry *old = c->slots;
    size_t old_cap = c->cap;
    c->cap *= 2;
    c->slots = calloc(c->cap, sizeof *c->slots);
    BK_CHECK(c->slots, "out of memory");
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].key) *find(c, old[i].key, old[i].key_len, old[i].hash) = old[i];
    free(old);
}

void bk_cache_put(bk_cache *c, const void *key, size_t key_len, void *value,
                  void (*destroy)(void *)) {
    if (2 * (c->count + 1) > c->cap) grow(c);
    uint64_t h = fnv1a(key, key_len);
    entry *e = find(c, key, key_len, h);
    BK_CHECK(!e->key, "cache key stored twice");
    e->key = malloc(key_len);
    BK_CHECK(e->key, "out of memory");
    memcpy(e->key, key, key_len);
    e->key_len = key_len;
    e->hash = h;
    e->value = value;
    e->destroy = destroy;
    c->count++;
}

size_t bk_cache_count(const bk_cache *c) { return c->count; }

void bk_cache_free(bk_cache *c) {
    if (!c) return;
    for (size_t i = 0; i < c->cap; i++) {
        if (!c->slots[i].key) continue;
        if (c->slots[i].destroy) c->slots[i].destroy(c->slots[i].value);
        free(c->slots[i].key);
    }
    free(c->slots);
    free(c);
}
