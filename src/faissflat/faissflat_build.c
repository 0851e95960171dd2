/*
 * faissflat_build.c — ambuild, ambuildempty and the metapage.
 *
 * The build loads every non-NULL vector of the table into a fresh vector
 * store without WAL (index/build_load.h), keeping a seeded sample; for the
 * L2 and cosine metrics it learns the PCA (kdtree_core.h) and the ranges
 * (faissflat_core.h) on the sample, codes every stored vector and writes the
 * PCA, range and code pages (faissflat.h); then logs all pages once
 * (log_newpage_range).
 */
#include "postgres.h"

#include "access/tableam.h"
#include "commands/progress.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/memutils.h"

#include "faissflat/faissflat.h"
#include "faissflat/faissflat_core.h"
#include "index/build_load.h"
#include "index/index_am.h"
#include "type/imgfeat.h"

/* The training sample: at most this many vectors, and this many bytes. */
#define SAMPLE_MAX_VECTORS	20000
#define SAMPLE_MAX_BYTES	((Size) 64 * 1024 * 1024)
#define BUILD_SEED			UINT64CONST(0x666c617463000001)

const ImgsIndexAm faissflat_am = {"faissflat", FAISSFLAT_MAGIC, FAISSFLAT_VERSION, faissflat_build,
	faissflat_check};

void
faissflat_read_meta(Relation index, ImgsIndexMeta *meta)
{
	imgs_meta_read(index, &faissflat_am, meta, NULL, 0);
}

void
faissflat_read_meta_codes(Relation index, ImgsIndexMeta *header, FaissflatMeta *meta)
{
	imgs_meta_read(index, &faissflat_am, header, meta, sizeof(FaissflatMeta));
	if (meta->dims > KD_MAX_PCA_DIMS || meta->dims > header->store.dim ||
		(meta->dims > 0 && (meta->pca_pages == 0 || meta->ranges_pages == 0 ||
							meta->pca_start == InvalidBlockNumber ||
							meta->codes_last == InvalidBlockNumber)))
		imgs_index_corrupted(index, "has a metapage with %u coded dimensions that do not fit its pages",
							 meta->dims);
}

/* The code list's entries at build: slot i's at entries + i * entry size. */
typedef struct CodeFill
{
	const char *entries;
	Size		entry_size;
} CodeFill;

static void
fill_code_entry(uint32 i, char *entry, void *arg)
{
	CodeFill   *cf = (CodeFill *) arg;

	memcpy(entry, cf->entries + (Size) i * cf->entry_size, cf->entry_size);
}

/* Learns the projection and the ranges, codes every stored vector, writes faissflat's pages. */
static void
build_codes(Relation index, ImgsBuildLoad *load, FaissflatMeta *meta)
{
	/*
	 * no more components than sample rows: past them a PCA has no direction
	 * the data shows, and its pages (m x dim floats) would dwarf a small
	 * table's index (2 rows of 16000-d: 33 MB at 512)
	 */
	int			m = (int) Min(Min(FAISSFLAT_CODE_DIMS, load->dim), load->sample_count);
	int			dim = load->dim;
	int			metric = load->header.metric == IMGS_METRIC_COSINE ? KD_METRIC_COSINE : KD_METRIC_L2;
	Size		entry_size = faissflat_entry_size(m);
	ImgsError	err;
	KdPca	   *pca;

	pca = kd_pca_train(load->sample, load->sample_count, dim, m, metric, BUILD_SEED, &err);
	if (pca == NULL)
		imgs_raise_cxx_error_in(&err, psprintf("could not learn the projection of faissflat index \"%s\"",
											   RelationGetRelationName(index)));
	PG_TRY();
	{
		float	   *sample_proj = MemoryContextAllocHuge(CurrentMemoryContext,
														 sizeof(float) * (Size) m * Max(load->sample_count, 1));
		float	   *resid_scratch = palloc(sizeof(float));
		float	   *ranges = palloc(sizeof(float) * (Size) m * 2);
		Size		pca_floats = (Size) dim + (Size) m * dim;
		float	   *pca_data = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * pca_floats);
		char	   *entries = MemoryContextAllocHuge(CurrentMemoryContext, entry_size * (Size) load->n);
		float	   *y = palloc(sizeof(float) * m);
		ImgsStoreReader reader;
		uint32		group_slots = imgs_group_slots(&load->header.store);
		ImgsSlotHeader *headers = palloc(sizeof(ImgsSlotHeader) * group_slots);
		float	   *vectors = MemoryContextAllocHuge(CurrentMemoryContext,
													 sizeof(float) * (Size) dim * group_slots);
		uint32		ngroups;
		CodeFill	cf;

		/* the ranges, of the projected sample */
		for (int64 j = 0; j < load->sample_count; j++)
			if (kd_project(pca, load->sample + (Size) j * dim, sample_proj + (Size) j * m, resid_scratch) < 0)
				ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
		if (ff_ranges_train(sample_proj, load->sample_count, m, ranges, &err) != 0)
			imgs_raise_cxx_error_in(&err, psprintf("could not learn the code ranges of faissflat index \"%s\"",
												   RelationGetRelationName(index)));

		/* every stored vector's entry (slots 0..n-1 in load order) */
		imgs_store_open(&reader, index, &faissflat_am, &load->header);
		ngroups = imgs_store_ngroups(&load->header.store);
		memset(entries, 0, entry_size * (Size) load->n);
		for (uint32 g = 0; g < ngroups; g++)
		{
			uint32		first = g * group_slots;
			uint32		n = Min(group_slots, (uint32) load->n - first);

			imgs_store_read_vectors(&reader, g, n, headers, vectors);
			CHECK_FOR_INTERRUPTS();
			for (uint32 j = 0; j < n; j++)
			{
				FaissflatEntry *e = (FaissflatEntry *) (entries + (Size) (first + j) * entry_size);

				if (kd_project(pca, vectors + (Size) j * dim, y, &e->resid) < 0)
					ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
				e->slot = first + j;
				e->mag = ff_magnitude(y, m, e->resid);
				ff_encode(ranges, m, y, e->code, &e->err, &e->yh2);
			}
		}
		imgs_store_close(&reader);

		/* the pages */
		meta->dims = m;
		meta->orth_err = pca->orth_err;
		memcpy(pca_data, pca->mean, sizeof(float) * dim);
		memcpy(pca_data + dim, pca->rows, sizeof(float) * (Size) m * dim);
		meta->pca_pages = imgs_pages_for(pca_floats, IMGS_FLOATS_PER_PAGE);
		meta->pca_start = imgs_alloc_blocks(index, &load->header, meta->pca_pages);
		imgs_build_write_floats(index, meta->pca_start, FAISSFLAT_PAGE_PCA, pca_data, pca_floats);
		meta->ranges_pages = imgs_pages_for((Size) m * 2, IMGS_FLOATS_PER_PAGE);
		meta->ranges_start = imgs_alloc_blocks(index, &load->header, meta->ranges_pages);
		imgs_build_write_floats(index, meta->ranges_start, FAISSFLAT_PAGE_RANGES, ranges,
								(Size) m * 2);
		cf.entries = entries;
		cf.entry_size = entry_size;
		meta->codes_last = imgs_list_build(index, &load->header, FAISSFLAT_PAGE_CODES, 0, entry_size,
										   (uint32) load->n, fill_code_entry, &cf);
	}
	PG_FINALLY();
	{
		kd_pca_free(pca);
	}
	PG_END_TRY();
}

/*
 * What LIMIT 30 searches from midpoints of the sample do (into meta), for
 * the cost estimate: where the codes prune, a few exact keys; where they
 * cannot (512 coded components of 4096, a flat spectrum), the scan goes on
 * with flat passes, which a price of a few keys would hide.
 */
static void
measure_search(Relation index, ImgsBuildLoad *load, FaissflatMeta *meta, const float *queries,
			   int nqueries)
{
	/* keys, searches that went on with flat passes, share past the first cut, staged searches */
	double		sums[4] = {0, 0, 0, 0};

	/* the staged pass is what they measure: taken unless faissflat.staged is off */
	faissflat_staged_sampling = faissflat_staged != FAISSFLAT_STAGED_OFF;
	PG_TRY();
	{
		imgs_build_sample_searches(index, load, meta, sizeof(*meta), queries, nqueries,
								   faissflat_scan_tally, sums);
	}
	PG_FINALLY();
	{
		faissflat_staged_sampling = false;
	}
	PG_END_TRY();
	meta->sample_keys = (float4) (sums[0] / nqueries);
	meta->sample_flat = (float4) (sums[1] / nqueries);
	if (sums[3] == nqueries)
	{
		meta->sample_head = (float4) (sums[2] / nqueries);
		meta->sample_flags |= FAISSFLAT_SAMPLED_HEAD;
	}
	ereport(DEBUG1,
			(errmsg_internal("faissflat index \"%s\": %d sample searches (LIMIT %d) computed %.0f exact "
							 "distances on average; %.0f%% went on with flat passes; %.4f%% of the entries "
							 "went on past the first %d dimensions (%s)",
							 RelationGetRelationName(index), nqueries, IMGS_SAMPLE_K,
							 meta->sample_keys, 100.0 * meta->sample_flat, 100.0 * meta->sample_head,
							 FF_CUT_FIRST, !(meta->sample_flags & FAISSFLAT_SAMPLED_HEAD) ? "not measured" :
							 meta->sample_head > FAISSFLAT_STAGED_MAX_SHARE ? "scans: one pass" : "scans: staged")));
}

IndexBuildResult *
faissflat_build(Relation heap, Relation index, IndexInfo *index_info)
{
	ImgsBuildLoad *load;
	FaissflatMeta meta;
	IndexBuildResult *result;
	double		heap_tuples;
	MemoryContext build_ctx;
	MemoryContext old_ctx;

	build_ctx = AllocSetContextCreate(CurrentMemoryContext, "faissflat build", ALLOCSET_DEFAULT_SIZES);
	old_ctx = MemoryContextSwitchTo(build_ctx);
	load = palloc0(sizeof(ImgsBuildLoad));
	memset(&meta, 0, sizeof(meta));
	meta.pca_start = meta.ranges_start = meta.codes_last = InvalidBlockNumber;
	heap_tuples = imgs_build_load(load, heap, index, index_info, &faissflat_am, FAISSFLAT_PHASE_LOAD,
								  SAMPLE_MAX_VECTORS, SAMPLE_MAX_BYTES, BUILD_SEED);
	/* codes where a bound exists (not the inner product, nor an opfamily of several metrics) */
	if (load->n > 0 && load->sample_count > 0 &&
		(load->header.metric == IMGS_METRIC_L2 || load->header.metric == IMGS_METRIC_COSINE))
	{
		float	   *queries;
		int			nqueries = imgs_build_sample_queries(load, IMGS_SAMPLE_QUERIES, &queries);

		pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, FAISSFLAT_PHASE_CODES);
		build_codes(index, load, &meta);
		if (meta.dims > 0 && faissflat_codes && nqueries > 0)
			measure_search(index, load, &meta, queries, nqueries);
	}
	imgs_build_write_meta(index, &load->header, &meta, sizeof(meta));

	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, FAISSFLAT_PHASE_WAL);
	imgs_log_built_index(index);

	MemoryContextSwitchTo(old_ctx);
	result = palloc(sizeof(IndexBuildResult));
	result->heap_tuples = heap_tuples;
	result->index_tuples = load->n;
	MemoryContextDelete(build_ctx);
	return result;
}

/* The init fork of an unlogged index: an empty metapage (index/index_am.h). */
void
faissflat_buildempty(Relation index)
{
	imgs_buildempty(index, &faissflat_am);
}
