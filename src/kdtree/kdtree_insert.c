/*
 * kdtree_insert.c — aminsert: the vector into the vector store and its entry
 * into the leaf its projection descends to, in the store's commit record
 * (kdtree.h), so that the slot becomes live with its entry.
 */
#include "postgres.h"

#include "access/generic_xlog.h"
#include "utils/memutils.h"

#include "kdtree/kdtree.h"
#include "index/index_scan.h"
#include "type/imgfeat.h"

/* Grows a leaf's record to hold (y, r). */
static void
grow_record(KdtreeLeafRecord *rec, uint32 m, const float *y, float r)
{
	float	   *lo = (float *) ((char *) rec + sizeof(KdtreeLeafRecord));
	float	   *hi = lo + m;

	for (uint32 d = 0; d < m; d++)
	{
		lo[d] = Min(lo[d], y[d]);
		hi[d] = Max(hi[d], y[d]);
	}
	rec->r_min = Min(rec->r_min, r);
	rec->r_max = Max(rec->r_max, r);
}

/* Writes the entry for ins->slot into its leaf, in the commit record; returns the buffers to release. */
static int
add_entry(ImgsStoreInsert *ins, GenericXLogState *state, const KdtreeMeta *meta,
		  uint32 leaf, const float *y, float r, Buffer *bufs)
{
	Relation	index = ins->index;
	uint32		m = meta->dims;
	uint32		per_page = kdtree_leaves_per_page(m);
	BlockNumber dir_blkno = meta->leafdir_start + leaf / per_page;
	Buffer		dirbuf;
	Page		dirpage;
	KdtreeLeafRecord *rec;
	KdtreeEntry *e;

	dirbuf = ReadBuffer(index, dir_blkno);
	LockBuffer(dirbuf, BUFFER_LOCK_EXCLUSIVE);
	bufs[0] = dirbuf;
	imgs_page_check(index, BufferGetPage(dirbuf), dir_blkno, KDTREE_PAGE_LEAFDIR);
	dirpage = GenericXLogRegisterBuffer(state, dirbuf, 0);
	rec = (KdtreeLeafRecord *) (ImgsPageGetData(dirpage) + (leaf % per_page) * kdtree_leaf_record_size(m));
	e = (KdtreeEntry *) imgs_list_append(ins, state, KDTREE_PAGE_LEAF, leaf, kdtree_entry_size(m),
										 &rec->last_blkno, &bufs[1]);
	e->slot = ins->slot;
	e->resid = r;
	memcpy(e->proj, y, sizeof(float) * m);
	grow_record(rec, m, y, r);
	return 2;
}

bool
kdtree_insert(Relation index, Datum *values, bool *isnull, ItemPointer heap_tid,
			  Relation heap, IndexUniqueCheck check_unique, bool index_unchanged,
			  IndexInfo *index_info)
{
	MemoryContext tmp_ctx;
	MemoryContext old_ctx;
	ImgFeat    *v;
	ImgsIndexMeta header;
	KdtreeMeta	meta;

	/* NULL vectors are not indexed: they have no distance to order by */
	if (isnull[0])
		return false;

	/* one insert may run per row of a big INSERT: free the detoasted copy */
	tmp_ctx = AllocSetContextCreate(CurrentMemoryContext, "kdtree insert", ALLOCSET_SMALL_SIZES);
	old_ctx = MemoryContextSwitchTo(tmp_ctx);
	v = DatumGetImgFeatP(values[0]);
	kdtree_read_meta(index, &header, &meta);
	if (meta.dims == 0)
	{
		/* no tree (built on no rows): the store is all there is */
		imgs_store_insert(index, &kdtree_am, heap_tid, v->x, v->dim);
	}
	else
	{
		KdtreeCache *cache;
		float	   *y = palloc(sizeof(float) * meta.dims);
		float		r;
		uint32		leaf;
		ImgsStoreInsert ins;
		GenericXLogState *state;
		Buffer		bufs[IMGS_COMMIT_METHOD_PAGES];
		int			nbufs;
		KdtreeMeta *record_meta;

		/* the dimension first: the projection reads dim floats */
		imgs_check_dim(index, header.store.dim, v->dim);
		/* the projection and the split planes never change: no boxes needed */
		cache = kdtree_get_cache(index, &header, &meta, false);
		kdtree_project(cache, v->x, y, &r);
		leaf = (uint32) kdtree_descend(cache, y);

		imgs_store_insert_begin(&ins, index, &kdtree_am, heap_tid, v->x, v->dim);
		state = imgs_store_insert_commit(&ins);
		record_meta = (KdtreeMeta *) ImgsMetaGetMethodData(ins.metapage);
		if (record_meta->dims != meta.dims || record_meta->leafdir_start != meta.leafdir_start)
			imgs_index_corrupted(index, "changed its tree during an insert");
		nbufs = add_entry(&ins, state, record_meta, leaf, y, r, bufs);
		/* scans re-read the leaves' boxes */
		record_meta->version++;
		imgs_store_insert_finish(&ins);
		for (int i = 0; i < nbufs; i++)
			UnlockReleaseBuffer(bufs[i]);
	}
	MemoryContextSwitchTo(old_ctx);
	MemoryContextDelete(tmp_ctx);
	return false;
}
