// distance_core.cpp — vector kernels (see distance_core.h).
//
// The loops are written for the auto-vectoriser: `omp simd reduction` lets it
// reorder the float sum (with -fopenmp-simd, no OpenMP runtime involved), and
// target_clones builds an AVX2+FMA copy next to the baseline one, chosen once
// by the dynamic loader. Every entry point calls the same inline bodies, so a
// distance never depends on which entry point computed it.
#include "index/distance_core.h"

#include <cfloat>
#include <cmath>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define IMGS_KERNEL __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define IMGS_KERNEL
#endif

namespace {

// A float sum of at most 16000 terms is as exact as float rounding allows
// when no term overflowed (the sum is finite) and what underflow lost, at
// most 16000 * FLT_MIN = 1.9e-34, is below one float rounding step of the
// sum (2^-24 * 1e-26 = 6e-34). Otherwise the sum is redone in double, where
// neither can happen for float inputs. Rare: only values near the float
// limits, tiny vectors, or exact zeros (a vector's distance to itself).
constexpr float kSafeFloatSum = 1e-26f;

inline bool float_sum_exact(float sum) {
    float magnitude = std::fabs(sum);  // NaN fails both comparisons
    return magnitude >= kSafeFloatSum && magnitude <= FLT_MAX;
}

// The double forms, for the rare sums float cannot hold.
inline double l2_squared_double(const float *__restrict a, const float *__restrict b, size_t dim) {
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (size_t i = 0; i < dim; i++) {
        double diff = (double)a[i] - (double)b[i];
        sum += diff * diff;
    }
    return sum;
}

inline double inner_product_double(const float *__restrict a, const float *__restrict b, size_t dim) {
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (size_t i = 0; i < dim; i++)
        sum += (double)a[i] * (double)b[i];
    return sum;
}

inline double norm_squared_double(const float *__restrict a, size_t dim) {
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (size_t i = 0; i < dim; i++)
        sum += (double)a[i] * (double)a[i];
    return sum;
}

inline double l2_squared(const float *__restrict a, const float *__restrict b, size_t dim) {
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (size_t i = 0; i < dim; i++) {
        float diff = a[i] - b[i];
        sum += diff * diff;
    }
    return float_sum_exact(sum) ? sum : l2_squared_double(a, b, dim);
}

inline double inner_product(const float *__restrict a, const float *__restrict b, size_t dim) {
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (size_t i = 0; i < dim; i++)
        sum += a[i] * b[i];
    return float_sum_exact(sum) ? sum : inner_product_double(a, b, dim);
}

inline double norm_squared(const float *__restrict a, size_t dim) {
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (size_t i = 0; i < dim; i++)
        sum += a[i] * a[i];
    return float_sum_exact(sum) ? sum : norm_squared_double(a, dim);
}

// In double, the product of two squared norms of float vectors cannot
// overflow (at most (16000 * FLT_MAX^2)^2 = 3e163) nor underflow to zero
// unless a norm is zero.
inline double cosine_distance(double dot, double norm_sq_a, double norm_sq_b) {
    double norms = std::sqrt(norm_sq_a * norm_sq_b);
    if (norms == 0)
        return NAN;
    double similarity = dot / norms;
    // rounding can push |similarity| a hair past 1
    if (similarity > 1)
        similarity = 1;
    else if (similarity < -1)
        similarity = -1;
    return 1 - similarity;
}

}  // namespace

extern "C" IMGS_KERNEL double imgs_l2_squared(const float *a, const float *b, size_t dim) {
    return l2_squared(a, b, dim);
}

extern "C" IMGS_KERNEL double imgs_inner_product(const float *a, const float *b, size_t dim) {
    return inner_product(a, b, dim);
}

extern "C" IMGS_KERNEL double imgs_norm_squared(const float *a, size_t dim) {
    return norm_squared(a, dim);
}

extern "C" IMGS_KERNEL double imgs_cosine_distance(const float *a, const float *b, size_t dim) {
    return cosine_distance(inner_product(a, b, dim), norm_squared(a, dim), norm_squared(b, dim));
}

namespace {

// a < b in PostgreSQL's float8 order: NaN after every number
inline bool pg_less(double a, double b) { return std::isnan(b) ? !std::isnan(a) : a < b; }

// Both always inlined into imgs_keys_many, so that they are compiled for
// the target clone that runs (a baseline copy would sum in another order
// than the plain operators' kernels).

// The operator's value (<->: the L2 distance; <=>: the cosine distance) of
// example e against x, whose squared norm is x_norm_sq.
__attribute__((always_inline)) inline double example_distance(const ImgsKeyQuery *query, int e, const float *x, size_t dim, double x_norm_sq) {
    const float *q = query->examples + (size_t)e * dim;
    if (query->metric == IMGS_METRIC_L2)
        return std::sqrt(l2_squared(q, x, dim));
    return cosine_distance(inner_product(q, x, dim), query->examples_norm_sq[e], x_norm_sq);
}

// imgs_examples_score of each vector (imgs_keys_many for several examples)
__attribute__((always_inline)) inline void examples_scores(const ImgsKeyQuery *query, const float *base, size_t dim, size_t n,
                            const float *norms_sq, double *out) {
    for (size_t j = 0; j < n; j++) {
        const float *x = base + j * dim;
        double x_norm_sq = 0;
        if (query->metric != IMGS_METRIC_L2)
            x_norm_sq = norms_sq && imgs_norm_squared_stored(norms_sq[j]) ? norms_sq[j] : norm_squared(x, dim);
        double d_pos = example_distance(query, 0, x, dim, x_norm_sq);
        for (int e = 1; e < query->n_pos; e++) {
            double d = example_distance(query, e, x, dim, x_norm_sq);
            if (pg_less(d, d_pos))
                d_pos = d;
        }
        double d_neg = NAN;
        for (int e = 0; e < query->n_neg; e++) {
            double d = example_distance(query, query->n_pos + e, x, dim, x_norm_sq);
            if (e == 0 || pg_less(d, d_neg))
                d_neg = d;
        }
        out[j] = imgs_examples_score(d_pos, d_neg, query->n_neg);
    }
}

}  // namespace

extern "C" IMGS_KERNEL void imgs_keys_many(const ImgsKeyQuery *query, const float *base, size_t dim, size_t n,
                                           const float *norms_sq, double *out) {
    const float *q = query->x;
    if (query->n_pos > 0) {
        examples_scores(query, base, dim, n, norms_sq, out);
        return;
    }
    switch (query->metric) {
    case IMGS_METRIC_L2:
        for (size_t j = 0; j < n; j++)
            out[j] = l2_squared(q, base + j * dim, dim);
        break;
    case IMGS_METRIC_IP:
        for (size_t j = 0; j < n; j++)
            out[j] = -inner_product(q, base + j * dim, dim);
        break;
    default:
        for (size_t j = 0; j < n; j++) {
            const float *x = base + j * dim;
            // a stored norm is norm_squared(x) exactly, or absent
            double norm_sq = norms_sq && imgs_norm_squared_stored(norms_sq[j]) ? norms_sq[j] : norm_squared(x, dim);
            out[j] = cosine_distance(inner_product(q, x, dim), query->norm_sq, norm_sq);
        }
        break;
    }
}
