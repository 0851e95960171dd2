/*
 * faissflat_core.h — faissflat's compact codes: 8-bit scalar quantization
 * (SQ8) of the PCA-projected vectors, and the lower bound a scan filters
 * with (C API over plain buffers, no PostgreSQL header).
 *
 * A vector x is projected by kdtree_core's PCA (kd_project: y = P (x - mean)
 * in m dimensions, as floats, and the residual norm r); m is every
 * dimension up to KD_MAX_PCA_DIMS, so for 512-d vectors r is only rounding.
 * Each coordinate is coded on one byte against its dimension's range, learned
 * from the build sample: the code c_i of y_i is the nearest of the 256 points
 * lo_i + delta_i c (clamped to 0..255, so a coordinate out of the range, of a
 * vector inserted later, still gets a code). The entry keeps, with the code,
 *   err  >= |y - yh|, where yh_i = lo_i + delta_i c_i (the real numbers),
 *   yh2  <= |yh|^2,
 * both rounded the safe way; err is small for a vector within the ranges and
 * large for one far outside them (its bound is then weak, never wrong).
 *
 * The lower bound (proof; the scan's filter rests on it). For the query's
 * stored projection q (m floats):
 *  1. |q - y| >= |q - yh| - |y - yh| >= |q - yh| - err (triangle inequality).
 *  2. |q - yh|^2 = |q|^2 + |yh|^2 - 2 <q, yh>, and
 *     <q, yh> = C0 + sum_i w_i c_i with C0 = sum_i q_i lo_i, w_i = q_i delta_i.
 *  3. ff_query_prepare rounds each w_i / s to an integer wq_i with
 *     |wq_i| <= FF_WQ_MAX(m), s = max |w_i| / FF_WQ_MAX(m); then
 *     sum_i w_i c_i = s I + sum_i (w_i - s wq_i) c_i, where the integer
 *     I = sum_i wq_i c_i is computed exactly in int32 (m * 255 * FF_WQ_MAX(m)
 *     < 2^31; every kernel, SIMD or not, yields the same I), and
 *     |sum_i (w_i - s wq_i) c_i| <= 255 sum_i |w_i - s wq_i| = E.
 *  4. So |q - yh|^2 >= A = |q|^2 + yh2 - 2 (C0 + s I + E). ff_a2 computes A
 *     in double from terms whose magnitudes sum to T; each of the few double
 *     operations (and the m-term sums of |q|^2, C0 and E, done once per
 *     query) errs by at most m 2^-52 T in all, so A - 2^-40 T is below the
 *     exact A (m <= 2^11). Then a = sqrt(A') (1 - 2^-50) and
 *     a2 = max(0, a - err)^2 (1 - 2^-50) round down past sqrt's and the
 *     product's own rounding (each within 2^-53 relative).
 *  5. That a2 is at most |q - y|^2 between the stored projections: what
 *     kd_bound_from_parts (kdtree_core.h) takes; it accounts for the float
 *     rounding of the stored projections, the projection's orthonormality
 *     error and distance_core's own float sums, and adds the residual gap
 *     |r_q - r_x|. mag, |y_x| + r_x, is stored rounded up.
 * So no vector whose bound exceeds a key is nearer than that key, and the
 * scan computes exact keys (distance_core, as the operators) for the rest.
 * Infinite or huge values only weaken the bound: an err that rounds up to
 * +inf bounds nothing (a = 0), a yh2 past FLT_MAX is stored as FLT_MAX.
 */
#ifndef IMGS_FAISSFLAT_CORE_H
#define IMGS_FAISSFLAT_CORE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "cxx/cxx_error.h"

#ifdef __cplusplus
extern "C"
{
#endif

#define FF_LEVELS		256		/* code values per dimension: codes are bytes */
/* Codes are read 32 bytes at a time: a code of m dimensions takes ff_code_stride(m) bytes. */
#define FF_CODE_ALIGN	32

static inline int32_t
ff_code_stride(int32_t m)
{
	return (m + FF_CODE_ALIGN - 1) / FF_CODE_ALIGN * FF_CODE_ALIGN;
}

/* The greatest |wq_i| for m dimensions: m * 255 * it stays below 2^31. */
static inline int32_t
ff_wq_max(int32_t m)
{
	int64_t		w = (int64_t) 2147483647 / ((int64_t) (m > 0 ? m : 1) * 255);

	return (int32_t) (w < 32767 ? w : 32767);
}

/*
 * Learns each dimension's range from n projected sample points (n x m,
 * row-major): lo_i = the least value, delta_i = (greatest - least) / 255
 * (a positive float; 1 where every value is the same, or for n == 0).
 * ranges: lo[0..m-1] then delta[0..m-1]. Returns 0, or -1 with err filled.
 */
extern int	ff_ranges_train(const float *proj, int64_t n, int32_t m, float *ranges,
							ImgsError *err) IMGS_NOEXCEPT;

/* Whether ranges (2m floats) are finite with every delta positive. */
extern int	ff_ranges_valid(const float *ranges, int32_t m) IMGS_NOEXCEPT;

/*
 * Codes y (m coordinates) into code (ff_code_stride(m) bytes; the padding
 * is zero) and returns its err and yh2 (see above).
 */
extern void ff_encode(const float *ranges, int32_t m, const float *y, uint8_t *code,
					  float *err, float *yh2) IMGS_NOEXCEPT;

/* The magnitude an entry stores: |y| + r, computed in double, rounded up to float. */
extern float ff_magnitude(const float *y, int32_t m, float resid) IMGS_NOEXCEPT;

/* A query, prepared once (steps 2 and 3): what ff_dots and ff_a2 take. */
typedef struct FfQuery
{
	int32_t		m;
	int32_t		stride;			/* ff_code_stride(m) */
	int16_t    *wq;				/* [stride]: the integer weights, 0 past m */
	double		s;				/* their scale */
	double		base;			/* |q|^2 - 2 (C0 + E) */
	double		mag;			/* |q|^2 + 2 sum_i |q_i lo_i| + 2 E: T but for yh2 and |s I| */
} FfQuery;

/*
 * Fills query (wq: the caller's array of ff_code_stride(m) int16) for the
 * stored query projection q (m floats) and the ranges.
 */
extern void ff_query_prepare(const float *ranges, int32_t m, const float *q, FfQuery *query) IMGS_NOEXCEPT;

/*
 * dots[j] = I of code j, for n codes of query->stride bytes each, step
 * (>= query->stride) bytes apart from codes (codes in place in index
 * entries): the AVX-512 kernel where the CPU has it, else AVX2, else
 * ff_dots_ref; all yield the same integers.
 */
extern void ff_dots(const FfQuery *query, const uint8_t *codes, size_t step, int64_t n,
					int32_t *dots) IMGS_NOEXCEPT;
/* The portable reference of ff_dots. */
extern void ff_dots_ref(const FfQuery *query, const uint8_t *codes, size_t step, int64_t n,
						int32_t *dots) IMGS_NOEXCEPT;
/* Which kernel ff_dots runs here: 2 AVX-512, 1 AVX2, 0 portable. */
extern int	ff_dots_kernel(void) IMGS_NOEXCEPT;

/* Step 4: a lower bound of |q - y|^2 from the code's I, err and yh2. */
static inline double
ff_a2(const FfQuery *query, int32_t dot, float err, float yh2)
{
	double		sdot = query->s * (double) dot;
	double		t = query->mag + (double) yh2 + 2 * (sdot < 0 ? -sdot : sdot);
	double		a = query->base + (double) yh2 - 2 * sdot - 0x1p-40 * t;

	/* a NaN fails the comparisons: it never reaches the bound (and this vectorises, fmax does not) */
	a = sqrt(a > 0 ? a : 0) * (1 - 0x1p-50) - (double) err;
	a = a > 0 ? a : 0;
	return a * a * (1 - 0x1p-50);
}

/* a2[j] = ff_a2 of entry j, for n entries (the same arithmetic, vectorised). */
extern void ff_a2_many(const FfQuery *query, const int32_t *dots, const float *err, const float *yh2,
					   int64_t n, double *a2) IMGS_NOEXCEPT;

/*
 * ff_dots and ff_a2_many over n entries (codes step bytes apart, err and
 * yh2 per entry) on up to `threads` threads (cxx/parallel.hpp), a chunk of
 * FF_PASS_CHUNK entries at a time, polling for a cancel between chunks:
 * a2[j], the same on any number of threads; unless dots is NULL, dots[j]
 * too (else each chunk's integers stay in a buffer of its own); and,
 * unless chunk_min is NULL, chunk_min[c] = the least a2 of chunk c
 * (entries c FF_PASS_CHUNK on), so that a caller looking for small a2
 * skips whole chunks. False with *error set on a failure (a cancel:
 * IMGS_SQLSTATE_QUERY_CANCELED).
 */
#define FF_PASS_CHUNK 4096
extern bool ff_a2_pass(const FfQuery *query, const uint8_t *codes, size_t step, int64_t n, const float *err,
					   const float *yh2, int32_t threads, int32_t *dots, double *a2, double *chunk_min,
					   ImgsError *error) IMGS_NOEXCEPT;

#ifdef __cplusplus
}
#endif

#endif
