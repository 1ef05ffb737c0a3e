//! `modelobs model push|list|show|pull|promote`: the model registry in the
//! data bucket (`modelobs_pipeline::registry`); `modelobs model check`: a
//! model directory against its own ONNX file, before it is pushed
//! (`modelobs_detector::check`).

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Args, Subcommand};
use modelobs_pipeline::profiles::{self, ReferencePushed};
use modelobs_pipeline::registry::{self, Pushed, parse_reference};

#[derive(Args, Debug)]
pub struct ModelArgs {
    #[command(subcommand)]
    command: ModelCommand,
    /// The data bucket (AWS_ENDPOINT_URL for LocalStack).
    #[arg(long, env = "DATA_BUCKET", global = true)]
    bucket: Option<String>,
}

#[derive(Subcommand, Debug)]
enum ModelCommand {
    /// Check DIR/model.json against its ONNX file (input and output names, dtypes, shapes,
    /// class count, labels) and run one generated image; no bucket needed. Exits non-zero
    /// with the model.json field to fix.
    Check {
        /// The directory holding model.json (or model.json itself).
        dir: PathBuf,
    },
    /// Upload a model directory (model.json and its file) as models/<name>/<version>/.
    Push {
        /// The directory holding model.json.
        dir: PathBuf,
    },
    /// Every registered version, and which one is promoted.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One version's model.json.
    Show {
        /// <name>/<version>
        reference: String,
    },
    /// Download a version (sha256 checked) into DIR/<name>/<version>/.
    Pull {
        reference: String,
        #[arg(long, default_value = ".cache/models")]
        into: PathBuf,
    },
    /// Record a registered version as the one to serve (models/<name>/promoted.json).
    Promote {
        reference: String,
        /// Why (e.g. the backtest's verdict); kept in the promotion record.
        #[arg(long)]
        reason: Option<String>,
    },
}

pub fn run(args: &ModelArgs) -> Result<()> {
    if let ModelCommand::Check { dir } = &args.command {
        return check(dir);
    }
    let bucket = args
        .bucket
        .clone()
        .ok_or_else(|| anyhow::anyhow!("--bucket or DATA_BUCKET: the data bucket"))?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let store = crate::bucket_store(&bucket).await;
            match &args.command {
                ModelCommand::Check { .. } => unreachable!("answered above, without a bucket"),
                ModelCommand::Push { dir } => {
                    let (entry, pushed) = registry::push(&store, dir).await?;
                    let what = match pushed {
                        Pushed::Uploaded => "pushed",
                        Pushed::AlreadyThere => "already in the registry",
                    };
                    println!(
                        "{}/{}: {what} (s3://{bucket}/models/{}/{}/, {} bytes, sha256 {})",
                        entry.name,
                        entry.version,
                        entry.name,
                        entry.version,
                        entry.size_bytes,
                        entry.sha256
                    );
                    match profiles::push_reference(&store, dir, &entry.reference()).await? {
                        ReferencePushed::None => println!(
                            "  no {} in {}: its windows get no drift test until one is stored (modelobs drift reference)",
                            profiles::REFERENCE_FILE,
                            dir.display()
                        ),
                        ReferencePushed::Stored(key) => {
                            println!("  drift reference stored: s3://{bucket}/{key}")
                        }
                        ReferencePushed::Kept(key) => println!(
                            "  drift reference kept: s3://{bucket}/{key} was there already"
                        ),
                    }
                }
                ModelCommand::List { json } => {
                    let models = registry::list(&store).await?;
                    let mut promoted = std::collections::BTreeMap::new();
                    for m in &models {
                        if !promoted.contains_key(&m.name)
                            && let Some((p, _)) = registry::promoted(&store, &m.name).await?
                        {
                            promoted.insert(m.name.clone(), p);
                        }
                    }
                    if *json {
                        let rows: Vec<_> = models
                            .iter()
                            .map(|m| {
                                serde_json::json!({
                                    "name": m.name,
                                    "version": m.version,
                                    "parent": m.parent(),
                                    "sha256": m.sha256,
                                    "size_bytes": m.size_bytes,
                                    "promoted": promoted.get(&m.name).is_some_and(|p| p.model == m.reference()),
                                })
                            })
                            .collect();
                        println!("{}", serde_json::to_string_pretty(&rows)?);
                    } else {
                        println!("  {:<28} {:<36} {:<40} promoted", "name", "version", "parent");
                        for m in &models {
                            let is = promoted
                                .get(&m.name)
                                .is_some_and(|p| p.model == m.reference());
                            println!(
                                "  {:<28} {:<36} {:<40} {}",
                                m.name,
                                m.version,
                                m.parent().unwrap_or_else(|| "-".into()),
                                if is { "yes" } else { "" }
                            );
                        }
                    }
                }
                ModelCommand::Show { reference } => {
                    let entry = registry::show(&store, &parse_reference(reference)?).await?;
                    println!("{}", serde_json::to_string_pretty(&entry.metadata)?);
                }
                ModelCommand::Pull { reference, into } => {
                    let dir = registry::pull(&store, &parse_reference(reference)?, into).await?;
                    println!("{}", dir.display());
                }
                ModelCommand::Promote { reference, reason } => {
                    let model = parse_reference(reference)?;
                    let p =
                        registry::promote(&store, &model, reason.clone(), chrono::Utc::now())
                            .await?;
                    match &p.previous {
                        Some(prev) => println!(
                            "promoted {}/{} (was {}/{})",
                            p.model.name, p.model.version, prev.name, prev.version
                        ),
                        None => println!("promoted {}/{}", p.model.name, p.model.version),
                    }
                    println!(
                        "  on AWS: sam deploy --parameter-overrides ServingModelRef={}/{} (the live alias shifts per DeploymentType)",
                        p.model.name, p.model.version
                    );
                }
            }
            Ok(())
        })
}

fn check(dir: &Path) -> Result<()> {
    let report = modelobs_detector::check::check_model(dir, None)?;
    println!(
        "{}: {}/{} ({} decode, {} classes, names from {})",
        report.model_json.display(),
        report.name,
        report.version,
        report.family,
        report.num_classes,
        report.labels_from
    );
    for t in &report.signature.inputs {
        println!("  input  {t}");
    }
    for t in &report.signature.outputs {
        println!("  output {t}");
    }
    let candidates = match report.candidates_before_nms {
        Some(n) => format!(", {n} candidates before NMS"),
        None => String::new(),
    };
    println!(
        "  ok: a grey {}x{} JPEG gave {} detections{candidates} (load {:.0} ms, inference {:.1} ms)",
        report.image.0, report.image.1, report.detections, report.load_ms, report.inference_ms
    );
    Ok(())
}
