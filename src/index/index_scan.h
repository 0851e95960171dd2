/*
 * index_scan.h — what the imgsearch index scans share: the ORDER BY query
 * and a bounded heap of candidates.
 *
 * Every imgsearch operator class has an ORDER BY operator whose strategy
 * number names the metric (IMGS_METRIC_* of distance_core.h), so a scan
 * learns its metric from its ORDER BY key; the L2 and cosine classes also
 * order by the best score of several examples (strategies 6 and 7, the
 * metric by imgs_strategy_metric). A scan ranks slots by the
 * metric's key (imgs_keys_many), computed by the same kernels as the SQL
 * operators, so that index and sequential scan agree to the bit. Keys order
 * like the operator values; NaN sorts after every number, as in PostgreSQL;
 * equal keys order by slot, so the order is total.
 *
 * The AM interface part is shared too (ImgsScanState): a method's ambeginscan,
 * amrescan and first amgettuple call imgs_scan_begin, imgs_scan_rescan and
 * imgs_scan_start; its amgettuple then only produces rows in (key, slot)
 * order and hands each to imgs_scan_return, which fills the ORDER BY value,
 * the recheck flags and the heap TID, and remembers the row, so that a method
 * that must look again (a later pass, a wider search) continues after it with
 * imgs_scan_after_last.
 *
 * Range scans. The sphere operators <<->> (strategy 4) and <<=>> (5) are
 * search operators (WHERE feat <<->> imgsearch_sphere(q, r): type/sphere.h).
 * A scan with such a key is exact whatever the budget GUCs say
 * (ImgsScanState.exact), and is driven by an ORDER BY query as usual:
 *  - without ORDER BY, by the sphere's centre in the sphere's metric;
 *  - with an ORDER BY whose query and metric are the sphere's, by it.
 * Either way the rows come in non-decreasing distance from the centre, so
 * the scan ends at the first row beyond the radius (imgs_scan_return says
 * so), after reading about the rows in range, not the table. With an ORDER
 * BY on another query (or metric), or several spheres, the ORDER BY scan
 * runs exactly and in full, and the executor rechecks the spheres
 * (xs_recheck): correct, not faster than a sequential scan. Where the scan
 * ends at the radius, the operator's own kernels decided, so xs_recheck is
 * false.
 */
#ifndef IMGS_INDEX_SCAN_H
#define IMGS_INDEX_SCAN_H

#include <math.h>

#include "access/relscan.h"

#include "index/distance_core.h"
#include "index/index_meta.h"
#include "index/vector_store.h"

#define IMGS_STRATEGY_L2		IMGS_METRIC_L2		/* <-> */
#define IMGS_STRATEGY_COSINE	IMGS_METRIC_COSINE	/* <=> */
#define IMGS_STRATEGY_IP		IMGS_METRIC_IP		/* <#> */
#define IMGS_STRATEGY_L2_SPHERE		4	/* <<->> imgsearch_sphere */
#define IMGS_STRATEGY_COSINE_SPHERE	5	/* <<=>> imgsearch_sphere */
#define IMGS_STRATEGY_L2_EXAMPLES		6	/* imgfeat <-> imgexamples: best score */
#define IMGS_STRATEGY_COSINE_EXAMPLES	7	/* imgfeat <=> imgexamples */
#define IMGS_NUM_STRATEGIES		7

/* A sphere strategy's metric (an ORDER BY strategy's: imgs_strategy_metric) */
#define IMGS_SPHERE_METRIC(strategy)	((strategy) - IMGS_STRATEGY_L2_SPHERE + IMGS_METRIC_L2)

/* Whether strategy orders by the best score of several examples (type/imgexamples.h). */
static inline bool
imgs_strategy_is_examples(int strategy)
{
	return strategy == IMGS_STRATEGY_L2_EXAMPLES || strategy == IMGS_STRATEGY_COSINE_EXAMPLES;
}

/* The metric (IMGS_METRIC_*) of an ORDER BY strategy. */
static inline int
imgs_strategy_metric(int strategy)
{
	if (strategy == IMGS_STRATEGY_L2_EXAMPLES)
		return IMGS_METRIC_L2;
	if (strategy == IMGS_STRATEGY_COSINE_EXAMPLES)
		return IMGS_METRIC_COSINE;
	return strategy;
}

/*
 * The query of an ORDER BY scan, detoasted and copied. For several examples
 * (keys.n_pos > 0) the scan's keys are the scores themselves (ORDER BY
 * values: for L2 the distance, not its square), and a method's lower bound
 * of them is its least bound over the positives, as a value.
 */
typedef struct ImgsQuery
{
	int			strategy;		/* IMGS_STRATEGY_* */
	bool		isnull;			/* ORDER BY col <op> NULL: every distance is NULL */
	int			dim;
	ImgsKeyQuery keys;			/* what the kernels compute; keys.x is the vector */
} ImgsQuery;

/* The query vectors a method searches from: the positives of several examples, else x alone. */
static inline int
imgs_query_points(const ImgsQuery *query)
{
	return query->keys.n_pos > 0 ? query->keys.n_pos : 1;
}

static inline const float *
imgs_query_point(const ImgsQuery *query, int i)
{
	return query->keys.n_pos > 0 ? query->keys.examples + (size_t) i * query->dim : query->keys.x;
}

/* Reads the ORDER BY key of scan into query, allocated in the current context. */
extern void imgs_query_init(ImgsQuery *query, IndexScanDesc scan);

/* Errors (22000) unless a vector of dim fits an index of index_dim (0: any). */
extern void imgs_check_dim(Relation index, uint32 index_dim, int dim);

/* Errors (22000) unless the query has the index's dimension. */
extern void imgs_query_check_dim(const ImgsQuery *query, Relation index, uint32 index_dim);

/* What imgs_store_read_group computes for the query: NULL for a NULL query. */
static inline const ImgsKeyQuery *
imgs_query_keys(const ImgsQuery *query)
{
	return query->isnull ? NULL : &query->keys;
}

/* The ORDER BY value (the operator's result) of a key. */
static inline double
imgs_query_value(const ImgsQuery *query, double key)
{
	/* an examples score is a value already */
	return query->strategy == IMGS_STRATEGY_L2 ? sqrt(key) : key;
}

/* (key_a, slot_a) < (key_b, slot_b), with NaN after every number. */
static inline bool
imgs_key_less(double key_a, uint32 slot_a, double key_b, uint32 slot_b)
{
	if (key_a < key_b)
		return true;
	if (key_a > key_b)
		return false;
	if (isnan(key_a) != isnan(key_b))
		return isnan(key_b);
	return slot_a < slot_b;
}

/* The state every imgsearch index scan keeps. */
typedef struct ImgsScanState
{
	ImgsQuery	query;
	bool		has_last;		/* a row was returned since the last rescan */
	double		last_key;		/* its key */
	uint32		last_slot;		/* its slot */
	int64		returned;		/* rows returned since the last rescan */
	bool		recheck_orderby;	/* the keys are lower bounds (xs_recheckorderby) */
	/* range quals (see "Range scans" above) */
	bool		exact;			/* a sphere qual: budgets are ignored */
	bool		has_bound;		/* the scan ends at the first row whose value exceeds bound */
	double		bound;
	bool		recheck;		/* the executor rechecks the spheres (xs_recheck) */
	bool		done;			/* past the bound, or a NULL sphere: no more rows */
	int			nspheres;
	ImgsQuery  *spheres;		/* their centres, for the dimension check */
} ImgsScanState;

/*
 * A build's sample searches, for its cost estimate (lsh, faissflat): for
 * each of the nqueries vectors a LIMIT k search (ORDER BY the index's
 * metric) of the index the build has just written, through the method's
 * own scan, at the session's settings; tally(scan, arg) reads what each
 * scan did before it ends. They do not count as scans of the index
 * (idx_scan). IMGS_SAMPLE_QUERIES searches of LIMIT IMGS_SAMPLE_K are what
 * the methods run (the queries: imgs_build_sample_queries, build_load.h).
 */
#define IMGS_SAMPLE_QUERIES	16
#define IMGS_SAMPLE_K		30
typedef void (*ImgsSampleTally) (IndexScanDesc scan, void *arg);
extern void imgs_sample_searches(Relation index, int metric, const float *queries, int nqueries,
								 int dim, int k, ImgsSampleTally tally, void *arg);

/* ambeginscan: RelationGetIndexScan plus the ORDER BY value arrays (the AM provides them, as GiST does). */
extern IndexScanDesc imgs_scan_begin(Relation index, int nkeys, int norderbys);

/*
 * amrescan: takes the new scan keys (spheres) and ORDER BY key (at most one,
 * on the indexed column; one is needed without a sphere: the cost estimate
 * makes every other path prohibitive), reads the query that drives the scan
 * into ss->query in the current memory context and forgets the last row.
 */
extern void imgs_scan_rescan(IndexScanDesc scan, ImgsScanState *ss, ScanKey keys,
							 ScanKey orderbys, const char *amname);

/*
 * The first amgettuple after a rescan, with the metapage read: checks the
 * query's dimension and metric against the index, counts the scan.
 */
extern void imgs_scan_start(IndexScanDesc scan, ImgsScanState *ss, const ImgsIndexMeta *meta);

/* Whether (key, slot) ranks after the last row returned (every row does before the first). */
static inline bool
imgs_scan_after_last(const ImgsScanState *ss, double key, uint32 slot)
{
	return !ss->has_last || imgs_key_less(ss->last_key, ss->last_slot, key, slot);
}

/* Whether a row of key is within the scan's sphere bound (every row is without one). */
static inline bool
imgs_scan_within_bound(const ImgsScanState *ss, double key)
{
	return !ss->has_bound || imgs_query_value(&ss->query, key) <= ss->bound;
}

/*
 * amgettuple's output: row (key, slot, tid), which ranks after the last one
 * returned, or is a row no scan can see (a stale reference followed after
 * its slot was reused: the slot reuse rule of vector_store.h); such a row is
 * returned as it is but does not move the last row back. A NULL query
 * ignores key (the value is NULL). Returns false, and returns nothing, for
 * a row beyond the sphere bound: the scan is done (ss->done).
 */
extern bool imgs_scan_return(IndexScanDesc scan, ImgsScanState *ss, double key, uint32 slot,
							 ItemPointer tid);

typedef struct ImgsCandidate
{
	double		key;
	uint32		slot;
	ItemPointerData tid;
} ImgsCandidate;

/*
 * The best `capacity` candidates offered so far: a max-heap on (key, slot)
 * while filling, then sorted ascending by imgs_heap_sort.
 */
typedef struct ImgsCandidateHeap
{
	ImgsCandidate *items;
	int			capacity;
	int			count;
} ImgsCandidateHeap;

extern void imgs_heap_init(ImgsCandidateHeap *heap, int capacity);
extern void imgs_heap_free(ImgsCandidateHeap *heap);
extern void imgs_heap_push(ImgsCandidateHeap *heap, double key, uint32 slot, ItemPointer tid);
extern void imgs_heap_sort(ImgsCandidateHeap *heap);

/*
 * Rearranges items[0..n) so that items[0..k) are its k least by (key, slot),
 * items[k - 1] the greatest of them (0 < k <= n); the order within either
 * side is unspecified. O(n) on average (a quickselect that sorts a range
 * whose partitions go badly).
 */
extern void imgs_select_least(ImgsCandidate *items, int64 n, int64 k);

/*
 * A growing min-heap on (key, slot) in items[0..*n) (the caller keeps room
 * for one more before a push): rows computed and not returned yet, the
 * least first.
 */
extern void imgs_min_heap_push(ImgsCandidate *items, int64 *n, double key, uint32 slot, ItemPointer tid);
extern ImgsCandidate imgs_min_heap_pop(ImgsCandidate *items, int64 *n);

/* Sorts items[0..n) ascending by (key, slot). */
extern void imgs_sort_candidates(ImgsCandidate *items, int64 n);

/* Keeps the candidate if it is among the best `capacity`; the common rejection inline. */
static inline void
imgs_heap_offer(ImgsCandidateHeap *heap, double key, uint32 slot, ItemPointer tid)
{
	if (heap->count == heap->capacity &&
		!imgs_key_less(key, slot, heap->items[0].key, heap->items[0].slot))
		return;
	imgs_heap_push(heap, key, slot, tid);
}

#endif							/* IMGS_INDEX_SCAN_H */
