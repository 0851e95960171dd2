/*
 * index_am.c — handler and build pieces shared by the imgsearch index access
 * methods (see index_am.h).
 */
#include "postgres.h"

#include <unistd.h>

#include "access/xloginsert.h"
#include "commands/vacuum.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"

#include "index/index_am.h"
#include "index/index_pages.h"
#include "index/index_scan.h"

IndexAmRoutine *
imgs_am_routine(void)
{
	IndexAmRoutine *am = makeNode(IndexAmRoutine);

	am->amstrategies = IMGS_NUM_STRATEGIES;
	am->amsupport = 0;
	am->amoptsprocnum = 0;
	am->amcanorder = false;
	am->amcanorderbyop = true;
	am->amcanbackward = false;
	am->amcanunique = false;
	am->amcanmulticol = false;
	am->amoptionalkey = true;
	am->amsearcharray = false;
	am->amsearchnulls = false;
	am->amstorage = false;
	am->amclusterable = false;
	am->ampredlocks = false;
	am->amcanparallel = false;
	am->amcaninclude = false;
	am->amusemaintenanceworkmem = false;
	am->amparallelvacuumoptions = VACUUM_OPTION_PARALLEL_BULKDEL;
	am->amkeytype = InvalidOid;
	am->amcanreturn = NULL;
	am->amproperty = NULL;
	am->amadjustmembers = NULL;
	am->amgetbitmap = NULL;
	am->ammarkpos = NULL;
	am->amrestrpos = NULL;
	am->amestimateparallelscan = NULL;
	am->aminitparallelscan = NULL;
	am->amparallelrescan = NULL;
	return am;
}

void
imgs_buildempty(Relation index, const ImgsIndexAm *am)
{
	int			metric = imgs_index_metric(index);
	Buffer		metabuf = imgs_extend(index, INIT_FORKNUM);

	START_CRIT_SECTION();
	imgs_meta_init(BufferGetPage(metabuf), am, metric, imgs_index_typmod_dim(index));
	MarkBufferDirty(metabuf);
	log_newpage_buffer(metabuf, true);
	END_CRIT_SECTION();
	UnlockReleaseBuffer(metabuf);
}

int
imgs_online_cores(void)
{
	long		cores = sysconf(_SC_NPROCESSORS_ONLN);

	return cores > 0 ? (int) Min(cores, INT_MAX) : 1;
}

int
imgs_index_typmod_dim(Relation index)
{
	int32		typmod = TupleDescAttr(RelationGetDescr(index), 0)->atttypmod;

	return typmod > 0 ? typmod : 0;
}

IndexBulkDeleteResult *
imgs_vacuumcleanup(IndexVacuumInfo *info, IndexBulkDeleteResult *stats,
				   ambulkdelete_function bulkdelete)
{
	if (info->analyze_only)
		return stats;
	if (stats == NULL)
		stats = bulkdelete(info, NULL, NULL, NULL);
	return stats;
}

/* ---------------------------------------------------------------------------
 * The registry of methods
 */

#define IMGS_MAX_INDEX_AMS	8

static const ImgsIndexAm *registered_ams[IMGS_MAX_INDEX_AMS];
static int	n_registered_ams = 0;

void
imgs_register_index_am(const ImgsIndexAm *am)
{
	for (int i = 0; i < n_registered_ams; i++)
		if (registered_ams[i] == am)
			return;
	if (n_registered_ams == IMGS_MAX_INDEX_AMS)
		elog(ERROR, "too many imgsearch index methods (at most %d)", IMGS_MAX_INDEX_AMS);
	registered_ams[n_registered_ams++] = am;
}

const ImgsIndexAm *
imgs_index_am_of(Relation index)
{
	for (int i = 0; i < n_registered_ams; i++)
		if (index->rd_indam->ambuild == registered_ams[i]->ambuild)
			return registered_ams[i];
	return NULL;
}

char *
imgs_index_am_names(void)
{
	StringInfoData names;

	initStringInfo(&names);
	for (int i = 0; i < n_registered_ams; i++)
		appendStringInfo(&names, "%s%s", i > 0 ? ", " : "", registered_ams[i]->name);
	return names.data;
}
