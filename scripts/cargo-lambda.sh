#!/usr/bin/env bash
# cargo-lambda and zig from pinned PyPI wheels in a venv (.cache/venv-cargo-lambda),
# created on first use, then CMD run with that venv's bin/ first on PATH.
#
#   scripts/cargo-lambda.sh cargo lambda watch -A 127.0.0.1 -P 9000
#   scripts/cargo-lambda.sh cargo lambda build --release --arm64 --bin sampler
#   scripts/cargo-lambda.sh bash scripts/sam.sh build     # sam's rust-cargolambda builder needs both
#   scripts/cargo-lambda.sh                               # only print the bin/ directory
#
# Why wheels: `cargo install cargo-lambda` compiles for ~23 min; the wheels install in
# seconds. zig is the cross linker cargo-lambda uses (cargo-zigbuild) for the glibc of
# the Lambda runtime and for arm64. The pins are the releases checked here
# (`cargo lambda build --release --arm64` of a workspace binary).
set -euo pipefail

CARGO_LAMBDA_VERSION=1.9.2
ZIGLANG_VERSION=0.15.2

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${CARGO_LAMBDA_VENV:-$root/.cache/venv-cargo-lambda}"
python="${PYTHON:-python3}"
stamp="$venv/.requirements.sha256"
pins="cargo-lambda==$CARGO_LAMBDA_VERSION ziglang==$ZIGLANG_VERSION"

want="$( { echo "$pins"; "$python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"

if ! { [ -x "$venv/bin/cargo-lambda" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; }; then
  echo "cargo-lambda.sh: setting up $venv ($pins)" >&2
  if [ -e "$venv" ]; then
    [ -f "$venv/pyvenv.cfg" ] || { echo "cargo-lambda.sh: $venv exists and is not a venv; not touching it" >&2; exit 1; }
    rm -rf "$venv"
  fi
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv"
  # shellcheck disable=SC2086
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input $pins >&2
  # The ziglang wheel ships zig as a Python module; cargo-lambda looks for `zig` on PATH
  # (or runs `python -m ziglang`): a small shim makes both work.
  if [ ! -x "$venv/bin/zig" ]; then
    printf '#!/bin/sh\nexec "%s" -m ziglang "$@"\n' "$venv/bin/python" >"$venv/bin/zig"
    chmod +x "$venv/bin/zig"
  fi
  "$venv/bin/cargo-lambda" lambda --version >&2
  "$venv/bin/zig" version >&2
  echo "$want" >"$stamp"
fi

if [ $# -eq 0 ]; then
  echo "$venv/bin"
  exit 0
fi
PATH="$venv/bin:$PATH" exec "$@"
