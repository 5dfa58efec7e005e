//! dlib's 5-point shape predictor (an ensemble of regression trees, Kazemi & Sullivan),
//! read from `shape_predictor_5_face_landmarks.dat` and evaluated exactly as
//! `dlib::shape_predictor::operator()` does, down to float32 arithmetic,
//! integer rgb→gray intensity and dlib's `floor(x + 0.5)` point rounding.

use std::path::Path;

use image::RgbImage;

use super::format::Reader;
use crate::engine::{EngineError, Result};

/// Number of landmarks of the 5-point model.
pub const NUM_PARTS: usize = 5;

/// A dlib `rectangle`: integer corners, right and bottom inclusive. It may extend
/// outside the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DlibRect {
    pub left: i64,
    pub top: i64,
    pub right: i64,
    pub bottom: i64,
}

#[derive(Debug, Clone, Copy)]
struct Split {
    idx1: usize,
    idx2: usize,
    thresh: f32,
}

/// One regression tree: split nodes in heap order, then `splits.len() + 1` leaves of
/// `2 * NUM_PARTS` floats each, stored flat.
#[derive(Debug)]
struct Tree {
    splits: Vec<Split>,
    leaves: Vec<f32>,
}

impl Tree {
    /// The leaf reached by `features` (strict `>` in float32, as dlib).
    fn leaf(&self, features: &[f32]) -> &[f32] {
        let mut i = 0;
        while i < self.splits.len() {
            let s = self.splits[i];
            i = if features[s.idx1] - features[s.idx2] > s.thresh {
                2 * i + 1
            } else {
                2 * i + 2
            };
        }
        let j = (i - self.splits.len()) * 2 * NUM_PARTS;
        &self.leaves[j..j + 2 * NUM_PARTS]
    }
}

#[derive(Debug)]
struct Cascade {
    trees: Vec<Tree>,
    anchor_idx: Vec<usize>,
    deltas: Vec<[f32; 2]>,
}

/// The loaded model.
#[derive(Debug)]
pub struct ShapePredictor {
    initial_shape: [f32; 2 * NUM_PARTS],
    cascades: Vec<Cascade>,
}

impl ShapePredictor {
    /// Reads a 5-point `.dat` file and checks that it is internally consistent (indices
    /// in range, complete trees, matching leaf sizes).
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| EngineError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let model = Self::parse(&mut Reader::new(&bytes, path))?;
        tracing::debug!(
            path = %path.display(),
            cascades = model.cascades.len(),
            trees = model.cascades.iter().map(|c| c.trees.len()).sum::<usize>(),
            "loaded shape predictor"
        );
        Ok(model)
    }

    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        r.expect_int(1, "shape_predictor version")?;
        let (nr, nc, init) = r.read_matrix_f32()?;
        let initial_shape: [f32; 2 * NUM_PARTS] =
            init.try_into().ok().filter(|_| nc == 1).ok_or_else(|| {
                r.error(format!(
                    "initial shape is {nr}x{nc}; only the {NUM_PARTS}-point model is supported"
                ))
            })?;

        let forests = r.read_vec(|r| r.read_vec(read_tree))?;
        let anchor_idx = r.read_vec(|r| r.read_vec(Reader::read_usize))?;
        let deltas = r.read_vec(|r| r.read_vec(Reader::read_point_f32))?;
        r.expect_end()?;

        if anchor_idx.len() != forests.len() || deltas.len() != forests.len() {
            return Err(r.error(format!(
                "{} cascades of trees but {} of anchors and {} of deltas",
                forests.len(),
                anchor_idx.len(),
                deltas.len()
            )));
        }
        let mut cascades = Vec::with_capacity(forests.len());
        for (c, ((trees, anchors), deltas)) in
            forests.into_iter().zip(anchor_idx).zip(deltas).enumerate()
        {
            if anchors.len() != deltas.len() {
                return Err(r.error(format!("cascade {c}: anchors and deltas differ in length")));
            }
            if let Some(a) = anchors.iter().find(|&&a| a >= NUM_PARTS) {
                return Err(r.error(format!("cascade {c}: anchor index {a} out of range")));
            }
            let n_features = anchors.len();
            for (t, tree) in trees.iter().enumerate() {
                if tree
                    .splits
                    .iter()
                    .any(|s| s.idx1 >= n_features || s.idx2 >= n_features)
                {
                    return Err(r.error(format!(
                        "cascade {c} tree {t}: split feature index out of range"
                    )));
                }
            }
            cascades.push(Cascade {
                trees,
                anchor_idx: anchors,
                deltas,
            });
        }
        Ok(Self {
            initial_shape,
            cascades,
        })
    }

    /// The five landmarks of the face in `rect`, as dlib's integer points `[x, y]`.
    pub fn predict(&self, image: &RgbImage, rect: DlibRect) -> [[i64; 2]; NUM_PARTS] {
        let (w, h) = (i64::from(image.width()), i64::from(image.height()));
        let intensity = |x: i64, y: i64| -> f32 {
            if (0..w).contains(&x) && (0..h).contains(&y) {
                // dlib's rgb→gray assign_pixel: integer mean of the three channels.
                let p = image.get_pixel(x as u32, y as u32).0;
                ((u32::from(p[0]) + u32::from(p[1]) + u32::from(p[2])) / 3) as f32
            } else {
                0.0
            }
        };
        let mut current = self.initial_shape;
        let mut features = Vec::new();
        for cascade in &self.cascades {
            let m = similarity_2x2(&self.initial_shape, &current);
            features.clear();
            features.extend(
                cascade
                    .anchor_idx
                    .iter()
                    .zip(&cascade.deltas)
                    .map(|(&a, d)| {
                        // float32 as dlib: matrix<float,2,2> * vector<float,2> + location.
                        let qx = (m[0][0] * d[0] + m[0][1] * d[1]) + current[2 * a];
                        let qy = (m[1][0] * d[0] + m[1][1] * d[1]) + current[2 * a + 1];
                        let [px, py] = unnormalize(rect, qx, qy);
                        intensity(px, py)
                    }),
            );
            for tree in &cascade.trees {
                for (c, l) in current.iter_mut().zip(tree.leaf(&features)) {
                    *c += l;
                }
            }
        }
        std::array::from_fn(|k| unnormalize(rect, current[2 * k], current[2 * k + 1]))
    }
}

fn read_tree(r: &mut Reader<'_>) -> Result<Tree> {
    let splits = r.read_vec(|r| {
        Ok(Split {
            idx1: r.read_usize()?,
            idx2: r.read_usize()?,
            thresh: r.read_f32()?,
        })
    })?;
    let leaf_matrices = r.read_vec(Reader::read_matrix_f32)?;
    if leaf_matrices.len() != splits.len() + 1 {
        return Err(r.error(format!(
            "tree with {} splits has {} leaves",
            splits.len(),
            leaf_matrices.len()
        )));
    }
    let mut leaves = Vec::with_capacity(leaf_matrices.len() * 2 * NUM_PARTS);
    for (_, _, values) in leaf_matrices {
        if values.len() != 2 * NUM_PARTS {
            return Err(r.error(format!(
                "leaf of {} values, expected {}",
                values.len(),
                2 * NUM_PARTS
            )));
        }
        leaves.extend(values);
    }
    Ok(Tree { splits, leaves })
}

/// Maps normalised shape coordinates to image pixels: (0,0) → (left,top), (1,1) →
/// (right,bottom), in double, then dlib's point rounding.
fn unnormalize(rect: DlibRect, x: f32, y: f32) -> [i64; 2] {
    let px = rect.left as f64 + f64::from(x) * (rect.right - rect.left) as f64;
    let py = rect.top as f64 + f64::from(y) * (rect.bottom - rect.top) as f64;
    [round_half_up(px), round_half_up(py)]
}

/// dlib's double→long point conversion.
pub(crate) fn round_half_up(v: f64) -> i64 {
    (v + 0.5).floor() as i64
}

/// The 2×2 part of the similarity transform from `from` to `to` (flat x,y pairs), cast
/// to float as dlib's `find_tform_between_shapes` caller does.
fn similarity_2x2(from: &[f32; 2 * NUM_PARTS], to: &[f32; 2 * NUM_PARTS]) -> [[f32; 2]; 2] {
    let pts = |s: &[f32; 2 * NUM_PARTS]| -> [[f64; 2]; NUM_PARTS] {
        std::array::from_fn(|k| [f64::from(s[2 * k]), f64::from(s[2 * k + 1])])
    };
    let (m, _) = find_similarity_transform(&pts(from), &pts(to));
    m.map(|row| row.map(|v| v as f32))
}

/// Least-squares similarity transform (Umeyama) mapping `from` onto `to`, in double:
/// returns `(c·R, t)` with `to ≈ c·R·from + t`.
///
/// For 2-D points Umeyama's SVD solution has a closed form: with `cov = [[a, b], [c, d]]`
/// the optimal rotation has `cos ∝ a + d`, `sin ∝ c − b`, and `trace(D·S)` (singular
/// values with the reflection fix-up) equals `hypot(a + d, c − b)`, so
/// `c·R = [[a+d, b−c], [c−b, a+d]] / σ²_from`. It agrees with dlib's SVD route to
/// rounding error.
pub(crate) fn find_similarity_transform<const N: usize>(
    from: &[[f64; 2]; N],
    to: &[[f64; 2]; N],
) -> ([[f64; 2]; 2], [f64; 2]) {
    let n = N as f64;
    let mean = |p: &[[f64; 2]; N]| {
        let s = p.iter().fold([0.0, 0.0], |a, q| [a[0] + q[0], a[1] + q[1]]);
        [s[0] / n, s[1] / n]
    };
    let (mf, mt) = (mean(from), mean(to));
    let mut sigma_from = 0.0;
    let mut cov = [[0.0f64; 2]; 2];
    for (f, t) in from.iter().zip(to) {
        let df = [f[0] - mf[0], f[1] - mf[1]];
        let dt = [t[0] - mt[0], t[1] - mt[1]];
        sigma_from += df[0] * df[0] + df[1] * df[1];
        for i in 0..2 {
            for j in 0..2 {
                cov[i][j] += dt[i] * df[j];
            }
        }
    }
    sigma_from /= n;
    let [[a, b], [c, d]] = cov.map(|row| row.map(|v| v / n));
    let m = if sigma_from != 0.0 {
        let k = 1.0 / sigma_from;
        [[k * (a + d), k * (b - c)], [k * (c - b), k * (a + d)]]
    } else {
        // dlib: c = 1 and R from the SVD; with σ_from = 0 the points coincide, so the
        // rotation is the identity.
        [[1.0, 0.0], [0.0, 1.0]]
    };
    let t = [
        mt[0] - (m[0][0] * mf[0] + m[0][1] * mf[1]),
        mt[1] - (m[1][0] * mf[0] + m[1][1] * mf[1]),
    ];
    (m, t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn model_path() -> PathBuf {
        std::env::var_os("MODELS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/models"))
            .join("shape_predictor_5_face_landmarks.dat")
    }

    #[test]
    fn real_model_matches_known_checksums() {
        let sp = ShapePredictor::load(&model_path()).expect("load shape predictor");
        assert_eq!(sp.cascades.len(), 15);
        assert!(sp.cascades.iter().all(|c| c.trees.len() == 500));
        assert!(
            sp.cascades
                .iter()
                .flat_map(|c| &c.trees)
                .all(|t| t.splits.len() == 15 && t.leaves.len() == 16 * 10)
        );
        assert!(
            sp.cascades
                .iter()
                .all(|c| c.anchor_idx.len() == 800 && c.deltas.len() == 800)
        );

        let trees = || sp.cascades.iter().flat_map(|c| &c.trees);
        let leaf_sum: f64 = trees().flat_map(|t| &t.leaves).map(|&v| f64::from(v)).sum();
        let thresh_sum: f64 = trees()
            .flat_map(|t| &t.splits)
            .map(|s| f64::from(s.thresh))
            .sum();
        let idx_sum: usize = trees()
            .flat_map(|t| &t.splits)
            .map(|s| s.idx1 + s.idx2)
            .sum();
        let delta_sum: f64 = sp
            .cascades
            .iter()
            .flat_map(|c| &c.deltas)
            .map(|d| f64::from(d[0]) + f64::from(d[1]))
            .sum();
        let anchor_sum: usize = sp.cascades.iter().flat_map(|c| &c.anchor_idx).sum();
        assert!((leaf_sum - -7.3866940486568735).abs() < 1e-9, "{leaf_sum}");
        assert!(
            (thresh_sum - 8157.447776782268).abs() < 1e-6,
            "{thresh_sum}"
        );
        assert_eq!(idx_sum, 90_411_347);
        assert!((delta_sum - 412.3072624504566).abs() < 1e-9, "{delta_sum}");
        assert_eq!(anchor_sum, 28_251);

        let first = sp.cascades[0].trees[0].splits[0];
        assert_eq!((first.idx1, first.idx2), (346, 714));
        assert_eq!(first.thresh, -0.697_510_5_f32);
        assert_eq!(sp.initial_shape[0], 0.776_251_7_f32);
        assert_eq!(sp.initial_shape[9], 0.657_607_26_f32);
    }

    #[test]
    fn similarity_recovers_a_known_transform() {
        let from = [[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 1.0], [-1.0, 4.0]];
        let (s, th, t) = (2.5f64, 0.3f64, [4.0, -7.0]);
        let to = from.map(|p| {
            [
                s * (th.cos() * p[0] - th.sin() * p[1]) + t[0],
                s * (th.sin() * p[0] + th.cos() * p[1]) + t[1],
            ]
        });
        let (m, tt) = find_similarity_transform(&from, &to);
        let expect = [[s * th.cos(), -s * th.sin()], [s * th.sin(), s * th.cos()]];
        for i in 0..2 {
            for j in 0..2 {
                assert!((m[i][j] - expect[i][j]).abs() < 1e-12);
            }
            assert!((tt[i] - t[i]).abs() < 1e-12);
        }
    }

    #[test]
    fn similarity_of_a_mirrored_set_is_still_a_rotation() {
        // Reflected points: det(cov) < 0, Umeyama flips the smaller singular value.
        let from = [[0.0, 0.0], [2.0, 0.0], [0.0, 1.0]];
        let to = [[0.0, 0.0], [-2.0, 0.0], [0.0, 1.0]];
        let (m, _) = find_similarity_transform(&from, &to);
        let det = m[0][0] * m[1][1] - m[0][1] * m[1][0];
        assert!(det >= 0.0, "{m:?}");
        assert!((m[0][0] - m[1][1]).abs() < 1e-12 && (m[0][1] + m[1][0]).abs() < 1e-12);
    }

    #[test]
    fn rounding_is_dlibs() {
        assert_eq!(round_half_up(2.5), 3);
        assert_eq!(round_half_up(-2.5), -2);
        assert_eq!(round_half_up(-2.6), -3);
    }
}
