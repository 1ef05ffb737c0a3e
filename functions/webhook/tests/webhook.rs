//! The webhook with an in-memory bucket and queue, on signed Labelbox-shaped
//! fixtures (events/webhook, made by make_fixtures.py with the test secret).

use std::path::PathBuf;

use bytes::Bytes;
use lambda_http::{Body, Request};
use modelobs_adapters::memory::MemoryStore;
use modelobs_adapters::queue::MemoryQueue;
use modelobs_adapters::retry::Backoff;
use modelobs_adapters::{ObjectStore, PutCondition};
use modelobs_core::keys;
use modelobs_core::records::{self, CaptureRecord, GroundTruth};
use serde_json::Value;
use webhook::handler::{Deps, handle};
use webhook::payload::ClassMap;

const SECRET: &[u8] = b"test-webhook-secret";
const CAPTURE: &[u8] = include_bytes!("../../../events/records/capture-record.json");

fn fixture(name: &str) -> Request {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../events/webhook")
        .join(name);
    lambda_http::request::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A stack that has seen the fixture's capture.
async fn deps() -> Deps<MemoryStore, MemoryQueue> {
    let store = MemoryStore::new();
    let capture: CaptureRecord = records::from_json(CAPTURE).unwrap();
    store
        .put(
            &keys::capture_record(capture.id, capture.captured_at),
            Bytes::from_static(CAPTURE),
            "application/json",
            PutCondition::Always,
        )
        .await
        .unwrap();
    Deps {
        store,
        queue: MemoryQueue::new(),
        secret: SECRET.to_vec(),
        max_body_bytes: 1024 * 1024,
        class_map: ClassMap::default(),
        backoff: Backoff::immediate(2),
        source: "labelbox".into(),
    }
}

async fn call(d: &Deps<MemoryStore, MemoryQueue>, req: Request) -> (u16, Value) {
    let resp = handle(req, d).await;
    let Body::Text(text) = resp.body() else {
        panic!("text body")
    };
    (resp.status().as_u16(), serde_json::from_str(text).unwrap())
}

fn capture_id() -> String {
    let c: CaptureRecord = records::from_json(CAPTURE).unwrap();
    c.id.to_string()
}

fn label(d: &Deps<MemoryStore, MemoryQueue>) -> GroundTruth {
    let id = modelobs_core::records::CaptureId::parse(&capture_id()).unwrap();
    records::from_json(&d.store.body(&keys::label(id)).expect("labels/<id>.json")).unwrap()
}

#[tokio::test]
async fn a_signed_label_becomes_ground_truth_and_one_message() {
    for name in [
        "label-created.json",
        "label-created-sha1-only.json",
        "topic-in-payload.json",
    ] {
        let d = deps().await;
        let (status, body) = call(&d, fixture(name)).await;
        assert_eq!(status, 200, "{name}: {body}");
        let gt = label(&d);
        assert_eq!(gt.objects.len(), 3);
        assert!(gt.objects.iter().all(|o| o.label == "horse"));
        assert_eq!(gt.objects[0].bbox.to_labelbox().top, 185.0);
        let sent = d.queue.sent();
        assert_eq!(sent.len(), 1, "{name}");
        let msg: Value = serde_json::from_str(&sent[0]).unwrap();
        assert_eq!(msg["id"], capture_id());
        assert_eq!(msg["label_version"], gt.version());
        assert!(
            d.store
                .keys()
                .iter()
                .any(|k| k.starts_with("labels/history/"))
        );
    }
}

#[tokio::test]
async fn a_replayed_event_changes_nothing_downstream() {
    let d = deps().await;
    call(&d, fixture("label-created.json")).await;
    let keys_before = d.store.keys();
    let (status, body) = call(&d, fixture("label-created.json")).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "unchanged");
    assert_eq!(d.queue.sent().len(), 1, "one message per label version");
    assert_eq!(d.store.keys(), keys_before);
}

#[tokio::test]
async fn created_updated_deleted_in_order_and_out_of_order() {
    let d = deps().await;
    call(&d, fixture("label-created.json")).await;
    let (status, body) = call(&d, fixture("label-updated.json")).await;
    assert_eq!(status, 200, "{body}");
    let gt = label(&d);
    assert_eq!(
        gt.objects.len(),
        3,
        "the unicorn is reported, not evaluated"
    );
    assert_eq!(gt.unmapped_objects, ["Unicorn"]);
    assert_eq!(body["unmapped_objects"][0], "Unicorn");

    // The older version arriving late does not win.
    let (status, body) = call(&d, fixture("label-created.json")).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("stale")));
    assert_eq!(label(&d).unmapped_objects, ["Unicorn"]);

    let (status, _) = call(&d, fixture("label-deleted.json")).await;
    assert_eq!(status, 200);
    let gt = label(&d);
    assert!(gt.deleted && gt.objects.is_empty(), "a tombstone");
    assert_eq!(
        d.queue.sent().len(),
        3,
        "created, updated, deleted: one message each"
    );
    let history = d
        .store
        .keys()
        .into_iter()
        .filter(|k| k.ends_with(".json") && k.starts_with("labels/history/"))
        .count();
    assert_eq!(history, 3);
}

#[tokio::test]
async fn a_stale_version_sends_nothing() {
    let d = deps().await;
    call(&d, fixture("label-updated.json")).await;
    let (status, body) = call(&d, fixture("label-created.json")).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("stale")));
    assert_eq!(d.queue.sent().len(), 1);
}

#[tokio::test]
async fn a_review_amends_the_score() {
    let d = deps().await;
    call(&d, fixture("label-created.json")).await;
    let (status, body) = call(&d, fixture("review-created.json")).await;
    assert_eq!(status, 200, "{body}");
    let gt = label(&d);
    assert_eq!(gt.review_score, Some(1.0));
    assert_eq!(gt.objects.len(), 3);
}

#[tokio::test]
async fn unsigned_or_wrongly_signed_requests_write_nothing() {
    for name in ["unsigned.json", "wrong-secret.json", "tampered.json"] {
        let d = deps().await;
        let before = d.store.keys();
        let (status, body) = call(&d, fixture(name)).await;
        assert_eq!(status, 401, "{name}: {body}");
        assert_eq!(body["error"]["code"], "unauthorized");
        assert_eq!(d.store.keys(), before, "{name}: no side effect");
        assert!(d.queue.sent().is_empty());
    }
}

#[tokio::test]
async fn bad_payloads_are_400_naming_the_field() {
    let cases = [
        ("malformed-json.json", "not JSON"),
        ("missing-global-key.json", "dataRow.globalKey"),
        ("unknown-capture.json", "no capture"),
    ];
    for (name, words) in cases {
        let d = deps().await;
        let (status, body) = call(&d, fixture(name)).await;
        assert_eq!(status, 400, "{name}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(words),
            "{name}: {body}"
        );
        assert!(d.queue.sent().is_empty());
    }
}

#[tokio::test]
async fn unknown_topics_are_accepted_and_ignored() {
    let d = deps().await;
    let before = d.store.keys();
    let (status, body) = call(&d, fixture("unknown-topic.json")).await;
    assert_eq!((status, body["status"].as_str()), (202, Some("ignored")));
    assert_eq!(d.store.keys(), before);
}

#[tokio::test]
async fn an_oversized_body_is_413() {
    let mut d = deps().await;
    d.max_body_bytes = 100;
    let (status, _) = call(&d, fixture("label-created.json")).await;
    assert_eq!(status, 413);
}

#[tokio::test]
async fn storage_or_queue_trouble_is_503_and_the_retry_succeeds_once() {
    let d = deps().await;
    // Down for both attempts of the first read.
    d.store.fail_next(2);
    let (status, body) = call(&d, fixture("label-created.json")).await;
    assert_eq!(status, 503, "{body}");
    assert!(d.queue.sent().is_empty());

    d.queue.fail_next(1);
    let (status, _) = call(&d, fixture("label-created.json")).await;
    assert_eq!(status, 503, "the queue refused: the sender must retry");
    assert!(d.queue.sent().is_empty());

    let (status, body) = call(&d, fixture("label-created.json")).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("accepted")));
    assert_eq!(d.queue.sent().len(), 1);
}
