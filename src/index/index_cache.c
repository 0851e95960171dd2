/*
 * index_cache.c — per-backend caches of index structure (index_cache.h).
 */
#include "postgres.h"

#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"

#include "index/index_cache.h"

typedef struct CacheSlot
{
	Oid			indexoid;		/* hash key */
	ImgsIndexCache *cache;		/* current, or NULL */
} CacheSlot;

static HTAB *caches = NULL;

static void
release(ImgsIndexCache *cache)
{
	if (cache->pins > 0)
		cache->orphan = true;
	else
		MemoryContextDelete(cache->cxt);
}

static void
invalidate_callback(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS seq;
	CacheSlot  *slot;

	hash_seq_init(&seq, caches);
	while ((slot = hash_seq_search(&seq)) != NULL)
	{
		if (OidIsValid(relid) && slot->indexoid != relid)
			continue;
		if (slot->cache != NULL)
			release(slot->cache);
		hash_search(caches, &slot->indexoid, HASH_REMOVE, NULL);
	}
}

static CacheSlot *
find_slot(Relation index, bool create)
{
	Oid			oid = RelationGetRelid(index);
	CacheSlot  *slot;
	bool		found;

	if (caches == NULL)
	{
		HASHCTL		ctl;

		if (!create)
			return NULL;
		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(CacheSlot);
		ctl.hcxt = TopMemoryContext;
		caches = hash_create("imgsearch index caches", 16, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		CacheRegisterRelcacheCallback(invalidate_callback, (Datum) 0);
	}
	slot = hash_search(caches, &oid, create ? HASH_ENTER : HASH_FIND, &found);
	if (slot != NULL && !found)
		slot->cache = NULL;
	return slot;
}

ImgsIndexCache *
imgs_cache_find(Relation index)
{
	CacheSlot  *slot = find_slot(index, false);

	if (slot == NULL || slot->cache == NULL)
		return NULL;
	if (slot->cache->relfilenode != index->rd_node.relNode)
	{
		release(slot->cache);
		slot->cache = NULL;
	}
	return slot->cache;
}

ImgsIndexCache *
imgs_cache_create(Relation index, const char *name, Size size)
{
	MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "imgsearch index cache",
											  ALLOCSET_DEFAULT_SIZES);
	ImgsIndexCache *cache = MemoryContextAllocZero(cxt, size);

	/* name: a string constant, as context names are */
	MemoryContextSetIdentifier(cxt, name);
	cache->cxt = cxt;
	cache->relfilenode = index->rd_node.relNode;
	return cache;
}

void
imgs_cache_install(Relation index, ImgsIndexCache *cache)
{
	CacheSlot  *slot = find_slot(index, true);

	if (slot->cache != NULL && slot->cache != cache)
		release(slot->cache);
	slot->cache = cache;
}

void
imgs_cache_abandon(ImgsIndexCache *cache)
{
	MemoryContextDelete(cache->cxt);
}

ImgsIndexCache *
imgs_cache_load(Relation index, const char *name, Size size, ImgsCacheLoad load, void *arg)
{
	ImgsIndexCache *cache = imgs_cache_create(index, name, size);
	MemoryContext old_ctx = MemoryContextSwitchTo(cache->cxt);

	PG_TRY();
	{
		load(index, cache, arg);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(old_ctx);
		imgs_cache_abandon(cache);
		PG_RE_THROW();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old_ctx);
	imgs_cache_install(index, cache);
	return cache;
}

void
imgs_cache_drop(Relation index)
{
	CacheSlot  *slot = find_slot(index, false);

	if (slot != NULL && slot->cache != NULL)
	{
		release(slot->cache);
		slot->cache = NULL;
	}
}

static void
unpin_callback(void *arg)
{
	ImgsIndexCache *cache = (ImgsIndexCache *) arg;

	Assert(cache->pins > 0);
	if (--cache->pins == 0 && cache->orphan)
		MemoryContextDelete(cache->cxt);
}

void
imgs_cache_pin(ImgsIndexCache *cache, MemoryContext until)
{
	MemoryContextCallback *cb = MemoryContextAlloc(until, sizeof(MemoryContextCallback));

	cache->pins++;
	cb->func = unpin_callback;
	cb->arg = cache;
	MemoryContextRegisterResetCallback(until, cb);
}
