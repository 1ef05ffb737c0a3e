#!/usr/bin/env bash
# `make fuzz`: builds the libFuzzer targets once (coverage-guided, AddressSanitizer,
# debug assertions) on the stable toolchain, then runs each target for
# FUZZ_SECONDS (default 600), one after the other at nice 19, and prints each
# target's executions and any crash. New inputs go to fuzz/corpus-run/<target>/
# (git-ignored; the committed seeds in fuzz/corpus/<target>/ are only read);
# crashes to fuzz/artifacts/<target>/. Not in CI: CI replays the corpus (`make fuzz-replay`).
#
# Stable Rust refuses the nightly-only flags cargo fuzz passes (-Zsanitizer,
# sancov); RUSTC_BOOTSTRAP=1 lets stable rustc accept them. cargo-fuzz itself is
# installed, pinned, under .cache/cargo-fuzz on first use.
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd .. && pwd)

CARGO_FUZZ_VERSION=0.13.2
FUZZ_SECONDS=${FUZZ_SECONDS:-600}
FUZZ_TARGETS=${FUZZ_TARGETS:-images request_body webhook events records}
# libFuzzer options every run gets; FUZZ_ARGS adds more (e.g. -jobs, -dict).
FUZZ_ARGS=${FUZZ_ARGS:-}

bin="$root/.cache/cargo-fuzz/bin/cargo-fuzz"
if ! [ -x "$bin" ] || ! "$bin" --version | grep -q " $CARGO_FUZZ_VERSION"; then
  echo "installing cargo-fuzz $CARGO_FUZZ_VERSION into .cache/cargo-fuzz (a few minutes, once)"
  nice -n 19 cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --root "$root/.cache/cargo-fuzz"
fi

export RUSTC_BOOTSTRAP=1
# Its own target dir whatever the caller's CARGO_TARGET_DIR: never the workspace's target/.
export CARGO_TARGET_DIR="$PWD/target"
# The subcommand, then the feature that links libFuzzer, then the rest (after `--`: libFuzzer's).
fuzz() { nice -n 19 "$bin" "$1" --features libfuzzer "${@:2}"; }

# cargo fuzz build: --release with debug assertions, -Cpasses=sancov-module
# (inline 8-bit counters, PC table, trace-compares), -Zsanitizer=address.
echo "== building the fuzz targets (stable $(rustc --version | cut -d' ' -f2) with RUSTC_BOOTSTRAP=1)"
fuzz build

status=0
summary=()
for t in $FUZZ_TARGETS; do
  mkdir -p "corpus-run/$t" "artifacts/$t"
  log="artifacts/$t/last-run.log"
  echo "== $t: ${FUZZ_SECONDS}s"
  start=$(date +%s)
  crashes_before=$(find "artifacts/$t" -name 'crash-*' | wc -l)
  # -timeout: an input taking over 10 s is a finding too (a parser that hangs);
  # -rss_limit_mb: far above what any target needs, so a blow-up is one.
  # With FUZZ_ARGS="-fork=1 -ignore_crashes=1" a run goes on past a crash it has already saved.
  # shellcheck disable=SC2086 # FUZZ_ARGS is a list of options
  if fuzz run "$t" "corpus-run/$t" "corpus/$t" -- \
      -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -print_final_stats=1 $FUZZ_ARGS >"$log" 2>&1; then
    new=$(( $(find "artifacts/$t" -name 'crash-*' | wc -l) - crashes_before ))
    if [ "$new" -gt 0 ]; then
      result="$new CRASHES (inputs in fuzz/artifacts/$t/)"
      status=1
    else
      result=ok
    fi
  elif grep -q 'Fuzz target exited\|SUMMARY: \|panicked at' "$log"; then
    result="CRASH (see fuzz/$log, input in fuzz/artifacts/$t/)"
    status=1
  else
    result="FAILED to run (see fuzz/$log)"
    status=1
  fi
  secs=$(( $(date +%s) - start ))
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
  # fork mode prints no final stats; its progress lines start with the total: "#<n>: cov: ..."
  [ -n "$execs" ] || execs=$(grep -o '^#[0-9]*: ' "$log" | tr -dc '0-9\n' | tail -1 || true)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
  line="$t: ${execs:-?} executions in ${secs}s, ${cov:-cov: ?}, corpus-run $(find "corpus-run/$t" -type f | wc -l) inputs: $result"
  echo "$line"
  grep -E 'panicked at|ERROR: (libFuzzer|AddressSanitizer)|SUMMARY' "$log" | head -5 || true
  summary+=("$line")
done

echo "== summary"
printf '%s\n' "${summary[@]}"
exit $status
