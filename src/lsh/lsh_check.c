/*
 * lsh_check.c — lsh's part of imgsearch_index_check (index/index_check.h):
 * the vector store (imgs_store_check), then the hash: its metapage data,
 * the rotation and centroid pages (read as a scan reads them), and every
 * bucket's chain of pages. Every live slot of the store must have exactly
 * one live entry, in the bucket its vector hashes to, and the entry must be
 * what the hash gives for the slot's vector, bit for bit; no entry may name
 * a slot that is not live. Entries and slots that inserts add while the
 * check runs (the store was read at one moment, the buckets after it) are
 * skipped.
 */
#include "postgres.h"

#include "miscadmin.h"

#include "lsh/lsh.h"

/* Whether slot is live now with the TID the store check saw, its vector in x. */
static bool
slot_unchanged(Relation index, ImgsCheckedStore *store, uint32 slot, float *x)
{
	ImgsSlotHeader now;

	imgs_store_read_slot(index, &store->header.store, store->groups, slot, &now, x);
	return now.state == IMGS_SLOT_LIVE && ItemPointerEquals(&now.tid, &store->headers[slot].tid);
}

static void
check_entry(Relation index, ImgsCheckedStore *store, LshCache *cache, uint32 bucket,
			const LshEntry *e, bool *seen, float *x, LshEntry *expected)
{
	uint32		nslots = store->header.store.nslots;
	int32		b;

	if (e->slot >= nslots)
		return;					/* inserted since the store was read */
	if (store->headers[e->slot].state != IMGS_SLOT_LIVE)
	{
		ImgsSlotHeader now;

		/* a free slot reused by an insert since is fine; else a stale reference */
		imgs_store_read_slot(index, &store->header.store, store->groups, e->slot, &now, x);
		if (now.state != IMGS_SLOT_LIVE)
			imgs_index_corrupted(index, "has an entry in bucket %u for slot %u, which is not live",
								 bucket, e->slot);
		return;
	}
	if (seen[e->slot])
		imgs_index_corrupted(index, "has two entries for slot %u", e->slot);
	seen[e->slot] = true;
	if (!slot_unchanged(index, store, e->slot, x))
		return;					/* vacuumed and reused under a check in recovery */
	b = lsh_hash(&cache->model, x, expected->code, &expected->norm2, &expected->scale, cache->scratch);
	if ((uint32) b != bucket)
		imgs_index_corrupted(index, "has the entry for slot %u in bucket %u; its vector hashes to %d",
							 e->slot, bucket, b);
	if (memcmp(&expected->norm2, &e->norm2, sizeof(float)) != 0 ||
		memcmp(&expected->scale, &e->scale, sizeof(float)) != 0 ||
		memcmp(expected->code, e->code, lsh_code_bytes((int32) cache->meta.bits)) != 0)
		imgs_index_corrupted(index, "has an entry for slot %u that is not the hash of its vector", e->slot);
}

void
lsh_check(Relation index, ImgsCheckedStore *store)
{
	int32		typmod = TupleDescAttr(RelationGetDescr(index), 0)->atttypmod;
	ImgsIndexMeta header;
	LshMeta		meta;
	LshCache	cache;
	Size		entry_size;
	uint32		nslots;
	bool	   *seen;
	float	   *x;
	LshEntry   *expected;

	imgs_store_check(index, &lsh_am, &store->header, &store->groups, &store->headers);
	if (typmod > 0 && store->header.store.nslots > 0 && store->header.store.dim != (uint32) typmod)
		imgs_index_corrupted(index, "holds %u-dimensional vectors, but its column is imgfeat(%d)",
							 store->header.store.dim, typmod);
	lsh_read_meta(index, &header, &meta);
	if (meta.bits == 0)
	{
		/* no hash: nothing but the store (and the metapage says nothing more) */
		if (meta.n_buckets != 0)
			imgs_index_corrupted(index, "has %u buckets without a sketch", meta.n_buckets);
		return;
	}
	if (meta.build_points > header.store.nslots)
		imgs_index_corrupted(index, "has a metapage whose hash does not fit its store");
	lsh_load(index, &header, &meta, &cache);

	entry_size = lsh_entry_size(meta.bits);
	nslots = store->header.store.nslots;
	seen = palloc0(sizeof(bool) * Max(nslots, 1));
	x = palloc(sizeof(float) * header.store.dim);
	expected = palloc(entry_size);
	for (uint32 bucket = 0; bucket < meta.n_buckets; bucket++)
	{
		BlockNumber blkno = cache.bucket_last[bucket];
		uint32		pages = 0;

		while (BlockNumberIsValid(blkno))
		{
			Buffer		buf;
			Page		page;
			PGAlignedBlock copy;
			const ImgsListPageHeader *ph;

			CHECK_FOR_INTERRUPTS();
			if (blkno >= header.next_block || blkno == 0 || ++pages > header.next_block)
				imgs_index_corrupted(index, "has a chain of bucket %u through block %u", bucket, blkno);
			buf = imgs_list_read_page(index, blkno, LSH_PAGE_BUCKET, bucket, entry_size, pages,
									  BUFFER_LOCK_SHARE, NULL);
			memcpy(copy.data, BufferGetPage(buf), BLCKSZ);
			UnlockReleaseBuffer(buf);
			page = copy.data;
			ph = ImgsListPageHeaderOf(page);
			for (uint32 i = 0; i < ph->count; i++)
			{
				const LshEntry *e = (const LshEntry *) imgs_list_entry(page, entry_size, i);

				if (e->slot != IMGS_NO_SLOT)
					check_entry(index, store, &cache, bucket, e, seen, x, expected);
			}
			blkno = ph->prev_blkno;
		}
	}
	for (uint32 slot = 0; slot < nslots; slot++)
		if (store->headers[slot].state == IMGS_SLOT_LIVE && !seen[slot] &&
			slot_unchanged(index, store, slot, x))
			imgs_index_corrupted(index, "has no bucket entry for live slot %u", slot);
}
