//! Float buffers recycled per thread between layers: a fresh large allocation is
//! mmapped by the allocator and every page of it faults on first touch, where a recycled
//! buffer's pages are already mapped.

use std::cell::RefCell;

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
