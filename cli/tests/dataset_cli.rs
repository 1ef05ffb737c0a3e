//! `modelobs dataset import-labelbox` as a user runs it: the documented export
//! shape (events/labelbox), a directory of photos, exit codes, and a dataset
//! `modelobs eval` reads. (`dataset export` needs a bucket: dataset_localstack.rs.)

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use modelobs_core::export::ExportedDataset;
use serde_json::{Value, json};
use support::{eval, modelobs, repo_root};

const PROJECT: &str = "cltd3vkju021907u63w2odj69";

/// `modelobs dataset import-labelbox` of the fixture into `out`, and `more`.
fn import(out: &Path, more: &[&str]) -> Output {
    let fixture = repo_root().join("events/labelbox/project-export.ndjson");
    let mut args = vec![
        "dataset",
        "import-labelbox",
        "--export",
        fixture.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(more);
    modelobs(&args)
}

fn photos(dir: &Path) -> PathBuf {
    let photos = dir.join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    for name in [
        "01a216ce-1102-7c4e-9a52-4d8e2f6a1b90.jpg",
        "dog.jpg",
        "empty.jpg",
    ] {
        std::fs::write(photos.join(name), format!("bytes of {name}")).unwrap();
    }
    photos
}

#[test]
fn an_import_is_a_dataset_that_evaluates_against_itself_perfectly() {
    let work = modelobs_testkit::temp_dir("import-cli");
    let photos = photos(&work);
    let out = work.join("dataset");
    let run = import(
        &out,
        &[
            "--project-id",
            PROJECT,
            "--images",
            photos.to_str().unwrap(),
            "--split-by",
            "hash",
        ],
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
    );
    assert!(run.status.success(), "{stdout}\n{stderr}");
    // Skips are named on stderr as they happen, and counted in the summary.
    for row in [
        "clrow0unlabelled00000004",
        "clrow0polygons0000000005",
        "clrow0unicorn00000000006",
        "clrow0otherproject000007",
    ] {
        assert!(
            stderr.contains(&format!("(data row {row})")),
            "{row}: {stderr}"
        );
    }
    assert!(stderr.contains("skipped line 9"), "{stderr}");
    assert!(stdout.contains("skipped: 5"), "{stdout}");
    assert!(stdout.contains("duplicates dropped: 1"), "{stdout}");

    let annotations = out.join("annotations.json");
    let dataset: ExportedDataset =
        serde_json::from_slice(&std::fs::read(&annotations).unwrap()).unwrap();
    assert_eq!(dataset.images.len(), 3);
    assert!(dataset.images.iter().all(|i| i.image.split.is_some()));
    assert!(stdout.contains(&format!("{} objects", dataset.annotations.len())));

    // The labels as detections of score 1: a dataset whose ids, boxes and
    // categories agree with themselves scores AP 1.
    let results: Vec<Value> = dataset
        .annotations
        .iter()
        .map(|a| json!({"image_id": a.image_id, "category_id": a.category_id, "bbox": a.bbox, "score": 1.0}))
        .collect();
    let summary = eval(&annotations, &results);
    assert_eq!(summary["AP"], 1.0, "{summary}");
    std::fs::remove_dir_all(&work).unwrap();
}

#[test]
fn nothing_to_import_fails_and_bad_shares_are_a_usage_error() {
    let work = modelobs_testkit::temp_dir("import-cli-none");
    let out = work.join("dataset");
    let run = import(&out, &["--project-id", "no-such-project"]);
    assert_eq!(run.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("no label in project no-such-project"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing written"), "{stderr}");
    assert!(!out.join("annotations.json").exists());

    let run = import(&out, &["--split-by", "time", "--split", "0.5,0.5,0.5"]);
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("add up to 1"));
    let _ = std::fs::remove_dir_all(&work);
}
