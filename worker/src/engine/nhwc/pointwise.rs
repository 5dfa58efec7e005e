//! 1×1 convolution (stride 1, no padding) on NHWC maps: the maps already are the GEMM's
//! left-hand matrix `(pixels, c_in)`, so there is no im2col copy; bias and activation
//! are applied in one parallel pass over the product. Used by SCRFD and ArcFace.

use super::gemm::{self, Rhs};
use super::{Act, Maps, bias_act};
use crate::engine::Result;

#[derive(Debug)]
pub struct Pointwise {
    /// `(c_in, c_out)`.
    weight: Rhs,
    bias: Vec<f32>,
}

impl Pointwise {
    /// From ONNX/PyTorch order weights `(c_out, c_in, 1, 1)`.
    pub fn from_oihw(weight: &[f32], bias: &[f32], c_out: usize, c_in: usize) -> Pointwise {
        assert_eq!(weight.len(), c_out * c_in, "pointwise weights");
        assert_eq!(bias.len(), c_out, "pointwise bias");
        let mut w = vec![0.0f32; c_in * c_out];
        for o in 0..c_out {
            for i in 0..c_in {
                w[i * c_out + o] = weight[o * c_in + i];
            }
        }
        Pointwise {
            weight: Rhs::new(w, c_in, c_out),
            bias: bias.to_vec(),
        }
    }

    /// Consumes the activations: their buffer goes back to the pool for the next layer.
    pub fn forward_owned(&self, x: Maps, act: Act<'_>) -> Result<Maps> {
        assert_eq!(x.c, self.weight.rows(), "pointwise input channels");
        let pixels = x.n * x.h * x.w;
        let (mut data, input) = gemm::matmul(x.data, pixels, &self.weight)?;
        gemm::recycle(input);
        bias_act(&mut data, &self.bias, act);
        Ok(Maps {
            n: x.n,
            h: x.h,
            w: x.w,
            c: self.weight.cols(),
            data,
        })
    }

    /// For activations that are still needed: they are copied into a pooled buffer.
    pub fn forward(&self, x: &Maps, act: Act<'_>) -> Result<Maps> {
        let mut data = gemm::zeroed(x.data.len());
        data.copy_from_slice(&x.data);
        self.forward_owned(Maps { data, ..*x }, act)
    }
}
