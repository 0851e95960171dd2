/*
 * selftest_core.h — C++ functions that exercise the C/C++ boundary, for the
 * regression tests (imgsearch_cxx_selftest).
 */
#ifndef IMGS_SELFTEST_CORE_H
#define IMGS_SELFTEST_CORE_H

#include "cxx/cxx_error.h"

#ifdef __cplusplus
extern "C"
{
#endif

/*
 * Runs scenario `kind` with a live RAII object on the stack: "ok" returns,
 * others throw (runtime_error, bad_alloc, imgs_error, unknown, interrupt).
 */
extern bool imgs_selftest_run(const char *kind, ImgsError *err);

/* Objects constructed by imgs_selftest_run and not yet destroyed: 0 after unwinding. */
extern int	imgs_selftest_live_objects(void);

#ifdef __cplusplus
}
#endif

#endif
