#!/usr/bin/env python3
"""Reference COCO bbox evaluation with pycocotools, printed as one JSON object.

    python pyeval.py GT.json DT.json [--hotcoco]

Prints the same object as `modelobs eval --json`:

    {"AP":..,"AP50":..,"AP75":..,"APs":..,"APm":..,"APl":..,
     "AR1":..,"AR10":..,"AR100":..,"ARs":..,"ARm":..,"ARl":..,
     "per_class":{"<category name>":{"AP":..,"AP50":..}}}

The twelve stats are cocoEval.stats in order.  per_class[name].AP is the mean
of precision[:, :, k, area=all, maxDet=100] over entries > -1 (-1 when there
are none); AP50 the same at IoU index 0.

--hotcoco computes the same object with hotcoco's pycocotools-compatible API
instead.  The helpers here are imported by crosscheck.py and bench_eval.py.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys

STAT_KEYS = ["AP", "AP50", "AP75", "APs", "APm", "APl",
             "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]


@contextlib.contextmanager
def quiet():
    """Silence stdout at the file-descriptor level (pycocotools prints from
    Python; hotcoco prints from Rust, which sys.stdout redirection misses)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            with contextlib.redirect_stdout(devnull):
                yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def summarize_result(stats, precision, cat_ids, cat_names, max_dets, area_lbls) -> dict:
    """The JSON object from COCOeval.stats and COCOeval.eval['precision']."""
    import numpy as np

    stats = [float(x) for x in stats]
    if len(stats) != 12:
        raise ValueError(f"expected 12 stats, got {len(stats)}")
    out = dict(zip(STAT_KEYS, stats))
    precision = np.asarray(precision, dtype=np.float64)
    a = list(area_lbls).index("all")
    m = list(max_dets).index(100)
    per_class = {}
    for k, cid in enumerate(cat_ids):
        name = cat_names[cid]
        if name in per_class:
            raise ValueError(f"duplicate category name {name!r}")
        p = precision[:, :, k, a, m]
        p_all = p[p > -1]
        p50 = p[0][p[0] > -1]
        per_class[name] = {
            "AP": float(np.mean(p_all)) if p_all.size else -1.0,
            "AP50": float(np.mean(p50)) if p50.size else -1.0,
        }
    out["per_class"] = per_class
    return out


def _load_dets(dt_path):
    with open(dt_path, encoding="utf-8") as f:
        dets = json.load(f)
    if not isinstance(dets, list):
        raise ValueError("results file is not a JSON list")
    return dets


def _empty_results(gt):
    """A result COCO object with no detections.  pycocotools' loadRes raises
    IndexError on [] (it inspects anns[0]), so build what it would have built."""
    from pycocotools.coco import COCO

    res = COCO()
    res.dataset = {"images": list(gt.dataset["images"]),
                   "categories": list(gt.dataset["categories"]),
                   "annotations": []}
    with quiet():
        res.createIndex()
    return res


def run_pycocotools(gt_path, dt_path, gt=None):
    """Run pycocotools; returns (COCOeval, category id -> name)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with quiet():
        if gt is None:
            gt = COCO(gt_path)
        dets = _load_dets(dt_path)
        dt = gt.loadRes(dets) if dets else _empty_results(gt)
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    names = {c["id"]: c["name"] for c in gt.dataset["categories"]}
    return ev, names


def pycocotools_eval(gt_path, dt_path) -> dict:
    ev, names = run_pycocotools(gt_path, dt_path)
    p = ev.params
    return summarize_result(ev.stats, ev.eval["precision"], p.catIds, names, p.maxDets, p.areaRngLbl)


def run_hotcoco(gt_path, dt_path, gt=None):
    """Run hotcoco's pycocotools-style API; returns (COCOeval, id -> name)."""
    import hotcoco

    with quiet():
        if gt is None:
            gt = hotcoco.COCO(gt_path)
        dt = gt.loadRes(dt_path)
        ev = hotcoco.COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    names = {c["id"]: c["name"] for c in gt.dataset["categories"]}
    return ev, names


def hotcoco_eval(gt_path, dt_path) -> dict:
    ev, names = run_hotcoco(gt_path, dt_path)
    p = ev.params
    return summarize_result(ev.stats, ev.eval["precision"], p.catIds, names, p.maxDets, p.areaRngLbl)


def _num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def compare(ref: dict, got: dict, tol: float):
    """Compare two result objects.  Returns (problems, max_abs_diff) where
    problems is a list of strings (empty when they agree).  A value of -1 on
    either side must be matched exactly; others within tol."""
    problems = []
    max_diff = 0.0

    def one(label, a, b):
        nonlocal max_diff
        if not _num(b):
            problems.append(f"{label}: expected {a!r}, got non-number {b!r}")
            return
        if a == -1 or b == -1:
            if a != b:
                problems.append(f"{label}: expected {a!r}, got {b!r}")
            return
        if math.isnan(a) or math.isnan(b):
            problems.append(f"{label}: expected {a!r}, got {b!r}")
            return
        d = abs(a - b)
        max_diff = max(max_diff, d)
        if d > tol:
            problems.append(f"{label}: expected {a!r}, got {b!r} (diff {d:.3g})")

    if not isinstance(got, dict):
        return [f"output is not a JSON object: {type(got).__name__}"], math.inf
    for k in STAT_KEYS:
        if k not in got:
            problems.append(f"missing key {k}")
        else:
            one(k, ref[k], got[k])
    extra = set(got) - set(STAT_KEYS) - {"per_class"}
    if extra:
        problems.append(f"unexpected keys: {sorted(extra)}")
    pc_ref = ref["per_class"]
    pc_got = got.get("per_class")
    if not isinstance(pc_got, dict):
        problems.append("missing or non-object per_class")
    else:
        missing = sorted(set(pc_ref) - set(pc_got))
        extra = sorted(set(pc_got) - set(pc_ref))
        if missing:
            problems.append(f"per_class missing {missing}")
        if extra:
            problems.append(f"per_class unexpected {extra}")
        for name in pc_ref:
            if name not in pc_got:
                continue
            g = pc_got[name]
            if not isinstance(g, dict):
                problems.append(f"per_class[{name!r}] is not an object")
                continue
            for k in ("AP", "AP50"):
                if k not in g:
                    problems.append(f"per_class[{name!r}] missing {k}")
                else:
                    one(f"per_class[{name!r}].{k}", pc_ref[name][k], g[k])
    return problems, max_diff


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("gt")
    ap.add_argument("dt")
    ap.add_argument("--hotcoco", action="store_true", help="evaluate with hotcoco instead")
    args = ap.parse_args(argv)
    fn = hotcoco_eval if args.hotcoco else pycocotools_eval
    res = fn(args.gt, args.dt)
    print(json.dumps(res, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
