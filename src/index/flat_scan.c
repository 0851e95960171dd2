/*
 * flat_scan.c — an ORDER BY scan over every vector of the store, in passes
 * (see flat_scan.h).
 */
#include "postgres.h"

#include "index/flat_scan.h"

/* One pass: the best `capacity` live slots ranked after the last row returned, sorted into fs->results. */
static void
run_pass(ImgsFlatScan *fs, ImgsScanState *ss, int capacity)
{
	const ImgsStoreMeta *store = &fs->store.meta;
	const ImgsKeyQuery *keys = imgs_query_keys(&ss->query);
	uint32		nslots = store->nslots;
	uint32		ngroups = imgs_store_ngroups(store);
	uint64		offered = 0;	/* live slots ranked after the last row returned */

	imgs_heap_free(&fs->results);
	imgs_heap_init(&fs->results, capacity);

	for (uint32 group = 0; group < ngroups; group++)
	{
		uint32		first = group * imgs_group_slots(store);
		uint32		n = Min(imgs_group_slots(store), nslots - first);

		imgs_store_read_group(&fs->store, group, n, fs->headers, keys, fs->keys);
		for (uint32 j = 0; j < n; j++)
		{
			double		key;

			if (fs->headers[j].state != IMGS_SLOT_LIVE)
				continue;
			/* a NULL query: every distance is NULL, rows come in slot order */
			key = keys ? fs->keys[j] : 0;
			if (!imgs_scan_after_last(ss, key, first + j) || !imgs_scan_within_bound(ss, key))
				continue;
			offered++;
			imgs_heap_offer(&fs->results, key, first + j, &fs->headers[j].tid);
		}
	}
	imgs_heap_sort(&fs->results);
	fs->next = 0;
	/* a later pass finds more only if this one had to leave some out */
	fs->more = offered > (uint64) fs->results.count;
}

void
imgs_flat_scan_start(ImgsFlatScan *fs, IndexScanDesc scan, ImgsScanState *ss,
					 const ImgsIndexAm *am, const ImgsIndexMeta *meta)
{
	fs->results.items = NULL;
	fs->results.count = fs->results.capacity = 0;
	imgs_store_open(&fs->store, scan->indexRelation, am, meta);
	run_pass(fs, ss, Min(IMGS_FLAT_FIRST_PASS, Max(meta->store.nslots, 1)));
}

bool
imgs_flat_scan_next(ImgsFlatScan *fs, IndexScanDesc scan, ImgsScanState *ss)
{
	ImgsCandidate *c;

	if (fs->next == fs->results.count && fs->more)
	{
		int64		want = (int64) fs->results.capacity * IMGS_FLAT_PASS_GROWTH;

		/* no pass needs more candidates than there are slots (nor than an int holds) */
		want = Min(want, Max((int64) fs->store.meta.nslots - ss->returned, 1));
		run_pass(fs, ss, (int) Min(want, INT_MAX));
	}
	if (fs->next == fs->results.count)
		return false;

	c = &fs->results.items[fs->next++];
	return imgs_scan_return(scan, ss, c->key, c->slot, &c->tid);
}
