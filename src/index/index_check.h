/*
 * index_check.h — imgsearch_index_check(index regclass): verifies an index of
 * any imgsearch method against its table (the SQL function is in
 * index_check.c; see README.md "Checking an index").
 *
 * The shared part checks what every method has: the vector store (its layout
 * and free list, vector_store.h), each live slot's heap TID and vector
 * against the table. A method adds what is its own (its metapage fields, and
 * for kdtree and lsh their trees, buckets and codes) in a hook, listed in
 * index_check.c's table of methods:
 *
 *   void kdtree_check(Relation index, ImgsCheckedStore *store);
 *
 * The hook errors with XX002 (imgs_index_corrupted) at the first problem it
 * finds, and fills *store by calling imgs_store_check.
 */
#ifndef IMGS_INDEX_CHECK_H
#define IMGS_INDEX_CHECK_H

#include "access/amapi.h"

#include "index/vector_store.h"

/* The store of a checked index: its state and every slot header, at one moment. */
typedef struct ImgsCheckedStore
{
	ImgsIndexMeta header;		/* the metapage's shared header, checked */
	BlockNumber *groups;		/* start block of each of header.store.ngroups groups */
	ImgsSlotHeader *headers;	/* header.store.nslots of them */
} ImgsCheckedStore;

typedef void (*ImgsIndexCheckHook) (Relation index, ImgsCheckedStore *store);

typedef struct ImgsIndexCheckMethod
{
	const char *name;
	ambuild_function ambuild;	/* the method's ambuild tells its indexes apart */
	ImgsIndexCheckHook check;
} ImgsIndexCheckMethod;

#endif							/* IMGS_INDEX_CHECK_H */
