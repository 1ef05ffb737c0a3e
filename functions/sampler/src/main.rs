//! Wiring only: logs, config, clients, then the runtime.

use aws_lambda_events::event::s3::S3Event;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use modelobs_adapters::s3::S3Store;
use modelobs_pipeline::sample;
use modelobs_retry::deadline::{time_left, within};
use modelobs_sampler::config::Config;
use modelobs_sampler::wiring;

#[tokio::main]
async fn main() -> Result<(), Error> {
    modelobs_adapters::init_tracing();
    let config = Config::from_env().await?;
    let deps = wiring::deps(config, S3Store::client_from_env().await).await?;
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<S3Event>| async move {
        let budget = time_left(event.context.deadline, wiring::INVOCATION_MARGIN);
        within(budget, sample::handle(event.payload, deps))
            .await?
            .map(|_| ())
            .map_err(Error::from)
    }))
    .await
}
