/*
 * imgfeat_io.c — imgfeat input/output: text, binary, typmod, array casts.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "common/shortest_dec.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"

#include "type/imgfeat.h"

ImgFeat *
imgfeat_new(int dim)
{
	ImgFeat    *result = (ImgFeat *) palloc0(IMGFEAT_SIZE(dim));

	SET_VARSIZE(result, IMGFEAT_SIZE(dim));
	result->dim = dim;
	return result;
}

void
imgfeat_check_dim(int dim)
{
	if (dim < 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("imgfeat must have at least 1 dimension")));
	if (dim > IMGFEAT_MAX_DIM)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("imgfeat cannot have more than %d dimensions", IMGFEAT_MAX_DIM),
				 errdetail("The value has %d dimensions.", dim)));
}

void
imgfeat_check_typmod(int dim, int32 typmod)
{
	if (typmod != -1 && dim != typmod)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("expected %d dimensions, not %d", typmod, dim)));
}

void
imgfeat_check_element(float4 value)
{
	if (isnan(value))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("NaN not allowed in imgfeat")));
	if (isinf(value))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("infinite value not allowed in imgfeat")));
}

/*
 * Reports a failure of the validity rule (imgfeat_values_check) as the input
 * function does; returns for any other status.
 */
static void
report_rule(ImgfeatStatus status, int dim)
{
	switch (status)
	{
		case IMGFEAT_ERR_NO_DIMS:
		case IMGFEAT_ERR_TOO_MANY_DIMS:
			imgfeat_check_dim(dim);
			break;
		case IMGFEAT_ERR_NAN:
			imgfeat_check_element(NAN);
			break;
		case IMGFEAT_ERR_INF:
			imgfeat_check_element(INFINITY);
			break;
		default:
			break;
	}
}

void
imgfeat_validate(const ImgFeat *v)
{
	report_rule(imgfeat_values_check(v->dim, v->x, NULL), v->dim);
}

void
imgfeat_check_same_dim(const ImgFeat *a, const ImgFeat *b)
{
	if (a->dim != b->dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("different imgfeat dimensions %d and %d", a->dim, b->dim)));
}

static void
syntax_error(const char *input, const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid input syntax for type imgfeat: \"%s\"", input),
			 errdetail("%s", why)));
}

/*
 * Reports a failed parse (imgfeat_parse.c) as the ereport a SQL user sees:
 * the same messages and SQLSTATEs as imgfeat_check_dim/_element.
 */
static void
parse_error(const char *input, const ImgfeatParseError *err)
{
	report_rule(err->status, err->dim);
	switch (err->status)
	{
		case IMGFEAT_ERR_NO_OPEN_BRACKET:
			syntax_error(input, "Value must start with \"[\".");
			break;
		case IMGFEAT_ERR_EXPECTED_NUMBER:
			syntax_error(input, "Expected a number.");
			break;
		case IMGFEAT_ERR_OUT_OF_RANGE:
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("\"%.*s\" is out of range for type imgfeat",
							(int) err->len, input + err->pos)));
			break;
		case IMGFEAT_ERR_EXPECTED_SEPARATOR:
			syntax_error(input, "Expected \",\" or \"]\" after a number.");
			break;
		case IMGFEAT_ERR_JUNK_AFTER:
			syntax_error(input, "Junk after closing \"]\".");
			break;
		default:
			break;
	}
	elog(ERROR, "unexpected imgfeat parse status %d", (int) err->status);
}

/* Text form: [1,2.5,-3e-2], whitespace allowed around the brackets and elements. */
PG_FUNCTION_INFO_V1(imgfeat_in);
Datum
imgfeat_in(PG_FUNCTION_ARGS)
{
	char	   *input = PG_GETARG_CSTRING(0);
	int32		typmod = PG_GETARG_INT32(2);
	int			capacity = imgfeat_text_dim_bound(input);
	float4	   *values = palloc(sizeof(float4) * capacity);
	int			dim;
	ImgfeatParseError err;
	ImgFeat    *result;

	if (imgfeat_parse_text(input, values, capacity, &dim, &err) != IMGFEAT_OK)
		parse_error(input, &err);
	imgfeat_check_typmod(dim, typmod);
	result = imgfeat_new(dim);
	memcpy(result->x, values, sizeof(float4) * dim);
	pfree(values);
	PG_RETURN_IMGFEAT_P(result);
}

/* Shortest text that reads back as the same float4 for every element. */
PG_FUNCTION_INFO_V1(imgfeat_out);
Datum
imgfeat_out(PG_FUNCTION_ARGS)
{
	ImgFeat    *v = PG_GETARG_IMGFEAT_P(0);
	char	   *buf = palloc(2 + (FLOAT_SHORTEST_DECIMAL_LEN + 1) * v->dim);
	char	   *p = buf;

	*p++ = '[';
	for (int i = 0; i < v->dim; i++)
	{
		if (i > 0)
			*p++ = ',';
		p += float_to_shortest_decimal_bufn(v->x[i], p);
	}
	*p++ = ']';
	*p = '\0';
	PG_FREE_IF_COPY(v, 0);
	PG_RETURN_CSTRING(buf);
}

PG_FUNCTION_INFO_V1(imgfeat_typmod_in);
Datum
imgfeat_typmod_in(PG_FUNCTION_ARGS)
{
	ArrayType  *ta = PG_GETARG_ARRAYTYPE_P(0);
	int32	   *tl;
	int			n;

	tl = ArrayGetIntegerTypmods(ta, &n);
	if (n != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid type modifier"),
				 errdetail("imgfeat takes one modifier: the number of dimensions, as in imgfeat(512).")));
	if (tl[0] < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("dimensions for type imgfeat must be at least 1")));
	if (tl[0] > IMGFEAT_MAX_DIM)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("dimensions for type imgfeat cannot exceed %d", IMGFEAT_MAX_DIM)));
	PG_RETURN_INT32(tl[0]);
}

PG_FUNCTION_INFO_V1(imgfeat_typmod_out);
Datum
imgfeat_typmod_out(PG_FUNCTION_ARGS)
{
	int32		typmod = PG_GETARG_INT32(0);

	PG_RETURN_CSTRING(typmod < 0 ? pstrdup("") : psprintf("(%d)", typmod));
}

/* Binary form: int16 dim, int16 unused (0), then dim float4, network order. */
PG_FUNCTION_INFO_V1(imgfeat_recv);
Datum
imgfeat_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	int32		typmod = PG_GETARG_INT32(2);
	const uint8 *data = (const uint8 *) buf->data + buf->cursor;
	size_t		len = buf->len - buf->cursor;
	/* a valid value has exactly this many elements */
	int			capacity = len < 4 ? 0 : (int) Min((len - 4) / sizeof(float4), IMGFEAT_MAX_DIM);
	ImgFeat    *result = imgfeat_new(capacity);
	int			dim;
	ImgfeatParseError err;

	if (imgfeat_parse_binary(data, len, typmod, result->x, capacity, &dim, &err) != IMGFEAT_OK)
	{
		report_rule(err.status, err.dim);
		switch (err.status)
		{
			case IMGFEAT_ERR_SHORT_HEADER:	/* as pq_getmsgint says it */
				ereport(ERROR,
						(errcode(ERRCODE_PROTOCOL_VIOLATION),
						 errmsg("insufficient data left in message")));
				break;
			case IMGFEAT_ERR_TYPMOD:
				imgfeat_check_typmod(err.dim, err.value);
				break;
			case IMGFEAT_ERR_RESERVED:
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
						 errmsg("invalid binary imgfeat: reserved field must be 0, not %d", err.value)));
				break;
			case IMGFEAT_ERR_LENGTH:
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
						 errmsg("invalid binary imgfeat: header says %d dimensions but %d bytes follow",
								err.dim, err.value)));
				break;
			default:
				break;
		}
		elog(ERROR, "unexpected imgfeat parse status %d", (int) err.status);
	}
	Assert(dim == capacity);
	buf->cursor = buf->len;
	PG_RETURN_IMGFEAT_P(result);
}

PG_FUNCTION_INFO_V1(imgfeat_send);
Datum
imgfeat_send(PG_FUNCTION_ARGS)
{
	ImgFeat    *v = PG_GETARG_IMGFEAT_P(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendint(&buf, v->dim, sizeof(int16));
	pq_sendint(&buf, 0, sizeof(int16));
	for (int i = 0; i < v->dim; i++)
		pq_sendfloat4(&buf, v->x[i]);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/* imgfeat(imgfeat, typmod, explicit): length coercion, used by imgfeat(n) columns. */
PG_FUNCTION_INFO_V1(imgfeat_coerce);
Datum
imgfeat_coerce(PG_FUNCTION_ARGS)
{
	ImgFeat    *v = PG_GETARG_IMGFEAT_P(0);

	imgfeat_check_typmod(v->dim, PG_GETARG_INT32(1));
	PG_RETURN_IMGFEAT_P(v);
}

static float4
float8_to_element(float8 value)
{
	float4		f = (float4) value;

	/* as imgfeat_in: too large for float4, or too small and not zero */
	if ((isinf(f) && !isinf(value)) || (f == 0 && value != 0))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("value %g is out of range for type imgfeat", value)));
	imgfeat_check_element(f);
	return f;
}

/* Casts real[], double precision[], numeric[], integer[] -> imgfeat. */
PG_FUNCTION_INFO_V1(imgfeat_from_array);
Datum
imgfeat_from_array(PG_FUNCTION_ARGS)
{
	ArrayType  *array = PG_GETARG_ARRAYTYPE_P(0);
	int32		typmod = PG_GETARG_INT32(1);
	Oid			elemtype = ARR_ELEMTYPE(array);
	int16		typlen;
	bool		typbyval;
	char		typalign;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	ImgFeat    *result;

	if (ARR_NDIM(array) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("array must be 1-D to become an imgfeat")));
	if (elemtype != FLOAT4OID && elemtype != FLOAT8OID &&
		elemtype != INT4OID && elemtype != NUMERICOID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("unsupported array element type %s for imgfeat", format_type_be(elemtype))));

	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	deconstruct_array(array, elemtype, typlen, typbyval, typalign, &elems, &nulls, &n);
	imgfeat_check_dim(n);
	imgfeat_check_typmod(n, typmod);

	result = imgfeat_new(n);
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("array must not contain nulls to become an imgfeat")));
		switch (elemtype)
		{
			case FLOAT4OID:
				result->x[i] = DatumGetFloat4(elems[i]);
				imgfeat_check_element(result->x[i]);
				break;
			case FLOAT8OID:
				result->x[i] = float8_to_element(DatumGetFloat8(elems[i]));
				break;
			case INT4OID:
				result->x[i] = (float4) DatumGetInt32(elems[i]);
				break;
			case NUMERICOID:
				result->x[i] = float8_to_element(
												 DatumGetFloat8(DirectFunctionCall1(numeric_float8, elems[i])));
				break;
		}
	}
	PG_RETURN_IMGFEAT_P(result);
}

/* Cast imgfeat -> real[]. */
PG_FUNCTION_INFO_V1(imgfeat_to_float4_array);
Datum
imgfeat_to_float4_array(PG_FUNCTION_ARGS)
{
	ImgFeat    *v = PG_GETARG_IMGFEAT_P(0);
	Datum	   *elems = palloc(sizeof(Datum) * v->dim);

	for (int i = 0; i < v->dim; i++)
		elems[i] = Float4GetDatum(v->x[i]);
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, v->dim, FLOAT4OID, sizeof(float4), true, TYPALIGN_INT));
}
