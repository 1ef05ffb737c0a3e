#!/usr/bin/env python3
"""Writes the webhook's function URL event fixtures: Labelbox-shaped label
payloads, signed like Labelbox signs them (HMAC of the raw body), with the
test secret below. Standard library only.

    python3 events/webhook/make_fixtures.py
    cargo lambda invoke webhook --data-file events/webhook/label-created.json
"""
import hashlib
import hmac
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
SECRET = b"test-webhook-secret"  # the tests use the same; never a real one
CAPTURE_ID = "01a216ce-1102-7c4e-9a52-4d8e2f6a1b90"  # events/records/capture-record.json


def label(objects):
    """Labelbox sends the label as a JSON *string*."""
    return json.dumps({"objects": [
        {"featureId": f"ft{i}", "schemaId": "sch-" + name, "title": name, "value": name.lower(),
         "bbox": {"top": top, "left": left, "height": h, "width": w}}
        for i, (name, left, top, w, h) in enumerate(objects)
    ], "classifications": []})


def payload(updated_at, objects=None, label_id="clx9k2b0f000108l5d3h2a7qz", global_key=CAPTURE_ID, **extra):
    p = {"id": label_id,
         "dataRow": {"id": "clx9jz1q4000008l5a1b2c3d4", "globalKey": global_key},
         "project": {"id": "clx9jy0aa000008l5fffff000"},
         "createdAt": "2026-11-26T09:15:00.000Z", "updatedAt": updated_at}
    if objects is not None:
        p["label"] = label(objects)
    p.update(extra)
    return json.dumps(p).encode()


DATA_ROW_ID = "clx9jz1q4000008l5a1b2c3d4"
PROJECT_ID = "clx9jy0aa000008l5fffff000"
LABEL_ID = "clx9k2b0f000108l5d3h2a7qz"


def payload_v1_row_id(objects, **times):
    """v1 (SDK-created webhook) naming its data row by id only: no globalKey."""
    p = {"id": LABEL_ID, "dataRow": {"id": DATA_ROW_ID}, "project": {"id": PROJECT_ID}}
    p.update(times)
    p["label"] = label(objects)
    return json.dumps(p).encode()


def export_label(objects, created_at, updated_at):
    """A label in the export v2 shape (docs.labelbox.com/reference/export-image-annotations)."""
    return {"id": LABEL_ID,
            "label_details": {"created_at": created_at, "updated_at": updated_at,
                              "created_by": "labeler@example.com"},
            "annotations": {"objects": [
                {"feature_id": f"ft{i}", "feature_schema_id": "sch-" + name, "name": name,
                 "value": name.lower(), "annotation_kind": "ImageBoundingBox",
                 "classifications": [],
                 "bounding_box": {"top": top, "left": left, "height": h, "width": w}}
                for i, (name, left, top, w, h) in enumerate(objects)],
                "classifications": [], "relationships": []}}


def payload_v2(updated_at, objects=None):
    """v2 (UI-created webhook): the export v2 shape, snake_case."""
    p = {"data_row": {"id": DATA_ROW_ID, "global_key": CAPTURE_ID,
                      "external_id": "horses.jpg"},
         "project": {"id": PROJECT_ID, "name": "animals"}}
    if objects is None:
        p["id"] = LABEL_ID
        p["updated_at"] = updated_at
    else:
        p["label"] = export_label(objects, "2026-11-26T09:15:00.000Z", updated_at)
    return json.dumps(p).encode()


def sign(body, secret=SECRET):
    return ("sha1=" + hmac.new(secret, body, hashlib.sha1).hexdigest(),
            "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest())


def event(body, topic, signature=True, sha256=True, secret=SECRET, sign_body=None):
    headers = {"host": "abcdefghij.lambda-url.us-east-1.on.aws", "content-type": "application/json",
               "user-agent": "Labelbox-Webhooks", "x-labelbox-id": "wh-delivery-0001"}
    if topic:
        headers["x-labelbox-event"] = topic
    if signature:
        s1, s256 = sign(sign_body if sign_body is not None else body, secret)
        headers["x-hub-signature"] = s1
        if sha256:
            headers["x-hub-signature-256"] = s256
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": "/", "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous", "apiId": "abcdefghij",
            "domainName": "abcdefghij.lambda-url.us-east-1.on.aws", "domainPrefix": "abcdefghij",
            "http": {"method": "POST", "path": "/", "protocol": "HTTP/1.1",
                     "sourceIp": "198.51.100.7", "userAgent": "Labelbox-Webhooks"},
            "requestId": "6f2c8d1e-0000-4000-8000-000000000001", "routeKey": "$default",
            "stage": "$default", "time": "26/Nov/2026:09:15:01 +0000", "timeEpoch": 1795684501000,
        },
        "body": body.decode(), "isBase64Encoded": False,
    }


def main():
    horses_v1 = [("Horse", 0, 185, 158, 235), ("Horse", 398, 130, 212, 240), ("Horse", 212, 190, 113, 175)]
    horses_v2 = horses_v1 + [("Unicorn", 600, 200, 50, 60)]
    created = payload("2026-11-26T09:15:00.000Z", horses_v1)
    fixtures = {
        "label-created.json": event(created, "LABEL_CREATED"),
        "label-created-sha1-only.json": event(created, "LABEL_CREATED", sha256=False),
        "label-updated.json": event(payload("2026-11-26T10:00:00.000Z", horses_v2), "LABEL_UPDATED"),
        "label-deleted.json": event(payload("2026-11-26T11:00:00.000Z"), "LABEL_DELETED"),
        # Only the label's id: the webhook fetches the label from Labelbox (LABEL_SOURCE=labelbox).
        "label-created-without-label.json": event(payload("2026-11-26T09:15:00.000Z"), "LABEL_CREATED"),
        "review-created.json": event(payload("2026-11-26T10:30:00.000Z", label_id="rev-1",
                                             label={"id": "clx9k2b0f000108l5d3h2a7qz"}, score=1), "REVIEW_CREATED"),
        "topic-in-payload.json": event(payload("2026-11-26T09:15:00.000Z", horses_v1, event="LABEL_CREATED"), None),
        "unknown-topic.json": event(payload("2026-11-26T09:15:00.000Z"), "WORKFLOW_ACTION"),
        "unsigned.json": event(created, "LABEL_CREATED", signature=False),
        "wrong-secret.json": event(created, "LABEL_CREATED", secret=b"not-the-secret"),
        "tampered.json": event(created.replace(b'clx9k2b0f000108l5d3h2a7qz', b'clx9k2b0f000108l5d3h2a7qX'), "LABEL_CREATED", sign_body=created),
        "malformed-json.json": event(b'{"id": "clx", "dataRow": ', "LABEL_CREATED"),
        "missing-global-key.json": event(json.dumps({"id": "clx", "updatedAt": "2026-11-26T09:15:00Z",
                                                     "label": label(horses_v1)}).encode(), "LABEL_CREATED"),
        # Both payload generations (events/webhook/README.md says where each shape comes from).
        "label-created-v1-row-id.json": event(payload_v1_row_id(horses_v1, createdAt="2026-11-26T09:15:00.000Z",
                                                                updatedAt="2026-11-26T09:15:00.000Z"), "LABEL_CREATED"),
        "label-created-v1-untimed.json": event(payload_v1_row_id(horses_v1), "LABEL_CREATED"),
        "label-created-v2.json": event(payload_v2("2026-11-26T09:15:00.000Z", horses_v1), "LABEL_CREATED"),
        "label-updated-v2.json": event(payload_v2("2026-11-26T10:00:00.000Z", horses_v2), "LABEL_UPDATED"),
        "label-deleted-v2.json": event(payload_v2("2026-11-26T11:00:00.000Z"), "LABEL_DELETED"),
        "unknown-capture.json": event(payload("2026-11-26T09:15:00.000Z", horses_v1,
                                              global_key="01a216ce-1102-7c4e-9a52-000000000000"), "LABEL_CREATED"),
    }
    for name, ev in fixtures.items():
        (HERE / name).write_text(json.dumps(ev, indent=1) + "\n")
    print(f"wrote {len(fixtures)} fixtures to {HERE}")


if __name__ == "__main__":
    main()
