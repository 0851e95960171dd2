/*
 * distance_core.h — float vector kernels (C API over plain buffers).
 *
 * One implementation serves the SQL operators and every index scan, so an
 * index and a sequential scan compute bit-identical distances for the same
 * pair of vectors. Built with AVX2/FMA and baseline clones, picked at load
 * time by the CPU (see distance_core.cpp).
 */
#ifndef IMGS_DISTANCE_CORE_H
#define IMGS_DISTANCE_CORE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C"
{
#endif

/* sum((a[i] - b[i])^2) */
extern float imgs_l2_squared(const float *a, const float *b, size_t dim);

/* sum(a[i] * b[i]) */
extern float imgs_inner_product(const float *a, const float *b, size_t dim);

/* sum(a[i]^2) */
extern float imgs_norm_squared(const float *a, size_t dim);

/*
 * Batched forms over n vectors stored back to back (stride = dim floats):
 * out[j] = f(query, base + j * dim). Same arithmetic as the single forms.
 */
extern void imgs_l2_squared_many(const float *query, const float *base, size_t dim, size_t n, float *out);
extern void imgs_inner_product_many(const float *query, const float *base, size_t dim, size_t n, float *out);

#ifdef __cplusplus
}
#endif

#endif
