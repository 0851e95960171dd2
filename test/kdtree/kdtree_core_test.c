/*
 * kdtree_core_test.c — standalone test of the kdtree core (plain C: the API
 * is usable from C). Run by test/kdtree/run.sh; exits non-zero on failure.
 *
 * For random data sets (dims 3 / 64 / 512, n up to 20k; duplicates, ties,
 * integer grids, zero vectors, magnitudes from 1e-30 to 3e38; L2 and
 * cosine), builds PCA + tree, inserts held-back points after build, and
 * drives the search iterator with exact keys from distance_core. Checks:
 *  - every point's bound <= its exact key (kd_point_bound);
 *  - the iterator emits exactly the brute-force order: slots and keys
 *    bit-identical to computing every key and sorting by (key, slot), NaN
 *    last (first K rows for most queries, every row for some);
 *  - budget mode (max_leaves) emits non-decreasing keys;
 *  - inserted points are found (they are part of the brute force).
 */
#include "kdtree/kdtree_core.h"
#include "index/distance_core.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t rng_state;

static uint64_t
next_u64(void)
{
	uint64_t	z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static double
unif(void)
{
	return (next_u64() >> 11) * 0x1p-53;
}

static double
gauss(void)
{
	double		u = unif() + 1e-300,
				v = unif();

	return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

typedef struct
{
	double		key;
	int64_t		slot;
} Row;

static int
row_cmp(const void *pa, const void *pb)
{
	const Row  *a = pa,
			   *b = pb;
	int			na = isnan(a->key),
				nb = isnan(b->key);

	if (na != nb)
		return na - nb;
	if (!na && a->key != b->key)
		return a->key < b->key ? -1 : 1;
	return (a->slot > b->slot) - (a->slot < b->slot);
}

static int	failures = 0;

#define CHECK(cond, ...) do { if (!(cond)) { failures++; if (failures < 20) { \
	fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); fprintf(stderr, __VA_ARGS__); \
	fprintf(stderr, "\n"); } } } while (0)

static int
same_key(double a, double b)
{
	return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0;
}

enum
{
	KIND_GAUSS, KIND_DUPS, KIND_GRID, KIND_EXTREME, KIND_CNN
};
static const char *kind_names[] = {"gauss", "dups", "grid", "extreme", "cnn"};

static void
make_data(int kind, float *x, int64_t n, int dim, int metric)
{
	int64_t		i;
	int			t;

	for (i = 0; i < n; i++)
	{
		float	   *v = x + (size_t) i * dim;

		switch (kind)
		{
			case KIND_GAUSS:
				for (t = 0; t < dim; t++)
					v[t] = (float) gauss();
				break;
			case KIND_DUPS:
				/* 50 distinct points, each repeated; some sign flips */
				if (i < 50)
					for (t = 0; t < dim; t++)
						v[t] = (float) gauss();
				else
					memcpy(v, x + (size_t) (next_u64() % 50) * dim, sizeof(float) * dim);
				break;
			case KIND_GRID:
				for (t = 0; t < dim; t++)
					v[t] = (float) (int) (next_u64() % 3);
				break;
			case KIND_EXTREME:
				{
					/* per-vector scale 10^[-30, 37], some coordinates at +-3e38 */
					double		scale = pow(10.0, -30 + (double) (next_u64() % 68));

					for (t = 0; t < dim; t++)
					{
						double		g = gauss() * scale;

						if (next_u64() % 50 == 0)
							g = (next_u64() & 1 ? 1 : -1) * 3.0e38 * (0.9 + 0.1 * unif());
						if (g > 3.4e38)
							g = 3.4e38;
						if (g < -3.4e38)
							g = -3.4e38;
						v[t] = (float) g;
					}
					if (next_u64() % 40 == 0)
						memcpy(v, x + (size_t) (next_u64() % (i + 1)) * dim, sizeof(float) * dim);
				}
				break;
			case KIND_CNN:
				/* non-negative, decaying spectrum, unit norm */
				{
					double		s = 0;

					for (t = 0; t < dim; t++)
					{
						double		g = gauss() / sqrt(t + 1.0) + 0.3 / sqrt(t + 1.0);

						v[t] = g > 0 ? (float) g : 0.0f;
						s += (double) v[t] * v[t];
					}
					if (s > 0)
						for (t = 0; t < dim; t++)
							v[t] = (float) (v[t] / sqrt(s));
				}
				break;
		}
		if (metric == KD_METRIC_COSINE && i % 97 == 5)
			memset(v, 0, sizeof(float) * dim);	/* zero vectors: NaN keys */
	}
}

/* The test's own leaf storage: per leaf, its entries (slot, resid, proj). */
typedef struct
{
	int32_t		count,
				cap;
	int64_t    *slots;
	float	   *resid;
	float	   *proj;
} Leaf;

static void
leaf_append(Leaf *l, int m, int64_t slot, float r, const float *y)
{
	if (l->count == l->cap)
	{
		l->cap = l->cap ? 2 * l->cap : 8;
		l->slots = realloc(l->slots, sizeof(int64_t) * l->cap);
		l->resid = realloc(l->resid, sizeof(float) * l->cap);
		l->proj = realloc(l->proj, sizeof(float) * (size_t) l->cap * m);
	}
	l->slots[l->count] = slot;
	l->resid[l->count] = r;
	memcpy(l->proj + (size_t) l->count * m, y, sizeof(float) * m);
	l->count++;
}

static double
exact_key(int metric, const float *q, const float *x, int dim)
{
	return metric == KD_METRIC_L2 ? imgs_l2_squared(q, x, dim) : imgs_cosine_distance(q, x, dim);
}

/*
 * Drives one search; writes up to max_rows emitted rows to out. Returns the
 * number emitted (stops at max_rows or KD_DONE), -1 on a protocol error.
 */
static int64_t
run_search(const KdPca *pca, const KdTree *tree, Leaf *leaves, const float *x, int dim,
		   const float *q, const KdSearchOptions *opts, Row *out, int64_t max_rows,
		   KdSearchStats *stats)
{
	float		qy[KD_MAX_PROJ_DIMS],
				qr;
	KdSearch   *s;
	KdAction	a;
	int64_t		got = 0;

	kd_project(pca, q, qy, &qr);
	s = kd_search_begin(pca, tree, qy, qr, opts);
	if (!s)
		return -1;
	while (got < max_rows)
	{
		int			kind = kd_search_next(s, &a),
					i;

		if (kind == KD_DONE)
			break;
		if (kind == KD_ERROR)
		{
			fprintf(stderr, "search error: %s\n", kd_search_error(s));
			kd_search_end(s);
			return -1;
		}
		if (kind == KD_NEED_LEAF)
		{
			Leaf	   *l = &leaves[a.leaf];
			int32_t		half = l->count / 2;

			/* in two calls, as a caller reading two pages would */
			if (kd_search_add_leaf(s, half, l->slots, l->resid, l->proj) != 0 ||
				kd_search_add_leaf(s, l->count - half, l->slots + half, l->resid + half,
								   l->proj + (size_t) half * pca->m) != 0)
			{
				kd_search_end(s);
				return -1;
			}
		}
		else if (kind == KD_NEED_KEYS)
		{
			/* answer in reverse order: any order must do */
			for (i = a.count - 1; i >= 0; i--)
			{
				int64_t		slot = a.slots[i];

				if (kd_search_set_exact(s, slot, exact_key(pca->metric, q, x + (size_t) slot * dim, dim)) != 0)
				{
					kd_search_end(s);
					return -1;
				}
			}
		}
		else if (kind == KD_EMIT)
		{
			out[got].key = a.key;
			out[got].slot = a.slot;
			got++;
		}
	}
	if (stats)
		kd_search_stats(s, stats);
	kd_search_end(s);
	return got;
}

static void
run_case(int kind, int64_t n, int dim, int m, int leaf_size, int metric, int nq, int full_queries)
{
	float	   *x = malloc(sizeof(float) * (size_t) n * dim);
	float	   *proj = malloc(sizeof(float) * (size_t) n * (m < dim ? m : dim));
	float	   *resid = malloc(sizeof(float) * (size_t) n);
	float	   *q = malloc(sizeof(float) * dim);
	Row		   *truth = malloc(sizeof(Row) * (size_t) n);
	Row		   *got = malloc(sizeof(Row) * (size_t) n);
	int64_t		n_build = n - n / 20,	/* the last 5% are inserted after build */
				i;
	char		err[256];
	KdPca	   *pca;
	KdTree	   *tree;
	Leaf	   *leaves;
	int			qi,
				t;
	int64_t		keys_total = 0,
				leaves_total = 0,
				bound_viol = 0;
	clock_t		c0 = clock();

	make_data(kind, x, n, dim, metric);
	pca = kd_pca_train(x, n_build < 5000 ? n_build : 5000, dim, m, metric, 42, err, sizeof err);
	CHECK(pca != NULL, "kd_pca_train: %s", err);
	if (!pca)
		return;
	m = pca->m;
	for (i = 0; i < n; i++)
		kd_project(pca, x + (size_t) i * dim, proj + (size_t) i * m, resid + i);
	tree = kd_tree_build(proj, resid, n_build, m, leaf_size, err, sizeof err);
	CHECK(tree != NULL, "kd_tree_build: %s", err);
	if (!tree)
		return;
	leaves = calloc(tree->n_leaves, sizeof(Leaf));
	for (t = 0; t < tree->n_leaves; t++)
	{
		const KdNode *nd = &tree->nodes[tree->leaf_node[t]];
		int64_t		k;

		CHECK(nd->leaf == t, "leaf numbering");
		for (k = nd->begin; k < nd->begin + nd->count; k++)
		{
			int64_t		id = tree->perm[k];

			leaf_append(&leaves[t], m, id, resid[id], proj + (size_t) id * m);
		}
	}
	for (i = n_build; i < n; i++)
	{
		int32_t		path[256],
					len;
		int32_t		leaf = kd_tree_insert(tree, proj + (size_t) i * m, resid[i], path, 256, &len);

		CHECK(leaf >= 0 && tree->nodes[leaf].leaf >= 0 && path[len - 1] == leaf && path[0] == 0,
			  "insert descends to a leaf");
		leaf_append(&leaves[tree->nodes[leaf].leaf], m, i, resid[i], proj + (size_t) i * m);
	}

	for (qi = 0; qi < nq; qi++)
	{
		int			full = qi < full_queries;
		int64_t		want = full ? n : (n < 50 ? n : 50),
					emitted;
		KdSearchStats st;
		KdSearchOptions opts = {0, 1 + (qi % 3) * 7};

		/* queries: fresh points, existing points (incl. inserted ones), a zero vector */
		if (qi % 3 == 1)
			memcpy(q, x + (size_t) (next_u64() % n) * dim, sizeof(float) * dim);
		else if (qi % 3 == 2)
			memcpy(q, x + (size_t) (n_build + next_u64() % (n - n_build)) * dim, sizeof(float) * dim);
		else
		{
			float	   *tmp = malloc(sizeof(float) * dim * 2);

			make_data(kind, tmp, 2, dim, KD_METRIC_L2);
			/* mix a fresh point with an existing one: near, but not equal */
			for (t = 0; t < dim; t++)
				q[t] = 0.7f * tmp[t] + 0.3f * x[(size_t) (next_u64() % n) * dim + t];
			if (kind == KIND_EXTREME || kind == KIND_GRID)
				memcpy(q, tmp, sizeof(float) * dim);
			free(tmp);
		}
		if (qi == nq - 1 && metric == KD_METRIC_COSINE)
			memset(q, 0, sizeof(float) * dim);

		for (i = 0; i < n; i++)
		{
			truth[i].key = exact_key(metric, q, x + (size_t) i * dim, dim);
			truth[i].slot = i;
		}
		{
			float		qy[KD_MAX_PROJ_DIMS],
						qr;

			kd_project(pca, q, qy, &qr);
			for (i = 0; i < n; i++)
			{
				double		lb = kd_point_bound(pca, qy, qr, proj + (size_t) i * m, resid[i]);

				if (!isnan(truth[i].key) && !(lb <= truth[i].key))
				{
					bound_viol++;
					if (bound_viol < 5)
						fprintf(stderr, "bound %.17g > key %.17g (point %ld, %s dim %d)\n",
								lb, truth[i].key, (long) i, kind_names[kind], dim);
				}
			}
		}
		qsort(truth, n, sizeof(Row), row_cmp);

		emitted = run_search(pca, tree, leaves, x, dim, q, &opts, got, want, &st);
		CHECK(emitted == want, "%s dim %d n %ld metric %d query %d: emitted %ld of %ld",
			  kind_names[kind], dim, (long) n, metric, qi, (long) emitted, (long) want);
		for (i = 0; i < emitted && i < want; i++)
			if (got[i].slot != truth[i].slot || !same_key(got[i].key, truth[i].key))
			{
				CHECK(0, "%s dim %d n %ld metric %d query %d row %ld: got (%.17g, %ld) want (%.17g, %ld)",
					  kind_names[kind], dim, (long) n, metric, qi, (long) i, got[i].key, (long) got[i].slot,
					  truth[i].key, (long) truth[i].slot);
				break;
			}
		if (!full)
		{
			keys_total += st.keys_computed;
			leaves_total += st.leaves_opened;
		}

		/* budget mode: keys never decrease, rows are distinct */
		{
			KdSearchOptions bopts = {1 + qi % 4, 4};
			int64_t		j,
						bgot = run_search(pca, tree, leaves, x, dim, q, &bopts, got, n, &st);

			CHECK(bgot > 0, "budget search emitted nothing");
			for (j = 1; j < bgot; j++)
				if (row_cmp(&got[j - 1], &got[j]) > 0)
				{
					CHECK(0, "budget mode: row %ld out of order", (long) j);
					break;
				}
			CHECK(bgot + st.rows_dropped == n, "budget mode: %ld emitted + %ld dropped != %ld",
				  (long) bgot, (long) st.rows_dropped, (long) n);
		}
	}
	CHECK(bound_viol == 0, "%ld bound violations", (long) bound_viol);
	printf("%-8s dim %4d n %6ld m %3d L %3d %-6s: %d queries, mean keys %.1f (%.3f%%), leaves %.1f of %d, %.2f s\n",
		   kind_names[kind], dim, (long) n, m, leaf_size, metric == KD_METRIC_L2 ? "l2" : "cosine", nq,
		   nq > full_queries ? (double) keys_total / (nq - full_queries) : 0.0,
		   nq > full_queries ? 100.0 * keys_total / (nq - full_queries) / n : 0.0,
		   nq > full_queries ? (double) leaves_total / (nq - full_queries) : 0.0, tree->n_leaves,
		   (double) (clock() - c0) / CLOCKS_PER_SEC);
	for (t = 0; t < tree->n_leaves; t++)
	{
		free(leaves[t].slots);
		free(leaves[t].resid);
		free(leaves[t].proj);
	}
	free(leaves);
	kd_tree_free(tree);
	kd_pca_free(pca);
	free(x);
	free(proj);
	free(resid);
	free(q);
	free(truth);
	free(got);
}

static void
test_empty_tree(void)
{
	char		err[256];
	float		sample[4 * 3] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 0, 1};
	KdPca	   *pca = kd_pca_train(sample, 4, 3, 2, KD_METRIC_L2, 1, err, sizeof err);
	KdTree	   *tree = kd_tree_build(NULL, NULL, 0, pca->m, 8, err, sizeof err);
	float		y[3],
				r;
	KdSearch   *s;
	KdAction	a;
	int32_t		len;

	kd_project(pca, sample, y, &r);
	s = kd_search_begin(pca, tree, y, r, NULL);
	CHECK(kd_search_next(s, &a) == KD_DONE, "empty tree: done at once");
	kd_search_end(s);
	CHECK(kd_tree_insert(tree, y, r, NULL, 0, &len) == 0 && len == 1, "empty tree: insert into the root leaf");
	s = kd_search_begin(pca, tree, y, r, NULL);
	CHECK(kd_search_next(s, &a) == KD_NEED_LEAF && a.leaf == 0, "grown tree: leaf requested");
	CHECK(kd_search_set_exact(s, 7, 0) == -1, "unrequested key refused");
	{
		int64_t		slot = 7;

		kd_search_add_leaf(s, 1, &slot, &r, y);
	}
	CHECK(kd_search_next(s, &a) == KD_NEED_KEYS && a.count == 1 && a.slots[0] == 7, "key requested");
	CHECK(kd_search_next(s, &a) == KD_ERROR, "missing key is a protocol error");
	kd_search_end(s);
	kd_tree_free(tree);
	kd_pca_free(pca);
}

int
main(int argc, char **argv)
{
	clock_t		c0 = clock();
	int			metric;

	rng_state = argc > 1 ? strtoull(argv[1], NULL, 10) : 12345;
	test_empty_tree();
	for (metric = KD_METRIC_L2; metric <= KD_METRIC_COSINE; metric++)
	{
		run_case(KIND_GAUSS, 3000, 3, 16, 8, metric, 12, 3);
		run_case(KIND_GRID, 3000, 3, 16, 4, metric, 9, 3);
		run_case(KIND_DUPS, 2000, 64, 16, 16, metric, 9, 3);
		run_case(KIND_EXTREME, 4000, 64, 16, 16, metric, 12, 3);
		run_case(KIND_CNN, 20000, 64, 16, 32, metric, 9, 2);
		run_case(KIND_GAUSS, 4000, 512, 32, 16, metric, 6, 2);
		run_case(KIND_EXTREME, 3000, 512, 32, 16, metric, 6, 2);
		run_case(KIND_CNN, 20000, 512, 32, 64, metric, 9, 2);
		/* fewer sample vectors than projected dimensions: directions completed */
		run_case(KIND_GAUSS, 24, 512, 64, 8, metric, 6, 2);
		run_case(KIND_GAUSS, 1, 64, 16, 8, metric, 2, 2);
		run_case(KIND_GAUSS, 20, 2048, 32, 4, metric, 4, 2);
	}
	printf("%s: %d failure(s), %.1f s\n", failures ? "FAILED" : "ok", failures,
		   (double) (clock() - c0) / CLOCKS_PER_SEC);
	return failures ? 1 : 0;
}
