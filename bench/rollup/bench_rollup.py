#!/usr/bin/env python3
"""Time the window rollup against re-evaluating the same day with pycocotools and hotcoco.

    python bench_rollup.py --modelobs target/release/modelobs [--images 5000]
                           [--seed 0] [--repeat 3] [--tol 1e-12]

Generates a COCO-val-shaped day (gen_sets.make_val_like: 5000 labelled images,
~37k GT, ~44k detections, 80 classes), then in one run:

  rollup       `modelobs bench-rollup`: stores one ImageEval per image (what the
               metrics function writes when a label arrives; not timed) in an
               in-memory bucket spread over the day's 24 hours, then times whole
               rollup runs: list the touches, read and parse every stored
               evaluation, compute the 24 hour windows and the day window, store
               them, consume the touches. Twice: the ImageEvals stored as
               this build writes them (schema 2), then as builds before it
               wrote them (schema 1, still read); prints where each run's
               time went (read, parse, compute, store)
  pycocotools  loadRes + evaluate + accumulate + summarize of the day (GT loaded
               beforehand, not timed)
  hotcoco      the same through hotcoco's pycocotools-style API

and prints the ratios. The day window's figures must equal pycocotools' to --tol
(the window leaves out classes without ground truth or detections; pycocotools
calls those -1, and they are compared as such), and the day window from v1
records must equal the one from v2 records exactly. Exits 1 on disagreement.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "coco"))

import bench_eval  # noqa: E402
import gen_sets  # noqa: E402
import pyeval  # noqa: E402


def run_rollup(exe: str, gt_path: str, dt_path: str, repeat: int, schema: int) -> dict:
    cmd = [exe, "bench-rollup", "--gt", gt_path, "--dt", dt_path, "--repeat", str(repeat),
           "--schema", str(schema)]
    cp = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if cp.returncode != 0:
        raise RuntimeError(f"modelobs bench-rollup exited {cp.returncode}: "
                           f"{cp.stderr.decode('utf-8', 'replace').strip()[-800:]}")
    return json.loads(cp.stdout.decode("utf-8"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modelobs", default=os.environ.get("MODELOBS"), required=os.environ.get("MODELOBS") is None)
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tol", type=float, default=1e-12)
    ap.add_argument("--goal", type=float, default=100.0, help="wanted speedup over pycocotools (reported)")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="rollup-bench-") as outdir:
        gt, dt = gen_sets.make_val_like(args.images, args.seed)
        gt_path = os.path.join(outdir, "day.gt.json")
        dt_path = os.path.join(outdir, "day.dt.json")
        gen_sets.write_json(gt_path, gt)
        gen_sets.write_json(dt_path, dt)
        print(f"day: {len(gt['images'])} labelled images, {len(gt['annotations'])} GT, "
              f"{len(dt)} detections, {len(gt['categories'])} categories (seed {args.seed})")
        print(f"machine: {os.cpu_count()} CPUs", flush=True)
        del gt, dt

        rollups = {}
        for schema in (2, 1):
            r = rollups[schema] = run_rollup(args.modelobs, gt_path, dt_path, args.repeat, schema)
            stages = {k: statistics.median(st[k] for st in r["stages_s"]) for k in r["stages_s"][0]}
            print(f"  rollup runs, v{schema} records: {', '.join(f'{s:.4f}s' for s in r['rollup_s'])} "
                  f"({r['windows']} windows, {r['stored_eval_bytes'] / 1e6:.1f} MB of stored ImageEvals)",
                  flush=True)
            print("    median stages: " + ", ".join(f"{k} {v:.4f}s" for k, v in stages.items()), flush=True)
        rollup = rollups[2]
        t_roll = statistics.median(rollup["rollup_s"])
        t_roll_v1 = statistics.median(rollups[1]["rollup_s"])

        times = {}
        results = {}
        for tool in ("pycocotools", "hotcoco"):
            runs = []
            for i in range(max(1, args.repeat)):
                _, eval_s, res = bench_eval.time_python_tool(tool, gt_path, dt_path)
                runs.append(eval_s)
                results[tool] = res
                print(f"  {tool} run {i + 1}: {eval_s:.3f}s", flush=True)
                if tool == "pycocotools" and eval_s > 5.0:
                    break
            times[tool] = statistics.median(runs)

    ref = results["pycocotools"]
    day = dict(rollup["day"])
    per_class = dict(day["per_class"])
    for name in ref["per_class"]:
        per_class.setdefault(name, {"AP": -1.0, "AP50": -1.0})
    day["per_class"] = per_class
    problems, diff = pyeval.compare(ref, day, args.tol)
    for k in ("day", "day_at_serving_threshold", "day_images_labelled"):
        if rollups[1][k] != rollup[k]:
            problems.append(f"{k} from v1 records differs from v2: {rollups[1][k]!r} vs {rollup[k]!r}")

    print()
    print(f"{'':<28} {'median s':>9} {'rollup is':>10}")
    print(f"{'rollup (24 hours + day)':<28} {t_roll:>9.4f} {'':>10}")
    print(f"{'rollup of v1 records':<28} {t_roll_v1:>9.4f} {t_roll_v1 / t_roll:>9.1f}x")
    for tool in ("pycocotools", "hotcoco"):
        print(f"{tool + ' (re-evaluate day)':<28} {times[tool]:>9.4f} {times[tool] / t_roll:>9.1f}x")
    goal = times["pycocotools"] / t_roll >= args.goal and times["hotcoco"] > t_roll
    print(f"goal (>= {args.goal:g}x pycocotools, faster than hotcoco): {'met' if goal else 'NOT met'}")
    print(f"day window vs pycocotools (tol {args.tol:g}), and v1 vs v2 records (exact): "
          + (f"agrees (max |diff| {diff:.2g})" if not problems else f"DISAGREES: {problems[:3]}"))
    print(f"AP {ref['AP']:.4f}  AP50 {ref['AP50']:.4f}  AR100 {ref['AR100']:.4f} (pycocotools); "
          f"day window: {rollup['day_images_labelled']} images")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
