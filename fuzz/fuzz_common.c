/* fuzz_common.c — see fuzz_common.h. */
#include "fuzz_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef HAVE_PG_SHORTEST_DEC
/* common/shortest_dec.h, from libpgcommon: what imgfeat_out calls */
#define FLOAT_SHORTEST_DECIMAL_LEN 16
int			float_to_shortest_decimal_bufn(float f, char *result);
#endif

void
fuzz_fail(const char *file, int line, const char *what)
{
	fprintf(stderr, "\n%s:%d: invariant broken: %s\n", file, line, what);
	abort();
}

char *
fuzz_format_text(int dim, const float *x, TextStyle style)
{
	/* as imgfeat_out: "[" + dim numbers of at most 16 characters + "," each + "]" */
	char	   *buf = malloc(2 + (size_t) 17 * dim + 1);
	char	   *p = buf;

	*p++ = '[';
	for (int i = 0; i < dim; i++)
	{
		if (i > 0)
			*p++ = ',';
#ifdef HAVE_PG_SHORTEST_DEC
		if (style == TEXT_SHORTEST)
		{
			int			n = float_to_shortest_decimal_bufn(x[i], p);

			FUZZ_CHECK(n > 0 && n <= FLOAT_SHORTEST_DECIMAL_LEN - 1);
			p += n;
			continue;
		}
#endif
		p += snprintf(p, 17, "%.9g", (double) x[i]);
	}
	*p++ = ']';
	*p = '\0';
	return buf;
}

uint8_t *
fuzz_format_binary(int dim, const float *x, size_t *len)
{
	uint8_t    *buf = malloc(4 + 4 * (size_t) dim);

	buf[0] = (uint8_t) ((unsigned) dim >> 8);
	buf[1] = (uint8_t) dim;
	buf[2] = buf[3] = 0;
	for (int i = 0; i < dim; i++)
	{
		uint32_t	bits;

		memcpy(&bits, &x[i], 4);
		for (int b = 0; b < 4; b++)
			buf[4 + 4 * i + b] = (uint8_t) (bits >> (24 - 8 * b));
	}
	*len = 4 + 4 * (size_t) dim;
	return buf;
}

void
fuzz_check_round_trips(int dim, const float *x)
{
	float	   *back = malloc(sizeof(float) * (size_t) dim);
	int			dim2;
	ImgfeatParseError err;

	FUZZ_CHECK(imgfeat_values_valid(dim, x));
	for (int style = 0; style < TEXT_STYLES; style++)
	{
		char	   *text = fuzz_format_text(dim, x, TEXT_STYLES == 1 ? TEXT_PRINTF_9G : (TextStyle) style);
		int			cap = imgfeat_text_dim_bound(text);

		FUZZ_CHECK(cap == dim);
		FUZZ_CHECK(imgfeat_parse_text(text, back, cap, &dim2, &err) == IMGFEAT_OK);
		FUZZ_CHECK(dim2 == dim);
		FUZZ_CHECK(memcmp(back, x, sizeof(float) * (size_t) dim) == 0);
		free(text);
	}
	{
		size_t		len;
		uint8_t    *bin = fuzz_format_binary(dim, x, &len);

		FUZZ_CHECK(imgfeat_parse_binary(bin, len, -1, back, dim, &dim2, &err) == IMGFEAT_OK);
		FUZZ_CHECK(dim2 == dim);
		FUZZ_CHECK(memcmp(back, x, sizeof(float) * (size_t) dim) == 0);
		/* the typmod check */
		FUZZ_CHECK(imgfeat_parse_binary(bin, len, dim, back, dim, &dim2, &err) == IMGFEAT_OK);
		FUZZ_CHECK(imgfeat_parse_binary(bin, len, dim + 1, back, dim, &dim2, &err) == IMGFEAT_ERR_TYPMOD);
		free(bin);
	}
	free(back);
}

int
fuzz_text_status_ok(ImgfeatStatus s)
{
	switch (s)
	{
		case IMGFEAT_ERR_NO_DIMS:
		case IMGFEAT_ERR_TOO_MANY_DIMS:
		case IMGFEAT_ERR_NAN:
		case IMGFEAT_ERR_INF:
		case IMGFEAT_ERR_NO_OPEN_BRACKET:
		case IMGFEAT_ERR_EXPECTED_NUMBER:
		case IMGFEAT_ERR_OUT_OF_RANGE:
		case IMGFEAT_ERR_EXPECTED_SEPARATOR:
		case IMGFEAT_ERR_JUNK_AFTER:
			return 1;
		default:
			return 0;
	}
}

int
fuzz_binary_status_ok(ImgfeatStatus s)
{
	switch (s)
	{
		case IMGFEAT_ERR_SHORT_HEADER:
		case IMGFEAT_ERR_NO_DIMS:
		case IMGFEAT_ERR_TOO_MANY_DIMS:
		case IMGFEAT_ERR_TYPMOD:
		case IMGFEAT_ERR_RESERVED:
		case IMGFEAT_ERR_LENGTH:
		case IMGFEAT_ERR_NAN:
		case IMGFEAT_ERR_INF:
			return 1;
		default:
			return 0;
	}
}
