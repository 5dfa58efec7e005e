//! Grouped convolution with several channels per group on NHWC maps (depthwise ones,
//! one channel per group, go through the shared `nhwc::depthwise` kernel). im2col would
//! copy each input pixel k² times only to multiply it by a few weights per channel;
//! instead every output pixel accumulates its k² input pixels channel-wise, which the
//! compiler vectorises over the channels, and the bias and PReLU are applied in the
//! same pass.

use rayon::prelude::*;

use crate::engine::nhwc::{Act, Maps, act_row, buffers, depthwise};

/// A `k×k` grouped convolution with bias, square stride and zero padding.
#[derive(Debug)]
pub struct GroupedConv {
    k: usize,
    stride: usize,
    padding: usize,
    c_in: usize,
    c_out: usize,
    in_per_group: usize,
    out_per_group: usize,
    /// `(k, k, c_out, in_per_group)`: for each tap and output channel, the weights of
    /// its group's inputs, next to each other like the inputs in an NHWC pixel.
    weight: Vec<f32>,
    /// Groups of two inputs and two outputs (MobileFaceNet's layer), for [`Row`]: output
    /// `o` reads input `o` and its partner `o ^ 1`. `(k, k, c_out)`: per tap, the weight
    /// of each channel's own input.
    pair_own: Vec<f32>,
    /// `(k, k, c_out)`: per tap, at channel `p`, the weight by which output `p ^ 1` reads
    /// input `p`, so that `Σ pair_cross · x` over the taps is, pair-swapped, each
    /// output's partner term.
    pair_cross: Vec<f32>,
    bias: Vec<f32>,
}

impl GroupedConv {
    /// From ONNX/PyTorch order weights `(c_out, c_in / groups, k, k)`. The caller checks
    /// that the lengths and the group split fit.
    pub fn from_oihw(
        weight: &[f32],
        bias: &[f32],
        [c_out, in_per_group, k]: [usize; 3],
        groups: usize,
        stride: usize,
        padding: usize,
    ) -> Self {
        debug_assert_eq!(weight.len(), c_out * in_per_group * k * k);
        let mut w = vec![0.0f32; k * k * c_out * in_per_group];
        for o in 0..c_out {
            for j in 0..in_per_group {
                for tap in 0..k * k {
                    w[(tap * c_out + o) * in_per_group + j] =
                        weight[(o * in_per_group + j) * k * k + tap];
                }
            }
        }
        let out_per_group = c_out / groups;
        let (mut pair_own, mut pair_cross) = (Vec::new(), Vec::new());
        if (in_per_group, out_per_group) == (2, 2) {
            for tap in 0..k * k {
                for o in 0..c_out {
                    let at = |o: usize, j: usize| w[(tap * c_out + o) * 2 + j];
                    pair_own.push(at(o, o % 2));
                    pair_cross.push(at(o ^ 1, o % 2));
                }
            }
        }
        GroupedConv {
            k,
            stride,
            padding,
            c_in: in_per_group * groups,
            c_out,
            in_per_group,
            out_per_group,
            weight: w,
            pair_own,
            pair_cross,
            bias: bias.to_vec(),
        }
    }

    pub fn output_size(&self, h: usize, w: usize) -> (usize, usize) {
        (
            (h + 2 * self.padding - self.k) / self.stride + 1,
            (w + 2 * self.padding - self.k) / self.stride + 1,
        )
    }

    /// The convolution, its bias and, when given, PReLU with one slope per channel.
    /// Like the depthwise kernel: one output row per task, each tap's weights hoisted
    /// out of the loop over the row's pixels.
    pub fn forward(&self, x: &Maps, prelu: Option<&[f32]>) -> Maps {
        assert_eq!(x.c, self.c_in, "input channels");
        let (oh, ow) = self.output_size(x.h, x.w);
        // Every pixel starts from the bias.
        let mut data = buffers::scratch(x.n * oh * ow * self.c_out);
        let spans: Vec<(usize, usize)> = (0..self.k)
            .map(|kx| depthwise::columns(kx, self.stride, self.padding, x.w, ow))
            .collect();
        data.par_chunks_mut(ow * self.c_out)
            .enumerate()
            .for_each(|(r, orow)| {
                crate::engine::nhwc::dispatch(Row {
                    conv: self,
                    x,
                    at: (r / oh, r % oh),
                    spans: &spans,
                    orow,
                    prelu,
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

    /// Output row `oy` of image `b`.
    #[inline(always)]
    fn row(
        &self,
        x: &Maps,
        (b, oy): (usize, usize),
        spans: &[(usize, usize)],
        orow: &mut [f32],
        prelu: Option<&[f32]>,
    ) {
        let (c_in, c_out, k) = (self.c_in, self.c_out, self.k);
        let (mi, mo) = (self.in_per_group, self.out_per_group);
        for px in orow.chunks_exact_mut(c_out) {
            px.copy_from_slice(&self.bias);
        }
        for ky in 0..k {
            let Some(irow) = x.input_row(b, oy, (self.stride, self.padding), ky) else {
                continue;
            };
            for (kx, &(lo, hi)) in spans.iter().enumerate() {
                let t = ky * k + kx;
                let tap = &self.weight[t * c_out * mi..(t + 1) * c_out * mi];
                for ox in lo..hi {
                    let ix = ox * self.stride + kx - self.padding;
                    let acc = &mut orow[ox * c_out..(ox + 1) * c_out];
                    let src = &irow[ix * c_in..(ix + 1) * c_in];
                    let groups = acc
                        .chunks_exact_mut(mo)
                        .zip(src.chunks_exact(mi))
                        .zip(tap.chunks_exact(mo * mi));
                    for ((acc, src), w) in groups {
                        for (a, w) in acc.iter_mut().zip(w.chunks_exact(mi)) {
                            *a += src.iter().zip(w).map(|(v, w)| v * w).sum::<f32>();
                        }
                    }
                }
            }
        }
        act_row(orow, c_out, prelu.map_or(Act::Identity, Act::Prelu));
    }
}

/// One output row of a [`GroupedConv`], compiled for the CPU's widest vectors. A 3×3
/// layer of pairs (two inputs and two outputs per group) whose channels fill whole
/// vectors is computed in explicit vectors (the others by [`GroupedConv::row`]). It is
/// two depthwise convolutions of the same input: with each channel's own weights, and
/// with its partner's; the second sum, pair-swapped (one shuffle per vector), is the
/// partner term. So the input is read as it lies, where gathering each group's inputs
/// first cost more than the arithmetic. [`PX`] neighbouring output pixels at a time, so
/// that the block's inputs stay in the L1 cache while every vector of channels is
/// computed.
struct Row<'a> {
    conv: &'a GroupedConv,
    x: &'a Maps,
    at: (usize, usize),
    spans: &'a [(usize, usize)],
    orow: &'a mut [f32],
    prelu: Option<&'a [f32]>,
}

/// Output pixels per block of [`Row`].
const PX: usize = 4;

impl pulp::WithSimd for Row<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let Row {
            conv,
            x,
            at: (b, oy),
            spans,
            orow,
            prelu,
        } = self;
        let lanes = size_of::<S::f32s>() / size_of::<f32>();
        if conv.k != 3 || conv.pair_own.is_empty() || conv.c_out % lanes != 0 {
            return conv.row(x, (b, oy), spans, orow, prelu);
        }
        let (cv, (s, p)) = (conv.c_out / lanes, (conv.stride, conv.padding));
        let rows: [Option<&[S::f32s]>; 3] =
            std::array::from_fn(|ky| Some(S::as_simd_f32s(x.input_row(b, oy, (s, p), ky)?).0));
        let own = S::as_simd_f32s(&conv.pair_own).0;
        let cross = S::as_simd_f32s(&conv.pair_cross).0;
        let bias = S::as_simd_f32s(&conv.bias).0;
        let swap_pairs = |v: S::f32s| -> S::f32s {
            let v: S::c32s = pulp::bytemuck::cast(v);
            pulp::bytemuck::cast(simd.swap_re_im_c32s(v))
        };
        let w = x.w as isize;
        {
            let out = S::as_mut_simd_f32s(orow).0;
            for (block, outs) in out.chunks_mut(PX * cv).enumerate() {
                let x0 = (block * PX * s) as isize - p as isize;
                let inside =
                    outs.len() == PX * cv && x0 >= 0 && x0 + (((PX - 1) * s + 2) as isize) < w;
                if !inside {
                    // A block at an edge of the row, pixel by pixel: lone sums stay in
                    // registers through the taps they skip, where arrays of them would not.
                    for (j, o) in outs.chunks_exact_mut(cv).enumerate() {
                        let xj = x0 + (j * s) as isize;
                        for (v, o) in o.iter_mut().enumerate() {
                            let (mut acc, mut partner) = (bias[v], simd.splat_f32s(0.0));
                            for (ky, row) in rows.iter().enumerate() {
                                let Some(row) = row else { continue };
                                for kx in 0..3 {
                                    let ix = xj + kx as isize;
                                    if (0..w).contains(&ix) {
                                        let t = (ky * 3 + kx) * cv + v;
                                        let i = row[ix as usize * cv + v];
                                        acc = simd.mul_add_e_f32s(i, own[t], acc);
                                        partner = simd.mul_add_e_f32s(i, cross[t], partner);
                                    }
                                }
                            }
                            *o = simd.add_f32s(acc, swap_pairs(partner));
                        }
                    }
                    continue;
                }
                for (v, &b) in bias.iter().enumerate().take(cv) {
                    let mut acc = [b; PX];
                    let mut partner = [simd.splat_f32s(0.0); PX];
                    for (ky, row) in rows.iter().enumerate() {
                        let Some(row) = row else { continue };
                        for kx in 0..3 {
                            let t = (ky * 3 + kx) * cv + v;
                            let (wo, wc) = (own[t], cross[t]);
                            let at = (x0 + kx as isize) as usize * cv + v;
                            for q in 0..PX {
                                let i = row[at + q * s * cv];
                                acc[q] = simd.mul_add_e_f32s(i, wo, acc[q]);
                                partner[q] = simd.mul_add_e_f32s(i, wc, partner[q]);
                            }
                        }
                    }
                    let sums = acc.iter().zip(partner);
                    for (o, (&a, c)) in outs.iter_mut().skip(v).step_by(cv).zip(sums) {
                        *o = simd.add_f32s(a, swap_pairs(c));
                    }
                }
            }
        }
        act_row(orow, conv.c_out, prelu.map_or(Act::Identity, Act::Prelu));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::nhwc::tests::{narrow_vectors, random};
    use candle_core::{Device, Module, Tensor};
    use candle_nn::{Conv2d, Conv2dConfig};

    /// Same numbers as candle-nn's grouped conv2d (depthwise, and 2 channels per group
    /// as in MobileFaceNet's second layer), at both strides and odd sizes where the last
    /// window hangs over the padding.
    #[test]
    fn matches_candle_grouped_conv() {
        matches_candle_grouped_conv_cases();
    }

    /// The same in AVX2 vectors, whatever the machine.
    #[test]
    fn matches_candle_grouped_conv_in_avx2_vectors() {
        narrow_vectors(matches_candle_grouped_conv_cases);
    }

    fn matches_candle_grouped_conv_cases() {
        for (i, &(n, h, w, c, stride, groups)) in [
            (2, 9, 7, 8, 1, 8),
            (1, 11, 10, 16, 2, 16),
            (3, 4, 4, 5, 2, 5),
            (2, 9, 8, 8, 1, 4),
            (2, 10, 9, 16, 2, 8),
            (1, 6, 5, 32, 1, 8),
            (2, 9, 12, 32, 1, 16),
            (1, 10, 11, 64, 2, 32),
            (1, 7, 13, 24, 1, 12),
        ]
        .iter()
        .enumerate()
        {
            let per = c / groups;
            let x = Maps {
                n,
                h,
                w,
                c,
                data: random(n * h * w * c, i as u64),
            };
            let weight = random(c * per * 9, 10 + i as u64);
            let bias = random(c, 20 + i as u64);
            let alpha = random(c, 30 + i as u64);
            let conv = GroupedConv::from_oihw(&weight, &bias, [c, per, 3], groups, stride, 1);
            let ours = conv.forward(&x, Some(&alpha));

            let xt = Tensor::from_vec(x.data.clone(), (n, h, w, c), &Device::Cpu)
                .unwrap()
                .permute((0, 3, 1, 2))
                .unwrap()
                .contiguous()
                .unwrap();
            let conv = Conv2d::new(
                Tensor::from_vec(weight, (c, per, 3, 3), &Device::Cpu).unwrap(),
                Some(Tensor::from_vec(bias, c, &Device::Cpu).unwrap()),
                Conv2dConfig {
                    padding: 1,
                    stride,
                    groups,
                    ..Default::default()
                },
            );
            let y = conv.forward(&xt).unwrap();
            let a = Tensor::from_vec(alpha, (1, c, 1, 1), &Device::Cpu).unwrap();
            let y = (y.relu().unwrap() + y.minimum(0f32).unwrap().broadcast_mul(&a).unwrap())
                .unwrap()
                .permute((0, 2, 3, 1))
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            assert_eq!(ours.data.len(), y.len(), "case {i}");
            let diff = ours
                .data
                .iter()
                .zip(&y)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(diff < 1e-5, "case {i}: max difference {diff}");
        }
    }
}
