//! An invocation's time budget: what is left before Lambda's deadline, less a
//! margin to answer in, and the work cut off there. A handler that runs out
//! of time fails cleanly (a 503, a failed event that is retried) instead of
//! being killed mid-write, whatever its clients' own timeouts and retries add
//! up to.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The work did not finish within its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfTime {
    pub budget: Duration,
}

impl std::fmt::Display for OutOfTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "out of time: not done within the {:.1} s this invocation had left",
            self.budget.as_secs_f64()
        )
    }
}

impl std::error::Error for OutOfTime {}

/// Time left before `deadline_ms` (milliseconds since the epoch, as Lambda's
/// `Context::deadline`), less `margin`, taken when an invocation arrives.
///
/// `None` (no cut) when there is no usable deadline: 0 (a test, a local call),
/// or one that leaves no more than the margin on arrival. Lambda never hands
/// out an invocation that is already over, but emulators do: `cargo lambda
/// watch` sends a deadline that has passed when the event arrives, and cutting
/// every request there would refuse them all.
pub fn time_left(deadline_ms: u64, margin: Duration) -> Option<Duration> {
    if deadline_ms == 0 {
        return None;
    }
    let deadline = UNIX_EPOCH + Duration::from_millis(deadline_ms);
    let left = deadline.duration_since(SystemTime::now()).ok()?;
    if left <= margin {
        tracing::warn!(
            left_ms = left.as_millis() as u64,
            "the invocation's deadline leaves no more than the margin on arrival (an emulator's?): not cut"
        );
        return None;
    }
    Some(left - margin)
}

/// Runs `work`, cut off after `budget` (`None`: no limit).
pub async fn within<F: Future>(budget: Option<Duration>, work: F) -> Result<F::Output, OutOfTime> {
    match budget {
        None => Ok(work.await),
        Some(budget) => tokio::time::timeout(budget, work)
            .await
            .map_err(|_| OutOfTime { budget }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_is_before_the_deadline_less_the_margin() {
        assert_eq!(time_left(0, Duration::from_secs(1)), None);
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let left = time_left(now_ms + 10_000, Duration::from_secs(2)).unwrap();
        assert!(left <= Duration::from_secs(8) && left > Duration::from_secs(7));
        assert_eq!(
            time_left(now_ms - 5_000, Duration::from_secs(1)),
            None,
            "already over on arrival: an emulator's deadline, not Lambda's"
        );
        assert_eq!(time_left(now_ms + 500, Duration::from_secs(1)), None);
    }

    #[tokio::test]
    async fn work_past_its_budget_is_cut_off() {
        let budget = Some(Duration::from_millis(50));
        assert_eq!(within(budget, async { 7 }).await, Ok(7));
        let never = within(budget, std::future::pending::<()>()).await;
        assert_eq!(
            never,
            Err(OutOfTime {
                budget: Duration::from_millis(50)
            })
        );
        assert_eq!(within(None, async { 1 }).await, Ok(1));
    }
}
