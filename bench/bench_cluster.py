"""What the benchmarks that start their own servers share (a module, not a
bench: `make bench` runs bench/*_bench.py only): a throwaway cluster, the
machine's state while it ran, and latency percentiles. Used by
vgg16_bench.py, model_pool_bench.py and ingest_bench.py.
"""
import json
import os
import shutil
import socket
import subprocess
import tempfile

import numpy as np
import psycopg2


class Cluster:
    """A throwaway PostgreSQL cluster (pg_config's bindir) on a free port,
    as user postgres when run as root, with a copy of the model the server
    can read and conf_lines appended to postgresql.conf."""

    def __init__(self, model, conf_lines=()):
        bindir = subprocess.check_output(["pg_config", "--bindir"], text=True).strip()
        self.dir = tempfile.mkdtemp(prefix="imgsearch-bench.")
        os.chmod(self.dir, 0o755)
        self.port = self._free_port()
        as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.model = os.path.join(self.dir, os.path.basename(model))
        shutil.copy(model, self.model)
        os.chmod(self.model, 0o644)
        if as_owner:
            shutil.chown(self.dir, "postgres")
        data = os.path.join(self.dir, "data")
        self.pg_ctl = as_owner + [os.path.join(bindir, "pg_ctl"), "-D", data]
        subprocess.run(as_owner + [os.path.join(bindir, "initdb"), "-D", data, "-U", "postgres", "-A", "trust"],
                       check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(data, "postgresql.conf"), "a") as f:
            f.write(f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{self.dir}'\nimgsearch.model = '{self.model}'\n"
                    "max_connections = 100\nlc_messages = 'C'\n")
            f.write("".join(line + "\n" for line in conf_lines))
        subprocess.run(self.pg_ctl + ["-l", os.path.join(self.dir, "log"), "-w", "start"], check=True,
                       stdout=subprocess.DEVNULL)
        self.dsn = f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    @staticmethod
    def _free_port():
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        return port

    def stop(self):
        subprocess.run(self.pg_ctl + ["-m", "fast", "-w", "stop"], stdout=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)


def connect(dsn):
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    return conn


def percentiles(xs):
    if not xs:
        return {}
    a = np.array(xs)
    return {"p50": round(float(np.percentile(a, 50)), 3), "p95": round(float(np.percentile(a, 95)), 3),
            "max": round(float(a.max()), 3), "min": round(float(a.min()), 3)}


def build_session(dsn):
    """A session for timing index builds: imgsearch there, PostgreSQL's
    parallel maintenance workers up to 2 (lsh builds take threads by them)."""
    conn = connect(dsn)
    cur = conn.cursor()
    cur.execute('CREATE EXTENSION IF NOT EXISTS imgsearch')
    cur.execute('SET max_parallel_maintenance_workers = 2')
    return conn, cur


def write_json(results, out):
    with open(out, 'w') as f:
        json.dump(results, f, indent=1)
    print(f'written {out}')


def machine_state():
    """Load average and the busiest other processes (the machine is shared)."""
    ps = subprocess.run(["ps", "-eo", "pcpu,user,args", "--sort=-pcpu"], capture_output=True, text=True).stdout
    top = [" ".join(line.split()[:4])[:120] for line in ps.splitlines()[1:9]]
    with open("/proc/meminfo") as f:
        avail = next(int(line.split()[1]) for line in f if line.startswith("MemAvailable"))
    return {"load_average": [round(x, 2) for x in os.getloadavg()], "mem_available_mb": avail // 1024,
            "busiest_processes": top}
