/*
 * imgfeat_ops.c — distances and vector functions over imgfeat.
 *
 * The arithmetic lives in index/distance_core (shared with the index
 * scans); this file only unpacks arguments and checks dimensions.
 */
#include "postgres.h"

#include <math.h>

#include "fmgr.h"

#include "index/distance_core.h"
#include "type/imgfeat.h"

/* <-> : Euclidean distance */
PG_FUNCTION_INFO_V1(imgfeat_l2_distance);
Datum
imgfeat_l2_distance(PG_FUNCTION_ARGS)
{
	ImgFeat    *a = PG_GETARG_IMGFEAT_P(0);
	ImgFeat    *b = PG_GETARG_IMGFEAT_P(1);

	imgfeat_check_same_dim(a, b);
	PG_RETURN_FLOAT8(sqrt(imgs_l2_squared(a->x, b->x, a->dim)));
}

/* Squared Euclidean distance: same order as <->, no square root. */
PG_FUNCTION_INFO_V1(imgfeat_l2_squared_distance);
Datum
imgfeat_l2_squared_distance(PG_FUNCTION_ARGS)
{
	ImgFeat    *a = PG_GETARG_IMGFEAT_P(0);
	ImgFeat    *b = PG_GETARG_IMGFEAT_P(1);

	imgfeat_check_same_dim(a, b);
	PG_RETURN_FLOAT8(imgs_l2_squared(a->x, b->x, a->dim));
}

PG_FUNCTION_INFO_V1(imgfeat_inner_product);
Datum
imgfeat_inner_product(PG_FUNCTION_ARGS)
{
	ImgFeat    *a = PG_GETARG_IMGFEAT_P(0);
	ImgFeat    *b = PG_GETARG_IMGFEAT_P(1);

	imgfeat_check_same_dim(a, b);
	PG_RETURN_FLOAT8(imgs_inner_product(a->x, b->x, a->dim));
}

/* <#> : negative inner product, so that ascending order is most similar first */
PG_FUNCTION_INFO_V1(imgfeat_negative_inner_product);
Datum
imgfeat_negative_inner_product(PG_FUNCTION_ARGS)
{
	ImgFeat    *a = PG_GETARG_IMGFEAT_P(0);
	ImgFeat    *b = PG_GETARG_IMGFEAT_P(1);

	imgfeat_check_same_dim(a, b);
	PG_RETURN_FLOAT8(-imgs_inner_product(a->x, b->x, a->dim));
}

/*
 * <=> : cosine distance, 1 - cos(a, b), in [0, 2]. NaN when either vector is
 * all zeros (the angle is undefined); NaN sorts after every number.
 */
PG_FUNCTION_INFO_V1(imgfeat_cosine_distance);
Datum
imgfeat_cosine_distance(PG_FUNCTION_ARGS)
{
	ImgFeat    *a = PG_GETARG_IMGFEAT_P(0);
	ImgFeat    *b = PG_GETARG_IMGFEAT_P(1);

	imgfeat_check_same_dim(a, b);
	PG_RETURN_FLOAT8(imgs_cosine_distance(a->x, b->x, a->dim));
}

PG_FUNCTION_INFO_V1(imgfeat_dims);
Datum
imgfeat_dims(PG_FUNCTION_ARGS)
{
	ImgFeat    *a = PG_GETARG_IMGFEAT_P(0);

	PG_RETURN_INT32(a->dim);
}

PG_FUNCTION_INFO_V1(imgfeat_l2_norm);
Datum
imgfeat_l2_norm(PG_FUNCTION_ARGS)
{
	ImgFeat    *a = PG_GETARG_IMGFEAT_P(0);
	double		sum = 0;

	/* in double: a norm is reported, not compared with index distances */
	for (int i = 0; i < a->dim; i++)
		sum += (double) a->x[i] * a->x[i];
	PG_RETURN_FLOAT8(sqrt(sum));
}

/* Unit-length copy; the zero vector stays zero (it has no direction). */
PG_FUNCTION_INFO_V1(imgfeat_l2_normalize);
Datum
imgfeat_l2_normalize(PG_FUNCTION_ARGS)
{
	ImgFeat    *a = PG_GETARG_IMGFEAT_P(0);
	ImgFeat    *result = imgfeat_new(a->dim);
	double		sum = 0;

	for (int i = 0; i < a->dim; i++)
		sum += (double) a->x[i] * a->x[i];
	if (sum > 0)
	{
		double		norm = sqrt(sum);

		for (int i = 0; i < a->dim; i++)
			result->x[i] = (float4) (a->x[i] / norm);
	}
	PG_RETURN_IMGFEAT_P(result);
}
