//! `modelobs eval` as a user runs it: real files, a real process, exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn modelobs(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_modelobs"))
        .args(args)
        .output()
        .expect("run modelobs")
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("modelobs-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const GT: &str = r#"{"images":[{"id":1},{"id":2}],
 "annotations":[{"id":1,"image_id":1,"category_id":18,"bbox":[10,10,100,80],"area":8000,"iscrowd":0},
                {"id":2,"image_id":2,"category_id":18,"bbox":[0,0,20,20],"area":400,"iscrowd":0}],
 "categories":[{"id":18,"name":"dog"},{"id":17,"name":"cat"}]}"#;

#[test]
fn json_output_has_every_stat_and_class() {
    let dir = tempdir("json");
    let gt = write(&dir, "gt.json", GT);
    let dt = write(
        &dir,
        "dt.json",
        r#"[{"image_id":1,"category_id":18,"bbox":[10,10,100,80],"score":0.9},
            {"image_id":2,"category_id":17,"bbox":[0,0,20,20],"score":0.8}]"#,
    );
    let out = modelobs(&[
        "eval",
        "--gt",
        gt.to_str().unwrap(),
        "--dt",
        dt.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl",
    ] {
        assert!(v[key].is_number(), "{key} in {v}");
    }
    // One dog of two found (the other was called a cat): recall .5, precision 1.
    assert_eq!(v["AR100"], 0.5);
    assert_eq!(v["APs"], 0.0);
    let dog_ap50 = v["per_class"]["dog"]["AP50"].as_f64().unwrap();
    assert!((dog_ap50 - 51.0 / 101.0).abs() < 1e-12, "{dog_ap50}");
    assert_eq!(
        v["per_class"]["cat"]["AP"], -1.0,
        "no cat in the ground truth"
    );

    let table = modelobs(&[
        "eval",
        "--gt",
        gt.to_str().unwrap(),
        "--dt",
        dt.to_str().unwrap(),
    ]);
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(
        text.contains(
            "Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] = 0.505"
        ),
        "{text}"
    );
}

#[test]
fn bad_files_exit_2_naming_the_file_and_the_problem() {
    let dir = tempdir("bad");
    let gt = write(&dir, "gt.json", GT);
    let truncated = write(&dir, "truncated.json", r#"[{"image_id":1,"#);
    let unknown_image = write(
        &dir,
        "unknown.json",
        r#"[{"image_id":42,"category_id":18,"bbox":[0,0,1,1],"score":0.5}]"#,
    );
    let not_gt = write(&dir, "list.json", "[]");
    let missing = dir.join("nope.json");
    let cases = [
        (gt.clone(), missing.clone(), "nope.json", "No such file"),
        (gt.clone(), truncated.clone(), "truncated.json", "line 1"),
        (
            gt.clone(),
            unknown_image.clone(),
            "unknown.json",
            "image 42",
        ),
        (
            not_gt.clone(),
            unknown_image.clone(),
            "list.json",
            "ground-truth",
        ),
    ];
    for (g, d, file, problem) in cases {
        let out = modelobs(&[
            "eval",
            "--gt",
            g.to_str().unwrap(),
            "--dt",
            d.to_str().unwrap(),
            "--json",
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{file}: {err}");
        assert!(err.contains(file) && err.contains(problem), "{file}: {err}");
        assert!(out.stdout.is_empty());
    }
}
