#!/usr/bin/python3
"""The model workers (issue 25) against a model in every backend, same run.

    bench/model_pool_bench.py [--model PATH] [--concurrency 12,50] [--sessions 8,32]
                              [--first-calls 5] [--configs pool_1x2,pool_2x1,no_pool]

Three configurations, each on a fresh throwaway cluster (initdb, as user
postgres when run as root), one after the other:
  pool_1x2   shared_preload_libraries = 'imgsearch', imgsearch.model_workers = 1,
             imgsearch.threads = 2: one worker with two intra-op threads
  pool_2x1   model_workers = 2, threads = 1: two workers with one thread each
  no_pool    no preload: each backend loads libtorch and the model at its first
             call (imgsearch.threads = 1: with many sessions, one thread each
             is the sensible setting on 2 cores)
and in each:
  (a) N concurrent searches (--concurrency, default 12 and 50): N new
      connections are opened, then all at once each runs
      SELECT vgg16_features(img) on an image of its own (640x480 JPEGs cut
      from the photos in /usr/share/wallpapers and /usr/share/backgrounds,
      each a different crop, so no two are alike); answered or not, latency
      of the statement (p50, p95, max) and wall time of the round;
  (b) first call of a new session (--first-calls sessions, one at a time):
      the first vgg16_features of a fresh connection, and its second (another
      image) for comparison;
  (c) memory with S sessions open (--sessions, default 8 and 32) that each
      searched once, kept open while measured: from /proc/PID/statm of the
      client backends and the model workers, resident (RSS) and resident
      minus shared (file-backed and shared memory pages: libtorch's code and
      PostgreSQL's shared buffers, counted in every process's RSS but in
      memory once).
The workers are waited for (model loaded, idle) before anything is timed.
Writes bench/results/model_pool.json; bench/results/model_pool.md is
written by hand from it. The machine's load average is recorded per phase:
on a shared machine the figures move with what else runs.
"""
import argparse
import glob
import io
import json
import os
import platform
import statistics
import sys
import threading
import time

import psycopg2
from PIL import Image

from bench_cluster import Cluster, connect, machine_state, percentiles

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGE = os.sysconf("SC_PAGE_SIZE")

CONFIGS = {
    "pool_1x2": ["shared_preload_libraries = 'imgsearch'", "imgsearch.model_workers = 1",
                 "imgsearch.threads = 2"],
    "pool_2x1": ["shared_preload_libraries = 'imgsearch'", "imgsearch.model_workers = 2",
                 "imgsearch.threads = 1"],
    "no_pool": ["imgsearch.threads = 1"],
}


def make_images(n):
    """n distinct 640x480 JPEGs: crops at different places and scales of the
    machine's wallpaper photos."""
    sources = []
    for theme in sorted(glob.glob("/usr/share/wallpapers/*/contents/images")):
        jpgs = sorted(glob.glob(os.path.join(theme, "*.jpg")))
        pick = [p for p in jpgs if os.path.basename(p) == "1920x1080.jpg"] or jpgs[:1]
        sources += pick
    sources += sorted(glob.glob("/usr/share/backgrounds/*/*/*.jpg"))
    sources = [p for p in sources if "_3840x" not in p and "_5640x" not in p]
    if not sources:
        sys.exit("model_pool_bench: no photos in /usr/share/wallpapers or /usr/share/backgrounds")
    decoded = {}
    out = []
    for k in range(n):
        src = sources[k % len(sources)]
        if src not in decoded:
            decoded[src] = Image.open(src).convert("RGB")
        img = decoded[src]
        w, h = img.size
        j = k // len(sources)           # the how-many-th crop of this photo
        scale = 0.9 - 0.1 * (j % 4)     # 90%, 80%, ... of the photo
        cw, ch = int(w * scale), int(h * scale)
        x = (w - cw) * ((j * 37) % 11) // 10
        y = (h - ch) * ((j * 53) % 7) // 6
        buf = io.BytesIO()
        img.crop((x, y, x + cw, y + ch)).resize((640, 480), Image.BILINEAR).save(buf, "JPEG", quality=88)
        out.append(buf.getvalue())
    assert len(set(out)) == n
    return out, sources




def statm(pid):
    """(resident, resident - shared) of a process in MB, from /proc/PID/statm."""
    with open(f"/proc/{pid}/statm") as f:
        fields = [int(x) for x in f.read().split()]
    return fields[1] * PAGE / 2**20, (fields[1] - fields[2]) * PAGE / 2**20


def wait_workers(dsn, want, timeout=300):
    """Waits until want workers are idle with the model loaded; their rows."""
    if want == 0:
        return []
    conn = connect(dsn)
    cur = conn.cursor()
    deadline = time.time() + timeout
    while True:
        cur.execute("SELECT worker, pid, state, model, load_seconds, rss_mb FROM imgsearch_model_workers()")
        rows = cur.fetchall()
        if sum(1 for r in rows if r[2] == "idle" and r[3]) == want:
            conn.close()
            return rows
        if time.time() > deadline:
            sys.exit(f"model_pool_bench: workers not ready after {timeout} s: {rows}")
        time.sleep(0.2)




def concurrent_searches(dsn, images):
    """len(images) new connections, then all search at once; per-statement latency."""
    n = len(images)
    conns, connect_s = [], []
    for _ in range(n):
        t = time.perf_counter()
        conns.append(connect(dsn))
        connect_s.append(time.perf_counter() - t)
    barrier = threading.Barrier(n + 1)
    latency = [None] * n
    errors = [None] * n

    def run(i):
        cur = conns[i].cursor()
        barrier.wait()
        t = time.perf_counter()
        try:
            cur.execute("SELECT imgfeat_dims(vgg16_features(%s))", (psycopg2.Binary(images[i]),))
            if cur.fetchone()[0] <= 0:
                raise RuntimeError("no feature")
            latency[i] = time.perf_counter() - t
        except Exception as e:  # noqa: BLE001  reported, not raised
            errors[i] = f"{type(e).__name__}: {str(e).strip()[:200]}"

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    load = os.getloadavg()[0]
    barrier.wait()
    t0 = time.perf_counter()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    for c in conns:
        c.close()
    ok = [x for x in latency if x is not None]
    return {"searches": n, "answered": len(ok), "errors": sorted({e for e in errors if e}),
            "latency_s": percentiles(ok), "wall_s": round(wall, 3),
            "images_per_s": round(len(ok) / wall, 3), "connect_s": percentiles(connect_s),
            "load_average_at_start": round(load, 2)}


def first_calls(dsn, images, sessions):
    """A fresh session's first call and its second, sessions times."""
    first, second = [], []
    for s in range(sessions):
        conn = connect(dsn)
        cur = conn.cursor()
        for i, out in ((2 * s, first), (2 * s + 1, second)):
            t = time.perf_counter()
            cur.execute("SELECT imgfeat_dims(vgg16_features(%s))", (psycopg2.Binary(images[i]),))
            cur.fetchone()
            out.append(time.perf_counter() - t)
        conn.close()
    return {"sessions": sessions, "first_call_s": percentiles(first), "second_call_s": percentiles(second),
            "first_all": [round(x, 3) for x in first], "second_all": [round(x, 3) for x in second]}


def memory(dsn, images, sessions):
    """sessions connections that each searched once (concurrently), kept open
    while the client backends' and the workers' memory is read."""
    conns = [connect(dsn) for _ in range(sessions)]
    pids = []
    for c in conns:
        cur = c.cursor()
        cur.execute("SELECT pg_backend_pid()")
        pids.append(cur.fetchone()[0])
    errors = []

    def run(i):
        try:
            conns[i].cursor().execute("SELECT vgg16_features(%s)", (psycopg2.Binary(images[i]),))
        except Exception as e:  # noqa: BLE001
            errors.append(str(e).strip()[:200])

    t0 = time.perf_counter()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(sessions)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    cur = conns[0].cursor()
    cur.execute("SELECT coalesce(array_agg(pid), '{}') FROM imgsearch_model_workers() WHERE pid IS NOT NULL")
    worker_pids = cur.fetchone()[0]
    backends = [statm(p) for p in pids]
    workers = [statm(p) for p in worker_pids]
    for c in conns:
        c.close()
    return {
        "sessions": sessions, "errors": errors, "searches_wall_s": round(wall, 3),
        "backends_rss_mb": round(sum(r for r, _ in backends), 1),
        "backends_rss_minus_shared_mb": round(sum(p for _, p in backends), 1),
        "backend_rss_mb_median": round(statistics.median(r for r, _ in backends), 1),
        "workers": len(workers),
        "workers_rss_mb": round(sum(r for r, _ in workers), 1),
        "workers_rss_minus_shared_mb": round(sum(p for _, p in workers), 1),
        "total_rss_mb": round(sum(r for r, _ in backends + workers), 1),
        "total_rss_minus_shared_mb": round(sum(p for _, p in backends + workers), 1),
    }




def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(REPO, "models", "vgg16_pool_random.pt"),
                    help="a pool-layer export (make model; or build/test-models/vgg16_pool_seed0.pt)")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--concurrency", default="12,50")
    ap.add_argument("--sessions", default="8,32")
    ap.add_argument("--first-calls", type=int, default=5)
    ap.add_argument("--min-available-mb", type=int, default=12000,
                    help="skip a phase without the pool when less memory than this is available")
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "results", "model_pool.json"))
    args = ap.parse_args()

    concurrency = [int(x) for x in args.concurrency.split(",")]
    sessions = [int(x) for x in args.sessions.split(",")]
    need = max(concurrency + sessions + [2 * args.first_calls])
    images, sources = make_images(need)
    result = {
        "benchmark": "vgg16_features through model workers vs a model in every backend",
        "model": os.path.basename(args.model),
        "images": f"{need} distinct 640x480 JPEGs (crops of {len(sources)} wallpaper photos), "
                  f"{statistics.median(len(b) for b in images) // 1024} kB median",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "mem_total_mb": os.sysconf("SC_PHYS_PAGES") * PAGE // 2**20},
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "configs": {},
    }
    t_start = time.time()
    for name in args.configs.split(","):
        conf = CONFIGS[name]
        print(f"== {name}: {'; '.join(conf)}", flush=True)
        r = {"settings": conf, "machine_before": machine_state()}
        t_config = time.time()
        cluster = Cluster(args.model, conf)
        try:
            conn = connect(cluster.dsn)
            conn.cursor().execute("CREATE EXTENSION imgsearch")
            nworkers = 0
            for line in conf:
                if line.startswith("imgsearch.model_workers"):
                    nworkers = int(line.split("=")[1])
            t = time.time()
            rows = wait_workers(cluster.dsn, nworkers)
            r["workers_ready_s_after_start"] = round(time.time() - t, 2)
            r["workers_at_start"] = [{"pid": w[1], "load_seconds": round(w[4], 3), "rss_mb": round(w[5], 1)}
                                     for w in rows]
            conn.close()
            r["first_call"] = first_calls(cluster.dsn, images, args.first_calls)
            print(f"  first call {r['first_call']['first_call_s']} second {r['first_call']['second_call_s']}",
                  flush=True)
            for n in concurrency:
                if nworkers == 0 and machine_state()["mem_available_mb"] < args.min_available_mb:
                    r[f"concurrent_{n}"] = {"skipped": "too little memory available"}
                    continue
                wait_workers(cluster.dsn, nworkers)
                r[f"concurrent_{n}"] = concurrent_searches(cluster.dsn, images[:n])
                c = r[f"concurrent_{n}"]
                print(f"  {n} concurrent: {c['answered']}/{n} answered, latency {c['latency_s']}, "
                      f"wall {c['wall_s']} s, load {c['load_average_at_start']}", flush=True)
            for s in sessions:
                if nworkers == 0 and machine_state()["mem_available_mb"] < args.min_available_mb:
                    r[f"memory_{s}_sessions"] = {"skipped": "too little memory available"}
                    continue
                wait_workers(cluster.dsn, nworkers)
                r[f"memory_{s}_sessions"] = m = memory(cluster.dsn, images[:s], s)
                print(f"  {s} sessions: total RSS {m['total_rss_mb']} MB, minus shared "
                      f"{m['total_rss_minus_shared_mb']} MB", flush=True)
        finally:
            cluster.stop()
        r["seconds"] = round(time.time() - t_config, 1)
        r["machine_after"] = machine_state()
        result["configs"][name] = r
    result["seconds"] = round(time.time() - t_start, 1)

    # ratios against no_pool, where both ran
    cfg = result["configs"]
    if "no_pool" in cfg:
        ratios = {}
        for name in cfg:
            if name == "no_pool":
                continue
            q = {}
            for n in concurrency:
                a, b = cfg[name].get(f"concurrent_{n}", {}), cfg["no_pool"].get(f"concurrent_{n}", {})
                if a.get("latency_s") and b.get("latency_s"):
                    q[f"p50_latency_{n}"] = round(a["latency_s"]["p50"] / b["latency_s"]["p50"], 3)
                    q[f"p95_latency_{n}"] = round(a["latency_s"]["p95"] / b["latency_s"]["p95"], 3)
            a, b = cfg[name]["first_call"]["first_call_s"], cfg["no_pool"]["first_call"]["first_call_s"]
            q["first_call_p50"] = round(a["p50"] / b["p50"], 3)
            for s in sessions:
                a, b = cfg[name].get(f"memory_{s}_sessions", {}), cfg["no_pool"].get(f"memory_{s}_sessions", {})
                if "total_rss_mb" in a and "total_rss_mb" in b:
                    q[f"total_rss_{s}"] = round(a["total_rss_mb"] / b["total_rss_mb"], 3)
                    q[f"total_rss_minus_shared_{s}"] = round(
                        a["total_rss_minus_shared_mb"] / b["total_rss_minus_shared_mb"], 3)
            ratios[f"{name} / no_pool"] = q
        result["ratios"] = ratios
        print(json.dumps(ratios, indent=2))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(f"wrote {args.out} ({result['seconds']} s)")


if __name__ == "__main__":
    main()
