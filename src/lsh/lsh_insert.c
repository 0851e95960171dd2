/*
 * lsh_insert.c — aminsert: the vector into the vector store and its entry
 * into its bucket, in the store's commit record (lsh.h), so that the slot
 * becomes live with its entry.
 */
#include "postgres.h"

#include "access/generic_xlog.h"
#include "utils/memutils.h"

#include "lsh/lsh.h"
#include "index/index_scan.h"
#include "type/imgfeat.h"

bool
lsh_insert(Relation index, Datum *values, bool *isnull, ItemPointer heap_tid,
		   Relation heap, IndexUniqueCheck check_unique, bool index_unchanged,
		   IndexInfo *index_info)
{
	MemoryContext tmp_ctx;
	MemoryContext old_ctx;
	ImgFeat    *v;
	ImgsIndexMeta header;
	LshMeta		meta;

	/* NULL vectors are not indexed: they have no distance to order by */
	if (isnull[0])
		return false;

	/* one insert may run per row of a big INSERT: free the detoasted copy */
	tmp_ctx = AllocSetContextCreate(CurrentMemoryContext, "lsh insert", ALLOCSET_SMALL_SIZES);
	old_ctx = MemoryContextSwitchTo(tmp_ctx);
	v = DatumGetImgFeatP(values[0]);
	lsh_read_meta(index, &header, &meta);
	if (meta.bits == 0)
	{
		/* no hash (built on no rows): the store is all there is */
		imgs_store_insert(index, &lsh_am, heap_tid, v->x, v->dim);
	}
	else
	{
		LshCache   *cache;
		Size		entry_size = lsh_entry_size(meta.bits);
		LshEntry   *hashed = palloc(entry_size);
		int32		bucket;
		ImgsError	err;
		ImgsStoreInsert ins;
		GenericXLogState *state;
		Buffer		dirbuf;
		Buffer		bucketbuf;
		Page		dirpage;
		BlockNumber dir_blkno;
		BlockNumber *last;
		BlockNumber last_before;
		LshMeta    *record_meta;

		/* the dimension first: the hash reads dim floats */
		imgs_check_dim(index, header.store.dim, v->dim);
		cache = lsh_get_cache(index, &header, &meta);
		bucket = lsh_hash(&cache->model, v->x, hashed->code, &hashed->norm2, &hashed->scale,
						  &hashed->cdot, &err);
		if (bucket < 0)
			imgs_raise_cxx_error(&err);

		imgs_store_insert_begin(&ins, index, &lsh_am, heap_tid, v->x, v->dim);
		state = imgs_store_insert_commit(&ins);
		record_meta = (LshMeta *) ImgsMetaGetMethodData(ins.metapage);
		if (record_meta->bits != meta.bits || record_meta->n_buckets != meta.n_buckets ||
			record_meta->bucketdir_start != meta.bucketdir_start)
			imgs_index_corrupted(index, "changed its hash during an insert");
		dir_blkno = meta.bucketdir_start + (uint32) bucket / LSH_BUCKETS_PER_DIR_PAGE;
		dirbuf = ReadBuffer(index, dir_blkno);
		LockBuffer(dirbuf, BUFFER_LOCK_EXCLUSIVE);
		imgs_page_check(index, BufferGetPage(dirbuf), dir_blkno, LSH_PAGE_BUCKETDIR);
		dirpage = GenericXLogRegisterBuffer(state, dirbuf, 0);
		last = (BlockNumber *) ImgsPageGetData(dirpage) + (uint32) bucket % LSH_BUCKETS_PER_DIR_PAGE;
		last_before = *last;
		{
			LshEntry   *e = (LshEntry *) imgs_list_append(&ins, state, LSH_PAGE_BUCKET, (uint32) bucket,
														  entry_size, last, &bucketbuf);

			memcpy(e, hashed, entry_size);
			e->slot = ins.slot;
		}
		/* scans read the directory again when a bucket got a new page */
		if (*last != last_before)
			record_meta->version++;
		imgs_store_insert_finish(&ins);
		UnlockReleaseBuffer(bucketbuf);
		UnlockReleaseBuffer(dirbuf);
	}
	MemoryContextSwitchTo(old_ctx);
	MemoryContextDelete(tmp_ctx);
	return false;
}
