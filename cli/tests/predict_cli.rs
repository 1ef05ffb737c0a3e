//! `modelobs predict` as a user runs it: real files, the real model, exit codes.
//!
//! Needs `ORT_DYLIB_PATH` (`make test` sets it); without it the tests that
//! run the model print why and pass.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn model() -> String {
    repo()
        .join("models/nanodet/model.json")
        .display()
        .to_string()
}

fn chelsea() -> String {
    repo()
        .join("crates/detector/tests/fixtures/chelsea.png")
        .display()
        .to_string()
}

fn predict(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_modelobs"))
        .arg("predict")
        .args(["--model", &model()])
        .args(args)
        .output()
        .expect("run modelobs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

#[test]
#[ignore = "needs ONNX Runtime (ORT_DYLIB_PATH): make test runs it"]
fn json_is_one_answer_per_image_and_line() {
    modelobs_testkit::require_ort();
    let png = chelsea();
    let out = predict(&["--json", &png, &png]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    let answer: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(answer["model"]["name"], "nanodet-g-416-coco");
    assert_eq!(answer["model"]["version"], "human-models-3.0.4");
    assert_eq!(
        answer["image"],
        serde_json::json!({"width": 451, "height": 300})
    );
    let best = &answer["detections"][0];
    assert_eq!(best["label"], "cat");
    assert_eq!(best["class_id"], 15);
    assert!(best["score"].as_f64().unwrap() > 0.5);
    for k in ["x1", "y1", "x2", "y2"] {
        assert!(best["box"][k].is_f64(), "{k}");
    }
    for k in ["decode", "preprocess", "inference", "postprocess", "total"] {
        assert!(answer["timings_ms"][k].as_f64().unwrap() >= 0.0, "{k}");
    }
    // the second line is the same image: the same detections
    let again: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(again["detections"], answer["detections"]);
}

#[test]
#[ignore = "needs ONNX Runtime (ORT_DYLIB_PATH): make test runs it"]
fn options_reach_the_detector() {
    modelobs_testkit::require_ort();
    let png = chelsea();
    let all = predict(&["--json", "--classes", "all", "--threads", "2", &png]);
    let all: serde_json::Value = serde_json::from_str(stdout(&all).trim()).unwrap();
    let labels: Vec<&str> = all["detections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["label"].as_str().unwrap())
        .collect();
    assert!(labels.contains(&"cell phone"), "{labels:?}");
    let dogs = predict(&["--json", "--classes", "dog,cat", "--threshold", "0.5", &png]);
    let dogs: serde_json::Value = serde_json::from_str(stdout(&dogs).trim()).unwrap();
    let dets = dogs["detections"].as_array().unwrap();
    assert_eq!(dets.len(), 1, "{dets:?}");
    assert_eq!(dets[0]["label"], "cat");
}

#[test]
#[ignore = "needs ONNX Runtime (ORT_DYLIB_PATH): make test runs it"]
fn the_table_names_file_size_and_detections() {
    modelobs_testkit::require_ort();
    let out = predict(&[&chelsea()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("chelsea.png (451x300, image/png)"), "{text}");
    assert!(
        text.lines().any(|l| l.trim_start().starts_with("cat ")),
        "{text}"
    );
    assert!(text.contains("inference"), "{text}");
}

#[test]
#[ignore = "needs ONNX Runtime (ORT_DYLIB_PATH): make test runs it"]
fn a_bad_image_is_exit_2_naming_the_file() {
    modelobs_testkit::require_ort();
    let dir = std::env::temp_dir().join(format!("modelobs-predict-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = dir.join("notes.jpg");
    std::fs::write(&text, "not a picture").unwrap();
    let truncated = dir.join("cut.png");
    let png = std::fs::read(chelsea()).unwrap();
    std::fs::write(&truncated, &png[..png.len() / 2]).unwrap();
    let missing = dir.join("missing.jpg");
    for (path, problem) in [
        (&text, "unsupported image format"),
        (&truncated, "cannot decode image"),
        (&missing, "No such file"),
    ] {
        let out = predict(&[path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(path.to_str().unwrap()) && err.contains(problem),
            "{err}"
        );
    }
    let out = predict(&["--classes", "unicorn", &chelsea()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unicorn"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn without_onnx_runtime_it_says_how_to_get_it() {
    let out = Command::new(env!("CARGO_BIN_EXE_modelobs"))
        .args(["predict", "--model", &model(), &chelsea()])
        .env_remove("ORT_DYLIB_PATH")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("ORT_DYLIB_PATH") && err.contains("make ort"),
        "{err}"
    );
}

/// Runs `modelobs predict` on `image` and waits for it with wait4: its exit
/// code, stderr and peak resident memory in bytes.
#[allow(clippy::zombie_processes)] // reaped by wait4 below, which clippy can't see
fn predict_measured(image: &Path) -> (Option<i32>, String, u64) {
    use std::os::unix::process::ExitStatusExt;
    let child = Command::new(env!("CARGO_BIN_EXE_modelobs"))
        .arg("predict")
        .args(["--model", &model()])
        .arg(image)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run modelobs");
    let pid = child.id() as libc::pid_t;
    let mut stderr_pipe = child.stderr.expect("piped");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut stderr_pipe, &mut err).unwrap();
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills; pid is our unwaited child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4: {}", std::io::Error::last_os_error());
    let code = std::process::ExitStatus::from_raw(status).code();
    (code, err, usage.ru_maxrss as u64 * 1024) // Linux: kilobytes
}

#[test]
#[ignore = "needs ONNX Runtime (ORT_DYLIB_PATH): make test runs it"]
fn decompression_bombs_are_refused_in_bounded_memory() {
    modelobs_testkit::require_ort();
    let dir = modelobs_testkit::temp_dir("predict-bombs");
    std::fs::create_dir_all(&dir).unwrap();
    // GIVEN a bomb in every format, the PNG metadata ones inflating to 2 GiB
    // (a 2 MB file: what took 2.1 GB of memory before decoding was bounded)
    for bomb in modelobs_testkit::bombs::all(2 << 30) {
        let path = dir.join(bomb.name.replace(' ', "-"));
        std::fs::write(&path, &bomb.bytes).unwrap();
        // WHEN `modelobs predict` is run on it
        let (code, err, peak) = predict_measured(&path);
        // THEN it is refused as too large (exit 2), in well under 300 MB in
        // all: the model and runtime loaded, no pixels or metadata inflated
        println!(
            "{:<44} {:>9} bytes  peak RSS {:>4} MB",
            bomb.name,
            bomb.bytes.len(),
            peak >> 20
        );
        assert_eq!(code, Some(2), "{}: {err}", bomb.name);
        assert!(
            err.contains("pixels, over the limit") || err.contains("image refused"),
            "{}: {err}",
            bomb.name
        );
        assert!(
            peak < 300 << 20,
            "{}: peak RSS {} MB",
            bomb.name,
            peak >> 20
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}
