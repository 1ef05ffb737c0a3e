"""Create the project's resources in a running LocalStack. Idempotent.

Standard library only (plain HTTP, unsigned: LocalStack accepts that and files
everything under its default account), so it runs with any Python >= 3.8.

    AWS_ENDPOINT_URL=http://127.0.0.1:4566 DATA_BUCKET=modelobs-data python localstack/init.py

The resource list is one function on purpose: queues and bucket notifications
join it here (later derived from template.yaml), not in the shell scripts.
"""

import os
import sys
import urllib.error
import urllib.parse
import urllib.request

ENDPOINT = os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:4566").rstrip("/")


def request(method, path, body=None, headers=None):
    """(status, body text) of one request; HTTP errors are answers, not exceptions."""
    req = urllib.request.Request(
        ENDPOINT + path, data=body, method=method, headers=headers or {}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8", "replace")


def ensure_bucket(name):
    # Path-style CreateBucket; no LocationConstraint body, so the bucket is in us-east-1.
    status, text = request("PUT", "/" + urllib.parse.quote(name, safe=""))
    if status == 200:
        print(f"init.py: bucket {name} ready")
    elif status == 409 and "BucketAlreadyOwnedByYou" in text:
        print(f"init.py: bucket {name} already there")
    else:
        sys.exit(f"init.py: creating bucket {name} failed: HTTP {status}: {text.strip()}")


def resources():
    ensure_bucket(os.environ.get("DATA_BUCKET", "modelobs-data"))


if __name__ == "__main__":
    resources()
