//! dlib's face-recognition ResNet (`dlib_face_recognition_resnet_model_v1.dat`): 29
//! convolutions, 128-D descriptor. The `.dat` layer chain is parsed record by record
//! (`layer_chain`), each `affine` is folded into the convolution below it at load time
//! (`conv_affine`), chips become input tensors in `preprocess`, and this file holds the
//! network: its residual units and dlib's forward pass, in candle.

mod conv_affine;
mod layer_chain;
mod preprocess;

use std::path::Path;

use candle_core::{D, Device, Tensor};
use image::RgbImage;

use crate::engine::dlib::face_chip::CHIP_SIZE;
use crate::engine::dlib::format::Reader;
use crate::engine::matching::Descriptor;
use crate::engine::nhwc;
use crate::engine::{EngineError, Result};
use conv_affine::ConvAffine;
use layer_chain::{ParsedNet, Record, Records, parse};

/// Length of a dlib face descriptor.
pub const DESCRIPTOR_LEN: usize = 128;

/// Chips per forward pass on the CPU; bounds the im2col buffers (≈ 0.5 GB of f32 at 32).
const MAX_BATCH: usize = 32;
/// On a GPU: the shared embedding stage's batches (`EMBED_BATCH`) go through whole.
const MAX_GPU_BATCH: usize = 256;

/// One residual unit: `relu(shortcut ⊕ conv2(relu(conv1(x))))`, where the shortcut of a
/// down unit is a 2×2 average pool and ⊕ is dlib's zero-padding add.
#[derive(Debug)]
struct Residual {
    conv1: ConvAffine,
    conv2: ConvAffine,
    down: Option<[usize; 2]>,
}

/// The loaded descriptor network.
#[derive(Debug)]
pub struct FaceDescriptor {
    stem: ConvAffine,
    stem_pool: ([usize; 2], [usize; 2]),
    units: Vec<Residual>,
    /// `(256, 128)`, row = input.
    fc: Tensor,
    avg_rgb: [f32; 3],
    device: Device,
    /// The CPU's NHWC layers (else candle-nn's modules, as on CUDA).
    nhwc: bool,
}

impl FaceDescriptor {
    /// Reads the `.dat` file and builds the network on `device`.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        Self::load_layers(path, device, device.is_cpu())
    }

    /// `nhwc`: the CPU's NHWC layers instead of candle-nn's modules.
    fn load_layers(path: &Path, device: &Device, nhwc: bool) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| EngineError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut reader = Reader::new(&bytes, path);
        let net = parse(&mut reader)?;
        let model = Self::build(net, &reader, device, nhwc)?;
        tracing::debug!(path = %path.display(), units = model.units.len(), "loaded face descriptor net");
        Ok(model)
    }

    fn build(net: ParsedNet, r: &Reader<'_>, device: &Device, nhwc: bool) -> Result<Self> {
        if net.input_size != [CHIP_SIZE as usize; 2] {
            return Err(r.error(format!("input size {:?}, expected 150x150", net.input_size)));
        }
        let mut recs = Records {
            iter: net.records.into_iter().peekable(),
            r,
            nhwc,
        };
        let stem = recs.conv_affine(device)?;
        recs.relu()?;
        let stem_pool = match recs.next("max_pool")? {
            Record::MaxPool {
                size,
                stride,
                padding: [0, 0],
            } => (size, stride),
            other => return Err(recs.bad("max_pool without padding", &other)),
        };

        let mut units = Vec::new();
        loop {
            if matches!(recs.iter.peek(), Some(Record::AvgPool { size: [0, 0], .. })) {
                break; // avg_pool_everything: the head
            }
            let conv1 = recs.conv_affine(device)?;
            recs.relu()?;
            let conv2 = recs.conv_affine(device)?;
            let down = match recs.next("avg_pool or add_prev")? {
                Record::AvgPool {
                    size,
                    stride,
                    padding: [0, 0],
                } if size == stride => {
                    match recs.next("add_prev")? {
                        Record::AddPrev => {}
                        other => return Err(recs.bad("add_prev", &other)),
                    }
                    Some(size)
                }
                Record::AddPrev => None,
                other => return Err(recs.bad("add_prev or avg_pool", &other)),
            };
            recs.relu()?;
            units.push(Residual { conv1, conv2, down });
        }
        recs.next("avg_pool_everything")?;
        let fc = match recs.next("fc")? {
            Record::Fc {
                num_outputs: DESCRIPTOR_LEN,
                num_inputs,
                params,
                bias_mode: 1,
            } if params.len() == num_inputs * DESCRIPTOR_LEN => {
                Tensor::from_vec(params.data, (num_inputs, DESCRIPTOR_LEN), device)?
            }
            other => return Err(recs.bad("fc_no_bias with 128 outputs", &other)),
        };
        if let Some(extra) = recs.iter.next() {
            return Err(recs.bad("the end of the layer chain", &extra));
        }
        let downs = units.iter().filter(|u| u.down.is_some()).count();
        // Each residual unit has one tag; a down unit a second tag and a skip.
        if net.tags_and_skips != units.len() + 2 * downs {
            return Err(r.error(format!(
                "{} tag/skip layers do not fit {} residual units ({downs} down)",
                net.tags_and_skips,
                units.len()
            )));
        }
        Ok(Self {
            stem,
            stem_pool,
            units,
            fc,
            avg_rgb: net.avg_rgb,
            device: device.clone(),
            nhwc,
        })
    }

    /// 128-D descriptors of 150×150 aligned chips (from `face_chip`), in order. Large
    /// inputs run in batches of 32.
    pub fn embed(&self, chips: &[RgbImage]) -> Result<Vec<Descriptor>> {
        let mut out = Vec::with_capacity(chips.len());
        let max = if self.nhwc { MAX_BATCH } else { MAX_GPU_BATCH };
        for batch in chips.chunks(max) {
            let d = if self.nhwc {
                let x = preprocess::input_maps(batch, &self.avg_rgb)?;
                let d = nhwc::in_pool(|| self.forward_cpu(&x));
                nhwc::buffers::recycle(x.data);
                d?
            } else {
                self.forward(&preprocess::input_tensor(
                    batch,
                    &self.avg_rgb,
                    &self.device,
                )?)?
            }
            .to_vec2::<f32>()?;
            out.extend(d);
        }
        Ok(out)
    }

    /// The forward pass of [`Self::forward`] on NHWC maps; `(n, 128)` descriptors.
    fn forward_cpu(&self, x: &nhwc::Maps) -> Result<Tensor> {
        // Every map goes back to the buffer pool once read: a batch of 30 faces' maps
        // are 20 MB each, and fresh ones were faulted in page by page on every photo.
        use nhwc::buffers::recycle;
        let (pool, stride) = self.stem_pool;
        let mut stem = self.stem.forward_cpu(x)?;
        stem.relu();
        let mut x = nhwc::max_pool(&stem, pool[0], stride[0]);
        recycle(stem.data);
        for unit in &self.units {
            let mut h1 = unit.conv1.forward_cpu(&x)?;
            h1.relu();
            let mut h = unit.conv2.forward_cpu(&h1)?;
            recycle(h1.data);
            let mut y = match unit.down {
                None => {
                    h.add_assign(&x);
                    h
                }
                Some(k) => {
                    let shortcut = nhwc::avg_pool(&x, k[0], k[0]);
                    let y = nhwc::add_zero_padded(&shortcut, &h);
                    recycle(shortcut.data);
                    recycle(h.data);
                    y
                }
            };
            y.relu();
            recycle(std::mem::replace(&mut x, y).data);
        }
        let means = x.mean_over_pixels();
        let (n, c) = (x.n, x.c);
        recycle(x.data);
        let pooled = Tensor::from_vec(means, (n, c), &self.device)?;
        Ok(pooled.matmul(&self.fc)?)
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (pool, stride) = self.stem_pool;
        let mut x = self
            .stem
            .forward(x)?
            .relu()?
            .max_pool2d_with_stride((pool[0], pool[1]), (stride[0], stride[1]))?;
        for unit in &self.units {
            let h = unit.conv2.forward(&unit.conv1.forward(&x)?.relu()?)?;
            x = match unit.down {
                None => (h + &x)?,
                Some(k) => add_prev(&x.avg_pool2d_with_stride((k[0], k[1]), (k[0], k[1]))?, &h)?,
            }
            .relu()?;
        }
        let pooled = x.mean(D::Minus1)?.mean(D::Minus1)?; // avg_pool_everything
        Ok(pooled.matmul(&self.fc)?)
    }
}

/// dlib's `add_prev` between tensors of different shapes: the output takes the larger
/// size in every dimension and a missing element counts as zero.
fn add_prev(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    let (da, db) = (a.dims(), b.dims());
    let pad = |t: &Tensor, dims: &[usize]| -> candle_core::Result<Tensor> {
        let mut t = t.clone();
        for (axis, (&have, (&x, &y))) in dims.iter().zip(da.iter().zip(db)).enumerate() {
            let want = x.max(y);
            if have < want {
                t = t.pad_with_zeros(axis, 0, want - have)?;
            }
        }
        Ok(t)
    };
    pad(a, da)? + pad(b, db)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;
    use std::path::PathBuf;

    fn model_path() -> PathBuf {
        std::env::var_os("MODELS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/models"))
            .join("dlib_face_recognition_resnet_model_v1.dat")
    }

    /// The CPU's NHWC layers and candle-nn's modules (what CUDA runs), both on the CPU,
    /// give the same descriptors.
    #[test]
    fn nhwc_layers_match_candle_nn_modules() {
        // Any 150×150 pictures exercise the arithmetic; faces make it realistic.
        let chips: Vec<RgbImage> = ["people/obama/obama1.jpg", "people/biden/biden1.jpg"]
            .iter()
            .map(|rel| {
                let img = image::open(crate::fixtures::photo(rel))
                    .expect("fixture")
                    .to_rgb8();
                image::imageops::resize(&img, 150, 150, image::imageops::FilterType::Triangle)
            })
            .collect();
        let load = |nhwc| FaceDescriptor::load_layers(&model_path(), &Device::Cpu, nhwc).unwrap();
        let ours = load(true).embed(&chips).unwrap();
        let reference = load(false).embed(&chips).unwrap();
        for (a, b) in ours.iter().zip(&reference) {
            let l2 = a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y).powi(2))
                .sum::<f32>()
                .sqrt();
            assert!(l2 < 1e-4, "L2 {l2}");
        }
        // Different faces, different descriptors: the comparison is not vacuous.
        let apart = ours[0]
            .iter()
            .zip(&ours[1])
            .map(|(x, y)| (x - y).powi(2))
            .sum::<f32>()
            .sqrt();
        assert!(apart > 0.3, "{apart}");
    }

    #[test]
    fn loads_into_fourteen_units_with_four_down_units() {
        let model = FaceDescriptor::load(&model_path(), &Device::Cpu).expect("load");
        assert_eq!(model.units.len(), 14);
        let downs: Vec<bool> = model.units.iter().map(|u| u.down.is_some()).collect();
        let mut expect = vec![false; 14];
        for i in [3, 7, 10, 13] {
            expect[i] = true;
        }
        assert_eq!(downs, expect);
    }

    #[test]
    fn add_prev_zero_pads_channels_and_rows() {
        let dev = Device::Cpu;
        let a = Tensor::ones((1, 1, 2, 2), DType::F32, &dev).unwrap();
        let b = Tensor::full(2f32, (1, 2, 1, 1), &dev).unwrap();
        let s = add_prev(&a, &b).unwrap();
        assert_eq!(s.dims(), &[1, 2, 2, 2]);
        let v = s.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(v, vec![3.0, 1.0, 1.0, 1.0, 2.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn wrong_chip_size_is_rejected() {
        let model = FaceDescriptor::load(&model_path(), &Device::Cpu).expect("load");
        let err = model.embed(&[RgbImage::new(100, 100)]).unwrap_err();
        assert!(err.to_string().contains("150x150"), "{err}");
    }
}
