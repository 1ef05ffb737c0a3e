//! The windows' operating point: the score threshold their precision,
//! recall and F1 are counted at (`SCORE_THRESHOLD`).

/// The serving threshold of models/nanodet/model.json (`score_threshold`):
/// the operating point when `SCORE_THRESHOLD` is not set.
pub const DEFAULT_SCORE_THRESHOLD: f64 = 0.2;

/// A `SCORE_THRESHOLD` value: a number in [0, 1].
pub fn parse_score_threshold(value: &str) -> Option<f64> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|t| (0.0..=1.0).contains(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_numbers_in_the_unit_interval() {
        assert_eq!(parse_score_threshold(" 0.35 "), Some(0.35));
        assert_eq!(parse_score_threshold("1"), Some(1.0));
        assert_eq!(parse_score_threshold("1.5"), None);
        assert_eq!(parse_score_threshold("-0.1"), None);
        assert_eq!(parse_score_threshold("high"), None);
    }
}
