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

#include "kdtree/kdtree.h"

typedef struct ForgetState
{
	ImgsIndexMeta header;
	KdtreeMeta	meta;
	BufferAccessStrategy strategy;
} ForgetState;

static int
slot_cmp(const void *a, const void *b)
{
	uint32		x = *(const uint32 *) a;
	uint32		y = *(const uint32 *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

/* The forget callback: every leaf page, every entry naming one of the n slots (ascending). */
static void
forget_entries(Relation index, const uint32 *slots, const ItemPointerData *tids, int n, void *arg)
{
	ForgetState *fs = (ForgetState *) arg;
	uint32		m = fs->meta.dims;
	/* the leaves' newest pages, as of the metapage vacuum read (or newer) */
	KdtreeCache *cache = kdtree_get_cache(index, &fs->header, &fs->meta, true);

	for (uint32 leaf = 0; leaf < fs->meta.n_leaves; leaf++)
	{
		BlockNumber blkno = cache->leaf_last[leaf];
		uint32		pages = 0;

		while (BlockNumberIsValid(blkno))
		{
			Buffer		buf;
			Page		page;
			KdtreeLeafPageHeader *ph;
			GenericXLogState *state = NULL;

			vacuum_delay_point();
			buf = ReadBufferExtended(index, MAIN_FORKNUM, blkno, RBM_NORMAL, fs->strategy);
			LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
			page = BufferGetPage(buf);
			imgs_page_check(index, page, blkno, KDTREE_PAGE_LEAF);
			ph = KdtreeLeafPageHeaderOf(page);
			if (ph->leaf != leaf || ph->count > kdtree_entries_per_page(m) ||
				(++pages > 1000 && pages > RelationGetNumberOfBlocks(index)))
			{
				UnlockReleaseBuffer(buf);
				imgs_index_corrupted(index, "has a malformed page %u in the chain of leaf %u", blkno, leaf);
			}
			for (uint32 i = 0; i < ph->count; i++)
			{
				KdtreeEntry *e = kdtree_page_entry(page, m, i);

				if (e->slot == IMGS_NO_SLOT ||
					bsearch(&e->slot, slots, n, sizeof(uint32), slot_cmp) == NULL)
					continue;
				if (state == NULL)
				{
					state = GenericXLogStart(index);
					page = GenericXLogRegisterBuffer(state, buf, 0);
					ph = KdtreeLeafPageHeaderOf(page);
					e = kdtree_page_entry(page, m, i);
				}
				e->slot = IMGS_NO_SLOT;
			}
			if (state != NULL)
				GenericXLogFinish(state);
			blkno = ph->prev_blkno;
			UnlockReleaseBuffer(buf);
		}
	}
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
	if (info->analyze_only)
		return stats;
	/* no bulkdelete pass ran (nothing to delete): count the live vectors */
	if (stats == NULL)
		stats = kdtree_bulkdelete(info, NULL, NULL, NULL);
	return stats;
}
