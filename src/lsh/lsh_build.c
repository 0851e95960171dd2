/*
 * lsh_build.c — ambuild and ambuildempty.
 *
 * 1. Load: every non-NULL vector into a fresh vector store, with a seeded
 *    sample (index/build_load.h).
 * 2. Train: the centroids (k-means on the sample) and the rotation
 *    (lsh_train).
 * 3. Hash: every vector, read back from the store, to its bucket and sketch;
 *    the buckets are written one after another, each on consecutive pages.
 * Steps 2 and 3 compute on threads inside this backend (cxx/parallel.hpp),
 * as many as PostgreSQL would give a parallel build of the index
 * (imgs_build_threads); the index is the same bytes on any number.
 * Everything is written without WAL, then logged once (log_newpage_range).
 *
 * An empty table gives an index without a hash (bits 0): inserts go to the
 * store only and scans read every vector, until REINDEX learns a hash.
 */
#include "postgres.h"

#include <math.h>

#include "commands/progress.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/memutils.h"

#include "cxx/cxx_error.h"
#include "index/build_load.h"
#include "index/index_am.h"
#include "lsh/lsh.h"

/* The k-means sample: at most this many vectors, and this many bytes. */
#define SAMPLE_MAX_VECTORS	50000
#define SAMPLE_MAX_BYTES	((Size) 64 * 1024 * 1024)
/* Lloyd steps: k-means++ would not pay on samples this size */
#define KMEANS_ITERATIONS	10
#define BUILD_SEED			UINT64CONST(0x6c73680000000001)

/* The number of buckets for n vectors: the reloption, or sqrt(n) (docs/methods.md "lsh"). */
static uint32
choose_buckets(int64 n, int buckets_option)
{
	double		b = buckets_option > 0 ? buckets_option : ceil(sqrt((double) n));

	return (uint32) Max(1, Min(b, Min((double) LSH_MAX_BUCKETS, (double) n)));
}

typedef struct BucketFill
{
	const int32 *members;		/* slots of the bucket, ascending */
	const uint8 *codes;			/* all slots' entries, by slot */
	Size		entry_size;
} BucketFill;

static void
fill_bucket_entry(uint32 i, char *entry, void *arg)
{
	BucketFill *bf = (BucketFill *) arg;

	memcpy(entry, bf->codes + (Size) bf->members[i] * bf->entry_size, bf->entry_size);
}

/*
 * Bytes the build holds for the rotation of `bits` rows: lsh_train makes it
 * in double (orthonormalised there), then keeps it in float.
 */
static Size
rotation_bytes(uint32 bits, uint32 dim)
{
	return (Size) bits * dim * (sizeof(double) + sizeof(float));
}

/*
 * The sketch bits for n vectors of dim: the reloption (cut to dim), or, for
 * 0, the most of LSH_AUTO_MAX_BITS that the rows can use and the rotation's
 * memory allows. Few rows need few bits: every candidate is re-ranked
 * exactly, and a table of n rows has at most n of them; so a small table of
 * wide vectors gets a small index. Either way the rotation must fit in
 * maintenance_work_mem: a clear error (54000) where the reloption asks for
 * more, rather than minutes and gigabytes.
 */
static uint32
choose_bits(Relation index, int bits_option, uint32 dim, int64 n)
{
	Size		budget = (Size) maintenance_work_mem * 1024;
	uint32		bits;

	if (bits_option > 0)
	{
		bits = Min((uint32) bits_option, dim);
		if (rotation_bytes(bits, dim) > budget)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("lsh index \"%s\" with %u bits at %u dimensions needs %zu MB to build; "
							"maintenance_work_mem is %d MB",
							RelationGetRelationName(index), bits, dim,
							rotation_bytes(bits, dim) / (1024 * 1024) + 1, maintenance_work_mem / 1024),
					 errhint("Raise maintenance_work_mem, or ask for fewer bits (WITH (bits = ...), or 0 to let the build choose).")));
		return bits;
	}
	bits = (uint32) Min((int64) LSH_AUTO_MAX_BITS, Max((int64) LSH_AUTO_MIN_BITS, (n + 31) / 32 * 32));
	bits = Min(bits, dim);
	while (bits > 32 && rotation_bytes(bits, dim) > budget)
		bits -= 32;
	if (rotation_bytes(bits, dim) > budget)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("lsh index \"%s\" at %u dimensions needs %zu MB to build; maintenance_work_mem is %d MB",
						RelationGetRelationName(index), dim, rotation_bytes(bits, dim) / (1024 * 1024) + 1,
						maintenance_work_mem / 1024),
				 errhint("Raise maintenance_work_mem.")));
	return bits;
}

/* Steps 2 and 3, on `threads` threads; fills meta. */
static void
build_hash(Relation index, ImgsBuildLoad *load, int bits_option, int buckets_option, int threads,
		   LshMeta *meta)
{
	uint32		dim = (uint32) load->dim;
	uint32		bits = choose_bits(index, bits_option, dim, load->n);
	uint32		n_buckets = choose_buckets(load->n, buckets_option);
	Size		entry_size = lsh_entry_size(bits);
	float	   *rotation = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * bits * dim);
	float	   *centroids = MemoryContextAllocHuge(CurrentMemoryContext,
												   sizeof(float) * (Size) n_buckets * dim);
	LshCache	cache;
	ImgsError	err;
	int32		trained;
	uint8	   *entries;
	int32	   *bucket_of;
	uint32	   *counts;
	uint32	   *starts;
	int32	   *members;
	BlockNumber *last;
	ImgsStoreReader reader;
	ImgsSlotHeader *headers;
	float	   *vectors;

	ereport(DEBUG1,
			(errmsg_internal("lsh index \"%s\": training and hashing on %d thread%s",
							 RelationGetRelationName(index), threads, threads == 1 ? "" : "s")));
	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, LSH_PHASE_TRAIN);
	trained = lsh_train(load->sample, load->sample_count, (int32) dim, (int32) bits,
						(int32) n_buckets, load->header.metric, KMEANS_ITERATIONS, BUILD_SEED,
						threads, rotation, centroids, &err);
	if (trained < 1)
		imgs_raise_cxx_error(&err);
	n_buckets = (uint32) trained;

	meta->bits = bits;
	meta->n_buckets = n_buckets;
	meta->version = 0;
	meta->build_points = load->n;
	meta->rotation_pages = imgs_pages_for((Size) bits * dim, IMGS_FLOATS_PER_PAGE);
	meta->rotation_start = imgs_alloc_blocks(index, &load->header, meta->rotation_pages);
	imgs_build_write_floats(index, meta->rotation_start, LSH_PAGE_ROTATION, rotation, (Size) bits * dim);
	meta->centroids_pages = imgs_pages_for((Size) n_buckets * dim, IMGS_FLOATS_PER_PAGE);
	meta->centroids_start = imgs_alloc_blocks(index, &load->header, meta->centroids_pages);
	imgs_build_write_floats(index, meta->centroids_start, LSH_PAGE_CENTROIDS, centroids,
							(Size) n_buckets * dim);
	meta->bucketdir_pages = imgs_pages_for(n_buckets, LSH_BUCKETS_PER_DIR_PAGE);
	meta->bucketdir_start = imgs_alloc_blocks(index, &load->header, meta->bucketdir_pages);

	/* the model as a scan would load it */
	memset(&cache, 0, sizeof(cache));
	cache.model.dim = (int32) dim;
	cache.model.bits = (int32) bits;
	cache.model.n_buckets = (int32) n_buckets;
	cache.model.metric = load->header.metric;
	cache.model.rotation = rotation;
	cache.model.centroids = centroids;
	cache.model.rot_centroids = MemoryContextAllocHuge(CurrentMemoryContext,
													   sizeof(float) * n_buckets * bits);
	cache.model.c_norms = palloc(sizeof(float) * n_buckets);
	lsh_model_prepare(&cache.model);

	/* every vector's entry, by slot */
	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, LSH_PHASE_HASH);
	entries = MemoryContextAllocHuge(CurrentMemoryContext, entry_size * (Size) load->n);
	bucket_of = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int32) * (Size) load->n);
	headers = palloc(sizeof(ImgsSlotHeader) * imgs_group_slots(&load->header.store));
	vectors = MemoryContextAllocHuge(CurrentMemoryContext,
									 sizeof(float) * (Size) dim * imgs_group_slots(&load->header.store));
	{
		uint32		group_slots = imgs_group_slots(&load->header.store);
		Size		code_bytes = lsh_code_bytes((int32) bits);
		uint8	   *codes = palloc(code_bytes * group_slots);
		float	   *floats = palloc(sizeof(float) * 3 * group_slots);
		uint32		ngroups;

		imgs_store_open(&reader, index, &lsh_am, &load->header);
		ngroups = imgs_store_ngroups(&load->header.store);
		for (uint32 g = 0; g < ngroups; g++)
		{
			uint32		first = g * group_slots;
			uint32		n = Min(group_slots, (uint32) load->n - first);

			CHECK_FOR_INTERRUPTS();
			imgs_store_read_vectors(&reader, g, n, headers, vectors);
			/* a group at a time, on the build's threads (the core polls for a cancel) */
			if (!lsh_hash_many(&cache.model, vectors, n, &bucket_of[first], codes,
							   floats, floats + group_slots, floats + 2 * group_slots, threads, &err))
				imgs_raise_cxx_error(&err);
			for (uint32 i = 0; i < n; i++)
			{
				LshEntry   *e = (LshEntry *) (entries + (Size) (first + i) * entry_size);

				e->slot = first + i;
				e->norm2 = floats[i];
				e->scale = floats[group_slots + i];
				e->cdot = floats[2 * group_slots + i];
				memcpy(e->code, codes + (Size) i * code_bytes, code_bytes);
			}
			pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE, first + n);
		}
		imgs_store_close(&reader);
	}

	/* the buckets, by counting sort of the slots */
	counts = palloc0(sizeof(uint32) * n_buckets);
	starts = palloc0(sizeof(uint32) * (n_buckets + 1));
	members = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int32) * (Size) load->n);
	for (int64 i = 0; i < load->n; i++)
		counts[bucket_of[i]]++;
	for (uint32 b = 0; b < n_buckets; b++)
		starts[b + 1] = starts[b] + counts[b];
	memset(counts, 0, sizeof(uint32) * n_buckets);
	for (int64 i = 0; i < load->n; i++)
		members[starts[bucket_of[i]] + counts[bucket_of[i]]++] = (int32) i;
	last = palloc(sizeof(BlockNumber) * n_buckets);
	for (uint32 b = 0; b < n_buckets; b++)
	{
		BucketFill	bf = {members + starts[b], entries, entry_size};

		CHECK_FOR_INTERRUPTS();
		last[b] = imgs_list_build(index, &load->header, LSH_PAGE_BUCKET, b, entry_size, counts[b],
								  fill_bucket_entry, &bf);
	}
	for (uint32 p = 0; p < meta->bucketdir_pages; p++)
	{
		PGAlignedBlock buf;
		uint32		first = p * LSH_BUCKETS_PER_DIR_PAGE;
		uint32		n = Min(LSH_BUCKETS_PER_DIR_PAGE, n_buckets - first);

		imgs_page_init(buf.data, LSH_PAGE_BUCKETDIR);
		memcpy(ImgsPageGetData(buf.data), last + first, sizeof(BlockNumber) * n);
		imgs_build_write_page(index, meta->bucketdir_start + p, buf.data);
	}
}

IndexBuildResult *
lsh_build(Relation heap, Relation index, IndexInfo *index_info)
{
	ImgsBuildLoad load;
	LshMeta		meta;
	IndexBuildResult *result;
	double		heap_tuples;
	int			bits;
	int			buckets;
	MemoryContext build_ctx;
	MemoryContext old_ctx;

	build_ctx = AllocSetContextCreate(CurrentMemoryContext, "lsh build", ALLOCSET_DEFAULT_SIZES);
	old_ctx = MemoryContextSwitchTo(build_ctx);
	lsh_reloptions(index, &bits, &buckets);
	memset(&meta, 0, sizeof(meta));
	heap_tuples = imgs_build_load(&load, heap, index, index_info, &lsh_am, LSH_PHASE_LOAD,
								  SAMPLE_MAX_VECTORS, SAMPLE_MAX_BYTES, BUILD_SEED);
	if (load.n > 0)
		build_hash(index, &load, bits, buckets, imgs_build_threads(heap, index), &meta);
	else
		ereport(NOTICE,
				(errmsg("lsh index \"%s\" was built on no rows: it has no hash",
						RelationGetRelationName(index)),
				 errdetail("Its scans read every vector, as faissflat's do."),
				 errhint("REINDEX it once the table holds its data.")));
	imgs_build_write_meta(index, &load.header, &meta, sizeof(meta));

	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, LSH_PHASE_WAL);
	imgs_log_built_index(index);

	MemoryContextSwitchTo(old_ctx);
	result = palloc(sizeof(IndexBuildResult));
	result->heap_tuples = heap_tuples;
	result->index_tuples = load.n;
	MemoryContextDelete(build_ctx);
	return result;
}

/* The init fork of an unlogged index: an empty metapage (index/index_am.h). */
void
lsh_buildempty(Relation index)
{
	imgs_buildempty(index, &lsh_am);
}
