//! Measuring a decision rule on a folder of people (one sub-folder of photos each):
//! register each person from their first N photos, probe with the rest. This is how
//! the default rule was chosen, and how an operator checks it on their own students.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use common::FaceModel;

use crate::engine::matching::{
    DecisionRule, Descriptor, Gallery, cosine_to_distance, distance, distance_to_cosine,
};
use crate::engine::pipeline::load_image;
use crate::engine::{EngineError, FaceEngine, Result};

/// Photos of one person, sorted by file name.
#[derive(Debug, Clone)]
pub struct Person {
    pub name: String,
    pub photos: Vec<PathBuf>,
}

/// Lists `dir/<person>/<photo>` (jpg, jpeg, png, webp), people and photos sorted.
pub fn scan_people(dir: &Path) -> Result<Vec<Person>> {
    let io = |source| EngineError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut people = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        if !entry.path().is_dir() {
            continue;
        }
        let mut photos: Vec<PathBuf> = std::fs::read_dir(entry.path())
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| is_photo(p))
            .collect();
        photos.sort();
        people.push(Person {
            name: entry.file_name().to_string_lossy().into_owned(),
            photos,
        });
    }
    people.sort_by(|a, b| a.name.cmp(&b.name));
    if people.is_empty() {
        return Err(EngineError::Invalid(format!(
            "{} has no sub-folders of photos (expected one folder per person)",
            dir.display()
        )));
    }
    Ok(people)
}

fn is_photo(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        matches!(
            e.to_ascii_lowercase().as_str(),
            "jpg" | "jpeg" | "png" | "webp"
        )
    })
}

/// A person's photos with the descriptor of the largest face in each (None: no face).
#[derive(Debug, Clone)]
pub struct EmbeddedPerson {
    pub name: String,
    pub photos: Vec<(PathBuf, Option<Descriptor>)>,
    /// Photos that could not be used (unreadable, undecodable, too large), with why.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Embeds the largest face of every photo. The photos are portraits, as registration
/// photos are (see [`FaceEngine::analyze_portrait`]). A photo that cannot be read or
/// decoded is listed as skipped and the rest go on; a defect of the engine stops.
pub fn embed_people(engine: &FaceEngine, people: &[Person]) -> Result<Vec<EmbeddedPerson>> {
    people
        .iter()
        .map(|p| {
            let mut photos = Vec::new();
            let mut skipped = Vec::new();
            for path in &p.photos {
                let image = match load_image(path) {
                    Ok(image) => image,
                    Err(e @ EngineError::Io { .. }) => {
                        skipped.push((path.clone(), e.to_string()));
                        continue;
                    }
                    Err(e) => match e.bad_input_reason() {
                        Some(reason) => {
                            skipped.push((path.clone(), reason));
                            continue;
                        }
                        None => return Err(e),
                    },
                };
                let faces = engine.analyze_portrait(&image)?;
                let largest = faces
                    .into_iter()
                    .max_by(|a, b| a.area().total_cmp(&b.area()))
                    .map(|f| f.descriptor);
                photos.push((path.clone(), largest));
            }
            Ok(EmbeddedPerson {
                name: p.name.clone(),
                photos,
                skipped,
            })
        })
        .collect()
}

/// How a rule did on the probes.
#[derive(Debug, Clone, Serialize)]
pub struct RuleMetrics {
    pub rule: DecisionRule,
    /// For L2-normalised descriptors (ArcFace): the ceiling as a cosine similarity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_cosine: Option<f32>,
    /// Probes whose nearest registered person is their own (closed set, no threshold).
    pub identification_accuracy: f64,
    /// Probes accepted as their own person.
    pub genuine_acceptance: f64,
    /// Probes accepted as somebody else while their own person is registered.
    pub misidentification: f64,
    /// Probes accepted as somebody when their own person is NOT registered.
    pub open_set_false_accept: f64,
}

/// One probe's distances, for the table operators read.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeDistances {
    pub probe: String,
    pub person: String,
    /// Distance to the nearest of the person's own registered photos.
    pub genuine: f32,
    /// Distance to the nearest other registered person, and who.
    pub nearest_impostor: f32,
    pub nearest_impostor_person: String,
}

/// The full result of `attendance-worker eval`.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub model: &'static str,
    pub people: usize,
    pub gallery_per_person: usize,
    pub probes: usize,
    /// Photos in which no face was found (not counted as probes).
    pub photos_without_face: Vec<String>,
    /// Photos that could not be used at all, with the reason.
    pub skipped_photos: Vec<SkippedPhoto>,
    pub default_rule: RuleMetrics,
    /// What the model's library would do out of the box: dlib's 0.6 for dlib; for
    /// ArcFace the same ceiling without per-student calibration.
    pub baseline: RuleMetrics,
    pub baseline_name: &'static str,
    pub distances: Vec<ProbeDistances>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SkippedPhoto {
    pub photo: String,
    pub reason: String,
}

/// Gallery and probes split of embedded people.
pub struct Split {
    model: FaceModel,
    gallery: Vec<(String, Vec<Descriptor>)>,
    probes: Vec<(String, String, Descriptor)>,
    pub without_face: Vec<String>,
    pub skipped: Vec<SkippedPhoto>,
}

impl Split {
    /// The first `n` photos of each person (sorted by name) register them; the rest probe.
    pub fn new(model: FaceModel, people: &[EmbeddedPerson], n: usize) -> Self {
        let mut without_face = Vec::new();
        let mut gallery = Vec::new();
        let mut probes = Vec::new();
        let mut skipped = Vec::new();
        for p in people {
            let mut registered = Vec::new();
            for (i, (path, d)) in p.photos.iter().enumerate() {
                let Some(d) = d else {
                    without_face.push(path.display().to_string());
                    continue;
                };
                if i < n {
                    registered.push(d.clone());
                } else {
                    probes.push((p.name.clone(), path.display().to_string(), d.clone()));
                }
            }
            gallery.push((p.name.clone(), registered));
            skipped.extend(p.skipped.iter().map(|(path, reason)| SkippedPhoto {
                photo: path.display().to_string(),
                reason: reason.clone(),
            }));
        }
        Self {
            model,
            gallery,
            probes,
            without_face,
            skipped,
        }
    }

    pub fn probes(&self) -> usize {
        self.probes.len()
    }

    /// Measures a rule: closed-set with everybody registered, and open-set with the
    /// probe's own person left out of the class (thresholds recalibrated without them).
    pub fn measure(&self, rule: DecisionRule) -> RuleMetrics {
        let full = Gallery::new(self.gallery.clone(), rule);
        let without: BTreeMap<&str, Gallery<String>> = self
            .gallery
            .iter()
            .map(|(name, _)| {
                let others = self
                    .gallery
                    .iter()
                    .filter(|(n, _)| n != name)
                    .cloned()
                    .collect();
                (name.as_str(), Gallery::new(others, rule))
            })
            .collect();
        let (mut ident, mut genuine, mut mis, mut fa) = (0usize, 0usize, 0usize, 0usize);
        for (person, _, d) in &self.probes {
            let decision = full.decide(d);
            let own = decision.nearest.as_ref().is_some_and(|(k, _)| k == person);
            ident += usize::from(own);
            genuine += usize::from(own && decision.accepted);
            mis += usize::from(!own && decision.accepted);
            fa += usize::from(without[person.as_str()].decide(d).accepted);
        }
        let n = self.probes.len().max(1) as f64;
        RuleMetrics {
            rule,
            min_cosine: (self.model == FaceModel::ArcfaceMbf)
                .then(|| distance_to_cosine(rule.max_distance)),
            identification_accuracy: ident as f64 / n,
            genuine_acceptance: genuine as f64 / n,
            misidentification: mis as f64 / n,
            open_set_false_accept: fa as f64 / n,
        }
    }

    /// Genuine and nearest-impostor distance of every probe.
    pub fn distances(&self) -> Vec<ProbeDistances> {
        let nearest = |d: &Descriptor, photos: &[Descriptor]| {
            photos
                .iter()
                .map(|g| distance(d, g))
                .fold(f32::INFINITY, f32::min)
        };
        self.probes
            .iter()
            .map(|(person, probe, d)| {
                let genuine = self
                    .gallery
                    .iter()
                    .find(|(n, _)| n == person)
                    .map_or(f32::INFINITY, |(_, g)| nearest(d, g));
                let (imp_person, imp) = self
                    .gallery
                    .iter()
                    .filter(|(n, _)| n != person)
                    .map(|(n, g)| (n.clone(), nearest(d, g)))
                    .min_by(|a, b| a.1.total_cmp(&b.1))
                    .unwrap_or_default();
                ProbeDistances {
                    probe: probe.clone(),
                    person: person.clone(),
                    genuine,
                    nearest_impostor: imp,
                    nearest_impostor_person: imp_person,
                }
            })
            .collect()
    }

    /// The report `eval` prints.
    pub fn report(&self, people: usize, n: usize) -> EvalReport {
        let default = DecisionRule::for_model(self.model);
        let (baseline, baseline_name) = match self.model {
            FaceModel::DlibResnet => (DecisionRule::DLIB_0_6, "dlib's customary 0.6"),
            FaceModel::ArcfaceMbf => (
                DecisionRule {
                    calibration: 0.0,
                    ..default
                },
                "the same cosine ceiling without calibration",
            ),
        };
        EvalReport {
            model: self.model.name(),
            people,
            gallery_per_person: n,
            probes: self.probes.len(),
            photos_without_face: self.without_face.clone(),
            skipped_photos: self.skipped.clone(),
            default_rule: self.measure(default),
            baseline: self.measure(baseline),
            baseline_name,
            distances: self.distances(),
        }
    }

    /// Metrics over a grid of rules (how the default was chosen): distance ceilings for
    /// dlib, cosine floors 0.20–0.50 for ArcFace.
    pub fn sweep(&self) -> Vec<RuleMetrics> {
        let ceilings: Vec<f32> = match self.model {
            FaceModel::DlibResnet => (14..=24).map(|i| i as f32 * 0.025).collect(),
            FaceModel::ArcfaceMbf => (8..=20)
                .map(|i| cosine_to_distance(i as f32 * 0.025))
                .collect(),
        };
        let mut out = Vec::new();
        for max in ceilings {
            for calibration in [0.0, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0] {
                for margin in [0.0, 0.02, 0.04, 0.06, 0.08] {
                    out.push(self.measure(DecisionRule {
                        max_distance: max,
                        calibration,
                        margin,
                    }));
                }
            }
        }
        out
    }
}
