#!/usr/bin/env bash
# The quick start: builds bale, generates a small sample dataset in a
# temporary folder, and shows bale's main job on it step by step.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
echo "building bale in release mode (cargo build --release; the first build takes a minute or two)..."
cargo build --release --manifest-path "$here/../Cargo.toml"
export PATH="$here/../target/release:$PATH"
demo=$(mktemp -d /tmp/bale-demo.XXXXXX)
cd "$demo"

step() { printf '\n$ %s\n' "$*"; "$@"; }

echo "generating a sample dataset of 2,000 files (1-8 KiB, 20 folders) in $demo/data..."
python3 - <<'PY'
import os, random
for i in range(2000):
    d = f"data/part{i // 100:02d}"
    os.makedirs(d, exist_ok=True)
    rng = random.Random(i)
    with open(f"{d}/sample{i:04d}.bin", "wb") as f:
        f.write(rng.randbytes(rng.randint(1024, 8192)))
PY
echo "sample dataset: 2000 files in $demo/data"
echo "and the same files as a zip archive, shards.zip, to import without unpacking..."
python3 - <<'PY'
import os, zipfile
with zipfile.ZipFile("shards.zip", "w", zipfile.ZIP_DEFLATED) as z:
    for root, _, files in sorted(os.walk("data")):
        for name in sorted(files):
            path = os.path.join(root, name)
            z.write(path, os.path.relpath(path, "data"))
PY

step bale init
step bale config cache.type hardlink
step bale add data
step cat data.bale
step bale status
step rm -rf data/part03 data/part07
step sh -c 'echo "not in the cache" > data/part00/new-file.txt'
step bale status
step bale checkout || true
step rm data/part00/new-file.txt
step bale checkout
step bale status
step bale checkout
step bale config cache.type copy
step bale import shards.zip
step bale status shards
step bale fsck
echo
echo "the demo repository stays in $demo"
