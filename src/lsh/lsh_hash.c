/*
 * lsh_hash.c — the hash as a backend sees it: the metapage's lsh data, the
 * rotation and centroids cached per backend, and the buckets' newest pages,
 * read again when an insert linked a new page.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/memutils.h"

#include "lsh/lsh.h"

int			lsh_probes = LSH_DEFAULT_PROBES;
int			lsh_candidates = LSH_DEFAULT_CANDIDATES;
double		lsh_error_bound = LSH_DEFAULT_ERROR_BOUND;

const ImgsIndexAm lsh_am = {"lsh", LSH_MAGIC, LSH_VERSION, lsh_build, lsh_check};

void
lsh_read_meta(Relation index, ImgsIndexMeta *header, LshMeta *meta)
{
	imgs_meta_read(index, &lsh_am, header, meta, sizeof(LshMeta));
	if (meta->bits > LSH_MAX_BITS || meta->bits > header->store.dim ||
		(meta->bits > 0 && (meta->n_buckets == 0 || meta->n_buckets > LSH_MAX_BUCKETS)))
		imgs_index_corrupted(index, "has a metapage with %u sketch bits and %u buckets",
							 meta->bits, meta->n_buckets);
}

/* The rotation and the centroids: written once by the build. */
static void
load_hash(Relation index, LshCache *cache, const ImgsIndexMeta *header, const LshMeta *meta)
{
	uint32		dim = header->store.dim;
	Size		rotation_floats = (Size) meta->bits * dim;
	Size		centroid_floats = (Size) meta->n_buckets * dim;
	float	   *rotation;
	float	   *centroids;

	if (rotation_floats > (Size) meta->rotation_pages * IMGS_FLOATS_PER_PAGE ||
		centroid_floats > (Size) meta->centroids_pages * IMGS_FLOATS_PER_PAGE ||
		meta->n_buckets > meta->bucketdir_pages * LSH_BUCKETS_PER_DIR_PAGE ||
		meta->rotation_start >= header->next_block || meta->centroids_start >= header->next_block ||
		meta->bucketdir_start >= header->next_block)
		imgs_index_corrupted(index, "has a metapage whose page counts do not fit its hash");
	rotation = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * rotation_floats);
	centroids = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * centroid_floats);
	imgs_read_floats(index, meta->rotation_start, LSH_PAGE_ROTATION, rotation, rotation_floats);
	imgs_read_floats(index, meta->centroids_start, LSH_PAGE_CENTROIDS, centroids, centroid_floats);
	cache->model.dim = (int32) dim;
	cache->model.bits = (int32) meta->bits;
	cache->model.n_buckets = (int32) meta->n_buckets;
	cache->model.metric = header->metric;
	cache->model.rotation = rotation;
	cache->model.centroids = centroids;
	cache->model.rot_centroids = MemoryContextAllocHuge(CurrentMemoryContext,
														sizeof(float) * meta->n_buckets * meta->bits);
	cache->model.c_norms = palloc(sizeof(float) * meta->n_buckets);
	lsh_model_prepare(&cache->model);
	cache->bucket_last = palloc(sizeof(BlockNumber) * meta->n_buckets);
}

/* Each bucket's newest page, as the directory holds them now. */
static void
load_directory(Relation index, LshCache *cache, const ImgsIndexMeta *header, const LshMeta *meta)
{
	/*
	 * Not header->next_block: an insert may have linked a page allocated
	 * after the metapage was read. A linked page was written, so it exists.
	 */
	BlockNumber nblocks = RelationGetNumberOfBlocks(index);

	for (uint32 p = 0; p < meta->bucketdir_pages; p++)
	{
		BlockNumber blkno = meta->bucketdir_start + p;
		uint32		first = p * LSH_BUCKETS_PER_DIR_PAGE;
		uint32		n = Min(LSH_BUCKETS_PER_DIR_PAGE, meta->n_buckets - first);
		Buffer		buf;
		const BlockNumber *last;

		CHECK_FOR_INTERRUPTS();
		buf = ReadBuffer(index, blkno);
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		imgs_page_check(index, BufferGetPage(buf), blkno, LSH_PAGE_BUCKETDIR);
		last = (const BlockNumber *) ImgsPageGetData(BufferGetPage(buf));
		for (uint32 j = 0; j < n; j++)
		{
			if (last[j] == 0 || last[j] >= nblocks)
			{
				UnlockReleaseBuffer(buf);
				imgs_index_corrupted(index, "has bucket %u whose newest page is block %u", first + j, last[j]);
			}
			cache->bucket_last[first + j] = last[j];
		}
		UnlockReleaseBuffer(buf);
	}
}

void
lsh_load(Relation index, const ImgsIndexMeta *header, const LshMeta *meta, LshCache *cache)
{
	memset(cache, 0, sizeof(*cache));
	cache->base.cxt = CurrentMemoryContext;
	cache->base.relfilenode = index->rd_node.relNode;
	load_hash(index, cache, header, meta);
	load_directory(index, cache, header, meta);
	cache->meta = *meta;
}

typedef struct LoadArgs
{
	const ImgsIndexMeta *header;
	const LshMeta *meta;
} LoadArgs;

static void
load_new_cache(Relation index, ImgsIndexCache *base, void *arg)
{
	LshCache   *cache = (LshCache *) base;
	LoadArgs   *args = (LoadArgs *) arg;

	load_hash(index, cache, args->header, args->meta);
	load_directory(index, cache, args->header, args->meta);
	cache->meta = *args->meta;
}

LshCache *
lsh_get_cache(Relation index, const ImgsIndexMeta *header, const LshMeta *meta)
{
	LshCache   *cache = (LshCache *) imgs_cache_find(index);

	Assert(meta->bits > 0);
	/* the hash never changes but by a rebuild (REINDEX, TRUNCATE: a new relfilenode) */
	if (cache != NULL &&
		(cache->meta.bits != meta->bits || cache->meta.n_buckets != meta->n_buckets ||
		 cache->meta.rotation_start != meta->rotation_start ||
		 cache->meta.centroids_start != meta->centroids_start ||
		 cache->meta.bucketdir_start != meta->bucketdir_start ||
		 cache->model.dim != (int32) header->store.dim))
	{
		imgs_cache_drop(index);
		cache = NULL;
	}
	if (cache == NULL)
	{
		LoadArgs	args = {header, meta};

		cache = (LshCache *) imgs_cache_load(index, "lsh cache", sizeof(LshCache), load_new_cache, &args);
	}
	else if (cache->meta.version != meta->version)
	{
		/*
		 * Tagged with the version read before the directory: never newer
		 * than it is. A pinned scan may see newer pages: they hold rows it
		 * cannot see, or rows it would have found anyway.
		 */
		load_directory(index, cache, header, meta);
		cache->meta = *meta;
	}
	return cache;
}
