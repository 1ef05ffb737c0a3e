//! Which captures go to a person, and why (docs/data-contract.md, "Sampling").
//!
//! Pure: [`candidate`] says whether a capture wants a label and which daily
//! quota units it must claim; [`decide`] builds the `samples/<id>.json`
//! record once the edge has claimed them. Claiming is the edge's: one
//! conditional put (`If-None-Match: *`) per slot object, walking
//! [`QuotaUnit::slot_keys`] and checking taken slots with [`holds_slot`]:
//!
//! ```text
//! for unit in &candidate.units {                 // class quota first, then the daily budget
//!     let mut held = false;
//!     for key in unit.slot_keys(candidate.id) {
//!         match put(key, slot_body(id), If-None-Match: *) {   // 409, 5xx: retry the same key
//!             Written => { held = true; break }
//!             ConditionFailed if holds_slot(get(key), id) => { held = true; break }
//!             ConditionFailed => continue,
//!         }
//!     }
//!     if !held { return QuotaOutcome::Exhausted(*unit) }
//! }
//! QuotaOutcome::Granted
//! ```
//!
//! Slots are never deleted while their day can still be processed, so
//! every slot a capture passed on its way to the one it won stays taken by
//! others: a redelivery walks the same order and finds its own slot before
//! any free one. That is why a capture never holds two slots of one unit.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::classes::{self, CocoClass};
use crate::keys;
use crate::records::{
    CaptureId, CaptureRecord, Detection, SampleReason, SampleState, SamplingDecision,
};

/// The most slots a daily budget or class quota may have. Bounds what one
/// claim can cost once a unit is full (a failed put and a read per slot)
/// and keeps a unit's slots within one 1000-key listing page.
pub const MAX_SLOTS_PER_DAY: u32 = 1000;

/// The sampler's policy: one JSON document, from the sampler's configuration.
/// Every field is optional; `{}` is [`SamplingPolicy::default`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SamplingPolicy {
    /// Recorded in every decision; also salts the draw, so renaming the
    /// policy picks a different uniform sample.
    pub name: String,
    /// Share of captures with detections sampled at random.
    pub uniform_rate: f64,
    pub uncertainty: Uncertainty,
    /// Share of captures without detections sampled: missed animals hide there.
    pub empty_rate: f64,
    pub class_quota_per_day: ClassQuota,
    /// Most captures sampled per UTC day of capture time, all reasons together.
    pub daily_budget: u32,
}

impl Default for SamplingPolicy {
    fn default() -> Self {
        Self {
            name: "default".into(),
            uniform_rate: 0.05,
            uncertainty: Uncertainty::default(),
            empty_rate: 0.2,
            class_quota_per_day: ClassQuota::default(),
            daily_budget: 100,
        }
    }
}

/// A capture is uncertain when any detection's score lies in `band`
/// (inclusive) or its top score is below `top_score_below`; `null` turns
/// either test off. Bands below the serving threshold never match: those
/// detections were not returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Uncertainty {
    pub band: Option<[f64; 2]>,
    pub top_score_below: Option<f64>,
    /// Share of uncertain captures sampled.
    pub rate: f64,
}

impl Default for Uncertainty {
    fn default() -> Self {
        Self {
            band: Some([0.3, 0.6]),
            top_score_below: Some(0.4),
            rate: 1.0,
        }
    }
}

/// Most captures sampled per class and UTC day. A class listed in `classes`
/// gets its own limit, any other `default`; `null` (the default) leaves
/// classes to the daily budget alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClassQuota {
    pub default: Option<u32>,
    /// COCO-80 class name (`"traffic light"`) → limit.
    pub classes: BTreeMap<String, u32>,
}

impl ClassQuota {
    /// The class's daily limit; `None` when it has none.
    pub fn limit(&self, class: &CocoClass) -> Option<u32> {
        self.classes.get(class.name).copied().or(self.default)
    }
}

/// A policy the sampler refuses to run with, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("sampling policy: {field}: {why}")]
pub struct PolicyError {
    /// Dotted path, e.g. `uncertainty.band`; `document` when the JSON
    /// itself is unreadable.
    pub field: String,
    pub why: String,
}

impl PolicyError {
    fn new(field: impl Into<String>, why: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            why: why.into(),
        }
    }
}

impl SamplingPolicy {
    /// Parses and validates the policy document.
    pub fn from_json(json: &str) -> Result<Self, PolicyError> {
        let policy: Self = serde_json::from_str(json).map_err(|e| {
            let why = e.to_string();
            // serde names the field itself for unknown and missing fields.
            let field = why
                .split('`')
                .nth(1)
                .filter(|_| why.starts_with("unknown field") || why.starts_with("missing field"))
                .unwrap_or("document")
                .to_string();
            PolicyError { field, why }
        })?;
        policy.validate()?;
        Ok(policy)
    }

    pub fn validate(&self) -> Result<(), PolicyError> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !name_ok {
            return Err(PolicyError::new(
                "name",
                format!(
                    "{:?} must be 1 to 64 letters, digits, '.', '_' or '-'",
                    self.name
                ),
            ));
        }
        unit_interval("uniform_rate", self.uniform_rate)?;
        unit_interval("empty_rate", self.empty_rate)?;
        unit_interval("uncertainty.rate", self.uncertainty.rate)?;
        if let Some([low, high]) = self.uncertainty.band {
            unit_interval("uncertainty.band", low)?;
            unit_interval("uncertainty.band", high)?;
            if low > high {
                return Err(PolicyError::new(
                    "uncertainty.band",
                    format!("low end {low} is above high end {high}"),
                ));
            }
        }
        if let Some(t) = self.uncertainty.top_score_below {
            unit_interval("uncertainty.top_score_below", t)?;
        }
        slot_limit("daily_budget", self.daily_budget)?;
        if let Some(d) = self.class_quota_per_day.default {
            slot_limit("class_quota_per_day.default", d)?;
        }
        for (name, &limit) in &self.class_quota_per_day.classes {
            let field = format!("class_quota_per_day.classes.{name}");
            if classes::by_name(name).is_none() {
                return Err(PolicyError::new(
                    field,
                    "is not a COCO-80 class name (e.g. \"dog\", \"traffic light\")",
                ));
            }
            slot_limit(&field, limit)?;
        }
        Ok(())
    }
}

fn unit_interval(field: &str, v: f64) -> Result<(), PolicyError> {
    if (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(PolicyError::new(
            field,
            format!("must be a number in [0, 1], got {v}"),
        ))
    }
}

fn slot_limit(field: &str, v: u32) -> Result<(), PolicyError> {
    if v <= MAX_SLOTS_PER_DAY {
        Ok(())
    } else {
        Err(PolicyError::new(
            field,
            format!("must be at most {MAX_SLOTS_PER_DAY} per day, got {v}"),
        ))
    }
}

/// SHA-256 of the parts, each followed by a zero byte; the first 8 bytes,
/// big-endian. Stable across builds and platforms, unlike `DefaultHasher`.
fn hash64(parts: &[&[u8]]) -> u64 {
    let mut h = Sha256::new();
    for part in parts {
        h.update(part);
        h.update([0u8]);
    }
    let digest = h.finalize();
    u64::from_be_bytes(
        digest[..8]
            .try_into()
            .expect("a SHA-256 digest has 32 bytes"),
    )
}

/// The capture's draw in [0, 1): the same for the same capture and salt on
/// every call, build and platform, so a redelivered capture gets the same
/// decision. A capture is sampled at rate `r` when its draw is below `r`.
pub fn draw(salt: &str, id: CaptureId) -> f64 {
    let h = hash64(&[b"modelobs/sample", salt.as_bytes(), id.0.as_bytes()]);
    // The top 53 bits: every value exact in an f64, strictly below 1.
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// What the policy says about one capture, before any quota is claimed.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub id: CaptureId,
    /// UTC date of the capture time: the day whose quotas it counts against.
    pub day: NaiveDate,
    /// `Uncertain`, `Empty` or `Uniform` when it wants a label, else `NotSelected`.
    pub reason: SampleReason,
    pub detail: String,
    /// The class it counts against: the detection the reason is about
    /// (the highest-scoring one in the band, else the top detection).
    /// `None` for empty captures and classes outside COCO-80.
    pub class: Option<CocoClass>,
    pub draw: f64,
    /// The quota units to claim, in order; empty when no label is wanted.
    pub units: Vec<QuotaUnit>,
}

impl Candidate {
    pub fn wanted(&self) -> bool {
        self.reason != SampleReason::NotSelected
    }
}

/// One daily limit: `limit` slot objects, each created at most once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaUnit {
    pub day: NaiveDate,
    pub scope: QuotaScope,
    pub limit: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaScope {
    Class(CocoClass),
    DailyBudget,
}

impl QuotaUnit {
    /// The folder holding this unit's slots.
    pub fn prefix(&self) -> String {
        match &self.scope {
            QuotaScope::Class(c) => keys::class_slots_prefix(self.day, c),
            QuotaScope::DailyBudget => keys::budget_slots_prefix(self.day),
        }
    }

    pub fn slot_key(&self, n: u32) -> String {
        match &self.scope {
            QuotaScope::Class(c) => keys::class_slot(self.day, c, n),
            QuotaScope::DailyBudget => keys::budget_slot(self.day, n),
        }
    }

    /// Every slot of the unit, once, in the order `id` tries them: from a
    /// start drawn from the capture id, then on, wrapping around. The same
    /// capture always gets the same order (so a redelivery meets its own
    /// slot first); different captures start apart, so concurrent claimers
    /// rarely race for one key.
    pub fn slot_keys(&self, id: CaptureId) -> impl Iterator<Item = String> + '_ {
        let start = match self.limit {
            0 => 0,
            n => {
                (hash64(&[b"modelobs/slot", self.prefix().as_bytes(), id.0.as_bytes()])
                    % u64::from(n)) as u32
            }
        };
        (start..self.limit)
            .chain(0..start)
            .map(move |n| self.slot_key(n))
    }

    /// The reason recorded when every slot is taken by others.
    pub fn exhausted_reason(&self) -> SampleReason {
        match self.scope {
            QuotaScope::Class(_) => SampleReason::ClassQuotaExhausted,
            QuotaScope::DailyBudget => SampleReason::DailyBudgetExhausted,
        }
    }

    fn describe(&self) -> String {
        match &self.scope {
            QuotaScope::Class(c) => format!("class quota of {} ({}/day)", c.name, self.limit),
            QuotaScope::DailyBudget => format!("daily budget ({}/day)", self.limit),
        }
    }
}

/// What a slot object holds: the id of the capture that claimed it.
pub fn slot_body(id: CaptureId) -> String {
    id.to_string()
}

/// Whether a taken slot's body names this capture: its own earlier (or
/// concurrent) claim, which it keeps instead of taking another slot.
pub fn holds_slot(body: &[u8], id: CaptureId) -> bool {
    std::str::from_utf8(body)
        .ok()
        .and_then(|s| CaptureId::parse(s.trim()).ok())
        == Some(id)
}

/// The highest-scoring detection, the first among equals.
fn top<'a>(detections: impl IntoIterator<Item = &'a Detection>) -> Option<&'a Detection> {
    detections
        .into_iter()
        .fold(None, |best: Option<&Detection>, d| match best {
            Some(b) if b.score >= d.score => Some(b),
            _ => Some(d),
        })
}

fn describe_detection(d: &Detection) -> String {
    format!("{} {:.3}", d.label, d.score)
}

/// Whether a capture wants a label, why, and which quota units it must
/// claim for one. Pure and deterministic.
pub fn candidate(policy: &SamplingPolicy, capture: &CaptureRecord) -> Candidate {
    let draw = draw(&policy.name, capture.id);
    let day = capture.captured_at.date_naive();
    let outcome = |reason, detail: String, about: Option<&Detection>| {
        let class = about.and_then(|d| classes::by_index(d.class_id));
        let units = if reason == SampleReason::NotSelected {
            Vec::new()
        } else {
            // Class first: a class slot left over when the budget is full
            // wastes nothing, as nothing else can be sampled that day.
            let class_unit = class.and_then(|c| {
                policy.class_quota_per_day.limit(&c).map(|limit| QuotaUnit {
                    day,
                    scope: QuotaScope::Class(c),
                    limit,
                })
            });
            class_unit
                .into_iter()
                .chain(std::iter::once(QuotaUnit {
                    day,
                    scope: QuotaScope::DailyBudget,
                    limit: policy.daily_budget,
                }))
                .collect()
        };
        Candidate {
            id: capture.id,
            day,
            reason,
            detail,
            class,
            draw,
            units,
        }
    };

    let Some(best) = top(&capture.detections) else {
        return if draw < policy.empty_rate {
            outcome(
                SampleReason::Empty,
                format!(
                    "no detections; draw {draw:.4} < empty_rate {}",
                    policy.empty_rate
                ),
                None,
            )
        } else {
            outcome(
                SampleReason::NotSelected,
                format!(
                    "no detections; draw {draw:.4} >= empty_rate {}",
                    policy.empty_rate
                ),
                None,
            )
        };
    };

    let unc = &policy.uncertainty;
    let in_band = unc.band.and_then(|[low, high]| {
        top(capture
            .detections
            .iter()
            .filter(|d| low <= d.score && d.score <= high))
        .map(|d| {
            (
                d,
                format!(
                    "{} in uncertainty band [{low}, {high}]",
                    describe_detection(d)
                ),
            )
        })
    });
    let low_top = || {
        unc.top_score_below
            .filter(|&t| best.score < t)
            .map(|t| (best, format!("top {} below {t}", describe_detection(best))))
    };
    let uncertain = in_band.or_else(low_top);

    if let Some((d, why)) = uncertain.as_ref().filter(|_| draw < unc.rate) {
        return outcome(SampleReason::Uncertain, why.clone(), Some(*d));
    }
    if draw < policy.uniform_rate {
        return outcome(
            SampleReason::Uniform,
            format!(
                "draw {draw:.4} < uniform_rate {}; top {}",
                policy.uniform_rate,
                describe_detection(best)
            ),
            Some(best),
        );
    }
    let detail = match uncertain {
        Some((_, why)) => format!(
            "{why}, but draw {draw:.4} >= uncertainty.rate {} and uniform_rate {}",
            unc.rate, policy.uniform_rate
        ),
        None => format!(
            "draw {draw:.4} >= uniform_rate {}; top {}",
            policy.uniform_rate,
            describe_detection(best)
        ),
    };
    outcome(SampleReason::NotSelected, detail, Some(best))
}

/// What claiming a candidate's units came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuotaOutcome {
    /// It holds a slot of every unit (or wanted none).
    Granted,
    /// Every slot of this unit is taken by other captures; units after it
    /// were not tried.
    Exhausted(QuotaUnit),
}

fn reason_name(r: SampleReason) -> &'static str {
    match r {
        SampleReason::Uniform => "uniform",
        SampleReason::Uncertain => "uncertain",
        SampleReason::Empty => "empty",
        SampleReason::NotSelected => "not_selected",
        SampleReason::ClassQuotaExhausted => "class_quota_exhausted",
        SampleReason::DailyBudgetExhausted => "daily_budget_exhausted",
    }
}

/// The `samples/<id>.json` record: `Pending` when sampled (the labeling
/// backend accepts it later), `Skipped` when not.
pub fn decide(
    policy: &SamplingPolicy,
    candidate: &Candidate,
    quota: &QuotaOutcome,
    capture_key: &str,
    decided_at: DateTime<Utc>,
) -> SamplingDecision {
    let (sampled, reason, detail) = match quota {
        _ if !candidate.wanted() => (false, candidate.reason, candidate.detail.clone()),
        QuotaOutcome::Granted => (true, candidate.reason, candidate.detail.clone()),
        QuotaOutcome::Exhausted(unit) => (
            false,
            unit.exhausted_reason(),
            format!(
                "{} ({}), but the {} for {} is exhausted",
                reason_name(candidate.reason),
                candidate.detail,
                unit.describe(),
                unit.day
            ),
        ),
    };
    SamplingDecision {
        id: candidate.id,
        capture_key: capture_key.to_string(),
        decided_at,
        policy: policy.name.clone(),
        sampled,
        reason,
        detail: Some(detail),
        backend: None,
        external_ref: None,
        state: if sampled {
            SampleState::Pending
        } else {
            SampleState::Skipped
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boxes::BBox;
    use crate::records::{CaptureSource, CapturedImage, ModelRef, StageTimings};
    use chrono::{Duration, TimeZone};
    use std::collections::{BTreeSet, HashMap};

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 7, 42, 13).unwrap()
    }

    fn det(class: &str, score: f64) -> Detection {
        let c = classes::by_name(class).unwrap();
        Detection {
            label: c.name.to_string(),
            class_id: c.index,
            score,
            bbox: BBox {
                x1: 1.0,
                y1: 2.0,
                x2: 30.0,
                y2: 40.0,
            },
        }
    }

    fn capture_at(at: DateTime<Utc>, seed: u64, detections: Vec<Detection>) -> CaptureRecord {
        let id = CaptureId::derived(at, &seed.to_be_bytes());
        CaptureRecord {
            id,
            captured_at: at,
            source: CaptureSource::Http { request_id: None },
            model: ModelRef {
                name: "nanodet-coco".into(),
                version: "1".into(),
            },
            image: CapturedImage {
                key: keys::capture_image(id, at, "jpg"),
                width: 640,
                height: 480,
                content_type: "image/jpeg".into(),
                sha256: "00".into(),
                bytes: 1,
            },
            score_threshold: 0.25,
            detections,
            timings_ms: StageTimings::default(),
            reported_classes: None,
            profile: None,
        }
    }

    fn capture(seed: u64, detections: Vec<Detection>) -> CaptureRecord {
        capture_at(t0(), seed, detections)
    }

    /// Only one reason in play: `rate` of everything, nothing uncertain.
    fn uniform_only(rate: f64) -> SamplingPolicy {
        SamplingPolicy {
            uniform_rate: rate,
            empty_rate: rate,
            uncertainty: Uncertainty {
                band: None,
                top_score_below: None,
                rate: 1.0,
            },
            ..SamplingPolicy::default()
        }
    }

    // ---- the draw ----

    #[test]
    fn the_draw_is_pinned_across_builds_and_platforms() {
        // GIVEN a fixed id; the expected values come from Python's hashlib:
        // sha256(b"modelobs/sample\0" + salt + b"\0" + id.bytes + b"\0")[:8] >> 11 / 2**53
        let id = CaptureId::parse("019ac2f1-5b3a-7c00-8a4e-0123456789ab").unwrap();
        // THEN the draw never changes
        assert_eq!(draw("default", id), PINNED_DEFAULT);
        assert_eq!(draw("night-v2", id), PINNED_NIGHT);
    }
    const PINNED_DEFAULT: f64 = 0.7838525993529234;
    const PINNED_NIGHT: f64 = 0.19836826053415946;

    #[test]
    fn the_same_capture_always_gets_the_same_decision() {
        let policy = SamplingPolicy::default();
        for seed in 0..200 {
            let c = capture(seed, vec![det("dog", 0.2 + (seed % 8) as f64 / 10.0)]);
            let first = candidate(&policy, &c);
            // WHEN decided again, from a re-read copy of the record
            let again: CaptureRecord =
                crate::records::from_json(&crate::records::to_json(&c)).unwrap();
            assert_eq!(candidate(&policy, &again), first);
            assert_eq!(
                decide(&policy, &first, &QuotaOutcome::Granted, "k", t0()),
                decide(
                    &policy,
                    &candidate(&policy, &c),
                    &QuotaOutcome::Granted,
                    "k",
                    t0()
                )
            );
        }
    }

    #[test]
    fn the_salt_reshuffles_the_sample() {
        let ids: Vec<CaptureId> = (0..1000u64).map(|i| capture(i, vec![]).id).collect();
        let picked = |salt: &str| -> BTreeSet<CaptureId> {
            ids.iter()
                .copied()
                .filter(|&id| draw(salt, id) < 0.1)
                .collect()
        };
        let (a, b) = (picked("a"), picked("b"));
        // Independent 10% samples of 1000 share about 10.
        assert!(
            a.intersection(&b).count() < 30,
            "{}",
            a.intersection(&b).count()
        );
    }

    #[test]
    fn the_uniform_rate_holds_on_10_000_uuidv7_ids() {
        // GIVEN 10 000 ids one millisecond apart (their random bits from a seed,
        // so the test is deterministic) and 10 000 that differ only in time
        let spread: Vec<CaptureId> = (0..10_000u64)
            .map(|i| CaptureId::derived(t0() + Duration::milliseconds(i as i64), &i.to_be_bytes()))
            .collect();
        let same_random: Vec<CaptureId> = (0..10_000u64)
            .map(|i| CaptureId::derived(t0() + Duration::milliseconds(i as i64), b"same"))
            .collect();
        for ids in [&spread, &same_random] {
            for (rate, tolerance) in [(0.05, 0.007), (0.2, 0.012), (0.5, 0.016)] {
                let policy = uniform_only(rate);
                let sampled = ids
                    .iter()
                    .filter(|&&id| {
                        let mut c = capture(0, vec![det("dog", 0.9)]);
                        c.id = id;
                        candidate(&policy, &c).reason == SampleReason::Uniform
                    })
                    .count();
                let share = sampled as f64 / ids.len() as f64;
                assert!(
                    (share - rate).abs() <= tolerance,
                    "rate {rate}: sampled {share}"
                );
            }
        }
        // AND the draw is spread evenly over [0, 1)
        let mut deciles = [0u32; 10];
        for &id in &spread {
            deciles[(draw("default", id) * 10.0) as usize] += 1;
        }
        assert!(
            deciles.iter().all(|&n| (900..=1100).contains(&n)),
            "{deciles:?}"
        );
    }

    #[test]
    fn rates_of_zero_and_one_are_exact() {
        for seed in 0..500 {
            let c = capture(seed, vec![det("cat", 0.9)]);
            assert!(!candidate(&uniform_only(0.0), &c).wanted());
            assert!(candidate(&uniform_only(1.0), &c).wanted());
        }
    }

    // ---- the reasons ----

    #[test]
    fn uncertainty_band_edges_are_inclusive() {
        // GIVEN a band [0.3, 0.6], no low-top test, no uniform sampling
        let policy = SamplingPolicy {
            uniform_rate: 0.0,
            uncertainty: Uncertainty {
                band: Some([0.3, 0.6]),
                top_score_below: None,
                rate: 1.0,
            },
            ..SamplingPolicy::default()
        };
        for (score, uncertain) in [
            (0.2999, false),
            (0.3, true),
            (0.45, true),
            (0.6, true),
            (0.6001, false),
        ] {
            let c = capture(1, vec![det("dog", score), det("person", 0.95)]);
            let cand = candidate(&policy, &c);
            assert_eq!(cand.wanted(), uncertain, "score {score}: {}", cand.detail);
            if uncertain {
                // THEN it counts against the uncertain detection's class, not the top one
                assert_eq!(cand.reason, SampleReason::Uncertain);
                assert_eq!(cand.class.unwrap().name, "dog");
                assert!(
                    cand.detail.contains("in uncertainty band [0.3, 0.6]"),
                    "{}",
                    cand.detail
                );
            }
        }
    }

    #[test]
    fn a_low_top_score_is_uncertain() {
        let policy = SamplingPolicy {
            uniform_rate: 0.0,
            uncertainty: Uncertainty {
                band: None,
                top_score_below: Some(0.4),
                rate: 1.0,
            },
            ..SamplingPolicy::default()
        };
        let low = candidate(
            &policy,
            &capture(1, vec![det("cat", 0.39), det("bird", 0.35)]),
        );
        assert_eq!(low.reason, SampleReason::Uncertain);
        assert_eq!(low.class.unwrap().name, "cat");
        assert_eq!(low.detail, "top cat 0.390 below 0.4");
        let sure = candidate(
            &policy,
            &capture(1, vec![det("cat", 0.4), det("bird", 0.35)]),
        );
        assert_eq!(sure.reason, SampleReason::NotSelected);
    }

    #[test]
    fn the_uncertainty_rate_thins_uncertain_captures() {
        let policy = SamplingPolicy {
            uniform_rate: 0.0,
            uncertainty: Uncertainty {
                rate: 0.25,
                ..Uncertainty::default()
            },
            ..SamplingPolicy::default()
        };
        let n = 4000;
        let wanted = (0..n)
            .filter(|&s| candidate(&policy, &capture(s, vec![det("dog", 0.5)])).wanted())
            .count();
        assert!((wanted as f64 / n as f64 - 0.25).abs() < 0.03, "{wanted}");
    }

    #[test]
    fn empty_captures_sample_at_their_own_rate() {
        // GIVEN no uniform sampling, empty_rate 0.3
        let policy = SamplingPolicy {
            uniform_rate: 0.0,
            empty_rate: 0.3,
            ..SamplingPolicy::default()
        };
        let n = 10_000;
        let cands: Vec<Candidate> = (0..n)
            .map(|s| candidate(&policy, &capture(s, vec![])))
            .collect();
        let wanted: Vec<&Candidate> = cands.iter().filter(|c| c.wanted()).collect();
        assert!(
            (wanted.len() as f64 / n as f64 - 0.3).abs() < 0.015,
            "{}",
            wanted.len()
        );
        for c in &wanted {
            // THEN they are Empty, count against no class, only the budget
            assert_eq!(c.reason, SampleReason::Empty);
            assert_eq!(c.class, None);
            assert_eq!(c.units.len(), 1);
            assert_eq!(c.units[0].scope, QuotaScope::DailyBudget);
        }
        assert!(
            cands
                .iter()
                .filter(|c| !c.wanted())
                .all(|c| c.units.is_empty())
        );
    }

    #[test]
    fn uniform_picks_count_against_the_top_class() {
        let policy = SamplingPolicy {
            class_quota_per_day: ClassQuota {
                default: Some(3),
                classes: [("person".to_string(), 1)].into(),
            },
            ..uniform_only(1.0)
        };
        let c = candidate(
            &policy,
            &capture(1, vec![det("dog", 0.8), det("person", 0.9)]),
        );
        assert_eq!(c.reason, SampleReason::Uniform);
        let day = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
        assert_eq!(
            c.units,
            vec![
                QuotaUnit {
                    day,
                    scope: QuotaScope::Class(classes::by_name("person").unwrap()),
                    limit: 1
                },
                QuotaUnit {
                    day,
                    scope: QuotaScope::DailyBudget,
                    limit: 100
                },
            ]
        );
        // AND a class without a limit counts against the budget alone
        let free = SamplingPolicy {
            class_quota_per_day: ClassQuota::default(),
            ..policy
        };
        assert_eq!(
            candidate(&free, &capture(1, vec![det("dog", 0.8)]))
                .units
                .len(),
            1
        );
    }

    #[test]
    fn the_day_is_the_utc_date_of_capture_time() {
        let late = Utc.with_ymd_and_hms(2026, 11, 26, 23, 59, 59).unwrap();
        let next = late + Duration::seconds(1);
        let p = uniform_only(1.0);
        assert_eq!(
            candidate(&p, &capture_at(late, 1, vec![])).day.to_string(),
            "2026-11-26"
        );
        assert_eq!(
            candidate(&p, &capture_at(next, 1, vec![])).day.to_string(),
            "2026-11-27"
        );
    }

    // ---- the record ----

    #[test]
    fn decisions_record_reason_state_and_policy() {
        let policy = SamplingPolicy {
            name: "night-v2".into(),
            ..uniform_only(1.0)
        };
        let cap = capture(3, vec![det("dog", 0.9)]);
        let key = keys::capture_record(cap.id, cap.captured_at);
        let cand = candidate(&policy, &cap);

        let granted = decide(&policy, &cand, &QuotaOutcome::Granted, &key, t0());
        assert!(granted.sampled);
        assert_eq!(granted.state, SampleState::Pending);
        assert_eq!(granted.reason, SampleReason::Uniform);
        assert_eq!(granted.policy, "night-v2");
        assert_eq!(granted.capture_key, key);
        assert_eq!(granted.id, cap.id);

        let budget = *cand.units.last().unwrap();
        let full = decide(&policy, &cand, &QuotaOutcome::Exhausted(budget), &key, t0());
        assert!(!full.sampled);
        assert_eq!(full.state, SampleState::Skipped);
        assert_eq!(full.reason, SampleReason::DailyBudgetExhausted);
        assert!(
            full.detail
                .as_deref()
                .unwrap()
                .ends_with("daily budget (100/day) for 2026-11-26 is exhausted"),
            "{:?}",
            full.detail
        );

        let none = candidate(&uniform_only(0.0), &cap);
        let skipped = decide(&policy, &none, &QuotaOutcome::Granted, &key, t0());
        assert_eq!(
            (skipped.sampled, skipped.reason, skipped.state),
            (false, SampleReason::NotSelected, SampleState::Skipped)
        );
        // AND the record round-trips as stored
        let back: SamplingDecision =
            crate::records::from_json(&crate::records::to_json(&full)).unwrap();
        assert_eq!(back, full);
    }

    // ---- the policy document ----

    #[test]
    fn the_policy_document_parses_with_defaults() {
        assert_eq!(
            SamplingPolicy::from_json("{}").unwrap(),
            SamplingPolicy::default()
        );
        let p = SamplingPolicy::from_json(
            r#"{"name":"default","uniform_rate":0.05,
                "uncertainty":{"band":[0.3,0.6],"top_score_below":null},
                "empty_rate":0.2,
                "class_quota_per_day":{"default":20,"classes":{"person":5,"traffic light":2}},
                "daily_budget":100}"#,
        )
        .unwrap();
        assert_eq!(p.uncertainty.top_score_below, None);
        assert_eq!(p.uncertainty.rate, 1.0);
        assert_eq!(
            p.class_quota_per_day
                .limit(&classes::by_name("person").unwrap()),
            Some(5)
        );
        assert_eq!(
            p.class_quota_per_day
                .limit(&classes::by_name("dog").unwrap()),
            Some(20)
        );
        // AND what it serializes to reads back the same
        let again = SamplingPolicy::from_json(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(again, p);
    }

    #[test]
    fn policy_errors_name_the_field() {
        for (json, field) in [
            (r#"{"uniform_rat":0.1}"#, "uniform_rat"),
            (r#"{"uncertainty":{"bands":[0.1,0.2]}}"#, "bands"),
            (r#"{"uniform_rate":1.5}"#, "uniform_rate"),
            (r#"{"empty_rate":-0.1}"#, "empty_rate"),
            (r#"{"uncertainty":{"rate":2}}"#, "uncertainty.rate"),
            (r#"{"uncertainty":{"band":[0.6,0.3]}}"#, "uncertainty.band"),
            (r#"{"uncertainty":{"band":[0.3,1.6]}}"#, "uncertainty.band"),
            (
                r#"{"uncertainty":{"top_score_below":7}}"#,
                "uncertainty.top_score_below",
            ),
            (r#"{"daily_budget":1001}"#, "daily_budget"),
            (
                r#"{"class_quota_per_day":{"default":5000}}"#,
                "class_quota_per_day.default",
            ),
            (
                r#"{"class_quota_per_day":{"classes":{"dgo":1}}}"#,
                "class_quota_per_day.classes.dgo",
            ),
            (
                r#"{"class_quota_per_day":{"classes":{"dog":1001}}}"#,
                "class_quota_per_day.classes.dog",
            ),
            (r#"{"name":""}"#, "name"),
            (r#"{"name":"a/b"}"#, "name"),
            (r#"{"daily_budget":-1}"#, "document"),
            (r#"{"uncertainty":{"band":[0.1,0.2,0.3]}}"#, "document"),
            ("uniform_rate=0.1", "document"),
        ] {
            let err = SamplingPolicy::from_json(json).unwrap_err();
            assert_eq!(err.field, field, "{json}: {err}");
            assert!(err.to_string().starts_with("sampling policy: "), "{err}");
        }
        // AND serde's words say where and what
        let err = SamplingPolicy::from_json(r#"{"daily_budget":-1}"#).unwrap_err();
        assert!(
            err.why.contains("expected u32") && err.why.contains("column"),
            "{err}"
        );
        let err = SamplingPolicy::from_json(r#"{"uniform_rate":1.5}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "sampling policy: uniform_rate: must be a number in [0, 1], got 1.5"
        );
        assert!(SamplingPolicy::from_json(r#"{"uniform_rate":NaN}"#).is_err());
    }

    // ---- the quota slots ----

    #[test]
    fn a_units_slot_order_visits_every_slot_once() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
        let unit = QuotaUnit {
            day,
            scope: QuotaScope::Class(classes::by_name("dog").unwrap()),
            limit: 7,
        };
        let mut starts = BTreeSet::new();
        for seed in 0..100 {
            let id = capture(seed, vec![]).id;
            let order: Vec<String> = unit.slot_keys(id).collect();
            assert_eq!(order, unit.slot_keys(id).collect::<Vec<_>>(), "stable");
            let set: BTreeSet<&String> = order.iter().collect();
            assert_eq!(set.len(), 7);
            assert!(
                order
                    .iter()
                    .all(|k| k.starts_with("samples/slots/2026-11-26/class/dog/"))
            );
            starts.insert(order[0].clone());
        }
        assert_eq!(starts.len(), 7, "captures start at different slots");
        let none = QuotaUnit { limit: 0, ..unit };
        assert_eq!(none.slot_keys(capture(1, vec![]).id).count(), 0);
    }

    #[test]
    fn a_slot_body_names_its_holder() {
        let (a, b) = (capture(1, vec![]).id, capture(2, vec![]).id);
        assert!(holds_slot(slot_body(a).as_bytes(), a));
        assert!(holds_slot(format!("{a}\n").as_bytes(), a));
        assert!(holds_slot(slot_body(a).to_uppercase().as_bytes(), a));
        assert!(!holds_slot(slot_body(a).as_bytes(), b));
        assert!(!holds_slot(b"\xff", a));
    }

    /// SplitMix64: a fixed, seedable stream for the simulator.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn chance(&mut self, p: f64) -> bool {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
        }
    }

    /// Where one delivery of a capture is in the sampler's protocol. Every
    /// step is one request to the bucket, so claimers interleave at each.
    enum Step {
        /// GET `samples/<id>.json`: already decided → done.
        CheckDecision,
        /// Walk unit `unit`'s slots; `pos` is the next key to put.
        Put { unit: usize, pos: usize },
        /// The put at `pos` failed: GET it to see whose it is.
        Read { unit: usize, pos: usize },
        /// PUT `samples/<id>.json` with `If-None-Match: *`.
        Write(QuotaOutcome),
    }

    struct Delivery {
        capture: usize,
        step: Step,
        orders: Vec<Vec<String>>,
    }

    #[derive(Default)]
    struct Bucket {
        objects: HashMap<String, Vec<u8>>,
        requests: u64,
    }

    impl Bucket {
        fn put_if_absent(&mut self, key: &str, body: &[u8]) -> bool {
            self.requests += 1;
            if self.objects.contains_key(key) {
                return false;
            }
            self.objects.insert(key.to_string(), body.to_vec());
            true
        }
        fn get(&mut self, key: &str) -> Option<Vec<u8>> {
            self.requests += 1;
            self.objects.get(key).cloned()
        }
    }

    /// One request of `d`; `true` when the delivery is finished.
    fn advance(
        d: &mut Delivery,
        cand: &Candidate,
        policy: &SamplingPolicy,
        bucket: &mut Bucket,
    ) -> bool {
        let id = cand.id;
        let next_unit = |unit: usize| {
            if unit + 1 < cand.units.len() {
                Step::Put {
                    unit: unit + 1,
                    pos: 0,
                }
            } else {
                Step::Write(QuotaOutcome::Granted)
            }
        };
        let exhausted_or_put = |unit: usize, pos: usize| {
            if pos < d.orders[unit].len() {
                Step::Put { unit, pos }
            } else {
                Step::Write(QuotaOutcome::Exhausted(cand.units[unit]))
            }
        };
        d.step = match &d.step {
            Step::CheckDecision => {
                if bucket.get(&keys::sample(id)).is_some() {
                    return true;
                }
                if cand.units.is_empty() {
                    Step::Write(QuotaOutcome::Granted)
                } else {
                    exhausted_or_put(0, 0)
                }
            }
            &Step::Put { unit, pos } => {
                if bucket.put_if_absent(&d.orders[unit][pos], slot_body(id).as_bytes()) {
                    next_unit(unit)
                } else {
                    Step::Read { unit, pos }
                }
            }
            &Step::Read { unit, pos } => match bucket.get(&d.orders[unit][pos]) {
                Some(body) if holds_slot(&body, id) => next_unit(unit),
                _ => exhausted_or_put(unit, pos + 1),
            },
            Step::Write(outcome) => {
                let decision = decide(policy, cand, outcome, "k", t0());
                bucket.put_if_absent(&keys::sample(id), &crate::records::to_json(&decision));
                return true;
            }
        };
        false
    }

    struct SimReport {
        abandoned: BTreeSet<CaptureId>,
        crashes: u32,
        duplicates: u32,
    }

    /// Many captures over two days, delivered at least once, some twice at
    /// the same time; up to 8 deliveries in flight, each advanced one
    /// request at a time in random order; some crash mid-way and are
    /// redelivered, up to 3 tries, then abandoned (a dead-letter queue).
    fn simulate(
        seed: u64,
        policy: &SamplingPolicy,
        captures: &[CaptureRecord],
        bucket: &mut Bucket,
    ) -> SimReport {
        let mut rng = Rng(seed);
        let cands: Vec<Candidate> = captures.iter().map(|c| candidate(policy, c)).collect();
        let deliver = |capture: usize| Delivery {
            capture,
            step: Step::CheckDecision,
            orders: cands[capture]
                .units
                .iter()
                .map(|u| u.slot_keys(cands[capture].id).collect())
                .collect(),
        };
        let mut queue: std::collections::VecDeque<usize> = (0..captures.len()).collect();
        let mut tries = vec![0u32; captures.len()];
        let mut in_flight: Vec<Delivery> = Vec::new();
        let mut report = SimReport {
            abandoned: BTreeSet::new(),
            crashes: 0,
            duplicates: 0,
        };
        while !queue.is_empty() || !in_flight.is_empty() {
            while in_flight.len() < 8 {
                let Some(c) = queue.pop_front() else { break };
                tries[c] += 1;
                in_flight.push(deliver(c));
                if rng.chance(0.1) {
                    report.duplicates += 1;
                    in_flight.push(deliver(c));
                }
            }
            let i = rng.below(in_flight.len());
            if rng.chance(0.01) {
                let crashed = in_flight.swap_remove(i);
                report.crashes += 1;
                let c = crashed.capture;
                if tries[c] < 3 {
                    queue.push_back(c);
                } else if !in_flight.iter().any(|d| d.capture == c) {
                    report.abandoned.insert(cands[c].id);
                }
                continue;
            }
            let d = &mut in_flight[i];
            if advance(d, &cands[d.capture], policy, bucket) {
                in_flight.swap_remove(i);
            }
        }
        // A capture abandoned while a duplicate was still in flight may have
        // been decided by the duplicate after all.
        report
            .abandoned
            .retain(|id| !bucket.objects.contains_key(&keys::sample(*id)));
        report
    }

    fn sim_captures(n: u64) -> Vec<CaptureRecord> {
        let day1 = Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap();
        (0..n)
            .map(|i| {
                let at = day1 + Duration::seconds((i * 172_800 / n) as i64);
                let dets = match i % 7 {
                    0 | 1 => vec![],
                    2 => vec![det("person", 0.9)],
                    3 => vec![det("person", 0.95), det("dog", 0.45)],
                    4 => vec![det("dog", 0.8)],
                    5 => vec![det("cat", 0.35)],
                    _ => vec![det("traffic light", 0.7)],
                };
                capture_at(at, i, dets)
            })
            .collect()
    }

    #[test]
    fn quotas_hold_under_concurrent_redelivered_claims() {
        let policy = SamplingPolicy::from_json(
            r#"{"name":"sim","uniform_rate":0.3,"empty_rate":0.4,
                "class_quota_per_day":{"default":12,"classes":{"person":5,"dog":9,"traffic light":0}},
                "daily_budget":30}"#,
        )
        .unwrap();
        let captures = sim_captures(1400);
        let by_id: HashMap<CaptureId, Candidate> = captures
            .iter()
            .map(|c| (c.id, candidate(&policy, c)))
            .collect();
        let (mut total_crashes, mut total_dups, mut total_abandoned) = (0, 0, 0);
        for seed in 0..20 {
            // GIVEN an empty bucket WHEN every capture goes through the sampler
            let mut bucket = Bucket::default();
            let report = simulate(seed, &policy, &captures, &mut bucket);
            total_crashes += report.crashes;
            total_dups += report.duplicates;
            total_abandoned += report.abandoned.len();

            let decisions: HashMap<CaptureId, SamplingDecision> = bucket
                .objects
                .iter()
                .filter(|(k, _)| !k.starts_with(keys::SAMPLE_SLOTS))
                .map(|(_, v)| {
                    let d: SamplingDecision = crate::records::from_json(v).unwrap();
                    (d.id, d)
                })
                .collect();
            // THEN every capture not abandoned has its decision
            assert_eq!(decisions.len() + report.abandoned.len(), captures.len());

            // AND each unit's slots hold distinct captures, within its limit
            let mut units: BTreeMap<String, QuotaUnit> = BTreeMap::new();
            for c in by_id.values() {
                for u in &c.units {
                    units.insert(u.prefix(), *u);
                }
            }
            let mut holders: BTreeMap<String, Vec<CaptureId>> = BTreeMap::new();
            for (key, body) in bucket
                .objects
                .iter()
                .filter(|(k, _)| k.starts_with(keys::SAMPLE_SLOTS))
            {
                let (prefix, n) = key.rsplit_once('/').unwrap();
                let unit = units[&format!("{prefix}/")];
                assert!(n.parse::<u32>().unwrap() < unit.limit, "{key}");
                let id = CaptureId::parse(std::str::from_utf8(body).unwrap()).unwrap();
                holders.entry(format!("{prefix}/")).or_default().push(id);
            }
            for (prefix, ids) in &holders {
                let distinct: BTreeSet<_> = ids.iter().collect();
                assert_eq!(
                    distinct.len(),
                    ids.len(),
                    "seed {seed}: a capture holds two slots of {prefix}"
                );
                assert!(ids.len() as u32 <= units[prefix].limit);
            }
            let full =
                |u: &QuotaUnit| holders.get(&u.prefix()).map_or(0, Vec::len) as u32 == u.limit;

            for (prefix, unit) in &units {
                let sampled: Vec<&SamplingDecision> = decisions
                    .values()
                    .filter(|d| {
                        d.sampled && by_id[&d.id].units.iter().any(|u| &u.prefix() == prefix)
                    })
                    .collect();
                // AND sampled captures never exceed a quota
                assert!(sampled.len() as u32 <= unit.limit, "seed {seed}: {prefix}");
                // AND each one holds a slot of the unit
                let held = holders.get(prefix).cloned().unwrap_or_default();
                assert!(
                    sampled.iter().all(|d| held.contains(&d.id)),
                    "seed {seed}: {prefix}"
                );
                // AND a slot not backing a sample is held by an abandoned capture,
                // or (class slots only) by one refused because its day's budget was full
                for id in held
                    .iter()
                    .filter(|id| !sampled.iter().any(|d| d.id == **id))
                {
                    let ok = report.abandoned.contains(id)
                        || matches!(unit.scope, QuotaScope::Class(_))
                            && decisions[id].reason == SampleReason::DailyBudgetExhausted
                            && full(by_id[id].units.last().unwrap());
                    assert!(ok, "seed {seed}: {prefix} slot of {id} wasted");
                }
            }
            // AND a capture is refused only when the unit was full
            for d in decisions
                .values()
                .filter(|d| !d.sampled && by_id[&d.id].wanted())
            {
                let unit = by_id[&d.id]
                    .units
                    .iter()
                    .find(|u| u.exhausted_reason() == d.reason)
                    .unwrap();
                assert!(
                    full(unit),
                    "seed {seed}: {} refused with room in {}",
                    d.id,
                    unit.prefix()
                );
            }
            // AND the budget waste is at most one slot per abandoned capture
            let sampled_total = decisions.values().filter(|d| d.sampled).count();
            let budget_slots: usize = holders
                .iter()
                .filter(|(p, _)| p.ends_with("/all/"))
                .map(|(_, ids)| ids.len())
                .sum();
            assert!(budget_slots - sampled_total <= report.abandoned.len());
        }
        // The simulation did exercise what it claims to.
        assert!(
            total_crashes > 100 && total_dups > 1000 && total_abandoned > 0,
            "{total_crashes} crashes, {total_dups} duplicates, {total_abandoned} abandoned"
        );
    }

    #[test]
    fn a_redelivery_after_a_crash_finds_its_own_class_slot() {
        // GIVEN a capture whose first choice of class slot was taken by another
        let policy = SamplingPolicy {
            class_quota_per_day: ClassQuota {
                default: Some(3),
                classes: BTreeMap::new(),
            },
            ..uniform_only(1.0)
        };
        let cand = candidate(&policy, &capture(5, vec![det("dog", 0.9)]));
        let order: Vec<String> = cand.units[0].slot_keys(cand.id).collect();
        let other = |seed| slot_body(capture(seed, vec![]).id);
        let mut bucket = Bucket::default();
        bucket.put_if_absent(&order[0], other(100).as_bytes());
        let delivery = || Delivery {
            capture: 0,
            step: Step::CheckDecision,
            orders: cand
                .units
                .iter()
                .map(|u| u.slot_keys(cand.id).collect())
                .collect(),
        };
        // WHEN it wins the second and crashes before the budget slot
        let mut first = delivery();
        for _ in 0..4 {
            advance(&mut first, &cand, &policy, &mut bucket);
        }
        assert!(holds_slot(&bucket.objects[&order[1]], cand.id));
        assert!(matches!(first.step, Step::Put { unit: 1, pos: 0 }));
        // AND another capture takes the last class slot meanwhile
        bucket.put_if_absent(&order[2], other(101).as_bytes());
        // AND it is delivered again
        let mut again = delivery();
        while !advance(&mut again, &cand, &policy, &mut bucket) {}
        // THEN it kept its slot: sampled, holding one class slot and one budget slot
        let decision: SamplingDecision =
            crate::records::from_json(&bucket.objects[&keys::sample(cand.id)]).unwrap();
        assert!(decision.sampled, "{decision:?}");
        let mine = bucket
            .objects
            .values()
            .filter(|b| holds_slot(b, cand.id))
            .count();
        assert_eq!(mine, 2);
        assert_eq!(bucket.objects.len(), 3 + 1 + 1);
    }

    #[test]
    fn concurrent_duplicates_share_one_slot() {
        // GIVEN two deliveries of one capture, interleaved request by request
        let policy = uniform_only(1.0);
        let cand = candidate(&policy, &capture(9, vec![det("cat", 0.9)]));
        let mut bucket = Bucket::default();
        let delivery = || Delivery {
            capture: 0,
            step: Step::CheckDecision,
            orders: cand
                .units
                .iter()
                .map(|u| u.slot_keys(cand.id).collect())
                .collect(),
        };
        let (mut a, mut b) = (delivery(), delivery());
        let (mut a_done, mut b_done) = (false, false);
        while !(a_done && b_done) {
            if !a_done {
                a_done = advance(&mut a, &cand, &policy, &mut bucket);
            }
            if !b_done {
                b_done = advance(&mut b, &cand, &policy, &mut bucket);
            }
        }
        // THEN one budget slot and one decision
        assert_eq!(bucket.objects.len(), 2);
        let decision: SamplingDecision =
            crate::records::from_json(&bucket.objects[&keys::sample(cand.id)]).unwrap();
        assert!(decision.sampled);
    }
}
