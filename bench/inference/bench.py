#!/usr/bin/env python3
"""Rust detector (`modelobs predict`) vs the Python reference (reference.py), one run.

Same images, same model, same ONNX Runtime library, one intra-op thread on both sides:

  warm       per-stage medians over --runs detections of each image (after one warm-up):
             Rust via `modelobs predict --bench N` (one process), Python in-process
             (reference.Detector.detect_bytes); --rounds alternate the two sides and the
             median of the rounds' medians is reported (a shared VM drifts)
  model      the bare model run on an already prepared tensor, both sides
             (Python: session.run; Rust: the same session re-run on the last tensor)
  cold       process start -> first answer line, model load included, as separate
             processes (`modelobs predict --json IMG` vs `python reference.py --json IMG`),
             median of --cold-runs after one discarded run (page cache warm for both)
  peak RSS   of a cold process of each side, and of the Rust bench process

Goals (reported, not enforced): warm end-to-end <= 1.05x the bare model run; non-model time
(decode + preprocess + postprocess, + the profile on the Rust side) >= 3x faster than Python's;
the capture's profile < 1 ms; cold start >= 2x faster;
peak RSS <= 300 MB.

  ORT_DYLIB_PATH=$(bash scripts/ort.sh) \\
  $(bash bench/inference/venv.sh) bench/inference/bench.py --modelobs target/release/modelobs
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

import reference as ref  # noqa: E402

# profile: the capture's label-free profile (docs/drift.md), Rust only (0 on the Python side,
# which computes none); counted in the Rust side's non-model time.
STAGES = ["decode", "preprocess", "inference", "postprocess", "profile", "total"]
PHOTOS = Path(os.environ.get("MODELOBS_TEST_PHOTOS", "/usr/share/darknet/data"))
DEFAULT_IMAGES = [PHOTOS / "horses.jpg", PHOTOS / "giraffe.jpg", PHOTOS / "dog.jpg",
                  REPO / "crates/detector/tests/fixtures/chelsea.png"]


# ru_maxrss of a child includes the memory of the process it was forked from (Linux keeps
# the pre-exec high-water mark), and this process holds onnxruntime: children whose peak
# RSS we report are started from a small launcher instead.
_LAUNCHER = """\
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(f"peak_rss_kib={usage.ru_maxrss}", file=sys.stderr)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_child(cmd: list[str], measure_rss: bool = False) -> tuple[float, str, float]:
    """Runs cmd; returns (seconds to the first stdout line, all stdout, peak RSS in MB or 0)."""
    if measure_rss:
        cmd = [sys.executable, "-S", "-c", _LAUNCHER, *cmd]
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = p.stdout.readline()
    t_first = time.perf_counter() - t0
    rest = p.stdout.read()
    err = p.stderr.read()
    if p.wait() != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{err}")
    rss = 0.0
    if measure_rss:
        line = [ln for ln in err.splitlines() if ln.startswith("peak_rss_kib=")][-1]
        rss = int(line.split("=")[1]) / 1024.0
    return t_first, first + rest, rss


def rust_warm(modelobs: str, model: str, images: list[Path], runs: int, threads: int):
    cmd = [modelobs, "predict", "--model", model, "--classes", "all", "--threads", str(threads),
           "--bench", str(runs), *map(str, images)]
    _, out, rss = run_child(cmd, measure_rss=True)
    reports = [json.loads(line) for line in out.splitlines() if line.strip()]
    return reports, rss


def python_warm(model: str, images: list[Path], runs: int, threads: int):
    det = ref.Detector(model, threads=threads)
    results = []
    for path in images:
        data = path.read_bytes()
        det.detect_bytes(data)  # warm-up
        stages = {k: [] for k in STAGES}
        answer = None
        for _ in range(runs):
            t0 = time.perf_counter()
            answer, ms = det.detect_bytes(data)
            total = (time.perf_counter() - t0) * 1e3
            for k, v in ms.items():
                stages[k].append(v)
            stages["total"].append(total)
        x, _ = ref.preprocess(ref.decode_image(data), det.meta)
        bare = []
        for _ in range(runs):
            t0 = time.perf_counter()
            ref.infer(det.session, det.meta, x)
            bare.append((time.perf_counter() - t0) * 1e3)
        results.append({"median_ms": {k: statistics.median(v) if v else 0.0 for k, v in stages.items()},
                        "model_run_ms": statistics.median(bare),
                        "detections": answer["detections"]})
    return results


def cold(cmds: list[list[str]], runs: int) -> list[tuple[float, float]]:
    """Per command: median ms to the first answer, peak RSS MB. Commands alternate."""
    for cmd in cmds:
        run_child(cmd)  # discarded: fills the page cache
    samples = [[] for _ in cmds]
    for _ in range(runs):
        for cmd, out in zip(cmds, samples):
            out.append(run_child(cmd)[0])
    return [(statistics.median(out) * 1e3, run_child(cmd, measure_rss=True)[2])
            for cmd, out in zip(cmds, samples)]


def median_of_rounds(rounds: list[list[dict]]) -> list[dict]:
    """Per image: the median over rounds of each median."""
    out = []
    for per_image in zip(*rounds):
        merged = dict(per_image[0])
        merged["median_ms"] = {k: statistics.median(r["median_ms"][k] for r in per_image) for k in STAGES}
        merged["model_run_ms"] = statistics.median(r["model_run_ms"] for r in per_image)
        out.append(merged)
    return out


def max_diffs(a: list[dict], b: list[dict]) -> str:
    if len(a) != len(b):
        return f"{len(a)} vs {len(b)} detections"
    used, px, sc = set(), 0.0, 0.0
    for d in b:
        cands = [(i, e) for i, e in enumerate(a) if i not in used and e["class_id"] == d["class_id"]]
        if not cands:
            return f"no match for {d['label']}"
        i, e = min(cands, key=lambda ie: sum(abs(ie[1]["box"][k] - d["box"][k]) for k in d["box"]))
        used.add(i)
        px = max(px, *(abs(e["box"][k] - d["box"][k]) for k in d["box"]))
        sc = max(sc, abs(e["score"] - d["score"]))
    return f"{len(a)} detections, max box diff {px:.3f} px, max score diff {sc:.6f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--modelobs", default=str(REPO / "target/release/modelobs"))
    ap.add_argument("--model", default=str(REPO / "models/nanodet/model.json"))
    ap.add_argument("--images", nargs="+", type=Path, default=DEFAULT_IMAGES)
    ap.add_argument("--runs", type=int, default=20, help="warm runs per image and round")
    ap.add_argument("--rounds", type=int, default=3, help="alternating Rust/Python rounds")
    ap.add_argument("--cold-runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, help="also write all numbers here")
    args = ap.parse_args(argv)
    if not os.environ.get("ORT_DYLIB_PATH"):
        ap.error("ORT_DYLIB_PATH is unset (ORT_DYLIB_PATH=$(bash scripts/ort.sh))")
    for p in [Path(args.modelobs), *args.images]:
        if not p.is_file():
            ap.error(f"{p}: no such file")

    print(f"# {len(args.images)} images, {args.rounds} rounds x {args.runs} warm runs each, "
          f"{args.threads} thread(s), "
          f"onnxruntime {ref.ort.__version__} (Python) / {os.environ['ORT_DYLIB_PATH']} (Rust)",
          flush=True)
    rust_rounds, py_rounds, rust_bench_rss = [], [], 0.0
    for _ in range(args.rounds):
        r, rss = rust_warm(args.modelobs, args.model, args.images, args.runs, args.threads)
        rust_rounds.append(r)
        rust_bench_rss = max(rust_bench_rss, rss)
        py_rounds.append(python_warm(args.model, args.images, args.runs, args.threads))
    rust, py = median_of_rounds(rust_rounds), median_of_rounds(py_rounds)

    print(f"\n{'image':<14} {'stage':<12} {'rust ms':>9} {'python ms':>10} {'py/rust':>8}")
    totals = {"rust": {k: 0.0 for k in STAGES + ["model"]}, "python": {k: 0.0 for k in STAGES + ["model"]}}
    for path, r, p in zip(args.images, rust, py):
        for k in STAGES:
            rv, pv = r["median_ms"][k], p["median_ms"][k]
            totals["rust"][k] += rv
            totals["python"][k] += pv
            ratio = f"{pv / rv:>7.2f}x" if pv and rv else f"{'-':>8}"
            print(f"{path.name:<14} {k:<12} {rv:>9.2f} {pv:>10.2f} {ratio}")
        rv, pv = r["model_run_ms"], p["model_run_ms"]
        totals["rust"]["model"] += rv
        totals["python"]["model"] += pv
        print(f"{path.name:<14} {'bare model':<12} {rv:>9.2f} {pv:>10.2f} {pv / rv:>7.2f}x")
        print(f"{'':<14} answers: {max_diffs(r['detections'], p['detections'])}")

    (rust_cold, rust_rss), (py_cold, py_rss) = cold([
        [args.modelobs, "predict", "--model", args.model, "--json", "--classes", "all",
         "--threads", str(args.threads), str(args.images[0])],
        [sys.executable, str(HERE / "reference.py"), "--model", args.model, "--json",
         "--threads", str(args.threads), str(args.images[0])],
    ], args.cold_runs)

    def non_model(side):
        t = totals[side]
        return t["decode"] + t["preprocess"] + t["postprocess"] + t["profile"]

    e2e = totals["rust"]["total"] / totals["rust"]["model"]
    py_e2e = totals["python"]["total"] / totals["python"]["model"]
    # The same ratio with the model's own run-to-run noise taken out: what the
    # pipeline adds around one bare model run.
    overhead = (non_model("rust") + totals["rust"]["model"]) / totals["rust"]["model"]
    nm_ratio = non_model("python") / non_model("rust")
    cold_ratio = py_cold / rust_cold
    peak = max(rust_rss, rust_bench_rss)
    worst_profile = max(r["median_ms"]["profile"] for r in rust)
    goals = [
        ("warm end-to-end / bare model run (Rust)",
         f"{e2e:.3f}x (non-model + bare {overhead:.3f}x; Python {py_e2e:.3f}x)", "<= 1.05x", e2e <= 1.05),
        ("non-model time, Python / Rust",
         f"{nm_ratio:.2f}x ({non_model('python'):.1f} vs {non_model('rust'):.1f} ms over all images)",
         ">= 3x", nm_ratio >= 3),
        ("cold start to first answer, Python / Rust",
         f"{cold_ratio:.2f}x ({py_cold:.0f} vs {rust_cold:.0f} ms)", ">= 2x", cold_ratio >= 2),
        ("label-free profile, slowest image (Rust)",
         f"{worst_profile:.3f} ms (" + ", ".join(f"{p.name} {r['median_ms']['profile']:.3f}"
                                         for p, r in zip(args.images, rust)) + ")",
         "< 1 ms", worst_profile < 1.0),
        ("peak RSS (Rust)",
         f"{peak:.0f} MB (one image {rust_rss:.0f}, bench {rust_bench_rss:.0f}; Python one image {py_rss:.0f})",
         "<= 300 MB", peak <= 300),
    ]
    print(f"\n{'goal':<44} {'measured':<58} {'target':<10} ")
    for name, got, target, ok in goals:
        print(f"{name:<44} {got:<58} {target:<10} {'MET' if ok else 'MISSED'}")

    if args.json:
        args.json.write_text(json.dumps({
            "images": [str(p) for p in args.images], "runs": args.runs, "rounds": args.rounds,
            "threads": args.threads,
            "rust": rust, "python": py, "totals_ms": totals,
            "cold_ms": {"rust": rust_cold, "python": py_cold},
            "peak_rss_mb": {"rust_one_image": rust_rss, "rust_bench": rust_bench_rss, "python_one_image": py_rss},
            "goals": [{"goal": g[0], "measured": g[1], "target": g[2], "met": g[3]} for g in goals],
        }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
