/*
 * faissflat.h — the exact index method: every vector in a vector store
 * (index/vector_store.h), every scan a pass over all of them.
 *
 * Pages: block 0 is the metapage (the shared header of index/index_meta.h;
 * faissflat has no data of its own there), then the vector store's groups
 * (one page of slot headers, then the vectors) and, past 512 groups, its
 * directory pages; faissflat allocates no pages of its own. The scan streams the vector pages through
 * the SIMD kernels of index/distance_core, the same ones the SQL operators
 * use, so the index returns exactly the rows, order and distances of a
 * sequential scan and sort.
 */
#ifndef FAISSFLAT_H
#define FAISSFLAT_H

#include "access/amapi.h"
#include "access/genam.h"
#include "nodes/execnodes.h"

#include "index/index_check.h"
#include "index/vector_store.h"

#define FAISSFLAT_MAGIC		0xFA155F1A
/*
 * 1: groups at fixed block numbers (first_block + group * group_pages).
 * 2: the shared header (index_meta.h): block allocator, group directory, metric.
 */
#define FAISSFLAT_VERSION	2

extern const ImgsIndexAm faissflat_am;

/* Build phases reported in pg_stat_progress_create_index (after "initializing") */
#define FAISSFLAT_PHASE_LOAD	2
#define FAISSFLAT_PHASE_WAL		3

/* faissflat_build.c */
extern IndexBuildResult *faissflat_build(Relation heap, Relation index, IndexInfo *index_info);
extern void faissflat_buildempty(Relation index);
extern void faissflat_read_meta(Relation index, ImgsIndexMeta *meta);

/* faissflat_insert.c */
extern bool faissflat_insert(Relation index, Datum *values, bool *isnull,
							 ItemPointer heap_tid, Relation heap,
							 IndexUniqueCheck check_unique, bool index_unchanged,
							 IndexInfo *index_info);

/* faissflat_scan.c */
extern IndexScanDesc faissflat_beginscan(Relation index, int nkeys, int norderbys);
extern void faissflat_rescan(IndexScanDesc scan, ScanKey keys, int nkeys,
							 ScanKey orderbys, int norderbys);
extern bool faissflat_gettuple(IndexScanDesc scan, ScanDirection dir);
extern void faissflat_endscan(IndexScanDesc scan);

/* faissflat_vacuum.c */
extern IndexBulkDeleteResult *faissflat_bulkdelete(IndexVacuumInfo *info,
												   IndexBulkDeleteResult *stats,
												   IndexBulkDeleteCallback callback,
												   void *callback_state);
extern IndexBulkDeleteResult *faissflat_vacuumcleanup(IndexVacuumInfo *info,
													  IndexBulkDeleteResult *stats);

/* faissflat_check.c */
extern void faissflat_check(Relation index, ImgsCheckedStore *store);

/* faissflat_handler.c: from _PG_init, the method's registration. */
extern void faissflat_init(void);

#endif							/* FAISSFLAT_H */
