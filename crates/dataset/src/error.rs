use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum DatasetError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {problem}", path.display())]
    Annotations { path: PathBuf, problem: String },
    #[error("{}: {source}", path.display())]
    Image {
        path: PathBuf,
        source: image::ImageError,
    },
    /// A transform or drift spec that does not parse or is out of range.
    #[error("{0}")]
    Spec(String),
    #[error("JPEG encoding failed: {0}")]
    Encode(#[from] image::ImageError),
}
