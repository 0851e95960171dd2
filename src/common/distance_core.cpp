// distance_core.cpp — vector kernels (see distance_core.h).
//
// The loops are written for the auto-vectoriser: `omp simd reduction` lets it
// reorder the float sum (with -fopenmp-simd, no OpenMP runtime involved), and
// target_clones builds an AVX2+FMA copy next to the baseline one, chosen once
// by the dynamic loader. The batched forms call the same inline bodies, so a
// distance never depends on which entry point computed it.
#include "common/distance_core.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define IMGS_KERNEL __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define IMGS_KERNEL
#endif

namespace {

inline float l2_squared(const float *__restrict a, const float *__restrict b, size_t dim) {
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (size_t i = 0; i < dim; i++) {
        float diff = a[i] - b[i];
        sum += diff * diff;
    }
    return sum;
}

inline float inner_product(const float *__restrict a, const float *__restrict b, size_t dim) {
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (size_t i = 0; i < dim; i++)
        sum += a[i] * b[i];
    return sum;
}

}  // namespace

extern "C" IMGS_KERNEL float imgs_l2_squared(const float *a, const float *b, size_t dim) {
    return l2_squared(a, b, dim);
}

extern "C" IMGS_KERNEL float imgs_inner_product(const float *a, const float *b, size_t dim) {
    return inner_product(a, b, dim);
}

extern "C" IMGS_KERNEL float imgs_norm_squared(const float *a, size_t dim) {
    return inner_product(a, a, dim);
}

extern "C" IMGS_KERNEL void imgs_l2_squared_many(const float *query, const float *base, size_t dim, size_t n,
                                                 float *out) {
    for (size_t j = 0; j < n; j++)
        out[j] = l2_squared(query, base + j * dim, dim);
}

extern "C" IMGS_KERNEL void imgs_inner_product_many(const float *query, const float *base, size_t dim, size_t n,
                                                    float *out) {
    for (size_t j = 0; j < n; j++)
        out[j] = inner_product(query, base + j * dim, dim);
}
