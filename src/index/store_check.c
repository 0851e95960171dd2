/*
 * store_check.c — verification of the vector store for imgsearch_index_check
 * (imgs_store_check, imgs_store_read_slot; vector_store.h "Verification").
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/memutils.h"

#include "index/store_internal.h"

/* A page written by imgsearch has no hole (index_pages.h) and the standard special space. */
static void
check_page_layout(Relation index, Page page, BlockNumber blkno)
{
	PageHeader	header = (PageHeader) page;

	if (header->pd_lower != header->pd_upper ||
		header->pd_upper < MAXALIGN(SizeOfPageHeaderData) ||
		header->pd_special != BLCKSZ - MAXALIGN(sizeof(ImgsPageOpaqueData)) ||
		PageGetPageLayoutVersion(page) != PG_PAGE_LAYOUT_VERSION)
		imgs_index_corrupted(index, "has a malformed page header at block %u "
							 "(lower %u, upper %u, special %u)",
							 blkno, header->pd_lower, header->pd_upper, header->pd_special);
}

/* Directory pages a store of ngroups groups has. */
static uint32
dir_pages_needed(uint32 ngroups)
{
	if (ngroups <= IMGS_STORE_INLINE_GROUPS)
		return 0;
	return (ngroups - IMGS_STORE_INLINE_GROUPS + IMGS_DIR_PAGE_ENTRIES - 1) / IMGS_DIR_PAGE_ENTRIES;
}

/* Vector pages that hold data of group g's slots below nslots. */
static uint32
group_data_pages(const ImgsStoreMeta *meta, uint32 g)
{
	uint64		first = (uint64) g * imgs_group_slots(meta);
	uint64		n;

	if (meta->nslots <= first)
		return 0;
	n = Min((uint64) imgs_group_slots(meta), meta->nslots - first);
	return (uint32) ((n * VECTOR_BYTES(meta) + IMGS_PAGE_CAPACITY - 1) / IMGS_PAGE_CAPACITY);
}

/*
 * The store state's own consistency (the header's fields, beyond what
 * imgs_meta_check checked), before any block it names is read.
 */
static void
check_store_meta(Relation index, const ImgsIndexMeta *header, BlockNumber nblocks)
{
	const ImgsStoreMeta *meta = &header->store;
	uint32		needed;

	if (meta->dim == 0)
	{
		if (meta->group_pages != 0 || meta->nslots != 0 || meta->nfree != 0 ||
			meta->free_head != IMGS_NO_SLOT || meta->ngroups != 0)
			imgs_index_corrupted(index, "has slots (%u, %u free) or groups (%u) but no dimension",
								 meta->nslots, meta->nfree, meta->ngroups);
	}
	else
	{
		ImgsStoreMeta expected;

		imgs_store_set_dim(&expected, meta->dim);
		if (meta->group_pages != expected.group_pages)
			imgs_index_corrupted(index, "has %u pages per slot group, not %u as %u dimensions need",
								 meta->group_pages, expected.group_pages, meta->dim);
	}
	if (meta->nslots >= IMGS_NO_SLOT - 1)
		imgs_index_corrupted(index, "has an impossible slot count %u", meta->nslots);
	if (meta->nfree > meta->nslots)
		imgs_index_corrupted(index, "has %u free slots out of %u", meta->nfree, meta->nslots);
	if ((meta->free_head == IMGS_NO_SLOT) != (meta->nfree == 0))
		imgs_index_corrupted(index, "has %u free slots but its free list %s",
							 meta->nfree, meta->free_head == IMGS_NO_SLOT ? "is empty" : "is not");
	if (meta->free_head != IMGS_NO_SLOT && meta->free_head >= meta->nslots)
		imgs_index_corrupted(index, "has its free list start at slot %u, past its %u slots",
							 meta->free_head, meta->nslots);

	/*
	 * Groups: those the slots need, and at most one more, allocated by an
	 * insert that did not commit (its group has a record of its own), which
	 * only happens when the slots fill every group before it.
	 */
	needed = imgs_store_ngroups(meta);
	if (meta->ngroups < needed ||
		(meta->ngroups > needed &&
		 (meta->ngroups > needed + 1 || meta->nslots != needed * imgs_group_slots(meta))))
		imgs_index_corrupted(index, "has %u slot groups for %u slots", meta->ngroups, meta->nslots);
	if (meta->ndirpages != dir_pages_needed(meta->ngroups))
		imgs_index_corrupted(index, "has %u directory pages for %u groups, not %u",
							 meta->ndirpages, meta->ngroups, dir_pages_needed(meta->ngroups));
	/* unused directory entries stay zero (the metapage started zeroed) */
	for (uint32 g = meta->ngroups; g < IMGS_STORE_INLINE_GROUPS; g++)
		if (meta->groups[g] != 0)
			imgs_index_corrupted(index, "has a start block %u for group %u of its %u groups",
								 meta->groups[g], g, meta->ngroups);
	for (uint32 d = meta->ndirpages; d < IMGS_STORE_DIR_PAGES; d++)
		if (meta->dir_pages[d] != 0)
			imgs_index_corrupted(index, "has block %u as directory page %u of its %u",
								 meta->dir_pages[d], d, meta->ndirpages);

	/* the allocator: every block the store names is below next_block */
	if (header->next_block >= MaxBlockNumber)
		imgs_index_corrupted(index, "has its block allocator at an impossible block %u",
							 header->next_block);
	for (uint32 d = 0; d < meta->ndirpages; d++)
	{
		BlockNumber blkno = meta->dir_pages[d];

		if (blkno <= IMGS_METAPAGE_BLKNO || blkno >= header->next_block)
			imgs_index_corrupted(index, "has directory page %u at block %u, outside its allocated blocks 1..%u",
								 d, blkno, header->next_block - 1);
		if (blkno >= nblocks)
			imgs_index_corrupted(index, "has directory page %u at block %u, past its %u pages",
								 d, blkno, nblocks);
	}
}

/* Owned blocks: [start, start + n) belongs to group `group`, or to a directory page (group = -1 - d). */
typedef struct StoreExtent
{
	BlockNumber start;
	uint32		n;
	int64		owner;
} StoreExtent;

static int
extent_cmp(const void *a, const void *b)
{
	BlockNumber x = ((const StoreExtent *) a)->start;
	BlockNumber y = ((const StoreExtent *) b)->start;

	return x < y ? -1 : x > y ? 1 : 0;
}

static void
describe_owner(StringInfo buf, int64 owner)
{
	if (owner >= 0)
		appendStringInfo(buf, "group %u", (uint32) owner);
	else
		appendStringInfo(buf, "directory page %u", (uint32) (-1 - owner));
}

/*
 * The directory: every group's blocks allocated (below next_block), groups in
 * allocation order, and no block owned twice (group with group, or with a
 * directory page). Returns the extents sorted by start block (*nextents).
 */
static StoreExtent *
check_directory(Relation index, const ImgsIndexMeta *header, const BlockNumber *groups,
				BlockNumber nblocks, uint32 *nextents)
{
	const ImgsStoreMeta *meta = &header->store;
	uint32		n = meta->ngroups + meta->ndirpages;
	StoreExtent *extents = MemoryContextAllocHuge(CurrentMemoryContext,
												  sizeof(StoreExtent) * Max(n, 1));
	uint32		i = 0;

	for (uint32 g = 0; g < meta->ngroups; g++)
	{
		if (groups[g] <= IMGS_METAPAGE_BLKNO ||
			(uint64) groups[g] + meta->group_pages > header->next_block)
			imgs_index_corrupted(index, "has group %u at blocks %u..%u, outside its allocated blocks 1..%u",
								 g, groups[g], groups[g] + meta->group_pages - 1, header->next_block - 1);
		/* the slot page is written by the record that allocates the group */
		if (groups[g] >= nblocks)
			imgs_index_corrupted(index, "has group %u at block %u, past its %u pages",
								 g, groups[g], nblocks);
		if (g > 0 && groups[g] <= groups[g - 1])
			imgs_index_corrupted(index, "has group %u at block %u, not after group %u at block %u",
								 g, groups[g], g - 1, groups[g - 1]);
		extents[i].start = groups[g];
		extents[i].n = meta->group_pages;
		extents[i].owner = g;
		i++;
	}
	for (uint32 d = 0; d < meta->ndirpages; d++)
	{
		extents[i].start = meta->dir_pages[d];
		extents[i].n = 1;
		extents[i].owner = -1 - (int64) d;
		i++;
	}
	qsort(extents, n, sizeof(StoreExtent), extent_cmp);
	for (i = 1; i < n; i++)
		if ((uint64) extents[i - 1].start + extents[i - 1].n > extents[i].start)
		{
			StringInfoData a,
						b;

			initStringInfo(&a);
			initStringInfo(&b);
			describe_owner(&a, extents[i - 1].owner);
			describe_owner(&b, extents[i].owner);
			imgs_index_corrupted(index, "has %s (blocks %u..%u) and %s (from block %u) overlapping",
								 a.data, extents[i - 1].start,
								 extents[i - 1].start + extents[i - 1].n - 1,
								 b.data, extents[i].start);
		}
	*nextents = n;
	return extents;
}

/*
 * Every page after the metapage, one lock at a time: a group's slot page,
 * the vector pages holding data of its slots and directory pages are of
 * their kind; a group's other vector pages are new or vector pages; a block
 * the store does not own is new or a method's page (kind from
 * IMGS_PAGE_METHOD_FIRST), never a store page. Blocks at or past
 * next_block were checked under the metapage lock. A page's kind never
 * changes once written, and blocks the store did not own at the snapshot
 * below next_block never become store pages: no metapage lock is needed.
 */
static void
check_store_pages(Relation index, const ImgsIndexMeta *header, const StoreExtent *extents,
				  uint32 nextents, BlockNumber nblocks)
{
	const ImgsStoreMeta *meta = &header->store;
	BlockNumber end = Min(nblocks, header->next_block);
	BufferAccessStrategy strategy = GetAccessStrategy(BAS_BULKREAD);
	uint32		e = 0;			/* first extent that does not end at or before blkno */

	for (BlockNumber blkno = IMGS_METAPAGE_BLKNO + 1; blkno < end; blkno++)
	{
		Buffer		buf;
		Page		page;
		int			want;		/* the kind, or 0: new or vectors; -1: new or method's */

		while (e < nextents && (uint64) extents[e].start + extents[e].n <= blkno)
			e++;
		if (e < nextents && extents[e].start <= blkno)
		{
			if (extents[e].owner < 0)
				want = IMGS_PAGE_DIRECTORY;
			else if (blkno == extents[e].start)
				want = IMGS_PAGE_SLOTS;
			else if (blkno - extents[e].start <= group_data_pages(meta, (uint32) extents[e].owner))
				want = IMGS_PAGE_VECTORS;
			else
				want = 0;
		}
		else
			want = -1;

		CHECK_FOR_INTERRUPTS();
		buf = ReadBufferExtended(index, MAIN_FORKNUM, blkno, RBM_NORMAL, strategy);
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		if (want > 0)
			imgs_page_check(index, page, blkno, (uint16) want);
		else if (want == 0 && !PageIsNew(page))
			imgs_page_check(index, page, blkno, IMGS_PAGE_VECTORS);
		else if (want < 0 && !PageIsNew(page))
		{
			ImgsPageOpaque opaque = ImgsPageGetOpaque(page);

			if (PageGetSpecialSize(page) != MAXALIGN(sizeof(ImgsPageOpaqueData)) ||
				opaque->page_id != IMGS_PAGE_ID)
				imgs_index_corrupted(index, "contains an unexpected page at block %u", blkno);
			if (opaque->kind < IMGS_PAGE_METHOD_FIRST)
				imgs_index_corrupted(index, "has a page of vector store kind %u at block %u, "
									 "which no group or directory entry names",
									 opaque->kind, blkno);
		}
		if (!PageIsNew(page))
			check_page_layout(index, page, blkno);
		UnlockReleaseBuffer(buf);
	}
	FreeAccessStrategy(strategy);
}

/* Every slot live or free; the free list is exactly the free slots. */
static void
check_slots(Relation index, const ImgsStoreMeta *meta, const ImgsSlotHeader *headers)
{
	uint32		nfree = 0;
	uint32		listed = 0;
	bool	   *on_list;

	for (uint32 s = 0; s < meta->nslots; s++)
	{
		if (headers[s].state == IMGS_SLOT_FREE)
			nfree++;
		else if (headers[s].state != IMGS_SLOT_LIVE)
			imgs_index_corrupted(index, "has slot %u in unknown state %u (of %u slots)",
								 s, headers[s].state, meta->nslots);
	}
	if (nfree != meta->nfree)
		imgs_index_corrupted(index, "has %u free slots, but its metapage says %u",
							 nfree, meta->nfree);

	on_list = MemoryContextAllocHuge(CurrentMemoryContext, Max(meta->nslots, 1));
	memset(on_list, 0, Max(meta->nslots, 1));
	for (uint32 s = meta->free_head; s != IMGS_NO_SLOT; s = headers[s].u.next_free)
	{
		if (s >= meta->nslots)
			imgs_index_corrupted(index, "has slot %u, past its %u slots, on its free list",
								 s, meta->nslots);
		if (headers[s].state != IMGS_SLOT_FREE)
			imgs_index_corrupted(index, "has live slot %u on its free list", s);
		if (on_list[s])
			imgs_index_corrupted(index, "has a cycle in its free list at slot %u", s);
		on_list[s] = true;
		listed++;
	}
	if (listed != meta->nfree)
		imgs_index_corrupted(index, "has %u slots on its free list, but %u free slots",
							 listed, meta->nfree);
	pfree(on_list);
}

void
imgs_store_check(Relation index, const ImgsIndexAm *am, ImgsIndexMeta *meta_out,
				 BlockNumber **groups_out, ImgsSlotHeader **headers_out)
{
	Buffer		metabuf = ReadBuffer(index, IMGS_METAPAGE_BLKNO);
	const ImgsStoreMeta *meta = &meta_out->store;
	BlockNumber nblocks;
	BlockNumber *groups;
	ImgsSlotHeader *headers;
	StoreExtent *extents;
	uint32		nextents;

	/*
	 * Under the metapage lock no insert or vacuum runs: the header, the
	 * directory, the slot headers and the relation's length are seen at one
	 * moment (writers lock the metapage first, so taking other pages' locks
	 * while holding it cannot deadlock).
	 */
	LockBuffer(metabuf, BUFFER_LOCK_SHARE);
	/* magic, version, metric, counts within bounds: the shared check */
	*meta_out = *imgs_meta_check(index, BufferGetPage(metabuf), am);
	check_page_layout(index, BufferGetPage(metabuf), IMGS_METAPAGE_BLKNO);
	nblocks = RelationGetNumberOfBlocks(index);
	check_store_meta(index, meta_out, nblocks);

	groups = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(BlockNumber) * Max(meta->ngroups, 1));
	imgs_store_read_directory(index, meta, 0, meta->ngroups, groups);
	/* a directory page's entries past the last group stay zero */
	if (meta->ngroups > IMGS_STORE_INLINE_GROUPS)
	{
		uint32		d,
					e;
		Buffer		buf;
		const BlockNumber *entries;

		imgs_store_dir_position(meta->ngroups - 1, &d, &e);
		buf = ReadBuffer(index, meta->dir_pages[d]);
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		entries = (const BlockNumber *) ImgsPageGetData(BufferGetPage(buf));
		for (e++; e < IMGS_DIR_PAGE_ENTRIES; e++)
			if (entries[e] != 0)
			{
				BlockNumber bad = entries[e];

				UnlockReleaseBuffer(buf);
				imgs_index_corrupted(index, "has a start block %u for group %u of its %u groups",
									 bad, IMGS_STORE_INLINE_GROUPS + d * IMGS_DIR_PAGE_ENTRIES + e,
									 meta->ngroups);
			}
		UnlockReleaseBuffer(buf);
	}
	extents = check_directory(index, meta_out, groups, nblocks, &nextents);

	/* blocks at or past the allocator were never written (crashed extensions leave them zeroed) */
	for (BlockNumber blkno = Max(meta_out->next_block, IMGS_METAPAGE_BLKNO + 1); blkno < nblocks; blkno++)
	{
		Buffer		buf = ReadBuffer(index, blkno);
		bool		fresh;

		LockBuffer(buf, BUFFER_LOCK_SHARE);
		fresh = PageIsNew(BufferGetPage(buf));
		UnlockReleaseBuffer(buf);
		if (!fresh)
			imgs_index_corrupted(index, "has a page at block %u, past the %u blocks its allocator handed out",
								 blkno, meta_out->next_block);
	}

	headers = MemoryContextAllocHuge(CurrentMemoryContext,
									 sizeof(ImgsSlotHeader) * Max(meta->nslots, 1));
	for (uint32 group = 0; group < meta->ngroups; group++)
	{
		BlockNumber blkno = groups[group];
		uint32		first = group * imgs_group_slots(meta);
		uint32		n = meta->nslots > first ? Min(imgs_group_slots(meta), meta->nslots - first) : 0;
		uint32		data_end = blkno + group_data_pages(meta, group);
		Buffer		buf;
		const ImgsSlotHeader *page_headers;

		/* the vector pages of its slots were written before they were committed */
		if (data_end >= nblocks)
			imgs_index_corrupted(index, "has %u slots in group %u, whose vectors need block %u, but only %u pages",
								 n, group, data_end, nblocks);
		buf = ReadBuffer(index, blkno);
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		imgs_page_check(index, BufferGetPage(buf), blkno, IMGS_PAGE_SLOTS);
		page_headers = (const ImgsSlotHeader *) ImgsPageGetData(BufferGetPage(buf));
		memcpy(&headers[first], page_headers, n * sizeof(ImgsSlotHeader));
		/* slots past nslots were never committed */
		for (uint32 j = n; j < IMGS_MAX_GROUP_SLOTS; j++)
			if (page_headers[j].state != 0)
			{
				uint16		state = page_headers[j].state;

				UnlockReleaseBuffer(buf);
				imgs_index_corrupted(index, "has slot %u in use (state %u) past its %u slots",
									 first + j, state, meta->nslots);
			}
		UnlockReleaseBuffer(buf);
	}
	UnlockReleaseBuffer(metabuf);

	check_slots(index, meta, headers);
	check_store_pages(index, meta_out, extents, nextents, nblocks);
	pfree(extents);
	*groups_out = groups;
	*headers_out = headers;
}

/* The header of slot, from the slot page of its group (which starts at start). */
static ImgsSlotHeader
read_slot_header(Relation index, const ImgsStoreMeta *meta, BlockNumber start, uint32 slot)
{
	Buffer		buf = ReadBuffer(index, start);
	ImgsSlotHeader header;

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	imgs_page_check(index, BufferGetPage(buf), start, IMGS_PAGE_SLOTS);
	header = ((const ImgsSlotHeader *) ImgsPageGetData(BufferGetPage(buf)))[slot % imgs_group_slots(meta)];
	UnlockReleaseBuffer(buf);
	return header;
}

void
imgs_store_read_slot(Relation index, const ImgsStoreMeta *meta, const BlockNumber *groups,
					 uint32 slot, ImgsSlotHeader *header, float *x)
{
	BlockNumber start = groups[slot / imgs_group_slots(meta)];
	BlockNumber blkno;
	Size		offset;

	Assert(slot < meta->nslots);
	*header = read_slot_header(index, meta, start, slot);
	imgs_store_vector_position(meta, start, slot, &blkno, &offset);
	imgs_store_copy_vector_pages(index, blkno, offset, VECTOR_BYTES(meta), (char *) x);
}
