# Shared by localstack/{up,down,with-stack}: where things live, and "is ours running?".
# Sourced, not run.

ls_here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ls_root="$(cd "$ls_here/.." && pwd)"
ls_venv="${LOCALSTACK_VENV:-$ls_root/.cache/venv-localstack}"
# LOCALSTACK_STATE: a second stack beside the usual one (with LOCALSTACK_PORT), e.g. for tests.
ls_state="${LOCALSTACK_STATE:-$ls_root/.cache/localstack}"
ls_pidfile="$ls_state/localstack.pid"
ls_log="$ls_state/localstack.log"
ls_port="${LOCALSTACK_PORT:-4566}"
ls_url="http://127.0.0.1:$ls_port"
# secretsmanager: modelobs_adapters::secrets reads *_SECRET_ARN from it (tests of that adapter).
ls_services="${LOCALSTACK_SERVICES:-s3,sqs,secretsmanager}"

# The PID from the pid file if that process is alive and is a LocalStack runtime
# (a recycled PID must not be mistaken for ours); empty otherwise.
ls_pid() {
  local pid
  [ -f "$ls_pidfile" ] || return 0
  pid="$(cat "$ls_pidfile" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  if tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q 'localstack\.runtime\.main'; then
    echo "$pid"
  fi
}

# True when the gateway answers /_localstack/health with every requested service usable.
ls_healthy() {
  local py=python3
  [ -x "$ls_venv/bin/python" ] && py="$ls_venv/bin/python"
  curl -fsS --max-time 2 "$ls_url/_localstack/health" 2>/dev/null | "$py" -c '
import json, sys
want = [s for s in sys.argv[1].split(",") if s]
services = json.load(sys.stdin).get("services", {})
sys.exit(0 if all(services.get(s) in ("available", "running") for s in want) else 1)
' "$ls_services" 2>/dev/null
}

# What a client needs, one KEY=VALUE a line: `env $(localstack/up) cmd` or `set -a; eval ...`.
# `up` adds the queue URLs init.py wrote (ls_resources_env).
ls_client_env() {
  cat <<ENV
AWS_ENDPOINT_URL=$ls_url
AWS_ACCESS_KEY_ID=test
AWS_SECRET_ACCESS_KEY=test
AWS_REGION=us-east-1
DATA_BUCKET=${DATA_BUCKET:-modelobs-data}
ENV
}

# The queue URLs and the routes file init.py wrote for this stack (KEY=VALUE lines).
ls_resources_env() {
  cat "$ls_state/resources.env"
}
