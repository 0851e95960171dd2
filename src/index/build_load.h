/*
 * build_load.h — the first step of every imgsearch index build: the
 * metapage, every non-NULL vector of the table into a fresh vector store
 * (slots 0..n-1 in scan order), and a seeded reservoir sample for what the
 * method learns (kdtree's PCA, lsh's centroids).
 */
#ifndef IMGS_BUILD_LOAD_H
#define IMGS_BUILD_LOAD_H

#include "common/pg_prng.h"
#include "nodes/execnodes.h"

#include "index/index_scan.h"
#include "index/vector_store.h"

typedef struct ImgsBuildLoad
{
	ImgsIndexMeta header;		/* the metapage's, as the build keeps it (allocator, store) */
	ImgsStoreBuilder store;
	int64		n;				/* vectors loaded */
	int			dim;			/* their dimension, once known */
	float	   *sample;			/* [sample_allocated * dim] */
	int64		sample_count;
	int64		sample_allocated;	/* grows by doubling up to sample_capacity */
	int64		sample_capacity;
	int64		sample_max_vectors;
	Size		sample_max_bytes;
	pg_prng_state prng;
	MemoryContext tmp_ctx;		/* detoasted values, reset per tuple */
} ImgsBuildLoad;

/*
 * Writes block 0 (a metapage of am for the index's metric, completed by the
 * method at the end) and loads the table; the sample keeps at most
 * max_vectors vectors and max_bytes bytes, the same for the same table.
 * Reports phase `phase` and the tuples done. Allocates in the current
 * memory context; returns the heap tuples scanned.
 */
extern double imgs_build_load(ImgsBuildLoad *load, Relation heap, Relation index,
							  IndexInfo *index_info, const ImgsIndexAm *am, int phase,
							  int64 max_vectors, Size max_bytes, uint64 seed);

/* The bytes the sample holds now, and its release (after training). */
extern Size imgs_build_sample_bytes(const ImgsBuildLoad *load);
extern void imgs_build_sample_free(ImgsBuildLoad *load);

/*
 * Queries for the build's sample searches (imgs_sample_searches,
 * index_scan.h), made from the sample before training may rewrite it: up to
 * `want` midpoints of two of its vectors, half the sample apart, in *queries
 * (palloc'd); returns how many. A row itself as the query lies in its own
 * bucket, at distance 0 from a row: at 100k rows of clustered data lsh's
 * search from a row computed about half the exact distances a midpoint's did.
 */
extern int	imgs_build_sample_queries(const ImgsBuildLoad *load, int want, float **queries);

/*
 * Writes the metapage (the header and method_data, as the scans read it)
 * and runs the sample searches from the nqueries queries on the index just
 * written (imgs_sample_searches: LIMIT IMGS_SAMPLE_K, the index's metric, L2
 * for an opfamily of several); tally adds each scan's figures to sums.
 */
extern void imgs_build_sample_searches(Relation index, const ImgsBuildLoad *load,
									   const void *method_data, Size method_len,
									   const float *queries, int nqueries,
									   ImgsSampleTally tally, double *sums);

/* Writes the metapage: header and the method's data (build, no WAL: logged with the index). */
extern void imgs_build_write_meta(Relation index, const ImgsIndexMeta *header,
								  const void *method_data, Size method_len);

/*
 * Threads for a build's computing (cxx/parallel.hpp): the backend and the
 * parallel workers PostgreSQL would plan for a parallel build of this index
 * (max_parallel_maintenance_workers, the table's parallel_workers, its
 * size), but no more than the cores online.
 */
extern int	imgs_build_threads(Relation heap, Relation index);

#endif							/* IMGS_BUILD_LOAD_H */
