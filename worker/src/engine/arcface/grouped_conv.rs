//! Grouped convolution with several channels per group on NHWC maps (depthwise ones,
//! one channel per group, go through the shared `nhwc::depthwise` kernel). im2col would
//! copy each input pixel k² times only to multiply it by a few weights per channel;
//! instead every output pixel accumulates its k² input pixels channel-wise, which the
//! compiler vectorises over the channels, and the bias and PReLU are applied in the
//! same pass.

use rayon::prelude::*;

use crate::engine::nhwc::Maps;

/// A `k×k` grouped convolution with bias, square stride and zero padding.
#[derive(Debug)]
pub struct GroupedConv {
    k: usize,
    stride: usize,
    padding: usize,
    c_in: usize,
    c_out: usize,
    in_per_group: usize,
    /// `(k, k, in_per_group, c_out)`: for each tap and input channel of a group, the
    /// weights of every output channel, laid out like the output pixel.
    weight: Vec<f32>,
    bias: Vec<f32>,
    /// `(in_per_group, c_out)`: the input channel that output `o` reads as its group's
    /// `j`-th input, so that one multiply-add over all outputs vectorises.
    gather: Vec<usize>,
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
        let mut w = vec![0.0f32; k * k * in_per_group * c_out];
        for o in 0..c_out {
            for j in 0..in_per_group {
                for tap in 0..k * k {
                    w[(tap * in_per_group + j) * c_out + o] =
                        weight[(o * in_per_group + j) * k * k + tap];
                }
            }
        }
        let out_per_group = c_out / groups;
        let gather = (0..in_per_group)
            .flat_map(|j| (0..c_out).map(move |o| o / out_per_group * in_per_group + j))
            .collect();
        GroupedConv {
            k,
            stride,
            padding,
            c_in: in_per_group * groups,
            c_out,
            in_per_group,
            weight: w,
            bias: bias.to_vec(),
            gather,
        }
    }

    pub fn output_size(&self, h: usize, w: usize) -> (usize, usize) {
        (
            (h + 2 * self.padding - self.k) / self.stride + 1,
            (w + 2 * self.padding - self.k) / self.stride + 1,
        )
    }

    /// The convolution, its bias and, when given, PReLU with one slope per channel.
    pub fn forward(&self, x: &Maps, prelu: Option<&[f32]>) -> Maps {
        let (c_in, c_out) = (self.c_in, self.c_out);
        assert_eq!(x.c, c_in, "input channels");
        let (oh, ow) = self.output_size(x.h, x.w);
        let mut out = Maps::zeros(x.n, oh, ow, c_out);
        let (s, p, k) = (self.stride as isize, self.padding as isize, self.k);
        out.data
            .par_chunks_mut(ow * c_out)
            .enumerate()
            .for_each(|(row, out_row)| {
                let b = row / oh;
                let oy = (row % oh) as isize;
                let image = &x.data[b * x.h * x.w * c_in..(b + 1) * x.h * x.w * c_in];
                // For groups of several channels: the input channel each output reads.
                let mut gathered = vec![0.0f32; c_out];
                for (ox, acc) in out_row.chunks_exact_mut(c_out).enumerate() {
                    acc.copy_from_slice(&self.bias);
                    for ky in 0..k {
                        let iy = oy * s - p + ky as isize;
                        if iy < 0 || iy >= x.h as isize {
                            continue;
                        }
                        for kx in 0..k {
                            let ix = ox as isize * s - p + kx as isize;
                            if ix < 0 || ix >= x.w as isize {
                                continue;
                            }
                            let at = (iy as usize * x.w + ix as usize) * c_in;
                            let src = &image[at..at + c_in];
                            let tap = ky * k + kx;
                            for j in 0..self.in_per_group {
                                let idx = &self.gather[j * c_out..(j + 1) * c_out];
                                for (g, &i) in gathered.iter_mut().zip(idx) {
                                    *g = src[i];
                                }
                                let row = (tap * self.in_per_group + j) * c_out;
                                let w = &self.weight[row..row + c_out];
                                for ((a, v), w) in acc.iter_mut().zip(&gathered).zip(w) {
                                    *a += v * w;
                                }
                            }
                        }
                    }
                    if let Some(alpha) = prelu {
                        for (a, slope) in acc.iter_mut().zip(alpha) {
                            *a = a.max(0.0) + slope * a.min(0.0);
                        }
                    }
                }
            });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Module, Tensor};
    use candle_nn::{Conv2d, Conv2dConfig};

    fn random(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..len)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    }

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
