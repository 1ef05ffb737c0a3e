//! Images dropped under `incoming/`: captured like a request, rejected when not
//! an image, harmless when redelivered, retried when something real fails.

mod support;

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use aws_lambda_events::event::s3::S3Event;
use bytes::Bytes;
use modelobs_adapters::memory::MemoryStore;
use modelobs_adapters::{ObjectStore, PutCondition};
use modelobs_adapters::{RetryPolicy, Retrying};
use modelobs_core::records::{self, CaptureRecord, CaptureSource};
use modelobs_pipeline::ingest::{Outcome, UploadDeps, handle};
use support::FakeDetector;

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n-rest-of-a-png";

fn event(name: &str) -> S3Event {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../events/inference")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

async fn deps_with(
    key: &str,
    body: &'static [u8],
) -> UploadDeps<FakeDetector, Retrying<MemoryStore>> {
    let store = MemoryStore::new();
    store
        .put(
            key,
            Bytes::from_static(body),
            "image/png",
            PutCondition::Always,
        )
        .await
        .unwrap();
    UploadDeps {
        detector: FakeDetector::new(),
        store: Retrying::new(store, RetryPolicy::immediate(3)),
        max_object_bytes: 1 << 20,
    }
}

#[tokio::test]
async fn an_object_over_the_limit_is_moved_aside_unread() {
    // GIVEN an image whose event says it is 10 GB (the limit here: 1 MiB)
    let deps = deps_with("incoming/field cam(1).png", PNG).await;
    let mut e = event("s3-incoming-image.json");
    e.records[0].s3.object.size = Some(10_000_000_000);
    // (the event's ETag is the stored object's, bare, as S3 writes it)
    let stored = deps.store.get("incoming/field cam(1).png").await.unwrap();
    e.records[0].s3.object.e_tag = Some(stored.unwrap().etag.trim_matches('"').to_string());
    // WHEN the event arrives
    let out = handle(e, &deps).await.unwrap();
    // THEN it is rejected without being read (the image would have been
    // captured), copied aside with its reason, and gone from incoming/
    let [Outcome::Rejected { moved_to, .. }] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(deps.detector.calls.load(Ordering::SeqCst), 0);
    assert_eq!(deps.store.body(moved_to).as_deref(), Some(PNG));
    let reason_key = deps
        .store
        .keys()
        .into_iter()
        .find(|k| k.ends_with(".reason.json"))
        .unwrap();
    let reason: serde_json::Value =
        serde_json::from_slice(&deps.store.body(&reason_key).unwrap()).unwrap();
    assert_eq!(reason["code"], "payload_too_large");
    assert!(deps.store.body("incoming/field cam(1).png").is_none());
}

#[tokio::test]
async fn an_uploaded_image_is_captured_once_even_when_redelivered() {
    // GIVEN an image under a key that arrives URL-encoded in the event
    let deps = deps_with("incoming/field cam(1).png", PNG).await;

    // WHEN the event arrives
    let out = handle(event("s3-incoming-image.json"), &deps)
        .await
        .unwrap();

    // THEN it is captured with the upload time and its key as source, and leaves incoming/
    let [Outcome::Captured { capture_id, .. }] = out.as_slice() else {
        panic!("{out:?}")
    };
    let keys = deps.store.keys();
    assert!(!keys.iter().any(|k| k.starts_with("incoming/")), "{keys:?}");
    let record_key = keys
        .iter()
        .find(|k| k.starts_with("captures/predictions/"))
        .unwrap();
    assert!(record_key.contains("dt=2026-11-21/hr=06/"), "{record_key}");
    let record: CaptureRecord = records::from_json(&deps.store.body(record_key).unwrap()).unwrap();
    assert_eq!(record.id, *capture_id);
    assert_eq!(
        record.source,
        CaptureSource::S3Upload {
            key: "incoming/field cam(1).png".into()
        }
    );
    assert_eq!(
        deps.store.body(&record.image.key).unwrap(),
        Bytes::from_static(PNG)
    );

    // WHEN the same event is delivered again, THEN nothing changes
    let again = handle(event("s3-incoming-image.json"), &deps)
        .await
        .unwrap();
    assert!(
        matches!(again.as_slice(), [Outcome::Skipped { .. }]),
        "{again:?}"
    );
    assert_eq!(deps.store.keys(), keys);
}

#[tokio::test]
async fn a_redelivery_before_the_delete_rewrites_the_same_capture() {
    let deps = deps_with("incoming/field cam(1).png", PNG).await;
    let first = handle(event("s3-incoming-image.json"), &deps)
        .await
        .unwrap();
    // Put the object back as if the delete had not happened yet.
    deps.store
        .put(
            "incoming/field cam(1).png",
            Bytes::from_static(PNG),
            "image/png",
            PutCondition::Always,
        )
        .await
        .unwrap();
    let capture_keys = |s: &MemoryStore| {
        s.keys()
            .into_iter()
            .filter(|k| k.starts_with("captures/"))
            .collect::<Vec<_>>()
    };
    let before = capture_keys(&deps.store);
    let second = handle(event("s3-incoming-image.json"), &deps)
        .await
        .unwrap();
    assert_eq!(
        capture_keys(&deps.store).len(),
        before.len(),
        "no second capture"
    );
    let (Outcome::Captured { capture_id: a, .. }, Outcome::Captured { capture_id: b, .. }) =
        (&first[0], &second[0])
    else {
        panic!("{first:?} {second:?}")
    };
    assert_eq!(a, b, "same object, same capture id");
}

#[tokio::test]
async fn a_non_image_is_moved_aside_with_a_reason() {
    let deps = deps_with("incoming/notes.txt", b"shopping list").await;
    let out = handle(event("s3-incoming-text.json"), &deps).await.unwrap();
    assert!(
        matches!(out.as_slice(), [Outcome::Rejected { .. }]),
        "{out:?}"
    );
    assert_eq!(
        deps.store.keys(),
        [
            "incoming-rejected/notes.txt",
            "incoming-rejected/notes.txt.reason.json"
        ]
    );
    let reason: serde_json::Value = serde_json::from_slice(
        &deps
            .store
            .body("incoming-rejected/notes.txt.reason.json")
            .unwrap(),
    )
    .unwrap();
    assert_eq!(reason["code"], "unsupported_image_format");
    assert_eq!(reason["key"], "incoming/notes.txt");
}

#[tokio::test]
async fn objects_outside_incoming_are_not_touched() {
    let key = "captures/images/dt=2026-11-21/hr=06/x.png";
    let deps = deps_with(key, PNG).await;
    let out = handle(event("s3-outside-incoming.json"), &deps)
        .await
        .unwrap();
    assert!(matches!(out.as_slice(), [Outcome::Skipped { .. }]));
    assert_eq!(deps.store.keys(), [key]);
}

#[tokio::test]
async fn model_and_storage_failures_fail_the_event_for_a_retry() {
    let deps = deps_with("incoming/field cam(1).png", PNG).await;
    deps.detector.broken.store(true, Ordering::SeqCst);
    assert!(
        handle(event("s3-incoming-image.json"), &deps)
            .await
            .is_err()
    );
    assert_eq!(
        deps.store.keys(),
        ["incoming/field cam(1).png"],
        "kept for the retry"
    );

    deps.detector.broken.store(false, Ordering::SeqCst);
    deps.store.fail_next(10);
    assert!(
        handle(event("s3-incoming-image.json"), &deps)
            .await
            .is_err()
    );
    assert!(
        deps.store
            .keys()
            .contains(&"incoming/field cam(1).png".to_string())
    );
}
