//! Synthesised classroom photos for throughput measurements: the committed portraits'
//! faces (cut around facenet-pytorch's box from the golden file, so no engine runs to
//! make them) seated in rows on a plain background, back rows small (~55 px faces) and
//! front rows large (~135 px), as a 2000×1125 JPEG. Deterministic: the same options give
//! the same bytes, so our engine and face_recognition see the very same photos.

use std::collections::BTreeMap;
use std::path::Path;

use image::{Rgb, RgbImage, imageops};
use serde::{Deserialize, Serialize};

use crate::engine::EngineError;
use crate::engine::pipeline::load_image;
use crate::fixtures::{self, FixtureError};

/// Size of a synthesised photo: a phone's landscape photo reduced to 2000 px.
pub const WIDTH: u32 = 2000;
pub const HEIGHT: u32 = 1125;
/// Face widths of the rows, back to front, and the share of the faces each row seats.
const ROW_FACE_WIDTHS: [f32; 4] = [55.0, 75.0, 100.0, 135.0];
const ROW_SHARES: [usize; 4] = [9, 8, 7, 6];
/// The cut around a face, as a multiple of its box (forehead, chin and some shoulder).
const CUT: f32 = 1.8;
const BACKGROUND: Rgb<u8> = Rgb([196, 192, 182]);
const JPEG_QUALITY: u8 = 90;

#[derive(Debug, thiserror::Error)]
pub enum ClassroomError {
    #[error(transparent)]
    Fixture(#[from] FixtureError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("the golden file has no face for the portrait {0}")]
    NoGoldenFace(String),
    #[error("could not encode a classroom photo")]
    Encode(#[source] image::ImageError),
    #[error("could not write {path}")]
    Write {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("a classroom photo needs at least one face")]
    NoFaces,
}

/// One registered person and the portraits that register them (fixture names).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Person {
    pub name: String,
    pub portraits: Vec<String>,
}

/// A face seated in a synthesised photo: whose, from which portrait, and where.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeatedFace {
    pub person: String,
    pub portrait: String,
    /// The golden box moved into the classroom photo: `[x1, y1, x2, y2]`.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
}

/// One synthesised photo.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassroomPhoto {
    pub file: String,
    pub faces: Vec<SeatedFace>,
    #[serde(skip)]
    pub jpeg: Vec<u8>,
}

impl ClassroomPhoto {
    /// The distinct people seated in the photo, sorted.
    pub fn people(&self) -> Vec<String> {
        let mut people: Vec<String> = self.faces.iter().map(|f| f.person.clone()).collect();
        people.sort();
        people.dedup();
        people
    }
}

/// The registered people and the photos, as written beside the photos
/// (`manifest.json`): what a reference implementation needs to do the same work.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub width: u32,
    pub height: u32,
    /// Where the portraits are, relative to which their names are given.
    pub fixtures_dir: String,
    pub people: Vec<Person>,
    pub photos: Vec<ClassroomPhoto>,
}

/// A portrait's face, cut out and ready to be scaled.
struct Portrait {
    person: String,
    name: String,
    cut: RgbImage,
    /// The face box within `cut`.
    face: [f32; 4],
}

/// The committed people (`labels.json`), each with all their portraits.
pub fn fixture_people() -> Result<Vec<Person>, ClassroomError> {
    let labels = fixtures::labels()?;
    let mut people: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Some(map) = labels["people"].as_object() {
        for (name, photos) in map {
            let photos = photos
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|p| p.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            people.insert(name.clone(), photos);
        }
    }
    Ok(people
        .into_iter()
        .map(|(name, portraits)| Person { name, portraits })
        .collect())
}

/// The largest face facenet-pytorch found in each golden photo.
fn golden_boxes() -> Result<BTreeMap<String, [f32; 4]>, ClassroomError> {
    #[derive(Deserialize)]
    struct Golden {
        images: BTreeMap<String, GoldenImage>,
    }
    #[derive(Deserialize)]
    struct GoldenImage {
        faces: Vec<GoldenFace>,
    }
    #[derive(Deserialize)]
    struct GoldenFace {
        #[serde(rename = "box")]
        bbox: [f32; 4],
    }
    let path = fixtures::golden_dir().join("mtcnn.json");
    let text = std::fs::read_to_string(&path).map_err(|source| FixtureError::Read {
        path: path.clone(),
        source,
    })?;
    let golden: Golden =
        serde_json::from_str(&text).map_err(|source| FixtureError::Json { path, source })?;
    let area = |b: &[f32; 4]| (b[2] - b[0]) * (b[3] - b[1]);
    Ok(golden
        .images
        .into_iter()
        .filter_map(|(name, image)| {
            let largest = image
                .faces
                .into_iter()
                .map(|f| f.bbox)
                .max_by(|a, b| area(a).total_cmp(&area(b)))?;
            Some((name, largest))
        })
        .collect())
}

fn load_portraits(people: &[Person]) -> Result<Vec<Portrait>, ClassroomError> {
    let boxes = golden_boxes()?;
    let mut portraits = Vec::new();
    for person in people {
        for name in &person.portraits {
            let bbox = *boxes
                .get(name)
                .ok_or_else(|| ClassroomError::NoGoldenFace(name.clone()))?;
            let image = load_image(&fixtures::photo(name))?;
            let (cut, face) = cut_around(&image, bbox);
            portraits.push(Portrait {
                person: person.name.clone(),
                name: name.clone(),
                cut,
                face,
            });
        }
    }
    Ok(portraits)
}

/// The region `CUT` times the face box around its centre, filled with the background
/// where it leaves the photo; returns it and the face box within it.
fn cut_around(image: &RgbImage, bbox: [f32; 4]) -> (RgbImage, [f32; 4]) {
    let (cx, cy) = ((bbox[0] + bbox[2]) / 2.0, (bbox[1] + bbox[3]) / 2.0);
    let (w, h) = ((bbox[2] - bbox[0]) * CUT, (bbox[3] - bbox[1]) * CUT);
    let (x0, y0) = ((cx - w / 2.0).round() as i64, (cy - h / 2.0).round() as i64);
    let (cw, ch) = (w.round().max(1.0) as u32, h.round().max(1.0) as u32);
    let mut cut = RgbImage::from_pixel(cw, ch, BACKGROUND);
    imageops::replace(&mut cut, image, -x0, -y0);
    let face = [
        bbox[0] - x0 as f32,
        bbox[1] - y0 as f32,
        bbox[2] - x0 as f32,
        bbox[3] - y0 as f32,
    ];
    (cut, face)
}

/// How many of `faces` each row seats (back to front), in the proportions of
/// `ROW_SHARES`.
fn row_counts(faces: usize) -> [usize; 4] {
    let total: usize = ROW_SHARES.iter().sum();
    let mut counts = ROW_SHARES.map(|s| s * faces / total);
    let mut left = faces - counts.iter().sum::<usize>();
    for c in counts.iter_mut() {
        if left == 0 {
            break;
        }
        *c += 1;
        left -= 1;
    }
    counts
}

/// A small deterministic generator (SplitMix64): the seating must not change with a
/// dependency's version.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Which portrait sits in each seat of photo `index`: every portrait in turn (so every
/// person is in every photo of 14 faces or more), in a shuffled order per photo.
fn seating(index: usize, seats: usize, portraits: usize) -> Vec<usize> {
    let mut rng = SplitMix(0xC1A5_5800 + index as u64);
    let mut order: Vec<usize> = (0..seats).map(|s| s % portraits).collect();
    for i in (1..order.len()).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

fn compose(
    index: usize,
    faces: usize,
    portraits: &[Portrait],
) -> Result<ClassroomPhoto, ClassroomError> {
    let mut canvas = RgbImage::from_pixel(WIDTH, HEIGHT, BACKGROUND);
    let seats = seating(index, faces, portraits.len());
    let counts = row_counts(faces);
    // Rows from the back (top) to the front (bottom); each row as tall as its tallest
    // cut, the spare height spread between rows.
    let mut rows: Vec<Vec<(usize, RgbImage, [f32; 4])>> = Vec::new();
    let mut next = 0;
    for (row, &count) in counts.iter().enumerate() {
        let mut cuts = Vec::new();
        if count == 0 {
            rows.push(cuts);
            continue;
        }
        // Narrower faces when a row would not fit the width.
        let widest_cut = portraits
            .iter()
            .map(|p| p.cut.width() as f32 / (p.face[2] - p.face[0]))
            .fold(0.0, f32::max);
        let face_w = ROW_FACE_WIDTHS[row].min(WIDTH as f32 * 0.95 / (count as f32 * widest_cut));
        for &p in &seats[next..next + count] {
            let portrait = &portraits[p];
            let scale = face_w / (portrait.face[2] - portrait.face[0]);
            let (w, h) = (
                (portrait.cut.width() as f32 * scale).round().max(1.0) as u32,
                (portrait.cut.height() as f32 * scale).round().max(1.0) as u32,
            );
            let scaled = imageops::resize(&portrait.cut, w, h, imageops::FilterType::Triangle);
            let face = portrait.face.map(|v| v * scale);
            cuts.push((p, scaled, face));
        }
        next += count;
        rows.push(cuts);
    }
    let heights: Vec<u32> = rows
        .iter()
        .map(|r| r.iter().map(|(_, c, _)| c.height()).max().unwrap_or(0))
        .collect();
    let spare = HEIGHT.saturating_sub(heights.iter().sum()) / (rows.len() as u32 + 1);
    let mut seated = Vec::new();
    let mut y = spare;
    for (cuts, height) in rows.iter().zip(&heights) {
        let width: u32 = cuts.iter().map(|(_, c, _)| c.width()).sum();
        let gap = WIDTH.saturating_sub(width) / (cuts.len() as u32 + 1);
        let mut x = gap;
        for (p, cut, face) in cuts {
            // Seated on a common floor line: shorter cuts sit lower.
            let top = y + height - cut.height();
            imageops::replace(&mut canvas, cut, i64::from(x), i64::from(top));
            let portrait = &portraits[*p];
            seated.push(SeatedFace {
                person: portrait.person.clone(),
                portrait: portrait.name.clone(),
                bbox: [
                    face[0] + x as f32,
                    face[1] + top as f32,
                    face[2] + x as f32,
                    face[3] + top as f32,
                ],
            });
            x += cut.width() + gap;
        }
        y += height + spare;
    }
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, JPEG_QUALITY)
        .encode_image(&canvas)
        .map_err(ClassroomError::Encode)?;
    Ok(ClassroomPhoto {
        file: format!("classroom_{:03}.jpg", index + 1),
        faces: seated,
        jpeg,
    })
}

/// `photos` classroom photos of `faces` faces each, from the committed people.
pub fn synthesise(photos: usize, faces: usize) -> Result<Manifest, ClassroomError> {
    if faces == 0 {
        return Err(ClassroomError::NoFaces);
    }
    let people = fixture_people()?;
    let portraits = load_portraits(&people)?;
    let photos = (0..photos)
        .map(|i| compose(i, faces, &portraits))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Manifest {
        width: WIDTH,
        height: HEIGHT,
        fixtures_dir: fixtures::faces_dir().display().to_string(),
        people,
        photos,
    })
}

/// Writes the photos and `manifest.json` into `dir` (created if needed).
pub fn write(manifest: &Manifest, dir: &Path) -> Result<(), ClassroomError> {
    let write = |path: std::path::PathBuf, bytes: &[u8]| {
        std::fs::write(&path, bytes).map_err(|source| ClassroomError::Write { path, source })
    };
    std::fs::create_dir_all(dir).map_err(|source| ClassroomError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    for photo in &manifest.photos {
        write(dir.join(&photo.file), &photo.jpeg)?;
    }
    let json = serde_json::to_vec_pretty(manifest).map_err(|e| ClassroomError::Write {
        path: dir.join("manifest.json"),
        source: std::io::Error::other(e),
    })?;
    write(dir.join("manifest.json"), &json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_seat_every_face() {
        assert_eq!(row_counts(30), [9, 8, 7, 6]);
        for n in [1, 7, 29, 31, 60] {
            assert_eq!(row_counts(n).iter().sum::<usize>(), n);
        }
    }

    #[test]
    fn seating_uses_every_portrait_and_is_deterministic() {
        let a = seating(3, 30, 14);
        assert_eq!(a, seating(3, 30, 14));
        assert_ne!(a, seating(4, 30, 14));
        for p in 0..14 {
            assert!(a.contains(&p), "portrait {p} not seated: {a:?}");
        }
    }

    #[test]
    fn photos_are_deterministic_and_faces_inside_the_frame() {
        let one = synthesise(2, 30).unwrap();
        let again = synthesise(2, 30).unwrap();
        assert_eq!(one.photos.len(), 2);
        for (a, b) in one.photos.iter().zip(&again.photos) {
            assert_eq!(a.jpeg, b.jpeg);
            assert_eq!(a.faces.len(), 30);
            assert_eq!(a.people().len(), one.people.len());
            for f in &a.faces {
                let [x1, y1, x2, y2] = f.bbox;
                assert!(x1 >= 0.0 && y1 >= 0.0, "{f:?}");
                assert!(x2 <= WIDTH as f32 && y2 <= HEIGHT as f32, "{f:?}");
                assert!((50.0..=140.0).contains(&(x2 - x1)), "{f:?}");
            }
        }
        let decoded = image::load_from_memory(&one.photos[0].jpeg).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (WIDTH, HEIGHT));
    }
}
