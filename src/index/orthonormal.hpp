// orthonormal.hpp — orthonormal rows, for the C++ cores of the index
// methods (kdtree's PCA completion, lsh's random rotation).
#ifndef IMGS_ORTHONORMAL_HPP
#define IMGS_ORTHONORMAL_HPP

#include <functional>
#include <random>
#include <vector>

namespace imgs {

// Modified Gram-Schmidt on the rows of q (k x d, double), twice for
// stability; a row that vanishes is replaced by a random one (throws
// std::runtime_error when that keeps failing). stop, if given, is polled
// every 16 rows: false when it said stop.
bool orthonormalise(std::vector<double> &q, int k, int d, std::mt19937_64 &rng,
                    const std::function<bool()> &stop = {});

}  // namespace imgs

#endif
