/*
 * faissflat_check.c — faissflat's part of imgsearch_index_check
 * (index/index_check.h): its metapage (the shared header, checked by
 * imgs_meta_check in imgs_store_check), its vector store, then its codes:
 * the metapage's FaissflatMeta, the PCA and range pages (read as a scan
 * reads them, which checks the ranges are finite with positive steps), and
 * the code list. Every live slot of the store must have exactly one live
 * entry, and the entry must be what the projection and ranges give for the
 * slot's vector (code, its error and squared norm, residual norm and
 * magnitude), bit for bit; no entry may name a slot
 * that is not live. Entries and slots that inserts add while the check runs
 * are skipped. Pages of no kind of faissflat's (faissflat_test_reserve's)
 * are accepted as a method's pages by the store check.
 */
#include "postgres.h"

#include "faissflat/faissflat.h"

typedef struct EntryCheck
{
	const FaissflatCache *cache;
	FaissflatEntry *want;
	Size		entry_size;
} EntryCheck;

/* An entry must be the code of its slot's vector, bit for bit. */
static void
check_entry(Relation index, uint32 list, const char *entry, const float *x, void *arg)
{
	EntryCheck *ec = (EntryCheck *) arg;
	const FaissflatEntry *e = (const FaissflatEntry *) entry;

	memset(ec->want, 0, ec->entry_size);
	faissflat_encode(ec->cache, x, ec->want);
	ec->want->slot = e->slot;
	if (memcmp(ec->want, e, ec->entry_size) != 0)
		imgs_index_corrupted(index, "has a code entry for slot %u that is not the code of its vector",
							 e->slot);
}

void
faissflat_check(Relation index, ImgsCheckedStore *store)
{
	int32		typmod = TupleDescAttr(RelationGetDescr(index), 0)->atttypmod;
	ImgsIndexMeta header;
	FaissflatMeta meta;
	EntryCheck	ec;

	imgs_store_check(index, &faissflat_am, &store->header, &store->groups, &store->headers);
	/* the build fixes the dimension by the column's type modifier, if any */
	if (typmod > 0 && store->header.store.dim != (uint32) typmod)
		imgs_index_corrupted(index, "holds %u-dimensional vectors, but its column is imgfeat(%d)",
							 store->header.store.dim, typmod);
	faissflat_read_meta_codes(index, &header, &meta);
	if (meta.dims == 0)
		return;					/* no codes: the store is all there is */
	if (header.metric != IMGS_METRIC_L2 && header.metric != IMGS_METRIC_COSINE)
		imgs_index_corrupted(index, "has codes for metric %u", header.metric);
	if (meta.pca_start >= header.next_block || meta.ranges_start >= header.next_block ||
		meta.codes_last >= header.next_block)
		imgs_index_corrupted(index, "has a metapage whose codes do not fit its store");
	ec.cache = faissflat_get_cache(index, &header, &meta, false);
	/* kept until the check ends, whatever invalidation comes */
	imgs_cache_pin((ImgsIndexCache *) &ec.cache->base, CurrentMemoryContext);
	ec.entry_size = faissflat_entry_size(meta.dims);
	ec.want = palloc0(ec.entry_size);
	imgs_check_lists(index, store, FAISSFLAT_PAGE_CODES, ec.entry_size, 1, &meta.codes_last,
					 "code list", check_entry, &ec);
}
