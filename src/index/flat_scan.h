/*
 * flat_scan.h — an ORDER BY scan over every vector of the store, in passes.
 *
 * The scan does not know the LIMIT, so it works in passes. A pass streams
 * every vector of the store through the distance kernel and keeps the best K
 * candidates ranked after the last row returned (by key, then slot: a total
 * order, so no row is returned twice or skipped; index_scan.h); it sorts them
 * and returns them in order. A consumer that wants more rows than a pass kept
 * starts the next pass, with K grown sixteenfold, so a scan of every row
 * takes a few passes and memory stays at most one small candidate per
 * vector, never the vectors themselves.
 *
 * A range scan's pass keeps only the rows within the sphere bound
 * (index_scan.h): a flat scan reads every vector, but sorts and returns only
 * those.
 *
 * faissflat's whole scan; a partitioned method's scan where it has no
 * structure to search (an index built on an empty table) or nothing to order
 * by (a NULL query).
 */
#ifndef IMGS_FLAT_SCAN_H
#define IMGS_FLAT_SCAN_H

#include "index/index_scan.h"

/* Candidates kept by the first pass: more than almost any LIMIT asks for. */
#define IMGS_FLAT_FIRST_PASS	1000
/* How many times more each later pass keeps (index_cost.c counts the passes) */
#define IMGS_FLAT_PASS_GROWTH	16

typedef struct ImgsFlatScan
{
	ImgsStoreReader store;		/* as the first pass found it */
	ImgsCandidateHeap results;	/* of the current pass, sorted */
	int			next;			/* next result to return */
	bool		more;			/* a later pass may find more rows */
	/* per group buffers */
	ImgsSlotHeader headers[IMGS_MAX_GROUP_SLOTS];
	double		keys[IMGS_MAX_GROUP_SLOTS];
} ImgsFlatScan;

/*
 * Opens the store of meta (read by the caller after imgs_scan_start) and runs
 * the first pass; everything is allocated in the current memory context,
 * which must live until the next rescan.
 */
extern void imgs_flat_scan_start(ImgsFlatScan *fs, IndexScanDesc scan, ImgsScanState *ss,
								 const ImgsIndexAm *am, const ImgsIndexMeta *meta);

/* The next row (imgs_scan_return), running another pass if needed; false when none is left. */
extern bool imgs_flat_scan_next(ImgsFlatScan *fs, IndexScanDesc scan, ImgsScanState *ss);

#endif							/* IMGS_FLAT_SCAN_H */
