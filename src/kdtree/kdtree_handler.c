/*
 * kdtree_handler.c — the access method's handler: its properties, options,
 * GUC, cost estimate and opclass validation.
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
#include "kdtree/kdtree.h"

typedef struct KdtreeOptions
{
	int32		vl_len_;		/* varlena header (do not touch directly!) */
	int			dims;
	int			leaf_size;
} KdtreeOptions;

static relopt_kind kdtree_relopt_kind;

void
kdtree_init(void)
{
	imgs_register_index_am(&kdtree_am);
	kdtree_relopt_kind = add_reloption_kind();
	add_int_reloption(kdtree_relopt_kind, "dims",
					  "Dimensions of the PCA projection the tree is built on (cut to the vectors' dimension)",
					  KDTREE_DEFAULT_DIMS, 1, KD_MAX_PROJ_DIMS, AccessExclusiveLock);
	add_int_reloption(kdtree_relopt_kind, "leaf_size",
					  "Most vectors a leaf of the tree holds at build",
					  KDTREE_DEFAULT_LEAF_SIZE, 1, KDTREE_MAX_LEAF_SIZE, AccessExclusiveLock);
	DefineCustomIntVariable("kdtree.max_leaves",
							"Most leaves a kdtree scan opens before it returns what they held (approximate search).",
							"0 (the default) searches exactly: the rows and distances of a sequential scan. "
							"A positive budget is faster and may miss rows; rows still come in "
							"non-decreasing exact distance.",
							&kdtree_max_leaves,
							0, 0, INT_MAX,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);
	MarkGUCPrefixReserved("kdtree");
}

static bytea *
kdtree_options(Datum reloptions, bool validate)
{
	static const relopt_parse_elt tab[] = {
		{"dims", RELOPT_TYPE_INT, offsetof(KdtreeOptions, dims)},
		{"leaf_size", RELOPT_TYPE_INT, offsetof(KdtreeOptions, leaf_size)},
	};

	return (bytea *) build_reloptions(reloptions, validate, kdtree_relopt_kind,
									  sizeof(KdtreeOptions), tab, lengthof(tab));
}

void
kdtree_reloptions(Relation index, int *dims, int *leaf_size)
{
	KdtreeOptions *opts = (KdtreeOptions *) index->rd_options;

	*dims = opts ? opts->dims : KDTREE_DEFAULT_DIMS;
	*leaf_size = opts ? opts->leaf_size : KDTREE_DEFAULT_LEAF_SIZE;
}

/*
 * Cost model, from what the build measured: the fractions of the vectors an
 * exact k = 30 search reads leaf entries of (e) and computes the exact
 * distance of (f). In units of one distance of a flat pass (what faissflat
 * computes per vector; index_cost.h):
 *  - an entry holds m of the dim coordinates and costs a bound and a place
 *    in a queue: KDTREE_ENTRY_WORK (2.5) m / dim of a distance;
 *  - an exact distance reads a slot page and a vector page out of order:
 *    KDTREE_KEY_WORK (12) sequential distances (measured);
 *  - pages: the share of faissflat's that those bytes are;
 *  - every node's bound, once: m / dim of a distance each.
 * The best-first search's work grows with the rows it returns: for n rows,
 * e and f grow as n / 30 (the ball it must clear grows with n). An exact
 * search that has computed a tenth of a flat pass's work in exact distances
 * goes on as flat passes (KDTREE_FLAT_FALLBACK, kdtree_scan.c): past that
 * point the work is what it did until then plus the passes for n rows, so a
 * LIMIT over a selective filter costs about a flat scan, not n / 30 tree
 * searches. Where the build's searches passed that limit at k = 30, exact
 * scans are flat passes from the start. A budget (kdtree.max_leaves) is one
 * round: the entries and exact keys of its leaves' share of the vectors,
 * which returns a quarter of what they hold; more rows than that cost the
 * round plus an exact search for them, which falls back to flat passes as
 * above (kdtree_scan.c). A range search is exact, whatever the budget. An
 * index without a tree (built on no rows) costs what faissflat does.
 */
#define KDTREE_COST_SAMPLE_K	30.0

typedef struct KdtreeCostModel
{
	double		tuples;
	bool		flat;			/* flat passes only */
	bool		budget;			/* kdtree.max_leaves > 0: one approximate round first */
	double		budget_share;	/* of the vectors, in the round's leaves */
	double		e;				/* fractions of an exact 30-row search */
	double		f;
	double		ratio;			/* m / dim */
	double		n_nodes;
	double		entry_bytes;
	double		vector_bytes;
} KdtreeCostModel;

static ImgsScanWork
kdtree_tree_work(const KdtreeCostModel *km, double scale)
{
	ImgsScanWork w;
	double		e = Min(1.0, km->e * scale);
	double		f = Min(1.0, km->f * scale);

	w.distances = km->tuples * (KDTREE_ENTRY_WORK * km->ratio * e + KDTREE_KEY_WORK * f) +
		km->n_nodes * km->ratio;
	w.page_share = (e * km->entry_bytes + f * km->vector_bytes) / (km->entry_bytes + km->vector_bytes);
	return w;
}

/* An exact search's work for rows (flat: passes only; else the tree, then passes past the fallback) */
static ImgsScanWork
kdtree_exact_work(const KdtreeCostModel *km, double rows, bool flat)
{
	double		scale = Max(1.0, rows / KDTREE_COST_SAMPLE_K);
	ImgsScanWork w;

	if (!flat)
	{
		w = kdtree_tree_work(km, scale);
		if (KDTREE_KEY_WORK * Min(1.0, km->f * scale) <= KDTREE_FLAT_FALLBACK)
			return w;
		/* gave up: the tree's work until the limit, then flat passes */
		w = kdtree_tree_work(km, KDTREE_FLAT_FALLBACK / (KDTREE_KEY_WORK * km->f));
	}
	else
		w.distances = w.page_share = 0;
	w.distances += km->tuples * imgs_cost_flat_passes(rows, km->tuples);
	w.page_share += imgs_cost_flat_passes(rows, km->tuples);
	return w;
}

static ImgsScanWork
kdtree_scan_work(double rows, const void *method)
{
	const KdtreeCostModel *km = method;
	ImgsScanWork round;
	ImgsScanWork w;

	if (!km->budget)
		return kdtree_exact_work(km, rows, km->flat);
	/* the budget's round: its leaves' entries and every one's exact key (kd_search_next) */
	round.distances = km->tuples * km->budget_share * (KDTREE_ENTRY_WORK * km->ratio + KDTREE_KEY_WORK) +
		km->n_nodes * km->ratio;
	round.page_share = km->budget_share;
	if (rows <= km->tuples * km->budget_share / KD_BUDGET_SHARE)
		return round;
	/* then exact, after the round's last row (never flat from the start) */
	w = kdtree_exact_work(km, rows, false);
	w.distances += round.distances;
	w.page_share += round.page_share;
	return w;
}

static void
kdtree_costestimate(PlannerInfo *root, IndexPath *path, double loop_count,
					Cost *startup_cost, Cost *total_cost,
					Selectivity *selectivity, double *correlation, double *pages)
{
	IndexOptInfo *info = path->indexinfo;
	Relation	index;
	ImgsIndexMeta header;
	KdtreeMeta	meta;
	KdtreeCostModel km;

	if (imgs_cost_prohibitive(path, IMGS_METHOD_KDTREE, startup_cost, total_cost,
							  selectivity, correlation, pages))
		return;

	index = index_open(info->indexoid, NoLock);
	kdtree_read_meta(index, &header, &meta);
	index_close(index, NoLock);
	memset(&km, 0, sizeof(km));
	km.tuples = Max(info->tuples, 1);
	km.flat = true;
	if (meta.dims > 0 && header.store.dim > 0)
	{
		km.e = Min(Max(meta.entries_fraction, 0.0), 1.0);
		km.f = Min(Max(meta.keys_fraction, 0.0), 1.0);
		km.ratio = (double) meta.dims / header.store.dim;
		km.n_nodes = meta.n_nodes;
		km.entry_bytes = kdtree_entry_size(meta.dims);
		km.vector_bytes = sizeof(float) * (double) header.store.dim;
		/* a range search is exact whatever the budget (kdtree_scan.c) */
		km.budget = kdtree_max_leaves > 0 && meta.n_leaves > 0 && path->indexclauses == NIL;
		if (km.budget)
			km.budget_share = Min(1.0, (double) kdtree_max_leaves / meta.n_leaves);
		/* where the build's searches computed too many distances, exact scans are flat */
		km.flat = kdtree_tree_useless(&meta);
	}
	imgs_cost_ordered_scan(root, path, header.store.dim, kdtree_scan_work, &km,
						   startup_cost, total_cost, selectivity, correlation, pages);
}

static char *
kdtree_buildphasename(int64 phase)
{
	switch (phase)
	{
		case PROGRESS_CREATEIDX_SUBPHASE_INITIALIZE:
			return "initializing";
		case KDTREE_PHASE_LOAD:
			return "loading tuples";
		case KDTREE_PHASE_TRAIN:
			return "learning the projection";
		case KDTREE_PHASE_TREE:
			return "building the tree";
		case KDTREE_PHASE_WAL:
			return "writing WAL";
		default:
			return NULL;
	}
}

static bool
kdtree_validate(Oid opclassoid)
{
	return imgs_validate_opclass(opclassoid, "kdtree");
}

PG_FUNCTION_INFO_V1(kdtree_handler);
Datum
kdtree_handler(PG_FUNCTION_ARGS)
{
	IndexAmRoutine *am = imgs_am_routine();

	am->ambuild = kdtree_build;
	am->ambuildempty = kdtree_buildempty;
	am->aminsert = kdtree_insert;
	am->ambulkdelete = kdtree_bulkdelete;
	am->amvacuumcleanup = kdtree_vacuumcleanup;
	am->amcostestimate = kdtree_costestimate;
	am->amoptions = kdtree_options;
	am->ambuildphasename = kdtree_buildphasename;
	am->amvalidate = kdtree_validate;
	am->ambeginscan = kdtree_beginscan;
	am->amrescan = kdtree_rescan;
	am->amgettuple = kdtree_gettuple;
	am->amendscan = kdtree_endscan;

	PG_RETURN_POINTER(am);
}
