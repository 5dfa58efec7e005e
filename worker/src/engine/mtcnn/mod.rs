//! MTCNN face detection, reproducing facenet-pytorch 2.6.0's `MTCNN.detect`
//! (`models/utils/detect_face.py`) step by step: image pyramid → P-Net → NMS per scale and
//! across scales → R-Net on 24×24 crops → O-Net on 48×48 crops → landmarks → "Min" NMS.
//!
//! The networks live in [`nets`]; this module does the pyramid, crops and box bookkeeping
//! on the CPU in the same f32 arithmetic as the Python code, so boxes match to float
//! rounding of the network outputs.

mod boxes;
pub mod nets;
pub mod nets_cpu;
mod resample;

use std::path::Path;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use image::RgbImage;
use rayon::prelude::*;

use self::boxes::{Candidate, bbreg, crop_region, nms, nms_min, rerec};
use self::nets::{ONet, PNet, RNet};
use self::nets_cpu::{ONetCpu, Output, PNetCpu, ProposalMaps, RNetCpu, Refinement};
use self::resample::{IntegralImage, PixelOrder, Region};
use super::batch_stage::{BatchOptions, BatchStage, Users};
use super::nhwc::{Maps, buffers};
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

/// The three networks, as NHWC layers on the CPU and candle-nn modules elsewhere.
// One per loaded engine: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Nets {
    Cpu(PNetCpu, RNetCpu, ONetCpu),
    Candle(Arc<PNet>, Arc<RNet>, Arc<ONet>),
}

/// One pyramid level (or band of one) for P-Net: planar pixels of `h × w`.
struct Level {
    pixels: Vec<f32>,
    h: usize,
    w: usize,
}

/// The candle networks' shared batching stages (see [`Mtcnn::with_shared_batching`]):
/// P-Net on levels (those of one size batched together), R-Net and O-Net on crops (one
/// item per crop's planar pixels).
struct Stages {
    pnet: BatchStage<Level, ProposalMaps>,
    rnet: BatchStage<Vec<f32>, Refinement>,
    onet: BatchStage<Vec<f32>, Output>,
}

/// The three networks plus the detection parameters.
pub struct Mtcnn {
    nets: Nets,
    device: Device,
    config: MtcnnConfig,
    /// [`PNET_BAND_CELLS`]; smaller in tests, to check that bands change nothing.
    band_cells: usize,
    stages: Option<Stages>,
    /// Photos being detected: the stages wait for those alone.
    users: Arc<Users>,
}

/// P-Net output cells computed at once on one pyramid level: a band of about 128 K input
/// pixels, whose im2col buffers stay under ~25 MB however large the photo.
const PNET_BAND_CELLS: usize = 1 << 15;
/// On a GPU: whole levels (a 4000×3000 photo's largest is about 2.6 M cells).
const GPU_BAND_CELLS: usize = 1 << 24;

/// Crops go through R-Net/O-Net in batches of this many, which bounds the memory of the
/// im2col buffers on images with thousands of proposals.
const CROP_BATCH: usize = 256;

impl Mtcnn {
    /// Loads `pnet.pt`, `rnet.pt` and `onet.pt` (facenet-pytorch's legacy state dicts).
    pub fn load(pnet: &Path, rnet: &Path, onet: &Path, device: &Device) -> Result<Self> {
        Self::load_layers(pnet, rnet, onet, device, device.is_cpu())
    }

    /// `nhwc_layers`: the CPU's NHWC layers instead of candle-nn's modules.
    fn load_layers(
        pnet: &Path,
        rnet: &Path,
        onet: &Path,
        device: &Device,
        nhwc_layers: bool,
    ) -> Result<Self> {
        let net = |path: &Path| pytorch_legacy::var_builder(path, device);
        fn wrong_shape(path: &Path) -> impl Fn(candle_core::Error) -> EngineError + '_ {
            move |e| EngineError::Format {
                path: path.to_path_buf(),
                reason: format!("not an MTCNN network: {e}"),
            }
        }
        let cpu_error = |path: &Path| {
            let path = path.to_path_buf();
            move |e: EngineError| match e {
                EngineError::Candle(e) => wrong_shape(&path)(e),
                other => other,
            }
        };
        let nets = if nhwc_layers {
            Nets::Cpu(
                PNetCpu::load(&net(pnet)?).map_err(cpu_error(pnet))?,
                RNetCpu::load(&net(rnet)?).map_err(cpu_error(rnet))?,
                ONetCpu::load(&net(onet)?).map_err(cpu_error(onet))?,
            )
        } else {
            Nets::Candle(
                Arc::new(PNet::load(net(pnet)?).map_err(wrong_shape(pnet))?),
                Arc::new(RNet::load(net(rnet)?).map_err(wrong_shape(rnet))?),
                Arc::new(ONet::load(net(onet)?).map_err(wrong_shape(onet))?),
            )
        };
        Ok(Self {
            nets,
            device: device.clone(),
            config: MtcnnConfig::default(),
            // A GPU has the memory for a whole level at once, and each band costs a
            // round of kernel launches.
            band_cells: if device.is_cpu() {
                PNET_BAND_CELLS
            } else {
                GPU_BAND_CELLS
            },
            stages: None,
            users: Arc::default(),
        })
    }

    /// The same detector with its candle networks behind shared batching stages, so
    /// that photos detected at once (from several threads) go through each network
    /// together: a GPU then runs one pass where it ran one per photo. P-Net levels batch
    /// with the levels of the same size (photos from one camera go in step). The CPU's
    /// NHWC networks already use every core on one photo and keep running per photo.
    pub fn with_shared_batching(self, options: BatchOptions) -> Result<Self> {
        let Nets::Candle(pnet, rnet, onet) = &self.nets else {
            return Ok(self);
        };
        let (pnet, rnet, onet) = (Arc::clone(pnet), Arc::clone(rnet), Arc::clone(onet));
        let crops = BatchOptions {
            max_items: CROP_BATCH,
            ..options
        };
        let (d1, d2, d3) = (
            self.device.clone(),
            self.device.clone(),
            self.device.clone(),
        );
        let stages = Stages {
            pnet: BatchStage::start(
                "mtcnn-pnet",
                options,
                Arc::clone(&self.users),
                move |levels: &[Level]| pnet_candle(&pnet, &d1, levels),
            )?,
            rnet: BatchStage::start(
                "mtcnn-rnet",
                crops,
                Arc::clone(&self.users),
                move |crops: &[Vec<f32>]| rnet_candle(&rnet, &d2, &crops.concat(), crops.len()),
            )?,
            onet: BatchStage::start(
                "mtcnn-onet",
                crops,
                Arc::clone(&self.users),
                move |crops: &[Vec<f32>]| onet_candle(&onet, &d3, &crops.concat(), crops.len()),
            )?,
        };
        Ok(Self {
            stages: Some(stages),
            ..self
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
        let _user = self.users.enter();
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

    fn pixel_order(&self) -> PixelOrder {
        match self.nets {
            Nets::Cpu(..) => PixelOrder::Interleaved,
            Nets::Candle(..) => PixelOrder::Planar,
        }
    }

    /// P-Net on one pyramid level of `h × w` pixels (in [`Self::pixel_order`]).
    fn run_pnet(&self, pixels: Vec<f32>, h: usize, w: usize) -> Result<ProposalMaps> {
        let level = Level { pixels, h, w };
        let mut maps = match (&self.nets, &self.stages) {
            (Nets::Cpu(pnet, ..), _) => {
                let x = Maps {
                    n: 1,
                    h,
                    w,
                    c: 3,
                    data: level.pixels,
                };
                let maps = pnet.forward(&x);
                buffers::recycle(x.data);
                return maps;
            }
            (_, Some(stages)) => stages.pnet.run(vec![level])?,
            (Nets::Candle(pnet, ..), None) => pnet_candle(pnet, &self.device, &[level])?,
        };
        maps.pop()
            .ok_or_else(|| EngineError::Invalid("P-Net gave no output".into()))
    }

    /// R-Net on `n` 24×24 crops.
    fn run_rnet(&self, pixels: &[f32], n: usize) -> Result<Vec<Refinement>> {
        match (&self.nets, &self.stages) {
            (Nets::Cpu(_, rnet, _), _) => rnet.forward(&maps(pixels, n, 24, 24)),
            (_, Some(stages)) => stages.rnet.run(per_crop(pixels, n)),
            (Nets::Candle(_, rnet, _), None) => rnet_candle(rnet, &self.device, pixels, n),
        }
    }

    /// O-Net on `n` 48×48 crops.
    fn run_onet(&self, pixels: &[f32], n: usize) -> Result<Vec<Output>> {
        match (&self.nets, &self.stages) {
            (Nets::Cpu(.., onet), _) => onet.forward(&maps(pixels, n, 48, 48)),
            (_, Some(stages)) => stages.onet.run(per_crop(pixels, n)),
            (Nets::Candle(.., onet), None) => onet_candle(onet, &self.device, pixels, n),
        }
    }

    /// Stage 1: P-Net over the pyramid. Returns squared boxes after both NMS passes and the
    /// P-Net regression.
    fn proposals(&self, integral: &IntegralImage, scales: &[f64]) -> Result<Vec<[f32; 4]>> {
        let (w, h) = (integral.width(), integral.height());
        let whole = Region { x0: 0, y0: 0, w, h };
        let threshold = self.config.thresholds[0];
        let level = |scale: f64| -> Result<Vec<Candidate>> {
            // `int(h * scale + 1)` in Python doubles.
            let hs = (h as f64 * scale + 1.0) as usize;
            let ws = (w as f64 * scale + 1.0) as usize;
            let (out_h, out_w) = (pnet_output_side(hs), pnet_output_side(ws));
            // P-Net is convolutional: a band of output rows [a, b) sees only the level's
            // rows [2a, 2b + 10), so large levels go through in bands (each starting on
            // an even row, so the pooling windows are those of the whole level) and
            // the buffers stay bounded; the cells, and so the boxes, are the same.
            let band = (self.band_cells / out_w.max(1)).max(1);
            let mut found = Vec::new();
            let mut a = 0;
            while a < out_h {
                let b = (a + band).min(out_h);
                let rows = 2 * a..(2 * b + 10).min(hs);
                let mut pixels = buffers::zeroed(3 * rows.len() * ws);
                integral.resample_rows_into(
                    whole,
                    (hs, ws),
                    rows.clone(),
                    self.pixel_order(),
                    &mut pixels,
                );
                let maps = self.run_pnet(pixels, rows.len(), ws)?;
                debug_assert_eq!((maps.h, maps.w), (b - a, out_w));
                found.extend(generate_bounding_boxes(&maps, a, scale as f32, threshold));
                a = b;
            }
            Ok(nms(&found, 0.5).into_iter().map(|i| found[i]).collect())
        };
        // On the CPU the levels run side by side: their single-threaded parts (resampling,
        // pooling, NMS) overlap. The results keep the order of the scales.
        let levels: Vec<Vec<Candidate>> = match self.nets {
            Nets::Cpu(..) => scales
                .par_iter()
                .map(|&s| level(s))
                .collect::<Result<_>>()?,
            Nets::Candle(..) => scales.iter().map(|&s| level(s)).collect::<Result<_>>()?,
        };
        let all: Vec<Candidate> = levels.into_iter().flatten().collect();
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
        let (crops, batch) = crop_batch(integral, proposals, 24, self.pixel_order());
        let mut scored = Vec::new();
        for (chunk_boxes, chunk_pixels) in crops
            .chunks(CROP_BATCH)
            .zip(batch.chunks(CROP_BATCH * 3 * 24 * 24))
        {
            let refined = self.run_rnet(chunk_pixels, chunk_boxes.len())?;
            for (&bbox, r) in chunk_boxes.iter().zip(refined) {
                if r.prob > self.config.thresholds[1] {
                    scored.push(Candidate {
                        bbox,
                        score: r.prob,
                        reg: r.reg,
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
        let (crops, batch) = crop_batch(integral, refined, 48, self.pixel_order());
        let mut faces = Vec::new();
        for (chunk_boxes, chunk_pixels) in crops
            .chunks(CROP_BATCH)
            .zip(batch.chunks(CROP_BATCH * 3 * 48 * 48))
        {
            let outputs = self.run_onet(chunk_pixels, chunk_boxes.len())?;
            for (
                &b,
                Output {
                    prob: score,
                    reg,
                    points: p,
                },
            ) in chunk_boxes.iter().zip(outputs)
            {
                if score <= self.config.thresholds[2] {
                    continue;
                }
                // Landmarks are relative to the box before regression, with the +1 size.
                let w = b[2] - b[0] + 1.0;
                let h = b[3] - b[1] + 1.0;
                let landmarks =
                    std::array::from_fn(|k| [w * p[k] + b[0] - 1.0, h * p[k + 5] + b[1] - 1.0]);
                let bbox = bbreg(b, reg);
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

/// P-Net (candle) on levels, those of one size in one batch; one output per level.
fn pnet_candle(pnet: &PNet, device: &Device, levels: &[Level]) -> Result<Vec<ProposalMaps>> {
    let mut out: Vec<Option<ProposalMaps>> = (0..levels.len()).map(|_| None).collect();
    let mut done = vec![false; levels.len()];
    for i in 0..levels.len() {
        if done[i] {
            continue;
        }
        let (h, w) = (levels[i].h, levels[i].w);
        let group: Vec<usize> = (i..levels.len())
            .filter(|&j| !done[j] && (levels[j].h, levels[j].w) == (h, w))
            .collect();
        let mut pixels = Vec::with_capacity(group.len() * 3 * h * w);
        for &j in &group {
            pixels.extend_from_slice(&levels[j].pixels);
            done[j] = true;
        }
        let input = Tensor::from_vec(pixels, (group.len(), 3, h, w), device)?;
        let (reg, prob) = pnet.forward(&input)?;
        let (_, _, oh, ow) = reg.dims4()?;
        let cells = oh * ow;
        let prob = prob.flatten_all()?.to_vec1::<f32>()?;
        // (k, 4, H', W') → per level, per cell [4].
        let reg = reg.permute((0, 2, 3, 1))?.flatten_all()?.to_vec1::<f32>()?;
        for (k, &j) in group.iter().enumerate() {
            out[j] = Some(ProposalMaps {
                h: oh,
                w: ow,
                prob: prob[k * cells..(k + 1) * cells].to_vec(),
                reg: reg[k * cells * 4..(k + 1) * cells * 4]
                    .chunks_exact(4)
                    .map(|r| [r[0], r[1], r[2], r[3]])
                    .collect(),
            });
        }
    }
    Ok(out.into_iter().flatten().collect())
}

/// R-Net (candle) on `n` planar 24×24 crops.
fn rnet_candle(rnet: &RNet, device: &Device, pixels: &[f32], n: usize) -> Result<Vec<Refinement>> {
    let input = Tensor::from_slice(pixels, (n, 3, 24, 24), device)?;
    let (reg, prob) = rnet.forward(&input)?;
    Ok(prob
        .to_vec1::<f32>()?
        .into_iter()
        .zip(reg.to_vec2::<f32>()?)
        .map(|(prob, r)| Refinement {
            prob,
            reg: [r[0], r[1], r[2], r[3]],
        })
        .collect())
}

/// O-Net (candle) on `n` planar 48×48 crops.
fn onet_candle(onet: &ONet, device: &Device, pixels: &[f32], n: usize) -> Result<Vec<Output>> {
    let input = Tensor::from_slice(pixels, (n, 3, 48, 48), device)?;
    let (reg, points, prob) = onet.forward(&input)?;
    Ok(prob
        .to_vec1::<f32>()?
        .into_iter()
        .zip(reg.to_vec2::<f32>()?)
        .zip(points.to_vec2::<f32>()?)
        .map(|((prob, r), p)| Output {
            prob,
            reg: [r[0], r[1], r[2], r[3]],
            points: std::array::from_fn(|i| p[i]),
        })
        .collect())
}

/// `n` crops' pixels, one vector per crop (the stages' items).
fn per_crop(pixels: &[f32], n: usize) -> Vec<Vec<f32>> {
    if n == 0 {
        return Vec::new();
    }
    pixels
        .chunks_exact(pixels.len() / n)
        .map(<[f32]>::to_vec)
        .collect()
}

/// Interleaved pixels of `n` crops of `h × w` as NHWC maps.
fn maps(pixels: &[f32], n: usize, h: usize, w: usize) -> Maps {
    Maps {
        n,
        h,
        w,
        c: 3,
        data: pixels.to_vec(),
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

/// Side of P-Net's output for an input side `n ≥ 12`: 3×3 convolution, 2×2 max pool
/// (ceil mode), two 3×3 convolutions.
fn pnet_output_side(n: usize) -> usize {
    (n.saturating_sub(4)).div_ceil(2).saturating_sub(3)
}

/// `generateBoundingBox`: every P-Net cell with probability ≥ threshold becomes the 12×12
/// window it saw, mapped back to image pixels. Cells are visited in row-major order, as
/// `mask.nonzero()` does. `maps` holds the level's output rows from `first_row` on.
fn generate_bounding_boxes(
    maps: &ProposalMaps,
    first_row: usize,
    scale: f32,
    threshold: f32,
) -> Vec<Candidate> {
    let mut out = Vec::new();
    for (i, (&score, &reg)) in maps.prob.iter().zip(&maps.reg).enumerate() {
        let (y, x) = (first_row + i / maps.w, i % maps.w);
        {
            if score >= threshold {
                let (bx, by) = (x as f32, y as f32);
                let bbox = [
                    ((2.0 * bx + 1.0) / scale).floor(),
                    ((2.0 * by + 1.0) / scale).floor(),
                    ((2.0 * bx + 12.0) / scale).floor(),
                    ((2.0 * by + 12.0) / scale).floor(),
                ];
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
    order: PixelOrder,
) -> (Vec<[f32; 4]>, Vec<f32>) {
    let (w, h) = (integral.width(), integral.height());
    let kept: Vec<([f32; 4], Region)> = boxes
        .iter()
        .filter_map(|&b| crop_region(b, w, h).map(|r| (b, r)))
        .collect();
    let per_crop = 3 * size * size;
    let mut pixels = vec![0f32; kept.len() * per_crop];
    for ((_, region), out) in kept.iter().zip(pixels.chunks_mut(per_crop)) {
        integral.resample_into(*region, (size, size), order, out);
    }
    (kept.into_iter().map(|(b, _)| b).collect(), pixels)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CPU's NHWC layers and candle-nn's modules (what CUDA runs), both on the CPU,
    /// find the same faces in a real group photo.
    #[test]
    fn nhwc_layers_match_candle_nn_modules() {
        let dir = std::env::var_os("MODELS_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/models"));
        let image = image::open(crate::fixtures::photo("groups/six_people.jpg"))
            .expect("fixture photo")
            .to_rgb8();
        let load = |nhwc| {
            Mtcnn::load_layers(
                &dir.join("pnet.pt"),
                &dir.join("rnet.pt"),
                &dir.join("onet.pt"),
                &Device::Cpu,
                nhwc,
            )
            .expect("MTCNN weights in MODELS_DIR")
        };
        let ours = load(true).detect(&image).unwrap();
        let reference = load(false).detect(&image).unwrap();
        assert_eq!(ours.len(), reference.len());
        assert!(ours.len() >= 6);
        for (a, b) in ours.iter().zip(&reference) {
            assert!((a.score - b.score).abs() < 1e-4, "{a:?} vs {b:?}");
            for (p, q) in a.bbox.iter().zip(&b.bbox) {
                assert!((p - q).abs() < 0.01, "{a:?} vs {b:?}");
            }
            for (p, q) in a
                .landmarks
                .iter()
                .flatten()
                .zip(b.landmarks.iter().flatten())
            {
                assert!((p - q).abs() < 0.01, "{a:?} vs {b:?}");
            }
        }
    }

    /// P-Net in bands of a few rows finds exactly the faces of P-Net on whole levels.
    #[test]
    fn bands_change_nothing() {
        let dir = std::env::var_os("MODELS_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/models"));
        let image = image::open(crate::fixtures::photo("groups/six_people.jpg"))
            .expect("fixture photo")
            .to_rgb8();
        let load = |band_cells| Mtcnn {
            band_cells,
            ..Mtcnn::load_layers(
                &dir.join("pnet.pt"),
                &dir.join("rnet.pt"),
                &dir.join("onet.pt"),
                &Device::Cpu,
                true,
            )
            .expect("MTCNN weights in MODELS_DIR")
        };
        let whole = load(usize::MAX).detect(&image).unwrap();
        // A few rows per band on the largest levels, one row on the smaller ones.
        let banded = load(2_000).detect(&image).unwrap();
        assert!(whole.len() >= 6);
        assert_eq!(whole.len(), banded.len());
        for (a, b) in whole.iter().zip(&banded) {
            assert_eq!(a.bbox, b.bbox);
            assert_eq!(a.score, b.score);
            assert_eq!(a.landmarks, b.landmarks);
        }
    }

    /// Photos detected at once through the candle networks' shared stages get the faces
    /// each gets alone; their levels and crops really shared passes.
    #[test]
    fn shared_stages_change_nothing() {
        let dir = std::env::var_os("MODELS_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/models"));
        let photo = |name| {
            image::open(crate::fixtures::photo(name))
                .expect("fixture photo")
                .to_rgb8()
        };
        // Two photos of one size (so their levels batch) and one of another.
        let six = photo("groups/six_people.jpg");
        let mut flipped = six.clone();
        image::imageops::flip_horizontal_in_place(&mut flipped);
        let images = [six, flipped, photo("groups/rose_and_kit.jpg")];
        let load = || {
            Mtcnn::load_layers(
                &dir.join("pnet.pt"),
                &dir.join("rnet.pt"),
                &dir.join("onet.pt"),
                &Device::Cpu,
                false,
            )
            .expect("MTCNN weights in MODELS_DIR")
        };
        let alone = load();
        let expected: Vec<_> = images.iter().map(|i| alone.detect(i).unwrap()).collect();
        let shared = load()
            .with_shared_batching(BatchOptions {
                max_items: 64,
                wait: std::time::Duration::from_secs(10),
            })
            .unwrap();
        let together: Vec<Vec<Detection>> = std::thread::scope(|s| {
            let handles: Vec<_> = images
                .iter()
                .map(|i| s.spawn(|| shared.detect(i).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (a, b) in expected.iter().zip(&together) {
            assert!(a.len() >= 2);
            assert_eq!(a.len(), b.len());
            // candle's convolutions sum in another order at another batch size: the
            // same faces, to float rounding (far inside the parity tolerances).
            for (a, b) in a.iter().zip(b) {
                assert!((a.score - b.score).abs() < 1e-5, "{a:?} vs {b:?}");
                let pa = a.bbox.iter().chain(a.landmarks.iter().flatten());
                let pb = b.bbox.iter().chain(b.landmarks.iter().flatten());
                for (p, q) in pa.zip(pb) {
                    assert!((p - q).abs() < 1e-3, "{a:?} vs {b:?}");
                }
            }
        }
        let stages = shared.stages.as_ref().unwrap();
        for counts in [
            stages.pnet.counts(),
            stages.rnet.counts(),
            stages.onet.counts(),
        ] {
            assert!(counts.passes < counts.requests, "{counts:?}");
        }
    }

    #[test]
    fn pnet_output_sides_follow_the_layers() {
        // 12 → conv 10 → pool 5 → conv 3 → conv 1.
        assert_eq!(pnet_output_side(12), 1);
        // 13 → 11 → pool (ceil) 6 → 4 → 2.
        assert_eq!(pnet_output_side(13), 2);
        assert_eq!(pnet_output_side(461), 226);
    }

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
        let maps = ProposalMaps {
            h: 2,
            w: 2,
            prob: vec![0.1, 0.9, 0.95, 0.2],
            reg: vec![[0.0, 1.0, 2.0, 3.0]; 4],
        };
        let found = generate_bounding_boxes(&maps, 0, 0.5, 0.6);
        // row-major: (x=1, y=0) first, then (x=0, y=1)
        assert_eq!(found[0].bbox, [6.0, 2.0, 28.0, 24.0]);
        assert_eq!(found[1].bbox, [2.0, 6.0, 24.0, 28.0]);
        assert_eq!(found[1].reg, [0.0, 1.0, 2.0, 3.0]);
    }
}
