//! The model registry over the in-memory store: push, list, show, pull,
//! promote, and what each refuses.

use std::path::{Path, PathBuf};

use chrono::{TimeZone, Utc};
use modelobs_adapters::memory::MemoryStore;
use modelobs_adapters::{ObjectStore, PutCondition};
use modelobs_core::drift::ProfileSummary;
use modelobs_core::records::{self, ModelRef, ProfileReference};
use modelobs_pipeline::profiles::{
    REFERENCE_FILE, ReferencePushed, push_reference, read_reference, write_reference,
};
use modelobs_pipeline::registry::{
    self, Pushed, RegistryError, parse_reference, promote, pull, push,
};
use sha2::{Digest, Sha256};

/// A model directory with the serving model's metadata, version `version`,
/// and `bytes` as its (small) model file.
fn model_dir(root: &Path, version: &str, bytes: &[u8]) -> PathBuf {
    let dir = root.join(version);
    std::fs::create_dir_all(&dir).unwrap();
    let mut meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(modelobs_testkit::repo_root().join("models/nanodet/model.json")).unwrap(),
    )
    .unwrap();
    meta["version"] = version.into();
    meta["file"] = "weights.onnx".into();
    meta["size_bytes"] = (bytes.len() as u64).into();
    meta["sha256"] = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .into();
    meta["parent"] = serde_json::json!({"name": "nanodet-g-416-coco", "version": "base"});
    std::fs::write(dir.join("weights.onnx"), bytes).unwrap();
    std::fs::write(
        dir.join("model.json"),
        serde_json::to_vec_pretty(&meta).unwrap(),
    )
    .unwrap();
    dir
}

fn name_of(dir: &Path) -> ModelRef {
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("model.json")).unwrap()).unwrap();
    ModelRef {
        name: meta["name"].as_str().unwrap().into(),
        version: meta["version"].as_str().unwrap().into(),
    }
}

#[tokio::test]
async fn a_pushed_version_lists_shows_and_pulls_byte_for_byte() {
    let tmp = modelobs_testkit::temp_dir(module_path!());
    let store = MemoryStore::new();
    let dir = model_dir(tmp.as_path(), "ft-a", b"onnx bytes of a");
    let model = name_of(&dir);

    let (entry, pushed) = push(&store, &dir).await.unwrap();
    assert_eq!(pushed, Pushed::Uploaded);
    assert_eq!(entry.reference(), model);
    assert_eq!(entry.parent().as_deref(), Some("nanodet-g-416-coco/base"));
    // Idempotent: the same bytes again change nothing.
    assert_eq!(push(&store, &dir).await.unwrap().1, Pushed::AlreadyThere);

    let listed = registry::list(&store).await.unwrap();
    assert_eq!(
        listed.iter().map(|m| m.reference()).collect::<Vec<_>>(),
        std::slice::from_ref(&model)
    );
    assert_eq!(registry::show(&store, &model).await.unwrap(), entry);

    let out = tmp.as_path().join("pulled");
    let pulled = pull(&store, &model, &out).await.unwrap();
    assert_eq!(pulled, out.join(&model.name).join("ft-a"));
    for f in ["model.json", "weights.onnx"] {
        assert_eq!(
            std::fs::read(pulled.join(f)).unwrap(),
            std::fs::read(dir.join(f)).unwrap(),
            "{f}"
        );
    }
    // A second pull reuses what is there.
    assert_eq!(pull(&store, &model, &out).await.unwrap(), pulled);
}

#[tokio::test]
async fn a_version_never_changes_once_pushed() {
    let tmp = modelobs_testkit::temp_dir(module_path!());
    let store = MemoryStore::new();
    push(&store, &model_dir(tmp.as_path(), "ft-a", b"first"))
        .await
        .unwrap();
    let other = model_dir(&tmp.as_path().join("again"), "ft-a", b"second");
    let err = push(&store, &other).await.unwrap_err();
    assert!(matches!(err, RegistryError::VersionExists { .. }), "{err}");
}

#[tokio::test]
async fn bytes_that_do_not_match_model_json_are_refused_both_ways() {
    let tmp = modelobs_testkit::temp_dir(module_path!());
    let store = MemoryStore::new();
    let dir = model_dir(tmp.as_path(), "ft-a", b"good bytes");
    std::fs::write(dir.join("weights.onnx"), b"tampered!!").unwrap();
    let err = push(&store, &dir).await.unwrap_err();
    assert!(err.to_string().contains("sha256"), "{err}");
    assert!(store.keys().is_empty(), "nothing uploaded");

    // Stored bytes tampered with after the push: the pull refuses and writes nothing.
    std::fs::write(dir.join("weights.onnx"), b"good bytes").unwrap();
    let (entry, _) = push(&store, &dir).await.unwrap();
    let key = format!("models/{}/ft-a/weights.onnx", entry.name);
    store
        .put(
            &key,
            bytes::Bytes::from_static(b"evil bytes"),
            "application/octet-stream",
            PutCondition::Always,
        )
        .await
        .unwrap();
    let out = tmp.as_path().join("pulled");
    let err = pull(&store, &entry.reference(), &out).await.unwrap_err();
    assert!(err.to_string().contains("sha256"), "{err}");
    assert!(!out.join(&entry.name).join("ft-a/model.json").exists());
}

#[tokio::test]
async fn promotion_needs_a_registered_version_and_records_the_previous_one() {
    let tmp = modelobs_testkit::temp_dir(module_path!());
    let store = MemoryStore::new();
    let a = name_of(&model_dir(tmp.as_path(), "ft-a", b"a"));
    let missing = promote(&store, &a, None, Utc::now()).await.unwrap_err();
    assert!(matches!(missing, RegistryError::NotFound(_)), "{missing}");

    push(&store, &tmp.as_path().join("ft-a")).await.unwrap();
    push(&store, &model_dir(tmp.as_path(), "ft-b", b"b"))
        .await
        .unwrap();
    let b = name_of(&tmp.as_path().join("ft-b"));
    let t = Utc.with_ymd_and_hms(2026, 12, 2, 12, 0, 0).unwrap();
    let first = promote(&store, &a, Some("backtest: better".into()), t)
        .await
        .unwrap();
    assert_eq!(first.previous, None);
    let second = promote(&store, &b, None, t).await.unwrap();
    assert_eq!(second.previous, Some(a.clone()));
    let (now, _) = registry::promoted(&store, &a.name).await.unwrap().unwrap();
    assert_eq!(now.model, b);
    // Promoting the promoted version again is a no-op, not a new record.
    assert_eq!(promote(&store, &b, None, Utc::now()).await.unwrap(), second);
}

#[test]
fn references_are_name_slash_version() {
    assert_eq!(
        parse_reference("nanodet/ft-1").unwrap(),
        ModelRef {
            name: "nanodet".into(),
            version: "ft-1".into()
        }
    );
    for bad in ["nanodet", "nanodet/", "/v1", "a/b/c", "a/..", "a b/v1"] {
        assert!(parse_reference(bad).is_err(), "{bad}");
    }
}

fn reference_of(model: &ModelRef, source: &str) -> ProfileReference {
    ProfileReference {
        model: model.clone(),
        source: source.into(),
        created_at: Utc.with_ymd_and_hms(2026, 12, 2, 12, 0, 0).unwrap(),
        summary: ProfileSummary::default(),
    }
}

#[tokio::test]
async fn a_model_directory_brings_its_drift_reference_unless_one_is_pinned() {
    let tmp = modelobs_testkit::temp_dir(module_path!());
    let store = MemoryStore::new();
    let dir = model_dir(tmp.as_path(), "ft-a", b"a");
    let (entry, _) = push(&store, &dir).await.unwrap();
    // None in the directory: nothing stored.
    assert_eq!(
        push_reference(&store, &dir, &entry.reference())
            .await
            .unwrap(),
        ReferencePushed::None
    );
    assert_eq!(read_reference(&store, "ft-a").await.unwrap(), None);

    let brought = reference_of(&entry.reference(), "training set: dataset d split train");
    std::fs::write(dir.join(REFERENCE_FILE), records::to_json(&brought)).unwrap();
    let key = "profiles/reference/ft-a.json".to_string();
    assert_eq!(
        push_reference(&store, &dir, &entry.reference())
            .await
            .unwrap(),
        ReferencePushed::Stored(key.clone())
    );
    assert_eq!(read_reference(&store, "ft-a").await.unwrap(), Some(brought));

    // A reference pinned since (modelobs drift reference) is not replaced.
    let pinned = reference_of(&entry.reference(), "captures 2026-12-01..2026-12-02");
    write_reference(&store, &pinned).await.unwrap();
    assert_eq!(
        push_reference(&store, &dir, &entry.reference())
            .await
            .unwrap(),
        ReferencePushed::Kept(key)
    );
    assert_eq!(read_reference(&store, "ft-a").await.unwrap(), Some(pinned));
}

#[tokio::test]
async fn a_reference_of_another_version_is_refused() {
    let tmp = modelobs_testkit::temp_dir(module_path!());
    let store = MemoryStore::new();
    let dir = model_dir(tmp.as_path(), "ft-b", b"b");
    let (entry, _) = push(&store, &dir).await.unwrap();
    let other = ModelRef {
        version: "ft-a".into(),
        ..entry.reference()
    };
    std::fs::write(
        dir.join(REFERENCE_FILE),
        records::to_json(&reference_of(&other, "x")),
    )
    .unwrap();
    let err = push_reference(&store, &dir, &entry.reference())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("the reference is for")
            && err.to_string().contains("--training-set"),
        "{err}"
    );
    assert_eq!(read_reference(&store, "ft-b").await.unwrap(), None);
    assert_eq!(read_reference(&store, "ft-a").await.unwrap(), None);
}
