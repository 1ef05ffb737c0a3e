//! Wiring only: logs, config, clients, model, then the runtime.

use lambda_http::{Error, service_fn};
use modelobs_adapters::s3::S3Store;
use modelobs_adapters::{RetryPolicy, Retrying};
use modelobs_inference::config::Config;
use modelobs_inference::handler::{self, Deps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    modelobs_adapters::init_tracing();
    let config = Config::from_env()?;
    let store = Retrying::new(
        S3Store::new(S3Store::client_from_env().await, &config.bucket),
        RetryPolicy::default(),
    );
    let deps = Deps {
        detector: config.load_detector(&store).await?,
        shadow: config.load_shadow(&store).await?,
        store,
        max_body_bytes: config.max_body_bytes,
        allow_client_timestamps: config.allow_client_timestamps,
    };
    let app = handler::app(std::sync::Arc::new(deps));
    lambda_http::run(service_fn(move |req| {
        let app = app.clone();
        async move { Ok::<_, Error>(app.handle(req).await) }
    }))
    .await
}
