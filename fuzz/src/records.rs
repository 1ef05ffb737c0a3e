//! Stored records (`modelobs_core::records::from_json`), every type on every
//! input. Input: the stored object's bytes.

use modelobs_core::records::{
    self, CaptureRecord, GroundTruth, ImageEval, LabelingTask, Promotion, Record, SamplingDecision,
    WindowMetrics,
};

pub fn run(data: &[u8]) {
    round_trip::<CaptureRecord>(data);
    round_trip::<Promotion>(data);
    round_trip::<SamplingDecision>(data);
    round_trip::<LabelingTask>(data);
    if let Some(truth) = round_trip::<GroundTruth>(data) {
        let _ = truth.version();
    }
    round_trip::<ImageEval>(data);
    round_trip::<WindowMetrics>(data);
}

/// A record read, written back and read again is the same record.
fn round_trip<T: Record + PartialEq + std::fmt::Debug>(data: &[u8]) -> Option<T> {
    match records::from_json::<T>(data) {
        Ok(record) => {
            let written = records::to_json(&record);
            let again = records::from_json::<T>(&written)
                .unwrap_or_else(|e| panic!("{} written back does not read: {e}", T::KIND));
            assert_eq!(again, record, "{} round trip", T::KIND);
            Some(record)
        }
        Err(e) => {
            let _ = e.to_string();
            None
        }
    }
}
