/*
 * vector_store.c — heap TIDs and their vectors in index pages (see
 * vector_store.h for the layout, the WAL protocol and the locking rules).
 */
#include "postgres.h"

#include "access/generic_xlog.h"
#include "commands/vacuum.h"
#include "miscadmin.h"

#include "common/distance_core.h"
#include "common/vector_store.h"

StaticAssertDecl(sizeof(ImgsSlotHeader) == 12, "slot headers must pack 680 to a page");

#define VECTOR_BYTES(meta)	((Size) (meta)->dim * sizeof(float))

static void
set_dim(ImgsStoreMeta *meta, int dim)
{
	uint64		group_bytes = (uint64) IMGS_GROUP_SLOTS * dim * sizeof(float);

	meta->dim = dim;
	meta->group_pages = 1 + (uint32) ((group_bytes + IMGS_PAGE_CAPACITY - 1) / IMGS_PAGE_CAPACITY);
}

void
imgs_store_meta_init(ImgsStoreMeta *meta, BlockNumber first_block, int dim)
{
	memset(meta, 0, sizeof(*meta));
	meta->first_block = first_block;
	meta->free_head = IMGS_NO_SLOT;
	if (dim > 0)
		set_dim(meta, dim);
}

static BlockNumber
group_block(const ImgsStoreMeta *meta, uint32 group)
{
	return meta->first_block + group * meta->group_pages;
}

/* The block and byte offset where the vector of slot starts. */
static void
vector_position(const ImgsStoreMeta *meta, uint32 slot, BlockNumber *blkno, Size *offset)
{
	uint64		byte = (uint64) (slot % IMGS_GROUP_SLOTS) * VECTOR_BYTES(meta);

	*blkno = group_block(meta, slot / IMGS_GROUP_SLOTS) + 1 + (BlockNumber) (byte / IMGS_PAGE_CAPACITY);
	*offset = byte % IMGS_PAGE_CAPACITY;
}

/* Fixes the dimension with the first vector; errors on a different one. */
static void
check_dim(Relation index, ImgsStoreMeta *meta, int dim)
{
	if (meta->dim == 0)
		set_dim(meta, dim);
	else if (meta->dim != dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("expected %u dimensions, not %d", meta->dim, dim),
				 errdetail("Index \"%s\" holds %u-dimensional vectors.",
						   RelationGetRelationName(index), meta->dim)));
}

/* Errors when appending one more slot would overflow slot or block numbers. */
static void
check_room(Relation index, const ImgsStoreMeta *meta)
{
	uint64		last_block = (uint64) meta->first_block +
		(uint64) (meta->nslots / IMGS_GROUP_SLOTS + 1) * meta->group_pages;

	if (meta->nslots >= IMGS_NO_SLOT - 1 || last_block >= MaxBlockNumber)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("index \"%s\" cannot hold more vectors",
						RelationGetRelationName(index))));
}

static ImgsStoreMeta *
meta_in_page(Page page, Size meta_offset)
{
	return (ImgsStoreMeta *) (ImgsPageGetData(page) + meta_offset);
}

/* ---------------------------------------------------------------------------
 * Bulk load
 * ---------------------------------------------------------------------------
 */

void
imgs_store_build_begin(ImgsStoreBuilder *builder, Relation index,
					   BlockNumber first_block, int dim)
{
	builder->index = index;
	imgs_store_meta_init(&builder->meta, first_block, dim);
	builder->slots_blkno = InvalidBlockNumber;
	builder->vectors_blkno = InvalidBlockNumber;
}

/* Copies a page image to block blkno, the next block or an existing one. */
static void
write_built_page(Relation index, BlockNumber blkno, Page image)
{
	Buffer		buf = imgs_write_extending(index, blkno);

	memcpy(BufferGetPage(buf), image, BLCKSZ);
	MarkBufferDirty(buf);
	UnlockReleaseBuffer(buf);
}

static void
flush_vectors(ImgsStoreBuilder *builder)
{
	if (builder->vectors_blkno != InvalidBlockNumber)
		write_built_page(builder->index, builder->vectors_blkno, builder->vectors.data);
	builder->vectors_blkno = InvalidBlockNumber;
}

static void
flush_group(ImgsStoreBuilder *builder)
{
	flush_vectors(builder);
	if (builder->slots_blkno != InvalidBlockNumber)
		write_built_page(builder->index, builder->slots_blkno, builder->slots.data);
	builder->slots_blkno = InvalidBlockNumber;
}

void
imgs_store_build_add(ImgsStoreBuilder *builder, ItemPointer tid, const float *x, int dim)
{
	ImgsStoreMeta *meta = &builder->meta;
	uint32		slot = meta->nslots;
	ImgsSlotHeader *header;
	const char *src = (const char *) x;
	Size		left;
	BlockNumber blkno;
	Size		offset;

	check_dim(builder->index, meta, dim);
	check_room(builder->index, meta);

	if (slot % IMGS_GROUP_SLOTS == 0)
	{
		/* a new group: its slot page takes the next block, written again when full */
		flush_group(builder);
		builder->slots_blkno = group_block(meta, slot / IMGS_GROUP_SLOTS);
		imgs_page_init(builder->slots.data, IMGS_PAGE_SLOTS);
		write_built_page(builder->index, builder->slots_blkno, builder->slots.data);
	}
	header = (ImgsSlotHeader *) ImgsPageGetData(builder->slots.data) + slot % IMGS_GROUP_SLOTS;
	header->tid = *tid;
	header->state = IMGS_SLOT_LIVE;
	header->u.norm_sq = imgs_norm_squared_to_store(imgs_norm_squared(x, dim));

	vector_position(meta, slot, &blkno, &offset);
	for (left = VECTOR_BYTES(meta); left > 0; blkno++, offset = 0)
	{
		Size		chunk = Min(left, IMGS_PAGE_CAPACITY - offset);

		if (builder->vectors_blkno != blkno)
		{
			flush_vectors(builder);
			builder->vectors_blkno = blkno;
			imgs_page_init(builder->vectors.data, IMGS_PAGE_VECTORS);
		}
		memcpy(ImgsPageGetData(builder->vectors.data) + offset, src, chunk);
		src += chunk;
		left -= chunk;
	}
	meta->nslots++;
}

void
imgs_store_build_end(ImgsStoreBuilder *builder)
{
	flush_group(builder);
}

/* ---------------------------------------------------------------------------
 * Insert
 * ---------------------------------------------------------------------------
 */

/*
 * Writes the vector of slot to its pages, with as many Generic WAL records as
 * it has pages over MAX_GENERIC_XLOG_PAGES. Nothing points at it yet.
 */
static void
write_vector(Relation index, const ImgsStoreMeta *meta, uint32 slot, const float *x)
{
	const char *src = (const char *) x;
	Size		left = VECTOR_BYTES(meta);
	BlockNumber blkno;
	Size		offset;

	vector_position(meta, slot, &blkno, &offset);
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
imgs_store_insert(Relation index, Size meta_offset, ItemPointer tid, const float *x, int dim)
{
	Buffer		metabuf = ReadBuffer(index, IMGS_METAPAGE_BLKNO);
	Buffer		slots_buf;
	ImgsStoreMeta meta;
	uint32		slot;
	bool		reuse;
	float		norm_sq = imgs_norm_squared_to_store(imgs_norm_squared(x, dim));
	GenericXLogState *state;
	Page		page;
	ImgsStoreMeta *new_meta;
	ImgsSlotHeader *header;

	LockBuffer(metabuf, BUFFER_LOCK_EXCLUSIVE);
	imgs_page_check(index, BufferGetPage(metabuf), IMGS_METAPAGE_BLKNO, IMGS_PAGE_META);
	meta = *meta_in_page(BufferGetPage(metabuf), meta_offset);
	check_dim(index, &meta, dim);
	reuse = meta.free_head != IMGS_NO_SLOT;
	if (!reuse)
		check_room(index, &meta);
	slot = reuse ? meta.free_head : meta.nslots;

	write_vector(index, &meta, slot, x);

	/* Commit: the slot header and the metapage, in one record. */
	slots_buf = imgs_write_extending(index, group_block(&meta, slot / IMGS_GROUP_SLOTS));
	state = GenericXLogStart(index);
	new_meta = meta_in_page(GenericXLogRegisterBuffer(state, metabuf, 0), meta_offset);
	if (PageIsNew(BufferGetPage(slots_buf)))
	{
		page = GenericXLogRegisterBuffer(state, slots_buf, GENERIC_XLOG_FULL_IMAGE);
		imgs_page_init(page, IMGS_PAGE_SLOTS);
	}
	else
	{
		page = GenericXLogRegisterBuffer(state, slots_buf, 0);
		imgs_page_check(index, page, BufferGetBlockNumber(slots_buf), IMGS_PAGE_SLOTS);
	}
	header = (ImgsSlotHeader *) ImgsPageGetData(page) + slot % IMGS_GROUP_SLOTS;
	if (reuse)
	{
		if (header->state != IMGS_SLOT_FREE)
			ereport(ERROR,
					(errcode(ERRCODE_INDEX_CORRUPTED),
					 errmsg("index \"%s\" has a used slot %u on its free list",
							RelationGetRelationName(index), slot),
					 errhint("Please REINDEX it.")));
		meta.free_head = header->u.next_free;
		meta.nfree--;
	}
	else
		meta.nslots++;
	*new_meta = meta;
	header->tid = *tid;
	header->state = IMGS_SLOT_LIVE;
	header->u.norm_sq = norm_sq;
	GenericXLogFinish(state);

	UnlockReleaseBuffer(slots_buf);
	UnlockReleaseBuffer(metabuf);
}

/* ---------------------------------------------------------------------------
 * Scan
 * ---------------------------------------------------------------------------
 */

void
imgs_store_read_group(Relation index, const ImgsStoreMeta *meta, uint32 group, uint32 n,
					  ImgsSlotHeader *headers, const ImgsKeyQuery *query,
					  double *out, float *scratch)
{
	BlockNumber blkno = group_block(meta, group);
	Size		vector_bytes = VECTOR_BYTES(meta);
	uint64		end = (uint64) n * vector_bytes;	/* of the group's vector bytes */
	uint64		page_start;
	uint32		j = 0;			/* next slot without a distance */
	float		norms_sq[IMGS_GROUP_SLOTS];	/* of the slots, contiguous for the kernel */
	Size		pending = 0;	/* bytes of slot j's vector gathered in scratch */
	Buffer		buf;

	Assert(n > 0 && n <= IMGS_GROUP_SLOTS);
	CHECK_FOR_INTERRUPTS();
	buf = ReadBuffer(index, blkno);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	imgs_page_check(index, BufferGetPage(buf), blkno, IMGS_PAGE_SLOTS);
	memcpy(headers, ImgsPageGetData(BufferGetPage(buf)), n * sizeof(ImgsSlotHeader));
	UnlockReleaseBuffer(buf);
	if (query == NULL)
		return;
	for (uint32 i = 0; i < n; i++)
		norms_sq[i] = headers[i].u.norm_sq;

	for (page_start = 0; page_start < end; page_start += IMGS_PAGE_CAPACITY)
	{
		Size		page_len = Min(IMGS_PAGE_CAPACITY, end - page_start);
		Size		pos = 0;	/* within this page */
		const char *data;

		CHECK_FOR_INTERRUPTS();
		buf = ReadBuffer(index, ++blkno);
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		imgs_page_check(index, BufferGetPage(buf), blkno, IMGS_PAGE_VECTORS);
		data = ImgsPageGetData(BufferGetPage(buf));

		/* the rest of a vector begun on an earlier page */
		if (pending > 0)
		{
			Size		chunk = Min(vector_bytes - pending, page_len);

			memcpy((char *) scratch + pending, data, chunk);
			pending += chunk;
			pos = chunk;
			if (pending == vector_bytes)
			{
				imgs_keys_many(query, scratch, meta->dim, 1, norms_sq + j, &out[j]);
				j++;
				pending = 0;
			}
		}
		if (pending == 0)
		{
			/* the whole vectors on this page, in one call */
			uint32		whole = (page_len - pos) / vector_bytes;

			if (whole > 0)
			{
				imgs_keys_many(query, (const float *) (data + pos), meta->dim, whole, norms_sq + j, &out[j]);
				j += whole;
				pos += whole * vector_bytes;
			}
			/* the start of a vector that goes on over the next page */
			if (pos < page_len)
			{
				pending = page_len - pos;
				memcpy(scratch, data + pos, pending);
			}
		}
		UnlockReleaseBuffer(buf);
	}
	Assert(j == n && pending == 0);
}

/* ---------------------------------------------------------------------------
 * Vacuum
 * ---------------------------------------------------------------------------
 */

void
imgs_store_bulkdelete(Relation index, Size meta_offset, const ImgsStoreMeta *meta,
					  IndexBulkDeleteCallback callback, void *callback_state,
					  IndexBulkDeleteResult *stats, BufferAccessStrategy strategy)
{
	uint32		ngroups = imgs_store_ngroups(meta);
	uint32		dead[IMGS_GROUP_SLOTS];

	for (uint32 group = 0; group < ngroups; group++)
	{
		BlockNumber blkno = group_block(meta, group);
		uint32		n = Min(IMGS_GROUP_SLOTS, meta->nslots - group * IMGS_GROUP_SLOTS);
		uint32		ndead = 0;
		Buffer		buf;
		ImgsSlotHeader *headers;

		vacuum_delay_point();
		buf = ReadBufferExtended(index, MAIN_FORKNUM, blkno, RBM_NORMAL, strategy);
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		imgs_page_check(index, BufferGetPage(buf), blkno, IMGS_PAGE_SLOTS);
		headers = (ImgsSlotHeader *) ImgsPageGetData(BufferGetPage(buf));
		for (uint32 j = 0; j < n; j++)
		{
			if (headers[j].state != IMGS_SLOT_LIVE)
				continue;
			if (callback != NULL && callback(&headers[j].tid, callback_state))
				dead[ndead++] = j;
			else
				stats->num_index_tuples++;
		}
		LockBuffer(buf, BUFFER_LOCK_UNLOCK);

		/*
		 * Free them: metapage first, as inserts do. Only vacuum frees slots,
		 * so the ones found above are still live.
		 */
		if (ndead > 0)
		{
			Buffer		metabuf = ReadBuffer(index, IMGS_METAPAGE_BLKNO);
			GenericXLogState *state;
			ImgsStoreMeta *new_meta;

			LockBuffer(metabuf, BUFFER_LOCK_EXCLUSIVE);
			LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
			state = GenericXLogStart(index);
			new_meta = meta_in_page(GenericXLogRegisterBuffer(state, metabuf, 0), meta_offset);
			headers = (ImgsSlotHeader *) ImgsPageGetData(GenericXLogRegisterBuffer(state, buf, 0));
			for (uint32 i = 0; i < ndead; i++)
			{
				ImgsSlotHeader *header = &headers[dead[i]];

				Assert(header->state == IMGS_SLOT_LIVE);
				header->state = IMGS_SLOT_FREE;
				ItemPointerSetInvalid(&header->tid);
				header->u.next_free = new_meta->free_head;
				new_meta->free_head = group * IMGS_GROUP_SLOTS + dead[i];
				new_meta->nfree++;
			}
			GenericXLogFinish(state);
			UnlockReleaseBuffer(metabuf);
			LockBuffer(buf, BUFFER_LOCK_UNLOCK);
			stats->tuples_removed += ndead;
		}
		ReleaseBuffer(buf);
	}
	stats->num_pages = RelationGetNumberOfBlocks(index);
}

/* ---------------------------------------------------------------------------
 * Verification (see imgs_store_check in vector_store.h)
 * ---------------------------------------------------------------------------
 */

/* One past the last block that holds data of slots below nslots. */
static uint64
store_end_block(const ImgsStoreMeta *meta)
{
	uint32		last = meta->nslots - 1;
	uint64		end_byte;

	if (meta->nslots == 0)
		return meta->first_block;
	end_byte = (uint64) (last % IMGS_GROUP_SLOTS + 1) * VECTOR_BYTES(meta);
	/* in 64 bits: a corrupted state must not wrap around */
	return (uint64) meta->first_block + (uint64) (last / IMGS_GROUP_SLOTS) * meta->group_pages +
		1 + (end_byte + IMGS_PAGE_CAPACITY - 1) / IMGS_PAGE_CAPACITY;
}

/* The state's own consistency, and the relation is long enough for it. */
static void
check_store_meta(Relation index, const ImgsStoreMeta *meta, BlockNumber first_block,
				 BlockNumber nblocks)
{
	uint64		end;

	if (meta->first_block != first_block)
		imgs_index_corrupted(index, "has its vector store at block %u, not %u",
							 meta->first_block, first_block);
	if (meta->dim == 0)
	{
		if (meta->group_pages != 0 || meta->nslots != 0 || meta->nfree != 0 ||
			meta->free_head != IMGS_NO_SLOT)
			imgs_index_corrupted(index, "has slots (%u, %u free) but no dimension",
								 meta->nslots, meta->nfree);
		return;
	}
	else
	{
		ImgsStoreMeta expected;

		set_dim(&expected, meta->dim);
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
	end = store_end_block(meta);
	if (end > nblocks)
		imgs_index_corrupted(index, "has %u slots, which need " UINT64_FORMAT " pages, but only %u pages",
							 meta->nslots, end, nblocks);
}

/* A store page has no hole (index_pages.h) and the standard special space. */
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

/* Every page after the metapage: the kind its position says, or past the store new or a store page. */
static void
check_store_pages(Relation index, const ImgsStoreMeta *meta, BlockNumber nblocks)
{
	BlockNumber end = (BlockNumber) store_end_block(meta);
	BufferAccessStrategy strategy = GetAccessStrategy(BAS_BULKREAD);

	for (BlockNumber blkno = IMGS_METAPAGE_BLKNO + 1; blkno < nblocks; blkno++)
	{
		Buffer		buf;
		Page		page;

		CHECK_FOR_INTERRUPTS();
		buf = ReadBufferExtended(index, MAIN_FORKNUM, blkno, RBM_NORMAL, strategy);
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		if (blkno < meta->first_block)
			imgs_page_check(index, page, blkno, IMGS_PAGE_META);	/* no such pages today */
		else if (blkno < end)
		{
			bool		slots = (blkno - meta->first_block) % meta->group_pages == 0;

			imgs_page_check(index, page, blkno, slots ? IMGS_PAGE_SLOTS : IMGS_PAGE_VECTORS);
		}
		else if (!PageIsNew(page))
		{
			uint16		kind = ImgsPageGetOpaque(page)->kind;

			imgs_page_check(index, page, blkno,
							kind == IMGS_PAGE_SLOTS ? IMGS_PAGE_SLOTS : IMGS_PAGE_VECTORS);
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
imgs_store_check(Relation index, Size meta_offset, BlockNumber first_block,
				 ImgsStoreMeta *meta, ImgsSlotHeader **headers_out)
{
	Buffer		metabuf = ReadBuffer(index, IMGS_METAPAGE_BLKNO);
	BlockNumber nblocks;
	ImgsSlotHeader *headers;
	uint32		ngroups;

	/*
	 * Under the metapage lock no insert or vacuum runs: the state, the slot
	 * headers and the relation's length are seen at one moment.
	 */
	LockBuffer(metabuf, BUFFER_LOCK_SHARE);
	imgs_page_check(index, BufferGetPage(metabuf), IMGS_METAPAGE_BLKNO, IMGS_PAGE_META);
	check_page_layout(index, BufferGetPage(metabuf), IMGS_METAPAGE_BLKNO);
	*meta = *meta_in_page(BufferGetPage(metabuf), meta_offset);
	nblocks = RelationGetNumberOfBlocks(index);
	check_store_meta(index, meta, first_block, nblocks);

	headers = MemoryContextAllocHuge(CurrentMemoryContext,
									 sizeof(ImgsSlotHeader) * Max(meta->nslots, 1));
	ngroups = imgs_store_ngroups(meta);
	for (uint32 group = 0; group < ngroups; group++)
	{
		BlockNumber blkno = group_block(meta, group);
		uint32		first = group * IMGS_GROUP_SLOTS;
		uint32		n = Min(IMGS_GROUP_SLOTS, meta->nslots - first);
		Buffer		buf = ReadBuffer(index, blkno);
		const ImgsSlotHeader *page_headers;

		LockBuffer(buf, BUFFER_LOCK_SHARE);
		imgs_page_check(index, BufferGetPage(buf), blkno, IMGS_PAGE_SLOTS);
		page_headers = (const ImgsSlotHeader *) ImgsPageGetData(BufferGetPage(buf));
		memcpy(&headers[first], page_headers, n * sizeof(ImgsSlotHeader));
		/* slots past nslots were never committed */
		for (uint32 j = n; j < IMGS_GROUP_SLOTS; j++)
			if (page_headers[j].state != 0)
				imgs_index_corrupted(index, "has slot %u in use (state %u) past its %u slots",
									 first + j, page_headers[j].state, meta->nslots);
		UnlockReleaseBuffer(buf);
	}
	UnlockReleaseBuffer(metabuf);

	check_slots(index, meta, headers);
	/* pages before the end never change kind: no metapage lock needed */
	check_store_pages(index, meta, nblocks);
	*headers_out = headers;
}

void
imgs_store_read_slot(Relation index, const ImgsStoreMeta *meta, uint32 slot,
					 ImgsSlotHeader *header, float *x)
{
	BlockNumber blkno = group_block(meta, slot / IMGS_GROUP_SLOTS);
	char	   *dst = (char *) x;
	Size		left = VECTOR_BYTES(meta);
	Size		offset;
	Buffer		buf;

	Assert(slot < meta->nslots);
	buf = ReadBuffer(index, blkno);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	imgs_page_check(index, BufferGetPage(buf), blkno, IMGS_PAGE_SLOTS);
	*header = ((const ImgsSlotHeader *) ImgsPageGetData(BufferGetPage(buf)))[slot % IMGS_GROUP_SLOTS];
	UnlockReleaseBuffer(buf);

	vector_position(meta, slot, &blkno, &offset);
	for (; left > 0; blkno++, offset = 0)
	{
		Size		chunk = Min(left, IMGS_PAGE_CAPACITY - offset);

		buf = ReadBuffer(index, blkno);
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		imgs_page_check(index, BufferGetPage(buf), blkno, IMGS_PAGE_VECTORS);
		memcpy(dst, ImgsPageGetData(BufferGetPage(buf)) + offset, chunk);
		UnlockReleaseBuffer(buf);
		dst += chunk;
		left -= chunk;
	}
}
