/*
 * index_check.h — imgsearch_index_check(index regclass): verifies an index of
 * any imgsearch method against its table (the SQL function is in
 * index_check.c; see docs/methods.md "Checking an index").
 *
 * The shared part checks what every method has: the vector store (its layout
 * and free list, vector_store.h), each live slot's heap TID and vector
 * against the table. A method adds what is its own (its metapage fields, and
 * for kdtree and lsh their trees, buckets and codes) in the check hook of its
 * descriptor (ImgsIndexAm, index_meta.h):
 *
 *   void kdtree_check(Relation index, ImgsCheckedStore *store);
 *
 * The hook errors with XX002 (imgs_index_corrupted) at the first problem it
 * finds, and fills *store by calling imgs_store_check.
 */
#ifndef IMGS_INDEX_CHECK_H
#define IMGS_INDEX_CHECK_H

#include "access/amapi.h"

#include "index/method_pages.h"
#include "index/vector_store.h"

/* The store of a checked index: its state and every slot header, at one moment. */
typedef struct ImgsCheckedStore
{
	ImgsIndexMeta header;		/* the metapage's shared header, checked */
	BlockNumber *groups;		/* start block of each of header.store.ngroups groups */
	ImgsSlotHeader *headers;	/* header.store.nslots of them */
	/*
	 * Live slots no entry of the method's lists names (imgs_check_lists), or
	 * NULL: a crash between vacuum's forget callback and its freeing of the
	 * slots leaves them so, harmlessly, for rows dead to every snapshot
	 * (vector_store.h, slot reuse rule 1). So only a row the check's
	 * snapshot sees makes one an error (index_check.c, step 3).
	 */
	bool	   *unreferenced;
	const char *lists_name;		/* what the lists hold: "bucket", ... */
} ImgsCheckedStore;


/*
 * A method's check of one entry of its lists (index/method_pages.h) whose
 * slot is live and unchanged: x is the slot's vector as stored.
 */
typedef void (*ImgsCheckEntry) (Relation index, uint32 list, const char *entry, const float *x,
								void *arg);

/*
 * Checks the entry lists 0..nlists-1 of kind (newest pages in last[]; `what`
 * names a list in messages: "leaf", "bucket") against the store that
 * imgs_store_check read into *store: every chain lies within the allocated
 * blocks and ends; every live entry names a live slot (or one an insert
 * reused since), no slot twice; check runs on each entry whose slot is live
 * and unchanged; every live slot has an entry. Entries and slots that
 * inserts add meanwhile are skipped.
 */
extern void imgs_check_lists(Relation index, ImgsCheckedStore *store, uint16 kind, Size entry_size,
							 uint32 nlists, const BlockNumber *last, const char *what,
							 ImgsCheckEntry check, void *arg);

#endif							/* IMGS_INDEX_CHECK_H */
