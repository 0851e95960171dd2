/*
 * sphere.c — imgsearch_sphere: its constructor and the range operators
 * <<->> and <<=>> (see sphere.h).
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/float.h"

#include "index/distance_core.h"
#include "type/sphere.h"

void
imgs_sphere_check_radius(double radius)
{
	if (isnan(radius) || isinf(radius) || radius < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid imgsearch_sphere radius %s", float8out_internal(radius)),
				 errdetail("A radius is a finite distance, zero or more.")));
}

bool
imgs_sphere_read(Datum datum, ImgsSphere *sphere)
{
	HeapTupleHeader tuple = DatumGetHeapTupleHeader(datum);
	bool		isnull;
	Datum		center = GetAttributeByNum(tuple, 1, &isnull);

	if (isnull)
		return false;
	sphere->center = DatumGetImgFeatP(center);
	sphere->radius = DatumGetFloat8(GetAttributeByNum(tuple, 2, &isnull));
	if (isnull)
		return false;
	imgs_sphere_check_radius(sphere->radius);
	return true;
}

/* imgsearch_sphere(center imgfeat, radius float8): checks the radius. */
PG_FUNCTION_INFO_V1(imgsearch_sphere_make);
Datum
imgsearch_sphere_make(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "imgsearch_sphere_make must return a composite type");
	imgs_sphere_check_radius(PG_GETARG_FLOAT8(1));
	values[0] = PointerGetDatum(PG_GETARG_IMGFEAT_P(0));
	values[1] = PG_GETARG_DATUM(1);
	desc = BlessTupleDesc(desc);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

/* <<->> : feat <-> center <= radius, in the arithmetic of <-> */
PG_FUNCTION_INFO_V1(imgfeat_within_l2);
Datum
imgfeat_within_l2(PG_FUNCTION_ARGS)
{
	ImgFeat    *a = PG_GETARG_IMGFEAT_P(0);
	ImgsSphere	s;

	if (!imgs_sphere_read(PG_GETARG_DATUM(1), &s))
		PG_RETURN_NULL();
	imgfeat_check_same_dim(a, s.center);
	PG_RETURN_BOOL(sqrt(imgs_l2_squared(a->x, s.center->x, a->dim)) <= s.radius);
}

/* <<=>> : feat <=> center <= radius; a zero vector's NaN distance is within no radius */
PG_FUNCTION_INFO_V1(imgfeat_within_cosine);
Datum
imgfeat_within_cosine(PG_FUNCTION_ARGS)
{
	ImgFeat    *a = PG_GETARG_IMGFEAT_P(0);
	ImgsSphere	s;

	if (!imgs_sphere_read(PG_GETARG_DATUM(1), &s))
		PG_RETURN_NULL();
	imgfeat_check_same_dim(a, s.center);
	PG_RETURN_BOOL(imgs_cosine_distance(a->x, s.center->x, a->dim) <= s.radius);
}
