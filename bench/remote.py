#!/usr/bin/env python3
"""Benchmark `bale push` / `bale fetch` against `dvc push` / `dvc fetch` on
one loopback S3 server, and bale's large-file upload against one plain
multipart upload of the same bytes (boto3).

The server is moto's (`moto_server` from bench/.venv), started here on
127.0.0.1; the requests each step makes are counted from the server's own
access log, the same way for every tool. Each step runs
under /usr/bin/time -v (wall time from the clock, peak RSS from its
report). The datasets are made once in bench/work/remote/:

  data/  --files files of 1-8 KiB in folders of 100 (default 100,000)
  big/   --big files of --big-mib MiB (default 10 of 100 MiB)

Run through bench/run.sh (bench/run.sh remote), which builds bale and
installs DVC with dvc-s3, boto3 and moto into bench/.venv, or directly:
    python3 bench/remote.py [--files N] [--big N] [--no-dvc] [--bale PATH]
Prints Markdown on stdout, progress on stderr.
"""

import argparse
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
KEY, SECRET, BUCKET = "bench-key", "bench-secret", "bench"
TIME = "/usr/bin/time"
RSS_RE = re.compile(r"Maximum resident set size \(kbytes\): (\d+)")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """moto's S3 server (in memory), logging each request it serves; the
    bucket is made afresh at each start. (s3s-fs, which the tests use,
    answers DVC's HEAD of a key prefix with a 500, so DVC cannot fetch
    from it.)"""

    def __init__(self, python, work: Path):
        self.moto = str(Path(python).parent / "moto_server")
        self.python = python
        self.log = work / "moto.log"
        self.port = free_port()
        self.proc = None

    def start(self):
        self.out = open(self.log, "w")
        self.proc = subprocess.Popen([self.moto, "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=self.out, stderr=subprocess.STDOUT)
        for _ in range(400):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise SystemExit("moto_server did not start")
        sh([self.python, "-c",
            f"import boto3; boto3.client('s3', endpoint_url='{self.endpoint}').create_bucket(Bucket='{BUCKET}')"],
           HERE)

    def stop(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.out.close()
            self.proc = None

    def requests(self) -> int:
        with open(self.log, errors="replace") as f:
            return sum(1 for line in f if REQUEST_RE.search(line))

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"


REQUEST_RE = re.compile(r'"(GET|PUT|POST|HEAD|DELETE) /')


def env():
    e = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    e.update(AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET, AWS_DEFAULT_REGION="us-east-1")
    return e


def sh(cmd, cwd):
    p = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env(), capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed: {p.stderr.strip()[-600:]}")
    return p.stdout


def timed(cmd, cwd, server):
    """(seconds, peak RSS MiB, requests) of one command."""
    os.sync()
    before = server.requests()
    with tempfile.NamedTemporaryFile("r") as report:
        start = time.perf_counter()
        p = subprocess.run([TIME, "-v", "-o", report.name, *map(str, cmd)], cwd=cwd, env=env(),
                           capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if p.returncode:
            raise SystemExit(f"{' '.join(map(str, cmd))} failed: {p.stderr.strip()[-600:]}")
        rss = int(RSS_RE.search(report.read()).group(1)) / 1024
    time.sleep(0.3)  # the server logs the last request as it answers it
    return seconds, rss, server.requests() - before


def make_data(work: Path, nfiles: int, nbig: int, big_mib: int) -> Path:
    src = work / f"src-{nfiles}-{nbig}x{big_mib}"
    marker = src / ".complete"
    if marker.exists():
        return src
    shutil.rmtree(src, ignore_errors=True)
    log(f"generating {nfiles} small files and {nbig} of {big_mib} MiB in {src} (once)")
    rng = random.Random(1)
    text = (b"the quick brown fox jumps over the lazy dog; " * 200000)
    for i in range(nfiles):
        d = src / "data" / f"d{i // 100:04d}"
        if i % 100 == 0:
            d.mkdir(parents=True)
        n = rng.randint(1024, 8192)
        content = rng.randbytes(n) if i % 2 else text[(i * 131) % 100000:][:n]
        (d / f"f{i:06d}").write_bytes(content)
    (src / "big").mkdir()
    for i in range(nbig):
        with open(src / "big" / f"b{i:02d}", "wb") as f:
            for _ in range(big_mib):
                f.write(rng.randbytes(1 << 20))
    marker.write_text("")
    return src


def fresh(work: Path, name: str) -> Path:
    d = work / name
    if d.exists():
        subprocess.run(["chmod", "-R", "u+w", str(d)], check=False)
        shutil.rmtree(d)
    d.mkdir(parents=True)
    return d


def bale_rows(args, work, src, server):
    bale = args.bale
    rows = {}
    repo = fresh(work, "bale-a")
    for part in ("data", "big"):
        shutil.copytree(src / part, repo / part)
    sh([bale, "init", "-q"], repo)
    sh([bale, "config", "-q", "cache.type", "copy"], repo)
    log("bale add data big")
    sh([bale, "add", "-q", "data", "big"], repo)
    sh([bale, "remote", "add", "-q", "s3", f"s3://{BUCKET}/bale", "--default",
        "--endpoint", server.endpoint], repo)
    log("bale push data")
    rows["push the small files"] = timed([bale, "push", "data"], repo, server)
    rows["push again, nothing new"] = timed([bale, "push", "data"], repo, server)
    b = fresh(work, "bale-b")
    sh([bale, "init", "-q"], b)
    shutil.copy(repo / "data.bale", b / "data.bale")
    shutil.copy(repo / "big.bale", b / "big.bale")
    sh([bale, "config", "-q", "cache.type", "copy"], b)
    sh([bale, "remote", "add", "-q", "s3", f"s3://{BUCKET}/bale", "--default",
        "--endpoint", server.endpoint], b)
    log("bale fetch data")
    rows["fetch the small files"] = timed([bale, "fetch", "data"], b, server)
    rows["fetch again, nothing new"] = timed([bale, "fetch", "data"], b, server)
    return rows, repo, b


def dvc_rows(args, work, src, server):
    dvc = str(Path(args.python).parent / "dvc")
    rows = {}
    repo = fresh(work, "dvc-a")
    shutil.copytree(src / "data", repo / "data")
    sh([dvc, "init", "-q", "--no-scm"], repo)
    log("dvc add data (untimed)")
    sh([dvc, "add", "-q", "data"], repo)
    for r in (repo,):
        sh([dvc, "remote", "add", "-d", "s3", f"s3://{BUCKET}/dvc"], r)
        sh([dvc, "remote", "modify", "s3", "endpointurl", server.endpoint], r)
    log("dvc push")
    rows["push the small files"] = timed([dvc, "push", "-q"], repo, server)
    rows["push again, nothing new"] = timed([dvc, "push", "-q"], repo, server)
    b = fresh(work, "dvc-b")
    sh([dvc, "init", "-q", "--no-scm"], b)
    shutil.copy(repo / "data.dvc", b / "data.dvc")
    shutil.copy(repo / ".dvc" / "config", b / ".dvc" / "config")
    log("dvc fetch")
    rows["fetch the small files"] = timed([dvc, "fetch", "-q"], b, server)
    rows["fetch again, nothing new"] = timed([dvc, "fetch", "-q"], b, server)
    return rows


def large_rows(args, work, src, server, repo, clone, runs):
    """bale's push of the large files and one boto3 multipart upload of the
    same bytes as one object, alternating on one fresh server (`runs`
    times, each bale run to a new prefix), then bale's fetch of them."""
    joined = work / "big-joined"
    if not joined.exists():
        with open(joined, "wb") as out:
            for f in sorted((src / "big").iterdir()):
                with open(f, "rb") as i:
                    shutil.copyfileobj(i, out, 1 << 20)
    bale = args.bale
    pushes, refs = [], []
    for run in range(runs):
        prefix = f"s3://{BUCKET}/big{run}"
        for r in (repo, clone):
            sh([bale, "config", "-q", "remote.s3.url", prefix], r)
            sh([bale, "config", "-q", "remote.s3.endpoint", server.endpoint], r)
        log(f"large files, run {run + 1}/{runs}: bale push, boto3")
        pushes.append(timed([bale, "push", "big"], repo, server))
        script = (
            "import boto3,sys\n"
            "from boto3.s3.transfer import TransferConfig\n"
            f"c=boto3.client('s3',endpoint_url='{server.endpoint}')\n"
            f"c.upload_file(sys.argv[1],'{BUCKET}','ref/joined{run}',Config=TransferConfig("
            "multipart_threshold=16<<20,multipart_chunksize=8<<20,max_concurrency=4))\n")
        refs.append(timed([args.python, "-c", script, joined], work, server))
    log("large files: bale fetch")
    fetch = timed([bale, "fetch", "big"], clone, server)
    return pushes, refs, fetch


def median(samples):
    ordered = sorted(samples)
    return ordered[len(ordered) // 2]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, default=100_000)
    p.add_argument("--big", type=int, default=10)
    p.add_argument("--big-mib", type=int, default=100)
    p.add_argument("--no-dvc", action="store_true")
    p.add_argument("--runs", type=int, default=3, help="alternating runs of the large-file rows (median)")
    p.add_argument("--bale", default=str(HERE.parent / "target" / "release" / "bale"))
    p.add_argument("--python", default=str(HERE / ".venv" / "bin" / "python"))
    p.add_argument("--work", type=Path, default=HERE / "work" / "remote")
    args = p.parse_args()
    if not Path(args.python).parent.joinpath("moto_server").exists():
        raise SystemExit("needs moto_server in the bench venv: bench/run.sh remote installs it")
    args.work.mkdir(parents=True, exist_ok=True)
    src = make_data(args.work, args.files, args.big, args.big_mib)
    server = Server(args.python, args.work)
    results = {}
    try:
        server.start()
        results["bale"], repo, clone = bale_rows(args, args.work, src, server)
        server.stop()
        if not args.no_dvc:
            server.start()
            results["dvc"] = dvc_rows(args, args.work, src, server)
            server.stop()
        server.start()
        pushes, refs, fetch = large_rows(args, args.work, src, server, repo, clone, args.runs)
    finally:
        server.stop()
    total = args.big * args.big_mib
    print(f"### {args.files} files of 1-8 KiB and {args.big} of {args.big_mib} MiB; "
          f"moto_server (in memory) on 127.0.0.1; small files: one run\n")
    print("| operation | tool | time s | RSS MiB | requests | ratio |")
    print("|---|---|---:|---:|---:|---|")
    for op in ["push the small files", "push again, nothing new", "fetch the small files", "fetch again, nothing new"]:
        for tool in ("bale", "dvc"):
            if op not in results.get(tool, {}):
                continue
            s, rss, n = results[tool][op]
            ratio = ""
            if tool == "bale" and op in results.get("dvc", {}):
                ratio = f"dvc/bale {results['dvc'][op][0] / s:.1f}x"
            print(f"| {op} | {tool} | {s:.2f} | {rss:.0f} | {n} | {ratio} |")
    push, ref = median(pushes), median(refs)
    times = lambda xs: "-".join(f"{x[0]:.1f}" for x in sorted(xs))
    print(f"| push the large files ({total} MiB), median of {len(pushes)} | bale | {push[0]:.2f} | "
          f"{max(x[1] for x in pushes):.0f} | {push[2]} | {total / push[0]:.0f} MiB/s; runs {times(pushes)} s; "
          f"bale/boto3 {push[0] / ref[0]:.2f}x |")
    print(f"| one multipart upload of {total} MiB, median of {len(refs)} | boto3 | {ref[0]:.2f} | "
          f"{max(x[1] for x in refs):.0f} | {ref[2]} | runs {times(refs)} s |")
    s_, rss, n = fetch
    print(f"| fetch the large files ({total} MiB) | bale | {s_:.2f} | {rss:.0f} | {n} | {total / s_:.0f} MiB/s |")


if __name__ == "__main__":
    main()
