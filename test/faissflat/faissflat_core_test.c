/*
 * faissflat_core_test.c — standalone test of faissflat's SQ8 codes and their
 * lower bound (faissflat_core.h) against brute force, in plain C. Built by
 * CMake as unit/faissflat (test/check.sh unit/faissflat); by hand:
 * build/test/faissflat_core_test [seed]. Exits non-zero on failure, each
 * failure naming its check and the seed.
 *
 * Every expected value is computed here, in long double (or int64), from
 * the inputs, never from the core's own results:
 *  1. ranges: ff_ranges_train's lo is the least finite sample value, lo +
 *     255 delta >= the greatest (exactly, in real numbers), delta > 0,
 *     finite and the least float
 *     that covers (at most one float step above (max - min) / 255);
 *     constant or all non-finite columns and n = 0 give lo 0 or the value
 *     and delta 1; NaN and inf sample values are skipped; ff_ranges_valid
 *     rejects NaN, inf, zero and negative deltas and non-finite lo; an
 *     interrupt (test/support) gives -1 with 57014.
 *  2. codes: ff_encode's bytes are those of the nearest grid point (within
 *     delta/2 for a coordinate in range), 0 below the range and 255 above,
 *     the padding up to ff_code_stride(m) is zero and nothing past it is
 *     written; err >= |y - yh| and yh2 <= |yh|^2 (yh_i = lo_i + delta_i c_i)
 *     yet close to them (neither always inf or 0); ff_magnitude >= |y| + r,
 *     close to it.
 *  3. kernels: ff_dots (the kernel ff_dots_kernel names) equals ff_dots_ref
 *     bit for bit and both the int64 sum of wq_i c_i, for m from 1 to 2048
 *     (tails of 32), n odd and even (the AVX-512 kernel takes entries in
 *     pairs) and past the prefetch distance, codes packed and step bytes
 *     apart with garbage between, unaligned buffers, and |wq_i| =
 *     ff_wq_max(m) with every code 255 (no int32 overflow); ff_wq_max is the
 *     greatest such weight.
 *  4. the bound: ff_a2 (and ff_a2_many, bit for bit the same) <= |q - y|^2
 *     of the stored floats, for m 1, 3, 64, 512, on duplicates (q == y: a2
 *     must be 0), zero rows, grid points, coordinates near 1e30 and FLT_MAX
 *     inserted outside the ranges learned, ranges learned on such values,
 *     tiny values (1e-30), mixed scales and ranges learned on a sample
 *     without the points; ff_query_prepare's weights within ff_wq_max, the
 *     greatest at it, 0 past m; and useful: on unit-scale points within the
 *     ranges, a2 >= 0.9 |q - y|^2 for every point not near the query
 *     (farther than a quarter of the mean), which ff_a2 = 0 would fail.
 *     The staged bound too, on the same data: at each cut (ff_cuts),
 *     ff_a2_cut <= |q - y|^2; ff_dots_rows over the cut's first dimensions,
 *     of codes listed in reverse, equals the int64 sum; ff_cut_norms' head2
 *     <= |P yh|^2 and tail <= |P'yh| <= tail (1 + 2^-20) + pad + 2^-140 (long
 *     double); ff_query_cuts' [tq_lo, tq_hi] holds |P'q|, its pad 2^-48 R.
 *  5. end to end, as the scan: PCA (kd_pca_train, m = dim 16 and 64),
 *     kd_project, ranges on the projected build sample, codes in place in
 *     entries, then kd_bound_from_parts(ff_a2_many, |r_q - r_x|, mag_q +
 *     mag_x) <= the exact squared L2 distance of the raw vectors, or 1 - cos
 *     for the cosine metric (long double), and <= distance_core's key, for
 *     stored, held-out, zero and huge queries, on gauss, duplicate/zero,
 *     extreme and CNN-like sets, a third of the later points scaled by 1000;
 *     on gauss L2 the bound averages >= 0.9 of the key.
 *  6. the pass: ff_a2_pass on 1, 2 and 3 threads gives ff_dots' integers
 *     and ff_a2_many's doubles bit for bit (the doubles also without the
 *     integers wanted back) and each chunk's least a2
 *     (nothing past the last chunk), over entries in place (step
 *     past the code) across several chunks and a ragged last one; a cancel
 *     (imgs_interrupt_pending) gives false and 57014, at the first poll and
 *     midway; every fault point of ff_a2_pass (as faissflat_core.cpp names
 *     them) gives 53200, and the same call then succeeds.
 *  7. the staged pass (m = 300: four cuts, a ragged last span; a steep
 *     spectrum, duplicates and zero rows): ff_cuts' counts; ff_a2_head_pass
 *     gives ff_a2_cut at the first cut bit for bit on 1-3 threads, bounds,
 *     and each chunk's least; ff_a2_refine_pass below a limit that 300
 *     entries are within, 6 are, and none (every chunk read whole): no a2
 *     lowered, none past the limit changed but to the whole code's bound
 *     (a chunk read whole), every one still a bound,
 *     those left below the limit at least the whole code's ff_a2, fewer
 *     entries at each cut, chunk minima the least (unread chunks'
 *     untouched), the same doubles and counts on 1-3 threads; ff_least
 *     against a sort of (a2, entry) for 0, 1, 64, 4096, n - 1, n and n + 5
 *     wanted, with and without ties, and where its sample misleads it
 *     (its fallback); cancels of both passes; and every
 *     fault point of the staged functions and ff_least gives 53200, then
 *     the same call succeeds.
 * FF_TEST_BIAS (0 unless -D) is added to every a2 before it is compared
 * (a2_all), to show the checks fail: -DFF_TEST_BIAS=0.01 or 1e-9 fails 4
 * and 5; 'a2[j]*0x1p-36' fails 4 (in one dimension the bound is that tight);
 * '(-a2[j])', a2 = 0, fails the usefulness checks of 4 and 5.
 */
#include "faissflat/faissflat_core.h"
#include "kdtree/kdtree_core.h"
#include "index/distance_core.h"
#include "core_test_support.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef FF_TEST_BIAS
#define FF_TEST_BIAS 0
#endif

static uint64_t seed;

static int	failures = 0;
static int	check_no = 0;
static int	check_failures[8];
static const char *const check_names[8] = {"", "1 ranges", "2 encode", "3 dots", "4 bound", "5 end to end",
										   "6 pass", "7 staged"};

#define CHECK(cond, ...) do { if (!(cond)) { failures++; check_failures[check_no]++; if (failures < 40) { \
	fprintf(stderr, "FAIL check %s (seed %llu) %s:%d: ", check_names[check_no], (unsigned long long) seed, \
			__FILE__, __LINE__); \
	fprintf(stderr, __VA_ARGS__); fprintf(stderr, "\n"); } } } while (0)

/* Starts check number: its failures are counted apart, its data come from the seed alone. */
static void
begin_check(int number)
{
	check_no = number;
	imgs_test_rng = seed * 0x2545f4914f6cdd1dULL + (uint64_t) number;
}

static float
clampf(double v)
{
	return (float) fmin(fmax(v, -FLT_MAX), FLT_MAX);
}

/*
 * How far lo + 255 delta falls short of mx in real numbers (<= 0: it
 * covers), exactly in sign: TwoSum gives mx - lo exactly as s + e.
 */
static long double
shortfall(float lo, float delta, float mx)
{
	long double a = 255.0L * delta;	/* exact: 8 + 24 bits */
	long double b = -(long double) lo;
	long double s = (long double) mx + b;
	long double bb = s - mx;
	long double e = ((long double) mx - (s - bb)) + (b - bb);

	/* a > s: a is at least the long double after s, past s + e; else s - a (exact when a is near s) */
	return a > s ? -1 : (s - a) + e;
}


/* |q - y|^2 of m floats in long double (64-bit mantissa on x86): exact but for exact_slack. */
static long double
exact_d2(const float *q, const float *y, int m)
{
	long double s = 0;

	for (int i = 0; i < m; i++)
	{
		long double d = (long double) q[i] - (long double) y[i];

		s += d * d;
	}
	return s;
}

/* exact_d2's own rounding: far below the core's pads (2^-40 and more) */
static long double
exact_slack(long double v, int m)
{
	return v * (m + 4) * 0x1p-62L;
}

/* ---- 1. ranges ----------------------------------------------------------- */

static void check_encode(const float *ranges, int m, const float *y, const char *what);

/* Checks ranges learned on proj (n x m) against the brute-force min and max of each column. */
static void
check_ranges(const char *what, const float *proj, int64_t n, int m)
{
	float	   *ranges = malloc(sizeof(float) * 2 * m);
	ImgsError	err;
	int			rc;

	memset(&err, 0, sizeof err);
	rc = ff_ranges_train(proj, n, m, ranges, &err);
	CHECK(rc == 0 && err.sqlstate[0] == '\0', "%s: ff_ranges_train %d (%s %s)", what, rc, err.sqlstate, err.message);
	CHECK(ff_ranges_valid(ranges, m), "%s m %d n %ld: ranges not valid", what, m, (long) n);
	for (int i = 0; i < m; i++)
	{
		float		lo = ranges[i],
					delta = ranges[m + i];
		float		mn = INFINITY,
					mx = -INFINITY;

		for (int64_t j = 0; j < n; j++)
		{
			float		v = proj[(size_t) j * m + i];

			if (isfinite(v))
			{
				mn = v < mn ? v : mn;
				mx = v > mx ? v : mx;
			}
		}
		CHECK(delta > 0 && isfinite(delta) && isfinite(lo), "%s column %d: lo %g delta %g", what, i, lo, delta);
		if (!(mn <= mx))
		{
			/* no finite value (n = 0 too) */
			CHECK(lo == 0 && delta == 1, "%s column %d: no finite value: lo %g delta %g", what, i, lo, delta);
			continue;
		}
		if (mn == mx)
		{
			CHECK(lo == mn && delta == 1, "%s column %d: constant %g: lo %g delta %g", what, i, mn, lo, delta);
			continue;
		}
		CHECK(lo == mn, "%s column %d: lo %.9g, least value %.9g", what, i, lo, mn);
		{
			long double sh = shortfall(lo, delta, mx);

			/* none short, also where greatest - lo rounds in double: {-1e-30, 255} */
			CHECK(sh <= 0,
				  "%s column %d: lo %.9g + 255 delta %.9g < greatest value %.9g by %.9Lg", what, i, lo, delta, mx, sh);
		}
		/* the least float step that covers: the float below it does not (or delta is the least float) */
		CHECK(delta == nextafterf(0.0f, 1.0f) ||
			  shortfall(lo, nextafterf(delta, 0.0f), mx) > 0,
			  "%s column %d: delta %.9g is not the least float step from %.9g that reaches %.9g", what, i, delta, mn, mx);
	}
	/* and the sample's finite rows code within the ranges (check 2's checks) */
	for (int64_t j = 0; j < n; j++)
	{
		int			finite = 1;

		for (int i = 0; i < m; i++)
			finite &= isfinite(proj[(size_t) j * m + i]) != 0;
		if (finite)
			check_encode(ranges, m, proj + (size_t) j * m, what);
	}
	free(ranges);
}

static void
test_ranges(void)
{
	static const int ms[] = {1, 3, 17, 64, 130};
	float		bad[] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, -1.0f, -FLT_MIN};
	float		ranges[8],
				out[2 * 130];
	float	   *proj = malloc(sizeof(float) * 300 * 130);
	ImgsError	err;

	begin_check(1);
	for (int mi = 0; mi < 5; mi++)
		for (int kind = 0; kind < 5; kind++)
		{
			int			m = ms[mi];
			int64_t		n = kind == 4 ? 0 : kind == 3 ? 1 : 2 + (int64_t) (imgs_test_next_u64() % 299);
			char		what[64];

			for (int64_t j = 0; j < n; j++)
				for (int i = 0; i < m; i++)
				{
					double		v = imgs_test_gauss();

					if (kind == 1)
						/* scales 10^[-30, 37], FLT_MAX, tiny and denormal values, constant columns */
						v = i % 5 == 0 ? 3.5 : i % 5 == 1 ? v * FLT_MAX / 4 : i % 5 == 2 ? v * 1e-44 :
							v * pow(10.0, -30 + (double) (imgs_test_next_u64() % 68));
					else if (kind == 2 && imgs_test_next_u64() % 4 == 0)
						/* non-finite values are skipped; a column of them alone gives lo 0, delta 1 */
						v = (i % 7 == 0 || imgs_test_next_u64() % 3 == 0) ? NAN : imgs_test_next_u64() % 2 ? INFINITY : -INFINITY;
					if (kind == 2 && i % 7 == 0)
						v = imgs_test_next_u64() % 2 ? NAN : INFINITY;
					proj[(size_t) j * m + i] = isfinite(v) ? clampf(v) : (float) v;
				}
			snprintf(what, sizeof what, "kind %d m %d n %ld", kind, m, (long) n);
			check_ranges(what, proj, n, m);
		}

	/* columns at the edges: a step that rounds, one denormal apart, the whole float line, -0 and 0 */
	{
		static const float cols[][2] = {
			{-1e-30f, 255.0f}, {-1e-30f, 510.0f}, {1e-30f, 255.0f}, {0.0f, 1.4e-45f}, {-FLT_MAX, FLT_MAX},
			{1e30f, 1.0000001e30f}, {-0.0f, 0.0f}, {1.0f, 1.0f + FLT_EPSILON}, {-3.0f, 1e-38f},
			{-1e-30f, 255.0f * 1024}, {-FLT_MIN, 255.0f * 0x1p-100f},
		};
		int			nc = (int) (sizeof cols / sizeof cols[0]);
		float		p[2 * 16];

		for (int i = 0; i < nc; i++)
		{
			p[i] = cols[i][0];
			p[nc + i] = cols[i][1];
		}
		check_ranges("edge columns", p, 2, nc);
	}

	/* ff_ranges_valid: only finite lo and finite positive delta */
	for (int b = 0; b < (int) (sizeof bad / sizeof bad[0]); b++)
	{
		for (int i = 0; i < 4; i++)
		{
			ranges[i] = (float) i;
			ranges[4 + i] = 0.5f;
		}
		CHECK(ff_ranges_valid(ranges, 4), "valid ranges rejected");
		ranges[4 + 2] = bad[b];
		CHECK(!ff_ranges_valid(ranges, 4), "delta %g accepted", bad[b]);
		ranges[4 + 2] = 0.5f;
		if (!isfinite(bad[b]))
		{
			ranges[3] = bad[b];
			CHECK(!ff_ranges_valid(ranges, 4), "lo %g accepted", bad[b]);
		}
	}
	ranges[3] = 3.0f;
	ranges[4 + 3] = nextafterf(0.0f, 1.0f);
	CHECK(ff_ranges_valid(ranges, 4), "a denormal delta rejected");

	/* an interrupt (test/support) fails it with 57014 */
	memset(&err, 0, sizeof err);
	imgs_test_interrupt_after(0);
	CHECK(ff_ranges_train(proj, 10, 130, out, &err) == -1 &&
		  imgs_test_error_is(&err, IMGS_SQLSTATE_QUERY_CANCELED),
		  "interrupted ff_ranges_train: not -1 with 57014 (%s)", err.sqlstate);
	imgs_test_interrupt_after(-1);
	free(proj);
}

/* ---- 2. codes ------------------------------------------------------------ */

/* Learns ranges on n rows of columns of scale col_scale[i] (gauss). */
static void
train_gauss_ranges(float *ranges, int m, int64_t n, const double *col_scale, float *sample)
{
	ImgsError	err;

	for (int64_t j = 0; j < n; j++)
		for (int i = 0; i < m; i++)
			sample[(size_t) j * m + i] = clampf(imgs_test_gauss() * col_scale[i]);
	CHECK(ff_ranges_train(sample, n, m, ranges, &err) == 0, "ff_ranges_train: %s", err.message);
}

/* One point's code, err and yh2, and its magnitude, against the brute force. */
static void
check_encode(const float *ranges, int m, const float *y, const char *what)
{
	int32_t		stride = ff_code_stride(m);
	uint8_t    *code = malloc((size_t) stride + 16);
	float		err = -1,
				yh2 = -1,
				mag;
	long double e2 = 0,
				h2 = 0,
				sum_abs = 0,
				y2 = 0;
	int			far_codes = 0,
				in_codes = 0,
				pad = 0;

	memset(code, 0xa5, (size_t) stride + 16);
	ff_encode(ranges, m, y, code, &err, &yh2);
	for (int32_t i = m; i < stride; i++)
		pad += code[i] != 0;
	for (int32_t i = stride; i < stride + 16; i++)
		pad += code[i] != 0xa5;
	CHECK(pad == 0, "%s m %d: padding not zero or written past the stride", what, m);
	for (int i = 0; i < m; i++)
	{
		long double lo = ranges[i],
					delta = ranges[m + i];
		long double yh = lo + delta * code[i];
		long double d = (long double) y[i] - yh;
		long double hi = lo + 255 * delta;

		e2 += d * d;
		h2 += yh * yh;
		y2 += (long double) y[i] * y[i];
		sum_abs += fabsl((long double) y[i]) + fabsl(yh) + fabsl(lo);
		if (y[i] < lo)
			far_codes += code[i] != 0;
		else if (y[i] > hi)
			far_codes += code[i] != 255;
		/* the nearest grid point: (y - lo) / delta rounds twice in double, 2^-43 of delta */
		else if (!(fabsl(d) <= delta * (0.5L + 0x1p-30L)))
			in_codes++;
	}
	CHECK(far_codes == 0, "%s m %d: %d coordinates out of the range not clamped to 0 or 255", what, m, far_codes);
	CHECK(in_codes == 0, "%s m %d: %d coordinates in the range farther than delta/2 from their grid point",
		  what, m, in_codes);
	/* err >= |y - yh|, yh2 <= |yh|^2, both up to the long double rounding here (2^-60: the core pads 2^-50) */
	CHECK(err >= 0 && (long double) err >= sqrtl(e2) * (1 - (m + 4) * 0x1p-63L) - 0x1p-60L * sum_abs,
		  "%s m %d: err %.9g < |y - yh| %.20Lg", what, m, err, sqrtl(e2));
	CHECK(yh2 >= 0 && yh2 <= FLT_MAX && (long double) yh2 <= h2 + exact_slack(h2, m) + 0x1p-60L * sum_abs * sum_abs,
		  "%s m %d: yh2 %.9g > |yh|^2 %.20Lg", what, m, yh2, h2);
	/*
	 * and close to them (a float step, the pads, a denormal step of 2^-149):
	 * err inf and yh2 FLT_MAX only where the values are
	 */
	CHECK((long double) err <= sqrtl(e2) * (1 + 0x1p-22L) + 0x1p-40L * sum_abs + 0x1p-148L ||
		  (isinf(err) && sqrtl(e2) * (1 + 0x1p-22L) + 0x1p-40L * sum_abs > FLT_MAX),
		  "%s m %d: err %.9g far above |y - yh| %.20Lg", what, m, err, sqrtl(e2));
	CHECK((long double) yh2 >= fminl(h2, FLT_MAX) * (1 - 0x1p-22L) - 0x1p-40L * sum_abs * sum_abs - 0x1p-148L,
		  "%s m %d: yh2 %.9g far below |yh|^2 %.20Lg", what, m, yh2, h2);

	/* ff_magnitude: |y| + r rounded up, within a float step */
	{
		float		r = (float) (imgs_test_unif() * 3);
		long double want = sqrtl(y2) + r;

		mag = ff_magnitude(y, m, r);
		CHECK((long double) mag >= want &&
			  ((long double) mag <= want * (1 + 0x1p-22L) || (isinf(mag) && want * (1 + 0x1p-22L) > FLT_MAX)),
			  "%s m %d: ff_magnitude %.9g, |y| + r %.20Lg", what, m, mag, want);
	}
	free(code);
}

static void
test_encode(void)
{
	static const int ms[] = {1, 3, 7, 31, 32, 33, 64, 100, 512};
	float	   *sample = malloc(sizeof(float) * 200 * 512);
	float	   *ranges = malloc(sizeof(float) * 2 * 512);
	float	   *y = malloc(sizeof(float) * 512);
	double	   *scale = malloc(sizeof(double) * 512);

	begin_check(2);
	for (int mi = 0; mi < 9; mi++)
		for (int scales = 0; scales < 3; scales++)
		{
			int			m = ms[mi];

			/* unit columns; mixed scales 10^[-30, 30]; columns near 1e30 and FLT_MAX */
			for (int i = 0; i < m; i++)
				scale[i] = scales == 0 ? 1 : scales == 1 ? pow(10.0, -30 + (double) (imgs_test_next_u64() % 61)) :
					i % 2 ? 1e30 : FLT_MAX / 3;
			train_gauss_ranges(ranges, m, 200, scale, sample);
			for (int p = 0; p < 40; p++)
			{
				const char *what;

				for (int i = 0; i < m; i++)
				{
					long double lo = ranges[i],
								delta = ranges[m + i];

					switch (p % 8)
					{
						case 0:		/* a sample point */
							y[i] = sample[(size_t) (imgs_test_next_u64() % 200) * m + i];
							break;
						case 1:		/* anywhere in the range */
							y[i] = clampf((double) (lo + delta * 255 * (long double) imgs_test_unif()));
							break;
						case 2:		/* on the grid, and halfway between (ties) */
							y[i] = clampf((double) (lo + delta * ((long double) (imgs_test_next_u64() % 256) + (i % 2) * 0.5L)));
							break;
						case 3:		/* outside, by a little */
							y[i] = clampf((double) (imgs_test_next_u64() % 2 ? lo - delta * imgs_test_unif() : lo + delta * (255 + imgs_test_unif())));
							break;
						case 4:		/* inserted later, 1000 times out */
							y[i] = clampf(imgs_test_gauss() * scale[i] * 1000);
							break;
						case 5:		/* near FLT_MAX */
							y[i] = (imgs_test_next_u64() % 2 ? 1 : -1) * (float) (FLT_MAX * (1 - 0.1 * imgs_test_unif()));
							break;
						case 6:		/* 1e30 and tiny */
							y[i] = i % 2 ? (float) (imgs_test_gauss() * 1e30) : (float) (imgs_test_gauss() * 1e-30);
							break;
						default:	/* zero */
							y[i] = 0;
					}
				}
				what = (const char *[]) {"sample", "in range", "grid", "just outside", "x1000", "FLT_MAX", "1e30",
					"zero"}[p % 8];
				check_encode(ranges, m, y, what);
			}
		}
	free(sample);
	free(ranges);
	free(y);
	free(scale);
}

/* ---- 3. kernels ---------------------------------------------------------- */

/*
 * n codes of m dimensions, step bytes apart (codes in place in entries: the
 * bytes between them are garbage the kernels must not read as codes).
 */
static void
check_dots(int m, int64_t n, size_t step, int mode)
{
	int32_t		stride = ff_code_stride(m);
	int32_t		wmax = ff_wq_max(m);
	size_t		size = (size_t) (n - 1) * step + (size_t) stride;
	/* one byte / one int16 off: the kernels load unaligned */
	uint8_t    *codes_buf = malloc(size + 1);
	int16_t    *wq_buf = malloc(sizeof(int16_t) * (stride + 1));
	int32_t    *dots = malloc(sizeof(int32_t) * n);
	int32_t    *dots_ref = malloc(sizeof(int32_t) * n);
	uint8_t    *codes = codes_buf + 1;
	FfQuery		query;
	int64_t		bad = 0;

	query.m = m;
	query.stride = stride;
	query.wq = wq_buf + 1;
	query.s = 1;
	query.base = query.mag = 0;
	for (int32_t i = 0; i < stride; i++)
	{
		int32_t		w;

		switch (mode)
		{
			case 0:
				w = (int32_t) (imgs_test_next_u64() % (2 * (uint64_t) wmax + 1)) - wmax;
				break;
			case 1:
				w = wmax;
				break;
			case 2:
				w = -wmax;
				break;
			default:
				w = i % 2 ? wmax : -wmax;
		}
		query.wq[i] = (int16_t) (i < m ? w : 0);
	}
	for (size_t b = 0; b < size; b++)
		codes[b] = (uint8_t) imgs_test_next_u64();
	for (int64_t j = 0; j < n; j++)
		for (int32_t i = 0; i < stride; i++)
			codes[(size_t) j * step + i] = i >= m ? 0 : mode == 0 && j % 5 ? (uint8_t) imgs_test_next_u64() :
				mode == 3 && j % 2 ? (uint8_t) (i % 2 ? 0 : 255) : 255;
	ff_dots(&query, codes, step, n, dots);
	ff_dots_ref(&query, codes, step, n, dots_ref);
	for (int64_t j = 0; j < n; j++)
	{
		int64_t		want = 0;

		for (int32_t i = 0; i < m; i++)
			want += (int64_t) query.wq[i] * codes[(size_t) j * step + i];
		CHECK(want < INT32_MAX && want > INT32_MIN, "m %d: |sum| %lld past int32 at |wq| <= %d", m, (long long) want, wmax);
		if (dots[j] != want || dots_ref[j] != want)
		{
			if (bad < 3)
				fprintf(stderr, "m %d n %ld step %zu mode %d entry %ld: kernel %d, reference %d, exact %lld\n", m,
						(long) n, step, mode, (long) j, dots[j], dots_ref[j], (long long) want);
			bad++;
		}
	}
	CHECK(bad == 0, "m %d n %ld step %zu mode %d: %ld dots differ (kernel %d, reference, int64 sum)", m, (long) n,
		  step, mode, (long) bad, ff_dots_kernel());
	free(codes_buf);
	free(wq_buf);
	free(dots);
	free(dots_ref);
}

static void
test_dots(void)
{
	static const int ms[] = {1, 2, 7, 16, 31, 32, 33, 63, 64, 65, 100, 255, 256, 511, 512, 1000, 2048};
	/* odd and even; past the kernels' prefetch distance (8 entries ahead) */
	static const int64_t ns[] = {1, 2, 3, 4, 5, 16, 17, 63, 100};

	begin_check(3);
	for (int mi = 0; mi < (int) (sizeof ms / sizeof ms[0]); mi++)
	{
		CHECK((int64_t) ms[mi] * 255 * ff_wq_max(ms[mi]) <= INT32_MAX && ff_wq_max(ms[mi]) <= 32767 &&
			  ((int64_t) ms[mi] * 255 * (ff_wq_max(ms[mi]) + 1) > INT32_MAX || ff_wq_max(ms[mi]) == 32767),
			  "ff_wq_max(%d) = %d: not the greatest weight below int32", ms[mi], ff_wq_max(ms[mi]));
		CHECK(ff_code_stride(ms[mi]) % 32 == 0 && ff_code_stride(ms[mi]) >= ms[mi] && ff_code_stride(ms[mi]) < ms[mi] + 32,
			  "ff_code_stride(%d) = %d", ms[mi], ff_code_stride(ms[mi]));
		for (int ni = 0; ni < (int) (sizeof ns / sizeof ns[0]); ni++)
			for (int mode = 0; mode < 4; mode++)
			{
				/* codes packed, and in place in entries with an odd header between them */
				check_dots(ms[mi], ns[ni], (size_t) ff_code_stride(ms[mi]), mode);
				check_dots(ms[mi], ns[ni], (size_t) ff_code_stride(ms[mi]) + 13, mode);
			}
	}
}

/* ---- 4. the bound of ff_a2 ----------------------------------------------- */

/*
 * a2 of n entries as the scan gets them, ff_a2_many, which must give ff_a2's
 * doubles bit for bit (counted in *differ); then as the comparisons see
 * them: FF_TEST_BIAS shows they can fail.
 */
static void
a2_all(const FfQuery *query, const int32_t *dots, const float *err, const float *yh2, int64_t n, double *a2,
	   int64_t *differ)
{
	ff_a2_many(query, dots, err, yh2, n, a2);
	for (int64_t j = 0; j < n; j++)
	{
		double		one = ff_a2(query, dots[j], err[j], yh2[j]);

		*differ += memcmp(&one, &a2[j], sizeof(double)) != 0;
		a2[j] += FF_TEST_BIAS;
	}
}

/*
 * Codes n points (n x m) against ranges and checks every query's a2 against
 * the exact squared distance; useful: also that a2 is near it for points
 * not near the query.
 */
static void
bound_case(const char *what, int m, const float *ranges, const float *pts, int64_t n, const float *qs, int nq,
		   int useful)
{
	int32_t		stride = ff_code_stride(m);
	uint8_t    *codes = malloc((size_t) n * stride);
	float	   *err = malloc(sizeof(float) * n);
	float	   *yh2 = malloc(sizeof(float) * n);
	int32_t    *dots = malloc(sizeof(int32_t) * n);
	double	   *a2s = malloc(sizeof(double) * n);
	long double *ex = malloc(sizeof(long double) * n);
	int16_t    *wq = malloc(sizeof(int16_t) * stride);
	int32_t		ncuts = ff_cuts(m);
	float	   *head2 = malloc(sizeof(float) * n * FF_CUTS_MAX);
	float	   *tail = malloc(sizeof(float) * n * FF_CUTS_MAX);
	uint32_t   *rows = malloc(sizeof(uint32_t) * n);
	int64_t		cut_violations = 0,
				cut_dots_wrong = 0,
				norms_wrong = 0,
				tq_wrong = 0;
	int64_t		violations = 0,
				many_differ = 0,
				weak = 0,
				far = 0,
				prep_bad = 0;
	long double sum_a2 = 0,
				sum_ex = 0;

	for (int64_t j = 0; j < n; j++)
	{
		ff_encode(ranges, m, pts + (size_t) j * m, codes + (size_t) j * stride, &err[j], &yh2[j]);
		ff_cut_norms(ranges, m, codes + (size_t) j * stride, head2 + j * FF_CUTS_MAX, tail + j * FF_CUTS_MAX);
		rows[j] = (uint32_t) (n - 1 - j);	/* listed in reverse: ff_dots_rows follows the list */
	}
	for (int qi = 0; qi < nq; qi++)
	{
		const float *q = qs + (size_t) qi * m;
		FfQuery		query;
		FfCut		cuts[FF_CUTS_MAX];
		long double mean = 0;
		int			at_max = 0;

		query.wq = wq;
		ff_query_prepare(ranges, m, q, &query);
		/* the weights: within ff_wq_max, zero past m, the greatest one at it (the scale is used whole) */
		for (int32_t i = 0; i < stride; i++)
		{
			prep_bad += i < m ? abs(wq[i]) > ff_wq_max(m) : wq[i] != 0;
			at_max |= i < m && abs(wq[i]) == ff_wq_max(m);
		}
		prep_bad += query.m != m || query.stride != stride || !(query.s >= 0) || !isfinite(query.s) ||
			(query.s > 0 && !at_max) || isnan(query.base) || isnan(query.mag);
		ff_dots(&query, codes, (size_t) stride, n, dots);
		a2_all(&query, dots, err, yh2, n, a2s, &many_differ);
		for (int64_t j = 0; j < n; j++)
		{
			ex[j] = exact_d2(q, pts + (size_t) j * m, m);
			mean += ex[j] / n;
		}
		/* the staged bound at each cut (steps 6-8), and what it rests on */
		prep_bad += ff_query_cuts(ranges, m, q, &query, cuts) != ncuts;
		for (int k = 0; k < ncuts; k++)
		{
			int32_t		h = FF_CUT_FIRST << k;
			long double tq = 0,
						r = 0;

			for (int i = h; i < m; i++)
			{
				tq += (long double) q[i] * q[i];
				r += fabsl((long double) ranges[i]) + 255.0L * ranges[m + i];
			}
			tq = sqrtl(tq);
			tq_wrong += cuts[k].h != h || !((long double) cuts[k].tq_lo <= tq) || !(tq <= (long double) cuts[k].tq_hi) ||
				!((long double) cuts[k].pad >= 0x1p-48L * r * (1 - 0x1p-40L));
			ff_dots_rows(&query, 0, h, codes, (size_t) stride, rows, n, dots);
			for (int64_t t = 0; t < n; t++)
			{
				int64_t		j = rows[t];
				const uint8_t *c = codes + (size_t) j * stride;
				int64_t		want = 0;
				long double hh = 0,
							tt = 0,
							tail_hi;
				double		a2;

				for (int i = 0; i < m; i++)
				{
					long double yh = (long double) ranges[i] + (long double) ranges[m + i] * c[i];

					if (i < h)
					{
						want += (int64_t) wq[i] * c[i];
						hh += yh * yh;
					}
					else
						tt += yh * yh;
				}
				tt = sqrtl(tt);
				cut_dots_wrong += dots[t] != want;
				/* head2 <= |P yh|^2 (yh in long double: within 2^-64 relative), tail <= |P'yh| <= tail_hi */
				tail_hi = tail[j * FF_CUTS_MAX + k] >= FLT_MAX ? INFINITY :
					(long double) tail[j * FF_CUTS_MAX + k] * (1 + 0x1p-20L) + cuts[k].pad + 0x1p-140L;
				norms_wrong += !((long double) head2[j * FF_CUTS_MAX + k] <= hh * (1 + 0x1p-60L)) ||
					!((long double) tail[j * FF_CUTS_MAX + k] <= tt * (1 + 0x1p-60L)) || !(tt <= tail_hi);
				a2 = ff_a2_cut(&query, &cuts[k], dots[t], err[j], head2[j * FF_CUTS_MAX + k],
							   tail[j * FF_CUTS_MAX + k]) + FF_TEST_BIAS;
				if (!(a2 >= 0) || !((long double) a2 <= ex[j] + exact_slack(ex[j], m)))
				{
					if (cut_violations < 4)
						fprintf(stderr, "%s m %d query %d point %ld cut %d: a2 %.17g > |q - y|^2 %.20Lg\n", what, m, qi,
								(long) j, h, a2, ex[j]);
					cut_violations++;
				}
			}
		}
		for (int64_t j = 0; j < n; j++)
		{
			double		a2 = a2s[j];

			if (!(a2 >= 0) || !((long double) a2 <= ex[j] + exact_slack(ex[j], m)))
			{
				if (violations < 4)
					fprintf(stderr, "%s m %d query %d point %ld: a2 %.17g > |q - y|^2 %.20Lg (err %.9g yh2 %.9g dot %d "
							"s %.17g base %.17g mag %.17g)\n", what, m, qi, (long) j, a2, ex[j], err[j], yh2[j],
							dots[j], query.s, query.base, query.mag);
				violations++;
			}
			if (useful && ex[j] > mean / 4)
			{
				far++;
				if (!((long double) a2 >= 0.9L * ex[j]))
				{
					if (weak < 4)
						fprintf(stderr, "%s m %d query %d point %ld: a2 %.17g < 0.9 |q - y|^2 %.20Lg (err %.9g)\n",
								what, m, qi, (long) j, a2, ex[j], err[j]);
					weak++;
				}
			}
			sum_a2 += a2;
			sum_ex += ex[j];
		}
	}
	CHECK(prep_bad == 0, "%s m %d: ff_query_prepare's weights out of range or unused (%ld)", what, m, (long) prep_bad);
	CHECK(violations == 0, "%s m %d: %ld of %ld bounds a2 above the exact |q - y|^2", what, m, (long) violations,
		  (long) n * nq);
	CHECK(many_differ == 0, "%s m %d: ff_a2_many differs from ff_a2 for %ld entries", what, m, (long) many_differ);
	CHECK(cut_violations == 0, "%s m %d: %ld cut bounds (ff_a2_cut) above the exact |q - y|^2", what, m,
		  (long) cut_violations);
	CHECK(cut_dots_wrong == 0, "%s m %d: ff_dots_rows over a cut's dimensions: %ld wrong", what, m,
		  (long) cut_dots_wrong);
	CHECK(norms_wrong == 0, "%s m %d: ff_cut_norms: %ld head2 or tail out of their bounds", what, m,
		  (long) norms_wrong);
	CHECK(tq_wrong == 0, "%s m %d: ff_query_cuts: %ld cuts with |P'q| outside [tq_lo, tq_hi] or too small a pad", what,
		  m, (long) tq_wrong);
	if (useful)
	{
		CHECK(far > n * nq / 4, "%s m %d: only %ld far pairs", what, m, (long) far);
		CHECK(weak == 0, "%s m %d: %ld of %ld far points with a2 < 0.9 |q - y|^2 (mean a2 / exact %.4Lg)", what, m,
			  (long) weak, (long) far, sum_a2 / sum_ex);
		CHECK(sum_a2 >= 0.95L * sum_ex, "%s m %d: a2 sums to %.4Lg of the exact distances", what, m, sum_a2 / sum_ex);
		printf("bound %s m %d: a2 / |q - y|^2 = %.4f over all pairs\n", what, m, (double) (sum_a2 / sum_ex));
	}
	free(codes);
	free(err);
	free(yh2);
	free(dots);
	free(a2s);
	free(ex);
	free(wq);
	free(head2);
	free(tail);
	free(rows);
}

enum
{
	B_UNIT, B_HELDOUT, B_DUPS, B_GRID, B_HUGE_INSERTED, B_HUGE_RANGE, B_FLTMAX_RANGE, B_TINY, B_TINY_IN_UNIT,
	B_MIXED, B_KINDS
};
static const char *b_names[] = {"unit", "held-out", "dups+zeros", "grid", "huge inserted", "1e30 range",
	"FLT_MAX range", "tiny", "tiny in unit range", "mixed scales"};

/* One coordinate of kind's distribution, column i. */
static float
b_value(int kind, int i)
{
	switch (kind)
	{
		case B_HUGE_RANGE:
			/* an offset and spread near 1e30: cancellation in |q|^2 + |yh|^2 - 2 <q, yh> */
			return (float) (1e30 * (i % 3 - 1) + 1e29 * imgs_test_gauss());
		case B_FLTMAX_RANGE:
			return imgs_test_next_u64() % 4 == 0 ? (imgs_test_next_u64() % 2 ? FLT_MAX : -FLT_MAX) : clampf(imgs_test_gauss() * FLT_MAX / 2);
		case B_TINY:
			return (float) (imgs_test_gauss() * 1e-30);
		case B_MIXED:
			if (imgs_test_next_u64() % 50 == 0)
				return (float) ((imgs_test_next_u64() & 1 ? 1 : -1) * 3.0e38 * (0.9 + 0.1 * imgs_test_unif()));
			return clampf(imgs_test_gauss() * pow(10.0, -30 + (double) ((i * 7 + imgs_test_next_u64() % 3) % 68)));
		default:
			return (float) imgs_test_gauss();
	}
}

static void
bound_kind(int kind, int m)
{
	int64_t		n = m >= 512 ? 120 : 300;
	int			nq = m >= 512 ? 10 : 16;
	int			own_sample = kind != B_HELDOUT && kind != B_HUGE_INSERTED && kind != B_TINY_IN_UNIT &&
		kind != B_GRID;
	int64_t		ns = own_sample ? n : 200;	/* the sample the ranges are learned on: the points, or not */
	float	   *pts = malloc(sizeof(float) * n * m);
	float	   *sample = malloc(sizeof(float) * ns * m);
	float	   *qs = malloc(sizeof(float) * nq * m);
	float	   *ranges = malloc(sizeof(float) * 2 * m);
	ImgsError	err;

	for (int64_t j = 0; j < n; j++)
		for (int i = 0; i < m; i++)
		{
			float	   *v = pts + (size_t) j * m + i;

			if (kind == B_DUPS)
				/* 8 distinct points, repeated; every 5th row all zero */
				*v = j % 5 == 4 ? 0.0f : j < 8 ? (float) imgs_test_gauss() : pts[(size_t) (j % 8) * m + i];
			else if (kind == B_HUGE_INSERTED)
				/* outside the unit ranges: 1e30, FLT_MAX, x1000, whole rows at +-FLT_MAX */
				*v = j % 4 == 0 ? (float) (imgs_test_gauss() * 1e30) : j % 4 == 1 ? (i % 2 ? FLT_MAX : -FLT_MAX) :
					j % 4 == 2 ? (float) (imgs_test_gauss() * 1000) : (imgs_test_next_u64() % 3 ? (float) imgs_test_gauss() : FLT_MAX);
			else if (kind == B_TINY_IN_UNIT)
				*v = (float) (imgs_test_gauss() * 1e-30);
			else
				*v = b_value(kind, i);
		}
	/* the ranges: on the points themselves, or on a sample without them (unit data for the inserted kinds) */
	for (int64_t j = 0; j < ns; j++)
		for (int i = 0; i < m; i++)
			sample[(size_t) j * m + i] = own_sample ? pts[(size_t) j * m + i] :
				kind == B_HELDOUT ? b_value(kind, i) : (float) imgs_test_gauss();
	CHECK(ff_ranges_train(sample, ns, m, ranges, &err) == 0, "ff_ranges_train: %s", err.message);
	if (kind == B_GRID)
		/* on the grid exactly (err only the core's pad), some of them equal */
		for (int64_t j = 0; j < n; j++)
			for (int i = 0; i < m; i++)
				pts[(size_t) j * m + i] = j % 3 == 2 ? pts[(size_t) (j - 1) * m + i] :
					(float) ((double) ranges[i] + (double) ranges[m + i] * (double) (imgs_test_next_u64() % 256));
	for (int qi = 0; qi < nq; qi++)
	{
		float	   *q = qs + (size_t) qi * m;
		const float *src = pts + (size_t) (imgs_test_next_u64() % n) * m;

		for (int i = 0; i < m; i++)
			switch (qi % 5)
			{
				case 0:			/* a stored point: a2 must be 0 */
					q[i] = src[i];
					break;
				case 1:			/* a stored point, one coordinate a float off (never to inf) */
					q[i] = i > 0 ? src[i] : fabsf(src[i]) == FLT_MAX ? nextafterf(src[i], 0) :
						nextafterf(src[i], INFINITY);
					break;
				case 2:			/* zero, then huge ones */
					q[i] = qi < 5 ? 0.0f : qi < 10 ? (float) (imgs_test_gauss() * 1e30) : (i % 2 ? FLT_MAX : -FLT_MAX);
					break;
				default:		/* fresh, of the points' distribution */
					q[i] = kind == B_DUPS ? (float) imgs_test_gauss() : kind == B_GRID ? src[(i + 1) % m] :
						kind == B_HUGE_INSERTED ? (qi % 5 == 3 ? (float) imgs_test_gauss() : (float) (imgs_test_gauss() * 1e30)) :
						kind == B_TINY_IN_UNIT ? (float) (imgs_test_gauss() * 1e-30) : b_value(kind, i);
			}
	}
	bound_case(b_names[kind], m, ranges, pts, n, qs, nq, 0);
	/* unit points within the ranges and fresh queries alone: the bound must be near the distance */
	if (kind == B_UNIT)
	{
		for (int qi = 0; qi < nq; qi++)
			for (int i = 0; i < m; i++)
				qs[(size_t) qi * m + i] = (float) imgs_test_gauss();
		bound_case("unit, fresh queries", m, ranges, pts, n, qs, nq, 1);
	}
	free(pts);
	free(sample);
	free(qs);
	free(ranges);
}

static void
test_bound(void)
{
	static const int ms[] = {1, 3, 64, 512};

	begin_check(4);
	for (int mi = 0; mi < 4; mi++)
		for (int kind = 0; kind < B_KINDS; kind++)
			bound_kind(kind, ms[mi]);
}

/* ---- 5. end to end, through kd_bound_from_parts -------------------------- */

enum
{
	E_GAUSS, E_DUPS, E_EXTREME, E_CNN
};
static const char *e_names[] = {"gauss", "dups+zeros", "extreme", "cnn"};

static void
e_point(int kind, float *v, const float *x, int64_t i, int dim)
{
	switch (kind)
	{
		case E_GAUSS:
			for (int t = 0; t < dim; t++)
				v[t] = (float) imgs_test_gauss();
			break;
		case E_DUPS:
			/* 20 distinct points, each repeated; every 7th row all zero */
			if (i % 7 == 3)
				memset(v, 0, sizeof(float) * dim);
			else if (i < 20)
				for (int t = 0; t < dim; t++)
					v[t] = (float) imgs_test_gauss();
			else
				memcpy(v, x + (size_t) (imgs_test_next_u64() % 20) * dim, sizeof(float) * dim);
			break;
		case E_EXTREME:
			{
				/* scale 10^[-30, 37]; every 10th a norm near 1e30; coordinates at +-3e38 */
				double		scale = i % 10 == 0 ? 1e30 / sqrt(dim) : pow(10.0, -30 + (double) (imgs_test_next_u64() % 68));

				for (int t = 0; t < dim; t++)
				{
					double		g = imgs_test_gauss() * scale;

					if (imgs_test_next_u64() % 50 == 0)
						g = (imgs_test_next_u64() & 1 ? 1 : -1) * 3.0e38 * (0.9 + 0.1 * imgs_test_unif());
					v[t] = clampf(g);
				}
			}
			break;
		default:
			{
				/* CNN-like: non-negative, decaying spectrum, unit norm */
				double		s = 0;

				for (int t = 0; t < dim; t++)
				{
					double		g = imgs_test_gauss() / sqrt(t + 1.0) + 0.3 / sqrt(t + 1.0);

					v[t] = g > 0 ? (float) g : 0.0f;
					s += (double) v[t] * v[t];
				}
				if (s > 0)
					for (int t = 0; t < dim; t++)
						v[t] = (float) (v[t] / sqrt(s));
			}
	}
}

/* The exact key of the raw vectors, long double: |q - x|^2, or 1 - cos (NaN for a zero vector). */
static long double
exact_key(int metric, const float *q, const float *x, int dim)
{
	long double qq = 0,
				xx = 0,
				qx = 0;

	if (metric == KD_METRIC_L2)
		return exact_d2(q, x, dim);
	for (int t = 0; t < dim; t++)
	{
		qq += (long double) q[t] * q[t];
		xx += (long double) x[t] * x[t];
		qx += (long double) q[t] * x[t];
	}
	if (qq == 0 || xx == 0)
		return NAN;
	return 1 - qx / (sqrtl(qq) * sqrtl(xx));
}

static void
e2e_case(int kind, int dim, int metric, int64_t n, int nq)
{
	int			m = dim;
	int32_t		stride = ff_code_stride(m);
	size_t		step = (size_t) stride + 24;	/* codes in place in entries, after a header of 24 bytes */
	int64_t		n_train = n / 2;
	float	   *x = malloc(sizeof(float) * n * dim);
	float	   *y = malloc(sizeof(float) * n * m);
	float	   *resid = malloc(sizeof(float) * n);
	float	   *mag = malloc(sizeof(float) * n);
	float	   *err = malloc(sizeof(float) * n);
	float	   *yh2 = malloc(sizeof(float) * n);
	uint8_t    *entries = malloc((size_t) n * step);
	int32_t    *dots = malloc(sizeof(int32_t) * n);
	double	   *a2 = malloc(sizeof(double) * n);
	float	   *ranges = malloc(sizeof(float) * 2 * m);
	int16_t    *wq = malloc(sizeof(int16_t) * stride);
	float	   *q = malloc(sizeof(float) * dim);
	float	   *yq = malloc(sizeof(float) * m);
	int64_t		violations = 0,
				key_violations = 0,
				many_differ = 0,
				compared = 0;
	long double sum_ratio = 0;
	int64_t		ordinary = 0;
	ImgsError	e;
	KdPca	   *pca;

	for (int64_t i = 0; i < n; i++)
	{
		e_point(kind, x + (size_t) i * dim, x, i, dim);
		/* inserted after the build: outside the ranges learned */
		if (i >= n_train && i % 3 == 0 && kind != E_EXTREME)
			for (int t = 0; t < dim; t++)
				x[(size_t) i * dim + t] *= 1000.0f;
	}
	pca = kd_pca_train(x, n_train, dim, m, metric, 42, &e);
	CHECK(pca != NULL, "kd_pca_train: %s %s", e.sqlstate, e.message);
	if (pca == NULL)
		return;
	CHECK(pca->m == m, "kd_pca_train: m %d, not %d", pca->m, m);
	for (int64_t i = 0; i < n; i++)
		kd_project(pca, x + (size_t) i * dim, y + (size_t) i * m, &resid[i]);
	CHECK(ff_ranges_train(y, n_train, m, ranges, &e) == 0 && ff_ranges_valid(ranges, m), "ff_ranges_train: %s",
		  e.message);
	for (size_t b = 0; b < (size_t) n * step; b++)
		entries[b] = (uint8_t) imgs_test_next_u64();
	for (int64_t i = 0; i < n; i++)
	{
		ff_encode(ranges, m, y + (size_t) i * m, entries + (size_t) i * step + 24, &err[i], &yh2[i]);
		mag[i] = ff_magnitude(y + (size_t) i * m, m, resid[i]);
	}
	for (int qi = 0; qi < nq; qi++)
	{
		float		rq;
		double		magq;
		FfQuery		query;

		/* stored points, held-out points, a zero vector, a huge one */
		if (qi % 4 == 0)
			memcpy(q, x + (size_t) (imgs_test_next_u64() % n) * dim, sizeof(float) * dim);
		else if (qi % 4 == 3 && qi < 8)
			for (int t = 0; t < dim; t++)
				q[t] = qi == 3 ? 0.0f : (float) (imgs_test_gauss() * 1e30);
		else
			e_point(kind, q, x, (int64_t) (imgs_test_next_u64() % n), dim);
		kd_project(pca, q, yq, &rq);
		magq = ff_magnitude(yq, m, rq);
		query.wq = wq;
		ff_query_prepare(ranges, m, yq, &query);
		ff_dots(&query, entries + 24, step, n, dots);
		a2_all(&query, dots, err, yh2, n, a2, &many_differ);
		for (int64_t i = 0; i < n; i++)
		{
			const float *xi = x + (size_t) i * dim;
			long double key = exact_key(metric, q, xi, dim);
			double		imgs_key = metric == KD_METRIC_L2 ? imgs_l2_squared(q, xi, dim) : imgs_cosine_distance(q, xi, dim);
			double		lb = kd_bound_from_parts(pca, a2[i], fabs((double) rq - (double) resid[i]),
												 magq + (double) mag[i]);

			/* a zero vector's cosine key is NaN: it comes last whatever its bound */
			if (isnan(key))
				continue;
			/* the long double key's own rounding: absolute for 1 - cos, relative for L2 */
			if (!((long double) lb <= key + (metric == KD_METRIC_L2 ? exact_slack(key, dim) : 0x1p-58L)))
			{
				if (violations < 4)
					fprintf(stderr, "%s dim %d metric %d query %d point %ld: bound %.17g > exact key %.20Lg\n",
							e_names[kind], dim, metric, qi, (long) i, lb, key);
				violations++;
			}
			if (!isnan(imgs_key) && !(lb <= imgs_key))
			{
				if (key_violations < 4)
					fprintf(stderr, "%s dim %d metric %d query %d point %ld: bound %.17g > distance_core key %.17g\n",
							e_names[kind], dim, metric, qi, (long) i, lb, imgs_key);
				key_violations++;
			}
			/* ordinary pairs: no point scaled by 1000, no zero or huge query, no duplicate */
			if (qi % 4 != 3 && !(i >= n_train && i % 3 == 0) && key > 0 && isfinite(key))
			{
				sum_ratio += lb > 0 ? lb / key : 0;
				ordinary++;
			}
			compared++;
		}
	}
	CHECK(violations == 0, "%s dim %d metric %d: %ld of %ld bounds above the exact key", e_names[kind], dim, metric,
		  (long) violations, (long) compared);
	CHECK(key_violations == 0, "%s dim %d metric %d: %ld of %ld bounds above distance_core's key", e_names[kind], dim,
		  metric, (long) key_violations, (long) compared);
	CHECK(many_differ == 0, "%s dim %d metric %d: ff_a2_many differs from ff_a2 for %ld entries", e_names[kind], dim,
		  metric, (long) many_differ);
	/* useful where the points are ordinary: gauss under L2, most of the distance kept */
	if (kind == E_GAUSS && metric == KD_METRIC_L2)
	{
		printf("end to end %s dim %d: bound / key = %.4f on average over %ld ordinary pairs\n", e_names[kind], dim,
			   (double) (sum_ratio / ordinary), (long) ordinary);
		CHECK(ordinary > compared / 4 && sum_ratio >= 0.9L * ordinary, "%s dim %d: bound / key %.4Lg on average",
			  e_names[kind], dim, sum_ratio / ordinary);
	}
	kd_pca_free(pca);
	free(x);
	free(y);
	free(resid);
	free(mag);
	free(err);
	free(yh2);
	free(entries);
	free(dots);
	free(a2);
	free(ranges);
	free(wq);
	free(q);
	free(yq);
}

static void
test_end_to_end(void)
{
	begin_check(5);
	for (int metric = KD_METRIC_L2; metric <= KD_METRIC_COSINE; metric++)
		for (int kind = E_GAUSS; kind <= E_CNN; kind++)
		{
			e2e_case(kind, 16, metric, 1500, 12);
			e2e_case(kind, 64, metric, 1000, 12);
		}
}

/* ---- 6. the pass over the codes ----------------------------------------- */

/* ff_a2_pass of n entries on threads threads: 1 when its dots and a2 are those expected, bit for bit. */
static int
pass_matches(const FfQuery *query, const uint8_t *codes, size_t step, int64_t n, const float *err, const float *yh2,
			 int threads, const int32_t *dots_expected, const double *a2_expected)
{
	int64_t		nchunks = (n + FF_PASS_CHUNK - 1) / FF_PASS_CHUNK;
	int32_t    *dots = malloc(sizeof(int32_t) * n);
	double	   *a2 = malloc(sizeof(double) * n);
	double	   *chunk_min = malloc(sizeof(double) * (nchunks + 1));
	ImgsError	error;
	int			ok;

	chunk_min[nchunks] = -1;	/* nothing past the last chunk is written */
	ok = ff_a2_pass(query, codes, step, n, err, yh2, threads, dots, a2, chunk_min, &error) &&
		error.sqlstate[0] == '\0';
	CHECK(ok, "ff_a2_pass on %d threads failed: %.5s %s", threads, error.sqlstate, error.message);
	ok = ok && memcmp(dots, dots_expected, sizeof(int32_t) * n) == 0 && memcmp(a2, a2_expected, sizeof(double) * n) == 0;
	/* each chunk's least a2, computed here */
	for (int64_t c = 0; ok && c < nchunks; c++)
	{
		double		least = INFINITY;

		for (int64_t j = c * FF_PASS_CHUNK; j < n && j < (c + 1) * FF_PASS_CHUNK; j++)
			least = a2_expected[j] < least ? a2_expected[j] : least;
		CHECK(chunk_min[c] == least, "%d threads: chunk %ld's least a2 %.17g, not %.17g", threads, (long) c,
			  chunk_min[c], least);
		ok = chunk_min[c] == least;
	}
	CHECK(chunk_min[nchunks] == -1, "%d threads: a chunk minimum written past the last chunk", threads);
	ok = ok && chunk_min[nchunks] == -1;
	/* and without chunk minima */
	memset(a2, 0, sizeof(double) * n);
	ok = ok && ff_a2_pass(query, codes, step, n, err, yh2, threads, dots, a2, NULL, &error) &&
		memcmp(a2, a2_expected, sizeof(double) * n) == 0;
	/* and without dots, as the scan calls it: a2 alone */
	memset(a2, 0, sizeof(double) * n);
	ok = ok && ff_a2_pass(query, codes, step, n, err, yh2, threads, NULL, a2, chunk_min, &error) &&
		memcmp(a2, a2_expected, sizeof(double) * n) == 0;
	free(dots);
	free(a2);
	free(chunk_min);
	return ok;
}

static void
test_pass(void)
{
	const int	m = 24;
	/* several chunks and a ragged last one: the threads take chunks in any order */
	const int64_t n = 5 * FF_PASS_CHUNK + 77;
	const size_t step = (size_t) ff_code_stride(m) + 20;
	uint8_t    *entries = malloc(step * n);
	float	   *ranges = malloc(sizeof(float) * 2 * m),
			   *err = malloc(sizeof(float) * n),
			   *yh2 = malloc(sizeof(float) * n),
			   *y = malloc(sizeof(float) * m),
			   *q = malloc(sizeof(float) * m);
	int32_t    *dots = malloc(sizeof(int32_t) * n);
	double	   *a2 = malloc(sizeof(double) * n);
	int16_t    *wq = malloc(sizeof(int16_t) * ff_code_stride(m));
	FfQuery		query;
	ImgsError	error;
	const char *path = IMGS_SOURCE_DIR "/src/faissflat/faissflat_core.cpp";
	char		names[12][IMGS_TEST_FAULT_NAME_LEN];
	int			npoints;

	begin_check(6);
	for (int i = 0; i < m; i++)
	{
		ranges[i] = -3;
		ranges[m + i] = 6.0f / 255;
	}
	for (int64_t j = 0; j < n; j++)
	{
		uint8_t    *entry = entries + (size_t) j * step;

		memset(entry, 0xa5, step);	/* garbage around the code */
		for (int i = 0; i < m; i++)
			y[i] = (float) imgs_test_gauss();
		ff_encode(ranges, m, y, entry + 20, &err[j], &yh2[j]);
	}
	for (int i = 0; i < m; i++)
		q[i] = (float) imgs_test_gauss();
	query.wq = wq;
	ff_query_prepare(ranges, m, q, &query);
	/* the expected: the two calls the pass makes, on the whole range at once */
	ff_dots(&query, entries + 20, step, n, dots);
	ff_a2_many(&query, dots, err, yh2, n, a2);
	for (int threads = 1; threads <= 3; threads++)
		CHECK(pass_matches(&query, entries + 20, step, n, err, yh2, threads, dots, a2),
			  "ff_a2_pass on %d threads: not ff_dots' and ff_a2_many's values", threads);

	/* a cancel: at the first poll, and after two chunks */
	for (int after = 0; after <= 2; after += 2)
		for (int threads = 1; threads <= 3; threads += 2)
		{
			int			ok;

			imgs_test_interrupt_after(after);
			ok = ff_a2_pass(&query, entries + 20, step, n, err, yh2, threads, dots, a2, NULL, &error);
			CHECK(!ok && imgs_test_error_is(&error, IMGS_SQLSTATE_QUERY_CANCELED) && imgs_test_interrupt_polls() > after,
				  "cancel after %d polls on %d threads: %d '%.5s' (%ld polls)", after, threads, ok, error.sqlstate,
				  (long) imgs_test_interrupt_polls());
			imgs_test_interrupt_after(-1);
		}

	/* ff_a2_pass's fault points (test_staged takes the others): 53200, then the same call succeeds */
	npoints = imgs_test_fault_points(path, names, 12);
	CHECK(npoints >= 2 && npoints <= 12, "%d fault points in %s (-1: unreadable)", npoints, path);
	for (int i = 0; i < npoints && i < 12; i++)
	{
		int			ok;

		if (strncmp(names[i], "ff_a2_pass", 10) != 0)
			continue;
		imgs_test_inject_fault(names[i]);
		ok = ff_a2_pass(&query, entries + 20, step, n, err, yh2, 3, dots, a2, NULL, &error);
		imgs_test_inject_fault(NULL);
		CHECK(!ok && imgs_test_error_is(&error, "53200"), "fault point \"%s\": %d '%.5s'", names[i], ok,
			  error.sqlstate);
		ff_dots(&query, entries + 20, step, n, dots);
		ff_a2_many(&query, dots, err, yh2, n, a2);
		CHECK(pass_matches(&query, entries + 20, step, n, err, yh2, 3, dots, a2),
			  "fault point \"%s\": the next pass is wrong", names[i]);
	}
	printf("pass: ff_a2_pass equal on 1-3 threads over %ld entries; cancels; %d fault points\n", (long) n, npoints);
	free(entries);
	free(ranges);
	free(err);
	free(yh2);
	free(y);
	free(q);
	free(dots);
	free(a2);
	free(wq);
}

/* ---- 7. the staged pass --------------------------------------------------- */

/* qsort order of (a2, entry) pairs */
typedef struct A2Entry
{
	double		a2;
	uint32_t	entry;
} A2Entry;

static int
a2_entry_cmp(const void *a, const void *b)
{
	const A2Entry *x = a,
			   *y = b;

	if (x->a2 != y->a2)
		return x->a2 < y->a2 ? -1 : 1;
	return x->entry < y->entry ? -1 : x->entry > y->entry;
}

/* ff_least against a sort of every (a2, entry), for several wants. */
static void
check_least(const double *a2, int64_t n, const double *chunk_min, const char *what)
{
	A2Entry    *all = malloc(sizeof(A2Entry) * n);
	uint32_t   *out = malloc(sizeof(uint32_t) * (n + 8));
	const int64_t wants[] = {0, 1, 64, 4096, n - 1, n, n + 5};
	ImgsError	error;

	for (int64_t j = 0; j < n; j++)
		all[j] = (A2Entry) {a2[j], (uint32_t) j};
	qsort(all, n, sizeof(A2Entry), a2_entry_cmp);
	for (int w = 0; w < 7; w++)
	{
		int64_t		found = -1,
					expect = wants[w] < n ? wants[w] : n,
					wrong = 0;

		if (wants[w] < 0)
			continue;
		CHECK(ff_least(a2, n, chunk_min, wants[w], out, &found, &error), "ff_least failed: %s", error.message);
		CHECK(found == expect, "%s: ff_least of %ld found %ld", what, (long) wants[w], (long) found);
		for (int64_t i = 0; i < expect && i < found; i++)
			wrong += out[i] != all[i].entry;
		CHECK(wrong == 0, "%s: ff_least of %ld: %ld entries not the sort's", what, (long) wants[w], (long) wrong);
	}
	free(all);
	free(out);
}

/* How many a2 are below limit */
static int64_t
below_head(const double *a2, int64_t n, double limit)
{
	int64_t		count = 0;

	for (int64_t j = 0; j < n; j++)
		count += a2[j] < limit;
	return count;
}

/* The staged state to run ff_a2_refine_pass on: a2 and chunk_min as the head pass left them. */
typedef struct StagedCase
{
	const FfQuery *query;
	const FfCut *cuts;
	const uint8_t *codes;
	size_t		step;
	int64_t		n;
	const float *err,
			   *yh2;
	float	   *const *head2;
	float	   *const *tail;
} StagedCase;

static bool
refine(const StagedCase *sc, double limit, int threads, const double *a2_in, const double *min_in, double *a2,
	   double *chunk_min, FfRefineStats *stats, ImgsError *error)
{
	int64_t		nchunks = (sc->n + FF_PASS_CHUNK - 1) / FF_PASS_CHUNK;

	memcpy(a2, a2_in, sizeof(double) * sc->n);
	memcpy(chunk_min, min_in, sizeof(double) * nchunks);
	return ff_a2_refine_pass(sc->query, sc->cuts, sc->codes, sc->step, sc->n, sc->err, sc->yh2, sc->head2, sc->tail,
							 limit, threads, a2, chunk_min, stats, error);
}

static void
test_staged(void)
{
	const int	m = 300;		/* cuts 32, 64, 128 and 256; the last span ragged */
	const int64_t n = 5 * FF_PASS_CHUNK + 77;
	const int32_t stride = ff_code_stride(m);
	const size_t step = (size_t) stride + 32;	/* garbage between codes */
	int64_t		nchunks = (n + FF_PASS_CHUNK - 1) / FF_PASS_CHUNK;
	uint8_t    *entries = malloc(step * n),
			   *head = calloc(ff_head_bytes(n), 1);
	float	   *ys = malloc(sizeof(float) * n * m),
			   *sample = malloc(sizeof(float) * 2000 * m),
			   *ranges = malloc(sizeof(float) * 2 * m),
			   *err = malloc(sizeof(float) * n),
			   *yh2 = malloc(sizeof(float) * n),
			   *q = malloc(sizeof(float) * m),
			   *head2[FF_CUTS_MAX],
			   *tail[FF_CUTS_MAX];
	int32_t    *dots = malloc(sizeof(int32_t) * n);
	uint32_t   *rows = malloc(sizeof(uint32_t) * n);
	double	   *a2_head = malloc(sizeof(double) * n),
			   *min_head = malloc(sizeof(double) * (nchunks + 1)),
			   *a2 = malloc(sizeof(double) * n),
			   *chunk_min = malloc(sizeof(double) * (nchunks + 1)),
			   *a2_one = malloc(sizeof(double) * n),
			   *min_one = malloc(sizeof(double) * nchunks),
			   *full = malloc(sizeof(double) * n);
	long double *ex = malloc(sizeof(long double) * n);
	int16_t    *wq = malloc(sizeof(int16_t) * stride);
	FfQuery		query;
	FfCut		cuts[FF_CUTS_MAX];
	FfRefineStats stats,
				stats_one;
	ImgsError	error;
	StagedCase	sc;
	int32_t		ncuts = ff_cuts(m);
	const char *path = IMGS_SOURCE_DIR "/src/faissflat/faissflat_core.cpp";
	char		names[12][IMGS_TEST_FAULT_NAME_LEN];
	int			npoints;
	int64_t		wrong = 0,
				above = 0;
	long double sorted_ex[400];

	begin_check(7);
	CHECK(ncuts == 4 && ff_cuts(32) == 0 && ff_cuts(33) == 1 && ff_cuts(64) == 1 && ff_cuts(65) == 2 &&
		  ff_cuts(4096) == 4, "ff_cuts: %d for 300 dimensions, %d, %d, %d, %d", ncuts, ff_cuts(32), ff_cuts(33),
		  ff_cuts(64), ff_cuts(65));
	for (int k = 0; k < FF_CUTS_MAX; k++)
	{
		head2[k] = malloc(sizeof(float) * n);
		tail[k] = malloc(sizeof(float) * n);
	}
	/*
	 * a steep spectrum, as the demo's PCA coordinates are: the first cut
	 * carries most of the distance, and prunes
	 */
	for (int64_t j = 0; j < 2000; j++)
		for (int i = 0; i < m; i++)
			sample[(size_t) j * m + i] = (float) (imgs_test_gauss() / (i + 1.0));
	CHECK(ff_ranges_train(sample, 2000, m, ranges, &error) == 0, "ff_ranges_train: %s", error.message);
	for (int64_t j = 0; j < n; j++)
	{
		uint8_t    *entry = entries + (size_t) j * step;
		float	   *y = ys + (size_t) j * m;
		float		h2[FF_CUTS_MAX],
					t[FF_CUTS_MAX];

		for (int i = 0; i < m; i++)
			/* every 97th row a duplicate of the one before, every 101st all zero */
			y[i] = j % 101 == 100 ? 0.0f : j % 97 == 96 ? y[i - m] : (float) (imgs_test_gauss() / (i + 1.0));
		memset(entry, 0x5a, step);
		ff_encode(ranges, m, y, entry, &err[j], &yh2[j]);
		ff_head_put(head, j, entry);
		ff_cut_norms(ranges, m, entry, h2, t);
		for (int k = 0; k < ncuts; k++)
		{
			head2[k][j] = h2[k];
			tail[k][j] = t[k];
		}
		rows[j] = (uint32_t) j;
	}
	/* the query: near row 1000, so that a few hundred rows are near it */
	for (int i = 0; i < m; i++)
		q[i] = ys[(size_t) 1000 * m + i] + (float) (0.3 * imgs_test_gauss() / (i + 1.0));
	query.wq = wq;
	ff_query_prepare(ranges, m, q, &query);
	CHECK(ff_query_cuts(ranges, m, q, &query, cuts) == ncuts, "ff_query_cuts: not %d cuts", ncuts);
	for (int64_t j = 0; j < n; j++)
		ex[j] = exact_d2(q, ys + (size_t) j * m, m);
	ff_dots(&query, entries, step, n, dots);
	for (int64_t j = 0; j < n; j++)
		full[j] = ff_a2(&query, dots[j], err[j], yh2[j]);

	/* the head pass: ff_a2_cut at the first cut of each entry, bit for bit, on 1-3 threads */
	ff_dots_rows(&query, 0, FF_CUT_FIRST, entries, step, rows, n, dots);
	for (int threads = 1; threads <= 3; threads++)
	{
		int64_t		differ = 0;

		min_head[nchunks] = -1;
		CHECK(ff_a2_head_pass(&query, cuts, head, n, err, head2[0], tail[0], threads, a2_head, min_head, &error),
			  "ff_a2_head_pass on %d threads: %s", threads, error.message);
		for (int64_t j = 0; j < n; j++)
		{
			double		want = ff_a2_cut(&query, &cuts[0], dots[j], err[j], head2[0][j], tail[0][j]);

			differ += memcmp(&want, &a2_head[j], sizeof(double)) != 0;
			above += !((long double) a2_head[j] <= ex[j] + exact_slack(ex[j], m));
		}
		for (int64_t c = 0; c < nchunks; c++)
		{
			double		least = INFINITY;

			for (int64_t j = c * FF_PASS_CHUNK; j < n && j < (c + 1) * FF_PASS_CHUNK; j++)
				least = a2_head[j] < least ? a2_head[j] : least;
			differ += min_head[c] != least;
		}
		CHECK(differ == 0 && min_head[nchunks] == -1, "ff_a2_head_pass on %d threads: %ld values not ff_a2_cut's, "
			  "or a chunk minimum wrong or past the last chunk", threads, (long) differ);
	}
	CHECK(above == 0, "ff_a2_head_pass: %ld bounds above the exact |q - y|^2", (long) above);

	/*
	 * the refine pass, below a limit that a few hundred entries are within
	 * (the 300th least exact distance), and with no limit: on 1-3 threads the
	 * same doubles; every a2 still a bound, never lowered; those left below
	 * the limit at the whole code's ff_a2 exactly; chunk minima the least
	 */
	for (int64_t j = 0; j < 400; j++)
		sorted_ex[j] = INFINITY;
	for (int64_t j = 0; j < n; j++)
		if (ex[j] < sorted_ex[399])
		{
			int			i = 399;

			for (; i > 0 && sorted_ex[i - 1] > ex[j]; i--)
				sorted_ex[i] = sorted_ex[i - 1];
			sorted_ex[i] = ex[j];
		}
	sc = (StagedCase) {&query, cuts, entries, step, n, err, yh2, head2, tail};
	for (int lim = 0; lim < 3; lim++)
	{
		double		limit = lim == 0 ? (double) sorted_ex[299] : lim == 1 ? (double) sorted_ex[5] : INFINITY;
		int64_t		lowered = 0,
					not_whole = 0,
					touched = 0,
					cut_entries = 0,
					below = 0;

		/* a chunk the head pass put past the limit is never read: one of them raised to it */
		memcpy(chunk_min, min_head, sizeof(double) * nchunks);
		CHECK(refine(&sc, limit, 1, a2_head, min_head, a2_one, min_one, &stats_one, &error),
			  "ff_a2_refine_pass failed: %s", error.message);
		for (int64_t j = 0; j < n; j++)
		{
			lowered += a2_one[j] < a2_head[j];
			above += !((long double) a2_one[j] <= ex[j] + exact_slack(ex[j], m));
			/* past the limit: unchanged, or (a chunk read whole) raised to the whole code's */
			touched += !(a2_head[j] < limit) && memcmp(&a2_one[j], &a2_head[j], sizeof(double)) != 0 &&
				a2_one[j] != (full[j] > a2_head[j] ? full[j] : a2_head[j]);
			if (a2_one[j] < limit)
			{
				below++;
				not_whole += !(a2_one[j] >= full[j] && a2_one[j] >= a2_head[j]);
			}
		}
		for (int k = 0; k <= ncuts; k++)
			cut_entries += stats_one.entries[k];
		CHECK(stats_one.passed == below_head(a2_head, n, limit), "limit %d: %ld entries passed the first cut, not %ld",
			  lim, (long) stats_one.passed, (long) below_head(a2_head, n, limit));
		CHECK(lowered == 0 && touched == 0, "limit %d: %ld a2 lowered, %ld entries past the limit changed but to the "
			  "whole code's bound", lim,
			  (long) lowered, (long) touched);
		CHECK(not_whole == 0, "limit %d: %ld of %ld entries left below the limit without the whole code's bound", lim,
			  (long) not_whole, (long) below);
		CHECK(above == 0, "limit %d: %ld refined bounds above the exact |q - y|^2", lim, (long) above);
		CHECK(cut_entries > 0 && (lim < 2 || (stats_one.chunks[0] == nchunks && stats_one.entries[ncuts] == n)),
			  "limit %d: stats %ld entries, %ld chunks whole at once (no limit: every chunk, every entry)", lim,
			  (long) cut_entries, (long) stats_one.chunks[0]);
		/* fewer entries go on at each cut (a limit that prunes) */
		if (lim == 0)
			CHECK(stats_one.entries[1] < n / 2 && stats_one.entries[ncuts] < stats_one.entries[1],
				  "limit 0: %ld entries to the second cut, %ld whole: the cuts prune nothing", (long) stats_one.entries[1],
				  (long) stats_one.entries[ncuts]);
		for (int64_t c = 0; c < nchunks; c++)
		{
			double		least = INFINITY;

			for (int64_t j = c * FF_PASS_CHUNK; j < n && j < (c + 1) * FF_PASS_CHUNK; j++)
				least = a2_one[j] < least ? a2_one[j] : least;
			wrong += min_head[c] < limit ? min_one[c] != least : min_one[c] != min_head[c];
		}
		CHECK(wrong == 0, "limit %d: %ld chunk minima not the least a2 (or changed where unread)", lim, (long) wrong);
		for (int threads = 2; threads <= 3; threads++)
		{
			CHECK(refine(&sc, limit, threads, a2_head, min_head, a2, chunk_min, &stats, &error) &&
				  memcmp(a2, a2_one, sizeof(double) * n) == 0 && memcmp(chunk_min, min_one, sizeof(double) * nchunks) == 0 &&
				  memcmp(&stats, &stats_one, sizeof(stats)) == 0,
				  "limit %d: ff_a2_refine_pass on %d threads differs from one thread's", lim, threads);
		}
		if (lim == 0)
			check_least(a2_one, n, min_one, "refined a2");
	}
	/* ties: a2 rounded to a coarse grid */
	for (int64_t j = 0; j < n; j++)
		a2[j] = floor(a2_head[j] * 4) / 4;
	for (int64_t c = 0; c < nchunks; c++)
		chunk_min[c] = floor(min_head[c] * 4) / 4;
	check_least(a2, n, chunk_min, "tied a2");
	/* a sample that misleads ff_least's threshold (every other entry least): its exact fallback */
	for (int64_t j = 0; j < n; j++)
		a2[j] = j % 2 == 0 ? 0 : 1 + j % 7;
	for (int64_t c = 0; c < nchunks; c++)
		chunk_min[c] = 0;
	check_least(a2, n, chunk_min, "every other a2 least");

	/* a cancel, and every fault point of the staged functions: 53200, then the same call succeeds */
	for (int threads = 1; threads <= 3; threads += 2)
	{
		bool		ok;

		imgs_test_interrupt_after(1);
		ok = ff_a2_head_pass(&query, cuts, head, n, err, head2[0], tail[0], threads, a2, chunk_min, &error);
		CHECK(!ok && imgs_test_error_is(&error, IMGS_SQLSTATE_QUERY_CANCELED), "head pass cancel on %d threads: %d",
			  threads, ok);
		imgs_test_interrupt_after(1);
		ok = refine(&sc, INFINITY, threads, a2_head, min_head, a2, chunk_min, &stats, &error);
		CHECK(!ok && imgs_test_error_is(&error, IMGS_SQLSTATE_QUERY_CANCELED), "refine pass cancel on %d threads: %d",
			  threads, ok);
		imgs_test_interrupt_after(-1);
	}
	npoints = imgs_test_fault_points(path, names, 12);
	for (int i = 0; i < npoints && i < 12; i++)
	{
		bool		head_point = strncmp(names[i], "ff_a2_head_pass", 15) == 0,
					refine_point = strncmp(names[i], "ff_a2_refine_pass", 17) == 0,
					least_point = strcmp(names[i], "ff_least") == 0;
		int64_t		found;
		bool		ok;

		if (!head_point && !refine_point && !least_point)
			continue;
		for (int again = 0; again < 2; again++)
		{
			imgs_test_inject_fault(again ? NULL : names[i]);
			ok = head_point ? ff_a2_head_pass(&query, cuts, head, n, err, head2[0], tail[0], 3, a2, chunk_min, &error) :
				refine_point ? refine(&sc, INFINITY, 3, a2_head, min_head, a2, chunk_min, &stats, &error) :
				ff_least(a2_head, n, min_head, 64, rows, &found, &error);
			imgs_test_inject_fault(NULL);
			CHECK(again ? ok : !ok && imgs_test_error_is(&error, "53200"), "fault point \"%s\"%s: %d '%.5s'", names[i],
				  again ? ", then without it" : "", ok, error.sqlstate);
		}
	}
	printf("staged: cuts' bounds and passes over %ld entries; ff_least; cancels; fault points\n", (long) n);
	for (int k = 0; k < FF_CUTS_MAX; k++)
	{
		free(head2[k]);
		free(tail[k]);
	}
	free(entries);
	free(head);
	free(ys);
	free(sample);
	free(ranges);
	free(err);
	free(yh2);
	free(q);
	free(dots);
	free(rows);
	free(a2_head);
	free(min_head);
	free(a2);
	free(chunk_min);
	free(a2_one);
	free(min_one);
	free(full);
	free(ex);
	free(wq);
}

int
main(int argc, char **argv)
{
	clock_t		c0 = clock();

	seed = argc > 1 ? strtoull(argv[1], NULL, 10) : 12345;
	printf("faissflat_core_test: seed %llu, dots kernel %s\n", (unsigned long long) seed,
		   (const char *[]) {"portable", "AVX2", "AVX-512"}[ff_dots_kernel()]);
	test_ranges();
	test_encode();
	test_dots();
	test_bound();
	test_end_to_end();
	test_pass();
	test_staged();
	for (int i = 1; i < 8; i++)
		if (check_failures[i])
			fprintf(stderr, "check %s: %d failure(s) (seed %llu)\n", check_names[i], check_failures[i],
					(unsigned long long) seed);
	printf("%s: %d failure(s), seed %llu, %.1f s\n", failures ? "FAILED" : "ok", failures, (unsigned long long) seed,
		   (double) (clock() - c0) / CLOCKS_PER_SEC);
	return failures ? 1 : 0;
}
