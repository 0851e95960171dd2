/*
 * index_cost.c — amcostestimate helpers shared by the imgsearch index methods
 * (see index_cost.h).
 */
#include "postgres.h"

#include "optimizer/optimizer.h"
#include "utils/float.h"
#include "utils/selfuncs.h"
#include "utils/spccache.h"

#include "index/index_cost.h"

bool
imgs_cost_prohibitive(IndexPath *path, ImgsMethod mine,
					  Cost *startup_cost, Cost *total_cost,
					  Selectivity *selectivity, double *correlation, double *pages)
{
	if ((path->indexorderbys != NIL || path->indexclauses != NIL) &&
		(imgs_method == IMGS_METHOD_AUTO || imgs_method == (int) mine))
		return false;
	*startup_cost = get_float8_infinity();
	*total_cost = get_float8_infinity();
	*selectivity = 0;
	*correlation = 0;
	*pages = 0;
	return true;
}

/*
 * Pages read in block order cost seq_page_cost each, but no more pages are
 * charged than the table itself has. The planner charges a sequential scan
 * for the table's main fork only, while imgfeat values over about 2 kB (512
 * dimensions and up) live out of line in TOAST, which that scan also reads,
 * with an index probe per row, at no charge. An index holding the vectors
 * themselves would otherwise look many times dearer than a sequential scan
 * that in truth reads the same bytes and more. (pgvector's ivfflat makes the
 * same correction.)
 */
Cost
imgs_cost_sequential_pages(IndexPath *path, double pages)
{
	double		seq_page_cost;

	get_tablespace_page_costs(path->indexinfo->reltablespace, NULL, &seq_page_cost);
	return Min(pages, Max(path->indexinfo->rel->pages, 1)) * seq_page_cost;
}

Selectivity
imgs_cost_selectivity(PlannerInfo *root, IndexPath *path)
{
	if (path->indexclauses == NIL)
		return 1.0;
	return clauselist_selectivity(root, get_quals_from_indexclauses(path->indexclauses),
								  path->indexinfo->rel->relid, JOIN_INNER, NULL);
}
