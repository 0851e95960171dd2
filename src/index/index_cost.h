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

#endif							/* IMGS_INDEX_COST_H */
