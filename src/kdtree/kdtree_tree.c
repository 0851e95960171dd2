/*
 * kdtree_tree.c — the tree as a backend sees it: the metapage's kdtree data,
 * the projection and nodes cached per backend, the leaves' boxes refreshed
 * when an insert changed them, and the search driver that answers the
 * core's requests from the leaf pages and the vector store.
 */
#include "postgres.h"

#include <math.h>

#include "miscadmin.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "kdtree/kdtree.h"

int			kdtree_max_leaves = 0;

const ImgsIndexAm kdtree_am = {"kdtree", KDTREE_MAGIC, KDTREE_VERSION, kdtree_build, kdtree_check};

void
kdtree_read_meta(Relation index, ImgsIndexMeta *header, KdtreeMeta *meta)
{
	imgs_meta_read(index, &kdtree_am, header, meta, sizeof(KdtreeMeta));
	if (meta->dims > KD_MAX_PROJ_DIMS || (meta->dims > 0 && (meta->n_leaves == 0 ||
															 meta->n_nodes < meta->n_leaves)))
		imgs_index_corrupted(index, "has a metapage with %u projected dimensions, %u nodes and %u leaves",
							 meta->dims, meta->n_nodes, meta->n_leaves);
}

/* The projection and the nodes: written once by the build. */
static void
load_structure(Relation index, KdtreeCache *cache, const ImgsIndexMeta *header,
			   const KdtreeMeta *meta)
{
	uint32		m = meta->dims;
	uint32		dim = header->store.dim;
	Size		pca_floats = (Size) dim + (Size) m * dim;
	float	   *pca = palloc(sizeof(float) * pca_floats);
	KdTree	   *t = &cache->tree;
	uint32		n_leaves_seen = 0;

	if (pca_floats > (Size) meta->pca_pages * IMGS_FLOATS_PER_PAGE ||
		(Size) meta->n_nodes > (Size) meta->nodes_pages * KDTREE_NODES_PER_PAGE ||
		meta->n_leaves > meta->leafdir_pages * kdtree_leaves_per_page(m))
		imgs_index_corrupted(index, "has a metapage whose page counts do not fit its tree");
	imgs_read_floats(index, meta->pca_start, KDTREE_PAGE_PCA, pca, pca_floats);
	cache->dim = dim;
	cache->metric = header->metric;
	cache->pca.dim = dim;
	cache->pca.m = m;
	cache->pca.metric = header->metric;
	cache->pca.orth_err = meta->orth_err;
	cache->pca.mean = pca;
	cache->pca.rows = pca + dim;

	t->m = m;
	t->leaf_size = meta->leaf_size;
	t->n_nodes = meta->n_nodes;
	t->n_leaves = meta->n_leaves;
	t->n_points = meta->build_points;
	t->nodes = palloc0(sizeof(KdNode) * meta->n_nodes);
	t->boxes = palloc(sizeof(float) * 2 * (Size) m * meta->n_nodes);
	t->perm = NULL;
	t->leaf_node = palloc(sizeof(int32) * meta->n_leaves);
	for (uint32 i = 0; i < meta->n_nodes; i++)
		t->nodes[i].parent = -1;
	for (uint32 p = 0; p < meta->nodes_pages; p++)
	{
		BlockNumber blkno = meta->nodes_start + p;
		uint32		first = p * KDTREE_NODES_PER_PAGE;
		uint32		n = Min(KDTREE_NODES_PER_PAGE, meta->n_nodes - first);
		Buffer		buf;
		const KdtreeNodeDisk *disk;

		CHECK_FOR_INTERRUPTS();
		buf = ReadBuffer(index, blkno);
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		imgs_page_check(index, BufferGetPage(buf), blkno, KDTREE_PAGE_NODES);
		disk = (const KdtreeNodeDisk *) ImgsPageGetData(BufferGetPage(buf));
		for (uint32 j = 0; j < n; j++)
		{
			KdNode	   *node = &t->nodes[first + j];
			int32		self = (int32) (first + j);

			node->child[0] = disk[j].child[0];
			node->child[1] = disk[j].child[1];
			node->leaf = disk[j].leaf;
			node->split_dim = disk[j].split_dim;
			node->split_val = disk[j].split_val;
			/* preorder: children after their parent; a leaf has none */
			if (node->leaf >= 0 ? (node->leaf >= (int32) meta->n_leaves || node->child[0] != -1 ||
								   node->child[1] != -1) :
				(node->child[0] <= self || node->child[1] <= self ||
				 node->child[0] >= (int32) meta->n_nodes || node->child[1] >= (int32) meta->n_nodes ||
				 node->split_dim < 0 || node->split_dim >= (int32) m))
			{
				UnlockReleaseBuffer(buf);
				imgs_index_corrupted(index, "has a malformed tree node %d", self);
			}
		}
		UnlockReleaseBuffer(buf);
	}
	/* every node but the root has one parent; every leaf number once */
	for (uint32 i = 0; i < meta->n_nodes; i++)
	{
		KdNode	   *node = &t->nodes[i];

		if (node->leaf >= 0)
		{
			t->leaf_node[node->leaf] = (int32) i;
			n_leaves_seen++;
			continue;
		}
		for (int c = 0; c < 2; c++)
		{
			if (t->nodes[node->child[c]].parent != -1)
				imgs_index_corrupted(index, "has tree node %d under two parents", node->child[c]);
			t->nodes[node->child[c]].parent = (int32) i;
		}
	}
	if (n_leaves_seen != meta->n_leaves)
		imgs_index_corrupted(index, "has %u leaves in its tree, its metapage says %u",
							 n_leaves_seen, meta->n_leaves);
	for (uint32 i = 1; i < meta->n_nodes; i++)
		if (t->nodes[i].parent == -1)
			imgs_index_corrupted(index, "has tree node %u under no parent", i);
	cache->leaf_last = palloc(sizeof(BlockNumber) * meta->n_leaves);
}

/* The leaves' boxes, as the leaf directory holds them now; inner boxes are their unions. */
static void
load_boxes(Relation index, KdtreeCache *cache, const KdtreeMeta *meta)
{
	KdTree	   *t = &cache->tree;
	uint32		m = meta->dims;
	uint32		per_page = kdtree_leaves_per_page(m);
	Size		rec_size = kdtree_leaf_record_size(m);

	for (uint32 p = 0; p < meta->leafdir_pages; p++)
	{
		BlockNumber blkno = meta->leafdir_start + p;
		uint32		first = p * per_page;
		uint32		n = Min(per_page, meta->n_leaves - first);
		Buffer		buf;
		const char *data;

		CHECK_FOR_INTERRUPTS();
		buf = ReadBuffer(index, blkno);
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		imgs_page_check(index, BufferGetPage(buf), blkno, KDTREE_PAGE_LEAFDIR);
		data = ImgsPageGetData(BufferGetPage(buf));
		for (uint32 j = 0; j < n; j++)
		{
			const KdtreeLeafRecord *rec = (const KdtreeLeafRecord *) (data + j * rec_size);
			int32		node = t->leaf_node[first + j];

			cache->leaf_last[first + j] = rec->last_blkno;
			t->nodes[node].r_min = rec->r_min;
			t->nodes[node].r_max = rec->r_max;
			memcpy(kd_node_lo(t, node), data + j * rec_size + sizeof(KdtreeLeafRecord),
				   2 * sizeof(float) * m);
		}
		UnlockReleaseBuffer(buf);
	}
	/* preorder: every child comes after its parent, so backwards unites children first */
	for (int32 i = t->n_nodes - 1; i >= 0; i--)
	{
		KdNode	   *node = &t->nodes[i];
		float	   *lo = kd_node_lo(t, i);
		float	   *hi = kd_node_hi(t, i);
		int32		a = node->child[0];
		int32		b = node->child[1];

		if (node->leaf >= 0)
			continue;
		for (uint32 d = 0; d < m; d++)
		{
			lo[d] = fminf(kd_node_lo(t, a)[d], kd_node_lo(t, b)[d]);
			hi[d] = fmaxf(kd_node_hi(t, a)[d], kd_node_hi(t, b)[d]);
		}
		node->r_min = fminf(t->nodes[a].r_min, t->nodes[b].r_min);
		node->r_max = fmaxf(t->nodes[a].r_max, t->nodes[b].r_max);
	}
}

void
kdtree_load(Relation index, const ImgsIndexMeta *header, const KdtreeMeta *meta, KdtreeCache *cache)
{
	memset(cache, 0, sizeof(*cache));
	cache->base.cxt = CurrentMemoryContext;
	cache->base.relfilenode = index->rd_node.relNode;
	load_structure(index, cache, header, meta);
	load_boxes(index, cache, meta);
	cache->meta = *meta;
	cache->boxes_valid = true;
}

typedef struct LoadArgs
{
	const ImgsIndexMeta *header;
	const KdtreeMeta *meta;
} LoadArgs;

/* The structure only: the boxes when a caller needs them. */
static void
load_new_cache(Relation index, ImgsIndexCache *base, void *arg)
{
	KdtreeCache *cache = (KdtreeCache *) base;
	LoadArgs   *args = (LoadArgs *) arg;

	load_structure(index, cache, args->header, args->meta);
	cache->meta = *args->meta;
	cache->boxes_valid = false;
}

KdtreeCache *
kdtree_get_cache(Relation index, const ImgsIndexMeta *header, const KdtreeMeta *meta,
				 bool need_boxes)
{
	KdtreeCache *cache = (KdtreeCache *) imgs_cache_find(index);

	Assert(meta->dims > 0);
	/* the structure never changes but by a rebuild (REINDEX, TRUNCATE: a new relfilenode) */
	if (cache != NULL &&
		(cache->meta.pca_start != meta->pca_start ||
		 cache->meta.nodes_start != meta->nodes_start || cache->meta.n_nodes != meta->n_nodes ||
		 cache->meta.dims != meta->dims || cache->dim != (int) header->store.dim))
	{
		imgs_cache_drop(index);
		cache = NULL;
	}
	if (cache == NULL)
	{
		LoadArgs	args = {header, meta};

		cache = (KdtreeCache *) imgs_cache_load(index, "kdtree cache", sizeof(KdtreeCache),
												load_new_cache, &args);
	}
	if (need_boxes && (!cache->boxes_valid || cache->meta.version != meta->version))
	{
		/*
		 * Tagged with the version read before the boxes: never newer than
		 * they are. A pinned search may see boxes grow under it: still
		 * bounds of every row it can see.
		 */
		cache->boxes_valid = false;
		load_boxes(index, cache, meta);
		cache->meta = *meta;
		cache->boxes_valid = true;
	}
	return cache;
}

void
kdtree_project(const KdtreeCache *cache, const float *x, float *y, float *resid)
{
	if (kd_project(&cache->pca, x, y, resid) < 0)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
}

int32
kdtree_descend(const KdtreeCache *cache, const float *y)
{
	const KdTree *t = &cache->tree;
	int32		node = 0;

	while (t->nodes[node].leaf < 0)
	{
		const KdNode *nd = &t->nodes[node];

		node = nd->child[y[nd->split_dim] <= nd->split_val ? 0 : 1];
	}
	return t->nodes[node].leaf;
}

/* ---------------------------------------------------------------------------
 * The search driver
 */

typedef struct TidEntry
{
	uint32		slot;			/* hash key */
	ItemPointerData tid;
} TidEntry;

/* The core's error (with its SQLSTATE), or an internal error of this driver. */
static void
search_failed(KdtreeSearch *ks, const ImgsError *err)
{
	char	   *what = psprintf("kdtree search of index \"%s\" failed", RelationGetRelationName(ks->index));

	if (err == NULL && ks->core)
		err = kd_search_error(ks->core);
	if (err && err->sqlstate[0])
		imgs_raise_cxx_error_in(err, what);
	ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("%s: its rows and the index disagree", what)));
}

/* Frees the core's search with the memory context of the scan, also on error. */
static void
end_core_search(void *arg)
{
	KdtreeSearch *ks = (KdtreeSearch *) arg;

	if (ks->core)
		kd_search_end(ks->core);
	ks->core = NULL;
}

void
kdtree_search_begin(KdtreeSearch *ks, Relation index, const KdtreeCache *cache,
					ImgsStoreReader *store, const ImgsKeyQuery *keys, int max_leaves,
					double work_limit)
{
	uint32		m = cache->meta.dims;
	/* the query points: the positives of several examples, else the query */
	int			q_count = keys->n_pos > 0 ? keys->n_pos : 1;
	float	   *q_proj = palloc(sizeof(float) * m * q_count);
	float	   *q_resid = palloc(sizeof(float) * q_count);
	KdSearchOptions opts;
	HASHCTL		ctl;
	ImgsError	err;

	memset(ks, 0, sizeof(*ks));
	ks->index = index;
	ks->cache = cache;
	ks->store = store;
	ks->keys = keys;
	ks->work_limit = work_limit;
	ctl.keysize = sizeof(uint32);
	ctl.entrysize = sizeof(TidEntry);
	ctl.hcxt = CurrentMemoryContext;
	ks->tids = hash_create("kdtree search TIDs", 256, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	for (int k = 0; k < q_count; k++)
		kdtree_project(cache, keys->n_pos > 0 ? keys->examples + (Size) k * cache->dim : keys->x,
					   q_proj + (Size) k * m, &q_resid[k]);
	/* one key at a time: the core asks for the fewest keys, and the store reads each alone anyway */
	opts.max_leaves = max_leaves;
	opts.key_batch = 1;
	/* an examples score is an ORDER BY value, at least the distance to some positive */
	ks->core = kd_search_begin_many(&cache->pca, &cache->tree, q_count, q_proj, q_resid,
									keys->n_pos > 0, &opts, &err);
	if (ks->core == NULL)
		search_failed(ks, &err);
	ks->free_core.func = end_core_search;
	ks->free_core.arg = ks;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, &ks->free_core);
}

/*
 * Supplies the entries of leaf `leaf`, page by page, newest first, straight
 * from the page (the core reads the packed entries; dead ones it skips).
 */
static void
add_leaf(KdtreeSearch *ks, int32 leaf)
{
	uint32		m = ks->cache->meta.dims;
	BlockNumber blkno = ks->cache->leaf_last[leaf];
	uint32		pages = 0;

	while (BlockNumberIsValid(blkno))
	{
		Buffer		buf;
		Page		page;
		const ImgsListPageHeader *ph;
		int			rc;

		CHECK_FOR_INTERRUPTS();
		buf = imgs_list_read_page(ks->index, blkno, KDTREE_PAGE_LEAF, (uint32) leaf,
								  kdtree_entry_size(m), ++pages, BUFFER_LOCK_SHARE, NULL);
		page = BufferGetPage(buf);
		ph = ImgsListPageHeaderOf(page);
		rc = kd_search_add_packed(ks->core, (int32) ph->count, kdtree_page_entry(page, m, 0),
								  kdtree_entry_size(m));
		blkno = ph->prev_blkno;
		UnlockReleaseBuffer(buf);
		if (rc != 0)
			search_failed(ks, NULL);
	}
}

/*
 * Whether the search has done more than its work limit. Only exact
 * distances count: reading the leaves costs at most a third of a flat scan
 * (m of dim coordinates per vector, in order), and a search that reads many
 * of them may still compute few distances, as on data with a few dominant
 * directions, where it is many times faster than a flat scan.
 */
static bool
over_limit(KdtreeSearch *ks)
{
	KdSearchStats st;

	if (ks->work_limit <= 0)
		return false;
	kd_search_stats(ks->core, &st);
	/* a budget's approximate round is bounded by its leaves; the limit is for what follows */
	if (st.budget_round)
		return false;
	return KDTREE_KEY_WORK * (st.keys_computed - st.keys_in_budget) > ks->work_limit;
}

KdtreeNext
kdtree_search_next(KdtreeSearch *ks, uint32 *slot, double *key, ItemPointer tid)
{
	for (;;)
	{
		KdAction	a;
		TidEntry   *entry;
		bool		found;

		switch (kd_search_next(ks->core, &a))
		{
			case KD_DONE:
				return KDTREE_DONE;
			case KD_NEED_LEAF:
				add_leaf(ks, a.leaf);
				if (over_limit(ks))
					return KDTREE_GAVE_UP;
				break;
			case KD_NEED_KEYS:
				for (int32 i = 0; i < a.count; i++)
				{
					int			rc;

					if (a.slots[i] < 0 || a.slots[i] >= IMGS_NO_SLOT)
						imgs_index_corrupted(ks->index, "has a leaf entry of slot " INT64_FORMAT,
											 a.slots[i]);
					ks->key_slot = (uint32) a.slots[i];
					imgs_store_keys(ks->store, &ks->key_slot, 1, ks->keys, &ks->key_value,
									&ks->key_header);
					if (ks->key_header.state == IMGS_SLOT_LIVE)
					{
						entry = hash_search(ks->tids, &ks->key_slot, HASH_ENTER, &found);
						entry->tid = ks->key_header.tid;
						rc = kd_search_set_exact(ks->core, a.slots[i], ks->key_value);
					}
					else
						rc = kd_search_drop(ks->core, a.slots[i]);
					if (rc != 0)
						search_failed(ks, NULL);
				}
				if (over_limit(ks))
					return KDTREE_GAVE_UP;
				break;
			case KD_EMIT:
				*slot = (uint32) a.slot;
				*key = a.key;
				entry = hash_search(ks->tids, slot, HASH_FIND, &found);
				if (!found)
					search_failed(ks, NULL);
				*tid = entry->tid;
				hash_search(ks->tids, slot, HASH_REMOVE, NULL);
				return KDTREE_ROW;
			default:
				search_failed(ks, NULL);
		}
	}
}

void
kdtree_search_stats(const KdtreeSearch *ks, KdSearchStats *stats)
{
	kd_search_stats(ks->core, stats);
}

void
kdtree_search_end(KdtreeSearch *ks)
{
	end_core_search(ks);
	if (ks->tids)
		hash_destroy(ks->tids);
	ks->tids = NULL;
}
