/*
 * index_scan.c — the ORDER BY query and the candidate heap shared by the
 * imgsearch index scans (see index_scan.h).
 */
#include "postgres.h"

#include "pgstat.h"

#include "index/distance_core.h"
#include "index/index_scan.h"
#include "type/imgexamples.h"
#include "type/imgfeat.h"

void
imgs_query_init(ImgsQuery *query, IndexScanDesc scan)
{
	ScanKey		key = &scan->orderByData[0];

	Assert(scan->numberOfOrderBys == 1);
	memset(query, 0, sizeof(*query));
	query->strategy = key->sk_strategy;
	if (query->strategy < 1 || query->strategy > IMGS_NUM_STRATEGIES)
		elog(ERROR, "unexpected ORDER BY strategy %d", query->strategy);
	query->isnull = (key->sk_flags & SK_ISNULL) != 0;
	query->keys.metric = imgs_strategy_metric(query->strategy);
	if (!query->isnull && imgs_strategy_is_examples(query->strategy))
	{
		ImgExamples *ex = DatumGetImgExamplesP(key->sk_argument);
		int			n = ex->n_pos + ex->n_neg;
		float	   *x;
		double	   *norms;

		imgexamples_check(ex);
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
	}
	else if (!query->isnull)
	{
		ImgFeat    *v = DatumGetImgFeatP(key->sk_argument);

		float	   *x = palloc(sizeof(float) * v->dim);

		memcpy(x, v->x, sizeof(float) * v->dim);
		query->dim = v->dim;
		query->keys.x = x;
		query->keys.norm_sq = imgs_norm_squared(x, v->dim);
	}
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

IndexScanDesc
imgs_scan_begin(Relation index, int nkeys, int norderbys)
{
	IndexScanDesc scan = RelationGetIndexScan(index, nkeys, norderbys);

	scan->xs_orderbyvals = palloc0(sizeof(Datum) * Max(norderbys, 1));
	scan->xs_orderbynulls = palloc0(sizeof(bool) * Max(norderbys, 1));
	return scan;
}

void
imgs_scan_rescan(IndexScanDesc scan, ImgsScanState *ss, ScanKey orderbys, const char *amname)
{
	if (scan->numberOfOrderBys != 1)
		elog(ERROR, "%s index scans need an ORDER BY on the indexed column", amname);
	if (orderbys)
		memmove(scan->orderByData, orderbys, scan->numberOfOrderBys * sizeof(ScanKeyData));
	memset(ss, 0, sizeof(*ss));
	imgs_query_init(&ss->query, scan);
}

void
imgs_scan_start(IndexScanDesc scan, ImgsScanState *ss, const ImgsIndexMeta *meta)
{
	imgs_query_check_dim(&ss->query, scan->indexRelation, meta->store.dim);
	imgs_meta_check_metric(scan->indexRelation, meta, imgs_strategy_metric(ss->query.strategy));
	pgstat_count_index_scan(scan->indexRelation);
}

void
imgs_scan_return(IndexScanDesc scan, ImgsScanState *ss, double key, uint32 slot, ItemPointer tid)
{
	if (ss->query.isnull)
		key = 0;
	/* the last row only moves forward (see the header) */
	if (imgs_scan_after_last(ss, key, slot))
	{
		ss->has_last = true;
		ss->last_key = key;
		ss->last_slot = slot;
	}
	ss->returned++;
	scan->xs_heaptid = *tid;
	scan->xs_recheck = false;
	scan->xs_recheckorderby = ss->recheck_orderby;
	scan->xs_orderbynulls[0] = ss->query.isnull;
	scan->xs_orderbyvals[0] = ss->query.isnull ? (Datum) 0 :
		Float8GetDatum(imgs_query_value(&ss->query, key));
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
