//! The webhook's configuration, read once per container from the environment
//! (names as in template.yaml's `Environment`). Secrets are resolved here,
//! once: `WEBHOOK_SECRET` (in AWS `WEBHOOK_SECRET_ARN`) and, when labels are
//! fetched from Labelbox, `LABELBOX_API_KEY` (`LABELBOX_API_KEY_SECRET_ARN`).

use anyhow::{Context, Result};
use modelobs_adapters::secrets::resolve_secret;
use modelobs_labelbox::webhook::payload::ClassMap;

#[derive(Clone)]
pub struct Config {
    /// `DATA_BUCKET`
    pub bucket: String,
    /// `METRICS_QUEUE_URL`: where `{id, label_version}` messages go.
    pub metrics_queue_url: String,
    /// The shared HMAC secret.
    pub secret: String,
    /// `LABEL_SOURCE` (default `labelbox`): recorded in each `GroundTruth`.
    pub source: String,
    /// With `LABEL_SOURCE=labelbox`: labels an event only names are fetched.
    pub labelbox: Option<LabelboxFetch>,
    /// `CLASS_MAP`: labeling-tool class name → COCO class name.
    pub class_map: ClassMap,
    /// `MAX_BODY_BYTES` (default 1 MiB; 413 above).
    pub max_body_bytes: usize,
}

#[derive(Clone)]
pub struct LabelboxFetch {
    pub api_key: String,
    /// `LABELBOX_PROJECT_ID`: the project when the payload names none.
    pub default_project_id: Option<String>,
    /// `LABELBOX_ENDPOINT`: another GraphQL endpoint than Labelbox's (the
    /// fault soak's fake; a private deployment). Unset: api.labelbox.com.
    pub endpoint: Option<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secrets.
        f.debug_struct("Config")
            .field("bucket", &self.bucket)
            .field("metrics_queue_url", &self.metrics_queue_url)
            .field("source", &self.source)
            .field("fetch_from_labelbox", &self.labelbox.is_some())
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn required(name: &str) -> Result<String> {
    var(name).with_context(|| format!("{name} is not set"))
}

impl Config {
    pub async fn from_env() -> Result<Self> {
        let source = var("LABEL_SOURCE").unwrap_or_else(|| "labelbox".into());
        let labelbox = match source.as_str() {
            "labelbox" => Some(LabelboxFetch {
                api_key: resolve_secret("LABELBOX_API_KEY").await?,
                default_project_id: var("LABELBOX_PROJECT_ID"),
                endpoint: var("LABELBOX_ENDPOINT"),
            }),
            _ => None,
        };
        let class_map = match var("CLASS_MAP") {
            Some(doc) => {
                ClassMap::from_json(&doc).context("CLASS_MAP must be a JSON object of names")?
            }
            None => ClassMap::default(),
        };
        Ok(Self {
            bucket: required("DATA_BUCKET")?,
            metrics_queue_url: required("METRICS_QUEUE_URL")?,
            secret: resolve_secret("WEBHOOK_SECRET").await?,
            source,
            labelbox,
            class_map,
            max_body_bytes: var("MAX_BODY_BYTES")
                .map(|v| v.trim().parse())
                .transpose()
                .context("MAX_BODY_BYTES")?
                .unwrap_or(1024 * 1024),
        })
    }
}
