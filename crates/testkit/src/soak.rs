//! What both fault soaks share (`crates/pipeline/tests/soak.rs` in process,
//! `cli/tests/soak_stack.rs` through the local stack): captures with the label
//! history a labeller gives them (created, updated, deleted, created again),
//! as Labelbox-shaped webhook bodies, and the comparison of a bucket with that
//! truth: labels lost or stale, evaluations lost or stale, windows
//! double-counted, short or different from evaluating each capture's final
//! label.

use std::collections::BTreeMap;
use std::future::Future;

use chrono::{DateTime, Duration, Utc};
use modelobs_core::keys;
use modelobs_core::records::{
    self, CaptureId, CaptureRecord, Granularity, GroundTruth, ImageEval, Window, WindowMetrics,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

const CAPTURE: &[u8] = include_bytes!("../../../events/records/capture-record.json");

/// One capture and the label events a labeller produced for it, in order.
pub struct Item {
    pub capture: CaptureRecord,
    /// Webhook bodies (the topic in the signed body), oldest first.
    pub events: Vec<Vec<u8>>,
    /// What the last event leaves: `None` when the label ends deleted.
    pub last: Option<Vec<Value>>,
}

fn boxes(rng: &mut ChaCha8Rng) -> Vec<Value> {
    let names = ["dog", "cat", "horse", "sheep", "bird"];
    (0..rng.random_range(1..4))
        .map(|_| {
            let (left, top) = (rng.random_range(0..400), rng.random_range(0..300));
            json!({"title": names[rng.random_range(0..names.len())],
                "bbox": {"left": left, "top": top,
                    "width": rng.random_range(20..200), "height": rng.random_range(20..150)}})
        })
        .collect()
}

/// A Labelbox-shaped webhook body for `topic` (`LABEL_CREATED`, ...).
pub fn body(
    topic: &str,
    label_id: &str,
    id: CaptureId,
    at: DateTime<Utc>,
    objects: Option<&[Value]>,
) -> Vec<u8> {
    let mut b = json!({"event": topic, "id": label_id, "dataRow": {"globalKey": id.to_string()},
        "updatedAt": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)});
    if let Some(objects) = objects {
        b["label"] = json!({"objects": objects});
    }
    serde_json::to_vec(&b).unwrap()
}

/// `n` captures in `[start, start + span)` (from the fixture capture record,
/// under `model_version` when given), each with a label history: created,
/// maybe updated, maybe deleted, maybe created again under a new label id.
/// `tag` makes the label ids and capture ids of one run its own.
pub fn items(
    n: usize,
    rng: &mut ChaCha8Rng,
    start: DateTime<Utc>,
    span: Duration,
    model_version: Option<&str>,
    tag: &str,
) -> Vec<Item> {
    let mut template: CaptureRecord = records::from_json(CAPTURE).unwrap();
    if let Some(v) = model_version {
        template.model.version = v.to_string();
    }
    let span_ms = span.num_milliseconds().max(1);
    (0..n)
        .map(|i| {
            let at = start + Duration::milliseconds(rng.random_range(0..span_ms));
            let id = CaptureId::derived(at, format!("{tag}/{i}").as_bytes());
            let mut capture = template.clone();
            capture.id = id;
            capture.captured_at = at;
            capture.image.key = keys::capture_image(id, at, "jpg");
            // The model saw roughly what the labeller will draw first.
            let first = boxes(rng);
            capture.detections = template
                .detections
                .iter()
                .cycle()
                .take(first.len())
                .zip(&first)
                .map(|(d, b)| {
                    let mut d = d.clone();
                    let f = |k: &str| b["bbox"][k].as_f64().unwrap();
                    let (l, t, w, h) = (f("left"), f("top"), f("width"), f("height"));
                    let jitter = rng.random_range(-6.0..6.0);
                    d.bbox =
                        modelobs_core::BBox::new(l + jitter, t, l + w + jitter, t + h).unwrap();
                    d.score = rng.random_range(0.3..0.99);
                    let class =
                        modelobs_core::classes::by_name(b["title"].as_str().unwrap()).unwrap();
                    (d.label, d.class_id) = (class.name.to_string(), class.index);
                    d
                })
                .collect();
            let label_a = format!("{tag}-label-{i}-a");
            let mut t = at + Duration::minutes(rng.random_range(5..90));
            let mut events = vec![body("LABEL_CREATED", &label_a, id, t, Some(&first))];
            let mut last = Some(first);
            if rng.random_bool(0.3) {
                t += Duration::seconds(rng.random_range(1..600));
                let second = boxes(rng);
                events.push(body("LABEL_UPDATED", &label_a, id, t, Some(&second)));
                last = Some(second);
            }
            if rng.random_bool(0.2) {
                t += Duration::seconds(rng.random_range(1..600));
                events.push(body("LABEL_DELETED", &label_a, id, t, None));
                last = None;
                if rng.random_bool(0.5) {
                    t += Duration::seconds(rng.random_range(1..600));
                    let third = boxes(rng);
                    let label_b = format!("{tag}-label-{i}-b");
                    events.push(body("LABEL_CREATED", &label_b, id, t, Some(&third)));
                    last = Some(third);
                }
            }
            Item {
                capture,
                events,
                last,
            }
        })
        .collect()
}

/// The bucket against the truth.
#[derive(Debug, Default, Clone, Copy)]
pub struct Outcome {
    pub labels_lost: usize,
    pub labels_stale: usize,
    pub evals_lost: usize,
    pub evals_stale: usize,
    pub windows: usize,
    pub windows_double_counted: usize,
    pub windows_short: usize,
    pub windows_different: usize,
}

impl Outcome {
    pub fn rows(&self) -> Vec<(&'static str, String)> {
        vec![
            ("labels lost", self.labels_lost.to_string()),
            ("labels stale", self.labels_stale.to_string()),
            ("evaluations lost", self.evals_lost.to_string()),
            ("evaluations stale", self.evals_stale.to_string()),
            ("windows checked", self.windows.to_string()),
            (
                "windows double-counted",
                self.windows_double_counted.to_string(),
            ),
            ("windows missing images", self.windows_short.to_string()),
            ("windows != evaluation", self.windows_different.to_string()),
        ]
    }

    pub fn clean(&self) -> bool {
        self.labels_lost
            + self.labels_stale
            + self.evals_lost
            + self.evals_stale
            + self.windows_double_counted
            + self.windows_short
            + self.windows_different
            == 0
    }
}

/// Reads every item's label and evaluation, and every hour and day window its
/// captures fall in, through `read` (a key's body, `None` when absent), and
/// compares them with evaluating each capture against its final label
/// (windows at `score_threshold`, the rollup's).
pub async fn compare<F, Fut>(items: &[Item], score_threshold: f64, read: F) -> Outcome
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Option<Vec<u8>>>,
{
    let mut out = Outcome::default();
    let now = Utc::now();
    let mut expected: BTreeMap<(DateTime<Utc>, bool), (Window, Vec<ImageEval>)> = BTreeMap::new();
    for item in items {
        let id = item.capture.id;
        let stored: Option<GroundTruth> = read(keys::label(id))
            .await
            .map(|b| records::from_json(&b).unwrap());
        let eval: Option<ImageEval> = read(keys::image_eval(id, item.capture.captured_at))
            .await
            .map(|b| records::from_json(&b).unwrap());
        let Some(stored) = stored else {
            out.labels_lost += 1;
            continue;
        };
        let (last_objects, want_deleted) = match &item.last {
            Some(objects) => (objects.len(), false),
            None => (0, true),
        };
        if stored.deleted != want_deleted
            || stored.objects.len() + stored.unmapped_objects.len() != last_objects
        {
            out.labels_stale += 1;
        }
        match (want_deleted, eval) {
            (true, Some(_)) => out.evals_stale += 1,
            (true, None) => {}
            (false, None) => out.evals_lost += 1,
            (false, Some(e)) => {
                if e.label_version != stored.version() {
                    out.evals_stale += 1;
                }
                let truth_eval = ImageEval::evaluate(&item.capture, &stored, now).unwrap();
                for g in [Granularity::Hour, Granularity::Day] {
                    let w = Window::containing(g, item.capture.captured_at);
                    let slot = expected
                        .entry((w.start, g == Granularity::Day))
                        .or_insert((w, Vec::new()));
                    slot.1.push(truth_eval.clone());
                }
            }
        }
    }
    let Some(first) = items.first() else {
        return out;
    };
    for (window, evals) in expected.values() {
        out.windows += 1;
        let key = keys::window_metrics(window, &first.capture.model.version).unwrap();
        let Some(body) = read(key).await else {
            out.windows_short += 1;
            continue;
        };
        let stored: WindowMetrics = records::from_json(&body).unwrap();
        let want = WindowMetrics::compute(
            *window,
            first.capture.model.clone(),
            evals,
            0,
            score_threshold,
            now,
        )
        .unwrap();
        match stored.images_labelled.cmp(&want.images_labelled) {
            std::cmp::Ordering::Greater => out.windows_double_counted += 1,
            std::cmp::Ordering::Less => out.windows_short += 1,
            std::cmp::Ordering::Equal => {
                let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
                if !(close(stored.coco.ap, want.coco.ap)
                    && close(stored.coco.ap50, want.coco.ap50)
                    && stored.at_serving_threshold.tp == want.at_serving_threshold.tp)
                {
                    out.windows_different += 1;
                }
            }
        }
    }
    out
}

/// `label value` rows, aligned, one a line.
pub fn table(rows: &[(&str, String)]) -> String {
    rows.iter()
        .map(|(k, v)| format!("  {k:<36} {v:>8}\n"))
        .collect()
}
