//! The sampler's dependencies from its configuration: the bucket (with the
//! one retry policy), the labeling backend and the policy. Both binaries
//! (`sampler` on S3 events, `sampler-sweep` on its schedule) are built from it.

use std::time::Duration;

use aws_sdk_s3::Client;
use modelobs_adapters::s3::S3Store;
use modelobs_adapters::{RetryPolicy, Retrying};
use modelobs_labelbox::Polling;
use modelobs_pipeline::labeling::{AnyBackend, Labelbox, LocalQueue};
use modelobs_pipeline::sample::Deps;

use crate::config::{Backend, Config, ImageAccess};
use crate::presign::{DelegatedUrls, ImageUrls, S3Presigner};

/// The sampler's time (template.yaml: Timeout 60 s; the sweep 300 s). One
/// submission is about six Labelbox calls and two task polls; each call gets
/// 10 s an attempt and 3 attempts with waits of at most 4 s (a `Retry-After`
/// at most 5 s), a task 20 s. What that can add up to is more than 60 s, so
/// the binaries also cut the invocation off 3 s before its deadline
/// ([`INVOCATION_MARGIN`]): the event fails cleanly and S3 retries it (the
/// decision stays pending, the sweep's to finish), instead of being killed.
pub const LABELBOX_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
pub const LABELBOX_RETRY: RetryPolicy = RetryPolicy {
    attempts: 3,
    first_delay: Duration::from_millis(500),
    max_delay: Duration::from_secs(4),
    max_retry_after: Duration::from_secs(5),
    jitter: true,
};
pub const LABELBOX_POLLING: Polling = Polling {
    interval: Duration::from_secs(2),
    timeout: Duration::from_secs(20),
};
pub const INVOCATION_MARGIN: Duration = Duration::from_secs(3);

pub type Store = Retrying<S3Store>;
pub type SamplerDeps = Deps<AnyBackend<Store, ImageUrls>, Store>;

pub async fn deps(config: Config, s3: Client) -> Result<SamplerDeps, lambda_runtime::Error> {
    let store = Retrying::new(
        S3Store::new(s3.clone(), &config.bucket),
        RetryPolicy::default(),
    );
    let backend = match config.backend {
        Backend::Labelbox(lb) => {
            let mut client = modelobs_labelbox::LabelboxClient::new(lb.api_key)?;
            if let Some(endpoint) = lb.endpoint {
                client = client.with_endpoint(endpoint);
            }
            let client = client
                .with_request_timeout(LABELBOX_REQUEST_TIMEOUT)
                .with_retry(LABELBOX_RETRY)
                .with_polling(LABELBOX_POLLING);
            let tools = client.project_tool_names(&lb.project_id).await?;
            AnyBackend::Labelbox(Box::new(Labelbox {
                client,
                presigner: match lb.image_access {
                    ImageAccess::Delegated { region } => ImageUrls::Delegated(DelegatedUrls {
                        bucket: config.bucket.clone(),
                        region,
                    }),
                    ImageAccess::Presigned => ImageUrls::Presigned(S3Presigner {
                        client: s3,
                        bucket: config.bucket.clone(),
                        credentials: S3Store::credentials_from_env().await,
                    }),
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
