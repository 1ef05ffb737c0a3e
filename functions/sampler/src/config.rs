//! The sampler's configuration, read once per container from the environment
//! (names as in template.yaml's `Environment`).

use anyhow::{Context, Result, bail};
use modelobs_core::sampling::SamplingPolicy;

/// Where sampled captures go (`LABELING_BACKEND`).
#[derive(Debug, Clone)]
pub enum Backend {
    /// `local`: `labeling/queue/` for the local labelers.
    Local,
    Labelbox(LabelboxConfig),
}

#[derive(Clone)]
pub struct LabelboxConfig {
    /// `LABELBOX_API_KEY` locally; in AWS the secret `LABELBOX_API_KEY_SECRET_ARN` names.
    pub api_key: String,
    /// `LABELBOX_PROJECT_ID`, `LABELBOX_DATASET_ID` (from `modelobs labelbox setup`).
    pub project_id: String,
    pub dataset_id: String,
    /// `LABELBOX_URL_DAYS` (default 7): lifetime of the presigned image URLs.
    pub url_days: u64,
}

impl std::fmt::Debug for LabelboxConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the API key.
        f.debug_struct("LabelboxConfig")
            .field("project_id", &self.project_id)
            .field("dataset_id", &self.dataset_id)
            .field("url_days", &self.url_days)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// `DATA_BUCKET`
    pub bucket: String,
    /// `SAMPLING_POLICY`: the policy JSON document (docs/data-contract.md); unset = defaults.
    pub policy: SamplingPolicy,
    pub backend: Backend,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn required(name: &str) -> Result<String> {
    var(name).with_context(|| format!("{name} is not set"))
}

impl Config {
    /// Reads the Labelbox API key (a secret) only when Labelbox is the backend.
    pub async fn from_env() -> Result<Self> {
        let policy = match var("SAMPLING_POLICY") {
            Some(doc) => SamplingPolicy::from_json(&doc)
                .map_err(|e| anyhow::anyhow!("SAMPLING_POLICY: {e}"))?,
            None => SamplingPolicy::default(),
        };
        let backend = match var("LABELING_BACKEND").as_deref() {
            None | Some("local") => Backend::Local,
            Some("labelbox") => Backend::Labelbox(LabelboxConfig {
                api_key: modelobs_adapters::secrets::resolve_secret("LABELBOX_API_KEY").await?,
                project_id: required("LABELBOX_PROJECT_ID")?,
                dataset_id: required("LABELBOX_DATASET_ID")?,
                url_days: var("LABELBOX_URL_DAYS")
                    .map(|d| d.trim().parse())
                    .transpose()
                    .context("LABELBOX_URL_DAYS")?
                    .unwrap_or(7),
            }),
            Some(other) => bail!("LABELING_BACKEND={other:?}: expected local or labelbox"),
        };
        Ok(Self {
            bucket: required("DATA_BUCKET")?,
            policy,
            backend,
        })
    }
}
