//! The detector: image bytes in, detections out (any family `model.json`
//! describes: NanoDet GFL, YOLOv5, YOLOv8/11, TF OD API, DETR / RT-DETR), behind [`Detector`]
//! so handlers can be tested with a fake.
//!
//! [`OnnxDetector`] is the real one: the model's `model.json` drives every
//! step (models/README.md, "The pipeline, exactly"); ONNX Runtime is loaded
//! at run time from `ORT_DYLIB_PATH`.

pub mod check;
pub mod decode;
pub mod image_input;
pub mod metadata;
mod onnx;
pub mod postprocess;
pub mod preprocess;
pub mod resize;
pub mod signals;

use std::path::PathBuf;

use modelobs_core::profile::CaptureProfile;
use modelobs_core::records::{Detection, ModelRef, StageTimings};
use thiserror::Error;

pub use metadata::ModelMetadata;
pub use onnx::{DetectorConfig, ORT_DYLIB_PATH, OnnxDetector};

/// Why a detector could not be built (at start-up, never per request).
#[derive(Debug, Error)]
pub enum LoadError {
    /// `model.json` missing, unreadable or inconsistent.
    #[error("{}: {problem}", path.display())]
    Metadata { path: PathBuf, problem: String },
    /// The ONNX file missing, not the one `model.json` names (size, sha256),
    /// or its tensors not the ones `model.json` describes.
    #[error("{}: {problem}", path.display())]
    ModelFile { path: PathBuf, problem: String },
    /// ONNX Runtime missing, too old, or refusing the model.
    #[error("ONNX Runtime: {0}")]
    Runtime(String),
    /// A setting that cannot work with this model (unknown class, bad threshold).
    #[error("{0}")]
    Config(String),
}

/// What the detector can refuse or fail at. The HTTP edge maps these to
/// 415 / 400 / 422 / 500.
#[derive(Debug, Error)]
pub enum DetectError {
    /// Not JPEG, PNG or WebP (by content, not by what the client claims).
    #[error("unsupported image format: {0}")]
    UnsupportedFormat(String),
    /// Empty, truncated or corrupt image data.
    #[error("cannot decode image: {0}")]
    Decode(String),
    /// Over the pixel limit, found from the header before decoding.
    #[error("image is {width}x{height} = {pixels} pixels, over the limit of {limit}")]
    TooManyPixels {
        width: u32,
        height: u32,
        pixels: u64,
        limit: u64,
    },
    /// Decoding would allocate more than the pixels and the metadata budget
    /// allow (a decompression bomb in the metadata): refused, not attempted.
    #[error("image refused: {0}")]
    OverMemoryBudget(String),
    /// The model or its runtime failed: not the client's fault.
    #[error("model failure: {0}")]
    Model(String),
}

impl DetectError {
    /// The stable error code callers see (HTTP bodies, rejected-upload reasons).
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnsupportedFormat(_) => "unsupported_image_format",
            Self::Decode(_) => "undecodable_image",
            Self::TooManyPixels { .. } | Self::OverMemoryBudget(_) => "image_too_large",
            Self::Model(_) => "model_failure",
        }
    }
}

/// Decoded image facts the caller records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// After EXIF orientation.
    pub width: u32,
    pub height: u32,
    /// `image/jpeg`, `image/png` or `image/webp`, sniffed from the bytes.
    pub content_type: &'static str,
    /// File extension for the stored copy: `jpg`, `png`, `webp`.
    pub extension: &'static str,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub image: ImageInfo,
    /// Sorted by score, descending; boxes in original-image pixels, clamped.
    pub detections: Vec<Detection>,
    pub timings_ms: StageTimings,
    /// The capture's label-free profile; `None` from a detector that
    /// measures none (test fakes).
    pub profile: Option<CaptureProfile>,
}

/// A loaded model, ready to answer. Built once per container.
pub trait Detector: Send + Sync {
    fn model(&self) -> &ModelRef;
    /// Detections scoring below this are not returned.
    fn score_threshold(&self) -> f64;
    fn detect(&self, image: &[u8]) -> Result<Prediction, DetectError>;
    /// The class ids it reports (`None`: all it knows), recorded with each
    /// capture so that ground truth of other classes is not held against it.
    fn reported_classes(&self) -> Option<Vec<u16>> {
        None
    }
}
