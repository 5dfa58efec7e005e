//! The whole face engine on one photo: detect (MTCNN or SCRFD) → align and embed (the
//! [`Embedder`]: dlib or ArcFace, chosen by `FACE_MODEL`) — the steps every job and CLI
//! command shares.

use std::path::Path;

use candle_core::Device;
// Shared with the API's upload check, so that what it accepts is what we decode.
use common::image_limits::{MAX_IMAGE_PIXELS, has_jpeg_end_marker};
use image::RgbImage;
use serde::Serialize;

use common::{Detector, FaceModel};

use super::arcface::ArcFaceEmbedder;
use super::detector::{Detection, FaceDetector};
use super::embedder::{DlibEmbedder, Embedder};
use super::error::BadPhoto;
use super::matching::{DecisionRule, Descriptor};
use super::model_files::{self, ModelPaths, names};
use super::mtcnn::Mtcnn;
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

/// Detector and embedder, loaded once and shared by every job.
pub struct FaceEngine {
    model: FaceModel,
    detector: FaceDetector,
    embedder: Box<dyn Embedder>,
    device: Device,
}

impl FaceEngine {
    /// The dlib pipeline (MTCNN → dlib) from verified model files on the given device.
    pub fn load(paths: &ModelPaths, device: Device) -> Result<Self> {
        let detector = Mtcnn::load(&paths.pnet, &paths.rnet, &paths.onet, &device)?;
        let embedder = Box::new(DlibEmbedder::load(paths, &device)?);
        Ok(Self {
            model: FaceModel::DlibResnet,
            detector: FaceDetector::Mtcnn(detector),
            embedder,
            device,
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
        let embedder: Box<dyn Embedder> = match model {
            FaceModel::DlibResnet => {
                Box::new(DlibEmbedder::load(&ModelPaths::in_dir(model_dir), &device)?)
            }
            FaceModel::ArcfaceMbf => {
                Box::new(ArcFaceEmbedder::load(&file(names::ARCFACE), &device)?)
            }
        };
        Ok(Self {
            model,
            detector,
            embedder,
            device,
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
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
        let detections = self.detect(image)?;
        self.with_descriptors(image, detections)
    }

    /// [`Self::analyze`] for a registration photo, which may be a tight crop of the face
    /// (see [`FaceDetector::detect_portrait`]).
    pub fn analyze_portrait(&self, image: &RgbImage) -> Result<Vec<Face>> {
        let detections = self.detector.detect_portrait(image)?;
        self.with_descriptors(image, detections)
    }

    fn with_descriptors(&self, image: &RgbImage, detections: Vec<Detection>) -> Result<Vec<Face>> {
        let descriptors = self.embedder.embed(image, &detections)?;
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
        self.embedder.embed(image, detections)
    }
}

/// Decodes a photo from bytes as RGB (alpha dropped), refusing images beyond
/// [`MAX_IMAGE_PIXELS`].
pub fn decode_image(bytes: &[u8], what: &str) -> Result<RgbImage> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|source| EngineError::Io {
            path: what.into(),
            source,
        })?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_IMAGE_PIXELS * 4);
    reader.limits(limits.clone());
    let format = reader.format();
    let bad = |problem: BadPhoto| EngineError::BadPhoto {
        what: what.to_string(),
        problem,
    };
    let (w, h) = reader.into_dimensions().map_err(|e| match e {
        image::ImageError::Limits(_) => bad(BadPhoto::OverLimit {
            max_pixels: MAX_IMAGE_PIXELS,
        }),
        e => bad(BadPhoto::Undecodable(e)),
    })?;
    if w == 0 || h == 0 {
        return Err(bad(BadPhoto::ImpossibleSize {
            width: w,
            height: h,
        }));
    }
    let too_large = BadPhoto::TooLarge {
        width: w,
        height: h,
        max_pixels: MAX_IMAGE_PIXELS,
    };
    if u64::from(w) * u64::from(h) > MAX_IMAGE_PIXELS {
        return Err(bad(too_large));
    }
    if format == Some(image::ImageFormat::Jpeg)
        && let Some(img) = decode_jpeg_like_pil(bytes)
    {
        return Ok(img);
    }
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|source| EngineError::Io {
            path: what.into(),
            source,
        })?;
    reader.limits(limits);
    let img = reader.decode().map_err(|e| match e {
        // Within the pixel cap but over the allocation limit (e.g. many frames).
        image::ImageError::Limits(_) => bad(too_large),
        e => bad(BadPhoto::Undecodable(e)),
    })?;
    Ok(img.to_rgb8())
}

/// A JPEG through libjpeg-turbo's decoder (as built by mozjpeg) with its defaults — the
/// accurate integer IDCT and fancy upsampling, as PIL decodes — so that a photo gives
/// the reference implementations' pixels exactly; the image crate's decoder differs by a
/// few grey levels, enough to move landmarks and descriptors. `None` when libjpeg
/// refuses the data (CMYK, arithmetic coding, corruption) or the data is truncated
/// (libjpeg would pad it with grey): the image crate then decodes it or says why not.
fn decode_jpeg_like_pil(bytes: &[u8]) -> Option<RgbImage> {
    if !has_jpeg_end_marker(bytes) {
        return None;
    }
    // libjpeg's fatal errors unwind out of the decoder (mozjpeg's error manager).
    std::panic::catch_unwind(|| -> std::io::Result<RgbImage> {
        let mut started = mozjpeg::Decompress::new_mem(bytes)?.rgb()?;
        let (w, h) = (started.width(), started.height());
        let pixels: Vec<u8> = started.read_scanlines()?;
        started.finish()?;
        RgbImage::from_raw(w as u32, h as u32, pixels)
            .ok_or_else(|| std::io::ErrorKind::UnexpectedEof.into())
    })
    .ok()?
    .ok()
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
