#!/usr/bin/python3
"""imgsearch_duplicates on the demo collection (bench/, not a test).

The demo's 989 images (23 photographs, each in many views: crops, scales,
flips, colour and JPEG changes; tools/build_dataset.py), their features by
the default model (pool layer, random weights, seed 0: `make model`), a
kdtree index, and imgsearch_duplicates at the page's near-duplicate
threshold (L2 0.030, docs/web.md) and a few others. For each: how many
groups, how many rows they hold, how pure each is against the photograph
labels (the share of its rows from its most frequent photograph), and
whether the groups equal the connected components numpy computes from all
pairwise distances of the same features.

  bench/duplicates_demo.py [--dataset /var/tmp/imgsearch-bench-dataset]
                           [--install-lock FILE] [--out bench/results/duplicates_demo.json]

--install-lock: as in duplicates_bench.py (held while installing and while
the one session loads the extension and the model library).
"""
import argparse
import collections
import fcntl
import json
import os
import subprocess
import sys
import time

import numpy as np
import psycopg2

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, 'tools'))
sys.path.insert(0, HERE)
import load_dataset  # noqa: E402
from bench_cluster import Cluster  # noqa: E402

THRESHOLDS = [0.008, 0.030, 0.045, 0.063]   # identical, near-duplicate, and wider


def components(x, r):
    """Connected components (of two or more) of the pairwise L2 <= r graph, as sorted index tuples."""
    sq = (x.astype(np.float64) ** 2).sum(1)
    d = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * x.astype(np.float64) @ x.astype(np.float64).T, 0))
    parent = list(range(len(x)))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a
    for a, b in zip(*np.nonzero(d <= r)):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups = collections.defaultdict(list)
    for i in range(len(x)):
        groups[find(i)].append(i)
    return sorted(tuple(g) for g in groups.values() if len(g) >= 2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--dataset', default='/var/tmp/imgsearch-bench-dataset')
    ap.add_argument('--model', default=os.path.join(REPO, 'models', 'vgg16_pool_random.pt'))
    ap.add_argument('--install-lock')
    ap.add_argument('--out', default=os.path.join(HERE, 'results', 'duplicates_demo.json'))
    args = ap.parse_args()

    lock = None
    if args.install_lock:
        lock = open(args.install_lock, 'a')
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run(['make', '-s', 'install'], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    cluster = Cluster(args.model)
    try:
        conn = psycopg2.connect(cluster.dsn)
        load_dataset.apply_sql(conn)            # CREATE EXTENSION imgsearch, the gallery schema
        with conn.cursor() as cur:
            cur.execute('SELECT * FROM imgsearch_model_info()')   # loads the model library
        conn.commit()
        if lock:
            fcntl.flock(lock, fcntl.LOCK_UN)
        load_dataset.load_images(conn, args.dataset, 8)
        t = time.perf_counter()
        load_dataset.extract_features(conn, 8)
        extract_s = time.perf_counter() - t
        cur = conn.cursor()
        cur.execute('CREATE INDEX images_feat_kdtree ON gallery.images USING kdtree (feat)')
        cur.execute('ANALYZE gallery.images')
        cur.execute('SELECT id, grp, feat::real[] FROM gallery.images WHERE feat IS NOT NULL ORDER BY id')
        rows = cur.fetchall()
        ids = [r[0] for r in rows]
        label = {r[0]: r[1] for r in rows}
        x = np.array([r[2] for r in rows], dtype=np.float32)
        position = {i: k for k, i in enumerate(ids)}
        result = {'images': len(ids), 'photographs': len(set(label.values())),
                  'extract_s': round(extract_s, 1), 'thresholds': {},
                  'note': 'default model (pool, random weights, seed 0); shared 2-core machine'}
        for r in THRESHOLDS:
            t = time.perf_counter()
            cur.execute("SELECT d.group_id, i.id FROM imgsearch_duplicates('gallery.images_feat_kdtree', %s) d "
                        "JOIN gallery.images i ON i.ctid = d.row_tid", [r])
            got = cur.fetchall()
            seconds = time.perf_counter() - t
            groups = collections.defaultdict(list)
            for g, i in got:
                groups[g].append(i)
            purity = []
            for members in groups.values():
                top = collections.Counter(label[i] for i in members).most_common(1)[0][1]
                purity.append(top / len(members))
            sizes = sorted((len(m) for m in groups.values()), reverse=True)
            photos_split = collections.Counter()
            for members in groups.values():
                photos_split[collections.Counter(label[i] for i in members).most_common(1)[0][0]] += 1
            mine = sorted(tuple(sorted(position[i] for i in m)) for m in groups.values())
            result['thresholds'][str(r)] = {
                'seconds': round(seconds, 2),
                'groups': len(groups),
                'rows_in_groups': len(got),
                'largest_groups': sizes[:5],
                'pure_groups': sum(p == 1.0 for p in purity),
                'min_purity': round(min(purity), 3) if purity else None,
                'mean_purity': round(float(np.mean(purity)), 3) if purity else None,
                'photographs_with_a_group': len(photos_split),
                'groups_per_photograph_max': max(photos_split.values()) if photos_split else 0,
                'equal_to_numpy_components': mine == components(x, r),
            }
            print(r, result['thresholds'][str(r)], flush=True)
        conn.close()
    finally:
        cluster.stop()
    with open(args.out, 'w') as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result, indent=1))


if __name__ == '__main__':
    main()
