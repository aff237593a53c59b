#!/usr/bin/env python3
"""Benchmark `bale import ARCHIVE` against disk-objectstore and the physical floor.

Generates deterministic archives (cached in bench/work/import/), then times,
side by side in one run, each operation of bale and of its peers:

  1. import D.zip without checkout: bale, disk-objectstore's
     Container.add_streamed_objects_to_pack fed from zipfile (--dos-batch
     entries per call), cp + fdatasync
  2. import D.zip with checkout, on ext4 and XFS, best cache.type and copy,
     against unzip into the same file system
  3. the same for D.tar.gz: bale, disk-objectstore fed from tarfile,
     gzip -dc + fdatasync, tar xzf
  4. copy checkout from packs and from loose objects, then a no-op checkout
  5. bale pack of loose objects, bale gc --force of a half-dead pack
  6. cache size on disk and inode count, packed and loose, and
     disk-objectstore's container

Each timing: fresh state, sync, then the command under /usr/bin/time -v
(wall time from the clock, peak RSS from "Maximum resident set size").
Median of --runs (and the fastest and slowest run: this machine is noisy),
peak RSS over the runs. Runs alternate between the tools of
one row so that drift hits them alike. Prints Markdown tables on stdout,
progress on stderr.

A bale binary without `import` (or `pack`) gets "not available in this
binary" in its rows; the peers run all the same.

Run it through bench/run.sh (bench/run.sh import --runs 3), which builds
bale, installs disk-objectstore into bench/.venv and mounts XFS, or directly:
    python3 bench/import.py --runs 3 [--big] [--rows 1,2] [--bale PATH]
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
GENERATOR_VERSION = "1"

# name -> (number of files, min size, max size); files in folders of 100
DATASETS = {"D1": (100_000, 1024, 8192), "D2": (1_000_000, 0, 2048)}
FILES_PER_DIR = 100
EXECUTABLE_EVERY = 97
ZIP_DATE = (2024, 1, 1, 0, 0, 0)
TAR_MTIME = 1_704_067_200  # 2024-01-01


# ---------------------------------------------------------------- datasets

def text_pool(size: int = 8 << 20) -> bytes:
    """Lines of CSV-like text that deflate and zstd shrink about 3x."""
    rng = random.Random("bale-import-text")
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choices(letters, k=rng.randint(2, 9))) for _ in range(3000)]
    out, n, line = [], 0, 0
    while n < size:
        row = f"{line},{' '.join(rng.choices(words, k=rng.randint(3, 12)))},{rng.random() * 1000:.3f}\n"
        out.append(row)
        n += len(row)
        line += 1
    return "".join(out).encode()[:size]


def entries(nfiles: int, lo: int, hi: int):
    """Yields (index, folder, name, mode, content) in archive order; the
    same bytes on every machine. Each file is part random bytes, part
    text, so compression saves some but not all."""
    pool = text_pool()
    for i in range(nfiles):
        rng = random.Random(i)
        size = rng.randint(lo, hi)
        nrandom = int(size * rng.uniform(0.2, 0.6))
        start = rng.randrange(len(pool) - hi)
        content = rng.randbytes(nrandom) + pool[start:start + size - nrandom]
        mode = 0o755 if i % EXECUTABLE_EVERY == 0 else 0o644
        folder = f"d{i // FILES_PER_DIR:05d}"
        yield i, folder, f"{folder}/f{i:07d}.bin", mode, content


class ZipOut:
    """A zip of STORED entries, with folder entries as `zip -r` makes them."""

    def __init__(self, path: Path):
        self.zf = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True)

    def folder(self, name: str):
        info = zipfile.ZipInfo(name + "/", date_time=ZIP_DATE)
        info.external_attr = (0o40755 << 16) | 0x10
        self.zf.writestr(info, b"")

    def file(self, name: str, mode: int, content: bytes):
        info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
        info.external_attr = (0o100000 | mode) << 16
        info.compress_type = zipfile.ZIP_STORED
        self.zf.writestr(info, content)

    def close(self):
        self.zf.close()


class TarGzOut:
    """A gzip'd GNU tar (level 6, as `tar czf`), with folder entries."""

    def __init__(self, path: Path):
        self.raw = open(path, "wb")
        self.gz = gzip.GzipFile(filename="", mode="wb", compresslevel=6, fileobj=self.raw, mtime=0)
        self.tf = tarfile.open(fileobj=self.gz, mode="w", format=tarfile.GNU_FORMAT)

    def _info(self, name: str, mode: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.mode, info.mtime, info.uname, info.gname = mode, TAR_MTIME, "", ""
        return info

    def folder(self, name: str):
        info = self._info(name, 0o755)
        info.type = tarfile.DIRTYPE
        self.tf.addfile(info)

    def file(self, name: str, mode: int, content: bytes):
        info = self._info(name, mode)
        info.size = len(content)
        self.tf.addfile(info, io.BytesIO(content))

    def close(self):
        self.tf.close()
        self.gz.close()
        self.raw.close()


class Dataset:
    """NAME.zip, NAME.tar.gz and NAME-half.zip (the even-numbered files of
    NAME.zip, for gc) in one folder, made once and reused."""

    def __init__(self, root: Path, name: str, nfiles=None):
        self.nfiles, self.lo, self.hi = DATASETS[name]
        if nfiles:  # a smaller copy for a quick check, kept apart
            self.nfiles, name = nfiles, f"{name}-n{nfiles}"
        self.name, self.root = name, root / name
        self.zip = self.root / f"{name}.zip"
        self.tgz = self.root / f"{name}.tar.gz"
        self.half_zip = self.root / f"{name}-half.zip"
        self.tree = self.root / "tree"  # the zip unpacked, source for floors

    def ensure(self):
        marker = self.root / ".complete"
        stamp = f"{GENERATOR_VERSION} {self.nfiles} {self.lo} {self.hi}"
        if marker.exists() and marker.read_text() == stamp:
            return
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True)
        log(f"generating {self.name}: {self.nfiles} files of {self.lo}-{self.hi} bytes (once; cached in {self.root})")
        start = time.perf_counter()
        full, tgz, half = ZipOut(self.zip), TarGzOut(self.tgz), ZipOut(self.half_zip)
        for i, folder, name, mode, content in entries(self.nfiles, self.lo, self.hi):
            if i % FILES_PER_DIR == 0:
                for out in (full, tgz, half):
                    out.folder(folder)
            full.file(name, mode, content)
            tgz.file(name, mode, content)
            if i % 2 == 0:
                half.file(name, mode, content)
        for out in (full, tgz, half):
            out.close()
        marker.write_text(stamp)
        log(f"generated {self.name} in {time.perf_counter() - start:.0f} s: "
            f"zip {mib(self.zip.stat().st_size):.0f} MiB, tar.gz {mib(self.tgz.stat().st_size):.0f} MiB")

    def ensure_tree(self) -> Path:
        """The zip unpacked once by unzip, for the rows whose floor reads files."""
        marker = self.root / ".tree-complete"
        if not marker.exists():
            shutil.rmtree(self.tree, ignore_errors=True)
            subprocess.run(["unzip", "-q", str(self.zip), "-d", str(self.tree)], check=True)
            marker.write_text("")
        return self.tree

    def dead_hashes(self) -> Path:
        """SHA-256 (disk-objectstore's hash) of the contents of NAME.zip
        that NAME-half.zip no longer has: what gc should drop."""
        out = self.root / "dead-sha256.json"
        if not out.exists():
            def hashes(path):
                with zipfile.ZipFile(path) as zf:
                    return {hashlib.sha256(zf.read(i)).hexdigest() for i in zf.infolist() if not i.is_dir()}
            dead = sorted(hashes(self.zip) - hashes(self.half_zip))
            out.write_text(json.dumps(dead))
        return out


# ------------------------------------------------------------- measuring

def log(msg: str):
    print(msg, file=sys.stderr, flush=True)


def mib(n: float) -> float:
    return n / (1 << 20)


def rm(path: Path):
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        try:
            shutil.rmtree(path)
        except OSError:  # a read-only folder: make it writable, then again
            subprocess.run(["chmod", "-R", "u+w", str(path)], check=False)
            shutil.rmtree(path)


class CommandFailed(Exception):
    pass


TIME = "/usr/bin/time"
RSS_RE = re.compile(r"Maximum resident set size \(kbytes\): (\d+)")


def sh(cmd, cwd: Path, capture=False) -> str:
    """Runs an untimed setup command; raises CommandFailed with its stderr."""
    if isinstance(cmd, str):
        cmd = ["sh", "-c", cmd]
    cmd = [str(c) for c in cmd]
    p = subprocess.run(cmd, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if p.returncode != 0:
        raise CommandFailed(describe_failure(cmd, p.returncode, p.stderr))
    return p.stdout if capture else ""


def describe_failure(cmd, code, stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    tail = " / ".join(lines[-3:]) if lines else "no message"
    return f"`{' '.join(str(c) for c in cmd)}` exited {code}: {tail}"


def timed(cmd, cwd: Path):
    """Runs cmd after a sync; returns (seconds, peak RSS MiB, stdout)."""
    if isinstance(cmd, str):
        cmd = ["sh", "-c", cmd]
    cmd = [str(c) for c in cmd]
    os.sync()
    with tempfile.NamedTemporaryFile("r") as report, tempfile.TemporaryFile("w+") as out, \
            tempfile.TemporaryFile("w+") as err:
        wrapped = [TIME, "-v", "-o", report.name, *cmd] if HAVE_TIME else cmd
        start = time.perf_counter()
        proc = subprocess.Popen(wrapped, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if code != 0:
            raise CommandFailed(describe_failure(cmd, code, err.read()))
        match = RSS_RE.search(report.read()) if HAVE_TIME else None
        rss_kib = int(match.group(1)) if match else usage.ru_maxrss
        return seconds, rss_kib / 1024, out.read()


class Case:
    """One contender of a row: a setup that makes a fresh state, then one or
    more timed steps, each (operation, command, cwd), with an untimed pause
    between steps (so that no file is younger than the snapshot that a step
    recorded: bale's racy-timestamp rule). `unavailable` says why the case
    cannot run (its rows print that instead of numbers). The paths in
    `leaves` are removed after the steps, so that one case at a time fills
    the disk."""

    def __init__(self, tool, steps, setup=None, unavailable=None, leaves=()):
        self.tool, self.steps, self.setup, self.unavailable = tool, steps, setup, unavailable
        self.leaves = leaves


def compare(title: str, cases, runs: int) -> dict:
    """Runs every case `runs` times, interleaved; returns
    {(operation, tool): (median s, peak RSS MiB, fastest s, slowest s) or a note string}."""
    samples, notes = {}, {}
    for case in cases:
        for op, _, _ in case.steps:
            if case.unavailable:
                notes[(op, case.tool)] = case.unavailable
            else:
                samples[(op, case.tool)] = []
    for run in range(runs):
        for case in cases:
            if case.unavailable or (case.steps[0][0], case.tool) in notes:
                continue
            log(f"[{title}] run {run + 1}/{runs}: {case.tool}")
            try:
                if case.setup:
                    case.setup()
                for step, (op, cmd, cwd) in enumerate(case.steps):
                    if step:
                        time.sleep(0.1)
                    seconds, rss, out = timed(cmd, cwd)
                    samples[(op, case.tool)].append((seconds, rss))
                    if run == 0 and out.strip():
                        log(f"    {op}: {out.strip().splitlines()[-1]}")
            except CommandFailed as e:
                log(f"    failed: {e}")
                for op, _, _ in case.steps:
                    notes[(op, case.tool)] = f"failed: {e}"
            for path in case.leaves:
                rm(path)
    results = dict(notes)
    for key, values in samples.items():
        if key not in notes and values:
            times = [s for s, _ in values]
            results[key] = (statistics.median(times), max(r for _, r in values), min(times), max(times))
    return results


# ------------------------------------------------------------------ rows

class Bench:
    def __init__(self, args, dataset: Dataset):
        self.args, self.ds, self.runs = args, dataset, args.runs
        self.bale = str(Path(args.bale).resolve())
        self.py = args.python
        self.rows = []  # (row, operation, tool, time, spread, rss, note)
        self.sizes = []  # (what, bytes, inodes, ratio)
        self.bale_import = self.bale_note("import")
        self.bale_pack = self.bale_note("pack")
        self.dos = dos_note(self.py)

    # -- availability

    def bale_note(self, command: str):
        """None when the binary has the command, else the note for its rows."""
        if not os.access(self.bale, os.X_OK):
            return f"bale binary not found at {self.bale} (cargo build --release)"
        p = subprocess.run([self.bale, command, "--help"], capture_output=True)
        return None if p.returncode == 0 else f"bale {command}: not available in this binary"

    # -- states

    def repo(self, path: Path, cache_type=None, imports=()):
        """A fresh repository, optionally with cache.type set and archives
        imported (each a list of extra `bale import` arguments)."""
        rm(path)
        path.mkdir(parents=True)
        sh([self.bale, "init", "-q"], path)
        if cache_type:
            sh([self.bale, "config", "-q", "cache.type", cache_type], path)
        for extra in imports:
            sh([self.bale, "import", "-q", *extra], path)

    def dos_import(self, peer: str, archive: Path, folder: Path):
        return [self.py, __file__, "_peer", peer, archive, folder, self.args.dos_batch]

    def dos_container(self, path: Path, archive=None):
        rm(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        sh([self.py, __file__, "_peer", "dos-init", path], path.parent)
        if archive:
            sh(self.dos_import("dos-zip", archive, path), path.parent)

    # -- output

    def add(self, row: str, results: dict, order, ratios=()):
        """Appends the table lines of one row; ratios are
        (numerator key, denominator key, label, target)."""
        notes = {}
        for num, den, label, target in ratios:
            a, b = results.get(num), results.get(den)
            if isinstance(a, tuple) and isinstance(b, tuple):
                ok = "" if target is None else (" ok" if a[0] / b[0] <= target else " MISSED")
                text = f"{label} {a[0] / b[0]:.2f}" + ("" if target is None else f" (<= {target}){ok}")
            else:
                text = f"{label} -"
            notes.setdefault(num, []).append(text)
        for key in order:
            op, tool = key
            r = results.get(key)
            if isinstance(r, tuple):
                spread = f"{r[2]:.2f}-{r[3]:.2f}" if self.runs > 1 else "-"
                self.rows.append((row, op, tool, f"{r[0]:.3f}", spread, f"{r[1]:.1f}",
                                  "; ".join(notes.get(key, []))))
            else:
                self.rows.append((row, op, tool, "-", "-", "-", r or "-"))

    # -- the rows

    def row1(self, base: Path):
        ds, repo, dos, copy = self.ds, base / "repo", base / "dos", base / "copy.zip"
        op = f"import {ds.zip.name} --no-checkout"
        cases = [
            Case("bale", [(op, [self.bale, "import", ds.zip, "--no-checkout"], repo)],
                 lambda: self.repo(repo), self.bale_import, [repo]),
            Case("disk-objectstore", [(op, self.dos_import("dos-zip", ds.zip, dos), base)],
                 lambda: self.dos_container(dos), self.dos, [dos]),
            Case("cp + fdatasync", [(op, f"cp {ds.zip} {copy} && sync -d {copy}", base)], None, None, [copy]),
        ]
        res = compare("1 import zip", cases, self.runs)
        b, d, c = (op, "bale"), (op, "disk-objectstore"), (op, "cp + fdatasync")
        self.add("1", res, [b, d, c], [(b, d, "bale/dos", 0.2), (b, c, "bale/cp", 2.0)])

    def row2(self, base: Path, fs: str, best: str):
        ds, out = self.ds, base / "unzipped"
        op = f"import {ds.zip.name} ({fs})"
        noop = f"checkout, no-op after import ({fs})"
        cases = []
        for ctype in (best, "copy"):
            repo = base / f"repo-{ctype}"
            steps = [(op, [self.bale, "import", ds.zip], repo)]
            if ctype == best:
                steps.append((noop, [self.bale, "checkout"], repo))
            cases.append(Case(f"bale ({ctype})", steps, lambda repo=repo, ctype=ctype: self.repo(repo, ctype),
                              self.bale_import, [repo]))
        cases.append(Case("unzip", [(op, ["unzip", "-q", ds.zip, "-d", out], base)], None, None, [out]))
        res = compare(f"2 import zip with checkout, {fs}", cases, self.runs)
        bb, bc, u = (op, f"bale ({best})"), (op, "bale (copy)"), (op, "unzip")
        self.add("2", res, [bb, bc, u, (noop, f"bale ({best})")],
                 [(bb, u, f"bale({best})/unzip", 1.0), (bc, u, "bale(copy)/unzip", 1.5)])

    def row3(self, base: Path):
        ds, repo, repo_co, dos = self.ds, base / "repo", base / "repo-co", base / "dos"
        flat, out = base / "flat.tar", base / "untarred"
        op = f"import {ds.tgz.name} --no-checkout"
        op_co = f"import {ds.tgz.name} (hardlink checkout)"
        cases = [
            Case("bale", [(op, [self.bale, "import", ds.tgz, "--no-checkout"], repo)],
                 lambda: self.repo(repo), self.bale_import, [repo]),
            Case("disk-objectstore", [(op, self.dos_import("dos-tar", ds.tgz, dos), base)],
                 lambda: self.dos_container(dos), self.dos, [dos]),
            Case("gzip -dc + fdatasync", [(op, f"gzip -dc {ds.tgz} > {flat} && sync -d {flat}", base)],
                 None, None, [flat]),
            Case("bale (hardlink)", [(op_co, [self.bale, "import", ds.tgz], repo_co)],
                 lambda: self.repo(repo_co, "hardlink"), self.bale_import, [repo_co]),
            Case("tar xzf", [(op_co, f"mkdir {out} && tar xzf {ds.tgz} -C {out}", base)], None, None, [out]),
        ]
        res = compare("3 import tar.gz", cases, self.runs)
        b, d, z = (op, "bale"), (op, "disk-objectstore"), (op, "gzip -dc + fdatasync")
        bh, t = (op_co, "bale (hardlink)"), (op_co, "tar xzf")
        self.add("3", res, [b, d, z, bh, t],
                 [(b, d, "bale/dos", None), (b, z, "bale/gzip", None), (bh, t, "bale/tar", None)])

    def row4(self, base: Path):
        ds = self.ds
        tree, copy = ds.ensure_tree(), base / "tree-copy"
        op = "checkout, copy, all files"
        noop = "checkout, no-op"
        cases = []
        for how in ("packed", "loose"):
            repo = base / f"repo-{how}"
            cases.append(Case(
                f"bale ({how})",
                [(op, [self.bale, "checkout"], repo), (noop, [self.bale, "checkout"], repo)],
                lambda repo=repo, how=how: self.repo(repo, "copy", [[ds.zip, f"--{how}", "--no-checkout"]]),
                self.bale_import, [repo]))
        cases.append(Case("cp -r --reflink=never",
                          [(op, ["cp", "-r", "--reflink=never", tree, copy], base)], None, None, [copy]))
        res = compare("4 checkout from packs and loose", cases, self.runs)
        p, lo, c = (op, "bale (packed)"), (op, "bale (loose)"), (op, "cp -r --reflink=never")
        np_, nl = (noop, "bale (packed)"), (noop, "bale (loose)")
        self.add("4", res, [p, lo, c, np_, nl],
                 [(p, lo, "packed/loose", 1.2), (p, c, "packed/cp", None), (np_, nl, "packed/loose", 1.2)])

    def row5(self, base: Path):
        ds = self.ds
        tree = ds.ensure_tree()
        repo_pack, repo_gc, dos = base / "repo-pack", base / "repo-gc", base / "dos"
        scratch, onefile, halfcopy = base / "tree", base / "all-in-one", base / "half.zip"
        dead = ds.dead_hashes()
        pack_op = f"pack {ds.nfiles} loose objects"
        gc_op = "gc of a half-dead pack"
        half = [ds.half_zip, ds.name, "--packed", "--no-checkout", "--force"]
        cases = [
            Case("bale", [(pack_op, [self.bale, "pack"], repo_pack)],
                 lambda: self.repo(repo_pack, None, [[ds.zip, "--loose", "--no-checkout"]]),
                 self.bale_import or self.bale_pack, [repo_pack]),
            Case("cat all + fdatasync + rm",
                 [(pack_op, f"find {scratch} -type f -print0 | xargs -0 cat > {onefile} && sync -d {onefile}"
                            f" && rm -rf {scratch}", base)],
                 lambda: sh(["cp", "-r", "--reflink=never", tree, scratch], base), None, [scratch, onefile]),
            Case("bale", [(gc_op, [self.bale, "gc", "--force"], repo_gc)],
                 lambda: self.repo(repo_gc, None, [[ds.zip, "--packed", "--no-checkout"], half]),
                 self.bale_import, [repo_gc]),
            Case("disk-objectstore", [(gc_op, [self.py, __file__, "_peer", "dos-gc", dos, dead], base)],
                 lambda: self.dos_container(dos, ds.zip), self.dos, [dos]),
            Case("cp half + fdatasync", [(gc_op, f"cp {ds.half_zip} {halfcopy} && sync -d {halfcopy}", base)],
                 None, None, [halfcopy]),
        ]
        res = compare("5 pack and gc", cases, self.runs)
        bp, fp = (pack_op, "bale"), (pack_op, "cat all + fdatasync + rm")
        bg, dg, fg = (gc_op, "bale"), (gc_op, "disk-objectstore"), (gc_op, "cp half + fdatasync")
        self.add("5", res, [bp, fp, bg, dg, fg],
                 [(bp, fp, "bale/floor", None), (bg, dg, "bale/dos", None), (bg, fg, "bale/floor", None)])

    def row6(self, base: Path):
        ds = self.ds
        measured = {}

        def size(what, path: Path):
            du = sh(["du", "-s", "--block-size=1", path], base, capture=True)
            inodes = sh(f"find {path} | wc -l", base, capture=True)
            measured[what] = (int(du.split()[0]), int(inodes))

        log("[6 cache size] measuring")
        for how in ("packed", "loose"):
            what = f"bale .bale/cache ({how})"
            if self.bale_import:
                measured[what] = self.bale_import
                continue
            repo = base / f"repo-{how}"
            try:
                self.repo(repo, None, [[ds.zip, f"--{how}", "--no-checkout"]])
                size(what, repo / ".bale" / "cache")
            except CommandFailed as e:
                measured[what] = f"failed: {e}"
            rm(repo)
        what = "disk-objectstore container"
        if self.dos:
            measured[what] = self.dos
        else:
            try:
                self.dos_container(base / "dos", ds.zip)
                size(what, base / "dos")
            except CommandFailed as e:
                measured[what] = f"failed: {e}"
            rm(base / "dos")
        size(f"{ds.zip.name} (the archive)", ds.zip)
        size("unzipped tree", ds.ensure_tree())

        packed, loose = measured.get("bale .bale/cache (packed)"), measured.get("bale .bale/cache (loose)")
        ratio = "-"
        if isinstance(packed, tuple) and isinstance(loose, tuple):
            ratio = f"packed/loose: bytes {packed[0] / loose[0]:.2f}, inodes {packed[1] / loose[1]:.4f}"
        for what, m in measured.items():
            note = ratio if what.endswith("(packed)") else ""
            if isinstance(m, tuple):
                self.sizes.append((what, f"{mib(m[0]):.1f}", str(m[1]), note))
            else:
                self.sizes.append((what, "-", "-", m))


def dos_note(python: str):
    if not os.access(python, os.X_OK):
        return f"disk-objectstore: no venv python at {python} (bench/run.sh makes it)"
    p = subprocess.run([python, "-c", "import disk_objectstore"], capture_output=True)
    return None if p.returncode == 0 else "disk-objectstore: not installed in the venv (bench/run.sh installs it)"


NUMERIC = {"time s", "min-max s", "RSS MiB", "disk MiB", "inodes"}


def markdown(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if h in NUMERIC else "---" for h in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------- peers
# Run by the venv's python (`import.py _peer NAME ARGS`), so that this
# file itself needs only the standard library.

class ZipEntryOpener:
    """Opens one zip entry when add_streamed_objects_to_pack enters it
    (open_streams=True), so that entries are read one at a time."""

    def __init__(self, zf: zipfile.ZipFile, info: zipfile.ZipInfo):
        self.zf, self.info, self.stream = zf, info, None

    def __enter__(self):
        self.stream = self.zf.open(self.info)
        return self.stream

    def __exit__(self, *exc):
        self.stream.close()


def store_names(container, names: dict):
    """The name -> hash map an application keeps beside the objects (what
    bale's manifest is), stored as one more packed object."""
    container.add_objects_to_pack([json.dumps(names, sort_keys=True).encode()])


def peer(argv):
    from disk_objectstore import Container

    what, args = argv[0], argv[1:]
    if what == "dos-init":  # FOLDER
        with Container(args[0]) as c:
            c.init_container(clear=True)
    elif what == "dos-zip":  # ARCHIVE FOLDER BATCH: lazily opened entries, BATCH per call (0: one call)
        with Container(args[1]) as c, zipfile.ZipFile(args[0]) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            step = int(args[2]) or len(infos) or 1
            names = {}
            for k in range(0, len(infos), step):
                part = infos[k:k + step]
                hashes = c.add_streamed_objects_to_pack([ZipEntryOpener(zf, i) for i in part], open_streams=True)
                names.update((i.filename, h) for i, h in zip(part, hashes))
            store_names(c, names)
    elif what == "dos-tar":  # ARCHIVE FOLDER BATCH: streamed, BATCH entries (or 64 MiB) read per call
        limit = int(args[2]) or float("inf")
        names = {}
        with Container(args[1]) as c, tarfile.open(args[0], "r|*") as tf:
            batch, batch_bytes = [], 0

            def flush():
                hashes = c.add_streamed_objects_to_pack([io.BytesIO(data) for _, data in batch])
                names.update((name, h) for (name, _), h in zip(batch, hashes))
                batch.clear()

            for member in tf:
                if not member.isfile():
                    continue
                data = tf.extractfile(member).read()
                batch.append((member.name, data))
                batch_bytes += len(data)
                if len(batch) >= limit or batch_bytes >= 64 << 20:
                    flush()
                    batch_bytes = 0
            if batch:
                flush()
            store_names(c, names)
    elif what == "dos-gc":  # FOLDER DEAD_JSON: delete, then rewrite the pack
        with Container(args[0]) as c:
            c.delete_objects(json.loads(Path(args[1]).read_text()))
            c.repack()
    else:
        sys.exit(f"unknown peer {what}")


# ------------------------------------------------------------------ main

ROWS = ["1", "2", "3", "4", "5", "6"]
HAVE_TIME = os.access(TIME, os.X_OK)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "_peer":
        return peer(sys.argv[2:])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3, help="runs per measurement, median reported (default 3)")
    p.add_argument("--big", action="store_true", help="also D2: 10^6 files of 0-2 KiB (long)")
    p.add_argument("--only-big", action="store_true", help="D2 only")
    p.add_argument("--dos-batch", type=int, default=10_000,
                   help="entries per add_streamed_objects_to_pack call (default 10000; 0: one call for all)")
    p.add_argument("--files", type=int, help="fewer files than the dataset has, for a quick check of the script")
    p.add_argument("--rows", default=",".join(ROWS), help="which rows, comma list of 1-6 (default all)")
    p.add_argument("--bale", default=str(HERE.parent / "target" / "release" / "bale"))
    p.add_argument("--python", default=str(HERE / ".venv" / "bin" / "python"),
                   help="python with disk-objectstore (default bench/.venv/bin/python)")
    p.add_argument("--work", type=Path, default=HERE / "work", help="datasets and ext4-side scratch")
    p.add_argument("--xfs", type=Path, default=os.environ.get("BALE_BENCH_XFS"),
                   help="a folder on an XFS mount with reflink (default $BALE_BENCH_XFS)")
    args = p.parse_args()
    rows = args.rows.split(",")
    if not HAVE_TIME:
        log(f"{TIME} missing (Debian package time): RSS from wait4 instead")

    names = ["D2"] if args.only_big else ["D1"] + (["D2"] if args.big else [])
    tables = []
    for name in names:
        ds = Dataset(args.work / "import", name, args.files)
        ds.ensure()
        bench = Bench(args, ds)
        for note in (bench.bale_import, bench.bale_pack, bench.dos):
            if note:
                log(note)
        scratch = args.work / "import-run"
        rm(scratch)  # what an interrupted run left
        scratch.mkdir(parents=True)
        if "1" in rows:
            bench.row1(scratch)
        if "2" in rows:
            bench.row2(scratch, "ext4", "hardlink")
            if args.xfs:
                xfs = Path(args.xfs) / "bale-import-bench"
                rm(xfs)
                xfs.mkdir(parents=True)
                bench.row2(xfs, "xfs", "reflink")
                rm(xfs)
            else:
                log("no --xfs folder (BALE_BENCH_XFS): XFS rows skipped")
        if "3" in rows:
            bench.row3(scratch)
        if "4" in rows:
            bench.row4(scratch)
        if "5" in rows:
            bench.row5(scratch)
        if "6" in rows:
            bench.row6(scratch)
        rm(scratch)
        n, lo, hi = ds.nfiles, ds.lo, ds.hi
        tables.append(f"### {ds.name}: {n} files of {lo}-{hi} bytes, folders of {FILES_PER_DIR}; "
                      f"median of {args.runs} run(s); bale at {bench.bale}; "
                      f"disk-objectstore fed {args.dos_batch or 'all'} entries per call\n")
        if bench.rows:
            tables.append(markdown(["#", "operation", "tool", "time s", "min-max s", "RSS MiB", "ratio / note"], bench.rows))
        if bench.sizes:
            tables.append("\n6. cache size on disk (du -s --block-size=1, find | wc -l)\n")
            tables.append(markdown(["what", "disk MiB", "inodes", "ratio / note"], bench.sizes))
        tables.append("")
        log("\n".join(tables))
    print("\n".join(tables))


if __name__ == "__main__":
    main()
