#!/bin/bash
# Builds and installs pgvector 0.8.6 from ../shared/vendor (benchmarks only:
# never a dependency of the project, make check or make demo), so a bench can
# compare with its HNSW and exact scan in the same run. Idempotent: does
# nothing when that version is installed. Needs root to install.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
tarball=$repo/../shared/vendor/pgvector-0.8.6.tar.gz
sharedir=$(pg_config --sharedir)
if [ -f "$sharedir/extension/vector--0.8.6.sql" ] && [ -f "$(pg_config --pkglibdir)/vector.so" ]; then
	exit 0
fi
[ -f "$tarball" ] || { echo "pgvector.sh: $tarball not found" >&2; exit 1; }
build=$repo/build/pgvector
rm -rf "$build"
mkdir -p "$build"
tar -xzf "$tarball" -C "$build" --strip-components=1
# pgvector's default flags (-march=native): its best case on this machine
make -s -C "$build" >/dev/null
make -s -C "$build" install >/dev/null
echo "pgvector 0.8.6 installed for benchmarks"
