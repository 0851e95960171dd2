/*
 * index_pages.h — page helpers shared by the imgsearch index methods.
 *
 * Every page of an imgsearch index has the standard page header and a small
 * special area naming its kind. The whole space between them is data: pd_lower
 * is set to pd_upper, so Generic WAL (which zeroes and skips the "hole"
 * between the two) logs every byte a method writes there.
 */
#ifndef IMGS_INDEX_PAGES_H
#define IMGS_INDEX_PAGES_H

#include "storage/bufmgr.h"
#include "storage/bufpage.h"
#include "utils/rel.h"

/* Identifies imgsearch index pages (like BLOOM_PAGE_ID; 0xFF80.. are used by core and bloom) */
#define IMGS_PAGE_ID			0xFFA0

/* Page kinds */
#define IMGS_PAGE_META			1	/* block 0 of every imgsearch index */
#define IMGS_PAGE_SLOTS			2	/* vector store: slot headers of a group */
#define IMGS_PAGE_VECTORS		3	/* vector store: vectors of a group */
#define IMGS_PAGE_DIRECTORY		4	/* vector store: start blocks of groups */
/* Kinds from 16 up are the methods' own (one range per method, in its header). */
#define IMGS_PAGE_METHOD_FIRST	16

typedef struct ImgsPageOpaqueData
{
	uint16		kind;			/* IMGS_PAGE_* */
	uint16		page_id;		/* IMGS_PAGE_ID */
} ImgsPageOpaqueData;

typedef ImgsPageOpaqueData *ImgsPageOpaque;

#define IMGS_METAPAGE_BLKNO		0

/* Bytes of data a page holds: 8160 with 8 kB pages */
#define IMGS_PAGE_CAPACITY \
	(BLCKSZ - MAXALIGN(SizeOfPageHeaderData) - MAXALIGN(sizeof(ImgsPageOpaqueData)))

#define ImgsPageGetOpaque(page) ((ImgsPageOpaque) PageGetSpecialPointer(page))
#define ImgsPageGetData(page)	((char *) PageGetContents(page))

extern void imgs_page_init(Page page, uint16 kind);

/* Errors out (XX002) unless the page is an initialised imgsearch page of this kind. */
extern void imgs_page_check(Relation index, Page page, BlockNumber blkno, uint16 kind);

/*
 * Reports corruption of index (XX002, index_corrupted): the message names the
 * index first, then what is wrong.
 */
#define imgs_index_corrupted(index, fmt, ...) \
	ereport(ERROR, \
			(errcode(ERRCODE_INDEX_CORRUPTED), \
			 errmsg("index \"%s\" " fmt, RelationGetRelationName(index), ##__VA_ARGS__), \
			 errhint("Please REINDEX it.")))

/* Appends one page to the relation; returns it pinned and exclusively locked, not initialised. */
extern Buffer imgs_extend(Relation index, ForkNumber fork);

/*
 * Reads block blkno of the main fork for writing, first extending the
 * relation with zeroed pages if it is shorter; returns it exclusively locked.
 * A page never initialised (PageIsNew) is the caller's to initialise.
 */
extern Buffer imgs_write_extending(Relation index, BlockNumber blkno);

/*
 * Build (no WAL): copies a page image to block blkno, the next block or an
 * existing one, extending the relation over any gap (see imgs_write_extending).
 */
extern void imgs_build_write_page(Relation index, BlockNumber blkno, Page image);

/* WAL-logs every page of an index built without WAL (log_newpage_range). */
extern void imgs_log_built_index(Relation index);

#endif							/* IMGS_INDEX_PAGES_H */
