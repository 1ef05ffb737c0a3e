//! The serving NanoDet's faster variants (models/variants/make.sh, `make
//! variant-models`) load as model directories and answer like the parent:
//! the graph-optimised one to the records' rounding, the int8 one close enough
//! that every confident detection of the parent is still found. How much AP50
//! a variant loses on labelled traffic is `make variants`' backtest, not this
//! test's.
//!
//! Needs `MODELOBS_VARIANTS_DIR`, `ORT_DYLIB_PATH` and the darknet photos:
//! ignored by a plain `cargo test`, run (and failing without them) by `make test`.

use std::path::Path;

use modelobs_core::BBox;
use modelobs_core::records::Detection;
use modelobs_detector::check::check_model;
use modelobs_detector::{Detector, DetectorConfig, OnnxDetector};
use serde_json::Value;

const PHOTOS: [&str; 4] = ["horses.jpg", "giraffe.jpg", "dog.jpg", "eagle.jpg"];
/// A parent detection this sure must be found by the int8 variant too.
const CONFIDENT: f64 = 0.4;
/// ... with the same class, a box overlapping this much, a score this close.
const INT8_MIN_IOU: f64 = 0.8;
const INT8_SCORE_TOL: f64 = 0.1;

fn load(dir: &Path) -> OnnxDetector {
    OnnxDetector::load(&DetectorConfig {
        classes: Some(vec!["all".into()]),
        ..DetectorConfig::new(dir)
    })
    .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

fn detect_photos(det: &OnnxDetector) -> Vec<Vec<Detection>> {
    let photos = modelobs_testkit::require_photos();
    PHOTOS
        .iter()
        .map(|name| {
            let bytes = std::fs::read(photos.join(name)).unwrap();
            det.detect(&bytes).unwrap().detections
        })
        .collect()
}

fn iou(a: &BBox, b: &BBox) -> f64 {
    let w = (a.x2.min(b.x2) - a.x1.max(b.x1)).max(0.0);
    let h = (a.y2.min(b.y2) - a.y1.max(b.y1)).max(0.0);
    let inter = w * h;
    let area = |r: &BBox| (r.x2 - r.x1) * (r.y2 - r.y1);
    inter / (area(a) + area(b) - inter)
}

fn metadata(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("model.json")).unwrap()).unwrap()
}

#[test]
#[ignore = "needs ONNX Runtime, the darknet photos and the variants (make variant-models): make test runs it"]
fn variants_are_model_directories_of_their_own_version() {
    let parent_dir = modelobs_testkit::require_model();
    let parent = metadata(&parent_dir);
    for kind in ["optimized", "int8"] {
        let dir = modelobs_testkit::require_variants().join(kind);
        // GIVEN a variant's directory WHEN checked against its ONNX file
        let report = check_model(&dir, None).unwrap_or_else(|e| panic!("{kind}: {e}"));
        // THEN it passes, as its own version of the parent, which it names
        let meta = metadata(&dir);
        assert_eq!(report.name, parent["name"].as_str().unwrap());
        assert_eq!(report.version, meta["version"].as_str().unwrap());
        assert_eq!(
            meta["version"].as_str().unwrap(),
            format!("{}+{kind}", parent["version"].as_str().unwrap())
        );
        assert_eq!(meta["parent"]["sha256"], parent["sha256"]);
        assert_ne!(
            meta["sha256"], parent["sha256"],
            "{kind}: the parent's file"
        );
        assert_eq!(meta["variant"]["kind"], kind);
    }
    // AND the int8 file is the smaller (int8 weights)
    let size = |kind: &str| {
        metadata(&modelobs_testkit::require_variants().join(kind))["size_bytes"]
            .as_u64()
            .unwrap()
    };
    assert!(
        size("int8") * 2 < size("optimized"),
        "int8 {} B, optimized {} B",
        size("int8"),
        size("optimized")
    );
}

#[test]
#[ignore = "needs ONNX Runtime, the darknet photos and the variants (make variant-models): make test runs it"]
fn the_optimised_graph_answers_as_the_parent() {
    let parent = detect_photos(&load(&modelobs_testkit::require_model()));
    let optimized = detect_photos(&load(
        &modelobs_testkit::require_variants().join("optimized"),
    ));
    for ((name, want), got) in PHOTOS.iter().zip(&parent).zip(&optimized) {
        assert_eq!(got.len(), want.len(), "{name}: {got:#?}\nparent: {want:#?}");
        for (g, w) in got.iter().zip(want) {
            assert_eq!(g.class_id, w.class_id, "{name}: {g:?} vs {w:?}");
            assert!(
                (g.score - w.score).abs() <= 1e-4 && iou(&g.bbox, &w.bbox) >= 0.999,
                "{name}: {g:?} vs parent {w:?}"
            );
        }
    }
}

#[test]
#[ignore = "needs ONNX Runtime, the darknet photos and the variants (make variant-models): make test runs it"]
fn the_int8_variant_finds_what_the_parent_is_sure_of() {
    let parent = detect_photos(&load(&modelobs_testkit::require_model()));
    let int8 = detect_photos(&load(&modelobs_testkit::require_variants().join("int8")));
    let mut confident = 0;
    for ((name, want), got) in PHOTOS.iter().zip(&parent).zip(&int8) {
        for w in want.iter().filter(|w| w.score >= CONFIDENT) {
            confident += 1;
            let best = got
                .iter()
                .filter(|g| g.class_id == w.class_id)
                .max_by(|a, b| iou(&a.bbox, &w.bbox).total_cmp(&iou(&b.bbox, &w.bbox)));
            let ok = best.is_some_and(|g| {
                iou(&g.bbox, &w.bbox) >= INT8_MIN_IOU && (g.score - w.score).abs() <= INT8_SCORE_TOL
            });
            assert!(ok, "{name}: the parent's {w:?}; int8 has {best:?}");
        }
        // AND it does not invent many more than the parent reports
        assert!(
            got.len() <= want.len() * 2 + 2,
            "{name}: int8 {} detections, parent {}",
            got.len(),
            want.len()
        );
    }
    assert!(
        confident >= 5,
        "only {confident} confident parent detections to compare"
    );
}
