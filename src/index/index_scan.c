/*
 * index_scan.c — the ORDER BY query and the candidate heap shared by the
 * imgsearch index scans (see index_scan.h).
 */
#include "postgres.h"

#include "access/amapi.h"
#include "access/skey.h"
#include "pgstat.h"
#include "utils/memutils.h"

#include "index/distance_core.h"
#include "index/index_scan.h"
#include "type/imgexamples.h"
#include "type/imgfeat.h"
#include "type/sphere.h"

/* query of metric for vector v (NULL: a NULL query), copied */
static void
query_set(ImgsQuery *query, int metric, const ImgFeat *v)
{
	memset(query, 0, sizeof(*query));
	query->strategy = metric;
	query->isnull = v == NULL;
	query->keys.metric = metric;
	if (v != NULL)
	{
		float	   *x = palloc(sizeof(float) * v->dim);

		memcpy(x, v->x, sizeof(float) * v->dim);
		query->dim = v->dim;
		query->keys.x = x;
		query->keys.norm_sq = imgs_norm_squared(x, v->dim);
	}
}

void
imgs_query_init(ImgsQuery *query, IndexScanDesc scan)
{
	ScanKey		key = &scan->orderByData[0];

	Assert(scan->numberOfOrderBys == 1);
	if (imgs_strategy_is_examples(key->sk_strategy) && !(key->sk_flags & SK_ISNULL))
	{
		ImgExamples *ex = DatumGetImgExamplesP(key->sk_argument);
		int			n = ex->n_pos + ex->n_neg;
		float	   *x;
		double	   *norms;

		imgexamples_check(ex);
		memset(query, 0, sizeof(*query));
		query->strategy = key->sk_strategy;
		query->keys.metric = imgs_strategy_metric(query->strategy);
		x = palloc(sizeof(float) * (Size) n * ex->dim);
		norms = palloc(sizeof(double) * n);
		memcpy(x, ex->x, sizeof(float) * (Size) n * ex->dim);
		for (int e = 0; e < n; e++)
			norms[e] = imgs_norm_squared(x + (Size) e * ex->dim, ex->dim);
		query->dim = ex->dim;
		query->keys.x = x;
		query->keys.norm_sq = norms[0];
		query->keys.n_pos = ex->n_pos;
		query->keys.n_neg = ex->n_neg;
		query->keys.examples = x;
		query->keys.examples_norm_sq = norms;
		return;
	}
	if (!imgs_strategy_is_examples(key->sk_strategy) &&
		(key->sk_strategy < IMGS_METRIC_L2 || key->sk_strategy > IMGS_METRIC_IP))
		elog(ERROR, "unexpected ORDER BY strategy %d", key->sk_strategy);
	query_set(query, imgs_strategy_metric(key->sk_strategy),
			  (key->sk_flags & SK_ISNULL) ? NULL : DatumGetImgFeatP(key->sk_argument));
	/* a NULL examples query keeps its strategy: its values are scores (imgs_query_value) */
	query->strategy = key->sk_strategy;
}

/* Whether two non-NULL queries are the same metric and vector, bit for bit. */
static bool
query_equal(const ImgsQuery *a, const ImgsQuery *b)
{
	return a->strategy == b->strategy && a->dim == b->dim &&
		memcmp(a->keys.x, b->keys.x, sizeof(float) * a->dim) == 0;
}

/*
 * Reads the sphere keys of scan into ss, and decides what drives the scan
 * (index_scan.h, "Range scans"). ss->query holds the ORDER BY query, if any.
 */
static void
spheres_init(IndexScanDesc scan, ImgsScanState *ss)
{
	const ImgsQuery *driver = NULL;
	double		radius = 0;

	ss->spheres = palloc0(sizeof(ImgsQuery) * Max(scan->numberOfKeys, 1));
	for (int i = 0; i < scan->numberOfKeys; i++)
	{
		ScanKey		key = &scan->keyData[i];
		ImgsSphere	sphere;

		if (key->sk_strategy != IMGS_STRATEGY_L2_SPHERE &&
			key->sk_strategy != IMGS_STRATEGY_COSINE_SPHERE)
			elog(ERROR, "unexpected search strategy %d", key->sk_strategy);
		ss->exact = true;
		/* a NULL sphere, centre or radius: the qual is NULL for every row */
		if ((key->sk_flags & SK_ISNULL) || !imgs_sphere_read(key->sk_argument, &sphere))
		{
			ss->done = true;
			continue;
		}
		query_set(&ss->spheres[ss->nspheres], IMGS_SPHERE_METRIC(key->sk_strategy), sphere.center);
		/* the first sphere that can drive the scan does */
		if (driver == NULL &&
			(scan->numberOfOrderBys == 0 ||
			 (!ss->query.isnull && query_equal(&ss->query, &ss->spheres[ss->nspheres]))))
		{
			driver = &ss->spheres[ss->nspheres];
			radius = sphere.radius;
		}
		ss->nspheres++;
	}
	if (ss->done)
		return;
	if (driver != NULL)
	{
		if (scan->numberOfOrderBys == 0)
			ss->query = *driver;
		ss->has_bound = true;
		ss->bound = radius;
	}
	ss->recheck = driver == NULL || ss->nspheres > 1;
}

void
imgs_check_dim(Relation index, uint32 index_dim, int dim)
{
	if (index_dim != 0 && (uint32) dim != index_dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("different imgfeat dimensions %u and %d", index_dim, dim),
				 errdetail("Index \"%s\" holds %u-dimensional vectors.",
						   RelationGetRelationName(index), index_dim)));
}

void
imgs_query_check_dim(const ImgsQuery *query, Relation index, uint32 index_dim)
{
	if (!query->isnull)
		imgs_check_dim(index, index_dim, query->dim);
}

/* a build's sample searches run (imgs_sample_searches): scans are not counted */
static bool sampling = false;

void
imgs_sample_searches(Relation index, int metric, const float *queries, int nqueries, int dim, int k,
					 ImgsSampleTally tally, void *arg)
{
	const IndexAmRoutine *am = index->rd_indam;
	MemoryContext query_ctx = AllocSetContextCreate(CurrentMemoryContext, "sample search",
													ALLOCSET_DEFAULT_SIZES);

	sampling = true;
	PG_TRY();
	{
		for (int q = 0; q < nqueries; q++)
		{
			MemoryContext old_ctx = MemoryContextSwitchTo(query_ctx);
			ImgFeat    *x = imgfeat_new(dim);
			IndexScanDesc scan = am->ambeginscan(index, 0, 1);
			ScanKeyData orderby;

			memcpy(x->x, queries + (Size) q * dim, sizeof(float) * dim);
			/* an ORDER BY strategy is its metric (IMGS_STRATEGY_L2 ...) */
			ScanKeyEntryInitialize(&orderby, SK_ORDER_BY, 1, (StrategyNumber) metric, InvalidOid,
								   InvalidOid, InvalidOid, PointerGetDatum(x));
			am->amrescan(scan, NULL, 0, &orderby, 1);
			for (int r = 0; r < k && am->amgettuple(scan, ForwardScanDirection); r++)
				CHECK_FOR_INTERRUPTS();
			tally(scan, arg);
			am->amendscan(scan);
			MemoryContextSwitchTo(old_ctx);
			MemoryContextReset(query_ctx);
		}
	}
	PG_FINALLY();
	{
		sampling = false;
	}
	PG_END_TRY();
	MemoryContextDelete(query_ctx);
}

IndexScanDesc
imgs_scan_begin(Relation index, int nkeys, int norderbys)
{
	IndexScanDesc scan = RelationGetIndexScan(index, nkeys, norderbys);

	scan->xs_orderbyvals = palloc0(sizeof(Datum) * Max(norderbys, 1));
	scan->xs_orderbynulls = palloc0(sizeof(bool) * Max(norderbys, 1));
	return scan;
}

void
imgs_scan_rescan(IndexScanDesc scan, ImgsScanState *ss, ScanKey keys, ScanKey orderbys,
				 const char *amname)
{
	if (scan->numberOfOrderBys > 1 || (scan->numberOfOrderBys == 0 && scan->numberOfKeys == 0))
		elog(ERROR, "%s index scans need an ORDER BY or a sphere on the indexed column", amname);
	if (keys && scan->numberOfKeys > 0)
		memmove(scan->keyData, keys, scan->numberOfKeys * sizeof(ScanKeyData));
	if (orderbys && scan->numberOfOrderBys > 0)
		memmove(scan->orderByData, orderbys, scan->numberOfOrderBys * sizeof(ScanKeyData));
	memset(ss, 0, sizeof(*ss));
	if (scan->numberOfOrderBys == 1)
		imgs_query_init(&ss->query, scan);
	if (scan->numberOfKeys > 0)
		spheres_init(scan, ss);
}

void
imgs_scan_start(IndexScanDesc scan, ImgsScanState *ss, const ImgsIndexMeta *meta)
{
	imgs_query_check_dim(&ss->query, scan->indexRelation, meta->store.dim);
	for (int i = 0; i < ss->nspheres; i++)
		imgs_query_check_dim(&ss->spheres[i], scan->indexRelation, meta->store.dim);
	imgs_meta_check_metric(scan->indexRelation, meta, imgs_strategy_metric(ss->query.strategy));
	if (!sampling)
		pgstat_count_index_scan(scan->indexRelation);
}

bool
imgs_scan_return(IndexScanDesc scan, ImgsScanState *ss, double key, uint32 slot, ItemPointer tid)
{
	if (ss->query.isnull)
		key = 0;
	else if (!imgs_scan_within_bound(ss, key))
	{
		/* rows come in non-decreasing distance from the centre: none is left */
		ss->done = true;
		return false;
	}
	/* the last row only moves forward (see the header) */
	if (imgs_scan_after_last(ss, key, slot))
	{
		ss->has_last = true;
		ss->last_key = key;
		ss->last_slot = slot;
	}
	ss->returned++;
	scan->xs_heaptid = *tid;
	scan->xs_recheck = ss->recheck;
	scan->xs_recheckorderby = ss->recheck_orderby;
	scan->xs_orderbynulls[0] = ss->query.isnull;
	scan->xs_orderbyvals[0] = ss->query.isnull ? (Datum) 0 :
		Float8GetDatum(imgs_query_value(&ss->query, key));
	return true;
}

void
imgs_heap_init(ImgsCandidateHeap *heap, int capacity)
{
	/* may exceed 1 GB when a query reads tens of millions of rows in order */
	heap->items = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(ImgsCandidate) * capacity);
	heap->capacity = capacity;
	heap->count = 0;
}

void
imgs_heap_free(ImgsCandidateHeap *heap)
{
	if (heap->items != NULL)
		pfree(heap->items);
	heap->items = NULL;
	heap->capacity = heap->count = 0;
}

static inline bool
candidate_less(const ImgsCandidate *a, const ImgsCandidate *b)
{
	return imgs_key_less(a->key, a->slot, b->key, b->slot);
}

/* Restores the max-heap property below position i of items[0..count). */
static void
sift_down(ImgsCandidate *items, int count, int i)
{
	ImgsCandidate moving = items[i];

	for (;;)
	{
		int			child = 2 * i + 1;

		if (child >= count)
			break;
		if (child + 1 < count && candidate_less(&items[child], &items[child + 1]))
			child++;
		if (!candidate_less(&moving, &items[child]))
			break;
		items[i] = items[child];
		i = child;
	}
	items[i] = moving;
}

void
imgs_heap_push(ImgsCandidateHeap *heap, double key, uint32 slot, ItemPointer tid)
{
	ImgsCandidate c;
	int			i;

	c.key = key;
	c.slot = slot;
	c.tid = *tid;
	if (heap->count == heap->capacity)
	{
		/* replaces the worst, which the caller has checked is worse than c */
		heap->items[0] = c;
		sift_down(heap->items, heap->count, 0);
		return;
	}
	/* sift up */
	for (i = heap->count++; i > 0; i = (i - 1) / 2)
	{
		int			parent = (i - 1) / 2;

		if (!candidate_less(&heap->items[parent], &c))
			break;
		heap->items[i] = heap->items[parent];
	}
	heap->items[i] = c;
}

void
imgs_heap_sort(ImgsCandidateHeap *heap)
{
	/* heapsort's second half: move the maximum to the end, repeatedly */
	for (int end = heap->count - 1; end > 0; end--)
	{
		ImgsCandidate top = heap->items[0];

		heap->items[0] = heap->items[end];
		heap->items[end] = top;
		sift_down(heap->items, end, 0);
	}
}

static int
candidate_cmp(const void *a, const void *b)
{
	const ImgsCandidate *x = (const ImgsCandidate *) a;
	const ImgsCandidate *y = (const ImgsCandidate *) b;

	if (candidate_less(x, y))
		return -1;
	return candidate_less(y, x) ? 1 : 0;
}

void
imgs_sort_candidates(ImgsCandidate *items, int64 n)
{
	qsort(items, n, sizeof(ImgsCandidate), candidate_cmp);
}

static inline void
swap_candidates(ImgsCandidate *a, ImgsCandidate *b)
{
	ImgsCandidate t = *a;

	*a = *b;
	*b = t;
}

void
imgs_select_least(ImgsCandidate *items, int64 n, int64 k)
{
	int64		lo = 0;
	int64		hi = n - 1;		/* the k-th least lies in items[lo..hi] */
	int			bad = 0;

	Assert(k > 0 && k <= n);
	while (hi > lo)
	{
		int64		mid = lo + (hi - lo) / 2;
		int64		i,
					j;
		ImgsCandidate pivot;

		/* partitions that keep failing to halve the range: sort it instead */
		if (bad > 8)
		{
			imgs_sort_candidates(items + lo, hi - lo + 1);
			return;
		}
		/* median of three, left in items[lo] */
		if (candidate_less(&items[mid], &items[lo]))
			swap_candidates(&items[mid], &items[lo]);
		if (candidate_less(&items[hi], &items[lo]))
			swap_candidates(&items[hi], &items[lo]);
		if (candidate_less(&items[hi], &items[mid]))
			swap_candidates(&items[hi], &items[mid]);
		swap_candidates(&items[lo], &items[mid]);
		pivot = items[lo];
		/* Hoare's partition: items[lo..j] <= pivot <= items[j+1..hi] */
		i = lo;
		j = hi + 1;
		for (;;)
		{
			do
				i++;
			while (i <= hi && candidate_less(&items[i], &pivot));
			do
				j--;
			while (candidate_less(&pivot, &items[j]));
			if (i >= j)
				break;
			swap_candidates(&items[i], &items[j]);
		}
		swap_candidates(&items[lo], &items[j]);
		/* the pivot is at j, in its sorted place */
		if ((j - lo) * 4 > (hi - lo + 1) * 3 || (hi - j) * 4 > (hi - lo + 1) * 3)
			bad++;
		if (j == k - 1)
			return;
		if (j < k - 1)
			lo = j + 1;
		else
			hi = j - 1;
	}
}

void
imgs_min_heap_push(ImgsCandidate *items, int64 *n, double key, uint32 slot, ItemPointer tid)
{
	int64		i = (*n)++;

	while (i > 0)
	{
		int64		parent = (i - 1) / 2;

		if (!imgs_key_less(key, slot, items[parent].key, items[parent].slot))
			break;
		items[i] = items[parent];
		i = parent;
	}
	items[i].key = key;
	items[i].slot = slot;
	items[i].tid = *tid;
}

ImgsCandidate
imgs_min_heap_pop(ImgsCandidate *items, int64 *n)
{
	ImgsCandidate top = items[0];
	ImgsCandidate last = items[--(*n)];
	int64		count = *n;
	int64		i = 0;

	for (;;)
	{
		int64		child = 2 * i + 1;

		if (child >= count)
			break;
		if (child + 1 < count && candidate_less(&items[child + 1], &items[child]))
			child++;
		if (!candidate_less(&items[child], &last))
			break;
		items[i] = items[child];
		i = child;
	}
	if (count > 0)
		items[i] = last;
	return top;
}
