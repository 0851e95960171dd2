/*
 * kdtree_core_test.c — standalone test of the kdtree core (plain C: the API
 * is usable from C). Built by CMake (CMakeLists.txt) and run by ctest as
 * unit/kdtree (test/check.sh unit/kdtree); by hand: build/test/kdtree_core_test
 * [seed [errors]] (errors: the boundary's checks alone, e.g. under valgrind).
 * Exits non-zero on failure.
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
 * And the C/C++ boundary (cxx/cxx_error.h), with test/support standing in for
 * PostgreSQL's imgs_interrupt_pending and imgs_injected_fault:
 *  - bad arguments: NULL, a message and a SQLSTATE; protocol errors of the
 *    search: KD_ERROR (and stays so), kd_search_error says what;
 *  - an interrupt seen at any poll of the PCA (faiss and subspace paths), of
 *    the tree build or of a search fails it with 57014, nothing returned;
 *  - a fault injected at each fault point of kdtree_core.cpp (all of them:
 *    read from the source) fails its entry with 53200, nothing returned, and
 *    the same call works again, giving the same result, once it is cleared.
 */
#include "kdtree/kdtree_core.h"
#include "index/distance_core.h"
#include "core_test_support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
					v[t] = (float) imgs_test_gauss();
				break;
			case KIND_DUPS:
				/* 50 distinct points, each repeated; some sign flips */
				if (i < 50)
					for (t = 0; t < dim; t++)
						v[t] = (float) imgs_test_gauss();
				else
					memcpy(v, x + (size_t) (imgs_test_next_u64() % 50) * dim, sizeof(float) * dim);
				break;
			case KIND_GRID:
				for (t = 0; t < dim; t++)
					v[t] = (float) (int) (imgs_test_next_u64() % 3);
				break;
			case KIND_EXTREME:
				{
					/* per-vector scale 10^[-30, 37], some coordinates at +-3e38 */
					double		scale = pow(10.0, -30 + (double) (imgs_test_next_u64() % 68));

					for (t = 0; t < dim; t++)
					{
						double		g = imgs_test_gauss() * scale;

						if (imgs_test_next_u64() % 50 == 0)
							g = (imgs_test_next_u64() & 1 ? 1 : -1) * 3.0e38 * (0.9 + 0.1 * imgs_test_unif());
						if (g > 3.4e38)
							g = 3.4e38;
						if (g < -3.4e38)
							g = -3.4e38;
						v[t] = (float) g;
					}
					if (imgs_test_next_u64() % 40 == 0)
						memcpy(v, x + (size_t) (imgs_test_next_u64() % (i + 1)) * dim, sizeof(float) * dim);
				}
				break;
			case KIND_CNN:
				/* non-negative, decaying spectrum, unit norm */
				{
					double		s = 0;

					for (t = 0; t < dim; t++)
					{
						double		g = imgs_test_gauss() / sqrt(t + 1.0) + 0.3 / sqrt(t + 1.0);

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
 * number emitted (stops at max_rows or KD_DONE), -1 on an error (a failed
 * kd_search_begin, KD_ERROR, a refused leaf or key), whose ImgsError, when
 * there is one, goes to error_out (zeroed otherwise).
 */
static int64_t
run_search_err(const KdPca *pca, const KdTree *tree, Leaf *leaves, const float *x, int dim,
			   const float *q, const KdSearchOptions *opts, Row *out, int64_t max_rows,
			   KdSearchStats *stats, ImgsError *error_out)
{
	float		qy[KD_MAX_PROJ_DIMS],
				qr;
	KdSearch   *s;
	KdAction	a;
	int64_t		got = 0;
	ImgsError	err;

	if (error_out)
		memset(error_out, 0, sizeof *error_out);
	kd_project(pca, q, qy, &qr);
	s = kd_search_begin(pca, tree, qy, qr, opts, &err);
	if (!s)
	{
		if (error_out)
			*error_out = err;
		else
			fprintf(stderr, "kd_search_begin: %s %s\n", err.sqlstate, err.message);
		return -1;
	}
	while (got < max_rows)
	{
		int			kind = kd_search_next(s, &a),
					i;

		if (kind == KD_DONE)
			break;
		if (kind == KD_ERROR)
		{
			const ImgsError *e = kd_search_error(s);

			if (error_out && e)
				*error_out = *e;
			else if (!error_out)
				fprintf(stderr, "search error: %s %s\n", e ? e->sqlstate : "(none)", e ? e->message : "");
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

/* The same; a failure is told on stderr. */
static int64_t
run_search(const KdPca *pca, const KdTree *tree, Leaf *leaves, const float *x, int dim,
		   const float *q, const KdSearchOptions *opts, Row *out, int64_t max_rows,
		   KdSearchStats *stats)
{
	return run_search_err(pca, tree, leaves, x, dim, q, opts, out, max_rows, stats, NULL);
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
	ImgsError	err;
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
	pca = kd_pca_train(x, n_build < 5000 ? n_build : 5000, dim, m, metric, 42, &err);
	CHECK(pca != NULL, "kd_pca_train: %s %s", err.sqlstate, err.message);
	if (!pca)
		return;
	m = pca->m;
	for (i = 0; i < n; i++)
		kd_project(pca, x + (size_t) i * dim, proj + (size_t) i * m, resid + i);
	tree = kd_tree_build(proj, resid, n_build, m, leaf_size, &err);
	CHECK(tree != NULL, "kd_tree_build: %s %s", err.sqlstate, err.message);
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
			memcpy(q, x + (size_t) (imgs_test_next_u64() % n) * dim, sizeof(float) * dim);
		else if (qi % 3 == 2)
			memcpy(q, x + (size_t) (n_build + imgs_test_next_u64() % (n - n_build)) * dim, sizeof(float) * dim);
		else
		{
			float	   *tmp = malloc(sizeof(float) * dim * 2);

			make_data(kind, tmp, 2, dim, KD_METRIC_L2);
			/* mix a fresh point with an existing one: near, but not equal */
			for (t = 0; t < dim; t++)
				q[t] = 0.7f * tmp[t] + 0.3f * x[(size_t) (imgs_test_next_u64() % n) * dim + t];
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
			/* keys never decrease (a row at the last key with a lower slot may follow it) */
			for (j = 1; j < bgot; j++)
				if (got[j].key < got[j - 1].key || (isnan(got[j - 1].key) && !isnan(got[j].key)))
				{
					CHECK(0, "budget mode: row %ld out of order", (long) j);
					break;
				}
			qsort(got, bgot, sizeof(Row), row_cmp);
			for (j = 1; j < bgot; j++)
				if (got[j].slot == got[j - 1].slot)
				{
					CHECK(0, "budget mode: slot %ld twice", (long) got[j].slot);
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

/* An ImgsError full of garbage: a call that succeeds must leave its SQLSTATE empty. */
static void
error_garbage(ImgsError *e)
{
	memset(e, 'x', sizeof *e);
}

static void
test_empty_tree(void)
{
	ImgsError	err;
	float		sample[4 * 3] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 0, 1};
	KdPca	   *pca = kd_pca_train(sample, 4, 3, 2, KD_METRIC_L2, 1, &err);
	KdTree	   *tree;
	float		y[3],
				r;
	KdSearch   *s;
	KdAction	a;
	int32_t		len;
	const ImgsError *se;

	CHECK(pca != NULL, "kd_pca_train: %s %s", err.sqlstate, err.message);
	if (!pca)
		return;
	tree = kd_tree_build(NULL, NULL, 0, pca->m, 8, &err);
	CHECK(tree != NULL, "kd_tree_build (empty): %s %s", err.sqlstate, err.message);
	if (!tree)
		return;
	kd_project(pca, sample, y, &r);
	s = kd_search_begin(pca, tree, y, r, NULL, &err);
	CHECK(s != NULL, "kd_search_begin: %s %s", err.sqlstate, err.message);
	if (!s)
		return;
	CHECK(kd_search_next(s, &a) == KD_DONE, "empty tree: done at once");
	CHECK(kd_search_error(s) == NULL, "a search that did not fail has no error");
	kd_search_end(s);
	CHECK(kd_tree_insert(tree, y, r, NULL, 0, &len) == 0 && len == 1, "empty tree: insert into the root leaf");
	s = kd_search_begin(pca, tree, y, r, NULL, &err);
	CHECK(s != NULL, "kd_search_begin: %s %s", err.sqlstate, err.message);
	if (!s)
		return;
	CHECK(kd_search_add_leaf(s, 0, NULL, NULL, NULL) == -1, "a leaf nobody asked for refused");
	CHECK(kd_search_next(s, &a) == KD_NEED_LEAF && a.leaf == 0, "grown tree: leaf requested");
	CHECK(kd_search_set_exact(s, 7, 0) == -1, "unrequested key refused");
	CHECK(kd_search_add_leaf(s, -1, NULL, NULL, NULL) == -1, "a negative count refused");
	CHECK(kd_search_error(s) == NULL, "refused calls do not fail the search");
	{
		int64_t		slot = 7;

		kd_search_add_leaf(s, 1, &slot, &r, y);
	}
	CHECK(kd_search_next(s, &a) == KD_NEED_KEYS && a.count == 1 && a.slots[0] == 7, "key requested");
	CHECK(kd_search_set_exact(s, 8, 0) == -1, "a key for another slot refused");
	CHECK(kd_search_next(s, &a) == KD_ERROR, "missing key is a protocol error");
	se = kd_search_error(s);
	CHECK(imgs_test_error_is(se, IMGS_SQLSTATE_INTERNAL_ERROR), "protocol error: SQLSTATE '%s' message '%s' (want XX000 and a message)",
		  se ? se->sqlstate : "(none)", se ? se->message : "");
	CHECK(kd_search_next(s, &a) == KD_ERROR && a.count == 0 && a.slots == NULL, "a failed search stays failed");
	CHECK(kd_search_set_exact(s, 7, 0) == -1, "a failed search takes no keys");
	kd_search_end(s);
	kd_tree_free(tree);
	kd_pca_free(pca);
}

/* ---- the C/C++ boundary: bad arguments, interrupts, injected faults ------ */

/* A data set with its PCA, tree and leaves, for the error tests. */
typedef struct
{
	int64_t		n;
	int			dim,
				m,
				metric;
	float	   *x,
			   *proj,
			   *resid,
			   *q;
	KdPca	   *pca;
	KdTree	   *tree;
	Leaf	   *leaves;
} Fixture;

/* Trains on every point with seed 42, builds with no insert; 0 when it failed. */
static int
fixture_make(Fixture *f, int kind, int64_t n, int dim, int m, int leaf_size, int metric)
{
	ImgsError	err;

	memset(f, 0, sizeof *f);
	f->n = n;
	f->dim = dim;
	f->metric = metric;
	f->x = malloc(sizeof(float) * (size_t) n * dim);
	f->q = malloc(sizeof(float) * dim);
	make_data(kind, f->x, n, dim, metric);
	make_data(kind, f->q, 1, dim, KD_METRIC_L2);
	f->pca = kd_pca_train(f->x, n, dim, m, metric, 42, &err);
	CHECK(f->pca != NULL, "fixture: kd_pca_train: %s %s", err.sqlstate, err.message);
	if (!f->pca)
		return 0;
	f->m = f->pca->m;
	f->proj = malloc(sizeof(float) * (size_t) n * f->m);
	f->resid = malloc(sizeof(float) * n);
	for (int64_t i = 0; i < n; i++)
		kd_project(f->pca, f->x + (size_t) i * dim, f->proj + (size_t) i * f->m, f->resid + i);
	f->tree = kd_tree_build(f->proj, f->resid, n, f->m, leaf_size, &err);
	CHECK(f->tree != NULL, "fixture: kd_tree_build: %s %s", err.sqlstate, err.message);
	if (!f->tree)
		return 0;
	f->leaves = calloc(f->tree->n_leaves, sizeof(Leaf));
	for (int t = 0; t < f->tree->n_leaves; t++)
	{
		const KdNode *nd = &f->tree->nodes[f->tree->leaf_node[t]];

		for (int64_t k = nd->begin; k < nd->begin + nd->count; k++)
		{
			int64_t		id = f->tree->perm[k];

			leaf_append(&f->leaves[t], f->m, id, f->resid[id], f->proj + (size_t) id * f->m);
		}
	}
	return 1;
}

static void
fixture_free(Fixture *f)
{
	if (f->leaves)
		for (int t = 0; t < f->tree->n_leaves; t++)
		{
			free(f->leaves[t].slots);
			free(f->leaves[t].resid);
			free(f->leaves[t].proj);
		}
	free(f->leaves);
	kd_tree_free(f->tree);
	kd_pca_free(f->pca);
	free(f->x);
	free(f->proj);
	free(f->resid);
	free(f->q);
	memset(f, 0, sizeof *f);
}

/* Every row of a search for f->q (opts), into out (f->n rows); -1 when it failed. */
static int64_t
fixture_search(const Fixture *f, const KdSearchOptions *opts, Row *out)
{
	return run_search(f->pca, f->tree, f->leaves, f->x, f->dim, f->q, opts, out, f->n, NULL);
}

static int
same_pca(const KdPca *a, const KdPca *b)
{
	return a->dim == b->dim && a->m == b->m && a->metric == b->metric &&
		memcmp(&a->orth_err, &b->orth_err, sizeof a->orth_err) == 0 &&
		memcmp(a->mean, b->mean, sizeof(float) * a->dim) == 0 &&
		memcmp(a->rows, b->rows, sizeof(float) * (size_t) a->m * a->dim) == 0;
}

static int
same_tree(const KdTree *a, const KdTree *b)
{
	return a->m == b->m && a->leaf_size == b->leaf_size && a->n_nodes == b->n_nodes &&
		a->n_leaves == b->n_leaves && a->n_points == b->n_points &&
		memcmp(a->nodes, b->nodes, sizeof(KdNode) * a->n_nodes) == 0 &&
		memcmp(a->boxes, b->boxes, sizeof(float) * 2 * (size_t) a->m * a->n_nodes) == 0 &&
		memcmp(a->perm, b->perm, sizeof(int64_t) * a->n_points) == 0 &&
		memcmp(a->leaf_node, b->leaf_node, sizeof(int32_t) * a->n_leaves) == 0;
}

static int
same_rows(const Row *a, const Row *b, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		if (a[i].slot != b[i].slot || !same_key(a[i].key, b[i].key))
			return 0;
	return 1;
}

/* Bad arguments: NULL, a SQLSTATE and a message; nothing else happens. */
static void
test_bad_arguments(void)
{
	static const int bad_pca[][4] = {	/* dim, m, n, metric */
		{0, 4, 50, KD_METRIC_L2}, {-1, 4, 50, KD_METRIC_L2}, {8, 0, 50, KD_METRIC_L2},
		{8, -2, 50, KD_METRIC_COSINE}, {8, 4, -1, KD_METRIC_L2}, {8, 4, 50, 0},
		{8, 4, 50, 3 /* inner product: no bound */ }, {8, 4, 50, 99}};
	static const int64_t bad_tree[][3] = {	/* n, m, leaf_size */
		{50, 0, 8}, {50, -1, 8}, {50, KD_MAX_PROJ_DIMS + 1, 8}, {50, 4, 0}, {50, 4, -3},
		{-1, 4, 8}, {(int64_t) UINT32_MAX + 1, 4, 8}};
	Fixture		f;
	ImgsError	err;

	if (!fixture_make(&f, KIND_GAUSS, 50, 8, 4, 4, KD_METRIC_L2))
	{
		fixture_free(&f);
		return;
	}
	for (size_t t = 0; t < sizeof bad_pca / sizeof bad_pca[0]; t++)
	{
		KdPca	   *p;

		memset(&err, 0, sizeof err);
		p = kd_pca_train(f.x, bad_pca[t][2], bad_pca[t][0], bad_pca[t][1], bad_pca[t][3], 1, &err);
		CHECK(p == NULL && imgs_test_error_is(&err, NULL),
			  "kd_pca_train(dim %d, m %d, n %d, metric %d): %s, SQLSTATE '%.5s' message '%.80s'",
			  bad_pca[t][0], bad_pca[t][1], bad_pca[t][2], bad_pca[t][3], p ? "a PCA" : "NULL",
			  err.sqlstate, err.message);
		kd_pca_free(p);
	}
	for (size_t t = 0; t < sizeof bad_tree / sizeof bad_tree[0]; t++)
	{
		KdTree	   *tr;

		memset(&err, 0, sizeof err);
		/* the arguments are checked before any point is read */
		tr = kd_tree_build(f.proj, f.resid, bad_tree[t][0], (int32_t) bad_tree[t][1], (int32_t) bad_tree[t][2], &err);
		CHECK(tr == NULL && imgs_test_error_is(&err, NULL),
			  "kd_tree_build(n %ld, m %ld, leaf_size %ld): %s, SQLSTATE '%.5s' message '%.80s'",
			  (long) bad_tree[t][0], (long) bad_tree[t][1], (long) bad_tree[t][2], tr ? "a tree" : "NULL",
			  err.sqlstate, err.message);
		kd_tree_free(tr);
	}
	/* a PCA and a tree of different m: the search fails, at begin or at its first step */
	{
		KdTree	   *tr = kd_tree_build(f.proj, f.resid, f.n, 3, 4, &err);	/* proj read as n x 3 */
		float		qy[KD_MAX_PROJ_DIMS],
					qr;
		KdSearch   *s;
		KdAction	a;

		CHECK(tr != NULL, "kd_tree_build m 3: %s", err.message);
		kd_project(f.pca, f.q, qy, &qr);
		error_garbage(&err);
		s = tr ? kd_search_begin(f.pca, tr, qy, qr, NULL, &err) : NULL;
		if (tr && s == NULL)
			CHECK(imgs_test_error_is(&err, NULL), "kd_search_begin, m 4 and 3: NULL without an error");
		else if (tr)
		{
			const ImgsError *se;

			CHECK(kd_search_next(s, &a) == KD_ERROR, "kd_search_begin, m 4 and 3: the search goes on");
			se = kd_search_error(s);
			CHECK(imgs_test_error_is(se, NULL), "kd_search_begin, m 4 and 3: KD_ERROR without an error");
			kd_search_end(s);
		}
		kd_tree_free(tr);
	}
	/* the limits themselves are accepted, and success leaves no SQLSTATE */
	{
		KdPca	   *p;
		KdTree	   *tr;

		error_garbage(&err);
		p = kd_pca_train(f.x, 0, 1, 1, KD_METRIC_COSINE, 1, &err);
		CHECK(p != NULL && err.sqlstate[0] == '\0', "kd_pca_train(n 0, dim 1, m 1): %s", p ? "SQLSTATE left" : err.message);
		kd_pca_free(p);
		error_garbage(&err);
		tr = kd_tree_build(f.proj, f.resid, f.n, f.m, 1, &err);
		CHECK(tr != NULL && err.sqlstate[0] == '\0', "kd_tree_build(leaf_size 1): %s", tr ? "SQLSTATE left" : err.message);
		kd_tree_free(tr);
	}
	fixture_free(&f);
}

/*
 * Interrupts: the PCA (faiss below 1024 dimensions, subspace iteration
 * above) and the tree build fail with 57014 and return nothing, whichever of
 * their polls first sees the interrupt; when none does, they give what they
 * give without polling.
 */
static void
test_interrupts(void)
{
	static const int shapes[][3] = {	/* n, dim, m: faiss PCA; subspace iteration */
		{10000, 16, 8}, {40, 2048, 32}};
	ImgsError	err;

	for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++)
	{
		int64_t		n = shapes[t][0],
					polls;
		int			dim = shapes[t][1],
					m = shapes[t][2];
		float	   *x = malloc(sizeof(float) * (size_t) n * dim);
		KdPca	   *ref,
				   *p;

		make_data(KIND_GAUSS, x, n, dim, KD_METRIC_L2);
		imgs_test_interrupt_after(-1);
		ref = kd_pca_train(x, n, dim, m, KD_METRIC_L2, 5, &err);
		polls = imgs_test_interrupt_polls();
		CHECK(ref != NULL && polls >= 1, "kd_pca_train dim %d: %s, %ld polls", dim, ref ? "ok" : err.message, (long) polls);
		for (int64_t k = 0; ref && k < polls; k++)
		{
			error_garbage(&err);
			imgs_test_interrupt_after(k);
			p = kd_pca_train(x, n, dim, m, KD_METRIC_L2, 5, &err);
			CHECK(p == NULL && imgs_test_error_is(&err, IMGS_SQLSTATE_QUERY_CANCELED) && imgs_test_interrupt_polls() > k,
				  "kd_pca_train dim %d, interrupt at poll %ld of %ld: %s, SQLSTATE '%.5s'", dim, (long) k + 1,
				  (long) polls, p ? "a PCA" : "NULL", err.sqlstate);
			kd_pca_free(p);
		}
		/* every poll said no: the same PCA */
		imgs_test_interrupt_after(polls);
		p = kd_pca_train(x, n, dim, m, KD_METRIC_L2, 5, &err);
		CHECK(p && ref && same_pca(p, ref), "kd_pca_train dim %d: not the same PCA after %ld polls that said no",
			  dim, (long) polls);
		kd_pca_free(p);
		kd_pca_free(ref);
		free(x);
		printf("interrupts: kd_pca_train n %ld dim %d m %d: %ld polls, an interrupt injected at each\n",
			   (long) n, dim, m, (long) polls);
	}

	{
		Fixture		f;
		int64_t		polls;
		KdTree	   *tr;

		imgs_test_interrupt_after(-1);
		if (fixture_make(&f, KIND_CNN, 3000, 64, 16, 8, KD_METRIC_COSINE))
		{
			imgs_test_interrupt_after(-1);
			tr = kd_tree_build(f.proj, f.resid, f.n, f.m, 8, &err);
			polls = imgs_test_interrupt_polls();
			CHECK(tr && same_tree(tr, f.tree) && polls >= 1, "kd_tree_build: %ld polls", (long) polls);
			kd_tree_free(tr);
			for (int64_t k = 0; k < polls; k++)
			{
				error_garbage(&err);
				imgs_test_interrupt_after(k);
				tr = kd_tree_build(f.proj, f.resid, f.n, f.m, 8, &err);
				CHECK(tr == NULL && imgs_test_error_is(&err, IMGS_SQLSTATE_QUERY_CANCELED),
					  "kd_tree_build, interrupt at poll %ld of %ld: %s, SQLSTATE '%.5s'", (long) k + 1,
					  (long) polls, tr ? "a tree" : "NULL", err.sqlstate);
				kd_tree_free(tr);
			}
			printf("interrupts: kd_tree_build n %ld: %ld polls, an interrupt injected at each\n",
				   (long) f.n, (long) polls);
		}
		fixture_free(&f);
	}
	/*
	 * A search polls every 1024 steps of one kd_search_next: budget mode
	 * with big leaves and unbounded key batches drops that many rows in a
	 * row (data of its own: the polls do not depend on the seed).
	 */
	{
		Fixture		f;
		uint64_t	saved = imgs_test_rng;
		KdSearchOptions opts = {1, 1 << 30};

		imgs_test_rng = 1;
		imgs_test_interrupt_after(-1);
		if (fixture_make(&f, KIND_GAUSS, 40000, 3, 3, 10000, KD_METRIC_L2))
		{
			Row		   *ref = malloc(sizeof(Row) * f.n),
					   *got = malloc(sizeof(Row) * f.n);
			int64_t		nref,
						n,
						polls;

			/*
			 * a query far from the data: the budget's leaf holds rows no nearer
			 * than those of the next leaves, which come below its last row
			 */
			for (int d = 0; d < f.dim; d++)
				f.q[d] += 40.0f;
			imgs_test_interrupt_after(-1);
			nref = run_search_err(f.pca, f.tree, f.leaves, f.x, f.dim, f.q, &opts, ref, f.n, NULL, &err);
			polls = imgs_test_interrupt_polls();
			CHECK(nref > 0 && polls >= 1, "budget search: %ld rows, %ld polls", (long) nref, (long) polls);
			for (int64_t k = 0; k < polls; k++)
			{
				error_garbage(&err);
				imgs_test_interrupt_after(k);
				n = run_search_err(f.pca, f.tree, f.leaves, f.x, f.dim, f.q, &opts, got, f.n, NULL, &err);
				CHECK(n == -1 && imgs_test_error_is(&err, IMGS_SQLSTATE_QUERY_CANCELED),
					  "search, interrupt at poll %ld of %ld: %ld rows, SQLSTATE '%.5s'", (long) k + 1,
					  (long) polls, (long) n, err.sqlstate);
			}
			imgs_test_interrupt_after(polls);
			n = run_search_err(f.pca, f.tree, f.leaves, f.x, f.dim, f.q, &opts, got, f.n, NULL, &err);
			CHECK(n == nref && same_rows(got, ref, n), "search: other rows after %ld polls that said no", (long) polls);
			printf("interrupts: a budget search over %ld points: %ld polls, an interrupt injected at each\n",
				   (long) f.n, (long) polls);
			free(ref);
			free(got);
		}
		fixture_free(&f);
		imgs_test_rng = saved;
	}
	imgs_test_interrupt_after(-1);
}

/*
 * Injected faults: imgs_injected_fault names a fault point of
 * kdtree_core.cpp, where the core throws std::bad_alloc as if an allocation
 * failed. The entry fails with 53200 and returns nothing; cleared, the same
 * call gives what it gave before.
 */
static int
test_fault(const char *point)
{
	Fixture		f;
	ImgsError	err;
	Row		   *ref = NULL,
			   *got = NULL;
	int64_t		nref;
	int			known = 1;

	if (!fixture_make(&f, KIND_DUPS, 2000, 16, 8, 8, KD_METRIC_L2))
	{
		fixture_free(&f);
		return 1;
	}
	ref = malloc(sizeof(Row) * f.n);
	got = malloc(sizeof(Row) * f.n);
	nref = fixture_search(&f, NULL, ref);
	CHECK(nref == f.n, "fault %s: reference search emitted %ld of %ld", point, (long) nref, (long) f.n);

	if (strcmp(point, "kd_pca_train") == 0)
	{
		KdPca	   *p;

		error_garbage(&err);
		imgs_test_inject_fault(point);
		p = kd_pca_train(f.x, f.n, f.dim, 8, KD_METRIC_L2, 42, &err);
		CHECK(p == NULL && imgs_test_error_is(&err, IMGS_SQLSTATE_OUT_OF_MEMORY), "fault %s: %s, SQLSTATE '%.5s'", point,
			  p ? "a PCA" : "NULL", err.sqlstate);
		kd_pca_free(p);
		imgs_test_inject_fault(NULL);
		p = kd_pca_train(f.x, f.n, f.dim, 8, KD_METRIC_L2, 42, &err);
		CHECK(p != NULL && err.sqlstate[0] == '\0' && same_pca(p, f.pca), "fault %s cleared: not the same PCA", point);
		kd_pca_free(p);
	}
	else if (strcmp(point, "kd_tree_build") == 0)
	{
		KdTree	   *tr;

		error_garbage(&err);
		imgs_test_inject_fault(point);
		tr = kd_tree_build(f.proj, f.resid, f.n, f.m, 8, &err);
		CHECK(tr == NULL && imgs_test_error_is(&err, IMGS_SQLSTATE_OUT_OF_MEMORY), "fault %s: %s, SQLSTATE '%.5s'", point,
			  tr ? "a tree" : "NULL", err.sqlstate);
		kd_tree_free(tr);
		/* the empty tree too */
		tr = kd_tree_build(NULL, NULL, 0, f.m, 8, &err);
		CHECK(tr == NULL && imgs_test_error_is(&err, IMGS_SQLSTATE_OUT_OF_MEMORY), "fault %s, empty tree: %s, SQLSTATE '%.5s'",
			  point, tr ? "a tree" : "NULL", err.sqlstate);
		kd_tree_free(tr);
		imgs_test_inject_fault(NULL);
		tr = kd_tree_build(f.proj, f.resid, f.n, f.m, 8, &err);
		CHECK(tr != NULL && err.sqlstate[0] == '\0' && same_tree(tr, f.tree), "fault %s cleared: not the same tree", point);
		kd_tree_free(tr);
	}
	else if (strcmp(point, "kd_search_begin") == 0)
	{
		float		qy[KD_MAX_PROJ_DIMS],
					qr;
		KdSearch   *s;

		kd_project(f.pca, f.q, qy, &qr);
		error_garbage(&err);
		imgs_test_inject_fault(point);
		s = kd_search_begin(f.pca, f.tree, qy, qr, NULL, &err);
		CHECK(s == NULL && imgs_test_error_is(&err, IMGS_SQLSTATE_OUT_OF_MEMORY), "fault %s: %s, SQLSTATE '%.5s'", point,
			  s ? "a search" : "NULL", err.sqlstate);
		if (s)
			kd_search_end(s);
		imgs_test_inject_fault(NULL);
		CHECK(fixture_search(&f, NULL, got) == nref && same_rows(got, ref, nref), "fault %s cleared: not the same rows", point);
	}
	else if (strcmp(point, "kd_search_next") == 0)
	{
		float		qy[KD_MAX_PROJ_DIMS],
					qr;
		KdSearch   *s;
		KdAction	a;

		kd_project(f.pca, f.q, qy, &qr);
		s = kd_search_begin(f.pca, f.tree, qy, qr, NULL, &err);
		CHECK(s != NULL, "fault %s: kd_search_begin: %s", point, err.message);
		if (s)
		{
			const ImgsError *se;

			/* at the first step, and in the middle of a search */
			for (int step = 0; step < 2; step++)
			{
				if (step == 1)
				{
					/* into the search: up to its first keys, supplied */
					s = kd_search_begin(f.pca, f.tree, qy, qr, NULL, &err);
					for (;;)
					{
						int			kind = kd_search_next(s, &a);

						if (kind == KD_NEED_LEAF)
							kd_search_add_leaf(s, f.leaves[a.leaf].count, f.leaves[a.leaf].slots,
											   f.leaves[a.leaf].resid, f.leaves[a.leaf].proj);
						else if (kind == KD_NEED_KEYS)
						{
							for (int i = 0; i < a.count; i++)
								kd_search_set_exact(s, a.slots[i],
													imgs_l2_squared(f.q, f.x + (size_t) a.slots[i] * f.dim, f.dim));
							break;
						}
						else if (kind != KD_EMIT)
						{
							CHECK(0, "fault %s: search ended (%d) before asking for keys", point, kind);
							break;
						}
					}
				}
				imgs_test_inject_fault(point);
				CHECK(kd_search_next(s, &a) == KD_ERROR && a.kind == KD_ERROR && a.count == 0 && a.slots == NULL,
					  "fault %s (step %d): kind %d", point, step, a.kind);
				se = kd_search_error(s);
				CHECK(imgs_test_error_is(se, IMGS_SQLSTATE_OUT_OF_MEMORY), "fault %s (step %d): SQLSTATE '%.5s'", point, step,
					  se ? se->sqlstate : "(none)");
				imgs_test_inject_fault(NULL);
				CHECK(kd_search_next(s, &a) == KD_ERROR, "fault %s cleared: the failed search goes on", point);
				kd_search_end(s);
			}
		}
		CHECK(fixture_search(&f, NULL, got) == nref && same_rows(got, ref, nref), "fault %s cleared: not the same rows", point);
	}
	else
		known = 0;
	imgs_test_inject_fault(NULL);
	free(ref);
	free(got);
	fixture_free(&f);
	return known;
}

/* Every fault point of kdtree_core.cpp, as its source names them: each is tested. */
static void
test_faults(void)
{
	const char *path = IMGS_SOURCE_DIR "/src/kdtree/kdtree_core.cpp";
	char		names[32][IMGS_TEST_FAULT_NAME_LEN];
	int			n = imgs_test_fault_points(path, names, 32);

	CHECK(n >= 4 && n <= 32, "%d fault points in %s (-1: unreadable)", n, path);
	for (int i = 0; i < n && i < 32; i++)
		CHECK(test_fault(names[i]), "fault point \"%s\" (%s) has no test here", names[i], path);
	printf("faults: %d fault points of kdtree_core.cpp injected (53200 expected, then the same call again)\n", n);
}

/*
 * kd_search_begin_many: three query points (several examples' positives).
 * The caller's key of a point is its least distance to any of them (L2:
 * the distance, not its square, value_keys = 1; cosine: the distance), so
 * a bound must be the least of the three; rows come in exactly that order,
 * exact and under a leaf budget (then in non-decreasing order).
 */
static void
test_many_queries(int metric)
{
	enum
	{
		N = 3000, DIM = 16, NQ = 3, M = 4
	};
	float	   *x = malloc(sizeof(float) * N * DIM);
	float	   *proj = malloc(sizeof(float) * N * M);
	float	   *resid = malloc(sizeof(float) * N);
	double	   *key = malloc(sizeof(double) * N);
	Row		   *truth = malloc(sizeof(Row) * N);
	float		q[NQ * DIM],
				qy[NQ * M],
				qr[NQ];
	ImgsError	err;
	KdPca	   *pca;
	KdTree	   *tree;
	Leaf	   *leaves;

	make_data(KIND_GAUSS, x, N, DIM, metric);
	make_data(KIND_GAUSS, q, NQ, DIM, metric);
	pca = kd_pca_train(x, N, DIM, M, metric, 7, &err);
	CHECK(pca != NULL && pca->m == M, "many queries: kd_pca_train");
	if (!pca)
		return;
	for (int i = 0; i < N; i++)
		kd_project(pca, x + (size_t) i * DIM, proj + (size_t) i * M, resid + i);
	tree = kd_tree_build(proj, resid, N, M, 8, &err);
	CHECK(tree != NULL, "many queries: kd_tree_build");
	if (!tree)
		return;
	leaves = calloc(tree->n_leaves, sizeof(Leaf));
	for (int t = 0; t < tree->n_leaves; t++)
	{
		const KdNode *nd = &tree->nodes[tree->leaf_node[t]];

		for (int64_t k = nd->begin; k < nd->begin + nd->count; k++)
			leaf_append(&leaves[t], M, tree->perm[k], resid[tree->perm[k]], proj + (size_t) tree->perm[k] * M);
	}
	for (int k = 0; k < NQ; k++)
		kd_project(pca, q + k * DIM, qy + k * M, &qr[k]);
	for (int i = 0; i < N; i++)
	{
		key[i] = INFINITY;
		for (int k = 0; k < NQ; k++)
		{
			double		d = exact_key(metric, q + k * DIM, x + (size_t) i * DIM, DIM);

			key[i] = fmin(key[i], metric == KD_METRIC_L2 ? sqrt(d) : d);
		}
		truth[i].key = key[i];
		truth[i].slot = i;
	}
	qsort(truth, N, sizeof(Row), row_cmp);

	for (int budget = 0; budget <= 4; budget += 4)
	{
		KdSearchOptions opts = {budget, 1};
		KdSearch   *s = kd_search_begin_many(pca, tree, NQ, qy, qr, 1, &opts, &err);
		KdAction	a;
		int64_t		got = 0,
					in_order = 0;
		double		last = -INFINITY;
		KdSearchStats st;

		CHECK(s != NULL, "kd_search_begin_many: %s %s", err.sqlstate, err.message);
		if (!s)
			break;
		for (int kind; (kind = kd_search_next(s, &a)) != KD_DONE;)
		{
			CHECK(kind != KD_ERROR, "many queries: KD_ERROR");
			if (kind == KD_ERROR)
				break;
			if (kind == KD_NEED_LEAF)
				kd_search_add_leaf(s, leaves[a.leaf].count, leaves[a.leaf].slots, leaves[a.leaf].resid,
								   leaves[a.leaf].proj);
			else if (kind == KD_NEED_KEYS)
				for (int i = 0; i < a.count; i++)
					kd_search_set_exact(s, a.slots[i], key[a.slots[i]]);
			else if (kind == KD_EMIT)
			{
				if (budget == 0)
					in_order += got < N && truth[got].slot == a.slot && truth[got].key == a.key;
				else
					in_order += a.key >= last && a.key == key[a.slot];
				last = a.key;
				got++;
			}
		}
		kd_search_stats(s, &st);
		kd_search_end(s);
		if (budget == 0)
			CHECK(got == N && in_order == N && st.rows_emitted == N,
				  "many queries, metric %d, exact: %ld rows, %ld in the true order of %d",
				  metric, (long) got, (long) in_order, N);
		else
			CHECK(got > 0 && in_order == got,
				  "many queries, metric %d, max_leaves %d: %ld of %ld rows in non-decreasing order",
				  metric, budget, (long) in_order, (long) got);
	}
	for (int t = 0; t < tree->n_leaves; t++)
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
	free(key);
	free(truth);
}

int
main(int argc, char **argv)
{
	clock_t		c0 = clock();
	int			metric;

	imgs_test_rng = argc > 1 ? strtoull(argv[1], NULL, 10) : 12345;
	test_empty_tree();
	{
		/* the boundary's tests draw data of their own: the cases below see the seed's */
		uint64_t	saved = imgs_test_rng;

		test_bad_arguments();
		test_interrupts();
		test_faults();
		imgs_test_rng = saved;
	}
	if (argc > 2 && strcmp(argv[2], "errors") == 0)
		goto done;			/* the boundary alone (for valgrind) */
	for (metric = KD_METRIC_L2; metric <= KD_METRIC_COSINE; metric++)
	{
		test_many_queries(metric);
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
done:
	printf("%s: %d failure(s), %.1f s\n", failures ? "FAILED" : "ok", failures,
		   (double) (clock() - c0) / CLOCKS_PER_SEC);
	return failures ? 1 : 0;
}
