#!/bin/bash
# Installs every Debian package imgsearch needs (build, tests, demo, bench).
# Idempotent and quiet when everything is present; needs root otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
	# build
	build-essential cmake pkg-config clang-14 llvm-14
	# fuzz harnesses (make fuzz, make check): libFuzzer's runtime
	libclang-rt-14-dev
	postgresql-15 postgresql-server-dev-15
	libtorch-dev libfaiss-dev libnanoflann-dev libopencv-dev
	# tests: pgTAP + pg_prove, perl TAP (PostgreSQL::Test::Cluster needs IPC::Run)
	postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl libipc-run-perl
	# python side: model export, independent checks, loaders, benchmarks
	python3 python3-torch python3-torchvision python3-numpy python3-faiss
	python3-psycopg2 python3-pil python3-tqdm
	# make eval's figure
	python3-matplotlib
	# web: browser tests (Debian's chromium, never a downloaded one), the demo
	# dataset's photographs; web/deps.sh installs the node packages
	chromium chromium-driver mate-backgrounds plasma-workspace-wallpapers curl
)
# Node.js, unless one is installed (vite 7 needs node >= 20.19)
command -v npm >/dev/null || packages+=(nodejs npm)

missing=()
for p in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$status" = installed ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "imgsearch: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
	echo "imgsearch: need root to install packages; run: sudo apt-get install -y ${missing[*]}" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
