//! Wiring only: logs, config, clients, then the runtime.

use lambda_http::{Error, service_fn};
use modelobs_adapters::queue::SqsQueue;
use modelobs_adapters::s3::S3Store;
use modelobs_adapters::{RetryPolicy, Retrying};
use modelobs_labelbox::{LabelboxClient, Polling};
use modelobs_pipeline::label_source::LabelboxFetcher;
use modelobs_webhook::config::Config;
use modelobs_webhook::handler::{self, Deps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    modelobs_adapters::init_tracing();
    let config = Config::from_env().await?;
    let fetcher = match config.labelbox {
        Some(lb) => Some(LabelboxFetcher {
            // The function has 15 s: 4 s a request, short retries, and an export
            // still running after 8 s is a 503, so Labelbox delivers the event
            // again. Whatever that adds up to, the app answers 503 out_of_time
            // 1 s before the deadline (modelobs_http::LambdaApp).
            client: with_endpoint(LabelboxClient::new(lb.api_key)?, lb.endpoint)
                .with_request_timeout(std::time::Duration::from_secs(4))
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
            default_project_id: lb.default_project_id,
        }),
        None => None,
    };
    let deps = Deps {
        store: Retrying::new(
            S3Store::new(S3Store::client_from_env().await, config.bucket),
            RetryPolicy::default(),
        ),
        queue: Retrying::new(
            SqsQueue::new(SqsQueue::client_from_env().await, config.metrics_queue_url),
            RetryPolicy::default(),
        ),
        fetcher,
        secret: config.secret.into_bytes(),
        max_body_bytes: config.max_body_bytes,
        class_map: config.class_map,
        source: config.source,
    };
    let app = handler::app(std::sync::Arc::new(deps));
    lambda_http::run(service_fn(move |req| {
        let app = app.clone();
        async move { Ok::<_, Error>(app.handle(req).await) }
    }))
    .await
}

/// `LABELBOX_ENDPOINT` when set, else Labelbox's own.
fn with_endpoint(client: LabelboxClient, endpoint: Option<String>) -> LabelboxClient {
    match endpoint {
        Some(e) => client.with_endpoint(e),
        None => client,
    }
}
