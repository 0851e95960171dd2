/*
 * imgexamples.c — several examples (imgexamples.h): the type's text form,
 * imgsearch_examples(), the best-score operators and
 * imgsearch_average_example().
 *
 * The score's arithmetic is imgs_keys_many's (index/distance_core), which
 * the index scans call too, so that an index scan and the operator agree
 * to the bit.
 */
#include "postgres.h"

#include <ctype.h>
#include <math.h>

#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "index/distance_core.h"
#include "type/imgexamples.h"
#include "type/imgfeat.h"

/* imgfeat's text form (imgfeat_io.c) */
extern Datum imgfeat_in(PG_FUNCTION_ARGS);
extern Datum imgfeat_out(PG_FUNCTION_ARGS);

void
imgexamples_check(const ImgExamples *ex)
{
	int			n = ex->n_pos + ex->n_neg;

	if (ex->dim < 1 || ex->dim > IMGFEAT_MAX_DIM || ex->n_pos < 1 || ex->n_neg < 0 ||
		n > IMGEXAMPLES_MAX || ex->unused != 0 ||
		VARSIZE_ANY(ex) != IMGEXAMPLES_SIZE(n, ex->dim))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("malformed imgexamples value")));
	for (Size i = 0; i < (Size) n * ex->dim; i++)
		if (!isfinite(ex->x[i]))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("malformed imgexamples value"),
					 errdetail("An element is not finite.")));
}

/* The vectors of an imgfeat[] (any shape), each checked; what names them in errors. */
static ImgFeat **
array_vectors(ArrayType *array, const char *what, int *n)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;
	Datum	   *elems;
	bool	   *nulls;
	ImgFeat   **v;

	get_typlenbyvalalign(ARR_ELEMTYPE(array), &typlen, &typbyval, &typalign);
	deconstruct_array(array, ARR_ELEMTYPE(array), typlen, typbyval, typalign, &elems, &nulls, n);
	v = palloc(sizeof(ImgFeat *) * Max(*n, 1));
	for (int i = 0; i < *n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not contain NULL", what)));
		v[i] = DatumGetImgFeatP(elems[i]);
		imgfeat_validate(v[i]);
	}
	return v;
}

/* Errors (22000) unless every vector has dimension dim. */
static void
check_dims(ImgFeat **v, int n, int dim)
{
	for (int i = 0; i < n; i++)
		if (v[i]->dim != dim)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("different imgfeat dimensions %d and %d", dim, v[i]->dim),
					 errdetail("Every example must have the same dimension.")));
}

static void
check_positives(int n_pos)
{
	if (n_pos < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("several examples need at least one positive example")));
}

static ImgExamples *
examples_new(ImgFeat **pos, int n_pos, ImgFeat **neg, int n_neg)
{
	int			dim;
	ImgExamples *ex;

	check_positives(n_pos);
	if (n_pos + n_neg > IMGEXAMPLES_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many examples: %d", n_pos + n_neg),
				 errdetail("At most %d positive and negative examples together.", IMGEXAMPLES_MAX)));
	dim = pos[0]->dim;
	check_dims(pos, n_pos, dim);
	check_dims(neg, n_neg, dim);
	ex = palloc0(IMGEXAMPLES_SIZE(n_pos + n_neg, dim));
	SET_VARSIZE(ex, IMGEXAMPLES_SIZE(n_pos + n_neg, dim));
	ex->dim = dim;
	ex->n_pos = n_pos;
	ex->n_neg = n_neg;
	for (int i = 0; i < n_pos + n_neg; i++)
		memcpy(ex->x + (Size) i * dim, (i < n_pos ? pos[i] : neg[i - n_pos])->x, sizeof(float4) * dim);
	return ex;
}

/*
 * imgsearch_examples(positives imgfeat[], negatives imgfeat[] DEFAULT '{}')
 *   RETURNS imgexamples
 */
PG_FUNCTION_INFO_V1(imgsearch_examples);
Datum
imgsearch_examples(PG_FUNCTION_ARGS)
{
	int			n_pos;
	int			n_neg;
	ImgFeat   **pos = array_vectors(PG_GETARG_ARRAYTYPE_P(0), "positives", &n_pos);
	ImgFeat   **neg = array_vectors(PG_GETARG_ARRAYTYPE_P(1), "negatives", &n_neg);

	PG_RETURN_POINTER(examples_new(pos, n_pos, neg, n_neg));
}

/*
 * Text form: the positives, then "/" and the negatives, each an imgfeat's
 * text, separated by ";":  [1,2];[3,4] / [5,6]  (no negatives: "[1,2] /").
 */
static int
parse_list(char *text, ImgFeat **out, int cap, const char *input)
{
	int			n = 0;
	char	   *save = NULL;

	for (char *part = strtok_r(text, ";", &save); part; part = strtok_r(NULL, ";", &save))
	{
		while (isspace((unsigned char) *part))
			part++;
		if (*part == '\0')
		{
			/* "[1] /" has no negatives; an empty item elsewhere is an error */
			if (n == 0 && strtok_r(NULL, ";", &save) == NULL)
				break;
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid input syntax for type imgexamples: \"%s\"", input),
					 errdetail("An example is empty.")));
		}
		if (n == cap)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("too many examples"),
					 errdetail("At most %d positive and negative examples together.", IMGEXAMPLES_MAX)));
		out[n++] = DatumGetImgFeatP(DirectFunctionCall3(imgfeat_in, CStringGetDatum(part),
														ObjectIdGetDatum(InvalidOid),
														Int32GetDatum(-1)));
	}
	return n;
}

PG_FUNCTION_INFO_V1(imgexamples_in);
Datum
imgexamples_in(PG_FUNCTION_ARGS)
{
	char	   *input = PG_GETARG_CSTRING(0);
	char	   *copy = pstrdup(input);
	char	   *slash = strchr(copy, '/');
	ImgFeat    *pos[IMGEXAMPLES_MAX];
	ImgFeat    *neg[IMGEXAMPLES_MAX];
	int			n_pos;
	int			n_neg = 0;

	if (slash == NULL || strchr(slash + 1, '/') != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type imgexamples: \"%s\"", input),
				 errdetail("Expected positives, \"/\", negatives, as in \"[1,2];[3,4] / [5,6]\".")));
	*slash = '\0';
	n_pos = parse_list(copy, pos, IMGEXAMPLES_MAX, input);
	n_neg = parse_list(slash + 1, neg, IMGEXAMPLES_MAX - Min(n_pos, IMGEXAMPLES_MAX), input);
	PG_RETURN_POINTER(examples_new(pos, n_pos, neg, n_neg));
}

PG_FUNCTION_INFO_V1(imgexamples_out);
Datum
imgexamples_out(PG_FUNCTION_ARGS)
{
	ImgExamples *ex = PG_GETARG_IMGEXAMPLES_P(0);
	ImgFeat    *v;
	StringInfoData buf;

	imgexamples_check(ex);
	v = imgfeat_new(ex->dim);
	initStringInfo(&buf);
	for (int i = 0; i < ex->n_pos + ex->n_neg; i++)
	{
		if (i > 0)
			appendStringInfoString(&buf, i == ex->n_pos ? " / " : ";");
		memcpy(v->x, ex->x + (Size) i * ex->dim, sizeof(float4) * ex->dim);
		appendStringInfoString(&buf, DatumGetCString(DirectFunctionCall1(imgfeat_out,
																		 PointerGetDatum(v))));
	}
	if (ex->n_neg == 0)
		appendStringInfoString(&buf, " /");
	PG_RETURN_CSTRING(buf.data);
}

/*
 * Binary form, network order: int16 n_pos, int16 n_neg, int16 dim, int16
 * reserved (0), then (n_pos + n_neg) x dim float4, positives first.
 */
PG_FUNCTION_INFO_V1(imgexamples_recv);
Datum
imgexamples_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	int			n_pos = (int16) pq_getmsgint(buf, sizeof(int16));
	int			n_neg = (int16) pq_getmsgint(buf, sizeof(int16));
	int			dim = (int16) pq_getmsgint(buf, sizeof(int16));
	int			reserved = (int16) pq_getmsgint(buf, sizeof(int16));
	int			n = n_pos + n_neg;
	ImgExamples *ex;

	check_positives(n_pos);
	if (n_neg < 0 || n > IMGEXAMPLES_MAX || reserved != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid binary imgexamples: %d positives, %d negatives, reserved field %d",
						n_pos, n_neg, reserved),
				 errdetail("At most %d examples together; the reserved field is 0.", IMGEXAMPLES_MAX)));
	imgfeat_check_dim(dim);
	if ((Size) (buf->len - buf->cursor) != sizeof(float4) * (Size) n * dim)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid binary imgexamples: %d examples of %d dimensions but %d bytes follow",
						n, dim, buf->len - buf->cursor)));
	ex = palloc0(IMGEXAMPLES_SIZE(n, dim));
	SET_VARSIZE(ex, IMGEXAMPLES_SIZE(n, dim));
	ex->dim = dim;
	ex->n_pos = n_pos;
	ex->n_neg = n_neg;
	for (Size i = 0; i < (Size) n * dim; i++)
	{
		ex->x[i] = pq_getmsgfloat4(buf);
		imgfeat_check_element(ex->x[i]);
	}
	PG_RETURN_POINTER(ex);
}

PG_FUNCTION_INFO_V1(imgexamples_send);
Datum
imgexamples_send(PG_FUNCTION_ARGS)
{
	ImgExamples *ex = PG_GETARG_IMGEXAMPLES_P(0);
	StringInfoData buf;

	imgexamples_check(ex);
	pq_begintypsend(&buf);
	pq_sendint16(&buf, ex->n_pos);
	pq_sendint16(&buf, ex->n_neg);
	pq_sendint16(&buf, ex->dim);
	pq_sendint16(&buf, 0);
	for (Size i = 0; i < (Size) (ex->n_pos + ex->n_neg) * ex->dim; i++)
		pq_sendfloat4(&buf, ex->x[i]);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/* The best score of x against the examples (imgs_examples_score), as an index scan computes it. */
static double
examples_score(ImgFeat *x, ImgExamples *ex, int metric)
{
	int			n = ex->n_pos + ex->n_neg;
	double	   *norms = palloc(sizeof(double) * n);
	ImgsKeyQuery query = {0};
	double		score;

	imgexamples_check(ex);
	if (x->dim != ex->dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("different imgfeat dimensions %d and %d", x->dim, ex->dim)));
	for (int e = 0; e < n; e++)
		norms[e] = imgs_norm_squared(ex->x + (Size) e * ex->dim, ex->dim);
	query.metric = metric;
	query.x = ex->x;
	query.norm_sq = norms[0];
	query.n_pos = ex->n_pos;
	query.n_neg = ex->n_neg;
	query.examples = ex->x;
	query.examples_norm_sq = norms;
	imgs_keys_many(&query, x->x, x->dim, 1, NULL, &score);
	pfree(norms);
	return score;
}

/* imgfeat <-> imgexamples */
PG_FUNCTION_INFO_V1(imgfeat_examples_l2_score);
Datum
imgfeat_examples_l2_score(PG_FUNCTION_ARGS)
{
	PG_RETURN_FLOAT8(examples_score(PG_GETARG_IMGFEAT_P(0), PG_GETARG_IMGEXAMPLES_P(1),
									IMGS_METRIC_L2));
}

/* imgfeat <=> imgexamples */
PG_FUNCTION_INFO_V1(imgfeat_examples_cosine_score);
Datum
imgfeat_examples_cosine_score(PG_FUNCTION_ARGS)
{
	PG_RETURN_FLOAT8(examples_score(PG_GETARG_IMGFEAT_P(0), PG_GETARG_IMGEXAMPLES_P(1),
									IMGS_METRIC_COSINE));
}

/* mean(v[0..n)) into out[dim], in double: the sum in order, then one division */
static void
mean_of(ImgFeat **v, int n, int dim, double *out)
{
	for (int i = 0; i < dim; i++)
	{
		double		sum = 0;

		for (int k = 0; k < n; k++)
			sum += v[k]->x[i];
		out[i] = sum / n;
	}
}

/*
 * imgsearch_average_example(positives imgfeat[], negatives imgfeat[] DEFAULT '{}',
 *   negative_weight float8 DEFAULT 1) RETURNS imgfeat
 *
 * Rocchio's query: mean(positives) - negative_weight * mean(negatives),
 * each element in double (the sums in array order), rounded to float4 once.
 * Not normalised: under <=> the length does not matter, and on
 * unit-length rows <-> ranks by direction alone too (l2_normalize() gives
 * unit length where distances should be comparable with other queries').
 */
PG_FUNCTION_INFO_V1(imgsearch_average_example);
Datum
imgsearch_average_example(PG_FUNCTION_ARGS)
{
	int			n_pos;
	int			n_neg;
	ImgFeat   **pos = array_vectors(PG_GETARG_ARRAYTYPE_P(0), "positives", &n_pos);
	ImgFeat   **neg = array_vectors(PG_GETARG_ARRAYTYPE_P(1), "negatives", &n_neg);
	float8		weight = PG_GETARG_FLOAT8(2);
	int			dim;
	double	   *mean_pos;
	double	   *mean_neg;
	ImgFeat    *result;

	check_positives(n_pos);
	if (!isfinite(weight) || weight < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("negative_weight must be a finite number >= 0, not %g", weight)));
	dim = pos[0]->dim;
	check_dims(pos, n_pos, dim);
	check_dims(neg, n_neg, dim);
	mean_pos = palloc(sizeof(double) * dim);
	mean_neg = palloc(sizeof(double) * dim);
	mean_of(pos, n_pos, dim, mean_pos);
	if (n_neg > 0)
		mean_of(neg, n_neg, dim, mean_neg);
	result = imgfeat_new(dim);
	for (int i = 0; i < dim; i++)
	{
		double		value = n_neg > 0 ? mean_pos[i] - weight * mean_neg[i] : mean_pos[i];

		result->x[i] = (float4) value;
		if (isinf(result->x[i]))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("the average example is out of range for type imgfeat"),
					 errdetail("Element %d is %g.", i + 1, value)));
	}
	PG_RETURN_IMGFEAT_P(result);
}
