//! Wiring only: the scheduled sweep that re-submits decisions left pending
//! (`modelobs_pipeline::sample::sweep`). Any JSON event starts a run (the
//! schedule's, or `{}` by hand after an outage); a run with a capture still
//! failing fails, so the errors alarm sees it, and the next run tries again.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use modelobs_adapters::s3::S3Store;
use modelobs_pipeline::sample::{self, SweepSettings};
use modelobs_sampler::config::Config;

#[tokio::main]
async fn main() -> Result<(), Error> {
    modelobs_adapters::init_tracing();
    let config = Config::from_env().await?;
    let deps = modelobs_sampler::wiring::deps(config, S3Store::client_from_env().await).await?;
    let deps = &deps;
    lambda_runtime::run(service_fn(
        move |_: LambdaEvent<serde_json::Value>| async move {
            let report = sample::sweep(deps, SweepSettings::default()).await?;
            tracing::info!(
                checked = report.checked,
                pending = report.pending,
                resubmitted = report.resubmitted.len(),
                failed = report.failed.len(),
                "sweep done"
            );
            match report.failed.first() {
                None => Ok(report),
                Some((id, e)) => Err(Error::from(format!(
                    "{} pending decisions still failing; first: {id}: {e}",
                    report.failed.len()
                ))),
            }
        },
    ))
    .await
}
