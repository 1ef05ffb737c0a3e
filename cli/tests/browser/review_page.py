"""The review page of `modelobs label --serve`, driven in headless Chromium.

GIVEN one queued task (darknet's horses.jpg, with the model's own boxes as
pre-labels) in an in-memory bucket (`--bucket-dir`, a hidden flag: the page's
server without a stack), and a fake webhook that records what it gets;
WHEN a person, through real mouse events, moves and resizes a box, deletes a
spurious one, draws a missed horse, fixes two classes and clicks Submit;
THEN the webhook received one signed LABEL_CREATED event whose boxes are the
edited ones in image pixels (within 2 px), and the queue is empty.

Screenshots land in .cache/browser/ (before and after Submit).

    python review_page.py --modelobs target/debug/modelobs [--chromium /usr/bin/chromium]

Only the standard library and `websockets` (the DevTools Protocol's transport).
"""

import argparse
import base64
import hashlib
import hmac
import http.server
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parents[3]
SECRET = "browser-test-secret"
PHOTO = Path(os.environ.get("MODELOBS_TEST_PHOTOS", "/usr/share/darknet/data")) / "horses.jpg"
WIDTH, HEIGHT = 773, 512
# What the model answers for horses.jpg (`modelobs predict`), three of its boxes.
PRELABELS = [
    ("horse", 17, 0.593, (4.6, 194.5, 320.8, 408.8)),
    ("cow", 19, 0.658, (435.8, 215.4, 596.5, 350.9)),  # a horse: the person fixes the class
    ("cow", 19, 0.206, (572.5, 213.6, 596.4, 274.5)),  # nothing there: deleted
]
TOLERANCE_PX = 2.0


def uuid7(ms: int) -> str:
    rand = int.from_bytes(secrets.token_bytes(10), "big")
    value = (ms << 80) | (0x7 << 76) | ((rand >> 62) & 0xFFF) << 64 | (0b10 << 62) | (rand & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))


def seed_bucket(dir: Path) -> str:
    """The bucket's files: the queued task and its image, as the sampler writes them."""
    captured = "2026-11-20T10:00:00Z"
    id = uuid7(1795168800000)
    image_key = f"captures/images/dt=2026-11-20/hr=10/{id}.jpg"
    task = {
        "schema_version": 1,
        "id": id,
        "capture_key": f"captures/predictions/dt=2026-11-20/hr=10/{id}.json",
        "image_key": image_key,
        "width": WIDTH,
        "height": HEIGHT,
        "captured_at": captured,
        "created_at": captured,
        "prelabels": [
            {"label": label, "class_id": cid, "score": score,
             "box": {"x1": b[0], "y1": b[1], "x2": b[2], "y2": b[3]}}
            for label, cid, score, b in PRELABELS
        ],
    }
    (dir / "labeling/queue").mkdir(parents=True)
    (dir / f"labeling/queue/{id}.json").write_text(json.dumps(task))
    (dir / image_key).parent.mkdir(parents=True)
    shutil.copy(PHOTO, dir / image_key)
    return id


class FakeWebhook:
    """Answers every POST 200 and keeps (headers, body)."""

    def __init__(self):
        self.received = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                outer.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                answer = b'{"ok":true}'
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/lambda-url/webhook/"


class Page:
    """One Chromium tab over the DevTools Protocol."""

    def __init__(self, ws_url: str):
        self.ws = connect(ws_url, max_size=64 * 1024 * 1024)
        self.next_id = 0

    def send(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=30))
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    def eval(self, expression: str):
        r = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait_for(self, expression: str, what: str, timeout: float = 15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.eval(expression)
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")

    def mouse(self, kind: str, x: float, y: float, buttons: int):
        self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left",
                  buttons=buttons, clickCount=1)

    def drag(self, start, end, steps: int = 8):
        (x0, y0), (x1, y1) = start, end
        self.mouse("mouseMoved", x0, y0, 0)
        self.mouse("mousePressed", x0, y0, 1)
        for i in range(1, steps + 1):
            self.mouse("mouseMoved", x0 + (x1 - x0) * i / steps, y0 + (y1 - y0) * i / steps, 1)
        self.mouse("mouseReleased", x1, y1, 0)

    def click(self, selector: str):
        x, y = self.center(selector)
        self.mouse("mouseMoved", x, y, 0)
        self.mouse("mousePressed", x, y, 1)
        self.mouse("mouseReleased", x, y, 0)

    def rect(self, selector: str):
        r = self.eval(f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
                      " return [r.left, r.top, r.width, r.height]; })()")
        return r

    def center(self, selector: str):
        left, top, w, h = self.rect(selector)
        return left + w / 2, top + h / 2

    def screenshot(self, path: Path):
        data = self.send("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        print(f"review_page: screenshot {path.relative_to(ROOT)}")


def start_chromium(chromium: str, profile: Path):
    args = [chromium, "--headless=new", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            "--no-default-browser-check",
            "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
            f"--user-data-dir={profile}", "--window-size=1100,800", "about:blank"]
    if os.geteuid() == 0:
        args.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    for line in proc.stderr:
        if "DevTools listening on " in line:
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return proc, line.split("DevTools listening on ", 1)[1].strip()
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise RuntimeError("chromium did not say where DevTools listens")


def start_server(modelobs: str, bucket_dir: Path, webhook_url: str):
    proc = subprocess.Popen(
        [modelobs, "label", "--serve", "--listen", "127.0.0.1:0", "--bucket-dir", str(bucket_dir),
         "--webhook", webhook_url, "--secret", SECRET],
        stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if "review page on " not in line:
        proc.kill()
        raise RuntimeError(f"modelobs label --serve said {line!r}")
    return proc, line.split("review page on ", 1)[1].strip()


def near(got, want, what):
    assert all(abs(g - w) <= TOLERANCE_PX for g, w in zip(got, want)), \
        f"{what}: got {[round(g, 1) for g in got]}, want {[round(w, 1) for w in want]}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--modelobs", required=True)
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    ap.add_argument("--out", default=str(ROOT / ".cache/browser"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="modelobs-review-") as tmp:
        tmp = Path(tmp)
        task_id = seed_bucket(tmp / "bucket")
        webhook = FakeWebhook()
        server, base = start_server(args.modelobs, tmp / "bucket", webhook.url)
        browser, browser_ws = start_chromium(args.chromium, tmp / "profile")
        try:
            run(base, browser_ws, task_id, webhook, out)
        finally:
            browser.kill()
            server.kill()
            browser.wait()
            server.wait()
            webhook.server.shutdown()
    print("review_page: ok")


def run(base: str, browser_ws: str, task_id: str, webhook: FakeWebhook, out: Path):
    browser = Page(browser_ws)
    target = browser.send("Target.createTarget", url="about:blank")["targetId"]
    port = browser_ws.split("//", 1)[1].split("/", 1)[0]
    page = Page(f"ws://{port}/devtools/page/{target}")
    page.send("Emulation.setDeviceMetricsOverride", width=1100, height=800, deviceScaleFactor=1, mobile=False)
    page.send("Page.enable")
    page.send("Page.navigate", url=base)
    try:
        edit_and_submit(page, task_id, webhook, out)
    except Exception:
        page.screenshot(out / "review-page-failed.png")
        raise


def edit_and_submit(page: Page, task_id: str, webhook: FakeWebhook, out: Path):

    # GIVEN the page shows the task with its three pre-labels over the loaded image
    page.wait_for("document.querySelectorAll('#overlay g.box').length === 3 "
                  "&& document.getElementById('image').complete "
                  "&& document.getElementById('image').naturalWidth > 0", "the task's boxes and image")
    assert page.eval("document.querySelector('#queue li').dataset.id") == task_id
    assert page.eval("document.getElementById('image').naturalWidth") == WIDTH
    img_left, img_top, img_w, img_h = page.rect("#overlay")
    scale = WIDTH / img_w  # image px per screen px
    assert abs(HEIGHT / img_h - scale) < 0.01, "the overlay keeps the image's aspect"
    assert scale > 1.05, f"the image is shown scaled down (scale {scale:.2f}), so the test checks the mapping"

    def to_screen(x, y):
        return img_left + x / scale, img_top + y / scale

    def drawn(i):
        left, top, w, h = page.rect(f"#overlay g.box[data-i='{i}'] rect.body")
        return [(left - img_left) * scale, (top - img_top) * scale,
                (left + w - img_left) * scale, (top + h - img_top) * scale]

    for i, (_, _, _, box) in enumerate(PRELABELS):
        near(drawn(i), box, f"pre-label {i} as drawn")

    # WHEN the person drags the horse's box 30 px right and 15 px down (screen px) ...
    horse = list(PRELABELS[0][3])
    cx, cy = to_screen((horse[0] + horse[2]) / 2, (horse[1] + horse[3]) / 2)
    page.drag((cx, cy), (cx + 30, cy + 15))
    horse = [horse[0] + 30 * scale, horse[1] + 15 * scale, horse[2] + 30 * scale, horse[3] + 15 * scale]
    near(drawn(0), horse, "the moved box")
    # ... widens it by its bottom-right corner ...
    page.drag(page.center("#overlay g.box[data-i='0'] rect.handle[data-corner='se']"),
              to_screen(horse[2] + 25, horse[3] + 15))
    horse[2] += 25
    horse[3] += 15
    near(drawn(0), horse, "the resized box")
    # ... deletes the spurious third box ...
    page.click("#boxes li[data-i='2'] button.delete")
    page.wait_for("document.querySelectorAll('#overlay g.box').length === 2", "the deletion")
    # ... draws the missed middle horse on empty space ...
    missed = [252.0, 168.0, 448.0, 362.0]
    page.drag(to_screen(missed[0], missed[1]), to_screen(missed[2], missed[3]), steps=12)
    page.wait_for("document.querySelectorAll('#overlay g.box').length === 3", "the drawn box")
    near(drawn(2), missed, "the drawn box")
    # ... and says both the "cow" and the new box are horses.
    for i in (1, 2):
        page.eval(f"(() => {{ const s = document.querySelector(\"#boxes li[data-i='{i}'] select\");"
                  " s.value = 'horse'; s.dispatchEvent(new Event('change', {bubbles: true})); })()")
    assert page.eval("[...document.querySelectorAll('#boxes select')].map(s => s.value).join()") == "horse,horse,horse"
    page.screenshot(out / "review-page.png")
    page.click("#submit")

    # THEN the webhook got one signed LABEL_CREATED event with the edited boxes in image px
    deadline = time.monotonic() + 15
    while not webhook.received and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(webhook.received) == 1, f"the webhook got {len(webhook.received)} requests"
    headers, body = webhook.received[0]
    assert headers["x-labelbox-event"] == "LABEL_CREATED"
    sha1 = "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
    sha256 = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-hub-signature"], sha1), "X-Hub-Signature"
    assert hmac.compare_digest(headers["x-hub-signature-256"], sha256), "X-Hub-Signature-256"
    event = json.loads(body)
    assert event["dataRow"]["globalKey"] == task_id
    objects = event["label"]["objects"]
    assert [o["value"] for o in objects] == ["horse", "horse", "horse"], objects
    got = [[o["bbox"]["left"], o["bbox"]["top"], o["bbox"]["left"] + o["bbox"]["width"],
            o["bbox"]["top"] + o["bbox"]["height"]] for o in objects]
    for g, want, what in zip(got, [horse, list(PRELABELS[1][3]), missed], ["moved+resized", "reclassified", "drawn"]):
        near(g, want, f"the {what} box as sent")
    # ... and the answered task left the queue: the page says so
    page.wait_for("!document.getElementById('empty').hidden", "the empty queue")
    assert page.eval("fetch('/api/tasks').then(r => r.json())") == []
    page.screenshot(out / "review-page-done.png")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"review_page: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
