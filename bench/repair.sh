#!/usr/bin/env bash
# Repair against no-op, for bale builds side by side: one repository per
# build over the same dataset (bench.py's generator, 0-2 KiB files in
# folders of 100, hardlink), then rounds in which every build in turn runs a
# no-op checkout and a repair of 1 deleted + 1 edited file. Alternating the
# builds within each round keeps a machine that speeds up or slows down
# from favouring one of them.
#
#   bench/repair.sh DIR N ROUNDS BALE [BALE...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=$1; n=$2; rounds=$3; shift 3
[ $# -ge 1 ] || { echo "usage: bench/repair.sh DIR N ROUNDS BALE [BALE...]" >&2; exit 2; }
mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
src=$dir/src-$n
python3 -c "
import sys; sys.path.insert(0, '$here'); from bench import generate; from pathlib import Path
generate(Path('$src'), $n, True)" >&2

timed() { # cmd...: prints seconds and peak RSS in B/file
  /usr/bin/time -f "%e %M" -o "$dir/time.out" "$@" >/dev/null 2>"$dir/err.out" || {
    cat "$dir/err.out" >&2; exit 1; }
  read -r s kb < "$dir/time.out"
  awk -v s="$s" -v kb="$kb" -v n="$n" 'BEGIN { printf "%.2f s %.0f B/file", s, kb * 1024 / n }'
}

i=0
for bale in "$@"; do
  i=$((i + 1)); repo=$dir/repair-$i
  if [ ! -f "$repo/data.bale" ]; then
    rm -rf "$repo"; mkdir -p "$repo"; cd "$repo"
    "$bale" init -q; "$bale" config cache.type hardlink >/dev/null 2>&1
    cp -r --reflink=never "$src/data" data
    "$bale" add data -q
  fi
done
echo "| round | build | no-op checkout | repair 1 deleted + 1 edited | ratio |"
echo "|---|---|---:|---:|---:|"
for r in $(seq "$rounds"); do
  i=0
  for bale in "$@"; do
    i=$((i + 1)); cd "$dir/repair-$i"
    "$bale" checkout -q >/dev/null 2>&1
    noop=$(timed "$bale" checkout -q)
    a=$(find data/d00001 -type f | sort | sed -n 1p); b=$(find data/d00001 -type f | sort | sed -n 2p)
    rm "$a" "$b"; echo "edited $r" > "$b"; sync
    repair=$(timed "$bale" checkout --force -q)
    awk -v r="$r" -v b="$bale" -v x="$noop" -v y="$repair" \
      'BEGIN { split(x, p, " "); split(y, q, " "); printf "| %s | %s | %s | %s | %.2f |\n", r, b, x, y, q[1] / p[1] }'
  done
done
