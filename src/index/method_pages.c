/*
 * method_pages.c — float arrays and entry lists on a method's own pages
 * (method_pages.h).
 */
#include "postgres.h"

#include "commands/vacuum.h"
#include "miscadmin.h"

#include "index/method_pages.h"

void
imgs_build_write_floats(Relation index, BlockNumber blkno, uint16 kind, const float *x, Size count)
{
	PGAlignedBlock buf;

	for (Size done = 0; done < count; done += IMGS_FLOATS_PER_PAGE, blkno++)
	{
		Size		n = Min(count - done, IMGS_FLOATS_PER_PAGE);

		imgs_page_init(buf.data, kind);
		memcpy(ImgsPageGetData(buf.data), x + done, n * sizeof(float));
		imgs_build_write_page(index, blkno, buf.data);
	}
}

void
imgs_read_floats(Relation index, BlockNumber blkno, uint16 kind, float *out, Size count)
{
	for (Size done = 0; done < count; done += IMGS_FLOATS_PER_PAGE, blkno++)
	{
		Size		n = Min(count - done, IMGS_FLOATS_PER_PAGE);
		Buffer		buf;

		CHECK_FOR_INTERRUPTS();
		buf = ReadBuffer(index, blkno);
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		imgs_page_check(index, BufferGetPage(buf), blkno, kind);
		memcpy(out + done, ImgsPageGetData(BufferGetPage(buf)), n * sizeof(float));
		UnlockReleaseBuffer(buf);
	}
}

BlockNumber
imgs_list_build(Relation index, ImgsIndexMeta *header, uint16 kind, uint32 list,
				Size entry_size, uint32 count, ImgsListFill fill, void *arg)
{
	uint32		per_page = imgs_list_per_page(entry_size);
	uint32		pages = imgs_pages_for(count, per_page);
	BlockNumber first_blkno = imgs_alloc_blocks(index, header, pages);
	PGAlignedBlock buf;

	for (uint32 p = 0; p < pages; p++)
	{
		ImgsListPageHeader *ph = ImgsListPageHeaderOf(buf.data);
		uint32		from = p * per_page;
		uint32		n = Min(per_page, count - Min(from, count));

		imgs_page_init(buf.data, kind);
		ph->prev_blkno = p == 0 ? InvalidBlockNumber : first_blkno + p - 1;
		ph->list = list;
		ph->count = n;
		for (uint32 i = 0; i < n; i++)
			fill(from + i, imgs_list_entry(buf.data, entry_size, i), arg);
		imgs_build_write_page(index, first_blkno + p, buf.data);
	}
	return first_blkno + pages - 1;
}

char *
imgs_list_append(ImgsStoreInsert *ins, GenericXLogState *state, uint16 kind, uint32 list,
				 Size entry_size, BlockNumber *last_blkno, Buffer *bufp)
{
	Relation	index = ins->index;
	uint32		per_page = imgs_list_per_page(entry_size);
	Buffer		buf;
	Page		page;
	ImgsListPageHeader *ph;

	if (!BlockNumberIsValid(*last_blkno) || *last_blkno >= ins->meta.next_block)
		imgs_index_corrupted(index, "has list %u whose newest page is block %u", list, *last_blkno);
	buf = ReadBuffer(index, *last_blkno);
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	*bufp = buf;
	imgs_page_check(index, BufferGetPage(buf), *last_blkno, kind);
	ph = ImgsListPageHeaderOf(BufferGetPage(buf));
	if (ph->list != list || ph->count > per_page)
		imgs_index_corrupted(index, "has a malformed page %u in the chain of list %u",
							 *last_blkno, list);
	if (ph->count < per_page)
		page = GenericXLogRegisterBuffer(state, buf, 0);
	else
	{
		/* the newest page is full: a new one, linked to it */
		BlockNumber prev = *last_blkno;
		BlockNumber blkno = imgs_alloc_blocks(index, &ins->meta, 1);

		UnlockReleaseBuffer(buf);
		buf = imgs_write_extending(index, blkno);
		*bufp = buf;
		page = GenericXLogRegisterBuffer(state, buf, GENERIC_XLOG_FULL_IMAGE);
		imgs_page_init(page, kind);
		ph = ImgsListPageHeaderOf(page);
		ph->prev_blkno = prev;
		ph->list = list;
		ph->count = 0;
		*last_blkno = blkno;
	}
	ph = ImgsListPageHeaderOf(page);
	return imgs_list_entry(page, entry_size, ph->count++);
}

Buffer
imgs_list_read_page(Relation index, BlockNumber blkno, uint16 kind, uint32 list,
					Size entry_size, uint32 pages, int mode, BufferAccessStrategy strategy)
{
	Buffer		buf = ReadBufferExtended(index, MAIN_FORKNUM, blkno, RBM_NORMAL, strategy);

	imgs_list_lock_page(index, buf, blkno, kind, list, entry_size, pages, mode);
	return buf;
}

void
imgs_list_lock_page(Relation index, Buffer buf, BlockNumber blkno, uint16 kind, uint32 list,
					Size entry_size, uint32 pages, int mode)
{
	const ImgsListPageHeader *ph;

	/* every 1024th page only: the size is a system call, and a cycle still grows past it */
	if (pages % 1024 == 0 && pages > RelationGetNumberOfBlocks(index))
	{
		ReleaseBuffer(buf);
		imgs_index_corrupted(index, "has a chain of list %u longer than the index", list);
	}
	LockBuffer(buf, mode);
	imgs_page_check(index, BufferGetPage(buf), blkno, kind);
	ph = ImgsListPageHeaderOf(BufferGetPage(buf));
	if (ph->list != list || ph->count > imgs_list_per_page(entry_size))
	{
		UnlockReleaseBuffer(buf);
		imgs_index_corrupted(index, "has a malformed page %u in the chain of list %u", blkno, list);
	}
}

static int
slot_cmp(const void *a, const void *b)
{
	uint32		x = *(const uint32 *) a;
	uint32		y = *(const uint32 *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

void
imgs_list_forget(Relation index, uint16 kind, Size entry_size, uint32 nlists,
				 const BlockNumber *last, const uint32 *slots, int n, BufferAccessStrategy strategy)
{
	static const uint32 dead = IMGS_NO_SLOT;

	for (uint32 list = 0; list < nlists; list++)
	{
		BlockNumber blkno = last[list];
		uint32		pages = 0;

		while (BlockNumberIsValid(blkno))
		{
			Buffer		buf;
			Page		page;
			ImgsListPageHeader *ph;
			BlockNumber prev;
			GenericXLogState *state = NULL;

			vacuum_delay_point();
			buf = imgs_list_read_page(index, blkno, kind, list, entry_size, ++pages,
									  BUFFER_LOCK_EXCLUSIVE, strategy);
			page = BufferGetPage(buf);
			ph = ImgsListPageHeaderOf(page);
			/* read before the record: its page image is freed by GenericXLogFinish */
			prev = ph->prev_blkno;
			for (uint32 i = 0; i < ph->count; i++)
			{
				uint32		slot = imgs_list_entry_slot(imgs_list_entry(page, entry_size, i));

				if (slot == IMGS_NO_SLOT || bsearch(&slot, slots, n, sizeof(uint32), slot_cmp) == NULL)
					continue;
				if (state == NULL)
				{
					state = GenericXLogStart(index);
					page = GenericXLogRegisterBuffer(state, buf, 0);
					ph = ImgsListPageHeaderOf(page);
				}
				memcpy(imgs_list_entry(page, entry_size, i), &dead, sizeof(dead));
			}
			if (state != NULL)
				GenericXLogFinish(state);
			blkno = prev;
			UnlockReleaseBuffer(buf);
		}
	}
}
