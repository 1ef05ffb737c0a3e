//! `dataset_export` over an in-memory bucket: which labelled captures a
//! dataset takes (filters, deleted labels, duplicates), what it says about
//! each, how it splits, and what it reports instead of exporting.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use chrono::{DateTime, Duration, TimeZone, Utc};
use modelobs_adapters::ObjectStore;
use modelobs_adapters::memory::MemoryStore;
use modelobs_core::boxes::BBox;
use modelobs_core::eval::coco_format::{self, Split};
use modelobs_core::export::{ExportFilter, ExportedDataset, SplitBy, SplitPlan};
use modelobs_core::records::{
    self, CaptureId, CaptureRecord, GroundTruth, GroundTruthObject, SampleReason, SampleState,
    SamplingDecision,
};
use modelobs_core::{classes, keys};
use modelobs_pipeline::dataset_export::{ExportError, ExportReport, ExportRequest, export};
use sha2::{Digest, Sha256};
use support::put;

const CAPTURE: &[u8] = include_bytes!("../../../events/records/capture-record.json");

/// One labelled capture as the test means it.
#[derive(Clone)]
struct Spec {
    at: DateTime<Utc>,
    version: &'static str,
    source: &'static str,
    reason: Option<SampleReason>,
    deleted: bool,
    image: Vec<u8>,
    objects: Vec<GroundTruthObject>,
}

impl Spec {
    fn id(&self) -> CaptureId {
        CaptureId::derived(self.at, &self.image)
    }
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn day(d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, d, 0, 0, 0).unwrap()
}

/// `n` labelled captures over 26-28 Nov with mixed versions, sources and
/// reasons; some labels deleted, some images the bytes of an earlier one.
fn specs(n: u64, seed: u64) -> Vec<Spec> {
    let mut r = Lcg(seed);
    let mut out: Vec<Spec> = Vec::new();
    for i in 0..n {
        let at = day(26) + Duration::minutes((i * 180 + r.below(60)) as i64);
        let animals: Vec<_> = classes::animals().collect();
        let objects = (0..r.below(4))
            .map(|_| {
                let c = animals[r.below(animals.len() as u64) as usize];
                let (x, y) = (r.below(500) as f64, r.below(300) as f64);
                GroundTruthObject {
                    label: c.name.into(),
                    class_id: c.index,
                    bbox: BBox::new(x, y, x + 10.0 + r.below(100) as f64, y + 20.0).unwrap(),
                    iscrowd: false,
                }
            })
            .collect();
        let image = match out.len() {
            k if k > 0 && r.below(6) == 0 => out[r.below(k as u64) as usize].image.clone(),
            _ => format!("jpeg bytes of image {i} ({seed})").into_bytes(),
        };
        out.push(Spec {
            at,
            version: ["1.0.0", "2.0.0"][r.below(2) as usize],
            source: ["local", "labelbox"][r.below(2) as usize],
            reason: [
                Some(SampleReason::Uniform),
                Some(SampleReason::Uncertain),
                Some(SampleReason::Empty),
                None,
            ][r.below(4) as usize],
            deleted: r.below(7) == 0,
            image,
            objects,
        });
    }
    out
}

/// The capture, its image, decision and label, as the functions store them
/// (with an older label version in the history, which is not current).
async fn store(bucket: &MemoryStore, spec: &Spec) -> CaptureRecord {
    let id = spec.id();
    let mut capture: CaptureRecord = records::from_json(CAPTURE).unwrap();
    capture.id = id;
    capture.captured_at = spec.at;
    capture.model.version = spec.version.into();
    capture.image.key = keys::capture_image(id, spec.at, "jpg");
    capture.image.sha256 = sha256(&spec.image);
    capture.image.bytes = spec.image.len() as u64;
    put(bucket, &capture.image.key, spec.image.clone()).await;
    put(
        bucket,
        &keys::capture_record(id, spec.at),
        records::to_json(&capture),
    )
    .await;
    if let Some(reason) = spec.reason {
        let decision = SamplingDecision {
            id,
            capture_key: keys::capture_record(id, spec.at),
            decided_at: spec.at,
            policy: "test".into(),
            sampled: true,
            reason,
            detail: None,
            backend: Some("local".into()),
            external_ref: None,
            state: SampleState::Submitted,
        };
        put(bucket, &keys::sample(id), records::to_json(&decision)).await;
    }
    let truth = GroundTruth {
        id,
        source: spec.source.into(),
        label_id: format!("label-{id}"),
        updated_at: spec.at + Duration::minutes(30),
        deleted: spec.deleted,
        objects: if spec.deleted {
            Vec::new()
        } else {
            spec.objects.clone()
        },
        unmapped_objects: Vec::new(),
        review_score: None,
        reviewed_at: None,
    };
    let older = GroundTruth {
        updated_at: spec.at + Duration::minutes(10),
        deleted: false,
        objects: Vec::new(),
        ..truth.clone()
    };
    put(
        bucket,
        &keys::label_history(id, older.version()),
        records::to_json(&older),
    )
    .await;
    put(
        bucket,
        &keys::label_history(id, truth.version()),
        records::to_json(&truth),
    )
    .await;
    put(bucket, &keys::label(id), records::to_json(&truth)).await;
    capture
}

async fn bucket(specs: &[Spec]) -> MemoryStore {
    let bucket = MemoryStore::new();
    for s in specs {
        store(&bucket, s).await;
    }
    bucket
}

async fn run(
    bucket: &MemoryStore,
    filter: ExportFilter,
    split: Option<SplitPlan>,
) -> (ExportReport, Option<ExportedDataset>, std::path::PathBuf) {
    let out = modelobs_testkit::temp_dir("export");
    let request = ExportRequest {
        filter,
        split,
        concurrency: 4,
    };
    let report = export(bucket, &request, &out, &()).await.unwrap();
    let dataset = std::fs::read(out.join("annotations.json"))
        .ok()
        .map(|b| serde_json::from_slice(&b).unwrap());
    (report, dataset, out)
}

/// What the export should take, worked out from the specs alone: the
/// non-deleted ones the predicate admits, oldest first, the first of each image.
fn expected(specs: &[Spec], admits: impl Fn(&Spec) -> bool) -> (Vec<&Spec>, usize) {
    let mut chosen: Vec<&Spec> = specs.iter().filter(|s| !s.deleted && admits(s)).collect();
    chosen.sort_by_key(|s| s.id());
    let mut seen = HashSet::new();
    let before = chosen.len();
    chosen.retain(|s| seen.insert(s.image.clone()));
    let duplicates = before - chosen.len();
    (chosen, duplicates)
}

fn check_dataset(out: &Path, dataset: &ExportedDataset, want: &[&Spec]) {
    let ids: Vec<Option<CaptureId>> = dataset
        .images
        .iter()
        .map(|i| i.modelobs.capture_id)
        .collect();
    let want_ids: Vec<Option<CaptureId>> = want.iter().map(|s| Some(s.id())).collect();
    assert_eq!(ids, want_ids, "the chosen captures, oldest first");
    let by_image: BTreeMap<u64, Vec<&coco_format::CocoAnnotation>> = dataset
        .annotations
        .iter()
        .fold(BTreeMap::new(), |mut m, a| {
            m.entry(a.image_id).or_default().push(a);
            m
        });
    for (image, spec) in dataset.images.iter().zip(want) {
        let file = out
            .join("images")
            .join(image.image.file_name.as_ref().unwrap());
        assert_eq!(
            std::fs::read(&file).unwrap(),
            spec.image,
            "{}",
            file.display()
        );
        assert_eq!(
            image.image.source.as_deref(),
            Some(sha256(&spec.image).as_str())
        );
        let p = &image.modelobs;
        assert_eq!(p.captured_at, Some(spec.at));
        assert_eq!(p.model.as_ref().unwrap().version, spec.version);
        assert_eq!(p.label_source, spec.source);
        assert_eq!(p.sampling_reason, spec.reason);
        assert_eq!(
            p.label_version,
            (spec.at + Duration::minutes(30)).timestamp_millis(),
            "the current version, not the history's older one"
        );
        let boxes: Vec<([f64; 4], u64)> = by_image
            .get(&image.image.id)
            .map(|a| a.iter().map(|a| (a.bbox, a.category_id)).collect())
            .unwrap_or_default();
        let want_boxes: Vec<([f64; 4], u64)> = spec
            .objects
            .iter()
            .map(|o| {
                let c = classes::by_index(o.class_id).unwrap();
                (o.bbox.to_xywh(), u64::from(c.category_id))
            })
            .collect();
        assert_eq!(boxes, want_boxes);
    }
    // Every file under images/ is one of the dataset's.
    assert_eq!(
        std::fs::read_dir(out.join("images")).unwrap().count(),
        want.len()
    );
}

#[tokio::test]
async fn every_current_label_is_exported_once_with_where_it_came_from() {
    for seed in 1..6 {
        // GIVEN labelled captures, some labels deleted, some images sent twice
        let specs = specs(30, seed);
        let bucket = bucket(&specs).await;
        // WHEN everything is exported
        let (report, dataset, out) = run(&bucket, ExportFilter::default(), None).await;
        // THEN the non-deleted ones, oldest first, each image once
        let (want, duplicates) = expected(&specs, |_| true);
        let dataset = dataset.expect("annotations.json");
        check_dataset(&out, &dataset, &want);
        assert_eq!(report.labels, specs.len());
        assert_eq!(
            report.deleted,
            specs.iter().filter(|s| s.deleted).count(),
            "seed {seed}"
        );
        assert_eq!(report.outcome.duplicates.len(), duplicates, "seed {seed}");
        assert!(
            report.outcome.problems.is_empty(),
            "{:?}",
            report.outcome.problems
        );
        let written = report.outcome.written.unwrap();
        assert_eq!(written.images, want.len());
        assert_eq!(
            written.objects,
            want.iter().map(|s| s.objects.len()).sum::<usize>()
        );
        // AND it is a COCO dataset with all 80 categories
        let coco =
            coco_format::parse_dataset(&std::fs::read(out.join("annotations.json")).unwrap())
                .unwrap();
        assert_eq!(coco.categories.len(), 80);
        std::fs::remove_dir_all(&out).unwrap();
    }
}

#[tokio::test]
async fn filters_choose_by_capture_time_model_version_label_source_and_reason() {
    let specs = specs(40, 11);
    let bucket = bucket(&specs).await;
    let all = ExportFilter::default();
    let (from, to) = (day(26) + Duration::hours(30), day(27) + Duration::hours(40));
    type Case = (ExportFilter, Box<dyn Fn(&Spec) -> bool>);
    let cases: Vec<Case> = vec![
        (
            ExportFilter {
                from: Some(from),
                to: Some(to),
                ..all.clone()
            },
            Box::new(move |s| from <= s.at && s.at < to),
        ),
        (
            ExportFilter {
                model_version: Some("2.0.0".into()),
                ..all.clone()
            },
            Box::new(|s| s.version == "2.0.0"),
        ),
        (
            ExportFilter {
                label_source: Some("labelbox".into()),
                ..all.clone()
            },
            Box::new(|s| s.source == "labelbox"),
        ),
        (
            ExportFilter {
                reason: Some(SampleReason::Uncertain),
                ..all.clone()
            },
            Box::new(|s| s.reason == Some(SampleReason::Uncertain)),
        ),
        (
            ExportFilter {
                from: Some(from),
                model_version: Some("1.0.0".into()),
                label_source: Some("local".into()),
                reason: Some(SampleReason::Uniform),
                ..all.clone()
            },
            Box::new(move |s| {
                from <= s.at
                    && s.version == "1.0.0"
                    && s.source == "local"
                    && s.reason == Some(SampleReason::Uniform)
            }),
        ),
    ];
    for (filter, admits) in cases {
        let (want, duplicates) = expected(&specs, &admits);
        assert!(!want.is_empty(), "a case that takes nothing tests little");
        let (report, dataset, out) = run(&bucket, filter.clone(), None).await;
        check_dataset(&out, &dataset.unwrap(), &want);
        assert_eq!(report.outcome.duplicates.len(), duplicates, "{filter:?}");
        let in_range = specs
            .iter()
            .filter(|s| filter.from.is_none_or(|f| s.at >= f) && filter.to.is_none_or(|t| s.at < t))
            .count();
        assert_eq!(report.outside_range, specs.len() - in_range, "{filter:?}");
        std::fs::remove_dir_all(&out).unwrap();
    }
}

#[tokio::test]
async fn splits_are_written_into_each_image() {
    let specs = specs(40, 5);
    let bucket = bucket(&specs).await;
    for by in [SplitBy::Time, SplitBy::Hash] {
        let plan = SplitPlan::new(by, [0.6, 0.2, 0.2]).unwrap();
        let (report, dataset, out) = run(&bucket, ExportFilter::default(), Some(plan)).await;
        let dataset = dataset.unwrap();
        let side: BTreeMap<CaptureId, Split> = dataset
            .images
            .iter()
            .map(|i| {
                let split = i.image.split.expect("every image has its split");
                (i.modelobs.capture_id.unwrap(), split)
            })
            .collect();
        let splits: Vec<Split> = dataset
            .images
            .iter()
            .map(|i| side[&i.modelobs.capture_id.unwrap()])
            .collect();
        let counts = Split::ALL.map(|s| splits.iter().filter(|&&x| x == s).count());
        assert_eq!(report.outcome.written.unwrap().splits, Some(counts));
        assert!(counts.iter().all(|&c| c > 0), "{by:?}: {counts:?}");
        std::fs::remove_dir_all(&out).unwrap();
        if by == SplitBy::Time {
            // Images are oldest first: the split is train, then validation, then test.
            let mut sorted = splits.clone();
            sorted.sort();
            assert_eq!(splits, sorted);
            continue;
        }
        // By hash, an image keeps its side in a smaller export of the same bucket.
        let subset = ExportFilter {
            model_version: Some("1.0.0".into()),
            ..Default::default()
        };
        let (_, smaller, out) = run(&bucket, subset, Some(plan)).await;
        let smaller = smaller.unwrap();
        assert!(smaller.images.len() < dataset.images.len());
        for i in &smaller.images {
            assert_eq!(i.image.split, Some(side[&i.modelobs.capture_id.unwrap()]));
        }
        std::fs::remove_dir_all(&out).unwrap();
    }
}

#[tokio::test]
async fn what_cannot_be_exported_is_reported_by_key_and_the_rest_still_is() {
    // GIVEN five good captures and one of each kind of damage
    let specs = specs(30, 3)
        .into_iter()
        .filter(|s| !s.deleted)
        .take(11)
        .enumerate()
        .map(|(i, s)| Spec {
            image: format!("distinct image {i}").into_bytes(),
            ..s
        })
        .collect::<Vec<_>>();
    assert_eq!(specs.len(), 11);
    let bucket = bucket(&specs).await;
    let id = |i: usize| specs[i].id();
    let record_key = |i: usize| keys::capture_record(id(i), specs[i].at);
    let image_key = |i: usize| keys::capture_image(id(i), specs[i].at, "jpg");
    // 0: image gone; 1: image changed after capture; 2: record unreadable; 3: label unreadable;
    // 4: label of a capture with no record; 5: a class the map did not know;
    // 6: sampling decision unreadable; plus a stray key under labels/.
    bucket.delete(&image_key(0)).await.unwrap();
    put(&bucket, &image_key(1), b"other bytes".to_vec()).await;
    put(
        &bucket,
        &record_key(2),
        b"{\"schema_version\": 1, \"id\": 7}".to_vec(),
    )
    .await;
    put(&bucket, &keys::label(id(3)), b"not json".to_vec()).await;
    bucket.delete(&record_key(4)).await.unwrap();
    let mut unmapped: GroundTruth =
        records::from_json(&bucket.body(&keys::label(id(5))).unwrap()).unwrap();
    unmapped.unmapped_objects = vec!["Unicorn".into()];
    put(&bucket, &keys::label(id(5)), records::to_json(&unmapped)).await;
    put(&bucket, &keys::sample(id(6)), b"{}".to_vec()).await;
    put(&bucket, "labels/README.json", b"{}".to_vec()).await;

    // WHEN exported
    let (report, dataset, out) = run(&bucket, ExportFilter::default(), None).await;

    // THEN each is reported at the key that was wrong, and the others are in the dataset
    let reported: BTreeMap<String, String> = report
        .outcome
        .problems
        .iter()
        .map(|p| (p.key.clone(), p.why.clone()))
        .collect();
    let want_keys = [
        image_key(0),
        image_key(1),
        record_key(2),
        keys::label(id(3)),
        record_key(4),
        keys::label(id(5)),
        keys::sample(id(6)),
        "labels/README.json".to_string(),
    ];
    assert_eq!(
        reported.keys().cloned().collect::<HashSet<_>>(),
        want_keys.iter().cloned().collect::<HashSet<_>>(),
        "{reported:#?}"
    );
    assert!(reported[&image_key(0)].contains("missing"));
    assert!(reported[&image_key(1)].contains("hash"));
    assert!(reported[&keys::label(id(5))].contains("Unicorn"));
    let good: Vec<&Spec> = specs[7..].iter().collect();
    check_dataset(&out, &dataset.unwrap(), &good);
    std::fs::remove_dir_all(&out).unwrap();
}

#[tokio::test]
async fn nothing_to_export_writes_no_dataset() {
    let specs = specs(10, 2);
    let bucket = bucket(&specs).await;
    let filter = ExportFilter {
        model_version: Some("9.9.9".into()),
        ..Default::default()
    };
    let (report, dataset, out) = run(&bucket, filter, None).await;
    assert!(report.outcome.written.is_none() && dataset.is_none());
    assert_eq!(
        report.filtered_out,
        specs.iter().filter(|s| !s.deleted).count()
    );
    assert!(!out.join("images").exists());
}

#[tokio::test]
async fn a_store_that_fails_fails_the_export() {
    let bucket = bucket(&specs(5, 4)).await;
    bucket.fail_next(1);
    let out = modelobs_testkit::temp_dir("export-fails");
    let request = ExportRequest {
        filter: ExportFilter::default(),
        split: None,
        concurrency: 2,
    };
    let err = export(&bucket, &request, &out, &()).await.unwrap_err();
    assert!(matches!(err, ExportError::Store(_)), "{err}");
    assert!(!out.join("annotations.json").exists());
}
