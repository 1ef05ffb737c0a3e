//! `modelobs dataset export` against LocalStack: a bucket filled by the
//! functions' own code (capture as the inference function stores it, the
//! sampler's decision, labels recorded as the webhook records Labelbox's
//! events: created, updated, deleted, one with a class no map knows), then
//! the real binary exports it, and the dataset is read back by `modelobs
//! eval` and by pycocotools.
//!
//! `#[ignore]`d with the reason: `make test` runs it inside
//! `localstack/with-stack` with `--include-ignored`; without a stack it fails,
//! naming what is missing. pycocotools comes from the coco venv
//! (`scripts/venv.sh`, as `make crosscheck` makes it).

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use modelobs_adapters::queue::MemoryQueue;
use modelobs_adapters::s3::S3Store;
use modelobs_adapters::{ObjectStore, RetryPolicy, Retrying};
use modelobs_core::export::ExportedDataset;
use modelobs_core::keys;
use modelobs_core::records::{self, CaptureId, CaptureRecord, GroundTruth, SamplingDecision};
use modelobs_core::sampling::SamplingPolicy;
use modelobs_labelbox::webhook::payload::{self, ClassMap};
use modelobs_pipeline::label::{Recorder, record};
use modelobs_pipeline::label_source::MemoryFetcher;
use modelobs_pipeline::labeling::LocalQueue;
use modelobs_pipeline::{capture, sample};
use serde_json::{Value, json};
use support::{eval, modelobs, repo_root, succeeded};

const CAPTURE: &[u8] = include_bytes!("../../events/records/capture-record.json");

type Store = Arc<Retrying<S3Store>>;

/// The capture as the inference function stores it, then the sampler's decision on it.
async fn captured(store: &Store, at: DateTime<Utc>, version: &str, image: &[u8]) -> CaptureRecord {
    let id = CaptureId::new(at);
    let mut c: CaptureRecord = records::from_json(CAPTURE).unwrap();
    c.id = id;
    c.captured_at = at;
    c.model.version = version.into();
    c.image.key = keys::capture_image(id, at, "jpg");
    c.image.sha256 = modelobs_core::export::sha256_hex(image);
    c.image.bytes = image.len() as u64;
    capture::store(store, &c, Bytes::copy_from_slice(image))
        .await
        .unwrap();

    let mut event: Value =
        serde_json::from_str(&modelobs_testkit::event("sampler/capture-created.json")).unwrap();
    event["Records"][0]["s3"]["object"]["key"] =
        json!(keys::capture_record(id, at).replace('=', "%3D"));
    let deps = sample::Deps {
        policy: SamplingPolicy::from_json(
            r#"{"name": "dataset-export", "uniform_rate": 1.0, "empty_rate": 1.0, "daily_budget": 1000}"#,
        )
        .unwrap(),
        backend: LocalQueue {
            store: store.clone(),
            now: Utc::now,
        },
        store: store.clone(),
        now: Utc::now,
    };
    sample::handle(serde_json::from_value(event).unwrap(), &deps)
        .await
        .unwrap();
    c
}

/// A Labelbox event for `id`, recorded as the webhook records it.
async fn labelled(
    store: &Store,
    topic: &str,
    id: CaptureId,
    at: DateTime<Utc>,
    objects: &[(&str, [f64; 4])],
) {
    let objects: Vec<Value> = objects
        .iter()
        .map(|(title, [left, top, width, height])| {
            json!({"title": title, "value": title.to_lowercase(),
                   "bbox": {"top": top, "left": left, "height": height, "width": width}})
        })
        .collect();
    let mut body = json!({"id": format!("label-{id}"), "dataRow": {"globalKey": id.to_string()},
        "updatedAt": at.to_rfc3339()});
    if topic != "LABEL_DELETED" {
        body["label"] = json!({ "objects": objects });
    }
    let (topic, event) = payload::parse(body.to_string().as_bytes(), Some(topic))
        .unwrap()
        .unwrap();
    let recorder = Recorder {
        store,
        queue: &MemoryQueue::new(),
        fetcher: &None::<MemoryFetcher>,
        class_map: &ClassMap::default(),
        source: "labelbox",
    };
    record(&recorder, &topic, event).await.unwrap();
}

/// What the current labels of these captures say an export must hold:
/// (capture id → number of objects) for the labels not deleted and fully
/// mapped, the first capture of each image only.
async fn current_labels(store: &Store, captures: &[CaptureRecord]) -> BTreeMap<CaptureId, usize> {
    let mut want = BTreeMap::new();
    let mut images = std::collections::HashSet::new();
    for c in captures {
        let Some(object) = store.get(&keys::label(c.id)).await.unwrap() else {
            continue;
        };
        let gt: GroundTruth = records::from_json(&object.body).unwrap();
        if !gt.deleted && gt.unmapped_objects.is_empty() && images.insert(c.image.sha256.clone()) {
            want.insert(c.id, gt.objects.len());
        }
    }
    want
}

/// pycocotools' COCO() on `path`: (images, annotations, categories).
fn pycocotools_counts(path: &Path) -> (usize, usize, usize) {
    let stdout = |command: &mut Command, what: &str| {
        let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{what}: {stderr}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let venv = stdout(
        Command::new("bash")
            .args(["scripts/venv.sh", "coco", "bench/coco/requirements.txt"])
            .arg("import pycocotools")
            .current_dir(repo_root()),
        "the coco venv (scripts/venv.sh, PyPI)",
    );
    let python = venv.lines().last().expect("venv.sh prints its python");
    let script = "import sys\nfrom pycocotools.coco import COCO\nc = COCO(sys.argv[1])\n\
                  print(len(c.getImgIds()), len(c.getAnnIds()), len(c.getCatIds()))";
    let out = stdout(
        Command::new(python).args(["-c", script]).arg(path),
        "pycocotools",
    );
    let counts: Vec<usize> = out
        .lines()
        .last()
        .unwrap()
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    (counts[0], counts[1], counts[2])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack (and PyPI or the coco venv for pycocotools): make test runs it"]
async fn an_export_of_the_bucket_is_a_coco_dataset_of_its_current_labels() {
    let env = modelobs_testkit::require_localstack();
    let store: Store = Arc::new(Retrying::new(
        S3Store::new(S3Store::client_from_env().await, &env.bucket),
        RetryPolicy::default(),
    ));
    // A day of its own, years before the end-to-end test's days.
    let day = NaiveDate::from_ymd_opt(1981, 1, 1).unwrap()
        + Duration::days(Utc::now().timestamp() / 60 % 7000);
    let at = |hour: i64| day.and_hms_opt(0, 0, 0).unwrap().and_utc() + Duration::hours(hour);

    // GIVEN eight captures of that day, two model versions; the last one's image is the third's
    let images: Vec<Vec<u8>> = (0..8)
        .map(|i| match i {
            7 => format!("jpeg {day} 2").into_bytes(),
            i => format!("jpeg {day} {i}").into_bytes(),
        })
        .collect();
    let mut captures = Vec::new();
    for (i, image) in images.iter().enumerate() {
        let version = ["ls-1", "ls-2"][i % 2];
        captures.push(captured(&store, at(i as i64 + 1), version, image).await);
    }
    let id = |i: usize| captures[i].id;
    let horse = ("Horse", [10.0, 20.0, 100.0, 50.0]);
    let zebra = ("zebra", [200.0, 40.0, 60.0, 80.0]);
    // AND labels: created; one later updated (the newer wins), one deleted, one with a class
    // no map knows; capture 6 never labelled
    for i in [0, 1, 2, 3, 4, 7] {
        labelled(
            &store,
            "LABEL_CREATED",
            id(i),
            at(i as i64 + 2),
            &[horse, zebra],
        )
        .await;
    }
    labelled(&store, "LABEL_UPDATED", id(4), at(12), &[zebra]).await;
    labelled(&store, "LABEL_DELETED", id(3), at(13), &[]).await;
    labelled(
        &store,
        "LABEL_CREATED",
        id(5),
        at(7),
        &[horse, ("Unicorn", [1.0, 1.0, 5.0, 5.0])],
    )
    .await;
    let want = current_labels(&store, &captures).await;
    assert_eq!(want.len(), 4, "0, 1, 2 and 4: the test's own arithmetic");

    // WHEN the day is exported, split by time
    let work = modelobs_testkit::temp_dir("dataset-localstack");
    let out = work.join("export");
    let (stdout, stderr) = succeeded(&[
        "dataset",
        "export",
        "--out",
        out.to_str().unwrap(),
        "--from",
        &day.to_string(),
        "--to",
        &day.to_string(),
        "--bucket",
        &env.bucket,
        "--split-by",
        "time",
        "--split",
        "0.5,0.25,0.25",
    ]);
    println!("{stdout}\n{stderr}");

    // THEN the dataset holds exactly the current labels, with their objects and image bytes
    let annotations = out.join("annotations.json");
    let dataset: ExportedDataset =
        serde_json::from_slice(&std::fs::read(&annotations).unwrap()).unwrap();
    let got: BTreeMap<CaptureId, usize> = dataset
        .images
        .iter()
        .map(|i| {
            let n = dataset
                .annotations
                .iter()
                .filter(|a| a.image_id == i.image.id)
                .count();
            (i.modelobs.capture_id.unwrap(), n)
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(dataset.annotations.len(), want.values().sum::<usize>());
    for image in &dataset.images {
        let c = captures
            .iter()
            .find(|c| Some(c.id) == image.modelobs.capture_id)
            .unwrap();
        let stored = store.get(&c.image.key).await.unwrap().unwrap().body;
        let file = out
            .join("images")
            .join(image.image.file_name.as_ref().unwrap());
        assert_eq!(std::fs::read(file).unwrap(), stored.as_ref());
        assert_eq!(
            image.modelobs.model.as_ref().unwrap().version,
            c.model.version
        );
        let decision: SamplingDecision =
            records::from_json(&store.get(&keys::sample(c.id)).await.unwrap().unwrap().body)
                .unwrap();
        assert_eq!(image.modelobs.sampling_reason, Some(decision.reason));
        assert!(image.image.split.is_some());
    }
    // AND the updated label is the one exported, the duplicate and the unmapped class reported
    let updated = dataset
        .images
        .iter()
        .find(|i| i.modelobs.capture_id == Some(id(4)))
        .unwrap();
    assert_eq!(updated.modelobs.label_version, at(12).timestamp_millis());
    assert!(stdout.contains("duplicates dropped: 1"), "{stdout}");
    assert!(
        stderr.contains(&format!("skipped {}", keys::label(id(5)))) && stderr.contains("Unicorn"),
        "{stderr}"
    );

    // AND `modelobs eval` reads it as ground truth, with the captures' detections as results
    let results: Vec<Value> = dataset
        .images
        .iter()
        .flat_map(|i| {
            let c = captures
                .iter()
                .find(|c| Some(c.id) == i.modelobs.capture_id)
                .unwrap();
            c.detections.iter().map(move |d| {
                json!({"image_id": i.image.id, "bbox": d.bbox.to_xywh(), "score": d.score,
                       "category_id": modelobs_core::classes::by_index(d.class_id).unwrap().category_id})
            })
        })
        .collect();
    let eval = eval(&annotations, &results);
    assert!(eval["AP"].is_number(), "{eval}");

    // AND pycocotools loads it with the same counts
    assert_eq!(
        pycocotools_counts(&annotations),
        (want.len(), want.values().sum::<usize>(), 80)
    );

    // AND a filter takes its share, and a range with nothing in it fails with nothing written
    let (stdout, _) = succeeded(&[
        "dataset",
        "export",
        "--out",
        work.join("ls-2").to_str().unwrap(),
        "--from",
        &day.to_string(),
        "--to",
        &day.to_string(),
        "--model-version",
        "ls-2",
    ]);
    let ls2: ExportedDataset =
        serde_json::from_slice(&std::fs::read(work.join("ls-2/annotations.json")).unwrap())
            .unwrap();
    // Duplicates are dropped within what is chosen: capture 7 (ls-2) is no longer a copy of 2 (ls-1).
    let ls2_captures: Vec<CaptureRecord> = captures
        .iter()
        .filter(|c| c.model.version == "ls-2")
        .cloned()
        .collect();
    let want_ls2 = current_labels(&store, &ls2_captures).await.len();
    assert_eq!(ls2.images.len(), want_ls2, "{stdout}");
    // No run of this test (nor the end-to-end test) ever captures on this day.
    let empty_day = "1980-06-15".to_string();
    let nothing = modelobs(&[
        "dataset",
        "export",
        "--out",
        work.join("nothing").to_str().unwrap(),
        "--from",
        &empty_day,
        "--to",
        &empty_day,
    ]);
    assert_eq!(nothing.status.code(), Some(1));
    assert!(!work.join("nothing/annotations.json").exists());
    std::fs::remove_dir_all(&work).unwrap();
}
