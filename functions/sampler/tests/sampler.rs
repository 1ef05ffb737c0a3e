//! The sampler with an in-memory bucket and the local queue: sampled, skipped,
//! duplicate events, backend failures, malformed records, foreign keys, quotas.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use aws_lambda_events::event::s3::S3Event;
use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use modelobs_adapters::memory::MemoryStore;
use modelobs_adapters::{ObjectStore, PutCondition};
use modelobs_adapters::{RetryPolicy, Retrying};
use modelobs_core::keys;
use modelobs_core::records::{
    self, CaptureId, CaptureRecord, LabelingTask, SampleReason, SampleState, SamplingDecision,
};
use modelobs_core::sampling::SamplingPolicy;
use modelobs_pipeline::labeling::{BackendError, LabelingBackend, LocalQueue, Submitted};
use modelobs_pipeline::sample::{Deps, Outcome, SamplerError, SweepSettings, handle, sweep};

const CAPTURE: &[u8] = include_bytes!("../../../events/records/capture-record.json");

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 8, 0, 0).unwrap()
}

/// The local queue, counting submissions, that can be told to be down.
struct TestBackend {
    queue: LocalQueue<Retrying<std::sync::Arc<MemoryStore>>>,
    down: AtomicBool,
    calls: AtomicU32,
}

impl LabelingBackend for TestBackend {
    fn name(&self) -> &'static str {
        "local"
    }
    async fn submit(&self, capture: &CaptureRecord, key: &str) -> Result<Submitted, BackendError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(BackendError::Unavailable(
                "503 from the labeling tool".into(),
            ));
        }
        self.queue.submit(capture, key).await
    }
}

type TestDeps = Deps<TestBackend, Retrying<std::sync::Arc<MemoryStore>>>;

fn deps(policy: &str) -> TestDeps {
    let store = std::sync::Arc::new(MemoryStore::new());
    Deps {
        policy: SamplingPolicy::from_json(policy).unwrap(),
        backend: TestBackend {
            queue: LocalQueue {
                store: Retrying::new(store.clone(), RetryPolicy::immediate(2)),
                now,
            },
            down: AtomicBool::new(false),
            calls: AtomicU32::new(0),
        },
        store: Retrying::new(store, RetryPolicy::immediate(2)),
        now,
    }
}

const SAMPLE_ALL: &str = r#"{"name": "all", "uniform_rate": 1.0}"#;
const SAMPLE_NONE: &str = r#"{"name": "none", "uniform_rate": 0.0,
    "uncertainty": {"band": null, "top_score_below": null}, "empty_rate": 0.0}"#;

fn event(name: &str) -> S3Event {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../events/sampler")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn capture() -> CaptureRecord {
    records::from_json(CAPTURE).unwrap()
}

async fn store_capture(d: &TestDeps, record: &CaptureRecord) -> String {
    let key = keys::capture_record(record.id, record.captured_at);
    d.store
        .put(
            &key,
            Bytes::from(records::to_json(record)),
            "application/json",
            PutCondition::Always,
        )
        .await
        .unwrap();
    key
}

fn decision(d: &TestDeps, id: CaptureId) -> SamplingDecision {
    records::from_json(&d.store.body(&keys::sample(id)).expect("a decision")).unwrap()
}

#[tokio::test]
async fn a_sampled_capture_is_queued_with_its_prelabels() {
    let d = deps(SAMPLE_ALL);
    let c = capture();
    store_capture(&d, &c).await;

    let out = handle(event("capture-created.json"), &d).await.unwrap();

    assert!(
        matches!(out.as_slice(), [Outcome::Submitted { .. }]),
        "{out:?}"
    );
    let dec = decision(&d, c.id);
    assert_eq!((dec.sampled, dec.state), (true, SampleState::Submitted));
    assert_eq!(dec.backend.as_deref(), Some("local"));
    let task_key = keys::labeling_task(c.id);
    assert_eq!(dec.external_ref.as_deref(), Some(task_key.as_str()));
    let task: LabelingTask = records::from_json(&d.store.body(&task_key).unwrap()).unwrap();
    assert_eq!(task.prelabels, c.detections);
    assert_eq!(task.image_key, c.image.key);
    assert!(
        d.store
            .keys()
            .iter()
            .any(|k| k.starts_with("samples/slots/2026-11-26/all/"))
    );
}

#[tokio::test]
async fn an_unsampled_capture_is_recorded_as_skipped() {
    let d = deps(SAMPLE_NONE);
    let c = capture();
    store_capture(&d, &c).await;
    let out = handle(event("capture-created.json"), &d).await.unwrap();
    assert_eq!(out, [Outcome::NotSampled { id: c.id }]);
    let dec = decision(&d, c.id);
    assert_eq!(
        (dec.sampled, dec.state, dec.reason),
        (false, SampleState::Skipped, SampleReason::NotSelected)
    );
    assert_eq!(d.backend.calls.load(Ordering::SeqCst), 0);
    assert!(d.store.body(&keys::labeling_task(c.id)).is_none());
}

#[tokio::test]
async fn a_duplicate_event_uploads_nothing_twice() {
    let d = deps(SAMPLE_ALL);
    let c = capture();
    store_capture(&d, &c).await;
    handle(event("capture-created.json"), &d).await.unwrap();
    let keys_after_first = d.store.keys();

    let again = handle(event("capture-created.json"), &d).await.unwrap();

    assert_eq!(
        again,
        [Outcome::AlreadyDone {
            id: c.id,
            state: SampleState::Submitted
        }]
    );
    assert_eq!(d.backend.calls.load(Ordering::SeqCst), 1, "submitted once");
    assert_eq!(
        d.store.keys(),
        keys_after_first,
        "no second slot, task or decision"
    );
}

#[tokio::test]
async fn a_backend_failure_stays_pending_and_the_retry_submits() {
    let d = deps(SAMPLE_ALL);
    let c = capture();
    store_capture(&d, &c).await;
    d.backend.down.store(true, Ordering::SeqCst);

    let err = handle(event("capture-created.json"), &d).await.unwrap_err();
    assert!(matches!(err, SamplerError::Backend { .. }), "{err}");
    assert_eq!(
        decision(&d, c.id).state,
        SampleState::Pending,
        "retryable, not 'sampled'"
    );

    d.backend.down.store(false, Ordering::SeqCst);
    let out = handle(event("capture-created.json"), &d).await.unwrap();
    assert!(
        matches!(out.as_slice(), [Outcome::Submitted { .. }]),
        "{out:?}"
    );
    assert_eq!(decision(&d, c.id).state, SampleState::Submitted);
    let slots = d
        .store
        .keys()
        .into_iter()
        .filter(|k| k.contains("/slots/"))
        .count();
    assert_eq!(slots, 1, "the retry kept its one slot");
}

#[tokio::test]
async fn a_decision_left_pending_by_an_outage_is_re_submitted_by_the_sweep() {
    // GIVEN a sampled capture whose submission failed through every S3 retry
    let d = deps(SAMPLE_ALL);
    let c = capture();
    store_capture(&d, &c).await;
    d.backend.down.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        handle(event("capture-created.json"), &d).await.unwrap_err();
    }
    assert_eq!(decision(&d, c.id).state, SampleState::Pending);
    let settings = SweepSettings {
        older_than: chrono::Duration::zero(),
        ..SweepSettings::default()
    };

    // WHEN a sweep runs during the outage THEN it stays pending, reported
    let report = sweep(&d, settings).await.unwrap();
    assert_eq!((report.checked, report.pending), (1, 1));
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert_eq!(decision(&d, c.id).state, SampleState::Pending);

    // WHEN the labeling tool is back and the sweep runs again
    d.backend.down.store(false, Ordering::SeqCst);
    let report = sweep(&d, settings).await.unwrap();

    // THEN it is submitted once, on the slot it already held
    assert_eq!(report.resubmitted, vec![c.id]);
    assert!(report.failed.is_empty());
    assert_eq!(decision(&d, c.id).state, SampleState::Submitted);
    assert!(d.store.body(&keys::labeling_task(c.id)).is_some());
    let slots = d
        .store
        .keys()
        .iter()
        .filter(|k| k.contains("/slots/"))
        .count();
    assert_eq!(slots, 1);
    let calls = d.backend.calls.load(Ordering::SeqCst);
    let report = sweep(&d, settings).await.unwrap();
    assert_eq!(
        (report.pending, d.backend.calls.load(Ordering::SeqCst)),
        (0, calls)
    );
}

#[tokio::test]
async fn the_sweep_leaves_young_decisions_to_s3s_own_retries() {
    // GIVEN a decision pending since just now (an S3 retry may be on its way)
    let d = deps(SAMPLE_ALL);
    let c = capture();
    store_capture(&d, &c).await;
    d.backend.down.store(true, Ordering::SeqCst);
    handle(event("capture-created.json"), &d).await.unwrap_err();
    d.backend.down.store(false, Ordering::SeqCst);
    // WHEN the default sweep (15 minutes' grace) runs THEN it leaves it alone
    let report = sweep(&d, SweepSettings::default()).await.unwrap();
    assert_eq!((report.checked, report.pending), (1, 0));
    assert_eq!(decision(&d, c.id).state, SampleState::Pending);
}

#[tokio::test]
async fn a_malformed_record_fails_naming_its_key() {
    let d = deps(SAMPLE_ALL);
    let key = keys::capture_record(capture().id, capture().captured_at);
    d.store
        .put(
            &key,
            Bytes::from_static(br#"{"schema_version": 1, "id": 3}"#),
            "application/json",
            PutCondition::Always,
        )
        .await
        .unwrap();
    let err = handle(event("capture-created.json"), &d).await.unwrap_err();
    assert!(matches!(err, SamplerError::Malformed { .. }));
    assert!(err.to_string().contains(&key), "{err}");
    assert!(d.store.body(&keys::sample(capture().id)).is_none());
}

#[tokio::test]
async fn keys_that_are_not_capture_records_are_skipped() {
    let d = deps(SAMPLE_ALL);
    let out = handle(event("image-created.json"), &d).await.unwrap();
    assert!(
        matches!(out.as_slice(), [Outcome::Skipped { .. }]),
        "{out:?}"
    );
    assert!(d.store.keys().is_empty());
}

#[tokio::test]
async fn the_daily_budget_is_never_exceeded() {
    let d = deps(r#"{"name": "tight", "uniform_rate": 1.0, "daily_budget": 3}"#);
    let mut sampled = 0;
    for minute in 0..8 {
        let mut c = capture();
        c.captured_at = Utc.with_ymd_and_hms(2026, 11, 26, 7, minute, 0).unwrap();
        c.id = CaptureId::new(c.captured_at);
        let key = store_capture(&d, &c).await;
        let mut ev = event("capture-created.json");
        ev.records[0].s3.object.key = Some(key);
        // Delivered twice: duplicates must not take a second slot.
        for _ in 0..2 {
            handle(ev.clone(), &d).await.unwrap();
        }
        let dec = decision(&d, c.id);
        if dec.sampled {
            sampled += 1;
        } else {
            assert_eq!(dec.reason, SampleReason::DailyBudgetExhausted);
        }
    }
    assert_eq!(sampled, 3);
    assert_eq!(d.backend.calls.load(Ordering::SeqCst), 3);
}
