/*
 * store_layout.h — the vector store's on-disk layout: its state in the
 * metapage (ImgsStoreMeta) with its directory, and its slot headers. A leaf:
 * index_meta.h (the metapage holds the store's state) and vector_store.h
 * (the store's API) both include it.
 *
 * Layout. Every vector lives in a numbered slot. Slots come in groups of
 * imgs_group_slots (680, fewer for vectors over 771 dimensions): a group is group_pages consecutive blocks, one page
 * of 12-byte slot headers (heap TID, state, squared norm) followed by the
 * group's vectors packed back to back over as many pages as they need, so a
 * vector may span pages (a 4096-d vector is 16 kB) and the kernels see long
 * runs of contiguous vectors. Slot s has its header in the first block of
 * group s / G and its vector at byte (s % G) * dim * 4 of the pages after
 * it (G the group's slots). Groups are allocated one at a time from the index's block allocator
 * (index_meta.h), so a method's own pages may lie between them; the start
 * block of each group is in the store's directory: in the metapage for the
 * first 512 groups, then in directory pages that the metapage lists. Overhead
 * over the raw vectors is about one page in dim / 3 (1.2% at 512-d, 0.5% at
 * 4096-d), plus one directory page per 2040 groups after the first 512.
 */
#ifndef IMGS_STORE_LAYOUT_H
#define IMGS_STORE_LAYOUT_H

#include "storage/block.h"
#include "storage/itemptr.h"

#include "index/index_pages.h"

/*
 * The vector store's directory: the start block of every group. The first
 * IMGS_STORE_INLINE_GROUPS live in the metapage (348k vectors); then come
 * directory pages of IMGS_DIR_PAGE_ENTRIES each, whose blocks the metapage
 * lists (up to IMGS_STORE_DIR_PAGES of them: 355M vectors in all).
 */
#define IMGS_STORE_INLINE_GROUPS	512
#define IMGS_STORE_DIR_PAGES		256
#define IMGS_DIR_PAGE_ENTRIES		((uint32) (IMGS_PAGE_CAPACITY / sizeof(BlockNumber)))
#define IMGS_STORE_MAX_GROUPS \
	((uint32) IMGS_STORE_INLINE_GROUPS + (uint32) IMGS_STORE_DIR_PAGES * IMGS_DIR_PAGE_ENTRIES)

/*
 * Where the vector store stands (vector_store.h).
 *
 * dim and group_slots share the 32 bits that were dim alone before
 * group_slots came: in the order that reads an older index's uint32 dim
 * (below 65536) as the same dim and group_slots 0, which means
 * IMGS_MAX_GROUP_SLOTS (imgs_group_slots). So older indexes need no REINDEX.
 */
typedef struct ImgsStoreMeta
{
#ifdef WORDS_BIGENDIAN
	uint16		group_slots;	/* slots per group; 0: IMGS_MAX_GROUP_SLOTS */
	uint16		dim;			/* vector dimension; 0 until the first vector */
#else
	uint16		dim;			/* vector dimension; 0 until the first vector */
	uint16		group_slots;	/* slots per group; 0: IMGS_MAX_GROUP_SLOTS */
#endif
	uint32		group_pages;	/* pages per group: 1 slot page + vector pages */
	uint32		ngroups;		/* groups allocated */
	uint32		nslots;			/* slots ever used (live or free) */
	uint32		free_head;		/* first free slot, or IMGS_NO_SLOT */
	uint32		nfree;			/* number of free slots */
	uint32		ndirpages;		/* directory pages allocated */
	BlockNumber dir_pages[IMGS_STORE_DIR_PAGES];	/* their blocks */
	BlockNumber groups[IMGS_STORE_INLINE_GROUPS];	/* start blocks of the first groups */
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

/* The slots a slot page holds (680): the most a group may have. */
#define IMGS_MAX_GROUP_SLOTS	((uint32) (IMGS_PAGE_CAPACITY / sizeof(ImgsSlotHeader)))

/*
 * The vector bytes a new group holds at most, unless one vector is larger:
 * wide vectors get fewer slots per group (a 16000-d vector is 64 kB: 32 to
 * a group, not 680), so that a small table of them gets a small index. Up to
 * 771 dimensions a group has all 680 slots.
 */
#define IMGS_GROUP_VECTOR_BYTES	((uint64) 2 * 1024 * 1024)

/* An empty store; dim 0: fixed by the first vector. */
extern void imgs_store_meta_init(ImgsStoreMeta *meta, int dim);

/* Slots per group of this store. */
static inline uint32
imgs_group_slots(const ImgsStoreMeta *meta)
{
	return meta->group_slots ? meta->group_slots : IMGS_MAX_GROUP_SLOTS;
}

static inline uint32
imgs_store_ngroups(const ImgsStoreMeta *meta)
{
	return (meta->nslots + imgs_group_slots(meta) - 1) / imgs_group_slots(meta);
}

#endif							/* IMGS_STORE_LAYOUT_H */
