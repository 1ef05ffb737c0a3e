//! The composites under `datasets/composites/`: regenerated from their recipe
//! they are exactly the committed annotations, no ingredient crosses the
//! split, every class has enough instances per split, and (on synthetic
//! ingredients) every box is exactly what is visible.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage, Rgba, RgbaImage};
use modelobs_core::classes;
use modelobs_core::eval::coco_format::Split;
use modelobs_dataset::{CompositeSet, Dataset, Inputs, Recipe, generate};

fn datasets() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../datasets")
}

fn inputs() -> Inputs {
    Inputs {
        cutouts: datasets().join("cutouts"),
        backgrounds: datasets().join("backgrounds"),
        photos: Some(datasets().join("animals")),
    }
}

fn committed() -> CompositeSet {
    let bytes = std::fs::read(datasets().join("composites/annotations.json")).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn the_recipe_regenerates_the_committed_annotations() {
    let recipe = Recipe::load(&datasets().join("composites/recipe.json")).unwrap();
    let set = generate(&recipe, &inputs(), Path::new("unused"), false).unwrap();
    let committed = committed();
    assert_eq!(
        set.info.recipe, committed.info.recipe,
        "recipe.json changed: run `modelobs dataset composite`"
    );
    assert_eq!(set.images.len(), committed.images.len());
    for (a, b) in set.images.iter().zip(&committed.images) {
        assert_eq!(a, b);
    }
    assert_eq!(
        set.annotations, committed.annotations,
        "run `modelobs dataset composite` and commit annotations.json"
    );
    assert_eq!(
        set.to_json(),
        std::fs::read_to_string(datasets().join("composites/annotations.json")).unwrap()
    );
}

/// The split each ingredient is on, by the name composites record.
fn ingredient_splits() -> BTreeMap<String, Split> {
    #[derive(serde::Deserialize)]
    struct Entry {
        file: String,
        split: Split,
    }
    let read = |dir: &str, list: &str| -> Vec<Entry> {
        serde_json::from_slice(&std::fs::read(datasets().join(dir).join(list)).unwrap()).unwrap()
    };
    let mut splits = BTreeMap::new();
    for e in read("cutouts", "cutouts.json") {
        splits.insert(format!("cutouts/{}", e.file), e.split);
    }
    for e in read("backgrounds", "backgrounds.json") {
        splits.insert(format!("backgrounds/{}", e.file), e.split);
    }
    for s in Dataset::load(datasets().join("animals")).unwrap().samples {
        for i in 1..=s.boxes.len() {
            splits.insert(format!("animals/{}#{i}", s.file), s.split.unwrap());
        }
    }
    splits
}

#[test]
fn no_ingredient_crosses_the_split() {
    let splits = ingredient_splits();
    let set = committed();
    let mut sides: BTreeMap<&str, BTreeSet<Split>> = BTreeMap::new();
    for image in &set.images {
        assert!(
            image.ingredients.len() >= 2,
            "{}: a background and something on it",
            image.file_name
        );
        assert!(image.ingredients[0].starts_with("backgrounds/"));
        for ing in &image.ingredients {
            let split = splits
                .get(ing)
                .unwrap_or_else(|| panic!("{}: unknown ingredient {ing}", image.file_name));
            assert_eq!(
                *split, image.split,
                "{}: {ing} is on {split}",
                image.file_name
            );
            sides.entry(ing).or_default().insert(image.split);
        }
    }
    assert!(sides.values().all(|s| s.len() == 1));
}

/// The issue's bar: every animal class has at least 20 instances in the
/// train split and 5 in the test split, photos and composites together.
#[test]
fn every_class_has_enough_instances_on_train_and_test() {
    let mut counts: BTreeMap<(Split, String), usize> = committed().counts();
    for s in Dataset::load(datasets().join("animals")).unwrap().samples {
        for (class, _) in &s.boxes {
            *counts.entry((s.split.unwrap(), class.clone())).or_insert(0) += 1;
        }
    }
    for class in classes::ANIMALS {
        let n = |split| {
            counts
                .get(&(split, class.to_string()))
                .copied()
                .unwrap_or(0)
        };
        assert!(
            n(Split::Train) >= 20,
            "{class}: {} in train",
            n(Split::Train)
        );
        assert!(n(Split::Test) >= 5, "{class}: {} in test", n(Split::Test));
    }
}

/// A solid disc with hard alpha, on transparent.
fn disc(size: u32, colour: [u8; 3]) -> RgbaImage {
    let r = size as f64 / 2.0;
    RgbaImage::from_fn(size, size, |x, y| {
        let (dx, dy) = (x as f64 + 0.5 - r, y as f64 + 0.5 - r);
        if dx * dx + dy * dy <= r * r {
            Rgba([colour[0], colour[1], colour[2], 255])
        } else {
            Rgba([0, 0, 0, 0])
        }
    })
}

/// Synthetic ingredients: a red bird disc and a green cow disc, a blue
/// background. Each composite's boxes must be the bounding boxes of the
/// red and green pixels in its image, whatever overlapped.
#[test]
fn boxes_are_the_visible_pixels_of_each_pasted_thing() {
    let dir = std::env::temp_dir().join(format!("modelobs-composite-{}", std::process::id()));
    let (cut, bg, out) = (
        dir.join("cutouts"),
        dir.join("backgrounds"),
        dir.join("out"),
    );
    std::fs::create_dir_all(&cut).unwrap();
    std::fs::create_dir_all(&bg).unwrap();
    disc(120, [255, 0, 0]).save(cut.join("red.png")).unwrap();
    disc(120, [0, 255, 0]).save(cut.join("green.png")).unwrap();
    std::fs::write(
        cut.join("cutouts.json"),
        r#"[{"file":"red.png","class":"bird","split":"train"},{"file":"green.png","class":"cow","split":"train"}]"#,
    )
    .unwrap();
    RgbImage::from_pixel(400, 300, Rgb([0, 0, 255]))
        .save(bg.join("blue.png"))
        .unwrap();
    std::fs::write(
        bg.join("backgrounds.json"),
        r#"[{"file":"blue.png","split":"train"}]"#,
    )
    .unwrap();
    let recipe: Recipe = serde_json::from_str(
        r#"{"seed":3,"width":200,"height":150,"count":{"train":40},"objects":[2,2],"scale":[0.3,0.8],"max_upscale":2.0,
            "flip":0.5,"max_occluded":0.7,"min_crop_side":24,"min_box_side":1,"jpeg_quality":100}"#,
    )
    .unwrap();
    let inputs = Inputs {
        cutouts: cut,
        backgrounds: bg,
        photos: None,
    };
    let set = generate(&recipe, &inputs, &out, true).unwrap();
    let mut overlapped = 0;
    for image in &set.images {
        let img = image::open(out.join(&image.file_name)).unwrap().to_rgb8();
        let pixel_box = |want: fn(&Rgb<u8>) -> bool| {
            let mut b = [u32::MAX, u32::MAX, 0, 0];
            for (x, y, p) in img.enumerate_pixels() {
                if want(p) {
                    b = [b[0].min(x), b[1].min(y), b[2].max(x + 1), b[3].max(y + 1)];
                }
            }
            b
        };
        let red = pixel_box(|p| p.0[0] > 160 && p.0[1] < 100 && p.0[2] < 100);
        let green = pixel_box(|p| p.0[1] > 160 && p.0[0] < 100 && p.0[2] < 100);
        let anns: Vec<_> = set
            .annotations
            .iter()
            .filter(|a| a.image_id == image.id)
            .collect();
        for a in &anns {
            let want = if a.category_id == 16 { red } else { green };
            let [x, y, w, h] = a.bbox;
            let got = [x, y, x + w, y + h];
            for k in 0..4 {
                assert!(
                    (got[k] - want[k] as f64).abs() <= 1.0,
                    "{}: category {} box {got:?}, pixels {want:?}",
                    image.file_name,
                    a.category_id
                );
            }
        }
        if anns.len() == 2 {
            let (a, b) = (anns[0].bbox, anns[1].bbox);
            if a[0] < b[0] + b[2] && b[0] < a[0] + a[2] && a[1] < b[1] + b[3] && b[1] < a[1] + a[3]
            {
                overlapped += 1;
            }
        }
    }
    assert!(
        overlapped >= 5,
        "only {overlapped} of 40 composites overlap: occlusion untested"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
