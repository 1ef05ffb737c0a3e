//! Labelled captures as standard COCO files: the ground truth as a dataset,
//! the model's answers as a results list. Used to retrain, and to check our
//! windows against any COCO evaluator.
//!
//! A training dataset (`modelobs dataset export`, `dataset import-labelbox`)
//! is chosen, de-duplicated and split here; the use cases in the pipeline
//! only fetch and write. Its `annotations.json` is a COCO dataset whose
//! images carry two of our extensions of [`CocoImage`] (`split`, `source`)
//! and a `modelobs` object ([`ImageProvenance`]): COCO tools ignore all three.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::classes;
use crate::error::CoreError;
use crate::eval::coco_format::{
    CocoAnnotation, CocoCategory, CocoDataset, CocoImage, CocoResult, Split,
};
use crate::records::{
    CaptureId, CaptureRecord, GroundTruth, GroundTruthObject, ModelRef, SampleReason,
    SamplingDecision,
};

/// All 80 COCO categories: datasets list them all, so that every file we
/// write has the same category ids whatever classes its images hold.
fn coco80_categories() -> Vec<CocoCategory> {
    classes::coco80()
        .map(|c| CocoCategory {
            id: u64::from(c.category_id),
            name: c.name.to_string(),
            supercategory: None,
        })
        .collect()
}

/// The COCO category id of a model's output class (its COCO-80 index).
pub fn category_of(class_id: u16) -> Option<u64> {
    classes::by_index(class_id).map(|c| u64::from(c.category_id))
}

/// The annotation of a labelled object, numbered after those already in `dataset`.
fn push_annotation(dataset: &mut Vec<CocoAnnotation>, image_id: u64, o: &GroundTruthObject) {
    if let Some(category_id) = category_of(o.class_id) {
        dataset.push(CocoAnnotation {
            id: dataset.len() as u64 + 1,
            image_id,
            category_id,
            bbox: o.bbox.to_xywh(),
            area: Some(o.bbox.area()),
            iscrowd: o.iscrowd,
        });
    }
}

/// COCO image ids are 1, 2, ... in capture-id order, the order windows
/// accumulate in; all 80 COCO categories are listed. Deleted labels are left out.
pub fn to_coco(labelled: &[(CaptureRecord, GroundTruth)]) -> (CocoDataset, Vec<CocoResult>) {
    let mut items: Vec<&(CaptureRecord, GroundTruth)> =
        labelled.iter().filter(|(_, gt)| !gt.deleted).collect();
    items.sort_by_key(|(c, _)| c.id);
    let mut dataset = CocoDataset {
        images: Vec::with_capacity(items.len()),
        annotations: Vec::new(),
        categories: coco80_categories(),
    };
    let mut results = Vec::new();
    for (i, (capture, truth)) in items.iter().enumerate() {
        let image_id = i as u64 + 1;
        dataset.images.push(CocoImage {
            id: image_id,
            width: Some(capture.image.width),
            height: Some(capture.image.height),
            file_name: Some(capture.image.key.clone()),
            split: None,
            source: None,
        });
        for o in &truth.objects {
            push_annotation(&mut dataset.annotations, image_id, o);
        }
        for d in &capture.detections {
            if let Some(category_id) = category_of(d.class_id) {
                results.push(CocoResult {
                    image_id,
                    category_id,
                    bbox: d.bbox.to_xywh(),
                    score: d.score,
                });
            }
        }
    }
    (dataset, results)
}

/// Our `modelobs` object on each image of an exported dataset: where the
/// image and its label came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageProvenance {
    /// The capture the image is (a Labelbox row's global key, when it is one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_id: Option<CaptureId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captured_at: Option<DateTime<Utc>>,
    /// The model that served the capture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelRef>,
    pub label_id: String,
    /// The label's version ([`GroundTruth::version`]: its update time in epoch ms).
    pub label_version: i64,
    /// `labelbox`, `local`, ... ([`GroundTruth::source`]).
    pub label_source: String,
    /// Why the sampler sent the capture to a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampling_reason: Option<SampleReason>,
    /// The Labelbox data row an imported image comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labelbox: Option<LabelboxRow>,
}

/// A Labelbox data row, as its project export names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelboxRow {
    pub project_id: String,
    pub data_row_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_data: Option<String>,
}

/// One labelled image on its way into a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetImage {
    /// Its name under `images/` (a plain file name).
    pub file_name: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// What the image is: the hex SHA-256 of its bytes when we have them.
    /// Duplicates and hash splits are decided on it.
    pub source: String,
    /// When it was captured (else labelled): the order of the dataset and of a time split.
    pub time: DateTime<Utc>,
    pub objects: Vec<GroundTruthObject>,
    pub provenance: ImageProvenance,
}

/// An image of `annotations.json`: COCO's fields and ours.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportedImage {
    #[serde(flatten)]
    pub image: CocoImage,
    pub modelobs: ImageProvenance,
}

/// `annotations.json` of an exported dataset.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportedDataset {
    pub images: Vec<ExportedImage>,
    pub annotations: Vec<CocoAnnotation>,
    pub categories: Vec<CocoCategory>,
}

/// The COCO dataset of `images`, ids 1, 2, ... in the order given;
/// `splits[i]` is image `i`'s side of the split.
pub fn coco_dataset(images: &[DatasetImage], splits: Option<&[Split]>) -> ExportedDataset {
    let mut annotations = Vec::new();
    let images = images
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let id = i as u64 + 1;
            for o in &d.objects {
                push_annotation(&mut annotations, id, o);
            }
            ExportedImage {
                image: CocoImage {
                    id,
                    width: d.width,
                    height: d.height,
                    file_name: Some(d.file_name.clone()),
                    split: splits.and_then(|s| s.get(i).copied()),
                    source: Some(d.source.clone()),
                },
                modelobs: d.provenance.clone(),
            }
        })
        .collect();
    ExportedDataset {
        images,
        annotations,
        categories: coco80_categories(),
    }
}

/// The extension of a capture's image file: from its key, else its content type.
fn image_extension(capture: &CaptureRecord) -> &str {
    let from_key = capture
        .image
        .key
        .rsplit_once('/')
        .map_or(capture.image.key.as_str(), |(_, name)| name)
        .rsplit_once('.')
        .map(|(_, ext)| ext)
        .filter(|ext| !ext.is_empty() && ext.bytes().all(|b| b.is_ascii_alphanumeric()));
    from_key.unwrap_or(match capture.image.content_type.as_str() {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/webp" => "webp",
        _ => "bin",
    })
}

/// A capture and its current label as a dataset image named `<capture id>.<ext>`,
/// or why it cannot be one: a deleted label, a label (or decision) of another capture,
/// objects whose class is not a COCO-80 class (the webhook's class map did
/// not know them) or whose box is broken. An image with an object left out
/// would teach a model that the object is background: it is refused whole.
pub fn labelled_capture(
    capture: &CaptureRecord,
    truth: &GroundTruth,
    decision: Option<&SamplingDecision>,
) -> Result<DatasetImage, CoreError> {
    let refuse = |why: String| Err(CoreError::InvalidRecord(why));
    if capture.id != truth.id {
        return refuse(format!(
            "label {} belongs to capture {}, not {}",
            truth.label_id, truth.id, capture.id
        ));
    }
    if let Some(d) = decision.filter(|d| d.id != capture.id) {
        return refuse(format!(
            "sampling decision of capture {} read for capture {}",
            d.id, capture.id
        ));
    }
    if truth.deleted {
        return refuse(format!("label {} is deleted", truth.label_id));
    }
    if !truth.unmapped_objects.is_empty() {
        return refuse(format!(
            "label {} has objects of classes not in the class map: {}",
            truth.label_id,
            truth.unmapped_objects.join(", ")
        ));
    }
    for o in &truth.objects {
        if category_of(o.class_id).is_none() {
            return refuse(format!(
                "label {}: class_id {} ({}) is not a COCO-80 class",
                truth.label_id, o.class_id, o.label
            ));
        }
        o.bbox.validate()?;
    }
    Ok(DatasetImage {
        file_name: format!("{}.{}", capture.id, image_extension(capture)),
        width: Some(capture.image.width),
        height: Some(capture.image.height),
        source: capture.image.sha256.clone(),
        time: capture.captured_at,
        objects: truth.objects.clone(),
        provenance: ImageProvenance {
            capture_id: Some(capture.id),
            captured_at: Some(capture.captured_at),
            model: Some(capture.model.clone()),
            label_id: truth.label_id.clone(),
            label_version: truth.version(),
            label_source: truth.source.clone(),
            sampling_reason: decision.map(|d| d.reason),
            labelbox: None,
        },
    })
}

/// Which labelled captures an export takes. Every field left `None` takes all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExportFilter {
    /// Captured at or after.
    pub from: Option<DateTime<Utc>>,
    /// Captured before.
    pub to: Option<DateTime<Utc>>,
    pub model_version: Option<String>,
    pub label_source: Option<String>,
    pub reason: Option<SampleReason>,
}

impl ExportFilter {
    /// Whether a capture with this id can be in the time range, from the
    /// time the id carries (to the millisecond): no record needs reading for
    /// the ones that cannot.
    pub fn may_admit(&self, id: CaptureId) -> bool {
        let Some(t) = id.captured_at() else {
            return true;
        };
        let from_ms = self.from.map(|f| f.timestamp_millis()).unwrap_or(i64::MIN);
        t.timestamp_millis() >= from_ms && self.to.is_none_or(|to| t < to)
    }

    /// Whether a labelled capture is one the export takes.
    pub fn admits(
        &self,
        capture: &CaptureRecord,
        truth: &GroundTruth,
        decision: Option<&SamplingDecision>,
    ) -> bool {
        let at = capture.captured_at;
        self.from.is_none_or(|f| at >= f)
            && self.to.is_none_or(|t| at < t)
            && self
                .model_version
                .as_ref()
                .is_none_or(|v| &capture.model.version == v)
            && self
                .label_source
                .as_ref()
                .is_none_or(|s| &truth.source == s)
            && self
                .reason
                .is_none_or(|r| decision.is_some_and(|d| d.reason == r))
    }
}

/// An image left out because another with the same source came first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Duplicate {
    pub dropped: String,
    pub kept: String,
    pub source: String,
}

/// Keeps the first image of each source (the oldest, when images come in time order).
#[derive(Debug, Default)]
pub struct Deduper {
    /// Source → the file name that was kept for it.
    seen: HashMap<String, String>,
}

impl Deduper {
    /// `Some`: an image of this source was kept before.
    pub fn duplicate_of(&self, image: &DatasetImage) -> Option<Duplicate> {
        self.seen.get(&image.source).map(|kept| Duplicate {
            dropped: image.file_name.clone(),
            kept: kept.clone(),
            source: image.source.clone(),
        })
    }

    /// Remembers `image` as the one kept for its source.
    pub fn keep(&mut self, image: &DatasetImage) {
        self.seen
            .entry(image.source.clone())
            .or_insert_with(|| image.file_name.clone());
    }
}

/// What decides an image's side of the split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitBy {
    /// Capture time: the oldest train, the newest test (what a model will
    /// meet next is newer than what it learnt from).
    Time,
    /// A hash of the image's source: stable as the dataset grows, and
    /// identical images always on one side.
    Hash,
}

impl std::str::FromStr for SplitBy {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "time" => Ok(Self::Time),
            "hash" => Ok(Self::Hash),
            other => Err(CoreError::InvalidCoco(format!(
                "split-by must be time or hash, got {other:?}"
            ))),
        }
    }
}

/// How to split: by what, and the train / validation / test shares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitPlan {
    pub by: SplitBy,
    pub fractions: [f64; 3],
}

impl SplitPlan {
    pub const DEFAULT_FRACTIONS: [f64; 3] = [0.8, 0.1, 0.1];

    /// Three shares in [0, 1] that add up to 1.
    pub fn new(by: SplitBy, fractions: [f64; 3]) -> Result<Self, CoreError> {
        let bad = |why: String| Err(CoreError::InvalidCoco(why));
        if fractions
            .iter()
            .any(|f| !f.is_finite() || !(0.0..=1.0).contains(f))
        {
            return bad(format!(
                "split fractions must be in [0, 1], got {fractions:?}"
            ));
        }
        let sum: f64 = fractions.iter().sum();
        if (sum - 1.0).abs() > 1e-6 {
            return bad(format!(
                "split fractions must add up to 1, {fractions:?} add up to {sum}"
            ));
        }
        Ok(Self { by, fractions })
    }

    /// `0.7,0.15,0.15`: train, validation, test.
    pub fn parse_fractions(s: &str) -> Result<[f64; 3], CoreError> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        let bad = || {
            CoreError::InvalidCoco(format!(
                "split must be three numbers train,validation,test (e.g. 0.7,0.15,0.15), got {s:?}"
            ))
        };
        let [a, b, c] = parts[..] else {
            return Err(bad());
        };
        let num = |p: &str| p.parse::<f64>().map_err(|_| bad());
        Ok([num(a)?, num(b)?, num(c)?])
    }

    /// The side of the first split whose cumulative share is above `position` (in [0, 1)).
    fn side(&self, position: f64) -> Split {
        let mut upto = 0.0;
        for (split, share) in Split::ALL.iter().zip(self.fractions) {
            upto += share;
            if share > 0.0 && position < upto {
                return *split;
            }
        }
        // Rounding left the position past the last boundary: the last side that has a share.
        Split::ALL
            .iter()
            .zip(self.fractions)
            .rev()
            .find(|(_, share)| *share > 0.0)
            .map_or(Split::Train, |(split, _)| *split)
    }

    /// Each image's side. By time: images ranked by (time, source), the
    /// image at rank `r` of `n` at position `(r + 0.5) / n`, so each side gets
    /// its share rounded. By hash: the position is the first 8 bytes of
    /// SHA-256(source) as a fraction of 2^64.
    pub fn assign(&self, images: &[DatasetImage]) -> Vec<Split> {
        match self.by {
            SplitBy::Hash => images
                .iter()
                .map(|d| self.side(hash_position(&d.source)))
                .collect(),
            SplitBy::Time => {
                let mut order: Vec<usize> = (0..images.len()).collect();
                order.sort_by(|&a, &b| {
                    (images[a].time, &images[a].source).cmp(&(images[b].time, &images[b].source))
                });
                let n = images.len() as f64;
                let mut splits = vec![Split::Train; images.len()];
                for (rank, i) in order.into_iter().enumerate() {
                    splits[i] = self.side((rank as f64 + 0.5) / n);
                }
                splits
            }
        }
    }
}

/// A stable position in [0, 1) for `source`.
fn hash_position(source: &str) -> f64 {
    let digest = Sha256::digest(source.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) >> 11) as f64 / (1u64 << 53) as f64
}

/// Hex SHA-256 of image bytes: a dataset image's `source`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boxes::BBox;
    use chrono::{Duration, TimeZone};

    fn image(source: &str, minutes: i64) -> DatasetImage {
        let t = Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap() + Duration::minutes(minutes);
        DatasetImage {
            file_name: format!("{source}.jpg"),
            width: Some(100),
            height: Some(80),
            source: source.to_string(),
            time: t,
            objects: vec![GroundTruthObject {
                label: "cat".into(),
                class_id: 15,
                bbox: BBox::new(1.0, 2.0, 11.0, 22.0).unwrap(),
                iscrowd: false,
            }],
            provenance: ImageProvenance {
                capture_id: None,
                captured_at: Some(t),
                model: None,
                label_id: format!("label-{source}"),
                label_version: 1,
                label_source: "local".into(),
                sampling_reason: None,
                labelbox: None,
            },
        }
    }

    #[test]
    fn a_time_split_puts_the_oldest_in_train_and_the_newest_in_test() {
        // GIVEN 20 images given newest first
        let images: Vec<DatasetImage> = (0..20)
            .rev()
            .map(|i| image(&format!("s{i:02}"), i))
            .collect();
        let plan = SplitPlan::new(SplitBy::Time, [0.7, 0.15, 0.15]).unwrap();
        // WHEN they are split by time
        let splits = plan.assign(&images);
        // THEN 14 / 3 / 3, and every train image is older than every validation one, and so on
        let count = |s: Split| splits.iter().filter(|&&x| x == s).count();
        assert_eq!(
            (
                count(Split::Train),
                count(Split::Validation),
                count(Split::Test)
            ),
            (14, 3, 3)
        );
        let latest = |s: Split| {
            images
                .iter()
                .zip(&splits)
                .filter(|(_, x)| **x == s)
                .map(|(d, _)| d.time)
                .max()
                .unwrap()
        };
        let earliest = |s: Split| {
            images
                .iter()
                .zip(&splits)
                .filter(|(_, x)| **x == s)
                .map(|(d, _)| d.time)
                .min()
                .unwrap()
        };
        assert!(latest(Split::Train) < earliest(Split::Validation));
        assert!(latest(Split::Validation) < earliest(Split::Test));
    }

    #[test]
    fn a_hash_split_is_stable_and_keeps_its_shares() {
        let images: Vec<DatasetImage> = (0..2000).map(|i| image(&format!("{i}"), i)).collect();
        let plan = SplitPlan::new(SplitBy::Hash, [0.5, 0.3, 0.2]).unwrap();
        let splits = plan.assign(&images);
        // The same image is on the same side whatever else is in the dataset.
        let alone = plan.assign(&images[1234..1235]);
        assert_eq!(alone[0], splits[1234]);
        let reversed: Vec<DatasetImage> = images.iter().rev().cloned().collect();
        let again: Vec<Split> = plan.assign(&reversed).into_iter().rev().collect();
        assert_eq!(again, splits);
        for (side, share) in Split::ALL.iter().zip(plan.fractions) {
            let got = splits.iter().filter(|s| *s == side).count() as f64 / 2000.0;
            assert!((got - share).abs() < 0.05, "{side}: {got} vs {share}");
        }
    }

    #[test]
    fn an_empty_share_gets_nothing() {
        let images: Vec<DatasetImage> = (0..50).map(|i| image(&format!("{i}"), i)).collect();
        for by in [SplitBy::Time, SplitBy::Hash] {
            let plan = SplitPlan::new(by, [0.9, 0.0, 0.1]).unwrap();
            assert!(!plan.assign(&images).contains(&Split::Validation), "{by:?}");
        }
    }

    #[test]
    fn split_fractions_are_checked() {
        assert_eq!(
            SplitPlan::parse_fractions("0.7, 0.15,0.15").unwrap(),
            [0.7, 0.15, 0.15]
        );
        for bad in ["0.7,0.3", "a,b,c", "0.5,0.5,0.5,0", ""] {
            assert!(SplitPlan::parse_fractions(bad).is_err(), "{bad}");
        }
        assert!(SplitPlan::new(SplitBy::Time, [0.7, 0.2, 0.2]).is_err());
        assert!(SplitPlan::new(SplitBy::Time, [1.5, -0.5, 0.0]).is_err());
        assert!("week".parse::<SplitBy>().is_err());
    }

    #[test]
    fn the_first_of_a_source_is_kept() {
        let mut dedupe = Deduper::default();
        let (a, b) = (image("same", 0), image("same", 5));
        assert_eq!(dedupe.duplicate_of(&a), None);
        dedupe.keep(&a);
        let later = DatasetImage {
            file_name: "later.jpg".into(),
            ..b
        };
        let dup = dedupe.duplicate_of(&later);
        assert_eq!(
            dup,
            Some(Duplicate {
                dropped: "later.jpg".into(),
                kept: "same.jpg".into(),
                source: "same".into()
            })
        );
        // Keeping another of the same source does not change which one was kept.
        dedupe.keep(&later);
        assert_eq!(dedupe.duplicate_of(&later).unwrap().kept, "same.jpg");
        assert_eq!(dedupe.duplicate_of(&image("other", 1)), None);
    }

    fn fixtures() -> (CaptureRecord, GroundTruth, SamplingDecision) {
        let capture: CaptureRecord = crate::records::from_json(
            include_str!("../../../events/records/capture-record.json").as_bytes(),
        )
        .unwrap();
        let truth: GroundTruth = crate::records::from_json(
            include_str!("../../../events/records/ground-truth.json").as_bytes(),
        )
        .unwrap();
        let decision = SamplingDecision {
            id: capture.id,
            capture_key: String::new(),
            decided_at: capture.captured_at,
            policy: "test".into(),
            sampled: true,
            reason: SampleReason::Uncertain,
            detail: None,
            backend: None,
            external_ref: None,
            state: crate::records::SampleState::Submitted,
        };
        (capture, truth, decision)
    }

    #[test]
    fn the_filter_takes_what_each_field_names() {
        // GIVEN a labelled capture of 2026-11-26T07:42:13.250Z, version human-models-3.0.4,
        // labelled in labelbox, sampled as uncertain
        let (c, t, d) = fixtures();
        fn at(s: &str) -> Option<DateTime<Utc>> {
            Some(s.parse().unwrap())
        }
        let with = |set: fn(&mut ExportFilter)| {
            let mut f = ExportFilter::default();
            set(&mut f);
            f
        };
        let all = ExportFilter::default();
        assert!(all.admits(&c, &t, Some(&d)) && all.admits(&c, &t, None));
        let cases = [
            (with(|f| f.from = at("2026-11-26T07:42:13.250Z")), true),
            (with(|f| f.from = at("2026-11-26T07:42:13.251Z")), false),
            (with(|f| f.to = at("2026-11-26T07:42:13.251Z")), true),
            (with(|f| f.to = at("2026-11-26T07:42:13.250Z")), false),
            (
                with(|f| f.model_version = Some("human-models-3.0.4".into())),
                true,
            ),
            (with(|f| f.model_version = Some("3.0.5".into())), false),
            (with(|f| f.label_source = Some("labelbox".into())), true),
            (with(|f| f.label_source = Some("local".into())), false),
            (with(|f| f.reason = Some(SampleReason::Uncertain)), true),
            (with(|f| f.reason = Some(SampleReason::Uniform)), false),
        ];
        for (filter, want) in cases {
            // THEN each field decides alone, and the id's own time agrees on the range
            assert_eq!(filter.admits(&c, &t, Some(&d)), want, "{filter:?}");
            if filter.model_version.is_none()
                && filter.label_source.is_none()
                && filter.reason.is_none()
            {
                assert_eq!(filter.may_admit(c.id), want, "{filter:?}");
            }
        }
        // AND a reason filter takes nothing without a sampling decision
        let uncertain = with(|f| f.reason = Some(SampleReason::Uncertain));
        assert!(!uncertain.admits(&c, &t, None));
    }

    #[test]
    fn a_labelled_capture_is_named_by_its_id_and_says_where_it_came_from() {
        let (c, t, d) = fixtures();
        let image = labelled_capture(&c, &t, Some(&d)).unwrap();
        assert_eq!(image.file_name, format!("{}.jpg", c.id));
        assert_eq!(image.source, c.image.sha256);
        assert_eq!((image.width, image.height), (Some(773), Some(512)));
        assert_eq!(image.objects, t.objects);
        let p = &image.provenance;
        assert_eq!(p.capture_id, Some(c.id));
        assert_eq!(p.model.as_ref().unwrap().version, "human-models-3.0.4");
        assert_eq!(p.label_version, t.version());
        assert_eq!(p.label_source, "labelbox");
        assert_eq!(p.sampling_reason, Some(SampleReason::Uncertain));
    }

    #[test]
    fn a_label_that_cannot_be_trained_on_is_refused_saying_why() {
        let (c, t, d) = fixtures();
        let refused = |t: GroundTruth, d: Option<&SamplingDecision>| {
            labelled_capture(&c, &t, d).unwrap_err().to_string()
        };
        let err = refused(
            GroundTruth {
                deleted: true,
                ..t.clone()
            },
            None,
        );
        assert!(err.contains("deleted"), "{err}");
        let err = refused(
            GroundTruth {
                unmapped_objects: vec!["unicorn".into()],
                ..t.clone()
            },
            None,
        );
        assert!(err.contains("unicorn"), "{err}");
        let mut bad_class = t.clone();
        bad_class.objects[1].class_id = 80;
        let err = refused(bad_class, None);
        assert!(err.contains("class_id 80"), "{err}");
        let mut bad_box = t.clone();
        bad_box.objects[0].bbox.x2 = -1.0;
        assert!(labelled_capture(&c, &bad_box, None).is_err());
        let other = GroundTruth {
            id: CaptureId::new(Utc::now()),
            ..t.clone()
        };
        assert!(refused(other, None).contains("belongs to capture"));
        let wrong = SamplingDecision {
            id: CaptureId::new(Utc::now()),
            ..d
        };
        assert!(refused(t, Some(&wrong)).contains("sampling decision"));
    }

    #[test]
    fn a_dataset_names_its_files_splits_and_sources() {
        let images = [image("a", 0), image("b", 1)];
        let d = coco_dataset(&images, Some(&[Split::Train, Split::Test]));
        assert_eq!(d.categories.len(), 80);
        assert_eq!(d.images[1].image.id, 2);
        assert_eq!(d.images[1].image.file_name.as_deref(), Some("b.jpg"));
        assert_eq!(d.images[1].image.split, Some(Split::Test));
        assert_eq!(d.images[1].image.source.as_deref(), Some("b"));
        assert_eq!(d.images[1].modelobs.label_id, "label-b");
        assert_eq!(d.annotations.len(), 2);
        assert_eq!(d.annotations[1].image_id, 2);
        assert_eq!(d.annotations[1].category_id, 17, "cat's COCO id");
        assert_eq!(d.annotations[1].bbox, [1.0, 2.0, 10.0, 20.0]);
        // It reads back as a COCO dataset, with our fields on each image.
        let json = serde_json::to_vec(&d).unwrap();
        let coco = crate::eval::coco_format::parse_dataset(&json).unwrap();
        assert_eq!(coco.images[0].split, Some(Split::Train));
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v["images"][0]["modelobs"]["label_source"], "local");
    }
}
