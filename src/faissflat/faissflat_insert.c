/*
 * faissflat_insert.c — aminsert: one vector into the vector store and its
 * code entry into the code list, in the store's commit record, with Generic
 * WAL (see index/vector_store.h for the crash-safety protocol).
 */
#include "postgres.h"

#include "access/generic_xlog.h"
#include "miscadmin.h"
#include "utils/memutils.h"

#include "faissflat/faissflat.h"
#include "index/index_scan.h"
#include "type/imgfeat.h"

bool
faissflat_insert(Relation index, Datum *values, bool *isnull, ItemPointer heap_tid,
				 Relation heap, IndexUniqueCheck check_unique, bool index_unchanged,
				 IndexInfo *index_info)
{
	MemoryContext tmp_ctx;
	MemoryContext old_ctx;
	ImgFeat    *v;
	ImgsIndexMeta header;
	FaissflatMeta meta;

	/* NULL vectors are not indexed: they have no distance to order by */
	if (isnull[0])
		return false;

	/* one insert may run per row of a big INSERT: free the detoasted copy */
	tmp_ctx = AllocSetContextCreate(CurrentMemoryContext, "faissflat insert",
									ALLOCSET_SMALL_SIZES);
	old_ctx = MemoryContextSwitchTo(tmp_ctx);
	v = DatumGetImgFeatP(values[0]);
	faissflat_read_meta_codes(index, &header, &meta);
	if (meta.dims == 0)
		imgs_store_insert(index, &faissflat_am, heap_tid, v->x, v->dim);
	else
	{
		FaissflatCache *cache;
		Size		entry_size = faissflat_entry_size(meta.dims);
		FaissflatEntry *entry = palloc0(entry_size);
		FaissflatEntry *e;
		ImgsStoreInsert ins;
		GenericXLogState *state;
		FaissflatMeta *record_meta;
		Buffer		buf;

		/* the dimension first: the projection reads dim floats */
		imgs_check_dim(index, header.store.dim, v->dim);
		cache = faissflat_get_cache(index, &header, &meta, false);
		faissflat_encode(cache, v->x, entry);

		imgs_store_insert_begin(&ins, index, &faissflat_am, heap_tid, v->x, v->dim);
		state = imgs_store_insert_commit(&ins);
		record_meta = (FaissflatMeta *) ImgsMetaGetMethodData(ins.metapage);
		if (record_meta->dims != meta.dims || record_meta->ranges_start != meta.ranges_start)
			imgs_index_corrupted(index, "changed its codes during an insert");
		e = (FaissflatEntry *) imgs_list_append(&ins, state, FAISSFLAT_PAGE_CODES, 0, entry_size,
												&record_meta->codes_last, &buf);
		memcpy(e, entry, entry_size);
		e->slot = ins.slot;
		imgs_store_insert_finish(&ins);
		UnlockReleaseBuffer(buf);
	}
	MemoryContextSwitchTo(old_ctx);
	MemoryContextDelete(tmp_ctx);
	return false;
}

/*
 * faissflat_test_reserve(index regclass, pages int4) RETURNS int8
 *
 * A test hook (superuser only) for the shared block allocator: allocates
 * `pages` blocks as a method that has pages of its own would (leaves,
 * buckets), writes them as pages of kind IMGS_PAGE_METHOD_FIRST with Generic
 * WAL, and returns the first. faissflat never reads them; the store's next
 * group then starts after them, so groups and "method" pages interleave.
 */
PG_FUNCTION_INFO_V1(faissflat_test_reserve);
Datum
faissflat_test_reserve(PG_FUNCTION_ARGS)
{
	Oid			indexoid = PG_GETARG_OID(0);
	int32		npages = PG_GETARG_INT32(1);
	Relation	index;
	Buffer		metabuf;
	BlockNumber first = InvalidBlockNumber;

	/* it writes: PARALLEL SAFE only so that the catalog stays uniform */
	PreventCommandIfReadOnly("faissflat_test_reserve()");
	PreventCommandIfParallelMode("faissflat_test_reserve()");
	PreventCommandDuringRecovery("faissflat_test_reserve()");
	if (npages < 1 || npages > 10000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pages must be between 1 and 10000")));
	index = index_open(indexoid, RowExclusiveLock);
	if (index->rd_indam->ambuild != faissflat_build)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a faissflat index", RelationGetRelationName(index))));
	metabuf = imgs_meta_lock(index, &faissflat_am, BUFFER_LOCK_EXCLUSIVE);
	for (int done = 0; done < npages;)
	{
		GenericXLogState *state = GenericXLogStart(index);
		ImgsIndexMeta *meta = ImgsMetaGetHeader(GenericXLogRegisterBuffer(state, metabuf, 0));
		Buffer		bufs[MAX_GENERIC_XLOG_PAGES - 1];
		int			n = Min(npages - done, MAX_GENERIC_XLOG_PAGES - 1);
		BlockNumber blkno = imgs_alloc_blocks(index, meta, n);

		if (first == InvalidBlockNumber)
			first = blkno;
		for (int i = 0; i < n; i++)
		{
			bufs[i] = imgs_write_extending(index, blkno + i);
			imgs_page_init(GenericXLogRegisterBuffer(state, bufs[i], GENERIC_XLOG_FULL_IMAGE),
						   IMGS_PAGE_METHOD_FIRST);
		}
		GenericXLogFinish(state);
		for (int i = 0; i < n; i++)
			UnlockReleaseBuffer(bufs[i]);
		done += n;
	}
	UnlockReleaseBuffer(metabuf);
	index_close(index, RowExclusiveLock);
	PG_RETURN_INT64(first);
}
