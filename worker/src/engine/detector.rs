//! The face detectors behind one type: MTCNN (facenet-pytorch's weights, the dlib
//! pipeline's detector) or SCRFD-500M (InsightFace's, the ArcFace pipeline's). Both give
//! a box, a score and five keypoints in the same order (left eye, right eye, nose, left
//! and right mouth corner, image left/right), so every embedder takes either's faces.

use image::RgbImage;

use super::Result;
use super::batch_stage::BatchOptions;
pub use super::mtcnn::Detection;
use super::mtcnn::Mtcnn;
use super::scrfd::{Scrfd, ScrfdDetection};

/// Detections below this MTCNN score are not treated as faces. MTCNN's last stage
/// keeps anything above 0.7, which on the fixtures includes hands and blurred
/// background shapes (`groups/six_people.jpg`: six people, two extra boxes at 0.86–0.87);
/// every real face there scores ≥ 0.97. SCRFD's own threshold (0.5) is already strict.
pub const MIN_MTCNN_SCORE: f32 = 0.9;

/// One detector, chosen by `DETECTOR` (or the face model's default).
// One per loaded engine: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum FaceDetector {
    Mtcnn(Mtcnn),
    Scrfd(Scrfd),
}

impl FaceDetector {
    pub fn name(&self) -> &'static str {
        match self {
            FaceDetector::Mtcnn(_) => "mtcnn",
            FaceDetector::Scrfd(_) => "scrfd",
        }
    }

    /// The same detector with shared batching stages (see
    /// [`Mtcnn::with_shared_batching`]); SCRFD's input follows each photo's own size
    /// and tiles, so it runs per photo.
    pub fn with_shared_batching(self, options: BatchOptions) -> Result<Self> {
        Ok(match self {
            FaceDetector::Mtcnn(m) => FaceDetector::Mtcnn(m.with_shared_batching(options)?),
            scrfd @ FaceDetector::Scrfd(_) => scrfd,
        })
    }

    /// Faces in a photo (a classroom), most confident first.
    pub fn detect(&self, image: &RgbImage) -> Result<Vec<Detection>> {
        match self {
            FaceDetector::Mtcnn(m) => {
                let mut faces = m.detect(image)?;
                faces.retain(|f| f.score >= MIN_MTCNN_SCORE);
                Ok(faces)
            }
            FaceDetector::Scrfd(s) => Ok(s.detect(image)?.into_iter().map(from_scrfd).collect()),
        }
    }

    /// Faces in a registration photo, which is often a tight crop of the face: SCRFD
    /// finds nothing in many of those unless the photo gets a margin, so it looks again
    /// on the padded photo when the plain one shows no face.
    pub fn detect_portrait(&self, image: &RgbImage) -> Result<Vec<Detection>> {
        let faces = self.detect(image)?;
        match self {
            FaceDetector::Scrfd(s) if faces.is_empty() => Ok(s
                .detect_padded(image)?
                .into_iter()
                .map(from_scrfd)
                .collect()),
            _ => Ok(faces),
        }
    }
}

fn from_scrfd(d: ScrfdDetection) -> Detection {
    Detection {
        bbox: d.bbox,
        score: d.score,
        landmarks: d.kps,
    }
}
