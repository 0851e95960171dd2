/*
 * faissflat_scan.c — ambeginscan, amrescan, amgettuple, amendscan: every scan
 * is a flat scan of the vector store (index/flat_scan.h), in passes.
 *
 * Distances are exact (the operator's own arithmetic, index/index_scan.h),
 * so xs_recheckorderby stays false. The heap decides visibility: rows are
 * returned whatever their MVCC state, as by any index. A range search (WHERE
 * feat <<->> imgsearch_sphere(q, r)) is a flat pass too: every vector is
 * read, only those within the radius are sorted and returned.
 */
#include "postgres.h"

#include "access/relscan.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/memutils.h"

#include "index/flat_scan.h"
#include "faissflat/faissflat.h"
#include "type/imgfeat.h"

typedef struct FaissflatScanOpaqueData
{
	MemoryContext ctx;			/* everything below lives here */
	ImgsScanState ss;			/* the query, the last row returned */
	bool		started;		/* first pass done */
	ImgsFlatScan flat;
} FaissflatScanOpaqueData;

typedef FaissflatScanOpaqueData *FaissflatScanOpaque;

IndexScanDesc
faissflat_beginscan(Relation index, int nkeys, int norderbys)
{
	IndexScanDesc scan = imgs_scan_begin(index, nkeys, norderbys);
	FaissflatScanOpaque so = palloc0(sizeof(FaissflatScanOpaqueData));

	so->ctx = AllocSetContextCreate(CurrentMemoryContext, "faissflat scan",
									ALLOCSET_DEFAULT_SIZES);
	scan->opaque = so;
	return scan;
}

void
faissflat_rescan(IndexScanDesc scan, ScanKey keys, int nkeys, ScanKey orderbys, int norderbys)
{
	FaissflatScanOpaque so = (FaissflatScanOpaque) scan->opaque;
	MemoryContext old_ctx;

	MemoryContextReset(so->ctx);
	so->started = false;
	old_ctx = MemoryContextSwitchTo(so->ctx);
	imgs_scan_rescan(scan, &so->ss, keys, orderbys, "faissflat");
	MemoryContextSwitchTo(old_ctx);
}

bool
faissflat_gettuple(IndexScanDesc scan, ScanDirection dir)
{
	FaissflatScanOpaque so = (FaissflatScanOpaque) scan->opaque;
	MemoryContext old_ctx = MemoryContextSwitchTo(so->ctx);
	bool		found;

	if (so->ss.done)
	{
		MemoryContextSwitchTo(old_ctx);
		return false;
	}
	if (!so->started)
	{
		ImgsIndexMeta meta;

		faissflat_read_meta(scan->indexRelation, &meta);
		imgs_scan_start(scan, &so->ss, &meta);
		imgs_flat_scan_start(&so->flat, scan, &so->ss, &faissflat_am, &meta);
		so->started = true;
	}
	found = imgs_flat_scan_next(&so->flat, scan, &so->ss);
	MemoryContextSwitchTo(old_ctx);
	return found;
}

void
faissflat_endscan(IndexScanDesc scan)
{
	FaissflatScanOpaque so = (FaissflatScanOpaque) scan->opaque;

	MemoryContextDelete(so->ctx);
	pfree(so);
	scan->opaque = NULL;
}

/*
 * faissflat_store_keys(index regclass, slots int8[], query imgfeat)
 *   RETURNS TABLE (slot int8, live bool, heap_tid tid, key float8)
 *
 * A test hook (superuser only) for the shared re-rank call, imgs_store_keys,
 * which faissflat's own scan does not use: the header and key (for the
 * index's metric; L2 when it serves several) of each slot, as a method that
 * names slots would re-rank them. key is NULL for a slot that is not live.
 */
PG_FUNCTION_INFO_V1(faissflat_store_keys);
Datum
faissflat_store_keys(PG_FUNCTION_ARGS)
{
	Oid			indexoid = PG_GETARG_OID(0);
	ArrayType  *array = PG_GETARG_ARRAYTYPE_P(1);
	ImgFeat    *q = PG_GETARG_IMGFEAT_P(2);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Relation	index;
	ImgsIndexMeta meta;
	ImgsStoreReader reader;
	ImgsKeyQuery query = {0};
	Datum	   *elems;
	bool	   *elem_nulls;
	int			n;
	uint32	   *slots;
	double	   *keys;
	ImgsSlotHeader *headers;

	InitMaterializedSRF(fcinfo, 0);
	index = index_open(indexoid, AccessShareLock);
	if (index->rd_indam->ambuild != faissflat_build)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a faissflat index", RelationGetRelationName(index))));
	deconstruct_array(array, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &elems, &elem_nulls, &n);
	faissflat_read_meta(index, &meta);
	if (meta.store.dim != 0 && meta.store.dim != (uint32) q->dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("different imgfeat dimensions %u and %d", meta.store.dim, q->dim)));
	slots = palloc(sizeof(uint32) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		int64		s = elem_nulls[i] ? -1 : DatumGetInt64(elems[i]);

		if (s < 0 || s >= (int64) meta.store.nslots)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("index \"%s\" has no slot " INT64_FORMAT,
							RelationGetRelationName(index), s)));
		slots[i] = (uint32) s;
	}
	keys = palloc(sizeof(double) * Max(n, 1));
	headers = palloc(sizeof(ImgsSlotHeader) * Max(n, 1));
	query.metric = meta.metric != 0 ? meta.metric : IMGS_METRIC_L2;
	query.x = q->x;
	query.norm_sq = imgs_norm_squared(q->x, q->dim);
	imgs_store_open(&reader, index, &faissflat_am, &meta);
	if (n > 0 && meta.store.dim > 0)
		imgs_store_keys(&reader, slots, n, &query, keys, headers);
	imgs_store_close(&reader);

	for (int i = 0; i < n; i++)
	{
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};
		ItemPointer tid = palloc(sizeof(ItemPointerData));

		*tid = headers[i].tid;
		values[0] = Int64GetDatum(slots[i]);
		values[1] = BoolGetDatum(headers[i].state == IMGS_SLOT_LIVE);
		values[2] = PointerGetDatum(tid);
		nulls[2] = headers[i].state != IMGS_SLOT_LIVE;
		values[3] = Float8GetDatum(keys[i]);
		nulls[3] = headers[i].state != IMGS_SLOT_LIVE;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	index_close(index, AccessShareLock);
	PG_RETURN_NULL();
}
