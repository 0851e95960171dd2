#!/usr/bin/python3
"""Reproduces the paper's Table I on a collection: every method's mAP, recall and time.

    tools/eval.py [COLLECTION | --large] [--layout auto|demo|oxford|classes] [--name NAME]
                  [--model PATH] [--k 30] [--per-class 5] [--batch 8]
                  [--out eval/results] [--no-plot]

COLLECTION is a folder in one of the layouts eval/collections.py describes
(the demo's, Oxford5k/Paris6k's, or class subfolders). Without it, the demo
collection (tools/build_dataset.py; --large: 9200 images), built once under
IMGSEARCH_EVAL_DIR (default .eval/) as dataset/ or dataset-large/. Connects with the PG*
variables; `make eval` runs it on a cluster of its own (tools/eval.sh).
The collection goes into the schema eval_<name>; features are extracted in
the database, in batches, resumably; every index method installed
(faissflat, kdtree, lsh) is built; every query runs under argsort, faissflat,
kdtree exact and at budgets, lsh at its defaults and at budgets. Prints the
table beside the paper's and writes OUT/<name>-<date>.json and .png.
"""
import argparse
import datetime
import os
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from eval import collections, report, run  # noqa: E402


def demo_collection(large):
    """The demo collection's folder, built on first use."""
    base = os.environ.get('IMGSEARCH_EVAL_DIR') or os.path.join(REPO, '.eval')
    path = os.path.join(base, 'dataset-large' if large else 'dataset')
    if not os.path.exists(os.path.join(path, 'manifest.tsv')):
        print('eval: building the demo collection in %s' % path, flush=True)
        subprocess.run([sys.executable, os.path.join(REPO, 'tools', 'build_dataset.py'), path + '.tmp']
                       + (['--large'] if large else []), check=True)
        shutil.rmtree(path, ignore_errors=True)
        os.rename(path + '.tmp', path)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('collection', nargs='?', help='a collection\'s folder (default: the demo collection)')
    ap.add_argument('--large', action='store_true', help='the large demo collection (400 views per photograph)')
    ap.add_argument('--layout', default='auto', choices=['auto', 'demo', 'oxford', 'classes'])
    ap.add_argument('--name', help='the collection\'s name (default: its folder\'s)')
    ap.add_argument('--model', help='TorchScript model file the server reads (default: imgsearch.model)')
    ap.add_argument('--k', type=int, default=30, help='results per query (default 30, as the paper)')
    ap.add_argument('--per-class', type=int, default=5, help='classes layout: queries per class (default 5)')
    ap.add_argument('--batch', type=int, default=8, help='images per vgg16_features() call')
    ap.add_argument('--out', default=os.path.join(REPO, 'eval', 'results'))
    ap.add_argument('--no-plot', action='store_true')
    args = ap.parse_args()
    if not 1 <= args.k <= 1000:
        ap.error('--k must be between 1 and 1000')

    if args.collection is None:
        args.collection = demo_collection(args.large)
        args.name = args.name or ('demo-large' if args.large else 'demo')
    elif args.large:
        ap.error('--large is for the demo collection, not for a given folder')
    try:
        coll = collections.read(args.collection, args.layout, args.per_class, args.name)
    except (ValueError, OSError) as e:
        sys.exit('eval: %s' % e)
    print('eval: %s: %s layout, %d images, %d queries' % (coll.name, coll.layout, len(coll.images), len(coll.queries)))
    schema = run.schema_for(coll.name)
    conn = run.connect(args.model)
    model = run.load(conn, coll, schema, args.batch)
    with conn.cursor() as cur:
        methods = run.installed_methods(cur)
        cur.execute('SELECT count(*) FROM %s.images WHERE feat IS NOT NULL' % schema)
        rows = cur.fetchone()[0]
        cur.execute("SELECT 'PostgreSQL ' || current_setting('server_version')")
        server = cur.fetchone()[0]
    conn.commit()
    built = run.build_indexes(conn, schema, methods)
    cfgs = run.configs(methods)
    results, n_queries = run.evaluate(conn, coll, schema, cfgs, args.k, rows <= run.FULL_RANKING_MAX_ROWS)
    conn.close()
    for r in results:
        if r['index_method'] in built:
            r['build_s'], r['index_mb'] = built[r['index_method']]

    date = datetime.date.today().isoformat()
    result = {
        'collection': coll.name, 'layout': coll.layout, 'root': coll.root, 'date': date,
        'images': rows, 'queries': n_queries, 'k': args.k, 'model': model, 'server': server,
        'paper_table_i': {m: {'name': n, 'map': a, 'seconds': t} for m, (n, a, t) in report.PAPER_TABLE_I.items()},
        'results': results,
    }
    print()
    print(report.table(result))
    base = os.path.join(args.out, '%s-%s' % (coll.name, date))
    report.write_json(result, base + '.json')
    print('\neval: wrote %s.json' % base)
    if not args.no_plot:
        report.plot(result, base + '.png')
        print('eval: wrote %s.png' % base)


if __name__ == '__main__':
    main()
