//! Face embedders behind one trait, so that other models can be added; each model's
//! embeddings are stored under its name and a gallery only compares one model.

use candle_core::Device;
use image::RgbImage;

use super::Result;
use super::arcface::{ArcFaceEmbedder, alignment};
use super::detector::Detection;
use super::dlib::face_chip::face_chip;
use super::dlib::resnet::FaceDescriptor;
use super::dlib::shape_predictor::{DlibRect, ShapePredictor};
use super::matching::Descriptor;
use super::model_files::ModelPaths;

/// Turns detected faces into descriptors in two steps: aligning each face into the
/// network's input crop (per photo, on the CPU), then the network on a batch of crops,
/// which may come from several photos (see [`super::embed_stage`]).
pub trait Embedder: Send + Sync {
    /// Stable name stored with each embedding.
    fn model_name(&self) -> &'static str;
    /// The network's input for each detection, in order.
    fn align(&self, image: &RgbImage, faces: &[Detection]) -> Result<Vec<RgbImage>>;
    /// One descriptor per aligned crop, in order; a crop's descriptor does not depend
    /// on the other crops of the batch.
    fn embed_aligned(&self, crops: &[RgbImage]) -> Result<Vec<Descriptor>>;
    /// One descriptor per detection, in order, computed in one batch.
    fn embed(&self, image: &RgbImage, faces: &[Detection]) -> Result<Vec<Descriptor>> {
        if faces.is_empty() {
            return Ok(Vec::new());
        }
        self.embed_aligned(&self.align(image, faces)?)
    }
}

/// dlib's pipeline: 5-point shape predictor on the box, 150×150 face chip, ResNet.
pub struct DlibEmbedder {
    predictor: ShapePredictor,
    resnet: FaceDescriptor,
}

impl DlibEmbedder {
    pub const MODEL_NAME: &'static str = "dlib_resnet_v1";

    pub fn load(paths: &ModelPaths, device: &Device) -> Result<Self> {
        Ok(Self {
            predictor: ShapePredictor::load(&paths.shape_predictor)?,
            resnet: FaceDescriptor::load(&paths.resnet, device)?,
        })
    }

    /// The 5 landmarks dlib finds in a detected box.
    pub fn landmarks(&self, image: &RgbImage, face: &Detection) -> [[i64; 2]; 5] {
        self.predictor.predict(image, rect_from_box(&face.bbox))
    }
}

impl Embedder for DlibEmbedder {
    fn model_name(&self) -> &'static str {
        Self::MODEL_NAME
    }

    fn align(&self, image: &RgbImage, faces: &[Detection]) -> Result<Vec<RgbImage>> {
        Ok(faces
            .iter()
            .map(|f| face_chip(image, &self.landmarks(image, f)))
            .collect())
    }

    fn embed_aligned(&self, chips: &[RgbImage]) -> Result<Vec<Descriptor>> {
        self.resnet.embed(chips)
    }
}

/// ArcFace aligns from the detector's own five keypoints (SCRFD's, or MTCNN's, which
/// come in the same order).
impl Embedder for ArcFaceEmbedder {
    fn model_name(&self) -> &'static str {
        Self::MODEL_NAME
    }

    fn align(&self, image: &RgbImage, faces: &[Detection]) -> Result<Vec<RgbImage>> {
        faces
            .iter()
            .map(|f| alignment::norm_crop(image, &f.landmarks))
            .collect()
    }

    fn embed_aligned(&self, crops: &[RgbImage]) -> Result<Vec<Descriptor>> {
        self.embed_crops(crops)
    }
}

/// The dlib rectangle for an MTCNN box: each edge rounded half up, exactly as the
/// golden-file generator does.
pub fn rect_from_box(bbox: &[f32; 4]) -> DlibRect {
    let r = |v: f32| (f64::from(v) + 0.5).floor() as i64;
    DlibRect {
        left: r(bbox[0]),
        top: r(bbox[1]),
        right: r(bbox[2]),
        bottom: r(bbox[3]),
    }
}
