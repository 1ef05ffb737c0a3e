//! Our evaluation against hotcoco (a pycocotools-compatible evaluator) on
//! random sets. pycocotools itself is checked in `make crosscheck`; this
//! runs hundreds of sets in `cargo test` without Python.

mod support;

use hotcoco::params::IouType;
use hotcoco::{COCO, COCOeval};
use modelobs_core::eval::coco_format::evaluate_dataset;

fn hotcoco_stats(seed: u64) -> Vec<f64> {
    let (gt, dt) = support::random_set(seed);
    let gt: hotcoco::types::Dataset =
        serde_json::from_value(serde_json::to_value(&gt).unwrap()).unwrap();
    let dt: Vec<hotcoco::types::Annotation> =
        serde_json::from_value(serde_json::to_value(&dt).unwrap()).unwrap();
    let gt = COCO::from_dataset(gt);
    let dt = gt.load_res_anns(dt).unwrap();
    let mut ev = COCOeval::new(gt, dt, IouType::Bbox);
    ev.evaluate().unwrap();
    ev.accumulate();
    ev.summarize();
    ev.stats().unwrap().to_vec()
}

#[test]
fn twelve_stats_match_hotcoco_on_random_sets() {
    for seed in 0..300 {
        let (gt, dt) = support::random_set(seed);
        let s = evaluate_dataset(&gt, &dt).unwrap().summary(&gt.categories);
        let ours = s.stats();
        let theirs = hotcoco_stats(seed);
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            assert!(
                (a - b).abs() <= 1e-9,
                "seed {seed}, stat {i}: ours {a}, hotcoco {b}\nours {ours:?}\nhotcoco {theirs:?}"
            );
        }
    }
}
