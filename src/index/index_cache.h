/*
 * index_cache.h — what a backend keeps of an index between statements (a
 * method's structure read from its pages: kdtree's projection and tree,
 * lsh's centroids and rotation), by index OID.
 *
 * Not rd_amcache: the relcache frees that with a plain pfree on any
 * invalidation, even under a running scan. Each cache lives in a memory
 * context of its own under TopMemoryContext. A scan pins the cache it
 * searches; a cache replaced or invalidated while pinned (its index rebuilt,
 * dropped, vacuumed) is freed when the last pin goes. A relcache
 * invalidation of the index drops its cache, so dropped indexes leave
 * nothing behind.
 *
 * A method's cache struct starts with an ImgsIndexCache.
 */
#ifndef IMGS_INDEX_CACHE_H
#define IMGS_INDEX_CACHE_H

#include "utils/rel.h"

typedef struct ImgsIndexCache
{
	MemoryContext cxt;			/* holds the cache and everything it points to */
	int			pins;			/* scans searching it */
	bool		orphan;			/* replaced: freed at the last unpin */
	Oid			relfilenode;	/* of the data it was read from */
} ImgsIndexCache;

/* The index's cache, or NULL; one read from another relfilenode (REINDEX, TRUNCATE) is dropped. */
extern ImgsIndexCache *imgs_cache_find(Relation index);

/*
 * A new cache of `size` bytes (zeroed, base filled in) in a new context
 * (cache->cxt): the caller loads into that context, then calls
 * imgs_cache_install, or imgs_cache_abandon on error.
 */
extern ImgsIndexCache *imgs_cache_create(Relation index, const char *name, Size size);
/* Makes cache (from imgs_cache_create) the index's cache, dropping any other. */
extern void imgs_cache_install(Relation index, ImgsIndexCache *cache);
extern void imgs_cache_abandon(ImgsIndexCache *cache);

/* Fills a new cache, in the current memory context (its own). */
typedef void (*ImgsCacheLoad) (Relation index, ImgsIndexCache *cache, void *arg);

/*
 * imgs_cache_create, then load in the cache's context, then
 * imgs_cache_install; on error the half-loaded cache is freed.
 */
extern ImgsIndexCache *imgs_cache_load(Relation index, const char *name, Size size,
									   ImgsCacheLoad load, void *arg);

/* Drops the index's cache (freed now, or at its last unpin). */
extern void imgs_cache_drop(Relation index);

/* Keeps cache until the memory context `until` is reset or deleted. */
extern void imgs_cache_pin(ImgsIndexCache *cache, MemoryContext until);

#endif							/* IMGS_INDEX_CACHE_H */
