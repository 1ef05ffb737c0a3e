//! The one retry policy of the system: every retried call — the object store
//! and queue decorators (`modelobs_adapters::retrying`), the Labelbox client,
//! the Observe client, the local labelers — goes through [`RetryPolicy::run`].
//!
//! - Exponential backoff, `first_delay · 2ⁿ` capped at `max_delay`, with
//!   "equal jitter": each wait is drawn from `[d/2, d]`, so clients that failed
//!   together do not retry together, and none retries at once.
//! - A server's `Retry-After` ([`Retryable::retry_after`]) replaces the
//!   computed wait, cut to `max_retry_after` so one answer can't outlast the
//!   caller's own deadline.
//! - Only failures that say they are transient are retried; `attempts` counts
//!   the first try.
//!
//! The AWS SDK clients are built with their own retries off
//! (`modelobs_adapters::s3`, `::queue`), so a call is tried at most
//! `attempts` times in all, not `attempts` × the SDK's 3.

pub mod deadline;

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What a failure says about trying again.
pub trait Retryable {
    /// Throttling, 5xx, timeouts, lost connections: worth another try.
    fn is_transient(&self) -> bool;

    /// How long the other side asked us to wait, if it did.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included (0 counts as 1).
    pub attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// The longest `Retry-After` honoured; a longer one is cut to this.
    pub max_retry_after: Duration,
    /// Draw each wait from `[d/2, d]` (off only where a test needs exact waits).
    pub jitter: bool,
}

impl Default for RetryPolicy {
    /// For calls inside a function invocation (S3, SQS): three tries within
    /// about a second.
    fn default() -> Self {
        Self {
            attempts: 3,
            first_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(1),
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// `attempts` tries with no backoff between them (tests). A server that
    /// asks for a wait (`Retry-After`) is still waited for, up to 30 s; set
    /// `max_retry_after` to zero to ignore it too.
    pub const fn immediate(attempts: u32) -> Self {
        Self {
            attempts,
            first_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
            max_retry_after: Duration::from_secs(30),
            jitter: false,
        }
    }

    /// One try, no retry.
    pub const fn none() -> Self {
        Self::immediate(1)
    }

    /// The ceiling of the wait after the `retry`-th failure (1-based):
    /// `first_delay · 2^(retry-1)`, at most `max_delay`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u32
            .checked_shl(retry.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.first_delay
            .checked_mul(factor)
            .unwrap_or(Duration::MAX)
            .min(self.max_delay)
    }

    /// The wait after the `retry`-th failure: the server's `Retry-After`
    /// (capped) when it sent one, else the backoff, jittered. `unit` is a
    /// draw from [0, 1) (taken as a parameter so this stays a pure function).
    pub fn wait(&self, retry: u32, retry_after: Option<Duration>, unit: f64) -> Duration {
        if let Some(asked) = retry_after {
            return asked.min(self.max_retry_after);
        }
        let ceiling = self.backoff(retry);
        if self.jitter {
            ceiling / 2 + ceiling.mul_f64(unit.clamp(0.0, 1.0) / 2.0)
        } else {
            ceiling
        }
    }

    /// Upper bound of the time spent waiting between tries (no Retry-After):
    /// what a caller adds to its own per-try time to fit a deadline.
    pub fn max_total_wait(&self) -> Duration {
        (1..self.attempts.max(1)).map(|r| self.backoff(r)).sum()
    }

    /// Runs `op` until it succeeds, fails with an error that is not
    /// transient, or the attempts are spent; returns the last result.
    /// `what` names the call in the warning logged before each retry.
    pub async fn run<T, E, F, Fut>(&self, what: &str, op: F) -> Result<T, E>
    where
        E: Retryable + std::fmt::Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.run_classified(what, |e: &E| (e.is_transient(), e.retry_after()), op)
            .await
    }

    /// [`run`](Self::run) for an error type this crate can't implement
    /// [`Retryable`] for: `classify` says (transient, Retry-After).
    pub async fn run_classified<T, E, C, F, Fut>(
        &self,
        what: &str,
        classify: C,
        mut op: F,
    ) -> Result<T, E>
    where
        E: std::fmt::Display,
        C: Fn(&E) -> (bool, Option<Duration>),
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let attempts = self.attempts.max(1);
        let mut attempt = 1;
        loop {
            match op().await {
                Err(e) if attempt < attempts => {
                    let (transient, retry_after) = classify(&e);
                    if !transient {
                        return Err(e);
                    }
                    let wait = self.wait(attempt, retry_after, unit_draw());
                    tracing::warn!(
                        call = what,
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        error = %e,
                        "transient failure, retrying"
                    );
                    if !wait.is_zero() {
                        tokio::time::sleep(wait).await;
                    }
                    attempt += 1;
                }
                result => return result,
            }
        }
    }
}

/// A draw from [0, 1) for jitter. The standard library's randomly keyed
/// hasher over a counter: uniform enough to spread retries, and no
/// dependency for it.
fn unit_draw() -> f64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[derive(Debug)]
    struct Failure {
        transient: bool,
        retry_after: Option<Duration>,
    }

    impl std::fmt::Display for Failure {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "failure (transient: {})", self.transient)
        }
    }

    impl Retryable for Failure {
        fn is_transient(&self) -> bool {
            self.transient
        }
        fn retry_after(&self) -> Option<Duration> {
            self.retry_after
        }
    }

    /// Waits of a few milliseconds: real sleeps, kept short.
    fn fast() -> RetryPolicy {
        RetryPolicy {
            first_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            ..policy()
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            attempts: 5,
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(700),
            max_retry_after: Duration::from_secs(2),
            jitter: true,
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = policy();
        let got: Vec<u128> = (1..=6).map(|r| p.backoff(r).as_millis()).collect();
        assert_eq!(got, vec![100, 200, 400, 700, 700, 700]);
        assert_eq!(
            p.max_total_wait(),
            Duration::from_millis(100 + 200 + 400 + 700)
        );
        // No overflow however many retries.
        assert_eq!(p.backoff(200), Duration::from_millis(700));
    }

    #[test]
    fn jitter_stays_within_half_to_full_backoff() {
        let p = policy();
        assert_eq!(p.wait(3, None, 0.0), Duration::from_millis(200));
        let top = p.wait(3, None, 0.999_999);
        assert!(
            top < Duration::from_millis(400) && top > Duration::from_micros(399_990),
            "{top:?}"
        );
        let draws: Vec<Duration> = (0..200).map(|_| p.wait(2, None, unit_draw())).collect();
        assert!(
            draws
                .iter()
                .all(|d| *d >= Duration::from_millis(100) && *d <= Duration::from_millis(200))
        );
        // Spread, not one value.
        let distinct: std::collections::HashSet<_> = draws.iter().collect();
        assert!(distinct.len() > 100, "{} distinct waits", distinct.len());
        let no_jitter = RetryPolicy { jitter: false, ..p };
        assert_eq!(no_jitter.wait(2, None, 0.3), Duration::from_millis(200));
    }

    #[test]
    fn retry_after_replaces_the_backoff_and_is_capped() {
        let p = policy();
        assert_eq!(
            p.wait(1, Some(Duration::from_millis(1500)), 0.5),
            Duration::from_millis(1500)
        );
        assert_eq!(
            p.wait(1, Some(Duration::from_secs(30)), 0.5),
            Duration::from_secs(2)
        );
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn transient_failures_are_retried_until_the_attempts_are_spent() {
        let calls = Cell::new(0);
        let result: Result<(), Failure> = block_on(fast().run("op", || {
            calls.set(calls.get() + 1);
            async {
                Err(Failure {
                    transient: true,
                    retry_after: None,
                })
            }
        }));
        assert!(result.is_err());
        assert_eq!(calls.get(), 5);
    }

    #[test]
    fn a_permanent_failure_is_not_retried_and_success_stops() {
        let calls = Cell::new(0);
        let result: Result<(), Failure> = block_on(fast().run("op", || {
            calls.set(calls.get() + 1);
            async {
                Err(Failure {
                    transient: false,
                    retry_after: None,
                })
            }
        }));
        assert!(result.is_err());
        assert_eq!(calls.get(), 1);

        let calls = Cell::new(0);
        let result: Result<u32, Failure> = block_on(fast().run("op", || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                if n < 3 {
                    Err(Failure {
                        transient: true,
                        retry_after: None,
                    })
                } else {
                    Ok(n)
                }
            }
        }));
        assert_eq!(result.unwrap(), 3);
    }

    #[test]
    fn immediate_skips_backoff_but_not_a_servers_wait() {
        let p = RetryPolicy::immediate(3);
        assert_eq!(p.wait(1, None, 0.7), Duration::ZERO);
        assert_eq!(
            p.wait(1, Some(Duration::from_secs(2)), 0.7),
            Duration::from_secs(2)
        );
        let deaf = RetryPolicy {
            max_retry_after: Duration::ZERO,
            ..p
        };
        assert_eq!(
            deaf.wait(1, Some(Duration::from_secs(2)), 0.7),
            Duration::ZERO
        );
    }

    #[test]
    fn zero_attempts_still_tries_once() {
        let calls = Cell::new(0);
        let _: Result<(), Failure> = block_on(RetryPolicy::immediate(0).run("op", || {
            calls.set(calls.get() + 1);
            async {
                Err(Failure {
                    transient: true,
                    retry_after: None,
                })
            }
        }));
        assert_eq!(calls.get(), 1);
    }
}
