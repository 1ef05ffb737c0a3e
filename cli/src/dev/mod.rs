//! `modelobs dev`: the functions under `cargo lambda watch`, and the event
//! router delivering LocalStack's S3 notifications and SQS messages to them
//! as AWS would (see `router`). Run it inside `localstack/with-stack` or after
//! `localstack/up`, whose variables name the bucket and the queues.

pub mod clients;
pub mod router;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use tokio::process::{Child, Command};

use clients::{Sqs, WatchInvoker};
use router::{Delivery, Route, Stats};

/// The webhook secret the local stack uses unless `WEBHOOK_SECRET` says otherwise.
pub const DEV_WEBHOOK_SECRET: &str = "modelobs-dev-webhook-secret";

#[derive(Args, Debug)]
pub struct DevArgs {
    /// Where `cargo lambda watch` listens (function URLs and the invoke API).
    #[arg(long, default_value = "127.0.0.1")]
    pub address: String,
    #[arg(long, default_value_t = 9000)]
    pub port: u16,
    /// The queue S3 notifies for new capture records (stands in for the sampler's S3 trigger).
    #[arg(long, env = "SAMPLER_EVENTS_QUEUE_URL")]
    pub sampler_events: String,
    /// The queue S3 notifies for `incoming/` uploads (inference-upload's trigger).
    #[arg(long, env = "UPLOAD_EVENTS_QUEUE_URL")]
    pub upload_events: Option<String>,
    /// The metrics queue (the metrics function's SQS event source).
    #[arg(long, env = "METRICS_QUEUE_URL")]
    pub metrics_queue: String,
    /// On-failure destinations of the S3-triggered functions.
    #[arg(long, env = "SAMPLER_FAILURE_QUEUE_URL")]
    pub sampler_failures: Option<String>,
    #[arg(long, env = "UPLOAD_FAILURE_QUEUE_URL")]
    pub upload_failures: Option<String>,
    /// Tries of an S3-triggered invocation before its on-failure destination (Lambda: 1 + 2 retries).
    #[arg(long, default_value_t = 3)]
    pub attempts: u32,
    /// Seconds a failed message waits before its next try (AWS waits out the visibility timeout).
    #[arg(long, default_value_t = 1)]
    pub retry_delay_s: u64,
    /// Seconds between rollup runs (the template's schedule is 5 minutes); 0 turns it off.
    #[arg(long, default_value_t = 20)]
    pub rollup_every_s: u64,
    /// Seconds between `sampler-sweep` runs (the template's schedule is 15 minutes); 0 turns it off.
    #[arg(long, default_value_t = 300)]
    pub sweep_every_s: u64,
    /// Route to a `cargo lambda watch` that is already running instead of starting one.
    #[arg(long)]
    pub no_watch: bool,
    /// The cargo-lambda executable (scripts/cargo-lambda.sh installs the pinned one).
    #[arg(long, env = "CARGO_LAMBDA", default_value = "cargo-lambda")]
    pub cargo_lambda: PathBuf,
}

pub fn run(args: &DevArgs) -> Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(args))
}

/// Sets a variable for the functions unless the caller already has.
fn default_env(name: &str, value: &str) {
    if std::env::var_os(name).is_none() {
        // SAFETY: called before any other thread of this process reads the
        // environment (the runtime's workers don't).
        unsafe { std::env::set_var(name, value) };
    }
}

async fn serve(args: &DevArgs) -> Result<()> {
    let base = format!("http://{}:{}", args.address, args.port);
    let mut watch = if args.no_watch {
        None
    } else {
        Some(start_watch(args).await?)
    };
    wait_for_port(&args.address, args.port, watch.as_mut()).await?;

    println!("modelobs dev: functions served by cargo lambda watch at {base}");
    println!("  predict  POST {base}/lambda-url/inference/predict");
    println!("  health   GET  {base}/lambda-url/inference/health");
    println!("  webhook  POST {base}/lambda-url/webhook/");
    println!(
        "  router   {} → sampler, {} → metrics{}",
        args.sampler_events,
        args.metrics_queue,
        if args.rollup_every_s > 0 {
            format!(", rollup every {} s", args.rollup_every_s)
        } else {
            String::new()
        }
    );
    if args.sweep_every_s > 0 {
        println!("  sweep    sampler-sweep every {} s", args.sweep_every_s);
    }
    println!("modelobs dev: ready (Ctrl-C stops it)");

    let sqs = Sqs(modelobs_adapters::queue::SqsQueue::client_from_env().await);
    let invoker = WatchInvoker {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(900))
            .build()?,
        base: base.clone(),
    };
    let retry_delay = Duration::from_secs(args.retry_delay_s);
    let mut routes = vec![
        Route {
            queue_url: args.sampler_events.clone(),
            function: "sampler".into(),
            delivery: Delivery::S3Notification {
                attempts: args.attempts,
                on_failure: args.sampler_failures.clone(),
            },
            retry_delay,
        },
        Route {
            queue_url: args.metrics_queue.clone(),
            function: "metrics".into(),
            delivery: Delivery::SqsBatch {
                batch_size: 10,
                queue_arn: queue_arn(&args.metrics_queue),
            },
            retry_delay,
        },
    ];
    if let Some(url) = &args.upload_events {
        routes.push(Route {
            queue_url: url.clone(),
            function: "inference-upload".into(),
            delivery: Delivery::S3Notification {
                attempts: args.attempts,
                on_failure: args.upload_failures.clone(),
            },
            retry_delay,
        });
    }

    let routing = async {
        let loops = routes
            .iter()
            .map(|route| route_forever(route, &sqs, &invoker));
        futures_util::future::join_all(loops).await;
    };
    let rollups = schedule_forever(&invoker, "rollup", "modelobs-rollup", args.rollup_every_s);
    let sweeps = schedule_forever(
        &invoker,
        "sampler-sweep",
        "modelobs-sampler-sweep",
        args.sweep_every_s,
    );
    let outcome: Result<()> = tokio::select! {
        _ = routing => Ok(()),
        _ = rollups => Ok(()),
        _ = sweeps => Ok(()),
        _ = shutdown_signal() => {
            println!("modelobs dev: stopping");
            Ok(())
        }
        status = async {
            match watch.as_mut() {
                Some(child) => child.wait().await,
                None => std::future::pending().await,
            }
        } => Err(anyhow::anyhow!("cargo lambda watch exited: {status:?}")),
    };
    if let Some(child) = watch {
        stop_group(child).await;
    }
    outcome
}

/// `arn:aws:sqs:<region>:<account>:<name>` from a LocalStack queue URL.
fn queue_arn(url: &str) -> String {
    let name = url.rsplit('/').next().unwrap_or(url);
    format!("arn:aws:sqs:us-east-1:000000000000:{name}")
}

async fn route_forever<Q: router::EventQueue, I: router::Invoker>(
    route: &Route,
    queue: &Q,
    invoker: &I,
) {
    let mut total = Stats::default();
    loop {
        match router::poll_once(route, queue, invoker, Duration::from_secs(2)).await {
            Ok(stats) if stats.received > 0 => {
                total.add(stats);
                tracing::info!(function = %route.function, ?stats, ?total, "routed");
                println!(
                    "router: {} ← {} message(s): {} delivered, {} failed, {} to the failure destination, {} not for it (so far {} delivered)",
                    route.function,
                    stats.received,
                    stats.delivered,
                    stats.failed,
                    stats.dead_lettered,
                    stats.skipped,
                    total.delivered
                );
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(function = %route.function, error = %e, "routing failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// `function` on a schedule (EventBridge's scheduled event, named `rule`).
async fn schedule_forever<I: router::Invoker>(
    invoker: &I,
    function: &str,
    rule: &str,
    every_s: u64,
) {
    if every_s == 0 {
        return std::future::pending().await;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(every_s));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let event = router::scheduled_event(rule, chrono::Utc::now());
        match invoker.invoke(function, &event).await {
            Ok(router::Invocation::Succeeded(summary)) => println!("{function}: {summary}"),
            Ok(router::Invocation::Failed(error)) => println!("{function} failed: {error}"),
            Err(e) => println!("{function} not reachable: {e}"),
        }
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Builds the function binaries first (one cargo build, not one per first
/// invocation), then starts `cargo lambda watch` in its own process group so
/// that stopping it also stops the functions it spawned.
async fn start_watch(args: &DevArgs) -> Result<Child> {
    let root = std::env::current_dir()?;
    default_env("LABELING_BACKEND", "local");
    default_env("ALLOW_CLIENT_TIMESTAMPS", "true");
    default_env("WEBHOOK_SECRET", DEV_WEBHOOK_SECRET);
    default_env("LABEL_SOURCE", "local");
    default_env(
        "MODEL_DIR",
        &root.join("models/nanodet").display().to_string(),
    );
    default_env("AWS_REGION", "us-east-1");
    default_env("RUST_LOG", "info");
    for var in ["DATA_BUCKET", "AWS_ENDPOINT_URL", "ORT_DYLIB_PATH"] {
        if std::env::var_os(var).is_none() {
            bail!("{var} is not set: run inside localstack/with-stack (or `make dev`)");
        }
    }

    // The whole workspace, as `make bins` and `cargo test` build it: the same
    // selection resolves the same features, so this reuses that build instead
    // of compiling the dependencies again for a subset.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(&cargo);
    build.args(["build", "--workspace", "--bins"]);
    println!("modelobs dev: building the functions (cargo build --workspace --bins)");
    let status = build.status().await.context("running cargo build")?;
    if !status.success() {
        bail!("building the functions failed ({status})");
    }
    let shim_dir = root.join(".cache/dev/bin");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let shim = cargo_run_shim(&shim_dir, &target, &real_cargo(&cargo, &shim_dir)?)?;
    let path = match std::env::var_os("PATH") {
        Some(p) => std::env::join_paths(std::iter::once(shim).chain(std::env::split_paths(&p)))?,
        None => shim.into_os_string(),
    };

    let mut watch = Command::new(&args.cargo_lambda);
    watch
        .env("PATH", path)
        .args(["lambda", "watch", "--ignore-changes", "--quiet", "-A"])
        .arg(&args.address)
        .arg("-P")
        .arg(args.port.to_string())
        .stdin(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    let child = watch.spawn().with_context(|| {
        format!(
            "starting {} (install it with scripts/cargo-lambda.sh, or set CARGO_LAMBDA)",
            args.cargo_lambda.display()
        )
    })?;
    if let Some(pid) = child.id() {
        println!("modelobs dev: cargo lambda watch is process group {pid}");
    }
    Ok(child)
}

/// `cargo` as an absolute path (the shim must not find itself on PATH).
fn real_cargo(cargo: &str, shim_dir: &std::path::Path) -> Result<String> {
    let path = std::path::Path::new(cargo);
    if path.is_absolute() {
        return Ok(cargo.to_string());
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .filter(|dir| dir != shim_dir)
        .map(|dir| dir.join(cargo))
        .find(|candidate| candidate.is_file())
        .map(|found| found.display().to_string())
        .with_context(|| format!("{cargo} is not on PATH"))
}

/// `cargo lambda watch` starts each function with `cargo run --bin <name>`,
/// which resolves features for that one package and so compiles a dozen
/// dependencies again per function (about a minute each here) before the
/// first request is answered. A `cargo` first on the watcher's PATH turns
/// that `run` into the workspace build above (a no-op: same selection, same
/// features) and the binary it made; every other command goes to `real`.
/// Returns the directory holding it.
fn cargo_run_shim(dir: &std::path::Path, target: &std::path::Path, real: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let script = format!(
        r#"#!/bin/sh
# Written by `modelobs dev` (cli/src/dev/mod.rs, cargo_run_shim): cargo lambda
# watch's `cargo run --bin X` as the workspace build and target/debug/X.
real='{real}'
if [ "$1" = run ]; then
  shift
  bin=
  while [ $# -gt 0 ]; do
    case "$1" in
      --bin) bin="$2"; shift 2 ;;
      --) shift; break ;;
      *) shift ;;
    esac
  done
  [ -n "$bin" ] || {{ echo "cargo shim: no --bin in: cargo run $*" >&2; exit 2; }}
  "$real" build --workspace --bins --quiet || exit $?
  exec '{target}/debug/'"$bin" "$@"
fi
exec "$real" "$@"
"#,
        real = real.replace('\'', ""),
        target = target.display().to_string().replace('\'', ""),
    );
    let path = dir.join("cargo");
    std::fs::write(&path, script)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(dir.to_path_buf())
}

async fn wait_for_port(address: &str, port: u16, mut watch: Option<&mut Child>) -> Result<()> {
    for _ in 0..600 {
        if tokio::net::TcpStream::connect((address, port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if let Some(child) = watch.as_deref_mut()
            && let Some(status) = child.try_wait()?
        {
            bail!("cargo lambda watch exited before listening: {status}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("nothing listens on {address}:{port} after 60 s")
}

/// TERM to the whole group (cargo lambda and the functions it runs), then KILL.
async fn stop_group(mut child: Child) {
    if let Some(pid) = child.id() {
        let group = format!("-{pid}");
        let _ = Command::new("kill")
            .args(["-TERM", "--", &group])
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .is_err()
        {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &group])
                .status()
                .await;
        }
        // Function processes may outlive their parent for a moment.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .status()
            .await;
    }
    let _ = child.wait().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("modelobs-shim-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn executable(path: &std::path::Path, script: &str) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, script).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// cargo lambda watch's exact call: `cargo run --color auto --manifest-path
    /// Cargo.toml --bin <name>`, then the function's own arguments.
    #[test]
    fn the_shim_builds_the_workspace_then_runs_the_built_binary() {
        let root = scratch("run");
        let target = root.join("target");
        let log = root.join("cargo.log");
        let real = root.join("real/cargo");
        executable(
            &real,
            &format!("#!/bin/sh\necho \"$@\" >> '{}'\n", log.display()),
        );
        executable(
            &target.join("debug/webhook"),
            "#!/bin/sh\necho \"webhook $*\"\n",
        );
        let dir = cargo_run_shim(&root.join("bin"), &target, &real.display().to_string()).unwrap();

        let run = |args: &[&str]| {
            let out = std::process::Command::new(dir.join("cargo"))
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            String::from_utf8(out.stdout).unwrap()
        };
        let out = run(&[
            "run",
            "--color",
            "auto",
            "--manifest-path",
            "Cargo.toml",
            "--bin",
            "webhook",
            "--",
            "a",
            "b",
        ]);
        assert_eq!(out.trim(), "webhook a b");
        // Anything else goes to cargo itself, unchanged.
        run(&["metadata", "--format-version", "1"]);
        let calls = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            calls.lines().collect::<Vec<_>>(),
            [
                "build --workspace --bins --quiet",
                "metadata --format-version 1"
            ]
        );
    }

    #[test]
    fn the_real_cargo_is_never_the_shim() {
        let root = scratch("real");
        let shim_dir = root.join("bin");
        executable(&shim_dir.join("cargo"), "#!/bin/sh\n");
        let found = real_cargo("cargo", &shim_dir).unwrap();
        assert!(std::path::Path::new(&found).is_absolute(), "{found}");
        assert_ne!(
            std::path::Path::new(&found).parent(),
            Some(shim_dir.as_path())
        );
        assert_eq!(real_cargo("/opt/cargo", &shim_dir).unwrap(), "/opt/cargo");
    }
}
