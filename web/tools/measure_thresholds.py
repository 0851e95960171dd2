#!/usr/bin/python3
"""Measures the page's match label on a loaded collection (the demo's).

    PGHOST=... PGPORT=... PGDATABASE=imgsearch web/tools/measure_thresholds.py [--out web/src/thresholds.json]

The views of one photograph (crops, scales, flips, rotations, colour and JPEG
changes: tools/build_dataset.py) are "the same photograph"; views of other
photographs are not. Over every pair of distinct images, from the pairwise L2
distances of the stored features (numpy, in double), for a distance t:
  precision(t)  the share of the pairs within t that are views of one photograph;
  recall(t)     the share of the pairs of views of one photograph within t.
The label "same photograph" covers distances up to the smallest t (a
multiple of 0.001) that holds most pairs of views of one photograph (recall
at least 0.5), provided the label is right there at least --precision of the
time (0.8: four times in five). Where it is not, the data cannot separate
views of one photograph from other photographs and there is no label
(same_photograph null). The label holds for this model only (its layer and
weights are kept with it).
"""
import argparse
import json

import numpy as np
import psycopg2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--out')
    ap.add_argument('--precision', type=float, default=0.8, help='the least precision of the labelled range')
    args = ap.parse_args()
    conn = psycopg2.connect('')
    cur = conn.cursor()
    cur.execute('SELECT layer, weights FROM imgsearch_model_info()')
    layer, weights = cur.fetchone()
    cur.execute('SELECT id, grp, feat::real[] FROM gallery.images WHERE feat IS NOT NULL ORDER BY id')
    rows = cur.fetchall()
    grp = np.array([r[1] for r in rows])
    f = np.array([r[2] for r in rows], dtype=np.float64)
    n = len(rows)
    sq = (f * f).sum(1)
    d = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * f @ f.T, 0))
    iu = np.triu_indices(n, 1)                     # each pair of distinct images once
    dist = d[iu]
    same = (grp[:, None] == grp[None, :])[iu]
    order = np.argsort(dist, kind='stable')
    dist, same = dist[order], same[order]
    cum_same = np.cumsum(same)
    n_same = int(same.sum())

    def at(t):
        """(pairs within t, of which views of one photograph)."""
        k = int(np.searchsorted(dist, t, side='right'))
        return k, int(cum_same[k - 1]) if k else 0

    grid = np.round(np.arange(0.001, 0.2 + 1e-9, 0.001), 3)
    curve = []
    for t in grid:
        k, s = at(t)
        curve.append((float(t), s / k if k else 1.0, s / n_same))
    most = next((c for c in curve if c[2] >= 0.5), None)
    # the label must be right often enough there, else no label
    label = most if most and most[1] >= args.precision else None

    off = ~np.eye(n, dtype=bool)
    views = (grp[:, None] == grp[None, :]) & off
    median_same = float(np.median(dist[same]))
    closest_other = float(dist[~same].min())
    t = label[0] if label else None
    if label:
        within = (d <= t) & views
        per_image = within.sum(1) / views.sum(1)
        how = (f'measured by web/tools/measure_thresholds.py on {n} images of {len(set(grp))} photographs '
               f'({layer}, {weights}), over all {len(dist)} pairs: up to {t}, {label[1]:.1%} of the pairs are views of '
               f'one photograph (precision) and {label[2]:.1%} of the {n_same} pairs of views of one photograph lie '
               f'within it (recall); per image, a median {np.median(per_image):.0%} of its other views. The closest '
               f'views of different photographs are {closest_other:.4f} apart, views of one photograph a median '
               f'{median_same:.4f}.')
    else:
        how = (f'measured by web/tools/measure_thresholds.py on {n} images ({layer}, {weights}): where most pairs of '
               f'views of one photograph lie, fewer than {args.precision:.0%} of the pairs are such views; no label.')
    out = {'model': {'layer': layer, 'weights': weights},
           'same_photograph': t,
           'precision': round(label[1], 4) if label else None,
           'recall': round(label[2], 4) if label else None,
           'how': how,
           # the measured curve at a few distances, for the README
           'curve': [{'distance': c[0], 'precision': round(c[1], 4), 'recall': round(c[2], 4)}
                     for c in curve if round(c[0] * 1000) % 10 == 0 or (label and c[0] == t)]}
    print(json.dumps(out, indent=2))
    if args.out:
        with open(args.out, 'w') as fh:
            json.dump(out, fh, indent=2)
            fh.write('\n')


if __name__ == '__main__':
    main()
