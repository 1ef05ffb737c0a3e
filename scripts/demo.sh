#!/usr/bin/env bash
# The whole loop on this machine (`make demo`): LocalStack up, the functions under
# cargo lambda watch with the event router (`modelobs dev`), days of drifting traffic
# (`modelobs simulate`), the oracle labeling what the sampler picked (`modelobs label
# --oracle`), the rollups, and report.html. Then it stops everything it started,
# unless KEEP=1 leaves the stack and the functions running (Ctrl-C or `localstack/down`).
#
# Env: DAYS (10), RATE (requests per simulated day, 48), DRIFT (clean:5,dark:3,blur+small:2),
#      SAMPLE_RATE (share of captures labelled uniformly, 0.5), PORT (9000), OUT (report.html),
#      KEEP (0), MODELOBS (target/debug/modelobs: `make bins`, the build `modelobs dev` reuses).
set -euo pipefail
cd "$(dirname "$0")/.."

DAYS="${DAYS:-10}"
RATE="${RATE:-48}"
DRIFT="${DRIFT:-clean:5,dark:3,blur+small:2}"
SAMPLE_RATE="${SAMPLE_RATE:-0.5}"
PORT="${PORT:-9000}"
OUT="${OUT:-report.html}"
KEEP="${KEEP:-0}"
MODELOBS="${MODELOBS:-target/debug/modelobs}"
work=.cache/demo
mkdir -p "$work"
rm -f "$work/truth.jsonl"

say() { printf '\n== %s\n' "$*"; }

started_stack=
dev_pid=
cleanup() {
  status=$?
  if [ "$KEEP" = 1 ] && [ "$status" = 0 ]; then
    say "left running (KEEP=1): modelobs dev (pid $dev_pid) and LocalStack; stop with: kill $dev_pid; localstack/down"
    return
  fi
  if [ -n "$dev_pid" ] && kill -0 "$dev_pid" 2>/dev/null; then
    kill -TERM "$dev_pid" 2>/dev/null || true
    wait "$dev_pid" 2>/dev/null || true
  fi
  [ -n "$started_stack" ] && localstack/down >/dev/null 2>&1 || true
}
trap cleanup EXIT

say "LocalStack: the bucket and queues of template.yaml"
[ -n "$(source localstack/common.sh; ls_pid)" ] || started_stack=1
set -a
eval "$(localstack/up)"
set +a

say "cargo-lambda (pinned, PyPI) and the functions under cargo lambda watch, with the event router"
export CARGO_LAMBDA="$(bash scripts/cargo-lambda.sh)/cargo-lambda"
export SAMPLING_POLICY="{\"name\": \"demo\", \"uniform_rate\": $SAMPLE_RATE, \"empty_rate\": $SAMPLE_RATE, \"daily_budget\": 1000}"
"$MODELOBS" dev --port "$PORT" --rollup-every-s 10 >"$work/dev.log" 2>&1 &
dev_pid=$!
for _ in $(seq 1200); do
  grep -q "modelobs dev: ready" "$work/dev.log" 2>/dev/null && break
  kill -0 "$dev_pid" 2>/dev/null || { cat "$work/dev.log"; echo "demo: modelobs dev stopped" >&2; exit 1; }
  sleep 1
done
grep -q "modelobs dev: ready" "$work/dev.log" || { echo "demo: modelobs dev not ready after 20 min" >&2; exit 1; }
grep -E "^  (predict|health|webhook)" "$work/dev.log"
echo "   (router and function logs: $work/dev.log)"

say "simulate: $DAYS days × $RATE requests, drift $DRIFT"
start="$(date -u -d "$DAYS days ago" +%F)"
end="$(date -u +%F)"
"$MODELOBS" simulate --days "$DAYS" --rate "$RATE" --drift "$DRIFT" --start "$start" \
  --target "http://127.0.0.1:$PORT/lambda-url/inference/predict" --truth-out "$work/truth.jsonl"

say "label: the oracle answers what the sampler queued, through the signed webhook"
"$MODELOBS" label --oracle --truth "$work/truth.jsonl" --idle-s 15 \
  --webhook "http://127.0.0.1:$PORT/lambda-url/webhook/"

say "rollup: windows from the stored evaluations"
# Let the metrics queue drain (the router delivers it), then one last rollup.
for _ in $(seq 60); do
  # Unsigned query API (LocalStack accepts it): visible + in-flight messages.
  n="$(curl -fsS "$METRICS_QUEUE_URL?Action=GetQueueAttributes&AttributeName.1=All" \
    | python3 -c 'import re, sys; x = sys.stdin.read(); print(sum(int(v) for v in re.findall(r"<Name>ApproximateNumberOfMessages(?:NotVisible)?</Name>\s*<Value>(\d+)</Value>", x)))')" || n=0
  [ "$n" = 0 ] && break
  sleep 1
done
"$MODELOBS" rollup
"$MODELOBS" metrics --from "$start" --to "$end" --granularity day
"$MODELOBS" metrics --from "$start" --to "$end" --granularity day --json >"$work/windows-day.json"
"$MODELOBS" metrics --from "$start" --to "$end" --granularity hour --json >"$work/windows-hour.json"

say "report"
"$MODELOBS" report --windows "$work/windows-day.json" --out "$OUT"
python3 scripts/check_drift.py "$work/windows-day.json" --drift "$DRIFT"

say "dataset: the labelled captures as a training set (COCO, $work/export)"
rm -rf "$work/export"
"$MODELOBS" dataset export --out "$work/export" --from "$start" --split-by time
python3 - "$work/export" <<'PY'
import json, os, sys
d = sys.argv[1]
coco = json.load(open(os.path.join(d, "annotations.json")))
files = set(os.listdir(os.path.join(d, "images")))
missing = [i["file_name"] for i in coco["images"] if i["file_name"] not in files]
assert coco["images"] and not missing, f"export: {len(coco['images'])} images, missing {missing[:3]}"
print(f"export: {len(coco['images'])} labelled captures, {len(coco['annotations'])} boxes, every image present")
PY
echo "demo: open $OUT"
