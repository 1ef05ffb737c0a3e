#!/usr/bin/env bash
# Create or reuse the Python venv for bench/inference (the reference pipeline and
# the benchmark) at <repo>/.cache/venv-bench and install requirements.txt into it.
# Idempotent: when the venv's stamp file already holds the hash of requirements.txt
# (+ the Python version) it only checks that the interpreter still runs, which
# takes well under a second.
#
#   bash bench/inference/venv.sh            # prints the venv's python path
#   PYTHON=python3.11 bash bench/inference/venv.sh
#   VENV=/some/where bash bench/inference/venv.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${VENV:-$root/.cache/venv-bench}"
python="${PYTHON:-python3}"
req="$here/requirements.txt"
stamp="$venv/.requirements.sha256"
check='import onnxruntime, PIL, numpy'

want="$( { cat "$req"; "$python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"

if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
   && "$venv/bin/python" -c "$check" 2>/dev/null; then
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
"$venv/bin/python" -c "$check"
echo "$want" > "$stamp"
echo "$venv/bin/python"
