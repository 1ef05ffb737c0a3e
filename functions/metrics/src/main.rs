//! Wiring only: logs, config, clients, then the runtime.

use anyhow::Context;
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use metrics::handler::{self, Deps};
use metrics::sink::EmfSink;
use modelobs_adapters::retry::Backoff;
use modelobs_adapters::s3::S3Store;

#[tokio::main]
async fn main() -> Result<(), Error> {
    modelobs_adapters::init_tracing();
    let bucket = std::env::var("DATA_BUCKET").context("DATA_BUCKET is not set")?;
    let deps = Deps {
        store: S3Store::new(S3Store::client_from_env().await, bucket),
        sink: EmfSink,
        backoff: Backoff::default(),
        now: chrono::Utc::now,
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(handler::handle(event.payload, deps).await)
    }))
    .await
}
