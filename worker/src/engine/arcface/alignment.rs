//! ArcFace alignment, as InsightFace's `face_align.norm_crop`: a similarity transform
//! (rotation, uniform scale, translation) fitted by least squares from the 5 keypoints to
//! a fixed template, then the photo warped into a 112×112 crop with the pixels OpenCV's
//! `warpAffine` (bilinear, constant zero border) gives, so that the network sees the
//! crops it was trained and checked on.

use image::{Rgb, RgbImage};

use crate::engine::{EngineError, Result};

/// Side of the aligned crop.
pub const CROP_SIZE: u32 = 112;

/// Where the keypoints land in the 112×112 crop (x, y): left eye, right eye, nose tip,
/// left and right mouth corners ("left" = image left). InsightFace's `arcface_dst`, a
/// float32 array: the fit sees these values rounded to `f32`, so they are kept as `f32`
/// (as `f64` literals they move the transform by about 1e-5 and change crops).
pub const TEMPLATE: [[f32; 2]; 5] = [
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
];

/// A 2×3 affine matrix `[[a, b, c], [d, e, f]]`: `(x, y) ↦ (a·x + b·y + c, d·x + e·y + f)`.
pub type Affine = [[f64; 3]; 2];

/// The least-squares similarity transform taking `src` onto `dst`.
///
/// skimage's `SimilarityTransform.estimate` (Umeyama 1991, with the reflection guard)
/// minimises `Σ|dstᵢ − (s·R·srcᵢ + t)|²` over proper rotations R, s > 0 and t. In 2-D,
/// `s·R` is multiplication by a complex number z, and the minimiser has the closed form
/// `z = Σ conj(s̃ᵢ)·d̃ᵢ / Σ|s̃ᵢ|²` on the centred points, `t = d̄ − z·s̄`: the same
/// transform, without an SVD. Fails only when all source points coincide.
pub fn similarity_transform(src: &[[f64; 2]], dst: &[[f64; 2]]) -> Result<Affine> {
    assert_eq!(src.len(), dst.len());
    let n = src.len() as f64;
    let mean = |p: &[[f64; 2]]| {
        let (sx, sy) = p.iter().fold((0.0, 0.0), |(x, y), q| (x + q[0], y + q[1]));
        (sx / n, sy / n)
    };
    let (smx, smy) = mean(src);
    let (dmx, dmy) = mean(dst);
    let (mut re, mut im, mut norm) = (0.0, 0.0, 0.0);
    for (s, d) in src.iter().zip(dst) {
        let (sx, sy) = (s[0] - smx, s[1] - smy);
        let (dx, dy) = (d[0] - dmx, d[1] - dmy);
        // conj(s)·d = (sx − i·sy)(dx + i·dy)
        re += sx * dx + sy * dy;
        im += sx * dy - sy * dx;
        norm += sx * sx + sy * sy;
    }
    if norm <= 0.0 || !norm.is_finite() {
        return Err(EngineError::Invalid(
            "keypoints coincide or are not finite: no alignment".into(),
        ));
    }
    let (a, b) = (re / norm, im / norm);
    Ok([
        [a, -b, dmx - (a * smx - b * smy)],
        [b, a, dmy - (b * smx + a * smy)],
    ])
}

/// The transform `norm_crop` uses for these keypoints.
pub fn norm_crop_matrix(keypoints: &[[f32; 2]; 5]) -> Result<Affine> {
    let to_f64 = |[x, y]: [f32; 2]| [f64::from(x), f64::from(y)];
    similarity_transform(&keypoints.map(to_f64), &TEMPLATE.map(to_f64))
}

/// InsightFace's `norm_crop`: the 112×112 aligned crop of the face with these keypoints.
pub fn norm_crop(image: &RgbImage, keypoints: &[[f32; 2]; 5]) -> Result<RgbImage> {
    Ok(warp_affine(
        image,
        &norm_crop_matrix(keypoints)?,
        CROP_SIZE,
        CROP_SIZE,
    ))
}

/// OpenCV's `invertAffineTransform` (in `f64`, a singular matrix gives zeros as there).
pub fn invert(m: &Affine) -> Affine {
    let det = m[0][0] * m[1][1] - m[0][1] * m[1][0];
    let d = if det != 0.0 { 1.0 / det } else { 0.0 };
    let (a11, a22) = (m[1][1] * d, m[0][0] * d);
    let (a12, a21) = (-m[0][1] * d, -m[1][0] * d);
    let b1 = -a11 * m[0][2] - a12 * m[1][2];
    let b2 = -a21 * m[0][2] - a22 * m[1][2];
    [[a11, a12, b1], [a21, a22, b2]]
}

/// `cv2.warpAffine(image, m, (width, height))` with `INTER_LINEAR` and a zero constant
/// border, as OpenCV 5 computes it for 8-bit images: the inverse matrix in `f32`, per
/// row `y·m₁ + m₂` in `f32`, then a fused multiply-add for `x·m₀`; the floor gives the
/// pixel, the remainder the weights; `f32` linear interpolation between the 4 neighbours
/// (outside ones count as 0), rounded half to even. This reproduced cv2's crops byte for
/// byte on the fixture faces (an older fixed-point formula with 1/32-pixel weights
/// differed by up to 4 grey levels from OpenCV 5.0).
pub fn warp_affine(image: &RgbImage, m: &Affine, width: u32, height: u32) -> RgbImage {
    let inv = invert(m).map(|row| row.map(|v| v as f32));
    let (iw, ih) = (image.width() as i64, image.height() as i64);
    let src = image.as_raw();
    let pixel = |x: i64, y: i64| -> [f32; 3] {
        if x < 0 || y < 0 || x >= iw || y >= ih {
            return [0.0; 3];
        }
        let at = ((y * iw + x) * 3) as usize;
        [
            f32::from(src[at]),
            f32::from(src[at + 1]),
            f32::from(src[at + 2]),
        ]
    };
    let mut out = RgbImage::new(width, height);
    for y in 0..height {
        let yf = y as f32;
        let row_x = yf * inv[0][1] + inv[0][2];
        let row_y = yf * inv[1][1] + inv[1][2];
        for x in 0..width {
            let xf = x as f32;
            let sx = xf.mul_add(inv[0][0], row_x);
            let sy = xf.mul_add(inv[1][0], row_y);
            if !sx.is_finite() || !sy.is_finite() {
                continue;
            }
            let (fx, fy) = (sx.floor(), sy.floor());
            let (alpha, beta) = (sx - fx, sy - fy);
            let (x0, y0) = (fx as i64, fy as i64);
            let (p00, p01) = (pixel(x0, y0), pixel(x0 + 1, y0));
            let (p10, p11) = (pixel(x0, y0 + 1), pixel(x0 + 1, y0 + 1));
            let mut px = [0u8; 3];
            for (c, out) in px.iter_mut().enumerate() {
                let v0 = p00[c] + alpha * (p01[c] - p00[c]);
                let v1 = p10[c] + alpha * (p11[c] - p10[c]);
                let v = v0 + beta * (v1 - v0);
                *out = v.round_ties_even().clamp(0.0, 255.0) as u8;
            }
            out.put_pixel(x, y, Rgb(px));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(m: &Affine, p: [f64; 2]) -> [f64; 2] {
        [
            m[0][0] * p[0] + m[0][1] * p[1] + m[0][2],
            m[1][0] * p[0] + m[1][1] * p[1] + m[1][2],
        ]
    }

    /// Points made by a known similarity are fitted back exactly, also when the source
    /// is mirrored (then the fit stays a rotation: no reflection).
    #[test]
    fn recovers_a_known_similarity_and_never_reflects() {
        let (s, th, tx, ty) = (0.37f64, 0.4f64, 12.0, -7.5);
        let m: Affine = [
            [s * th.cos(), -s * th.sin(), tx],
            [s * th.sin(), s * th.cos(), ty],
        ];
        let src = [
            [100.0, 120.0],
            [180.0, 118.0],
            [140.0, 160.0],
            [110.0, 200.0],
            [170.0, 198.0],
        ];
        let dst = src.map(|p| apply(&m, p));
        let fit = similarity_transform(&src, &dst).unwrap();
        for r in 0..2 {
            for c in 0..3 {
                assert!((fit[r][c] - m[r][c]).abs() < 1e-9, "{fit:?} vs {m:?}");
            }
        }
        let mirrored = src.map(|[x, y]| [-x, y]);
        let fit = similarity_transform(&mirrored, &dst).unwrap();
        let det = fit[0][0] * fit[1][1] - fit[0][1] * fit[1][0];
        assert!(det > 0.0, "a reflection: {fit:?}");
        assert!(similarity_transform(&[[1.0, 1.0]; 5], &dst).is_err());
    }

    #[test]
    fn invert_undoes_the_matrix() {
        let m: Affine = [[0.8, -0.3, 5.0], [0.3, 0.8, -2.0]];
        let inv = invert(&m);
        let p = apply(&inv, apply(&m, [13.0, 29.0]));
        assert!((p[0] - 13.0).abs() < 1e-12 && (p[1] - 29.0).abs() < 1e-12);
    }

    /// The identity copies pixels; a shift by half a pixel averages neighbours (ties
    /// to even); pixels mapped from outside the image are black.
    #[test]
    fn warp_interpolates_and_pads_with_black() {
        let img = RgbImage::from_fn(4, 3, |x, y| Rgb([(10 * x + y) as u8, 200, (x * 3) as u8]));
        let same = warp_affine(&img, &[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], 4, 3);
        assert_eq!(same, img);
        // dst(x, y) = src(x + 0.5, y): the forward matrix shifts left by half a pixel.
        let half = warp_affine(&img, &[[1.0, 0.0, -0.5], [0.0, 1.0, 0.0]], 4, 3);
        assert_eq!(half.get_pixel(0, 1).0, [6, 200, 2]); // (1 + 11) / 2 = 6; (0 + 3) / 2 = 1.5 → 2
        assert_eq!(half.get_pixel(3, 0).0, [15, 100, 4]); // half of the last column, half black
        let shifted = warp_affine(&img, &[[1.0, 0.0, 10.0], [0.0, 1.0, 0.0]], 4, 3);
        assert!(shifted.pixels().all(|p| p.0 == [0, 0, 0]));
    }
}
