/*
 * imgfeat.h — the image feature type: a varlena of float4 with a dimension
 * header, laid out like pgvector's vector so a binary-compatible cast works.
 */
#ifndef IMGFEAT_H
#define IMGFEAT_H

#include "fmgr.h"

/* IMGFEAT_MAX_DIM and the validity rule, imgfeat_values_check/_valid */
#include "type/imgfeat_parse.h"

typedef struct ImgFeat
{
	int32		vl_len_;		/* varlena header (do not touch directly) */
	int16		dim;			/* number of elements */
	int16		unused;			/* reserved, always zero */
	float4		x[FLEXIBLE_ARRAY_MEMBER];
} ImgFeat;

#define IMGFEAT_SIZE(dim)		(offsetof(ImgFeat, x) + sizeof(float4) * (dim))
#define DatumGetImgFeatP(d)		((ImgFeat *) PG_DETOAST_DATUM(d))
#define PG_GETARG_IMGFEAT_P(n)	DatumGetImgFeatP(PG_GETARG_DATUM(n))
#define PG_RETURN_IMGFEAT_P(v)	PG_RETURN_POINTER(v)

extern ImgFeat *imgfeat_new(int dim);

/* Errors (with SQLSTATE) unless dim is within 1..IMGFEAT_MAX_DIM. */
extern void imgfeat_check_dim(int dim);

/* Errors unless typmod is -1 or equal to dim. */
extern void imgfeat_check_typmod(int dim, int32 typmod);

/* Errors unless value is finite. */
extern void imgfeat_check_element(float4 value);

/*
 * The type's validity rule in one place: errors unless v is a value
 * imgfeat_in would accept (imgfeat_values_check of imgfeat_parse.h).
 * Every path that makes an imgfeat from something other than checked input
 * calls it; a stored invalid value would make pg_dump output unrestorable.
 */
extern void imgfeat_validate(const ImgFeat *v);

/* Errors unless both operands have the same dimension. */
extern void imgfeat_check_same_dim(const ImgFeat *a, const ImgFeat *b);

#endif							/* IMGFEAT_H */
