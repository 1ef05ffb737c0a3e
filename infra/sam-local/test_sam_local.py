"""Every function through the real Lambda runtime: `sam local invoke`, `start-api` and
`start-lambda` on the functions in sam build's layout, against LocalStack.

Run by `make sam-local` (infra/sam-local/run.sh), which starts the container engine, builds
the stand-in base image, stages the functions and runs this inside `localstack/with-stack`:

    SAM_BUILT_TEMPLATE=.cache/sam-local/staged/template.yaml DOCKER_HOST=unix://... \\
      localstack/with-stack .cache/venv-sam/bin/python infra/sam-local/test_sam_local.py

Each test invokes one function with a fixture from events/ (unchanged: the same files the
unit tests and `cargo lambda invoke` use), then reads the bucket or the queue to check what
the function did, not only its exit status. The tests run in order and share one bucket:
the webhook's label is what the metrics function evaluates, whose window the rollup rolls.

Every invocation's REPORT line (from the runtime emulator) is written to
.cache/sam-local/durations.json and printed as a table at the end; each function's whole
emulator output goes to .cache/sam-local/logs/.

A missing environment (no engine, no LocalStack, nothing built) is a failure, never a skip.
"""

import base64
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

import boto3
from botocore.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EVENTS = os.path.join(ROOT, "events")
SAM = [os.environ.get("SAM", "bash"), *([] if "SAM" in os.environ else [os.path.join(ROOT, "scripts/sam.sh")])]
CAPTURE_ID = "01a216ce-1102-7c4e-9a52-4d8e2f6a1b90"  # the capture the fixtures talk about
WEBHOOK_SECRET = "test-webhook-secret"  # events/webhook/make_fixtures.py signs with it
DURATIONS = os.path.join(ROOT, ".cache/sam-local/durations.json")
LOGS = os.path.join(ROOT, ".cache/sam-local/logs")  # every invocation's emulator output, per function
# A photo the model finds a dog in (Debian's darknet package; `make unit` installs it).
PHOTO = os.path.join(os.environ.get("MODELOBS_TEST_PHOTOS", "/usr/share/darknet/data"), "dog.jpg")



def template_variables(path):
    """Every name under an `Environment: Variables:` mapping of the template."""
    names, indent = set(), None
    with open(path, encoding="utf-8") as f:
        for line in f:
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            depth = len(line) - len(line.lstrip())
            if stripped == "Variables:":
                indent = depth
                continue
            if indent is not None:
                if depth <= indent:
                    indent = None
                elif ":" in stripped:
                    names.add(stripped.split(":", 1)[0])
    return names


# `sam local` lets the shell's value of a variable the template declares override the
# template's (after --env-vars): `make` exports ORT_DYLIB_PATH as a host path for the
# other tests, which would replace the layer's /opt/lib path inside the container. The
# functions get the template's values and the env file's, never the host's.
SAM_ENV = {k: v for k, v in os.environ.items() if k not in template_variables(os.path.join(ROOT, "template.yaml"))}

def uuid7(at):
    """A UUIDv7 carrying the time `at` (seconds since 1970), as the capture ids are."""
    value = (int(at * 1000) << 80) | (0x7 << 76) | (int.from_bytes(os.urandom(10), "big") & ((1 << 76) - 1))
    value = (value & ~(0xC << 60)) | (0x8 << 60)  # RFC 4122 variant
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


REPORT = re.compile(r"REPORT RequestId: (?P<id>\S+)(?P<rest>.*)")
FIELD = re.compile(r"(Init Duration|Duration|Billed Duration|Max Memory Used): ([\d.]+) (ms|MB)")


def need(name):
    value = os.environ.get(name)
    if not value:
        raise AssertionError(f"{name} is not set: run through `make sam-local`")
    return value


def fixture(*parts):
    return os.path.join(EVENTS, *parts)


def load(*parts):
    with open(fixture(*parts), encoding="utf-8") as f:
        return json.load(f)


def reports(stderr):
    """Every REPORT line of the emulator, as {field: number}."""
    out = []
    for m in REPORT.finditer(stderr):
        out.append({k: float(v) for k, v, _ in FIELD.findall(m.group("rest"))})
    return out


class SamLocal(unittest.TestCase):
    durations = []

    @classmethod
    def setUpClass(cls):
        cls.template = need("SAM_BUILT_TEMPLATE")
        need("DOCKER_HOST")
        cls.endpoint = need("AWS_ENDPOINT_URL")
        cls.bucket = need("DATA_BUCKET")
        cls.metrics_queue = need("METRICS_QUEUE_URL")
        if not os.path.isfile(cls.template):
            raise AssertionError(f"{cls.template} is missing: `sam build` did not run")
        kw = dict(endpoint_url=cls.endpoint, region_name=os.environ.get("AWS_REGION", "us-east-1"))
        cls.s3 = boto3.client("s3", config=Config(s3={"addressing_style": "path"}), **kw)
        cls.sqs = boto3.client("sqs", **kw)
        secrets = boto3.client("secretsmanager", **kw)
        cls.function_endpoint = cls.forward_localstack()

        def secret(name, value):
            try:
                return secrets.create_secret(Name=name, SecretString=value)["ARN"]
            except secrets.exceptions.ResourceExistsException:
                return secrets.describe_secret(SecretId=name)["ARN"]

        webhook_arn = secret("modelobs-sam-local-webhook", WEBHOOK_SECRET)
        # The webhook reads labels it was not sent from Labelbox; the fixtures carry theirs,
        # so the key is never used, but the template's configuration is kept whole.
        labelbox_arn = secret("modelobs-sam-local-labelbox", "not-a-real-key")

        # `Parameters` applies to every function; the rest is per logical id. Only variables
        # the template declares reach a function (infra/sam-local/local_template.py).
        env = {
            "Parameters": {"AWS_ENDPOINT_URL": cls.function_endpoint, "DATA_BUCKET": cls.bucket, "RUST_LOG": "info"},
            "WebhookFunction": {
                "METRICS_QUEUE_URL": cls.metrics_queue,
                "WEBHOOK_SECRET_ARN": webhook_arn,
                "LABELBOX_API_KEY_SECRET_ARN": labelbox_arn,
            },
            "SamplerFunction": {"LABELING_BACKEND": "local", "LABELBOX_API_KEY_SECRET_ARN": ""},
            "SamplerSweepFunction": {"LABELING_BACKEND": "local", "LABELBOX_API_KEY_SECRET_ARN": ""},
            "MetricsFunction": {"OBSERVE_TOKEN_SECRET_ARN": ""},
            "RollupFunction": {"OBSERVE_TOKEN_SECRET_ARN": ""},
        }
        shutil.rmtree(LOGS, ignore_errors=True)
        os.makedirs(LOGS)
        cls.tmp = tempfile.mkdtemp(prefix="sam-local-")
        cls.env_file = os.path.join(cls.tmp, "env.json")
        with open(cls.env_file, "w", encoding="utf-8") as f:
            json.dump(env, f)

        # The capture every fixture names: its record as the inference function writes it.
        record = load("records", "capture-record.json")
        cls.put(f"captures/predictions/dt=2026-11-26/hr=07/{CAPTURE_ID}.json", json.dumps(record).encode())

    @classmethod
    def forward_localstack(cls):
        """LocalStack's address as the function containers see it (forward.py says why)."""
        fmt = "{{range .Subnets}}{{.Subnet}} {{.Gateway}}{{end}}"
        out = subprocess.run(
            ["podman", "network", "inspect", "podman", "--format", fmt], capture_output=True, text=True, check=True
        ).stdout.split()
        if len(out) != 2:
            raise AssertionError(f"podman's network has no subnet and gateway: {out}")
        subnet, gateway = out
        target = urllib.parse.urlsplit(cls.endpoint).netloc
        port_file = os.path.join(tempfile.mkdtemp(prefix="sam-local-fwd-"), "port")
        cls.forwarder = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "infra/sam-local/forward.py"),
             "--allow", subnet, "--to", target, "--port-file", port_file]
        )
        deadline = time.monotonic() + 10
        while not (os.path.exists(port_file) and os.path.getsize(port_file)):
            if cls.forwarder.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("forward.py did not start")
            time.sleep(0.05)
        with open(port_file, encoding="utf-8") as f:
            return f"http://{gateway}:{f.read().strip()}"

    @classmethod
    def tearDownClass(cls):
        cls.forwarder.terminate()
        cls.forwarder.wait(timeout=10)
        os.makedirs(os.path.dirname(DURATIONS), exist_ok=True)
        with open(DURATIONS, "w", encoding="utf-8") as f:
            json.dump(cls.durations, f, indent=2)
        print("\nsam local: durations in the runtime emulator (ms)", file=sys.stderr)
        # The emulator starts the runtime inside the first invoke, so a cold call's Duration
        # includes the function's init (its "Init Duration" is the emulator's own, ~0.1 ms),
        # and it reports the configured memory as "Max Memory Used": neither is printed.
        print(f"  {'function':<24} {'case':<30} {'duration':>9}", file=sys.stderr)
        for d in cls.durations:
            print(f"  {d['function']:<24} {d['case']:<30} {d.get('Duration', float('nan')):>9.1f}", file=sys.stderr)

    # --- helpers ----------------------------------------------------------------

    @classmethod
    def put(cls, key, body):
        cls.s3.put_object(Bucket=cls.bucket, Key=key, Body=body)

    def keys(self, prefix):
        out = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            out += [o["Key"] for o in page.get("Contents", [])]
        return out

    def get_json(self, key):
        return json.loads(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def sam_args(self):
        return ["-t", self.template, "--env-vars", self.env_file, "--docker-network", "host", "--skip-pull-image"]

    def invoke(self, function, event, case):
        """`sam local invoke FUNCTION -e EVENT`: the function's result (stdout's JSON)."""
        cmd = [*SAM, "local", "invoke", function, "-e", event, *self.sam_args()]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT, env=SAM_ENV)
        # sam relays the container's output through the engine's attach stream and stops
        # reading when the answer is in, so under load the REPORT line can be missing here:
        # the durations come from it when it is there, and from the engine's own container
        # logs in serve() (start-api, start-lambda), which keep every line.
        for r in reports(p.stderr):
            self.durations.append({"function": function, "case": case, **r})
        with open(os.path.join(LOGS, f"{function}.log"), "a", encoding="utf-8") as log:
            log.write(f"--- {case}\n{p.stderr}")
        self.assertEqual(p.returncode, 0, f"{function}: sam local invoke failed\n--- stderr\n{p.stderr[-6000:]}")
        lines = [line for line in p.stdout.splitlines() if line.strip()]
        self.assertTrue(lines, f"{function} printed no result\n--- stderr\n{p.stderr[-6000:]}")
        try:
            return json.loads(lines[-1]), p.stderr
        except json.JSONDecodeError:
            self.fail(f"{function}: result is not JSON: {lines[-1][:500]}\n--- stderr\n{p.stderr[-6000:]}")

    def http_result(self, result):
        """An HttpApi/function-URL response: (status, JSON body)."""
        body = result.get("body") or ""
        if result.get("isBase64Encoded"):
            body = base64.b64decode(body).decode()
        return result["statusCode"], (json.loads(body) if body else None)

    @contextlib.contextmanager
    def serve(self, command, *extra):
        """`sam local COMMAND` (start-api, start-lambda) on a free port until the block ends:
        yields (base URL, output); once the block is done, output[function] is the whole log
        of that function's container, read from the engine before the server stops it. Not
        sam's relayed copy: that one loses lines under load (see invoke)."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        log_path = os.path.join(LOGS, f"{command}.log")
        output = {}
        with open(log_path, "w", encoding="utf-8") as log:
            proc = subprocess.Popen(
                [*SAM, "local", command, "--host", "127.0.0.1", "--port", str(port), *extra, *self.sam_args()],
                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True, env=SAM_ENV,
            )

        def text():
            with open(log_path, encoding="utf-8") as f:
                return f.read()

        try:
            deadline = time.monotonic() + 180
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        self.fail(f"sam local {command} did not listen\n{text()[-6000:]}")
                    time.sleep(0.5)
            yield f"http://127.0.0.1:{port}", output
            # sam prints, for each container it starts, the code it mounts and the id.
            started = re.findall(r"Mounting \S+/(\w+) as /var/task\S*.*\n(?:.*\n)*?SAM_CONTAINER_ID: (\w+)", text())
            for function, container in started:
                logs = subprocess.run(["podman", "logs", container], capture_output=True, text=True, check=True)
                output[function] = logs.stdout + logs.stderr
        finally:
            os.killpg(proc.pid, 15)
            proc.wait(timeout=60)

    # --- the functions, in the order the data flows -------------------------------

    def test_01_inference_predict(self):
        before = set(self.keys("captures/predictions/"))
        status, body = self.http_result(self.invoke("InferenceFunction", fixture("inference", "predict-png.json"), "POST /predict")[0])
        self.assertEqual(status, 200, body)
        self.assertIn("detections", body)
        new = set(self.keys("captures/predictions/")) - before
        self.assertEqual(len(new), 1, f"one capture record expected, got {new}")
        record = self.get_json(new.pop())
        self.assertEqual(record["id"], body["id"])
        self.assertEqual(record["model"], body["model"])
        self.assertEqual(len(record["detections"]), len(body["detections"]))
        # The image went to the bucket too, under the key the record names.
        self.s3.head_object(Bucket=self.bucket, Key=record["image"]["key"])

    def test_02_inference_health(self):
        status, body = self.http_result(self.invoke("InferenceFunction", fixture("inference", "health.json"), "GET /health")[0])
        self.assertEqual(status, 200, body)
        # The model came from the model layer at /opt/models/nanodet (MODEL_DIR).
        with open(os.path.join(ROOT, "models/nanodet/model.json"), encoding="utf-8") as f:
            model = json.load(f)
        self.assertEqual(body["model"]["version"], model["version"])

    def put_incoming(self):
        """The PNG of predict-png.json at the incoming/ key s3-incoming-image.json names."""
        event = load("inference", "s3-incoming-image.json")
        key = urllib.parse.unquote_plus(event["Records"][0]["s3"]["object"]["key"])
        self.put(key, base64.b64decode(load("inference", "predict-png.json")["body"]))
        return key

    def test_03_inference_upload(self):
        key = self.put_incoming()
        before = set(self.keys("captures/predictions/"))
        self.invoke("InferenceUploadFunction", fixture("inference", "s3-incoming-image.json"), "S3 incoming/")
        self.assertNotIn(key, self.keys("incoming/"), "the incoming object was not moved")
        new = set(self.keys("captures/predictions/")) - before
        self.assertEqual(len(new), 1, f"one capture record expected, got {new}")
        record = self.get_json(new.pop())
        self.assertEqual(record["source"], {"kind": "s3_upload", "key": key})

    def test_04_sampler(self):
        self.assertEqual(self.keys(f"samples/{CAPTURE_ID}"), [])
        self.invoke("SamplerFunction", fixture("sampler", "capture-created.json"), "S3 capture record")
        decision = self.get_json(f"samples/{CAPTURE_ID}.json")
        self.assertEqual(decision["id"], CAPTURE_ID, decision)

    def test_05_webhook_forged(self):
        result, stderr = self.invoke("WebhookFunction", fixture("webhook", "tampered.json"), "forged signature")
        status, body = self.http_result(result)
        self.assertEqual(status, 401, body)
        self.assertEqual(self.keys("labels/"), [], "a forged delivery wrote a label")
        self.assertNotIn("Messages", self.sqs.receive_message(QueueUrl=self.metrics_queue, WaitTimeSeconds=0))

    def test_06_webhook_signed(self):
        status, body = self.http_result(
            self.invoke("WebhookFunction", fixture("webhook", "label-created.json"), "signed label")[0]
        )
        self.assertEqual(status, 200, body)
        label = self.get_json(f"labels/{CAPTURE_ID}.json")
        self.assertEqual(label["id"], CAPTURE_ID, label)
        got = self.sqs.receive_message(QueueUrl=self.metrics_queue, WaitTimeSeconds=1, MaxNumberOfMessages=10)
        bodies = [json.loads(m["Body"]) for m in got.get("Messages", [])]
        self.assertIn(CAPTURE_ID, [b.get("id") for b in bodies], bodies)
        for m in got.get("Messages", []):
            self.sqs.delete_message(QueueUrl=self.metrics_queue, ReceiptHandle=m["ReceiptHandle"])

    def test_07_metrics_batch(self):
        result, _ = self.invoke("MetricsFunction", fixture("metrics", "label-arrived-batch.json"), "SQS batch (2 bad of 3)")
        # m-poison names a capture that has no label, m-garbage is not JSON: both go back to
        # the queue (and on to its DLQ), m-good is evaluated.
        failed = sorted(f["itemIdentifier"] for f in result["batchItemFailures"])
        self.assertEqual(failed, ["m-garbage", "m-poison"], result)
        evals = [k for k in self.keys("evals/") if CAPTURE_ID in k]
        self.assertTrue(evals, "the good message's label was not evaluated")

    def test_08_rollup(self):
        before = set(self.keys("windows/"))
        result, _ = self.invoke("RollupFunction", fixture("scheduled", "rollup.json"), "schedule")
        self.assertTrue(result.get("rolled"), result)
        self.assertFalse(result.get("failed"), result)
        windows = set(self.keys("windows/")) - before
        self.assertTrue(windows, "the rollup wrote no window")

    def test_09_sampler_sweep(self):
        # The sweep looks at decisions of the last 7 days by the clock (their ids carry the
        # capture time), and the fixtures' capture is from 2026-11-26: the sampler's decision
        # on it is copied under an id of an hour ago, so the test holds on any date.
        written = self.get_json(f"samples/{CAPTURE_ID}.json")
        recent = uuid7(time.time() - 3600)
        decision = f"samples/{recent}.json"
        self.put(decision, json.dumps({**written, "id": recent}).encode())
        etag = self.s3.head_object(Bucket=self.bucket, Key=decision)["ETag"]
        result, _ = self.invoke("SamplerSweepFunction", fixture("scheduled", "sampler-sweep.json"), "schedule")
        self.assertGreaterEqual(result.get("checked", 0), 1, result)
        self.assertEqual(result.get("pending"), 0, result)
        # Nothing was pending, so nothing was re-submitted or rewritten.
        self.assertEqual(self.s3.head_object(Bucket=self.bucket, Key=decision)["ETag"], etag)

    def test_10_start_api(self):
        """`sam local start-api`: the HttpApi routes of the template, over real HTTP."""
        # Warm containers: without them start-api runs each request in a new container.
        with self.serve("start-api", "--warm-containers", "LAZY") as (base, output):

            def call(method, path, body=None, headers=None):
                req = urllib.request.Request(base + path, data=body, method=method, headers=headers or {})
                try:
                    with urllib.request.urlopen(req, timeout=120) as resp:
                        return resp.status, json.loads(resp.read())
                except urllib.error.HTTPError as err:
                    return err.code, err.read().decode()

            status, health = call("GET", "/health")
            self.assertEqual(status, 200, health)
            self.assertTrue(health["model"]["version"], health)

            with open(PHOTO, "rb") as f:
                jpeg = f.read()
            # SAM's local HttpApi decodes every request body as UTF-8 (BinaryMediaTypes is not a
            # property of HttpApi, so it has none): a raw image is a 502 before the function runs
            # (aws/aws-sam-cli#3110, #7927). Deployed, API Gateway base64-encodes it, which
            # `sam local invoke` of events/inference/predict-png.json covers. The pinned SAM
            # still has the bug; when this assertion fails, it is fixed: send raw bytes below.
            status, _ = call("POST", "/predict", jpeg, {"Content-Type": "image/jpeg"})
            self.assertEqual(status, 502, "sam local start-api passes binary bodies now (see above)")
            before = set(self.keys("captures/predictions/"))
            body = json.dumps({"image_base64": base64.b64encode(jpeg).decode()}).encode()
            for _ in range(4):  # the container is warm from /health
                status, answer = call("POST", "/predict", body, {"Content-Type": "application/json"})
                self.assertEqual(status, 200, answer)
                self.assertIn("dog", [d["label"] for d in answer["detections"]], answer)
            new = set(self.keys("captures/predictions/")) - before
            self.assertEqual(len(new), 4, new)
            for key in new:
                self.s3.head_object(Bucket=self.bucket, Key=self.get_json(key)["image"]["key"])
        runs = reports(output.get("InferenceFunction", ""))
        self.assertEqual(len(runs), 5, "a REPORT line per call in the container's log")
        cases = ["start-api GET /health (cold)"] + [f"start-api POST /predict {i}" for i in range(1, 5)]
        for case, r in zip(cases, runs):
            self.durations.append({"function": "InferenceFunction", "case": case, **r})

    def test_11_start_lambda_warm(self):
        """`sam local start-lambda` with warm containers: each function invoked twice through
        the Lambda Invoke API, so the table has a cold and a warm duration for every one. The
        second call repeats the first event: every handler is idempotent, so it must succeed
        again (the webhook's repeated delivery, the sampler's decided capture...); only the
        upload gets a new object first, since the first call moved it."""
        calls = [
            ("InferenceFunction", ("inference", "health.json")),
            ("InferenceUploadFunction", ("inference", "s3-incoming-image.json")),
            ("SamplerFunction", ("sampler", "capture-created.json")),
            ("WebhookFunction", ("webhook", "label-created.json")),
            ("MetricsFunction", ("metrics", "label-arrived.json")),
            ("RollupFunction", ("scheduled", "rollup.json")),
            ("SamplerSweepFunction", ("scheduled", "sampler-sweep.json")),
        ]
        with self.serve("start-lambda", "--warm-containers", "LAZY") as (base, output):
            lam = boto3.client(
                "lambda", endpoint_url=base, region_name="us-east-1",
                config=Config(read_timeout=300, retries={"max_attempts": 0}),
            )
            for function, event in calls:
                with open(fixture(*event), "rb") as f:
                    payload = f.read()
                for attempt in ("cold", "warm"):
                    if function == "InferenceUploadFunction":
                        key = self.put_incoming()  # a new upload each time: the last one was moved
                    got = lam.invoke(FunctionName=function, Payload=payload)
                    result = got["Payload"].read()
                    self.assertNotIn("FunctionError", got, f"{function} ({attempt}): {result[:500]}")
                    if function == "InferenceUploadFunction":
                        self.assertNotIn(key, self.keys("incoming/"), f"{attempt}: the upload was not moved")
                    out = json.loads(result)
                    if not isinstance(out, dict):
                        continue  # the S3-triggered functions answer nothing (null)
                    if "statusCode" in out:
                        self.assertEqual(out["statusCode"], 200, f"{function} ({attempt}): {out}")
                    if "batchItemFailures" in out:
                        self.assertEqual(out["batchItemFailures"], [], f"{function} ({attempt}): {out}")
        for function, _ in calls:
            runs = reports(output.get(function, ""))
            self.assertEqual(len(runs), 2, f"{function}: a REPORT line per call in its container's log")
            for case, r in zip(("start-lambda cold", "start-lambda warm"), runs):
                self.durations.append({"function": function, "case": case, **r})


if __name__ == "__main__":
    unittest.main(verbosity=2)
