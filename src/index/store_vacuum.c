/*
 * store_vacuum.c — ambulkdelete on the vector store: frees the slots of dead
 * heap tuples, after the method's forget callback (imgs_store_bulkdelete;
 * vector_store.h "Vacuum" and the slot reuse rule).
 */
#include "postgres.h"

#include "access/generic_xlog.h"
#include "commands/vacuum.h"
#include "miscadmin.h"
#include "utils/memutils.h"

#include "index/store_internal.h"

/* Dead slots waiting for the forget callback, then for the free list. */
typedef struct DeadSlots
{
	uint32	   *slots;			/* ascending */
	ItemPointerData *tids;
	int			n;
	int			capacity;
} DeadSlots;

/*
 * Frees dead->slots (all live, ascending), one record per slot page:
 * metapage first, as inserts do. Only vacuum frees slots, so they are still
 * live; a slot that no longer holds its TID is left alone.
 */
static void
free_slots(Relation index, const ImgsIndexAm *am, ImgsStoreReader *reader, const DeadSlots *dead,
		   IndexBulkDeleteResult *stats, BufferAccessStrategy strategy)
{
	int			i = 0;

	while (i < dead->n)
	{
		uint32		group_slots = imgs_group_slots(&reader->meta);
		uint32		group = dead->slots[i] / group_slots;
		BlockNumber blkno = imgs_store_reader_group(reader, group);
		Buffer		metabuf = imgs_meta_lock(index, am, BUFFER_LOCK_EXCLUSIVE);
		Buffer		buf = ReadBufferExtended(index, MAIN_FORKNUM, blkno, RBM_NORMAL, strategy);
		GenericXLogState *state;
		ImgsStoreMeta *store;
		Page		page;
		ImgsSlotHeader *headers;

		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		state = GenericXLogStart(index);
		store = &ImgsMetaGetHeader(GenericXLogRegisterBuffer(state, metabuf, 0))->store;
		page = GenericXLogRegisterBuffer(state, buf, 0);
		imgs_page_check(index, page, blkno, IMGS_PAGE_SLOTS);
		headers = (ImgsSlotHeader *) ImgsPageGetData(page);
		for (; i < dead->n && dead->slots[i] / group_slots == group; i++)
		{
			uint32		slot = dead->slots[i];
			ImgsSlotHeader *header = &headers[slot % group_slots];

			if (header->state != IMGS_SLOT_LIVE || !ItemPointerEquals(&header->tid, &dead->tids[i]))
				continue;
			header->state = IMGS_SLOT_FREE;
			ItemPointerSetInvalid(&header->tid);
			header->u.next_free = store->free_head;
			store->free_head = slot;
			store->nfree++;
			stats->tuples_removed++;
		}
		GenericXLogFinish(state);
		UnlockReleaseBuffer(buf);
		UnlockReleaseBuffer(metabuf);
	}
}

static void
flush_dead(Relation index, const ImgsIndexAm *am, ImgsStoreReader *reader, DeadSlots *dead,
		   ImgsStoreForgetCallback forget, void *forget_arg,
		   IndexBulkDeleteResult *stats, BufferAccessStrategy strategy)
{
	if (dead->n == 0)
		return;
	/* rule 1: the method lets go of them before they can be reused */
	if (forget != NULL)
		forget(index, dead->slots, dead->tids, dead->n, forget_arg);
	free_slots(index, am, reader, dead, stats, strategy);
	dead->n = 0;
}

void
imgs_store_bulkdelete(Relation index, const ImgsIndexAm *am, const ImgsIndexMeta *meta,
					  IndexBulkDeleteCallback callback, void *callback_state,
					  ImgsStoreForgetCallback forget, void *forget_arg,
					  IndexBulkDeleteResult *stats, BufferAccessStrategy strategy)
{
	uint32		ngroups = imgs_store_ngroups(&meta->store);
	ImgsStoreReader reader;
	DeadSlots	dead;

	imgs_store_open(&reader, index, am, meta);
	/* without a callback, each slot page's dead slots are freed at once; else in big batches */
	dead.capacity = IMGS_MAX_GROUP_SLOTS;
	if (forget != NULL)
	{
		/* bounded by maintenance_work_mem, by what one palloc may take, by the slots there are */
		uint64		cap = (uint64) maintenance_work_mem * 1024 / (sizeof(uint32) + sizeof(ItemPointerData));

		cap = Min(cap, MaxAllocSize / sizeof(ItemPointerData));
		cap = Min(cap, (uint64) meta->store.nslots);
		dead.capacity = (int) Max(cap, IMGS_MAX_GROUP_SLOTS);
	}
	dead.slots = palloc(sizeof(uint32) * dead.capacity);
	dead.tids = palloc(sizeof(ItemPointerData) * dead.capacity);
	dead.n = 0;

	for (uint32 group = 0; group < ngroups; group++)
	{
		BlockNumber blkno = reader.groups[group];
		uint32		n = Min(imgs_group_slots(&meta->store), meta->store.nslots - group * imgs_group_slots(&meta->store));
		Buffer		buf;
		ImgsSlotHeader *headers;

		vacuum_delay_point();
		if (dead.n + (int) n > dead.capacity)
			flush_dead(index, am, &reader, &dead, forget, forget_arg, stats, strategy);
		buf = ReadBufferExtended(index, MAIN_FORKNUM, blkno, RBM_NORMAL, strategy);
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		imgs_page_check(index, BufferGetPage(buf), blkno, IMGS_PAGE_SLOTS);
		headers = (ImgsSlotHeader *) ImgsPageGetData(BufferGetPage(buf));
		for (uint32 j = 0; j < n; j++)
		{
			if (headers[j].state != IMGS_SLOT_LIVE)
				continue;
			if (callback != NULL && callback(&headers[j].tid, callback_state))
			{
				dead.slots[dead.n] = group * imgs_group_slots(&meta->store) + j;
				dead.tids[dead.n] = headers[j].tid;
				dead.n++;
			}
			else
				stats->num_index_tuples++;
		}
		UnlockReleaseBuffer(buf);
		if (forget == NULL)
			flush_dead(index, am, &reader, &dead, NULL, NULL, stats, strategy);
	}
	flush_dead(index, am, &reader, &dead, forget, forget_arg, stats, strategy);
	pfree(dead.slots);
	pfree(dead.tids);
	imgs_store_close(&reader);
	stats->num_pages = RelationGetNumberOfBlocks(index);
}
