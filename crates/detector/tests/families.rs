//! Every decode family on a real ONNX file: the generated random-weight
//! models (models/families/make.sh, `make families`) through our
//! pre-processing → ONNX Runtime → our decode (→ NMS), against the plain-numpy
//! reference decode of ONNX Runtime's raw outputs on the same tensor
//! (expected.json). Random weights test the decoding, not accuracy; the
//! reference refuses to write fewer than 5 detections per model.
//!
//! Needs `MODELOBS_FAMILIES_DIR` and `ORT_DYLIB_PATH`: the tests are ignored
//! by a plain `cargo test` and fail when run without them (`make test` runs
//! them with both).

use std::path::{Path, PathBuf};

use modelobs_core::classes;
use modelobs_core::records::Detection;
use modelobs_detector::check::{CheckError, SignatureError, check_model};
use modelobs_detector::{Detector, DetectorConfig, LoadError, OnnxDetector};
use serde_json::Value;

const FAMILIES: [&str; 5] = ["yolov5", "yolov8", "ssd", "detr", "rtdetr"];
/// Detections are reported to 1e-3 px and 1e-6 in score; beyond that the two
/// sides must agree to 1e-4.
const BOX_TOL_PX: f64 = 5e-4 + 1e-4;
const SCORE_TOL: f64 = 1e-4;

fn family_dir(family: &str) -> PathBuf {
    modelobs_testkit::require_families().join(family)
}

fn load(dir: &Path, classes: Option<Vec<String>>) -> OnnxDetector {
    OnnxDetector::load(&DetectorConfig {
        classes,
        ..DetectorConfig::new(dir)
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

fn expected(dir: &Path) -> Vec<Detection> {
    let v: Value =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    v["detections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| Detection {
            label: d["label"].as_str().unwrap().to_string(),
            class_id: d["class_id"].as_u64().unwrap() as u16,
            score: d["score"].as_f64().unwrap(),
            bbox: modelobs_core::BBox {
                x1: d["bbox"][0].as_f64().unwrap(),
                y1: d["bbox"][1].as_f64().unwrap(),
                x2: d["bbox"][2].as_f64().unwrap(),
                y2: d["bbox"][3].as_f64().unwrap(),
            },
        })
        .collect()
}

/// Same detections in the same order; the largest box and score differences.
fn compare(family: &str, got: &[Detection], want: &[Detection]) -> (f64, f64) {
    assert_eq!(
        got.len(),
        want.len(),
        "{family}: {} detections, the reference has {}\n got: {got:#?}\nwant: {want:#?}",
        got.len(),
        want.len()
    );
    let (mut max_px, mut max_score) = (0f64, 0f64);
    for (g, w) in got.iter().zip(want) {
        assert_eq!(
            (g.class_id, &g.label),
            (w.class_id, &w.label),
            "{family}: {g:?} vs {w:?}"
        );
        let px = [
            (g.bbox.x1 - w.bbox.x1).abs(),
            (g.bbox.y1 - w.bbox.y1).abs(),
            (g.bbox.x2 - w.bbox.x2).abs(),
            (g.bbox.y2 - w.bbox.y2).abs(),
        ]
        .into_iter()
        .fold(0f64, f64::max);
        let ds = (g.score - w.score).abs();
        assert!(
            px <= BOX_TOL_PX && ds <= SCORE_TOL,
            "{family}: {g:?} vs reference {w:?}: {px} px, score {ds}"
        );
        max_px = max_px.max(px);
        max_score = max_score.max(ds);
    }
    (max_px, max_score)
}

#[test]
#[ignore = "needs ONNX Runtime and the family models (make families): make test runs it"]
fn every_family_matches_the_python_reference() {
    modelobs_testkit::require_ort();
    for family in FAMILIES {
        // GIVEN a family's model, its test image and the reference's answer
        let dir = family_dir(family);
        let det = load(&dir, Some(vec!["all".into()]));
        let want = expected(&dir);
        assert!(
            want.len() >= 5,
            "{family}: the reference found only {}",
            want.len()
        );
        // WHEN our pipeline runs on the same image
        let image = std::fs::read(dir.join("image.png")).unwrap();
        let p = det.detect(&image).unwrap();
        // THEN the same boxes, classes and scores
        let (px, score) = compare(family, &p.detections, &want);
        println!(
            "{family}: {} detections, max box diff {px:.2e} px, max score diff {score:.2e}",
            want.len()
        );
        // AND the capture profile is filled; NMS signals only where NMS ran
        let profile = p.profile.expect("every family is profiled");
        assert_eq!(profile.detections as usize, p.detections.len());
        let nms = profile.nms;
        if det.metadata().decode.needs_nms() {
            assert!(
                nms.candidates >= nms.kept && nms.kept as usize >= p.detections.len(),
                "{family}: {nms:?}"
            );
            assert!(
                nms.kept < nms.candidates,
                "{family}: random boxes overlap, NMS folds some"
            );
        } else {
            assert_eq!(nms, Default::default(), "{family}: no NMS, no NMS signals");
        }
    }
}

#[test]
#[ignore = "needs ONNX Runtime and the family models (make families): make test runs it"]
fn yolov8_names_come_from_the_onnx_metadata() {
    modelobs_testkit::require_ort();
    let dir = family_dir("yolov8");
    // GIVEN a model.json without labels
    let meta: Value =
        serde_json::from_slice(&std::fs::read(dir.join("model.json")).unwrap()).unwrap();
    assert!(meta.get("labels").is_none());
    // THEN the detector knows the 80 names Ultralytics wrote into the ONNX file
    let det = load(&dir, None);
    assert_eq!(det.metadata().labels.len(), 80);
    assert_eq!(det.metadata().labels[16], "dog");
    assert_eq!(
        det.classes().len(),
        classes::animals().count(),
        "{:?}",
        det.classes()
    );

    // AND a model.json whose labels disagree with them is refused, naming the label
    let tmp = modelobs_testkit::temp_dir("families-names");
    copy_model(&dir, &tmp, |m| {
        let mut labels: Vec<String> = det.metadata().labels.clone();
        labels[3] = "motorbike".into();
        m["labels"] = labels.into();
    });
    match OnnxDetector::load(&DetectorConfig::new(&tmp)) {
        Err(LoadError::ModelFile { problem, .. }) => {
            assert!(
                problem.contains("labels[3]") && problem.contains("motorbike"),
                "{problem}"
            )
        }
        other => panic!("{other:?}"),
    }
    std::fs::remove_dir_all(&tmp).ok();
}

#[test]
#[ignore = "needs ONNX Runtime and the family models (make families): make test runs it"]
fn the_animal_filter_works_by_name_in_every_family() {
    modelobs_testkit::require_ort();
    let animals: Vec<&str> = classes::animals().map(|c| c.name).collect();
    for family in FAMILIES {
        let dir = family_dir(family);
        let image = std::fs::read(dir.join("image.png")).unwrap();
        let all = load(&dir, Some(vec!["all".into()])).detect(&image).unwrap();
        // GIVEN the default class filter (the ten animals, by name)
        let det = load(&dir, None);
        let ids = det.reported_classes().expect("a filter");
        assert_eq!(ids.len(), animals.len(), "{family}");
        let filtered = det.detect(&image).unwrap().detections;
        // (the models are biased to find some animals, so this is not vacuous)
        assert!(!filtered.is_empty(), "{family}: no animals at all");
        // THEN only animals, and every animal the unfiltered run found
        assert!(
            filtered
                .iter()
                .all(|d| animals.contains(&d.label.as_str()) && ids.contains(&d.class_id)),
            "{family}: {filtered:?}"
        );
        for d in all
            .detections
            .iter()
            .filter(|d| animals.contains(&d.label.as_str()))
        {
            assert!(
                filtered.contains(d),
                "{family}: {d:?} missing from {filtered:?}"
            );
        }
    }
}

/// `from`'s model.json, changed by `edit`, into `to`, pointing at `from`'s
/// ONNX file.
fn copy_model(from: &Path, to: &Path, edit: impl FnOnce(&mut Value)) -> PathBuf {
    std::fs::create_dir_all(to).unwrap();
    let mut meta: Value =
        serde_json::from_slice(&std::fs::read(from.join("model.json")).unwrap()).unwrap();
    let onnx = from
        .join(meta["file"].as_str().unwrap())
        .canonicalize()
        .unwrap();
    meta["file"] = onnx.to_str().unwrap().into();
    edit(&mut meta);
    let path = to.join("model.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&meta).unwrap()).unwrap();
    path
}

#[test]
#[ignore = "needs ONNX Runtime and the family models (make families): make test runs it"]
fn check_model_reports_a_good_model_of_each_family() {
    modelobs_testkit::require_ort();
    for family in FAMILIES {
        let report =
            check_model(&family_dir(family), None).unwrap_or_else(|e| panic!("{family}: {e}"));
        assert_eq!(report.num_classes, 80, "{family}");
        assert_eq!(report.image, (640, 480));
        assert_eq!(
            report.candidates_before_nms.is_some(),
            family.starts_with("yolo")
        );
        assert!(!report.signature.outputs.is_empty());
    }
    let nanodet = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/nanodet");
    let report = check_model(&nanodet, None).unwrap();
    assert_eq!((report.family, report.num_classes), ("gfl", 80));
}

#[test]
#[ignore = "needs ONNX Runtime and the family models (make families): make test runs it"]
fn check_model_names_the_field_and_the_fix_for_each_mismatch() {
    modelobs_testkit::require_ort();
    type Edit = fn(&mut Value);
    let cases: [(&str, &str, Edit, &str); 9] = [
        (
            "yolov8",
            "input.name",
            |m| m["input"]["name"] = "input".into(),
            "it has: [\"images\"]",
        ),
        (
            "yolov8",
            "outputs[0].name",
            |m| m["outputs"][0]["name"] = "output".into(),
            "it has: [\"output0\"]",
        ),
        (
            "ssd",
            "outputs[2].name",
            |m| m["outputs"][2]["name"] = "classes".into(),
            "no such output",
        ),
        (
            "yolov5",
            "decode.num_classes",
            |m| {
                m["decode"]["num_classes"] = 79.into();
                let labels = m["labels"].as_array_mut().unwrap();
                labels.pop();
            },
            "holds 80 classes",
        ),
        (
            "yolov8",
            "decode.num_classes",
            |m| m["decode"]["num_classes"] = 81.into(),
            "holds 80 classes",
        ),
        (
            "rtdetr",
            "decode.class_activation",
            |m| m["decode"]["class_activation"] = "softmax_no_object".into(),
            "set it to \"sigmoid\"",
        ),
        (
            "yolov5",
            "decode.type",
            |m| m["decode"]["type"] = "yolov8".into(),
            "set decode.type to \"yolov5\"",
        ),
        (
            "detr",
            "decode.class_activation",
            |m| m["decode"]["class_activation"] = "sigmoid".into(),
            "softmax_no_object",
        ),
        (
            "yolov8",
            "input.width/input.height",
            |m| {
                m["input"]["width"] = 416.into();
                m["input"]["height"] = 416.into();
            },
            "[1, 3, 416, 416]",
        ),
    ];
    for (i, (family, field, edit, fix)) in cases.into_iter().enumerate() {
        // GIVEN a family's model.json with one thing wrong
        let tmp = modelobs_testkit::temp_dir(&format!("families-check-{i}"));
        copy_model(&family_dir(family), &tmp, edit);
        // THEN the check names the field and the fix
        match check_model(&tmp, None) {
            Err(CheckError::Signature {
                problem: source, ..
            }) => {
                assert_eq!(source.field(), field, "{family}: {source}");
                assert!(
                    source.to_string().contains(fix),
                    "{family} {field}: {source}"
                );
                if field == "outputs[0].name" {
                    assert!(matches!(
                        source,
                        SignatureError::NoSuchOutput { index: 0, .. }
                    ));
                }
            }
            other => panic!("{family} {field}: {other:?}"),
        }
        std::fs::remove_dir_all(&tmp).ok();
    }
    // AND a model.json that is wrong on its own is refused before the ONNX file is read
    let tmp = modelobs_testkit::temp_dir("families-check-json");
    copy_model(&family_dir("ssd"), &tmp, |m| {
        m["postprocess"]["nms"] = "class_aware".into()
    });
    match check_model(&tmp, None) {
        Err(CheckError::Load(LoadError::Metadata { problem, .. })) => {
            assert!(
                problem.contains("postprocess.nms") && problem.contains("\"none\""),
                "{problem}"
            )
        }
        other => panic!("{other:?}"),
    }
    std::fs::remove_dir_all(&tmp).ok();
}
