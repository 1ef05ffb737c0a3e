//! `modelobs backtest` on real photos with the real model: the numbers are
//! `modelobs eval`'s on the files it writes, a model equals itself, trained-on
//! images are never judged, and groups come from the images' provenance and
//! the simulator's truth file.
//!
//! Needs ONNX Runtime (`ORT_DYLIB_PATH`): `#[ignore]`d with the reason, run by
//! `make test` (`--include-ignored`), failing without it.

use std::path::{Path, PathBuf};

use chrono::{Duration, TimeZone, Utc};
use modelobs_core::records::CaptureId;
use serde_json::{Value, json};

mod support;

use support::{model_variant, succeeded};

fn repo() -> PathBuf {
    support::repo_root()
}

fn modelobs(args: &[&str]) -> String {
    succeeded(args).0
}

fn sha256(path: &Path) -> String {
    modelobs_core::export::sha256_hex(&std::fs::read(path).unwrap())
}

/// The serving model with another version, score threshold and training
/// images: a different model in every way a backtest can see.
fn variant(dir: &Path, version: &str, threshold: f64, trained_on: &[String]) -> PathBuf {
    model_variant(dir, version, |meta| {
        meta["postprocess"]["score_threshold"] = threshold.into();
        meta["dataset"] = json!({"images_sha256": trained_on});
    })
}

/// datasets/animals as `modelobs dataset export` would write it: images under
/// `images/`, each with a capture id and time (over two days), and a truth
/// file naming a drift condition per capture.
fn exported_animals(dir: &Path) -> (PathBuf, PathBuf) {
    let src = repo().join("datasets/animals");
    let mut coco: Value =
        serde_json::from_slice(&std::fs::read(src.join("annotations.json")).unwrap()).unwrap();
    std::fs::create_dir_all(dir.join("images")).unwrap();
    let t0 = Utc.with_ymd_and_hms(2026, 11, 20, 6, 0, 0).unwrap();
    let mut truth = String::new();
    for (i, image) in coco["images"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .enumerate()
    {
        let file = image["file_name"].as_str().unwrap().to_string();
        std::fs::copy(src.join(&file), dir.join("images").join(&file)).unwrap();
        let at = t0 + Duration::hours(2 * i as i64);
        let id = CaptureId::new(at);
        image["modelobs"] = json!({
            "capture_id": id, "captured_at": at,
            "label_id": format!("l{i}"), "label_version": 1, "label_source": "local"
        });
        let condition = if i % 3 == 0 { "dark" } else { "clean" };
        truth.push_str(
            &serde_json::to_string(&json!({
                "id": id, "captured_at": at, "file": file, "transforms": "",
                "condition": condition, "width": 1, "height": 1, "objects": []
            }))
            .unwrap(),
        );
        truth.push('\n');
    }
    std::fs::write(
        dir.join("annotations.json"),
        serde_json::to_vec(&coco).unwrap(),
    )
    .unwrap();
    let truth_path = dir.join("truth.jsonl");
    std::fs::write(&truth_path, truth).unwrap();
    (dir.to_path_buf(), truth_path)
}

fn eval(gt: &Path, dt: &Path) -> Value {
    let out = modelobs(&[
        "eval",
        "--gt",
        gt.to_str().unwrap(),
        "--dt",
        dt.to_str().unwrap(),
        "--json",
    ]);
    serde_json::from_str(&out).unwrap()
}

#[test]
#[ignore = "needs ONNX Runtime (ORT_DYLIB_PATH): make test runs it"]
fn backtest_numbers_are_modelobs_evals_and_groups_follow_provenance() {
    modelobs_testkit::require_ort();
    let tmp = modelobs_testkit::temp_dir("backtest");
    let (data, truth) = exported_animals(&tmp.join("data"));
    // Trained on two of the photos: they must not be judged.
    let images: Vec<PathBuf> = std::fs::read_dir(data.join("images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let mut names: Vec<PathBuf> = images.clone();
    names.sort();
    let trained: Vec<String> = names[..2].iter().map(|p| sha256(p)).collect();
    let candidate = variant(&tmp.join("strict"), "strict-0.5", 0.5, &trained);
    let out = tmp.join("out");
    let report: Value = serde_json::from_str(&modelobs(&[
        "backtest",
        "--candidate",
        candidate.to_str().unwrap(),
        "--baseline",
        repo().join("models/nanodet").to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--truth",
        truth.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--replicates",
        "300",
        "--json",
    ]))
    .unwrap();

    assert_eq!(report["excluded"].as_array().unwrap().len(), 2, "{report}");
    let judged = names.len() - 2;
    assert_eq!(report["images"], judged);
    let gt: Value = serde_json::from_slice(&std::fs::read(out.join("gt.json")).unwrap()).unwrap();
    assert_eq!(gt["images"].as_array().unwrap().len(), judged);

    // The same numbers as `modelobs eval` on the files it wrote, for both models.
    let c = &report["comparison"];
    for (model, file) in [
        ("baseline", "baseline.json"),
        ("candidate", "candidate.json"),
    ] {
        let e = eval(&out.join("gt.json"), &out.join(file));
        for k in ["AP50", "AP"] {
            assert_eq!(
                c["overall"][model][k], e[k],
                "{model} {k}: report {} vs eval {}",
                c["overall"][model][k], e[k]
            );
        }
        assert_eq!(
            c[format!("{model}_summary")],
            e,
            "{model}: the whole summary"
        );
    }
    // A stricter threshold loses recall: AP50 drops, and the verdict follows the rule.
    let d = &c["overall"]["delta"]["ap50"];
    let (delta, low, high) = (
        d["delta"].as_f64().unwrap(),
        d["low"].as_f64().unwrap(),
        d["high"].as_f64().unwrap(),
    );
    assert!(delta < 0.0, "{report}");
    assert!(low <= delta && delta <= high);
    let verdict = c["verdict"].as_str().unwrap();
    assert_eq!(verdict, if high < 0.0 { "worse" } else { "inconclusive" });

    // Groups: two days, two conditions, the test/train/validation splits.
    let groups: Vec<&str> = c["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["group"].as_str().unwrap())
        .collect();
    for want in [
        "condition=clean",
        "condition=dark",
        "day=2026-11-20",
        "day=2026-11-21",
    ] {
        assert!(groups.contains(&want), "{want} in {groups:?}");
    }
    let in_conditions: u64 = c["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["group"].as_str().unwrap().starts_with("condition="))
        .map(|g| g["images"].as_u64().unwrap())
        .sum();
    assert_eq!(in_conditions, judged as u64);
}

#[test]
#[ignore = "needs ONNX Runtime (ORT_DYLIB_PATH): make test runs it"]
fn a_model_against_itself_differs_by_nothing_and_is_not_called_better() {
    modelobs_testkit::require_ort();
    let tmp = modelobs_testkit::temp_dir("backtest-self");
    let same = variant(&tmp.join("same"), "same", 0.2, &[]);
    let out = tmp.join("out");
    let report: Value = serde_json::from_str(&modelobs(&[
        "backtest",
        "--candidate",
        same.to_str().unwrap(),
        "--data",
        repo().join("datasets/animals").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--replicates",
        "200",
        "--json",
    ]))
    .unwrap();
    let d = &report["comparison"]["overall"]["delta"];
    for k in ["ap50", "ap"] {
        for end in ["delta", "low", "high"] {
            assert_eq!(d[k][end], 0.0, "{k} {end}: {d}");
        }
    }
    assert_eq!(report["comparison"]["verdict"], "inconclusive");
    assert!(report["excluded"].as_array().unwrap().is_empty());
    // The table names the verdict and the files.
    let table = modelobs(&[
        "backtest",
        "--candidate",
        same.to_str().unwrap(),
        "--data",
        repo().join("datasets/animals").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--replicates",
        "50",
    ]);
    assert!(table.contains("verdict: inconclusive"), "{table}");
    assert!(table.contains("split=test"), "{table}");
}
