//! Box arithmetic of facenet-pytorch's `detect_face.py`, in the same f32 operation order:
//! NMS (torchvision's and the numpy "Min" variant), `rerec`, `bbreg` and `pad`.

use super::resample::Region;

/// A candidate box `[x1, y1, x2, y2]` with its score and the regression offsets that the
/// last network predicted for it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub bbox: [f32; 4],
    pub score: f32,
    pub reg: [f32; 4],
}

/// Indices sorted by score, highest first; equal scores keep their input order (torchvision
/// sorts with `stable=true`).
fn by_score_desc(boxes: &[Candidate]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..boxes.len()).collect();
    order.sort_by(|&a, &b| boxes[b].score.total_cmp(&boxes[a].score));
    order
}

/// `torchvision.ops.nms`: IoU with areas `(x2−x1)·(y2−y1)`, a box is dropped when its IoU
/// with a kept one is `> threshold`. Returns kept indices, highest score first.
pub fn nms(boxes: &[Candidate], threshold: f64) -> Vec<usize> {
    let order = by_score_desc(boxes);
    let area = |b: &[f32; 4]| (b[2] - b[0]) * (b[3] - b[1]);
    let mut suppressed = vec![false; boxes.len()];
    let mut keep = Vec::new();
    for (pos, &i) in order.iter().enumerate() {
        if suppressed[i] {
            continue;
        }
        keep.push(i);
        let a = &boxes[i].bbox;
        let area_a = area(a);
        for &j in &order[pos + 1..] {
            if suppressed[j] {
                continue;
            }
            let b = &boxes[j].bbox;
            let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
            let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
            let inter = w * h;
            let iou = inter / (area_a + area(b) - inter);
            // torchvision compares the float IoU with the double threshold.
            if f64::from(iou) > threshold {
                suppressed[j] = true;
            }
        }
    }
    keep
}

/// facenet-pytorch's `nms_numpy(..., 'Min')`: areas with `+1`, overlap = intersection over
/// the smaller area, a box survives while overlap `<= threshold`. numpy's `argsort` is
/// ascending and the highest score is taken from the end, so among equal scores the later
/// index wins (for the short arrays that occur here numpy sorts stably).
pub fn nms_min(boxes: &[Candidate], threshold: f32) -> Vec<usize> {
    let area = |b: &[f32; 4]| (b[2] - b[0] + 1.0) * (b[3] - b[1] + 1.0);
    let mut remaining: Vec<usize> = (0..boxes.len()).collect();
    remaining.sort_by(|&a, &b| boxes[a].score.total_cmp(&boxes[b].score));
    let mut keep = Vec::new();
    while let Some(i) = remaining.pop() {
        keep.push(i);
        let a = &boxes[i].bbox;
        let area_a = area(a);
        remaining.retain(|&j| {
            let b = &boxes[j].bbox;
            let w = (a[2].min(b[2]) - a[0].max(b[0]) + 1.0).max(0.0);
            let h = (a[3].min(b[3]) - a[1].max(b[1]) + 1.0).max(0.0);
            let overlap = (w * h) / area_a.min(area(b));
            overlap <= threshold
        });
    }
    keep
}

/// `rerec`: turns a box into the square around its centre with side `max(w, h)`.
pub fn rerec(b: [f32; 4]) -> [f32; 4] {
    let h = b[3] - b[1];
    let w = b[2] - b[0];
    let l = w.max(h);
    let x1 = b[0] + w * 0.5 - l * 0.5;
    let y1 = b[1] + h * 0.5 - l * 0.5;
    [x1, y1, x1 + l, y1 + l]
}

/// `bbreg`: applies regression offsets relative to the box size `x2−x1+1`.
pub fn bbreg(b: [f32; 4], reg: [f32; 4]) -> [f32; 4] {
    let w = b[2] - b[0] + 1.0;
    let h = b[3] - b[1] + 1.0;
    [
        b[0] + reg[0] * w,
        b[1] + reg[1] * h,
        b[2] + reg[2] * w,
        b[3] + reg[3] * h,
    ]
}

/// `pad` plus the slice `img[:, y-1:ey, x-1:ex]`: truncate towards zero, clamp to the image
/// (1-based), and return the 0-based pixel region, or `None` where facenet-pytorch's
/// `ey > y-1 and ex > x-1` test would skip the crop.
pub fn crop_region(b: [f32; 4], width: usize, height: usize) -> Option<Region> {
    // `boxes.trunc().int()`: saturating like the i32 cast, then clamped as in `pad`.
    let x = (b[0].trunc() as i64).max(1);
    let y = (b[1].trunc() as i64).max(1);
    let ex = (b[2].trunc() as i64).min(width as i64);
    let ey = (b[3].trunc() as i64).min(height as i64);
    if ey > y - 1 && ex > x - 1 {
        Some(Region {
            x0: (x - 1) as usize,
            y0: (y - 1) as usize,
            w: (ex - (x - 1)) as usize,
            h: (ey - (y - 1)) as usize,
        })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(bbox: [f32; 4], score: f32) -> Candidate {
        Candidate {
            bbox,
            score,
            reg: [0.0; 4],
        }
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes() {
        let boxes = [
            cand([0.0, 0.0, 10.0, 10.0], 0.8),
            cand([1.0, 0.0, 11.0, 10.0], 0.9), // IoU 9/11 with the first
            cand([20.0, 20.0, 30.0, 30.0], 0.7),
        ];
        assert_eq!(nms(&boxes, 0.7), vec![1, 2]);
        assert_eq!(nms(&boxes, 0.85), vec![1, 0, 2]);
    }

    #[test]
    fn nms_min_measures_overlap_against_the_smaller_box() {
        // A small box inside a large one: IoU is low but the Min overlap is 1.
        let boxes = [
            cand([0.0, 0.0, 99.0, 99.0], 0.99),
            cand([10.0, 10.0, 19.0, 19.0], 0.98),
        ];
        assert_eq!(nms(&boxes, 0.7), vec![0, 1]);
        assert_eq!(nms_min(&boxes, 0.7), vec![0]);
    }

    #[test]
    fn rerec_squares_around_the_centre() {
        assert_eq!(rerec([10.0, 20.0, 30.0, 60.0]), [0.0, 20.0, 40.0, 60.0]);
    }

    #[test]
    fn crop_region_truncates_and_clamps_like_pad() {
        // x=-5.7 -> trunc -5 -> clamp 1; ex=50.9 -> 50 -> clamp to width 40
        let r = crop_region([-5.7, 2.9, 50.9, 30.2], 40, 100).unwrap();
        assert_eq!(
            r,
            Region {
                x0: 0,
                y0: 1,
                w: 40,
                h: 29
            }
        );
        // Entirely right of the image: x-1 >= ex.
        assert_eq!(crop_region([45.0, 0.0, 60.0, 10.0], 40, 100), None);
    }
}
