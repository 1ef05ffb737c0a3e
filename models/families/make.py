"""Small ONNX detectors of each family model.json can describe, with random weights,
their model.json, a test image and the detections a plain-numpy reference decode makes
of ONNX Runtime's raw outputs (models/README.md, "Other detector families").

Two stages, two interpreters (make.sh runs both):
  python3 make.py export OUT      Debian's python3-torch 1.13: builds and exports each graph
  venv/python make.py reference OUT   onnx + onnxruntime 1.32 (PyPI): metadata props,
                                      sha256, ONNX Runtime on the tensor, numpy decode
They cannot share one interpreter: torch 1.13 needs NumPy 1, the onnx and onnxruntime
wheels need NumPy 2.

Random weights test the decoding, not accuracy; biases are set so that every model
gives detections over its model.json threshold (the reference refuses fewer than
MIN_DETECTIONS, so the Rust test cannot pass on empty lists).
"""

import hashlib
import json
import sys
from pathlib import Path

COCO80 = ["person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
          "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
          "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack",
          "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball",
          "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket",
          "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
          "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
          "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse",
          "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
          "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier",
          "toothbrush"]
# The COCO-91 category id of each COCO-80 name (the TF Object Detection API label map).
COCO91_IDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24,
              25, 27, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49,
              50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74,
              75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90]
MIN_DETECTIONS = 5
SIZE = 320
YOLO_INPUT = {"name": "images", "width": SIZE, "height": SIZE, "layout": "NCHW",
              "dtype": "float32", "channel_order": "RGB",
              "resize": {"mode": "letterbox", "align": "center", "pad_rgb": [114, 114, 114],
                         "filter": "bilinear", "antialias": True},
              "normalize": {"mean": [0, 0, 0], "std": [255, 255, 255]}}

# Per family: model.json's input, outputs, decode and postprocess, and the test image
# size (the image needs no resize, so both sides build the same tensor without
# reimplementing Pillow's filter; the yolo images are letterboxed with a border).
FAMILIES = {
    "yolov5": {
        "image": (SIZE, 240),
        "input": YOLO_INPUT,
        "outputs": [{"name": "output0", "role": "predictions"}],
        "decode": {"type": "yolov5", "num_classes": 80},
        "postprocess": {"score_threshold": 0.68, "nms": "class_aware", "nms_iou": 0.45,
                        "max_detections": 100},
        "labels": COCO80,
    },
    "yolov8": {
        "image": (SIZE, 240),
        "input": YOLO_INPUT,
        "outputs": [{"name": "output0", "role": "predictions"}],
        "decode": {"type": "yolov8", "num_classes": 80},
        "postprocess": {"score_threshold": 0.64, "nms": "class_aware", "nms_iou": 0.7,
                        "max_detections": 100},
        # No labels: they come from the ONNX file's `names` metadata, as Ultralytics writes it.
    },
    "ssd": {
        "image": (SIZE, SIZE),
        "input": {**YOLO_INPUT, "name": "image_tensor",
                  "resize": {"mode": "stretch", "pad_rgb": [0, 0, 0], "filter": "bilinear",
                             "antialias": True},
                  "normalize": {"mean": [127.5, 127.5, 127.5], "std": [127.5, 127.5, 127.5]}},
        "outputs": [{"name": "detection_boxes", "role": "boxes"},
                    {"name": "detection_scores", "role": "scores"},
                    {"name": "detection_classes", "role": "classes"},
                    {"name": "num_detections", "role": "num_detections"}],
        "decode": {"type": "tf_od", "num_classes": 80, "label_ids": COCO91_IDS},
        "postprocess": {"score_threshold": 0.6, "nms": "none", "nms_iou": 0.5,
                        "max_detections": 100},
        "labels": COCO80,
    },
    "detr": {
        "image": (SIZE, SIZE),
        "input": {**YOLO_INPUT, "name": "pixel_values",
                  "resize": {"mode": "stretch", "pad_rgb": [0, 0, 0], "filter": "bilinear",
                             "antialias": True},
                  "normalize": {"mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375]}},
        "outputs": [{"name": "pred_logits", "role": "logits"},
                    {"name": "pred_boxes", "role": "boxes"}],
        "decode": {"type": "detr", "num_classes": 80, "class_activation": "softmax_no_object"},
        "postprocess": {"score_threshold": 0.64, "nms": "none", "nms_iou": 0.5,
                        "max_detections": 100},
        "labels": COCO80,
    },
    "rtdetr": {
        "image": (SIZE, SIZE),
        "input": {**YOLO_INPUT, "name": "images",
                  "resize": {"mode": "stretch", "pad_rgb": [0, 0, 0], "filter": "bilinear",
                             "antialias": True}},
        "outputs": [{"name": "pred_logits", "role": "logits"},
                    {"name": "pred_boxes", "role": "boxes"}],
        "decode": {"type": "detr", "num_classes": 80, "class_activation": "sigmoid"},
        "postprocess": {"score_threshold": 0.93, "nms": "none", "nms_iou": 0.5,
                        "max_detections": 100},
        "labels": COCO80,
    },
}


# ---------------------------------------------------------------- stage 1: torch export

def export(out: Path):
    import numpy as np
    import torch
    from PIL import Image
    from torch import nn

    torch.manual_seed(0)
    C = 80

    def backbone():
        # strides 8, 16, 32
        return nn.ModuleList([
            nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.SiLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.SiLU(),
                          nn.Conv2d(16, 16, 3, 2, 1), nn.SiLU()),
            nn.Sequential(nn.Conv2d(16, 16, 3, 2, 1), nn.SiLU()),
            nn.Sequential(nn.Conv2d(16, 16, 3, 2, 1), nn.SiLU()),
        ])

    def levels(bb, x):
        feats = []
        for stage in bb:
            x = stage(x)
            feats.append(x)
        return feats

    class YoloV5(nn.Module):
        """The v5 Detect head: per level na anchors, sigmoid, xy = (2s - 0.5 + grid) * stride,
        wh = (2s)^2 * anchor; [1, N, 5 + C] in input pixels."""
        anchors = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119],
                   [116, 90, 156, 198, 373, 326]]

        def __init__(self):
            super().__init__()
            self.bb = backbone()
            self.m = nn.ModuleList(nn.Conv2d(16, 3 * (5 + C), 1) for _ in range(3))
            for conv in self.m:
                b = conv.bias.data.view(3, 5 + C)
                b[:, 4] = torch.randn(3) * 0.5 + 1.0  # objectness
                b[:, 5:] = torch.randn(3, C) * 1.0 - 1.5

        def forward(self, x):
            z = []
            for i, f in enumerate(levels(self.bb, x)):
                stride = 8 * 2 ** i
                _, _, ny, nx = f.shape
                y = self.m[i](f).view(1, 3, 5 + C, ny, nx).permute(0, 1, 3, 4, 2).sigmoid()
                yv, xv = torch.meshgrid(torch.arange(ny), torch.arange(nx), indexing="ij")
                grid = torch.stack((xv, yv), 2).view(1, 1, ny, nx, 2).float()
                anchor = torch.tensor(self.anchors[i], dtype=torch.float32).view(1, 3, 1, 1, 2)
                xy = (y[..., 0:2] * 2 - 0.5 + grid) * stride
                wh = (y[..., 2:4] * 2) ** 2 * anchor
                z.append(torch.cat((xy, wh, y[..., 4:]), 4).view(1, -1, 5 + C))
            return torch.cat(z, 1)

    class YoloV8(nn.Module):
        """The v8/11 Detect head as Ultralytics exports it: DFL (softmax over 16 bins,
        expectation) inside the graph, anchors at cell centres, dist2bbox to cx, cy, w, h,
        times the stride; sigmoid classes; [1, 4 + C, N]."""
        reg_max = 16

        def __init__(self):
            super().__init__()
            self.bb = backbone()
            self.box = nn.ModuleList(nn.Conv2d(16, 4 * self.reg_max, 1) for _ in range(3))
            self.cls = nn.ModuleList(nn.Conv2d(16, C, 1) for _ in range(3))
            for conv in self.cls:
                conv.bias.data = torch.randn(C) * 1.0 - 1.5
                conv.bias.data[16] += 1.8  # some dogs, for the class-filter test

        def forward(self, x):
            boxes, scores, anchors, strides = [], [], [], []
            for i, f in enumerate(levels(self.bb, x)):
                stride = 8 * 2 ** i
                _, _, ny, nx = f.shape
                boxes.append(self.box[i](f).view(1, 4 * self.reg_max, -1))
                scores.append(self.cls[i](f).view(1, C, -1))
                yv, xv = torch.meshgrid(torch.arange(ny), torch.arange(nx), indexing="ij")
                anchors.append(torch.stack((xv, yv), 0).view(2, -1).float() + 0.5)
                strides.append(torch.full((1, ny * nx), float(stride)))
            box = torch.cat(boxes, 2)
            n = box.shape[2]
            dist = box.view(1, 4, self.reg_max, n).softmax(2)
            dist = (dist * torch.arange(self.reg_max, dtype=torch.float32).view(1, 1, -1, 1)).sum(2)
            anchor = torch.cat(anchors, 1).unsqueeze(0)
            lt, rb = dist[:, :2], dist[:, 2:]
            x1y1, x2y2 = anchor - lt, anchor + rb
            xywh = torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), 1) * torch.cat(strides, 1)
            return torch.cat((xywh, torch.cat(scores, 2).sigmoid()), 1)

    class Ssd(nn.Module):
        """TF Object Detection API outputs, post-NMS: N slots sorted by score, normalised
        ymin, xmin, ymax, xmax, float COCO-91 class ids (1..90, gaps included), and how
        many slots are valid."""
        slots = 20

        def __init__(self):
            super().__init__()
            self.bb = backbone()
            self.box = nn.Linear(16, self.slots * 4)
            self.score = nn.Linear(16, self.slots)
            self.cls = nn.Linear(16, self.slots * 90)
            self.score.bias.data += 0.5

        def forward(self, x):
            f = levels(self.bb, x)[-1].mean((2, 3))
            raw = self.box(f).view(1, self.slots, 2, 2).sigmoid()
            lo, hi = torch.minimum(raw[:, :, 0], raw[:, :, 1]), torch.maximum(raw[:, :, 0], raw[:, :, 1])
            boxes = torch.stack((lo[..., 1], lo[..., 0], hi[..., 1], hi[..., 0]), 2)  # y, x order
            scores, idx = self.score(f).sigmoid().sort(1, descending=True)
            boxes = boxes.gather(1, idx.unsqueeze(2).expand(1, self.slots, 4))
            classes = (self.cls(f).view(1, self.slots, 90).argmax(2) + 1).float().gather(1, idx)
            num = (scores > 0.2).sum(1).float()
            return boxes, scores, classes, num

    class Detr(nn.Module):
        """DETR-style set prediction: Q queries, class logits (C, plus a trailing
        no-object class when `no_object`), boxes as sigmoid normalised cx, cy, w, h."""
        queries = 30

        def __init__(self, no_object):
            super().__init__()
            self.bb = backbone()
            self.k = C + 1 if no_object else C
            self.query = nn.Parameter(torch.randn(self.queries, 16))
            self.logits = nn.Linear(16, self.k)
            self.boxes = nn.Linear(16, 4)
            if no_object:
                self.logits.weight.data *= 8
            else:
                self.logits.bias.data = torch.randn(C) * 1.0 - 1.0
                self.logits.bias.data[17] += 4.5  # some horses, for the class-filter test

        def forward(self, x):
            f = levels(self.bb, x)[-1].flatten(2).transpose(1, 2)  # [1, HW, 16]
            attn = (self.query.unsqueeze(0) @ f.transpose(1, 2)).softmax(2)  # [1, Q, HW]
            h = attn @ f + self.query.unsqueeze(0)
            b = self.boxes(h).sigmoid()
            b = torch.cat((b[..., :2], b[..., 2:] * 0.5), 2)
            return self.logits(h), b

    models = {
        "yolov5": (YoloV5(), ["output0"]),
        "yolov8": (YoloV8(), ["output0"]),
        "ssd": (Ssd(), ["detection_boxes", "detection_scores", "detection_classes", "num_detections"]),
        "detr": (Detr(True), ["pred_logits", "pred_boxes"]),
        "rtdetr": (Detr(False), ["pred_logits", "pred_boxes"]),
    }
    rng = np.random.default_rng(17)
    for family, (model, names) in models.items():
        spec = FAMILIES[family]
        d = out / family
        d.mkdir(parents=True, exist_ok=True)
        model.eval()
        with torch.no_grad():
            torch.onnx.export(model, torch.zeros(1, 3, SIZE, SIZE), str(d / "raw.onnx"),
                              input_names=[spec["input"]["name"]], output_names=names,
                              opset_version=17)
        w, h = spec["image"]
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack(((xx * 255 // w), (yy * 255 // h), ((xx + yy) * 255 // (w + h))), 2)
        noise = rng.integers(0, 64, size=(h, w, 3))
        pixels = ((base + noise) % 256).astype(np.uint8)
        Image.fromarray(pixels, "RGB").save(d / "image.png")
        np.save(d / "image.npy", pixels)


# ---------------------------------------------------------------- stage 2: reference

def reference(out: Path):
    import numpy as np
    import onnx
    import onnxruntime as ort

    for family, spec in FAMILIES.items():
        d = out / family
        model = onnx.load(str(d / "raw.onnx"))
        if family == "yolov8":
            names = {i: n for i, n in enumerate(COCO80)}
            for k, v in {"names": str(names), "stride": "32", "task": "detect",
                         "imgsz": f"[{SIZE}, {SIZE}]"}.items():
                model.metadata_props.add(key=k, value=v)
        onnx.save(model, str(d / "model.onnx"))
        (d / "raw.onnx").unlink()
        blob = (d / "model.onnx").read_bytes()
        meta = {"schema_version": 1, "name": f"family-{family}", "version": "random-weights",
                "file": "model.onnx", "sha256": hashlib.sha256(blob).hexdigest(),
                "size_bytes": len(blob), "input": spec["input"], "outputs": spec["outputs"],
                "decode": spec["decode"], "postprocess": spec["postprocess"]}
        if "labels" in spec:
            meta["labels"] = spec["labels"]
        (d / "model.json").write_text(json.dumps(meta, indent=1))

        rgb = np.load(d / "image.npy")  # the pixels stage 1 wrote as image.png
        h, w, _ = rgb.shape
        inp = spec["input"]
        W, H = inp["width"], inp["height"]
        # Placement (models/README.md step 2); the images need no resize.
        if inp["resize"]["mode"] == "letterbox":
            r = min(W / w, H / h)
            sw, sh = int(np.floor(w * r + 0.5)), int(np.floor(h * r + 0.5))
            ox, oy = (W - sw) // 2, (H - sh) // 2
        else:
            sw, sh, ox, oy = W, H, 0, 0
        assert (sw, sh) == (w, h), "the test image must need no resize"
        pad = np.array(inp["resize"]["pad_rgb"], np.uint8)
        canvas = np.tile(pad, (H, W, 1))
        canvas[oy:oy + h, ox:ox + w] = rgb
        order = {"R": 0, "G": 1, "B": 2}
        planes = [canvas[..., order[c]] for c in inp["channel_order"]]
        mean = np.array(inp["normalize"]["mean"], np.float32)
        std = np.array(inp["normalize"]["std"], np.float32)
        x = np.stack([(p.astype(np.float32) - mean[i]) / std[i] for i, p in enumerate(planes)])
        x = x[None].astype(np.float32)

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        sess = ort.InferenceSession(str(d / "model.onnx"), opts, providers=["CPUExecutionProvider"])
        outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {inp["name"]: x})))
        labels = spec.get("labels", COCO80)
        pp = spec["postprocess"]
        thr = np.float32(pp["score_threshold"])
        cands = []  # (box in input pixels, score f32, class index, order)
        dec = spec["decode"]
        role = {o["role"]: o["name"] for o in spec["outputs"]}
        if dec["type"] == "yolov5":
            p = outs[role["predictions"]][0]
            for i, row in enumerate(p):
                cls = row[5:] * row[4]  # float32 product, as the decoder
                k = int(np.argmax(cls))
                if cls[k] > thr:
                    cx, cy, bw, bh = (float(v) for v in row[:4])
                    cands.append(([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], cls[k], k, i))
        elif dec["type"] == "yolov8":
            p = outs[role["predictions"]][0].T
            for i, row in enumerate(p):
                k = int(np.argmax(row[4:]))
                if row[4 + k] > thr:
                    cx, cy, bw, bh = (float(v) for v in row[:4])
                    cands.append(([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], row[4 + k], k, i))
        elif dec["type"] == "tf_od":
            boxes, scores = outs[role["boxes"]][0], outs[role["scores"]][0]
            classes, num = outs[role["classes"]][0], int(outs[role["num_detections"]][0])
            ids = dec["label_ids"]
            for i in range(min(num, len(scores))):
                cid = int(classes[i])
                if scores[i] > thr and cid in ids:
                    y1, x1, y2, x2 = (float(v) for v in boxes[i])
                    cands.append(([x1 * W, y1 * H, x2 * W, y2 * H], scores[i], ids.index(cid), i))
        elif dec["type"] == "detr":
            logits = outs[role["logits"]][0].astype(np.float64)
            boxes = outs[role["boxes"]][0]
            for q in range(logits.shape[0]):
                cx, cy, bw, bh = (float(v) for v in boxes[q])
                box = [(cx - bw / 2) * W, (cy - bh / 2) * H, (cx + bw / 2) * W, (cy + bh / 2) * H]
                if dec["class_activation"] == "softmax_no_object":
                    e = np.exp(logits[q] - logits[q].max())
                    prob = (e / e.sum())[:-1]
                    k = int(np.argmax(prob))
                    if np.float32(prob[k]) > thr:
                        cands.append((box, np.float32(prob[k]), k, q))
                else:
                    for k in range(logits.shape[1]):
                        s = np.float32(1 / (1 + np.exp(-logits[q, k])))
                        if s > thr:
                            cands.append((box, s, k, q * logits.shape[1] + k))
        # Back to original pixels, clamp, drop empty (step 5).
        kept = []
        for box, s, k, i in cands:
            x1 = min(max((box[0] - ox) * w / sw, 0), w)
            y1 = min(max((box[1] - oy) * h / sh, 0), h)
            x2 = min(max((box[2] - ox) * w / sw, 0), w)
            y2 = min(max((box[3] - oy) * h / sh, 0), h)
            if x2 > x1 and y2 > y1:
                kept.append(([x1, y1, x2, y2], float(s), k, i))
        if pp["nms"] == "class_aware":
            def iou(a, b):
                iw = max(min(a[2], b[2]) - max(a[0], b[0]), 0)
                ih = max(min(a[3], b[3]) - max(a[1], b[1]), 0)
                inter = iw * ih
                union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
                return inter / union if union > 0 else 0
            survivors = []
            for k in sorted({c[2] for c in kept}):
                group = sorted((c for c in kept if c[2] == k), key=lambda c: (-c[1], c[3]))
                gone = [False] * len(group)
                for a in range(len(group)):
                    if gone[a]:
                        continue
                    survivors.append(group[a])
                    for b in range(a + 1, len(group)):
                        if not gone[b] and iou(group[a][0], group[b][0]) > pp["nms_iou"]:
                            gone[b] = True
            kept = survivors
        kept.sort(key=lambda c: (-c[1], c[3]))
        kept = kept[:pp["max_detections"]]
        assert len(kept) >= MIN_DETECTIONS, f"{family}: only {len(kept)} detections"
        expected = {"candidates": len(cands),
                    "detections": [{"class_id": k, "label": labels[k], "score": s, "bbox": b}
                                   for b, s, k, _ in kept]}
        (d / "expected.json").write_text(json.dumps(expected, indent=1))
        print(f"{family}: {len(cands)} candidates, {len(kept)} detections")


if __name__ == "__main__":
    stage, out = sys.argv[1], Path(sys.argv[2])
    {"export": export, "reference": reference}[stage](out)
