//! The data contract: records round-trip, unknown versions are refused, and a
//! window's numbers equal a COCO evaluation of the same labelled images.

mod support;

use chrono::{DateTime, Duration, TimeZone, Utc};
use modelobs_core::classes;
use modelobs_core::eval::coco_format::evaluate_dataset;
use modelobs_core::export::to_coco;
use modelobs_core::profile::{CaptureProfile, ImageSignals, NmsSignals};
use modelobs_core::records::{
    self, CaptureId, CaptureRecord, CaptureSource, CapturedImage, Detection, Granularity,
    GroundTruth, GroundTruthObject, ImageEval, ModelRef, SampleReason, SampleState,
    SamplingDecision, StageTimings, Window, WindowMetrics,
};
use modelobs_core::{BBox, CoreError};
use support::Rng;

const CAPTURE: &[u8] = include_bytes!("../../../events/records/capture-record.json");
const GROUND_TRUTH: &[u8] = include_bytes!("../../../events/records/ground-truth.json");
/// `rich_pair()` evaluated at `fixture_evaluated_at()` by the build before
/// ImageEval v2 (commit bacf24f), as it stored it.
const IMAGE_EVAL_V1: &[u8] = include_bytes!("../../../events/records/image-eval-v1.json");
/// The same evaluation as this build stores it.
const IMAGE_EVAL_V2: &[u8] = include_bytes!("../../../events/records/image-eval-v2.json");

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap()
}

#[test]
fn fixtures_round_trip() {
    let capture: CaptureRecord = records::from_json(CAPTURE).unwrap();
    assert_eq!(capture.detections.len(), 3);
    assert_eq!(
        capture.source,
        CaptureSource::Http {
            request_id: Some("8c1f0e7a-5b2d-4f7e-9a10-3c2b1d0e9f88".into())
        }
    );
    let again: CaptureRecord = records::from_json(&records::to_json(&capture)).unwrap();
    assert_eq!(again, capture);

    // A v1 record reads as one without a profile; written again it is v2, with one.
    assert_eq!(capture.profile, None);
    let mut v2 = capture.clone();
    v2.profile = Some(CaptureProfile::new(
        &v2.detections,
        v2.image.width,
        v2.image.height,
        &v2.image.content_type,
        ImageSignals {
            luminance: 0.41,
            contrast: 0.2,
            sharpness: 0.013,
            measured_width: 416,
            measured_height: 276,
        },
        NmsSignals {
            candidates: 17,
            kept: 3,
            absorbed_mean: 14.0 / 3.0,
            absorbed_iou_mean: 0.61,
        },
    ));
    let json = records::to_json(&v2);
    assert!(String::from_utf8_lossy(&json).starts_with(r#"{"schema_version":2,"#));
    let again: CaptureRecord = records::from_json(&json).unwrap();
    assert_eq!(again, v2);
    let profile = again.profile.unwrap();
    assert_eq!((profile.detections, profile.classes["horse"]), (3, 2));

    let truth: GroundTruth = records::from_json(GROUND_TRUTH).unwrap();
    assert_eq!(truth.id, capture.id);
    let again: GroundTruth = records::from_json(&records::to_json(&truth)).unwrap();
    assert_eq!(again, truth);

    let decision = SamplingDecision {
        id: capture.id,
        capture_key: "captures/predictions/dt=2026-11-26/hr=07/x.json".into(),
        decided_at: now(),
        policy: "uncertainty".into(),
        sampled: true,
        reason: SampleReason::Uncertain,
        detail: Some("score 0.41 in [0.3, 0.6]".into()),
        backend: Some("local".into()),
        external_ref: None,
        state: SampleState::Pending,
    };
    let json = records::to_json(&decision);
    assert!(
        std::str::from_utf8(&json)
            .unwrap()
            .starts_with(r#"{"schema_version":1,"#)
    );
    let again: SamplingDecision = records::from_json(&json).unwrap();
    assert_eq!(again, decision);
}

#[test]
fn unknown_or_missing_schema_versions_are_refused_by_name() {
    let future = String::from_utf8(CAPTURE.to_vec())
        .unwrap()
        .replace(r#""schema_version": 1"#, r#""schema_version": 7"#);
    let err = records::from_json::<CaptureRecord>(future.as_bytes()).unwrap_err();
    assert!(matches!(
        err,
        CoreError::UnsupportedSchemaVersion { found: 7, .. }
    ));
    assert_eq!(
        err.to_string(),
        "CaptureRecord has schema_version 7, this build reads 1..=2"
    );

    let missing = future.replace(r#""schema_version": 7,"#, "");
    let err = records::from_json::<CaptureRecord>(missing.as_bytes()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid record: CaptureRecord has no schema_version"
    );

    let err = records::from_json::<GroundTruth>(b"[1,2]").unwrap_err();
    assert!(
        err.to_string().contains("GroundTruth is not a JSON object"),
        "{err}"
    );
}

#[test]
fn an_image_eval_from_the_fixtures() {
    let capture: CaptureRecord = records::from_json(CAPTURE).unwrap();
    let truth: GroundTruth = records::from_json(GROUND_TRUTH).unwrap();
    let e = ImageEval::evaluate(&capture, &truth, now()).unwrap();
    // Two horses found, one horse taken for a cow.
    let op = e.at_serving_threshold;
    assert_eq!((op.tp, op.fp, op.fn_), (2, 1, 1));
    // Horse AP50: precision 1 up to recall 2/3, i.e. 67 of 101 recall points; cow has no ground truth.
    assert!((e.ap50 - 67.0 / 101.0).abs() < 1e-12, "{}", e.ap50);
    assert_eq!(e.label_version, truth.updated_at.timestamp_millis());
    assert!((e.label_lag_s - 5566.75).abs() < 1e-9);
    let again: ImageEval = records::from_json(&records::to_json(&e)).unwrap();
    assert_eq!(again, e);

    let mut deleted = truth.clone();
    deleted.deleted = true;
    assert!(ImageEval::evaluate(&capture, &deleted, now()).is_err());
    let mut bad = truth;
    bad.objects[0].class_id = 80;
    let err = ImageEval::evaluate(&capture, &bad, now()).unwrap_err();
    assert!(err.to_string().contains("class_id 80"), "{err}");
}

/// The fixtures' capture and label, with what they lack added: a crowd of
/// horses taking two detections, a dog labelled but not found (a class with
/// ground truth only; the cow is one with detections only), two detections
/// tied in score, and a small false alarm.
fn rich_pair() -> (CaptureRecord, GroundTruth) {
    let mut capture: CaptureRecord = records::from_json(CAPTURE).unwrap();
    let mut truth: GroundTruth = records::from_json(GROUND_TRUTH).unwrap();
    let b = |x1, y1, x2, y2| BBox::new(x1, y1, x2, y2).unwrap();
    let det = |label: &str, class_id, score, bbox| Detection {
        label: label.into(),
        class_id,
        score,
        bbox,
    };
    capture.detections.extend([
        det("horse", 17, 0.55, b(620.0, 300.0, 700.0, 380.0)),
        det("horse", 17, 0.55, b(690.0, 300.0, 770.0, 380.0)),
        det("horse", 17, 0.3, b(10.0, 10.0, 25.0, 22.0)),
        det("sheep", 18, 0.71, b(200.0, 400.0, 260.0, 470.0)),
    ]);
    truth.objects.extend([
        GroundTruthObject {
            label: "horse".into(),
            class_id: 17,
            bbox: b(610.0, 290.0, 772.0, 390.0),
            iscrowd: true,
        },
        GroundTruthObject {
            label: "dog".into(),
            class_id: 16,
            bbox: b(700.0, 20.0, 730.0, 45.0),
            iscrowd: false,
        },
        GroundTruthObject {
            label: "sheep".into(),
            class_id: 18,
            bbox: b(205.0, 405.0, 262.0, 468.0),
            iscrowd: false,
        },
    ]);
    (capture, truth)
}

fn fixture_evaluated_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 9, 20, 0).unwrap()
}

#[test]
fn an_image_eval_v1_reads_as_the_same_evaluation_as_v2() {
    // GIVEN the same evaluation stored by the build before v2 and by this one
    let (capture, truth) = rich_pair();
    let e = ImageEval::evaluate(&capture, &truth, fixture_evaluated_at()).unwrap();
    let kinds = |e: &ImageEval| {
        e.classes
            .iter()
            .map(|c| (c.category_id, c.num_gt[0], c.num_detections()))
            .collect::<Vec<_>>()
    };
    // (dog: ground truth only; horse: a crowd and a tie; sheep; cow: detections only)
    assert_eq!(kinds(&e), [(18, 1, 0), (19, 3, 5), (20, 1, 1), (21, 0, 1)]);
    // WHEN both are read
    let v1: ImageEval = records::from_json(IMAGE_EVAL_V1).unwrap();
    let v2: ImageEval = records::from_json(IMAGE_EVAL_V2).unwrap();
    // THEN both are this build's evaluation
    assert_eq!(v1, e);
    assert_eq!(v2, e);
    // AND this build writes v2 as the fixture has it (a layout change without
    // a version bump fails here), and its v1 writer as the old build did
    let written = records::to_json(&e);
    assert!(written.starts_with(br#"{"schema_version":2,"#));
    assert_eq!(
        String::from_utf8(written).unwrap(),
        std::str::from_utf8(IMAGE_EVAL_V2).unwrap().trim_end()
    );
    assert_eq!(
        String::from_utf8(records::image_eval_v1_json(&e)).unwrap(),
        std::str::from_utf8(IMAGE_EVAL_V1).unwrap().trim_end()
    );
    // AND v2 is smaller, and a version from the future is refused
    assert!(IMAGE_EVAL_V2.len() < IMAGE_EVAL_V1.len());
    let future = String::from_utf8(IMAGE_EVAL_V2.to_vec())
        .unwrap()
        .replace(r#""schema_version":2"#, r#""schema_version":3"#);
    assert_eq!(
        records::from_json::<ImageEval>(future.as_bytes())
            .unwrap_err()
            .to_string(),
        "ImageEval has schema_version 3, this build reads 1..=2"
    );
}

/// Stored evaluations of a random COCO set (crowds, empty images, classes
/// with only ground truth or only detections, ties, floods of > 100
/// detections), as the metrics function would store them over one hour.
fn random_window_evals(seed: u64, window: Window, model: &ModelRef) -> Vec<ImageEval> {
    let (gt, dt) = support::random_set(seed);
    let evaluated = evaluate_dataset(&gt, &dt).unwrap();
    let step = 3_600_000 / (evaluated.images.len() as i64 + 1);
    evaluated
        .images
        .into_iter()
        .enumerate()
        .map(|(i, (image_id, cells))| {
            let at = window.start + Duration::milliseconds(i as i64 * step);
            ImageEval {
                id: CaptureId::derived(at, &image_id.to_le_bytes()),
                captured_at: at,
                model: model.clone(),
                label_version: at.timestamp_millis(),
                evaluated_at: at,
                detections: cells.iter().map(|c| c.num_detections() as u32).sum(),
                gt_objects: cells.iter().map(|c| c.num_gt[0]).sum(),
                gt_not_reported: 0,
                label_lag_s: i as f64 * 0.1,
                ap50: records::summarize([cells.as_slice()]).ap50,
                at_serving_threshold: modelobs_core::eval::operating_point(&cells, 0.5, 0.35)
                    .unwrap(),
                classes: cells,
            }
        })
        .collect()
}

#[test]
fn windows_of_v1_and_v2_records_are_identical() {
    let model = ModelRef {
        name: "nanodet-coco".into(),
        version: "1".into(),
    };
    let window = Window::containing(Granularity::Hour, now());
    let mut compared = 0;
    for seed in 0..200 {
        // GIVEN one set of evaluations, stored once as v1 and once as v2
        let evals = random_window_evals(seed, window, &model);
        let v1: Vec<ImageEval> = evals
            .iter()
            .map(|e| records::from_json(&records::image_eval_v1_json(e)).unwrap())
            .collect();
        let v2: Vec<ImageEval> = evals
            .iter()
            .map(|e| records::from_json(&records::to_json(e)).unwrap())
            .collect();
        // THEN each reads back as the evaluation it was
        assert_eq!(v1, evals, "seed {seed}");
        assert_eq!(v2, evals, "seed {seed}");
        // AND the windows are the same, every figure to the bit
        let w = |evals: &[ImageEval]| {
            WindowMetrics::compute(window, model.clone(), evals, 100, 0.35, now()).unwrap()
        };
        let (w1, w2) = (w(&v1), w(&v2));
        assert_eq!(w1, w2, "seed {seed}");
        // AND they are COCO's numbers for the set (to 1e-12)
        let (gt, dt) = support::random_set(seed);
        let direct = evaluate_dataset(&gt, &dt).unwrap().summary(&gt.categories);
        for (a, b) in w2.coco.stats().iter().zip(direct.stats()) {
            assert!((a - b).abs() <= 1e-12, "seed {seed}: {a} vs {b}");
        }
        compared += usize::from(w2.coco.ap > -1.0);
    }
    assert!(compared > 150, "only {compared} windows had ground truth");
}

/// A labelled capture of animals, with a model that finds some of them.
fn labelled(rng: &mut Rng, at: DateTime<Utc>, model: &ModelRef) -> (CaptureRecord, GroundTruth) {
    let animals: Vec<_> = classes::animals().collect();
    let id = CaptureId::new(at);
    let mut objects = Vec::new();
    let mut detections = Vec::new();
    for _ in 0..rng.below(5) {
        let class = animals[rng.below(4) as usize];
        let size = [20.0, 60.0, 200.0][rng.below(3) as usize] * (0.5 + rng.unit());
        let (x, y) = (rng.unit() * 400.0, rng.unit() * 300.0);
        let bbox = BBox::new(x, y, x + size, y + size * 0.8).unwrap();
        objects.push(GroundTruthObject {
            label: class.name.into(),
            class_id: class.index,
            bbox,
            iscrowd: false,
        });
        if rng.chance(0.8) {
            let dx = (rng.unit() - 0.5) * size * 0.3;
            let hit = animals[if rng.chance(0.85) {
                rng.below(4) as usize
            } else {
                5
            }];
            detections.push(Detection {
                label: hit.name.into(),
                class_id: if rng.chance(0.8) {
                    class.index
                } else {
                    hit.index
                },
                score: 0.3 + 0.7 * rng.unit(),
                bbox: BBox::new(x + dx, y, x + dx + size, y + size * 0.8).unwrap(),
            });
        }
    }
    if rng.chance(0.3) {
        detections.push(Detection {
            label: "bird".into(),
            class_id: animals[0].index,
            score: rng.unit(),
            bbox: BBox::new(10.0, 10.0, 30.0, 25.0).unwrap(),
        });
    }
    let capture = CaptureRecord {
        id,
        captured_at: at,
        source: CaptureSource::Http { request_id: None },
        model: model.clone(),
        image: CapturedImage {
            key: format!("captures/images/{id}.jpg"),
            width: 640,
            height: 480,
            content_type: "image/jpeg".into(),
            sha256: "0".repeat(64),
            bytes: 1,
        },
        score_threshold: 0.35,
        detections,
        timings_ms: StageTimings::default(),
        reported_classes: None,
        profile: None,
    };
    let truth = GroundTruth {
        id,
        source: "local".into(),
        label_id: format!("label-{id}"),
        updated_at: at + Duration::minutes(30),
        deleted: false,
        objects,
        unmapped_objects: Vec::new(),
        review_score: None,
        reviewed_at: None,
    };
    (capture, truth)
}

#[test]
fn ground_truth_of_a_class_the_model_does_not_report_is_left_out() {
    // GIVEN a capture by a model set to report dogs only, with one right dog,
    // and a label with that dog and a person (a class it never reports)
    let model = ModelRef {
        name: "nanodet-coco".into(),
        version: "1".into(),
    };
    let (mut capture, mut truth) = labelled(&mut Rng::new(3), now(), &model);
    let dog = BBox::new(100.0, 100.0, 300.0, 260.0).unwrap();
    capture.detections = vec![Detection {
        label: "dog".into(),
        class_id: 16,
        score: 0.9,
        bbox: dog,
    }];
    capture.reported_classes = Some(vec![16]);
    truth.objects = vec![
        GroundTruthObject {
            label: "dog".into(),
            class_id: 16,
            bbox: dog,
            iscrowd: false,
        },
        GroundTruthObject {
            label: "person".into(),
            class_id: 0,
            bbox: BBox::new(400.0, 50.0, 500.0, 300.0).unwrap(),
            iscrowd: false,
        },
    ];
    // WHEN evaluated
    let eval = ImageEval::evaluate(&capture, &truth, now()).unwrap();
    // THEN the person is counted aside, not as a miss: AP50 is the dog's 1.0
    assert_eq!((eval.gt_objects, eval.gt_not_reported), (1, 1));
    assert!((eval.ap50 - 1.0).abs() < 1e-12, "{}", eval.ap50);
    assert_eq!(eval.at_serving_threshold.fn_, 0);
    // AND a record without the field (written before it) counts every class
    capture.reported_classes = None;
    let all = ImageEval::evaluate(&capture, &truth, now()).unwrap();
    assert_eq!((all.gt_objects, all.gt_not_reported), (2, 0));
    assert!(all.ap50 < 0.75, "the person is a miss: {}", all.ap50);
}

#[test]
fn a_window_equals_coco_evaluation_of_its_images() {
    let model = ModelRef {
        name: "nanodet-coco".into(),
        version: "1".into(),
    };
    let window = Window::containing(Granularity::Hour, now());
    for seed in 0..40 {
        let mut rng = Rng::new(seed);
        let items: Vec<_> = (0..1 + rng.below(60))
            .map(|_| {
                let at = window.start + Duration::seconds(rng.below(3600) as i64);
                labelled(&mut rng, at, &model)
            })
            .collect();
        let evals: Vec<ImageEval> = items
            .iter()
            .map(|(c, g)| ImageEval::evaluate(c, g, now()).unwrap())
            // Windows read stored evaluations: go through the stored form.
            .map(|e| records::from_json(&records::to_json(&e)).unwrap())
            .collect();
        let w = WindowMetrics::compute(window, model.clone(), &evals, 100, 0.35, now()).unwrap();
        // v1 records of the same images roll up to the same window.
        let from_v1: Vec<ImageEval> = evals
            .iter()
            .map(|e| records::from_json(&records::image_eval_v1_json(e)).unwrap())
            .collect();
        let w1 = WindowMetrics::compute(window, model.clone(), &from_v1, 100, 0.35, now()).unwrap();
        assert_eq!(w1, w, "seed {seed}");

        let (gt, dt) = to_coco(&items);
        let direct = evaluate_dataset(&gt, &dt).unwrap().summary(&gt.categories);
        assert_eq!(w.coco.stats(), direct.stats(), "seed {seed}");
        for (name, ap) in &w.coco.per_class {
            assert_eq!(direct.per_class[name], *ap, "seed {seed}, class {name}");
        }
        assert_eq!(w.images_labelled as usize, items.len());
    }
}

#[test]
fn a_window_refuses_evaluations_from_elsewhere() {
    let model = ModelRef {
        name: "nanodet-coco".into(),
        version: "1".into(),
    };
    let window = Window::containing(Granularity::Hour, now());
    let mut rng = Rng::new(1);
    let (c, g) = labelled(&mut rng, window.end(), &model);
    let e = ImageEval::evaluate(&c, &g, now()).unwrap();
    let err = WindowMetrics::compute(window, model, &[e], 1, 0.35, now()).unwrap_err();
    assert!(err.to_string().contains("is not in window"), "{err}");
}
