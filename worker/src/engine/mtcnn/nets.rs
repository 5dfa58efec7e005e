//! The three MTCNN networks (facenet-pytorch's `PNet`, `RNet`, `ONet`) as candle-nn modules,
//! loaded from their state dicts: the forward pass on CUDA (the CPU runs `nets_cpu`).
//! Only the networks live here; pyramid, crops and NMS are in the parent module.

use candle_core::{D, Module, Result, Tensor};
use candle_nn::{Conv2d, Linear, VarBuilder};

/// A layer (convolution or dense, without its bias) followed by bias + per-channel PReLU.
struct BiasPrelu {
    bias: Tensor,
    alpha: Tensor,
}

impl BiasPrelu {
    fn load(vb: &VarBuilder, layer: &str, prelu: &str, channels: usize) -> Result<Self> {
        Ok(Self {
            bias: vb.pp(layer).get(channels, "bias")?,
            alpha: vb.pp(prelu).get(channels, "weight")?,
        })
    }

    /// `x`: (N, C, ...) without bias.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut shape = vec![1; x.rank()];
        shape[1] = self.bias.elem_count();
        let x = x.broadcast_add(&self.bias.reshape(shape.as_slice())?)?;
        let zeros = x.zeros_like()?;
        x.maximum(&zeros)?
            + x.minimum(&zeros)?
                .broadcast_mul(&self.alpha.reshape(shape.as_slice())?)?
    }
}

/// A convolution (stride 1, no padding) + bias + PReLU.
struct ConvPrelu {
    weight: Tensor,
    act: BiasPrelu,
}

impl ConvPrelu {
    fn load(
        vb: &VarBuilder,
        conv: &str,
        prelu: &str,
        (cin, cout, k): (usize, usize, usize),
    ) -> Result<Self> {
        Ok(Self {
            weight: vb.pp(conv).get((cout, cin, k, k), "weight")?,
            act: BiasPrelu::load(vb, conv, prelu, cout)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.act.forward(&x.conv2d(&self.weight, 0, 1, 1, 1)?)
    }
}

/// A dense layer that follows a conv block, + bias + PReLU. PyTorch flattens after
/// `permute(0,3,2,1)`, i.e. in (W, H, C) order; the weight's columns are reordered once here
/// so that the forward pass can flatten the contiguous (N, C, H, W) activations directly.
struct DensePrelu {
    weight_t: Tensor,
    act: BiasPrelu,
}

impl DensePrelu {
    fn load(
        vb: &VarBuilder,
        dense: &str,
        prelu: &str,
        (c, h, w): (usize, usize, usize),
        out: usize,
    ) -> Result<Self> {
        let weight_t = vb
            .pp(dense)
            .get((out, c * h * w), "weight")?
            .reshape((out, w, h, c))?
            .permute((3, 2, 1, 0))?
            .contiguous()?
            .reshape((c * h * w, out))?;
        Ok(Self {
            weight_t,
            act: BiasPrelu::load(vb, dense, prelu, out)?,
        })
    }

    /// `x`: (N, C, H, W) → (N, out).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.act
            .forward(&x.flatten_from(1)?.matmul(&self.weight_t)?)
    }
}

fn conv(vb: &VarBuilder, name: &str, cin: usize, cout: usize, k: usize) -> Result<Conv2d> {
    candle_nn::conv2d(cin, cout, k, Default::default(), vb.pp(name))
}

/// `nn.MaxPool2d(k, s, ceil_mode=True)` without padding. PyTorch's ceil mode adds a last,
/// partial window whenever one would start inside the input; replicating the last row and
/// column reproduces it exactly, because that partial window already contains the edge value.
fn max_pool_ceil(x: &Tensor, k: usize, s: usize) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let padded = |n: usize| {
        let out = if n <= k { 1 } else { (n - k).div_ceil(s) + 1 };
        (out - 1) * s + k
    };
    let (ph, pw) = (padded(h), padded(w));
    let x = if ph > h {
        x.pad_with_same(2, 0, ph - h)?
    } else {
        x.clone()
    };
    let x = if pw > w {
        x.pad_with_same(3, 0, pw - w)?
    } else {
        x
    };
    x.max_pool2d_with_stride(k, s)
}

/// Proposal network: fully convolutional, one 12×12 window per output cell (stride 2).
pub struct PNet {
    conv1: ConvPrelu,
    conv2: ConvPrelu,
    conv3: ConvPrelu,
    conv4_1: Conv2d,
    conv4_2: Conv2d,
}

impl PNet {
    pub fn load(vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            conv1: ConvPrelu::load(&vb, "conv1", "prelu1", (3, 10, 3))?,
            conv2: ConvPrelu::load(&vb, "conv2", "prelu2", (10, 16, 3))?,
            conv3: ConvPrelu::load(&vb, "conv3", "prelu3", (16, 32, 3))?,
            conv4_1: conv(&vb, "conv4_1", 32, 2, 1)?,
            conv4_2: conv(&vb, "conv4_2", 32, 4, 1)?,
        })
    }

    /// `x`: (N, 3, H, W) normalised. Returns (box regression (N, 4, H', W'),
    /// face probability (N, H', W')).
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let x = max_pool_ceil(&self.conv1.forward(x)?, 2, 2)?;
        let x = self.conv3.forward(&self.conv2.forward(&x)?)?;
        let prob = candle_nn::ops::softmax(&self.conv4_1.forward(&x)?, 1)?
            .narrow(1, 1, 1)?
            .squeeze(1)?;
        let reg = self.conv4_2.forward(&x)?;
        Ok((reg, prob))
    }
}

/// Refinement network on 24×24 crops.
pub struct RNet {
    conv1: ConvPrelu,
    conv2: ConvPrelu,
    conv3: ConvPrelu,
    dense4: DensePrelu,
    dense5_1: Linear,
    dense5_2: Linear,
}

impl RNet {
    pub fn load(vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            conv1: ConvPrelu::load(&vb, "conv1", "prelu1", (3, 28, 3))?,
            conv2: ConvPrelu::load(&vb, "conv2", "prelu2", (28, 48, 3))?,
            conv3: ConvPrelu::load(&vb, "conv3", "prelu3", (48, 64, 2))?,
            dense4: DensePrelu::load(&vb, "dense4", "prelu4", (64, 3, 3), 128)?,
            dense5_1: candle_nn::linear(128, 2, vb.pp("dense5_1"))?,
            dense5_2: candle_nn::linear(128, 4, vb.pp("dense5_2"))?,
        })
    }

    /// `x`: (N, 3, 24, 24). Returns (box regression (N, 4), face probability (N,)).
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let x = max_pool_ceil(&self.conv1.forward(x)?, 3, 2)?;
        let x = max_pool_ceil(&self.conv2.forward(&x)?, 3, 2)?;
        let x = self.dense4.forward(&self.conv3.forward(&x)?)?;
        let prob = candle_nn::ops::softmax(&self.dense5_1.forward(&x)?, D::Minus1)?
            .narrow(1, 1, 1)?
            .squeeze(1)?;
        let reg = self.dense5_2.forward(&x)?;
        Ok((reg, prob))
    }
}

/// Output network on 48×48 crops.
pub struct ONet {
    conv1: ConvPrelu,
    conv2: ConvPrelu,
    conv3: ConvPrelu,
    conv4: ConvPrelu,
    dense5: DensePrelu,
    dense6_1: Linear,
    dense6_2: Linear,
    dense6_3: Linear,
}

impl ONet {
    pub fn load(vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            conv1: ConvPrelu::load(&vb, "conv1", "prelu1", (3, 32, 3))?,
            conv2: ConvPrelu::load(&vb, "conv2", "prelu2", (32, 64, 3))?,
            conv3: ConvPrelu::load(&vb, "conv3", "prelu3", (64, 64, 3))?,
            conv4: ConvPrelu::load(&vb, "conv4", "prelu4", (64, 128, 2))?,
            dense5: DensePrelu::load(&vb, "dense5", "prelu5", (128, 3, 3), 256)?,
            dense6_1: candle_nn::linear(256, 2, vb.pp("dense6_1"))?,
            dense6_2: candle_nn::linear(256, 4, vb.pp("dense6_2"))?,
            dense6_3: candle_nn::linear(256, 10, vb.pp("dense6_3"))?,
        })
    }

    /// `x`: (N, 3, 48, 48). Returns (box regression (N, 4), landmarks (N, 10) as
    /// x1..x5, y1..y5 relative to the box, face probability (N,)).
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let x = max_pool_ceil(&self.conv1.forward(x)?, 3, 2)?;
        let x = max_pool_ceil(&self.conv2.forward(&x)?, 3, 2)?;
        let x = max_pool_ceil(&self.conv3.forward(&x)?, 2, 2)?;
        let x = self.dense5.forward(&self.conv4.forward(&x)?)?;
        let prob = candle_nn::ops::softmax(&self.dense6_1.forward(&x)?, D::Minus1)?
            .narrow(1, 1, 1)?
            .squeeze(1)?;
        let reg = self.dense6_2.forward(&x)?;
        let landmarks = self.dense6_3.forward(&x)?;
        Ok((reg, landmarks, prob))
    }
}
