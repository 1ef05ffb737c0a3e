//! A detector that needs no model: PNG in, one dog out.

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use modelobs_core::BBox;
use modelobs_core::records::{Detection, ModelRef, StageTimings};
use modelobs_detector::{DetectError, Detector, ImageInfo, Prediction};

/// Sees only the first bytes: PNG is "decoded" to one dog; anything else is refused.
pub struct FakeDetector {
    model: ModelRef,
    /// Fail like a broken model runtime.
    pub broken: AtomicBool,
    /// Images it was given.
    pub calls: AtomicU32,
}

impl FakeDetector {
    pub fn new() -> Self {
        Self::version("1")
    }

    /// Another version of the fake model (a shadow).
    pub fn version(version: &str) -> Self {
        Self {
            model: ModelRef {
                name: "fake".into(),
                version: version.into(),
            },
            broken: AtomicBool::new(false),
            calls: AtomicU32::new(0),
        }
    }
}

impl Detector for FakeDetector {
    fn model(&self) -> &ModelRef {
        &self.model
    }
    fn score_threshold(&self) -> f64 {
        0.35
    }
    fn detect(&self, image: &[u8]) -> Result<Prediction, DetectError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.broken.load(Ordering::SeqCst) {
            return Err(DetectError::Model("session failed".into()));
        }
        if !image.starts_with(b"\x89PNG") {
            return Err(DetectError::UnsupportedFormat("not a PNG".into()));
        }
        Ok(Prediction {
            image: ImageInfo {
                width: 64,
                height: 48,
                content_type: "image/png",
                extension: "png",
            },
            detections: vec![Detection {
                label: "dog".into(),
                class_id: 16,
                score: 0.9,
                bbox: BBox::new(1.0, 2.0, 30.0, 40.0).unwrap(),
            }],
            timings_ms: StageTimings {
                total: 1.0,
                ..Default::default()
            },
            profile: None,
        })
    }
}
