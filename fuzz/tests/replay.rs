//! Corpus replay on stable: every file under `corpus/<target>/` through the
//! same target body the fuzzer runs (`modelobs_fuzz::TARGETS`). Inputs the
//! fuzzer found crashing go to `artifacts-found/<target>/` once fixed, and
//! are replayed here too, so they stay fixed.

use std::path::Path;

fn inputs(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .map(|e| e.expect("readable corpus directory").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_input_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (name, run) in modelobs_fuzz::TARGETS {
        let seeds = inputs(&root.join("corpus").join(name));
        assert!(!seeds.is_empty(), "corpus/{name}/ has no seed inputs");
        let fixed = inputs(&root.join("artifacts-found").join("fixed").join(name));
        for path in seeds.iter().chain(&fixed) {
            let data = std::fs::read(path).expect("readable corpus file");
            if let Err(panic) = std::panic::catch_unwind(|| run(&data)) {
                let why = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)");
                panic!("{name}: {} fails: {why}", path.display());
            }
        }
        println!(
            "{name}: {} seed + {} fixed inputs passed",
            seeds.len(),
            fixed.len()
        );
    }
}

#[test]
fn the_fuzz_binaries_are_the_targets() {
    // Each fuzz_targets/<name>.rs runs TARGETS' <name>, and nothing is left out.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut bins: Vec<String> = inputs(&root.join("fuzz_targets"))
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    bins.sort();
    let mut targets: Vec<String> = modelobs_fuzz::TARGETS
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    targets.sort();
    assert_eq!(bins, targets);
    for name in &targets {
        let body =
            std::fs::read_to_string(root.join("fuzz_targets").join(format!("{name}.rs"))).unwrap();
        assert!(
            body.contains(&format!("modelobs_fuzz::{name}::run")),
            "{name}.rs runs another target"
        );
    }
}
