//! The webhook with an in-memory bucket and queue, on signed Labelbox-shaped
//! fixtures (events/webhook, made by make_fixtures.py with the test secret).

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use lambda_http::{Body, Request};
use modelobs_adapters::memory::MemoryStore;
use modelobs_adapters::queue::MemoryQueue;
use modelobs_adapters::{ObjectStore, PutCondition};
use modelobs_adapters::{RetryPolicy, Retrying};
use modelobs_core::LabelboxBox;
use modelobs_core::keys;
use modelobs_core::records::{self, CaptureRecord, GroundTruth};
use modelobs_labelbox::webhook::payload::ClassMap;
use modelobs_labelbox::webhook::payload::LabelledObject;
use modelobs_pipeline::label_source::{FetchError, FetchedLabel, LabelRef, MemoryFetcher};
use modelobs_webhook::handler::{Deps, handle};
use serde_json::Value;

/// Fetching from Labelbox not configured (LABEL_SOURCE=local).
type TestDeps = Arc<Deps<Retrying<MemoryStore>, MemoryQueue, Option<MemoryFetcher>>>;

const SECRET: &[u8] = b"test-webhook-secret";
const CAPTURE: &[u8] = include_bytes!("../../../events/records/capture-record.json");

fn fixture(name: &str) -> Request {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../events/webhook")
        .join(name);
    lambda_http::request::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A stack that has seen the fixture's capture.
async fn deps() -> TestDeps {
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
    Arc::new(Deps {
        store: Retrying::new(store, RetryPolicy::immediate(2)),
        queue: MemoryQueue::new(),
        fetcher: None,
        secret: SECRET.to_vec(),
        max_body_bytes: 1024 * 1024,
        class_map: ClassMap::default(),
        source: "labelbox".into(),
    })
}

async fn call<F: modelobs_pipeline::label_source::LabelFetcher + Send + Sync + 'static>(
    d: &Arc<Deps<Retrying<MemoryStore>, MemoryQueue, F>>,
    req: Request,
) -> (u16, Value) {
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

fn label<F>(d: &Deps<Retrying<MemoryStore>, MemoryQueue, F>) -> GroundTruth {
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
async fn other_methods_are_405_with_allow_and_write_nothing() {
    let d = deps().await;
    let before = d.store.keys();
    let mut req = fixture("label-created.json");
    *req.method_mut() = lambda_http::http::Method::GET;
    let resp = handle(req, &d).await;
    assert_eq!(resp.status().as_u16(), 405);
    assert_eq!(resp.headers()["allow"], "POST");
    let Body::Text(text) = resp.body() else {
        panic!("text body")
    };
    let body: Value = serde_json::from_str(text).unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
    assert_eq!(d.store.keys(), before);
    assert!(d.queue.sent().is_empty());
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
    Arc::get_mut(&mut d).unwrap().max_body_bytes = 100;
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

// --- labels the payload does not carry: fetched from the label source ---

const LABEL_ID: &str = "clx9k2b0f000108l5d3h2a7qz";
const PROJECT_ID: &str = "clx9jy0aa000008l5fffff000";

/// The three horses of label-created.json, as a label source returns them.
fn horses(updated_at: Option<&str>) -> FetchedLabel {
    let horse = |left, top, width, height| LabelledObject {
        name: "Horse".into(),
        bbox: LabelboxBox {
            top,
            left,
            height,
            width,
        },
    };
    FetchedLabel {
        objects: vec![
            horse(0.0, 185.0, 158.0, 235.0),
            horse(398.0, 130.0, 212.0, 240.0),
            horse(212.0, 190.0, 113.0, 175.0),
        ],
        updated_at: updated_at.map(|t| t.parse().unwrap()),
    }
}

/// A stack that has seen the capture and fetches labels from `fetcher`.
async fn fetching(
    fetcher: MemoryFetcher,
) -> Arc<Deps<Retrying<MemoryStore>, MemoryQueue, MemoryFetcher>> {
    let d = Arc::try_unwrap(deps().await)
        .ok()
        .expect("a fresh stack has one owner");
    Arc::new(Deps {
        store: d.store,
        queue: d.queue,
        fetcher,
        secret: d.secret,
        max_body_bytes: d.max_body_bytes,
        class_map: d.class_map,
        source: d.source,
    })
}

#[tokio::test]
async fn a_label_without_its_json_is_fetched_and_stored_like_one_with_it() {
    // GIVEN the label source has the label the event names
    let fetcher = MemoryFetcher::new();
    fetcher.insert(LABEL_ID, horses(None));
    let d = fetching(fetcher).await;

    // WHEN the event without the label JSON arrives
    let (status, body) = call(&d, fixture("label-created-without-label.json")).await;

    // THEN the label was fetched by project, global key and label id
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        d.fetcher.requests(),
        [LabelRef {
            project_id: Some(PROJECT_ID.into()),
            global_key: capture_id(),
            label_id: LABEL_ID.into(),
        }]
    );
    // AND the ground truth is exactly what the same label in the payload gives
    let with_json = deps().await;
    let (status, _) = call(&with_json, fixture("label-created.json")).await;
    assert_eq!(status, 200);
    assert_eq!(label(&d), label(&with_json));
    // AND one message went out for its version
    let sent = d.queue.sent();
    assert_eq!(sent.len(), 1);
    let msg: Value = serde_json::from_str(&sent[0]).unwrap();
    assert_eq!(msg["label_version"], label(&d).version());
}

#[tokio::test]
async fn a_fetched_label_newer_than_its_event_is_stored_at_the_sources_time() {
    // GIVEN the label changed at 09:40, after the 09:15 event was sent
    let fetcher = MemoryFetcher::new();
    fetcher.insert(LABEL_ID, horses(Some("2026-11-26T09:40:00Z")));
    let d = fetching(fetcher).await;

    let (status, body) = call(&d, fixture("label-created-without-label.json")).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(
        label(&d).updated_at.to_rfc3339(),
        "2026-11-26T09:40:00+00:00"
    );
}

#[tokio::test]
async fn labelbox_unavailable_is_503_with_no_side_effect_and_the_redelivery_succeeds() {
    // GIVEN a label source that is down for one request
    let fetcher = MemoryFetcher::new();
    fetcher.insert(LABEL_ID, horses(None));
    fetcher.fail_next(FetchError::Unavailable("HTTP 503".into()));
    let d = fetching(fetcher).await;
    let before = d.store.keys();

    // WHEN the event arrives, and again
    let (status, body) = call(&d, fixture("label-created-without-label.json")).await;

    // THEN the first answer asks for a retry and wrote nothing
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");
    assert_eq!(d.store.keys(), before);
    assert!(d.queue.sent().is_empty());
    // AND the redelivery stores the label
    let (status, body) = call(&d, fixture("label-created-without-label.json")).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("accepted")));
    assert_eq!(d.queue.sent().len(), 1);
}

#[tokio::test]
async fn labelbox_refusing_is_502_with_no_side_effect() {
    let fetcher = MemoryFetcher::new();
    fetcher.fail_next(FetchError::Refused("Labelbox rejected the API key".into()));
    let d = fetching(fetcher).await;
    let before = d.store.keys();

    let (status, body) = call(&d, fixture("label-created-without-label.json")).await;

    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "label_source_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("API key")
    );
    assert_eq!(d.store.keys(), before);
    assert!(d.queue.sent().is_empty());
}

#[tokio::test]
async fn a_label_missing_at_its_source_is_202_and_writes_nothing() {
    // GIVEN a label source without the label (deleted since the event was sent)
    let d = fetching(MemoryFetcher::new()).await;
    let before = d.store.keys();

    let (status, body) = call(&d, fixture("label-created-without-label.json")).await;

    assert_eq!(
        (status, body["status"].as_str()),
        (202, Some("ignored")),
        "{body}"
    );
    assert_eq!(body["label_id"], LABEL_ID);
    assert_eq!(d.store.keys(), before);
    assert!(d.queue.sent().is_empty());
}

#[tokio::test]
async fn without_a_label_source_a_payload_without_label_json_is_400() {
    let d = deps().await;

    let (status, body) = call(&d, fixture("label-created-without-label.json")).await;

    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no label JSON"),
        "{body}"
    );
    assert!(d.queue.sent().is_empty());
}

#[tokio::test]
async fn the_source_is_not_asked_when_the_payload_carries_the_label_or_a_deletion() {
    for name in ["label-created.json", "label-deleted.json"] {
        let d = fetching(MemoryFetcher::new()).await;
        let (status, body) = call(&d, fixture(name)).await;
        assert_eq!(status, 200, "{name}: {body}");
        assert!(d.fetcher.requests().is_empty(), "{name}");
    }
}
