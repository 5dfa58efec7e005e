//! The face engine: detection (MTCNN or SCRFD) → alignment and descriptor (dlib's
//! 5-point shape predictor and ResNet, or ArcFace's similarity transform and
//! MobileFaceNet) → matching against a class gallery. Model files are read straight from
//! their original formats (PyTorch legacy pickles, dlib serialization, ONNX) into candle
//! tensors.

pub mod arcface;
pub mod area_downscale;
pub mod batch_stage;
pub mod detector;
pub mod device;
pub mod dlib;
pub mod embedder;
pub mod error;
pub mod matching;
pub mod model_files;
pub mod mtcnn;
pub mod nhwc;
pub mod onnx;
pub mod photo;
pub mod pipeline;
pub mod pytorch_legacy;
pub mod scrfd;

pub use error::EngineError;

/// Result type of the face engine.
pub type Result<T> = std::result::Result<T, EngineError>;

pub use pipeline::{Face, FaceEngine};
