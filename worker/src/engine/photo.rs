//! Decoding a photo within bounded memory: up to [`MAX_IMAGE_PIXELS`] are accepted, and a
//! photo with more than the working size (`MAX_WORKING_PIXELS`) is decoded reduced to
//! it, never held at full size. A JPEG is shrunk inside libjpeg-turbo by DCT scaling
//! (to the smallest `n/8` at least the working size) and then, like a PNG read row by
//! row, area-averaged while its rows stream in; other formats are decoded whole, then
//! shrunk. Photos at or below the working size decode exactly as before.
//!
//! Detection runs on the working image; [`WorkingPhoto::to_original`] maps its boxes and
//! landmarks back to the photo's own pixels, which is what is stored and shown.

use common::image_limits::{MAX_IMAGE_PIXELS, has_jpeg_end_marker};
use image::RgbImage;

use super::area_downscale::{RowDownscaler, fit};
use super::detector::Detection;
use super::error::BadPhoto;
use super::{EngineError, Result};

/// A photo as the engine works on it.
#[derive(Debug)]
pub struct WorkingPhoto {
    /// The pixels detection and embedding see: the photo, or the photo reduced.
    pub image: RgbImage,
    /// The photo's own size, `(width, height)`.
    pub original: (u32, u32),
}

impl WorkingPhoto {
    /// True when the working image is smaller than the photo.
    pub fn is_reduced(&self) -> bool {
        self.original != self.image.dimensions()
    }

    /// A detection on the working image in the photo's own pixel coordinates.
    pub fn to_original(&self, d: &Detection) -> Detection {
        if !self.is_reduced() {
            return d.clone();
        }
        let sx = self.original.0 as f32 / self.image.width() as f32;
        let sy = self.original.1 as f32 / self.image.height() as f32;
        Detection {
            bbox: [
                d.bbox[0] * sx,
                d.bbox[1] * sy,
                d.bbox[2] * sx,
                d.bbox[3] * sy,
            ],
            score: d.score,
            landmarks: d.landmarks.map(|[x, y]| [x * sx, y * sy]),
        }
    }
}

/// Decodes a photo as RGB (alpha dropped), reduced to at most `max_working_pixels`
/// pixels, refusing photos beyond [`MAX_IMAGE_PIXELS`].
pub fn decode_photo(bytes: &[u8], what: &str, max_working_pixels: u64) -> Result<WorkingPhoto> {
    let bad = |problem: BadPhoto| EngineError::BadPhoto {
        what: what.to_string(),
        problem,
    };
    let reader = || -> Result<image::ImageReader<std::io::Cursor<&[u8]>>> {
        let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|source| EngineError::Io {
                path: what.into(),
                source,
            })?;
        let mut limits = image::Limits::default();
        limits.max_alloc = Some(MAX_IMAGE_PIXELS * 4);
        reader.limits(limits);
        Ok(reader)
    };
    let first = reader()?;
    let format = first.format();
    let (w, h) = first.into_dimensions().map_err(|e| match e {
        image::ImageError::Limits(_) => bad(BadPhoto::OverLimit {
            max_pixels: MAX_IMAGE_PIXELS,
        }),
        e => bad(BadPhoto::Undecodable(e)),
    })?;
    if w == 0 || h == 0 {
        return Err(bad(BadPhoto::ImpossibleSize {
            width: w,
            height: h,
        }));
    }
    let too_large = || BadPhoto::TooLarge {
        width: w,
        height: h,
        max_pixels: MAX_IMAGE_PIXELS,
    };
    if u64::from(w) * u64::from(h) > MAX_IMAGE_PIXELS {
        return Err(bad(too_large()));
    }
    let target = fit(w, h, max_working_pixels);
    let working = |image: RgbImage| WorkingPhoto {
        image,
        original: (w, h),
    };
    match format {
        Some(image::ImageFormat::Jpeg) => {
            if let Some(img) = decode_jpeg_like_pil(bytes, target) {
                return Ok(working(img));
            }
        }
        Some(image::ImageFormat::Png) if target != (w, h) => {
            match decode_png_rows(bytes, target) {
                Ok(Some(img)) => return Ok(working(img)),
                // Interlaced: rows do not arrive in order; decoded whole below.
                Ok(None) => {}
                Err(e) => return Err(bad(BadPhoto::Undecodable(e))),
            }
        }
        _ => {}
    }
    let img = reader()?.decode().map_err(|e| match e {
        // Within the pixel cap but over the allocation limit (e.g. 16-bit RGBA).
        image::ImageError::Limits(_) => bad(too_large()),
        e => bad(BadPhoto::Undecodable(e)),
    })?;
    // `into_rgb8` does not copy an RGB image; others are converted once, then shrunk.
    let img = img.into_rgb8();
    if target == (w, h) {
        return Ok(working(img));
    }
    let mut shrink = RowDownscaler::new(w, h, target.0, target.1);
    for row in img.as_raw().chunks_exact(w as usize * 3) {
        shrink.push_row(row);
    }
    drop(img);
    let img = shrink
        .finish()
        .ok_or_else(|| EngineError::Invalid("downscaling lost rows".into()))?;
    Ok(working(img))
}

/// A JPEG through libjpeg-turbo's decoder (as built by mozjpeg) with its defaults — the
/// accurate integer IDCT and fancy upsampling, as PIL decodes — so that a photo gives
/// the reference implementations' pixels exactly; the image crate's decoder differs by a
/// few grey levels, enough to move landmarks and descriptors. `None` when libjpeg
/// refuses the data (CMYK, arithmetic coding, corruption) or the data is truncated
/// (libjpeg would pad it with grey): the image crate then decodes it or says why not.
///
/// Above `target` (the working size) it decodes at the smallest DCT scale `n/8` that is
/// still at least `target`, and area-averages the scanlines down as they come, so the
/// full-size pixels never exist.
fn decode_jpeg_like_pil(bytes: &[u8], target: (u32, u32)) -> Option<RgbImage> {
    if !has_jpeg_end_marker(bytes) {
        return None;
    }
    // libjpeg's fatal errors unwind out of the decoder (mozjpeg's error manager).
    std::panic::catch_unwind(|| -> std::io::Result<RgbImage> {
        let mut header = mozjpeg::Decompress::new_mem(bytes)?;
        let (w, h) = (header.width() as u32, header.height() as u32);
        if (w, h) == target {
            let mut started = header.rgb()?;
            let pixels: Vec<u8> = started.read_scanlines()?;
            started.finish()?;
            return RgbImage::from_raw(w, h, pixels)
                .ok_or_else(|| std::io::ErrorKind::UnexpectedEof.into());
        }
        // libjpeg's scaled size is ceil(side · n / 8).
        let n = (1..=8)
            .find(|&n| (w * n).div_ceil(8) >= target.0 && (h * n).div_ceil(8) >= target.1)
            .unwrap_or(8);
        header.scale(n as u8);
        let mut started = header.rgb()?;
        let (sw, sh) = (started.width() as u32, started.height() as u32);
        let (tw, th) = (target.0.min(sw), target.1.min(sh));
        let mut shrink = RowDownscaler::new(sw, sh, tw, th);
        // A few scanlines at a time: libjpeg hands out at most one iMCU row per call.
        let row_len = sw as usize * 3;
        let mut buf = vec![0u8; row_len * 16];
        let mut read = 0u32;
        while read < sh {
            let rows = (sh - read).min(16) as usize;
            let got = started.read_scanlines_into(&mut buf[..rows * row_len])?;
            if got.is_empty() {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            for row in got.chunks_exact(row_len) {
                shrink.push_row(row);
            }
            read += (got.len() / row_len) as u32;
        }
        started.finish()?;
        shrink
            .finish()
            .ok_or_else(|| std::io::ErrorKind::UnexpectedEof.into())
    })
    .ok()?
    .ok()
}

/// A non-interlaced PNG read row by row into the downscaler: peak memory is the output
/// plus one row. `Ok(None)` for an interlaced PNG.
fn decode_png_rows(
    bytes: &[u8],
    target: (u32, u32),
) -> std::result::Result<Option<RgbImage>, image::ImageError> {
    let decoding = |e: png::DecodingError| {
        image::ImageError::Decoding(image::error::DecodingError::new(
            image::error::ImageFormatHint::Exact(image::ImageFormat::Png),
            e,
        ))
    };
    let mut decoder = png::Decoder::new_with_limits(
        std::io::Cursor::new(bytes),
        // Row buffers only; the largest row of a 16-bit RGBA photo within the cap.
        png::Limits { bytes: 256 << 20 },
    );
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(decoding)?;
    let info = reader.info();
    if info.interlaced {
        return Ok(None);
    }
    let (w, h) = (info.width, info.height);
    let (color, _) = reader.output_color_type();
    let channels = color.samples();
    let mut shrink = RowDownscaler::new(w, h, target.0.min(w), target.1.min(h));
    let mut rgb = vec![0u8; w as usize * 3];
    while let Some(row) = reader.next_row().map_err(decoding)? {
        for (out, px) in rgb
            .chunks_exact_mut(3)
            .zip(row.data().chunks_exact(channels))
        {
            match channels {
                // Grey, grey + alpha: the grey level in every channel.
                1 | 2 => out.fill(px[0]),
                // RGB, RGBA: alpha dropped, as `to_rgb8` does.
                _ => out.copy_from_slice(&px[..3]),
            }
        }
        shrink.push_row(&rgb);
    }
    shrink.finish().map(Some).ok_or_else(|| {
        decoding(png::DecodingError::IoError(
            std::io::ErrorKind::UnexpectedEof.into(),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(img: &RgbImage, format: image::ImageFormat) -> Vec<u8> {
        let mut out = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut out), format)
            .unwrap();
        out
    }

    /// A gradient with a dark square at a known place.
    fn scene(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            let inside =
                (w / 2..w / 2 + w / 10).contains(&x) && (h / 4..h / 4 + h / 10).contains(&y);
            if inside {
                image::Rgb([10, 10, 10])
            } else {
                image::Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, 200])
            }
        })
    }

    #[test]
    fn small_photos_decode_at_full_size_whatever_the_format() {
        let img = scene(320, 200);
        for format in [image::ImageFormat::Png, image::ImageFormat::Jpeg] {
            let photo = decode_photo(&encode(&img, format), "p", 64_000).unwrap();
            assert_eq!(photo.image.dimensions(), (320, 200));
            assert!(!photo.is_reduced());
        }
        let png = decode_photo(&encode(&img, image::ImageFormat::Png), "p", 64_000).unwrap();
        assert_eq!(png.image, img);
    }

    #[test]
    fn large_photos_are_reduced_under_the_cap_and_keep_their_content_in_place() {
        let img = scene(1600, 1000);
        for format in [image::ImageFormat::Png, image::ImageFormat::Jpeg] {
            let photo = decode_photo(&encode(&img, format), "p", 100_000).unwrap();
            let (w, h) = photo.image.dimensions();
            assert!(
                u64::from(w) * u64::from(h) <= 100_000,
                "{format:?}: {w}×{h}"
            );
            assert!(u64::from(w) * u64::from(h) > 95_000, "{format:?}: {w}×{h}");
            assert_eq!(photo.original, (1600, 1000));
            // The dark square's centre, found in the working image, maps back to
            // the photo's (880, 300).
            let (mut sx, mut sy, mut n) = (0u64, 0u64, 0u64);
            for (x, y, p) in photo.image.enumerate_pixels() {
                if p.0[2] < 60 {
                    sx += u64::from(x);
                    sy += u64::from(y);
                    n += 1;
                }
            }
            let (cx, cy) = (sx as f32 / n as f32 + 0.5, sy as f32 / n as f32 + 0.5);
            let d = Detection {
                bbox: [cx, cy, cx, cy],
                score: 1.0,
                landmarks: [[cx, cy]; 5],
            };
            let back = photo.to_original(&d);
            assert!((back.bbox[0] - 880.0).abs() < 6.0, "{format:?}: {back:?}");
            assert!(
                (back.landmarks[4][1] - 300.0).abs() < 6.0,
                "{format:?}: {back:?}"
            );
        }
    }

    /// (A truncated JPEG goes to the image crate's decoder, as before, which pads it;
    /// the API refuses it at upload.)
    #[test]
    fn a_truncated_large_png_is_bad_input() {
        let bytes = encode(&scene(1600, 1000), image::ImageFormat::Png);
        let err = decode_photo(&bytes[..bytes.len() / 2], "half", 100_000).unwrap_err();
        assert!(err.is_bad_input(), "{err}");
    }
}
