#!/usr/bin/env bash
# The venv for the review page's browser test at <repo>/.cache/venv-browser,
# from requirements.txt; reused while requirements.txt and Python are the same.
# Prints the venv's python path.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
venv="${VENV:-$root/.cache/venv-browser}"
python="${PYTHON:-python3}"
req="$here/requirements.txt"
stamp="$venv/.requirements.sha256"

want="$( { cat "$req"; "$python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"

if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
   && "$venv/bin/python" -c 'import websockets.sync.client' 2>/dev/null; then
  echo "$venv/bin/python"
  exit 0
fi

echo "venv.sh: setting up $venv" >&2
if [ -e "$venv" ]; then
  [ -f "$venv/pyvenv.cfg" ] || { echo "venv.sh: $venv exists and is not a venv; not touching it" >&2; exit 1; }
  rm -rf "$venv"
fi
mkdir -p "$(dirname "$venv")"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$req" >&2
"$venv/bin/python" -c 'import websockets.sync.client'
echo "$want" > "$stamp"
echo "$venv/bin/python"
