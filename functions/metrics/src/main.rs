//! Wiring only: logs, config, clients, then the runtime.

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use modelobs_adapters::s3::S3Store;
use modelobs_adapters::{RetryPolicy, Retrying};
use modelobs_metrics::config::{self, Config};
use modelobs_pipeline::evaluate::{self, Deps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    modelobs_adapters::init_tracing();
    let config = Config::from_env().await?;
    let deps = Deps {
        store: Retrying::new(
            S3Store::new(S3Store::client_from_env().await, config.bucket.clone()),
            RetryPolicy::default(),
        ),
        sink: config::sinks(config.observe.as_ref())?,
        now: chrono::Utc::now,
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(evaluate::handle(event.payload, deps).await)
    }))
    .await
}
