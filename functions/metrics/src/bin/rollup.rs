//! Wiring only: the rollup on an EventBridge schedule (`rate(5 minutes)`).

use lambda_runtime::{Error, LambdaEvent, service_fn};
use modelobs_adapters::s3::S3Store;
use modelobs_adapters::{RetryPolicy, Retrying};
use modelobs_metrics::config::{self, Config};
use modelobs_pipeline::rollup::{self, RollupDeps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    modelobs_adapters::init_tracing();
    let config = Config::from_env().await?;
    let deps = RollupDeps {
        store: Retrying::new(
            S3Store::new(S3Store::client_from_env().await, config.bucket.clone()),
            RetryPolicy::default(),
        ),
        // Timeout 300 s: up to a minute of it for Observe, however many windows.
        sink: config::sinks(config.observe.as_ref())?
            .with_budget(std::time::Duration::from_secs(60)),
        score_threshold: config.score_threshold,
        now: chrono::Utc::now,
        concurrency: 32,
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            // The report is the invocation's result; an error fails it (retried, alarmed).
            rollup::handle(event.payload, deps)
                .await
                .map_err(Error::from)
        },
    ))
    .await
}
