#!/usr/bin/env bash
# The whole loop on this machine (`make demo`): LocalStack up, the functions under
# cargo lambda watch with the event router (`modelobs dev`), days of drifting traffic
# (`modelobs simulate`), the oracle labeling what the sampler picked (`modelobs label
# --oracle`), the rollups; then acting on it: the labelled captures exported as training
# data, a candidate fine-tuned on their train split (`make train`), backtested against the
# serving model, run as shadow for some days, promoted if the backtest says better and
# served from the registry for more days; report.html shows both versions over time.
# Then it stops everything it started, unless KEEP=1 leaves the stack and the functions
# running (Ctrl-C or `localstack/down`).
#
# Traffic is drawn from the train split of the datasets only (`simulate --split train`),
# so the candidate never sees a test-split photo: those judge it afterwards
# (train/README.md).
#
# Env: DAYS (10), RATE (requests per simulated day, 48), DRIFT (clean:5,dark:3,blur+small:2),
#      SHADOW_DAYS (2) and SERVE_DAYS (2): days after the retrain, under DRIFT's last phase,
#      with the candidate as shadow, then serving; RETRAIN (1; 0 stops after the export),
#      PROMOTE (auto: only on a "better" verdict; always), TRAIN_ARGS (finetune.py options),
#      SAMPLE_RATE (share of captures labelled uniformly, 0.5), SEED (simulate's, 1), PORT (9000), OUT (report.html),
#      KEEP (0), MODELOBS (target/debug/modelobs: `make bins`, the build `modelobs dev` reuses).
set -euo pipefail
cd "$(dirname "$0")/.."

DAYS="${DAYS:-10}"
RATE="${RATE:-48}"
DRIFT="${DRIFT:-clean:5,dark:3,blur+small:2}"
SHADOW_DAYS="${SHADOW_DAYS:-2}"
SERVE_DAYS="${SERVE_DAYS:-2}"
RETRAIN="${RETRAIN:-1}"
PROMOTE="${PROMOTE:-auto}"
TRAIN_ARGS="${TRAIN_ARGS:-}"
SAMPLE_RATE="${SAMPLE_RATE:-0.5}"
SEED="${SEED:-1}"
PORT="${PORT:-9000}"
OUT="${OUT:-report.html}"
KEEP="${KEEP:-0}"
MODELOBS="${MODELOBS:-target/debug/modelobs}"
work=.cache/demo
mkdir -p "$work"
rm -f "$work/truth.jsonl"
[ "$RETRAIN" = 1 ] || { SHADOW_DAYS=0; SERVE_DAYS=0; }

say() { printf '\n== %s\n' "$*"; }
day_after() { date -u -d "$1 + $2 days" +%F; }
json_field() { python3 -c 'import json, sys; v = json.load(open(sys.argv[1])); [v := v[k] for k in sys.argv[2:]]; print(v)' "$@"; }

started_stack=
dev_pid=
stop_dev() {
  if [ -n "$dev_pid" ] && kill -0 "$dev_pid" 2>/dev/null; then
    kill -TERM "$dev_pid" 2>/dev/null || true
    wait "$dev_pid" 2>/dev/null || true
  fi
  dev_pid=
}
cleanup() {
  status=$?
  if [ "$KEEP" = 1 ] && [ "$status" = 0 ]; then
    say "left running (KEEP=1): modelobs dev (pid $dev_pid) and LocalStack; stop with: kill $dev_pid; localstack/down"
    return
  fi
  stop_dev
  [ -n "$started_stack" ] && localstack/down >/dev/null 2>&1 || true
}
trap cleanup EXIT

# start_dev LOG [VAR=value ...]: modelobs dev with these variables for the functions.
start_dev() {
  local log="$1"
  shift
  env "$@" "$MODELOBS" dev --port "$PORT" --rollup-every-s 10 >"$log" 2>&1 &
  dev_pid=$!
  for _ in $(seq 1200); do
    grep -q "modelobs dev: ready" "$log" 2>/dev/null && break
    kill -0 "$dev_pid" 2>/dev/null || { cat "$log"; echo "demo: modelobs dev stopped" >&2; exit 1; }
    sleep 1
  done
  grep -q "modelobs dev: ready" "$log" || { echo "demo: modelobs dev not ready after 20 min" >&2; exit 1; }
}

# days_of_traffic N START DRIFT: simulate, label what the sampler picked, roll up.
days_of_traffic() {
  "$MODELOBS" simulate --days "$1" --rate "$RATE" --drift "$3" --start "$2" --split train --seed "$SEED" \
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
}

say "LocalStack: the bucket and queues of template.yaml"
[ -n "$(source localstack/common.sh; ls_pid)" ] || started_stack=1
set -a
eval "$(localstack/up)"
set +a

say "cargo-lambda (pinned, PyPI) and the functions under cargo lambda watch, with the event router"
export CARGO_LAMBDA="$(bash scripts/cargo-lambda.sh)/cargo-lambda"
export SAMPLING_POLICY="{\"name\": \"demo\", \"uniform_rate\": $SAMPLE_RATE, \"empty_rate\": $SAMPLE_RATE, \"daily_budget\": 1000}"
start_dev "$work/dev.log"
grep -E "^  (predict|health|webhook)" "$work/dev.log"
echo "   (router and function logs: $work/dev*.log)"

say "drift reference: the serving model on the clean train split (what every window is tested against)"
"$MODELOBS" drift reference --dataset datasets/animals --dataset datasets/composites --split train \
  --model models/nanodet --out "$work/reference.json"

start="$(date -u -d "$((DAYS + SHADOW_DAYS + SERVE_DAYS)) days ago" +%F)"
end="$(date -u +%F)"
drift_last="$(day_after "$start" $((DAYS - 1)))"
base_version="$(json_field models/nanodet/model.json version)"
say "simulate: $DAYS days × $RATE requests from $start, drift $DRIFT"
days_of_traffic "$DAYS" "$start" "$DRIFT"
"$MODELOBS" metrics --from "$start" --to "$drift_last" --granularity day --model-version "$base_version"
"$MODELOBS" metrics --from "$start" --to "$drift_last" --granularity day --model-version "$base_version" \
  --json >"$work/windows-drift.json"
python3 scripts/check_drift.py "$work/windows-drift.json" --drift "$DRIFT"
"$MODELOBS" metrics --from "$start" --to "$drift_last" --granularity hour --model-version "$base_version" \
  --json >"$work/windows-drift-hour.json"
say "label-free: drift alerts and the estimated AP50 against the schedule"
python3 scripts/check_label_free.py "$work/windows-drift-hour.json" "$work/windows-drift.json" \
  --drift "$DRIFT" --start "$start" | tee "$work/label-free.txt"

say "dataset: the labelled captures as a training set (COCO, $work/export)"
retrain_started=$SECONDS
rm -rf "$work/export"
"$MODELOBS" dataset export --out "$work/export" --from "$start" --to "$drift_last" --split-by time
python3 - "$work/export" <<'PY'
import json, os, sys
d = sys.argv[1]
coco = json.load(open(os.path.join(d, "annotations.json")))
files = set(os.listdir(os.path.join(d, "images")))
missing = [i["file_name"] for i in coco["images"] if i["file_name"] not in files]
assert coco["images"] and not missing, f"export: {len(coco['images'])} images, missing {missing[:3]}"
print(f"export: {len(coco['images'])} labelled captures, {len(coco['annotations'])} boxes, every image present")
PY

if [ "$RETRAIN" = 1 ]; then
  say "retrain: fine-tune the serving model on the export's train split ($work/candidate)"
  rm -rf "$work/candidate"
  "$(bash train/venv.sh)" train/finetune.py --data "$work/export" --split train --out "$work/candidate" $TRAIN_ARGS
  # Its drift reference: what it trained on (`model push` stores it), so its windows are tested too.
  "$MODELOBS" drift reference --model "$work/candidate" --training-set \
    --out "$work/candidate/reference.json" --no-store

  say "backtest: the candidate against the serving model on the labelled captures it did not train on"
  "$MODELOBS" backtest --candidate "$work/candidate" --from "$start" --to "$drift_last" \
    --truth "$work/truth.jsonl" --out "$work/backtest"
  verdict="$(json_field "$work/backtest/report.json" comparison verdict)"
  echo "retrain step (export + fine-tune + backtest): $((SECONDS - retrain_started)) s"

  name="$(json_field "$work/candidate/model.json" name)"
  version="$(json_field "$work/candidate/model.json" version)"
  ref="$name/$version"
  say "shadow: $ref beside the serving model for $SHADOW_DAYS day(s)"
  "$MODELOBS" model push "$work/candidate"
  stop_dev
  start_dev "$work/dev-shadow.log" SHADOW_MODEL_REF="$ref"
  last="${DRIFT##*,}"
  last="${last%%:*}"
  days_of_traffic "$SHADOW_DAYS" "$(day_after "$start" "$DAYS")" "$last:$SHADOW_DAYS"

  if [ "$verdict" = better ] || [ "$PROMOTE" = always ]; then
    say "promote: $ref (backtest verdict: $verdict), served from the registry for $SERVE_DAYS day(s)"
    "$MODELOBS" model promote "$ref" --reason "backtest verdict: $verdict"
    stop_dev
    start_dev "$work/dev-serve.log" MODEL_REF="$ref"
    days_of_traffic "$SERVE_DAYS" "$(day_after "$start" $((DAYS + SHADOW_DAYS)))" "$last:$SERVE_DAYS"
  else
    say "not promoted: the backtest's verdict is $verdict (PROMOTE=always promotes anyway)"
  fi
  "$MODELOBS" model list
fi

say "report"
"$MODELOBS" metrics --from "$start" --to "$end" --granularity day
"$MODELOBS" metrics --from "$start" --to "$end" --granularity day --json >"$work/windows-day.json"
"$MODELOBS" metrics --from "$start" --to "$end" --granularity hour --json >"$work/windows-hour.json"
"$MODELOBS" report --windows "$work/windows-day.json" --out "$OUT"
[ "$RETRAIN" = 1 ] && echo "candidate: $work/candidate (modelobs predict --model $work/candidate <image>)"
echo "demo: open $OUT"
