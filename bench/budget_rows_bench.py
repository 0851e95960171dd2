#!/usr/bin/python3
"""How many rows a budget scan returns, against how many it should
(issue queries, item 1): on 20k uniform random 64-d rows, the scenarios the
issue measured, with the index forced (imgsearch.method) at a small budget:
  - kdtree, kdtree.max_leaves = 1, LIMIT 2000, under <-> and <=>;
  - kdtree, kdtree.max_leaves = 1, a 1% filter, LIMIT 500;
  - lsh, lsh.probes = 1, lsh.candidates = 16, a 0.1% filter, LIMIT 500;
and recall@30 (unfiltered) at those budgets, which the change must keep.
Per scenario, over 10 queries: rows returned (mean, min), rows that should
come (min(LIMIT, qualifying rows)), whether every answer was in
non-decreasing distance with no id twice. Not a test: `make check` holds
the same properties on small tables (test/pgtap/filtered_topk.sql).

    python3 bench/budget_rows_bench.py [--out bench/results/budget_rows.json]
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_cluster import Cluster, connect, machine_state  # noqa: E402

N, DIM, QUERIES = 20000, 64, 10


def vec(v):
    return "[" + ",".join(f"{x:.6f}" for x in v) + "]"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    rng = np.random.default_rng(21)
    data = rng.random((N, DIM), dtype=np.float32)
    sel = rng.integers(0, 1000, N)
    queries = rng.random((QUERIES, DIM), dtype=np.float32)
    model = os.environ.get("IMGSEARCH_BENCH_MODEL", "/dev/null")
    cl = Cluster(model if os.path.exists(model) else "/dev/null", ["shared_preload_libraries = 'imgsearch'",
                                                                    "imgsearch.model_workers = 0"])
    out = {"machine": machine_state(), "n": N, "dim": DIM, "queries": QUERIES, "scenarios": []}
    try:
        conn = connect(cl.dsn)
        cur = conn.cursor()
        cur.execute("CREATE EXTENSION imgsearch")
        cur.execute(f"CREATE TABLE t (id int, sel int, v imgfeat({DIM}))")
        rows = "\n".join(f"{i}\t{sel[i]}\t{vec(data[i])}" for i in range(N))
        import io
        cur.copy_expert("COPY t FROM STDIN", io.StringIO(rows))
        t0 = time.time()
        cur.execute("CREATE INDEX t_kd_l2 ON t USING kdtree (v imgfeat_l2_ops)")
        cur.execute("CREATE INDEX t_kd_cos ON t USING kdtree (v imgfeat_cosine_ops)")
        cur.execute("CREATE INDEX t_lsh ON t USING lsh (v imgfeat_l2_ops)")
        cur.execute("ANALYZE t")
        out["build_s"] = round(time.time() - t0, 1)

        def scenario(name, method, settings, op, filt, limit):
            cur.execute("RESET ALL")
            cur.execute(f"SET imgsearch.method = '{method}'")
            for k, v in settings.items():
                cur.execute(f"SET {k} = {v}")
            got, want, good = [], [], True
            for q in queries:
                where = f"WHERE sel < {filt}" if filt is not None else ""
                cur.execute(f"SELECT id, v {op} %s::imgfeat FROM t {where} ORDER BY v {op} %s::imgfeat LIMIT {limit}",
                            (vec(q), vec(q)))
                res = cur.fetchall()
                d = [r[1] for r in res]
                good &= all(a <= b for a, b in zip(d, d[1:])) and len({r[0] for r in res}) == len(res)
                qualifying = int((sel < filt).sum()) if filt is not None else N
                got.append(len(res))
                want.append(min(limit, qualifying))
            r = {"scenario": name, "rows_mean": float(np.mean(got)), "rows_min": int(min(got)),
                 "should": float(np.mean(want)), "ordered_distinct": bool(good)}
            out["scenarios"].append(r)
            print(f"{name:58s} rows {r['rows_mean']:7.1f} (min {r['rows_min']}) of {r['should']:7.1f}"
                  f"  ordered, distinct: {good}", flush=True)

        def recall(name, method, settings, op):
            cur.execute("RESET ALL")
            hits = []
            for q in queries:
                cur.execute("SET imgsearch.method = 'argsort'")
                cur.execute(f"SELECT v {op} %s::imgfeat AS d FROM t ORDER BY d LIMIT 30", (vec(q),))
                kth = cur.fetchall()[-1][0]
                cur.execute(f"SET imgsearch.method = '{method}'")
                for k, v in settings.items():
                    cur.execute(f"SET {k} = {v}")
                cur.execute(f"SELECT v {op} %s::imgfeat AS d FROM t ORDER BY v {op} %s::imgfeat LIMIT 30",
                            (vec(q), vec(q)))
                hits.append(min(30, sum(1 for (d,) in cur.fetchall() if d <= kth)))
                cur.execute("RESET ALL")
            r = {"scenario": name, "recall_at_30": float(np.mean(hits)) / 30}
            out["scenarios"].append(r)
            print(f"{name:58s} recall@30 {r['recall_at_30']:.3f}", flush=True)

        kd1 = {"kdtree.max_leaves": 1}
        lsh_small = {"lsh.probes": 1, "lsh.candidates": 16}
        scenario("kdtree max_leaves=1, <->, LIMIT 2000", "kdtree", kd1, "<->", None, 2000)
        scenario("kdtree max_leaves=1, <=>, LIMIT 2000", "kdtree", kd1, "<=>", None, 2000)
        scenario("kdtree max_leaves=1, <->, 1% filter, LIMIT 500", "kdtree", kd1, "<->", 10, 500)
        scenario("lsh probes=1 candidates=16, <->, 0.1% filter, LIMIT 500", "lsh", lsh_small, "<->", 1, 500)
        scenario("lsh probes=1 candidates=16, <->, 1% filter, LIMIT 500", "lsh", lsh_small, "<->", 10, 500)
        scenario("lsh default budget, <->, 0.1% filter, LIMIT 500", "lsh", {}, "<->", 1, 500)
        recall("kdtree max_leaves=1, <->", "kdtree", kd1, "<->")
        recall("kdtree max_leaves=32, <->", "kdtree", {"kdtree.max_leaves": 32}, "<->")
        recall("lsh probes=1 candidates=16, <->", "lsh", lsh_small, "<->")
        recall("lsh default budget, <->", "lsh", {}, "<->")
    finally:
        cl.stop()
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
