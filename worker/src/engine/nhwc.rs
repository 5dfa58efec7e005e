//! Convolutional layers on the CPU in NHWC layout: dense ones computed directly
//! (`direct`), depthwise ones by their own kernel (`depthwise`), with weights laid out
//! once at load time, pooling, and the buffers they recycle (`buffers`).
//!
//! Why not candle-nn's `Conv2d` on the CPU: it converts NCHW to NHWC, re-packs the kernel
//! on every call and runs many small GEMMs on 512-pixel tiles, which made the descriptor
//! network several times slower than dlib. An earlier im2col + GEMM path (candle's
//! matmul) spent as much time copying receptive fields and faulting in fresh output
//! buffers as multiplying. On CUDA the candle-nn layers are used as is.

use rayon::prelude::*;

pub mod buffers;
pub mod depthwise;
pub mod direct;
pub mod winograd;

/// Runs `f` compiled for the widest vector instructions this CPU has (AVX-512, or AVX2
/// and FMA on any x86-64 server of the last decade). The workspace builds for baseline
/// x86-64, whose SSE2 vectors hold 4 floats: the auto-vectorised per-channel loops of
/// the kernels here do two to four times the work per instruction inside this. Rust never contracts
/// `a * b + c` into an FMA, so the numbers are the same bit for bit.
///
/// For short loops: LLVM inlines a small closure into the dispatching function, but
/// not a large one, which then stays compiled for the baseline; large kernels implement
/// `pulp::WithSimd` with an `#[inline(always)]` body instead.
#[inline(always)]
pub(crate) fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(f)
}

/// Runs `op` compiled for the widest vector instructions this CPU has: AVX-512 or AVX2.
#[inline(always)]
pub(crate) fn dispatch<W: pulp::WithSimd>(op: W) -> W::Output {
    dispatch_narrow(false, op)
}

/// Runs `op` compiled for the widest vectors this CPU has whose width divides `c`: a
/// kernel that steps through pixels of `c` channels in whole vectors falls back to its
/// scalar loop otherwise. SCRFD's layers of 40, 72 and 152 channels fill AVX2's vectors
/// of 8 floats, not AVX-512's of 16.
#[inline(always)]
pub(crate) fn dispatch_for_channels<W: pulp::WithSimd>(c: usize, op: W) -> W::Output {
    dispatch_narrow(!c.is_multiple_of(16) && c.is_multiple_of(8), op)
}

/// `op` in AVX2 vectors when `narrow` (and the CPU has them), else in the widest.
#[inline(always)]
fn dispatch_narrow<W: pulp::WithSimd>(narrow: bool, op: W) -> W::Output {
    #[cfg(test)]
    let narrow = narrow || tests::NARROW.load(std::sync::atomic::Ordering::Relaxed) > 0;
    #[cfg(target_arch = "x86_64")]
    if narrow && let Some(v3) = pulp::x86::V3::try_new() {
        return pulp::Simd::vectorize(v3, op);
    }
    let _ = narrow;
    pulp::Arch::new().dispatch(op)
}

/// Runs `f`, a network's forward pass, on a thread of rayon's pool (on this one if it is
/// one). Its layers' parallel loops are then forked from within the pool; called from
/// outside it, each layer's loop was sent to the pool and waited for, waking its threads
/// again: 1.3 ms of SCRFD's 16 for a 1366×768 photo. Only for pure computation: `f` must
/// not wait on other work that needs the pool.
pub fn in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}

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
    /// Zeros, in a buffer from the pool.
    pub fn zeros(n: usize, h: usize, w: usize, c: usize) -> Maps {
        Maps {
            n,
            h,
            w,
            c,
            data: buffers::zeroed(n * h * w * c),
        }
    }

    /// Row `oy·s + ky − p` of image `b`: the input row under kernel row `ky` of output
    /// row `oy` (stride `s`, padding `p`), or `None` where it falls into the padding.
    pub(crate) fn input_row(
        &self,
        b: usize,
        oy: usize,
        (s, p): (usize, usize),
        ky: usize,
    ) -> Option<&[f32]> {
        let iy = (oy * s + ky).checked_sub(p).filter(|&iy| iy < self.h)?;
        let len = self.w * self.c;
        let start = (b * self.h + iy) * len;
        Some(&self.data[start..start + len])
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
    max_pool_windows(x, k, s, (out(x.h), out(x.w)))
}

/// Max pooling without padding, the output size rounded down (dlib's `max_pool`).
pub fn max_pool(x: &Maps, k: usize, s: usize) -> Maps {
    max_pool_windows(x, k, s, ((x.h - k) / s + 1, (x.w - k) / s + 1))
}

/// The larger of two values, as `maxps` computes it (no NaN reaches a pooling layer).
#[inline(always)]
fn larger(a: f32, b: f32) -> f32 {
    if b > a { b } else { a }
}

/// Max over `k×k` windows at stride `s` for an `(oh, ow)` output, each window cut to
/// the input. Per output row: the max of the window's input rows, over whole rows (one
/// long vectorised loop), then the max of each window's columns of that. MTCNN pools
/// P-Net's largest maps (over a million pixels of 10 channels for a 2000-pixel photo)
/// and its R-Net and O-Net crops this way; pixel by pixel over 10 to 32 channels, the
/// pools took a tenth of the detector's time.
fn max_pool_windows(x: &Maps, k: usize, s: usize, (oh, ow): (usize, usize)) -> Maps {
    let c = x.c;
    let mut data = buffers::scratch(x.n * oh * ow * c);
    data.par_chunks_mut(ow * c).enumerate().for_each_init(
        Vec::new,
        |rows_max: &mut Vec<f32>, (r, orow)| {
            let (b, oy) = (r / oh, r % oh);
            let rows = oy * s..(oy * s + k).min(x.h);
            pool_row(x, b, rows, (k, s), orow, rows_max);
        },
    );
    Maps {
        n: x.n,
        h: oh,
        w: ow,
        c,
        data,
    }
}

/// One output row of [`max_pool_windows`]: the windows over input rows `rows` of image
/// `b`, the last window cut to the row's end. `rows_max` is scratch.
pub(crate) fn pool_row(
    x: &Maps,
    b: usize,
    rows: std::ops::Range<usize>,
    (k, s): (usize, usize),
    orow: &mut [f32],
    rows_max: &mut Vec<f32>,
) {
    let c = x.c;
    let ow = orow.len() / c;
    let cols = ((ow - 1) * s + k).min(x.w);
    vectorized(|| {
        let row = |iy: usize| &x.data[x.at(b, iy, 0)..x.at(b, iy, 0) + cols * c];
        rows_max.clear();
        rows_max.extend_from_slice(row(rows.start));
        for iy in rows.start + 1..rows.end {
            for (m, &v) in rows_max.iter_mut().zip(row(iy)) {
                *m = larger(*m, v);
            }
        }
        for (ox, out) in orow.chunks_exact_mut(c).enumerate() {
            let x0 = ox * s;
            out.copy_from_slice(&rows_max[x0 * c..(x0 + 1) * c]);
            for px in rows_max[(x0 + 1) * c..(x0 + k).min(cols) * c].chunks_exact(c) {
                for (o, &v) in out.iter_mut().zip(px) {
                    *o = larger(*o, v);
                }
            }
        }
    })
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
    use candle_core::{DType, Device, Tensor};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// How many tests are running kernels in AVX2 vectors ([`narrow_vectors`]).
    pub(super) static NARROW: AtomicUsize = AtomicUsize::new(0);

    /// Runs `f` with the kernels in AVX2 vectors even where the CPU has AVX-512, so that
    /// the code for both widths (their register blocking and channel splits differ) is
    /// checked on either machine. Other tests running meanwhile take the same path:
    /// slower, but their numbers are as right.
    pub(crate) fn narrow_vectors<R>(f: impl FnOnce() -> R) -> R {
        struct Reset;
        impl Drop for Reset {
            fn drop(&mut self) {
                NARROW.fetch_sub(1, Ordering::Relaxed);
            }
        }
        NARROW.fetch_add(1, Ordering::Relaxed);
        let _reset = Reset;
        f()
    }

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

    pub(crate) fn to_nchw(m: &Maps) -> Tensor {
        Tensor::from_vec(m.data.clone(), (m.n, m.h, m.w, m.c), &Device::Cpu)
            .unwrap()
            .permute((0, 3, 1, 2))
            .unwrap()
            .contiguous()
            .unwrap()
    }

    pub(crate) fn from_nchw(t: &Tensor) -> Maps {
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

    pub(crate) fn max_diff(a: &Maps, b: &Maps) -> f32 {
        assert_eq!((a.n, a.h, a.w, a.c), (b.n, b.h, b.w, b.c));
        a.data
            .iter()
            .zip(&b.data)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
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
        let conv = direct::DirectConv::from_oihw(&[1.0, -1.0], &[0.0, 0.0], [2, 1, 1, 1], 1, 0);
        let x = Maps {
            n: 1,
            h: 1,
            w: 2,
            c: 1,
            data: vec![2.0, -3.0],
        };
        let y = conv.forward_act(&x, Act::Prelu(&[0.5, 0.25]));
        assert_eq!(y.data, vec![2.0, -0.5, -1.5, 3.0]);
        let y = conv.forward_act(&x, Act::Relu);
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
