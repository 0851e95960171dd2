/*
 * faissflat_insert.c — aminsert: one vector into the vector store, with
 * Generic WAL (see index/vector_store.h for the crash-safety protocol).
 */
#include "postgres.h"

#include "utils/memutils.h"

#include "faissflat/faissflat.h"
#include "type/imgfeat.h"

bool
faissflat_insert(Relation index, Datum *values, bool *isnull, ItemPointer heap_tid,
				 Relation heap, IndexUniqueCheck check_unique, bool index_unchanged,
				 IndexInfo *index_info)
{
	MemoryContext tmp_ctx;
	MemoryContext old_ctx;
	ImgFeat    *v;

	/* NULL vectors are not indexed: they have no distance to order by */
	if (isnull[0])
		return false;

	/* one insert may run per row of a big INSERT: free the detoasted copy */
	tmp_ctx = AllocSetContextCreate(CurrentMemoryContext, "faissflat insert",
									ALLOCSET_SMALL_SIZES);
	old_ctx = MemoryContextSwitchTo(tmp_ctx);
	v = DatumGetImgFeatP(values[0]);
	imgs_store_insert(index, &faissflat_am, heap_tid, v->x, v->dim);
	MemoryContextSwitchTo(old_ctx);
	MemoryContextDelete(tmp_ctx);
	return false;
}
