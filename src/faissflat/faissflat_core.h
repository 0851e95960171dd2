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

#include <float.h>
#include <math.h>
#include <stdbool.h>
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

/*
 * The staged bound: a first pass over few bytes a vector. The m coded
 * dimensions are cut at FF_CUT_FIRST, twice that, ... (the cuts below m, at
 * most FF_CUTS_MAX). For a cut at h, P the first h coordinates and P' the
 * others, |q - y|^2 = |P(q - y)|^2 + |P'(q - y)|^2 exactly, and
 *  6. |P(q - y)| >= |P(q - yh)| - err, since |P(y - yh)| <= |y - yh| <= err;
 *     |P(q - yh)|^2 >= A_h: step 4 over the first h dimensions, with the
 *     entry's head2 <= |P yh|^2 for yh2 and the query's |Pq|^2, C0 and E
 *     over them (its integers wq the same: I_h, their first h products, is
 *     as exact).
 *  7. |P'(q - y)| >= | |P'q| - |P'y| |, and |P'y| lies within err of |P'yh|:
 *     so |P'(q - y)| >= max(0, gap - err), gap the distance between the
 *     intervals that hold |P'q| ([tq_lo, tq_hi]: computed in double from the
 *     floats q, within 2^-41 relative, padded to 2^-40) and |P'yh|
 *     ([tail, tail (1 + 2^-20) + pad + 2^-140]: ff_cut_norms stores tail
 *     rounded down past the double sum's error, 2^-41 relative plus 2^-53
 *     of M = sum_{i>=h} |lo_i| + delta_i c_i for each yh_i, so that
 *     |P'yh| <= tail (1 + 2^-22) + 2^-148 + 2^-50 M, and pad = 2^-48 R with
 *     R = sum_{i>=h} |lo_i| + 255 delta_i >= M; a tail of FLT_MAX bounds
 *     nothing above).
 *  8. a2_h = (max(0, sqrt(A_h) (1 - 2^-50) - err)^2
 *            + max(0, gap (1 - 2^-50) - err)^2) (1 - 2^-49)
 *     is at most |q - y|^2 between the stored projections: the differences
 *     are rounded down as in step 4, and the two squares and their sum
 *     round within 3 2^-53 relative. kd_bound_from_parts takes it as it
 *     takes ff_a2.
 * The scan's first pass reads FF_CUT_FIRST bytes of each code (a copy of
 * its head), its head2 and tail at the first cut, and err: 44 bytes where
 * the whole code is 532 at 512 dimensions; the vectors that pass on go on
 * cut by cut (ff_a2_refine_pass).
 */
#define FF_CUT_FIRST	32
#define FF_CUTS_MAX		4

/* How many cuts m coded dimensions have: FF_CUT_FIRST << k below m. */
static inline int32_t
ff_cuts(int32_t m)
{
	int32_t		k = 0;

	while (k < FF_CUTS_MAX && (FF_CUT_FIRST << k) < m)
		k++;
	return k;
}

/*
 * An entry's norms at each cut k < ff_cuts(m) (step 7): head2[k] <= |P yh|^2
 * and tail[k] <= |P'yh|, from its code.
 */
extern void ff_cut_norms(const float *ranges, int32_t m, const uint8_t *code, float *head2,
						 float *tail) IMGS_NOEXCEPT;

/* The query's side of a cut (ff_query_cuts): as FfQuery's, over the first h dimensions, and |P'q|. */
typedef struct FfCut
{
	int32_t		h;				/* the cut: FF_CUT_FIRST << k */
	double		base;
	double		mag;
	double		tq_lo;			/* |P'q| lies within them */
	double		tq_hi;
	double		pad;			/* the entries' tail: |P'yh| <= tail (1 + 2^-20) + pad + 2^-140 */
} FfCut;

/*
 * cuts[k] for k < ff_cuts(m), for the query q that query was prepared for
 * (its wq and s): returns ff_cuts(m).
 */
extern int32_t ff_query_cuts(const float *ranges, int32_t m, const float *q, const FfQuery *query,
							 FfCut *cuts) IMGS_NOEXCEPT;

/* Step 8: a lower bound of |q - y|^2 from I_h (the first h products), err, head2 and tail at the cut. */
static inline double
ff_a2_cut(const FfQuery *query, const FfCut *cut, int32_t dot, float err, float head2, float tail)
{
	double		sdot = query->s * (double) dot;
	double		t = cut->mag + (double) head2 + 2 * (sdot < 0 ? -sdot : sdot);
	double		a = cut->base + (double) head2 - 2 * sdot - 0x1p-40 * t;
	double		tail_hi = tail >= FLT_MAX ? INFINITY : (double) tail * (1 + 0x1p-20) + cut->pad + 0x1p-140;
	double		gap = cut->tq_lo - tail_hi;
	double		below = (double) tail - cut->tq_hi;

	gap = gap > below ? gap : below;
	gap = gap * (1 - 0x1p-50) - (double) err;
	gap = gap > 0 ? gap : 0;
	/* a NaN fails the comparisons, as in ff_a2 */
	a = sqrt(a > 0 ? a : 0) * (1 - 0x1p-50) - (double) err;
	a = a > 0 ? a : 0;
	return (a * a + gap * gap) * (1 - 0x1p-49);
}

/*
 * The heads: each code's first FF_CUT_FIRST bytes, in blocks of
 * FF_HEAD_BLOCK entries laid out by pairs of dimensions (pair p of entry r
 * of a block at byte 2 (p FF_HEAD_BLOCK + r)), so that the kernel takes a
 * block's 16 dot products at once with no sum across lanes (a code's 32
 * bytes summed alone cost more than they take to read).
 * ff_head_bytes(n): the bytes n entries' heads take (whole blocks; the
 * entries past n in the last block are zero or stale: their dots are
 * computed and never used). ff_head_put: entry j's head from its code.
 */
#define FF_HEAD_BLOCK	16

static inline size_t
ff_head_bytes(int64_t n)
{
	return (size_t) ((n + FF_HEAD_BLOCK - 1) / FF_HEAD_BLOCK) * FF_HEAD_BLOCK * FF_CUT_FIRST;
}

static inline void
ff_head_put(uint8_t *head, int64_t j, const uint8_t *code)
{
	uint8_t    *block = head + (size_t) (j / FF_HEAD_BLOCK) * FF_HEAD_BLOCK * FF_CUT_FIRST;
	int			r = (int) (j % FF_HEAD_BLOCK);

	for (int p = 0; p < FF_CUT_FIRST / 2; p++)
	{
		block[2 * (p * FF_HEAD_BLOCK + r)] = code[2 * p];
		block[2 * (p * FF_HEAD_BLOCK + r) + 1] = code[2 * p + 1];
	}
}

/*
 * The staged scan's first pass: a2[j] = ff_a2_cut at the first cut of entry
 * j, from its head (heads: ff_head_put's blocks), err, head2 and tail (the
 * first cut's), on up to `threads` threads, and chunk_min[c] its least per
 * chunk of FF_PASS_CHUNK (as ff_a2_pass); the same doubles as ff_a2_cut's
 * on any kernel.
 */
extern bool ff_a2_head_pass(const FfQuery *query, const FfCut *cuts, const uint8_t *head, int64_t n,
							const float *err, const float *head2, const float *tail, int32_t threads,
							double *a2, double *chunk_min, ImgsError *error) IMGS_NOEXCEPT;

/*
 * How the staged scan's second pass went: passed entries were below the
 * limit after the first cut; entries[k] of them took cut k's
 * bound (k < ncuts), entries[ncuts] the whole code's; chunks[k], the
 * chunks where more than 1/FF_DENSE_SHARE of the entries passed cut k and
 * went on with the whole rest of the code at once (k = 0: the whole chunk,
 * read in a row).
 */
#define FF_DENSE_SHARE	8
typedef struct FfRefineStats
{
	int64_t		passed;			/* entries whose first-cut bound was below the limit */
	int64_t		entries[FF_CUTS_MAX + 1];
	int64_t		chunks[FF_CUTS_MAX + 1];
} FfRefineStats;

/*
 * The staged scan's second pass: each entry j whose a2[j] is below
 * a2_limit goes on cut by cut (head2 and tail: ff_cuts(m) arrays of n
 * floats, the norms at each cut), its a2[j] raised to each bound in turn
 * (all are bounds: the greatest is), until it reaches a2_limit or has
 * the whole code's ff_a2. Where more than 1/FF_DENSE_SHARE of a chunk's
 * entries pass a cut, they take the rest of the code at once (past the
 * first cut: every entry of the chunk, as ff_a2_pass; picking them out
 * costs more than reading them all). Chunks whose chunk_min is
 * at a2_limit are not read; chunk_min is raised to the chunk's new least.
 * codes: n codes of query->stride bytes, step apart. Polls for a cancel
 * between chunks; false with *error set on a failure.
 */
extern bool ff_a2_refine_pass(const FfQuery *query, const FfCut *cuts, const uint8_t *codes, size_t step,
							  int64_t n, const float *err, const float *yh2, float *const *head2,
							  float *const *tail, double a2_limit, int32_t threads, double *a2,
							  double *chunk_min, FfRefineStats *stats, ImgsError *error) IMGS_NOEXCEPT;

/*
 * The (up to) want entries of least a2 among n, in out sorted by (a2,
 * entry); chunk_min[c] is at most the least a2 of chunk c (FF_PASS_CHUNK
 * entries), so that chunks that cannot hold one are skipped. Returns how
 * many (want, or n if less); false with *error set on a failure.
 */
extern bool ff_least(const double *a2, int64_t n, const double *chunk_min, int64_t want, uint32_t *out,
					 int64_t *found, ImgsError *error) IMGS_NOEXCEPT;

/*
 * dots[j] = the sum of wq_i c_i over i in [from, to) (multiples of 32, to
 * <= query->stride) of code rows[j] (codes step bytes apart): ff_dots'
 * kernel on listed codes and a span of their bytes.
 */
extern void ff_dots_rows(const FfQuery *query, int32_t from, int32_t to, const uint8_t *codes, size_t step,
						 const uint32_t *rows, int64_t n, int32_t *dots) IMGS_NOEXCEPT;

#ifdef __cplusplus
}
#endif

#endif
