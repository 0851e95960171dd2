"""One evaluation in a database: the collection in a schema of its own, its
features extracted there, every index method built on them, every query run
under every method (round robin, query by query), and the scores.

Connects with the usual PG* variables; the role must be able to create a
schema and indexes. Steps that are done stay done: a rerun resumes loading
and extraction, and builds the indexes again (their build time is measured).
"""
import os
import re
import sys
import time

import psycopg2
import psycopg2.extras
from PIL import Image as PILImage
from tqdm import tqdm

from . import metrics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'tools'))
from load_dataset import extract_features  # noqa: E402  (the demo loader's batched, resumable extraction)

INDEX_METHODS = ['faissflat', 'kdtree', 'lsh']
# Budgets besides each method's exact mode and defaults: points of the plot.
KDTREE_BUDGETS = [1, 4]                       # kdtree.max_leaves
LSH_BUDGETS = [(2, 100), (8, 300)]            # lsh.probes, lsh.candidates
# Full-ranking mAP fetches every row per query and method: skipped above this.
FULL_RANKING_MAX_ROWS = 200000


def schema_for(name):
    return 'eval_' + re.sub(r'[^a-z0-9_]', '_', name.lower())


class Config:
    """One way to run the search: a method and the settings it runs under."""

    def __init__(self, label, method, index_method, settings):
        self.label, self.method, self.index_method, self.settings = label, method, index_method, settings

    def apply(self, cur):
        for name, value in self.settings.items():
            if value is None:
                cur.execute('SET %s TO DEFAULT' % name)
            else:
                cur.execute('SET %s = %%s' % name, [value])


def configs(installed):
    """argsort, then each installed index method exact or at its defaults, then at smaller budgets."""
    off = {'enable_seqscan': 'off'}     # as api.search: the asked-for index even where a scan looks cheaper
    reset = {'kdtree.max_leaves': None, 'lsh.probes': None, 'lsh.candidates': None}
    out = [Config('argsort', 'argsort', None, dict(reset, **{'imgsearch.method': 'argsort', 'enable_seqscan': 'on'}))]
    if 'faissflat' in installed:
        out.append(Config('faissflat', 'faissflat', 'faissflat', dict(reset, **off, **{'imgsearch.method': 'faissflat'})))
    if 'kdtree' in installed:
        kd = dict(reset, **off, **{'imgsearch.method': 'kdtree'})
        out.append(Config('kdtree exact', 'kdtree', 'kdtree', dict(kd, **{'kdtree.max_leaves': '0'})))
        out += [Config('kdtree max_leaves=%d' % b, 'kdtree', 'kdtree', dict(kd, **{'kdtree.max_leaves': str(b)}))
                for b in KDTREE_BUDGETS]
    if 'lsh' in installed:
        lsh = dict(reset, **off, **{'imgsearch.method': 'lsh'})
        out.append(Config('lsh default', 'lsh', 'lsh', lsh))
        out += [Config('lsh probes=%d candidates=%d' % pc, 'lsh', 'lsh',
                       dict(lsh, **{'lsh.probes': str(pc[0]), 'lsh.candidates': str(pc[1])}))
                for pc in LSH_BUDGETS]
    return out


def connect(model=None):
    conn = psycopg2.connect('')
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_extension WHERE extname = 'imgsearch'")
        if cur.fetchone() is None:
            raise SystemExit('eval: imgsearch is not installed in this database (CREATE EXTENSION imgsearch)')
        cur.execute("LOAD 'imgsearch'")          # defines its settings (imgsearch.method, ...)
        if model:
            cur.execute('SET imgsearch.model = %s', [os.path.abspath(model)])
    conn.commit()
    return conn


def installed_methods(cur):
    cur.execute('SELECT amname FROM pg_am WHERE amname = ANY(%s)', [INDEX_METHODS])
    found = {r[0] for r in cur.fetchall()}
    for m in INDEX_METHODS:
        if m not in found:
            print('eval: this database\'s imgsearch has no %s method (created by an older install?): '
                  'it is left out' % m)
    return [m for m in INDEX_METHODS if m in found]


def model_info(cur):
    cur.execute('SELECT path, layer, dims, weights, sha256 FROM imgsearch_model_info()')
    return dict(zip(('path', 'layer', 'dims', 'weights', 'sha256'), cur.fetchone()))


def _readable(path):
    """A file the model can decode? (Paris6k ships a few empty or broken files.)"""
    try:
        with PILImage.open(path) as im:
            im.verify()
        return True
    except Exception:
        return False


def load(conn, coll, schema, batch):
    """Images, queries and their features into schema; returns the model's description."""
    with conn.cursor() as cur:
        cur.execute('CREATE SCHEMA IF NOT EXISTS %s' % schema)
        cur.execute('CREATE TABLE IF NOT EXISTS %s.meta (key text PRIMARY KEY, value text NOT NULL)' % schema)
        cur.execute("SELECT value FROM %s.meta WHERE key = 'collection'" % schema)
        row = cur.fetchone()
        identity = '%s %s (%d images, %d queries)' % (coll.layout, coll.root, len(coll.images), len(coll.queries))
        if row and row[0] != identity:
            print('eval: %s held %s; loading %s afresh' % (schema, row[0], identity))
            cur.execute('DROP TABLE IF EXISTS %s.images, %s.queries' % (schema, schema))
        cur.execute('CREATE TABLE IF NOT EXISTS %s.images (id integer PRIMARY KEY, name text NOT NULL UNIQUE, '
                    'label text NOT NULL, img bytea NOT NULL, feat imgfeat)' % schema)
        cur.execute('CREATE TABLE IF NOT EXISTS %s.queries (name text PRIMARY KEY, img bytea NOT NULL, '
                    'box integer[], feat imgfeat)' % schema)
        cur.execute("INSERT INTO %s.meta VALUES ('collection', %%s) ON CONFLICT (key) DO UPDATE "
                    "SET value = excluded.value" % schema, [identity])
        model = model_info(cur)
        model_id = '%s (sha256 %s)' % (model['path'], model['sha256'])
        cur.execute("SELECT value FROM %s.meta WHERE key = 'model'" % schema)
        row = cur.fetchone()
        if row and row[0] != model_id:
            print('eval: the model changed (%s -> %s): features are extracted again' % (row[0], model_id))
            for m in INDEX_METHODS:
                cur.execute('DROP INDEX IF EXISTS %s.images_feat_%s' % (schema, m))
            cur.execute('UPDATE %s.images SET feat = NULL' % schema)
            cur.execute('UPDATE %s.queries SET feat = NULL' % schema)
        cur.execute("INSERT INTO %s.meta VALUES ('model', %%s) ON CONFLICT (key) DO UPDATE "
                    "SET value = excluded.value" % schema, [model_id])
        cur.execute('SELECT id FROM %s.images' % schema)
        present = {r[0] for r in cur.fetchall()}
    conn.commit()

    todo = [im for im in coll.images if im.id not in present]
    skipped = []
    if todo:
        with tqdm(total=len(todo), desc='images', unit='img') as bar:
            for i in range(0, len(todo), 64):
                values = []
                for im in todo[i:i + 64]:
                    if not _readable(im.path):
                        skipped.append(im.name)
                        continue
                    with open(im.path, 'rb') as f:
                        values.append((im.id, im.name, im.label, psycopg2.Binary(f.read())))
                with conn.cursor() as cur:
                    if values:
                        psycopg2.extras.execute_values(
                            cur, 'INSERT INTO %s.images (id, name, label, img) VALUES %%s' % schema, values)
                conn.commit()
                bar.update(len(todo[i:i + 64]))
    if skipped:
        print('eval: %d unreadable images left out: %s' % (len(skipped), ', '.join(skipped[:10])))
    with conn.cursor() as cur:
        for q in coll.queries:
            with open(q.path, 'rb') as f:
                cur.execute('INSERT INTO %s.queries (name, img, box) VALUES (%%s, %%s, %%s) '
                            'ON CONFLICT (name) DO NOTHING' % schema, [q.name, psycopg2.Binary(f.read()), q.box])
    conn.commit()

    extract_features(conn, batch, '%s.images' % schema, keep_registered=False)
    with conn.cursor() as cur:
        cur.execute('SELECT name FROM %s.queries WHERE feat IS NULL ORDER BY name' % schema)
        todo = [r[0] for r in cur.fetchall()]
    for name in tqdm(todo, desc='query features', unit='img', disable=not todo):
        with conn.cursor() as cur:
            cur.execute('UPDATE %s.queries SET feat = CASE WHEN box IS NULL THEN vgg16_features(img) '
                        'ELSE vgg16_features(img, box) END WHERE name = %%s' % schema, [name])
        conn.commit()
    return model


def build_indexes(conn, schema, methods):
    """Builds each method's L2 index afresh: {method: (build s, index MB)}."""
    built = {}
    for m in methods:
        print('eval: building the %s index' % m, flush=True)
        with conn.cursor() as cur:
            cur.execute('DROP INDEX IF EXISTS %s.images_feat_%s' % (schema, m))
            conn.commit()
            start = time.perf_counter()
            cur.execute('CREATE INDEX images_feat_%s ON %s.images USING %s (feat imgfeat_l2_ops)' % (m, schema, m))
            conn.commit()
            seconds = time.perf_counter() - start
            cur.execute("SELECT pg_relation_size('%s.images_feat_%s')" % (schema, m))
            built[m] = (seconds, cur.fetchone()[0] / 2**20)
    with conn.cursor() as cur:
        cur.execute('ANALYZE %s.images' % schema)
    conn.commit()
    return built


def _plan(cur, sql, args):
    """What ran: 'Index Scan using NAME' or the scan's node type."""
    cur.execute('EXPLAIN (FORMAT JSON) ' + sql, args)
    stack = [cur.fetchone()[0][0]['Plan']]
    while stack:
        node = stack.pop()
        if 'Relation Name' in node and node['Relation Name'] == 'images':
            if 'Index Name' in node:
                return '%s using %s' % (node['Node Type'], node['Index Name'])
            return node['Node Type']
        stack.extend(reversed(node.get('Plans', [])))
    return '?'


def evaluate(conn, coll, schema, cfgs, k, full_ranking, progress=True):
    """Runs every query under every config; returns one result dict per config."""
    with conn.cursor() as cur:
        cur.execute('SELECT name, id FROM %s.images WHERE feat IS NOT NULL' % schema)
        id_of = dict(cur.fetchall())
        cur.execute('SELECT name FROM %s.queries WHERE feat IS NOT NULL' % schema)
        have = {r[0] for r in cur.fetchall()}
    conn.commit()
    queries = [q for q in coll.queries if q.name in have]
    where = '(SELECT feat FROM %s.queries WHERE name = %%s)' % schema
    top = ('SELECT id, (feat <-> {q})::float8 FROM {s}.images WHERE feat IS NOT NULL '
           'ORDER BY feat <-> {q} LIMIT %s').format(s=schema, q=where)
    ranking = 'SELECT id, (feat <-> {q})::float8 FROM {s}.images WHERE feat IS NOT NULL ORDER BY feat <-> {q}'.format(s=schema, q=where)
    # End to end: the query's feature extracted in the same statement, once
    # (an uncorrelated subquery runs once, before the scan needs its key).
    end_to_end = ('SELECT id FROM {s}.images WHERE feat IS NOT NULL ORDER BY feat <-> '
                  '(SELECT CASE WHEN box IS NULL THEN vgg16_features(img) ELSE vgg16_features(img, box) END '
                  'FROM {s}.queries WHERE name = %s) LIMIT %s').format(s=schema)

    per = {c.label: {'db_ms': [], 'e2e_ms': [], 'rows': [], 'ap_k': [], 'ap': [], 'recall': []} for c in cfgs}
    plans = {}
    differs = {c.label: 0 for c in cfgs}
    with conn.cursor() as cur:
        for c in cfgs:                      # plans, and a first run of each (caches)
            c.apply(cur)
            plans[c.label] = _plan(cur, top, [queries[0].name, queries[0].name, k])
            cur.execute(top, [queries[0].name, queries[0].name, k])
        cur.execute(end_to_end, [queries[-1].name, k])     # loads the model
        for q in tqdm(queries, desc='queries', unit='q', disable=not progress):
            relevant = {id_of[n] for n in q.relevant if n in id_of}
            junk = {id_of[n] for n in q.junk if n in id_of}
            exact = None
            for c in cfgs:
                c.apply(cur)
                start = time.perf_counter()
                cur.execute(top, [q.name, q.name, k])
                rows = cur.fetchall()
                db_ms = (time.perf_counter() - start) * 1000
                if exact is None:
                    exact = rows                    # argsort comes first
                p = per[c.label]
                p['db_ms'].append(db_ms)
                p['rows'].append([r[0] for r in rows])
                p['recall'].append(metrics.recall_at(rows, exact, k))
                if relevant:
                    p['ap_k'].append(metrics.average_precision_at(metrics.by_distance(rows), relevant, k, junk))
                    if full_ranking:
                        cur.execute(ranking, [q.name, q.name])
                        p['ap'].append(metrics.average_precision(metrics.by_distance(cur.fetchall()),
                                                                 relevant, junk))
        # End to end, method by method: vgg16_features keeps its last result
        # (the planner and the executor both ask), so consecutive searches
        # must not share a query image, or the second would not run the model.
        for c in cfgs:
            c.apply(cur)
            for q, ids in zip(tqdm(queries, desc='end to end, ' + c.label, unit='q', disable=not progress),
                              per[c.label]['rows']):
                start = time.perf_counter()
                cur.execute(end_to_end, [q.name, k])
                e2e_ids = [r[0] for r in cur.fetchall()]
                per[c.label]['e2e_ms'].append((time.perf_counter() - start) * 1000)
                # The same feature under the same method: the same rows, but for ties.
                if e2e_ids != ids:
                    differs[c.label] += 1
    conn.commit()

    results = []
    for c in cfgs:
        p = per[c.label]
        results.append({
            'label': c.label, 'method': c.method, 'index_method': c.index_method,
            'settings': {n: v for n, v in c.settings.items() if v is not None},
            'plan': plans[c.label],
            'end_to_end_rows_differ': differs[c.label],
            'map_at_k': metrics.mean(p['ap_k']),
            'map': metrics.mean(p['ap']) if full_ranking else None,
            'recall_at_k': metrics.mean(p['recall']),
            'db_ms_median': metrics.percentile(p['db_ms'], 50), 'db_ms_p95': metrics.percentile(p['db_ms'], 95),
            'e2e_ms_median': metrics.percentile(p['e2e_ms'], 50), 'e2e_ms_p95': metrics.percentile(p['e2e_ms'], 95),
            'per_query': {'ap_at_k': p['ap_k'], 'ap': p['ap'], 'recall_at_k': p['recall']},
        })
    return results, len(queries)
