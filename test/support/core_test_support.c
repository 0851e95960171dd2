/*
 * core_test_support.c — stand-ins for src/cxx/cxx_error.c's definitions of
 * imgs_interrupt_pending and imgs_injected_fault, for programs that link a
 * C++ core without PostgreSQL, and what the cores' tests share (see
 * core_test_support.h). Nothing else of cxx_error.c is needed:
 * imgs_raise_cxx_error is for PostgreSQL callers only.
 */
#include "core_test_support.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

char	   *imgs_injected_fault = NULL;

static int64_t interrupt_polls = 0;
static int64_t interrupt_after = -1;	/* -1: never */

bool
imgs_interrupt_pending(void)
{
	interrupt_polls++;
	return interrupt_after >= 0 && interrupt_polls > interrupt_after;
}

void
imgs_test_interrupt_after(int64_t after)
{
	interrupt_polls = 0;
	interrupt_after = after;
}

int64_t
imgs_test_interrupt_polls(void)
{
	return interrupt_polls;
}

void
imgs_test_inject_fault(const char *name)
{
	/* the cores only read it (cxx/guard.hpp, imgs::fault_point) */
	imgs_injected_fault = (char *) name;
}

int
imgs_test_fault_points(const char *path, char (*names)[IMGS_TEST_FAULT_NAME_LEN], int max)
{
	static const char call[] = "fault_point(\"";
	FILE	   *fp = fopen(path, "r");
	char		line[4096];
	int			n = 0;

	if (!fp)
		return -1;
	while (fgets(line, sizeof line, fp))
	{
		char	   *p = line,
				   *e;

		while ((p = strstr(p, call)) != NULL)
		{
			p += sizeof call - 1;
			e = strchr(p, '"');
			if (!e)
				break;
			if (n < max)
				snprintf(names[n], IMGS_TEST_FAULT_NAME_LEN, "%.*s", (int) (e - p), p);
			n++;
			p = e + 1;
		}
	}
	fclose(fp);
	return n;
}

bool
imgs_test_error_is(const ImgsError *e, const char *sqlstate)
{
	/* memchr, not strlen: e may hold what the caller put there, unterminated */
	return e != NULL && memchr(e->sqlstate, '\0', sizeof e->sqlstate) == e->sqlstate + 5 &&
		e->message[0] != '\0' && memchr(e->message, '\0', sizeof e->message) != NULL &&
		(sqlstate == NULL || strcmp(e->sqlstate, sqlstate) == 0);
}

uint64_t	imgs_test_rng;

uint64_t
imgs_test_next_u64(void)
{
	uint64_t	z = (imgs_test_rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

double
imgs_test_unif(void)
{
	return (imgs_test_next_u64() >> 11) * 0x1p-53;
}

double
imgs_test_gauss(void)
{
	double		u = imgs_test_unif() + 1e-300,
				v = imgs_test_unif();

	return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);	/* 2 pi */
}
