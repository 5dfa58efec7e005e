//! Depthwise convolution (one `k×k` filter per channel) on NHWC maps, shared by SCRFD and
//! ArcFace. im2col would copy every input pixel k² times for a k²-tap dot product per
//! channel; instead each output row accumulates, tap by tap, the input row under it:
//! the tap's weights are hoisted out of the pixel loop and the inner loop runs over the
//! channels of one pixel, contiguous in NHWC, which the compiler vectorises. Rows are
//! independent, so they run in parallel; bias and activation are applied to a row
//! while it is still in cache.

use rayon::prelude::*;

use super::{Act, Maps, act_row, buffers, dispatch_for_channels};

/// The largest kernel side: MobileFaceNet's global depthwise layer is 7×7.
const MAX_K: usize = 7;

/// A `k×k` depthwise convolution with bias, square stride and zero padding.
#[derive(Debug)]
pub struct Depthwise {
    k: usize,
    stride: usize,
    padding: usize,
    c: usize,
    /// `(ky, kx, c)`: one contiguous row of channel weights per tap.
    taps: Vec<f32>,
    bias: Vec<f32>,
}

impl Depthwise {
    /// From ONNX/PyTorch order weights `(c, 1, k, k)`.
    pub fn from_oihw(
        weight: &[f32],
        bias: &[f32],
        [c, k]: [usize; 2],
        stride: usize,
        padding: usize,
    ) -> Depthwise {
        assert!(k <= MAX_K, "depthwise kernels up to {MAX_K}×{MAX_K}");
        assert_eq!(weight.len(), c * k * k, "depthwise weights");
        assert_eq!(bias.len(), c, "depthwise bias");
        let mut taps = vec![0.0f32; k * k * c];
        for ch in 0..c {
            for t in 0..k * k {
                taps[t * c + ch] = weight[ch * k * k + t];
            }
        }
        Depthwise {
            k,
            stride,
            padding,
            c,
            taps,
            bias: bias.to_vec(),
        }
    }

    pub fn stride(&self) -> usize {
        self.stride
    }

    pub fn channels(&self) -> usize {
        self.c
    }

    pub fn output_size(&self, h: usize, w: usize) -> (usize, usize) {
        (
            (h + 2 * self.padding - self.k) / self.stride + 1,
            (w + 2 * self.padding - self.k) / self.stride + 1,
        )
    }

    pub fn forward(&self, x: &Maps, act: Act<'_>) -> Maps {
        let c = self.c;
        assert_eq!(x.c, c, "depthwise channels");
        if let Act::Prelu(alpha) = act {
            assert_eq!(alpha.len(), c, "PReLU slopes");
        }
        let (oh, ow) = self.output_size(x.h, x.w);
        // Every pixel starts from the bias.
        let mut data = buffers::scratch(x.n * oh * ow * c);
        let spans = self.spans(x.w);
        data.par_chunks_mut(ow * c)
            .enumerate()
            .for_each(|(r, orow)| self.forward_row(x, (r / oh, r % oh), &spans, orow, act));
        Maps {
            n: x.n,
            h: oh,
            w: ow,
            c,
            data,
        }
    }

    /// For each kernel column, the output columns whose input lies inside a row of `w`
    /// pixels (for [`Self::forward_row`]).
    pub(crate) fn spans(&self, w: usize) -> Vec<(usize, usize)> {
        let (k, s, p) = (self.k, self.stride, self.padding);
        let ow = self.output_size(k, w).1;
        (0..k).map(|kx| columns(kx, s, p, w, ow)).collect()
    }

    /// Output row `oy` of image `b` of `x` into `orow`, with its bias and `act`, in the
    /// CPU's widest vectors that suit the channels; `spans` from [`Self::spans`].
    pub(crate) fn forward_row(
        &self,
        x: &Maps,
        (b, oy): (usize, usize),
        spans: &[(usize, usize)],
        orow: &mut [f32],
        act: Act<'_>,
    ) {
        // On the stack: this runs for every output row.
        let (s, p) = (self.stride, self.padding);
        let mut rows = [None; MAX_K];
        for (ky, row) in rows.iter_mut().enumerate().take(self.k) {
            *row = x.input_row(b, oy, (s, p), ky);
        }
        self.forward_rows(&rows[..self.k], x.w, spans, orow, act)
    }

    /// One output row from the `k` input rows under it (`None` where they fall in the
    /// padding), each of `w` pixels: for callers that keep only a few rows of the input.
    pub(crate) fn forward_rows(
        &self,
        rows: &[Option<&[f32]>],
        w: usize,
        spans: &[(usize, usize)],
        orow: &mut [f32],
        act: Act<'_>,
    ) {
        assert_eq!(rows.len(), self.k, "one input row per kernel row");
        let row = Row {
            conv: self,
            rows,
            w,
            spans,
            orow,
            act,
        };
        dispatch_for_channels(self.c, row)
    }

    /// One output row, in the compiler's vectors.
    #[inline(always)]
    fn row(
        &self,
        rows: &[Option<&[f32]>],
        spans: &[(usize, usize)],
        orow: &mut [f32],
        act: Act<'_>,
    ) {
        let (k, s, p, c) = (self.k, self.stride, self.padding, self.c);
        for px in orow.chunks_exact_mut(c) {
            px.copy_from_slice(&self.bias);
        }
        for (ky, irow) in rows.iter().enumerate() {
            let Some(irow) = irow else {
                continue;
            };
            for (kx, &(lo, hi)) in spans.iter().enumerate() {
                let t = ky * k + kx;
                let tap = &self.taps[t * c..(t + 1) * c];
                if lo == hi {
                    continue;
                }
                // Output pixels `lo..hi` and the input pixels under this tap, every `s`-th
                // from `lo·s + kx − p`: chunked iterators, no per-pixel index arithmetic or
                // bounds checks.
                let outs = orow[lo * c..hi * c].chunks_exact_mut(c);
                let ins = irow[(lo * s + kx - p) * c..].chunks_exact(c).step_by(s);
                for (o, i) in outs.zip(ins) {
                    for ((o, i), w) in o.iter_mut().zip(i).zip(tap) {
                        *o += i * w;
                    }
                }
            }
        }
        act_row(orow, c, act);
    }
}

/// One output row of a [`Depthwise`] layer, compiled for the CPU's widest vectors. A 3×3
/// layer whose channels fill whole vectors is computed in explicit vectors (the others by
/// [`Depthwise::row`]), in blocks of [`PX`] neighbouring output pixels whose sums stay in
/// registers: the blocks whose windows lie inside the row by [`Inner`], those at its
/// edges (over the padding) pixel by pixel.
struct Row<'a> {
    conv: &'a Depthwise,
    /// The `k` input rows, each of `w` pixels.
    rows: &'a [Option<&'a [f32]>],
    w: usize,
    spans: &'a [(usize, usize)],
    orow: &'a mut [f32],
    act: Act<'a>,
}

/// Output pixels per block of [`Row`].
const PX: usize = 4;

/// Blocks of a row computed in one run, vector by vector, when it has this many.
const LONG_RUN: usize = 16;

impl pulp::WithSimd for Row<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let Row {
            conv,
            rows,
            w,
            spans,
            orow,
            act,
        } = self;
        let (s, p, c) = (conv.stride, conv.padding, conv.c);
        let lanes = size_of::<S::f32s>() / size_of::<f32>();
        if conv.k != 3 || c % lanes != 0 {
            return conv.row(rows, spans, orow, act);
        }
        let cv = c / lanes;
        let rows: [Option<&[S::f32s]>; 3] =
            std::array::from_fn(|ky| Some(S::as_simd_f32s(rows[ky]?).0));
        let taps = S::as_simd_f32s(&conv.taps).0;
        let bias = S::as_simd_f32s(&conv.bias).0;
        let w = w as isize;
        {
            let out = S::as_mut_simd_f32s(orow).0;
            let blocks = out.len().div_ceil(PX * cv);
            // Block `b`'s first window starts at input column `b·PX·s − p`; the blocks
            // whose windows all lie inside the row are a run in the middle.
            let x0 = |b: usize| (b * PX * s) as isize - p as isize;
            let inside = |b: usize| {
                (b + 1) * PX * cv <= out.len()
                    && x0(b) >= 0
                    && x0(b) + (((PX - 1) * s + 2) as isize) < w
            };
            let lo = (0..blocks).find(|&b| inside(b)).unwrap_or(blocks);
            let hi = (lo..blocks).find(|&b| !inside(b)).unwrap_or(blocks);
            let (lo, hi) = if s <= 2 { (lo, hi) } else { (blocks, blocks) };
            for (block, outs) in out.chunks_mut(PX * cv).enumerate() {
                if (lo..hi).contains(&block) {
                    continue;
                }
                // A block at an edge of the row, pixel by pixel: a lone sum stays in a
                // register through the taps it skips, where an array of them would not.
                let x0 = x0(block);
                for (j, o) in outs.chunks_exact_mut(cv).enumerate() {
                    let xj = x0 + (j * s) as isize;
                    for (v, o) in o.iter_mut().enumerate() {
                        let mut acc = bias[v];
                        for (ky, row) in rows.iter().enumerate() {
                            let Some(row) = row else { continue };
                            for kx in 0..3 {
                                let ix = xj + kx as isize;
                                if (0..w).contains(&ix) {
                                    let wt = taps[(ky * 3 + kx) * cv + v];
                                    let i = row[ix as usize * cv + v];
                                    acc = simd.mul_add_e_f32s(i, wt, acc);
                                }
                            }
                        }
                        *o = acc;
                    }
                }
            }
            // Along the row one vector of channels at a time where it is long; in a
            // short row (SCRFD's last blocks: 43 pixels of 288 channels) the weights'
            // reloads cost less than walking it once per vector: one block at a time.
            let inner = |first: usize, blocks: usize| Inner {
                rows,
                taps,
                bias,
                cv,
                first: (first * PX * s - p, first * PX * cv),
                blocks,
            };
            if hi - lo >= LONG_RUN {
                inner(lo, hi - lo).run(simd, s, out);
            } else {
                for first in lo..hi {
                    inner(first, 1).run(simd, s, out);
                }
            }
        }
        act_row(orow, c, act);
    }
}

/// The blocks of a [`Row`] whose windows lie inside the input row, computed one vector
/// of channels at a time along the row: its nine weights stay in registers for the whole
/// run, and the stride is a constant, so that the inputs' offsets are too. Block by
/// block over every vector, the weights were reloaded for each block, and the sums and
/// indices spilled to the stack: SCRFD's depthwise layers took up to twice as long.
struct Inner<'a, V> {
    rows: [Option<&'a [V]>; 3],
    taps: &'a [V],
    bias: &'a [V],
    cv: usize,
    /// The first block's first input column and first output vector.
    first: (usize, usize),
    blocks: usize,
}

impl<V: Copy> Inner<'_, V> {
    /// At stride 1 or 2.
    #[inline(always)]
    fn run<S: pulp::Simd<f32s = V>>(&self, simd: S, stride: usize, out: &mut [V]) {
        match stride {
            1 => self.run_at::<S, 1>(simd, out),
            _ => self.run_at::<S, 2>(simd, out),
        }
    }

    #[inline(always)]
    fn run_at<S: pulp::Simd<f32s = V>, const STRIDE: usize>(&self, simd: S, out: &mut [V]) {
        let Inner {
            rows,
            taps,
            bias,
            cv,
            ..
        } = *self;
        let (col0, out0) = self.first;
        for v in 0..cv {
            let wt: [V; 9] = std::array::from_fn(|t| taps[t * cv + v]);
            for block in 0..self.blocks {
                let col = col0 + block * PX * STRIDE;
                let mut acc = [bias[v]; PX];
                // The same order of sums as the edge blocks' (rows, then columns), so
                // that every pixel's value is the same wherever its block falls.
                for (ky, row) in rows.iter().enumerate() {
                    let Some(row) = row else { continue };
                    let at = col * cv + v;
                    for kx in 0..3 {
                        for (j, acc) in acc.iter_mut().enumerate() {
                            let i = row[at + (j * STRIDE + kx) * cv];
                            *acc = simd.mul_add_e_f32s(i, wt[ky * 3 + kx], *acc);
                        }
                    }
                }
                let o = out0 + block * PX * cv + v;
                for (j, acc) in acc.into_iter().enumerate() {
                    out[o + j * cv] = acc;
                }
            }
        }
    }
}

/// Output columns `lo..hi` (of `ow`) whose input column `ox·s + kx − p` lies in `0..w`:
/// the pixels a kernel column reaches without falling into the zero padding.
pub(crate) fn columns(kx: usize, s: usize, p: usize, w: usize, ow: usize) -> (usize, usize) {
    if w + p <= kx {
        return (0, 0);
    }
    let lo = p.saturating_sub(kx).div_ceil(s);
    let hi = ((w - 1 + p - kx) / s + 1).min(ow);
    (lo.min(hi), hi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::nhwc::tests::{narrow_vectors, random};
    use candle_core::{Device, Module, Tensor};
    use candle_nn::{Conv2d, Conv2dConfig};

    /// Same numbers as candle-nn's grouped conv2d with PReLU after it, for SCRFD's and
    /// MobileFaceNet's shapes: 3×3 at strides 1 and 2 with odd sizes where the last
    /// window hangs over the padding, rows long enough for a run of blocks, and the 7×7
    /// global depthwise conv without padding.
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
        for (i, &(n, h, w, c, k, stride, padding)) in [
            (1, 9, 7, 5, 3, 1, 1),
            (1, 10, 13, 8, 3, 2, 1),
            (2, 7, 9, 3, 3, 2, 1),
            (3, 4, 4, 16, 3, 2, 1),
            (2, 7, 7, 12, 7, 1, 0),
            (2, 9, 11, 32, 3, 1, 1),
            (1, 10, 13, 48, 3, 2, 1),
            (1, 5, 6, 64, 3, 1, 1),
            (2, 9, 11, 24, 3, 1, 1),
            // Rows long enough to be computed in one run, vector by vector.
            (1, 5, 150, 16, 3, 1, 1),
            (2, 4, 151, 32, 3, 2, 1),
            (1, 3, 140, 24, 3, 1, 1),
        ]
        .iter()
        .enumerate()
        {
            let x = Maps {
                n,
                h,
                w,
                c,
                data: random(n * h * w * c, i as u64),
            };
            let weight = random(c * k * k, 10 + i as u64);
            let bias = random(c, 20 + i as u64);
            let alpha = random(c, 30 + i as u64);
            let conv = Depthwise::from_oihw(&weight, &bias, [c, k], stride, padding);
            let ours = conv.forward(&x, Act::Prelu(&alpha));

            let xt = Tensor::from_vec(x.data.clone(), (n, h, w, c), &Device::Cpu)
                .unwrap()
                .permute((0, 3, 1, 2))
                .unwrap()
                .contiguous()
                .unwrap();
            let conv = Conv2d::new(
                Tensor::from_vec(weight, (c, 1, k, k), &Device::Cpu).unwrap(),
                Some(Tensor::from_vec(bias, c, &Device::Cpu).unwrap()),
                Conv2dConfig {
                    padding,
                    stride,
                    groups: c,
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
            assert_eq!(
                (ours.h, ours.w),
                (
                    (h + 2 * padding - k) / stride + 1,
                    (w + 2 * padding - k) / stride + 1
                ),
                "case {i}"
            );
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

    #[test]
    fn relu_clamps_the_output() {
        // One channel, 3×3 of ones over a 1×1 input of −2, bias 1: −2 + 1 = −1 → 0.
        let conv = Depthwise::from_oihw(&[1.0; 9], &[1.0], [1, 3], 1, 1);
        let x = Maps {
            n: 1,
            h: 1,
            w: 1,
            c: 1,
            data: vec![-2.0],
        };
        assert_eq!(conv.forward(&x, Act::Identity).data, vec![-1.0]);
        assert_eq!(conv.forward(&x, Act::Relu).data, vec![0.0]);
    }
}
