//! What tests share: the gates for tests that need something outside the
//! crate (ONNX Runtime, LocalStack, the Debian test photos), the repository's
//! fixtures, and the fakes of the services we can't reach from tests
//! ([`fake_labelbox`]: Labelbox's GraphQL API; [`fake_observe`]: Observe's
//! ingest endpoint), each a small axum app on 127.0.0.1; for fault soaks,
//! a [`storm`] the fakes can draw faults from and a [`fault_proxy`] in front
//! of LocalStack.
//!
//! # Gated tests cannot pass silently
//!
//! A test that needs the environment is marked
//! `#[ignore = "needs ONNX Runtime (make test runs it)"]` and calls the gate
//! first. A plain `cargo test` lists it as *ignored*, never as passed; `make
//! test` runs everything with `-- --include-ignored` inside the stack, and a
//! gate whose environment is missing then **fails** the test with what to
//! run. There is no "skipped, green" path.

use std::path::{Path, PathBuf};

pub mod bombs;
pub mod fake_labelbox;
pub mod fake_observe;
pub mod fault_proxy;
pub mod soak;
pub mod storm;

/// A free port on 127.0.0.1, bound (a fake may need its own address before
/// it serves: Labelbox's hands out URLs to itself).
pub async fn local_listener() -> (tokio::net::TcpListener, std::net::SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    (listener, addr)
}

/// Serves `app` on `listener` until the handle is aborted (a fake's `Drop`).
pub fn serve_app(
    listener: tokio::net::TcpListener,
    app: axum::Router,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    })
}

/// The repository root (this crate is `crates/testkit`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root exists")
}

/// A file under `events/` (the one set of event fixtures), as text.
pub fn event(relative: &str) -> String {
    let path = repo_root().join("events").join(relative);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading fixture {}: {e}", path.display()))
}

/// A new, not yet existing path under the system's temp directory, unique
/// to this process and call: where a test writes its files.
pub fn temp_dir(name: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "modelobs-{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    // Left by an earlier process that had this pid.
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The directory of generated detector-family models
/// (`MODELOBS_FAMILIES_DIR`, `make families`); panics when it is not there.
pub fn require_families() -> PathBuf {
    require_generated(
        "MODELOBS_FAMILIES_DIR",
        "yolov8/model.json",
        "make families",
    )
}

/// The directory of the serving model's faster variants, `int8/` and
/// `optimized/` (`MODELOBS_VARIANTS_DIR`, `make variant-models`); panics when
/// it is not there.
pub fn require_variants() -> PathBuf {
    require_generated(
        "MODELOBS_VARIANTS_DIR",
        "int8/model.json",
        "make variant-models",
    )
}

/// A directory of generated models named by `var`, holding `probe`.
fn require_generated(var: &str, probe: &str, make: &str) -> PathBuf {
    let dir = std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!("this test needs generated models: {var} is not set (`{make}` makes them; `make test` sets it)")
        });
    assert!(
        dir.join(probe).is_file(),
        "{var}={} holds no generated models: run `{make}`",
        dir.display()
    );
    dir
}

/// The ONNX Runtime library (`ORT_DYLIB_PATH`, `make ort`); panics when it is
/// not there.
pub fn require_ort() -> PathBuf {
    let path = std::env::var_os("ORT_DYLIB_PATH")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "this test needs ONNX Runtime: ORT_DYLIB_PATH is not set \
                 (`make ort` fetches it; `make test` sets it)"
            )
        });
    assert!(
        path.is_file(),
        "ORT_DYLIB_PATH={} is not a file: run `make ort`",
        path.display()
    );
    path
}

/// The bundled model directory, with ONNX Runtime required.
pub fn require_model() -> PathBuf {
    require_ort();
    repo_root().join("models/nanodet")
}

/// Debian's darknet photos (`MODELOBS_TEST_PHOTOS`, default
/// `/usr/share/darknet/data`; `make photos` installs them); panics without.
pub fn require_photos() -> PathBuf {
    let dir = std::env::var_os("MODELOBS_TEST_PHOTOS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/darknet/data"));
    assert!(
        dir.join("horses.jpg").is_file(),
        "this test needs the darknet test photos in {} (`make photos`)",
        dir.display()
    );
    dir
}

/// The LocalStack stack `localstack/with-stack` (or `eval "$(localstack/up)"`)
/// describes in the environment.
#[derive(Debug, Clone)]
pub struct LocalStack {
    pub endpoint: String,
    pub bucket: String,
}

/// Panics when no stack is described (`AWS_ENDPOINT_URL` unset).
pub fn require_localstack() -> LocalStack {
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| {
            panic!(
                "this test needs LocalStack: AWS_ENDPOINT_URL is not set \
                 (run it through `localstack/with-stack cargo test ... -- --include-ignored`, \
                 as `make test` does)"
            )
        });
    LocalStack {
        endpoint,
        bucket: std::env::var("DATA_BUCKET").unwrap_or_else(|_| "modelobs-data".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_holds_the_workspace_and_the_fixtures() {
        assert!(repo_root().join("Cargo.toml").is_file());
        assert!(event("records/capture-record.json").contains("captured_at"));
    }
}
