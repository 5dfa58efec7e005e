//! The whole face engine on one photo: detect (MTCNN or SCRFD) → align and embed (the
//! [`Embedder`]: dlib or ArcFace, chosen by `FACE_MODEL`) — the steps every job and CLI
//! command shares.

use std::path::Path;
use std::sync::Arc;

use candle_core::Device;
// Shared with the API's upload check, so that what it accepts is what we decode.
use common::image_limits::MAX_IMAGE_PIXELS;
use image::RgbImage;
use serde::Serialize;

use common::{Detector, FaceModel};

use super::arcface::ArcFaceEmbedder;
use super::batch_stage::{BatchOptions, BatchStage, StageCounts, Users};
use super::detector::{Detection, FaceDetector};
use super::embedder::{DlibEmbedder, Embedder};
use super::matching::{DecisionRule, Descriptor};
use super::model_files::{self, ModelPaths, names};
use super::mtcnn::Mtcnn;
use super::photo::{WorkingPhoto, decode_photo};
use super::scrfd::Scrfd;
use super::{EngineError, Result, device};

/// One face found in a photo, with its descriptor.
#[derive(Debug, Clone, Serialize)]
pub struct Face {
    #[serde(flatten)]
    pub detection: Detection,
    #[serde(serialize_with = "serialize_descriptor")]
    pub descriptor: Descriptor,
}

fn serialize_descriptor<S: serde::Serializer>(
    d: &Descriptor,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.collect_seq(d.iter())
}

impl Face {
    /// Width of the detected box in pixels.
    pub fn width(&self) -> f32 {
        self.detection.bbox[2] - self.detection.bbox[0]
    }

    /// Area of the detected box in square pixels.
    pub fn area(&self) -> f32 {
        self.width() * (self.detection.bbox[3] - self.detection.bbox[1])
    }
}

/// How much of a photo the engine works on: bounds its memory and matching cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhotoLimits {
    /// Photos with more pixels are decoded reduced to this many (`MAX_WORKING_PIXELS`).
    pub max_working_pixels: u64,
    /// Faces embedded and matched per photo, the largest first (`MAX_FACES_PER_PHOTO`).
    pub max_faces: usize,
}

impl Default for PhotoLimits {
    fn default() -> Self {
        Self {
            max_working_pixels: common::config::defaults::MAX_WORKING_PIXELS,
            max_faces: common::config::defaults::MAX_FACES_PER_PHOTO,
        }
    }
}

impl PhotoLimits {
    pub fn from_config(config: &common::Config) -> Self {
        Self {
            max_working_pixels: config.max_working_pixels,
            max_faces: config.max_faces_per_photo,
        }
    }
}

/// The faces of one photo, in the photo's own pixel coordinates.
#[derive(Debug)]
pub struct PhotoFaces {
    /// Embedded faces, most confident first: the largest [`PhotoLimits::max_faces`].
    pub faces: Vec<Face>,
    /// Faces the detector found, before the cap.
    pub detected: usize,
}

/// Detector and embedder, loaded once and shared by every job.
pub struct FaceEngine {
    model: FaceModel,
    detector: FaceDetector,
    embedder: Arc<dyn Embedder>,
    /// The shared embedding stage, when several jobs run at once.
    stage: Option<BatchStage<RgbImage, Descriptor>>,
    /// Photos being analysed: the embedding stage waits for those alone.
    users: Arc<Users>,
    device: Device,
    limits: PhotoLimits,
}

impl FaceEngine {
    /// The dlib pipeline (MTCNN → dlib) from verified model files on the given device.
    pub fn load(paths: &ModelPaths, device: Device) -> Result<Self> {
        let detector = Mtcnn::load(&paths.pnet, &paths.rnet, &paths.onet, &device)?;
        let embedder = Arc::new(DlibEmbedder::load(paths, &device)?);
        Ok(Self {
            model: FaceModel::DlibResnet,
            detector: FaceDetector::Mtcnn(detector),
            embedder,
            stage: None,
            users: Arc::default(),
            device,
            limits: PhotoLimits::default(),
        })
    }

    /// The dlib pipeline from `model_dir`, fetching missing weights first when `fetch`
    /// is set.
    pub fn from_model_dir(model_dir: &Path, device_spec: &str, fetch: bool) -> Result<Self> {
        let model = FaceModel::DlibResnet;
        Self::open(
            model_dir,
            model,
            model.default_detector(),
            device_spec,
            fetch,
        )
    }

    /// The pipeline of `model` with `detector` from `model_dir` (fetching missing or
    /// wrong files first when `fetch` is set; only this pipeline's files).
    pub fn open(
        model_dir: &Path,
        model: FaceModel,
        detector: Detector,
        device_spec: &str,
        fetch: bool,
    ) -> Result<Self> {
        let files = model_files::files_for_pipeline(model, detector);
        if fetch {
            model_files::ensure_files(model_dir, &model_files::index_url_from_env(), &files)?;
        } else {
            model_files::verify_files(model_dir, &files)?;
        }
        let device = device::select(device_spec)?;
        let file = |name: &str| model_dir.join(name);
        let detector = match detector {
            Detector::Mtcnn => FaceDetector::Mtcnn(Mtcnn::load(
                &file(names::PNET),
                &file(names::RNET),
                &file(names::ONET),
                &device,
            )?),
            Detector::Scrfd => FaceDetector::Scrfd(Scrfd::load(&file(names::SCRFD), &device)?),
        };
        let embedder: Arc<dyn Embedder> = match model {
            FaceModel::DlibResnet => {
                Arc::new(DlibEmbedder::load(&ModelPaths::in_dir(model_dir), &device)?)
            }
            FaceModel::ArcfaceMbf => {
                Arc::new(ArcFaceEmbedder::load(&file(names::ARCFACE), &device)?)
            }
        };
        Ok(Self {
            model,
            detector,
            embedder,
            stage: None,
            users: Arc::default(),
            device,
            limits: PhotoLimits::default(),
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The same engine working within `limits`.
    pub fn with_limits(self, limits: PhotoLimits) -> Self {
        Self { limits, ..self }
    }

    pub fn limits(&self) -> PhotoLimits {
        self.limits
    }

    /// The same engine with shared batching stages: the faces of photos analysed at
    /// once (from several threads) are embedded together, in batches of up to
    /// `options.max_items`, and on a GPU MTCNN's networks batch across photos too
    /// ([`FaceDetector::with_shared_batching`]). Results are the same as without.
    pub fn with_shared_batching(self, options: BatchOptions) -> Result<Self> {
        let embedder = Arc::clone(&self.embedder);
        let stage = BatchStage::start(
            "embed-stage",
            options,
            Arc::clone(&self.users),
            move |crops: &[RgbImage]| embedder.embed_aligned(crops),
        )?;
        let detector = self.detector.with_shared_batching(options)?;
        Ok(Self {
            stage: Some(stage),
            detector,
            ..self
        })
    }

    /// What the shared embedding stage has done, if there is one.
    pub fn embed_stage_counts(&self) -> Option<StageCounts> {
        self.stage.as_ref().map(BatchStage::counts)
    }

    /// Decodes a photo, reduced to the working size when it is larger (see
    /// [`decode_photo`]).
    pub fn decode(&self, bytes: &[u8], what: &str) -> Result<WorkingPhoto> {
        decode_photo(bytes, what, self.limits.max_working_pixels)
    }

    /// The faces of a decoded photo, most confident first, in the photo's own
    /// coordinates: past [`PhotoLimits::max_faces`], only the largest are embedded, so
    /// that embedding and matching cost stay bounded whatever the photo shows. `crop`
    /// is called with the working image and each kept face's box on it (crops are cut
    /// from the pixels the engine saw).
    pub fn analyze_photo<C>(
        &self,
        photo: &WorkingPhoto,
        mut crop: impl FnMut(&RgbImage, [f32; 4]) -> C,
    ) -> Result<(PhotoFaces, Vec<C>)> {
        let _user = self.users.enter();
        let mut detections = self.detect(&photo.image)?;
        let detected = detections.len();
        keep_largest(&mut detections, self.limits.max_faces);
        let faces = self.with_descriptors(&photo.image, detections)?;
        let crops = faces
            .iter()
            .map(|f| crop(&photo.image, f.detection.bbox))
            .collect();
        let faces = faces
            .into_iter()
            .map(|f| Face {
                detection: photo.to_original(&f.detection),
                descriptor: f.descriptor,
            })
            .collect();
        Ok((PhotoFaces { faces, detected }, crops))
    }

    /// The face model this engine runs.
    pub fn face_model(&self) -> FaceModel {
        self.model
    }

    /// Name stored with every embedding; galleries compare one model only.
    pub fn model_name(&self) -> &'static str {
        self.embedder.model_name()
    }

    /// The decision rule chosen for this engine's model.
    pub fn default_rule(&self) -> DecisionRule {
        DecisionRule::for_model(self.model)
    }

    /// Faces in the photo, most confident first, without descriptors.
    pub fn detect(&self, image: &RgbImage) -> Result<Vec<Detection>> {
        self.detector.detect(image)
    }

    /// The detector.
    pub fn detector(&self) -> &FaceDetector {
        &self.detector
    }

    /// Every face in the photo with its descriptor (one batched embedding pass).
    pub fn analyze(&self, image: &RgbImage) -> Result<Vec<Face>> {
        let _user = self.users.enter();
        let detections = self.detect(image)?;
        self.with_descriptors(image, detections)
    }

    /// [`Self::analyze`] for a registration photo, which may be a tight crop of the face
    /// (see [`FaceDetector::detect_portrait`]).
    pub fn analyze_portrait(&self, image: &RgbImage) -> Result<Vec<Face>> {
        let _user = self.users.enter();
        let detections = self.detector.detect_portrait(image)?;
        self.with_descriptors(image, detections)
    }

    fn with_descriptors(&self, image: &RgbImage, detections: Vec<Detection>) -> Result<Vec<Face>> {
        let descriptors = self.embed(image, &detections)?;
        Ok(detections
            .into_iter()
            .zip(descriptors)
            .map(|(detection, descriptor)| Face {
                detection,
                descriptor,
            })
            .collect())
    }

    /// Descriptors for given detections (e.g. a chosen subset).
    pub fn embed(&self, image: &RgbImage, detections: &[Detection]) -> Result<Vec<Descriptor>> {
        match &self.stage {
            // Aligning stays on the caller's thread: it is per photo and runs in
            // parallel across jobs; only the network pass is shared.
            Some(stage) => stage.run(self.embedder.align(image, detections)?),
            None => self.embedder.embed(image, detections),
        }
    }
}

/// Decodes a photo from bytes as RGB (alpha dropped) at its full size, refusing images
/// beyond [`MAX_IMAGE_PIXELS`]. For tools and references; jobs use
/// [`FaceEngine::decode`], which bounds memory.
pub fn decode_image(bytes: &[u8], what: &str) -> Result<RgbImage> {
    Ok(decode_photo(bytes, what, MAX_IMAGE_PIXELS)?.image)
}

/// Keeps the `cap` largest detections (by box area), in their order (most confident
/// first).
pub fn keep_largest(detections: &mut Vec<Detection>, cap: usize) {
    if detections.len() <= cap {
        return;
    }
    let area = |d: &Detection| (d.bbox[2] - d.bbox[0]) * (d.bbox[3] - d.bbox[1]);
    let mut by_area: Vec<usize> = (0..detections.len()).collect();
    // Ties keep the more confident face (the stable sort keeps score order).
    by_area.sort_by(|&a, &b| area(&detections[b]).total_cmp(&area(&detections[a])));
    let mut keep = vec![false; detections.len()];
    for &i in &by_area[..cap] {
        keep[i] = true;
    }
    let mut i = 0;
    detections.retain(|_| {
        i += 1;
        keep[i - 1]
    });
}

/// Reads and decodes a photo file (see [`decode_image`]).
pub fn load_image(path: &Path) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(|source| EngineError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode_image(&bytes, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declared_giant_is_refused_before_decoding() {
        // A valid PNG header that declares 100000×100000 pixels.
        let img = image::RgbImage::new(1, 1);
        let mut png = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        png[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        png[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        // The header's CRC must stay valid, or the decoder stops at a corrupt chunk.
        let mut crc = flate2::Crc::new();
        crc.update(&png[12..29]);
        png[29..33].copy_from_slice(&crc.sum().to_be_bytes());
        let err = decode_image(&png, "bomb.png").unwrap_err();
        assert!(err.is_bad_input(), "{err}");
        assert!(err.to_string().contains("bomb.png"), "{err}");
        let reason = err.bad_input_reason().unwrap();
        assert!(
            reason.contains(&MAX_IMAGE_PIXELS.to_string()) && reason.contains("allowed"),
            "{reason}"
        );
    }

    #[test]
    fn the_largest_faces_are_kept_in_score_order() {
        let d = |side: f32, score: f32| Detection {
            bbox: [0.0, 0.0, side, side],
            score,
            landmarks: [[0.0; 2]; 5],
        };
        let mut faces = vec![d(10.0, 0.99), d(40.0, 0.98), d(20.0, 0.97), d(30.0, 0.96)];
        keep_largest(&mut faces, 2);
        let sides: Vec<f32> = faces.iter().map(|f| f.bbox[2]).collect();
        assert_eq!(sides, [40.0, 30.0]);
        keep_largest(&mut faces, 5);
        assert_eq!(faces.len(), 2);
    }

    #[test]
    fn text_is_not_an_image() {
        let err = decode_image(b"hello, not a photo", "note.txt").unwrap_err();
        assert!(err.is_bad_input(), "{err}");
        assert_eq!(
            err.bad_input_reason().unwrap(),
            "the file is not a readable image (JPEG or PNG expected)"
        );
    }

    #[test]
    fn a_truncated_photo_is_bad_input_not_a_crash() {
        let img = image::RgbImage::from_pixel(64, 48, image::Rgb([200, 120, 40]));
        let mut png = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let err = decode_image(&png[..png.len() / 2], "half.png").unwrap_err();
        assert!(err.is_bad_input(), "{err}");
    }
}
