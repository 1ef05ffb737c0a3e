# model-observability: every build, test and benchmark step, from a bare machine.
#
#   make demo    the main job (grows into the whole local loop, see README)
#   make test    everything CI checks
#
# Python tools live in venvs under .cache/ (git-ignored), created on first use.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo
# One build for everything local: `make test`, `make demo` and `make dev` all use the
# dev profile (dependencies at opt-level 2, Cargo.toml), so each dependency compiles
# once; `cargo test`, `make bins`, `modelobs dev` and cargo lambda watch share it.
# Benchmarks alone build --release (MODELOBS_RELEASE).
MODELOBS := target/debug/modelobs
MODELOBS_RELEASE := target/release/modelobs
COCO_PY = $$(bash bench/coco/venv.sh)

# ONNX Runtime comes from the pinned PyPI wheel (scripts/ort.sh says why);
# every test, tool and benchmark finds it through ORT_DYLIB_PATH.
ORT_VERSION := 1.32.0
ORT_LIB := $(CURDIR)/.cache/ort/$(ORT_VERSION)-$(shell uname -m)/libonnxruntime.so.$(ORT_VERSION)
export ORT_DYLIB_PATH ?= $(ORT_LIB)
# Test photos with animals: Debian's darknet package.
export MODELOBS_TEST_PHOTOS ?= /usr/share/darknet/data
# Small ONNX detectors of every family model.json describes (`make families`).
export MODELOBS_FAMILIES_DIR ?= $(CURDIR)/.cache/families/models
# The serving NanoDet's faster variants, int8 and graph-optimised (`make variant-models`).
export MODELOBS_VARIANTS_DIR ?= $(CURDIR)/.cache/variants/models
# What `make variants` judges them on: the demo's labelled captures when a demo left them.
VARIANTS_DATA ?= $(if $(wildcard .cache/demo/export/annotations.json),.cache/demo/export,datasets/animals)
VARIANTS_TRUTH ?= $(if $(filter .cache/demo/export,$(VARIANTS_DATA)),$(wildcard .cache/demo/truth.jsonl))
VARIANTS_PY = $$(bash scripts/venv.sh variants models/variants/requirements.txt 'import onnx, onnxruntime.quantization, PIL, numpy, sympy')
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: families variant-models variants test-variants all build build-arm64 build-x86_64 sam-local sam-local-release bins release dev test composites datasets train test-train fmt-check clippy unit crosscheck bench-eval bench-rollup demo clean ort photos layer bench-inference test-localstack lint-template test-local-resources test-browser chromium fuzz fuzz-replay fuzz-seeds

all: build

## build: `sam build` of every function (release, cross-compiled by cargo-lambda + zig from
## scripts/cargo-lambda.sh) for both architectures: arm64, what template.yaml deploys, into
## .aws-sam/build (where `sam deploy --guided` looks), and x86_64 into .aws-sam/x86_64
## (`sam deploy --template-file .aws-sam/x86_64/template.yaml` to deploy that one). Not in
## `make test`: 11 and 10 min here (2 cores); `make sam-local` runs the functions without it.
build: build-arm64 build-x86_64

# Each prints its functions' and layers' sizes, zipped and not, and fails over Lambda's limits.
build-arm64: layer
	bash scripts/cargo-lambda.sh bash scripts/sam.sh build --template template.yaml
	"$$(bash scripts/sam.sh --python)" scripts/build-sizes.py .aws-sam/build

build-x86_64: layer
	python3 infra/sam-local/local_template.py --arch x86_64 .cache/sam-local/template-x86_64.yaml
	bash scripts/cargo-lambda.sh bash scripts/sam.sh build \
	  --template .cache/sam-local/template-x86_64.yaml --build-dir .aws-sam/x86_64
	"$$(bash scripts/sam.sh --python)" scripts/build-sizes.py .aws-sam/x86_64

## sam-local: every function in the real Lambda runtime (infra/sam-local/run.sh): podman,
## a stand-in provided.al2023 image, the layers at /opt, `sam local invoke` of each function
## with an events/ fixture, `sam local start-api` and `start-lambda`, each checked against
## LocalStack; durations in .cache/sam-local/durations.json. SAM_LOCAL_BUILD=sam: `sam build` first.
sam-local: bins ort photos
	bash infra/sam-local/run.sh

## sam-local-release: the same checks on what `make build-x86_64` built (release bootstraps).
sam-local-release: build-x86_64 ort photos
	SAM_LOCAL_FROM=build bash infra/sam-local/run.sh

## bins: every binary of the workspace (the CLI and the functions), dev profile, with
## cargo's progress on the terminal. `modelobs dev` runs the same command (a no-op then).
bins:
	$(CARGO) build --workspace --bins

## release: the CLI optimised, for the benchmarks only.
release:
	$(CARGO) build --release -p modelobs-cli

## test: formatting, lints, every test (LocalStack and the end-to-end test included, the fault
## soak's short run), the COCO cross-check against pycocotools, the template, the review page in
## a browser, the fine-tuning script on a few steps, every function under `sam local`, and the
## fuzz corpus replayed.
test: fmt-check clippy unit crosscheck lint-template test-local-resources test-browser test-train test-variants sam-local fuzz-replay

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## unit: every test of the workspace, in one run inside a fresh LocalStack. Tests that need
## ONNX Runtime, LocalStack or cargo-lambda are #[ignore = "needs ..."]: a plain `cargo test`
## lists them as ignored, and here --include-ignored runs them, failing if anything is missing.
unit: ort photos composites families variant-models
	$(CARGO) test --workspace --no-run
	CARGO_LAMBDA="$$(bash scripts/cargo-lambda.sh)/cargo-lambda" \
	  localstack/with-stack $(CARGO) test --workspace --no-fail-fast -- --include-ignored

## families: one small random-weight ONNX detector per decode family (YOLOv5, YOLOv8, TF OD API
## SSD, DETR, RT-DETR) with its model.json and the Python reference's detections, into
## $(MODELOBS_FAMILIES_DIR) (models/families/make.sh; seconds, a no-op when up to date).
families:
	@bash models/families/make.sh "$(MODELOBS_FAMILIES_DIR)" >/dev/null

## variant-models: the serving NanoDet's int8 (static QDQ, calibrated on train-split images) and
## graph-optimised variants, each a model directory, into $(MODELOBS_VARIANTS_DIR)
## (models/variants/make.sh; seconds, a no-op when up to date).
variant-models: composites
	@bash models/variants/make.sh "$(MODELOBS_VARIANTS_DIR)" >/dev/null

## variants: judge the variants against the serving model on labelled traffic (models/variants/make.py
## judge): `modelobs backtest` per variant, bare-model and end-to-end times side by side, and the
## rule (ships when it loses at most 0.01 AP50). VARIANTS_DATA (default: the demo's export when
## there is one, else datasets/animals), VARIANTS_TRUTH, PUSH=1 registers the ones that ship.
## The table is .cache/variants/models/variants.md.
variants: release ort photos variant-models
	"$(VARIANTS_PY)" models/variants/make.py judge "$(MODELOBS_VARIANTS_DIR)" --modelobs $(MODELOBS_RELEASE) \
	  --data $(VARIANTS_DATA) $(if $(VARIANTS_TRUTH),--truth $(VARIANTS_TRUTH)) $(if $(PUSH),--push)

## test-variants: the short version of `make variants` in `make test`: the same judge on datasets/animals,
## few timing runs and bootstrap replicates, into a copy (every step must succeed; nothing is asserted
## about whether a variant ships: int8 kernels differ between CPUs).
test-variants: bins ort photos variant-models
	rm -rf .cache/variants/test && mkdir -p .cache/variants && cp -r "$(MODELOBS_VARIANTS_DIR)" .cache/variants/test
	"$(VARIANTS_PY)" models/variants/make.py judge .cache/variants/test --modelobs $(MODELOBS) \
	  --data datasets/animals --runs 2 --rounds 1 --replicates 200

## ort: the ONNX Runtime library (.cache/ort/), from the pinned PyPI wheel.
ort:
	@bash scripts/ort.sh >/dev/null

## train: fine-tune NanoDet on a COCO dataset (the `modelobs dataset export` layout or datasets/animals):
##   make train DATA=<dir> OUT=<model dir> [ARGS="--epochs 3"]; DATA may list several directories.
##   Then OUT/reference.json: the candidate's drift reference, the images it trained on profiled
##   by the Rust detector (`modelobs model push` stores it as the version's reference).
train: bins ort
	@test -n "$(DATA)" -a -n "$(OUT)" || { echo "usage: make train DATA=<COCO dir> OUT=<model dir>"; exit 2; }
	"$$(bash train/venv.sh)" train/finetune.py $(foreach d,$(DATA),--data $(d)) --out $(OUT) $(ARGS)
	$(MODELOBS) drift reference --model $(OUT) --training-set --out $(OUT)/reference.json --no-store

## test-train: the fine-tuning script on a few steps: deterministic, heads only, loads in the Rust detector.
test-train: bins ort
	"$$(bash train/venv.sh)" train/test_finetune.py --modelobs $(MODELOBS)

## soak: the fault soak (crates/pipeline/tests/soak.rs: duplicates, reordering, racing label
## updates and deletions, storage faults, two pollers and concurrent rollups, a black-holed Observe)
## on SOAK_CAPTURES (1000) labelled captures and SOAK_SEEDS (5) seeds, printing its table per seed.
## Then the stack soak (cli/tests/soak_stack.rs): SOAK_CAPTURES captures through `modelobs dev` on
## LocalStack behind a fault proxy (S3/SQS errors, LocalStack unreachable), Labelbox and Observe
## storms, the router killed mid-batch, poison messages. `make test` runs both, shorter (150; 40).
.PHONY: soak soak-stack
SOAK_CAPTURES ?= 1000
SOAK_SEEDS ?= 5
soak:
	MODELOBS_SOAK_CAPTURES=$(SOAK_CAPTURES) MODELOBS_SOAK_SEEDS=$(SOAK_SEEDS) \
	  $(CARGO) test --workspace --test soak -- --nocapture
	$(MAKE) soak-stack

soak-stack: ort
	$(CARGO) test --workspace --test soak_stack --no-run
	MODELOBS_STACK_SOAK_CAPTURES=$(SOAK_CAPTURES) MODELOBS_STACK_SOAK_LIMIT_S=5400 \
	  CARGO_LAMBDA="$$(bash scripts/cargo-lambda.sh)/cargo-lambda" \
	  localstack/with-stack $(CARGO) test --workspace --test soak_stack -- --include-ignored --nocapture

## composites: the exact-box composites' images (datasets/composites/*.jpg, seconds) from their
## committed recipe and annotations; fails if the annotations are not what the recipe makes.
composites: bins
	$(MODELOBS) dataset composite

## datasets: re-create datasets/ from the Debian packages (~300 MB download) and check the sha256s.
datasets:
	bash datasets/sources/fetch.sh

## photos: the darknet test photos (horses, giraffe, dog, ...).
photos:
	@test -f $(MODELOBS_TEST_PHOTOS)/horses.jpg || { \
	  echo "installing Debian package darknet for its test photos"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq darknet >/dev/null; }

## layer: ONNX Runtime as a Lambda layer zip per architecture (infra/layer/build/).
layer:
	bash infra/layer/build.sh x86_64
	bash infra/layer/build.sh aarch64
	bash infra/layer/model.sh

## test-localstack: only the tests against LocalStack (the S3 and Secrets Manager adapters, the
## end-to-end test under `modelobs dev`), in a fresh stack; `make unit` runs them too.
test-localstack: ort photos
	$(CARGO) test --workspace --test '*localstack*' --no-run
	CARGO_LAMBDA="$$(bash scripts/cargo-lambda.sh)/cargo-lambda" \
	  localstack/with-stack $(CARGO) test --workspace --test '*localstack*' -- --include-ignored

## dev: the local stack to work with by hand: LocalStack, the functions under cargo lambda
## watch, the event router and the rollup schedule (`modelobs dev`); Ctrl-C stops it all.
dev: bins ort composites
	CARGO_LAMBDA="$$(bash scripts/cargo-lambda.sh)/cargo-lambda" localstack/with-stack $(MODELOBS) dev

## test-browser: the review page of `modelobs label --serve` in headless Chromium (Debian's package,
## driven over the DevTools Protocol from Python): move, resize, delete, draw and reclassify boxes,
## submit, and check the signed event a fake webhook got. Screenshots in .cache/browser/.
test-browser: bins photos chromium
	"$$(bash cli/tests/browser/venv.sh)" cli/tests/browser/review_page.py --modelobs $(MODELOBS)

## chromium: the headless browser test-browser drives.
chromium:
	@command -v chromium >/dev/null || { \
	  echo "installing Debian package chromium for test-browser"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null; }

## lint-template: `sam validate --lint` (pinned SAM CLI, scripts/sam.sh), then the template's
## wiring against the code (binaries, env vars, S3 prefixes, layers, dashboard; localstack/test_template.py).
lint-template:
	bash scripts/sam.sh validate --lint --template template.yaml
	"$$(bash scripts/sam.sh --python)" localstack/test_template.py

## test-local-resources: what localstack/init.py creates from template.yaml (queues, redrive, notifications) is the template's.
test-local-resources:
	MODELOBS_REQUIRE_LOCALSTACK=1 localstack/with-stack "$$(bash scripts/sam.sh --python)" localstack/test_template.py LocalStackMatchesTemplate

## crosscheck: `modelobs eval` vs pycocotools on generated sets (edge cases and pycocotools quirks), to 1e-9.
crosscheck: bins
	"$(COCO_PY)" bench/coco/crosscheck.py --modelobs $(MODELOBS) --quirks --tol 1e-9

## bench-eval: a COCO-val-sized set, `modelobs eval` vs pycocotools vs hotcoco in one run.
bench-eval: release
	"$(COCO_PY)" bench/coco/bench_eval.py --modelobs $(MODELOBS_RELEASE) --images 5000

## bench-rollup: a day of 5000 labelled images: the rollup (24 hours + day) from stored ImageEvals vs pycocotools and hotcoco re-evaluating the day.
bench-rollup: release
	"$(COCO_PY)" bench/rollup/bench_rollup.py --modelobs $(MODELOBS_RELEASE) --images 5000

## bench-inference: Rust detector vs the Python reference (stages, bare model run, cold start, peak RSS).
bench-inference: release ort photos
	"$$(bash bench/inference/venv.sh)" bench/inference/bench.py --modelobs $(MODELOBS_RELEASE)

## demo: the whole loop (scripts/demo.sh): LocalStack, the functions and the event router,
## ~10 days of drifting traffic, the oracle labeling the samples, rollups, report.html,
## and a check that quality falls where the drift starts. KEEP=1 leaves the stack up.
demo: bins ort photos composites
	MODELOBS=$(MODELOBS) bash scripts/demo.sh

clean:
	$(CARGO) clean
	rm -rf .cache

## fuzz: every fuzz target (fuzz/: images, request bodies, webhooks, S3/SQS events, stored
## records) for FUZZ_SECONDS each (default 600), one after the other at nice 19, coverage-guided
## (libFuzzer via cargo-fuzz, on stable with RUSTC_BOOTSTRAP=1, installed under .cache/ on first
## use); prints executions and any crash per target. Own build in fuzz/target. Not in CI.
FUZZ_SECONDS ?= 600
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash fuzz/run.sh

## fuzz-replay: every committed fuzz input (fuzz/corpus/, fixed crashes) through its target, on
## plain stable (no libFuzzer, no nightly features), and the fuzz crate's formatting.
fuzz-replay:
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml -- --check
	$(CARGO) test --manifest-path fuzz/Cargo.toml --locked

## fuzz-seeds: re-create fuzz/corpus/'s seeds from events/ and tiny images and records made by the real code.
fuzz-seeds:
	$(CARGO) run --manifest-path fuzz/Cargo.toml --locked --example seeds
