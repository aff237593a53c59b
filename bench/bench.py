#!/usr/bin/env python3
"""Benchmark bale against DVC and against the physical limits of the machine.

Generates deterministic datasets, then times each operation side by side in
one run: bale, DVC (from the venv that bench/run.sh makes) and the coreutils
command that does the same physical work. Prints one Markdown table of
medians, ratios and bale's peak RSS.

Run it through bench/run.sh, which builds bale and installs DVC first.
"""

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = {"S": 20_000, "L": 100_000, "XL": 1_000_000}
# The sizes whose files are 0-2 KiB (see generate).
SMALL_FILES = {"XL"}
FILES_PER_DIR = 100
BIG_EVERY = 2_000
BIG_SIZE = 1 << 20


def generate(root: Path, nfiles: int, small: bool) -> Path:
    """nfiles files in folders of 100, the same bytes on every machine:
    1-8 KiB (every 2,000th 1 MiB), or with `small` (XL) 0-2 KiB, the shape
    of the scale targets (memory per file matters there, not bytes).
    Reused when already complete."""
    data = root / "data"
    marker = root / ".complete"
    want = f"{nfiles} {'small' if small else 'mixed'}"
    if marker.exists() and marker.read_text() == want:
        return data
    shutil.rmtree(root, ignore_errors=True)
    for i in range(nfiles):
        d = data / f"d{i // FILES_PER_DIR:05d}"
        if i % FILES_PER_DIR == 0:
            d.mkdir(parents=True)
        rng = random.Random(i)
        if small:
            size = rng.randint(0, 2048)
        else:
            size = BIG_SIZE if i % BIG_EVERY == 0 else rng.randint(1024, 8192)
        (d / f"f{i:07d}.bin").write_bytes(rng.randbytes(size))
    marker.write_text(want)
    return data


def run(cmd, cwd, check=True):
    """Runs cmd (a list, or a string for sh -c); returns (seconds, peak RSS
    in KiB of the process tree's largest member)."""
    if isinstance(cmd, str):
        cmd = ["sh", "-c", cmd]
    err = tempfile.TemporaryFile()
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.chdir(cwd)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(err.fileno(), 2)
            os.execvp(cmd[0], cmd)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    elapsed = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if check and code != 0:
        err.seek(0)
        raise RuntimeError(f"{' '.join(cmd)} in {cwd} exited {code}:\n{err.read().decode(errors='replace')}")
    return elapsed, usage.ru_maxrss


def sync():
    subprocess.run(["sync"], check=False)


class Tool:
    def __init__(self, name, exe, init):
        self.name, self.exe, self.init_args = name, exe, init

    def cmd(self, *args):
        return [self.exe, *args]

    def new_repo(self, repo: Path, link: str, dataset: Path):
        shutil.rmtree(repo, ignore_errors=True)
        repo.mkdir(parents=True)
        run(self.cmd(*self.init_args), repo)
        run(self.cmd("config", "cache.type", link), repo)
        run(["cp", "-r", "--reflink=never", str(dataset), str(repo / "data")], repo)


def measure(runs, setup, cmd, cwd):
    times, rss = [], 0
    for _ in range(runs):
        setup()
        sync()
        t, r = run(cmd, cwd)
        times.append(t)
        rss = max(rss, r)
    return statistics.median(times), rss


def rm(path: Path):
    shutil.rmtree(path, ignore_errors=True)


def bench_one(tool: Tool, repo: Path, dataset: Path, runs: int, reflink: bool, results: dict):
    """All operations of one tool on one dataset; results[op] = (s, rss)."""
    noop = lambda: None  # noqa: E731

    def add(link):
        return measure(runs, lambda: tool.new_repo(repo, link, dataset), tool.cmd("add", "data"), repo)

    results["add (copy)"] = add("copy")
    results["add (hardlink)"] = add("hardlink")
    results["status, unchanged"] = measure(runs, noop, tool.cmd("status"), repo)
    results["checkout, no-op"] = measure(runs, noop, tool.cmd("checkout"), repo)

    link_types = ["hardlink", "symlink", "copy"] + (["reflink"] if reflink else [])
    for link in link_types:
        run(tool.cmd("config", "cache.type", link), repo)
        results[f"checkout after rm -rf ({link})"] = measure(
            runs, lambda: rm(repo / "data"), tool.cmd("checkout"), repo
        )

    run(tool.cmd("config", "cache.type", "copy"), repo)
    run(tool.cmd("checkout", "--relink"), repo)
    files = sorted((repo / "data").rglob("*.bin"))
    victim, edited = files[1], files[2]
    original = edited.read_bytes()

    def damage():
        victim.unlink(missing_ok=True)
        edited.write_bytes(original[::-1] + b"edit")

    results["repair 1 deleted + 1 edited"] = measure(
        runs, damage, tool.cmd("checkout", "--force"), repo
    )

    def relink(src, dst):
        def setup():
            run(tool.cmd("config", "cache.type", src), repo)
            run(tool.cmd("checkout", "--relink"), repo)
            run(tool.cmd("config", "cache.type", dst), repo)

        return measure(runs, setup, tool.cmd("checkout", "--relink"), repo)

    results["relink copy -> hardlink"] = relink("copy", "hardlink")
    results["relink hardlink -> copy"] = relink("hardlink", "copy")


def bench_limits(work: Path, dataset: Path, runs: int, reflink: bool, results: dict):
    """The coreutils commands that do the same physical work."""
    src = work / "src"
    dst = work / "dst"
    work.mkdir(parents=True, exist_ok=True)
    if not src.exists():
        run(["cp", "-r", "--reflink=never", str(dataset), str(src)], work)
    clear = lambda: rm(dst)  # noqa: E731
    noop = lambda: None  # noqa: E731
    results["find stat walk"] = measure(runs, noop, "find src -printf '%T@ %s %m\\n' >/dev/null", work)
    results["cp -al"] = measure(runs, clear, "cp -al src dst", work)
    results["cp -r --reflink=never"] = measure(runs, clear, "cp -r --reflink=never src dst", work)
    results["cp -rs (symlinks)"] = measure(runs, clear, f"cp -rs {src} dst", work)
    if reflink:
        results["cp -r --reflink=always"] = measure(runs, clear, "cp -r --reflink=always src dst", work)
    results["xxhsum all files"] = measure(
        runs, noop, "find src -type f -print0 | xargs -0 -P2 -n500 xxhsum -H2 >/dev/null", work
    )
    results["cat all files"] = measure(runs, noop, "find src -type f -print0 | xargs -0 cat >/dev/null", work)
    results["xxhsum + cp -al"] = measure(
        runs,
        clear,
        "find src -type f -print0 | xargs -0 -P2 -n500 xxhsum -H2 >/dev/null && cp -al src dst",
        work,
    )
    results["xxhsum + cp -r"] = measure(
        runs,
        clear,
        "find src -type f -print0 | xargs -0 -P2 -n500 xxhsum -H2 >/dev/null && cp -r --reflink=never src dst",
        work,
    )

    def relink_limit(copy_cmd):
        def setup():
            rm(dst)
            run("cp -r --reflink=never src dst", work)

        return measure(runs, setup, f"rm -rf dst && {copy_cmd}", work)

    results["rm -rf + cp -al"] = relink_limit("cp -al src dst")
    results["rm -rf + cp -r"] = relink_limit("cp -r --reflink=never src dst")
    rm(dst)


# operation -> the limit it is compared with
LIMIT_OF = {
    "add (copy)": "xxhsum + cp -r",
    "add (hardlink)": "xxhsum + cp -al",
    "status, unchanged": "find stat walk",
    "checkout, no-op": "find stat walk",
    "checkout after rm -rf (hardlink)": "cp -al",
    "checkout after rm -rf (symlink)": "cp -rs (symlinks)",
    "checkout after rm -rf (copy)": "cp -r --reflink=never",
    "checkout after rm -rf (reflink)": "cp -r --reflink=always",
    "repair 1 deleted + 1 edited": "find stat walk",
    "relink copy -> hardlink": "rm -rf + cp -al",
    "relink hardlink -> copy": "rm -rf + cp -r",
}


def table(rows):
    out = [
        "| data | fs | operation | bale s | limit | limit s | bale/limit | DVC s | DVC/bale | bale peak RSS MB | RSS B/file |",
        "|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        out.append("| " + " | ".join(r) + " |")
    return "\n".join(out)


def main():
    here = Path(__file__).resolve().parent
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="S,L", help="datasets: S, L, XL (comma list; default S,L)")
    p.add_argument("--runs", type=int, default=5, help="runs per measurement, median reported (default 5)")
    p.add_argument("--work", type=Path, default=here / "work", help="where datasets and repos go (ext4 side)")
    p.add_argument("--xfs", type=Path, default=os.environ.get("BALE_BENCH_XFS"), help="a folder on an XFS mount with reflink")
    p.add_argument("--bale", default=str(here.parent / "target" / "release" / "bale"))
    p.add_argument("--dvc", default=str(here / ".venv" / "bin" / "dvc"))
    p.add_argument("--no-dvc", action="store_true", help="leave DVC out")
    p.add_argument("--fs", default="ext4,xfs", help="where to run: ext4 (--work), xfs (--xfs), or both")
    args = p.parse_args()

    tools = [Tool("bale", args.bale, ["init", "-q"])]
    if not args.no_dvc:
        if Path(args.dvc).exists():
            tools.append(Tool("dvc", args.dvc, ["init", "--no-scm", "-q"]))
        else:
            print(f"DVC not found at {args.dvc}: DVC columns skipped (bench/run.sh installs it)", file=sys.stderr)

    wanted = args.fs.split(",")
    places = [("ext4", args.work, False)] if "ext4" in wanted else []
    if "xfs" in wanted:
        if args.xfs:
            places.append(("xfs", Path(args.xfs) / "bale-bench", True))
        else:
            print("no --xfs folder: reflink rows skipped", file=sys.stderr)

    rows = []
    for size in args.sizes.split(","):
        n = SIZES[size]
        for fs, base, reflink in places:
            base.mkdir(parents=True, exist_ok=True)
            print(f"[{size} on {fs}] generating {n} files", file=sys.stderr)
            dataset = generate(base / f"dataset-{size}", n, size in SMALL_FILES)
            limits, per_tool = {}, {}
            print(f"[{size} on {fs}] limits", file=sys.stderr)
            bench_limits(base / f"limits-{size}", dataset, args.runs, reflink, limits)
            for tool in tools:
                print(f"[{size} on {fs}] {tool.name}", file=sys.stderr)
                per_tool[tool.name] = {}
                bench_one(tool, base / f"{tool.name}-{size}", dataset, args.runs, reflink, per_tool[tool.name])
                rm(base / f"{tool.name}-{size}")
            rm(base / f"limits-{size}")
            for op, limit in LIMIT_OF.items():
                if op not in per_tool["bale"]:
                    continue
                b, rss = per_tool["bale"][op]
                lim = limits.get(limit)
                d = per_tool.get("dvc", {}).get(op)
                rows.append([
                    size, fs, op, f"{b:.3f}", limit,
                    f"{lim[0]:.3f}" if lim else "-",
                    f"{b / lim[0]:.2f}" if lim else "-",
                    f"{d[0]:.3f}" if d else "-",
                    f"{d[0] / b:.1f}" if d else "-",
                    f"{rss / 1024:.1f}",
                    f"{rss * 1024 / n:.0f}",
                ])
            # Repairing a few files is judged against bale's own no-op.
            rep, noop = per_tool["bale"].get("repair 1 deleted + 1 edited"), per_tool["bale"].get("checkout, no-op")
            if rep and noop:
                rows.append([
                    size, fs, "repair 1 deleted + 1 edited", f"{rep[0]:.3f}", "bale checkout, no-op",
                    f"{noop[0]:.3f}", f"{rep[0] / noop[0]:.2f}", "-", "-",
                    f"{rep[1] / 1024:.1f}", f"{rep[1] * 1024 / n:.0f}",
                ])
            print(table(rows), file=sys.stderr)
    print(table(rows))


if __name__ == "__main__":
    main()
