//! The HTTP edge with the real detector (NanoDet on ONNX Runtime): a photo is
//! answered with its animals, and bad images get their status from the real
//! decoder. Needs `ORT_DYLIB_PATH` (`make test` provides it via `make ort`).

use std::path::PathBuf;
use std::sync::Arc;

use lambda_http::{Body, Request};
use modelobs_adapters::memory::MemoryStore;
use modelobs_detector::{DetectorConfig, OnnxDetector};
use modelobs_inference::handler::{Deps, handle};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn detector() -> OnnxDetector {
    modelobs_testkit::require_ort();
    OnnxDetector::load(&DetectorConfig::new(root().join("models/nanodet"))).unwrap()
}

fn fixture(name: &str) -> Request {
    let text = std::fs::read_to_string(root().join("events/inference").join(name)).unwrap();
    lambda_http::request::from_str(&text).unwrap()
}

async fn call(deps: &Arc<Deps<OnnxDetector, MemoryStore>>, req: Request) -> (u16, Value) {
    let resp = handle(req, deps).await;
    let status = resp.status().as_u16();
    let Body::Text(text) = resp.body() else {
        panic!("text body")
    };
    (status, serde_json::from_str(text).unwrap())
}

#[tokio::test]
#[ignore = "needs ONNX Runtime (ORT_DYLIB_PATH): make test runs it"]
async fn photos_and_bad_images_through_the_real_model() {
    let detector = detector();
    let deps = Arc::new(Deps {
        detector,
        shadow: None,
        store: MemoryStore::new(),
        max_body_bytes: 6 * 1024 * 1024,
        allow_client_timestamps: false,
    });

    for (name, status, code) in [
        ("predict-truncated-png.json", 400, "undecodable_image"),
        ("predict-huge-png.json", 422, "image_too_large"),
        ("predict-gif.json", 415, "unsupported_image_format"),
    ] {
        let (got, body) = call(&deps, fixture(name)).await;
        assert_eq!(
            (got, body["error"]["code"].as_str().unwrap()),
            (status, code),
            "{name}: {body}"
        );
    }
    // Decompression bombs in every format: 422 with a JSON body, nothing stored
    for bomb in modelobs_testkit::bombs::all(256 << 20) {
        let mut req = fixture("predict-png.json");
        req.headers_mut()
            .insert("content-type", bomb.content_type.parse().unwrap());
        *req.body_mut() = Body::Binary(bomb.bytes);
        let (got, body) = call(&deps, req).await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (422, Some("image_too_large")),
            "{}: {body}",
            bomb.name
        );
    }
    assert!(deps.store.keys().is_empty());

    let photos = std::env::var("MODELOBS_TEST_PHOTOS").unwrap_or("/usr/share/darknet/data".into());
    let horses = std::fs::read(PathBuf::from(photos).join("horses.jpg"))
        .expect("darknet photos (make photos)");
    let mut req = fixture("predict-png.json");
    req.headers_mut()
        .insert("content-type", "image/jpeg".parse().unwrap());
    *req.body_mut() = Body::Binary(horses);
    let (status, body) = call(&deps, req).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["captured"], true);
    assert_eq!(
        (
            body["image"]["width"].as_u64(),
            body["image"]["height"].as_u64()
        ),
        (Some(773), Some(512))
    );
    let labels: Vec<&str> = body["detections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["label"].as_str().unwrap())
        .collect();
    assert!(labels.contains(&"horse"), "{labels:?}");
    assert!(
        deps.store.keys().iter().any(|k| k.ends_with(".jpg")),
        "{:?}",
        deps.store.keys()
    );
}
