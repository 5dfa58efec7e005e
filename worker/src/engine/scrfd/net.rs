//! SCRFD-500M as candle tensors in NCHW (candle's grouped `conv2d` for the depthwise
//! layers): the forward pass on CUDA. The CPU runs [`super::net_cpu`]; the heads'
//! outputs come back to the host in the same layout from both.

use candle_core::{Device, Module, Tensor};
use candle_nn::{Conv2d, Conv2dConfig};

use super::decode::StrideOutput;
use super::net_cpu::split_head;
use super::weights::{ConvWeights, STRIDES, ScrfdWeights};
use crate::engine::Result;

fn conv(w: &ConvWeights, device: &Device) -> Result<Conv2d> {
    Ok(Conv2d::new(
        Tensor::from_slice(&w.weight, w.shape().to_vec(), device)?,
        Some(Tensor::from_slice(&w.bias, w.c_out, device)?),
        Conv2dConfig {
            padding: w.pad,
            stride: w.stride,
            groups: w.groups,
            ..Default::default()
        },
    ))
}

/// A convolution, optionally followed by ReLU.
struct Layer {
    conv: Conv2d,
    relu: bool,
}

impl Layer {
    fn new(w: &ConvWeights, relu: bool, device: &Device) -> Result<Layer> {
        Ok(Layer {
            conv: conv(w, device)?,
            relu,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.conv.forward(x)?;
        Ok(if self.relu { y.relu()? } else { y })
    }
}

/// `fine + nearest-upsampled coarse`.
fn add_upsampled(fine: &Tensor, coarse: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = fine.dims4()?;
    Ok((fine + coarse.upsample_nearest2d(h, w)?)?)
}

pub struct ScrfdNet {
    /// Stem, then every separable block's depthwise and pointwise layer in order.
    backbone: Vec<Layer>,
    /// Indices into `backbone` of the stride-8/16/32 features.
    taps: [usize; 3],
    lateral: [Layer; 3],
    fpn: [Layer; 3],
    downsample: [Layer; 2],
    pafpn: [Layer; 2],
    /// Per stride: the four tower layers, then the fused output conv.
    heads: [Vec<Layer>; 3],
    device: Device,
}

impl ScrfdNet {
    pub fn new(w: &ScrfdWeights, device: &Device) -> Result<ScrfdNet> {
        let mut backbone = vec![Layer::new(&w.stem, true, device)?];
        for b in &w.blocks {
            backbone.push(Layer::new(&b.depthwise, true, device)?);
            backbone.push(Layer::new(&b.pointwise, true, device)?);
        }
        // Block i's output is backbone layer 2·i + 2 (after the stem).
        let taps = w.taps.map(|i| 2 * i + 2);
        let plain = |c: &ConvWeights| Layer::new(c, false, device);
        let head = |i: usize| -> Result<Vec<Layer>> {
            let h = &w.heads[i];
            let mut layers = Vec::with_capacity(5);
            for s in &h.tower {
                layers.push(Layer::new(&s.depthwise, true, device)?);
                layers.push(Layer::new(&s.pointwise, true, device)?);
            }
            layers.push(plain(&h.out)?);
            Ok(layers)
        };
        Ok(ScrfdNet {
            backbone,
            taps,
            lateral: [
                plain(&w.lateral[0])?,
                plain(&w.lateral[1])?,
                plain(&w.lateral[2])?,
            ],
            fpn: [plain(&w.fpn[0])?, plain(&w.fpn[1])?, plain(&w.fpn[2])?],
            downsample: [plain(&w.downsample[0])?, plain(&w.downsample[1])?],
            pafpn: [plain(&w.pafpn[0])?, plain(&w.pafpn[1])?],
            heads: [head(0)?, head(1)?, head(2)?],
            device: device.clone(),
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// `x`: `(1, 3, H, W)` normalised, H and W multiples of 32, on this net's device.
    pub fn forward(&self, x: &Tensor) -> Result<[StrideOutput; 3]> {
        let mut f = x.clone();
        let mut features = Vec::with_capacity(3);
        for (i, layer) in self.backbone.iter().enumerate() {
            f = layer.forward(&f)?;
            if self.taps.contains(&i) {
                features.push(f.clone());
            }
        }
        let [c3, c4, c5] = [&features[0], &features[1], &features[2]];
        let l2 = self.lateral[2].forward(c5)?;
        let l1 = add_upsampled(&self.lateral[1].forward(c4)?, &l2)?;
        let l0 = add_upsampled(&self.lateral[0].forward(c3)?, &l1)?;
        let p0 = self.fpn[0].forward(&l0)?;
        let p1 = (self.fpn[1].forward(&l1)? + self.downsample[0].forward(&p0)?)?;
        let p2 = (self.fpn[2].forward(&l2)? + self.downsample[1].forward(&p1)?)?;
        let levels = [p0, self.pafpn[0].forward(&p1)?, self.pafpn[1].forward(&p2)?];
        let head = |i: usize| -> Result<StrideOutput> {
            let mut t = levels[i].clone();
            for layer in &self.heads[i] {
                t = layer.forward(&t)?;
            }
            let (_, _, h, w) = t.dims4()?;
            let nhwc = t
                .permute((0, 2, 3, 1))?
                .flatten_all()?
                .to_device(&Device::Cpu)?
                .to_vec1::<f32>()?;
            Ok(split_head(STRIDES[i], h, w, &nhwc))
        };
        Ok([head(0)?, head(1)?, head(2)?])
    }
}
