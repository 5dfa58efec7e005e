//! Area-average downscaling of an RGB image fed row by row, so that a large photo never
//! needs to be held whole: memory is the output plus two accumulator rows.
//!
//! Each input pixel covers `out/in` of an output pixel along each axis and adds its
//! value times the covered fraction (at most two output pixels per axis, since this
//! only shrinks), as PIL's `BOX` filter and OpenCV's `INTER_AREA` average.

use image::RgbImage;
use rayon::prelude::*;

/// Where one input pixel (or row) goes: the first output index, its weight there, and
/// the weight carried to the next output index (0 when it lies in one).
#[derive(Debug, Clone, Copy)]
struct Span {
    first: usize,
    w0: f32,
    w1: f32,
}

/// Spans of `len` input pixels onto `out` output pixels (`out <= len`), with exact
/// integer boundaries: input `i` covers `[i·out, (i+1)·out)` in units of `1/len` output
/// pixels.
fn spans(len: u32, out: u32) -> Vec<Span> {
    let (len, out) = (u64::from(len), u64::from(out));
    (0..len)
        .map(|i| {
            let (start, end) = (i * out, (i + 1) * out);
            let first = start / len;
            let boundary = (first + 1) * len;
            if end <= boundary {
                Span {
                    first: first as usize,
                    w0: out as f32 / len as f32,
                    w1: 0.0,
                }
            } else {
                Span {
                    first: first as usize,
                    w0: (boundary - start) as f32 / len as f32,
                    w1: (end - boundary) as f32 / len as f32,
                }
            }
        })
        .collect()
}

/// Shrinks a `width × height` RGB image to `out_w × out_h`, one input row at a time.
pub struct RowDownscaler {
    width: u32,
    out_w: u32,
    out_h: u32,
    columns: Vec<Span>,
    rows: Vec<Span>,
    /// The next input row expected.
    next_row: u32,
    /// Accumulators of output rows `pending` and `pending + 1`.
    pending: usize,
    acc: [Vec<f32>; 2],
    /// The current input row reduced horizontally.
    reduced: Vec<f32>,
    out: Vec<u8>,
}

impl RowDownscaler {
    /// `out_w ≤ width` and `out_h ≤ height`, both at least 1.
    pub fn new(width: u32, height: u32, out_w: u32, out_h: u32) -> Self {
        assert!(
            (1..=width).contains(&out_w) && (1..=height).contains(&out_h),
            "only shrinks"
        );
        let row_len = out_w as usize * 3;
        Self {
            width,
            out_w,
            out_h,
            columns: spans(width, out_w),
            rows: spans(height, out_h),
            next_row: 0,
            pending: 0,
            acc: [vec![0.0; row_len], vec![0.0; row_len]],
            reduced: vec![0.0; row_len],
            out: Vec::with_capacity(row_len * out_h as usize),
        }
    }

    /// Adds the next input row: `width` RGB pixels.
    pub fn push_row(&mut self, rgb: &[u8]) {
        debug_assert_eq!(rgb.len(), self.width as usize * 3);
        let Some(&row) = self.rows.get(self.next_row as usize) else {
            return;
        };
        self.next_row += 1;
        while row.first > self.pending {
            self.flush_pending();
        }
        reduce_row(&self.columns, rgb, &mut self.reduced);
        for (i, &v) in self.reduced.iter().enumerate() {
            self.acc[0][i] += v * row.w0;
        }
        if row.w1 > 0.0 {
            for (i, &v) in self.reduced.iter().enumerate() {
                self.acc[1][i] += v * row.w1;
            }
        }
    }

    /// Writes output row `pending` and moves on to the next.
    fn flush_pending(&mut self) {
        if self.pending < self.out_h as usize {
            self.out.extend(self.acc[0].iter().map(|&v| to_u8(v)));
        }
        self.acc.swap(0, 1);
        self.acc[1].fill(0.0);
        self.pending += 1;
    }

    /// The shrunk image; `None` when fewer rows than the height were pushed.
    pub fn finish(mut self) -> Option<RgbImage> {
        if self.next_row as usize != self.rows.len() {
            return None;
        }
        while self.pending < self.out_h as usize {
            self.flush_pending();
        }
        RgbImage::from_raw(self.out_w, self.out_h, self.out)
    }
}

/// One input row reduced horizontally into `reduced` (`out_w` RGB values).
fn reduce_row(columns: &[Span], rgb: &[u8], reduced: &mut [f32]) {
    reduced.fill(0.0);
    for (px, col) in rgb.chunks_exact(3).zip(columns) {
        let at = col.first * 3;
        for (c, &v) in px.iter().enumerate() {
            let v = f32::from(v);
            reduced[at + c] += v * col.w0;
            if col.w1 > 0.0 {
                reduced[at + 3 + c] += v * col.w1;
            }
        }
    }
}

fn to_u8(v: f32) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

/// `img` shrunk to `out_w × out_h` (each at most the image's own side, at least 1): the
/// same numbers as [`RowDownscaler`] fed every row, computed in parallel for an image
/// already in memory (SCRFD's overview of every photo). The rows are reduced
/// horizontally side by side, then each output row sums its input rows in their order.
pub fn shrink(img: &RgbImage, out_w: u32, out_h: u32) -> RgbImage {
    if img.width() == 0 || img.height() == 0 {
        return img.clone();
    }
    let (out_w, out_h) = (out_w.clamp(1, img.width()), out_h.clamp(1, img.height()));
    let columns = spans(img.width(), out_w);
    let rows = spans(img.height(), out_h);
    let row_len = out_w as usize * 3;
    let mut reduced = vec![0.0f32; img.height() as usize * row_len];
    reduced
        .par_chunks_mut(row_len)
        .zip(img.as_raw().par_chunks(img.width() as usize * 3))
        .for_each(|(out, rgb)| reduce_row(&columns, rgb, out));
    // The input rows each output row sums, in input order: those reaching into it from
    // the row above (their second weight), then those starting in it.
    let mut sources: Vec<Vec<(usize, f32)>> = vec![Vec::new(); out_h as usize];
    for (i, r) in rows.iter().enumerate() {
        sources[r.first].push((i, r.w0));
        if r.w1 > 0.0 {
            sources[r.first + 1].push((i, r.w1));
        }
    }
    for list in &mut sources {
        list.sort_by_key(|&(i, _)| i);
    }
    let mut out = vec![0u8; out_h as usize * row_len];
    out.par_chunks_mut(row_len)
        .zip(&sources)
        .for_each(|(out, sources)| sum_rows(&reduced, sources, out));
    RgbImage::from_raw(out_w, out_h, out).expect("out_w × out_h RGB values")
}

/// One output row: the weighted sum of its reduced input rows, rounded to bytes.
fn sum_rows(reduced: &[f32], sources: &[(usize, f32)], out: &mut [u8]) {
    let row_len = out.len();
    let mut acc = vec![0.0f32; row_len];
    for &(i, weight) in sources {
        let row = &reduced[i * row_len..(i + 1) * row_len];
        for (a, &v) in acc.iter_mut().zip(row) {
            *a += v * weight;
        }
    }
    for (o, &v) in out.iter_mut().zip(&acc) {
        *o = to_u8(v);
    }
}

/// The largest size with the photo's aspect ratio and at most `max_pixels` pixels.
pub fn fit(width: u32, height: u32, max_pixels: u64) -> (u32, u32) {
    let pixels = u64::from(width) * u64::from(height);
    if pixels <= max_pixels {
        return (width, height);
    }
    let scale = (max_pixels as f64 / pixels as f64).sqrt();
    let mut w = ((f64::from(width) * scale).floor() as u32).clamp(1, width);
    let mut h = ((f64::from(height) * scale).floor() as u32).clamp(1, height);
    // Rounding can leave one row or column too many.
    while u64::from(w) * u64::from(h) > max_pixels && (w > 1 || h > 1) {
        if w >= h { w -= 1 } else { h -= 1 }
    }
    (w, h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shrink(img: &RgbImage, w: u32, h: u32) -> RgbImage {
        let mut d = RowDownscaler::new(img.width(), img.height(), w, h);
        for row in img.as_raw().chunks_exact(img.width() as usize * 3) {
            d.push_row(row);
        }
        d.finish().unwrap()
    }

    /// The parallel shrink gives the streaming downscaler's bytes, at fractional and
    /// whole factors.
    #[test]
    fn parallel_shrink_equals_the_row_by_row_one() {
        let img = RgbImage::from_fn(131, 77, |x, y| {
            image::Rgb([(x * 7 + y * 3) as u8, (x * y) as u8, (255 - x) as u8])
        });
        for (w, h) in [(61, 36), (131, 77), (65, 38), (1, 1), (100, 11)] {
            assert_eq!(
                super::shrink(&img, w, h).as_raw(),
                shrink(&img, w, h).as_raw(),
                "{w}×{h}"
            );
        }
    }

    #[test]
    fn whole_factors_average_blocks() {
        let img = RgbImage::from_fn(4, 2, |x, _| image::Rgb([x as u8 * 10, 100, 255]));
        let out = shrink(&img, 2, 1);
        assert_eq!(out.get_pixel(0, 0).0, [5, 100, 255]);
        assert_eq!(out.get_pixel(1, 0).0, [25, 100, 255]);
    }

    #[test]
    fn fractional_factors_split_pixels_and_keep_flat_areas_flat() {
        let flat = RgbImage::from_pixel(7, 5, image::Rgb([80, 160, 240]));
        let out = shrink(&flat, 3, 2);
        assert!(out.pixels().all(|p| p.0 == [80, 160, 240]));
        // 3 → 2: output 0 = (a + b/2) / 1.5, output 1 = (b/2 + c) / 1.5.
        let img = RgbImage::from_fn(3, 1, |x, _| image::Rgb([[0, 90, 180][x as usize]; 3]));
        let out = shrink(&img, 2, 1);
        assert_eq!(out.get_pixel(0, 0).0[0], 30);
        assert_eq!(out.get_pixel(1, 0).0[0], 150);
    }

    #[test]
    fn a_short_image_is_refused_and_sizes_fit_the_cap() {
        let mut d = RowDownscaler::new(4, 4, 2, 2);
        d.push_row(&[0; 12]);
        assert!(d.finish().is_none());
        assert_eq!(fit(4000, 3000, 12_000_000), (4000, 3000));
        let (w, h) = fit(12_000, 8_400, 16_000_000);
        assert!(u64::from(w) * u64::from(h) <= 16_000_000);
        assert!(u64::from(w) * u64::from(h) > 15_990_000);
        assert!((w as f64 / h as f64 - 12_000.0 / 8_400.0).abs() < 1e-3);
    }
}
