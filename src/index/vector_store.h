/*
 * vector_store.h — heap TIDs and their vectors, in index pages, for the
 * imgsearch index methods.
 *
 * Layout: store_layout.h (slots in groups of imgs_group_slots, each a slot
 * page and the vector pages after it; the directory of the groups).
 *
 * Crash safety and concurrency:
 *  - A slot becomes visible only when its header says IMGS_SLOT_LIVE, and that
 *    header is written last, in one Generic WAL record with the metapage
 *    (slot count or free list): the commit record. A method may register up
 *    to IMGS_COMMIT_METHOD_PAGES pages of its own in the same record (its
 *    entry for the slot: a leaf entry, a hash code), so the slot and the
 *    method's reference to it become durable together. Before it, a new group
 *    is allocated by a record of its own (metapage, an empty slot page, a
 *    directory page) and the vector is written by as many records as its
 *    pages need; if the server crashes between them, the slot is still unused
 *    (or free), the empty group is harmless, and the partial vector is ignored
 *    and later overwritten.
 *  - Every writer locks the metapage exclusively first, so writers are
 *    serialised and may then lock other pages in any order; readers hold one
 *    page at a time. So no deadlock. A method's writers follow the same rule.
 *  - Vectors never move, and groups are never freed.
 *
 * Slot reuse rule (vacuum). Vacuum frees the slots of dead heap tuples
 * (IMGS_SLOT_FREE, pushed on a free list that inserts pop before they
 * append). A structure that names slots must never reach a reused slot's new
 * vector through a stale reference, so:
 *  1. A method that names slots anywhere but in the store passes a forget
 *     callback to imgs_store_bulkdelete: the store calls it with the dead
 *     slots (and their TIDs) BEFORE any of them goes on the free list, and
 *     the callback removes every reference to them (with its own WAL). If
 *     the server crashes between the two, the slots stay live and
 *     unreferenced: harmless (their tuples are dead to every snapshot), and
 *     the next vacuum finds them dead again; so the callback must accept
 *     slots it no longer references.
 *  2. A scan that read a reference before vacuum removed it may follow it
 *     after the slot was reused. The tuple now in the slot was inserted
 *     after the scan's snapshot was taken (its inserter had not committed:
 *     it inserted into the index after vacuum freed the slot, while the scan
 *     ran), and the old one is dead to every snapshot (vacuum removes no
 *     other), so both are invisible to that scan and the row is never
 *     returned to the user, whatever distance it computes, in whatever order.
 *     The same holds for a slot freed and reused while a reader reads its
 *     header and then its vector (imgs_store_read_group, imgs_store_keys).
 *  So rule 1 is all a method must follow. Comparing the heap TID a method
 *  stored with its reference against the slot header's (imgs_store_keys
 *  returns the headers) is no substitute: vacuum recycles heap TIDs too, so a
 *  reused slot may hold a new tuple under the old TID.
 *  A method whose only references are in the store itself (faissflat)
 *  passes no callback.
 */
#ifndef IMGS_VECTOR_STORE_H
#define IMGS_VECTOR_STORE_H

#include "access/genam.h"
#include "access/generic_xlog.h"
#include "storage/itemptr.h"

#include "index/distance_core.h"
#include "index/index_meta.h"
#include "index/index_pages.h"
#include "index/store_layout.h"

/* Pages a method may register in the commit record of an insert. */
#define IMGS_COMMIT_METHOD_PAGES	(MAX_GENERIC_XLOG_PAGES - 2)

/* ---------------------------------------------------------------------------
 * Build
 *
 * Bulk load for ambuild: appends slots to fresh pages without WAL; meta is
 * the caller's header of the index being built (store and allocator), which
 * it writes to its metapage when done, then WAL-logs the whole relation. The
 * method may allocate pages of its own (imgs_alloc_blocks on the same meta)
 * between adds. Pages are filled in local memory and written out when done,
 * so no buffer lock is held between calls (a lock would hold off interrupts
 * for the whole build).
 */
typedef struct ImgsStoreBuilder
{
	Relation	index;
	ImgsIndexMeta *meta;
	BlockNumber slots_blkno;	/* slot page of the open group, or InvalidBlockNumber */
	BlockNumber vectors_blkno;	/* vector page being filled, or InvalidBlockNumber */
	BlockNumber dir_blkno;		/* directory page being filled, or InvalidBlockNumber */
	PGAlignedBlock slots;
	PGAlignedBlock vectors;
	PGAlignedBlock dir;
} ImgsStoreBuilder;

extern void imgs_store_build_begin(ImgsStoreBuilder *builder, Relation index, ImgsIndexMeta *meta);
/* Returns the slot of the vector. */
extern uint32 imgs_store_build_add(ImgsStoreBuilder *builder, ItemPointer tid,
								   const float *x, int dim);
extern void imgs_store_build_end(ImgsStoreBuilder *builder);

/* ---------------------------------------------------------------------------
 * Insert
 *
 *   ImgsStoreInsert ins;
 *   imgs_store_insert_begin(&ins, index, am, tid, x, dim);  -- ins.slot chosen
 *   state = imgs_store_insert_commit(&ins);
 *   ... lock and GenericXLogRegisterBuffer(state, ...) up to
 *       IMGS_COMMIT_METHOD_PAGES pages of the method's own, write its entry
 *       for ins.slot; ImgsMetaGetMethodData(ins.metapage) is the metapage's
 *       method data in this record; pages it needs anew come from
 *       imgs_alloc_blocks(index, &ins.meta, n) ...
 *   imgs_store_insert_finish(&ins);   -- one record: slot live, meta, method pages
 *   ... UnlockReleaseBuffer the method's pages ...
 *
 * begin locks the metapage exclusively (held until finish), checks it,
 * picks a free slot or appends one (allocating a new group with a record of
 * its own) and writes the vector to its pages. An error before finish leaves
 * the index as it was, but for unreferenced vector bytes.
 */
typedef struct ImgsStoreInsert
{
	Relation	index;
	Buffer		metabuf;
	Buffer		slotbuf;
	ImgsIndexMeta meta;			/* as begin read it; written back by finish */
	uint32		slot;			/* the slot the vector goes to */
	BlockNumber slot_blkno;		/* its slot page */
	bool		reuse;			/* a free slot */
	ItemPointerData tid;
	float		norm_sq;
	GenericXLogState *state;	/* the commit record, once started */
	Page		metapage;		/* its image of the metapage */
	ImgsSlotHeader *header;		/* its image of the slot's header */
} ImgsStoreInsert;

extern void imgs_store_insert_begin(ImgsStoreInsert *ins, Relation index, const ImgsIndexAm *am,
									ItemPointer tid, const float *x, int dim);
extern GenericXLogState *imgs_store_insert_commit(ImgsStoreInsert *ins);
extern void imgs_store_insert_finish(ImgsStoreInsert *ins);

/* All three, for a method with nothing of its own to write; returns the slot. */
extern uint32 imgs_store_insert(Relation index, const ImgsIndexAm *am, ItemPointer tid,
								const float *x, int dim);

/* ---------------------------------------------------------------------------
 * Read
 *
 * A reader works on the store as a metapage read showed it (the slots below
 * meta.nslots); it holds one page lock at a time and checks for interrupts
 * between pages.
 */
typedef struct ImgsStoreReader
{
	Relation	index;
	const ImgsIndexAm *am;
	ImgsStoreMeta meta;			/* as read; a lookup past ngroups reads the directory again */
	BlockNumber *groups;		/* start block of each of meta.ngroups groups */
	float	   *scratch;		/* meta.dim floats: vectors that span pages */
} ImgsStoreReader;

/* Opens the store of meta (read from the metapage by the caller), reading its directory. */
extern void imgs_store_open(ImgsStoreReader *reader, Relation index, const ImgsIndexAm *am,
							const ImgsIndexMeta *meta);
extern void imgs_store_close(ImgsStoreReader *reader);

/*
 * Reads group `group`: copies the headers of its first n slots to headers[]
 * and, unless query is NULL, sets out[j] to the key of slot j's vector
 * (imgs_keys_many), whatever the slot's state.
 */
extern void imgs_store_read_group(ImgsStoreReader *reader, uint32 group, uint32 n,
								  ImgsSlotHeader *headers, const ImgsKeyQuery *query,
								  double *out);

/*
 * Reads group `group` like imgs_store_read_group, but copies the vectors of
 * its first n slots to out (n x dim floats), whatever the slots' states.
 */
extern void imgs_store_read_vectors(ImgsStoreReader *reader, uint32 group, uint32 n,
									ImgsSlotHeader *headers, float *out);

/*
 * Re-rank: for each of n slots (any order; slots past the reader's meta,
 * inserted since, are found too), copies its header to headers_out[i] and,
 * for a live slot, sets keys_out[i] to the key of its vector for query;
 * keys_out[i] is NaN for a slot that is not live (check headers_out[i].state;
 * see the slot reuse rule above).
 */
extern void imgs_store_keys(ImgsStoreReader *reader, const uint32 *slots, int n,
							const ImgsKeyQuery *query, double *keys_out,
							ImgsSlotHeader *headers_out);

/* ---------------------------------------------------------------------------
 * Vacuum
 */

/*
 * A method's forget callback (slot reuse rule 1): removes its references to
 * n dead slots, given in ascending order with the TIDs they held.
 */
typedef void (*ImgsStoreForgetCallback) (Relation index, const uint32 *slots,
										 const ItemPointerData *tids, int n, void *arg);

/*
 * ambulkdelete: frees every live slot of the store whose state was meta (the
 * caller reads it from the metapage first: slots added after that are newer
 * than every TID vacuum may remove) whose TID callback reports dead
 * (callback NULL frees none), calling forget (if not NULL) on them first, in
 * batches bounded by maintenance_work_mem; counts the live slots left into
 * stats.
 */
extern void imgs_store_bulkdelete(Relation index, const ImgsIndexAm *am, const ImgsIndexMeta *meta,
								  IndexBulkDeleteCallback callback, void *callback_state,
								  ImgsStoreForgetCallback forget, void *forget_arg,
								  IndexBulkDeleteResult *stats, BufferAccessStrategy strategy);

/* ---------------------------------------------------------------------------
 * Verification (index/index_check.c)
 *
 * imgs_store_check reads the store for a check: under a share lock on the
 * metapage (inserts and vacuum wait, so the free list is seen whole), it
 * checks the metapage header with imgs_meta_check (magic, version, metric,
 * counts within bounds) and copies it to *meta, the start block of each of
 * its groups to a palloc'd array (*groups) and the headers of its nslots
 * slots to another (*headers); then, with one page locked at a time, it
 * verifies the layout. It errors with XX002 (index_corrupted) at the first
 * violation of:
 *  - the store state: group_pages follows from dim; nslots and the free list
 *    fit; ngroups is what nslots needs, or one more only when the slots fill
 *    every group (an insert that allocated a group and did not commit);
 *    ndirpages is what ngroups needs; unused directory entries (inline, in
 *    the last directory page, unused dir_pages) are zero;
 *  - the allocator and the directory: every group's group_pages blocks and
 *    every directory page lie in 1..next_block-1 (allocated), groups in
 *    allocation order (ascending start blocks), no block owned twice (group
 *    with group or with a directory page); each group's slot page and the
 *    vector pages holding data of its slots below nslots, and each directory
 *    page, lie within the relation; every block at or past next_block that
 *    the relation has is a new (zeroed) page;
 *  - the pages: a group's slot page, the vector pages of its slots and the
 *    directory pages are imgsearch pages of their kind; a group's other
 *    vector pages are new or vector pages; a block the store does not own is
 *    new or a method's page (kind from IMGS_PAGE_METHOD_FIRST: the method's
 *    hook checks what it holds), never a store page; every page written has
 *    no hole (index_pages.h); no slot past nslots is in use;
 *  - the slots: each is live or free; the free list holds every free slot
 *    exactly once and nothing else, and its length is nfree.
 * Live slots' TIDs and vectors are the caller's to check against the table.
 */
extern void imgs_store_check(Relation index, const ImgsIndexAm *am, ImgsIndexMeta *meta,
							 BlockNumber **groups, ImgsSlotHeader **headers);

/*
 * Copies slot's header as it is now to *header, then its vector (meta->dim
 * floats) to x, holding one page lock at a time; groups are the start blocks
 * imgs_store_check returned.
 */
extern void imgs_store_read_slot(Relation index, const ImgsStoreMeta *meta, const BlockNumber *groups,
								 uint32 slot, ImgsSlotHeader *header, float *x);

#endif							/* IMGS_VECTOR_STORE_H */
