/*
 * faissflat_handler.c — the access method's handler: its properties, cost
 * estimate, options and opclass validation.
 */
#include "postgres.h"

#include <math.h>

#include "access/reloptions.h"
#include "commands/progress.h"
#include "optimizer/optimizer.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"

#include "index/index_am.h"
#include "index/index_cost.h"
#include "index/index_scan.h"
#include "index/index_validate.h"
#include "faissflat/faissflat.h"

/*
 * Cost model, in units of one distance of a flat pass (index_cost.h),
 * priced by imgs_cost_ordered_scan at the rows the query needs (a range
 * search: the rows in range, imgs_cost_selectivity); the planner adds the
 * heap fetches. imgsearch.method may make the index prohibitive.
 *  - The codes scan (an L2 or cosine ORDER BY on an index of that metric
 *    with codes, faissflat.codes on: faissflat_scan.c): one pass over the
 *    codes, FAISSFLAT_CODE_WORK per entry at as many coded dimensions as
 *    the vector has (less in proportion to fewer), FAISSFLAT_THREAD_GAIN
 *    faster per thread past the first; then FAISSFLAT_SEED_KEYS exact keys
 *    and about FAISSFLAT_KEYS_PER_ROW more per row returned,
 *    FAISSFLAT_KEY_WORK each (a vector read out of order); past
 *    faissflat_flat_switch keys, flat passes besides. Measured at 100k x
 *    512 (bench/results/faissflat_threads.md, filtered_codes.md): the
 *    whole start (pass, state, seeds' choice) 0.08 of a flat distance per
 *    entry on one thread, 1.3 times faster on two (memory bandwidth bounds
 *    the pass); 64 to 160 keys for 30 rows, about 4 us a key (12 flat
 *    distances) for 3,000 rows. Where the build's sample searches
 *    (FaissflatMeta.sample_*) ran, their mean keys stand for the first
 *    IMGS_SAMPLE_K rows' instead; where most of them went on with flat
 *    passes (the codes pruned too little: 512 coded components of 4096),
 *    the codes scan is priced as it then runs: the pass, then flat passes.
 *    The staged pass (faissflat.staged, where the build's sample measured
 *    the share of entries its first cut leaves, FaissflatMeta.sample_head)
 *    is priced at FAISSFLAT_STAGED_WORK of the one pass's work per entry,
 *    plus that share (which goes on to read up to the whole code).
 *  - Otherwise (the inner product, several examples, a range search, no
 *    codes): flat passes, reading every page of the index in block order
 *    and computing one distance per vector before the first row, and a pass
 *    more each time the rows wanted outgrow what the passes kept
 *    (index/flat_scan.h).
 */
#define FAISSFLAT_CODE_WORK		0.08
#define FAISSFLAT_STAGED_WORK	0.25
#define FAISSFLAT_THREAD_GAIN	0.3
#define FAISSFLAT_KEYS_PER_ROW	1.5
#define FAISSFLAT_KEY_WORK		12.0

typedef struct FaissflatCostModel
{
	double		tuples;
	double		code_work;		/* per entry, 0: no codes scan */
	double		flat_switch;
	double		sample_keys;	/* the build's sample searches' mean; 0: none ran */
	bool		sample_flat;	/* most of them went on with flat passes */
} FaissflatCostModel;

static ImgsScanWork
faissflat_scan_work(double rows, const void *method)
{
	const FaissflatCostModel *fm = method;
	ImgsScanWork w;
	double		keys;

	if (fm->code_work <= 0)
	{
		w.page_share = imgs_cost_flat_passes(rows, fm->tuples);
		w.distances = fm->tuples * w.page_share;
		return w;
	}
	if (fm->sample_flat)
	{
		w.page_share = imgs_cost_flat_passes(rows, fm->tuples);
		w.distances = fm->tuples * (fm->code_work + w.page_share);
		return w;
	}
	if (fm->sample_keys > 0)
		keys = fm->sample_keys + FAISSFLAT_KEYS_PER_ROW * Max(0.0, rows - IMGS_SAMPLE_K);
	else
		keys = FAISSFLAT_SEED_KEYS + FAISSFLAT_KEYS_PER_ROW * rows;
	keys = Min(fm->tuples, keys);
	w.distances = fm->tuples * fm->code_work + keys * FAISSFLAT_KEY_WORK;
	w.page_share = keys / fm->tuples;
	if (keys > fm->flat_switch)
	{
		double		passes = imgs_cost_flat_passes(rows, fm->tuples);

		w.distances += fm->tuples * passes;
		w.page_share += passes;
	}
	return w;
}

/* The strategy of the path's one ORDER BY operator, or 0 (none, or several). */
static int
orderby_strategy(IndexPath *path)
{
	Expr	   *orderby;
	int			strategy;
	Oid			lefttype,
				righttype;

	if (list_length(path->indexorderbys) != 1)
		return 0;
	orderby = linitial(path->indexorderbys);
	if (!IsA(orderby, OpExpr))
		return 0;
	get_op_opfamily_properties(((OpExpr *) orderby)->opno, path->indexinfo->opfamily[0], true,
							   &strategy, &lefttype, &righttype);
	return strategy;
}

static void
faissflat_costestimate(PlannerInfo *root, IndexPath *path, double loop_count,
					   Cost *startup_cost, Cost *total_cost,
					   Selectivity *selectivity, double *correlation, double *pages)
{
	IndexOptInfo *info = path->indexinfo;
	Relation	index;
	ImgsIndexMeta header;
	FaissflatMeta codes;
	FaissflatCostModel fm;
	int			dim;
	int			strategy = orderby_strategy(path);

	if (imgs_cost_prohibitive(path, IMGS_METHOD_FAISSFLAT, startup_cost, total_cost,
							  selectivity, correlation, pages))
		return;

	index = index_open(info->indexoid, NoLock);
	faissflat_read_meta_codes(index, &header, &codes);
	/* the column's declared dimension; the metapage's where it has none */
	dim = TupleDescAttr(RelationGetDescr(index), 0)->atttypmod;
	if (dim <= 0)
		dim = header.store.dim;
	index_close(index, NoLock);
	memset(&fm, 0, sizeof(fm));
	fm.tuples = Max(info->tuples, 1);
	fm.flat_switch = (double) faissflat_flat_switch((int64) header.store.nslots);
	if (faissflat_codes && codes.dims > 0 && header.store.dim > 0 && path->indexclauses == NIL &&
		(strategy == IMGS_STRATEGY_L2 || strategy == IMGS_STRATEGY_COSINE) && strategy == (int) header.metric)
	{
		fm.code_work = FAISSFLAT_CODE_WORK * Min(1.0, (double) codes.dims / header.store.dim) /
			(1 + FAISSFLAT_THREAD_GAIN * (faissflat_pass_threads((int64) fm.tuples) - 1));
		/* the staged pass, where the build measured what it leaves */
		if (faissflat_scan_staged(&codes) && (codes.sample_flags & FAISSFLAT_SAMPLED_HEAD) &&
			isfinite(codes.sample_head) && codes.sample_head >= 0)
			fm.code_work *= FAISSFLAT_STAGED_WORK + codes.sample_head;
		if (isfinite(codes.sample_keys) && codes.sample_keys > 0)
			fm.sample_keys = codes.sample_keys;
		fm.sample_flat = isfinite(codes.sample_flat) && codes.sample_flat >= 0.5;
	}
	imgs_cost_ordered_scan(root, path, dim, faissflat_scan_work, &fm,
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
/*
 * auto: the staged pass (faissflat_core.h, steps 6-8: 44 of 532 bytes a row
 * first) where the build's sample searches found the first cut prunes
 * (FaissflatMeta.sample_head)
 */
int			faissflat_staged = FAISSFLAT_STAGED_AUTO;

static const struct config_enum_entry staged_options[] = {
	{"auto", FAISSFLAT_STAGED_AUTO, false},
	{"on", FAISSFLAT_STAGED_ON, false},
	{"off", FAISSFLAT_STAGED_OFF, false},
	{NULL, 0, false}
};
/* Two: the pass over the codes is most of a scan at 1M rows (faissflat_scan.c) */
int			faissflat_scan_threads = 2;

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
	DefineCustomEnumVariable("faissflat.staged",
							 "Whether a faissflat codes scan first reads a few dimensions of each code.",
							 "on: the first pass bounds each vector by its first 32 coded dimensions "
							 "and the norm of the rest, and only the vectors that may be near go on "
							 "to more; off: one pass over the whole codes; auto (the default): on "
							 "where the build's sample searches found that the first pass leaves "
							 "at most an eighth of the vectors (steep spectra), else off, as also "
							 "where the build did not measure it (an index built before, or with "
							 "it off) until REINDEX. The answers are the same either way.",
							 &faissflat_staged,
							 FAISSFLAT_STAGED_AUTO,
							 staged_options,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("faissflat.scan_threads",
							"Threads a faissflat scan's pass over the codes runs on.",
							"The backend and up to this many less one threads of its own, no more "
							"than the server's cores, for tables of at least 65536 rows: on an idle "
							"server a pass over a million codes takes about 0.7 times as long on two "
							"(memory bandwidth bounds it). 1 keeps the scan on the backend alone "
							"(a busy server gains nothing).",
							&faissflat_scan_threads,
							2, 1, 64,
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
