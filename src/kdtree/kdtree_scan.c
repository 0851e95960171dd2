/*
 * kdtree_scan.c — ambeginscan, amrescan, amgettuple, amendscan.
 *
 * A scan drives the best-first search (kdtree_tree.c) over the tree as the
 * metapage showed it at the first amgettuple: rows come in exact (key, slot)
 * order, each once its key is below the bound of everything not examined,
 * with the operator's own distance, so xs_recheckorderby stays false. No
 * LIMIT is assumed: a consumer that keeps pulling gets every row.
 * kdtree.max_leaves > 0 makes the search's first round approximate: it opens
 * that many leaves and returns the nearest quarter of what they held, then
 * goes on exactly after the last row it returned (kd_search_next); rows
 * still come in non-decreasing exact distance, each once, and every row
 * after that round's last row comes. Without a tree (built on no rows), or for
 * a NULL query (every distance NULL), the scan reads every vector
 * (index/flat_scan.h). So does an exact search that has done a tenth of a
 * flat scan's work in exact distances (KDTREE_FLAT_FALLBACK) without being
 * done: where the bounds cannot prune (vectors without a few dominant
 * directions), it goes on with a flat pass after the last row it returned,
 * so that it costs about 1.2 times faissflat instead of several times; and
 * where the build's sample searches (KdtreeMeta.keys_fraction) show that
 * the bounds do not prune, exact scans are flat from the start.
 * A range search (WHERE feat <<->> imgsearch_sphere(q, r)) is this exact
 * search from the sphere's centre, whatever kdtree.max_leaves says, and ends
 * at the first row beyond r (index_scan.h): it opens the leaves whose bound
 * is below the distance of that first row out of range.
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
	ImgsIndexMeta header;		/* as the scan started */
	bool		gave_up;		/* the search went on as a flat pass */
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
		 "%lld exact distances%s",
		 RelationGetRelationName(scan->indexRelation), (long long) st.rows_emitted,
		 (long long) st.leaves_opened, so->cache->meta.n_leaves, (long long) st.entries_seen,
		 (long long) st.keys_computed, so->gave_up ? "; went on as a flat scan" : "");
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
	imgs_scan_rescan(scan, &so->ss, keys, orderbys, "kdtree");
	MemoryContextSwitchTo(old_ctx);
}

static void
start(IndexScanDesc scan, KdtreeScanOpaque so)
{
	Relation	index = scan->indexRelation;
	ImgsIndexMeta header;
	KdtreeMeta	meta;
	/* a range search is exact whatever the budget (index_scan.h) */
	int			max_leaves = so->ss.exact ? 0 : kdtree_max_leaves;

	kdtree_read_meta(index, &header, &meta);
	so->header = header;
	so->gave_up = false;
	imgs_scan_start(scan, &so->ss, &header);
	so->flat = meta.dims == 0 || so->ss.query.isnull ||
		(max_leaves == 0 && kdtree_tree_useless(&meta));
	if (so->flat)
	{
		so->flat_scan = palloc0(sizeof(ImgsFlatScan));
		imgs_flat_scan_start(so->flat_scan, scan, &so->ss, &kdtree_am, &header);
		return;
	}
	so->cache = kdtree_get_cache(index, &header, &meta, true);
	imgs_cache_pin(&so->cache->base, so->ctx);
	imgs_store_open(&so->store, index, &kdtree_am, &header);
	kdtree_search_begin(&so->search, index, so->cache, &so->store, &so->ss.query.keys,
						max_leaves, KDTREE_FLAT_FALLBACK * header.store.nslots);
}

bool
kdtree_gettuple(IndexScanDesc scan, ScanDirection dir)
{
	KdtreeScanOpaque so = (KdtreeScanOpaque) scan->opaque;
	MemoryContext old_ctx = MemoryContextSwitchTo(so->ctx);
	bool		found;

	if (so->ss.done)
	{
		MemoryContextSwitchTo(old_ctx);
		return false;
	}
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

		switch (kdtree_search_next(&so->search, &slot, &key, &tid))
		{
			case KDTREE_ROW:
				found = imgs_scan_return(scan, &so->ss, key, slot, &tid);
				break;
			case KDTREE_GAVE_UP:
				/* the rest by a flat pass, after the last row returned */
				so->gave_up = true;
				report_stats(scan, so);
				kdtree_search_end(&so->search);
				so->flat = true;
				so->flat_scan = palloc0(sizeof(ImgsFlatScan));
				imgs_flat_scan_start(so->flat_scan, scan, &so->ss, &kdtree_am, &so->header);
				found = imgs_flat_scan_next(so->flat_scan, scan, &so->ss);
				break;
			default:
				found = false;
				break;
		}
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
