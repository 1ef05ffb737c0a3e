//! `modelobs model check DIR` as a user runs it: a good model of each kind
//! passes and says what it found; each kind of model.json / ONNX mismatch
//! exits non-zero naming the model.json field and the fix.
//!
//! Needs `ORT_DYLIB_PATH` and `MODELOBS_FAMILIES_DIR` (`make families`): ignored
//! by a plain `cargo test`, failing when run without them (`make test` sets both).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn check(dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_modelobs"))
        .args(["model", "check"])
        .arg(dir)
        // The check needs no bucket: a set one must not matter, an unset one neither.
        .env_remove("DATA_BUCKET")
        .output()
        .expect("run modelobs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn family(name: &str) -> PathBuf {
    modelobs_testkit::require_families().join(name)
}

/// `from`'s model.json changed by `edit`, in a new directory, pointing at
/// `from`'s ONNX file.
fn edited(from: &Path, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let dir = modelobs_testkit::temp_dir("model-check");
    std::fs::create_dir_all(&dir).unwrap();
    let mut meta: Value =
        serde_json::from_slice(&std::fs::read(from.join("model.json")).unwrap()).unwrap();
    let onnx = from.join(meta["file"].as_str().unwrap());
    meta["file"] = onnx.canonicalize().unwrap().to_str().unwrap().into();
    edit(&mut meta);
    std::fs::write(dir.join("model.json"), serde_json::to_vec(&meta).unwrap()).unwrap();
    dir
}

#[test]
#[ignore = "needs ONNX Runtime and the family models (make families): make test runs it"]
fn good_models_pass_and_say_what_they_are() {
    modelobs_testkit::require_ort();
    let nanodet = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/nanodet");
    for (dir, family, names) in [
        (nanodet, "gfl", "model.json"),
        (family("yolov8"), "yolov8", "the ONNX file's names metadata"),
        (family("ssd"), "tf_od", "model.json"),
    ] {
        let out = check(&dir);
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "{}: {}{stdout}",
            dir.display(),
            text(&out.stderr)
        );
        assert!(
            stdout.contains(&format!("{family} decode, 80 classes, names from {names}")),
            "{stdout}"
        );
        assert!(
            stdout.contains("  output \"") && stdout.contains("ok: a grey 640x480 JPEG gave"),
            "{stdout}"
        );
    }
}

#[test]
#[ignore = "needs ONNX Runtime and the family models (make families): make test runs it"]
fn each_mismatch_exits_non_zero_naming_the_field_and_the_fix() {
    modelobs_testkit::require_ort();
    type Edit = fn(&mut Value);
    let cases: [(&str, Edit, &[&str]); 6] = [
        (
            "yolov8",
            |m| m["input"]["name"] = "input".into(),
            &["input.name \"input\": the model has no such input; it has: [\"images\"]"],
        ),
        (
            "yolov8",
            |m| m["outputs"][0]["name"] = "output".into(),
            &["outputs[0].name \"output\": the model has no such output; it has: [\"output0\"]"],
        ),
        (
            "yolov5",
            |m| {
                m["decode"]["num_classes"] = 81.into();
                m["labels"].as_array_mut().unwrap().push("unicorn".into());
            },
            &["decode.num_classes:", "holds 80 classes"],
        ),
        (
            "yolov8",
            |m| {
                m["input"]["width"] = 640.into();
                m["input"]["height"] = 640.into();
            },
            &["input.width/input.height:", "[1, 3, 640, 640]"],
        ),
        (
            "yolov5",
            |m| m["decode"]["type"] = "yolov8".into(),
            &["decode.type:", "set decode.type to \"yolov5\""],
        ),
        (
            "ssd",
            |m| m["labels"].as_array_mut().unwrap().truncate(79),
            &["decode.num_classes 80 and 79 labels disagree"],
        ),
    ];
    for (name, edit, want) in cases {
        // GIVEN a good model.json with one thing wrong
        let dir = edited(&family(name), edit);
        // WHEN it is checked THEN it fails with the field and the fix
        let out = check(&dir);
        let stderr = text(&out.stderr);
        assert!(
            !out.status.success(),
            "{name}: passed: {}",
            text(&out.stdout)
        );
        for w in want {
            assert!(stderr.contains(w), "{name}: {w:?} not in {stderr}");
        }
        // said once, not repeated by the error chain
        assert_eq!(stderr.matches(want[0]).count(), 1, "{stderr}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
