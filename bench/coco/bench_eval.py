#!/usr/bin/env python3
"""Time `modelobs eval` against pycocotools and hotcoco on a COCO-val-sized set.

    python bench_eval.py --modelobs target/release/modelobs [--images 5000]
                         [--seed 0] [--repeat 3] [--keep DIR]

Generates a synthetic set shaped like COCO val2017 (5000 images, ~37k GT,
~44k detections, 80 classes; see gen_sets.make_val_like), then in one run times

  pycocotools  in-process: loadRes + evaluate + accumulate + summarize
               (stdout suppressed); GT loading (COCO(gt)) timed separately
  hotcoco      the same steps through hotcoco's pycocotools-style API
  modelobs     the whole `modelobs eval --gt GT --dt DT --json` process
               (wall time, so it also pays process start and GT parsing)

Each is run --repeat times (median and best reported); pycocotools only once
when its first run takes more than --slow seconds.  Prints a table with the
seconds, the speedup over pycocotools, modelobs' speedup over each tool, and
whether each tool's stats agree with pycocotools (max |diff| over the twelve
stats and every per-class AP/AP50; -1 must match exactly).

Without --modelobs (and no $MODELOBS) only the Python tools are timed.
Exits 1 if modelobs fails or disagrees with pycocotools beyond --tol.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import gen_sets  # noqa: E402
import pyeval  # noqa: E402


def time_python_tool(kind: str, gt_path: str, dt_path: str):
    """(gt_load_s, eval_s, result) for one in-process run of kind."""
    if kind == "pycocotools":
        from pycocotools.coco import COCO
        run = pyeval.run_pycocotools
    else:
        from hotcoco import COCO
        run = pyeval.run_hotcoco
    t0 = time.perf_counter()
    with pyeval.quiet():
        gt = COCO(gt_path)
    t1 = time.perf_counter()
    ev, names = run(gt_path, dt_path, gt=gt)
    t2 = time.perf_counter()
    p = ev.params
    res = pyeval.summarize_result(ev.stats, ev.eval["precision"], p.catIds, names, p.maxDets, p.areaRngLbl)
    return t1 - t0, t2 - t1, res


def time_modelobs(exe: str, gt_path: str, dt_path: str):
    cmd = [exe, "eval", "--gt", gt_path, "--dt", dt_path, "--json"]
    t0 = time.perf_counter()
    cp = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    secs = time.perf_counter() - t0
    if cp.returncode != 0:
        raise RuntimeError(f"modelobs exited {cp.returncode}: "
                           f"{cp.stderr.decode('utf-8', 'replace').strip()[-500:]}")
    return secs, json.loads(cp.stdout.decode("utf-8"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modelobs", default=os.environ.get("MODELOBS"),
                    help="path to the modelobs binary (default: $MODELOBS; none: Python tools only)")
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="runs per tool (median and best reported)")
    ap.add_argument("--slow", type=float, default=5.0,
                    help="run pycocotools only once if its first run takes longer (s)")
    ap.add_argument("--tol", type=float, default=1e-9)
    ap.add_argument("--keep", metavar="DIR", help="write the generated files to DIR and keep them")
    ap.add_argument("--no-hotcoco", action="store_true")
    args = ap.parse_args(argv)

    if args.modelobs and not (os.path.isfile(args.modelobs) and os.access(args.modelobs, os.X_OK)):
        print(f"bench_eval: modelobs binary not found or not executable: {args.modelobs}", file=sys.stderr)
        return 2

    tmp = None
    if args.keep:
        outdir = args.keep
        os.makedirs(outdir, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="coco-bench-")
        outdir = tmp.name
    try:
        t0 = time.perf_counter()
        gt, dt = gen_sets.make_val_like(args.images, args.seed)
        gt_path = os.path.join(outdir, "val_like.gt.json")
        dt_path = os.path.join(outdir, "val_like.dt.json")
        gen_sets.write_json(gt_path, gt)
        gen_sets.write_json(dt_path, dt)
        n_crowd = sum(a["iscrowd"] for a in gt["annotations"])
        print(f"set: {len(gt['images'])} images, {len(gt['annotations'])} GT ({n_crowd} crowd), "
              f"{len(dt)} detections, {len(gt['categories'])} categories; "
              f"GT {os.path.getsize(gt_path) / 1e6:.1f} MB, DT {os.path.getsize(dt_path) / 1e6:.1f} MB "
              f"(generated in {time.perf_counter() - t0:.1f}s, seed {args.seed})")
        print(f"machine: {os.cpu_count()} CPUs; python {sys.version.split()[0]}", flush=True)
        del gt, dt

        rows = {}     # name -> dict(times=[...], load=[...], res=...)
        tools = ["pycocotools"] + ([] if args.no_hotcoco else ["hotcoco"])
        for tool in tools:
            loads, times, res = [], [], None
            for i in range(max(1, args.repeat)):
                load_s, eval_s, r = time_python_tool(tool, gt_path, dt_path)
                loads.append(load_s)
                times.append(eval_s)
                res = res or r
                print(f"  {tool} run {i + 1}: GT load {load_s:.3f}s, eval {eval_s:.3f}s", flush=True)
                if tool == "pycocotools" and eval_s > args.slow:
                    break
            rows[tool] = {"times": times, "load": loads, "res": res}

        status = 0
        if args.modelobs:
            times, res = [], None
            try:
                for i in range(max(1, args.repeat)):
                    secs, r = time_modelobs(args.modelobs, gt_path, dt_path)
                    times.append(secs)
                    res = res or r
                    print(f"  modelobs run {i + 1}: {secs:.3f}s", flush=True)
                rows["modelobs"] = {"times": times, "load": None, "res": res}
            except (RuntimeError, json.JSONDecodeError) as e:
                print(f"bench_eval: modelobs failed: {e}", file=sys.stderr)
                status = 1

        ref = rows["pycocotools"]["res"]
        t_ref = statistics.median(rows["pycocotools"]["times"])
        t_mo = statistics.median(rows["modelobs"]["times"]) if "modelobs" in rows else None

        print()
        hdr = (f"{'tool':<12} {'median s':>9} {'best s':>8} {'runs':>4} {'GT load s':>9} "
               f"{'vs pycocotools':>14} {'modelobs vs it':>14}  agrees with pycocotools (max |diff|)")
        print(hdr)
        print("-" * len(hdr))
        for tool, row in rows.items():
            t = statistics.median(row["times"])
            best = min(row["times"])
            load = f"{statistics.median(row['load']):.3f}" if row["load"] else "(incl.)"
            speed = f"{t_ref / t:.1f}x" if t > 0 else "-"
            mo = f"{t / t_mo:.1f}x" if t_mo and tool != "modelobs" else "-"
            if tool == "pycocotools":
                agree = "reference"
            else:
                problems, diff = pyeval.compare(ref, row["res"], args.tol)
                agree = f"yes ({diff:.2g})" if not problems else f"NO: {problems[0]}" + (
                    f" (+{len(problems) - 1} more)" if len(problems) > 1 else "")
                if tool == "modelobs" and problems:
                    status = 1
            print(f"{tool:<12} {t:>9.3f} {best:>8.3f} {len(row['times']):>4} {load:>9} "
                  f"{speed:>14} {mo:>14}  {agree}")
        print()
        print("pycocotools/hotcoco seconds: loadRes+evaluate+accumulate+summarize in-process "
              "(GT load separate); modelobs: whole process wall time (start, parse GT+DT, eval, print).")
        print("'vs pycocotools' = pycocotools median / tool median; "
              "'modelobs vs it' = tool median / modelobs median (>1: modelobs faster).")
        print(f"AP {ref['AP']:.4f}  AP50 {ref['AP50']:.4f}  AP75 {ref['AP75']:.4f}  "
              f"AR100 {ref['AR100']:.4f} (pycocotools)")
        return status
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
