//! InsightFace's SCRFD-500M face detector (boxes + 5 keypoints), read from its ONNX file
//! (`scrfd_500m_bnkps.onnx`) into typed layers.
//!
//! The photo goes through the network at its own resolution (padded bottom/right to a
//! multiple of 32 with black, as InsightFace letterboxes), or in overlapping tiles above
//! [`ScrfdConfig::max_side`]; [`decode`] turns the heads' outputs into faces as
//! InsightFace's `scrfd.py` does.

pub mod decode;
mod graph;
pub mod net;
pub mod net_cpu;
pub mod tiling;
pub mod weights;

use std::path::Path;

use candle_core::{Device, Tensor};
use image::RgbImage;
use rayon::prelude::*;

pub use self::decode::ScrfdDetection;
use self::decode::{StrideOutput, nms};
use self::net::ScrfdNet;
use self::net_cpu::ScrfdCpu;
use self::tiling::{Tile, aligned};
use super::Result;
use super::nhwc::{Maps, buffers, in_pool};

/// Detection parameters, with InsightFace's defaults where it has them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScrfdConfig {
    /// Minimum face score (scrfd.py: 0.5).
    pub score_threshold: f32,
    /// NMS overlap above which the less confident face is dropped (scrfd.py: 0.4).
    pub nms_iou: f32,
    /// Longest side processed in one pass; larger photos are tiled at full resolution.
    pub max_side: u32,
    /// Overlap between neighbouring tiles as a fraction of the tile: the largest face a
    /// tiled photo is sure to have seen whole.
    pub tile_overlap: f32,
    /// Long side of a second, downscaled look at photos larger than this (0: none). At
    /// full resolution SCRFD's largest anchors (stride 32) miss faces several hundred
    /// pixels wide — a portrait taken with a phone — which InsightFace's own 640 px
    /// letterbox finds; the full-resolution pass keeps the back rows.
    pub overview_side: u32,
}

impl Default for ScrfdConfig {
    fn default() -> Self {
        Self {
            score_threshold: 0.5,
            nms_iou: 0.4,
            max_side: 2048,
            tile_overlap: 0.25,
            overview_side: 640,
        }
    }
}

/// The network, as NHWC layers on the CPU and candle-nn modules elsewhere.
enum Net {
    Cpu(Box<ScrfdCpu>),
    Candle(Box<ScrfdNet>),
}

pub struct Scrfd {
    net: Net,
    config: ScrfdConfig,
}

/// InsightFace's input normalisation: `(pixel − 127.5) / 128`.
fn normalise(p: u8) -> f32 {
    (p as f32 - 127.5) / 128.0
}

impl Scrfd {
    /// Loads `scrfd_500m_bnkps.onnx`.
    pub fn load(path: &Path, device: &Device) -> Result<Scrfd> {
        Self::load_with(path, device, device.is_cpu(), ScrfdConfig::default())
    }

    /// `nhwc_layers`: the CPU's NHWC layers instead of candle's modules (which also run
    /// on the CPU, for checking one against the other).
    pub fn load_with(
        path: &Path,
        device: &Device,
        nhwc_layers: bool,
        config: ScrfdConfig,
    ) -> Result<Scrfd> {
        let weights = graph::load_weights(path)?;
        let net = if nhwc_layers {
            Net::Cpu(Box::new(ScrfdCpu::new(&weights)?))
        } else {
            Net::Candle(Box::new(ScrfdNet::new(&weights, device)?))
        };
        Ok(Scrfd { net, config })
    }

    pub fn config(&self) -> &ScrfdConfig {
        &self.config
    }

    pub fn set_config(&mut self, config: ScrfdConfig) {
        self.config = config;
    }

    /// The heads' raw outputs for `region` of `img` (padded to multiples of 32 with black).
    pub fn forward_region(&self, img: &RgbImage, region: &Tile) -> Result<[StrideOutput; 3]> {
        let (w, h) = (aligned(region.w) as usize, aligned(region.h) as usize);
        // From the buffer pool: a fresh 13 MB input for a 1376×768 region was faulted in
        // page by page on every photo, and filled twice.
        let mut x = Maps {
            n: 1,
            h,
            w,
            c: 3,
            data: buffers::scratch(h * w * 3),
        };
        let (stride, rw) = (img.width() as usize * 3, region.w as usize * 3);
        let raw = img.as_raw();
        let black = normalise(0);
        // Rows in parallel: one thread took 0.8 ms of a 20 ms network for 1376×768.
        x.data
            .par_chunks_exact_mut(w * 3)
            .enumerate()
            .for_each(|(y, row)| {
                let (inside, padding) =
                    row.split_at_mut(if y < region.h as usize { rw } else { 0 });
                let start = (region.y as usize + y) * stride + region.x as usize * 3;
                for (v, &p) in inside
                    .iter_mut()
                    .zip(raw.get(start..start + rw).unwrap_or(&[]))
                {
                    *v = normalise(p);
                }
                padding.fill(black);
            });
        match &self.net {
            Net::Cpu(net) => {
                let out = in_pool(|| net.forward(&x));
                buffers::recycle(x.data);
                out
            }
            Net::Candle(net) => {
                let t = Tensor::from_vec(x.data, (1, h, w, 3), &Device::Cpu)?
                    .permute((0, 3, 1, 2))?
                    .contiguous()?
                    .to_device(net.device())?;
                net.forward(&t)
            }
        }
    }

    /// Faces in `region`, in the photo's coordinates, after NMS within the region.
    fn detect_region(&self, img: &RgbImage, region: &Tile) -> Result<Vec<ScrfdDetection>> {
        let outs = self.forward_region(img, region)?;
        let found = outs
            .iter()
            .flat_map(|o| decode::decode(o, self.config.score_threshold))
            .collect();
        Ok(nms(found, self.config.nms_iou)
            .into_iter()
            .map(|d| d.transformed(region.x as f32, region.y as f32, 1.0))
            .collect())
    }

    /// Every face in the photo, most confident first.
    pub fn detect(&self, img: &RgbImage) -> Result<Vec<ScrfdDetection>> {
        if img.width() == 0 || img.height() == 0 {
            return Ok(Vec::new());
        }
        let tiles = tiling::plan(
            img.width(),
            img.height(),
            self.config.max_side,
            self.config.tile_overlap,
        );
        let long_side = img.width().max(img.height());
        let overview = self.config.overview_side > 0 && long_side > self.config.overview_side;
        if let ([tile], false) = (tiles.as_slice(), overview) {
            return self.detect_region(img, tile);
        }
        let full = || -> Result<Vec<ScrfdDetection>> {
            let mut found = Vec::new();
            for tile in &tiles {
                let faces = self.detect_region(img, tile)?;
                found.extend(faces.into_iter().filter(|f| tile.owns(f.centre())));
            }
            Ok(found)
        };
        let small = || -> Result<Vec<ScrfdDetection>> {
            if !overview {
                return Ok(Vec::new());
            }
            let scale = self.config.overview_side as f32 / long_side as f32;
            let (w, h) = (
                ((img.width() as f32 * scale).round() as u32).max(1),
                ((img.height() as f32 * scale).round() as u32).max(1),
            );
            // Area averaging, as OpenCV's INTER_AREA: a proper low-pass for the shrink,
            // and several times faster than `image`'s triangle filter.
            let small = super::area_downscale::shrink(img, w, h);
            let mut found = Vec::new();
            for tile in &tiling::plan(w, h, u32::MAX, 0.0) {
                let faces = self.detect_region(&small, tile)?;
                found.extend(
                    faces
                        .into_iter()
                        .map(|f| f.transformed(0.0, 0.0, 1.0 / scale)),
                );
            }
            Ok(found)
        };
        // Side by side on the CPU: the small maps at the end of each pass leave cores
        // idle that the other pass fills. (A GPU runs them one after the other anyway.)
        let (full, small) = match self.net {
            Net::Cpu(_) => rayon::join(full, small),
            Net::Candle(_) => (full(), small()),
        };
        let mut all = full?;
        all.extend(small?);
        tracing::debug!(
            tiles = tiles.len(),
            overview,
            faces = all.len(),
            "SCRFD detection"
        );
        Ok(nms(all, self.config.nms_iou))
    }

    /// [`Self::detect`] on the photo padded with black by half its size on each side: on
    /// tight crops where the face fills the frame SCRFD finds nothing without the margin.
    pub fn detect_padded(&self, img: &RgbImage) -> Result<Vec<ScrfdDetection>> {
        let (mx, my) = (img.width() / 2, img.height() / 2);
        let mut padded = RgbImage::new(img.width() + 2 * mx, img.height() + 2 * my);
        image::imageops::replace(&mut padded, img, mx as i64, my as i64);
        Ok(self
            .detect(&padded)?
            .into_iter()
            .map(|d| d.transformed(-(mx as f32), -(my as f32), 1.0))
            .collect())
    }
}
