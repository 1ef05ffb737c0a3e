#!/usr/bin/env bash
# Generate the detector-family test models (models/families/make.py) into
# .cache/families/models (or $1): an ONNX file, model.json, a test image and
# the Python reference's detections per family. Idempotent: does nothing when
# the output was made by this make.py already. Prints the output directory.
#
# Needs Debian's python3-torch and python3-torchvision (system-wide, CPU) for the
# export, and creates .cache/families/venv (onnx, onnxruntime from PyPI) for the
# reference: torch 1.13 wants NumPy 1, those wheels NumPy 2, so they cannot share
# one interpreter (make.py says more).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="${1:-$root/.cache/families/models}"
venv="$root/.cache/families/venv"
script="$root/models/families/make.py"
stamp="$out/.made-by"
want="$(sha256sum "$script" "$root/models/families/requirements.txt" | sha256sum | cut -d' ' -f1)"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "$out"
  exit 0
fi

system_python=/usr/bin/python3
if ! "$system_python" -c 'import torch' 2>/dev/null; then
  # A bare machine: train/venv.sh installs Debian's python3-torch (and makes the
  # fine-tuning venv `make test-train` uses anyway).
  bash "$root/train/venv.sh" >/dev/null
fi
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import onnx, onnxruntime' 2>/dev/null; then
  echo "make.sh: creating $venv (onnx, onnxruntime)" >&2
  rm -rf "$venv"
  "$system_python" -m venv "$venv"
  "$venv/bin/pip" install -q -r "$root/models/families/requirements.txt" >&2
fi

rm -rf "$out"
mkdir -p "$out"
"$system_python" -W ignore "$script" export "$out" >&2
"$venv/bin/python" "$script" reference "$out" >&2
echo "$want" > "$stamp"
echo "$out"
