#!/usr/bin/env bash
# Re-creates the photos, cut-outs and backgrounds under datasets/ from the Debian packages they
# come from (bookworm), and checks them against the sha256 lists in the READMEs.
#
#   bash datasets/sources/fetch.sh            # download, extract, prepare, check
#
# Needs apt-get (no root: `apt-get download` only fetches the .deb files) and dpkg-deb. The
# packages are ~300 MB; they are kept in .cache/debian/ so a second run downloads nothing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cache="$root/.cache/debian"
packages=(gcompris-qt-data tuxpaint-data tuxpaint-stamps-default qabcs-data darknet)
mkdir -p "$cache/debs" "$cache/root"
cd "$cache/debs"
for p in "${packages[@]}"; do
  ls "${p}"_*.deb >/dev/null 2>&1 || apt-get download "$p"
done
for deb in *.deb; do dpkg-deb -x "$deb" "$cache/root"; done
python="$(bash "$root/scripts/venv.sh" pillow "$root/datasets/sources/requirements.txt" 'import PIL' | tail -n1)"
"$python" "$root/datasets/sources/prepare.py" --debian "$cache/root" --out "$root/datasets"
cd "$root/datasets"
for dir in animals cutouts backgrounds; do
  sed -n '/^```sha256$/,/^```$/p' "$dir/README.md" | grep -E '^[0-9a-f]{64}  ' | (cd "$dir" && sha256sum -c --quiet)
done
echo "datasets/: every file matches its README's sha256"
