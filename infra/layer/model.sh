#!/usr/bin/env bash
# The detector's model as a Lambda layer: models/nanodet/ at models/nanodet/ in the zip,
# so Lambda mounts it at /opt/models/nanodet, the MODEL_DIR of the inference functions
# (template.yaml, ModelLayer). The checksum is verified first: a truncated or
# LFS-pointer model never gets deployed.
#
#   bash infra/layer/model.sh   -> infra/layer/build/model-nanodet.zip
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
model="$root/models/nanodet"
(cd "$model" && sha256sum --quiet -c SHA256SUMS) || {
  echo "model.sh: $model does not match its SHA256SUMS" >&2
  exit 1
}
mkdir -p "$here/build"
out="$here/build/model-nanodet.zip"
tmp="$out.tmp"
rm -f "$tmp"
python3 - "$root" "$tmp" <<'PY'
import os, sys, zipfile
root, out = sys.argv[1:]
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
    for name in sorted(os.listdir(os.path.join(root, "models", "nanodet"))):
        rel = os.path.join("models", "nanodet", name)
        z.write(os.path.join(root, rel), rel)
PY
mv "$tmp" "$out"
echo "$out"
