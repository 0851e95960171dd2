/*
 * cxx_error.h — the C/C++ boundary, shared by both sides (plain C, no
 * PostgreSQL or C++ headers).
 *
 * Every C++ core function callable from C is declared extern "C", never
 * throws, and reports failure by returning false after filling an ImgsError.
 * The C caller then calls imgs_raise_cxx_error(), which ereports: by then
 * the C++ frames are gone and every destructor has run.
 */
#ifndef IMGS_CXX_ERROR_H
#define IMGS_CXX_ERROR_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C"
{
#endif

#define IMGS_ERROR_TEXT_LEN 1024

/* Every core entry point carries this: in C++ the compiler holds it to it. */
#ifdef __cplusplus
#define IMGS_NOEXCEPT noexcept
#else
#define IMGS_NOEXCEPT
#endif

/* SQLSTATEs the C++ core uses (the five-character form of ERRCODE_*). */
#define IMGS_SQLSTATE_INVALID_PARAMETER	"22023"	/* invalid_parameter_value */
#define IMGS_SQLSTATE_DATA_EXCEPTION	"22000"	/* data_exception */
#define IMGS_SQLSTATE_DATA_CORRUPTED	"XX001"	/* data_corrupted */
#define IMGS_SQLSTATE_OUT_OF_MEMORY		"53200"	/* out_of_memory */
#define IMGS_SQLSTATE_PROGRAM_LIMIT		"54000"	/* program_limit_exceeded */
#define IMGS_SQLSTATE_QUERY_CANCELED	"57014"	/* query_canceled: an interrupt was seen */
#define IMGS_SQLSTATE_EXTERNAL_ROUTINE	"38000"	/* external_routine_exception */
#define IMGS_SQLSTATE_INTERNAL_ERROR	"XX000"	/* internal_error */

typedef struct ImgsError
{
	char		sqlstate[6];	/* five characters + NUL; empty means no error */
	char		message[IMGS_ERROR_TEXT_LEN];
	char		detail[IMGS_ERROR_TEXT_LEN];	/* may be empty */
} ImgsError;

/*
 * C side (cxx_error.c). imgs_raise_cxx_error ereports the error; for
 * IMGS_SQLSTATE_QUERY_CANCELED it first lets CHECK_FOR_INTERRUPTS() raise the
 * real cause (cancel, statement_timeout, ...).
 */
extern void imgs_raise_cxx_error(const ImgsError *err)
#if defined(__GNUC__)
			__attribute__((noreturn))
#endif
			;

/* The same, its message prefixed by what failed: "WHAT: message". */
extern void imgs_raise_cxx_error_in(const ImgsError *err, const char *what)
#if defined(__GNUC__)
			__attribute__((noreturn))
#endif
			;

/*
 * True when PostgreSQL has an interrupt pending that will end the statement
 * (a cancel, a statement timeout, termination, a lost client). Long C++
 * loops poll this and return early (IMGS_SQLSTATE_QUERY_CANCELED); only a plain variable read, so
 * it is safe anywhere on the backend's main thread (never from other threads).
 */
extern bool imgs_interrupt_pending(void);

/*
 * Fault injection, for tests: the name of a fault point (imgs::fault_point in
 * guard.hpp) at which the C++ core throws std::bad_alloc, as if an
 * allocation failed there; NULL or "" for none. The superuser-only setting
 * imgsearch.inject_fault sets it (imgsearch.c); the cores' standalone tests
 * define it themselves.
 */
extern char *imgs_injected_fault;

#ifdef __cplusplus
}
#endif

#endif							/* IMGS_CXX_ERROR_H */
