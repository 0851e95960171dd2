#!/usr/bin/python3
"""kdtree core benchmark (the core alone, in process; no PostgreSQL).

Data (float32, 200 held-out queries from the same distribution, k = 30, L2):
  cnn512   CNN-like: power-law PCA spectrum (lambda_i ~ 1/i) in a random
           basis, a positive mean direction (mostly positive), unit norm; a
           continuum, no clusters. 100k x 512.
  hard512  clustered_unit_nonneg (bench/bench_data.py). 100k x 512.
  cnn4096  CNN-like as above, 20k x 4096.

For m in {16,32,48,64} and L in {16,32,64,128}: fraction of vectors whose
exact key is computed and leaves opened for an exact k=30 search (median,
p95, max), time per query of the core with exact keys from imgs_l2_squared
over a contiguous array (an upper bound of the in-database speed), build time
(PCA + projection + tree). On hard512: recall@30 against the leaf budget.
Beside it, in the same run: faiss IndexFlatL2 (1 thread) and IndexHNSWFlat
(M=16, efConstruction=64, efSearch 40/100), one query at a time.

Writes bench/results/kdtree_core.json.
    nice /usr/bin/python3 bench/kdtree_core_bench.py [--sets cnn512,hard512,cnn4096] [--queries 200]
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import faiss
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_data import clustered_unit_nonneg, cnn_like, cnn_like_model  # noqa: E402  (shared sets)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K = 30
MS = [16, 32, 48, 64]
LS = [16, 32, 64, 128]
BUDGETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]


def make_set(name, nq, seed=7):
    rng = np.random.default_rng(seed)
    if name == 'hard512':
        return clustered_unit_nonneg(rng, 100_000, 512), clustered_unit_nonneg(rng, nq, 512)
    n, dim = (100_000, 512) if name == 'cnn512' else (20_000, 4096)
    model = cnn_like_model(rng, dim)
    return cnn_like(rng, model, n), cnn_like(rng, model, nq)


def build_bench():
    out = os.path.join(ROOT, 'build', 'kdtree_bench')
    os.makedirs(out, exist_ok=True)
    exe = os.path.join(out, 'kdtree_core_bench')
    flags = '-std=c++17 -O3 -Wall -fopenmp-simd -fno-math-errno -I' + os.path.join(ROOT, 'src')
    srcs = ['bench/kdtree_core_bench.cpp', 'src/kdtree/kdtree_core.cpp', 'src/index/distance_core.cpp',
            'src/index/orthonormal.cpp']
    cmd = f'g++ {flags} ' + ' '.join(os.path.join(ROOT, s) for s in srcs) + \
        f' -o {exe} -lfaiss -lblas -llapack -fopenmp -lm'
    subprocess.run(cmd, shell=True, check=True)
    return exe


def run_core(exe, x, xq, ms, ls, budget_m, budget_l, budgets, sample):
    with tempfile.TemporaryDirectory() as d:
        xb, qb = os.path.join(d, 'x.f32'), os.path.join(d, 'q.f32')
        x.tofile(xb)
        xq.tofile(qb)
        args = [exe, xb, qb, str(len(x)), str(len(xq)), str(x.shape[1]), str(K),
                ','.join(map(str, ms)), ','.join(map(str, ls)), str(budget_m), str(budget_l),
                ','.join(map(str, budgets)), str(sample)]
        env = dict(os.environ, OMP_NUM_THREADS='1')
        p = subprocess.run(args, check=True, capture_output=True, text=True, env=env)
    rows = [json.loads(line) for line in p.stdout.splitlines() if line.startswith('{')]
    for r in rows:
        print('   ', json.dumps(r), flush=True)
    return rows


def faiss_refs(x, xq, truth):
    faiss.omp_set_num_threads(1)
    out = {}

    def timed(index, label):
        ms, ids = [], []
        for i in range(len(xq)):
            t = time.perf_counter()
            _, I = index.search(xq[i:i + 1], K)
            ms.append((time.perf_counter() - t) * 1000)
            ids.append(I[0])
        rec = float(np.mean([len(set(a) & set(b)) / K for a, b in zip(ids, truth)]))
        out[label] = {'median_ms': statistics.median(ms), 'p95_ms': float(np.percentile(ms, 95)),
                      'recall': rec}
        print(f'    {label}: {out[label]}', flush=True)

    flat = faiss.IndexFlatL2(x.shape[1])
    flat.add(x)
    timed(flat, 'faiss_flat')
    faiss.omp_set_num_threads(2)
    t = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(x.shape[1], 16)
    hnsw.hnsw.efConstruction = 64
    hnsw.add(x)
    out['hnsw_build_s_2threads'] = time.perf_counter() - t
    faiss.omp_set_num_threads(1)
    for ef in (40, 100):
        hnsw.hnsw.efSearch = ef
        timed(hnsw, f'faiss_hnsw_m16_ef{ef}')
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--sets', default='cnn512,hard512,cnn4096')
    ap.add_argument('--queries', type=int, default=200)
    ap.add_argument('--ms', default=','.join(map(str, MS)))
    ap.add_argument('--ls', default=','.join(map(str, LS)))
    ap.add_argument('--budget', default='32,64', help='m,L of the recall-vs-budget curve (hard512)')
    ap.add_argument('--out', default=os.path.join(ROOT, 'bench', 'results', 'kdtree_core.json'))
    a = ap.parse_args()
    exe = build_bench()
    bm, bl = map(int, a.budget.split(','))
    results = {}
    if os.path.exists(a.out):
        with open(a.out) as f:
            results = json.load(f).get('sets', {})
    for name in a.sets.split(','):
        t0 = time.perf_counter()
        x, xq = make_set(name, a.queries)
        print(f'{name}: {x.shape}, data {time.perf_counter() - t0:.1f} s', flush=True)
        sample = 50_000 if x.shape[1] <= 1024 else 10_000
        budgets = BUDGETS if name == 'hard512' else []
        ms, ls = [int(v) for v in a.ms.split(',')], [int(v) for v in a.ls.split(',')]
        rows = run_core(exe, x, xq, ms, ls, bm, bl, budgets, sample)
        flat = faiss.IndexFlatL2(x.shape[1])
        flat.add(x)
        _, truth = flat.search(xq, K)
        refs = faiss_refs(x, xq, truth)
        results[name] = {'n': len(x), 'dim': x.shape[1], 'queries': len(xq), 'k': K,
                         'pca_sample': sample, 'core': rows, 'refs': refs,
                         'seconds': time.perf_counter() - t0}
        with open(a.out, 'w') as f:
            json.dump({'date': datetime.datetime.now().isoformat(timespec='seconds'),
                       'host': platform.node(), 'cpus': os.cpu_count(), 'sets': results}, f, indent=1)
    print('wrote', a.out)


if __name__ == '__main__':
    sys.exit(main())
