/*
 * vector_store.c — heap TIDs and their vectors in index pages (see
 * vector_store.h for the layout, the WAL protocol, the locking rules and the
 * slot reuse rule).
 */
#include "postgres.h"

#include "access/generic_xlog.h"
#include "commands/vacuum.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/memutils.h"

#include "index/distance_core.h"
#include "index/vector_store.h"

StaticAssertDecl(sizeof(ImgsSlotHeader) == 12, "slot headers must pack 680 to a page");
StaticAssertDecl(offsetof(ImgsIndexMeta, store.nslots) == 20,
				 "nslots stays where version 1 had it (test/t/011_faissflat_crash.pl reads it)");

#define VECTOR_BYTES(meta)	((Size) (meta)->dim * sizeof(float))

static void
set_dim(ImgsStoreMeta *meta, int dim)
{
	uint64		group_bytes = (uint64) IMGS_GROUP_SLOTS * dim * sizeof(float);

	meta->dim = dim;
	meta->group_pages = 1 + (uint32) ((group_bytes + IMGS_PAGE_CAPACITY - 1) / IMGS_PAGE_CAPACITY);
}

void
imgs_store_meta_init(ImgsStoreMeta *meta, int dim)
{
	memset(meta, 0, sizeof(*meta));
	meta->free_head = IMGS_NO_SLOT;
	if (dim > 0)
		set_dim(meta, dim);
}

/* The block and byte offset where the vector of slot starts, in the group starting at group_start. */
static void
vector_position(const ImgsStoreMeta *meta, BlockNumber group_start, uint32 slot,
				BlockNumber *blkno, Size *offset)
{
	uint64		byte = (uint64) (slot % IMGS_GROUP_SLOTS) * VECTOR_BYTES(meta);

	*blkno = group_start + 1 + (BlockNumber) (byte / IMGS_PAGE_CAPACITY);
	*offset = byte % IMGS_PAGE_CAPACITY;
}

/* The header of slot, from the slot page of its group (which starts at start). */
static ImgsSlotHeader
read_slot_header(Relation index, BlockNumber start, uint32 slot)
{
	Buffer		buf = ReadBuffer(index, start);
	ImgsSlotHeader header;

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	imgs_page_check(index, BufferGetPage(buf), start, IMGS_PAGE_SLOTS);
	header = ((const ImgsSlotHeader *) ImgsPageGetData(BufferGetPage(buf)))[slot % IMGS_GROUP_SLOTS];
	UnlockReleaseBuffer(buf);
	return header;
}

/* Copies bytes of vector data that begin at offset of block blkno and may span pages. */
static void
copy_vector_pages(Relation index, BlockNumber blkno, Size offset, Size bytes, char *dst)
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

/* Errors when appending one more slot would overflow slot numbers or the directory. */
static void
check_room(Relation index, const ImgsStoreMeta *meta)
{
	if (meta->nslots >= IMGS_NO_SLOT - 1 ||
		(meta->nslots == meta->ngroups * IMGS_GROUP_SLOTS && meta->ngroups >= IMGS_STORE_MAX_GROUPS))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("index \"%s\" cannot hold more vectors",
						RelationGetRelationName(index))));
}

static void
corrupted(Relation index, const char *what, uint32 n)
{
	ereport(ERROR,
			(errcode(ERRCODE_INDEX_CORRUPTED),
			 errmsg("index \"%s\" has %s %u", RelationGetRelationName(index), what, n),
			 errhint("Please REINDEX it.")));
}

/* Directory page d and entry e of group g (g >= IMGS_STORE_INLINE_GROUPS). */
static inline void
dir_position(uint32 g, uint32 *d, uint32 *e)
{
	Assert(g >= IMGS_STORE_INLINE_GROUPS);
	*d = (g - IMGS_STORE_INLINE_GROUPS) / IMGS_DIR_PAGE_ENTRIES;
	*e = (g - IMGS_STORE_INLINE_GROUPS) % IMGS_DIR_PAGE_ENTRIES;
}

/*
 * Copies the start blocks of groups [from, to) of meta to out[from..to),
 * reading directory pages (one lock at a time).
 */
static void
read_directory(Relation index, const ImgsStoreMeta *meta, uint32 from, uint32 to, BlockNumber *out)
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

		dir_position(g, &d, &e);
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
			corrupted(index, "a bad start block for group", g);
}

/* The start block of group g of meta. */
static BlockNumber
group_start(Relation index, const ImgsStoreMeta *meta, uint32 g)
{
	BlockNumber blkno;

	Assert(g < meta->ngroups);
	read_directory(index, meta, g, g + 1, &blkno - g);
	return blkno;
}

/* ---------------------------------------------------------------------------
 * Build
 * ---------------------------------------------------------------------------
 */

void
imgs_store_build_begin(ImgsStoreBuilder *builder, Relation index, ImgsIndexMeta *meta)
{
	builder->index = index;
	builder->meta = meta;
	builder->slots_blkno = InvalidBlockNumber;
	builder->vectors_blkno = InvalidBlockNumber;
	builder->dir_blkno = InvalidBlockNumber;
}

/* Writes out a page the build filled in memory, if there is one. */
static void
flush_page(ImgsStoreBuilder *builder, BlockNumber *blkno, PGAlignedBlock *page)
{
	if (*blkno != InvalidBlockNumber)
		imgs_build_write_page(builder->index, *blkno, page->data);
	*blkno = InvalidBlockNumber;
}

static void
flush_group(ImgsStoreBuilder *builder)
{
	flush_page(builder, &builder->vectors_blkno, &builder->vectors);
	flush_page(builder, &builder->slots_blkno, &builder->slots);
}

/* A new group for the build: a directory entry, an empty slot page. */
static void
build_new_group(ImgsStoreBuilder *builder)
{
	ImgsStoreMeta *store = &builder->meta->store;
	uint32		g = store->ngroups;
	BlockNumber start;

	flush_group(builder);
	if (g >= IMGS_STORE_INLINE_GROUPS)
	{
		uint32		d,
					e;

		dir_position(g, &d, &e);
		if (e == 0)
		{
			flush_page(builder, &builder->dir_blkno, &builder->dir);
			builder->dir_blkno = imgs_alloc_blocks(builder->index, builder->meta, 1);
			store->dir_pages[d] = builder->dir_blkno;
			store->ndirpages = d + 1;
			imgs_page_init(builder->dir.data, IMGS_PAGE_DIRECTORY);
			imgs_build_write_page(builder->index, builder->dir_blkno, builder->dir.data);
		}
		start = imgs_alloc_blocks(builder->index, builder->meta, store->group_pages);
		((BlockNumber *) ImgsPageGetData(builder->dir.data))[e] = start;
	}
	else
	{
		start = imgs_alloc_blocks(builder->index, builder->meta, store->group_pages);
		store->groups[g] = start;
	}
	store->ngroups++;

	/* its slot page takes its block now, written again when full */
	builder->slots_blkno = start;
	imgs_page_init(builder->slots.data, IMGS_PAGE_SLOTS);
	imgs_build_write_page(builder->index, builder->slots_blkno, builder->slots.data);
}

uint32
imgs_store_build_add(ImgsStoreBuilder *builder, ItemPointer tid, const float *x, int dim)
{
	ImgsStoreMeta *meta = &builder->meta->store;
	uint32		slot = meta->nslots;
	ImgsSlotHeader *header;
	const char *src = (const char *) x;
	Size		left;
	BlockNumber blkno;
	Size		offset;

	check_dim(builder->index, meta, dim);
	check_room(builder->index, meta);

	if (slot == meta->ngroups * IMGS_GROUP_SLOTS)
		build_new_group(builder);
	Assert(builder->slots_blkno != InvalidBlockNumber);
	header = (ImgsSlotHeader *) ImgsPageGetData(builder->slots.data) + slot % IMGS_GROUP_SLOTS;
	header->tid = *tid;
	header->state = IMGS_SLOT_LIVE;
	header->u.norm_sq = imgs_norm_squared_to_store(imgs_norm_squared(x, dim));

	vector_position(meta, builder->slots_blkno, slot, &blkno, &offset);
	for (left = VECTOR_BYTES(meta); left > 0; blkno++, offset = 0)
	{
		Size		chunk = Min(left, IMGS_PAGE_CAPACITY - offset);

		if (builder->vectors_blkno != blkno)
		{
			flush_page(builder, &builder->vectors_blkno, &builder->vectors);
			builder->vectors_blkno = blkno;
			imgs_page_init(builder->vectors.data, IMGS_PAGE_VECTORS);
		}
		memcpy(ImgsPageGetData(builder->vectors.data) + offset, src, chunk);
		src += chunk;
		left -= chunk;
	}
	meta->nslots++;
	return slot;
}

void
imgs_store_build_end(ImgsStoreBuilder *builder)
{
	flush_group(builder);
	flush_page(builder, &builder->dir_blkno, &builder->dir);
}

/* ---------------------------------------------------------------------------
 * Insert
 * ---------------------------------------------------------------------------
 */

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

		dir_position(g, &d, &e);
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

	vector_position(meta, start, slot, &blkno, &offset);
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
	check_dim(index, store, dim);
	ins->reuse = store->free_head != IMGS_NO_SLOT;
	if (ins->reuse)
	{
		ins->slot = store->free_head;
		if (ins->slot >= store->nslots)
			corrupted(index, "a free list that names unused slot", ins->slot);
	}
	else
	{
		check_room(index, store);
		ins->slot = store->nslots;
		if (ins->slot == store->ngroups * IMGS_GROUP_SLOTS)
			insert_new_group(ins);
	}
	ins->slot_blkno = group_start(index, store, ins->slot / IMGS_GROUP_SLOTS);
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
	ins->header = (ImgsSlotHeader *) ImgsPageGetData(page) + ins->slot % IMGS_GROUP_SLOTS;
	if (ins->reuse ? ins->header->state != IMGS_SLOT_FREE : ins->header->state == IMGS_SLOT_LIVE)
		corrupted(ins->index, ins->reuse ? "a used slot on its free list: slot" :
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

/* ---------------------------------------------------------------------------
 * Read
 * ---------------------------------------------------------------------------
 */

void
imgs_store_open(ImgsStoreReader *reader, Relation index, const ImgsIndexAm *am,
				const ImgsIndexMeta *meta)
{
	reader->index = index;
	reader->am = am;
	reader->meta = meta->store;
	reader->groups = palloc(sizeof(BlockNumber) * Max(meta->store.ngroups, 1));
	read_directory(index, &reader->meta, 0, reader->meta.ngroups, reader->groups);
	reader->scratch = reader->meta.dim > 0 ? palloc(VECTOR_BYTES(&reader->meta)) : NULL;
}

void
imgs_store_close(ImgsStoreReader *reader)
{
	if (reader->groups)
		pfree(reader->groups);
	if (reader->scratch)
		pfree(reader->scratch);
	reader->groups = NULL;
	reader->scratch = NULL;
}

/* The start block of group g, reading the metapage again for a group added since. */
static BlockNumber
reader_group(ImgsStoreReader *reader, uint32 g)
{
	if (g >= reader->meta.ngroups)
	{
		ImgsIndexMeta meta;
		uint32		old = reader->meta.ngroups;

		imgs_meta_read(reader->index, reader->am, &meta, NULL, 0);
		if (g >= meta.store.ngroups || (reader->meta.dim != 0 && meta.store.dim != reader->meta.dim))
			corrupted(reader->index, "a reference to a slot of unallocated group", g);
		/* the directory grows; the slot counts stay as the reader first saw them */
		reader->groups = repalloc(reader->groups, sizeof(BlockNumber) * meta.store.ngroups);
		reader->meta.dim = meta.store.dim;
		reader->meta.group_pages = meta.store.group_pages;
		reader->meta.ngroups = meta.store.ngroups;
		reader->meta.ndirpages = meta.store.ndirpages;
		memcpy(reader->meta.dir_pages, meta.store.dir_pages, sizeof(meta.store.dir_pages));
		memcpy(reader->meta.groups, meta.store.groups, sizeof(meta.store.groups));
		read_directory(reader->index, &reader->meta, old, reader->meta.ngroups, reader->groups);
		if (reader->scratch == NULL)
			reader->scratch = palloc(VECTOR_BYTES(&reader->meta));
	}
	return reader->groups[g];
}

/*
 * Hands the vectors of the first n slots of group `group` to consume, in
 * slot order: runs of whole vectors straight from a page, a vector that
 * spans pages from the reader's scratch copy. Copies their headers first.
 */
typedef void (*VectorConsumer) (void *arg, const float *x, uint32 first, uint32 count);

static void
walk_group(ImgsStoreReader *reader, uint32 group, uint32 n, ImgsSlotHeader *headers,
		   VectorConsumer consume, void *arg)
{
	Relation	index = reader->index;
	const ImgsStoreMeta *meta = &reader->meta;
	BlockNumber blkno = reader_group(reader, group);
	Size		vector_bytes = VECTOR_BYTES(meta);
	uint64		end = (uint64) n * vector_bytes;	/* of the group's vector bytes */
	uint64		page_start;
	uint32		j = 0;			/* next slot not consumed */
	float	   *scratch = reader->scratch;
	Size		pending = 0;	/* bytes of slot j's vector gathered in scratch */
	Buffer		buf;

	Assert(n > 0 && n <= IMGS_GROUP_SLOTS);
	CHECK_FOR_INTERRUPTS();
	buf = ReadBuffer(index, blkno);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	imgs_page_check(index, BufferGetPage(buf), blkno, IMGS_PAGE_SLOTS);
	memcpy(headers, ImgsPageGetData(BufferGetPage(buf)), n * sizeof(ImgsSlotHeader));
	UnlockReleaseBuffer(buf);
	if (consume == NULL)
		return;

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
				consume(arg, scratch, j, 1);
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
				consume(arg, (const float *) (data + pos), j, whole);
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

typedef struct KeysConsumer
{
	const ImgsKeyQuery *query;
	int			dim;
	const ImgsSlotHeader *headers;	/* walk_group fills them before the first vector */
	float		norms_sq[IMGS_GROUP_SLOTS];	/* of the slots, contiguous for the kernel */
	double	   *out;
} KeysConsumer;

static void
consume_keys(void *arg, const float *x, uint32 first, uint32 count)
{
	KeysConsumer *kc = (KeysConsumer *) arg;

	for (uint32 i = first; i < first + count; i++)
		kc->norms_sq[i] = kc->headers[i].u.norm_sq;
	imgs_keys_many(kc->query, x, kc->dim, count, kc->norms_sq + first, kc->out + first);
}

void
imgs_store_read_group(ImgsStoreReader *reader, uint32 group, uint32 n,
					  ImgsSlotHeader *headers, const ImgsKeyQuery *query, double *out)
{
	KeysConsumer kc;

	kc.query = query;
	kc.dim = reader->meta.dim;
	kc.headers = headers;
	kc.out = out;
	walk_group(reader, group, n, headers, query ? consume_keys : NULL, &kc);
}

typedef struct CopyConsumer
{
	int			dim;
	float	   *out;
} CopyConsumer;

static void
consume_copy(void *arg, const float *x, uint32 first, uint32 count)
{
	CopyConsumer *cc = (CopyConsumer *) arg;

	memcpy(cc->out + (Size) first * cc->dim, x, sizeof(float) * (Size) count * cc->dim);
}

void
imgs_store_read_vectors(ImgsStoreReader *reader, uint32 group, uint32 n,
						ImgsSlotHeader *headers, float *out)
{
	CopyConsumer cc = {reader->meta.dim, out};

	walk_group(reader, group, n, headers, consume_copy, &cc);
}

/*
 * Re-rank lookahead: imgs_store_keys pins the pages of the slot LOOKAHEAD
 * places ahead and prefetches its header and vector into the CPU cache
 * while it computes the current one, so that the memory latency of many
 * scattered vectors overlaps (it was half of an lsh scan's time).
 */
#define LOOKAHEAD	8

typedef struct KeyLookup
{
	int			i;				/* index into the caller's arrays */
	BlockNumber start;			/* group's first block: its slot page */
	Buffer		slot_buf;
	Buffer		vector_buf;		/* InvalidBuffer: a vector that spans pages */
	BlockNumber vector_blkno;
	Size		offset;
} KeyLookup;

static void
prefetch_bytes(const char *p, Size bytes)
{
	for (Size b = 0; b < bytes; b += 64)
		__builtin_prefetch(p + b);
}

static void
lookup_pin(ImgsStoreReader *reader, KeyLookup *lk, uint32 slot)
{
	const ImgsStoreMeta *meta;
	Page		page;

	lk->start = reader_group(reader, slot / IMGS_GROUP_SLOTS);
	meta = &reader->meta;
	lk->slot_buf = ReadBuffer(reader->index, lk->start);
	page = BufferGetPage(lk->slot_buf);
	__builtin_prefetch(ImgsPageGetOpaque(page));
	__builtin_prefetch(&((const ImgsSlotHeader *) ImgsPageGetData(page))[slot % IMGS_GROUP_SLOTS]);
	vector_position(meta, lk->start, slot, &lk->vector_blkno, &lk->offset);
	lk->vector_buf = InvalidBuffer;
	if (lk->offset + VECTOR_BYTES(meta) <= IMGS_PAGE_CAPACITY)
	{
		lk->vector_buf = ReadBuffer(reader->index, lk->vector_blkno);
		page = BufferGetPage(lk->vector_buf);
		__builtin_prefetch(ImgsPageGetOpaque(page));
		prefetch_bytes(ImgsPageGetData(page) + lk->offset, VECTOR_BYTES(meta));
	}
}

static void
lookup_key(ImgsStoreReader *reader, KeyLookup *lk, uint32 slot, const ImgsKeyQuery *query,
		   double *key_out, ImgsSlotHeader *header_out)
{
	Relation	index = reader->index;
	const ImgsStoreMeta *meta = &reader->meta;
	Page		page;
	ImgsSlotHeader header;

	LockBuffer(lk->slot_buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(lk->slot_buf);
	imgs_page_check(index, page, lk->start, IMGS_PAGE_SLOTS);
	header = ((const ImgsSlotHeader *) ImgsPageGetData(page))[slot % IMGS_GROUP_SLOTS];
	LockBuffer(lk->slot_buf, BUFFER_LOCK_UNLOCK);
	*header_out = header;
	*key_out = NAN;
	if (header.state != IMGS_SLOT_LIVE)
		return;
	if (BufferIsValid(lk->vector_buf))
	{
		/* the whole vector on one page: no copy */
		LockBuffer(lk->vector_buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(lk->vector_buf);
		imgs_page_check(index, page, lk->vector_blkno, IMGS_PAGE_VECTORS);
		imgs_keys_many(query, (const float *) (ImgsPageGetData(page) + lk->offset),
					   meta->dim, 1, &header.u.norm_sq, key_out);
		LockBuffer(lk->vector_buf, BUFFER_LOCK_UNLOCK);
		return;
	}
	copy_vector_pages(index, lk->vector_blkno, lk->offset, VECTOR_BYTES(meta), (char *) reader->scratch);
	imgs_keys_many(query, reader->scratch, meta->dim, 1, &header.u.norm_sq, key_out);
}

static void
lookup_release(KeyLookup *lk)
{
	ReleaseBuffer(lk->slot_buf);
	if (BufferIsValid(lk->vector_buf))
		ReleaseBuffer(lk->vector_buf);
}

static int
slot_order_cmp(const void *a, const void *b, void *arg)
{
	const uint32 *slots = (const uint32 *) arg;
	uint32		x = slots[*(const int *) a];
	uint32		y = slots[*(const int *) b];

	return x < y ? -1 : x > y ? 1 : 0;
}

void
imgs_store_keys(ImgsStoreReader *reader, const uint32 *slots, int n,
				const ImgsKeyQuery *query, double *keys_out, ImgsSlotHeader *headers_out)
{
	int			one = 0;
	/* kdtree asks for one key at a time */
	int		   *order = n > 1 ? palloc(sizeof(int) * n) : &one;
	KeyLookup	ring[LOOKAHEAD];

	/* in slot order: neighbouring slots share pages, and the pages come in block order */
	for (int i = 0; i < n; i++)
		order[i] = i;
	if (n > 1)
		qsort_arg(order, n, sizeof(int), slot_order_cmp, (void *) slots);
	/* pins only are held between steps; on error the resource owner drops them */
	for (int k = 0; k < n + LOOKAHEAD; k++)
	{
		/* first the slot LOOKAHEAD places back, whose place in the ring k takes */
		if (k >= LOOKAHEAD)
		{
			KeyLookup  *lk = &ring[k % LOOKAHEAD];

			CHECK_FOR_INTERRUPTS();
			lookup_key(reader, lk, slots[lk->i], query, &keys_out[lk->i], &headers_out[lk->i]);
			lookup_release(lk);
		}
		if (k < n)
		{
			KeyLookup  *lk = &ring[k % LOOKAHEAD];

			lk->i = order[k];
			lookup_pin(reader, lk, slots[lk->i]);
		}
		else if (k < LOOKAHEAD)
			k = LOOKAHEAD - 1;	/* fewer than LOOKAHEAD: go straight to computing */
	}
	if (order != &one)
		pfree(order);
}

/* ---------------------------------------------------------------------------
 * Vacuum
 * ---------------------------------------------------------------------------
 */

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
		uint32		group = dead->slots[i] / IMGS_GROUP_SLOTS;
		BlockNumber blkno = reader_group(reader, group);
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
		for (; i < dead->n && dead->slots[i] / IMGS_GROUP_SLOTS == group; i++)
		{
			uint32		slot = dead->slots[i];
			ImgsSlotHeader *header = &headers[slot % IMGS_GROUP_SLOTS];

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
	dead.capacity = IMGS_GROUP_SLOTS;
	if (forget != NULL)
	{
		/* bounded by maintenance_work_mem, by what one palloc may take, by the slots there are */
		uint64		cap = (uint64) maintenance_work_mem * 1024 / (sizeof(uint32) + sizeof(ItemPointerData));

		cap = Min(cap, MaxAllocSize / sizeof(ItemPointerData));
		cap = Min(cap, (uint64) meta->store.nslots);
		dead.capacity = (int) Max(cap, IMGS_GROUP_SLOTS);
	}
	dead.slots = palloc(sizeof(uint32) * dead.capacity);
	dead.tids = palloc(sizeof(ItemPointerData) * dead.capacity);
	dead.n = 0;

	for (uint32 group = 0; group < ngroups; group++)
	{
		BlockNumber blkno = reader.groups[group];
		uint32		n = Min(IMGS_GROUP_SLOTS, meta->store.nslots - group * IMGS_GROUP_SLOTS);
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
				dead.slots[dead.n] = group * IMGS_GROUP_SLOTS + j;
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

/* ---------------------------------------------------------------------------
 * Verification (see imgs_store_check in vector_store.h)
 * ---------------------------------------------------------------------------
 */

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
	uint64		first = (uint64) g * IMGS_GROUP_SLOTS;
	uint64		n;

	if (meta->nslots <= first)
		return 0;
	n = Min((uint64) IMGS_GROUP_SLOTS, meta->nslots - first);
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

	/*
	 * Groups: those the slots need, and at most one more, allocated by an
	 * insert that did not commit (its group has a record of its own), which
	 * only happens when the slots fill every group before it.
	 */
	needed = imgs_store_ngroups(meta);
	if (meta->ngroups < needed ||
		(meta->ngroups > needed &&
		 (meta->ngroups > needed + 1 || meta->nslots != needed * IMGS_GROUP_SLOTS)))
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
	read_directory(index, meta, 0, meta->ngroups, groups);
	/* a directory page's entries past the last group stay zero */
	if (meta->ngroups > IMGS_STORE_INLINE_GROUPS)
	{
		uint32		d,
					e;
		Buffer		buf;
		const BlockNumber *entries;

		dir_position(meta->ngroups - 1, &d, &e);
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
		uint32		first = group * IMGS_GROUP_SLOTS;
		uint32		n = meta->nslots > first ? Min(IMGS_GROUP_SLOTS, meta->nslots - first) : 0;
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
		for (uint32 j = n; j < IMGS_GROUP_SLOTS; j++)
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

void
imgs_store_read_slot(Relation index, const ImgsStoreMeta *meta, const BlockNumber *groups,
					 uint32 slot, ImgsSlotHeader *header, float *x)
{
	BlockNumber start = groups[slot / IMGS_GROUP_SLOTS];
	BlockNumber blkno;
	Size		offset;

	Assert(slot < meta->nslots);
	*header = read_slot_header(index, start, slot);
	vector_position(meta, start, slot, &blkno, &offset);
	copy_vector_pages(index, blkno, offset, VECTOR_BYTES(meta), (char *) x);
}
