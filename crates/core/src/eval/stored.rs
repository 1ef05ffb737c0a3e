//! How a [`ClassEval`] is stored inside an `ImageEval` (docs/data-contract.md).
//!
//! # v2 (written since ImageEval schema 2)
//!
//! ```json
//! {"category_id":18,"num_gt":[1,0,1,0],"detections":2,
//!  "scores":"<base64>","matched_iou50":"<base64>","outcomes":"<base64>"}
//! ```
//!
//! - `num_gt`: `[all, small, medium, large]`.
//! - `scores`, `matched_iou50`: the detections' doubles, 8 bytes each,
//!   little-endian, standard base64 with padding: the exact bits, so windows
//!   add up to the same numbers as v1's shortest round-trip decimals did.
//! - `outcomes`: 2 bits per outcome (`0` false positive, `1` true positive,
//!   `2` ignored; `3` is refused), in (area range, IoU threshold, detection)
//!   order as [`ClassEval::outcomes`] nests them, four to a byte from the low
//!   bits: exactly 10 bytes per detection.
//! - The three are left out when `detections` is 0.
//!
//! Why: v1 spelled each of a detection's 40 outcomes as a letter, in 40
//! strings per class, and every double in decimal. A rollup spent most of
//! its time parsing that (a COCO-val-sized day: 14 MB, one `String` per
//! outcome row). v2 is a few JSON fields per class whose contents decode
//! without allocating per row; the record stays JSON, and the class ids and
//! ground-truth counts stay readable.
//!
//! Not "the highest IoU threshold matched" per detection: greedy matching is
//! redone at each threshold, so a detection can lose its ground truth at .50
//! to a better-scored one and match at .55; 2 bits per outcome is lossless.
//!
//! # v1 (ImageEval schema 1, still read)
//!
//! ```json
//! {"category_id":18,"num_gt":{"all":1,"small":0,"medium":1,"large":0},
//!  "scores":[0.91,0.4],"matched_iou50":[0.83,0.0],
//!  "outcomes":{"all":["TF",…10 strings],"small":[…],"medium":[…],"large":[…]}}
//! ```
//!
//! The reader takes each field in either shape (an array or object is v1, a
//! string v2), so one reader serves both versions; lengths are checked
//! against each other either way. [`ClassEvalV1`] writes v1, for the tests
//! and the benchmark that compare the two.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};

use super::image::{ClassEval, Outcome};
use super::params::{AREA_NAMES, NUM_AREAS, NUM_IOU_THRS};
use crate::error::CoreError;

/// Outcomes per detection: one per (area range, IoU threshold).
const OUTCOMES_PER_DETECTION: usize = NUM_AREAS * NUM_IOU_THRS;

fn outcome_code(o: Outcome) -> u8 {
    match o {
        Outcome::FalsePositive => 0,
        Outcome::TruePositive => 1,
        Outcome::Ignored => 2,
    }
}

/// v2's `outcomes` bytes: 2 bits each, four to a byte from the low bits.
pub(super) fn pack_outcomes(outcomes: &[Outcome]) -> Vec<u8> {
    outcomes
        .chunks(4)
        .map(|four| {
            four.iter()
                .enumerate()
                .fold(0u8, |b, (i, &o)| b | (outcome_code(o) << (2 * i)))
        })
        .collect()
}

fn f64s_le(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

impl Serialize for ClassEval {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = self.num_detections();
        let mut st = s.serialize_struct("ClassEval", if n == 0 { 3 } else { 6 })?;
        st.serialize_field("category_id", &self.category_id)?;
        st.serialize_field("num_gt", &self.num_gt)?;
        st.serialize_field("detections", &n)?;
        if n > 0 {
            st.serialize_field("scores", &STANDARD.encode(f64s_le(&self.scores)))?;
            st.serialize_field(
                "matched_iou50",
                &STANDARD.encode(f64s_le(&self.matched_iou50)),
            )?;
            st.serialize_field(
                "outcomes",
                &STANDARD.encode(pack_outcomes(self.all_outcomes())),
            )?;
        }
        st.end()
    }
}

impl<'de> Deserialize<'de> for ClassEval {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let stored = StoredClassEval::deserialize(d)?;
        Self::try_from(stored).map_err(de::Error::custom)
    }
}

/// Either version's fields, each as it came.
#[derive(Deserialize)]
struct StoredClassEval {
    category_id: u64,
    num_gt: NumGt,
    /// v2 only: checked against the arrays' lengths.
    #[serde(default)]
    detections: Option<usize>,
    #[serde(default)]
    scores: Doubles,
    #[serde(default)]
    matched_iou50: Doubles,
    #[serde(default)]
    outcomes: StoredOutcomes,
}

impl TryFrom<StoredClassEval> for ClassEval {
    type Error = CoreError;

    fn try_from(r: StoredClassEval) -> Result<Self, CoreError> {
        let bad = |why: String| {
            CoreError::InvalidRecord(format!("class evaluation {}: {why}", r.category_id))
        };
        let n = r.scores.0.len();
        if let Some(d) = r.detections
            && d != n
        {
            return Err(bad(format!("{d} detections but {n} scores")));
        }
        if r.matched_iou50.0.len() != n {
            return Err(bad(format!(
                "{} matched IoUs for {n} detections",
                r.matched_iou50.0.len()
            )));
        }
        let outcomes = match r.outcomes {
            StoredOutcomes::Packed(outcomes) => {
                if outcomes.len() != OUTCOMES_PER_DETECTION * n {
                    return Err(bad(format!(
                        "{} packed outcomes for {n} detections, expected {}",
                        outcomes.len(),
                        OUTCOMES_PER_DETECTION * n
                    )));
                }
                outcomes
            }
            StoredOutcomes::Letters(areas) => letters_to_outcomes(areas, n).map_err(bad)?,
        };
        Ok(ClassEval::from_parts(
            r.category_id,
            r.num_gt.0,
            r.scores.0,
            outcomes,
            r.matched_iou50.0,
        ))
    }
}

/// v1's rows of `T`/`F`/`I`, one per IoU threshold, per area range.
fn letters_to_outcomes(areas: AreaMap<Vec<String>>, n: usize) -> Result<Vec<Outcome>, String> {
    let mut outcomes = Vec::with_capacity(OUTCOMES_PER_DETECTION * n);
    for (rows, area) in areas.into_array().iter().zip(AREA_NAMES) {
        if rows.len() != NUM_IOU_THRS {
            return Err(format!(
                "area {area}: {} IoU thresholds, expected {NUM_IOU_THRS}",
                rows.len()
            ));
        }
        for row in rows {
            if row.len() != n {
                return Err(format!(
                    "area {area}: {} outcomes for {n} detections",
                    row.len()
                ));
            }
            for ch in row.bytes() {
                outcomes.push(match ch {
                    b'T' => Outcome::TruePositive,
                    b'F' => Outcome::FalsePositive,
                    b'I' => Outcome::Ignored,
                    other => return Err(format!("unknown outcome {:?}", other as char)),
                });
            }
        }
    }
    Ok(outcomes)
}

#[derive(Serialize, Deserialize)]
struct AreaMap<T> {
    all: T,
    small: T,
    medium: T,
    large: T,
}

impl<T> AreaMap<T> {
    fn from_array([all, small, medium, large]: [T; NUM_AREAS]) -> Self {
        Self {
            all,
            small,
            medium,
            large,
        }
    }
    fn into_array(self) -> [T; NUM_AREAS] {
        [self.all, self.small, self.medium, self.large]
    }
}

/// Calls `f` with the bytes `s` encodes: decoded on the stack for the sizes
/// a class has (100 detections: 800 bytes of doubles, 1000 of outcomes), so
/// a rollup reading thousands of classes allocates only their results.
fn with_decoded<E: de::Error, R>(s: &str, f: impl FnOnce(&[u8]) -> Result<R, E>) -> Result<R, E> {
    let bad = |e: base64::DecodeSliceError| E::custom(format!("bad base64: {e}"));
    let mut stack = [0u8; 1024];
    if base64::decoded_len_estimate(s.len()) <= stack.len() {
        let n = STANDARD.decode_slice(s, &mut stack).map_err(bad)?;
        f(&stack[..n])
    } else {
        let bytes = STANDARD
            .decode(s)
            .map_err(|e| E::custom(format!("bad base64: {e}")))?;
        f(&bytes)
    }
}

/// `num_gt`: `[all, small, medium, large]` (v2) or `{"all": …, …}` (v1).
struct NumGt([u32; NUM_AREAS]);

impl<'de> Deserialize<'de> for NumGt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NumGt;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("num_gt as [all, small, medium, large] or {\"all\": …}")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<NumGt, A::Error> {
                <[u32; NUM_AREAS]>::deserialize(de::value::SeqAccessDeserializer::new(seq))
                    .map(NumGt)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<NumGt, A::Error> {
                AreaMap::<u32>::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|m| NumGt(m.into_array()))
            }
        }
        d.deserialize_any(V)
    }
}

/// `scores`, `matched_iou50`: a JSON array of numbers (v1) or base64 of
/// little-endian doubles (v2).
#[derive(Default)]
struct Doubles(Vec<f64>);

impl<'de> Deserialize<'de> for Doubles {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Doubles;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of numbers or base64 of little-endian doubles")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Doubles, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                while let Some(v) = seq.next_element::<f64>()? {
                    out.push(v);
                }
                Ok(Doubles(out))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Doubles, E> {
                with_decoded(s, |bytes| {
                    if bytes.len() % 8 != 0 {
                        return Err(E::custom(format!(
                            "{} bytes of doubles, not a multiple of 8",
                            bytes.len()
                        )));
                    }
                    Ok(Doubles(
                        bytes
                            .chunks_exact(8)
                            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
                            .collect(),
                    ))
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// `outcomes`: rows of letters per area range (v1) or base64 of 2-bit codes (v2).
enum StoredOutcomes {
    Letters(AreaMap<Vec<String>>),
    Packed(Vec<Outcome>),
}

impl Default for StoredOutcomes {
    fn default() -> Self {
        Self::Packed(Vec::new())
    }
}

impl<'de> Deserialize<'de> for StoredOutcomes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StoredOutcomes;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("outcomes as {\"all\": [\"TF…\", …], …} or base64 of 2-bit codes")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<StoredOutcomes, A::Error> {
                AreaMap::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(StoredOutcomes::Letters)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<StoredOutcomes, E> {
                with_decoded(s, |bytes| {
                    let mut out = Vec::with_capacity(bytes.len() * 4);
                    for &b in bytes {
                        for i in 0..4 {
                            out.push(match (b >> (2 * i)) & 3 {
                                0 => Outcome::FalsePositive,
                                1 => Outcome::TruePositive,
                                2 => Outcome::Ignored,
                                _ => return Err(E::custom("unknown outcome code 3")),
                            });
                        }
                    }
                    Ok(StoredOutcomes::Packed(out))
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// A [`ClassEval`] in the v1 layout (outcomes as letters, decimals), as
/// builds before ImageEval schema 2 stored it. Nothing stores it now: the
/// tests and `modelobs bench-rollup --schema 1` use it to check that both
/// layouts read to the same evaluation.
#[doc(hidden)]
pub struct ClassEvalV1<'a>(pub &'a ClassEval);

impl Serialize for ClassEvalV1<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct V1<'a> {
            category_id: u64,
            num_gt: AreaMap<u32>,
            scores: &'a [f64],
            matched_iou50: &'a [f64],
            outcomes: AreaMap<Vec<String>>,
        }
        let c = self.0;
        let outcomes = std::array::from_fn(|a| {
            (0..NUM_IOU_THRS)
                .map(|t| c.outcomes(a, t).iter().map(|&o| o as u8 as char).collect())
                .collect()
        });
        V1 {
            category_id: c.category_id,
            num_gt: AreaMap::from_array(c.num_gt),
            scores: &c.scores,
            matched_iou50: &c.matched_iou50,
            outcomes: AreaMap::from_array(outcomes),
        }
        .serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::super::image::{DtBox, GtBox, evaluate_image};
    use super::*;

    fn gt(id: u64, cat: u64, bbox: [f64; 4], iscrowd: bool) -> GtBox {
        GtBox {
            id,
            category_id: cat,
            bbox,
            area: bbox[2] * bbox[3],
            iscrowd,
        }
    }

    fn dt(cat: u64, bbox: [f64; 4], score: f64) -> DtBox {
        DtBox {
            category_id: cat,
            bbox,
            score,
        }
    }

    fn v1(cells: &[ClassEval]) -> String {
        let v: Vec<ClassEvalV1> = cells.iter().map(ClassEvalV1).collect();
        serde_json::to_string(&v).unwrap()
    }

    /// Every edge a class can have: only ground truth, only detections, a
    /// crowd region taking several detections, ground truth with id 0 (never
    /// a match, as in pycocotools), tied scores, every area range, and more
    /// than 100 detections.
    fn edge_cells() -> Vec<ClassEval> {
        let mut gts = vec![
            gt(1, 1, [0.0, 0.0, 10.0, 10.0], false),
            gt(2, 1, [50.0, 50.0, 200.0, 200.0], false),
            gt(3, 1, [300.0, 0.0, 60.0, 40.0], true),
            gt(4, 2, [10.0, 10.0, 30.0, 30.0], false), // class 2: ground truth only
            gt(0, 4, [5.0, 5.0, 40.0, 40.0], false),   // id 0: matched, never counted
        ];
        let mut dts = vec![
            dt(1, [1.0, 1.0, 10.0, 10.0], 0.7),
            dt(1, [52.0, 49.0, 199.0, 205.0], 0.7), // tie with the first
            dt(1, [300.0, 0.0, 30.0, 40.0], 0.6),   // crowd
            dt(1, [330.0, 0.0, 30.0, 40.0], 0.6),   // crowd again, tied
            dt(1, [600.0, 600.0, 5.0, 5.0], 0.2),   // unmatched, small
            dt(3, [0.0, 0.0, 20.0, 20.0], 0.9),     // class 3: detections only
            dt(4, [5.0, 5.0, 40.0, 40.0], 0.8),
        ];
        // Class 5: more detections than COCO keeps, some matching.
        for i in 0..130 {
            let b = [i as f64 * 3.0, 100.0, 20.0 + i as f64, 20.0];
            if i % 7 == 0 {
                gts.push(gt(100 + i, 5, b, i % 21 == 0));
            }
            dts.push(dt(5, b, ((i * 37) % 50) as f64 / 50.0));
        }
        evaluate_image(&gts, &dts, &[1, 2, 3, 4, 5])
    }

    #[test]
    fn v2_round_trips_every_edge() {
        let cells = edge_cells();
        assert_eq!(cells.len(), 5);
        assert!(cells[1].scores.is_empty(), "class 2 has ground truth only");
        assert_eq!(cells[2].num_gt, [0; 4], "class 3 has detections only");
        assert_eq!(cells[4].num_detections(), 100);
        assert!(
            cells[0].all_outcomes().contains(&Outcome::Ignored)
                && cells[0].all_outcomes().contains(&Outcome::TruePositive)
                && cells[0].all_outcomes().contains(&Outcome::FalsePositive)
        );
        let json = serde_json::to_string(&cells).unwrap();
        let back: Vec<ClassEval> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cells);
        // Bit for bit, -0.0 and all: the doubles are their bytes.
        for (a, b) in back.iter().zip(&cells) {
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a.scores), bits(&b.scores));
            assert_eq!(bits(&a.matched_iou50), bits(&b.matched_iou50));
        }
    }

    #[test]
    fn v1_and_v2_read_to_the_same_evaluation() {
        let cells = edge_cells();
        let old = v1(&cells);
        assert!(old.contains(r#""outcomes":{"all":["#), "{old}");
        let from_v1: Vec<ClassEval> = serde_json::from_str(&old).unwrap();
        let from_v2: Vec<ClassEval> =
            serde_json::from_str(&serde_json::to_string(&cells).unwrap()).unwrap();
        assert_eq!(from_v1, cells);
        assert_eq!(from_v2, cells);
        let new = serde_json::to_string(&cells).unwrap();
        assert!(
            new.len() < old.len(),
            "v2 {} bytes, v1 {}",
            new.len(),
            old.len()
        );
    }

    #[test]
    fn the_v2_layout_is_as_documented() {
        // A medium ground truth matched at IoU 0.84 (.50 to .80), then a duplicate.
        let cells = evaluate_image(
            &[gt(1, 18, [0.0, 0.0, 50.0, 50.0], false)],
            &[
                dt(18, [0.0, 0.0, 50.0, 42.0], 0.5),
                dt(18, [0.0, 0.0, 50.0, 42.0], 0.25),
            ],
            &[18],
        );
        let c = &cells[0];
        assert!((c.matched_iou50[0] - 0.84).abs() < 1e-12 && c.matched_iou50[1] == 0.0);
        let v: serde_json::Value = serde_json::to_value(c).unwrap();
        assert_eq!(v["num_gt"], serde_json::json!([1, 0, 1, 0]));
        assert_eq!(v["detections"], 2);
        let bytes = |k: &str| STANDARD.decode(v[k].as_str().unwrap()).unwrap();
        assert_eq!(
            bytes("scores"),
            [0.5f64.to_le_bytes(), 0.25f64.to_le_bytes()].concat()
        );
        assert_eq!(
            bytes("matched_iou50"),
            [c.matched_iou50[0].to_le_bytes(), [0; 8]].concat()
        );
        let packed = bytes("outcomes");
        assert_eq!(packed.len(), 20, "10 bytes per detection");
        let code = |a: usize, t: usize, d: usize| {
            let i = (a * NUM_IOU_THRS + t) * 2 + d;
            (packed[i / 4] >> (2 * (i % 4))) & 3
        };
        // all: T at .50-.80, F above; the duplicate always F.
        for t in 0..NUM_IOU_THRS {
            assert_eq!(code(0, t, 0), if t <= 6 { 1 } else { 0 }, "t {t}");
            assert_eq!(code(0, t, 1), 0);
            assert_eq!(code(1, t, 1), 2, "small: outside the range, ignored");
        }
        // Without detections only the counts are written.
        let only_gt = evaluate_image(&[gt(1, 3, [0.0, 0.0, 5.0, 5.0], false)], &[], &[3]);
        assert_eq!(
            serde_json::to_string(&only_gt[0]).unwrap(),
            r#"{"category_id":3,"num_gt":[1,1,0,0],"detections":0}"#
        );
    }

    fn err(json: &str) -> String {
        serde_json::from_str::<ClassEval>(json)
            .map(|c| format!("read as {c:?}"))
            .unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn a_corrupt_v1_record_is_refused() {
        let json = r#"{"category_id":1,"num_gt":{"all":1,"small":0,"medium":0,"large":1},
            "scores":[0.5],"matched_iou50":[0.0],
            "outcomes":{"all":["X","T","T","T","T","T","T","T","T","T"],"small":[],"medium":[],"large":[]}}"#;
        assert!(err(json).contains("unknown outcome 'X'"), "{}", err(json));
        let short = json.replace(r#""X","T""#, r#""T""#);
        assert!(err(&short).contains("9 IoU thresholds"), "{}", err(&short));
        let ious = json.replace(r#""matched_iou50":[0.0]"#, r#""matched_iou50":[]"#);
        assert!(err(&ious).contains("0 matched IoUs for 1 detections"));
    }

    #[test]
    fn a_corrupt_v2_record_is_refused() {
        let cells = evaluate_image(
            &[gt(1, 1, [0.0, 0.0, 10.0, 10.0], false)],
            &[dt(1, [0.0, 0.0, 10.0, 10.0], 0.5)],
            &[1],
        );
        let good = serde_json::to_string(&cells[0]).unwrap();
        assert_eq!(serde_json::from_str::<ClassEval>(&good).unwrap(), cells[0]);
        let v: serde_json::Value = serde_json::from_str(&good).unwrap();
        let with = |k: &str, x: serde_json::Value| {
            let mut v = v.clone();
            v[k] = x;
            v.to_string()
        };
        let e = err(&with("detections", 2.into()));
        assert!(e.contains("2 detections but 1 scores"), "{e}");
        let e = err(&with("scores", "AAAA".into()));
        assert!(e.contains("not a multiple of 8"), "{e}");
        let e = err(&with("scores", "not base64!".into()));
        assert!(e.contains("bad base64"), "{e}");
        let e = err(&with("matched_iou50", STANDARD.encode([0u8; 16]).into()));
        assert!(e.contains("2 matched IoUs for 1 detections"), "{e}");
        let e = err(&with("outcomes", STANDARD.encode([0u8; 9]).into()));
        assert!(
            e.contains("36 packed outcomes for 1 detections, expected 40"),
            "{e}"
        );
        let e = err(&with("outcomes", STANDARD.encode([0xffu8; 10]).into()));
        assert!(e.contains("unknown outcome code 3"), "{e}");
        let e = err(&with("num_gt", serde_json::json!([1, 0, 0])));
        assert!(e.contains("invalid length 3"), "{e}");
        let mut missing = v.clone();
        missing.as_object_mut().unwrap().remove("outcomes");
        let e = err(&missing.to_string());
        assert!(e.contains("0 packed outcomes for 1 detections"), "{e}");
    }
}
