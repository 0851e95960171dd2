#!/usr/bin/python3
"""Soak: many clients change and search imgsearch indexes for a long time,
then every index is verified.

For every index method of the extension (pg_am rows that belong to
imgsearch: faissflat, kdtree and lsh today) it makes two tables: a small-vector one (100-d,
indexes for <-> and, where the method has the opclass, <=>) and a wide one
(2100-d: every vector spans pages). Then --clients clients (default 8) run
for --seconds (default 600), each in its own session, a random mix of:

  insert   1-3 rows (some with a NULL vector)
  delete   one row
  update   one row: a new vector (a new index entry), the note column only
           (a HOT update), or the vector to NULL
  search   in one REPEATABLE READ snapshot, the index's top 10 (index scan
           forced) against imgsearch.method = 'argsort' (sequential scan and
           sort): ids and distances must be equal
  vacuum   VACUUM of one table
  check    imgsearch_index_check of one index, while the others keep going

Afterwards, with the clients stopped: imgsearch_index_check of every index
(its row count must equal the table's), VACUUM (INDEX_CLEANUP ON: a plain
VACUUM may skip index vacuuming when few pages have dead rows), the check
again (no dead entries may be left), and for --queries sample queries per index (random
vectors and stored rows) the index's top 30 and its whole order against
argsort's.

lsh is approximate by default (a row its budget missed is never returned,
even by a scan that widens past it), so it is compared in its exact mode,
lsh.probes = lsh.candidates = 0, where it must equal argsort.

An error is any exception a client gets (whatever its SQLSTATE: the
workload is built so that none is expected: single-row writes, no lock
waits that can deadlock); a mismatch is any search that differs, any count
that disagrees. Both must be 0. The server log is scanned for crashes.

By default a throwaway cluster is made (initdb; as the postgres user when
run as root) with the installed extension, like bench/faissflat_bench.py;
--dsn uses a running server instead. Writes bench/results/soak.json.

    /usr/bin/python3 bench/soak_bench.py [--seconds 600] [--clients 8]
"""
import argparse
import collections
import datetime
import json
import os
import platform
import random
import subprocess
import sys
import threading
import time

import numpy as np
import psycopg2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faissflat_bench import Cluster, copy_binary  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SEARCH_K = 10
FINAL_K = 30


def vec_text(x):
    return '[' + ','.join('%.9g' % v for v in x) + ']'


class Table:
    def __init__(self, method, kind, dim, rows):
        self.method, self.dim, self.rows = method, dim, rows
        self.name = f'soak_{method}_{kind}'
        self.indexes = []  # (index name, operator)


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.ops = collections.Counter()
        self.errors = collections.Counter()
        self.error_samples = []
        self.mismatches = collections.Counter()
        self.mismatch_samples = []

    def op(self, kind):
        with self.lock:
            self.ops[kind] += 1

    def error(self, kind, exc):
        code = getattr(exc, 'pgcode', None) or type(exc).__name__
        with self.lock:
            self.errors[code] += 1
            if len(self.error_samples) < 20:
                self.error_samples.append({'op': kind, 'sqlstate': code, 'message': str(exc).strip()[:500]})

    def mismatch(self, kind, detail):
        with self.lock:
            self.mismatches[kind] += 1
            if len(self.mismatch_samples) < 20:
                self.mismatch_samples.append({'kind': kind, 'detail': detail[:4000]})


def imgsearch_methods(cur):
    cur.execute("""
        SELECT a.amname FROM pg_am a
        JOIN pg_depend d ON d.classid = 'pg_am'::regclass AND d.objid = a.oid
        JOIN pg_extension e ON d.refclassid = 'pg_extension'::regclass AND d.refobjid = e.oid
        WHERE e.extname = 'imgsearch' AND a.amtype = 'i' ORDER BY a.amname""")
    return [r[0] for r in cur.fetchall()]


def has_opclass(cur, method, opclass):
    cur.execute("""SELECT 1 FROM pg_opclass c JOIN pg_am a ON a.oid = c.opcmethod
                   WHERE a.amname = %s AND c.opcname = %s""", (method, opclass))
    return cur.fetchone() is not None


def setup(conn, methods, args, rng):
    cur = conn.cursor()
    tables = []
    for method in methods:
        for kind, dim, rows in (('small', args.dim, args.rows), ('wide', args.wide_dim, args.wide_rows)):
            t = Table(method, kind, dim, rows)
            cur.execute(f'DROP TABLE IF EXISTS {t.name}')
            cur.execute(f'CREATE TABLE {t.name} (id serial PRIMARY KEY, v imgfeat({dim}), note text)')
            copy_binary(cur, t.name, rng.random((rows, dim), dtype=np.float32))
            cur.execute(f"SELECT setval('{t.name}_id_seq', {rows})")
            cur.execute(f'CREATE INDEX {t.name}_l2 ON {t.name} USING {method} (v)')
            t.indexes.append((f'{t.name}_l2', '<->'))
            if kind == 'small' and has_opclass(cur, method, 'imgfeat_cosine_ops'):
                cur.execute(f'CREATE INDEX {t.name}_cos ON {t.name} USING {method} (v imgfeat_cosine_ops)')
                t.indexes.append((f'{t.name}_cos', '<=>'))
            cur.execute(f'VACUUM ANALYZE {t.name}')
            for index, op in t.indexes:
                cur.execute(f"SET imgsearch.method = '{method}'; SET enable_seqscan = off")
                cur.execute(f'EXPLAIN (COSTS OFF) SELECT id FROM {t.name} ORDER BY v {op} %s::imgfeat LIMIT 10',
                            (vec_text(rng.random(dim, dtype=np.float32)),))
                plan = '\n'.join(r[0] for r in cur.fetchall())
                cur.execute('RESET enable_seqscan; RESET imgsearch.method')
                if f'Index Scan using {index}' not in plan:
                    raise SystemExit(f'{index} is not used for ORDER BY v {op}:\n{plan}')
            tables.append(t)
    return tables


def top(cur, table, op, q, k, method):
    """ids and distances of the first k rows (k None: all), by the method's index or by argsort."""
    if method == 'argsort':
        cur.execute("SET LOCAL imgsearch.method = 'argsort'; SET LOCAL enable_seqscan = on; "
                    "SET LOCAL enable_indexscan = on")
    else:
        cur.execute(f"SET LOCAL imgsearch.method = '{method}'; SET LOCAL enable_seqscan = off")
        if method == 'lsh':
            cur.execute('SET LOCAL lsh.probes = 0; SET LOCAL lsh.candidates = 0')
    # every row: the index leaves out NULL vectors (a sort puts them last)
    where, limit = ('WHERE v IS NOT NULL', '') if k is None else ('', f'LIMIT {k}')
    cur.execute(f'SELECT id, v {op} %s::imgfeat FROM {table} {where} ORDER BY v {op} %s::imgfeat {limit}', (q, q))
    return cur.fetchall()


def same_answer(via_index, via_sort, limited):
    """Equal distances in the same order, and for each distance the same rows:
    rows of equal distance (float sums do tie) may come in any order, and at a
    LIMIT a tie may be cut at different rows. Returns (same, ids in a different order)."""
    def dist(r):
        return 'NaN' if r[1] != r[1] else r[1]

    if [dist(r) for r in via_index] != [dist(r) for r in via_sort]:
        return False, False
    groups = collections.defaultdict(lambda: (set(), set()))
    for r in via_index:
        groups[dist(r)][0].add(r[0])
    for r in via_sort:
        groups[dist(r)][1].add(r[0])
    last = dist(via_index[-1]) if via_index else None
    for d, (a, b) in groups.items():
        if a != b and not (limited and d == last):
            return False, False
    return True, [r[0] for r in via_index] != [r[0] for r in via_sort]


def compare(conn, stats, table, op, q, k, kind):
    """Index and argsort in one REPEATABLE READ snapshot; counts a mismatch."""
    cur = conn.cursor()
    cur.execute('BEGIN ISOLATION LEVEL REPEATABLE READ')
    try:
        via_index = top(cur, table.name, op, q, k, table.method)
        via_sort = top(cur, table.name, op, q, k, 'argsort')
    finally:
        cur.execute('COMMIT')
    same, tie = same_answer(via_index, via_sort, k is not None)
    if tie:
        stats.op('comparison with tied distances in another order')
    if not same:
        stats.mismatch(kind, f'{table.name} {op} k={k} q={q[:60]}...: index {via_index[:40]} ({len(via_index)}) '
                             f'argsort {via_sort[:40]} ({len(via_sort)})')
    return same


class Worker(threading.Thread):
    WEIGHTS = {'insert': 14, 'delete': 24, 'update': 20, 'search': 36, 'vacuum': 2, 'check': 4}

    def __init__(self, n, dsn, tables, stats, deadline, seed):
        super().__init__(daemon=True)
        self.n, self.dsn, self.tables, self.stats, self.deadline = n, dsn, tables, stats, deadline
        self.rng = np.random.default_rng(seed)
        self.random = random.Random(seed)
        self.conn = None

    def connect(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except psycopg2.Error:
                pass
        self.conn = psycopg2.connect(self.dsn)
        self.conn.autocommit = True
        self.conn.cursor().execute("SET statement_timeout = '300s'")

    def vec(self, table):
        return vec_text(self.rng.random(table.dim, dtype=np.float32))

    def random_id(self, cur, table):
        cur.execute(f'SELECT max(id) FROM {table.name}')
        top_id = cur.fetchone()[0] or 1
        return self.random.randint(1, top_id)

    def run(self):
        kinds, weights = zip(*self.WEIGHTS.items())
        while time.time() < self.deadline:
            kind = self.random.choices(kinds, weights)[0]
            table = self.random.choices(self.tables, [4 if 'small' in t.name else 1 for t in self.tables])[0]
            try:
                if self.conn is None or self.conn.closed:
                    self.connect()
                getattr(self, 'do_' + kind)(self.conn.cursor(), table)
                self.stats.op(kind)
            except psycopg2.Error as e:
                self.stats.error(kind, e)
                if self.conn is None or self.conn.closed:
                    self.conn = None
                    time.sleep(1)  # the server may be restarting
                else:
                    try:
                        self.conn.rollback()
                    except psycopg2.Error:
                        self.conn = None
        if self.conn is not None:
            self.conn.close()

    def do_insert(self, cur, table):
        rows = [None if self.random.random() < 0.05 else self.vec(table)
                for _ in range(self.random.randint(1, 3))]
        cur.execute(f'INSERT INTO {table.name} (v) VALUES ' + ','.join(['(%s::imgfeat)'] * len(rows)), rows)

    def do_delete(self, cur, table):
        cur.execute(f'DELETE FROM {table.name} WHERE id = (SELECT id FROM {table.name} WHERE id >= %s '
                    'ORDER BY id LIMIT 1)', (self.random_id(cur, table),))

    def do_update(self, cur, table):
        r = self.random.random()
        target = f'(SELECT id FROM {table.name} WHERE id >= %s ORDER BY id LIMIT 1)'
        rid = self.random_id(cur, table)
        if r < 0.5:
            cur.execute(f'UPDATE {table.name} SET v = %s::imgfeat WHERE id = {target}', (self.vec(table), rid))
        elif r < 0.9:
            cur.execute(f"UPDATE {table.name} SET note = md5(random()::text) WHERE id = {target}", (rid,))
        else:
            cur.execute(f'UPDATE {table.name} SET v = NULL WHERE id = {target}', (rid,))

    def do_search(self, cur, table):
        index, op = self.random.choice(table.indexes)
        compare(self.conn, self.stats, table, op, self.vec(table), SEARCH_K, 'search during the soak')

    def do_vacuum(self, cur, table):
        cur.execute(f'VACUUM {table.name}')

    def do_check(self, cur, table):
        index, _ = self.random.choice(table.indexes)
        cur.execute('SELECT * FROM imgsearch_index_check(%s)', (index,))
        cur.fetchall()


def final_checks(conn, tables, stats, args, rng):
    cur = conn.cursor()
    results = []
    # VACUUM can only remove rows no snapshot sees: stop autovacuum (an
    # ANALYZE holds a snapshot) and wait until no other session has one
    for t in tables:
        cur.execute(f'ALTER TABLE {t.name} SET (autovacuum_enabled = off)')
    for _ in range(600):
        cur.execute("""SELECT count(*) FROM pg_stat_activity
                       WHERE pid <> pg_backend_pid() AND (backend_xmin IS NOT NULL OR backend_xid IS NOT NULL)""")
        if cur.fetchone()[0] == 0:
            break
        time.sleep(0.1)
    for t in tables:
        for stage in ('after the soak', 'after VACUUM'):
            if stage == 'after VACUUM':
                # INDEX_CLEANUP ON: a plain VACUUM skips the indexes when few
                # pages have dead rows (leaving their entries, which is allowed)
                cur.execute(f'VACUUM (INDEX_CLEANUP ON) {t.name}')
            cur.execute(f'SELECT count(v), count(*) FROM {t.name}')
            with_vector, rows = cur.fetchone()
            for index, op in t.indexes:
                entry = {'index': index, 'stage': stage, 'rows': rows, 'rows_with_vector': with_vector}
                try:
                    cur.execute('SELECT method, pages, entries, free_slots, heap_rows, dead_entries '
                                'FROM imgsearch_index_check(%s)', (index,))
                    names = [d[0] for d in cur.description]
                    entry.update(dict(zip(names, cur.fetchone())))
                    stats.op('final check')
                except psycopg2.Error as e:
                    stats.error('final check', e)
                    entry['error'] = str(e).strip()
                    results.append(entry)
                    continue
                if entry['heap_rows'] != with_vector:
                    stats.mismatch('final check count', f'{index} {stage}: {entry}')
                if stage == 'after VACUUM' and entry['dead_entries'] != 0:
                    stats.mismatch('final check dead entries', f'{index} {stage}: {entry}')
                results.append(entry)

    comparisons = 0
    for t in tables:
        cur.execute(f'SELECT v::text FROM {t.name} WHERE v IS NOT NULL ORDER BY random() LIMIT %s',
                    (args.queries // 2,))
        stored = [r[0] for r in cur.fetchall()]
        queries = stored + [vec_text(rng.random(t.dim, dtype=np.float32))
                            for _ in range(args.queries - len(stored))]
        for index, op in t.indexes:
            for i, q in enumerate(queries):
                for k in (FINAL_K, None) if i < 3 else (FINAL_K,):
                    try:
                        compare(conn, stats, t, op, q, k, 'final comparison with argsort')
                        comparisons += 1
                    except psycopg2.Error as e:
                        stats.error('final comparison', e)
                        conn.rollback()
    return results, comparisons


def server_log_problems(cluster):
    if cluster is None:
        return None
    path = os.path.join(cluster.dir, 'log')
    try:
        with open(path, errors='replace') as f:
            lines = f.readlines()
    except OSError:
        return None
    bad = [l.strip() for l in lines if any(w in l for w in (
        'PANIC', 'TRAP', 'terminated by signal', 'was terminated', 'server process', 'corrupt'))]
    return {'lines': len(lines), 'problems': bad[:20], 'problem_count': len(bad)}


def machine():
    info = {'cores': os.cpu_count(), 'platform': platform.platform()}
    try:
        with open('/proc/cpuinfo') as f:
            info['cpu'] = next(l.split(':', 1)[1].strip() for l in f if l.startswith('model name'))
    except (OSError, StopIteration):
        pass
    return info


def busiest_processes():
    try:
        out = subprocess.run(['ps', '-eo', 'pcpu,etimes,comm', '--sort=-pcpu'], capture_output=True,
                             text=True, timeout=10).stdout.splitlines()
        return [l.strip() for l in out[1:8]]
    except (OSError, subprocess.SubprocessError):
        return []


def library_hash():
    """sha256 of the installed imgsearch.so: the install is shared, and a
    backend started later (autovacuum, a reconnect) loads whatever is there."""
    import hashlib
    try:
        libdir = subprocess.check_output(['pg_config', '--pkglibdir'], text=True).strip()
        with open(os.path.join(libdir, 'imgsearch.so'), 'rb') as f:
            return hashlib.sha256(f.read()).hexdigest()
    except (OSError, subprocess.SubprocessError):
        return None


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--seconds', type=float, default=600)
    p.add_argument('--clients', type=int, default=8)
    p.add_argument('--dim', type=int, default=100)
    p.add_argument('--rows', type=int, default=20000)
    p.add_argument('--wide-dim', type=int, default=2100)
    p.add_argument('--wide-rows', type=int, default=1500)
    p.add_argument('--queries', type=int, default=20, help='sample queries per index at the end')
    p.add_argument('--seed', type=int, default=1)
    p.add_argument('--dsn', help='a running server (default: a throwaway cluster)')
    p.add_argument('--out', default=os.path.join(HERE, 'results', 'soak.json'))
    args = p.parse_args()

    rng = np.random.default_rng(args.seed)
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = os.getloadavg()
    busy_before = busiest_processes()
    library_at_start = library_hash()
    cluster = None if args.dsn else Cluster('512MB')
    dsn = args.dsn or cluster.dsn
    stats = Stats()
    loads = []
    try:
        conn = psycopg2.connect(dsn)
        conn.autocommit = True
        cur = conn.cursor()
        cur.execute('CREATE EXTENSION IF NOT EXISTS imgsearch')
        cur.execute('SHOW server_version')
        server_version = cur.fetchone()[0]
        methods = imgsearch_methods(cur)
        if not methods:
            raise SystemExit('imgsearch has no index method')
        tables = setup(conn, methods, args, rng)
        print(f'soak: {args.clients} clients, {args.seconds:.0f} s, methods {", ".join(methods)}, '
              f'tables {", ".join(t.name for t in tables)}', flush=True)

        deadline = time.time() + args.seconds
        workers = [Worker(i, dsn, tables, stats, deadline, args.seed * 1000 + i) for i in range(args.clients)]
        t0 = time.time()
        for w in workers:
            w.start()
        next_report = t0 + 60
        while any(w.is_alive() for w in workers):
            time.sleep(1)
            if len(loads) == 0 or time.time() - t0 >= 10 * len(loads):
                loads.append(round(os.getloadavg()[0], 2))
            if time.time() >= next_report:
                next_report += 60
                with stats.lock:
                    print(f'  {time.time() - t0:5.0f} s: {sum(stats.ops.values())} ops, '
                          f'{sum(stats.errors.values())} errors, {sum(stats.mismatches.values())} mismatches',
                          flush=True)
        soak_s = time.time() - t0
        for w in workers:
            w.join()
        print('soak done; final checks', flush=True)
        t1 = time.time()
        checks, comparisons = final_checks(conn, tables, stats, args, rng)
        final_s = time.time() - t1
        table_rows = {}
        for t in tables:
            cur.execute(f'SELECT count(*), count(v), max(id) FROM {t.name}')
            rows, with_vector, max_id = cur.fetchone()
            table_rows[t.name] = {'dim': t.dim, 'rows_at_start': t.rows, 'rows_at_end': rows,
                                  'rows_with_vector_at_end': with_vector, 'ids_used': max_id}
        conn.close()
    finally:
        log = server_log_problems(cluster)
        if cluster:
            cluster.stop()

    errors = sum(stats.errors.values())
    mismatches = sum(stats.mismatches.values())
    if log and log['problem_count']:
        errors += log['problem_count']
    result = {
        'benchmark': 'soak: concurrent insert/delete/update/search/VACUUM/index check, then verification',
        'date': started.isoformat(timespec='seconds'),
        'machine': dict(machine(), postgres=server_version,
                        load_average_1min_before_after=[round(load_before[0], 2), round(os.getloadavg()[0], 2)],
                        load_average_1min_during={'samples_every_10s': loads,
                                                  'mean': round(float(np.mean(loads)), 2) if loads else None,
                                                  'max': max(loads) if loads else None},
                        busiest_processes_before=busy_before,
                        note='2 cores shared with other work; the load includes the soak\'s own 8 clients'),
        'config': {'seconds': args.seconds, 'clients': args.clients, 'methods': methods,
                   'weights': Worker.WEIGHTS, 'search_k': SEARCH_K, 'final_k': FINAL_K,
                   'final_queries_per_index': args.queries, 'seed': args.seed},
        'extension_library': {'sha256_at_start': library_at_start, 'sha256_at_end': library_hash()},
        'tables': table_rows,
        'soak_seconds': round(soak_s, 1),
        'final_seconds': round(final_s, 1),
        'operations': dict(stats.ops),
        'operations_per_second': round(sum(v for k, v in stats.ops.items()
                                           if k in Worker.WEIGHTS) / soak_s, 1),
        'errors': errors,
        'errors_by_sqlstate': dict(stats.errors),
        'error_samples': stats.error_samples,
        'mismatches': mismatches,
        'mismatches_by_kind': dict(stats.mismatches),
        'mismatch_samples': stats.mismatch_samples,
        'searches_compared_during_soak': stats.ops['search'],
        'final_comparisons_with_argsort': comparisons,
        'final_index_checks': checks,
        'server_log': log,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(result, f, indent=2, default=str)
        f.write('\n')
    print(json.dumps({k: result[k] for k in ('soak_seconds', 'operations', 'operations_per_second', 'errors',
                                              'errors_by_sqlstate', 'mismatches', 'mismatches_by_kind',
                                              'final_comparisons_with_argsort')}, indent=2))
    print(f'wrote {args.out}')
    return 0 if errors == 0 and mismatches == 0 else 1


if __name__ == '__main__':
    sys.exit(main())
