/*
 * index_pages.c — page helpers shared by the imgsearch index methods (see
 * index_pages.h).
 */
#include "postgres.h"

#include "access/xloginsert.h"
#include "storage/lmgr.h"

#include "index/index_pages.h"

void
imgs_page_init(Page page, uint16 kind)
{
	ImgsPageOpaque opaque;

	PageInit(page, BLCKSZ, sizeof(ImgsPageOpaqueData));
	opaque = ImgsPageGetOpaque(page);
	opaque->kind = kind;
	opaque->page_id = IMGS_PAGE_ID;
	/* no hole: the whole data area is content (see index_pages.h) */
	((PageHeader) page)->pd_lower = ((PageHeader) page)->pd_upper;
}

void
imgs_page_check(Relation index, Page page, BlockNumber blkno, uint16 kind)
{
	ImgsPageOpaque opaque = ImgsPageGetOpaque(page);

	if (PageIsNew(page) ||
		PageGetSpecialSize(page) != MAXALIGN(sizeof(ImgsPageOpaqueData)) ||
		opaque->page_id != IMGS_PAGE_ID || opaque->kind != kind)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index \"%s\" contains an unexpected page at block %u",
						RelationGetRelationName(index), blkno),
				 errhint("Please REINDEX it.")));
}

Buffer
imgs_extend(Relation index, ForkNumber fork)
{
	Buffer		buf;

	/* The extension lock is not needed where no one else can see the relation. */
	if (!RELATION_IS_LOCAL(index))
		LockRelationForExtension(index, ExclusiveLock);
	buf = ReadBufferExtended(index, fork, P_NEW, RBM_NORMAL, NULL);
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	if (!RELATION_IS_LOCAL(index))
		UnlockRelationForExtension(index, ExclusiveLock);
	return buf;
}

Buffer
imgs_write_extending(Relation index, BlockNumber blkno)
{
	Buffer		buf;

	while (RelationGetNumberOfBlocks(index) <= blkno)
	{
		buf = imgs_extend(index, MAIN_FORKNUM);
		if (BufferGetBlockNumber(buf) == blkno)
			return buf;
		/* an intermediate page: left zeroed, initialised by whoever writes it */
		UnlockReleaseBuffer(buf);
	}
	buf = ReadBuffer(index, blkno);
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	return buf;
}

void
imgs_build_write_page(Relation index, BlockNumber blkno, Page image)
{
	Buffer		buf = imgs_write_extending(index, blkno);

	memcpy(BufferGetPage(buf), image, BLCKSZ);
	MarkBufferDirty(buf);
	UnlockReleaseBuffer(buf);
}

void
imgs_log_built_index(Relation index)
{
	if (RelationNeedsWAL(index))
		log_newpage_range(index, MAIN_FORKNUM, 0,
						  RelationGetNumberOfBlocks(index), true);
}
