//! `modelobs dataset composite`: the exact-box composites of
//! `datasets/composites/recipe.json`, written as JPEG files beside their
//! annotations (`modelobs_dataset::generate`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use modelobs_dataset::{Inputs, Recipe, generate};

#[derive(Args, Debug)]
pub struct CompositeArgs {
    /// The recipe: seed, size, counts per split, scales, flips, occlusion.
    #[arg(long, default_value = "datasets/composites/recipe.json")]
    pub recipe: PathBuf,
    /// Where the images and annotations.json go.
    #[arg(long, default_value = "datasets/composites")]
    pub out: PathBuf,
    /// Alpha cut-outs (cutouts.json and PNGs).
    #[arg(long, default_value = "datasets/cutouts")]
    pub cutouts: PathBuf,
    /// Photos without animals (backgrounds.json and images).
    #[arg(long, default_value = "datasets/backgrounds")]
    pub backgrounds: PathBuf,
    /// A labelled dataset whose boxes are pasted as photo crops (`none`: no crops).
    #[arg(long, default_value = "datasets/animals")]
    pub photos: String,
    /// Only compute the annotations and compare them with OUT/annotations.json
    /// (no images written).
    #[arg(long, conflicts_with = "update")]
    pub check: bool,
    /// Rewrite OUT/annotations.json when the recipe or the ingredients changed
    /// (without it, a difference is an error: the committed set is the truth).
    #[arg(long)]
    pub update: bool,
}

pub fn run(args: &CompositeArgs) -> Result<()> {
    let recipe = Recipe::load(&args.recipe)?;
    let inputs = Inputs {
        cutouts: args.cutouts.clone(),
        backgrounds: args.backgrounds.clone(),
        photos: (args.photos != "none").then(|| PathBuf::from(&args.photos)),
    };
    let set = generate(&recipe, &inputs, &args.out, !args.check)?;
    let json = set.to_json();
    let path = args.out.join("annotations.json");
    let kept = match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    match kept {
        Some(kept) if kept == json => {
            eprintln!("{}: the recipe's annotations, unchanged", path.display());
        }
        Some(_) if !args.update => anyhow::bail!(
            "{} is not what {} makes from these ingredients: rerun with --update and commit it",
            path.display(),
            args.recipe.display()
        ),
        _ if args.check => anyhow::bail!("{} does not exist", path.display()),
        _ => std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?,
    }
    if args.check {
        return Ok(());
    }
    let mut by_split = std::collections::BTreeMap::new();
    for ((split, _), n) in set.counts() {
        *by_split.entry(split).or_insert(0) += n;
    }
    for (split, n) in by_split {
        let images = set.images.iter().filter(|i| i.split == split).count();
        eprintln!("{split}: {images} composites, {n} boxes");
    }
    eprintln!("images in {}", args.out.display());
    Ok(())
}
