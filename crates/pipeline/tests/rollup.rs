//! The rollup with an in-memory bucket, fed by the real metrics handler:
//! windows equal a COCO evaluation of the same images, a touch that arrives
//! while a rollup runs is not lost, runs are idempotent, deleted labels leave
//! their windows, one bad window does not stop the others, and Observe
//! trouble is counted without failing anything.

mod support;

use std::sync::{Arc, Mutex};

use aws_lambda_events::event::sqs::SqsEvent;
use bytes::Bytes;
use chrono::{DateTime, Duration, TimeZone, Utc};
use modelobs_adapters::memory::MemoryStore;
use modelobs_adapters::observe::{ObserveClient, ObserveConfig};
use modelobs_adapters::{
    ListedObject, ObjectStore, PutCondition, PutOutcome, StoreError, StoredObject,
};
use modelobs_adapters::{RetryPolicy, Retrying};
use modelobs_core::boxes::BBox;
use modelobs_core::eval::coco_format;
use modelobs_core::records::{
    self, CaptureId, CaptureRecord, Detection, Granularity, GroundTruth, GroundTruthObject,
    ImageEval, Window, WindowMetrics,
};
use modelobs_core::{classes, keys};
use modelobs_pipeline::evaluate::{self, Deps};
use modelobs_pipeline::observe::ObserveSink;
use modelobs_pipeline::rollup::{self, RollupDeps};
use modelobs_pipeline::sink::{Fanout, MemorySink};
use modelobs_testkit::fake_observe::FakeObserve;
use serde_json::{Value, json};
use support::put;

const CAPTURE: &[u8] = include_bytes!("../../../events/records/capture-record.json");
const TRUTH: &[u8] = include_bytes!("../../../events/records/ground-truth.json");
const VERSION: &str = "human-models-3.0.4";
const THRESHOLD: f64 = 0.35;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap()
}

fn hour(h: u32) -> Window {
    Window::containing(
        Granularity::Hour,
        Utc.with_ymd_and_hms(2026, 11, 26, h, 0, 0).unwrap(),
    )
}

fn day() -> Window {
    Window::containing(Granularity::Day, hour(0).start)
}

/// A small deterministic generator: the same images every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() * n as f64) as usize % n
    }
}

const CLASSES: [u16; 5] = [0, 2, 16, 17, 19];

fn random_box(r: &mut Lcg) -> BBox {
    let (x1, y1) = (r.next() * 600.0, r.next() * 400.0);
    let (w, h) = (8.0 + r.next() * 160.0, 8.0 + r.next() * 110.0);
    BBox {
        x1,
        y1,
        x2: x1 + w,
        y2: y1 + h,
    }
}

fn label(class_id: u16) -> String {
    classes::by_index(class_id).unwrap().name.to_string()
}

/// Image `i` captured at `at`: ground truth, and detections that find some
/// of it (jittered), confuse some classes, and add false alarms.
fn image(i: u64, at: DateTime<Utc>, r: &mut Lcg) -> (CaptureRecord, GroundTruth) {
    let id = CaptureId::derived(at, &i.to_le_bytes());
    let mut capture: CaptureRecord = records::from_json(CAPTURE).unwrap();
    let mut truth: GroundTruth = records::from_json(TRUTH).unwrap();
    capture.id = id;
    capture.captured_at = at;
    capture.image.key = keys::capture_image(id, at, "jpg");
    capture.score_threshold = THRESHOLD;
    capture.detections.clear();
    truth.id = id;
    truth.label_id = format!("label-{i}");
    truth.updated_at = at + Duration::minutes(30 + i as i64);
    truth.objects.clear();
    for _ in 0..r.below(5) {
        let class_id = CLASSES[r.below(CLASSES.len())];
        let b = random_box(r);
        truth.objects.push(GroundTruthObject {
            label: label(class_id),
            class_id,
            bbox: b,
            iscrowd: r.next() < 0.05,
        });
        if r.next() < 0.8 {
            let j = |v: f64, r: &mut Lcg| v + (r.next() - 0.5) * 12.0;
            let found = if r.next() < 0.15 {
                CLASSES[r.below(CLASSES.len())]
            } else {
                class_id
            };
            let (x1, y1) = (j(b.x1, r), j(b.y1, r));
            capture.detections.push(Detection {
                label: label(found),
                class_id: found,
                score: (r.next() * 100.0).round() / 100.0,
                bbox: BBox {
                    x1,
                    y1,
                    x2: j(b.x2, r).max(x1 + 1.0),
                    y2: j(b.y2, r).max(y1 + 1.0),
                },
            });
        }
    }
    for _ in 0..r.below(3) {
        let class_id = CLASSES[r.below(CLASSES.len())];
        capture.detections.push(Detection {
            label: label(class_id),
            class_id,
            score: (r.next() * 100.0).round() / 100.0,
            bbox: random_box(r),
        });
    }
    (capture, truth)
}

fn sqs(messages: &[(String, CaptureId, i64)]) -> SqsEvent {
    let records: Vec<Value> = messages
        .iter()
        .map(|(mid, id, version)| {
            json!({
                "messageId": mid,
                "receiptHandle": format!("rh-{mid}"),
                "body": json!({"id": id, "label_version": version}).to_string(),
                "eventSource": "aws:sqs",
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

/// A bucket with captures in hours 07 and 09 (and unlabelled captures too),
/// each labelled image evaluated by the metrics handler.
struct World {
    store: Arc<MemoryStore>,
    images: Vec<(CaptureRecord, GroundTruth)>,
    handler: Deps<Retrying<Arc<MemoryStore>>, MemorySink>,
}

impl World {
    async fn new() -> Self {
        let store = Arc::new(MemoryStore::new());
        let mut r = Lcg(7);
        let mut images = Vec::new();
        for (h, n) in [(7, 30u64), (9, 14)] {
            for i in 0..n {
                let at = hour(h).start + Duration::seconds(60 * i as i64 + 7);
                images.push(image(u64::from(h) * 1000 + i, at, &mut r));
            }
        }
        for (capture, truth) in &images {
            put(
                &*store,
                &keys::capture_record(capture.id, capture.captured_at),
                records::to_json(capture),
            )
            .await;
            put(&*store, &keys::label(truth.id), records::to_json(truth)).await;
        }
        // Captures nobody labelled: they count toward coverage only.
        for i in 0..6 {
            let at = hour(7).start + Duration::seconds(30 * i + 1);
            let (c, _) = image(90_000 + i as u64, at, &mut r);
            put(
                &*store,
                &keys::capture_record(c.id, c.captured_at),
                records::to_json(&c),
            )
            .await;
        }
        let world = Self {
            handler: Deps {
                store: Retrying::new(store.clone(), RetryPolicy::immediate(2)),
                sink: MemorySink::default(),
                now,
            },
            store,
            images,
        };
        world.deliver_all("m").await;
        world
    }

    async fn deliver(&self, message_id: &str, truth: &GroundTruth) {
        let resp = evaluate::handle(
            sqs(&[(message_id.to_string(), truth.id, truth.version())]),
            &self.handler,
        )
        .await;
        assert!(resp.batch_item_failures.is_empty(), "{message_id}");
    }

    async fn deliver_all(&self, prefix: &str) {
        for (i, (_, truth)) in self.images.iter().enumerate() {
            self.deliver(&format!("{prefix}-{i}"), truth).await;
        }
    }

    fn rollup(&self) -> RollupDeps<Retrying<Arc<MemoryStore>>, MemorySink> {
        rollup_deps(self.store.clone())
    }

    fn window(&self, window: &Window) -> Option<WindowMetrics> {
        self.store
            .body(&keys::window_metrics(window, VERSION).unwrap())
            .map(|b| records::from_json(&b).unwrap())
    }

    fn touches(&self) -> Vec<String> {
        self.store
            .keys()
            .into_iter()
            .filter(|k| k.starts_with(keys::WINDOWS_TOUCHED))
            .collect()
    }

    fn state(&self) -> Vec<(String, Option<Bytes>)> {
        self.store
            .keys()
            .into_iter()
            .map(|k| {
                let body = self.store.body(&k);
                (k, body)
            })
            .collect()
    }

    fn stored_evals(&self, window: &Window) -> Vec<ImageEval> {
        let prefix = keys::image_evals_prefix(window);
        self.store
            .keys()
            .into_iter()
            .filter(|k| k.starts_with(&prefix))
            .map(|k| records::from_json(&self.store.body(&k).unwrap()).unwrap())
            .collect()
    }
}

fn rollup_deps<S: ObjectStore>(store: S) -> RollupDeps<Retrying<S>, MemorySink> {
    RollupDeps {
        store: Retrying::new(store, RetryPolicy::immediate(2)),
        sink: MemorySink::default(),
        score_threshold: THRESHOLD,
        now,
        concurrency: 4,
    }
}

/// The same images as one COCO dataset, evaluated the way `modelobs eval`
/// does (image ids in capture order, all 80 categories).
fn coco_summary(images: &[&(CaptureRecord, GroundTruth)]) -> modelobs_core::eval::CocoSummary {
    let mut ordered: Vec<_> = images.to_vec();
    ordered.sort_by_key(|(c, _)| c.id);
    let mut gt_images = Vec::new();
    let mut annotations = Vec::new();
    let mut results = Vec::new();
    for (n, (capture, truth)) in ordered.iter().enumerate() {
        let image_id = n as u64 + 1;
        gt_images.push(json!({"id": image_id, "width": 773, "height": 512}));
        for o in &truth.objects {
            annotations.push(json!({
                "id": annotations.len() + 1,
                "image_id": image_id,
                "category_id": classes::by_index(o.class_id).unwrap().category_id,
                "bbox": o.bbox.to_xywh(),
                "area": o.bbox.area(),
                "iscrowd": u8::from(o.iscrowd),
            }));
        }
        for d in &capture.detections {
            results.push(json!({
                "image_id": image_id,
                "category_id": classes::by_index(d.class_id).unwrap().category_id,
                "bbox": d.bbox.to_xywh(),
                "score": d.score,
            }));
        }
    }
    let categories: Vec<Value> = classes::coco80()
        .map(|c| json!({"id": c.category_id, "name": c.name}))
        .collect();
    let gt = coco_format::parse_dataset(
        json!({"images": gt_images, "annotations": annotations, "categories": categories})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    let dt = coco_format::parse_results(Value::from(results).to_string().as_bytes()).unwrap();
    coco_format::evaluate_dataset(&gt, &dt)
        .unwrap()
        .summary(&gt.categories)
}

/// `m` as it reads back from the bucket: serde_json's default float parsing
/// may land one ulp off the written value, so compare stored with stored.
fn stored_form(m: WindowMetrics) -> WindowMetrics {
    records::from_json(&records::to_json(&m)).unwrap()
}

fn assert_close(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() < 1e-12, "{what}: {a} vs {b}");
}

fn assert_same_coco(
    window: &modelobs_core::eval::CocoSummary,
    coco: &modelobs_core::eval::CocoSummary,
) {
    for (name, a, b) in [
        ("AP", window.ap, coco.ap),
        ("AP50", window.ap50, coco.ap50),
        ("AP75", window.ap75, coco.ap75),
        ("APs", window.ap_small, coco.ap_small),
        ("APm", window.ap_medium, coco.ap_medium),
        ("APl", window.ap_large, coco.ap_large),
        ("AR1", window.ar1, coco.ar1),
        ("AR10", window.ar10, coco.ar10),
        ("AR100", window.ar100, coco.ar100),
    ] {
        assert_close(a, b, name);
    }
    assert!(!window.per_class.is_empty());
    for (class, ap) in &window.per_class {
        let want = coco.per_class[class];
        assert_close(ap.ap, want.ap, class);
        assert_close(ap.ap50, want.ap50, class);
    }
    // Classes the window leaves out are the ones COCOeval calls undefined.
    for (class, ap) in &coco.per_class {
        if !window.per_class.contains_key(class) {
            assert_eq!(ap.ap, -1.0, "{class}");
        }
    }
}

#[tokio::test]
async fn windows_equal_a_coco_evaluation_of_the_same_images() {
    // GIVEN 44 labelled images in two hours, evaluated by the metrics handler
    let w = World::new().await;

    // WHEN the rollup runs
    let report = rollup::run(&w.rollup()).await.unwrap();

    // THEN hours 07 and 09 and the day are stored, and their figures are COCOeval's
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.rolled.len(), 3);
    let in_hour = |h: u32| -> Vec<&(CaptureRecord, GroundTruth)> {
        w.images
            .iter()
            .filter(|(c, _)| hour(h).contains(c.captured_at))
            .collect()
    };
    for (window, images, captures) in [
        (hour(7), in_hour(7), 36),
        (hour(9), in_hour(9), 14),
        (day(), w.images.iter().collect(), 50),
    ] {
        let m = w.window(&window).expect("window stored");
        assert_eq!(m.images_labelled as usize, images.len());
        assert_eq!(m.captures_in_window, captures);
        assert_close(
            m.label_coverage.unwrap(),
            images.len() as f64 / captures as f64,
            "coverage",
        );
        assert_eq!(m.model.name, "nanodet-coco");
        assert_same_coco(&m.coco, &coco_summary(&images));
        let want = WindowMetrics::compute(
            window,
            m.model.clone(),
            &w.stored_evals(&window),
            captures,
            THRESHOLD,
            now(),
        )
        .unwrap();
        assert_eq!(m, stored_form(want));
        assert!(m.at_serving_threshold.tp > 0 && m.at_serving_threshold.fp > 0);
    }
    assert!(w.window(&hour(8)).is_none());
    assert!(w.touches().is_empty(), "every touch consumed");
}

#[tokio::test]
async fn v1_records_roll_up_to_the_same_windows_as_v2() {
    // GIVEN the evaluations as this build's metrics handler stores them (v2)
    let v2 = World::new().await;
    // AND the same evaluations stored by the build before (v1): all of them
    // in one bucket, every other one in another (a bucket mid-upgrade)
    let (all_v1, mixed) = (World::new().await, World::new().await);
    for (world, every) in [(&all_v1, 1), (&mixed, 2)] {
        let keys: Vec<String> = world
            .store
            .keys()
            .into_iter()
            .filter(|k| k.starts_with(keys::EVALS))
            .collect();
        assert_eq!(keys.len(), 44);
        for key in keys.iter().step_by(every) {
            let body = world.store.body(key).unwrap();
            assert!(body.starts_with(br#"{"schema_version":2,"#));
            let eval: ImageEval = records::from_json(&body).unwrap();
            let old = records::image_eval_v1_json(&eval);
            assert!(old.starts_with(br#"{"schema_version":1,"#));
            put(&*world.store, key, old).await;
        }
    }

    // WHEN each rolls up
    for world in [&v2, &all_v1, &mixed] {
        let report = rollup::run(&world.rollup()).await.unwrap();
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        assert_eq!(report.rolled.len(), 3);
    }

    // THEN every window is the same, to the bit
    for window in [hour(7), hour(9), day()] {
        let want = v2.window(&window).expect("window stored");
        assert_eq!(all_v1.window(&window).as_ref(), Some(&want));
        assert_eq!(mixed.window(&window).as_ref(), Some(&want));
    }
}

#[tokio::test]
async fn duplicate_runs_and_redeliveries_give_identical_state() {
    let w = World::new().await;
    rollup::run(&w.rollup()).await.unwrap();
    let first = w.state();

    // WHEN the rollup runs again with nothing touched
    let again = rollup::run(&w.rollup()).await.unwrap();
    assert!(again.rolled.is_empty());
    assert_eq!(w.state(), first);

    // WHEN every message is delivered a second time and the rollup runs again
    w.deliver_all("m").await;
    assert!(!w.touches().is_empty());
    let report = rollup::run(&w.rollup()).await.unwrap();
    assert_eq!(report.rolled.len(), 3);

    // THEN the bucket is exactly as after the first rollup
    assert_eq!(w.state(), first);
}

#[tokio::test]
async fn a_deleted_label_leaves_its_window() {
    let w = World::new().await;
    rollup::run(&w.rollup()).await.unwrap();
    let before = w.window(&hour(9)).unwrap();

    // WHEN one image's label in hour 09 is deleted
    let (gone_capture, truth) = w
        .images
        .iter()
        .find(|(c, t)| hour(9).contains(c.captured_at) && !t.objects.is_empty())
        .unwrap();
    let mut tombstone = truth.clone();
    tombstone.deleted = true;
    tombstone.objects.clear();
    tombstone.updated_at += Duration::minutes(5);
    put(
        &*w.store,
        &keys::label(truth.id),
        records::to_json(&tombstone),
    )
    .await;
    w.deliver("delete-1", &tombstone).await;
    rollup::run(&w.rollup()).await.unwrap();

    // THEN hour 09 and the day have one image fewer, and equal COCOeval without it
    let after = w.window(&hour(9)).unwrap();
    assert_eq!(after.images_labelled, before.images_labelled - 1);
    let rest: Vec<_> = w
        .images
        .iter()
        .filter(|(c, _)| hour(9).contains(c.captured_at) && c.id != gone_capture.id)
        .collect();
    assert_same_coco(&after.coco, &coco_summary(&rest));
    assert_eq!(
        w.window(&day()).unwrap().images_labelled as usize,
        w.images.len() - 1
    );
    assert_eq!(w.window(&hour(7)).unwrap().images_labelled, 30, "untouched");
}

#[tokio::test]
async fn a_window_whose_labels_are_all_deleted_is_removed() {
    let w = World::new().await;
    rollup::run(&w.rollup()).await.unwrap();
    assert!(w.window(&hour(9)).is_some());

    for (n, (c, truth)) in w.images.iter().enumerate() {
        if hour(9).contains(c.captured_at) {
            let mut tombstone = truth.clone();
            tombstone.deleted = true;
            tombstone.updated_at += Duration::minutes(5);
            put(
                &*w.store,
                &keys::label(truth.id),
                records::to_json(&tombstone),
            )
            .await;
            w.deliver(&format!("del-{n}"), &tombstone).await;
        }
    }
    let report = rollup::run(&w.rollup()).await.unwrap();

    assert!(w.window(&hour(9)).is_none());
    let rolled = report
        .rolled
        .iter()
        .find(|r| r.key == keys::window_metrics(&hour(9), VERSION).unwrap())
        .unwrap();
    assert_eq!((rolled.images_labelled, rolled.ap), (0, None));
    assert_eq!(w.window(&day()).unwrap().images_labelled, 30);
}

/// Objects to write: key and body.
type Writes = Vec<(String, Vec<u8>)>;

/// The bucket, with a label update landing at a chosen moment of a rollup:
/// right after the rollup stored a window (its evaluations already read).
struct LandsDuringRollup {
    inner: Arc<MemoryStore>,
    when_put: String,
    update: Mutex<Option<Writes>>,
}

impl ObjectStore for LandsDuringRollup {
    async fn put(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
        condition: PutCondition,
    ) -> Result<PutOutcome, StoreError> {
        let out = self.inner.put(key, body, content_type, condition).await;
        if key == self.when_put {
            let update = self.update.lock().unwrap().take();
            for (k, b) in update.into_iter().flatten() {
                put(&*self.inner, &k, b).await;
            }
        }
        out
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }
    async fn get(&self, key: &str) -> Result<Option<StoredObject>, StoreError> {
        self.inner.get(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ListedObject>, StoreError> {
        self.inner.list(prefix).await
    }
}

#[tokio::test]
async fn a_touch_that_lands_while_the_rollup_runs_is_not_lost() {
    let w = World::new().await;
    rollup::run(&w.rollup()).await.unwrap();

    // GIVEN a relabelled image in hour 07, whose new evaluation and touch land
    // just after the next rollup has read hour 07 and stored it
    let (capture, truth) = w.images.iter().find(|(_, t)| t.objects.len() >= 2).unwrap();
    let mut relabelled = truth.clone();
    relabelled.objects.truncate(1);
    relabelled.updated_at += Duration::minutes(5);
    let new_eval = ImageEval::evaluate(capture, &relabelled, now()).unwrap();
    let late_touch = keys::window_touch(&hour(7), VERSION, "9999999999999-late").unwrap();
    // Something else touched hour 07, so the rollup has a reason to run it.
    w.deliver("other", &w.images[1].1).await;
    let store = LandsDuringRollup {
        inner: w.store.clone(),
        when_put: keys::window_metrics(&hour(7), VERSION).unwrap(),
        update: Mutex::new(Some(vec![
            (
                keys::image_eval(capture.id, capture.captured_at),
                records::to_json(&new_eval),
            ),
            (late_touch.clone(), b"{}".to_vec()),
        ])),
    };

    // WHEN that rollup runs
    let report = rollup::run(&rollup_deps(store)).await.unwrap();
    assert!(report.failed.is_empty());

    // THEN the late touch is still there, the touches it read are gone ...
    assert_eq!(w.touches(), vec![late_touch]);
    let stale = w.window(&hour(7)).unwrap();
    let current = stored_form(
        WindowMetrics::compute(
            hour(7),
            stale.model.clone(),
            &w.stored_evals(&hour(7)),
            36,
            THRESHOLD,
            now(),
        )
        .unwrap(),
    );
    assert_ne!(stale, current, "the stored window missed the update");

    // ... and the next run brings hour 07 up to date
    rollup::run(&w.rollup()).await.unwrap();
    assert_eq!(w.window(&hour(7)).unwrap(), current);
    assert!(w.touches().is_empty());
}

#[tokio::test]
async fn a_slow_rollup_never_overwrites_a_window_stored_while_it_read() {
    let w = World::new().await;
    rollup::run(&w.rollup()).await.unwrap();
    let key = keys::window_metrics(&hour(7), VERSION).unwrap();
    let before = w.store.body(&key).unwrap().to_vec();
    // GIVEN a relabelled image in hour 07, evaluated and rolled up
    let (capture, truth) = w.images.iter().find(|(_, t)| t.objects.len() >= 2).unwrap();
    let eval_key = keys::image_eval(capture.id, capture.captured_at);
    let old_eval = w.store.body(&eval_key).unwrap().to_vec();
    let mut relabelled = truth.clone();
    relabelled.objects.truncate(1);
    relabelled.updated_at += Duration::minutes(5);
    put(
        &*w.store,
        &keys::label(truth.id),
        records::to_json(&relabelled),
    )
    .await;
    w.deliver("relabel", &relabelled).await;
    rollup::run(&w.rollup()).await.unwrap();
    let newest = w.window(&hour(7)).unwrap();
    assert_ne!(w.store.body(&key).unwrap().to_vec(), before);

    // WHEN a run that read the window and the old evaluation before that
    // (it started first, with a touch of its own) finishes after it
    let its_touch = keys::window_touch(&hour(7), VERSION, "0000000000001-slow").unwrap();
    put(&*w.store, &its_touch, b"{}".to_vec()).await;
    let slow = support::StaleReads::new(w.store.clone());
    slow.answer_next(&key, Some(before));
    slow.answer_next(&eval_key, Some(old_eval));
    let report = rollup::run(&rollup_deps(slow)).await.unwrap();

    // THEN the newer window stays, the slow run says so and keeps its touch
    assert_eq!(w.window(&hour(7)).unwrap(), newest);
    let rolled = report.rolled.iter().find(|r| r.key == key).unwrap();
    assert!(!rolled.written);
    assert_eq!(w.touches(), vec![its_touch]);
    // ... and the next run recomputes the same, newest window
    rollup::run(&w.rollup()).await.unwrap();
    assert_eq!(w.window(&hour(7)).unwrap(), newest);
    assert!(w.touches().is_empty());
}

#[tokio::test]
async fn a_bad_window_fails_alone_and_fails_the_invocation() {
    let w = World::new().await;
    // GIVEN an unreadable evaluation in hour 09
    put(
        &*w.store,
        &format!("{}garbage.json", keys::image_evals_prefix(&hour(9))),
        b"not json".to_vec(),
    )
    .await;

    // WHEN the rollup is invoked
    let deps = w.rollup();
    let err = rollup::handle(json!({"detail-type": "Scheduled Event"}), &deps)
        .await
        .unwrap_err();

    // THEN hour 07 is stored; hour 09 and the day (which holds it) failed, named,
    // and keep their touches for the next run
    let rollup::RollupError::WindowsFailed { failed, total } = &err else {
        panic!("{err}")
    };
    assert_eq!(*total, 3);
    let names: Vec<_> = failed.iter().map(|f| f.window.as_str()).collect();
    assert_eq!(
        names,
        [
            keys::window_metrics(&hour(9), VERSION).unwrap(),
            keys::window_metrics(&day(), VERSION).unwrap()
        ]
    );
    assert!(
        failed[0].error.contains("garbage.json"),
        "{}",
        failed[0].error
    );
    assert!(w.window(&hour(7)).is_some());
    assert!(w.window(&hour(9)).is_none());
    let touches = w.touches();
    assert!(!touches.is_empty());
    assert!(
        touches
            .iter()
            .all(|t| t.starts_with("windows/touched/hour/2026-11-26T09/")
                || t.starts_with("windows/touched/day/")),
        "{touches:?}"
    );
}

#[tokio::test]
async fn storage_trouble_is_retried() {
    let w = World::new().await;
    w.store.fail_next(1);
    let report = rollup::run(&w.rollup()).await.unwrap();
    assert_eq!(report.rolled.len(), 3);
    assert!(report.failed.is_empty());
}

#[tokio::test]
async fn window_emf_is_valid_and_names_each_class() {
    let w = World::new().await;
    let deps = w.rollup();
    rollup::run(&deps).await.unwrap();
    let lines = deps.sink.lines.lock().unwrap().clone();
    let parsed: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for v in &parsed {
        let directive = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "ModelObservability");
        for m in directive["Metrics"].as_array().unwrap() {
            assert!(v[m["Name"].as_str().unwrap()].is_number(), "{v}");
        }
        for dim in directive["Dimensions"][0].as_array().unwrap() {
            assert!(v[dim.as_str().unwrap()].is_string(), "{v}");
        }
    }
    let day_line = parsed
        .iter()
        .find(|v| v["Granularity"] == "day" && v.get("ClassName").is_none())
        .unwrap();
    let m = w.window(&day()).unwrap();
    assert_eq!(day_line["AP"], m.coco.ap);
    assert_eq!(day_line["AR100"], m.coco.ar100);
    assert_eq!(day_line["ImagesLabelled"], 44.0);
    assert_eq!(day_line["LabelCoverage"], m.label_coverage.unwrap());
    assert_eq!(day_line["F1"], m.at_serving_threshold.f1.unwrap());
    assert_eq!(
        day_line["_aws"]["Timestamp"],
        day().start.timestamp_millis()
    );
    let classes: Vec<_> = parsed
        .iter()
        .filter(|v| v["Granularity"] == "day")
        .filter_map(|v| v["ClassName"].as_str())
        .collect();
    let defined = m.coco.per_class.values().filter(|c| c.ap >= 0.0).count();
    assert_eq!(classes.len(), defined);
}

fn observe_sink(fake: &FakeObserve) -> ObserveSink {
    ObserveSink::new(
        ObserveClient::new(&ObserveConfig::with_base_url(&fake.base_url(), "tok"))
            .unwrap()
            .with_retry(RetryPolicy::immediate(3)),
    )
}

#[tokio::test]
async fn observe_gets_images_and_windows() {
    let fake = FakeObserve::start().await;
    fake.answer_next(&[503]);
    let w = World::new().await;
    let (_, truth) = &w.images[0];
    let handler = Deps {
        store: Retrying::new(w.store.clone(), RetryPolicy::immediate(2)),
        sink: Fanout::new(
            MemorySink::default(),
            Some(("observe", observe_sink(&fake))),
        ),
        now,
    };
    let resp = evaluate::handle(
        sqs(&[("obs-1".into(), truth.id, truth.version())]),
        &handler,
    )
    .await;
    assert!(resp.batch_item_failures.is_empty());
    let rollup_deps = RollupDeps {
        store: Retrying::new(w.store.clone(), RetryPolicy::immediate(2)),
        sink: Fanout::new(
            MemorySink::default(),
            Some(("observe", observe_sink(&fake))),
        ),
        score_threshold: THRESHOLD,
        now,
        concurrency: 4,
    };
    rollup::run(&rollup_deps).await.unwrap();

    // The 503 was retried; then one image and three windows arrived, bearer and all.
    let got = fake.received();
    assert_eq!(got[0].answered, 503);
    let delivered: Vec<Value> = got
        .iter()
        .filter(|r| r.answered == 200)
        .inspect(|r| assert_eq!(r.authorization.as_deref(), Some("Bearer tok")))
        .flat_map(|r| r.lines())
        .map(|l| serde_json::from_str(&l).unwrap())
        .collect();
    let kinds: Vec<_> = delivered
        .iter()
        .map(|v| v["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "image_eval",
            "window_metrics",
            "window_metrics",
            "window_metrics"
        ]
    );
    assert_eq!(delivered[0]["id"], json!(truth.id));
    assert!(delivered[0].get("classes").is_none(), "no matching cells");
    let day_window: WindowMetrics = serde_json::from_value({
        let mut v = delivered[3].clone();
        v.as_object_mut().unwrap().remove("kind");
        v
    })
    .unwrap();
    assert_eq!(Some(day_window), w.window(&day()));
    assert_eq!(handler.sink.failures() + rollup_deps.sink.failures(), 0);
}

#[tokio::test]
async fn observe_down_is_counted_and_fails_nothing() {
    let fake = FakeObserve::start().await;
    fake.answer_always(503);
    let w = World::new().await;
    let (capture, truth) = &w.images[3];
    w.store
        .delete(&keys::image_eval(capture.id, capture.captured_at))
        .await
        .unwrap();
    let handler = Deps {
        store: Retrying::new(w.store.clone(), RetryPolicy::immediate(2)),
        sink: Fanout::new(
            MemorySink::default(),
            Some(("observe", observe_sink(&fake))),
        ),
        now,
    };

    // WHEN a label arrives while Observe answers 503 to every try
    let resp = evaluate::handle(
        sqs(&[("down-1".into(), truth.id, truth.version())]),
        &handler,
    )
    .await;

    // THEN the message succeeds, the evaluation is stored and on EMF, and the
    // failure is counted once (after three tries) with an EMF SinkFailures line
    assert!(resp.batch_item_failures.is_empty());
    assert!(
        w.store
            .body(&keys::image_eval(capture.id, capture.captured_at))
            .is_some()
    );
    assert_eq!(fake.received().len(), 3);
    assert_eq!(handler.sink.failures(), 1);
    let lines = handler.sink.primary().lines.lock().unwrap().clone();
    assert!(
        lines.iter().any(|l| l.contains(r#""TP""#)),
        "image EMF still sent"
    );
    let failure: Value =
        serde_json::from_str(lines.iter().find(|l| l.contains("SinkFailures")).unwrap()).unwrap();
    assert_eq!(
        (failure["Sink"].as_str(), failure["SinkFailures"].as_f64()),
        (Some("observe"), Some(1.0))
    );

    // AND a rollup meanwhile stores every window and succeeds
    let rollup_deps = RollupDeps {
        store: Retrying::new(w.store.clone(), RetryPolicy::immediate(2)),
        sink: Fanout::new(
            MemorySink::default(),
            Some(("observe", observe_sink(&fake))),
        ),
        score_threshold: THRESHOLD,
        now,
        concurrency: 4,
    };
    let report = rollup::handle(json!({}), &rollup_deps).await.unwrap();
    assert_eq!(report.rolled.len(), 3);
    assert_eq!(rollup_deps.sink.failures(), 3);
}
