#!/usr/bin/python3
"""Ingest (issue 20): images/s on the demo collection, the old loader path
against the ingest workers, and the time from INSERT to searchable.

    bench/ingest_bench.py [--images 120] [--configs loader,ingest_1x2,...] [--latency 20]
                          [--model PATH] [--dataset DIR]

Each configuration on fresh throwaway servers, one after the other, on the
first N images of the demo collection (tools/build_dataset.py; built once
into --dataset), all inserted with feat NULL before the clock starts:
  loader       no preload, imgsearch.threads = 2: the loader's old path, a
               session calling vgg16_features(bytea[]) on batches of 8, one
               transaction each (tools/load_dataset.py without ingest)
  ingest_1x2   preload: 1 model worker x 2 threads, 1 ingest worker
  ingest_2x1   preload: 2 model workers x 1 thread, imgsearch.ingest_workers = 2
               (the defaults)
  ingest_2x1_iw1  2 model workers x 1 thread, but 1 ingest worker: what one
               worker waiting on one image at a time leaves idle
  shards_2     two servers (the shards of a coordinator: each fills its own
               rows), each 1 model worker x 1 thread, 1 ingest worker, each
               with half the rows, both at once: the wall time until both
               are done
Ingest rates are timed from imgsearch_ingest_start to pending = 0 in
imgsearch_ingest_status (polled every 50 ms), with the model workers loaded
and idle before. Then, on the ingest_2x1 server, idle: --latency single
INSERTs, one at a time, each timed until its row has a feature (a search
finds it), polled every 5 ms. Writes bench/results/ingest.json;
bench/results/ingest.md is written by hand from it.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time

import psycopg2

from bench_cluster import Cluster, connect, machine_state, percentiles

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PRELOAD = "shared_preload_libraries = 'imgsearch'"
CONFIGS = {
    "loader": (1, ["imgsearch.threads = 2"]),
    "ingest_1x2": (1, [PRELOAD, "imgsearch.model_workers = 1", "imgsearch.model_worker_threads = 2",
                       "imgsearch.ingest_workers = 1"]),
    "ingest_2x1": (1, [PRELOAD, "imgsearch.model_workers = 2", "imgsearch.model_worker_threads = 1",
                       "imgsearch.ingest_workers = 2"]),
    "ingest_2x1_iw1": (1, [PRELOAD, "imgsearch.model_workers = 2", "imgsearch.model_worker_threads = 1",
                           "imgsearch.ingest_workers = 1"]),
    "shards_2": (2, [PRELOAD, "imgsearch.model_workers = 1", "imgsearch.model_worker_threads = 1",
                     "imgsearch.ingest_workers = 1"]),
}
TABLE = "CREATE TABLE images (id int PRIMARY KEY, img bytea NOT NULL, feat imgfeat)"


def demo_images(dataset, n):
    if not os.path.exists(os.path.join(dataset, "manifest.tsv")):
        print(f"building the demo dataset in {dataset} (about a minute)", flush=True)
        subprocess.run(["/usr/bin/python3", os.path.join(REPO, "tools", "build_dataset.py"), dataset], check=True)
    names = []
    with open(os.path.join(dataset, "manifest.tsv")) as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            if fields[0].isdigit():
                names.append(fields[1])
    images = []
    for name in names[:n]:
        with open(os.path.join(dataset, "images", name), "rb") as f:
            images.append(f.read())
    return images


def wait_model_workers(conn, want, timeout=300):
    cur = conn.cursor()
    deadline = time.time() + timeout
    while True:
        cur.execute("SELECT count(*) FROM imgsearch_model_workers() WHERE state = 'idle' AND model IS NOT NULL")
        if cur.fetchone()[0] == want:
            return
        if time.time() > deadline:
            sys.exit(f"ingest_bench: model workers not ready after {timeout} s")
        time.sleep(0.2)


def fill(conn, images, first_id=0):
    cur = conn.cursor()
    cur.execute(TABLE)
    cur.executemany("INSERT INTO images (id, img) VALUES (%s, %s)",
                    [(first_id + i, psycopg2.Binary(b)) for i, b in enumerate(images)])


def model_workers_of(conf):
    for line in conf:
        if line.startswith("imgsearch.model_workers"):
            return int(line.split("=")[1])
    return 0


def ingest_until_done(conn, n):
    """Registers images and waits for pending 0: seconds."""
    cur = conn.cursor()
    t0 = time.perf_counter()
    cur.execute("SELECT imgsearch_ingest_start('images', image => 'img', feature => 'feat')")
    while True:
        cur.execute("SELECT pending, done, failed FROM imgsearch_ingest_status WHERE relid = 'images'::regclass")
        pending, done, failed = cur.fetchone()
        if pending == 0:
            elapsed = time.perf_counter() - t0
            if done != n or failed:
                sys.exit(f"ingest_bench: {done} done, {failed} failed of {n}")
            return elapsed
        time.sleep(0.05)


def loader_until_done(conn, n, batch=8):
    """The old loader path (tools/load_dataset.py's extract_features without ingest)."""
    conn.autocommit = False
    cur = conn.cursor()
    t0 = time.perf_counter()
    while True:
        cur.execute("""
            WITH b AS (SELECT id, img FROM images WHERE feat IS NULL ORDER BY id LIMIT %s),
                 f AS (SELECT array_agg(id ORDER BY id) AS ids,
                              vgg16_features(array_agg(img ORDER BY id)) AS feats FROM b)
            UPDATE images i SET feat = u.feat FROM f, unnest(f.ids, f.feats) AS u(id, feat)
             WHERE i.id = u.id""", [batch])
        done = cur.rowcount
        conn.commit()
        if done <= 0:
            break
    elapsed = time.perf_counter() - t0
    cur.execute("SELECT count(feat) FROM images")
    assert cur.fetchone()[0] == n
    conn.commit()
    conn.autocommit = True
    return elapsed


def insert_to_searchable(conn, images, count):
    """Seconds from an INSERT's commit to its row having a feature, one at a time."""
    cur = conn.cursor()
    cur.execute("SELECT coalesce(max(id), 0) + 1 FROM images")
    next_id = cur.fetchone()[0]
    out = []
    for k in range(count):
        time.sleep(1.5)     # the worker idle, polling
        t0 = time.perf_counter()
        cur.execute("INSERT INTO images (id, img) VALUES (%s, %s)", (next_id + k, psycopg2.Binary(images[k])))
        while True:
            cur.execute("SELECT feat IS NOT NULL FROM images WHERE id = %s", [next_id + k])
            if cur.fetchone()[0]:
                break
            time.sleep(0.005)
        out.append(time.perf_counter() - t0)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(REPO, "models", "vgg16_pool_random.pt"),
                    help="a pool-layer export (make model; or build/test-models/vgg16_pool_seed0.pt)")
    ap.add_argument("--dataset", default="/var/tmp/imgsearch-bench-dataset")
    ap.add_argument("--images", type=int, default=120)
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--latency", type=int, default=20, help="single INSERTs timed to searchable (0: none)")
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "results", "ingest.json"))
    args = ap.parse_args()
    if not os.path.exists(args.model):
        sys.exit(f"ingest_bench: no model {args.model} (make model)")

    images = demo_images(args.dataset, args.images + args.latency)
    load, extra = images[:args.images], images[args.images:]
    result = {
        "benchmark": "features of the demo collection: the old loader path against the ingest workers",
        "model": os.path.basename(args.model),
        "images": f"the first {len(load)} images of the demo collection (tools/build_dataset.py), "
                  f"{statistics.median(len(b) for b in load) // 1024} kB median",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "configs": {},
    }
    for name in args.configs.split(","):
        servers, conf = CONFIGS[name]
        print(f"== {name}: {servers} server(s); {'; '.join(conf)}", flush=True)
        r = {"servers": servers, "settings": conf, "machine_before": machine_state()}
        clusters = [Cluster(args.model, conf) for _ in range(servers)]
        try:
            conns = [connect(c.dsn) for c in clusters]
            share = (len(load) + servers - 1) // servers
            parts = [load[k * share:(k + 1) * share] for k in range(servers)]
            for k, conn in enumerate(conns):
                conn.cursor().execute("CREATE EXTENSION imgsearch")
                fill(conn, parts[k], k * share)
                if model_workers_of(conf):
                    wait_model_workers(conn, model_workers_of(conf))
            if name == "loader":
                conns[0].cursor().execute("SELECT vgg16_features(img) FROM images LIMIT 1")   # model loaded
                conns[0].cursor().execute("UPDATE images SET feat = NULL")
                secs = loader_until_done(conns[0], len(load))
            else:
                times = [None] * servers

                def run(k):
                    times[k] = ingest_until_done(conns[k], len(parts[k]))
                threads = [threading.Thread(target=run, args=(k,)) for k in range(servers)]
                t0 = time.perf_counter()
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                secs = time.perf_counter() - t0
                r["seconds_per_server"] = [round(t, 2) for t in times]
            r["seconds"] = round(secs, 2)
            r["images_per_second"] = round(len(load) / secs, 2)
            print(f"  {len(load)} images in {secs:.1f} s: {len(load) / secs:.2f} images/s", flush=True)
            if name == "ingest_2x1" and args.latency:
                lat = insert_to_searchable(conns[0], extra, args.latency)
                r["insert_to_searchable_seconds"] = percentiles(lat)
                print(f"  INSERT to searchable: {r['insert_to_searchable_seconds']}", flush=True)
            r["machine_after"] = machine_state()
        finally:
            for c in clusters:
                c.stop()
        result["configs"][name] = r
    base = result["configs"].get("loader", {}).get("images_per_second")
    if base:
        result["ratio_to_loader"] = {n: round(c["images_per_second"] / base, 2)
                                     for n, c in result["configs"].items()}
    one = result["configs"].get("ingest_2x1", {}).get("images_per_second")
    if one and "shards_2" in result["configs"]:
        result["shards_2_to_one_node"] = round(result["configs"]["shards_2"]["images_per_second"] / one, 2)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps({k: v for k, v in result.items() if k.startswith(("ratio", "shards"))}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
