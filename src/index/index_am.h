/*
 * index_am.h — what the imgsearch index access methods share in their
 * handler and build: the access method's properties, the init fork of an
 * unlogged index, the dimension a column's type modifier fixes.
 */
#ifndef IMGS_INDEX_AM_H
#define IMGS_INDEX_AM_H

#include "access/amapi.h"
#include "utils/rel.h"

#include "index/index_meta.h"

/*
 * A new IndexAmRoutine with the properties every imgsearch method has: one
 * column, ORDER BY operators and the sphere (range) search operators
 * (IMGS_NUM_STRATEGIES, no support functions), tuples from amgettuple, no bitmap, no parallel scan, parallel
 * bulk delete. The method fills in its callbacks.
 */
extern IndexAmRoutine *imgs_am_routine(void);

/* ambuildempty: the init fork of an unlogged index is a metapage of an empty index of am, WAL-logged. */
extern void imgs_buildempty(Relation index, const ImgsIndexAm *am);

/*
 * amvacuumcleanup of every imgsearch method: where no bulkdelete pass ran
 * (nothing to delete), one with no dead TIDs (bulkdelete's callback NULL)
 * counts the live vectors.
 */
extern IndexBulkDeleteResult *imgs_vacuumcleanup(IndexVacuumInfo *info, IndexBulkDeleteResult *stats,
												 ambulkdelete_function bulkdelete);

/*
 * The registry of methods: each method's init (called from _PG_init)
 * registers its descriptor; imgs_index_am_of finds an index's, or NULL for
 * an index of another access method; imgs_index_am_names lists them all
 * ("faissflat, kdtree, lsh"), for messages.
 */
extern void imgs_register_index_am(const ImgsIndexAm *am);
extern const ImgsIndexAm *imgs_index_am_of(Relation index);
extern char *imgs_index_am_names(void);

/* The dimension the indexed column's type modifier fixes, or 0 (the first vector fixes it). */
extern int	imgs_index_typmod_dim(Relation index);

/* The server's online cores (at least 1): the most threads a build or scan runs on. */
extern int	imgs_online_cores(void);

#endif							/* IMGS_INDEX_AM_H */
