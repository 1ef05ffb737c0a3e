"""Create the project's resources in a running LocalStack, derived from template.yaml
(localstack/cfn.py). Idempotent.

Plain HTTP, unsigned (LocalStack accepts that and files everything under its default
account, the one the `test` credentials map to). Needs PyYAML to read the template:
`localstack/up` runs this with the LocalStack venv, which has it (localstack-core
depends on it).

    AWS_ENDPOINT_URL=http://127.0.0.1:4566 DATA_BUCKET=modelobs-data \\
      .cache/venv-localstack/bin/python localstack/init.py [--env-out F] [--routes-out F]

Creates: the data bucket (DATA_BUCKET); every queue of the template with its
attributes and redrive policy; for every direct S3 -> Lambda trigger a stand-in queue
`<stack>-<binary>-events` and a bucket notification with the trigger's events and key
filters. Writes the queue URLs as KEY=VALUE lines (--env-out, printed by `up`) and the
routes for the event router as JSON (--routes-out): the plan of cfn.py plus queue URLs.
"""

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from xml.sax.saxutils import escape

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cfn  # noqa: E402

ENDPOINT = os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:4566").rstrip("/")


def say(msg):
    print(f"init.py: {msg}", file=sys.stderr)


def request(method, path, body=None, headers=None):
    """(status, body text) of one request; HTTP errors are answers, not exceptions."""
    req = urllib.request.Request(ENDPOINT + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8", "replace")


def sqs(action, params):
    """One SQS call in the JSON protocol."""
    status, text = request(
        "POST",
        "/",
        json.dumps(params).encode(),
        {"X-Amz-Target": f"AmazonSQS.{action}", "Content-Type": "application/x-amz-json-1.0"},
    )
    if status != 200:
        sys.exit(f"init.py: SQS {action} {json.dumps(params)} failed: HTTP {status}: {text.strip()}")
    return json.loads(text or "{}")


def ensure_bucket(name):
    # Path-style CreateBucket; no LocationConstraint body, so the bucket is in us-east-1.
    status, text = request("PUT", "/" + urllib.parse.quote(name, safe=""))
    if status == 200:
        say(f"bucket {name} ready")
    elif status == 409 and "BucketAlreadyOwnedByYou" in text:
        say(f"bucket {name} already there")
    else:
        sys.exit(f"init.py: creating bucket {name} failed: HTTP {status}: {text.strip()}")


def ensure_queues(queues):
    """Create every queue, then set attributes: a redrive target must exist first, and
    CreateQueue with attributes that differ from an existing queue's is an error."""
    urls = {}
    for q in queues:
        urls[q["name"]] = sqs("CreateQueue", {"QueueName": q["name"]})["QueueUrl"]
    for q in queues:
        attrs = {
            k: json.dumps({kk: str(vv) for kk, vv in v.items()}) if isinstance(v, dict) else v
            for k, v in q["attributes"].items()
        }
        if attrs:
            sqs("SetQueueAttributes", {"QueueUrl": urls[q["name"]], "Attributes": attrs})
        say(f"queue {q['name']} ready ({', '.join(f'{k}={v}' for k, v in attrs.items()) or 'defaults'})")
    return urls


def notification_xml(notifications):
    parts = ['<NotificationConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">']
    for n in notifications:
        rules = "".join(
            f"<FilterRule><Name>{name}</Name><Value>{escape(n[name])}</Value></FilterRule>"
            for name in ("prefix", "suffix")
            if n[name]
        )
        events = "".join(f"<Event>{escape(e)}</Event>" for e in n["events"])
        parts.append(
            f"<QueueConfiguration><Id>{escape(n['binary'])}</Id>"
            f"<Queue>{cfn.queue_arn(n['queue'])}</Queue>{events}"
            f"<Filter><S3Key>{rules}</S3Key></Filter></QueueConfiguration>"
        )
    parts.append("</NotificationConfiguration>")
    return "".join(parts)


def ensure_notifications(bucket, notifications):
    # One PUT replaces the bucket's whole notification configuration, as in AWS.
    status, text = request(
        "PUT",
        "/" + urllib.parse.quote(bucket, safe="") + "?notification",
        notification_xml(notifications).encode(),
        {"Content-Type": "application/xml"},
    )
    if status != 200:
        sys.exit(f"init.py: bucket notifications on {bucket} failed: HTTP {status}: {text.strip()}")
    for n in notifications:
        say(
            f"s3://{bucket}/{n['prefix']}*{n['suffix']} {','.join(n['events'])} -> {n['queue']} "
            f"(stands in for the S3 trigger of {n['binary']})"
        )


def main():
    state = os.path.join(cfn.ROOT, ".cache", "localstack")
    ap = argparse.ArgumentParser()
    ap.add_argument("--template", default=cfn.TEMPLATE)
    ap.add_argument("--stack", default=os.environ.get("MODELOBS_STACK", "modelobs"))
    ap.add_argument("--env-out", default=os.path.join(state, "resources.env"))
    ap.add_argument("--routes-out", default=os.path.join(state, "routes.json"))
    args = ap.parse_args()

    try:
        plan = cfn.plan(cfn.load(args.template), args.stack, os.environ.get("DATA_BUCKET", "modelobs-data"))
    except cfn.TemplateError as e:
        sys.exit(f"init.py: {args.template}: {e}")
    ensure_bucket(plan["bucket"])
    urls = ensure_queues(plan["queues"])
    ensure_notifications(plan["bucket"], plan["notifications"])

    for q in plan["queues"]:
        q["url"] = urls[q["name"]]
    for route in plan["s3_routes"] + plan["sqs_routes"]:
        route["queue_url"] = urls[route["queue"]]
        if route.get("on_failure_queue"):
            route["on_failure_queue_url"] = urls[route["on_failure_queue"]]

    os.makedirs(os.path.dirname(os.path.abspath(args.env_out)), exist_ok=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.routes_out)), exist_ok=True)
    with open(args.env_out, "w", encoding="utf-8") as f:
        for q in plan["queues"]:
            f.write(f"{q['env']}={q['url']}\n")
        f.write(f"MODELOBS_ROUTES={os.path.abspath(args.routes_out)}\n")
    with open(args.routes_out, "w", encoding="utf-8") as f:
        json.dump(plan, f, indent=2)
        f.write("\n")
    say(f"queue URLs in {args.env_out}, routes for the event router in {args.routes_out}")


if __name__ == "__main__":
    main()
