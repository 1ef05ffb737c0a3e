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
    /// `LABELBOX_ENDPOINT`: another GraphQL endpoint than Labelbox's (the
    /// fault soak's fake; a private deployment). Unset: api.labelbox.com.
    pub endpoint: Option<String>,
    /// `LABELBOX_IMAGE_ACCESS`: how Labelbox reaches the images.
    pub image_access: ImageAccess,
}

/// `LABELBOX_IMAGE_ACCESS` (`crate::presign` says what each means).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageAccess {
    /// `delegated`: plain object URLs in `region` (`AWS_REGION`), read by
    /// Labelbox through its IAM integration. The template's default.
    Delegated { region: String },
    /// `presigned`, or unset: presigned URLs (tryouts, local runs).
    Presigned,
}

impl ImageAccess {
    fn from_env() -> Result<Self> {
        match var("LABELBOX_IMAGE_ACCESS").as_deref().map(str::trim) {
            None | Some("presigned") => Ok(Self::Presigned),
            Some("delegated") => Ok(Self::Delegated {
                region: required("AWS_REGION")
                    .context("LABELBOX_IMAGE_ACCESS=delegated names objects by region")?,
            }),
            Some(other) => {
                bail!("LABELBOX_IMAGE_ACCESS={other:?}: expected delegated or presigned")
            }
        }
    }
}

impl std::fmt::Debug for LabelboxConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the API key.
        f.debug_struct("LabelboxConfig")
            .field("project_id", &self.project_id)
            .field("dataset_id", &self.dataset_id)
            .field("url_days", &self.url_days)
            .field("endpoint", &self.endpoint)
            .field("image_access", &self.image_access)
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
                endpoint: var("LABELBOX_ENDPOINT"),
                image_access: ImageAccess::from_env()?,
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

/// The sweep's settings (`sampler-sweep`): `SWEEP_OLDER_THAN_S` (default 900)
/// is how old a pending decision must be before the sweep re-submits it
/// (younger ones may still be in S3's own retries); the fault soak shortens it.
pub fn sweep_settings() -> Result<modelobs_pipeline::sample::SweepSettings> {
    let mut settings = modelobs_pipeline::sample::SweepSettings::default();
    if let Some(v) = var("SWEEP_OLDER_THAN_S") {
        let secs: u32 = v
            .trim()
            .parse()
            .with_context(|| format!("SWEEP_OLDER_THAN_S={v:?}: expected whole seconds"))?;
        settings.older_than = chrono::Duration::seconds(secs.into());
    }
    Ok(settings)
}
