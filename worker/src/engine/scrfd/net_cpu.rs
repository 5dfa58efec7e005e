//! SCRFD-500M on the CPU in NHWC layout: dense and pointwise convolutions (16 to 288
//! channels) with the direct kernel (`nhwc::direct`), depthwise ones with the kernel
//! shared with ArcFace (`nhwc::depthwise`). Bias and ReLU are applied in the same pass as
//! each layer, and each depthwise + pointwise pair runs a few rows at a time, so that its
//! intermediate map stays in cache; the stem and the first blocks, whose maps are the
//! largest, run as one stream of rows ([`streamed`]). (The pointwise layers took as long
//! through candle's GEMM, whose fresh output buffer per layer cost page faults besides.)

use rayon::prelude::*;

use super::decode::StrideOutput;
use super::weights::{ConvWeights, HEAD_CHANNELS, STRIDES, ScrfdWeights, SeparableWeights};
use crate::engine::nhwc::buffers;
use crate::engine::nhwc::depthwise::Depthwise;
use crate::engine::nhwc::direct::DirectConv;
use crate::engine::nhwc::{Act, Maps};
use crate::engine::{EngineError, Result};

fn act(relu: bool) -> Act<'static> {
    if relu { Act::Relu } else { Act::Identity }
}

fn invalid(what: &str, w: &ConvWeights) -> EngineError {
    EngineError::Invalid(format!(
        "SCRFD {what}: unexpected layer shape {:?} (stride {}, padding {}, groups {})",
        w.shape(),
        w.stride,
        w.pad,
        w.groups
    ))
}

/// A depthwise conv as the backbone and heads use it: 3×3, padding 1.
fn depthwise(w: &ConvWeights) -> Result<Depthwise> {
    if !w.is_depthwise() || w.k != 3 || w.pad != 1 {
        return Err(invalid("depthwise conv", w));
    }
    Ok(Depthwise::from_oihw(
        &w.weight,
        &w.bias,
        [w.c_out, w.k],
        w.stride,
        w.pad,
    ))
}

/// A 1×1 convolution: one GEMM on the activations as they lie.
fn pointwise(w: &ConvWeights) -> Result<DirectConv> {
    if w.k != 1 || w.stride != 1 || w.pad != 0 || w.groups != 1 {
        return Err(invalid("pointwise conv", w));
    }
    Ok(DirectConv::from_oihw(&w.weight, &w.bias, w.shape(), 1, 0))
}

/// A dense k×k convolution.
fn dense(w: &ConvWeights, what: &str) -> Result<DirectConv> {
    if w.groups != 1 {
        return Err(invalid(what, w));
    }
    Ok(DirectConv::from_oihw(
        &w.weight,
        &w.bias,
        w.shape(),
        w.stride,
        w.pad,
    ))
}

struct Separable {
    depthwise: Depthwise,
    pointwise: DirectConv,
}

impl Separable {
    fn new(w: &SeparableWeights) -> Result<Separable> {
        Ok(Separable {
            depthwise: depthwise(&w.depthwise)?,
            pointwise: pointwise(&w.pointwise)?,
        })
    }

    /// Both layers a few rows at a time: each task's depthwise output rows go through
    /// the pointwise layer while they are in cache (layer by layer, the depthwise
    /// output was written to memory and read back), and as one run of pixels, so that
    /// the pointwise kernel's blocks of pixels rarely break at the end of a row.
    fn forward(&self, x: &Maps) -> Result<Maps> {
        let (oh, ow) = self.depthwise.output_size(x.h, x.w);
        let c_out = self.pointwise.c_out();
        let spans = self.depthwise.spans(x.w);
        let rows = x.n * oh;
        let per_task = rows_per_task(rows, ow);
        let mut data = buffers::scratch(rows * ow * c_out);
        data.par_chunks_mut(per_task * ow * c_out)
            .enumerate()
            .for_each(|(t, out)| {
                self.through(ow, out, |j, mrow| {
                    let r = t * per_task + j;
                    self.depthwise
                        .forward_row(x, (r / oh, r % oh), &spans, mrow, Act::Relu);
                })
            });
        Ok(Maps {
            n: x.n,
            h: oh,
            w: ow,
            c: c_out,
            data,
        })
    }

    /// One output row from the three input rows (of `w` pixels) under it, `None` in the
    /// padding.
    fn row_from(
        &self,
        rows: &[Option<&[f32]>],
        w: usize,
        spans: &[(usize, usize)],
        orow: &mut [f32],
    ) {
        let ow = self.depthwise.output_size(1, w).1;
        self.through(ow, orow, |_, mrow| {
            self.depthwise.forward_rows(rows, w, spans, mrow, Act::Relu)
        });
    }

    /// The output rows `out` (each `ow` pixels): `depthwise_row(j, mid)` writes the
    /// depthwise output row `j` into a scratch buffer, then the pointwise layer maps them
    /// all as one run of pixels (a 1×1 layer maps each pixel on its own).
    fn through(&self, ow: usize, out: &mut [f32], depthwise_row: impl Fn(usize, &mut [f32])) {
        let n = out.len() / (ow * self.pointwise.c_out());
        let c = self.depthwise.channels();
        let mut mid = Maps {
            n: 1,
            h: 1,
            w: n * ow,
            c,
            data: buffers::scratch(n * ow * c),
        };
        for (j, mrow) in mid.data.chunks_exact_mut(ow * c).enumerate() {
            depthwise_row(j, mrow);
        }
        self.pointwise.forward_row(&mid, (0, 0), out, Act::Relu);
        buffers::recycle(mid.data);
    }
}

/// Rows per task of [`Separable::forward`]: about [`TASK_PIXELS`] pixels, in at least
/// four tasks per thread for the threads to share them evenly.
fn rows_per_task(rows: usize, w: usize) -> usize {
    let for_threads = rows / (4 * rayon::current_num_threads());
    TASK_PIXELS.div_ceil(w.max(1)).min(for_threads).max(1)
}

/// Pixels per task of [`Separable::forward`].
const TASK_PIXELS: usize = 256;

struct Head {
    tower: [Separable; 2],
    out: DirectConv,
}

/// `fine += nearest-upsampled coarse` (ONNX Resize, nearest, asymmetric, floor).
fn add_upsampled(fine: &mut Maps, coarse: &Maps) {
    assert_eq!((fine.n, fine.c), (coarse.n, coarse.c));
    let c = fine.c;
    let (fh, fw, ch, cw) = (fine.h, fine.w, coarse.h, coarse.w);
    fine.data
        .par_chunks_mut(fw * c)
        .enumerate()
        .for_each(|(r, row)| {
            let (b, y) = (r / fh, r % fh);
            let sy = y * ch / fh;
            for (x, px) in row.chunks_exact_mut(c).enumerate() {
                let sx = x * cw / fw;
                let at = ((b * ch + sy) * cw + sx) * c;
                for (v, u) in px.iter_mut().zip(&coarse.data[at..at + c]) {
                    *v += u;
                }
            }
        });
}

/// Splits a head's fused `(1, h, w, 30)` output into the ONNX outputs' layout.
pub(super) fn split_head(stride: usize, h: usize, w: usize, data: &[f32]) -> StrideOutput {
    let cells = h * w;
    let mut out = StrideOutput {
        stride,
        h,
        w,
        scores: Vec::with_capacity(cells * 2),
        bbox: Vec::with_capacity(cells * 8),
        kps: Vec::with_capacity(cells * 20),
    };
    for px in data.chunks_exact(HEAD_CHANNELS) {
        out.scores
            .extend(px[..2].iter().map(|&v| 1.0 / (1.0 + (-v).exp())));
        out.bbox.extend_from_slice(&px[2..10]);
        out.kps.extend_from_slice(&px[10..30]);
    }
    out
}

/// The network as NHWC layers.
pub struct ScrfdCpu {
    stem: DirectConv,
    blocks: Vec<Separable>,
    taps: [usize; 3],
    lateral: [DirectConv; 3],
    fpn: [DirectConv; 3],
    downsample: [DirectConv; 2],
    pafpn: [DirectConv; 2],
    heads: [Head; 3],
}

impl ScrfdCpu {
    pub fn new(w: &ScrfdWeights) -> Result<ScrfdCpu> {
        let head = |i: usize| -> Result<Head> {
            let h = &w.heads[i];
            Ok(Head {
                tower: [Separable::new(&h.tower[0])?, Separable::new(&h.tower[1])?],
                out: dense(&h.out, "head conv")?,
            })
        };
        let fpn = |c: &ConvWeights| dense(c, "neck conv");
        Ok(ScrfdCpu {
            stem: dense(&w.stem, "stem")?,
            blocks: w.blocks.iter().map(Separable::new).collect::<Result<_>>()?,
            taps: w.taps,
            lateral: [
                pointwise(&w.lateral[0])?,
                pointwise(&w.lateral[1])?,
                pointwise(&w.lateral[2])?,
            ],
            fpn: [fpn(&w.fpn[0])?, fpn(&w.fpn[1])?, fpn(&w.fpn[2])?],
            downsample: [fpn(&w.downsample[0])?, fpn(&w.downsample[1])?],
            pafpn: [fpn(&w.pafpn[0])?, fpn(&w.pafpn[1])?],
            heads: [head(0)?, head(1)?, head(2)?],
        })
    }

    /// `x`: one normalised image `(1, H, W, 3)`, H and W multiples of 32.
    pub fn forward(&self, x: &Maps) -> Result<[StrideOutput; 3]> {
        // The stem and the first blocks go through as a stream of rows ([`streamed`]):
        // their maps, the largest of the network, are never written out whole.
        let first = if x.n == 1 {
            self.blocks
                .iter()
                .take(STREAMED_BLOCKS)
                .enumerate()
                .take_while(|(i, _)| !self.taps.contains(i))
                .count()
        } else {
            0
        };
        let mut f = if first > 0 {
            streamed(x, &self.stem, &self.blocks[..first])
        } else {
            self.stem.forward_act(x, act(true))
        };
        let mut features: Vec<Maps> = Vec::with_capacity(3);
        // A tapped block's output moves into `features` and the next block reads it
        // there, rather than keeping a copy.
        let mut tapped = false;
        for (i, block) in self.blocks.iter().enumerate().skip(first) {
            let input = match features.last() {
                Some(last) if tapped => last,
                _ => &f,
            };
            let y = block.forward(input)?;
            tapped = self.taps.contains(&i);
            if tapped {
                features.push(y);
            } else {
                buffers::recycle(std::mem::replace(&mut f, y).data);
            }
        }
        // The last untapped block's output, read by the next (tapped) block.
        buffers::recycle(f.data);
        let [c3, c4, c5]: [Maps; 3] = features
            .try_into()
            .map_err(|_| EngineError::Invalid("SCRFD: backbone taps out of order".into()))?;
        let l2 = self.lateral[2].forward_owned(c5, Act::Identity);
        let mut l1 = self.lateral[1].forward_owned(c4, Act::Identity);
        add_upsampled(&mut l1, &l2);
        let mut l0 = self.lateral[0].forward_owned(c3, Act::Identity);
        add_upsampled(&mut l0, &l1);
        // Every intermediate map goes back to the buffer pool once read: freed, the
        // large ones are unmapped and the next photo faults their pages in again.
        let p0 = self.fpn[0].forward(&l0);
        let mut p1 = self.fpn[1].forward(&l1);
        let d0 = self.downsample[0].forward(&p0);
        p1.add_assign(&d0);
        let mut p2 = self.fpn[2].forward(&l2);
        let d1 = self.downsample[1].forward(&p1);
        p2.add_assign(&d1);
        let levels = [p0, self.pafpn[0].forward(&p1), self.pafpn[1].forward(&p2)];
        for m in [l0, l1, l2, p1, p2, d0, d1] {
            buffers::recycle(m.data);
        }
        let head = |i: usize| -> Result<StrideOutput> {
            let h = &self.heads[i];
            let t0 = h.tower[0].forward(&levels[i])?;
            let t = h.tower[1].forward(&t0)?;
            let o = h.out.forward(&t);
            let out = split_head(STRIDES[i], o.h, o.w, &o.data);
            for m in [t0, t, o] {
                buffers::recycle(m.data);
            }
            Ok(out)
        };
        let outputs = [head(0)?, head(1)?, head(2)?];
        for m in levels {
            buffers::recycle(m.data);
        }
        Ok(outputs)
    }
}

/// Blocks after the stem that [`streamed`] computes with it (the first three: up to
/// stride 4, where the maps are largest).
const STREAMED_BLOCKS: usize = 3;

/// Tasks [`streamed`] splits the output rows into: enough for the threads to share, few
/// enough that the halo rows each recomputes stay a small part of its work.
const STREAMED_TASKS: usize = 8;

/// The last three rows computed of one layer of [`streamed`], in slots by row modulo 3.
struct Ring {
    rows: [(Option<usize>, Vec<f32>); 3],
}

impl Ring {
    fn new(len: usize) -> Ring {
        Ring {
            rows: std::array::from_fn(|_| (None, buffers::scratch(len))),
        }
    }

    fn get(&self, y: usize) -> Option<&[f32]> {
        let (at, row) = &self.rows[y % 3];
        (*at == Some(y)).then_some(row.as_slice())
    }
}

/// The stem and `blocks` (3×3 separable, padding 1) after it on one image, as a stream of
/// rows: each task computes a run of the last block's output rows, and each layer's
/// rows as the next layer first needs them, keeping only the last three of each (in
/// the L1 and L2 caches). Layer by layer, each map (17 MB for the stem of a 1376×768
/// input) was written to memory and read back. The same numbers: the same row kernels,
/// and rows outside a map are the padding's zeros.
fn streamed(x: &Maps, stem: &DirectConv, blocks: &[Separable]) -> Maps {
    assert_eq!(x.n, 1, "one image");
    // Each layer's output size: the stem's, then each block's.
    let mut sizes = vec![stem.output_size(x.h, x.w)];
    for b in blocks {
        let (h, w) = sizes[sizes.len() - 1];
        sizes.push(b.depthwise.output_size(h, w));
    }
    let channels: Vec<usize> = std::iter::once(stem.c_out())
        .chain(blocks.iter().map(|b| b.pointwise.c_out()))
        .collect();
    let spans: Vec<Vec<(usize, usize)>> = blocks
        .iter()
        .zip(&sizes)
        .map(|(b, &(_, w))| b.depthwise.spans(w))
        .collect();
    let chain = Chain {
        x,
        stem,
        blocks,
        sizes: &sizes,
        spans: &spans,
    };
    let last = blocks.len();
    let (oh, ow) = sizes[last];
    let c_out = channels[last];
    let rows_per_task = oh.div_ceil(STREAMED_TASKS).max(1);
    let mut data = buffers::scratch(oh * ow * c_out);
    data.par_chunks_mut(rows_per_task * ow * c_out)
        .enumerate()
        .for_each(|(i, out)| {
            let mut rings: Vec<Ring> = (0..last)
                .map(|l| Ring::new(sizes[l].1 * channels[l]))
                .collect();
            for (j, orow) in out.chunks_exact_mut(ow * c_out).enumerate() {
                chain.row(&mut rings, last, i * rows_per_task + j, orow);
            }
            for ring in rings {
                for (_, row) in ring.rows {
                    buffers::recycle(row);
                }
            }
        });
    Maps {
        n: 1,
        h: oh,
        w: ow,
        c: c_out,
        data,
    }
}

/// The layers of [`streamed`]: layer 0 is the stem, layer `l` block `l − 1`.
struct Chain<'a> {
    x: &'a Maps,
    stem: &'a DirectConv,
    blocks: &'a [Separable],
    sizes: &'a [(usize, usize)],
    spans: &'a [Vec<(usize, usize)>],
}

impl Chain<'_> {
    /// Row `y` of layer `l` into `out`, computing first the rows of layer `l − 1` under it
    /// that `rings[l − 1]` does not hold.
    fn row(&self, rings: &mut [Ring], l: usize, y: usize, out: &mut [f32]) {
        if l == 0 {
            return self.stem.forward_row(self.x, (0, y), out, Act::Relu);
        }
        let block = &self.blocks[l - 1];
        let (h, w) = self.sizes[l - 1];
        let s = block.depthwise.stride();
        // Input row `y·s + ky − 1` (padding 1), inside the map.
        let under = |ky: usize| (y * s + ky).checked_sub(1).filter(|&r| r < h);
        for r in (0..3).filter_map(under) {
            self.ensure(rings, l - 1, r);
        }
        let ring = &rings[l - 1];
        let rows: [Option<&[f32]>; 3] =
            std::array::from_fn(|ky| under(ky).map(|r| ring.get(r).expect("row computed")));
        block.row_from(&rows, w, &self.spans[l - 1], out);
    }

    /// Row `y` of layer `l` into its ring, unless it is there.
    fn ensure(&self, rings: &mut [Ring], l: usize, y: usize) {
        if rings[l].get(y).is_some() {
            return;
        }
        // Out of the ring while it is written: computing it reads only earlier layers.
        let mut row = std::mem::take(&mut rings[l].rows[y % 3].1);
        self.row(&mut rings[..l], l, y, &mut row);
        rings[l].rows[y % 3] = (Some(y), row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::nhwc::tests::random;

    /// A separable block with random weights: 3×3 depthwise (padding 1) at `stride`,
    /// then 1×1 from `c_in` to `c_out` channels.
    fn separable(c_in: usize, c_out: usize, stride: usize, seed: u64) -> Separable {
        Separable {
            depthwise: Depthwise::from_oihw(
                &random(c_in * 9, seed),
                &random(c_in, seed + 1),
                [c_in, 3],
                stride,
                1,
            ),
            pointwise: DirectConv::from_oihw(
                &random(c_out * c_in, seed + 2),
                &random(c_out, seed + 3),
                [c_out, c_in, 1, 1],
                1,
                0,
            ),
        }
    }

    /// The stream of rows gives exactly the layers' numbers, for SCRFD's first layers
    /// (a stem at stride 2, blocks at strides 1 and 2) on sizes whose rows split unevenly
    /// between tasks, and odd ones whose last windows hang over the padding.
    #[test]
    fn streamed_layers_equal_the_layers_one_by_one() {
        for (h, w) in [(64, 96), (70, 38), (9, 13), (2, 2)] {
            let x = Maps {
                n: 1,
                h,
                w,
                c: 3,
                data: random(h * w * 3, 7),
            };
            let stem =
                DirectConv::from_oihw(&random(16 * 27, 8), &random(16, 9), [16, 3, 3, 3], 2, 1);
            let blocks = [
                separable(16, 16, 1, 10),
                separable(16, 40, 2, 20),
                separable(40, 40, 1, 30),
            ];
            for n in 1..=blocks.len() {
                let mut expected = stem.forward_act(&x, Act::Relu);
                for b in &blocks[..n] {
                    expected = b.forward(&expected).unwrap();
                }
                let got = streamed(&x, &stem, &blocks[..n]);
                assert_eq!(
                    (got.h, got.w, got.c),
                    (expected.h, expected.w, expected.c),
                    "{h}×{w}, {n} blocks"
                );
                assert!(got.data == expected.data, "{h}×{w}, {n} blocks");
            }
        }
    }

    #[test]
    fn upsampling_repeats_each_coarse_pixel_twice_each_way() {
        let coarse = Maps {
            n: 1,
            h: 1,
            w: 2,
            c: 1,
            data: vec![10.0, 20.0],
        };
        let mut fine = Maps::zeros(1, 2, 4, 1);
        fine.data[5] = 1.0;
        add_upsampled(&mut fine, &coarse);
        assert_eq!(
            fine.data,
            vec![10.0, 10.0, 20.0, 20.0, 10.0, 11.0, 20.0, 20.0]
        );
    }
}
