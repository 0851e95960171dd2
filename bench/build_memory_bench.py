#!/usr/bin/env python3
"""lsh CREATE INDEX under several maintenance_work_mem (issue 24 item 3).

The build keeps within maintenance_work_mem (docs/methods.md "Build
memory"): its sample takes at most half, and the entries go through a sort
that spills to temporary files past what is left. For each setting this
times the build, samples the building backend's private memory (RssAnon in
/proc/PID/status, every 20 ms: the shared buffers it touches are not in it)
for its peak, reads the temporary bytes it wrote (pg_stat_database), and
measures recall@30 at the default budget against a sequential scan, since a
smaller sample trains other centroids.

  /usr/bin/python3 bench/build_memory_bench.py [--sets demo512:1000000] [--mem 64MB,256MB,1GB]

Run it as a user who may read the server's /proc entries (root here).
"""
import argparse
import json
import os
import re
import threading
import time

from bench_cluster import build_session, machine_state, write_json
from bench_common import load_set, make_set, parse_sets, recall, top_ids
from faissflat_bench import Cluster

HERE = os.path.dirname(os.path.abspath(__file__))


def rss_anon_kb(pid):
    with open(f'/proc/{pid}/status') as f:
        m = re.search(r'^RssAnon:\s+(\d+) kB', f.read(), re.M)
    return int(m.group(1))


class PeakSampler(threading.Thread):
    """The largest RssAnon of pid while it runs (sampled every 20 ms)."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak_kb, self.done = pid, 0, threading.Event()

    def run(self):
        while not self.done.is_set():
            self.peak_kb = max(self.peak_kb, rss_anon_kb(self.pid))
            time.sleep(0.02)


def temp_bytes(cur):
    cur.execute('SELECT pg_stat_force_next_flush()')
    cur.execute('SELECT temp_bytes FROM pg_stat_database WHERE datname = current_database()')
    return cur.fetchone()[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--sets', default='demo512:1000000', help='NAME or NAME:N, comma-separated (bench_common.SETS)')
    ap.add_argument('--mem', default='64MB,256MB,1GB', help='maintenance_work_mem values, comma-separated')
    ap.add_argument('--nq', type=int, default=50)
    ap.add_argument('--out', default=os.path.join(HERE, 'results', 'build_memory.json'))
    args = ap.parse_args()
    cluster = Cluster('2GB')
    results = {'before': machine_state(), 'sets': []}
    try:
        conn, cur = build_session(cluster.dsn)
        cur.execute('SELECT pg_backend_pid()')
        pid = cur.fetchone()[0]
        for name, n in parse_sets(ap, args.sets):
            x, xq = make_set(name, n, args.nq, seed=7)
            table = f'bm_{name}'
            load_set(cur, table, x, xq)
            del x
            cur.execute(f'ALTER TABLE {table} SET (parallel_workers = 1)')
            cur.execute("SET imgsearch.method = 'argsort'")
            truth = top_ids(cur, table, args.nq)
            for mem in args.mem.split(','):
                cur.execute(f'DROP INDEX IF EXISTS {table}_lsh')
                cur.execute(f"SET maintenance_work_mem = '{mem}'")
                before_kb, before_temp = rss_anon_kb(pid), temp_bytes(cur)
                sampler = PeakSampler(pid)
                sampler.start()
                t = time.perf_counter()
                cur.execute(f'CREATE INDEX {table}_lsh ON {table} USING lsh (v)')
                build_s = round(time.perf_counter() - t, 1)
                sampler.done.set()
                sampler.join()
                spilled = temp_bytes(cur) - before_temp
                cur.execute("SET imgsearch.method = 'lsh'")
                rec = recall(top_ids(cur, table, args.nq), truth)
                cur.execute("SET imgsearch.method = 'argsort'")
                row = {'set': name, 'n': n, 'maintenance_work_mem': mem, 'build_s': build_s,
                       'peak_private_mb': round(sampler.peak_kb / 1024, 1),
                       'private_before_mb': round(before_kb / 1024, 1),
                       'growth_mb': round((sampler.peak_kb - before_kb) / 1024, 1),
                       'temp_mb': round(spilled / 2**20, 1), 'recall_at_30_default_budget': round(rec, 3)}
                print(json.dumps(row), flush=True)
                results['sets'].append(row)
            cur.execute(f'DROP TABLE {table}, {table}_q')
    finally:
        results['after'] = machine_state()
        cluster.stop()
    write_json(results, args.out)


if __name__ == '__main__':
    main()
