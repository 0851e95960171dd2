/*
 * store_read.c — reading the vector store: whole groups for scans and
 * re-rank lookups of single slots (imgs_store_open, imgs_store_read_*,
 * imgs_store_keys; vector_store.h "Read").
 */
#include "postgres.h"

#include "miscadmin.h"

#include "index/distance_core.h"
#include "index/store_internal.h"

void
imgs_store_open(ImgsStoreReader *reader, Relation index, const ImgsIndexAm *am,
				const ImgsIndexMeta *meta)
{
	reader->index = index;
	reader->am = am;
	reader->meta = meta->store;
	reader->groups = palloc(sizeof(BlockNumber) * Max(meta->store.ngroups, 1));
	imgs_store_read_directory(index, &reader->meta, 0, reader->meta.ngroups, reader->groups);
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
BlockNumber
imgs_store_reader_group(ImgsStoreReader *reader, uint32 g)
{
	if (g >= reader->meta.ngroups)
	{
		ImgsIndexMeta meta;
		uint32		old = reader->meta.ngroups;

		imgs_meta_read(reader->index, reader->am, &meta, NULL, 0);
		if (g >= meta.store.ngroups || (reader->meta.dim != 0 && meta.store.dim != reader->meta.dim))
			imgs_store_corrupted(reader->index, "a reference to a slot of unallocated group", g);
		/* the directory grows; the slot counts stay as the reader first saw them */
		reader->groups = repalloc(reader->groups, sizeof(BlockNumber) * meta.store.ngroups);
		reader->meta.dim = meta.store.dim;
		reader->meta.group_pages = meta.store.group_pages;
		reader->meta.ngroups = meta.store.ngroups;
		reader->meta.ndirpages = meta.store.ndirpages;
		memcpy(reader->meta.dir_pages, meta.store.dir_pages, sizeof(meta.store.dir_pages));
		memcpy(reader->meta.groups, meta.store.groups, sizeof(meta.store.groups));
		imgs_store_read_directory(reader->index, &reader->meta, old, reader->meta.ngroups, reader->groups);
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
	BlockNumber blkno = imgs_store_reader_group(reader, group);
	Size		vector_bytes = VECTOR_BYTES(meta);
	uint64		end = (uint64) n * vector_bytes;	/* of the group's vector bytes */
	uint64		page_start;
	uint32		j = 0;			/* next slot not consumed */
	float	   *scratch = reader->scratch;
	Size		pending = 0;	/* bytes of slot j's vector gathered in scratch */
	Buffer		buf;

	Assert(n > 0 && n <= imgs_group_slots(meta));
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
	float		norms_sq[IMGS_MAX_GROUP_SLOTS];	/* of the slots, contiguous for the kernel */
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

	meta = &reader->meta;
	lk->start = imgs_store_reader_group(reader, slot / imgs_group_slots(meta));
	lk->slot_buf = ReadBuffer(reader->index, lk->start);
	page = BufferGetPage(lk->slot_buf);
	__builtin_prefetch(ImgsPageGetOpaque(page));
	__builtin_prefetch(&((const ImgsSlotHeader *) ImgsPageGetData(page))[slot % imgs_group_slots(meta)]);
	imgs_store_vector_position(meta, lk->start, slot, &lk->vector_blkno, &lk->offset);
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
	header = ((const ImgsSlotHeader *) ImgsPageGetData(page))[slot % imgs_group_slots(meta)];
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
	imgs_store_copy_vector_pages(index, lk->vector_blkno, lk->offset, VECTOR_BYTES(meta), (char *) reader->scratch);
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
