/*
 * store_layout.c — the vector store's layout helpers, shared by its files
 * (store_internal.h): the dimension and the pages it takes, where a slot's
 * vector lies, the directory of groups, the checks every writer makes.
 */
#include "postgres.h"

#include "index/store_internal.h"

StaticAssertDecl(sizeof(ImgsSlotHeader) == 12, "slot headers must pack 680 to a page");
StaticAssertDecl(IMGS_MAX_GROUP_SLOTS <= PG_UINT16_MAX, "group_slots is a uint16");
StaticAssertDecl(offsetof(ImgsIndexMeta, store.nslots) == 20,
				 "nslots stays where version 1 had it (test/t/011_faissflat_crash.pl reads it)");

void
imgs_store_set_dim(ImgsStoreMeta *meta, int dim)
{
	uint64		vector_bytes = (uint64) dim * sizeof(float);
	uint32		slots = (uint32) Max(1, Min((uint64) IMGS_MAX_GROUP_SLOTS, IMGS_GROUP_VECTOR_BYTES / vector_bytes));
	uint64		group_bytes = (uint64) slots * vector_bytes;

	meta->dim = dim;
	/* 0 where it is the most: such a store reads as before group_slots came */
	meta->group_slots = slots == IMGS_MAX_GROUP_SLOTS ? 0 : slots;
	meta->group_pages = 1 + (uint32) ((group_bytes + IMGS_PAGE_CAPACITY - 1) / IMGS_PAGE_CAPACITY);
}

void
imgs_store_meta_init(ImgsStoreMeta *meta, int dim)
{
	memset(meta, 0, sizeof(*meta));
	meta->free_head = IMGS_NO_SLOT;
	if (dim > 0)
		imgs_store_set_dim(meta, dim);
}

/* The block and byte offset where the vector of slot starts, in the group starting at group_start. */
void
imgs_store_vector_position(const ImgsStoreMeta *meta, BlockNumber group_start, uint32 slot,
						   BlockNumber *blkno, Size *offset)
{
	uint64		byte = (uint64) (slot % imgs_group_slots(meta)) * VECTOR_BYTES(meta);

	*blkno = group_start + 1 + (BlockNumber) (byte / IMGS_PAGE_CAPACITY);
	*offset = byte % IMGS_PAGE_CAPACITY;
}

/* Copies bytes of vector data that begin at offset of block blkno and may span pages. */
void
imgs_store_copy_vector_pages(Relation index, BlockNumber blkno, Size offset, Size bytes, char *dst)
{
	for (; bytes > 0; blkno++, offset = 0)
	{
		Size		chunk = Min(bytes, IMGS_PAGE_CAPACITY - offset);
		Buffer		buf = ReadBuffer(index, blkno);

		LockBuffer(buf, BUFFER_LOCK_SHARE);
		imgs_page_check(index, BufferGetPage(buf), blkno, IMGS_PAGE_VECTORS);
		memcpy(dst, ImgsPageGetData(BufferGetPage(buf)) + offset, chunk);
		UnlockReleaseBuffer(buf);
		dst += chunk;
		bytes -= chunk;
	}
}

/* Fixes the dimension with the first vector; errors on a different one. */
void
imgs_store_check_dim(Relation index, ImgsStoreMeta *meta, int dim)
{
	if (meta->dim == 0)
		imgs_store_set_dim(meta, dim);
	else if (meta->dim != dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("expected %u dimensions, not %d", meta->dim, dim),
				 errdetail("Index \"%s\" holds %u-dimensional vectors.",
						   RelationGetRelationName(index), meta->dim)));
}

/* Errors when appending one more slot would overflow slot numbers or the directory. */
void
imgs_store_check_room(Relation index, const ImgsStoreMeta *meta)
{
	if (meta->nslots >= IMGS_NO_SLOT - 1 ||
		(meta->nslots == meta->ngroups * imgs_group_slots(meta) && meta->ngroups >= IMGS_STORE_MAX_GROUPS))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("index \"%s\" cannot hold more vectors",
						RelationGetRelationName(index))));
}

void
imgs_store_corrupted(Relation index, const char *what, uint32 n)
{
	ereport(ERROR,
			(errcode(ERRCODE_INDEX_CORRUPTED),
			 errmsg("index \"%s\" has %s %u", RelationGetRelationName(index), what, n),
			 errhint("Please REINDEX it.")));
}

/*
 * Copies the start blocks of groups [from, to) of meta to out[from..to),
 * reading directory pages (one lock at a time).
 */
void
imgs_store_read_directory(Relation index, const ImgsStoreMeta *meta, uint32 from, uint32 to, BlockNumber *out)
{
	uint32		g = from;

	for (; g < to && g < IMGS_STORE_INLINE_GROUPS; g++)
		out[g] = meta->groups[g];
	while (g < to)
	{
		uint32		d,
					e,
					n;
		BlockNumber blkno;
		Buffer		buf;

		imgs_store_dir_position(g, &d, &e);
		n = Min(to - g, IMGS_DIR_PAGE_ENTRIES - e);
		blkno = meta->dir_pages[d];
		buf = ReadBuffer(index, blkno);
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		imgs_page_check(index, BufferGetPage(buf), blkno, IMGS_PAGE_DIRECTORY);
		memcpy(out + g, (BlockNumber *) ImgsPageGetData(BufferGetPage(buf)) + e,
			   n * sizeof(BlockNumber));
		UnlockReleaseBuffer(buf);
		g += n;
	}
	for (g = from; g < to; g++)
		if (out[g] <= IMGS_METAPAGE_BLKNO || out[g] >= MaxBlockNumber)
			imgs_store_corrupted(index, "a bad start block for group", g);
}
