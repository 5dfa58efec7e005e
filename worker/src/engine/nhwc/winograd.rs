//! 3×3 convolutions at stride 1 by Winograd's F(2×2, 3×3): each 2×2 block of outputs
//! comes from its 4×4 input tile with 16 products per input and output channel instead
//! of 36. The input tiles are transformed (`Bᵀ d B`), multiplied by the transformed
//! weights (`G g Gᵀ`, once at load) as 16 matrix products over the tiles, which run in
//! [`DirectConv`]'s 1×1 kernel (tiles as pixels), and transformed back (`Aᵀ m A`).
//!
//! Most of dlib's ResNet and of MTCNN's work is such layers. [`DirectConv::with_winograd`]
//! takes this form where it measured faster: dlib's 64- and 128-channel maps and O-Net's
//! second and third layers; with fewer channels the transforms cost what they save. The
//! sums are associated differently from the direct convolution's; in f32 the results
//! differ by a few units in the last place of the layer's largest values.

use rayon::prelude::*;

use super::direct::DirectConv;
use super::{Act, Maps, act_row, buffers};

/// Tiles per matrix product: enough pixels for the 1×1 kernel's blocks, few enough that
/// a band's transformed tiles stay in the cache.
const TILES_PER_BAND: usize = 96;

#[derive(Debug)]
pub struct Winograd {
    c_in: usize,
    c_out: usize,
    padding: usize,
    /// For each of the 16 positions of a transformed tile, the 1×1 convolution of its
    /// transformed weights (no bias).
    products: Vec<DirectConv>,
    bias: Vec<f32>,
}

impl Winograd {
    /// From `(c_out, c_in, 3, 3)` weights; `None` for other kernels.
    pub fn from_oihw(
        weight: &[f32],
        bias: &[f32],
        [c_out, c_in, kh, kw]: [usize; 4],
        padding: usize,
    ) -> Option<Winograd> {
        if (kh, kw) != (3, 3) || padding > 1 {
            return None;
        }
        // U = G g Gᵀ per (o, i), with G = [[1,0,0], [½,½,½], [½,−½,½], [0,0,1]].
        const G: [[f32; 3]; 4] = [
            [1.0, 0.0, 0.0],
            [0.5, 0.5, 0.5],
            [0.5, -0.5, 0.5],
            [0.0, 0.0, 1.0],
        ];
        let mut u = vec![vec![0.0f32; c_out * c_in]; 16];
        for o in 0..c_out {
            for i in 0..c_in {
                let g = &weight[(o * c_in + i) * 9..(o * c_in + i + 1) * 9];
                let mut gg = [[0.0f32; 3]; 4];
                for (a, row) in gg.iter_mut().enumerate() {
                    for (c, v) in row.iter_mut().enumerate() {
                        *v = (0..3).map(|r| G[a][r] * g[r * 3 + c]).sum();
                    }
                }
                for a in 0..4 {
                    for b in 0..4 {
                        let v: f32 = (0..3).map(|c| gg[a][c] * G[b][c]).sum();
                        u[a * 4 + b][o * c_in + i] = v;
                    }
                }
            }
        }
        let zeros = vec![0.0; c_out];
        let products = u
            .iter()
            .map(|w| DirectConv::from_oihw(w, &zeros, [c_out, c_in, 1, 1], 1, 0))
            .collect();
        Some(Winograd {
            c_in,
            c_out,
            padding,
            products,
            bias: bias.to_vec(),
        })
    }

    pub fn output_size(&self, h: usize, w: usize) -> (usize, usize) {
        (h + 2 * self.padding - 2, w + 2 * self.padding - 2)
    }

    /// The convolution, its bias and `act`: the same as the direct convolution up to
    /// rounding.
    pub fn forward_act(&self, x: &Maps, act: Act<'_>) -> Maps {
        assert_eq!(x.c, self.c_in, "input channels");
        let (oh, ow) = self.output_size(x.h, x.w);
        let c = self.c_out;
        let (tiles_y, tiles_x) = (oh.div_ceil(2), ow.div_ceil(2));
        let band = (TILES_PER_BAND / tiles_x).clamp(1, tiles_y);
        let mut data = buffers::scratch(x.n * oh * ow * c);
        data.par_chunks_mut(oh * ow * c)
            .enumerate()
            .for_each(|(b, image)| {
                image
                    .par_chunks_mut(2 * band * ow * c)
                    .enumerate()
                    .for_each(|(j, out)| {
                        let rows = j * band..((j + 1) * band).min(tiles_y);
                        self.band(x, b, rows, ow, out, act);
                    })
            });
        Maps {
            n: x.n,
            h: oh,
            w: ow,
            c,
            data,
        }
    }

    /// Output rows `2·ty0 .. 2·ty1` of image `b`, `ow` pixels wide, into `out` (whose
    /// length cuts the last band to the map).
    fn band(
        &self,
        x: &Maps,
        b: usize,
        tile_rows: std::ops::Range<usize>,
        ow: usize,
        out: &mut [f32],
        act: Act<'_>,
    ) {
        let (c_in, c_out) = (self.c_in, self.c_out);
        let tiles_x = ow.div_ceil(2);
        let tiles = tile_rows.len() * tiles_x;
        // The transformed tiles: for each of the 16 positions, `tiles × c_in` values.
        let mut v: [Maps; 16] = std::array::from_fn(|_| Maps {
            n: 1,
            h: 1,
            w: tiles,
            c: c_in,
            data: buffers::scratch(tiles * c_in),
        });
        super::dispatch(InputTiles {
            x,
            b,
            padding: self.padding,
            tile_rows: tile_rows.clone(),
            tiles_x,
            v: &mut v,
        });
        // The 16 products, each over all the band's tiles.
        let mut m = buffers::scratch(16 * tiles * c_out);
        for (vt, (mt, product)) in v
            .iter()
            .zip(m.chunks_exact_mut(tiles * c_out).zip(&self.products))
        {
            product.forward_row(vt, (0, 0), mt, Act::Identity);
        }
        for vt in v {
            buffers::recycle(vt.data);
        }
        // Aᵀ m A, plus the bias, into the output rows (those inside the map).
        super::dispatch(OutputTiles {
            m: &m,
            bias: &self.bias,
            tiles: (tile_rows.len(), tiles_x),
            ow,
            out,
        });
        buffers::recycle(m);
        act_row(out, c_out, act);
    }
}

/// The input transform of a band's tiles, compiled for the CPU's vectors (a plain
/// closure this large would stay compiled for the baseline).
struct InputTiles<'a> {
    x: &'a Maps,
    b: usize,
    padding: usize,
    tile_rows: std::ops::Range<usize>,
    tiles_x: usize,
    v: &'a mut [Maps; 16],
}

impl pulp::WithSimd for InputTiles<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let InputTiles {
            x,
            b,
            padding,
            tile_rows,
            tiles_x,
            v,
        } = self;
        let c_in = x.c;
        let p = padding as isize;
        let lanes = size_of::<S::f32s>() / size_of::<f32>();
        if c_in.is_multiple_of(lanes) {
            // Whole vectors of channels: read in place, with no slice per tile pixel
            // (for 16 or 32 channels that bookkeeping cost more than the transform).
            let cv = c_in / lanes;
            let zero = simd.splat_f32s(0.0);
            let w = x.w as isize;
            let mut dst = v.each_mut().map(|m| S::as_mut_simd_f32s(&mut m.data).0);
            for (r, ty) in tile_rows.enumerate() {
                let rows: [Option<&[S::f32s]>; 4] = std::array::from_fn(|i| {
                    x.input_row(b, ty, (2, padding), i)
                        .map(|row| S::as_simd_f32s(row).0)
                });
                for tx in 0..tiles_x {
                    let x0 = (2 * tx) as isize - p;
                    let t = r * tiles_x + tx;
                    for vi in 0..cv {
                        let d = std::array::from_fn(|i| {
                            std::array::from_fn(|j| {
                                let ix = x0 + j as isize;
                                match rows[i] {
                                    Some(row) if (0..w).contains(&ix) => row[ix as usize * cv + vi],
                                    _ => zero,
                                }
                            })
                        });
                        let o =
                            tile_in(d, &|a, b| simd.add_f32s(a, b), &|a, b| simd.sub_f32s(a, b));
                        for (dk, ok) in dst.iter_mut().zip(o) {
                            dk[t * cv + vi] = ok;
                        }
                    }
                }
            }
            return;
        }
        let zeros = vec![0.0f32; c_in];
        for (r, ty) in tile_rows.enumerate() {
            // The tile's four input rows (zeros outside the map).
            let rows: [Option<&[f32]>; 4] =
                std::array::from_fn(|i| x.input_row(b, ty, (2, padding), i));
            for tx in 0..tiles_x {
                let d: [[&[f32]; 4]; 4] = std::array::from_fn(|i| {
                    std::array::from_fn(|j| {
                        let ix = (2 * tx) as isize - p + j as isize;
                        match rows[i] {
                            Some(row) if (0..x.w as isize).contains(&ix) => {
                                &row[ix as usize * c_in..(ix as usize + 1) * c_in]
                            }
                            _ => &zeros[..],
                        }
                    })
                });
                let t = r * tiles_x + tx;
                let dst = v.each_mut().map(|m| &mut m.data[t * c_in..(t + 1) * c_in]);
                input_transform(simd, &d, dst, c_in);
            }
        }
    }
}

/// The output transform of a band's tiles into its output rows (those inside the map).
struct OutputTiles<'a> {
    m: &'a [f32],
    bias: &'a [f32],
    /// Tile rows and columns.
    tiles: (usize, usize),
    ow: usize,
    out: &'a mut [f32],
}

impl pulp::WithSimd for OutputTiles<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let OutputTiles {
            m,
            bias,
            tiles: (tile_rows, tiles_x),
            ow,
            out,
        } = self;
        let c = bias.len();
        let tiles = tile_rows * tiles_x;
        let rows_here = out.len() / (ow * c);
        let lanes = size_of::<S::f32s>() / size_of::<f32>();
        if c.is_multiple_of(lanes) {
            // Whole vectors of channels, straight into the output rows.
            let cv = c / lanes;
            let mv: [&[S::f32s]; 16] =
                std::array::from_fn(|k| S::as_simd_f32s(&m[k * tiles * c..(k + 1) * tiles * c]).0);
            let bv = S::as_simd_f32s(bias).0;
            let outv = S::as_mut_simd_f32s(out).0;
            for r in 0..tile_rows {
                for tx in 0..tiles_x {
                    let t = r * tiles_x + tx;
                    for vi in 0..cv {
                        let o = tile_out(
                            std::array::from_fn(|k| mv[k][t * cv + vi]),
                            bv[vi],
                            &|a, b| simd.add_f32s(a, b),
                            &|a, b| simd.sub_f32s(a, b),
                        );
                        for (q, oq) in o.into_iter().enumerate() {
                            let (y, xo) = (2 * r + q / 2, 2 * tx + q % 2);
                            if y < rows_here && xo < ow {
                                outv[(y * ow + xo) * cv + vi] = oq;
                            }
                        }
                    }
                }
            }
            return;
        }
        let mut quad = vec![0.0f32; 4 * c];
        for r in 0..tile_rows {
            for tx in 0..tiles_x {
                let t = r * tiles_x + tx;
                let mk: [&[f32]; 16] =
                    std::array::from_fn(|k| &m[(k * tiles + t) * c..(k * tiles + t + 1) * c]);
                output_transform(simd, &mk, bias, &mut quad, c);
                for dy in 0..2 {
                    let y = 2 * r + dy;
                    for dx in 0..2 {
                        let xo = 2 * tx + dx;
                        if y < rows_here && xo < ow {
                            let q = 2 * dy + dx;
                            out[(y * ow + xo) * c..(y * ow + xo + 1) * c]
                                .copy_from_slice(&quad[q * c..(q + 1) * c]);
                        }
                    }
                }
            }
        }
    }
}

/// `Bᵀ v` for one column (or `v B` for one row) of four values: with Bᵀ = [[1, 0, −1,
/// 0], [0, 1, 1, 0], [0, −1, 1, 0], [0, 1, 0, −1]].
#[inline(always)]
fn bt<T: Copy>([a, b, c, d]: [T; 4], add: &impl Fn(T, T) -> T, sub: &impl Fn(T, T) -> T) -> [T; 4] {
    [sub(a, c), add(b, c), sub(c, b), sub(b, d)]
}

/// `Bᵀ d B` of one 4×4 tile `d[i][j]`, as `[4·a + b]`.
#[inline(always)]
fn tile_in<T: Copy>(d: [[T; 4]; 4], add: &impl Fn(T, T) -> T, sub: &impl Fn(T, T) -> T) -> [T; 16] {
    let cols: [[T; 4]; 4] =
        std::array::from_fn(|j| bt([d[0][j], d[1][j], d[2][j], d[3][j]], add, sub));
    let rows: [[T; 4]; 4] =
        std::array::from_fn(|i| bt([cols[0][i], cols[1][i], cols[2][i], cols[3][i]], add, sub));
    std::array::from_fn(|k| rows[k / 4][k % 4])
}

/// `Aᵀ m A + bias` of one transformed tile `m[4·a + b]`: the 2×2 outputs, row-major.
/// With Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]].
#[inline(always)]
fn tile_out<T: Copy>(
    m: [T; 16],
    bias: T,
    add: &impl Fn(T, T) -> T,
    sub: &impl Fn(T, T) -> T,
) -> [T; 4] {
    let top = |k: usize| add(add(m[k], m[4 + k]), m[8 + k]);
    let bottom = |k: usize| sub(sub(m[4 + k], m[8 + k]), m[12 + k]);
    let (t0, t1, t2, t3) = (top(0), top(1), top(2), top(3));
    let (b0, b1, b2, b3) = (bottom(0), bottom(1), bottom(2), bottom(3));
    [
        add(add(add(t0, t1), t2), bias),
        add(sub(sub(t1, t2), t3), bias),
        add(add(add(b0, b1), b2), bias),
        add(sub(sub(b1, b2), b3), bias),
    ]
}

/// `Bᵀ d B` for one tile, per channel: `d[i][j]` is the input pixel at row `i`, column
/// `j` of the tile; `dst[4·a + b]` gets position `(a, b)`. Whole vectors of channels,
/// then the rest one by one.
#[inline(always)]
fn input_transform<S: pulp::Simd>(simd: S, d: &[[&[f32]; 4]; 4], dst: [&mut [f32]; 16], c: usize) {
    let lanes = size_of::<S::f32s>() / size_of::<f32>();
    let whole = c / lanes * lanes;
    let (vadd, vsub) = (|a, b| simd.add_f32s(a, b), |a, b| simd.sub_f32s(a, b));
    let (add, sub) = (|a: f32, b: f32| a + b, |a: f32, b: f32| a - b);
    let dv: [[&[S::f32s]; 4]; 4] = d.map(|r| r.map(|s| S::as_simd_f32s(&s[..whole]).0));
    let mut split = dst.map(|s| s.split_at_mut(whole));
    // The index runs over 16 source and 16 destination slices at once.
    #[allow(clippy::needless_range_loop)]
    for vi in 0..whole / lanes {
        let o = tile_in(
            std::array::from_fn(|i| std::array::from_fn(|j| dv[i][j][vi])),
            &vadd,
            &vsub,
        );
        for (k, (head, _)) in split.iter_mut().enumerate() {
            S::as_mut_simd_f32s(head).0[vi] = o[k];
        }
    }
    for ci in whole..c {
        let o = tile_in(
            std::array::from_fn(|i| std::array::from_fn(|j| d[i][j][ci])),
            &add,
            &sub,
        );
        for (k, (_, tail)) in split.iter_mut().enumerate() {
            tail[ci - whole] = o[k];
        }
    }
}

/// `Aᵀ m A + bias` for one tile, per channel, into `quad` (the 2×2 outputs, row-major,
/// `c` values each).
#[inline(always)]
fn output_transform<S: pulp::Simd>(
    simd: S,
    m: &[&[f32]; 16],
    bias: &[f32],
    quad: &mut [f32],
    c: usize,
) {
    let lanes = size_of::<S::f32s>() / size_of::<f32>();
    let whole = c / lanes * lanes;
    let (vadd, vsub) = (|a, b| simd.add_f32s(a, b), |a, b| simd.sub_f32s(a, b));
    let (add, sub) = (|a: f32, b: f32| a + b, |a: f32, b: f32| a - b);
    let mv: [&[S::f32s]; 16] = m.map(|s| S::as_simd_f32s(&s[..whole]).0);
    let bv = S::as_simd_f32s(&bias[..whole]).0;
    let mut q: [&mut [f32]; 4] = {
        let (q0, rest) = quad.split_at_mut(c);
        let (q1, rest) = rest.split_at_mut(c);
        let (q2, q3) = rest.split_at_mut(c);
        [q0, q1, q2, &mut q3[..c]]
    };
    for vi in 0..whole / lanes {
        let o = tile_out(std::array::from_fn(|k| mv[k][vi]), bv[vi], &vadd, &vsub);
        for (qk, ok) in q.iter_mut().zip(o) {
            S::as_mut_simd_f32s(&mut qk[..whole]).0[vi] = ok;
        }
    }
    for co in whole..c {
        let o = tile_out(std::array::from_fn(|k| m[k][co]), bias[co], &add, &sub);
        for (qk, ok) in q.iter_mut().zip(o) {
            qk[co] = ok;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::nhwc::tests::{max_diff, narrow_vectors, random};

    /// The direct convolution's numbers up to rounding, for even and odd map sizes (the
    /// last tiles cut short), with and without padding, channels in whole vectors and
    /// not, bands of one tile row and of several.
    fn matches_the_direct_convolution_cases() {
        for (i, &(n, h, w, c_in, c_out, padding)) in [
            (2, 17, 17, 64, 64, 1),
            (3, 8, 8, 128, 128, 1),
            (2, 10, 10, 64, 64, 0),
            (1, 9, 200, 16, 24, 0),
            (2, 7, 6, 28, 20, 1),
            (1, 4, 5, 5, 3, 0),
            (1, 9, 40, 16, 32, 0),
            (2, 7, 9, 32, 16, 1),
        ]
        .iter()
        .enumerate()
        {
            let x = Maps {
                n,
                h,
                w,
                c: c_in,
                data: random(n * h * w * c_in, 200 + i as u64),
            };
            let weight = random(c_out * c_in * 9, 210 + i as u64);
            let bias = random(c_out, 220 + i as u64);
            let shape = [c_out, c_in, 3, 3];
            let direct = DirectConv::from_oihw(&weight, &bias, shape, 1, padding);
            let winograd = Winograd::from_oihw(&weight, &bias, shape, padding).unwrap();
            let slopes = random(c_out, 230 + i as u64);
            let act = Act::Prelu(&slopes);
            let expected = direct.forward_act(&x, act);
            let ours = winograd.forward_act(&x, act);
            assert_eq!(
                (ours.n, ours.h, ours.w, ours.c),
                (n, expected.h, expected.w, c_out)
            );
            // Products of the transforms round differently: a few units in the last
            // place of sums of up to 1152 terms.
            let tolerance = 2e-5 * (c_in * 9).max(100) as f32 / 100.0;
            let diff = max_diff(&ours, &expected);
            assert!(diff < tolerance, "case {i}: max difference {diff}");
        }
    }

    #[test]
    fn matches_the_direct_convolution() {
        matches_the_direct_convolution_cases();
    }

    #[test]
    fn matches_the_direct_convolution_in_avx2_vectors() {
        narrow_vectors(matches_the_direct_convolution_cases);
    }

    #[test]
    fn only_3x3_kernels_with_padding_up_to_1() {
        let w = vec![0.0; 4 * 4 * 25];
        assert!(Winograd::from_oihw(&w, &[0.0; 4], [4, 4, 5, 5], 0).is_none());
        assert!(Winograd::from_oihw(&w[..144], &[0.0; 4], [4, 4, 3, 3], 2).is_none());
        // A chosen layer falls back to the direct form on maps under 4×4 outputs.
        let conv = DirectConv::from_oihw(&random(64 * 64 * 9, 1), &[0.5; 64], [64, 64, 3, 3], 1, 1)
            .with_winograd();
        let x = Maps {
            n: 1,
            h: 3,
            w: 3,
            c: 64,
            data: random(9 * 64, 2),
        };
        let plain =
            DirectConv::from_oihw(&random(64 * 64 * 9, 1), &[0.5; 64], [64, 64, 3, 3], 1, 1);
        assert_eq!(conv.forward(&x), plain.forward(&x));
    }
}
