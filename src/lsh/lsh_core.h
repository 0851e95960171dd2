/*
 * lsh_core.h — the lsh index method's core (C API over plain buffers; no
 * PostgreSQL header). Implemented in C++ in lsh_core.cpp; no entry point
 * throws.
 *
 * The hash. A vector x (normalised first for the cosine metric: x' = x/|x|)
 * hashes to the bucket b of its nearest centroid (k-means on a sample: a
 * learned hash function, which measured far better than random hyperplanes
 * on our features; docs/methods.md "lsh") and to a sketch of its residual
 * r = x' - c_b: the signs of y = R r, where R (bits x dim, orthonormal rows,
 * seeded Gaussian) is a random rotation, plus two floats:
 *     norm2 = |r|^2,   scale = (dim / bits) |y|^2 / |y|_1.
 * For a query q (q' likewise) the sketch estimates (the 1-bit estimator of
 * RaBitQ, Gao & Long 2024)
 *     <q' - c_b, r>  ~  scale * sum_j (R (q' - c_b))_j s_j,   s_j = +-1.
 * The sum splits into sum_j (R q')_j s_j, the same for every bucket, and
 * cdot = sum_j (R c_b)_j s_j, which depends on the entry alone and is
 * stored with it. So the key of x is estimated as
 *     L2, cosine: |q' - c_b|^2 + norm2 - 2 scale (dot - cdot)   (|q' - x'|^2)
 *     IP:         -<q, c_b> - scale dot                          (-<q, x>)
 * with dot = sum_j (R q')_j s_j.
 * The estimate only ranks candidates: the caller re-ranks them with exact
 * keys from its own copy of the vectors.
 *
 * The error bound. With bits = dim, R is a random rotation and the sign
 * vector s / sqrt(bits) is RaBitQ's quantized vector ō of o = r / |r|. Its
 * estimate of <o, ū> (ū = u / |u|, u = q' - c_b; q' for IP) is unbiased and
 * with probability about 1 - exp(-c eps0^2) off by at most
 *     sqrt(1 - a^2) / a * eps0 / sqrt(bits - 1),   a = <ō, o> = |y|_1 / (sqrt(bits) |y|)
 * (Gao & Long 2024, Theorem 3.2; eps0 = 1.9 is their default). Times |u| |r|,
 * written with the stored floats (|y| = |r| when bits = dim, so
 * |y|_1 = norm2 / scale):
 *     err<u, r> = eps0 |R u| sqrt((bits scale^2 - (dim / bits) norm2) / (bits - 1)).
 * With bits < dim, R projects to a random subspace: the same formula with
 * |y|^2 taken as its expectation (bits / dim) norm2, plus the projection's
 * own error, whose standard deviation is at most
 * |u| |r| sqrt(2 (1 - bits / dim) / bits), also times eps0, summed in
 * quadrature: a heuristic there, not RaBitQ's bound. The key's error is
 * twice err<u, r> for L2 and cosine (|q' - x'|^2 = ... - 2 <u, r>), err<u, r>
 * for IP; lower = estimate - that. The bound is probabilistic: an entry's
 * exact key may lie below it (rarely, at eps0 near 2).
 *
 * The estimator (RaBitQ's single-code method; bench/results/lsh_estimator.md
 * measures it). Once per query, R q' is quantized to B_q-bit unsigned
 * integers (B_q = LSH_QUERY_BITS = 8, chosen there: 6 and 4 were up to 8% and
 * about 20% faster, but their quantization's bound, below, made up 35% and 70% of
 * the lower bound's error term at eps0 1.9, against 6-17% at 8):
 *     (R q')_j = lo + delta u_j + e_j,   lo = min_j, delta = (max_j - lo) / (2^B_q - 1),
 *     u_j = round(((R q')_j - lo) / delta),   |e_j| <= delta / 2,
 * and the u_j are split into B_q bit-planes laid out as a sketch (bit i of
 * byte k <-> coordinate 8k + i). For a sketch with pc set bits,
 *     sum over the set bits of (R q')_j ~ lo pc + delta S,
 *     S = sum_p 2^p popcount(code AND plane_p) = sum over the set bits of u_j,
 * and dot = 2 that - sum_j (R q')_j. The integers pc and S come from B_q + 1
 * AND-popcount passes over the sketch where the CPU has AVX-512 VPOPCNTDQ
 * (one register holds 512 bits), the same passes counted with nibble
 * tables (vpshufb) where it has AVX2, from integer tables per byte of the
 * sketch elsewhere (chosen at run time): the same integers, so the same
 * floats.
 *
 * The quantization moves dot by 2 sum over the set bits of e_j, within
 * +-pc 2 max_j |e_j| and at most 2 sum_j max(e_j, 0) (both measured when
 * the planes are built, so they hold whatever the rounding did). So
 * lower = estimate - (RaBitQ's error above, at eps0) - (the quantization's
 * error: key_per_dot * scale * min(pc 2 max_j |e_j|, 2 sum_j max(e_j, 0)),
 * key_per_dot 2 for L2 and cosine, 1 for IP). What is proven: the estimate
 * with dot unquantized is at least lower + RaBitQ's term (up to float
 * rounding of the sums, ~1e-7 relative; unit/lsh checks it). What is not:
 * RaBitQ's term, probabilistic (bits = dim) or a heuristic (bits < dim), as
 * said above; the two add, the quantization's term not scaled by eps0.
 */
#ifndef IMGS_LSH_CORE_H
#define IMGS_LSH_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cxx/cxx_error.h"

#ifdef __cplusplus
extern "C"
{
#endif

/* Metrics: IMGS_METRIC_* of distance_core.h */
#define LSH_METRIC_L2		1
#define LSH_METRIC_COSINE	2
#define LSH_METRIC_IP		3

#define LSH_MAX_BITS		4096
#define LSH_MAX_BUCKETS		65536

/* B_q, the bits of each coordinate of the quantized query (the estimator, above) */
#define LSH_QUERY_BITS		8
#define LSH_QUERY_BITS_MAX	8

/* The kernels that count the sketch's bits (lsh_query_set_estimator) */
#define LSH_ESTIMATOR_PORTABLE	1	/* 64-bit popcounts, any CPU */
#define LSH_ESTIMATOR_AVX512	2	/* AVX-512 VPOPCNTDQ */
#define LSH_ESTIMATOR_AVX2		3	/* AVX2: nibble tables (vpshufb) */

/* Bytes of a sketch of `bits` bits: a multiple of 4, so entries stay aligned. */
static inline int32_t
lsh_code_bytes(int32_t bits)
{
	return ((bits + 31) / 32) * 4;
}

/* The hash as a backend holds it (arrays owned by the caller). */
typedef struct LshModel
{
	int32_t		dim;
	int32_t		bits;			/* 1..min(dim, LSH_MAX_BITS) */
	int32_t		n_buckets;
	int32_t		metric;
	const float *rotation;		/* [bits * dim] */
	const float *centroids;		/* [n_buckets * dim] */
	float	   *rot_centroids;	/* [n_buckets * bits]: R c_b (lsh_model_prepare) */
	float	   *c_norms;		/* [n_buckets]: |c_b|^2 (lsh_model_prepare) */
} LshModel;

/*
 * Learns the hash from n sample vectors (n x dim, raw): k-means with
 * n_buckets centroids (cut to the number of usable vectors: finite, and
 * not zero under cosine; at least 1), `iterations` Lloyd steps from seeded sample points, and the
 * rotation. Writes rotation_out[bits * dim] and centroids_out[n_buckets *
 * dim]; returns the number of centroids, or -1 with err filled (57014 when
 * an interrupt was seen: polled every few million operations). The
 * assignment steps run on up to `threads` threads (cxx/parallel.hpp); the
 * result does not depend on how many.
 *
 * Every function here is noexcept; those that can fail fill an ImgsError
 * (cxx/cxx_error.h) and say so by their return value.
 */
extern int32_t lsh_train(const float *sample, int64_t n, int32_t dim, int32_t bits,
						 int32_t n_buckets, int32_t metric, int32_t iterations, uint64_t seed,
						 int32_t threads, float *rotation_out, float *centroids_out,
						 ImgsError *err) IMGS_NOEXCEPT;

/*
 * lsh_train without the copy (an index build trains on its sample in place,
 * within maintenance_work_mem): lsh_prepare_sample prepares the n vectors of
 * sample where they are (normalised under cosine), drops those unusable (not
 * finite; zero under cosine), moves the rest to the front and returns their
 * number m; lsh_train_prepared trains on those m, as lsh_train on the
 * original sample.
 */
extern int64_t lsh_prepare_sample(float *sample, int64_t n, int32_t dim, int32_t metric) IMGS_NOEXCEPT;
extern int32_t lsh_train_prepared(const float *prepared, int64_t m, int32_t dim, int32_t bits,
								  int32_t n_buckets, int32_t iterations, uint64_t seed,
								  int32_t threads, float *rotation_out, float *centroids_out,
								  ImgsError *err) IMGS_NOEXCEPT;

/* Fills model->rot_centroids and c_norms (the caller allocates them). */
extern void lsh_model_prepare(LshModel *model) IMGS_NOEXCEPT;

/*
 * Hashes one raw vector: returns its bucket, writes its sketch
 * (lsh_code_bytes(bits) bytes), norm2, scale and cdot. A zero vector under the
 * cosine metric (no direction) goes to bucket 0 with norm2 = +inf (ranked
 * last; its exact key is NaN anyway). Returns -1 with err filled on failure.
 */
extern int32_t lsh_hash(const LshModel *model, const float *x, uint8_t *code, float *norm2,
						float *scale, float *cdot, ImgsError *err) IMGS_NOEXCEPT;

/*
 * lsh_hash for n vectors (n x dim) at a time (the build: each centroid and
 * rotation row is read once per eight vectors; the same bits as lsh_hash,
 * on up to `threads` threads): bucket[i], sketch i at
 * codes + i * lsh_code_bytes(bits), the floats. False with err filled on
 * failure (57014 on an interrupt).
 */
extern bool lsh_hash_many(const LshModel *model, const float *x, int64_t n, int32_t *bucket,
						  uint8_t *codes, float *norm2, float *scale, float *cdot,
						  int32_t threads, ImgsError *err) IMGS_NOEXCEPT;

/* Nearest centroids of a set of vectors: out[i] for x[i]. scratch: dim floats. */
extern bool lsh_assign(const LshModel *model, const float *x, int64_t n, int32_t *out,
					   float *scratch, ImgsError *err) IMGS_NOEXCEPT;

/* ---- Query ------------------------------------------------------------ */

typedef struct LshQuery LshQuery;

/* Prepares a query (raw vector); NULL with err filled on failure. */
extern LshQuery *lsh_query_begin(const LshModel *model, const float *q, ImgsError *err) IMGS_NOEXCEPT;
extern void lsh_query_end(LshQuery *query) IMGS_NOEXCEPT;

/* The key of each bucket's centroid, the probe order's measure (smaller first). */
extern const double *lsh_query_bucket_keys(const LshQuery *query) IMGS_NOEXCEPT;

/*
 * Buckets in probe order: the `count` smallest bucket keys (ties by
 * number), sorted. count <= n_buckets. False with err filled on failure.
 */
extern bool lsh_query_probe_order(LshQuery *query, int32_t count, int32_t *out,
								  ImgsError *err) IMGS_NOEXCEPT;

/*
 * Estimates the keys of `count` entries of bucket b, entry i at
 * entries + i * entry_size with its norm2, scale, cdot (three floats from
 * floats_offset) and sketch (from code_offset); out[i] = estimate.
 */
extern void lsh_query_estimate(LshQuery *query, int32_t bucket, const char *entries,
							   int32_t count, size_t entry_size, size_t floats_offset,
							   size_t code_offset, float *out) IMGS_NOEXCEPT;

/*
 * lsh_query_estimate plus each entry's lower bound at eps0 (the error bound
 * above): lower[i] = out[i] - eps0 * error - the quantization's error, +inf
 * where out[i] is (an entry ranked last), -inf where the error is not a
 * number. With lower NULL, lsh_query_estimate.
 */
extern void lsh_query_estimate_bounds(LshQuery *query, int32_t bucket, const char *entries,
									  int32_t count, size_t entry_size, size_t floats_offset,
									  size_t code_offset, float eps0, float *out,
									  float *lower) IMGS_NOEXCEPT;

/*
 * For tests and benchmarks: the query's B_q (1..LSH_QUERY_BITS_MAX; 0 keeps
 * it) and kernel (LSH_ESTIMATOR_*; 0: the fastest this CPU runs, which every
 * query starts with). Every kernel gives the same bits. Returns the kernel,
 * or 0 (nothing changed) when the arguments are out of range or this CPU
 * lacks the kernel.
 */
extern int32_t lsh_query_set_estimator(LshQuery *query, int32_t query_bits, int32_t kernel) IMGS_NOEXCEPT;

#ifdef __cplusplus
}
#endif

#endif							/* IMGS_LSH_CORE_H */
