/*
 * kdtree_scan.c — ambeginscan, amrescan, amgettuple, amendscan.
 *
 * A scan drives the best-first search (kdtree_tree.c) over the tree as the
 * metapage showed it at the first amgettuple: rows come in exact (key, slot)
 * order, each once its key is below the bound of everything not examined,
 * with the operator's own distance, so xs_recheckorderby stays false. No
 * LIMIT is assumed: a consumer that keeps pulling gets every row.
 * kdtree.max_leaves > 0 bounds the leaves opened (approximate; rows still in
 * non-decreasing exact distance). Without a tree (built on no rows), or for
 * a NULL query (every distance NULL), the scan reads every vector
 * (index/flat_scan.h).
 */
#include "postgres.h"

#include "access/relscan.h"
#include "utils/memutils.h"

#include "index/flat_scan.h"
#include "kdtree/kdtree.h"

typedef struct KdtreeScanOpaqueData
{
	MemoryContext ctx;			/* everything below lives here */
	ImgsScanState ss;			/* the query, the last row returned */
	bool		started;
	bool		flat;			/* no tree to search: a flat scan */
	ImgsFlatScan *flat_scan;
	KdtreeCache *cache;			/* pinned until the next rescan */
	ImgsStoreReader store;
	KdtreeSearch search;
} KdtreeScanOpaqueData;

typedef KdtreeScanOpaqueData *KdtreeScanOpaque;

/* What the search did, at DEBUG1: how far the bounds let it stop. */
static void
report_stats(IndexScanDesc scan, KdtreeScanOpaque so)
{
	KdSearchStats st;

	if (so->search.core == NULL || !message_level_is_interesting(DEBUG1))
		return;
	kdtree_search_stats(&so->search, &st);
	elog(DEBUG1, "kdtree scan of \"%s\": %lld rows, %lld of %u leaves opened, %lld entries seen, "
		 "%lld exact distances",
		 RelationGetRelationName(scan->indexRelation), (long long) st.rows_emitted,
		 (long long) st.leaves_opened, so->cache->meta.n_leaves, (long long) st.entries_seen,
		 (long long) st.keys_computed);
}

IndexScanDesc
kdtree_beginscan(Relation index, int nkeys, int norderbys)
{
	IndexScanDesc scan = imgs_scan_begin(index, nkeys, norderbys);
	KdtreeScanOpaque so = palloc0(sizeof(KdtreeScanOpaqueData));

	so->ctx = AllocSetContextCreate(CurrentMemoryContext, "kdtree scan", ALLOCSET_DEFAULT_SIZES);
	scan->opaque = so;
	return scan;
}

void
kdtree_rescan(IndexScanDesc scan, ScanKey keys, int nkeys, ScanKey orderbys, int norderbys)
{
	KdtreeScanOpaque so = (KdtreeScanOpaque) scan->opaque;
	MemoryContext old_ctx;

	report_stats(scan, so);
	/* ends the search of the last scan too (its reset callback) */
	MemoryContextReset(so->ctx);
	so->started = false;
	so->flat_scan = NULL;
	memset(&so->search, 0, sizeof(so->search));
	old_ctx = MemoryContextSwitchTo(so->ctx);
	imgs_scan_rescan(scan, &so->ss, orderbys, "kdtree");
	MemoryContextSwitchTo(old_ctx);
}

static void
start(IndexScanDesc scan, KdtreeScanOpaque so)
{
	Relation	index = scan->indexRelation;
	ImgsIndexMeta header;
	KdtreeMeta	meta;

	kdtree_read_meta(index, &header, &meta);
	imgs_scan_start(scan, &so->ss, &header);
	so->flat = meta.dims == 0 || so->ss.query.isnull;
	if (so->flat)
	{
		so->flat_scan = palloc0(sizeof(ImgsFlatScan));
		imgs_flat_scan_start(so->flat_scan, scan, &so->ss, &kdtree_am, &header);
		return;
	}
	so->cache = kdtree_get_cache(index, &header, &meta, true);
	kdtree_cache_pin(so->cache, so->ctx);
	imgs_store_open(&so->store, index, &kdtree_am, &header);
	kdtree_search_begin(&so->search, index, so->cache, &so->store, &so->ss.query.keys,
						kdtree_max_leaves);
}

bool
kdtree_gettuple(IndexScanDesc scan, ScanDirection dir)
{
	KdtreeScanOpaque so = (KdtreeScanOpaque) scan->opaque;
	MemoryContext old_ctx = MemoryContextSwitchTo(so->ctx);
	bool		found;

	if (!so->started)
	{
		start(scan, so);
		so->started = true;
	}
	if (so->flat)
		found = imgs_flat_scan_next(so->flat_scan, scan, &so->ss);
	else
	{
		uint32		slot;
		double		key;
		ItemPointerData tid;

		found = kdtree_search_next(&so->search, &slot, &key, &tid);
		if (found)
			imgs_scan_return(scan, &so->ss, key, slot, &tid);
	}
	MemoryContextSwitchTo(old_ctx);
	return found;
}

void
kdtree_endscan(IndexScanDesc scan)
{
	KdtreeScanOpaque so = (KdtreeScanOpaque) scan->opaque;

	report_stats(scan, so);

	MemoryContextDelete(so->ctx);
	pfree(so);
	scan->opaque = NULL;
}
