//! Wiring only: logs, config, clients, then the runtime.

use anyhow::Context;
use lambda_http::{Error, service_fn};
use modelobs_adapters::queue::SqsQueue;
use modelobs_adapters::s3::S3Store;
use modelobs_adapters::secrets::resolve_secret;
use modelobs_adapters::{RetryPolicy, Retrying};
use modelobs_labelbox::webhook::payload::ClassMap;
use modelobs_labelbox::{LabelboxClient, Polling};
use modelobs_webhook::handler::{self, Deps};
use modelobs_webhook::source::LabelboxFetcher;

fn var(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("{name} is not set"))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    modelobs_adapters::init_tracing();
    // WEBHOOK_SECRET locally; in AWS, WEBHOOK_SECRET_ARN read once from Secrets Manager.
    let secret = resolve_secret("WEBHOOK_SECRET").await?;
    // LABEL_SOURCE=labelbox: events without the label JSON are fetched from
    // Labelbox, with LABELBOX_API_KEY (or LABELBOX_API_KEY_SECRET_ARN).
    let source = std::env::var("LABEL_SOURCE").unwrap_or_else(|_| "labelbox".into());
    let fetcher = match source.as_str() {
        "labelbox" => Some(LabelboxFetcher {
            // The function has 15 s: short retries, and an export still running
            // after 8 s is a 503, so Labelbox delivers the event again.
            client: LabelboxClient::new(resolve_secret("LABELBOX_API_KEY").await?)?
                .with_retry(RetryPolicy {
                    attempts: 3,
                    first_delay: std::time::Duration::from_millis(300),
                    max_delay: std::time::Duration::from_secs(1),
                    max_retry_after: std::time::Duration::from_secs(2),
                    jitter: true,
                })
                .with_polling(Polling {
                    interval: std::time::Duration::from_millis(700),
                    timeout: std::time::Duration::from_secs(8),
                }),
            default_project_id: std::env::var("LABELBOX_PROJECT_ID")
                .ok()
                .filter(|p| !p.is_empty()),
        }),
        _ => None,
    };
    let class_map = match std::env::var("CLASS_MAP") {
        Ok(doc) if !doc.trim().is_empty() => ClassMap(
            serde_json::from_str(&doc).context("CLASS_MAP must be a JSON object of names")?,
        ),
        _ => ClassMap::default(),
    };
    let deps = Deps {
        store: Retrying::new(
            S3Store::new(S3Store::client_from_env().await, var("DATA_BUCKET")?),
            RetryPolicy::default(),
        ),
        queue: Retrying::new(
            SqsQueue::new(SqsQueue::client_from_env().await, var("METRICS_QUEUE_URL")?),
            RetryPolicy::default(),
        ),
        fetcher,
        secret: secret.into_bytes(),
        max_body_bytes: match std::env::var("MAX_BODY_BYTES") {
            Ok(v) => v.parse().context("MAX_BODY_BYTES")?,
            Err(_) => 1024 * 1024,
        },
        class_map,
        source,
    };
    let app = handler::app(std::sync::Arc::new(deps));
    lambda_http::run(service_fn(move |req| {
        let app = app.clone();
        async move { Ok::<_, Error>(app.handle(req).await) }
    }))
    .await
}
