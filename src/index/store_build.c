/*
 * store_build.c — the vector store's bulk load for ambuild, without WAL
 * (imgs_store_build_*, vector_store.h "Build").
 */
#include "postgres.h"

#include "index/distance_core.h"
#include "index/store_internal.h"

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

		imgs_store_dir_position(g, &d, &e);
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

	imgs_store_check_dim(builder->index, meta, dim);
	imgs_store_check_room(builder->index, meta);

	if (slot == meta->ngroups * imgs_group_slots(meta))
		build_new_group(builder);
	Assert(builder->slots_blkno != InvalidBlockNumber);
	header = (ImgsSlotHeader *) ImgsPageGetData(builder->slots.data) + slot % imgs_group_slots(meta);
	header->tid = *tid;
	header->state = IMGS_SLOT_LIVE;
	header->u.norm_sq = imgs_norm_squared_to_store(imgs_norm_squared(x, dim));

	imgs_store_vector_position(meta, builder->slots_blkno, slot, &blkno, &offset);
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
