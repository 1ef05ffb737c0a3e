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
[ -f "${SAM_VENV:-$root/.cache/venv-sam}/pyvenv.cfg" ] || echo "sam.sh: first time: about a minute" >&2
python="$(VENV="${SAM_VENV:-}" bash "$root/scripts/venv.sh" sam "aws-sam-cli==$SAM_VERSION" 'import samcli')"
venv="$(dirname "$(dirname "$python")")"

if [ "${1:-}" = "--python" ]; then
  echo "$venv/bin/python"
  exit 0
fi

export SAM_CLI_TELEMETRY=0
# cfn-lint and sam read the region for region-specific checks; no credentials are needed.
export AWS_REGION="${AWS_REGION:-us-east-1}" AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-${AWS_REGION:-us-east-1}}"
exec "$venv/bin/sam" "$@"
