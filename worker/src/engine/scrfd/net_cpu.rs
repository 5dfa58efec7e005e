//! SCRFD-500M on the CPU in NHWC layout: dense and pointwise convolutions (16 to 288
//! channels) with the direct kernel (`nhwc::direct`), depthwise ones with the kernel
//! shared with ArcFace (`nhwc::depthwise`). Bias and ReLU are applied in the same pass as
//! each layer, and each depthwise + pointwise pair runs row by row. (The pointwise
//! layers took as long through candle's GEMM, whose fresh output buffer per layer cost
//! page faults besides.)

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

    /// Both layers row by row: each depthwise output row goes through the pointwise
    /// layer while it is in cache. Layer by layer, the depthwise output (17 MB for the
    /// first block of a 1376×768 input) was written to memory and read back.
    fn forward(&self, x: &Maps) -> Result<Maps> {
        let (oh, ow) = self.depthwise.output_size(x.h, x.w);
        let c_out = self.pointwise.c_out();
        let spans = self.depthwise.spans(x.w);
        let mut data = buffers::scratch(x.n * oh * ow * c_out);
        data.par_chunks_mut(ow * c_out)
            .enumerate()
            .for_each(|(r, orow)| self.row(x, (r / oh, r % oh), &spans, orow));
        Ok(Maps {
            n: x.n,
            h: oh,
            w: ow,
            c: c_out,
            data,
        })
    }

    /// Output row `at` of `x`'s block into `orow`; `spans` from the depthwise layer.
    fn row(&self, x: &Maps, at: (usize, usize), spans: &[(usize, usize)], orow: &mut [f32]) {
        let ow = self.depthwise.output_size(1, x.w).1;
        let mut mid = Maps {
            n: 1,
            h: 1,
            w: ow,
            c: x.c,
            data: buffers::scratch(ow * x.c),
        };
        self.depthwise
            .forward_row(x, at, spans, &mut mid.data, Act::Relu);
        self.pointwise.forward_row(&mid, (0, 0), orow, Act::Relu);
        buffers::recycle(mid.data);
    }
}

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
        // The stem and a stride-1 first block go through in bands ([`banded`]). (Pairing
        // the later stride-2 blocks with the stride-1 block after them gained nothing:
        // their maps are smaller and their halo rows cost more.)
        let (oh, ow) = self.stem.output_size(x.h, x.w);
        let first_fuses = x.n == 1
            && !self.taps.contains(&0)
            && self
                .blocks
                .first()
                .is_some_and(|b| b.depthwise.stride() == 1);
        let (mut f, first) = if first_fuses {
            let stem = |r: usize, row: &mut [f32]| self.stem.forward_row(x, (0, r), row, Act::Relu);
            (
                banded((oh, ow, self.stem.c_out()), stem, &self.blocks[0]),
                1,
            )
        } else {
            (self.stem.forward_act(x, act(true)), 0)
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

/// The producer's rows of one band of [`banded`] are kept within this many bytes, to stay
/// in the L2 cache: 18 rows of 688 pixels × 16 channels (0.8 MB) for the stem of a
/// 1376-pixel-wide input. At a fixed 16 rows, a 2016-pixel-wide input's band (1.2 MB)
/// overflowed it.
const BAND_BYTES: usize = 800 * 1024;

/// Output rows per band of [`banded`] for producer rows of `row_bytes`: as many as fit
/// [`BAND_BYTES`] with the two halo rows, from 4 (below, the halo rows' recomputation
/// costs more than the cache saves) to 16.
fn band_rows(row_bytes: usize) -> usize {
    (BAND_BYTES / row_bytes.max(1))
        .saturating_sub(2)
        .clamp(4, 16)
}

/// A stride-1 separable block `next` after a layer whose output rows `produce` computes
/// (`(h, w, c)` in all: the stem), for one image, in bands of output rows: each band's input rows,
/// and one more on each side for the depthwise taps, are computed into a buffer that stays
/// in cache, where layer by layer the producer's output (the stem's: 17 MB for a 1376×768
/// input) was written out and read back. The same numbers: rows outside the map are
/// zeros, as the depthwise padding.
fn banded(
    (h, w, c): (usize, usize, usize),
    produce: impl Fn(usize, &mut [f32]) + Sync,
    next: &Separable,
) -> Maps {
    let c_out = next.pointwise.c_out();
    let spans = next.depthwise.spans(w);
    let mut data = buffers::scratch(h * w * c_out);
    let band = band_rows(w * c * size_of::<f32>());
    data.par_chunks_mut(band * w * c_out)
        .enumerate()
        .for_each(|(i, out)| {
            let (r0, rows) = (i * band, out.len() / (w * c_out));
            // Band row j holds input row r0 + j − 1.
            let mut band = Maps {
                n: 1,
                h: rows + 2,
                w,
                c,
                data: buffers::scratch((rows + 2) * w * c),
            };
            for (j, row) in band.data.chunks_exact_mut(w * c).enumerate() {
                match (r0 + j).checked_sub(1).filter(|&r| r < h) {
                    Some(r) => produce(r, row),
                    None => row.fill(0.0),
                }
            }
            // Output row j of the band reads band rows j..j + 3: as output row j + 1 of
            // the band with the padding of one.
            for (j, orow) in out.chunks_exact_mut(w * c_out).enumerate() {
                next.row(&band, (0, j + 1), &spans, orow);
            }
            buffers::recycle(band.data);
        });
    Maps {
        n: 1,
        h,
        w,
        c: c_out,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_keep_the_producer_rows_within_the_cache_budget() {
        // The stem's rows (16 channels) for 1376- and 2016-pixel-wide inputs.
        assert_eq!(band_rows(688 * 16 * 4), 16);
        assert_eq!(band_rows(1008 * 16 * 4), 10);
        assert!((band_rows(1008 * 16 * 4) + 2) * 1008 * 16 * 4 <= BAND_BYTES);
        // Very wide rows still make bands of 4; tiny ones at most 16.
        assert_eq!(band_rows(10_000 * 16 * 4), 4);
        assert_eq!(band_rows(4), 16);
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
