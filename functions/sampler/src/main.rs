//! Wiring only: logs, config, clients, then the runtime.

use anyhow::Context;
use aws_lambda_events::event::s3::S3Event;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use modelobs_adapters::retry::Backoff;
use modelobs_adapters::s3::S3Store;
use modelobs_core::sampling::SamplingPolicy;
use sampler::backend::LocalQueue;
use sampler::handler::{self, Deps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .without_time()
        .init();
    let bucket = std::env::var("DATA_BUCKET").context("DATA_BUCKET is not set")?;
    // SAMPLING_POLICY: the policy JSON document (docs/data-contract.md); unset = defaults.
    let policy = match std::env::var("SAMPLING_POLICY") {
        Ok(doc) if !doc.trim().is_empty() => {
            SamplingPolicy::from_json(&doc).map_err(|e| anyhow::anyhow!("SAMPLING_POLICY: {e}"))?
        }
        _ => SamplingPolicy::default(),
    };
    let store = S3Store::new(S3Store::client_from_env().await, &bucket);
    let deps = Deps {
        policy,
        backend: LocalQueue {
            store: store.clone(),
            backoff: Backoff::default(),
            now: chrono::Utc::now,
        },
        store,
        backoff: Backoff::default(),
        now: chrono::Utc::now,
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<S3Event>| async move {
        handler::handle(event.payload, deps)
            .await
            .map(|_| ())
            .map_err(Error::from)
    }))
    .await
}
