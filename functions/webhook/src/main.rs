//! Wiring only: logs, config, clients, then the runtime.

use anyhow::Context;
use lambda_http::{Error, service_fn};
use modelobs_adapters::queue::SqsQueue;
use modelobs_adapters::retry::Backoff;
use modelobs_adapters::s3::S3Store;
use webhook::handler::{self, Deps};
use webhook::payload::ClassMap;

fn var(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("{name} is not set"))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    modelobs_adapters::init_tracing();
    // WEBHOOK_SECRET: in AWS resolved from Secrets Manager by the template
    // ({{resolve:secretsmanager:...}}) into the environment, read once here.
    let secret = var("WEBHOOK_SECRET")?;
    let class_map = match std::env::var("CLASS_MAP") {
        Ok(doc) if !doc.trim().is_empty() => ClassMap(
            serde_json::from_str(&doc).context("CLASS_MAP must be a JSON object of names")?,
        ),
        _ => ClassMap::default(),
    };
    let deps = Deps {
        store: S3Store::new(S3Store::client_from_env().await, var("DATA_BUCKET")?),
        queue: SqsQueue::new(SqsQueue::client_from_env().await, var("METRICS_QUEUE_URL")?),
        secret: secret.into_bytes(),
        max_body_bytes: match std::env::var("MAX_BODY_BYTES") {
            Ok(v) => v.parse().context("MAX_BODY_BYTES")?,
            Err(_) => 1024 * 1024,
        },
        class_map,
        backoff: Backoff::default(),
        source: std::env::var("LABEL_SOURCE").unwrap_or_else(|_| "labelbox".into()),
    };
    let deps = &deps;
    lambda_http::run(service_fn(move |req| async move {
        Ok::<_, Error>(handler::handle(req, deps).await)
    }))
    .await
}
