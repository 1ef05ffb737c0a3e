"""Fine-tunes the serving NanoDet on a COCO dataset and writes a model directory the Rust
detector loads unchanged.

    python train/finetune.py --data DIR --out DIR [--base models/nanodet] [--epochs 4] ...

DIR/annotations.json is COCO; images are found under DIR/images/ (the layout `modelobs dataset
export` writes) or beside annotations.json (datasets/animals). Images with a `split` field are
used when it is --split (default train); the rest are ignored. Only the ten animal classes are
trained: the other 70 class channels get no gradient, so what the model says about them moves
only as much as the shared layers move (with --train head they do not; the default fpn moves
the FPN's lateral convs).

How, in short: onnx2torch turns the ONNX graph into a PyTorch module with the same parameters.
Each image is augmented (mostly with a drift degradation of the capture: low light and noise,
defocus, farther away, or two of them; else flip, brightness/contrast, mild blur), letterboxed
as the detector does (model.json's input block, sometimes zoomed out), run forward, and scored
with NanoDet's Generalized Focal Loss against ATSS-assigned targets: Quality Focal Loss on the
class scores (target: the IoU of the predicted box), Distribution Focal Loss on the 11-bin side
distributions, GIoU on the decoded boxes. After each epoch AP50 on the validation split under the demo's conditions picks
the epoch to keep. The trained weights are written back into the original ONNX initializers
(same graph, same names), and model.json records parent, dataset hash, every training image's
sha256, settings, losses and validation scores.

Seeded: the same data, settings and seed give the same weights on the same machine and threads.
"""

import argparse
import copy
import hashlib
import io
import json
import math
import os
import random
import sys
import time

import numpy as np
import onnx
import torch
import torch.fx
from onnx import numpy_helper
from onnx2torch import convert
from PIL import Image, ImageEnhance, ImageFilter

ANIMALS = {16: "bird", 17: "cat", 18: "dog", 19: "horse", 20: "sheep", 21: "cow",
           22: "elephant", 23: "bear", 24: "zebra", 25: "giraffe"}
# Which parameters train. head: the three per-level heads (3x3 conv + 1x1 conv each); fpn: plus
# the FPN's lateral 1x1 convs; early+fpn: plus the stem and the first CSP stage (stride 2-4: where
# low light, noise and blur are first seen); all: everything. The backbone's layers (every one
# that is not a head or an FPN lateral) train at --backbone-lr-scale times the learning rate.
# (The graph has no BatchNorm: onnx2torch gets it already fused into the convs, so there are no
# running statistics to freeze.)
HEAD_CONVS = {"n103_Conv", "n105_Conv", "n116_Conv", "n117_Conv", "n119_Conv", "n129_Conv"}
FPN_CONVS = {"n047_Conv", "n068_Conv", "n097_Conv"}
EARLY_CONVS = {"n001_Conv", "n006_Conv", "n009_Conv", "n012_Conv", "n016_Conv"}


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------- data

def load_dataset(data_dir, split):
    """[(path, [(class_index, x1, y1, x2, y2)], image sha256)] for the split, plus the dataset's
    hash."""
    ann_path = os.path.join(data_dir, "annotations.json")
    coco = json.load(open(ann_path))
    images_dir = os.path.join(data_dir, "images")
    if not os.path.isdir(images_dir):
        images_dir = data_dir
    by_image = {}
    for a in coco["annotations"]:
        if a.get("iscrowd", 0):
            continue
        by_image.setdefault(a["image_id"], []).append(a)
    items = []
    digest = hashlib.sha256()
    for img in coco["images"]:
        if split != "all" and img.get("split", split) != split:
            continue
        path = os.path.join(images_dir, img["file_name"])
        boxes = []
        for a in by_image.get(img["id"], []):
            if a["category_id"] not in ANIMALS:
                continue
            x, y, w, h = a["bbox"]
            if w > 1 and h > 1:
                boxes.append((ANIMALS[a["category_id"]], x, y, x + w, y + h))
        image_sha = sha256_file(path)
        items.append((path, boxes, image_sha))
        digest.update(img["file_name"].encode())
        digest.update(image_sha.encode())
        digest.update(json.dumps(sorted((b for b in boxes)), sort_keys=True).encode())
    return items, digest.hexdigest()


def letterbox(image, boxes, spec, zoom=1.0):
    """The detector's letterbox (crates/detector/src/preprocess.rs), optionally zoomed out:
    returns the input tensor [3, H, W] and the boxes in input pixels."""
    inp = spec["input"]
    iw, ih = inp["width"], inp["height"]
    w, h = image.size
    r = min(iw / w, ih / h) * zoom
    sw, sh = max(1, int(math.floor(w * r + 0.5))), max(1, int(math.floor(h * r + 0.5)))
    if inp["resize"]["align"] == "center" and zoom == 1.0:
        ox, oy = (iw - sw) // 2, (ih - sh) // 2
    else:
        ox, oy = random.randint(0, iw - sw), random.randint(0, ih - sh)
    resized = image.resize((sw, sh), Image.BILINEAR)
    canvas = Image.new("RGB", (iw, ih), tuple(inp["resize"].get("pad_rgb", [0, 0, 0])))
    canvas.paste(resized, (ox, oy))
    arr = np.asarray(canvas, dtype=np.float32)
    order = {"RGB": [0, 1, 2], "BGR": [2, 1, 0]}[inp["channel_order"]]
    arr = arr[:, :, order]
    mean = np.array(inp["normalize"]["mean"], dtype=np.float32)
    std = np.array(inp["normalize"]["std"], dtype=np.float32)
    arr = (arr - mean) / std
    tensor = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
    out = [(c, x1 * r + ox, y1 * r + oy, x2 * r + ox, y2 * r + oy) for c, x1, y1, x2, y2 in boxes]
    return tensor, out


def augment(image, boxes, rng):
    """Flip, brightness/contrast, blur: the photometric and geometric changes production brings."""
    w, _ = image.size
    if rng.random() < 0.5:
        image = image.transpose(Image.FLIP_LEFT_RIGHT)
        boxes = [(c, w - x2, y1, w - x1, y2) for c, x1, y1, x2, y2 in boxes]
    if rng.random() < 0.8:
        image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.3, 1.3))
        image = ImageEnhance.Contrast(image).enhance(rng.uniform(0.6, 1.3))
    if rng.random() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.0)))
    return image, boxes


def low_light(image, rng):
    """Dusk on a cheap sensor: a twentieth to a third of the light (log-uniform), a little
    contrast change, then additive per-channel Gaussian sensor noise (sigma 2-10 grey levels)."""
    image = ImageEnhance.Contrast(image).enhance(rng.uniform(0.8, 1.2))
    arr = np.asarray(image, dtype=np.float32) * math.exp(rng.uniform(math.log(0.05), math.log(0.35)))
    noise = np.random.default_rng(rng.getrandbits(32)).normal(0.0, rng.uniform(2.0, 10.0), arr.shape)
    return Image.fromarray(np.clip(arr + noise, 0, 255).round().astype(np.uint8))


def far_away(image, boxes, rng):
    """The animals farther away: the picture shrunk to 1/1.5-1/3.5 of its size at a random
    place on a flat grey canvas of the original size (a wider view; the canvas colour is random
    mid grey)."""
    w, h = image.size
    f = 1.0 / rng.uniform(1.5, 3.5)
    sw, sh = max(1, round(w * f)), max(1, round(h * f))
    ox, oy = rng.randint(0, w - sw), rng.randint(0, h - sh)
    grey = rng.randint(70, 160)
    canvas = Image.new("RGB", (w, h), (grey, grey, grey))
    canvas.paste(image.resize((sw, sh), Image.BILINEAR), (ox, oy))
    sx, sy = sw / w, sh / h
    boxes = [(c, x1 * sx + ox, y1 * sy + oy, x2 * sx + ox, y2 * sy + oy) for c, x1, y1, x2, y2 in boxes]
    return canvas, [b for b in boxes if b[3] - b[1] >= 2 and b[4] - b[2] >= 2]


def defocus(image, rng, lo=2.0, hi=7.0):
    """Out of focus or a dirty lens: Gaussian blur, sigma in pixels of the captured image."""
    return image.filter(ImageFilter.GaussianBlur(rng.uniform(lo, hi)))


def recompress(image, rng):
    """The capture's JPEG encoding (quality 60-95)."""
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=rng.randint(60, 95))
    buf.seek(0)
    return Image.open(buf).convert("RGB")


DRIFT_KINDS = ("dark", "blur", "small", "blur+small", "dark+small", "dark+blur")


def drift(image, boxes, rng):
    """One of the degradations cameras drift into, applied to the captured image (before the
    detector's letterbox, as production captures carry them): low light with noise, defocus,
    the animals farther away, or two of them. Ranges are wide and random, not any one camera's."""
    kind = rng.choice(DRIFT_KINDS)
    if "small" in kind:
        image, boxes = far_away(image, boxes, rng)
    if "blur" in kind:
        image = defocus(image, rng)
    if "dark" in kind:
        image = low_light(image, rng)
    return recompress(image, rng), boxes


# ---------------------------------------------------------------- model and loss

class Levels:
    """Cell centres, strides and ATSS anchors of every output level, in output order."""

    def __init__(self, spec):
        centres, strides, level_of = [], [], []
        off = spec["decode"]["cell_offset"]
        for li, lvl in enumerate(spec["outputs"]):
            s, gw, gh = lvl["stride"], lvl["grid_width"], lvl["grid_height"]
            ys, xs = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
            c = torch.stack([(xs.reshape(-1) + off) * s, (ys.reshape(-1) + off) * s], 1).float()
            centres.append(c)
            strides.append(torch.full((gw * gh,), float(s)))
            level_of.append(torch.full((gw * gh,), li))
        self.centres = torch.cat(centres)
        self.strides = torch.cat(strides)
        self.level_of = torch.cat(level_of)
        self.n_levels = len(spec["outputs"])
        # ATSS anchors: a square of 5 strides around each cell centre (NanoDet's octave scale 5).
        half = self.strides[:, None] * 2.5
        self.anchors = torch.cat([self.centres - half, self.centres + half], 1)


def box_iou(a, b):
    """IoU matrix of boxes [N,4] x [M,4] (x1, y1, x2, y2)."""
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(2)
    return inter / (area_a[:, None] + area_b[None, :] - inter).clamp(min=1e-9)


def atss_assign(levels, gt, topk=9):
    """For each cell: the index of its assigned ground-truth box, or -1 (ATSS, Zhang et al. 2020)."""
    n = levels.centres.shape[0]
    assigned = torch.full((n,), -1, dtype=torch.long)
    if gt.shape[0] == 0:
        return assigned
    ious = box_iou(levels.anchors, gt)  # [N, G]
    gc = (gt[:, :2] + gt[:, 2:]) / 2
    dist = torch.cdist(levels.centres, gc)  # [N, G]
    candidates = []
    for li in range(levels.n_levels):
        idx = torch.nonzero(levels.level_of == li).squeeze(1)
        k = min(topk, idx.numel())
        candidates.append(idx[dist[idx].topk(k, dim=0, largest=False).indices])  # [k, G]
    cand = torch.cat(candidates, 0)  # [K, G]
    cand_iou = ious.gather(0, cand)
    thr = cand_iou.mean(0) + cand_iou.std(0)
    best = torch.full((n,), -1.0)
    for g in range(gt.shape[0]):
        c = cand[:, g]
        ok = cand_iou[:, g] >= thr[g]
        cx, cy = levels.centres[c, 0], levels.centres[c, 1]
        inside = (cx > gt[g, 0]) & (cx < gt[g, 2]) & (cy > gt[g, 1]) & (cy < gt[g, 3])
        for cell, iou in zip(c[ok & inside].tolist(), cand_iou[:, g][ok & inside].tolist()):
            if iou > best[cell]:
                best[cell] = iou
                assigned[cell] = g
    return assigned


def decode(levels, reg, bins):
    """Side distributions [N, 4*bins] -> boxes [N, 4] in input pixels, and the logits [N,4,bins]."""
    logits = reg.reshape(-1, 4, bins)
    proj = torch.arange(bins, dtype=reg.dtype)
    dist = (logits.softmax(-1) * proj).sum(-1) * levels.strides[:, None]  # [N, 4] l, t, r, b
    c = levels.centres
    boxes = torch.stack([c[:, 0] - dist[:, 0], c[:, 1] - dist[:, 1], c[:, 0] + dist[:, 2], c[:, 1] + dist[:, 3]], 1)
    return boxes, logits


def giou_loss(pred, target):
    iou = box_iou(pred, target).diagonal()
    lt = torch.min(pred[:, :2], target[:, :2])
    rb = torch.max(pred[:, 2:], target[:, 2:])
    hull = (rb - lt).clamp(min=0).prod(1)
    area_p = (pred[:, 2:] - pred[:, :2]).clamp(min=0).prod(1)
    area_t = (target[:, 2:] - target[:, :2]).clamp(min=0).prod(1)
    inter = iou * (area_p + area_t) / (1 + iou)
    union = area_p + area_t - inter
    return 1 - (iou - (hull - union) / hull.clamp(min=1e-9))


def gfl_loss(levels, cls, reg, gt_boxes, gt_classes, class_channels, bins, teacher=None):
    """(total, parts) of NanoDet's loss on one image. cls [N, 80] are probabilities (the graph
    ends in a sigmoid); only the animal channels are scored. With `teacher` (the parent
    model's probabilities on the same input), cells that are not positive for a class learn the
    parent's score for it instead of 0: the candidate keeps the parent's calibration and what it
    knew outside the labelled boxes, and moves where the labels say."""
    assigned = atss_assign(levels, gt_boxes)
    pos = torch.nonzero(assigned >= 0).squeeze(1)
    boxes, logits = decode(levels, reg, bins)
    p = cls[:, class_channels].clamp(1e-6, 1 - 1e-6)  # [N, 10]
    target = torch.zeros_like(p) if teacher is None else teacher[:, class_channels].clone()
    n_pos = max(pos.numel(), 1)
    if pos.numel():
        g = assigned[pos]
        quality = box_iou(boxes[pos].detach(), gt_boxes[g]).diagonal().clamp(min=0)
        # A positive cell: IoU quality for its class, 0 for the other animal classes.
        target[pos] = 0
        target[pos, gt_classes[g]] = quality
    # Quality Focal Loss (beta 2).
    bce = -(target * p.log() + (1 - target) * (1 - p).log())
    qfl = (bce * (p - target).abs().pow(2)).sum() / n_pos
    if not pos.numel():
        return qfl, {"qfl": qfl.item(), "dfl": 0.0, "giou": 0.0}
    weight = p[pos].detach().max(1).values
    wsum = weight.sum().clamp(min=1e-6)
    giou = (giou_loss(boxes[pos], gt_boxes[g]) * weight).sum() / wsum * 2.0
    # Distribution Focal Loss: the side distances in strides, between two bins.
    c = levels.centres[pos]
    s = levels.strides[pos][:, None]
    t = torch.stack([c[:, 0] - gt_boxes[g, 0], c[:, 1] - gt_boxes[g, 1],
                     gt_boxes[g, 2] - c[:, 0], gt_boxes[g, 3] - c[:, 1]], 1) / s
    t = t.clamp(0, bins - 1 - 0.01)
    left = t.floor().long()
    wl, wr = left.float() + 1 - t, t - left.float()
    logp = logits[pos].log_softmax(-1)
    dfl = -(logp.gather(2, left[..., None]).squeeze(2) * wl + logp.gather(2, (left + 1)[..., None]).squeeze(2) * wr)
    dfl = (dfl.mean(1) * weight).sum() / wsum * 0.25
    total = qfl + giou + dfl
    return total, {"qfl": qfl.item(), "dfl": dfl.item(), "giou": giou.item()}


def with_teacher(net, trainable):
    """One GraphModule that returns (student outputs, teacher outputs): the layers upstream of every
    trainable one are shared (computed once), the rest runs twice, the second time with frozen
    copies of the trainable modules (the parent's weights)."""
    g = net.graph
    new = torch.fx.Graph()
    root = torch.nn.Module()
    for name, mod in net.named_children():
        root.add_module(name, mod)
    env, tenv = {}, {}
    tainted = set()
    for n in g.nodes:
        if n.op == "output":
            out = n.args[0]
            s = torch.fx.node.map_arg(out, lambda a: env[a])
            t = torch.fx.node.map_arg(out, lambda a: tenv.get(a, env[a]))
            new.output((s, t))
            continue
        env[n] = new.node_copy(n, lambda a: env[a])
        deps = [a for a in n.all_input_nodes if a in tainted]
        is_train = n.op == "call_module" and n.target in trainable
        if is_train or deps:
            tainted.add(n)
            tn = new.node_copy(n, lambda a: tenv.get(a, env[a]))
            if is_train:
                tname = "teacher_" + n.target
                if not hasattr(root, tname):
                    frozen = copy.deepcopy(getattr(net, n.target))
                    for p in frozen.parameters():
                        p.requires_grad_(False)
                    root.add_module(tname, frozen)
                tn.target = tname
            tenv[n] = tn
    return torch.fx.GraphModule(root, new)


def gather(outs, spec):
    """The graph's six outputs as (cls [N, 80], reg [N, 44]) over all levels."""
    names = [o.name for o in spec["_onnx_outputs"]]
    by_name = dict(zip(names, outs))
    cls = torch.cat([by_name[lvl["cls"]][0] for lvl in spec["outputs"]], 0)
    reg = torch.cat([by_name[lvl["reg"]][0] for lvl in spec["outputs"]], 0)
    return cls, reg


def forward(net, x, spec):
    """(cls, reg) of the student, and the teacher's cls (None without distillation)."""
    outs = net(x[None])
    if isinstance(outs, tuple) and len(outs) == 2 and isinstance(outs[0], (tuple, list)):
        cls, reg = gather(outs[0], spec)
        t_cls, _ = gather(outs[1], spec)
        return cls, reg, t_cls.detach()
    cls, reg = gather(outs, spec)
    return cls, reg, None


# ---------------------------------------------------------------- validation

def demo_condition(image, boxes, condition, rng):
    """The demo's drift conditions as crates/dataset/src/drift.rs draws them (for scoring on the
    validation split only): clean (scale 0.8-1, JPEG 80-95), dark (a tenth to a fifth of the
    light, noise sigma 4-8) and blur+small (grey borders that shrink the animals to a half to a
    third, then blur sigma 4-6), each ending in a JPEG."""
    quality = 90
    if condition == "clean":
        f = rng.uniform(0.8, 1.0)
        w, h = image.size
        image = image.resize((max(1, round(w * f)), max(1, round(h * f))), Image.BILINEAR)
        boxes = [(c, x1 * f, y1 * f, x2 * f, y2 * f) for c, x1, y1, x2, y2 in boxes]
        quality = rng.randint(80, 95)
    elif condition == "dark":
        arr = np.asarray(image, dtype=np.float32) * rng.uniform(0.1, 0.18)
        noise = np.random.default_rng(rng.getrandbits(32)).normal(0.0, rng.uniform(4.0, 8.0), arr.shape)
        image = Image.fromarray(np.clip(arr + noise, 0, 255).round().astype(np.uint8))
    elif condition == "blur+small":
        p, ux, uy = rng.uniform(0.5, 1.0), rng.random(), rng.random()
        w, h = image.size
        l, t = round(2 * p * ux * w), round(2 * p * uy * h)
        nw, nh = w + l + round(2 * p * (1 - ux) * w), h + t + round(2 * p * (1 - uy) * h)
        canvas = Image.new("RGB", (nw, nh), (114, 114, 114))
        canvas.paste(image, (l, t))
        f = 1.0 / (1.0 + 2.0 * p)
        sw, sh = max(1, round(nw * f)), max(1, round(nh * f))
        image = canvas.resize((sw, sh), Image.BILINEAR).filter(ImageFilter.GaussianBlur(rng.uniform(4.0, 6.0)))
        sx, sy = sw / nw, sh / nh
        boxes = [(c, (x1 + l) * sx, (y1 + t) * sy, (x2 + l) * sx, (y2 + t) * sy) for c, x1, y1, x2, y2 in boxes]
    else:
        raise ValueError(condition)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB"), boxes


def detect(net, x, spec, levels, class_channels, bins):
    """The Rust detector's postprocess on one input: (class, score, box) over the animal classes,
    score > threshold, class-aware NMS, at most max_detections; boxes in input pixels."""
    post = spec["postprocess"]
    with torch.no_grad():
        cls, reg, _ = forward(net, x.to(levels.centres.device), spec)
    scores = cls[:, class_channels]
    boxes, _ = decode(levels, reg, bins)
    out = []
    for k in range(len(class_channels)):
        keep = torch.nonzero(scores[:, k] > post["score_threshold"]).squeeze(1)
        if not keep.numel():
            continue
        b, s = boxes[keep], scores[keep, k]
        order = s.argsort(descending=True)
        b, s = b[order], s[order]
        alive = torch.ones(len(s), dtype=torch.bool)
        ious = box_iou(b, b)
        for i in range(len(s)):
            if alive[i]:
                alive[i + 1:] &= ~(ious[i, i + 1:] > post["nms_iou"])
                out.append((k, s[i].item(), b[i].tolist()))
    out.sort(key=lambda d: -d[1])
    return out[:post["max_detections"]]


def ap50(dets, gts, n_classes):
    """COCO-style AP at IoU 0.5 (101-point), averaged over the classes that have boxes.
    dets: [(image, class, score, box)], gts: {image: [(class, box)]}."""
    aps = []
    for k in range(n_classes):
        gt_k = {i: np.array([b for c, b in g if c == k], dtype=np.float64).reshape(-1, 4) for i, g in gts.items()}
        n_gt = sum(len(v) for v in gt_k.values())
        if not n_gt:
            continue
        used = {i: np.zeros(len(v), dtype=bool) for i, v in gt_k.items()}
        tp = []
        for i, c, s, b in sorted((d for d in dets if d[1] == k), key=lambda d: -d[2]):
            g = gt_k[i]
            if not len(g):
                tp.append(False)
                continue
            iw = (np.minimum(g[:, 2], b[2]) - np.maximum(g[:, 0], b[0])).clip(min=0)
            ih = (np.minimum(g[:, 3], b[3]) - np.maximum(g[:, 1], b[1])).clip(min=0)
            inter = iw * ih
            union = (g[:, 2] - g[:, 0]) * (g[:, 3] - g[:, 1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
            iou = np.where(used[i], -1.0, inter / np.maximum(union, 1e-9))
            j = int(iou.argmax())
            hit = iou[j] >= 0.5
            if hit:
                used[i][j] = True
            tp.append(hit)
        ctp = np.cumsum(np.array(tp, dtype=np.float64))
        recall = ctp / n_gt
        precision = ctp / np.arange(1, len(tp) + 1)
        precision = np.maximum.accumulate(precision[::-1])[::-1] if len(tp) else precision
        idx = np.searchsorted(recall, np.linspace(0, 1, 101), side="left")
        aps.append(float(np.where(idx < len(precision), precision[np.minimum(idx, len(precision) - 1)], 0.0).sum()
                         / 101) if len(tp) else 0.0)
    return float(np.mean(aps)) if aps else 0.0


VAL_CONDITIONS = ("clean", "dark", "blur+small")


def validate(net, items, spec, levels, class_channels, bins, draws=2, seed=2026, conditions=VAL_CONDITIONS):
    """AP50 per demo condition on the validation items (the same draws at every call)."""
    result, names = {}, list(ANIMALS.values())
    for condition in conditions:
        rng = random.Random(seed)
        dets, gts = [], {}
        for i, (path, boxes, _) in enumerate(items):
            for d in range(draws):
                image, b = demo_condition(Image.open(path).convert("RGB"), boxes, condition, rng)
                x, b = letterbox(image, b, spec)
                key = (i, d)
                gts[key] = [(names.index(c), list(bb)) for c, *bb in b]
                dets += [(key, k, s, bx) for k, s, bx in detect(net, x, spec, levels, class_channels, bins)]
        result[condition] = ap50(dets, gts, len(class_channels))
    return result


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, action="append",
                    help="COCO dataset directory (annotations.json, images/); repeat to train on several")
    ap.add_argument("--out", required=True, help="the model directory to write")
    ap.add_argument("--base", default="models/nanodet", help="the model to start from (its directory)")
    ap.add_argument("--split", default="train", help="images of this split (or all)")
    ap.add_argument("--epochs", type=float, default=4)
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many optimizer steps (0: no limit)")
    ap.add_argument("--batch", type=int, default=8, help="images per optimizer step (gradients accumulated)")
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--train", choices=["head", "fpn", "early+fpn", "all"], default="fpn",
                    help="which layers train: the heads; plus the FPN's lateral convs; plus the stem and "
                         "first backbone stage; everything")
    ap.add_argument("--backbone-lr-scale", type=float, default=0.05,
                    help="the backbone's layers (early+fpn, all) train at this times --lr (plain SGD)")
    ap.add_argument("--backbone-step", type=float, default=0.0,
                    help="instead of --backbone-lr-scale: every backbone tensor's gradient is rescaled to the "
                         "tensor's own norm before the step, and the step is this (on the same schedule), so "
                         "each layer moves about this fraction of its weights per step whatever its gradient's "
                         "size (layer-wise trust ratio, as LARS); 0: off")
    ap.add_argument("--zoom-out", type=float, default=0.3, help="chance of placing an image smaller in the input")
    ap.add_argument("--drift", type=float, default=0.8,
                    help="chance that an image gets a drift degradation (low light + noise, defocus, "
                         "farther away, or two of them) instead of the mild augmentation")
    ap.add_argument("--no-augment", action="store_true")
    ap.add_argument("--no-distill", action="store_true",
                    help="score every unlabelled cell against 0, not against the parent's score")
    ap.add_argument("--val-split", default="validation",
                    help="after each epoch, score AP50 on this split of the same datasets under the demo's "
                         "conditions and keep the best epoch ('none': keep the last)")
    ap.add_argument("--val-draws", type=int, default=1, help="draws per validation image and condition")
    ap.add_argument("--val-conditions", default=",".join(VAL_CONDITIONS),
                    help="comma-separated demo conditions to validate under (of %(default)s); 'clean' alone "
                         "when the data are captures that already carry their drift (modelobs dataset export), "
                         "so that validation does not drift them twice")
    ap.add_argument("--min-share", type=float, default=0.25,
                    help="repeat each smaller --data dataset until it is about this share of an epoch (0: never)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1,
                    help="PyTorch threads (1 is fastest on 2 busy cores: ~0.25 s per image)")
    ap.add_argument("--device", default="auto", help="cpu, cuda, or auto (cuda when available)")
    ap.add_argument("--version", help="the new model version (default: ft-<dataset hash>-s<seed>)")
    args = ap.parse_args()
    val_conditions = tuple(c.strip() for c in args.val_conditions.split(",") if c.strip())
    if not val_conditions or any(c not in VAL_CONDITIONS for c in val_conditions):
        ap.error(f"--val-conditions: a comma-separated subset of {','.join(VAL_CONDITIONS)}")

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))

    base_json = os.path.join(args.base, "model.json")
    spec = json.load(open(base_json))
    onnx_path = os.path.join(args.base, spec["file"])
    model = onnx.load(onnx_path)
    spec["_onnx_outputs"] = list(model.graph.output)
    labels = spec["labels"]
    class_channels = [labels.index(name) for name in ANIMALS.values()]
    class_of = {name: i for i, name in enumerate(ANIMALS.values())}
    bins = spec["decode"]["reg_bins"]
    levels = Levels(spec)

    loaded, hashes = [], []
    for d in args.data:
        more, h = load_dataset(d, args.split)
        loaded.append(more)
        hashes.append(h)
    # A small dataset beside a large one (17 photos beside 200 composites) is repeated until it is
    # about --min-share of an epoch, so that it is not drowned out.
    total = sum(len(m) for m in loaded)
    repeats = [max(1, math.ceil(args.min_share * (total - len(m)) / ((1 - args.min_share) * len(m)) - 1e-9))
               if m and len(loaded) > 1 and args.min_share > 0 else 1 for m in loaded]
    items = [it for m, r in zip(loaded, repeats) for it in m * r]
    data_hash = hashlib.sha256("".join(hashes).encode()).hexdigest() if len(hashes) > 1 else hashes[0]
    if not items:
        sys.exit(f"finetune: no images on split {args.split!r} in {args.data}")
    n_boxes = sum(len(b) for _, b, _ in items)
    val_items = []
    if args.val_split != "none" and args.split != "all":
        for d, r in zip(args.data, repeats):
            val_items += load_dataset(d, args.val_split)[0] * r
    print(f"finetune: {len(items)} images, {n_boxes} boxes ({args.split}), dataset {data_hash[:12]}, "
          f"device {device}, {args.threads} threads", file=sys.stderr)

    net = convert(model)
    trainable = {"head": HEAD_CONVS, "fpn": HEAD_CONVS | FPN_CONVS, "early+fpn": HEAD_CONVS | FPN_CONVS | EARLY_CONVS,
                 "all": {n for n, m in net.named_children() if any(True for _ in m.parameters())}}[args.train]
    params, backbone_params = [], []
    for name, p in net.named_parameters():
        module = name.rsplit(".", 1)[0]
        keep = module in trainable
        p.requires_grad_(keep)
        if keep:
            (params if module in HEAD_CONVS | FPN_CONVS else backbone_params).append(p)
    # Distillation needs the parent's scores on the same input: the parent's frozen copies of
    # the trained layers run beside them in the same graph, on the shared frozen layers'
    # features (one backbone pass, not two).
    runner = (net if args.no_distill else with_teacher(net, trainable)).to(device)
    runner.train()
    print(f"finetune: training {sum(p.numel() for p in params + backbone_params)} of "
          f"{sum(p.numel() for p in net.parameters())} parameters ({args.train}; "
          f"{sum(p.numel() for p in backbone_params)} of them in the backbone at lr x {args.backbone_lr_scale:g})",
          file=sys.stderr)
    # SGD, not Adam: near the parent's optimum Adam's sign-like first steps (lr on every one of
    # the ~0.5 M weights alike) raised the loss even on one fixed image; SGD steps follow the
    # gradient's size.
    # The backbone at a fraction of the heads' rate: it holds what the parent knows about every class,
    # and at the heads' rate it was wrecked within an epoch (train/README.md, run D).
    # The gradient's size relative to the weights differs 2000-fold between the stem (|g|/|w| about 3
    # on 16 drifted images) and the heads' 3x3 conv (0.0013): one rate for all cannot suit both,
    # hence --backbone-step.
    groups = [{"params": params, "lr": args.lr}]
    if backbone_params:
        groups.append({"params": backbone_params, "lr": args.backbone_step, "weight_decay": 0.0} if args.backbone_step > 0
                      else {"params": backbone_params, "lr": args.lr * args.backbone_lr_scale})
    opt = torch.optim.SGD(groups, lr=args.lr, momentum=0.9, weight_decay=1e-4)
    steps = math.ceil(len(items) * args.epochs / args.batch)
    if args.max_steps:
        steps = min(steps, args.max_steps)
    warmup = min(20, max(1, steps // 10))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    rng = random.Random(args.seed)
    order = []
    history = []
    t0 = time.time()
    levels_dev = copy.copy(levels)
    for attr in ("centres", "strides", "level_of", "anchors"):
        setattr(levels_dev, attr, getattr(levels, attr).to(device))
    steps_per_epoch = math.ceil(len(items) / args.batch)
    validation, best = [], None
    for step in range(steps):
        opt.zero_grad()
        parts_sum = {"loss": 0.0, "qfl": 0.0, "dfl": 0.0, "giou": 0.0}
        for _ in range(args.batch):
            if not order:
                order = list(range(len(items)))
                rng.shuffle(order)
            path, boxes, _ = items[order.pop()]
            image = Image.open(path).convert("RGB")
            if not args.no_augment:
                if rng.random() < args.drift:
                    image, boxes = drift(image, boxes, rng)
                    if rng.random() < 0.5:
                        image = image.transpose(Image.FLIP_LEFT_RIGHT)
                        w = image.size[0]
                        boxes = [(c, w - x2, y1, w - x1, y2) for c, x1, y1, x2, y2 in boxes]
                else:
                    image, boxes = augment(image, boxes, rng)
            zoom = rng.uniform(0.35, 1.0) if (not args.no_augment and rng.random() < args.zoom_out) else 1.0
            x, boxes = letterbox(image, boxes, spec, zoom)
            gt = torch.tensor([b[1:] for b in boxes], dtype=torch.float32).reshape(-1, 4).to(device)
            gc = torch.tensor([class_of[b[0]] for b in boxes], dtype=torch.long).to(device)
            x = x.to(device)
            cls, reg, t_cls = forward(runner, x, spec)
            loss, parts = gfl_loss(levels_dev, cls, reg, gt, gc, class_channels, bins, t_cls)
            (loss / args.batch).backward()
            parts_sum["loss"] += loss.item() / args.batch
            for k, v in parts.items():
                parts_sum[k] += v / args.batch
        if args.backbone_step > 0:
            for p in backbone_params:
                if p.grad is not None:
                    g, w = p.grad.norm(), p.detach().norm()
                    if g > 0 and w > 0:
                        p.grad.mul_(w / g)
        opt.step()
        sched.step()
        history.append(parts_sum)
        if step % 10 == 0 or step == steps - 1:
            print(f"finetune: step {step + 1}/{steps} loss {parts_sum['loss']:.4f} (qfl {parts_sum['qfl']:.4f} "
                  f"dfl {parts_sum['dfl']:.4f} giou {parts_sum['giou']:.4f}) {time.time() - t0:.0f}s", file=sys.stderr)
        if val_items and ((step + 1) % steps_per_epoch == 0 or step == steps - 1):
            ap = validate(runner, val_items, spec, levels_dev, class_channels, bins, args.val_draws,
                          conditions=val_conditions)
            score = sum(ap.values()) / len(ap)
            validation.append({"step": step + 1, "epoch": round((step + 1) * args.batch / len(items), 2),
                               **{k: round(v, 4) for k, v in ap.items()}, "mean": round(score, 4)})
            print(f"finetune: validation after step {step + 1}: " +
                  " ".join(f"{k} {v:.3f}" for k, v in ap.items()) + f" (mean {score:.3f}) {time.time() - t0:.0f}s",
                  file=sys.stderr)
            if best is None or score > best[0]:
                best = (score, step + 1, {k: v.detach().clone() for k, v in net.state_dict().items()})
    if best is not None:
        net.load_state_dict(best[2])
        print(f"finetune: keeping step {best[1]} (validation mean AP50 {best[0]:.3f})", file=sys.stderr)

    # Back into the original graph: each Conv module's weight and bias replace the node's
    # initializers (onnx2torch names modules after the nodes), so graph, names and size stay.
    state = {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}
    inits = {i.name: i for i in model.graph.initializer}
    changed = 0
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        for suffix, inp in (("weight", node.input[1]), ("bias", node.input[2] if len(node.input) > 2 else None)):
            key = f"{node.name}.{suffix}"
            if inp is None or key not in state:
                continue
            old = inits[inp]
            new = state[key].astype(numpy_helper.to_array(old).dtype)
            if not np.array_equal(new, numpy_helper.to_array(old)):
                changed += 1
            old.CopyFrom(numpy_helper.from_array(new, inp))
    os.makedirs(args.out, exist_ok=True)
    out_onnx = os.path.join(args.out, spec["file"])
    onnx.save(model, out_onnx)

    parent = {k: spec[k] for k in ("name", "version", "sha256")}
    del spec["_onnx_outputs"]
    spec["version"] = args.version or f"ft-{data_hash[:10]}-s{args.seed}"
    spec["sha256"] = sha256_file(out_onnx)
    spec["size_bytes"] = os.path.getsize(out_onnx)
    spec["parent"] = parent
    spec["dataset"] = {"paths": [os.path.abspath(d) for d in args.data], "split": args.split, "sha256": data_hash,
                       "images": len(items), "boxes": n_boxes, "repeats": repeats,
                       # What the candidate saw: the backtest must not judge it on these images.
                       "images_sha256": sorted({sha for _, _, sha in items})}
    spec["training"] = {
        "trainer": "train/finetune.py (GFL: QFL + DFL + GIoU, ATSS)", "train": args.train,
        "epochs": args.epochs, "steps": steps, "batch": args.batch, "lr": args.lr, "optimizer": "SGD(momentum 0.9)",
        **(({"backbone_step": args.backbone_step} if args.backbone_step > 0 else
            {"backbone_lr_scale": args.backbone_lr_scale}) if backbone_params else {}),
        "augment": not args.no_augment, "zoom_out": args.zoom_out, "drift": args.drift, "distill": not args.no_distill,
        "seed": args.seed,
        "device": str(device), "threads": args.threads, "torch": torch.__version__,
        "seconds": round(time.time() - t0, 1), "tensors_changed": changed,
        "validation": {"split": args.val_split, "images": len(val_items), "draws": args.val_draws,
                       "conditions": list(val_conditions), "kept_step": best[1], "epochs": validation}
        if best is not None else None,
        "loss_first": round(history[0]["loss"], 5), "loss_last": round(history[-1]["loss"], 5),
    }
    with open(os.path.join(args.out, "model.json"), "w") as f:
        json.dump(spec, f, indent=2)
        f.write("\n")
    print(f"finetune: wrote {args.out} (version {spec['version']}, {changed} tensors changed, "
          f"loss {history[0]['loss']:.4f} -> {history[-1]['loss']:.4f}, {time.time() - t0:.0f}s)", file=sys.stderr)


if __name__ == "__main__":
    main()
