//! The metrics handler with an in-memory bucket: a poison message fails
//! alone, duplicates leave identical state, label updates re-evaluate,
//! deletions remove the image, and the EMF it emits is valid EMF.

mod support;

use std::path::PathBuf;

use aws_lambda_events::event::sqs::SqsEvent;
use chrono::{DateTime, Duration, TimeZone, Utc};
use modelobs_adapters::memory::MemoryStore;
use modelobs_adapters::{RetryPolicy, Retrying};
use modelobs_core::keys;
use modelobs_core::records::{self, CaptureRecord, GroundTruth, ImageEval};
use modelobs_pipeline::evaluate::{Deps, handle};
use modelobs_pipeline::sink::MemorySink;
use serde_json::Value;
use support::put;

const CAPTURE: &[u8] = include_bytes!("../../../events/records/capture-record.json");
const TRUTH: &[u8] = include_bytes!("../../../events/records/ground-truth.json");

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap()
}

fn event(name: &str) -> SqsEvent {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../events/metrics")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

async fn deps_with_label(truth: &GroundTruth) -> Deps<Retrying<MemoryStore>, MemorySink> {
    let store = MemoryStore::new();
    let capture: CaptureRecord = records::from_json(CAPTURE).unwrap();
    put(
        &store,
        &keys::capture_record(capture.id, capture.captured_at),
        CAPTURE.to_vec(),
    )
    .await;
    put(&store, &keys::label(truth.id), records::to_json(truth)).await;
    Deps {
        store: Retrying::new(store, RetryPolicy::immediate(2)),
        sink: MemorySink::default(),
        now,
    }
}

fn truth() -> GroundTruth {
    records::from_json(TRUTH).unwrap()
}

fn eval_key() -> String {
    let c: CaptureRecord = records::from_json(CAPTURE).unwrap();
    keys::image_eval(c.id, c.captured_at)
}

#[tokio::test]
async fn a_poison_message_fails_alone() {
    let d = deps_with_label(&truth()).await;
    let resp = handle(event("label-arrived-batch.json"), &d).await;
    let failed: Vec<_> = resp
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["m-poison", "m-garbage"]);
    let eval: ImageEval = records::from_json(&d.store.body(&eval_key()).unwrap()).unwrap();
    assert!((eval.ap50 - 67.0 / 101.0).abs() < 1e-12);
    let keys = d.store.keys();
    for window in [
        "windows/touched/hour/2026-11-26T07/human-models-3.0.4/",
        "windows/touched/day/2026-11-26/human-models-3.0.4/",
    ] {
        assert!(
            keys.iter().any(|k| k.starts_with(window)),
            "{window}: {keys:?}"
        );
    }
}

#[tokio::test]
async fn a_duplicate_delivery_leaves_identical_state() {
    let d = deps_with_label(&truth()).await;
    handle(event("label-arrived.json"), &d).await;
    let snapshot: Vec<_> = d
        .store
        .keys()
        .iter()
        .map(|k| (k.clone(), d.store.body(k)))
        .collect();
    let resp = handle(event("label-arrived.json"), &d).await;
    assert!(resp.batch_item_failures.is_empty());
    let again: Vec<_> = d
        .store
        .keys()
        .iter()
        .map(|k| (k.clone(), d.store.body(k)))
        .collect();
    assert_eq!(again, snapshot);
}

#[tokio::test]
async fn an_update_re_evaluates_and_a_deletion_removes_the_image() {
    let mut t = truth();
    let d = deps_with_label(&t).await;
    handle(event("label-arrived.json"), &d).await;

    // The labeller adds the cow the model saw: now all three detections are right... almost.
    t.updated_at += Duration::minutes(10);
    t.objects[2].label = "cow".into();
    t.objects[2].class_id = 19;
    put(&d.store, &keys::label(t.id), records::to_json(&t)).await;
    assert!(
        handle(event("label-arrived.json"), &d)
            .await
            .batch_item_failures
            .is_empty()
    );
    let eval: ImageEval = records::from_json(&d.store.body(&eval_key()).unwrap()).unwrap();
    assert_eq!(eval.label_version, t.version());
    assert_eq!(eval.at_serving_threshold.tp, 3);

    t.updated_at += Duration::minutes(10);
    t.deleted = true;
    t.objects.clear();
    put(&d.store, &keys::label(t.id), records::to_json(&t)).await;
    assert!(
        handle(event("label-arrived.json"), &d)
            .await
            .batch_item_failures
            .is_empty()
    );
    assert!(
        d.store.body(&eval_key()).is_none(),
        "a tombstone removes the image from its windows"
    );
}

#[tokio::test]
async fn a_label_older_than_the_message_is_retried() {
    let mut t = truth();
    t.updated_at -= Duration::hours(1);
    let d = deps_with_label(&t).await;
    let resp = handle(event("label-arrived.json"), &d).await;
    assert_eq!(resp.batch_item_failures.len(), 1);
    assert!(d.store.body(&eval_key()).is_none());
}

#[tokio::test]
async fn emitted_lines_are_valid_emf() {
    let d = deps_with_label(&truth()).await;
    handle(event("label-arrived.json"), &d).await;
    let lines = d.sink.lines.lock().unwrap().clone();
    assert!(lines.len() >= 2, "image line and per-class lines");
    for line in &lines {
        let v: Value = serde_json::from_str(line).unwrap();
        let aws = &v["_aws"];
        assert!(aws["Timestamp"].as_i64().unwrap() > 0);
        for directive in aws["CloudWatchMetrics"].as_array().unwrap() {
            assert_eq!(directive["Namespace"], "ModelObservability");
            let metrics = directive["Metrics"].as_array().unwrap();
            assert!(!metrics.is_empty() && metrics.len() <= 100);
            for m in metrics {
                assert!(v[m["Name"].as_str().unwrap()].is_number(), "{line}");
            }
            for set in directive["Dimensions"].as_array().unwrap() {
                let set = set.as_array().unwrap();
                assert!(!set.is_empty() && set.len() <= 30);
                for dim in set {
                    assert!(v[dim.as_str().unwrap()].is_string(), "{line}");
                }
            }
        }
    }
    let first: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(first["TP"], 2.0);
    assert!(lines.iter().any(|l| l.contains(r#""ClassName":"horse""#)));
}
