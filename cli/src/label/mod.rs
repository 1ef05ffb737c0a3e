//! `modelobs label`: the local labelers. Both take tasks from the bucket's
//! local labeling queue (`labeling/queue/`, written by the sampler's local
//! backend) and answer through the signed webhook, exactly as Labelbox does.
//!
//! - `--oracle` answers from the simulator's truth file (optionally with
//!   annotator noise and a delay);
//! - `--serve` is a review page on 127.0.0.1 for a person.

pub mod oracle;
pub mod serve;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use modelobs_adapters::ObjectStore;
use modelobs_adapters::Retrying;
use modelobs_adapters::s3::S3Store;
use modelobs_core::keys;
use modelobs_core::records::{self, LabelingTask};
use serde_json::Value;

use crate::dev::DEV_WEBHOOK_SECRET;

#[derive(Args, Debug)]
pub struct LabelArgs {
    /// Answer from the simulator's truth file (`modelobs simulate --truth-out`).
    #[arg(long, requires = "truth", conflicts_with = "serve")]
    pub oracle: bool,
    /// Serve a review page for a person: boxes to move, resize, delete, add, classify.
    #[arg(long)]
    pub serve: bool,
    /// Where the review page listens: a loopback address only.
    #[arg(long, default_value = "127.0.0.1:8088")]
    pub listen: String,
    /// Serve an in-memory bucket holding this folder's files (key = path under
    /// it) instead of DATA_BUCKET: the browser test, and a look without a stack.
    #[arg(long, hide = true, requires = "serve")]
    pub bucket_dir: Option<PathBuf>,
    /// The truth file: one JSON line per capture.
    #[arg(long)]
    pub truth: Option<PathBuf>,
    /// The webhook function's URL.
    #[arg(
        long,
        env = "WEBHOOK_URL",
        default_value = "http://127.0.0.1:9000/lambda-url/webhook/"
    )]
    pub webhook: String,
    /// The webhook secret (the local stack's default unless set).
    #[arg(long, env = "WEBHOOK_SECRET", default_value = DEV_WEBHOOK_SECRET, hide_env_values = true)]
    pub secret: String,
    #[arg(long, env = "DATA_BUCKET", required_unless_present = "bucket_dir")]
    pub bucket: Option<String>,
    /// Annotator noise: each box edge moves by N(0, σ) pixels.
    #[arg(long, default_value_t = 0.0)]
    pub noise_px: f64,
    /// Answer a task only once it has waited this long (labelling takes time).
    #[arg(long, default_value_t = 0)]
    pub delay_s: u64,
    /// Keep answering until no task has come for this many seconds (0: answer what is queued, then stop).
    #[arg(long, default_value_t = 0)]
    pub idle_s: u64,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

pub fn run(args: &LabelArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if args.oracle {
        runtime.block_on(oracle::run(args))
    } else if args.serve {
        runtime.block_on(serve::run(args))
    } else {
        bail!("say which labeler: --oracle or --serve");
    }
}

/// The local labeling queue in the bucket.
pub struct TaskQueue<S> {
    pub store: S,
}

impl TaskQueue<Retrying<S3Store>> {
    pub async fn from_env(bucket: &str) -> Self {
        Self {
            store: crate::bucket_store(bucket).await,
        }
    }
}

impl<S: ObjectStore> TaskQueue<S> {
    /// The tasks waiting, oldest capture first (keys are capture ids, UUIDv7).
    pub async fn pending(&self) -> Result<Vec<(String, LabelingTask)>> {
        let mut out = Vec::new();
        for listed in self.store.list(keys::LABELING_QUEUE).await? {
            let Some(object) = self.store.get(&listed.key).await? else {
                continue; // answered meanwhile
            };
            match records::from_json::<LabelingTask>(&object.body) {
                Ok(task) => out.push((listed.key, task)),
                Err(e) => eprintln!("label: skipping {}: {e}", listed.key),
            }
        }
        Ok(out)
    }

    pub async fn done(&self, key: &str) -> Result<()> {
        Ok(self.store.delete(key).await?)
    }
}

/// Posts label events to the webhook, signed the way Labelbox signs them.
pub struct WebhookClient {
    pub http: reqwest::Client,
    pub url: String,
    pub secret: String,
}

impl WebhookClient {
    pub fn new(url: &str, secret: &str) -> Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()?,
            url: url.to_string(),
            secret: secret.to_string(),
        })
    }

    /// The status and body of the webhook's answer. The topic goes in the
    /// signed body (`event`) as well as the header, which the signature does
    /// not cover: the webhook then takes it from the body.
    pub async fn send(&self, topic: &str, payload: &Value) -> Result<(u16, String)> {
        let mut payload = payload.clone();
        if let Some(fields) = payload.as_object_mut() {
            fields.insert("event".into(), topic.into());
        }
        let body = serde_json::to_vec(&payload)?;
        let (sha1, sha256) =
            modelobs_labelbox::webhook::signature::sign(self.secret.as_bytes(), &body);
        let response = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("x-labelbox-event", topic)
            .header("x-hub-signature", sha1)
            .header("x-hub-signature-256", sha256)
            .body(body)
            .send()
            .await
            .with_context(|| format!("posting to {}", self.url))?;
        let status = response.status().as_u16();
        Ok((status, response.text().await.unwrap_or_default()))
    }
}
