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
use modelobs_pipeline::label_source::{FetchError, FetchedLabel, LabelRef, MemoryFetcher, RowRef};
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
        global_key: Some(capture_id()),
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
            row: RowRef::GlobalKey(capture_id()),
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
async fn the_source_is_not_asked_when_the_payload_carries_the_label() {
    // (A deletion named only by the header is checked with the source: see below.)
    for name in ["label-created.json"] {
        let d = fetching(MemoryFetcher::new()).await;
        let (status, body) = call(&d, fixture(name)).await;
        assert_eq!(status, 200, "{name}: {body}");
        assert!(d.fetcher.requests().is_empty(), "{name}");
    }
}

// --- which label an event applies to, and which topic it is (issue 12, item 3) ---

/// The body of a fixture, as the JSON Labelbox signed.
fn body_of(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../events/webhook")
        .join(name);
    let event: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    serde_json::from_str(event["body"].as_str().unwrap()).unwrap()
}

/// `body` signed with the test secret, its topic in `X-Labelbox-Event` when given.
fn signed(topic_header: Option<&str>, body: &Value) -> Request {
    signed_bytes(topic_header, body.to_string().into_bytes())
}

/// The same bytes, signed as they are: a delivery replayed byte for byte.
fn signed_bytes(topic_header: Option<&str>, body: Vec<u8>) -> Request {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events/webhook/label-created.json");
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let (sha1, sha256) = modelobs_labelbox::webhook::signature::sign(SECRET, &body);
    let headers = event["headers"].as_object_mut().unwrap();
    headers.insert("x-hub-signature".into(), sha1.into());
    headers.insert("x-hub-signature-256".into(), sha256.into());
    match topic_header {
        Some(t) => headers.insert("x-labelbox-event".into(), t.into()),
        None => headers.remove("x-labelbox-event"),
    };
    event["body"] = String::from_utf8(body).unwrap().into();
    lambda_http::request::from_str(&event.to_string()).unwrap()
}

/// The raw body of a fixture, byte for byte as it was signed.
fn raw_body_of(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../events/webhook")
        .join(name);
    let event: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    event["body"].as_str().unwrap().as_bytes().to_vec()
}

/// label-created.json's horses as another label of the same data row, at `at`.
fn label_b(at: &str) -> Value {
    let mut b = body_of("label-created.json");
    b["id"] = "label-b".into();
    b["updatedAt"] = at.into();
    b
}

fn history_count<F>(d: &Deps<Retrying<MemoryStore>, MemoryQueue, F>) -> usize {
    d.store
        .keys()
        .into_iter()
        .filter(|k| k.starts_with("labels/history/") && k.ends_with(".json"))
        .count()
}

fn history_of<F>(d: &Deps<Retrying<MemoryStore>, MemoryQueue, F>) -> Vec<GroundTruth> {
    d.store
        .keys()
        .into_iter()
        .filter(|k| k.starts_with("labels/history/") && k.ends_with(".json"))
        .map(|k| records::from_json(&d.store.body(&k).unwrap()).unwrap())
        .collect()
}

#[tokio::test]
async fn a_delete_of_an_older_label_leaves_the_newer_label_current() {
    // GIVEN label A (09:15), then label B of the same capture (10:00), current
    let d = deps().await;
    call(&d, fixture("label-created.json")).await;
    let (status, body) = call(
        &d,
        signed(Some("LABEL_CREATED"), &label_b("2026-11-26T10:00:00.000Z")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let sent_before = d.queue.sent().len();

    // WHEN A's deletion (11:00) arrives
    let (status, body) = call(&d, fixture("label-deleted.json")).await;

    // THEN B is still the current label, whole
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("stale")),
        "{body}"
    );
    assert!(body["why"].as_str().unwrap().contains("label-b"), "{body}");
    let gt = label(&d);
    assert_eq!(gt.label_id, "label-b");
    assert!(!gt.deleted);
    assert_eq!(gt.objects.len(), 3);
    // AND A's deletion is in the history, with nothing queued for it
    assert!(
        history_of(&d)
            .iter()
            .any(|h| h.deleted && h.label_id == LABEL_ID),
        "the deletion of A is recorded"
    );
    assert_eq!(d.queue.sent().len(), sent_before);
}

#[tokio::test]
async fn a_delete_without_updated_at_is_versioned_just_after_its_label_and_loses_to_a_newer_one() {
    // GIVEN label A (09:15) current
    let d = deps().await;
    call(&d, fixture("label-created.json")).await;
    let a = label(&d);

    // WHEN A's deletion arrives with no updatedAt of its own
    let mut delete = body_of("label-deleted.json");
    delete.as_object_mut().unwrap().remove("updatedAt");
    delete.as_object_mut().unwrap().remove("createdAt");
    let (status, body) = call(&d, signed(Some("LABEL_DELETED"), &delete)).await;

    // THEN A is deleted at the version just after A's, not at the time it arrived
    assert_eq!(status, 200, "{body}");
    let tombstone = label(&d);
    assert!(tombstone.deleted);
    assert_eq!(tombstone.label_id, LABEL_ID);
    assert_eq!(tombstone.version(), a.version() + 1);
    assert_eq!(body["label_version"], a.version() + 1);

    // AND label B, made at 10:00 (after the deletion, arriving later), becomes current
    let (status, body) = call(
        &d,
        signed(Some("LABEL_CREATED"), &label_b("2026-11-26T10:00:00.000Z")),
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("accepted")),
        "{body}"
    );
    let gt = label(&d);
    assert_eq!(gt.label_id, "label-b");
    assert!(!gt.deleted);
    assert_eq!(d.queue.sent().len(), 3, "A, A's deletion, B");
}

#[tokio::test]
async fn a_delayed_delete_without_updated_at_does_not_remove_the_label_made_after_it() {
    // GIVEN label A (09:15), and B (10:00) that replaced it, current
    let d = deps().await;
    call(&d, fixture("label-created.json")).await;
    call(
        &d,
        signed(Some("LABEL_CREATED"), &label_b("2026-11-26T10:00:00.000Z")),
    )
    .await;

    // WHEN A's deletion, sent before B was made but delayed, arrives without updatedAt
    let mut delete = body_of("label-deleted.json");
    delete.as_object_mut().unwrap().remove("updatedAt");
    delete.as_object_mut().unwrap().remove("createdAt");
    let (status, body) = call(&d, signed(Some("LABEL_DELETED"), &delete)).await;

    // THEN B stays current: the deletion names A
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("stale")),
        "{body}"
    );
    let gt = label(&d);
    assert_eq!(gt.label_id, "label-b");
    assert!(!gt.deleted);
    assert_eq!(d.queue.sent().len(), 2);
}

#[tokio::test]
async fn a_deleted_label_stays_deleted_when_its_older_content_arrives_late() {
    // GIVEN label A deleted (its deletion arrived first)
    let d = deps().await;
    let (status, _) = call(&d, fixture("label-deleted.json")).await;
    assert_eq!(status, 200);

    // WHEN A's creation, delayed, arrives
    let (status, body) = call(&d, fixture("label-created.json")).await;

    // THEN A stays deleted
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("stale")),
        "{body}"
    );
    assert!(label(&d).deleted);
    assert_eq!(d.queue.sent().len(), 1);
}

#[tokio::test]
async fn a_signed_label_body_replayed_with_a_delete_header_deletes_nothing() {
    // GIVEN a signed LABEL_CREATED delivery seen on the wire
    let d = deps().await;
    let created = raw_body_of("label-created.json");

    // WHEN it is replayed, byte for byte and validly signed, as LABEL_DELETED, before the real one
    let (status, body) = call(&d, signed_bytes(Some("LABEL_DELETED"), created.clone())).await;

    // THEN it is refused: the header is not signed, and a deletion carries no label
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("X-Labelbox-Event"),
        "{body}"
    );
    let id = modelobs_core::records::CaptureId::parse(&capture_id()).unwrap();
    assert!(d.store.body(&keys::label(id)).is_none(), "nothing stored");
    assert!(d.queue.sent().is_empty());
    // AND the genuine delivery then stores the label
    let (status, _) = call(&d, fixture("label-created.json")).await;
    assert_eq!(status, 200);
    let gt = label(&d);
    assert!(!gt.deleted);
    assert_eq!(gt.objects.len(), 3);
}

#[tokio::test]
async fn a_topic_in_the_signed_body_wins_and_a_header_saying_otherwise_is_refused() {
    // GIVEN a body that says LABEL_CREATED, signed
    let d = deps().await;
    let body = body_of("topic-in-payload.json");
    assert_eq!(body["event"], "LABEL_CREATED");

    // WHEN it arrives with the header LABEL_DELETED
    let (status, answer) = call(&d, signed(Some("LABEL_DELETED"), &body)).await;

    // THEN 400 names both topics, and nothing is written
    assert_eq!(status, 400, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("LABEL_CREATED") && message.contains("LABEL_DELETED"),
        "{message}"
    );
    assert!(history_count(&d) == 0);
    assert!(d.queue.sent().is_empty());
    // AND with the same topic in the header, or none, it is a label
    for header in [Some("LABEL_CREATED"), None] {
        let (status, answer) = call(&d, signed(header, &body)).await;
        assert_eq!(status, 200, "{header:?}: {answer}");
    }
    assert!(!label(&d).deleted);
}

#[tokio::test]
async fn a_header_only_deletion_is_refused_while_the_source_still_has_the_label() {
    // GIVEN the label recorded, and still at its source
    let fetcher = MemoryFetcher::new();
    fetcher.insert(LABEL_ID, horses(None));
    let d = fetching(fetcher).await;
    call(&d, fixture("label-created.json")).await;

    // WHEN a deletion named only by the (unsigned) header arrives
    let (status, body) = call(&d, fixture("label-deleted.json")).await;

    // THEN it is refused, having asked the source, and the label stays
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("still exists"),
        "{body}"
    );
    assert_eq!(d.fetcher.requests().len(), 1);
    assert!(!label(&d).deleted);
    assert_eq!(d.queue.sent().len(), 1);
}

#[tokio::test]
async fn a_header_only_deletion_applies_once_the_source_no_longer_has_the_label() {
    // GIVEN the label recorded, and gone from its source
    let d = fetching(MemoryFetcher::new()).await;
    call(&d, fixture("label-created.json")).await;

    // WHEN its deletion arrives
    let (status, body) = call(&d, fixture("label-deleted.json")).await;

    // THEN it is deleted
    assert_eq!(status, 200, "{body}");
    assert!(label(&d).deleted);
    assert_eq!(d.queue.sent().len(), 2);
}

#[tokio::test]
async fn a_review_does_not_hide_a_delayed_label_update() {
    // GIVEN label A (09:15), then a review of it (10:30, score 1) without the label
    let d = deps().await;
    call(&d, fixture("label-created.json")).await;
    let (status, body) = call(&d, fixture("review-created.json")).await;
    assert_eq!(status, 200, "{body}");
    // ... which keeps the label's version and sends nothing to evaluate again
    assert_eq!(label(&d).version(), body_version("label-created.json"));
    assert_eq!(label(&d).review_score, Some(1.0));
    assert_eq!(d.queue.sent().len(), 1);

    // WHEN A's update made at 10:00 arrives late (a retried delivery)
    let (status, body) = call(&d, fixture("label-updated.json")).await;

    // THEN the update is the current label, and the review's score is kept
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("accepted")),
        "{body}"
    );
    let gt = label(&d);
    assert_eq!(gt.unmapped_objects, ["Unicorn"]);
    assert_eq!(gt.version(), body_version("label-updated.json"));
    assert_eq!(gt.review_score, Some(1.0));
    assert_eq!(d.queue.sent().len(), 2, "one message per label version");
}

#[tokio::test]
async fn a_later_review_of_the_same_label_updates_the_score_and_an_older_one_does_not() {
    // GIVEN label A reviewed at 10:30 with score 1
    let d = deps().await;
    call(&d, fixture("label-created.json")).await;
    call(&d, fixture("review-created.json")).await;

    // WHEN a review at 10:45 scores it 0, and then the 10:30 review is delivered again
    let mut later = body_of("review-created.json");
    later["updatedAt"] = "2026-11-26T10:45:00.000Z".into();
    later["score"] = 0.into();
    let (status, body) = call(&d, signed(Some("REVIEW_UPDATED"), &later)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(&d, fixture("review-created.json")).await;

    // THEN the newer score stands
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "stale", "{body}");
    let gt = label(&d);
    assert_eq!(gt.review_score, Some(0.0));
    assert_eq!(gt.objects.len(), 3);
    assert_eq!(gt.version(), body_version("label-created.json"));
    // AND a review of another label changes nothing
    let mut other = body_of("review-created.json");
    other["label"]["id"] = "label-b".into();
    other["updatedAt"] = "2026-11-26T11:00:00.000Z".into();
    let (status, body) = call(&d, signed(Some("REVIEW_CREATED"), &other)).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (202, Some("ignored")),
        "{body}"
    );
    assert_eq!(label(&d).review_score, Some(0.0));
}

/// The version a fixture's `updatedAt` stands for.
fn body_version(name: &str) -> i64 {
    body_of(name)["updatedAt"]
        .as_str()
        .unwrap()
        .parse::<chrono::DateTime<chrono::Utc>>()
        .unwrap()
        .timestamp_millis()
}

// --- both payload generations (issue 18, item 1) ---

const DATA_ROW_ID: &str = "clx9jz1q4000008l5a1b2c3d4";

/// What a stack holds after `events`: the current label, every version in
/// the history, the messages sent.
async fn after<F: modelobs_pipeline::label_source::LabelFetcher + Send + Sync + 'static>(
    d: &Arc<Deps<Retrying<MemoryStore>, MemoryQueue, F>>,
    events: &[&str],
) -> (GroundTruth, Vec<GroundTruth>, Vec<String>) {
    for name in events {
        let (status, body) = call(d, fixture(name)).await;
        assert_eq!(status, 200, "{name}: {body}");
    }
    (label(d), history_of(d), d.queue.sent())
}

#[tokio::test]
async fn a_v2_payload_gives_what_the_same_v1_payload_gives() {
    // GIVEN the same label created, updated and deleted, in v1 (SDK-created
    // webhook) and in v2 (UI-created, export-shaped) bodies
    for n in 1..=3 {
        let v1 = &[
            "label-created.json",
            "label-updated.json",
            "label-deleted.json",
        ][..n];
        let v2 = &[
            "label-created-v2.json",
            "label-updated-v2.json",
            "label-deleted-v2.json",
        ][..n];
        // WHEN each stack gets one generation
        let (d1, d2) = (deps().await, deps().await);
        // THEN the same label, the same history, the same messages
        assert_eq!(after(&d1, v1).await, after(&d2, v2).await, "{v2:?}");
    }
    let d = deps().await;
    let (gt, _, _) = after(&d, &["label-updated-v2.json"]).await;
    assert_eq!(gt.objects.len(), 3, "the Unicorn maps to no class");
    assert_eq!(gt.unmapped_objects, ["Unicorn"]);
}

#[tokio::test]
async fn a_v1_payload_naming_its_row_by_id_takes_the_capture_from_the_source() {
    // GIVEN the source knows the data row's global key
    let fetcher = MemoryFetcher::new();
    fetcher.insert_row(DATA_ROW_ID, &capture_id());
    let d = fetching(fetcher).await;

    // WHEN the event has dataRow.id, the label and its time, no globalKey
    let (got, _, sent) = after(&d, &["label-created-v1-row-id.json"]).await;

    // THEN the same ground truth as with the key, and the label itself was
    // not fetched (the payload carried it)
    let with_key = deps().await;
    let (want, _, want_sent) = after(&with_key, &["label-created.json"]).await;
    assert_eq!((got, sent), (want, want_sent));
    assert!(d.fetcher.requests().is_empty());
}

#[tokio::test]
async fn a_v1_payload_without_key_or_time_takes_both_from_one_fetch() {
    // GIVEN the source has the label, its time and its row's global key
    let fetcher = MemoryFetcher::new();
    fetcher.insert(LABEL_ID, horses(Some("2026-11-26T09:15:00Z")));
    let d = fetching(fetcher).await;

    // WHEN the event names the row by id and says no time
    let (got, _, _) = after(&d, &["label-created-v1-untimed.json"]).await;

    // THEN stored at the source's time, under the row's key, after one fetch by row id
    let (want, _, _) = after(&deps().await, &["label-created.json"]).await;
    assert_eq!(got, want);
    assert_eq!(
        d.fetcher.requests(),
        [LabelRef {
            project_id: Some(PROJECT_ID.into()),
            row: RowRef::DataRowId(DATA_ROW_ID.into()),
            label_id: LABEL_ID.into(),
        }]
    );
}

#[tokio::test]
async fn what_a_payload_lacks_and_nobody_can_supply_is_400_naming_it() {
    // WHEN no label source is configured THEN the error names what the payload lacks
    let cases = [
        ("label-created-v1-row-id.json", "no dataRow.globalKey"),
        ("label-created-v1-untimed.json", "no time (updatedAt)"),
    ];
    for (name, words) in cases {
        let d = deps().await;
        let (status, body) = call(&d, fixture(name)).await;
        assert_eq!(status, 400, "{name}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(words), "{name}: {message}");
        assert!(message.contains("not configured"), "{name}: {message}");
        assert!(d.queue.sent().is_empty());
    }
    // WHEN the source has the row but without a global key THEN 400, nothing stored
    let d = fetching(MemoryFetcher::new()).await;
    let before = d.store.keys();
    let (status, body) = call(&d, fixture("label-created-v1-row-id.json")).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("has no global key"),
        "{body}"
    );
    assert_eq!(d.store.keys(), before);
}
