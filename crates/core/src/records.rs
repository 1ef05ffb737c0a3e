//! The records every function reads and writes (docs/data-contract.md).
//!
//! Each record is a JSON object with a `schema_version`; [`to_json`] writes
//! it and [`from_json`] refuses a version this build does not know, naming
//! the record and both versions, instead of misreading it.

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::boxes::BBox;
use crate::classes;
use crate::error::CoreError;
use crate::eval::{self, ClassEval, CocoSummary, GtBox, OperatingPoint};
use crate::profile::CaptureProfile;

/// A stored record type and the schema version this build writes and reads.
pub trait Record: Serialize + DeserializeOwned {
    const KIND: &'static str;
    /// The version this build writes.
    const SCHEMA_VERSION: u32;
    /// The oldest version this build still reads (fields added since are
    /// optional in the type): `SCHEMA_VERSION` unless a record says otherwise.
    const OLDEST_READABLE: u32 = Self::SCHEMA_VERSION;
}

#[derive(Serialize)]
struct Versioned<'a, T> {
    schema_version: u32,
    #[serde(flatten)]
    record: &'a T,
}

/// The record as stored: compact JSON with its `schema_version`.
pub fn to_json<T: Record>(record: &T) -> Vec<u8> {
    serde_json::to_vec(&Versioned {
        schema_version: T::SCHEMA_VERSION,
        record,
    })
    .expect("records serialize: plain data with string keys")
}

/// Reads a stored record, refusing unknown schema versions.
pub fn from_json<T: Record>(bytes: &[u8]) -> Result<T, CoreError> {
    #[derive(Deserialize)]
    struct Probe {
        schema_version: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(bytes)
        .map_err(|e| CoreError::InvalidRecord(format!("{} is not a JSON object: {e}", T::KIND)))?;
    let found = match probe.schema_version {
        None => {
            return Err(CoreError::InvalidRecord(format!(
                "{} has no schema_version",
                T::KIND
            )));
        }
        Some(v) => v.as_u64().ok_or_else(|| {
            CoreError::InvalidRecord(format!(
                "{} has schema_version {v}, expected a positive integer",
                T::KIND
            ))
        })?,
    };
    if !(u64::from(T::OLDEST_READABLE)..=u64::from(T::SCHEMA_VERSION)).contains(&found) {
        return Err(CoreError::UnsupportedSchemaVersion {
            record: T::KIND,
            found,
            supported: if T::OLDEST_READABLE == T::SCHEMA_VERSION {
                T::SCHEMA_VERSION.to_string()
            } else {
                format!("{}..={}", T::OLDEST_READABLE, T::SCHEMA_VERSION)
            },
        });
    }
    serde_json::from_slice(bytes).map_err(|e| CoreError::InvalidRecord(format!("{}: {e}", T::KIND)))
}

/// A capture's id: a UUIDv7, so ids sort by capture time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CaptureId(pub Uuid);

impl CaptureId {
    /// A new id whose timestamp is the capture time.
    pub fn new(captured_at: DateTime<Utc>) -> Self {
        let ts = uuid::Timestamp::from_unix(
            uuid::NoContext,
            captured_at.timestamp().max(0) as u64,
            captured_at.timestamp_subsec_nanos(),
        );
        Self(Uuid::new_v7(ts))
    }

    /// The same id every time for the same `seed` (e.g. an uploaded object's
    /// key and ETag), so a redelivered event rewrites the same capture.
    pub fn derived(captured_at: DateTime<Utc>, seed: &[u8]) -> Self {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(seed);
        let mut random = [0u8; 10];
        random.copy_from_slice(&digest[..10]);
        let millis = captured_at.timestamp_millis().max(0) as u64;
        Self(uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid())
    }

    /// Whether an id can carry `t`: UUIDv7 holds 48 bits of milliseconds
    /// since 1970. Outside that, [`Self::new`] would clamp it and the id would
    /// disagree with the time-partitioned keys written from `t`.
    pub fn can_carry(t: DateTime<Utc>) -> bool {
        (0..1_i64 << 48).contains(&t.timestamp_millis())
    }

    /// The capture time the id carries (millisecond precision): enough to
    /// find the capture's time-partitioned keys from the id alone.
    pub fn captured_at(&self) -> Option<DateTime<Utc>> {
        let (secs, nanos) = self.0.get_timestamp()?.to_unix();
        DateTime::from_timestamp(secs as i64, nanos)
    }

    pub fn parse(s: &str) -> Result<Self, CoreError> {
        Uuid::parse_str(s)
            .map(Self)
            .map_err(|e| CoreError::InvalidRecord(format!("capture id {s:?}: {e}")))
    }
}

impl std::fmt::Display for CaptureId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRef {
    pub name: String,
    pub version: String,
}

/// One detection as the model answered it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    pub label: String,
    /// Index in the model's COCO-80 output.
    pub class_id: u16,
    pub score: f64,
    #[serde(rename = "box")]
    pub bbox: BBox,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapturedImage {
    /// S3 key of the stored image.
    pub key: String,
    pub width: u32,
    pub height: u32,
    pub content_type: String,
    /// Hex SHA-256 of the stored bytes.
    pub sha256: String,
    pub bytes: u64,
}

/// Milliseconds spent in each stage of a prediction.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct StageTimings {
    pub decode: f64,
    pub preprocess: f64,
    pub inference: f64,
    pub postprocess: f64,
    /// Computing the capture's profile (schema v2; 0 in v1 records).
    #[serde(default)]
    pub profile: f64,
    pub total: f64,
}

/// How the image reached the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CaptureSource {
    /// `POST /predict`.
    Http {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
    },
    /// An object dropped under `incoming/`.
    S3Upload { key: String },
}

/// `captures/predictions/...`: a request and the model's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureRecord {
    pub id: CaptureId,
    pub captured_at: DateTime<Utc>,
    pub source: CaptureSource,
    pub model: ModelRef,
    pub image: CapturedImage,
    /// The serving score threshold: detections below it were not returned.
    pub score_threshold: f64,
    pub detections: Vec<Detection>,
    pub timings_ms: StageTimings,
    /// The class ids the model was set to report (`CLASSES`); ground truth of
    /// any other class is not held against it. `None` (records written before
    /// this was kept): every class counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_classes: Option<Vec<u16>>,
    /// The label-free profile of the capture (schema v2); `None` in v1
    /// records and where the detector measured none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<CaptureProfile>,
}

impl CaptureRecord {
    /// Whether the model was set to report `class_id` on this capture.
    pub fn reports(&self, class_id: u16) -> bool {
        self.reported_classes
            .as_ref()
            .is_none_or(|ids| ids.contains(&class_id))
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Record for CaptureRecord {
    const KIND: &'static str = "CaptureRecord";
    /// v2 added `profile` (and `timings_ms.profile`); v1 reads as a record
    /// without them.
    const SCHEMA_VERSION: u32 = 2;
    const OLDEST_READABLE: u32 = 1;
}

/// `models/<name>/promoted.json`: the registry version chosen to serve, and
/// the one it replaced. Written with `If-Match` on the one it read, so two
/// promotions at once can't both win.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Promotion {
    pub model: ModelRef,
    pub previous: Option<ModelRef>,
    pub promoted_at: DateTime<Utc>,
    /// Why, in the promoter's words (e.g. the backtest's verdict).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Record for Promotion {
    const KIND: &'static str = "Promotion";
    const SCHEMA_VERSION: u32 = 1;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SampleReason {
    Uniform,
    Uncertain,
    Empty,
    NotSelected,
    ClassQuotaExhausted,
    DailyBudgetExhausted,
}

/// Where a sampled capture is in its trip to the labeling tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SampleState {
    /// Decided, not yet accepted by the labeling backend: retryable.
    Pending,
    /// The backend accepted it.
    Submitted,
    /// Not sampled: nothing to do.
    Skipped,
}

/// `samples/<id>.json`: whether a capture goes to a person, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingDecision {
    pub id: CaptureId,
    pub capture_key: String,
    pub decided_at: DateTime<Utc>,
    pub policy: String,
    pub sampled: bool,
    pub reason: SampleReason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// The backend's id for the item (e.g. a Labelbox data row).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_ref: Option<String>,
    pub state: SampleState,
}

impl Record for SamplingDecision {
    const KIND: &'static str = "SamplingDecision";
    const SCHEMA_VERSION: u32 = 1;
}

/// `labeling/queue/<id>.json`: a capture waiting for the local labelers,
/// with the model's boxes as pre-labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelingTask {
    pub id: CaptureId,
    pub capture_key: String,
    pub image_key: String,
    pub width: u32,
    pub height: u32,
    pub captured_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub prelabels: Vec<Detection>,
}

impl Record for LabelingTask {
    const KIND: &'static str = "LabelingTask";
    const SCHEMA_VERSION: u32 = 1;
}

/// One labelled object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroundTruthObject {
    pub label: String,
    /// Index in the COCO-80 list, like [`Detection::class_id`].
    pub class_id: u16,
    #[serde(rename = "box")]
    pub bbox: BBox,
    /// A region of many objects: ignored by evaluation, as in COCO.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub iscrowd: bool,
}

/// `labels/<id>.json`: a person's answer for a capture (or its deletion).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroundTruth {
    pub id: CaptureId,
    /// `labelbox`, `local`, ...
    pub source: String,
    pub label_id: String,
    /// When the label's content last changed (a tombstone: just after the
    /// content it deletes, or the deletion's own time): the newest wins.
    /// A review does not move it, so a review never hides a label update.
    pub updated_at: DateTime<Utc>,
    /// A tombstone: the label was deleted.
    #[serde(default)]
    pub deleted: bool,
    pub objects: Vec<GroundTruthObject>,
    /// Labelled objects whose class we could not map, as `name` (reported,
    /// not evaluated).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unmapped_objects: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_score: Option<f64>,
    /// When `review_score` was given (a review of this `label_id`): a later
    /// review replaces it, an older one arriving late does not. Absent in
    /// records written before reviews were timed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewed_at: Option<DateTime<Utc>>,
}

impl GroundTruth {
    /// Orders versions of one label: its update time in epoch milliseconds.
    pub fn version(&self) -> i64 {
        self.updated_at.timestamp_millis()
    }
}

impl Record for GroundTruth {
    const KIND: &'static str = "GroundTruth";
    const SCHEMA_VERSION: u32 = 1;
}

/// The COCO category id of a COCO-80 class index.
fn category_id(class_id: u16) -> Result<u64, CoreError> {
    classes::by_index(class_id)
        .map(|c| u64::from(c.category_id))
        .ok_or_else(|| {
            CoreError::InvalidRecord(format!("class_id {class_id} is not a COCO-80 class"))
        })
}

/// `evals/dt=.../hr=.../<id>.json`: one labelled capture, evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageEval {
    pub id: CaptureId,
    pub captured_at: DateTime<Utc>,
    pub model: ModelRef,
    pub label_version: i64,
    pub evaluated_at: DateTime<Utc>,
    pub detections: u32,
    pub gt_objects: u32,
    /// Ground-truth objects of classes the model was not set to report
    /// (`CaptureRecord::reported_classes`): left out of the evaluation, so a
    /// labeller's extra class does not lower the model's AP.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gt_not_reported: u32,
    /// Seconds from capture to label.
    pub label_lag_s: f64,
    /// This image's AP at IoU 0.5 (-1 when it has no ground truth).
    pub ap50: f64,
    /// TP/FP/FN, precision, recall, F1 and mean IoU at IoU 0.5 and the serving threshold.
    pub at_serving_threshold: OperatingPoint,
    /// Per class: what windows accumulate. Last in the record, so a reader
    /// that wants only the figures above can stop before it.
    pub classes: Vec<ClassEval>,
}

impl Record for ImageEval {
    const KIND: &'static str = "ImageEval";
    /// v2 packs each class's per-detection arrays (`eval::stored`: base64
    /// of doubles and 2-bit outcomes) where v1 spelled them out; everything
    /// else is unchanged, and v1 reads as the same evaluation.
    const SCHEMA_VERSION: u32 = 2;
    const OLDEST_READABLE: u32 = 1;
}

/// An `ImageEval` as schema v1 stored it, byte for byte (classes as
/// `eval::ClassEvalV1` writes them). Nothing stores it now: the tests and
/// `modelobs bench-rollup --schema 1` use it to show that both versions read
/// and roll up alike.
#[doc(hidden)]
pub fn image_eval_v1_json(e: &ImageEval) -> Vec<u8> {
    #[derive(Serialize)]
    struct V1<'a> {
        schema_version: u32,
        id: CaptureId,
        captured_at: &'a DateTime<Utc>,
        model: &'a ModelRef,
        label_version: i64,
        evaluated_at: &'a DateTime<Utc>,
        detections: u32,
        gt_objects: u32,
        #[serde(skip_serializing_if = "is_zero")]
        gt_not_reported: u32,
        label_lag_s: f64,
        ap50: f64,
        at_serving_threshold: &'a OperatingPoint,
        classes: Vec<eval::ClassEvalV1<'a>>,
    }
    serde_json::to_vec(&V1 {
        schema_version: 1,
        id: e.id,
        captured_at: &e.captured_at,
        model: &e.model,
        label_version: e.label_version,
        evaluated_at: &e.evaluated_at,
        detections: e.detections,
        gt_objects: e.gt_objects,
        gt_not_reported: e.gt_not_reported,
        label_lag_s: e.label_lag_s,
        ap50: e.ap50,
        at_serving_threshold: &e.at_serving_threshold,
        classes: e.classes.iter().map(eval::ClassEvalV1).collect(),
    })
    .expect("records serialize: plain data with string keys")
}

impl ImageEval {
    /// Evaluates a capture against its ground truth.
    pub fn evaluate(
        capture: &CaptureRecord,
        truth: &GroundTruth,
        evaluated_at: DateTime<Utc>,
    ) -> Result<Self, CoreError> {
        if capture.id != truth.id {
            return Err(CoreError::InvalidRecord(format!(
                "label {} belongs to capture {}, not {}",
                truth.label_id, truth.id, capture.id
            )));
        }
        if truth.deleted {
            return Err(CoreError::InvalidRecord(format!(
                "label {} of capture {} is deleted: nothing to evaluate",
                truth.label_id, truth.id
            )));
        }
        let gt = truth
            .objects
            .iter()
            .filter(|o| capture.reports(o.class_id))
            .enumerate()
            .map(|(i, o)| {
                o.bbox.validate()?;
                Ok(GtBox {
                    id: i as u64 + 1,
                    category_id: category_id(o.class_id)?,
                    bbox: o.bbox.to_xywh(),
                    area: o.bbox.area(),
                    iscrowd: o.iscrowd,
                })
            })
            .collect::<Result<Vec<_>, CoreError>>()?;
        let dt = capture
            .detections
            .iter()
            .map(|d| {
                d.bbox.validate()?;
                Ok(eval::DtBox {
                    category_id: category_id(d.class_id)?,
                    bbox: d.bbox.to_xywh(),
                    score: d.score,
                })
            })
            .collect::<Result<Vec<_>, CoreError>>()?;
        let all_categories: Vec<u64> = classes::coco80()
            .map(|c| u64::from(c.category_id))
            .collect();
        let cells = eval::evaluate_image(&gt, &dt, &all_categories);
        let ap50 = summarize([cells.as_slice()]).ap50;
        let at_serving_threshold = eval::operating_point(&cells, 0.5, capture.score_threshold)
            .expect("0.5 is on the IoU grid");
        Ok(Self {
            id: capture.id,
            captured_at: capture.captured_at,
            model: capture.model.clone(),
            label_version: truth.version(),
            evaluated_at,
            detections: capture.detections.len() as u32,
            gt_objects: gt.len() as u32,
            gt_not_reported: (truth.objects.len() - gt.len()) as u32,
            label_lag_s: (truth.updated_at - capture.captured_at).num_milliseconds() as f64 / 1e3,
            ap50,
            at_serving_threshold,
            classes: cells,
        })
    }
}

/// COCO summary over per-image evaluations given in image order. The class
/// axis is the classes present: a class with no ground truth anywhere is
/// undefined (-1) in COCOeval and left out of every mean, so this equals
/// COCOeval over the full 80-class list.
pub fn summarize<'a, I>(images: I) -> CocoSummary
where
    I: IntoIterator<Item = &'a [ClassEval]>,
    I::IntoIter: Clone,
{
    let images = images.into_iter();
    let mut cats: Vec<u64> = images.clone().flatten().map(|c| c.category_id).collect();
    cats.sort_unstable();
    cats.dedup();
    eval::accumulate(images, &cats).summarize(|id| {
        classes::by_category_id(id as u32).map_or_else(|| id.to_string(), |c| c.name.to_string())
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    Hour,
    Day,
}

impl Granularity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }

    pub fn length(self) -> Duration {
        match self {
            Self::Hour => Duration::hours(1),
            Self::Day => Duration::days(1),
        }
    }
}

/// A time window of capture times, `[start, start + length)`, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Window {
    pub granularity: Granularity,
    pub start: DateTime<Utc>,
}

impl Window {
    /// The window of this granularity that holds `t`.
    pub fn containing(granularity: Granularity, t: DateTime<Utc>) -> Self {
        let start = t
            .duration_trunc(granularity.length())
            .expect("hour and day truncation cannot overflow");
        Self { granularity, start }
    }

    pub fn end(&self) -> DateTime<Utc> {
        self.start + self.granularity.length()
    }

    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t < self.end()
    }
}

/// `windows/<hour|day>/<start>/<model-version>.json`: quality of one model
/// version over one window of capture time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowMetrics {
    pub window: Window,
    pub model: ModelRef,
    pub computed_at: DateTime<Utc>,
    pub images_labelled: u32,
    pub captures_in_window: u64,
    /// `images_labelled / captures_in_window`; `None` without captures.
    pub label_coverage: Option<f64>,
    pub mean_label_lag_s: Option<f64>,
    pub coco: CocoSummary,
    /// At IoU 0.5 and the serving score threshold.
    pub at_serving_threshold: OperatingPoint,
}

impl Record for WindowMetrics {
    const KIND: &'static str = "WindowMetrics";
    const SCHEMA_VERSION: u32 = 1;
}

/// One capture's profile on its way into its hour's [`ProfileWindow`]:
/// written by the sampler, which reads every capture record anyway, and
/// folded in (then deleted) by the rollup, so no capture record is read a
/// second time (docs/drift.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileDelta {
    pub capture_id: CaptureId,
    pub captured_at: DateTime<Utc>,
    pub model: ModelRef,
    /// `None`: a capture record from before profiles (counted only).
    pub profile: Option<crate::profile::CaptureProfile>,
}

impl Record for ProfileDelta {
    const KIND: &'static str = "ProfileDelta";
    const SCHEMA_VERSION: u32 = 1;
}

impl ProfileDelta {
    /// `capture`'s profile, stored at `keys::profile_delta` of its id, time
    /// and version. Written `If-None-Match`: a record delivered again adds
    /// nothing.
    pub fn of(capture: &CaptureRecord) -> Self {
        Self {
            capture_id: capture.id,
            captured_at: capture.captured_at,
            model: capture.model.clone(),
            profile: capture.profile.clone(),
        }
    }
}

/// `profiles/<hour|day>/<start>/<model-version>.json`: the label-free
/// profiles of every capture of one model version in one window, labelled
/// or not. A day is the sum of its hours.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileWindow {
    pub window: Window,
    pub model: ModelRef,
    pub computed_at: DateTime<Utc>,
    pub summary: crate::drift::ProfileSummary,
    /// Hour windows: the captures folded in, sorted, so that a delta
    /// delivered twice is counted once. Empty for day windows.
    #[serde(default)]
    pub folded: Vec<CaptureId>,
}

impl Record for ProfileWindow {
    const KIND: &'static str = "ProfileWindow";
    const SCHEMA_VERSION: u32 = 1;
}

/// `profiles/reference/<model-version>.json`: what the model's input and
/// answers looked like when they were known to be good, the baseline every
/// window's drift is tested against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileReference {
    pub model: ModelRef,
    /// Where it came from: `dataset <dirs> split <split>` or `captures <from>..<to>`.
    pub source: String,
    pub created_at: DateTime<Utc>,
    pub summary: crate::drift::ProfileSummary,
}

impl Record for ProfileReference {
    const KIND: &'static str = "ProfileReference";
    const SCHEMA_VERSION: u32 = 1;
}

/// A window's label-free side, computed when asked (never stored): its
/// captures, its drift against the version's reference, its estimated AP50.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowDrift {
    pub window: Window,
    pub model: ModelRef,
    /// Captures of this model version in the window, and those with a profile.
    pub captures: u64,
    pub profiled: u64,
    /// `None`: no reference for this version (`modelobs drift reference`).
    pub drift: Option<crate::drift::WindowDriftReport>,
    /// `None`: no calibration yet (fewer labelled windows than
    /// `calibration::MIN_WINDOWS`).
    pub estimated_ap50: Option<crate::calibration::Estimate>,
}

impl WindowMetrics {
    /// Accumulates the evaluations of one window and model version. Images
    /// are taken in capture-id order (capture-time order, as ids are UUIDv7).
    pub fn compute(
        window: Window,
        model: ModelRef,
        evals: &[ImageEval],
        captures_in_window: u64,
        score_threshold: f64,
        computed_at: DateTime<Utc>,
    ) -> Result<Self, CoreError> {
        Self::compute_from(
            window,
            model,
            evals,
            captures_in_window,
            score_threshold,
            computed_at,
        )
    }

    /// [`Self::compute`] over evaluations held any way, e.g. shared
    /// (`Arc<ImageEval>`, as the rollup caches them), without copying them.
    pub fn compute_from<E: std::borrow::Borrow<ImageEval>>(
        window: Window,
        model: ModelRef,
        evals: &[E],
        captures_in_window: u64,
        score_threshold: f64,
        computed_at: DateTime<Utc>,
    ) -> Result<Self, CoreError> {
        if let Some(e) = evals
            .iter()
            .map(E::borrow)
            .find(|e| e.model != model || !window.contains(e.captured_at))
        {
            return Err(CoreError::InvalidRecord(format!(
                "evaluation {} ({} {} at {}) is not in window {} of {} {}",
                e.id,
                e.model.name,
                e.model.version,
                e.captured_at,
                window.start,
                model.name,
                model.version
            )));
        }
        let mut ordered: Vec<&ImageEval> = evals.iter().map(E::borrow).collect();
        ordered.sort_by_key(|e| e.id);
        let cells = ordered.iter().map(|e| e.classes.as_slice());
        let n = evals.len();
        Ok(Self {
            window,
            model,
            computed_at,
            images_labelled: n as u32,
            captures_in_window,
            label_coverage: (captures_in_window > 0).then(|| n as f64 / captures_in_window as f64),
            mean_label_lag_s: (n > 0)
                .then(|| evals.iter().map(|e| e.borrow().label_lag_s).sum::<f64>() / n as f64),
            coco: summarize(cells.clone()),
            at_serving_threshold: eval::operating_point(cells.flatten(), 0.5, score_threshold)
                .expect("0.5 is on the IoU grid"),
        })
    }
}
