//! A dlib `con` layer with the `affine` layer after it folded in at load time, laid out
//! for the device's forward pass.

use candle_core::{Device, Module, Tensor};
use candle_nn::{Conv2d, Conv2dConfig};

use super::layer_chain::{Record, Records};
use crate::engine::nhwc;
use crate::engine::nhwc::direct::DirectConv;
use crate::engine::{EngineError, Result};

/// A convolution with the following `affine` folded in, laid out for the device's
/// forward pass: NHWC kernels on the CPU (see `nhwc`), candle-nn's layer elsewhere.
#[derive(Debug)]
pub(super) enum ConvAffine {
    Cpu(DirectConv),
    Candle(Conv2d),
}

impl ConvAffine {
    pub(super) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            ConvAffine::Candle(conv) => conv.forward(x),
            ConvAffine::Cpu(_) => candle_core::bail!("an NHWC layer in the tensor forward pass"),
        }
    }

    pub(super) fn forward_cpu(&self, x: &nhwc::Maps) -> Result<nhwc::Maps> {
        match self {
            ConvAffine::Cpu(conv) => Ok(conv.forward(x)),
            ConvAffine::Candle(_) => Err(EngineError::Invalid(
                "a candle layer in the CPU forward pass".into(),
            )),
        }
    }
}

impl Records<'_, '_> {
    /// A `con` record followed by an `affine` record, folded into one convolution.
    pub(super) fn conv_affine(&mut self, device: &Device) -> Result<ConvAffine> {
        let Record::Con {
            params,
            num_filters,
            kernel,
            stride,
            padding,
            filters,
            biases,
        } = self.next("con")?
        else {
            return Err(self.r.error("expected a con layer"));
        };
        if stride[0] != stride[1] || padding[0] != padding[1] {
            return Err(self
                .r
                .error("anisotropic conv stride/padding is not supported"));
        }
        let [f, c, kh, kw] = filters;
        let n_w = f * c * kh * kw;
        if f != num_filters
            || [kh, kw] != kernel
            || biases != [1, f, 1, 1]
            || params.len() != n_w + f
        {
            return Err(self.r.error(format!(
                "con params {:?} do not fit filters {filters:?} and biases {biases:?}",
                params.shape
            )));
        }
        let Record::Affine {
            params: ab,
            gamma,
            beta,
            mode,
        } = self.next("affine")?
        else {
            return Err(self.r.error("expected an affine layer after a con layer"));
        };
        if mode != 0 || gamma != [1, f, 1, 1] || beta != gamma || ab.len() != 2 * f {
            return Err(self.r.error(format!(
                "affine (mode {mode}, gamma {gamma:?}) does not fit a conv of {f} filters"
            )));
        }
        // y = γ·(W∗x + b) + β  ⇒  W' = γ·W, b' = γ·b + β (computed in f32 like dlib would
        // apply them one after the other; the change is within f32 rounding).
        let (g, bt) = ab.data.split_at(f);
        let per = c * kh * kw;
        let w: Vec<f32> = params.data[..n_w]
            .iter()
            .enumerate()
            .map(|(i, &v)| v * g[i / per])
            .collect();
        let b: Vec<f32> = params.data[n_w..]
            .iter()
            .zip(g.iter().zip(bt))
            .map(|(&v, (&g, &bt))| v * g + bt)
            .collect();
        if self.nhwc {
            return Ok(ConvAffine::Cpu(
                DirectConv::from_oihw(&w, &b, filters, stride[0], padding[0]).with_winograd(),
            ));
        }
        let weight = Tensor::from_vec(w, (f, c, kh, kw), device)?;
        let bias = Tensor::from_vec(b, f, device)?;
        Ok(ConvAffine::Candle(Conv2d::new(
            weight,
            Some(bias),
            Conv2dConfig {
                padding: padding[0],
                stride: stride[0],
                ..Default::default()
            },
        )))
    }
}
