/*
 * imgexamples.h — several examples, "more like these, less like those":
 * positive and negative imgfeat vectors of one dimension, held together so
 * that one ORDER BY operator (imgfeat <-> imgexamples, imgfeat <=>
 * imgexamples) ranks by their best score (distance_core.h,
 * imgs_examples_score) and one index scan serves it; and the average
 * example (Rocchio), an imgfeat that any plain search serves.
 */
#ifndef IMGEXAMPLES_H
#define IMGEXAMPLES_H

#include "fmgr.h"

/* Most examples (positives and negatives together) one value holds: each costs a distance per row. */
#define IMGEXAMPLES_MAX		64

typedef struct ImgExamples
{
	int32		vl_len_;		/* varlena header (do not touch directly) */
	int16		dim;			/* of every example */
	int16		n_pos;			/* >= 1 */
	int16		n_neg;			/* >= 0 */
	int16		unused;			/* reserved, always zero */
	float4		x[FLEXIBLE_ARRAY_MEMBER];	/* (n_pos + n_neg) x dim: positives first */
} ImgExamples;

#define IMGEXAMPLES_SIZE(n, dim)	(offsetof(ImgExamples, x) + sizeof(float4) * (Size) (n) * (dim))
#define DatumGetImgExamplesP(d)		((ImgExamples *) PG_DETOAST_DATUM(d))
#define PG_GETARG_IMGEXAMPLES_P(n)	DatumGetImgExamplesP(PG_GETARG_DATUM(n))

/*
 * Errors (XX001, data corrupted) unless ex is well formed: its counts within
 * bounds, its size theirs, every element finite. Every function that reads
 * an imgexamples argument calls it: a value only ever comes from the
 * functions of this file, but a function must not trust its arguments.
 */
extern void imgexamples_check(const ImgExamples *ex);

#endif							/* IMGEXAMPLES_H */
