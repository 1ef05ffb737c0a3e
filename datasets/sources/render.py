"""Draws a dataset's boxes back onto its photos, to check them by eye.

    python render.py datasets/animals OUT_DIR [--grid 50] [--only FILE ...] [--proposals JSONL]

Each box gets its annotation id and class; --grid adds a labelled pixel grid (for reading
coordinates off the picture); --proposals draws `modelobs predict --json` lines (one per
image, in --only order) dashed, as a starting point when drawing new boxes.
"""

import argparse
import json
import os

from PIL import Image, ImageDraw

COLOURS = ["#ff2020", "#20ff20", "#2080ff", "#ffff20", "#ff20ff", "#20ffff", "#ff8000", "#ffffff"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset")
    ap.add_argument("out")
    ap.add_argument("--grid", type=int, default=0)
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--proposals")
    args = ap.parse_args()
    coco = json.load(open(os.path.join(args.dataset, "annotations.json")))
    names = {c["id"]: c["name"] for c in coco["categories"]}
    os.makedirs(args.out, exist_ok=True)
    files = args.only or [i["file_name"] for i in coco["images"]]
    proposals = {}
    if args.proposals:
        lines = [json.loads(line) for line in open(args.proposals)]
        proposals = dict(zip(files, lines))
    by_file = {i["file_name"]: i for i in coco["images"]}
    for f in files:
        im = Image.open(os.path.join(args.dataset, f)).convert("RGB")
        d = ImageDraw.Draw(im)
        if args.grid:
            for x in range(0, im.width, args.grid):
                d.line([(x, 0), (x, im.height)], fill=(255, 255, 255) if x % (2 * args.grid) == 0 else (160, 160, 160), width=1)
                d.text((x + 2, 2), str(x), fill="yellow")
            for y in range(0, im.height, args.grid):
                d.line([(0, y), (im.width, y)], fill=(255, 255, 255) if y % (2 * args.grid) == 0 else (160, 160, 160), width=1)
                d.text((2, y + 2), str(y), fill="yellow")
        for k, det in enumerate(proposals.get(f, {}).get("detections", [])):
            b = det["box"]
            c = COLOURS[k % len(COLOURS)]
            d.rectangle([b["x1"], b["y1"], b["x2"], b["y2"]], outline=c, width=1)
            d.text((b["x1"] + 3, b["y2"] - 12), f"p{k} {det['label']} {det['score']:.2f}", fill=c)
        img = by_file.get(f)
        if img:
            for k, a in enumerate(a for a in coco["annotations"] if a["image_id"] == img["id"]):
                x, y, w, h = a["bbox"]
                c = COLOURS[k % len(COLOURS)]
                d.rectangle([x, y, x + w, y + h], outline=c, width=3)
                d.text((x + 4, y + 4), f"{a['id']} {names.get(a['category_id'], a['category_id'])}", fill=c)
        im.save(os.path.join(args.out, os.path.splitext(f)[0] + ".png"))


if __name__ == "__main__":
    main()
