"""What the label-free side saw of a drift schedule, in numbers (issue 16).

    python3 scripts/check_label_free.py windows-hour.json windows-day.json \
        --drift clean:5,dark:3,blur+small:2 --start 2026-11-20 [--version V] [--ap50-threshold 0.5]

Reads `modelobs metrics --json` of hour and day windows and prints, per phase:
the hours that alerted, and for each change of condition the first alerting
hour after it (its delay) and its lead over the measured-AP50 alarm (two
consecutive day windows under the threshold, as template.yaml's AP50Alarm;
it can fire at the end of the second such day at the earliest, and only once
those days are labelled). Then false alarms in the first phase when it is
clean, and the AP50 estimate's error on day windows (leave-one-out, from the
calibration, and the estimate against the measured AP50 of every labelled
day). Exits non-zero when no window carries a drift report (no reference) or
when --require-alert-within-h is given and a change was not seen in time.
Standard library only.
"""

import argparse
import datetime as dt
import json
import sys


def phases(spec, start):
    out, t = [], start
    for part in spec.split(","):
        name, days = part.rsplit(":", 1)
        end = t + dt.timedelta(days=int(days))
        out.append((name, t, end))
        t = end
    return out


def parse_time(s):
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


def load(path, version):
    with open(path) as f:
        ws = json.load(f)
    return sorted(
        (w for w in ws if version is None or w["model"]["version"] == version),
        key=lambda w: w["window"]["start"],
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("hours")
    ap.add_argument("days")
    ap.add_argument("--drift", required=True)
    ap.add_argument("--start", required=True, help="first simulated day (UTC date)")
    ap.add_argument("--version")
    ap.add_argument("--ap50-threshold", type=float, default=0.5)
    ap.add_argument("--require-alert-within-h", type=float)
    args = ap.parse_args()
    start = dt.datetime.fromisoformat(args.start).replace(tzinfo=dt.timezone.utc)
    sched = phases(args.drift, start)
    hours = load(args.hours, args.version)
    days = load(args.days, args.version)
    tested = [w for w in hours if w.get("drift")]
    if not tested:
        sys.exit("check_label_free: no hour window carries a drift report (no reference stored?)")
    failed = False

    def in_phase(w, p):
        t = parse_time(w["window"]["start"])
        return p[1] <= t < p[2]

    for p in sched:
        ws = [w for w in tested if in_phase(w, p)]
        alerts = [w for w in ws if w["drift"]["alert"]]
        print(f"{p[0]:>12}: {len(ws)} hours tested, {len(alerts)} alerted")
    if sched[0][0] == "clean":
        clean = [w for w in tested if in_phase(w, sched[0])]
        fa = sum(w["drift"]["alert"] for w in clean)
        print(f"false alarms in the clean phase: {fa} of {len(clean)} hours")
    for prev, p in zip(sched, sched[1:]):
        if p[0] == prev[0]:
            continue
        after = [w for w in tested if in_phase(w, p) and w["drift"]["alert"]]
        measured = measured_alarm(days, p, args.ap50_threshold)
        if not after:
            print(f"{prev[0]} -> {p[0]} at {p[1]:%Y-%m-%d %H:%M}: no drift alert")
            failed |= args.require_alert_within_h is not None
            continue
        first = after[0]
        t = parse_time(first["window"]["start"]) + dt.timedelta(hours=1)
        delay = (t - p[1]).total_seconds() / 3600
        lead = "" if measured is None else f", {(measured - t).total_seconds() / 3600:.0f} h before the measured-AP50 alarm could fire ({measured:%Y-%m-%d %H:%M})"
        print(
            f"{prev[0]} -> {p[0]} at {p[1]:%Y-%m-%d %H:%M}: first alert in the hour ending {t:%H:%M} "
            f"({delay:.0f} h after the change; features {','.join(first['drift']['features'])}){lead}"
        )
        if args.require_alert_within_h is not None and delay > args.require_alert_within_h:
            failed = True
    labelled = [w for w in days if w["images_labelled"] > 0 and w["coco"]["AP50"] >= 0]
    cal = next((w["calibration"] for w in days if w.get("calibration")), None)
    if cal:
        print(
            f"estimated AP50, day windows: leave-one-out over {cal['windows']} labelled days: "
            f"MAE {cal['loo_mae']:.3f}, worst {cal['loo_worst']:.3f}, band ±{cal['band']:.3f}"
        )
        errs = [abs(w["estimated_ap50"]["value"] - w["coco"]["AP50"]) for w in labelled if w.get("estimated_ap50")]
        if errs:
            print(f"  in-sample: MAE {sum(errs) / len(errs):.3f}, worst {max(errs):.3f}")
    else:
        print("estimated AP50: no calibration (fewer labelled day windows than it needs)")
    sys.exit(1 if failed else 0)


def measured_alarm(days, phase, threshold):
    """End of the second consecutive labelled day under the threshold, from the phase's start."""
    run = 0
    for w in days:
        t = parse_time(w["window"]["start"])
        if t < phase[1] or w["images_labelled"] == 0 or w["coco"]["AP50"] < 0:
            continue
        run = run + 1 if w["coco"]["AP50"] < threshold else 0
        if run == 2:
            return t + dt.timedelta(days=1)
    return None


if __name__ == "__main__":
    main()
