# model-observability: every build, test and benchmark step, from a bare machine.
#
#   make demo    the main job (grows into the whole local loop, see README)
#   make test    everything CI checks
#
# Python tools live in venvs under .cache/ (git-ignored), created on first use.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo
MODELOBS := target/release/modelobs
COCO_PY = $$(bash bench/coco/venv.sh)

.PHONY: all build release test fmt-check clippy unit crosscheck bench-eval demo clean

all: build

build:
	$(CARGO) build --workspace

release:
	$(CARGO) build --release -p modelobs-cli

## test: formatting, lints, unit + integration tests, COCO cross-check against pycocotools.
test: fmt-check clippy unit crosscheck

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit:
	$(CARGO) test --workspace

## crosscheck: `modelobs eval` vs pycocotools on generated sets (edge cases and pycocotools quirks), to 1e-9.
crosscheck: release
	"$(COCO_PY)" bench/coco/crosscheck.py --modelobs $(MODELOBS) --quirks --tol 1e-9

## bench-eval: a COCO-val-sized set, `modelobs eval` vs pycocotools vs hotcoco in one run.
bench-eval: release
	"$(COCO_PY)" bench/coco/bench_eval.py --modelobs $(MODELOBS) --images 5000

## demo: for now, evaluates a generated detection set (the local loop lands with the stack issue).
demo: release
	@mkdir -p .cache/demo
	"$(COCO_PY)" bench/coco/gen_sets.py .cache/demo --only large >/dev/null
	$(MODELOBS) eval --gt .cache/demo/large.gt.json --dt .cache/demo/large.dt.json

clean:
	$(CARGO) clean
	rm -rf .cache
