/*
 * faissflat_vacuum.c — ambulkdelete and amvacuumcleanup.
 *
 * Dead vectors' slots go on the vector store's free list, and inserts fill
 * them before they append; vacuum reads only the slot pages (1 page in
 * dim / 3), never the vectors; before it frees them, their code entries are
 * marked dead (forget_entries), one Generic WAL record per code page.
 */
#include "postgres.h"

#include "access/generic_xlog.h"

#include "index/index_am.h"
#include "faissflat/faissflat.h"

/* Bumps the metapage's forgets counter: backends' copies of the entries are stale (faissflat.h). */
static void
bump_forgets(Relation index)
{
	Buffer		metabuf = imgs_meta_lock(index, &faissflat_am, BUFFER_LOCK_EXCLUSIVE);
	GenericXLogState *state = GenericXLogStart(index);
	Page		page = GenericXLogRegisterBuffer(state, metabuf, 0);

	((FaissflatMeta *) ImgsMetaGetMethodData(page))->forgets++;
	GenericXLogFinish(state);
	UnlockReleaseBuffer(metabuf);
}

/*
 * The forget callback (slot reuse rule 1 of vector_store.h): marks dead the
 * code entries of the n dead slots before the store frees them. The list's
 * newest page is read now: entries appended since only name newer slots.
 */
static void
forget_entries(Relation index, const uint32 *slots, const ItemPointerData *tids, int n, void *arg)
{
	ImgsIndexMeta header;
	FaissflatMeta meta;

	/* before: no copy made from now on lives on; after: nor one made while marking */
	bump_forgets(index);
	faissflat_read_meta_codes(index, &header, &meta);
	imgs_list_forget(index, FAISSFLAT_PAGE_CODES, faissflat_entry_size(meta.dims), 1,
					 &meta.codes_last, slots, n, (BufferAccessStrategy) arg);
	bump_forgets(index);
}

IndexBulkDeleteResult *
faissflat_bulkdelete(IndexVacuumInfo *info, IndexBulkDeleteResult *stats,
					 IndexBulkDeleteCallback callback, void *callback_state)
{
	ImgsIndexMeta meta;
	FaissflatMeta codes;

	if (stats == NULL)
		stats = palloc0(sizeof(IndexBulkDeleteResult));
	/* counted afresh by each pass */
	stats->num_index_tuples = 0;
	faissflat_read_meta_codes(info->index, &meta, &codes);
	/* the code entries name slots: they are forgotten first */
	imgs_store_bulkdelete(info->index, &faissflat_am, &meta, callback, callback_state,
						  codes.dims > 0 ? forget_entries : NULL, info->strategy,
						  stats, info->strategy);
	return stats;
}

IndexBulkDeleteResult *
faissflat_vacuumcleanup(IndexVacuumInfo *info, IndexBulkDeleteResult *stats)
{
	return imgs_vacuumcleanup(info, stats, faissflat_bulkdelete);
}
