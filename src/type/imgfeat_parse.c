/*
 * imgfeat_parse.c — imgfeat's validity rule and its text and binary parsers,
 * plain C (see imgfeat_parse.h). No PostgreSQL header: the fuzz harnesses in
 * fuzz/ link this file alone.
 */
#include "type/imgfeat_parse.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The two halves of the rule; imgfeat_values_check is their only composition. */
static inline ImgfeatStatus
dim_status(int dim)
{
	if (dim < 1)
		return IMGFEAT_ERR_NO_DIMS;
	if (dim > IMGFEAT_MAX_DIM)
		return IMGFEAT_ERR_TOO_MANY_DIMS;
	return IMGFEAT_OK;
}

static inline ImgfeatStatus
element_status(float value)
{
	if (isnan(value))
		return IMGFEAT_ERR_NAN;
	if (isinf(value))
		return IMGFEAT_ERR_INF;
	return IMGFEAT_OK;
}

ImgfeatStatus
imgfeat_values_check(int dim, const float *x, int *bad_index)
{
	ImgfeatStatus s = dim_status(dim);

	if (s != IMGFEAT_OK)
		return s;
	for (int i = 0; i < dim; i++)
	{
		s = element_status(x[i]);
		if (s != IMGFEAT_OK)
		{
			if (bad_index)
				*bad_index = i;
			return s;
		}
	}
	return IMGFEAT_OK;
}

bool
imgfeat_values_valid(int dim, const float *x)
{
	return imgfeat_values_check(dim, x, NULL) == IMGFEAT_OK;
}

static inline bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

int
imgfeat_text_dim_bound(const char *input)
{
	int			n = 1;

	for (const char *p = input; *p && n < IMGFEAT_MAX_DIM; p++)
		n += *p == ',';
	return n;
}

static ImgfeatStatus
fail(ImgfeatParseError *err, ImgfeatStatus status, const char *input, const char *at)
{
	err->status = status;
	err->pos = (size_t) (at - input);
	return status;
}

ImgfeatStatus
imgfeat_parse_text(const char *input, float *values, int capacity, int *dim,
				   ImgfeatParseError *err)
{
	const char *p = input;
	int			n = 0;

	memset(err, 0, sizeof(*err));
	*dim = 0;
	while (is_space(*p))
		p++;
	if (*p != '[')
		return fail(err, IMGFEAT_ERR_NO_OPEN_BRACKET, input, p);
	p++;
	while (is_space(*p))
		p++;
	if (*p == ']')
		return fail(err, IMGFEAT_ERR_NO_DIMS, input, p);

	for (;;)
	{
		char	   *end;
		float		value;
		ImgfeatStatus s;

		/* a 16001st element is refused before it is read */
		if (dim_status(n + 1) != IMGFEAT_OK)
		{
			err->dim = n + 1;
			return fail(err, dim_status(n + 1), input, p);
		}
		while (is_space(*p))
			p++;
		if (*p == '\0' || *p == ',' || *p == ']')
			return fail(err, IMGFEAT_ERR_EXPECTED_NUMBER, input, p);

		errno = 0;
		value = strtof(p, &end);
		if (end == p)
			return fail(err, IMGFEAT_ERR_EXPECTED_NUMBER, input, p);
		if (errno == ERANGE && (value == 0 || isinf(value)))
		{
			err->len = (size_t) (end - p);
			return fail(err, IMGFEAT_ERR_OUT_OF_RANGE, input, p);
		}
		s = element_status(value);
		if (s != IMGFEAT_OK)
		{
			err->index = n;
			return fail(err, s, input, p);
		}
		if (n >= capacity)
			return fail(err, IMGFEAT_ERR_CAPACITY, input, p);
		values[n++] = value;

		p = end;
		while (is_space(*p))
			p++;
		if (*p == ',')
		{
			p++;
			continue;
		}
		if (*p == ']')
		{
			p++;
			break;
		}
		return fail(err, IMGFEAT_ERR_EXPECTED_SEPARATOR, input, p);
	}
	while (is_space(*p))
		p++;
	if (*p != '\0')
		return fail(err, IMGFEAT_ERR_JUNK_AFTER, input, p);
	*dim = n;
	return IMGFEAT_OK;
}

static inline uint32_t
read_be32(const uint8_t *p)
{
	return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

ImgfeatStatus
imgfeat_parse_binary(const uint8_t *data, size_t len, int32_t typmod,
					 float *values, int capacity, int *dim, ImgfeatParseError *err)
{
	int16_t		hdim;
	int16_t		reserved;
	ImgfeatStatus s;

	memset(err, 0, sizeof(*err));
	*dim = 0;
	if (len < 4)
	{
		err->pos = len;
		return err->status = IMGFEAT_ERR_SHORT_HEADER;
	}
	hdim = (int16_t) (uint16_t) (data[0] << 8 | data[1]);
	reserved = (int16_t) (uint16_t) (data[2] << 8 | data[3]);
	err->dim = hdim;
	s = dim_status(hdim);
	if (s != IMGFEAT_OK)
		return err->status = s;
	if (typmod != -1 && hdim != typmod)
	{
		err->value = typmod;
		return err->status = IMGFEAT_ERR_TYPMOD;
	}
	if (reserved != 0)
	{
		err->pos = 2;
		err->value = reserved;
		return err->status = IMGFEAT_ERR_RESERVED;
	}
	if (len - 4 != sizeof(float) * (size_t) hdim)
	{
		err->pos = 4;
		err->value = len - 4 > (size_t) INT32_MAX ? INT32_MAX : (int) (len - 4);
		return err->status = IMGFEAT_ERR_LENGTH;
	}
	if (hdim > capacity)
		return err->status = IMGFEAT_ERR_CAPACITY;
	for (int i = 0; i < hdim; i++)
	{
		uint32_t	bits = read_be32(data + 4 + 4 * (size_t) i);

		memcpy(&values[i], &bits, sizeof(float));
		s = element_status(values[i]);
		if (s != IMGFEAT_OK)
		{
			err->pos = 4 + 4 * (size_t) i;
			err->index = i;
			return err->status = s;
		}
	}
	*dim = hdim;
	return err->status = IMGFEAT_OK;
}
