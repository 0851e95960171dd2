// kdtree_core_bench.cpp — the kdtree core alone, in process (driven by
// bench/kdtree_core_bench.py, which makes the data and runs faiss beside it).
//
//   kdtree_core_bench BASE QUERIES n nq dim k "m,m,.." "L,L,.." budget_m budget_L "b,b,.." sample
//
// BASE and QUERIES are raw float32 files (n x dim, nq x dim). For every
// (m, L): PCA + projection + tree build time, then an exact k-NN search per
// query driven like the database glue will drive it, exact keys from
// imgs_l2_squared over the contiguous array (an upper bound of the in-database
// speed): keys computed, leaves opened, time; answers checked against brute
// force. Then, at (budget_m, budget_L), recall@k against leaf budgets.
// Prints one JSON object per line.
#include "index/distance_core.h"
#include "kdtree/kdtree_core.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

using Clock = std::chrono::steady_clock;

static double secs(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

static std::vector<int> parse_list(const char *s) {
    std::vector<int> v;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ','))
        if (!item.empty())
            v.push_back(std::atoi(item.c_str()));
    return v;
}

static std::vector<float> read_f32(const char *path, size_t count) {
    std::vector<float> v(count);
    FILE *f = std::fopen(path, "rb");
    if (!f || std::fread(v.data(), sizeof(float), count, f) != count) {
        std::fprintf(stderr, "cannot read %s\n", path);
        std::exit(2);
    }
    std::fclose(f);
    return v;
}

struct Leaves {
    int m;
    std::vector<std::vector<int64_t>> slots;
    std::vector<std::vector<float>> resid, proj;
};

struct Result {
    std::vector<int64_t> ids;
    KdSearchStats st;
    double seconds;
};

static Result search(const KdPca *pca, const KdTree *tree, const Leaves &lv, const float *x, int dim, const float *q,
                     int k, int max_leaves) {
    Result r;
    auto t0 = Clock::now();
    float qy[KD_MAX_PROJ_DIMS], qr;
    kd_project(pca, q, qy, &qr);
    KdSearchOptions opts = {max_leaves, 1};
    KdSearch *s = kd_search_begin(pca, tree, qy, qr, &opts);
    KdAction a;
    while ((int)r.ids.size() < k) {
        int kind = kd_search_next(s, &a);
        if (kind == KD_DONE)
            break;
        if (kind == KD_ERROR) {
            std::fprintf(stderr, "search error: %s\n", kd_search_error(s));
            std::exit(3);
        }
        if (kind == KD_NEED_LEAF) {
            const auto &sl = lv.slots[a.leaf];
            kd_search_add_leaf(s, (int32_t)sl.size(), sl.data(), lv.resid[a.leaf].data(), lv.proj[a.leaf].data());
        } else if (kind == KD_NEED_KEYS) {
            for (int i = 0; i < a.count; i++)
                kd_search_set_exact(s, a.slots[i], imgs_l2_squared(q, x + (size_t)a.slots[i] * dim, dim));
        } else if (kind == KD_EMIT) {
            r.ids.push_back(a.slot);
        }
    }
    kd_search_stats(s, &r.st);
    kd_search_end(s);
    r.seconds = secs(t0, Clock::now());
    return r;
}

static double pct(std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    size_t i = (size_t)std::min<double>(v.size() - 1, std::ceil(p * v.size()) - 1);
    return v[i];
}

int main(int argc, char **argv) {
    if (argc < 13) {
        std::fprintf(stderr, "usage: see the header of kdtree_core_bench.cpp\n");
        return 2;
    }
    const int64_t n = std::atoll(argv[3]);
    const int nq = std::atoi(argv[4]), dim = std::atoi(argv[5]), k = std::atoi(argv[6]);
    std::vector<int> ms = parse_list(argv[7]), Ls = parse_list(argv[8]), budgets = parse_list(argv[11]);
    const int budget_m = std::atoi(argv[9]), budget_L = std::atoi(argv[10]);
    const int64_t sample = std::min<int64_t>(n, std::atoll(argv[12]));
    std::vector<float> x = read_f32(argv[1], (size_t)n * dim), xq = read_f32(argv[2], (size_t)nq * dim);

    // ground truth: the first k by (key, slot)
    auto t0 = Clock::now();
    std::vector<std::vector<int64_t>> truth(nq);
    std::vector<double> keys(n);
    std::vector<int64_t> order(n);
    for (int qi = 0; qi < nq; qi++) {
        const float *q = &xq[(size_t)qi * dim];
        for (int64_t i = 0; i < n; i++) {
            keys[i] = imgs_l2_squared(q, &x[(size_t)i * dim], dim);
            order[i] = i;
        }
        std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int64_t a, int64_t b) {
            return keys[a] < keys[b] || (keys[a] == keys[b] && a < b);
        });
        truth[qi].assign(order.begin(), order.begin() + k);
    }
    double brute_ms = secs(t0, Clock::now()) * 1000 / nq;
    std::printf("{\"kind\": \"brute\", \"ms_per_query\": %.3f}\n", brute_ms);
    std::fflush(stdout);

    // PCA once at the largest m; smaller m take its leading rows
    int mmax = std::max(budget_m, *std::max_element(ms.begin(), ms.end()));
    char err[256];
    t0 = Clock::now();
    KdPca *pca_full = kd_pca_train(x.data(), sample, dim, mmax, KD_METRIC_L2, 1, err, sizeof err);
    if (!pca_full) {
        std::fprintf(stderr, "pca: %s\n", err);
        return 1;
    }
    double pca_s = secs(t0, Clock::now());

    std::vector<int> all_m = ms;
    if (std::find(all_m.begin(), all_m.end(), budget_m) == all_m.end())
        all_m.push_back(budget_m);
    for (int m : all_m) {
        KdPca pca = *pca_full;
        pca.m = m;  // leading rows: orthonormal, orth_err no larger than the full set's
        t0 = Clock::now();
        std::vector<float> proj((size_t)n * m), resid(n);
        for (int64_t i = 0; i < n; i++)
            kd_project(&pca, &x[(size_t)i * dim], &proj[(size_t)i * m], &resid[i]);
        double proj_s = secs(t0, Clock::now());
        // variance kept
        double var_kept = 0, var_all = 0;
        for (int64_t i = 0; i < n; i++) {
            for (int j = 0; j < m; j++)
                var_kept += (double)proj[(size_t)i * m + j] * proj[(size_t)i * m + j];
            var_all += (double)resid[i] * resid[i];
        }
        var_all += var_kept;
        std::vector<int> Lrun = Ls;
        if (m == budget_m && std::find(Lrun.begin(), Lrun.end(), budget_L) == Lrun.end())
            Lrun.push_back(budget_L);
        bool in_grid = std::find(ms.begin(), ms.end(), m) != ms.end();
        for (int L : Lrun) {
            bool grid = in_grid && std::find(Ls.begin(), Ls.end(), L) != Ls.end();
            t0 = Clock::now();
            KdTree *tree = kd_tree_build(proj.data(), resid.data(), n, m, L, err, sizeof err);
            double tree_s = secs(t0, Clock::now());
            Leaves lv;
            lv.m = m;
            lv.slots.resize(tree->n_leaves);
            lv.resid.resize(tree->n_leaves);
            lv.proj.resize(tree->n_leaves);
            for (int t = 0; t < tree->n_leaves; t++) {
                const KdNode &nd = tree->nodes[tree->leaf_node[t]];
                for (int64_t p = nd.begin; p < nd.begin + nd.count; p++) {
                    int64_t id = tree->perm[p];
                    lv.slots[t].push_back(id);
                    lv.resid[t].push_back(resid[id]);
                    lv.proj[t].insert(lv.proj[t].end(), &proj[(size_t)id * m], &proj[(size_t)id * m + m]);
                }
            }
            if (grid) {
                std::vector<double> fr, lvs, ms_q;
                int wrong = 0;
                for (int qi = 0; qi < nq; qi++) {
                    Result r = search(&pca, tree, lv, x.data(), dim, &xq[(size_t)qi * dim], k, 0);
                    if (r.ids != truth[qi])
                        wrong++;
                    fr.push_back((double)r.st.keys_computed / n);
                    lvs.push_back((double)r.st.leaves_opened);
                    ms_q.push_back(r.seconds * 1000);
                }
                std::printf("{\"kind\": \"exact\", \"m\": %d, \"L\": %d, \"var_kept\": %.4f, \"leaves\": %d, "
                            "\"nodes\": %d, \"wrong\": %d, "
                            "\"frac_keys\": {\"median\": %.6f, \"p95\": %.6f, \"max\": %.6f}, "
                            "\"leaves_opened\": {\"median\": %.1f, \"p95\": %.1f, \"max\": %.1f}, "
                            "\"ms\": {\"median\": %.4f, \"p95\": %.4f, \"max\": %.4f, \"mean\": %.4f}, "
                            "\"build_s\": {\"pca\": %.3f, \"project\": %.3f, \"tree\": %.3f}}\n",
                            m, L, var_kept / var_all, tree->n_leaves, tree->n_nodes, wrong, pct(fr, 0.5), pct(fr, 0.95),
                            pct(fr, 1.0), pct(lvs, 0.5), pct(lvs, 0.95), pct(lvs, 1.0), pct(ms_q, 0.5), pct(ms_q, 0.95),
                            pct(ms_q, 1.0), [&] { double s = 0; for (double v : ms_q) s += v; return s / ms_q.size(); }(),
                            pca_s, proj_s, tree_s);
                std::fflush(stdout);
            }
            if (m == budget_m && L == budget_L) {
                for (int b : budgets) {
                    std::vector<double> ms_q, fr;
                    double hits = 0;
                    for (int qi = 0; qi < nq; qi++) {
                        Result r = search(&pca, tree, lv, x.data(), dim, &xq[(size_t)qi * dim], k, b);
                        std::vector<int64_t> a = r.ids, t = truth[qi];
                        std::sort(a.begin(), a.end());
                        std::sort(t.begin(), t.end());
                        std::vector<int64_t> common;
                        std::set_intersection(a.begin(), a.end(), t.begin(), t.end(), std::back_inserter(common));
                        hits += (double)common.size() / k;
                        ms_q.push_back(r.seconds * 1000);
                        fr.push_back((double)r.st.keys_computed / n);
                    }
                    std::printf("{\"kind\": \"budget\", \"m\": %d, \"L\": %d, \"max_leaves\": %d, \"recall\": %.4f, "
                                "\"ms\": {\"median\": %.4f, \"p95\": %.4f}, \"frac_keys_median\": %.6f}\n",
                                m, L, b, hits / nq, pct(ms_q, 0.5), pct(ms_q, 0.95), pct(fr, 0.5));
                    std::fflush(stdout);
                }
            }
            kd_tree_free(tree);
        }
    }
    kd_pca_free(pca_full);
    return 0;
}
