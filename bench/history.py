#!/usr/bin/env python3
"""Times `bale gc --all-commits --dry-run` over a generated git history.

The repository has OUTS folder outs of FILES files each; every commit
rewrites every file of one out (so each commit holds one new pointer blob
and one new manifest) and is committed with the git CLI. With the defaults,
1,000 commits whose pointers reference 10^5 file objects (plus 1,000
manifests); a tag every 100 commits, a branch every 250.

    bench/history.py [--bale target/release/bale] [--commits 1000]
                     [--outs 10] [--files 100] [--runs 3] [--keep DIR]

Prints one Markdown row: commits, outs, objects in the cache, median,
fastest and slowest seconds of the gc.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ENV = dict(
    os.environ,
    GIT_AUTHOR_NAME="bench",
    GIT_AUTHOR_EMAIL="bench@example.com",
    GIT_COMMITTER_NAME="bench",
    GIT_COMMITTER_EMAIL="bench@example.com",
    GIT_CONFIG_GLOBAL="/dev/null",
    GIT_CONFIG_NOSYSTEM="1",
)


def run(cmd, cwd):
    r = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return r.stdout


def write_out(root, out, files, commit):
    d = os.path.join(root, out)
    os.makedirs(d, exist_ok=True)
    for k in range(files):
        with open(os.path.join(d, f"f{k:04}"), "w") as f:
            f.write(f"{out} file {k} at commit {commit}\n")


def generate(root, bale, commits, outs, files):
    run(["git", "init", "-q", "-b", "main"], root)
    run([bale, "init", "-q"], root)
    for c in range(commits):
        j = c % outs
        out = f"d{j:02}"
        write_out(root, out, files, c)
        if c < outs:
            run([bale, "add", "-q", out], root)
        else:
            run([bale, "commit", "-q", out], root)
        run(["git", "add", "-A"], root)
        run(["git", "commit", "-q", "-m", f"commit {c}"], root)
        if c % 100 == 99:
            run(["git", "tag", f"t{c}"], root)
        if c % 250 == 249:
            run(["git", "branch", f"b{c}"], root)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bale", default="target/release/bale")
    ap.add_argument("--commits", type=int, default=1000)
    ap.add_argument("--outs", type=int, default=10)
    ap.add_argument("--files", type=int, default=100)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", help="generate in DIR and keep it")
    a = ap.parse_args()
    bale = os.path.abspath(a.bale)
    if not os.access(bale, os.X_OK):
        sys.exit(f"{bale} is not an executable: build it (cargo build --release) or pass --bale")
    base = a.keep or tempfile.mkdtemp(prefix="bale-history.")
    root = os.path.join(base, "repo")
    os.makedirs(root, exist_ok=True)
    try:
        t0 = time.monotonic()
        generate(root, bale, a.commits, a.outs, a.files)
        print(f"generated in {time.monotonic() - t0:.1f} s: {root}", file=sys.stderr)
        times = []
        out = ""
        for _ in range(a.runs):
            t = time.monotonic()
            out = run([bale, "gc", "--all-commits", "--dry-run", "-v"], root)
            times.append(time.monotonic() - t)
        print(out.strip(), file=sys.stderr)
        objects = a.commits * a.files + a.commits
        print("| commits | outs | files per out | objects referenced | gc --all-commits --dry-run s (median) | fastest | slowest |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        print(f"| {a.commits} | {a.outs} | {a.files} | {objects} | {statistics.median(times):.3f} | {min(times):.3f} | {max(times):.3f} |")
    finally:
        if not a.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
