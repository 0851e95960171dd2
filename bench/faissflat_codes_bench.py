#!/usr/bin/python3
"""faissflat's filter-and-refine scan (compact codes, faissflat.h) against
its flat pass (faissflat.codes = off) and faiss IndexFlatL2 in this process
(1 thread), on the CNN-like (lambda_i ~ 1/i) and hard clustered 512-d sets
(bench_common.SETS), in one run: exact k = 30 (L2), median and p95 ms per
query, one query at a time, round robin (bench_common.round_robin), after
warm-up (shared buffers hold table and index). The answers of the two
faissflat scans must be equal (ids, in order); faiss's are compared as
recall (its float sums may order near-ties differently).

Also: CREATE INDEX time and index size against the raw vectors.

Writes bench/results/faissflat_codes.json; prints a markdown table.

    /usr/bin/python3 bench/faissflat_codes_bench.py [--sets cnn512,hard512] [--queries 50] [--alone]
    /usr/bin/python3 bench/faissflat_codes_bench.py --keep-dir /var/tmp/b1m/cluster --shared-buffers 10GB \
        --prepare --hnsw --sets demo512:1000000,cnn512:1000000,hard512:1000000
    /usr/bin/python3 bench/faissflat_codes_bench.py --keep-dir /var/tmp/b1m/cluster --shared-buffers 10GB \
        --tables ffc_demo512_1000000,ffc_cnn512_1000000,ffc_hard512_1000000 --alone --out ...
"""
import argparse
import datetime
import json
import os
import sys
import time

import faiss
import numpy as np
import psycopg2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import (K, SETS, Hnsw, Sessions, debug1_notices, ensure_pgvector, load_set,  # noqa: E402
                          machine, make_set, parse_sets, query_sql, recall, relation_exists, round_robin)
from faissflat_bench import Cluster, summary  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


BASE = ["SET imgsearch.method = 'faissflat'", 'SET max_parallel_workers_per_gather = 0']


def faissflat_methods(ses, sql, relations=()):
    """faissflat's codes scan on its default threads and on one, in one pass over the
    whole codes (faissflat.staged off), and its flat pass."""
    def scan(settings):
        return ses.method(BASE + settings, sql, 'Index Scan', relations)
    return {
        'faissflat codes': scan(['SET faissflat.codes = on']),
        'faissflat codes, one pass': scan(['SET faissflat.codes = on', 'SET faissflat.staged = off']),
        'faissflat codes, 1 thread': scan(['SET faissflat.codes = on', 'SET faissflat.scan_threads = 1']),
        'faissflat flat pass': scan(['SET faissflat.codes = off']),
    }


def codes_report(dsn, sql, answers, nq, queries):
    """What the codes scan did (its DEBUG1 line) for the first queries, untimed, and
    how often the three faissflat scans agreed (ids, in order)."""
    def agree(a, b):
        return f'{sum(x == y for x, y in zip(answers[a], answers[b]))}/{nq}'
    scans = [[line.strip() for line in lines if 'codes scan' in line or 'staged pass' in line]
             for lines in debug1_notices(dsn, BASE + ['SET faissflat.codes = on'], sql, queries)]
    return {
        'codes_equal_flat_pass': agree('faissflat codes', 'faissflat flat pass'),
        'one_thread_equal_codes': agree('faissflat codes, 1 thread', 'faissflat codes'),
        'one_pass_equal_codes': agree('faissflat codes, one pass', 'faissflat codes'),
        'codes_scans': scans,
    }


def bench_set(conn, dsn, name, n, nq, seed, alone):
    x, xq = make_set(name, n, nq, seed)
    cur = conn.cursor()
    table = f'ffc_{name}'
    load_set(cur, table, x, xq)
    t = time.perf_counter()
    cur.execute(f'CREATE INDEX {table}_idx ON {table} USING faissflat (v)')
    build_s = time.perf_counter() - t
    cur.execute(f"SELECT pg_relation_size('{table}_idx')")
    index_bytes = cur.fetchone()[0]
    cur.execute(f'VACUUM ANALYZE {table}')

    sql = query_sql(table)
    ses = Sessions(dsn)
    methods = faissflat_methods(ses, sql)
    faiss.omp_set_num_threads(1)
    flat = faiss.IndexFlatL2(x.shape[1])
    flat.add(x)
    methods['faiss IndexFlatL2 (in process)'] = lambda i: [int(j) for j in flat.search(xq[i:i + 1], K)[1][0]]
    seconds, answers, _ = round_robin(methods, nq, seed, blocks=alone)
    ses.close()
    r = {
        'set': name, 'n': n, 'dim': x.shape[1], 'queries': nq,
        'build_s': round(build_s, 1),
        'index_over_raw': round(index_bytes / x.nbytes, 3),
        'ms': {m: summary(s) for m, s in seconds.items()},
        **codes_report(dsn, sql, answers, nq, 5),
        'faiss_recall_vs_codes': round(recall(answers['faiss IndexFlatL2 (in process)'],
                                              answers['faissflat codes']), 4),
    }
    cur.execute(f'DROP TABLE {table}, {table}_q')
    return r


def prepare_set(conn, name, n, nq, seed, hnsw):
    """Kept tables for bench_kept (--prepare, with --keep-dir): ffc_NAME_N and
    its queries, its faissflat index (build time in the log), and with hnsw
    pgvector's HNSW on a vector(dim) copy (maintenance_work_mem 4GB: the
    graph of 1M x 512 in memory). Sets already there are left as they are."""
    table = f'ffc_{name}_{n}'
    cur = conn.cursor()
    if not relation_exists(cur, f'{table}_q'):
        x, xq = make_set(name, n, nq, seed)
        load_set(cur, table, x, xq)
        print(f'  {table} loaded', flush=True)
    if not relation_exists(cur, f'{table}_ff'):
        t = time.perf_counter()
        cur.execute(f'CREATE INDEX {table}_ff ON {table} USING faissflat (v)')
        print(f'  {table}_ff built in {time.perf_counter() - t:.1f} s', flush=True)
    if hnsw and not relation_exists(cur, f'{table}_hnsw'):
        dim = SETS[name][1]
        cur.execute("SET maintenance_work_mem = '4GB'")
        cur.execute('CREATE EXTENSION IF NOT EXISTS vector')
        # pgvector's copy is made from the table: the vectors need not be generated again
        Hnsw(True, dim, False).build(cur, table, np.empty((0, dim), dtype=np.float32), {}, {}, [])
    cur.execute(f'VACUUM ANALYZE {table}')
    return table


def bench_kept(conn, dsn, table, nq, seed, alone):
    """The kept tables TABLE and TABLE_q of another bench's cluster (lsh_bench.py
    --keep-dir: its 1M sets): a faissflat index built on TABLE if it has none;
    the codes scan and the flat pass timed, and pgvector's HNSW at ef_search
    100 where TABLE_pgv has an HNSW index (no faiss: the vectors are not
    generated again)."""
    cur = conn.cursor()
    cur.execute(f"SELECT count(*) FROM {table}")
    n = cur.fetchone()[0]
    idx = f'{table}_ff'
    build_s = None
    if not relation_exists(cur, idx):
        t = time.perf_counter()
        cur.execute(f'CREATE INDEX {idx} ON {table} USING faissflat (v)')
        build_s = round(time.perf_counter() - t, 1)
        cur.execute(f'VACUUM ANALYZE {table}')
    cur.execute(f"SELECT pg_relation_size('{idx}'), pg_relation_size('{table}')")
    index_bytes, _ = cur.fetchone()
    cur.execute(f"SELECT atttypmod FROM pg_attribute WHERE attrelid = '{table}'::regclass AND attname = 'v'")
    dim = cur.fetchone()[0]
    sql = query_sql(table)
    ses = Sessions(dsn, warm=True)
    methods = faissflat_methods(ses, sql, (idx,))
    if relation_exists(cur, f'{table}_hnsw'):
        methods['pgvector HNSW ef100'] = ses.method(['SET hnsw.ef_search = 100'], query_sql(f'{table}_pgv'),
                                                    'Index Scan', (f'{table}_hnsw',))
    seconds, answers, _ = round_robin(methods, nq, seed, blocks=alone)
    ses.close()
    r = {
        'set': table, 'n': n, 'dim': dim, 'queries': nq, 'build_s': build_s,
        'index_over_raw': round(index_bytes / (n * dim * 4), 3),
        'ms': {m: summary(s) for m, s in seconds.items()},
        **codes_report(dsn, sql, answers, nq, 3),
    }
    if 'pgvector HNSW ef100' in answers:
        r['hnsw_ef100_recall'] = round(recall(answers['pgvector HNSW ef100'], answers['faissflat codes']), 4)
    return r


def markdown(report):
    lines = ['| set | faissflat codes: median / p95 ms | codes, 1 thread | codes, one pass | flat pass: median / p95 '
             '| faiss IndexFlatL2: median / p95 | flat / codes | one pass / codes | codes / other | codes = flat pass '
             '| build s | index / raw |', '|---|---|---|---|---|---|---|---|---|---|---|---|']
    for r in report['results']:
        c, f = r['ms']['faissflat codes'], r['ms']['faissflat flat pass']
        one = r['ms'].get('faissflat codes, 1 thread')
        one = f"{one['median']} / {one['p95']}" if one else '-'
        whole = r['ms'].get('faissflat codes, one pass')
        whole_ratio = f"{whole['median'] / c['median']:.1f}x" if whole else '-'
        whole = f"{whole['median']} / {whole['p95']}" if whole else '-'
        other = r['ms'].get('faiss IndexFlatL2 (in process)') or r['ms'].get('pgvector HNSW ef100')
        ratio = f"{c['median'] / other['median']:.2f}x" if other else '-'
        other = f"{other['median']} / {other['p95']}" if other else '-'
        lines.append(f"| {r['set']} {r['n'] // 1000}k | {c['median']} / {c['p95']} | {one} | {whole} "
                     f"| {f['median']} / {f['p95']} | {other} | {f['median'] / c['median']:.1f}x | {whole_ratio} | {ratio} "
                     f"| {r['codes_equal_flat_pass']} | {r['build_s']} | {r['index_over_raw']} |")
    if any('pgvector HNSW ef100' in r['ms'] for r in report['results']):
        lines.append('(kept tables: the fourth column is pgvector HNSW ef_search 100, where the set has it)')
    return '\n'.join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--sets', default='cnn512,hard512')
    ap.add_argument('--queries', type=int, default=50)
    ap.add_argument('--seed', type=int, default=7)
    ap.add_argument('--shared-buffers', default='1GB')
    ap.add_argument('--keep-dir', help="a kept cluster (faissflat_bench.Cluster), e.g. lsh_bench.py --keep-dir's")
    ap.add_argument('--tables', help='kept tables of that cluster to time instead of --sets (bench_kept)')
    ap.add_argument('--prepare', action='store_true',
                    help='with --keep-dir: make the kept tables of --sets (prepare_set) and time nothing')
    ap.add_argument('--hnsw', action='store_true', help='--prepare builds pgvector HNSW on them too')
    ap.add_argument('--alone', action='store_true',
                    help='each method alone, all its queries in a row (bench_common.round_robin blocks): '
                         'round robin puts a flat pass (100k x 2 kB through the caches) before most queries')
    ap.add_argument('--out', default=os.path.join(HERE, 'results', 'faissflat_codes.json'))
    args = ap.parse_args()
    load_before = os.getloadavg()
    cluster = Cluster(args.shared_buffers, keep_dir=args.keep_dir)
    try:
        conn = psycopg2.connect(cluster.dsn)
        conn.autocommit = True
        conn.cursor().execute('CREATE EXTENSION IF NOT EXISTS imgsearch')
        if args.prepare:
            if not args.keep_dir:
                ap.error('--prepare needs --keep-dir')
            if args.hnsw and not ensure_pgvector('faissflat_codes_bench'):
                ap.error('--hnsw needs pgvector (bench/pgvector.sh)')
            tables = [prepare_set(conn, name, n, args.queries, args.seed, args.hnsw)
                      for name, n in parse_sets(ap, args.sets)]
            print('kept tables: --tables ' + ','.join(tables))
            return
        if args.tables:
            results = [bench_kept(conn, cluster.dsn, t, args.queries, args.seed, args.alone)
                       for t in args.tables.split(',')]
        else:
            results = [bench_set(conn, cluster.dsn, name, n, args.queries, args.seed, args.alone)
                       for name, n in parse_sets(ap, args.sets)]
        cur = conn.cursor()
        cur.execute('SHOW server_version')
        version = cur.fetchone()[0]
        conn.close()
    finally:
        cluster.stop()
    report = {'date': datetime.datetime.utcnow().isoformat(timespec='seconds') + 'Z',
              'k': K, 'timing': 'alone' if args.alone else 'round robin', 'machine': machine(version, None, load_before),
              'load_after': [round(v, 2) for v in os.getloadavg()], 'results': results}
    with open(args.out, 'w') as f:
        json.dump(report, f, indent=1)
    print(markdown(report))


if __name__ == '__main__':
    main()
