//! Errors of the face engine. Each names the file or input at fault and, where the
//! operator can do something about it, what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A model file is present but its bytes do not parse as the expected format.
    #[error("model file {path} is malformed: {reason}")]
    Format { path: PathBuf, reason: String },

    /// A model file is missing, has the wrong hash or cannot be downloaded.
    #[error("model file {file}: {problem}. Fix: {fix}")]
    ModelFile {
        file: String,
        problem: String,
        fix: String,
    },

    /// An ONNX model file that does not parse, or lacks what the network needs.
    #[error("ONNX model {path}: {source}")]
    Onnx {
        path: PathBuf,
        #[source]
        source: Box<super::onnx::OnnxError>,
    },

    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),

    #[error("cannot decode image {what}: {source}")]
    Image {
        what: String,
        #[source]
        source: image::ImageError,
    },

    #[error("unknown device {0:?}: use auto, cpu or cuda:N")]
    Device(String),

    #[error("{0}")]
    Invalid(String),
}
