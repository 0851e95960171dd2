#!/usr/bin/python3
"""lsh benchmark: the lsh index inside PostgreSQL, at its default budget and
at a grid of budgets (lsh.probes, lsh.candidates) and exact (both 0), beside
faissflat, kdtree (exact), the sequential scan + sort (argsort), pgvector's
HNSW index and faiss in this process (IndexFlatL2 and IndexLSH, 1 thread), on
the same data in one run.

Data (bench/bench_data.py, as bench/kdtree_bench.py; queries are held out:
drawn from the same distribution, never in the table):
  cnn512   CNN-like: power-law PCA spectrum lambda_i ~ 1/i in a random basis,
           a positive mean (mostly positive), unit norm; a continuum. 100k x 512.
  hard512  the hard clustered set of faissflat_bench.py. 100k x 512.
  cnn4096  CNN-like as cnn512, 20k x 4096.
  demo512  CNN-like with lambda_i ~ i^-1.87, the spectrum measured on the
           demo's features (bench/results/feature_spectrum.json). 100k x 512.
A set's size can be given as NAME:N: `--sets hard512:1000000,cnn512:1000000
--no-argsort --no-hnsw --shared-buffers 8GB --out bench/results/lsh_1m.json`
is the 1M x 512 run (not a default: it takes long). A set named at two sizes
in one run (demo512,demo512:1000000), or in this run and a report given by
--growth-against, gives each method's latency growth between the sizes.

Each query asks for the 30 nearest (L2), one at a time, timed by the client,
methods round robin query by query after warm-up (--alone: each method's
queries in a row, see bench_common.round_robin), every relation prewarmed
into shared buffers (pg_prewarm). --keep-dir DIR keeps the cluster, the sets
and their indexes for the next run (the 1M runs). Methods:
  lsh_default        imgsearch.method = lsh, lsh.probes and lsh.candidates at
                     their defaults (approximate)
  lsh_pP_cC          lsh.probes = P, lsh.candidates = C (--budgets P:C,...;
                     0 = every bucket / every entry of the probed buckets)
  lsh_pP_cC_eE       the same with lsh.error_bound = E (--budgets P:C:E)
  lsh_eE             the default budget with lsh.error_bound = E
                     (--error-bounds E,...; 0: the fixed count of candidates,
                     as before the error bound), side by side in one build
  lsh_exact          lsh.probes = 0 and lsh.candidates = 0: exact; its answers
                     must equal the truth's (a mismatch fails the bench)
  kdtree_exact       imgsearch.method = kdtree, kdtree.max_leaves = 0
  faissflat, argsort imgsearch.method = faissflat / argsort
  faiss_flat         faiss IndexFlatL2, in process, 1 thread
  faiss_lsh          faiss IndexLSH (random rotation, trained thresholds,
                     --faiss-lsh-bits bits), in process, 1 thread: the 30
                     nearest codes in Hamming distance, no re-rank
  faiss_lsh_refineR  the same, its R nearest codes re-ranked exactly
                     (IndexRefine over faiss_flat's vectors; --faiss-lsh-refine)
  hnsw_efN           pgvector 0.8.6 HNSW (m 16, ef_construction 64),
                     hnsw.ef_search = 40, 100 and 200, on a copy of the table as
                     vector(dim) (bench/pgvector.sh builds it). pgvector
                     indexes at most 2000 dimensions: at 4096 faiss
                     IndexHNSWFlat (same parameters, in process, searched on 1
                     thread, built on all) is timed instead, as faiss_hnsw_efN;
                     no build ratio there.
recall@30 is against argsort's answers (faiss_flat's where --no-argsort).
Every lsh answer is also checked against the spec: 30 rows, none twice, in
non-decreasing exact distance (recomputed here); and a default-budget scan
with no LIMIT (3 queries, untimed) must return rows none twice, in order,
and every row farther than the farthest row it missed (past its first round the search is exact;
rows never go backwards, so rows a first round missed below the last row
returned are lost; their share is reported). A violation fails the bench.
Also: what each lsh setting's scans examine (buckets probed, entries scanned, exact
distances, rows dropped below a returned row, from the scan's DEBUG1 line,
in an untimed pass), CREATE INDEX
times (one process each: max_parallel_maintenance_workers = 0), index sizes
(pg_relation_size) against the raw vectors (n x dim x 4), the index
imgsearch.method = auto takes.

Targets, reported (not enforced): lsh build <= 0.25x pgvector's HNSW build,
lsh index <= 1.3x the raw vectors, recall@30 >= 0.93 after inserts without
REINDEX. Printed ratios: the fastest lsh setting with recall@30 >= 0.95 over
HNSW ef_search 40, lsh default over HNSW ef40, faissflat and kdtree exact.

Last, inserts (--no-inserts skips it): per set of --inserts-sets, an lsh
index built on N rows (--inserts-n), 20% more of the same distribution
inserted, recall@30 and latency of lsh_default before, after the inserts (no
REINDEX; imgsearch_index_check run on it) and after REINDEX.

--lsh-only times lsh and HNSW alone (no kdtree, faissflat, argsort, faiss
IndexLSH, lsh_exact nor inserts; recall against faiss IndexFlatL2): the
short run for comparing lsh settings. Latencies: median, p95 and p99.

Writes bench/results/lsh.json and lsh.md and prints the ratios.
    /usr/bin/python3 bench/lsh_bench.py [--quick] [--sets cnn512,hard512,cnn4096,demo512]
                                        [--queries 50] [--budgets 8:250,64:300,...]
"""
import argparse
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
from bench_common import (K, SETS, Hnsw, Sessions, auto_picks, debug1_notices, drop_set,  # noqa: E402
                          ensure_pgvector, fmt, hnsw40_of, load_set, machine, make_set, parse_sets,
                          keep_builds, prepare_set, query_sql, recall, round_robin, timing_words,
                          add_run_args)
from faissflat_bench import Cluster, copy_binary, summary  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET_BUILD_OVER_HNSW = 0.25
TARGET_SIZE_OVER_RAW = 1.3
TARGET_RECALL_AFTER_INSERTS = 0.93
RECALL_FOR_RATIO = 0.95
DEFAULT_BUDGETS = '8:250,16:500,32:1000,64:300,128:2000,256:4000'
QUICK_BUDGETS = '8:250,64:2000'


def lsh_with(args):
    opts = []
    if args.lsh_bits:
        opts.append(f'bits = {args.lsh_bits}')
    if args.lsh_buckets is not None:
        opts.append(f'buckets = {args.lsh_buckets}')
    return f' WITH ({", ".join(opts)})' if opts else ''


def budget_name(p, c, e=None):
    return f'lsh_p{p}_c{c}' + ('' if e is None else f'_e{e:g}')


def budget_settings(p, c, e=None):
    out = [f'SET lsh.probes = {p}', f'SET lsh.candidates = {c}']
    return out + ([] if e is None else [f'SET lsh.error_bound = {e:g}'])


def order_violations(x, xq, answers, expect_rows):
    """Answers that break the spec: not expect_rows rows, a row twice, or a
    row nearer than the one before it (exact distances recomputed here in
    double; a float rounding's worth of slack)."""
    bad = 0
    for i, ids in enumerate(answers):
        if len(ids) != expect_rows or len(set(ids)) != len(ids):
            bad += 1
            continue
        d = np.linalg.norm(x[ids].astype(np.float64) - xq[i].astype(np.float64), axis=1)
        bad += bool(np.any(np.diff(d) < -1e-6 * max(1.0, float(d.max()))))
    return bad


def same_up_to_ties(x, q, a, b):
    """Whether id lists a and b are the same answer: the same ids, and
    where the order differs, rows at the same distance (ties, which the
    index orders by slot and a sort as it likes)."""
    if a == b:
        return True
    if sorted(a) != sorted(b):
        return False
    da = np.linalg.norm(x[a].astype(np.float64) - q, axis=1)
    db = np.linalg.norm(x[b].astype(np.float64) - q, axis=1)
    return bool(np.allclose(da, db, rtol=1e-7, atol=0))


def lsh_unbounded_rows(dsn, table, index, nq):
    """Rows an lsh scan with no LIMIT returns at the default budget, for
    queries 0..nq-1 (untimed), and whether they keep the search's
    promise: none twice, non-decreasing, and every row farther than the
    farthest one missed (distances recomputed by a sequential scan)."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    c = conn.cursor()
    c.execute("LOAD 'imgsearch'")
    c.execute("SET imgsearch.method = 'lsh'")
    c.execute('SET enable_seqscan = off')     # a whole sort may look cheaper to the planner
    q = f'(SELECT v FROM {table}_q WHERE id = %s)'
    sql = f'SELECT id, v <-> {q} FROM {table} ORDER BY v <-> {q}'
    c.execute('EXPLAIN ' + sql, (0, 0))
    plan = '\n'.join(r[0] for r in c.fetchall())
    assert f'Index Scan using {index}' in plan, plan
    counts, kept = [], True
    for i in range(nq):
        c.execute(sql, (i, i))
        got = c.fetchall()
        c.execute("SET imgsearch.method = 'argsort'")
        c.execute(f'SELECT id, v <-> {q} FROM {table} WHERE v IS NOT NULL', (i,))
        truth = dict(c.fetchall())
        c.execute("SET imgsearch.method = 'lsh'")
        ids = [r[0] for r in got]
        d = [r[1] for r in got]
        got_ids = set(ids)
        missed = set(truth) - got_ids
        floor = max((truth[m] for m in missed), default=float('-inf'))
        kept &= (len(got_ids) == len(ids) and all(a <= b for a, b in zip(d, d[1:]))
                 and all(m in got_ids for m, v in truth.items() if v > floor))
        counts.append(len(ids))
    conn.close()
    return counts, kept


def lsh_scan_stats(dsn, sql, nq, n, settings=()):
    """What lsh searches did under settings (the scan's DEBUG1 line),
    untimed: fractions of the buckets probed, of the entries scanned and of
    the vectors whose exact distance was computed, median and max; exact
    distances and rows dropped below a returned row (a failed bound), median,
    p95 and max."""
    probed, entries, exact, buckets, rounds, keys, below = [], [], [], [], [], [], []
    first = None
    for notices in debug1_notices(dsn, ["SET imgsearch.method = 'lsh'"] + list(settings), sql, nq):
        for line in notices:
            m = re.search(r'lsh scan of .*?: \d+ rows, (\d+) rounds, (\d+) of (\d+) buckets probed, '
                          r'(\d+) entries scanned, (\d+) exact distances(?:, (\d+) rows below)?', line)
            if m:
                rounds.append(int(m.group(1)))
                probed.append(int(m.group(2)) / max(int(m.group(3)), 1))
                buckets.append(int(m.group(3)))
                entries.append(int(m.group(4)) / n)
                exact.append(int(m.group(5)) / n)
                keys.append(int(m.group(5)))
                below.append(int(m.group(6) or 0))
            elif first is None and 'lsh' in line:
                first = line.strip()
    if not probed:
        return {'no_debug1_line': first}

    def mm(v):
        return {'median': round(statistics.median(v), 4), 'max': round(max(v), 4)}

    def dist(v):
        return {'median': statistics.median(v), 'p95': float(np.percentile(v, 95)), 'max': max(v)}
    return {'buckets': statistics.median(buckets), 'rounds': mm(rounds), 'buckets_probed_fraction': mm(probed),
            'entries_scanned_fraction': mm(entries), 'exact_distances_fraction': mm(exact),
            'exact_distances': dist(keys), 'rows_below_returned': dist(below)}


def bench_set(conn, dsn, name, n, args, seed, have_pgvector):
    _, dim, _, alpha = SETS[name]
    nq = args.queries
    t0 = time.perf_counter()
    x, xq = make_set(name, n, nq, seed)
    print(f'{name}: {n} x {dim}, {nq} queries (data {time.perf_counter() - t0:.0f} s)', flush=True)
    cur = conn.cursor()
    ams = {'lsh': ('lsh', f'USING lsh (v imgfeat_l2_ops){lsh_with(args)}')}
    if not args.lsh_only:
        ams.update({'kdtree': ('kd', 'USING kdtree (v imgfeat_l2_ops)'),
                    'faissflat': ('ff', 'USING faissflat (v imgfeat_l2_ops)')})
    table, index, builds = prepare_set(cur, 'lsb', name, n, seed, x, xq, ams, bool(args.keep_dir))
    sizes = {}
    relations = [table, f'{table}_q'] + list(index.values())
    for am, rel in index.items():
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
    bits = args.faiss_lsh_bits or args.lsh_bits or min(dim, 1024)
    if not args.no_faiss_lsh:
        t = time.perf_counter()
        flsh = faiss.IndexLSH(dim, bits, True, True)     # random rotation, trained (median) thresholds
        flsh.train(x)
        flsh.add(x)
        builds['faiss_lsh_in_process_1_thread'] = round(time.perf_counter() - t, 2)
        print(f'  faiss IndexLSH ({bits} bits) build {builds["faiss_lsh_in_process_1_thread"]} s', flush=True)
        refine = faiss.IndexRefine(flsh, flat)           # re-ranks from flat's vectors: no second copy
        refine.k_factor = (args.faiss_lsh_refine + 0.5) / K      # faiss re-ranks int(K * k_factor) codes

    sessions = Sessions(dsn, warm=args.alone)
    sql = query_sql(table)
    lsh_node = f'Index Scan using {index["lsh"]}'
    lsh = ["SET imgsearch.method = 'lsh'"]
    own = {am: [table, f'{table}_q', rel] for am, rel in index.items()}
    methods = {'lsh_default': sessions.method(lsh, sql, lsh_node, own['lsh'])}
    lsh_settings = {'lsh_default': []}
    for e in args.error_bounds:
        lsh_settings[f'lsh_e{e:g}'] = [f'SET lsh.error_bound = {e:g}']
    for b in args.budgets:
        lsh_settings[budget_name(*b)] = budget_settings(*b)
    if not args.no_lsh_exact:
        lsh_settings['lsh_exact'] = ['SET lsh.probes = 0', 'SET lsh.candidates = 0']
    for setting, settings in lsh_settings.items():
        if setting != 'lsh_default':
            methods[setting] = sessions.method(lsh + settings, sql, lsh_node, own['lsh'])
    if not args.lsh_only:
        methods['kdtree_exact'] = sessions.method(["SET imgsearch.method = 'kdtree'", 'SET kdtree.max_leaves = 0'],
                                                  sql, f'Index Scan using {index["kdtree"]}', own['kdtree'])
        methods['faissflat'] = sessions.method(["SET imgsearch.method = 'faissflat'"], sql,
                                               f'Index Scan using {index["faissflat"]}', own['faissflat'])
    if not args.no_argsort:
        methods['argsort'] = sessions.method(["SET imgsearch.method = 'argsort'"], sql, 'Seq Scan',
                                             [table, f'{table}_q'])
    methods['faiss_flat'] = lambda i: flat.search(xq[i:i + 1], K)[1][0].tolist()
    if not args.no_faiss_lsh:
        methods['faiss_lsh'] = lambda i: flsh.search(xq[i:i + 1], K)[1][0].tolist()
        methods[f'faiss_lsh_refine{args.faiss_lsh_refine}'] = lambda i: refine.search(xq[i:i + 1], K)[1][0].tolist()
    hnsw.add_methods(methods, sessions, table, xq)

    seconds, answers, query_s = round_robin(methods, nq, seed, blocks=args.alone)
    sessions.close()
    scan = lsh_scan_stats(dsn, sql, nq, n)
    scans = {setting: lsh_scan_stats(dsn, sql, nq, n, settings) for setting, settings in lsh_settings.items()}
    unbounded, unbounded_kept = lsh_unbounded_rows(dsn, table, index['lsh'], min(3, nq))
    # What the planner takes with the three imgsearch indexes there (imgsearch.method = auto).
    auto = auto_picks(cur, sql, {rel: am for am, rel in index.items()}) if not args.lsh_only else None

    truth_name = 'faiss_flat' if args.no_argsort else 'argsort'
    truth = answers[truth_name]
    lat = {m: summary(s) for m, s in seconds.items()}
    for m in lat:
        lat[m]['recall_at_30'] = round(recall(answers[m], truth), 4)
    lsh_names = [m for m in methods if m.startswith('lsh_')]
    violations = {m: order_violations(x, xq, answers[m], min(K, n)) for m in lsh_names}
    exact_wrong = (sum(not same_up_to_ties(x, xq[i], a, b) for i, (a, b) in enumerate(zip(answers['lsh_exact'], truth)))
                   if 'lsh_exact' in answers else None)
    raw = n * dim * 4
    med = {m: v['median'] for m, v in lat.items()}
    hnsw40, hnsw40_is = hnsw40_of(med)
    hnsw_build = builds.get('hnsw')
    # the fastest lsh setting that reaches the recall (lsh_exact reaches it by definition)
    good = [m for m in lsh_names if lat[m]['recall_at_30'] >= RECALL_FOR_RATIO]
    best = min(good, key=lambda m: med[m]) if good else None
    ratios = {
        'lsh_at_recall_0.95': best and {
            'method': best, 'median_ms': med[best], 'recall_at_30': lat[best]['recall_at_30'],
            'over_hnsw_ef40': round(med[best] / med[hnsw40], 2) if hnsw40 else None},
        'hnsw_ef40_is': hnsw40_is,
        'hnsw_ef40_recall_at_30': lat[hnsw40]['recall_at_30'] if hnsw40 else None,
        'lsh_default_over_hnsw_ef40': round(med['lsh_default'] / med[hnsw40], 2) if hnsw40 else None,
        'lsh_default_over_faissflat': round(med['lsh_default'] / med['faissflat'], 3) if 'faissflat' in med else None,
        'lsh_default_over_kdtree_exact': (round(med['lsh_default'] / med['kdtree_exact'], 3)
                                          if 'kdtree_exact' in med else None),
        'lsh_exact_over_faissflat': (round(med['lsh_exact'] / med['faissflat'], 3)
                                     if 'lsh_exact' in med and 'faissflat' in med else None),
        'lsh_build_over_hnsw_build': round(builds['lsh'] / hnsw_build, 3) if hnsw_build else None,
        'lsh_build_over_kdtree_build': round(builds['lsh'] / builds['kdtree'], 2) if builds.get('kdtree') else None,
        'lsh_size_over_raw': round(sizes['lsh'] / raw, 4),
        'kdtree_size_over_raw': round(sizes['kdtree'] / raw, 4) if 'kdtree' in sizes else None,
        'faissflat_size_over_raw': round(sizes['faissflat'] / raw, 4) if 'faissflat' in sizes else None,
        'hnsw_size_over_raw': round(sizes['hnsw'] / raw, 4) if 'hnsw' in sizes else None,
    }
    targets = {
        'lsh_build_over_hnsw_build_le_0.25': (ratios['lsh_build_over_hnsw_build'] <= TARGET_BUILD_OVER_HNSW
                                              if hnsw_build else None),
        'lsh_size_over_raw_le_1.3': ratios['lsh_size_over_raw'] <= TARGET_SIZE_OVER_RAW,
    }
    out = {
        'set': name, 'n': n, 'dim': dim, 'spectrum_exponent': alpha, 'k': K, 'queries': nq,
        'lsh_options': lsh_with(args).strip() or 'defaults',
        'faiss_lsh': {'bits': bits, 'refine': args.faiss_lsh_refine},
        'recall_truth': truth_name,
        'lsh_exact_wrong_answers': exact_wrong,
        'lsh_spec_violations': violations,
        'lsh_default_unbounded_scan_rows': unbounded,
        'lsh_default_unbounded_scan_kept_promise': unbounded_kept,
        'lsh_default_scan': scan,
        'lsh_scans': scans,
        'auto_picks': auto,
        'latency_ms': lat,
        'build_s': builds,
        'index_bytes': sizes,
        'raw_vector_bytes': raw,
        'ratios': ratios,
        'targets': targets,
        'seconds': {'queries': round(query_s, 1), 'total': round(time.perf_counter() - t0, 1)},
    }
    if not args.keep_dir:
        drop_set(cur, table)
    print_set(out)
    return out


def inserts_experiment(conn, dsn, name, n, args, seed):
    """An lsh index built on n rows of the set, then n/5 more of the same
    distribution inserted (no REINDEX), then REINDEX: recall@30 (against the
    exact answers over the rows there) and median latency of 30 default-
    budget searches each time; imgsearch_index_check after the inserts."""
    _, dim, _, _ = SETS[name]
    more = n // 5
    x, xq = make_set(name, n + more, 30, seed)
    cur = conn.cursor()
    cur.execute("SET maintenance_work_mem = '1GB'")
    cur.execute('SET max_parallel_maintenance_workers = 0')
    table = 'lsi'
    load_set(cur, table, x[:n], xq)
    sql = query_sql(table)

    def measure(rows):
        flat = faiss.IndexFlatL2(dim)
        flat.add(x[:rows])
        truth = flat.search(xq, K)[1].tolist()
        c = psycopg2.connect(dsn)
        c.autocommit = True
        cc = c.cursor()
        cc.execute("LOAD 'imgsearch'")
        cc.execute("SET imgsearch.method = 'lsh'")
        got, ms = [], []
        for i in list(range(3)) + list(range(30)):
            t = time.perf_counter()
            cc.execute(sql, (i,))
            ids = [r[0] for r in cc.fetchall()]
            ms.append((time.perf_counter() - t) * 1000)
            got.append(ids)
        c.close()
        got = got[3:]
        return {'rows': rows, 'recall_at_30': round(recall(got, truth), 4),
                'ms_median': round(statistics.median(ms[3:]), 2),
                'spec_violations': order_violations(x, xq, got, K)}

    t = time.perf_counter()
    cur.execute(f'CREATE INDEX lsi_lsh ON {table} USING lsh (v imgfeat_l2_ops)' + lsh_with(args))
    r = {'set': name, 'n': n, 'inserted': more, 'build_s': round(time.perf_counter() - t, 2),
         'built': measure(n)}
    copy_binary(cur, table, x[n:], first_id=n)
    cur.execute(f'ANALYZE {table}')
    r['after_inserts'] = measure(n + more)
    try:
        cur.execute("SELECT * FROM imgsearch_index_check('lsi_lsh')")
        cols = [d[0] for d in cur.description]
        r['index_check_after_inserts'] = dict(zip(cols, cur.fetchone()))
    except psycopg2.Error as e:
        r['index_check_after_inserts'] = f'ERROR {e.pgcode}: {e.pgerror.strip() if e.pgerror else e}'
    cur.execute('REINDEX INDEX lsi_lsh')
    r['after_reindex'] = measure(n + more)
    r['target_recall_after_inserts_ge_0.93'] = r['after_inserts']['recall_at_30'] >= TARGET_RECALL_AFTER_INSERTS
    drop_set(cur, table)
    print(f'  inserts: {json.dumps(r, default=str)}', flush=True)
    return r


def growth(runs, others):
    """Per set named at two or more sizes (in this run or in the reports
    given): each method's median latency at the largest size over the
    smallest."""
    by_set = {}
    for r in runs + others:
        by_set.setdefault(r['set'], {})[r['n']] = r     # this run's replaces an older report's
    out = []
    for name, sized in by_set.items():
        if len(sized) < 2:
            continue
        small, large = sized[min(sized)], sized[max(sized)]
        out.append({'set': name, 'n_small': small['n'], 'n_large': large['n'],
                    'median_ms_large_over_small': {
                        m: round(large['latency_ms'][m]['median'] / small['latency_ms'][m]['median'], 2)
                        for m in large['latency_ms'] if m in small['latency_ms']}})
    return out


def print_set(r):
    lat = r['latency_ms']
    print(f"  {r['set']} {r['n']} x {r['dim']}: median ms (recall@30)", flush=True)
    for m, v in lat.items():
        print(f"    {m:22s} {v['median']:9.2f}  p95 {v['p95']:9.2f}  p99 {v['p99']:9.2f}  "
              f"recall {v['recall_at_30']:.4f}")
    rt = r['ratios']
    print(f"  builds s: {r['build_s']}; index / raw: lsh {rt['lsh_size_over_raw']}, "
          f"kdtree {rt['kdtree_size_over_raw']}, faissflat {rt['faissflat_size_over_raw']}, "
          f"hnsw {rt['hnsw_size_over_raw']}")
    print(f"  ratios: {json.dumps(rt)}", flush=True)
    print(f"  targets: {json.dumps(r['targets'])}; lsh_exact answers differing from {r['recall_truth']}: "
          f"{r['lsh_exact_wrong_answers']} of {r['queries']}; lsh answers breaking the spec: "
          f"{json.dumps(r['lsh_spec_violations'])}; rows of unbounded default scans (of {r['n']}): "
          f"{r['lsh_default_unbounded_scan_rows']}; lsh default scans: {json.dumps(r['lsh_default_scan'])}; "
          f"auto takes {r['auto_picks']}", flush=True)


def scan_sentence(st):
    if not st or 'no_debug1_line' in st:
        return ' (The lsh scan printed no DEBUG1 line of the expected form.)'
    return (f" A default-budget lsh search probed {st['buckets_probed_fraction']['median'] * 100:.1f}% of "
            f"the {st['buckets']:.0f} buckets, scanned {st['entries_scanned_fraction']['median'] * 100:.2f}% "
            f"of the entries and computed {st['exact_distances_fraction']['median'] * 100:.2f}% of the exact "
            f"distances (medians).")


def yes_no(v):
    return '–' if v is None else ('met' if v else '**missed**')


def overview(report):
    """Every set in one table, as issue 24 lays it out: median ms (recall@30)
    of the exact methods, lsh's settings and HNSW; then p95 and p99, with
    each p95 over 10x its median marked."""
    sets = report['sets']
    if not sets:
        return []
    cols = []
    for r in sets:
        cols += [m for m in r['latency_ms'] if m not in cols and m not in ('argsort', 'faiss_flat')]
    head = '| set | ' + ' | '.join(cols) + ' |'
    rule = '|---|' + '---|' * len(cols)
    median, tail = ['## All sets: median ms (recall@30)', '', head, rule], \
        ['## All sets: p95 / p99 ms (p95 over 10x the median in bold)', '', head, rule]
    for r in sets:
        lat = r['latency_ms']
        label = f"{r['set']} {r['n']:,}"
        median.append(f"| {label} | " + ' | '.join(
            f"{lat[m]['median']} ({lat[m]['recall_at_30']})" if m in lat else '–' for m in cols) + ' |')

        def tail_cell(v):
            p95 = f"**{v['p95']}**" if v['p95'] > 10 * v['median'] else f"{v['p95']}"
            return f"{p95} / {v['p99']}"
        tail.append(f"| {label} | " + ' | '.join(tail_cell(lat[m]) if m in lat else '–' for m in cols) + ' |')
    return median + [''] + tail + ['']


def markdown(report):
    m = report['machine']
    lines = ['# lsh in the database: measurements (bench/lsh_bench.py)', '',
             f"{report['date']}, {m['cpu']}, {m['cores']} cores, PostgreSQL {m['postgres']}, "
             f"faiss {m['faiss']}, pgvector {m['pgvector'] or 'absent'}; load average before/after "
             f"{m['load_average_1min_before_after']}. Single queries, k = 30, L2, held-out queries, "
             + timing_words(report) + f", every relation prewarmed; medians of {report['queries']} "
             f"queries{' (x2)' if report.get('alone') else ''}. lsh index options: {report['lsh_options']}; budgets lsh_pP_cC: lsh.probes = P, "
             "lsh.candidates = C. Builds run in one process (max_parallel_maintenance_workers = 0). "
             "Raw figures: " + os.path.basename(report['json']) + '.'
             + (' **Quick run (small sizes): not the figures to quote.**' if report['quick'] else ''), '']
    for r in report['sets']:
        rt, tg = r['ratios'], r['targets']
        best = rt['lsh_at_recall_0.95']
        lines += [f"## {r['set']}: {r['n']} x {r['dim']}"
                  + (f", spectrum lambda_i ~ i^-{r['spectrum_exponent']}" if r['spectrum_exponent'] else
                     ', hard clustered'), '',
                  f"Recall against {r['recall_truth']}. lsh_exact answers differing from it: "
                  f"{fmt(r['lsh_exact_wrong_answers'])} of {r['queries']}; lsh answers breaking the spec "
                  f"(rows, order, duplicates): {sum(r['lsh_spec_violations'].values())}; rows an lsh scan with "
                  f"no LIMIT returned at the default budget: {', '.join(map(str, r['lsh_default_unbounded_scan_rows']))}"
                  f" of {r['n']} (all, by the spec)."
                  + scan_sentence(r['lsh_default_scan'])
                  + f" With all three imgsearch indexes, imgsearch.method = auto takes {r['auto_picks']}.", '',
                  '| method | median ms | p95 ms | p99 ms | recall@30 | exact distances: median, p95 '
                  '| rows below a returned row: median, max |', '|---|---|---|---|---|---|---|']
        for name, v in r['latency_ms'].items():
            st = r.get('lsh_scans', {}).get(name) or {}
            ed, rb = st.get('exact_distances'), st.get('rows_below_returned')
            lines.append(f"| {name} | {v['median']} | {v['p95']} | {v['p99']} | {v['recall_at_30']} | "
                         + (f"{ed['median']:g}, {ed['p95']:g}" if ed else '–') + ' | '
                         + (f"{rb['median']:g}, {rb['max']:g}" if rb else '–') + ' |')
        lines += ['', '| index | build s | size MB | size / raw vectors |', '|---|---|---|---|']
        for am in ('lsh', 'kdtree', 'faissflat', 'hnsw'):
            if am in r['build_s'] and am in r['index_bytes']:
                size = r['index_bytes'].get(am)
                lines.append(f"| {am} | {r['build_s'][am]} | {fmt(size / 1e6 if size else None, 1)} | "
                             f"{fmt(size / r['raw_vector_bytes'] if size else None, 3)} |")
        for key, label in (('faiss_hnsw_in_process_all_cores', 'faiss HNSW (in process, all cores)'),
                           ('faiss_lsh_in_process_1_thread',
                            f"faiss IndexLSH, {r['faiss_lsh']['bits']} bits (in process, 1 thread)")):
            if key in r['build_s']:
                lines.append(f"| {label} | {r['build_s'][key]} | – | – |")
        lines += ['', 'Ratios: fastest lsh setting at recall@30 >= 0.95: '
                  + (f"{best['method']}, {best['median_ms']} ms (recall {best['recall_at_30']})"
                     + (f", {fmt(best['over_hnsw_ef40'])}x HNSW ef40" if best['over_hnsw_ef40'] else '')
                     if best else 'none reached it')
                  + (f" (HNSW ef40: {rt['hnsw_ef40_is']}, recall {fmt(rt['hnsw_ef40_recall_at_30'])})"
                     if rt['hnsw_ef40_is'] else ' (no HNSW timed)')
                  + f"; lsh default / HNSW ef40 = {fmt(rt['lsh_default_over_hnsw_ef40'])}; lsh default / faissflat = "
                  f"{fmt(rt['lsh_default_over_faissflat'], 3)}; lsh default / kdtree exact = "
                  f"{fmt(rt['lsh_default_over_kdtree_exact'], 3)}; lsh exact / faissflat = "
                  f"{fmt(rt['lsh_exact_over_faissflat'], 3)}.",
                  '', f"Targets: lsh build / HNSW build = {fmt(rt['lsh_build_over_hnsw_build'], 3)} "
                  f"(<= {TARGET_BUILD_OVER_HNSW}: {yes_no(tg['lsh_build_over_hnsw_build_le_0.25'])}); lsh size / "
                  f"raw = {fmt(rt['lsh_size_over_raw'], 3)} (<= {TARGET_SIZE_OVER_RAW}: "
                  f"{yes_no(tg['lsh_size_over_raw_le_1.3'])}).", '']
    lines += overview(report)
    if report['growth']:
        lines += ['## Latency growth with the table', '',
                  '| set | sizes | ' + ' | '.join(['lsh_default', 'faissflat', 'kdtree_exact', 'hnsw_ef40'])
                  + ' |', '|---|---|---|---|---|---|']
        for g in report['growth']:
            gm = g['median_ms_large_over_small']
            lines.append(f"| {g['set']} | {g['n_large']} / {g['n_small']} | "
                         + ' | '.join(fmt(gm.get(mm)) for mm in ('lsh_default', 'faissflat', 'kdtree_exact',
                                                                 'hnsw_ef40')) + ' |')
        lines += ['', 'Every method: ' + os.path.basename(report['json']) + ' ("growth").', '']
    if report['inserts']:
        lines += ['## Inserts without REINDEX', '',
                  'lsh index built on N rows, N/5 of the same distribution inserted, then REINDEX; 30 '
                  'default-budget searches each (recall@30 against the exact answers over the rows there, '
                  'median ms).', '',
                  '| set | built on N | after N/5 inserts | after REINDEX | recall >= 0.93 after the inserts |'
                  ' index check |', '|---|---|---|---|---|---|']

        def cell(mm):
            return f"{mm['rows']} rows: recall {mm['recall_at_30']}, {mm['ms_median']} ms"
        for r in report['inserts']:
            chk = r['index_check_after_inserts']
            chk = 'ok' if isinstance(chk, dict) else chk
            lines.append(f"| {r['set']} | {cell(r['built'])} | {cell(r['after_inserts'])} | "
                         f"{cell(r['after_reindex'])} | {yes_no(r['target_recall_after_inserts_ge_0.93'])} | "
                         f"{chk} |")
        lines.append('')
    return '\n'.join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--sets', default='cnn512,hard512,cnn4096,demo512',
                    help='comma-separated NAME or NAME:N (%s)' % ', '.join(SETS))
    ap.add_argument('--queries', type=int, default=50, help='timed queries per method and set')
    ap.add_argument('--budgets', default=DEFAULT_BUDGETS,
                    help='lsh budgets to time, probes:candidates[:error_bound],... (0: every bucket / every '
                         'entry; error_bound: lsh.error_bound, else its default)')
    ap.add_argument('--error-bounds', default='0',
                    help='lsh.error_bound values to time at the default budget, side by side (lsh_eE; '
                         '0: the fixed count of candidates); empty: none')
    ap.add_argument('--lsh-only', action='store_true',
                    help='lsh and HNSW alone: no kdtree, faissflat, argsort, faiss IndexLSH, lsh_exact nor '
                         'inserts (recall against faiss IndexFlatL2)')
    ap.add_argument('--lsh-bits', type=int, help="the lsh index's bits (default: the index's default)")
    ap.add_argument('--lsh-buckets', type=int,
                    help="the lsh index's buckets (default: its default, 0: sqrt(rows) at build)")
    ap.add_argument('--faiss-lsh-bits', type=int,
                    help='faiss IndexLSH bits (default: --lsh-bits, else min(dim, 1024))')
    ap.add_argument('--faiss-lsh-refine', type=int, default=1000,
                    help='codes faiss_lsh_refine re-ranks exactly (default 1000)')
    ap.add_argument('--quick', action='store_true',
                    help=f'a smoke test: a twentieth of each size, 10 queries, budgets {QUICK_BUDGETS}, '
                         'inserts on 4000 rows of demo512 (a minute or two)')
    ap.add_argument('--no-argsort', action='store_true', help='skip the sequential scan (1M runs); '
                    'recall is then against faiss IndexFlatL2')
    ap.add_argument('--no-hnsw', action='store_true', help='no HNSW (pgvector or faiss)')
    ap.add_argument('--no-lsh-exact', action='store_true', help='do not time lsh_exact')
    ap.add_argument('--no-faiss-lsh', action='store_true',
                    help='no faiss IndexLSH (its build takes minutes at 1M: 1M runs)')
    ap.add_argument('--no-inserts', action='store_true', help='skip the inserts experiment')
    ap.add_argument('--inserts-sets', default='demo512,hard512', help='sets of the inserts experiment')
    ap.add_argument('--inserts-n', type=int, default=50_000, help='rows the inserts experiment builds on')
    ap.add_argument('--growth-against', action='append', default=[], metavar='JSON',
                    help='an earlier lsh_bench report (e.g. bench/results/lsh.json for a 1M run): latency '
                         'growth of sets it has at another size')
    ap.add_argument('--dsn', help='use this running server (with pg_prewarm and, for HNSW, pgvector '
                    'available) instead of a throwaway cluster')
    ap.add_argument('--shared-buffers', default='1536MB')
    ap.add_argument('--out', default=os.path.join(HERE, 'results', 'lsh.json'))
    add_run_args(ap)
    args = ap.parse_args()
    if args.quick:
        args.queries = min(args.queries, 10)
        if args.budgets == DEFAULT_BUDGETS:
            args.budgets = QUICK_BUDGETS
        if args.inserts_n == ap.get_default('inserts_n'):
            args.inserts_n = 4000
        if args.inserts_sets == ap.get_default('inserts_sets'):
            args.inserts_sets = 'demo512'
    if args.lsh_only:
        args.no_argsort = args.no_faiss_lsh = args.no_lsh_exact = args.no_inserts = True
    try:
        budgets = []
        for b in (b for b in args.budgets.split(',') if b):
            f = b.split(':')
            assert len(f) in (2, 3)
            budgets.append((int(f[0]), int(f[1])) + ((float(f[2]),) if len(f) == 3 else ()))
            assert min(budgets[-1]) >= 0
        args.budgets = budgets
    except (ValueError, AssertionError):
        ap.error('--budgets: probes:candidates[:error_bound],... (numbers >= 0)')
    try:
        args.error_bounds = [float(e) for e in args.error_bounds.split(',') if e]
        assert all(e >= 0 for e in args.error_bounds)
    except (ValueError, AssertionError):
        ap.error('--error-bounds: numbers >= 0')
    plan = parse_sets(ap, args.sets, 20 if args.quick else 1)
    inserts_plan = [] if args.no_inserts else [name for name, _ in parse_sets(ap, args.inserts_sets)]
    others = []
    for path in args.growth_against:
        with open(path) as f:
            others += json.load(f)['sets']

    # Builds and installs pgvector 0.8.6 once (benchmarks only).
    pgvector = None if args.no_hnsw else ensure_pgvector('lsh_bench')

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
        cur.execute("SELECT 1 FROM pg_am WHERE amname = 'lsh'")
        if cur.fetchone() is None:
            print('lsh_bench: the installed imgsearch has no lsh access method', file=sys.stderr)
            return 1
        runs = [bench_set(conn, dsn, name, n, args, seed=4000 + i, have_pgvector=bool(pgvector))
                for i, (name, n) in enumerate(plan)]
        inserts = [inserts_experiment(conn, dsn, name, args.inserts_n, args, seed=5000 + i)
                   for i, name in enumerate(inserts_plan)]
        conn.close()
    finally:
        if cluster:
            cluster.stop()

    report = {
        'benchmark': 'lsh index (default budget, a grid of lsh.probes / lsh.candidates, exact) beside faissflat, '
                     'kdtree, argsort, faiss Flat and LSH, and HNSW; single query, k=30, L2',
        'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'machine': machine(version, pgvector, load_before),
        'quick': args.quick, 'queries': args.queries, 'alone': args.alone, 'json': args.out,
        'lsh_options': lsh_with(args).strip() or 'defaults',
        'budgets': [':'.join(f'{v:g}' for v in b) for b in args.budgets],
        'error_bounds': args.error_bounds,
        'sets': runs,
        'growth': growth(runs, others),
        'inserts': inserts,
    }
    for g in report['growth']:
        print(f"growth {g['set']} {g['n_large']} / {g['n_small']}: {json.dumps(g['median_ms_large_over_small'])}")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(report, f, indent=2, default=str)
        f.write('\n')
    md = os.path.splitext(args.out)[0] + '.md'
    with open(md, 'w') as f:
        f.write(markdown(report))
        f.write('\n')
    print(f'wrote {args.out} and {md}')
    missed = [f"{r['set']}: {k}" for r in runs for k, v in r['targets'].items() if v is False]
    missed += [f"inserts {r['set']}: recall after inserts {r['after_inserts']['recall_at_30']}"
               for r in inserts if not r['target_recall_after_inserts_ge_0.93']]
    if missed:
        print('lsh_bench: targets missed (reported, not a failure): ' + '; '.join(missed))
    wrong = [r['set'] for r in runs if r['lsh_exact_wrong_answers'] or sum(r['lsh_spec_violations'].values())
             or not r['lsh_default_unbounded_scan_kept_promise']]
    wrong += [f"inserts {r['set']}" for r in inserts
              if any(r[s]['spec_violations'] for s in ('built', 'after_inserts', 'after_reindex'))]
    if wrong:
        print('lsh_bench: lsh answers wrong (exact mode differs from the truth; rows out of order, missing or '
              'twice; or a scan with no LIMIT missing a row farther than one it missed): ' + ', '.join(wrong), file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
