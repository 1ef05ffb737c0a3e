#!/usr/bin/env python3
"""Faster variants of a served model, made with ONNX Runtime's own tools, and judged by the monitor.

  make.py make PARENT OUT [--calibration DIR ...] [--calibration-images N]
      OUT/optimized/  the parent's graph after ONNX Runtime's offline optimisation at level
                      `extended` (constant folding, Conv/activation and other fusions). Not
                      `all`: its NCHWc layouts are specific to the CPU that wrote the file,
                      and the functions run on arm64.
      OUT/int8/       static QDQ quantisation (quant_pre_process first): int8 weights per
                      output channel, uint8 activations calibrated by MinMax on the train split
                      of the calibration datasets (never their validation or test images),
                      each image through the detector's own letterbox and normalisation
                      (bench/inference/reference.py). The graph's inputs and outputs stay
                      float32 with their names, so the parent's model.json describes it.
      Each gets a model.json: the parent's, with the new file's sha256 and size, a version
      `<parent version>+<kind>`, `parent` (name, version, sha256) and `variant` (tool,
      settings, calibration images' sha256).

  make.py judge OUT --modelobs BIN --data DIR [--truth FILE] [--images IMG ...] [--max-loss 0.01] [--push]
      For each variant: `modelobs model check`, `modelobs backtest --candidate VARIANT
      --baseline PARENT --data DIR --json` (labelled captures, e.g. `modelobs dataset export`'s),
      and the bare model run and end-to-end time of `modelobs predict --bench` on --images, the
      parent and the variants in alternating rounds in this one command. A variant ships when
      it loses at most --max-loss AP50 on the labelled data (the point estimate of the paired
      ΔAP50; its interval is reported beside); --push registers the ones that ship
      (`modelobs model push`). Writes OUT/variants.json and OUT/variants.md.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "bench" / "inference"))

KINDS = ("optimized", "int8")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_parent(parent: Path) -> tuple[dict, Path]:
    meta_path = parent / "model.json" if parent.is_dir() else parent
    meta = json.loads(meta_path.read_text())
    onnx_path = meta_path.parent / meta["file"]
    if sha256_file(onnx_path) != meta["sha256"]:
        raise SystemExit(f"make.py: {onnx_path} does not match its model.json sha256")
    return meta, onnx_path


def calibration_images(datasets: list[Path], split: str, n: int, seed: int) -> list[Path]:
    """The `split` images of COCO datasets (DIR/annotations.json, files in DIR/images/ when it
    exists), n of them drawn with a fixed seed, in a stable order."""
    found: list[Path] = []
    for d in datasets:
        coco = json.loads((d / "annotations.json").read_text())
        base = d / "images" if (d / "images").is_dir() else d
        found += sorted(base / im["file_name"] for im in coco["images"] if im.get("split") == split)
    if not found:
        raise SystemExit(f"make.py: no `{split}` images in {', '.join(map(str, datasets))}")
    random.Random(seed).shuffle(found)
    return sorted(found[:n])


def write_variant(parent_meta: dict, out_dir: Path, onnx_file: Path, kind: str, variant: dict) -> dict:
    meta = json.loads(json.dumps(parent_meta))
    meta["sha256"] = sha256_file(onnx_file)
    meta["size_bytes"] = onnx_file.stat().st_size
    meta["version"] = f"{parent_meta['version']}+{kind}"
    meta["parent"] = {k: parent_meta[k] for k in ("name", "version", "sha256")}
    meta["variant"] = {"kind": kind, **variant}
    for k in ("dataset", "training"):
        meta.pop(k, None)
    (out_dir / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def make_optimized(parent_meta: dict, parent_onnx: Path, out: Path) -> None:
    import onnxruntime as ort

    out.mkdir(parents=True, exist_ok=True)
    target = out / parent_meta["file"]
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = str(target)
    so.intra_op_num_threads = 1
    ort.InferenceSession(str(parent_onnx), so, providers=["CPUExecutionProvider"])
    write_variant(parent_meta, out, target, "optimized", {
        "tool": f"onnxruntime {ort.__version__} offline graph optimisation",
        "settings": {"graph_optimization_level": "extended", "provider": "CPUExecutionProvider"},
    })


def unquantisable_nodes(onnx_path: Path) -> list[str]:
    """Nodes whose output range is infinite, and their consumers: a Pad with a non-finite
    constant (TF's SAME max-pool pads with -inf, as NanoDet's export does before each MaxPool)
    would get a NaN scale, which silently zeroes every score after it. They stay float."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    infinite = set()
    names = []
    for node in model.graph.node:
        if node.op_type == "Pad" and len(node.input) > 2 and node.input[2] in inits \
                and not np.isfinite(inits[node.input[2]]).all():
            names.append(node.name)
            infinite.update(node.output)
    names += [n.name for n in model.graph.node if infinite.intersection(n.input)]
    return names


def make_int8(parent_meta: dict, parent_onnx: Path, out: Path, images: list[Path]) -> None:
    import numpy as np
    import onnxruntime as ort
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    import reference as ref

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.paths = iter(images)

        def get_next(self):
            p = next(self.paths, None)
            if p is None:
                return None
            x, _ = ref.preprocess(ref.decode_image(p.read_bytes()), parent_meta)
            return {parent_meta["input"]["name"]: np.ascontiguousarray(x, dtype=np.float32)}

    out.mkdir(parents=True, exist_ok=True)
    target = out / parent_meta["file"]
    excluded = unquantisable_nodes(parent_onnx)
    settings = {"format": "QDQ", "weights": "int8, per channel", "activations": "uint8",
                "calibration": "MinMax", "pre_process": "quant_pre_process (shape inference, optimisation)",
                "kept_float": excluded}
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(parent_onnx), str(pre))
        quantize_static(str(pre), str(target), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=excluded)
    write_variant(parent_meta, out, target, "int8", {
        "tool": f"onnxruntime {ort.__version__} quantize_static",
        "settings": settings,
        "calibration": {"images": len(images), "images_sha256": sorted(sha256_file(p) for p in images)},
    })


def cmd_make(args) -> None:
    parent_meta, parent_onnx = load_parent(Path(args.parent))
    out = Path(args.out)
    if out.exists():
        for kind in KINDS:
            shutil.rmtree(out / kind, ignore_errors=True)
    make_optimized(parent_meta, parent_onnx, out / "optimized")
    print(f"make.py: wrote {out / 'optimized'}", file=sys.stderr)
    images = calibration_images([Path(d) for d in args.calibration], args.split, args.calibration_images, args.seed)
    make_int8(parent_meta, parent_onnx, out / "int8", images)
    print(f"make.py: wrote {out / 'int8'} (calibrated on {len(images)} images)", file=sys.stderr)


def run(cmd: list[str]) -> str:
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"make.py: {' '.join(cmd)} failed ({p.returncode}):\n{p.stderr}")
    return p.stdout


def bench(modelobs: str, model: Path, images: list[str], runs: int) -> dict[str, float]:
    """Sum over the images of the median end-to-end and bare model-run times, in ms."""
    out = run([modelobs, "predict", "--bench", str(runs), "--model", str(model), *images])
    lines = [json.loads(ln) for ln in out.splitlines() if ln.strip()]
    return {"total_ms": sum(ln["median_ms"]["total"] for ln in lines),
            "model_ms": sum(ln["model_run_ms"] for ln in lines),
            "load_ms": lines[0]["load_ms"]}


def ships(loss: float | None, max_loss: float) -> bool:
    """The shipping rule: a variant ships when its AP50 loss on the labelled data is known and
    at most max_loss (a gain is no loss)."""
    return loss is not None and loss <= max_loss


def cmd_judge(args) -> None:
    out = Path(args.out)
    parent = Path(args.parent)
    images = args.images or [str(p) for p in (Path(os.environ.get("MODELOBS_TEST_PHOTOS", "/usr/share/darknet/data")) / n
                                                for n in ("horses.jpg", "giraffe.jpg", "dog.jpg"))]
    rows = []
    for kind in KINDS:
        d = out / kind
        run([args.modelobs, "model", "check", str(d)])
        cmd = [args.modelobs, "backtest", "--candidate", str(d), "--baseline", str(parent), "--data", args.data,
               "--out", str(out / "backtest" / kind), "--json", "--replicates", str(args.replicates)]
        if args.truth:
            cmd += ["--truth", args.truth]
        report = json.loads(run(cmd))
        rows.append({"kind": kind, "dir": str(d), "report": report})
    # Timings: the parent and every variant in alternating rounds, medians of the rounds.
    times: dict[str, list[dict[str, float]]] = {"parent": [], **{r["kind"]: [] for r in rows}}
    for _ in range(args.rounds):
        times["parent"].append(bench(args.modelobs, parent, images, args.runs))
        for r in rows:
            times[r["kind"]].append(bench(args.modelobs, Path(r["dir"]), images, args.runs))
    med = {k: {m: statistics.median(t[m] for t in v) for m in ("total_ms", "model_ms", "load_ms")} for k, v in times.items()}
    table = []
    for r in rows:
        comp = r["report"]["comparison"]
        delta = comp["overall"]["delta"]
        loss = -delta["ap50"]["delta"] if delta else None
        groups = {g["group"]: {"images": g["images"], "baseline_ap50": g["baseline"]["AP50"],
                               "candidate_ap50": g["candidate"]["AP50"]} for g in comp["groups"]}
        table.append({
            "kind": r["kind"], "version": r["report"]["candidate"]["version"],
            "images": r["report"]["images"],
            "baseline_ap50": comp["overall"]["baseline"]["AP50"], "candidate_ap50": comp["overall"]["candidate"]["AP50"],
            "delta_ap50": delta["ap50"] if delta else None, "delta_ap": delta["ap"] if delta else None,
            "verdict": comp["verdict"], "groups": groups,
            "model_ms": med[r["kind"]]["model_ms"], "total_ms": med[r["kind"]]["total_ms"],
            "model_ms_saved": med["parent"]["model_ms"] - med[r["kind"]]["model_ms"],
            "total_ms_saved": med["parent"]["total_ms"] - med[r["kind"]]["total_ms"],
            "load_ms": med[r["kind"]]["load_ms"],
            "size_bytes": json.loads((Path(r["dir"]) / "model.json").read_text())["size_bytes"],
            "ships": ships(loss, args.max_loss),
        })
    result = {"parent": str(parent), "data": args.data, "images_timed": images, "runs": args.runs,
              "rounds": args.rounds, "parent_ms": med["parent"], "max_ap50_loss": args.max_loss, "variants": table}
    (out / "variants.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [f"Parent: {parent} · labelled data: {args.data} · timed on {len(images)} images "
          f"(sum of per-image medians, {args.runs} runs × {args.rounds} rounds, one thread): "
          f"model {med['parent']['model_ms']:.1f} ms, end-to-end {med['parent']['total_ms']:.1f} ms, "
          f"load {med['parent']['load_ms']:.0f} ms",
          "",
          "| variant | images | AP50 parent | AP50 variant | ΔAP50 [95% interval] | ΔAP | model ms (saved) | end-to-end ms (saved) | load ms | MB | ships (loss ≤ "
          f"{args.max_loss}) |",
          "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---|"]
    for t in table:
        d = t["delta_ap50"]
        ds = f"{d['delta']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]" if d else "n/a"
        dap = f"{t['delta_ap']['delta']:+.3f}" if t["delta_ap"] else "n/a"
        md.append(f"| {t['kind']} | {t['images']} | {t['baseline_ap50']:.3f} | {t['candidate_ap50']:.3f} | {ds} | {dap} | "
                  f"{t['model_ms']:.1f} ({t['model_ms_saved']:+.1f}) | {t['total_ms']:.1f} ({t['total_ms_saved']:+.1f}) | "
                  f"{t['load_ms']:.0f} | {t['size_bytes'] / 1e6:.1f} | {'yes' if t['ships'] else 'no'} |")
    groups = sorted({g for t in table for g in t["groups"]})
    if groups:
        md += ["", "AP50 per group (parent → variant):", "",
               "| group | images | " + " | ".join(t["kind"] for t in table) + " |",
               "|---|---:|" + "---|" * len(table)]
        for g in groups:
            first = next(t["groups"][g] for t in table if g in t["groups"])
            cells = [f"{t['groups'][g]['baseline_ap50']:.3f} → {t['groups'][g]['candidate_ap50']:.3f}"
                     if g in t["groups"] else "" for t in table]
            md.append(f"| {g} | {first['images']} | " + " | ".join(cells) + " |")
    if args.push:
        for t in table:
            if t["ships"]:
                run([args.modelobs, "model", "push", t["dir"]])
                md.append(f"\npushed {t['version']} (`modelobs model push {t['dir']}`)")
            else:
                md.append(f"\nnot pushed: {t['version']} loses more than {args.max_loss} AP50")
    (out / "variants.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make", help="write OUT/optimized and OUT/int8")
    m.add_argument("parent", help="the parent's model directory (or model.json)")
    m.add_argument("out")
    m.add_argument("--calibration", nargs="+", default=[str(REPO / "datasets/animals"), str(REPO / "datasets/composites")],
                   help="COCO datasets whose --split images calibrate the int8 activations")
    m.add_argument("--split", default="train")
    m.add_argument("--calibration-images", type=int, default=128)
    m.add_argument("--seed", type=int, default=1)
    j = sub.add_parser("judge", help="backtest and time every variant; OUT/variants.{json,md}")
    j.add_argument("out")
    j.add_argument("--parent", default=str(REPO / "models/nanodet"))
    j.add_argument("--modelobs", required=True)
    j.add_argument("--data", required=True, help="labelled COCO dataset (e.g. modelobs dataset export's)")
    j.add_argument("--truth", help="the simulator's truth file: backtest groups by drift condition")
    j.add_argument("--images", nargs="*", help="images to time on (default: darknet's horses, giraffe, dog)")
    j.add_argument("--runs", type=int, default=20)
    j.add_argument("--rounds", type=int, default=3)
    j.add_argument("--replicates", type=int, default=1000)
    j.add_argument("--max-loss", type=float, default=0.01)
    j.add_argument("--push", action="store_true",
                   help="`modelobs model push` each variant that ships (DATA_BUCKET, AWS_ENDPOINT_URL)")
    args = ap.parse_args(argv)
    {"make": cmd_make, "judge": cmd_judge}[args.cmd](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
