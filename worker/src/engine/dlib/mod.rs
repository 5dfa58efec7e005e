//! dlib's half of the default pipeline: its serialization format, the 5-point shape
//! predictor, the aligned face chip and the face-recognition ResNet.

pub mod face_chip;
pub mod format;
pub mod resnet;
pub mod shape_predictor;
