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

typedef struct EntryCheck
{
	LshCache   *cache;
	LshEntry   *expected;		/* an entry's worth of bytes */
} EntryCheck;

/* An entry must lie in the bucket its slot's vector hashes to and be that hash, bit for bit. */
static void
check_entry(Relation index, uint32 bucket, const char *entry, const float *x, void *arg)
{
	EntryCheck *ec = (EntryCheck *) arg;
	const LshEntry *e = (const LshEntry *) entry;
	LshEntry   *expected = ec->expected;
	int32		b;
	ImgsError	err;

	b = lsh_hash(&ec->cache->model, x, expected->code, &expected->norm2, &expected->scale,
				 &expected->cdot, &err);
	if (b < 0)
		imgs_raise_cxx_error(&err);
	if ((uint32) b != bucket)
		imgs_index_corrupted(index, "has the entry for slot %u in bucket %u; its vector hashes to %d",
							 e->slot, bucket, b);
	if (memcmp(&expected->norm2, &e->norm2, sizeof(float)) != 0 ||
		memcmp(&expected->scale, &e->scale, sizeof(float)) != 0 ||
		memcmp(&expected->cdot, &e->cdot, sizeof(float)) != 0 ||
		memcmp(expected->code, e->code, lsh_code_bytes((int32) ec->cache->meta.bits)) != 0)
		imgs_index_corrupted(index, "has an entry for slot %u that is not the hash of its vector", e->slot);
}

void
lsh_check(Relation index, ImgsCheckedStore *store)
{
	int32		typmod = TupleDescAttr(RelationGetDescr(index), 0)->atttypmod;
	ImgsIndexMeta header;
	LshMeta		meta;
	LshCache	cache;
	EntryCheck	ec;

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

	ec.cache = &cache;
	ec.expected = palloc(lsh_entry_size(meta.bits));
	imgs_check_lists(index, store, LSH_PAGE_BUCKET, lsh_entry_size(meta.bits), meta.n_buckets,
					 cache.bucket_last, "bucket", check_entry, &ec);
}
