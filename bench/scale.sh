#!/usr/bin/env bash
# The scale check: peak RSS per file and time of bale's commands on one
# large out (default 10^6 files of 0-2 KiB in folders of 100, hardlink), for
# one or more bale binaries side by side, beside the coreutils limits (a
# `find` stat walk; xxhsum + `cp -al`). Much shorter than
# `bench.py --sizes XL`, which runs every link type and needs ~4x the disk.
#
#   bench/scale.sh DIR [N] BALE [BALE...]
#
# DIR: a folder on the file system to measure (XFS in docs/benchmarks.md);
# the dataset is generated there once (bench.py's XL generator) and reused.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=$1; n=$2; shift 2
[ $# -ge 1 ] || { echo "usage: bench/scale.sh DIR N BALE [BALE...]" >&2; exit 2; }
mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
src=$dir/src-$n
python3 -c "
import sys; sys.path.insert(0, '$here'); from bench import generate; from pathlib import Path
generate(Path('$src'), $n, True)" >&2

row() { # name seconds kb
  awk -v name="$1" -v s="$2" -v kb="$3" -v n="$n" \
    'BEGIN { printf "| %s | %.2f | %.1f | %.0f |\n", name, s, kb / 1024, kb * 1024 / n }'
}
timed() { # name cmd...: one run under /usr/bin/time
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$dir/time.out" "$@" >/dev/null 2>"$dir/err.out" || {
    cat "$dir/err.out" >&2; exit 1; }
  read -r s kb < "$dir/time.out"
  row "$name" "$s" "$kb"
}

echo "| step | s | peak RSS MB | B/file |"
echo "|---|---:|---:|---:|"
echo "| **limits** | | | |"
# Warm, as bale's own runs are: the first walk reads the inodes in.
find "$src/data" -printf '%T@ %s %m\n' >/dev/null
timed "find stat walk" sh -c "find '$src/data' -printf '%T@ %s %m\n'"
rm -rf "$dir/limit-dst"; sync
timed "xxhsum + cp -al" sh -c "find '$src/data' -type f -print0 | xargs -0 -P2 -n500 xxhsum -H2 >/dev/null && cp -al '$src/data' '$dir/limit-dst'"
rm -rf "$dir/limit-dst"

for bale in "$@"; do
  repo=$dir/repo
  rm -rf "$repo"; mkdir -p "$repo"; cd "$repo"
  "$bale" init -q; "$bale" config cache.type hardlink >/dev/null 2>&1
  cp -r --reflink=never "$src/data" data; sync
  echo "| **$bale** | | | |"
  timed "add (hardlink)" "$bale" add data -q
  timed "status, unchanged" "$bale" status
  timed "checkout, no-op" "$bale" checkout -q
  a=$(find data/d00001 -type f | sort | sed -n 1p); b=$(find data/d00001 -type f | sort | sed -n 2p)
  rm "$a" "$b"; echo edited > "$b"; sync
  timed "repair 1 deleted + 1 edited" "$bale" checkout --force -q
  g=$(find data/d00002 -type f | sort | sed -n 1p); rm "$g"; echo new > "$g"
  timed "commit 1 edited" "$bale" commit -q
  "$bale" config cache.type copy >/dev/null 2>&1; sync
  timed "relink hardlink -> copy" "$bale" checkout --relink -q
  "$bale" config cache.type hardlink >/dev/null 2>&1
  rm -rf data; sync
  timed "checkout after rm -rf (hardlink)" "$bale" checkout -q
  cd "$dir"; rm -rf "$repo"
done
