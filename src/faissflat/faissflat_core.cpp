// faissflat_core.cpp — faissflat's compact codes: ranges, SQ8 codes, the
// query's integer weights and the dot-product kernels (see faissflat_core.h
// for the proof of the bound).
#include "faissflat/faissflat_core.h"
#include "cxx/guard.hpp"
#include "cxx/parallel.hpp"

#include <algorithm>
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

void ff_dots_ref(const FfQuery *query, const uint8_t *codes, size_t step, int64_t n, int32_t *dots) noexcept {
    int32_t stride = query->stride;
    const int16_t *w = query->wq;
    for (int64_t j = 0; j < n; j++) {
        const uint8_t *c = codes + (size_t)j * step;
        int32_t s = 0;
        for (int32_t i = 0; i < stride; i++)
            s += (int32_t)w[i] * (int32_t)c[i];
        dots[j] = s;
    }
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

__attribute__((target("avx512f,avx512bw,avx2"))) static void dots_avx512(const FfQuery *query,
                                                                           const uint8_t *codes, size_t step,
                                                                           int64_t n, int32_t *dots) {
    int32_t stride = query->stride;
    const int16_t *w = query->wq;
    int64_t j = 0;
    for (; j + 2 <= n; j += 2) {
        const uint8_t *c0 = codes + (size_t)j * step, *c1 = c0 + step;
        __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
        if (j + FF_PREFETCH_ENTRIES + 2 <= n)
            for (size_t k = 0; k < 2 * step; k += 64)
                _mm_prefetch((const char *)(c0 + FF_PREFETCH_ENTRIES * step + k), _MM_HINT_T0);
        for (int32_t i = 0; i < stride; i += 32) {
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
        const uint8_t *c0 = codes + (size_t)j * step;
        __m512i a0 = _mm512_setzero_si512();
        for (int32_t i = 0; i < stride; i += 32)
            a0 = _mm512_add_epi32(a0, _mm512_madd_epi16(
                                          _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(c0 + i))),
                                          _mm512_loadu_si512((const void *)(w + i))));
        dots[j] = lanes_sum(a0);
    }
}

__attribute__((target("avx2"))) static void dots_avx2(const FfQuery *query, const uint8_t *codes, size_t step,
                                                      int64_t n, int32_t *dots) {
    int32_t stride = query->stride;
    const int16_t *w = query->wq;
    for (int64_t j = 0; j < n; j++) {
        const uint8_t *c = codes + (size_t)j * step;
        __m256i a = _mm256_setzero_si256();
        if (j + FF_PREFETCH_ENTRIES + 1 <= n)
            for (size_t k = 0; k < step; k += 64)
                _mm_prefetch((const char *)(c + FF_PREFETCH_ENTRIES * step + k), _MM_HINT_T0);
        for (int32_t i = 0; i < stride; i += 16)
            a = _mm256_add_epi32(a, _mm256_madd_epi16(
                                        _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(c + i))),
                                        _mm256_loadu_si256((const __m256i *)(w + i))));
        __m128i s = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
        s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
        s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
        dots[j] = _mm_cvtsi128_si32(s);
    }
}

int ff_dots_kernel(void) noexcept {
    static const int kernel = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") ? 2
                              : __builtin_cpu_supports("avx2")                                        ? 1
                                                                                                       : 0;
    return kernel;
}

void ff_dots(const FfQuery *query, const uint8_t *codes, size_t step, int64_t n, int32_t *dots) noexcept {
    switch (ff_dots_kernel()) {
    case 2:
        dots_avx512(query, codes, step, n, dots);
        break;
    case 1:
        dots_avx2(query, codes, step, n, dots);
        break;
    default:
        ff_dots_ref(query, codes, step, n, dots);
    }
}
#else
int ff_dots_kernel(void) noexcept { return 0; }

void ff_dots(const FfQuery *query, const uint8_t *codes, size_t step, int64_t n, int32_t *dots) noexcept {
    ff_dots_ref(query, codes, step, n, dots);
}
#endif
