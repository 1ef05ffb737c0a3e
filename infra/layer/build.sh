#!/usr/bin/env bash
# ONNX Runtime as a Lambda layer: the same pinned libonnxruntime.so the tests
# use (scripts/ort.sh), at lib/ in the zip, so Lambda mounts it at
# /opt/lib/libonnxruntime.so.<version> and the functions set
# ORT_DYLIB_PATH to that path (template.yaml).
#
#   bash infra/layer/build.sh x86_64|aarch64   -> infra/layer/build/onnxruntime-<arch>.zip
set -euo pipefail
arch="${1:?usage: build.sh x86_64|aarch64}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
lib="$(bash "$root/scripts/ort.sh" --arch "$arch")"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/lib" "$here/build"
cp "$lib" "$stage/lib/"
out="$here/build/onnxruntime-$arch.zip"
rm -f "$out"
python3 - "$stage" "$out" <<'PY'
import os, sys, zipfile
stage, out = sys.argv[1:]
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
    for dirpath, _, files in os.walk(stage):
        for f in sorted(files):
            path = os.path.join(dirpath, f)
            z.write(path, os.path.relpath(path, stage))
PY
echo "$out"
