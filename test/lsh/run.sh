#!/bin/sh
# Builds and runs the lsh core's standalone test (no PostgreSQL needed):
#   test/lsh/run.sh [seed]
# Same flags as the CMake core (CMakeLists.txt: CORE_CXX_FLAGS, Release).
set -e
cd "$(dirname "$0")/../.."
out=${BUILD_DIR:-build}/lsh_test
mkdir -p "$out"
FLAGS="-O3 -fPIC -Wall -Wextra -Wno-unused-parameter -fopenmp-simd -fno-math-errno -Isrc"
g++ -std=c++17 $FLAGS -c src/lsh/lsh_core.cpp -o "$out/lsh_core.o"
g++ -std=c++17 $FLAGS -c src/index/distance_core.cpp -o "$out/distance_core.o"
g++ -std=c++17 $FLAGS -c src/index/orthonormal.cpp -o "$out/orthonormal.o"
gcc -std=c11 -D_DEFAULT_SOURCE $FLAGS -c test/lsh/lsh_core_test.c -o "$out/lsh_core_test.o"
g++ -o "$out/lsh_core_test" "$out/lsh_core_test.o" "$out/lsh_core.o" "$out/distance_core.o" "$out/orthonormal.o" -lm
exec "$out/lsh_core_test" "$@"
