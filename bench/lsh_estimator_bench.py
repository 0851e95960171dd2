#!/usr/bin/python3
"""lsh's estimator, ns per entry, before and after (issue 24 item 2).

lsh_query_estimate over 20k entries laid out as the index stores them
(bench/lsh_estimator_bench.c: the core alone, one thread), 512-d vectors
with 512-bit sketches (the default at 512-d) and 256-bit ones. Two builds of
the same bench, timed alternately: lsh_core.cpp as it is, and as it was at
--before (default 49d8a39: one chain of float adds over the per-byte
tables). Compiled as CMake's Release build compiles the core (-O3). Median and p95 of 101 passes, five rounds each; the mean estimate
of both, which must agree to float rounding.

    /usr/bin/python3 bench/lsh_estimator_bench.py   -> bench/results/lsh_estimator.json
"""
import argparse
import json
import os
import statistics
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build(name, core_source):
    out = os.path.join(ROOT, 'build', 'lsh_bench', name)
    os.makedirs(out, exist_ok=True)
    exe = os.path.join(out, 'lsh_estimator_bench')
    srcs = [core_source] + [os.path.join(ROOT, s) for s in
                            ('src/index/distance_core.cpp', 'src/index/orthonormal.cpp', 'src/cxx/guard.cpp')]
    objs = []
    for s in srcs:
        o = os.path.join(out, os.path.basename(s) + '.o')
        subprocess.run(['g++', '-std=c++17', '-O3', '-fopenmp-simd', '-fno-math-errno', '-c',
                        '-I', os.path.join(ROOT, 'src'), s, '-o', o], check=True)
        objs.append(o)
    subprocess.run(['gcc', '-O2', '-I', os.path.join(ROOT, 'src'), '-I', os.path.join(ROOT, 'test', 'support'),
                    os.path.join(ROOT, 'bench', 'lsh_estimator_bench.c'),
                    os.path.join(ROOT, 'test', 'support', 'core_test_support.c'), *objs,
                    '-o', exe, '-lstdc++', '-lm', '-pthread'], check=True)
    return exe


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--before', default='49d8a39')
    args = ap.parse_args()
    old_src = os.path.join(ROOT, 'build', 'lsh_bench', 'lsh_core_before.cpp')
    os.makedirs(os.path.dirname(old_src), exist_ok=True)
    with open(old_src, 'w') as f:
        f.write(subprocess.check_output(['git', '-C', ROOT, 'show', f'{args.before}:src/lsh/lsh_core.cpp'], text=True))
    exes = {'before': build('before', old_src), 'now': build('now', os.path.join(ROOT, 'src/lsh/lsh_core.cpp'))}
    rows = []
    for bits in (512, 256):
        runs = {k: [] for k in exes}
        for _ in range(5):
            for name, exe in exes.items():
                p = subprocess.run([exe, '512', str(bits), '20000', '101'], check=True, capture_output=True, text=True)
                runs[name].append(json.loads(p.stdout.strip().splitlines()[-1]))
        row = {'dim': 512, 'bits': bits, 'entries': 20000}
        for name, rs in runs.items():
            row[name] = {'ns_per_entry_median': round(statistics.median(r['ns_per_entry_median'] for r in rs), 2),
                         'ns_per_entry_p95': round(statistics.median(r['ns_per_entry_p95'] for r in rs), 2),
                         'mean_estimate': rs[0]['mean_estimate']}
        row['speedup'] = round(row['before']['ns_per_entry_median'] / row['now']['ns_per_entry_median'], 2)
        print(json.dumps(row), flush=True)
        rows.append(row)
    result = {'before': args.before, 'rows': rows, 'load_average_after': [round(v, 2) for v in os.getloadavg()],
              'note': 'one thread, the core alone; shared machine: other jobs ran (see the load average)'}
    path = os.path.join(ROOT, 'bench', 'results', 'lsh_estimator.json')
    with open(path, 'w') as f:
        json.dump(result, f, indent=1)
    print('written', path)


if __name__ == '__main__':
    main()
