//! Parity with the reference implementations against the committed golden files
//! (`worker/tests/golden`): the comparisons and their tolerances in one place, used by
//! the parity tests (CPU) and by `attendance-worker device-check` (CUDA against the
//! same goldens), so that both hold the engine to the same standard.
//!
//! Each check runs one network over the golden faces of one set of photos (the
//! committed ones, or the South-Asian ones when present) and returns a [`Check`]:
//! whether every face is within the tolerances, how many were compared, the worst
//! figures and the faces beyond the tolerances.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::engine::EngineError;
use crate::engine::arcface::ArcFaceEmbedder;
use crate::engine::dlib::face_chip::face_chip;
use crate::engine::dlib::resnet::FaceDescriptor;
use crate::engine::dlib::shape_predictor::{DlibRect, ShapePredictor};
use crate::engine::mtcnn::Mtcnn;
use crate::engine::pipeline::load_image;
use crate::engine::scrfd::Scrfd;
use crate::fixtures::{self, FixtureError};

/// MTCNN against facenet-pytorch: box IoU and landmark distance per face.
pub const MTCNN_MIN_IOU: f32 = 0.95;
pub const MTCNN_MAX_LANDMARK_PX: f32 = 2.0;
/// dlib's shape predictor against dlib: landmarks within 1 px.
pub const DLIB_MAX_LANDMARK_PX: i64 = 1;
/// dlib ResNet against dlib: descriptor L2 distance.
pub const DLIB_MAX_DESCRIPTOR_L2: f64 = 0.01;
/// SCRFD against onnxruntime: box and keypoint coordinates, score.
pub const SCRFD_MAX_PX: f32 = 0.5;
pub const SCRFD_MAX_SCORE_DIFF: f32 = 1e-3;
/// ArcFace against onnxruntime: the network alone (fed the golden crops), and end to
/// end (our alignment, from the golden or our own keypoints).
pub const ARCFACE_MIN_COSINE_NETWORK: f32 = 0.9999;
pub const ARCFACE_MIN_COSINE_END_TO_END: f32 = 0.999;

#[derive(Debug, thiserror::Error)]
pub enum GoldenError {
    #[error(transparent)]
    Fixture(#[from] FixtureError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("cannot read the golden crop {path}")]
    Crop {
        path: PathBuf,
        #[source]
        source: image::ImageError,
    },
    #[error("{image}: the photo is {got:?}, the golden file says {want:?}")]
    Size {
        image: String,
        got: (u32, u32),
        want: (u32, u32),
    },
}

/// Which golden photos a check runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhotoSet {
    /// The committed photos.
    Committed,
    /// The South-Asian set (only where it is present: see [`fixtures::south_asian`]).
    SouthAsian,
}

impl PhotoSet {
    fn contains(self, image: &str) -> bool {
        image.starts_with(fixtures::SOUTH_ASIAN_PREFIX) == (self == PhotoSet::SouthAsian)
    }
}

/// Which golden photos, and how many of them at most (a quick check takes the first
/// few by name).
#[derive(Debug, Clone, Copy)]
pub struct Selection {
    pub set: PhotoSet,
    pub max_photos: Option<usize>,
}

impl Selection {
    pub fn all(set: PhotoSet) -> Self {
        Self {
            set,
            max_photos: None,
        }
    }

    /// The selected names, in order.
    fn pick<'a>(&self, names: impl Iterator<Item = &'a String>) -> Vec<&'a String> {
        names
            .filter(|n| self.set.contains(n))
            .take(self.max_photos.unwrap_or(usize::MAX))
            .collect()
    }
}

/// The outcome of one parity check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub passed: bool,
    /// Faces compared.
    pub faces: usize,
    /// The worst figures, by name (e.g. `max_landmark_px`).
    pub worst: BTreeMap<&'static str, f64>,
    /// Faces (or photos) beyond the tolerances, in words.
    pub problems: Vec<String>,
    pub reference: String,
}

impl Check {
    fn new(name: &'static str, reference: String) -> Self {
        Self {
            name,
            passed: false,
            faces: 0,
            worst: BTreeMap::new(),
            problems: Vec::new(),
            reference,
        }
    }

    fn finish(mut self) -> Self {
        self.passed = self.problems.is_empty() && self.faces > 0;
        self
    }

    /// One line: PASS/FAIL, the name, the faces and the worst figures.
    pub fn line(&self) -> String {
        let worst: Vec<String> = self
            .worst
            .iter()
            .map(|(k, v)| format!("{k} {v:.3e}"))
            .collect();
        format!(
            "{} {}: {} faces; {}{}",
            if self.passed { "PASS" } else { "FAIL" },
            self.name,
            self.faces,
            worst.join(", "),
            if self.problems.is_empty() {
                String::new()
            } else {
                format!(
                    "; {} beyond tolerance: {}",
                    self.problems.len(),
                    self.problems[..self.problems.len().min(5)].join("; ")
                )
            }
        )
    }

    fn worst_max(&mut self, key: &'static str, value: f64) {
        let w = self.worst.entry(key).or_insert(value);
        *w = w.max(value);
    }

    fn worst_min(&mut self, key: &'static str, value: f64) {
        let w = self.worst.entry(key).or_insert(value);
        *w = w.min(value);
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, FixtureError> {
    let text = std::fs::read_to_string(path).map_err(|source| FixtureError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| FixtureError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// A golden file: `$var` if set, else `tests/golden/<name>`.
fn golden_path(var: &str, name: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| fixtures::golden_dir().join(name))
}

/// A fixture photo, decoded as the engine decodes it.
fn photo(name: &str) -> Result<RgbImage, GoldenError> {
    Ok(load_image(&fixtures::photo(name))?)
}

fn check_size(name: &str, image: &RgbImage, want: (u32, u32)) -> Result<(), GoldenError> {
    let got = (image.width(), image.height());
    if got == want {
        Ok(())
    } else {
        Err(GoldenError::Size {
            image: name.to_owned(),
            got,
            want,
        })
    }
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let area = |r: &[f32; 4]| (r[2] - r[0]) * (r[3] - r[1]);
    inter / (area(a) + area(b) - inter)
}

/// Largest coordinate difference between two boxes, in pixels.
pub fn box_diff(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Largest coordinate difference between two sets of five keypoints.
pub fn kps_diff(a: &[[f32; 2]; 5], b: &[[f32; 2]; 5]) -> f32 {
    a.iter()
        .zip(b)
        .flat_map(|(p, q)| [(p[0] - q[0]).abs(), (p[1] - q[1]).abs()])
        .fold(0.0, f32::max)
}

// --- MTCNN (facenet-pytorch, `mtcnn.json`) --------------------------------------------

#[derive(Deserialize)]
struct MtcnnGolden {
    generator: String,
    images: BTreeMap<String, MtcnnImage>,
}

#[derive(Deserialize)]
struct MtcnnImage {
    width: u32,
    height: u32,
    faces: Vec<MtcnnFace>,
}

#[derive(Deserialize)]
struct MtcnnFace {
    #[serde(rename = "box")]
    bbox: [f32; 4],
    prob: f32,
    landmarks: [[f32; 2]; 5],
}

/// MTCNN against facenet-pytorch: the same number of faces on every photo, and every
/// golden face matched by a box with IoU ≥ [`MTCNN_MIN_IOU`] and landmarks within
/// [`MTCNN_MAX_LANDMARK_PX`]. `MTCNN_GOLDEN` overrides the file.
pub fn mtcnn(mtcnn: &Mtcnn, selection: Selection) -> Result<Check, GoldenError> {
    let golden: MtcnnGolden = read_json(&golden_path("MTCNN_GOLDEN", "mtcnn.json"))?;
    let mut check = Check::new("mtcnn", golden.generator.clone());
    for name in selection.pick(golden.images.keys()) {
        let expected = &golden.images[name];
        let image = photo(name)?;
        check_size(name, &image, (expected.width, expected.height))?;
        let found = mtcnn.detect(&image)?;
        if found.len() != expected.faces.len() {
            check.problems.push(format!(
                "{name}: {} faces, facenet-pytorch {}",
                found.len(),
                expected.faces.len()
            ));
        }
        for face in &expected.faces {
            check.faces += 1;
            let Some(best) = found
                .iter()
                .max_by(|a, b| iou(&a.bbox, &face.bbox).total_cmp(&iou(&b.bbox, &face.bbox)))
            else {
                check.problems.push(format!("{name}: no face found"));
                continue;
            };
            let overlap = iou(&best.bbox, &face.bbox);
            let px = (0..5)
                .map(|i| {
                    let (a, b) = (best.landmarks[i], face.landmarks[i]);
                    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
                })
                .fold(0.0, f32::max);
            check.worst_max("iou_deficit", f64::from(1.0 - overlap));
            check.worst_max("max_landmark_px", f64::from(px));
            check.worst_max("max_prob_diff", f64::from((best.score - face.prob).abs()));
            if overlap < MTCNN_MIN_IOU || px > MTCNN_MAX_LANDMARK_PX {
                check.problems.push(format!(
                    "{name}: IoU {overlap:.4}, landmark error {px:.2} px"
                ));
            }
        }
    }
    Ok(check.finish())
}

// --- dlib (`dlib.json`) -----------------------------------------------------------------

#[derive(Deserialize)]
struct DlibGolden {
    generator: String,
    faces: Vec<DlibFace>,
}

#[derive(Deserialize)]
struct DlibFace {
    image: String,
    rect: [i64; 4],
    parts: [[i64; 2]; 5],
    descriptor: Vec<f64>,
}

/// dlib's shape predictor and ResNet against dlib: every landmark within
/// [`DLIB_MAX_LANDMARK_PX`] and every descriptor (computed on the chip of dlib's own
/// landmarks, so that the two comparisons stay independent) within
/// [`DLIB_MAX_DESCRIPTOR_L2`]. The descriptors go through the network in one batch.
/// `DLIB_GOLDEN` overrides the file.
pub fn dlib(
    predictor: &ShapePredictor,
    net: &FaceDescriptor,
    selection: Selection,
) -> Result<Check, GoldenError> {
    let golden: DlibGolden = read_json(&golden_path("DLIB_GOLDEN", "dlib.json"))?;
    let mut check = Check::new("dlib", golden.generator.clone());
    let names: std::collections::BTreeSet<String> =
        golden.faces.iter().map(|f| f.image.clone()).collect();
    let chosen: std::collections::HashSet<&String> =
        selection.pick(names.iter()).into_iter().collect();
    let faces: Vec<&DlibFace> = golden
        .faces
        .iter()
        .filter(|f| chosen.contains(&f.image))
        .collect();
    let mut images: HashMap<&str, RgbImage> = HashMap::new();
    let mut chips = Vec::new();
    for face in &faces {
        if !images.contains_key(face.image.as_str()) {
            images.insert(&face.image, photo(&face.image)?);
        }
        let img = &images[face.image.as_str()];
        let [left, top, right, bottom] = face.rect;
        let parts = predictor.predict(
            img,
            DlibRect {
                left,
                top,
                right,
                bottom,
            },
        );
        let dev = parts
            .iter()
            .zip(&face.parts)
            .flat_map(|(a, b)| [(a[0] - b[0]).abs(), (a[1] - b[1]).abs()])
            .max()
            .unwrap_or(0);
        check.worst_max("max_landmark_px", dev as f64);
        if dev > DLIB_MAX_LANDMARK_PX {
            check.problems.push(format!(
                "{} rect {:?}: landmarks {parts:?}, dlib {:?}",
                face.image, face.rect, face.parts
            ));
        }
        chips.push(face_chip(img, &face.parts));
    }
    let descriptors = if chips.is_empty() {
        Vec::new()
    } else {
        net.embed(&chips)?
    };
    for (face, d) in faces.iter().zip(&descriptors) {
        check.faces += 1;
        let l2 = d
            .iter()
            .zip(&face.descriptor)
            .map(|(&a, &b)| (f64::from(a) - b).powi(2))
            .sum::<f64>()
            .sqrt();
        check.worst_max("max_descriptor_l2", l2);
        if d.len() != face.descriptor.len() || l2 > DLIB_MAX_DESCRIPTOR_L2 {
            check.problems.push(format!(
                "{} rect {:?}: descriptor L2 {l2:.4}",
                face.image, face.rect
            ));
        }
    }
    Ok(check.finish())
}

// --- SCRFD and ArcFace (onnxruntime, `arcface.json`) -----------------------------------

#[derive(Deserialize)]
struct ArcfaceGolden {
    generator: String,
    images: BTreeMap<String, ArcfaceImage>,
}

#[derive(Deserialize)]
struct ArcfaceImage {
    width: u32,
    height: u32,
    faces: Vec<ArcfaceFace>,
}

#[derive(Deserialize)]
struct ArcfaceFace {
    #[serde(rename = "box")]
    bbox: [f32; 4],
    score: f32,
    kps: [[f32; 2]; 5],
    crop: Option<String>,
    embedding: Vec<f32>,
}

fn arcface_golden() -> Result<ArcfaceGolden, GoldenError> {
    Ok(read_json(&golden_path("ARCFACE_GOLDEN", "arcface.json"))?)
}

/// SCRFD against onnxruntime at the photo's own resolution (load it with
/// `overview_side: 0`, as the generator runs it): the same number of faces per photo,
/// boxes and keypoints within [`SCRFD_MAX_PX`], scores within [`SCRFD_MAX_SCORE_DIFF`].
pub fn scrfd(scrfd: &Scrfd, selection: Selection) -> Result<Check, GoldenError> {
    let golden = arcface_golden()?;
    let mut check = Check::new("scrfd", golden.generator.clone());
    for name in selection.pick(golden.images.keys()) {
        let expected = &golden.images[name];
        let image = photo(name)?;
        check_size(name, &image, (expected.width, expected.height))?;
        let found = scrfd.detect(&image)?;
        if found.len() != expected.faces.len() {
            check.problems.push(format!(
                "{name}: {} faces, onnxruntime {}",
                found.len(),
                expected.faces.len()
            ));
            continue;
        }
        // Both lists are sorted by score; each golden face is matched to the nearest
        // box so that near-equal scores in another order do not count.
        for face in &expected.faces {
            let Some(ours) = found.iter().min_by(|a, b| {
                box_diff(&a.bbox, &face.bbox).total_cmp(&box_diff(&b.bbox, &face.bbox))
            }) else {
                continue;
            };
            let (db, dk, ds) = (
                box_diff(&ours.bbox, &face.bbox),
                kps_diff(&ours.kps, &face.kps),
                (ours.score - face.score).abs(),
            );
            check.faces += 1;
            check.worst_max("max_box_px", f64::from(db));
            check.worst_max("max_keypoint_px", f64::from(dk));
            check.worst_max("max_score_diff", f64::from(ds));
            if db > SCRFD_MAX_PX || dk > SCRFD_MAX_PX || ds > SCRFD_MAX_SCORE_DIFF {
                check.problems.push(format!(
                    "{name}: box off by {db:.3} px, keypoints {dk:.3} px, score {ds:.2e}"
                ));
            }
        }
    }
    Ok(check.finish())
}

/// The ArcFace network alone, fed the golden aligned crops (`arcface_crops/`): cosine
/// with onnxruntime's embedding ≥ [`ARCFACE_MIN_COSINE_NETWORK`]. One batch.
pub fn arcface_network(
    embedder: &ArcFaceEmbedder,
    max_crops: Option<usize>,
) -> Result<Check, GoldenError> {
    let golden = arcface_golden()?;
    let mut check = Check::new("arcface_network", golden.generator.clone());
    let dir = fixtures::golden_dir().join("arcface_crops");
    let (mut names, mut crops, mut expected) = (Vec::new(), Vec::new(), Vec::new());
    for (image, g) in &golden.images {
        for (i, face) in g.faces.iter().enumerate() {
            let Some(file) = &face.crop else { continue };
            if crops.len() >= max_crops.unwrap_or(usize::MAX) {
                break;
            }
            let path = dir.join(file);
            let crop = image::open(&path)
                .map_err(|source| GoldenError::Crop { path, source })?
                .to_rgb8();
            names.push(format!("{image}#{i}"));
            crops.push(crop);
            expected.push(&face.embedding);
        }
    }
    let ours = if crops.is_empty() {
        Vec::new()
    } else {
        embedder.embed_crops(&crops)?
    };
    for ((name, want), got) in names.iter().zip(&expected).zip(&ours) {
        compare_embedding(&mut check, name, got, want, ARCFACE_MIN_COSINE_NETWORK);
    }
    Ok(check.finish())
}

fn compare_embedding(check: &mut Check, name: &str, got: &[f32], want: &[f32], min: f32) {
    check.faces += 1;
    let c = if got.len() == want.len() {
        cosine(got, want)
    } else {
        0.0
    };
    check.worst_min("min_cosine", f64::from(c));
    if c.is_nan() || c < min {
        check
            .problems
            .push(format!("{name}: cosine {c:.6} (at least {min})"));
    }
}

/// Alignment and network together from the golden SCRFD keypoints on our decoded
/// photo, one batch per photo: cosine ≥ [`ARCFACE_MIN_COSINE_END_TO_END`].
pub fn arcface_from_keypoints(
    embedder: &ArcFaceEmbedder,
    selection: Selection,
) -> Result<Check, GoldenError> {
    let golden = arcface_golden()?;
    let mut check = Check::new("arcface_from_keypoints", golden.generator.clone());
    for name in selection.pick(golden.images.keys()) {
        let g = &golden.images[name];
        if g.faces.is_empty() {
            continue;
        }
        let image = photo(name)?;
        let kps: Vec<_> = g.faces.iter().map(|f| f.kps).collect();
        let ours = embedder.embed(&image, &kps)?;
        for (i, (o, f)) in ours.iter().zip(&g.faces).enumerate() {
            compare_embedding(
                &mut check,
                &format!("{name}#{i}"),
                o,
                &f.embedding,
                ARCFACE_MIN_COSINE_END_TO_END,
            );
        }
    }
    Ok(check.finish())
}

/// The whole ArcFace pipeline from the photo: our SCRFD (loaded with
/// `overview_side: 0`) finds the faces and keypoints, our alignment and network embed
/// them; each golden face is matched by its box. Cosine ≥
/// [`ARCFACE_MIN_COSINE_END_TO_END`].
pub fn arcface_through_scrfd(
    embedder: &ArcFaceEmbedder,
    scrfd: &Scrfd,
    selection: Selection,
) -> Result<Check, GoldenError> {
    let golden = arcface_golden()?;
    let mut check = Check::new("arcface_through_scrfd", golden.generator.clone());
    for name in selection.pick(golden.images.keys()) {
        let g = &golden.images[name];
        if g.faces.is_empty() {
            continue;
        }
        let image = photo(name)?;
        let found = scrfd.detect(&image)?;
        let kps: Vec<_> = found.iter().map(|f| f.kps).collect();
        let ours = embedder.embed(&image, &kps)?;
        for (i, face) in g.faces.iter().enumerate() {
            let nearest = found.iter().enumerate().min_by(|(_, a), (_, b)| {
                box_diff(&a.bbox, &face.bbox).total_cmp(&box_diff(&b.bbox, &face.bbox))
            });
            match nearest {
                Some((j, _)) => compare_embedding(
                    &mut check,
                    &format!("{name}#{i}"),
                    &ours[j],
                    &face.embedding,
                    ARCFACE_MIN_COSINE_END_TO_END,
                ),
                None => {
                    check.faces += 1;
                    check.problems.push(format!("{name}#{i}: no face found"));
                }
            }
        }
    }
    Ok(check.finish())
}
