/*
 * kdtree_core.h — the k-d tree index method's core (C API over plain buffers;
 * no PostgreSQL header, usable from C). Implemented in C++ (faiss PCAMatrix,
 * nanoflann) in kdtree_core.cpp; every entry point catches its exceptions and
 * reports failure by its return value, so the caller never sees one.
 *
 * Three parts:
 *
 *  1. Projection. Mean and PCA to m dimensions learned on a sample
 *     (kd_pca_train), exported as plain arrays; kd_project maps a vector x to
 *     y = P (x' - mean) (m floats) and the residual norm r = |x' - mean - P^T y|,
 *     both computed in double, where x' = x for L2 and x' = x / |x| for the
 *     cosine metric (kd_project normalises itself; the caller passes raw
 *     vectors). The rows of P are orthonormal to double precision before being
 *     rounded to float; what rounding left (|P P^T - I|_F) is kept in
 *     orth_err and accounted for by the bounds.
 *
 *  2. Tree. kd_tree_build takes the projected points and residual norms of
 *     n points (ids 0..n-1) and builds a k-d tree with nanoflann
 *     (KDTreeSingleIndexAdaptor, leaf size L), exported as a flat node array
 *     (preorder; node 0 is the root): each node has its two children or, for
 *     a leaf, a range of `perm` (leaves are contiguous ranges of the
 *     permutation, numbered 0..n_leaves-1 in order), and a box: lo[m], hi[m]
 *     over the projected coordinates and [r_min, r_max] over the residual
 *     norms of every point below it. The caller may serialise nodes and boxes
 *     and, at scan time, fill a KdTree of its own pointing at its copies
 *     (kd_tree_free is only for trees kd_tree_build returned).
 *
 *  3. Search. A resumable best-first iterator that owns no vector data: the
 *     caller drives it with kd_search_next and answers its requests — the
 *     entries of a leaf (kd_search_add_leaf), the exact keys of points
 *     (kd_search_set_exact, computed by the caller with distance_core from
 *     its own copy of the vectors). Rows are emitted in exact (key, slot)
 *     order, with keys as the caller computed them, and only once no
 *     unexamined node or point can have a smaller key: a row is emitted when
 *     its key is strictly below every lower bound still queued (strictly, so
 *     that equal keys come out by slot). No LIMIT is assumed; stop pulling
 *     whenever enough rows came out.
 *
 * Lower bounds. For a point x and the query q (both as kd_project stored
 * them: float, clamped to +-FLT_MAX), with a = |y_q - y_x| (or the distance
 * from y_q to a node's box) and b = |r_q - r_x| (or to [r_min, r_max]),
 * computed in double, the bound is
 *     (max(0, a - e)^2 + max(0, b - e)^2) (1 - 2 orth_err)
 * with e = 2^-22 (|y_q| + r_q + |y_x| + r_x) covering float rounding of the
 * stored values and double rounding of the projection; then, for L2,
 * multiplied by 1 - 1.01 (dim + 4) 2^-24 (the worst-case rounding of
 * imgs_l2_squared's float sum), and for cosine, turned into a bound on
 * 1 - cos: max(0, sqrt(B) - 2.02 * 2^-24)^2 / 2 - 2.1 (dim + 2) 2^-24. A
 * bound never exceeds the key distance_core computes, for every finite
 * input (also for coordinates near FLT_MAX: clamping and rounding to float
 * are monotone, so they only shrink distances between stored values).
 *
 * Keys: L2 key = imgs_l2_squared(q, x); cosine key = imgs_cosine_distance
 * (q, x) on the raw vectors (NaN for a zero vector: such rows come last, by
 * slot). The inner-product metric is not supported (no metric bound).
 */
#ifndef IMGS_KDTREE_CORE_H
#define IMGS_KDTREE_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "cxx/cxx_error.h"

#ifdef __cplusplus
extern "C"
{
#endif

/* Metrics: the values of IMGS_METRIC_L2 and IMGS_METRIC_COSINE (distance_core.h). */
#define KD_METRIC_L2		1
#define KD_METRIC_COSINE	2

#define KD_MAX_PROJ_DIMS	256
/*
 * Projected dimensions kd_pca_train and kd_project handle: more than a tree
 * uses (faissflat's codes project 512-d vectors whole).
 */
#define KD_MAX_PCA_DIMS		512

/* ---- 1. Projection ---------------------------------------------------- */

typedef struct KdPca
{
	int32_t		dim;			/* input dimension */
	int32_t		m;				/* projected dimensions, 1..min(dim, KD_MAX_PCA_DIMS) */
	int32_t		metric;			/* KD_METRIC_* */
	int32_t		unused;
	double		orth_err;		/* |P P^T - I|_F of the float rows, in double (store it) */
	float	   *mean;			/* [dim] */
	float	   *rows;			/* [m * dim], row-major: P */
} KdPca;

/*
 * Learns mean and the top-m principal directions from n sample vectors
 * (row-major, n x dim; for COSINE raw vectors, normalised here; zero vectors
 * are skipped). Uses faiss PCAMatrix for dim <= 1024 and a seeded subspace
 * iteration above (faiss's full eigendecomposition on the reference LAPACK
 * takes minutes at 4096). m is cut to dim. Directions the sample does not
 * span are completed to an orthonormal set. Returns NULL on failure, with
 * err filled (57014 when an interrupt was seen: polled as it goes). Free
 * with kd_pca_free.
 *
 * Every function here is noexcept; those that can fail say so by their
 * return value and fill an ImgsError (cxx/cxx_error.h).
 */
extern KdPca *kd_pca_train(const float *sample, int64_t n, int32_t dim, int32_t m, int32_t metric,
						   uint64_t seed, ImgsError *err) IMGS_NOEXCEPT;
extern void kd_pca_free(KdPca *pca) IMGS_NOEXCEPT;

/*
 * Projects one raw vector: y[m] = P (x' - mean), *resid = |x' - mean - P^T y|
 * (double, then clamped to float range). Returns 0, or 1 when the metric is
 * COSINE and x is a zero vector (it is projected as the zero vector; its key
 * is NaN whatever the query, so its bound does not matter), or -1 when out
 * of memory (above 1024 dimensions it needs a buffer).
 */
extern int	kd_project(const KdPca *pca, const float *x, float *y, float *resid) IMGS_NOEXCEPT;

/* ---- 2. Tree ---------------------------------------------------------- */

typedef struct KdNode
{
	int32_t		child[2];		/* children's node numbers; -1, -1 for a leaf */
	int32_t		parent;			/* -1 for the root */
	int32_t		leaf;			/* leaf number, or -1 for an inner node */
	int64_t		begin;			/* leaf: its first position in perm (at build) */
	int32_t		count;			/* leaf: its number of points (at build) */
	int32_t		split_dim;		/* inner: the cut dimension (nanoflann's divfeat) */
	float		split_val;		/* inner: (divlow + divhigh) / 2; <= goes to child[0] */
	float		r_min;			/* residual norms below this node */
	float		r_max;
} KdNode;

typedef struct KdTree
{
	int32_t		m;
	int32_t		leaf_size;
	int32_t		n_nodes;
	int32_t		n_leaves;
	int64_t		n_points;		/* at build */
	KdNode	   *nodes;			/* [n_nodes], preorder, node 0 = root */
	float	   *boxes;			/* [n_nodes * 2m]: node i's lo at boxes + 2mi, hi after it */
	int64_t    *perm;			/* [n_points]: point ids in leaf order (build only; may be NULL later) */
	int32_t    *leaf_node;		/* [n_leaves]: node number of each leaf (may be NULL later) */
} KdTree;

static inline float *
kd_node_lo(const KdTree *t, int32_t node)
{
	return t->boxes + (size_t) node * 2 * (size_t) t->m;
}

static inline float *
kd_node_hi(const KdTree *t, int32_t node)
{
	return t->boxes + ((size_t) node * 2 + 1) * (size_t) t->m;
}

/*
 * Builds the tree over n points: proj (n x m, as kd_project wrote them) and
 * resid (n). leaf_size >= 1. n == 0 gives one empty leaf (an empty box:
 * lo = +inf, hi = -inf, r_min = +inf, r_max = -inf) that inserts can grow.
 * Returns NULL on failure, with err filled (57014 on an interrupt).
 */
extern KdTree *kd_tree_build(const float *proj, const float *resid, int64_t n, int32_t m,
							 int32_t leaf_size, ImgsError *err) IMGS_NOEXCEPT;
extern void kd_tree_free(KdTree *tree) IMGS_NOEXCEPT;

/* Grows node's box (and residual range) to hold the point (y, r). */
extern void kd_node_extend(KdTree *tree, int32_t node, const float *y, float r) IMGS_NOEXCEPT;

/*
 * For an insert after build: the leaf node (y, r) descends to (by the split
 * planes), after growing the box of every node on the way, root to leaf.
 * path (capacity path_cap, may be NULL) receives the node numbers of that
 * path, root first; *path_len their number (whether or not they fit). The
 * caller appends the entry to that leaf and writes back the grown nodes.
 * Returns the leaf's node number, or -1 for an empty tree.
 */
extern int32_t kd_tree_insert(KdTree *tree, const float *y, float r, int32_t *path, int32_t path_cap,
							  int32_t *path_len) IMGS_NOEXCEPT;

/* ---- 3. Search -------------------------------------------------------- */

typedef struct KdSearch KdSearch;

/* A budget's round emits the nearest 1/KD_BUDGET_SHARE of what its leaves
 * held, none from fewer than KD_BUDGET_MIN_ROWS (kd_search_next; the cost
 * estimate counts the same) */
#define KD_BUDGET_SHARE		4
#define KD_BUDGET_MIN_ROWS	16

typedef struct KdSearchOptions
{
	int32_t		max_leaves;		/* 0: exact; else one approximate round: open this many
								 * leaves, emit the nearest quarter of what they held, then
								 * go on exactly (see kd_search_next) */
	int32_t		key_batch;		/* most slots per KD_NEED_KEYS (>= 1; 1 computes fewest keys) */
} KdSearchOptions;

typedef enum KdActionKind
{
	KD_DONE = 0,				/* no more rows */
	KD_NEED_LEAF = 1,			/* supply leaf `leaf` (node `node`) with kd_search_add_leaf */
	KD_NEED_KEYS = 2,			/* supply exact keys of slots[0..count) with kd_search_set_exact */
	KD_EMIT = 3,				/* next row: (slot, key) */
	KD_ERROR = -1				/* protocol violation or out of memory: kd_search_error() */
} KdActionKind;

typedef struct KdAction
{
	int32_t		kind;			/* KdActionKind */
	int32_t		node;			/* KD_NEED_LEAF */
	int32_t		leaf;			/* KD_NEED_LEAF */
	int32_t		count;			/* KD_NEED_KEYS */
	const int64_t *slots;		/* KD_NEED_KEYS: valid until the next kd_search_next */
	int64_t		slot;			/* KD_EMIT */
	double		key;			/* KD_EMIT */
} KdAction;

typedef struct KdSearchStats
{
	int64_t		leaves_opened;
	int64_t		nodes_expanded;
	int64_t		entries_seen;	/* leaf entries supplied */
	int64_t		keys_computed;	/* exact keys requested */
	int64_t		rows_emitted;
	int64_t		rows_dropped;	/* budget mode: found after a larger key was emitted */
	int32_t		budget_round;	/* budget mode: its approximate round is not over */
	int64_t		keys_in_budget; /* exact keys the approximate round requested */
} KdSearchStats;

/*
 * Starts a search for the query whose kd_project output is (q_proj, q_resid).
 * pca and tree must outlive the search and not change during it (an insert
 * that grows boxes must wait, or restart the scan). opts may be NULL (exact,
 * key_batch 1). Returns NULL on failure, with err filled.
 */
extern KdSearch *kd_search_begin(const KdPca *pca, const KdTree *tree, const float *q_proj,
								 float q_resid, const KdSearchOptions *opts,
								 ImgsError *err) IMGS_NOEXCEPT;

/*
 * kd_search_begin from several query points (several examples: the
 * positives), q_count rows of q_proj and q_resid: the bound of a node or
 * point is the least of its bounds from each, so the caller's keys may be
 * any function no smaller than the key from some query point. value_keys:
 * the caller's L2 keys are distances, not squares (ORDER BY values), and
 * the bounds are their square roots (as are cosine's, unchanged).
 */
extern KdSearch *kd_search_begin_many(const KdPca *pca, const KdTree *tree, int32_t q_count,
									  const float *q_proj, const float *q_resid, int32_t value_keys,
									  const KdSearchOptions *opts, ImgsError *err) IMGS_NOEXCEPT;

/*
 * The next step. KD_NEED_LEAF: call kd_search_add_leaf for every entry of
 * that leaf (in one or more calls, e.g. one per page; none if it is empty),
 * then kd_search_next again. KD_NEED_KEYS: call kd_search_set_exact (or
 * kd_search_drop, for a slot that no longer holds a live row) once for
 * each slot listed, then kd_search_next again. KD_EMIT: the next row in
 * (key, slot) order (NaN keys last). In budget mode (max_leaves > 0) the
 * search makes one approximate round: once that many leaves are open, the
 * nearest quarter of the rows they held (none when they held fewer than
 * 16) come out in exact order without waiting for the leaves not opened.
 * Then the search goes on exactly, and rows below the last one emitted,
 * which the round missed, are dropped (counted). So keys never decrease,
 * every row ranking after the round's last row comes out (a consumer that
 * wants more rows than the round emitted gets every one of them), and the
 * only rows never emitted are rows nearer than the round's last row that
 * its leaves did not hold. The quarter keeps that region to the rows the
 * round is surest of: emitting every row of the opened leaves would lose
 * every nearer row of the leaves not opened. KD_DONE: nothing left;
 * KD_DONE again on later calls.
 */
extern int	kd_search_next(KdSearch *s, KdAction *action) IMGS_NOEXCEPT;

/*
 * Entries of the requested leaf: slots[count], resid[count] and proj
 * (count x m, row-major, as kd_project wrote them); a negative slot is a
 * dead entry, skipped. 0, or -1 when no leaf
 * was requested or out of memory.
 */
extern int	kd_search_add_leaf(KdSearch *s, int32_t count, const int64_t *slots, const float *resid,
							   const float *proj) IMGS_NOEXCEPT;

/*
 * The same from packed entries: count records of `stride` bytes, each a
 * uint32_t slot (UINT32_MAX: a dead entry, skipped), a float residual norm
 * and m floats of coordinates, at offsets 0, 4 and 8 (4-byte aligned).
 */
extern int	kd_search_add_packed(KdSearch *s, int32_t count, const void *entries,
								 size_t stride) IMGS_NOEXCEPT;

/* The exact key of a requested slot. 0, or -1 when that slot was not requested. */
extern int	kd_search_set_exact(KdSearch *s, int64_t slot, double key) IMGS_NOEXCEPT;

/* A requested slot whose row is gone: it is not emitted. 0, or -1 as above. */
extern int	kd_search_drop(KdSearch *s, int64_t slot) IMGS_NOEXCEPT;

extern void kd_search_stats(const KdSearch *s, KdSearchStats *stats) IMGS_NOEXCEPT;
/* After KD_ERROR or a -1: what failed, with its SQLSTATE (NULL if nothing did). */
extern const ImgsError *kd_search_error(const KdSearch *s) IMGS_NOEXCEPT;
extern void kd_search_end(KdSearch *s) IMGS_NOEXCEPT;

/*
 * The bound of one point, as the search computes it (for tests and for the
 * caller's own checks): a key no lower than what distance_core can return
 * is never below it.
 */
extern double kd_point_bound(const KdPca *pca, const float *q_proj, float q_resid, const float *x_proj,
							 float x_resid) IMGS_NOEXCEPT;

/*
 * The same bound from its parts, for a caller that keeps points in a form of
 * its own (faissflat's codes): a2 no more than the squared distance between
 * the query's and the point's stored projections (a lower bound of it, such
 * as the distance to a box holding the point's, is fine: the bound grows
 * with a2), b = |r_q - r_x|, mag no less than |y_q| + r_q + |y_x| + r_x.
 */
extern double kd_bound_from_parts(const KdPca *pca, double a2, double b, double mag) IMGS_NOEXCEPT;

#ifdef __cplusplus
}
#endif

#endif
