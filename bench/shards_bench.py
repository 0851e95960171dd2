#!/usr/bin/python3
"""Shards benchmark: exact k-NN (faissflat, L2, k = 30) over a coordinator and
2 shards (tools/shards.sh, all on this machine) against one node holding the
same rows, and a model of latency and throughput against shard count on
separate machines from the measured per-shard figures.

Data: 100k x 512 by default (the cnn512 set of bench_common; --rows), not
1M: loading and indexing 1M x 512 three times over (one node, 2 shards) does
not fit on the 2-core development machine beside other work. The one node is
a local table on the coordinator; each shard holds the rows of its hash
partition, loaded directly by binary COPY (as a bulk load would be).

Timed, one query at a time, after warm-up, client-side:
  one      SELECT ... FROM one ORDER BY v <-> q LIMIT 30 (faissflat), one node
  shard_i  the same on shard i alone (half the rows), straight to the shard
  sharded  imgsearch_sharded_search on the coordinator (async, LIMIT pushed)
  plain    SELECT ... FROM the partitioned table ORDER BY ... LIMIT 30
           (Merge Append, LIMIT kept on the coordinator)
and the sharded answers are checked against one node's (ids and distances).
On one 2-core machine the shards share the cores: expect overhead, not speed-up.

    /usr/bin/python3 bench/shards_bench.py [--rows 100000] [--queries 30]

Writes bench/results/shards.json. Leaves the clusters running under
IMGSEARCH_SHARDS_DIR (default /var/tmp/imgsearch-shards-bench); --stop stops them.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np
import psycopg2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import make_set  # noqa: E402
from faissflat_bench import copy_binary, summary  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
K = 30
SHARDS = 2


def port_of(d, name):
    with open(os.path.join(d, name, 'postgresql.conf')) as f:
        return [line.split('=')[1].strip() for line in f if line.startswith('port =')][-1]


def connect(d, name):
    conn = psycopg2.connect(host='127.0.0.1', port=port_of(d, name), user='postgres', dbname='imgsearch')
    conn.autocommit = True
    return conn


def round_robin(runs, nq, repeat):
    """runs: name -> (cursor, sql, args(i)). Each query in turn through every
    run, repeat rounds after a warm-up round, so that the machine's load
    falls on all alike. name -> (seconds per query, last round's answers)"""
    times = {name: [] for name in runs}
    answers = {name: [] for name in runs}
    for r in range(repeat + 1):
        for i in range(nq):
            for name, (cur, sql, args) in runs.items():
                t = time.perf_counter()
                cur.execute(sql, args(i))
                rows = cur.fetchall()
                if r > 0:
                    times[name].append(time.perf_counter() - t)
                if r == repeat:
                    answers[name].append(rows)
    return times, answers


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--rows', type=int, default=100_000)
    ap.add_argument('--queries', type=int, default=30)
    ap.add_argument('--repeat', type=int, default=3)
    ap.add_argument('--out', default=os.path.join(HERE, 'results', 'shards.json'))
    ap.add_argument('--stop', action='store_true', help='stop the clusters at the end')
    args = ap.parse_args()
    d = os.environ.setdefault('IMGSEARCH_SHARDS_DIR', '/var/tmp/imgsearch-shards-bench')
    shards_sh = os.path.join(REPO, 'tools', 'shards.sh')
    subprocess.run([shards_sh, 'start', str(SHARDS)], check=True, stdout=subprocess.DEVNULL)
    # Each cluster keeps its rows in shared buffers (table and index: about
    # 4 kB a row at 512-d; the one node, on the coordinator, holds them all),
    # or it would be timed reading the OS cache.
    restart = False
    for name, rows in [('coordinator', args.rows)] + [(f'shard{i}', args.rows // SHARDS) for i in range(SHARDS)]:
        conn = connect(d, name)
        cur = conn.cursor()
        cur.execute("SELECT setting::bigint * 8192 FROM pg_settings WHERE name = 'shared_buffers'")
        need_mb = 5 * rows // 1000 + 128
        if cur.fetchone()[0] < need_mb << 20:
            cur.execute(f"ALTER SYSTEM SET shared_buffers = '{need_mb}MB'")
            restart = True
        conn.close()
    if restart:
        subprocess.run([shards_sh, 'stop'], check=True)
        subprocess.run([shards_sh, 'start', str(SHARDS)], check=True, stdout=subprocess.DEVNULL)

    x, xq = make_set('cnn512', args.rows, args.queries, seed=7)
    dim = x.shape[1]
    coord = connect(d, 'coordinator')
    cc = coord.cursor()
    shard_conns = [connect(d, f'shard{i}') for i in range(SHARDS)]

    t0 = time.perf_counter()
    cc.execute('DROP TABLE IF EXISTS one, items')
    cc.execute(f'CREATE TABLE one (id int4, v imgfeat({dim}))')
    copy_binary(cc, 'one', x)
    cc.execute('CREATE INDEX ON one USING faissflat (v)')
    cc.execute('VACUUM ANALYZE one')
    cc.execute(f'CREATE TABLE items (id int4, v imgfeat({dim})) PARTITION BY HASH (id)')
    load = {'one_s': round(time.perf_counter() - t0, 1)}
    for i, sc in enumerate(shard_conns):
        cc.execute(f"""CREATE FOREIGN TABLE items_{i} PARTITION OF items
                       FOR VALUES WITH (MODULUS {SHARDS}, REMAINDER {i}) SERVER shard{i}
                       OPTIONS (table_name 'items')""")
        # the ids of this partition, as the coordinator routes them
        cc.execute('SELECT array_agg(id) FROM generate_series(0, %s - 1) id '
                   "WHERE satisfies_hash_partition('items'::regclass, %s, %s, id)",
                   (args.rows, SHARDS, i))
        ids = np.array(cc.fetchone()[0], dtype=np.int64)
        t0 = time.perf_counter()
        s = sc.cursor()
        s.execute('DROP TABLE IF EXISTS items')
        s.execute(f'CREATE TABLE items (id int4, v imgfeat({dim}))')
        copy_binary(s, 'items', x[ids], ids=ids)
        s.execute('CREATE INDEX ON items USING faissflat (v)')
        s.execute('VACUUM ANALYZE items')
        load[f'shard{i}_rows'] = len(ids)
        load[f'shard{i}_s'] = round(time.perf_counter() - t0, 1)
    cc.execute("SELECT count(*) FROM imgsearch_shard_methods('items', '{faissflat}')")
    q = [str(v.tolist()) for v in xq]

    for c in [coord] + shard_conns:
        c.cursor().execute("SET imgsearch.method = 'faissflat'; SET enable_seqscan = off")
    one_sql = 'SELECT id, v <-> %s::imgfeat FROM one ORDER BY v <-> %s::imgfeat LIMIT ' + str(K)
    shard_sql = one_sql.replace('FROM one', 'FROM items')
    sharded_sql = ("SELECT id, distance FROM imgsearch_sharded_search("
                   f"'items', %s::imgfeat, {K}, '<->', 'faissflat', 'id', 'v')")
    runs = {'one': (cc, one_sql, lambda i: (q[i], q[i]))}
    for i, sc in enumerate(shard_conns):
        runs[f'shard{i}'] = (sc.cursor(), shard_sql, lambda j: (q[j], q[j]))
    runs['sharded'] = (cc, sharded_sql, lambda i: (q[i],))
    times, answers = round_robin(runs, args.queries, args.repeat)
    # the partitioned table's own plan: slow, one round
    plain_times, plain_answers = round_robin({'plain': (cc, shard_sql, lambda i: (q[i], q[i]))},
                                             args.queries, 1)
    times.update(plain_times)
    answers.update(plain_answers)
    results = {name: summary(t) for name, t in times.items()}
    one_answers, sharded_answers, plain_answers = answers['one'], answers['sharded'], answers['plain']

    def key(rows):
        return sorted((float(dist), int(i)) for i, dist in rows)
    identical = all(key(a) == key(b) for a, b in zip(one_answers, sharded_answers))
    plain_same = all(key(a) == key(b) for a, b in zip(one_answers, plain_answers))

    # Model for N shards on N separate machines like this one: a shard's
    # exact scan costs a + b * rows (fitted to one node at n and the mean
    # shard at n / 2), and the coordinator adds what sharded costs beyond its
    # slowest shard (merge, libpq round trips, k vectors per shard).
    t_one = results['one']['median']
    t_half = statistics.mean(results[f'shard{i}']['median'] for i in range(SHARDS))
    t_slowest = max(results[f'shard{i}']['median'] for i in range(SHARDS))
    overhead = max(results['sharded']['median'] - t_slowest, 0.0)
    per_row_ms = (t_one - t_half) / (args.rows - args.rows / SHARDS)
    fixed_ms = t_one - per_row_ms * args.rows
    if per_row_ms <= 0 or fixed_ms < 0:
        # noise beyond the fit: proportional to rows, through one node
        per_row_ms, fixed_ms = t_one / args.rows, 0.0
    model = []
    for n in (1, 2, 4, 8, 16):
        shard_ms = fixed_ms + per_row_ms * args.rows / n
        model.append({'shards': n,
                      'latency_ms': round(shard_ms + (overhead if n > 1 else 0.0), 2),
                      # every query runs on every shard: N machines of c cores
                      # answer about c * this many queries a second
                      'qps_per_core': round(1000.0 / shard_ms, 1)})
    fit = {'fixed_ms': round(fixed_ms, 2), 'per_100k_rows_ms': round(per_row_ms * 100_000, 2)}

    out = {
        'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'machine': f'{platform.node()} {os.cpu_count()} cores, all clusters on it',
        'rows': args.rows, 'dim': dim, 'k': K, 'shards': SHARDS, 'method': 'faissflat', 'metric': 'L2',
        'load_seconds': load,
        'latency_ms': results,
        'sharded_over_one': round(results['sharded']['median'] / t_one, 2),
        'plain_over_one': round(results['plain']['median'] / t_one, 2),
        'sharded_identical_to_one': identical,
        'plain_identical_to_one': plain_same,
        'coordinator_overhead_ms': round(overhead, 2),
        'shard_scan_fit': fit,
        'model': model,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(out, f, indent=2)
    print(json.dumps(out, indent=2))
    if args.stop:
        subprocess.run([shards_sh, 'stop'], check=True)


if __name__ == '__main__':
    main()
