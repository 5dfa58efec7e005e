//! Dense `k×k` convolutions with few channels (SCRFD's stem, neck, heads' outputs and its
//! 1×1 layers), computed directly on NHWC maps in explicit vectors of the CPU's width.
//!
//! Through im2col each output pixel's receptive field is first copied out (`k²·c_in`
//! floats: 576 for the heads, whose maps at stride 8 are the largest), then multiplied by
//! a GEMM whose thin right-hand side (16 or 30 columns) fits its micro-kernel badly.
//! Here each output pixel keeps its channel sums in registers, and every input value is
//! broadcast once against the row of weights it meets: no copy, no zero-filled buffer.

use rayon::prelude::*;

use super::{Act, Maps, act_row, buffers};

/// Output channels are padded to a multiple of this (zero weights), so that they split
/// into whole vectors of 8 (AVX2) or 16 (AVX-512) floats.
const CHANNEL_ALIGN: usize = 16;

#[derive(Debug)]
pub struct DirectConv {
    k: usize,
    stride: usize,
    padding: usize,
    c_in: usize,
    c_out: usize,
    /// `c_out` rounded up to [`CHANNEL_ALIGN`].
    c_pad: usize,
    /// `(k, k, c_in, c_pad)`: for each tap and input channel, its weights for every
    /// output channel, side by side.
    weight: Vec<f32>,
    /// `c_pad` values.
    bias: Vec<f32>,
}

impl DirectConv {
    /// From ONNX/PyTorch order weights `(c_out, c_in, k, k)`.
    pub fn from_oihw(
        weight: &[f32],
        bias: &[f32],
        [c_out, c_in, k_h, k_w]: [usize; 4],
        stride: usize,
        padding: usize,
    ) -> DirectConv {
        assert_eq!(k_h, k_w, "square kernels only");
        let k = k_h;
        assert_eq!(weight.len(), c_out * c_in * k * k, "dense conv weights");
        assert_eq!(bias.len(), c_out, "dense conv bias");
        let c_pad = c_out.div_ceil(CHANNEL_ALIGN) * CHANNEL_ALIGN;
        let mut w = vec![0.0f32; k * k * c_in * c_pad];
        for o in 0..c_out {
            for ci in 0..c_in {
                for tap in 0..k * k {
                    w[(tap * c_in + ci) * c_pad + o] = weight[(o * c_in + ci) * k * k + tap];
                }
            }
        }
        let mut b = bias.to_vec();
        b.resize(c_pad, 0.0);
        DirectConv {
            k,
            stride,
            padding,
            c_in,
            c_out,
            c_pad,
            weight: w,
            bias: b,
        }
    }

    pub fn output_size(&self, h: usize, w: usize) -> (usize, usize) {
        (
            (h + 2 * self.padding - self.k) / self.stride + 1,
            (w + 2 * self.padding - self.k) / self.stride + 1,
        )
    }

    pub fn forward(&self, x: &Maps) -> Maps {
        self.forward_act(x, Act::Identity)
    }

    /// [`Self::forward_act`] on activations no longer needed: their buffer goes back to
    /// the pool for the next layer.
    pub fn forward_owned(&self, x: Maps, act: Act<'_>) -> Maps {
        let y = self.forward_act(&x, act);
        buffers::recycle(x.data);
        y
    }

    /// The convolution, its bias and `act`.
    pub fn forward_act(&self, x: &Maps, act: Act<'_>) -> Maps {
        assert_eq!(x.c, self.c_in, "input channels");
        if let Act::Prelu(alpha) = act {
            assert_eq!(alpha.len(), self.c_out, "PReLU slopes");
        }
        let (oh, ow) = self.output_size(x.h, x.w);
        // Every output value is written by a row.
        let mut data = buffers::scratch(x.n * oh * ow * self.c_out);
        data.par_chunks_mut(ow * self.c_out)
            .enumerate()
            .for_each(|(r, orow)| {
                pulp::Arch::new().dispatch(Row {
                    conv: self,
                    x,
                    at: (r / oh, r % oh),
                    orow,
                    act,
                })
            });
        Maps {
            n: x.n,
            h: oh,
            w: ow,
            c: self.c_out,
            data,
        }
    }
}

/// One output row of a [`DirectConv`].
struct Row<'a> {
    conv: &'a DirectConv,
    x: &'a Maps,
    at: (usize, usize),
    orow: &'a mut [f32],
    act: Act<'a>,
}

impl pulp::WithSimd for Row<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let lanes = size_of::<S::f32s>() / size_of::<f32>();
        // Blocks of NB vectors of output channels (as many as divide them) for PX
        // neighbouring output pixels: NB·PX sums, NB weights and a broadcast input stay
        // within the registers (16 with AVX2; 32 with AVX-512, whose vectors are 16
        // wide), with enough independent sums to hide the multiply-adds' latency.
        match (lanes >= 16, (self.conv.c_pad / lanes) % 4) {
            (false, 0) => self.blocks::<S, 4, 2>(simd),
            (false, 2) => self.blocks::<S, 2, 4>(simd),
            (false, _) => self.blocks::<S, 1, 4>(simd),
            (true, 0) => self.blocks::<S, 4, 3>(simd),
            (true, 2) => self.blocks::<S, 2, 6>(simd),
            (true, _) => self.blocks::<S, 1, 8>(simd),
        }
    }
}

impl Row<'_> {
    #[inline(always)]
    fn blocks<S: pulp::Simd, const NB: usize, const PX: usize>(self, simd: S) {
        let Row {
            conv,
            x,
            at: (b, oy),
            orow,
            act,
        } = self;
        let (k, s, p, c_in, c_out) = (conv.k, conv.stride, conv.padding, conv.c_in, conv.c_out);
        let lanes = size_of::<S::f32s>() / size_of::<f32>();
        let cv = conv.c_pad / lanes;
        let weight = S::as_simd_f32s(&conv.weight).0;
        let bias = S::as_simd_f32s(&conv.bias).0;
        let rows: Vec<Option<&[f32]>> = (0..k).map(|ky| x.input_row(b, oy, (s, p), ky)).collect();
        let w = x.w as isize;
        let zero = [simd.splat_f32s(0.0); NB];
        let inside = |ix: isize| (0..w).contains(&ix);
        // PX neighbouring output pixels at a time, so that each block of weights loaded
        // serves them all (the loop is bound by loads otherwise).
        for (group, outs) in orow.chunks_mut(PX * c_out).enumerate() {
            let n_px = outs.len() / c_out;
            let x0 = (PX * group * s) as isize - p as isize;
            for vb in (0..cv).step_by(NB) {
                let mut acc: [[S::f32s; NB]; PX] = [std::array::from_fn(|i| bias[vb + i]); PX];
                for (ky, row) in rows.iter().enumerate() {
                    let Some(row) = row else { continue };
                    let px = |ix: isize| {
                        let at = ix as usize * c_in;
                        &row[at..at + c_in]
                    };
                    for kx in 0..k {
                        let ix: [isize; PX] = std::array::from_fn(|j| x0 + (j * s + kx) as isize);
                        let ok: [bool; PX] = std::array::from_fn(|j| j < n_px && inside(ix[j]));
                        let tap = (ky * k + kx) * c_in * cv;
                        let taps = weight[tap..tap + c_in * cv].chunks_exact(cv);
                        // A fixed-size block: the sums stay in registers.
                        let block = |wt: &'_ [S::f32s]| -> [S::f32s; NB] {
                            *<&[S::f32s; NB]>::try_from(&wt[vb..vb + NB]).unwrap_or(&zero)
                        };
                        if ok.iter().all(|&ok| ok) {
                            let inputs: [&[f32]; PX] = std::array::from_fn(|j| px(ix[j]));
                            for (ci, wt) in taps.enumerate() {
                                let wt = block(wt);
                                for (acc, input) in acc.iter_mut().zip(&inputs) {
                                    let v = simd.splat_f32s(input[ci]);
                                    for i in 0..NB {
                                        acc[i] = simd.mul_add_e_f32s(v, wt[i], acc[i]);
                                    }
                                }
                            }
                        } else {
                            // Pixels whose window hangs over the padding, one by one.
                            for j in (0..PX).filter(|&j| ok[j]) {
                                for (&v, wt) in px(ix[j]).iter().zip(taps.clone()) {
                                    let v = simd.splat_f32s(v);
                                    let wt = block(wt);
                                    for i in 0..NB {
                                        acc[j][i] = simd.mul_add_e_f32s(v, wt[i], acc[j][i]);
                                    }
                                }
                            }
                        }
                    }
                }
                // Stored by value: taking the sums' address would keep them in memory.
                for (out, acc) in outs.chunks_exact_mut(c_out).zip(acc) {
                    for (i, a) in acc.into_iter().enumerate() {
                        let from = ((vb + i) * lanes).min(c_out);
                        let to = (from + lanes).min(c_out);
                        simd.partial_store_f32s(&mut out[from..to], a);
                    }
                }
            }
        }
        act_row(orow, c_out, act);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::nhwc::tests::{from_nchw, max_diff, random, to_nchw};
    use candle_core::{Device, Module, Tensor};
    use candle_nn::{Conv2d, Conv2dConfig};

    /// The same numbers as candle-nn's conv2d, up to summation order, for the networks'
    /// shapes: dlib's 7×7 stem at stride 2, SCRFD's stem (3 → 16, stride 2), neck (16 →
    /// 16 at strides 1 and 2) and head output (64 → 30), MTCNN's 2×2 and whole-map
    /// kernels, 1×1 layers, and odd sizes where the last window hangs over the padding
    /// or a block of output pixels is cut short (blocks of 2 to 8 pixels, by the
    /// channels and the CPU's vector width).
    #[test]
    fn matches_candle_nn() {
        for (i, &(n, h, w, c_in, c_out, k, stride, padding)) in [
            (2, 20, 17, 3, 8, 7, 2, 0),
            (2, 9, 9, 8, 16, 3, 1, 1),
            (3, 17, 17, 8, 16, 3, 2, 0),
            (1, 12, 10, 4, 2, 1, 1, 0),
            (1, 13, 11, 3, 16, 3, 2, 1),
            (2, 9, 10, 16, 16, 3, 1, 1),
            (1, 9, 7, 16, 16, 3, 2, 1),
            (1, 6, 5, 64, 30, 3, 1, 1),
            (1, 5, 4, 5, 7, 3, 1, 1),
            (2, 4, 3, 8, 40, 3, 2, 1),
            (2, 5, 5, 28, 48, 2, 1, 0),
            (4, 3, 3, 64, 128, 3, 1, 0),
            (2, 7, 9, 300, 40, 1, 1, 0),
            (1, 13, 11, 64, 128, 1, 1, 0),
            (3, 5, 7, 96, 96, 3, 2, 1),
            (1, 20, 19, 16, 24, 1, 1, 0),
        ]
        .iter()
        .enumerate()
        {
            let x = Maps {
                n,
                h,
                w,
                c: c_in,
                data: random(n * h * w * c_in, 40 + i as u64),
            };
            let weight = random(c_out * c_in * k * k, 50 + i as u64);
            let bias = random(c_out, 60 + i as u64);
            let ours = DirectConv::from_oihw(&weight, &bias, [c_out, c_in, k, k], stride, padding)
                .forward(&x);
            let reference = Conv2d::new(
                Tensor::from_vec(weight, (c_out, c_in, k, k), &Device::Cpu).unwrap(),
                Some(Tensor::from_vec(bias, c_out, &Device::Cpu).unwrap()),
                Conv2dConfig {
                    padding,
                    stride,
                    ..Default::default()
                },
            )
            .forward(&to_nchw(&x))
            .unwrap();
            let diff = max_diff(&ours, &from_nchw(&reference));
            assert!(diff < 1e-5, "case {i}: max difference {diff}");
        }
    }
}
