//! SCRFD's post-processing, as InsightFace's `model_zoo/scrfd.py` does it: anchor centres
//! per stride, distance decoding of boxes and keypoints, score threshold, greedy NMS.

/// One head's raw output at one stride, laid out like the ONNX outputs `score_s`,
/// `bbox_s`, `kps_s`: `K = 2·h·w` anchors, row-major cells, two anchors per cell.
#[derive(Debug, Clone, PartialEq)]
pub struct StrideOutput {
    pub stride: usize,
    pub h: usize,
    pub w: usize,
    /// `K` sigmoid scores.
    pub scores: Vec<f32>,
    /// `K × 4` distances (left, top, right, bottom) in units of the stride.
    pub bbox: Vec<f32>,
    /// `K × 10` keypoint offsets `(dx, dy)` × 5 in units of the stride.
    pub kps: Vec<f32>,
}

/// Anchors per feature-map cell in SCRFD-500M.
pub const ANCHORS_PER_CELL: usize = 2;

/// One detected face, in input pixels.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ScrfdDetection {
    /// `[x1, y1, x2, y2]`.
    pub bbox: [f32; 4],
    /// Face score (sigmoid), in [0, 1].
    pub score: f32,
    /// Left eye, right eye, nose, left mouth corner, right mouth corner (image left/right),
    /// `[x, y]`.
    pub kps: [[f32; 2]; 5],
}

impl ScrfdDetection {
    /// The same face moved by `(dx, dy)` and scaled by `scale` about the origin after the move:
    /// `p' = (p + d)·scale`.
    pub fn transformed(&self, dx: f32, dy: f32, scale: f32) -> ScrfdDetection {
        let b = self.bbox;
        ScrfdDetection {
            bbox: [
                (b[0] + dx) * scale,
                (b[1] + dy) * scale,
                (b[2] + dx) * scale,
                (b[3] + dy) * scale,
            ],
            score: self.score,
            kps: self.kps.map(|[x, y]| [(x + dx) * scale, (y + dy) * scale]),
        }
    }

    pub fn centre(&self) -> [f32; 2] {
        [
            (self.bbox[0] + self.bbox[2]) / 2.0,
            (self.bbox[1] + self.bbox[3]) / 2.0,
        ]
    }
}

/// Anchor centre of anchor `k` at `stride` on a map `w` cells wide: `(col·s, row·s)`,
/// each cell's centre repeated [`ANCHORS_PER_CELL`] times.
pub fn anchor_centre(k: usize, w: usize, stride: usize) -> [f32; 2] {
    let cell = k / ANCHORS_PER_CELL;
    [((cell % w) * stride) as f32, ((cell / w) * stride) as f32]
}

/// Every anchor of `out` with score ≥ `threshold`, decoded to input pixels (unsorted).
pub fn decode(out: &StrideOutput, threshold: f32) -> Vec<ScrfdDetection> {
    let s = out.stride as f32;
    out.scores
        .iter()
        .enumerate()
        .filter(|&(_, &score)| score >= threshold)
        .map(|(k, &score)| {
            let [cx, cy] = anchor_centre(k, out.w, out.stride);
            let d = &out.bbox[k * 4..k * 4 + 4];
            let p = &out.kps[k * 10..k * 10 + 10];
            // scrfd.py multiplies the predictions by the stride first, then adds: same order
            // here so the float rounding matches.
            ScrfdDetection {
                bbox: [cx - d[0] * s, cy - d[1] * s, cx + d[2] * s, cy + d[3] * s],
                score,
                kps: std::array::from_fn(|i| [cx + p[2 * i] * s, cy + p[2 * i + 1] * s]),
            }
        })
        .collect()
}

/// scrfd.py's overlap: areas and intersection count pixels inclusively (`x2 − x1 + 1`),
/// the py-faster-rcnn convention it copies.
fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let area = |r: &[f32; 4]| (r[2] - r[0] + 1.0) * (r[3] - r[1] + 1.0);
    let w = (a[2].min(b[2]) - a[0].max(b[0]) + 1.0).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1]) + 1.0).max(0.0);
    let inter = w * h;
    inter / (area(a) + area(b) - inter)
}

/// Sorts by score (highest first) and keeps each face that overlaps no kept, more
/// confident one by more than `iou_threshold`.
pub fn nms(mut dets: Vec<ScrfdDetection>, iou_threshold: f32) -> Vec<ScrfdDetection> {
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut keep: Vec<ScrfdDetection> = Vec::with_capacity(dets.len());
    for d in dets {
        if keep.iter().all(|k| iou(&k.bbox, &d.bbox) <= iou_threshold) {
            keep.push(d);
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(bbox: [f32; 4], score: f32) -> ScrfdDetection {
        ScrfdDetection {
            bbox,
            score,
            kps: [[0.0; 2]; 5],
        }
    }

    #[test]
    fn anchors_are_row_major_with_each_centre_twice() {
        // A 3-wide map at stride 8: cells (0,0), (1,0), (2,0), (0,1) ...
        let centres: Vec<_> = (0..8).map(|k| anchor_centre(k, 3, 8)).collect();
        assert_eq!(
            centres,
            vec![
                [0.0, 0.0],
                [0.0, 0.0],
                [8.0, 0.0],
                [8.0, 0.0],
                [16.0, 0.0],
                [16.0, 0.0],
                [0.0, 8.0],
                [0.0, 8.0]
            ]
        );
    }

    #[test]
    fn decoding_scales_distances_by_the_stride() {
        // 2×2 map at stride 16; only anchor 7 (cell (1,1), second anchor) passes.
        let mut out = StrideOutput {
            stride: 16,
            h: 2,
            w: 2,
            scores: vec![0.1, 0.2, 0.3, 0.49, 0.0, 0.0, 0.0, 0.9],
            bbox: vec![0.0; 32],
            kps: vec![0.0; 80],
        };
        out.bbox[28..32].copy_from_slice(&[1.0, 0.5, 2.0, 0.25]);
        out.kps[70..80].copy_from_slice(&[1.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -0.5, 2.0]);
        let dets = decode(&out, 0.5);
        assert_eq!(dets.len(), 1);
        let d = dets[0];
        assert_eq!(d.score, 0.9);
        assert_eq!(d.bbox, [0.0, 8.0, 48.0, 20.0]);
        assert_eq!(d.kps[0], [32.0, 0.0]);
        assert_eq!(d.kps[1], [16.0, 16.0]);
        assert_eq!(d.kps[4], [8.0, 48.0]);
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_faces_and_uses_inclusive_areas() {
        let dets = vec![
            face([0.0, 0.0, 9.0, 9.0], 0.6),
            face([1.0, 0.0, 10.0, 9.0], 0.9),
            face([50.0, 50.0, 60.0, 60.0], 0.7),
        ];
        let kept = nms(dets, 0.4);
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].score, 0.9);
        assert_eq!(kept[1].score, 0.7);
        // Inclusive areas: two 10×10 boxes sharing a 5-wide strip: 50/(100+100−50) = 1/3
        // (exclusive widths would give 4·9/(81+81−36) = 0.286); at 0.3 only the inclusive
        // formula suppresses.
        let pair = vec![
            face([0.0, 0.0, 9.0, 9.0], 0.9),
            face([5.0, 0.0, 14.0, 9.0], 0.8),
        ];
        assert_eq!(nms(pair, 0.3).len(), 1);
    }
}
