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
    /// `(k, k, in_per_group, c_out)`: for each tap and each input of a group, that
    /// input's weight for every output channel, for [`Row`].
    weight_by_input: Vec<f32>,
    /// For each input of a group and each output channel, the input channel it reads:
    /// the layout of [`Row`]'s expanded rows.
    gather: Vec<usize>,
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
        let mut by_input = vec![0.0f32; k * k * in_per_group * c_out];
        for tap in 0..k * k {
            for j in 0..in_per_group {
                for o in 0..c_out {
                    by_input[(tap * in_per_group + j) * c_out + o] =
                        w[(tap * c_out + o) * in_per_group + j];
                }
            }
        }
        let gather = (0..in_per_group)
            .flat_map(|j| (0..c_out).map(move |o| (o / out_per_group) * in_per_group + j))
            .collect();
        GroupedConv {
            k,
            stride,
            padding,
            c_in: in_per_group * groups,
            c_out,
            in_per_group,
            out_per_group,
            weight: w,
            weight_by_input: by_input,
            gather,
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
                pulp::Arch::new().dispatch(Row {
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
/// layer whose output channels fill whole vectors is computed in explicit vectors (the
/// others by [`GroupedConv::row`]): the (up to) three input rows under it are first expanded so that input `j` of every
/// output channel's group lies at that channel's position (`gather`); each tap is then
/// `in_per_group` element-wise products per vector of channels, summed as
/// [`GroupedConv::row`] sums them (the group's dot product, then onto the total), so
/// the numbers are the same.
struct Row<'a> {
    conv: &'a GroupedConv,
    x: &'a Maps,
    at: (usize, usize),
    spans: &'a [(usize, usize)],
    orow: &'a mut [f32],
    prelu: Option<&'a [f32]>,
}

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
        let (c_in, c_out, mi) = (conv.c_in, conv.c_out, conv.in_per_group);
        let lanes = size_of::<S::f32s>() / size_of::<f32>();
        if conv.k != 3 || c_out % lanes != 0 {
            return conv.row(x, (b, oy), spans, orow, prelu);
        }
        let (cv, (s, p)) = (c_out / lanes, (conv.stride, conv.padding));
        // Expanded pixel: `mi` runs of `c_out` values.
        let px_len = mi * c_out;
        let mut expanded = buffers::scratch(3 * x.w * px_len);
        let mut present = [false; 3];
        for (ky, dst) in expanded.chunks_exact_mut(x.w * px_len).enumerate() {
            let Some(src) = x.input_row(b, oy, (s, p), ky) else {
                continue;
            };
            present[ky] = true;
            for (d, px) in dst.chunks_exact_mut(px_len).zip(src.chunks_exact(c_in)) {
                for (v, &from) in d.iter_mut().zip(&conv.gather) {
                    *v = px[from];
                }
            }
        }
        {
            let rows = S::as_simd_f32s(&expanded).0;
            let row_len = x.w * mi * cv;
            let taps = S::as_simd_f32s(&conv.weight_by_input).0;
            let bias = S::as_simd_f32s(&conv.bias).0;
            let out = S::as_mut_simd_f32s(orow).0;
            let w = x.w as isize;
            for (v, &b) in bias.iter().enumerate().take(cv) {
                for (ox, o) in out.iter_mut().skip(v).step_by(cv).enumerate() {
                    let mut acc = b;
                    let x0 = (ox * s) as isize - p as isize;
                    for ky in (0..3).filter(|&ky| present[ky]) {
                        let row = &rows[ky * row_len..(ky + 1) * row_len];
                        for kx in 0..3 {
                            let ix = x0 + kx as isize;
                            if !(0..w).contains(&ix) {
                                continue;
                            }
                            let at = ix as usize * mi * cv + v;
                            let t = (ky * 3 + kx) * mi * cv + v;
                            let mut dot = simd.mul_f32s(row[at], taps[t]);
                            for j in 1..mi {
                                let term = simd.mul_f32s(row[at + j * cv], taps[t + j * cv]);
                                dot = simd.add_f32s(dot, term);
                            }
                            acc = simd.add_f32s(acc, dot);
                        }
                    }
                    *o = acc;
                }
            }
        }
        buffers::recycle(expanded);
        act_row(orow, c_out, prelu.map_or(Act::Identity, Act::Prelu));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::nhwc::tests::random;
    use candle_core::{Device, Module, Tensor};
    use candle_nn::{Conv2d, Conv2dConfig};

    /// Same numbers as candle-nn's grouped conv2d (depthwise, and 2 channels per group
    /// as in MobileFaceNet's second layer), at both strides and odd sizes where the last
    /// window hangs over the padding.
    #[test]
    fn matches_candle_grouped_conv() {
        for (i, &(n, h, w, c, stride, groups)) in [
            (2, 9, 7, 8, 1, 8),
            (1, 11, 10, 16, 2, 16),
            (3, 4, 4, 5, 2, 5),
            (2, 9, 8, 8, 1, 4),
            (2, 10, 9, 16, 2, 8),
            (1, 6, 5, 32, 1, 8),
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
