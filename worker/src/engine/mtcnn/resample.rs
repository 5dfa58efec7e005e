//! PyTorch's `interpolate(mode="area")` (= `adaptive_avg_pool2d`) on a `u8` RGB image,
//! through a summed-area table so that every pyramid level and every crop costs O(1) per
//! output pixel and the image is converted only once.

use image::RgbImage;

use crate::engine::nhwc::vectorized;

/// Summed-area table of an RGB image, channel-interleaved, `(h+1) × (w+1) × 3`.
///
/// Entries use wrapping `u32` arithmetic: a window sum is a difference of four entries and
/// is below 2³² for any window of fewer than 16.8 M pixels, so the wrapped differences
/// are exact even when the table itself overflows (images over ~16 Mpx).
pub struct IntegralImage {
    width: usize,
    height: usize,
    table: Vec<u32>,
}

impl IntegralImage {
    pub fn new(image: &RgbImage) -> Self {
        let (width, height) = (image.width() as usize, image.height() as usize);
        let stride = (width + 1) * 3;
        let mut table = vec![0u32; stride * (height + 1)];
        let raw = image.as_raw();
        for y in 0..height {
            let mut row_sum = [0u32; 3];
            let src = &raw[y * width * 3..(y + 1) * width * 3];
            let (above, below) = table.split_at_mut((y + 1) * stride);
            let above = &above[y * stride..];
            let row = &mut below[..stride];
            for x in 0..width {
                for c in 0..3 {
                    row_sum[c] = row_sum[c].wrapping_add(u32::from(src[x * 3 + c]));
                    let i = (x + 1) * 3 + c;
                    row[i] = above[i].wrapping_add(row_sum[c]);
                }
            }
        }
        Self {
            width,
            height,
            table,
        }
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    /// Area-resamples the region `[x0, x0+w) × [y0, y0+h)` to `out_h × out_w` and writes it
    /// normalised as `(v − 127.5) · 0.0078125` into `out`, in `order`.
    ///
    /// Windows follow `adaptive_avg_pool2d`: output `i` of `m` averages inputs
    /// `floor(i·n/m) .. ceil((i+1)·n/m)`, and the average is `sum / kh / kw` in f32 as in
    /// PyTorch's kernel (the sum of u8 values is exact in both).
    pub fn resample_into(
        &self,
        region: Region,
        (out_h, out_w): (usize, usize),
        order: PixelOrder,
        out: &mut [f32],
    ) {
        self.resample_rows_into(region, (out_h, out_w), 0..out_h, order, out);
    }

    /// Output rows `rows` of [`Self::resample_into`] (a horizontal band of the
    /// resampled region), written to `out` as an image of `rows.len() × out_w`.
    pub fn resample_rows_into(
        &self,
        region: Region,
        (out_h, out_w): (usize, usize),
        rows: std::ops::Range<usize>,
        order: PixelOrder,
        out: &mut [f32],
    ) {
        debug_assert!(region.x0 + region.w <= self.width && region.y0 + region.h <= self.height);
        debug_assert!(rows.end <= out_h);
        debug_assert_eq!(out.len(), 3 * rows.len() * out_w);
        let cols = windows(region.w, out_w);
        let rows = &windows(region.h, out_h)[rows];
        let stride = (self.width + 1) * 3;
        let plane = rows.len() * out_w;
        // Per column: where its window starts and ends in a table row, and its width
        // once per channel, so that each output row is averaged in one vectorised loop
        // (two scalar divisions per value were most of the resampling's time).
        let spans: Vec<(usize, usize)> = cols
            .iter()
            .map(|&(c0, c1)| ((region.x0 + c0) * 3, (region.x0 + c1) * 3))
            .collect();
        let widths: Vec<f32> = cols
            .iter()
            .flat_map(|&(c0, c1)| [(c1 - c0) as f32; 3])
            .collect();
        let mut planar_row = Vec::new();
        for (oy, &(r0, r1)) in rows.iter().enumerate() {
            let top = &self.table[(region.y0 + r0) * stride..];
            let bottom = &self.table[(region.y0 + r1) * stride..];
            let kh = (r1 - r0) as f32;
            let row = match order {
                PixelOrder::Interleaved => &mut out[oy * out_w * 3..(oy + 1) * out_w * 3],
                PixelOrder::Planar => {
                    planar_row.resize(out_w * 3, 0.0);
                    &mut planar_row[..]
                }
            };
            for (px, &(a, b)) in row.chunks_exact_mut(3).zip(&spans) {
                for c in 0..3 {
                    let sum = bottom[b + c]
                        .wrapping_sub(bottom[a + c])
                        .wrapping_sub(top[b + c])
                        .wrapping_add(top[a + c]);
                    px[c] = sum as f32;
                }
            }
            vectorized(|| {
                for (v, &kw) in row.iter_mut().zip(&widths) {
                    *v = (*v / kh / kw - 127.5) * 0.0078125;
                }
            });
            if order == PixelOrder::Planar {
                for (ox, px) in planar_row.chunks_exact(3).enumerate() {
                    for (c, &v) in px.iter().enumerate() {
                        out[c * plane + oy * out_w + ox] = v;
                    }
                }
            }
        }
    }
}

/// Layout of resampled pixels: `(C, H, W)` for candle's NCHW networks, `(H, W, C)` for
/// the CPU's NHWC ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelOrder {
    Planar,
    Interleaved,
}

/// A pixel rectangle inside the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub x0: usize,
    pub y0: usize,
    pub w: usize,
    pub h: usize,
}

/// `adaptive_avg_pool` windows `[start, end)` for `n` inputs and `m` outputs.
fn windows(n: usize, m: usize) -> Vec<(usize, usize)> {
    (0..m)
        .map(|i| (i * n / m, ((i + 1) * n).div_ceil(m)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct per-pixel average, for comparison with the table.
    fn naive(image: &RgbImage, region: Region, out_h: usize, out_w: usize) -> Vec<f32> {
        let mut out = vec![0f32; 3 * out_h * out_w];
        for oy in 0..out_h {
            let (r0, r1) = (oy * region.h / out_h, ((oy + 1) * region.h).div_ceil(out_h));
            for ox in 0..out_w {
                let (c0, c1) = (ox * region.w / out_w, ((ox + 1) * region.w).div_ceil(out_w));
                for c in 0..3 {
                    let mut sum = 0f32;
                    for y in r0..r1 {
                        for x in c0..c1 {
                            sum += f32::from(
                                image.get_pixel((region.x0 + x) as u32, (region.y0 + y) as u32)[c],
                            );
                        }
                    }
                    let mean = sum / (r1 - r0) as f32 / (c1 - c0) as f32;
                    out[c * out_h * out_w + oy * out_w + ox] = (mean - 127.5) * 0.0078125;
                }
            }
        }
        out
    }

    #[test]
    fn matches_direct_averaging_down_and_up() {
        let image = RgbImage::from_fn(37, 29, |x, y| {
            image::Rgb([(x * 7 + y) as u8, (x * y) as u8, 255 - (y * 5) as u8])
        });
        let table = IntegralImage::new(&image);
        let whole = Region {
            x0: 0,
            y0: 0,
            w: 37,
            h: 29,
        };
        let crop = Region {
            x0: 5,
            y0: 3,
            w: 11,
            h: 17,
        };
        for (region, oh, ow) in [
            (whole, 13, 20),
            (whole, 29, 37),
            (crop, 24, 24),
            (crop, 5, 48),
        ] {
            let mut out = vec![0f32; 3 * oh * ow];
            table.resample_into(region, (oh, ow), PixelOrder::Planar, &mut out);
            assert_eq!(
                out,
                naive(&image, region, oh, ow),
                "{region:?} -> {oh}x{ow}"
            );
        }
    }

    #[test]
    fn bands_are_rows_of_the_whole() {
        let image = RgbImage::from_fn(37, 29, |x, y| {
            image::Rgb([(x * 7 + y) as u8, (x * y) as u8, 255 - (y * 5) as u8])
        });
        let table = IntegralImage::new(&image);
        let whole = Region {
            x0: 0,
            y0: 0,
            w: 37,
            h: 29,
        };
        let (oh, ow) = (19, 23);
        let mut all = vec![0f32; 3 * oh * ow];
        table.resample_into(whole, (oh, ow), PixelOrder::Interleaved, &mut all);
        let mut band = vec![0f32; 3 * 5 * ow];
        table.resample_rows_into(whole, (oh, ow), 7..12, PixelOrder::Interleaved, &mut band);
        assert_eq!(band, all[7 * ow * 3..12 * ow * 3]);
    }

    #[test]
    fn windows_are_pytorch_adaptive_pool_windows() {
        // adaptive_avg_pool2d(10 -> 4): starts floor(i*10/4), ends ceil((i+1)*10/4)
        assert_eq!(windows(10, 4), vec![(0, 3), (2, 5), (5, 8), (7, 10)]);
        // upsampling 3 -> 5 repeats and straddles
        assert_eq!(windows(3, 5), vec![(0, 1), (0, 2), (1, 2), (1, 3), (2, 3)]);
    }
}
