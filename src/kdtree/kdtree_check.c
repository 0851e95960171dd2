/*
 * kdtree_check.c — kdtree's part of imgsearch_index_check
 * (index/index_check.h): the vector store (imgs_store_check), then the tree:
 * its metapage data, the projection and node pages (read as a scan reads
 * them, which checks their structure), and every leaf's chain of pages.
 * Every live slot of the store must have exactly one live entry, in a leaf
 * whose box holds the entry, and the entry must be what the projection
 * gives for the slot's vector, bit for bit; no entry may name a slot that is
 * not live. Entries and slots that inserts add while the check runs (the
 * store was read at one moment, the leaves after it) are skipped.
 */
#include "postgres.h"

#include "miscadmin.h"

#include "kdtree/kdtree.h"

/* Whether slot is live now with the TID the store check saw, its vector in x. */
static bool
slot_unchanged(Relation index, ImgsCheckedStore *store, uint32 slot, float *x)
{
	ImgsSlotHeader now;

	imgs_store_read_slot(index, &store->header.store, store->groups, slot, &now, x);
	return now.state == IMGS_SLOT_LIVE && ItemPointerEquals(&now.tid, &store->headers[slot].tid);
}

static void
check_entry(Relation index, ImgsCheckedStore *store, const KdtreeCache *cache, uint32 leaf,
			const KdtreeEntry *e, bool *seen, float *x, float *y)
{
	uint32		m = cache->meta.dims;
	int32		node = cache->tree.leaf_node[leaf];
	const float *lo = kd_node_lo(&cache->tree, node);
	const float *hi = kd_node_hi(&cache->tree, node);
	const KdNode *nd = &cache->tree.nodes[node];
	uint32		nslots = store->header.store.nslots;
	float		r;

	if (e->slot >= nslots)
		return;					/* inserted since the store was read */
	if (store->headers[e->slot].state != IMGS_SLOT_LIVE)
	{
		ImgsSlotHeader now;

		/* a free slot reused by an insert since is fine; else a stale reference */
		imgs_store_read_slot(index, &store->header.store, store->groups, e->slot, &now, x);
		if (now.state != IMGS_SLOT_LIVE)
			imgs_index_corrupted(index, "has an entry in leaf %u for slot %u, which is not live",
								 leaf, e->slot);
		return;
	}
	if (seen[e->slot])
		imgs_index_corrupted(index, "has two entries for slot %u", e->slot);
	seen[e->slot] = true;
	for (uint32 d = 0; d < m; d++)
		if (!(e->proj[d] >= lo[d] && e->proj[d] <= hi[d]))
			imgs_index_corrupted(index, "has an entry for slot %u outside the box of leaf %u", e->slot, leaf);
	if (!(e->resid >= nd->r_min && e->resid <= nd->r_max))
		imgs_index_corrupted(index, "has an entry for slot %u outside the residual range of leaf %u",
							 e->slot, leaf);
	if (!slot_unchanged(index, store, e->slot, x))
		return;					/* vacuumed and reused under a check in recovery */
	kdtree_project(cache, x, y, &r);
	if (memcmp(y, e->proj, sizeof(float) * m) != 0 || memcmp(&r, &e->resid, sizeof(float)) != 0)
		imgs_index_corrupted(index, "has an entry for slot %u that is not the projection of its vector",
							 e->slot);
}

void
kdtree_check(Relation index, ImgsCheckedStore *store)
{
	int32		typmod = TupleDescAttr(RelationGetDescr(index), 0)->atttypmod;
	ImgsIndexMeta header;
	KdtreeMeta	meta;
	KdtreeCache cache;
	uint32		nslots;
	bool	   *seen;
	float	   *x;
	float	   *y;

	imgs_store_check(index, &kdtree_am, &store->header, &store->groups, &store->headers);
	if (typmod > 0 && store->header.store.nslots > 0 && store->header.store.dim != (uint32) typmod)
		imgs_index_corrupted(index, "holds %u-dimensional vectors, but its column is imgfeat(%d)",
							 store->header.store.dim, typmod);
	kdtree_read_meta(index, &header, &meta);
	if (meta.dims == 0)
	{
		/* no tree: nothing but the store (and the metapage says nothing more) */
		if (meta.n_leaves != 0 || meta.n_nodes != 0)
			imgs_index_corrupted(index, "has a tree of %u nodes without projected dimensions", meta.n_nodes);
		return;
	}
	if (header.metric != IMGS_METRIC_L2 && header.metric != IMGS_METRIC_COSINE)
		imgs_index_corrupted(index, "has a tree for metric %u", header.metric);
	if (meta.dims > header.store.dim || meta.leaf_size < 1 || meta.leaf_size > KDTREE_MAX_LEAF_SIZE ||
		meta.pca_start >= header.next_block || meta.nodes_start >= header.next_block ||
		meta.leafdir_start >= header.next_block || meta.build_points > header.store.nslots)
		imgs_index_corrupted(index, "has a metapage whose tree does not fit its store");
	kdtree_load(index, &header, &meta, &cache);

	nslots = store->header.store.nslots;
	seen = palloc0(sizeof(bool) * Max(nslots, 1));
	x = palloc(sizeof(float) * header.store.dim);
	y = palloc(sizeof(float) * meta.dims);
	for (uint32 leaf = 0; leaf < meta.n_leaves; leaf++)
	{
		BlockNumber blkno = cache.leaf_last[leaf];
		uint32		pages = 0;

		while (BlockNumberIsValid(blkno))
		{
			Buffer		buf;
			Page		page;
			PGAlignedBlock copy;
			const ImgsListPageHeader *ph;

			CHECK_FOR_INTERRUPTS();
			if (blkno >= header.next_block || blkno == 0 || ++pages > header.next_block)
				imgs_index_corrupted(index, "has a chain of leaf %u through block %u", leaf, blkno);
			buf = imgs_list_read_page(index, blkno, KDTREE_PAGE_LEAF, leaf, kdtree_entry_size(meta.dims),
									  pages, BUFFER_LOCK_SHARE, NULL);
			memcpy(copy.data, BufferGetPage(buf), BLCKSZ);
			UnlockReleaseBuffer(buf);
			page = copy.data;
			ph = ImgsListPageHeaderOf(page);
			for (uint32 i = 0; i < ph->count; i++)
			{
				const KdtreeEntry *e = kdtree_page_entry(page, meta.dims, i);

				if (e->slot != IMGS_NO_SLOT)
					check_entry(index, store, &cache, leaf, e, seen, x, y);
			}
			blkno = ph->prev_blkno;
		}
	}
	for (uint32 slot = 0; slot < nslots; slot++)
		if (store->headers[slot].state == IMGS_SLOT_LIVE && !seen[slot] &&
			slot_unchanged(index, store, slot, x))
			imgs_index_corrupted(index, "has no leaf entry for live slot %u", slot);
}
