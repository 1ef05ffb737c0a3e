//! `modelobs labelbox check`: one data row, one batch, one pre-label import,
//! one export and one signed webhook round trip against a connected project
//! (`modelobs_labelbox::check`), printed step by step.

use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::Args;
use modelobs_labelbox::{CheckReport, CheckSpec, DEFAULT_ENDPOINT, WebhookCheck};

use crate::CliError;

#[derive(Args)]
pub struct CheckArgs {
    /// Environment variable holding the Labelbox API key.
    #[arg(long, default_value = "LABELBOX_API_KEY")]
    api_key_env: String,
    /// The project and dataset `modelobs labelbox setup` printed.
    #[arg(long, env = "LABELBOX_PROJECT_ID")]
    project_id: String,
    #[arg(long, env = "LABELBOX_DATASET_ID")]
    dataset_id: String,
    /// An image Labelbox can read, as the sampler would send it: with
    /// delegated access, an object of the data bucket by its plain
    /// `https://<bucket>.s3.<region>.amazonaws.com/<key>` URL.
    #[arg(long)]
    image_url: String,
    /// The ontology tool to pre-label with. Default: the project's first.
    #[arg(long)]
    tool: Option<String>,
    /// The webhook function's URL (a stack output): also checks a signed
    /// delivery is accepted and an unsigned one refused.
    #[arg(long)]
    webhook_url: Option<String>,
    /// Environment variable holding the webhook signing secret.
    #[arg(long, default_value = "LABELBOX_WEBHOOK_SECRET")]
    webhook_secret_env: String,
    /// How long to wait for Labelbox to run the pre-label import.
    #[arg(long, default_value_t = 120)]
    import_timeout_s: u64,
    /// Labelbox's GraphQL endpoint.
    #[arg(long, default_value = DEFAULT_ENDPOINT)]
    endpoint: String,
}

pub fn run_check(args: &CheckArgs) -> Result<(), CliError> {
    let api_key = crate::labelbox::env(&args.api_key_env)?;
    let webhook = match &args.webhook_url {
        None => None,
        Some(url) => Some(WebhookCheck {
            url: url.clone(),
            secret: crate::labelbox::env(&args.webhook_secret_env)?,
        }),
    };
    let (client, runtime) = crate::labelbox::client_and_runtime(api_key, &args.endpoint)?;
    runtime.block_on(async {
        let tool_name = match &args.tool {
            Some(tool) => tool.clone(),
            None => client
                .project_tool_names(&args.project_id)
                .await
                .with_context(|| format!("reading project {}'s ontology", args.project_id))?
                .into_iter()
                .next()
                .ok_or_else(|| {
                    anyhow!(
                        "project {} has no ontology tool to pre-label with: run `modelobs labelbox setup`",
                        args.project_id
                    )
                })?,
        };
        let spec = CheckSpec {
            project_id: args.project_id.clone(),
            dataset_id: args.dataset_id.clone(),
            image_url: args.image_url.clone(),
            tool_name,
            stamp: chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string(),
            webhook,
            import_timeout: Duration::from_secs(args.import_timeout_s),
        };
        let mut report = CheckReport::default();
        let outcome = client.check(&spec, &mut report).await;
        for step in &report.steps {
            println!("ok    {:<17} {:>6.1} s  {}", step.name, step.seconds, step.detail);
        }
        match outcome {
            Ok(()) => {
                eprintln!(
                    "modelobs: Labelbox at {} works with this project; delete the data row and \
                     batch modelobs-check-{} in its UI",
                    args.endpoint, spec.stamp
                );
                Ok(())
            }
            Err(e) => {
                println!("FAIL  {e}");
                Err(anyhow!(e).context(format!("Labelbox check at {}", args.endpoint)))
            }
        }
    })?;
    Ok(())
}
