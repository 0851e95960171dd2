#!/usr/bin/python3
"""Filtered top-k benchmark: `WHERE bucket < s ORDER BY v <-> q LIMIT 30` at
filter selectivities 100% (no filter), 50%, 10%, 1% and 0.1%, for the plan
imgsearch.method = auto picks beside every plan it could pick and pgvector's
HNSW with and without its iterative scan.

Data (bench/bench_data.py through bench_common.make_set; queries held out):
demo512 (CNN-like, the demo features' spectrum) and cnn512 (CNN-like,
lambda_i ~ 1/i), 100k x 512 each, plus a column `bucket int`, uniform in
0..999 (seeded), so that `bucket < s` keeps s / 1000 of the rows.

Methods (one session each, plan checked by EXPLAIN; timed round robin query
by query after warm-up, every relation prewarmed):
  auto             imgsearch.method = auto: the plan the planner picks (named
                   in the table: an index method or argsort)
  faissflat        imgsearch.method = faissflat (exact)
  kdtree_exact     imgsearch.method = kdtree, kdtree.max_leaves = 0
  kdtree_leaves32  kdtree.max_leaves = 32 (a budget)
  lsh_default      imgsearch.method = lsh at its default budget
  lsh_exact        lsh.probes = 0, lsh.candidates = 0
  argsort          imgsearch.method = argsort: sequential scan, filter, sort
  hnsw             pgvector 0.8.6 HNSW (m 16, ef_construction 64,
                   ef_search 40) on a vector(512) copy of the table
                   (enable_seqscan = off: pgvector's costs sort at 10%)
  hnsw_relaxed     the same, hnsw.iterative_scan = relaxed_order
  hnsw_strict      the same, hnsw.iterative_scan = strict_order
For each: rows returned (mean, min), recall@30 against the exact filtered
answer (numpy, float64; of min(30, qualifying rows)), median and p95 ms.
The ratio printed is auto's median over the best median of the plans auto
chooses between (faissflat, kdtree_exact, lsh_default, argsort: the index
methods at their default settings and the sort); the target is <= 1.5.

    /usr/bin/python3 bench/filtered_bench.py [--sets demo512,cnn512] [--queries 30] [--quick]
                                             [--install-lock /var/tmp/imgsearch-install.lock]
    /usr/bin/python3 bench/filtered_bench.py --keep ...    # leave the cluster up (prints its dsn)
    /usr/bin/python3 bench/filtered_bench.py --dsn DSN --plans-only --out before.json
                        # auto's plans on the tables an earlier --keep run left (e.g. under another build)
    /usr/bin/python3 bench/filtered_bench.py --render bench/results/filtered.json --before before.json

Writes bench/results/filtered.json and filtered.md (--out). The default run
(both sets, HNSW builds included) took 18 minutes on the 2-core development
machine at a load average of 3-5 from other jobs; demo512 alone took 5
minutes on a quieter machine. --quick: 10k rows, 5 queries, about a minute.
"""
import argparse
import datetime
import fcntl
import json
import os
import re
import signal
import subprocess
import sys

import numpy as np
import psycopg2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import (K, Sessions, ensure_pgvector, load_set, machine, make_set,  # noqa: E402
                          parse_sets, round_robin, timed_sql)
from bench_cluster import machine_state  # noqa: E402
from faissflat_bench import Cluster, summary  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
BUCKETS = 1000
# bucket < s: s / 1000 of the rows; None: no filter
FILTERS = [None, 500, 100, 10, 1]
HNSW_M, HNSW_EFC, HNSW_EFS = 16, 64, 40
CHOICES = ['faissflat', 'kdtree_exact', 'lsh_default', 'argsort']   # what auto picks between
TARGET_RATIO = 1.5


def selectivity_name(s):
    return '100%' if s is None else f'{100 * s / BUCKETS:g}%'


def where(s):
    return '' if s is None else f'WHERE bucket < {s} '


def load(cur, table, x, xq, seed, have_pgvector):
    """The set as TABLE (id, v, bucket) and TABLE_q, its three imgsearch
    indexes and pgvector's HNSW on TABLE_pgv; returns build seconds."""
    load_set(cur, table, x, xq)
    cur.execute('SELECT setseed(%s)', (seed / 10000,))
    # a volatile default rewrites the table: one random bucket per row
    cur.execute(f'ALTER TABLE {table} ADD COLUMN bucket int4 NOT NULL DEFAULT floor(random() * {BUCKETS})')
    cur.execute(f'VACUUM ANALYZE {table}')
    builds = {}
    for am in ('faissflat', 'kdtree', 'lsh'):
        builds[am] = timed_sql(cur, f'CREATE INDEX {table}_{am} ON {table} USING {am} (v)')
        print(f'  {am} build {builds[am]} s', flush=True)
    if have_pgvector:
        dim = x.shape[1]
        cur.execute(f'CREATE TABLE {table}_pgv AS SELECT id, bucket, v::real[]::vector({dim}) AS v FROM {table}')
        cur.execute(f'CREATE TABLE {table}_pgv_q AS SELECT id, v::real[]::vector({dim}) AS v FROM {table}_q')
        cur.execute(f'VACUUM ANALYZE {table}_pgv')
        builds['hnsw'] = timed_sql(cur, f'CREATE INDEX {table}_hnsw ON {table}_pgv USING hnsw (v vector_l2_ops) '
                                        f'WITH (m = {HNSW_M}, ef_construction = {HNSW_EFC})')
        print(f'  hnsw build {builds["hnsw"]} s', flush=True)
    return builds


def prewarm(cur, table, have_pgvector):
    rels = [table, f'{table}_q'] + [f'{table}_{am}' for am in ('faissflat', 'kdtree', 'lsh')]
    if have_pgvector:
        rels += [f'{table}_pgv', f'{table}_pgv_q', f'{table}_hnsw']
    for rel in rels:
        cur.execute('SELECT pg_prewarm(%s)', (rel,))


def auto_plan(cur, table, s):
    """What imgsearch.method = auto runs for the query: the index method, or
    argsort (a sort), and the plan's first lines."""
    cur.execute('SET imgsearch.method = auto')
    cur.execute('EXPLAIN ' + query(table, s), (0,))
    plan = [r[0] for r in cur.fetchall()]
    text = '\n'.join(plan)
    m = re.search(rf'Index Scan using {table}_(\w+)', text)
    return (m.group(1) if m else ('argsort' if 'Sort' in text else 'other')), plan


def query(table, s):
    return (f'SELECT id FROM {table} {where(s)}ORDER BY v <-> (SELECT v FROM {table}_q WHERE id = %s) '
            f'LIMIT {K}')


def methods_for(sessions, table, s, have_pgvector):
    sql = query(table, s)
    pgv_sql = (f'SELECT id FROM {table}_pgv {where(s)}ORDER BY v <-> (SELECT v FROM {table}_pgv_q WHERE id = %s) '
               f'LIMIT {K}')
    idx = f'Index Scan using {table}_'
    m = {
        'auto': sessions.method([], sql, 'Limit'),
        'faissflat': sessions.method(['SET imgsearch.method = faissflat'], sql, idx + 'faissflat'),
        'kdtree_exact': sessions.method(['SET imgsearch.method = kdtree'], sql, idx + 'kdtree'),
        'kdtree_leaves32': sessions.method(['SET imgsearch.method = kdtree', 'SET kdtree.max_leaves = 32'],
                                           sql, idx + 'kdtree'),
        'lsh_default': sessions.method(['SET imgsearch.method = lsh'], sql, idx + 'lsh'),
        'lsh_exact': sessions.method(['SET imgsearch.method = lsh', 'SET lsh.probes = 0',
                                      'SET lsh.candidates = 0'], sql, idx + 'lsh'),
        'argsort': sessions.method(['SET imgsearch.method = argsort'], sql, 'Sort'),
    }
    if have_pgvector:
        for name, mode in (('hnsw', None), ('hnsw_relaxed', 'relaxed_order'), ('hnsw_strict', 'strict_order')):
            # pgvector's planner would sort at selective filters: the index is what is measured
            settings = [f'SET hnsw.ef_search = {HNSW_EFS}', 'SET enable_seqscan = off']
            if mode:
                settings.append(f'SET hnsw.iterative_scan = {mode}')
            m[name] = sessions.method(settings, pgv_sql, f'Index Scan using {table}_hnsw')
    return m


def truth(x, xq, buckets, s):
    """The exact filtered answer of each query: ids of the K nearest rows
    with bucket < s (all rows for None), and how many rows qualify."""
    ids = np.arange(len(x)) if s is None else np.flatnonzero(buckets < s)
    xs = x[ids].astype(np.float64)
    out = []
    for q in xq.astype(np.float64):
        d = ((xs - q) ** 2).sum(1)
        top = np.argsort(d, kind='stable')[:K]
        out.append(ids[top].tolist())
    return out, len(ids)


def bench_set(conn, dsn, name, n, args, seed, have_pgvector):
    cur = conn.cursor()
    table = f'f_{name}'
    print(f'{name}: {n} rows', flush=True)
    x, xq = make_set(name, n, args.queries, seed)
    builds = {}
    if not args.reuse:
        builds = load(cur, table, x, xq, seed, have_pgvector)
    cur.execute(f'SELECT id, bucket FROM {table} ORDER BY id')
    rows = cur.fetchall()
    buckets = np.array([b for _, b in rows])
    assert [i for i, _ in rows] == list(range(n)), 'ids are 0..n-1'
    result = {'set': name, 'n': n, 'dim': x.shape[1], 'builds_s': builds, 'filters': []}
    if args.plans_only:
        for s in FILTERS:
            pick, plan = auto_plan(cur, table, s)
            print(f'  {selectivity_name(s)}: auto takes {pick}', flush=True)
            result['filters'].append({'selectivity': selectivity_name(s), 'auto_takes': pick, 'auto_plan': plan})
        return result
    prewarm(cur, table, have_pgvector)
    for s in FILTERS:
        want, qualifying = truth(x, xq, buckets, s)
        pick, plan = auto_plan(cur, table, s)
        sessions = Sessions(dsn)
        methods = methods_for(sessions, table, s, have_pgvector)
        state = machine_state()
        seconds, answers, _ = round_robin(methods, args.queries, seed + (s or 0))
        sessions.close()
        per = {}
        for m in methods:
            got = answers[m]
            expect = [min(K, qualifying)] * len(got)
            rec = [len(set(a) & set(t)) / max(len(t), 1) for a, t in zip(got, want)]
            per[m] = {**summary(seconds[m]),
                      'rows_mean': round(float(np.mean([len(a) for a in got])), 2),
                      'rows_min': min(len(a) for a in got),
                      'rows_expected': expect[0],
                      'recall_at_30': round(float(np.mean(rec)), 4)}
        best = min(CHOICES, key=lambda m: per[m]['median'])
        best_any = min((m for m in per if m != 'auto'), key=lambda m: per[m]['median'])
        r = {'selectivity': selectivity_name(s), 'filter': where(s).strip() or 'none',
             'qualifying_rows': qualifying, 'auto_takes': pick, 'auto_plan': plan,
             'best_choice': best, 'auto_over_best_choice': round(per['auto']['median'] / per[best]['median'], 2),
             'fastest_of_all': best_any, 'methods': per, 'machine_during': state}
        result['filters'].append(r)
        print(f"  {r['selectivity']}: auto takes {pick}, {per['auto']['median']} ms; best choice {best} "
              f"{per[best]['median']} ms; ratio {r['auto_over_best_choice']}", flush=True)
        print('    ' + '; '.join(f"{m} {v['median']} ms rows {v['rows_mean']} (min {v['rows_min']}) "
                                 f"recall {v['recall_at_30']}" for m, v in per.items()), flush=True)
    return result


def markdown(report):
    out = ['# Filtered top-k (bench/filtered_bench.py)', '',
           f"{report['date']}, {report['machine']['cpu']}, {report['machine']['cores']} cores, "
           f"PostgreSQL {report['machine']['postgres']}, pgvector {report['machine']['pgvector']}; "
           f"load average before/after {report['machine']['load_average_1min_before_after']}. "
           'The machine is shared: other engineers were building and testing on it during the run '
           '(the busiest processes at the start of each selectivity are in filtered.json, machine_during). '
           f"`WHERE bucket < s ORDER BY v <-> q LIMIT {K}`, L2, held-out queries, one query at a time, "
           f"methods round robin, every relation prewarmed; {report['queries']} queries per cell. "
           'rows: mean (min) rows returned; recall@30 against the exact filtered answer.', '']
    if report.get('note'):
        out += [report['note'], '']
    for st in report['sets']:
        out += [f"## {st['set']} ({st['n']} x {st['dim']})", '']
        if st['builds_s']:
            out += ['Builds (s): ' + ', '.join(f'{k} {v}' for k, v in st['builds_s'].items()), '']
        before = (report.get('before') or {}).get(st['set'])
        out += ['| selectivity | auto takes | auto ms | best choice | its ms | auto / best | fastest of all |' +
                (' before: auto took | its ms / best |' if before else ''),
                '|---|---|---|---|---|---|---|' + ('---|---|' if before else '')]
        for r in st['filters']:
            if 'methods' not in r:
                continue
            b = r['best_choice']
            line = (f"| {r['selectivity']} | {r['auto_takes']} | {r['methods']['auto']['median']} | {b} | "
                    f"{r['methods'][b]['median']} | {r['auto_over_best_choice']} | {r['fastest_of_all']} "
                    f"{r['methods'][r['fastest_of_all']]['median']} |")
            if before:
                took = before.get(r['selectivity'])
                timed = {'kdtree': 'kdtree_exact', 'lsh': 'lsh_default'}.get(took, took)
                ms = r['methods'].get(timed, {}).get('median')
                line += f" {took} | {round(ms / r['methods'][b]['median'], 2) if ms else '–'} |"
            out.append(line)
        out.append('')
        if before:
            out += ['before: the plan the previous build (main before this change) chose on the same tables '
                    '(--plans-only with that library), timed in this run as the forced method.', '']
        for r in st['filters']:
            if 'methods' not in r:
                continue
            out += [f"### {st['set']}, selectivity {r['selectivity']} ({r['filter']}; {r['qualifying_rows']} rows "
                    'qualify)', '', '| method | median ms | p95 ms | rows mean (min) | recall@30 |',
                    '|---|---|---|---|---|']
            for m, v in r['methods'].items():
                out.append(f"| {m} | {v['median']} | {v['p95']} | {v['rows_mean']} ({v['rows_min']}) | "
                           f"{v['recall_at_30']} |")
            out.append('')
    return '\n'.join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--sets', default='demo512,cnn512', help='comma-separated NAME or NAME:N')
    ap.add_argument('--queries', type=int, default=30, help='timed queries per method and selectivity')
    ap.add_argument('--quick', action='store_true', help='a smoke test: 10k rows, 5 queries')
    ap.add_argument('--no-hnsw', action='store_true', help='no pgvector HNSW')
    ap.add_argument('--dsn', help='use this running server instead of a throwaway cluster')
    ap.add_argument('--keep', action='store_true', help='leave the throwaway cluster running')
    ap.add_argument('--reuse', action='store_true', help='the tables are there (an earlier --keep run)')
    ap.add_argument('--plans-only', action='store_true', help="only auto's plans (with --reuse)")
    ap.add_argument('--install-lock', metavar='FILE',
                    help='under an exclusive lock on FILE, install this checkout (make install) and start the '
                         'cluster, which loads the library once: on a machine where other jobs install their '
                         'builds of imgsearch (e.g. /var/tmp/imgsearch-install.lock)')
    ap.add_argument('--shared-buffers', default='2GB')
    ap.add_argument('--out', default=os.path.join(HERE, 'results', 'filtered.json'))
    ap.add_argument('--before', metavar='JSON',
                    help='a --plans-only report of an earlier build on the same tables: what auto took then, '
                         'timed in this run')
    ap.add_argument('--render', metavar='JSON', help='only rewrite the report JSON (and its .md), with --before')
    ap.add_argument('--note', help='a line on how the run was made, for the report')
    args = ap.parse_args()
    if args.render:
        with open(args.render) as f:
            report = json.load(f)
        report['before'] = before_plans(args.before) or report.get('before')
        report['note'] = args.note or report.get('note')
        write_report(report, args.render)
        return 0
    if args.quick:
        args.queries = min(args.queries, 5)
    if args.plans_only:
        args.reuse = True
    plan = parse_sets(ap, args.sets, 10 if args.quick else 1)
    pgvector = None if args.no_hnsw else ensure_pgvector('filtered_bench')
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    load_before = os.getloadavg()
    cluster = None
    if not args.dsn:
        lock = open(args.install_lock, 'a') if args.install_lock else None
        if lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            subprocess.run(['make', '-s', '-C', os.path.dirname(HERE), 'install'], check=True,
                           stdout=subprocess.DEVNULL)
        cluster = Cluster(args.shared_buffers)
        # the library loads once, in the postmaster: another job's install during the run changes nothing
        with open(os.path.join(cluster.data, 'postgresql.conf'), 'a') as f:
            f.write("shared_preload_libraries = 'imgsearch'\n")
        cluster.run(cluster.bin('pg_ctl'), '-D', cluster.data, '-m', 'fast', '-w', 'restart')
        if lock:
            lock.close()
    dsn = args.dsn or cluster.dsn
    try:
        conn = psycopg2.connect(dsn)
        conn.autocommit = True
        cur = conn.cursor()
        for ext in ['imgsearch', 'pg_prewarm'] + (['vector'] if pgvector else []):
            cur.execute(f'CREATE EXTENSION IF NOT EXISTS {ext}')
        cur.execute('SHOW server_version')
        version = cur.fetchone()[0]
        runs = [bench_set(conn, dsn, name, n, args, seed=6000 + i, have_pgvector=bool(pgvector))
                for i, (name, n) in enumerate(plan)]
        conn.close()
    finally:
        if cluster and args.keep:
            print(f'cluster left running: {cluster.dsn} (stop: pg_ctl -D {cluster.data} stop)')
        elif cluster:
            cluster.stop()
    if args.plans_only:
        print(json.dumps([{r['set']: [(f['selectivity'], f['auto_takes']) for f in r['filters']]} for r in runs]))
        with open(args.out, 'w') as f:
            json.dump({'plans_only': True, 'sets': runs}, f, indent=2)
            f.write('\n')
        print(f'wrote {args.out}')
        return 0
    report = {
        'before': before_plans(args.before),
        'note': args.note,
        'benchmark': f'filtered top-k: WHERE bucket < s ORDER BY v <-> q LIMIT {K}, L2; the plan auto picks '
                     'beside the plans it picks between, budgets and pgvector HNSW',
        'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'machine': machine(version, pgvector, load_before),
        'quick': args.quick, 'queries': args.queries, 'target_auto_over_best': TARGET_RATIO,
        'sets': runs,
    }
    write_report(report, args.out)
    missed = [f"{st['set']} {r['selectivity']}: {r['auto_over_best_choice']}" for st in runs for r in st['filters']
              if r.get('auto_over_best_choice', 0) > TARGET_RATIO]
    print('auto within 1.5x of the best plan everywhere' if not missed else 'over 1.5x: ' + ', '.join(missed))
    return 0


def before_plans(path):
    """{set: {selectivity: method}} from a --plans-only report (the plans an
    earlier build of imgsearch chose on the same tables), or None."""
    if not path:
        return None
    with open(path) as f:
        return {st['set']: {r['selectivity']: r['auto_takes'] for r in st['filters']} for st in json.load(f)['sets']}


def write_report(report, out):
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, 'w') as f:
        json.dump(report, f, indent=2, default=str)
        f.write('\n')
    md = os.path.splitext(out)[0] + '.md'
    with open(md, 'w') as f:
        f.write(markdown(report) + '\n')
    print(f'wrote {out} and {md}')


if __name__ == '__main__':
    sys.exit(main())
