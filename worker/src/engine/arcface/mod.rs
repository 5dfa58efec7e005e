//! The ArcFace embedder: InsightFace's MobileFaceNet trained with the ArcFace loss on
//! WebFace600K (`w600k_mbf.onnx`, 512-D), read from its ONNX file. Faces are aligned from
//! 5 keypoints (SCRFD's convention) with InsightFace's `norm_crop`.

pub mod alignment;
mod grouped_conv;
pub mod network;

use std::path::Path;

use candle_core::Device;
use image::RgbImage;

pub use self::network::{Layout, MobileFaceNet};
use super::Result;
use super::onnx::OnnxModel;

/// Length of an ArcFace embedding.
pub const EMBEDDING_LEN: usize = 512;
/// Crops per forward pass on the CPU: bounds the largest feature maps (about 200 MB at
/// 32 crops).
const MAX_BATCH: usize = 32;
/// On a GPU: the shared embedding stage's batches (`EMBED_BATCH`) go through whole.
const MAX_GPU_BATCH: usize = 256;

/// Five keypoints of a face, (x, y) in photo pixels: left eye, right eye, nose tip, left
/// and right mouth corners, "left" being the image's left.
pub type Keypoints = [[f32; 2]; 5];

/// Embeds faces with MobileFaceNet; the result is L2-normalised, so that the cosine
/// similarity of two faces is their dot product.
#[derive(Debug)]
pub struct ArcFaceEmbedder {
    net: MobileFaceNet,
}

impl ArcFaceEmbedder {
    /// Stable name stored with each embedding.
    pub const MODEL_NAME: &'static str = "arcface_w600k_mbf";

    /// Reads `w600k_mbf.onnx` and builds the network for `device`: NHWC kernels on the
    /// CPU, candle-nn's modules elsewhere.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let layout = if device.is_cpu() {
            Layout::Nhwc
        } else {
            Layout::Candle
        };
        Self::load_with_layout(path, device, layout)
    }

    pub fn load_with_layout(path: &Path, device: &Device, layout: Layout) -> Result<Self> {
        let model = OnnxModel::load(path)?;
        let net = MobileFaceNet::load(&model, device, layout)?;
        if net.embedding_len() != EMBEDDING_LEN {
            return Err(super::EngineError::Invalid(format!(
                "{}: {}-D output, expected {EMBEDDING_LEN}",
                path.display(),
                net.embedding_len()
            )));
        }
        tracing::debug!(path = %path.display(), ?layout, "loaded ArcFace embedder");
        Ok(Self { net })
    }

    /// Embeddings of aligned 112×112 RGB crops, in order, batched.
    pub fn embed_crops(&self, crops: &[RgbImage]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(crops.len());
        let max = match self.net.layout() {
            Layout::Nhwc => MAX_BATCH,
            Layout::Candle => MAX_GPU_BATCH,
        };
        for batch in crops.chunks(max) {
            out.extend(self.net.forward(batch)?);
        }
        Ok(out)
    }

    /// Aligns each face of `image` from its keypoints and embeds all of them in one pass.
    pub fn embed(&self, image: &RgbImage, keypoints: &[Keypoints]) -> Result<Vec<Vec<f32>>> {
        let crops = keypoints
            .iter()
            .map(|k| alignment::norm_crop(image, k))
            .collect::<Result<Vec<_>>>()?;
        self.embed_crops(&crops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::onnx::tests::mbf_path;

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>()
            / (a.iter().map(|x| x * x).sum::<f32>().sqrt()
                * b.iter().map(|x| x * x).sum::<f32>().sqrt())
    }

    /// Crops with structure (gradients, a bright disc) and noise, so that the layers see
    /// varied inputs.
    fn test_crops() -> Vec<RgbImage> {
        (0..3u32)
            .map(|k| {
                RgbImage::from_fn(112, 112, |x, y| {
                    let d = ((x as i32 - 56).pow(2) + (y as i32 - 50).pow(2)) as u32;
                    let disc = if d < 900 + 200 * k { 90 } else { 0 };
                    let noise = (x * 7919 + y * 104729 + k * 31) % 37;
                    image::Rgb([
                        ((x * 2 + k * 40 + disc + noise) % 256) as u8,
                        ((y * 2 + disc) % 256) as u8,
                        ((x + y + noise * k) % 256) as u8,
                    ])
                })
            })
            .collect()
    }

    #[test]
    fn builds_the_layers_of_mobilefacenet() {
        let model = OnnxModel::load(&mbf_path()).unwrap();
        let net = MobileFaceNet::load(&model, &Device::Cpu, Layout::Nhwc).unwrap();
        // 49 convolutions, 16 of them grouped (15 depthwise); the 34 PReLUs fused into them.
        assert_eq!(net.conv_counts(), (33, 16));
        assert_eq!(net.embedding_len(), EMBEDDING_LEN);
        let candle = MobileFaceNet::load(&model, &Device::Cpu, Layout::Candle).unwrap();
        assert_eq!(candle.conv_counts(), (33, 16));
    }

    /// The CPU's NHWC kernels and candle-nn's modules (CUDA's path) give the same
    /// embeddings, batched; the output is unit length and depends on the face.
    #[test]
    fn nhwc_and_candle_paths_agree() {
        let device = Device::Cpu;
        let nhwc = ArcFaceEmbedder::load_with_layout(&mbf_path(), &device, Layout::Nhwc).unwrap();
        let candle =
            ArcFaceEmbedder::load_with_layout(&mbf_path(), &device, Layout::Candle).unwrap();
        let crops = test_crops();
        let a = nhwc.embed_crops(&crops).unwrap();
        let b = candle.embed_crops(&crops).unwrap();
        assert_eq!((a.len(), b.len()), (3, 3));
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert_eq!(x.len(), EMBEDDING_LEN);
            let norm = x.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
            let c = cosine(x, y);
            assert!(c >= 0.9999, "crop {i}: cosine {c}");
        }
        assert!(
            cosine(&a[0], &a[2]) < 0.999,
            "different crops, same embedding"
        );
        // One crop alone gives what it gave in the batch.
        let single = nhwc.embed_crops(&crops[1..2]).unwrap();
        assert!(cosine(&single[0], &a[1]) > 0.99999);
    }

    #[test]
    fn wrong_crop_size_is_rejected() {
        let e = ArcFaceEmbedder::load(&mbf_path(), &Device::Cpu).unwrap();
        let err = e.embed_crops(&[RgbImage::new(150, 150)]).unwrap_err();
        assert!(err.to_string().contains("112x112"), "{err}");
        assert!(e.embed_crops(&[]).unwrap().is_empty());
    }
}
