/*
 * lsh.h — the lsh index method: locality-sensitive hashing by a learned
 * hash (each vector's nearest k-means centroid: its bucket) with a sign
 * sketch of each vector's residual, scanned with a table-lookup estimator
 * and re-ranked exactly from the vector store (lsh_core.h). Approximate:
 * a scan probes the buckets nearest the query (lsh.probes), re-ranks
 * entries in order of their estimate's lower bound (lsh.error_bound; at
 * most lsh.candidates of them; with lsh.error_bound = 0 the best
 * lsh.candidates estimates) and returns rows in exact order with their
 * exact distances; a consumer that wants more rows gets them from an exact
 * round (lsh_scan.c).
 *
 * Pages. Block 0 is the metapage: the shared header, then LshMeta. Then,
 * from the block allocator (index/index_meta.h), the store's groups and
 * these pages of lsh's own, written at build but the bucket pages inserts
 * add:
 *  - rotation pages: bits x dim floats (index/method_pages.h float array);
 *  - centroid pages: n_buckets x dim floats;
 *  - bucket directory pages: each bucket's newest page (a BlockNumber);
 *  - bucket pages: each bucket an entry list (index/method_pages.h) of
 *    LshEntry: slot, norm2, scale, cdot, sketch.
 *
 * Crash safety: an insert writes its entry in the store's commit record
 * (vector_store.h), so a slot is live exactly when its entry exists: the
 * bucket's newest page, or a new page linked to it plus the directory page
 * naming it. Vacuum's forget callback marks entries of dead slots dead in
 * place (index/method_pages.h). The hash never changes but by REINDEX.
 */
#ifndef LSH_H
#define LSH_H

#include "access/amapi.h"
#include "access/genam.h"
#include "nodes/execnodes.h"

#include "index/index_cache.h"
#include "index/index_check.h"
#include "index/method_pages.h"
#include "index/vector_store.h"
#include "lsh/lsh_core.h"

#define LSH_MAGIC		0x15A00001
#define LSH_VERSION		1

/* A scan's budget round returns the nearest 1/LSH_ROUND_SHARE of its
 * candidates, none from fewer than LSH_ROUND_MIN_ROWS (lsh_scan.c; the cost
 * estimate, lsh_handler.c, counts the same) */
#define LSH_ROUND_SHARE		4
#define LSH_ROUND_MIN_ROWS	16

/*
 * A bounded round (lsh.error_bound > 0) probes lsh.probes buckets, then
 * goes on, up to LSH_PROBE_GROWTH times as many, until LSH_PROBE_PATIENCE
 * buckets in a row held no entry whose lower bound is below the
 * LSH_PROBE_WATCH_ROWS-th least estimate so far (lsh_scan.c "Probing").
 */
#define LSH_PROBE_GROWTH		8
#define LSH_PROBE_PATIENCE		4
#define LSH_PROBE_WATCH_ROWS	30

extern const ImgsIndexAm lsh_am;

/* Page kinds of lsh's own */
#define LSH_PAGE_ROTATION	(IMGS_PAGE_METHOD_FIRST + 0)
#define LSH_PAGE_CENTROIDS	(IMGS_PAGE_METHOD_FIRST + 1)
#define LSH_PAGE_BUCKETDIR	(IMGS_PAGE_METHOD_FIRST + 2)
#define LSH_PAGE_BUCKET		(IMGS_PAGE_METHOD_FIRST + 3)

/* Reloption defaults (docs/methods.md "lsh"; bench/results/lsh.md) */
#define LSH_DEFAULT_BITS		0		/* 0: chosen at build (lsh_build.c choose_bits) */
#define LSH_AUTO_MAX_BITS		1024	/* the most bits the build chooses by itself */
#define LSH_AUTO_MIN_BITS		64		/* the fewest, however few the rows */
#define LSH_DEFAULT_BUCKETS		0		/* 0: sqrt(rows) at build */
/* GUC defaults */
#define LSH_DEFAULT_PROBES		32
#define LSH_DEFAULT_CANDIDATES	6000
/* eps0 of the sketch's error bound (lsh_core.h); 0: re-rank the best
 * lsh.candidates estimates, as before 0.3's error bound (lsh_scan.c) */
#define LSH_DEFAULT_ERROR_BOUND	2.5
#define LSH_MAX_ERROR_BOUND		100.0

/* The metapage's lsh data, after the shared header. */
typedef struct LshMeta
{
	uint32		bits;			/* sketch bits; 0: no hash (built empty) */
	uint32		n_buckets;
	uint64		version;		/* bumped when an insert links a new bucket page */
	uint64		build_points;	/* vectors hashed at build */
	BlockNumber rotation_start;
	uint32		rotation_pages;
	BlockNumber centroids_start;
	uint32		centroids_pages;
	BlockNumber bucketdir_start;
	uint32		bucketdir_pages;
	/*
	 * What the build's sample searches (imgs_sample_searches: LIMIT
	 * IMGS_SAMPLE_K from IMGS_SAMPLE_QUERIES midpoints of its sample) did in
	 * a bounded round, for the cost estimate: the mean buckets probed and
	 * exact keys computed, and the lsh.probes they ran with. All 0 where
	 * none ran (no hash, lsh.error_bound = 0 at build, or an index built
	 * before they were: the estimate's constants apply).
	 */
	float4		sample_buckets;
	float4		sample_keys;
	uint32		sample_probes;
} LshMeta;

#define LSH_BUCKETS_PER_DIR_PAGE	((uint32) (IMGS_PAGE_CAPACITY / sizeof(BlockNumber)))

/* An entry: slot (IMGS_NO_SLOT when dead), the estimator's floats (lsh_core.h), the sketch. */
typedef struct LshEntry
{
	uint32		slot;
	float4		norm2;
	float4		scale;
	float4		cdot;
	uint8		code[FLEXIBLE_ARRAY_MEMBER];
} LshEntry;

static inline Size
lsh_entry_size(uint32 bits)
{
	return offsetof(LshEntry, code) + (Size) lsh_code_bytes((int32) bits);
}

/* What a backend keeps of an index between statements (lsh_hash.c). */
typedef struct LshCache
{
	ImgsIndexCache base;		/* index/index_cache.h */
	LshMeta		meta;			/* as read; version: of bucket_last */
	LshModel	model;
	BlockNumber *bucket_last;	/* [n_buckets] newest page of each bucket */
} LshCache;

/* lsh_hash.c */
extern int	lsh_probes;
extern int	lsh_candidates;
extern double lsh_error_bound;
extern void lsh_read_meta(Relation index, ImgsIndexMeta *header, LshMeta *meta);
/*
 * The backend's copy of the index's hash, with the buckets' newest pages as
 * of meta->version. Valid until the next call, unless pinned.
 */
extern LshCache *lsh_get_cache(Relation index, const ImgsIndexMeta *header, const LshMeta *meta);
/* Reads the hash and the directory into cache, allocated in the current context (the check). */
extern void lsh_load(Relation index, const ImgsIndexMeta *header, const LshMeta *meta, LshCache *cache);

/* lsh_build.c */
extern IndexBuildResult *lsh_build(Relation heap, Relation index, IndexInfo *index_info);
extern void lsh_buildempty(Relation index);

/* lsh_insert.c */
extern bool lsh_insert(Relation index, Datum *values, bool *isnull,
					   ItemPointer heap_tid, Relation heap,
					   IndexUniqueCheck check_unique, bool index_unchanged,
					   IndexInfo *index_info);

/* lsh_scan.c */
extern IndexScanDesc lsh_beginscan(Relation index, int nkeys, int norderbys);
extern void lsh_rescan(IndexScanDesc scan, ScanKey keys, int nkeys,
					   ScanKey orderbys, int norderbys);
extern bool lsh_gettuple(IndexScanDesc scan, ScanDirection dir);
extern void lsh_endscan(IndexScanDesc scan);
extern void lsh_scan_tally(IndexScanDesc scan, void *arg);

/* lsh_vacuum.c */
extern IndexBulkDeleteResult *lsh_bulkdelete(IndexVacuumInfo *info, IndexBulkDeleteResult *stats,
											 IndexBulkDeleteCallback callback, void *callback_state);
extern IndexBulkDeleteResult *lsh_vacuumcleanup(IndexVacuumInfo *info, IndexBulkDeleteResult *stats);

/* lsh_check.c */
extern void lsh_check(Relation index, ImgsCheckedStore *store);

/* lsh_handler.c */
/* From _PG_init: reloptions, settings, and the method's registration. */
extern void lsh_init(void);
extern void lsh_reloptions(Relation index, int *bits, int *buckets);

/* Build phases reported in pg_stat_progress_create_index (after "initializing") */
#define LSH_PHASE_LOAD		2
#define LSH_PHASE_TRAIN		3
#define LSH_PHASE_HASH		4
#define LSH_PHASE_WAL		5

#endif							/* LSH_H */
