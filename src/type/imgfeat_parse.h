/*
 * imgfeat_parse.h — the imgfeat validity rule and the parsing of its text and
 * binary forms, in plain C with no PostgreSQL header, so that the fuzz
 * harnesses (fuzz/) run them without a backend.
 *
 * Nothing here allocates or reports: every function fills a caller buffer and
 * returns a status; imgfeat_io.c turns a status into the ereport (message and
 * SQLSTATE) that the SQL user sees.
 */
#ifndef IMGFEAT_PARSE_H
#define IMGFEAT_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C"
{
#endif

#define IMGFEAT_MAX_DIM 16000

typedef enum ImgfeatStatus
{
	IMGFEAT_OK = 0,
	/* the validity rule (imgfeat_values_check) */
	IMGFEAT_ERR_NO_DIMS,		/* fewer than 1 dimension */
	IMGFEAT_ERR_TOO_MANY_DIMS,	/* more than IMGFEAT_MAX_DIM */
	IMGFEAT_ERR_NAN,			/* an element is NaN */
	IMGFEAT_ERR_INF,			/* an element is infinite */
	/* text form */
	IMGFEAT_ERR_NO_OPEN_BRACKET,	/* does not start with "[" */
	IMGFEAT_ERR_EXPECTED_NUMBER,	/* no number where one must be */
	IMGFEAT_ERR_OUT_OF_RANGE,	/* a number over- or underflows float4 */
	IMGFEAT_ERR_EXPECTED_SEPARATOR,	/* no "," or "]" after a number */
	IMGFEAT_ERR_JUNK_AFTER,		/* something after the closing "]" */
	/* binary form */
	IMGFEAT_ERR_SHORT_HEADER,	/* fewer than 4 bytes: no dim and reserved field */
	IMGFEAT_ERR_TYPMOD,			/* dim differs from the typmod asked for */
	IMGFEAT_ERR_RESERVED,		/* the reserved field is not 0 */
	IMGFEAT_ERR_LENGTH,			/* the payload is not dim float4s */
	/* caller's mistake: the buffer is smaller than documented */
	IMGFEAT_ERR_CAPACITY
} ImgfeatStatus;

/* Where and why a parse failed; only the fields its status names are set. */
typedef struct ImgfeatParseError
{
	ImgfeatStatus status;
	size_t		pos;			/* byte offset in the input of the offence */
	size_t		len;			/* OUT_OF_RANGE: length of the number at pos */
	int			dim;			/* TOO_MANY_DIMS: dimensions seen (MAX + 1);
								 * NO_DIMS, TOO_MANY_DIMS, TYPMOD, LENGTH
								 * (binary): the header's dim */
	int			index;			/* NAN, INF: the element's index */
	int			value;			/* RESERVED: the field; TYPMOD: the typmod;
								 * LENGTH: the bytes after the header */
} ImgfeatParseError;

/*
 * THE validity rule of the type: 1..IMGFEAT_MAX_DIM elements, every one
 * finite. Every path that makes an imgfeat (text, binary, casts, aggregates)
 * must accept exactly the values this accepts. Returns IMGFEAT_OK,
 * IMGFEAT_ERR_NO_DIMS, IMGFEAT_ERR_TOO_MANY_DIMS (x is not read then), or
 * IMGFEAT_ERR_NAN / IMGFEAT_ERR_INF for the first bad element, whose index
 * goes to *bad_index (when not NULL).
 */
extern ImgfeatStatus imgfeat_values_check(int dim, const float *x, int *bad_index);

/* imgfeat_values_check(dim, x, NULL) == IMGFEAT_OK */
extern bool imgfeat_values_valid(int dim, const float *x);

/*
 * An upper bound on the number of elements of the text form in input (its
 * commas + 1, at most IMGFEAT_MAX_DIM): a values buffer of this many floats
 * is large enough for imgfeat_parse_text.
 */
extern int	imgfeat_text_dim_bound(const char *input);

/*
 * Parses the text form "[1,2.5,-3e-2]" (whitespace allowed around brackets
 * and elements) from a NUL-terminated string into values[0..*dim). capacity
 * must be at least imgfeat_text_dim_bound(input). Numbers are read with
 * strtof (C locale). Returns the status, also stored in err->status.
 */
extern ImgfeatStatus imgfeat_parse_text(const char *input, float *values, int capacity,
										int *dim, ImgfeatParseError *err);

/*
 * Parses the binary form (network byte order: int16 dim, int16 reserved = 0,
 * dim float4) from data[0..len) into values[0..*dim); the whole of data must
 * be the value. typmod: the dimensions required, or -1 for any. capacity must
 * be at least IMGFEAT_MAX_DIM (or the header's dim). Errors come in this
 * order: SHORT_HEADER, NO_DIMS / TOO_MANY_DIMS, TYPMOD, RESERVED, LENGTH,
 * then NAN / INF for the first bad element.
 */
extern ImgfeatStatus imgfeat_parse_binary(const uint8_t *data, size_t len, int32_t typmod,
										  float *values, int capacity, int *dim,
										  ImgfeatParseError *err);

#ifdef __cplusplus
}
#endif

#endif							/* IMGFEAT_PARSE_H */
