//! Face crops for review: the detected box grown a little (so that hair and chin show),
//! clamped to the photo, encoded as JPEG.

use image::{RgbImage, imageops};
use uuid::Uuid;

/// Fraction of the box's width/height added on each side.
const MARGIN: f32 = 0.2;
const JPEG_QUALITY: f32 = 90.0;

/// The pixel rectangle `(x, y, width, height)` of a crop around `bbox` (x1, y1, x2, y2),
/// clamped to a `width`×`height` image; `None` when nothing of the box is inside.
pub fn crop_rect(bbox: [f32; 4], width: u32, height: u32) -> Option<(u32, u32, u32, u32)> {
    let [x1, y1, x2, y2] = bbox;
    let (mx, my) = ((x2 - x1) * MARGIN, (y2 - y1) * MARGIN);
    let clamp = |v: f32, max: u32| v.round().clamp(0.0, max as f32) as u32;
    let (left, right) = (clamp(x1 - mx, width), clamp(x2 + mx, width));
    let (top, bottom) = (clamp(y1 - my, height), clamp(y2 + my, height));
    (right > left && bottom > top).then(|| (left, top, right - left, bottom - top))
}

/// The JPEG crop of one face, or `None` when its box lies outside the photo.
pub fn face_crop_jpeg(image: &RgbImage, bbox: [f32; 4]) -> Option<Vec<u8>> {
    let (x, y, w, h) = crop_rect(bbox, image.width(), image.height())?;
    let crop = imageops::crop_imm(image, x, y, w, h).to_image();
    // libjpeg-turbo's encoder (as mozjpeg, with libjpeg's settings, not mozjpeg's slow
    // ones): with `image`'s own encoder the 30 crops of a classroom photo were 3% of its
    // job. The crate reports libjpeg's errors as panics; encoding an in-memory RGB
    // buffer into a Vec has none for sane sizes, and a crop is optional anyway.
    std::panic::catch_unwind(|| -> std::io::Result<Vec<u8>> {
        let mut jpeg = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_RGB);
        jpeg.set_fastest_defaults();
        jpeg.set_size(w as usize, h as usize);
        jpeg.set_quality(JPEG_QUALITY);
        let mut started = jpeg.start_compress(Vec::new())?;
        started.write_scanlines(crop.as_raw())?;
        started.finish()
    })
    .ok()?
    .ok()
}

/// Blob key of a face crop.
pub fn crop_key(session_id: Uuid, face_id: Uuid) -> String {
    format!("sessions/{session_id}/faces/{face_id}.jpg")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_the_box_and_clamps_it_to_the_photo() {
        // 100×100 box in a 640×480 photo: 20 px added on each side.
        assert_eq!(
            crop_rect([100.0, 100.0, 200.0, 200.0], 640, 480),
            Some((80, 80, 140, 140))
        );
        // Hanging over the top-left corner.
        assert_eq!(
            crop_rect([-30.0, -10.0, 70.0, 90.0], 640, 480),
            Some((0, 0, 90, 110))
        );
        // Entirely outside.
        assert_eq!(crop_rect([700.0, 10.0, 800.0, 90.0], 640, 480), None);
    }

    #[test]
    fn crops_decode_back_to_their_size() {
        let image = RgbImage::from_pixel(320, 240, image::Rgb([200, 120, 40]));
        let jpeg = face_crop_jpeg(&image, [100.0, 50.0, 150.0, 110.0]).unwrap();
        let back = image::load_from_memory(&jpeg).unwrap().to_rgb8();
        assert_eq!((back.width(), back.height()), (70, 84));
        let centre = back.get_pixel(35, 42).0;
        for (got, want) in centre.into_iter().zip([200u8, 120, 40]) {
            assert!(got.abs_diff(want) <= 4, "{centre:?}");
        }
    }

    #[test]
    fn keys_are_valid_blob_keys() {
        let key = crop_key(Uuid::nil(), Uuid::max());
        common::blob::validate_key(&key).unwrap();
    }
}
