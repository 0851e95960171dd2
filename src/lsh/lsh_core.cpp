// lsh_core.cpp — k-means hash, random rotation, sign sketches and their
// estimator (lsh_core.h).
#include "lsh/lsh_core.h"

#include "index/distance_core.h"
#include "index/orthonormal.hpp"
#include "cxx/guard.hpp"
#include "cxx/parallel.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <random>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

namespace {

// x' of the metric into out (dim floats); false for a zero vector under cosine.
bool
prepare_vector(int32_t metric, const float *x, int32_t dim, float *out)
{
    if (metric != LSH_METRIC_COSINE) {
        if (out != x)
            std::memcpy(out, x, sizeof(float) * dim);
        return true;
    }
    double n2 = imgs_norm_squared(x, dim);
    if (!(n2 > 0) || !std::isfinite(n2))
        return false;
    double inv = 1.0 / std::sqrt(n2);
    for (int32_t d = 0; d < dim; d++)
        out[d] = (float) (x[d] * inv);
    return true;
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define LSH_KERNEL __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define LSH_KERNEL
#endif

// Vectors are hashed LANES at a time: each row of a matrix (a centroid, a
// rotation row) is read once for all of them, from a transposed block.
constexpr int LANES = 8;
// Vectors per chunk of a threaded loop (a multiple of LANES): enough work per
// chunk to hide taking it, small enough that a cancel is seen within
// milliseconds and that the threads finish together.
constexpr int64_t ASSIGN_CHUNK = 16 * LANES;

// out[r * LANES + j] = sum over d of rows[r][d] * xt[d * LANES + j], in
// float, d ascending: one lane's sum does not depend on the others, so a
// vector hashes to the same bits alone (insert, check) or in a block (build).
LSH_KERNEL void
dots_lanes(const float *__restrict xt, const float *__restrict rows, int32_t nrows, int32_t dim,
           float *__restrict out)
{
    for (int32_t r = 0; r < nrows; r++) {
        const float *row = rows + (size_t) r * dim;
        float acc[LANES] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int32_t d = 0; d < dim; d++) {
            float v = row[d];
            const float *x = xt + (size_t) d * LANES;
#pragma omp simd
            for (int j = 0; j < LANES; j++)
                acc[j] += v * x[j];
        }
        for (int j = 0; j < LANES; j++)
            out[(size_t) r * LANES + j] = acc[j];
    }
}

// Lane j of xt (dim x LANES) := x (dim floats).
void
set_lane(float *xt, int32_t dim, int j, const float *x)
{
    for (int32_t d = 0; d < dim; d++)
        xt[(size_t) d * LANES + j] = x[d];
}

// The nearest of k centroids (L2) to each of the first n lanes of xt, ties
// to the lowest number; dots: k * LANES floats of scratch.
void
nearest_lanes(const float *centroids, const float *c_norms, int32_t k, const float *xt, int32_t dim,
              int n, int32_t *best, float *dots)
{
    dots_lanes(xt, centroids, k, dim, dots);
    for (int j = 0; j < n; j++) {
        double best_d = INFINITY;
        best[j] = 0;
        for (int32_t c = 0; c < k; c++) {
            // |x - c|^2 - |x|^2: the ranking needs no |x|^2
            double d = (double) c_norms[c] - 2.0 * dots[(size_t) c * LANES + j];
            if (d < best_d) {
                best_d = d;
                best[j] = c;
            }
        }
    }
}

void
centroid_norms(const float *centroids, int32_t k, int32_t dim, float *out)
{
    for (int32_t c = 0; c < k; c++)
        out[c] = (float) imgs_norm_squared(centroids + (size_t) c * dim, dim);
}

// Seeded Gaussian rows, orthonormalised; throws imgs::Interrupted on a cancel.
void
make_rotation(int32_t bits, int32_t dim, uint64_t seed, float *out)
{
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> gauss;
    std::vector<double> rows((size_t) bits * dim);
    for (auto &v : rows)
        v = gauss(rng);
    if (!imgs::orthonormalise(rows, bits, dim, rng, [] { return imgs_interrupt_pending(); }))
        throw imgs::Interrupted();
    for (size_t i = 0; i < rows.size(); i++)
        out[i] = (float) rows[i];
}

}  // namespace

// The portable kernel's tables keep S below bit PC_SHIFT (S <= LSH_MAX_BITS * 255)
constexpr int PC_SHIFT = 21;
static_assert(LSH_MAX_BITS * ((1 << LSH_QUERY_BITS_MAX) - 1) < (1 << PC_SHIFT), "S overflows into pc");
static_assert(8 * (1 << PC_SHIFT) + ((1 << LSH_QUERY_BITS_MAX) - 1) * 8 <= 0xFFFFFFFFu, "a table entry overflows");

struct QueryPlanes;

// Counts the bits of n sketches (see "Counting bits" below).
using CountKernel = void (*)(const QueryPlanes &qp, int32_t nbytes, const char *codes, int32_t n,
                             size_t entry_size, uint64_t *out);

// The quantized query (lsh_core.h "The estimator"), built on the first estimate.
struct QueryPlanes {
    CountKernel count = nullptr;       // the kernel's instance for qbits and the sketch's size
    int32_t qbits = LSH_QUERY_BITS;    // B_q: bits of each quantized coordinate
    int32_t kernel = 0;                // LSH_ESTIMATOR_*: the kernel that counts the bits
    int32_t plane_bytes = 0;           // bytes of one plane: the sketch's, padded to 64
    std::vector<uint8_t> planes;       // [(1 + qbits) * plane_bytes]: the valid bits, then bit p of u_j
    // the portable kernel's [nbytes * 256]: for byte k = v, the sum of u_j over v's bits, plus
    // their number (valid bits only) << PC_SHIFT
    std::vector<uint32_t> byte_sums;
    double lo = 0, delta = 0;          // (R q')_j ~ lo + delta u_j
    double err_max2 = 0;               // 2 max_j |e_j|, e_j = (R q')_j - lo - delta u_j
    double err_pos2 = 0;               // 2 sum_j max(e_j, 0)
};

// The sketch error's scale for the entries of bucket b: per entry, the
// error bound is eps0 * sqrt(ru2_b * max(0, bits scale^2 - (dim / bits)
// norm2) / (bits - 1) + proj_b * norm2) (lsh_core.h).
struct BoundTerms {
    double ru2;    // |R u|^2 / (bits - 1), u = q' - c_b (IP: q')
    double proj;   // the projection's share (bits < dim): 2 (1 - bits/dim) / bits |u|^2
    double bits;
    double dim_over_bits;
};

struct LshQuery {
    const LshModel *model;
    std::vector<float> q;          // q'
    std::vector<float> rq;         // R q'
    std::vector<double> bucket_keys;
    QueryPlanes qp;
    bool planes_ready = false;
    double qy_sum = 0;             // sum_j (R q')_j
    bool null_dir = false;         // a zero query under cosine: no direction
    // the bound's terms of the last bucket estimated: a bucket spans pages,
    // each estimated by its own call
    int32_t bound_bucket = -1;
    BoundTerms bound = {};
};

namespace {

int32_t best_kernel();
CountKernel count_kernel(const QueryPlanes &qp, int32_t bits);

// k-means on m prepared vectors xs (the assignment steps on `threads`
// threads); writes the centroids, returns their number.
int32_t
kmeans(const float *xs, int64_t m, int32_t dim, int32_t n_buckets, int32_t iterations, uint64_t seed,
       int32_t threads, float *centroids_out)
{
    if (m == 0) {
        // nothing to learn from: one centroid at the origin
        std::fill(centroids_out, centroids_out + dim, 0.0f);
        return 1;
    }
    int32_t k = (int32_t) std::min<int64_t>(n_buckets, m);
    std::mt19937_64 rng(seed ^ 0x9e3779b97f4a7c15ULL);
    // initial centroids: k distinct sample vectors
    std::vector<int64_t> ids(m);
    for (int64_t i = 0; i < m; i++)
        ids[i] = i;
    for (int32_t c = 0; c < k; c++) {
        std::uniform_int_distribution<int64_t> pick(c, m - 1);
        std::swap(ids[c], ids[pick(rng)]);
        std::memcpy(centroids_out + (size_t) c * dim, &xs[(size_t) ids[c] * dim], sizeof(float) * dim);
    }
    std::vector<float> norms(k);
    std::vector<int32_t> assign(m);
    std::vector<double> sums((size_t) k * dim);
    std::vector<int64_t> counts(k);
    for (int32_t it = 0; it < iterations; it++) {
        centroid_norms(centroids_out, k, dim, norms.data());
        // the assignment step, the k-means' work, in blocks of LANES vectors on the threads
        imgs::parallel_for(threads, m, ASSIGN_CHUNK, [&](int64_t begin, int64_t end) {
            std::vector<float> xt((size_t) dim * LANES), dots((size_t) k * LANES);
            for (int64_t i = begin; i < end; i += LANES) {
                int n = (int) std::min<int64_t>(LANES, end - i);
                std::fill(xt.begin(), xt.end(), 0.0f);
                for (int j = 0; j < n; j++)
                    set_lane(xt.data(), dim, j, &xs[(size_t) (i + j) * dim]);
                nearest_lanes(centroids_out, norms.data(), k, xt.data(), dim, n, &assign[i], dots.data());
            }
        });
        std::fill(sums.begin(), sums.end(), 0.0);
        std::fill(counts.begin(), counts.end(), 0);
        for (int64_t i = 0; i < m; i++) {
            double *s = &sums[(size_t) assign[i] * dim];
            const float *x = &xs[(size_t) i * dim];
            for (int32_t d = 0; d < dim; d++)
                s[d] += x[d];
            counts[assign[i]]++;
        }
        // every mean first: a reseed below must not change a count still to be divided by
        for (int32_t c = 0; c < k; c++) {
            float *cent = centroids_out + (size_t) c * dim;
            if (counts[c] > 0)
                for (int32_t d = 0; d < dim; d++)
                    cent[d] = (float) (sums[(size_t) c * dim + d] / counts[c]);
        }
        for (int32_t c = 0; c < k; c++) {
            float *cent = centroids_out + (size_t) c * dim;
            if (counts[c] > 0)
                continue;
            // an empty cluster takes a random member of the largest, nudged
            int32_t big = (int32_t) (std::max_element(counts.begin(), counts.end()) - counts.begin());
            std::uniform_int_distribution<int64_t> pick(0, m - 1);
            int64_t tries = 0, i;
            do
                i = pick(rng);
            while (assign[i] != big && ++tries < 64);
            const float *x = &xs[(size_t) i * dim];
            for (int32_t d = 0; d < dim; d++)
                cent[d] = x[d] * (1.0f + 1e-4f * (float) ((d & 1) ? 1 : -1));
            counts[c] = 1;
            counts[big] = std::max<int64_t>(1, counts[big] - 1);
        }
    }
    return k;
}

void
check_train_parameters(int32_t dim, int32_t bits, int32_t n_buckets)
{
    if (dim < 1 || bits < 1 || bits > dim || bits > LSH_MAX_BITS || n_buckets < 1 ||
        n_buckets > LSH_MAX_BUCKETS)
        throw imgs::Error(IMGS_SQLSTATE_INTERNAL_ERROR,
                          "lsh_train: bad parameters (dim " + std::to_string(dim) + ", bits " +
                              std::to_string(bits) + ", buckets " + std::to_string(n_buckets) + ")");
}

// The rotation and k-means on m prepared vectors; throws on bad parameters or a cancel.
int32_t
train(const float *prepared, int64_t m, int32_t dim, int32_t bits, int32_t n_buckets, int32_t iterations,
      uint64_t seed, int32_t threads, float *rotation_out, float *centroids_out)
{
    check_train_parameters(dim, bits, n_buckets);
    imgs::fault_point("lsh_train");
    make_rotation(bits, dim, seed, rotation_out);
    return kmeans(prepared, m, dim, n_buckets, iterations, seed, threads, centroids_out);
}

}  // namespace

extern "C" {

int64_t
lsh_prepare_sample(float *sample, int64_t n, int32_t dim, int32_t metric) noexcept
{
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++) {
        float *x = sample + (size_t) i * dim;
        if (!prepare_vector(metric, x, dim, x))
            continue;
        bool finite = true;
        for (int32_t d = 0; d < dim && finite; d++)
            finite = std::isfinite(x[d]);
        if (!finite)
            continue;
        if (m != i)
            std::memmove(sample + (size_t) m * dim, x, sizeof(float) * dim);
        m++;
    }
    return m;
}

int32_t
lsh_train_prepared(const float *prepared, int64_t m, int32_t dim, int32_t bits, int32_t n_buckets,
                   int32_t iterations, uint64_t seed, int32_t threads, float *rotation_out,
                   float *centroids_out, ImgsError *err) noexcept
{
    int32_t trained = -1;
    imgs::guard(err, [&] {
        trained = train(prepared, m, dim, bits, n_buckets, iterations, seed, threads, rotation_out,
                        centroids_out);
    });
    return err->sqlstate[0] ? -1 : trained;
}

int32_t
lsh_train(const float *sample, int64_t n, int32_t dim, int32_t bits, int32_t n_buckets,
          int32_t metric, int32_t iterations, uint64_t seed, int32_t threads, float *rotation_out,
          float *centroids_out, ImgsError *err) noexcept
{
    int32_t trained = -1;
    imgs::guard(err, [&] {
        check_train_parameters(dim, bits, n_buckets);
        // the sample stays the caller's: prepared in a copy
        std::vector<float> xs(sample, sample + (size_t) n * dim);
        int64_t m = lsh_prepare_sample(xs.data(), n, dim, metric);
        trained = train(xs.data(), m, dim, bits, n_buckets, iterations, seed, threads, rotation_out,
                        centroids_out);
    });
    return err->sqlstate[0] ? -1 : trained;
}

void
lsh_model_prepare(LshModel *model) noexcept
{
    centroid_norms(model->centroids, model->n_buckets, model->dim, model->c_norms);
    for (int32_t c = 0; c < model->n_buckets; c++)
        for (int32_t j = 0; j < model->bits; j++)
            model->rot_centroids[(size_t) c * model->bits + j] =
                (float) imgs_inner_product(model->rotation + (size_t) j * model->dim,
                                           model->centroids + (size_t) c * model->dim, model->dim);
}

namespace {

// Hashes n (<= LANES) raw vectors xs[j]: bucket, sketch (zeroed first), floats.
void
hash_lanes(const LshModel *model, const float *const *xs, int n, int32_t *bucket, uint8_t *const *code,
           float *norm2, float *scale, float *cdot)
{
    int32_t dim = model->dim, bits = model->bits;
    std::vector<float> xp((size_t) LANES * dim), xt((size_t) dim * LANES, 0.0f);
    std::vector<float> dots((size_t) std::max(model->n_buckets, bits) * LANES);
    bool has_dir[LANES];

    for (int j = 0; j < n; j++) {
        has_dir[j] = prepare_vector(model->metric, xs[j], dim, &xp[(size_t) j * dim]);
        if (has_dir[j])
            set_lane(xt.data(), dim, j, &xp[(size_t) j * dim]);
    }
    nearest_lanes(model->centroids, model->c_norms, model->n_buckets, xt.data(), dim, n, bucket,
                  dots.data());
    // the residuals, then their rotation
    std::fill(xt.begin(), xt.end(), 0.0f);
    for (int j = 0; j < n; j++) {
        float *r = &xp[(size_t) j * dim];
        if (!has_dir[j])
            continue;
        const float *c = model->centroids + (size_t) bucket[j] * dim;
        for (int32_t d = 0; d < dim; d++)
            r[d] -= c[d];
        set_lane(xt.data(), dim, j, r);
    }
    dots_lanes(xt.data(), model->rotation, bits, dim, dots.data());
    for (int j = 0; j < n; j++) {
        std::memset(code[j], 0, lsh_code_bytes(bits));
        if (!has_dir[j]) {
            // a zero vector under cosine: no direction, ranked last
            bucket[j] = 0;
            norm2[j] = INFINITY;
            scale[j] = 0;
            cdot[j] = 0;
            continue;
        }
        const float *rc = model->rot_centroids + (size_t) bucket[j] * bits;
        double l1 = 0, l2 = 0, cd = 0;
        for (int32_t b = 0; b < bits; b++) {
            double v = dots[(size_t) b * LANES + j];
            if (v > 0)
                code[j][b >> 3] |= (uint8_t) (1u << (b & 7));
            cd += v > 0 ? rc[b] : -rc[b];
            l1 += std::fabs(v);
            l2 += v * v;
        }
        double n2 = imgs_norm_squared(&xp[(size_t) j * dim], dim);
        norm2[j] = std::isfinite(n2) && n2 <= FLT_MAX ? (float) n2 : INFINITY;
        double sc = l1 > 0 ? (double) dim / bits * l2 / l1 : 0.0;
        scale[j] = std::isfinite(sc) && sc <= FLT_MAX ? (float) sc : 0.0f;
        cdot[j] = std::isfinite(cd) && std::fabs(cd) <= FLT_MAX ? (float) cd : 0.0f;
    }
}

}  // namespace

bool
lsh_assign(const LshModel *model, const float *x, int64_t n, int32_t *out, float *scratch,
           ImgsError *err) noexcept
{
  return imgs::guard(err, [&] {
    int32_t dim = model->dim;
    imgs::fault_point("lsh_assign");
    std::vector<float> xt((size_t) dim * LANES), dots((size_t) model->n_buckets * LANES);
    for (int64_t i = 0; i < n; i += LANES) {
        int m = (int) std::min<int64_t>(LANES, n - i);
        bool has_dir[LANES];
        std::fill(xt.begin(), xt.end(), 0.0f);
        for (int j = 0; j < m; j++) {
            has_dir[j] = prepare_vector(model->metric, x + (size_t) (i + j) * dim, dim, scratch);
            if (has_dir[j])
                set_lane(xt.data(), dim, j, scratch);
        }
        nearest_lanes(model->centroids, model->c_norms, model->n_buckets, xt.data(), dim, m, &out[i],
                      dots.data());
        for (int j = 0; j < m; j++)
            if (!has_dir[j])
                out[i + j] = 0;
    }
  });
}

int32_t
lsh_hash(const LshModel *model, const float *x, uint8_t *code, float *norm2, float *scale,
         float *cdot, ImgsError *err) noexcept
{
    int32_t bucket = -1;
    if (!imgs::guard(err, [&] {
            imgs::fault_point("lsh_hash");
            hash_lanes(model, &x, 1, &bucket, &code, norm2, scale, cdot);
        }))
        return -1;
    return bucket;
}

bool
lsh_hash_many(const LshModel *model, const float *x, int64_t n, int32_t *bucket, uint8_t *codes,
              float *norm2, float *scale, float *cdot, int32_t threads, ImgsError *err) noexcept
{
    return imgs::guard(err, [&] {
        imgs::fault_point("lsh_hash_many");
        size_t nbytes = lsh_code_bytes(model->bits);
        imgs::parallel_for(threads, n, ASSIGN_CHUNK, [&](int64_t begin, int64_t end) {
            imgs::fault_point("lsh_hash_chunk");   // a failure on a thread reaches the caller
            for (int64_t i = begin; i < end; i += LANES) {
                int m = (int) std::min<int64_t>(LANES, end - i);
                const float *xs[LANES];
                uint8_t *cs[LANES];
                for (int j = 0; j < m; j++) {
                    xs[j] = x + (size_t) (i + j) * model->dim;
                    cs[j] = codes + (size_t) (i + j) * nbytes;
                }
                hash_lanes(model, xs, m, &bucket[i], cs, &norm2[i], &scale[i], &cdot[i]);
            }
        });
    });
}

LshQuery *
lsh_query_begin(const LshModel *model, const float *q, ImgsError *err) noexcept
{
    LshQuery *query = nullptr;
    imgs::guard(err, [&] {
        imgs::fault_point("lsh_query_begin");
        std::unique_ptr<LshQuery> owned(new LshQuery);
        query = owned.get();
        int32_t dim = model->dim, bits = model->bits;
        query->model = model;
        query->qp.kernel = best_kernel();
        query->q.resize(dim);
        query->rq.resize(bits);
        query->bucket_keys.resize(model->n_buckets);
        if (!prepare_vector(model->metric, q, dim, query->q.data())) {
            // no direction: every exact key is NaN, so the order does not matter (q' = 0 here)
            query->null_dir = true;
            std::fill(query->q.begin(), query->q.end(), 0.0f);
        }
        for (int32_t j = 0; j < bits; j++)
            query->rq[j] = (float) imgs_inner_product(model->rotation + (size_t) j * dim, query->q.data(), dim);
        for (int32_t c = 0; c < model->n_buckets; c++) {
            const float *cent = model->centroids + (size_t) c * dim;
            query->bucket_keys[c] = model->metric == LSH_METRIC_IP
                ? -imgs_inner_product(query->q.data(), cent, dim)
                : imgs_l2_squared(query->q.data(), cent, dim);
        }
        owned.release();
    });
    return err->sqlstate[0] ? nullptr : query;
}

void
lsh_query_end(LshQuery *query) noexcept
{
    delete query;
}

const double *
lsh_query_bucket_keys(const LshQuery *query) noexcept
{
    return query->bucket_keys.data();
}

bool
lsh_query_probe_order(LshQuery *query, int32_t count, int32_t *out, ImgsError *err) noexcept
{
  return imgs::guard(err, [&] {
    imgs::fault_point("lsh_query_probe_order");
    int32_t n = query->model->n_buckets;
    std::vector<int32_t> order(n);
    for (int32_t c = 0; c < n; c++)
        order[c] = c;
    const std::vector<double> &k = query->bucket_keys;
    auto less = [&k](int32_t a, int32_t b) {
        if (k[a] != k[b] && !(std::isnan(k[a]) || std::isnan(k[b])))
            return k[a] < k[b];
        if (std::isnan(k[a]) != std::isnan(k[b]))
            return std::isnan(k[b]);
        return a < b;
    };
    count = std::min(count, n);
    std::partial_sort(order.begin(), order.begin() + count, order.end(), less);
    std::memcpy(out, order.data(), sizeof(int32_t) * count);
  });
}

}  // extern "C"

namespace {

// Quantizes R q' (lsh_core.h "The estimator"), on the first estimate.
void
prepare_planes(LshQuery *query)
{
    if (query->planes_ready)
        return;
    const LshModel *model = query->model;
    int32_t bits = model->bits, nbytes = lsh_code_bytes(bits);
    QueryPlanes &qp = query->qp;
    const float *qy = query->rq.data();
    qp.count = count_kernel(qp, bits);
    // the kernels read whole 64-byte blocks of a plane, zero past the sketch
    qp.plane_bytes = (nbytes + 63) / 64 * 64;
    qp.planes.assign((size_t) (1 + qp.qbits) * qp.plane_bytes, 0);
    double sum = 0, lo = INFINITY, hi = -INFINITY;
    bool finite = true;
    for (int32_t j = 0; j < bits; j++) {
        qp.planes[j >> 3] |= (uint8_t) (1u << (j & 7));
        sum += qy[j];
        finite = finite && std::isfinite(qy[j]);
        lo = std::min(lo, (double) qy[j]);
        hi = std::max(hi, (double) qy[j]);
    }
    query->qy_sum = sum;
    qp.err_max2 = qp.err_pos2 = 0;
    query->planes_ready = true;
    if (!finite) {
        // as the unquantized sum would be: every estimate NaN, so ranked last
        qp.lo = NAN;
        qp.delta = 0;
        return;
    }
    int32_t levels = (1 << qp.qbits) - 1;
    qp.lo = lo;
    qp.delta = (hi - lo) / levels;
    double inv = qp.delta > 0 ? 1.0 / qp.delta : 0.0, err_max = 0, err_pos = 0;
    std::vector<uint16_t> us(bits);
    for (int32_t j = 0; j < bits; j++) {
        double x = std::floor((qy[j] - lo) * inv + 0.5);
        int32_t u = (int32_t) std::min<double>(std::max(x, 0.0), levels);
        // the error as quantized, not as assumed: the bound holds whatever the rounding did
        double e = qy[j] - (lo + qp.delta * u);
        err_max = std::max(err_max, std::fabs(e));
        err_pos += std::max(e, 0.0);
        us[j] = (uint16_t) u;
        for (int32_t p = 0; p < qp.qbits; p++)
            if ((u >> p) & 1)
                qp.planes[(size_t) (1 + p) * qp.plane_bytes + (j >> 3)] |= (uint8_t) (1u << (j & 7));
    }
    qp.err_max2 = 2 * err_max;
    qp.err_pos2 = 2 * err_pos;
    if (qp.kernel == LSH_ESTIMATOR_PORTABLE) {
        // the same pc and S from a table per byte
        qp.byte_sums.assign((size_t) nbytes * 256, 0);
        for (int32_t k = 0; k < nbytes; k++) {
            uint32_t *t = &qp.byte_sums[(size_t) k * 256];
            for (int v = 1; v < 256; v++) {
                int32_t j = k * 8 + __builtin_ctz(v);
                t[v] = t[v & (v - 1)] + (j < bits ? us[j] + (1u << PC_SHIFT) : 0);
            }
        }
    }
}

// ---- Counting bits: out[i] = (pc << 32) + S for the sketch of entry i, at
// codes + i * entry_size: pc = popcount(code AND valid), S = sum_p 2^p
// popcount(code AND plane_p) = the sum of u_j over the set bits (lsh_core.h).

// pc and S from a table per byte: integer adds (no float add's latency to
// hide), in four chains for the loads
LSH_KERNEL void
count_portable(const QueryPlanes &qp, int32_t nbytes, const char *codes, int32_t n, size_t entry_size,
               uint64_t *out)
{
    const uint32_t *sums = qp.byte_sums.data();
    for (int32_t i = 0; i < n; i++) {
        const uint8_t *code = (const uint8_t *) codes + (size_t) i * entry_size;
        uint64_t s[4] = {0, 0, 0, 0};
        for (int32_t k = 0; k < nbytes; k += 4)   // nbytes is a multiple of 4
            for (int j = 0; j < 4; j++)
                s[j] += sums[(size_t) (k + j) * 256 + code[k + j]];
        uint64_t total = (s[0] + s[1]) + (s[2] + s[3]);
        out[i] = (total >> PC_SHIFT) << 32 | (total & ((1u << PC_SHIFT) - 1));
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#define LSH_HAVE_AVX512 1
// GCC 12 warns inside its own intrinsics (their _mm512_undefined_* operands)
#pragma GCC diagnostic push
#ifndef __clang__
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#define LSH_AVX512 __attribute__((target("avx512f,avx512vl,avx512vpopcntdq")))

// One 64-byte block: acc += (popcount(c AND valid) << 32) + sum_p popcount(c AND plane_p) << p,
// per 64-bit lane.
template <int B>
LSH_AVX512 inline __m512i
count_block(__m512i c, __m512i valid, const __m512i *planes, __m512i acc)
{
    acc = _mm512_add_epi64(acc, _mm512_slli_epi64(_mm512_popcnt_epi64(_mm512_and_si512(c, valid)), 32));
    for (int p = 0; p < B; p++)
        acc = _mm512_add_epi64(acc, _mm512_slli_epi64(_mm512_popcnt_epi64(_mm512_and_si512(c, planes[p])), p));
    return acc;
}

// The sums of the 8 lanes of each of a[0..7], in order: a transposing tree
// (21 shuffles and adds for 8, against 7 a horizontal sum for one)
LSH_AVX512 inline __m512i
sum_lanes8(const __m512i *a)
{
    __m512i t[4], u[2];
    for (int k = 0; k < 4; k++)   // per 128-bit lane: the pair sums of a[2k], a[2k + 1]
        t[k] = _mm512_add_epi64(_mm512_unpacklo_epi64(a[2 * k], a[2 * k + 1]),
                                _mm512_unpackhi_epi64(a[2 * k], a[2 * k + 1]));
    for (int k = 0; k < 2; k++)   // lanes 0+1 and 2+3 of t[2k], then of t[2k + 1]
        u[k] = _mm512_add_epi64(_mm512_shuffle_i64x2(t[2 * k], t[2 * k + 1], 0x88),
                                _mm512_shuffle_i64x2(t[2 * k], t[2 * k + 1], 0xDD));
    return _mm512_add_epi64(_mm512_shuffle_i64x2(u[0], u[1], 0x88), _mm512_shuffle_i64x2(u[0], u[1], 0xDD));
}

template <int B>
LSH_AVX512 inline __m256i
count_block256(__m256i c, __m256i valid, const __m256i *planes)
{
    __m256i acc = _mm256_slli_epi64(_mm256_popcnt_epi64(_mm256_and_si256(c, valid)), 32);
    for (int p = 0; p < B; p++)
        acc = _mm256_add_epi64(acc, _mm256_slli_epi64(_mm256_popcnt_epi64(_mm256_and_si256(c, planes[p])), p));
    return acc;
}

// A sketch of up to 256 bits in a ymm register: half the work of a zmm
// where 512-bit operations are two 256-bit halves (AMD Zen 4)
template <int B>
LSH_AVX512 void
count_avx512_256(const QueryPlanes &qp, int32_t nbytes, const char *codes, int32_t n, size_t entry_size,
                 uint64_t *out)
{
    __mmask8 mask = (__mmask8) ((1u << (nbytes / 4)) - 1);
    const uint8_t *pl = qp.planes.data();
    size_t pb = qp.plane_bytes;
    __m256i valid = _mm256_loadu_si256((const __m256i *) pl), planes[B];
    for (int p = 0; p < B; p++)
        planes[p] = _mm256_loadu_si256((const __m256i *) (pl + (1 + p) * pb));
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        __m256i a[4], t[2];
        for (int j = 0; j < 4; j++)
            a[j] = count_block256<B>(_mm256_maskz_loadu_epi32(mask, codes + (size_t) (i + j) * entry_size), valid,
                                     planes);
        for (int k = 0; k < 2; k++)   // per 128-bit lane: the pair sums of a[2k], a[2k + 1]
            t[k] = _mm256_add_epi64(_mm256_unpacklo_epi64(a[2 * k], a[2 * k + 1]),
                                    _mm256_unpackhi_epi64(a[2 * k], a[2 * k + 1]));
        _mm256_storeu_si256((__m256i *) (out + i),
                            _mm256_add_epi64(_mm256_permute2x128_si256(t[0], t[1], 0x20),
                                             _mm256_permute2x128_si256(t[0], t[1], 0x31)));
    }
    for (; i < n; i++) {
        __m256i a = count_block256<B>(_mm256_maskz_loadu_epi32(mask, codes + (size_t) i * entry_size), valid, planes);
        __m128i h = _mm_add_epi64(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
        out[i] = (uint64_t) (_mm_cvtsi128_si64(h) + _mm_extract_epi64(h, 1));
    }
}

// B = qbits, a constant, so that a sketch of up to 512 bits keeps every plane in a register
template <int B>
LSH_AVX512 void
count_avx512(const QueryPlanes &qp, int32_t nbytes, const char *codes, int32_t n, size_t entry_size,
             uint64_t *out)
{
    int32_t blocks = (nbytes + 63) / 64;
    // the last block's dwords (sketches are whole dwords): a masked load reads no further
    __mmask16 last = (__mmask16) ((1u << ((nbytes - 64 * (blocks - 1)) / 4)) - 1);
    const uint8_t *pl = qp.planes.data();
    size_t pb = qp.plane_bytes;
    __m512i planes[B];
    if (blocks == 1) {
        __m512i valid = _mm512_loadu_si512(pl);
        for (int p = 0; p < B; p++)
            planes[p] = _mm512_loadu_si512(pl + (1 + p) * pb);
        int32_t i = 0;
        for (; i + 8 <= n; i += 8) {
            __m512i acc[8];
            for (int j = 0; j < 8; j++)
                acc[j] = count_block<B>(_mm512_maskz_loadu_epi32(last, codes + (size_t) (i + j) * entry_size),
                                        valid, planes, _mm512_setzero_si512());
            _mm512_storeu_si512(out + i, sum_lanes8(acc));
        }
        for (; i < n; i++) {
            __m512i c = _mm512_maskz_loadu_epi32(last, codes + (size_t) i * entry_size);
            out[i] = (uint64_t) _mm512_reduce_add_epi64(count_block<B>(c, valid, planes, _mm512_setzero_si512()));
        }
        return;
    }
    for (int32_t i = 0; i < n; i++) {
        const char *code = codes + (size_t) i * entry_size;
        __m512i acc = _mm512_setzero_si512();
        for (int32_t k = 0; k < blocks; k++) {
            __m512i c = _mm512_maskz_loadu_epi32(k == blocks - 1 ? last : (__mmask16) 0xFFFF, code + 64 * k);
            for (int p = 0; p < B; p++)
                planes[p] = _mm512_loadu_si512(pl + (1 + p) * pb + 64 * k);
            acc = count_block<B>(c, _mm512_loadu_si512(pl + 64 * k), planes, acc);
        }
        out[i] = (uint64_t) _mm512_reduce_add_epi64(acc);
    }
}

#define LSH_AVX2 __attribute__((target("avx2")))

// AVX2 has no vector popcount: each byte's count from two 16-entry tables of
// nibble counts (vpshufb), weighted by 2^p and summed in 16-bit lanes
// (vpmaddubsw), as faiss and others count bits with AVX2. B = qbits.
template <int B>
LSH_AVX2 void
count_avx2(const QueryPlanes &qp, int32_t nbytes, const char *codes, int32_t n, size_t entry_size, uint64_t *out)
{
    int32_t blocks = (nbytes + 31) / 32;
    const uint8_t *pl = qp.planes.data();
    size_t pb = qp.plane_bytes;
    const __m256i nibble = _mm256_set1_epi8(0x0F);
    const __m256i counts = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                            0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    // the planes' low and high nibbles, block by block: [block][1 + B][2]; the last block's
    // dwords past the sketch masked off at the load (vpmaskmovd reads none of them)
    __m256i split[(LSH_MAX_BITS / 256) * (1 + B) * 2];
    for (int32_t k = 0; k < blocks; k++)
        for (int p = 0; p <= B; p++) {
            __m256i v = _mm256_loadu_si256((const __m256i *) (pl + p * pb + 32 * k));
            split[(k * (1 + B) + p) * 2] = _mm256_and_si256(v, nibble);
            split[(k * (1 + B) + p) * 2 + 1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble);
        }
    int32_t tail = (nbytes - 32 * (blocks - 1)) / 4;
    const __m256i last = _mm256_cmpgt_epi32(_mm256_set1_epi32(tail), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    const __m256i ones16 = _mm256_set1_epi16(1);
    for (int32_t i = 0; i < n; i++) {
        const char *code = codes + (size_t) i * entry_size;
        __m256i pc = _mm256_setzero_si256(), s = _mm256_setzero_si256();
        for (int32_t k = 0; k < blocks; k++) {
            __m256i c = k == blocks - 1 && tail < 8 ? _mm256_maskload_epi32((const int *) (code + 32 * k), last)
                                                    : _mm256_loadu_si256((const __m256i *) (code + 32 * k));
            __m256i lo = _mm256_and_si256(c, nibble), hi = _mm256_and_si256(_mm256_srli_epi16(c, 4), nibble);
            const __m256i *sp = &split[(size_t) k * (1 + B) * 2];
            // per byte: the set bits among the valid ones, summed in 64-bit lanes
            __m256i cnt = _mm256_add_epi8(_mm256_shuffle_epi8(counts, _mm256_and_si256(lo, sp[0])),
                                          _mm256_shuffle_epi8(counts, _mm256_and_si256(hi, sp[1])));
            pc = _mm256_add_epi64(pc, _mm256_sad_epu8(cnt, _mm256_setzero_si256()));
            // per pair of bytes: sum_p 2^p count_p <= 2 * 8 * 255, in 16 bits
            __m256i w = _mm256_setzero_si256();
            for (int p = 0; p < B; p++) {
                __m256i cp = _mm256_add_epi8(_mm256_shuffle_epi8(counts, _mm256_and_si256(lo, sp[2 + 2 * p])),
                                             _mm256_shuffle_epi8(counts, _mm256_and_si256(hi, sp[3 + 2 * p])));
                w = _mm256_add_epi16(w, _mm256_maddubs_epi16(_mm256_set1_epi8((char) (1 << p)), cp));
            }
            s = _mm256_add_epi32(s, _mm256_madd_epi16(w, ones16));
        }
        // the 8 dwords of s and the 4 qwords of pc, summed
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
        __m128i p2 = _mm_add_epi64(_mm256_castsi256_si128(pc), _mm256_extracti128_si256(pc, 1));
        uint64_t pcount = (uint64_t) (_mm_cvtsi128_si64(p2) + _mm_extract_epi64(p2, 1));
        out[i] = pcount << 32 | (uint32_t) _mm_cvtsi128_si32(s4);
    }
}

#pragma GCC diagnostic pop

bool
cpu_has_avx2()
{
    static const bool has = __builtin_cpu_supports("avx2");
    return has;
}

bool
cpu_has_avx512()
{
    static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512vpopcntdq");
    return has;
}
#endif

CountKernel
count_kernel(const QueryPlanes &qp, int32_t bits)
{
#ifdef LSH_HAVE_AVX512
    // one instance per B_q (1..LSH_QUERY_BITS_MAX), indexed by B_q - 1
    static const CountKernel avx512_256[] = {count_avx512_256<1>, count_avx512_256<2>, count_avx512_256<3>,
                                             count_avx512_256<4>, count_avx512_256<5>, count_avx512_256<6>,
                                             count_avx512_256<7>, count_avx512_256<8>};
    static const CountKernel avx512[] = {count_avx512<1>, count_avx512<2>, count_avx512<3>, count_avx512<4>,
                                         count_avx512<5>, count_avx512<6>, count_avx512<7>, count_avx512<8>};
    static const CountKernel avx2[] = {count_avx2<1>, count_avx2<2>, count_avx2<3>, count_avx2<4>,
                                       count_avx2<5>, count_avx2<6>, count_avx2<7>, count_avx2<8>};
    static_assert(sizeof(avx2) / sizeof(avx2[0]) == LSH_QUERY_BITS_MAX, "a kernel for every B_q");
    if (qp.qbits >= 1 && qp.qbits <= LSH_QUERY_BITS_MAX) {
        if (qp.kernel == LSH_ESTIMATOR_AVX512)
            return lsh_code_bytes(bits) <= 32 ? avx512_256[qp.qbits - 1] : avx512[qp.qbits - 1];
        if (qp.kernel == LSH_ESTIMATOR_AVX2)
            return avx2[qp.qbits - 1];
    }
#endif
    return count_portable;
}

// The fastest kernel this CPU runs.
int32_t
best_kernel()
{
#ifdef LSH_HAVE_AVX512
    if (cpu_has_avx512())
        return LSH_ESTIMATOR_AVX512;
    if (cpu_has_avx2())
        return LSH_ESTIMATOR_AVX2;
#endif
    return LSH_ESTIMATOR_PORTABLE;
}

BoundTerms
bound_terms(LshQuery *query, int32_t bucket)
{
    const LshModel *model = query->model;
    int32_t bits = model->bits, dim = model->dim;
    bool ip = model->metric == LSH_METRIC_IP;
    const float *rc = model->rot_centroids + (size_t) bucket * bits;
    double ru2 = 0, u2 = 0;
    for (int32_t j = 0; j < bits; j++) {
        double v = ip ? query->rq[j] : (double) query->rq[j] - rc[j];
        ru2 += v * v;
    }
    if (ip)
        u2 = imgs_norm_squared(query->q.data(), dim);
    else
        u2 = query->bucket_keys[bucket];
    BoundTerms t;
    t.ru2 = ru2 / std::max(bits - 1, 1);
    t.proj = 2.0 * (1.0 - (double) bits / dim) / bits * u2;
    t.bits = bits;
    t.dim_over_bits = (double) dim / bits;
    return t;
}

// Entries counted at a time (their counts on the stack).
constexpr int32_t ESTIMATE_BLOCK = 64;

// Estimates (lsh_core.h) of count entries of bucket b into out; with lower,
// their lower bounds at eps0 too.
void
estimate_entries(LshQuery *query, int32_t bucket, const char *entries, int32_t count,
                 size_t entry_size, size_t floats_offset, size_t code_offset, float eps0,
                 float *out, float *lower)
{
    const LshModel *model = query->model;
    int32_t nbytes = lsh_code_bytes(model->bits);
    bool ip = model->metric == LSH_METRIC_IP;

    prepare_planes(query);
    const QueryPlanes &qp = query->qp;
    BoundTerms bt = {};
    // L2 and cosine estimate |q' - x'|^2 = ... - 2 <u, r>: twice <u, r>'s error
    double key_per_dot = ip ? 1.0 : 2.0;
    float err_scale = eps0 * (float) key_per_dot;
    if (lower) {
        if (query->bound_bucket != bucket) {
            query->bound = bound_terms(query, bucket);
            query->bound_bucket = bucket;
        }
        bt = query->bound;
    }
    double base = query->bucket_keys[bucket];   // |q'-c_b|^2, or -<q', c_b>
    uint64_t counts[ESTIMATE_BLOCK];
    // dot = 2 (the sum over the set bits of (R q')_j, quantized) - sum_j (R q')_j
    double lo2 = 2 * qp.lo, delta2 = 2 * qp.delta, qy_sum = query->qy_sum;
    for (int32_t start = 0; start < count; start += ESTIMATE_BLOCK) {
        int32_t n = std::min(ESTIMATE_BLOCK, count - start);
        const char *block = entries + (size_t) start * entry_size;
        qp.count(qp, nbytes, block + code_offset, n, entry_size, counts);
        for (int32_t i = 0; i < n; i++) {
            float f[3];   // norm2, scale, cdot
            std::memcpy(f, block + (size_t) i * entry_size + floats_offset, sizeof(f));
            double pc = (double) (counts[i] >> 32), s = (double) (counts[i] & 0xFFFFFFFFu);
            double dot = lo2 * pc + delta2 * s - qy_sum;
            float est = ip ? (float) (base - f[1] * dot) : (float) (base + f[0] - 2 * f[1] * (dot - f[2]));
            if (std::isnan(est))
                est = INFINITY;
            out[start + i] = est;
            if (!lower)
                continue;
            // in double: the two terms nearly cancel where the sketch is nearly exact
            double sketch = bt.bits * (double) f[1] * f[1] - bt.dim_over_bits * (double) f[0];
            double e2 = bt.ru2 * std::max(sketch, 0.0) + bt.proj * (double) f[0];
            // the quantization's error, deterministic (lsh_core.h): dot is at most this below the
            // unquantized one (the one-sided sum needs scale >= 0, as lsh_hash writes it)
            double quant = std::fabs((double) f[1]) * key_per_dot *
                (f[1] >= 0 ? std::min(pc * qp.err_max2, qp.err_pos2) : pc * qp.err_max2);
            float lo = (float) (est - err_scale * std::sqrt(e2) - quant);
            // an entry ranked last (no direction, or overflow) stays last; an
            // error beyond float's range bounds nothing
            lower[start + i] = std::isinf(est) && est > 0 ? est : std::isnan(lo) ? -INFINITY : lo;
        }
    }
}

}  // namespace

extern "C" {

void
lsh_query_estimate(LshQuery *query, int32_t bucket, const char *entries, int32_t count,
                   size_t entry_size, size_t floats_offset, size_t code_offset, float *out) noexcept
{
    estimate_entries(query, bucket, entries, count, entry_size, floats_offset, code_offset, 0.0f, out,
                     nullptr);
}

void
lsh_query_estimate_bounds(LshQuery *query, int32_t bucket, const char *entries, int32_t count,
                          size_t entry_size, size_t floats_offset, size_t code_offset, float eps0,
                          float *out, float *lower) noexcept
{
    estimate_entries(query, bucket, entries, count, entry_size, floats_offset, code_offset, eps0, out,
                     lower);
}

int32_t
lsh_query_set_estimator(LshQuery *query, int32_t query_bits, int32_t kernel) noexcept
{
    if (query_bits < 0 || query_bits > LSH_QUERY_BITS_MAX || kernel < 0 || kernel > LSH_ESTIMATOR_AVX2)
        return 0;
    if (kernel == 0)
        kernel = best_kernel();
#ifdef LSH_HAVE_AVX512
    if ((kernel == LSH_ESTIMATOR_AVX512 && !cpu_has_avx512()) || (kernel == LSH_ESTIMATOR_AVX2 && !cpu_has_avx2()))
        return 0;
#else
    if (kernel != LSH_ESTIMATOR_PORTABLE)
        return 0;
#endif
    query->qp.kernel = kernel;
    if (query_bits > 0)
        query->qp.qbits = query_bits;
    query->planes_ready = false;   // built again on the next estimate
    return kernel;
}

}  // extern "C"
