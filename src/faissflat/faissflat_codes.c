/*
 * faissflat_codes.c — the backend's copy of faissflat's projection and
 * ranges (index/index_cache.h; see FaissflatCache), and coding a vector
 * with them.
 */
#include "postgres.h"

#include <math.h>

#include "miscadmin.h"

#include "faissflat/faissflat.h"
#include "faissflat/faissflat_core.h"

typedef struct LoadArgs
{
	const ImgsIndexMeta *header;
	const FaissflatMeta *meta;
	bool		entries;
} LoadArgs;

/* The entry count of the list's newest page (blkno) now. */
static uint32
last_page_count(Relation index, BlockNumber blkno, Size entry_size)
{
	Buffer		buf = imgs_list_read_page(index, blkno, FAISSFLAT_PAGE_CODES, 0, entry_size, 1,
										  BUFFER_LOCK_SHARE, NULL);
	uint32		count = ImgsListPageHeaderOf(BufferGetPage(buf))->count;

	UnlockReleaseBuffer(buf);
	return count;
}

/* Room for n entries in the cache's arrays (in its context). */
static void
reserve_entries(FaissflatCache *cache, int64 n)
{
	Size		stride = ff_code_stride(cache->pca.m);
	MemoryContext old = MemoryContextSwitchTo(cache->base.cxt);

	if (cache->capacity == 0)
	{
		cache->capacity = Max(n, 1024);
		cache->slots = MemoryContextAllocHuge(cache->base.cxt, sizeof(uint32) * cache->capacity);
		cache->resid = MemoryContextAllocHuge(cache->base.cxt, sizeof(float) * cache->capacity);
		cache->mag = MemoryContextAllocHuge(cache->base.cxt, sizeof(float) * cache->capacity);
		cache->err = MemoryContextAllocHuge(cache->base.cxt, sizeof(float) * cache->capacity);
		cache->yh2 = MemoryContextAllocHuge(cache->base.cxt, sizeof(float) * cache->capacity);
		cache->codes = MemoryContextAllocHuge(cache->base.cxt, stride * cache->capacity);
		if (cache->ncuts > 0)
			cache->head = MemoryContextAllocHuge(cache->base.cxt, ff_head_bytes(cache->capacity));
		for (int k = 0; k < cache->ncuts; k++)
		{
			cache->cut_head2[k] = MemoryContextAllocHuge(cache->base.cxt, sizeof(float) * cache->capacity);
			cache->cut_tail[k] = MemoryContextAllocHuge(cache->base.cxt, sizeof(float) * cache->capacity);
		}
	}
	else if (n > cache->capacity)
	{
		/* an eighth more: a growing table does not double its copy at once */
		cache->capacity = Max(n, cache->capacity + cache->capacity / 8);
		cache->slots = repalloc_huge(cache->slots, sizeof(uint32) * cache->capacity);
		cache->resid = repalloc_huge(cache->resid, sizeof(float) * cache->capacity);
		cache->mag = repalloc_huge(cache->mag, sizeof(float) * cache->capacity);
		cache->err = repalloc_huge(cache->err, sizeof(float) * cache->capacity);
		cache->yh2 = repalloc_huge(cache->yh2, sizeof(float) * cache->capacity);
		cache->codes = repalloc_huge(cache->codes, stride * cache->capacity);
		if (cache->ncuts > 0)
			cache->head = repalloc_huge(cache->head, ff_head_bytes(cache->capacity));
		for (int k = 0; k < cache->ncuts; k++)
		{
			cache->cut_head2[k] = repalloc_huge(cache->cut_head2[k], sizeof(float) * cache->capacity);
			cache->cut_tail[k] = repalloc_huge(cache->cut_tail[k], sizeof(float) * cache->capacity);
		}
	}
	MemoryContextSwitchTo(old);
}

/* Copies the live entries from..count-1 of a code page into the cache's arrays. */
static void
copy_entries(FaissflatCache *cache, Page page, Size entry_size, uint32 from)
{
	const ImgsListPageHeader *ph = ImgsListPageHeaderOf(page);
	Size		stride = ff_code_stride(cache->pca.m);

	reserve_entries(cache, cache->nentries + ph->count);
	for (uint32 i = from; i < ph->count; i++)
	{
		const FaissflatEntry *e = (const FaissflatEntry *) imgs_list_entry(page, entry_size, i);
		int64		j = cache->nentries;

		if (e->slot == IMGS_NO_SLOT)
			continue;
		cache->slots[j] = e->slot;
		cache->resid[j] = e->resid;
		cache->mag[j] = e->mag;
		cache->err[j] = e->err;
		cache->yh2[j] = e->yh2;
		memcpy(cache->codes + (Size) j * stride, e->code, stride);
		if (cache->ncuts > 0)
		{
			float		head2[FF_CUTS_MAX],
						tail[FF_CUTS_MAX];

			ff_head_put(cache->head, j, e->code);
			ff_cut_norms(cache->ranges, cache->pca.m, e->code, head2, tail);
			for (int k = 0; k < cache->ncuts; k++)
			{
				cache->cut_head2[k][j] = head2[k];
				cache->cut_tail[k][j] = tail[k];
			}
		}
		if (!(e->mag <= cache->max_mag))
			cache->max_mag = isnan(e->mag) ? INFINITY : e->mag;
		cache->nentries++;
	}
}

/*
 * Copies into the cache the entries of the code list newer than what it
 * holds: the pages from the newest (meta->codes_last) back to the one it
 * read last (all of theirs), and that page's entries past the count it read.
 * With none read yet (has_entries false) that is the whole list, in one
 * walk. Returns
 * false (the cache left as it was) when the chain does not lead back to the
 * page it read last.
 */
static bool
add_entries(Relation index, FaissflatCache *cache, const FaissflatMeta *meta)
{
	Size		entry_size = faissflat_entry_size(meta->dims);
	BlockNumber stop = cache->has_entries ? cache->entries_last : InvalidBlockNumber;
	BlockNumber blkno = meta->codes_last;
	BlockNumber *newer = NULL;	/* pages newer than stop, newest first */
	int64		nnewer = 0,
				cap = 0;
	uint32		pages = 0;
	uint32		last_count = 0;

	/*
	 * the whole list (a first load: an error drops the half-read cache): one
	 * walk, newest page first, its count as read then
	 */
	if (!BlockNumberIsValid(stop))
	{
		while (BlockNumberIsValid(blkno))
		{
			Buffer		buf;
			Page		page;

			CHECK_FOR_INTERRUPTS();
			buf = imgs_list_read_page(index, blkno, FAISSFLAT_PAGE_CODES, 0, entry_size, ++pages,
									  BUFFER_LOCK_SHARE, NULL);
			page = BufferGetPage(buf);
			copy_entries(cache, page, entry_size, 0);
			if (pages == 1)
			{
				cache->entries_last = blkno;
				cache->entries_last_count = ImgsListPageHeaderOf(page)->count;
			}
			blkno = ImgsListPageHeaderOf(page)->prev_blkno;
			UnlockReleaseBuffer(buf);
		}
		cache->has_entries = true;
		return true;
	}

	/* the chain back to stop (each page's count read when it is copied, below) */
	while (blkno != stop)
	{
		Buffer		buf;

		if (!BlockNumberIsValid(blkno))
			return false;
		CHECK_FOR_INTERRUPTS();
		buf = imgs_list_read_page(index, blkno, FAISSFLAT_PAGE_CODES, 0, entry_size, ++pages,
								  BUFFER_LOCK_SHARE, NULL);
		if (nnewer == cap)
		{
			cap = Max(64, cap * 2);
			newer = newer ? repalloc_huge(newer, sizeof(BlockNumber) * cap)
				: palloc(sizeof(BlockNumber) * cap);
		}
		newer[nnewer++] = blkno;
		blkno = ImgsListPageHeaderOf(BufferGetPage(buf))->prev_blkno;
		UnlockReleaseBuffer(buf);
	}
	/*
	 * oldest first, so that an error leaves the copy consistent with
	 * entries_last: stop's new entries, then the newer pages whole
	 */
	for (int64 k = -1; k < nnewer; k++)
	{
		BlockNumber b = k < 0 ? stop : newer[nnewer - 1 - k];
		Buffer		buf;

		CHECK_FOR_INTERRUPTS();
		buf = imgs_list_read_page(index, b, FAISSFLAT_PAGE_CODES, 0, entry_size, 1,
								  BUFFER_LOCK_SHARE, NULL);
		copy_entries(cache, BufferGetPage(buf), entry_size, k < 0 ? cache->entries_last_count : 0);
		last_count = ImgsListPageHeaderOf(BufferGetPage(buf))->count;
		UnlockReleaseBuffer(buf);
		cache->entries_last = b;
		cache->entries_last_count = last_count;
	}
	if (newer)
		pfree(newer);
	cache->has_entries = true;
	return true;
}

/* The projection and the ranges: written once by the build. */
static void
load_cache(Relation index, ImgsIndexCache *base, void *arg)
{
	LoadArgs   *args = (LoadArgs *) arg;
	FaissflatCache *cache = (FaissflatCache *) base;
	uint32		m = args->meta->dims;
	uint32		dim = args->header->store.dim;
	Size		pca_floats = (Size) dim + (Size) m * dim;
	float	   *pca;

	if (pca_floats > (Size) args->meta->pca_pages * IMGS_FLOATS_PER_PAGE ||
		(Size) m * 2 > (Size) args->meta->ranges_pages * IMGS_FLOATS_PER_PAGE)
		imgs_index_corrupted(index, "has a metapage whose page counts do not fit its codes");
	pca = palloc(sizeof(float) * pca_floats);
	imgs_read_floats(index, args->meta->pca_start, FAISSFLAT_PAGE_PCA, pca, pca_floats);
	cache->ranges = palloc(sizeof(float) * (Size) m * 2);
	imgs_read_floats(index, args->meta->ranges_start, FAISSFLAT_PAGE_RANGES, cache->ranges,
					 (Size) m * 2);
	if (!ff_ranges_valid(cache->ranges, (int32) m))
		imgs_index_corrupted(index, "has code ranges that are not finite with positive steps");
	cache->meta = *args->meta;
	cache->dim = dim;
	cache->pca.dim = dim;
	cache->pca.m = m;
	cache->pca.metric = args->header->metric == IMGS_METRIC_COSINE ? KD_METRIC_COSINE : KD_METRIC_L2;
	cache->pca.orth_err = args->meta->orth_err;
	cache->pca.mean = pca;
	cache->pca.rows = pca + dim;
	cache->ncuts = ff_cuts((int32) m);
	if (args->entries)
	{
		cache->entries_forgets = args->meta->forgets;
		/* room for every slot at once: growing an eighth at a time would copy the arrays dozens of times */
		reserve_entries(cache, (int64) args->header->store.nslots);
		if (!add_entries(index, cache, args->meta))
			imgs_index_corrupted(index, "has a code list that does not lead back to its pages");
	}
}

FaissflatCache *
faissflat_get_cache(Relation index, const ImgsIndexMeta *header, const FaissflatMeta *meta,
					bool entries)
{
	FaissflatCache *cache = (FaissflatCache *) imgs_cache_find(index);

	Assert(meta->dims > 0);
	/* the projection and ranges never change but by a rebuild (REINDEX, TRUNCATE: a new relfilenode) */
	if (cache != NULL &&
		(cache->meta.pca_start != meta->pca_start || cache->meta.ranges_start != meta->ranges_start ||
		 cache->meta.dims != meta->dims || cache->dim != (int) header->store.dim))
	{
		imgs_cache_drop(index);
		cache = NULL;
	}
	/*
	 * entries: a new cache after a vacuum (a scan may still hold the old
	 * one's arrays); after inserts, the new entries added in place, unless
	 * a scan of this backend still reads the arrays
	 */
	if (cache != NULL && entries &&
		(!cache->has_entries || cache->entries_forgets != meta->forgets ||
		 ((cache->entries_last != meta->codes_last ||
		   cache->entries_last_count != last_page_count(index, meta->codes_last,
														faissflat_entry_size(meta->dims))) &&
		  (cache->base.pins > 0 || !add_entries(index, cache, meta)))))
	{
		imgs_cache_drop(index);
		cache = NULL;
	}
	if (cache == NULL)
	{
		LoadArgs	args = {header, meta, entries};

		cache = (FaissflatCache *) imgs_cache_load(index, "faissflat cache", sizeof(FaissflatCache),
												   load_cache, &args);
	}
	return cache;
}

void
faissflat_encode(const FaissflatCache *cache, const float *x, FaissflatEntry *entry)
{
	float	   *y = palloc(sizeof(float) * cache->pca.m);

	if (kd_project(&cache->pca, x, y, &entry->resid) < 0)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	entry->mag = ff_magnitude(y, cache->pca.m, entry->resid);
	ff_encode(cache->ranges, cache->pca.m, y, entry->code, &entry->err, &entry->yh2);
	pfree(y);
}
