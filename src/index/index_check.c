/*
 * index_check.c — imgsearch_index_check(index regclass): verifies an
 * imgsearch index against its table, as amcheck's bt_index_check(index,
 * heapallindexed => true) does for a B-tree, and more: every entry is
 * accounted for too.
 *
 *  1. The method's hook checks its own pages and the vector store's layout
 *     and free list (imgs_store_check), and returns every slot header.
 *  2. The live slots' heap TIDs must be valid and distinct.
 *  3. Every row the check's MVCC snapshot sees, and the index should hold
 *     (its value is not NULL, the index predicate keeps it), has an entry
 *     whose stored vector equals the row's value bit for bit, and its slot
 *     is named by the method's lists (imgs_check_lists; a live slot no list
 *     names is otherwise a crash's harmless leftover); an entry for a row
 *     whose value is NULL is an error.
 *  4. Every other entry belongs to a row the snapshot does not see: a dead
 *     row that VACUUM has not removed yet, or a row of a transaction newer
 *     than the snapshot. That is allowed, but its TID must still lead to a
 *     row: within the table, to a used line pointer that is not a heap-only
 *     tuple (VACUUM marks a line pointer unused only after it removed every
 *     index entry pointing at it); its vector must be finite.
 *
 * Locks: AccessShareLock on the index, ShareUpdateExclusiveLock on the table.
 * The latter lets INSERT, UPDATE, DELETE and searches run (an insert that the
 * snapshot does not see is case 4) but holds off VACUUM, so no entry or line
 * pointer is freed under the check and step 4 is exact. During recovery only
 * AccessShareLock can be had and replayed VACUUMs may free line pointers
 * under the check: there step 4 checks only that the TID is within the table,
 * and a slot that changes under the check is skipped. Rows the snapshot sees
 * are safe in both cases (VACUUM keeps them, or a standby cancels the check).
 *
 * The first problem found raises XX002 (index_corrupted) naming it. Only the
 * owner of the table (or a superuser) may check its indexes.
 */
#include "postgres.h"

#include <math.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/tableam.h"
#include "access/transam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/index.h"
#include "catalog/pg_am.h"
#include "commands/defrem.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "index/index_am.h"
#include "index/index_check.h"
#include "type/imgfeat.h"

typedef struct CheckEntry
{
	ItemPointerData tid;		/* hash key */
	uint32		slot;
	bool		seen;			/* the table scan reported its row */
} CheckEntry;

typedef struct CheckState
{
	Relation	heap;
	Relation	index;
	bool		exact;			/* VACUUM is held off (not in recovery) */
	ImgsCheckedStore store;
	HTAB	   *entries;		/* live slots by heap TID */
	float	   *stored;			/* a vector read from the index */
	float		stored_norm_sq;	/* its slot's stored squared norm; NaN if not read */
	MemoryContext row_ctx;		/* reset after each row */
	int64		live;
	int64		heap_rows;
	int64		dead_entries;
} CheckState;

#define TID_ARGS(tid) ItemPointerGetBlockNumberNoCheck(tid), ItemPointerGetOffsetNumberNoCheck(tid)

static void
not_an_index(Oid relid)
{
	Relation	rel = try_relation_open(relid, AccessShareLock);

	if (rel == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	ereport(ERROR,
			(errcode(ERRCODE_WRONG_OBJECT_TYPE),
			 errmsg("\"%s\" is not an index", RelationGetRelationName(rel)),
			 errhint("imgsearch_index_check verifies an index of an imgsearch access method.")));
}

static const ImgsIndexAm *
find_method(Relation index)
{
	const ImgsIndexAm *am = imgs_index_am_of(index);

	if (am != NULL)
		return am;
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("index \"%s\" is not an imgsearch index", RelationGetRelationName(index)),
			 errdetail("Its access method is %s; imgsearch_index_check verifies indexes of %s.",
					   get_am_name(index->rd_rel->relam), imgs_index_am_names())));
	return NULL;				/* not reached */
}

/*
 * Reads the vector of entry's slot into state->stored. False if the slot
 * changed since the store was read, which only a replayed VACUUM can do.
 */
static bool
read_entry(CheckState *state, const CheckEntry *entry)
{
	ImgsSlotHeader header;

	state->stored_norm_sq = NAN;
	imgs_store_read_slot(state->index, &state->store.header.store, state->store.groups,
						 entry->slot, &header, state->stored);
	if (header.state == IMGS_SLOT_LIVE && ItemPointerEquals(&header.tid, (ItemPointer) &entry->tid))
	{
		state->stored_norm_sq = header.u.norm_sq;
		return true;
	}
	if (state->exact)
		imgs_index_corrupted(state->index, "has slot %u (row (%u,%u)) changed under the check, "
							 "with VACUUM held off", entry->slot, TID_ARGS(&entry->tid));
	return false;
}

/* Step 2: the live slots by TID; a TID must be valid and in one slot only. */
static void
map_entries(CheckState *state)
{
	const ImgsStoreMeta *meta = &state->store.header.store;
	HASHCTL		ctl;

	for (uint32 s = 0; s < meta->nslots; s++)
		if (state->store.headers[s].state == IMGS_SLOT_LIVE)
			state->live++;

	ctl.keysize = sizeof(ItemPointerData);
	ctl.entrysize = sizeof(CheckEntry);
	ctl.hcxt = CurrentMemoryContext;
	state->entries = hash_create("imgsearch_index_check entries", Max(state->live, 16), &ctl,
								 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	for (uint32 s = 0; s < meta->nslots; s++)
	{
		ItemPointer tid = &state->store.headers[s].tid;
		CheckEntry *entry;
		bool		found;

		if (state->store.headers[s].state != IMGS_SLOT_LIVE)
			continue;
		if (!ItemPointerIsValid(tid) || !OffsetNumberIsValid(ItemPointerGetOffsetNumberNoCheck(tid)))
			imgs_index_corrupted(state->index, "has an invalid heap TID (%u,%u) in slot %u",
								 TID_ARGS(tid), s);
		entry = hash_search(state->entries, tid, HASH_ENTER, &found);
		if (found)
			imgs_index_corrupted(state->index, "has two entries for row (%u,%u) of table \"%s\": slots %u and %u",
								 TID_ARGS(tid), RelationGetRelationName(state->heap), entry->slot, s);
		entry->slot = s;
		entry->seen = false;
	}
}

/* Step 3, for each row the snapshot sees and the index predicate keeps. */
static void
heap_row_callback(Relation index, ItemPointer tid, Datum *values, bool *isnull,
				  bool tuple_is_alive, void *arg)
{
	CheckState *state = (CheckState *) arg;
	CheckEntry *entry = hash_search(state->entries, tid, HASH_FIND, NULL);
	const char *table = RelationGetRelationName(state->heap);
	MemoryContext old_ctx;
	ImgFeat    *v;

	if (isnull[0])
	{
		if (entry != NULL)
			imgs_index_corrupted(index, "has an entry (slot %u) for row (%u,%u) of table \"%s\", whose value is NULL",
								 entry->slot, TID_ARGS(tid), table);
		return;
	}
	if (entry == NULL)
		imgs_index_corrupted(index, "has no entry for row (%u,%u) of table \"%s\"", TID_ARGS(tid), table);
	if (entry->seen)
		elog(ERROR, "row (%u,%u) of table \"%s\" reported twice", TID_ARGS(tid), table);
	entry->seen = true;
	state->heap_rows++;
	if (state->store.unreferenced && state->store.unreferenced[entry->slot])
		imgs_index_corrupted(index, "has no %s entry for live slot %u", state->store.lists_name, entry->slot);

	old_ctx = MemoryContextSwitchTo(state->row_ctx);
	v = DatumGetImgFeatP(values[0]);
	if (v->dim != (int) state->store.header.store.dim)
		imgs_index_corrupted(index, "holds %u-dimensional vectors, but row (%u,%u) of table \"%s\" has %d dimensions",
							 state->store.header.store.dim, TID_ARGS(tid), table, v->dim);
	if (read_entry(state, entry) &&
		memcmp(v->x, state->stored, sizeof(float) * v->dim) != 0)
	{
		int			i = 0;

		while (memcmp(&v->x[i], &state->stored[i], sizeof(float)) == 0)
			i++;
		imgs_index_corrupted(index, "stores a vector for row (%u,%u) of table \"%s\" (slot %u) that differs "
							 "from the table's at element %d: %.9g in the index, %.9g in the table",
							 TID_ARGS(tid), table, entry->slot, i + 1,
							 state->stored[i], v->x[i]);
	}
	/* a cosine scan uses a usable stored norm instead of the vector's */
	if (imgs_norm_squared_stored(state->stored_norm_sq) &&
		(double) state->stored_norm_sq != imgs_norm_squared(state->stored, v->dim))
		imgs_index_corrupted(index, "stores a squared norm %.9g for slot %u (row (%u,%u)) "
							 "that is not its vector's", state->stored_norm_sq, entry->slot, TID_ARGS(tid));
	MemoryContextSwitchTo(old_ctx);
	MemoryContextReset(state->row_ctx);
}

static int
entry_tid_cmp(const void *a, const void *b)
{
	return ItemPointerCompare(&(*(CheckEntry *const *) a)->tid, &(*(CheckEntry *const *) b)->tid);
}

/*
 * An entry of a row the snapshot does not see must still lead to a row: a
 * used line pointer (normal, redirect or dead) that is not a heap-only tuple.
 */
static void
check_heap_item(CheckState *state, const CheckEntry *entry, BufferAccessStrategy strategy)
{
	BlockNumber blkno = ItemPointerGetBlockNumber(&entry->tid);
	OffsetNumber offnum = ItemPointerGetOffsetNumber(&entry->tid);
	Buffer		buf = ReadBufferExtended(state->heap, MAIN_FORKNUM, blkno, RBM_NORMAL, strategy);
	Page		page;
	const char *problem = NULL;

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	if (PageIsNew(page) || offnum > PageGetMaxOffsetNumber(page))
		problem = "past the last line pointer of its page";
	else
	{
		ItemId		lp = PageGetItemId(page, offnum);

		if (!ItemIdIsUsed(lp))
			problem = "an unused line pointer (VACUUM removed the row but not its entry)";
		else if (ItemIdIsNormal(lp) &&
				 ItemIdGetOffset(lp) + SizeofHeapTupleHeader <= BLCKSZ &&
				 HeapTupleHeaderIsHeapOnly((HeapTupleHeader) PageGetItem(page, lp)))
			problem = "a heap-only tuple (entries point at the first tuple of a HOT chain)";
	}
	UnlockReleaseBuffer(buf);
	if (problem)
		imgs_index_corrupted(state->index, "has an entry (slot %u) for row (%u,%u) of table \"%s\", which is %s",
							 entry->slot, TID_ARGS(&entry->tid), RelationGetRelationName(state->heap), problem);
}

/* Step 4: the entries the table scan did not report, in TID order. */
static void
check_other_entries(CheckState *state, Snapshot snapshot)
{
	const char *table = RelationGetRelationName(state->heap);
	int64		n = state->live - state->heap_rows;
	CheckEntry **others;
	HASH_SEQ_STATUS seq;
	CheckEntry *entry;
	int64		i = 0;
	BlockNumber nblocks;
	bool		is_heap = state->heap->rd_rel->relam == HEAP_TABLE_AM_OID;
	BufferAccessStrategy strategy;

	if (n == 0)
		return;
	others = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(CheckEntry *) * n);
	hash_seq_init(&seq, state->entries);
	while ((entry = hash_seq_search(&seq)) != NULL)
		if (!entry->seen)
			others[i++] = entry;
	Assert(i == n);
	qsort(others, n, sizeof(CheckEntry *), entry_tid_cmp);

	/* the table cannot shrink under our lock; rows of the entries are older */
	nblocks = RelationGetNumberOfBlocks(state->heap);
	strategy = GetAccessStrategy(BAS_BULKREAD);
	for (i = 0; i < n; i++)
	{
		entry = others[i];
		CHECK_FOR_INTERRUPTS();
		if (ItemPointerGetBlockNumber(&entry->tid) >= nblocks)
			imgs_index_corrupted(state->index, "has an entry (slot %u) for row (%u,%u), past the end of table \"%s\" (%u pages)",
								 entry->slot, TID_ARGS(&entry->tid), table, nblocks);
		if (!state->exact)
			continue;
		if (is_heap)
			check_heap_item(state, entry, strategy);
		if (table_index_fetch_tuple_check(state->heap, &entry->tid, snapshot, NULL))
			imgs_index_corrupted(state->index, "has an entry (slot %u) for row (%u,%u) of table \"%s\", which it "
								 "should not hold (the index predicate excludes the row)",
								 entry->slot, TID_ARGS(&entry->tid), table);
		if (read_entry(state, entry))
			for (uint32 d = 0; d < state->store.header.store.dim; d++)
				if (!isfinite(state->stored[d]))
					imgs_index_corrupted(state->index, "stores a non-finite element %u in slot %u (row (%u,%u))",
										 d + 1, entry->slot, TID_ARGS(&entry->tid));
		state->dead_entries++;
	}
	FreeAccessStrategy(strategy);
	pfree(others);
}

PG_FUNCTION_INFO_V1(imgsearch_index_check);
Datum
imgsearch_index_check(PG_FUNCTION_ARGS)
{
	Oid			indexoid;
	Oid			heapoid;
	LOCKMODE	heap_lock;
	const ImgsIndexAm *method;
	CheckState	state;
	Snapshot	snapshot;
	IndexInfo  *index_info;
	TableScanDesc scan;
	TupleDesc	tupdesc;
	Datum		values[6];
	bool		nulls[6] = {false};

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("imgsearch_index_check needs an index, not NULL")));
	indexoid = PG_GETARG_OID(0);
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	heapoid = IndexGetRelation(indexoid, true);
	if (!OidIsValid(heapoid))
		not_an_index(indexoid);
	/* before any lock: others may not hold off the table's VACUUM */
	if (!pg_class_ownercheck(heapoid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE, get_rel_name(heapoid));

	memset(&state, 0, sizeof(state));
	state.exact = !RecoveryInProgress();
	heap_lock = state.exact ? ShareUpdateExclusiveLock : AccessShareLock;
	state.heap = table_open(heapoid, heap_lock);
	state.index = index_open(indexoid, AccessShareLock);
	if (IndexGetRelation(indexoid, false) != heapoid)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("could not open parent table of index \"%s\"",
						RelationGetRelationName(state.index))));
	if (state.index->rd_rel->relkind != RELKIND_INDEX)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is a partitioned index", RelationGetRelationName(state.index)),
				 errhint("Check the index of each partition.")));
	method = find_method(state.index);
	if (RELATION_IS_OTHER_TEMP(state.index))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot check temporary indexes of other sessions")));
	if (!state.index->rd_index->indisvalid)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot check index \"%s\"", RelationGetRelationName(state.index)),
				 errdetail("Index is not valid.")));
	if (!RelationNeedsWAL(state.index) && RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot check unlogged index \"%s\" during recovery",
						RelationGetRelationName(state.index))));

	/*
	 * The snapshot, after the locks and before the index is read: every row
	 * it sees was inserted, index entry included, before the store is read.
	 * An older transaction snapshot (REPEATABLE READ) is as good unless it
	 * predates the index's indcheckxmin horizon (as in amcheck).
	 */
	snapshot = RegisterSnapshot(GetTransactionSnapshot());
	if (IsolationUsesXactSnapshot() && state.index->rd_index->indcheckxmin &&
		!TransactionIdPrecedes(HeapTupleHeaderGetXmin(state.index->rd_indextuple->t_data),
							   snapshot->xmin))
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("index \"%s\" cannot be verified using transaction snapshot",
						RelationGetRelationName(state.index))));

	/* 1 */
	method->check(state.index, &state.store);
	if (state.store.header.store.dim > IMGFEAT_MAX_DIM)
		imgs_index_corrupted(state.index, "holds %u-dimensional vectors, more than imgfeat allows (%d)",
							 state.store.header.store.dim, IMGFEAT_MAX_DIM);
	/* 2 */
	map_entries(&state);
	state.stored = palloc(sizeof(float) * Max(state.store.header.store.dim, 1));
	state.row_ctx = AllocSetContextCreate(CurrentMemoryContext, "imgsearch_index_check row",
										  ALLOCSET_DEFAULT_SIZES);

	/* 3: the table, as the first scan of CREATE INDEX CONCURRENTLY reads it */
	scan = table_beginscan_strat(state.heap, snapshot, 0, NULL, true, true);
	index_info = BuildIndexInfo(state.index);
	index_info->ii_Concurrent = true;
	index_info->ii_Unique = false;
	index_info->ii_ExclusionOps = NULL;
	index_info->ii_ExclusionProcs = NULL;
	index_info->ii_ExclusionStrats = NULL;
	table_index_build_scan(state.heap, state.index, index_info, true, false,
						   heap_row_callback, &state, scan);	/* ends the scan */

	/* 4 */
	check_other_entries(&state, snapshot);

	values[0] = CStringGetTextDatum(method->name);
	values[1] = Int64GetDatum(RelationGetNumberOfBlocks(state.index));
	values[2] = Int64GetDatum(state.live);
	values[3] = Int64GetDatum(state.store.header.store.nfree);
	values[4] = Int64GetDatum(state.heap_rows);
	values[5] = Int64GetDatum(state.dead_entries);

	UnregisterSnapshot(snapshot);
	MemoryContextDelete(state.row_ctx);
	hash_destroy(state.entries);
	index_close(state.index, AccessShareLock);
	table_close(state.heap, heap_lock);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* ---------------------------------------------------------------------------
 * Entry lists (imgs_check_lists)
 */

/* Whether slot is live now with the TID the store check saw, its vector in x. */
static bool
slot_unchanged(Relation index, ImgsCheckedStore *store, uint32 slot, float *x)
{
	ImgsSlotHeader now;

	imgs_store_read_slot(index, &store->header.store, store->groups, slot, &now, x);
	return now.state == IMGS_SLOT_LIVE && ItemPointerEquals(&now.tid, &store->headers[slot].tid);
}

void
imgs_check_lists(Relation index, ImgsCheckedStore *store, uint16 kind, Size entry_size,
				 uint32 nlists, const BlockNumber *last, const char *what,
				 ImgsCheckEntry check, void *arg)
{
	BlockNumber next_block = store->header.next_block;
	uint32		nslots = store->header.store.nslots;
	bool	   *seen = palloc0(sizeof(bool) * Max(nslots, 1));
	float	   *x = palloc(sizeof(float) * Max(store->header.store.dim, 1));

	for (uint32 list = 0; list < nlists; list++)
	{
		BlockNumber blkno = last[list];
		uint32		pages = 0;

		while (BlockNumberIsValid(blkno))
		{
			Buffer		buf;
			PGAlignedBlock copy;
			const ImgsListPageHeader *ph;

			CHECK_FOR_INTERRUPTS();
			/* a page linked by an insert since the store was read may lie past next_block */
			if (blkno == 0 || blkno >= RelationGetNumberOfBlocks(index) || ++pages > next_block + 1)
				imgs_index_corrupted(index, "has a chain of %s %u through block %u", what, list, blkno);
			buf = imgs_list_read_page(index, blkno, kind, list, entry_size, pages, BUFFER_LOCK_SHARE, NULL);
			memcpy(copy.data, BufferGetPage(buf), BLCKSZ);
			UnlockReleaseBuffer(buf);
			ph = ImgsListPageHeaderOf(copy.data);
			for (uint32 i = 0; i < ph->count; i++)
			{
				const char *entry = imgs_list_entry(copy.data, entry_size, i);
				uint32		slot = imgs_list_entry_slot(entry);

				if (slot == IMGS_NO_SLOT || slot >= nslots)
					continue;	/* dead, or inserted since the store was read */
				if (store->headers[slot].state != IMGS_SLOT_LIVE)
				{
					ImgsSlotHeader now;

					/* a free slot reused by an insert since is fine; else a stale reference */
					imgs_store_read_slot(index, &store->header.store, store->groups, slot, &now, x);
					if (now.state != IMGS_SLOT_LIVE)
						imgs_index_corrupted(index, "has an entry in %s %u for slot %u, which is not live",
											 what, list, slot);
					continue;
				}
				if (seen[slot])
					imgs_index_corrupted(index, "has two entries for slot %u", slot);
				seen[slot] = true;
				/* vacuumed and reused under a check in recovery: nothing to compare */
				if (slot_unchanged(index, store, slot, x))
					check(index, list, entry, x, arg);
			}
			blkno = ph->prev_blkno;
		}
	}
	/* a live slot that no entry names is an error only for a row the snapshot sees (step 3) */
	for (uint32 slot = 0; slot < nslots; slot++)
		if (store->headers[slot].state == IMGS_SLOT_LIVE && !seen[slot] &&
			slot_unchanged(index, store, slot, x))
		{
			if (store->unreferenced == NULL)
				store->unreferenced = palloc0(sizeof(bool) * nslots);
			store->unreferenced[slot] = true;
			store->lists_name = what;
		}
	pfree(seen);
	pfree(x);
}
