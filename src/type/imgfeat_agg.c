/*
 * imgfeat_agg.c — avg(imgfeat).
 *
 * The state is a float8[] {n, sum_1, ..., sum_dim}: an ordinary array type,
 * so parallel aggregation needs no serialisation functions. Sums are double
 * so averaging many float4 vectors does not lose precision.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/array.h"

#include "type/imgfeat.h"

static void
invalid_state(const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid avg(imgfeat) state array"),
			 errdetail("%s", why)));
}

static void
not_in_aggregate(const char *function)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("%s can only be called by avg(imgfeat)", function)));
}

/*
 * The sums of a state, after checking everything the other functions rely
 * on: the functions are not executable by PUBLIC, but an owner may still
 * call them with any array.
 */
static float8 *
state_values(ArrayType *state, int *length)
{
	float8	   *sums;
	float8		n;

	if (ARR_NDIM(state) != 1 || ARR_HASNULL(state) || ARR_ELEMTYPE(state) != FLOAT8OID ||
		ARR_LBOUND(state)[0] != 1)
		invalid_state("The state must be a one-dimensional float8 array without NULLs.");
	*length = ARR_DIMS(state)[0];
	if (*length < 1 || *length > IMGFEAT_MAX_DIM + 1)
		invalid_state("The state must hold a row count and at most 16000 sums.");
	sums = (float8 *) ARR_DATA_PTR(state);
	n = sums[0];
	if (!(n >= 0 && n <= 9007199254740992.0) || n != floor(n))	/* 2^53 */
		invalid_state("The row count must be a whole number.");
	if (n > 0 && *length < 2)
		invalid_state("A state with rows must hold their sums.");
	return sums;
}

static ArrayType *
new_state(int dim, MemoryContext context)
{
	MemoryContext old = MemoryContextSwitchTo(context);
	Datum	   *zeros = palloc(sizeof(Datum) * (dim + 1));
	ArrayType  *state;

	for (int i = 0; i <= dim; i++)
		zeros[i] = Float8GetDatum(0);
	state = construct_array(zeros, dim + 1, FLOAT8OID, sizeof(float8), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
	MemoryContextSwitchTo(old);
	return state;
}

static void
check_state_dim(int have, int want)
{
	if (have != want)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("different imgfeat dimensions %d and %d", have, want)));
}

/*
 * Adds one vector. Inside an aggregate the state is ours, so it is updated in
 * place instead of copying dim+1 doubles per row.
 */
PG_FUNCTION_INFO_V1(imgfeat_avg_accum);
Datum
imgfeat_avg_accum(PG_FUNCTION_ARGS)
{
	ArrayType  *state = PG_GETARG_ARRAYTYPE_P(0);
	ImgFeat    *v = PG_GETARG_IMGFEAT_P(1);
	MemoryContext aggcontext;
	float8	   *sums;
	int			length;

	if (!AggCheckCallContext(fcinfo, &aggcontext))
		not_in_aggregate("imgfeat_avg_accum");

	sums = state_values(state, &length);
	if (sums[0] == 0)
	{
		/* first row: the initial state {0} has no room yet */
		state = new_state(v->dim, aggcontext);
		sums = state_values(state, &length);
	}
	check_state_dim(length - 1, v->dim);

	sums[0] += 1;
	for (int i = 0; i < v->dim; i++)
		sums[i + 1] += v->x[i];
	PG_RETURN_ARRAYTYPE_P(state);
}

PG_FUNCTION_INFO_V1(imgfeat_avg_combine);
Datum
imgfeat_avg_combine(PG_FUNCTION_ARGS)
{
	ArrayType  *state1 = PG_GETARG_ARRAYTYPE_P(0);
	ArrayType  *state2 = PG_GETARG_ARRAYTYPE_P(1);
	MemoryContext aggcontext;
	float8	   *sums1;
	float8	   *sums2;
	int			length1;
	int			length2;

	if (!AggCheckCallContext(fcinfo, &aggcontext))
		not_in_aggregate("imgfeat_avg_combine");

	sums1 = state_values(state1, &length1);
	sums2 = state_values(state2, &length2);
	if (sums2[0] == 0)
		PG_RETURN_ARRAYTYPE_P(state1);
	if (sums1[0] == 0)
	{
		state1 = new_state(length2 - 1, aggcontext);
		sums1 = state_values(state1, &length1);
	}
	check_state_dim(length1 - 1, length2 - 1);

	for (int i = 0; i < length1; i++)
		sums1[i] += sums2[i];
	PG_RETURN_ARRAYTYPE_P(state1);
}

PG_FUNCTION_INFO_V1(imgfeat_avg_final);
Datum
imgfeat_avg_final(PG_FUNCTION_ARGS)
{
	ArrayType  *state = PG_GETARG_ARRAYTYPE_P(0);
	int			length;
	float8	   *sums = state_values(state, &length);
	ImgFeat    *result;

	if (sums[0] == 0)
		PG_RETURN_NULL();

	result = imgfeat_new(length - 1);
	/*
	 * A mean of finite float4 values is itself a finite float4; a state not
	 * made by imgfeat_avg_accum may hold anything, so the result is checked
	 * like any other new value.
	 */
	for (int i = 0; i < length - 1; i++)
		result->x[i] = (float4) (sums[i + 1] / sums[0]);
	imgfeat_validate(result);
	PG_RETURN_IMGFEAT_P(result);
}
