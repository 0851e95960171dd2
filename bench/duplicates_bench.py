#!/usr/bin/python3
"""imgsearch_duplicates against n range queries (bench/, not a test).

A set of the demo's spectrum (bench_common's demo512: CNN-like, lambda_i ~
i^-1.87, unit norm), with near-duplicates planted: a share of the rows
copied with a little noise, some twice (groups of three). For each index
method (kdtree, faissflat), at the L2 radius that catches the planted
copies:
  - imgsearch_duplicates(index, r): the groups, and its time;
  - n range queries in one statement: for every row, the count of rows in
    its sphere (a nested loop of index scans, WHERE v <<->> sphere(t1.v, r)),
    what imgsearch_duplicates does before its union-find;
  - a check: the groups found are the planted ones.
Writes bench/results/duplicates.json (and prints it).

  bench/duplicates_bench.py [--n 100000] [--methods kdtree]
(faissflat's range searches are flat passes: --n 20000 --methods kdtree,faissflat
took 4 minutes for faissflat; at 100k it would take over an hour)
                            [--install-lock FILE]

--install-lock: where several checkouts share one PostgreSQL installation,
hold this flock while `make install` runs and the bench's one session loads
the extension (its backend keeps that build).
"""
import argparse
import fcntl
import json
import os
import subprocess
import sys
import time

import numpy as np
import psycopg2

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_common import make_set  # noqa: E402
from faissflat_bench import Cluster, copy_binary  # noqa: E402

NOISE = 0.002        # per coordinate, on unit vectors: distance about 0.045 at 512-d
RADIUS = 0.1         # catches the copies; far below the nearest distinct pair


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--n', type=int, default=100_000, help='rows, planted copies included')
    ap.add_argument('--methods', default='kdtree')
    ap.add_argument('--share', type=float, default=0.02, help='share of rows that get a copy')
    ap.add_argument('--seed', type=int, default=21)
    ap.add_argument('--out', default=os.path.join(HERE, 'results', 'duplicates.json'))
    ap.add_argument('--install-lock', help='flock held while installing and loading the extension')
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    n_orig = int(args.n / (1 + args.share * 1.25))
    x, _ = make_set('demo512', n_orig, 1, args.seed)
    # originals 0..n_orig-1; copies of the first share, a quarter of them twice
    n_copy = int(n_orig * args.share)
    src = np.concatenate([np.arange(n_copy), np.arange(n_copy // 4)])
    copies = x[src] + NOISE * rng.standard_normal((len(src), x.shape[1]), dtype=np.float32)
    data = np.concatenate([x, copies.astype(np.float32)])
    origin = np.concatenate([np.arange(n_orig), src])      # the planted group of each row
    planted = {}
    for i, o in enumerate(origin):
        planted.setdefault(int(o), []).append(i)
    planted_groups = sorted(tuple(sorted(g)) for g in planted.values() if len(g) >= 2)

    lock = None
    if args.install_lock:
        lock = open(args.install_lock, 'a')
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run(['make', '-s', 'install'], cwd=os.path.dirname(HERE), check=True,
                       stdout=subprocess.DEVNULL)
    cluster = Cluster('1GB')
    result = {'rows': len(data), 'dim': data.shape[1], 'radius': RADIUS, 'noise': NOISE,
              'planted_groups': len(planted_groups), 'methods': {},
              'note': 'shared 2-core machine: other jobs ran; one run each'}
    try:
        conn = psycopg2.connect(cluster.dsn)
        conn.autocommit = True
        cur = conn.cursor()
        cur.execute('CREATE EXTENSION imgsearch')
        if lock:
            fcntl.flock(lock, fcntl.LOCK_UN)
        cur.execute(f'CREATE TABLE dup (id int4, v imgfeat({data.shape[1]}))')
        copy_binary(cur, 'dup', data)
        cur.execute('VACUUM ANALYZE dup')
        for method in args.methods.split(','):
            cur.execute('DROP INDEX IF EXISTS dup_idx')
            t = time.perf_counter()
            cur.execute(f'CREATE INDEX dup_idx ON dup USING {method} (v)')
            build = time.perf_counter() - t
            cur.execute(f"SET imgsearch.method = '{method}'")
            cur.execute('SET client_min_messages = warning')
            t = time.perf_counter()
            cur.execute(f"SELECT d.group_id, t.id FROM imgsearch_duplicates('dup_idx', {RADIUS}) d "
                        "JOIN dup t ON t.ctid = d.row_tid")
            rows = cur.fetchall()
            dup_s = time.perf_counter() - t
            groups = {}
            for g, i in rows:
                groups.setdefault(g, []).append(i)
            found = sorted(tuple(sorted(g)) for g in groups.values())
            t = time.perf_counter()
            cur.execute(f'SELECT sum((SELECT count(*) FROM dup t2 WHERE t2.v <<->> imgsearch_sphere(t1.v, {RADIUS}))) '
                        'FROM dup t1')
            in_spheres = int(cur.fetchone()[0])
            range_s = time.perf_counter() - t
            cur.execute(f'EXPLAIN SELECT sum((SELECT count(*) FROM dup t2 WHERE t2.v <<->> '
                        f'imgsearch_sphere(t1.v, {RADIUS}))) FROM dup t1')
            plan = '\n'.join(r[0] for r in cur.fetchall())
            result['methods'][method] = {
                'build_s': round(build, 1),
                'duplicates_s': round(dup_s, 1),
                'n_range_queries_s': round(range_s, 1),
                'groups': len(found),
                'rows_in_groups': len(rows),
                'groups_equal_planted': found == planted_groups,
                'rows_in_all_spheres': in_spheres,
                'range_plan_uses_index': 'dup_idx' in plan,
            }
            print(method, result['methods'][method], flush=True)
        cur.execute('SELECT version()')
        result['postgres'] = cur.fetchone()[0]
        result['load_average_1min_after'] = round(os.getloadavg()[0], 2)
        conn.close()
    finally:
        cluster.stop()
    with open(args.out, 'w') as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result, indent=1))


if __name__ == '__main__':
    main()
