//! Errors of the face engine. Each names the file or input at fault and, where the
//! operator can do something about it, what to do.
//!
//! Two kinds, told apart by [`EngineError::is_bad_input`]: a photo that cannot be used
//! ([`BadPhoto`]; the same bytes will always fail, and the reason is written for the
//! person who sent it), and everything else — model files, tensors, I/O — which is a
//! defect of the installation or the machine, logged with its cause and retried.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The photo itself is unusable.
    #[error("{what}: {problem}")]
    BadPhoto {
        /// Which photo, as the caller named it (a path on the command line).
        what: String,
        #[source]
        problem: BadPhoto,
    },

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

    #[error("unknown device {0:?}: use auto, cpu or cuda:N")]
    Device(String),

    /// The engine was called in a way it does not support (a bug or a bad setting).
    #[error("{0}")]
    Invalid(String),
}

/// What is wrong with a photo, in words for the teacher who uploaded it: no file
/// paths, no library internals.
#[derive(Debug, thiserror::Error)]
pub enum BadPhoto {
    #[error("the file is not a readable image (JPEG or PNG expected)")]
    Undecodable(#[source] image::ImageError),
    #[error("the photo is {width}×{height} pixels, more than the {max_pixels} allowed")]
    TooLarge {
        width: u32,
        height: u32,
        max_pixels: u64,
    },
    /// Refused by the decoder's memory limit before its size was known.
    #[error("the photo is larger than the {max_pixels} pixels allowed")]
    OverLimit { max_pixels: u64 },
    #[error("the photo says it is {width}×{height} pixels, which is not a picture")]
    ImpossibleSize { width: u32, height: u32 },
}

impl EngineError {
    /// True when the photo is at fault: retrying the same bytes cannot help.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, EngineError::BadPhoto { .. })
    }

    /// For bad input, what is wrong with the photo, fit to show its sender; `None` for
    /// defects, whose details belong in the log.
    pub fn bad_input_reason(&self) -> Option<String> {
        match self {
            EngineError::BadPhoto { problem, .. } => Some(problem.to_string()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_photos_are_bad_input_and_defects_are_not() {
        let bad = EngineError::BadPhoto {
            what: "/srv/blobs/abc.jpg".into(),
            problem: BadPhoto::TooLarge {
                width: 20_000,
                height: 20_000,
                max_pixels: 40_000_000,
            },
        };
        assert!(bad.is_bad_input());
        let reason = bad.bad_input_reason().unwrap();
        assert_eq!(
            reason,
            "the photo is 20000×20000 pixels, more than the 40000000 allowed"
        );
        assert!(!reason.contains("/srv"), "{reason}");

        let defect = EngineError::Format {
            path: "/models/onet.pt".into(),
            reason: "truncated".into(),
        };
        assert!(!defect.is_bad_input());
        assert_eq!(defect.bad_input_reason(), None);
        assert!(!EngineError::Candle(candle_core::Error::Msg("x".into())).is_bad_input());
    }
}
