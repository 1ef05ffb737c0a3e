#!/usr/bin/env python3
"""Writes the inference function's HTTP event fixtures (API Gateway HttpApi v2
and function URL payloads). Run from anywhere; standard library only.

The same files feed the handler tests, `cargo lambda invoke inference
--data-file events/inference/<name>.json` and `sam local invoke -e`.
"""
import base64
import json
import struct
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header(width, height):
    """PNG signature + IHDR: enough for a reader to learn the size."""
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))


def png(width, height, rgb=(200, 120, 40)):
    """A valid RGB PNG of one colour."""
    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return png_header(width, height) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def event(method, path, headers=None, body=b"", url=False):
    domain = "abcdefghij.lambda-url.us-east-1.on.aws" if url else "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com"
    route = "$default" if url else f"{method} {path}"
    return {
        "version": "2.0",
        "routeKey": route,
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"host": domain, "user-agent": "fixture", **(headers or {})},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": domain.split(".")[0],
            "domainName": domain,
            "domainPrefix": domain.split(".")[0],
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "192.0.2.10", "userAgent": "fixture"},
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "routeKey": route,
            "stage": "$default",
            "time": "26/Nov/2026:07:42:13 +0000",
            "timeEpoch": 1795678933000,
        },
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
    }


def multipart(field, filename, content, content_type):
    boundary = "----modelobsfixture7MA4YWxkTrZu0gW"
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return {"content-type": f"multipart/form-data; boundary={boundary}"}, body


def s3_event(key, etag="9b2cf535f27731c974343645a3985328", time="2026-11-21T06:30:00.000Z"):
    """An S3 ObjectCreated notification; `key` as AWS sends it (URL-encoded)."""
    return {"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": time, "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:EXAMPLE"},
        "requestParameters": {"sourceIPAddress": "192.0.2.10"},
        "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "FMyUVURIY8"},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "incoming-images",
               "bucket": {"name": "modelobs-data", "ownerIdentity": {"principalId": "EXAMPLE"},
                          "arn": "arn:aws:s3:::modelobs-data"},
               "object": {"key": key, "size": 1024, "eTag": etag, "sequencer": "0055AED6DCD90281E5"}},
    }]}


def main():
    img = png(64, 48)
    fixtures = {
        "predict-png.json": event("POST", "/predict", {"content-type": "image/png"}, img),
        "predict-png-function-url.json": event("POST", "/predict", {"content-type": "image/png"}, img, url=True),
        "predict-png-capture-time.json": event(
            "POST", "/predict", {"content-type": "image/png", "x-capture-time": "2026-11-20T08:15:00Z"}, img),
        "predict-multipart.json": event("POST", "/predict", *multipart("image", "x.png", img, "image/png")),
        "predict-multipart-no-image.json": event("POST", "/predict", *multipart("picture", "x.png", img, "image/png")),
        "predict-json-base64.json": event(
            "POST", "/predict", {"content-type": "application/json"},
            json.dumps({"image_base64": base64.b64encode(img).decode()}).encode()),
        "predict-json-malformed.json": event("POST", "/predict", {"content-type": "application/json"}, b'{"image_base64": '),
        "predict-json-bad-base64.json": event(
            "POST", "/predict", {"content-type": "application/json"}, b'{"image_base64": "not base64!"}'),
        "predict-empty.json": event("POST", "/predict", {"content-type": "image/png"}, b""),
        "predict-text-plain.json": event("POST", "/predict", {"content-type": "text/plain"}, b"hello"),
        "predict-gif.json": event("POST", "/predict", {"content-type": "image/gif"}, b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"),
        "predict-truncated-png.json": event("POST", "/predict", {"content-type": "image/png"}, img[: len(img) // 2]),
        # A 20000x20000 PNG header (400 MP) with no pixel data: refused before decoding.
        "predict-huge-png.json": event("POST", "/predict", {"content-type": "image/png"}, png_header(20000, 20000)),
        "predict-get.json": event("GET", "/predict"),
        "health.json": event("GET", "/health"),
        "unknown-path.json": event("GET", "/nope"),
        "s3-incoming-image.json": s3_event("incoming/field+cam%281%29.png"),
        "s3-incoming-text.json": s3_event("incoming/notes.txt"),
        "s3-outside-incoming.json": s3_event("captures/images/dt=2026-11-21/hr=06/x.png"),
    }
    for name, ev in fixtures.items():
        (HERE / name).write_text(json.dumps(ev, indent=1) + "\n")
    print(f"wrote {len(fixtures)} fixtures to {HERE}")


if __name__ == "__main__":
    main()
