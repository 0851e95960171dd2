/*
 * faissflat_check.c — faissflat's part of imgsearch_index_check
 * (common/index_check.h): its metapage, then its vector store, which is all
 * it has.
 */
#include "postgres.h"

#include "faissflat/faissflat.h"

void
faissflat_check(Relation index, ImgsCheckedStore *store)
{
	ImgsStoreMeta meta;
	int32		typmod = TupleDescAttr(RelationGetDescr(index), 0)->atttypmod;

	/* magic and version (errors XX002 otherwise) */
	faissflat_read_meta(index, &meta);
	imgs_store_check(index, FAISSFLAT_STORE_OFFSET, IMGS_METAPAGE_BLKNO + 1,
					 &store->meta, &store->headers);
	/* the build fixes the dimension by the column's type modifier, if any */
	if (typmod > 0 && store->meta.dim != (uint32) typmod)
		imgs_index_corrupted(index, "holds %u-dimensional vectors, but its column is imgfeat(%d)",
							 store->meta.dim, typmod);
}
