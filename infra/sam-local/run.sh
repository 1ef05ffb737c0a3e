#!/usr/bin/env bash
# `make sam-local`: every function through the real Lambda runtime on this machine.
#
#   bash infra/sam-local/run.sh                       # the workspace's debug binaries (make test)
#   SAM_LOCAL_FROM=build bash infra/sam-local/run.sh  # make build-x86_64's release bootstraps
#
# 1. the container engine (engine.sh: podman's Docker API on a socket of our own);
# 2. the stand-in provided.al2023 image (base-image.sh; README.md says how it differs);
# 3. the layers of template.yaml for x86_64 (ONNX Runtime, the model);
# 4. the functions in sam build's layout, for x86_64 with AWS_ENDPOINT_URL declared
#    (local_template.py): the workspace's debug binaries, or (SAM_LOCAL_FROM=build) what
#    `sam build` built into .aws-sam/x86_64 (release, cargo-lambda's glibc 2.17 target);
# 5. test_sam_local.py inside a fresh LocalStack: `sam local invoke` of every function and
#    `sam local start-api`, each checked against the bucket.
# Everything it starts (engine, LocalStack, containers, the forwarder) stops on exit.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
here="$root/infra/sam-local"
cd "$root"

if [ "$(uname -m)" != x86_64 ]; then
  echo "sam-local: the stand-in image is x86_64 only (README.md); this machine is $(uname -m)" >&2
  exit 1
fi

env_line="$(bash "$here/engine.sh" start)"
trap 'bash "$here/engine.sh" stop' EXIT
eval "$env_line"
export DOCKER_HOST CONTAINERS_CONF
bash "$here/base-image.sh"

bash infra/layer/build.sh x86_64 >/dev/null
bash infra/layer/model.sh >/dev/null

# Either way the functions are staged in sam build's layout under .cache/sam-local/staged,
# in a template declaring AWS_ENDPOINT_URL (local_template.py says why).
case "${SAM_LOCAL_FROM:-debug}" in
debug) bins="$root/target/debug"; "${CARGO:-cargo}" build --workspace --bins ;;
build)
  bins="$root/.aws-sam/x86_64"
  [ -f "$bins/template.yaml" ] || { echo "sam-local: $bins is missing: make build-x86_64" >&2; exit 1; }
  ;;
*)
  echo "sam-local: SAM_LOCAL_FROM is debug or build, not ${SAM_LOCAL_FROM}" >&2
  exit 2
  ;;
esac
out="$root/.cache/sam-local/staged"
rm -rf "$out"
python3 "$here/local_template.py" --arch x86_64 --local --stage "$bins" "$out/template.yaml"

python="$(bash scripts/sam.sh --python)"
SAM_BUILT_TEMPLATE="$out/template.yaml" localstack/with-stack "$python" "$here/test_sam_local.py"
