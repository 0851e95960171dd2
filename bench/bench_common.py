"""What the index benchmarks share (a module, not a bench: `make bench` runs
bench/*_bench.py only): the data sets and their sizes, loading a set into a
table, pgvector's HNSW (or faiss's in process, beyond pgvector's 2000
dimensions) beside the imgsearch indexes, one session per method, the round
robin that times them, recall, the DEBUG1 lines of index scans and the
machine's description. Used by kdtree_bench.py and lsh_bench.py; the cluster,
COPY and latency summary come from faissflat_bench.py.
"""
import collections
import json
import os
import platform
import re
import statistics
import subprocess
import time

import faiss
import numpy as np
import psycopg2

from bench_data import clustered_unit_nonneg, cnn_like, cnn_like_model
from faissflat_bench import copy_binary

HERE = os.path.dirname(os.path.abspath(__file__))
K = 30
# name: (default n, dim, generator, spectrum exponent)
SETS = {
    'cnn512': (100_000, 512, 'cnn', 1.0),
    'hard512': (100_000, 512, 'hard', None),
    'cnn4096': (20_000, 4096, 'cnn', 1.0),
    'demo512': (100_000, 512, 'cnn', 1.87),
}
PGVECTOR_MAX_DIMS = 2000      # pgvector's HNSW limit for vector
PGVECTOR_VERSION = '0.8.6'
HNSW_M, HNSW_EFC, HNSW_EFS = 16, 64, (40, 100, 200)


def make_set(name, n, nq, seed):
    """n vectors of the set and nq held-out queries of the same distribution."""
    _, dim, kind, alpha = SETS[name]
    rng = np.random.default_rng(seed)
    if kind == 'hard':
        return clustered_unit_nonneg(rng, n, dim), clustered_unit_nonneg(rng, nq, dim)
    model = cnn_like_model(rng, dim, alpha)
    return cnn_like(rng, model, n), cnn_like(rng, model, nq)


def parse_sets(ap, spec, divide=1):
    """'NAME,NAME:N,...' -> [(name, n)]; a NAME alone is its default size
    divided by divide (--quick)."""
    plan = []
    for item in spec.split(','):
        name, _, size = item.partition(':')
        if name not in SETS:
            ap.error(f'unknown set {name} (one of {", ".join(SETS)})')
        plan.append((name, int(size) if size else SETS[name][0] // divide))
    return plan


def variance_kept(x, ms=(16, 32, 64)):
    """PCA variance kept by the top m components, on a 20k sample."""
    s = x[:20_000].astype(np.float64)
    s -= s.mean(0)
    ev = np.linalg.eigvalsh(s.T @ s / len(s))[::-1] if s.shape[1] <= 1024 else None
    if ev is None:      # 4096: the Gram matrix of a 4000-row sample (same nonzero spectrum)
        g = s[:4000] @ s[:4000].T / 4000
        ev = np.linalg.eigvalsh(g)[::-1]
        total = (s[:4000] ** 2).sum() / 4000
    else:
        total = ev.sum()
    return {str(m): round(float(ev[:m].sum() / total), 3) for m in ms}


def timed_sql(cur, sql):
    t = time.perf_counter()
    cur.execute(sql)
    return round(time.perf_counter() - t, 2)


def recall(got, truth):
    return statistics.mean(len(set(a) & set(b)) / K for a, b in zip(got, truth))


def load_set(cur, table, x, xq):
    """Tables TABLE (id, v imgfeat(dim)) holding x and TABLE_q holding the
    queries xq, ids 0.., vacuumed and analysed."""
    dim = x.shape[1]
    drop_set(cur, table)
    cur.execute(f'CREATE TABLE {table} (id int4, v imgfeat({dim}))')
    cur.execute(f'CREATE TABLE {table}_q (id int4, v imgfeat({dim}))')
    copy_binary(cur, table, x)
    copy_binary(cur, f'{table}_q', xq)
    cur.execute(f'VACUUM ANALYZE {table}')
    cur.execute(f'VACUUM ANALYZE {table}_q')


def prepare_set(cur, prefix, name, n, seed, x, xq, indexes, keep=False):
    """Loads set `name` (x, the queries xq) into table PREFIX_NAME (load_set)
    and builds indexes = {am: (suffix, 'USING ...')} as TABLE_SUFFIX, each
    CREATE INDEX timed, in one process and 2GB of maintenance_work_mem.
    keep (a kept cluster, the benches' --keep-dir): the table is
    PREFIX_NAME_N and stays; a later run with the same seed reuses it and
    every index there with the same definition (its build time is the
    earlier run's, kept in the table's comment: keep_builds). Returns
    (table, {am: index name}, {am: build seconds})."""
    table = f'{prefix}_{name}_{n}' if keep else f'{prefix}_{name}'
    kept = {}
    if keep and relation_exists(cur, table):
        cur.execute("SELECT obj_description(%s::regclass, 'pg_class')", (table,))
        kept = json.loads(cur.fetchone()[0] or '{}')
    if kept.get('seed') == seed:
        print(f'  {table} kept from an earlier run', flush=True)
    else:
        load_set(cur, table, x, xq)
        kept = {'seed': seed}
    cur.execute("SET maintenance_work_mem = '2GB'")
    cur.execute('SET max_parallel_maintenance_workers = 0')
    builds, names = dict(kept.get('other_builds', {})), {}
    for am, (suffix, using) in indexes.items():
        rel = names[am] = f'{table}_{suffix}'
        old = kept.get('indexes', {}).get(am)
        if old and old['using'] == using and relation_exists(cur, rel):
            builds[am] = old['build_s']
            continue
        cur.execute(f'DROP INDEX IF EXISTS {rel}')
        builds[am] = timed_sql(cur, f'CREATE INDEX {rel} ON {table} {using}')
        print(f'  {am} build {builds[am]} s', flush=True)
        kept.setdefault('indexes', {})[am] = {'using': using, 'build_s': builds[am]}
    if keep:
        cur.execute(f'COMMENT ON TABLE {table} IS %s', (json.dumps(kept),))
    return table, names, builds


def add_run_args(ap):
    """--alone and --keep-dir, which the lsh and kdtree benches share."""
    ap.add_argument('--alone', action='store_true',
                    help='time each method alone, all its queries in a row (twice, in reverse order the '
                         'second time), not round robin query by query (round_robin), in a session that '
                         'has read every page of its relations first (Sessions warm)')
    ap.add_argument('--keep-dir', help='a kept cluster in this directory (created, or restarted with this '
                                       "run's --shared-buffers): sets and their indexes stay for the next run "
                                       'with the same data, which times them again without building '
                                       '(prepare_set; the 1M runs)')


def timing_words(report):
    """How the report's methods were timed, for its markdown."""
    if report.get('alone'):
        return ('each method alone in one run (its queries in a row, twice: methods in a shuffled order, '
                'then reversed), in a session that has read every page of its relations first')
    return 'methods round robin in one run'


def keep_builds(cur, table, builds):
    """Adds builds made outside prepare_set (HNSW) to a kept table's comment."""
    cur.execute("SELECT obj_description(%s::regclass, 'pg_class')", (table,))
    kept = json.loads(cur.fetchone()[0] or '{}')
    kept['other_builds'] = {**kept.get('other_builds', {}), **builds}
    cur.execute(f'COMMENT ON TABLE {table} IS %s', (json.dumps(kept),))


def relation_exists(cur, name):
    cur.execute('SELECT to_regclass(%s) IS NOT NULL', (name,))
    return cur.fetchone()[0]


def drop_set(cur, table):
    cur.execute(f'DROP TABLE IF EXISTS {table}, {table}_q, {table}_pgv, {table}_pgv_q')


def query_sql(table):
    """The timed query: the vector comes from a table (an InitPlan), so there
    is no large literal to parse."""
    return f'SELECT id FROM {table} ORDER BY v <-> (SELECT v FROM {table}_q WHERE id = %s) LIMIT {K}'


def top_ids(cur, table, nq):
    """The ids query_sql returns for queries 0..nq-1, under the session's settings."""
    out = []
    for q in range(nq):
        cur.execute(query_sql(table), (q,))
        out.append([r[0] for r in cur.fetchall()])
    return out


def ensure_pgvector(who):
    """Builds and installs pgvector once (bench/pgvector.sh); its version,
    or None (then HNSW runs in process, faiss)."""
    p = subprocess.run([os.path.join(HERE, 'pgvector.sh')], capture_output=True, text=True)
    if p.returncode == 0:
        return PGVECTOR_VERSION
    print(f'{who}: no pgvector ({p.stderr.strip()}): HNSW is timed in process (faiss)')
    return None


class Hnsw:
    """HNSW (m 16, ef_construction 64) on the set: pgvector's, on a copy of
    the table as vector(dim), where pgvector is there and the dimension is
    at most 2000; else faiss IndexHNSWFlat in process (built on every core,
    searched on one). build() fills builds, sizes and relations."""

    def __init__(self, have_pgvector, dim, disabled):
        self.in_db = have_pgvector and dim <= PGVECTOR_MAX_DIMS and not disabled
        self.in_process = not self.in_db and not disabled
        self.index = None

    def build(self, cur, table, x, builds, sizes, relations, reuse=False):
        """reuse: the pgvector index is kept from an earlier run where it
        exists (builds then holds that run's build time)."""
        dim = x.shape[1]
        if self.in_db and reuse and relation_exists(cur, f'{table}_hnsw'):
            print('  pgvector hnsw kept from an earlier run', flush=True)
        elif self.in_db:
            cur.execute(f'DROP TABLE IF EXISTS {table}_pgv, {table}_pgv_q')
            cur.execute(f'CREATE TABLE {table}_pgv AS SELECT id, v::real[]::vector({dim}) AS v FROM {table}')
            cur.execute(f'CREATE TABLE {table}_pgv_q AS SELECT id, v::real[]::vector({dim}) AS v FROM {table}_q')
            cur.execute(f'VACUUM ANALYZE {table}_pgv')
            builds['hnsw'] = timed_sql(cur, f'CREATE INDEX {table}_hnsw ON {table}_pgv USING hnsw (v vector_l2_ops) '
                                            f'WITH (m = {HNSW_M}, ef_construction = {HNSW_EFC})')
            print(f'  pgvector hnsw build {builds["hnsw"]} s', flush=True)
        if self.in_db:
            cur.execute('SELECT pg_relation_size(%s)', (f'{table}_hnsw',))
            sizes['hnsw'] = cur.fetchone()[0]
            relations += [f'{table}_pgv', f'{table}_pgv_q', f'{table}_hnsw']
        elif self.in_process:
            # built on every core (one thread took 194 s at 20k x 4096), searched on one
            faiss.omp_set_num_threads(os.cpu_count())
            t = time.perf_counter()
            self.index = faiss.IndexHNSWFlat(dim, HNSW_M)
            self.index.hnsw.efConstruction = HNSW_EFC
            self.index.add(x)
            builds['faiss_hnsw_in_process_all_cores'] = round(time.perf_counter() - t, 2)
            faiss.omp_set_num_threads(1)
            print(f'  faiss hnsw build (in process, {os.cpu_count()} threads) '
                  f'{builds["faiss_hnsw_in_process_all_cores"]} s', flush=True)

    def add_methods(self, methods, sessions, table, xq):
        """hnsw_efN (pgvector) or faiss_hnsw_efN (in process) for each ef_search."""
        pgv_sql = (f'SELECT id FROM {table}_pgv ORDER BY v <-> (SELECT v FROM {table}_pgv_q WHERE id = %s) '
                   f'LIMIT {K}')
        for ef in HNSW_EFS:
            if self.in_db:
                methods[f'hnsw_ef{ef}'] = sessions.method([f'SET hnsw.ef_search = {ef}'], pgv_sql,
                                                          f'Index Scan using {table}_hnsw',
                                                          [f'{table}_pgv', f'{table}_pgv_q', f'{table}_hnsw'])
            elif self.index is not None:
                def run_hnsw(i, ef=ef):
                    self.index.hnsw.efSearch = ef
                    return self.index.search(xq[i:i + 1], K)[1][0].tolist()
                methods[f'faiss_hnsw_ef{ef}'] = run_hnsw


def hnsw40_of(med):
    """The name of the HNSW ef_search 40 method timed, and what it is."""
    if 'hnsw_ef40' in med:
        return 'hnsw_ef40', 'pgvector, in database'
    if 'faiss_hnsw_ef40' in med:
        return 'faiss_hnsw_ef40', 'faiss in process (pgvector indexes at most 2000 dims)'
    return None, None


class Sessions:
    """One autocommit session per method, its settings made once; method()
    checks the plan (EXPLAIN shows plan_node) and returns run(i): the ids
    the query gives for query i."""

    def __init__(self, dsn, warm=False):
        self.dsn = dsn
        self.conns = []
        self.warm = warm

    def method(self, settings, sql, plan_node, relations=()):
        """warm (Sessions(dsn, warm=True)): the session first reads every
        page of relations (pageinspect's get_raw_page), so that its backend
        has them mapped, as a long-lived backend would. A fresh backend
        takes a page fault at its first touch of each shared buffer: at 1M
        that tripled pgvector HNSW's time over 50 queries (28.7 ms against
        6.0 ms for the same queries again)."""
        c = psycopg2.connect(self.dsn)
        c.autocommit = True
        self.conns.append(c)
        cc = c.cursor()
        cc.execute("LOAD 'imgsearch'")
        for s in settings:
            cc.execute(s)
        cc.execute('EXPLAIN ' + sql, (0,))
        plan = '\n'.join(r[0] for r in cc.fetchall())
        assert plan_node in plan, plan
        if self.warm:
            cc.execute('CREATE EXTENSION IF NOT EXISTS pageinspect')
            for rel in relations:
                cc.execute('SELECT count(length(get_raw_page(%s, b::int))) '
                           'FROM generate_series(0, pg_relation_size(%s) / 8192 - 1) b', (rel, rel))

        def run(i):
            cc.execute(sql, (i,))
            return [r[0] for r in cc.fetchall()]
        return run

    def close(self):
        for c in self.conns:
            c.close()
        self.conns = []


def round_robin(methods, nq, seed, warmup=3, blocks=False):
    """Times every method on queries 0..nq-1: round robin, query by query,
    so that load from other jobs falls on every method alike, in an order
    shuffled for each query (a method timed right after one that streamed
    hundreds of MB through the caches, or after an in-process faiss call,
    would otherwise always pay for it); the first queries warm the caches.
    blocks: each method alone instead, all its queries in a row after its
    warm-up, in a shuffled order of methods and then again in the reverse
    order (drift in the machine's load falls on both ends alike); a method
    then runs with the caches as it left them, as on a server doing only
    that (at 1M, a flat pass between two queries streams 2 GB through the
    caches: round robin measured pgvector's HNSW 15x slower than alone).
    Returns ({method: [seconds]}, {method: [ids of query 0, 1, ...]},
    seconds in all)."""
    seconds = {m: [] for m in methods}
    answers = {m: [None] * nq for m in methods}
    order = np.random.default_rng(seed).permutation
    names = list(methods)
    t_q = time.perf_counter()

    def one(m, i, timed):
        t = time.perf_counter()
        ids = methods[m](i % nq)
        dt = time.perf_counter() - t
        if timed:
            seconds[m].append(dt)
            answers[m][i % nq] = ids

    if blocks:
        first = [names[j] for j in order(len(names))]
        for m in first + first[::-1]:
            for i in range(warmup + nq):
                one(m, i, i >= warmup)
    else:
        for i in range(warmup + nq):
            for m in (names[j] for j in order(len(names))):
                one(m, i, i >= warmup)
    return seconds, answers, time.perf_counter() - t_q


def debug1_notices(dsn, settings, sql, nq):
    """The DEBUG1 lines each of queries 0..nq-1 prints under settings
    (untimed): a list of lists of lines."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    conn.notices = collections.deque(maxlen=100)
    c = conn.cursor()
    c.execute("LOAD 'imgsearch'")
    for s in settings:
        c.execute(s)
    c.execute('SET client_min_messages = debug1')
    out = []
    for i in range(nq):
        conn.notices.clear()
        c.execute(sql, (i,))
        c.fetchall()
        out.append(list(conn.notices))
    conn.close()
    return out


def auto_picks(cur, sql, index_names):
    """The index the planner takes for sql under imgsearch.method = auto:
    index_names maps index relation names to method names."""
    cur.execute('EXPLAIN ' + sql, (0,))
    plan = '\n'.join(r[0] for r in cur.fetchall())
    m = re.search(r'Index Scan using (\w+)', plan)
    return index_names.get(m.group(1), m.group(1)) if m else 'seq scan'


def machine(version, pgvector, load_before):
    cpu = next((line.split(':', 1)[1].strip() for line in open('/proc/cpuinfo')
                if line.startswith('model name')), platform.processor())
    return {'cpu': cpu, 'cores': os.cpu_count(), 'postgres': version, 'faiss': faiss.__version__,
            'pgvector': pgvector,
            'load_average_1min_before_after': [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
            'note': 'shared machine: other jobs may run; methods are timed round robin'}


def fmt(v, digits=2):
    return '–' if v is None else (f'{v:.{digits}f}' if isinstance(v, float) else str(v))
