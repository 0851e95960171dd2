/*
 * core_test_support.h — what the C++ cores need from PostgreSQL's side of the
 * C/C++ boundary (cxx/cxx_error.h), for programs that link a core without
 * PostgreSQL: the standalone unit tests (test/kdtree, test/lsh) and the fuzz
 * harnesses. The real definitions are in src/cxx/cxx_error.c (a backend file).
 *
 * imgs_interrupt_pending() here is a counter the test controls: it says
 * "interrupt" from poll number after + 1 on, once imgs_test_interrupt_after
 * armed it; never otherwise. imgs_injected_fault is a plain variable: set it
 * with imgs_test_inject_fault (NULL clears it). Single-threaded use only, as
 * in the backend (the cores poll from the calling thread).
 */
#ifndef IMGS_CORE_TEST_SUPPORT_H
#define IMGS_CORE_TEST_SUPPORT_H

#include <stdint.h>

#include "cxx/cxx_error.h"

#ifdef __cplusplus
extern "C"
{
#endif

/* Polls from now on: the first `after` say no, every later one yes; -1: never yes. */
extern void imgs_test_interrupt_after(int64_t after);
/* Polls of imgs_interrupt_pending() since the last imgs_test_interrupt_after. */
extern int64_t imgs_test_interrupt_polls(void);

/* The fault point the cores fail at as if out of memory; NULL for none. */
extern void imgs_test_inject_fault(const char *name);

/*
 * The fault points of a core's source file: the names of its
 * imgs::fault_point("NAME") calls, in order, at most max of them into names.
 * Returns how many there are, or -1 when the file cannot be read.
 */
#define IMGS_TEST_FAULT_NAME_LEN 64
extern int	imgs_test_fault_points(const char *path, char (*names)[IMGS_TEST_FAULT_NAME_LEN], int max);

/*
 * e says "failed": a five-character SQLSTATE (sqlstate's, unless NULL) and a
 * message.
 */
extern bool imgs_test_error_is(const ImgsError *e, const char *sqlstate);

/*
 * The tests' random numbers: splitmix64 from imgs_test_rng (set it to seed a
 * run, save and restore it around data of a check's own), uniform in [0, 1)
 * from 53 bits, standard normal by Box-Muller.
 */
extern uint64_t imgs_test_rng;
extern uint64_t imgs_test_next_u64(void);
extern double imgs_test_unif(void);
extern double imgs_test_gauss(void);

#ifdef __cplusplus
}
#endif

#endif							/* IMGS_CORE_TEST_SUPPORT_H */
