/*
 * faissflat.h — the exact index method: every vector in a vector store
 * (index/vector_store.h) with an 8-bit code of its principal components;
 * a scan filters by the codes' lower bounds and refines exactly.
 *
 * Pages: block 0 is the metapage (the shared header of index/index_meta.h,
 * then FaissflatMeta), then the vector store's groups (one page of slot
 * headers, then the vectors) and, past 512 groups, its directory pages; and
 * faissflat's own, written at build (L2 and cosine indexes built on rows):
 *  - PCA pages: the mean (dim floats) then the m x dim rows of the
 *    projection (kdtree_core.h's PCA), packed over consecutive pages;
 *  - range pages: each projected dimension's range, m floats lo then m
 *    floats delta (faissflat_core.h);
 *  - code pages: one entry list (index/method_pages.h) of FaissflatEntry:
 *    each live slot's SQ8 code, its error and squared norm, the residual
 *    norm and magnitude. An insert appends its entry in the store's commit
 *    record, so a slot is live exactly when its entry exists; vacuum's forget callback marks dead slots' entries
 *    dead in place (REINDEX reclaims them).
 * The scan (faissflat_scan.c) filters by the codes' lower bounds and
 * computes exact keys with the SIMD kernels of index/distance_core, the same
 * ones the SQL operators use, only for the vectors that may come next; so
 * the index returns exactly the rows, order and distances of a sequential
 * scan and sort. Without codes (an index built on no rows, the inner
 * product, several examples, a NULL query, faissflat.codes off) the scan
 * streams every vector (index/flat_scan.h).
 */
#ifndef FAISSFLAT_H
#define FAISSFLAT_H

#include "access/amapi.h"
#include "access/genam.h"
#include "nodes/execnodes.h"

#include "index/index_cache.h"
#include "index/index_check.h"
#include "index/method_pages.h"
#include "index/vector_store.h"
#include "faissflat/faissflat_core.h"
#include "kdtree/kdtree_core.h"

#define FAISSFLAT_MAGIC		0xFA155F1A
/*
 * 1: groups at fixed block numbers (first_block + group * group_pages).
 * 2: the shared header (index_meta.h): block allocator, group directory, metric.
 * 3: the codes (FaissflatMeta, PCA, range and code pages). A version 2
 *    index fails every path with 55000 and a hint to REINDEX (index_meta.h).
 */
#define FAISSFLAT_VERSION	3

/* Page kinds of faissflat's own */
#define FAISSFLAT_PAGE_PCA		(IMGS_PAGE_METHOD_FIRST + 0)
#define FAISSFLAT_PAGE_RANGES	(IMGS_PAGE_METHOD_FIRST + 1)
#define FAISSFLAT_PAGE_CODES	(IMGS_PAGE_METHOD_FIRST + 2)

/*
 * Coded dimensions (principal components), at most: every dimension of a
 * 512-d vector. Fewer leave a residual the bound cannot see into
 * (bench/results/faissflat_sq8.md: 256 of 512 leave every entry of the hard
 * set within the 30th distance).
 */
#define FAISSFLAT_CODE_DIMS		KD_MAX_PCA_DIMS

/* The metapage's faissflat data, after the shared header. */
typedef struct FaissflatMeta
{
	uint32		dims;			/* m, coded dimensions; 0: no codes */
	uint32		forgets;		/* bumped by vacuum before and after it marks entries dead */
	double		orth_err;		/* of the projection (kdtree_core.h) */
	BlockNumber pca_start;		/* consecutive pages: mean, then rows */
	uint32		pca_pages;
	BlockNumber ranges_start;	/* consecutive pages: m lo, then m delta */
	uint32		ranges_pages;
	BlockNumber codes_last;		/* the code list's newest page */
	uint32		sample_flags;	/* FAISSFLAT_SAMPLED_*: which sample_* below were measured */
	/*
	 * What the build's sample searches (imgs_sample_searches: LIMIT
	 * IMGS_SAMPLE_K from IMGS_SAMPLE_QUERIES midpoints of its sample) did,
	 * for the cost estimate: the mean exact keys computed, and the share of
	 * the searches that went on with flat passes (the codes pruned too
	 * little: wide vectors, flat spectra). Both 0 where none ran (no codes,
	 * faissflat.codes off at build, or an index built before they were).
	 */
	float4		sample_keys;
	float4		sample_flat;
	/*
	 * And, where they ran the staged pass (sample_flags has
	 * FAISSFLAT_SAMPLED_HEAD; faissflat_core.h, steps 6-8), the mean share
	 * of the entries whose first-cut bound left them within reach: above
	 * FAISSFLAT_STAGED_MAX_SHARE, scans take one pass over the whole codes
	 * (the staged pass would read them all after its first). Not measured
	 * (an index built before this, or with faissflat.staged off): one pass
	 * too, as before, until REINDEX.
	 */
	float4		sample_head;
} FaissflatMeta;

#define FAISSFLAT_SAMPLED_HEAD		0x1
#define FAISSFLAT_STAGED_MAX_SHARE	(1.0 / FF_DENSE_SHARE)

/*
 * An entry: slot (IMGS_NO_SLOT when dead), residual norm, magnitude, the
 * code's error and squared norm (ff_encode), then the code: m bytes and
 * zeros up to ff_code_stride(m), as the kernels read it in place.
 */
typedef struct FaissflatEntry
{
	uint32		slot;
	float4		resid;
	float4		mag;			/* ff_magnitude: >= |y| + resid */
	float4		err;			/* >= |y - yh| */
	float4		yh2;			/* <= |yh|^2 */
	uint8		code[FLEXIBLE_ARRAY_MEMBER];
} FaissflatEntry;

static inline Size
faissflat_entry_size(uint32 m)
{
	return offsetof(FaissflatEntry, code) + ff_code_stride((int32) m);
}

/*
 * What a backend keeps of an index between statements: the projection and
 * the ranges, and (for scans) a copy of the code list's live entries, in
 * arrays (the codes packed ff_code_stride(m) bytes apart, as the kernel
 * streams them), as of the list's newest page, that page's entry count and
 * the metapage's forgets counter. An insert changes the first or the
 * second: a scan then copies the entries appended since (faissflat_get_cache;
 * a new copy if another scan of this backend still reads the arrays).
 * Vacuum changes the third (before it marks entries dead and again after,
 * before the slots are freed): a scan that finds it changed loads a new
 * copy, so it never follows an entry of a slot freed since the copy was
 * made (slot reuse rule 1 of vector_store.h).
 */
typedef struct FaissflatCache
{
	ImgsIndexCache base;		/* index/index_cache.h */
	FaissflatMeta meta;			/* as they were read */
	int			dim;
	KdPca		pca;			/* mean and rows point into the cache */
	float	   *ranges;			/* m lo, then m delta */
	/* the entries: valid when has_entries */
	bool		has_entries;
	BlockNumber entries_last;	/* the list's newest page when they were read */
	uint32		entries_last_count; /* its entry count then */
	uint32		entries_forgets;	/* the metapage's forgets then (or before) */
	int64		nentries;
	int64		capacity;		/* of the arrays */
	uint32	   *slots;
	float	   *resid;
	float	   *mag;
	float	   *err;
	float	   *yh2;
	uint8	   *codes;			/* nentries x ff_code_stride(m) */
	/*
	 * For the staged pass (faissflat_core.h, steps 6-8), when m has cuts:
	 * each code's first FF_CUT_FIRST bytes again, in blocks (ff_head_put:
	 * the first pass streams them alone), and each entry's norms at each cut.
	 */
	int			ncuts;			/* ff_cuts(m) */
	uint8	   *head;			/* ff_head_bytes(capacity) */
	float	   *cut_head2[FF_CUTS_MAX];
	float	   *cut_tail[FF_CUTS_MAX];
	float		max_mag;		/* the greatest entry magnitude (0 when none) */
	/*
	 * A scan's per-entry arrays (faissflat_scan.c), in cxt, kept from one
	 * scan to the next so that each query does not fault in fresh pages;
	 * one scan at a time uses them (scratch_busy), others allocate their own.
	 */
	void	   *scratch;
	bool		scratch_busy;
} FaissflatCache;

extern const ImgsIndexAm faissflat_am;

/* Build phases reported in pg_stat_progress_create_index (after "initializing") */
#define FAISSFLAT_PHASE_LOAD	2
#define FAISSFLAT_PHASE_WAL		3
#define FAISSFLAT_PHASE_CODES	4

/* faissflat_build.c */
extern IndexBuildResult *faissflat_build(Relation heap, Relation index, IndexInfo *index_info);
extern void faissflat_buildempty(Relation index);
extern void faissflat_read_meta(Relation index, ImgsIndexMeta *meta);
extern void faissflat_read_meta_codes(Relation index, ImgsIndexMeta *header, FaissflatMeta *meta);

/* faissflat_codes.c */
/*
 * The backend's cache of the index whose metapage said header and meta;
 * with entries, one whose entries are current (see FaissflatCache). The
 * caller pins it (imgs_cache_pin) if it may see an invalidation meanwhile.
 */
extern FaissflatCache *faissflat_get_cache(Relation index, const ImgsIndexMeta *header,
										   const FaissflatMeta *meta, bool entries);
/* Projects and codes x into entry (slot left to the caller). */
extern void faissflat_encode(const FaissflatCache *cache, const float *x, FaissflatEntry *entry);

/* faissflat_insert.c */
extern bool faissflat_insert(Relation index, Datum *values, bool *isnull,
							 ItemPointer heap_tid, Relation heap,
							 IndexUniqueCheck check_unique, bool index_unchanged,
							 IndexInfo *index_info);

/* faissflat_scan.c */
/* Entries of least a2 whose exact keys a codes scan computes first (its threshold) */
#define FAISSFLAT_SEED_KEYS			64
/* Exact keys computed before a codes scan turns into flat passes: at least, and per slot */
#define FAISSFLAT_FLAT_SWITCH_MIN	1024
#define FAISSFLAT_FLAT_SWITCH_SHARE	8
/* Fewer entries than this: the pass over the codes stays on the backend (a thread costs tens of microseconds) */
#define FAISSFLAT_THREADS_MIN_ENTRIES	65536
/* The threads a pass over n codes runs on: faissflat.scan_threads, at most the cores */
extern int	faissflat_pass_threads(int64 n);
/* The exact keys past which a codes scan of an index of nslots slots turns into flat passes */
extern int64 faissflat_flat_switch(int64 nslots);
extern IndexScanDesc faissflat_beginscan(Relation index, int nkeys, int norderbys);
extern void faissflat_rescan(IndexScanDesc scan, ScanKey keys, int nkeys,
							 ScanKey orderbys, int norderbys);
extern bool faissflat_gettuple(IndexScanDesc scan, ScanDirection dir);
extern void faissflat_endscan(IndexScanDesc scan);
extern void faissflat_scan_tally(IndexScanDesc scan, void *arg);

/* faissflat_vacuum.c */
extern IndexBulkDeleteResult *faissflat_bulkdelete(IndexVacuumInfo *info,
												   IndexBulkDeleteResult *stats,
												   IndexBulkDeleteCallback callback,
												   void *callback_state);
extern IndexBulkDeleteResult *faissflat_vacuumcleanup(IndexVacuumInfo *info,
													  IndexBulkDeleteResult *stats);

/* faissflat_check.c */
extern void faissflat_check(Relation index, ImgsCheckedStore *store);

/* faissflat_handler.c: from _PG_init, the method's registration and its setting. */
extern bool faissflat_codes;		/* faissflat.codes */
extern int	faissflat_scan_threads; /* faissflat.scan_threads */
extern int	faissflat_staged;	/* faissflat.staged */
#define FAISSFLAT_STAGED_AUTO	0
#define FAISSFLAT_STAGED_ON		1
#define FAISSFLAT_STAGED_OFF	2
/* Whether a codes scan of an index of that metapage takes the staged pass (faissflat.staged) */
extern bool faissflat_scan_staged(const FaissflatMeta *meta);
/* Set while a build's sample searches run: they take the staged pass, to measure it */
extern bool faissflat_staged_sampling;
extern void faissflat_init(void);

#endif							/* FAISSFLAT_H */
