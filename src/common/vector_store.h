/*
 * vector_store.h — heap TIDs and their vectors, in index pages, for the
 * imgsearch index methods.
 *
 * Every vector lives in a numbered slot. Slots come in groups of
 * IMGS_GROUP_SLOTS (680): a group is one page of 12-byte slot headers (heap
 * TID, state, squared norm) followed by the group's vectors packed back to
 * back over as many pages as they need, so a vector may span pages (a 4096-d
 * vector is 16 kB) and the kernels see long runs of contiguous vectors. The
 * layout is pure arithmetic: slot s has its header in block first_block +
 * (s / 680) * group_pages and its vector at byte (s % 680) * dim * 4 of the
 * group's vector pages. Overhead over the raw vectors is about one page in
 * dim / 3 (1.2% at 512-d, 0.5% at 4096-d).
 *
 * Crash safety and concurrency:
 *  - A slot becomes visible only when its header says IMGS_SLOT_LIVE, and that
 *    header is written last, in one Generic WAL record with the metapage
 *    (slot count or free list). A vector spanning more pages than one record
 *    may hold is written first, by earlier records; if the server crashes
 *    between them, the slot is still unused (or free) and the partial vector
 *    is ignored and later overwritten.
 *  - Inserts and vacuum lock the metapage exclusively first, so they are
 *    serialised; then data pages in ascending block order. Readers hold one
 *    page at a time. So no deadlock.
 *  - Vacuum frees slots (IMGS_SLOT_FREE, pushed on a free list that inserts
 *    pop); vectors never move. A reader may see a slot change while it reads
 *    it only if the slot was freed and reused under it: both tuples involved
 *    are then invisible to the reader's MVCC snapshot (vacuum cannot remove a
 *    tuple the snapshot sees), so whatever distance it computes is never
 *    returned to the user.
 */
#ifndef IMGS_VECTOR_STORE_H
#define IMGS_VECTOR_STORE_H

#include "access/genam.h"
#include "storage/itemptr.h"

#include "common/distance_core.h"
#include "common/index_pages.h"

/* Where the store stands; lives in the owning index method's metapage. */
typedef struct ImgsStoreMeta
{
	uint32		dim;			/* vector dimension; 0 until the first vector */
	uint32		group_pages;	/* pages per group: 1 slot page + vector pages */
	BlockNumber first_block;	/* slot page of group 0 */
	uint32		nslots;			/* slots ever used (live or free) */
	uint32		free_head;		/* first free slot, or IMGS_NO_SLOT */
	uint32		nfree;			/* number of free slots */
} ImgsStoreMeta;

typedef struct ImgsSlotHeader
{
	ItemPointerData tid;		/* heap tuple of a live slot */
	uint16		state;			/* IMGS_SLOT_*; 0 = never written */
	union
	{
		float4		norm_sq;	/* live: imgs_norm_squared_to_store(|vector|^2) */
		uint32		next_free;	/* free: next slot of the free list */
	}			u;
} ImgsSlotHeader;

#define IMGS_SLOT_LIVE		1
#define IMGS_SLOT_FREE		2
#define IMGS_NO_SLOT		PG_UINT32_MAX

#define IMGS_GROUP_SLOTS	((uint32) (IMGS_PAGE_CAPACITY / sizeof(ImgsSlotHeader)))

extern void imgs_store_meta_init(ImgsStoreMeta *meta, BlockNumber first_block, int dim);

/*
 * Bulk load for ambuild: appends slots to fresh pages without WAL; the caller
 * then stores meta in its metapage and WAL-logs the whole relation. Pages are
 * filled in local memory and written out when done, so no buffer lock is held
 * between calls (a lock would hold off interrupts for the whole build).
 */
typedef struct ImgsStoreBuilder
{
	Relation	index;
	ImgsStoreMeta meta;
	BlockNumber slots_blkno;	/* slot page of the open group, or InvalidBlockNumber */
	BlockNumber vectors_blkno;	/* vector page being filled, or InvalidBlockNumber */
	PGAlignedBlock slots;
	PGAlignedBlock vectors;
} ImgsStoreBuilder;

extern void imgs_store_build_begin(ImgsStoreBuilder *builder, Relation index,
								   BlockNumber first_block, int dim);
extern void imgs_store_build_add(ImgsStoreBuilder *builder, ItemPointer tid,
								 const float *x, int dim);
extern void imgs_store_build_end(ImgsStoreBuilder *builder);

/* Stores one vector in a free slot or a new one, with Generic WAL (see above). */
extern void imgs_store_insert(Relation index, Size meta_offset, ItemPointer tid,
							  const float *x, int dim);

/*
 * Reads group `group` of a store whose state is meta: copies the headers of
 * its first n slots to headers[] and, unless query is NULL, sets out[j] to
 * the key of slot j's vector (imgs_keys_many). scratch holds meta->dim floats (vectors
 * that span pages are gathered there). Holds one page lock at a time and
 * checks for interrupts between pages.
 */
extern void imgs_store_read_group(Relation index, const ImgsStoreMeta *meta,
								  uint32 group, uint32 n, ImgsSlotHeader *headers,
								  const ImgsKeyQuery *query, double *out, float *scratch);

/*
 * ambulkdelete: frees every live slot of the store whose state was meta (the
 * caller reads it from the metapage at meta_offset first: slots added after
 * that are newer than every TID vacuum may remove) whose TID callback reports
 * dead (callback NULL frees none), and counts the live slots left into stats.
 */
extern void imgs_store_bulkdelete(Relation index, Size meta_offset, const ImgsStoreMeta *meta,
								  IndexBulkDeleteCallback callback, void *callback_state,
								  IndexBulkDeleteResult *stats, BufferAccessStrategy strategy);

/*
 * Verification (common/index_check.c). imgs_store_check reads the store for a
 * check: under a share lock on the metapage (inserts and vacuum wait, so the
 * free list is seen whole), it copies the store state at meta_offset to *meta
 * and the headers of its nslots slots to a palloc'd array (*headers); then,
 * with one page locked at a time, it verifies the layout. It errors with
 * XX002 (index_corrupted) at the first violation of:
 *  - the state: the store starts at first_block, group_pages follows from
 *    dim, nslots and the free list fit, and the relation holds every page
 *    the nslots slots need;
 *  - the pages: each page of the store is an imgsearch page of the kind its
 *    position says (slot page or vector page), with no hole (index_pages.h);
 *    pages past the store (inserts that crashed before their last record)
 *    are new or store pages; no slot past nslots is in use;
 *  - the slots: each is live or free; the free list holds every free slot
 *    exactly once and nothing else, and its length is nfree.
 * Live slots' TIDs and vectors are the caller's to check against the table.
 */
extern void imgs_store_check(Relation index, Size meta_offset, BlockNumber first_block,
							 ImgsStoreMeta *meta, ImgsSlotHeader **headers);

/*
 * Copies slot's header as it is now to *header, then its vector (meta->dim
 * floats) to x, holding one page lock at a time. A re-rank reads vectors so.
 */
extern void imgs_store_read_slot(Relation index, const ImgsStoreMeta *meta, uint32 slot,
								 ImgsSlotHeader *header, float *x);

static inline uint32
imgs_store_ngroups(const ImgsStoreMeta *meta)
{
	return (meta->nslots + IMGS_GROUP_SLOTS - 1) / IMGS_GROUP_SLOTS;
}

#endif							/* IMGS_VECTOR_STORE_H */
