/*
 * duplicates.c — imgsearch_duplicates(index regclass, max_distance float8)
 *   RETURNS TABLE (group_id bigint, row_tid tid)
 *
 * The connected components of the graph whose nodes are the table's rows
 * that the index holds (visible to the statement's snapshot, vector not
 * NULL) and whose edges join two rows within max_distance of each other, in
 * the index's metric (L2 or cosine: the operator class's sphere operator,
 * sql/range.sql). Built from one range search through the index per row
 * (an ordinary index scan with a sphere key, so every method answers it
 * exactly, index_scan.h), merged with union-find: n range searches, never
 * n^2 distances. Only rows of components of two rows or more are returned,
 * each once, grouped by group_id (1, 2, ... in the order the table scan met
 * each group's first row); callers join back on ctid.
 *
 * The caller needs SELECT on the table. Progress: a NOTICE every
 * PROGRESS_SECONDS with the rows searched and the table's blocks scanned.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/index.h"
#include "catalog/pg_amop.h"
#include "commands/defrem.h"
#include "executor/executor.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/catcache.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

#include "index/index_am.h"
#include "index/index_meta.h"
#include "index/index_scan.h"
#include "type/sphere.h"

#define PROGRESS_SECONDS	5

/* Union-find over the rows met, numbered in the order met. */
typedef struct RowEntry
{
	ItemPointerData tid;		/* hash key */
	int32		id;
} RowEntry;

typedef struct Rows
{
	HTAB	   *by_tid;
	ItemPointerData *tids;		/* by id */
	int32	   *parent;
	int32		n;
	int32		cap;
} Rows;

static int32
row_id(Rows *rows, ItemPointer tid)
{
	bool		found;
	RowEntry   *e = hash_search(rows->by_tid, tid, HASH_ENTER, &found);

	if (found)
		return e->id;
	if (rows->n == rows->cap)
	{
		if (rows->cap >= PG_INT32_MAX / 2)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("imgsearch_duplicates handles at most %d rows", PG_INT32_MAX / 2)));
		rows->cap *= 2;
		rows->tids = repalloc_huge(rows->tids, sizeof(ItemPointerData) * rows->cap);
		rows->parent = repalloc_huge(rows->parent, sizeof(int32) * rows->cap);
	}
	e->id = rows->n++;
	rows->tids[e->id] = *tid;
	rows->parent[e->id] = e->id;
	return e->id;
}

static int32
find_root(Rows *rows, int32 x)
{
	while (rows->parent[x] != x)
	{
		rows->parent[x] = rows->parent[rows->parent[x]];	/* path halving */
		x = rows->parent[x];
	}
	return x;
}

static void
unite(Rows *rows, int32 a, int32 b)
{
	a = find_root(rows, a);
	b = find_root(rows, b);
	/* the smaller id is the root: a group is numbered by its first row met */
	if (a < b)
		rows->parent[b] = a;
	else if (b < a)
		rows->parent[a] = b;
}

/* The index's sphere operator (strategy 4 or 5, by its metric): its strategy and right type. */
static void
sphere_operator(Relation index, int *strategy, Oid *sphere_type, RegProcedure *proc)
{
	int			metric = imgs_index_metric(index);
	CatCList   *oprlist;

	if (metric != IMGS_METRIC_L2 && metric != IMGS_METRIC_COSINE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("index \"%s\" has no range search", RelationGetRelationName(index)),
				 errdetail("imgsearch_duplicates needs an index of an L2 or cosine operator class.")));
	*strategy = metric == IMGS_METRIC_L2 ? IMGS_STRATEGY_L2_SPHERE : IMGS_STRATEGY_COSINE_SPHERE;
	*sphere_type = InvalidOid;
	oprlist = SearchSysCacheList1(AMOPSTRATEGY, ObjectIdGetDatum(index->rd_opfamily[0]));
	for (int i = 0; i < oprlist->n_members; i++)
	{
		Form_pg_amop op = (Form_pg_amop) GETSTRUCT(&oprlist->members[i]->tuple);

		if (op->amopstrategy == *strategy && op->amoppurpose == AMOP_SEARCH &&
			op->amoplefttype == index->rd_opcintype[0])
		{
			*sphere_type = op->amoprighttype;
			*proc = get_opcode(op->amopopr);
		}
	}
	ReleaseCatCacheList(oprlist);
	if (!OidIsValid(*sphere_type))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("the operator family of index \"%s\" has no range search operator",
						RelationGetRelationName(index)),
				 errhint("ALTER EXTENSION imgsearch UPDATE adds it.")));
}

static void
not_an_imgsearch_index(Oid relid, Relation index)
{
	if (index == NULL)
	{
		char	   *name = get_rel_name(relid);

		if (name == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("relation with OID %u does not exist", relid)));
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not an index", name)));
	}
	ereport(ERROR,
			(errcode(ERRCODE_WRONG_OBJECT_TYPE),
			 errmsg("index \"%s\" is not an imgsearch index", RelationGetRelationName(index)),
			 errdetail("Its access method is %s; imgsearch_duplicates searches indexes of %s.",
					   get_am_name(index->rd_rel->relam), imgs_index_am_names())));
}

PG_FUNCTION_INFO_V1(imgsearch_duplicates);
Datum
imgsearch_duplicates(PG_FUNCTION_ARGS)
{
	Oid			indexoid = PG_GETARG_OID(0);
	double		max_distance = PG_GETARG_FLOAT8(1);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			heapoid;
	Relation	heap;
	Relation	index;
	int			strategy;
	Oid			sphere_type;
	RegProcedure sphere_proc;
	TupleDesc	sphere_desc;
	IndexInfo  *index_info;
	EState	   *estate;
	ExprContext *econtext;
	ExprState  *predicate;
	Snapshot	snapshot;
	TableScanDesc heap_scan;
	IndexScanDesc index_scan;
	TupleTableSlot *slot;
	TupleTableSlot *found_slot;
	MemoryContext row_ctx;
	MemoryContext old_ctx;
	Rows		rows;
	HASHCTL		hctl;
	BlockNumber nblocks;
	int64		searched = 0;
	TimestampTz last_report;
	int64	   *group_of;
	int64	   *group_size;
	int64		ngroups = 0;

	imgs_sphere_check_radius(max_distance);
	InitMaterializedSRF(fcinfo, 0);

	heapoid = IndexGetRelation(indexoid, true);
	if (!OidIsValid(heapoid))
		not_an_imgsearch_index(indexoid, NULL);
	/* before any lock, as SELECT checks before it reads */
	if (pg_class_aclcheck(heapoid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_TABLE, get_rel_name(heapoid));
	heap = table_open(heapoid, AccessShareLock);
	index = index_open(indexoid, AccessShareLock);
	if (IndexGetRelation(indexoid, false) != heapoid)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("could not open parent table of index \"%s\"", RelationGetRelationName(index))));
	if (index->rd_rel->relkind != RELKIND_INDEX || imgs_index_am_of(index) == NULL)
		not_an_imgsearch_index(indexoid, index);
	if (!index->rd_index->indisvalid)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("index \"%s\" is not valid", RelationGetRelationName(index))));
	sphere_operator(index, &strategy, &sphere_type, &sphere_proc);
	sphere_desc = lookup_rowtype_tupdesc_copy(sphere_type, -1);

	memset(&hctl, 0, sizeof(hctl));
	hctl.keysize = sizeof(ItemPointerData);
	hctl.entrysize = sizeof(RowEntry);
	hctl.hcxt = CurrentMemoryContext;
	rows.by_tid = hash_create("imgsearch_duplicates rows", 1024, &hctl,
							  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	rows.n = 0;
	rows.cap = 1024;
	rows.tids = palloc(sizeof(ItemPointerData) * rows.cap);
	rows.parent = palloc(sizeof(int32) * rows.cap);

	/* the indexed value of each row, as the build computes it (expressions, predicate) */
	index_info = BuildIndexInfo(index);
	estate = CreateExecutorState();
	econtext = GetPerTupleExprContext(estate);
	slot = table_slot_create(heap, NULL);
	found_slot = table_slot_create(heap, NULL);
	econtext->ecxt_scantuple = slot;
	predicate = ExecPrepareQual(index_info->ii_Predicate, estate);

	snapshot = RegisterSnapshot(GetActiveSnapshot());
	nblocks = RelationGetNumberOfBlocks(heap);
	heap_scan = table_beginscan(heap, snapshot, 0, NULL);
	index_scan = index_beginscan(heap, index, snapshot, 1, 0);
	row_ctx = AllocSetContextCreate(CurrentMemoryContext, "imgsearch_duplicates row",
									ALLOCSET_DEFAULT_SIZES);
	last_report = GetCurrentTimestamp();

	while (table_scan_getnextslot(heap_scan, ForwardScanDirection, slot))
	{
		Datum		values[INDEX_MAX_KEYS];
		bool		isnull[INDEX_MAX_KEYS];
		Datum		sphere_values[2];
		bool		sphere_nulls[2] = {false, false};
		ScanKeyData key;
		int32		me;

		CHECK_FOR_INTERRUPTS();
		ResetExprContext(econtext);
		if (predicate != NULL && !ExecQual(predicate, econtext))
			continue;
		FormIndexDatum(index_info, slot, estate, values, isnull);
		if (isnull[0])
			continue;

		old_ctx = MemoryContextSwitchTo(row_ctx);
		me = row_id(&rows, &slot->tts_tid);
		sphere_values[0] = values[0];
		sphere_values[1] = Float8GetDatum(max_distance);
		ScanKeyInit(&key, 1, strategy, sphere_proc,
					HeapTupleGetDatum(heap_form_tuple(sphere_desc, sphere_values, sphere_nulls)));
		index_rescan(index_scan, &key, 1, NULL, 0);
		while (index_getnext_slot(index_scan, ForwardScanDirection, found_slot))
		{
			/* one key, so the scan is exact (index_scan.h); a recheck would be a bug */
			if (index_scan->xs_recheck)
				elog(ERROR, "unexpected recheck in the range search of imgsearch_duplicates");
			unite(&rows, me, row_id(&rows, &found_slot->tts_tid));
		}
		MemoryContextSwitchTo(old_ctx);
		MemoryContextReset(row_ctx);
		searched++;

		if (TimestampDifferenceExceeds(last_report, GetCurrentTimestamp(), PROGRESS_SECONDS * 1000))
		{
			ereport(NOTICE,
					(errmsg("imgsearch_duplicates: " INT64_FORMAT " rows searched, block %u of %u of \"%s\"",
							searched, ItemPointerGetBlockNumber(&slot->tts_tid), nblocks,
							RelationGetRelationName(heap))));
			last_report = GetCurrentTimestamp();
		}
	}
	index_endscan(index_scan);
	table_endscan(heap_scan);
	UnregisterSnapshot(snapshot);
	ExecDropSingleTupleTableSlot(slot);
	ExecDropSingleTupleTableSlot(found_slot);
	FreeExecutorState(estate);

	/* groups of two rows or more, numbered by their first row (the root: the smallest id) */
	group_of = palloc0(sizeof(int64) * Max(rows.n, 1));
	group_size = palloc0(sizeof(int64) * Max(rows.n, 1));
	for (int32 i = 0; i < rows.n; i++)
		group_size[find_root(&rows, i)]++;
	for (int32 i = 0; i < rows.n; i++)
		if (rows.parent[i] == i && group_size[i] >= 2)
			group_of[i] = ++ngroups;
	/* emitted group by group: the rows of a group are the ids whose root is its */
	{
		int64	   *start = palloc0(sizeof(int64) * (ngroups + 2));
		int32	   *order;

		for (int32 i = 0; i < rows.n; i++)
		{
			int64		g = group_of[find_root(&rows, i)];

			if (g > 0)
				start[g + 1]++;
		}
		for (int64 g = 1; g <= ngroups; g++)
			start[g + 1] += start[g];
		order = palloc(sizeof(int32) * Max(start[ngroups + 1], 1));
		for (int32 i = 0; i < rows.n; i++)
		{
			int64		g = group_of[find_root(&rows, i)];

			if (g > 0)
				order[start[g]++] = i;
		}
		for (int64 j = 0, g = 1; g <= ngroups; g++)
			for (; j < start[g]; j++)
			{
				Datum		out[2];
				bool		out_nulls[2] = {false, false};

				out[0] = Int64GetDatum(g);
				out[1] = PointerGetDatum(&rows.tids[order[j]]);
				tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, out_nulls);
			}
	}
	ereport(DEBUG1,
			(errmsg("imgsearch_duplicates: " INT64_FORMAT " rows searched, " INT64_FORMAT " groups",
					searched, ngroups)));

	index_close(index, AccessShareLock);
	table_close(heap, AccessShareLock);
	PG_RETURN_NULL();
}
