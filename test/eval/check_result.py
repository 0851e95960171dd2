#!/usr/bin/python3
"""Checks a make eval result against an independent computation.

    check_result.py LAYOUT COLLECTION RESULT.json PER_CLASS

Relevance is read again from the collection's own files (not through
eval/collections.py), distances are recomputed with numpy from the features
in the database, and argsort's scores are recomputed from that ranking with
the metrics (which test/eval/metrics_test.py checks by hand). Exact methods
must score as argsort does; every index method must have run on its index.

Ties: no ranking orders rows at the same distance, and under LIMIT k any of
the rows tied with the k-th may come. mAP@k is held to the range of scores
the right answers give (ap_at_k_range); with no tie at any k-th place that
range is one value, and exact methods must score as argsort does, to 1e-9.
"""
import csv
import itertools
import json
import math
import os
import sys

import numpy as np
import psycopg2

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from eval import metrics  # noqa: E402

layout, root, result_path, per_class = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
run = json.load(open(result_path))
failures = []


def check(ok, what):
    print('%s %s' % ('ok  ' if ok else 'FAIL', what))
    if not ok:
        failures.append(what)


def tsv(path):
    return list(csv.DictReader(open(path, newline=''), delimiter='\t'))


# --- the ground truth, from the files: {query: (relevant names, junk names, box or None)}
truth = {}
if layout == 'demo':
    group = {r['name']: r['group'] for r in tsv(os.path.join(root, 'manifest.tsv'))}
    for q in tsv(os.path.join(root, 'queries.tsv')):
        truth[q['name']] = ({n for n, g in group.items() if g == q['group']}, set(),
                            [int(q[c]) for c in ('x', 'y', 'width', 'height')])
elif layout == 'oxford':
    gt = os.path.join(root, 'gt')
    for f in sorted(os.listdir(gt)):
        if f.endswith('_query.txt'):
            base = os.path.join(gt, f[:-len('_query.txt')])
            image, *box = open(base + '_query.txt').read().split()
            image = image.replace('oxc1_', '')
            x1, y1, x2, y2 = map(float, box)
            lists = {k: set(open('%s_%s.txt' % (base, k)).read().split()) for k in ('good', 'ok', 'junk')}
            truth[os.path.basename(base)] = ((lists['good'] | lists['ok']) - {image}, lists['junk'] | {image},
                                            [math.floor(x1), math.floor(y1),
                                             math.ceil(x2) - math.floor(x1), math.ceil(y2) - math.floor(y1)])
elif layout == 'classes':
    for c in sorted(os.listdir(root)):
        names = ['%s/%s' % (c, os.path.splitext(f)[0]) for f in sorted(os.listdir(os.path.join(root, c)))]
        for q in names[:per_class]:
            truth[q] = (set(names) - {q}, {q}, None)

# --- the features, and an exact ranking of our own
schema = 'eval_' + run['collection']
conn = psycopg2.connect('')
cur = conn.cursor()
cur.execute('SELECT id, name, feat::text FROM %s.images' % schema)
rows = cur.fetchall()
ids = np.array([r[0] for r in rows])
id_of = {r[1]: r[0] for r in rows}
feats = np.array([json.loads(r[2]) for r in rows], dtype=np.float64)
cur.execute('SELECT name, feat::text, box FROM %s.queries' % schema)
queries = {r[0]: (np.array(json.loads(r[1])), r[2]) for r in cur.fetchall()}

check(set(queries) == set(truth), 'the queries are the collection\'s (%d)' % len(truth))
check(run['queries'] == len(truth) and run['images'] == len(rows), 'counts: %d queries, %d images'
      % (run['queries'], run['images']))
for name, (_, _, box) in truth.items():
    if name in queries and queries[name][1] != box:
        check(False, 'query %s searched box %s, its file says %s' % (name, queries[name][1], box))



def ap_at_k_range(rows, relevant, k, junk, tol=1e-9):
    """The lowest and highest AP@k of the right answers of LIMIT k over rows
    (id, distance): the rows nearer than the k-th distance, in order, then
    any of the rows tied with it (within tol, relative), in any order."""
    rows = sorted(rows, key=lambda r: (r[1], r[0]))
    if len(rows) <= k:
        v = metrics.average_precision_at([i for i, _ in rows], relevant, k, junk)
        return v, v
    kth = rows[k - 1][1]
    near = lambda dist: abs(dist - kth) <= tol * max(1.0, abs(kth))
    nearer = [i for i, dist in rows if dist < kth and not near(dist)]
    tied = [i for i, dist in rows if near(dist)]
    slots = k - len(nearer)
    if math.perm(len(tied), slots) > 200000:
        raise SystemExit('%d rows tied at the k-th distance %g: too many ways to check' % (len(tied), kth))
    values = {metrics.average_precision_at(nearer + list(chosen), relevant, k, junk)
              for chosen in itertools.permutations(tied, slots)}
    return min(values), max(values)


k = run['k']
ap_k_lo, ap_k_hi, ap = [], [], []
for name, (relevant, junk, _) in sorted(truth.items()):
    d = np.sqrt(((feats - queries[name][0]) ** 2).sum(axis=1))
    rows_d = list(zip(ids.tolist(), d.tolist()))
    ranking = metrics.by_distance(rows_d)
    rel = {id_of[n] for n in relevant}
    jk = {id_of[n] for n in junk if n in id_of}
    lo, hi = ap_at_k_range(rows_d, rel, k, jk)
    ap_k_lo.append(lo)
    ap_k_hi.append(hi)
    ap.append(metrics.average_precision(ranking, rel, jk))
# mAP@k of the right answers: one value unless a k-th place is tied
map_k_lo, map_k_hi = np.mean(ap_k_lo), np.mean(ap_k_hi)
ties_at_k = sum(lo != hi for lo, hi in zip(ap_k_lo, ap_k_hi))
print('     %d of %d queries have a tie at the k-th place that changes AP@%d' % (ties_at_k, len(ap_k_lo), k))

by_label = {r['label']: r for r in run['results']}
argsort = by_label.get('argsort')
check(argsort is not None, 'argsort ran')
if argsort:
    check(map_k_lo - 1e-6 < argsort['map_at_k'] < map_k_hi + 1e-6,
          'argsort mAP@%d %.6f = numpy %.6f%s' % (k, argsort['map_at_k'], map_k_lo,
                                                 '' if ties_at_k == 0 else '..%.6f (ties at the k-th place)' % map_k_hi))
    check(abs(argsort['map'] - np.mean(ap)) < 1e-6, 'argsort mAP %.6f = numpy %.6f' % (argsort['map'], np.mean(ap)))
    check(argsort['plan'] == 'Seq Scan', 'argsort ran as a sequential scan (%s)' % argsort['plan'])

for label, index in (('faissflat', 'faissflat'), ('kdtree exact', 'kdtree'), ('lsh default', 'lsh')):
    r = by_label.get(label)
    check(r is not None, '%s ran' % label)
    if r is None:
        continue
    check(r['plan'] == 'Index Scan using images_feat_%s' % index, '%s plan: %s' % (label, r['plan']))
    check(r['build_s'] > 0 and r['index_mb'] > 0, '%s build %.3f s, %.2f MB' % (label, r['build_s'], r['index_mb']))
    if label != 'lsh default':          # exact methods score as argsort does
        check(r['recall_at_k'] == 1.0, '%s recall@%d %.3f' % (label, k, r['recall_at_k']))
        # (tied k-th places: another choice of the tied rows may score
        # otherwise, within the right answers' range; mAP ranks every row)
        same_k = (abs(r['map_at_k'] - argsort['map_at_k']) < 1e-9 if ties_at_k == 0
                  else map_k_lo - 1e-6 < r['map_at_k'] < map_k_hi + 1e-6)
        check(same_k and abs(r['map'] - argsort['map']) < 1e-9,
              '%s mAP@%d %.6f and mAP %.6f as argsort' % (label, k, r['map_at_k'], r['map']))
        check(r['end_to_end_rows_differ'] == 0, '%s: end to end found the same rows' % label)
for r in run['results']:
    check(0 <= r['recall_at_k'] <= 1 and 0 <= r['map_at_k'] <= 1 and r['db_ms_median'] > 0
          and r['e2e_ms_p95'] >= r['e2e_ms_median'] > 0, '%s: scores in range, times measured' % r['label'])
png = result_path[:-len('.json')] + '.png'
check(os.path.exists(png) and open(png, 'rb').read(8) == b'\x89PNG\r\n\x1a\n', 'the figure is a PNG')
print('%d failed' % len(failures))
sys.exit(1 if failures else 0)
