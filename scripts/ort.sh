#!/usr/bin/env bash
# Fetch the ONNX Runtime shared library the detector loads at run time
# (`ORT_DYLIB_PATH`), from the onnxruntime wheel on PyPI, into .cache/ort/.
#
#   bash scripts/ort.sh                  # host arch; prints the absolute path of the .so
#   bash scripts/ort.sh --arch aarch64   # another arch (e.g. for the arm64 Lambda layer)
#   PYTHON=python3.12 bash scripts/ort.sh
#
# Idempotent: when the library is already there it only prints its path.
#
# Why a wheel: the `ort` crate's default download comes from a CDN that is not reachable
# from build machines, and Debian has no ONNX Runtime package; the PyPI wheel carries a
# complete libonnxruntime.so. Why exactly 1.32.0: `ort` 2.0.0-rc.15 with feature `api-31`
# refuses libraries older than 1.31, and we pin the exact library the tests (and the
# Python reference, bench/inference/requirements.txt) run against. The wheels are
# manylinux_2_28: they need glibc >= 2.28 (Lambda runtime `provided.al2023`).
set -euo pipefail

ORT_VERSION=1.32.0

arch="$(uname -m)"
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch="${2:?--arch needs aarch64 or x86_64}"; shift 2 ;;
    --arch=*) arch="${1#--arch=}"; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "ort.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$arch" in
  x86_64|amd64) arch=x86_64 ;;
  aarch64|arm64) arch=aarch64 ;;
  *) echo "ort.sh: unsupported arch $arch (aarch64 or x86_64)" >&2; exit 2 ;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/.cache/ort/$ORT_VERSION-$arch"
lib="$dest/libonnxruntime.so.$ORT_VERSION"

if [ -s "$lib" ]; then
  echo "$lib"
  exit 0
fi

python="${PYTHON:-python3}"
mkdir -p "$root/.cache/ort"
work="$(mktemp -d "$root/.cache/ort/download.XXXXXX")"
trap 'rm -rf "$work"' EXIT

echo "ort.sh: downloading onnxruntime==$ORT_VERSION ($arch) from PyPI" >&2
# Explicit platform/python tags make the same command work for either arch from any host
# python; the wheel's library does not depend on the Python version.
"$python" -m pip download --quiet --disable-pip-version-check --no-input --no-deps \
  --only-binary=:all: --platform "manylinux_2_28_$arch" --python-version 3.12 \
  --dest "$work" "onnxruntime==$ORT_VERSION" >&2

wheel="$(ls "$work"/onnxruntime-"$ORT_VERSION"-*.whl)"
"$python" - "$wheel" "$work" "$ORT_VERSION" <<'PY'
import sys, zipfile
wheel, out, version = sys.argv[1:]
member = f"onnxruntime/capi/libonnxruntime.so.{version}"
with zipfile.ZipFile(wheel) as z:
    with z.open(member) as src, open(f"{out}/libonnxruntime.so.{version}", "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
PY

mkdir -p "$dest"
# Rename into place last so an interrupted run never leaves a half-written library.
mv "$work/libonnxruntime.so.$ORT_VERSION" "$lib"
echo "$lib"
