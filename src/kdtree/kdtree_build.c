/*
 * kdtree_build.c — ambuild and ambuildempty.
 *
 * 1. Load: every non-NULL vector of the table goes to a fresh vector store
 *    (slots 0..n-1 in scan order) while a seeded reservoir keeps a sample.
 * 2. Train: mean and PCA on the sample (kd_pca_train: faiss PCAMatrix).
 * 3. Tree: every vector, read back from the store, projected; nanoflann
 *    builds the tree over the projections (kd_tree_build); its nodes, the
 *    leaves' records and the leaves' entries go to pages of their own.
 * 4. Cost sample: a few searches for sampled vectors measure the fraction of
 *    the vectors an exact k = 30 search examines; the cost estimate uses it.
 * Everything is written without WAL, then logged once (log_newpage_range).
 *
 * An empty table gives an index without a tree (dims 0): inserts go to the
 * store only and scans read every vector, until REINDEX builds a tree.
 */
#include "postgres.h"

#include <math.h>

#include "access/tableam.h"
#include "access/xloginsert.h"
#include "commands/progress.h"
#include "common/pg_prng.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/memutils.h"

#include "kdtree/kdtree.h"
#include "index/build_load.h"
#include "index/index_am.h"
#include "type/imgfeat.h"

/* The PCA sample: at most this many vectors, and this many bytes (and half of maintenance_work_mem). */
#define SAMPLE_MAX_VECTORS	20000
#define SAMPLE_MAX_BYTES	((Size) 64 * 1024 * 1024)
#define BUILD_SEED			UINT64CONST(0x6b64747265650001)
/* The cost sample */
#define COST_QUERIES		8
#define COST_K				30

typedef struct KdtreeBuildState
{
	ImgsBuildLoad load;			/* header, store, n, dim, sample */
	int			dims;			/* reloption */
	int			leaf_size;		/* reloption */
	float	   *cost_queries;	/* [n_cost_queries * dim]: sample vectors kept for measure_search */
	int			n_cost_queries;
} KdtreeBuildState;

/*
 * The bytes the tree's build holds for n rows projected on m dimensions,
 * once the sample is freed: every row's projection and residual norm, its
 * position in nanoflann's order and in ours (two int64), and per node
 * (leaves of about leaf_size / 2 rows or more, as many inner nodes) its
 * box, our node, nanoflann's node and the leaf's record; plus one group of
 * vectors being projected. An estimate of nanoflann's part, exact for ours.
 */
static Size
tree_build_bytes(int64 n, uint32 m, int leaf_size, int dim, uint32 group_slots)
{
	Size		nodes = 2 * (2 * (Size) n / Max(1, leaf_size) + 1);

	return (Size) n * (sizeof(float) * (m + 1) + 2 * sizeof(int64)) +
		nodes * (sizeof(KdNode) + 2 * sizeof(float) * m + 64 + kdtree_leaf_record_size(m)) +
		(Size) group_slots * (sizeof(ImgsSlotHeader) + sizeof(float) * dim);
}

/*
 * The tree holds every row's projection in memory: where that cannot fit in
 * maintenance_work_mem, a clear error (54000) right after the load, rather
 * than a build past it.
 */
static void
check_tree_memory(Relation index, KdtreeBuildState *bs, uint32 m)
{
	Size		need = tree_build_bytes(bs->load.n, m, bs->leaf_size, bs->load.dim,
										imgs_group_slots(&bs->load.header.store));

	if (need > (Size) maintenance_work_mem * 1024)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("kdtree index \"%s\" on %lld rows needs %zu MB to build; maintenance_work_mem is %d MB",
						RelationGetRelationName(index), (long long) bs->load.n,
						need / (1024 * 1024) + 1, maintenance_work_mem / 1024),
				 errdetail("The build holds every row's projection on %u dimensions, about %zu bytes a row.",
						   m, need / Max(1, bs->load.n)),
				 errhint("Raise maintenance_work_mem, or project on fewer dimensions (WITH (dims = ...)).")));
}

/* Projects every vector of the store (slots 0..n-1) into proj (n x m) and resid (n). */
static void
project_all(Relation index, KdtreeBuildState *bs, const KdPca *pca, float *proj, float *resid)
{
	ImgsStoreReader reader;
	uint32		group_slots = imgs_group_slots(&bs->load.header.store);
	ImgsSlotHeader *headers = palloc(sizeof(ImgsSlotHeader) * group_slots);
	float	   *vectors = MemoryContextAllocHuge(CurrentMemoryContext,
												 sizeof(float) * (Size) bs->load.dim * group_slots);
	uint32		ngroups;

	imgs_store_open(&reader, index, &kdtree_am, &bs->load.header);
	ngroups = imgs_store_ngroups(&bs->load.header.store);
	for (uint32 g = 0; g < ngroups; g++)
	{
		uint32		first = g * group_slots;
		uint32		n = Min(group_slots, (uint32) bs->load.n - first);

		imgs_store_read_vectors(&reader, g, n, headers, vectors);
		CHECK_FOR_INTERRUPTS();
		for (uint32 j = 0; j < n; j++)
			if (kd_project(pca, vectors + (Size) j * bs->load.dim, proj + (Size) (first + j) * pca->m,
						   &resid[first + j]) < 0)
				ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	}
	imgs_store_close(&reader);
	pfree(vectors);
	pfree(headers);
}

/* An empty page image of kind. */
static void
page_start(PGAlignedBlock *buf, uint16 kind)
{
	imgs_page_init(buf->data, kind);
}

/* The entries of one leaf, for imgs_list_build. */
typedef struct LeafFill
{
	const KdTree *tree;
	const KdNode *node;
	const float *proj;
	const float *resid;
} LeafFill;

static void
fill_leaf_entry(uint32 i, char *entry, void *arg)
{
	LeafFill   *lf = (LeafFill *) arg;
	uint32		m = lf->tree->m;
	int64		id = lf->tree->perm[lf->node->begin + i];
	KdtreeEntry *e = (KdtreeEntry *) entry;

	/* ids are slots: the store gave slots 0..n-1 in load order */
	e->slot = (uint32) id;
	e->resid = lf->resid[id];
	memcpy(e->proj, lf->proj + (Size) id * m, sizeof(float) * m);
}

/* Writes the projection, the tree and the leaves; fills meta. */
static void
write_tree(Relation index, KdtreeBuildState *bs, const KdPca *pca, const KdTree *tree,
		   const float *proj, const float *resid, KdtreeMeta *meta)
{
	uint32		m = pca->m;
	Size		pca_floats = (Size) bs->load.dim + (Size) m * bs->load.dim;
	float	   *pca_data = palloc(sizeof(float) * pca_floats);
	uint32		per_dir_page = kdtree_leaves_per_page(m);
	Size		rec_size = kdtree_leaf_record_size(m);
	char	   *records = palloc0(rec_size * tree->n_leaves);
	PGAlignedBlock buf;

	meta->dims = m;
	meta->leaf_size = tree->leaf_size;
	meta->n_nodes = tree->n_nodes;
	meta->n_leaves = tree->n_leaves;
	meta->orth_err = pca->orth_err;
	meta->version = 0;
	meta->build_points = bs->load.n;

	/* the projection */
	memcpy(pca_data, pca->mean, sizeof(float) * bs->load.dim);
	memcpy(pca_data + bs->load.dim, pca->rows, sizeof(float) * (Size) m * bs->load.dim);
	meta->pca_pages = imgs_pages_for(pca_floats, IMGS_FLOATS_PER_PAGE);
	meta->pca_start = imgs_alloc_blocks(index, &bs->load.header, meta->pca_pages);
	imgs_build_write_floats(index, meta->pca_start, KDTREE_PAGE_PCA, pca_data, pca_floats);

	/* the nodes */
	meta->nodes_pages = imgs_pages_for(tree->n_nodes, KDTREE_NODES_PER_PAGE);
	meta->nodes_start = imgs_alloc_blocks(index, &bs->load.header, meta->nodes_pages);
	for (uint32 p = 0; p < meta->nodes_pages; p++)
	{
		KdtreeNodeDisk *disk = (KdtreeNodeDisk *) ImgsPageGetData(buf.data);
		uint32		first = p * KDTREE_NODES_PER_PAGE;

		page_start(&buf, KDTREE_PAGE_NODES);
		for (uint32 j = 0; j < KDTREE_NODES_PER_PAGE && first + j < (uint32) tree->n_nodes; j++)
		{
			const KdNode *node = &tree->nodes[first + j];

			disk[j].child[0] = node->child[0];
			disk[j].child[1] = node->child[1];
			disk[j].leaf = node->leaf;
			disk[j].split_dim = node->leaf >= 0 ? 0 : node->split_dim;
			disk[j].split_val = node->leaf >= 0 ? 0 : node->split_val;
		}
		imgs_build_write_page(index, meta->nodes_start + p, buf.data);
	}

	/* the leaves: the directory's blocks first, its records once the leaves' pages are known */
	meta->leafdir_pages = imgs_pages_for(tree->n_leaves, per_dir_page);
	meta->leafdir_start = imgs_alloc_blocks(index, &bs->load.header, meta->leafdir_pages);
	for (int32 leaf = 0; leaf < tree->n_leaves; leaf++)
	{
		const KdNode *node = &tree->nodes[tree->leaf_node[leaf]];
		KdtreeLeafRecord *rec = (KdtreeLeafRecord *) (records + leaf * rec_size);
		LeafFill	lf = {tree, node, proj, resid};

		CHECK_FOR_INTERRUPTS();
		rec->last_blkno = imgs_list_build(index, &bs->load.header, KDTREE_PAGE_LEAF, (uint32) leaf,
										  kdtree_entry_size(m), (uint32) node->count,
										  fill_leaf_entry, &lf);
		rec->r_min = node->r_min;
		rec->r_max = node->r_max;
		memcpy((char *) rec + sizeof(KdtreeLeafRecord), kd_node_lo(tree, tree->leaf_node[leaf]),
			   2 * sizeof(float) * m);
	}
	for (uint32 p = 0; p < meta->leafdir_pages; p++)
	{
		uint32		first = p * per_dir_page;
		uint32		n = Min(per_dir_page, (uint32) tree->n_leaves - first);

		page_start(&buf, KDTREE_PAGE_LEAFDIR);
		memcpy(ImgsPageGetData(buf.data), records + first * rec_size, n * rec_size);
		imgs_build_write_page(index, meta->leafdir_start + p, buf.data);
	}
	pfree(records);
	pfree(pca_data);
}

/*
 * What exact k = 30 searches for a few sampled vectors do, as fractions of
 * the vectors: exact distances computed and leaf entries read (into meta),
 * for the cost estimate.
 */
static void
measure_search(Relation index, KdtreeBuildState *bs, KdtreeMeta *meta)
{
	KdtreeCache *cache = kdtree_get_cache(index, &bs->load.header, meta, true);
	ImgsStoreReader reader;
	int			queries = bs->n_cost_queries;
	double		keys_sum = 0;
	double		entries_sum = 0;
	MemoryContext query_ctx = AllocSetContextCreate(CurrentMemoryContext, "kdtree cost sample",
													ALLOCSET_DEFAULT_SIZES);

	imgs_store_open(&reader, index, &kdtree_am, &bs->load.header);
	for (int q = 0; q < queries; q++)
	{
		MemoryContext old_ctx = MemoryContextSwitchTo(query_ctx);
		const float *x = bs->cost_queries + (Size) q * bs->load.dim;
		ImgsKeyQuery keys = {0};
		KdtreeSearch ks;
		KdSearchStats stats;
		uint32		slot;
		double		key;
		ItemPointerData tid;

		keys.metric = bs->load.header.metric != 0 ? bs->load.header.metric : IMGS_METRIC_L2;
		keys.x = x;
		keys.norm_sq = imgs_norm_squared(x, bs->load.dim);
		kdtree_search_begin(&ks, index, cache, &reader, &keys, 0, 0);
		for (int k = 0; k < COST_K && kdtree_search_next(&ks, &slot, &key, &tid) == KDTREE_ROW; k++)
			;
		kdtree_search_stats(&ks, &stats);
		kdtree_search_end(&ks);
		keys_sum += (double) stats.keys_computed / (double) bs->load.n;
		entries_sum += (double) stats.entries_seen / (double) bs->load.n;
		MemoryContextSwitchTo(old_ctx);
		MemoryContextReset(query_ctx);
	}
	MemoryContextDelete(query_ctx);
	imgs_store_close(&reader);
	meta->keys_fraction = queries > 0 ? keys_sum / queries : 1.0;
	meta->entries_fraction = queries > 0 ? entries_sum / queries : 1.0;
}

/* Steps 2 and 3: PCA, projections, tree, pages. */
static void
build_tree(Relation index, KdtreeBuildState *bs, KdtreeMeta *meta)
{
	ImgsError	err;
	int			m = Min(bs->dims, bs->load.dim);
	KdPca	   *pca;
	KdTree	   *tree;
	float	   *proj;
	float	   *resid;

	check_tree_memory(index, bs, (uint32) m);
	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, KDTREE_PHASE_TRAIN);
	pca = kd_pca_train(bs->load.sample, bs->load.sample_count, bs->load.dim, m,
					   bs->load.header.metric == IMGS_METRIC_COSINE ? KD_METRIC_COSINE : KD_METRIC_L2,
					   BUILD_SEED, &err);
	if (pca == NULL)
		imgs_raise_cxx_error_in(&err, psprintf("could not learn the projection of kdtree index \"%s\"",
											   RelationGetRelationName(index)));
	/* the sample's work is done but for a few cost queries: its memory goes to the tree */
	bs->n_cost_queries = (int) Min(COST_QUERIES, bs->load.sample_count);
	bs->cost_queries = palloc(sizeof(float) * bs->load.dim * Max(1, bs->n_cost_queries));
	for (int q = 0; q < bs->n_cost_queries; q++)
		memcpy(bs->cost_queries + (Size) q * bs->load.dim,
			   bs->load.sample + (Size) (q * (bs->load.sample_count / bs->n_cost_queries)) * bs->load.dim,
			   sizeof(float) * bs->load.dim);
	imgs_build_sample_free(&bs->load);
	PG_TRY();
	{
		pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, KDTREE_PHASE_TREE);
		proj = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * (Size) m * bs->load.n);
		resid = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * (Size) bs->load.n);
		project_all(index, bs, pca, proj, resid);
		tree = kd_tree_build(proj, resid, bs->load.n, m, bs->leaf_size, &err);
		if (tree == NULL)
			imgs_raise_cxx_error_in(&err, psprintf("could not build the tree of kdtree index \"%s\"",
												   RelationGetRelationName(index)));
		PG_TRY();
		{
			write_tree(index, bs, pca, tree, proj, resid, meta);
		}
		PG_FINALLY();
		{
			kd_tree_free(tree);
		}
		PG_END_TRY();
		pfree(proj);
		pfree(resid);
	}
	PG_FINALLY();
	{
		kd_pca_free(pca);
	}
	PG_END_TRY();
}

IndexBuildResult *
kdtree_build(Relation heap, Relation index, IndexInfo *index_info)
{
	KdtreeBuildState *bs;
	KdtreeMeta	meta;
	IndexBuildResult *result;
	double		heap_tuples;
	MemoryContext build_ctx;
	MemoryContext old_ctx;

	build_ctx = AllocSetContextCreate(CurrentMemoryContext, "kdtree build", ALLOCSET_DEFAULT_SIZES);
	old_ctx = MemoryContextSwitchTo(build_ctx);
	bs = palloc0(sizeof(KdtreeBuildState));
	kdtree_reloptions(index, &bs->dims, &bs->leaf_size);
	memset(&meta, 0, sizeof(meta));
	heap_tuples = imgs_build_load(&bs->load, heap, index, index_info, &kdtree_am, KDTREE_PHASE_LOAD,
								  SAMPLE_MAX_VECTORS,
								  Min(SAMPLE_MAX_BYTES, (Size) maintenance_work_mem * 1024 / 2),
								  BUILD_SEED);

	if (bs->load.n > 0)
		build_tree(index, bs, &meta);
	imgs_build_write_meta(index, &bs->load.header, &meta, sizeof(meta));
	if (bs->load.n > 0)
	{
		measure_search(index, bs, &meta);
		imgs_build_write_meta(index, &bs->load.header, &meta, sizeof(meta));
	}
	else
		ereport(NOTICE,
				(errmsg("kdtree index \"%s\" was built on no rows: it has no tree",
						RelationGetRelationName(index)),
				 errdetail("Its scans read every vector, as faissflat's do."),
				 errhint("REINDEX it once the table holds its data.")));

	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, KDTREE_PHASE_WAL);
	imgs_log_built_index(index);

	MemoryContextSwitchTo(old_ctx);
	result = palloc(sizeof(IndexBuildResult));
	result->heap_tuples = heap_tuples;
	result->index_tuples = bs->load.n;
	MemoryContextDelete(build_ctx);
	return result;
}

/* The init fork of an unlogged index: an empty metapage (index/index_am.h). */
void
kdtree_buildempty(Relation index)
{
	imgs_buildempty(index, &kdtree_am);
}
