#!/usr/bin/env bash
# Run the AWS SAM CLI from a pinned venv (.cache/venv-sam), created on first use.
#
#   bash scripts/sam.sh validate --lint --template template.yaml
#   bash scripts/sam.sh --python      # only print the venv's python (has PyYAML, cfn-lint)
#
# Why a venv and a pin: `sam validate --lint` runs in `make test`, so the cfn-lint
# rules it applies must not change under us with a new release. 1.170.0 is the
# release checked here (installs from PyPI on Python 3.11, validates offline in ~5 s).
# SAM_CLI_TELEMETRY=0: no usage reports (and no network wait) from test runs.
set -euo pipefail

SAM_VERSION=1.170.0

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${SAM_VENV:-$root/.cache/venv-sam}"
python="${PYTHON:-python3}"
stamp="$venv/.requirements.sha256"

want="$( { echo "aws-sam-cli==$SAM_VERSION"; "$python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"

if ! { [ -x "$venv/bin/sam" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; }; then
  echo "sam.sh: setting up $venv with aws-sam-cli==$SAM_VERSION (first time: about a minute)" >&2
  if [ -e "$venv" ]; then
    [ -f "$venv/pyvenv.cfg" ] || { echo "sam.sh: $venv exists and is not a venv; not touching it" >&2; exit 1; }
    rm -rf "$venv"
  fi
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    "aws-sam-cli==$SAM_VERSION" >&2
  "$venv/bin/sam" --version >&2
  echo "$want" >"$stamp"
fi

if [ "${1:-}" = "--python" ]; then
  echo "$venv/bin/python"
  exit 0
fi

export SAM_CLI_TELEMETRY=0
# cfn-lint and sam read the region for region-specific checks; no credentials are needed.
export AWS_REGION="${AWS_REGION:-us-east-1}" AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-${AWS_REGION:-us-east-1}}"
exec "$venv/bin/sam" "$@"
