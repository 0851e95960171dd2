#!/usr/bin/python3
"""Measures the page's match labels on a loaded collection (the demo's).

    PGHOST=... PGPORT=... PGDATABASE=imgsearch web/tools/measure_thresholds.py [--out web/src/thresholds.json]

The views of one photograph (crops, scales, flips, rotations, colour and JPEG
changes: tools/build_dataset.py) are its near-duplicates; views of other
photographs are not. From the pairwise L2 distances of the stored features:
  near_duplicate  just below the closest pair of different photographs, so
                  that no such pair on the collection gets the label;
  identical       above the largest distance between an image and the same
                  image re-encoded as JPEG (quality 80-95, as the page does
                  for GIFs and large images), on a sample of images.
The thresholds hold for this model only (its layer and weights are kept with them).
"""
import argparse
import io
import json
import sys

import numpy as np
import psycopg2
from PIL import Image


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--out')
    ap.add_argument('--sample', type=int, default=40, help='images re-encoded for the identical threshold')
    args = ap.parse_args()
    conn = psycopg2.connect('')
    cur = conn.cursor()
    cur.execute('SELECT layer, weights FROM imgsearch_model_info()')
    layer, weights = cur.fetchone()
    cur.execute('SELECT id, grp, feat::real[] FROM gallery.images WHERE feat IS NOT NULL ORDER BY id')
    rows = cur.fetchall()
    ids = np.array([r[0] for r in rows])
    grp = np.array([r[1] for r in rows])
    f = np.array([r[2] for r in rows], dtype=np.float64)
    sq = (f * f).sum(1)
    d = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * f @ f.T, 0))
    same = grp[:, None] == grp[None, :]
    off = ~np.eye(len(ids), dtype=bool)
    within = d[same & off]
    across = d[~same]
    closest_other = across.min()
    near = float(np.floor(closest_other * 0.95 * 1000) / 1000)

    rng = np.random.default_rng(0)
    reenc = []
    for i in rng.choice(len(ids), size=min(args.sample, len(ids)), replace=False):
        cur.execute('SELECT img FROM gallery.images WHERE id = %s', (int(ids[i]),))
        im = Image.open(io.BytesIO(bytes(cur.fetchone()[0]))).convert('RGB')
        for q in (80, 92, 95):
            b = io.BytesIO()
            im.save(b, 'JPEG', quality=q)
            cur.execute('SELECT (vgg16_features(%s) <-> (SELECT feat FROM gallery.images WHERE id = %s))::float8',
                        (psycopg2.Binary(b.getvalue()), int(ids[i])))
            reenc.append(cur.fetchone()[0])
    reenc = np.array(reenc)
    identical = float(np.ceil(reenc.max() * 1.2 * 1000) / 1000)
    if identical >= near:
        sys.exit(f'measure_thresholds: re-encoding moves images {reenc.max():.4f}, as far as other photographs ({closest_other:.4f})')

    nearest_view = np.where(same & off, d, np.inf).min(1)
    how = (f'measured by web/tools/measure_thresholds.py on {len(ids)} images of {len(set(grp))} photographs '
           f'({layer}, {weights}): the closest views of different photographs are {closest_other:.4f} apart '
           f'(near-duplicate below 0.95 of that); views of one photograph: median {np.median(within):.4f}, '
           f'{(within <= near).mean():.1%} of pairs within the threshold, {(nearest_view <= near).mean():.1%} of images '
           f'have another view within it; the same image re-encoded as JPEG 80-95 moves at most {reenc.max():.4f} '
           f'({len(reenc)} tries; identical below 1.2 times that)')
    out = {'model': {'layer': layer, 'weights': weights},
           'identical': identical, 'near_duplicate': near, 'how': how}
    print(json.dumps(out, indent=2))
    if args.out:
        with open(args.out, 'w') as fh:
            json.dump(out, fh, indent=2)
            fh.write('\n')


if __name__ == '__main__':
    main()
