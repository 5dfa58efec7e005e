//! MTCNN face detection, reproducing facenet-pytorch 2.6.0's `MTCNN.detect`
//! (`models/utils/detect_face.py`) step by step: image pyramid → P-Net → NMS per scale and
//! across scales → R-Net on 24×24 crops → O-Net on 48×48 crops → landmarks → "Min" NMS.
//!
//! The networks live in [`nets`]; this module does the pyramid, crops and box bookkeeping
//! on the CPU in the same f32 arithmetic as the Python code, so boxes match to float
//! rounding of the network outputs.

mod boxes;
pub mod nets;
mod resample;

use std::path::Path;

use candle_core::{Device, Tensor};
use image::RgbImage;

use self::boxes::{Candidate, bbreg, crop_region, nms, nms_min, rerec};
use self::nets::{ONet, PNet, RNet};
use self::resample::{IntegralImage, Region};
use super::{EngineError, Result, pytorch_legacy};

/// Detection parameters, with facenet-pytorch's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MtcnnConfig {
    /// Smallest face side searched for, in pixels.
    pub min_face_size: f32,
    /// Ratio between successive pyramid scales, in (0, 1).
    pub scale_factor: f32,
    /// Score thresholds of P-Net, R-Net and O-Net.
    pub thresholds: [f32; 3],
}

impl Default for MtcnnConfig {
    fn default() -> Self {
        Self {
            min_face_size: 20.0,
            scale_factor: 0.709,
            thresholds: [0.6, 0.7, 0.7],
        }
    }
}

/// One detected face.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Detection {
    /// `[x1, y1, x2, y2]` in pixels (facenet-pytorch's box, not clamped to the image).
    pub bbox: [f32; 4],
    /// O-Net face probability.
    pub score: f32,
    /// Left eye, right eye, nose, mouth left, mouth right (facenet order), `[x, y]` pixels.
    pub landmarks: [[f32; 2]; 5],
}

/// The three networks plus the detection parameters.
pub struct Mtcnn {
    pnet: PNet,
    rnet: RNet,
    onet: ONet,
    device: Device,
    config: MtcnnConfig,
}

/// Crops go through R-Net/O-Net in batches of this many, which bounds the memory of the
/// im2col buffers on images with thousands of proposals.
const CROP_BATCH: usize = 256;

impl Mtcnn {
    /// Loads `pnet.pt`, `rnet.pt` and `onet.pt` (facenet-pytorch's legacy state dicts).
    pub fn load(pnet: &Path, rnet: &Path, onet: &Path, device: &Device) -> Result<Self> {
        let net = |path: &Path| pytorch_legacy::var_builder(path, device);
        fn wrong_shape(path: &Path) -> impl Fn(candle_core::Error) -> EngineError + '_ {
            move |e| EngineError::Format {
                path: path.to_path_buf(),
                reason: format!("not an MTCNN network: {e}"),
            }
        }
        Ok(Self {
            pnet: PNet::load(net(pnet)?).map_err(wrong_shape(pnet))?,
            rnet: RNet::load(net(rnet)?).map_err(wrong_shape(rnet))?,
            onet: ONet::load(net(onet)?).map_err(wrong_shape(onet))?,
            device: device.clone(),
            config: MtcnnConfig::default(),
        })
    }

    pub fn with_config(self, config: MtcnnConfig) -> Self {
        Self { config, ..self }
    }

    pub fn config(&self) -> &MtcnnConfig {
        &self.config
    }

    /// Detects faces; results are sorted by score, highest first.
    pub fn detect(&self, image: &RgbImage) -> Result<Vec<Detection>> {
        let scales = pyramid_scales(
            image.width() as usize,
            image.height() as usize,
            &self.config,
        )?;
        if scales.is_empty() {
            return Ok(Vec::new());
        }
        let integral = IntegralImage::new(image);
        let proposals = self.proposals(&integral, &scales)?;
        if proposals.is_empty() {
            return Ok(Vec::new());
        }
        let refined = self.refine(&integral, &proposals)?;
        if refined.is_empty() {
            return Ok(Vec::new());
        }
        let mut faces = self.output(&integral, &refined)?;
        faces.sort_by(|a, b| b.score.total_cmp(&a.score));
        Ok(faces)
    }

    /// Stage 1: P-Net over the pyramid. Returns squared boxes after both NMS passes and the
    /// P-Net regression.
    fn proposals(&self, integral: &IntegralImage, scales: &[f64]) -> Result<Vec<[f32; 4]>> {
        let (w, h) = (integral.width(), integral.height());
        let whole = Region { x0: 0, y0: 0, w, h };
        let threshold = self.config.thresholds[0];
        let mut all = Vec::new();
        let mut pixels = Vec::new();
        for &scale in scales {
            // `int(h * scale + 1)` in Python doubles.
            let hs = (h as f64 * scale + 1.0) as usize;
            let ws = (w as f64 * scale + 1.0) as usize;
            pixels.resize(3 * hs * ws, 0.0);
            integral.resample_into(whole, hs, ws, &mut pixels);
            let input = Tensor::from_slice(&pixels, (1, 3, hs, ws), &self.device)?;
            let (reg, prob) = self.pnet.forward(&input)?;
            let prob = prob.squeeze(0)?.to_vec2::<f32>()?;
            let reg = reg.squeeze(0)?.to_vec3::<f32>()?;
            let found = generate_bounding_boxes(&prob, &reg, scale as f32, threshold);
            all.extend(nms(&found, 0.5).into_iter().map(|i| found[i]));
        }
        let kept = nms(&all, 0.7);
        Ok(kept
            .into_iter()
            .map(|i| {
                let Candidate {
                    bbox: b, reg: r, ..
                } = all[i];
                // Stage-1 regression uses the size without +1, unlike `bbreg`.
                let (regw, regh) = (b[2] - b[0], b[3] - b[1]);
                rerec([
                    b[0] + r[0] * regw,
                    b[1] + r[1] * regh,
                    b[2] + r[2] * regw,
                    b[3] + r[3] * regh,
                ])
            })
            .collect())
    }

    /// Stage 2: R-Net on 24×24 crops, threshold, NMS, regression, squaring.
    fn refine(&self, integral: &IntegralImage, proposals: &[[f32; 4]]) -> Result<Vec<[f32; 4]>> {
        let (crops, batch) = crop_batch(integral, proposals, 24);
        let mut scored = Vec::new();
        for (chunk_boxes, chunk_pixels) in crops
            .chunks(CROP_BATCH)
            .zip(batch.chunks(CROP_BATCH * 3 * 24 * 24))
        {
            let input =
                Tensor::from_slice(chunk_pixels, (chunk_boxes.len(), 3, 24, 24), &self.device)?;
            let (reg, prob) = self.rnet.forward(&input)?;
            let reg = reg.to_vec2::<f32>()?;
            let prob = prob.to_vec1::<f32>()?;
            for ((&bbox, score), reg) in chunk_boxes.iter().zip(prob).zip(reg) {
                if score > self.config.thresholds[1] {
                    scored.push(Candidate {
                        bbox,
                        score,
                        reg: [reg[0], reg[1], reg[2], reg[3]],
                    });
                }
            }
        }
        Ok(nms(&scored, 0.7)
            .into_iter()
            .map(|i| rerec(bbreg(scored[i].bbox, scored[i].reg)))
            .collect())
    }

    /// Stage 3: O-Net on 48×48 crops, threshold, landmarks, regression, "Min" NMS.
    fn output(&self, integral: &IntegralImage, refined: &[[f32; 4]]) -> Result<Vec<Detection>> {
        let (crops, batch) = crop_batch(integral, refined, 48);
        let mut faces = Vec::new();
        for (chunk_boxes, chunk_pixels) in crops
            .chunks(CROP_BATCH)
            .zip(batch.chunks(CROP_BATCH * 3 * 48 * 48))
        {
            let input =
                Tensor::from_slice(chunk_pixels, (chunk_boxes.len(), 3, 48, 48), &self.device)?;
            let (reg, points, prob) = self.onet.forward(&input)?;
            let reg = reg.to_vec2::<f32>()?;
            let points = points.to_vec2::<f32>()?;
            let prob = prob.to_vec1::<f32>()?;
            for (((&b, score), reg), p) in chunk_boxes.iter().zip(prob).zip(reg).zip(points) {
                if score <= self.config.thresholds[2] {
                    continue;
                }
                // Landmarks are relative to the box before regression, with the +1 size.
                let w = b[2] - b[0] + 1.0;
                let h = b[3] - b[1] + 1.0;
                let landmarks =
                    std::array::from_fn(|k| [w * p[k] + b[0] - 1.0, h * p[k + 5] + b[1] - 1.0]);
                let bbox = bbreg(b, [reg[0], reg[1], reg[2], reg[3]]);
                faces.push(Detection {
                    bbox,
                    score,
                    landmarks,
                });
            }
        }
        let candidates: Vec<Candidate> = faces
            .iter()
            .map(|f| Candidate {
                bbox: f.bbox,
                score: f.score,
                reg: [0.0; 4],
            })
            .collect();
        Ok(nms_min(&candidates, 0.7)
            .into_iter()
            .map(|i| faces[i].clone())
            .collect())
    }
}

/// Pyramid scales as facenet-pytorch computes them in Python doubles: start at
/// `12 / min_face_size` and multiply by the factor while the shorter side stays ≥ 12 px.
fn pyramid_scales(width: usize, height: usize, config: &MtcnnConfig) -> Result<Vec<f64>> {
    // Convert through the shortest decimal form so that 0.709f32 becomes the double 0.709
    // that Python uses, not 0.70899999141…; otherwise `int(h * scale + 1)` can differ.
    let as_python = |v: f32| v.to_string().parse::<f64>().unwrap_or(f64::from(v));
    let min_face = as_python(config.min_face_size);
    let factor = as_python(config.scale_factor);
    let valid = min_face > 0.0 && min_face.is_finite() && factor > 0.0 && factor < 1.0;
    if !valid {
        return Err(EngineError::Invalid(format!(
            "MTCNN needs min_face_size > 0 and 0 < scale_factor < 1, got {} and {}",
            config.min_face_size, config.scale_factor
        )));
    }
    let mut scale = 12.0 / min_face;
    let mut minl = width.min(height) as f64 * scale;
    let mut scales = Vec::new();
    while minl >= 12.0 {
        scales.push(scale);
        scale *= factor;
        minl *= factor;
    }
    Ok(scales)
}

/// `generateBoundingBox`: every P-Net cell with probability ≥ threshold becomes the 12×12
/// window it saw, mapped back to image pixels. Cells are visited in row-major order, as
/// `mask.nonzero()` does.
fn generate_bounding_boxes(
    prob: &[Vec<f32>],
    reg: &[Vec<Vec<f32>>],
    scale: f32,
    threshold: f32,
) -> Vec<Candidate> {
    let mut out = Vec::new();
    for (y, row) in prob.iter().enumerate() {
        for (x, &score) in row.iter().enumerate() {
            if score >= threshold {
                let (bx, by) = (x as f32, y as f32);
                let bbox = [
                    ((2.0 * bx + 1.0) / scale).floor(),
                    ((2.0 * by + 1.0) / scale).floor(),
                    ((2.0 * bx + 12.0) / scale).floor(),
                    ((2.0 * by + 12.0) / scale).floor(),
                ];
                let reg = [reg[0][y][x], reg[1][y][x], reg[2][y][x], reg[3][y][x]];
                out.push(Candidate { bbox, score, reg });
            }
        }
    }
    out
}

/// Crops every box (with `pad`'s clamping) and area-resamples it to `size × size`, into one
/// contiguous (N, 3, size, size) buffer. Boxes whose crop would be empty are dropped (the
/// Python code skips their crop).
fn crop_batch(
    integral: &IntegralImage,
    boxes: &[[f32; 4]],
    size: usize,
) -> (Vec<[f32; 4]>, Vec<f32>) {
    let (w, h) = (integral.width(), integral.height());
    let kept: Vec<([f32; 4], Region)> = boxes
        .iter()
        .filter_map(|&b| crop_region(b, w, h).map(|r| (b, r)))
        .collect();
    let per_crop = 3 * size * size;
    let mut pixels = vec![0f32; kept.len() * per_crop];
    for ((_, region), out) in kept.iter().zip(pixels.chunks_mut(per_crop)) {
        integral.resample_into(*region, size, size, out);
    }
    (kept.into_iter().map(|(b, _)| b).collect(), pixels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pyramid_matches_python_for_a_1366x768_photo() {
        let scales = pyramid_scales(1366, 768, &MtcnnConfig::default()).unwrap();
        // min side 768 * 0.6 = 460.8; 460.8 * 0.709^k >= 12 for k = 0..=10
        assert_eq!(scales.len(), 11);
        assert_eq!(scales[0], 0.6);
        assert_eq!(scales[1], 0.6 * 0.709);
        let first = (
            (768.0 * scales[0] + 1.0) as usize,
            (1366.0 * scales[0] + 1.0) as usize,
        );
        assert_eq!(first, (461, 820));
    }

    #[test]
    fn tiny_images_have_no_scales_and_bad_configs_are_rejected() {
        assert!(
            pyramid_scales(10, 10, &MtcnnConfig::default())
                .unwrap()
                .is_empty()
        );
        let bad = MtcnnConfig {
            scale_factor: 1.0,
            ..MtcnnConfig::default()
        };
        assert!(matches!(
            pyramid_scales(100, 100, &bad),
            Err(EngineError::Invalid(_))
        ));
    }

    #[test]
    fn cells_map_back_to_12px_windows() {
        let prob = vec![vec![0.1, 0.9], vec![0.95, 0.2]];
        let reg: Vec<Vec<Vec<f32>>> = (0..4).map(|c| vec![vec![c as f32; 2]; 2]).collect();
        let found = generate_bounding_boxes(&prob, &reg, 0.5, 0.6);
        // row-major: (x=1, y=0) first, then (x=0, y=1)
        assert_eq!(found[0].bbox, [6.0, 2.0, 28.0, 24.0]);
        assert_eq!(found[1].bbox, [2.0, 6.0, 24.0, 28.0]);
        assert_eq!(found[1].reg, [0.0, 1.0, 2.0, 3.0]);
    }
}
