//! `modelobs labelbox setup`: the Labelbox side of a deployment, made once and
//! found again on every later run. Prints the stack parameters.

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use modelobs_core::classes;
use modelobs_labelbox::setup::ImageAccess;
use modelobs_labelbox::{DEFAULT_ENDPOINT, LabelboxClient, LabelboxError, SetupSpec, WebhookSpec};

use crate::CliError;

#[derive(Args)]
pub struct LabelboxArgs {
    #[command(subcommand)]
    command: LabelboxCommand,
}

#[derive(Subcommand)]
enum LabelboxCommand {
    /// Create or reuse the project, dataset (its images signed through an IAM
    /// integration, unless presigned), ontology (one box tool per class) and
    /// label webhook; print the ids for `sam deploy --parameter-overrides`.
    Setup(SetupArgs),
    /// Check a connected project live: one data row, a batch, one pre-label
    /// import, an export, and a signed webhook round trip (docs/labelbox.md).
    Check(crate::labelbox_check::CheckArgs),
}

#[derive(Args)]
pub struct SetupArgs {
    /// Environment variable holding the Labelbox API key.
    #[arg(long, default_value = "LABELBOX_API_KEY")]
    api_key_env: String,
    #[arg(long)]
    project_name: String,
    #[arg(long)]
    dataset_name: String,
    /// Default: "<project name> ontology".
    #[arg(long)]
    ontology_name: Option<String>,
    /// Classes to give a bounding-box tool (COCO names). Default: the ten animals.
    #[arg(long, value_delimiter = ',')]
    classes: Vec<String>,
    /// The webhook function's URL (a stack output): label events go there.
    /// Leave it out on the first run, before the stack exists.
    #[arg(long)]
    webhook_url: Option<String>,
    /// Environment variable holding the webhook signing secret.
    #[arg(long, default_value = "LABELBOX_WEBHOOK_SECRET")]
    webhook_secret_env: String,
    /// How Labelbox reads the images: `delegated` (it signs their URLs
    /// through an IAM integration of the organisation, checked and attached
    /// to the dataset) or `presigned` (the URLs the sampler presigns, no
    /// integration).
    #[arg(long, value_enum, default_value_t = ImageAccessArg::Delegated)]
    image_access: ImageAccessArg,
    /// The IAM integration (name or id) for delegated access. Default: the
    /// organisation's default integration.
    #[arg(long, value_name = "NAME_OR_ID")]
    iam_integration: Option<String>,
    /// Labelbox's GraphQL endpoint.
    #[arg(long, default_value = DEFAULT_ENDPOINT)]
    endpoint: String,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ImageAccessArg {
    Delegated,
    Presigned,
}

pub fn run(args: &LabelboxArgs) -> Result<(), CliError> {
    match &args.command {
        LabelboxCommand::Setup(setup) => run_setup(setup),
        LabelboxCommand::Check(check) => crate::labelbox_check::run_check(check),
    }
}

/// A Labelbox client for `endpoint` and a runtime to drive it.
pub(crate) fn client_and_runtime(
    api_key: String,
    endpoint: &str,
) -> Result<(LabelboxClient, tokio::runtime::Runtime), CliError> {
    let client = LabelboxClient::new(api_key)
        .context("building the HTTP client")?
        .with_endpoint(endpoint);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    Ok((client, runtime))
}

pub(crate) fn env(name: &str) -> Result<String, CliError> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => Ok(value),
        _ => Err(CliError::BadInput {
            path: name.to_string(),
            problem: "environment variable is not set".into(),
        }),
    }
}

fn run_setup(args: &SetupArgs) -> Result<(), CliError> {
    let api_key = env(&args.api_key_env)?;
    let tool_names = if args.classes.is_empty() {
        classes::ANIMALS.iter().map(|c| c.to_string()).collect()
    } else {
        let unknown: Vec<&String> = args
            .classes
            .iter()
            .filter(|c| classes::by_name(c).is_none())
            .collect();
        if !unknown.is_empty() {
            return Err(CliError::BadInput {
                path: "--classes".into(),
                problem: format!("not COCO-80 classes: {unknown:?}"),
            });
        }
        args.classes.clone()
    };
    let webhook = match &args.webhook_url {
        None => None,
        Some(url) => Some(WebhookSpec {
            url: url.clone(),
            secret: env(&args.webhook_secret_env)?,
        }),
    };
    let image_access = match (args.image_access, &args.iam_integration) {
        (ImageAccessArg::Presigned, Some(_)) => {
            return Err(CliError::BadInput {
                path: "--iam-integration".into(),
                problem: "only with --image-access delegated".into(),
            });
        }
        (ImageAccessArg::Presigned, None) => ImageAccess::Presigned,
        (ImageAccessArg::Delegated, None) => ImageAccess::DelegatedDefault,
        (ImageAccessArg::Delegated, Some(name)) => ImageAccess::Delegated(name.clone()),
    };
    let spec = SetupSpec {
        project_name: args.project_name.clone(),
        dataset_name: args.dataset_name.clone(),
        ontology_name: args
            .ontology_name
            .clone()
            .unwrap_or_else(|| format!("{} ontology", args.project_name)),
        tool_names,
        webhook,
        image_access,
    };

    let (client, runtime) = client_and_runtime(api_key, &args.endpoint)?;
    let report = match runtime.block_on(client.setup(&spec)) {
        Ok(report) => report,
        Err(e @ LabelboxError::Configuration(_)) => {
            return Err(anyhow::Error::new(e)
                .context(format!(
                    "Labelbox setup at {} (name an integration with --iam-integration NAME_OR_ID, \
                     or use --image-access presigned)",
                    args.endpoint
                ))
                .into());
        }
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context(format!("Labelbox setup at {}", args.endpoint))
                .into());
        }
    };

    for change in &report.changes {
        eprintln!("modelobs: {change}");
    }
    if report.changes.is_empty() {
        eprintln!("modelobs: everything was already set up");
    }
    for warning in &report.warnings {
        eprintln!("modelobs: warning: {warning}");
    }
    match &report.signer {
        Some(signer) => eprintln!(
            "modelobs: images: delegated access through IAM integration {} ({}), role {}",
            signer.name,
            signer.id,
            signer
                .role_arn
                .as_deref()
                .unwrap_or("(not an AWS integration)")
        ),
        None => eprintln!("modelobs: images: presigned URLs, no IAM integration"),
    }
    match &report.webhook_id {
        Some(id) => eprintln!("modelobs: webhook {id}"),
        None => eprintln!(
            "modelobs: no webhook yet: run again with --webhook-url once the stack is deployed"
        ),
    }
    print!("{}", report.parameter_overrides());
    Ok(())
}
