/*
 * kdtree.h — the k-d tree index method: exact k-NN by best-first search over
 * a k-d tree built on a PCA projection of the vectors (kdtree_core.h), with
 * the vectors themselves in the shared vector store (index/vector_store.h)
 * for the exact keys.
 *
 * Pages. Block 0 is the metapage: the shared header, then KdtreeMeta. Then,
 * from the block allocator (index/index_meta.h), the store's groups and
 * these pages of kdtree's own, all written at build but the leaf pages that
 * inserts add:
 *  - PCA pages: the mean (dim floats) then the m x dim rows of the
 *    projection, packed back to back over consecutive pages.
 *  - node pages: the tree's nodes (KdtreeNodeDisk, preorder, node 0 the
 *    root): children, split plane, leaf number. Never change after build:
 *    an insert descends by the split planes.
 *  - leaf directory pages: one KdtreeLeafRecord per leaf: its box over the
 *    projected coordinates, the range of residual norms, the block of its
 *    newest page. An insert grows its leaf's box; inner nodes' boxes are not
 *    stored: a reader computes them as the union of their children's.
 *  - leaf pages: the entries of one leaf (slot, residual norm, projected
 *    coordinates), an entry list of index/method_pages.h (newest page
 *    first; at build on consecutive blocks).
 *
 * Crash safety: an insert writes its entry and grows its leaf's record in
 * the store's commit record (vector_store.h), so a slot is live exactly when
 * its entry exists: two method pages, the leaf's newest page (or a new one,
 * which links to the old) and the leaf's directory page. Vacuum's forget
 * callback marks entries of dead slots dead (slot = IMGS_NO_SLOT) in place,
 * one page per record; their space is reclaimed by REINDEX. Boxes only grow.
 *
 * Search order and exactness: see kdtree_core.h. A scan reads the tree as
 * the metapage's version counter showed it at its start; an entry added to a
 * leaf later belongs to a transaction the scan cannot see, so a bound it
 * breaks does not matter (the core drops such a row if it comes out of
 * order).
 */
#ifndef KDTREE_H
#define KDTREE_H

#include "access/amapi.h"
#include "access/genam.h"
#include "nodes/execnodes.h"

#include "index/index_cache.h"
#include "index/index_check.h"
#include "index/method_pages.h"
#include "index/vector_store.h"
#include "kdtree/kdtree_core.h"

#define KDTREE_MAGIC		0x4BD7EE01
#define KDTREE_VERSION		1

extern const ImgsIndexAm kdtree_am;

/* Page kinds of kdtree's own */
#define KDTREE_PAGE_PCA		(IMGS_PAGE_METHOD_FIRST + 0)
#define KDTREE_PAGE_NODES	(IMGS_PAGE_METHOD_FIRST + 1)
#define KDTREE_PAGE_LEAFDIR (IMGS_PAGE_METHOD_FIRST + 2)
#define KDTREE_PAGE_LEAF	(IMGS_PAGE_METHOD_FIRST + 3)

/*
 * Reloption defaults and limits (docs/methods.md "kdtree"; bench/results/kdtree.md).
 * dims 32: on the demo features' spectrum (96% of the variance in 32
 * components) the tree opens the same leaves at 32, 48 or 64 dimensions (it
 * splits on the top ten or so), and the entries read cost half of 64's;
 * searches were faster (3.2-3.5 ms against 4.6 ms at 100k x 512) and the
 * index 1.11 times the vectors instead of 1.18.
 */
#define KDTREE_DEFAULT_DIMS			32
#define KDTREE_DEFAULT_LEAF_SIZE	128
#define KDTREE_MAX_LEAF_SIZE		10000

/* The metapage's kdtree data, after the shared header. */
typedef struct KdtreeMeta
{
	uint32		dims;			/* m, projected dimensions; 0: no tree (built empty) */
	uint32		leaf_size;		/* the build's */
	uint32		n_nodes;
	uint32		n_leaves;
	double		orth_err;		/* of the projection (kdtree_core.h) */
	uint64		version;		/* bumped by every insert into a leaf */
	uint64		build_points;	/* vectors in the tree at build */
	float8		keys_fraction;	/* of the vectors whose exact distance a k = 30 search
								 * computed, at build (a mean over a few searches) */
	float8		entries_fraction;	/* of the leaf entries it read */
	BlockNumber pca_start;		/* consecutive pages: mean, then rows */
	uint32		pca_pages;
	BlockNumber nodes_start;
	uint32		nodes_pages;
	BlockNumber leafdir_start;
	uint32		leafdir_pages;
} KdtreeMeta;

typedef struct KdtreeNodeDisk
{
	int32		child[2];		/* -1, -1 for a leaf */
	int32		leaf;			/* leaf number, or -1 */
	int32		split_dim;
	float4		split_val;		/* <= goes to child[0] */
} KdtreeNodeDisk;

#define KDTREE_NODES_PER_PAGE	((uint32) (IMGS_PAGE_CAPACITY / sizeof(KdtreeNodeDisk)))

/* A leaf's record; lo[m] and hi[m] follow it. */
typedef struct KdtreeLeafRecord
{
	BlockNumber last_blkno;		/* its newest page */
	float4		r_min;
	float4		r_max;
} KdtreeLeafRecord;

static inline Size
kdtree_leaf_record_size(uint32 m)
{
	return sizeof(KdtreeLeafRecord) + 2 * sizeof(float) * (Size) m;
}

static inline uint32
kdtree_leaves_per_page(uint32 m)
{
	return (uint32) (IMGS_PAGE_CAPACITY / kdtree_leaf_record_size(m));
}

/* An entry: slot (IMGS_NO_SLOT when dead), residual norm, then m coordinates. */
typedef struct KdtreeEntry
{
	uint32		slot;
	float4		resid;
	float4		proj[FLEXIBLE_ARRAY_MEMBER];
} KdtreeEntry;

static inline Size
kdtree_entry_size(uint32 m)
{
	return offsetof(KdtreeEntry, proj) + sizeof(float) * (Size) m;
}

static inline KdtreeEntry *
kdtree_page_entry(Page page, uint32 m, uint32 i)
{
	return (KdtreeEntry *) imgs_list_entry(page, kdtree_entry_size(m), i);
}

/*
 * What a backend keeps of an index between statements (kdtree_tree.c): the
 * projection and the tree, with the leaves' boxes as of `version`.
 */
typedef struct KdtreeCache
{
	ImgsIndexCache base;		/* index/index_cache.h */
	KdtreeMeta	meta;			/* as the tree was read; version: of the boxes */
	bool		boxes_valid;
	int			dim;
	int			metric;
	KdPca		pca;
	KdTree		tree;			/* nodes and boxes; no perm */
	BlockNumber *leaf_last;		/* [n_leaves] newest page of each leaf */
} KdtreeCache;

/* kdtree_tree.c */
extern int	kdtree_max_leaves;
extern void kdtree_read_meta(Relation index, ImgsIndexMeta *header, KdtreeMeta *meta);
/* Reads the projection and the tree into cache, allocated in the current context. */
extern void kdtree_load(Relation index, const ImgsIndexMeta *header, const KdtreeMeta *meta,
						KdtreeCache *cache);
/*
 * The backend's copy of the index's tree, its boxes read again if need_boxes
 * and an insert changed them. Valid until the next call, unless pinned.
 */
extern KdtreeCache *kdtree_get_cache(Relation index, const ImgsIndexMeta *header,
									 const KdtreeMeta *meta, bool need_boxes);
extern void kdtree_project(const KdtreeCache *cache, const float *x, float *y, float *resid);
extern int32 kdtree_descend(const KdtreeCache *cache, const float *y);

/*
 * The search driver a scan and the build's cost sample share: best-first
 * over the cached tree, leaves read from their pages, exact keys from the
 * store. kdtree_search_next returns the next row in (key, slot) order, or
 * KDTREE_GAVE_UP once the exact distances it computed exceed work_limit (in
 * units of one distance of a flat scan: an exact distance read out of order
 * costs KDTREE_KEY_WORK; 0: no limit), so that a scan can finish with a flat
 * pass where the bounds do not prune. (A leaf entry costs about
 * KDTREE_ENTRY_WORK m / dim: for the cost estimate.)
 */
#define KDTREE_KEY_WORK		12.0
#define KDTREE_ENTRY_WORK	2.5
/* An exact scan's work limit, in flat scans (kdtree_scan.c). */
#define KDTREE_FLAT_FALLBACK	0.1

/* Whether the build's sample searches passed that limit: exact scans are flat. */
static inline bool
kdtree_tree_useless(const KdtreeMeta *meta)
{
	return KDTREE_KEY_WORK * meta->keys_fraction > KDTREE_FLAT_FALLBACK;
}

typedef enum KdtreeNext
{
	KDTREE_DONE,
	KDTREE_ROW,
	KDTREE_GAVE_UP
} KdtreeNext;

typedef struct KdtreeSearch
{
	Relation	index;
	const KdtreeCache *cache;
	ImgsStoreReader *store;
	const ImgsKeyQuery *keys;
	KdSearch   *core;
	MemoryContextCallback free_core;	/* ends core with the caller's context */
	struct HTAB *tids;			/* slot -> heap TID of slots with keys, not yet emitted */
	double		work_limit;
	/* one exact key at a time (key_batch 1: the core asks for the fewest) */
	uint32		key_slot;
	double		key_value;
	ImgsSlotHeader key_header;
} KdtreeSearch;

/*
 * A search for keys (its keys and the core's bounds: a plain query's, or,
 * for several examples, the best score, searched from every positive with
 * kd_search_begin_many).
 */
extern void kdtree_search_begin(KdtreeSearch *ks, Relation index, const KdtreeCache *cache,
								ImgsStoreReader *store, const ImgsKeyQuery *keys, int max_leaves,
								double work_limit);
extern KdtreeNext kdtree_search_next(KdtreeSearch *ks, uint32 *slot, double *key, ItemPointer tid);
extern void kdtree_search_stats(const KdtreeSearch *ks, KdSearchStats *stats);
extern void kdtree_search_end(KdtreeSearch *ks);

/* kdtree_build.c */
extern IndexBuildResult *kdtree_build(Relation heap, Relation index, IndexInfo *index_info);
extern void kdtree_buildempty(Relation index);

/* kdtree_insert.c */
extern bool kdtree_insert(Relation index, Datum *values, bool *isnull,
						  ItemPointer heap_tid, Relation heap,
						  IndexUniqueCheck check_unique, bool index_unchanged,
						  IndexInfo *index_info);

/* kdtree_scan.c */
extern IndexScanDesc kdtree_beginscan(Relation index, int nkeys, int norderbys);
extern void kdtree_rescan(IndexScanDesc scan, ScanKey keys, int nkeys,
						  ScanKey orderbys, int norderbys);
extern bool kdtree_gettuple(IndexScanDesc scan, ScanDirection dir);
extern void kdtree_endscan(IndexScanDesc scan);

/* kdtree_vacuum.c */
extern IndexBulkDeleteResult *kdtree_bulkdelete(IndexVacuumInfo *info,
												IndexBulkDeleteResult *stats,
												IndexBulkDeleteCallback callback,
												void *callback_state);
extern IndexBulkDeleteResult *kdtree_vacuumcleanup(IndexVacuumInfo *info,
												   IndexBulkDeleteResult *stats);

/* kdtree_check.c */
extern void kdtree_check(Relation index, ImgsCheckedStore *store);

/* kdtree_handler.c */
/* From _PG_init: reloptions, settings, and the method's registration. */
extern void kdtree_init(void);
/* The build's options: the index's, or the defaults. */
extern void kdtree_reloptions(Relation index, int *dims, int *leaf_size);

/* Build phases reported in pg_stat_progress_create_index (after "initializing") */
#define KDTREE_PHASE_LOAD		2
#define KDTREE_PHASE_TRAIN		3
#define KDTREE_PHASE_TREE		4
#define KDTREE_PHASE_WAL		5

#endif							/* KDTREE_H */
