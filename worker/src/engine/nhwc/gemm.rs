//! The GEMM behind every convolution, run on plain vectors through candle's CPU storage.
//!
//! Why not `Tensor::matmul`: a tensor owns its data, so the product had to be copied
//! out (`to_vec1`) and an input borrowed from a layer had to be copied in. The storage
//! API runs the same `gemm` kernels (runtime-dispatched AVX2/AVX-512, rayon threads)
//! and hands both vectors back, which lets layers recycle their buffers. The `gemm`
//! crate itself only has an `unsafe` API, which the workspace forbids.

use std::cell::RefCell;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, Layout};

use crate::engine::{EngineError, Result};

/// A right-hand matrix `(k, n)`, row-major, laid out once at load time.
#[derive(Debug)]
pub struct Rhs {
    k: usize,
    n: usize,
    storage: CpuStorage,
}

impl Rhs {
    pub fn new(data: Vec<f32>, k: usize, n: usize) -> Rhs {
        assert_eq!(data.len(), k * n, "matrix size");
        Rhs {
            k,
            n,
            storage: CpuStorage::F32(data),
        }
    }

    pub fn rows(&self) -> usize {
        self.k
    }

    pub fn cols(&self) -> usize {
        self.n
    }
}

/// `lhs (m, k) × rhs (k, n)`: returns the product `(m, n)` and `lhs`'s buffer, for reuse.
pub fn matmul(lhs: Vec<f32>, m: usize, rhs: &Rhs) -> Result<(Vec<f32>, Vec<f32>)> {
    let (k, n) = (rhs.k, rhs.n);
    assert_eq!(lhs.len(), m * k, "left-hand matrix size");
    let lhs = CpuStorage::F32(lhs);
    let product = lhs.matmul(
        &rhs.storage,
        (1, m, n, k),
        &Layout::contiguous((m, k)),
        &Layout::contiguous((k, n)),
    )?;
    match (product, lhs) {
        (CpuStorage::F32(product), CpuStorage::F32(lhs)) => Ok((product, lhs)),
        _ => Err(EngineError::Invalid(
            "candle's f32 matmul returned another dtype".into(),
        )),
    }
}

/// Buffers kept per thread for reuse: enough for a layer's input, im2col matrix and
/// output to cycle without fresh allocations.
const POOLED_BUFFERS: usize = 4;
/// Larger buffers are returned to the allocator: a worker thread should not hold
/// hundreds of megabytes between photos.
const MAX_POOLED_LEN: usize = 16 << 20;

thread_local! {
    static POOL: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// The smallest pooled buffer of this thread that holds `len` floats, if any.
fn pooled(len: usize) -> Option<Vec<f32>> {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        // The smallest buffer that fits, so big ones stay for big layers.
        let best = pool
            .iter()
            .enumerate()
            .filter(|(_, v)| v.capacity() >= len)
            .min_by_key(|(_, v)| v.capacity())
            .map(|(i, _)| i);
        best.map(|i| pool.swap_remove(i))
    })
}

/// A zeroed vector of `len` floats, from this thread's pool when one is large enough.
/// Fresh large allocations are mmapped by the allocator and every page of them faults
/// on first touch; a recycled buffer's pages are already mapped.
pub fn zeroed(len: usize) -> Vec<f32> {
    match pooled(len) {
        Some(mut v) => {
            v.clear();
            v.resize(len, 0.0);
            v
        }
        None => vec![0.0; len],
    }
}

/// A vector of `len` floats whose values are unspecified (a pooled buffer's old values,
/// or zeros), for outputs that are written whole: it saves [`zeroed`]'s pass over
/// memory.
pub fn scratch(len: usize) -> Vec<f32> {
    match pooled(len) {
        Some(mut v) => {
            v.truncate(len);
            v.resize(len, 0.0);
            v
        }
        None => vec![0.0; len],
    }
}

/// Gives a buffer back to this thread's pool (dropping the smallest when full).
pub fn recycle(v: Vec<f32>) {
    if v.capacity() == 0 || v.capacity() > MAX_POOLED_LEN {
        return;
    }
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        pool.push(v);
        if pool.len() > POOLED_BUFFERS {
            let smallest = pool
                .iter()
                .enumerate()
                .min_by_key(|(_, v)| v.capacity())
                .map(|(i, _)| i);
            if let Some(i) = smallest {
                pool.swap_remove(i);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_multiplies_and_returns_the_input() {
        // (2, 3) × (3, 2)
        let rhs = Rhs::new(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3, 2);
        let lhs = vec![1.0, 0.0, -1.0, 2.0, 1.0, 0.5];
        let (product, back) = matmul(lhs.clone(), 2, &rhs).unwrap();
        assert_eq!(product, vec![-4.0, -4.0, 7.5, 11.0]);
        assert_eq!(back, lhs);
    }

    #[test]
    fn recycled_buffers_come_back_zeroed() {
        let mut v = zeroed(1000);
        v.fill(7.0);
        recycle(v);
        let w = zeroed(500);
        assert_eq!(w.len(), 500);
        assert!(w.iter().all(|&x| x == 0.0));
    }

    #[test]
    fn scratch_buffers_have_the_length_asked_for() {
        let mut v = scratch(10);
        v.fill(3.0);
        recycle(v);
        let w = scratch(20);
        assert_eq!(w.len(), 20);
        recycle(w);
        assert_eq!(scratch(5).len(), 5);
    }
}
