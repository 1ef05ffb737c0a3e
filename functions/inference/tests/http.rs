//! The HTTP edge with a fake detector and an in-memory bucket: routing, the
//! three ways to send an image, every refusal, and capture (also when S3 fails).
//! The real detector on the same events is in `real_model.rs`.

mod support;

use std::path::PathBuf;
use std::sync::Arc;

use lambda_http::{Body, Request};
use modelobs_adapters::memory::MemoryStore;
use modelobs_adapters::{RetryPolicy, Retrying};
use modelobs_core::records::{self, CaptureRecord};
use modelobs_inference::handler::{Deps, handle};
use serde_json::Value;
use support::FakeDetector;

fn deps(allow_client_timestamps: bool) -> Arc<Deps<FakeDetector, Retrying<MemoryStore>>> {
    Arc::new(Deps {
        detector: FakeDetector::new(),
        shadow: None,
        store: Retrying::new(MemoryStore::new(), RetryPolicy::immediate(3)),
        max_body_bytes: 6 * 1024 * 1024,
        allow_client_timestamps,
    })
}

fn fixture(name: &str) -> Request {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../events/inference")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

async fn call(deps: &Arc<Deps<FakeDetector, Retrying<MemoryStore>>>, name: &str) -> (u16, Value) {
    let resp = handle(fixture(name), deps).await;
    let status = resp.status().as_u16();
    assert_eq!(resp.headers()["content-type"], "application/json", "{name}");
    let body = match resp.body() {
        Body::Text(t) => t.clone(),
        other => panic!("{name}: expected a text body, got {other:?}"),
    };
    (status, serde_json::from_str(&body).unwrap())
}

#[tokio::test]
async fn every_way_of_sending_an_image_is_predicted_and_captured() {
    for name in [
        "predict-png.json",
        "predict-png-function-url.json",
        "predict-multipart.json",
        "predict-json-base64.json",
    ] {
        let d = deps(false);
        let (status, body) = call(&d, name).await;
        assert_eq!(status, 200, "{name}: {body}");
        assert_eq!(body["captured"], true);
        assert_eq!(body["model"]["name"], "fake");
        assert_eq!(body["image"]["width"], 64);
        assert_eq!(body["detections"][0]["label"], "dog");
        assert_eq!(body["detections"][0]["box"]["x2"], 30.0);
        for stage in ["decode", "preprocess", "inference", "postprocess", "total"] {
            assert!(body["timings_ms"][stage].is_number(), "{name}: {stage}");
        }

        // THEN the image and its record are in the bucket, under the contract's keys.
        let id = body["id"].as_str().unwrap();
        let keys = d.store.keys();
        assert_eq!(keys.len(), 2, "{keys:?}");
        let record_key = keys
            .iter()
            .find(|k| k.starts_with("captures/predictions/"))
            .unwrap();
        let record: CaptureRecord = records::from_json(&d.store.body(record_key).unwrap()).unwrap();
        assert_eq!(record.id.to_string(), id);
        assert_eq!(
            *record_key,
            modelobs_core::keys::capture_record(record.id, record.captured_at)
        );
        let image = d.store.body(&record.image.key).unwrap();
        assert!(image.starts_with(b"\x89PNG"));
        assert_eq!(record.image.bytes, image.len() as u64);
        assert_eq!(
            d.store.content_type(&record.image.key).unwrap(),
            "image/png"
        );
        assert_eq!(record.detections.len(), 1);
        assert_eq!(record.score_threshold, 0.35);
    }
}

#[tokio::test]
async fn the_client_capture_time_is_honoured_only_when_allowed() {
    let d = deps(true);
    let (status, body) = call(&d, "predict-png-capture-time.json").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        d.store
            .keys()
            .iter()
            .any(|k| k.contains("dt=2026-11-20/hr=08/")),
        "{:?}",
        d.store.keys()
    );

    let d = deps(false);
    let (status, _) = call(&d, "predict-png-capture-time.json").await;
    assert_eq!(status, 200);
    assert!(!d.store.keys().iter().any(|k| k.contains("dt=2026-11-20")));
}

#[tokio::test]
async fn refusals_have_the_right_status_and_a_json_error() {
    let cases = [
        ("predict-empty.json", 400, "bad_request"),
        ("predict-json-malformed.json", 400, "bad_request"),
        ("predict-json-bad-base64.json", 400, "bad_request"),
        ("predict-multipart-no-image.json", 400, "bad_request"),
        ("predict-text-plain.json", 415, "unsupported_media_type"),
        ("predict-gif.json", 415, "unsupported_image_format"),
        ("predict-get.json", 405, "method_not_allowed"),
        ("unknown-path.json", 404, "not_found"),
    ];
    for (name, want_status, want_code) in cases {
        let d = deps(false);
        let (status, body) = call(&d, name).await;
        assert_eq!(status, want_status, "{name}: {body}");
        assert_eq!(body["error"]["code"], want_code, "{name}: {body}");
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
        assert!(
            d.store.keys().is_empty(),
            "{name}: a refused request stores nothing"
        );
    }
}

#[tokio::test]
async fn a_capture_time_no_capture_id_can_carry_is_400() {
    // GIVEN client timestamps allowed, and times before 1970 or past 10889
    let d = deps(true);
    for time in [
        "1969-12-31T23:59:59Z",
        "1900-01-01T00:00:00Z",
        "10900-01-01T00:00:00Z",
    ] {
        let mut req = fixture("predict-png-capture-time.json");
        req.headers_mut()
            .insert("x-capture-time", time.parse().unwrap());
        // WHEN predicted THEN refused with a JSON 400 naming the header, nothing stored
        let resp = handle(req, &d).await;
        assert_eq!(resp.status().as_u16(), 400, "{time}");
        let Body::Text(text) = resp.body() else {
            panic!("text body")
        };
        let body: Value = serde_json::from_str(text).unwrap();
        assert_eq!(body["error"]["code"], "bad_request", "{time}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("X-Capture-Time")
        );
    }
    assert!(d.store.keys().is_empty());
}

#[tokio::test]
async fn the_default_body_limit_is_the_largest_body_lambda_delivers() {
    use modelobs_inference::config::DEFAULT_MAX_BODY_BYTES;
    // Lambda's 6 MB payload carries a binary body base64-encoded: every
    // binary body it delivers is within the default ...
    assert!(DEFAULT_MAX_BODY_BYTES.div_ceil(3) * 4 <= 6 * 1024 * 1024);
    // ... and a text body over it (JSON image_base64) gets our JSON 413
    let mut d = deps(false);
    Arc::get_mut(&mut d).unwrap().max_body_bytes = DEFAULT_MAX_BODY_BYTES;
    let mut req = fixture("predict-json-base64.json");
    *req.body_mut() = Body::Text("x".repeat(DEFAULT_MAX_BODY_BYTES + 1));
    let resp = handle(req, &d).await;
    assert_eq!(resp.status().as_u16(), 413);
    let Body::Text(text) = resp.body() else {
        panic!("text body")
    };
    let body: Value = serde_json::from_str(text).unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");
}

#[tokio::test]
async fn an_oversized_body_is_413() {
    let mut d = deps(false);
    Arc::get_mut(&mut d).unwrap().max_body_bytes = 1000;
    let (status, body) = call(&d, "predict-png.json").await;
    assert_eq!(status, 200, "{body}");
    let mut req = fixture("predict-png.json");
    *req.body_mut() = Body::Binary(vec![0u8; 1001]);
    let resp = handle(req, &d).await;
    assert_eq!(resp.status().as_u16(), 413);
}

#[tokio::test]
async fn health_names_the_model() {
    let (status, body) = call(&deps(false), "health.json").await;
    assert_eq!(status, 200);
    assert_eq!(body["model"]["version"], "1");
}

#[tokio::test]
async fn a_transient_s3_failure_is_retried() {
    let d = deps(false);
    d.store.fail_next(2);
    let (status, body) = call(&d, "predict-png.json").await;
    assert_eq!(status, 200);
    assert_eq!(body["captured"], true);
    assert_eq!(d.store.keys().len(), 2);
}

#[tokio::test]
async fn when_s3_stays_down_the_client_still_gets_its_detections() {
    let d = deps(false);
    d.store.fail_next(100);
    let (status, body) = call(&d, "predict-png.json").await;
    assert_eq!(status, 200);
    assert_eq!(body["captured"], false);
    assert_eq!(body["detections"][0]["label"], "dog");
    assert!(d.store.keys().is_empty());
}

#[test]
fn the_capture_failure_metric_is_valid_emf() {
    let record: CaptureRecord = records::from_json(include_bytes!(
        "../../../events/records/capture-record.json"
    ))
    .unwrap();
    let line: Value = serde_json::from_str(&modelobs_pipeline::emf::capture_failure_line(
        &record,
        1_795_678_933_000,
    ))
    .unwrap();
    let directive = &line["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "ModelObservability");
    for dims in directive["Dimensions"].as_array().unwrap() {
        for d in dims.as_array().unwrap() {
            assert!(
                line[d.as_str().unwrap()].is_string(),
                "dimension {d} is a top-level key"
            );
        }
    }
    for m in directive["Metrics"].as_array().unwrap() {
        assert!(line[m["Name"].as_str().unwrap()].is_number());
    }
    assert_eq!(line["capture_id"], record.id.to_string());
}

#[tokio::test]
async fn a_shadow_model_answers_into_the_bucket_never_to_the_caller() {
    let d = Arc::new(Deps {
        detector: FakeDetector::new(),
        shadow: Some(FakeDetector::version("2-shadow")),
        store: Retrying::new(MemoryStore::new(), RetryPolicy::immediate(3)),
        max_body_bytes: 6 * 1024 * 1024,
        allow_client_timestamps: false,
    });
    let (status, body) = call(&d, "predict-png.json").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"]["version"], "1", "the serving model answers");
    let id: modelobs_core::records::CaptureId = serde_json::from_value(body["id"].clone()).unwrap();
    let serving: CaptureRecord = records::from_json(
        &d.store
            .inner()
            .body(&modelobs_core::keys::capture_record_of(id).unwrap())
            .unwrap(),
    )
    .unwrap();
    let key =
        modelobs_core::keys::shadow_capture_record(id, serving.captured_at, "2-shadow").unwrap();
    let shadow: CaptureRecord = records::from_json(&d.store.inner().body(&key).unwrap()).unwrap();
    assert_eq!(shadow.model.version, "2-shadow");
    assert_eq!((shadow.id, &shadow.image), (serving.id, &serving.image));
    // Its profile waits for the rollup under its own version (no sampler
    // reads a shadow record); the serving record's is the sampler's to write.
    let delta: modelobs_core::records::ProfileDelta = records::from_json(
        &d.store
            .inner()
            .body(&modelobs_core::keys::profile_delta(id, serving.captured_at, "2-shadow").unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (
            delta.capture_id,
            delta.model.version.as_str(),
            &delta.profile
        ),
        (id, "2-shadow", &shadow.profile)
    );
    let pending: Vec<String> = d
        .store
        .inner()
        .keys()
        .into_iter()
        .filter(|k| k.starts_with(modelobs_core::keys::PROFILES_PENDING))
        .collect();
    assert_eq!(pending.len(), 1, "{pending:?}");

    // A failing shadow changes nothing for the caller.
    d.shadow
        .as_ref()
        .unwrap()
        .broken
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let (status, body) = call(&d, "predict-png.json").await;
    assert_eq!(
        (status, &body["captured"]),
        (200, &Value::Bool(true)),
        "{body}"
    );
}
