//! Wiring only: logs, config, clients, then the runtime.

use aws_lambda_events::event::s3::S3Event;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use modelobs_adapters::s3::S3Store;
use modelobs_adapters::{RetryPolicy, Retrying};
use modelobs_pipeline::labeling::{AnyBackend, Labelbox, LocalQueue};
use modelobs_pipeline::sample::{self, Deps};
use modelobs_sampler::config::{Backend, Config};
use modelobs_sampler::presign::S3Presigner;

#[tokio::main]
async fn main() -> Result<(), Error> {
    modelobs_adapters::init_tracing();
    let config = Config::from_env().await?;
    let s3 = S3Store::client_from_env().await;
    let store = Retrying::new(
        S3Store::new(s3.clone(), &config.bucket),
        RetryPolicy::default(),
    );
    let backend = match config.backend {
        Backend::Labelbox(lb) => {
            let client = modelobs_labelbox::LabelboxClient::new(lb.api_key)?;
            let tools = client.project_tool_names(&lb.project_id).await?;
            AnyBackend::Labelbox(Box::new(Labelbox {
                client,
                presigner: S3Presigner {
                    client: s3,
                    bucket: config.bucket.clone(),
                },
                project_id: lb.project_id,
                dataset_id: lb.dataset_id,
                tools: tools.into_iter().collect(),
                url_expiry: std::time::Duration::from_secs(lb.url_days * 24 * 3600),
                batch_priority: 5,
            }))
        }
        Backend::Local => AnyBackend::Local(LocalQueue {
            store: store.clone(),
            now: chrono::Utc::now,
        }),
    };
    let deps = Deps {
        policy: config.policy,
        backend,
        store,
        now: chrono::Utc::now,
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<S3Event>| async move {
        sample::handle(event.payload, deps)
            .await
            .map(|_| ())
            .map_err(Error::from)
    }))
    .await
}
