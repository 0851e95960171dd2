#!/usr/bin/env python3
"""lsh CREATE INDEX on one thread and on two (issue 24 item 3).

The build trains (k-means on a sample) and hashes (every vector to its
bucket and sketch) on threads inside the backend (docs/methods.md "Parallel
builds"): as many as PostgreSQL plans for a parallel build of the index,
here set through the table's parallel_workers (0: one thread; 1: two). Each
set is loaded once; builds alternate 1 thread, 2 threads, `--repeat` times,
and the median of each is compared. The answers of the two indexes under a
small budget (lsh.probes = 1, lsh.candidates = 30) are checked to be the
same rows in the same order (the hash is the same bytes).

  /usr/bin/python3 bench/parallel_build_bench.py [--sets demo512,hard512:100000] [--repeat 3]

Target (issue 24): lsh at 1M builds at least 1.7x faster on 2 cores.
"""
import argparse
import json
import os
import statistics

from bench_cluster import build_session, machine_state, write_json
from bench_common import load_set, make_set, parse_sets, timed_sql, top_ids
from faissflat_bench import Cluster

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--sets', default='demo512', help='NAME or NAME:N, comma-separated (bench_common.SETS)')
    ap.add_argument('--repeat', type=int, default=3)
    ap.add_argument('--nq', type=int, default=20)
    ap.add_argument('--out', default=os.path.join(HERE, 'results', 'parallel_build.json'))
    args = ap.parse_args()
    cluster = Cluster('2GB')
    results = {'before': machine_state(), 'sets': []}
    try:
        conn, cur = build_session(cluster.dsn)
        cur.execute("SET maintenance_work_mem = '1GB'")
        for name, n in parse_sets(ap, args.sets):
            x, xq = make_set(name, n, args.nq, seed=7)
            table = f'pb_{name}'
            load_set(cur, table, x, xq)
            del x
            times = {1: [], 2: []}
            got = {}
            for r in range(args.repeat):
                for threads in (1, 2):
                    cur.execute(f'DROP INDEX IF EXISTS {table}_lsh')
                    cur.execute(f'ALTER TABLE {table} SET (parallel_workers = {threads - 1})')
                    t = timed_sql(cur, f'CREATE INDEX {table}_lsh ON {table} USING lsh (v)')
                    times[threads].append(t)
                    print(f'{name} n={n}: build on {threads} thread(s) {t} s', flush=True)
                    if r == 0:
                        cur.execute("SET imgsearch.method = 'lsh'; SET lsh.probes = 1; SET lsh.candidates = 30")
                        got[threads] = top_ids(cur, table, args.nq)
                        cur.execute('RESET imgsearch.method; RESET lsh.probes; RESET lsh.candidates')
            med = {t: statistics.median(v) for t, v in times.items()}
            row = {'set': name, 'n': n, 'build_s': times, 'median_s': med,
                   'speedup_2_threads': round(med[1] / med[2], 2),
                   'same_answers': got[1] == got[2]}
            print(json.dumps(row), flush=True)
            results['sets'].append(row)
            cur.execute(f'DROP TABLE {table}, {table}_q')
    finally:
        results['after'] = machine_state()
        cluster.stop()
    write_json(results, args.out)


if __name__ == '__main__':
    main()
