//! Random COCO sets for the evaluation tests: seeded, so a failure names its seed.

#![allow(dead_code)]

use modelobs_core::eval::coco_format::{
    CocoAnnotation, CocoCategory, CocoDataset, CocoImage, CocoResult,
};

/// splitmix64: tiny, seeded, good enough to draw boxes.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

/// A dataset with crowds, empty images, classes without ground truth,
/// duplicate and jittered detections, tied scores, boxes of every size.
pub fn random_set(seed: u64) -> (CocoDataset, Vec<CocoResult>) {
    let mut rng = Rng::new(seed);
    let categories: Vec<CocoCategory> = [3u64, 7, 18, 25]
        .iter()
        .map(|&id| CocoCategory {
            id,
            name: format!("class{id}"),
            supercategory: None,
        })
        .collect();
    let n_images = 1 + rng.below(12);
    let mut images = Vec::new();
    let mut annotations = Vec::new();
    let mut results = Vec::new();
    for i in 0..n_images {
        let image_id = 10 + i * 3;
        images.push(CocoImage {
            id: image_id,
            width: Some(640),
            height: Some(480),
            file_name: None,
            split: None,
            source: None,
        });
        for _ in 0..rng.below(8) {
            // Category 25 never has ground truth.
            let category_id = categories[rng.below(3) as usize].id;
            let scale = [8.0, 40.0, 150.0][rng.below(3) as usize];
            let (w, h) = (1.0 + rng.unit() * scale, 1.0 + rng.unit() * scale);
            let bbox = [rng.unit() * 500.0, rng.unit() * 400.0, w, h];
            let iscrowd = rng.chance(0.08);
            annotations.push(CocoAnnotation {
                id: annotations.len() as u64 + 1,
                image_id,
                category_id,
                bbox,
                // Sometimes not w*h: pycocotools trusts the field.
                area: Some(if rng.chance(0.2) { w * h * 1.3 } else { w * h }),
                iscrowd,
            });
            // Detections near this object: jittered copies, sometimes doubled.
            for _ in 0..rng.below(3) {
                let j = |rng: &mut Rng, v: f64, s: f64| v + (rng.unit() - 0.5) * s * 0.4;
                let det = [j(&mut rng, bbox[0], w), j(&mut rng, bbox[1], h), w, h];
                let score = (rng.below(10) as f64) / 10.0 + 0.05; // coarse: ties
                let category_id = if rng.chance(0.1) {
                    categories[3].id
                } else {
                    category_id
                };
                results.push(CocoResult {
                    image_id,
                    category_id,
                    bbox: det,
                    score,
                });
                if rng.chance(0.1) {
                    results.push(results.last().unwrap().clone());
                }
            }
        }
        // False alarms, sometimes a flood of them (> 100 per image and class).
        let flood = if rng.chance(0.05) { 130 } else { rng.below(4) };
        for _ in 0..flood {
            results.push(CocoResult {
                image_id,
                category_id: categories[rng.below(4) as usize].id,
                bbox: [
                    rng.unit() * 600.0,
                    rng.unit() * 440.0,
                    1.0 + rng.unit() * 120.0,
                    1.0 + rng.unit() * 90.0,
                ],
                score: rng.unit(),
            });
        }
    }
    (
        CocoDataset {
            images,
            annotations,
            categories,
        },
        results,
    )
}
