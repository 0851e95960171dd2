// faissflat_core.cpp — faissflat's compact codes: ranges, SQ8 codes, the
// query's integer weights and the dot-product kernels (see faissflat_core.h
// for the proof of the bound).
#include "faissflat/faissflat_core.h"
#include "cxx/guard.hpp"
#include "cxx/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define FF_X86 1
#endif

// Whether lo + 255 delta >= mx in real numbers. 255 delta is exact in long
// double (8 + 24 bits); TwoSum gives mx - lo exactly as s + e, |e| at most
// half an ulp of s: a above s is above s + e, and at or below it the
// difference s - a is exact (a is near s, or far below and short anyway).
static bool steps_cover(float lo, float delta, float mx) {
    long double a = (long double)(FF_LEVELS - 1) * delta;
    long double b = -(long double)lo;
    long double s = (long double)mx + b;
    long double bb = s - mx;
    long double e = ((long double)mx - (s - bb)) + (b - bb);
    return a > s || (s - a) + e <= 0;
}

int ff_ranges_train(const float *proj, int64_t n, int32_t m, float *ranges, ImgsError *err) noexcept {
    int ok = -1;
    imgs::guard(err, [&] {
        float *lo = ranges, *delta = ranges + m;
        for (int32_t i = 0; i < m; i++) {
            float mn = INFINITY, mx = -INFINITY;
            for (int64_t j = 0; j < n; j++) {
                float v = proj[(size_t)j * m + i];
                if (std::isfinite(v)) {
                    mn = std::min(mn, v);
                    mx = std::max(mx, v);
                }
            }
            if (!(mn <= mx)) {
                lo[i] = 0;
                delta[i] = 1;
                continue;
            }
            // the float step, rounded up until 255 steps from mn reach mx
            double d = ((double)mx - (double)mn) / (FF_LEVELS - 1);
            float df = (float)d;
            if (!(df > 0))
                df = mn < mx ? std::numeric_limits<float>::denorm_min() : 1.0f;
            while (std::isfinite(df) && !steps_cover(mn, df, mx))
                df = std::nextafter(df, INFINITY);
            if (!std::isfinite(df))
                df = FLT_MAX;
            lo[i] = mn;
            delta[i] = df;
            if ((i & 63) == 0)
                imgs::check_interrupts();
        }
        ok = 0;
    });
    return ok;
}

int ff_ranges_valid(const float *ranges, int32_t m) noexcept {
    for (int32_t i = 0; i < m; i++)
        if (!std::isfinite(ranges[i]) || !std::isfinite(ranges[m + i]) || !(ranges[m + i] > 0))
            return 0;
    return 1;
}

// The float at least v (v >= 0); +inf past FLT_MAX.
static inline float round_up(double v) {
    float f = (float)v;
    if ((double)f < v)
        f = std::nextafter(f, INFINITY);
    return f;
}

// The float at most v (v >= 0); FLT_MAX for anything above it.
static inline float round_down(double v) {
    if (v >= (double)FLT_MAX)
        return FLT_MAX;
    float f = (float)v;
    if ((double)f > v)
        f = std::nextafter(f, 0.0f);
    return f;
}

void ff_encode(const float *ranges, int32_t m, const float *y, uint8_t *code, float *err,
               float *yh2) noexcept {
    const float *lo = ranges, *delta = ranges + m;
    double e2 = 0, h2 = 0, mag = 0;
    for (int32_t i = 0; i < m; i++) {
        double c = std::rint(((double)y[i] - (double)lo[i]) / (double)delta[i]);
        if (!(c >= 0))      // also NaN (y is finite: kd_project clamps)
            c = 0;
        if (c > FF_LEVELS - 1)
            c = FF_LEVELS - 1;
        code[i] = (uint8_t)c;
        // yh_i = lo_i + delta_i c: delta_i c is exact in double (24 + 8 bits)
        double yh = (double)lo[i] + (double)delta[i] * c;
        double d = (double)y[i] - yh;
        e2 += d * d;
        h2 += yh * yh;
        mag += std::fabs((double)y[i]) + std::fabs((double)lo[i]) + (double)delta[i] * c;
    }
    std::memset(code + m, 0, (size_t)(ff_code_stride(m) - m));
    // each yh_i and d_i errs by at most 2^-52 of its terms' magnitudes, the
    // sums by m 2^-53 relative: the pads below cover both (m <= 2^11)
    *err = round_up(std::sqrt(e2) * (1 + 0x1p-40) + 0x1p-50 * mag);
    double h = std::sqrt(h2) - 0x1p-50 * mag;
    *yh2 = h > 0 ? round_down(h * h * (1 - 0x1p-40)) : 0.0f;
}

float ff_magnitude(const float *y, int32_t m, float resid) noexcept {
    double s = 0;
    for (int32_t i = 0; i < m; i++)
        s += (double)y[i] * (double)y[i];
    // |y| (two roundings) + r (one): 1 + 2^-40 covers them
    return round_up((std::sqrt(s) + (double)resid) * (1 + 0x1p-40));
}

void ff_query_prepare(const float *ranges, int32_t m, const float *q, FfQuery *query) noexcept {
    const float *lo = ranges, *delta = ranges + m;
    int32_t stride = ff_code_stride(m);
    int32_t wmax = ff_wq_max(m);
    double q2 = 0, c0 = 0, c0_abs = 0, wabs = 0, e = 0, epad = 0;
    for (int32_t i = 0; i < m; i++) {
        double w = (double)q[i] * (double)delta[i];     // exact
        wabs = std::max(wabs, std::fabs(w));
        q2 += (double)q[i] * (double)q[i];
        c0 += (double)q[i] * (double)lo[i];
        c0_abs += std::fabs((double)q[i] * (double)lo[i]);
    }
    double s = wabs > 0 ? wabs / wmax : 0;
    for (int32_t i = 0; i < m; i++) {
        double w = (double)q[i] * (double)delta[i];
        double r = s > 0 ? std::rint(w / s) : 0;
        r = std::max<double>(-wmax, std::min<double>(wmax, r));
        query->wq[i] = (int16_t)r;
        double sw = s * r;
        e += std::fabs(w - sw);
        epad += std::fabs(w) + std::fabs(sw);
    }
    for (int32_t i = m; i < stride; i++)
        query->wq[i] = 0;
    // w - s wq errs by 2^-52 of |w| + |s wq| each; the sum is padded in T
    double E = (FF_LEVELS - 1) * (e + 0x1p-50 * epad);
    query->m = m;
    query->stride = stride;
    query->s = s;
    query->base = q2 - 2 * (c0 + E);
    query->mag = q2 + 2 * c0_abs + 2 * E;
}

// The sums of yh_i^2 and of |lo_i| + delta_i c_i over [from, to), in any
// order (non-negative terms: the sum's error stays within its n 2^-53
// relative, fused or not): the cache computes them for every entry it
// reads, 0.5 s a million on two lanes, so AVX-512 where the CPU has it.
static inline __attribute__((always_inline)) void span_sums_body(const float *lo, const float *delta,
                                                                 const uint8_t *code, int32_t from, int32_t to,
                                                                 double *sq, double *mag) {
    double s = 0, a = 0;
#pragma omp simd reduction(+ : s, a)
    for (int32_t i = from; i < to; i++) {
        double c = (double)code[i];
        double yh = (double)lo[i] + (double)delta[i] * c;   // delta_i c exact; the sum within 2^-53 |yh|
        s += yh * yh;
        a += std::fabs((double)lo[i]) + (double)delta[i] * c;
    }
    *sq = s;
    *mag = a;
}

#ifdef FF_X86
__attribute__((target("avx512f"))) static void span_sums_avx512(const float *lo, const float *delta,
                                                                  const uint8_t *code, int32_t from, int32_t to,
                                                                  double *sq, double *mag) {
    span_sums_body(lo, delta, code, from, to, sq, mag);
}
#endif

static void span_sums(const float *lo, const float *delta, const uint8_t *code, int32_t from, int32_t to, double *sq,
                      double *mag) {
#ifdef FF_X86
    if (ff_dots_kernel() == 2) {
        span_sums_avx512(lo, delta, code, from, to, sq, mag);
        return;
    }
#endif
    span_sums_body(lo, delta, code, from, to, sq, mag);
}

void ff_cut_norms(const float *ranges, int32_t m, const uint8_t *code, float *head2, float *tail) noexcept {
    const float *lo = ranges, *delta = ranges + m;
    int32_t cuts = ff_cuts(m);
    // per span between cuts (the last up to m): sum of yh_i^2 and of |lo_i| + delta_i c_i
    double sq[FF_CUTS_MAX + 1] = {0}, mag[FF_CUTS_MAX + 1] = {0};
    for (int32_t k = 0; k <= cuts; k++)
        span_sums(lo, delta, code, k == 0 ? 0 : FF_CUT_FIRST << (k - 1), k < cuts ? FF_CUT_FIRST << k : m, &sq[k],
                  &mag[k]);
    for (int32_t k = 0; k < cuts; k++) {
        double hs = 0, hm = 0, ts = 0, tm = 0;
        for (int32_t j = 0; j <= cuts; j++) {
            (j <= k ? hs : ts) += sq[j];
            (j <= k ? hm : tm) += mag[j];
        }
        // as ff_encode's yh2 (step 7 for the tail)
        double h = std::sqrt(hs) - 0x1p-50 * hm;
        head2[k] = h > 0 ? round_down(h * h * (1 - 0x1p-40)) : 0.0f;
        double t = std::sqrt(ts) * (1 - 0x1p-40) - 0x1p-52 * tm;
        tail[k] = t > 0 ? round_down(t) : 0.0f;
    }
}

int32_t ff_query_cuts(const float *ranges, int32_t m, const float *q, const FfQuery *query, FfCut *cuts) noexcept {
    const float *lo = ranges, *delta = ranges + m;
    int32_t ncuts = ff_cuts(m);
    for (int32_t k = 0; k < ncuts; k++) {
        int32_t h = FF_CUT_FIRST << k;
        double q2 = 0, c0 = 0, c0_abs = 0, e = 0, epad = 0, t2 = 0, r = 0;
        for (int32_t i = 0; i < m; i++) {
            double qi = (double)q[i];
            if (i >= h) {
                t2 += qi * qi;
                r += std::fabs((double)lo[i]) + (FF_LEVELS - 1) * (double)delta[i];
                continue;
            }
            double w = qi * (double)delta[i];     // exact
            double sw = query->s * (double)query->wq[i];
            q2 += qi * qi;
            c0 += qi * (double)lo[i];
            c0_abs += std::fabs(qi * (double)lo[i]);
            e += std::fabs(w - sw);
            epad += std::fabs(w) + std::fabs(sw);
        }
        // as ff_query_prepare, over the first h dimensions
        double E = (FF_LEVELS - 1) * (e + 0x1p-50 * epad);
        double tq = std::sqrt(t2);
        cuts[k].h = h;
        cuts[k].base = q2 - 2 * (c0 + E);
        cuts[k].mag = q2 + 2 * c0_abs + 2 * E;
        cuts[k].tq_lo = tq * (1 - 0x1p-40);
        cuts[k].tq_hi = tq * (1 + 0x1p-40);
        cuts[k].pad = 0x1p-48 * r;
    }
    return ncuts;
}

// Codes by position: contiguous (entry j at codes + j step) or listed (rows[j]).
struct CodesAt {
    const uint8_t *codes;
    size_t step;
    const uint32_t *rows;   // NULL: contiguous
    const uint8_t *operator()(int64_t j) const { return codes + (size_t)(rows ? rows[j] : j) * step; }
};

// The portable kernel of dots_span.
static void dots_span_ref(const int16_t *w, int32_t from, int32_t to, CodesAt at, int64_t n, int32_t *dots) {
    for (int64_t j = 0; j < n; j++) {
        const uint8_t *c = at(j);
        int32_t s = 0;
        for (int32_t i = from; i < to; i++)
            s += (int32_t)w[i] * (int32_t)c[i];
        dots[j] = s;
    }
}

// The portable kernel of head_dots: a block's 16 dots from its pairs of dimensions.
static void head_dots_ref(const int16_t *w, const uint8_t *blocks, int64_t nblocks, int32_t *dots) {
    for (int64_t b = 0; b < nblocks; b++) {
        const uint8_t *block = blocks + (size_t)b * FF_HEAD_BLOCK * FF_CUT_FIRST;
        for (int r = 0; r < FF_HEAD_BLOCK; r++) {
            int32_t s = 0;
            for (int p = 0; p < FF_CUT_FIRST / 2; p++)
                s += (int32_t)w[2 * p] * block[2 * (p * FF_HEAD_BLOCK + r)] +
                     (int32_t)w[2 * p + 1] * block[2 * (p * FF_HEAD_BLOCK + r) + 1];
            dots[b * FF_HEAD_BLOCK + r] = s;
        }
    }
}

static void a2_cut_many_ref(const FfQuery *query, const FfCut *cut, const int32_t *dots, const float *err,
                            const float *head2, const float *tail, int64_t n, double *a2) {
    for (int64_t j = 0; j < n; j++)
        a2[j] = ff_a2_cut(query, cut, dots[j], err[j], head2[j], tail[j]);
}

void ff_dots_ref(const FfQuery *query, const uint8_t *codes, size_t step, int64_t n, int32_t *dots) noexcept {
    dots_span_ref(query->wq, 0, query->stride, CodesAt{codes, step, nullptr}, n, dots);
}

void ff_a2_many(const FfQuery *query, const int32_t *dots, const float *err, const float *yh2, int64_t n,
                double *a2) noexcept {
#pragma omp simd
    for (int64_t j = 0; j < n; j++)
        a2[j] = ff_a2(query, dots[j], err[j], yh2[j]);
}

bool ff_a2_pass(const FfQuery *query, const uint8_t *codes, size_t step, int64_t n, const float *err,
                const float *yh2, int32_t threads, int32_t *dots, double *a2, double *chunk_min,
                ImgsError *error) noexcept {
    return imgs::guard(error, [&] {
        imgs::fault_point("ff_a2_pass");
        imgs::parallel_for(threads, n, FF_PASS_CHUNK, [&](int64_t begin, int64_t end) {
            imgs::fault_point("ff_a2_pass_chunk");   // a failure on a thread reaches the caller
            // the integers are wanted only on their way to a2: a chunk's fit in 16 kB
            int32_t own[FF_PASS_CHUNK];
            int32_t *chunk_dots = dots ? dots + begin : own;
            ff_dots(query, codes + (size_t) begin * step, step, end - begin, chunk_dots);
            ff_a2_many(query, chunk_dots, err + begin, yh2 + begin, end - begin, a2 + begin);
            if (chunk_min) {
                double least = INFINITY;
#pragma omp simd reduction(min : least)
                for (int64_t j = begin; j < end; j++)
                    least = std::min(least, a2[j]);
                chunk_min[begin / FF_PASS_CHUNK] = least;
            }
        });
    });
}

// Entries ff_least reads to choose its threshold
#define LEAST_SAMPLE 4096

// ff_least's exact fallback: a max-heap of the least so far, the chunks in order of their least.
static void least_by_heap(const double *a2, int64_t n, const double *chunk_min, int64_t want,
                          std::vector<std::pair<double, uint32_t>> &heap) {
    int64_t nchunks = (n + FF_PASS_CHUNK - 1) / FF_PASS_CHUNK;
    std::vector<std::pair<double, int64_t>> order((size_t)nchunks);
    for (int64_t c = 0; c < nchunks; c++)
        order[(size_t)c] = {chunk_min[c], c};
    std::sort(order.begin(), order.end());
    heap.clear();
    for (const auto &[least, c] : order) {
        if ((int64_t)heap.size() == want && least > heap.front().first)
            break;
        for (int64_t j = c * FF_PASS_CHUNK, end = std::min(n, j + FF_PASS_CHUNK); j < end; j++) {
            std::pair<double, uint32_t> item{a2[j], (uint32_t)j};
            if ((int64_t)heap.size() < want) {
                heap.push_back(item);
                std::push_heap(heap.begin(), heap.end());
            } else if (item < heap.front()) {
                std::pop_heap(heap.begin(), heap.end());
                heap.back() = item;
                std::push_heap(heap.begin(), heap.end());
            }
        }
    }
}

bool ff_least(const double *a2, int64_t n, const double *chunk_min, int64_t want, uint32_t *out, int64_t *found,
              ImgsError *error) noexcept {
    return imgs::guard(error, [&] {
        imgs::fault_point("ff_least");
        std::vector<std::pair<double, uint32_t>> picked;
        want = std::max<int64_t>(0, std::min(want, n));
        if (want > 0) {
            // a threshold from a sample of LEAST_SAMPLE a2 evenly apart, at twice the rank the
            // wanted share gives there (and 16 more): every entry at or below it, one read of the
            // chunks that may hold one, holds the wanted ones where it holds as many (a heap else)
            int64_t stride = std::max<int64_t>(1, n / LEAST_SAMPLE), ns = (n + stride - 1) / stride;
            std::vector<double> sample((size_t)ns);
            for (int64_t i = 0; i < ns; i++)
                sample[(size_t)i] = a2[i * stride];
            int64_t rank = std::min(ns - 1, 2 * want * ns / n + 16);
            std::nth_element(sample.begin(), sample.begin() + rank, sample.end());
            double limit = sample[(size_t)rank];
            for (int64_t c = 0, nchunks = (n + FF_PASS_CHUNK - 1) / FF_PASS_CHUNK; c < nchunks; c++) {
                if (!(chunk_min[c] <= limit))
                    continue;
                for (int64_t j = c * FF_PASS_CHUNK, end = std::min(n, j + FF_PASS_CHUNK); j < end; j++)
                    if (a2[j] <= limit)
                        picked.push_back({a2[j], (uint32_t)j});
            }
            if ((int64_t)picked.size() >= want) {
                std::nth_element(picked.begin(), picked.begin() + (want - 1), picked.end());
                picked.resize((size_t)want);
            } else
                least_by_heap(a2, n, chunk_min, want, picked);
            std::sort(picked.begin(), picked.end());
        }
        for (size_t i = 0; i < picked.size(); i++)
            out[i] = picked[i].second;
        *found = (int64_t)picked.size();
    });
}

// The kernels (below): ff_dots' on [from, to) of each code; the heads' (ff_head_put's blocks); ff_a2_cut's, many.
static void dots_span(const int16_t *w, int32_t from, int32_t to, CodesAt at, int64_t n, int32_t *dots);
static void head_dots(const int16_t *w, const uint8_t *blocks, int64_t nblocks, int32_t *dots);
static void a2_cut_many(const FfQuery *query, const FfCut *cut, const int32_t *dots, const float *err,
                        const float *head2, const float *tail, int64_t n, double *a2);

bool ff_a2_head_pass(const FfQuery *query, const FfCut *cuts, const uint8_t *head, int64_t n, const float *err,
                     const float *head2, const float *tail, int32_t threads, double *a2, double *chunk_min,
                     ImgsError *error) noexcept {
    static_assert(FF_PASS_CHUNK % FF_HEAD_BLOCK == 0, "chunks of whole head blocks");
    return imgs::guard(error, [&] {
        imgs::fault_point("ff_a2_head_pass");
        imgs::parallel_for(threads, n, FF_PASS_CHUNK, [&](int64_t begin, int64_t end) {
            imgs::fault_point("ff_a2_head_pass_chunk");
            int32_t dots[FF_PASS_CHUNK];
            head_dots(query->wq, head + (size_t)begin * FF_CUT_FIRST, (end - begin + FF_HEAD_BLOCK - 1) / FF_HEAD_BLOCK,
                      dots);
            a2_cut_many(query, &cuts[0], dots, err + begin, head2 + begin, tail + begin, end - begin, a2 + begin);
            double least = INFINITY;
            for (int64_t j = begin; j < end; j++)
                least = std::min(least, a2[j]);
            chunk_min[begin / FF_PASS_CHUNK] = least;
        });
    });
}

bool ff_a2_refine_pass(const FfQuery *query, const FfCut *cuts, const uint8_t *codes, size_t step, int64_t n,
                       const float *err, const float *yh2, float *const *head2, float *const *tail,
                       double a2_limit, int32_t threads, double *a2, double *chunk_min, FfRefineStats *stats,
                       ImgsError *error) noexcept {
    int32_t ncuts = ff_cuts(query->m);
    std::atomic<int64_t> passed{0}, entries[FF_CUTS_MAX + 1], chunks[FF_CUTS_MAX + 1];
    for (int32_t k = 0; k <= FF_CUTS_MAX; k++)
        entries[k] = chunks[k] = 0;
    bool ok = imgs::guard(error, [&] {
        imgs::fault_point("ff_a2_refine_pass");
        imgs::parallel_for(threads, n, FF_PASS_CHUNK, [&](int64_t begin, int64_t end) {
            imgs::fault_point("ff_a2_refine_pass_chunk");
            int64_t c = begin / FF_PASS_CHUNK;
            if (!(chunk_min[c] < a2_limit))
                return;
            uint32_t rows[FF_PASS_CHUNK];
            int32_t dots[FF_PASS_CHUNK], part[FF_PASS_CHUNK];
            int64_t live = 0;
            for (int64_t j = begin; j < end; j++)
                if (a2[j] < a2_limit) {
                    rows[live] = (uint32_t)j;
                    dots[live++] = 0;
                }
            passed += live;
            if (live * FF_DENSE_SHARE > end - begin) {
                // too many to pick out: the whole chunk's codes in a row, as ff_a2_pass reads them
                double whole[FF_PASS_CHUNK];
                dots_span(query->wq, 0, query->stride, CodesAt{codes + (size_t)begin * step, step, nullptr},
                          end - begin, dots);
                ff_a2_many(query, dots, err + begin, yh2 + begin, end - begin, whole);
                for (int64_t j = begin; j < end; j++)
                    a2[j] = std::max(a2[j], whole[j - begin]);
                entries[ncuts] += end - begin;
                chunks[0]++;
                live = 0;
            }
            // cut k's bound takes the products of its first h bytes: those before the last cut's, then the rest
            int32_t from = 0;
            for (int32_t k = 1; k <= ncuts && live > 0; k++) {
                bool dense = live * FF_DENSE_SHARE > end - begin, whole = k == ncuts || dense;
                int32_t to = whole ? query->stride : cuts[k].h;
                dots_span(query->wq, from, to, CodesAt{codes, step, rows}, live, part);
                entries[whole ? ncuts : k] += live;
                if (dense)
                    chunks[k - 1]++;
                int64_t kept = 0;
                for (int64_t i = 0; i < live; i++) {
                    uint32_t j = rows[i];
                    int32_t dot = dots[i] + part[i];
                    double b = whole ? ff_a2(query, dot, err[j], yh2[j])
                                     : ff_a2_cut(query, &cuts[k], dot, err[j], head2[k][j], tail[k][j]);
                    if (b > a2[j])
                        a2[j] = b;
                    if (!whole && a2[j] < a2_limit) {
                        rows[kept] = j;
                        dots[kept++] = dot;
                    }
                }
                live = whole ? 0 : kept;
                from = to;
            }
            double least = INFINITY;
            for (int64_t j = begin; j < end; j++)
                least = std::min(least, a2[j]);
            chunk_min[c] = least;
        });
    });
    stats->passed = passed;
    for (int32_t k = 0; k <= FF_CUTS_MAX; k++) {
        stats->entries[k] = entries[k];
        stats->chunks[k] = chunks[k];
    }
    return ok;
}

#ifdef FF_X86
// Codes read ahead of the kernel, in entries: the hardware prefetcher stops
// at each 4 kB page, and one entry of 512 dimensions is an eighth of one.
#define FF_PREFETCH_ENTRIES 8

// 32 codes' bytes widened to 16 bits, multiplied by the weights and added in
// pairs (vpmaddwd), summed in int32 lanes: no product or partial sum leaves
// int32 (ff_wq_max), so the integer is ff_dots_ref's.
// The sum of the 16 int32 lanes.
__attribute__((target("avx512f,avx512bw,avx2"))) static inline int32_t lanes_sum(__m512i a) {
    __m256i h = _mm256_add_epi32(_mm512_maskz_extracti64x4_epi64(0xff, a, 0), _mm512_maskz_extracti64x4_epi64(0xff, a, 1));
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

// The bytes [from, to) of n codes: two entries at a time, each one's lanes
// summed apart (lanes_sum); the span of the entries FF_PREFETCH_ENTRIES
// ahead prefetched.
__attribute__((target("avx512f,avx512bw,avx2"))) static void dots_avx512(const int16_t *w, int32_t from, int32_t to,
                                                                           CodesAt at, int64_t n, int32_t *dots) {
    int64_t j = 0;
    for (; j + 2 <= n; j += 2) {
        const uint8_t *c0 = at(j), *c1 = at(j + 1);
        __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
        if (j + FF_PREFETCH_ENTRIES + 2 <= n) {
            const uint8_t *p0 = at(j + FF_PREFETCH_ENTRIES), *p1 = at(j + FF_PREFETCH_ENTRIES + 1);
            for (int32_t k = from; k < to; k += 64) {
                _mm_prefetch((const char *)(p0 + k), _MM_HINT_T0);
                _mm_prefetch((const char *)(p1 + k), _MM_HINT_T0);
            }
        }
        for (int32_t i = from; i < to; i += 32) {
            __m512i wi = _mm512_loadu_si512((const void *)(w + i));
            a0 = _mm512_add_epi32(a0, _mm512_madd_epi16(
                                          _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(c0 + i))), wi));
            a1 = _mm512_add_epi32(a1, _mm512_madd_epi16(
                                          _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(c1 + i))), wi));
        }
        dots[j] = lanes_sum(a0);
        dots[j + 1] = lanes_sum(a1);
    }
    for (; j < n; j++) {
        const uint8_t *c0 = at(j);
        __m512i a0 = _mm512_setzero_si512();
        for (int32_t i = from; i < to; i += 32)
            a0 = _mm512_add_epi32(a0, _mm512_madd_epi16(
                                          _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(c0 + i))),
                                          _mm512_loadu_si512((const void *)(w + i))));
        dots[j] = lanes_sum(a0);
    }
}

__attribute__((target("avx2"))) static void dots_avx2(const int16_t *w, int32_t from, int32_t to, CodesAt at,
                                                      int64_t n, int32_t *dots) {
    for (int64_t j = 0; j < n; j++) {
        const uint8_t *c = at(j);
        __m256i a = _mm256_setzero_si256();
        if (j + FF_PREFETCH_ENTRIES + 1 <= n) {
            const uint8_t *p = at(j + FF_PREFETCH_ENTRIES);
            for (int32_t k = from; k < to; k += 64)
                _mm_prefetch((const char *)(p + k), _MM_HINT_T0);
        }
        for (int32_t i = from; i < to; i += 16)
            a = _mm256_add_epi32(a, _mm256_madd_epi16(
                                        _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(c + i))),
                                        _mm256_loadu_si256((const __m256i *)(w + i))));
        __m128i s = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
        s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
        s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
        dots[j] = _mm_cvtsi128_si32(s);
    }
}

// A head block's 16 dots: pair p's 16 entries' two bytes widened to 16
// bits, multiplied by that pair's two weights and added (vpmaddwd), one int32
// lane per entry; the same integers as head_dots_ref (ff_wq_max).
__attribute__((target("avx512f,avx512bw,avx2"))) static void head_dots_avx512(const int16_t *w, const uint8_t *blocks,
                                                                                int64_t nblocks, int32_t *dots) {
    __m512i wp[FF_CUT_FIRST / 2];
    for (int p = 0; p < FF_CUT_FIRST / 2; p++)
        wp[p] = _mm512_set1_epi32((int32_t)((uint32_t)(uint16_t)w[2 * p] | (uint32_t)(uint16_t)w[2 * p + 1] << 16));
    for (int64_t b = 0; b < nblocks; b++) {
        const uint8_t *block = blocks + (size_t)b * FF_HEAD_BLOCK * FF_CUT_FIRST;
        __m512i acc = _mm512_setzero_si512();
        for (int p = 0; p < FF_CUT_FIRST / 2; p++)
            acc = _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_cvtepu8_epi16(_mm256_loadu_si256(
                                                              (const __m256i *)(block + 2 * p * FF_HEAD_BLOCK))),
                                                          wp[p]));
        _mm512_storeu_si512((void *)(dots + b * FF_HEAD_BLOCK), acc);
    }
}

__attribute__((target("avx2"))) static void head_dots_avx2(const int16_t *w, const uint8_t *blocks, int64_t nblocks,
                                                           int32_t *dots) {
    __m256i wp[FF_CUT_FIRST / 2];
    for (int p = 0; p < FF_CUT_FIRST / 2; p++)
        wp[p] = _mm256_set1_epi32((int32_t)((uint32_t)(uint16_t)w[2 * p] | (uint32_t)(uint16_t)w[2 * p + 1] << 16));
    for (int64_t b = 0; b < nblocks; b++) {
        const uint8_t *block = blocks + (size_t)b * FF_HEAD_BLOCK * FF_CUT_FIRST;
        __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();
        for (int p = 0; p < FF_CUT_FIRST / 2; p++) {
            const uint8_t *pair = block + 2 * p * FF_HEAD_BLOCK;
            lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)pair)), wp[p]));
            hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(pair + 16))),
                                                        wp[p]));
        }
        _mm256_storeu_si256((__m256i *)(dots + b * FF_HEAD_BLOCK), lo);
        _mm256_storeu_si256((__m256i *)(dots + b * FF_HEAD_BLOCK + 8), hi);
    }
}

// ff_a2_cut on 8 entries at a time, the same operations in the same order,
// so the same doubles: no fused multiply-add (GCC would contract these
// intrinsics, plain vector arithmetic, under target avx512f), max(x, 0)
// gives 0 for a NaN x as the ternaries do, and |sdot| only differs from the
// ternary's at -0, which adds the same. (GCC 12's own intrinsics warn of an
// uninitialised value in the widening conversions: theirs, not ours.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
__attribute__((target("avx512f"), optimize("fp-contract=off"))) static void a2_cut_many_avx512(const FfQuery *query, const FfCut *cut,
                                                                    const int32_t *dots, const float *err,
                                                                    const float *head2, const float *tail, int64_t n,
                                                                    double *a2) {
    const __m512d zero = _mm512_setzero_pd(), two = _mm512_set1_pd(2), s = _mm512_set1_pd(query->s),
                  mag = _mm512_set1_pd(cut->mag), base = _mm512_set1_pd(cut->base), pad40 = _mm512_set1_pd(0x1p-40),
                  up20 = _mm512_set1_pd(1 + 0x1p-20), pad = _mm512_set1_pd(cut->pad), tiny = _mm512_set1_pd(0x1p-140),
                  inf = _mm512_set1_pd(INFINITY), fltmax = _mm512_set1_pd(FLT_MAX), tq_lo = _mm512_set1_pd(cut->tq_lo),
                  tq_hi = _mm512_set1_pd(cut->tq_hi), down50 = _mm512_set1_pd(1 - 0x1p-50),
                  down49 = _mm512_set1_pd(1 - 0x1p-49);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m512d sdot = _mm512_mul_pd(s, _mm512_cvtepi32_pd(_mm256_loadu_si256((const __m256i *)(dots + j))));
        __m512d h2 = _mm512_cvtps_pd(_mm256_loadu_ps(head2 + j));
        __m512d tl = _mm512_cvtps_pd(_mm256_loadu_ps(tail + j));
        __m512d e = _mm512_cvtps_pd(_mm256_loadu_ps(err + j));
        __m512d t = _mm512_add_pd(_mm512_add_pd(mag, h2), _mm512_mul_pd(two, _mm512_abs_pd(sdot)));
        __m512d a = _mm512_sub_pd(_mm512_sub_pd(_mm512_add_pd(base, h2), _mm512_mul_pd(two, sdot)),
                                  _mm512_mul_pd(pad40, t));
        __m512d tail_hi = _mm512_add_pd(_mm512_add_pd(_mm512_mul_pd(tl, up20), pad), tiny);
        tail_hi = _mm512_mask_blend_pd(_mm512_cmp_pd_mask(tl, fltmax, _CMP_GE_OQ), tail_hi, inf);
        __m512d gap = _mm512_sub_pd(tq_lo, tail_hi);
        __m512d below = _mm512_sub_pd(tl, tq_hi);
        gap = _mm512_mask_blend_pd(_mm512_cmp_pd_mask(gap, below, _CMP_GT_OQ), below, gap);
        gap = _mm512_sub_pd(_mm512_mul_pd(gap, down50), e);
        gap = _mm512_max_pd(gap, zero);
        a = _mm512_sub_pd(_mm512_mul_pd(_mm512_sqrt_pd(_mm512_max_pd(a, zero)), down50), e);
        a = _mm512_max_pd(a, zero);
        _mm512_storeu_pd(a2 + j, _mm512_mul_pd(_mm512_add_pd(_mm512_mul_pd(a, a), _mm512_mul_pd(gap, gap)), down49));
    }
    a2_cut_many_ref(query, cut, dots + j, err + j, head2 + j, tail + j, n - j, a2 + j);
}
#pragma GCC diagnostic pop

int ff_dots_kernel(void) noexcept {
    static const int kernel = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") ? 2
                              : __builtin_cpu_supports("avx2")                                        ? 1
                                                                                                       : 0;
    return kernel;
}

static void dots_span(const int16_t *w, int32_t from, int32_t to, CodesAt at, int64_t n, int32_t *dots) {
    switch (ff_dots_kernel()) {
    case 2:
        dots_avx512(w, from, to, at, n, dots);
        break;
    case 1:
        dots_avx2(w, from, to, at, n, dots);
        break;
    default:
        dots_span_ref(w, from, to, at, n, dots);
    }
}
static void head_dots(const int16_t *w, const uint8_t *blocks, int64_t nblocks, int32_t *dots) {
    switch (ff_dots_kernel()) {
    case 2:
        head_dots_avx512(w, blocks, nblocks, dots);
        break;
    case 1:
        head_dots_avx2(w, blocks, nblocks, dots);
        break;
    default:
        head_dots_ref(w, blocks, nblocks, dots);
    }
}

static void a2_cut_many(const FfQuery *query, const FfCut *cut, const int32_t *dots, const float *err,
                        const float *head2, const float *tail, int64_t n, double *a2) {
    if (ff_dots_kernel() == 2)
        a2_cut_many_avx512(query, cut, dots, err, head2, tail, n, a2);
    else
        a2_cut_many_ref(query, cut, dots, err, head2, tail, n, a2);
}
#else
int ff_dots_kernel(void) noexcept { return 0; }

static void head_dots(const int16_t *w, const uint8_t *blocks, int64_t nblocks, int32_t *dots) {
    head_dots_ref(w, blocks, nblocks, dots);
}

static void a2_cut_many(const FfQuery *query, const FfCut *cut, const int32_t *dots, const float *err,
                        const float *head2, const float *tail, int64_t n, double *a2) {
    a2_cut_many_ref(query, cut, dots, err, head2, tail, n, a2);
}

static void dots_span(const int16_t *w, int32_t from, int32_t to, CodesAt at, int64_t n, int32_t *dots) {
    dots_span_ref(w, from, to, at, n, dots);
}
#endif

void ff_dots(const FfQuery *query, const uint8_t *codes, size_t step, int64_t n, int32_t *dots) noexcept {
    dots_span(query->wq, 0, query->stride, CodesAt{codes, step, nullptr}, n, dots);
}

void ff_dots_rows(const FfQuery *query, int32_t from, int32_t to, const uint8_t *codes, size_t step,
                  const uint32_t *rows, int64_t n, int32_t *dots) noexcept {
    dots_span(query->wq, from, to, CodesAt{codes, step, rows}, n, dots);
}

