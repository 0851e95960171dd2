#!/usr/bin/python3
"""Builds the demo dataset from photographs shipped in Debian packages.

Each source photograph gives several views (random crop, scale, flip, small
rotation, colour jitter, JPEG quality); the views of one photograph form a
group, the ground truth of retrieval. Queries are further views with a box
around the part to search for, as in Paris6k. The result depends only on the
arguments: the same seed gives the same bytes.

    tools/build_dataset.py OUT [--views 43] [--sources N] [--queries 2] [--large]

OUT/manifest.tsv   id, name, group, width, height of OUT/images/NAME
OUT/queries.tsv    name, group, x, y, width, height of OUT/queries/NAME
"""
import argparse
import io
import math
import os
import sys
import zlib

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

# Photographs (not illustrations) from mate-backgrounds and
# plasma-workspace-wallpapers; tools/install_deps.sh installs both.
MATE = '/usr/share/backgrounds/mate/nature/'
PLASMA = '/usr/share/wallpapers/%s/contents/images/2560x1600.jpg'
SOURCES = [
    ('aqua', MATE + 'Aqua.jpg'),
    ('blinds', MATE + 'Blinds.jpg'),
    ('dune', MATE + 'Dune.jpg'),
    ('freshflower', MATE + 'FreshFlower.jpg'),
    ('garden', MATE + 'Garden.jpg'),
    ('greenmeadow', MATE + 'GreenMeadow.jpg'),
    ('ladybird', MATE + 'LadyBird.jpg'),
    ('raindrops', MATE + 'RainDrops.jpg'),
    ('storm', MATE + 'Storm.jpg'),
    ('twowings', MATE + 'TwoWings.jpg'),
    ('wood', MATE + 'Wood.jpg'),
    ('yellowflower', MATE + 'YellowFlower.jpg'),
    ('bythewater', PLASMA % 'BytheWater'),
    ('coldripple', PLASMA % 'ColdRipple'),
    ('colorfulcups', PLASMA % 'ColorfulCups'),
    ('darkesthour', PLASMA % 'DarkestHour'),
    ('eveningglow', PLASMA % 'EveningGlow'),
    ('fallenleaf', PLASMA % 'FallenLeaf'),
    ('grey', PLASMA % 'Grey'),
    ('kite', PLASMA % 'Kite'),
    ('onestandsout', PLASMA % 'OneStandsOut'),
    ('path', PLASMA % 'Path'),
    ('summer1am', PLASMA % 'summer_1am'),
]

WORK_SIDE = 1024      # sources are reduced to this longest side first


def load_source(path):
    im = Image.open(path)
    im.draft('RGB', (WORK_SIDE, WORK_SIDE))     # fast JPEG downscale on decode
    im = ImageOps.exif_transpose(im).convert('RGB')
    im.thumbnail((WORK_SIDE, WORK_SIDE), Image.Resampling.LANCZOS)
    return im


def rotate_inside(im, degrees):
    """Rotates and crops away the corners the rotation left empty."""
    if abs(degrees) < 0.05:
        return im
    w, h = im.size
    t = math.radians(abs(degrees))
    mx = math.ceil((w * (1 - math.cos(t)) + h * math.sin(t)) / 2)
    my = math.ceil((h * (1 - math.cos(t)) + w * math.sin(t)) / 2)
    rot = im.rotate(degrees, resample=Image.Resampling.BICUBIC)
    return rot.crop((mx, my, w - mx, h - my))


def make_view(src, rng, first):
    """One view of src; the first view of a group is the whole photograph."""
    im = src
    if not first:
        w, h = im.size
        area = rng.uniform(0.35, 1.0) * w * h
        aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3))) * w / h
        cw = min(w, int(round(math.sqrt(area * aspect))))
        ch = min(h, int(round(math.sqrt(area / aspect))))
        x = int(rng.integers(0, w - cw + 1))
        y = int(rng.integers(0, h - ch + 1))
        im = im.crop((x, y, x + cw, y + ch))
        im = rotate_inside(im, float(rng.uniform(-8, 8)))
        if rng.random() < 0.5:
            im = ImageOps.mirror(im)
        im = ImageEnhance.Brightness(im).enhance(float(rng.uniform(0.8, 1.2)))
        im = ImageEnhance.Contrast(im).enhance(float(rng.uniform(0.8, 1.2)))
        im = ImageEnhance.Color(im).enhance(float(rng.uniform(0.75, 1.25)))
    side = 512 if first else int(rng.integers(320, 513))
    im = im.copy()
    im.thumbnail((side, side), Image.Resampling.LANCZOS)
    quality = 90 if first else int(rng.integers(60, 96))
    buf = io.BytesIO()
    im.save(buf, 'JPEG', quality=quality, optimize=False, progressive=False)
    return buf.getvalue(), im.size


def query_box(rng, size):
    """A box over 30-70% of the image: the part to search for."""
    w, h = size
    bw = int(w * rng.uniform(0.55, 0.85))
    bh = int(h * rng.uniform(0.55, 0.85))
    return int(rng.integers(0, w - bw + 1)), int(rng.integers(0, h - bh + 1)), bw, bh


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('out')
    ap.add_argument('--views', type=int, default=43, help='views per source photograph (default 43: ~1000 images)')
    ap.add_argument('--large', action='store_true', help='400 views per source (~9200 images)')
    ap.add_argument('--sources', type=int, default=len(SOURCES), help='use the first N source photographs')
    ap.add_argument('--queries', type=int, default=2, help='query crops per source')
    ap.add_argument('--seed', type=int, default=20240601)
    args = ap.parse_args()
    views = 400 if args.large else args.views
    sources = SOURCES[:args.sources]
    missing = [p for _, p in sources if not os.path.exists(p)]
    if missing:
        sys.exit('build_dataset: missing %s (run make deps)' % ', '.join(missing))

    os.makedirs(os.path.join(args.out, 'images'), exist_ok=True)
    os.makedirs(os.path.join(args.out, 'queries'), exist_ok=True)
    manifest, queries = [], []
    for grp, path in sources:
        src = load_source(path)
        rng = np.random.default_rng([args.seed, zlib.crc32(grp.encode())])
        for v in range(views):
            data, (w, h) = make_view(src, rng, v == 0)
            name = '%s_%03d.jpg' % (grp, v)
            with open(os.path.join(args.out, 'images', name), 'wb') as f:
                f.write(data)
            manifest.append((len(manifest) + 1, name, grp, w, h))
        for q in range(args.queries):
            data, size = make_view(src, rng, False)
            name = '%s_q%d.jpg' % (grp, q)
            with open(os.path.join(args.out, 'queries', name), 'wb') as f:
                f.write(data)
            queries.append((name, grp) + query_box(rng, size))
        print('build_dataset: %-13s %d views, %d queries' % (grp, views, args.queries), flush=True)

    with open(os.path.join(args.out, 'manifest.tsv'), 'w') as f:
        f.write('id\tname\tgroup\twidth\theight\n')
        f.writelines('\t'.join(map(str, row)) + '\n' for row in manifest)
    with open(os.path.join(args.out, 'queries.tsv'), 'w') as f:
        f.write('name\tgroup\tx\ty\twidth\theight\n')
        f.writelines('\t'.join(map(str, row)) + '\n' for row in queries)
    print('build_dataset: %d images, %d queries in %s' % (len(manifest), len(queries), args.out))


if __name__ == '__main__':
    main()
