/*
 * selftest.c — SQL entry points for the C/C++ boundary self-test.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"

#include "cxx/selftest_core.h"

PG_FUNCTION_INFO_V1(imgsearch_cxx_selftest);
Datum
imgsearch_cxx_selftest(PG_FUNCTION_ARGS)
{
	char	   *kind = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ImgsError	err;

	if (!imgs_selftest_run(kind, &err))
		imgs_raise_cxx_error(&err);
	PG_RETURN_TEXT_P(cstring_to_text("ok"));
}

PG_FUNCTION_INFO_V1(imgsearch_cxx_live_objects);
Datum
imgsearch_cxx_live_objects(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(imgs_selftest_live_objects());
}
