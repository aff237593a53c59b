#!/usr/bin/env bash
# One command for the whole benchmark: builds bale (release), installs the
# pinned DVC into bench/.venv, mounts an XFS loop file system for reflinks
# (when run as root), then runs bench.py. Arguments go to bench.py, e.g.
#   bench/run.sh --sizes S --runs 5
#   bench/run.sh --sizes XL --no-dvc
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
DVC_VERSION=3.67.1

cargo build --release --manifest-path "$here/../Cargo.toml" >&2

if [ ! -x "$here/.venv/bin/dvc" ]; then
  echo "installing dvc==$DVC_VERSION into bench/.venv" >&2
  if ! { python3 -m venv "$here/.venv" && "$here/.venv/bin/pip" install -q "dvc==$DVC_VERSION"; } >&2; then
    echo "could not install DVC: its columns will be empty" >&2
  fi
fi

for tool in xxhsum mkfs.xfs; do
  if ! command -v "$tool" >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get install -y -qq xxhash xfsprogs >&2 || true
  fi
done

if [ -z "${BALE_BENCH_XFS:-}" ] && [ "$(id -u)" = 0 ] && command -v mkfs.xfs >/dev/null; then
  mnt=/mnt/bale-bench-xfs
  if ! mountpoint -q "$mnt"; then
    mkdir -p "$here/work" "$mnt"
    img="$here/work/xfs.img"
    rm -f "$img"
    truncate -s 6G "$img"
    mkfs.xfs -q -f -m reflink=1 "$img"
    mount -o loop "$img" "$mnt" || { echo "could not mount XFS: reflink rows skipped" >&2; mnt=; }
  fi
  [ -n "$mnt" ] && export BALE_BENCH_XFS="$mnt"
fi

exec python3 "$here/bench.py" "$@"
