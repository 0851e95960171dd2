#!/usr/bin/python3
"""kdtree benchmark: the kdtree index inside PostgreSQL, exact and at leaf
budgets, beside faissflat, the sequential scan + sort (argsort), faiss
IndexFlatL2 in this process (1 thread) and pgvector's HNSW index, on the same
data in one run.

Data (bench/bench_data.py; queries are held out: drawn from the same
distribution, never in the table):
  cnn512   CNN-like: power-law PCA spectrum lambda_i ~ 1/i in a random basis,
           a positive mean (mostly positive), unit norm; a continuum. 100k x 512.
  hard512  the hard clustered set of faissflat_bench.py. 100k x 512.
  cnn4096  CNN-like as cnn512, 20k x 4096.
  demo512  CNN-like with lambda_i ~ i^-1.87, the spectrum measured on the
           demo's features (bench/results/feature_spectrum.json). 100k x 512.
A set's size can be given as NAME:N (cnn512:1000000 is the 1M x 512 run; not
a default: it takes about an hour and wants --shared-buffers 8GB).

Each query asks for the 30 nearest (L2), one at a time, timed by the client,
methods round robin query by query after warm-up (--alone: each method's
queries in a row, see bench_common.round_robin), every relation prewarmed
into shared buffers (pg_prewarm). --keep-dir DIR keeps the cluster, the sets
and their indexes for the next run (the 1M runs). Methods:
  kdtree_exact       imgsearch.method = kdtree, kdtree.max_leaves = 0
  kdtree_leaves_N    kdtree.max_leaves = N (approximate)
  faissflat, argsort imgsearch.method = faissflat / argsort
  faiss_flat         faiss IndexFlatL2, in process, 1 thread
  hnsw_efN           pgvector 0.8.6 HNSW (m 16, ef_construction 64),
                     hnsw.ef_search = N, on a copy of the table as vector(dim)
                     (bench/pgvector.sh builds it from ../shared/vendor).
                     pgvector indexes at most 2000 dimensions: at 4096 faiss
                     IndexHNSWFlat (same parameters, in process, searched
                     on 1 thread, built on all) is timed instead, as
                     faiss_hnsw_efN; no build ratio there.
recall@30 is against argsort's answers (faiss_flat's where --no-argsort).
Also: what exact kdtree searches examine (fractions of the vectors and of the
leaves, from the scan's DEBUG1 line, in an untimed pass), CREATE INDEX times
(one process each: max_parallel_maintenance_workers = 0), index sizes
(pg_relation_size) against the raw vectors (n x dim x 4).

Last, when to REINDEX (--no-inserts skips it): a demo-like index built on 40k
vectors, 40k more inserted (same distribution, or another), REINDEX; and one
built on an empty table.

Writes bench/results/kdtree.json and kdtree.md and prints the ratios.
    /usr/bin/python3 bench/kdtree_bench.py [--quick] [--sets cnn512,hard512,cnn4096,demo512]
                                           [--queries 50] [--budgets 8,32,128,512]
"""
import argparse
import collections
import datetime
import json
import os
import re
import signal
import statistics
import sys
import time

import faiss
import numpy as np
import psycopg2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import (K, SETS, Hnsw, Sessions, auto_picks, debug1_notices, ensure_pgvector,  # noqa: E402
                          fmt, hnsw40_of, keep_builds, drop_set, machine, make_set, parse_sets, prepare_set,
                          query_sql, recall, round_robin, timing_words, variance_kept,
                          add_run_args)
from bench_data import cnn_like, cnn_like_model  # noqa: E402
from faissflat_bench import Cluster, copy_binary, summary  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def bench_set(conn, dsn, name, n, args, seed, have_pgvector):
    _, dim, _, alpha = SETS[name]
    nq = args.queries
    t0 = time.perf_counter()
    x, xq = make_set(name, n, nq, seed)
    print(f'{name}: {n} x {dim}, {nq} queries (data {time.perf_counter() - t0:.0f} s)', flush=True)
    cur = conn.cursor()
    kd_with = f'dims = {args.kd_dims}, leaf_size = {args.kd_leaf}'
    table, _, builds = prepare_set(cur, 'kdb', name, n, seed, x, xq,
                                   {'kdtree': ('kd', f'USING kdtree (v imgfeat_l2_ops) WITH ({kd_with})'),
                                    'faissflat': ('ff', 'USING faissflat (v imgfeat_l2_ops)')},
                                   bool(args.keep_dir))
    sizes = {}
    relations = [table, f'{table}_q', f'{table}_kd', f'{table}_ff']
    for am, rel in (('kdtree', f'{table}_kd'), ('faissflat', f'{table}_ff')):
        cur.execute('SELECT pg_relation_size(%s)', (rel,))
        sizes[am] = cur.fetchone()[0]

    hnsw = Hnsw(have_pgvector, dim, args.no_hnsw)
    hnsw.build(cur, table, x, builds, sizes, relations, reuse=bool(args.keep_dir))
    if args.keep_dir:
        keep_builds(cur, table, builds)
    for rel in relations:
        cur.execute('SELECT pg_prewarm(%s)', (rel,))

    faiss.omp_set_num_threads(1)
    flat = faiss.IndexFlatL2(dim)
    flat.add(x)

    sessions = Sessions(dsn, warm=args.alone)
    sql = query_sql(table)
    kd_node = f'Index Scan using {table}_kd'
    kd_own, ff_own = [table, f'{table}_q', f'{table}_kd'], [table, f'{table}_q', f'{table}_ff']
    methods = {'kdtree_exact': sessions.method(["SET imgsearch.method = 'kdtree'", 'SET kdtree.max_leaves = 0'],
                                               sql, kd_node, kd_own)}
    for b in args.budgets:
        methods[f'kdtree_leaves_{b}'] = sessions.method(["SET imgsearch.method = 'kdtree'",
                                                         f'SET kdtree.max_leaves = {b}'], sql, kd_node, kd_own)
    methods['faissflat'] = sessions.method(["SET imgsearch.method = 'faissflat'"], sql, f'Index Scan using {table}_ff',
                                           ff_own)
    if not args.no_argsort:
        methods['argsort'] = sessions.method(["SET imgsearch.method = 'argsort'"], sql, 'Seq Scan',
                                             [table, f'{table}_q'])
    methods['faiss_flat'] = lambda i: flat.search(xq[i:i + 1], K)[1][0].tolist()
    hnsw.add_methods(methods, sessions, table, xq)

    seconds, answers, query_s = round_robin(methods, nq, seed, blocks=args.alone)
    sessions.close()
    examined = kdtree_scan_stats(dsn, sql, nq, n)
    if 'flat_pass_queries' in examined:
        examined['latency_ms_split'] = tail_split(seconds['kdtree_exact'], examined['flat_pass_queries'], nq)
    # What the planner takes with both imgsearch indexes there (imgsearch.method = auto).
    auto = auto_picks(cur, sql, {f'{table}_kd': 'kdtree', f'{table}_ff': 'faissflat'})

    truth_name = 'faiss_flat' if args.no_argsort else 'argsort'
    truth = answers[truth_name]
    lat = {m: summary(s) for m, s in seconds.items()}
    for m in lat:
        lat[m]['recall_at_30'] = round(recall(answers[m], truth), 4)
    kd_exact_wrong = sum(a != b for a, b in zip(answers['kdtree_exact'], truth))
    raw = n * dim * 4
    med = {m: v['median'] for m, v in lat.items()}
    hnsw40, hnsw40_is = hnsw40_of(med)
    hnsw_build = builds.get('hnsw')
    ratios = {
        'kdtree_exact_over_hnsw_ef40': round(med['kdtree_exact'] / med[hnsw40], 2) if hnsw40 else None,
        'hnsw_ef40_is': hnsw40_is,
        'faissflat_over_kdtree_exact': round(med['faissflat'] / med['kdtree_exact'], 3),
        'argsort_over_kdtree_exact': round(med['argsort'] / med['kdtree_exact'], 2) if 'argsort' in med else None,
        'kdtree_exact_over_faiss_flat': round(med['kdtree_exact'] / med['faiss_flat'], 3),
        'kdtree_build_over_hnsw_build': round(builds['kdtree'] / hnsw_build, 3) if hnsw_build else None,
        'kdtree_build_over_faissflat_build': round(builds['kdtree'] / builds['faissflat'], 2),
        'kdtree_size_over_raw': round(sizes['kdtree'] / raw, 4),
        'faissflat_size_over_raw': round(sizes['faissflat'] / raw, 4),
        'hnsw_size_over_raw': round(sizes['hnsw'] / raw, 4) if 'hnsw' in sizes else None,
    }
    out = {
        'set': name, 'n': n, 'dim': dim, 'spectrum_exponent': alpha, 'k': K, 'queries': nq,
        'pca_variance_kept_by_top_m': variance_kept(x),
        'kdtree_options': {'dims': args.kd_dims, 'leaf_size': args.kd_leaf},
        'recall_truth': truth_name,
        'kdtree_exact_wrong_answers': kd_exact_wrong,
        'kdtree_exact_scan': examined,
        'auto_picks': auto,
        'latency_ms': lat,
        'build_s': builds,
        'index_bytes': sizes,
        'raw_vector_bytes': raw,
        'ratios': ratios,
        'seconds': {'queries': round(query_s, 1), 'total': round(time.perf_counter() - t0, 1)},
    }
    if not args.keep_dir:
        drop_set(cur, table)
    print_set(out)
    return out


def kdtree_scan_stats(dsn, sql, nq, n):
    """What exact searches did (the scan's DEBUG1 line), untimed: the
    fraction of the vectors whose exact distance was computed and of the
    leaves opened, median and max over the queries."""
    keys, leaves, gave_up, flat_queries = [], [], 0, []
    for q, notices in enumerate( debug1_notices(dsn, ["SET imgsearch.method = 'kdtree'", 'SET kdtree.max_leaves = 0'], sql, nq)):
        for line in notices:
            m = re.search(r'kdtree scan of .*?: \d+ rows, (\d+) of (\d+) leaves opened, \d+ entries seen, '
                          r'(\d+) exact distances', line)
            if m:
                leaves.append(int(m.group(1)) / max(int(m.group(2)), 1))
                keys.append(int(m.group(3)) / n)
                gave_up += 'went on as a flat scan' in line
                if 'went on as a flat scan' in line:
                    flat_queries.append(q)
    if not keys:
        # No tree search at all: the build's sample searches found that the
        # bounds do not prune, so exact scans are flat passes from the start.
        return {'flat_from_start': True}
    return {'exact_distances_fraction': {'median': round(statistics.median(keys), 4), 'max': round(max(keys), 4)},
            'leaves_opened_fraction': {'median': round(statistics.median(leaves), 4), 'max': round(max(leaves), 4)},
            'went_on_as_flat_pass': gave_up, 'flat_pass_queries': flat_queries}


def tail_split(seconds, flat_queries, nq, warmup=3):
    """kdtree exact's latency, split into the queries that went on as a flat
    pass and the others (round_robin's seconds are queries warmup.., then 0..)."""
    flat = set(flat_queries)
    went, tree = [], []
    for j, s in enumerate(seconds):
        (went if (j + warmup) % nq in flat else tree).append(s)
    return {'went_on_as_flat_pass': summary(went) if went else None, 'tree_only': summary(tree) if tree else None}


def inserts_experiment(conn, dsn, n, seed):
    """When to REINDEX: a demo-like index built on n vectors, then n inserted
    (of the same distribution, or of another one: another random basis, the
    queries from it), then REINDEX; and an index built on an empty table.
    Median latency and exact-distance fraction of 30 exact kdtree searches
    each time, and the index the planner takes under auto."""
    rng = np.random.default_rng(seed)
    a, b = cnn_like_model(rng, 512, 1.87), cnn_like_model(rng, 512, 1.87)
    xa, xb = cnn_like(rng, a, 2 * n), cnn_like(rng, b, n)
    qa, qb = cnn_like(rng, a, 30), cnn_like(rng, b, 30)
    cur = conn.cursor()
    # Not bench_set's 2GB: before 0cfb152 a kdtree VACUUM failed above ~1.6GB
    # ("invalid memory alloc request size"); 1GB is plenty here anyway.
    cur.execute("SET maintenance_work_mem = '1GB'")
    sql = 'SELECT id FROM kdi ORDER BY v <-> (SELECT v FROM kdi_q WHERE id = %s) LIMIT 30'

    def measure(rows):
        c = psycopg2.connect(dsn)
        c.autocommit = True
        c.notices = collections.deque(maxlen=50)
        cc = c.cursor()
        cc.execute("LOAD 'imgsearch'")
        cc.execute("SET imgsearch.method = 'kdtree'")
        cc.execute('SET client_min_messages = debug1')
        fr, ms = [], []
        for i in list(range(3)) + list(range(30)):
            c.notices.clear()
            t = time.perf_counter()
            cc.execute(sql, (i,))
            cc.fetchall()
            ms.append((time.perf_counter() - t) * 1000)
            fr += [int(m.group(1)) / rows for m in (re.search(r'(\d+) exact distances', x) for x in c.notices) if m]
        c.close()
        cur.execute('EXPLAIN ' + sql, (0,))
        plan = '\n'.join(r[0] for r in cur.fetchall())
        auto = re.search(r'Index Scan using kdi_(kd|ff)', plan)
        return {'ms_median': round(statistics.median(ms[3:]), 2),
                'exact_distances_fraction': round(statistics.median(fr[3:]), 4) if fr else 'no tree: every vector',
                'auto_picks': {'kd': 'kdtree', 'ff': 'faissflat'}[auto.group(1)] if auto else 'seq scan'}

    def table(q):
        cur.execute('DROP TABLE IF EXISTS kdi, kdi_q')
        cur.execute('CREATE TABLE kdi (id int4, v imgfeat(512))')
        cur.execute('CREATE TABLE kdi_q (id int4, v imgfeat(512))')
        copy_binary(cur, 'kdi_q', q)

    out = {'n': n}
    for case, more, q in (('same_distribution', xa[n:], qa), ('another_distribution', xb, qb)):
        table(q)
        copy_binary(cur, 'kdi', xa[:n])
        cur.execute('VACUUM ANALYZE kdi')
        cur.execute('CREATE INDEX kdi_kd ON kdi USING kdtree (v)')
        cur.execute('CREATE INDEX kdi_ff ON kdi USING faissflat (v)')
        r = {'built': measure(n)}
        copy_binary(cur, 'kdi', more)
        cur.execute('VACUUM ANALYZE kdi')
        r['after_inserts'] = measure(2 * n)
        cur.execute('REINDEX INDEX kdi_kd')
        r['after_reindex'] = measure(2 * n)
        out[case] = r
    table(qa)
    cur.execute('CREATE INDEX kdi_kd ON kdi USING kdtree (v)')
    cur.execute('CREATE INDEX kdi_ff ON kdi USING faissflat (v)')
    copy_binary(cur, 'kdi', xa[:n])
    cur.execute('VACUUM ANALYZE kdi')
    r = {'built_empty_then_inserted': measure(n)}
    cur.execute('REINDEX INDEX kdi_kd')
    r['after_reindex'] = measure(n)
    out['built_empty'] = r
    cur.execute('DROP TABLE kdi, kdi_q')
    print(f'  inserts: {json.dumps(out)}', flush=True)
    return out


def print_set(r):
    lat = r['latency_ms']
    print(f"  {r['set']} {r['n']} x {r['dim']}: median ms (recall@30)", flush=True)
    for m, v in lat.items():
        print(f"    {m:22s} {v['median']:9.2f}  p95 {v['p95']:9.2f}  p99 {v['p99']:9.2f}  recall {v['recall_at_30']:.4f}")
    print(f"  builds s: {r['build_s']}; index / raw: kdtree {r['ratios']['kdtree_size_over_raw']}, "
          f"faissflat {r['ratios']['faissflat_size_over_raw']}, hnsw {r['ratios']['hnsw_size_over_raw']}")
    print(f"  ratios: {json.dumps(r['ratios'])}; kdtree exact answers differing from "
          f"{r['recall_truth']}: {r['kdtree_exact_wrong_answers']} of {r['queries']}; "
          f"exact scans: {json.dumps(r['kdtree_exact_scan'])}; auto takes {r['auto_picks']}", flush=True)


def scan_sentence(st, nq):
    if not st or st.get('flat_from_start'):
        return (' Exact kdtree scans were flat passes over the stored vectors from the start (the build found '
                'that the bounds do not prune here).')
    text = (f" An exact kdtree search computed the distance of "
            f"{st['exact_distances_fraction']['median'] * 100:.2f}% of the vectors (median; max "
            f"{st['exact_distances_fraction']['max'] * 100:.2f}%) and opened "
            f"{st['leaves_opened_fraction']['median'] * 100:.1f}% of the leaves.")
    if st.get('went_on_as_flat_pass'):
        text += f" {st['went_on_as_flat_pass']} of {nq} went on as a flat pass."
        split = st.get('latency_ms_split') or {}
        if split.get('went_on_as_flat_pass') and split.get('tree_only'):
            w, t = split['went_on_as_flat_pass'], split['tree_only']
            text += (f" Those took {w['median']} ms (median; p95 {w['p95']}), the others {t['median']} ms "
                     f"(p95 {t['p95']}, p99 {t['p99']}).")
    return text


def markdown(report, raw_name):
    m = report['machine']
    lines = ['# kdtree in the database: measurements (bench/kdtree_bench.py)', '',
             f"{report['date']}, {m['cpu']}, {m['cores']} cores, PostgreSQL {m['postgres']}, "
             f"faiss {m['faiss']}, pgvector {m['pgvector'] or 'absent'}; load average before/after "
             f"{m['load_average_1min_before_after']}. Single queries, k = 30, L2, held-out queries, "
             + timing_words(report) + f", every relation prewarmed; medians of {report['queries']} "
             f"queries{' (x2)' if report.get('alone') else ''}. kdtree WITH (dims = {report['kdtree_options']['dims']}, leaf_size = "
             f"{report['kdtree_options']['leaf_size']}). Builds run in one process "
             f"(max_parallel_maintenance_workers = 0). Raw figures: {raw_name}.", '']
    for r in report['sets']:
        rt = r['ratios']
        lines += [f"## {r['set']}: {r['n']} x {r['dim']}"
                  + (f", spectrum lambda_i ~ i^-{r['spectrum_exponent']}" if r['spectrum_exponent'] else
                     ', hard clustered'), '',
                  f"PCA variance kept by the top 16 / 32 / 64 components: "
                  f"{' / '.join(str(v) for v in r['pca_variance_kept_by_top_m'].values())}. "
                  f"kdtree exact answers differing from {r['recall_truth']}: "
                  f"{r['kdtree_exact_wrong_answers']} of {r['queries']}."
                  + scan_sentence(r['kdtree_exact_scan'], r['queries'])
                  + f" With both indexes, imgsearch.method = auto takes {r['auto_picks']}.", '',
                  '| method | median ms | p95 ms | p99 ms | recall@30 |', '|---|---|---|---|---|']
        for name, v in r['latency_ms'].items():
            lines.append(f"| {name} | {v['median']} | {v['p95']} | {v['p99']} | {v['recall_at_30']} |")
        lines += ['', '| index | build s | size MB | size / raw vectors |', '|---|---|---|---|']
        for am in ('kdtree', 'faissflat', 'hnsw'):
            if am in r['build_s']:
                size = r['index_bytes'].get(am)
                lines.append(f"| {am} | {r['build_s'][am]} | {fmt(size / 1e6 if size else None, 1)} | "
                             f"{fmt(size / r['raw_vector_bytes'] if size else None, 3)} |")
        if 'faiss_hnsw_in_process_all_cores' in r['build_s']:
            lines.append(f"| faiss HNSW (in process, all cores) | "
                         f"{r['build_s']['faiss_hnsw_in_process_all_cores']} | – | – |")
        lines += ['', f"Ratios: kdtree exact / HNSW ef40 = {fmt(rt['kdtree_exact_over_hnsw_ef40'])}"
                      f" (HNSW: {rt['hnsw_ef40_is']}); faissflat / kdtree exact = "
                      f"{fmt(rt['faissflat_over_kdtree_exact'], 3)}; argsort / kdtree exact = "
                      f"{fmt(rt['argsort_over_kdtree_exact'])}; kdtree exact / faiss Flat = "
                      f"{fmt(rt['kdtree_exact_over_faiss_flat'], 3)}; kdtree build / HNSW build = "
                      f"{fmt(rt['kdtree_build_over_hnsw_build'], 3)}; kdtree size / raw = "
                      f"{fmt(rt['kdtree_size_over_raw'], 3)}.", '']
    ins = report.get('inserts')
    if ins:
        lines += [f"## When to REINDEX: demo-like {ins['n']} x 512, then {ins['n']} inserted", '',
                  '30 exact kdtree searches each (median ms, median fraction of the vectors whose exact distance '
                  'was computed) and the index imgsearch.method = auto takes (kdtree and faissflat both there).', '',
                  '| case | built | after the inserts | after REINDEX |', '|---|---|---|---|']

        def cell(m):
            f = m['exact_distances_fraction']
            f = f'{f * 100:.2f}%' if isinstance(f, float) else f
            return f"{m['ms_median']} ms, {f}, auto: {m['auto_picks']}"
        for case in ('same_distribution', 'another_distribution'):
            r = ins[case]
            label = {'same_distribution': 'inserts of the same distribution',
                     'another_distribution': 'inserts of another distribution'}[case]
            lines.append(f"| {label} | {cell(r['built'])} | "
                         f"{cell(r['after_inserts'])} | {cell(r['after_reindex'])} |")
        r = ins['built_empty']
        lines += [f"| built on an empty table | – | {cell(r['built_empty_then_inserted'])} | "
                  f"{cell(r['after_reindex'])} |", '',
                  '(Another distribution: another random basis; the queries come from it, so before the inserts '
                  'they are far from every row.)', '']
    return '\n'.join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--sets', default='cnn512,hard512,cnn4096,demo512',
                    help='comma-separated NAME or NAME:N (%s)' % ', '.join(SETS))
    ap.add_argument('--queries', type=int, default=50, help='timed queries per method and set')
    ap.add_argument('--budgets', default='8,32,128,512', help='kdtree.max_leaves values to time')
    ap.add_argument('--kd-dims', type=int, default=32)
    ap.add_argument('--kd-leaf', type=int, default=128)
    ap.add_argument('--quick', action='store_true',
                    help='a fifth of each size, 20 queries, budgets 8,128 (a few minutes)')
    ap.add_argument('--no-argsort', action='store_true', help='skip the sequential scan (1M runs); '
                    'recall is then against faiss IndexFlatL2')
    ap.add_argument('--no-hnsw', action='store_true', help='no HNSW (pgvector or faiss)')
    ap.add_argument('--no-inserts', action='store_true',
                    help='skip the inserts / REINDEX / built-empty experiment (demo-like, 40k + 40k)')
    ap.add_argument('--dsn', help='use this running server (with pg_prewarm and, for HNSW, pgvector '
                    'available) instead of a throwaway cluster')
    ap.add_argument('--shared-buffers', default='1536MB')
    ap.add_argument('--out', default=os.path.join(HERE, 'results', 'kdtree.json'))
    add_run_args(ap)
    args = ap.parse_args()
    if args.quick:
        args.queries = min(args.queries, 20)
        if args.budgets == ap.get_default('budgets'):
            args.budgets = '8,128'
    args.budgets = [int(b) for b in args.budgets.split(',') if b]
    plan = parse_sets(ap, args.sets, 5 if args.quick else 1)

    # Builds and installs pgvector 0.8.6 once (benchmarks only).
    pgvector = None if args.no_hnsw else ensure_pgvector('kdtree_bench')

    # SIGTERM (and SIGINT, ignored in a background job) stop the throwaway cluster too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    load_before = os.getloadavg()
    if args.keep_dir and args.dsn:
        ap.error('--keep-dir and --dsn: one or the other')
    cluster = None if args.dsn else Cluster(args.shared_buffers, args.keep_dir)
    dsn = args.dsn or cluster.dsn
    try:
        conn = psycopg2.connect(dsn)
        conn.autocommit = True
        cur = conn.cursor()
        cur.execute('CREATE EXTENSION IF NOT EXISTS imgsearch')
        cur.execute('CREATE EXTENSION IF NOT EXISTS pg_prewarm')
        if pgvector:
            cur.execute('CREATE EXTENSION IF NOT EXISTS vector')
        cur.execute('SHOW server_version')
        version = cur.fetchone()[0]
        runs = [bench_set(conn, dsn, name, n, args, seed=2000 + i, have_pgvector=bool(pgvector))
                for i, (name, n) in enumerate(plan)]
        inserts = None if args.no_inserts else inserts_experiment(conn, dsn, 8_000 if args.quick else 40_000, 3000)
        conn.close()
    finally:
        if cluster:
            cluster.stop()

    report = {
        'benchmark': 'kdtree index (exact and leaf budgets) beside faissflat, argsort, faiss Flat and HNSW; '
                     'single query, k=30, L2',
        'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'machine': machine(version, pgvector, load_before),
        'quick': args.quick, 'queries': args.queries, 'alone': args.alone,
        'kdtree_options': {'dims': args.kd_dims, 'leaf_size': args.kd_leaf},
        'sets': runs,
        'inserts': inserts,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(report, f, indent=2)
        f.write('\n')
    md = os.path.splitext(args.out)[0] + '.md'
    with open(md, 'w') as f:
        f.write(markdown(report, os.path.basename(args.out)))
        f.write('\n')
    print(f'wrote {args.out} and {md}')
    return 0 if all(r['kdtree_exact_wrong_answers'] == 0 for r in runs) else 1


if __name__ == '__main__':
    sys.exit(main())
