/*
 * faissflat_scan.c — ambeginscan, amrescan, amgettuple, amendscan.
 *
 * The scan does not know the LIMIT, so it works in passes. A pass streams
 * every vector of the store through the distance kernel and keeps the best K
 * candidates ranked after the last row returned (by key, then slot: a total
 * order, so no row is returned twice or skipped); it sorts them and returns
 * them in order. A consumer that wants more rows than a pass kept starts the
 * next pass, with K grown sixteenfold, so a scan of every row takes a few
 * passes and memory stays at most one small candidate per vector, never the
 * vectors themselves.
 *
 * Distances are exact (the operator's own arithmetic, common/index_scan.h),
 * so xs_recheckorderby stays false. The heap decides visibility: rows are
 * returned whatever their MVCC state, as by any index.
 */
#include "postgres.h"

#include "access/relscan.h"
#include "pgstat.h"
#include "utils/memutils.h"

#include "common/index_scan.h"
#include "faissflat/faissflat.h"

/* Candidates kept by the first pass: more than almost any LIMIT asks for. */
#define FIRST_PASS_CANDIDATES	1000
#define PASS_GROWTH				16

typedef struct FaissflatScanOpaqueData
{
	MemoryContext ctx;			/* everything below lives here */
	ImgsQuery	query;
	bool		started;		/* first pass done */
	ImgsStoreMeta store;		/* as the first pass found it */
	ImgsCandidateHeap results;	/* of the current pass, sorted */
	int			next;			/* next result to return */
	bool		more;			/* a later pass may find more rows */
	int64		returned;		/* rows returned so far */
	/* per group buffers */
	ImgsSlotHeader headers[IMGS_GROUP_SLOTS];
	double		keys[IMGS_GROUP_SLOTS];
	float	   *scratch;
} FaissflatScanOpaqueData;

typedef FaissflatScanOpaqueData *FaissflatScanOpaque;

IndexScanDesc
faissflat_beginscan(Relation index, int nkeys, int norderbys)
{
	IndexScanDesc scan = RelationGetIndexScan(index, nkeys, norderbys);
	FaissflatScanOpaque so = palloc0(sizeof(FaissflatScanOpaqueData));

	so->ctx = AllocSetContextCreate(CurrentMemoryContext, "faissflat scan",
									ALLOCSET_DEFAULT_SIZES);
	scan->opaque = so;
	/* the AM provides these (as GiST does) */
	scan->xs_orderbyvals = palloc0(sizeof(Datum) * Max(norderbys, 1));
	scan->xs_orderbynulls = palloc0(sizeof(bool) * Max(norderbys, 1));
	return scan;
}

void
faissflat_rescan(IndexScanDesc scan, ScanKey keys, int nkeys, ScanKey orderbys, int norderbys)
{
	FaissflatScanOpaque so = (FaissflatScanOpaque) scan->opaque;
	MemoryContext old_ctx;

	/* the planner only chooses this index for one ORDER BY (see the cost estimate) */
	if (scan->numberOfOrderBys != 1)
		elog(ERROR, "faissflat index scans need an ORDER BY on the indexed column");
	if (orderbys)
		memmove(scan->orderByData, orderbys, scan->numberOfOrderBys * sizeof(ScanKeyData));

	MemoryContextReset(so->ctx);
	so->started = false;
	so->results.items = NULL;
	so->results.count = so->results.capacity = 0;
	so->next = 0;
	so->returned = 0;
	so->scratch = NULL;
	old_ctx = MemoryContextSwitchTo(so->ctx);
	imgs_query_init(&so->query, scan);
	MemoryContextSwitchTo(old_ctx);
}

/*
 * One pass: the best `capacity` live slots ranked after (after_key,
 * after_slot), if has_after, sorted into so->results.
 */
static void
run_pass(IndexScanDesc scan, int capacity, bool has_after, double after_key, uint32 after_slot)
{
	FaissflatScanOpaque so = (FaissflatScanOpaque) scan->opaque;
	const ImgsStoreMeta *store = &so->store;
	const ImgsKeyQuery *keys = imgs_query_keys(&so->query);
	uint32		ngroups = imgs_store_ngroups(store);
	uint64		offered = 0;	/* live slots ranked after the last row returned */
	MemoryContext old_ctx = MemoryContextSwitchTo(so->ctx);

	imgs_heap_free(&so->results);
	imgs_heap_init(&so->results, capacity);
	if (so->scratch == NULL && store->dim > 0)
		so->scratch = palloc(sizeof(float) * store->dim);

	for (uint32 group = 0; group < ngroups; group++)
	{
		uint32		first = group * IMGS_GROUP_SLOTS;
		uint32		n = Min(IMGS_GROUP_SLOTS, store->nslots - first);

		imgs_store_read_group(scan->indexRelation, store, group, n, so->headers,
							  keys, so->keys, so->scratch);
		for (uint32 j = 0; j < n; j++)
		{
			double		key;

			if (so->headers[j].state != IMGS_SLOT_LIVE)
				continue;
			/* a NULL query: every distance is NULL, rows come in slot order */
			key = keys ? so->keys[j] : 0;
			if (has_after && !imgs_key_less(after_key, after_slot, key, first + j))
				continue;
			offered++;
			imgs_heap_offer(&so->results, key, first + j, &so->headers[j].tid);
		}
	}
	imgs_heap_sort(&so->results);
	so->next = 0;
	/* a later pass finds more only if this one had to leave some out */
	so->more = offered > (uint64) so->results.count;
	MemoryContextSwitchTo(old_ctx);
}

bool
faissflat_gettuple(IndexScanDesc scan, ScanDirection dir)
{
	FaissflatScanOpaque so = (FaissflatScanOpaque) scan->opaque;
	ImgsCandidate *c;

	if (!so->started)
	{
		faissflat_read_meta(scan->indexRelation, &so->store);
		imgs_query_check_dim(&so->query, scan->indexRelation, so->store.dim);
		pgstat_count_index_scan(scan->indexRelation);
		so->started = true;
		run_pass(scan, Min(FIRST_PASS_CANDIDATES, Max(so->store.nslots, 1)), false, 0, 0);
	}
	else if (so->next == so->results.count && so->more)
	{
		ImgsCandidate last = so->results.items[so->results.count - 1];
		int64		want = (int64) so->results.capacity * PASS_GROWTH;

		/* no pass needs more candidates than there are slots (nor than an int holds) */
		want = Min(want, Max((int64) so->store.nslots - so->returned, 1));
		run_pass(scan, (int) Min(want, INT_MAX), true, last.key, last.slot);
	}
	if (so->next == so->results.count)
		return false;

	c = &so->results.items[so->next++];
	so->returned++;
	scan->xs_heaptid = c->tid;
	scan->xs_recheck = false;
	scan->xs_recheckorderby = false;
	scan->xs_orderbynulls[0] = so->query.isnull;
	scan->xs_orderbyvals[0] = so->query.isnull ? (Datum) 0 :
		Float8GetDatum(imgs_query_value(&so->query, c->key));
	return true;
}

void
faissflat_endscan(IndexScanDesc scan)
{
	FaissflatScanOpaque so = (FaissflatScanOpaque) scan->opaque;

	MemoryContextDelete(so->ctx);
	pfree(so);
	scan->opaque = NULL;
}
