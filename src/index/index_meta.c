/*
 * index_meta.c — the shared metapage header and the block allocator (see
 * index_meta.h).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_amop.h"
#include "utils/builtins.h"
#include "utils/catcache.h"
#include "utils/syscache.h"

#include "index/distance_core.h"
#include "index/index_meta.h"

StaticAssertDecl(offsetof(ImgsIndexMeta, store) == 8,
				 "magic and version open every imgsearch metapage, as in version 1");
StaticAssertDecl(IMGS_META_METHOD_OFFSET < IMGS_PAGE_CAPACITY / 2,
				 "the shared header leaves most of the metapage to the method");

void
imgs_meta_init(Page page, const ImgsIndexAm *am, int metric, int dim)
{
	ImgsIndexMeta *meta;

	imgs_page_init(page, IMGS_PAGE_META);
	meta = ImgsMetaGetHeader(page);
	meta->magic = am->magic;
	meta->version = am->version;
	meta->next_block = IMGS_METAPAGE_BLKNO + 1;
	meta->metric = (uint16) metric;
	imgs_store_meta_init(&meta->store, dim);
}

ImgsIndexMeta *
imgs_meta_check(Relation index, Page page, const ImgsIndexAm *am)
{
	ImgsIndexMeta *meta;

	imgs_page_check(index, page, IMGS_METAPAGE_BLKNO, IMGS_PAGE_META);
	meta = ImgsMetaGetHeader(page);
	if (meta->magic != am->magic)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index \"%s\" is not a %s index",
						RelationGetRelationName(index), am->name),
				 errhint("Please REINDEX it.")));
	if (meta->version != am->version)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s index \"%s\" has on-disk version %u, but this imgsearch reads only version %u",
						am->name, RelationGetRelationName(index), meta->version, am->version),
				 errhint("REINDEX INDEX %s rebuilds it in the current layout.",
						 quote_identifier(RelationGetRelationName(index)))));
	if (meta->metric > IMGS_METRIC_IP ||
		meta->next_block <= IMGS_METAPAGE_BLKNO ||
		meta->store.ngroups > IMGS_STORE_MAX_GROUPS ||
		meta->store.ndirpages > IMGS_STORE_DIR_PAGES ||
		meta->store.group_slots > IMGS_MAX_GROUP_SLOTS ||
		(uint64) meta->store.nslots > (uint64) meta->store.ngroups * imgs_group_slots(&meta->store))
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index \"%s\" has a corrupted metapage",
						RelationGetRelationName(index)),
				 errhint("Please REINDEX it.")));
	return meta;
}

Buffer
imgs_meta_lock(Relation index, const ImgsIndexAm *am, int mode)
{
	Buffer		buf = ReadBuffer(index, IMGS_METAPAGE_BLKNO);

	LockBuffer(buf, mode);
	PG_TRY();
	{
		imgs_meta_check(index, BufferGetPage(buf), am);
	}
	PG_CATCH();
	{
		UnlockReleaseBuffer(buf);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return buf;
}

void
imgs_meta_read(Relation index, const ImgsIndexAm *am, ImgsIndexMeta *meta,
			   void *method_data, Size method_len)
{
	Buffer		buf = imgs_meta_lock(index, am, BUFFER_LOCK_SHARE);
	Page		page = BufferGetPage(buf);

	Assert(method_len <= IMGS_META_METHOD_CAPACITY);
	*meta = *ImgsMetaGetHeader(page);
	if (method_len > 0)
		memcpy(method_data, ImgsMetaGetMethodData(page), method_len);
	UnlockReleaseBuffer(buf);
}

int
imgs_index_metric(Relation index)
{
	Oid			opfamily = index->rd_opfamily[0];
	Oid			opcintype = index->rd_opcintype[0];
	CatCList   *oprlist = SearchSysCacheList1(AMOPSTRATEGY, ObjectIdGetDatum(opfamily));
	int			metric = -1;

	for (int i = 0; i < oprlist->n_members; i++)
	{
		Form_pg_amop oprform = (Form_pg_amop) GETSTRUCT(&oprlist->members[i]->tuple);
		int			strategy = oprform->amopstrategy;

		if (oprform->amoppurpose != AMOP_ORDER ||
			oprform->amoplefttype != opcintype || oprform->amoprighttype != opcintype)
			continue;
		if (strategy < IMGS_METRIC_L2 || strategy > IMGS_METRIC_IP)
			continue;			/* amvalidate reports it; no scan can use it */
		metric = metric < 0 || metric == strategy ? strategy : 0;
	}
	ReleaseCatCacheList(oprlist);
	if (metric < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("the operator family of index \"%s\" has no ORDER BY operator",
						RelationGetRelationName(index))));
	return metric;
}

void
imgs_meta_check_metric(Relation index, const ImgsIndexMeta *meta, int strategy)
{
	if (meta->metric != 0 && meta->metric != strategy)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("index \"%s\" was built for ORDER BY strategy %u, not %d",
						RelationGetRelationName(index), meta->metric, strategy),
				 errdetail("Its operator family changed after the index was built."),
				 errhint("REINDEX INDEX %s rebuilds it for the operator family as it is now.",
						 quote_identifier(RelationGetRelationName(index)))));
}

BlockNumber
imgs_alloc_blocks(Relation index, ImgsIndexMeta *meta, uint32 n)
{
	BlockNumber first = meta->next_block;

	if ((uint64) first + n >= MaxBlockNumber)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("index \"%s\" cannot grow any further",
						RelationGetRelationName(index))));
	meta->next_block = first + n;
	return first;
}
