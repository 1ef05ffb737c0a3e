//! Exact-box composites: cut-outs pasted onto background photos.
//!
//! A composite is a crop of a background photo with one to a few animals
//! pasted on it, each scaled, maybe flipped, maybe partly hidden by what is
//! pasted after it. Its boxes are read back from what is visible, so they are
//! exact whatever the placement:
//!
//! - an **alpha cut-out** (`datasets/cutouts/`) has one object, its pixels
//!   those with alpha ≥ 128;
//! - a **photo crop** is the box of an animal in a photo of `datasets/animals/`,
//!   cut out as a rectangle; it carries that animal and the parts of any
//!   other animal's box inside the rectangle (a neighbour's legs), each a
//!   rectangle of pixels.
//!
//! Every background, cut-out and photo is on one side of the split, and a
//! composite is made only of ingredients of its own side: nothing of a test
//! photo reaches the training set. Classes are drawn least-seen first, so the
//! classes with few sources (zebra, elephant, giraffe) end with as many
//! instances as the birds. Everything is drawn from one seeded generator: the
//! same recipe and inputs give the same bytes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use image::imageops::{self, FilterType};
use image::{Rgb, RgbImage, Rgba, RgbaImage};
use modelobs_core::BBox;
use modelobs_core::classes;
use modelobs_core::eval::coco_format::Split;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::DatasetError;
use crate::transform::encode_jpeg;

/// What to make: sizes, counts and ranges. Kept beside the annotations it
/// produced (`datasets/composites/recipe.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub seed: u64,
    /// Every composite's size in pixels.
    pub width: u32,
    pub height: u32,
    /// Composites per split.
    pub count: BTreeMap<Split, u32>,
    /// Pasted things per composite, inclusive range.
    pub objects: [u32; 2],
    /// A pasted thing's longer side as a fraction of the composite's shorter side.
    pub scale: [f64; 2],
    /// Most a thing is enlarged over its source pixels: a 20 px sheep of a
    /// flock photo stays small rather than becoming a 300 px blur.
    pub max_upscale: f64,
    /// Chance of a horizontal flip.
    pub flip: f64,
    /// Most of an object's pixels that later pastes may cover.
    pub max_occluded: f64,
    /// Shortest side, in source pixels, of a photo box worth cropping.
    pub min_crop_side: u32,
    /// A visible part smaller than this (pixels, either side) is dropped:
    /// a sliver of a neighbour at a crop's edge is not an animal to find.
    pub min_box_side: u32,
    pub jpeg_quality: u8,
}

/// Where the ingredients are.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// `cutouts.json` + PNGs with alpha.
    pub cutouts: PathBuf,
    /// `backgrounds.json` + photos without animals.
    pub backgrounds: PathBuf,
    /// A dataset whose boxes become photo crops (`datasets/animals`).
    pub photos: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CutoutEntry {
    file: String,
    class: String,
    split: Split,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackgroundEntry {
    file: String,
    split: Split,
}

/// One thing that can be pasted.
#[derive(Debug, Clone)]
struct Ingredient {
    /// `cutouts/tux-zebra.png`, `animals/giraffe.jpg#5`.
    name: String,
    image: RgbaImage,
    /// Its objects: class and, for a rectangle part, the rectangle in the
    /// ingredient's pixels (None: the alpha channel is the object).
    parts: Vec<(String, Option<[u32; 4]>)>,
}

/// The annotations of a generated set (COCO plus where each image came from).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompositeSet {
    pub info: CompositeInfo,
    pub images: Vec<CompositeImage>,
    pub annotations: Vec<CompositeAnnotation>,
    pub categories: Vec<Category>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompositeInfo {
    pub description: String,
    pub recipe: Recipe,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompositeImage {
    pub id: u64,
    pub file_name: String,
    pub width: u32,
    pub height: u32,
    pub split: Split,
    pub source: String,
    /// The background, then each pasted thing in paste order.
    pub ingredients: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompositeAnnotation {
    pub id: u64,
    pub image_id: u64,
    pub category_id: u64,
    pub bbox: [f64; 4],
    pub area: f64,
    pub iscrowd: u8,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Category {
    pub id: u64,
    pub name: String,
}

impl CompositeSet {
    /// One image and one annotation per line: a diff of a regenerated set is
    /// readable, and so is the file.
    pub fn to_json(&self) -> String {
        fn lines<T: Serialize>(items: &[T]) -> String {
            let lines: Vec<String> = items
                .iter()
                .map(|i| format!("  {}", serde_json::to_string(i).expect("serializable")))
                .collect();
            lines.join(",\n")
        }
        format!(
            "{{\"info\": {},\n\"images\": [\n{}\n],\n\"annotations\": [\n{}\n],\n\"categories\": [\n{}\n]}}\n",
            serde_json::to_string(&self.info).expect("serializable"),
            lines(&self.images),
            lines(&self.annotations),
            lines(&self.categories),
        )
    }

    /// Instances per class and split.
    pub fn counts(&self) -> BTreeMap<(Split, String), usize> {
        let split_of: BTreeMap<u64, Split> = self.images.iter().map(|i| (i.id, i.split)).collect();
        let mut counts = BTreeMap::new();
        for a in &self.annotations {
            let class = classes::by_category_id(a.category_id as u32).map_or("?", |c| c.name);
            *counts
                .entry((split_of[&a.image_id], class.to_string()))
                .or_insert(0) += 1;
        }
        counts
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, DatasetError> {
    let bytes = std::fs::read(path).map_err(|source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| DatasetError::Annotations {
        path: path.to_path_buf(),
        problem: e.to_string(),
    })
}

fn open(path: &Path) -> Result<image::DynamicImage, DatasetError> {
    image::open(path).map_err(|source| DatasetError::Image {
        path: path.to_path_buf(),
        source,
    })
}

impl Recipe {
    pub fn load(path: &Path) -> Result<Self, DatasetError> {
        let recipe: Recipe = read_json(path)?;
        recipe
            .validate()
            .map_err(|problem| DatasetError::Annotations {
                path: path.to_path_buf(),
                problem,
            })?;
        Ok(recipe)
    }

    fn validate(&self) -> Result<(), String> {
        let unit = |x: f64| (0.0..=1.0).contains(&x);
        if self.width < 32 || self.height < 32 {
            return Err("width and height must be at least 32".into());
        }
        if self.objects[0] == 0 || self.objects[0] > self.objects[1] {
            return Err("objects must be a range [min, max] with 1 <= min <= max".into());
        }
        if !(self.scale[0] > 0.0 && self.scale[0] <= self.scale[1] && self.scale[1] <= 1.0) {
            return Err("scale must be a range within (0, 1]".into());
        }
        if self.max_upscale.is_nan() || self.max_upscale < 1.0 {
            return Err("max_upscale must be at least 1".into());
        }
        if !unit(self.flip) || !unit(self.max_occluded) {
            return Err("flip and max_occluded are fractions in [0, 1]".into());
        }
        if !(1..=100).contains(&self.jpeg_quality) {
            return Err("jpeg_quality must be 1-100".into());
        }
        Ok(())
    }
}

/// Everything of one split that can go into a composite.
struct Pantry {
    backgrounds: Vec<(String, RgbImage)>,
    by_class: BTreeMap<String, Vec<Ingredient>>,
}

/// `photos` is decoded once by the caller: every split's pantry crops from it.
fn load_pantry(
    inputs: &Inputs,
    photos: Option<&Dataset>,
    recipe: &Recipe,
    split: Split,
) -> Result<Pantry, DatasetError> {
    let mut backgrounds = Vec::new();
    let list: Vec<BackgroundEntry> = read_json(&inputs.backgrounds.join("backgrounds.json"))?;
    for b in list.into_iter().filter(|b| b.split == split) {
        let image = open(&inputs.backgrounds.join(&b.file))?.to_rgb8();
        backgrounds.push((format!("backgrounds/{}", b.file), image));
    }
    let mut by_class: BTreeMap<String, Vec<Ingredient>> = BTreeMap::new();
    let cutouts_json = inputs.cutouts.join("cutouts.json");
    let list: Vec<CutoutEntry> = read_json(&cutouts_json)?;
    for c in list.into_iter().filter(|c| c.split == split) {
        if !classes::ANIMALS.contains(&c.class.as_str()) {
            return Err(DatasetError::Annotations {
                path: cutouts_json,
                problem: format!("{}: {} is not one of the animal classes", c.file, c.class),
            });
        }
        let image = open(&inputs.cutouts.join(&c.file))?.to_rgba8();
        by_class
            .entry(c.class.clone())
            .or_default()
            .push(Ingredient {
                name: format!("cutouts/{}", c.file),
                image,
                parts: vec![(c.class, None)],
            });
    }
    if let Some(ds) = photos {
        for s in ds.samples.iter().filter(|s| s.split == Some(split)) {
            for (i, (class, b)) in s.boxes.iter().enumerate() {
                let crop = pixel_rect(b);
                if crop[2] - crop[0] < recipe.min_crop_side
                    || crop[3] - crop[1] < recipe.min_crop_side
                {
                    continue;
                }
                let (x0, y0) = (crop[0], crop[1]);
                let image =
                    imageops::crop_imm(&s.image, x0, y0, crop[2] - x0, crop[3] - y0).to_image();
                let image = RgbaImage::from_fn(image.width(), image.height(), |x, y| {
                    let Rgb([r, g, b]) = *image.get_pixel(x, y);
                    Rgba([r, g, b, 255])
                });
                // This animal, then whatever of the others' boxes the rectangle holds.
                let mut parts = vec![(class.clone(), Some([0, 0, image.width(), image.height()]))];
                for (j, (other, ob)) in s.boxes.iter().enumerate() {
                    if j == i {
                        continue;
                    }
                    let r = pixel_rect(ob);
                    let inter = [
                        r[0].max(crop[0]),
                        r[1].max(crop[1]),
                        r[2].min(crop[2]),
                        r[3].min(crop[3]),
                    ];
                    if inter[0] < inter[2] && inter[1] < inter[3] {
                        parts.push((
                            other.clone(),
                            Some([inter[0] - x0, inter[1] - y0, inter[2] - x0, inter[3] - y0]),
                        ));
                    }
                }
                by_class.entry(class.clone()).or_default().push(Ingredient {
                    name: format!("animals/{}#{}", s.file, i + 1),
                    image,
                    parts,
                });
            }
        }
    }
    Ok(Pantry {
        backgrounds,
        by_class,
    })
}

/// A box in whole pixels: the pixels it covers at least half of.
fn pixel_rect(b: &BBox) -> [u32; 4] {
    let r = |v: f64| v.round().max(0.0) as u32;
    [
        r(b.x1),
        r(b.y1),
        r(b.x2).max(r(b.x1) + 1),
        r(b.y2).max(r(b.y1) + 1),
    ]
}

/// A pasted thing, as the owner map knows it.
struct Placed {
    /// Per part: class and the canvas pixels that are its (before occlusion).
    parts: Vec<(String, Vec<u32>)>,
}

/// Generates every split's composites into `out` (JPEG files) and returns the
/// annotations; `write_images: false` only computes them (for checks).
pub fn generate(
    recipe: &Recipe,
    inputs: &Inputs,
    out: &Path,
    write_images: bool,
) -> Result<CompositeSet, DatasetError> {
    recipe.validate().map_err(DatasetError::Spec)?;
    let mut set = CompositeSet {
        info: CompositeInfo {
            description: "Exact-box composites of datasets/cutouts and photo crops on datasets/backgrounds (modelobs dataset composite; datasets/README.md)".into(),
            recipe: recipe.clone(),
        },
        images: Vec::new(),
        annotations: Vec::new(),
        categories: classes::ANIMALS
            .iter()
            .map(|name| Category {
                id: u64::from(classes::by_name(name).expect("an animal is a COCO class").category_id),
                name: (*name).to_string(),
            })
            .collect(),
    };
    if write_images {
        std::fs::create_dir_all(out).map_err(|source| DatasetError::Io {
            path: out.to_path_buf(),
            source,
        })?;
    }
    let photos = inputs.photos.as_deref().map(Dataset::load).transpose()?;
    for (split_index, (&split, &count)) in recipe.count.iter().enumerate() {
        if count == 0 {
            continue;
        }
        let pantry = load_pantry(inputs, photos.as_ref(), recipe, split)?;
        if pantry.backgrounds.is_empty() || pantry.by_class.is_empty() {
            return Err(DatasetError::Spec(format!(
                "the {split} split has no backgrounds or no cut-outs to composite"
            )));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(recipe.seed ^ ((split_index as u64 + 1) << 56));
        let mut seen: BTreeMap<&str, usize> =
            pantry.by_class.keys().map(|c| (c.as_str(), 0)).collect();
        let mut used: BTreeMap<String, usize> = BTreeMap::new();
        for n in 0..count {
            let (image, ingredients, boxes) =
                compose(recipe, &pantry, &mut rng, &mut seen, &mut used);
            let file_name = format!("{split}-{:04}.jpg", n + 1);
            if write_images {
                let path = out.join(&file_name);
                let jpeg = encode_jpeg(&image, recipe.jpeg_quality)?;
                std::fs::write(&path, jpeg).map_err(|source| DatasetError::Io { path, source })?;
            }
            let image_id = set.images.len() as u64 + 1;
            for (class, b) in boxes {
                let category_id = u64::from(
                    classes::by_name(&class)
                        .expect("an animal class")
                        .category_id,
                );
                let xywh = b.to_xywh();
                set.annotations.push(CompositeAnnotation {
                    id: set.annotations.len() as u64 + 1,
                    image_id,
                    category_id,
                    bbox: xywh,
                    area: xywh[2] * xywh[3],
                    iscrowd: 0,
                });
            }
            set.images.push(CompositeImage {
                id: image_id,
                file_name: file_name.clone(),
                width: recipe.width,
                height: recipe.height,
                split,
                source: format!("composites/{file_name}"),
                ingredients,
            });
        }
    }
    Ok(set)
}

/// The least-used of a list, ties broken at random.
fn least_used<'a, T, R: Rng>(items: &'a [T], key: impl Fn(&T) -> usize, rng: &mut R) -> &'a T {
    let min = items.iter().map(&key).min().expect("not empty");
    let least: Vec<&T> = items.iter().filter(|i| key(i) == min).collect();
    least.choose(rng).expect("not empty")
}

type Composed = (RgbImage, Vec<String>, Vec<(String, BBox)>);

fn compose(
    recipe: &Recipe,
    pantry: &Pantry,
    rng: &mut ChaCha8Rng,
    seen: &mut BTreeMap<&str, usize>,
    used: &mut BTreeMap<String, usize>,
) -> Composed {
    let (w, h) = (recipe.width, recipe.height);
    let (bg_name, bg) = least_used(
        &pantry.backgrounds,
        |(name, _)| used.get(name).copied().unwrap_or(0),
        rng,
    );
    *used.entry(bg_name.clone()).or_insert(0) += 1;
    let mut canvas = background_crop(bg, w, h, rng);
    let mut ingredients = vec![bg_name.clone()];
    // Which pasted thing owns each pixel (0: the background).
    let mut owner = vec![0u16; (w * h) as usize];
    let mut placed: Vec<Placed> = Vec::new();

    let objects = rng.random_range(recipe.objects[0]..=recipe.objects[1]);
    for _ in 0..objects {
        let classes: Vec<&str> = seen.keys().copied().collect();
        let class = *least_used(&classes, |c| seen[c], rng);
        let choices = &pantry.by_class[class];
        let ing = least_used(choices, |i| used.get(&i.name).copied().unwrap_or(0), rng);
        // A few tries to place it without hiding too much of what is there.
        for _ in 0..12 {
            let Some(candidate) = place(recipe, ing, rng) else {
                continue;
            };
            let index = placed.len() as u16 + 1;
            if hides_too_much(recipe, &placed, &owner, &candidate) {
                continue;
            }
            paste(&mut canvas, &mut owner, &candidate, index);
            *used.entry(ing.name.clone()).or_insert(0) += 1;
            for (c, _) in &ing.parts {
                if let Some(n) = seen.get_mut(c.as_str()) {
                    *n += 1;
                }
            }
            ingredients.push(ing.name.clone());
            placed.push(Placed {
                parts: candidate.parts,
            });
            break;
        }
    }
    let mut boxes = Vec::new();
    for (k, p) in placed.iter().enumerate() {
        let index = k as u16 + 1;
        for (class, pixels) in &p.parts {
            if let Some(b) = visible_box(pixels, &owner, index, w, recipe.min_box_side) {
                boxes.push((class.clone(), b));
            }
        }
    }
    (canvas, ingredients, boxes)
}

/// A random crop of the background with the composite's aspect ratio, at
/// least half its largest such crop, resized to the composite's size.
fn background_crop(bg: &RgbImage, w: u32, h: u32, rng: &mut ChaCha8Rng) -> RgbImage {
    let aspect = f64::from(w) / f64::from(h);
    let (bw, bh) = (f64::from(bg.width()), f64::from(bg.height()));
    let (max_w, max_h) = if bw / bh > aspect {
        (bh * aspect, bh)
    } else {
        (bw, bw / aspect)
    };
    let f = rng.random_range(0.5..=1.0);
    let (cw, ch) = ((max_w * f).max(1.0) as u32, (max_h * f).max(1.0) as u32);
    let x = rng.random_range(0..=bg.width() - cw);
    let y = rng.random_range(0..=bg.height() - ch);
    let crop = imageops::crop_imm(bg, x, y, cw, ch).to_image();
    imageops::resize(&crop, w, h, FilterType::Triangle)
}

/// Where and how a thing would be pasted: its scaled (maybe flipped) pixels,
/// its top-left corner, and each part's canvas pixels.
struct Candidate {
    image: RgbaImage,
    x: u32,
    y: u32,
    parts: Vec<(String, Vec<u32>)>,
}

fn place(recipe: &Recipe, ing: &Ingredient, rng: &mut ChaCha8Rng) -> Option<Candidate> {
    let (w, h) = (recipe.width, recipe.height);
    let short = f64::from(w.min(h));
    let long_side = short * rng.random_range(recipe.scale[0]..=recipe.scale[1]);
    let (iw, ih) = (f64::from(ing.image.width()), f64::from(ing.image.height()));
    let s = (long_side / iw.max(ih))
        .min(f64::from(w) / iw)
        .min(f64::from(h) / ih);
    let (sw, sh) = ((iw * s).round() as u32, (ih * s).round() as u32);
    if sw < 2 || sh < 2 {
        return None;
    }
    let flip = rng.random_bool(recipe.flip);
    let mut image = imageops::resize(&ing.image, sw, sh, FilterType::Triangle);
    if flip {
        image = imageops::flip_horizontal(&image);
    }
    let x = rng.random_range(0..=w - sw);
    let y = rng.random_range(0..=h - sh);
    let parts = ing
        .parts
        .iter()
        .map(|(class, rect)| {
            let mut pixels = Vec::new();
            // A rectangle part maps to the scaled pixels whose centre falls in it.
            let inside = |px: u32, py: u32| match rect {
                None => image.get_pixel(px, py).0[3] >= 128,
                Some([x0, y0, x1, y1]) => {
                    let sx = if flip { sw - 1 - px } else { px };
                    let (cx, cy) = ((f64::from(sx) + 0.5) / s, (f64::from(py) + 0.5) / s);
                    cx >= f64::from(*x0)
                        && cx < f64::from(*x1)
                        && cy >= f64::from(*y0)
                        && cy < f64::from(*y1)
                }
            };
            for py in 0..sh {
                for px in 0..sw {
                    if inside(px, py) {
                        pixels.push((y + py) * w + (x + px));
                    }
                }
            }
            (class.clone(), pixels)
        })
        .collect();
    Some(Candidate { image, x, y, parts })
}

/// Whether pasting `c` would leave an earlier object with less of itself
/// visible than the recipe allows.
fn hides_too_much(recipe: &Recipe, placed: &[Placed], owner: &[u16], c: &Candidate) -> bool {
    let covered: std::collections::HashSet<u32> = c
        .parts
        .iter()
        .flat_map(|(_, px)| px.iter().copied())
        .collect();
    placed.iter().enumerate().any(|(k, p)| {
        let index = k as u16 + 1;
        // The main object (part 0) must stay mostly visible.
        let (_, pixels) = &p.parts[0];
        let visible: Vec<u32> = pixels
            .iter()
            .copied()
            .filter(|&i| owner[i as usize] == index)
            .collect();
        let hidden = visible.iter().filter(|i| covered.contains(i)).count();
        let left = visible.len() - hidden;
        (left as f64) < (1.0 - recipe.max_occluded) * pixels.len() as f64
    })
}

fn paste(canvas: &mut RgbImage, owner: &mut [u16], c: &Candidate, index: u16) {
    for (px, py, p) in c.image.enumerate_pixels() {
        let Rgba([r, g, b, a]) = *p;
        if a == 0 {
            continue;
        }
        let (cx, cy) = (c.x + px, c.y + py);
        let dst = canvas.get_pixel_mut(cx, cy);
        let a = u16::from(a);
        let mix = |s: u8, d: u8| ((u16::from(s) * a + u16::from(d) * (255 - a) + 127) / 255) as u8;
        *dst = Rgb([mix(r, dst.0[0]), mix(g, dst.0[1]), mix(b, dst.0[2])]);
    }
    for (_, pixels) in &c.parts {
        for &i in pixels {
            owner[i as usize] = index;
        }
    }
}

/// The box of a part's pixels that are still its own, if big enough to count.
fn visible_box(pixels: &[u32], owner: &[u16], index: u16, w: u32, min_side: u32) -> Option<BBox> {
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for &i in pixels.iter().filter(|&&i| owner[i as usize] == index) {
        let (x, y) = (i % w, i / w);
        x0 = x0.min(x);
        y0 = y0.min(y);
        x1 = x1.max(x + 1);
        y1 = y1.max(y + 1);
    }
    if x0 == u32::MAX || x1 - x0 < min_side || y1 - y0 < min_side {
        return None;
    }
    BBox::new(f64::from(x0), f64::from(y0), f64::from(x1), f64::from(y1)).ok()
}
