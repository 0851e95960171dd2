#!/usr/bin/python3
"""PCA spectrum of the features in a table: how much variance the top m
principal components keep, and the eigenvalues' power-law decay. This decides
whether kdtree's exact mode can prune (bench/results/kdtree_core.md: it needs
~96% kept at 32-64 components). Default: the demo's gallery (make demo).

    /usr/bin/python3 bench/feature_spectrum.py [--dsn DSN] [--table gallery.images] [--column feat]
"""
import argparse
import datetime
import json
import os

import numpy as np
import psycopg2

ap = argparse.ArgumentParser()
ap.add_argument('--dsn', default='host=127.0.0.1 port=54329 user=postgres dbname=imgsearch')
ap.add_argument('--table', default='gallery.images')
ap.add_argument('--column', default='feat')
ap.add_argument('--out', default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                              'results', 'feature_spectrum.json'))
a = ap.parse_args()

cur = psycopg2.connect(a.dsn).cursor()
cur.execute(f'SELECT {a.column}::real[] FROM {a.table} WHERE {a.column} IS NOT NULL')
x = np.array([r[0] for r in cur.fetchall()], dtype=np.float64)
centred = x - x.mean(0)
eigenvalues = np.linalg.eigvalsh(centred.T @ centred / len(x))[::-1]
kept = np.cumsum(eigenvalues) / eigenvalues.sum()
top = min(128, len(eigenvalues))
decay = np.polyfit(np.log(np.arange(1, top + 1)), np.log(np.maximum(eigenvalues[:top], 1e-30)), 1)[0]
result = {
    'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
    'table': a.table, 'rows': len(x), 'dim': x.shape[1],
    'variance_kept_by_top_m': {m: round(float(kept[m - 1]), 4) for m in (8, 16, 32, 48, 64, 128) if m <= len(kept)},
    'eigenvalue_decay_exponent_top_128': round(float(decay), 3),
    'fraction_nonnegative': float((x >= 0).mean()),
}
print(json.dumps(result, indent=1))
with open(a.out, 'w') as f:
    json.dump(result, f, indent=1)
print('wrote', a.out)
