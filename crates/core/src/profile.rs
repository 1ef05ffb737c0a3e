//! The label-free profile of one capture: what the model answered and what
//! the image looked like, cheap enough to compute on every request and small
//! enough to store in every `CaptureRecord`.
//!
//! Everything here is a fixed-size summary, so that windows of profiles can
//! be merged by adding them up (`docs/drift.md`) and drift can be measured
//! without a label: a darker, blurrier or more distant stream of images moves
//! the image signals; a model that is less sure of itself moves the score
//! histogram, the detection count and the NMS signals.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::records::Detection;

/// Bins of [`CaptureProfile::score_histogram`]: tenths of `[0, 1]`, the last
/// one closed (a score of exactly 1 counts in it).
pub const SCORE_BINS: usize = 10;

/// The bin of `score` in a [`SCORE_BINS`]-bin histogram over `[0, 1]`.
pub fn score_bin(score: f64) -> usize {
    if score.is_nan() {
        return 0;
    }
    ((score.clamp(0.0, 1.0) * SCORE_BINS as f64) as usize).min(SCORE_BINS - 1)
}

/// Image signals measured on the picture as the model sees it: after the
/// resize to the model's input, the letterbox border left out. Luminance is
/// Rec. 601 luma of the 8-bit RGB, scaled to `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ImageSignals {
    /// Mean luma: 0 black, 1 white.
    pub luminance: f64,
    /// Standard deviation of luma (RMS contrast), `[0, 0.5]`.
    pub contrast: f64,
    /// Variance of the 4-neighbour Laplacian of luma (in `[0, 1]` units):
    /// falls when the picture is out of focus or shrunk into a blur. Measured
    /// at the model's input size, so it does not depend on the upload's
    /// resolution.
    pub sharpness: f64,
    /// Width and height measured (the scaled picture inside the input).
    pub measured_width: u32,
    pub measured_height: u32,
}

/// How much non-maximum suppression had to do: a confident detector puts
/// many overlapping candidates on a real object and NMS folds them into one
/// box; on a doubtful image the kept boxes stand alone or barely overlap
/// what they absorbed (cf. the pre/post-NMS agreement signals of label-free
/// mAP estimation).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct NmsSignals {
    /// Candidates over the score threshold (of the reported classes) before NMS.
    pub candidates: u32,
    /// Boxes NMS kept (before the top-N cut).
    pub kept: u32,
    /// Per kept box, the candidates it suppressed: their mean over kept boxes.
    pub absorbed_mean: f64,
    /// Mean IoU of each suppressed candidate with the box that suppressed it
    /// (0 when nothing was suppressed).
    pub absorbed_iou_mean: f64,
}

/// `CaptureRecord.profile` (schema v2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureProfile {
    /// Detections returned (over the threshold, reported classes, after NMS).
    pub detections: u32,
    /// The best detection's score; 0 without detections.
    pub top_score: f64,
    /// Detections per score tenth ([`score_bin`]).
    pub score_histogram: [u32; SCORE_BINS],
    /// Detections per class name.
    pub classes: BTreeMap<String, u32>,
    /// Mean area of the detections' boxes as a share of the image's area;
    /// `None` without detections.
    pub box_area_share: Option<f64>,
    pub width: u32,
    pub height: u32,
    /// `jpeg`, `png` or `webp`.
    pub format: String,
    pub image: ImageSignals,
    pub nms: NmsSignals,
}

impl CaptureProfile {
    /// The profile of an answer: `detections` as returned, on a `width` ×
    /// `height` image of `content_type`, with the signals the detector measured.
    pub fn new(
        detections: &[Detection],
        width: u32,
        height: u32,
        content_type: &str,
        image: ImageSignals,
        nms: NmsSignals,
    ) -> Self {
        let mut score_histogram = [0u32; SCORE_BINS];
        let mut classes = BTreeMap::new();
        let mut top_score = 0f64;
        let mut area_sum = 0f64;
        for d in detections {
            score_histogram[score_bin(d.score)] += 1;
            *classes.entry(d.label.clone()).or_insert(0) += 1;
            top_score = top_score.max(d.score);
            area_sum += d.bbox.area();
        }
        let image_area = f64::from(width) * f64::from(height);
        let box_area_share = (!detections.is_empty() && image_area > 0.0)
            .then(|| (area_sum / detections.len() as f64 / image_area).clamp(0.0, 1.0));
        Self {
            detections: detections.len() as u32,
            top_score,
            score_histogram,
            classes,
            box_area_share,
            width,
            height,
            format: content_type
                .strip_prefix("image/")
                .unwrap_or(content_type)
                .to_string(),
            image,
            nms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BBox;

    fn det(label: &str, score: f64, bbox: [f64; 4]) -> Detection {
        Detection {
            label: label.into(),
            class_id: 0,
            score,
            bbox: BBox {
                x1: bbox[0],
                y1: bbox[1],
                x2: bbox[2],
                y2: bbox[3],
            },
        }
    }

    #[test]
    fn score_bins_cover_the_unit_interval() {
        assert_eq!(score_bin(0.0), 0);
        assert_eq!(score_bin(0.0999), 0);
        assert_eq!(score_bin(0.1), 1);
        assert_eq!(score_bin(0.95), 9);
        assert_eq!(score_bin(1.0), 9, "1 is in the last bin");
        assert_eq!(score_bin(1.5), 9);
        assert_eq!(score_bin(-0.2), 0);
        assert_eq!(score_bin(f64::NAN), 0);
    }

    #[test]
    fn a_profile_sums_up_the_answer() {
        // GIVEN two dogs and a cat on a 100×50 image
        let d = [
            det("dog", 0.91, [0.0, 0.0, 50.0, 50.0]),
            det("dog", 0.42, [0.0, 0.0, 10.0, 10.0]),
            det("cat", 0.25, [0.0, 0.0, 20.0, 20.0]),
        ];
        let p = CaptureProfile::new(
            &d,
            100,
            50,
            "image/jpeg",
            ImageSignals::default(),
            NmsSignals::default(),
        );
        assert_eq!(p.detections, 3);
        assert_eq!(p.top_score, 0.91);
        assert_eq!(p.score_histogram, [0, 0, 1, 0, 1, 0, 0, 0, 0, 1]);
        assert_eq!(p.classes["dog"], 2);
        assert_eq!(p.classes["cat"], 1);
        let share = (2500.0 + 100.0 + 400.0) / 3.0 / 5000.0;
        assert!((p.box_area_share.unwrap() - share).abs() < 1e-12);
        assert_eq!(p.format, "jpeg");
    }

    #[test]
    fn no_detections_no_box_share() {
        let p = CaptureProfile::new(
            &[],
            10,
            10,
            "image/png",
            ImageSignals::default(),
            NmsSignals::default(),
        );
        assert_eq!(
            (p.detections, p.top_score, p.box_area_share),
            (0, 0.0, None)
        );
        assert_eq!(p.format, "png");
    }
}
