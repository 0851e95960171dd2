/*
 * index_cost.c — amcostestimate helpers shared by the imgsearch index methods
 * (see index_cost.h).
 *
 * How an ORDER BY scan is priced. A query `WHERE filter ORDER BY feat <-> q
 * LIMIT k` reads the index in order until k rows pass the filter: about
 * n = k / s rows, s the filter's selectivity (all of them without a LIMIT).
 * The planner's Limit node takes the share k / (N s) of the run cost (total
 * - startup) of the path below it, so the run cost is set to make startup +
 * that share what the method spends for its first n rows: a method's cost is
 * not linear in the rows (kdtree's exact search falls back to flat passes,
 * lsh widens in rounds four times wider, faissflat runs a pass per 16 times
 * more rows), and the curve is read at the n this query needs.
 *
 * The index's work is priced against the plan it competes with: a sequential
 * scan, the filter, and a sort of the rows that pass. The planner charges
 * that plan one cpu_operator_cost per distance, but each row that passes the
 * filter is read in full: its vector detoasted (out of line past about 500
 * dimensions) and its distance computed, measured 3.5 us a row at 512
 * dimensions against 63 ns for each row the scan only filters. Priced at the
 * sequential scan's rate, an index would lose at 10% where it is 4 times
 * faster; priced as the planner prices distances, it would win at 1% where it
 * is 4 to 6 times slower (100k x 512, bench/results/filtered.md). So the index's work is converted to time (per
 * coordinate of a flat distance, measured) and priced at the planner's cost
 * per microsecond of that plan at this filter and LIMIT: the plan that is
 * really faster costs less. The constants were measured on the development
 * machine (bench/filtered_bench.py; bench/results/filtered.md).
 */
#include "postgres.h"

#include <math.h>

#include "access/heaptoast.h"
#include "optimizer/cost.h"
#include "optimizer/optimizer.h"
#include "utils/float.h"
#include "utils/selfuncs.h"
#include "utils/spccache.h"

#include "index/flat_scan.h"
#include "index/index_cost.h"

/* A flat pass's distance, per coordinate (faissflat: 37.8 ms at 100k x 512) */
#define FLAT_NS_PER_COORD		0.74
/* A sequential scan's time per unit of its planner cost (pages, tuples, filter) */
#define SEQ_US_PER_COST			3.2
/* A row that passes the filter: its vector detoasted, when stored out of line */
#define SEQ_DETOAST_US			3.0
/* ... and its distance, per coordinate, from a detoasted datum */
#define SEQ_NS_PER_COORD		1.0

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

double
imgs_cost_flat_passes(double rows, double slots)
{
	double		passes = 1;
	double		kept = Min(IMGS_FLAT_FIRST_PASS, Max(slots, 1));
	double		capacity = kept;

	while (rows > kept && kept < slots)
	{
		capacity *= IMGS_FLAT_PASS_GROWTH;
		kept += capacity;
		passes++;
	}
	return passes;
}

/*
 * The LIMIT of the query, where it bounds this relation's rows: the query
 * reads this relation alone (no join between the scan and the LIMIT), and
 * nothing (grouping, aggregates: grouping_planner resets limit_tuples) lies
 * between. -1 where unknown.
 */
static double
query_limit(PlannerInfo *root, RelOptInfo *rel)
{
	if (root->limit_tuples <= 0 ||
		bms_membership(root->all_baserels) != BMS_SINGLETON ||
		!bms_equal(root->all_baserels, rel->relids))
		return -1;
	return root->limit_tuples;
}

/*
 * Planner cost per microsecond of the competing plan: a sequential scan of
 * the table with its filter, then a sort (bounded by the LIMIT) of the rows
 * that pass: what the planner charges it over what it takes.
 */
static double
cost_per_us(PlannerInfo *root, RelOptInfo *rel, int dim, double limit)
{
	double		seq_page_cost;
	double		passing = Max(rel->rows, 1);
	double		sorted = limit > 0 ? Min(limit, passing) : passing;
	double		scan_cost;
	double		charged;
	double		took_us;
	bool		out_of_line = (double) sizeof(float) * dim + 8 > TOAST_TUPLE_THRESHOLD;

	get_tablespace_page_costs(rel->reltablespace, NULL, &seq_page_cost);
	scan_cost = rel->pages * seq_page_cost + rel->baserestrictcost.startup +
		Max(rel->tuples, 1) * (cpu_tuple_cost + rel->baserestrictcost.per_tuple);
	charged = scan_cost +
		passing * cpu_operator_cost * (1 + 2 * Max(1, log2(2 * sorted)));
	took_us = scan_cost * SEQ_US_PER_COST +
		passing * ((out_of_line ? SEQ_DETOAST_US : 0) + dim * SEQ_NS_PER_COORD / 1000);
	return charged / Max(took_us, 1);
}

void
imgs_cost_ordered_scan(PlannerInfo *root, IndexPath *path, int dim,
					   ImgsScanWorkFn work, const void *method,
					   Cost *startup_cost, Cost *total_cost,
					   Selectivity *selectivity, double *correlation, double *pages)
{
	IndexOptInfo *info = path->indexinfo;
	RelOptInfo *rel = info->rel;
	double		tuples = Max(info->tuples, 1);
	double		limit = query_limit(root, rel);
	double		passing_share = rel->tuples > 0 ? Min(1.0, Max(rel->rows, 1) / rel->tuples) : 1.0;
	/* a range qual (a sphere): the scan returns only the rows in range, and ends there */
	Selectivity in_range = Min(1.0, Max(imgs_cost_selectivity(root, path), 1.0 / tuples));
	double		returned = tuples * in_range;
	double		rows = limit > 0 ? Min(returned, Max(1.0, limit * in_range / passing_share)) : returned;
	double		price = cost_per_us(root, rel, Max(dim, 1), limit) * Max(dim, 1) * FLAT_NS_PER_COORD / 1000;
	Cost		all_pages = imgs_cost_sequential_pages(path, info->pages);
	ImgsScanWork first = work(1, method);
	ImgsScanWork needed = work(rows, method);
	Cost		first_cost = first.page_share * all_pages + first.distances * price;
	Cost		needed_cost = Max(first_cost, needed.page_share * all_pages + needed.distances * price);

	/*
	 * imgsearch.method names this method (imgs_cost_prohibitive let only it
	 * or auto through): it must win even where a sequential scan and a sort
	 * cost less (a small table, a selective filter), as enable_seqscan = off
	 * makes a sequential scan lose, so disable_cost is taken off; among
	 * indexes of the method, the cost still decides.
	 */
	Cost		forced = imgs_method == IMGS_METHOD_AUTO ? 0 : disable_cost;

	*startup_cost = first_cost - forced;
	/* the Limit takes rows / returned of the run cost: that share must be what the n rows cost */
	*total_cost = first_cost + (needed_cost - first_cost) * returned / rows +
		returned * cpu_index_tuple_cost - forced;
	*selectivity = in_range;
	*correlation = 0;
	*pages = Min(1.0, needed.page_share) * info->pages;
}
