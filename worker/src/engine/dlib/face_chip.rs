//! Aligned face chips, pixel-exact with `dlib.get_face_chip(img, shape, 150, 0.25)`:
//! `get_face_chip_details` (similarity fit of the 5 landmarks onto dlib's template) and
//! `extract_image_chips` (pyramid_down<2> for large faces, bilinear sampling that
//! truncates and leaves out-of-range pixels black).

use image::{Rgb, RgbImage};

use super::shape_predictor::{NUM_PARTS, find_similarity_transform};

/// Side of the square chip the descriptor network expects.
pub const CHIP_SIZE: u32 = 150;
/// Border around the template face, as a fraction of its size.
pub const CHIP_PADDING: f64 = 0.25;

/// dlib's 5-point template (normalised coordinates) for `get_face_chip_details`.
const TEMPLATE: [[f64; 2]; NUM_PARTS] = [
    [0.8595674595992, 0.2134981538014],
    [0.6460604764104, 0.2289674387677],
    [0.1205750620789, 0.2137274526848],
    [0.3340850613712, 0.2290642403242],
    [0.4901123135679, 0.6277975316475],
];

/// A dlib `drectangle`: real corners, right/bottom inclusive (width = right − left + 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DRect {
    pub left: f64,
    pub top: f64,
    pub right: f64,
    pub bottom: f64,
}

impl DRect {
    fn is_empty(&self) -> bool {
        self.top > self.bottom || self.left > self.right
    }

    fn area(&self) -> f64 {
        if self.is_empty() {
            0.0
        } else {
            (self.right - self.left + 1.0) * (self.bottom - self.top + 1.0)
        }
    }

    fn center(&self) -> [f64; 2] {
        [
            (self.left + self.right) / 2.0,
            (self.top + self.bottom) / 2.0,
        ]
    }

    /// `pyramid_down<2>::rect_down`.
    fn down(&self) -> DRect {
        DRect {
            left: self.left / 2.0 - 1.25,
            top: self.top / 2.0 - 0.75,
            right: self.right / 2.0 - 1.25,
            bottom: self.bottom / 2.0 - 0.75,
        }
    }

    fn translate(&self, dx: f64, dy: f64) -> DRect {
        DRect {
            left: self.left + dx,
            top: self.top + dy,
            right: self.right + dx,
            bottom: self.bottom + dy,
        }
    }
}

/// dlib's `chip_details` for a square chip: the source rectangle (before rotation) and
/// the rotation angle in radians.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChipDetails {
    pub rect: DRect,
    pub angle: f64,
    pub size: u32,
}

/// `get_face_chip_details(det, size, padding)` for the 5-point model.
pub fn chip_details(parts: &[[i64; 2]; NUM_PARTS], size: u32, padding: f64) -> ChipDetails {
    let s = f64::from(size);
    let chip_pts = TEMPLATE.map(|t| {
        [
            (padding + t[0]) / (2.0 * padding + 1.0) * s,
            (padding + t[1]) / (2.0 * padding + 1.0) * s,
        ]
    });
    let img_pts = parts.map(|p| [p[0] as f64, p[1] as f64]);
    let (m, t) = find_similarity_transform(&chip_pts, &img_pts);
    // p = A·(1, 0): the first column.
    let (px, py) = (m[0][0], m[1][0]);
    let angle = py.atan2(px);
    let scale = px.hypot(py);
    let c = [s / 2.0, s / 2.0];
    let center = [
        m[0][0] * c[0] + m[0][1] * c[1] + t[0],
        m[1][0] * c[0] + m[1][1] * c[1] + t[1],
    ];
    let (w, h) = (s * scale, s * scale);
    ChipDetails {
        rect: DRect {
            left: center[0] - (w - 1.0) / 2.0,
            top: center[1] - (h - 1.0) / 2.0,
            right: center[0] + (w - 1.0) / 2.0,
            bottom: center[1] + (h - 1.0) / 2.0,
        },
        angle,
        size,
    }
}

/// The 150×150 aligned chip of the face with landmarks `parts`, as
/// `dlib.get_face_chip(img, shape, 150, 0.25)`.
pub fn face_chip(image: &RgbImage, parts: &[[i64; 2]; NUM_PARTS]) -> RgbImage {
    extract_chip(image, &chip_details(parts, CHIP_SIZE, CHIP_PADDING))
}

/// `extract_image_chip` with bilinear interpolation for one chip.
pub fn extract_chip(image: &RgbImage, details: &ChipDetails) -> RgbImage {
    let size = details.size;
    let area_limit = f64::from(size) * f64::from(size);
    let mut chip = RgbImage::new(size, size);

    // Pyramid depth and the crop margin it needs.
    let mut depth = 0usize;
    let mut grow = 2.0;
    let mut rr = details.rect.down();
    while rr.area() > area_limit {
        rr = rr.down();
        depth += 1;
        grow = grow * 2.0 + 2.0;
    }

    // Bounding box of the rotated rect, grown, clipped to the image, rounded.
    let rect = details.rect;
    let center = rect.center();
    let (sa, ca) = details.angle.sin_cos();
    let rotate = |p: [f64; 2], c: [f64; 2]| -> [f64; 2] {
        let (dx, dy) = (p[0] - c[0], p[1] - c[1]);
        [ca * dx - sa * dy + c[0], sa * dx + ca * dy + c[1]]
    };
    let corners = [
        [rect.left, rect.top],
        [rect.right, rect.top],
        [rect.right, rect.bottom],
        [rect.left, rect.bottom],
    ]
    .map(|p| rotate(p, center));
    let (mut l, mut t, mut r, mut b) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
    for p in corners {
        l = l.min(p[0]);
        t = t.min(p[1]);
        r = r.max(p[0]);
        b = b.max(p[1]);
    }
    let (iw, ih) = (f64::from(image.width()), f64::from(image.height()));
    let bb = DRect {
        left: (l - grow).max(0.0),
        top: (t - grow).max(0.0),
        right: (r + grow).min(iw - 1.0),
        bottom: (b + grow).min(ih - 1.0),
    };
    if bb.is_empty() {
        return chip;
    }
    // The values are ≥ 0 here, so lround and dlib's floor(x + 0.5) agree.
    let (bl, bt, br, bb_) = (
        bb.left.round() as u32,
        bb.top.round() as u32,
        bb.right.round() as u32,
        bb.bottom.round() as u32,
    );
    if br < bl || bb_ < bt {
        return chip;
    }
    let sub = image::imageops::crop_imm(image, bl, bt, br - bl + 1, bb_ - bt + 1).to_image();

    // Which pyramid level to sample from.
    let mut r2 = rect.translate(-f64::from(bl), -f64::from(bt));
    let mut level: isize = -1;
    while r2.down().area() > area_limit {
        level += 1;
        r2 = r2.down();
    }
    let mut src = sub;
    for _ in 0..=level {
        src = pyramid_down2(&src);
    }
    debug_assert!(level < depth as isize);

    // Affine map chip pixel → source pixel through three corners of the rotated r2:
    // (0,0) → tl, (size−1, 0) → tr, (0, size−1) → bl.
    let c2 = r2.center();
    let tl = rotate([r2.left, r2.top], c2);
    let tr = rotate([r2.right, r2.top], c2);
    let blc = rotate([r2.left, r2.bottom], c2);
    let n = f64::from(size - 1);
    let ax = [(tr[0] - tl[0]) / n, (tr[1] - tl[1]) / n];
    let ay = [(blc[0] - tl[0]) / n, (blc[1] - tl[1]) / n];

    let (sw, sh) = (i64::from(src.width()), i64::from(src.height()));
    for row in 0..size {
        for col in 0..size {
            let (c, r) = (f64::from(col), f64::from(row));
            let px = ax[0] * c + ay[0] * r + tl[0];
            let py = ax[1] * c + ay[1] * r + tl[1];
            let (x0, y0) = (px.floor() as i64, py.floor() as i64);
            if x0 < 0 || y0 < 0 || x0 + 1 >= sw || y0 + 1 >= sh {
                continue; // dlib leaves such pixels at 0
            }
            let fx = px - x0 as f64;
            let fy = py - y0 as f64;
            let (x0, y0) = (x0 as u32, y0 as u32);
            let p00 = src.get_pixel(x0, y0).0;
            let p01 = src.get_pixel(x0 + 1, y0).0;
            let p10 = src.get_pixel(x0, y0 + 1).0;
            let p11 = src.get_pixel(x0 + 1, y0 + 1).0;
            let px = std::array::from_fn(|k| {
                let v = (1.0 - fy) * ((1.0 - fx) * f64::from(p00[k]) + fx * f64::from(p01[k]))
                    + fy * ((1.0 - fx) * f64::from(p10[k]) + fx * f64::from(p11[k]));
                v as u8 // truncation, like dlib's static_cast<unsigned char>
            });
            chip.put_pixel(col, row, Rgb(px));
        }
    }
    chip
}

/// dlib's `pyramid_down<2>` for RGB: separable 1-4-6-4-1 filter, keep every other
/// row/column, integer arithmetic with a truncating `/256`.
fn pyramid_down2(img: &RgbImage) -> RgbImage {
    let (nc, nr) = (img.width() as usize, img.height() as usize);
    if nr <= 8 || nc <= 8 {
        return RgbImage::new(0, 0);
    }
    let (out_r, out_c) = ((nr - 3) / 2, (nc - 3) / 2);
    let src = img.as_raw();
    let px = |r: usize, c: usize, k: usize| u16::from(src[(r * nc + c) * 3 + k]);
    let mut tmp = vec![0u16; nr * out_c * 3];
    for r in 0..nr {
        for c in 0..out_c {
            for k in 0..3 {
                tmp[(r * out_c + c) * 3 + k] = px(r, 2 * c, k)
                    + 4 * px(r, 2 * c + 1, k)
                    + 6 * px(r, 2 * c + 2, k)
                    + 4 * px(r, 2 * c + 3, k)
                    + px(r, 2 * c + 4, k);
            }
        }
    }
    let t = |r: usize, c: usize, k: usize| tmp[(r * out_c + c) * 3 + k];
    let mut out = RgbImage::new(out_c as u32, out_r as u32);
    for r in 0..out_r {
        for c in 0..out_c {
            let p = std::array::from_fn(|k| {
                let v = t(2 * r, c, k)
                    + 4 * t(2 * r + 1, c, k)
                    + 6 * t(2 * r + 2, c, k)
                    + 4 * t(2 * r + 3, c, k)
                    + t(2 * r + 4, c, k);
                (v / 256) as u8
            });
            out.put_pixel(c as u32, r as u32, Rgb(p));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// dlib's `get_face_chip_details` on the 5 landmarks of insightface's Tom Hanks
    /// example photo.
    #[test]
    fn chip_details_match_dlib_on_a_known_example() {
        let parts = [[78, 49], [65, 51], [28, 50], [43, 52], [59, 84]];
        let d = chip_details(&parts, 150, 0.25);
        let expect = [2.47050, 17.56359, 110.18188, 125.27498];
        let got = [d.rect.left, d.rect.top, d.rect.right, d.rect.bottom];
        for (g, e) in got.iter().zip(expect) {
            assert!((g - e).abs() < 1e-5, "{got:?} vs {expect:?}");
        }
        assert!((d.angle - -0.0705932).abs() < 1e-7, "{}", d.angle);
    }

    #[test]
    fn template_points_land_on_the_template() {
        // Parts exactly at the scaled template → identity mapping, angle 0, width 150.
        let parts = TEMPLATE.map(|t| [(t[0] * 1000.0) as i64, (t[1] * 1000.0) as i64]);
        let d = chip_details(&parts, 150, 0.25);
        assert!(d.angle.abs() < 2e-3);
        let width = d.rect.right - d.rect.left + 1.0;
        assert!((width - 1500.0).abs() < 5.0, "{width}");
    }

    #[test]
    fn pyramid_down_of_a_constant_image_is_constant_with_dlibs_size() {
        let img = RgbImage::from_pixel(21, 12, Rgb([200, 100, 7]));
        let down = pyramid_down2(&img);
        assert_eq!(down.dimensions(), (9, 4));
        assert!(down.pixels().all(|p| p.0 == [200, 100, 7]));
        assert_eq!(pyramid_down2(&RgbImage::new(8, 100)).dimensions(), (0, 0));
    }

    #[test]
    fn chip_outside_the_image_is_black_and_inside_is_sampled() {
        let img = RgbImage::from_pixel(120, 120, Rgb([90, 60, 30]));
        let parts = [[78, 49], [65, 51], [28, 50], [43, 52], [59, 84]];
        let chip = face_chip(&img, &parts);
        assert_eq!(chip.dimensions(), (150, 150));
        assert_eq!(chip.get_pixel(75, 75).0, [90, 60, 30]);
        // The chip rect's left edge is at x ≈ 2.5, its top-left corner lies outside the
        // rotated, shifted image only if sampling ran off the 120×120 image; the bottom
        // rows (y ≈ 125 > 119) must be black.
        assert_eq!(chip.get_pixel(75, 149).0, [0, 0, 0]);
    }
}
