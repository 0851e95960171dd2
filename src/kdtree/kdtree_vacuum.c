/*
 * kdtree_vacuum.c — ambulkdelete and amvacuumcleanup.
 *
 * The store frees dead vectors' slots (index/vector_store.h); before it does,
 * forget_entries marks their leaf entries dead (slot reuse rule 1), one
 * Generic WAL record per leaf page that held one, so no leaf names a slot
 * that an insert may reuse. Boxes are left as they are (still bounds); the
 * dead entries' space is reclaimed by REINDEX.
 */
#include "postgres.h"

#include "access/generic_xlog.h"
#include "commands/vacuum.h"
#include "miscadmin.h"

#include "index/index_am.h"
#include "kdtree/kdtree.h"

typedef struct ForgetState
{
	ImgsIndexMeta header;
	KdtreeMeta	meta;
	BufferAccessStrategy strategy;
} ForgetState;

/* The forget callback: every leaf entry naming one of the n slots (ascending) is marked dead. */
static void
forget_entries(Relation index, const uint32 *slots, const ItemPointerData *tids, int n, void *arg)
{
	ForgetState *fs = (ForgetState *) arg;
	/* the leaves' newest pages, as of the metapage vacuum read (or newer) */
	KdtreeCache *cache = kdtree_get_cache(index, &fs->header, &fs->meta, true);

	imgs_list_forget(index, KDTREE_PAGE_LEAF, kdtree_entry_size(fs->meta.dims), fs->meta.n_leaves,
					 cache->leaf_last, slots, n, fs->strategy);
}

IndexBulkDeleteResult *
kdtree_bulkdelete(IndexVacuumInfo *info, IndexBulkDeleteResult *stats,
				  IndexBulkDeleteCallback callback, void *callback_state)
{
	ImgsIndexMeta header;
	ForgetState fs;

	if (stats == NULL)
		stats = palloc0(sizeof(IndexBulkDeleteResult));
	/* counted afresh by each pass */
	stats->num_index_tuples = 0;
	kdtree_read_meta(info->index, &header, &fs.meta);
	fs.header = header;
	fs.strategy = info->strategy;
	imgs_store_bulkdelete(info->index, &kdtree_am, &header, callback, callback_state,
						  fs.meta.dims > 0 ? forget_entries : NULL, &fs, stats, info->strategy);
	return stats;
}

IndexBulkDeleteResult *
kdtree_vacuumcleanup(IndexVacuumInfo *info, IndexBulkDeleteResult *stats)
{
	return imgs_vacuumcleanup(info, stats, kdtree_bulkdelete);
}
