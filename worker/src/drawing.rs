//! Drawing detections on a photo, for `attendance-worker detect --draw`.

use image::{Rgb, RgbImage};
use imageproc::drawing::{draw_filled_circle_mut, draw_hollow_rect_mut};
use imageproc::rect::Rect;

use crate::engine::mtcnn::Detection;

/// A copy of the photo with each box in green and its landmarks in red.
pub fn draw_detections(image: &RgbImage, faces: &[Detection]) -> RgbImage {
    let mut out = image.clone();
    let thickness = (image.width().max(image.height()) / 400).max(1) as i32;
    for face in faces {
        let [x1, y1, x2, y2] = face.bbox;
        for t in 0..thickness {
            let w = (x2 - x1) as i32 + 2 * t;
            let h = (y2 - y1) as i32 + 2 * t;
            if w > 0 && h > 0 {
                let rect = Rect::at(x1 as i32 - t, y1 as i32 - t).of_size(w as u32, h as u32);
                draw_hollow_rect_mut(&mut out, rect, Rgb([0, 255, 0]));
            }
        }
        for [x, y] in face.landmarks {
            draw_filled_circle_mut(
                &mut out,
                (x as i32, y as i32),
                thickness + 1,
                Rgb([255, 0, 0]),
            );
        }
    }
    out
}
