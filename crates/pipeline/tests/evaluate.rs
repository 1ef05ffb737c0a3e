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
    Deps {
        store: Retrying::new(seeded(truth).await, RetryPolicy::immediate(2)),
        sink: MemorySink::default(),
        now,
    }
}

/// A bucket holding the capture and `truth` as its label.
async fn seeded(truth: &GroundTruth) -> MemoryStore {
    let store = MemoryStore::new();
    let capture: CaptureRecord = records::from_json(CAPTURE).unwrap();
    put(
        &store,
        &keys::capture_record(capture.id, capture.captured_at),
        CAPTURE.to_vec(),
    )
    .await;
    put(&store, &keys::label(truth.id), records::to_json(truth)).await;
    store
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

#[tokio::test]
async fn a_shadow_answer_is_evaluated_against_the_same_label_under_its_own_version() {
    let mut t = truth();
    let d = deps_with_label(&t).await;
    let serving: CaptureRecord = records::from_json(CAPTURE).unwrap();
    // The shadow kept only the serving model's first detection.
    let mut shadow = serving.clone();
    shadow.model.version = "ft-shadow-1".into();
    shadow.detections.truncate(1);
    let shadow_key =
        keys::shadow_capture_record(serving.id, serving.captured_at, "ft-shadow-1").unwrap();
    put(&d.store, &shadow_key, records::to_json(&shadow)).await;

    assert!(
        handle(event("label-arrived.json"), &d)
            .await
            .batch_item_failures
            .is_empty()
    );
    let eval_of =
        |key: &str| -> ImageEval { records::from_json(&d.store.body(key).unwrap()).unwrap() };
    let serving_eval = eval_of(&eval_key());
    let shadow_eval_key =
        keys::shadow_image_eval(serving.id, serving.captured_at, "ft-shadow-1").unwrap();
    let shadow_eval = eval_of(&shadow_eval_key);
    assert_eq!(shadow_eval.model.version, "ft-shadow-1");
    assert_eq!(serving_eval.model, serving.model);
    assert_eq!(shadow_eval.gt_objects, serving_eval.gt_objects);
    assert_eq!(shadow_eval.detections, 1);
    assert!(shadow_eval.detections < serving_eval.detections);
    // Both versions' windows are touched.
    let touched: Vec<String> = d
        .store
        .keys()
        .into_iter()
        .filter(|k| k.starts_with(keys::WINDOWS_TOUCHED))
        .collect();
    for version in [serving.model.version.as_str(), "ft-shadow-1"] {
        assert_eq!(
            touched
                .iter()
                .filter(|k| keys::parse_window_touch(k).unwrap().model_version == version)
                .count(),
            2,
            "{version}: an hour and a day in {touched:?}"
        );
    }

    // A tombstone removes both evaluations.
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
    assert!(d.store.body(&eval_key()).is_none());
    assert!(d.store.body(&shadow_eval_key).is_none());
}

#[tokio::test]
async fn a_shadow_record_of_another_capture_fails_the_message() {
    let d = deps_with_label(&truth()).await;
    let serving: CaptureRecord = records::from_json(CAPTURE).unwrap();
    let stray = serving.clone();
    let key = keys::shadow_capture_record(serving.id, serving.captured_at, "same").unwrap();
    put(&d.store, &key, records::to_json(&stray)).await;
    assert_eq!(
        handle(event("label-arrived.json"), &d)
            .await
            .batch_item_failures
            .len(),
        1
    );
}

/// Deps over a store that can replay stale reads, with `truth` as the label.
async fn racing_deps(truth: &GroundTruth) -> Deps<support::StaleReads<MemoryStore>, MemorySink> {
    Deps {
        store: support::StaleReads::new(seeded(truth).await),
        sink: MemorySink::default(),
        now,
    }
}

fn stored_eval(store: &MemoryStore) -> Option<ImageEval> {
    store
        .body(&eval_key())
        .map(|b| records::from_json(&b).unwrap())
}

#[tokio::test]
async fn a_slow_handler_of_an_older_label_never_overwrites_a_newer_evaluation() {
    // GIVEN label v2 stored and evaluated
    let v1 = truth();
    let mut v2 = v1.clone();
    v2.updated_at += Duration::minutes(10);
    v2.objects[2].label = "cow".into();
    v2.objects[2].class_id = 19;
    let d = racing_deps(&v2).await;
    assert!(
        handle(event("label-arrived.json"), &d)
            .await
            .batch_item_failures
            .is_empty()
    );
    assert_eq!(
        stored_eval(&d.store.inner).unwrap().label_version,
        v2.version()
    );
    // WHEN a handler that read v1 before v2 was stored writes its evaluation
    d.store
        .answer_next(&keys::label(v1.id), Some(records::to_json(&v1)));
    let resp = handle(event("label-arrived.json"), &d).await;
    // THEN v2's evaluation stays, and the message is done (nothing to retry)
    assert!(resp.batch_item_failures.is_empty());
    let eval = stored_eval(&d.store.inner).unwrap();
    assert_eq!(eval.label_version, v2.version());
    assert_eq!(eval.at_serving_threshold.tp, 3);
}

/// A label (v1) deleted (v2) and created again (v3), with v3 stored and
/// evaluated in a bucket that can replay stale reads.
async fn deleted_then_re_created() -> (
    GroundTruth,
    GroundTruth,
    GroundTruth,
    Deps<support::StaleReads<MemoryStore>, MemorySink>,
) {
    let v1 = truth();
    let mut v2 = v1.clone();
    v2.updated_at += Duration::minutes(10);
    v2.deleted = true;
    v2.objects.clear();
    let mut v3 = v1.clone();
    v3.updated_at += Duration::minutes(20);
    let d = racing_deps(&v3).await;
    let resp = handle(event("label-arrived.json"), &d).await;
    assert!(resp.batch_item_failures.is_empty());
    (v1, v2, v3, d)
}

#[tokio::test]
async fn an_old_tombstone_never_removes_a_re_created_labels_evaluation() {
    // GIVEN the label deleted (v2) and then created again (v3), evaluated
    let (v1, v2, v3, d) = deleted_then_re_created().await;
    // WHEN a slow handler that read the tombstone applies it
    d.store
        .answer_next(&keys::label(v1.id), Some(records::to_json(&v2)));
    let resp = handle(event("label-arrived.json"), &d).await;
    // THEN v3's evaluation stays
    assert!(resp.batch_item_failures.is_empty());
    assert_eq!(
        stored_eval(&d.store.inner).unwrap().label_version,
        v3.version()
    );
}

#[tokio::test]
async fn a_tombstone_racing_a_re_creation_fails_and_its_retry_restores_the_evaluation() {
    // GIVEN v3 (re-created) stored and evaluated, and a tombstone handler
    // that read the label (v2, deleted) and the evaluation key (empty) before
    // v3's evaluation was written (it saw v1's): its delete removes v3's
    let (v1, v2, v3, d) = deleted_then_re_created().await;
    d.store
        .answer_next(&keys::label(v1.id), Some(records::to_json(&v2)));
    let mut before = stored_eval(&d.store.inner).unwrap();
    before.label_version = v1.version();
    d.store
        .answer_next(&eval_key(), Some(records::to_json(&before)));
    // WHEN it runs
    let resp = handle(event("label-arrived.json"), &d).await;
    // THEN it fails (the label moved on) and SQS's retry evaluates v3 again
    assert_eq!(resp.batch_item_failures.len(), 1);
    assert!(
        handle(event("label-arrived.json"), &d)
            .await
            .batch_item_failures
            .is_empty()
    );
    assert_eq!(
        stored_eval(&d.store.inner).unwrap().label_version,
        v3.version()
    );
}

/// A collector that never answers (a black hole), counting the calls.
#[derive(Default)]
struct BlackHole {
    calls: std::sync::atomic::AtomicU32,
}

impl modelobs_pipeline::sink::MetricsSink for BlackHole {
    async fn emit_image(&self, _: &ImageEval) -> Result<(), modelobs_pipeline::sink::SinkError> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::future::pending().await
    }

    async fn emit_window(
        &self,
        _: &modelobs_core::records::WindowMetrics,
    ) -> Result<(), modelobs_pipeline::sink::SinkError> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::future::pending().await
    }
}

#[tokio::test]
async fn a_black_holed_collector_costs_one_budget_per_invocation_and_fails_nothing() {
    use modelobs_pipeline::sink::Fanout;
    // GIVEN a batch of 10 label messages and a second sink that never answers,
    // allowed 200 ms per invocation
    let d = deps_with_label(&truth()).await;
    let d = Deps {
        store: d.store,
        sink: Fanout::new(
            MemorySink::default(),
            Some(("observe", BlackHole::default())),
        )
        .with_budget(std::time::Duration::from_millis(200)),
        now,
    };
    let mut batch = event("label-arrived.json");
    let one = batch.records[0].clone();
    batch.records = (0..10)
        .map(|i| {
            let mut m = one.clone();
            m.message_id = Some(format!("m-{i}"));
            m
        })
        .collect();
    // WHEN the batch is handled
    let resp = handle(batch.clone(), &d).await;
    // THEN every message succeeds; the collector was called once (cut off at
    // the deadline), the 9 after it skipped, and all 10 counted as failures
    assert!(resp.batch_item_failures.is_empty());
    let calls = |d: &Deps<_, Fanout<MemorySink, BlackHole>>| {
        d.sink
            .secondary()
            .unwrap()
            .calls
            .load(std::sync::atomic::Ordering::SeqCst)
    };
    assert_eq!((calls(&d), d.sink.failures()), (1, 10));
    assert!(
        d.store.body(&eval_key()).is_some(),
        "the evaluation is stored"
    );
    // AND the next invocation gets a budget of its own
    handle(batch, &d).await;
    assert_eq!((calls(&d), d.sink.failures()), (2, 20));
}
