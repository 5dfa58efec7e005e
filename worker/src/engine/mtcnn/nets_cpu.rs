//! The three MTCNN networks for the CPU, as NHWC layers (`engine::nhwc`): every layer,
//! dense ones included, is one im2col + GEMM with bias and PReLU in the same pass, and
//! each network's final linear heads are fused into one 1×1 convolution. Same weights and
//! arithmetic as [`super::nets`], which runs them through candle-nn on other devices.

use candle_core::Shape;
use candle_nn::VarBuilder;

use crate::engine::Result;
use crate::engine::nhwc::direct::DirectConv;
use crate::engine::nhwc::{Act, Maps, buffers, in_pool, max_pool_ceil};

fn values(vb: &VarBuilder, shape: impl Into<Shape>, name: &str) -> Result<Vec<f32>> {
    Ok(vb.get(shape, name)?.flatten_all()?.to_vec1::<f32>()?)
}

/// A convolution or dense layer followed by PReLU.
struct Layer {
    conv: DirectConv,
    slopes: Vec<f32>,
    /// A dense layer: a 1×1 convolution across the batch.
    dense: bool,
}

/// `f` on the batch's maps laid out as one row of `n` pixels of `h·w·c` channels (the
/// same values in the same order), its output back as `n` maps of one pixel. Dense
/// layers and heads then take the kernel's blocks of pixels across crops; as `n` rows
/// of one pixel each they went pixel by pixel, at less than half the speed. The sums
/// are the same, in the same order.
fn across_batch(x: &Maps, f: impl FnOnce(&Maps) -> Maps) -> Maps {
    let mut data = buffers::scratch(x.data.len());
    data.copy_from_slice(&x.data);
    let row = Maps {
        n: 1,
        h: 1,
        w: x.n,
        c: x.h * x.w * x.c,
        data,
    };
    let y = f(&row);
    buffers::recycle(row.data);
    Maps {
        n: x.n,
        h: 1,
        w: 1,
        c: y.c,
        data: y.data,
    }
}

impl Layer {
    fn conv(
        vb: &VarBuilder,
        conv: &str,
        prelu: &str,
        (cin, cout, k): (usize, usize, usize),
    ) -> Result<Self> {
        let weight = values(&vb.pp(conv), (cout, cin, k, k), "weight")?;
        let bias = values(&vb.pp(conv), cout, "bias")?;
        Ok(Self {
            conv: DirectConv::from_oihw(&weight, &bias, [cout, cin, k, k], 1, 0).with_winograd(),
            slopes: values(&vb.pp(prelu), cout, "weight")?,
            dense: false,
        })
    }

    /// A dense layer over `(c, h, w)` maps, as a 1×1 convolution over the batch laid out
    /// as one row of pixels of `h·w·c` channels (see [`across_batch`]). PyTorch
    /// flattens after `permute(0, 3, 2, 1)`, so its input column for `(x, y, ch)` is
    /// `(x·h + y)·c + ch`; ours, NHWC's, is `(y·w + x)·c + ch`.
    fn dense(
        vb: &VarBuilder,
        dense: &str,
        prelu: &str,
        (c, h, w): (usize, usize, usize),
        out: usize,
    ) -> Result<Self> {
        let flat = values(&vb.pp(dense), (out, c * h * w), "weight")?;
        let mut oi = vec![0.0f32; flat.len()];
        for o in 0..out {
            for x in 0..w {
                for y in 0..h {
                    for ch in 0..c {
                        oi[o * c * h * w + (y * w + x) * c + ch] =
                            flat[o * c * h * w + (x * h + y) * c + ch];
                    }
                }
            }
        }
        let bias = values(&vb.pp(dense), out, "bias")?;
        Ok(Self {
            conv: DirectConv::from_oihw(&oi, &bias, [out, c * h * w, 1, 1], 1, 0),
            slopes: values(&vb.pp(prelu), out, "weight")?,
            dense: true,
        })
    }

    fn forward(&self, x: &Maps) -> Result<Maps> {
        let act = Act::Prelu(&self.slopes);
        Ok(match self.dense {
            true => across_batch(x, |row| self.conv.forward_act(row, act)),
            false => self.conv.forward_act(x, act),
        })
    }

    /// The layer, then max pooling (`k`, stride `s`, ceil mode); the unpooled map goes
    /// back to the buffer pool. Windows that do not overlap are pooled as the layer's
    /// rows are computed.
    fn forward_pooled(&self, x: &Maps, k: usize, s: usize) -> Result<Maps> {
        if k == s {
            return Ok(self.conv.forward_max_pooled(x, Act::Prelu(&self.slopes), k));
        }
        let y = self.forward(x)?;
        let pooled = max_pool_ceil(&y, k, s);
        buffers::recycle(y.data);
        Ok(pooled)
    }
}

/// `layer` on `x`, whose buffer then goes back to the pool: R-Net's and O-Net's maps for
/// a batch of 256 crops (up to 14 MB) were faulted in fresh on every batch.
fn then(x: Maps, layer: impl FnOnce(&Maps) -> Result<Maps>) -> Result<Maps> {
    let y = layer(&x);
    buffers::recycle(x.data);
    y
}

/// The final linear layers (`conv4_1`/`conv4_2`, `dense5_*`, `dense6_*`) stacked into one
/// 1×1 convolution: output channels are the heads' outputs in the order given.
fn heads(vb: &VarBuilder, cin: usize, names: &[(&str, usize)]) -> Result<DirectConv> {
    let (mut weight, mut bias) = (Vec::new(), Vec::new());
    for &(name, out) in names {
        // Conv heads are (out, cin, 1, 1) and dense heads (out, cin): the same numbers.
        let vb = vb.pp(name);
        let w = vb
            .get((out, cin, 1, 1), "weight")
            .or_else(|_| vb.get((out, cin), "weight"))?;
        weight.extend(w.flatten_all()?.to_vec1::<f32>()?);
        bias.extend(values(&vb, out, "bias")?);
    }
    let total = bias.len();
    Ok(DirectConv::from_oihw(
        &weight,
        &bias,
        [total, cin, 1, 1],
        1,
        0,
    ))
}

/// The second of two logits after softmax, computed as softmax does it.
fn face_probability(no: f32, yes: f32) -> f32 {
    let m = no.max(yes);
    let (e0, e1) = ((no - m).exp(), (yes - m).exp());
    e1 / (e0 + e1)
}

/// P-Net's output on one pyramid level: per cell (row-major), the face probability and
/// the box regression.
pub struct ProposalMaps {
    pub h: usize,
    pub w: usize,
    pub prob: Vec<f32>,
    pub reg: Vec<[f32; 4]>,
}

pub struct PNetCpu {
    conv1: Layer,
    conv2: Layer,
    conv3: Layer,
    heads: DirectConv,
}

impl PNetCpu {
    pub fn load(vb: &VarBuilder) -> Result<Self> {
        Ok(Self {
            conv1: Layer::conv(vb, "conv1", "prelu1", (3, 10, 3))?,
            conv2: Layer::conv(vb, "conv2", "prelu2", (10, 16, 3))?,
            conv3: Layer::conv(vb, "conv3", "prelu3", (16, 32, 3))?,
            heads: heads(vb, 32, &[("conv4_1", 2), ("conv4_2", 4)])?,
        })
    }

    /// `x`: one normalised image, `(1, H, W, 3)`.
    pub fn forward(&self, x: &Maps) -> Result<ProposalMaps> {
        in_pool(|| self.run(x))
    }

    fn run(&self, x: &Maps) -> Result<ProposalMaps> {
        // Each map back to the buffer pool once read: freed, the large ones are unmapped
        // and the next level or photo faults their pages in again.
        let pooled = self.conv1.forward_pooled(x, 2, 2)?;
        let c2 = self.conv2.forward(&pooled)?;
        buffers::recycle(pooled.data);
        let x = self.conv3.forward(&c2)?;
        buffers::recycle(c2.data);
        let out = self.heads.forward(&x);
        buffers::recycle(x.data);
        let (prob, reg) = out
            .data
            .chunks_exact(6)
            .map(|v| (face_probability(v[0], v[1]), [v[2], v[3], v[4], v[5]]))
            .unzip();
        Ok(ProposalMaps {
            h: out.h,
            w: out.w,
            prob,
            reg,
        })
    }
}

/// R-Net's verdict on one crop.
pub struct Refinement {
    pub prob: f32,
    pub reg: [f32; 4],
}

pub struct RNetCpu {
    conv1: Layer,
    conv2: Layer,
    conv3: Layer,
    dense4: Layer,
    heads: DirectConv,
}

impl RNetCpu {
    pub fn load(vb: &VarBuilder) -> Result<Self> {
        Ok(Self {
            conv1: Layer::conv(vb, "conv1", "prelu1", (3, 28, 3))?,
            conv2: Layer::conv(vb, "conv2", "prelu2", (28, 48, 3))?,
            conv3: Layer::conv(vb, "conv3", "prelu3", (48, 64, 2))?,
            dense4: Layer::dense(vb, "dense4", "prelu4", (64, 3, 3), 128)?,
            heads: heads(vb, 128, &[("dense5_1", 2), ("dense5_2", 4)])?,
        })
    }

    /// `x`: `(N, 24, 24, 3)` crops.
    pub fn forward(&self, x: &Maps) -> Result<Vec<Refinement>> {
        in_pool(|| self.run(x))
    }

    fn run(&self, x: &Maps) -> Result<Vec<Refinement>> {
        let x = self.conv1.forward_pooled(x, 3, 2)?;
        let x = then(x, |x| self.conv2.forward_pooled(x, 3, 2))?;
        let x = then(x, |x| self.conv3.forward(x))?;
        let x = then(x, |x| self.dense4.forward(x))?;
        let out = then(x, |x| Ok(across_batch(x, |row| self.heads.forward(row))))?;
        let refined = out
            .data
            .chunks_exact(6)
            .map(|v| Refinement {
                prob: face_probability(v[0], v[1]),
                reg: [v[2], v[3], v[4], v[5]],
            })
            .collect();
        buffers::recycle(out.data);
        Ok(refined)
    }
}

/// O-Net's verdict on one crop: probability, box regression, and landmarks as
/// `x1..x5, y1..y5` relative to the box.
pub struct Output {
    pub prob: f32,
    pub reg: [f32; 4],
    pub points: [f32; 10],
}

pub struct ONetCpu {
    conv1: Layer,
    conv2: Layer,
    conv3: Layer,
    conv4: Layer,
    dense5: Layer,
    heads: DirectConv,
}

impl ONetCpu {
    pub fn load(vb: &VarBuilder) -> Result<Self> {
        Ok(Self {
            conv1: Layer::conv(vb, "conv1", "prelu1", (3, 32, 3))?,
            conv2: Layer::conv(vb, "conv2", "prelu2", (32, 64, 3))?,
            conv3: Layer::conv(vb, "conv3", "prelu3", (64, 64, 3))?,
            conv4: Layer::conv(vb, "conv4", "prelu4", (64, 128, 2))?,
            dense5: Layer::dense(vb, "dense5", "prelu5", (128, 3, 3), 256)?,
            heads: heads(
                vb,
                256,
                &[("dense6_1", 2), ("dense6_2", 4), ("dense6_3", 10)],
            )?,
        })
    }

    /// `x`: `(N, 48, 48, 3)` crops.
    pub fn forward(&self, x: &Maps) -> Result<Vec<Output>> {
        in_pool(|| self.run(x))
    }

    fn run(&self, x: &Maps) -> Result<Vec<Output>> {
        let x = self.conv1.forward_pooled(x, 3, 2)?;
        let x = then(x, |x| self.conv2.forward_pooled(x, 3, 2))?;
        let x = then(x, |x| self.conv3.forward_pooled(x, 2, 2))?;
        let x = then(x, |x| self.conv4.forward(x))?;
        let x = then(x, |x| self.dense5.forward(x))?;
        let out = then(x, |x| Ok(across_batch(x, |row| self.heads.forward(row))))?;
        let outputs = out
            .data
            .chunks_exact(16)
            .map(|v| Output {
                prob: face_probability(v[0], v[1]),
                reg: [v[2], v[3], v[4], v[5]],
                points: std::array::from_fn(|i| v[6 + i]),
            })
            .collect();
        buffers::recycle(out.data);
        Ok(outputs)
    }
}
