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

typedef struct EntryCheck
{
	KdtreeCache *cache;
	float	   *y;				/* m floats */
} EntryCheck;

/* An entry must lie in its leaf's box and be the projection of its slot's vector, bit for bit. */
static void
check_entry(Relation index, uint32 leaf, const char *entry, const float *x, void *arg)
{
	EntryCheck *ec = (EntryCheck *) arg;
	const KdtreeCache *cache = ec->cache;
	const KdtreeEntry *e = (const KdtreeEntry *) entry;
	uint32		m = cache->meta.dims;
	int32		node = cache->tree.leaf_node[leaf];
	const float *lo = kd_node_lo(&cache->tree, node);
	const float *hi = kd_node_hi(&cache->tree, node);
	const KdNode *nd = &cache->tree.nodes[node];
	float		r;

	for (uint32 d = 0; d < m; d++)
		if (!(e->proj[d] >= lo[d] && e->proj[d] <= hi[d]))
			imgs_index_corrupted(index, "has an entry for slot %u outside the box of leaf %u", e->slot, leaf);
	if (!(e->resid >= nd->r_min && e->resid <= nd->r_max))
		imgs_index_corrupted(index, "has an entry for slot %u outside the residual range of leaf %u",
							 e->slot, leaf);
	kdtree_project(cache, x, ec->y, &r);
	if (memcmp(ec->y, e->proj, sizeof(float) * m) != 0 || memcmp(&r, &e->resid, sizeof(float)) != 0)
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
	EntryCheck	ec;

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

	ec.cache = &cache;
	ec.y = palloc(sizeof(float) * meta.dims);
	imgs_check_lists(index, store, KDTREE_PAGE_LEAF, kdtree_entry_size(meta.dims), meta.n_leaves,
					 cache.leaf_last, "leaf", check_entry, &ec);
}
