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
 * The build's memory stays within maintenance_work_mem (BuildMemory): the
 * sample takes at most half; the entries go through a tuplesort that spills
 * to disk past what is left; the index is the same bytes whether it spilled
 * or not.
 * Everything is written without WAL, then logged once (log_newpage_range).
 *
 * An empty table gives an index without a hash (bits 0): inserts go to the
 * store only and scans read every vector, until REINDEX learns a hash.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_operator_d.h"
#include "catalog/pg_type_d.h"
#include "commands/progress.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/memutils.h"
#include "utils/tuplesort.h"

#include "cxx/cxx_error.h"
#include "index/build_load.h"
#include "index/index_am.h"
#include "lsh/lsh.h"

/* The k-means sample: at most this many vectors, and this many bytes (and half of maintenance_work_mem). */
#define SAMPLE_MAX_VECTORS	50000
#define SAMPLE_MAX_BYTES	((Size) 64 * 1024 * 1024)
/* The least memory a tuplesort is given (PostgreSQL's own floor) */
#define SORT_MIN_BYTES		((Size) 64 * 1024)
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

/*
 * What the build holds in memory besides the sort of the entries, in bytes,
 * for `bits` and `k` buckets (each term names its array):
 * - training: the sample (held by the caller: sample_bytes), k-means' ids
 *   and assignments (12 bytes a sample vector), sums (k x dim doubles),
 *   norms and counts, the centroids, and the rotation (made in double, kept
 *   in float);
 * - hashing, once the sample is freed: the rotation, the centroids and
 *   their rotations, the buckets' counts and last pages, and one group's
 *   vectors, headers, sketches and floats.
 * The sort takes what hashing leaves of maintenance_work_mem.
 */
typedef struct BuildMemory
{
	Size		train;			/* the peak while training, the sample included */
	Size		hash;			/* held while hashing, the sort aside */
} BuildMemory;

static BuildMemory
build_memory(Size sample_bytes, int64 sample_count, uint32 bits, uint32 dim, uint32 k,
			 uint32 group_slots)
{
	Size		rotation = (Size) bits * dim * sizeof(float);
	Size		centroids = (Size) k * dim * sizeof(float);
	BuildMemory mem;

	mem.train = sample_bytes + (Size) sample_count * (sizeof(int64) + sizeof(int32)) +
		(Size) k * dim * sizeof(double) + (Size) k * (sizeof(float) + sizeof(int64)) +
		centroids + rotation + (Size) bits * dim * sizeof(double);
	mem.hash = rotation + centroids + (Size) k * bits * sizeof(float) + (Size) k * sizeof(float) +
		(Size) k * (2 * sizeof(uint32) + sizeof(BlockNumber)) +
		(Size) group_slots * (sizeof(ImgsSlotHeader) + sizeof(float) * dim +
							  lsh_code_bytes((int32) bits) + 3 * sizeof(float));
	return mem;
}

static bool
build_memory_fits(BuildMemory mem, Size budget)
{
	return mem.train <= budget && mem.hash + SORT_MIN_BYTES <= budget;
}

static Size
build_memory_needed(BuildMemory mem)
{
	return Max(mem.train, mem.hash + SORT_MIN_BYTES);
}

/*
 * The sketch bits: the reloption (cut to dim), or, for 0, the most of
 * LSH_AUTO_MAX_BITS that the rows can use and maintenance_work_mem allows.
 * Few rows need few bits: every candidate is re-ranked exactly, and a table
 * of n rows has at most n of them; so a small table of wide vectors gets a
 * small index. Either way the build must fit in maintenance_work_mem
 * (build_memory): a clear error (54000) where it cannot, rather than
 * minutes and gigabytes.
 */
static uint32
choose_bits(Relation index, int bits_option, const ImgsBuildLoad *load, uint32 n_buckets)
{
	Size		budget = (Size) maintenance_work_mem * 1024;
	Size		sample_bytes = imgs_build_sample_bytes(load);
	uint32		dim = (uint32) load->dim;
	uint32		group_slots = imgs_group_slots(&load->header.store);
	uint32		bits;
	BuildMemory mem;

#define BUILD_MEMORY(b) build_memory(sample_bytes, load->sample_count, (b), dim, n_buckets, group_slots)
	if (bits_option > 0)
	{
		bits = Min((uint32) bits_option, dim);
		mem = BUILD_MEMORY(bits);
		if (!build_memory_fits(mem, budget))
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("lsh index \"%s\" with %u bits at %u dimensions needs %zu MB to build; "
							"maintenance_work_mem is %d MB",
							RelationGetRelationName(index), bits, dim,
							build_memory_needed(mem) / (1024 * 1024) + 1, maintenance_work_mem / 1024),
					 errhint("Raise maintenance_work_mem, or ask for fewer bits (WITH (bits = ...), or 0 to let the build choose).")));
		return bits;
	}
	bits = (uint32) Min((int64) LSH_AUTO_MAX_BITS, Max((int64) LSH_AUTO_MIN_BITS, (load->n + 31) / 32 * 32));
	bits = Min(bits, dim);
	while (bits > 32 && !build_memory_fits(BUILD_MEMORY(bits), budget))
		bits -= 32;
	mem = BUILD_MEMORY(bits);
	if (!build_memory_fits(mem, budget))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("lsh index \"%s\" at %u dimensions needs %zu MB to build; maintenance_work_mem is %d MB",
						RelationGetRelationName(index), dim, build_memory_needed(mem) / (1024 * 1024) + 1,
						maintenance_work_mem / 1024),
				 errhint("Raise maintenance_work_mem, or ask for fewer buckets (WITH (buckets = ...)).")));
#undef BUILD_MEMORY
	return bits;
}

/*
 * The entries, sorted by bucket and then slot: each a bytea of the bucket
 * and the slot, big-endian (so that bytea's order is theirs), then the
 * entry itself.
 */
#define SORT_KEY_BYTES	(2 * sizeof(uint32))

static void
put_be32(uint8 *p, uint32 v)
{
	p[0] = (uint8) (v >> 24);
	p[1] = (uint8) (v >> 16);
	p[2] = (uint8) (v >> 8);
	p[3] = (uint8) v;
}

static uint32
get_be32(const uint8 *p)
{
	return ((uint32) p[0] << 24) | ((uint32) p[1] << 16) | ((uint32) p[2] << 8) | (uint32) p[3];
}

typedef struct BucketFill
{
	Tuplesortstate *sort;
	uint32		bucket;			/* the bucket being written */
	Size		entry_size;
} BucketFill;

/* The bucket's next entry, from the sort (imgs_list_build fills in order). */
static void
fill_bucket_entry(uint32 i, char *entry, void *arg)
{
	BucketFill *bf = (BucketFill *) arg;
	Datum		value;
	bool		isnull;
	bytea	   *item;

	if (!tuplesort_getdatum(bf->sort, true, &value, &isnull, NULL) || isnull)
		elog(ERROR, "lsh build: the sort of the entries ended before bucket %u's entry %u", bf->bucket, i);
	item = DatumGetByteaPP(value);
	if (VARSIZE_ANY_EXHDR(item) != SORT_KEY_BYTES + bf->entry_size ||
		get_be32((uint8 *) VARDATA_ANY(item)) != bf->bucket)
		elog(ERROR, "lsh build: the sort of the entries gave a foreign entry in bucket %u", bf->bucket);
	memcpy(entry, VARDATA_ANY(item) + SORT_KEY_BYTES, bf->entry_size);
	pfree(item);
}

/* Steps 2 and 3, on `threads` threads; fills meta. */
static void
build_hash(Relation index, ImgsBuildLoad *load, int bits_option, int buckets_option, int threads,
		   LshMeta *meta)
{
	uint32		dim = (uint32) load->dim;
	uint32		n_buckets = choose_buckets(load->n, buckets_option);
	uint32		bits = choose_bits(index, bits_option, load, n_buckets);
	Size		entry_size = lsh_entry_size(bits);
	uint32		group_slots = imgs_group_slots(&load->header.store);
	float	   *rotation = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * bits * dim);
	float	   *centroids = MemoryContextAllocHuge(CurrentMemoryContext,
												   sizeof(float) * (Size) n_buckets * dim);
	LshCache	cache;
	ImgsError	err;
	int64		prepared;
	int32		trained;
	Size		sort_bytes;
	Tuplesortstate *sort;
	uint32	   *counts;
	BlockNumber *last;
	ImgsStoreReader reader;
	ImgsSlotHeader *headers;
	float	   *vectors;
	bytea	   *item;

	ereport(DEBUG1,
			(errmsg_internal("lsh index \"%s\": training and hashing on %d thread%s",
							 RelationGetRelationName(index), threads, threads == 1 ? "" : "s")));
	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, LSH_PHASE_TRAIN);
	/* on the sample itself, which the build needs no more */
	prepared = lsh_prepare_sample(load->sample, load->sample_count, (int32) dim, load->header.metric);
	trained = lsh_train_prepared(load->sample, prepared, (int32) dim, (int32) bits, (int32) n_buckets,
								 KMEANS_ITERATIONS, BUILD_SEED, threads, rotation, centroids, &err);
	if (trained < 1)
		imgs_raise_cxx_error(&err);
	n_buckets = (uint32) trained;
	imgs_build_sample_free(load);

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

	/* every vector's entry, into the sort, with what maintenance_work_mem leaves it */
	sort_bytes = Max(SORT_MIN_BYTES, (Size) maintenance_work_mem * 1024 -
					 Min((Size) maintenance_work_mem * 1024,
						 build_memory(0, 0, bits, dim, n_buckets, group_slots).hash));
	ereport(DEBUG1,
			(errmsg_internal("lsh index \"%s\": %d bits, %u buckets; the sort of the entries has %zu kB",
							 RelationGetRelationName(index), bits, n_buckets, sort_bytes / 1024)));
	sort = tuplesort_begin_datum(BYTEAOID, ByteaLessOperator, InvalidOid, false,
								 (int) (sort_bytes / 1024), NULL, TUPLESORT_NONE);	/* <= maintenance_work_mem */
	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, LSH_PHASE_HASH);
	counts = palloc0(sizeof(uint32) * n_buckets);
	headers = palloc(sizeof(ImgsSlotHeader) * group_slots);
	vectors = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * (Size) dim * group_slots);
	item = palloc(VARHDRSZ + SORT_KEY_BYTES + entry_size);
	SET_VARSIZE(item, VARHDRSZ + SORT_KEY_BYTES + entry_size);
	{
		Size		code_bytes = lsh_code_bytes((int32) bits);
		uint8	   *codes = palloc(code_bytes * group_slots);
		float	   *floats = palloc(sizeof(float) * 3 * group_slots);
		int32	   *bucket_of = palloc(sizeof(int32) * group_slots);
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
			if (!lsh_hash_many(&cache.model, vectors, n, bucket_of, codes,
							   floats, floats + group_slots, floats + 2 * group_slots, threads, &err))
				imgs_raise_cxx_error(&err);
			for (uint32 i = 0; i < n; i++)
			{
				uint8	   *key = (uint8 *) VARDATA(item);
				LshEntry   *e = (LshEntry *) (key + SORT_KEY_BYTES);

				put_be32(key, (uint32) bucket_of[i]);
				put_be32(key + sizeof(uint32), first + i);
				e->slot = first + i;
				e->norm2 = floats[i];
				e->scale = floats[group_slots + i];
				e->cdot = floats[2 * group_slots + i];
				memcpy(e->code, codes + (Size) i * code_bytes, code_bytes);
				tuplesort_putdatum(sort, PointerGetDatum(item), false);
				counts[bucket_of[i]]++;
			}
			pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE, first + n);
		}
		imgs_store_close(&reader);
	}
	tuplesort_performsort(sort);

	/* the buckets, one after another, from the sort */
	last = palloc(sizeof(BlockNumber) * n_buckets);
	for (uint32 b = 0; b < n_buckets; b++)
	{
		BucketFill	bf = {sort, b, entry_size};

		CHECK_FOR_INTERRUPTS();
		last[b] = imgs_list_build(index, &load->header, LSH_PAGE_BUCKET, b, entry_size, counts[b],
								  fill_bucket_entry, &bf);
	}
	tuplesort_end(sort);
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
								  SAMPLE_MAX_VECTORS,
								  Min(SAMPLE_MAX_BYTES, (Size) maintenance_work_mem * 1024 / 2),
								  BUILD_SEED);
	if (load.n > 0)
	{
		float	   *queries;
		int			nqueries = imgs_build_sample_queries(&load, IMGS_SAMPLE_QUERIES, &queries);

		build_hash(index, &load, bits, buckets, imgs_build_threads(heap, index), &meta);
		if (meta.bits > 0 && lsh_error_bound > 0 && lsh_probes > 0 && nqueries > 0)
		{
			double		sums[2] = {0, 0};	/* buckets, keys */
			double		sample_buckets;
			double		sample_keys;

			imgs_build_sample_searches(index, &load, &meta, sizeof(meta), queries, nqueries,
									   lsh_scan_tally, sums);
			sample_buckets = sums[0] / nqueries;
			sample_keys = sums[1] / nqueries;
			meta.sample_buckets = (float4) sample_buckets;
			meta.sample_keys = (float4) sample_keys;
			meta.sample_probes = (uint32) lsh_probes;
			ereport(DEBUG1,
					(errmsg_internal("lsh index \"%s\": %d sample searches (LIMIT %d) probed %.1f of %u buckets "
									 "and computed %.0f exact distances on average",
									 RelationGetRelationName(index), nqueries, IMGS_SAMPLE_K,
									 sample_buckets, meta.n_buckets, sample_keys)));
		}
	}
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
