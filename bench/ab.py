#!/usr/bin/env python3
"""Before/after of a change to a hot path: two bale binaries, the same S
dataset (bench.py's), interleaved runs in one process, medians.

    bench/ab.py OLD_BINARY NEW_BINARY FOLDER [RUNS]

FOLDER should be on the file system to measure (an XFS mount for
file-creating work: ext4 times swing too much here)."""
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import generate  # noqa: E402

old, new, base = sys.argv[1], sys.argv[2], sys.argv[3]
runs = int(sys.argv[4]) if len(sys.argv) > 4 else 3
src = generate(Path(base) / "ds", 20_000)
bins = {"old": old, "new": new}
def t(cmd, cwd):
    s = time.perf_counter(); subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); return time.perf_counter() - s
res = {}
for ltype in ['hardlink', 'symlink', 'copy']:
    for r in range(runs):
        for name, b in bins.items():
            repo = os.path.join(base, f'repo-{name}')
            shutil.rmtree(repo, ignore_errors=True); os.makedirs(repo)
            subprocess.run(['cp', '-a', str(src), repo + '/data'], check=True)
            subprocess.run(['sync'])
            subprocess.run([b, 'init', '-q'], cwd=repo, check=True)
            subprocess.run([b, 'config', '-q', 'cache.type', ltype], cwd=repo, check=True)
            res.setdefault((ltype, 'add', name), []).append(t([b, 'add', '-q', 'data'], repo))
            time.sleep(0.05)
            res.setdefault((ltype, 'noop checkout', name), []).append(t([b, 'checkout', '-q'], repo))
            res.setdefault((ltype, 'status', name), []).append(t([b, 'status'], repo))
            for victim in ("data/d00003/f0000300.bin", "data/d00150/f0015000.bin"):
                os.remove(os.path.join(repo, victim))
            res.setdefault((ltype, 'repair 2 deleted', name), []).append(t([b, 'checkout', '-q'], repo))
            shutil.rmtree(repo + '/data')
            res.setdefault((ltype, 'checkout after rm -rf', name), []).append(t([b, 'checkout', '-q'], repo))
            time.sleep(0.05)
            res.setdefault((ltype, 'noop after checkout', name), []).append(t([b, 'checkout', '-q'], repo))
            shutil.rmtree(repo)
keys = sorted({(a, b) for a, b, _ in res}, key=lambda k: (k[0], k[1]))
print(f"| link | operation | old s | new s | new/old |")
print("|---|---|---:|---:|---:|")
for k in keys:
    o = statistics.median(res[k + ('old',)]); n = statistics.median(res[k + ('new',)])
    print(f"| {k[0]} | {k[1]} | {o:.3f} | {n:.3f} | {n/o:.2f} |")
