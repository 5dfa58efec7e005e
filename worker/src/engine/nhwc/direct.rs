//! Dense `k×k` convolutions with few channels (SCRFD's stem, neck, heads' outputs and its
//! 1×1 layers), computed directly on NHWC maps in explicit vectors of the CPU's width.
//!
//! Through im2col each output pixel's receptive field is first copied out (`k²·c_in`
//! floats: 576 for the heads, whose maps at stride 8 are the largest), then multiplied by
//! a GEMM whose thin right-hand side (16 or 30 columns) fits its micro-kernel badly.
//! Here each output pixel keeps its channel sums in registers, and every input value is
//! broadcast once against the row of weights it meets: no copy, no zero-filled buffer.

use rayon::prelude::*;

use super::winograd::Winograd;
use super::{Act, Maps, act_row, buffers};

/// Output channels are padded to a multiple of this (zero weights), so that they split
/// into whole vectors of 8 (AVX2) or 16 (AVX-512) floats.
const CHANNEL_ALIGN: usize = 16;

/// Below this output width a padded layer's input is first copied with its zero
/// columns: a block of pixels whose windows hang over the padding is computed pixel by
/// pixel, with as few independent sums as vectors of channels, and in dlib's maps of 35
/// pixels or fewer those were a third of the row or more. In wider rows the copy would
/// cost more than the two edge blocks.
const COPY_PADDING_BELOW: usize = 64;

/// Channels from which [`DirectConv::with_winograd`] takes the Winograd form (input
/// channels, or half as many going to this many outputs): measured on a Zen 4 core,
/// dlib's 64- and 128-channel maps ran 1.3–1.4 times as fast, O-Net's third layer
/// (64 → 64) 1.2–1.5 times and its second (32 → 64) 1.1 times; dlib's 32-channel
/// maps and P-Net's and R-Net's layers (10 to 28 inputs) gained nothing or lost.
const WINOGRAD_MIN_CHANNELS: usize = 64;

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
    /// The same layer by Winograd's F(2×2, 3×3), where [`Self::with_winograd`] chose it.
    winograd: Option<Box<Winograd>>,
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
            winograd: None,
        }
    }

    /// The layer computed by Winograd's F(2×2, 3×3) (see `winograd`) where that is
    /// faster: 3×3 kernels at stride 1 with [`WINOGRAD_MIN_CHANNELS`] input channels or
    /// more, on maps of at least 4×4 outputs. Other layers are unchanged.
    pub fn with_winograd(mut self) -> Self {
        let wide = self.c_in >= WINOGRAD_MIN_CHANNELS
            || (self.c_in >= WINOGRAD_MIN_CHANNELS / 2 && self.c_out >= WINOGRAD_MIN_CHANNELS);
        if self.k != 3 || self.stride != 1 || !wide {
            return self;
        }
        let (c_in, c_pad, c_out) = (self.c_in, self.c_pad, self.c_out);
        let mut oihw = vec![0.0f32; c_out * c_in * 9];
        for o in 0..c_out {
            for ci in 0..c_in {
                for tap in 0..9 {
                    oihw[(o * c_in + ci) * 9 + tap] = self.weight[(tap * c_in + ci) * c_pad + o];
                }
            }
        }
        self.winograd = Winograd::from_oihw(
            &oihw,
            &self.bias[..c_out],
            [c_out, c_in, 3, 3],
            self.padding,
        )
        .map(Box::new);
        self
    }

    /// The Winograd form, when chosen and the output is large enough for it.
    fn winograd_for(&self, h: usize, w: usize) -> Option<&Winograd> {
        let (oh, ow) = self.output_size(h, w);
        self.winograd.as_deref().filter(|_| oh >= 4 && ow >= 4)
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
        if let Some(winograd) = self.winograd_for(x.h, x.w) {
            return winograd.forward_act(x, act);
        }
        let (oh, ow) = self.output_size(x.h, x.w);
        // Every output value is written by a row.
        let mut data = buffers::scratch(x.n * oh * ow * self.c_out);
        let padded = self.padded_for(x, ow);
        let (input, pads) = match &padded {
            Some(p) => (p, (self.padding, 0)),
            None => (x, (self.padding, self.padding)),
        };
        let blocks = self.blocks_for(ow);
        data.par_chunks_mut(ow * self.c_out)
            .enumerate()
            .for_each(|(r, orow)| self.row(input, pads, blocks, (r / oh, r % oh), orow, act));
        if let Some(p) = padded {
            buffers::recycle(p.data);
        }
        Maps {
            n: x.n,
            h: oh,
            w: ow,
            c: self.c_out,
            data,
        }
    }
}

impl DirectConv {
    /// The convolution, its bias and `act`, then `k×k` max pooling at stride `k` in
    /// ceil mode (the last windows cut to the map), as [`super::max_pool_ceil`] on
    /// [`Self::forward_act`]'s output, but computed `k` rows at a time: the unpooled map
    /// (P-Net's first layer on a 2000-pixel photo: over a million pixels of 10
    /// channels) is never written out whole and read back.
    pub fn forward_max_pooled(&self, x: &Maps, act: Act<'_>, k: usize) -> Maps {
        assert_eq!(x.c, self.c_in, "input channels");
        if self.winograd_for(x.h, x.w).is_some() {
            let y = self.forward_act(x, act);
            let pooled = super::max_pool_ceil(&y, k, k);
            buffers::recycle(y.data);
            return pooled;
        }
        let (oh, ow) = self.output_size(x.h, x.w);
        let (ph, pw, c) = (oh.div_ceil(k), ow.div_ceil(k), self.c_out);
        let mut data = buffers::scratch(x.n * ph * pw * c);
        let padded = self.padded_for(x, ow);
        let (input, pads) = match &padded {
            Some(p) => (p, (self.padding, 0)),
            None => (x, (self.padding, self.padding)),
        };
        let blocks = self.blocks_for(ow);
        data.par_chunks_mut(pw * c).enumerate().for_each_init(
            || (Vec::new(), Vec::new()),
            |(rows, rows_max), (r, prow)| {
                let (b, py) = (r / ph, r % ph);
                let ys = py * k..(py * k + k).min(oh);
                rows.resize(ys.len() * ow * c, 0.0);
                for (oy, orow) in ys.clone().zip(rows.chunks_exact_mut(ow * c)) {
                    self.row(input, pads, blocks, (b, oy), orow, act);
                }
                let band = Maps {
                    n: 1,
                    h: ys.len(),
                    w: ow,
                    c,
                    data: std::mem::take(rows),
                };
                super::pool_row(&band, 0, 0..band.h, (k, k), prow, rows_max);
                *rows = band.data;
            },
        );
        if let Some(p) = padded {
            buffers::recycle(p.data);
        }
        Maps {
            n: x.n,
            h: ph,
            w: pw,
            c,
            data,
        }
    }

    /// Output row `oy` of image `b` of `x` into `orow`, with its bias and `act`.
    pub(crate) fn forward_row(&self, x: &Maps, at: (usize, usize), orow: &mut [f32], act: Act<'_>) {
        let blocks = self.blocks_for(orow.len() / self.c_out);
        self.row(x, (self.padding, self.padding), blocks, at, orow, act)
    }

    /// [`Self::forward_row`] on `x` whose columns are already padded by `pads.1` (of
    /// the layer's padding) and whose rows are padded by `pads.0`.
    #[allow(clippy::too_many_arguments)]
    fn row(
        &self,
        x: &Maps,
        pads: (usize, usize),
        blocks: Blocks,
        at: (usize, usize),
        orow: &mut [f32],
        act: Act<'_>,
    ) {
        super::dispatch(Row {
            conv: self,
            x,
            pads,
            blocks,
            at,
            orow,
            act,
        })
    }

    /// The blocks for output rows of `ow` pixels, chosen once per layer call (per row,
    /// the choice cost more than R-Net's rows of 22 pixels).
    fn blocks_for(&self, ow: usize) -> Blocks {
        Blocks {
            avx2: block_shape(&AVX2_BLOCKS, self.c_pad / 8, ow),
            avx512: block_shape(&AVX512_BLOCKS, self.c_pad / 16, ow),
        }
    }

    /// `x` with its zero columns, for a padded layer whose output rows of `ow` pixels
    /// are narrow enough for the copy to pay (`None`: the kernel pads as it goes).
    fn padded_for(&self, x: &Maps, ow: usize) -> Option<Maps> {
        (self.padding > 0 && ow < COPY_PADDING_BELOW).then(|| self.pad_columns(x))
    }

    /// `x` with the layer's padding added as zero columns left and right of each row.
    fn pad_columns(&self, x: &Maps) -> Maps {
        let (p, c) = (self.padding, x.c);
        let w = x.w + 2 * p;
        let mut data = buffers::scratch(x.n * x.h * w * c);
        for (out, row) in data
            .chunks_exact_mut(w * c)
            .zip(x.data.chunks_exact(x.w * c))
        {
            let (left, rest) = out.split_at_mut(p * c);
            let (middle, right) = rest.split_at_mut(x.w * c);
            left.fill(0.0);
            middle.copy_from_slice(row);
            right.fill(0.0);
        }
        Maps { w, data, ..*x }
    }

    pub fn c_out(&self) -> usize {
        self.c_out
    }
}

/// Stores a block of sums, vector `vb` onwards, into a pixel's `out`, by value: taking
/// the sums' address would keep them in memory. A whole vector is stored as one (a
/// partial store is a call). A function, not a closure, to be sure it is inlined.
#[inline(always)]
fn store<S: pulp::Simd, const NB: usize>(simd: S, out: &mut [f32], vb: usize, acc: [S::f32s; NB]) {
    let lanes = size_of::<S::f32s>() / size_of::<f32>();
    for (i, a) in acc.into_iter().enumerate() {
        let from = ((vb + i) * lanes).min(out.len());
        let to = (from + lanes).min(out.len());
        match S::as_mut_simd_f32s(&mut out[from..to]).0 {
            [whole] => *whole = a,
            _ => simd.partial_store_f32s(&mut out[from..to], a),
        }
    }
}

/// One output row of a [`DirectConv`].
struct Row<'a> {
    conv: &'a DirectConv,
    x: &'a Maps,
    /// Padding still to apply: `(rows, columns)`.
    pads: (usize, usize),
    blocks: Blocks,
    at: (usize, usize),
    orow: &'a mut [f32],
    act: Act<'a>,
}

impl pulp::WithSimd for Row<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let lanes = size_of::<S::f32s>() / size_of::<f32>();
        let cv = self.conv.c_pad / lanes;
        let shape = match lanes {
            16 => self.blocks.avx512,
            _ => self.blocks.avx2,
        };
        debug_assert!(
            cv.is_multiple_of(shape.0),
            "blocks for {lanes}-float vectors"
        );
        match shape {
            (6, 4) => self.blocks::<S, 6, 4>(simd),
            (5, 5) => self.blocks::<S, 5, 5>(simd),
            (4, 6) => self.blocks::<S, 4, 6>(simd),
            (3, 8) => self.blocks::<S, 3, 8>(simd),
            (2, 8) => self.blocks::<S, 2, 8>(simd),
            (1, 8) => self.blocks::<S, 1, 8>(simd),
            (4, 4) => self.blocks::<S, 4, 4>(simd),
            (4, 3) => self.blocks::<S, 4, 3>(simd),
            (4, 2) => self.blocks::<S, 4, 2>(simd),
            (2, 4) => self.blocks::<S, 2, 4>(simd),
            (2, 3) => self.blocks::<S, 2, 3>(simd),
            (2, 2) => self.blocks::<S, 2, 2>(simd),
            (1, 4) => self.blocks::<S, 1, 4>(simd),
            (1, 3) => self.blocks::<S, 1, 3>(simd),
            _ => self.blocks::<S, 1, 2>(simd),
        }
    }
}

/// The `(NB, PX)` block for each vector width.
#[derive(Debug, Clone, Copy)]
struct Blocks {
    avx2: (usize, usize),
    avx512: (usize, usize),
}

/// Blocks of NB vectors of output channels (a divisor of their number) for PX
/// neighbouring output pixels, in order of preference: NB·PX sums, NB weights and a
/// broadcast input stay within the registers (16 with AVX2; 32 with AVX-512, whose
/// vectors are 16 wide), with enough independent sums to hide the multiply-adds'
/// latency. PX is at most 8: each pixel needs an address register too. The narrow
/// blocks are for short rows (dlib's last maps are 8, 3 and 1 pixels wide).
const AVX512_BLOCKS: [(usize, usize); 15] = [
    (6, 4),
    (5, 5),
    (4, 6),
    (3, 8),
    (2, 8),
    (1, 8),
    (4, 4),
    (2, 4),
    (1, 4),
    (4, 3),
    (2, 3),
    (1, 3),
    (4, 2),
    (2, 2),
    (1, 2),
];
const AVX2_BLOCKS: [(usize, usize); 7] = [(4, 2), (2, 4), (1, 4), (2, 3), (1, 3), (2, 2), (1, 2)];

/// The block for rows of `ow` pixels with `cv` vectors of channels: of those whose NB
/// divides `cv`, the one of least [`row_cost`], the first of equals.
fn block_shape(table: &[(usize, usize)], cv: usize, ow: usize) -> (usize, usize) {
    table
        .iter()
        .filter(|(nb, _)| cv.is_multiple_of(*nb))
        .copied()
        .min_by(|&a, &b| row_cost(a, cv, ow).total_cmp(&row_cost(b, cv, ow)))
        .unwrap_or((1, 8))
}

/// Time per pixel and vector of channels of a block of `nb` vectors for `px` pixels, in
/// cycles of a core that issues two vector multiply-adds and two loads a cycle, with a
/// latency of four cycles: each step of the loop is `nb·px` multiply-adds on `nb` weight
/// and `px` input loads, and takes at least one latency (few sums wait on each other).
fn unit_cost(nb: usize, px: usize) -> f32 {
    (nb * px).max(8).max(nb + px) as f32 / (2 * nb * px) as f32
}

/// A row of `ow` pixels in blocks of `nb × px`: whole blocks, then the last few pixels
/// either one by one or as the block ending the row, whichever is cheaper (see
/// [`shift_last_block`]). Each pass over the row's inputs after the first (`cv / nb`
/// passes) adds 5%: measured, 2 passes of (2, 8) over 64 channels ran at 0.6 times the
/// speed of one pass of (4, 6), which the count of multiply-adds and loads ranks equal.
fn row_cost((nb, px): (usize, usize), cv: usize, ow: usize) -> f32 {
    let passes = (cv / nb) as f32;
    row_cost_one_pass((nb, px), ow) * (1.0 + 0.05 * (passes - 1.0))
}

fn row_cost_one_pass((nb, px): (usize, usize), ow: usize) -> f32 {
    let (whole, tail) = (ow / px, ow % px);
    let tail_cost = if shift_last_block(nb, px, ow, tail) {
        px as f32 * unit_cost(nb, px)
    } else {
        tail as f32 * unit_cost(nb, 1)
    };
    (whole * px) as f32 * unit_cost(nb, px) + tail_cost
}

/// Whether a row's last `tail` pixels (fewer than a block) are better computed as the
/// whole block ending the row, recomputing pixels before them (with the same sums).
fn shift_last_block(nb: usize, px: usize, ow: usize, tail: usize) -> bool {
    tail > 0 && ow >= px && px as f32 * unit_cost(nb, px) < tail as f32 * unit_cost(nb, 1)
}

impl Row<'_> {
    #[inline(always)]
    fn blocks<S: pulp::Simd, const NB: usize, const PX: usize>(self, simd: S) {
        let Row {
            conv,
            x,
            pads: (py, p),
            blocks: _,
            at: (b, oy),
            orow,
            act,
        } = self;
        let (k, s, c_in, c_out) = (conv.k, conv.stride, conv.c_in, conv.c_out);
        let lanes = size_of::<S::f32s>() / size_of::<f32>();
        let cv = conv.c_pad / lanes;
        let weight = S::as_simd_f32s(&conv.weight).0;
        let bias = S::as_simd_f32s(&conv.bias).0;
        let rows: Vec<Option<&[f32]>> = (0..k).map(|ky| x.input_row(b, oy, (s, py), ky)).collect();
        let w = x.w as isize;
        // The weights of tap `(ky, kx)`: for each input channel, its `cv` vectors.
        let taps = |ky: usize, kx: usize| {
            let tap = (ky * k + kx) * c_in * cv;
            weight[tap..tap + c_in * cv].chunks_exact(cv)
        };
        // A fixed-size block by copy, not `array::from_fn`, whose closure was left as a
        // call in the innermost loop.
        let block = |wt: &[S::f32s], vb: usize| -> [S::f32s; NB] {
            *<&[S::f32s; NB]>::try_from(&wt[vb..vb + NB]).expect("NB vectors")
        };
        // PX neighbouring output pixels at a time, so that each block of weights loaded
        // serves them all (the loop is bound by loads otherwise).
        let ow = orow.len() / c_out;
        for group in 0..ow.div_ceil(PX) {
            let (mut first, mut n) = (PX * group, PX.min(ow - PX * group));
            if n < PX && shift_last_block(NB, PX, ow, n) {
                (first, n) = (ow - PX, PX);
            }
            let x0 = (first * s) as isize - p as isize;
            let last = x0 + ((PX - 1) * s + k - 1) as isize;
            let outs = &mut orow[first * c_out..(first + n) * c_out];
            if outs.len() < PX * c_out || x0 < 0 || last >= w {
                // A group at an edge of the row, whose windows hang over the padding:
                // pixel by pixel, so that the sums skipping taps stay in registers.
                for (j, out) in outs.chunks_exact_mut(c_out).enumerate() {
                    let xj = x0 + (j * s) as isize;
                    for vb in (0..cv).step_by(NB) {
                        let mut acc: [S::f32s; NB] = block(bias, vb);
                        for (ky, row) in rows.iter().enumerate() {
                            let Some(row) = row else { continue };
                            for kx in 0..k {
                                let ix = xj + kx as isize;
                                if !(0..w).contains(&ix) {
                                    continue;
                                }
                                let px = &row[ix as usize * c_in..(ix as usize + 1) * c_in];
                                for (&v, wt) in px.iter().zip(taps(ky, kx)) {
                                    let v = simd.splat_f32s(v);
                                    let wt = block(wt, vb);
                                    for i in 0..NB {
                                        acc[i] = simd.mul_add_e_f32s(v, wt[i], acc[i]);
                                    }
                                }
                            }
                        }
                        store(simd, out, vb, acc);
                    }
                }
                continue;
            }
            for vb in (0..cv).step_by(NB) {
                let mut acc: [[S::f32s; NB]; PX] = [block(bias, vb); PX];
                for (ky, row) in rows.iter().enumerate() {
                    let Some(row) = row else { continue };
                    // In NHWC a window's row is `k·c_in` contiguous values, in the order of
                    // the kernel row's weights: one loop over both (a stem of 3 channels
                    // spent more on setting up each tap than on its 3 multiply-adds).
                    // Pixel j's window starts `j·step` into `window` (offsets, not an
                    // array of slices, which was built by a call per kernel row).
                    let (span, step) = (k * c_in, s * c_in);
                    let at = x0 as usize * c_in;
                    let window = &row[at..at + (PX - 1) * step + span];
                    let tap = ky * k * c_in * cv;
                    for (ci, wt) in weight[tap..tap + span * cv].chunks_exact(cv).enumerate() {
                        let wt = block(wt, vb);
                        for (j, acc) in acc.iter_mut().enumerate() {
                            let v = simd.splat_f32s(window[j * step + ci]);
                            for i in 0..NB {
                                acc[i] = simd.mul_add_e_f32s(v, wt[i], acc[i]);
                            }
                        }
                    }
                }
                for (out, acc) in outs.chunks_exact_mut(c_out).zip(acc) {
                    store(simd, out, vb, acc);
                }
            }
        }
        act_row(orow, c_out, act);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::nhwc::tests::{from_nchw, max_diff, narrow_vectors, random, to_nchw};
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
        matches_candle_nn_cases();
    }

    /// Pooling while the rows are computed gives the pooled layer's output exactly:
    /// odd and even sizes (the last windows cut short), P-Net's first layer and
    /// O-Net's last pool, padded layers.
    #[test]
    fn pooled_rows_equal_the_pooled_layer() {
        for (i, &(n, h, w, c_in, c_out, k, padding, pool)) in [
            (1, 29, 37, 3, 10, 3, 0, 2),
            (2, 10, 10, 64, 64, 3, 0, 2),
            (1, 9, 12, 8, 24, 3, 1, 3),
            (2, 3, 4, 16, 16, 3, 0, 2),
        ]
        .iter()
        .enumerate()
        {
            let x = Maps {
                n,
                h,
                w,
                c: c_in,
                data: random(n * h * w * c_in, 70 + i as u64),
            };
            let conv = DirectConv::from_oihw(
                &random(c_out * c_in * k * k, 80 + i as u64),
                &random(c_out, 90 + i as u64),
                [c_out, c_in, k, k],
                1,
                padding,
            );
            let slopes = random(c_out, 95 + i as u64);
            let act = Act::Prelu(&slopes);
            let expected = super::super::max_pool_ceil(&conv.forward_act(&x, act), pool, pool);
            assert_eq!(conv.forward_max_pooled(&x, act, pool), expected, "case {i}");
        }
    }

    /// Short rows take blocks that fit them, and a row's last pixels are computed as the
    /// block ending the row when that is cheaper than one by one.
    #[test]
    fn blocks_fit_short_rows() {
        // 256 channels (16 vectors) in rows of 3 and 1 pixels, 128 in rows of 8.
        assert_eq!(block_shape(&AVX512_BLOCKS, 16, 3), (4, 3));
        assert_eq!(block_shape(&AVX512_BLOCKS, 8, 8), (4, 4));
        // 64 channels in rows of 88: one pass of 4 vectors, not two of (2, 8).
        assert_eq!(block_shape(&AVX512_BLOCKS, 4, 88).0, 4);
        // Wide rows keep the widest blocks.
        assert_eq!(block_shape(&AVX512_BLOCKS, 1, 1198), (1, 8));
        assert_eq!(block_shape(&AVX512_BLOCKS, 6, 600), (6, 4));
        assert!(shift_last_block(2, 8, 46, 6));
        assert!(!shift_last_block(3, 8, 9, 1));
        assert!(
            !shift_last_block(2, 8, 5, 5),
            "a row shorter than the block"
        );
    }

    /// The same in AVX2 vectors, whatever the machine.
    #[test]
    fn matches_candle_nn_in_avx2_vectors() {
        narrow_vectors(matches_candle_nn_cases);
    }

    fn matches_candle_nn_cases() {
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
            // dlib's last maps: rows of 35, 17, 8, 3 and 1 pixels, padded.
            (1, 35, 35, 32, 32, 3, 1, 1),
            (2, 17, 17, 64, 64, 3, 1, 1),
            (2, 8, 8, 128, 128, 3, 1, 1),
            (2, 3, 3, 256, 256, 3, 1, 1),
            (1, 3, 3, 256, 256, 3, 2, 0),
            // R-Net's second layer: 9 pixels, a block of 8 and one more.
            (3, 11, 11, 28, 48, 3, 1, 0),
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
            // Rounding grows with the terms of each sum (1152 in dlib's 128-channel maps).
            let tolerance = 1e-5 * (c_in * k * k).max(300) as f32 / 300.0;
            assert!(diff < tolerance, "case {i}: max difference {diff}");
        }
    }
}
