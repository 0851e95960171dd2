"""The collections `make eval` reads, each as images and queries with ground truth.

Three layouts (detected from the folder, or named with --layout):

demo     what tools/build_dataset.py writes: manifest.tsv, queries.tsv,
         images/, queries/. Relevant = the views of the query's photograph
         (its group); the query images are not in the collection.
oxford   the Oxford5k/Paris6k layout: images (*.jpg, in subfolders too) and
         ground-truth files <query>_{good,ok,junk,query}.txt. The query file
         holds "<image> x1 y1 x2 y2": a collection image and the box to
         search for. Standard protocol: good+ok relevant, junk ignored, the
         query image itself ignored too.
classes  a folder of class subfolders of images. The first --per-class
         images of each class (by name) are queries, searched whole;
         relevant = the other images of its class, the query itself ignored.

Relevance is kept by image name; the loader maps names to ids.
"""
import csv
import math
import os
from dataclasses import dataclass, field

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.webp', '.bmp', '.tif', '.tiff')


@dataclass
class Image:
    id: int
    name: str          # unique in the collection
    path: str
    label: str         # group or class; the landmark's folder for oxford


@dataclass
class Query:
    name: str
    path: str
    box: list          # [x, y, width, height] in pixels, or None for the whole image
    relevant: set
    junk: set = field(default_factory=set)


@dataclass
class Collection:
    name: str
    layout: str
    root: str
    images: list
    queries: list


def detect_layout(root):
    if os.path.isfile(os.path.join(root, 'manifest.tsv')):
        return 'demo'
    for _, _, files in os.walk(root):
        if any(f.endswith('_query.txt') for f in files):
            return 'oxford'
    if any(os.path.isdir(os.path.join(root, d)) for d in os.listdir(root)):
        return 'classes'
    raise ValueError('%s: not a collection (no manifest.tsv, no *_query.txt, no class folders)' % root)


def read(root, layout='auto', per_class=5, name=None):
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise ValueError('%s: no such folder' % root)
    if layout == 'auto':
        layout = detect_layout(root)
    reader = {'demo': _read_demo, 'oxford': _read_oxford, 'classes': _read_classes}.get(layout)
    if reader is None:
        raise ValueError('unknown layout %r (demo, oxford, classes)' % layout)
    images, queries = reader(root, per_class) if layout == 'classes' else reader(root)
    if not images:
        raise ValueError('%s: no images' % root)
    queries = [q for q in queries if q.relevant]    # AP is undefined without a relevant image
    if not queries:
        raise ValueError('%s: no query has a relevant image in the collection' % root)
    return Collection(name or os.path.basename(root.rstrip('/')), layout, root, images, queries)


def _tsv(path):
    with open(path, newline='') as f:
        return list(csv.DictReader(f, delimiter='\t'))


def _read_demo(root):
    images = [Image(int(r['id']), r['name'], os.path.join(root, 'images', r['name']), r['group'])
              for r in _tsv(os.path.join(root, 'manifest.tsv'))]
    by_group = {}
    for im in images:
        by_group.setdefault(im.label, set()).add(im.name)
    queries = [Query(r['name'], os.path.join(root, 'queries', r['name']),
                     [int(r[k]) for k in ('x', 'y', 'width', 'height')], by_group.get(r['group'], set()))
               for r in _tsv(os.path.join(root, 'queries.tsv'))]
    return images, queries


def _image_files(root):
    """(name without extension, path, parent folder name) of every image under root, by name."""
    found = {}
    for folder, _, files in os.walk(root):
        for f in files:
            stem, ext = os.path.splitext(f)
            if ext.lower() in IMAGE_EXTENSIONS:
                if stem in found:
                    raise ValueError('two images named %s: %s and %s' % (stem, found[stem][0], os.path.join(folder, f)))
                found[stem] = (os.path.join(folder, f), os.path.basename(folder))
    return [(stem,) + found[stem] for stem in sorted(found)]


def _read_oxford(root):
    files = _image_files(root)
    images = [Image(i, stem, path, folder) for i, (stem, path, folder) in enumerate(files, 1)]
    path_of = {im.name: im.path for im in images}
    names = set(path_of)
    queries = []
    for folder, _, gt in sorted(os.walk(root)):
        for f in sorted(gt):
            if not f.endswith('_query.txt'):
                continue
            base = os.path.join(folder, f[:-len('_query.txt')])
            with open(base + '_query.txt') as qf:
                fields = qf.read().split()
            if len(fields) != 5:
                raise ValueError('%s_query.txt: expected "image x1 y1 x2 y2"' % base)
            image = fields[0]
            if image not in names and image.startswith('oxc1_'):     # Oxford5k names its query images so
                image = image[len('oxc1_'):]
            if image not in names:
                raise ValueError('%s_query.txt: image %s is not in the collection' % (base, image))
            x1, y1, x2, y2 = map(float, fields[1:])
            x, y = int(math.floor(x1)), int(math.floor(y1))
            box = [x, y, max(1, int(math.ceil(x2)) - x), max(1, int(math.ceil(y2)) - y)]

            def listed(kind):
                path = '%s_%s.txt' % (base, kind)
                if not os.path.exists(path):
                    return set()
                with open(path) as lf:
                    return {n for n in lf.read().split() if n in names}
            junk = listed('junk') | {image}
            relevant = (listed('good') | listed('ok')) - junk
            queries.append(Query(os.path.basename(base), path_of[image], box, relevant, junk))
    return images, queries


def _read_classes(root, per_class):
    images, queries = [], []
    for label in sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))):
        members = [(stem, path) for stem, path, _ in _image_files(os.path.join(root, label))]
        for stem, path in members:
            images.append(Image(len(images) + 1, '%s/%s' % (label, stem), path, label))
        names = {'%s/%s' % (label, stem) for stem, _ in members}
        for stem, path in members[:per_class]:
            me = '%s/%s' % (label, stem)
            queries.append(Query(me, path, None, names - {me}, {me}))
    return images, queries
