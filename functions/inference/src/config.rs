//! The function's configuration, read once per container from the
//! environment (names match template.yaml).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use modelobs_adapters::ObjectStore;
use modelobs_core::records::ModelRef;
use modelobs_pipeline::registry::{self, parse_reference};

/// 4.5 MiB: the largest body Lambda can deliver in every form. Its 6 MB
/// payload limit applies to the event, where a binary body is base64 (4/3
/// larger), so a raw image over ~4.5 MB never reaches the function: API
/// Gateway or the function URL refuses it with the platform's own 413. The
/// same limit for text bodies (JSON `image_base64`, multipart) means every
/// request we can refuse, we refuse with our JSON 413.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4_718_592;

#[derive(Debug, Clone)]
pub struct Config {
    /// `DATA_BUCKET`: where captures go.
    pub bucket: String,
    /// `MODEL_DIR`: the folder holding model.json and the model (the layer).
    pub model_dir: PathBuf,
    /// `MODEL_REF` (`<name>/<version>`): serve that registry version
    /// (`models/<name>/<version>/` in the bucket) instead of `MODEL_DIR`'s.
    pub model_ref: Option<ModelRef>,
    /// `SHADOW_MODEL_REF` (`<name>/<version>`): a registry version run as shadow.
    pub shadow_model_ref: Option<ModelRef>,
    /// `MODEL_CACHE_DIR` (default `/tmp/models`): where registry versions are pulled.
    pub model_cache_dir: PathBuf,
    /// `MAX_BODY_BYTES` (default [`DEFAULT_MAX_BODY_BYTES`]).
    pub max_body_bytes: usize,
    /// `MAX_IMAGE_PIXELS` (default 40 MP): checked from the header before decoding.
    pub max_image_pixels: u64,
    /// `MAX_UPLOAD_BYTES` (default 32 MiB): larger `incoming/` objects are
    /// moved aside unread (inference-upload).
    pub max_upload_bytes: u64,
    /// `ALLOW_CLIENT_TIMESTAMPS=true` honours `X-Capture-Time` (traffic simulation).
    pub allow_client_timestamps: bool,
    /// `SCORE_THRESHOLD`, `NMS_IOU`: override the model metadata's defaults.
    pub score_threshold: Option<f64>,
    pub nms_iou: Option<f64>,
    /// `CLASSES`: comma-separated class names, `all`, or unset for the ten animals.
    pub classes: Option<Vec<String>>,
    /// `INTRA_OP_THREADS` (default 1).
    pub intra_op_threads: usize,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn parsed<T: std::str::FromStr>(name: &str) -> Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    var(name)
        .map(|v| {
            v.trim()
                .parse::<T>()
                .map_err(|e| anyhow::anyhow!("{name}={v:?}: {e}"))
        })
        .transpose()
}

fn reference(name: &str) -> Result<Option<ModelRef>> {
    var(name)
        .map(|v| parse_reference(&v).with_context(|| format!("{name}={v:?}")))
        .transpose()
}

impl Config {
    pub fn from_env() -> Result<Self> {
        let bucket =
            var("DATA_BUCKET").context("DATA_BUCKET is not set: the bucket for captures")?;
        let allow_client_timestamps = match var("ALLOW_CLIENT_TIMESTAMPS").as_deref() {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(other) => bail!("ALLOW_CLIENT_TIMESTAMPS={other:?}: expected true or false"),
        };
        Ok(Self {
            bucket,
            model_dir: var("MODEL_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("models/nanodet")),
            model_ref: reference("MODEL_REF")?,
            shadow_model_ref: reference("SHADOW_MODEL_REF")?,
            model_cache_dir: var("MODEL_CACHE_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/tmp/models")),
            max_body_bytes: parsed("MAX_BODY_BYTES")?.unwrap_or(DEFAULT_MAX_BODY_BYTES),
            max_image_pixels: parsed("MAX_IMAGE_PIXELS")?.unwrap_or(40_000_000),
            max_upload_bytes: parsed("MAX_UPLOAD_BYTES")?.unwrap_or(32 << 20),
            allow_client_timestamps,
            score_threshold: parsed("SCORE_THRESHOLD")?,
            nms_iou: parsed("NMS_IOU")?,
            classes: var("CLASSES").map(|v| v.split(',').map(|c| c.trim().to_string()).collect()),
            intra_op_threads: parsed("INTRA_OP_THREADS")?.unwrap_or(1),
        })
    }
}

impl Config {
    /// The serving detector: `MODEL_REF` from the registry, else `MODEL_DIR`.
    pub async fn load_detector(
        &self,
        store: &impl ObjectStore,
    ) -> Result<modelobs_detector::OnnxDetector> {
        let dir = match &self.model_ref {
            Some(m) => self.pull(store, m).await?,
            None => self.model_dir.clone(),
        };
        self.load_from(&dir)
    }

    /// The shadow detector, when `SHADOW_MODEL_REF` names one.
    pub async fn load_shadow(
        &self,
        store: &impl ObjectStore,
    ) -> Result<Option<modelobs_detector::OnnxDetector>> {
        match &self.shadow_model_ref {
            Some(m) => {
                let dir = self.pull(store, m).await?;
                Ok(Some(self.load_from(&dir)?))
            }
            None => Ok(None),
        }
    }

    async fn pull(&self, store: &impl ObjectStore, m: &ModelRef) -> Result<PathBuf> {
        registry::pull(store, m, &self.model_cache_dir)
            .await
            .with_context(|| format!("pulling {}/{} from the model registry", m.name, m.version))
    }

    /// The detector of the model directory `dir`, session built once.
    pub fn load_from(&self, dir: &std::path::Path) -> Result<modelobs_detector::OnnxDetector> {
        let config = modelobs_detector::DetectorConfig {
            score_threshold: self.score_threshold,
            nms_iou: self.nms_iou,
            classes: self.classes.clone(),
            intra_op_threads: self.intra_op_threads,
            max_pixels: self.max_image_pixels,
            ..modelobs_detector::DetectorConfig::new(dir)
        };
        modelobs_detector::OnnxDetector::load(&config)
            .with_context(|| format!("loading the model from {}", dir.display()))
    }
}
