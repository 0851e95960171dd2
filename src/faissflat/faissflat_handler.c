/*
 * faissflat_handler.c — the access method's handler: its properties, cost
 * estimate, options and opclass validation.
 */
#include "postgres.h"

#include "access/reloptions.h"
#include "commands/progress.h"
#include "optimizer/optimizer.h"
#include "utils/guc.h"

#include "index/index_am.h"
#include "index/index_cost.h"
#include "index/index_scan.h"
#include "index/index_validate.h"
#include "faissflat/faissflat.h"

/*
 * Cost model. A scan reads every page of the index in block order and
 * computes one distance per vector before it returns its first row, and a
 * pass more each time the rows wanted outgrow what the passes kept
 * (index/flat_scan.h): in units of one such distance, N per pass. Priced by
 * imgs_cost_ordered_scan (index_cost.h) at the rows the query needs (a
 * range search: the rows in range, imgs_cost_selectivity); the planner adds
 * the heap fetches. imgsearch.method may make the index
 * prohibitive (index_cost.h).
 */
static ImgsScanWork
faissflat_scan_work(double rows, const void *method)
{
	double		tuples = *(const double *) method;
	ImgsScanWork w;

	w.page_share = imgs_cost_flat_passes(rows, tuples);
	w.distances = tuples * w.page_share;
	return w;
}

static void
faissflat_costestimate(PlannerInfo *root, IndexPath *path, double loop_count,
					   Cost *startup_cost, Cost *total_cost,
					   Selectivity *selectivity, double *correlation, double *pages)
{
	IndexOptInfo *info = path->indexinfo;
	double		tuples = Max(info->tuples, 1);
	Relation	index;
	int			dim;

	if (imgs_cost_prohibitive(path, IMGS_METHOD_FAISSFLAT, startup_cost, total_cost,
							  selectivity, correlation, pages))
		return;

	/* the column's declared dimension; the metapage's only where it has none (no page read otherwise) */
	index = index_open(info->indexoid, NoLock);
	dim = TupleDescAttr(RelationGetDescr(index), 0)->atttypmod;
	if (dim <= 0)
	{
		ImgsIndexMeta header;

		faissflat_read_meta(index, &header);
		dim = header.store.dim;
	}
	index_close(index, NoLock);
	imgs_cost_ordered_scan(root, path, dim, faissflat_scan_work, &tuples,
						   startup_cost, total_cost, selectivity, correlation, pages);
}

/* No options: anything in WITH (...) is an error. */
static bytea *
faissflat_options(Datum reloptions, bool validate)
{
	List	   *options = untransformRelOptions(reloptions);

	if (validate && options != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unrecognized parameter \"%s\"", linitial_node(DefElem, options)->defname),
				 errdetail("The faissflat index method takes no parameters.")));
	return NULL;
}

static char *
faissflat_buildphasename(int64 phase)
{
	switch (phase)
	{
		case PROGRESS_CREATEIDX_SUBPHASE_INITIALIZE:
			return "initializing";
		case FAISSFLAT_PHASE_LOAD:
			return "loading tuples";
		case FAISSFLAT_PHASE_CODES:
			return "coding vectors";
		case FAISSFLAT_PHASE_WAL:
			return "writing WAL";
		default:
			return NULL;
	}
}

static bool
faissflat_validate(Oid opclassoid)
{
	return imgs_validate_opclass(opclassoid, "faissflat");
}

/*
 * On by default: on 512-d sets at 100k the codes scan is several times the
 * flat pass (bench/results/faissflat_sq8.md); off saves each backend its
 * copy of the codes (faissflat.h).
 */
bool		faissflat_codes = true;

void
faissflat_init(void)
{
	imgs_register_index_am(&faissflat_am);
	DefineCustomBoolVariable("faissflat.codes",
							 "Whether faissflat scans filter by the vectors' codes.",
							 "On (the default): a scan computes lower bounds from a copy of the "
							 "codes kept in the backend, then exact distances for the vectors that "
							 "may come next; off: it streams every vector (the flat pass). "
							 "The answers are the same either way.",
							 &faissflat_codes,
							 true,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);
	MarkGUCPrefixReserved("faissflat");
}

PG_FUNCTION_INFO_V1(faissflat_handler);
Datum
faissflat_handler(PG_FUNCTION_ARGS)
{
	IndexAmRoutine *am = imgs_am_routine();

	am->ambuild = faissflat_build;
	am->ambuildempty = faissflat_buildempty;
	am->aminsert = faissflat_insert;
	am->ambulkdelete = faissflat_bulkdelete;
	am->amvacuumcleanup = faissflat_vacuumcleanup;
	am->amcostestimate = faissflat_costestimate;
	am->amoptions = faissflat_options;
	am->ambuildphasename = faissflat_buildphasename;
	am->amvalidate = faissflat_validate;
	am->ambeginscan = faissflat_beginscan;
	am->amrescan = faissflat_rescan;
	am->amgettuple = faissflat_gettuple;
	am->amendscan = faissflat_endscan;

	PG_RETURN_POINTER(am);
}
