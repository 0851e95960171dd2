/*
 * build_load.c — loading the table at the start of a build (build_load.h).
 */
#include "postgres.h"

#include "access/tableam.h"
#include "commands/progress.h"
#include "optimizer/optimizer.h"
#include "pgstat.h"
#include "utils/memutils.h"

#include "index/build_load.h"
#include "index/index_am.h"
#include "type/imgfeat.h"

/* The sample's first allocation, in vectors; it doubles up to its capacity. */
#define SAMPLE_FIRST_VECTORS	256

static void
sample_add(ImgsBuildLoad *load, const float *x, int dim)
{
	int64		pos;

	if (load->sample == NULL)
	{
		load->dim = dim;
		load->sample_capacity = Min(load->sample_max_vectors,
									Max(1, load->sample_max_bytes / (sizeof(float) * (Size) dim)));
		load->sample_allocated = Min(load->sample_capacity, SAMPLE_FIRST_VECTORS);
		load->sample = MemoryContextAllocHuge(CurrentMemoryContext,
											  sizeof(float) * (Size) dim * load->sample_allocated);
	}
	/* reservoir sampling (Algorithm R), seeded: the same table gives the same index */
	if (load->sample_count < load->sample_capacity)
	{
		/* grown as rows come, so that a small table holds a small sample */
		if (load->sample_count == load->sample_allocated)
		{
			load->sample_allocated = Min(load->sample_capacity, 2 * load->sample_allocated);
			load->sample = repalloc_huge(load->sample,
										 sizeof(float) * (Size) dim * load->sample_allocated);
		}
		pos = load->sample_count++;
	}
	else
	{
		pos = (int64) pg_prng_uint64_range(&load->prng, 0, (uint64) load->n - 1);
		if (pos >= load->sample_capacity)
			return;
	}
	memcpy(load->sample + (Size) pos * dim, x, sizeof(float) * dim);
}

static void
build_callback(Relation index, ItemPointer tid, Datum *values, bool *isnull,
			   bool tuple_is_alive, void *state)
{
	ImgsBuildLoad *load = (ImgsBuildLoad *) state;
	MemoryContext old_ctx;
	ImgFeat    *v;

	if (isnull[0])
		return;
	old_ctx = MemoryContextSwitchTo(load->tmp_ctx);
	v = DatumGetImgFeatP(values[0]);
	imgs_store_build_add(&load->store, tid, v->x, v->dim);
	MemoryContextSwitchTo(old_ctx);
	load->n++;
	sample_add(load, v->x, v->dim);
	MemoryContextReset(load->tmp_ctx);

	if (load->n % 1024 == 0)
		pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE, load->n);
}

double
imgs_build_load(ImgsBuildLoad *load, Relation heap, Relation index, IndexInfo *index_info,
				const ImgsIndexAm *am, int phase, int64 max_vectors, Size max_bytes, uint64 seed)
{
	Buffer		metabuf;
	double		heap_tuples;

	if (RelationGetNumberOfBlocks(index) != 0)
		elog(ERROR, "index \"%s\" already contains data", RelationGetRelationName(index));
	memset(load, 0, sizeof(*load));
	load->tmp_ctx = AllocSetContextCreate(CurrentMemoryContext, "imgsearch build tuple",
										  ALLOCSET_DEFAULT_SIZES);
	load->sample_max_vectors = max_vectors;
	load->sample_max_bytes = max_bytes;
	pg_prng_seed(&load->prng, seed);

	/* block 0 first; it gets its final contents at the end */
	metabuf = imgs_extend(index, MAIN_FORKNUM);
	imgs_meta_init(BufferGetPage(metabuf), am, imgs_index_metric(index), imgs_index_typmod_dim(index));
	load->header = *ImgsMetaGetHeader(BufferGetPage(metabuf));
	MarkBufferDirty(metabuf);
	imgs_store_build_begin(&load->store, index, &load->header);
	UnlockReleaseBuffer(metabuf);

	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, phase);
	heap_tuples = table_index_build_scan(heap, index, index_info, true, true,
										 build_callback, load, NULL);
	imgs_store_build_end(&load->store);
	pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE, load->n);
	return heap_tuples;
}

Size
imgs_build_sample_bytes(const ImgsBuildLoad *load)
{
	return sizeof(float) * (Size) load->dim * load->sample_allocated;
}

void
imgs_build_sample_free(ImgsBuildLoad *load)
{
	if (load->sample != NULL)
		pfree(load->sample);
	load->sample = NULL;
	load->sample_count = load->sample_allocated = 0;
}

void
imgs_build_write_meta(Relation index, const ImgsIndexMeta *header, const void *method_data,
					  Size method_len)
{
	Buffer		buf = ReadBuffer(index, IMGS_METAPAGE_BLKNO);
	Page		page;

	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	page = BufferGetPage(buf);
	imgs_page_init(page, IMGS_PAGE_META);
	*ImgsMetaGetHeader(page) = *header;
	memcpy(ImgsMetaGetMethodData(page), method_data, method_len);
	MarkBufferDirty(buf);
	UnlockReleaseBuffer(buf);
}

int
imgs_build_sample_queries(const ImgsBuildLoad *load, int want, float **queries)
{
	int			n = (int) Min((int64) want, load->sample_count / 2);
	int			dim = load->dim;
	float	   *out = palloc(sizeof(float) * (Size) dim * Max(n, 1));

	for (int q = 0; q < n; q++)
	{
		const float *a = load->sample + (Size) q * (load->sample_count / (2 * n)) * dim;
		const float *b = a + (Size) (load->sample_count / 2) * dim;

		for (int i = 0; i < dim; i++)
			out[(Size) q * dim + i] = 0.5f * a[i] + 0.5f * b[i];
	}
	*queries = out;
	return n;
}

void
imgs_build_sample_searches(Relation index, const ImgsBuildLoad *load, const void *method_data,
						   Size method_len, const float *queries, int nqueries,
						   ImgsSampleTally tally, double *sums)
{
	imgs_build_write_meta(index, &load->header, method_data, method_len);
	imgs_sample_searches(index, load->header.metric != 0 ? load->header.metric : IMGS_METRIC_L2,
						 queries, nqueries, load->dim, IMGS_SAMPLE_K, tally, sums);
}

int
imgs_build_threads(Relation heap, Relation index)
{
	int			threads = 1 + plan_create_index_workers(RelationGetRelid(heap), RelationGetRelid(index));

	return Min(threads, imgs_online_cores());
}
