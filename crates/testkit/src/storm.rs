//! A fault storm for the fakes: a seeded draw per request that says whether
//! to fail it and how (a 429 with `Retry-After`, a 5xx, or no answer at all).
//! One `Storm` can be shared by several fakes, and its rate changed at any
//! time from another task: 0.0 is calm.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What a stormed request gets instead of its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A bare HTTP status, with `Retry-After` seconds.
    Status {
        status: u16,
        retry_after: Option<u64>,
    },
    /// Never answers: the request hangs until the client gives up.
    BlackHole,
}

/// How many faults a storm has drawn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StormCounts {
    pub statuses: u64,
    pub black_holes: u64,
}

pub struct Storm {
    rng: Mutex<ChaCha8Rng>,
    /// An `f64`'s bits.
    rate: AtomicU64,
    statuses: AtomicU64,
    black_holes: AtomicU64,
}

impl std::fmt::Debug for Storm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storm")
            .field("rate", &f64::from_bits(self.rate.load(Ordering::Relaxed)))
            .field("counts", &self.counts())
            .finish()
    }
}

impl Storm {
    /// Faults a share `rate` (0.0..=1.0) of the draws; `seed` fixes which.
    pub fn new(seed: u64, rate: f64) -> Self {
        Self {
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
            rate: AtomicU64::new(rate.to_bits()),
            statuses: AtomicU64::new(0),
            black_holes: AtomicU64::new(0),
        }
    }

    pub fn set_rate(&self, rate: f64) {
        self.rate.store(rate.to_bits(), Ordering::Relaxed);
    }

    /// A fault with probability `rate`: 429 with `Retry-After: 1` (40%), 500
    /// (20%), 503 (25%), a black hole (15%).
    pub fn draw(&self) -> Option<Fault> {
        let rate = f64::from_bits(self.rate.load(Ordering::Relaxed));
        let kind = {
            let mut rng = self.rng.lock().expect("storm rng");
            if rng.random::<f64>() >= rate {
                return None;
            }
            rng.random::<f64>()
        };
        let fault = match kind {
            k if k < 0.40 => Fault::Status {
                status: 429,
                retry_after: Some(1),
            },
            k if k < 0.60 => Fault::Status {
                status: 500,
                retry_after: None,
            },
            k if k < 0.85 => Fault::Status {
                status: 503,
                retry_after: None,
            },
            _ => Fault::BlackHole,
        };
        let counter = match fault {
            Fault::Status { .. } => &self.statuses,
            Fault::BlackHole => &self.black_holes,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Some(fault)
    }

    pub fn counts(&self) -> StormCounts {
        StormCounts {
            statuses: self.statuses.load(Ordering::Relaxed),
            black_holes: self.black_holes.load(Ordering::Relaxed),
        }
    }
}
