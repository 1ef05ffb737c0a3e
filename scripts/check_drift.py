"""Does quality fall where the drift schedule says conditions change?

    python3 scripts/check_drift.py windows-day.json --drift clean:5,dark+blur+small:5

Reads the day windows (`modelobs metrics --granularity day --json`), groups the
days by phase of the schedule (in order of window start), and compares the
labelled-image-weighted mean AP50 of the first phase with each later one. Exits
non-zero unless every later phase is at least --min-drop below the first:
the demo's story, checked with numbers. Standard library only.
"""

import argparse
import json
import sys


def phases(spec):
    out = []
    for part in spec.split(","):
        name, days = part.rsplit(":", 1)
        out.append((name, int(days)))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("windows")
    ap.add_argument("--drift", required=True)
    ap.add_argument("--min-drop", type=float, default=0.05, help="absolute AP50 drop required")
    args = ap.parse_args()
    with open(args.windows) as f:
        windows = json.load(f)
    if isinstance(windows, dict):
        windows = windows.get("windows", [])
    days = sorted(
        (w for w in windows if w["window"]["granularity"] == "day" and w["images_labelled"] > 0),
        key=lambda w: w["window"]["start"],
    )
    if not days:
        sys.exit("check_drift: no labelled day windows")
    plan = phases(args.drift)
    if len(days) != sum(d for _, d in plan):
        print(f"check_drift: {len(days)} labelled day windows, schedule has {sum(d for _, d in plan)} days", file=sys.stderr)
    groups, i = [], 0
    for name, n in plan:
        chunk = days[i:i + n]
        i += n
        images = sum(w["images_labelled"] for w in chunk)
        ap50 = sum(w["coco"]["AP50"] * w["images_labelled"] for w in chunk) / images if images else float("nan")
        groups.append((name, len(chunk), images, ap50))
    print("check_drift: phase            days  images  AP50 (image-weighted)")
    for name, n, images, ap50 in groups:
        print(f"             {name:<18} {n:>4}  {images:>6}  {ap50:.3f}")
    base = groups[0][3]
    bad = [g for g in groups[1:] if not (g[3] <= base - args.min_drop)]
    if bad:
        sys.exit(f"check_drift: quality did not fall by {args.min_drop} after the shift: {bad}")
    print(f"check_drift: quality falls after the shift ({base:.3f} → " + ", ".join(f"{g[3]:.3f}" for g in groups[1:]) + ")")


if __name__ == "__main__":
    main()
