#!/usr/bin/python3
"""How lsh's cost estimate tracks what its scans do (issue 24: the planner
overpriced lsh 3-5x): the bounded round priced from the build's sample
searches (LshMeta.sample_*) against the constants it had before (the same
index rebuilt with lsh.error_bound = 0, which skips the sample), beside
faissflat's codes scan, the exact plan `auto` weighs it against.

For each set (bench_common.SETS, 100k x 512 by default; held-out queries):
the planner's total cost of a forced LIMIT 30, the measured median, p95 and
p99 ms over the queries (after warm-up, every relation prewarmed, one
session), and planner cost per measured ms (equal across methods would mean
`auto` ranks them as they run). The lsh rows also give the scans' buckets
probed, entries estimated and exact distances (their DEBUG1 line, medians),
and the build's sample searches' means.

    /usr/bin/python3 bench/lsh_cost_bench.py [--sets demo512,cnn512,hard512] [--queries 30]
                                             [--out bench/results/lsh_cost.json]

Writes the JSON and a .md beside it.
"""
import argparse
import datetime
import json
import os
import re
import statistics
import sys
import time

import numpy as np
import psycopg2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import load_set, machine, make_set, parse_sets  # noqa: E402
from faissflat_bench import Cluster  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SCAN_LINE = re.compile(r'(\d+) of \d+ buckets probed, (\d+) entries scanned, (\d+) exact')
SAMPLE_LINE = re.compile(r'probed ([\d.]+) of (\d+) buckets and computed (\d+) exact')


def feat(v):
    return '[' + ','.join(repr(float(x)) for x in v) + ']'


def debug1(conn, cur, sql, args=()):
    """Runs sql with DEBUG1 messages on; returns them."""
    cur.execute('SET client_min_messages = debug1')
    del conn.notices[:]
    cur.execute(sql, args)
    lines = list(conn.notices)
    cur.execute('SET client_min_messages = notice')
    return lines


def timed(conn, cur, table, method, queries):
    """Forced to method: cost of a LIMIT 30, latencies, and lsh's scan counts."""
    cur.execute(f"SET imgsearch.method = '{method}'")
    sql = f'SELECT id FROM {table} ORDER BY v <-> %s::imgfeat LIMIT 30'
    cur.execute('EXPLAIN (FORMAT JSON) ' + sql, (queries[0],))
    # imgsearch.method naming a method takes disable_cost off its plan (index_cost.c)
    cost = cur.fetchone()[0][0]['Plan']['Total Cost'] + 1e10
    for q in queries[:3]:
        cur.execute(sql, (q,))
        cur.fetchall()
    ms, counts = [], []
    for q in queries:
        t0 = time.perf_counter()
        cur.execute(sql, (q,))
        cur.fetchall()
        ms.append((time.perf_counter() - t0) * 1000)
    if method == 'lsh':   # untimed: the counts
        for q in queries:
            for line in debug1(conn, cur, sql + ' /* counts */', (q,)):
                m = SCAN_LINE.search(line)
                if m:
                    counts.append([int(x) for x in m.groups()])
    med = statistics.median(ms)
    r = {'cost': round(cost, 1), 'median_ms': round(med, 2), 'p95_ms': round(float(np.percentile(ms, 95)), 2),
         'p99_ms': round(float(np.percentile(ms, 99)), 2), 'cost_per_ms': round(cost / med, 1)}
    if counts:
        c = np.array(counts)
        r.update(buckets=float(np.median(c[:, 0])), entries=float(np.median(c[:, 1])), keys=float(np.median(c[:, 2])))
    cur.execute("SET imgsearch.method = 'auto'")
    return r


def run_set(conn, cur, name, n, nq):
    x, xq = make_set(name, n, nq, 7)
    table = f'lc_{name}'
    load_set(cur, table, x, xq)
    queries = [feat(v) for v in xq]
    cur.execute(f'CREATE INDEX {table}_ff ON {table} USING faissflat (v)')
    out = {'set': name, 'n': n}
    for variant, eb in (('sample', '2.5'), ('constants', '0')):
        cur.execute(f'DROP INDEX IF EXISTS {table}_lsh')
        cur.execute(f'SET lsh.error_bound = {eb}')
        lines = debug1(conn, cur, f'CREATE INDEX {table}_lsh ON {table} USING lsh (v)')
        cur.execute('RESET lsh.error_bound')
        for rel in (table, f'{table}_lsh', f'{table}_ff'):
            cur.execute('SELECT pg_prewarm(%s)', (rel,))
        r = timed(conn, cur, table, 'lsh', queries)
        for line in lines:
            m = SAMPLE_LINE.search(line)
            if m:
                r['sample_buckets'], r['sample_keys'] = float(m.group(1)), float(m.group(3))
        out[f'lsh, {variant}'] = r
        print(name, variant, r, flush=True)
    out['faissflat'] = timed(conn, cur, table, 'faissflat', queries)
    print(name, 'faissflat', out['faissflat'], flush=True)
    cur.execute(f'DROP TABLE {table}, {table}_q')
    return out


def render(report):
    lines = ['# lsh priced from its build\'s sample searches (bench/lsh_cost_bench.py)', '',
             f"{report['date']}, {report['machine']['cpu']}, {report['machine']['cores']} cores, "
             f"PostgreSQL {report['machine']['postgres']}, load average before/after "
             f"{report['machine']['load_average_1min_before_after']}; {report['queries']} held-out queries per set, k = 30, "
             'forced to each method, one session, relations prewarmed. Cost: the planner\'s total for the '
             'LIMIT 30. Equal cost per ms across methods means `auto` ranks them as they run.', '',
             '| set | plan | cost | median / p95 / p99 ms | cost per ms | buckets, entries, exact distances '
             '(scans, medians) | sample searches: buckets, exact distances |',
             '|---|---|---|---|---|---|---|']
    for s in report['sets']:
        for plan in ('lsh, constants', 'lsh, sample', 'faissflat'):
            r = s[plan]
            scans = f"{r['buckets']:g}, {r['entries']:g}, {r['keys']:g}" if 'keys' in r else '-'
            sample = f"{r['sample_buckets']:g}, {r['sample_keys']:g}" if 'sample_keys' in r else '-'
            lines.append(f"| {s['set']} {s['n'] // 1000}k | {plan} | {r['cost']} | {r['median_ms']} / {r['p95_ms']} / "
                         f"{r['p99_ms']} | {r['cost_per_ms']} | {scans} | {sample} |")
    lines += ['', f"Machine during the run: {report['machine_state']}", '']
    return '\n'.join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--sets', default='demo512:100000,cnn512:100000,hard512:100000')
    ap.add_argument('--queries', type=int, default=30)
    ap.add_argument('--out', default=os.path.join(HERE, 'results', 'lsh_cost.json'))
    args = ap.parse_args()
    load_before = os.getloadavg()
    cluster = Cluster('2GB')
    try:
        conn = psycopg2.connect(cluster.dsn)
        conn.autocommit = True
        cur = conn.cursor()
        cur.execute('CREATE EXTENSION imgsearch')
        cur.execute('CREATE EXTENSION pg_prewarm')
        cur.execute('SHOW server_version')
        version = cur.fetchone()[0]
        sets = [run_set(conn, cur, name, n, args.queries) for name, n in parse_sets(ap, args.sets)]
        conn.close()
    finally:
        cluster.stop()
    from bench_cluster import machine_state
    report = {'benchmark': 'lsh_cost_bench.py', 'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
              'machine': machine(version, None, load_before), 'queries': args.queries, 'machine_state': machine_state(), 'sets': sets}
    with open(args.out, 'w') as f:
        json.dump(report, f, indent=1)
    with open(os.path.splitext(args.out)[0] + '.md', 'w') as f:
        f.write(render(report))
    print('wrote', args.out)


if __name__ == '__main__':
    main()
