//! Box geometry checked against the pixels: a white rectangle on black,
//! transformed, must still have the transformed box as its pixel extent.

use image::{Rgb, RgbImage};
use modelobs_core::BBox;
use modelobs_dataset::{Transform, apply, apply_image, parse_chain};

/// A 200x120 black image with a white rectangle over pixels
/// `x in 50..90, y in 30..100`: its box is exactly (50, 30, 90, 100).
fn scene() -> (RgbImage, Vec<(String, BBox)>) {
    let mut img = RgbImage::new(200, 120);
    for y in 30..100 {
        for x in 50..90 {
            img.put_pixel(x, y, Rgb([255, 255, 255]));
        }
    }
    let b = BBox::new(50.0, 30.0, 90.0, 100.0).unwrap();
    (img, vec![("dog".to_string(), b)])
}

/// The box around the pixels brighter than half: where a resampled edge
/// crosses half coverage.
fn pixel_box(img: &RgbImage) -> Option<BBox> {
    let mut b: Option<(u32, u32, u32, u32)> = None;
    for (x, y, p) in img.enumerate_pixels() {
        if p[0] >= 128 {
            b = Some(match b {
                None => (x, y, x + 1, y + 1),
                Some((x1, y1, x2, y2)) => (x1.min(x), y1.min(y), x2.max(x + 1), y2.max(y + 1)),
            });
        }
    }
    b.map(|(x1, y1, x2, y2)| BBox {
        x1: f64::from(x1),
        y1: f64::from(y1),
        x2: f64::from(x2),
        y2: f64::from(y2),
    })
}

fn assert_close(got: &BBox, want: &BBox, tol: f64, what: &str) {
    let d = [
        got.x1 - want.x1,
        got.y1 - want.y1,
        got.x2 - want.x2,
        got.y2 - want.y2,
    ];
    assert!(
        d.iter().all(|v| v.abs() <= tol),
        "{what}: box {got:?}, pixels {want:?}"
    );
}

fn run(spec: &str) -> (RgbImage, Vec<(String, BBox)>) {
    let (img, boxes) = scene();
    apply_image(&img, &boxes, &parse_chain(spec).unwrap(), 0).unwrap()
}

#[test]
fn flipping_twice_is_the_identity() {
    let (img, boxes) = scene();
    let (once, flipped) = run("flip");
    assert_eq!(
        flipped[0].1,
        BBox::new(110.0, 30.0, 150.0, 100.0).unwrap(),
        "200 - 90 = 110, 200 - 50 = 150"
    );
    assert_eq!(pixel_box(&once), Some(flipped[0].1));
    let (twice, back) = run("flip,flip");
    assert_eq!(twice, img);
    assert_eq!(back, boxes);
}

#[test]
fn four_quarter_turns_are_the_identity() {
    let (img, boxes) = scene();
    let (turned, b) = run("rot90");
    assert_eq!(turned.dimensions(), (120, 200));
    // Clockwise: (x, y) -> (height - y, x).
    assert_eq!(b[0].1, BBox::new(20.0, 50.0, 90.0, 90.0).unwrap());
    assert_eq!(pixel_box(&turned), Some(b[0].1));
    for k in 2..=3 {
        let (turned, b) = run(&vec!["rot90"; k].join(","));
        assert_eq!(pixel_box(&turned), Some(b[0].1), "{k} quarter turns");
    }
    let (full, back) = run("rot90,rot90,rot90,rot90");
    assert_eq!(full, img);
    assert_eq!(back, boxes);
}

#[test]
fn crop_pad_and_scale_move_the_box_with_the_pixels() {
    for spec in [
        "crop=0.1:0.1:0.8:0.8",
        // rounding: 0.123 * 200 = 24.6 -> 25, 0.377 * 120 = 45.24 -> 45
        "crop=0.123:0.05:0.6:0.9",
        "pad=0.25",
        "pad=0.1:0.3:0:0.05",
        "scale=0.5",
        "scale=0.37",
        "scale=1.7",
        "pad=0.5,scale=0.5",
        "pad=0.1:0.2:0.3:0.05,rot90,crop=0.05:0.1:0.9:0.7,scale=0.6,flip",
    ] {
        let (img, boxes) = run(spec);
        assert_eq!(boxes.len(), 1, "{spec}");
        let pixels = pixel_box(&img).unwrap_or_else(|| panic!("{spec}: rectangle gone"));
        assert_close(&boxes[0].1, &pixels, 1.0, spec);
    }
}

#[test]
fn the_box_arithmetic_is_exact_where_it_can_be() {
    // crop: x0 = 20, y0 = 12; the box moves by (-20, -12).
    let (img, b) = run("crop=0.1:0.1:0.8:0.8");
    assert_eq!(img.dimensions(), (160, 96));
    assert_eq!(b[0].1, BBox::new(30.0, 18.0, 70.0, 88.0).unwrap());
    // pad: 20 px left and right, 30 px top and bottom.
    let (img, b) = run("pad=0.1:0.25:0.1:0.25");
    assert_eq!(img.dimensions(), (240, 180));
    assert_eq!(b[0].1, BBox::new(70.0, 60.0, 110.0, 130.0).unwrap());
    assert_eq!(*img.get_pixel(0, 0), Rgb([114, 114, 114]));
    // scale: 0.5 halves everything.
    let (img, b) = run("scale=0.5");
    assert_eq!(img.dimensions(), (100, 60));
    assert_eq!(b[0].1, BBox::new(25.0, 15.0, 45.0, 50.0).unwrap());
    // scale 1/3: 200 -> 67 and 120 -> 40 pixels, and the box follows the
    // rounded size (67/200 across, 40/120 down), not the requested factor.
    let (img, b) = run("scale=0.3333333333333333");
    assert_eq!(img.dimensions(), (67, 40));
    let sx = 67.0 / 200.0;
    let sy = 40.0 / 120.0;
    assert_eq!(
        b[0].1,
        BBox {
            x1: 50.0 * sx,
            y1: 30.0 * sy,
            x2: 90.0 * sx,
            y2: 100.0 * sy
        }
    );
}

#[test]
fn boxes_are_clipped_by_a_crop_and_dropped_when_gone_or_too_thin() {
    // Keeps x in 70..200: the box's left part is cut away.
    let (img, b) = run("crop=0.35:0:0.65:1");
    assert_eq!(b[0].1, BBox::new(0.0, 30.0, 20.0, 100.0).unwrap());
    assert_close(&b[0].1, &pixel_box(&img).unwrap(), 0.0, "clipped");
    // Keeps x in 100..200: the rectangle is gone, and so is its box.
    let (img, b) = run("crop=0.5:0:0.5:1");
    assert!(b.is_empty(), "{b:?}");
    assert_eq!(pixel_box(&img), None);
    // Keeps x in 89..200: a 1-pixel sliver is not an animal any more.
    let (_, b) = run("crop=0.445:0:0.555:1");
    assert!(b.is_empty(), "{b:?}");
    // Shrunk below two pixels: dropped too.
    let (_, b) = run("scale=0.02");
    assert!(b.is_empty(), "{b:?}");
}

#[test]
fn photometric_transforms_keep_the_boxes_and_change_the_pixels() {
    let (img, boxes) = scene();
    let mean = |i: &RgbImage| i.as_raw().iter().map(|&v| f64::from(v)).sum::<f64>() / 72000.0;
    for (spec, check) in [
        (
            "bright=0.5",
            Box::new(|o: &RgbImage| *o.get_pixel(60, 40) == Rgb([128, 128, 128]))
                as Box<dyn Fn(&RgbImage) -> bool>,
        ),
        (
            "contrast=0.5",
            Box::new(|o: &RgbImage| {
                // Halfway to the mean grey, which stays where it was.
                let m = mean(&scene().0);
                let want = (m + (255.0 - m) * 0.5).round() as u8;
                o.get_pixel(60, 40)[0] == want
            }),
        ),
        (
            "blur=2",
            Box::new(|o: &RgbImage| {
                let edge = o.get_pixel(50, 60)[0];
                o.get_pixel(70, 60)[0] == 255 && edge > 60 && edge < 200
            }),
        ),
        (
            "noise=10",
            Box::new(|o: &RgbImage| o.get_pixel(0, 0)[0] > 0 || o.get_pixel(1, 0)[0] > 0),
        ),
        (
            "jpeg=10",
            Box::new(|o: &RgbImage| o != &scene().0 && o.dimensions() == (200, 120)),
        ),
    ] {
        let (out, b) = apply_image(&img, &boxes, &parse_chain(spec).unwrap(), 3).unwrap();
        assert_eq!(b, boxes, "{spec} moved a box");
        assert!(check(&out), "{spec}: pixels not as expected");
    }
}

#[test]
fn the_same_seed_gives_the_same_bytes() {
    let (image, boxes) = scene();
    let sample = modelobs_dataset::Sample {
        file: "scene.png".into(),
        image,
        boxes,
        split: None,
        source: None,
    };
    let chain = parse_chain("flip,scale=0.8,bright=0.7,blur=1,noise=12").unwrap();
    let (a, ba) = apply(&sample, &chain, 9).unwrap();
    let (b, bb) = apply(&sample, &chain, 9).unwrap();
    let (c, _) = apply(&sample, &chain, 10).unwrap();
    assert_eq!(a, b);
    assert_eq!(ba, bb);
    assert_ne!(a, c, "another seed, other noise");
    let decoded = image::load_from_memory_with_format(&a, image::ImageFormat::Jpeg).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (160, 96));
}

#[test]
fn a_chain_ending_in_jpeg_returns_that_encoding() {
    let (image, boxes) = scene();
    let mut noisy = image.clone();
    // Texture, so that quality matters to the size.
    for (i, v) in noisy.iter_mut().enumerate() {
        *v = v.wrapping_add((i * 37 % 61) as u8);
    }
    let sample = modelobs_dataset::Sample {
        file: "scene.png".into(),
        image: noisy,
        boxes,
        split: None,
        source: None,
    };
    let (q10, _) = apply(&sample, &[Transform::Jpeg(10)], 0).unwrap();
    let (q95, _) = apply(&sample, &[Transform::Jpeg(95)], 0).unwrap();
    let (default, _) = apply(&sample, &[], 0).unwrap();
    assert!(q10.len() < default.len() && default.len() < q95.len());
    assert_eq!(
        q10,
        modelobs_dataset::encode_jpeg(&sample.image, 10).unwrap(),
        "the bytes of jpeg=10 itself, not a second encoding"
    );
}
