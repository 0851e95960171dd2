/*
 * index_meta.h — the metapage every imgsearch index starts with, and the
 * block allocator that lives in it.
 *
 * Block 0 holds one shared header (ImgsIndexMeta): the method's magic and
 * on-disk version, the vector store's state (store_layout.h), the block
 * allocator and the metric learned at build. The method's own metapage data
 * follows it, at ImgsMetaGetMethodData(page). The header is read and checked
 * in one place (imgs_meta_check) on every path: build, insert, scan, vacuum.
 *
 * Version rule: a method's version names the layout of every page it reads,
 * the shared ones included; any change of layout bumps it. An index of
 * another version is never read: every path fails with 55000 and a hint to
 * REINDEX. A page that is not a metapage of the method fails with XX002.
 *
 * Blocks: the relation is carved by one allocator (next_block): block 0 is the
 * metapage; every other block belongs to whoever allocated it, the vector
 * store (a group: one slot page and its vector pages; a directory page) or
 * the method (leaves, buckets, overflow: page kinds of its own, from
 * IMGS_PAGE_METHOD_FIRST). An allocation bumps next_block in the metapage and
 * is made durable by the WAL record that writes the metapage; that record
 * must come before, or be, the first record that writes to the blocks, so
 * after a crash every page ever written lies below next_block. The relation
 * grows physically only as pages are written (imgs_write_extending), so
 * blocks between the physical end and next_block are reserved but absent,
 * and blocks below it may be zeroed pages (PageIsNew) not written yet: the
 * rest of a group's vector pages, or the gap before a page written further
 * on. Whoever allocates a block initialises it. Blocks are never freed (no
 * free-page map yet).
 */
#ifndef IMGS_INDEX_META_H
#define IMGS_INDEX_META_H

#include "access/amapi.h"
#include "storage/bufmgr.h"
#include "utils/rel.h"

#include "index/index_pages.h"
#include "index/store_layout.h"

/* The shared header of block 0. */
typedef struct ImgsIndexMeta
{
	uint32		magic;			/* the method's */
	uint32		version;		/* the method's on-disk version */
	ImgsStoreMeta store;
	BlockNumber next_block;		/* the allocator: every block below is taken */
	uint16		metric;			/* IMGS_METRIC_* the opfamily orders by; 0: any */
	uint16		unused;
} ImgsIndexMeta;

/* The method's own metapage data, after the shared header. */
#define IMGS_META_METHOD_OFFSET		MAXALIGN(sizeof(ImgsIndexMeta))
#define IMGS_META_METHOD_CAPACITY	(IMGS_PAGE_CAPACITY - IMGS_META_METHOD_OFFSET)
#define ImgsMetaGetHeader(page)		((ImgsIndexMeta *) ImgsPageGetData(page))
#define ImgsMetaGetMethodData(page)	(ImgsPageGetData(page) + IMGS_META_METHOD_OFFSET)

struct ImgsCheckedStore;

/*
 * A method's part of imgsearch_index_check (index_check.h): checks what is
 * its own and fills *store by calling imgs_store_check.
 */
typedef void (*ImgsIndexCheckHook) (Relation index, struct ImgsCheckedStore *store);

/*
 * The method contract: what names a method on disk, and what the base asks
 * of it. Each method registers its descriptor from its init
 * (imgs_register_index_am, index_am.h); the base finds a relation's method
 * there, and knows no method by name.
 */
typedef struct ImgsIndexAm
{
	const char *name;			/* "faissflat" */
	uint32		magic;
	uint32		version;
	ambuild_function ambuild;	/* tells the method's indexes apart (rd_indam) */
	ImgsIndexCheckHook check;
} ImgsIndexAm;

/*
 * Initialises page as the metapage of a fresh index of am: empty store of
 * dimension dim (0: fixed by the first vector), allocator at block 1.
 */
extern void imgs_meta_init(Page page, const ImgsIndexAm *am, int metric, int dim);

/* Errors unless page (locked) is a metapage of am of its version (see above); returns its header. */
extern ImgsIndexMeta *imgs_meta_check(Relation index, Page page, const ImgsIndexAm *am);

/* Reads block 0, locked in mode (BUFFER_LOCK_*), and checks it; returns the buffer. */
extern Buffer imgs_meta_lock(Relation index, const ImgsIndexAm *am, int mode);

/*
 * Copies the checked header to meta and, if method_len > 0, that many bytes
 * of the method's data to method_data; holds the metapage only meanwhile.
 */
extern void imgs_meta_read(Relation index, const ImgsIndexAm *am, ImgsIndexMeta *meta,
						   void *method_data, Size method_len);

/*
 * The metric of a new index: the strategy of the ORDER BY operator of its
 * operator family (index_scan.h), 0 when the family has several. Errors
 * when it has none.
 */
extern int	imgs_index_metric(Relation index);

/* Errors (55000) unless a scan of strategy may use an index of this metric. */
extern void imgs_meta_check_metric(Relation index, const ImgsIndexMeta *meta, int strategy);

/*
 * Reserves n consecutive blocks and returns the first. The caller holds the
 * metapage exclusively (or builds the index) and writes meta back in the WAL
 * record that first writes to the blocks (or before); it initialises every
 * block it uses (see above). Errors when the relation would outgrow
 * MaxBlockNumber.
 */
extern BlockNumber imgs_alloc_blocks(Relation index, ImgsIndexMeta *meta, uint32 n);

#endif							/* IMGS_INDEX_META_H */
