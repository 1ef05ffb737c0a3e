//! What the `modelobs dataset` tests share: the binary, run from the
//! repository root, and `modelobs eval` on a dataset it wrote.
// Each test binary compiles this module and uses only some of it.
#![allow(dead_code)]

pub mod dev;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `modelobs ARGS` without the caller's CLASS_MAP.
pub fn modelobs(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_modelobs"))
        .args(args)
        .current_dir(repo_root())
        .env_remove("CLASS_MAP")
        .output()
        .expect("running modelobs")
}

/// `modelobs ARGS`, which must succeed: its stdout and stderr.
pub fn succeeded(args: &[&str]) -> (String, String) {
    let out = modelobs(args);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        out.status.success(),
        "modelobs {args:?}: {}\n{stdout}\n{stderr}",
        out.status
    );
    (stdout, stderr)
}

/// `modelobs eval --json` of `results` (written beside) against the dataset at `gt`.
pub fn eval(gt: &Path, results: &[Value]) -> Value {
    let dt = gt.with_file_name("results.json");
    std::fs::write(&dt, serde_json::to_vec(results).unwrap()).unwrap();
    let (stdout, _) = succeeded(&[
        "eval",
        "--gt",
        gt.to_str().unwrap(),
        "--dt",
        dt.to_str().unwrap(),
        "--json",
    ]);
    serde_json::from_str(&stdout).unwrap()
}

/// The serving model (`models/nanodet`) copied into `dir` under another
/// `version`, its `model.json` changed by `edit`: a model a test can register,
/// serve or backtest without training one.
pub fn model_variant(dir: &Path, version: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let base = repo_root().join("models/nanodet");
    let mut meta: Value =
        serde_json::from_slice(&std::fs::read(base.join("model.json")).unwrap()).unwrap();
    meta["version"] = version.into();
    edit(&mut meta);
    std::fs::copy(base.join("nanodet.onnx"), dir.join("nanodet.onnx")).unwrap();
    std::fs::write(
        dir.join("model.json"),
        serde_json::to_vec_pretty(&meta).unwrap(),
    )
    .unwrap();
    dir.to_path_buf()
}
