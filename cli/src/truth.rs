//! What the simulator sent, and what was really in it: one JSON line per
//! capture, so the oracle labeler can answer and tests can evaluate.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use modelobs_core::BBox;
use modelobs_core::records::CaptureId;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthObject {
    /// A COCO class name.
    pub class: String,
    /// In pixels of the image as sent.
    #[serde(rename = "box")]
    pub bbox: BBox,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthLine {
    pub id: CaptureId,
    pub captured_at: DateTime<Utc>,
    /// The dataset photo it was made from, and the transforms applied.
    pub file: String,
    pub transforms: String,
    /// The drift phase of its day (`dark`, `blur+small`); absent in older files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    pub width: u32,
    pub height: u32,
    pub objects: Vec<TruthObject>,
}

pub fn append(out: &mut impl Write, line: &TruthLine) -> Result<()> {
    serde_json::to_writer(&mut *out, line)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Every line of a truth file, by capture id (a later line wins).
pub fn load(path: &Path) -> Result<HashMap<CaptureId, TruthLine>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut out = HashMap::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: TruthLine = serde_json::from_str(&line)
            .with_context(|| format!("{} line {}", path.display(), n + 1))?;
        out.insert(parsed.id, parsed);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = "2026-11-20T10:00:00Z".parse().unwrap();
        let line = TruthLine {
            id: CaptureId::new(t),
            captured_at: t,
            file: "horses.jpg".into(),
            transforms: "flip,bright=0.6".into(),
            condition: None,
            width: 640,
            height: 480,
            objects: vec![TruthObject {
                class: "horse".into(),
                bbox: BBox::new(1.0, 2.0, 30.0, 40.0).unwrap(),
            }],
        };
        let dir = std::env::temp_dir().join(format!("truth-{}", line.id));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("truth.jsonl");
        let mut f = std::fs::File::create(&path).unwrap();
        append(&mut f, &line).unwrap();
        drop(f);
        let loaded = load(&path).unwrap();
        assert_eq!(loaded[&line.id], line);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
