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
 * distance of (f). Against faissflat, which reads every vector in block
 * order and computes one distance each (N cpu_operator_cost and the pages):
 *  - an entry holds m of the dim coordinates and costs a bound and a place
 *    in a queue: KDTREE_ENTRY_WORK (2.5) m / dim of a distance;
 *  - an exact distance reads a slot page and a vector page out of order:
 *    KDTREE_KEY_WORK (12) sequential distances (measured);
 *  - pages: the share of faissflat's that those bytes are;
 *  - every node's bound, once: m / dim of a distance each.
 * So kdtree wins where it examines a small part of the vectors, and loses
 * to faissflat where its bounds cannot prune: where the build's searches
 * passed a tenth of a flat scan's work in exact distances, exact scans are
 * flat passes (kdtree_scan.c), which cost what faissflat's do.
 * A budget (kdtree.max_leaves) caps e at the leaves it allows. An index
 * without a tree (built on no rows) costs what faissflat does.
 */
static void
kdtree_costestimate(PlannerInfo *root, IndexPath *path, double loop_count,
					Cost *startup_cost, Cost *total_cost,
					Selectivity *selectivity, double *correlation, double *pages)
{
	IndexOptInfo *info = path->indexinfo;
	double		tuples = Max(info->tuples, 0);
	double		page_share = 1.0;	/* of the index's pages read */
	double		distances = tuples;	/* in units of one sequential distance */
	Relation	index;
	ImgsIndexMeta header;
	KdtreeMeta	meta;

	if (imgs_cost_prohibitive(path, IMGS_METHOD_KDTREE, startup_cost, total_cost,
							  selectivity, correlation, pages))
		return;

	index = index_open(info->indexoid, NoLock);
	kdtree_read_meta(index, &header, &meta);
	index_close(index, NoLock);
	if (meta.dims > 0 && header.store.dim > 0)
	{
		double		e = Min(Max(meta.entries_fraction, 0.0), 1.0);
		double		f = Min(Max(meta.keys_fraction, 0.0), 1.0);
		double		ratio = (double) meta.dims / header.store.dim;
		double		entry_bytes = kdtree_entry_size(meta.dims);
		double		vector_bytes = sizeof(float) * (double) header.store.dim;

		/* a range search is exact whatever the budget (kdtree_scan.c) */
		if (kdtree_max_leaves > 0 && meta.n_leaves > 0 && path->indexclauses == NIL)
		{
			e = Min(e, (double) kdtree_max_leaves / meta.n_leaves);
			f = Min(f, e);
		}
		page_share = Min(1.0, (e * entry_bytes + f * vector_bytes) / (entry_bytes + vector_bytes));
		distances = tuples * (KDTREE_ENTRY_WORK * ratio * e + KDTREE_KEY_WORK * f) +
			meta.n_nodes * ratio;
		/* where the build's searches computed too many distances, exact scans are flat */
		if ((kdtree_max_leaves == 0 || path->indexclauses != NIL) && kdtree_tree_useless(&meta))
		{
			distances = tuples;
			page_share = 1.0;
		}
	}
	*startup_cost = page_share * imgs_cost_sequential_pages(path, info->pages) +
		distances * cpu_operator_cost;
	*selectivity = imgs_cost_selectivity(root, path);
	*total_cost = *startup_cost + *selectivity * tuples * cpu_index_tuple_cost;
	*correlation = 0;
	*pages = page_share * info->pages;
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
