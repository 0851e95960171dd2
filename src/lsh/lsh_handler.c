/*
 * lsh_handler.c — the access method's handler: its properties, options,
 * GUCs, cost estimate and opclass validation.
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
#include "lsh/lsh.h"

typedef struct LshOptions
{
	int32		vl_len_;		/* varlena header (do not touch directly!) */
	int			bits;
	int			buckets;
} LshOptions;

static relopt_kind lsh_relopt_kind;

void
lsh_init(void)
{
	imgs_register_index_am(&lsh_am);
	lsh_relopt_kind = add_reloption_kind();
	add_int_reloption(lsh_relopt_kind, "bits",
					  "Bits of each vector's sketch (cut to the vectors' dimension); 0: chosen by the rows, "
					  "the dimension and maintenance_work_mem at build",
					  LSH_DEFAULT_BITS, 0, LSH_MAX_BITS, AccessExclusiveLock);
	add_int_reloption(lsh_relopt_kind, "buckets",
					  "Buckets (k-means centroids) to hash into; 0: the square root of the rows at build",
					  LSH_DEFAULT_BUCKETS, 0, LSH_MAX_BUCKETS, AccessExclusiveLock);
	DefineCustomIntVariable("lsh.probes",
							"Buckets an lsh scan probes, nearest to the query first.",
							"0 probes every bucket. More probes find more of the true neighbours "
							"and take longer.",
							&lsh_probes,
							LSH_DEFAULT_PROBES, 0, LSH_MAX_BUCKETS,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("lsh.candidates",
							"Entries an lsh scan re-ranks by their exact distance, the best estimates first.",
							"0 re-ranks every entry of the probed buckets. With lsh.probes = 0 too, "
							"the scan is exact: the rows and distances of a sequential scan.",
							&lsh_candidates,
							LSH_DEFAULT_CANDIDATES, 0, INT_MAX / 2,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);
	MarkGUCPrefixReserved("lsh");
}

static bytea *
lsh_options(Datum reloptions, bool validate)
{
	static const relopt_parse_elt tab[] = {
		{"bits", RELOPT_TYPE_INT, offsetof(LshOptions, bits)},
		{"buckets", RELOPT_TYPE_INT, offsetof(LshOptions, buckets)},
	};

	return (bytea *) build_reloptions(reloptions, validate, lsh_relopt_kind,
									  sizeof(LshOptions), tab, lengthof(tab));
}

void
lsh_reloptions(Relation index, int *bits, int *buckets)
{
	LshOptions *opts = (LshOptions *) index->rd_options;

	*bits = opts ? opts->bits : LSH_DEFAULT_BITS;
	*buckets = opts ? opts->buckets : LSH_DEFAULT_BUCKETS;
}

/*
 * Cost model, in units of one distance of faissflat's sequential scan (which
 * computes N of them and reads every page):
 *  - the query: a distance to each centroid, and the rotation (bits rows);
 *  - the probed buckets' share e of the entries, each estimated with one
 *    table lookup per byte of its sketch: about half a distance at
 *    bits = dim (LSH_ENTRY_WORK bits / dim);
 *  - the candidates' exact keys, each a slot page and a vector page read
 *    out of order: LSH_KEY_WORK (12, as kdtree measured);
 *  - pages: the entries' share of the index, plus the candidates'.
 * An index without a hash (built on no rows) costs what faissflat does.
 */
#define LSH_ENTRY_WORK	0.5
#define LSH_KEY_WORK	12.0

static void
lsh_costestimate(PlannerInfo *root, IndexPath *path, double loop_count,
				 Cost *startup_cost, Cost *total_cost,
				 Selectivity *selectivity, double *correlation, double *pages)
{
	IndexOptInfo *info = path->indexinfo;
	double		tuples = Max(info->tuples, 0);
	double		page_share = 1.0;
	double		distances = tuples;
	Relation	index;
	ImgsIndexMeta header;
	LshMeta		meta;

	if (imgs_cost_prohibitive(path, IMGS_METHOD_LSH, startup_cost, total_cost,
							  selectivity, correlation, pages))
		return;

	index = index_open(info->indexoid, NoLock);
	lsh_read_meta(index, &header, &meta);
	index_close(index, NoLock);
	/* a range search is a flat pass (lsh_scan.c) */
	if (meta.bits > 0 && header.store.dim > 0 && path->indexclauses == NIL)
	{
		double		e = lsh_probes > 0 ? Min(1.0, (double) lsh_probes / meta.n_buckets) : 1.0;
		double		c = lsh_candidates > 0 ? Min((double) lsh_candidates, e * tuples) : e * tuples;
		double		entry_bytes = lsh_entry_size(meta.bits);
		double		vector_bytes = sizeof(float) * (double) header.store.dim;

		distances = meta.n_buckets + meta.bits +
			e * tuples * LSH_ENTRY_WORK * meta.bits / header.store.dim + c * LSH_KEY_WORK;
		page_share = tuples > 0 ?
			Min(1.0, (e * tuples * entry_bytes + c * vector_bytes) /
				(tuples * (entry_bytes + vector_bytes))) : 1.0;
	}
	*startup_cost = page_share * imgs_cost_sequential_pages(path, info->pages) +
		distances * cpu_operator_cost;
	*selectivity = imgs_cost_selectivity(root, path);
	*total_cost = *startup_cost + *selectivity * tuples * cpu_index_tuple_cost;
	*correlation = 0;
	*pages = page_share * info->pages;
}

static char *
lsh_buildphasename(int64 phase)
{
	switch (phase)
	{
		case PROGRESS_CREATEIDX_SUBPHASE_INITIALIZE:
			return "initializing";
		case LSH_PHASE_LOAD:
			return "loading tuples";
		case LSH_PHASE_TRAIN:
			return "learning the hash";
		case LSH_PHASE_HASH:
			return "hashing the vectors";
		case LSH_PHASE_WAL:
			return "writing WAL";
		default:
			return NULL;
	}
}

static bool
lsh_validate(Oid opclassoid)
{
	return imgs_validate_opclass(opclassoid, "lsh");
}

PG_FUNCTION_INFO_V1(lsh_handler);
Datum
lsh_handler(PG_FUNCTION_ARGS)
{
	IndexAmRoutine *am = imgs_am_routine();

	am->ambuild = lsh_build;
	am->ambuildempty = lsh_buildempty;
	am->aminsert = lsh_insert;
	am->ambulkdelete = lsh_bulkdelete;
	am->amvacuumcleanup = lsh_vacuumcleanup;
	am->amcostestimate = lsh_costestimate;
	am->amoptions = lsh_options;
	am->ambuildphasename = lsh_buildphasename;
	am->amvalidate = lsh_validate;
	am->ambeginscan = lsh_beginscan;
	am->amrescan = lsh_rescan;
	am->amgettuple = lsh_gettuple;
	am->amendscan = lsh_endscan;

	PG_RETURN_POINTER(am);
}
