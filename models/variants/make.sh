#!/usr/bin/env bash
# The faster variants of the serving NanoDet (models/variants/make.py make): OUT/optimized and
# OUT/int8 (default .cache/variants/models), each a model directory the detector loads as is.
# Idempotent: does nothing when OUT was made by this make.py from the same parent and
# calibration settings. Prints OUT. Env: CALIBRATION_IMAGES (default 128).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="${1:-$root/.cache/variants/models}"
n="${CALIBRATION_IMAGES:-128}"
script="$root/models/variants/make.py"
stamp="$out/.made-by"
want="$(cat "$script" "$root/models/variants/requirements.txt" "$root/models/nanodet/model.json" \
  "$root/bench/inference/reference.py" "$root/datasets/animals/annotations.json" \
  "$root/datasets/composites/annotations.json" | sha256sum | cut -d' ' -f1)-$n"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "$out"
  exit 0
fi
py="$(bash "$root/scripts/venv.sh" variants "$root/models/variants/requirements.txt" \
  'import onnx, onnxruntime.quantization, PIL, numpy, sympy')"
rm -rf "$out"
mkdir -p "$out"
# -W ignore: the quantiser warns about the -inf Pad constant it is told to leave alone.
"$py" -W ignore "$script" make "$root/models/nanodet" "$out" --calibration-images "$n" >&2
echo "$want" > "$stamp"
echo "$out"
