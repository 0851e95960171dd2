/*
 * index_scan.h — what the imgsearch index scans share: the ORDER BY query
 * and a bounded heap of candidates.
 *
 * Every imgsearch operator class has a single ORDER BY operator whose
 * strategy number names the metric (IMGS_METRIC_* of distance_core.h), so a
 * scan learns its metric from its ORDER BY key. A scan ranks slots by the
 * metric's key (imgs_keys_many), computed by the same kernels as the SQL
 * operators, so that index and sequential scan agree to the bit. Keys order
 * like the operator values; NaN sorts after every number, as in PostgreSQL;
 * equal keys order by slot, so the order is total.
 */
#ifndef IMGS_INDEX_SCAN_H
#define IMGS_INDEX_SCAN_H

#include <math.h>

#include "access/relscan.h"

#include "common/distance_core.h"
#include "common/vector_store.h"

#define IMGS_STRATEGY_L2		IMGS_METRIC_L2		/* <-> */
#define IMGS_STRATEGY_COSINE	IMGS_METRIC_COSINE	/* <=> */
#define IMGS_STRATEGY_IP		IMGS_METRIC_IP		/* <#> */
#define IMGS_NUM_STRATEGIES		3

/* The query of an ORDER BY scan, detoasted and copied. */
typedef struct ImgsQuery
{
	int			strategy;		/* IMGS_STRATEGY_* */
	bool		isnull;			/* ORDER BY col <op> NULL: every distance is NULL */
	int			dim;
	ImgsKeyQuery keys;			/* what the kernels compute; keys.x is the vector */
} ImgsQuery;

/* Reads the ORDER BY key of scan into query, allocated in the current context. */
extern void imgs_query_init(ImgsQuery *query, IndexScanDesc scan);

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
