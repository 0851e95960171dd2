// kdtree_core.cpp — PCA projection, nanoflann tree export and the resumable
// best-first search of the kdtree index method (see kdtree_core.h).
#include "kdtree/kdtree_core.h"
#include "index/orthonormal.hpp"
#include "cxx/guard.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <faiss/VectorTransform.h>
#include <nanoflann.hpp>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define KD_KERNEL __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define KD_KERNEL
#endif

namespace {

using imgs::orthonormalise;

constexpr double kU = 0x1p-24;    // float unit roundoff
constexpr double kU2 = 0x1p-22;   // stored-value error per unit of magnitude (see header)

[[noreturn]] void bad_arguments(const char *msg) {
    throw imgs::Error(IMGS_SQLSTATE_INTERNAL_ERROR, msg);
}

float to_stored(double v) {
    if (v > FLT_MAX)
        v = FLT_MAX;
    else if (v < -FLT_MAX)
        v = -FLT_MAX;
    return (float)v;
}

// ---- small dense helpers (float data, float or double accumulation) ----

KD_KERNEL float dot_f(const float *__restrict a, const float *__restrict b, size_t n) {
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

KD_KERNEL void axpy_f(float *__restrict y, float a, const float *__restrict x, size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        y[i] += a * x[i];
}

// Symmetric eigendecomposition by cyclic Jacobi (small p x p, double).
// On return a's diagonal holds eigenvalues, v's columns the vectors.
void jacobi_eig(std::vector<double> &a, std::vector<double> &v, int p) {
    v.assign((size_t)p * p, 0);
    for (int i = 0; i < p; i++)
        v[(size_t)i * p + i] = 1;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0, diag = 0;
        for (int i = 0; i < p; i++)
            for (int j = 0; j < p; j++)
                (i == j ? diag : off) += a[(size_t)i * p + j] * a[(size_t)i * p + j];
        if (off <= 1e-30 * diag || off == 0)
            break;
        for (int i = 0; i < p; i++)
            for (int j = i + 1; j < p; j++) {
                double aij = a[(size_t)i * p + j];
                if (aij == 0)
                    continue;
                double aii = a[(size_t)i * p + i], ajj = a[(size_t)j * p + j];
                double theta = (ajj - aii) / (2 * aij);
                double t = (theta >= 0 ? 1 : -1) / (std::fabs(theta) + std::sqrt(theta * theta + 1));
                double c = 1 / std::sqrt(t * t + 1), s = t * c;
                for (int k = 0; k < p; k++) {
                    double aki = a[(size_t)k * p + i], akj = a[(size_t)k * p + j];
                    a[(size_t)k * p + i] = c * aki - s * akj;
                    a[(size_t)k * p + j] = s * aki + c * akj;
                }
                for (int k = 0; k < p; k++) {
                    double aik = a[(size_t)i * p + k], ajk = a[(size_t)j * p + k];
                    a[(size_t)i * p + k] = c * aik - s * ajk;
                    a[(size_t)j * p + k] = s * aik + c * ajk;
                }
                for (int k = 0; k < p; k++) {
                    double vki = v[(size_t)k * p + i], vkj = v[(size_t)k * p + j];
                    v[(size_t)k * p + i] = c * vki - s * vkj;
                    v[(size_t)k * p + j] = s * vki + c * vkj;
                }
            }
    }
}

// Top-m principal directions of the centred rows of x (n x d) by subspace
// iteration: for dimensions where a full eigendecomposition is too slow.
void subspace_pca(const std::vector<float> &x, int64_t n, int d, int m, uint64_t seed, std::vector<double> &out) {
    int p = std::min(d, m + 10);
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> nd;
    std::vector<double> q((size_t)p * d);
    for (auto &v : q)
        v = nd(rng);
    if (!orthonormalise(q, p, d, rng, [] { return imgs_interrupt_pending(); }))
        throw imgs::Interrupted();
    std::vector<float> qf((size_t)p * d), yt((size_t)p * d), z((size_t)p);
    auto mult = [&]() {  // yt = (X^T X) q, rows of q as columns
        for (size_t i = 0; i < qf.size(); i++)
            qf[i] = (float)q[i];
        std::fill(yt.begin(), yt.end(), 0.0f);
        for (int64_t i = 0; i < n; i++) {
            if ((i & 1023) == 0)
                imgs::check_interrupts();
            const float *xi = &x[(size_t)i * d];
            for (int j = 0; j < p; j++)
                z[j] = dot_f(xi, &qf[(size_t)j * d], d);
            for (int j = 0; j < p; j++)
                axpy_f(&yt[(size_t)j * d], z[j], xi, d);
        }
    };
    for (int it = 0; it < 4; it++) {
        imgs::check_interrupts();
        mult();
        for (size_t i = 0; i < q.size(); i++)
            q[i] = yt[i];
        orthonormalise(q, p, d, rng);
    }
    // Rayleigh-Ritz: B = Q^T (X^T X) Q, p x p
    mult();
    std::vector<double> b((size_t)p * p), v;
    for (int i = 0; i < p; i++)
        for (int j = 0; j < p; j++) {
            double s = 0;
            for (int t = 0; t < d; t++)
                s += q[(size_t)i * d + t] * (double)yt[(size_t)j * d + t];
            b[(size_t)i * p + j] = s;
        }
    for (int i = 0; i < p; i++)
        for (int j = i + 1; j < p; j++) {
            double s = (b[(size_t)i * p + j] + b[(size_t)j * p + i]) / 2;
            b[(size_t)i * p + j] = b[(size_t)j * p + i] = s;
        }
    jacobi_eig(b, v, p);
    std::vector<int> order(p);
    for (int i = 0; i < p; i++)
        order[i] = i;
    std::sort(order.begin(), order.end(),
              [&](int a, int c) { return b[(size_t)a * p + a] > b[(size_t)c * p + c]; });
    out.assign((size_t)m * d, 0);
    for (int r = 0; r < m; r++) {
        int col = order[r];
        for (int i = 0; i < p; i++) {
            double c = v[(size_t)i * p + col];
            for (int t = 0; t < d; t++)
                out[(size_t)r * d + t] += c * q[(size_t)i * d + t];
        }
    }
}

// x / |x| in double, rounded to float; false for a zero vector.
bool normalise(const float *x, int dim, float *out) {
    double s = 0;
    for (int i = 0; i < dim; i++)
        s += (double)x[i] * (double)x[i];
    if (s == 0)
        return false;
    double nrm = std::sqrt(s);
    for (int i = 0; i < dim; i++)
        out[i] = (float)((double)x[i] / nrm);
    return true;
}

// ---- bounds ----

struct BoundConsts {
    int metric;
    double rel;        // multiplier on the projected bound (orthonormality)
    double l2_rel;     // L2: multiplier for distance_core's float sum
    double cos_shift;  // cosine: normalisation error of the stored unit vectors
    double cos_abs;    // cosine: absolute error of distance_core's cosine
};

BoundConsts bound_consts(const KdPca *pca) {
    BoundConsts c;
    c.metric = pca->metric;
    double oe = std::isfinite(pca->orth_err) ? pca->orth_err : 1.0;
    c.rel = std::max(0.0, 1 - 2 * oe - 1e-12);
    c.l2_rel = std::max(0.0, 1 - 1.01 * (pca->dim + 4) * kU);
    c.cos_shift = 2.02 * kU;
    c.cos_abs = 2.1 * (pca->dim + 2) * kU;
    return c;
}

// a2 = squared projected distance (or to box), b = residual gap, mag = the
// magnitudes |y_q| + r_q + |y_x| + r_x (or their bound over a node).
inline double bound_from(const BoundConsts &c, double a2, double b, double mag) {
    double e = kU2 * mag;
    double a = std::sqrt(a2) - e;
    double bb = b - e;
    double s = 0;
    if (a > 0)
        s += a * a;
    if (bb > 0)
        s += bb * bb;
    s *= c.rel;
    if (c.metric == KD_METRIC_COSINE) {
        double t = std::sqrt(s) - c.cos_shift;
        if (t <= 0)
            return 0;
        double lb = t * t / 2 - c.cos_abs;
        return lb > 0 ? lb : 0;
    }
    return s * c.l2_rel;
}

// ---- nanoflann adaptor over the projected points ----

struct ProjCloud {
    const float *pts;
    int64_t n;
    int m;
    size_t kdtree_get_point_count() const { return (size_t)n; }
    float kdtree_get_pt(size_t idx, size_t dim) const { return pts[idx * (size_t)m + dim]; }
    template <class BBOX>
    bool kdtree_get_bbox(BBOX &) const { return false; }
};

using NfTree = nanoflann::KDTreeSingleIndexAdaptor<nanoflann::L2_Simple_Adaptor<float, ProjCloud>, ProjCloud, -1,
                                                   uint32_t>;

KdTree *alloc_tree(int m, int leaf_size, int n_nodes, int n_leaves, int64_t n) {
    KdTree *t = (KdTree *)std::calloc(1, sizeof(KdTree));
    if (!t)
        throw std::bad_alloc();
    t->m = m;
    t->leaf_size = leaf_size;
    t->n_nodes = n_nodes;
    t->n_leaves = n_leaves;
    t->n_points = n;
    t->nodes = (KdNode *)std::calloc((size_t)n_nodes, sizeof(KdNode));
    t->boxes = (float *)std::malloc((size_t)n_nodes * 2 * m * sizeof(float));
    t->perm = (int64_t *)std::malloc(std::max<size_t>(1, (size_t)n) * sizeof(int64_t));
    t->leaf_node = (int32_t *)std::malloc((size_t)std::max(1, n_leaves) * sizeof(int32_t));
    if (!t->nodes || !t->boxes || !t->perm || !t->leaf_node) {
        kd_tree_free(t);
        throw std::bad_alloc();
    }
    return t;
}

void empty_box(KdTree *t, int32_t node) {
    float *lo = kd_node_lo(t, node), *hi = kd_node_hi(t, node);
    for (int i = 0; i < t->m; i++) {
        lo[i] = INFINITY;
        hi[i] = -INFINITY;
    }
    t->nodes[node].r_min = INFINITY;
    t->nodes[node].r_max = -INFINITY;
}

// ---- the search ----

struct NodeItem {
    double lb;
    int32_t node;
};
struct CandItem {
    double lb;
    int64_t slot;
};
// a leaf's entries, sorted by bound; the candidate queue holds one item per chunk
struct Chunk {
    size_t next, end;  // into KdSearch::pool
    bool sorted;       // sorted when its first entry comes up: most never do
};
struct ChunkItem {
    double lb;  // of the chunk's next entry
    uint32_t chunk;
};
struct ResItem {
    double key;  // NaN sorts last
    int64_t slot;
};

// heap comparators: "a after b" (std heaps are max-heaps)
struct NodeAfter {
    bool operator()(const NodeItem &a, const NodeItem &b) const {
        return a.lb > b.lb || (a.lb == b.lb && a.node > b.node);
    }
};
struct CandAfter {
    bool operator()(const CandItem &a, const CandItem &b) const {
        return a.lb > b.lb || (a.lb == b.lb && a.slot > b.slot);
    }
};
struct ChunkAfter {
    bool operator()(const ChunkItem &a, const ChunkItem &b) const {
        return a.lb > b.lb || (a.lb == b.lb && a.chunk > b.chunk);
    }
};
inline bool key_less(double a, int64_t sa, double b, int64_t sb) {
    bool na = std::isnan(a), nb = std::isnan(b);
    if (na || nb) {
        if (na && nb)
            return sa < sb;
        return nb;  // a finite, b NaN
    }
    return a < b || (a == b && sa < sb);
}
struct ResAfter {
    bool operator()(const ResItem &a, const ResItem &b) const { return key_less(b.key, b.slot, a.key, a.slot); }
};

enum Pending { P_NONE, P_LEAF, P_KEYS };

}  // namespace

struct KdSearch {
    const KdPca *pca;
    const KdTree *tree;
    int m;
    BoundConsts bc;
    // the query points (several for several examples): q_count rows of m
    // coordinates, their residuals and |y_q|; a bound is the least over them
    int q_count = 1;
    std::vector<float> q;
    std::vector<double> rq, nq;
    bool value_bounds = false;  // L2 keys are distances: bounds are square roots
    double as_key_bound(double lb) const {
        if (std::isnan(lb))
            return 0;  // 0 bounds anything
        return value_bounds && bc.metric == KD_METRIC_L2 ? std::sqrt(lb) : lb;
    }
    int32_t max_leaves = 0, key_batch = 1;
    std::vector<NodeItem> nodes;
    // Candidates (points with a bound, no key yet): each opened leaf's entries
    // sorted by bound into the pool, and a heap of those runs by their next
    // bound, so only points that come up cost a heap operation.
    std::vector<CandItem> pool;
    std::vector<Chunk> chunks;
    std::vector<ChunkItem> cands;
    double cands_min() const { return cands.front().lb; }
    int64_t cands_pop() {
        ChunkItem top = cands.front();
        std::pop_heap(cands.begin(), cands.end(), ChunkAfter());
        cands.pop_back();
        Chunk &c = chunks[top.chunk];
        if (!c.sorted) {
            auto less = [](const CandItem &a, const CandItem &b) { return CandAfter()(b, a); };
            std::sort(pool.begin() + c.next, pool.begin() + c.end, less);
            c.sorted = true;
        }
        int64_t slot = pool[c.next++].slot;
        if (c.next < c.end) {
            cands.push_back({pool[c.next].lb, top.chunk});
            std::push_heap(cands.begin(), cands.end(), ChunkAfter());
        }
        return slot;
    }
    std::vector<ResItem> results;
    Pending pending = P_NONE;
    std::vector<int64_t> req_slots;
    std::vector<char> req_done;
    int32_t req_left = 0;
    bool budget_spent = false;
    int64_t budget_rows = -1;  // budget mode: rows the budget's round may emit (-1: not yet known)
    bool have_last = false;
    double last_key = 0;
    int64_t last_slot = 0;
    bool failed = false;
    ImgsError error{};
    KdSearchStats st{};

    double node_bound(int32_t node) const {
        const KdNode &nd = tree->nodes[node];
        const float *lo = kd_node_lo(tree, node), *hi = kd_node_hi(tree, node);
        double rlo = nd.r_min, rhi = nd.r_max;
        double least = INFINITY;
        for (int k = 0; k < q_count; k++) {
            const float *qk = q.data() + (size_t)k * m;
            double a2 = 0, mag2 = 0;
            for (int i = 0; i < m; i++) {
                double qi = qk[i], l = lo[i], h = hi[i];
                double g = l - qi > 0 ? l - qi : (qi - h > 0 ? qi - h : 0);
                a2 += g * g;
                double am = std::max(std::fabs(l), std::fabs(h));
                mag2 += am * am;
            }
            double b = rlo - rq[k] > 0 ? rlo - rq[k] : (rq[k] - rhi > 0 ? rq[k] - rhi : 0);
            double lb = as_key_bound(bound_from(bc, a2, b, nq[k] + rq[k] + std::sqrt(mag2) +
                                                               std::max(std::fabs(rlo), std::fabs(rhi))));
            least = std::min(least, lb);
        }
        return least;
    }
    bool node_empty(int32_t node) const {
        const KdNode &nd = tree->nodes[node];
        return !(nd.r_min <= nd.r_max);
    }
    void push_node(int32_t node) {
        if (node < 0 || node >= tree->n_nodes || node_empty(node))
            return;
        nodes.push_back({node_bound(node), node});
        std::push_heap(nodes.begin(), nodes.end(), NodeAfter());
    }
    void fail(const char *sqlstate, const char *msg) {
        failed = true;
        imgs::set_error(&error, sqlstate, msg);
    }
    void fail_internal(const char *msg) { fail(IMGS_SQLSTATE_INTERNAL_ERROR, msg); }
    // in a catch block: the exception being handled, with its SQLSTATE
    void fail_current() {
        failed = true;
        imgs::set_error_from_current_exception(&error);
    }
};

extern "C" {

KdPca *kd_pca_train(const float *sample, int64_t n, int32_t dim, int32_t m, int32_t metric, uint64_t seed,
                    ImgsError *err) noexcept {
    KdPca *pca = nullptr;
    KdPca *trained = nullptr;
    imgs::guard(err, [&] {
        if (dim < 1 || m < 1 || n < 0 || (metric != KD_METRIC_L2 && metric != KD_METRIC_COSINE))
            bad_arguments("kd_pca_train: bad arguments (dim, m, n or metric)");
        imgs::fault_point("kd_pca_train");
        m = std::min(m, std::min(dim, (int32_t)KD_MAX_PCA_DIMS));
        // the sample as the index sees it (unit vectors for cosine)
        std::vector<float> xs;
        int64_t ns = 0;
        xs.reserve((size_t)n * dim);
        std::vector<float> tmp(dim);
        for (int64_t i = 0; i < n; i++) {
            if ((i & 4095) == 0)
                imgs::check_interrupts();
            const float *x = sample + (size_t)i * dim;
            if (metric == KD_METRIC_COSINE) {
                if (!normalise(x, dim, tmp.data()))
                    continue;
                x = tmp.data();
            }
            bool finite = true;
            for (int t = 0; t < dim; t++)
                finite = finite && std::isfinite(x[t]);
            if (!finite)
                continue;
            xs.insert(xs.end(), x, x + dim);
            ns++;
        }
        std::vector<double> mean(dim, 0.0), rows;
        for (int64_t i = 0; i < ns; i++)
            for (int t = 0; t < dim; t++)
                mean[t] += xs[(size_t)i * dim + t];
        if (ns > 0)
            for (int t = 0; t < dim; t++)
                mean[t] /= (double)ns;
        std::vector<float> meanf(dim);
        for (int t = 0; t < dim; t++)
            meanf[t] = to_stored(mean[t]);
        std::mt19937_64 rng(seed ^ 0x6b64747265650001ULL);
        if (ns >= 2 && dim <= 1024) {
            // faiss computes the covariance in float: give it centred data
            // scaled to a safe range (directions do not change).
            double scale = 0;
            for (int64_t i = 0; i < ns; i++)
                for (int t = 0; t < dim; t++) {
                    float &v = xs[(size_t)i * dim + t];
                    v = (float)((double)v - (double)meanf[t]);
                    scale = std::max(scale, (double)std::fabs(v));
                }
            if (scale > 0 && (scale > 1e15 || scale < 1e-15))
                for (auto &v : xs)
                    v = (float)((double)v / scale);
            // from ns points faiss finds at most ns directions; the rest are
            // completed below, as for a sample that does not span them
            int32_t mf = (int32_t)std::min<int64_t>(m, ns);
            faiss::PCAMatrix p(dim, mf, 0, false);
            p.max_points_per_d = 1 << 30;
            p.train(ns, xs.data());
            rows.assign((size_t)m * dim, 0.0);
            std::copy(p.A.begin(), p.A.begin() + (size_t)mf * dim, rows.begin());
        } else if (ns >= 2) {
            for (int64_t i = 0; i < ns; i++)
                for (int t = 0; t < dim; t++)
                    xs[(size_t)i * dim + t] = (float)((double)xs[(size_t)i * dim + t] - (double)meanf[t]);
            double scale = 0;
            for (auto v : xs)
                scale = std::max(scale, (double)std::fabs(v));
            if (scale > 0 && (scale > 1e15 || scale < 1e-15))
                for (auto &v : xs)
                    v = (float)((double)v / scale);
            subspace_pca(xs, ns, dim, m, seed, rows);
        } else {
            rows.assign((size_t)m * dim, 0.0);
        }
        for (auto &v : rows)
            if (!std::isfinite(v))
                v = 0;
        orthonormalise(rows, m, dim, rng);

        pca = (KdPca *)std::calloc(1, sizeof(KdPca));
        if (!pca)
            throw std::bad_alloc();
        pca->dim = dim;
        pca->m = m;
        pca->metric = metric;
        pca->mean = (float *)std::malloc(sizeof(float) * dim);
        pca->rows = (float *)std::malloc(sizeof(float) * (size_t)m * dim);
        if (!pca->mean || !pca->rows)
            throw std::bad_alloc();
        std::memcpy(pca->mean, meanf.data(), sizeof(float) * dim);
        for (size_t i = 0; i < rows.size(); i++)
            pca->rows[i] = (float)rows[i];
        // what rounding the rows to float left of orthonormality
        double fro = 0;
        for (int i = 0; i < m; i++)
            for (int j = i; j < m; j++) {
                double s = 0;
                const float *ri = pca->rows + (size_t)i * dim, *rj = pca->rows + (size_t)j * dim;
                for (int t = 0; t < dim; t++)
                    s += (double)ri[t] * (double)rj[t];
                double e = s - (i == j ? 1.0 : 0.0);
                fro += (i == j ? 1 : 2) * e * e;
            }
        // the sum above is itself rounded: pad by its own error bound
        pca->orth_err = std::sqrt(fro) + 4.0 * dim * 0x1p-53 * m;
        trained = pca;
    });
    if (!trained)
        kd_pca_free(pca);
    return trained;
}

void kd_pca_free(KdPca *pca) noexcept {
    if (!pca)
        return;
    std::free(pca->mean);
    std::free(pca->rows);
    std::free(pca);
}

KD_KERNEL int kd_project(const KdPca *pca, const float *x, float *y, float *resid) noexcept {
    const int dim = pca->dim, m = pca->m;
    int ret = 0;
    // v = x' - mean, in double; on the stack up to 16000 dims is 128 kB:
    // use the heap above a small size instead.
    double vbuf[1024];
    std::vector<double> vheap;
    double *v = vbuf;
    if (dim > 1024) {
        try {
            vheap.resize(dim);
        } catch (...) {
            return -1;
        }
        v = vheap.data();
    }
    double scale = 1;
    if (pca->metric == KD_METRIC_COSINE) {
        double s = 0;
        for (int i = 0; i < dim; i++)
            s += (double)x[i] * (double)x[i];
        if (s == 0) {
            ret = 1;
            scale = 0;
        } else
            scale = 1 / std::sqrt(s);
        // the index's unit vector is the float rounding of x / |x|
        for (int i = 0; i < dim; i++)
            v[i] = (double)(float)((double)x[i] * scale) - (double)pca->mean[i];
        if (ret)
            for (int i = 0; i < dim; i++)
                v[i] = 0.0 - (double)pca->mean[i];
    } else {
        for (int i = 0; i < dim; i++)
            v[i] = (double)x[i] - (double)pca->mean[i];
    }
    double ybuf[KD_MAX_PCA_DIMS];
    for (int r = 0; r < m; r++) {
        const float *row = pca->rows + (size_t)r * dim;
        double s = 0;
#pragma omp simd reduction(+ : s)
        for (int i = 0; i < dim; i++)
            s += (double)row[i] * v[i];
        ybuf[r] = s;
        y[r] = to_stored(s);
    }
    for (int r = 0; r < m; r++) {
        const float *row = pca->rows + (size_t)r * dim;
        double c = ybuf[r];
#pragma omp simd
        for (int i = 0; i < dim; i++)
            v[i] -= c * (double)row[i];
    }
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < dim; i++)
        s += v[i] * v[i];
    *resid = to_stored(std::sqrt(s));
    return ret;
}

double kd_point_bound(const KdPca *pca, const float *q_proj, float q_resid, const float *x_proj,
                      float x_resid) noexcept {
    BoundConsts bc = bound_consts(pca);
    double a2 = 0, nq2 = 0, nx2 = 0;
    for (int i = 0; i < pca->m; i++) {
        double d = (double)q_proj[i] - (double)x_proj[i];
        a2 += d * d;
        nq2 += (double)q_proj[i] * q_proj[i];
        nx2 += (double)x_proj[i] * x_proj[i];
    }
    return bound_from(bc, a2, std::fabs((double)q_resid - (double)x_resid),
                      std::sqrt(nq2) + q_resid + std::sqrt(nx2) + x_resid);
}

double kd_bound_from_parts(const KdPca *pca, double a2, double b, double mag) noexcept {
    return bound_from(bound_consts(pca), a2, b, mag);
}

KdTree *kd_tree_build(const float *proj, const float *resid, int64_t n, int32_t m, int32_t leaf_size,
                      ImgsError *err) noexcept {
    KdTree *t = nullptr;
    KdTree *built = nullptr;
    imgs::guard(err, [&] {
        if (m < 1 || m > KD_MAX_PROJ_DIMS || leaf_size < 1 || n < 0 || n > (int64_t)UINT32_MAX)
            bad_arguments("kd_tree_build: bad arguments (m, leaf_size or n)");
        imgs::fault_point("kd_tree_build");
        imgs::check_interrupts();
        if (n == 0) {
            t = alloc_tree(m, leaf_size, 1, 1, 0);
            KdNode &nd = t->nodes[0];
            nd.child[0] = nd.child[1] = -1;
            nd.parent = -1;
            nd.leaf = 0;
            nd.begin = 0;
            nd.count = 0;
            empty_box(t, 0);
            t->leaf_node[0] = 0;
            built = t;
            return;
        }
        ProjCloud cloud{proj, n, m};
        NfTree index(m, cloud, nanoflann::KDTreeSingleIndexAdaptorParams((size_t)leaf_size));
        imgs::check_interrupts();   // nanoflann's build itself cannot be interrupted
        // count nodes and leaves (iteratively: nanoflann's tree may be deep)
        using NodePtr = NfTree::NodePtr;
        int64_t n_nodes = 0, n_leaves = 0;
        std::vector<NodePtr> stack{index.root_node};
        while (!stack.empty()) {
            NodePtr p = stack.back();
            stack.pop_back();
            n_nodes++;
            if (p->child1 == nullptr && p->child2 == nullptr)
                n_leaves++;
            else {
                stack.push_back(p->child2);
                stack.push_back(p->child1);
            }
        }
        if (n_nodes > INT32_MAX)
            throw std::runtime_error("kd_tree_build: too many nodes");
        t = alloc_tree(m, leaf_size, (int)n_nodes, (int)n_leaves, n);
        for (int64_t i = 0; i < n; i++)
            t->perm[i] = index.vAcc[i];
        // preorder numbering; children after their parent
        struct Item {
            NodePtr p;
            int32_t parent;
            int side;
        };
        std::vector<Item> st{{index.root_node, -1, 0}};
        int32_t next_id = 0, next_leaf = 0;
        while (!st.empty()) {
            Item it = st.back();
            st.pop_back();
            int32_t id = next_id++;
            KdNode &nd = t->nodes[id];
            nd.parent = it.parent;
            if (it.parent >= 0)
                t->nodes[it.parent].child[it.side] = id;
            if (it.p->child1 == nullptr && it.p->child2 == nullptr) {
                nd.child[0] = nd.child[1] = -1;
                nd.leaf = next_leaf;
                t->leaf_node[next_leaf++] = id;
                nd.begin = (int64_t)it.p->node_type.lr.left;
                nd.count = (int32_t)(it.p->node_type.lr.right - it.p->node_type.lr.left);
                nd.split_dim = -1;
            } else {
                nd.leaf = -1;
                nd.split_dim = it.p->node_type.sub.divfeat;
                nd.split_val = (float)(((double)it.p->node_type.sub.divlow + (double)it.p->node_type.sub.divhigh) / 2);
                st.push_back({it.p->child2, id, 1});
                st.push_back({it.p->child1, id, 0});
            }
        }
        // boxes, bottom-up: children have larger numbers than their parent
        for (int32_t id = t->n_nodes - 1; id >= 0; id--) {
            KdNode &nd = t->nodes[id];
            empty_box(t, id);
            float *lo = kd_node_lo(t, id), *hi = kd_node_hi(t, id);
            if (nd.leaf >= 0) {
                for (int64_t k = nd.begin; k < nd.begin + nd.count; k++) {
                    const float *y = proj + (size_t)t->perm[k] * m;
                    for (int i = 0; i < m; i++) {
                        lo[i] = std::min(lo[i], y[i]);
                        hi[i] = std::max(hi[i], y[i]);
                    }
                    nd.r_min = std::min(nd.r_min, resid[t->perm[k]]);
                    nd.r_max = std::max(nd.r_max, resid[t->perm[k]]);
                }
            } else {
                for (int c = 0; c < 2; c++) {
                    int32_t ch = nd.child[c];
                    const float *cl = kd_node_lo(t, ch), *chh = kd_node_hi(t, ch);
                    for (int i = 0; i < m; i++) {
                        lo[i] = std::min(lo[i], cl[i]);
                        hi[i] = std::max(hi[i], chh[i]);
                    }
                    nd.r_min = std::min(nd.r_min, t->nodes[ch].r_min);
                    nd.r_max = std::max(nd.r_max, t->nodes[ch].r_max);
                }
            }
        }
        built = t;
    });
    if (!built)
        kd_tree_free(t);
    return built;
}

void kd_tree_free(KdTree *t) noexcept {
    if (!t)
        return;
    std::free(t->nodes);
    std::free(t->boxes);
    std::free(t->perm);
    std::free(t->leaf_node);
    std::free(t);
}

void kd_node_extend(KdTree *t, int32_t node, const float *y, float r) noexcept {
    float *lo = kd_node_lo(t, node), *hi = kd_node_hi(t, node);
    for (int i = 0; i < t->m; i++) {
        lo[i] = std::min(lo[i], y[i]);
        hi[i] = std::max(hi[i], y[i]);
    }
    KdNode &nd = t->nodes[node];
    nd.r_min = std::min(nd.r_min, r);
    nd.r_max = std::max(nd.r_max, r);
}

int32_t kd_tree_insert(KdTree *t, const float *y, float r, int32_t *path, int32_t path_cap,
                       int32_t *path_len) noexcept {
    int32_t len = 0, node = t->n_nodes > 0 ? 0 : -1;
    while (node >= 0) {
        kd_node_extend(t, node, y, r);
        if (path && len < path_cap)
            path[len] = node;
        len++;
        const KdNode &nd = t->nodes[node];
        if (nd.leaf >= 0)
            break;
        node = nd.child[y[nd.split_dim] <= nd.split_val ? 0 : 1];
    }
    if (path_len)
        *path_len = len;
    return node;
}

KdSearch *kd_search_begin(const KdPca *pca, const KdTree *tree, const float *q_proj, float q_resid,
                          const KdSearchOptions *opts, ImgsError *err) noexcept {
    return kd_search_begin_many(pca, tree, 1, q_proj, &q_resid, 0, opts, err);
}

KdSearch *kd_search_begin_many(const KdPca *pca, const KdTree *tree, int32_t q_count, const float *q_proj,
                               const float *q_resid, int32_t value_keys, const KdSearchOptions *opts,
                               ImgsError *err) noexcept {
    KdSearch *s = nullptr;
    imgs::guard(err, [&] {
        imgs::fault_point("kd_search_begin");
        if (q_count < 1)
            bad_arguments("kd_search_begin_many: no query point");
        s = new KdSearch();
        s->pca = pca;
        s->tree = tree;
        s->m = tree->m;
        s->bc = bound_consts(pca);
        s->q_count = q_count;
        s->value_bounds = value_keys != 0;
        s->q.assign(q_proj, q_proj + (size_t)q_count * tree->m);
        for (int32_t k = 0; k < q_count; k++) {
            double nq2 = 0;
            for (int i = 0; i < tree->m; i++)
                nq2 += (double)q_proj[(size_t)k * tree->m + i] * q_proj[(size_t)k * tree->m + i];
            s->rq.push_back(q_resid[k]);
            s->nq.push_back(std::sqrt(nq2));
        }
        if (opts) {
            s->max_leaves = std::max(0, opts->max_leaves);
            s->key_batch = std::max(1, opts->key_batch);
        }
        if (pca->m != tree->m)
            throw imgs::Error(IMGS_SQLSTATE_INTERNAL_ERROR, "kd_search_begin: projection and tree disagree on m");
        s->push_node(0);
    });
    if (err->sqlstate[0]) {
        delete s;
        return nullptr;
    }
    return s;
}

int kd_search_next(KdSearch *s, KdAction *a) noexcept {
    std::memset(a, 0, sizeof(*a));
    a->kind = KD_ERROR;
    if (s->failed)
        return KD_ERROR;
    try {
        if (s->pending == P_KEYS) {
            if (s->req_left > 0) {
                s->fail_internal("kd_search_next: keys requested were not all supplied");
                return KD_ERROR;
            }
        }
        s->pending = P_NONE;
        imgs::fault_point("kd_search_next");
        for (uint64_t steps = 1;; steps++) {
            if ((steps & 1023) == 0)
                imgs::check_interrupts();
            if (s->budget_spent && s->budget_rows < 0)
                // the budget's leaves are in: its round emits the nearest quarter of
                // what they held (none from fewer than KD_BUDGET_MIN_ROWS), the rows the
                // unopened leaves are least likely to hold nearer rows than
                s->budget_rows = s->st.entries_seen >= KD_BUDGET_MIN_ROWS ? s->st.entries_seen / KD_BUDGET_SHARE : 0;
            if (s->budget_spent && s->st.rows_emitted >= s->budget_rows) {
                // the budget's round is out: the rest comes in exact order after the last
                // row it emitted (rows below it that the budget missed are dropped)
                s->budget_spent = false;
                s->max_leaves = 0;
            }
            s->st.budget_round = s->max_leaves > 0;
            if (s->st.budget_round)
                s->st.keys_in_budget = s->st.keys_computed;
            bool nodes_count = !s->nodes.empty() && !s->budget_spent;
            double min_node = nodes_count ? s->nodes.front().lb : INFINITY;
            double min_cand = s->cands.empty() ? INFINITY : s->cands_min();
            double min_lb = std::min(min_node, min_cand);
            bool nothing_queued = !nodes_count && s->cands.empty();
            if (!s->results.empty()) {
                const ResItem &top = s->results.front();
                if (top.key < min_lb || nothing_queued) {
                    ResItem r = top;
                    std::pop_heap(s->results.begin(), s->results.end(), ResAfter());
                    s->results.pop_back();
                    // budget mode only: a row the round missed, below its last row (one
                    // at that very key was not emitted either: slots come once, so it
                    // still comes, keys staying non-decreasing)
                    if (s->have_last && (r.key < s->last_key || (!std::isnan(r.key) && std::isnan(s->last_key)))) {
                        s->st.rows_dropped++;
                        continue;
                    }
                    s->have_last = true;
                    s->last_key = r.key;
                    s->last_slot = r.slot;
                    s->st.rows_emitted++;
                    a->kind = KD_EMIT;
                    a->slot = r.slot;
                    a->key = r.key;
                    return KD_EMIT;
                }
            }
            if (!s->cands.empty() && min_cand <= min_node) {
                // exact keys for the best candidates; stop the batch where an
                // emission or a node might come first
                s->req_slots.clear();
                double limit = std::min(min_node, s->results.empty() ? INFINITY : s->results.front().key);
                do {
                    s->req_slots.push_back(s->cands_pop());
                } while ((int32_t)s->req_slots.size() < s->key_batch && !s->cands.empty() &&
                         s->cands_min() <= limit);
                s->req_done.assign(s->req_slots.size(), 0);
                s->req_left = (int32_t)s->req_slots.size();
                s->st.keys_computed += s->req_left;
                s->pending = P_KEYS;
                a->kind = KD_NEED_KEYS;
                a->count = s->req_left;
                a->slots = s->req_slots.data();
                return KD_NEED_KEYS;
            }
            if (s->budget_spent && s->cands.empty() && s->results.empty()) {
                // the budget's leaves held fewer rows than its round may emit
                s->budget_spent = false;
                s->max_leaves = 0;
                continue;
            }
            if (!s->nodes.empty() && (nodes_count || (s->cands.empty() && s->results.empty()))) {
                NodeItem it = s->nodes.front();
                std::pop_heap(s->nodes.begin(), s->nodes.end(), NodeAfter());
                s->nodes.pop_back();
                const KdNode &nd = s->tree->nodes[it.node];
                if (nd.leaf < 0) {
                    s->st.nodes_expanded++;
                    s->push_node(nd.child[0]);
                    s->push_node(nd.child[1]);
                    continue;
                }
                s->st.leaves_opened++;
                if (s->max_leaves > 0 && s->st.leaves_opened >= s->max_leaves)
                    s->budget_spent = true;
                s->pending = P_LEAF;
                a->kind = KD_NEED_LEAF;
                a->node = it.node;
                a->leaf = nd.leaf;
                return KD_NEED_LEAF;
            }
            if (s->results.empty() && s->cands.empty() && s->nodes.empty()) {
                a->kind = KD_DONE;
                return KD_DONE;
            }
            // unreachable: results non-empty with nothing queued emits above
            s->fail_internal("kd_search_next: inconsistent state");
            return KD_ERROR;
        }
    } catch (...) {
        s->fail_current();
    }
    return KD_ERROR;
}

}  // extern "C"

// Appends count entries to the candidates as one run sorted by bound: entry j
// has its slot at slot_at(j) (skipped when negative), residual at resid_at(j)
// and coordinates at proj_at(j).
template <class Slot, class Resid, class Proj>
static inline __attribute__((always_inline)) int add_entries(KdSearch *s, int32_t count, Slot slot_at, Resid resid_at, Proj proj_at) {
    if (s->failed || s->pending != P_LEAF || count < 0)
        return -1;
    if (count == 0)
        return 0;
    try {
        const int m = s->m;
        // grow geometrically: reserve(size + count) alone would copy the pool on every leaf
        size_t begin = s->pool.size();
        if (s->pool.capacity() < begin + count)
            s->pool.reserve(std::max(2 * s->pool.capacity(), begin + count));
        int32_t added = 0;
        double min_lb = INFINITY;
        for (int32_t j = 0; j < count; j++) {
            int64_t slot = slot_at(j);
            if (slot < 0)
                continue;
            const float *y = proj_at(j);
            double rx = resid_at(j);
            double lb = INFINITY;
            for (int k = 0; k < s->q_count; k++) {
                const float *q = s->q.data() + (size_t)k * m;
                double a2 = 0, nx2 = 0;
#pragma omp simd reduction(+ : a2, nx2)
                for (int i = 0; i < m; i++) {
                    double d = (double)q[i] - (double)y[i];
                    a2 += d * d;
                    nx2 += (double)y[i] * (double)y[i];
                }
                double rq = s->rq[k];
                lb = std::min(lb, s->as_key_bound(bound_from(s->bc, a2, std::fabs(rq - rx),
                                                             s->nq[k] + rq + std::sqrt(nx2) + rx)));
            }
            s->pool.push_back({lb, slot});
            min_lb = std::min(min_lb, lb);
            added++;
        }
        s->st.entries_seen += added;
        if (added == 0)
            return 0;
        s->chunks.push_back({begin, s->pool.size(), false});
        s->cands.push_back({min_lb, (uint32_t)(s->chunks.size() - 1)});
        std::push_heap(s->cands.begin(), s->cands.end(), ChunkAfter());
        return 0;
    } catch (...) {
        s->fail_current();
        return -1;
    }
}

extern "C" {

KD_KERNEL int kd_search_add_leaf(KdSearch *s, int32_t count, const int64_t *slots, const float *resid,
                                 const float *proj) noexcept {
    const int m = s->m;
    return add_entries(
        s, count, [&](int32_t j) { return slots[j]; },
        [&](int32_t j) { return (double)resid[j]; }, [&](int32_t j) { return proj + (size_t)j * m; });
}

KD_KERNEL int kd_search_add_packed(KdSearch *s, int32_t count, const void *entries, size_t stride) noexcept {
    const char *base = (const char *)entries;
    return add_entries(
        s, count,
        [&](int32_t j) {
            uint32_t slot;
            std::memcpy(&slot, base + (size_t)j * stride, sizeof(slot));
            return slot == UINT32_MAX ? (int64_t)-1 : (int64_t)slot;
        },
        [&](int32_t j) {
            float r;
            std::memcpy(&r, base + (size_t)j * stride + 4, sizeof(r));
            return (double)r;
        },
        [&](int32_t j) { return (const float *)(base + (size_t)j * stride + 8); });
}

static int supply(KdSearch *s, int64_t slot, double key, bool drop) noexcept {
    if (s->failed || s->pending != P_KEYS)
        return -1;
    for (size_t i = 0; i < s->req_slots.size(); i++)
        if (s->req_slots[i] == slot && !s->req_done[i]) {
            s->req_done[i] = 1;
            s->req_left--;
            if (!drop) {
                try {
                    s->results.push_back({key, slot});
                } catch (...) {
                    s->fail_current();
                    return -1;
                }
                std::push_heap(s->results.begin(), s->results.end(), ResAfter());
            }
            return 0;
        }
    return -1;
}

int kd_search_set_exact(KdSearch *s, int64_t slot, double key) noexcept { return supply(s, slot, key, false); }

int kd_search_drop(KdSearch *s, int64_t slot) noexcept { return supply(s, slot, 0, true); }

void kd_search_stats(const KdSearch *s, KdSearchStats *stats) noexcept { *stats = s->st; }

const ImgsError *kd_search_error(const KdSearch *s) noexcept { return s->failed ? &s->error : nullptr; }

void kd_search_end(KdSearch *s) noexcept { delete s; }

}  // extern "C"
