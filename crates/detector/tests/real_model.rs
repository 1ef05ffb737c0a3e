//! The real model on real ONNX Runtime, compared with the Python reference.
//!
//! Needs `ORT_DYLIB_PATH` (`make test` sets it from `make ort`); without it
//! the model tests print why and pass. Photos come from
//! `MODELOBS_TEST_PHOTOS` (default /usr/share/darknet/data, Debian package
//! `darknet`); chelsea.png is in tests/fixtures. The expected answers,
//! tests/fixtures/reference.json, come from tests/fixtures/regenerate.sh.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use modelobs_core::records::Detection;
use modelobs_detector::{DetectError, Detector, DetectorConfig, LoadError, OnnxDetector};
use serde_json::Value;

/// How close the Rust answer must be to Python's.
#[derive(Clone, Copy)]
struct Tolerance {
    /// Box edges: this many pixels, or `box_fraction` of the box's width
    /// (height) if that is more.
    px: f64,
    box_fraction: f64,
    score: f64,
}

/// PNG: decoding and resizing are bit-exact with Pillow, so the tensors and
/// the model's outputs are identical; only the last printed digit may differ.
const EXACT: Tolerance = Tolerance {
    px: 0.0015,
    box_fraction: 0.0,
    score: 1.5e-6,
};

/// JPEG: zune-jpeg (the `image` crate) and libjpeg-turbo (Pillow) differ by
/// up to 3 grey levels in 2–7 % of the pixels (chroma upsampling rounding),
/// which moves the edges of large boxes a little: 2.3 px on the 460x360
/// bicycle in dog.jpg.
const JPEG: Tolerance = Tolerance {
    px: 2.0,
    box_fraction: 0.01,
    score: 0.01,
};

fn tolerance(name: &str) -> Tolerance {
    if name.ends_with(".png") { EXACT } else { JPEG }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn model_json() -> PathBuf {
    repo().join("models/nanodet/model.json")
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn photo(name: &str) -> Vec<u8> {
    let path = if name == "chelsea.png" {
        fixture(name)
    } else {
        let dir = std::env::var_os("MODELOBS_TEST_PHOTOS")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/share/darknet/data"));
        dir.join(name)
    };
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (test photos: `apt-get install darknet`, or set MODELOBS_TEST_PHOTOS)",
            path.display()
        )
    })
}

fn load(config: DetectorConfig) -> OnnxDetector {
    OnnxDetector::load(&config).unwrap_or_else(|e| panic!("{e}"))
}

/// Every class, model.json's thresholds: what reference.json was made with.
fn all_classes() -> &'static OnnxDetector {
    static DETECTOR: OnceLock<OnnxDetector> = OnceLock::new();
    DETECTOR.get_or_init(|| {
        load(DetectorConfig {
            classes: Some(vec!["all".into()]),
            ..DetectorConfig::new(model_json())
        })
    })
}

fn iou(a: &Detection, b: &Detection) -> f64 {
    let (a, b) = (a.bbox, b.bbox);
    let iw = (a.x2.min(b.x2) - a.x1.max(b.x1)).max(0.0);
    let ih = (a.y2.min(b.y2) - a.y1.max(b.y1)).max(0.0);
    let inter = iw * ih;
    inter / ((a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter)
}

/// Matches detections one to one (same class, best IoU) and returns the
/// largest box-coordinate and score differences.
fn compare(name: &str, got: &[Detection], want: &[Detection]) -> (f64, f64) {
    let tol = tolerance(name);
    assert_eq!(
        got.len(),
        want.len(),
        "{name}: {} detections, the reference has {}\n got: {got:#?}\nwant: {want:#?}",
        got.len(),
        want.len()
    );
    let mut used = vec![false; got.len()];
    let (mut max_px, mut max_score) = (0f64, 0f64);
    for w in want {
        let best = got
            .iter()
            .enumerate()
            .filter(|(i, g)| !used[*i] && g.class_id == w.class_id)
            .max_by(|a, b| iou(a.1, w).total_cmp(&iou(b.1, w)))
            .unwrap_or_else(|| panic!("{name}: nothing matches {w:?}"));
        let (i, g) = best;
        used[i] = true;
        assert_eq!(g.label, w.label);
        let (bw, bh) = (w.bbox.x2 - w.bbox.x1, w.bbox.y2 - w.bbox.y1);
        let (tol_x, tol_y) = (
            tol.px.max(tol.box_fraction * bw),
            tol.px.max(tol.box_fraction * bh),
        );
        let dx = (g.bbox.x1 - w.bbox.x1)
            .abs()
            .max((g.bbox.x2 - w.bbox.x2).abs());
        let dy = (g.bbox.y1 - w.bbox.y1)
            .abs()
            .max((g.bbox.y2 - w.bbox.y2).abs());
        let ds = (g.score - w.score).abs();
        assert!(
            dx <= tol_x && dy <= tol_y && ds <= tol.score,
            "{name}: {g:?} vs reference {w:?}: {dx} / {dy} px, score {ds}"
        );
        let px = dx.max(dy);
        max_px = max_px.max(px);
        max_score = max_score.max(ds);
    }
    (max_px, max_score)
}

fn reference(name: &str) -> (u32, u32, Vec<Detection>) {
    let all: Value =
        serde_json::from_slice(&std::fs::read(fixture("reference.json")).unwrap()).unwrap();
    let img = &all["images"][name];
    let dets = serde_json::from_value(img["detections"].clone()).unwrap();
    (
        img["image"]["width"].as_u64().unwrap() as u32,
        img["image"]["height"].as_u64().unwrap() as u32,
        dets,
    )
}

#[test]
#[ignore = "needs ONNX Runtime (ORT_DYLIB_PATH): make test runs it"]
fn matches_the_python_reference_on_the_test_photos() {
    modelobs_testkit::require_ort();
    let det = all_classes();
    for name in ["horses.jpg", "giraffe.jpg", "dog.jpg", "chelsea.png"] {
        let p = det.detect(&photo(name)).unwrap();
        let (w, h, want) = reference(name);
        assert_eq!((p.image.width, p.image.height), (w, h), "{name}");
        let (px, score) = compare(name, &p.detections, &want);
        eprintln!(
            "{name}: {} detections, max box diff {px:.3} px, max score diff {score:.6}",
            want.len()
        );
        let scores: Vec<f64> = p.detections.iter().map(|d| d.score).collect();
        assert!(scores.windows(2).all(|w| w[0] >= w[1]), "sorted by score");
        for d in &p.detections {
            let b = d.bbox;
            assert!(0.0 <= b.x1 && b.x1 < b.x2 && b.x2 <= f64::from(w), "{d:?}");
            assert!(0.0 <= b.y1 && b.y1 < b.y2 && b.y2 <= f64::from(h), "{d:?}");
        }
        let t = p.timings_ms;
        assert!(t.total >= t.decode + t.preprocess + t.inference + t.postprocess - 1e-6);
        assert!(t.inference > 0.0);
    }
}

#[test]
#[ignore = "needs ONNX Runtime (ORT_DYLIB_PATH): make test runs it"]
fn chelsea_is_a_cat_with_the_default_animal_classes() {
    modelobs_testkit::require_ort();
    // GIVEN the default config (the ten animal classes)
    let det = load(DetectorConfig::new(model_json()));
    assert_eq!(det.classes().len(), 10);
    assert_eq!(det.score_threshold(), 0.2, "from model.json");
    // WHEN it looks at chelsea.png
    let p = det.detect(&photo("chelsea.png")).unwrap();
    // THEN the best detection is a cat, and nothing but animals comes back
    assert_eq!(p.detections[0].label, "cat");
    assert_eq!(p.detections[0].class_id, 15);
    assert!(p.detections[0].score > 0.5);
    let animals: Vec<&str> = modelobs_core::classes::animals().map(|c| c.name).collect();
    assert!(
        p.detections
            .iter()
            .all(|d| animals.contains(&d.label.as_str()))
    );
    assert_eq!(p.image.content_type, "image/png");
    assert_eq!(p.image.extension, "png");
    assert_eq!(det.model().name, "nanodet-g-416-coco");
}

#[test]
#[ignore = "needs ONNX Runtime (ORT_DYLIB_PATH): make test runs it"]
fn overrides_narrow_the_answer() {
    modelobs_testkit::require_ort();
    let det = load(DetectorConfig {
        classes: Some(vec!["horse".into()]),
        score_threshold: Some(0.5),
        ..DetectorConfig::new(model_json())
    });
    let p = det.detect(&photo("horses.jpg")).unwrap();
    let (_, _, want) = reference("horses.jpg");
    let want: Vec<Detection> = want
        .into_iter()
        .filter(|d| d.label == "horse" && d.score > 0.5)
        .collect();
    assert!(!want.is_empty());
    compare("horses.jpg (horse > 0.5)", &p.detections, &want);
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
#[ignore = "needs ONNX Runtime (ORT_DYLIB_PATH): make test runs it"]
fn an_exif_rotated_photo_is_seen_upright() {
    modelobs_testkit::require_ort();
    // GIVEN chelsea.png stored rotated a quarter turn left, with an eXIf
    // chunk saying "rotate 90° clockwise to display" (orientation 6)
    let upright = image::load_from_memory(&photo("chelsea.png")).unwrap();
    let stored = upright.rotate270();
    let mut png = Vec::new();
    stored
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let mut exif = b"MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x06\0\0\0\0\0\0".to_vec();
    let mut chunk = (exif.len() as u32).to_be_bytes().to_vec();
    let mut body = b"eXIf".to_vec();
    body.append(&mut exif);
    chunk.extend_from_slice(&body);
    chunk.extend_from_slice(&crc32(&body).to_be_bytes());
    let ihdr_end = 8 + 4 + 4 + 13 + 4;
    png.splice(ihdr_end..ihdr_end, chunk);
    // WHEN detected THEN it has the upright size and the upright answer
    let det = all_classes();
    let p = det.detect(&png).unwrap();
    assert_eq!((p.image.width, p.image.height), (451, 300));
    let (_, _, want) = reference("chelsea.png");
    compare("chelsea, EXIF-rotated", &p.detections, &want);
}

#[test]
#[ignore = "needs ONNX Runtime (ORT_DYLIB_PATH): make test runs it"]
fn bad_images_are_refused_with_the_right_error() {
    modelobs_testkit::require_ort();
    let det = all_classes();
    let horses = photo("horses.jpg");
    assert!(matches!(
        det.detect(b"GIF89a\x01\0\x01\0\0\0\0"),
        Err(DetectError::UnsupportedFormat(_))
    ));
    assert!(matches!(det.detect(b""), Err(DetectError::Decode(_))));
    assert!(matches!(
        det.detect(&horses[..horses.len() / 2]),
        Err(DetectError::Decode(_))
    ));
    let small = load(DetectorConfig {
        max_pixels: 100_000,
        ..DetectorConfig::new(model_json())
    });
    assert!(matches!(
        small.detect(&horses),
        Err(DetectError::TooManyPixels {
            width: 773,
            height: 512,
            ..
        })
    ));
    // the detector still answers after refusing
    assert!(det.detect(&horses).is_ok());
}

#[test]
fn load_errors_name_what_is_wrong() {
    // These fail before ONNX Runtime is needed.
    let dir = std::env::temp_dir().join(format!("modelobs-detector-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut meta: Value = serde_json::from_slice(&std::fs::read(model_json()).unwrap()).unwrap();
    let onnx = repo().join("models/nanodet/nanodet.onnx");
    meta["file"] = onnx.canonicalize().unwrap().to_str().unwrap().into();
    meta["sha256"] = "0".repeat(64).into();
    let bad_sha = dir.join("model.json");
    std::fs::write(&bad_sha, serde_json::to_vec(&meta).unwrap()).unwrap();
    match OnnxDetector::load(&DetectorConfig::new(&dir)) {
        Err(LoadError::ModelFile { problem, .. }) => {
            assert!(problem.contains("sha256"), "{problem}")
        }
        other => panic!("{other:?}"),
    }

    let unknown = OnnxDetector::load(&DetectorConfig {
        classes: Some(vec!["cat".into(), "unicorn".into()]),
        ..DetectorConfig::new(model_json())
    });
    assert!(matches!(unknown, Err(LoadError::Config(m)) if m.contains("unicorn")));

    let missing = OnnxDetector::load(&DetectorConfig {
        ort_dylib_path: Some(dir.join("libonnxruntime.so")),
        ..DetectorConfig::new(model_json())
    });
    assert!(matches!(missing, Err(LoadError::Runtime(m)) if m.contains("no such file")));

    let no_json = OnnxDetector::load(&DetectorConfig::new(dir.join("nope.json")));
    assert!(matches!(no_json, Err(LoadError::Metadata { .. })));
    std::fs::remove_dir_all(&dir).ok();
}

/// `photo` darkened to `light` of its light and blurred by `sigma` px, as a PNG.
fn degraded(bytes: &[u8], light: f32, sigma: f32) -> Vec<u8> {
    let img = image::load_from_memory(bytes).unwrap().to_rgb8();
    let mut img = image::imageops::blur(&img, sigma);
    for p in img.pixels_mut() {
        for c in p.0.iter_mut() {
            *c = (f32::from(*c) * light).round() as u8;
        }
    }
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[test]
#[ignore = "needs ONNX Runtime (ORT_DYLIB_PATH): make test runs it"]
fn every_answer_carries_its_profile_and_drift_moves_it() {
    modelobs_testkit::require_ort();
    let det = all_classes();
    // GIVEN dog.jpg (768×576), and the same picture at a tenth of the light, blurred
    let clean_bytes = photo("dog.jpg");
    let clean = det.detect(&clean_bytes).unwrap();
    let dark = det.detect(&degraded(&clean_bytes, 0.1, 4.0)).unwrap();
    for p in [&clean, &dark] {
        let profile = p
            .profile
            .as_ref()
            .expect("the real detector profiles every answer");
        // THEN the profile agrees with the answer it describes
        assert_eq!(profile.detections as usize, p.detections.len());
        assert_eq!(
            profile.score_histogram.iter().sum::<u32>() as usize,
            p.detections.len()
        );
        let nms = profile.nms;
        assert!(
            nms.candidates >= nms.kept && nms.kept as usize >= p.detections.len(),
            "{nms:?}"
        );
        // measured on the picture as the model sees it: 768×576 → 416×312
        assert_eq!(
            (profile.image.measured_width, profile.image.measured_height),
            (416, 312)
        );
        assert!(p.timings_ms.profile > 0.0 && p.timings_ms.profile < p.timings_ms.total);
    }
    let (c, d) = (clean.profile.unwrap(), dark.profile.unwrap());
    assert_eq!((c.format.as_str(), d.format.as_str()), ("jpeg", "png"));
    assert!(c.detections >= 3 && c.top_score > 0.5, "{c:?}");
    assert!(
        c.nms.absorbed_mean > 1.0,
        "real objects gather candidates: {c:?}"
    );
    // AND darkness and blur move the image signals the drift test reads
    assert!(d.image.luminance < 0.2 * c.image.luminance, "{c:?}\n{d:?}");
    assert!(d.image.contrast < 0.2 * c.image.contrast);
    assert!(d.image.sharpness < 0.01 * c.image.sharpness);
    assert!(d.top_score < c.top_score);
}
