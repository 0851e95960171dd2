#!/usr/bin/python3
"""Builds tiny collections in the layouts make eval reads, from the demo's
photographs (tools/build_dataset.py's views), for the eval tests.

    make_collections.py OUT     -> OUT/demo, OUT/oxford, OUT/classes
"""
import os
import subprocess
import sys
import zlib

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, 'tools'))
import build_dataset  # noqa: E402

SOURCES = build_dataset.SOURCES[:3]
VIEWS = 5


def views(seed):
    """VIEWS jpeg views (bytes, size) of each of SOURCES."""
    out = {}
    for name, path in SOURCES:
        src = build_dataset.load_source(path)
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        out[name] = [build_dataset.make_view(src, rng, v == 0) for v in range(VIEWS)]
    return out


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb' if isinstance(data, bytes) else 'w') as f:
        f.write(data)


def oxford(out, all_views):
    """Paris6k's layout: images in a folder per landmark, ground truth apart.
    View 0 is the query image (in the collection, searched by a box), views
    1-2 good, 3 ok, 4 junk. The first landmark's query file names its image
    the Oxford5k way (oxc1_ prefix)."""
    for i, (name, vs) in enumerate(all_views.items()):
        for v, (data, _) in enumerate(vs):
            write(os.path.join(out, 'jpg', name, 'paris_%s_%06d.jpg' % (name, v)), data)
        w, h = vs[0][1]
        image = ('oxc1_' if i == 0 else '') + 'paris_%s_000000' % name
        gt = os.path.join(out, 'gt', name + '_1')
        write(gt + '_query.txt', '%s %.1f %.1f %.1f %.1f\n' % (image, w * 0.1, h * 0.15, w * 0.85, h * 0.9))
        write(gt + '_good.txt', 'paris_%s_000001\nparis_%s_000002\n' % (name, name))
        write(gt + '_ok.txt', 'paris_%s_000003\n' % name)
        write(gt + '_junk.txt', 'paris_%s_000004\n' % name)


def classes(out, all_views):
    for name, vs in all_views.items():
        for v, (data, _) in enumerate(vs):
            write(os.path.join(out, name, 'img%02d.jpg' % v), data)


def main():
    out = sys.argv[1]
    subprocess.run([sys.executable, os.path.join(REPO, 'tools', 'build_dataset.py'), os.path.join(out, 'demo'),
                    '--sources', str(len(SOURCES)), '--views', str(VIEWS), '--queries', '1'],
                   check=True, stdout=subprocess.DEVNULL)
    all_views = views(7)
    oxford(os.path.join(out, 'oxford'), all_views)
    classes(os.path.join(out, 'classes'), all_views)


if __name__ == '__main__':
    main()
