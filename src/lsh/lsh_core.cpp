// lsh_core.cpp — k-means hash, random rotation, sign sketches and their
// estimator (lsh_core.h).
#include "lsh/lsh_core.h"

#include "index/distance_core.h"
#include "index/orthonormal.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <new>
#include <random>
#include <vector>

namespace {

// x' of the metric into out (dim floats); false for a zero vector under cosine.
bool
prepare_vector(int32_t metric, const float *x, int32_t dim, float *out)
{
    if (metric != LSH_METRIC_COSINE) {
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

// Index of the centroid nearest to x (L2), ties to the lowest number.
int32_t
nearest(const float *centroids, const float *c_norms, int32_t k, const float *x, int32_t dim)
{
    int32_t best = 0;
    double best_d = INFINITY;
    for (int32_t c = 0; c < k; c++) {
        // |x - c|^2 - |x|^2: the ranking needs no |x|^2
        double d = (double) c_norms[c] - 2 * imgs_inner_product(x, centroids + (size_t) c * dim, dim);
        if (d < best_d) {
            best_d = d;
            best = c;
        }
    }
    return best;
}

void
centroid_norms(const float *centroids, int32_t k, int32_t dim, float *out)
{
    for (int32_t c = 0; c < k; c++)
        out[c] = (float) imgs_norm_squared(centroids + (size_t) c * dim, dim);
}

// Seeded Gaussian rows, orthonormalised; false when cancel said stop.
bool
make_rotation(int32_t bits, int32_t dim, uint64_t seed, int (*cancel)(void), float *out)
{
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> gauss;
    std::vector<double> rows((size_t) bits * dim);
    for (auto &v : rows)
        v = gauss(rng);
    if (!imgs::orthonormalise(rows, bits, dim, rng, [cancel] { return cancel && cancel(); }))
        return false;
    for (size_t i = 0; i < rows.size(); i++)
        out[i] = (float) rows[i];
    return true;
}

}  // namespace

struct LshQuery {
    const LshModel *model;
    std::vector<float> q;          // q'
    std::vector<float> rq;         // R q'
    std::vector<double> bucket_keys;
    std::vector<float> qy;         // R q', padded to whole bytes
    std::vector<float> lut;        // [code_bytes * 256]
    int32_t lut_bucket = -2;       // -1 once the tables are built
    double qy_sum = 0;
    bool null_dir = false;         // a zero query under cosine: no direction
};

extern "C" {

int32_t
lsh_train(const float *sample, int64_t n, int32_t dim, int32_t bits, int32_t n_buckets,
          int32_t metric, int32_t iterations, uint64_t seed, int (*cancel)(void),
          float *rotation_out, float *centroids_out, char *err, size_t errlen)
{
    try {
        if (dim < 1 || bits < 1 || bits > dim || bits > LSH_MAX_BITS || n_buckets < 1 ||
            n_buckets > LSH_MAX_BUCKETS) {
            std::snprintf(err, errlen, "bad parameters (dim %d, bits %d, buckets %d)", dim, bits, n_buckets);
            return -1;
        }
        if (!make_rotation(bits, dim, seed, cancel, rotation_out))
            return -2;

        // the usable sample vectors, prepared
        std::vector<float> xs;
        xs.reserve((size_t) n * dim);
        std::vector<float> tmp(dim);
        int64_t m = 0;
        for (int64_t i = 0; i < n; i++) {
            if (!prepare_vector(metric, sample + (size_t) i * dim, dim, tmp.data()))
                continue;
            bool finite = true;
            for (int32_t d = 0; d < dim && finite; d++)
                finite = std::isfinite(tmp[d]);
            if (!finite)
                continue;
            xs.insert(xs.end(), tmp.begin(), tmp.end());
            m++;
        }
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
        int64_t work = 0;
        for (int32_t it = 0; it < iterations; it++) {
            centroid_norms(centroids_out, k, dim, norms.data());
            for (int64_t i = 0; i < m; i++) {
                assign[i] = nearest(centroids_out, norms.data(), k, &xs[(size_t) i * dim], dim);
                work += (int64_t) k * dim;
                if (work > 50000000) {
                    work = 0;
                    if (cancel && cancel())
                        return -2;
                }
            }
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
    } catch (const std::bad_alloc &) {
        std::snprintf(err, errlen, "out of memory");
    } catch (const std::exception &e) {
        std::snprintf(err, errlen, "%s", e.what());
    } catch (...) {
        std::snprintf(err, errlen, "unknown error");
    }
    return -1;
}

void
lsh_model_prepare(LshModel *model)
{
    centroid_norms(model->centroids, model->n_buckets, model->dim, model->c_norms);
    for (int32_t c = 0; c < model->n_buckets; c++)
        for (int32_t j = 0; j < model->bits; j++)
            model->rot_centroids[(size_t) c * model->bits + j] =
                (float) imgs_inner_product(model->rotation + (size_t) j * model->dim,
                                           model->centroids + (size_t) c * model->dim, model->dim);
}

void
lsh_assign(const LshModel *model, const float *x, int64_t n, int32_t *out, float *scratch)
{
    for (int64_t i = 0; i < n; i++) {
        const float *xi = x + (size_t) i * model->dim;
        if (!prepare_vector(model->metric, xi, model->dim, scratch))
            out[i] = 0;
        else
            out[i] = nearest(model->centroids, model->c_norms, model->n_buckets, scratch, model->dim);
    }
}

int32_t
lsh_hash(const LshModel *model, const float *x, uint8_t *code, float *norm2, float *scale,
         float *cdot, float *scratch)
{
    int32_t dim = model->dim, bits = model->bits;
    float *xp = scratch;
    float *y = scratch + dim;
    std::memset(code, 0, lsh_code_bytes(bits));
    if (!prepare_vector(model->metric, x, dim, xp)) {
        *norm2 = INFINITY;
        *scale = 0;
        *cdot = 0;
        return 0;
    }
    int32_t b = nearest(model->centroids, model->c_norms, model->n_buckets, xp, dim);
    const float *c = model->centroids + (size_t) b * dim;
    for (int32_t d = 0; d < dim; d++)
        xp[d] -= c[d];
    const float *rc = model->rot_centroids + (size_t) b * bits;
    double l1 = 0, l2 = 0, cd = 0;
    for (int32_t j = 0; j < bits; j++) {
        double v = imgs_inner_product(model->rotation + (size_t) j * dim, xp, dim);
        y[j] = (float) v;
        if (v > 0)
            code[j >> 3] |= (uint8_t) (1u << (j & 7));
        cd += v > 0 ? rc[j] : -rc[j];
        l1 += std::fabs(v);
        l2 += v * v;
    }
    *cdot = std::isfinite(cd) ? (float) cd : 0.0f;
    *norm2 = (float) imgs_norm_squared(xp, dim);
    *scale = l1 > 0 ? (float) ((double) dim / bits * l2 / l1) : 0.0f;
    if (!std::isfinite(*norm2))
        *norm2 = INFINITY;
    if (!std::isfinite(*scale))
        *scale = 0;
    return b;
}

LshQuery *
lsh_query_begin(const LshModel *model, const float *q)
{
    try {
        LshQuery *query = new LshQuery;
        int32_t dim = model->dim, bits = model->bits;
        query->model = model;
        query->q.resize(dim);
        query->rq.resize(bits);
        query->qy.resize(lsh_code_bytes(bits) * 8, 0.0f);
        query->lut.resize((size_t) lsh_code_bytes(bits) * 256);
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
        return query;
    } catch (...) {
        return nullptr;
    }
}

void
lsh_query_end(LshQuery *query)
{
    delete query;
}

const double *
lsh_query_bucket_keys(const LshQuery *query)
{
    return query->bucket_keys.data();
}

void
lsh_query_probe_order(LshQuery *query, int32_t count, int32_t *out)
{
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
}

void
lsh_query_estimate(LshQuery *query, int32_t bucket, const char *entries, int32_t count,
                   size_t entry_size, size_t floats_offset, size_t code_offset, float *out)
{
    const LshModel *model = query->model;
    int32_t nbytes = lsh_code_bytes(model->bits);
    bool ip = model->metric == LSH_METRIC_IP;

    if (query->lut_bucket != -1) {
        // one table, of R q', for every bucket (lsh_core.h)
        double sum = 0;
        for (int32_t j = 0; j < model->bits; j++) {
            query->qy[j] = query->rq[j];
            sum += query->qy[j];
        }
        query->qy_sum = sum;
        for (int32_t k = 0; k < nbytes; k++) {
            float *t = &query->lut[(size_t) k * 256];
            const float *w = &query->qy[(size_t) k * 8];
            t[0] = 0;
            for (int v = 1; v < 256; v++)
                t[v] = t[v & (v - 1)] + 2 * w[__builtin_ctz(v)];
        }
        query->lut_bucket = -1;
    }
    double base = query->bucket_keys[bucket];   // |q'-c_b|^2, or -<q', c_b>
    float qsum = (float) query->qy_sum;
    const float *lut = query->lut.data();
    for (int32_t i = 0; i < count; i++) {
        const char *e = entries + (size_t) i * entry_size;
        float f[3];   // norm2, scale, cdot
        std::memcpy(f, e + floats_offset, sizeof(f));
        const uint8_t *code = (const uint8_t *) (e + code_offset);
        float dot = -qsum;
        for (int32_t k = 0; k < nbytes; k++)
            dot += lut[(size_t) k * 256 + code[k]];
        out[i] = ip ? (float) (base - f[1] * dot) : (float) (base + f[0] - 2 * f[1] * (dot - f[2]));
        if (std::isnan(out[i]))
            out[i] = INFINITY;
    }
}

}  // extern "C"
