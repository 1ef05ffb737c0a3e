//! The model registry in the data bucket: `models/<name>/<version>/` holds a
//! model directory as the detector loads it (`model.json` and the file it
//! names), `models/<name>/promoted.json` the version chosen to serve.
//!
//! - A version is immutable: its files are written with `If-None-Match`, the
//!   model file first and `model.json` last, so a listed version is complete.
//!   Pushing the same bytes again is a no-op; different bytes under a pushed
//!   version are refused.
//! - Every byte is checked against `model.json`'s sha256 and size: before a
//!   push uploads, and before a pull writes anything to disk.
//! - A promotion is written with `If-Match` on the promotion it read (or
//!   `If-None-Match` for the first), so of two at once one wins and the other
//!   is told.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use modelobs_adapters::{ObjectStore, PutCondition, PutOutcome, StoreError};
use modelobs_core::export::sha256_hex;
use modelobs_core::records::{self, ModelRef, Promotion};
use modelobs_core::{CoreError, keys};
use modelobs_detector::ModelMetadata;
use serde::Serialize;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum RegistryError {
    #[error("{path}: {problem}")]
    BadModelDir { path: String, problem: String },
    #[error("{key}: {problem}")]
    BadStored { key: String, problem: String },
    #[error("{0} is not in the registry")]
    NotFound(String),
    #[error(
        "{reference} is already in the registry with other bytes ({key}); a version never changes: push under a new version"
    )]
    VersionExists { reference: String, key: String },
    #[error("{0}: another promotion was written while this one ran; read it and promote again")]
    PromotionRaced(String),
    #[error("{0:?} is not <name>/<version>")]
    BadReference(String),
    #[error(transparent)]
    Key(#[from] CoreError),
    #[error(transparent)]
    Store(#[from] StoreError),
    // `cause`, not `source`: the message says it once (a source would be printed again).
    #[error("{path}: {cause}")]
    Io { path: String, cause: std::io::Error },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError + '_ {
    move |cause| RegistryError::Io {
        path: path.display().to_string(),
        cause,
    }
}

/// `<name>/<version>`, as configuration and the CLI spell a registry version.
pub fn parse_reference(s: &str) -> Result<ModelRef, RegistryError> {
    let (name, version) = s
        .trim()
        .split_once('/')
        .ok_or_else(|| RegistryError::BadReference(s.to_string()))?;
    let ok = keys::check_segment(name).is_ok() && keys::check_segment(version).is_ok();
    if !ok {
        return Err(RegistryError::BadReference(s.to_string()));
    }
    Ok(ModelRef {
        name: name.to_string(),
        version: version.to_string(),
    })
}

fn reference(m: &ModelRef) -> String {
    format!("{}/{}", m.name, m.version)
}

/// The model file's bytes match what `model.json` says of them.
fn check_bytes(model: &RegisteredModel, bytes: &[u8]) -> Result<(), String> {
    let sha = sha256_hex(bytes);
    if !sha.eq_ignore_ascii_case(&model.sha256) {
        return Err(format!("sha256 {sha}, model.json says {}", model.sha256));
    }
    if bytes.len() as u64 != model.size_bytes {
        return Err(format!(
            "{} bytes, model.json says {}",
            bytes.len(),
            model.size_bytes
        ));
    }
    Ok(())
}

/// One registered version, as `list` and `show` describe it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegisteredModel {
    pub name: String,
    pub version: String,
    pub file: String,
    pub sha256: String,
    pub size_bytes: u64,
    /// `model.json` as stored (parent, dataset, training when it is a fine-tune).
    pub metadata: serde_json::Value,
}

impl RegisteredModel {
    pub fn reference(&self) -> ModelRef {
        ModelRef {
            name: self.name.clone(),
            version: self.version.clone(),
        }
    }

    /// `metadata.parent` as `<name>/<version>`, when the model says it has one.
    pub fn parent(&self) -> Option<String> {
        let p = self.metadata.get("parent")?;
        Some(format!(
            "{}/{}",
            p.get("name")?.as_str()?,
            p.get("version")?.as_str()?
        ))
    }
}

/// A `model.json` as the registry describes it; the problem when it does not parse.
fn registered(body: &[u8]) -> Result<RegisteredModel, String> {
    let meta = ModelMetadata::from_json(body)?;
    let metadata = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    Ok(RegisteredModel {
        name: meta.name,
        version: meta.version,
        file: meta.file,
        sha256: meta.sha256,
        size_bytes: meta.size_bytes,
        metadata,
    })
}

fn stored(key: &str, body: &[u8]) -> Result<RegisteredModel, RegistryError> {
    registered(body).map_err(|problem| RegistryError::BadStored {
        key: key.to_string(),
        problem,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Uploaded,
    /// The same bytes were there already.
    AlreadyThere,
}

/// Uploads the model directory `dir` (its `model.json` and the file it names)
/// as `models/<name>/<version>/`, name and version from `model.json`.
pub async fn push<S: ObjectStore>(
    store: &S,
    dir: &Path,
) -> Result<(RegisteredModel, Pushed), RegistryError> {
    let json_path = dir.join("model.json");
    let json = tokio::fs::read(&json_path).await.map_err(io(&json_path))?;
    let entry = registered(&json).map_err(|problem| RegistryError::BadModelDir {
        path: json_path.display().to_string(),
        problem,
    })?;
    let file_name = Path::new(&entry.file)
        .file_name()
        .and_then(|f| f.to_str())
        .filter(|f| *f == entry.file)
        .ok_or_else(|| RegistryError::BadModelDir {
            path: json_path.display().to_string(),
            problem: format!(
                "file {:?}: the registry keeps a model's file beside its model.json",
                entry.file
            ),
        })?
        .to_string();
    let model_path = dir.join(&file_name);
    let model = tokio::fs::read(&model_path)
        .await
        .map_err(io(&model_path))?;
    check_bytes(&entry, &model).map_err(|problem| RegistryError::BadModelDir {
        path: model_path.display().to_string(),
        problem,
    })?;
    let refname = reference(&entry.reference());

    let model_key = keys::model_object(&entry.name, &entry.version, &file_name)?;
    let json_key = keys::model_object(&entry.name, &entry.version, "model.json")?;
    let model_new = put_once(store, &model_key, Bytes::from(model), &refname, |stored| {
        check_bytes(&entry, stored).is_ok()
    })
    .await?;
    let json = Bytes::from(json);
    let json_new = put_once(store, &json_key, json.clone(), &refname, |stored| {
        stored == json.as_ref()
    })
    .await?;
    let pushed = if model_new || json_new {
        Pushed::Uploaded
    } else {
        Pushed::AlreadyThere
    };
    Ok((entry, pushed))
}

/// Writes `key` unless it exists; if it does, `same(stored)` must hold.
/// `true` when this call wrote it.
async fn put_once<S: ObjectStore>(
    store: &S,
    key: &str,
    body: Bytes,
    refname: &str,
    same: impl Fn(&[u8]) -> bool,
) -> Result<bool, RegistryError> {
    let content_type = if key.ends_with(".json") {
        "application/json"
    } else {
        "application/octet-stream"
    };
    match store
        .put(key, body, content_type, PutCondition::IfAbsent)
        .await?
    {
        PutOutcome::Written { .. } => Ok(true),
        PutOutcome::ConditionFailed => {
            let stored = store
                .get(key)
                .await?
                .ok_or_else(|| RegistryError::NotFound(key.to_string()))?;
            if same(&stored.body) {
                Ok(false)
            } else {
                Err(RegistryError::VersionExists {
                    reference: refname.to_string(),
                    key: key.to_string(),
                })
            }
        }
    }
}

/// Every registered version, by name then version.
pub async fn list<S: ObjectStore>(store: &S) -> Result<Vec<RegisteredModel>, RegistryError> {
    let mut out = Vec::new();
    for listed in store.list(keys::MODELS).await? {
        if keys::parse_model_metadata_key(&listed.key).is_none() {
            continue;
        }
        if let Some(object) = store.get(&listed.key).await? {
            out.push(stored(&listed.key, &object.body)?);
        }
    }
    out.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    Ok(out)
}

/// One version's `model.json`.
pub async fn show<S: ObjectStore>(
    store: &S,
    model: &ModelRef,
) -> Result<RegisteredModel, RegistryError> {
    let key = keys::model_object(&model.name, &model.version, "model.json")?;
    let object = store
        .get(&key)
        .await?
        .ok_or_else(|| RegistryError::NotFound(reference(model)))?;
    let entry = stored(&key, &object.body)?;
    if entry.reference() != *model {
        return Err(RegistryError::BadStored {
            key,
            problem: format!("its model.json names {}", reference(&entry.reference())),
        });
    }
    Ok(entry)
}

/// Downloads `model` into `<into>/<name>/<version>/` and returns that
/// directory, ready for the detector. The bytes are checked before anything
/// is written; a directory already there with the right bytes is reused (a
/// warm container, a second pull).
pub async fn pull<S: ObjectStore>(
    store: &S,
    model: &ModelRef,
    into: &Path,
) -> Result<PathBuf, RegistryError> {
    let json_key = keys::model_object(&model.name, &model.version, "model.json")?;
    let json = store
        .get(&json_key)
        .await?
        .ok_or_else(|| RegistryError::NotFound(reference(model)))?
        .body;
    let entry = stored(&json_key, &json)?;
    if entry.reference() != *model {
        return Err(RegistryError::BadStored {
            key: json_key,
            problem: format!("its model.json names {}", reference(&entry.reference())),
        });
    }
    let dir = into.join(&model.name).join(&model.version);
    let local_model = dir.join(&entry.file);
    if let (Ok(have_json), Ok(have_model)) = (
        tokio::fs::read(dir.join("model.json")).await,
        tokio::fs::read(&local_model).await,
    ) && have_json == json.as_ref()
        && check_bytes(&entry, &have_model).is_ok()
    {
        return Ok(dir);
    }
    let model_key = keys::model_object(&model.name, &model.version, &entry.file)?;
    let bytes = store
        .get(&model_key)
        .await?
        .ok_or_else(|| RegistryError::BadStored {
            key: model_key.clone(),
            problem: "model.json is there, its model file is not".into(),
        })?
        .body;
    check_bytes(&entry, &bytes).map_err(|problem| RegistryError::BadStored {
        key: model_key,
        problem,
    })?;
    tokio::fs::create_dir_all(&dir).await.map_err(io(&dir))?;
    // The model first, model.json last (each renamed into place): a reader
    // that finds model.json finds the whole version.
    for (name, body) in [(entry.file.as_str(), &bytes), ("model.json", &json)] {
        let tmp = dir.join(format!(".{name}.part"));
        tokio::fs::write(&tmp, body).await.map_err(io(&tmp))?;
        let path = dir.join(name);
        tokio::fs::rename(&tmp, &path).await.map_err(io(&path))?;
    }
    Ok(dir)
}

/// The current promotion of `name`, if any, with its ETag.
pub async fn promoted<S: ObjectStore>(
    store: &S,
    name: &str,
) -> Result<Option<(Promotion, String)>, RegistryError> {
    let key = keys::model_promotion(name)?;
    let Some(object) = store.get(&key).await? else {
        return Ok(None);
    };
    let promotion = records::from_json(&object.body).map_err(|e| RegistryError::BadStored {
        key,
        problem: e.to_string(),
    })?;
    Ok(Some((promotion, object.etag)))
}

/// Records `model` as the version to serve. The version must be registered;
/// promoting the version already promoted changes nothing.
pub async fn promote<S: ObjectStore>(
    store: &S,
    model: &ModelRef,
    reason: Option<String>,
    now: DateTime<Utc>,
) -> Result<Promotion, RegistryError> {
    show(store, model).await?;
    let key = keys::model_promotion(&model.name)?;
    let current = promoted(store, &model.name).await?;
    if let Some((p, _)) = &current
        && p.model == *model
    {
        return Ok(p.clone());
    }
    let (previous, condition) = match current {
        Some((p, etag)) => (Some(p.model), PutCondition::IfMatch(etag)),
        None => (None, PutCondition::IfAbsent),
    };
    let promotion = Promotion {
        model: model.clone(),
        previous,
        promoted_at: now,
        reason,
    };
    match store
        .put(
            &key,
            Bytes::from(records::to_json(&promotion)),
            "application/json",
            condition,
        )
        .await?
    {
        PutOutcome::Written { .. } => Ok(promotion),
        PutOutcome::ConditionFailed => Err(RegistryError::PromotionRaced(key)),
    }
}
