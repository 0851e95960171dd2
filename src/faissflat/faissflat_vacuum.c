/*
 * faissflat_vacuum.c — ambulkdelete and amvacuumcleanup.
 *
 * Dead vectors' slots go on the vector store's free list, and inserts fill
 * them before they append; vacuum reads only the slot pages (1 page in
 * dim / 3), never the vectors.
 */
#include "postgres.h"

#include "index/index_am.h"
#include "faissflat/faissflat.h"

IndexBulkDeleteResult *
faissflat_bulkdelete(IndexVacuumInfo *info, IndexBulkDeleteResult *stats,
					 IndexBulkDeleteCallback callback, void *callback_state)
{
	ImgsIndexMeta meta;

	if (stats == NULL)
		stats = palloc0(sizeof(IndexBulkDeleteResult));
	/* counted afresh by each pass */
	stats->num_index_tuples = 0;
	faissflat_read_meta(info->index, &meta);
	/* faissflat names slots nowhere but in the store: no forget callback */
	imgs_store_bulkdelete(info->index, &faissflat_am, &meta, callback, callback_state,
						  NULL, NULL, stats, info->strategy);
	return stats;
}

IndexBulkDeleteResult *
faissflat_vacuumcleanup(IndexVacuumInfo *info, IndexBulkDeleteResult *stats)
{
	return imgs_vacuumcleanup(info, stats, faissflat_bulkdelete);
}
