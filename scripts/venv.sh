#!/usr/bin/env bash
# The one Python-venv bootstrap every tool uses: creates or reuses .cache/venv-NAME,
# installs REQUIREMENTS into it, and prints the venv's python.
#
#   scripts/venv.sh NAME REQUIREMENTS [CHECK]
#     REQUIREMENTS  a requirements file, or pins as one word list ("aws-sam-cli==1.170.0")
#     CHECK         Python code that must run in a good venv ("import pycocotools")
#   env: PYTHON (the interpreter to build from, default python3), VENV (another directory),
#        VENV_FLAGS (for `python -m venv`, e.g. --system-site-packages), PIP_FLAGS (e.g. --no-deps)
#
#   bash scripts/venv.sh coco bench/coco/requirements.txt 'import pycocotools, hotcoco, numpy'
#
# Reuse is decided by a stamp: the hash of the requirements and the Python version. A
# venv whose stamp matches and whose CHECK runs is reused in well under a second;
# anything else is rebuilt from scratch (never a directory that is not a venv).
set -euo pipefail

[ $# -ge 2 ] || { echo "usage: scripts/venv.sh NAME REQUIREMENTS [CHECK]" >&2; exit 2; }
name="$1" requirements="$2" check="${3:-}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${VENV:-$root/.cache/venv-$name}"
python="${PYTHON:-python3}"
venv_flags="${VENV_FLAGS:-}" pip_flags="${PIP_FLAGS:-}"
stamp="$venv/.requirements.sha256"

if [ -f "$requirements" ]; then
  spec="$(cat "$requirements")"
  install=(-r "$requirements")
else
  spec="$requirements"
  # shellcheck disable=SC2206 # pins are one word list on purpose
  install=($requirements)
fi
want="$( { echo "$spec"; echo "$venv_flags $pip_flags"; "$python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"

good() {
  [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
    && { [ -z "$check" ] || "$venv/bin/python" -c "$check" 2>/dev/null; }
}

if ! good; then
  echo "venv.sh: setting up $venv (${install[*]})" >&2
  if [ -e "$venv" ]; then
    [ -f "$venv/pyvenv.cfg" ] || { echo "venv.sh: $venv exists and is not a venv; not touching it" >&2; exit 1; }
    rm -rf "$venv"
  fi
  mkdir -p "$(dirname "$venv")"
  # shellcheck disable=SC2086 # flags are word lists on purpose
  "$python" -m venv $venv_flags "$venv"
  # shellcheck disable=SC2086
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input $pip_flags "${install[@]}" >&2
  [ -z "$check" ] || "$venv/bin/python" -c "$check"
  echo "$want" >"$stamp"
fi
echo "$venv/bin/python"
