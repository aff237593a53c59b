#!/usr/bin/env bash
# One command for the whole benchmark: builds bale (release), installs the
# pinned DVC into bench/.venv, mounts an XFS loop file system for reflinks
# (when run as root), then runs bench.py. Arguments go to bench.py, e.g.
#   bench/run.sh --sizes S --runs 5
#   bench/run.sh --sizes XL --no-dvc
# With `remote` first, runs the push/fetch benchmark (bench/remote.py)
# against DVC with dvc-s3 on a loopback moto S3 server, e.g.
#   bench/run.sh remote
# With `import` first, runs the archive-import benchmark instead, with the
# pinned disk-objectstore as its peer (no DVC needed), e.g.
#   bench/run.sh import --runs 3
#   bench/run.sh import --big --bale /path/to/bale   (--bale: no build)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
DVC_VERSION=3.67.1
DISK_OBJECTSTORE_VERSION=1.5.0

script=bench.py
if [ "${1:-}" = import ]; then
  script=import.py
  shift
elif [ "${1:-}" = remote ]; then
  script=remote.py
  shift
fi

case " $* " in
  *" --bale "* | *" --bale="*) ;;
  *) cargo build --release --manifest-path "$here/../Cargo.toml" >&2 ;;
esac

venv_install() { # PACKAGE==VERSION, then what to say when it fails
  echo "installing $1 into bench/.venv" >&2
  if ! { python3 -m venv "$here/.venv" && "$here/.venv/bin/pip" install -q "$1"; } >&2; then
    echo "could not install $1: $2" >&2
  fi
}
if [ "$script" = bench.py ] && [ ! -x "$here/.venv/bin/dvc" ]; then
  venv_install "dvc==$DVC_VERSION" "its columns will be empty"
fi
if [ "$script" = remote.py ] && ! "$here/.venv/bin/python" -c \
    "import importlib.metadata as m, sys; sys.exit(m.version('dvc') != '$DVC_VERSION' or not (m.version('dvc-s3') and m.version('boto3') and m.version('moto')))" 2>/dev/null; then
  # One resolve, so that boto3 gets the botocore that dvc-s3's aiobotocore pins.
  echo "installing dvc[s3]==$DVC_VERSION and boto3 into bench/.venv" >&2
  { python3 -m venv "$here/.venv" && "$here/.venv/bin/pip" install -q "dvc[s3]==$DVC_VERSION" boto3 "moto[server]"; } >&2 ||
    echo "could not install DVC with dvc-s3: its rows will fail" >&2
fi
if [ "$script" = import.py ] && ! "$here/.venv/bin/python" -c \
    "import importlib.metadata as m, sys; sys.exit(m.version('disk-objectstore') != '$DISK_OBJECTSTORE_VERSION')" 2>/dev/null; then
  venv_install "disk-objectstore==$DISK_OBJECTSTORE_VERSION" "its rows will say so"
fi

# command, then the Debian package that has it
for need in "xxhsum xxhash" "mkfs.xfs xfsprogs" "/usr/bin/time time" "unzip unzip"; do
  read -r tool package <<<"$need"
  if ! command -v "$tool" >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get install -y -qq "$package" >&2 || true
  fi
done

if [ -z "${BALE_BENCH_XFS:-}" ] && [ "$(id -u)" = 0 ] && command -v mkfs.xfs >/dev/null; then
  mnt=/mnt/bale-bench-xfs
  if ! mountpoint -q "$mnt"; then
    mkdir -p "$here/work" "$mnt"
    img="$here/work/xfs.img"
    rm -f "$img"
    truncate -s 16G "$img" # sparse; room for import.py --big
    mkfs.xfs -q -f -m reflink=1 "$img"
    mount -o loop "$img" "$mnt" || { echo "could not mount XFS: reflink rows skipped" >&2; mnt=; }
  fi
  [ -n "$mnt" ] && export BALE_BENCH_XFS="$mnt"
fi

exec python3 "$here/$script" "$@"
