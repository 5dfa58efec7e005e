//! 1×1 convolution (stride 1, no padding) on NHWC maps: the maps already are the GEMM's
//! left-hand matrix, `(pixels, c_in)`, so the im2col copy is skipped; bias and PReLU are
//! applied in one parallel pass over the product.

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use crate::engine::Result;
use crate::engine::nhwc::Maps;

/// Pixels per parallel task in the bias/PReLU pass.
const PIXELS_PER_TASK: usize = 1024;

#[derive(Debug)]
pub struct Pointwise {
    c_in: usize,
    c_out: usize,
    /// `(c_in, c_out)`.
    weight: Tensor,
    bias: Vec<f32>,
}

impl Pointwise {
    /// From ONNX/PyTorch order weights `(c_out, c_in, 1, 1)`. The caller checks lengths.
    pub fn from_oihw(weight: &[f32], bias: &[f32], c_out: usize, c_in: usize) -> Result<Self> {
        let mut w = vec![0.0f32; c_in * c_out];
        for o in 0..c_out {
            for i in 0..c_in {
                w[i * c_out + o] = weight[o * c_in + i];
            }
        }
        Ok(Pointwise {
            c_in,
            c_out,
            weight: Tensor::from_vec(w, (c_in, c_out), &Device::Cpu)?,
            bias: bias.to_vec(),
        })
    }

    pub fn forward(&self, x: &Maps, prelu: Option<&[f32]>) -> Result<Maps> {
        assert_eq!(x.c, self.c_in, "input channels");
        let pixels = x.n * x.h * x.w;
        let a = Tensor::from_slice(&x.data, (pixels, self.c_in), &Device::Cpu)?;
        let mut data = a.matmul(&self.weight)?.flatten_all()?.to_vec1::<f32>()?;
        let c_out = self.c_out;
        data.par_chunks_mut(c_out * PIXELS_PER_TASK)
            .for_each(|chunk| {
                for px in chunk.chunks_exact_mut(c_out) {
                    for (v, b) in px.iter_mut().zip(&self.bias) {
                        *v += b;
                    }
                    if let Some(alpha) = prelu {
                        for (v, slope) in px.iter_mut().zip(alpha) {
                            *v = v.max(0.0) + slope * v.min(0.0);
                        }
                    }
                }
            });
        Ok(Maps {
            n: x.n,
            h: x.h,
            w: x.w,
            c: c_out,
            data,
        })
    }
}
