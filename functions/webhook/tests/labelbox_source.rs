//! The webhook fetching labels from the fake Labelbox (crates/labelbox, feature `fake`) through
//! `LabelboxFetcher`, on the signed fixture whose payload names the label without carrying it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use lambda_http::{Body, Request};
use modelobs_adapters::memory::MemoryStore;
use modelobs_adapters::queue::MemoryQueue;
use modelobs_adapters::{ObjectStore, PutCondition};
use modelobs_adapters::{RetryPolicy, Retrying};
use modelobs_core::keys;
use modelobs_core::records::{self, CaptureRecord, GroundTruth};
use modelobs_labelbox::webhook::payload::ClassMap;
use modelobs_labelbox::{LabelboxClient, Polling};
use modelobs_pipeline::label_source::{
    FetchError, LabelFetcher, LabelRef, LabelboxFetcher, RowRef,
};
use modelobs_testkit::fake_labelbox::{FakeLabelbox, Scripted};
use modelobs_webhook::handler::{Deps, handle};
use serde_json::{Value, json};

const SECRET: &[u8] = b"test-webhook-secret";
const KEY: &str = "test-api-key";
const CAPTURE: &[u8] = include_bytes!("../../../events/records/capture-record.json");
const LABEL_ID: &str = "clx9k2b0f000108l5d3h2a7qz";
/// `project.id` in the fixtures.
const PROJECT_ID: &str = "clx9jy0aa000008l5fffff000";

fn fixture(name: &str) -> Request {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../events/webhook")
        .join(name);
    lambda_http::request::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn capture() -> CaptureRecord {
    records::from_json(CAPTURE).unwrap()
}

fn fetcher(fake: &FakeLabelbox, api_key: &str) -> LabelboxFetcher {
    LabelboxFetcher {
        client: LabelboxClient::new(api_key)
            .unwrap()
            .with_endpoint(fake.endpoint())
            .with_retry(RetryPolicy::immediate(2))
            .with_polling(Polling {
                interval: Duration::from_millis(5),
                timeout: Duration::from_secs(5),
            }),
        default_project_id: None,
    }
}

/// A stack that has seen the fixture's capture and fetches from the fake.
async fn deps(
    fetcher: LabelboxFetcher,
) -> Arc<Deps<Retrying<MemoryStore>, MemoryQueue, LabelboxFetcher>> {
    let store = MemoryStore::new();
    let c = capture();
    store
        .put(
            &keys::capture_record(c.id, c.captured_at),
            Bytes::from_static(CAPTURE),
            "application/json",
            PutCondition::Always,
        )
        .await
        .unwrap();
    Arc::new(Deps {
        store: Retrying::new(store, RetryPolicy::immediate(2)),
        queue: MemoryQueue::new(),
        fetcher,
        secret: SECRET.to_vec(),
        max_body_bytes: 1024 * 1024,
        class_map: ClassMap::default(),
        source: "labelbox".into(),
    })
}

async fn call(d: &Arc<Deps<Retrying<MemoryStore>, MemoryQueue, LabelboxFetcher>>) -> (u16, Value) {
    let resp = handle(fixture("label-created-without-label.json"), d).await;
    let Body::Text(text) = resp.body() else {
        panic!("text body")
    };
    (resp.status().as_u16(), serde_json::from_str(text).unwrap())
}

/// The label as Labelbox's export writes it: two horses and a polygon, changed at 09:40.
fn exported_label() -> Value {
    json!({
        "id": LABEL_ID,
        "label_kind": "Default",
        "label_details": { "created_at": "2026-11-26T09:15:00.000+00:00",
                           "updated_at": "2026-11-26T09:40:00.000+00:00" },
        "annotations": { "objects": [
            { "name": "Horse", "value": "horse", "annotation_kind": "ImageBoundingBox",
              "bounding_box": { "top": 185.0, "left": 0.0, "height": 235.0, "width": 158.0 } },
            { "name": "Paddock", "value": "paddock", "annotation_kind": "ImagePolygon",
              "polygon": [{ "x": 0.0, "y": 0.0 }, { "x": 9.0, "y": 0.0 }, { "x": 9.0, "y": 9.0 }] },
            { "name": "Horse", "value": "horse", "annotation_kind": "ImageBoundingBox",
              "bounding_box": { "top": 130.0, "left": 398.0, "height": 240.0, "width": 212.0 } },
        ], "classifications": [], "relationships": [] },
    })
}

#[tokio::test]
async fn a_label_named_by_the_event_is_fetched_from_labelbox_and_stored() {
    // GIVEN Labelbox holds the label on the capture's data row in the fixture's project
    let fake = FakeLabelbox::start(KEY).await;
    let capture_id = capture().id.to_string();
    fake.insert_label(PROJECT_ID, &capture_id, exported_label());
    let d = deps(fetcher(&fake, KEY)).await;

    // WHEN the event without the label JSON arrives
    let (status, body) = call(&d).await;

    // THEN the boxes are ground truth, at the label's own time, with one message
    assert_eq!(status, 200, "{body}");
    let gt: GroundTruth =
        records::from_json(&d.store.body(&keys::label(capture().id)).unwrap()).unwrap();
    assert_eq!(gt.label_id, LABEL_ID);
    assert_eq!(gt.objects.len(), 2, "the polygon is not evaluated");
    assert!(gt.objects.iter().all(|o| o.label == "horse"));
    assert_eq!(gt.objects[1].bbox.to_labelbox().left, 398.0);
    assert_eq!(gt.updated_at.to_rfc3339(), "2026-11-26T09:40:00+00:00");
    assert_eq!(d.queue.sent().len(), 1);
    // AND Labelbox was asked for the capture's row in the payload's project
    let export = fake
        .requests()
        .into_iter()
        .find(|r| r.operation == "exportDataRowsInProjectPyApi")
        .unwrap();
    assert_eq!(
        export.variables["input"]["filters"]["projectId"],
        PROJECT_ID
    );
    assert_eq!(
        export.variables["input"]["filters"]["searchQuery"]["query"][0]["ids"],
        json!([capture_id])
    );
}

#[tokio::test]
async fn a_label_labelbox_does_not_have_is_202() {
    let fake = FakeLabelbox::start(KEY).await;
    let d = deps(fetcher(&fake, KEY)).await;

    let (status, body) = call(&d).await;

    assert_eq!(
        (status, body["status"].as_str()),
        (202, Some("ignored")),
        "{body}"
    );
    assert!(d.queue.sent().is_empty());
    assert!(d.store.body(&keys::label(capture().id)).is_none());
}

#[tokio::test]
async fn labelbox_down_is_503_so_the_sender_retries() {
    let fake = FakeLabelbox::start(KEY).await;
    for _ in 0..2 {
        fake.script(
            "*",
            Scripted::Status {
                status: 503,
                retry_after: None,
            },
        );
    }
    let d = deps(fetcher(&fake, KEY)).await;

    let (status, body) = call(&d).await;

    assert_eq!(status, 503, "{body}");
    assert!(d.queue.sent().is_empty());
}

#[tokio::test]
async fn a_rejected_api_key_is_502() {
    let fake = FakeLabelbox::start(KEY).await;
    fake.insert_label(PROJECT_ID, &capture().id.to_string(), exported_label());
    let d = deps(fetcher(&fake, "not-the-key")).await;

    let (status, body) = call(&d).await;

    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "label_source_error");
    assert!(d.queue.sent().is_empty());
}

#[tokio::test]
async fn a_payload_without_a_project_uses_the_configured_one_or_is_refused() {
    let fake = FakeLabelbox::start(KEY).await;
    fake.insert_label("configured-project", "capture-1", exported_label());
    let label = LabelRef {
        project_id: None,
        row: RowRef::GlobalKey("capture-1".into()),
        label_id: LABEL_ID.into(),
    };

    // Without a configured project: nothing to ask Labelbox.
    let unconfigured = fetcher(&fake, KEY);
    assert_eq!(unconfigured.fetch(&label).await, Err(FetchError::NoProject));
    assert!(fake.requests().is_empty());

    // With LABELBOX_PROJECT_ID's value: the label comes from there.
    let configured = LabelboxFetcher {
        default_project_id: Some("configured-project".into()),
        ..fetcher(&fake, KEY)
    };
    let fetched = configured.fetch(&label).await.unwrap().expect("found");
    assert_eq!(fetched.objects.len(), 2);
}

#[tokio::test]
async fn a_v1_payload_without_global_key_or_time_is_completed_by_one_export_by_data_row_id() {
    // GIVEN Labelbox holds the label on the capture's data row
    let fake = FakeLabelbox::start(KEY).await;
    let capture_id = capture().id.to_string();
    fake.insert_label(PROJECT_ID, &capture_id, exported_label());
    let d = deps(fetcher(&fake, KEY)).await;

    // WHEN a v1 event names the row by id only and says no time
    // (the fake's export calls the row dr-of-<global key>)
    let body = json!({"id": LABEL_ID, "dataRow": {"id": format!("dr-of-{capture_id}")},
        "project": {"id": PROJECT_ID}, "label": "{\"objects\": []}"});
    let resp = handle(signed(&body), &d).await;
    let Body::Text(text) = resp.body() else {
        panic!("text body")
    };
    let answer: Value = serde_json::from_str(text).unwrap();

    // THEN stored under the row's global key at the export's time, the
    // label's content from the export
    assert_eq!(resp.status().as_u16(), 200, "{answer}");
    let gt: GroundTruth = records::from_json(
        &d.store
            .body(&keys::label(capture().id))
            .expect("labels/<id>.json"),
    )
    .unwrap();
    assert_eq!(gt.updated_at.to_rfc3339(), "2026-11-26T09:40:00+00:00");
    assert_eq!(
        gt.objects.len(),
        2,
        "the export's two horses, not the payload's none"
    );
    // ... from one export, filtered by the data row's id as the SDK builds it
    let exports: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.operation == "exportDataRowsInProjectPyApi")
        .collect();
    assert_eq!(exports.len(), 1);
    assert_eq!(
        exports[0].variables["input"]["filters"]["searchQuery"]["query"],
        json!([{"ids": [format!("dr-of-{capture_id}")], "operator": "is", "type": "data_row_id"}])
    );
}

/// `body` signed with the fixtures' secret, in a LABEL_CREATED delivery.
fn signed(body: &Value) -> Request {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events/webhook/label-created.json");
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let body = body.to_string();
    let (sha1, sha256) = modelobs_labelbox::webhook::signature::sign(SECRET, body.as_bytes());
    let headers = event["headers"].as_object_mut().unwrap();
    headers.insert("x-hub-signature".into(), sha1.into());
    headers.insert("x-hub-signature-256".into(), sha256.into());
    event["body"] = body.into();
    lambda_http::request::from_str(&event.to_string()).unwrap()
}
