/*
 * distance_core.h — float vector kernels (C API over plain buffers).
 *
 * One implementation serves the SQL operators and every index scan, so an
 * index and a sequential scan compute bit-identical distances for the same
 * pair of vectors. Built with AVX2/FMA and baseline clones, picked at load
 * time by the CPU (see distance_core.cpp).
 *
 * Results are exact to float rounding for every finite input: sums run in
 * float (vectorised) and are redone in double when float overflowed or lost
 * digits to underflow, so they are returned as double (|a - b|^2 of two
 * float vectors may exceed FLT_MAX).
 */
#ifndef IMGS_DISTANCE_CORE_H
#define IMGS_DISTANCE_CORE_H

#include <float.h>
#include <math.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C"
{
#endif

/*
 * The metrics, numbered as the operator classes' strategies. Each ranks by a
 * key that orders like the operator's value:
 *   L2      key = |a - b|^2                 value = sqrt(key)   (<->)
 *   COSINE  key = value = 1 - clamp(a.b / (|a| |b|), -1, 1),
 *           NaN when either vector is zero (the angle is undefined)   (<=>)
 *   IP      key = value = -(a.b)                                      (<#>)
 */
#define IMGS_METRIC_L2		1
#define IMGS_METRIC_COSINE	2
#define IMGS_METRIC_IP		3

/* sum((a[i] - b[i])^2) */
extern double imgs_l2_squared(const float *a, const float *b, size_t dim);

/* sum(a[i] * b[i]) */
extern double imgs_inner_product(const float *a, const float *b, size_t dim);

/* sum(a[i]^2) */
extern double imgs_norm_squared(const float *a, size_t dim);

/*
 * A vector's squared norm as an index stores it beside the vector (cosine
 * scans then read each vector once): the float value of imgs_norm_squared
 * when that is exact and positive, else NaN, which means "compute it from
 * the vector" (zero vectors, and norms beyond float's range).
 */
static inline float
imgs_norm_squared_to_store(double norm_sq)
{
	float		stored = (float) norm_sq;

	return (double) stored == norm_sq && stored > 0 ? stored : (float) NAN;
}

/* Whether a stored squared norm may be used (also false for an older index's inf or 0). */
static inline int
imgs_norm_squared_stored(float stored)
{
	return stored > 0 && stored <= FLT_MAX;
}

/* 1 - cos(a, b), as the COSINE key above */
extern double imgs_cosine_distance(const float *a, const float *b, size_t dim);

/*
 * What a batched scan computes: the key of each vector against x; or, for
 * several examples (n_pos > 0; L2 or COSINE only), each vector's best score
 * (imgs_examples_score). Zero-initialise it: n_pos = 0 is a plain query.
 */
typedef struct ImgsKeyQuery
{
	int			metric;			/* IMGS_METRIC_* */
	const float *x;				/* a plain query's vector (the first positive for examples) */
	double		norm_sq;		/* imgs_norm_squared(x), for COSINE */
	int			n_pos;			/* positive examples, or 0: a plain query */
	int			n_neg;			/* negative examples */
	const float *examples;		/* (n_pos + n_neg) vectors back to back, positives first */
	const double *examples_norm_sq; /* imgs_norm_squared of each, for COSINE */
} ImgsKeyQuery;

/*
 * The best score of several examples, from d_pos, the least distance (the
 * operator's value: L2 distance, not its square; cosine distance) to a
 * positive and d_neg, the least to a negative (PostgreSQL's order: NaN after
 * every number): d_pos when there is no negative or d_pos < d_neg; else
 * 2^290 / d_neg (Infinity when d_neg = 0), beyond every distance two float
 * vectors can have (at most 2^137), so that rows at least as near a negative
 * come after every other row, the farther from the negatives the sooner.
 * Every score is >= d_pos: a lower bound of the distance to each positive
 * bounds the score.
 */
#define IMGS_EXAMPLES_PUSH_BACK	0x1p290

static inline double
imgs_examples_score(double d_pos, double d_neg, int n_neg)
{
	if (n_neg == 0)
		return d_pos;
	/* d_pos < d_neg as PostgreSQL's float8 compares them (NaN after every number) */
	if (!isnan(d_pos) && (isnan(d_neg) || d_pos < d_neg))
		return d_pos;
	return d_neg == 0 ? INFINITY : IMGS_EXAMPLES_PUSH_BACK / d_neg;
}

/*
 * out[j] = key(query, base + j * dim) for j < n, over n vectors stored back
 * to back (for examples: the score, an ORDER BY value, not a key); norms_sq
 * (NULL, or n stored norms) spares COSINE a pass over each vector. The same
 * arithmetic as the single forms above, bit for bit.
 */
extern void imgs_keys_many(const ImgsKeyQuery *query, const float *base, size_t dim, size_t n,
						   const float *norms_sq, double *out);

#ifdef __cplusplus
}
#endif

#endif
