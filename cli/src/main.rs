//! `modelobs`: the command line of model-observability.

mod backtest;
mod dataset;
mod dev;
mod drift;
mod eval;
mod label;
mod labelbox;
mod labelbox_check;
mod model;
mod predict;
mod report;
mod rollup;
mod simulate;
mod truth;
mod windows;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "modelobs",
    version,
    about = "Watch an object detector's quality in production"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Evaluate COCO detection results against ground truth, as pycocotools does.
    Eval(eval::EvalArgs),
    /// Detect objects in image files with the model the inference function runs.
    Predict(predict::PredictArgs),
    /// Labelbox: `setup` creates or finds the project, dataset, ontology and webhook;
    /// `check` tries a connected project live.
    Labelbox(labelbox::LabelboxArgs),
    /// The local stack's functions (cargo lambda watch) and the event router feeding them.
    Dev(dev::DevArgs),
    /// Training data: composites, exports from the bucket, Labelbox imports.
    Dataset(dataset::DatasetArgs),
    /// Send days of dated, drifting traffic to the inference URL.
    Simulate(simulate::SimulateArgs),
    /// Answer the local labeling queue through the signed webhook.
    Label(label::LabelArgs),
    /// Label-free drift: `reference` stores the baseline a version's windows are tested against.
    Drift(drift::DriftArgs),
    /// Windows of a time range, labelled or not, with drift and estimated AP50, as a table or JSON.
    Metrics(windows::MetricsArgs),
    /// Run the rollup once against the bucket: recompute every touched window.
    Rollup(rollup::RollupArgs),
    /// Model versions in the bucket's registry: push, list, show, pull, promote.
    Model(model::ModelArgs),
    /// A candidate model against the serving one on labelled captures, with a verdict.
    Backtest(backtest::BacktestArgs),
    /// Charts of the windows over time, by model version, as one HTML file.
    Report(report::ReportArgs),
    /// Time the rollup on a COCO pair's stored evaluations (make bench-rollup).
    #[command(hide = true)]
    BenchRollup(rollup::BenchRollupArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Eval(args) => eval::run(&args),
        Command::Predict(args) => predict::run(&args),
        Command::Labelbox(args) => labelbox::run(&args),
        Command::Dev(args) => dev::run(&args).map_err(CliError::from),
        Command::Dataset(args) => dataset::run(&args).map_err(CliError::from),
        Command::Simulate(args) => simulate::run(&args).map_err(CliError::from),
        Command::Label(args) => label::run(&args).map_err(CliError::from),
        Command::Metrics(args) => windows::run(&args),
        Command::Drift(args) => drift::run(&args).map_err(CliError::from),
        Command::Rollup(args) => rollup::run(&args),
        Command::Report(args) => report::run(&args),
        Command::Model(args) => model::run(&args).map_err(CliError::from),
        Command::Backtest(args) => backtest::run(&args).map_err(CliError::from),
        Command::BenchRollup(args) => rollup::bench(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("modelobs: {e:#}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// The data bucket through the S3 store with the one retry policy, as every
/// command that reads or writes the bucket uses it (AWS_ENDPOINT_URL for LocalStack).
pub(crate) async fn bucket_store(
    bucket: &str,
) -> modelobs_adapters::Retrying<modelobs_adapters::s3::S3Store> {
    use modelobs_adapters::s3::S3Store;
    modelobs_adapters::Retrying::new(
        S3Store::new(S3Store::client_from_env().await, bucket),
        modelobs_adapters::RetryPolicy::default(),
    )
}

/// What went wrong, and the exit code it deserves: 2 for bad input, 1 otherwise.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{path}: {problem}")]
    BadInput { path: String, problem: String },
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl CliError {
    fn exit_code(&self) -> u8 {
        match self {
            Self::BadInput { .. } => 2,
            Self::Other(_) => 1,
        }
    }
}
