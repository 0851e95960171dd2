// orthonormal.cpp — orthonormal rows for the index cores (orthonormal.hpp).
#include "index/orthonormal.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace imgs {

bool orthonormalise(std::vector<double> &q, int k, int d, std::mt19937_64 &rng,
                    const std::function<bool()> &stop) {
    std::normal_distribution<double> nd;
    for (int i = 0; i < k; i++) {
        double *qi = &q[(size_t)i * d];
        if (stop && (i & 15) == 0 && stop())
            return false;
        for (int attempt = 0;; attempt++) {
            double before = 0;
            for (int t = 0; t < d; t++)
                before += qi[t] * qi[t];
            for (int pass = 0; pass < 2; pass++)
                for (int j = 0; j < i; j++) {
                    const double *qj = &q[(size_t)j * d];
                    double c = 0;
                    for (int t = 0; t < d; t++)
                        c += qi[t] * qj[t];
                    for (int t = 0; t < d; t++)
                        qi[t] -= c * qj[t];
                }
            double nn = 0;
            for (int t = 0; t < d; t++)
                nn += qi[t] * qi[t];
            if (nn > 1e-20 * std::max(before, 1e-300) && nn > 0) {
                double inv = 1 / std::sqrt(nn);
                for (int t = 0; t < d; t++)
                    qi[t] *= inv;
                break;
            }
            if (attempt > 20)
                throw std::runtime_error("cannot complete an orthonormal basis");
            for (int t = 0; t < d; t++)
                qi[t] = nd(rng);
        }
    }
    return true;
}

}  // namespace imgs
