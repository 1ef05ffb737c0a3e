//! `labelbox_import` on a project export shaped like Labelbox's documented
//! samples (events/labelbox/README.md): which rows become images, how their
//! images are found, and what is reported instead.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use modelobs_core::classes;
use modelobs_core::eval::coco_format;
use modelobs_core::export::{ExportedDataset, SplitBy, SplitPlan};
use modelobs_core::records::CaptureId;
use modelobs_labelbox::webhook::payload::ClassMap;
use modelobs_pipeline::labelbox_import::{ImportReport, ImportRequest, import};

const PROJECT: &str = "cltd3vkju021907u63w2odj69";
const CAPTURE: &str = "01a216ce-1102-7c4e-9a52-4d8e2f6a1b90";

fn export() -> String {
    modelobs_testkit::event("labelbox/project-export.ndjson")
}

/// A directory of the photos the rows name, each file's bytes its own name.
fn photos() -> PathBuf {
    let dir = modelobs_testkit::temp_dir("photos");
    std::fs::create_dir_all(&dir).unwrap();
    for name in [
        &format!("{CAPTURE}.jpg"),
        "dog.jpg",
        "empty.jpg",
        "giraffe.jpg",
        "unicorn.jpg",
        "notes.txt",
    ] {
        std::fs::write(dir.join(name), format!("bytes of {name}")).unwrap();
    }
    dir
}

async fn run(
    project_id: Option<&str>,
    images: Option<&Path>,
    class_map: &ClassMap,
    split: Option<SplitPlan>,
) -> (ImportReport, Option<ExportedDataset>, PathBuf) {
    let text = export();
    let out = modelobs_testkit::temp_dir("import");
    let request = ImportRequest {
        export: &text,
        project_id,
        images,
        class_map,
        split,
    };
    let report = import(&request, &out, &()).await.unwrap();
    let dataset = std::fs::read(out.join("annotations.json"))
        .ok()
        .map(|b| serde_json::from_slice(&b).unwrap());
    (report, dataset, out)
}

/// An image's file name and its (category name, [x, y, w, h]).
type ImageBoxes = (String, Vec<(String, [f64; 4])>);

/// Each image's boxes, in dataset order.
fn boxes(d: &ExportedDataset) -> Vec<ImageBoxes> {
    d.images
        .iter()
        .map(|i| {
            let anns = d
                .annotations
                .iter()
                .filter(|a| a.image_id == i.image.id)
                .map(|a| {
                    let c = classes::by_category_id(a.category_id as u32).unwrap();
                    (c.name.to_string(), a.bbox)
                })
                .collect();
            (i.image.file_name.clone().unwrap(), anns)
        })
        .collect()
}

fn problems(report: &ImportReport) -> BTreeMap<String, String> {
    report
        .outcome
        .problems
        .iter()
        .map(|p| (p.key.clone(), p.why.clone()))
        .collect()
}

#[tokio::test]
async fn rows_with_images_become_a_dataset_of_their_newest_labels() {
    // GIVEN the export and a directory holding the photos
    let photos = photos();
    // WHEN one project is imported
    let (report, dataset, out) =
        run(Some(PROJECT), Some(&photos), &ClassMap::default(), None).await;
    let dataset = dataset.expect("annotations.json");

    // THEN the capture (by its global key), the dog (by external id) and the empty photo,
    // oldest first, with the newest label's boxes in COCO [x, y, w, h] and COCO categories
    let capture_file = format!("{CAPTURE}.jpg");
    assert_eq!(
        boxes(&dataset),
        [
            (
                capture_file.clone(),
                vec![
                    ("horse".to_string(), [0.0, 185.0, 158.0, 235.0]),
                    ("horse".to_string(), [398.0, 130.0, 212.0, 240.0]),
                ]
            ),
            ("empty.jpg".to_string(), vec![]),
            (
                "dog.jpg".to_string(),
                vec![
                    ("dog".to_string(), [131.0, 219.0, 178.0, 321.0]),
                    ("bicycle".to_string(), [130.0, 124.0, 437.0, 322.0]),
                ]
            ),
        ]
    );
    // AND the images are copied as they were, named as in the directory
    for image in &dataset.images {
        let name = image.image.file_name.as_ref().unwrap();
        assert_eq!(
            std::fs::read(out.join("images").join(name)).unwrap(),
            std::fs::read(photos.join(name)).unwrap()
        );
    }
    assert_eq!(std::fs::read_dir(out.join("images")).unwrap().count(), 3);
    // AND each says which row and label it is; the capture is known as one
    let first = &dataset.images[0];
    assert_eq!(
        (first.image.width, first.image.height),
        (Some(773), Some(512))
    );
    let p = &first.modelobs;
    assert_eq!(p.capture_id, Some(CaptureId::parse(CAPTURE).unwrap()));
    assert_eq!(
        p.captured_at,
        CaptureId::parse(CAPTURE).unwrap().captured_at()
    );
    assert_eq!(p.label_id, "cllabel0horses0new00001");
    assert_eq!(
        p.label_version,
        "2026-11-26T09:40:00Z"
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
            .timestamp_millis()
    );
    assert_eq!(p.label_source, "labelbox");
    let row = p.labelbox.as_ref().unwrap();
    assert_eq!(
        (row.project_id.as_str(), row.data_row_id.as_str()),
        (PROJECT, "clrow0horses000000000001")
    );
    assert_eq!(
        dataset.images[2].modelobs.capture_id, None,
        "dog-photo is no capture id"
    );

    // AND the re-uploaded dog is a duplicate of the first; the rest are reported by line and row
    assert_eq!(report.outcome.duplicates.len(), 1);
    assert_eq!(report.outcome.duplicates[0].kept, "dog.jpg");
    assert_eq!(report.rows, 9);
    assert_eq!(report.images_not_fetched, 0);
    let problems = problems(&report);
    assert_eq!(problems.len(), 5, "{problems:#?}");
    let why = |line: &str| {
        problems
            .iter()
            .find(|(k, _)| k.starts_with(&format!("line {line}")))
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("line {line} not reported: {problems:#?}"))
    };
    assert!(why("4 (data row clrow0unlabelled").contains("no label in project"));
    assert!(why("5 (data row clrow0polygons").contains("not boxes"));
    assert!(why("6 (data row clrow0unicorn").contains("Unicorn"));
    assert!(why("7 (data row clrow0otherproject").contains("no label in project"));
    assert!(why("9").contains("not JSON"));
    // AND it reads as COCO
    let coco =
        coco_format::parse_dataset(&std::fs::read(out.join("annotations.json")).unwrap()).unwrap();
    assert_eq!(coco.images.len(), 3);
    std::fs::remove_dir_all(&out).unwrap();
    std::fs::remove_dir_all(&photos).unwrap();
}

#[tokio::test]
async fn without_images_rows_are_named_by_their_keys_and_counted_as_not_fetched() {
    let (report, dataset, out) = run(None, None, &ClassMap::default(), None).await;
    let dataset = dataset.unwrap();
    let names: Vec<String> = boxes(&dataset).into_iter().map(|(n, _)| n).collect();
    // Every project's labels; the global key, else the external id, else the data row id.
    assert_eq!(
        names,
        [
            CAPTURE,
            "giraffe.jpg",
            "empty.jpg",
            "dog-photo",
            "clrow0dogagain0000000003"
        ]
    );
    assert_eq!(report.images_not_fetched, 5);
    assert!(
        report.outcome.duplicates.is_empty(),
        "no bytes: nothing to compare"
    );
    assert_eq!(problems(&report).len(), 4);
    assert!(!out.join("images").read_dir().unwrap().any(|_| true));
    std::fs::remove_dir_all(&out).unwrap();
}

#[tokio::test]
async fn classes_are_mapped_as_the_webhook_maps_them() {
    let map = ClassMap::from_json(r#"{"Horse": "zebra", "Unicorn": "horse"}"#).unwrap();
    let (report, dataset, out) = run(Some(PROJECT), None, &map, None).await;
    let all = boxes(&dataset.unwrap());
    let classes: Vec<&str> = all[0].1.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(classes, ["zebra", "zebra"]);
    // The unicorn row now maps (its Horse as zebra too).
    assert!(all.iter().any(|(n, b)| n == "unicorn.jpg" && b.len() == 2));
    assert!(!problems(&report).values().any(|w| w.contains("Unicorn")));
    std::fs::remove_dir_all(&out).unwrap();
}

#[tokio::test]
async fn imports_split_like_exports() {
    let photos = photos();
    let plan = SplitPlan::new(SplitBy::Time, [0.34, 0.33, 0.33]).unwrap();
    let (_, dataset, out) = run(
        Some(PROJECT),
        Some(&photos),
        &ClassMap::default(),
        Some(plan),
    )
    .await;
    let splits: Vec<String> = dataset
        .unwrap()
        .images
        .iter()
        .map(|i| i.image.split.unwrap().to_string())
        .collect();
    assert_eq!(splits, ["train", "validation", "test"]);
    std::fs::remove_dir_all(&out).unwrap();
    std::fs::remove_dir_all(&photos).unwrap();
}
