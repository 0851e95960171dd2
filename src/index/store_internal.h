/*
 * store_internal.h — what the vector store's files (store_*.c) share among
 * themselves; nothing else includes it. The store's API is vector_store.h,
 * its on-disk layout store_layout.h.
 */
#ifndef IMGS_STORE_INTERNAL_H
#define IMGS_STORE_INTERNAL_H

#include "index/vector_store.h"

#define VECTOR_BYTES(meta)	((Size) (meta)->dim * sizeof(float))

/* store_layout.c */

/* Sets dim and the group_pages it takes. */
extern void imgs_store_set_dim(ImgsStoreMeta *meta, int dim);

/* The block and byte offset where the vector of slot starts, in the group starting at group_start. */
extern void imgs_store_vector_position(const ImgsStoreMeta *meta, BlockNumber group_start, uint32 slot,
									   BlockNumber *blkno, Size *offset);

/* Copies bytes of vector data that begin at offset of block blkno and may span pages. */
extern void imgs_store_copy_vector_pages(Relation index, BlockNumber blkno, Size offset, Size bytes,
										 char *dst);

/* Fixes the dimension with the first vector; errors on a different one. */
extern void imgs_store_check_dim(Relation index, ImgsStoreMeta *meta, int dim);

/* Errors when appending one more slot would overflow slot numbers or the directory. */
extern void imgs_store_check_room(Relation index, const ImgsStoreMeta *meta);

/* Errors (XX002): index "has <what> <n>". */
extern void imgs_store_corrupted(Relation index, const char *what, uint32 n);

/*
 * Copies the start blocks of groups [from, to) of meta to out[from..to),
 * reading directory pages (one lock at a time).
 */
extern void imgs_store_read_directory(Relation index, const ImgsStoreMeta *meta, uint32 from, uint32 to,
									  BlockNumber *out);

/* Directory page d and entry e of group g (g >= IMGS_STORE_INLINE_GROUPS). */
static inline void
imgs_store_dir_position(uint32 g, uint32 *d, uint32 *e)
{
	Assert(g >= IMGS_STORE_INLINE_GROUPS);
	*d = (g - IMGS_STORE_INLINE_GROUPS) / IMGS_DIR_PAGE_ENTRIES;
	*e = (g - IMGS_STORE_INLINE_GROUPS) % IMGS_DIR_PAGE_ENTRIES;
}

/* store_read.c */

/* The start block of group g, reading the metapage again for a group added since. */
extern BlockNumber imgs_store_reader_group(ImgsStoreReader *reader, uint32 g);

#endif							/* IMGS_STORE_INTERNAL_H */
