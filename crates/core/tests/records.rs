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

        let (gt, dt) = to_coco(&items);
        let direct = evaluate_dataset(&gt, &dt).unwrap().summary(&gt.categories);
        let stats = |s: &modelobs_core::eval::CocoSummary| {
            [
                s.ap,
                s.ap50,
                s.ap75,
                s.ap_small,
                s.ap_medium,
                s.ap_large,
                s.ar1,
                s.ar10,
                s.ar100,
                s.ar_small,
                s.ar_medium,
                s.ar_large,
            ]
        };
        assert_eq!(stats(&w.coco), stats(&direct), "seed {seed}");
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
