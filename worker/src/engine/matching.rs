//! Matching faces to registered students: the decision rule and the one-to-one
//! assignment.
//!
//! The rule was chosen by measurement on South-Asian faces (see `attendance-worker eval`
//! and the README's table), not taken from dlib's documentation: dlib's customary 0.6
//! accepts many strangers there, because different South-Asian people are often only
//! 0.45–0.6 apart. A face is accepted as student `s` only when
//!
//! 1. its distance to `s` (minimum over `s`'s registered photos) is within `s`'s own
//!    threshold — the global ceiling, tightened for students who have a close look-alike
//!    among the class's registered students (`calibration` × nearest other student), and
//! 2. the next-best student is at least `margin` further away, so an ambiguous face is
//!    left unknown rather than guessed.
//!
//! Faces and students are then paired one-to-one by the Hungarian algorithm: as many
//! accepted pairs as possible, and among those the smallest total distance.

use pathfinding::prelude::{Matrix, kuhn_munkres};
use serde::Serialize;

use common::FaceModel;

/// A face descriptor: dlib's 128-D (unnormalised, as dlib returns it) or ArcFace's 512-D
/// (L2-normalised). A gallery only ever holds one model's descriptors.
pub type Descriptor = Vec<f32>;

/// Euclidean distance between two descriptors.
pub fn distance(a: &Descriptor, b: &Descriptor) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f32>()
        .sqrt()
}

/// The Euclidean distance between unit vectors whose cosine similarity is `cosine`.
pub fn cosine_to_distance(cosine: f32) -> f32 {
    (2.0 - 2.0 * cosine).max(0.0).sqrt()
}

/// The cosine similarity of unit vectors `distance` apart.
pub fn distance_to_cosine(distance: f32) -> f32 {
    1.0 - distance * distance / 2.0
}

/// Parameters of the decision rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DecisionRule {
    /// Global ceiling on the distance of an accepted match.
    pub max_distance: f32,
    /// A student's threshold is at most `calibration` × the distance to the nearest
    /// other registered student of the class (0 disables the calibration).
    pub calibration: f32,
    /// Required gap between the best and the second-best student (0 disables it).
    pub margin: f32,
}

impl DecisionRule {
    /// The rule chosen on the South-Asian fixtures (open-set false accept ≤ 1%).
    /// Measured with `attendance-worker eval south_asian/people --gallery 3 --sweep`
    /// (15 people, 87 probes): 0 % open-set false accept, 78 % genuine acceptance,
    /// 0 % misidentification. The calibration does the real work (at 0.9 no ceiling up
    /// to 0.6 let a stranger in); the 0.475 ceiling guards small classes, where there are
    /// few look-alikes to calibrate against (plain 0.475 alone: 2.3 % false accept).
    /// A best-vs-second margin only cost genuine acceptance on that set, so it is off.
    pub const DEFAULT: DecisionRule = DecisionRule {
        max_distance: 0.475,
        calibration: 0.9,
        margin: 0.0,
    };

    /// The rule chosen for ArcFace (MobileFaceNet, L2-normalised 512-D, SCRFD keypoints)
    /// on the same South-Asian fixtures: accept at cosine similarity ≥ 0.425 (see
    /// [`Self::from_cosine`]), each student's threshold capped at 0.95 × the distance to
    /// their nearest classmate. Measured with `attendance-worker eval --model arcface-mbf
    /// south_asian/people --gallery 3 --sweep` (15 people, 87 probes): open-set false
    /// accept 0 %, genuine acceptance 98.9 %, misidentification 0 %. The first stranger
    /// gets in below cosine 0.375 (2.3 % at 0.35 without calibration), so 0.425 keeps two
    /// steps of margin; the calibration keeps false accepts ≤ 4.6 % even at cosine 0.2,
    /// should a class lower its threshold.
    pub const ARCFACE: DecisionRule = DecisionRule {
        // sqrt(2 − 2 × 0.425)
        max_distance: 1.072_380_5,
        calibration: 0.95,
        margin: 0.0,
    };

    /// The default rule of a face model.
    pub fn for_model(model: FaceModel) -> DecisionRule {
        match model {
            FaceModel::DlibResnet => Self::DEFAULT,
            FaceModel::ArcfaceMbf => Self::ARCFACE,
        }
    }

    /// A rule on L2-normalised descriptors that accepts at cosine similarity ≥ `cosine`:
    /// for unit vectors the Euclidean distance is `sqrt(2 − 2·cos)`, so one matcher serves
    /// both models.
    pub fn from_cosine(cosine: f32, calibration: f32, margin: f32) -> DecisionRule {
        DecisionRule {
            max_distance: cosine_to_distance(cosine),
            calibration,
            margin,
        }
    }

    /// dlib's customary rule, kept for comparison in `eval`.
    pub const DLIB_0_6: DecisionRule = DecisionRule {
        max_distance: 0.6,
        calibration: 0.0,
        margin: 0.0,
    };

    /// The same rule with another global ceiling (a class's threshold override).
    pub fn with_max_distance(self, max_distance: f32) -> Self {
        Self {
            max_distance,
            ..self
        }
    }
}

impl Default for DecisionRule {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// One registered student in a gallery.
#[derive(Debug, Clone)]
struct Enrolled<K> {
    key: K,
    descriptors: Vec<Descriptor>,
    threshold: f32,
}

/// The decision for one face against a gallery.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision<K> {
    /// The nearest student and the distance to them, accepted or not.
    pub nearest: Option<(K, f32)>,
    /// Whether the rule accepts the nearest student.
    pub accepted: bool,
}

/// The registered students of a class, with their calibrated thresholds.
#[derive(Debug, Clone)]
pub struct Gallery<K> {
    students: Vec<Enrolled<K>>,
    rule: DecisionRule,
}

impl<K: Clone> Gallery<K> {
    /// Builds a gallery and calibrates each student's threshold against the others.
    /// Students without descriptors are ignored.
    pub fn new(students: Vec<(K, Vec<Descriptor>)>, rule: DecisionRule) -> Self {
        let mut students: Vec<Enrolled<K>> = students
            .into_iter()
            .filter(|(_, d)| !d.is_empty())
            .map(|(key, descriptors)| Enrolled {
                key,
                descriptors,
                threshold: rule.max_distance,
            })
            .collect();
        if rule.calibration > 0.0 {
            let nearest_other: Vec<f32> = (0..students.len())
                .map(|i| {
                    (0..students.len())
                        .filter(|&j| j != i)
                        .map(|j| set_distance(&students[i].descriptors, &students[j].descriptors))
                        .fold(f32::INFINITY, f32::min)
                })
                .collect();
            for (student, nn) in students.iter_mut().zip(nearest_other) {
                student.threshold = rule.max_distance.min(rule.calibration * nn);
            }
        }
        Self { students, rule }
    }

    pub fn rule(&self) -> DecisionRule {
        self.rule
    }

    pub fn len(&self) -> usize {
        self.students.len()
    }

    pub fn is_empty(&self) -> bool {
        self.students.is_empty()
    }

    /// The calibrated threshold of each student, in gallery order.
    pub fn thresholds(&self) -> impl Iterator<Item = (&K, f32)> {
        self.students.iter().map(|s| (&s.key, s.threshold))
    }

    /// Distance from a face to every student (minimum over each student's photos).
    fn distances(&self, face: &Descriptor) -> Vec<f32> {
        self.students
            .iter()
            .map(|s| set_distance(std::slice::from_ref(face), &s.descriptors))
            .collect()
    }

    /// Which students the rule accepts for this face, given its distances.
    fn acceptable(&self, dists: &[f32]) -> Vec<bool> {
        dists
            .iter()
            .enumerate()
            .map(|(i, &d)| {
                let second = dists
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != i)
                    .map(|(_, &x)| x)
                    .fold(f32::INFINITY, f32::min);
                // The margin only ever admits a face's best student; without a margin
                // any student within their threshold may be paired (Hungarian decides).
                d <= self.students[i].threshold
                    && (self.rule.margin <= 0.0 || second - d >= self.rule.margin)
            })
            .collect()
    }

    /// The decision for a single face, without one-to-one pairing.
    pub fn decide(&self, face: &Descriptor) -> Decision<K> {
        let dists = self.distances(face);
        let ok = self.acceptable(&dists);
        let best = dists
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, &d)| (i, d));
        Decision {
            nearest: best.map(|(i, d)| (self.students[i].key.clone(), d)),
            accepted: best.is_some_and(|(i, _)| ok[i]),
        }
    }

    /// Pairs faces with students one-to-one: each face gets at most one student and
    /// each student at most one face; only pairs the rule accepts are made; the number
    /// of pairs is maximal and, among maximal pairings, the total distance minimal.
    /// Returns, per face, the student and distance, or `None` for an unknown face.
    pub fn assign(&self, faces: &[Descriptor]) -> Vec<Option<(K, f32)>> {
        if faces.is_empty() || self.students.is_empty() {
            return vec![None; faces.len()];
        }
        // Integer weights for kuhn_munkres (it maximises). An accepted pair is worth
        // BIG − distance (so more pairs always win), a refused one is forbidden, and
        // one "stay unknown" column per face is worth 0.
        const SCALE: f32 = 1_000_000.0;
        const BIG: i64 = 1_000_000_000;
        const FORBIDDEN: i64 = -1_000_000_000_000;
        let n_students = self.students.len();
        // Only faces some student accepts take part: the others stay unknown whatever
        // the pairing (their one allowed column is their own), and leaving them out
        // keeps the O(F²(S+F)) assignment to the faces that can match, at most
        // MAX_FACES_PER_PHOTO per photo.
        let mut candidates: Vec<(usize, Vec<f32>, Vec<bool>)> = Vec::new();
        for (f, face) in faces.iter().enumerate() {
            let dists = self.distances(face);
            let ok = self.acceptable(&dists);
            if ok.iter().any(|&ok| ok) {
                candidates.push((f, dists, ok));
            }
        }
        let mut out = vec![None; faces.len()];
        if candidates.is_empty() {
            return out;
        }
        let cols = n_students + candidates.len();
        let mut weights = Matrix::new(candidates.len(), cols, FORBIDDEN);
        for (row, (_, dists, ok)) in candidates.iter().enumerate() {
            for (s, &ok) in ok.iter().enumerate() {
                if ok {
                    weights[(row, s)] = BIG - (dists[s] * SCALE) as i64;
                }
            }
            weights[(row, n_students + row)] = 0;
        }
        let (_, pairing) = kuhn_munkres(&weights);
        for (row, s) in pairing.into_iter().enumerate() {
            if s < n_students && weights[(row, s)] > FORBIDDEN {
                let (f, dists, _) = &candidates[row];
                out[*f] = Some((self.students[s].key.clone(), dists[s]));
            }
        }
        out
    }
}

/// Smallest distance between any descriptor of `a` and any of `b`.
fn set_distance(a: &[Descriptor], b: &[Descriptor]) -> f32 {
    a.iter()
        .flat_map(|x| b.iter().map(move |y| distance(x, y)))
        .fold(f32::INFINITY, f32::min)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A descriptor at `x` along the first axis (distances are then |x − y|).
    fn at(x: f32) -> Descriptor {
        let mut d = vec![0.0; 128];
        d[0] = x;
        d
    }

    fn rule(max_distance: f32, calibration: f32, margin: f32) -> DecisionRule {
        DecisionRule {
            max_distance,
            calibration,
            margin,
        }
    }

    #[test]
    fn distance_is_euclidean() {
        let mut a = at(3.0);
        a[1] = 4.0;
        assert!((distance(&a, &at(0.0)) - 5.0).abs() < 1e-6);
    }

    #[test]
    fn faces_beyond_the_ceiling_stay_unknown() {
        let g = Gallery::new(vec![("a", vec![at(0.0)])], rule(0.4, 0.0, 0.0));
        assert!(g.decide(&at(0.3)).accepted);
        let far = g.decide(&at(0.5));
        assert!(!far.accepted);
        assert_eq!(far.nearest, Some(("a", 0.5)));
    }

    #[test]
    fn a_close_look_alike_tightens_the_threshold() {
        // a and b are 0.4 apart: with calibration 0.5 each accepts only within 0.2.
        let g = Gallery::new(
            vec![
                ("a", vec![at(0.0)]),
                ("b", vec![at(0.4)]),
                ("c", vec![at(5.0)]),
            ],
            rule(0.45, 0.5, 0.0),
        );
        let t: Vec<_> = g.thresholds().map(|(k, t)| (*k, t)).collect();
        assert_eq!(t, vec![("a", 0.2), ("b", 0.2), ("c", 0.45)]);
        assert!(!g.decide(&at(-0.3)).accepted);
        assert!(g.decide(&at(-0.1)).accepted);
        assert!(g.decide(&at(5.4)).accepted);
    }

    #[test]
    fn an_ambiguous_face_is_refused_by_the_margin() {
        let g = Gallery::new(
            vec![("a", vec![at(0.0)]), ("b", vec![at(0.6)])],
            rule(0.45, 0.0, 0.1),
        );
        assert!(
            !g.decide(&at(0.28)).accepted,
            "0.28 vs 0.32: too close to call"
        );
        assert!(g.decide(&at(0.1)).accepted);
    }

    #[test]
    fn the_minimum_over_a_students_photos_counts() {
        let g = Gallery::new(vec![("a", vec![at(0.0), at(1.0)])], rule(0.2, 0.0, 0.0));
        assert_eq!(g.decide(&at(0.9)).nearest, Some(("a", 0.100000024)));
    }

    #[test]
    fn assignment_is_one_to_one_and_prefers_more_pairs() {
        // Both faces are nearest to a; the second can also be b. One-to-one gives
        // face0→a, face1→b rather than leaving face1 unknown.
        let g = Gallery::new(
            vec![("a", vec![at(0.0)]), ("b", vec![at(0.7)])],
            rule(0.45, 0.0, 0.0),
        );
        let got = g.assign(&[at(0.05), at(0.3)]);
        assert_eq!(got[0].map(|(k, _)| k), Some("a"));
        assert_eq!(got[1].map(|(k, _)| k), Some("b"));
    }

    #[test]
    fn assignment_never_yields_a_student_twice() {
        let g = Gallery::new(vec![("a", vec![at(0.0)])], rule(0.45, 0.0, 0.0));
        let got = g.assign(&[at(0.2), at(0.1), at(0.3)]);
        let matched: Vec<_> = got.iter().flatten().collect();
        assert_eq!(matched.len(), 1);
        assert_eq!(got[1].map(|(k, _)| k), Some("a"), "the closest face wins");
    }

    #[test]
    fn faces_no_student_accepts_stay_unknown_among_matched_ones() {
        // Strangers (far from everyone) around two students' faces: they are left out of
        // the assignment, and the others are paired as if they were not there.
        let g = Gallery::new(
            vec![("a", vec![at(0.0)]), ("b", vec![at(0.7)])],
            rule(0.45, 0.0, 0.0),
        );
        let got = g.assign(&[at(5.0), at(0.05), at(9.0), at(0.3), at(-4.0)]);
        let keys: Vec<_> = got.iter().map(|m| m.map(|(k, _)| k)).collect();
        assert_eq!(keys, [None, Some("a"), None, Some("b"), None]);
        assert!((got[3].unwrap().1 - 0.4).abs() < 1e-6);
        assert_eq!(g.assign(&[at(5.0), at(9.0)]), vec![None, None]);
    }

    #[test]
    fn empty_gallery_or_no_faces() {
        let g: Gallery<&str> = Gallery::new(vec![("a", vec![])], DecisionRule::DEFAULT);
        assert!(g.is_empty());
        assert_eq!(g.assign(&[at(0.0)]), vec![None]);
        assert!(g.assign(&[]).is_empty());
    }
}
