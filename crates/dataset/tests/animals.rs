//! `datasets/animals/` loads, and a broken dataset is refused with a reason.

use std::path::{Path, PathBuf};

use modelobs_core::classes;
use modelobs_core::eval::coco_format::Split;
use modelobs_dataset::{Dataset, DatasetError, DriftSchedule, apply};

fn animals() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/animals")
}

#[test]
fn the_animal_photos_load_with_every_box_inside_its_image() {
    let ds = Dataset::load(animals()).unwrap();
    assert!(ds.len() >= 30, "{} photos", ds.len());
    let count = |class: &str| {
        ds.samples
            .iter()
            .flat_map(|s| &s.boxes)
            .filter(|(c, _)| c == class)
            .count()
    };
    // Every animal class but elephant (only the cut-outs have one) is in the photos.
    for class in classes::ANIMALS.iter().filter(|c| **c != "elephant") {
        assert!(count(class) >= 1, "no {class} in the photos");
    }
    for s in &ds.samples {
        assert!(!s.boxes.is_empty(), "{} has no animal", s.file);
        assert!(s.split.is_some(), "{} is on no split", s.file);
        assert_eq!(
            s.source.as_deref(),
            Some(s.file.as_str()),
            "a photo is its own source"
        );
        for (class, b) in &s.boxes {
            assert!(classes::ANIMALS.contains(&class.as_str()), "{class}");
            let (w, h) = s.image.dimensions();
            assert_eq!(b.clamp(w, h), *b, "{}: {b:?} outside {w}x{h}", s.file);
        }
    }
    assert_eq!(ds.get("horses.jpg").unwrap().image.dimensions(), (773, 512));
    let test = ds.split(Split::Test).unwrap();
    assert!(test.samples.iter().all(|s| s.split == Some(Split::Test)));
    assert!(
        test.len() >= 5 && test.len() < 30,
        "{} test photos",
        test.len()
    );
}

/// Every file under datasets/ is in its directory's README, with its sha256:
/// no photo, cut-out or background without a recorded source and licence.
#[test]
fn every_dataset_file_has_a_readme_entry_and_checksum() {
    use sha2::Digest;
    let root = animals().join("..");
    for dir in ["animals", "cutouts", "backgrounds"] {
        let readme = std::fs::read_to_string(root.join(dir).join("README.md")).unwrap();
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name.ends_with(".md") || name.ends_with(".json") {
                continue;
            }
            assert!(
                readme.contains(&format!("| `{name}` |")),
                "{dir}/{name}: no row in its README's table"
            );
            let sha = sha2::Sha256::digest(std::fs::read(root.join(dir).join(&name)).unwrap());
            let line = format!("{}  {name}", hex::encode(sha));
            assert!(
                readme.contains(&line),
                "{dir}/{name}: sha256 is not the README's ({line})"
            );
        }
    }
}

#[test]
fn a_drifted_day_of_the_real_photos_keeps_its_animals() {
    let ds = Dataset::load(animals()).unwrap();
    let schedule = DriftSchedule::parse("clean:1,dark:1,blur+small:1").unwrap();
    let mut picker = schedule.picker(5);
    for day in 0..3 {
        for _ in 0..6 {
            let pick = picker.pick(day, ds.len());
            let sample = &ds.samples[pick.sample];
            let (jpeg, boxes) = apply(sample, &pick.transforms, pick.seed).unwrap();
            let img = image::load_from_memory(&jpeg).unwrap();
            // Nothing these conditions do cuts an animal off.
            assert_eq!(boxes.len(), sample.boxes.len(), "{pick:?}");
            for (_, b) in &boxes {
                assert_eq!(b.clamp(img.width(), img.height()), *b);
            }
        }
    }
}

/// A dataset in a fresh temporary directory: one 8x6 PNG and `annotations`.
fn broken(name: &str, annotations: &str) -> Result<Dataset, DatasetError> {
    let dir = std::env::temp_dir().join(format!("modelobs-dataset-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    image::RgbImage::new(8, 6).save(dir.join("a.png")).unwrap();
    std::fs::write(dir.join("annotations.json"), annotations).unwrap();
    let result = Dataset::load(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    result
}

#[test]
fn a_broken_dataset_is_refused_with_the_reason() {
    let ann = |image: &str, annotation: &str| {
        format!(r#"{{"images": [{image}], "annotations": [{annotation}], "categories": []}}"#)
    };
    let good_image = r#"{"id": 1, "file_name": "a.png", "width": 8, "height": 6}"#;
    let box_ = |cat: u32, bbox: &str| {
        format!(r#"{{"id": 7, "image_id": 1, "category_id": {cat}, "bbox": {bbox}}}"#)
    };
    assert!(broken("ok", &ann(good_image, &box_(18, "[1, 1, 3, 3]"))).is_ok());
    for (name, annotations, want) in [
        ("json", "not json".to_string(), "not a COCO"),
        (
            "missing",
            ann(r#"{"id": 1, "file_name": "b.png"}"#, ""),
            "b.png",
        ),
        ("nofile", ann(r#"{"id": 1}"#, ""), "no file_name"),
        (
            "size",
            ann(r#"{"id": 1, "file_name": "a.png", "width": 9}"#, ""),
            "a.png is 8x6",
        ),
        (
            "category",
            ann(good_image, &box_(12, "[1, 1, 3, 3]")),
            "category 12 is not a COCO-80 category",
        ),
        (
            "outside",
            ann(good_image, &box_(18, "[6, 1, 3, 3]")),
            "outside a.png",
        ),
        (
            "negative",
            ann(good_image, &box_(18, "[1, 1, -3, 3]")),
            "annotation 7",
        ),
        (
            "orphan",
            format!(
                r#"{{"images": [{good_image}], "annotations": [{}], "categories": []}}"#,
                box_(18, "[1, 1, 3, 3]").replace("\"image_id\": 1", "\"image_id\": 2")
            ),
            "refers to image 2",
        ),
        (
            "empty",
            r#"{"images": [], "annotations": [], "categories": []}"#.to_string(),
            "no images",
        ),
    ] {
        let err = broken(name, &annotations).expect_err(name).to_string();
        assert!(err.contains(want), "{name}: {err}");
    }
}
