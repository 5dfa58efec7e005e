//! The face engine: MTCNN detection → dlib 5-point alignment → dlib ResNet descriptor
//! → matching against a class gallery. Model files are read straight from their
//! original formats (PyTorch legacy pickles, dlib serialization) into candle tensors.

pub mod arcface;
pub mod device;
pub mod dlib;
pub mod embedder;
pub mod error;
pub mod matching;
pub mod model_files;
pub mod mtcnn;
pub mod nhwc;
pub mod onnx;
pub mod pipeline;
pub mod pytorch_legacy;
pub mod scrfd;

pub use error::EngineError;

/// Result type of the face engine.
pub type Result<T> = std::result::Result<T, EngineError>;

pub use pipeline::{Face, FaceEngine};
