/*
 * lsh_vacuum.c — ambulkdelete and amvacuumcleanup.
 *
 * The store frees dead vectors' slots (index/vector_store.h); before it does,
 * forget_entries marks their bucket entries dead (slot reuse rule 1;
 * index/method_pages.h), so no bucket names a slot that an insert may
 * reuse. The dead entries' space is reclaimed by REINDEX.
 */
#include "postgres.h"

#include "commands/vacuum.h"

#include "index/index_am.h"
#include "lsh/lsh.h"

typedef struct ForgetState
{
	ImgsIndexMeta header;
	LshMeta		meta;
	BufferAccessStrategy strategy;
} ForgetState;

static void
forget_entries(Relation index, const uint32 *slots, const ItemPointerData *tids, int n, void *arg)
{
	ForgetState *fs = (ForgetState *) arg;
	/* the buckets' newest pages, as of the metapage vacuum read (or newer) */
	LshCache   *cache = lsh_get_cache(index, &fs->header, &fs->meta);

	imgs_list_forget(index, LSH_PAGE_BUCKET, lsh_entry_size(fs->meta.bits), fs->meta.n_buckets,
					 cache->bucket_last, slots, n, fs->strategy);
}

IndexBulkDeleteResult *
lsh_bulkdelete(IndexVacuumInfo *info, IndexBulkDeleteResult *stats,
			   IndexBulkDeleteCallback callback, void *callback_state)
{
	ForgetState fs;

	if (stats == NULL)
		stats = palloc0(sizeof(IndexBulkDeleteResult));
	/* counted afresh by each pass */
	stats->num_index_tuples = 0;
	lsh_read_meta(info->index, &fs.header, &fs.meta);
	fs.strategy = info->strategy;
	imgs_store_bulkdelete(info->index, &lsh_am, &fs.header, callback, callback_state,
						  fs.meta.bits > 0 ? forget_entries : NULL, &fs, stats, info->strategy);
	return stats;
}

IndexBulkDeleteResult *
lsh_vacuumcleanup(IndexVacuumInfo *info, IndexBulkDeleteResult *stats)
{
	return imgs_vacuumcleanup(info, stats, lsh_bulkdelete);
}
