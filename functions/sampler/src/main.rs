//! Wiring only: logs, config, clients, then the runtime.

use anyhow::Context;
use aws_lambda_events::event::s3::S3Event;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use modelobs_adapters::s3::S3Store;
use modelobs_adapters::{RetryPolicy, Retrying};
use modelobs_core::sampling::SamplingPolicy;
use modelobs_sampler::backend::{AnyBackend, Labelbox, LocalQueue, S3Presigner};
use modelobs_sampler::handler::{self, Deps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    modelobs_adapters::init_tracing();
    let bucket = std::env::var("DATA_BUCKET").context("DATA_BUCKET is not set")?;
    // SAMPLING_POLICY: the policy JSON document (docs/data-contract.md); unset = defaults.
    let policy = match std::env::var("SAMPLING_POLICY") {
        Ok(doc) if !doc.trim().is_empty() => {
            SamplingPolicy::from_json(&doc).map_err(|e| anyhow::anyhow!("SAMPLING_POLICY: {e}"))?
        }
        _ => SamplingPolicy::default(),
    };
    let s3 = S3Store::client_from_env().await;
    let store = Retrying::new(S3Store::new(s3.clone(), &bucket), RetryPolicy::default());
    let var = |name: &str| std::env::var(name).with_context(|| format!("{name} is not set"));
    // LABELING_BACKEND: `local` (labeling/queue/ for the local labelers) or `labelbox`.
    let backend = match std::env::var("LABELING_BACKEND").as_deref() {
        Ok("labelbox") => {
            // LABELBOX_API_KEY locally; in AWS, LABELBOX_API_KEY_SECRET_ARN from Secrets Manager.
            let api_key = modelobs_adapters::secrets::resolve_secret("LABELBOX_API_KEY").await?;
            let client = modelobs_labelbox::LabelboxClient::new(api_key)?;
            let project_id = var("LABELBOX_PROJECT_ID")?;
            let tools = client.project_tool_names(&project_id).await?;
            let days: u64 = std::env::var("LABELBOX_URL_DAYS")
                .ok()
                .map(|d| d.parse())
                .transpose()
                .context("LABELBOX_URL_DAYS")?
                .unwrap_or(7);
            AnyBackend::Labelbox(Box::new(Labelbox {
                client,
                presigner: S3Presigner {
                    client: s3,
                    bucket: bucket.clone(),
                },
                project_id,
                dataset_id: var("LABELBOX_DATASET_ID")?,
                tools: tools.into_iter().collect(),
                url_expiry: std::time::Duration::from_secs(days * 24 * 3600),
                batch_priority: 5,
            }))
        }
        Ok("local") | Err(_) => AnyBackend::Local(LocalQueue {
            store: store.clone(),
            now: chrono::Utc::now,
        }),
        Ok(other) => {
            return Err(format!("LABELING_BACKEND={other:?}: expected local or labelbox").into());
        }
    };
    let deps = Deps {
        policy,
        backend,
        store,
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
