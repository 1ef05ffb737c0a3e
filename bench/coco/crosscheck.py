#!/usr/bin/env python3
"""Cross-check `modelobs eval` against pycocotools on generated COCO sets.

    python crosscheck.py --modelobs target/debug/modelobs [--seed S] [--tol 1e-9]
                         [--quirks] [--only NAME ...] [--keep DIR] [--no-hotcoco]

For every set from gen_sets.py: evaluate with pycocotools (in-process, the
reference), run `MODELOBS eval --gt GT --dt DT --json` as a subprocess, and
compare all twelve stats and every per-class AP/AP50 (within --tol; a -1 on
either side must be matched exactly).  hotcoco is run on the same sets and its
agreement with pycocotools is reported, never counted as a failure.

Prints one line per set, then a final line `N passed, M failed`.  Exits 1 if
any set failed (including modelobs exiting non-zero or printing something
that is not the expected JSON object), 2 on usage errors.

--modelobs defaults to $MODELOBS.  --quirks adds the pycocotools-quirk sets
(empty results, GT id 0, duplicate GT ids, unknown detection category).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import gen_sets  # noqa: E402
import pyeval  # noqa: E402


def run_modelobs(exe: str, gt: str, dt: str, timeout: float):
    """Returns (result dict or None, error string or None, seconds)."""
    cmd = [exe, "eval", "--gt", gt, "--dt", dt, "--json"]
    t0 = time.perf_counter()
    try:
        cp = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:.0f}s", time.perf_counter() - t0
    except OSError as e:
        return None, f"cannot run {exe}: {e}", time.perf_counter() - t0
    secs = time.perf_counter() - t0
    if cp.returncode != 0:
        err = cp.stderr.decode("utf-8", "replace").strip().splitlines()
        return None, f"exit {cp.returncode}: {' | '.join(err[-3:])}", secs
    text = cp.stdout.decode("utf-8", "replace").strip()
    try:
        return json.loads(text), None, secs
    except json.JSONDecodeError as e:
        return None, f"stdout is not one JSON object ({e}): {text[:200]!r}", secs


def fmt_problems(problems, limit=4) -> str:
    s = "; ".join(problems[:limit])
    if len(problems) > limit:
        s += f"; ... ({len(problems) - limit} more)"
    return s


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modelobs", default=os.environ.get("MODELOBS"),
                    help="path to the modelobs binary (default: $MODELOBS)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tol", type=float, default=1e-9)
    ap.add_argument("--quirks", action="store_true", help="include the pycocotools-quirk sets")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="check only these sets")
    ap.add_argument("--keep", metavar="DIR", help="write the sets to DIR and keep them")
    ap.add_argument("--no-hotcoco", action="store_true", help="skip the hotcoco report")
    ap.add_argument("--timeout", type=float, default=120.0, help="per-run timeout for modelobs (s)")
    args = ap.parse_args(argv)

    if not args.modelobs:
        ap.error("--modelobs PATH (or $MODELOBS) is required")
    exe = args.modelobs
    if os.sep not in exe and shutil.which(exe):
        exe = shutil.which(exe)
    if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
        print(f"crosscheck: modelobs binary not found or not executable: {exe}", file=sys.stderr)
        print("0 passed, 1 failed")
        return 1

    have_hotcoco = False
    if not args.no_hotcoco:
        try:
            import hotcoco  # noqa: F401
            have_hotcoco = True
        except ImportError:
            print("crosscheck: hotcoco not importable; skipping the hotcoco report", file=sys.stderr)

    tmp = None
    if args.keep:
        outdir = args.keep
    else:
        tmp = tempfile.TemporaryDirectory(prefix="coco-crosscheck-")
        outdir = tmp.name
    try:
        names = gen_sets.generate(outdir, args.seed, args.quirks, args.only)
        passed = failed = 0
        hc_agree, hc_differ, hc_error = [], [], []
        width = max(len(n) for n in names)
        for name in names:
            gt = os.path.join(outdir, f"{name}.gt.json")
            dt = os.path.join(outdir, f"{name}.dt.json")
            with open(gt, encoding="utf-8") as f:
                g = json.load(f)
            with open(dt, encoding="utf-8") as f:
                n_dt = len(json.load(f))
            shape = f"{len(g['images'])} img {len(g['annotations'])} gt {n_dt} dt"
            try:
                ref = pyeval.pycocotools_eval(gt, dt)
            except Exception as e:  # noqa: BLE001 -- report and count
                failed += 1
                print(f"FAIL {name:<{width}}  pycocotools raised {type(e).__name__}: {e}")
                continue

            got, err, secs = run_modelobs(exe, gt, dt, args.timeout)
            if err is not None:
                ok, detail = False, f"modelobs {err}"
            else:
                problems, max_diff = pyeval.compare(ref, got, args.tol)
                ok = not problems
                detail = (f"max|diff| {max_diff:.2g}" if ok else fmt_problems(problems))

            hc = ""
            if have_hotcoco:
                try:
                    hres = pyeval.hotcoco_eval(gt, dt)
                    hprob, hdiff = pyeval.compare(ref, hres, args.tol)
                    if hprob:
                        hc_differ.append((name, hprob))
                        hc = f"  [hotcoco DIFFERS: {len(hprob)} values]"
                    else:
                        hc_agree.append((name, hdiff))
                        hc = f"  [hotcoco agrees, max|diff| {hdiff:.2g}]"
                except Exception as e:  # noqa: BLE001 -- reported only
                    hc_error.append((name, f"{type(e).__name__}: {e}"))
                    hc = f"  [hotcoco raised {type(e).__name__}]"

            if ok:
                passed += 1
            else:
                failed += 1
            print(f"{'ok  ' if ok else 'FAIL'} {name:<{width}}  ({shape}, AP {ref['AP']:.4f}, "
                  f"{secs:.2f}s)  {detail}{hc}", flush=True)

        if have_hotcoco:
            total = len(hc_agree) + len(hc_differ) + len(hc_error)
            print(f"hotcoco vs pycocotools (report only, tol {args.tol:g}): "
                  f"{len(hc_agree)}/{total} sets agree")
            for name, probs in hc_differ:
                print(f"  hotcoco differs on {name}: {fmt_problems(probs)}")
            for name, msg in hc_error:
                print(f"  hotcoco failed on {name}: {msg}")
        print(f"{passed} passed, {failed} failed")
        return 0 if failed == 0 else 1
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
