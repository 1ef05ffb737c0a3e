//! Which conditions the simulated camera sees on which day.
//!
//! A schedule is a list of phases, `conditions:days`, e.g.
//! `clean:5,dark:3,blur+small:2`: days 0–4 clean, 5–7 dark, 8–9 blurred and
//! with smaller animals. Days after the last phase stay in the last phase.
//! Each image of a day gets its own draw of the condition's parameters.
//!
//! The strengths are tuned on the real model (tests/drift_real_model.rs):
//! AP50 on the animal photos goes from about 0.95 clean to 0.46–0.77 under
//! one condition and about 0.25 under `blur+small` — a clear fall that still
//! leaves something to chart. Three at once (`dark+blur+small`) leave nothing
//! (AP50 0).

use std::fmt;
use std::str::FromStr;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::DatasetError;
use crate::transform::Transform;

/// A named way the pictures get harder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Condition {
    /// Camera as installed: light recompression and framing jitter only.
    Clean,
    /// Dusk: a tenth to a fifth of the light, and sensor noise.
    Dark,
    /// Out of focus or a dirty lens (sigma 4–6 px).
    Blur,
    /// The animals are farther away: half to a third of their size.
    Small,
    /// A cheap sensor: strong Gaussian noise (sigma 35–50 grey levels).
    Noise,
    /// A starved uplink: heavy JPEG compression (quality 8–15).
    LowQuality,
    /// Haze: washed out, very low contrast, slightly soft.
    Fog,
}

impl Condition {
    pub const ALL: [Condition; 7] = [
        Self::Clean,
        Self::Dark,
        Self::Blur,
        Self::Small,
        Self::Noise,
        Self::LowQuality,
        Self::Fog,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Clean => "clean",
            Self::Dark => "dark",
            Self::Blur => "blur",
            Self::Small => "small",
            Self::Noise => "noise",
            Self::LowQuality => "lowq",
            Self::Fog => "fog",
        }
    }

    /// One draw of this condition's transforms.
    pub fn draw<R: Rng + ?Sized>(self, rng: &mut R) -> Vec<Transform> {
        match self {
            Self::Clean => vec![
                Transform::Scale(rng.random_range(0.8..=1.0)),
                Transform::Jpeg(rng.random_range(80..=95)),
            ],
            Self::Dark => vec![
                Transform::Brightness(rng.random_range(0.1..=0.18)),
                Transform::Noise(rng.random_range(4.0..=8.0)),
            ],
            Self::Blur => vec![Transform::Blur(rng.random_range(4.0..=6.0))],
            Self::Small => {
                // Grey borders, unevenly split so the animals are not always
                // centred, then shrunk back to about the original size.
                let p: f64 = rng.random_range(0.5..=1.0);
                let (ux, uy): (f64, f64) = (rng.random(), rng.random());
                vec![
                    Transform::Pad {
                        left: 2.0 * p * ux,
                        top: 2.0 * p * uy,
                        right: 2.0 * p * (1.0 - ux),
                        bottom: 2.0 * p * (1.0 - uy),
                    },
                    Transform::Scale(1.0 / (1.0 + 2.0 * p)),
                ]
            }
            Self::Noise => vec![Transform::Noise(rng.random_range(35.0..=50.0))],
            Self::LowQuality => vec![Transform::Jpeg(rng.random_range(8..=15))],
            Self::Fog => vec![
                Transform::Contrast(rng.random_range(0.12..=0.16)),
                Transform::Brightness(rng.random_range(1.4..=1.6)),
                Transform::Blur(rng.random_range(1.0..=1.5)),
            ],
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Condition {
    type Err = DatasetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Self::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|c| c.name()).collect();
                DatasetError::Spec(format!(
                    "unknown condition {s:?} (one of {})",
                    names.join(", ")
                ))
            })
    }
}

/// Some days under the same conditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phase {
    /// Combined with `+`; `clean` alone means no degradation.
    pub conditions: Vec<Condition>,
    pub days: u32,
}

impl Phase {
    /// The conditions without the days: `dark`, `blur+small`, `clean`.
    pub fn condition(&self) -> String {
        let names: Vec<&str> = self.conditions.iter().map(|c| c.name()).collect();
        names.join("+")
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.condition(), self.days)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftSchedule {
    phases: Vec<Phase>,
}

impl DriftSchedule {
    /// Reads `conditions:days,...`, e.g. `clean:5,dark:3,blur+small:2`.
    pub fn parse(spec: &str) -> Result<Self, DatasetError> {
        let bad = |problem: String| DatasetError::Spec(format!("drift {spec:?}: {problem}"));
        if spec.trim().is_empty() {
            return Err(bad(
                "empty; write phases as conditions:days, e.g. clean:5,dark:3".into(),
            ));
        }
        let phases = spec
            .split(',')
            .map(|part| {
                let (names, days) = part
                    .split_once(':')
                    .ok_or_else(|| bad(format!("{part:?} needs a day count (conditions:days)")))?;
                let days: u32 = days
                    .trim()
                    .parse()
                    .map_err(|_| bad(format!("{days:?} in {part:?} is not a day count")))?;
                if days == 0 {
                    return Err(bad(format!("{part:?} lasts 0 days")));
                }
                let conditions = names
                    .split('+')
                    .map(|n| n.parse::<Condition>().map_err(|e| bad(e.to_string())))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Phase { conditions, days })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { phases })
    }

    pub fn phases(&self) -> &[Phase] {
        &self.phases
    }

    /// Days the schedule spells out (it goes on in its last phase).
    pub fn total_days(&self) -> u32 {
        self.phases.iter().map(|p| p.days).sum()
    }

    /// The phase of day `day` (0-based); past the end, the last phase.
    pub fn phase_for_day(&self, day: u32) -> &Phase {
        let mut end = 0;
        for p in &self.phases {
            end += p.days;
            if day < end {
                return p;
            }
        }
        self.phases.last().expect("a parsed schedule has a phase")
    }

    /// One image's transforms on day `day`: a coin-flip mirror (it changes
    /// nothing about difficulty, only variety), then each condition's draw,
    /// ordered scene → optics → sensor → encoder.
    pub fn conditions_for_day<R: Rng + ?Sized>(&self, day: u32, rng: &mut R) -> Vec<Transform> {
        let mut chain = Vec::new();
        if rng.random_bool(0.5) {
            chain.push(Transform::FlipHorizontal);
        }
        for c in &self.phase_for_day(day).conditions {
            chain.extend(c.draw(rng));
        }
        chain.sort_by_key(Transform::stage);
        chain
    }

    /// A seeded source of picks: the same seed gives the same traffic.
    pub fn picker(&self, seed: u64) -> Picker {
        Picker {
            schedule: self.clone(),
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }
}

impl FromStr for DriftSchedule {
    type Err = DatasetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for DriftSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.phases.iter().map(Phase::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

/// What to send next: a sample of the dataset and how to change it.
#[derive(Debug, Clone, PartialEq)]
pub struct Pick {
    /// Index into [`crate::Dataset::samples`].
    pub sample: usize,
    pub transforms: Vec<Transform>,
    /// For [`crate::apply`] (the noise draws).
    pub seed: u64,
}

/// Draws picks day by day from a fixed seed.
#[derive(Debug, Clone)]
pub struct Picker {
    schedule: DriftSchedule,
    rng: ChaCha8Rng,
}

impl Picker {
    /// A uniformly drawn sample of `dataset_len` and the day's transforms.
    pub fn pick(&mut self, day: u32, dataset_len: usize) -> Pick {
        let sample = self.rng.random_range(0..dataset_len.max(1));
        let transforms = self.schedule.conditions_for_day(day, &mut self.rng);
        Pick {
            sample,
            transforms,
            seed: self.rng.random(),
        }
    }

    pub fn schedule(&self) -> &DriftSchedule {
        &self.schedule
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_cover_their_days_and_the_last_one_goes_on() {
        let s = DriftSchedule::parse("clean:5,dark:3,blur+small:2").unwrap();
        assert_eq!(s.total_days(), 10);
        let names = |d| s.phase_for_day(d).to_string();
        assert_eq!(names(0), "clean:5");
        assert_eq!(names(4), "clean:5");
        assert_eq!(names(5), "dark:3");
        assert_eq!(names(7), "dark:3");
        assert_eq!(names(8), "blur+small:2");
        assert_eq!(names(9), "blur+small:2");
        assert_eq!(names(100), "blur+small:2");
        assert_eq!(s.to_string(), "clean:5,dark:3,blur+small:2");
        assert_eq!(s.to_string().parse::<DriftSchedule>().unwrap(), s);
    }

    #[test]
    fn bad_schedules_say_what_is_wrong() {
        for (spec, want) in [
            ("", "empty"),
            ("clean", "needs a day count"),
            ("clean:x", "not a day count"),
            ("clean:-1", "not a day count"),
            ("clean:0", "lasts 0 days"),
            ("clean:2,sunny:3", "unknown condition \"sunny\""),
            ("clean:2,,dark:1", "needs a day count"),
            ("dark+:2", "unknown condition \"\""),
        ] {
            let err = DriftSchedule::parse(spec).expect_err(spec).to_string();
            assert!(err.contains(want), "{spec}: {err}");
        }
    }

    #[test]
    fn each_condition_shows_up_in_the_chain_of_its_days() {
        let s = DriftSchedule::parse("clean:1,dark:1,blur+small:1,lowq+fog:1,noise:1").unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..50 {
            let mut day = |d| s.conditions_for_day(d, &mut rng);
            let clean = day(0);
            assert!(clean.iter().all(|t| matches!(
                t,
                Transform::FlipHorizontal | Transform::Scale(_) | Transform::Jpeg(80..=95)
            )));
            let dark = day(1);
            assert!(
                dark.iter()
                    .any(|t| matches!(t, Transform::Brightness(b) if *b <= 0.35)),
                "{dark:?}"
            );
            let blur_small = day(2);
            assert!(blur_small.iter().any(|t| matches!(t, Transform::Blur(_))));
            assert!(
                blur_small
                    .iter()
                    .any(|t| matches!(t, Transform::Pad { .. }))
            );
            // Geometry before optics: the far-away animal is what gets blurred.
            let stages: Vec<u8> = blur_small.iter().map(Transform::stage).collect();
            assert!(stages.is_sorted(), "{blur_small:?}");
            let lowq_fog = day(3);
            assert!(matches!(lowq_fog.last(), Some(Transform::Jpeg(8..=15))));
            assert!(lowq_fog.iter().any(|t| matches!(t, Transform::Contrast(_))));
            assert!(day(4).iter().any(|t| matches!(t, Transform::Noise(_))));
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_picks() {
        let s = DriftSchedule::parse("clean:2,dark+blur:2").unwrap();
        let picks = |seed| {
            let mut p = s.picker(seed);
            (0..4)
                .flat_map(|day| (0..5).map(move |_| day))
                .map(|day| p.pick(day, 6))
                .collect::<Vec<_>>()
        };
        assert_eq!(picks(42), picks(42));
        assert_ne!(picks(42), picks(43));
        assert!(picks(42).iter().all(|p| p.sample < 6));
        // All six photos come up in a few dozen picks.
        let mut seen = [false; 6];
        let mut p = s.picker(1);
        for _ in 0..60 {
            seen[p.pick(0, 6).sample] = true;
        }
        assert_eq!(seen, [true; 6]);
    }
}
