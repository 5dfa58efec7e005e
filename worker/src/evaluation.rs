//! Measuring a decision rule on a folder of people (one sub-folder of photos each):
//! register each person from their first N photos, probe with the rest. This is how
//! the default rule was chosen, and how an operator checks it on their own students.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::engine::matching::{DecisionRule, Descriptor, Gallery, distance};
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
}

/// Embeds the largest face of every photo.
pub fn embed_people(engine: &FaceEngine, people: &[Person]) -> Result<Vec<EmbeddedPerson>> {
    people
        .iter()
        .map(|p| {
            let photos = p
                .photos
                .iter()
                .map(|path| {
                    let image = load_image(path)?;
                    let faces = engine.analyze(&image)?;
                    let largest = faces
                        .into_iter()
                        .max_by(|a, b| a.area().total_cmp(&b.area()))
                        .map(|f| f.descriptor);
                    Ok((path.clone(), largest))
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(EmbeddedPerson {
                name: p.name.clone(),
                photos,
            })
        })
        .collect()
}

/// How a rule did on the probes.
#[derive(Debug, Clone, Serialize)]
pub struct RuleMetrics {
    pub rule: DecisionRule,
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
    pub people: usize,
    pub gallery_per_person: usize,
    pub probes: usize,
    /// Photos in which no face was found (not counted as probes).
    pub photos_without_face: Vec<String>,
    pub default_rule: RuleMetrics,
    pub dlib_0_6: RuleMetrics,
    pub distances: Vec<ProbeDistances>,
}

/// Gallery and probes split of embedded people.
pub struct Split {
    gallery: Vec<(String, Vec<Descriptor>)>,
    probes: Vec<(String, String, Descriptor)>,
    pub without_face: Vec<String>,
}

impl Split {
    /// The first `n` photos of each person (sorted by name) register them; the rest probe.
    pub fn new(people: &[EmbeddedPerson], n: usize) -> Self {
        let mut without_face = Vec::new();
        let mut gallery = Vec::new();
        let mut probes = Vec::new();
        for p in people {
            let mut registered = Vec::new();
            for (i, (path, d)) in p.photos.iter().enumerate() {
                let Some(d) = d else {
                    without_face.push(path.display().to_string());
                    continue;
                };
                if i < n {
                    registered.push(*d);
                } else {
                    probes.push((p.name.clone(), path.display().to_string(), *d));
                }
            }
            gallery.push((p.name.clone(), registered));
        }
        Self {
            gallery,
            probes,
            without_face,
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
        EvalReport {
            people,
            gallery_per_person: n,
            probes: self.probes.len(),
            photos_without_face: self.without_face.clone(),
            default_rule: self.measure(DecisionRule::DEFAULT),
            dlib_0_6: self.measure(DecisionRule::DLIB_0_6),
            distances: self.distances(),
        }
    }

    /// Metrics over a grid of rules (how the default was chosen).
    pub fn sweep(&self) -> Vec<RuleMetrics> {
        let mut out = Vec::new();
        for max in (14..=24).map(|i| i as f32 * 0.025) {
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
