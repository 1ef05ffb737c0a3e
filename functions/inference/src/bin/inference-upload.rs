//! Wiring only: the S3-triggered twin of the HTTP function (images under `incoming/`).

// The handler's future (detector, capture, the retrying store's futures inside
// lambda_runtime's service) is deeper than rustc's default layout query limit.
#![recursion_limit = "256"]

use aws_lambda_events::event::s3::S3Event;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use modelobs_adapters::s3::S3Store;
use modelobs_adapters::{RetryPolicy, Retrying};
use modelobs_inference::config::Config;
use modelobs_pipeline::ingest::{self, UploadDeps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    modelobs_adapters::init_tracing();
    let config = Config::from_env()?;
    let store = Retrying::new(
        S3Store::new(S3Store::client_from_env().await, &config.bucket),
        RetryPolicy::default(),
    );
    // SHADOW_MODEL_REF is the HTTP function's: uploads are served by the serving model only.
    let deps = UploadDeps {
        detector: config.load_detector(&store).await?,
        store,
        max_object_bytes: config.max_upload_bytes,
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<S3Event>| async move {
        ingest::handle(event.payload, deps)
            .await
            .map(|_| ())
            .map_err(Error::from)
    }))
    .await
}
