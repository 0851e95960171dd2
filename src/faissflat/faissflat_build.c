/*
 * faissflat_build.c — ambuild, ambuildempty and the metapage.
 *
 * The build appends every non-NULL vector of the table to a fresh vector
 * store without WAL, then logs all pages once (log_newpage_range).
 */
#include "postgres.h"

#include "access/tableam.h"
#include "access/xloginsert.h"
#include "commands/progress.h"
#include "pgstat.h"
#include "utils/memutils.h"

#include "faissflat/faissflat.h"
#include "index/index_am.h"
#include "type/imgfeat.h"

typedef struct FaissflatBuildState
{
	ImgsIndexMeta meta;
	ImgsStoreBuilder store;
	double		index_tuples;
	MemoryContext tmp_ctx;		/* detoasted values, reset per tuple */
} FaissflatBuildState;

const ImgsIndexAm faissflat_am = {"faissflat", FAISSFLAT_MAGIC, FAISSFLAT_VERSION, faissflat_build,
	faissflat_check};

/* Writes the metapage into buf (locked), without WAL. */
static void
write_metapage(Buffer buf, const ImgsIndexMeta *meta)
{
	Page		page = BufferGetPage(buf);

	imgs_page_init(page, IMGS_PAGE_META);
	*ImgsMetaGetHeader(page) = *meta;
	MarkBufferDirty(buf);
}

void
faissflat_read_meta(Relation index, ImgsIndexMeta *meta)
{
	imgs_meta_read(index, &faissflat_am, meta, NULL, 0);
}

static void
build_callback(Relation index, ItemPointer tid, Datum *values, bool *isnull,
			   bool tuple_is_alive, void *state)
{
	FaissflatBuildState *bs = (FaissflatBuildState *) state;
	MemoryContext old_ctx;
	ImgFeat    *v;

	if (isnull[0])
		return;
	old_ctx = MemoryContextSwitchTo(bs->tmp_ctx);
	v = DatumGetImgFeatP(values[0]);
	imgs_store_build_add(&bs->store, tid, v->x, v->dim);
	MemoryContextSwitchTo(old_ctx);
	MemoryContextReset(bs->tmp_ctx);

	bs->index_tuples++;
	if ((uint64) bs->index_tuples % 1024 == 0)
		pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE, (int64) bs->index_tuples);
}

IndexBuildResult *
faissflat_build(Relation heap, Relation index, IndexInfo *index_info)
{
	FaissflatBuildState *bs;
	IndexBuildResult *result;
	double		heap_tuples;
	Buffer		metabuf;
	int			metric;

	if (RelationGetNumberOfBlocks(index) != 0)
		elog(ERROR, "index \"%s\" already contains data", RelationGetRelationName(index));

	bs = palloc0(sizeof(FaissflatBuildState));
	bs->tmp_ctx = AllocSetContextCreate(CurrentMemoryContext, "faissflat build tuple",
										ALLOCSET_DEFAULT_SIZES);

	/* block 0 first; it gets its final contents at the end */
	metric = imgs_index_metric(index);
	metabuf = imgs_extend(index, MAIN_FORKNUM);
	imgs_meta_init(BufferGetPage(metabuf), &faissflat_am, metric, imgs_index_typmod_dim(index));
	bs->meta = *ImgsMetaGetHeader(BufferGetPage(metabuf));
	MarkBufferDirty(metabuf);
	imgs_store_build_begin(&bs->store, index, &bs->meta);
	UnlockReleaseBuffer(metabuf);

	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, FAISSFLAT_PHASE_LOAD);
	heap_tuples = table_index_build_scan(heap, index, index_info, true, true,
										 build_callback, bs, NULL);
	imgs_store_build_end(&bs->store);
	pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE, (int64) bs->index_tuples);

	metabuf = ReadBuffer(index, IMGS_METAPAGE_BLKNO);
	LockBuffer(metabuf, BUFFER_LOCK_EXCLUSIVE);
	write_metapage(metabuf, &bs->meta);
	UnlockReleaseBuffer(metabuf);

	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, FAISSFLAT_PHASE_WAL);
	imgs_log_built_index(index);

	result = palloc(sizeof(IndexBuildResult));
	result->heap_tuples = heap_tuples;
	result->index_tuples = bs->index_tuples;
	MemoryContextDelete(bs->tmp_ctx);
	pfree(bs);
	return result;
}

/* The init fork of an unlogged index: an empty metapage (index/index_am.h). */
void
faissflat_buildempty(Relation index)
{
	imgs_buildempty(index, &faissflat_am);
}
