#!/usr/bin/python3
"""VGG16 feature extraction: in the database vs Python eager, same run.

    bench/vgg16_bench.py [--images 16] [--rounds 3] [--threads 2] [--model PATH] [--dsn DSN]
                         [--int8 PATH] [--out PATH]

Times, on the same JPEGs (640x480 synthetic photos) and the same weights:
  db single    SELECT vgg16_features(img), one image per statement
  db batched   SELECT vgg16_features(imgs bytea[]), all images in one call
  py eager     torchvision's pipeline and eager nn.Module (PIL decode,
               Resize, ToTensor, Normalize, forward), one image at a time
  py eager batched   the same, batches of 4 (vgg16_features' pass size)
  py torchscript     the same pipeline on the model file itself, optimised
               for inference as the server does it, one image at a time
  py eager default threads   py eager with torch's default thread count
               (Debian's torch starts with 1 thread)
and, with --int8 (an export of the same weights with --int8; make model-int8):
  db single int8, db batched int8   the same statements in a second session
               whose imgsearch.model is the int8 file
  py torchscript int8   the int8 file run as py torchscript runs the fp32 one
  py bf16 mkldnn        the fp32 module's convolutions in bfloat16 through
               oneDNN (torch.utils.mkldnn, measured only: not shipped)
in alternating rounds (fresh images each round, so no call finds its input
in vgg16_features' last-call cache), and reports median images/s, ratios,
the backend's memory (VmRSS, VmHWM) before and after the model loads, and
the first call's cost. The model is a --weights random export (same cost as ImageNet
weights); the eager module is rebuilt with the same seed. Without --dsn a
throwaway cluster is started (initdb, as user postgres when run as root).
Writes bench/results/vgg16.json.
"""
import argparse
import io
import json
import os
import platform
import statistics
import sys
import time

import numpy as np
import psycopg2
import torch
from PIL import Image
from torchvision import transforms
from torchvision.models import vgg16

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tools"))
sys.path.insert(0, os.path.join(REPO, "test", "model"))
from export_vgg16 import GeMPool, Fc7  # noqa: E402  the exported modules, run eagerly
from fixtures import scene  # noqa: E402  synthetic photo-like images
from bench_cluster import Cluster  # noqa: E402


def proc_memory(pid):
    """VmRSS and VmHWM of a process, in MB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024
    return out



def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="intra-op threads, both sides")
    ap.add_argument("--model", default=os.path.join(REPO, "models", "vgg16_pool_random.pt"),
                    help="a --weights random export (make model)")
    ap.add_argument("--dsn", help="a superuser connection to a database with the extension")
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "results", "vgg16.json"))
    int8_default = os.path.join(REPO, "models", "vgg16_pool_random_int8.pt")
    ap.add_argument("--int8", default=int8_default if os.path.exists(int8_default) else None,
                    help="an --int8 export of the same weights (make model-int8, the default when it exists): "
                         "adds the int8 and bf16 rows")
    args = ap.parse_args()

    load_before = os.getloadavg()[0]  # the machine's load before we add ours (2 threads)
    model = os.path.abspath(args.model)
    with open(os.path.splitext(model)[0] + ".json") as f:
        meta = json.load(f)
    if meta["weights"] != "random":
        sys.exit("vgg16_bench: needs a --weights random model (the eager module is rebuilt from its seed)")
    default_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    torch.manual_seed(meta["seed"])
    net = vgg16(weights=None).eval()
    eager = (GeMPool(net.features[:-1]) if meta["layer"] == "pool" else Fc7(net)).eval()
    pipeline = transforms.Compose([
        transforms.Resize((224, 224)), transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    # A fresh set of images per round; round 0 warms up.
    image_sets = []
    for r in range(args.rounds + 1):
        image_sets.append([])
        for i in range(args.images):
            buf = io.BytesIO()
            scene(480, 640, seed=1000 * r + i).save(buf, "JPEG", quality=90)
            image_sets[r].append(buf.getvalue())

    # The server's way: frozen file, optimize_for_inference, simple executor.
    torch._C._jit_set_profiling_executor(False)
    torch._C._jit_set_profiling_mode(False)
    scripted = torch.jit.optimize_for_inference(torch.jit.load(model).eval())
    if args.int8:
        int8_model = os.path.abspath(args.int8)
        with open(os.path.splitext(int8_model)[0] + ".json") as f:
            int8_meta = json.load(f)
        if int8_meta.get("precision") != "int8" or int8_meta.get("seed") != meta["seed"] \
                or int8_meta["layer"] != meta["layer"]:
            sys.exit("vgg16_bench: --int8 must be an --int8 export of the same layer and seed as --model")
        torch.backends.quantized.engine = "onednn"
        scripted_int8 = torch.jit.optimize_for_inference(torch.jit.load(int8_model).eval())
        import copy
        import torch.utils.mkldnn as mkldnn

        class Bf16(torch.nn.Module):
            """eager's convolutions in bfloat16 oneDNN tensors, its pooling in fp32."""

            def __init__(self, fp32):
                super().__init__()
                self.features = mkldnn.to_mkldnn(copy.deepcopy(fp32.features), torch.bfloat16)
                self.rest = fp32

            def forward(self, x):
                y = self.features(x.to_mkldnn(torch.bfloat16)).to_dense(torch.float)
                if meta["layer"] == "pool":
                    y = (y * y * y).mean(dim=(2, 3))
                    return y ** (1.0 / 3.0)
                return self.rest.fc(torch.flatten(self.rest.avgpool(y), 1))

        bf16 = Bf16(eager).eval()

    def py_run(net, batch, jpegs, threads=args.threads):
        feats = []
        torch.set_num_threads(threads)
        with torch.inference_mode():
            for i in range(0, len(jpegs), batch):
                x = torch.stack([pipeline(Image.open(io.BytesIO(b)).convert("RGB")) for b in jpegs[i:i + batch]])
                f = net(x)
                feats.append(f / f.norm(dim=1, keepdim=True))
        return torch.cat(feats).numpy()

    cluster = None if args.dsn else Cluster(model)
    try:
        conn = psycopg2.connect(args.dsn or cluster.dsn)
        conn.autocommit = True
        cur = conn.cursor()
        cur.execute("CREATE EXTENSION IF NOT EXISTS imgsearch")
        cur.execute("SET imgsearch.model = %s", (model,))
        cur.execute("SET imgsearch.threads = %s", (args.threads,))
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
        mem_before = proc_memory(pid)
        t = time.perf_counter()
        cur.execute("SELECT vgg16_features(%s)", (psycopg2.Binary(image_sets[0][0]),))
        first_call = time.perf_counter() - t
        mem_loaded = proc_memory(pid)
        cur.execute("SELECT load_seconds FROM imgsearch_model_info()")
        load_seconds = cur.fetchone()[0]
        if args.int8:   # a session of its own: its backend's memory is the int8 model's alone
            conn8 = psycopg2.connect(args.dsn or cluster.dsn)
            conn8.autocommit = True
            cur8 = conn8.cursor()
            cur8.execute("SET imgsearch.model = %s", (int8_model,))
            cur8.execute("SET imgsearch.threads = %s", (args.threads,))
            cur8.execute("SELECT pg_backend_pid()")
            pid8 = cur8.fetchone()[0]
            mem8_before = proc_memory(pid8)
            t = time.perf_counter()
            cur8.execute("SELECT vgg16_features(%s)", (psycopg2.Binary(image_sets[0][1]),))
            first_call8 = time.perf_counter() - t
            mem8_loaded = proc_memory(pid8)
            cur8.execute("SELECT load_seconds, weights FROM imgsearch_model_info()")
            load_seconds8, weights8 = cur8.fetchone()

        def db_single(jpegs, cur=cur):
            out = []
            for b in jpegs:
                cur.execute("SELECT vgg16_features(%s)::real[]", (psycopg2.Binary(b),))
                out.append(cur.fetchone()[0])
            return np.array(out)

        def db_batched(jpegs, cur=cur):
            cur.execute("SELECT f::real[] FROM unnest(vgg16_features(%s::bytea[])) f",
                        ([psycopg2.Binary(b) for b in jpegs],))
            return np.array([r[0] for r in cur.fetchall()])

        runs = {"db single": db_single, "db batched": db_batched,
                "py eager": lambda jpegs: py_run(eager, 1, jpegs),
                "py eager batched": lambda jpegs: py_run(eager, 4, jpegs),
                "py torchscript": lambda jpegs: py_run(scripted, 1, jpegs),
                "py eager default threads": lambda jpegs: py_run(eager, 1, jpegs, default_threads)}
        if args.int8:   # interleaved with the fp32 rows, round by round
            runs.update({"db single int8": lambda jpegs: db_single(jpegs, cur8),
                         "db batched int8": lambda jpegs: db_batched(jpegs, cur8),
                         "py torchscript int8": lambda jpegs: py_run(scripted_int8, 1, jpegs),
                         "py bf16 mkldnn": lambda jpegs: py_run(bf16, 1, jpegs)})
        rates = {k: [] for k in runs}
        feats = {}
        loads = []
        for fn in runs.values():  # warm-up (first runs allocate, pick kernels)
            fn(image_sets[0])
        for r in range(1, args.rounds + 1):
            for name, fn in runs.items():
                loads.append(os.getloadavg()[0])
                t = time.perf_counter()
                feats[name] = fn(image_sets[r])
                rates[name].append(args.images / (time.perf_counter() - t))
                print(f"round {r} {name:25s} {rates[name][-1]:.2f} img/s", flush=True)
        mem_after = proc_memory(pid)
        conn.close()
        if args.int8:
            mem8_after = proc_memory(pid8)
            conn8.close()
    finally:
        if cluster:
            cluster.stop()

    cos = [float(np.dot(a, b)) for a, b in zip(feats["db batched"], feats["py eager"])]
    med = {k: statistics.median(v) for k, v in rates.items()}
    result = {
        "benchmark": "vgg16_features vs Python eager torchvision, same images and weights",
        "model": {"layer": meta["layer"], "dims": meta["dims"], "weights": "random (same cost as ImageNet)"},
        "images": args.images, "image_size": "640x480 JPEG", "rounds": args.rounds, "threads": args.threads,
        "torch_default_threads": default_threads,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                    "load_average_before": round(load_before, 2),
                    "load_average_during_runs": {"min": round(min(loads), 2), "max": round(max(loads), 2)}},
        "images_per_second_median": {k: round(v, 3) for k, v in med.items()},
        "images_per_second_all": {k: [round(x, 3) for x in v] for k, v in rates.items()},
        "ratios": {
            "db batched / py eager": round(med["db batched"] / med["py eager"], 3),
            "db batched / py eager batched": round(med["db batched"] / med["py eager batched"], 3),
            "db single / py eager": round(med["db single"] / med["py eager"], 3),
            "db single / py torchscript": round(med["db single"] / med["py torchscript"], 3),
            "db batched / py eager default threads": round(med["db batched"] / med["py eager default threads"], 3),
        },
        "first_call_seconds": round(first_call, 3),
        "model_load_seconds": round(load_seconds, 3),
        "backend_memory_mb": {"connected": mem_before, "model_loaded": mem_loaded, "after_runs": mem_after},
        "python_process_memory_mb": proc_memory(os.getpid()),
        "min_cosine_db_vs_py_eager": round(min(cos), 6),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if args.int8:
        def cosines(a, b):
            c = np.sort([float(np.dot(x, y)) for x, y in zip(a, b)])
            return {"min": round(float(c[0]), 6), "median": round(float(np.median(c)), 6)}
        result["int8"] = {
            "model": {"file": os.path.basename(int8_model), "weights": weights8,
                      "quantization": int8_meta.get("quantization")},
            "ratios": {
                "db single int8 / db single": round(med["db single int8"] / med["db single"], 3),
                "db batched int8 / db batched": round(med["db batched int8"] / med["db batched"], 3),
                "py torchscript int8 / py torchscript": round(med["py torchscript int8"] / med["py torchscript"], 3),
                "py bf16 mkldnn / py torchscript": round(med["py bf16 mkldnn"] / med["py torchscript"], 3),
            },
            # last round's images, the same for every row
            "cosine_to_fp32": {"db int8 vs db fp32": cosines(feats["db batched int8"], feats["db batched"]),
                               "py int8 vs py fp32": cosines(feats["py torchscript int8"], feats["py torchscript"]),
                               "py bf16 vs py fp32": cosines(feats["py bf16 mkldnn"], feats["py torchscript"])},
            "first_call_seconds": round(first_call8, 3),
            "model_load_seconds": round(load_seconds8, 3),
            "backend_memory_mb": {"connected": mem8_before, "model_loaded": mem8_loaded, "after_runs": mem8_after},
        }
    print(json.dumps({k: result[k] for k in ("images_per_second_median", "ratios", "first_call_seconds",
                                             "backend_memory_mb", "min_cosine_db_vs_py_eager", "int8")
                      if k in result}, indent=2))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
