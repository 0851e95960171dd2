#!/usr/bin/python3
"""lsh's estimator, ns per entry, before and after (issue 24 item 2).

lsh_query_estimate over 20k entries laid out as the index stores them,
bucket by bucket (bench/lsh_estimator_bench.c: the core alone, one thread),
512-d vectors with 512-bit sketches (the default at 512-d) and 256-bit ones,
on two data sets: uniform under L2 (the earlier runs') and nonnegative
|gauss| under cosine (ReLU-like: centroids far from the origin). Builds of
the same bench, timed alternately in one run: lsh_core.cpp as it was at
--before (default 643b779: per-byte float tables) and as it is, with each
query bits B_q and kernel asked for (lsh_query_set_estimator). Compiled as
CMake's Release build compiles the core (-O3). Medians of the per-run
medians (101 passes each) over the rounds.

Accuracy, from one more run of each: the mean and largest |now - before|
estimate (the float tables are the unquantized estimate to float rounding),
the mean quantization bound, how many differences exceed it (float rounding
allowed), and the bound's share of the lower bound's whole error term at
eps0 = 1.9.

    /usr/bin/python3 bench/lsh_estimator_bench.py   -> bench/results/lsh_estimator.json
"""
import argparse
import array
import json
import os
import statistics
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, 'build', 'lsh_bench')
PORTABLE, AVX512, AVX2 = 1, 2, 3   # LSH_ESTIMATOR_* of lsh_core.h
DATA = {0: 'uniform, L2', 1: 'nonnegative |gauss|, cosine'}


def build(name, core_source, include_first=None):
    out = os.path.join(OUT, name)
    os.makedirs(out, exist_ok=True)
    exe = os.path.join(out, 'lsh_estimator_bench')
    incs = (['-I', include_first] if include_first else []) + ['-I', os.path.join(ROOT, 'src')]
    srcs = [core_source] + [os.path.join(ROOT, s) for s in
                            ('src/index/distance_core.cpp', 'src/index/orthonormal.cpp', 'src/cxx/guard.cpp')]
    objs = []
    for s in srcs:
        o = os.path.join(out, os.path.basename(s) + '.o')
        subprocess.run(['g++', '-std=c++17', '-O3', '-fopenmp-simd', '-fno-math-errno', '-c', *incs, s, '-o', o],
                       check=True)
        objs.append(o)
    subprocess.run(['gcc', '-O2', *incs, '-I', os.path.join(ROOT, 'test', 'support'),
                    os.path.join(ROOT, 'bench', 'lsh_estimator_bench.c'),
                    os.path.join(ROOT, 'test', 'support', 'core_test_support.c'), *objs,
                    '-o', exe, '-lstdc++', '-lm', '-pthread'], check=True)
    return exe


def run(exe, bits, data, config, dump=None, reps=101):
    args = [exe, '512', str(bits), '20000', str(reps), str(data)]
    if config:
        args += [str(config[0]), str(config[1])]
    if dump:
        args += ([] if config else ['0', '0']) + [dump]
    p = subprocess.run(args, capture_output=True, text=True)
    if p.returncode == 2:
        return None               # this CPU lacks the kernel
    p.check_returncode()
    return json.loads(p.stdout.strip().splitlines()[-1])


def read_f32(path, n):
    a = array.array('f')
    with open(path, 'rb') as f:
        a.frombytes(f.read())
    return [a[i * n:(i + 1) * n] for i in range(len(a) // n)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--before', default='643b779')
    ap.add_argument('--rounds', type=int, default=3)
    args = ap.parse_args()
    before_dir = os.path.join(OUT, 'before_src')
    os.makedirs(os.path.join(before_dir, 'lsh'), exist_ok=True)
    for f in ('lsh_core.cpp', 'lsh_core.h'):
        with open(os.path.join(before_dir, 'lsh', f), 'w') as out:
            out.write(subprocess.check_output(['git', '-C', ROOT, 'show', f'{args.before}:src/lsh/{f}'], text=True))
    before = build('before', os.path.join(before_dir, 'lsh', 'lsh_core.cpp'), before_dir)
    now = build('now', os.path.join(ROOT, 'src/lsh/lsh_core.cpp'))
    configs = {'before': (before, None)}
    for b in (8, 6, 4):
        configs[f'avx512 B_q {b}'] = (now, (b, AVX512))
    configs['avx2 B_q 8'] = (now, (8, AVX2))
    configs['portable B_q 8'] = (now, (8, PORTABLE))
    configs['portable B_q 4'] = (now, (4, PORTABLE))
    rows = []
    for data in (0, 1):
        for bits in (512, 256):
            runs = {k: [] for k in configs}
            for _ in range(args.rounds):
                for name, (exe, cfg) in configs.items():
                    r = run(exe, bits, data, cfg)
                    if r is not None:
                        runs[name].append(r)
            row = {'dim': 512, 'bits': bits, 'data': DATA[data], 'entries': 20000, 'configs': {}}
            dumps = {}
            for name, (exe, cfg) in configs.items():
                rs = runs[name]
                if not rs:
                    continue
                c = {'ns_per_entry_median': round(statistics.median(r['ns_per_entry_median'] for r in rs), 2),
                     'ns_per_entry_p95': round(statistics.median(r['ns_per_entry_p95'] for r in rs), 2),
                     'mean_estimate': rs[0]['mean_estimate']}
                if cfg:
                    c['prepare_us'] = round(statistics.median(r['prepare_us'] for r in rs), 2)
                path = os.path.join(OUT, f'dump_{data}_{bits}_{name.replace(" ", "_")}.f32')
                run(exe, bits, data, cfg, dump=path, reps=3)
                dumps[name] = read_f32(path, 20000)
                row['configs'][name] = c
            ref = dumps['before'][0]
            for name, d in dumps.items():
                if name == 'before':
                    continue
                est, quant, whole = d
                diffs = [abs(a - b) for a, b in zip(est, ref)]
                c = row['configs'][name]
                c['speedup'] = round(row['configs']['before']['ns_per_entry_median'] / c['ns_per_entry_median'], 2)
                c['mean_abs_diff_from_before'] = round(statistics.mean(diffs), 7)
                c['max_abs_diff_from_before'] = round(max(diffs), 7)
                c['mean_quantization_bound'] = round(statistics.mean(quant), 7)
                c['beyond_bound'] = sum(1 for a, b, q in zip(est, ref, quant) if abs(a - b) > q + 1e-5 * abs(b) + 1e-6)
                c['bound_share_of_error_term_eps0_1.9'] = round(statistics.mean(
                    q / w for q, w in zip(quant, whole) if w > 0), 4)
            print(json.dumps(row), flush=True)
            rows.append(row)
    result = {'before': args.before, 'rounds': args.rounds, 'rows': rows,
              'load_average_after': [round(v, 2) for v in os.getloadavg()],
              'note': 'one thread, the core alone; shared 2-core machine: other engineers\' jobs may have run '
                      '(see the load average)'}
    path = os.path.join(ROOT, 'bench', 'results', 'lsh_estimator.json')
    with open(path, 'w') as f:
        json.dump(result, f, indent=1)
    print('written', path)


if __name__ == '__main__':
    main()
