/* cache.h — a small hash map from byte keys to owned values.
 *
 * Used to create oneDNN primitives once per (op, shape, attributes) and reuse them: the key is
 * a zero-initialised plain struct describing the problem, the value a plan holding primitives.
 * Not a general container: no removal, values freed only when the cache is freed.
 */
#ifndef BK_CACHE_H
#define BK_CACHE_H

#include <stddef.h>

typedef struct bk_cache bk_cache;

bk_cache *bk_cache_new(void);
/* Returns the value stored under the key, or NULL. */
void *bk_cache_get(const bk_cache *c, const void *key, size_t key_len);
/* Stores value under key (copied); `destroy` (may be NULL) frees it in bk_cache_free. */
void bk_cache_put(bk_cache *c, const void *key, size_t key_len, void *value,
                  void (*destroy)(void *value));
size_t bk_cache_count(const bk_cache *c);
void bk_cache_free(bk_cache *c);

#endif
