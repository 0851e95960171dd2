/*
 * index_cost.h — amcostestimate helpers shared by the imgsearch index methods.
 */
#ifndef IMGS_INDEX_COST_H
#define IMGS_INDEX_COST_H

#include "nodes/pathnodes.h"

#include "imgsearch.h"

/*
 * True when the index must not be used, with prohibitive (infinite) costs
 * filled in: the path has neither an ORDER BY on the index's operator nor a
 * sphere qual (these indexes answer nothing else), or imgsearch.method
 * names a method other than `mine` (argsort names none, so the planner falls
 * back to a sequential scan and a sort).
 */
extern bool imgs_cost_prohibitive(IndexPath *path, ImgsMethod mine,
								  Cost *startup_cost, Cost *total_cost,
								  Selectivity *selectivity, double *correlation,
								  double *pages);

/*
 * The fraction of the rows the scan returns: 1 for an ORDER BY scan (it may
 * be read to the end), the sphere quals' selectivity for a range search
 * (their restriction estimator, contsel: a fixed 0.1%; sql/range.sql).
 */
extern Selectivity imgs_cost_selectivity(PlannerInfo *root, IndexPath *path);

/* The cost of reading `pages` pages of the index in block order (see index_cost.c). */
extern Cost imgs_cost_sequential_pages(IndexPath *path, double pages);

/*
 * What a method's scan does to return its first `rows` rows in order, in
 * units of one distance of a flat pass over the stored vectors (what
 * faissflat computes per vector), and the share of the index's pages it
 * reads.
 */
typedef struct ImgsScanWork
{
	double		distances;
	double		page_share;
} ImgsScanWork;

typedef ImgsScanWork (*ImgsScanWorkFn) (double rows, const void *method);

/* Flat passes (index/flat_scan.h) a scan of `slots` vectors runs to return `rows` rows. */
extern double imgs_cost_flat_passes(double rows, double slots);

/*
 * The costs of an ORDER BY scan of the index whose work for n rows is
 * work(n, method) (dim: the vectors' dimension): the rows the query needs
 * read in order (about LIMIT / the filter's selectivity), priced against
 * the sequential scan, filter and sort the planner weighs it with (see
 * index_cost.c). Where imgsearch.method names the method, disable_cost is
 * taken off both costs, so that its index wins over any sort. Fills every
 * output of amcostestimate.
 */
extern void imgs_cost_ordered_scan(PlannerInfo *root, IndexPath *path, int dim,
								   ImgsScanWorkFn work, const void *method,
								   Cost *startup_cost, Cost *total_cost,
								   Selectivity *selectivity, double *correlation,
								   double *pages);

#endif							/* IMGS_INDEX_COST_H */
