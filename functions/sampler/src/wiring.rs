//! The sampler's dependencies from its configuration: the bucket (with the
//! one retry policy), the labeling backend and the policy. Both binaries
//! (`sampler` on S3 events, `sampler-sweep` on its schedule) are built from it.

use aws_sdk_s3::Client;
use modelobs_adapters::s3::S3Store;
use modelobs_adapters::{RetryPolicy, Retrying};
use modelobs_pipeline::labeling::{AnyBackend, Labelbox, LocalQueue};
use modelobs_pipeline::sample::Deps;

use crate::config::{Backend, Config};
use crate::presign::S3Presigner;

pub type Store = Retrying<S3Store>;
pub type SamplerDeps = Deps<AnyBackend<Store, S3Presigner>, Store>;

pub async fn deps(config: Config, s3: Client) -> Result<SamplerDeps, lambda_runtime::Error> {
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
    Ok(Deps {
        policy: config.policy,
        backend,
        store,
        now: chrono::Utc::now,
    })
}
