/*
 * imgsearch.c — module entry: PG_MODULE_MAGIC and _PG_init (GUCs).
 *
 * Each part of the extension that needs start-up work exposes an init
 * function and is called from here, so this file stays the one place that
 * lists them.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"

#include "cxx/cxx_error.h"
#include "imgsearch.h"
#include "faissflat/faissflat.h"
#include "kdtree/kdtree.h"
#include "lsh/lsh.h"
#include "model/ingest_worker.h"
#include "model/model.h"

PG_MODULE_MAGIC;

int			imgs_method = IMGS_METHOD_AUTO;

static const struct config_enum_entry imgs_method_options[] = {
	{"auto", IMGS_METHOD_AUTO, false},
	{"argsort", IMGS_METHOD_ARGSORT, false},
	{"faissflat", IMGS_METHOD_FAISSFLAT, false},
	{"kdtree", IMGS_METHOD_KDTREE, false},
	{"lsh", IMGS_METHOD_LSH, false},
	{NULL, 0, false}
};

void
_PG_init(void)
{
	DefineCustomEnumVariable("imgsearch.method",
							 "Method used for ORDER BY feat <-> query LIMIT k.",
							 "auto lets the planner choose among the usable indexes; "
							 "argsort forces a sequential scan and sort (exact); "
							 "faissflat, kdtree and lsh make every other index method prohibitively expensive.",
							 &imgs_method,
							 IMGS_METHOD_AUTO,
							 imgs_method_options,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);
	DefineCustomStringVariable("imgsearch.inject_fault",
							   "For tests: a C++ core fault point that fails as if out of memory.",
							   "Names a point of imgs::fault_point (src/cxx/guard.hpp); empty for none.",
							   &imgs_injected_fault,
							   "",
							   PGC_SUSET,
							   GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							   NULL, NULL, NULL);
	imgs_model_init();
	imgs_ingest_init();
	/* the index methods: one line each */
	faissflat_init();
	kdtree_init();
	lsh_init();

	MarkGUCPrefixReserved("imgsearch");
}
