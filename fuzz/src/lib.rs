//! The bodies of the fuzz targets, one module each, shared by the libFuzzer
//! binaries (`fuzz_targets/`, built by `make fuzz`) and the stable corpus
//! replay (`tests/replay.rs`, `make fuzz-replay`): both run exactly this code.
//!
//! Each `run` takes the fuzzer's bytes, calls the real parsers and asserts
//! what must hold whatever the bytes: no panic, and where it is cheap a
//! round trip (what was parsed, written back, parses to the same value).
//! Inputs that carry more than one thing (a content type and a body, a topic
//! header and a body) are split by the first newlines: see each module.

pub mod events;
pub mod images;
pub mod records;
pub mod request_body;
pub mod webhook;

/// A target's body: panics (an assertion or the code under test) are findings.
pub type Target = fn(&[u8]);

/// Every target by the name of its binary and corpus directory.
pub const TARGETS: &[(&str, Target)] = &[
    ("images", images::run),
    ("request_body", request_body::run),
    ("webhook", webhook::run),
    ("events", events::run),
    ("records", records::run),
];

/// The first `n` newline-ended lines (lossily UTF-8) and the bytes after them;
/// missing lines are empty.
pub fn split_lines(data: &[u8], n: usize) -> (Vec<String>, &[u8]) {
    let mut lines = Vec::with_capacity(n);
    let mut rest = data;
    for _ in 0..n {
        let (line, after) = match rest.iter().position(|&b| b == b'\n') {
            Some(p) => (&rest[..p], &rest[p + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        lines.push(String::from_utf8_lossy(line).into_owned());
        rest = after;
    }
    (lines, rest)
}

/// Drives a future that only works on bytes already in memory. Such a future
/// never waits on anything, so a `Pending` that is not woken again would
/// hang the Lambda invocation too: it fails the target.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    for _ in 0..10_000 {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
    panic!("an in-memory future never completed");
}
