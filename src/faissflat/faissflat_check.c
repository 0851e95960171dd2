/*
 * faissflat_check.c — faissflat's part of imgsearch_index_check
 * (index/index_check.h): its metapage (the shared header, checked by
 * imgs_meta_check in imgs_store_check; faissflat keeps no data of its own
 * there), then its vector store, which is all it has: it allocates no pages
 * of its own (but for faissflat_test_reserve's, which the store check accepts
 * as a method's pages).
 */
#include "postgres.h"

#include "faissflat/faissflat.h"

void
faissflat_check(Relation index, ImgsCheckedStore *store)
{
	int32		typmod = TupleDescAttr(RelationGetDescr(index), 0)->atttypmod;

	imgs_store_check(index, &faissflat_am, &store->header, &store->groups, &store->headers);
	/* the build fixes the dimension by the column's type modifier, if any */
	if (typmod > 0 && store->header.store.dim != (uint32) typmod)
		imgs_index_corrupted(index, "holds %u-dimensional vectors, but its column is imgfeat(%d)",
							 store->header.store.dim, typmod);
}
