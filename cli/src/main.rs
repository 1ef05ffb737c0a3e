//! `modelobs`: the command line of model-observability.

mod eval;
mod labelbox;
mod predict;

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
    /// Labelbox: `setup` creates or finds the project, dataset, ontology and webhook.
    Labelbox(labelbox::LabelboxArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Eval(args) => eval::run(&args),
        Command::Predict(args) => predict::run(&args),
        Command::Labelbox(args) => labelbox::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("modelobs: {e:#}");
            ExitCode::from(e.exit_code())
        }
    }
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
