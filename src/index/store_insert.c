/*
 * store_insert.c — one vector into the vector store, with Generic WAL
 * (imgs_store_insert*, vector_store.h "Insert" and its crash-safety rules).
 */
#include "postgres.h"

#include "access/generic_xlog.h"

#include "index/distance_core.h"
#include "index/store_internal.h"

/* The start block of group g of meta. */
static BlockNumber
group_start(Relation index, const ImgsStoreMeta *meta, uint32 g)
{
	BlockNumber blkno;

	Assert(g < meta->ngroups);
	imgs_store_read_directory(index, meta, g, g + 1, &blkno - g);
	return blkno;
}

/*
 * Allocates group ins->meta.store.ngroups in a record of its own: the
 * metapage (allocator, directory, group count), the group's empty slot page
 * and, past the inline directory, a directory page.
 */
static void
insert_new_group(ImgsStoreInsert *ins)
{
	Relation	index = ins->index;
	GenericXLogState *state = GenericXLogStart(index);
	ImgsIndexMeta *meta = ImgsMetaGetHeader(GenericXLogRegisterBuffer(state, ins->metabuf, 0));
	ImgsStoreMeta *store = &meta->store;
	uint32		g;
	BlockNumber start;
	Buffer		dirbuf = InvalidBuffer;
	Buffer		slotbuf;
	BlockNumber *dir_entry;
	Page		page;

	/* the header as begin has it (the dimension may have been fixed just now) */
	*meta = ins->meta;
	g = store->ngroups;
	if (g >= IMGS_STORE_INLINE_GROUPS)
	{
		uint32		d,
					e;

		imgs_store_dir_position(g, &d, &e);
		if (e == 0)
		{
			BlockNumber dirblk = imgs_alloc_blocks(index, meta, 1);

			store->dir_pages[d] = dirblk;
			store->ndirpages = d + 1;
			dirbuf = imgs_write_extending(index, dirblk);
			page = GenericXLogRegisterBuffer(state, dirbuf, GENERIC_XLOG_FULL_IMAGE);
			imgs_page_init(page, IMGS_PAGE_DIRECTORY);
		}
		else
		{
			dirbuf = ReadBuffer(index, store->dir_pages[d]);
			LockBuffer(dirbuf, BUFFER_LOCK_EXCLUSIVE);
			page = GenericXLogRegisterBuffer(state, dirbuf, 0);
			imgs_page_check(index, page, store->dir_pages[d], IMGS_PAGE_DIRECTORY);
		}
		dir_entry = (BlockNumber *) ImgsPageGetData(page) + e;
	}
	else
		dir_entry = &store->groups[g];

	start = imgs_alloc_blocks(index, meta, store->group_pages);
	*dir_entry = start;
	store->ngroups++;
	slotbuf = imgs_write_extending(index, start);
	page = GenericXLogRegisterBuffer(state, slotbuf, GENERIC_XLOG_FULL_IMAGE);
	imgs_page_init(page, IMGS_PAGE_SLOTS);

	ins->meta = *meta;
	GenericXLogFinish(state);
	UnlockReleaseBuffer(slotbuf);
	if (BufferIsValid(dirbuf))
		UnlockReleaseBuffer(dirbuf);
}

/*
 * Writes the vector of slot to its pages, with as many Generic WAL records as
 * it has pages over MAX_GENERIC_XLOG_PAGES. Nothing points at it yet.
 */
static void
write_vector(Relation index, const ImgsStoreMeta *meta, BlockNumber start, uint32 slot,
			 const float *x)
{
	const char *src = (const char *) x;
	Size		left = VECTOR_BYTES(meta);
	BlockNumber blkno;
	Size		offset;

	imgs_store_vector_position(meta, start, slot, &blkno, &offset);
	while (left > 0)
	{
		GenericXLogState *state = GenericXLogStart(index);
		Buffer		bufs[MAX_GENERIC_XLOG_PAGES];
		int			nbufs = 0;

		for (; left > 0 && nbufs < MAX_GENERIC_XLOG_PAGES; blkno++, offset = 0)
		{
			Buffer		buf = imgs_write_extending(index, blkno);
			bool		fresh = PageIsNew(BufferGetPage(buf));
			Page		page = GenericXLogRegisterBuffer(state, buf, fresh ? GENERIC_XLOG_FULL_IMAGE : 0);
			Size		chunk = Min(left, IMGS_PAGE_CAPACITY - offset);

			if (fresh)
				imgs_page_init(page, IMGS_PAGE_VECTORS);
			else
				imgs_page_check(index, page, blkno, IMGS_PAGE_VECTORS);
			memcpy(ImgsPageGetData(page) + offset, src, chunk);
			bufs[nbufs++] = buf;
			src += chunk;
			left -= chunk;
		}
		GenericXLogFinish(state);
		while (nbufs > 0)
			UnlockReleaseBuffer(bufs[--nbufs]);
	}
}

void
imgs_store_insert_begin(ImgsStoreInsert *ins, Relation index, const ImgsIndexAm *am,
						ItemPointer tid, const float *x, int dim)
{
	ImgsStoreMeta *store;

	memset(ins, 0, sizeof(*ins));
	ins->index = index;
	ins->tid = *tid;
	ins->norm_sq = imgs_norm_squared_to_store(imgs_norm_squared(x, dim));
	ins->metabuf = imgs_meta_lock(index, am, BUFFER_LOCK_EXCLUSIVE);
	ins->meta = *ImgsMetaGetHeader(BufferGetPage(ins->metabuf));
	store = &ins->meta.store;
	imgs_store_check_dim(index, store, dim);
	ins->reuse = store->free_head != IMGS_NO_SLOT;
	if (ins->reuse)
	{
		ins->slot = store->free_head;
		if (ins->slot >= store->nslots)
			imgs_store_corrupted(index, "a free list that names unused slot", ins->slot);
	}
	else
	{
		imgs_store_check_room(index, store);
		ins->slot = store->nslots;
		if (ins->slot == store->ngroups * imgs_group_slots(store))
			insert_new_group(ins);
	}
	ins->slot_blkno = group_start(index, store, ins->slot / imgs_group_slots(store));
	write_vector(index, store, ins->slot_blkno, ins->slot, x);
}

GenericXLogState *
imgs_store_insert_commit(ImgsStoreInsert *ins)
{
	Page		page;

	Assert(ins->state == NULL);
	ins->slotbuf = ReadBuffer(ins->index, ins->slot_blkno);
	LockBuffer(ins->slotbuf, BUFFER_LOCK_EXCLUSIVE);
	ins->state = GenericXLogStart(ins->index);
	/* the metapage first (test/t/011_faissflat_crash.pl looks for it) */
	ins->metapage = GenericXLogRegisterBuffer(ins->state, ins->metabuf, 0);
	page = GenericXLogRegisterBuffer(ins->state, ins->slotbuf, 0);
	imgs_page_check(ins->index, page, ins->slot_blkno, IMGS_PAGE_SLOTS);
	ins->header = (ImgsSlotHeader *) ImgsPageGetData(page) + ins->slot % imgs_group_slots(&ins->meta.store);
	if (ins->reuse ? ins->header->state != IMGS_SLOT_FREE : ins->header->state == IMGS_SLOT_LIVE)
		imgs_store_corrupted(ins->index, ins->reuse ? "a used slot on its free list: slot" :
				  "a live slot past its slot count: slot", ins->slot);
	return ins->state;
}

void
imgs_store_insert_finish(ImgsStoreInsert *ins)
{
	ImgsStoreMeta *store = &ins->meta.store;

	Assert(ins->state != NULL);
	if (ins->reuse)
	{
		store->free_head = ins->header->u.next_free;
		store->nfree--;
	}
	else
		store->nslots++;
	*ImgsMetaGetHeader(ins->metapage) = ins->meta;
	ins->header->tid = ins->tid;
	ins->header->state = IMGS_SLOT_LIVE;
	ins->header->u.norm_sq = ins->norm_sq;
	GenericXLogFinish(ins->state);
	ins->state = NULL;
	ins->metapage = NULL;
	ins->header = NULL;

	UnlockReleaseBuffer(ins->slotbuf);
	UnlockReleaseBuffer(ins->metabuf);
}

uint32
imgs_store_insert(Relation index, const ImgsIndexAm *am, ItemPointer tid, const float *x, int dim)
{
	ImgsStoreInsert ins;

	imgs_store_insert_begin(&ins, index, am, tid, x, dim);
	imgs_store_insert_commit(&ins);
	imgs_store_insert_finish(&ins);
	return ins.slot;
}
