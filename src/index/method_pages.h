/*
 * method_pages.h — the pages an index method keeps beside the vector store,
 * in two shapes both kdtree and lsh use:
 *
 *  - Float arrays over consecutive pages (a projection, centroids): written
 *    once by the build, read whole into a backend's cache.
 *  - Entry lists: numbered lists (kdtree's leaves, lsh's buckets) of
 *    fixed-size entries whose first field is a uint32 store slot
 *    (IMGS_NO_SLOT once vacuum forgot it). A list's pages are chained newest
 *    first: each page names the one before it; the method keeps the newest
 *    page's block in a directory of its own. The build writes a list on
 *    consecutive blocks; an insert appends to the newest page, or to a new
 *    page linked to it, in the store's commit record (vector_store.h), so a
 *    slot becomes live with its entry; vacuum's forget callback marks dead
 *    slots' entries in place (slot reuse rule 1). REINDEX reclaims their space.
 */
#ifndef IMGS_METHOD_PAGES_H
#define IMGS_METHOD_PAGES_H

#include "access/generic_xlog.h"

#include "index/index_pages.h"
#include "index/vector_store.h"

#define IMGS_FLOATS_PER_PAGE	((uint32) (IMGS_PAGE_CAPACITY / sizeof(float)))

static inline uint32
imgs_pages_for(Size items, Size per_page)
{
	return (uint32) Max(1, (items + per_page - 1) / per_page);
}

/* Build (no WAL): writes count floats over consecutive fresh pages of kind from blkno. */
extern void imgs_build_write_floats(Relation index, BlockNumber blkno, uint16 kind,
									const float *x, Size count);

/* Reads count floats from the consecutive pages of kind starting at blkno. */
extern void imgs_read_floats(Relation index, BlockNumber blkno, uint16 kind, float *out, Size count);

/* A page of an entry list starts with this, then its entries. */
typedef struct ImgsListPageHeader
{
	BlockNumber prev_blkno;		/* the list's page before this one, or InvalidBlockNumber */
	uint32		list;			/* the list's number */
	uint32		count;			/* entries on this page */
	uint32		unused;
} ImgsListPageHeader;

#define ImgsListPageHeaderOf(page) ((ImgsListPageHeader *) ImgsPageGetData(page))

static inline uint32
imgs_list_per_page(Size entry_size)
{
	return (uint32) ((IMGS_PAGE_CAPACITY - sizeof(ImgsListPageHeader)) / entry_size);
}

static inline char *
imgs_list_entry(Page page, Size entry_size, uint32 i)
{
	return ImgsPageGetData(page) + sizeof(ImgsListPageHeader) + (Size) i * entry_size;
}

static inline uint32
imgs_list_entry_slot(const char *entry)
{
	uint32		slot;

	memcpy(&slot, entry, sizeof(slot));
	return slot;
}

/* Fills entry i (0..count-1) of a list the build writes. */
typedef void (*ImgsListFill) (uint32 i, char *entry, void *arg);

/*
 * Build (no WAL): writes list `list` of count entries on fresh consecutive
 * blocks from the allocator of header; returns its newest block.
 */
extern BlockNumber imgs_list_build(Relation index, ImgsIndexMeta *header, uint16 kind, uint32 list,
								   Size entry_size, uint32 count, ImgsListFill fill, void *arg);

/*
 * Insert, in ins's commit record (state): makes room for one entry at the
 * end of list `list`, whose newest block is *last_blkno, a field of a page
 * the caller registered in state (a new page updates it). Returns the entry
 * to fill; *buf is the page's buffer, locked, to release after
 * imgs_store_insert_finish.
 */
extern char *imgs_list_append(ImgsStoreInsert *ins, GenericXLogState *state, uint16 kind,
							  uint32 list, Size entry_size, BlockNumber *last_blkno, Buffer *buf);

/*
 * Reads page blkno of list `list`, the pages-th (from 1) of its chain, locked
 * in mode; errors (index corrupted) unless it is a page of that list whose
 * count fits and the chain is not longer than the relation. Returns the
 * buffer.
 */
extern Buffer imgs_list_read_page(Relation index, BlockNumber blkno, uint16 kind, uint32 list,
								  Size entry_size, uint32 pages, int mode,
								  BufferAccessStrategy strategy);

/* Asks for a pinned page's memory ahead of reading it (a chain's next page). */
static inline void
imgs_prefetch_page(Page page)
{
	for (Size off = 0; off < BLCKSZ; off += 64)
		__builtin_prefetch((const char *) page + off, 0, 3);
}

/*
 * imgs_list_read_page for a page already pinned (buf, which it keeps
 * pinned): a reader that pins the next page of a chain before it reads the
 * current one, so that the next one's memory can be on its way.
 */
extern void imgs_list_lock_page(Relation index, Buffer buf, BlockNumber blkno, uint16 kind,
								uint32 list, Size entry_size, uint32 pages, int mode);

/*
 * Vacuum's forget callback body: marks dead every entry of lists
 * 0..nlists-1 (newest blocks in last[]) that names one of the n slots
 * (ascending), one Generic WAL record per page that held one.
 */
extern void imgs_list_forget(Relation index, uint16 kind, Size entry_size, uint32 nlists,
							 const BlockNumber *last, const uint32 *slots, int n,
							 BufferAccessStrategy strategy);

#endif							/* IMGS_METHOD_PAGES_H */
