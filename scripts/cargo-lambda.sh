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
python="$(VENV="${CARGO_LAMBDA_VENV:-}" bash "$root/scripts/venv.sh" cargo-lambda \
  "cargo-lambda==$CARGO_LAMBDA_VERSION ziglang==$ZIGLANG_VERSION" 'import ziglang')"
venv="$(dirname "$(dirname "$python")")"
# The ziglang wheel ships zig as a Python module; cargo-lambda looks for `zig` on PATH
# (or runs `python -m ziglang`): a small shim makes both work.
if [ ! -x "$venv/bin/zig" ]; then
  printf '#!/bin/sh\nexec "%s" -m ziglang "$@"\n' "$python" >"$venv/bin/zig"
  chmod +x "$venv/bin/zig"
fi

if [ $# -eq 0 ]; then
  echo "$venv/bin"
  exit 0
fi
PATH="$venv/bin:$PATH" exec "$@"
