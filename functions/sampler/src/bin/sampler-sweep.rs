//! Wiring only: the scheduled sweep that re-submits decisions left pending
//! (`modelobs_pipeline::sample::sweep`). Any JSON event starts a run (the
//! schedule's, or `{}` by hand after an outage); a run with a capture still
//! failing fails, so the errors alarm sees it, and the next run tries again.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use modelobs_adapters::s3::S3Store;
use modelobs_pipeline::sample;
use modelobs_retry::deadline::{time_left, within};
use modelobs_sampler::config::{self, Config};
use modelobs_sampler::wiring;

#[tokio::main]
async fn main() -> Result<(), Error> {
    modelobs_adapters::init_tracing();
    let config = Config::from_env().await?;
    let settings = config::sweep_settings()?;
    let deps = wiring::deps(config, S3Store::client_from_env().await).await?;
    let deps = &deps;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            // Cut off before the deadline: what was re-submitted stays so, the
            // rest stays pending for the next run.
            let budget = time_left(event.context.deadline, wiring::INVOCATION_MARGIN);
            let report = within(budget, sample::sweep(deps, settings)).await??;
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
