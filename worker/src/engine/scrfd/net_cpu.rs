//! SCRFD-500M on the CPU in NHWC layout: dense convolutions through `engine::nhwc`
//! (im2col + GEMM), pointwise ones as a plain GEMM on the activations, depthwise ones
//! with a direct kernel (im2col would copy nine times the data for a 9-tap dot product
//! per channel). Bias and ReLU are applied in the same pass as each layer.

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::decode::StrideOutput;
use super::weights::{ConvWeights, HEAD_CHANNELS, STRIDES, ScrfdWeights, SeparableWeights};
use crate::engine::nhwc::{Act, Conv, Maps};
use crate::engine::{EngineError, Result};

/// Pixels per parallel task in the per-pixel passes.
const PIXELS_PER_TASK: usize = 2048;

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

/// A 3×3 depthwise convolution, padding 1, stride 1 or 2.
struct Depthwise {
    c: usize,
    stride: usize,
    /// `(ky, kx, c)`: one contiguous row of channel weights per tap.
    taps: Vec<f32>,
    bias: Vec<f32>,
}

impl Depthwise {
    fn new(w: &ConvWeights) -> Result<Depthwise> {
        if !w.is_depthwise() || w.k != 3 || w.pad != 1 {
            return Err(invalid("depthwise conv", w));
        }
        let c = w.c_out;
        let mut taps = vec![0.0f32; 9 * c];
        for ch in 0..c {
            for t in 0..9 {
                taps[t * c + ch] = w.weight[ch * 9 + t];
            }
        }
        Ok(Depthwise {
            c,
            stride: w.stride,
            taps,
            bias: w.bias.clone(),
        })
    }

    fn forward(&self, x: &Maps, relu: bool) -> Maps {
        assert_eq!(x.c, self.c, "depthwise channels");
        let (s, c) = (self.stride, self.c);
        let oh = (x.h + 2 - 3) / s + 1;
        let ow = (x.w + 2 - 3) / s + 1;
        let mut out = Maps::zeros(x.n, oh, ow, c);
        let in_row = x.w * c;
        out.data
            .par_chunks_mut(ow * c)
            .enumerate()
            .for_each(|(r, orow)| {
                let (b, oy) = (r / oh, r % oh);
                for px in orow.chunks_exact_mut(c) {
                    px.copy_from_slice(&self.bias);
                }
                for ky in 0..3 {
                    let iy = (oy * s + ky) as isize - 1;
                    if iy < 0 || iy >= x.h as isize {
                        continue;
                    }
                    let start = (b * x.h + iy as usize) * in_row;
                    let irow = &x.data[start..start + in_row];
                    for kx in 0..3 {
                        let tap = &self.taps[(ky * 3 + kx) * c..(ky * 3 + kx + 1) * c];
                        // Output columns whose input column `ox·s + kx − 1` is inside.
                        let lo = usize::from(kx == 0);
                        let hi = ((x.w + s - kx) / s).min(ow);
                        for ox in lo..hi {
                            let ix = ox * s + kx - 1;
                            let o = &mut orow[ox * c..(ox + 1) * c];
                            let i = &irow[ix * c..(ix + 1) * c];
                            for ((o, i), w) in o.iter_mut().zip(i).zip(tap) {
                                *o += i * w;
                            }
                        }
                    }
                }
                if relu {
                    for v in orow.iter_mut() {
                        *v = v.max(0.0);
                    }
                }
            });
        out
    }
}

/// A 1×1 convolution: one GEMM on the activations as they lie.
struct Pointwise {
    c_in: usize,
    c_out: usize,
    /// `(c_in, c_out)`.
    weight: Tensor,
    bias: Vec<f32>,
}

impl Pointwise {
    fn new(w: &ConvWeights) -> Result<Pointwise> {
        if w.k != 1 || w.stride != 1 || w.pad != 0 || w.groups != 1 {
            return Err(invalid("pointwise conv", w));
        }
        let (c_in, c_out) = (w.c_in, w.c_out);
        let mut t = vec![0.0f32; c_in * c_out];
        for o in 0..c_out {
            for i in 0..c_in {
                t[i * c_out + o] = w.weight[o * c_in + i];
            }
        }
        Ok(Pointwise {
            c_in,
            c_out,
            weight: Tensor::from_vec(t, (c_in, c_out), &Device::Cpu)?,
            bias: w.bias.clone(),
        })
    }

    /// Takes the activations by value: candle wraps them without a copy.
    fn forward(&self, x: Maps, relu: bool) -> Result<Maps> {
        assert_eq!(x.c, self.c_in, "pointwise channels");
        let pixels = x.n * x.h * x.w;
        let input = Tensor::from_vec(x.data, (pixels, self.c_in), &Device::Cpu)?;
        let mut data = input
            .matmul(&self.weight)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let bias = &self.bias;
        data.par_chunks_mut(self.c_out * PIXELS_PER_TASK)
            .for_each(|rows| {
                for px in rows.chunks_exact_mut(bias.len()) {
                    for (v, b) in px.iter_mut().zip(bias) {
                        *v = if relu { (*v + b).max(0.0) } else { *v + b };
                    }
                }
            });
        Ok(Maps {
            n: x.n,
            h: x.h,
            w: x.w,
            c: self.c_out,
            data,
        })
    }
}

/// A dense k×k convolution through im2col + GEMM.
fn dense(w: &ConvWeights, what: &str) -> Result<Conv> {
    if w.groups != 1 {
        return Err(invalid(what, w));
    }
    Conv::from_oihw(&w.weight, &w.bias, w.shape(), w.stride, w.pad)
}

struct Separable {
    depthwise: Depthwise,
    pointwise: Pointwise,
}

impl Separable {
    fn new(w: &SeparableWeights) -> Result<Separable> {
        Ok(Separable {
            depthwise: Depthwise::new(&w.depthwise)?,
            pointwise: Pointwise::new(&w.pointwise)?,
        })
    }

    fn forward(&self, x: &Maps) -> Result<Maps> {
        self.pointwise
            .forward(self.depthwise.forward(x, true), true)
    }
}

struct Head {
    tower: [Separable; 2],
    out: Conv,
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
    stem: Conv,
    blocks: Vec<Separable>,
    taps: [usize; 3],
    lateral: [Pointwise; 3],
    fpn: [Conv; 3],
    downsample: [Conv; 2],
    pafpn: [Conv; 2],
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
                Pointwise::new(&w.lateral[0])?,
                Pointwise::new(&w.lateral[1])?,
                Pointwise::new(&w.lateral[2])?,
            ],
            fpn: [fpn(&w.fpn[0])?, fpn(&w.fpn[1])?, fpn(&w.fpn[2])?],
            downsample: [fpn(&w.downsample[0])?, fpn(&w.downsample[1])?],
            pafpn: [fpn(&w.pafpn[0])?, fpn(&w.pafpn[1])?],
            heads: [head(0)?, head(1)?, head(2)?],
        })
    }

    /// `x`: one normalised image `(1, H, W, 3)`, H and W multiples of 32.
    pub fn forward(&self, x: &Maps) -> Result<[StrideOutput; 3]> {
        let mut f = self.stem.forward_act(x, act(true))?;
        let mut features = Vec::with_capacity(3);
        for (i, block) in self.blocks.iter().enumerate() {
            f = block.forward(&f)?;
            if self.taps.contains(&i) {
                features.push(f.clone());
            }
        }
        let [c3, c4, c5]: [Maps; 3] = features
            .try_into()
            .map_err(|_| EngineError::Invalid("SCRFD: backbone taps out of order".into()))?;
        let l2 = self.lateral[2].forward(c5, false)?;
        let mut l1 = self.lateral[1].forward(c4, false)?;
        add_upsampled(&mut l1, &l2);
        let mut l0 = self.lateral[0].forward(c3, false)?;
        add_upsampled(&mut l0, &l1);
        let p0 = self.fpn[0].forward(&l0)?;
        let mut p1 = self.fpn[1].forward(&l1)?;
        p1.add_assign(&self.downsample[0].forward(&p0)?);
        let mut p2 = self.fpn[2].forward(&l2)?;
        p2.add_assign(&self.downsample[1].forward(&p1)?);
        let levels = [p0, self.pafpn[0].forward(&p1)?, self.pafpn[1].forward(&p2)?];
        let head = |i: usize| -> Result<StrideOutput> {
            let h = &self.heads[i];
            let t = h.tower[1].forward(&h.tower[0].forward(&levels[i])?)?;
            let o = h.out.forward(&t)?;
            Ok(split_head(STRIDES[i], o.h, o.w, &o.data))
        };
        Ok([head(0)?, head(1)?, head(2)?])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::Module;

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

    /// The direct depthwise kernel gives candle's grouped convolution's numbers.
    #[test]
    fn depthwise_matches_candle_grouped_conv() {
        for (h, w, c, stride) in [(9, 7, 5, 1), (10, 13, 8, 2), (7, 9, 3, 2)] {
            let weights = ConvWeights {
                weight: random(c * 9, 1),
                bias: random(c, 2),
                c_out: c,
                c_in: c,
                k: 3,
                stride,
                pad: 1,
                groups: c,
            };
            let x = Maps {
                n: 1,
                h,
                w,
                c,
                data: random(h * w * c, 3),
            };
            let ours = Depthwise::new(&weights).unwrap().forward(&x, false);
            let conv = candle_nn::Conv2d::new(
                Tensor::from_vec(weights.weight.clone(), (c, 1, 3, 3), &Device::Cpu).unwrap(),
                Some(Tensor::from_vec(weights.bias.clone(), c, &Device::Cpu).unwrap()),
                candle_nn::Conv2dConfig {
                    padding: 1,
                    stride,
                    groups: c,
                    ..Default::default()
                },
            );
            let nchw = Tensor::from_vec(x.data.clone(), (1, h, w, c), &Device::Cpu)
                .unwrap()
                .permute((0, 3, 1, 2))
                .unwrap()
                .contiguous()
                .unwrap();
            let reference = conv
                .forward(&nchw)
                .unwrap()
                .permute((0, 2, 3, 1))
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            assert_eq!(
                (ours.h, ours.w),
                ((h - 1) / stride + 1, (w - 1) / stride + 1)
            );
            let diff = ours
                .data
                .iter()
                .zip(&reference)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert_eq!(ours.data.len(), reference.len());
            assert!(diff < 1e-5, "{h}x{w}x{c}/{stride}: {diff}");
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
