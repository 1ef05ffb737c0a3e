#!/usr/bin/env python3
"""Reference NanoDet pipeline: the behaviour the Rust detector must reproduce.

Everything model-specific (tensor names, input size, colour order, normalisation, resize
mode, strides, bins, thresholds, labels) is read from models/nanodet/model.json; this file
holds no model constants. See models/README.md for what each field means.

Stages (each timed separately by `Detector.detect_bytes`):

  decode       image bytes -> RGB pixels, EXIF orientation applied
  preprocess   resize (stretch or letterbox) -> channel order -> (pixel - mean) / std -> NCHW
  inference    onnxruntime, CPU
  postprocess  GFL decode (softmax over bins, expectation x stride, distances from the cell
               centre), score threshold, optional class filter, class-aware NMS, boxes mapped
               back to original pixels and clamped, top max_detections by score

CLI:
  python bench/inference/reference.py IMAGE... [--threads N] [--json] [--classes cat,dog]
With --json, one JSON object per image and per line, in argument order:
  {"image": {"width": W, "height": H},
   "detections": [{"label", "class_id", "score", "box": {"x1", "y1", "x2", "y2"}}]}
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL_JSON = REPO_ROOT / "models" / "nanodet" / "model.json"

_FILTERS = {"bilinear": Image.Resampling.BILINEAR, "nearest": Image.Resampling.NEAREST,
            "bicubic": Image.Resampling.BICUBIC}


# --------------------------------------------------------------------------- metadata

def load_meta(path: str | os.PathLike = DEFAULT_MODEL_JSON) -> dict:
    """Read model.json and check that it is internally consistent."""
    path = Path(path)
    meta = json.loads(path.read_text())
    meta["_dir"] = str(path.parent)
    inp, dec = meta["input"], meta["decode"]
    if inp["layout"] != "NCHW":
        raise ValueError(f"unsupported layout {inp['layout']}")
    if sorted(inp["channel_order"]) != ["B", "G", "R"]:
        raise ValueError(f"bad channel_order {inp['channel_order']}")
    if len(meta["labels"]) != dec["num_classes"]:
        raise ValueError("labels and num_classes disagree")
    for lvl in meta["outputs"]:
        if lvl["grid_width"] * lvl["stride"] != inp["width"] or lvl["grid_height"] * lvl["stride"] != inp["height"]:
            raise ValueError(f"grid/stride/input size disagree for stride {lvl['stride']}")
    return meta


def model_path(meta: dict) -> Path:
    return Path(meta["_dir"]) / meta["file"]


def verify_model_file(meta: dict) -> None:
    data = model_path(meta).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != meta["sha256"]:
        raise ValueError(f"{model_path(meta)}: sha256 {digest} != model.json {meta['sha256']}")


# --------------------------------------------------------------------------- stages

def decode_image(data: bytes) -> Image.Image:
    """Bytes -> 8-bit RGB image in display orientation (EXIF Orientation applied)."""
    img = Image.open(io.BytesIO(data))
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: keep the top 8 bits (PIL's convert("RGB") would clip instead)
        arr = np.asarray(img, dtype=np.uint32) >> 8
        img = Image.fromarray(arr.astype(np.uint8), "L")
    if img.mode != "RGB":
        # RGBA/LA/P with transparency: alpha is dropped (the colour channels are kept as-is)
        img = img.convert("RGB")
    return img


@dataclass
class Transform:
    """Where the original image landed inside the model input (for mapping boxes back)."""
    orig_w: int
    orig_h: int
    offset_x: int
    offset_y: int
    scaled_w: int
    scaled_h: int

    def to_original(self, boxes: np.ndarray) -> np.ndarray:
        """[N,4] x1,y1,x2,y2 in model-input pixels -> original pixels, clamped to the image."""
        out = np.empty_like(boxes)
        sx = self.orig_w / self.scaled_w
        sy = self.orig_h / self.scaled_h
        out[:, 0] = (boxes[:, 0] - self.offset_x) * sx
        out[:, 2] = (boxes[:, 2] - self.offset_x) * sx
        out[:, 1] = (boxes[:, 1] - self.offset_y) * sy
        out[:, 3] = (boxes[:, 3] - self.offset_y) * sy
        np.clip(out[:, 0::2], 0.0, float(self.orig_w), out=out[:, 0::2])
        np.clip(out[:, 1::2], 0.0, float(self.orig_h), out=out[:, 1::2])
        return out


def preprocess(img: Image.Image, meta: dict) -> tuple[np.ndarray, Transform]:
    """RGB image -> float32 [1,3,H,W] model input, plus the transform to map boxes back."""
    inp = meta["input"]
    W, H = inp["width"], inp["height"]
    rs = inp["resize"]
    w, h = img.size
    resample = _FILTERS[rs["filter"]]
    if not rs["antialias"]:
        raise ValueError("only antialiased (Pillow-style convolution) resizing is implemented")
    if rs["mode"] == "stretch":
        sw, sh, ox, oy = W, H, 0, 0
        canvas = img.resize((W, H), resample, reducing_gap=None)
    elif rs["mode"] == "letterbox":
        r = min(W / w, H / h)
        sw = min(W, max(1, math.floor(w * r + 0.5)))  # round half up (not Python's half-even)
        sh = min(H, max(1, math.floor(h * r + 0.5)))
        if rs["align"] == "center":
            ox, oy = (W - sw) // 2, (H - sh) // 2
        elif rs["align"] == "top_left":
            ox, oy = 0, 0
        else:
            raise ValueError(f"bad letterbox align {rs['align']}")
        canvas = Image.new("RGB", (W, H), tuple(int(v) for v in rs["pad_rgb"]))
        canvas.paste(img.resize((sw, sh), resample, reducing_gap=None), (ox, oy))
    else:
        raise ValueError(f"bad resize mode {rs['mode']}")

    x = np.asarray(canvas, dtype=np.float32)  # H,W,3 RGB, 0..255
    order = ["RGB".index(c) for c in inp["channel_order"]]
    if order != [0, 1, 2]:
        x = x[..., order]
    norm = inp["normalize"]
    mean = np.asarray(norm["mean"], np.float32)
    std = np.asarray(norm["std"], np.float32)
    x = (x - mean) / std
    x = np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)
    return x, Transform(w, h, ox, oy, sw, sh)


def make_session(meta: dict, threads: int = 1) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(model_path(meta)), so, providers=["CPUExecutionProvider"])


def infer(session: ort.InferenceSession, meta: dict, x: np.ndarray) -> dict[str, np.ndarray]:
    names = [n for lvl in meta["outputs"] for n in (lvl["cls"], lvl["reg"])]
    outs = session.run(names, {meta["input"]["name"]: x})
    return dict(zip(names, outs))


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def gfl_candidates(outputs: dict[str, np.ndarray], meta: dict, score_threshold: float,
                   class_ids: set[int] | None = None):
    """All (cell, class) pairs with score > threshold, decoded to boxes in model-input pixels.

    Returns boxes [N,4] float64 (x1,y1,x2,y2), scores [N], class ids [N], in the order
    level (as listed in model.json) -> cell (row-major) -> class.
    """
    dec = meta["decode"]
    bins = dec["reg_bins"]
    proj = np.arange(bins, dtype=np.float64)
    sides = dec["reg_side_order"]
    side_ix = [sides.index(s) for s in ("left", "top", "right", "bottom")]
    if dec["cell_order"] != "row_major":
        raise ValueError(f"bad cell_order {dec['cell_order']}")
    all_boxes, all_scores, all_cls = [], [], []
    for lvl in meta["outputs"]:
        stride, gw = lvl["stride"], lvl["grid_width"]
        cls = outputs[lvl["cls"]][0]
        reg = outputs[lvl["reg"]][0]
        if dec["cls_activation"] == "sigmoid":
            cls = _sigmoid(cls)
        elif dec["cls_activation"] != "none":
            raise ValueError(f"bad cls_activation {dec['cls_activation']}")
        mask = cls > score_threshold
        if class_ids is not None:
            keep_cls = np.zeros(cls.shape[1], bool)
            keep_cls[list(class_ids)] = True
            mask &= keep_cls[None, :]
        cell, cid = np.nonzero(mask)  # row-major over (cell, class)
        if cell.size == 0:
            continue
        logits = reg[cell].astype(np.float64).reshape(-1, 4, bins)
        logits -= logits.max(axis=2, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=2, keepdims=True)
        dist = (p @ proj) * stride  # [N,4] in the model's side order
        left, top, right, bottom = (dist[:, i] for i in side_ix)
        cx = (cell % gw + dec["cell_offset"]) * stride
        cy = (cell // gw + dec["cell_offset"]) * stride
        all_boxes.append(np.stack([cx - left, cy - top, cx + right, cy + bottom], axis=1))
        all_scores.append(cls[cell, cid].astype(np.float64))
        all_cls.append(cid)
    if not all_boxes:
        return np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=np.int64)
    return np.concatenate(all_boxes), np.concatenate(all_scores), np.concatenate(all_cls)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS: highest score first (ties: earlier candidate first); a box is dropped when
    its IoU with an already kept box is > iou_threshold. Returns kept indices in keep order."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes.T
    area = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        iw = np.maximum(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0)
        ih = np.maximum(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0)
        inter = iw * ih
        union = area[i] + area[rest] - inter
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def postprocess(outputs: dict[str, np.ndarray], meta: dict, tf: Transform,
                score_threshold: float | None = None, nms_iou: float | None = None,
                max_detections: int | None = None, class_ids: set[int] | None = None) -> list[dict]:
    pp = meta["postprocess"]
    thr = pp["score_threshold"] if score_threshold is None else score_threshold
    iou = pp["nms_iou"] if nms_iou is None else nms_iou
    top = pp["max_detections"] if max_detections is None else max_detections
    if pp["nms"] != "class_aware":
        raise ValueError(f"unsupported nms {pp['nms']}")

    boxes, scores, cls = gfl_candidates(outputs, meta, thr, class_ids)
    if scores.size == 0:
        return []
    boxes = tf.to_original(boxes)
    ok = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])  # empty after clamping
    boxes, scores, cls = boxes[ok], scores[ok], cls[ok]

    kept = []
    for c in np.unique(cls):
        idx = np.nonzero(cls == c)[0]
        kept.extend(idx[nms(boxes[idx], scores[idx], iou)])
    kept = np.asarray(kept, dtype=np.int64)
    # final order: score desc, ties by candidate order
    kept = kept[np.lexsort((kept, -scores[kept]))][:top]

    labels = meta["labels"]
    return [{
        "label": labels[int(cls[i])],
        "class_id": int(cls[i]),
        "score": round(float(scores[i]), 6),
        "box": {k: round(float(v), 3) for k, v in zip(("x1", "y1", "x2", "y2"), boxes[i])},
    } for i in kept]


def class_ids_from_names(meta: dict, spec: str | None) -> set[int] | None:
    """'cat,dog,16' -> {15, 16}; None/'' -> None (all classes)."""
    if not spec:
        return None
    out = set()
    for tok in (t.strip() for t in spec.split(",")):
        if not tok:
            continue
        if tok.isdigit():
            i = int(tok)
            if not 0 <= i < len(meta["labels"]):
                raise ValueError(f"class id {i} out of range")
            out.add(i)
        elif tok in meta["labels"]:
            out.add(meta["labels"].index(tok))
        else:
            raise ValueError(f"unknown class {tok!r}")
    return out


# --------------------------------------------------------------------------- detector

class Detector:
    """Load once, then `detect_bytes` per image. Used by the CLI and by benchmarks."""

    def __init__(self, model_json: str | os.PathLike = DEFAULT_MODEL_JSON, threads: int = 1,
                 verify_sha256: bool = True):
        self.meta = load_meta(model_json)
        if verify_sha256:
            verify_model_file(self.meta)
        self.session = make_session(self.meta, threads)

    def detect_bytes(self, data: bytes, class_ids: set[int] | None = None,
                     **overrides) -> tuple[dict, dict]:
        """Returns (result, timings_ms); result is the CLI's JSON object."""
        t0 = time.perf_counter()
        img = decode_image(data)
        t1 = time.perf_counter()
        x, tf = preprocess(img, self.meta)
        t2 = time.perf_counter()
        outs = infer(self.session, self.meta, x)
        t3 = time.perf_counter()
        dets = postprocess(outs, self.meta, tf, class_ids=class_ids, **overrides)
        t4 = time.perf_counter()
        result = {"image": {"width": tf.orig_w, "height": tf.orig_h}, "detections": dets}
        timings = {"decode": (t1 - t0) * 1e3, "preprocess": (t2 - t1) * 1e3,
                   "inference": (t3 - t2) * 1e3, "postprocess": (t4 - t3) * 1e3}
        return result, timings

    def detect_path(self, path: str | os.PathLike, **kw) -> tuple[dict, dict]:
        return self.detect_bytes(Path(path).read_bytes(), **kw)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("images", nargs="+")
    ap.add_argument("--model", default=str(DEFAULT_MODEL_JSON), help="model.json")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    ap.add_argument("--json", action="store_true", help="one JSON object per image per line")
    ap.add_argument("--classes", help="only these classes (names or ids, comma separated)")
    ap.add_argument("--score-threshold", type=float, help="override model.json")
    ap.add_argument("--nms-iou", type=float, help="override model.json")
    ap.add_argument("--max-detections", type=int, help="override model.json")
    ap.add_argument("--timings", action="store_true", help="per-stage milliseconds on stderr")
    args = ap.parse_args(argv)

    det = Detector(args.model, threads=args.threads)
    try:
        class_ids = class_ids_from_names(det.meta, args.classes)
    except ValueError as e:
        ap.error(str(e))
    overrides = {k: v for k, v in (("score_threshold", args.score_threshold),
                                   ("nms_iou", args.nms_iou),
                                   ("max_detections", args.max_detections)) if v is not None}
    for path in args.images:
        result, timings = det.detect_path(path, class_ids=class_ids, **overrides)
        if args.json:
            print(json.dumps(result), flush=True)
        else:
            im = result["image"]
            print(f"{path} ({im['width']}x{im['height']}): {len(result['detections'])} detections")
            for d in result["detections"]:
                b = d["box"]
                print(f"  {d['label']:>14s} ({d['class_id']:2d}) {d['score']:.3f}  "
                      f"[{b['x1']:.1f}, {b['y1']:.1f}, {b['x2']:.1f}, {b['y2']:.1f}]")
        if args.timings:
            print(f"{path}: " + " ".join(f"{k}={v:.2f}ms" for k, v in timings.items()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
