//! Convolutional layers on the CPU in NHWC layout: each output pixel's receptive field is
//! copied as `k_h` contiguous runs (im2col), then one GEMM per layer (candle's matmul)
//! multiplies it with weights laid out once at load time.
//!
//! Why not candle-nn's `Conv2d` on the CPU: it converts NCHW to NHWC, re-packs the kernel
//! on every call and runs many small GEMMs on 512-pixel tiles, which made the descriptor
//! network several times slower than dlib. On CUDA the candle-nn layers are used as is.

use rayon::prelude::*;

use super::Result;

pub mod depthwise;
pub mod direct;
pub mod gemm;

use gemm::Rhs;

/// Runs `f` compiled for the widest vector instructions this CPU has (AVX2 and FMA on
/// any x86-64 server of the last decade). The workspace builds for baseline x86-64,
/// whose SSE2 vectors hold 4 floats: the auto-vectorised per-channel loops of the
/// kernels here do twice the work per instruction inside this. Rust never contracts
/// `a * b + c` into an FMA, so the numbers are the same bit for bit.
///
/// For short loops: LLVM inlines a small closure into the dispatching function, but
/// not a large one, which then stays compiled for the baseline; large bodies go
/// through [`Vectorized`].
#[inline(always)]
pub(crate) fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(f)
}

/// A kernel body too large for [`vectorized`]'s closure: `run` must be
/// `#[inline(always)]`, which forces it into the function compiled for the wide
/// instructions.
pub(crate) trait Vectorized {
    fn run(self);

    fn run_vectorized(self)
    where
        Self: Sized,
    {
        pulp::Arch::new().dispatch(Dispatch(self))
    }
}

struct Dispatch<K>(K);

impl<K: Vectorized> pulp::WithSimd for Dispatch<K> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        self.0.run()
    }
}

/// Rows per parallel task in the per-pixel passes: big enough that scheduling is noise.
const ROWS_PER_TASK: usize = 1024;

/// A batch of feature maps, `(n, h, w, c)` row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Maps {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub data: Vec<f32>,
}

impl Maps {
    pub fn zeros(n: usize, h: usize, w: usize, c: usize) -> Maps {
        Maps {
            n,
            h,
            w,
            c,
            data: vec![0.0; n * h * w * c],
        }
    }

    fn at(&self, b: usize, y: usize, x: usize) -> usize {
        ((b * self.h + y) * self.w + x) * self.c
    }

    /// `max(x, 0)` in place.
    pub fn relu(&mut self) {
        vectorized(|| {
            for v in &mut self.data {
                *v = v.max(0.0);
            }
        })
    }

    /// `self += other` for maps of the same shape.
    pub fn add_assign(&mut self, other: &Maps) {
        debug_assert_eq!(self.data.len(), other.data.len());
        vectorized(|| {
            for (a, b) in self.data.iter_mut().zip(&other.data) {
                *a += b;
            }
        })
    }

    /// Mean over each map's pixels: `(n, c)` row-major.
    pub fn mean_over_pixels(&self) -> Vec<f32> {
        let pixels = self.h * self.w;
        let mut out = vec![0.0f32; self.n * self.c];
        for (b, sums) in out.chunks_exact_mut(self.c).enumerate() {
            let maps = &self.data[b * pixels * self.c..(b + 1) * pixels * self.c];
            for px in maps.chunks_exact(self.c) {
                for (s, v) in sums.iter_mut().zip(px) {
                    *s += v;
                }
            }
            for s in sums {
                *s /= pixels as f32;
            }
        }
        out
    }
}

/// What follows a layer's bias, applied in the same pass.
#[derive(Debug, Clone, Copy)]
pub enum Act<'a> {
    Identity,
    Relu,
    /// PyTorch's PReLU: one slope per channel for negative values.
    Prelu(&'a [f32]),
}

/// A 2-D convolution with bias, square stride and zero padding.
#[derive(Debug)]
pub struct Conv {
    k_h: usize,
    k_w: usize,
    stride: usize,
    padding: usize,
    c_in: usize,
    c_out: usize,
    /// `(k_h·k_w·c_in, c_out)`: row `(ky, kx, ci)`, the im2col column order.
    weight: Rhs,
    bias: Vec<f32>,
}

impl Conv {
    /// From PyTorch/dlib order weights `(c_out, c_in, k_h, k_w)`.
    pub fn from_oihw(
        weight: &[f32],
        bias: &[f32],
        [c_out, c_in, k_h, k_w]: [usize; 4],
        stride: usize,
        padding: usize,
    ) -> Result<Conv> {
        assert_eq!(weight.len(), c_out * c_in * k_h * k_w);
        assert_eq!(bias.len(), c_out);
        let rows = k_h * k_w * c_in;
        let mut w = vec![0.0f32; rows * c_out];
        for o in 0..c_out {
            for ci in 0..c_in {
                for ky in 0..k_h {
                    for kx in 0..k_w {
                        let row = (ky * k_w + kx) * c_in + ci;
                        w[row * c_out + o] = weight[((o * c_in + ci) * k_h + ky) * k_w + kx];
                    }
                }
            }
        }
        Ok(Conv {
            k_h,
            k_w,
            stride,
            padding,
            c_in,
            c_out,
            weight: Rhs::new(w, rows, c_out),
            bias: bias.to_vec(),
        })
    }

    pub fn output_size(&self, h: usize, w: usize) -> (usize, usize) {
        (
            (h + 2 * self.padding - self.k_h) / self.stride + 1,
            (w + 2 * self.padding - self.k_w) / self.stride + 1,
        )
    }

    pub fn forward(&self, x: &Maps) -> Result<Maps> {
        self.forward_act(x, Act::Identity)
    }

    /// The convolution, its bias and `act`.
    pub fn forward_act(&self, x: &Maps, act: Act<'_>) -> Result<Maps> {
        assert_eq!(x.c, self.c_in, "input channels");
        let (oh, ow) = self.output_size(x.h, x.w);
        let rows = x.n * oh * ow;
        let cols = self.im2col(x, oh, ow);
        let (mut data, cols) = gemm::matmul(cols, rows, &self.weight)?;
        gemm::recycle(cols);
        bias_act(&mut data, &self.bias, act);
        Ok(Maps {
            n: x.n,
            h: oh,
            w: ow,
            c: self.c_out,
            data,
        })
    }

    /// One row per output pixel: for each kernel row, the input run under it (zeros where
    /// the kernel hangs over the padding).
    fn im2col(&self, x: &Maps, oh: usize, ow: usize) -> Vec<f32> {
        let row_len = self.k_h * self.k_w * self.c_in;
        // Every element is written by `fill_row`, zeros included.
        let mut cols = gemm::scratch(x.n * oh * ow * row_len);
        cols.par_chunks_mut(row_len * ROWS_PER_TASK)
            .enumerate()
            .for_each(|(task, rows)| {
                for (i, row) in rows.chunks_exact_mut(row_len).enumerate() {
                    self.fill_row(x, task * ROWS_PER_TASK + i, (oh, ow), row);
                }
            });
        cols
    }

    /// Row `r` of the im2col matrix (see [`Self::im2col`]): every element of `row`.
    fn fill_row(&self, x: &Maps, r: usize, (oh, ow): (usize, usize), row: &mut [f32]) {
        let (s, p) = (self.stride as isize, self.padding as isize);
        let (h, w) = (x.h as isize, x.w as isize);
        let b = r / (oh * ow);
        let oy = ((r / ow) % oh) as isize;
        let ox = (r % ow) as isize;
        let x0 = ox * s - p;
        // Kernel columns that land inside the image.
        let kx_lo = ((-x0).max(0) as usize).min(self.k_w);
        let kx_hi = ((w - x0).clamp(0, self.k_w as isize) as usize).max(kx_lo);
        let run = self.k_w * self.c_in;
        for (ky, dst) in row.chunks_exact_mut(run).enumerate() {
            let iy = oy * s - p + ky as isize;
            if iy < 0 || iy >= h || kx_lo == kx_hi {
                dst.fill(0.0);
                continue;
            }
            let (lo, hi) = (kx_lo * self.c_in, kx_hi * self.c_in);
            dst[..lo].fill(0.0);
            dst[hi..].fill(0.0);
            let src = x.at(b, iy as usize, (x0 + kx_lo as isize) as usize);
            dst[lo..hi].copy_from_slice(&x.data[src..src + hi - lo]);
        }
    }
}

/// `v = act(v + bias)` for every pixel of `data` (`c = bias.len()` channels each), in
/// parallel chunks.
pub(crate) fn bias_act(data: &mut [f32], bias: &[f32], act: Act<'_>) {
    let c = bias.len();
    if let Act::Prelu(alpha) = act {
        assert_eq!(alpha.len(), c, "PReLU slopes");
    }
    data.par_chunks_mut(c * ROWS_PER_TASK).for_each(|rows| {
        vectorized(|| {
            for px in rows.chunks_exact_mut(c) {
                for (v, b) in px.iter_mut().zip(bias) {
                    *v += b;
                }
            }
            act_row(rows, c, act);
        })
    });
}

/// `act` over pixels of `c` channels (inlined, so that it is vectorised as its caller).
#[inline(always)]
pub(crate) fn act_row(data: &mut [f32], c: usize, act: Act<'_>) {
    match act {
        Act::Identity => {}
        Act::Relu => {
            for v in data.iter_mut() {
                *v = v.max(0.0);
            }
        }
        Act::Prelu(alpha) => {
            for px in data.chunks_exact_mut(c) {
                // Branch-free (signs are random: a branch mispredicts half the time);
                // equal to `y > 0 ? y : a·y` up to the sign of zero.
                for (v, a) in px.iter_mut().zip(alpha) {
                    *v = v.max(0.0) + a * v.min(0.0);
                }
            }
        }
    }
}

/// Pooling over `k×k` windows with stride `s` and no padding (output size rounds down).
fn pool(x: &Maps, k: usize, s: usize, init: f32, fold: impl Fn(f32, f32) -> f32) -> Maps {
    let (oh, ow) = ((x.h - k) / s + 1, (x.w - k) / s + 1);
    let mut out = Maps::zeros(x.n, oh, ow, x.c);
    for b in 0..x.n {
        for oy in 0..oh {
            for ox in 0..ow {
                let o = out.at(b, oy, ox);
                let acc = &mut out.data[o..o + x.c];
                acc.fill(init);
                for ky in 0..k {
                    for kx in 0..k {
                        let i = x.at(b, oy * s + ky, ox * s + kx);
                        for (a, v) in acc.iter_mut().zip(&x.data[i..i + x.c]) {
                            *a = fold(*a, *v);
                        }
                    }
                }
            }
        }
    }
    out
}

/// `nn.MaxPool2d(k, s, ceil_mode=True)` without padding: when the windows do not tile
/// the input, one more window starts inside it and takes the max of what it covers.
pub fn max_pool_ceil(x: &Maps, k: usize, s: usize) -> Maps {
    let out = |n: usize| if n <= k { 1 } else { (n - k).div_ceil(s) + 1 };
    let (oh, ow) = (out(x.h), out(x.w));
    let mut o = Maps::zeros(x.n, oh, ow, x.c);
    for b in 0..x.n {
        for oy in 0..oh {
            let ys = oy * s..(oy * s + k).min(x.h);
            for ox in 0..ow {
                let xs = ox * s..(ox * s + k).min(x.w);
                let at = o.at(b, oy, ox);
                let acc = &mut o.data[at..at + x.c];
                acc.fill(f32::NEG_INFINITY);
                for iy in ys.clone() {
                    for ix in xs.clone() {
                        let i = x.at(b, iy, ix);
                        for (a, v) in acc.iter_mut().zip(&x.data[i..i + x.c]) {
                            *a = a.max(*v);
                        }
                    }
                }
            }
        }
    }
    o
}

pub fn max_pool(x: &Maps, k: usize, s: usize) -> Maps {
    pool(x, k, s, f32::NEG_INFINITY, f32::max)
}

pub fn avg_pool(x: &Maps, k: usize, s: usize) -> Maps {
    let mut out = pool(x, k, s, 0.0, |a, v| a + v);
    let scale = 1.0 / (k * k) as f32;
    for v in &mut out.data {
        *v *= scale;
    }
    out
}

/// dlib's `add_prev` for maps of different sizes: the result takes the larger size in
/// every dimension and a missing element counts as zero.
pub fn add_zero_padded(a: &Maps, b: &Maps) -> Maps {
    assert_eq!(a.n, b.n);
    let mut out = Maps::zeros(a.n, a.h.max(b.h), a.w.max(b.w), a.c.max(b.c));
    for m in [a, b] {
        for n in 0..m.n {
            for y in 0..m.h {
                for x in 0..m.w {
                    let (i, o) = (m.at(n, y, x), out.at(n, y, x));
                    for (acc, v) in out.data[o..o + m.c].iter_mut().zip(&m.data[i..i + m.c]) {
                        *acc += v;
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use candle_core::{DType, Device, Module, Tensor};
    use candle_nn::{Conv2d, Conv2dConfig};

    /// Reproducible inputs in [-0.5, 0.5) without a dependency (a fixed LCG), shared by
    /// the layer tests of every network.
    pub(crate) fn random(len: usize, seed: u64) -> Vec<f32> {
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

    fn to_nchw(m: &Maps) -> Tensor {
        Tensor::from_vec(m.data.clone(), (m.n, m.h, m.w, m.c), &Device::Cpu)
            .unwrap()
            .permute((0, 3, 1, 2))
            .unwrap()
            .contiguous()
            .unwrap()
    }

    fn from_nchw(t: &Tensor) -> Maps {
        let (n, c, h, w) = t.dims4().unwrap();
        let data = t
            .permute((0, 2, 3, 1))
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        Maps { n, h, w, c, data }
    }

    fn max_diff(a: &Maps, b: &Maps) -> f32 {
        assert_eq!((a.n, a.h, a.w, a.c), (b.n, b.h, b.w, b.c));
        a.data
            .iter()
            .zip(&b.data)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    /// Same numbers as candle-nn's conv2d for the shapes the networks use.
    #[test]
    fn conv_matches_candle_nn() {
        for (i, &(n, h, w, c_in, c_out, k, stride, padding)) in [
            (2, 20, 17, 3, 8, 7, 2, 0),
            (2, 9, 9, 8, 16, 3, 1, 1),
            (3, 17, 17, 8, 16, 3, 2, 0),
            (1, 12, 10, 4, 2, 1, 1, 0),
        ]
        .iter()
        .enumerate()
        {
            let x = Maps {
                n,
                h,
                w,
                c: c_in,
                data: random(n * h * w * c_in, i as u64),
            };
            let weight = random(c_out * c_in * k * k, 100 + i as u64);
            let bias = random(c_out, 200 + i as u64);
            let ours = Conv::from_oihw(&weight, &bias, [c_out, c_in, k, k], stride, padding)
                .unwrap()
                .forward(&x)
                .unwrap();
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

    #[test]
    fn pools_match_candle() {
        let x = Maps {
            n: 2,
            h: 9,
            w: 8,
            c: 5,
            data: random(2 * 9 * 8 * 5, 7),
        };
        let t = to_nchw(&x);
        let max = from_nchw(&t.max_pool2d_with_stride((3, 3), (2, 2)).unwrap());
        assert_eq!(max_diff(&max_pool(&x, 3, 2), &max), 0.0);
        let avg = from_nchw(&t.avg_pool2d_with_stride((2, 2), (2, 2)).unwrap());
        assert!(max_diff(&avg_pool(&x, 2, 2), &avg) < 1e-6);
        let mean = t.mean((2, 3)).unwrap().to_dtype(DType::F32).unwrap();
        let mean = mean.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for (a, b) in x.mean_over_pixels().iter().zip(&mean) {
            assert!((a - b).abs() < 1e-6);
        }
    }

    #[test]
    fn ceil_mode_pool_adds_a_partial_window() {
        let x = Maps {
            n: 1,
            h: 3,
            w: 3,
            c: 1,
            data: (1..=9).map(|v| v as f32).collect(),
        };
        let p = max_pool_ceil(&x, 2, 2);
        assert_eq!((p.h, p.w), (2, 2));
        assert_eq!(p.data, vec![5.0, 6.0, 8.0, 9.0]);
    }

    #[test]
    fn prelu_scales_only_negative_values() {
        let conv = Conv::from_oihw(&[1.0, -1.0], &[0.0, 0.0], [2, 1, 1, 1], 1, 0).unwrap();
        let x = Maps {
            n: 1,
            h: 1,
            w: 2,
            c: 1,
            data: vec![2.0, -3.0],
        };
        let y = conv.forward_act(&x, Act::Prelu(&[0.5, 0.25])).unwrap();
        assert_eq!(y.data, vec![2.0, -0.5, -1.5, 3.0]);
        let y = conv.forward_act(&x, Act::Relu).unwrap();
        assert_eq!(y.data, vec![2.0, 0.0, 0.0, 3.0]);
    }

    #[test]
    fn add_zero_padded_takes_the_larger_shape() {
        let a = Maps {
            n: 1,
            h: 2,
            w: 2,
            c: 1,
            data: vec![1.0, 2.0, 3.0, 4.0],
        };
        let b = Maps {
            n: 1,
            h: 1,
            w: 1,
            c: 2,
            data: vec![10.0, 20.0],
        };
        let sum = add_zero_padded(&a, &b);
        assert_eq!((sum.h, sum.w, sum.c), (2, 2, 2));
        assert_eq!(sum.data, vec![11.0, 20.0, 2.0, 0.0, 3.0, 0.0, 4.0, 0.0]);
    }
}
