/*
 * lsh_estimator_bench.c — ns per entry of lsh_query_estimate on entries laid
 * out as the index stores them (grouped by bucket, one call per bucket), and
 * a checksum of the estimates. Built against two versions of lsh_core.cpp
 * and run by bench/lsh_estimator_bench.py; by hand:
 *     lsh_estimator_bench dim bits n reps [data [query_bits kernel [dump.f32]]]
 * data: 0 uniform in [-0.5, 0.5) under L2 (the earlier runs'), 1 |gauss|
 * (nonnegative, as ReLU features) under cosine. The query is a fresh point
 * of the same data. query_bits and kernel: lsh_query_set_estimator, where
 * the core has it (LSH_QUERY_BITS). dump.f32: the n estimates; with the
 * quantizing core, then each one's quantization bound (the estimate less
 * the lower bound at eps0 = 0) and its whole error term at eps0 = 1.9 (the
 * estimate less the lower bound).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lsh/lsh_core.h"

static double
now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return (x > y) - (x < y);
}

static void
make_point(int data, float *x, int dim)
{
	for (int d = 0; d < dim; d++)
	{
		float		u = (float) rand() / RAND_MAX;

		if (data == 1)			/* |gauss| by Box-Muller */
			x[d] = (float) fabs(sqrt(-2 * log(u + 1e-12)) * cos(6.283185307 * rand() / RAND_MAX));
		else
			x[d] = u - 0.5f;
	}
}

/* Estimates every entry, bucket by bucket, as a scan of every bucket would; lower: at eps0 too. */
static void
estimate_all(LshQuery *q, const int *bstart, int nb, const char *entries, size_t entry_size, float eps0,
			 float *out, float *lower)
{
	for (int b = 0; b < nb; b++)
	{
		const char *e = entries + (size_t) bstart[b] * entry_size;
		int			cnt = bstart[b + 1] - bstart[b];

		if (lower)
			lsh_query_estimate_bounds(q, b, e, cnt, entry_size, 4, 16, eps0, out + bstart[b], lower + bstart[b]);
		else
			lsh_query_estimate(q, b, e, cnt, entry_size, 4, 16, out + bstart[b]);
	}
}

int
main(int argc, char **argv)
{
	int			dim = argc > 1 ? atoi(argv[1]) : 512,
				bits = argc > 2 ? atoi(argv[2]) : 512,
				n = argc > 3 ? atoi(argv[3]) : 20000,
				reps = argc > 4 ? atoi(argv[4]) : 31,
				data = argc > 5 ? atoi(argv[5]) : 0,
				nb = 64;
	int			metric = data == 1 ? LSH_METRIC_COSINE : LSH_METRIC_L2;
	int			code_bytes = lsh_code_bytes(bits);
	size_t		entry_size = 4 + 12 + code_bytes;	/* slot, norm2/scale/cdot, sketch: as the index */
	float	   *x = malloc(sizeof(float) * n * dim),
			   *qx = malloc(sizeof(float) * dim),
			   *rot = malloc(sizeof(float) * bits * dim),
			   *cent = malloc(sizeof(float) * nb * dim),
			   *rc = malloc(sizeof(float) * nb * bits),
			   *cn = malloc(sizeof(float) * nb),
			   *fl = malloc(sizeof(float) * 3 * n),
			   *out = malloc(sizeof(float) * n),
			   *lower = malloc(sizeof(float) * n);
	uint8_t    *codes = malloc((size_t) code_bytes * n);
	char	   *entries = malloc(entry_size * n);
	int32_t    *bucket = malloc(sizeof(int32_t) * n);
	int		   *bstart = calloc(nb + 1, sizeof(int)),
			   *fill = calloc(nb, sizeof(int));
	double	   *t = malloc(sizeof(double) * reps);
	const char *dump = argc > 8 ? argv[8] : NULL;
	double		prepare_us = 0;
	ImgsError	err;
	LshModel	m;
	LshQuery   *q;

	srand(7);
	for (int i = 0; i < n; i++)
		make_point(data, x + (size_t) i * dim, dim);
	make_point(data, qx, dim);
	if (lsh_train(x, n, dim, bits, nb, metric, 3, 1, 1, rot, cent, &err) < 1)
		return fprintf(stderr, "train: %s\n", err.message), 1;
	m = (LshModel) {dim, bits, nb, metric, rot, cent, rc, cn};
	lsh_model_prepare(&m);
	if (!lsh_hash_many(&m, x, n, bucket, codes, fl, fl + n, fl + 2 * n, 1, &err))
		return fprintf(stderr, "hash: %s\n", err.message), 1;
	for (int i = 0; i < n; i++)
		bstart[bucket[i] + 1]++;
	for (int b = 0; b < nb; b++)
		bstart[b + 1] += bstart[b];
	for (int i = 0; i < n; i++)
	{
		char	   *e = entries + (size_t) (bstart[bucket[i]] + fill[bucket[i]]++) * entry_size;
		float		f[3] = {fl[i], fl[n + i], fl[2 * n + i]};

		memcpy(e, &i, 4);
		memcpy(e + 4, f, 12);
		memcpy(e + 16, codes + (size_t) i * code_bytes, code_bytes);
	}
	q = lsh_query_begin(&m, qx, &err);
	if (!q)
		return fprintf(stderr, "query: %s\n", err.message), 1;
#ifdef LSH_QUERY_BITS
	{
		int			kernel = argc > 7 ? atoi(argv[7]) : 0;

		if (lsh_query_set_estimator(q, argc > 6 ? atoi(argv[6]) : 0, kernel) == 0)
			return fprintf(stderr, "lsh_query_set_estimator(%s, %d) refused\n", argc > 6 ? argv[6] : "0", kernel), 2;
		/* the planes, once per query: built again after each lsh_query_set_estimator */
		for (int r = 0; r < reps; r++)
		{
			double		t0 = now();

			lsh_query_set_estimator(q, 0, kernel);
			lsh_query_estimate(q, 0, entries, 1, entry_size, 4, 16, out);
			t[r] = (now() - t0) * 1e6;
		}
		qsort(t, reps, sizeof(double), cmp_double);
		prepare_us = t[reps / 2];
	}
#endif
	estimate_all(q, bstart, nb, entries, entry_size, 0, out, NULL);
	for (int r = 0; r < reps; r++)
	{
		double		t0 = now();

		estimate_all(q, bstart, nb, entries, entry_size, 0, out, NULL);
		t[r] = (now() - t0) * 1e9 / n;
	}
	qsort(t, reps, sizeof(double), cmp_double);
	{
		double		sum = 0;

		for (int i = 0; i < n; i++)
			sum += out[i];
		printf("{\"dim\": %d, \"bits\": %d, \"entries\": %d, \"ns_per_entry_median\": %.2f, "
			   "\"ns_per_entry_p95\": %.2f, \"mean_estimate\": %.6g, \"prepare_us\": %.2f}\n",
			   dim, bits, n, t[reps / 2], t[(int) (reps * 0.95)], sum / n, prepare_us);
	}
	if (dump)
	{
		FILE	   *f = fopen(dump, "wb");

		if (!f)
			return fprintf(stderr, "cannot write %s\n", dump), 1;
		fwrite(out, sizeof(float), n, f);
#ifdef LSH_QUERY_BITS
		for (int k = 0; k < 2; k++)
		{
			estimate_all(q, bstart, nb, entries, entry_size, k == 0 ? 0.0f : 1.9f, out, lower);
			for (int i = 0; i < n; i++)
				lower[i] = out[i] - lower[i];
			fwrite(lower, sizeof(float), n, f);
		}
#endif
		fclose(f);
	}
	lsh_query_end(q);
	return 0;
}
