/* fuzz_common.h — what the imgfeat harnesses share: invariant checks and the
 * text and binary writers of imgfeat_out / imgfeat_send, without PostgreSQL. */
#ifndef IMGS_FUZZ_COMMON_H
#define IMGS_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "type/imgfeat_parse.h"

/* Aborts (a libFuzzer finding) with the failed invariant when cond is false. */
#define FUZZ_CHECK(cond) \
	((cond) ? (void) 0 : fuzz_fail(__FILE__, __LINE__, #cond))
void		fuzz_fail(const char *file, int line, const char *what) __attribute__((noreturn));

/* How a value is written as text: as imgfeat_out does (PostgreSQL's shortest
 * decimal), or with printf "%.9g", which reads back exactly too. */
typedef enum { TEXT_SHORTEST, TEXT_PRINTF_9G } TextStyle;
#ifdef HAVE_PG_SHORTEST_DEC
#define TEXT_STYLES 2
#else
#define TEXT_STYLES 1			/* TEXT_PRINTF_9G only */
#endif

/* Writes x as text into a malloc'ed string (free it). */
char	   *fuzz_format_text(int dim, const float *x, TextStyle style);

/* Writes x in the binary form (imgfeat_send) into a malloc'ed buffer of
 * 4 + 4 * dim bytes (free it). */
uint8_t    *fuzz_format_binary(int dim, const float *x, size_t *len);

/* Checks that a valid value reads back bit for bit from every text form and
 * from the binary form. */
void		fuzz_check_round_trips(int dim, const float *x);

/* True when the status is one that parser may return. */
int			fuzz_text_status_ok(ImgfeatStatus s);
int			fuzz_binary_status_ok(ImgfeatStatus s);

#endif
